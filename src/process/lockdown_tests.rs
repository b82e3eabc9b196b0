//! Attacks on the lockdown: the filter in a forked process (refusals, and what must still
//! work), and a real run through the pool in a re-executed, locked-down test binary.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::*;

/// -1 with this errno, as the filter answers; anything else is a finding.
fn refused(rc: libc::c_long) -> bool {
    rc == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Runs `body` in a forked child and answers its exit code (128 + signal if killed).
fn in_fork(body: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child only makes system calls, starts a thread and exits with _exit;
    // glibc's fork leaves malloc usable in the child.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or(101);
        // SAFETY: leaves the forked copy of the test harness without running any of it.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child; `status` is a valid out-pointer.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid, "waitpid: {}", std::io::Error::last_os_error());
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    }
}

fn errno() -> Option<i32> {
    std::io::Error::last_os_error().raw_os_error()
}

/// no_new_privs, then the filters in order, as `lock_down` installs them.
fn install(filters: &[&BpfProgram]) -> bool {
    // SAFETY: prctl with integer arguments.
    let no_new_privs = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } == 0;
    no_new_privs && filters.iter().all(|f| install_filter(f).is_ok())
}

/// The forked child's checks: 0 if every refusal and every needed call behaved, else the
/// number of the first that did not.
fn filtered_child(filters: &[&BpfProgram]) -> i32 {
    let Ok((mut near, mut far)) = UnixStream::pair() else {
        return 2;
    };
    if !filters.is_empty() && !install(filters) {
        return 3;
    }
    // SAFETY: raw system calls with valid or deliberately null/bogus arguments; each is
    // checked right away, since errno is only good until the next call.
    let refusals = unsafe {
        use libc::*;
        let ppid = getppid() as c_long;
        let sock = near.as_raw_fd() as c_long;
        let file = c"/etc/hostname".as_ptr();
        let missing = c"/nonexistent/x".as_ptr();
        let mut pair = [0 as c_int; 2];
        let limit = [64u64, 64u64];
        [
            (10, refused(syscall(SYS_socket, AF_INET, SOCK_STREAM, 0))),
            (11, refused(syscall(SYS_openat, AT_FDCWD, file, O_RDONLY))),
            (12, refused(syscall(SYS_open, file, O_RDONLY))),
            (13, refused(syscall(SYS_creat, missing, 0o600))),
            (
                14,
                refused(syscall(
                    SYS_socketpair,
                    AF_UNIX,
                    SOCK_STREAM,
                    0,
                    pair.as_mut_ptr(),
                )),
            ),
            (15, refused(syscall(SYS_execve, missing, 0, 0))),
            (16, refused(syscall(SYS_kill, ppid, 0))),
            // pid 1, not the parent: the filter was compiled in the parent, for its pid.
            (17, refused(syscall(SYS_tgkill, 1, 1, 0))),
            (18, refused(syscall(SYS_tkill, 1, 0))),
            (
                19,
                refused(syscall(SYS_ptrace, PTRACE_PEEKDATA, ppid, 0, 0)),
            ),
            (
                20,
                refused(syscall(SYS_process_vm_readv, ppid, 0, 0, 0, 0, 0)),
            ),
            (21, refused(syscall(SYS_memfd_create, c"x".as_ptr(), 0))),
            (22, refused(syscall(SYS_unshare, 0))),
            (23, refused(syscall(SYS_setns, -1, 0))),
            (24, refused(syscall(SYS_pidfd_open, ppid, 0))),
            (25, refused(syscall(SYS_bpf, 0, 0, 0))),
            (26, refused(syscall(SYS_io_uring_setup, 1, 0))),
            (27, refused(syscall(SYS_keyctl, 0, -1, 0))),
            (28, refused(syscall(SYS_mount, 0, 0, 0, 0, 0))),
            (29, refused(syscall(SYS_prctl, PR_SET_DUMPABLE, 1, 0, 0, 0))),
            (
                30,
                refused(syscall(SYS_ioctl, sock, TIOCSTI, c"x".as_ptr())),
            ),
            (31, refused(syscall(SYS_fcntl, sock, F_SETOWN, 1))),
            (
                32,
                refused(syscall(SYS_setrlimit, RLIMIT_NOFILE, limit.as_ptr())),
            ),
            (
                33,
                refused(syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, limit.as_ptr(), 0)),
            ),
            (34, refused(syscall(SYS_perf_event_open, 0, 0, -1, -1, 0))),
            (35, refused(syscall(SYS_userfaultfd, 0))),
            // Advice on physical pages, which a root child could otherwise give.
            (36, refused(syscall(SYS_madvise, 0, 4096, MADV_HWPOISON))),
            (37, {
                // Executable memory: QuickJS never needs it (V8 would).
                let prot = PROT_READ | PROT_EXEC;
                let rc = syscall(SYS_mmap, 0, 4096, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                cfg!(not(all(feature = "quickjs", not(feature = "v8")))) || refused(rc)
            }),
            (38, {
                // A new process (no CLONE_THREAD): the copy, if any, leaves at once.
                let rc = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
                if rc == 0 {
                    _exit(0);
                }
                let refusal = refused(rc);
                if rc > 0 {
                    waitpid(rc as pid_t, std::ptr::null_mut(), 0);
                }
                refusal
            }),
        ]
    };
    if let Some((code, _)) = refusals.iter().find(|(_, refusal)| !refusal) {
        return *code;
    }
    // What the child needs after lockdown: threads, I/O on the fds it has, time, entropy.
    match std::thread::spawn(|| 42).join() {
        Ok(42) => {}
        _ => return 40,
    }
    if far.write_all(b"ping").is_err() {
        return 41;
    }
    let mut got = [0u8; 4];
    if std::io::Read::read_exact(&mut near, &mut got).is_err() || &got != b"ping" {
        return 42;
    }
    let mut random = [0u8; 16];
    // SAFETY: a valid buffer of that length.
    if unsafe { libc::getrandom(random.as_mut_ptr().cast(), random.len(), 0) } != 16 {
        return 43;
    }
    if std::time::Instant::now().elapsed() > Duration::from_secs(1) {
        return 44;
    }
    0
}

