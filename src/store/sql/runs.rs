//! Runs and their leases, usage totals (their events are in `events`).
//!
//! A run moves `queued → running → succeeded | failed | timed_out | cancelled`; every
//! transition is one conditional `UPDATE`, so two nodes racing on the same run see exactly
//! one of them win (the other's statement matches no row).

use std::collections::{HashMap, VecDeque};

use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::AnyPool;

use super::fair::{plan, Shares, Stream};
use super::util::{col, i32_col, json_col, json_text, keyset, limit, opt_json_col, opt_json_text};
use super::Backend;
use crate::store::{
    AuditEvent, Millis, Page, RunFilter, RunFinish, RunRow, RunStatus, StoreError, StoreResult,
    UsageTotals,
};

macro_rules! run_columns {
    () => {
        "id, org_id, app_id, agent, version, end_user, trigger, status, input, output, error, \
         metadata, usage, attempt, created_at, started_at, finished_at, lease_owner, \
         lease_expires_at"
    };
}

/// The run columns, in the order [`run_from_row`] reads them.
pub(super) const RUN_COLUMNS: &str = run_columns!();

/// Most ids bound in one statement (well under both engines' parameter limits).
const IDS_PER_STATEMENT: usize = 500;

pub(super) fn run_from_row(r: &AnyRow) -> StoreResult<RunRow> {
    Ok(RunRow {
        id: col(r, "id")?,
        org_id: col(r, "org_id")?,
        app_id: col(r, "app_id")?,
        agent: col(r, "agent")?,
        version: col(r, "version")?,
        end_user: col(r, "end_user")?,
        trigger: col(r, "trigger")?,
        status: status_col(r)?,
        input: json_col(r, "input")?,
        output: opt_json_col(r, "output")?,
        error: opt_json_col(r, "error")?,
        metadata: opt_json_col(r, "metadata")?,
        usage: opt_json_col(r, "usage")?,
        attempt: i32_col(r, "attempt")?,
        created_at: col(r, "created_at")?,
        started_at: col(r, "started_at")?,
        finished_at: col(r, "finished_at")?,
        lease_owner: col(r, "lease_owner")?,
        lease_expires_at: col(r, "lease_expires_at")?,
    })
}

fn status_col(r: &AnyRow) -> StoreResult<RunStatus> {
    let text: String = col(r, "status")?;
    text.parse()
        .map_err(|e| StoreError::Corrupt(format!("column status: {e}")))
}

fn runs_from_rows(rows: &[AnyRow]) -> StoreResult<Vec<RunRow>> {
    rows.iter().map(run_from_row).collect()
}

/// The numbers of a run's `usage` document that [`usage`] adds up: cpu_ms, llm_tokens_in,
/// llm_tokens_out, fetches (missing or non-numeric fields count as 0).
fn usage_numbers(usage: Option<&Value>) -> (f64, i64, i64, i64) {
    let field = |k: &str| usage.and_then(|u| u.get(k));
    let int = |k: &str| {
        field(k)
            .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
            .unwrap_or(0)
    };
    let cpu = field("cpu_ms").and_then(Value::as_f64).unwrap_or(0.0);
    (
        cpu,
        int("llm_tokens_in"),
        int("llm_tokens_out"),
        int("fetches"),
    )
}

/// Inserts a run and, in the same transaction, the audit event that records its creation:
/// both are stored or neither is.
pub(super) async fn insert_run(
    pool: &AnyPool,
    run: &RunRow,
    audit: Option<&AuditEvent>,
) -> StoreResult<()> {
    let mut tx = pool.begin().await?;
    insert_run_on(&mut tx, run, audit).await?;
    tx.commit().await?;
    Ok(())
}

