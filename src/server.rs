//! Assembling and running the server: storage, quotas, event bus, sandbox pool, run
//! service and HTTP API, with graceful shutdown. Used by `atoll serve`, `atoll dev` and
//! the tests (which start it in-process on port 0).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::api::{self, ApiLimits, AppState, StateParts};
use crate::broker::oauth::TokenCache;
use crate::broker::resolve::{PolicyResolver, SystemLookup};
use crate::broker::secrets::MasterKeys;
use crate::broker::tools::HttpTools;
use crate::broker::{AddressPolicy, BrokeredFetcher, HttpFetcher};
use crate::bus::{EventBus, MemoryBus, RedisBus};
use crate::config::{SandboxMode, ServeArgs};
use crate::hooks::deliver::{parse_delays, Deliverer, DelivererConfig, DEFAULT_RETRY_DELAYS};
use crate::llm::host::ProviderLlm;
use crate::llm::LlmHttp;
use crate::process::{Sandbox, Spawn, Supervisor, SupervisorConfig};
use crate::quota::{MemoryQuotas, Quotas, RedisQuotas};
use crate::runs::admission::{Admission, AdmissionLimits};
use crate::runs::{RunService, RunServiceConfig};
use crate::sandbox::{Pool, PoolConfig};
use crate::store::{SqlStore, Store};

/// A server listening on `addr` until `stop` is called.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub state: AppState,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl RunningServer {
    /// Graceful shutdown: stop accepting, let runs finish up to the grace period, cancel
    /// the rest, stop the pool.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.task.await.context("server task")?
    }

    /// Asks for shutdown without waiting (what SIGTERM does).
    pub fn token(&self) -> CancellationToken {
        self.stop.clone()
    }
}

/// What must hold before anything starts (the admin key's form).
fn check_args(args: &ServeArgs) -> anyhow::Result<()> {
    if let Some(key) = &args.admin_key {
        crate::api::auth::check_admin_key(key).map_err(anyhow::Error::msg)?;
    }
    Ok(())
}

pub async fn connect_store(args: &ServeArgs) -> anyhow::Result<Arc<dyn Store>> {
    if args.database_url.is_none() {
        std::fs::create_dir_all(&args.data_dir).with_context(|| {
            format!(
                "cannot create the data directory {}",
                args.data_dir.display()
            )
        })?;
    }
    let url = args.database_url();
    let store = SqlStore::connect(&url).await.with_context(|| {
        format!(
            "cannot open the database ({}); check DATABASE_URL",
            redact(&url)
        )
    })?;
    Ok(Arc::new(store))
}

fn redact(url: &str) -> String {
    match url.split_once('@') {
        Some((_, rest)) => format!("***@{rest}"),
        None => url.to_owned(),
    }
}

pub async fn start(args: ServeArgs) -> anyhow::Result<RunningServer> {
    check_args(&args)?;
    let store = connect_store(&args).await?;
    start_with_store(args, store).await
}

