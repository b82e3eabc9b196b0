//! The lockdown a sandbox process applies to itself, once, before it runs any JS.
//!
//! A sandbox process runs untrusted agent code on an engine with known memory-safety
//! defects, so the language is not the boundary: the operating system is. After
//! [`lock_down`] the process keeps only its channel to the server and can compute, run
//! threads and talk over that channel — nothing else. The layers, in order:
//!
//! 1. `pdeathsig`: SIGKILL when the server dies; a server already gone means exit now.
//! 2. `no_new_privs`: no exec can grant privileges (and seccomp/Landlock need it).
//! 3. `env_cleared`: no environment (the server also spawns us with an empty one).
//! 4. `netns`: an empty network namespace (as root, or in a new user namespace).
//! 5. `rlimits`: no core dumps, few fds, an address-space ceiling if asked.
//! 6. `caps_dropped`, `not_dumpable`: a root child keeps no capability, and no other
//!    process of its uid may ptrace it (root still reads its `/proc` files).
//! 7. `fds_closed`: every fd but the channel; 0, 1 and 2 point to `/dev/null`, so a
//!    stray `println!` never lands in an epoll or eventfd that took their numbers.
//!    Then tokio's process-wide signal socketpair is made (the filter refuses socketpair).
//! 8. `landlock`: every file-system right handled and none granted (no file access at
//!    all), TCP bind/connect and, where the kernel has them, signal/abstract-socket scopes.
//! 9. `seccomp`: an allow-list (see `seccomp.rs`); everything else answers EPERM.
//!
//! Layers the kernel refuses (namespaces in a container, Landlock on an old kernel) are
//! skipped and named in the [`LockdownReport`] with the reason; the others are required.

use std::os::fd::RawFd;

#[cfg(target_os = "linux")]
#[path = "seccomp.rs"]
mod seccomp;

#[cfg(target_os = "linux")]
pub use seccompiler::BpfProgram;
/// Stand-in off Linux, where there is no filter to compile.
#[cfg(not(target_os = "linux"))]
pub type BpfProgram = Vec<u64>;

/// Exit status of a sandbox process whose server died before `PR_SET_PDEATHSIG` was set.
pub const EXIT_PARENT_GONE: i32 = 75;

pub struct LockdownConfig {
    /// The fd of the channel to the server: the only fd kept open (0, 1, 2 are closed
    /// too, then pointed at `/dev/null`).
    pub channel_fd: RawFd,
    /// The server's pid, to detect that it died before PR_SET_PDEATHSIG took effect
    /// (then the process exits with [`EXIT_PARENT_GONE`]).
    pub parent_pid: i32,
    /// RLIMIT_AS ceiling in bytes (None = leave unset).
    pub address_space_bytes: Option<u64>,
    /// RLIMIT_NOFILE (soft and hard), e.g. 64.
    pub max_fds: u64,
}

/// Which layers are active, for the startup log and /readyz, plus the layers skipped
/// with why.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct LockdownReport {
    pub active: Vec<String>,
    pub skipped: Vec<(String, String)>,
}

impl LockdownReport {
    fn on(&mut self, layer: &str) {
        self.active.push(layer.to_owned());
    }