#[test]
fn the_filter_refuses_files_sockets_and_escapes_but_not_threads() {
    // Compiled before forking: the fork of a multi-threaded test binary should do little
    // beyond system calls.
    let enosys = enosys_filter().expect("enosys filter");
    let allow_list = seccomp_filter().expect("allow-list");
    let code = in_fork(|| filtered_child(&[&enosys, &allow_list]));
    assert_eq!(code, 0, "check {code} failed (see filtered_child)");
    // The same checks without the filter fail at the first, so they do test something.
    assert_eq!(
        in_fork(|| filtered_child(&[])),
        10,
        "socket() works without the filter"
    );
}

#[test]
fn clone3_and_another_threads_affinity_answer_enosys_from_the_first_filter() {
    let enosys = enosys_filter().expect("enosys filter");
    let allow_list = seccomp_filter().expect("allow-list");
    let code = in_fork(|| {
        if !install(&[&enosys, &allow_list]) {
            return 3;
        }
        let mut set = [0u8; 128];
        // SAFETY: clone3 with a zero size fails before touching memory; `set` is valid.
        unsafe {
            if libc::syscall(libc::SYS_clone3, 0, 0) != -1 || errno() != Some(libc::ENOSYS) {
                return 10;
            }
            let tid = libc::gettid() as libc::c_long;
            if libc::syscall(
                libc::SYS_sched_getaffinity,
                tid,
                set.len(),
                set.as_mut_ptr(),
            ) != -1
                || errno() != Some(libc::ENOSYS)
            {
                return 11;
            }
            if libc::syscall(libc::SYS_sched_getaffinity, 0, set.len(), set.as_mut_ptr()) <= 0 {
                return 12;
            }
        }
        0
    });
    assert_eq!(code, 0, "check {code} failed");
    // The allow-list alone lets clone3 through to the kernel (EINVAL: zero size): the
    // first filter alone decides, so removing it would break thread creation's fallback.
    let code = in_fork(|| {
        if !install(&[&allow_list]) {
            return 3;
        }
        // SAFETY: as above.
        let rc = unsafe { libc::syscall(libc::SYS_clone3, 0, 0) };
        i32::from(!(rc == -1 && errno() == Some(libc::EINVAL)))
    });
    assert_eq!(
        code, 0,
        "clone3 reaches the kernel without the first filter"
    );
}

