//! One sandbox process as the server sees it: starting it, its channel, the runs it
//! hosts, and what happens when it exits — every run it still hosted ends
//! `sandbox_crashed`, so nothing is left running.

use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot, Notify, Semaphore};
use tokio_util::codec::{FramedRead, FramedWrite};
use tracing::{debug, info, warn};

use super::child::CHANNEL_FD;
use super::lockdown::LockdownReport;
use super::protocol::{self, ChildStats, Json, PackageSpec, RunSpec, ToChild, ToServer};
pub(crate) use super::remote_run::RemoteRun;
use crate::sandbox::shared::{lock, RunShared};
use crate::sandbox::{
    ErrorCode, PoolConfig, PoolError, RunCanceller, RunError, RunHandle, RunOutcome, RunRequest,
    Usage,
};

/// Host calls one child may have in flight; past that the server stops reading its
/// channel until some finish (back-pressure on a child that floods).
const MAX_CALLS_IN_FLIGHT: usize = 8192;

/// What a package check comes to: the first module that fails, or why it could not run.
type CheckAnswer = Result<Option<String>, String>;

/// How to start children.
#[derive(Debug, Clone)]
pub struct Spawn {
    pub program: PathBuf,
    pub pool: PoolConfig,
    pub address_space_mb: u64,
}

pub(crate) struct Child {
    pub id: u64,
    pub pid: u32,
    pub(super) out: mpsc::UnboundedSender<ToChild>,
    runs: Mutex<HashMap<String, Arc<RemoteRun>>>,
    pub submitted: AtomicU64,
    ready: AtomicBool,
    pub ready_changed: Notify,
    pub draining: AtomicBool,
    exited: AtomicBool,
    pub lockdown: Mutex<Option<LockdownReport>>,
    pub stats: Mutex<ChildStats>,
    cancel_grace: Duration,
    /// Package checks waiting for their answer.
    checks: Mutex<HashMap<u64, oneshot::Sender<CheckAnswer>>>,
    next_check: AtomicU64,
}

/// Why and how a child ended, for the supervisor.
pub(crate) struct Exit {
    pub child: u64,
    /// Runs it still hosted, now ended `sandbox_crashed`.
    pub lost_runs: usize,
}

