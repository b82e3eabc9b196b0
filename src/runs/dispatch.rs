//! Claiming queued runs, executing them on this node's pool, and writing the outcome.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tracing::{info, info_span, warn, Instrument};

use super::adapters::StoreMemory;
use super::admission::Permit;
use super::durable;
use super::journal::StoredJournal;
use super::{package_of, version_key, Inner};
use crate::host::{HostServices, Tenant};
use crate::ids::now_ms;
use crate::process::Sandbox;
use crate::sandbox::{
    ErrorCode, EventKind, PoolError, RunCanceller, RunEvent, RunGrant, RunOutcome, RunRequest,
};
use crate::store::{RunFinish, RunRow, RunStatus, StoreError, StoreResult};

/// How `row`'s current attempt ended.
pub(crate) fn finish_record(
    row: &RunRow,
    status: RunStatus,
    output: Option<Value>,
    error: Option<Value>,
    usage: Option<Value>,
) -> RunFinish {
    RunFinish {
        status,
        attempt: row.attempt,
        output,
        error,
        usage,
        finished_at: now_ms(),
    }
}

/// Slots this node set aside for runs it is claiming. They count as taken until the run
/// is active (or the reservation is dropped), so claims racing each other — the claimer
/// and every request's `try_start` — never start more than `max_inflight` runs.
struct Reservation<'a> {
    inner: &'a Inner,
    left: usize,
}

