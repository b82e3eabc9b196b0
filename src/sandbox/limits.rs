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
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use deno_core::v8;
use tokio::sync::Notify;

use super::cpu::ThreadCpuClock;
use super::record::ErrorCode;

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
    fn from_u8(v: u8) -> Option<Breach> {
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
            Breach::Memory => format!("the run's heap grew past its {heap_mb} MiB limit"),
            Breach::Wall => format!("the run did not finish within {} ms", wall.as_millis()),
            Breach::Cancelled => "the run was cancelled".to_owned(),
            Breach::Crash => {
                "the JavaScript engine failed while running this agent; the isolate was discarded"
                    .to_owned()
            }
        }
    }
}

/// State of one run shared between its worker, the watchdog and whoever holds its handle.
pub struct RunShared {
    breach: AtomicU8,
    /// Nanoseconds since `epoch` after which the run is over (wall clock or cancel grace).
    deadline_ns: AtomicU64,
    epoch: Instant,
    cancel_requested: AtomicBool,
    /// Wakes the run's task (and `ctx.signal`) on cancellation.
    pub cancelled: Notify,
    isolate: Mutex<Option<v8::IsolateHandle>>,
}

impl RunShared {
    /// A run not started yet: no deadline until [`RunShared::start_clock`].
    pub fn new() -> Arc<RunShared> {
        Arc::new(RunShared {
            breach: AtomicU8::new(0),
            deadline_ns: AtomicU64::new(u64::MAX),
            epoch: Instant::now(),
            cancel_requested: AtomicBool::new(false),
            cancelled: Notify::new(),
            isolate: Mutex::new(None),
        })
    }

    /// Starts the wall clock when the run starts executing (queueing time is free).
    pub fn start_clock(&self, wall: Duration) {
        self.set_deadline(Instant::now() + wall);
    }

    /// Records the breach if none was recorded yet; the first cause wins.
    pub fn condemn(&self, breach: Breach) -> bool {
        let won = self
            .breach
            .compare_exchange(0, breach as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if let Some(handle) = lock(&self.isolate).as_ref() {
            handle.terminate_execution();
        }
        won
    }

    pub fn breach(&self) -> Option<Breach> {
        Breach::from_u8(self.breach.load(Ordering::Acquire))
    }

    pub fn attach_isolate(&self, handle: v8::IsolateHandle) {
        *lock(&self.isolate) = Some(handle);
    }

    pub fn deadline(&self) -> Instant {
        self.epoch + Duration::from_nanos(self.deadline_ns.load(Ordering::Acquire))
    }

    fn set_deadline(&self, at: Instant) {
        let ns = at.saturating_duration_since(self.epoch).as_nanos();
        // Only ever moves earlier: a cancel grace shortens the wall clock, never extends it.
        self.deadline_ns
            .fetch_min(u64::try_from(ns).unwrap_or(u64::MAX), Ordering::AcqRel);
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
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The slice of JS a worker is executing right now, as the watchdog sees it.
struct ActiveSlice {
    entered_cpu: Duration,
    budget_left: Duration,
    run: Arc<RunShared>,
}

/// One per worker thread: its CPU clock and the run it is polling, if any.
pub struct WorkerMeter {
    clock: ThreadCpuClock,
    active: Mutex<Option<ActiveSlice>>,
}

impl WorkerMeter {
    /// Must be called on the worker thread itself.
    pub fn for_current_thread() -> Arc<WorkerMeter> {
        Arc::new(WorkerMeter {
            clock: ThreadCpuClock::current(),
            active: Mutex::new(None),
        })
    }

    /// The watchdog's check of this worker.
    fn inspect(&self) {
        let active = lock(&self.active);
        let Some(slice) = active.as_ref() else {
            return;
        };
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
    }
}

/// The watchdog: a thread that inspects every registered worker each tick.
pub struct Watchdog {
    meters: Mutex<Vec<Weak<WorkerMeter>>>,
}

impl Watchdog {
    /// Starts the watchdog thread; it stops by itself once the returned `Arc` is dropped.
    pub fn start(tick: Duration) -> std::io::Result<Arc<Watchdog>> {
        let watchdog = Arc::new(Watchdog {
            meters: Mutex::new(Vec::new()),
        });
        let weak = Arc::downgrade(&watchdog);
        std::thread::Builder::new()
            .name("atoll-watchdog".into())
            .spawn(move || loop {
                std::thread::sleep(tick);
                let Some(watchdog) = weak.upgrade() else {
                    return;
                };
                let mut meters = lock(&watchdog.meters);
                meters.retain(|m| match m.upgrade() {
                    Some(meter) => {
                        meter.inspect();
                        true
                    }
                    None => false,
                });
            })?;
        Ok(watchdog)
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
}

impl<'a, F> Metered<'a, F> {
    pub fn new(
        inner: F,
        meter: Arc<WorkerMeter>,
        run: Arc<RunShared>,
        budget: &'a mut CpuBudget,
        isolate: super::isolate::EnteredIsolate,
    ) -> Self {
        Metered {
            inner: Some(Box::pin(inner)),
            meter,
            run,
            budget,
            isolate,
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
            catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx)))
        };
        *lock(&this.meter.active) = None;
        this.budget.used += this.meter.clock.now().saturating_sub(entered_cpu);

        if polled.is_err() {
            this.run.condemn(Breach::Crash);
        }
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