const CHILD_ENV: &str = "ATOLL_LOCKDOWN_TEST_CHILD";
const CHILD_FD: i32 = 3;

fn send(channel: &mut UnixStream, message: Value) {
    let _ = channel.write_all(format!("{message}\n").as_bytes());
}

/// The re-executed test binary: locks down, then runs agents/hello through a pool.
fn locked_down_child() -> ! {
    use crate::broker::{AddressPolicy, HttpFetcher};
    use crate::host::memory::{in_memory_services, CollectingEvents};
    use crate::host::Tenant;
    use crate::package::{AgentPackage, PackageLimits};
    use crate::sandbox::{Limits, Pool, PoolConfig, RunGrant, RunRequest};
    use std::os::fd::FromRawFd;

    // A panic would otherwise go to /dev/null: tell the parent.
    std::panic::set_hook(Box::new(|info| {
        let line = format!("{}\n", json!({ "panic": info.to_string() }));
        // SAFETY: writes a buffer we own to the channel fd.
        unsafe { libc::write(CHILD_FD, line.as_ptr().cast(), line.len()) };
    }));
    // Everything that reads files happens before the lockdown.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("agents/hello");
    let package =
        Arc::new(AgentPackage::load_path(&dir, &PackageLimits::default()).expect("package"));
    let fetcher = Arc::new(HttpFetcher::new(AddressPolicy::default()).expect("fetcher"));
    let services = in_memory_services(fetcher, Arc::new(CollectingEvents::default()));
    // SAFETY: fd 3 is the socket the parent handed over; nothing else owns it.
    let mut channel = unsafe { UnixStream::from_raw_fd(CHILD_FD) };

    let report = lock_down(&LockdownConfig {
        channel_fd: CHILD_FD,
        // SAFETY: getppid has no preconditions.
        parent_pid: unsafe { libc::getppid() },
        address_space_bytes: Some(16 << 30),
        max_fds: 64,
    });
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            send(&mut channel, json!({ "error": e.to_string() }));
            // SAFETY: leave without the harness.
            unsafe { libc::_exit(2) }
        }
    };
    send(&mut channel, json!({ "report": report }));

    // SAFETY: raw system calls with valid arguments.
    let checks = unsafe {
        json!({
            "raise_self": libc::raise(0) == 0,
            "open_refused": std::fs::read("/proc/self/status").is_err(),
            "kill_parent_refused": refused(libc::syscall(libc::SYS_kill, libc::getppid(), 0)),
            "env_empty": std::env::vars_os().next().is_none(),
        })
    };
    let pool = Pool::new(PoolConfig {
        min_threads: 1,
        ..Default::default()
    })
    .expect("pool");
    let request = RunRequest {
        run_id: "run_lockdown".into(),
        grant: RunGrant::from_manifest(&package.manifest, &Limits::default()),
        package,
        tenant: Tenant {
            org_id: "org_test".into(),
            app_id: "app_test".into(),
            end_user: Some("user_1".into()),
        },
        input: json!({ "name": "Ada" }),
        state: None,
        services,
        trigger: "test".into(),
        attempt: 1,
        events_before: 0,
        journal: None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let outcome = runtime.block_on(pool.submit(request).expect("submit").outcome());
    send(
        &mut channel,
        json!({ "succeeded": outcome.succeeded(), "output": outcome.output, "error": outcome.error, "checks": checks }),
    );
    // Stay alive until the parent has looked at /proc.
    let mut line = String::new();
    let _ = BufReader::new(&channel).read_line(&mut line);
    pool.shutdown();
    // SAFETY: leave without the harness; the code says whether the run succeeded.
    unsafe { libc::_exit(if outcome.succeeded() { 0 } else { 1 }) }
}

