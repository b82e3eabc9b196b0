//! Durable runs on the server: parking a run that waits, signals, and resuming it (each
//! run's journal is in `journal`).
//!
//! A run that sleeps (1 s or more) or awaits a signal *parks*: the journal so far is
//! stored, its isolate ends, the run becomes `waiting` and its concurrency slots are
//! given back. A signal or its wake-up time puts it back in the queue; whichever node
//! claims it runs the same version from the start, answering every journaled call from
//! the journal, and the run goes on live past the journal's end.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tracing::{info, warn};

use super::Inner;
use crate::ids::now_ms;
use crate::sandbox::{EventKind, RunEvent};
use crate::store::{RunRow, RunStatus, RunWait};

/// Largest signal payload, and signals a run may hold untaken.
const MAX_SIGNAL_BYTES: usize = 256 * 1024;
const MAX_OPEN_SIGNALS: i64 = 1_000;
/// Bytes of payload a run may hold in signals it has not taken.
const MAX_OPEN_SIGNAL_BYTES: i64 = 16 << 20;

/// Publishes a lifecycle event of a run outside its isolate, numbered after the last one
/// stored.
async fn publish(inner: &Arc<Inner>, run_id: &str, kind: EventKind, data: Value) {
    inner.sink.flush().await;
    match inner.cfg.store.last_event(run_id).await {
        Ok(last) => inner.sink.send(RunEvent {
            run_id: run_id.to_owned(),
            seq: last.map_or(0, |e| e.seq as u64) + 1,
            kind,
            data,
        }),
        Err(e) => {
            warn!(run = %run_id, error = %e, "could not number a run's {} event", kind.as_str())
        }
    }
}

/// The run parked: it is stored `waiting` (its isolate is gone), its slots are given
/// back, and a signal that came meanwhile resumes it at once.
pub(crate) async fn park(inner: &Arc<Inner>, row: &RunRow, wait: RunWait, cpu_ms: u64) {
    let store = &inner.cfg.store;
    let limit = inner.cfg.waiting_runs_per_app;
    if store
        .count_waiting(&row.app_id)
        .await
        .is_ok_and(|n| n as u64 >= limit)
    {
        let error = json!({
            "code": "waiting_limit",
            "message": format!("the app already has {limit} waiting runs (ATOLL_WAITING_RUNS_PER_APP)"),
        });
        let finish =
            super::dispatch::finish_record(row, RunStatus::Failed, None, Some(error), None);
        if let Ok(true) = store.finish_run(&row.id, &finish).await {
            super::dispatch::after_finish(inner, row, &finish).await;
        }
        inner.sink.release_end(&row.id);
        super::dispatch::leave_active(inner, &row.id);
        return;
    }
    // The `waiting` event is numbered and stored before the run is `waiting`: until then
    // no node can resume it, so nobody else numbers an event of this run meanwhile.
    publish(
        inner,
        &row.id,
        EventKind::Waiting,
        json!({ "signal": wait.name, "wake_at": wait.wake_at }),
    )
    .await;
    inner.sink.flush().await;
    let parked = store.suspend_run(&row.id, row.attempt, &wait).await;
    super::dispatch::release_permit(inner, row, cpu_ms).await;
    inner.sink.release_end(&row.id);
    // A cancel that reached the run on its way to parking (the isolate was ending
    // anyway) is honoured now that it waits: it would otherwise resume later.
    let cancelled = super::dispatch::leave_active_cancelled(inner, &row.id);
    match parked {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            // Still `running` under a lease nobody renews: the reaper takes it from here.
            warn!(run = %row.id, error = %e, "could not park a waiting run");
            return;
        }
    }
    if cancelled
        && !inner
            .shutting_down
            .load(std::sync::atomic::Ordering::Acquire)
    {
        let finish = super::dispatch::finish_record(
            row,
            RunStatus::Cancelled,
            None,
            Some(
                json!({ "code": "cancelled", "message": "the run was cancelled while it parked" }),
            ),
            None,
        );
        match store.finish_waiting_run(&row.id, &finish).await {
            Ok(true) => super::dispatch::after_finish(inner, row, &finish).await,
            Ok(false) => {}
            Err(e) => {
                warn!(run = %row.id, error = %e, "could not end a run cancelled while it parked")
            }
        }
        return;
    }
    info!(run = %row.id, signal = ?wait.name, wake_at = ?wait.wake_at, "run parked");
    // A signal sent while the run was still on its way to parking found it running and
    // woke nobody: it is taken here, for the wait it answers.
    if let Some(name) = &wait.name {
        if let Ok(Some(_)) = store.take_signal(&row.id, name, wait.seq).await {
            resume(inner, row).await;
        }
    }
}

