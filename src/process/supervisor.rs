//! The server's sandbox processes: one active child takes new runs while a spare waits,
//! locked down and warm, to take over — when the active one has spent its isolate budget
//! or outgrown its memory ceiling (it drains: finishes its runs, then exits) or when it
//! died (its runs end `sandbox_crashed`). So no run ever waits for a process to start.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{info, warn};

use super::lockdown::LockdownReport;
use super::remote::{Child, Exit, Spawn};
use crate::sandbox::shared::lock;
use crate::sandbox::{PoolError, PoolStats, RunHandle, RunRequest};

/// Runs a sandbox process takes before it is recycled. On QuickJS each isolate leaves
/// memory behind that only the end of its process returns (see the README's benchmark
/// notes); on V8 a process is recycled far less often.
#[cfg(feature = "quickjs")]
pub const DEFAULT_RUNS_PER_CHILD: u64 = 5_000;
#[cfg(not(feature = "quickjs"))]
pub const DEFAULT_RUNS_PER_CHILD: u64 = 100_000;

/// How the server runs its sandbox processes.
#[derive(Debug, Clone)]
pub struct SupervisorConfig {
    pub spawn: Spawn,
    /// Runs a child takes before it is recycled.
    pub runs_per_child: u64,
    /// Resident memory past which a child is recycled, bytes.
    pub rss_limit_bytes: u64,
    /// How often memory, deadlines and the spare are checked.
    pub tick: Duration,
}

/// Counters for `/metrics`, `/readyz` and the tests.
#[derive(Debug, Clone, Default)]
pub struct ProcessStats {
    pub children_alive: usize,
    pub children_started: u64,
    /// Children that died with runs in flight or without being asked to.
    pub children_crashed: u64,
    pub children_recycled: u64,
    /// Pids of the children alive now (the active one first).
    pub pids: Vec<u32>,
    /// The lockdown of the active child.
    pub lockdown: Option<LockdownReport>,
}

#[derive(Default)]
struct Children {
    active: Option<Arc<Child>>,
    spare: Option<Arc<Child>>,
    draining: Vec<Arc<Child>>,
}

/// Package checks a node runs at once: uploads are rare, and each one parses tenant code
/// in a child that also hosts runs.
const MAX_CHECKS: usize = 2;

struct Inner {
    config: SupervisorConfig,
    snapshot: Vec<u8>,
    children: Mutex<Children>,
    next_id: AtomicU64,
    closed: AtomicBool,
    exits: mpsc::UnboundedSender<Exit>,
    started: AtomicU64,
    crashed: AtomicU64,
    recycled: AtomicU64,
    /// Counters of children that are gone, so totals never go backwards.
    retired: Mutex<PoolStats>,
    /// Package checks under way at once (each parses tenant code in a child).
    checks: tokio::sync::Semaphore,
}

#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