/// The server over a store the caller opened (tests wrap the real one).
pub async fn start_with_store(
    args: ServeArgs,
    store: Arc<dyn Store>,
) -> anyhow::Result<RunningServer> {
    check_args(&args)?;
    let (quotas, bus): (Arc<dyn Quotas>, Arc<dyn EventBus>) = match &args.redis_url {
        Some(url) => (
            Arc::new(
                RedisQuotas::connect(url, &args.redis_prefix)
                    .await
                    .context("cannot reach Redis for quotas; check REDIS_URL")?,
            ),
            Arc::new(
                RedisBus::connect(url, &args.redis_prefix)
                    .await
                    .context("cannot reach Redis for events; check REDIS_URL")?,
            ),
        ),
        None => (Arc::new(MemoryQuotas::new()), Arc::new(MemoryBus::new())),
    };
    let sandbox = start_sandbox(&args).await?;
    let policy = AddressPolicy::parse(&args.allow_net)
        .map_err(|e| anyhow::anyhow!("ATOLL_ALLOW_NET: {e}"))?;
    let webhook_policy = policy.clone();
    let http = Arc::new(
        HttpFetcher::new(policy.clone()).map_err(|e| anyhow::anyhow!("HTTP client: {e}"))?,
    );
    let master_keys = match &args.master_key {
        Some(spec) => Some(Arc::new(MasterKeys::parse(spec).map_err(|e| {
            anyhow::anyhow!(
                "ATOLL_MASTER_KEY: {e}; give 64 hex characters (or id:hex,... to rotate)"
            )
        })?)),
        None => {
            tracing::warn!(
                "ATOLL_MASTER_KEY is not set: connections (stored credentials) are disabled"
            );
            None
        }
    };
    let fetcher = Arc::new(BrokeredFetcher {
        store: store.clone(),
        keys: master_keys.clone(),
        tokens: Arc::new(TokenCache::new()),
        http,
    });
    let tools = Arc::new(HttpTools {
        store: store.clone(),
        fetcher: fetcher.clone(),
    });
    let ceilings = args.ceilings();
    let lease = Duration::from_millis(args.lease_ms);
    let admission = Admission::new(
        quotas,
        AdmissionLimits {
            requests_per_minute: args.rate_per_minute,
            org_runs_per_minute: args.org_runs_per_minute,
            app_runs_per_minute: args.runs_per_minute,
            end_user_runs_per_minute: args.end_user_runs_per_minute,
            concurrent_runs_per_app: args.concurrent_runs,
            concurrent_runs_per_end_user: args.end_user_concurrent_runs,
            cpu_ms_per_day: args.cpu_ms_per_day,
            llm_tokens_per_day: args.llm_tokens_per_day,
            // A slot outlives the longest run and a lost lease, then frees itself.
            slot_ttl: ceilings.wall() * 2 + lease,
        },
    );
    let llm = Arc::new(ProviderLlm {
        fetcher: fetcher.clone(),
        tools: tools.clone(),
        http: LlmHttp::new(policy).map_err(|e| anyhow::anyhow!("LLM client: {e}"))?,
        admission: admission.clone(),
    });
    let node_id = args
        .node_id
        .clone()
        .unwrap_or_else(|| crate::ids::new_id("node"));
    let runs = RunService::start(RunServiceConfig {
        store: store.clone(),
        bus,
        admission: admission.clone(),
        sandbox: sandbox.clone(),
        fetcher: fetcher.clone(),
        tools,
        llm,
        node_id: node_id.clone(),
        ceilings: ceilings.clone(),
        lease,
        max_inflight: args.max_inflight,
        event_queue: args.event_queue,
        journal_max_bytes: args.journal_max_bytes,
        waiting_runs_per_app: args.waiting_runs_per_app,
    })
    .await
    .map_err(|e| anyhow::anyhow!("cannot start the run service: {e}"))?;
    let stop = CancellationToken::new();
    start_hooks(
        &args,
        &store,
        &master_keys,
        &webhook_policy,
        &runs,
        &node_id,
        &stop,
    )?;
    let state = AppState::new(StateParts {
        store,
        admission,
        runs: runs.clone(),
        admin_key: args.admin_key.as_deref(),
        master_keys,
        ceilings,
        limits: ApiLimits {
            max_body_bytes: args.max_body_bytes,
            hook_max_body_bytes: args.hook_max_body_bytes,
            log_requests: args.log_requests,
        },
        destinations: PolicyResolver::new(Arc::new(webhook_policy), Arc::new(SystemLookup)),
    });
    let listener = TcpListener::bind(args.listen).await.with_context(|| {
        format!(
            "cannot listen on {}; is another server running there? (ATOLL_LISTEN)",
            args.listen
        )
    })?;
    let addr = listener.local_addr()?;
    info!(%addr, node = %node_id, "atoll listening");
    let app = api::router(state.clone());
    let grace = Duration::from_millis(args.shutdown_grace_ms);
    let token = stop.clone();
    tokio::spawn(purge_idempotency(state.store.clone(), stop.clone()));
    let task = tokio::spawn(async move {
        let serve =
            axum::serve(listener, app).with_graceful_shutdown(token.clone().cancelled_owned());
        let served = serve.await;
        info!("HTTP stopped; finishing runs");
        runs.shutdown(grace).await;
        sandbox.shutdown().await;
        served.context("HTTP server")
    });
    Ok(RunningServer {
        addr,
        state,
        stop,
        task,
    })
}

