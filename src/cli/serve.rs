//! `atoll serve` and `atoll dev`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::{info, warn};

use crate::api::agents::version_record;
use crate::api::auth::new_secret;
use crate::api::keys::issue_key;
use crate::config::ServeArgs;
use crate::ids::new_id;
use crate::ids::now_ms;
use crate::package::{AgentPackage, PackageLimits};
use crate::server;
use crate::store::{App, KeyKind, Org, PutVersion, Store};

pub fn serve(args: ServeArgs) -> ExitCode {
    run_async(async move {
        let stop = server::shutdown_signal();
        let server = server::start(args).await?;
        server::stop_requested(&server, stop).await;
        info!("shutting down");
        server.stop().await
    })
}

#[derive(Args)]
pub struct DevArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Sample agents to deploy into the dev app.
    #[arg(long, default_value = "agents")]
    pub agents: PathBuf,
    /// Redeploy an agent of --agents as a new dev version whenever its files change, so
    /// that the next run runs the edited code.
    #[arg(long)]
    pub watch: bool,
}

/// What `atoll dev` creates on first start and reuses afterwards.
#[derive(Serialize, Deserialize)]
struct DevTenant {
    admin_key: String,
    #[serde(default)]
    master_key: Option<String>,
    org_id: String,
    app_id: String,
    app_key: String,
    /// Creates apps and keys of the dev org (tenants made before it existed get one).
    #[serde(default)]
    org_key: Option<String>,
}

pub fn dev(mut args: DevArgs) -> ExitCode {
    run_async(async move {
        let stop = server::shutdown_signal();
        // Embedded storage and in-process quotas unless --database-url/--redis-url say
        // otherwise; every request is logged.
        args.serve.log_requests = true;
        std::fs::create_dir_all(&args.serve.data_dir)
            .with_context(|| format!("cannot create {}", args.serve.data_dir.display()))?;
        let tenant_file = args.serve.data_dir.join("dev-tenant.json");
        let existing: Option<DevTenant> = std::fs::read_to_string(&tenant_file)
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok());
        let admin_key = match &existing {
            Some(t) => t.admin_key.clone(),
            None => new_secret().map_err(|e| anyhow::anyhow!("{e}"))?,
        };
        args.serve.admin_key = Some(admin_key.clone());
        let master_key = match existing.as_ref().and_then(|t| t.master_key.clone()) {
            Some(k) => k,
            None => random_hex(32)?,
        };
        args.serve.master_key = Some(master_key.clone());
        let server = server::start(args.serve.clone()).await?;
        let store = server.state.store.clone();
        let mut tenant = match existing {
            Some(t) => t,
            None => {
                let mut t = create_tenant(store.as_ref(), admin_key).await?;
                t.master_key = Some(master_key);
                t
            }
        };
        if tenant.org_key.is_none() {
            let (_, secret) = issue_key(
                store.as_ref(),
                &tenant.org_id,
                None,
                KeyKind::Org,
                "dev org key",
                vec!["*".into()],
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            tenant.org_key = Some(secret);
        }
        write_private(&tenant_file, &serde_json::to_string_pretty(&tenant)?)
            .with_context(|| format!("cannot write {}", tenant_file.display()))?;
        let dirs = agent_dirs(&args.agents);
        let deployed = deploy_agents(store.as_ref(), &tenant.app_id, &dirs).await;
        let base = format!("http://{}", reachable(server.addr));
        println!(
            "atoll dev is running at {base}  (data in {})",
            args.serve.data_dir.display()
        );
        println!("  app key:   {}", tenant.app_key);
        println!("  org key:   {}", tenant.org_key.as_deref().unwrap_or(""));
        println!("  admin key: {}", tenant.admin_key);
        println!("  agents:    {}", deployed.join(", "));
        // The client verbs (`atoll run`, `atoll deploy`, ...) find this server without flags.
        let keys = super::client::profile::DevKeys {
            url: &base,
            app_key: &tenant.app_key,
            org_key: tenant.org_key.as_deref(),
            app_id: &tenant.app_id,
        };
        match super::client::profile::save_dev(&keys) {
            Ok((names, path)) => {
                println!("  profiles:  {} in {}", names.join(", "), path.display())
            }
            Err(e) => warn!(error = %e, "the dev profile was not saved"),
        }
        let _watching = if args.watch {
            let task = super::watch::spawn(&base, &tenant.app_key, dirs.clone())?;
            println!(
                "  watching:  {} agent directories; an edit is deployed as a new dev version",
                dirs.len()
            );
            Some(task)
        } else {
            None
        };
        println!();
        println!("Start a run and wait for it:");
        println!(
            "  curl -s -X POST '{base}/v1/agents/atoll/hello/runs?wait=10' -H 'authorization: Bearer {}' -H 'content-type: application/json' -d '{{\"input\":{{\"name\":\"Ada\"}}}}'",
            tenant.app_key
        );
        server::stop_requested(&server, stop).await;
        info!("shutting down");
        server.stop().await
    })
}

