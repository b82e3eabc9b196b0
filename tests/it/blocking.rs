//! No agent can hold a worker thread or outgrow its memory budget: blocking primitives
//! and memory outside the heap are gone, host-side buffers are counted, and a worker that
//! stops making progress anyway is replaced while its runs end with precise codes.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use atoll::host::memory::{CollectingEvents, NoLlm, NoTools};
use atoll::host::EventSink;
use atoll::sandbox::{ErrorCode, EventKind, Pool, PoolConfig, RunEvent, RunStatus};
use serde_json::json;

use crate::common::{
    inline_package as inline, inline_package_with, load, small_pool, Harness, TestServer,
};

#[tokio::test]
async fn atomics_wait_is_gone_so_nothing_blocks_the_thread() {
    let h = Harness::new(small_pool());
    let outcome = h.run(&load("hostile-atomics"), json!({})).await;
    assert!(outcome.succeeded(), "{outcome:?}");
    let output = outcome.output.expect("output");
    assert_eq!(output["shared_array_buffer"], "undefined", "{output}");
    assert_eq!(output["atomics_wait"], "undefined", "{output}");
    assert_eq!(
        output["tries"],
        json!(["absent", "absent", "absent", "absent", "absent"]),
        "{output}"
    );
}

#[tokio::test]
async fn shared_and_webassembly_memory_cannot_be_allocated() {
    let h = Harness::new(small_pool());
    let outcome = h.run(&load("hostile-shared-memory"), json!({})).await;
    assert!(outcome.succeeded(), "{outcome:?}");
    assert_eq!(
        outcome.output,
        Some(json!({ "shared": "ReferenceError", "wasm": "ReferenceError" }))
    );
}

#[tokio::test]
async fn response_bodies_held_by_the_host_count_against_the_memory_limit() {
    let server = TestServer::start().await;
    let h = Harness::with_services(
        small_pool(),
        Arc::new(NoTools),
        Arc::new(NoLlm),
        &["127.0.0.1/32"],
    );
    let flood = load("hostile-fetch-flood");
    let outcome = h
        .run(&flood, json!({ "url": server.url("/9mb"), "count": 40 }))
        .await;
    assert_eq!(
        outcome.error_code(),
        Some(ErrorCode::MemoryLimit),
        "{outcome:?}"
    );
    // Bodies that never reach the isolate: only the host holds them, and it stops at the
    // budget (4 × 5 MiB > 16 MiB) at once, not when the stalled server gives up.
    let (id, stalled) = h
        .run_request(h.request(&flood, json!({ "url": server.url("/stall"), "count": 4 })))
        .await;
    assert_eq!(
        stalled.error_code(),
        Some(ErrorCode::MemoryLimit),
        "{stalled:?}"
    );
    let refused = h
        .events
        .of_run(&id)
        .into_iter()
        .filter(|e| e.kind == EventKind::Fetch && e.data["error"] == "memory_limit")
        .count();
    assert_eq!(refused, 1, "one fetch went over the budget");
    // One body fits in 16 MiB: the budget is a limit, not a refusal to fetch.
    let one = h
        .run(&flood, json!({ "url": server.url("/9mb"), "count": 1 }))
        .await;
    assert!(one.succeeded(), "{one:?}");
    assert_eq!(one.output, Some(json!({ "kept_mib": 9, "failed": 0 })));
    // The pool keeps serving.
    let after = h.run(&load("hello"), json!({ "name": "after" })).await;
    assert!(after.succeeded(), "{after:?}");
}

/// An event sink that blocks the publishing thread on the events `blocks` picks until
/// released: a stand-in for anything that holds a worker where termination cannot reach.
struct BlockingEvents {
    inner: CollectingEvents,
    blocks: Box<dyn Fn(&RunEvent) -> bool + Send + Sync>,
    /// Told when a thread starts blocking.
    entered: tokio::sync::Notify,
    released: Mutex<bool>,
    wake: Condvar,
}

impl BlockingEvents {
    fn new(blocks: impl Fn(&RunEvent) -> bool + Send + Sync + 'static) -> Arc<BlockingEvents> {
        Arc::new(BlockingEvents {
            inner: CollectingEvents::default(),
            blocks: Box::new(blocks),
            entered: tokio::sync::Notify::new(),
            released: Mutex::new(false),
            wake: Condvar::new(),
        })
    }

    fn release(&self) {
        *self.released.lock().expect("lock") = true;
        self.wake.notify_all();
    }
}

impl EventSink for BlockingEvents {
    fn publish(&self, event: RunEvent) {
        let blocks = (self.blocks)(&event);
        self.inner.publish(event);
        if blocks {
            self.entered.notify_one();
            let mut released = self.released.lock().expect("lock");
            while !*released {
                released = self.wake.wait(released).expect("wait");
            }
        }
    }
}