/// Puts a waiting run back in the queue, once its slots are taken again; a run over its
/// app's concurrency tries again a second later.
pub(crate) async fn resume(inner: &Arc<Inner>, row: &RunRow) {
    let store = &inner.cfg.store;
    // The one node whose update wins resumes it (two wakers, or a signal and a waker,
    // may try at once); only the winner takes the slots.
    match store.resume_run(&row.id).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            warn!(run = %row.id, error = %e, "could not resume a waiting run");
            return;
        }
    }
    let tenant = super::admission::RunTenant {
        org_id: &row.org_id,
        app_id: &row.app_id,
        end_user: row.end_user.as_deref(),
    };
    match inner.cfg.admission.take_slots(&tenant, &row.id).await {
        Ok(permit) => {
            // A cancel may have ended it between the resume and the slots (from
            // `queued`, releasing slots it did not hold yet): give these back.
            if let Ok(Some(now)) = store.get_run(&row.app_id, &row.id).await {
                if now.status.is_final() {
                    inner.cfg.admission.release(permit, 0).await;
                    return;
                }
            }
            info!(run = %row.id, "run resumes");
            inner.wake.notify_one();
        }
        Err(refused) => {
            info!(run = %row.id, %refused, "a waiting run waits for a slot to resume");
            // Back to waiting before a claimer takes it, to try again in a second.
            if let Ok(true) = store.unresume_run(&row.id).await {
                let _ = store.set_wake(&row.id, now_ms() + 1_000).await;
            }
        }
    }
}

/// Resumes waiting runs whose wake-up time came (sleeps ending, waits timing out, and
/// resumes that waited for a slot), on whichever node sees them first.
pub(crate) async fn waker(inner: Arc<Inner>) {
    loop {
        tokio::select! {
            () = inner.stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        let due = match inner.cfg.store.due_waits(now_ms(), 100).await {
            Ok(due) => due,
            Err(e) => {
                warn!(error = %e, "could not read waiting runs");
                continue;
            }
        };
        for (run_id, app_id) in due {
            if let Ok(Some(row)) = inner.cfg.store.get_run(&app_id, &run_id).await {
                resume(&inner, &row).await;
            }
        }
    }
}

/// Announces that a parked run runs again.
pub(crate) async fn announce_resumed(inner: &Arc<Inner>, run_id: &str) {
    publish(inner, run_id, EventKind::Resumed, json!({})).await;
}

impl super::RunService {
    /// Delivers a signal to a run of this app (`POST /v1/runs/{id}/signals/{name}`): kept
    /// for its `ctx.waitFor(name)` (first come, first taken), and a run parked on that
    /// name resumes. None when the run does not exist.
    pub async fn signal(
        &self,
        app_id: &str,
        run_id: &str,
        name: &str,
        payload: Value,
    ) -> Result<Option<RunRow>, super::RunError> {
        let store = &self.inner.cfg.store;
        let Some(row) = store.get_run(app_id, run_id).await? else {
            return Ok(None);
        };
        if row.status.is_final() {
            return Err(super::RunError::Ended(row.status));
        }
        let size = payload.to_string().len();
        if size > MAX_SIGNAL_BYTES {
            return Err(super::RunError::InputInvalid(format!(
                "a signal's payload is at most {} KiB of JSON (this one is {size} bytes)",
                MAX_SIGNAL_BYTES >> 10
            )));
        }
        // Checked against the wait the run parks on now; a signal that comes before the
        // wait is checked when the wait takes it.
        let wait = store.run_wait(run_id).await?;
        let parked_on_it = |row: &RunRow, wait: &Option<RunWait>| {
            row.status == RunStatus::Waiting
                && wait.as_ref().and_then(|w| w.name.as_deref()) == Some(name)
        };
        if parked_on_it(&row, &wait) {
            if let Some(schema) = wait.as_ref().and_then(|w| w.schema.as_ref()) {
                crate::package::check_against_schema(schema, &payload).map_err(|why| {
                    super::RunError::InputInvalid(format!(
                        "the payload does not match the schema the run waits with: {why}"
                    ))
                })?;
            }
        }
        let signal = crate::store::Signal {
            id: crate::ids::new_id("sig"),
            run_id: run_id.to_owned(),
            name: name.to_owned(),
            payload,
            created_at: now_ms(),
        };
        if !store
            .add_signal(&signal, MAX_OPEN_SIGNALS, MAX_OPEN_SIGNAL_BYTES)
            .await?
        {
            // A conflict of the moment (the run takes signals as it waits): a retry with
            // the same Idempotency-Key runs again.
            return Err(super::RunError::Busy(format!(
                "the run already holds {MAX_OPEN_SIGNALS} signals or {} MiB of signal \
                 payloads it has not taken; nothing was kept, send it again once the run \
                 has taken some",
                MAX_OPEN_SIGNAL_BYTES >> 20
            )));
        }
        // Read again after the signal is stored: a run that parked meanwhile (its own
        // check found nothing) is resumed here, so no wake-up is lost either way.
        if let Some(row) = store.get_run(app_id, run_id).await? {
            if parked_on_it(&row, &store.run_wait(run_id).await?) {
                resume(&self.inner, &row).await;
            }
        }
        Ok(store.get_run(app_id, run_id).await?)
    }
}
