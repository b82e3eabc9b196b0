//! Memory (key-value per namespace) and idempotency records.

use serde_json::Value;
use sqlx::AnyPool;

use super::util::{col, json_col, json_text, limit, prefix_end};
use crate::store::{IdempotencyBegin, MemoryNs, Millis, StoreError, StoreResult};

pub(super) async fn memory_get(
    pool: &AnyPool,
    ns: &MemoryNs,
    key: &str,
) -> StoreResult<Option<Value>> {
    let row = sqlx::query(
        "SELECT value FROM memory
         WHERE org_id = $1 AND app_id = $2 AND scope = $3 AND end_user = $4 AND key = $5",
    )
    .bind(&ns.org_id)
    .bind(&ns.app_id)
    .bind(&ns.scope)
    .bind(&ns.end_user)
    .bind(key)
    .fetch_optional(pool)
    .await?;
    row.map(|r| json_col(&r, "value")).transpose()
}

pub(super) async fn memory_set(
    pool: &AnyPool,
    ns: &MemoryNs,
    key: &str,
    value: &Value,
    now: Millis,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO memory (org_id, app_id, scope, end_user, key, value, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (org_id, app_id, scope, end_user, key)
         DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
    )
    .bind(&ns.org_id)
    .bind(&ns.app_id)
    .bind(&ns.scope)
    .bind(&ns.end_user)
    .bind(key)
    .bind(json_text(value))
    .bind(now)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn memory_delete(pool: &AnyPool, ns: &MemoryNs, key: &str) -> StoreResult<bool> {
    let done = sqlx::query(
        "DELETE FROM memory
         WHERE org_id = $1 AND app_id = $2 AND scope = $3 AND end_user = $4 AND key = $5",
    )
    .bind(&ns.org_id)
    .bind(&ns.app_id)
    .bind(&ns.scope)
    .bind(&ns.end_user)
    .bind(key)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// The keys with `prefix` are the range [prefix, prefix_end(prefix)) in bytewise order
/// (the `memory.key` collation on both engines), so the primary key serves the scan.
pub(super) async fn memory_list(
    pool: &AnyPool,
    ns: &MemoryNs,
    prefix: &str,
    after: Option<&str>,
    max: u32,
) -> StoreResult<Vec<(String, Value)>> {
    let rows = sqlx::query(
        "SELECT key, value FROM memory
         WHERE org_id = $1 AND app_id = $2 AND scope = $3 AND end_user = $4
           AND key >= $5 AND ($6 IS NULL OR key < $6) AND ($7 IS NULL OR key > $7)
         ORDER BY key
         LIMIT $8",
    )
    .bind(&ns.org_id)
    .bind(&ns.app_id)
    .bind(&ns.scope)
    .bind(&ns.end_user)
    .bind(prefix)
    .bind(prefix_end(prefix))
    .bind(after)
    .bind(limit(max))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| Ok((col(r, "key")?, json_col(r, "value")?)))
        .collect()
}

/// How often `idempotency_begin` retries when the record it collided with vanished
/// (abandoned or purged) before it could be read.
const BEGIN_ATTEMPTS: usize = 5;

/// Insert-or-inspect: the INSERT is atomic, so of concurrent begins exactly one inserts
/// (`Started`) and the others read the row it wrote.
pub(super) async fn idempotency_begin(
    pool: &AnyPool,
    scope: &str,
    key: &str,
    request_hash: &str,
    now: Millis,
) -> StoreResult<IdempotencyBegin> {
    for _ in 0..BEGIN_ATTEMPTS {
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (scope, key, request_hash, created_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (scope, key) DO NOTHING",
        )
        .bind(scope)
        .bind(key)
        .bind(request_hash)
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected();
        if inserted > 0 {
            return Ok(IdempotencyBegin::Started);
        }
        let row = sqlx::query(
            "SELECT request_hash, status_code, body FROM idempotency_keys
             WHERE scope = $1 AND key = $2",
        )
        .bind(scope)
        .bind(key)
        .fetch_optional(pool)
        .await?;
        let Some(row) = row else { continue };
        let stored_hash: String = col(&row, "request_hash")?;
        if stored_hash != request_hash {
            return Ok(IdempotencyBegin::Mismatch);
        }
        let status: Option<i64> = col(&row, "status_code")?;
        let body: Option<String> = col(&row, "body")?;
        return Ok(match (status, body) {
            (Some(status), Some(body)) => IdempotencyBegin::Replay {
                status: u16::try_from(status).map_err(|_| {
                    StoreError::Corrupt(format!("idempotency status code {status} out of range"))
                })?,
                body,
            },
            _ => IdempotencyBegin::InProgress,
        });
    }
    Err(StoreError::Database(format!(
        "idempotency record ({scope}, {key}) kept disappearing while being read"
    )))
}

pub(super) async fn idempotency_complete(
    pool: &AnyPool,
    scope: &str,
    key: &str,
    status: u16,
    body: &str,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE idempotency_keys SET status_code = $3, body = $4 WHERE scope = $1 AND key = $2",
    )
    .bind(scope)
    .bind(key)
    .bind(i64::from(status))
    .bind(body)
    .execute(pool)
    .await?;
    Ok(())
}

/// Only an unfinished record is forgotten: a stored response stays replayable.
pub(super) async fn idempotency_abandon(pool: &AnyPool, scope: &str, key: &str) -> StoreResult<()> {
    sqlx::query(
        "DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND status_code IS NULL",
    )
    .bind(scope)
    .bind(key)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn idempotency_purge(pool: &AnyPool, before: Millis) -> StoreResult<u64> {
    let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
        .bind(before)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}
