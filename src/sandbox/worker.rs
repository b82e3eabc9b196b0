//! A worker thread: a current-thread tokio runtime whose `LocalSet` hosts many runs at
//! once, each on its own isolate, plus a few blank isolates made ahead of demand.
//!
//! A worker creates at most `isolates_per_thread` isolates in its lifetime, then stops
//! taking runs, lets its live runs finish and exits: per-thread engine state (v8x's
//! native-function table under QuickJS) goes with the thread.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::Notify;
use tracing::{debug, info, warn};

use super::isolate::Isolate;
use super::limits::WorkerMeter;
use super::pool::{Job, PoolShared};
use super::run;

struct WorkerLocal {
    id: usize,
    blanks: RefCell<VecDeque<Isolate>>,
    created: Cell<usize>,
    live: Cell<usize>,
    slot_freed: Notify,
    refilling: Cell<bool>,
}

/// Starts a worker thread; returns false if the OS refused a thread.
pub(crate) fn spawn(shared: Arc<PoolShared>) -> bool {
    let id = shared.next_worker_id.fetch_add(1, Ordering::Relaxed);
    shared.threads.fetch_add(1, Ordering::AcqRel);
    shared.stats.threads_started.fetch_add(1, Ordering::Relaxed);
    let for_thread = shared.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("atoll-worker-{id}"))
        .stack_size(shared.config.thread_stack_bytes)
        .spawn(move || thread_main(for_thread, id));
    match spawned {
        Ok(handle) => {
            shared.track_thread(id, handle);
            true
        }
        Err(e) => {
            warn!(error = %e, "could not start a worker thread");
            shared.threads.fetch_sub(1, Ordering::AcqRel);
            false
        }
    }
}

fn thread_main(shared: Arc<PoolShared>, id: usize) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            warn!(error = %e, "worker could not build its tokio runtime");
            shared.threads.fetch_sub(1, Ordering::AcqRel);
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, worker_loop(shared.clone(), id));
    // Tasks left on the LocalSet (none after a drain) and the runtime go here, on this
    // thread, before the thread — and its engine state — ends.
    drop(local);
    drop(runtime);
}

async fn worker_loop(shared: Arc<PoolShared>, id: usize) {
    let meter = WorkerMeter::for_current_thread(id);
    shared.watchdog.register(&meter);
    let local = Rc::new(WorkerLocal {
        id,
        blanks: RefCell::new(VecDeque::new()),
        created: Cell::new(0),
        live: Cell::new(0),
        slot_freed: Notify::new(),
        refilling: Cell::new(false),
    });
    let config = &shared.config;
    debug!(worker = id, "worker started");
    schedule_refill(&shared, &local);

    loop {
        if meter.abandoned() {
            break;
        }
        if local.created.get() >= config.isolates_per_thread && local.blanks.borrow().is_empty() {
            debug!(
                worker = id,
                created = local.created.get(),
                "worker retiring: isolate budget spent"
            );
            break;
        }
        while local.live.get() >= config.max_live_per_thread {
            local.slot_freed.notified().await;
        }
        shared.idle.fetch_add(1, Ordering::AcqRel);
        let job = tokio::select! {
            job = shared.queue.recv() => job.ok(),
            _ = tokio::time::sleep(config.idle_thread_timeout) => None,
        };
        shared.idle.fetch_sub(1, Ordering::AcqRel);
        let Some(job) = job else {
            if shared.queue.is_closed() || shared.release_idle_thread() {
                break;
            }
            continue;
        };
        start_run(&shared, &local, &meter, job);
    }

    while local.live.get() > 0 {
        local.slot_freed.notified().await;
    }
    local.blanks.borrow_mut().clear();
    if meter.abandoned() {
        // The pool already replaced this thread and ended its runs.
        warn!(
            worker = id,
            "an abandoned worker thread came back and exits"
        );
        return;
    }
    shared.stats.threads_retired.fetch_add(1, Ordering::Relaxed);
    info!(
        worker = id,
        isolates = local.created.get(),
        "worker thread retired"
    );
    shared.worker_exited();
}

fn start_run(
    shared: &Arc<PoolShared>,
    local: &Rc<WorkerLocal>,
    meter: &Arc<WorkerMeter>,
    job: Job,
) {
    local.live.set(local.live.get() + 1);
    let heap = job.req.grant.limits.heap_bytes();
    let isolate = take_isolate(shared, local, heap);
    let (shared, local, meter) = (shared.clone(), local.clone(), meter.clone());
    meter.host(&job.run.0);
    tokio::task::spawn_local(async move {
        let Job { req, run } = job;
        let spent = run::execute(isolate, req, run.0.clone(), meter.clone()).await;
        meter.release(&run.0);
        shared.stats.runs_completed.fetch_add(1, Ordering::Relaxed);
        // Disposal after the answer is out: nobody waits for it.
        drop(spent);
        local.live.set(local.live.get() - 1);
        local.slot_freed.notify_one();
        schedule_refill(&shared, &local);
    });
}

/// A blank isolate if one with the right heap limit is ready, else a new one.
fn take_isolate(shared: &PoolShared, local: &WorkerLocal, heap: usize) -> Option<Isolate> {
    if heap == shared.config.heap_bytes() {
        if let Some(isolate) = local.blanks.borrow_mut().pop_front() {
            return Some(isolate);
        }
    }
    create(shared, local, heap)
}

fn create(shared: &PoolShared, local: &WorkerLocal, heap: usize) -> Option<Isolate> {
    local.created.set(local.created.get() + 1);
    shared
        .stats
        .isolates_created
        .fetch_add(1, Ordering::Relaxed);
    // The engine reports some bootstrap failures by panicking; a failed creation must
    // cost one run, not the worker thread.
    match std::panic::catch_unwind(|| Isolate::new(heap, shared.snapshot)) {
        Ok(Ok(isolate)) => Some(isolate),
        Ok(Err(e)) => {
            warn!(worker = local.id, error = %e, "isolate creation failed; retiring this thread");
            exhaust(shared, local);
            None
        }
        Err(_) => {
            warn!(
                worker = local.id,
                "isolate creation panicked; retiring this thread"
            );
            exhaust(shared, local);
            None
        }
    }
}

/// A thread whose engine cannot make isolates any more is retired like one that spent
/// its budget (the run that asked fails with `internal`, the next ones go elsewhere).
fn exhaust(shared: &PoolShared, local: &WorkerLocal) {
    local
        .created
        .set(local.created.get().max(shared.config.isolates_per_thread));
}

/// Keeps `prewarm` blank isolates ready, one creation per task turn so runs on this
/// thread keep being polled in between.
fn schedule_refill(shared: &Arc<PoolShared>, local: &Rc<WorkerLocal>) {
    if local.refilling.get() || shared.config.prewarm == 0 {
        return;
    }
    local.refilling.set(true);
    let (shared, local) = (shared.clone(), local.clone());
    tokio::task::spawn_local(async move {
        let heap = shared.config.heap_bytes();
        while local.blanks.borrow().len() < shared.config.prewarm
            && local.created.get() < shared.config.isolates_per_thread
            && !shared.queue.is_closed()
        {
            tokio::task::yield_now().await;
            match create(&shared, &local, heap) {
                Some(isolate) => local.blanks.borrow_mut().push_back(isolate),
                None => break,
            }
        }
        local.refilling.set(false);
    });
}