async fn create_tenant(store: &dyn Store, admin_key: String) -> anyhow::Result<DevTenant> {
    let now = now_ms();
    let org = Org {
        id: new_id("org"),
        name: "dev".into(),
        created_at: now,
    };
    store.create_org(&org).await?;
    let app = App {
        id: new_id("app"),
        org_id: org.id.clone(),
        name: "dev".into(),
        settings: json!({}),
        created_at: now,
    };
    store.create_app(&app).await?;
    let (_, secret) = issue_key(
        store,
        &org.id,
        Some(&app.id),
        KeyKind::App,
        "dev app key",
        vec!["*".into()],
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(DevTenant {
        admin_key,
        master_key: None,
        org_id: org.id,
        app_id: app.id,
        app_key: secret,
        org_key: None,
    })
}

/// The address a client on this machine reaches a server listening on `addr` at.
fn reachable(addr: std::net::SocketAddr) -> std::net::SocketAddr {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    std::net::SocketAddr::new(ip, addr.port())
}

/// Uploads every package directory of `paths` as a version of the dev app.
async fn deploy_agents(store: &dyn Store, app_id: &str, paths: &[PathBuf]) -> Vec<String> {
    let mut deployed = Vec::new();
    for path in paths {
        match deploy_one(store, app_id, path).await {
            Ok(name) => deployed.push(name),
            Err(e) => warn!(package = %path.display(), error = %e, "not deployed"),
        }
    }
    deployed
}

/// The package directories under `dir` that `atoll dev` deploys (and watches).
fn agent_dirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        warn!(dir = %dir.display(), "no agents directory; nothing deployed");
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("agent.json").is_file())
        // The hostile agents are the test suite's attacks, not samples for users.
        .filter(|p| {
            !p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("hostile-"))
        })
        .collect();
    paths.sort();
    paths
}

async fn deploy_one(store: &dyn Store, app_id: &str, path: &Path) -> anyhow::Result<String> {
    let package = AgentPackage::load_path(path, &PackageLimits::default())?;
    let version = version_record(app_id, &package)?;
    let label = format!("{}@{}", version.name, version.version);
    match store.put_agent_version(&version).await? {
        PutVersion::Conflict => {
            anyhow::bail!("{label} exists with other content; bump its version")
        }
        PutVersion::Deleted => {
            anyhow::bail!("{label} was deleted and its number is not reused; bump its version")
        }
        PutVersion::Created | PutVersion::Unchanged => Ok(label),
    }
}

/// Writes a file only its owner can read (it holds keys).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}

fn random_hex(bytes: usize) -> anyhow::Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::getrandom(&mut buf).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(hex::encode(buf))
}

fn run_async(work: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("atoll: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("atoll: {e:#}");
            ExitCode::FAILURE
        }
    }
}
