//! Webhook deliveries: claiming, attempts, the delivery log, manual retries.
//!
//! A delivery is due when `status = 'pending' AND next_attempt_at <= now`. A node leases
//! one by moving `next_attempt_at` to the end of its lease and naming itself in
//! `lease_owner`: should it die mid-send, the delivery falls due again by itself.

use std::collections::{HashMap, HashSet};

use serde_json::json;
use sqlx::AnyPool;

use super::runs::Claim;
use super::util::{col, i32_col, keyset, limit};
use super::webhooks::{
    delivery_of, endpoint_of, get_webhook, placeholders, DELIVERY_COLUMNS, ENDPOINT_COLUMNS,
};
use super::Backend;
use crate::store::{
    AttemptOutcome, AuditEvent, ClaimedDelivery, Delivery, DeliveryAttempt, DeliveryClaim,
    DeliveryStatus, Millis, Page, RetryDelivery, StoreResult, WebhookEndpoint,
};

pub(super) async fn claim_deliveries(
    pool: &AnyPool,
    backend: Backend,
    claim: &DeliveryClaim<'_>,
) -> StoreResult<Vec<ClaimedDelivery>> {
    let DeliveryClaim {
        node,
        now,
        lease_until,
        max,
        per_endpoint,
        busy,
    } = *claim;
    if max == 0 {
        return Ok(Vec::new());
    }
    // Due deliveries by endpoint, the longest-waiting endpoint first: an endpoint with a
    // deep backlog takes its share, never the whole claim.
    let groups = sqlx::query(
        "SELECT endpoint_id, COUNT(*) AS n, MIN(next_attempt_at) AS due FROM webhook_deliveries
         WHERE status = 'pending' AND next_attempt_at <= $1
           AND endpoint_id IN (SELECT id FROM webhook_endpoints WHERE disabled_at IS NULL)
         GROUP BY endpoint_id ORDER BY due LIMIT 256",
    )
    .bind(now)
    .fetch_all(pool)
    .await?;
    let mut wanted: Vec<(String, usize)> = Vec::new();
    let mut left = max;
    for g in &groups {
        let endpoint: String = col(g, "endpoint_id")?;
        let due = usize::try_from(col::<i64>(g, "n")?).unwrap_or(0);
        let free = per_endpoint.saturating_sub(busy.get(&endpoint).copied().unwrap_or(0));
        let n = free.min(left).min(due);
        if n > 0 {
            left -= n;
            wanted.push((endpoint, n));
        }
        if left == 0 {
            break;
        }
    }
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let pick = match backend {
        Backend::Postgres => {
            "SELECT id FROM webhook_deliveries
             WHERE endpoint_id = $1 AND status = 'pending' AND next_attempt_at <= $2
             ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED"
        }
        Backend::Sqlite => {
            "SELECT id FROM webhook_deliveries
             WHERE endpoint_id = $1 AND status = 'pending' AND next_attempt_at <= $2
             ORDER BY next_attempt_at, id LIMIT $3"
        }
    };
    // PostgreSQL holds the picks' row locks until the lease is written; on SQLite the
    // update's own condition decides (a read-then-write transaction would fail there).
    let mut claim = Claim::open(pool, backend).await?;
    let mut leased = Vec::new();
    for (endpoint, n) in &wanted {
        let conn = claim.connection();
        let ids: Vec<String> = sqlx::query(pick)
            .bind(endpoint)
            .bind(now)
            .bind(*n as i64)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| col(r, "id"))
            .collect::<StoreResult<_>>()?;
        if ids.is_empty() {
            continue;
        }
        let sql = format!(
            "UPDATE webhook_deliveries SET lease_owner = $1, next_attempt_at = $2
             WHERE endpoint_id = $3 AND status = 'pending' AND next_attempt_at <= $4
               AND id IN ({})
             RETURNING {DELIVERY_COLUMNS}",
            placeholders(5, ids.len())
        );
        let mut update = sqlx::query(&sql)
            .bind(node)
            .bind(lease_until)
            .bind(endpoint)
            .bind(now);
        for id in &ids {
            update = update.bind(id);
        }
        for r in update.fetch_all(&mut *conn).await? {
            leased.push(delivery_of(&r)?);
        }
    }
    claim.finish().await?;
    if leased.is_empty() {
        return Ok(Vec::new());
    }
    let endpoint_ids: Vec<&str> = leased
        .iter()
        .map(|d| d.endpoint_id.as_str())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let sql = format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id IN ({})",
        placeholders(1, endpoint_ids.len())
    );
    let mut query = sqlx::query(&sql);
    for id in &endpoint_ids {
        query = query.bind(*id);
    }
    let endpoints: HashMap<String, WebhookEndpoint> = query
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| endpoint_of(r).map(|e| (e.id.clone(), e)))
        .collect::<StoreResult<_>>()?;
    // An endpoint deleted meanwhile took its deliveries with it.
    Ok(leased
        .into_iter()
        .filter_map(|delivery| {
            let endpoint = endpoints.get(&delivery.endpoint_id)?.clone();
            Some(ClaimedDelivery { delivery, endpoint })
        })
        .collect())
}

