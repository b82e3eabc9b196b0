//! Agents, their immutable versions, and the state a run leaves for the next one.

use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::AnyPool;

use super::util::{col, json_col, json_text, keyset, limit};
use crate::store::{Agent, AgentVersion, DeleteVersion, Millis, Page, PutVersion, StoreResult};

macro_rules! version_columns {
    () => {
        "app_id, name, version, manifest, files, digest, created_at, deprecated_at"
    };
}

fn version_from_row(r: &AnyRow) -> StoreResult<AgentVersion> {
    Ok(AgentVersion {
        app_id: col(r, "app_id")?,
        name: col(r, "name")?,
        version: col(r, "version")?,
        manifest: json_col(r, "manifest")?,
        files: json_col(r, "files")?,
        digest: col(r, "digest")?,
        created_at: col(r, "created_at")?,
        deprecated_at: col(r, "deprecated_at")?,
    })
}

fn agent_from_row(r: &AnyRow) -> StoreResult<Agent> {
    Ok(Agent {
        app_id: col(r, "app_id")?,
        name: col(r, "name")?,
        created_at: col(r, "created_at")?,
    })
}

/// Insert-or-compare in one transaction that starts with its writes: of two concurrent
/// identical uploads, one inserts and the other (which waits on the row lock in PostgreSQL,
/// on the write lock in SQLite) finds the row and compares digests.
pub(super) async fn put_agent_version(pool: &AnyPool, v: &AgentVersion) -> StoreResult<PutVersion> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO agents (app_id, name, created_at) VALUES ($1, $2, $3)
         ON CONFLICT (app_id, name) DO NOTHING",
    )
    .bind(&v.app_id)
    .bind(&v.name)
    .bind(v.created_at)
    .execute(&mut *tx)
    .await?;
    let inserted = sqlx::query(
        "INSERT INTO agent_versions (app_id, name, version, manifest, files, digest, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (app_id, name, version) DO NOTHING",
    )
    .bind(&v.app_id)
    .bind(&v.name)
    .bind(&v.version)
    .bind(json_text(&v.manifest))
    .bind(json_text(&v.files))
    .bind(&v.digest)
    .bind(v.created_at)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let outcome = if inserted > 0 {
        PutVersion::Created
    } else {
        let existing = sqlx::query(
            "SELECT digest, deleted_at FROM agent_versions
             WHERE app_id = $1 AND name = $2 AND version = $3",
        )
        .bind(&v.app_id)
        .bind(&v.name)
        .bind(&v.version)
        .fetch_one(&mut *tx)
        .await?;
        let digest: String = col(&existing, "digest")?;
        let deleted: Option<Millis> = col(&existing, "deleted_at")?;
        match (deleted, digest == v.digest) {
            (Some(_), _) => PutVersion::Deleted,
            (None, true) => PutVersion::Unchanged,
            (None, false) => PutVersion::Conflict,
        }
    };
    tx.commit().await?;
    Ok(outcome)
}

pub(super) async fn get_agent(
    pool: &AnyPool,
    app_id: &str,
    name: &str,
) -> StoreResult<Option<Agent>> {
    let row =
        sqlx::query("SELECT app_id, name, created_at FROM agents WHERE app_id = $1 AND name = $2")
            .bind(app_id)
            .bind(name)
            .fetch_optional(pool)
            .await?;
    row.as_ref().map(agent_from_row).transpose()
}

/// Newest first; the keyset's id is the agent name.
pub(super) async fn list_agents(
    pool: &AnyPool,
    app_id: &str,
    page: &Page,
) -> StoreResult<Vec<Agent>> {
    let (before_at, before_name) = keyset(page);
    let rows = sqlx::query(
        "SELECT app_id, name, created_at FROM agents
         WHERE app_id = $1 AND (created_at, name) < ($2, $3)
         ORDER BY created_at DESC, name DESC
         LIMIT $4",
    )
    .bind(app_id)
    .bind(before_at)
    .bind(before_name)
    .bind(limit(page.limit))
    .fetch_all(pool)
    .await?;
    rows.iter().map(agent_from_row).collect()
}

