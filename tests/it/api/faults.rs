//! What runs, audit and idempotency do when the store fails under them (a [`FaultyStore`]
//! wraps the real one): an outcome is not lost to one failed write, the `end` event goes
//! out whatever the store answered, a run is never created without its audit event nor
//! started twice for one `Idempotency-Key`, and no database error text reaches a client
//! or a run record.
//!
//! [`FaultyStore`]: crate::faults::FaultyStore

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::events::{parse_sse, SseEvent};
use super::{events_text, wait_final, TestApi};
use crate::faults::INJECTED;

async fn start_hello(
    api: &TestApi,
    key: &str,
    path: &str,
    idem: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = api
        .req(Method::POST, path, key)
        .json(&json!({ "input": { "name": "Ada" } }));
    if let Some(idem) = idem {
        req = req.header("idempotency-key", idem);
    }
    super::read(req.send().await.expect("send")).await
}

async fn run_count(api: &TestApi, key: &str) -> usize {
    let (status, runs) = api.call(Method::GET, "/v1/runs?limit=100", key, None).await;
    assert_eq!(status, StatusCode::OK, "{runs}");
    runs["data"].as_array().map_or(0, Vec::len)
}

fn ends(events: &[SseEvent]) -> Vec<&SseEvent> {
    events.iter().filter(|e| e.kind == "end").collect()
}

#[tokio::test]
async fn an_outcome_survives_one_failed_finish() {
    let (api, store) = TestApi::start_faulty().await;
    let (_org, _app, key) = api.tenant().await;
    api.deploy(&key, "hello").await;
    store.fail("finish_run", 1);
    let (status, run) = start_hello(&api, &key, "/v1/agents/atoll/hello/runs", None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{run}");
    let id = run["id"].as_str().expect("id");
    let done = wait_final(&api, &key, id).await;
    assert_eq!(store.fired("finish_run"), 1);
    // Without a retry the outcome is lost and the reaper fails the run `node_lost`.
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["output"]["greeting"], "Hello, Ada!");
    let events = parse_sse(&events_text(&api, &key, id).await);
    assert_eq!(ends(&events).len(), 1, "{events:?}");
    api.stop().await;
}