/// [`insert_run`] on a connection the caller holds (inside its transaction).
pub(super) async fn insert_run_on(
    conn: &mut sqlx::AnyConnection,
    run: &RunRow,
    audit: Option<&AuditEvent>,
) -> StoreResult<()> {
    let (cpu, tokens_in, tokens_out, fetches) = usage_numbers(run.usage.as_ref());
    sqlx::query(
        "INSERT INTO runs (id, org_id, app_id, agent, version, end_user, trigger, status, input,
             output, error, metadata, usage, usage_cpu_ms, usage_llm_tokens_in,
             usage_llm_tokens_out, usage_fetches, attempt, created_at, started_at, finished_at,
             lease_owner, lease_expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
             $18, $19, $20, $21, $22, $23)",
    )
    .bind(&run.id)
    .bind(&run.org_id)
    .bind(&run.app_id)
    .bind(&run.agent)
    .bind(&run.version)
    .bind(&run.end_user)
    .bind(&run.trigger)
    .bind(run.status.as_str())
    .bind(json_text(&run.input))
    .bind(opt_json_text(&run.output))
    .bind(opt_json_text(&run.error))
    .bind(opt_json_text(&run.metadata))
    .bind(opt_json_text(&run.usage))
    .bind(cpu)
    .bind(tokens_in)
    .bind(tokens_out)
    .bind(fetches)
    .bind(i64::from(run.attempt))
    .bind(run.created_at)
    .bind(run.started_at)
    .bind(run.finished_at)
    .bind(&run.lease_owner)
    .bind(run.lease_expires_at)
    .execute(&mut *conn)
    .await?;
    if let Some(audit) = audit {
        super::tenants::append_audit(&mut *conn, audit).await?;
    }
    Ok(())
}

pub(super) async fn get_run(pool: &AnyPool, app_id: &str, id: &str) -> StoreResult<Option<RunRow>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        run_columns!(),
        " FROM runs WHERE app_id = $1 AND id = $2"
    ))
    .bind(app_id)
    .bind(id)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(run_from_row).transpose()
}

pub(super) async fn list_runs(
    pool: &AnyPool,
    app_id: &str,
    filter: &RunFilter,
    page: &Page,
) -> StoreResult<Vec<RunRow>> {
    let (before_at, before_id) = keyset(page);
    let rows = sqlx::query(concat!(
        "SELECT ",
        run_columns!(),
        " FROM runs
         WHERE app_id = $1
           AND ($2 IS NULL OR agent = $2)
           AND ($3 IS NULL OR status = $3)
           AND ($4 IS NULL OR end_user = $4)
           AND (created_at, id) < ($5, $6)
         ORDER BY created_at DESC, id DESC
         LIMIT $7"
    ))
    .bind(app_id)
    .bind(&filter.agent)
    .bind(filter.status.map(RunStatus::as_str))
    .bind(&filter.end_user)
    .bind(before_at)
    .bind(before_id)
    .bind(limit(page.limit))
    .fetch_all(pool)
    .await?;
    runs_from_rows(&rows)
}