impl Supervisor {
    /// Starts the active child and a spare and waits until the active one is locked down
    /// and ready.
    pub async fn start(config: SupervisorConfig) -> anyhow::Result<Supervisor> {
        // The snapshot holds runtime-js only; children restore it instead of each making one.
        let snapshot = crate::sandbox::snapshot::runtime_snapshot()
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        let (exits, exited) = mpsc::unbounded_channel();
        let supervisor = Supervisor {
            inner: Arc::new(Inner {
                config,
                snapshot,
                children: Mutex::new(Children::default()),
                checks: tokio::sync::Semaphore::new(MAX_CHECKS),
                next_id: AtomicU64::new(1),
                closed: AtomicBool::new(false),
                exits,
                started: AtomicU64::new(0),
                crashed: AtomicU64::new(0),
                recycled: AtomicU64::new(0),
                retired: Mutex::new(PoolStats::default()),
            }),
        };
        let active = supervisor.spawn_child()?;
        lock(&supervisor.inner.children).active = Some(active.clone());
        supervisor.top_up_spare();
        tokio::spawn(supervisor.clone().watch(exited));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !active.is_ready() {
            if active.has_exited() {
                anyhow::bail!("the sandbox process exited before it was ready; see the log above (a lockdown the kernel refused?)");
            }
            let notified = active.ready_changed.notified();
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                anyhow::bail!("the sandbox process did not get ready within 30 s");
            }
        }
        Ok(supervisor)
    }

    fn spawn_child(&self) -> anyhow::Result<Arc<Child>> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let child = Child::spawn(
            id,
            &self.inner.config.spawn,
            self.inner.snapshot.clone(),
            self.inner.exits.clone(),
        )
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot start a sandbox process ({}): {e}",
                self.inner.config.spawn.program.display()
            )
        })?;
        self.inner.started.fetch_add(1, Ordering::Relaxed);
        Ok(child)
    }

    fn top_up_spare(&self) {
        if self.inner.closed.load(Ordering::Acquire) {
            return;
        }
        let needed = lock(&self.inner.children).spare.is_none();
        if needed {
            match self.spawn_child() {
                Ok(child) => {
                    let mut children = lock(&self.inner.children);
                    if children.spare.is_none() {
                        children.spare = Some(child);
                    } else {
                        child.drain();
                        children.draining.push(child);
                    }
                }
                Err(e) => warn!(error = %e, "could not start a spare sandbox process; retrying"),
            }
        }
    }

    /// Queues a run on the active child.
    pub fn submit(&self, req: RunRequest) -> Result<RunHandle, PoolError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(PoolError::Closed);
        }
        let Some(child) = self.ready_child() else {
            return Err(PoolError::Saturated(0));
        };
        let handle = child.submit(req)?;
        if child.submitted.load(Ordering::Acquire) >= self.inner.config.runs_per_child {
            self.recycle(&child, "run budget spent");
        }
        Ok(handle)
    }

    /// Retires `child` if it is the active one and a ready spare can take over; else it
    /// goes on until one can (a soft budget: runs never wait for a process start).
    fn recycle(&self, child: &Arc<Child>, why: &str) {
        let promoted = {
            let mut children = lock(&self.inner.children);
            let is_active = children
                .active
                .as_ref()
                .is_some_and(|a| Arc::ptr_eq(a, child));
            if is_active && children.spare.as_ref().is_some_and(|s| s.is_ready()) {
                promote(&mut children);
                true
            } else {
                false
            }
        };
        if promoted {
            self.inner.recycled.fetch_add(1, Ordering::Relaxed);
            info!(
                child = child.id,
                pid = child.pid,
                runs = child.submitted.load(Ordering::Relaxed),
                rss = child.rss_bytes().unwrap_or(0),
                why,
                "recycling a sandbox process"
            );
            let me = self.clone();
            tokio::spawn(async move { me.top_up_spare() });
        }
    }

    async fn watch(self, mut exited: mpsc::UnboundedReceiver<Exit>) {
        let mut tick = tokio::time::interval(self.inner.config.tick);
        loop {
            tokio::select! {
                exit = exited.recv() => match exit {
                    Some(exit) => self.on_exit(exit),
                    None => return,
                },
                _ = tick.tick() => self.check(),
            }
            if self.inner.closed.load(Ordering::Acquire) && self.alive() == 0 {
                return;
            }
        }
    }

    fn on_exit(&self, exit: Exit) {
        let crashed = {
            let mut children = lock(&self.inner.children);
            let was = |slot: &Option<Arc<Child>>| slot.as_ref().is_some_and(|c| c.id == exit.child);
            let gone = if was(&children.active) {
                children.active.take()
            } else if was(&children.spare) {
                children.spare.take()
            } else {
                let at = children.draining.iter().position(|c| c.id == exit.child);
                at.map(|i| children.draining.swap_remove(i))
            };
            if let Some(child) = &gone {
                let s = *lock(&child.stats);
                let mut retired = lock(&self.inner.retired);
                retired.isolates_created += s.isolates_created;
                retired.runs_completed += s.runs_completed;
                retired.threads_abandoned += s.threads_abandoned;
            }
            // The spare takes over at once (submissions wait for it to be ready).
            if children.active.is_none() && !self.inner.closed.load(Ordering::Acquire) {
                promote(&mut children);
            }
            let asked = gone.is_some_and(|c| c.draining.load(Ordering::Acquire));
            !asked || exit.lost_runs > 0
        };
        if crashed {
            self.inner.crashed.fetch_add(1, Ordering::Relaxed);
        }
        self.top_up_spare();
    }

    /// Memory ceilings, overdue runs, a missing spare.
    fn check(&self) {
        let (active, all) = {
            let children = lock(&self.inner.children);
            (children.active.clone(), all_children(&children))
        };
        if let Some(active) = &active {
            let rss = active.rss_bytes().unwrap_or(0);
            if rss > self.inner.config.rss_limit_bytes {
                self.recycle(active, "memory ceiling reached");
            }
        }
        // A child must end a run at its deadline; one that lets a run overstay (blocked,
        // frozen, or lying) is stopped, and its other runs end `sandbox_crashed`.
        let slack = self.inner.config.spawn.pool.stuck_after * 5 + Duration::from_secs(2);
        for child in &all {
            if child.end_overdue(slack) > 0 {
                warn!(
                    child = child.id,
                    pid = child.pid,
                    "a sandbox process kept a run past its deadline; killing it"
                );
                child.kill();
            }
        }
        self.top_up_spare();
    }

    fn alive(&self) -> usize {
        let children = lock(&self.inner.children);
        all_children(&children)
            .iter()
            .filter(|c| !c.has_exited())
            .count()
    }

    pub fn stats(&self) -> PoolStats {
        let children = lock(&self.inner.children);
        let mut total = *lock(&self.inner.retired);
        for child in all_children(&children) {
            let s = *lock(&child.stats);
            total.threads_alive += s.threads_alive as usize;
            total.isolates_created += s.isolates_created;
            total.isolates_alive += s.isolates_alive as usize;
            total.runs_completed += s.runs_completed;
            total.threads_abandoned += s.threads_abandoned;
        }
        total
    }

    /// The child work goes to: the active one, or the spare promoted when the active one
    /// is not ready.
    fn ready_child(&self) -> Option<Arc<Child>> {
        let active = {
            let mut children = lock(&self.inner.children);
            let usable = children.active.as_ref().is_some_and(|c| c.is_ready());
            if !usable && children.spare.as_ref().is_some_and(|c| c.is_ready()) {
                promote(&mut children);
            }
            children.active.clone()
        };
        active.filter(|c| c.is_ready())
    }

    /// Parses and links a package's modules in the active sandbox process.
    pub async fn check_package(
        &self,
        package: &crate::package::AgentPackage,
    ) -> Result<Option<String>, String> {
        let manifest = super::protocol::Json::of(&package.manifest);
        let files = package
            .files
            .iter()
            .map(|(path, text)| (path.clone(), text.to_string()))
            .collect();
        let Ok(_slot) = self.inner.checks.try_acquire() else {
            return Err(format!("{MAX_CHECKS} package checks are under way already"));
        };
        match self.ready_child() {
            Some(child) => child.check(manifest, files).await,
            None => Err("no sandbox process is ready".into()),
        }
    }

    pub fn process_stats(&self) -> ProcessStats {
        let children = lock(&self.inner.children);
        let all = all_children(&children);
        ProcessStats {
            children_alive: all.iter().filter(|c| !c.has_exited()).count(),
            children_started: self.inner.started.load(Ordering::Relaxed),
            children_crashed: self.inner.crashed.load(Ordering::Relaxed),
            children_recycled: self.inner.recycled.load(Ordering::Relaxed),
            pids: all
                .iter()
                .filter(|c| !c.has_exited())
                .map(|c| c.pid)
                .collect(),
            lockdown: children
                .active
                .as_ref()
                .and_then(|c| lock(&c.lockdown).clone()),
        }
    }

    /// Resident memory of every child alive, bytes.
    pub fn children_rss_bytes(&self) -> u64 {
        let children = lock(&self.inner.children);
        all_children(&children)
            .iter()
            .filter_map(|c| c.rss_bytes())
            .sum()
    }

    /// Stops taking runs, lets every child finish its runs and exit (killing those that
    /// do not within `grace`).
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.closed.store(true, Ordering::Release);
        let all = {
            let children = lock(&self.inner.children);
            all_children(&children)
        };
        for child in &all {
            child.drain();
        }
        let deadline = tokio::time::Instant::now() + grace;
        while all.iter().any(|c| !c.has_exited()) {
            if tokio::time::Instant::now() >= deadline {
                for child in &all {
                    child.kill();
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn promote(children: &mut Children) {
    if let Some(old) = children.active.take() {
        old.drain();
        children.draining.push(old);
    }
    children.active = children.spare.take();
}

fn all_children(children: &Children) -> Vec<Arc<Child>> {
    children
        .active
        .iter()
        .chain(children.spare.iter())
        .chain(children.draining.iter())
        .cloned()
        .collect()
}
