//! `atoll exec`: one package, one run, one JSON line — the way agent authors try an
//! agent locally and the way tests drive the sandbox from outside.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use serde_json::{json, Value};

use crate::broker::{AddressPolicy, HttpFetcher};
use crate::host::memory::{in_memory_services, CollectingEvents, LocalWaits};
use crate::host::Tenant;
use crate::package::{AgentPackage, PackageLimits};
use crate::sandbox::{
    ErrorCode, Limits, Pool, PoolConfig, RunError, RunGrant, RunOutcome, RunRequest, Usage,
};

#[derive(Args)]
pub struct ExecArgs {
    /// A package directory, `.tar.gz` or `.zip`.
    package: PathBuf,
    /// The run's input, as JSON.
    #[arg(long, default_value = "{}")]
    input: String,
    /// The end-user the run acts for (enables `end_user` memory).
    #[arg(long, default_value = "local-user")]
    end_user: String,
    /// Let fetch reach this host's addresses although they are loopback/private (an IP,
    /// a CIDR like 10.0.0.0/8, or a name such as `localhost`). The host must still be in
    /// the manifest's permissions.fetch.
    #[arg(long = "allow-host", value_name = "HOST")]
    allow_host: Vec<String>,
    /// Also print every event of the run, one JSON line each, before the record.
    #[arg(long)]
    events: bool,
    /// A signal for `ctx.waitFor(NAME)`, as NAME=JSON (repeatable; taken in order).
    /// `ctx.sleep` sleeps in place.
    #[arg(long = "signal", value_name = "NAME=JSON")]
    signals: Vec<String>,
}

/// `--signal NAME=JSON` values, parsed.
fn signals(given: &[String]) -> Result<Vec<(String, Value)>, String> {
    given
        .iter()
        .map(|s| {
            let (name, json) = s.split_once('=').ok_or_else(|| {
                format!("--signal {s:?}: write NAME=JSON, e.g. approve='{{\"ok\":true}}'")
            })?;
            let payload = serde_json::from_str(json)
                .map_err(|e| format!("--signal {name}: the payload is not JSON: {e}"))?;
            Ok((name.to_owned(), payload))
        })
        .collect()
}

pub fn run(args: ExecArgs) -> ExitCode {
    let outcome = execute(&args);
    let record = json!({
        "status": outcome.status,
        "output": outcome.output,
        "error": outcome.error,
        "state": outcome.state,
        "usage": outcome.usage,
    });
    println!("{record}");
    if outcome.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Turns `--allow-host` values into the operator's address allow-list: IPs and CIDRs as
/// given, names by resolving them now.
fn address_policy(hosts: &[String]) -> Result<AddressPolicy, String> {
    let mut entries = Vec::new();
    for host in hosts {
        if AddressPolicy::parse([host.as_str()]).is_ok() {
            entries.push(host.clone());
            continue;
        }
        let addrs = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), 0)).map_err(|e| {
            format!("--allow-host {host}: cannot resolve it ({e}); give an IP or CIDR")
        })?;
        entries.extend(addrs.map(|a| a.ip().to_string()));
    }
    AddressPolicy::parse(&entries).map_err(|e| format!("--allow-host: {e}"))
}

fn failed(code: ErrorCode, message: String) -> RunOutcome {
    RunOutcome::failed(RunError::new(code, message), Usage::default())
}

fn execute(args: &ExecArgs) -> RunOutcome {
    let package = match AgentPackage::load_path(&args.package, &PackageLimits::default()) {
        Ok(p) => Arc::new(p),
        Err(e) => return failed(ErrorCode::PackageInvalid, e.to_string()),
    };
    let input: Value = match serde_json::from_str(&args.input) {
        Ok(v) => v,
        Err(e) => return failed(ErrorCode::InputInvalid, format!("--input is not JSON: {e}")),
    };
    let policy = match address_policy(&args.allow_host) {
        Ok(p) => p,
        Err(e) => return failed(ErrorCode::Internal, e),
    };
    let fetcher = match HttpFetcher::new(policy) {
        Ok(f) => Arc::new(f),
        Err(e) => {
            return failed(
                ErrorCode::Internal,
                format!("could not build the HTTP client: {e}"),
            )
        }
    };
    let signals = match signals(&args.signals) {
        Ok(s) => s,
        Err(e) => return failed(ErrorCode::InputInvalid, e),
    };
    let events = Arc::new(CollectingEvents::default());
    let services = crate::host::HostServices {
        waits: Arc::new(LocalWaits::with_signals(signals)),
        ..in_memory_services(fetcher, events.clone())
    };
    let config = PoolConfig {
        min_threads: 1,
        max_threads: 1,
        prewarm: 0,
        // One run: bootstrapping from source is cheaper than making a snapshot first.
        use_snapshot: false,
        ..PoolConfig::default()
    };
    let pool = match Pool::new(config) {
        Ok(p) => p,
        Err(e) => {
            return failed(
                ErrorCode::Internal,
                format!("could not start the sandbox: {e}"),
            )
        }
    };
    let grant = RunGrant::from_manifest(&package.manifest, &Limits::default());
    let run_id = format!("run_{}", uuid::Uuid::new_v4().simple());
    let request = RunRequest {
        run_id: run_id.clone(),
        package,
        tenant: Tenant {
            org_id: "org_local".into(),
            app_id: "app_local".into(),
            end_user: Some(args.end_user.clone()),
        },
        input,
        state: None,
        grant,
        services,
        trigger: "cli".into(),
        attempt: 1,
        events_before: 0,
        journal: None,
    };
    let handle = match pool.submit(request) {
        Ok(h) => h,
        Err(e) => return failed(ErrorCode::Internal, e.to_string()),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return failed(ErrorCode::Internal, e.to_string()),
    };
    let outcome = runtime.block_on(handle.outcome());
    if args.events {
        for event in events.take_run(&run_id) {
            println!("{}", json!(event));
        }
    }
    pool.shutdown();
    outcome
}
