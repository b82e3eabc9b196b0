//! What a replay does with what the journal does not cover: a code path that depends on
//! the attempt number fails with `replay_mismatch`; JS timers are journaled, so their
//! order against host calls is what the replay reproduces.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use serde_json::json;

use super::durable::start;
use super::sandbox_processes::children;
use super::{upload_inline, wait_final, TestApi};

/// A loopback service: `/hang` never answers; `/count` answers how often it was asked.
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
                async move { n.to_string() }
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