impl Child {
    /// Starts a child and its channel tasks. `exited` hears about its end.
    pub fn spawn(
        id: u64,
        spawn: &Spawn,
        snapshot: Vec<u8>,
        exited: mpsc::UnboundedSender<Exit>,
    ) -> std::io::Result<Arc<Child>> {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
        let mut command = Command::new(&spawn.program);
        command
            .arg("__sandbox")
            .arg("--parent")
            .arg(std::process::id().to_string())
            .arg("--address-space-mb")
            .arg(spawn.address_space_mb.to_string())
            .args((!crate::sandbox::heap_scrub_enabled()).then_some("--no-scrub"))
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let fd = theirs.as_raw_fd();
        // SAFETY: between fork and exec only async-signal-safe calls (dup2, fcntl, prctl).
        unsafe {
            command.pre_exec(move || {
                if fd == CHANNEL_FD {
                    // dup2 onto itself would keep close-on-exec set.
                    let flags = libc::fcntl(fd, libc::F_GETFD);
                    libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
                } else if libc::dup2(fd, CHANNEL_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // Dies with the thread that forked it, which waits for it below.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        // PR_SET_PDEATHSIG fires when the *thread* that forked exits, so the child is
        // forked by a thread that lives exactly as long as it does, waiting for it.
        let (pid_tx, pid_rx) = std::sync::mpsc::channel();
        let (status_tx, status_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("atoll-sandbox-{id}"))
            .spawn(move || match command.spawn() {
                Ok(mut process) => {
                    let _ = pid_tx.send(Ok(process.id()));
                    drop(command);
                    let _ = status_tx.send(process.wait().ok());
                }
                Err(e) => {
                    let _ = pid_tx.send(Err(e));
                }
            })?;
        let pid = pid_rx
            .recv()
            .map_err(|_| std::io::Error::other("the sandbox spawner thread died"))??;
        drop(theirs);
        ours.set_nonblocking(true)?;
        let stream = tokio::net::UnixStream::from_std(ours)?;
        let (read, write) = stream.into_split();
        let (out, outbox) = mpsc::unbounded_channel();
        let child = Arc::new(Child {
            id,
            pid,
            out,
            runs: Mutex::new(HashMap::new()),
            submitted: AtomicU64::new(0),
            ready: AtomicBool::new(false),
            ready_changed: Notify::new(),
            draining: AtomicBool::new(false),
            exited: AtomicBool::new(false),
            lockdown: Mutex::new(None),
            stats: Mutex::new(ChildStats::default()),
            cancel_grace: spawn.pool.cancel_grace,
            checks: Mutex::new(HashMap::new()),
            next_check: AtomicU64::new(1),
        });
        let _ = child.out.send(ToChild::Hello {
            pool: spawn.pool.clone(),
            snapshot,
        });
        tokio::spawn(write_loop(write, outbox));
        tokio::spawn(child.clone().read_loop(read, status_rx, exited));
        debug!(child = id, pid, "sandbox process started");
        Ok(child)
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !self.exited.load(Ordering::Acquire)
    }

    pub fn has_exited(&self) -> bool {
        self.exited.load(Ordering::Acquire)
    }

    /// Stops sending it runs; it exits once its runs are done.
    pub fn drain(&self) {
        if !self.draining.swap(true, Ordering::AcqRel) {
            let _ = self.out.send(ToChild::Drain);
        }
    }

    pub fn kill(&self) {
        if !self.has_exited() {
            // SAFETY: plain kill(2) of our own child, which is not reaped before its
            // waiting thread sees it exit (so the pid cannot have been reused).
            unsafe { libc::kill(self.pid as i32, libc::SIGKILL) };
        }
    }

    /// Resident memory of the process, from /proc.
    pub fn rss_bytes(&self) -> Option<u64> {
        let statm = std::fs::read_to_string(format!("/proc/{}/statm", self.pid)).ok()?;
        let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        Some(pages * page_size())
    }

    /// Hands a run to this child.
    pub fn submit(self: &Arc<Self>, req: RunRequest) -> Result<RunHandle, PoolError> {
        if self.has_exited() || self.draining.load(Ordering::Acquire) {
            return Err(PoolError::Saturated(0));
        }
        let (shared, outcome) = RunShared::new(
            req.run_id.clone(),
            req.services.events.clone(),
            req.events_before,
        );
        shared.start_clock(req.grant.limits.wall());
        let spec = RunSpec {
            run_id: req.run_id.clone(),
            digest: req.package.digest.clone(),
            tenant: req.tenant.clone(),
            input: Json::of(&req.input),
            state: req.state.as_ref().map(Json::of),
            grant: req.grant.clone(),
            trigger: req.trigger.clone(),
            attempt: req.attempt,
            clock: req.services.clock.as_ref().map(|c| c.spec()),
        };
        let run_id = req.run_id.clone();
        let run = Arc::new(RemoteRun::new(req, shared.clone()));
        lock(&self.runs).insert(run_id.clone(), run);
        self.submitted.fetch_add(1, Ordering::AcqRel);
        if self.out.send(ToChild::Run(Box::new(spec))).is_err() {
            lock(&self.runs).remove(&run_id);
            return Err(PoolError::Saturated(0));
        }
        let (out, id) = (self.out.clone(), run_id.clone());
        let relay = Arc::new(move || {
            let _ = out.send(ToChild::Cancel { run: id.clone() });
        });
        let canceller = RunCanceller::relayed(shared, self.cancel_grace, relay);
        Ok(RunHandle::new(run_id, canceller, outcome))
    }

    /// Parses and links a package's modules in this child (never in the server): the
    /// first error, or None. Err when the child could not answer.
    pub async fn check(
        &self,
        manifest: Json,
        files: Vec<(String, String)>,
    ) -> Result<Option<String>, String> {
        let check = self.next_check.fetch_add(1, Ordering::AcqRel);
        let (told, answer) = oneshot::channel();
        lock(&self.checks).insert(check, told);
        let message = ToChild::Check {
            check,
            manifest,
            files,
        };
        if self.out.send(message).is_err() {
            lock(&self.checks).remove(&check);
            return Err("the sandbox process is gone".into());
        }
        match tokio::time::timeout(Duration::from_secs(15), answer).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err("the sandbox process ended during the check".into()),
            Err(_) => {
                lock(&self.checks).remove(&check);
                Err("the check took longer than 15 s".into())
            }
        }
    }

    /// Ends the runs that are past their deadline by more than `slack` (the child
    /// should have ended them): answers how many. A child that lets a run overstay is
    /// not trusted with the others.
    pub fn end_overdue(&self, slack: Duration) -> usize {
        let overdue: Vec<Arc<RemoteRun>> = lock(&self.runs)
            .values()
            .filter(|r| r.shared.overdue_by() > slack)
            .cloned()
            .collect();
        for run in &overdue {
            lock(&self.runs).remove(run.shared.run_id());
            run.stop_timers();
            let code = if run.shared.cancel_requested() {
                ErrorCode::Cancelled
            } else {
                ErrorCode::Timeout
            };
            run.shared.conclude(RunOutcome::failed(
                RunError::new(
                    code,
                    "the sandbox process did not end the run at its deadline and was stopped",
                ),
                Usage::default(),
            ));
        }
        overdue.len()
    }

    async fn read_loop(
        self: Arc<Self>,
        read: tokio::net::unix::OwnedReadHalf,
        status: oneshot::Receiver<Option<ExitStatus>>,
        exited: mpsc::UnboundedSender<Exit>,
    ) {
        let mut frames = FramedRead::new(read, protocol::codec());
        let calls = Arc::new(Semaphore::new(MAX_CALLS_IN_FLIGHT));
        while let Some(Ok(frame)) = frames.next().await {
            match protocol::decode::<ToServer>(&frame) {
                Ok(message) => self.handle(message, &calls).await,
                Err(e) => {
                    warn!(child = self.id, error = %e, "a sandbox process sent a malformed frame; stopping it");
                    break;
                }
            }
        }
        self.exited.store(true, Ordering::Release);
        // Its runs' timers stop now, not once the exit status is known.
        for run in lock(&self.runs).values() {
            run.stop_timers();
        }
        // Checks still waiting learn at once that no answer will come.
        lock(&self.checks).clear();
        self.ready_changed.notify_waiters();
        // The channel is closed: make sure the process is gone too, then learn why.
        let status = match tokio::time::timeout(Duration::from_secs(2), status).await {
            Ok(Ok(status)) => status,
            _ => {
                self.kill();
                None
            }
        };
        let lost: Vec<Arc<RemoteRun>> = lock(&self.runs).drain().map(|(_, r)| r).collect();
        let reason = super::exit::describe(status);
        for run in &lost {
            run.stop_timers();
            let outcome = RunOutcome::failed(
                RunError::new(
                    ErrorCode::SandboxCrashed,
                    format!("the sandbox process hosting this run died ({reason}); retry the run"),
                ),
                Usage::default(),
            );
            if run.retry_on_crash {
                run.shared.conclude_quietly(outcome);
            } else {
                run.shared.conclude(outcome);
            }
        }
        if lost.is_empty() && self.draining.load(Ordering::Acquire) {
            debug!(child = self.id, pid = self.pid, %reason, "sandbox process exited");
        } else {
            warn!(child = self.id, pid = self.pid, %reason, lost_runs = lost.len(), "sandbox process died");
        }
        let _ = exited.send(Exit {
            child: self.id,
            lost_runs: lost.len(),
        });
    }

    pub(super) fn run(&self, id: &str) -> Option<Arc<RemoteRun>> {
        lock(&self.runs).get(id).cloned()
    }

    async fn handle(self: &Arc<Self>, message: ToServer, calls: &Arc<Semaphore>) {
        match message {
            ToServer::Ready { lockdown } => {
                info!(child = self.id, pid = self.pid, layers = ?lockdown.active, skipped = ?lockdown.skipped, "sandbox process locked down and ready");
                *lock(&self.lockdown) = Some(lockdown);
                self.ready.store(true, Ordering::Release);
                self.ready_changed.notify_waiters();
            }
            ToServer::NeedPackage { run } => {
                if let Some(run) = self.run(&run) {
                    let package = &run.package;
                    let spec = PackageSpec {
                        digest: package.digest.clone(),
                        manifest: Json::of(&package.manifest),
                        files: package
                            .files
                            .iter()
                            .map(|(p, t)| (p.clone(), t.to_string()))
                            .collect(),
                    };
                    let _ = self.out.send(ToChild::Package(Box::new(spec)));
                }
            }
            ToServer::Event { run, kind, data } => {
                let Some(run) = self.run(&run) else { return };
                // A replay's events repeat the earlier execution's: not sent twice.
                let asked = run.next_op.load(Ordering::Acquire);
                if run.journal.as_ref().is_some_and(|j| j.replaying(asked)) {
                    return;
                }
                let value = data.value();
                let spent = run
                    .event_bytes
                    .fetch_add(data.0.len() as u64, Ordering::AcqRel);
                // The child counts against the limit itself; twice the limit here only
                // stops a child that does not.
                if protocol::relayed(kind, &value) && spent <= 2 * run.grant.limits.max_event_bytes
                {
                    run.shared.publish(kind, value);
                }
            }
            ToServer::Call {
                call,
                run,
                request: request @ protocol::HostRequest::Timer { .. },
            } => self.set_timer(call, &run, request),
            ToServer::ClearTimer { run, call } => self.clear_timer(call, &run),
            ToServer::Call { call, run, request } => {
                self.take_call(call, &run, request, calls).await;
            }
            ToServer::Outcome { run, outcome } => {
                let Some(run) = lock(&self.runs).remove(&run) else {
                    return;
                };
                run.stop_timers();
                let outcome = outcome.parse::<RunOutcome>().unwrap_or_else(|_| {
                    RunOutcome::failed(
                        RunError::new(
                            ErrorCode::Internal,
                            "the sandbox process sent a malformed outcome",
                        ),
                        Usage::default(),
                    )
                });
                match run.journal.as_ref().and_then(|j| j.halted()) {
                    // Parked: no terminal events, the run goes on when it resumes.
                    Some(halt) if halt.code == "suspended" => {
                        run.shared.conclude_quietly(outcome);
                    }
                    Some(halt) => {
                        let code = match halt.code {
                            "replay_mismatch" => ErrorCode::ReplayMismatch,
                            "journal_too_large" => ErrorCode::JournalTooLarge,
                            _ => ErrorCode::Internal,
                        };
                        run.shared.conclude(RunOutcome::failed(
                            RunError::new(code, halt.message),
                            outcome.usage,
                        ));
                    }
                    None => {
                        run.shared.conclude(outcome);
                    }
                }
            }
            ToServer::Stats(stats) => *lock(&self.stats) = stats,
            ToServer::Checked { check, answer } => {
                if let Some(told) = lock(&self.checks).remove(&check) {
                    let _ = told.send(answer);
                }
            }
            ToServer::Log { level, line } => {
                let (child, pid) = (self.id, self.pid);
                match level {
                    0 => tracing::error!(child, pid, "sandbox: {line}"),
                    1 => tracing::warn!(child, pid, "sandbox: {line}"),
                    2 => tracing::info!(child, pid, "sandbox: {line}"),
                    _ => tracing::debug!(child, pid, "sandbox: {line}"),
                }
            }
        }
    }
}

async fn write_loop(
    write: tokio::net::unix::OwnedWriteHalf,
    mut outbox: mpsc::UnboundedReceiver<ToChild>,
) {
    let mut sink = FramedWrite::new(write, protocol::codec());
    while let Some(message) = outbox.recv().await {
        match protocol::encode(&message) {
            Ok(frame) => {
                if sink.send(frame).await.is_err() {
                    return;
                }
            }
            Err(e) => warn!(error = %e, "could not encode a frame for a sandbox process"),
        }
    }
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096)
}
