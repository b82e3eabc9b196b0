//! The credential broker end to end: connections (write-only secrets), brokered fetch
//! with injection and scrubbing, HTTP tools, and an OpenAI-compatible provider streaming
//! over SSE — all against servers on loopback.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::TestApi;

const TOKEN: &str = "sk-test-SECRET-4f9a1c";

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Value>>>);

/// Echoes the request's headers back (the worst case: an upstream that reflects the
/// credential), serves a JSON tool, and speaks OpenAI chat completions with SSE.
async fn upstream() -> (String, Seen) {
    let seen = Seen::default();
    async fn echo(State(seen): State<Seen>, headers: HeaderMap) -> impl IntoResponse {
        let h: serde_json::Map<String, Value> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or(""))))
            .collect();
        seen.0.lock().expect("lock").push(Value::Object(h.clone()));
        (
            [(
                "x-echo-auth",
                headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned(),
            )],
            Json(Value::Object(h)),
        )
    }
    async fn tool(
        State(seen): State<Seen>,
        headers: HeaderMap,
        Json(args): Json<Value>,
    ) -> Json<Value> {
        seen.0.lock().expect("lock").push(json!({ "tool_auth": headers.get("authorization").and_then(|v| v.to_str().ok()), "args": args }));
        Json(json!({ "id": args["id"], "name": "Ada Lovelace" }))
    }
    async fn chat(
        State(seen): State<Seen>,
        headers: HeaderMap,
        Json(body): Json<Value>,
    ) -> impl IntoResponse {
        seen.0.lock().expect("lock").push(json!({ "llm_auth": headers.get("authorization").and_then(|v| v.to_str().ok()), "body": body }));
        let has_tool_result = body["messages"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["role"] == "tool"));
        let chunks: Vec<Value> = if has_tool_result {
            vec![
                json!({ "choices": [{ "index": 0, "delta": { "role": "assistant", "content": "It is " } }] }),
                json!({ "choices": [{ "index": 0, "delta": { "content": "Ada Lovelace." } }] }),
                json!({ "choices": [{ "index": 0, "delta": {}, "finish_reason": "stop" }] }),
                json!({ "choices": [], "usage": { "prompt_tokens": 30, "completion_tokens": 5 } }),
            ]
        } else {
            vec![
                json!({ "choices": [{ "index": 0, "delta": { "role": "assistant", "tool_calls": [{ "index": 0, "id": "call_1", "type": "function", "function": { "name": "lookup_customer", "arguments": "{\"id\":" } }] } }] }),
                json!({ "choices": [{ "index": 0, "delta": { "tool_calls": [{ "index": 0, "function": { "arguments": "\"c_42\"}" } }] } }] }),
                json!({ "choices": [{ "index": 0, "delta": {}, "finish_reason": "tool_calls" }] }),
                json!({ "choices": [], "usage": { "prompt_tokens": 20, "completion_tokens": 8 } }),
            ]
        };
        let mut sse = String::new();
        for c in chunks {
            sse.push_str(&format!("data: {c}\n\n"));
        }
        sse.push_str("data: [DONE]\n\n");
        ([("content-type", "text/event-stream")], sse)
    }
    async fn slow() -> &'static str {
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
        "too late"
    }
    let app = Router::new()
        .route("/slow/v1/chat/completions", post(slow))
        .route("/echo", get(echo))
        .route("/tool", post(tool))
        .route("/v1/chat/completions", post(chat))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://127.0.0.1:{}", addr.port()), seen)
}

