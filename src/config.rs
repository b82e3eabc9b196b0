//! Server configuration, from flags and environment variables (flags win).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use crate::sandbox::Limits;

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "ATOLL_LISTEN", default_value = "127.0.0.1:7070")]
    pub listen: SocketAddr,
    /// PostgreSQL URL; unset → embedded SQLite in the data directory.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Redis URL for quotas, rate limits and event fan-out; unset → in-process.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// Prefix of every Redis key and channel (several deployments can share a Redis).
    #[arg(long, env = "ATOLL_REDIS_PREFIX", default_value = "atoll")]
    pub redis_prefix: String,
    /// Where embedded storage lives.
    #[arg(long, env = "ATOLL_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// The operator's admin key (creates orgs): `atl_` and at least 24 letters, digits, `_`, `-`.
    #[arg(long, env = "ATOLL_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
    /// Master key for secrets at rest (64 hex chars).
    #[arg(long, env = "ATOLL_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,
    /// This node's name in run leases (default: random).
    #[arg(long, env = "ATOLL_NODE_ID")]
    pub node_id: Option<String>,
    /// Run wall-clock ceiling, ms.
    #[arg(long, env = "ATOLL_TIMEOUT_MS", default_value_t = 60_000)]
    pub timeout_ms: u64,
    /// Run CPU ceiling, ms.
    #[arg(long, env = "ATOLL_CPU_MS", default_value_t = 2_000)]
    pub cpu_ms: u64,
    /// Run heap ceiling, MiB.
    #[arg(long, env = "ATOLL_MEMORY_MB", default_value_t = 64)]
    pub memory_mb: u64,
    /// Addresses `fetch` may reach despite their class (IPs or CIDRs, comma-separated).
    #[arg(long, env = "ATOLL_ALLOW_NET", value_delimiter = ',')]
    pub allow_net: Vec<String>,
    /// How long running runs may finish at shutdown before they are cancelled, ms.
    #[arg(long, env = "ATOLL_SHUTDOWN_GRACE_MS", default_value_t = 10_000)]
    pub shutdown_grace_ms: u64,
    /// Request rate per key per minute.
    #[arg(long, env = "ATOLL_RATE_PER_MINUTE", default_value_t = 600)]
    pub rate_per_minute: u64,
    /// Concurrent runs per app.
    #[arg(long, env = "ATOLL_CONCURRENT_RUNS", default_value_t = 100)]
    pub concurrent_runs: u64,
    /// Concurrent runs per end-user.
    #[arg(long, env = "ATOLL_END_USER_CONCURRENT_RUNS", default_value_t = 10)]
    pub end_user_concurrent_runs: u64,
    /// Runs started per end-user per minute.
    #[arg(long, env = "ATOLL_END_USER_RUNS_PER_MINUTE", default_value_t = 120)]
    pub end_user_runs_per_minute: u64,
    /// Runs started per org per minute (all its apps).
    #[arg(long, env = "ATOLL_ORG_RUNS_PER_MINUTE", default_value_t = 10_000)]
    pub org_runs_per_minute: u64,
    /// Runs started per app per minute.
    #[arg(long, env = "ATOLL_RUNS_PER_MINUTE", default_value_t = 1_000)]
    pub runs_per_minute: u64,
    /// CPU milliseconds per app per day.
    #[arg(long, env = "ATOLL_CPU_MS_PER_DAY", default_value_t = 3_600_000)]
    pub cpu_ms_per_day: u64,
    /// Runs this node executes at once (more wait in the queue).
    #[arg(long, env = "ATOLL_MAX_INFLIGHT", default_value_t = 2_000)]
    pub max_inflight: usize,
    /// Droppable run events (logs, emits, ...) a node keeps queued for the store; past
    /// that they are dropped and counted (lifecycle events never are).
    #[arg(long, env = "ATOLL_EVENT_QUEUE", default_value_t = crate::runs::events::DEFAULT_CAPACITY)]
    pub event_queue: usize,
    /// How long a node's claim on a running run lasts without renewal, ms.
    #[arg(long, env = "ATOLL_LEASE_MS", default_value_t = 30_000)]
    pub lease_ms: u64,
    /// Where isolates run: `process` (locked-down sandbox processes, the default) or
    /// `inline` (in the server process: no OS boundary; for debugging only).
    #[arg(long, env = "ATOLL_SANDBOX", default_value = "process")]
    pub sandbox: SandboxMode,
    /// The binary sandbox processes are started from (default: this one).
    #[arg(long, env = "ATOLL_SANDBOX_PROGRAM")]
    pub sandbox_program: Option<PathBuf>,
    /// Runs a sandbox process takes before it is recycled.
    #[arg(long, env = "ATOLL_SANDBOX_RUNS", default_value_t = crate::process::supervisor::DEFAULT_RUNS_PER_CHILD)]
    pub sandbox_runs: u64,
    /// Resident memory past which a sandbox process is recycled, MiB.
    #[arg(long, env = "ATOLL_SANDBOX_RSS_MB", default_value_t = 1024)]
    pub sandbox_rss_mb: u64,
    /// Address-space ceiling of a sandbox process (RLIMIT_AS), MiB; 0 = none.
    #[arg(long, env = "ATOLL_SANDBOX_ADDRESS_SPACE_MB", default_value_t = 0)]
    pub sandbox_address_space_mb: u64,
    /// LLM tokens (input + output) per app per day.
    #[arg(long, env = "ATOLL_LLM_TOKENS_PER_DAY", default_value_t = 10_000_000)]
    pub llm_tokens_per_day: u64,
    /// Largest request body, bytes (package uploads included).
    #[arg(long, env = "ATOLL_MAX_BODY_BYTES", default_value_t = 6 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Largest body an inbound webhook (`POST /v1/hooks/{id}`) may have, bytes.
    #[arg(long, env = "ATOLL_HOOK_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub hook_max_body_bytes: usize,
    /// Waits between a webhook delivery's attempts (one attempt more than waits).
    #[arg(long, env = "ATOLL_WEBHOOK_RETRY_DELAYS", default_value = crate::hooks::deliver::DEFAULT_RETRY_DELAYS)]
    pub webhook_retry_delays: String,
    /// How long an endpoint has to answer a delivery with a 2xx, ms.
    #[arg(long, env = "ATOLL_WEBHOOK_TIMEOUT_MS", default_value_t = 15_000)]
    pub webhook_timeout_ms: u64,
    /// Deliveries a node sends at once, in all and to one endpoint.
    #[arg(long, env = "ATOLL_WEBHOOK_CONCURRENCY", default_value_t = 64)]
    pub webhook_concurrency: usize,
    #[arg(long, env = "ATOLL_WEBHOOK_ENDPOINT_CONCURRENCY", default_value_t = 4)]
    pub webhook_endpoint_concurrency: usize,
    /// An endpoint whose every attempt failed for this long is disabled.
    #[arg(long, env = "ATOLL_WEBHOOK_DISABLE_AFTER", default_value = "5days")]
    pub webhook_disable_after: humantime::Duration,
    /// How often a node looks for due webhook deliveries, ms.
    #[arg(long, env = "ATOLL_WEBHOOK_POLL_MS", default_value_t = 250)]
    pub webhook_poll_ms: u64,
    /// Bytes of journal a run may have (every host call's answer), before it fails
    /// `journal_too_large`.
    #[arg(long, env = "ATOLL_JOURNAL_MAX_BYTES", default_value_t = 16 << 20)]
    pub journal_max_bytes: u64,
    /// Runs of one app that may wait (parked, no isolate) at once; past that a run that
    /// would park fails `waiting_limit`.
    #[arg(long, env = "ATOLL_WAITING_RUNS_PER_APP", default_value_t = 10_000)]
    pub waiting_runs_per_app: u64,
    /// Log one line per HTTP request (method, path, status, time); `atoll dev` sets it.
    #[arg(long, env = "ATOLL_LOG_REQUESTS")]
    pub log_requests: bool,
    /// How often a node looks for due cron triggers, ms.
    #[arg(long, env = "ATOLL_CRON_TICK_MS", default_value_t = 1_000)]
    pub cron_tick_ms: u64,
}

/// Where a server runs its isolates.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxMode {
    Process,
    Inline,
}

impl ServeArgs {
    pub fn ceilings(&self) -> Limits {
        Limits {
            timeout_ms: self.timeout_ms,
            cpu_ms: self.cpu_ms,
            memory_mb: self.memory_mb,
            ..Limits::default()
        }
    }

    /// The database URL to use: the configured one, or SQLite under the data dir.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("atoll.db").display()),
        }
    }
}
