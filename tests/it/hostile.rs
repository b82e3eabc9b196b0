//! Hostile agents: each trips its limit with the right code while 50 well-behaved runs on
//! the same pool all succeed, and the process survives.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use atoll::host::memory::NoLlm;
use atoll::sandbox::{ErrorCode, EventKind, RunStatus};
use serde_json::{json, Value};

use crate::common::{load, Harness, ScriptedTools, TestServer};

/// Runs `agent` alongside 50 hello runs on one pool and returns its outcome.
async fn run_among_neighbours(
    h: &Harness,
    agent: &str,
    input: Value,
) -> (String, atoll::sandbox::RunOutcome) {
    let hello = load("hello");
    let hostile = h
        .pool
        .submit(h.request(&load(agent), input))
        .expect("submit");
    let hostile_id = hostile.run_id.clone();
    let neighbours: Vec<_> = (0..50)
        .map(|i| {
            h.pool
                .submit(h.request(&hello, json!({ "name": format!("n{i}") })))
                .expect("submit")
        })
        .collect();
    let outcome = hostile.outcome().await;
    for n in neighbours {
        let o = n.outcome().await;
        assert!(o.succeeded(), "a neighbour of {agent} failed: {o:?}");
    }
    (hostile_id, outcome)
}

fn harness() -> Harness {
    Harness::new(crate::common::small_pool())
}

async fn expect_code(agent: &str, code: ErrorCode) {
    let h = harness();
    let (_, outcome) = run_among_neighbours(&h, agent, json!({})).await;
    assert_eq!(outcome.error_code(), Some(code), "{agent}: {outcome:?}");
    // The pool keeps serving after it.
    let after = h.run(&load("hello"), json!({ "name": "after" })).await;
    assert!(after.succeeded(), "after {agent}: {after:?}");
}

#[tokio::test]
async fn infinite_loop_in_the_handler_hits_the_cpu_limit() {
    expect_code("hostile-loop", ErrorCode::CpuLimit).await;
}

#[tokio::test]
async fn infinite_loop_at_module_top_level_hits_the_cpu_limit() {
    expect_code("hostile-loop-toplevel", ErrorCode::CpuLimit).await;
}

#[tokio::test]
async fn infinite_loop_after_an_await_hits_the_cpu_limit() {
    expect_code("hostile-loop-async", ErrorCode::CpuLimit).await;
}

#[tokio::test]
async fn heap_bomb_hits_the_memory_limit() {
    expect_code("hostile-heap", ErrorCode::MemoryLimit).await;
}

#[tokio::test]
async fn array_buffer_bomb_hits_the_memory_limit() {
    expect_code("hostile-arraybuffer", ErrorCode::MemoryLimit).await;
}

#[tokio::test]
async fn unbounded_recursion_is_an_agent_error() {
    let h = harness();
    let (_, outcome) = run_among_neighbours(&h, "hostile-recursion", json!({})).await;
    assert_eq!(
        outcome.error_code(),
        Some(ErrorCode::AgentError),
        "{outcome:?}"
    );
    let message = outcome.error.expect("error").message.to_lowercase();
    assert!(
        message.contains("stack") || message.contains("recursion"),
        "{message}"
    );
}

#[tokio::test]
async fn recursion_that_catches_overflow_hits_a_limit() {
    let h = harness();
    let (_, outcome) = run_among_neighbours(&h, "hostile-recursion-catch", json!({})).await;
    assert!(
        matches!(
            outcome.error_code(),
            Some(ErrorCode::CpuLimit | ErrorCode::AgentError)
        ),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn ten_thousand_timers_never_hang() {
    let h = harness();
    let (_, outcome) = run_among_neighbours(&h, "hostile-timers", json!({})).await;
    assert_ne!(outcome.status, RunStatus::TimedOut, "{outcome:?}");
    if outcome.succeeded() {
        assert_eq!(
            outcome.output,
            Some(json!({ "scheduled": 10000, "fired": 10000 }))
        );
    }
}

#[tokio::test]
async fn huge_output_and_state_are_refused() {
    expect_code("hostile-output", ErrorCode::OutputTooLarge).await;
    expect_code("hostile-state", ErrorCode::OutputTooLarge).await;
}

#[tokio::test]
async fn log_flood_is_truncated_but_the_run_finishes() {
    let h = harness();
    let (run_id, outcome) = run_among_neighbours(&h, "hostile-events", json!({})).await;
    assert!(outcome.succeeded(), "{outcome:?}");
    assert_eq!(outcome.output, Some(json!({ "lines": 50000 })));
    let events = h.events.of_run(&run_id);
    let truncated = events
        .iter()
        .filter(|e| e.kind == EventKind::LogTruncated)
        .count();
    assert_eq!(truncated, 1);
    let log_bytes: usize = events
        .iter()
        .filter(|e| e.kind == EventKind::Log)
        .map(|e| e.data["message"].as_str().map_or(0, str::len))
        .sum();
    assert!(log_bytes <= 1024 * 1024, "{log_bytes} bytes of log kept");
    assert!(
        log_bytes > 512 * 1024,
        "the log up to the limit is kept: {log_bytes}"
    );
    assert_eq!(events.last().map(|e| e.kind), Some(EventKind::End));
}

#[tokio::test]
async fn more_than_one_hundred_fetches_hit_the_fetch_limit() {
    let server = TestServer::start().await;
    let h = Harness::with_services(
        crate::common::small_pool(),
        Arc::new(ScriptedTools::default()),
        Arc::new(NoLlm),
        &["127.0.0.1/32"],
    );
    let (_, outcome) =
        run_among_neighbours(&h, "hostile-fetch-many", json!({ "url": server.url("/") })).await;
    assert_eq!(
        outcome.error_code(),
        Some(ErrorCode::FetchLimit),
        "{outcome:?}"
    );
    assert_eq!(server.requests.load(Ordering::SeqCst), 100);
    assert_eq!(outcome.usage.fetches, 100);
}

#[tokio::test]
async fn an_oversize_response_body_is_a_fetch_limit() {
    let server = TestServer::start().await;
    let h = Harness::with_services(
        crate::common::small_pool(),
        Arc::new(ScriptedTools::default()),
        Arc::new(NoLlm),
        &["127.0.0.1/32"],
    );
    let outcome = h
        .run(&load("fetcher"), json!({ "url": server.url("/big") }))
        .await;
    assert_eq!(
        outcome.error_code(),
        Some(ErrorCode::FetchLimit),
        "{outcome:?}"
    );
}