#[tokio::test]
async fn connections_are_write_only_and_injected_but_never_readable() {
    let api = TestApi::start().await;
    let (_org, _app, key) = api.tenant().await;
    let (base, seen) = upstream().await;
    let (status, created) = api
        .call(
            Method::PUT,
            "/v1/connections/test-api",
            &key,
            Some(json!({ "type": "bearer", "token": TOKEN, "hosts": [host_of(&base)], "allow_http": true })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    for (path, body) in [
        (
            "/v1/connections/test-api",
            api.call(Method::GET, "/v1/connections/test-api", &key, None)
                .await
                .1,
        ),
        (
            "/v1/connections",
            api.call(Method::GET, "/v1/connections", &key, None).await.1,
        ),
        ("put answer", created.clone()),
    ] {
        assert!(
            !body.to_string().contains(TOKEN),
            "{path} shows the secret: {body}"
        );
    }
    assert!(created["fingerprint"].is_string(), "{created}");

    api.deploy(&key, "fetcher").await;
    let (status, run) = api
        .call(
            Method::POST,
            "/v1/agents/atoll/fetcher/runs?wait=20",
            &key,
            Some(json!({ "input": { "url": format!("{base}/echo"), "connection": "test-api" } })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(run["status"], "succeeded", "{run}");
    // The upstream got the credential...
    let received = seen.0.lock().expect("lock").clone();
    assert_eq!(received[0]["authorization"], format!("Bearer {TOKEN}"));
    // ...but what the agent saw (an echo of it, in the body and a header) is scrubbed, and
    // so is everything stored for the run.
    assert!(
        !run.to_string().contains(TOKEN),
        "the run exposes the secret: {run}"
    );
    let id = run["id"].as_str().expect("id");
    let events = super::events_text(&api, &key, id).await;
    assert!(!events.contains(TOKEN), "events expose the secret");
    assert!(events.contains("event: fetch"), "{events}");

    // Refusals: a connection the agent was not granted, and a host the connection does not cover.
    let (_, other) = api
        .call(
            Method::PUT,
            "/v1/connections/other",
            &key,
            Some(json!({ "type": "bearer", "token": "x-other", "hosts": [host_of(&base)], "allow_http": true })),
        )
        .await;
    assert!(other["name"] == "other");
    let (_, run) = api
        .call(
            Method::POST,
            "/v1/agents/atoll/fetcher/runs?wait=20",
            &key,
            Some(json!({ "input": { "url": format!("{base}/echo"), "connection": "other" } })),
        )
        .await;
    assert_eq!(run["status"], "failed", "{run}");
    assert!(
        run["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("permission_denied"),
        "{run}"
    );
    let (_, narrow) = api
        .call(
            Method::PUT,
            "/v1/connections/test-api",
            &key,
            Some(json!({ "type": "bearer", "token": TOKEN, "hosts": ["api.example.com"] })),
        )
        .await;
    assert_eq!(narrow["hosts"], json!(["api.example.com"]));
    let before = seen.0.lock().expect("lock").len();
    let (_, run) = api
        .call(
            Method::POST,
            "/v1/agents/atoll/fetcher/runs?wait=20",
            &key,
            Some(json!({ "input": { "url": format!("{base}/echo"), "connection": "test-api" } })),
        )
        .await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(
        seen.0.lock().expect("lock").len(),
        before,
        "nothing was sent"
    );
    let (status, _) = api
        .call(Method::DELETE, "/v1/connections/test-api", &key, None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    api.stop().await;
}

#[tokio::test]
async fn tools_and_an_openai_compatible_provider_drive_the_llm_loop() {
    let api = TestApi::start().await;
    let (_org, _app, key) = api.tenant().await;
    let (base, seen) = upstream().await;
    let (status, _) = api
        .call(
            Method::PUT,
            "/v1/connections/crm",
            &key,
            Some(json!({ "type": "bearer", "token": "crm-token-77", "hosts": [host_of(&base)], "allow_http": true })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    put_lookup_tool(&api, &key, &format!("{base}/tool"), Some("crm")).await;
    provider(&api, &key, "test", format!("{base}/v1")).await;

    api.deploy(&key, "tool-user").await;
    let (_, run) = api
        .call(
            Method::POST,
            "/v1/agents/atoll/tool-user/runs?wait=20",
            &key,
            Some(json!({ "input": { "customer_id": "c_7" } })),
        )
        .await;
    assert_eq!(
        run["output"],
        json!({ "customer": { "id": "c_7", "name": "Ada Lovelace" } }),
        "{run}"
    );
    let (_, bad) = api
        .call(
            Method::POST,
            "/v1/agents/atoll/tool-user/runs?wait=20",
            &key,
            Some(json!({ "input": { "customer_id": "" } })),
        )
        .await;
    assert_eq!(
        bad["status"], "succeeded",
        "an empty id is still a string: {bad}"
    );

    api.deploy(&key, "llm-loop").await;
    let (_, run) = api
        .call(
            Method::POST,
            "/v1/agents/atoll/llm-loop/runs?wait=20",
            &key,
            Some(json!({ "input": { "question": "Who is c_42?" } })),
        )
        .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        run["output"],
        json!({ "answer": "It is Ada Lovelace.", "rounds": 2 }),
        "{run}"
    );
    assert_eq!(
        (
            run["usage"]["llm_tokens_in"].clone(),
            run["usage"]["llm_tokens_out"].clone()
        ),
        (json!(50), json!(13))
    );
    let received = seen.0.lock().expect("lock").clone();
    let llm_calls: Vec<&Value> = received
        .iter()
        .filter(|r| r.get("llm_auth").is_some())
        .collect();
    assert_eq!(llm_calls.len(), 2);
    assert_eq!(llm_calls[0]["llm_auth"], "Bearer llm-key-99");
    assert_eq!(llm_calls[0]["body"]["model"], "echo");
    assert_eq!(
        llm_calls[0]["body"]["tools"][0]["function"]["name"],
        "lookup_customer"
    );
    let tool_calls: Vec<&Value> = received
        .iter()
        .filter(|r| r.get("tool_auth").is_some())
        .collect();
    assert!(tool_calls
        .iter()
        .all(|t| t["tool_auth"] == "Bearer crm-token-77"));
    assert!(tool_calls
        .iter()
        .any(|t| t["args"] == json!({ "id": "c_42" })));
    let id = run["id"].as_str().expect("id");
    let events = super::events_text(&api, &key, id).await;
    for kind in ["event: llm.delta", "event: tool.call", "event: tool.result"] {
        assert!(events.contains(kind), "{kind} missing");
    }
    let (_, usage) = api.call(Method::GET, "/v1/usage", &key, None).await;
    assert!(
        usage["usage"]["llm_tokens_in"]
            .as_i64()
            .is_some_and(|t| t >= 50),
        "{usage}"
    );
    api.stop().await;
}

#[tokio::test]
async fn the_support_bot_example_uses_a_connection_a_tool_and_a_provider() {
    let api = TestApi::start().await;
    let (_org, _app, key) = api.tenant().await;
    let (base, seen) = upstream().await;
    for (name, body) in [
        (
            "helpdesk",
            json!({ "type": "header", "name": "x-api-key", "value": "helpdesk-key-123", "hosts": [host_of(&base)], "allow_http": true }),
        ),
        (
            "crm",
            json!({ "type": "bearer", "token": "crm-token-77", "hosts": [host_of(&base)], "allow_http": true }),
        ),
        (
            "openai",
            json!({ "type": "bearer", "token": "llm-key-99", "hosts": [host_of(&base)], "allow_http": true, "provider": { "kind": "openai", "base_url": format!("{base}/v1") } }),
        ),
    ] {
        let (status, answer) = api
            .call(
                Method::PUT,
                &format!("/v1/connections/{name}"),
                &key,
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }
    put_lookup_tool(&api, &key, &format!("{base}/tool"), Some("crm")).await;
    api.deploy(&key, "support-bot").await;
    let (_, run) = api
        .call(Method::POST, "/v1/agents/atoll/support-bot/runs?wait=20", &key, Some(json!({ "input": {
            "ticket_url": format!("{base}/echo"), "customer_id": "c_9", "question": "Who wrote to us?"
        } })))
        .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["output"]["answer"], "It is Ada Lovelace.");
    assert_eq!(run["output"]["ticket_status"], 200);
    let received = seen.0.lock().expect("lock").clone();
    assert_eq!(
        received[0]["x-api-key"], "helpdesk-key-123",
        "the helpdesk got its credential"
    );
    assert!(!run.to_string().contains("helpdesk-key-123"));
    api.stop().await;
}

/// Registers `url` as the app's `lookup_customer` tool.
pub(super) async fn put_lookup_tool(api: &TestApi, key: &str, url: &str, connection: Option<&str>) {
    let (status, tool) = api
        .call(Method::PUT, "/v1/tools/lookup_customer", key, Some(json!({
            "description": "Looks a customer up by id",
            "input_schema": { "type": "object", "properties": { "id": { "type": "string" } }, "required": ["id"] },
            "output_schema": { "type": "object", "required": ["name"] },
            "url": url,
            "connection": connection
        })))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{tool}");
}

/// The `host:port` of a loopback base URL, as a connection's `hosts` entry.
pub(super) fn host_of(base: &str) -> String {
    let rest = base.trim_start_matches("http://");
    rest.split('/').next().unwrap_or(rest).to_owned()
}

async fn provider(api: &TestApi, key: &str, name: &str, base_url: String) {
    let (status, body) = api
        .call(Method::PUT, &format!("/v1/connections/{name}"), key, Some(json!({
            "type": "bearer", "token": "llm-key-99", "hosts": [host_of(&base_url)], "allow_http": true, "provider": { "kind": "openai", "base_url": base_url }
        })))
        .await;
    assert!(status.is_success(), "{body}");
}

#[tokio::test]
async fn a_slow_provider_runs_into_the_runs_wall_clock() {
    let api = TestApi::start().await;
    let (_org, _app, key) = api.tenant().await;
    let (base, _seen) = upstream().await;
    provider(&api, &key, "test", format!("{base}/slow/v1")).await;
    let upload = json!({
        "manifest": { "name": "@t/asker", "version": "1.0.0", "permissions": { "llm": ["test/*"] }, "limits": { "timeout_ms": 1000 } },
        "files": { "main.js": "export default async (i, ctx) => (await ctx.llm.chat({ model: 'test/x', messages: [{ role: 'user', content: 'hi' }] })).message;" }
    });
    let (status, _) = api
        .call(
            Method::PUT,
            "/v1/agents/t/asker/versions/1.0.0",
            &key,
            Some(upload),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let started = std::time::Instant::now();
    let (_, run) = api
        .call(
            Method::POST,
            "/v1/agents/t/asker/runs?wait=20",
            &key,
            Some(json!({})),
        )
        .await;
    assert_eq!(run["status"], "timed_out", "{run}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "the run did not wait for the provider"
    );
    api.stop().await;
}

#[tokio::test]
async fn the_apps_token_budget_stops_further_chats() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = super::args_for(dir.path()).await;
    args.llm_tokens_per_day = 20;
    let api = TestApi::start_with(args, dir).await;
    let (_org, _app, key) = api.tenant().await;
    let (base, _seen) = upstream().await;
    provider(&api, &key, "test", format!("{base}/v1")).await;
    put_lookup_tool(&api, &key, &format!("{base}/tool"), None).await;
    api.deploy(&key, "llm-loop").await;
    // The first chat starts under the budget (and spends 28 tokens); the second finds it spent.
    let (_, run) = api
        .call(
            Method::POST,
            "/v1/agents/atoll/llm-loop/runs?wait=20",
            &key,
            Some(json!({ "input": { "question": "q" } })),
        )
        .await;
    assert_eq!(run["status"], "failed", "{run}");
    assert!(
        run["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("llm_budget_exhausted"),
        "{run}"
    );
    let (_, usage) = api.call(Method::GET, "/v1/usage", &key, None).await;
    assert!(
        usage["usage"]["runs"].as_i64().is_some_and(|r| r >= 1),
        "{usage}"
    );
    api.stop().await;
}
