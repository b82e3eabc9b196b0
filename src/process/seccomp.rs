//! The seccomp allow-list of a sandbox process, the last layer of [`super::lock_down`].
//!
//! After lockdown the child only computes (QuickJS: malloc and clocks), runs threads
//! (a tokio current-thread runtime per worker, the watchdog) and talks over the one
//! socket it inherited. Everything else — opening files, making sockets, exec, ptrace,
//! signals to other processes, namespaces, bpf, io_uring — answers `EPERM`. The list was
//! taken from `strace -f` of real runs (see the module tests), not from a wish list.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};

use super::LockdownError;

#[cfg(target_arch = "x86_64")]
const ARCH: Option<TargetArch> = Some(TargetArch::x86_64);
#[cfg(target_arch = "aarch64")]
const ARCH: Option<TargetArch> = Some(TargetArch::aarch64);
#[cfg(target_arch = "riscv64")]
const ARCH: Option<TargetArch> = Some(TargetArch::riscv64);
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64"
)))]
const ARCH: Option<TargetArch> = None;

/// Namespace flags: a thread must not come with namespaces of its own.
const CLONE_NEW_ANY: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET) as u64;

/// `madvise` advice from here on (MADV_HWPOISON = 100, MADV_SOFT_OFFLINE = 101) acts on
/// physical pages, which root may do; the guard-page advice (102, 103) is ordinary.
const MADV_HWPOISON: u64 = 100;
const MADV_GUARD_INSTALL: u64 = 102;
const MADV_GUARD_REMOVE: u64 = 103;

fn arch() -> Result<TargetArch, LockdownError> {
    ARCH.ok_or_else(|| LockdownError::Seccomp("no seccomp filter for this CPU architecture".into()))
}

fn seccomp_err(e: impl std::fmt::Display) -> LockdownError {
    LockdownError::Seccomp(e.to_string())
}

fn cond(arg: u8, len: Len, op: Op, value: u64) -> Result<SeccompCondition, LockdownError> {
    SeccompCondition::new(arg, len, op, value).map_err(seccomp_err)
}

/// One rule per allowed value of argument `arg` (rules of a syscall are OR-ed).
fn one_of(arg: u8, len: Len, values: &[u64]) -> Result<Vec<SeccompRule>, LockdownError> {
    values
        .iter()
        .map(|&v| SeccompRule::new(vec![cond(arg, len.clone(), Op::Eq, v)?]).map_err(seccomp_err))
        .collect()
}

fn rule(conditions: Vec<SeccompCondition>) -> Result<Vec<SeccompRule>, LockdownError> {
    Ok(vec![SeccompRule::new(conditions).map_err(seccomp_err)?])
}

/// The first of the two filters, for calls whose callers handle ENOSYS but not EPERM:
/// `clone3`, so glibc's `pthread_create` falls back to `clone`, whose flags (unlike
/// clone3's, behind a pointer) a filter can read; and `sched_getaffinity` of a thread
/// other than "self" (glibc's `pthread_getattr_np`, which Rust calls for every new thread,
/// takes ENOSYS as "no affinity" and fails on anything else). Everything else passes to
/// the main filter. The kernel keeps the most restrictive action of all filters, and of
/// equal ones the newest filter's: so the main filter must *allow* both calls, and this
/// ENOSYS wins over that Allow.
pub fn enosys_filter() -> Result<BpfProgram, LockdownError> {
    let rules = BTreeMap::from([
        (libc::SYS_clone3, Vec::new()),
        (
            libc::SYS_sched_getaffinity,
            rule(vec![cond(0, Len::Dword, Op::Ne, 0)?])?,
        ),
    ]);
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch()?,
    )
    .map_err(seccomp_err)?;
    BpfProgram::try_from(filter).map_err(seccomp_err)
}

