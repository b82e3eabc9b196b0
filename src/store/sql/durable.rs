//! Journals, signals and waits of durable runs.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::AnyPool;

use super::util::{col, limit, opt_json_col};
use crate::store::{
    JournalEntry, JournalIndexEntry, Millis, RunStatus, RunWait, Signal, StoreError, StoreResult,
};

const APPEND_ENTRY: &str =
    "INSERT INTO run_journal (run_id, seq, op, digest, rank, answer, created_at)
     SELECT $1, $2, $3, $4, $5, $6, $7
     WHERE EXISTS (SELECT 1 FROM runs WHERE id = $1 AND attempt = $8)
     ON CONFLICT (run_id, seq) DO NOTHING";

fn append_entry<'q>(
    e: &'q JournalEntry,
    attempt: i32,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    sqlx::query(APPEND_ENTRY)
        .bind(&e.run_id)
        .bind(e.seq)
        .bind(&e.op)
        .bind(&e.digest)
        .bind(e.rank)
        .bind(B64.encode(&e.answer))
        .bind(e.created_at)
        .bind(i64::from(attempt))
}

pub(super) async fn append_journal(
    pool: &AnyPool,
    entries: &[JournalEntry],
    attempt: i32,
) -> StoreResult<()> {
    match entries {
        [] => {}
        // One statement is atomic by itself: most appends (one call's answer) skip the
        // transaction's two extra round trips.
        [e] => {
            append_entry(e, attempt).execute(pool).await?;
        }
        _ => {
            let mut tx = pool.begin().await?;
            for e in entries {
                append_entry(e, attempt).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        }
    }
    Ok(())
}

pub(super) async fn replace_journal_answer(
    pool: &AnyPool,
    run_id: &str,
    seq: i64,
    answer: &[u8],
    attempt: i32,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE run_journal SET answer = $3 WHERE run_id = $1 AND seq = $2
         AND EXISTS (SELECT 1 FROM runs WHERE id = $1 AND attempt = $4)",
    )
    .bind(run_id)
    .bind(seq)
    .bind(B64.encode(answer))
    .bind(i64::from(attempt))
    .execute(pool)
    .await?;
    Ok(())
}

fn entry_of(r: &AnyRow) -> StoreResult<JournalEntry> {
    let answer: String = col(r, "answer")?;
    Ok(JournalEntry {
        run_id: col(r, "run_id")?,
        seq: col(r, "seq")?,
        op: col(r, "op")?,
        digest: col(r, "digest")?,
        rank: col(r, "rank")?,
        answer: B64
            .decode(answer)
            .map_err(|e| StoreError::Corrupt(format!("journal answer: {e}")))?,
        created_at: col(r, "created_at")?,
    })
}

pub(super) async fn journal(pool: &AnyPool, run_id: &str) -> StoreResult<Vec<JournalEntry>> {
    sqlx::query(
        "SELECT run_id, seq, op, digest, rank, answer, created_at FROM run_journal
         WHERE run_id = $1 ORDER BY seq",
    )
    .bind(run_id)
    .fetch_all(pool)
    .await?
    .iter()
    .map(entry_of)
    .collect()
}

pub(super) async fn journal_length(pool: &AnyPool, run_id: &str) -> StoreResult<i64> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM run_journal WHERE run_id = $1 AND seq >= 0")
        .bind(run_id)
        .fetch_one(pool)
        .await?;
    col(&row, "n")
}

pub(super) async fn journal_index(
    pool: &AnyPool,
    run_id: &str,
    after: i64,
    max: u32,
) -> StoreResult<Vec<JournalIndexEntry>> {
    sqlx::query(
        "SELECT seq, op, created_at, LENGTH(answer) AS chars,
                SUBSTR(answer, LENGTH(answer) - 1, 2) AS tail
         FROM run_journal WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    )
    .bind(run_id)
    .bind(after)
    .bind(limit(max))
    .fetch_all(pool)
    .await?
    .iter()
    .map(|r| {
        // Answers are stored as base64: their size without reading them.
        let chars: i64 = col(r, "chars")?;
        let tail: String = col(r, "tail")?;
        let padding = tail.bytes().rev().take_while(|b| *b == b'=').count() as i64;
        Ok(JournalIndexEntry {
            seq: col(r, "seq")?,
            op: col(r, "op")?,
            created_at: col(r, "created_at")?,
            bytes: chars / 4 * 3 - padding,
        })
    })
    .collect()
}