pub(super) async fn get_agent_version(
    pool: &AnyPool,
    app_id: &str,
    name: &str,
    version: &str,
) -> StoreResult<Option<AgentVersion>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        version_columns!(),
        " FROM agent_versions WHERE app_id = $1 AND name = $2 AND version = $3
          AND deleted_at IS NULL"
    ))
    .bind(app_id)
    .bind(name)
    .bind(version)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(version_from_row).transpose()
}

/// In upload order, without their files (`files` is `{}`): listing an agent with many
/// versions reads manifests, not every package.
pub(super) async fn list_agent_versions(
    pool: &AnyPool,
    app_id: &str,
    name: &str,
) -> StoreResult<Vec<AgentVersion>> {
    let rows = sqlx::query(
        "SELECT app_id, name, version, manifest, '{}' AS files, digest, created_at,
                deprecated_at FROM agent_versions
         WHERE app_id = $1 AND name = $2 AND deleted_at IS NULL
         ORDER BY created_at, version",
    )
    .bind(app_id)
    .bind(name)
    .fetch_all(pool)
    .await?;
    rows.iter().map(version_from_row).collect()
}

pub(super) async fn set_agent_version_deprecated(
    pool: &AnyPool,
    app_id: &str,
    name: &str,
    version: &str,
    at: Option<Millis>,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE agent_versions SET deprecated_at = $4
         WHERE app_id = $1 AND name = $2 AND version = $3 AND deleted_at IS NULL",
    )
    .bind(app_id)
    .bind(name)
    .bind(version)
    .bind(at)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// The version row is locked first (a tombstone write), then runs are looked for in a
/// statement of their own, which sees every run committed before the lock: of a delete
/// and a run that names the version, either the run is found (kept) or the run's node
/// finds no version later. A run created from a version read just before the delete, or
/// from a cache of it, may still run the deleted code once.
pub(super) async fn delete_agent_version(
    pool: &AnyPool,
    app_id: &str,
    name: &str,
    version: &str,
    at: Millis,
) -> StoreResult<DeleteVersion> {
    let mut tx = pool.begin().await?;
    let marked = sqlx::query(
        "UPDATE agent_versions SET deleted_at = $4, files = '{}'
         WHERE app_id = $1 AND name = $2 AND version = $3 AND deleted_at IS NULL",
    )
    .bind(app_id)
    .bind(name)
    .bind(version)
    .bind(at)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if marked == 0 {
        return Ok(DeleteVersion::NotFound);
    }
    let in_use = sqlx::query(
        "SELECT id FROM runs WHERE app_id = $1 AND agent = $2 AND version = $3
           AND status IN ('queued', 'running', 'waiting') LIMIT 1",
    )
    .bind(app_id)
    .bind(name)
    .bind(version)
    .fetch_optional(&mut *tx)
    .await?;
    if in_use.is_some() {
        // Dropping the transaction rolls the tombstone back.
        return Ok(DeleteVersion::InUse);
    }
    tx.commit().await?;
    Ok(DeleteVersion::Deleted)
}

pub(super) async fn state_get(
    pool: &AnyPool,
    app_id: &str,
    agent: &str,
    end_user: &str,
) -> StoreResult<Option<Value>> {
    let row = sqlx::query(
        "SELECT state FROM agent_state WHERE app_id = $1 AND agent = $2 AND end_user = $3",
    )
    .bind(app_id)
    .bind(agent)
    .bind(end_user)
    .fetch_optional(pool)
    .await?;
    row.map(|r| json_col(&r, "state")).transpose()
}

pub(super) async fn state_set(
    pool: &AnyPool,
    app_id: &str,
    agent: &str,
    end_user: &str,
    state: &Value,
    now: Millis,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO agent_state (app_id, agent, end_user, state, updated_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (app_id, agent, end_user)
         DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
    )
    .bind(app_id)
    .bind(agent)
    .bind(end_user)
    .bind(json_text(state))
    .bind(now)
    .execute(pool)
    .await?;
    Ok(())
}
