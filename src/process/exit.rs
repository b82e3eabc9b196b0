//! How a sandbox process ended, in words for the log and for its lost runs' errors.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

/// `exit status 0`, `killed by SIGSEGV`, ...
pub(super) fn describe(status: Option<ExitStatus>) -> String {
    match status {
        None => "exit status unknown".into(),
        Some(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("exit status {code}"),
            (None, Some(signal)) => format!("killed by {}", signal_name(signal)),
            _ => s.to_string(),
        },
    }
}

fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGKILL => "SIGKILL (the OOM killer, or an operator)",
        libc::SIGSEGV => "SIGSEGV (an engine defect)",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGSYS => "SIGSYS (a system call the lockdown forbids)",
        libc::SIGTERM => "SIGTERM",
        other => return format!("signal {other}"),
    };
    name.to_owned()
}