pub(super) async fn add_signal(
    pool: &AnyPool,
    s: &Signal,
    max_open: i64,
    max_open_bytes: i64,
) -> StoreResult<bool> {
    let payload = s.payload.to_string();
    let mut tx = pool.begin().await?;
    // A write first: it takes the run's row lock (PostgreSQL) or the database's write
    // lock (SQLite) until commit, so the count below sees every signal added before.
    sqlx::query("UPDATE runs SET id = id WHERE id = $1")
        .bind(&s.run_id)
        .execute(&mut *tx)
        .await?;
    let held = sqlx::query(
        "SELECT COUNT(*) AS n, COALESCE(SUM(OCTET_LENGTH(payload)), 0) AS bytes
         FROM run_signals WHERE run_id = $1 AND consumed_seq IS NULL",
    )
    .bind(&s.run_id)
    .fetch_one(&mut *tx)
    .await?;
    let (n, bytes): (i64, i64) = (col(&held, "n")?, col(&held, "bytes")?);
    if n >= max_open || bytes + payload.len() as i64 > max_open_bytes {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO run_signals (id, run_id, name, payload, created_at, consumed_seq)
         VALUES ($1, $2, $3, $4, $5, NULL)",
    )
    .bind(&s.id)
    .bind(&s.run_id)
    .bind(&s.name)
    .bind(payload)
    .bind(s.created_at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn take_signal(
    pool: &AnyPool,
    run_id: &str,
    name: &str,
    seq: i64,
) -> StoreResult<Option<Value>> {
    // One statement: the oldest open signal of the name is marked taken by this
    // position, unless this position took one already (then that one is answered).
    sqlx::query(
        "UPDATE run_signals SET consumed_seq = $3
         WHERE id = (SELECT id FROM run_signals
                     WHERE run_id = $1 AND name = $2 AND consumed_seq IS NULL
                     ORDER BY created_at, id LIMIT 1)
           AND consumed_seq IS NULL
           AND NOT EXISTS (SELECT 1 FROM run_signals WHERE run_id = $1 AND consumed_seq = $3)",
    )
    .bind(run_id)
    .bind(name)
    .bind(seq)
    .execute(pool)
    .await?;
    let row = sqlx::query(
        "SELECT payload FROM run_signals WHERE run_id = $1 AND consumed_seq = $2 AND name = $3",
    )
    .bind(run_id)
    .bind(seq)
    .bind(name)
    .fetch_optional(pool)
    .await?;
    row.as_ref()
        .map(|r| {
            let text: String = col(r, "payload")?;
            serde_json::from_str(&text)
                .map_err(|e| StoreError::Corrupt(format!("signal payload: {e}")))
        })
        .transpose()
}

pub(super) async fn suspend_run(
    pool: &AnyPool,
    run_id: &str,
    attempt: i32,
    wait: &RunWait,
) -> StoreResult<bool> {
    let mut tx = pool.begin().await?;
    let row = sqlx::query(&format!(
        "UPDATE runs SET status = 'waiting', lease_owner = NULL, lease_expires_at = NULL
         WHERE id = $1 AND status = 'running' AND attempt = $2
         RETURNING {}",
        super::runs::RUN_COLUMNS
    ))
    .bind(run_id)
    .bind(i64::from(attempt))
    .fetch_optional(&mut *tx)
    .await?;
    let Some(run) = row.as_ref().map(super::runs::run_from_row).transpose()? else {
        return Ok(false);
    };
    debug_assert_eq!(run.status, RunStatus::Waiting);
    sqlx::query("DELETE FROM run_waits WHERE run_id = $1")
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO run_waits (run_id, seq, name, schema, wake_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(run_id)
    .bind(wait.seq)
    .bind(&wait.name)
    .bind(wait.schema.as_ref().map(|s| s.to_string()))
    .bind(wait.wake_at)
    .bind(wait.created_at)
    .execute(&mut *tx)
    .await?;
    super::webhooks::announce(&mut tx, std::slice::from_ref(&run), wait.created_at).await?;
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn run_wait(pool: &AnyPool, run_id: &str) -> StoreResult<Option<RunWait>> {
    let row = sqlx::query(
        "SELECT run_id, seq, name, schema, wake_at, created_at FROM run_waits WHERE run_id = $1",
    )
    .bind(run_id)
    .fetch_optional(pool)
    .await?;
    row.as_ref()
        .map(|r| {
            Ok(RunWait {
                run_id: col(r, "run_id")?,
                seq: col(r, "seq")?,
                name: col(r, "name")?,
                schema: opt_json_col(r, "schema")?,
                wake_at: col(r, "wake_at")?,
                created_at: col(r, "created_at")?,
            })
        })
        .transpose()
}

pub(super) async fn resume_run(pool: &AnyPool, run_id: &str) -> StoreResult<bool> {
    let done =
        sqlx::query("UPDATE runs SET status = 'queued' WHERE id = $1 AND status = 'waiting'")
            .bind(run_id)
            .execute(pool)
            .await?;
    Ok(done.rows_affected() > 0)
}

pub(super) async fn due_waits(
    pool: &AnyPool,
    now: Millis,
    max: u32,
) -> StoreResult<Vec<(String, String)>> {
    sqlx::query(
        "SELECT w.run_id AS run_id, r.app_id AS app_id FROM run_waits w
         JOIN runs r ON r.id = w.run_id
         WHERE w.wake_at <= $1 AND r.status = 'waiting'
         ORDER BY w.wake_at LIMIT $2",
    )
    .bind(now)
    .bind(limit(max))
    .fetch_all(pool)
    .await?
    .iter()
    .map(|r| Ok((col(r, "run_id")?, col(r, "app_id")?)))
    .collect()
}

pub(super) async fn set_wake(pool: &AnyPool, run_id: &str, wake_at: Millis) -> StoreResult<()> {
    sqlx::query("UPDATE run_waits SET wake_at = $2 WHERE run_id = $1")
        .bind(run_id)
        .bind(wake_at)
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn count_waiting(pool: &AnyPool, app_id: &str) -> StoreResult<i64> {
    let row =
        sqlx::query("SELECT COUNT(*) AS n FROM runs WHERE app_id = $1 AND status = 'waiting'")
            .bind(app_id)
            .fetch_one(pool)
            .await?;
    col(&row, "n")
}

pub(super) async fn unresume_run(pool: &AnyPool, run_id: &str) -> StoreResult<bool> {
    let done =
        sqlx::query("UPDATE runs SET status = 'waiting' WHERE id = $1 AND status = 'queued'")
            .bind(run_id)
            .execute(pool)
            .await?;
    Ok(done.rows_affected() > 0)
}

pub(super) async fn open_signals(pool: &AnyPool, run_id: &str) -> StoreResult<i64> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM run_signals WHERE run_id = $1 AND consumed_seq IS NULL",
    )
    .bind(run_id)
    .fetch_one(pool)
    .await?;
    col(&row, "n")
}