/// The main allow-list for a process whose pid is `pid` (signals are allowed only to
/// its own threads). Anything not listed answers `EPERM`.
pub fn allow_list(pid: i32) -> Result<BpfProgram, LockdownError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    let any = |rules: &mut BTreeMap<i64, Vec<SeccompRule>>, nrs: &[i64]| {
        for &nr in nrs {
            rules.insert(nr, Vec::new());
        }
    };

    // I/O on fds that are already open (the channel, tokio's epoll and eventfd).
    any(
        &mut rules,
        &[
            libc::SYS_read,
            libc::SYS_write,
            libc::SYS_readv,
            libc::SYS_writev,
            libc::SYS_recvfrom,
            libc::SYS_recvmsg,
            libc::SYS_sendto,
            libc::SYS_sendmsg,
            libc::SYS_shutdown,
            libc::SYS_close,
            libc::SYS_epoll_create1,
            libc::SYS_epoll_ctl,
            libc::SYS_epoll_pwait,
            libc::SYS_epoll_pwait2,
            libc::SYS_ppoll,
            libc::SYS_eventfd2,
        ],
    );
    #[cfg(target_arch = "x86_64")]
    any(&mut rules, &[libc::SYS_epoll_wait, libc::SYS_poll]);

    // Memory, threads, signals of our own, time.
    any(
        &mut rules,
        &[
            libc::SYS_munmap,
            libc::SYS_mremap,
            libc::SYS_brk,
            libc::SYS_futex,
            libc::SYS_set_robust_list,
            libc::SYS_rseq,
            libc::SYS_clone3, // ENOSYS from the first filter; see enosys_filter
            libc::SYS_sched_getaffinity, // of another thread: ENOSYS, as above
            libc::SYS_rt_sigaction,
            libc::SYS_rt_sigprocmask,
            libc::SYS_rt_sigreturn,
            libc::SYS_sigaltstack,
            libc::SYS_sched_yield,
            libc::SYS_getrandom,
            libc::SYS_clock_gettime,
            libc::SYS_clock_getres,
            libc::SYS_clock_nanosleep,
            libc::SYS_nanosleep,
            libc::SYS_gettimeofday,
            libc::SYS_getrusage,
            libc::SYS_getpid,
            libc::SYS_gettid,
            libc::SYS_getppid,
            libc::SYS_exit,
            libc::SYS_exit_group,
            libc::SYS_restart_syscall,
        ],
    );

    // Threads only, without namespaces of their own: nothing here needs a process.
    rules.insert(
        libc::SYS_clone,
        rule(vec![cond(
            0,
            Len::Dword,
            Op::MaskedEq(libc::CLONE_THREAD as u64 | CLONE_NEW_ANY),
            libc::CLONE_THREAD as u64,
        )?])?,
    );

    // QuickJS never makes code at run time, so no page ever needs to become executable:
    // shellcode written through an engine bug stays data. (V8's JIT needs PROT_EXEC.)
    #[cfg(all(feature = "quickjs", not(feature = "v8")))]
    {
        let no_exec = || {
            rule(vec![cond(
                2,
                Len::Dword,
                Op::MaskedEq(libc::PROT_EXEC as u64),
                0,
            )?])
        };
        rules.insert(libc::SYS_mmap, no_exec()?);
        rules.insert(libc::SYS_mprotect, no_exec()?);
    }
    #[cfg(not(all(feature = "quickjs", not(feature = "v8"))))]
    any(&mut rules, &[libc::SYS_mmap, libc::SYS_mprotect]);

    let mut madvise = rule(vec![cond(2, Len::Dword, Op::Lt, MADV_HWPOISON)?])?;
    madvise.extend(one_of(
        2,
        Len::Dword,
        &[MADV_GUARD_INSTALL, MADV_GUARD_REMOVE],
    )?);
    rules.insert(libc::SYS_madvise, madvise);

    // Non-blocking and close-on-exec flags, and dup (mio clones its epoll fd; fds are
    // bounded by RLIMIT_NOFILE); not F_SETOWN, leases, locks or pipe sizes.
    rules.insert(
        libc::SYS_fcntl,
        one_of(
            1,
            Len::Dword,
            &[
                libc::F_GETFD as u64,
                libc::F_SETFD as u64,
                libc::F_GETFL as u64,
                libc::F_SETFL as u64,
                libc::F_DUPFD_CLOEXEC as u64,
            ],
        )?,
    );
    // std's set_nonblocking and set_cloexec; nothing that reaches a device or a tty.
    #[allow(clippy::unnecessary_cast)] // u64 on glibc, c_int on musl
    let ioctls = [libc::FIONBIO as u64, libc::FIOCLEX as u64];
    rules.insert(libc::SYS_ioctl, one_of(1, Len::Dword, &ioctls)?);
    // Thread names; nothing that changes privileges, dumpability or the filter.
    rules.insert(
        libc::SYS_prctl,
        one_of(
            0,
            Len::Dword,
            &[libc::PR_SET_NAME as u64, libc::PR_GET_NAME as u64],
        )?,
    );
    // glibc's raise/abort: tgkill(getpid(), gettid(), sig). Never another process.
    rules.insert(
        libc::SYS_tgkill,
        rule(vec![cond(0, Len::Dword, Op::Eq, pid as u32 as u64)?])?,
    );
    // getrlimit (glibc: prlimit64(0, res, NULL, old)): our own limits, read-only.
    rules.insert(
        libc::SYS_prlimit64,
        rule(vec![
            cond(0, Len::Dword, Op::Eq, 0)?,
            cond(2, Len::Qword, Op::Eq, 0)?,
        ])?,
    );

    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        arch()?,
    )
    .map_err(seccomp_err)?;
    BpfProgram::try_from(filter).map_err(seccomp_err)
}

/// Installs `program` on every thread of the process (TSYNC: a thread started before
/// the lockdown, such as a test harness's, is no way around it).
pub fn install(program: &BpfProgram) -> Result<(), LockdownError> {
    seccompiler::apply_filter_all_threads(program).map_err(seccomp_err)
}
