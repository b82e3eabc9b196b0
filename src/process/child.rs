//! The sandbox process: `atoll __sandbox` started by the server with its channel on fd 3.
//! It locks itself down before any thread or JS exists, then hosts an in-process
//! [`Pool`] whose runs reach the host only through [`super::proxy`].
//!
//! It holds no secret, no storage or Redis connection, no key and no environment; its
//! packages and inputs come over the channel. It exits when told to drain and its runs
//! are done, or at once when the server's end of the channel closes.

use std::collections::HashMap;
use std::os::fd::{FromRawFd, RawFd};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use clap::Args;
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite};

use super::lockdown::{self, LockdownConfig};
use super::protocol::{self, ChildStats, Json, PackageSpec, RunSpec, ToChild, ToServer};
use super::proxy::Link;
use crate::package::{AgentPackage, Manifest};
use crate::sandbox::{Pool, RunCanceller, RunRequest};

/// The channel's fd in a sandbox process.
pub const CHANNEL_FD: RawFd = 3;

#[derive(Args, Debug)]
pub struct ChildArgs {
    /// The server's pid (the child exits if its parent is already gone).
    #[arg(long)]
    parent: i32,
    /// Address-space ceiling, MiB (0: none).
    #[arg(long, default_value_t = 0)]
    address_space_mb: u64,
    /// Dispose isolates without the QuickJS heap scrub (the server's `ATOLL_NO_SCRUB`;
    /// the child's own environment is empty).
    #[arg(long)]
    no_scrub: bool,
}

/// Distinct packages kept compiled; a miss costs one round trip to the server.
const PACKAGE_CACHE: usize = 256;

pub fn main(args: ChildArgs) -> ExitCode {
    crate::sandbox::set_heap_scrub(!args.no_scrub);
    let report = match lockdown::lock_down(&LockdownConfig {
        channel_fd: CHANNEL_FD,
        parent_pid: args.parent,
        address_space_bytes: (args.address_space_mb > 0)
            .then(|| args.address_space_mb.saturating_mul(1024 * 1024)),
        // Each worker thread's tokio runtime holds 4 fds; the pool grows to 64 threads.
        max_fds: 512,
    }) {
        Ok(report) => report,
        // Nothing to tell it over yet; the server sees the exit status.
        Err(_) => return ExitCode::from(71),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(_) => return ExitCode::from(70),
    };
    runtime.block_on(serve(report))
}

async fn serve(lockdown: lockdown::LockdownReport) -> ExitCode {
    // SAFETY: fd 3 is the channel the server handed over; nothing else owns it.
    let stream = unsafe { std::os::unix::net::UnixStream::from_raw_fd(CHANNEL_FD) };
    if stream.set_nonblocking(true).is_err() {
        return ExitCode::from(70);
    }
    let Ok(stream) = tokio::net::UnixStream::from_std(stream) else {
        return ExitCode::from(70);
    };
    let (read, write) = stream.into_split();
    let mut frames = FramedRead::new(read, protocol::codec());
    let (out, mut outbox) = mpsc::unbounded_channel::<ToServer>();
    tokio::spawn(async move {
        let mut sink = FramedWrite::new(write, protocol::codec());
        while let Some(message) = outbox.recv().await {
            let Ok(frame) = protocol::encode(&message) else {
                continue;
            };
            if sink.send(frame).await.is_err() {
                break;
            }
        }
    });
    install_logger(out.clone());
    let _ = out.send(ToServer::Ready { lockdown });

    let Some(ToChild::Hello { pool, snapshot }) = next(&mut frames).await else {
        return ExitCode::from(70);
    };
    crate::sandbox::snapshot::install(snapshot);
    let pool = match Pool::new(pool) {
        Ok(pool) => pool,
        Err(e) => {
            tracing::error!(error = %e, "the sandbox process could not start its pool");
            return ExitCode::from(70);
        }
    };
    let link = Link::new(out.clone());
    tokio::spawn(report_stats(pool.clone(), out.clone()));
    let mut host = ChildHost {
        pool,
        link,
        packages: HashMap::new(),
        waiting: HashMap::new(),
        runs: HashMap::new(),
        draining: false,
    };
    let (done_tx, mut done) = mpsc::unbounded_channel::<String>();
    loop {
        tokio::select! {
            frame = next(&mut frames) => match frame {
                Some(message) => host.handle(message, &done_tx),
                // The server is gone: nothing this process does matters any more.
                None => std::process::exit(0),
            },
            Some(run) = done.recv() => {
                host.runs.remove(&run);
            }
        }
        if host.draining && host.runs.is_empty() && host.waiting.is_empty() {
            tracing::debug!("sandbox process drained");
            std::process::exit(0);
        }
    }
}

