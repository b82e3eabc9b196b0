//! The life of a run through the API: upload, start, wait, get, list, state, memory,
//! events (SSE with resume), cancel, idempotency, OpenAPI.

use std::time::Duration;

use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::{wait_final, TestApi};

#[tokio::test]
async fn upload_run_wait_get_list() {
    let api = TestApi::start().await;
    let (_org, _app, key) = api.tenant().await;
    let (name, version) = api.deploy(&key, "hello").await;
    assert_eq!(name, "atoll/hello");
    // The same upload again is idempotent.
    api.deploy(&key, "hello").await;

    let (status, run) = api
        .call(
            Method::POST,
            "/v1/agents/atoll/hello/runs?wait=10",
            &key,
            Some(json!({ "input": { "name": "Ada" } })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(run["status"], "succeeded");
    assert_eq!(run["output"]["greeting"], "Hello, Ada!");
    assert_eq!(run["version"], version.as_str());
    assert!(
        run["usage"]["cpu_ms"].as_f64().is_some_and(|v| v > 0.0),
        "{run}"
    );
    let id = run["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("run_"));

    let (status, got) = api
        .call(Method::GET, &format!("/v1/runs/{id}"), &key, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["output"], run["output"]);
    assert!(got.get("lease_owner").is_none());

    // Without wait: 202 and queued/running, then it finishes.
    let (status, run2) = api
        .call(
            Method::POST,
            "/v1/agents/atoll/hello/runs",
            &key,
            Some(json!({ "input": { "name": "Bo" } })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{run2}");
    let done = wait_final(&api, &key, run2["id"].as_str().expect("id")).await;
    assert_eq!(done["output"]["greeting"], "Hello, Bo!");

    // Listing with filters and cursor pagination.
    for i in 0..3 {
        api.call(
            Method::POST,
            "/v1/agents/atoll/hello/runs?wait=10",
            &key,
            Some(json!({ "input": { "name": format!("n{i}") } })),
        )
        .await;
    }
    let (status, page1) = api
        .call(
            Method::GET,
            "/v1/runs?limit=2&agent=@atoll/hello&status=succeeded",
            &key,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page1}");
    assert_eq!(page1["data"].as_array().map(Vec::len), Some(2));
    let cursor = page1["next_cursor"].as_str().expect("cursor").to_owned();
    let (_, page2) = api
        .call(
            Method::GET,
            &format!("/v1/runs?limit=2&status=succeeded&cursor={cursor}"),
            &key,
            None,
        )
        .await;
    let ids1: Vec<&str> = page1["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    let ids2: Vec<&str> = page2["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(ids2.len(), 2);
    assert!(
        ids1.iter().all(|id| !ids2.contains(id)),
        "pages do not overlap"
    );

    let (_, agents) = api.call(Method::GET, "/v1/agents", &key, None).await;
    assert_eq!(agents["data"][0]["name"], "@atoll/hello");
    let (_, agent) = api
        .call(Method::GET, "/v1/agents/atoll/hello", &key, None)
        .await;
    assert_eq!(agent["latest_version"], "1.0.0");
    api.stop().await;
}

#[tokio::test]
async fn state_and_memory_carry_between_runs_per_end_user() {
    let api = TestApi::start().await;
    let (_org, _app, key) = api.tenant().await;
    api.deploy(&key, "counter").await;
    let run = |user: &'static str| {
        let api = &api;
        let key = key.clone();
        async move {
            let (status, run) = api
                .http
                .post(format!("{}/v1/agents/atoll/counter/runs?wait=10", api.base))
                .bearer_auth(&key)
                .header("x-atoll-end-user", user)
                .json(&json!({ "input": {} }))
                .send()
                .await
                .map(|r| (r.status(), r))
                .expect("send");
            let body: Value = run.json().await.expect("json");
            assert_eq!(status, StatusCode::OK, "{body}");
            body["output"].clone()
        }
    };
    assert_eq!(
        run("alice").await,
        json!({ "count": 1, "visits": 1, "total": 1 })
    );
    assert_eq!(
        run("alice").await,
        json!({ "count": 2, "visits": 2, "total": 2 })
    );
    assert_eq!(
        run("bob").await,
        json!({ "count": 1, "visits": 1, "total": 3 })
    );

    // The memory API sees what the agent wrote, per end-user.
    let (status, visits) = api
        .call(
            Method::GET,
            "/v1/memory/end_user/visits?end_user=alice",
            &key,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{visits}");
    assert_eq!(visits["value"], 2);
    let (status, _) = api
        .call(Method::PUT, "/v1/memory/app/total", &key, Some(json!(41)))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(run("carol").await["total"], 42);
    let (_, listed) = api.call(Method::GET, "/v1/memory/app", &key, None).await;
    assert_eq!(listed["data"][0], json!({ "key": "total", "value": 42 }));
    let (status, _) = api
        .call(Method::DELETE, "/v1/memory/app/total", &key, None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = api
        .call(Method::GET, "/v1/memory/app/total", &key, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api
        .call(Method::GET, "/v1/memory/end_user/visits", &key, None)
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "end_user scope needs an end user"
    );
    api.stop().await;
}

/// Reads an SSE stream to its end: (id, event, data) triples.
async fn sse(
    api: &TestApi,
    key: &str,
    run_id: &str,
    last_event_id: Option<&str>,
) -> Vec<(i64, String, Value)> {
    let mut req = api.req(Method::GET, &format!("/v1/runs/{run_id}/events"), key);
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    let response = req.send().await.expect("sse");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap_or("")
        .starts_with("text/event-stream"));
    let mut body = response.bytes_stream();
    let mut text = String::new();
    let read = async {
        while let Some(chunk) = body.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("the stream closes after end");
    let mut events = Vec::new();
    for block in text.split("\n\n") {
        let (mut id, mut event, mut data) = (None, None, None);
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("id:") {
                id = v.trim().parse().ok();
            } else if let Some(v) = line.strip_prefix("event:") {
                event = Some(v.trim().to_owned());
            } else if let Some(v) = line.strip_prefix("data:") {
                data = serde_json::from_str(v.trim()).ok();
            }
        }
        if let (Some(id), Some(event)) = (id, event) {
            events.push((id, event, data.unwrap_or(Value::Null)));
        }
    }
    events
}

#[tokio::test]
async fn events_stream_live_replay_and_resume() {
    let api = TestApi::start().await;
    let (_org, _app, key) = api.tenant().await;
    api.deploy(&key, "hello").await;
    let (_, run) = api
        .call(
            Method::POST,
            "/v1/agents/atoll/hello/runs",
            &key,
            Some(json!({ "input": { "name": "Ada" } })),
        )
        .await;
    let id = run["id"].as_str().expect("id").to_owned();
    // Live (or replayed if it already ended): the whole history, in order, ending with end.
    let live = sse(&api, &key, &id, None).await;
    let kinds: Vec<&str> = live.iter().map(|(_, k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        vec!["status", "log", "emit", "output", "status", "end"],
        "{live:?}"
    );
    let ids: Vec<i64> = live.iter().map(|(i, _, _)| *i).collect();
    assert!(
        ids.windows(2).all(|w| w[1] > w[0]),
        "ids strictly increase: {ids:?}"
    );
    // After the run ended: the same history again.
    let replay = sse(&api, &key, &id, None).await;
    assert_eq!(replay, live);
    // Resume after the third event: exactly what came after it.
    let resumed = sse(&api, &key, &id, Some(&live[2].0.to_string())).await;
    assert_eq!(resumed, live[3..].to_vec());
    api.stop().await;
}

#[tokio::test]
async fn cancel_stops_a_running_run() {
    let api = TestApi::start().await;
    let (_org, _app, key) = api.tenant().await;
    let manifest = json!({ "name": "@t/sleepy", "version": "1.0.0" });
    let files = json!({ "main.js": "export default async () => { await new Promise((r) => setTimeout(r, 30000)); return 1; };" });
    let (status, body) = api
        .call(
            Method::PUT,
            "/v1/agents/t/sleepy/versions/1.0.0",
            &key,
            Some(json!({ "manifest": manifest, "files": files })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, run) = api
        .call(
            Method::POST,
            "/v1/agents/t/sleepy/runs",
            &key,
            Some(json!({})),
        )
        .await;
    let id = run["id"].as_str().expect("id").to_owned();
    super::wait_running(&api, &key, &id).await;
    let (status, cancelled) = api
        .call(Method::POST, &format!("/v1/runs/{id}/cancel"), &key, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    let done = wait_final(&api, &key, &id).await;
    assert_eq!(done["status"], "cancelled", "{done}");
    api.stop().await;
}

#[tokio::test]
async fn idempotency_keys_replay_or_refuse() {
    let api = TestApi::start().await;
    let (_org, _app, key) = api.tenant().await;
    api.deploy(&key, "hello").await;
    let post = |body: Value| {
        api.req(Method::POST, "/v1/agents/atoll/hello/runs", &key)
            .header("idempotency-key", "k-1")
            .json(&body)
            .send()
    };
    let first = post(json!({ "input": { "name": "A" } }))
        .await
        .expect("send");
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let first: Value = first.json().await.expect("json");
    let again = post(json!({ "input": { "name": "A" } }))
        .await
        .expect("send");
    assert_eq!(
        again
            .headers()
            .get("idempotent-replayed")
            .map(|v| v.to_str().unwrap_or("")),
        Some("true")
    );
    let again: Value = again.json().await.expect("json");
    assert_eq!(again["id"], first["id"], "the same run, not a second one");
    let other = post(json!({ "input": { "name": "B" } }))
        .await
        .expect("send");
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let (_, runs) = api.call(Method::GET, "/v1/runs", &key, None).await;
    assert_eq!(runs["data"].as_array().map(Vec::len), Some(1));
    api.stop().await;
}

#[tokio::test]
async fn openapi_documents_every_route_and_ops_endpoints_answer() {
    let api = TestApi::start().await;
    let (status, doc) = api
        .call(Method::GET, "/v1/openapi.json", "none", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 20);
    // Every documented route exists: it answers anything but the router's own 404/405.
    for (path, ops) in paths {
        for method in ops.as_object().expect("ops").keys() {
            let concrete = path
                .replace("{scope}", "s")
                .replace("{name}", "n")
                .replace("{version}", "1.0.0")
                .replace("{id}", "x")
                .replace("{key}", "k");
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let (status, body) = api.call(m, &concrete, "atl_not_a_key", None).await;
            let router_404 = status == StatusCode::NOT_FOUND
                && body["detail"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("no such route"));
            assert!(
                !router_404 && status != StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is documented but not routed ({status})"
            );
        }
    }
    let (status, _) = api.call(Method::GET, "/healthz", "none", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, ready) = api.call(Method::GET, "/readyz", "none", None).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    let metrics = api
        .http
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for name in [
        "atoll_runs_total",
        "atoll_run_duration_seconds_bucket",
        "atoll_run_cpu_seconds_count",
        "atoll_queue_depth",
        "atoll_isolates_alive",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    api.stop().await;
}