/// Shuts `pool` down off the async runtime; returns only once it has.
async fn shut_down(pool: &Pool) {
    let pool = pool.clone();
    tokio::task::spawn_blocking(move || pool.shutdown())
        .await
        .expect("shutdown");
}

fn one_thread_pool() -> Pool {
    Pool::new(PoolConfig {
        min_threads: 1,
        max_threads: 1,
        stuck_after: Duration::from_millis(100),
        ..PoolConfig::default()
    })
    .expect("pool")
}

#[tokio::test]
async fn a_stuck_worker_is_replaced_and_its_runs_end_with_precise_codes() {
    let mut h = Harness::new(one_thread_pool());
    let sink = BlockingEvents::new(|event| {
        event.kind == EventKind::Log && event.data.to_string().contains("block-the-thread")
    });
    h.services.events = sink.clone();

    // A neighbour on the same (only) thread, waiting on a timer.
    let waiter = inline(
        json!({}),
        "export default async () => { await new Promise((r) => setTimeout(r, 20000)); return 1; };",
    );
    let neighbour = h
        .pool
        .submit(h.request(&waiter, json!({})))
        .expect("submit");
    let blocker = inline(
        json!({}),
        "export default async () => { console.log('block-the-thread'); return 1; };",
    );
    let blocked = h
        .pool
        .submit(h.request(&blocker, json!({})))
        .expect("submit");
    let blocked_id = blocked.run_id.clone();

    // Cancelling terminates the isolate, which cannot reach a thread blocked in the host.
    sink.entered.notified().await;
    blocked.cancel();
    let outcome = blocked.outcome().await;
    assert_eq!(outcome.status, RunStatus::Cancelled, "{outcome:?}");
    assert_eq!(outcome.error_code(), Some(ErrorCode::Cancelled));
    let outcome = neighbour.outcome().await;
    assert_eq!(
        outcome.error_code(),
        Some(ErrorCode::SandboxCrashed),
        "{outcome:?}"
    );

    // A replacement thread serves new runs while the old one is still blocked.
    for i in 0..5 {
        let hello = h
            .run(&load("hello"), json!({ "name": format!("n{i}") }))
            .await;
        assert!(hello.succeeded(), "{hello:?}");
    }
    let stats = h.pool.stats();
    assert_eq!(stats.threads_abandoned, 1, "{stats:?}");

    // The blocked run has exactly one end, last.
    let events = sink.inner.of_run(&blocked_id);
    let ends: Vec<_> = events.iter().filter(|e| e.kind == EventKind::End).collect();
    assert_eq!(ends.len(), 1, "{events:?}");
    assert_eq!(events.last().map(|e| e.kind), Some(EventKind::End));

    // Shutdown does not wait for the thread that never came back.
    shut_down(&h.pool).await;
    sink.release();
}

#[tokio::test]
async fn a_worker_stuck_between_polls_is_replaced_too() {
    let mut h = Harness::new(one_thread_pool());
    let hello = load("hello");
    let blocked = h.request(&hello, json!({ "name": "stuck" }));
    let blocked_id = blocked.run_id.clone();
    // Blocks in host work the worker does outside any poll of JS: publishing `running`.
    let target = blocked_id.clone();
    let sink = BlockingEvents::new(move |event| {
        event.run_id == target
            && event.kind == EventKind::Status
            && event.data["status"] == "running"
    });
    h.services.events = sink.clone();
    let mut blocked = blocked;
    blocked.services = h.services.clone();
    let handle = h.pool.submit(blocked).expect("submit");

    sink.entered.notified().await;
    handle.cancel();
    let outcome = handle.outcome().await;
    assert_eq!(
        outcome.error_code(),
        Some(ErrorCode::Cancelled),
        "{outcome:?}"
    );
    let after = h.run(&hello, json!({ "name": "after" })).await;
    assert!(after.succeeded(), "{after:?}");
    assert_eq!(h.pool.stats().threads_abandoned, 1);

    shut_down(&h.pool).await;
    sink.release();
}

/// The engine keeps its own references to every intrinsic on the global object
/// (`__v8x_snapshot_intrinsics`, for its startup snapshot): deleting the globals
/// `SharedArrayBuffer` and `WebAssembly` is not enough if that array is still reachable.
#[tokio::test]
async fn engine_internals_hand_back_no_shared_memory_or_webassembly() {
    let h = Harness::new(small_pool());
    let agent = load("hostile-intrinsics");
    for attempt in [
        json!({}),
        json!({ "try": "shared" }),
        json!({ "try": "wasm" }),
    ] {
        let outcome = h.run(&agent, attempt.clone()).await;
        assert!(outcome.succeeded(), "{attempt}: {outcome:?}");
        let output = outcome.output.expect("output");
        assert_eq!(output["shared"], "absent", "{attempt}: {output}");
        assert_eq!(output["wasm_memory"], "absent", "{attempt}: {output}");
        assert_eq!(output["wasm_spin"], "absent", "{attempt}: {output}");
        // What may stay: the helpers the engine's own `Atomics.notify` and `Intl` shims
        // call. Not the intrinsics array, nor `__v8xPostForegroundTask` (each call queues
        // a host allocation outside the heap: 8 million calls took 347 MiB of RSS under a
        // 64 MiB limit), nor the waiter registry.
        let internals = output["internals"].as_array().cloned().unwrap_or_default();
        for name in &internals {
            assert!(
                name == "__v8xTemporalTimeZone" || name == "__v8xAtomicsNotifyWaiters",
                "{attempt}: {output}"
            );
        }
    }
}

