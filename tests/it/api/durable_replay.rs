//! What a replay does with what the journal does not cover: a code path that depends on
//! the attempt number fails with `replay_mismatch`; JS timers are journaled, so their
//! order against host calls is what the replay reproduces.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use serde_json::json;

use super::durable::{resume_with_go, start, wait_parked};
use super::sandbox_processes::children;
use super::{upload_inline, wait_final, TestApi};

/// A loopback service: `/hang` never answers; `/count` answers, 300 ms late, how often
/// it was asked.
async fn service() -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let hung = Arc::new(AtomicUsize::new(0));
    let counted = Arc::new(AtomicUsize::new(0));
    let (h, c) = (hung.clone(), counted.clone());
    let app = Router::new()
        .route(
            "/hang",
            get(move || {
                h.fetch_add(1, Ordering::SeqCst);
                async {
                    tokio::time::sleep(Duration::from_secs(600)).await;
                    "late"
                }
            }),
        )
        .route(
            "/count",
            get(move || {
                let n = c.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    n.to_string()
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), hung, counted)
}

async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `ctx.run.attempt` is the execution's, not the journal's: a durable run resumed after
/// its sandbox process died runs as attempt 2, and code that takes another path for it
/// asks for another call than the journal holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_that_asks_for_something_else_fails_with_replay_mismatch() {
    let api = TestApi::start().await;
    let (_org, _app, key) = api.tenant().await;
    let (base, hung, _) = service().await;
    upload_inline(
        &api,
        &key,
        "drift",
        json!({ "durable": true, "permissions": { "memory": ["app"], "fetch": ["127.0.0.1"] } }),
        r#"
export default async (input, ctx) => {
  if (ctx.run.attempt === 1) {
    await ctx.memory.get("a", { scope: "app" });
  } else {
    await ctx.memory.set("b", 1, { scope: "app" });
  }
  await fetch(input.base + "/hang");
  return "unreachable";
};"#,
    )
    .await;
    let run = start(&api, &key, "drift", json!({ "base": base })).await;
    until("the run's fetch", || hung.load(Ordering::SeqCst) == 1).await;
    for pid in children(&api) {
        // SAFETY: kill(2) of a child process of this test's server.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
    let done = wait_final(&api, &key, &run).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "replay_mismatch", "{done}");
    let message = done["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("position 0")
            && message.contains("memory.get")
            && message.contains("memory.set"),
        "{message}"
    );
    api.stop().await;
}

/// A `Promise.race` of a fetch and a JS timer: the timer won before the run parked, and
/// wins again on replay although the fetch's answer is in the journal (and comes at
/// once); the fetch is not made again, and `setInterval`'s ticks replay as they came.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_race_of_a_fetch_and_a_js_timer_replays_with_the_same_winner() {
    let api = TestApi::start().await;
    let (_org, _app, key) = api.tenant().await;
    let (base, _, counted) = service().await;
    upload_inline(
        &api,
        &key,
        "race",
        json!({ "permissions": { "fetch": ["127.0.0.1"] } }),
        r#"
export default async (input, ctx) => {
  const fetched = fetch(input.base + "/count").then((r) => r.text());
  const winner = await Promise.race([
    fetched.then((n) => "fetch " + n),
    new Promise((r) => setTimeout(() => r("timer"), 20)),
  ]);
  const count = await fetched;
  let ticks = 0;
  await new Promise((r) => {
    const id = setInterval(() => {
      ticks++;
      if (ticks === 3) { clearInterval(id); r(); }
    }, 10);
  });
  const seen = { winner, count, ticks, at: Date.now() };
  ctx.emit("seen", seen);
  await ctx.waitFor("go");
  return seen;
};"#,
    )
    .await;
    let run = start(&api, &key, "race", json!({ "base": base })).await;
    let done = resume_with_go(&api, &key, &run).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["output"]["winner"], "timer", "{done}");
    assert_eq!(done["output"]["count"], "1", "{done}");
    assert_eq!(done["output"]["ticks"], 3, "{done}");
    let events = super::events_text(&api, &key, &run).await;
    let seen = events
        .lines()
        .find_map(|l| l.strip_prefix("data: ").filter(|d| d.contains("\"seen\"")))
        .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .expect("the seen event");
    assert_eq!(seen["data"]["at"], done["output"]["at"], "{seen}");
    assert_eq!(
        counted.load(Ordering::SeqCst),
        1,
        "the fetch was made again"
    );
    api.stop().await;
}

/// A timer still pending when the run parked is due when it was due: on resume it fires
/// at once (its deadline passed during the wait), not its whole delay later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_js_timer_due_during_a_wait_fires_once_the_run_resumes() {
    let api = TestApi::start().await;
    let (_org, _app, key) = api.tenant().await;
    upload_inline(
        &api,
        &key,
        "later",
        json!({}),
        r#"
export default async (input, ctx) => {
  const t0 = Date.now();
  let firedAt = null;
  setTimeout(() => { firedAt = Date.now(); }, 1500);
  await ctx.sleep(2000);
  await new Promise((r) => setTimeout(r, 1000));
  return { fired: firedAt !== null, after: firedAt === null ? null : firedAt - t0 };
};"#,
    )
    .await;
    let run = start(&api, &key, "later", json!({})).await;
    wait_parked(&api, &key, &run).await;
    let done = wait_final(&api, &key, &run).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["output"]["fired"], true, "{done}");
    assert!(
        done["output"]["after"].as_i64().expect("after") >= 1500,
        "{done}"
    );
    api.stop().await;
}

/// A timer that fires while the run is busy and is cleared before its callback could
/// run: the journal holds the clear, not the firing, so the replay (which answers the
/// firing as soon as its turn comes) does not run the callback either. A timer cleared
/// long before it was due is journaled as cleared too (not left as a hole a resumed run
/// would ask for again, and fire).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_cleared_as_it_fired_stays_cleared_on_replay() {
    let api = TestApi::start().await;
    let (_org, _app, key) = api.tenant().await;
    upload_inline(
        &api,
        &key,
        "cleared",
        json!({ "permissions": { "memory": ["app"] } }),
        r#"
export default async (input, ctx) => {
  const order = [];
  const early = setTimeout(() => order.push("early"), 60000);
  const t = setTimeout(() => order.push("timer"), 30);
  await ctx.memory.get("k", { scope: "app" });
  clearTimeout(early);
  let x = 0;
  for (let i = 0; i < 20000000; i++) x += i;
  clearTimeout(t);
  await ctx.waitFor("go");
  return { order, x: x > 0 };
};"#,
    )
    .await;
    let run = start(&api, &key, "cleared", json!({})).await;
    wait_parked(&api, &key, &run).await;
    let store = api.server.as_ref().expect("server").state.store.clone();
    let journal = store.journal(&run).await.expect("journal");
    let timers: Vec<_> = journal.iter().filter(|e| e.op == "timer").collect();
    assert_eq!(timers.len(), 2, "both timers are journaled: {journal:?}");
    for timer in timers {
        let answer: atoll::process::protocol::Answer =
            atoll::process::protocol::decode(&timer.answer).expect("answer");
        assert!(
            matches!(&answer, atoll::process::protocol::Answer::Refused { code, .. } if code == "cleared"),
            "position {}: a cleared timer's entry is the clear: {answer:?}",
            timer.seq
        );
    }
    let done = resume_with_go(&api, &key, &run).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["output"], json!({ "order": [], "x": true }), "{done}");
    api.stop().await;
}
