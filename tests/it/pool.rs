//! The pool under load: concurrency, thread retirement, back-pressure, cancellation and
//! the wall clock.

use std::sync::Arc;
use std::time::Duration;

use atoll::host::memory::NoLlm;
use atoll::sandbox::{ErrorCode, EventKind, Pool, PoolConfig, PoolError, RunStatus};
use serde_json::json;

use crate::common::{inline_package as package, load, Harness, ScriptedTools};

#[tokio::test]
async fn a_thousand_concurrent_runs_each_awaiting_a_slow_op_all_succeed() {
    let tools = Arc::new(ScriptedTools {
        delay: Duration::from_millis(100),
        ..Default::default()
    });
    let h = Harness::with_services(
        Pool::new(PoolConfig::default()).expect("pool"),
        tools.clone(),
        Arc::new(NoLlm),
        &[],
    );
    let agent = load("tool-user");
    let handles: Vec<_> = (0..1000)
        .map(|i| {
            h.pool
                .submit(h.request(&agent, json!({ "customer_id": format!("c{i}") })))
                .expect("submit")
        })
        .collect();
    let mut succeeded = 0;
    for (i, handle) in handles.into_iter().enumerate() {
        let outcome = handle.outcome().await;
        assert!(outcome.succeeded(), "run {i}: {outcome:?}");
        assert_eq!(
            outcome.output.expect("output")["customer"]["id"],
            format!("c{i}")
        );
        succeeded += 1;
    }
    assert_eq!(succeeded, 1000);
    assert_eq!(tools.calls.load(std::sync::atomic::Ordering::SeqCst), 1000);
    let stats = h.pool.stats();
    assert!(
        stats.threads_started > 2,
        "threads were added on demand: {stats:?}"
    );
}

#[tokio::test]
async fn ten_times_the_thread_budget_goes_through_one_pool() {
    let config = PoolConfig {
        min_threads: 1,
        max_threads: 2,
        ..PoolConfig::default()
    };
    let budget = config.isolates_per_thread;
    let pool = Pool::new(config).expect("pool");
    let h = Harness::new(pool);
    let hello = load("hello");
    let total = budget * 10;
    let mut done = 0;
    while done < total {
        let batch: Vec<_> = (0..64.min(total - done))
            .map(|i| {
                h.pool
                    .submit(h.request(&hello, json!({ "name": format!("r{}", done + i) })))
                    .expect("submit")
            })
            .collect();
        for handle in batch {
            let outcome = handle.outcome().await;
            assert!(outcome.succeeded(), "run {done}: {outcome:?}");
            done += 1;
        }
    }
    let stats = h.pool.stats();
    assert!(stats.isolates_created as usize >= total, "{stats:?}");
    // Every thread makes at most its budget (plus the blanks it had ready), so ten
    // budgets' worth of isolates took at least ten threads; all but the (at most two)
    // live ones, and one that may be exiting right now, have been retired.
    let lifetimes = (total / (budget + 2)) as u64;
    assert!(
        stats.threads_started >= lifetimes,
        "threads were replaced: {stats:?}"
    );
    assert!(
        stats.threads_retired + 3 >= stats.threads_started,
        "threads were retired: {stats:?}"
    );
    assert!(
        stats.threads_alive >= 1 && stats.threads_alive <= 2,
        "{stats:?}"
    );
}

