//! Triggers of agents and their firings.
//!
//! A firing row names the run it started; its key (the sender's delivery id, or a cron's
//! scheduled time) is unique per trigger, so two nodes firing the same schedule, or a
//! sender repeating a delivery, start one run between them.

use sqlx::any::AnyRow;
use sqlx::AnyPool;

use super::util::{col, json_col, json_text, keyset, limit};
use crate::store::{
    AuditEvent, Fired, Firing, Millis, Page, RunRow, StoreError, StoreResult, TriggerKind,
    TriggerRow,
};

const COLUMNS: &str =
    "id, org_id, app_id, agent, kind, config, secret, paused_at, next_fire_at, created_at";

fn trigger_of(r: &AnyRow) -> StoreResult<TriggerRow> {
    let kind: String = col(r, "kind")?;
    Ok(TriggerRow {
        id: col(r, "id")?,
        org_id: col(r, "org_id")?,
        app_id: col(r, "app_id")?,
        agent: col(r, "agent")?,
        kind: match kind.as_str() {
            "webhook" => TriggerKind::Webhook,
            "cron" => TriggerKind::Cron,
            other => return Err(StoreError::Corrupt(format!("unknown trigger kind {other}"))),
        },
        config: json_col(r, "config")?,
        secret: col(r, "secret")?,
        paused_at: col(r, "paused_at")?,
        next_fire_at: col(r, "next_fire_at")?,
        created_at: col(r, "created_at")?,
    })
}

pub(super) async fn create_trigger(pool: &AnyPool, t: &TriggerRow) -> StoreResult<()> {
    sqlx::query(&format!(
        "INSERT INTO triggers ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    ))
    .bind(&t.id)
    .bind(&t.org_id)
    .bind(&t.app_id)
    .bind(&t.agent)
    .bind(t.kind.as_str())
    .bind(json_text(&t.config))
    .bind(&t.secret)
    .bind(t.paused_at)
    .bind(t.next_fire_at)
    .bind(t.created_at)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn get_trigger(
    pool: &AnyPool,
    app_id: &str,
    agent: &str,
    id: &str,
) -> StoreResult<Option<TriggerRow>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM triggers WHERE app_id = $1 AND agent = $2 AND id = $3"
    ))
    .bind(app_id)
    .bind(agent)
    .bind(id)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(trigger_of).transpose()
}

pub(super) async fn find_trigger(pool: &AnyPool, id: &str) -> StoreResult<Option<TriggerRow>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM triggers WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(trigger_of).transpose()
}

pub(super) async fn list_triggers(
    pool: &AnyPool,
    app_id: &str,
    agent: &str,
    page: &Page,
) -> StoreResult<Vec<TriggerRow>> {
    let (at, id) = keyset(page);
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM triggers
         WHERE app_id = $1 AND agent = $2 AND (created_at, id) < ($3, $4)
         ORDER BY created_at DESC, id DESC LIMIT $5"
    ))
    .bind(app_id)
    .bind(agent)
    .bind(at)
    .bind(id)
    .bind(limit(page.limit))
    .fetch_all(pool)
    .await?;
    rows.iter().map(trigger_of).collect()
}

pub(super) async fn delete_trigger(
    pool: &AnyPool,
    app_id: &str,
    agent: &str,
    id: &str,
) -> StoreResult<bool> {
    let done = sqlx::query("DELETE FROM triggers WHERE app_id = $1 AND agent = $2 AND id = $3")
        .bind(app_id)
        .bind(agent)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

pub(super) async fn set_trigger_secret(
    pool: &AnyPool,
    app_id: &str,
    agent: &str,
    id: &str,
    secret: &str,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE triggers SET secret = $4
         WHERE app_id = $1 AND agent = $2 AND id = $3 AND kind = 'webhook'",
    )
    .bind(app_id)
    .bind(agent)
    .bind(id)
    .bind(secret)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() > 0)
}

pub(super) async fn set_trigger_paused(
    pool: &AnyPool,
    app_id: &str,
    agent: &str,
    id: &str,
    paused_at: Option<Millis>,
    next_fire_at: Option<Millis>,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE triggers SET paused_at = $4, next_fire_at = $5
         WHERE app_id = $1 AND agent = $2 AND id = $3",
    )
    .bind(app_id)
    .bind(agent)
    .bind(id)
    .bind(paused_at)
    .bind(next_fire_at)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() > 0)
}

pub(super) async fn due_cron_triggers(
    pool: &AnyPool,
    now: Millis,
    max: u32,
) -> StoreResult<Vec<TriggerRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM triggers
         WHERE kind = 'cron' AND paused_at IS NULL AND next_fire_at <= $1
         ORDER BY next_fire_at, id LIMIT $2"
    ))
    .bind(now)
    .bind(limit(max))
    .fetch_all(pool)
    .await?;
    rows.iter().map(trigger_of).collect()
}

pub(super) async fn advance_trigger(
    pool: &AnyPool,
    id: &str,
    expected: Millis,
    next: Option<Millis>,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE triggers SET next_fire_at = $3
         WHERE id = $1 AND next_fire_at = $2 AND paused_at IS NULL",
    )
    .bind(id)
    .bind(expected)
    .bind(next)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() > 0)
}

pub(super) async fn firing_run(pool: &AnyPool, firing: &Firing) -> StoreResult<Option<String>> {
    let row = sqlx::query("SELECT run_id FROM trigger_firings WHERE trigger_id = $1 AND key = $2")
        .bind(&firing.trigger_id)
        .bind(&firing.key)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(|r| col(r, "run_id")).transpose()
}

/// The firing row first, and only while the trigger is not paused: when another node or
/// an earlier delivery holds the key, or a pause came first, nothing else is written.
pub(super) async fn insert_fired_run(
    pool: &AnyPool,
    run: &RunRow,
    audit: Option<&AuditEvent>,
    firing: &Firing,
) -> StoreResult<Fired> {
    let mut tx = pool.begin().await?;
    let claimed = sqlx::query(
        "INSERT INTO trigger_firings (trigger_id, key, run_id, created_at)
         SELECT $1, $2, $3, $4
         WHERE EXISTS (SELECT 1 FROM triggers WHERE id = $1 AND paused_at IS NULL)
         ON CONFLICT (trigger_id, key) DO NOTHING",
    )
    .bind(&firing.trigger_id)
    .bind(&firing.key)
    .bind(&run.id)
    .bind(run.created_at)
    .execute(&mut *tx)
    .await?;
    if claimed.rows_affected() == 0 {
        drop(tx);
        return Ok(match firing_run(pool, firing).await? {
            Some(existing) => Fired::Existing(existing),
            None => Fired::Paused,
        });
    }
    super::runs::insert_run_on(&mut tx, run, audit).await?;
    tx.commit().await?;
    Ok(Fired::Started)
}