/// Reads a few bytes of the child's first mapping through /proc/<pid>/mem.
fn peek_memory(pid: u32) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))?;
    let start = maps.split('-').next().unwrap_or_default();
    let start = u64::from_str_radix(start, 16).map_err(std::io::Error::other)?;
    let mut bytes = [0u8; 16];
    std::fs::File::open(format!("/proc/{pid}/mem"))?.read_exact_at(&mut bytes, start)
}

#[test]
fn a_locked_down_process_runs_an_agent_through_the_pool() {
    if std::env::var_os(CHILD_ENV).is_some() {
        locked_down_child();
    }
    let (mut ours, theirs) = UnixStream::pair().expect("socketpair");
    let theirs_fd = theirs.as_raw_fd();
    let mut command = Command::new(std::env::current_exe().expect("test binary"));
    command
        .args([
            "--exact",
            "process::lockdown::tests::a_locked_down_process_runs_an_agent_through_the_pool",
            "--nocapture",
            "--test-threads=1",
        ])
        .env_clear()
        .env(CHILD_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: dup2/fcntl only, between fork and exec.
    unsafe {
        command.pre_exec(move || {
            let rc = if theirs_fd == CHILD_FD {
                libc::fcntl(CHILD_FD, libc::F_SETFD, 0)
            } else {
                libc::dup2(theirs_fd, CHILD_FD)
            };
            if rc < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().expect("spawn the test binary");
    drop(theirs);
    let pid = child.id();
    ours.set_read_timeout(Some(Duration::from_secs(120)))
        .expect("timeout");
    let mut lines = BufReader::new(ours.try_clone().expect("clone"));
    let mut next = || {
        let mut line = String::new();
        let _ = lines.read_line(&mut line);
        serde_json::from_str::<Value>(&line).unwrap_or(Value::Null)
    };
    let fail = |child: &mut std::process::Child, what: String| -> ! {
        let _ = child.kill();
        let _ = child.wait();
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
        }
        panic!("{what}\nchild stderr:\n{stderr}");
    };

    let report = next();
    let Some(active) = report["report"]["active"].as_array().cloned() else {
        fail(&mut child, format!("no lockdown report: {report}"));
    };
    eprintln!("lockdown report: {report}");
    for layer in "pdeathsig no_new_privs env_cleared rlimits fds_closed seccomp".split(' ') {
        if !active.contains(&json!(layer)) {
            fail(&mut child, format!("layer {layer} is not active: {report}"));
        }
    }
    let outcome = next();
    eprintln!("run: {outcome}");
    if outcome["succeeded"] != true {
        fail(&mut child, format!("the run did not succeed: {outcome}"));
    }
    // What the server (root) still reads of a non-dumpable child.
    let mem = peek_memory(pid);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("environ");
    let fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|t| t.display().to_string())
        .collect();
    eprintln!("child fds: {fds:?}");
    let _ = ours.write_all(b"bye\n");
    let exit = child.wait().expect("wait");

    assert_eq!(outcome["output"]["greeting"], "Hello, Ada!", "{outcome}");
    for (check, ok) in outcome["checks"].as_object().expect("checks") {
        assert_eq!(
            ok,
            &json!(true),
            "check {check} inside the locked-down child"
        );
    }
    mem.expect("/proc/<pid>/mem of the child");
    assert!(status.contains("Seccomp:\t2"), "{status}");
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");
    // The harness's variable was read before the lockdown, but the block stays in memory
    // as spawned; the parent's env_clear is what keeps it empty in production.
    assert_eq!(environ, format!("{CHILD_ENV}=1\0").into_bytes());
    assert!(
        !fds.iter().any(|f| f.starts_with('/') && f != "/dev/null"),
        "files open in the child: {fds:?}"
    );
    assert!(exit.success(), "child exit: {exit:?}");
}
