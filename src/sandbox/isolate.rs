//! One isolate: a `JsRuntime` bootstrapped with atoll's runtime-js, not yet (or no
//! longer) serving a tenant, with the bookkeeping needed to run many on one thread.
//!
//! Several isolates live on one worker thread at once and finish in any order, but an
//! engine isolate must be *entered* on the thread while it runs and may only be
//! disposed while it is the current one. So an isolate is left un-entered between
//! uses: each poll enters it (see [`EnteredIsolate`]) and `Drop` enters it once more so
//! disposal finds it current.

use std::cell::{Cell, RefCell};
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use deno_core::{v8, JsRuntime, RuntimeOptions};

use super::limits::Breach;
use super::loader::PackageLoader;
use super::ops;
use super::shared::RunShared;

/// Isolates alive in this process (blank or serving a run), for metrics.
static ALIVE: AtomicUsize = AtomicUsize::new(0);

pub fn alive() -> usize {
    ALIVE.load(Ordering::Relaxed)
}

/// The function runtime-js registered at bootstrap to run an agent; kept in `OpState`.
pub struct AgentRunner(pub v8::Global<v8::Function>);

pub struct Isolate {
    runtime: ManuallyDrop<JsRuntime>,
    loader: Rc<PackageLoader>,
    /// The run whose heap limit the near-heap-limit callback enforces.
    heap_watch: Rc<RefCell<Option<Arc<RunShared>>>>,
}

impl Isolate {
    /// Creates and bootstraps an isolate whose heap may grow to `heap_limit` bytes,
    /// restoring runtime-js from `snapshot` when one is given.
    pub fn new(
        heap_limit: usize,
        snapshot: Option<&'static [u8]>,
    ) -> Result<Isolate, anyhow::Error> {
        let loader = Rc::new(PackageLoader::default());
        let mut runtime = JsRuntime::try_new(RuntimeOptions {
            module_loader: Some(loader.clone()),
            extensions: vec![ops::extension(snapshot.is_none())],
            startup_snapshot: snapshot,
            create_params: Some(v8::CreateParams::default().heap_limits(0, heap_limit)),
            ..Default::default()
        })?;
        runtime
            .execute_script("ext:atoll/finalize.js", "globalThis.__atollFinalize()")
            .map_err(|e| anyhow::anyhow!("runtime-js finalize failed: {e}"))?;
        // A blocked thread cannot be terminated: `Atomics.wait` throws instead.
        runtime.v8_isolate().set_allow_atomics_wait(false);
        let heap_watch: Rc<RefCell<Option<Arc<RunShared>>>> = Rc::default();
        let watch = heap_watch.clone();
        let handle = runtime.v8_isolate().thread_safe_handle();
        let raised = Cell::new(false);
        runtime.add_near_heap_limit_callback(move |current, _initial| {
            if let Some(run) = watch.borrow().as_ref() {
                run.condemn(Breach::Memory);
            }
            handle.terminate_execution();
            near_heap_limit_answer(current, raised.replace(true))
        });
        if !runtime.op_state().borrow().has::<AgentRunner>() {
            anyhow::bail!("runtime-js did not register the agent runner");
        }
        // Creation entered the isolate; leave it so isolates on this thread can be
        // entered and disposed in any order.
        // SAFETY: the isolate was entered exactly once, by its creation, on this thread.
        unsafe { runtime.v8_isolate().exit() };
        ALIVE.fetch_add(1, Ordering::Relaxed);
        Ok(Isolate {
            runtime: ManuallyDrop::new(runtime),
            loader,
            heap_watch,
        })
    }

    pub fn loader(&self) -> &PackageLoader {
        &self.loader
    }

    /// Makes the near-heap-limit callback condemn `run`.
    pub fn watch_heap(&self, run: Arc<RunShared>) {
        *self.heap_watch.borrow_mut() = Some(run);
    }

    pub fn thread_safe_handle(&mut self) -> v8::IsolateHandle {
        self.runtime.v8_isolate().thread_safe_handle()
    }

    /// A handle that enters this isolate for the duration of a poll.
    pub fn entry(&mut self) -> EnteredIsolate {
        let isolate: &mut v8::Isolate = self.runtime.v8_isolate();
        EnteredIsolate(NonNull::from(isolate))
    }

    pub fn runtime(&mut self) -> &mut JsRuntime {
        &mut self.runtime
    }

    /// Bytes of heap in use, read with the isolate entered.
    pub fn heap_used(&mut self) -> u64 {
        let entry = self.entry();
        let _entered = entry.enter();
        entry.heap_used()
    }
}

impl Drop for Isolate {
    fn drop(&mut self) {
        ALIVE.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: disposal requires the isolate to be the thread's current one; entering
        // it here is balanced by the exit inside the isolate's own drop.
        unsafe { self.runtime.v8_isolate().enter() };
        // Entered, no JS running, none to run again: let disposal free the heap.
        #[cfg(feature = "quickjs")]
        super::scrub::before_dispose(&mut self.runtime);
        // SAFETY: dropped exactly once, here; the isolate is entered (above).
        unsafe { ManuallyDrop::drop(&mut self.runtime) };
    }
}

/// A pointer to an isolate that can enter it on the current thread.
///
/// It is only used by [`super::limits::Metered`] while the `Isolate` it came from is
/// alive and borrowed by the run, on that isolate's own thread.
pub struct EnteredIsolate(NonNull<v8::Isolate>);

pub struct EntryGuard<'a>(&'a EnteredIsolate);

impl EnteredIsolate {
    /// Bytes of heap in use; the isolate must be entered.
    pub fn heap_used(&self) -> u64 {
        // SAFETY: see the type's doc; the caller has entered the isolate on this thread.
        let isolate = unsafe { &mut *self.0.as_ptr() };
        let stats = isolate.get_heap_statistics();
        stats.used_heap_size().max(stats.total_heap_size()) as u64
    }

    pub fn enter(&self) -> EntryGuard<'_> {
        // SAFETY: the isolate outlives this handle (see the type's doc) and enter/exit
        // are paired by the guard on the same thread.
        unsafe { self.0.as_ref().enter() };
        EntryGuard(self)
    }
}

impl Drop for EntryGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: paired with the `enter` in `EnteredIsolate::enter`.
        unsafe { self.0 .0.as_ref().exit() };
    }
}

/// What the near-heap-limit callback returns (`again`: it already answered once for this
/// isolate). V8 aborts the process if the limit is not raised, so it gets head-room to
/// unwind the termination. QuickJS gets a fixed head-room once: the termination it asked
/// for unwinds the agent's stack, and that unwinding (the uncatchable error and its
/// backtrace) must not itself run out of memory — QuickJS's error path under a failing
/// allocator is where the engine crashed. A second call gets the same limit back, so
/// allocation cannot race on past it (see notes/quickjs-engine.md).
#[cfg(feature = "quickjs")]
pub(crate) fn near_heap_limit_answer(current: usize, again: bool) -> usize {
    const UNWIND_HEADROOM: usize = 16 << 20;
    if again {
        current
    } else {
        current.saturating_add(UNWIND_HEADROOM)
    }
}

#[cfg(not(feature = "quickjs"))]
pub(crate) fn near_heap_limit_answer(current: usize, _again: bool) -> usize {
    current.saturating_mul(2)
}