async fn next(
    frames: &mut FramedRead<
        tokio::net::unix::OwnedReadHalf,
        tokio_util::codec::LengthDelimitedCodec,
    >,
) -> Option<ToChild> {
    let frame = frames.next().await?.ok()?;
    protocol::decode(&frame).ok()
}

struct ChildHost {
    pool: Pool,
    link: Arc<Link>,
    packages: HashMap<String, Arc<AgentPackage>>,
    /// Runs waiting for their package, by digest.
    waiting: HashMap<String, Vec<RunSpec>>,
    runs: HashMap<String, RunCanceller>,
    draining: bool,
}

impl ChildHost {
    fn handle(&mut self, message: ToChild, done: &mpsc::UnboundedSender<String>) {
        match message {
            ToChild::Run(spec) => {
                if let Some(package) = self.packages.get(&spec.digest).cloned() {
                    self.start(spec, package, done);
                } else {
                    let asked = self.waiting.contains_key(&spec.digest);
                    let run = spec.run_id.clone();
                    self.waiting
                        .entry(spec.digest.clone())
                        .or_default()
                        .push(*spec);
                    if !asked {
                        self.link.send(ToServer::NeedPackage { run });
                    }
                }
            }
            ToChild::Package(spec) => {
                let digest = spec.digest.clone();
                let specs = self.waiting.remove(&digest).unwrap_or_default();
                match rebuild(&spec) {
                    Ok(package) => {
                        let package = Arc::new(package);
                        if self.packages.len() >= PACKAGE_CACHE {
                            self.packages.clear();
                        }
                        self.packages.insert(digest, package.clone());
                        for spec in specs {
                            self.start(Box::new(spec), package.clone(), done);
                        }
                    }
                    Err(e) => {
                        for spec in specs {
                            let outcome = crate::sandbox::RunOutcome::failed(
                                crate::sandbox::RunError::new(
                                    crate::sandbox::ErrorCode::PackageInvalid,
                                    e.clone(),
                                ),
                                Default::default(),
                            );
                            self.link.send(ToServer::Outcome {
                                run: spec.run_id,
                                outcome: Json::of(&outcome),
                            });
                        }
                    }
                }
            }
            ToChild::Cancel { run } => {
                if let Some(canceller) = self.runs.get(&run) {
                    canceller.cancel();
                }
            }
            ToChild::Reply {
                call,
                answer,
                over_budget,
                at,
            } => self.link.answer(call, answer, over_budget, at),
            ToChild::Delta { call, text } => self.link.delta(call, &text),
            ToChild::Drain => self.draining = true,
            ToChild::Check {
                check,
                manifest,
                files,
            } => {
                // A thread of its own (with room for the parser's recursion): the
                // channel and the runs go on meanwhile.
                let link = self.link.clone();
                let spawned = std::thread::Builder::new()
                    .name("atoll-check".into())
                    .stack_size(64 << 20)
                    .spawn(move || {
                        let package = crate::package::AgentPackage::from_files(
                            manifest.value(),
                            files.into_iter().collect(),
                            &crate::package::PackageLimits::default(),
                        );
                        let answer = match package {
                            Ok(package) => crate::sandbox::check::check_modules(Arc::new(package)),
                            Err(e) => Ok(Some(e.to_string())),
                        };
                        link.send(ToServer::Checked { check, answer });
                    });
                if spawned.is_err() {
                    self.link.send(ToServer::Checked {
                        check,
                        answer: Err("no thread for the check".into()),
                    });
                }
            }
            ToChild::Hello { .. } => {}
        }
    }

