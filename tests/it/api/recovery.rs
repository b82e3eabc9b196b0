//! Restart recovery with a real process: kill -9 a server with runs queued and running;
//! after a restart the queued runs finish and the running one is failed `node_lost` —
//! none stays stuck.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

use super::ADMIN;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

async fn spawn(env: &[(String, String)], base: &str) -> Server {
    let child = Command::new(env!("CARGO_BIN_EXE_atoll"))
        .arg("serve")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("ATOLL_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn atoll serve");
    let server = Server(child);
    let http = Client::new();
    for _ in 0..200 {
        if http
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("atoll serve did not come up");
}

async fn call(
    http: &Client,
    method: reqwest::Method,
    url: String,
    key: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = http.request(method, url).bearer_auth(key);
    if let Some(body) = body {
        req = req.json(&body);
    }
    super::read(req.send().await.expect("send")).await
}

/// Starts three runs of a slow agent on a server that runs one at a time, kills it with
/// SIGKILL while the first runs, restarts it, and returns the three final runs.
async fn kill_and_restart(retry_on_node_lost: bool) -> Vec<Value> {
    let dir = tempfile::tempdir().expect("tempdir");
    let args = super::args_for(dir.path()).await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut env = vec![
        ("ATOLL_LISTEN".to_owned(), format!("127.0.0.1:{port}")),
        (
            "ATOLL_DATA_DIR".to_owned(),
            dir.path().join("data").display().to_string(),
        ),
        ("ATOLL_ADMIN_KEY".to_owned(), ADMIN.to_owned()),
        ("ATOLL_NODE_ID".to_owned(), "node-recovery-test".to_owned()),
        ("ATOLL_MAX_INFLIGHT".to_owned(), "1".to_owned()),
        ("ATOLL_LEASE_MS".to_owned(), "1500".to_owned()),
        ("ATOLL_REDIS_PREFIX".to_owned(), args.redis_prefix.clone()),
    ];
    if let Some(url) = &args.database_url {
        env.push(("DATABASE_URL".to_owned(), url.clone()));
    }
    if let Some(url) = &args.redis_url {
        env.push(("REDIS_URL".to_owned(), url.clone()));
    }
    let http = Client::new();
    let server = spawn(&env, &base).await;

    let (s, org) = call(
        &http,
        reqwest::Method::POST,
        format!("{base}/v1/orgs"),
        ADMIN,
        Some(json!({ "name": "r" })),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{org}");
    let org_key = org["key"]["secret"].as_str().expect("org key").to_owned();
    let (_, app) = call(
        &http,
        reqwest::Method::POST,
        format!("{base}/v1/apps"),
        &org_key,
        Some(json!({ "name": "a" })),
    )
    .await;
    let (_, key) = call(
        &http,
        reqwest::Method::POST,
        format!("{base}/v1/api-keys"),
        &org_key,
        Some(json!({ "name": "k", "kind": "app", "app_id": app["id"] })),
    )
    .await;
    let key = key["secret"].as_str().expect("key").to_owned();
    let manifest =
        json!({ "name": "@t/slow", "version": "1.0.0", "retry_on_node_lost": retry_on_node_lost });
    let files = json!({ "main.js": "export default async (input) => { await new Promise((r) => setTimeout(r, 1500)); return input.n; };" });
    let (s, _) = call(
        &http,
        reqwest::Method::PUT,
        format!("{base}/v1/agents/t/slow/versions/1.0.0"),
        &key,
        Some(json!({ "manifest": manifest, "files": files })),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);

    let mut ids = Vec::new();
    for n in 0..3 {
        let (s, run) = call(
            &http,
            reqwest::Method::POST,
            format!("{base}/v1/agents/t/slow/runs"),
            &key,
            Some(json!({ "input": { "n": n } })),
        )
        .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{run}");
        ids.push(run["id"].as_str().expect("id").to_owned());
    }
    // One runs (max in flight is 1), two wait in the queue; then the process dies.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (_, first) = call(
        &http,
        reqwest::Method::GET,
        format!("{base}/v1/runs/{}", ids[0]),
        &key,
        None,
    )
    .await;
    assert_eq!(first["status"], "running", "{first}");
    drop(server); // SIGKILL

    let _server = spawn(&env, &base).await;
    let mut finals = Vec::new();
    for id in &ids {
        let mut last = Value::Null;
        for _ in 0..200 {
            let (_, run) = call(
                &http,
                reqwest::Method::GET,
                format!("{base}/v1/runs/{id}"),
                &key,
                None,
            )
            .await;
            if matches!(
                run["status"].as_str(),
                Some("succeeded" | "failed" | "timed_out" | "cancelled")
            ) {
                last = run;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(!last.is_null(), "run {id} is stuck");
        finals.push(last);
    }
    finals
}

#[tokio::test]
async fn killed_server_leaves_no_run_stuck() {
    let finals = kill_and_restart(false).await;
    assert_eq!(finals[0]["status"], "failed", "{}", finals[0]);
    assert_eq!(finals[0]["error"]["code"], "node_lost", "{}", finals[0]);
    for run in &finals[1..] {
        assert_eq!(run["status"], "succeeded", "{run}");
    }
    assert_eq!(finals[2]["output"], 2);
}

#[tokio::test]
async fn a_run_whose_agent_allows_it_is_retried_after_its_node_died() {
    let finals = kill_and_restart(true).await;
    assert_eq!(finals[0]["status"], "succeeded", "{}", finals[0]);
    assert_eq!(finals[0]["attempt"], 2, "{}", finals[0]);
    assert_eq!(finals[0]["output"], 0);
}
