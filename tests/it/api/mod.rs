//! HTTP API tests against a real server on loopback: SQLite + in-process quotas by
//! default; PostgreSQL + Redis when `ATOLL_TEST_DATABASE_URL` / `ATOLL_TEST_REDIS_URL`
//! are set (as in CI), each test in its own schema and key prefix.

mod admission;
mod broker;
mod broker_leaks;
mod durable;
mod durable_crash;
mod durable_order;
mod durable_replay;
mod errors;
mod events;
mod fairness;
mod faults;
mod hook_kit;
mod hygiene;
mod idempotency;
mod impersonation;
mod lifecycle;
mod openapi;
mod org_reads;
mod quotas;
mod real_server;
mod recovery;
mod sandbox_processes;
mod tenancy;
mod triggers;
mod upload_check;
mod versions;
mod webhook_crash;
mod webhooks;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use atoll::config::ServeArgs;
use atoll::server::{self, RunningServer};
use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};

use crate::faults::FaultyStore;

pub const ADMIN: &str = "atl_test_admin_key_0123456789";

pub struct TestApi {
    pub server: Option<RunningServer>,
    pub base: String,
    pub http: Client,
    _dir: tempfile::TempDir,
}

/// A fresh PostgreSQL schema for one test, as a database URL.
async fn pg_schema(url: &str) -> String {
    use sqlx::Connection;
    let schema = format!("atoll_api_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .expect("connect to test PostgreSQL");
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut conn)
        .await
        .expect("create schema");
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-c%20search_path%3D{schema}")
}

