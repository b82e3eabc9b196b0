//! Durable runs through a real server and its sandbox processes: a run that waits parks
//! (no isolate, status `waiting`), a signal or its wake-up time resumes it by replay, and
//! journaled effects are not repeated.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::{events_text, upload_inline, wait_final, TestApi};

pub(super) async fn start(api: &TestApi, key: &str, name: &str, input: Value) -> String {
    let (status, run) = api
        .call(
            Method::POST,
            &format!("/v1/agents/t/{name}/runs"),
            key,
            Some(json!({ "input": input })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{run}");
    run["id"].as_str().expect("id").to_owned()
}

/// Polls until the run is `waiting`; its record then.
pub(super) async fn wait_parked(api: &TestApi, key: &str, run: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, row) = api
            .call(Method::GET, &format!("/v1/runs/{run}"), key, None)
            .await;
        if row["status"] == "waiting" {
            return row;
        }
        assert!(
            !row["status"].as_str().is_some_and(|s| [
                "succeeded",
                "failed",
                "timed_out",
                "cancelled"
            ]
            .contains(&s)),
            "ended instead of parking: {row}"
        );
        assert!(Instant::now() < deadline, "the run never parked: {row}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits for `run` to park, sends it signal `go`, and answers its final record.
pub(super) async fn resume_with_go(api: &TestApi, key: &str, run: &str) -> Value {
    wait_parked(api, key, run).await;
    api.call(
        Method::POST,
        &format!("/v1/runs/{run}/signals/go"),
        key,
        Some(json!({})),
    )
    .await;
    wait_final(api, key, run).await
}

/// A loopback server that counts the requests it gets and answers the count.
async fn counter() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let seen = hits.clone();
    let app = axum::Router::new().route(
        "/count",
        axum::routing::get(move || {
            let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
            async move { n.to_string() }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/count"), hits)
}

const APPROVAL: &str = r#"
export default async (input, ctx) => {
  const first = await (await fetch(input.url)).text();
  const approval = await ctx.waitFor("approve", { schema: { type: "object", required: ["ok"] } });
  const second = await (await fetch(input.url)).text();
  return { first, second, ok: approval.ok, by: approval.by };
};
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_parks_the_run_and_a_signal_resumes_it_without_repeating_effects() {
    let api = TestApi::start().await;
    let (org_key, _app, key) = api.tenant().await;
    upload_inline(
        &api,
        &key,
        "approve",
        json!({ "permissions": { "fetch": ["127.0.0.1"] } }),
        APPROVAL,
    )
    .await;
    let (url, hits) = counter().await;
    let run = start(&api, &key, "approve", json!({ "url": url })).await;
    let parked = wait_parked(&api, &key, &run).await;
    assert_eq!(parked["wait"]["signal"], "approve", "{parked}");
    assert_eq!(
        parked["journal_length"], 1,
        "the fetch is journaled: {parked}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    let runs = api.server.as_ref().expect("server").state.runs.clone();
    assert_eq!(runs.active_runs(), 0, "no isolate holds a waiting run");

    // Refused: another tenant's run, a payload the wait's schema refuses.
    let (_, other_key) = api.app_with_key(&org_key, "other").await;
    let path = format!("/v1/runs/{run}/signals/approve");
    let (status, _) = api
        .call(
            Method::POST,
            &path,
            &other_key,
            Some(json!({ "payload": { "ok": true } })),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = api
        .call(
            Method::POST,
            &path,
            &key,
            Some(json!({ "payload": { "nope": 1 } })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // Another tenant sees no journal either; a payload over 256 KiB, a name over 128
    // characters and unknown body fields are refused; none of these resumed the run.
    let (status, _) = api
        .call(
            Method::GET,
            &format!("/v1/runs/{run}/journal"),
            &other_key,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let big = json!({ "payload": { "ok": true, "pad": "x".repeat(300 * 1024) } });
    let (status, body) = api.call(Method::POST, &path, &key, Some(big)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let long = format!("/v1/runs/{run}/signals/{}", "n".repeat(129));
    let (status, body) = api
        .call(Method::POST, &long, &key, Some(json!({ "payload": 1 })))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = api
        .call(
            Method::POST,
            &path,
            &key,
            Some(json!({ "payload": {}, "extra": 1 })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (_, still) = api
        .call(Method::GET, &format!("/v1/runs/{run}"), &key, None)
        .await;
    assert_eq!(still["status"], "waiting", "{still}");

    let (status, body) = api
        .call(
            Method::POST,
            &path,
            &key,
            Some(json!({ "payload": { "ok": true, "by": "ada" } })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let done = wait_final(&api, &key, &run).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        done["output"],
        json!({ "first": "1", "second": "2", "ok": true, "by": "ada" })
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        2,
        "the first fetch was answered from the journal"
    );
    let events = events_text(&api, &key, &run).await;
    let waiting = events.find("event: waiting").expect("a waiting event");
    let resumed = events.find("event: resumed").expect("a resumed event");
    assert!(
        waiting < resumed && events.contains("event: end"),
        "{events}"
    );
    let (_, journal) = api
        .call(Method::GET, &format!("/v1/runs/{run}/journal"), &key, None)
        .await;
    let ops: Vec<&str> = journal["data"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["op"].as_str().expect("op"))
        .collect();
    assert_eq!(ops, vec!["fetch", "wait", "fetch"], "{journal}");
    assert_eq!(journal["length"], 3, "{journal}");
    assert!(
        journal["data"][0]["bytes"].as_i64().unwrap_or(0) > 0,
        "{journal}"
    );
    // Pages: two entries, then the last one.
    let (_, first) = api
        .call(
            Method::GET,
            &format!("/v1/runs/{run}/journal?limit=2"),
            &key,
            None,
        )
        .await;
    assert_eq!(first["data"].as_array().map(Vec::len), Some(2), "{first}");
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let (_, rest) = api
        .call(
            Method::GET,
            &format!("/v1/runs/{run}/journal?limit=2&cursor={cursor}"),
            &key,
            None,
        )
        .await;
    assert_eq!(rest["data"][0]["seq"], 2, "{rest}");
    assert!(rest["next_cursor"].is_null(), "{rest}");
    for bad in ["limit=0", "limit=1001", "cursor=abc", "cursor=-5"] {
        let (status, body) = api
            .call(
                Method::GET,
                &format!("/v1/runs/{run}/journal?{bad}"),
                &key,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    let (status, _) = api
        .call(Method::POST, &path, &key, Some(json!({ "payload": {} })))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "a signal to an ended run");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_sleeps_and_timeouts() {
    let api = TestApi::start().await;
    let (_org, _app, key) = api.tenant().await;
    // A signal sent before the run waits is kept for it.
    upload_inline(
        &api,
        &key,
        "early",
        json!({}),
        r#"
export default async (input, ctx) => {
  await ctx.sleep(300);
  return await ctx.waitFor("go");
};"#,
    )
    .await;
    let run = start(&api, &key, "early", json!({})).await;
    let (status, _) = api
        .call(
            Method::POST,
            &format!("/v1/runs/{run}/signals/go"),
            &key,
            Some(json!({ "payload": { "n": 7 } })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let done = wait_final(&api, &key, &run).await;
    assert_eq!(
        (&done["status"], &done["output"]),
        (&json!("succeeded"), &json!({ "n": 7 })),
        "{done}"
    );

    // A durable sleep parks and wakes up by itself; a timed-out wait throws wait_timeout.
    upload_inline(
        &api,
        &key,
        "sleepy",
        json!({}),
        r#"
export default async (input, ctx) => {
  await ctx.sleep(1200);
  try {
    await ctx.waitFor("never", { timeout_ms: 1200 });
    return { timed_out: false };
  } catch (e) {
    return { timed_out: e.code === "wait_timeout" };
  }
};"#,
    )
    .await;
    let run = start(&api, &key, "sleepy", json!({})).await;
    let parked = wait_parked(&api, &key, &run).await;
    assert!(parked["wait"]["wake_at"].as_i64().is_some(), "{parked}");
    assert_eq!(parked["wait"]["signal"], Value::Null);
    let done = wait_final(&api, &key, &run).await;
    assert_eq!(done["output"], json!({ "timed_out": true }), "{done}");

    // Cancelling a waiting run ends it.
    upload_inline(
        &api,
        &key,
        "forever",
        json!({}),
        r#"
export default async (input, ctx) => ctx.waitFor("never");"#,
    )
    .await;
    let run = start(&api, &key, "forever", json!({})).await;
    wait_parked(&api, &key, &run).await;
    let (status, cancelled) = api
        .call(Method::POST, &format!("/v1/runs/{run}/cancel"), &key, None)
        .await;
    assert_eq!(
        (status, &cancelled["status"]),
        (StatusCode::OK, &json!("cancelled")),
        "{cancelled}"
    );
    api.stop().await;
}

/// A resumed run starts from the state its first execution started with, even though
/// another run saved a new state meanwhile: the state is journaled with the run's seed,
/// so the replay takes the same path and asks for the same calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_run_sees_the_state_it_started_with() {
    let api = TestApi::start().await;
    let (_org, _app, key) = api.tenant().await;
    upload_inline(
        &api,
        &key,
        "drift",
        json!({ "permissions": { "memory": ["app"] } }),
        r#"
export default async (input, ctx) => {
  if (input.set) { ctx.setState({ flip: true }); return "set"; }
  if (ctx.state && ctx.state.flip) {
    await ctx.memory.set("b", 1, { scope: "app" });
  } else {
    await ctx.memory.get("a", { scope: "app" });
  }
  await ctx.waitFor("go");
  return { flip: Boolean(ctx.state && ctx.state.flip) };
};"#,
    )
    .await;
    let run = start(&api, &key, "drift", json!({})).await;
    wait_parked(&api, &key, &run).await;
    let setter = start(&api, &key, "drift", json!({ "set": true })).await;
    assert_eq!(wait_final(&api, &key, &setter).await["status"], "succeeded");
    let done = resume_with_go(&api, &key, &run).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["output"], json!({ "flip": false }), "{done}");
    // A run started now sees the saved state.
    let later = start(&api, &key, "drift", json!({})).await;
    let done = resume_with_go(&api, &key, &later).await;
    assert_eq!(done["output"], json!({ "flip": true }), "{done}");
    api.stop().await;
}

/// The clock and the randomness a run saw before it parked are what its replay sees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_and_randomness_replay_unchanged() {
    let api = TestApi::start().await;
    let (_org, _app, key) = api.tenant().await;
    upload_inline(
        &api,
        &key,
        "dice",
        json!({}),
        r#"
export default async (input, ctx) => {
  const seen = {
    now: Date.now(), date: new Date().getTime(), random: Math.random(),
    uuid: crypto.randomUUID(), bytes: Array.from(crypto.getRandomValues(new Uint8Array(8))),
  };
  ctx.emit("seen", seen);
  await ctx.waitFor("go");
  return { seen, after: Date.now() };
};"#,
    )
    .await;
    let run = start(&api, &key, "dice", json!({})).await;
    wait_parked(&api, &key, &run).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    api.call(
        Method::POST,
        &format!("/v1/runs/{run}/signals/go"),
        &key,
        Some(json!({})),
    )
    .await;
    let done = wait_final(&api, &key, &run).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let events = events_text(&api, &key, &run).await;
    let first = events
        .lines()
        .skip_while(|l| *l != "event: emit")
        .find_map(|l| l.strip_prefix("data: "))
        .expect("the emit of the first execution");
    let first: Value = serde_json::from_str(first).expect("json");
    assert_eq!(
        first["data"], done["output"]["seen"],
        "the replay saw what the first execution saw"
    );
    let seen = &done["output"]["seen"];
    assert_eq!(seen["now"], seen["date"]);
    assert!(seen["random"]
        .as_f64()
        .is_some_and(|r| (0.0..1.0).contains(&r)));
    assert!(
        done["output"]["after"].as_i64() > seen["now"].as_i64(),
        "the clock moved on with the signal"
    );
    api.stop().await;
}

/// The journal and the number of parked runs are bounded: a run over its journal's limit
/// fails `journal_too_large`; one that would park past the app's cap fails `waiting_limit`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journals_and_waiting_runs_are_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = super::args_for(dir.path()).await;
    args.journal_max_bytes = 64 * 1024;
    args.waiting_runs_per_app = 1;
    let api = TestApi::start_with(args, dir).await;
    let (_org, _app, key) = api.tenant().await;
    let big = axum::Router::new().route(
        "/big",
        axum::routing::get(|| async { "x".repeat(100 * 1024) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/big", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, big).await });
    upload_inline(
        &api,
        &key,
        "hoarder",
        json!({ "permissions": { "fetch": ["127.0.0.1"] } }),
        r#"
export default async (input, ctx) => (await (await fetch(input.url)).text()).length;"#,
    )
    .await;
    let run = start(&api, &key, "hoarder", json!({ "url": url })).await;
    let done = wait_final(&api, &key, &run).await;
    assert_eq!(done["error"]["code"], "journal_too_large", "{done}");

    upload_inline(
        &api,
        &key,
        "forever",
        json!({}),
        r#"
export default async (input, ctx) => ctx.waitFor("never");"#,
    )
    .await;
    let first = start(&api, &key, "forever", json!({})).await;
    wait_parked(&api, &key, &first).await;
    let second = start(&api, &key, "forever", json!({})).await;
    let done = wait_final(&api, &key, &second).await;
    assert_eq!(done["error"]["code"], "waiting_limit", "{done}");
    api.stop().await;
}

/// One run cannot take every host-call slot of its sandbox process: past 256 calls in
/// flight its calls are refused at once, and a neighbour's run goes on meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_host_calls_is_refused_past_its_share() {
    let api = TestApi::start().await;
    let (_org, _app, key) = api.tenant().await;
    api.deploy(&key, "hello").await;
    upload_inline(
        &api,
        &key,
        "flood",
        json!({}),
        r#"
export default async (input, ctx) => {
  const all = await Promise.allSettled(Array.from({ length: 1000 }, () => ctx.sleep(700)));
  return all.filter((r) => r.status === "rejected" && r.reason.code === "too_many_calls").length;
};"#,
    )
    .await;
    let flood = start(&api, &key, "flood", json!({})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, hello) = api
        .call(
            Method::POST,
            "/v1/agents/atoll/hello/runs?wait=20",
            &key,
            Some(json!({ "input": { "name": "n" } })),
        )
        .await;
    assert_eq!(
        (status, &hello["status"]),
        (StatusCode::OK, &json!("succeeded")),
        "{hello}"
    );
    let (_, still) = api
        .call(Method::GET, &format!("/v1/runs/{flood}"), &key, None)
        .await;
    assert_eq!(
        still["status"], "running",
        "the neighbour finished while the flood was held"
    );
    let done = wait_final(&api, &key, &flood).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["output"], json!(1000 - 256), "{done}");
    api.stop().await;
}