#[tokio::test]
async fn a_full_queue_answers_saturated_instead_of_growing() {
    let tools = Arc::new(ScriptedTools {
        delay: Duration::from_millis(500),
        ..Default::default()
    });
    let pool = Pool::new(PoolConfig {
        min_threads: 1,
        max_threads: 1,
        max_live_per_thread: 1,
        queue_capacity: 3,
        ..PoolConfig::default()
    })
    .expect("pool");
    let h = Harness::with_services(pool, tools, Arc::new(NoLlm), &[]);
    let agent = load("tool-user");
    let mut accepted = Vec::new();
    let mut refused = None;
    for i in 0..10 {
        match h
            .pool
            .submit(h.request(&agent, json!({ "customer_id": format!("c{i}") })))
        {
            Ok(handle) => accepted.push(handle),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    assert!(
        matches!(refused, Some(PoolError::Saturated(_))),
        "{refused:?}"
    );
    assert!(accepted.len() <= 5, "accepted {}", accepted.len());
    for handle in accepted {
        assert!(
            handle.outcome().await.succeeded(),
            "accepted runs still finish"
        );
    }
}

#[tokio::test]
async fn cancelling_a_cpu_bound_run_terminates_it() {
    let h = Harness::new(crate::common::small_pool());
    let spin = package(
        json!({ "cpu_ms": 60000 }),
        "export default async () => { for (;;) {} };",
    );
    let handle = h.pool.submit(h.request(&spin, json!({}))).expect("submit");
    tokio::time::sleep(Duration::from_millis(200)).await;
    handle.cancel();
    let outcome = tokio::time::timeout(Duration::from_secs(5), handle.outcome())
        .await
        .expect("cancel ends the run promptly");
    assert_eq!(outcome.status, RunStatus::Cancelled, "{outcome:?}");
    assert_eq!(outcome.error_code(), Some(ErrorCode::Cancelled));
}

#[tokio::test]
async fn cancelling_a_waiting_run_aborts_ctx_signal_first() {
    // A generous grace: the abort must be seen before termination even on a busy machine.
    let pool = Pool::new(PoolConfig {
        min_threads: 1,
        cancel_grace: Duration::from_secs(10),
        ..PoolConfig::default()
    })
    .expect("pool");
    let h = Harness::new(pool);
    let waiter = package(
        json!({}),
        r#"export default async (input, ctx) => {
            ctx.emit("waiting", {});
            // The timer keeps the run alive; only the abort can end the wait early.
            await new Promise((resolve) => {
                ctx.signal.addEventListener("abort", resolve);
                setTimeout(resolve, 60000);
            });
            ctx.emit("saw_abort", { reason: String(ctx.signal.reason) });
            return "late";
        };"#,
    );
    let handle = h
        .pool
        .submit(h.request(&waiter, json!({})))
        .expect("submit");
    let run_id = handle.run_id.clone();
    // Cancel only once the agent is waiting (a run cancelled before it starts never runs).
    for _ in 0..1000 {
        let waiting = h
            .events
            .of_run(&run_id)
            .iter()
            .any(|e| e.kind == EventKind::Emit && e.data["type"] == "waiting");
        if waiting {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    handle.cancel();
    let outcome = handle.outcome().await;
    assert_eq!(outcome.status, RunStatus::Cancelled, "{outcome:?}");
    let saw_abort = h
        .events
        .of_run(&run_id)
        .iter()
        .any(|e| e.kind == EventKind::Emit && e.data["type"] == "saw_abort");
    assert!(
        saw_abort,
        "ctx.signal aborted before the isolate was dropped"
    );
}

#[tokio::test]
async fn a_run_past_its_wall_clock_times_out() {
    let h = Harness::new(crate::common::small_pool());
    let sleeper = package(
        json!({ "timeout_ms": 300 }),
        "export default async () => { await new Promise((r) => setTimeout(r, 60000)); return 1; };",
    );
    let outcome = h.run(&sleeper, json!({})).await;
    assert_eq!(outcome.status, RunStatus::TimedOut, "{outcome:?}");
    assert_eq!(outcome.error_code(), Some(ErrorCode::Timeout));
}

#[tokio::test]
async fn a_manifest_cannot_raise_its_limits_above_the_ceiling() {
    let h = Harness::new(crate::common::small_pool());
    let spin = package(
        json!({ "cpu_ms": 3_600_000 }),
        "export default async () => { for (;;) {} };",
    );
    let req = h.request(&spin, json!({}));
    assert_eq!(
        req.grant.limits.cpu_ms, 2000,
        "clamped to the default ceiling"
    );
    let (_, outcome) = h.run_request(req).await;
    assert_eq!(
        outcome.error_code(),
        Some(ErrorCode::CpuLimit),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn agent_errors_carry_message_and_stack() {
    let h = Harness::new(crate::common::small_pool());
    let thrower = package(
        json!({}),
        "function inner() { throw new TypeError('bad thing'); }\nexport default async () => inner();",
    );
    let outcome = h.run(&thrower, json!({})).await;
    assert_eq!(
        outcome.error_code(),
        Some(ErrorCode::AgentError),
        "{outcome:?}"
    );
    let error = outcome.error.expect("error");
    assert_eq!(error.message, "TypeError: bad thing");
    assert!(
        error.stack.as_deref().is_some_and(|s| s.contains("inner")),
        "{error:?}"
    );
}

#[tokio::test]
async fn output_that_is_not_json_or_fails_the_schema_is_output_invalid() {
    let h = Harness::new(crate::common::small_pool());
    let bigint = package(json!({}), "export default async () => ({ n: 10n });");
    let outcome = h.run(&bigint, json!({})).await;
    assert_eq!(
        outcome.error_code(),
        Some(ErrorCode::OutputInvalid),
        "{outcome:?}"
    );
    let outcome = h.run(&load("hello"), json!({ "name": "x" })).await;
    assert!(outcome.succeeded());
}

#[tokio::test]
async fn awaiting_a_promise_that_can_never_settle_fails_at_once() {
    let h = Harness::new(crate::common::small_pool());
    let stuck = package(
        json!({}),
        "export default async () => { await new Promise(() => {}); };",
    );
    let outcome = h.run(&stuck, json!({})).await;
    assert_eq!(
        outcome.error_code(),
        Some(ErrorCode::AgentError),
        "{outcome:?}"
    );
    assert!(outcome
        .error
        .expect("error")
        .message
        .contains("never settle"));
}