    fn skip(&mut self, layer: &str, why: impl Into<String>) {
        self.skipped.push((layer.to_owned(), why.into()));
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockdownError {
    #[error("lockdown: {step}: {source}")]
    Os {
        step: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("lockdown: seccomp: {0}")]
    Seccomp(String),
    #[error("lockdown: not supported on this platform")]
    Unsupported,
}

/// Locks the calling process down (see the module doc). Must be called while the
/// process is single-threaded (before tokio or any thread starts): seccomp reaches every
/// thread, but the user namespace needs a single thread and Landlock (before ABI 8)
/// only restricts the calling thread and the threads it starts afterwards. seccomp is
/// installed last. Returns an error, and the caller should exit, if a required layer
/// failed.
#[cfg(target_os = "linux")]
pub fn lock_down(cfg: &LockdownConfig) -> Result<LockdownReport, LockdownError> {
    let mut report = LockdownReport::default();
    // Compiled first: a filter that cannot be built must leave nothing half done.
    let pid = std::process::id() as i32;
    let enosys = seccomp::enosys_filter()?;
    let allow_list = seccomp::allow_list(pid)?;

    linux::parent_death(cfg.parent_pid)?;
    report.on("pdeathsig");
    linux::prctl("PR_SET_NO_NEW_PRIVS", libc::PR_SET_NO_NEW_PRIVS, 1)?;
    report.on("no_new_privs");
    linux::clear_env();
    report.on("env_cleared");
    match linux::network_namespace() {
        Ok(with_user) => {
            report.on("netns");
            if with_user {
                report.on("userns");
            }
        }
        Err(why) => report.skip("netns", why),
    }
    linux::rlimits(cfg)?;
    report.on("rlimits");
    match linux::drop_capabilities() {
        Ok(()) => report.on("caps_dropped"),
        Err(e) => report.skip("caps_dropped", e.to_string()),
    }
    match linux::prctl("PR_SET_DUMPABLE", libc::PR_SET_DUMPABLE, 0) {
        Ok(()) => report.on("not_dumpable"),
        Err(e) => report.skip("not_dumpable", e.to_string()),
    }
    // A credential change clears the parent-death signal; ours should not count as
    // one (commit_creds), but arming it again costs nothing.
    linux::parent_death(cfg.parent_pid)?;
    // Before Landlock: walking /proc/self/fd and opening /dev/null are file accesses.
    if let Err(why) = linux::close_fds(cfg.channel_fd)? {
        report.skip("stdio_null", why);
    }
    report.on("fds_closed");
    linux::prime_tokio()?;
    linux::landlock(&mut report);
    seccomp::install(&enosys)?;
    seccomp::install(&allow_list)?;
    report.on("seccomp");
    Ok(report)
}

/// Off Linux there is nothing to lock down with: every layer is reported skipped.
#[cfg(not(target_os = "linux"))]
pub fn lock_down(_cfg: &LockdownConfig) -> Result<LockdownReport, LockdownError> {
    let layers = "pdeathsig no_new_privs env_cleared netns rlimits fds_closed landlock seccomp";
    let mut report = LockdownReport::default();
    for layer in layers.split(' ') {
        report.skip(layer, "not Linux");
    }
    Ok(report)
}

/// The compiled seccomp allow-list for the calling process (its pid is the only target
/// `tgkill` may name), exposed so a test can install it in a forked process. Install
/// [`enosys_filter`] before it, or threads cannot start.
#[cfg(target_os = "linux")]
pub fn seccomp_filter() -> Result<BpfProgram, LockdownError> {
    seccomp::allow_list(std::process::id() as i32)
}

#[cfg(not(target_os = "linux"))]
pub fn seccomp_filter() -> Result<BpfProgram, LockdownError> {
    Err(LockdownError::Unsupported)
}

/// The small filter installed before the allow-list: `clone3` (and `sched_getaffinity`
/// of another thread) answer ENOSYS, so glibc starts threads with `clone`, whose flags a
/// filter can check.
#[cfg(target_os = "linux")]
pub fn enosys_filter() -> Result<BpfProgram, LockdownError> {
    seccomp::enosys_filter()
}

/// Installs a compiled filter on every thread of the calling process; irreversible.
#[cfg(target_os = "linux")]
pub fn install_filter(program: &BpfProgram) -> Result<(), LockdownError> {
    seccomp::install(program)
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::os::fd::RawFd;

    use landlock::{
        Access, AccessFs, AccessNet, RestrictSelfAttr, RulesetAttr, RulesetStatus, Scope, ABI,
    };

    use super::{LockdownConfig, LockdownError, LockdownReport, EXIT_PARENT_GONE};

    fn os(step: &'static str) -> LockdownError {
        LockdownError::Os {
            step,
            source: io::Error::last_os_error(),
        }
    }

    pub fn prctl(
        step: &'static str,
        option: libc::c_int,
        arg: libc::c_ulong,
    ) -> Result<(), LockdownError> {
        // SAFETY: these prctl options take integer arguments only.
        if unsafe { libc::prctl(option, arg, 0, 0, 0) } != 0 {
            return Err(os(step));
        }
        Ok(())
    }

    /// SIGKILL when the server goes; if it already went (we were re-parented before
    /// the signal was armed), nobody is left to serve: exit.
    pub fn parent_death(parent_pid: i32) -> Result<(), LockdownError> {
        prctl(
            "PR_SET_PDEATHSIG",
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
        )?;
        // SAFETY: getppid has no preconditions.
        if unsafe { libc::getppid() } != parent_pid {
            // SAFETY: _exit ends the process without running anything of ours.
            unsafe { libc::_exit(EXIT_PARENT_GONE) };
        }
        Ok(())
    }

    pub fn clear_env() {
        // vars_os, not vars: a non-UTF-8 variable must go too, not panic.
        for (name, _) in std::env::vars_os() {
            std::env::remove_var(name);
        }
    }

    /// An empty network namespace; as a non-root user (or where root lacks
    /// CAP_SYS_ADMIN) inside a new user namespace. Answers whether a user namespace was
    /// needed, or why neither worked.
    pub fn network_namespace() -> Result<bool, String> {
        // SAFETY: unshare takes flags only.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } == 0 {
            return Ok(false);
        }
        let alone = io::Error::last_os_error();
        // SAFETY: as above.
        if unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) } == 0 {
            return Ok(true);
        }
        let with_user = io::Error::last_os_error();
        Err(format!(
            "unshare(CLONE_NEWNET): {alone}; unshare(CLONE_NEWUSER|CLONE_NEWNET): {with_user}"
        ))
    }

    /// Soft and hard limit; prlimit64 because its resource and limit types are the same
    /// in every libc.
    fn set_limit(step: &'static str, resource: u32, value: u64) -> Result<(), LockdownError> {
        let limit: [u64; 2] = [value, value];
        let none: *mut [u64; 2] = std::ptr::null_mut();
        // SAFETY: `limit` is a struct rlimit64 (current, max) that outlives the call.
        let rc = unsafe { libc::syscall(libc::SYS_prlimit64, 0, resource, &limit, none) };
        if rc != 0 {
            return Err(os(step));
        }
        Ok(())
    }

    #[allow(clippy::unnecessary_cast)] // u32 on glibc, c_int on musl
    pub fn rlimits(cfg: &LockdownConfig) -> Result<(), LockdownError> {
        set_limit("RLIMIT_CORE", libc::RLIMIT_CORE as u32, 0)?;
        set_limit("RLIMIT_NOFILE", libc::RLIMIT_NOFILE as u32, cfg.max_fds)?;
        if let Some(bytes) = cfg.address_space_bytes {
            set_limit("RLIMIT_AS", libc::RLIMIT_AS as u32, bytes)?;
        }
        Ok(())
    }

    /// No capability left, effective or permitted: a child started as root is an
    /// ordinary process from here on (ambient capabilities go with the permitted set).
    pub fn drop_capabilities() -> io::Result<()> {
        const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
        // struct __user_cap_header_struct { version, pid } and, for version 3, two
        // struct __user_cap_data_struct { effective, permitted, inheritable }: all zero.
        let mut header: [u32; 2] = [LINUX_CAPABILITY_VERSION_3, 0];
        let data = [0u32; 6];
        // SAFETY: header and data have the layout capset(2) expects for version 3.
        let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Closes every fd but `keep`, then points 0, 1 and 2 at /dev/null (unless `keep`
    /// is one of them). The inner error says why stdio stayed closed.
    pub fn close_fds(keep: RawFd) -> Result<Result<(), String>, LockdownError> {
        // SAFETY: F_GETFD only reads the fd's flags.
        if keep < 0 || unsafe { libc::fcntl(keep, libc::F_GETFD) } < 0 {
            return Err(os("the channel fd is not open"));
        }
        if !close_range_except(keep)? {
            close_listed_except(keep)?;
        }
        Ok(null_stdio(keep))
    }

    /// close_range(2) around `keep`; false if the kernel has no close_range.
    fn close_range_except(keep: RawFd) -> Result<bool, LockdownError> {
        let keep = keep as libc::c_uint;
        let ranges = [
            (0, keep.checked_sub(1)),
            (keep + 1, Some(libc::c_uint::MAX)),
        ];
        for (first, last) in ranges {
            let Some(last) = last else { continue };
            // SAFETY: close_range only closes fds; nothing of ours is in use but `keep`.
            let rc = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
            if rc != 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::ENOSYS) {
                    return Ok(false);
                }
                return Err(LockdownError::Os {
                    step: "close_range",
                    source: e,
                });
            }
        }
        Ok(true)
    }

    /// Before close_range (Linux < 5.9): the fds /proc/self/fd lists, read in full
    /// first so that the directory's own fd is not closed under the walk.
    fn close_listed_except(keep: RawFd) -> Result<(), LockdownError> {
        let entries = std::fs::read_dir("/proc/self/fd").map_err(|source| LockdownError::Os {
            step: "listing /proc/self/fd",
            source,
        })?;
        let fds: Vec<RawFd> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
            .collect();
        for fd in fds.into_iter().filter(|&fd| fd != keep) {
            // SAFETY: closing an fd nothing of ours uses; the listing's own is gone (EBADF).
            unsafe { libc::close(fd) };
        }
        Ok(())
    }

    fn null_stdio(keep: RawFd) -> Result<(), String> {
        // SAFETY: a NUL-terminated path; the fd returned is ours.
        let null = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        if null < 0 {
            return Err(format!("/dev/null: {}", io::Error::last_os_error()));
        }
        for fd in (0..=2).filter(|&fd| fd != keep && fd != null) {
            // SAFETY: dup2 onto a closed stdio number.
            if unsafe { libc::dup2(null, fd) } < 0 {
                return Err(format!(
                    "dup2(/dev/null, {fd}): {}",
                    io::Error::last_os_error()
                ));
            }
        }
        if null > 2 {
            // SAFETY: our own spare /dev/null fd.
            unsafe { libc::close(null) };
        }
        Ok(())
    }

    /// tokio makes one process-wide socketpair for its signal driver the first time any
    /// runtime with I/O is built, and panics if it cannot; the filter refuses socketpair,
    /// so a throwaway runtime makes it now. It starts no thread.
    pub fn prime_tokio() -> Result<(), LockdownError> {
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map(drop)
            .map_err(|source| LockdownError::Os {
                step: "tokio's signal socketpair",
                source,
            })
    }

    /// Landlock, best effort: every right of the newest ABI this crate knows is handled
    /// and no rule grants any, so the kernel enforces whatever part it supports.
    pub fn landlock(report: &mut LockdownReport) {
        let requested = ABI::V10;
        let status = landlock::Ruleset::default()
            .handle_access(AccessFs::from_all(requested))
            .and_then(|r| r.handle_access(AccessNet::from_all(requested)))
            .and_then(|r| r.scope(Scope::from_all(requested)))
            .and_then(|r| r.create())
            .and_then(|r| r.all_threads(true))
            .and_then(|r| r.restrict_self());
        let status = match status {
            Ok(status) => status,
            Err(e) => return report.skip("landlock", e.to_string()),
        };
        let abi = ABI::from(status.landlock);
        if status.ruleset == RulesetStatus::NotEnforced {
            return report.skip(
                "landlock",
                format!("not enforced (kernel Landlock: {:?})", status.landlock),
            );
        }
        report.on("landlock");
        for (layer, since) in [
            ("landlock_tcp", ABI::V4),
            ("landlock_scopes", ABI::V6),
            ("landlock_udp", ABI::V10),
        ] {
            if abi >= since {
                report.on(layer);
            } else {
                report.skip(
                    layer,
                    format!("needs Landlock ABI {since}; the kernel has {abi}"),
                );
            }
        }
    }
}

#[cfg(all(test, target_os = "linux", target_arch = "x86_64"))]
#[path = "lockdown_tests.rs"]
mod tests;