/// A WebAssembly `loop br 0` reached through the engine's leftovers: termination does
/// reach the engine's WebAssembly interpreter today (the run ends `cpu_limit` and no thread
/// is given up); this keeps it so, whether or not WebAssembly can be reached at all.
#[tokio::test]
async fn a_webassembly_loop_costs_no_worker_thread() {
    let h = Harness::new(one_thread_pool());
    let outcome = h
        .run(&load("hostile-intrinsics"), json!({ "try": "spin" }))
        .await;
    assert!(
        outcome.succeeded() || outcome.error_code() == Some(ErrorCode::CpuLimit),
        "{outcome:?}"
    );
    let after = h.run(&load("hello"), json!({ "name": "after" })).await;
    assert!(after.succeeded(), "{after:?}");
    assert_eq!(h.pool.stats().threads_abandoned, 0, "{:?}", h.pool.stats());
    shut_down(&h.pool).await;
}

/// `ctx.emit` hands the host a JSON text that the host parses whole before it looks at the
/// run's event volume (1 MiB): a 4 MB text of `[[0,0,...],...]` (an array that repeats
/// one inner array, a few KiB of heap) becomes two million `serde_json::Value`s on the
/// host — about 75 bytes of host memory per byte of text (measured with `atoll exec`: 2 MB
/// of text took the process from 38 to 187 MiB RSS under `memory_mb: 16`) and seconds of
/// CPU inside one op, where termination cannot reach, so the watchdog gives the thread up.
/// An event that cannot fit the volume is dropped without being parsed.
#[tokio::test]
async fn an_oversized_emit_is_dropped_before_the_host_parses_it() {
    let h = Harness::new(one_thread_pool());
    let agent = inline(
        json!({ "memory_mb": 16, "cpu_ms": 1000 }),
        "export default async (input, ctx) => {
           const inner = new Array(1000).fill(0);
           const outer = new Array(2000).fill(inner);
           ctx.emit('big', outer);
           return 'emitted';
         };",
    );
    let (id, outcome) = h.run_request(h.request(&agent, json!({}))).await;
    assert!(outcome.succeeded(), "{outcome:?}");
    assert_eq!(h.pool.stats().threads_abandoned, 0, "{:?}", h.pool.stats());
    let events = h.events.of_run(&id);
    assert!(
        events.iter().any(|e| e.kind == EventKind::LogTruncated),
        "{events:?}"
    );
    assert!(
        !events.iter().any(|e| e.kind == EventKind::Emit),
        "{events:?}"
    );
    shut_down(&h.pool).await;
}

/// The same amplification through every other op that takes JSON: each refuses a text
/// over its limit before parsing it, with `request_too_large`.
#[tokio::test]
async fn oversized_op_calls_are_refused_before_the_host_parses_them() {
    let h = Harness::with_services(
        small_pool(),
        Arc::new(crate::common::ScriptedTools::default()),
        Arc::new(crate::common::ScriptedLlm::default()),
        &[],
    );
    let permissions = json!({
        "tools": ["lookup_customer"], "memory": ["app"], "llm": ["scripted/*"],
        "fetch": ["example.com"]
    });
    let source = "export default async (input, ctx) => {
        // ~1.2 MB of JSON: just over the 1 MiB limit, cheap to build.
        const outer = new Array(600).fill(new Array(1000).fill(0));
        const calls = {
          tool: () => ctx.tools.call('lookup_customer', outer),
          memory: () => ctx.memory.set('k', outer, { scope: 'app' }),
          llm: () => ctx.llm.chat({ model: 'scripted/x', messages: [{ role: 'user', content: outer }] }),
          fetch: () => fetch('https://example.com/', { headers: { 'x-big': 'a'.repeat(1200000) } }),
        };
        const codes = {};
        for (const [name, call] of Object.entries(calls)) {
          try { await call(); codes[name] = 'accepted'; } catch (e) { codes[name] = e.code ?? e.name; }
        }
        return codes;
      };";
    let package = inline_package_with(json!({ "permissions": permissions }), source);
    let outcome = h.run(&package, json!({})).await;
    assert!(outcome.succeeded(), "{outcome:?}");
    let code = json!("request_too_large");
    assert_eq!(
        outcome.output,
        Some(json!({ "tool": code, "memory": code, "llm": code, "fetch": code }))
    );
}
