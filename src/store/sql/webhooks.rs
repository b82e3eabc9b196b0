//! Webhook endpoints, and the deliveries that announce run changes (written on the
//! connection of the change itself). Claiming and recording attempts: `deliveries`.

use std::collections::{HashMap, HashSet};

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool};

use super::util::{col, i32_col, keyset, limit};
use crate::ids::new_id;
use crate::store::{
    Delivery, DeliveryStatus, Millis, Page, RunRow, StoreError, StoreResult, WebhookEndpoint,
    WebhookEvent,
};

pub(super) const ENDPOINT_COLUMNS: &str =
    "id, org_id, app_id, url, description, events, agents, secret, \
     previous_secret, previous_until, created_at, failing_since, disabled_at, disabled_reason";
pub(super) const DELIVERY_COLUMNS: &str =
    "endpoint_id, id, app_id, event, run_id, payload, event_at, \
     status, attempts, next_attempt_at, created_at";

/// `$start, $start+1, ...` for `n` bound values.
pub(super) fn placeholders(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A filter list as stored: `,a,b,` (None stays NULL: everything).
fn filter_text<S: AsRef<str>>(items: &Option<Vec<S>>) -> Option<String> {
    items.as_ref().map(|items| {
        let mut text = String::from(",");
        for item in items {
            text.push_str(item.as_ref());
            text.push(',');
        }
        text
    })
}

fn filter_items(text: Option<String>) -> Option<Vec<String>> {
    text.map(|t| {
        t.split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    })
}

pub(super) fn endpoint_of(r: &AnyRow) -> StoreResult<WebhookEndpoint> {
    let events = filter_items(col(r, "events")?)
        .map(|names| {
            names
                .iter()
                .map(|n| {
                    WebhookEvent::parse(n)
                        .ok_or_else(|| StoreError::Corrupt(format!("unknown webhook event {n}")))
                })
                .collect::<StoreResult<Vec<_>>>()
        })
        .transpose()?;
    Ok(WebhookEndpoint {
        id: col(r, "id")?,
        org_id: col(r, "org_id")?,
        app_id: col(r, "app_id")?,
        url: col(r, "url")?,
        description: col(r, "description")?,
        events,
        agents: filter_items(col(r, "agents")?),
        secret: col(r, "secret")?,
        previous_secret: col(r, "previous_secret")?,
        previous_until: col(r, "previous_until")?,
        created_at: col(r, "created_at")?,
        failing_since: col(r, "failing_since")?,
        disabled_at: col(r, "disabled_at")?,
        disabled_reason: col(r, "disabled_reason")?,
    })
}

pub(super) fn delivery_of(r: &AnyRow) -> StoreResult<Delivery> {
    let event: String = col(r, "event")?;
    let status: String = col(r, "status")?;
    let payload: String = col(r, "payload")?;
    Ok(Delivery {
        id: col(r, "id")?,
        endpoint_id: col(r, "endpoint_id")?,
        app_id: col(r, "app_id")?,
        event: WebhookEvent::parse(&event)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown webhook event {event}")))?,
        run_id: col(r, "run_id")?,
        run: serde_json::from_str(&payload)
            .map_err(|e| StoreError::Corrupt(format!("delivery payload: {e}")))?,
        event_at: col(r, "event_at")?,
        status: DeliveryStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown delivery status {status}")))?,
        attempts: i32_col(r, "attempts")?,
        next_attempt_at: col(r, "next_attempt_at")?,
        created_at: col(r, "created_at")?,
    })
}

pub(super) async fn create_webhook(pool: &AnyPool, e: &WebhookEndpoint) -> StoreResult<()> {
    sqlx::query(&format!(
        "INSERT INTO webhook_endpoints ({ENDPOINT_COLUMNS})
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
    ))
    .bind(&e.id)
    .bind(&e.org_id)
    .bind(&e.app_id)
    .bind(&e.url)
    .bind(&e.description)
    .bind(filter_text(
        &e.events
            .as_ref()
            .map(|ev| ev.iter().map(|e| e.as_str()).collect()),
    ))
    .bind(filter_text(&e.agents))
    .bind(&e.secret)
    .bind(&e.previous_secret)
    .bind(e.previous_until)
    .bind(e.created_at)
    .bind(e.failing_since)
    .bind(e.disabled_at)
    .bind(&e.disabled_reason)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn get_webhook(
    pool: &AnyPool,
    app_id: &str,
    id: &str,
) -> StoreResult<Option<WebhookEndpoint>> {
    let row = sqlx::query(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE app_id = $1 AND id = $2"
    ))
    .bind(app_id)
    .bind(id)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(endpoint_of).transpose()
}

pub(super) async fn list_webhooks(
    pool: &AnyPool,
    app_id: &str,
    page: &Page,
) -> StoreResult<Vec<WebhookEndpoint>> {
    let (at, id) = keyset(page);
    let rows = sqlx::query(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints
         WHERE app_id = $1 AND (created_at, id) < ($2, $3)
         ORDER BY created_at DESC, id DESC LIMIT $4"
    ))
    .bind(app_id)
    .bind(at)
    .bind(id)
    .bind(limit(page.limit))
    .fetch_all(pool)
    .await?;
    rows.iter().map(endpoint_of).collect()
}

