//! Leases: this node renews the leases of the runs it executes; the reaper finds runs
//! whose node stopped renewing and fails them with `node_lost`, retries them once when
//! the agent's manifest sets `retry_on_node_lost`, or resumes them by replay when it sets
//! `durable`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tracing::{info, warn};

use super::dispatch::{after_finish, finish_record};
use super::{Inner, RunError};
use crate::ids::now_ms;
use crate::store::{RunRow, RunStatus};

pub(crate) async fn lease_keeper(inner: Arc<Inner>) {
    let every = inner.cfg.lease / 3;
    loop {
        tokio::select! {
            _ = inner.stop.cancelled() => {}
            _ = tokio::time::sleep(every) => {}
        }
        let ids: Vec<String> = inner
            .active
            .lock()
            .map(|a| a.keys().cloned().collect())
            .unwrap_or_default();
        if !ids.is_empty() {
            let until = now_ms() + inner.cfg.lease.as_millis() as i64;
            if let Err(e) = inner
                .cfg
                .store
                .renew_leases(&inner.cfg.node_id, &ids, until)
                .await
            {
                warn!(error = %e, "could not renew run leases");
            }
        }
        if inner.stop.is_cancelled() && ids.is_empty() {
            return;
        }
    }
}

pub(crate) async fn reaper(inner: Arc<Inner>) {
    let every = (inner.cfg.lease / 2).max(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = inner.stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        match inner.cfg.store.expired_runs(now_ms(), 100).await {
            Ok(rows) => {
                for row in rows {
                    recover(&inner, row).await;
                }
            }
            Err(e) => warn!(error = %e, "looking for expired run leases failed"),
        }
    }
}

/// Runs this node held in a previous life (a stable `ATOLL_NODE_ID` restarted) are
/// recovered at once instead of waiting for their leases to expire.
pub(crate) async fn adopt_own_leftovers(inner: &Arc<Inner>) -> Result<(), RunError> {
    for row in inner.cfg.store.runs_of_node(&inner.cfg.node_id).await? {
        if row.status == RunStatus::Running {
            recover(inner, row).await;
        }
    }
    Ok(())
}

async fn recover(inner: &Arc<Inner>, row: RunRow) {
    // This node still executes it (its lease lapsed while the store was unreachable): the
    // lease keeper renews it, and its sandbox alone numbers its events.
    if inner
        .active
        .lock()
        .is_ok_and(|active| active.contains_key(&row.id))
    {
        return;
    }
    let store = &inner.cfg.store;
    let owner = row.lease_owner.clone().unwrap_or_default();
    let again = match store
        .get_agent_version(&row.app_id, &row.agent, &row.version)
        .await
    {
        Ok(Some(version)) => super::package_of(inner, &version).is_ok_and(|p| {
            p.manifest
                .tries_again_after_loss(u32::try_from(row.attempt).unwrap_or(u32::MAX))
        }),
        _ => false,
    };
    if again {
        match store.requeue_run(&row.id, &owner, row.attempt + 1).await {
            Ok(true) => {
                info!(run = %row.id, lost_node = %owner, "node lost: run requeued");
                inner.wake.notify_one();
            }
            Ok(false) => {}
            Err(e) => warn!(run = %row.id, error = %e, "could not requeue a lost run"),
        }
        return;
    }
    let finish = finish_record(
        &row,
        RunStatus::Failed,
        None,
        Some(
            json!({ "code": "node_lost", "message": format!("the node running this run ({owner}) stopped before it finished") }),
        ),
        None,
    );
    match store.finish_run(&row.id, &finish).await {
        Ok(true) => {
            info!(run = %row.id, lost_node = %owner, "node lost: run failed");
            after_finish(inner, &row, &finish).await;
        }
        Ok(false) => {}
        Err(e) => warn!(run = %row.id, error = %e, "could not fail a lost run"),
    }
}

/// The bus channel a node listens on for requests about the runs it executes.
fn node_channel(node: &str) -> String {
    format!("node:{node}")
}

/// Asks the node that holds `run_id` to cancel it (cancel requests may reach any node).
pub(crate) async fn request_remote_cancel(inner: &Arc<Inner>, owner: &str, run_id: &str) {
    let message = crate::bus::BusEvent {
        run_id: node_channel(owner),
        seq: 0,
        kind: "cancel".into(),
        data: json!({ "run_id": run_id }),
    };
    if let Err(e) = inner.cfg.bus.publish(&message).await {
        warn!(run = run_id, node = owner, error = %e, "could not forward a cancel to the run's node");
    }
}

/// Cancels runs of this node when another node forwards a cancel request.
pub(crate) async fn listen_for_cancels(inner: &Arc<Inner>) {
    let stream = match inner
        .cfg
        .bus
        .subscribe(&node_channel(&inner.cfg.node_id))
        .await
    {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "cannot listen for cancel requests from other nodes");
            return;
        }
    };
    let inner = inner.clone();
    tokio::spawn(async move {
        use futures::StreamExt;
        let mut stream = stream;
        loop {
            let next = tokio::select! {
                _ = inner.stop.cancelled() => return,
                next = stream.next() => next,
            };
            let Some(message) = next else {
                warn!("the bus ended the cancel-request stream; cancels from other nodes are not received until restart");
                return;
            };
            let Some(run_id) = message.data.get("run_id").and_then(|v| v.as_str()) else {
                continue;
            };
            // A run still being prepared here is cancelled as it becomes active.
            if super::dispatch::cancel_here(&inner, run_id, true) {
                info!(run = run_id, "cancelled at another node's request");
            }
        }
    });
}
