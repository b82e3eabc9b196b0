//! The cron loop every node runs: fires the cron triggers that are due.
//!
//! Exactly once across nodes comes from the store, not from a lock: each firing's key
//! is its scheduled time, and (trigger, key) is unique, so nodes that fire the same
//! time together start one run. After downtime only the latest missed firing runs: the
//! key is the latest scheduled time not after now, whatever the trigger said was next.

use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::schedule::Schedule;
use super::trigger::{fire, FireError, TriggerConfig};
use crate::ids::now_ms;
use crate::runs::{RunError, RunService};
use crate::store::{AuditEvent, Millis, StoreResult, TriggerRow};

/// Due triggers handled per tick.
const BATCH: u32 = 100;

/// Runs until `stop`, looking for due triggers every `tick`.
pub async fn run(runs: RunService, tick: Duration, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(tick) => {}
        }
        match fire_due(&runs, now_ms()).await {
            Ok(Flow::Continue) => {}
            Ok(Flow::Stop) => return,
            Err(e) => tracing::warn!(error = %e, "cron: reading due triggers failed; retrying"),
        }
    }
}

/// Whether the loop goes on.
pub enum Flow {
    Continue,
    /// The run service is shutting down.
    Stop,
}

/// Fires every cron trigger due at `now` (the loop passes the clock; tests pass times of
/// their choosing).
pub async fn fire_due(runs: &RunService, now: Millis) -> StoreResult<Flow> {
    for trigger in runs.store().due_cron_triggers(now, BATCH).await? {
        // One trigger's failure is its own: the rest of the batch still fires.
        match fire_one(runs, &trigger, now).await {
            Ok(Flow::Continue) => {}
            Ok(Flow::Stop) => return Ok(Flow::Stop),
            Err(e) => {
                tracing::warn!(trigger = %trigger.id, error = %e, "cron: firing failed; retrying next tick")
            }
        }
    }
    Ok(Flow::Continue)
}

async fn fire_one(runs: &RunService, trigger: &TriggerRow, now: Millis) -> StoreResult<Flow> {
    let store = runs.store();
    let Some(expected) = trigger.next_fire_at else {
        return Ok(Flow::Continue);
    };
    let config = match TriggerConfig::of(trigger) {
        Ok(config) => config,
        Err(e) => {
            tracing::warn!(trigger = %trigger.id, error = %e, "cron: config unreadable; the trigger stops firing");
            store.advance_trigger(&trigger.id, expected, None).await?;
            return Ok(Flow::Continue);
        }
    };
    let (schedule, config) = match config {
        TriggerConfig::Cron(c) => match Schedule::parse(&c.schedule, &c.timezone) {
            Ok(s) => (s, c),
            Err(why) => {
                tracing::warn!(trigger = %trigger.id, %why, "cron: schedule no longer parses");
                store.advance_trigger(&trigger.id, expected, None).await?;
                return Ok(Flow::Continue);
            }
        },
        TriggerConfig::Webhook(_) => return Ok(Flow::Continue),
    };
    let scheduled = schedule
        .latest_at_or_before(now)
        .filter(|at| *at >= expected)
        .unwrap_or(expected);
    let fired = fire(
        runs,
        trigger,
        config.version.as_deref(),
        scheduled.to_string(),
        config.input.clone(),
    )
    .await;
    match fired {
        Ok((run, _)) => {
            tracing::info!(trigger = %trigger.id, run = %run.id, scheduled, "cron: fired");
        }
        Err(FireError::Run(RunError::ShuttingDown)) => return Ok(Flow::Stop),
        // The store is away: the firing stays due and the next tick tries again.
        Err(FireError::Run(RunError::Store(e))) => return Err(e),
        // Refused (quota, input, version): this firing is skipped, and the audit log says why.
        Err(e) => {
            tracing::warn!(trigger = %trigger.id, scheduled, error = %e, "cron: firing skipped");
            store
                .append_audit(&AuditEvent::by_system(
                    &trigger.org_id,
                    &trigger.app_id,
                    "trigger.skipped",
                    &trigger.id,
                    json!({ "scheduled_at": scheduled, "error": e.to_string() }),
                    now,
                ))
                .await?;
        }
    }
    // Another node may have moved it already: then this one changes nothing.
    store
        .advance_trigger(&trigger.id, expected, schedule.next_after(now))
        .await?;
    Ok(Flow::Continue)
}