pub(super) async fn delete_webhook(pool: &AnyPool, app_id: &str, id: &str) -> StoreResult<bool> {
    // Deliveries and attempts go with it (ON DELETE CASCADE).
    let done = sqlx::query("DELETE FROM webhook_endpoints WHERE app_id = $1 AND id = $2")
        .bind(app_id)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

pub(super) async fn rotate_webhook_secret(
    pool: &AnyPool,
    app_id: &str,
    id: &str,
    secret: &str,
    previous_until: Millis,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE webhook_endpoints
         SET previous_secret = secret, previous_until = $3, secret = $4
         WHERE app_id = $1 AND id = $2",
    )
    .bind(app_id)
    .bind(id)
    .bind(previous_until)
    .bind(secret)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// An enabled endpoint of an app, with its filters.
struct Target {
    id: String,
    events: Option<Vec<String>>,
    agents: Option<Vec<String>>,
}

/// Writes the deliveries announcing these runs' new status, on the connection (and so in
/// the transaction) of the change itself. Runs of apps without an enabled endpoint (the
/// common case) cost one query in all.
pub(super) async fn announce(
    conn: &mut AnyConnection,
    runs: &[RunRow],
    now: Millis,
) -> StoreResult<()> {
    let apps: Vec<&str> = runs
        .iter()
        .map(|r| r.app_id.as_str())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    if apps.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "SELECT id, app_id, events, agents FROM webhook_endpoints
         WHERE disabled_at IS NULL AND app_id IN ({})",
        placeholders(1, apps.len())
    );
    let mut query = sqlx::query(&sql);
    for app in &apps {
        query = query.bind(*app);
    }
    let mut endpoints: HashMap<String, Vec<Target>> = HashMap::new();
    for r in query.fetch_all(&mut *conn).await? {
        endpoints
            .entry(col(&r, "app_id")?)
            .or_default()
            .push(Target {
                id: col(&r, "id")?,
                events: filter_items(col(&r, "events")?),
                agents: filter_items(col(&r, "agents")?),
            });
    }
    for run in runs {
        let (Some(targets), Some(event)) = (
            endpoints.get(&run.app_id),
            WebhookEvent::of_status(run.status),
        ) else {
            continue;
        };
        let at = match event {
            WebhookEvent::RunStarted => run.started_at,
            _ => run.finished_at,
        }
        .unwrap_or(now);
        let payload = serde_json::to_string(run)
            .map_err(|e| StoreError::Database(format!("serializing a run: {e}")))?;
        // One webhook-id per event, shared by the endpoints it goes to. A run starts and
        // ends once as far as receivers are concerned: a start claimed again (requeued
        // after a crash or by a busy node) keeps the id of the first and adds nothing.
        let message = match event {
            WebhookEvent::RunWaiting => new_id("msg"),
            WebhookEvent::RunStarted => format!("msg_{}_started", run.id),
            _ => format!("msg_{}_ended", run.id),
        };
        for target in targets {
            let wanted = target
                .events
                .as_ref()
                .is_none_or(|e| e.iter().any(|e| e == event.as_str()))
                && target
                    .agents
                    .as_ref()
                    .is_none_or(|a| a.contains(&run.agent));
            if !wanted {
                continue;
            }
            sqlx::query(&format!(
                "INSERT INTO webhook_deliveries ({DELIVERY_COLUMNS})
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, $7, $8)
                 ON CONFLICT (endpoint_id, id) DO NOTHING"
            ))
            .bind(&target.id)
            .bind(&message)
            .bind(&run.app_id)
            .bind(event.as_str())
            .bind(&run.id)
            .bind(&payload)
            .bind(at)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}
