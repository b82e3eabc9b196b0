//! The SSE stream of run events against store trouble: a store error closes the stream
//! and `Last-Event-ID` refills the gap (every event exactly once); `Last-Event-ID` past
//! the end invents no id; a flood of logs while the store stalls drops logs (counted),
//! never a lifecycle event, and never stalls the run.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::{events_text, wait_final, TestApi};

#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub id: Option<i64>,
    pub kind: String,
    pub data: Value,
}

/// The events of an SSE body (comments and keep-alives skipped).
pub fn parse_sse(text: &str) -> Vec<SseEvent> {
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let (mut id, mut kind, mut data) = (None, None, String::new());
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("id:") {
                id = Some(v.trim().parse().expect("numeric id"));
            } else if let Some(v) = line.strip_prefix("event:") {
                kind = Some(v.trim().to_owned());
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim_start());
            }
        }
        if let Some(kind) = kind {
            let data = serde_json::from_str(&data).unwrap_or(Value::String(data));
            out.push(SseEvent { id, kind, data });
        }
    }
    out
}

/// Follows a run's stream as a client would: on a close before `end`, reconnects with
/// the last id received. Returns the events and the number of connections.
async fn follow(api: &TestApi, key: &str, run_id: &str) -> (Vec<SseEvent>, usize) {
    let mut got: Vec<SseEvent> = Vec::new();
    for connection in 1..=20 {
        let mut req = api.req(Method::GET, &format!("/v1/runs/{run_id}/events"), key);
        if let Some(last) = got.iter().rev().find_map(|e| e.id) {
            req = req.header("last-event-id", last.to_string());
        }
        let text = req
            .send()
            .await
            .expect("events")
            .text()
            .await
            .expect("text");
        for event in parse_sse(&text) {
            let end = event.kind == "end";
            got.push(event);
            if end {
                return (got, connection);
            }
        }
    }
    panic!("the stream never reached `end`: {got:?}");
}

fn ids(events: &[SseEvent]) -> Vec<i64> {
    events.iter().filter_map(|e| e.id).collect()
}

async fn finished_run(api: &TestApi, key: &str, agent: &str, input: Value) -> String {
    let (status, run) = api
        .call(
            Method::POST,
            &format!("/v1/agents/{agent}/runs?wait=60"),
            key,
            Some(json!({ "input": input })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{run}");
    run["id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn a_store_error_mid_replay_loses_no_event() {
    let (api, store) = TestApi::start_faulty().await;
    let (_org, _app, key) = api.tenant().await;
    api.deploy(&key, "hostile-events").await;
    let id = finished_run(&api, &key, "hostile/hostile-events", json!({})).await;
    let whole = parse_sse(&events_text(&api, &key, &id).await);
    assert!(
        whole.len() > 1_500,
        "several pages of events: {}",
        whole.len()
    );
    // The fourth page read fails, in the middle of the history.
    store.fail_after("events_after", 3, 1);
    let (resumed, connections) = follow(&api, &key, &id).await;
    assert_eq!(store.fired("events_after"), 1);
    assert!(connections >= 2, "the failed read closed the stream");
    assert_eq!(
        ids(&resumed),
        ids(&whole),
        "every event exactly once, in order"
    );
    assert_eq!(resumed.iter().filter(|e| e.kind == "end").count(), 1);
    api.stop().await;
}

#[tokio::test]
async fn last_event_id_at_or_past_the_end_invents_no_id() {
    let api = TestApi::start().await;
    let (_org, _app, key) = api.tenant().await;
    api.deploy(&key, "hello").await;
    let id = finished_run(&api, &key, "atoll/hello", json!({ "name": "Ada" })).await;
    let whole = parse_sse(&events_text(&api, &key, &id).await);
    let end = whole.last().expect("events");
    assert_eq!(end.kind, "end");
    let end_id = end.id.expect("a stored end has its id");
    for after in [end_id, end_id + 100] {
        let text = api
            .req(Method::GET, &format!("/v1/runs/{id}/events"), &key)
            .header("last-event-id", after.to_string())
            .send()
            .await
            .expect("events")
            .text()
            .await
            .expect("text");
        let events = parse_sse(&text);
        assert_eq!(events.len(), 1, "{text}");
        assert_eq!(events[0].kind, "end");
        assert_eq!(events[0].id, None, "no invented id: {text}");
        assert_eq!(events[0].data["status"], "succeeded");
    }
    api.stop().await;
}

#[tokio::test]
async fn a_log_flood_while_the_store_stalls_keeps_every_lifecycle_event() {
    let (api, store) = TestApi::start_faulty_with(|args| args.event_queue = 500).await;
    let (_org, _app, key) = api.tenant().await;
    api.deploy(&key, "hostile-events").await;
    store.hold_events();
    let (status, run) = api
        .call(
            Method::POST,
            "/v1/agents/hostile/hostile-events/runs",
            &key,
            Some(json!({ "input": {} })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{run}");
    let id = run["id"].as_str().expect("id");
    // The run finishes although none of its events can be written: publishing never
    // waits for the store.
    let done = wait_final(&api, &key, id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let state = &api.server.as_ref().expect("server").state;
    let dropped_total = state.runs.events().dropped_total();
    assert!(dropped_total > 0, "the queue is bounded");
    store.open_events();

    let (events, _) = follow(&api, &key, id).await;
    let ids = ids(&events);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"status"));
    assert_eq!(events[0].data["status"], "running");
    let n = events.len();
    assert_eq!(
        &kinds[n - 3..],
        ["output", "status", "end"],
        "{:?}",
        &kinds[n - 3..]
    );
    assert_eq!(events[n - 3].data["output"]["lines"], 50_000);
    assert_eq!(events[n - 2].data["status"], "succeeded");
    // The sandbox's own volume cut is kept too.
    assert!(events
        .iter()
        .any(|e| e.kind == "log_truncated" && e.data.get("reason").is_none()));
    // Every missing id is a dropped event, and each drop is counted in a marker.
    let markers: Vec<&SseEvent> = events
        .iter()
        .filter(|e| e.kind == "log_truncated" && e.data["reason"] == "event_pipeline_full")
        .collect();
    assert!(!markers.is_empty(), "{kinds:?}");
    let dropped: u64 = markers
        .iter()
        .map(|e| e.data["dropped"].as_u64().expect("count"))
        .sum();
    let end_id = *ids.last().expect("ids") as u64;
    // Each marker stands in for one dropped event, under that event's id.
    let missing = end_id - ids.len() as u64 + markers.len() as u64;
    assert_eq!(dropped, missing);
    assert_eq!(dropped, dropped_total);
    assert_eq!(state.runs.events().held_ends(), 0);
    api.stop().await;
}