#[tokio::test]
async fn the_end_goes_out_when_finish_is_refused() {
    let (api, store) = TestApi::start_faulty().await;
    let (_org, _app, key) = api.tenant().await;
    api.deploy(&key, "hello").await;
    // The store answers "already finished" (as when another node ended the run).
    store.refuse("finish_run", 1);
    let (status, run) = start_hello(&api, &key, "/v1/agents/atoll/hello/runs", None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{run}");
    let id = run["id"].as_str().expect("id");
    // The stream closes on the sandbox's own `end` (it carries the run's usage)...
    let events = parse_sse(&events_text(&api, &key, id).await);
    assert_eq!(store.fired("finish_run"), 1);
    let end = ends(&events);
    assert_eq!(end.len(), 1, "{events:?}");
    assert!(end[0].data.get("usage").is_some(), "{events:?}");
    let state = &api.server.as_ref().expect("server").state;
    assert_eq!(state.runs.events().held_ends(), 0);
    // ... and the record, left running, is ended by the reaper without a second `end`.
    wait_final(&api, &key, id).await;
    let events = parse_sse(&events_text(&api, &key, id).await);
    assert_eq!(ends(&events).len(), 1, "{events:?}");
    api.stop().await;
}

#[tokio::test]
async fn a_failed_audit_write_creates_no_run_and_frees_the_key() {
    let (api, store) = TestApi::start_faulty().await;
    let (_org, _app, key) = api.tenant().await;
    api.deploy(&key, "hello").await;
    store.fail("insert_run_audited", 1);
    let path = "/v1/agents/atoll/hello/runs";
    let (status, body) = start_hello(&api, &key, path, Some("k-audit")).await;
    assert!(status.is_server_error(), "{status} {body}");
    assert!(!body.to_string().contains(INJECTED), "{body}");
    assert_eq!(store.fired("insert_run_audited"), 1);
    assert_eq!(
        run_count(&api, &key).await,
        0,
        "no run without its audit event"
    );
    // Nothing happened, so the key is free for the retry, which starts the one run.
    let (status, first) = start_hello(&api, &key, path, Some("k-audit")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    let (status, again) = start_hello(&api, &key, path, Some("k-audit")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{again}");
    assert_eq!(again["id"], first["id"]);
    assert_eq!(run_count(&api, &key).await, 1);
    let (_, audit) = api.call(Method::GET, "/v1/audit", &key, None).await;
    let created: Vec<&Value> = audit["data"]
        .as_array()
        .expect("audit")
        .iter()
        .filter(|e| e["action"] == "run.create")
        .collect();
    assert_eq!(created.len(), 1, "{audit}");
    assert_eq!(created[0]["target"], first["id"]);
    api.stop().await;
}

/// `?wait` on the node that runs the run is answered from the outcome in memory: its
/// waiter is registered before the run exists, so no read of the run is needed (one that
/// would fail here), and the key that created the run replays it.
#[tokio::test]
async fn a_wait_is_answered_from_memory_and_keeps_its_idempotency_key() {
    let (api, store) = TestApi::start_faulty().await;
    let (_org, _app, key) = api.tenant().await;
    api.deploy(&key, "hello").await;
    store.fail("get_run", 1);
    let path = "/v1/agents/atoll/hello/runs?wait=5";
    let (status, first) = start_hello(&api, &key, path, Some("k-wait")).await;
    assert_eq!(store.fired("get_run"), 0, "the wait read the run back");
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["status"], "succeeded", "{first}");
    let id = first["id"].as_str().expect("the answer names the run");
    let response = api
        .req(Method::POST, path, &key)
        .header("idempotency-key", "k-wait")
        .json(&json!({ "input": { "name": "Ada" } }))
        .send()
        .await
        .expect("send");
    assert_eq!(
        response
            .headers()
            .get("idempotent-replayed")
            .map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    let (_, again) = super::read(response).await;
    assert_eq!(again["id"], id);
    assert_eq!(
        run_count(&api, &key).await,
        1,
        "a retry starts no second run"
    );
    api.stop().await;
}

#[tokio::test]
async fn a_store_error_while_preparing_fails_the_run_as_internal() {
    let (api, store) = TestApi::start_faulty().await;
    let (_org, _app, key) = api.tenant().await;
    api.deploy(&key, "hello").await;
    // The version is cached from the run's creation; the state read goes to the store.
    store.fail("state_get", 1);
    let (status, run) = start_hello(&api, &key, "/v1/agents/atoll/hello/runs", None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{run}");
    let id = run["id"].as_str().expect("id");
    let done = wait_final(&api, &key, id).await;
    assert_eq!(store.fired("state_get"), 1);
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "internal", "{done}");
    assert!(!done.to_string().contains(INJECTED), "{done}");
    let text = events_text(&api, &key, id).await;
    assert!(!text.contains(INJECTED), "{text}");
    let events = parse_sse(&text);
    assert_eq!(ends(&events).len(), 1, "{events:?}");
    // The version is fine: the next run succeeds.
    let (status, ok) = start_hello(&api, &key, "/v1/agents/atoll/hello/runs?wait=10", None).await;
    assert_eq!(status, StatusCode::OK, "{ok}");
    assert_eq!(ok["status"], "succeeded");
    api.stop().await;
}

/// `?wait` for a run this node executes is answered from its outcome in memory: with
/// every read of the run failing after the first, the answer is still the finished run.
#[tokio::test]
async fn wait_is_answered_from_memory_when_the_run_ran_here() {
    let (api, store) = TestApi::start_faulty().await;
    let (_org, _app, key) = api.tenant().await;
    let source = "export default async () => { await new Promise((r) => setTimeout(r, 300)); return { done: true }; };";
    let (status, body) = api
        .call(
            Method::PUT,
            "/v1/agents/t/slow/versions/1.0.0",
            &key,
            Some(json!({ "manifest": { "name": "@t/slow", "version": "1.0.0" }, "files": { "main.js": source } })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // The wait's first read sees the run unfinished; every later one would fail.
    store.fail_after("get_run", 1, 1_000);
    let (status, run) = api
        .call(
            Method::POST,
            "/v1/agents/t/slow/runs?wait=10",
            &key,
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["output"], json!({ "done": true }), "{run}");
    assert!(run.get("lease_owner").is_none(), "{run}");
    assert_eq!(store.fired("get_run"), 0, "no read of the run failed");
    store.fail("get_run", 0);
    api.stop().await;
}

/// A server whose store takes 1.5 s over `slow` calls, an agent `name` of `main`, and a
/// run of it started: (api, app key, run id).
async fn slow_run(slow: &'static str, name: &str, main: &str) -> (TestApi, String, String) {
    let (api, store) = TestApi::start_faulty().await;
    let (_org, _app, key) = api.tenant().await;
    super::upload_inline(&api, &key, name, json!({}), main).await;
    store.slow(slow, std::time::Duration::from_millis(1500));
    let (status, run) = api
        .call(
            Method::POST,
            &format!("/v1/agents/t/{name}/runs"),
            &key,
            Some(json!({ "input": {} })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{run}");
    let id = run["id"].as_str().expect("id").to_owned();
    (api, key, id)
}

/// A cancel that comes while a claimed run is still being prepared (it is `running` in
/// the store, not yet in the sandbox) is kept and honoured as the run starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_during_prepare_is_not_lost() {
    let (api, key, id) = slow_run("state_get", "sleeper", "export default async () => { await new Promise((r) => setTimeout(r, 30000)); return 'slept'; };").await;
    super::wait_running(&api, &key, &id).await;
    let (status, _) = api
        .call(Method::POST, &format!("/v1/runs/{id}/cancel"), &key, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let done = wait_final(&api, &key, &id).await;
    assert_eq!(done["status"], "cancelled", "{done}");
    api.stop().await;
}

/// Reads the run's live stream until its `waiting` event: the run is parking now.
async fn until_waiting_event(api: &TestApi, key: &str, id: &str) {
    let mut stream = api
        .req(Method::GET, &format!("/v1/runs/{id}/events"), key)
        .send()
        .await
        .expect("events");
    let mut seen = String::new();
    while !seen.contains("event: waiting") {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(20), stream.chunk())
            .await
            .expect("a waiting event in time")
            .expect("stream")
            .expect("not the end yet");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}

/// A signal that comes while a run is on its way to parking (its `waiting` event is out,
/// it is still `running`) finds nobody to wake; the run, once parked, takes it itself.
/// Without that second look the run would wait forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_racing_a_park_is_not_lost() {
    let (api, key, id) = slow_run("suspend_run", "approver", "export default async (input, ctx) => { const s = await ctx.waitFor('go'); return s.answer; };").await;
    until_waiting_event(&api, &key, &id).await;
    let (_, now) = api
        .call(Method::GET, &format!("/v1/runs/{id}"), &key, None)
        .await;
    assert_eq!(
        now["status"], "running",
        "the park is still under way: {now}"
    );
    let (status, body) = api
        .call(
            Method::POST,
            &format!("/v1/runs/{id}/signals/go"),
            &key,
            Some(json!({ "payload": { "answer": "yes" } })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let done = wait_final(&api, &key, &id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["output"], "yes", "{done}");
    api.stop().await;
}

/// A cancel that reaches a run on its way to parking (its isolate is ending anyway) is
/// honoured once it waits: the run ends `cancelled` and no signal resumes it later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_racing_a_park_ends_the_run() {
    let (api, key, id) = slow_run(
        "suspend_run",
        "parker",
        "export default async (input, ctx) => { await ctx.waitFor('go'); return 'resumed'; };",
    )
    .await;
    until_waiting_event(&api, &key, &id).await;
    let (status, _) = api
        .call(Method::POST, &format!("/v1/runs/{id}/cancel"), &key, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let done = wait_final(&api, &key, &id).await;
    assert_eq!(done["status"], "cancelled", "{done}");
    let (status, _) = api
        .call(
            Method::POST,
            &format!("/v1/runs/{id}/signals/go"),
            &key,
            Some(json!({ "payload": 1 })),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "an ended run takes no signal");
    api.stop().await;
}