    fn start(
        &mut self,
        spec: Box<RunSpec>,
        package: Arc<AgentPackage>,
        done: &mpsc::UnboundedSender<String>,
    ) {
        let RunSpec {
            run_id,
            tenant,
            input,
            state,
            grant,
            trigger,
            attempt,
            clock,
            ..
        } = *spec;
        let clock = clock.map(|(seed, start)| Arc::new(crate::host::RunClock::new(seed, start)));
        let request = RunRequest {
            services: self.link.services(&run_id, clock),
            run_id: run_id.clone(),
            package,
            tenant,
            input: input.value(),
            state: state.map(|s| s.value()),
            grant,
            trigger,
            attempt,
            events_before: 0,
            journal: None,
        };
        let outcome = match self.pool.submit(request) {
            Ok(handle) => {
                self.runs.insert(run_id.clone(), handle.canceller());
                let (link, done) = (self.link.clone(), done.clone());
                tokio::spawn(async move {
                    let outcome = handle.outcome().await;
                    link.send(ToServer::Outcome {
                        run: run_id.clone(),
                        outcome: Json::of(&outcome),
                    });
                    let _ = done.send(run_id);
                });
                return;
            }
            Err(e) => crate::sandbox::RunOutcome::failed(
                crate::sandbox::RunError::new(
                    crate::sandbox::ErrorCode::SandboxCrashed,
                    format!("the sandbox process refused the run ({e}); retry it"),
                ),
                Default::default(),
            ),
        };
        self.link.send(ToServer::Outcome {
            run: run_id,
            outcome: Json::of(&outcome),
        });
    }
}

/// The package from what the server sent (it was validated at upload; only the
/// schemas need compiling again).
fn rebuild(spec: &PackageSpec) -> Result<AgentPackage, String> {
    let manifest: Manifest = spec
        .manifest
        .parse()
        .map_err(|e| format!("the package's manifest did not cross the channel: {e}"))?;
    let files = spec
        .files
        .iter()
        .map(|(path, text)| (path.clone(), Arc::from(text.as_str())))
        .collect();
    AgentPackage::rebuilt(manifest, files, spec.digest.clone()).map_err(|e| e.to_string())
}

async fn report_stats(pool: Pool, out: mpsc::UnboundedSender<ToServer>) {
    loop {
        let s = pool.stats();
        let stats = ChildStats {
            threads_alive: s.threads_alive as u32,
            isolates_created: s.isolates_created,
            isolates_alive: s.isolates_alive as u32,
            runs_completed: s.runs_completed,
            threads_abandoned: s.threads_abandoned,
        };
        if out.send(ToServer::Stats(stats)).is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Log lines go to the server over the channel (the process has no stderr).
fn install_logger(out: mpsc::UnboundedSender<ToServer>) {
    static OUT: OnceLock<Mutex<Option<mpsc::UnboundedSender<ToServer>>>> = OnceLock::new();
    let _ = OUT.set(Mutex::new(Some(out)));
    struct Line(u8, Vec<u8>);
    impl std::io::Write for Line {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.1.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl Drop for Line {
        fn drop(&mut self) {
            let line = String::from_utf8_lossy(&self.1).trim_end().to_owned();
            if let Some(Some(out)) = OUT.get().map(|m| crate::sandbox::shared::lock(m).clone()) {
                let _ = out.send(ToServer::Log {
                    level: self.0,
                    line,
                });
            }
        }
    }
    struct Writer;
    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Writer {
        type Writer = Line;
        fn make_writer(&'a self) -> Line {
            Line(2, Vec::new())
        }
        fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Line {
            Line(level_number(*meta.level()), Vec::new())
        }
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_writer(Writer)
        .with_ansi(false)
        .without_time()
        .with_level(false)
        .try_init();
}

pub fn level_number(level: tracing::Level) -> u8 {
    match level {
        tracing::Level::ERROR => 0,
        tracing::Level::WARN => 1,
        tracing::Level::INFO => 2,
        tracing::Level::DEBUG => 3,
        tracing::Level::TRACE => 4,
    }
}
