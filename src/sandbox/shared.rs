//! The state of one run shared between its worker thread, the watchdog and whoever holds
//! its handle: the breach that ended it, its deadline, cancellation, its event sequence
//! and the one answer it gives.
//!
//! A run is normally ended by its worker. When the worker thread stops making progress
//! (something blocked it where termination cannot reach), the pool ends the run from
//! outside instead; [`RunShared::conclude`] makes sure exactly one of them does, so a run
//! has one `end` event and one outcome whoever finishes it.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use deno_core::v8;
use serde_json::{json, Value};
use tokio::sync::{oneshot, Notify};

use super::limits::Breach;
use super::record::{ErrorCode, EventKind, RunError, RunEvent, RunOutcome, Usage};
use crate::host::EventSink;

pub struct RunShared {
    run_id: String,
    breach: AtomicU8,
    /// Nanoseconds since `epoch` at which the breach was recorded (`u64::MAX`: none).
    breached_at_ns: AtomicU64,
    /// Nanoseconds since `epoch` after which the run is over (wall clock or cancel grace).
    deadline_ns: AtomicU64,
    epoch: Instant,
    cancel_requested: AtomicBool,
    /// Wakes the run's task (and `ctx.signal`) on cancellation.
    pub cancelled: Notify,
    isolate: Mutex<Option<v8::IsolateHandle>>,
    sink: Arc<dyn EventSink>,
    /// The last event number handed out. Atomic, not locked: a worker blocked inside the
    /// sink must not keep the pool from ending its run.
    seq: AtomicU64,
    /// Set once the terminal events are out: nothing is published after `end`.
    closed: AtomicBool,
    reply: Mutex<Option<oneshot::Sender<RunOutcome>>>,
}

impl RunShared {
    /// A run not started yet (no deadline until [`RunShared::start_clock`]) whose events
    /// go to `sink`, numbered after `events_before`, and whose outcome goes to the
    /// returned receiver.
    pub fn new(
        run_id: String,
        sink: Arc<dyn EventSink>,
        events_before: u64,
    ) -> (Arc<RunShared>, oneshot::Receiver<RunOutcome>) {
        let (reply, outcome) = oneshot::channel();
        let shared = Arc::new(RunShared {
            run_id,
            breach: AtomicU8::new(0),
            breached_at_ns: AtomicU64::new(u64::MAX),
            deadline_ns: AtomicU64::new(u64::MAX),
            epoch: Instant::now(),
            cancel_requested: AtomicBool::new(false),
            cancelled: Notify::new(),
            isolate: Mutex::new(None),
            sink,
            seq: AtomicU64::new(events_before),
            closed: AtomicBool::new(false),
            reply: Mutex::new(Some(reply)),
        });
        (shared, outcome)
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Starts the wall clock when the run starts executing (queueing time is free).
    pub fn start_clock(&self, wall: Duration) {
        self.set_deadline(Instant::now() + wall);
    }

    /// Records the breach if none was recorded yet (the first cause wins) and terminates
    /// whatever JS the isolate is running.
    pub fn condemn(&self, breach: Breach) -> bool {
        let won = self
            .breach
            .compare_exchange(0, breach as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if won {
            self.breached_at_ns
                .store(self.since_epoch(Instant::now()), Ordering::Release);
        }
        if let Some(handle) = lock(&self.isolate).as_ref() {
            handle.terminate_execution();
        }
        won
    }

    pub fn breach(&self) -> Option<Breach> {
        Breach::from_u8(self.breach.load(Ordering::Acquire))
    }

    /// How long ago the breach was recorded, if there is one.
    pub fn breached_for(&self) -> Option<Duration> {
        let at = self.breached_at_ns.load(Ordering::Acquire);
        (at != u64::MAX).then(|| {
            Instant::now().saturating_duration_since(self.epoch + Duration::from_nanos(at))
        })
    }

    pub fn attach_isolate(&self, handle: v8::IsolateHandle) {
        *lock(&self.isolate) = Some(handle);
    }

    pub fn deadline(&self) -> Instant {
        self.epoch + Duration::from_nanos(self.deadline_ns.load(Ordering::Acquire))
    }

    /// How long ago the deadline passed (zero before it).
    pub fn overdue_by(&self) -> Duration {
        Instant::now().saturating_duration_since(self.deadline())
    }

    fn since_epoch(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    fn set_deadline(&self, at: Instant) {
        // Only ever moves earlier: a cancel grace shortens the wall clock, never extends it.
        self.deadline_ns
            .fetch_min(self.since_epoch(at), Ordering::AcqRel);
    }

    /// Asks the run to stop: `ctx.signal` aborts now, and the isolate is terminated when
    /// `grace` has passed.
    pub fn request_cancel(&self, grace: Duration) {
        if !self.cancel_requested.swap(true, Ordering::AcqRel) {
            self.set_deadline(Instant::now() + grace);
            self.cancelled.notify_waiters();
            self.cancelled.notify_one();
        }
    }

    pub fn cancel_requested(&self) -> bool {
        self.cancel_requested.load(Ordering::Acquire)
    }

    /// Publishes one event with the next sequence number; dropped once the run ended.
    pub fn publish(&self, kind: EventKind, data: Value) {
        if !self.closed.load(Ordering::Acquire) {
            self.send(kind, data);
        }
    }

    fn send(&self, kind: EventKind, data: Value) {
        let seq = self.seq.fetch_add(1, Ordering::AcqRel) + 1;
        self.sink.publish(RunEvent {
            run_id: self.run_id.clone(),
            seq,
            kind,
            data,
        });
    }

    /// Ends the run once: publishes its terminal events (`error` or `output`, `status`,
    /// `end`) and hands the outcome to whoever waits. Answers false, doing nothing, when
    /// the run was already concluded (by its worker or by the pool on its behalf).
    pub fn conclude(&self, outcome: RunOutcome) -> bool {
        if self.closed.swap(true, Ordering::AcqRel) {
            return false;
        }
        match (&outcome.output, &outcome.error) {
            (_, Some(error)) => self.send(EventKind::Error, json!(error)),
            (Some(output), None) => self.send(EventKind::Output, json!({ "output": output })),
            (None, None) => {}
        }
        let status = outcome.status.as_str();
        self.send(EventKind::Status, json!({ "status": status }));
        self.send(
            EventKind::End,
            json!({ "status": status, "usage": outcome.usage }),
        );
        if let Some(reply) = lock(&self.reply).take() {
            let _ = reply.send(outcome);
        }
        true
    }

    /// Ends the run without terminal events, for a run that will be tried again (its
    /// sandbox process died and the agent asked for a retry): its event stream goes on
    /// with the next attempt.
    pub fn conclude_quietly(&self, outcome: RunOutcome) -> bool {
        if self.closed.swap(true, Ordering::AcqRel) {
            return false;
        }
        if let Some(reply) = lock(&self.reply).take() {
            let _ = reply.send(outcome);
        }
        true
    }

    /// Whether the run has given its answer.
    pub fn concluded(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// Holds a run on its way through the pool; if it is dropped before the run concluded (a
/// worker that panicked, a job nobody ran) the run ends `internal` instead of leaving its
/// caller waiting forever.
pub(crate) struct Unanswered(pub Arc<RunShared>);

impl Drop for Unanswered {
    fn drop(&mut self) {
        if !self.0.concluded() {
            self.0.conclude(RunOutcome::failed(
                RunError::new(
                    ErrorCode::Internal,
                    "the worker running this run stopped unexpectedly",
                ),
                Usage::default(),
            ));
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
