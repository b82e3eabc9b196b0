//! Claiming queued runs, executing them on this node's pool, and writing the outcome.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tracing::{info, warn};

use super::adapters::{now_ms, StoreMemory};
use super::{end_user_slot_key, package_of, slot_key, Inner};
use crate::host::{HostServices, Tenant};
use crate::sandbox::{PoolError, RunGrant, RunOutcome, RunRequest};
use crate::store::{RunFinish, RunRow};

pub(crate) fn finish_record(
    status: &str,
    output: Option<Value>,
    error: Option<Value>,
    usage: Option<Value>,
) -> RunFinish {
    RunFinish {
        status: status.to_owned(),
        output,
        error,
        usage,
        finished_at: now_ms(),
    }
}

fn capacity(inner: &Inner) -> usize {
    let active = inner.active.lock().map_or(0, |a| a.len());
    inner.cfg.max_inflight.saturating_sub(active)
}

/// Claims and starts one run this node just accepted, if it has room; otherwise the
/// claimer (here or on another node) picks it up.
pub(crate) async fn try_start(inner: &Arc<Inner>, run_id: &str) {
    if capacity(inner) == 0 {
        return;
    }
    let now = now_ms();
    let lease_until = now + inner.cfg.lease.as_millis() as i64;
    match inner
        .cfg
        .store
        .claim_run(run_id, &inner.cfg.node_id, now, lease_until)
        .await
    {
        Ok(Some(row)) => execute(inner, row).await,
        Ok(None) => {}
        Err(e) => {
            warn!(run = run_id, error = %e, "could not claim a new run; the claimer will retry")
        }
    }
}

/// Claims queued runs while this node has room.
pub(crate) async fn claimer(inner: Arc<Inner>) {
    loop {
        tokio::select! {
            _ = inner.stop.cancelled() => return,
            _ = inner.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        let room = capacity(&inner);
        if room == 0 || !inner.accepting.load(Ordering::Acquire) {
            continue;
        }
        let now = now_ms();
        let lease_until = now + inner.cfg.lease.as_millis() as i64;
        match inner
            .cfg
            .store
            .claim_queued_runs(&inner.cfg.node_id, room.min(64) as u32, now, lease_until)
            .await
        {
            Ok(rows) => {
                for row in rows {
                    execute(&inner, row).await;
                }
            }
            Err(e) => warn!(error = %e, "claiming queued runs failed"),
        }
    }
}

/// Starts a claimed run on the pool; its outcome is written by a task of its own.
async fn execute(inner: &Arc<Inner>, row: RunRow) {
    match prepare(inner, &row).await {
        Ok(request) => match inner.cfg.pool.submit(request) {
            Ok(handle) => {
                if let Ok(mut active) = inner.active.lock() {
                    active.insert(row.id.clone(), handle.canceller());
                }
                let inner = inner.clone();
                tokio::spawn(async move {
                    let outcome = handle.outcome().await;
                    complete(&inner, &row, outcome).await;
                });
            }
            Err(PoolError::Saturated(_)) | Err(PoolError::Closed) => {
                // Back to the queue: the claimer retries when the pool has room.
                let _ = inner
                    .cfg
                    .store
                    .requeue_run(&row.id, &inner.cfg.node_id, row.attempt)
                    .await;
            }
        },
        Err(message) => {
            let finish = finish_record(
                "failed",
                None,
                Some(json!({ "code": "package_invalid", "message": message })),
                None,
            );
            if let Ok(true) = inner.cfg.store.finish_run(&row.id, &finish).await {
                after_finish(inner, &row, &finish, None).await;
            }
        }
    }
}

async fn prepare(inner: &Arc<Inner>, row: &RunRow) -> Result<RunRequest, String> {
    let store = &inner.cfg.store;
    let version = store
        .get_agent_version(&row.app_id, &row.agent, &row.version)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("agent {}@{} no longer exists", row.agent, row.version))?;
    let package = package_of(inner, &version).map_err(|e| e.to_string())?;
    let end_user_key = row.end_user.clone().unwrap_or_default();
    let state = store
        .state_get(&row.app_id, &row.agent, &end_user_key)
        .await
        .map_err(|e| e.to_string())?;
    // Only a retried run (its node was lost) has events already; a first attempt skips
    // the query, which would otherwise cost every run a round trip.
    let events_before = if row.attempt > 1 {
        store
            .events_after(&row.id, 0, 100_000)
            .await
            .map_err(|e| e.to_string())?
            .last()
            .map_or(0, |e| e.seq as u64)
    } else {
        0
    };
    Ok(RunRequest {
        run_id: row.id.clone(),
        grant: RunGrant::from_manifest(&package.manifest, &inner.cfg.ceilings),
        package,
        tenant: Tenant {
            org_id: row.org_id.clone(),
            app_id: row.app_id.clone(),
            end_user: row.end_user.clone(),
        },
        input: row.input.clone(),
        state,
        services: HostServices {
            memory: Arc::new(StoreMemory(store.clone())),
            tools: inner.cfg.tools.clone(),
            llm: inner.cfg.llm.clone(),
            fetcher: inner.cfg.fetcher.clone(),
            events: inner.sink.clone(),
        },
        trigger: row.trigger.clone(),
        attempt: row.attempt.max(1) as u32,
        events_before,
    })
}