/// PostgreSQL locks the chosen rows and skips rows another node is claiming at the same
/// moment; SQLite has one writer at a time, so the plain statement is already exclusive.
/// Claims up to `max` queued runs in fair order ([`super::fair`]): one `GROUP BY` row per
/// stream running or queued, a plan, then each chosen stream's oldest runs by index. On
/// PostgreSQL the picks are locked `FOR UPDATE SKIP LOCKED` in one transaction, so
/// concurrent nodes take different runs; SQLite has one writer, and the final `UPDATE`
/// re-checks `status = 'queued'`, so a run is never claimed twice either way.
pub(super) async fn claim_queued_runs(
    pool: &AnyPool,
    backend: Backend,
    node: &str,
    max: u32,
    now: Millis,
    lease_until: Millis,
) -> StoreResult<Vec<RunRow>> {
    if max == 0 {
        return Ok(Vec::new());
    }
    // The queue by stream (partial index), then what runs now: nothing queued, nothing
    // more to read (the claimer asks every 250 ms).
    let queued = sqlx::query(
        "SELECT MAX(org_id) AS org_id, app_id, end_user, COUNT(*) AS queued,
                MIN(created_at) AS oldest
         FROM runs WHERE status = 'queued' GROUP BY app_id, end_user",
    )
    .fetch_all(pool)
    .await?;
    if queued.is_empty() {
        return Ok(Vec::new());
    }
    let mut running: HashMap<(String, Option<String>), u64> = HashMap::new();
    let mut shares = Shares::default();
    for r in sqlx::query(
        "SELECT MAX(org_id) AS org_id, app_id, end_user, COUNT(*) AS n
         FROM runs WHERE status = 'running' GROUP BY app_id, end_user",
    )
    .fetch_all(pool)
    .await?
    {
        let app_id: String = col(&r, "app_id")?;
        let n = u64::try_from(col::<i64>(&r, "n")?).unwrap_or(0);
        *shares.by_org.entry(col(&r, "org_id")?).or_default() += n;
        *shares.by_app.entry(app_id.clone()).or_default() += n;
        running.insert((app_id, col(&r, "end_user")?), n);
    }
    let streams = queued
        .iter()
        .map(|r| {
            let app_id: String = col(r, "app_id")?;
            let end_user: Option<String> = col(r, "end_user")?;
            Ok(Stream {
                running: running
                    .get(&(app_id.clone(), end_user.clone()))
                    .copied()
                    .unwrap_or(0),
                org_id: col(r, "org_id")?,
                app_id,
                end_user,
                queued: u64::try_from(col::<i64>(r, "queued")?).unwrap_or(0),
                oldest: col(r, "oldest")?,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    let plan = plan(streams, &shares, max as usize);
    if plan.is_empty() {
        return Ok(Vec::new());
    }
    // `end_user = $2` and `IS NULL` as two statements: both are index range scans, where
    // `IS NOT DISTINCT FROM` would not use the index on PostgreSQL.
    let (pick_user, pick_app) = match backend {
        Backend::Postgres => (
            "SELECT id FROM runs WHERE status = 'queued' AND app_id = $1 AND end_user = $2
             ORDER BY created_at, id LIMIT $3 FOR UPDATE SKIP LOCKED",
            "SELECT id FROM runs WHERE status = 'queued' AND app_id = $1 AND end_user IS NULL
             ORDER BY created_at, id LIMIT $2 FOR UPDATE SKIP LOCKED",
        ),
        Backend::Sqlite => (
            "SELECT id FROM runs WHERE status = 'queued' AND app_id = $1 AND end_user = $2
             ORDER BY created_at, id LIMIT $3",
            "SELECT id FROM runs WHERE status = 'queued' AND app_id = $1 AND end_user IS NULL
             ORDER BY created_at, id LIMIT $2",
        ),
    };
    // PostgreSQL: one transaction holds the picks' locks until the update. SQLite: no
    // transaction (a deferred one that reads, then writes, fails at once when another
    // writer committed in between); the update's own check suffices.
    let mut claim = Claim::open(pool, backend).await?;
    // Each stream's oldest runs (fewer when another node holds some), then in pick order.
    let mut by_stream: Vec<VecDeque<String>> = Vec::new();
    for (stream, n) in &plan.streams {
        let query = match &stream.end_user {
            Some(user) => sqlx::query(pick_user).bind(&stream.app_id).bind(user),
            None => sqlx::query(pick_app).bind(&stream.app_id),
        };
        let rows = query.bind(*n as i64).fetch_all(claim.connection()).await?;
        by_stream.push(
            rows.iter()
                .map(|r| col(r, "id"))
                .collect::<StoreResult<_>>()?,
        );
    }
    let ids: Vec<String> = plan
        .picks
        .iter()
        .filter_map(|&s| by_stream[s].pop_front())
        .collect();
    if ids.is_empty() {
        claim.finish().await?;
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (4..4 + ids.len()).map(|n| format!("${n}")).collect();
    let sql = format!(
        "UPDATE runs
         SET status = 'running', lease_owner = $1, lease_expires_at = $3,
             started_at = COALESCE(started_at, $2)
         WHERE status = 'queued' AND id IN ({})
         RETURNING {}",
        placeholders.join(", "),
        run_columns!()
    );
    let mut update = sqlx::query(&sql).bind(node).bind(now).bind(lease_until);
    for id in &ids {
        update = update.bind(id);
    }
    // The update and the deliveries announcing it commit together (on PostgreSQL a
    // savepoint inside the claim's transaction; on SQLite a transaction that starts
    // with its write).
    let mut tx = sqlx::Connection::begin(claim.connection()).await?;
    let rows = update.fetch_all(&mut *tx).await?;
    let runs = runs_from_rows(&rows)?;
    super::webhooks::announce(&mut tx, &runs, now).await?;
    tx.commit().await?;
    claim.finish().await?;
    // RETURNING follows no ORDER BY: start them in pick order again.
    let mut runs = runs;
    let order: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    runs.sort_by_key(|r| order.get(r.id.as_str()).copied().unwrap_or(usize::MAX));
    Ok(runs)
}

/// The connection a claim runs on: inside a transaction (PostgreSQL, where the picks'
/// row locks last until the update), or not (SQLite).
pub(super) enum Claim {
    Locked(sqlx::Transaction<'static, sqlx::Any>),
    Plain(sqlx::pool::PoolConnection<sqlx::Any>),
}

impl Claim {
    pub(super) async fn open(pool: &AnyPool, backend: Backend) -> StoreResult<Claim> {
        Ok(match backend {
            Backend::Postgres => Claim::Locked(pool.begin().await?),
            Backend::Sqlite => Claim::Plain(pool.acquire().await?),
        })
    }

    pub(super) fn connection(&mut self) -> &mut sqlx::AnyConnection {
        match self {
            Claim::Locked(tx) => tx,
            Claim::Plain(conn) => conn,
        }
    }

    pub(super) async fn finish(self) -> StoreResult<()> {
        if let Claim::Locked(tx) = self {
            tx.commit().await?;
        }
        Ok(())
    }
}

pub(super) async fn claim_run(
    pool: &AnyPool,
    id: &str,
    node: &str,
    now: Millis,
    lease_until: Millis,
) -> StoreResult<Option<RunRow>> {
    let mut tx = pool.begin().await?;
    let row = sqlx::query(concat!(
        "UPDATE runs
         SET status = 'running', lease_owner = $2, lease_expires_at = $4,
             started_at = COALESCE(started_at, $3)
         WHERE id = $1 AND status = 'queued'
         RETURNING ",
        run_columns!()
    ))
    .bind(id)
    .bind(node)
    .bind(now)
    .bind(lease_until)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(run) = row.as_ref().map(run_from_row).transpose()? else {
        return Ok(None);
    };
    super::webhooks::announce(&mut tx, std::slice::from_ref(&run), now).await?;
    tx.commit().await?;
    Ok(Some(run))
}

/// Only runs still `running` under `node` are extended; others are left alone.
pub(super) async fn renew_leases(
    pool: &AnyPool,
    node: &str,
    run_ids: &[String],
    lease_until: Millis,
) -> StoreResult<()> {
    for chunk in run_ids.chunks(IDS_PER_STATEMENT) {
        // Placeholders only ($3, $4, ...): the ids themselves are bound.
        let placeholders: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 3)).collect();
        let sql = format!(
            "UPDATE runs SET lease_expires_at = $1
             WHERE lease_owner = $2 AND status = 'running' AND id IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(lease_until).bind(node);
        for id in chunk {
            query = query.bind(id);
        }
        query.execute(pool).await?;
    }
    Ok(())
}

pub(super) async fn expired_runs(
    pool: &AnyPool,
    now: Millis,
    max: u32,
) -> StoreResult<Vec<RunRow>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        run_columns!(),
        " FROM runs WHERE status = 'running' AND lease_expires_at < $1
         ORDER BY lease_expires_at, id LIMIT $2"
    ))
    .bind(now)
    .bind(limit(max))
    .fetch_all(pool)
    .await?;
    runs_from_rows(&rows)
}

pub(super) async fn requeue_run(
    pool: &AnyPool,
    id: &str,
    expected_owner: &str,
    attempt: i32,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE runs
         SET status = 'queued', attempt = $3, lease_owner = NULL, lease_expires_at = NULL
         WHERE id = $1 AND status = 'running' AND lease_owner = $2",
    )
    .bind(id)
    .bind(expected_owner)
    .bind(i64::from(attempt))
    .execute(pool)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Which unfinished statuses an ending may replace.
pub(super) enum Unfinished {
    QueuedOrRunning,
    Queued,
    Waiting,
}

pub(super) async fn finish_run(
    pool: &AnyPool,
    id: &str,
    f: &RunFinish,
    from: Unfinished,
) -> StoreResult<bool> {
    if !f.status.is_final() {
        return Err(StoreError::Database(format!(
            "finish_run: {} is not a final run status",
            f.status
        )));
    }
    let (cpu, tokens_in, tokens_out, fetches) = usage_numbers(f.usage.as_ref());
    // The ending and the deliveries announcing it commit together.
    let mut tx = pool.begin().await?;
    let from = match from {
        Unfinished::QueuedOrRunning => "'queued', 'running', 'waiting'",
        Unfinished::Queued => "'queued'",
        Unfinished::Waiting => "'waiting'",
    };
    let sql = format!(
        "UPDATE runs
         SET status = $2, output = $3, error = $4, usage = $5, finished_at = $6,
             usage_cpu_ms = $7, usage_llm_tokens_in = $8, usage_llm_tokens_out = $9,
             usage_fetches = $10, lease_owner = NULL, lease_expires_at = NULL
         WHERE id = $1 AND status IN ({from}) AND attempt = $11
         RETURNING {}",
        run_columns!()
    );
    let row = sqlx::query(&sql)
        .bind(id)
        .bind(f.status.as_str())
        .bind(opt_json_text(&f.output))
        .bind(opt_json_text(&f.error))
        .bind(opt_json_text(&f.usage))
        .bind(f.finished_at)
        .bind(cpu)
        .bind(tokens_in)
        .bind(tokens_out)
        .bind(fetches)
        .bind(i64::from(f.attempt))
        .fetch_optional(&mut *tx)
        .await?;
    let Some(run) = row.as_ref().map(run_from_row).transpose()? else {
        return Ok(false);
    };
    super::webhooks::announce(&mut tx, std::slice::from_ref(&run), f.finished_at).await?;
    // An ended run waits for nothing: its wait row leaves the waker's index, and signals
    // nobody can take any more go.
    sqlx::query("DELETE FROM run_waits WHERE run_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM run_signals WHERE run_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn runs_of_node(pool: &AnyPool, node: &str) -> StoreResult<Vec<RunRow>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        run_columns!(),
        " FROM runs WHERE lease_owner = $1 AND status IN ('queued', 'running')
         ORDER BY created_at, id"
    ))
    .bind(node)
    .fetch_all(pool)
    .await?;
    runs_from_rows(&rows)
}

pub(super) async fn queue_depth(pool: &AnyPool) -> StoreResult<i64> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM runs WHERE status = 'queued'")
        .fetch_one(pool)
        .await?;
    Ok(n)
}

