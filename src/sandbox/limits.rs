//! The limit enforcer: CPU and wall-clock budgets measured around every poll of a run,
//! and a watchdog thread that terminates an isolate stuck in JS past its budget.
//!
//! A CPU-bound loop never returns from its poll, so the worker cannot notice its own
//! overrun; the watchdog reads the worker thread's CPU clock from outside and calls
//! `terminate_execution` on the isolate's thread-safe handle. Whatever ended the run
//! (CPU, heap, wall clock, cancellation) is recorded once in the run's [`RunShared`],
//! and an isolate with a breach is condemned: never polled again, always dropped.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::cpu::ThreadCpuClock;
use super::record::ErrorCode;
use super::shared::{lock, RunShared};

/// What ended a run from the outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Breach {
    Cpu = 1,
    Memory = 2,
    Wall = 3,
    Cancelled = 4,
    /// The engine panicked inside a poll; the isolate cannot be trusted any more.
    Crash = 5,
}

impl Breach {
    pub(crate) fn from_u8(v: u8) -> Option<Breach> {
        Some(match v {
            1 => Breach::Cpu,
            2 => Breach::Memory,
            3 => Breach::Wall,
            4 => Breach::Cancelled,
            5 => Breach::Crash,
            _ => return None,
        })
    }

    pub fn code(self) -> ErrorCode {
        match self {
            Breach::Cpu => ErrorCode::CpuLimit,
            Breach::Memory => ErrorCode::MemoryLimit,
            Breach::Wall => ErrorCode::Timeout,
            Breach::Cancelled => ErrorCode::Cancelled,
            Breach::Crash => ErrorCode::Internal,
        }
    }

    pub fn message(self, cpu: Duration, wall: Duration, heap_mb: u64) -> String {
        match self {
            Breach::Cpu => format!(
                "the run used more than its {} ms of CPU time",
                cpu.as_millis()
            ),
            Breach::Memory => format!(
                "the run's memory (its heap, and bodies the host holds for it) grew past its {heap_mb} MiB limit"
            ),
            Breach::Wall => format!("the run did not finish within {} ms", wall.as_millis()),
            Breach::Cancelled => "the run was cancelled".to_owned(),
            Breach::Crash => {
                "the JavaScript engine failed while running this agent; the isolate was discarded"
                    .to_owned()
            }
        }
    }
}

/// The slice of JS a worker is executing right now, as the watchdog sees it.
struct ActiveSlice {
    entered_cpu: Duration,
    budget_left: Duration,
    run: Arc<RunShared>,
}

/// One per worker thread: its CPU clock, the run it is polling, if any, and the runs it
/// hosts, so that they can be ended from outside if the thread stops making progress.
pub struct WorkerMeter {
    pub id: usize,
    clock: ThreadCpuClock,
    active: Mutex<Option<ActiveSlice>>,
    runs: Mutex<Vec<Arc<RunShared>>>,
    /// Set once by the watchdog: the thread stopped making progress and was given up.
    abandoned: AtomicBool,
}

impl WorkerMeter {
    /// Must be called on the worker thread itself.
    pub fn for_current_thread(id: usize) -> Arc<WorkerMeter> {
        Arc::new(WorkerMeter {
            id,
            clock: ThreadCpuClock::current(),
            active: Mutex::new(None),
            runs: Mutex::new(Vec::new()),
            abandoned: AtomicBool::new(false),
        })
    }

    /// A run now hosted by this worker.
    pub fn host(&self, run: &Arc<RunShared>) {
        lock(&self.runs).push(run.clone());
    }

    /// A run that left this worker.
    pub fn release(&self, run: &Arc<RunShared>) {
        lock(&self.runs).retain(|r| !Arc::ptr_eq(r, run));
    }

    /// The runs on this worker, and which of them was being polled.
    pub fn hosted(&self) -> (Vec<Arc<RunShared>>, Option<Arc<RunShared>>) {
        let active = lock(&self.active).as_ref().map(|s| s.run.clone());
        (lock(&self.runs).clone(), active)
    }

    pub fn abandoned(&self) -> bool {
        self.abandoned.load(Ordering::Acquire)
    }

    /// The watchdog's check of this worker. Answers true, once, when the worker is stuck:
    /// its run was condemned `stuck_after` ago and the poll still has not returned, so
    /// the engine's termination cannot reach whatever holds the thread.
    fn inspect(&self, stuck_after: Duration) -> bool {
        let active = lock(&self.active);
        let Some(slice) = active.as_ref() else {
            // Between polls a worker only does short host work; a run of its still
            // unanswered long past its deadline means that work never returned.
            let overdue = lock(&self.runs)
                .iter()
                .any(|run| !run.concluded() && run.overdue_by() >= stuck_after);
            return overdue && !self.abandoned.swap(true, Ordering::AcqRel);
        };
        if let Some(since) = slice.run.breached_for() {
            return since >= stuck_after && !self.abandoned.swap(true, Ordering::AcqRel);
        }
        let used = self.clock.now().saturating_sub(slice.entered_cpu);
        if used > slice.budget_left {
            slice.run.condemn(Breach::Cpu);
        } else if Instant::now() >= slice.run.deadline() {
            let breach = if slice.run.cancel_requested() {
                Breach::Cancelled
            } else {
                Breach::Wall
            };
            slice.run.condemn(breach);
        }
        false
    }
}