pub async fn args_for(dir: &Path) -> ServeArgs {
    let database_url = match std::env::var("ATOLL_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(pg_schema(&url).await),
        _ => None,
    };
    let redis_url = std::env::var("ATOLL_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty());
    ServeArgs {
        listen: "127.0.0.1:0".parse().expect("addr"),
        database_url,
        redis_url,
        redis_prefix: format!("t{}", uuid::Uuid::new_v4().simple()),
        data_dir: dir.join("data"),
        admin_key: Some(ADMIN.into()),
        master_key: Some("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff".into()),
        node_id: Some(format!("node_{}", uuid::Uuid::new_v4().simple())),
        timeout_ms: 60_000,
        cpu_ms: 2_000,
        memory_mb: 64,
        allow_net: vec!["127.0.0.1/32".into()],
        shutdown_grace_ms: 2_000,
        rate_per_minute: 10_000,
        end_user_concurrent_runs: 10,
        end_user_runs_per_minute: 10_000,
        org_runs_per_minute: 10_000_000,
        concurrent_runs: 100,
        runs_per_minute: 10_000,
        cpu_ms_per_day: 3_600_000,
        lease_ms: 1_500,
        max_inflight: 2_000,
        event_queue: 8_192,
        llm_tokens_per_day: 10_000_000,
        sandbox: atoll::config::SandboxMode::Process,
        sandbox_program: Some(env!("CARGO_BIN_EXE_atoll").into()),
        sandbox_runs: atoll::process::supervisor::DEFAULT_RUNS_PER_CHILD,
        sandbox_rss_mb: 1024,
        sandbox_address_space_mb: 0,
        max_body_bytes: 6 * 1024 * 1024,
        hook_max_body_bytes: 64 * 1024,
        // Short waits so retries are seen within a test.
        webhook_retry_delays: "300ms,300ms,300ms".into(),
        webhook_timeout_ms: 2_000,
        webhook_concurrency: 16,
        webhook_endpoint_concurrency: 4,
        webhook_disable_after: std::time::Duration::from_secs(5 * 86_400).into(),
        webhook_poll_ms: 50,
        cron_tick_ms: 100,
        journal_max_bytes: 16 << 20,
        waiting_runs_per_app: 10_000,
        log_requests: false,
    }
}

impl TestApi {
    pub async fn start() -> TestApi {
        let dir = tempfile::tempdir().expect("tempdir");
        let args = args_for(dir.path()).await;
        TestApi::start_with(args, dir).await
    }

    /// A server whose store fails on demand (see [`FaultyStore`]).
    pub async fn start_faulty() -> (TestApi, Arc<FaultyStore>) {
        TestApi::start_faulty_with(|_| {}).await
    }

    pub async fn start_faulty_with(
        configure: impl FnOnce(&mut ServeArgs),
    ) -> (TestApi, Arc<FaultyStore>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut args = args_for(dir.path()).await;
        configure(&mut args);
        let store = FaultyStore::new(server::connect_store(&args).await.expect("store"));
        let server = server::start_with_store(args, store.clone())
            .await
            .expect("server starts");
        let api = TestApi {
            base: format!("http://{}", server.addr),
            server: Some(server),
            http: Client::new(),
            _dir: dir,
        };
        (api, store)
    }

    pub async fn start_with(args: ServeArgs, dir: tempfile::TempDir) -> TestApi {
        let server = server::start(args.clone()).await.expect("server starts");
        TestApi {
            base: format!("http://{}", server.addr),
            server: Some(server),
            http: Client::new(),
            _dir: dir,
        }
    }

    pub fn req(&self, method: Method, path: &str, key: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.req(method, path, key);
        if let Some(body) = body {
            req = req.json(&body);
        }
        read(req.send().await.expect("request")).await
    }

    /// A new org with an app and an app key: (org_key, app_id, app_key).
    pub async fn tenant(&self) -> (String, String, String) {
        let (status, org) = self
            .call(
                Method::POST,
                "/v1/orgs",
                ADMIN,
                Some(json!({ "name": "acme" })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{org}");
        let org_key = org["key"]["secret"].as_str().expect("org key").to_owned();
        let (app_id, app_key) = self.app_with_key(&org_key, "main").await;
        (org_key, app_id, app_key)
    }

    /// A new app named `name` in the org of `org_key`, with an app key: (app_id, app_key).
    pub async fn app_with_key(&self, org_key: &str, name: &str) -> (String, String) {
        let (status, app) = self
            .call(
                Method::POST,
                "/v1/apps",
                org_key,
                Some(json!({ "name": name })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{app}");
        let app_id = app["id"].as_str().expect("app id").to_owned();
        let (status, key) = self
            .call(
                Method::POST,
                "/v1/api-keys",
                org_key,
                Some(json!({ "name": "k", "kind": "app", "app_id": app_id })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{key}");
        (app_id, key["secret"].as_str().expect("secret").to_owned())
    }

    /// Uploads `agents/<dir>` as a JSON files map; returns (scope/name path, version).
    pub async fn deploy(&self, app_key: &str, dir: &str) -> (String, String) {
        let (manifest, files) = package_json(&agent_dir(dir));
        let name = manifest["name"]
            .as_str()
            .expect("name")
            .trim_start_matches('@')
            .to_owned();
        let version = manifest["version"].as_str().expect("version").to_owned();
        let (status, body) = self
            .call(
                Method::PUT,
                &format!("/v1/agents/{name}/versions/{version}"),
                app_key,
                Some(json!({ "manifest": manifest, "files": files })),
            )
            .await;
        assert!(
            status == StatusCode::CREATED || status == StatusCode::OK,
            "{status} {body}"
        );
        (name, version)
    }

    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await.expect("clean stop");
        }
    }
}

/// Uploads an inline agent `@t/<name>` at 1.0.0 whose `main.js` is `main`, with `extra`
/// manifest fields (permissions, durable, ...).
pub async fn upload_inline(api: &TestApi, key: &str, name: &str, extra: Value, main: &str) {
    let mut manifest = json!({ "name": format!("@t/{name}"), "version": "1.0.0" });
    if let (Some(m), Some(e)) = (manifest.as_object_mut(), extra.as_object()) {
        m.extend(e.clone());
    }
    let (status, body) = api
        .call(
            Method::PUT,
            &format!("/v1/agents/t/{name}/versions/1.0.0"),
            key,
            Some(json!({ "manifest": manifest, "files": { "main.js": main } })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// The response's `content-type`, or "" without one.
pub fn content_type(response: &Response) -> String {
    response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

pub async fn read(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

pub fn agent_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("agents")
        .join(name)
}

/// `(manifest, { path: text })` of a package directory.
pub fn package_json(dir: &Path) -> (Value, Value) {
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("agent.json")).expect("agent.json"))
            .expect("json");
    let mut files = serde_json::Map::new();
    fn walk(root: &Path, dir: &Path, files: &mut serde_json::Map<String, Value>) {
        for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, files);
            } else if path.file_name().is_some_and(|n| n != "agent.json") {
                let rel = path
                    .strip_prefix(root)
                    .expect("prefix")
                    .to_string_lossy()
                    .replace('\\', "/");
                files.insert(rel, json!(std::fs::read_to_string(&path).expect("text")));
            }
        }
    }
    walk(dir, dir, &mut files);
    (manifest, Value::Object(files))
}

/// Polls a run until it is final.
pub async fn wait_final(api: &TestApi, key: &str, run_id: &str) -> Value {
    for _ in 0..300 {
        let (status, run) = api
            .call(Method::GET, &format!("/v1/runs/{run_id}"), key, None)
            .await;
        assert_eq!(status, StatusCode::OK, "{run}");
        if matches!(
            run["status"].as_str(),
            Some("succeeded" | "failed" | "timed_out" | "cancelled")
        ) {
            return run;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("run {run_id} did not finish");
}

/// Polls a run until it is `running`, so a test acts on a run that has really started.
pub async fn wait_running(api: &TestApi, key: &str, run_id: &str) {
    for _ in 0..300 {
        let (_, run) = api
            .call(Method::GET, &format!("/v1/runs/{run_id}"), key, None)
            .await;
        if run["status"] == "running" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("run {run_id} never started running");
}

/// The whole SSE stream of a finished run, as text.
pub async fn events_text(api: &TestApi, key: &str, run_id: &str) -> String {
    api.req(Method::GET, &format!("/v1/runs/{run_id}/events"), key)
        .send()
        .await
        .expect("events")
        .text()
        .await
        .expect("text")
}
