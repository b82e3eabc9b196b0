//! The isolate pool: worker threads that run agents, a bounded queue in front of them,
//! and a `Send` handle to submit runs from anywhere.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

use super::limits::{Breach, Watchdog, WorkerMeter};
use super::record::{ErrorCode, RunError, RunOutcome, Usage};
use super::run::RunRequest;
use super::shared::{lock, RunShared, Unanswered};
use super::worker;

/// How the pool sizes itself. Defaults suit one node; tests shrink them.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PoolConfig {
    /// Worker threads kept alive (default: one per core).
    pub min_threads: usize,
    /// Threads added on demand, while every worker is full, up to this many.
    pub max_threads: usize,
    /// Runs one thread hosts at once.
    pub max_live_per_thread: usize,
    /// Isolates one thread creates in its lifetime before it is retired.
    pub isolates_per_thread: usize,
    /// Runs waiting for a worker before `submit` answers `Saturated`.
    pub queue_capacity: usize,
    /// Blank isolates each worker keeps ready.
    pub prewarm: usize,
    /// Heap limit of blank isolates (the ceiling most runs use), in MiB.
    pub heap_mb: u64,
    /// How long a cancelled run may react to `ctx.signal` before it is terminated.
    pub cancel_grace: Duration,
    pub watchdog_tick: Duration,
    /// A worker whose condemned run is still inside one poll after this long is stuck
    /// (something holds the thread where termination cannot reach): its runs are ended
    /// and a new thread replaces it.
    pub stuck_after: Duration,
    /// A thread above `min_threads` that got no run for this long exits.
    pub idle_thread_timeout: Duration,
    pub thread_stack_bytes: usize,
    /// Restore isolates from a startup snapshot of runtime-js (made once per process).
    pub use_snapshot: bool,
}

/// Isolates a thread may create before v8x's per-thread native-function table (16-bit
/// indices, never cleared) fills up; see notes/quickjs-engine.md. Measured here: creation
/// fails after 145 isolates restored from our snapshot (229 bootstrapped from source), so
/// 96 keeps a third in reserve. V8 has no such table.
#[cfg(feature = "quickjs")]
pub const DEFAULT_ISOLATES_PER_THREAD: usize = 96;
#[cfg(not(feature = "quickjs"))]
pub const DEFAULT_ISOLATES_PER_THREAD: usize = 10_000;

impl Default for PoolConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        PoolConfig {
            min_threads: cores,
            max_threads: 64,
            max_live_per_thread: DEFAULT_ISOLATES_PER_THREAD.min(256),
            isolates_per_thread: DEFAULT_ISOLATES_PER_THREAD,
            queue_capacity: 10_000,
            prewarm: 2,
            heap_mb: 64,
            cancel_grace: Duration::from_millis(50),
            watchdog_tick: Duration::from_millis(5),
            stuck_after: Duration::from_secs(1),
            idle_thread_timeout: Duration::from_secs(30),
            thread_stack_bytes: 8 * 1024 * 1024,
            use_snapshot: true,
        }
    }
}

