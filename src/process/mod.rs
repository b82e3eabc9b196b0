//! Sandbox processes: every isolate of `atoll serve` and `atoll dev` runs in a locked-down
//! child process of the server — the same binary, started with a hidden subcommand —
//! that holds no secret, no storage connection and no key. Every host call crosses one
//! Unix socket to the server, which checks the run's grant and does the work.
//!
//! - [`protocol`]: the frames on the socket.
//! - [`lockdown`]: what a child does to itself before any JS runs (seccomp, rlimits, ...).
//! - [`child`]: the child's main loop; it hosts an in-process [`Pool`].
//! - [`proxy`]: the host services inside a child, as calls over the socket.
//! - `remote`: one child seen from the server — its runs, its channel, its death
//!   (`exit` puts how it ended into words).
//! - `calls`: a host call taken from a child (bounded per run and per child);
//!   `host_side`: the server's half of each host call, grant checked again.
//! - `timers`: a journaled run's JS timers, served (and cleared) on the server.
//! - [`supervisor`]: the active child, the warm spare, recycling and crash replacement.

mod calls;
pub mod child;
mod exit;
mod host_side;
#[cfg(test)]
mod host_side_tests;
mod journaled;
pub mod lockdown;
pub mod protocol;
pub mod proxy;
mod remote;
mod remote_run;
pub mod supervisor;
mod timers;

use std::time::Duration;

pub use remote::Spawn;
pub use supervisor::{ProcessStats, Supervisor, SupervisorConfig};

use crate::sandbox::{Pool, PoolError, PoolStats, RunHandle, RunRequest};

/// Where a server runs its isolates.
#[derive(Clone)]
pub enum Sandbox {
    /// In this process (`atoll exec`, library users, tests of the pool itself).
    InProcess(Pool),
    /// In sandbox processes (`atoll serve`, `atoll dev`).
    Processes(Supervisor),
}

impl Sandbox {
    /// Parses and links a package's modules where tenant code is parsed: in a sandbox
    /// process. In-process sandboxes (inline, debugging only) skip it: the server does
    /// not parse tenant code itself, and a bad module fails its runs `package_invalid`.
    pub async fn check_package(
        &self,
        package: &crate::package::AgentPackage,
    ) -> Result<Option<String>, String> {
        match self {
            Sandbox::Processes(supervisor) => supervisor.check_package(package).await,
            Sandbox::InProcess(_) => Ok(None),
        }
    }

    pub fn submit(&self, req: RunRequest) -> Result<RunHandle, PoolError> {
        match self {
            Sandbox::InProcess(pool) => pool.submit(req),
            Sandbox::Processes(supervisor) => supervisor.submit(req),
        }
    }

    pub fn stats(&self) -> PoolStats {
        match self {
            Sandbox::InProcess(pool) => pool.stats(),
            Sandbox::Processes(supervisor) => supervisor.stats(),
        }
    }

    /// Counters of the sandbox processes, when isolates run in them.
    pub fn process_stats(&self) -> Option<ProcessStats> {
        match self {
            Sandbox::InProcess(_) => None,
            Sandbox::Processes(supervisor) => Some(supervisor.process_stats()),
        }
    }

    /// Lets running runs finish and stops every worker (or child).
    pub async fn shutdown(&self) {
        match self {
            Sandbox::InProcess(pool) => {
                let pool = pool.clone();
                let _ = tokio::task::spawn_blocking(move || pool.shutdown()).await;
            }
            Sandbox::Processes(supervisor) => supervisor.shutdown(Duration::from_secs(5)).await,
        }
    }
}