impl<'a> Reservation<'a> {
    /// Up to `want` of the node's free slots.
    fn take(inner: &'a Inner, want: usize) -> Reservation<'a> {
        let active = inner.active.lock().unwrap_or_else(|p| p.into_inner());
        let taken = active.len() + inner.reserved.load(Ordering::Acquire);
        let left = inner.cfg.max_inflight.saturating_sub(taken).min(want);
        inner.reserved.fetch_add(left, Ordering::AcqRel);
        Reservation { inner, left }
    }

    /// One reserved slot is now held by an active run (call after inserting it).
    fn filled(&mut self) {
        if self.left > 0 {
            self.left -= 1;
            self.inner.reserved.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.inner.reserved.fetch_sub(self.left, Ordering::AcqRel);
    }
}

/// Called when this node just accepted a run: if it has room, it claims and starts the
/// run whose turn it is (`Store::claim_queued_runs` is fair across apps and end-users),
/// which is the new one unless others are waiting for their turn — a new run never jumps
/// another tenant's queue. Otherwise the claimer (here or on another node) picks it up.
pub(crate) async fn try_start(inner: &Arc<Inner>) {
    claim_and_start(inner, 1).await;
}

/// Claims queued runs while this node has room: every 250 ms, and whenever woken (a run
/// was queued or a slot freed).
pub(crate) async fn claimer(inner: Arc<Inner>) {
    loop {
        tokio::select! {
            _ = inner.stop.cancelled() => return,
            _ = inner.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        claim_and_start(&inner, 64).await;
    }
}

/// Reserves up to `want` free slots, claims that many queued runs in fair order and
/// starts them.
async fn claim_and_start(inner: &Arc<Inner>, want: usize) {
    if !inner.accepting.load(Ordering::Acquire) {
        return;
    }
    let mut slots = Reservation::take(inner, want);
    if slots.left == 0 {
        return;
    }
    let now = now_ms();
    let lease_until = now + inner.cfg.lease.as_millis() as i64;
    match inner
        .cfg
        .store
        .claim_queued_runs(&inner.cfg.node_id, slots.left as u32, now, lease_until)
        .instrument(info_span!("run.claim", limit = slots.left))
        .await
    {
        Ok(rows) => start_claimed(inner, rows, &mut slots).await,
        Err(e) => warn!(error = %e, "claiming queued runs failed; the claimer retries"),
    }
}

/// Starts the runs of one claim; once the node stops accepting (shutdown began during
/// the claim) the rest go back to the queue for another node.
async fn start_claimed(inner: &Arc<Inner>, rows: Vec<RunRow>, slots: &mut Reservation<'_>) {
    for row in rows {
        if inner.accepting.load(Ordering::Acquire) {
            execute(inner, row, slots).await;
        } else {
            let cancelled = take_pending_cancel(inner, &row.id);
            requeue_unless_cancelled(inner, &row, row.attempt, cancelled).await;
        }
    }
}

/// Why a claimed run could not be handed to the pool.
enum PrepareError {
    /// The version is gone or does not load: the run fails `package_invalid`.
    Invalid(String),
    /// The store failed: the run fails `internal`; the error is logged, never stored.
    Store(StoreError),
}

impl From<StoreError> for PrepareError {
    fn from(e: StoreError) -> Self {
        PrepareError::Store(e)
    }
}

/// Starts a claimed run on the pool; its outcome is written by a task of its own.
async fn execute(inner: &Arc<Inner>, row: RunRow, slots: &mut Reservation<'_>) {
    // The trace of one run on this node: prepare, sandbox (with each host call as a child
    // span, in sandbox processes), finish. Admission and claims have spans of their own.
    let span = info_span!(
        "run",
        run = %row.id,
        org = %row.org_id,
        app = %row.app_id,
        agent = %row.agent,
        attempt = row.attempt,
        queue_wait_ms = row.started_at.map_or(0, |t| t - row.created_at),
    );
    let prepared = prepare(inner, &row)
        .instrument(info_span!(parent: &span, "run.prepare"))
        .await;
    let error = match prepared {
        Ok((request, journal)) => {
            // Must match the sandbox's own decision (`RemoteRun::retry_on_crash`).
            let retry_on_crash = request
                .package
                .manifest
                .tries_again_after_loss(request.attempt);
            let submitted = span.in_scope(|| inner.cfg.sandbox.submit(request));
            match submitted {
                Ok(handle) => {
                    if let Some(journal) = &journal {
                        journal.set_canceller(handle.canceller());
                    }
                    become_active(inner, &row.id, handle.canceller());
                    slots.filled();
                    let inner = inner.clone();
                    tokio::spawn(async move {
                        let outcome = handle
                            .outcome()
                            .instrument(info_span!(parent: &span, "run.sandbox"))
                            .await;
                        let finish =
                            info_span!(parent: &span, "run.finish", status = %outcome.status);
                        // Parked on a wait: not an ending (whatever the isolate did after).
                        if let Some(journal) = &journal {
                            if let Some(wait) = journal.parked() {
                                let cpu = outcome.usage.cpu_ms.ceil() as u64;
                                durable::park(&inner, &row, wait, cpu)
                                    .instrument(finish)
                                    .await;
                                return;
                            }
                        }
                        if retry_on_crash && outcome.error_code() == Some(ErrorCode::SandboxCrashed)
                        {
                            retry_crashed(&inner, &row).instrument(finish).await;
                        } else {
                            complete(&inner, &row, outcome).instrument(finish).await;
                        }
                    });
                    return;
                }
                Err(PoolError::Saturated(_)) | Err(PoolError::Closed) => {
                    // Back to the queue: the claimer retries when the pool has room.
                    let cancelled = take_pending_cancel(inner, &row.id);
                    requeue_unless_cancelled(inner, &row, row.attempt, cancelled).await;
                    return;
                }
            }
        }
        Err(PrepareError::Invalid(message)) => {
            json!({ "code": "package_invalid", "message": message })
        }
        Err(PrepareError::Store(e)) => {
            warn!(run = %row.id, error = %e, "the store failed while preparing a run");
            json!({ "code": "internal", "message": "the run could not be started because storage was unavailable; start it again" })
        }
    };
    let finish = finish_record(&row, RunStatus::Failed, None, Some(error), None);
    match inner.cfg.store.finish_run(&row.id, &finish).await {
        Ok(true) => after_finish(inner, &row, &finish).await,
        Ok(false) => {}
        // Still running under a lease nobody renews: the reaper ends it.
        Err(e) => warn!(run = %row.id, error = %e, "could not fail a run that did not start"),
    }
}

/// A claimed run as the pool takes it, and its journal (sandbox processes only: waits
/// and replay live on the server side of their channel).
async fn prepare(
    inner: &Arc<Inner>,
    row: &RunRow,
) -> Result<(RunRequest, Option<Arc<StoredJournal>>), PrepareError> {
    let store = &inner.cfg.store;
    // Resolved when the run was created (versions are immutable): read again only on a
    // node that has not seen it.
    let package = match inner
        .packages
        .get(&version_key(&row.app_id, &row.agent, &row.version))
    {
        Some(package) => package,
        None => {
            let version = store
                .get_agent_version(&row.app_id, &row.agent, &row.version)
                .await?
                .ok_or_else(|| {
                    PrepareError::Invalid(format!(
                        "agent {}@{} no longer exists",
                        row.agent, row.version
                    ))
                })?;
            package_of(inner, &version).map_err(|e| PrepareError::Invalid(e.to_string()))?
        }
    };
    let end_user_key = row.end_user.clone().unwrap_or_default();
    let mut state = store
        .state_get(&row.app_id, &row.agent, &end_user_key)
        .await?;
    let journal = match &inner.cfg.sandbox {
        Sandbox::Processes(_) => {
            let journal = StoredJournal::load(
                store.clone(),
                row,
                package.manifest.durable,
                inner.cfg.journal_max_bytes,
                state,
            )
            .await?;
            state = journal.start_state();
            Some(Arc::new(journal))
        }
        Sandbox::InProcess(_) => None,
    };
    let resumes = journal.as_ref().is_some_and(|j| j.resumes());
    let clock = journal.as_ref().map(|j| j.clock());
    if resumes {
        durable::announce_resumed(inner, &row.id).await;
        inner.sink.flush().await;
    }
    // Only a retried or resumed run has events already; a first attempt skips the
    // query, which would otherwise cost every run a round trip.
    let events_before = if row.attempt > 1 || resumes {
        store.last_event(&row.id).await?.map_or(0, |e| e.seq as u64)
    } else {
        0
    };
    let request = RunRequest {
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
            // Inline isolates only: sandbox processes' waits are served by the journal.
            waits: Arc::new(crate::host::memory::LocalWaits::default()),
            clock,
        },
        trigger: row.trigger.clone(),
        attempt: row.attempt.max(1) as u32,
        events_before,
        journal: journal
            .clone()
            .map(|j| j as Arc<dyn crate::host::RunJournal>),
    };
    Ok((request, journal))
}

/// Writes a run's outcome: the record, the state for the next run, usage, the slot.
/// The sandbox's held `end` is released whatever the store answered.
async fn complete(inner: &Arc<Inner>, row: &RunRow, outcome: RunOutcome) {
    let shutdown = inner.shutting_down.load(Ordering::Acquire);
    let mut error = outcome.error.as_ref().map(|e| json!(e));
    if shutdown && outcome.status == crate::sandbox::RunStatus::Cancelled {
        error = Some(
            json!({ "code": "cancelled", "message": "the node shut down before the run finished", "reason": "shutdown" }),
        );
    }
    let finish = finish_record(
        row,
        outcome.status,
        outcome.output.clone(),
        error,
        Some(json!(outcome.usage)),
    );
    inner.metrics.observe(
        outcome.status.as_str(),
        outcome.usage.wall_ms,
        outcome.usage.cpu_ms,
    );
    let recorded = match finish_durably(inner, &row.id, &finish).await {
        Ok(true) => true,
        Ok(false) => {
            info!(run = %row.id, "run had already been finished elsewhere");
            false
        }
        Err(e) => {
            // The record stays `running` under a lease nobody renews: the reaper ends it
            // (and adds no second `end`, since this one is stored).
            warn!(run = %row.id, error = %e, "could not store a run's outcome");
            false
        }
    };
    if recorded {
        save_state(inner, row, &outcome).await;
    }
    release_permit(inner, row, outcome.usage.cpu_ms.ceil() as u64).await;
    inner.sink.release_end(&row.id);
    leave_active(inner, &row.id);
    tracing::debug!(run = %row.id, status = %finish.status, recorded, "run finished");
    if recorded {
        // Stored, state saved, slot free: whoever waits here is told without a read.
        let waiting = inner
            .waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&row.id);
        if let Some(waiting) = waiting {
            let finished = Arc::new(RunRow {
                status: finish.status,
                output: finish.output,
                error: finish.error,
                usage: finish.usage,
                finished_at: Some(finish.finished_at),
                lease_owner: None,
                lease_expires_at: None,
                ..row.clone()
            });
            for told in waiting {
                let _ = told.send(finished.clone());
            }
        }
    }
}

/// A run whose sandbox process died, for an agent with `retry_on_node_lost`: queued again
/// for its second attempt (on a new process), like a run whose node was lost.
async fn retry_crashed(inner: &Arc<Inner>, row: &RunRow) {
    // Out of `active` first: once requeued, this node may claim the run again, and that
    // attempt's entry must not be the one removed here.
    let cancelled = leave_active_cancelled(inner, &row.id);
    requeue_unless_cancelled(inner, row, row.attempt + 1, cancelled).await;
}

/// A cancel kept for a run that is not active here (see [`cancel_here`]).
fn take_pending_cancel(inner: &Inner, run_id: &str) -> bool {
    let _active = inner.active.lock().unwrap_or_else(|p| p.into_inner());
    inner
        .cancels_pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(run_id)
        .is_some()
}

/// Puts a claimed run back in the queue (at `attempt`), unless a cancel came for it
/// meanwhile: then it ends `cancelled` here, since no other node would know.
async fn requeue_unless_cancelled(inner: &Arc<Inner>, row: &RunRow, attempt: i32, cancelled: bool) {
    let store = &inner.cfg.store;
    if cancelled {
        let finish = finish_record(
            row,
            RunStatus::Cancelled,
            None,
            Some(
                json!({ "code": "cancelled", "message": "the run was cancelled before it started" }),
            ),
            None,
        );
        match finish_durably(inner, &row.id, &finish).await {
            Ok(true) => after_finish(inner, row, &finish).await,
            Ok(false) => {}
            Err(e) => warn!(run = %row.id, error = %e, "could not end a cancelled run"),
        }
        return;
    }
    match store
        .requeue_run(&row.id, &inner.cfg.node_id, attempt)
        .await
    {
        Ok(true) => info!(run = %row.id, attempt, "run requeued"),
        Ok(false) => {}
        // Still `running` under a lease nobody renews once it leaves `active`: the
        // reaper retries it.
        Err(e) => warn!(run = %row.id, error = %e, "could not requeue a run"),
    }
    release_permit(inner, row, 0).await;
}

/// The run no longer executes here: its slot on this node frees (waking the claimer, and
/// shutdown once nothing is left).
/// How long a cancel waits for a run that is being prepared on this node.
const PENDING_CANCEL: std::time::Duration = std::time::Duration::from_secs(120);

/// Cancels the run if it is active here; else, when `claimed_here` (this node holds its
/// lease, so it may be between its claim and becoming active), keeps the cancel for
/// [`become_active`]. True if the run was cancelled now.
pub(crate) fn cancel_here(inner: &Inner, run_id: &str, claimed_here: bool) -> bool {
    let active = inner.active.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(canceller) = active.get(run_id) {
        canceller.cancel();
        return true;
    }
    if claimed_here {
        let mut pending = inner
            .cancels_pending
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        pending.retain(|_, at| now.duration_since(*at) < PENDING_CANCEL);
        pending.insert(run_id.to_owned(), now);
    }
    false
}

/// Registers a run as active here, honouring a cancel that came while it was prepared
/// (both under the `active` lock, so no cancel falls between the two).
fn become_active(inner: &Inner, run_id: &str, canceller: RunCanceller) {
    let mut active = inner.active.lock().unwrap_or_else(|p| p.into_inner());
    let cancelled = inner
        .cancels_pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(run_id)
        .is_some();
    if cancelled {
        canceller.cancel();
    }
    active.insert(run_id.to_owned(), canceller);
}

pub(crate) fn leave_active(inner: &Inner, run_id: &str) {
    leave_active_cancelled(inner, run_id);
}

/// Takes the run out of `active`; true if a cancel had come for it (to its canceller,
/// or kept while it was not active yet). Under the `active` lock, like [`cancel_here`]:
/// a cancel either is seen here or finds the run gone from `active` (and its caller
/// looks at the store again).
pub(crate) fn leave_active_cancelled(inner: &Inner, run_id: &str) -> bool {
    let (idle, cancelled) = {
        let mut active = inner.active.lock().unwrap_or_else(|p| p.into_inner());
        let asked = active.remove(run_id).is_some_and(|c| c.cancel_requested());
        let kept = inner
            .cancels_pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(run_id)
            .is_some();
        (active.is_empty(), asked || kept)
    };
    if idle {
        inner.idle.notify_waiters();
    }
    inner.wake.notify_one();
    cancelled
}

/// `finish_run`, retried a few times: a store that fails briefly must not lose an
/// outcome (the run keeps its lease meanwhile, since it is still active).
async fn finish_durably(inner: &Inner, run_id: &str, finish: &RunFinish) -> StoreResult<bool> {
    let mut delay = Duration::from_millis(100);
    let mut attempt = 1;
    loop {
        match inner.cfg.store.finish_run(run_id, finish).await {
            Err(e) if attempt < 4 => {
                warn!(run = run_id, attempt, error = %e, "storing a run's outcome failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            answer => return answer,
        }
    }
}

async fn save_state(inner: &Inner, row: &RunRow, outcome: &RunOutcome) {
    if let (true, Some(state)) = (outcome.succeeded(), outcome.state.as_ref()) {
        let end_user = row.end_user.clone().unwrap_or_default();
        if let Err(e) = inner
            .cfg
            .store
            .state_set(&row.app_id, &row.agent, &end_user, state, now_ms())
            .await
        {
            warn!(run = %row.id, error = %e, "could not save the run's state");
        }
    }
}

/// The one place a run that was stored gives its admission permit back, whatever its
/// ending: finished in the sandbox ([`complete`]), or outside it ([`after_finish`]:
/// cancelled while queued, not startable, node lost), or never stored at all
/// (`RunService::create`). Releasing twice is harmless.
pub(crate) async fn release_permit(inner: &Inner, row: &RunRow, cpu_ms: u64) {
    inner.cfg.admission.release(Permit::of(row), cpu_ms).await;
}

/// What follows the record of a run that ended outside the sandbox (cancelled while
/// queued, not startable, node lost) becoming final: its slots, and an error, a status
/// and an end for stream readers.
pub(crate) async fn after_finish(inner: &Arc<Inner>, row: &RunRow, finish: &RunFinish) {
    release_permit(inner, row, 0).await;
    terminal_events(inner, row, finish).await;
    tracing::debug!(run = %row.id, status = %finish.status, "run finished");
}

/// Marks that cancellations from now on come from shutdown.
pub(crate) fn mark_shutdown(inner: &Inner) {
    inner.shutting_down.store(true, Ordering::Release);
}

/// Numbers and sends the terminal events of a run no sandbox executes (the caller has
/// made sure: it claimed the run, or its lease expired on another node). They continue
/// after the last stored event, once this node's pipeline is written out; a run whose
/// stored history already ends with `end` gets no second one.
async fn terminal_events(inner: &Arc<Inner>, row: &RunRow, finish: &RunFinish) {
    inner.sink.flush().await;
    let last = match inner.cfg.store.last_event(&row.id).await {
        Ok(last) => last,
        Err(e) => {
            // Without the last id there is no safe next one; streams of a finished run
            // close anyway.
            warn!(run = %row.id, error = %e, "could not number a run's terminal events");
            return;
        }
    };
    if last.as_ref().is_some_and(|e| e.kind == "end") {
        return;
    }
    let mut seq = last.map_or(0, |e| e.seq as u64);
    let mut send = |kind, data| {
        seq += 1;
        inner.sink.send(RunEvent {
            run_id: row.id.clone(),
            seq,
            kind,
            data,
        });
    };
    if let Some(error) = &finish.error {
        send(EventKind::Error, error.clone());
    }
    send(EventKind::Status, json!({ "status": finish.status }));
    send(EventKind::End, json!({ "status": finish.status }));
}
