//! Run events: appended in order per run ((run_id, seq) is unique), read back after a
//! sequence number.

use sqlx::any::AnyRow;
use sqlx::AnyPool;

use super::util::{col, json_col, json_text, limit};
use crate::store::{StoreResult, StoredEvent};

pub(super) async fn append_event(pool: &AnyPool, e: &StoredEvent) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO run_events (run_id, seq, kind, data, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&e.run_id)
    .bind(e.seq)
    .bind(&e.kind)
    .bind(json_text(&e.data))
    .bind(e.created_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// Several events in one transaction (one commit instead of one per event); an event
/// already stored is skipped, so a retried batch is harmless.
/// Events per INSERT statement (5 parameters each: well within both backends' limits).
const EVENTS_PER_STATEMENT: usize = 64;

/// One multi-row INSERT per chunk, in one transaction: a network round trip per chunk on
/// PostgreSQL, not per event.
pub(super) async fn append_events(pool: &AnyPool, events: &[StoredEvent]) -> StoreResult<()> {
    let mut tx = pool.begin().await?;
    for chunk in events.chunks(EVENTS_PER_STATEMENT) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| {
                let p = i * 5;
                format!(
                    "(${}, ${}, ${}, ${}, ${})",
                    p + 1,
                    p + 2,
                    p + 3,
                    p + 4,
                    p + 5
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO run_events (run_id, seq, kind, data, created_at) VALUES {}
             ON CONFLICT (run_id, seq) DO NOTHING",
            values.join(", ")
        );
        let mut insert = sqlx::query(&sql);
        for e in chunk {
            insert = insert
                .bind(&e.run_id)
                .bind(e.seq)
                .bind(&e.kind)
                .bind(json_text(&e.data))
                .bind(e.created_at);
        }
        insert.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The newest event of a run, if it has any.
pub(super) async fn last_event(pool: &AnyPool, run_id: &str) -> StoreResult<Option<StoredEvent>> {
    let row = sqlx::query(
        "SELECT run_id, seq, kind, data, created_at FROM run_events
         WHERE run_id = $1 ORDER BY seq DESC LIMIT 1",
    )
    .bind(run_id)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(event_of).transpose()
}

fn event_of(r: &AnyRow) -> StoreResult<StoredEvent> {
    Ok(StoredEvent {
        run_id: col(r, "run_id")?,
        seq: col(r, "seq")?,
        kind: col(r, "kind")?,
        data: json_col(r, "data")?,
        created_at: col(r, "created_at")?,
    })
}

pub(super) async fn events_after(
    pool: &AnyPool,
    run_id: &str,
    after: i64,
    max: u32,
) -> StoreResult<Vec<StoredEvent>> {
    let rows = sqlx::query(
        "SELECT run_id, seq, kind, data, created_at FROM run_events
         WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    )
    .bind(run_id)
    .bind(after)
    .bind(limit(max))
    .fetch_all(pool)
    .await?;
    rows.iter().map(event_of).collect()
}