/// Totals over runs of the org (or one app) that finished at or after `since`.
pub(super) async fn usage(
    pool: &AnyPool,
    org_id: &str,
    app_id: Option<&str>,
    since: Millis,
) -> StoreResult<UsageTotals> {
    // SUM of BIGINT is NUMERIC in PostgreSQL, which the Any driver cannot decode: cast back.
    let row = sqlx::query(
        "SELECT COUNT(*) AS runs,
                CAST(COALESCE(SUM(usage_cpu_ms), 0) AS DOUBLE PRECISION) AS cpu_ms,
                CAST(COALESCE(SUM(usage_llm_tokens_in), 0) AS BIGINT) AS llm_tokens_in,
                CAST(COALESCE(SUM(usage_llm_tokens_out), 0) AS BIGINT) AS llm_tokens_out,
                CAST(COALESCE(SUM(usage_fetches), 0) AS BIGINT) AS fetches
         FROM runs
         WHERE org_id = $1 AND ($2 IS NULL OR app_id = $2)
           AND finished_at IS NOT NULL AND finished_at >= $3",
    )
    .bind(org_id)
    .bind(app_id)
    .bind(since)
    .fetch_one(pool)
    .await?;
    Ok(UsageTotals {
        runs: col(&row, "runs")?,
        cpu_ms: col(&row, "cpu_ms")?,
        llm_tokens_in: col(&row, "llm_tokens_in")?,
        llm_tokens_out: col(&row, "llm_tokens_out")?,
        fetches: col(&row, "fetches")?,
    })
}
