//! Admission over HTTP: each run rule answers 429 with `retry-after`, `ratelimit-*` and
//! problem+json to the tenant over it, and leaves other orgs, apps and end-users alone.
//! Runs against in-process quotas, or Redis when `ATOLL_TEST_REDIS_URL` is set.

use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

use super::{args_for, read, wait_final, TestApi};

/// Deploys an agent that answers at once (`ms` = 0) or sleeps, or burns CPU (`busy`).
async fn deploy(api: &TestApi, key: &str, source: &str) {
    let manifest = json!({ "name": "@t/a", "version": "1.0.0" });
    let (status, body) = api
        .call(
            Method::PUT,
            "/v1/agents/t/a/versions/1.0.0",
            key,
            Some(json!({ "manifest": manifest, "files": { "main.js": source } })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

const QUICK: &str = "export default () => 'ok';";
const SLEEPER: &str =
    "export default async () => { await new Promise((r) => setTimeout(r, 30000)); };";
/// Enough work that its CPU time rounds up to at least one millisecond.
const BUSY: &str =
    "export default () => { let x = 0; for (let i = 0; i < 3e6; i++) x += i % 7; return x; };";

async fn start(api: &TestApi, key: &str, end_user: Option<&str>, query: &str) -> Response {
    let mut req = api.req(Method::POST, &format!("/v1/agents/t/a/runs{query}"), key);
    if let Some(user) = end_user {
        req = req.header("x-atoll-end-user", user);
    }
    req.json(&json!({})).send().await.expect("send")
}

async fn accepted(api: &TestApi, key: &str, end_user: Option<&str>) -> Value {
    let (status, body) = read(start(api, key, end_user, "").await).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    body
}

/// A 429 naming `what`, with the headers and body SPEC §5 promises.
async fn limited(response: Response, what: &str) {
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let headers = response.headers().clone();
    for h in [
        "retry-after",
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
    ] {
        assert!(headers.contains_key(h), "{h} missing");
    }
    assert_eq!(headers["ratelimit-remaining"], "0");
    assert_eq!(headers["content-type"], "application/problem+json");
    let (_, body) = read(response).await;
    assert_eq!(body["status"], 429, "{body}");
    assert!(body["title"].is_string(), "{body}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(what), "expected '{what}' in {body}");
}

#[tokio::test]
async fn org_runs_per_minute_is_shared_by_its_apps_and_no_other_org() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = args_for(dir.path()).await;
    args.org_runs_per_minute = 2;
    let api = TestApi::start_with(args, dir).await;
    let (org_key, _app, key) = api.tenant().await;
    let (_app2, key2) = api.app_with_key(&org_key, "second").await;
    let (_, _, other_org) = api.tenant().await;
    for k in [&key, &key2, &other_org] {
        deploy(&api, k, QUICK).await;
    }
    accepted(&api, &key, None).await;
    accepted(&api, &key2, None).await;
    limited(start(&api, &key, None, "").await, "org runs per minute").await;
    limited(start(&api, &key2, None, "").await, "org runs per minute").await;
    accepted(&api, &other_org, None).await;
    api.stop().await;
}

#[tokio::test]
async fn end_user_runs_per_minute_is_per_end_user() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = args_for(dir.path()).await;
    args.end_user_runs_per_minute = 1;
    let api = TestApi::start_with(args, dir).await;
    let (_org, _app, key) = api.tenant().await;
    deploy(&api, &key, QUICK).await;
    accepted(&api, &key, Some("alice")).await;
    let over = start(&api, &key, Some("alice"), "").await;
    limited(over, "end-user runs per minute").await;
    accepted(&api, &key, Some("bob")).await;
    accepted(&api, &key, None).await;
    api.stop().await;
}

#[tokio::test]
async fn app_runs_per_minute_is_per_app() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = args_for(dir.path()).await;
    args.runs_per_minute = 1;
    let api = TestApi::start_with(args, dir).await;
    let (org_key, _app, key) = api.tenant().await;
    let (_app2, key2) = api.app_with_key(&org_key, "second").await;
    deploy(&api, &key, QUICK).await;
    deploy(&api, &key2, QUICK).await;
    accepted(&api, &key, None).await;
    limited(start(&api, &key, None, "").await, "app runs per minute").await;
    accepted(&api, &key2, None).await;
    api.stop().await;
}

#[tokio::test]
async fn concurrent_runs_per_app_is_per_app() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = args_for(dir.path()).await;
    args.concurrent_runs = 1;
    let api = TestApi::start_with(args, dir).await;
    let (org_key, _app, key) = api.tenant().await;
    let (_app2, key2) = api.app_with_key(&org_key, "second").await;
    deploy(&api, &key, SLEEPER).await;
    deploy(&api, &key2, SLEEPER).await;
    accepted(&api, &key, None).await;
    limited(start(&api, &key, None, "").await, "concurrent runs per app").await;
    accepted(&api, &key2, None).await;
    api.stop().await;
}

#[tokio::test]
async fn cpu_spent_by_finished_runs_closes_the_app_for_the_day() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = args_for(dir.path()).await;
    args.cpu_ms_per_day = 1;
    let api = TestApi::start_with(args, dir).await;
    let (org_key, _app, key) = api.tenant().await;
    let (_app2, key2) = api.app_with_key(&org_key, "second").await;
    deploy(&api, &key, BUSY).await;
    deploy(&api, &key2, QUICK).await;
    let run = accepted(&api, &key, None).await;
    let done = wait_final(&api, &key, run["id"].as_str().expect("id")).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    limited(
        start(&api, &key, None, "").await,
        "CPU milliseconds per day",
    )
    .await;
    accepted(&api, &key2, None).await;
    api.stop().await;
}

/// A run cancelled while still queued gives its slot back (here the node runs one run at
/// a time, so the second run waits in the queue).
#[tokio::test]
async fn a_run_cancelled_while_queued_frees_its_slot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = args_for(dir.path()).await;
    args.concurrent_runs = 2;
    args.max_inflight = 1;
    let api = TestApi::start_with(args, dir).await;
    let (_org, _app, key) = api.tenant().await;
    deploy(&api, &key, SLEEPER).await;
    let running = accepted(&api, &key, None).await;
    super::wait_running(&api, &key, running["id"].as_str().expect("id")).await;
    let queued = accepted(&api, &key, None).await;
    let id = queued["id"].as_str().expect("id");
    let (status, body) = api
        .call(Method::POST, &format!("/v1/runs/{id}/cancel"), &key, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(wait_final(&api, &key, id).await["status"], "cancelled");
    accepted(&api, &key, None).await;
    limited(start(&api, &key, None, "").await, "concurrent runs per app").await;
    api.stop().await;
}