pub(super) async fn finish_attempt(
    pool: &AnyPool,
    node: &str,
    claimed: &ClaimedDelivery,
    attempt: &DeliveryAttempt,
    outcome: AttemptOutcome,
    disable_after: Millis,
) -> StoreResult<Option<String>> {
    let d = &claimed.delivery;
    let (status, next) = match outcome {
        AttemptOutcome::Delivered => (DeliveryStatus::Succeeded, None),
        AttemptOutcome::Retry(at) => (DeliveryStatus::Pending, Some(at)),
        AttemptOutcome::Exhausted | AttemptOutcome::Gone => (DeliveryStatus::Failed, None),
    };
    // Starts with its write (see the module note in `mod.rs` on SQLite transactions),
    // and locks the endpoint before its deliveries, in the order `delete_webhook` takes
    // them too, so two nodes finishing attempts of one endpoint cannot deadlock.
    let mut tx = pool.begin().await?;
    sqlx::query("UPDATE webhook_endpoints SET failing_since = failing_since WHERE id = $1")
        .bind(&d.endpoint_id)
        .execute(&mut *tx)
        .await?;
    let done = sqlx::query(
        "UPDATE webhook_deliveries
         SET attempts = attempts + 1, lease_owner = NULL, next_attempt_at = $5,
             status = CASE WHEN $4 = 'pending' AND EXISTS (SELECT 1 FROM webhook_endpoints
                 WHERE id = $1 AND disabled_at IS NOT NULL) THEN 'failed' ELSE $4 END
         WHERE endpoint_id = $1 AND id = $2 AND lease_owner = $3 AND attempts = $6",
    )
    .bind(&d.endpoint_id)
    .bind(&d.id)
    .bind(node)
    .bind(status.as_str())
    .bind(next)
    .bind(i64::from(d.attempts))
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        // The lease expired and another node took it (or it was deleted): not ours.
        return Ok(None);
    }
    sqlx::query(
        "INSERT INTO webhook_attempts
             (endpoint_id, delivery_id, attempt, at, status_code, latency_ms, response, error)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&d.endpoint_id)
    .bind(&d.id)
    .bind(i64::from(attempt.attempt))
    .bind(attempt.at)
    .bind(attempt.status_code.map(i64::from))
    .bind(attempt.latency_ms)
    .bind(&attempt.response)
    .bind(&attempt.error)
    .execute(&mut *tx)
    .await?;
    let disable = match outcome {
        AttemptOutcome::Delivered => {
            sqlx::query("UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1")
                .bind(&d.endpoint_id)
                .execute(&mut *tx)
                .await?;
            None
        }
        AttemptOutcome::Gone => Some("the endpoint answered 410 Gone".to_owned()),
        AttemptOutcome::Retry(_) | AttemptOutcome::Exhausted => {
            // A streak: failures with no day-long gap between them (the longest wait
            // between retries is 10 h), so one old failure does not count toward it.
            let since: Option<Millis> = sqlx::query(
                "UPDATE webhook_endpoints
                 SET failing_since = CASE
                         WHEN failing_since IS NULL OR last_failed_at IS NULL
                              OR last_failed_at < $2 - 86400000 THEN $2
                         ELSE failing_since END,
                     last_failed_at = $2
                 WHERE id = $1 RETURNING failing_since",
            )
            .bind(&d.endpoint_id)
            .bind(attempt.at)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| col(&r, "failing_since"))
            .transpose()?
            .flatten();
            since
                .filter(|since| attempt.at - since >= disable_after)
                .map(|since| {
                    format!(
                        "every attempt failed for {} hours",
                        (attempt.at - since) / 3_600_000
                    )
                })
        }
    };
    let disabled = match disable {
        Some(reason) => {
            let changed = sqlx::query(
                "UPDATE webhook_endpoints SET disabled_at = $2, disabled_reason = $3
                 WHERE id = $1 AND disabled_at IS NULL",
            )
            .bind(&d.endpoint_id)
            .bind(attempt.at)
            .bind(&reason)
            .execute(&mut *tx)
            .await?;
            if changed.rows_affected() > 0 {
                sqlx::query(
                    "UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL
                     WHERE endpoint_id = $1 AND status = 'pending'",
                )
                .bind(&d.endpoint_id)
                .execute(&mut *tx)
                .await?;
                let audit = AuditEvent::by_system(
                    &claimed.endpoint.org_id,
                    &claimed.endpoint.app_id,
                    "webhook.disabled",
                    &d.endpoint_id,
                    json!({ "reason": reason, "url": claimed.endpoint.url }),
                    attempt.at,
                );
                super::tenants::append_audit(&mut *tx, &audit).await?;
                Some(reason)
            } else {
                None
            }
        }
        None => None,
    };
    tx.commit().await?;
    Ok(disabled)
}