/// Webhooks out and cron triggers: this node's deliverer and cron loop, until `stop`.
fn start_hooks(
    args: &ServeArgs,
    store: &Arc<dyn Store>,
    keys: &Option<Arc<MasterKeys>>,
    policy: &AddressPolicy,
    runs: &RunService,
    node_id: &str,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let retry_delays = parse_delays(&args.webhook_retry_delays).map_err(|e| {
        anyhow::anyhow!("ATOLL_WEBHOOK_RETRY_DELAYS: {e}; e.g. {DEFAULT_RETRY_DELAYS}")
    })?;
    let deliverer = Deliverer::new(
        store.clone(),
        keys.clone(),
        policy.clone(),
        Arc::new(SystemLookup),
        DelivererConfig {
            node_id: node_id.to_owned(),
            retry_delays,
            timeout: Duration::from_millis(args.webhook_timeout_ms),
            per_endpoint: args.webhook_endpoint_concurrency.max(1),
            max_inflight: args.webhook_concurrency.max(1),
            poll: Duration::from_millis(args.webhook_poll_ms.max(10)),
            disable_after: args.webhook_disable_after.into(),
        },
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    tokio::spawn(deliverer.run(stop.clone()));
    tokio::spawn(crate::hooks::cron::run(
        runs.clone(),
        Duration::from_millis(args.cron_tick_ms.max(10)),
        stop.clone(),
    ));
    Ok(())
}

/// Idempotency records are kept 24 hours (SPEC §5), finished webhook deliveries and
/// trigger firings 30 days; older ones are deleted hourly.
async fn purge_idempotency(store: Arc<dyn Store>, stop: CancellationToken) {
    loop {
        let now = crate::ids::now_ms();
        match store.idempotency_purge(now - 86_400_000).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(purged = n, "old idempotency records deleted"),
            Err(e) => tracing::warn!(error = %e, "could not purge idempotency records"),
        }
        match store.purge_hooks(now - 30 * 86_400_000).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(purged = n, "old webhook deliveries and firings deleted"),
            Err(e) => tracing::warn!(error = %e, "could not purge webhook deliveries"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
    }
}

/// The isolates' home: sandbox processes (the default) or this process.
async fn start_sandbox(args: &ServeArgs) -> anyhow::Result<Sandbox> {
    let pool = PoolConfig {
        heap_mb: args.memory_mb,
        ..PoolConfig::default()
    };
    if args.sandbox == SandboxMode::Inline {
        tracing::warn!("ATOLL_SANDBOX=inline: isolates run inside the server process, with no OS boundary around them");
        let pool = Pool::new(pool).context("cannot start the sandbox pool")?;
        return Ok(Sandbox::InProcess(pool));
    }
    let program = match &args.sandbox_program {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .context("cannot find this binary to start sandbox processes from")?,
    };
    let supervisor = Supervisor::start(SupervisorConfig {
        spawn: Spawn {
            program,
            pool,
            address_space_mb: args.sandbox_address_space_mb,
        },
        runs_per_child: args.sandbox_runs.max(1),
        rss_limit_bytes: args.sandbox_rss_mb.saturating_mul(1024 * 1024),
        tick: Duration::from_millis(250),
    })
    .await
    .context("cannot start the sandbox processes")?;
    Ok(Sandbox::Processes(supervisor))
}

/// Resolves on `stop` (see [`shutdown_signal`]) or when the server stops itself.
pub async fn stop_requested(server: &RunningServer, stop: impl std::future::Future<Output = ()>) {
    tokio::select! {
        _ = stop => {}
        _ = server.stop.cancelled() => {}
    }
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called, not
/// when it is first polled: call it before starting anything, so a signal that comes
/// during startup drains the server instead of killing it.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let interrupt = signal(SignalKind::interrupt()).ok();
    let terminate = signal(SignalKind::terminate()).ok();
    async move {
        let wait = |s: Option<tokio::signal::unix::Signal>| async move {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = wait(interrupt) => {}
            _ = wait(terminate) => {}
        }
    }
}