impl PoolConfig {
    pub fn heap_bytes(&self) -> usize {
        usize::try_from(self.heap_mb.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PoolError {
    #[error("the sandbox is saturated: {0} runs are already waiting; retry later")]
    Saturated(usize),
    #[error("the sandbox is shutting down")]
    Closed,
}

#[derive(Default)]
pub(crate) struct Stats {
    pub threads_started: AtomicU64,
    pub threads_retired: AtomicU64,
    pub threads_abandoned: AtomicU64,
    pub isolates_created: AtomicU64,
    pub runs_completed: AtomicU64,
}

/// Counters of a pool, for tests, benchmarks and `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    pub threads_alive: usize,
    pub threads_started: u64,
    pub threads_retired: u64,
    /// Threads given up on because they stopped making progress.
    pub threads_abandoned: u64,
    pub isolates_created: u64,
    pub runs_completed: u64,
    pub queued: usize,
    /// Isolates alive in the process (all pools).
    pub isolates_alive: usize,
}

pub(crate) struct Job {
    pub req: RunRequest,
    pub run: Unanswered,
}

pub(crate) struct PoolShared {
    pub config: PoolConfig,
    pub snapshot: Option<&'static [u8]>,
    pub queue: async_channel::Receiver<Job>,
    sender: async_channel::Sender<Job>,
    pub watchdog: Arc<Watchdog>,
    pub threads: AtomicUsize,
    pub idle: AtomicUsize,
    pub next_worker_id: AtomicUsize,
    pub stats: Stats,
    /// Worker threads by id, joined at shutdown (an abandoned one is let go).
    handles: Mutex<Vec<(usize, JoinHandle<()>)>>,
}

impl PoolShared {
    pub fn track_thread(&self, id: usize, handle: JoinHandle<()>) {
        let mut handles = lock(&self.handles);
        handles.retain(|(_, h)| !h.is_finished());
        handles.push((id, handle));
    }

    /// An idle thread above the minimum may leave. Racing leavers may dip below the
    /// minimum for a moment; `worker_exited` tops it up again.
    pub fn release_idle_thread(&self) -> bool {
        self.threads.load(Ordering::Acquire) > self.config.min_threads
    }

    /// Called by a worker as it leaves: replaces it if the pool still needs threads.
    pub fn worker_exited(self: &Arc<Self>) {
        let left = self.threads.fetch_sub(1, Ordering::AcqRel) - 1;
        if !self.queue.is_closed() && (left < self.config.min_threads || !self.queue.is_empty()) {
            worker::spawn(self.clone());
        }
    }

    /// Gives up on a worker thread that stopped making progress: every run it hosts
    /// ends now — the one it was stuck in with its own breach, runs past their wall
    /// clock with `timeout`, the others with `sandbox_crashed` — and is condemned, so
    /// that nothing of it runs on if the thread ever comes back; a new thread takes its
    /// place and shutdown no longer waits for it.
    fn abandon_worker(self: &Arc<Self>, meter: Arc<WorkerMeter>) {
        let (runs, stuck_in) = meter.hosted();
        for run in runs {
            let culprit = stuck_in.as_ref().is_some_and(|s| Arc::ptr_eq(s, &run));
            let breach = match run.breach() {
                Some(breach) if culprit => Some(breach),
                _ if !run.overdue_by().is_zero() && run.cancel_requested() => {
                    Some(Breach::Cancelled)
                }
                _ if !run.overdue_by().is_zero() => Some(Breach::Wall),
                _ => None,
            };
            let error = match breach {
                Some(breach) => RunError::new(
                    breach.code(),
                    format!(
                        "{}: the worker thread it held was replaced",
                        breach.code().as_str()
                    ),
                ),
                None => RunError::new(
                    ErrorCode::SandboxCrashed,
                    "the worker thread hosting this run was blocked by another run and was replaced; retry the run",
                ),
            };
            run.condemn(Breach::Crash);
            run.conclude(RunOutcome::failed(error, Usage::default()));
        }
        lock(&self.handles).retain(|(id, _)| *id != meter.id);
        self.stats.threads_abandoned.fetch_add(1, Ordering::Relaxed);
        self.worker_exited();
    }

    fn grow_if_starved(self: &Arc<Self>) {
        if self.idle.load(Ordering::Acquire) == 0
            && self.threads.load(Ordering::Acquire) < self.config.max_threads
        {
            worker::spawn(self.clone());
        }
    }
}

/// The pool. Cheap to clone; every clone submits to the same workers.
#[derive(Clone)]
pub struct Pool {
    shared: Arc<PoolShared>,
}

impl Pool {
    pub fn new(config: PoolConfig) -> std::io::Result<Pool> {
        let (sender, queue) = async_channel::bounded(config.queue_capacity.max(1));
        let snapshot = if config.use_snapshot {
            super::snapshot::runtime_snapshot()
        } else {
            None
        };
        let shared = Arc::new(PoolShared {
            snapshot,
            watchdog: Watchdog::start(config.watchdog_tick, config.stuck_after)?,
            config,
            queue,
            sender,
            threads: AtomicUsize::new(0),
            idle: AtomicUsize::new(0),
            next_worker_id: AtomicUsize::new(0),
            stats: Stats::default(),
            handles: Mutex::new(Vec::new()),
        });
        let weak = Arc::downgrade(&shared);
        shared.watchdog.on_stuck(Box::new(move |meter| {
            if let Some(shared) = weak.upgrade() {
                shared.abandon_worker(meter);
            }
        }));
        for _ in 0..shared.config.min_threads.max(1) {
            if !worker::spawn(shared.clone()) {
                return Err(std::io::Error::other("could not start worker threads"));
            }
        }
        Ok(Pool { shared })
    }

    /// Queues a run. Answers at once: `Saturated` when the queue is full.
    pub fn submit(&self, req: RunRequest) -> Result<RunHandle, PoolError> {
        let (run, outcome) = RunShared::new(
            req.run_id.clone(),
            req.services.events.clone(),
            req.events_before,
        );
        let run_id = req.run_id.clone();
        let job = Job {
            req,
            run: Unanswered(run.clone()),
        };
        match self.shared.sender.try_send(job) {
            Ok(()) => {}
            Err(async_channel::TrySendError::Full(_)) => {
                return Err(PoolError::Saturated(self.shared.sender.len()))
            }
            Err(async_channel::TrySendError::Closed(_)) => return Err(PoolError::Closed),
        }
        self.shared.grow_if_starved();
        Ok(RunHandle {
            run_id,
            canceller: RunCanceller {
                run,
                grace: self.shared.config.cancel_grace,
                relay: None,
            },
            outcome,
        })
    }

    pub fn stats(&self) -> PoolStats {
        let s = &self.shared.stats;
        PoolStats {
            threads_alive: self.shared.threads.load(Ordering::Acquire),
            threads_started: s.threads_started.load(Ordering::Relaxed),
            threads_retired: s.threads_retired.load(Ordering::Relaxed),
            threads_abandoned: s.threads_abandoned.load(Ordering::Relaxed),
            isolates_created: s.isolates_created.load(Ordering::Relaxed),
            runs_completed: s.runs_completed.load(Ordering::Relaxed),
            queued: self.shared.sender.len(),
            isolates_alive: super::isolate::alive(),
        }
    }

    /// Stops taking runs, lets running ones finish, and waits for every thread — except
    /// one the watchdog gave up on, which may never come back.
    pub fn shutdown(&self) {
        self.shared.sender.close();
        loop {
            let finished: Vec<_> = {
                let mut handles = lock(&self.shared.handles);
                if handles.is_empty() {
                    break;
                }
                let (done, running) = handles.drain(..).partition(|(_, h)| h.is_finished());
                *handles = running;
                done
            };
            for (_, handle) in finished {
                let _ = handle.join();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Tells whatever hosts a run elsewhere (a sandbox process) that it was cancelled.
pub type CancelRelay = Arc<dyn Fn() + Send + Sync>;

/// Cancels a run from any thread.
#[derive(Clone)]
pub struct RunCanceller {
    run: Arc<RunShared>,
    grace: Duration,
    relay: Option<CancelRelay>,
}

impl RunCanceller {
    /// A canceller of a run hosted in another process: `relay` passes the cancel on.
    pub fn relayed(run: Arc<RunShared>, grace: Duration, relay: CancelRelay) -> Self {
        RunCanceller {
            run,
            grace,
            relay: Some(relay),
        }
    }

    /// Whether a cancel was asked for (by [`RunCanceller::cancel`]).
    pub fn cancel_requested(&self) -> bool {
        self.run.cancel_requested()
    }

    pub fn cancel(&self) {
        self.run.request_cancel(self.grace);
        if let Some(relay) = &self.relay {
            relay();
        }
    }
}

/// A submitted run.
pub struct RunHandle {
    pub run_id: String,
    canceller: RunCanceller,
    outcome: oneshot::Receiver<RunOutcome>,
}

impl RunHandle {
    pub fn new(
        run_id: String,
        canceller: RunCanceller,
        outcome: oneshot::Receiver<RunOutcome>,
    ) -> Self {
        RunHandle {
            run_id,
            canceller,
            outcome,
        }
    }

    pub fn canceller(&self) -> RunCanceller {
        self.canceller.clone()
    }

    pub fn cancel(&self) {
        self.canceller.cancel();
    }

    /// Waits for the run to end. A worker that died mid-run yields an `internal` failure,
    /// never a hang.
    pub async fn outcome(self) -> RunOutcome {
        self.outcome.await.unwrap_or_else(|_| {
            RunOutcome::failed(
                RunError::new(
                    ErrorCode::Internal,
                    "the worker running this run stopped unexpectedly",
                ),
                Usage::default(),
            )
        })
    }
}