pub(super) async fn list_deliveries(
    pool: &AnyPool,
    app_id: &str,
    endpoint_id: &str,
    page: &Page,
) -> StoreResult<Vec<(Delivery, Vec<DeliveryAttempt>)>> {
    let (at, id) = keyset(page);
    let deliveries = sqlx::query(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries
         WHERE app_id = $1 AND endpoint_id = $2 AND (created_at, id) < ($3, $4)
         ORDER BY created_at DESC, id DESC LIMIT $5"
    ))
    .bind(app_id)
    .bind(endpoint_id)
    .bind(at)
    .bind(id)
    .bind(limit(page.limit))
    .fetch_all(pool)
    .await?
    .iter()
    .map(delivery_of)
    .collect::<StoreResult<Vec<_>>>()?;
    if deliveries.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT delivery_id, attempt, at, status_code, latency_ms, response, error
         FROM webhook_attempts WHERE endpoint_id = $1 AND delivery_id IN ({})
         ORDER BY attempt",
        placeholders(2, deliveries.len())
    );
    let mut query = sqlx::query(&sql).bind(endpoint_id);
    for d in &deliveries {
        query = query.bind(&d.id);
    }
    let mut attempts: HashMap<String, Vec<DeliveryAttempt>> = HashMap::new();
    for r in query.fetch_all(pool).await? {
        let code: Option<i64> = col(&r, "status_code")?;
        attempts
            .entry(col(&r, "delivery_id")?)
            .or_default()
            .push(DeliveryAttempt {
                attempt: i32_col(&r, "attempt")?,
                at: col(&r, "at")?,
                status_code: code.and_then(|c| u16::try_from(c).ok()),
                latency_ms: col(&r, "latency_ms")?,
                response: col(&r, "response")?,
                error: col(&r, "error")?,
            });
    }
    Ok(deliveries
        .into_iter()
        .map(|d| {
            let tries = attempts.remove(&d.id).unwrap_or_default();
            (d, tries)
        })
        .collect())
}

pub(super) async fn retry_delivery(
    pool: &AnyPool,
    app_id: &str,
    endpoint_id: &str,
    delivery_id: &str,
    now: Millis,
) -> StoreResult<RetryDelivery> {
    let Some(endpoint) = get_webhook(pool, app_id, endpoint_id).await? else {
        return Ok(RetryDelivery::NotFound);
    };
    if endpoint.disabled_at.is_some() {
        return Ok(RetryDelivery::EndpointDisabled);
    }
    let done = sqlx::query(
        "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $4, lease_owner = NULL
         WHERE app_id = $1 AND endpoint_id = $2 AND id = $3
           AND NOT (lease_owner IS NOT NULL AND next_attempt_at > $4)",
    )
    .bind(app_id)
    .bind(endpoint_id)
    .bind(delivery_id)
    .bind(now)
    .execute(pool)
    .await?;
    if done.rows_affected() > 0 {
        return Ok(RetryDelivery::Scheduled);
    }
    let exists = sqlx::query(
        "SELECT 1 AS one FROM webhook_deliveries WHERE app_id = $1 AND endpoint_id = $2 AND id = $3",
    )
    .bind(app_id)
    .bind(endpoint_id)
    .bind(delivery_id)
    .fetch_optional(pool)
    .await?;
    Ok(if exists.is_some() {
        RetryDelivery::InFlight
    } else {
        RetryDelivery::NotFound
    })
}

pub(super) async fn purge_hooks(pool: &AnyPool, before: Millis) -> StoreResult<u64> {
    let deliveries = sqlx::query(
        "DELETE FROM webhook_deliveries
         WHERE status IN ('succeeded', 'failed') AND created_at < $1",
    )
    .bind(before)
    .execute(pool)
    .await?;
    let firings = sqlx::query("DELETE FROM trigger_firings WHERE created_at < $1")
        .bind(before)
        .execute(pool)
        .await?;
    Ok(deliveries.rows_affected() + firings.rows_affected())
}
