//! Per-end-user concurrency and graceful shutdown.

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::{args_for, wait_final, TestApi};

async fn deploy_sleeper(api: &TestApi, key: &str, ms: u64) {
    let manifest = json!({ "name": "@t/sleeper", "version": "1.0.0" });
    let files = json!({ "main.js": format!("export default async () => {{ await new Promise((r) => setTimeout(r, {ms})); return 'slept'; }};") });
    let (status, body) = api
        .call(
            Method::PUT,
            "/v1/agents/t/sleeper/versions/1.0.0",
            key,
            Some(json!({ "manifest": manifest, "files": files })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn an_end_user_over_its_concurrency_gets_429_others_do_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = args_for(dir.path()).await;
    args.end_user_concurrent_runs = 1;
    let api = TestApi::start_with(args, dir).await;
    let (_org, _app, key) = api.tenant().await;
    deploy_sleeper(&api, &key, 1500).await;
    let start = |user: &'static str| {
        api.req(Method::POST, "/v1/agents/t/sleeper/runs", &key)
            .header("x-atoll-end-user", user)
            .json(&json!({}))
            .send()
    };
    let first = start("alice").await.expect("send");
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let first: serde_json::Value = first.json().await.expect("json");
    let second = start("alice").await.expect("send");
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(second.headers().contains_key("retry-after"));
    let other = start("bob").await.expect("send");
    assert_eq!(
        other.status(),
        StatusCode::ACCEPTED,
        "another end-user is not affected"
    );
    // The refusal asks for a quick retry (a slot frees when a run ends), not for the
    // slot's whole lifetime; and with an Idempotency-Key it is not the key's answer.
    let retry_after: u64 = second.headers()["retry-after"]
        .to_str()
        .ok()
        .and_then(|v| v.parse().ok())
        .expect("retry-after seconds");
    assert_eq!(retry_after, 1);
    let keyed = || {
        api.req(Method::POST, "/v1/agents/t/sleeper/runs", &key)
            .header("x-atoll-end-user", "alice")
            .header("idempotency-key", "retry-me")
            .json(&json!({}))
            .send()
    };
    let refused = keyed().await.expect("send");
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    // When alice's run ends her slot is free again, and the same key now starts a run.
    wait_final(&api, &key, first["id"].as_str().expect("id")).await;
    let again = keyed().await.expect("send");
    assert_eq!(again.status(), StatusCode::ACCEPTED);
    assert!(
        again.headers().get("idempotent-replayed").is_none(),
        "the 429 was not kept as the key's answer"
    );
    let replayed = keyed().await.expect("send");
    assert_eq!(replayed.status(), StatusCode::ACCEPTED);
    assert_eq!(
        replayed
            .headers()
            .get("idempotent-replayed")
            .map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    api.stop().await;
}

#[tokio::test]
async fn shutdown_lets_short_runs_finish_and_cancels_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = args_for(dir.path()).await;
    args.shutdown_grace_ms = 300;
    let api = TestApi::start_with(args, dir).await;
    let (_org, _app, key) = api.tenant().await;
    deploy_sleeper(&api, &key, 30_000).await;
    let (_, run) = api
        .call(
            Method::POST,
            "/v1/agents/t/sleeper/runs",
            &key,
            Some(json!({})),
        )
        .await;
    let id = run["id"].as_str().expect("id").to_owned();
    super::wait_running(&api, &key, &id).await;
    let state = api.server.as_ref().expect("server").state.clone();
    api.stop().await;
    let row = state
        .store
        .get_run(run["app_id"].as_str().expect("app"), &id)
        .await
        .expect("store")
        .expect("run");
    assert_eq!(row.status, atoll::store::RunStatus::Cancelled, "{row:?}");
    assert_eq!(
        row.error.as_ref().and_then(|e| e["reason"].as_str()),
        Some("shutdown"),
        "{row:?}"
    );
}

/// Two nodes on one database and one Redis: a cancel sent to the node that does not run the
/// run is forwarded to the one that does.
#[tokio::test]
async fn a_cancel_reaches_the_node_running_the_run() {
    if std::env::var("ATOLL_TEST_REDIS_URL").map_or(true, |u| u.is_empty()) {
        eprintln!("skipped: cross-node cancel needs ATOLL_TEST_REDIS_URL (the in-process bus does not cross nodes)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let args = args_for(dir.path()).await;
    let mut args_b = args.clone();
    args_b.node_id = Some(format!("node_b_{}", uuid::Uuid::new_v4().simple()));
    let a = TestApi::start_with(args, dir).await;
    let b_server = atoll::server::start(args_b).await.expect("node b");
    let b_base = format!("http://{}", b_server.addr);
    let (_org, _app, key) = a.tenant().await;
    deploy_sleeper(&a, &key, 30_000).await;
    let (_, run) = a
        .call(
            Method::POST,
            "/v1/agents/t/sleeper/runs",
            &key,
            Some(json!({})),
        )
        .await;
    let id = run["id"].as_str().expect("id").to_owned();
    super::wait_running(&a, &key, &id).await;
    let response = a
        .http
        .post(format!("{b_base}/v1/runs/{id}/cancel"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("cancel via b");
    assert_eq!(response.status(), StatusCode::OK);
    let done = wait_final(&a, &key, &id).await;
    assert_eq!(done["status"], "cancelled", "{done}");
    b_server.stop().await.expect("stop b");
    a.stop().await;
}