/// Told about a worker the watchdog gave up on.
pub type StuckHandler = Box<dyn Fn(Arc<WorkerMeter>) + Send + Sync>;

/// The watchdog: a thread that inspects every registered worker each tick.
pub struct Watchdog {
    meters: Mutex<Vec<Weak<WorkerMeter>>>,
    stuck_after: Duration,
    on_stuck: Mutex<Option<StuckHandler>>,
}

impl Watchdog {
    /// Starts the watchdog thread; it stops by itself once the returned `Arc` is dropped.
    /// A worker whose condemned run does not return from its poll within `stuck_after`
    /// is handed to the handler set with [`Watchdog::on_stuck`].
    pub fn start(tick: Duration, stuck_after: Duration) -> std::io::Result<Arc<Watchdog>> {
        let watchdog = Arc::new(Watchdog {
            meters: Mutex::new(Vec::new()),
            stuck_after,
            on_stuck: Mutex::new(None),
        });
        let weak = Arc::downgrade(&watchdog);
        std::thread::Builder::new()
            .name("atoll-watchdog".into())
            .spawn(move || loop {
                std::thread::sleep(tick);
                let Some(watchdog) = weak.upgrade() else {
                    return;
                };
                let mut stuck = Vec::new();
                lock(&watchdog.meters).retain(|m| match m.upgrade() {
                    Some(meter) => {
                        if meter.inspect(watchdog.stuck_after) {
                            stuck.push(meter);
                        }
                        true
                    }
                    None => false,
                });
                for meter in stuck {
                    tracing::error!(
                        worker = meter.id,
                        "a worker thread stopped making progress; its runs are ended and it is replaced"
                    );
                    if let Some(handler) = lock(&watchdog.on_stuck).as_ref() {
                        handler(meter);
                    }
                }
            })?;
        Ok(watchdog)
    }

    pub fn on_stuck(&self, handler: StuckHandler) {
        *lock(&self.on_stuck) = Some(handler);
    }

    pub fn register(&self, meter: &Arc<WorkerMeter>) {
        lock(&self.meters).push(Arc::downgrade(meter));
    }
}

/// Per-run CPU accounting on the worker thread.
pub struct CpuBudget {
    pub limit: Duration,
    pub used: Duration,
}

/// Wraps a run's future: every poll enters the run's isolate, is timed on the thread's
/// CPU clock and is visible to the watchdog; a breach ends the future at once.
pub struct Metered<'a, F> {
    /// Always `Some` until drop, which must happen with the isolate entered.
    inner: Option<Pin<Box<F>>>,
    meter: Arc<WorkerMeter>,
    run: Arc<RunShared>,
    budget: &'a mut CpuBudget,
    isolate: super::isolate::EnteredIsolate,
    heap_limit: u64,
}

impl<'a, F> Metered<'a, F> {
    pub fn new(
        inner: F,
        meter: Arc<WorkerMeter>,
        run: Arc<RunShared>,
        budget: &'a mut CpuBudget,
        isolate: super::isolate::EnteredIsolate,
        heap_limit: u64,
    ) -> Self {
        Metered {
            inner: Some(Box::pin(inner)),
            meter,
            run,
            budget,
            isolate,
            heap_limit,
        }
    }
}

impl<F> Drop for Metered<'_, F> {
    fn drop(&mut self) {
        // A future abandoned mid-run still holds engine handles (promises, functions);
        // they may only be released inside their own isolate.
        let _entered = self.isolate.enter();
        let inner = self.inner.take();
        let _ = catch_unwind(AssertUnwindSafe(move || drop(inner)));
    }
}

impl<F: Future> Future for Metered<'_, F> {
    type Output = Result<F::Output, Breach>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(breach) = this.run.breach() {
            return Poll::Ready(Err(breach));
        }
        let entered_cpu = this.meter.clock.now();
        *lock(&this.meter.active) = Some(ActiveSlice {
            entered_cpu,
            budget_left: this.budget.limit.saturating_sub(this.budget.used),
            run: this.run.clone(),
        });
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(Err(Breach::Crash));
        };
        let polled = {
            let _entered = this.isolate.enter();
            let polled = catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx)));
            if polled.is_err() {
                // The engine answers an allocation its heap limit refused by panicking
                // in some paths (a conversion that unwraps): that is the run's memory
                // limit, not a defect of the sandbox.
                let near_limit = this.isolate.heap_used() >= this.heap_limit / 4 * 3;
                this.run.condemn(if near_limit {
                    Breach::Memory
                } else {
                    Breach::Crash
                });
            }
            polled
        };
        *lock(&this.meter.active) = None;
        this.budget.used += this.meter.clock.now().saturating_sub(entered_cpu);

        if this.budget.used > this.budget.limit {
            this.run.condemn(Breach::Cpu);
        }
        if let Some(breach) = this.run.breach() {
            return Poll::Ready(Err(breach));
        }
        match polled {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(Err(Breach::Crash)),
        }
    }
}