/// Writes a run's outcome: the record, the state for the next run, usage, the slot.
async fn complete(inner: &Arc<Inner>, row: &RunRow, outcome: RunOutcome) {
    let shutdown = inner.shutting_down.load(Ordering::Acquire);
    let mut error = outcome.error.as_ref().map(|e| json!(e));
    if shutdown && outcome.status == crate::sandbox::RunStatus::Cancelled {
        error = Some(
            json!({ "code": "cancelled", "message": "the node shut down before the run finished", "reason": "shutdown" }),
        );
    }
    let finish = finish_record(
        outcome.status.as_str(),
        outcome.output.clone(),
        error,
        Some(json!(outcome.usage)),
    );
    inner.metrics.observe(
        outcome.status.as_str(),
        outcome.usage.wall_ms,
        outcome.usage.cpu_ms,
    );
    match inner.cfg.store.finish_run(&row.id, &finish).await {
        Ok(true) => after_finish(inner, row, &finish, Some(&outcome)).await,
        Ok(false) => info!(run = %row.id, "run had already been finished elsewhere"),
        Err(e) => warn!(run = %row.id, error = %e, "could not store a run's outcome"),
    }
    let idle = {
        let mut active = inner.active.lock().unwrap_or_else(|p| p.into_inner());
        active.remove(&row.id);
        active.is_empty()
    };
    if idle {
        inner.idle.notify_waiters();
    }
    inner.wake.notify_one();
}

/// Everything that follows a run's record becoming final.
pub(crate) async fn after_finish(
    inner: &Arc<Inner>,
    row: &RunRow,
    finish: &RunFinish,
    outcome: Option<&RunOutcome>,
) {
    let cfg = &inner.cfg;
    if let Some(outcome) = outcome {
        if let (true, Some(state)) = (outcome.succeeded(), outcome.state.as_ref()) {
            let end_user = row.end_user.clone().unwrap_or_default();
            if let Err(e) = cfg
                .store
                .state_set(&row.app_id, &row.agent, &end_user, state, now_ms())
                .await
            {
                warn!(run = %row.id, error = %e, "could not save the run's state");
            }
        }
        let cpu = outcome.usage.cpu_ms.ceil() as u64;
        let _ = cfg
            .quotas
            .add(
                &format!("cpu:app:{}", row.app_id),
                cpu,
                Duration::from_secs(86_400),
            )
            .await;
    }
    let _ = cfg
        .quotas
        .release_slot(&slot_key(&row.app_id), &row.id)
        .await;
    if let Some(end_user) = &row.end_user {
        let key = end_user_slot_key(&row.app_id, end_user);
        let _ = cfg.quotas.release_slot(&key, &row.id).await;
    }
    if outcome.is_some() {
        inner.sink.release_end(&row.id);
    } else {
        // Ended outside the sandbox (cancelled while queued, node lost, package gone):
        // stream readers still get an error and an end.
        terminal_events(inner, row, finish).await;
    }
    tracing::debug!(run = %row.id, status = %finish.status, "run finished");
}

/// Marks that cancellations from now on come from shutdown.
pub(crate) fn mark_shutdown(inner: &Inner) {
    inner.shutting_down.store(true, Ordering::Release);
}

async fn terminal_events(inner: &Arc<Inner>, row: &RunRow, finish: &RunFinish) {
    let last = inner
        .cfg
        .store
        .events_after(&row.id, 0, 100_000)
        .await
        .ok()
        .and_then(|events| events.last().map(|e| e.seq as u64))
        .unwrap_or(0);
    let mut seq = last;
    let mut send = |kind, data| {
        seq += 1;
        inner.sink.send(crate::sandbox::RunEvent {
            run_id: row.id.clone(),
            seq,
            kind,
            data,
        });
    };
    if let Some(error) = &finish.error {
        send(crate::sandbox::EventKind::Error, error.clone());
    }
    send(
        crate::sandbox::EventKind::Status,
        json!({ "status": finish.status }),
    );
    send(
        crate::sandbox::EventKind::End,
        json!({ "status": finish.status }),
    );
}
