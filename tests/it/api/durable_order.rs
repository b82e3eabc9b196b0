//! Durable runs replay concurrent host calls in the order their answers came, and a call
//! answered after the run parked is not made again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::durable::{resume_with_go, start, wait_parked};
use super::{upload_inline, wait_final, TestApi};

/// Concurrent host calls complete on replay in the order they completed before: the
/// sleep was asked first and answered last, and the replay keeps it so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_complete_in_their_journaled_order() {
    let api = TestApi::start().await;
    let (_org, _app, key) = api.tenant().await;
    upload_inline(
        &api,
        &key,
        "race",
        json!({ "permissions": { "memory": ["app"] } }),
        r#"
export default async (input, ctx) => {
  const order = [];
  await Promise.all([
    ctx.sleep(300).then(() => order.push("sleep")),
    ctx.memory.get("k", { scope: "app" }).then(() => order.push("memory")),
  ]);
  ctx.emit("order", order);
  await ctx.waitFor("go");
  return order;
};"#,
    )
    .await;
    let run = start(&api, &key, "race", json!({})).await;
    let done = resume_with_go(&api, &key, &run).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["output"], json!(["memory", "sleep"]), "{done}");
    api.stop().await;
}

/// `Promise.race` of a fetch and a timer (`ctx.sleep`): the timer won, and on replay —
/// where the fetch's journaled answer is there at once — it wins again; the fetch is not
/// made a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_race_of_a_fetch_and_a_timer_replays_with_the_same_winner() {
    let hits = Arc::new(AtomicUsize::new(0));
    let seen = hits.clone();
    let app = axum::Router::new().route(
        "/slow",
        axum::routing::get(move || {
            seen.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(Duration::from_millis(400)).await;
                "fetched"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/slow", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let api = TestApi::start().await;
    let (_org, _app, key) = api.tenant().await;
    upload_inline(
        &api,
        &key,
        "racer",
        json!({ "permissions": { "fetch": ["127.0.0.1"] } }),
        r#"
export default async (input, ctx) => {
  const fetched = fetch(input.url).then(async (r) => "fetch:" + (await r.text()));
  const winner = await Promise.race([fetched, ctx.sleep(50).then(() => "timer")]);
  const loser = await fetched;
  await ctx.waitFor("go");
  return { winner, loser };
};"#,
    )
    .await;
    let run = start(&api, &key, "racer", json!({ "url": url })).await;
    let done = resume_with_go(&api, &key, &run).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        done["output"],
        json!({ "winner": "timer", "loser": "fetch:fetched" }),
        "{done}"
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "the fetch was made again on replay"
    );
    api.stop().await;
}

/// A call made before the wait whose answer came after the run parked is journaled late,
/// and the replay does not make it again (positions are keyed, holes and all).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_answered_after_the_run_parked_is_not_repeated() {
    let api = TestApi::start().await;
    let (_org, _app, key) = api.tenant().await;
    upload_inline(
        &api,
        &key,
        "both",
        json!({ "permissions": { "fetch": ["127.0.0.1"] } }),
        r#"
export default async (input, ctx) => {
  const late = fetch(input.url).then((r) => r.text());
  const go = await ctx.waitFor("go");
  return { go, hits: await late };
};"#,
    )
    .await;
    // Counts its requests and answers the count 300 ms later.
    let hits = Arc::new(AtomicUsize::new(0));
    let seen = hits.clone();
    let slow = axum::Router::new().route(
        "/slow",
        axum::routing::get(move || {
            let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                n.to_string()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/slow", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, slow).await });
    let run = start(&api, &key, "both", json!({ "url": url })).await;
    wait_parked(&api, &key, &run).await;
    // The fetch was asked before the wait and is answered after the run parked.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let signalled = api
        .call(
            Method::POST,
            &format!("/v1/runs/{run}/signals/go"),
            &key,
            Some(json!({ "payload": 1 })),
        )
        .await;
    assert_eq!(signalled.0, StatusCode::ACCEPTED);
    let done = wait_final(&api, &key, &run).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["output"], json!({ "go": 1, "hits": "1" }), "{done}");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "the late fetch was not made again"
    );
    // Payloads are bounded.
    let big = "x".repeat(300 * 1024);
    let (status, _) = api
        .call(
            Method::POST,
            &format!("/v1/runs/{run}/signals/go"),
            &key,
            Some(json!({ "payload": big })),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "the run has ended");
    api.stop().await;
}
