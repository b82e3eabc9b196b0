//! What the server benchmarks share: a server configured for benchmarking (quotas out of
//! the way), and the API calls that set up a tenant and an agent.

use atoll::config::ServeArgs;
use serde_json::{json, Value};

pub const ADMIN: &str = "atl_bench_admin_key_000000000";

/// A server on loopback with SQLite (or `database_url`), sandbox processes, and quotas
/// too high to matter.
pub fn args(dir: &std::path::Path, database_url: Option<String>) -> ServeArgs {
    ServeArgs {
        listen: "127.0.0.1:0".parse().expect("addr"),
        database_url,
        redis_url: std::env::var("ATOLL_BENCH_REDIS_URL").ok(),
        redis_prefix: format!("bench{}", uuid::Uuid::new_v4().simple()),
        data_dir: dir.to_path_buf(),
        admin_key: Some(ADMIN.into()),
        master_key: None,
        node_id: None,
        timeout_ms: 60_000,
        cpu_ms: 2_000,
        memory_mb: 64,
        allow_net: vec![],
        shutdown_grace_ms: 1_000,
        rate_per_minute: 10_000_000,
        end_user_concurrent_runs: 10,
        end_user_runs_per_minute: 10_000,
        org_runs_per_minute: 10_000_000,
        concurrent_runs: 100_000,
        runs_per_minute: 10_000_000,
        cpu_ms_per_day: u64::MAX / 4,
        lease_ms: 30_000,
        max_inflight: 2_000,
        event_queue: atoll::runs::events::DEFAULT_CAPACITY,
        llm_tokens_per_day: 10_000_000,
        sandbox: atoll::config::SandboxMode::Process,
        sandbox_program: Some(env!("CARGO_BIN_EXE_atoll").into()),
        sandbox_runs: atoll::process::supervisor::DEFAULT_RUNS_PER_CHILD,
        sandbox_rss_mb: 1024,
        sandbox_address_space_mb: 0,
        max_body_bytes: 6 << 20,
        hook_max_body_bytes: 1 << 20,
        webhook_retry_delays: atoll::hooks::deliver::DEFAULT_RETRY_DELAYS.into(),
        webhook_timeout_ms: 15_000,
        webhook_concurrency: 64,
        webhook_endpoint_concurrency: 4,
        webhook_disable_after: std::time::Duration::from_secs(5 * 86_400).into(),
        webhook_poll_ms: 250,
        cron_tick_ms: 1_000,
        journal_max_bytes: 16 << 20,
        waiting_runs_per_app: 10_000,
        log_requests: false,
    }
}

/// POSTs `body`; returns the JSON answer.
pub async fn post(http: &reqwest::Client, url: &str, key: &str, body: Value) -> Value {
    let r = http
        .post(url)
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .expect("send");
    r.json().await.expect("json")
}

/// A new org (named `name`) with one app; returns the app's id and an app key.
pub async fn app_key(http: &reqwest::Client, base: &str, name: &str) -> (String, String) {
    let org = post(
        http,
        &format!("{base}/v1/orgs"),
        ADMIN,
        json!({ "name": name }),
    )
    .await;
    let org_key = org["key"]["secret"].as_str().expect("org key").to_owned();
    let app = post(
        http,
        &format!("{base}/v1/apps"),
        &org_key,
        json!({ "name": name }),
    )
    .await;
    let key = post(
        http,
        &format!("{base}/v1/api-keys"),
        &org_key,
        json!({ "name": "k", "kind": "app", "app_id": app["id"] }),
    )
    .await;
    let app_id = app["id"].as_str().expect("app id").to_owned();
    (app_id, key["secret"].as_str().expect("key").to_owned())
}

/// Uploads a one-file agent `@scope/name` at version 1.0.0.
pub async fn upload(http: &reqwest::Client, base: &str, key: &str, name: &str, source: &str) {
    let path = name.trim_start_matches('@');
    let body =
        json!({ "manifest": { "name": name, "version": "1.0.0" }, "files": { "main.js": source } });
    let r = http
        .put(format!("{base}/v1/agents/{path}/versions/1.0.0"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .expect("upload");
    assert!(r.status().is_success(), "upload: {}", r.status());
}
