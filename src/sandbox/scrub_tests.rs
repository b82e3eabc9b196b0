//! The scrub on real isolates: runs that end normally, are terminated, hit the heap
//! limit, load modules, leave hostile objects behind, and blank isolates — all keep their
//! outcomes and the process survives. The `#[ignore]`d `measure_*` tests print what the
//! scrub returns and what it costs:
//!
//! ```text
//! cargo test --no-default-features --features quickjs --lib sandbox::scrub::tests::measure \
//!     -- --ignored --nocapture --test-threads=1
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{enabled, set_enabled, totals};
use crate::broker::{AddressPolicy, HttpFetcher};
use crate::host::memory::{DiscardEvents, InMemoryMemory, NoLlm, NoTools};
use crate::host::{HostServices, Tenant};
use crate::package::{AgentPackage, PackageLimits};
use crate::sandbox::isolate::Isolate;
use crate::sandbox::{ErrorCode, Limits, Pool, PoolConfig, RunGrant, RunOutcome, RunRequest};

fn agent(name: &str) -> Arc<AgentPackage> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("agents")
        .join(name);
    Arc::new(AgentPackage::load_path(&dir, &PackageLimits::default()).expect("agent loads"))
}

fn inline(source: &str) -> Arc<AgentPackage> {
    let manifest = json!({ "name": "@test/scrub", "version": "1.0.0" });
    let files = std::collections::BTreeMap::from([("main.js".to_owned(), source.to_owned())]);
    Arc::new(AgentPackage::from_files(manifest, files, &PackageLimits::default()).expect("package"))
}

fn services() -> HostServices {
    let policy = AddressPolicy::parse(Vec::<String>::new()).expect("policy");
    HostServices {
        memory: Arc::new(InMemoryMemory::default()),
        tools: Arc::new(NoTools),
        llm: Arc::new(NoLlm),
        fetcher: Arc::new(HttpFetcher::new(policy).expect("fetcher")),
        events: Arc::new(DiscardEvents),
        waits: Arc::new(crate::host::memory::LocalWaits::default()),
        clock: None,
    }
}

/// CPU budget of the runs that are meant to hit it: 100 ms instead of 2 s.
const SHORT_CPU_MS: u64 = 100;

fn request(
    package: &Arc<AgentPackage>,
    input: Value,
    services: &HostServices,
    cpu_ms: Option<u64>,
) -> RunRequest {
    let mut grant = RunGrant::from_manifest(&package.manifest, &Limits::default());
    if let Some(cpu_ms) = cpu_ms {
        grant.limits.cpu_ms = grant.limits.cpu_ms.min(cpu_ms);
    }
    RunRequest {
        run_id: format!("run_{}", uuid::Uuid::new_v4().simple()),
        package: package.clone(),
        tenant: Tenant {
            org_id: "org_test".into(),
            app_id: "app_test".into(),
            // Agents with end-user memory (`counter`) need one.
            end_user: Some("eu_test".into()),
        },
        input,
        state: None,
        grant,
        services: services.clone(),
        trigger: "test".into(),
        attempt: 1,
        events_before: 0,
        journal: None,
    }
}

fn pool(threads: usize, prewarm: usize) -> Pool {
    Pool::new(PoolConfig {
        min_threads: threads,
        max_threads: threads,
        prewarm,
        ..PoolConfig::default()
    })
    .expect("pool")
}

/// Runs `n` runs of `package` on `pool`, `batch` at a time; returns their outcomes.
async fn run_many(
    pool: &Pool,
    package: &Arc<AgentPackage>,
    input: Value,
    n: usize,
    batch: usize,
) -> Vec<RunOutcome> {
    run_many_capped(pool, package, input, n, batch, None).await
}

/// [`run_many`] with the runs' CPU budget lowered to `cpu_ms`.
async fn run_many_capped(
    pool: &Pool,
    package: &Arc<AgentPackage>,
    input: Value,
    n: usize,
    batch: usize,
    cpu_ms: Option<u64>,
) -> Vec<RunOutcome> {
    let services = services();
    let mut outcomes = Vec::with_capacity(n);
    while outcomes.len() < n {
        let handles: Vec<_> = (0..batch.min(n - outcomes.len()))
            .map(|_| {
                pool.submit(request(package, input.clone(), &services, cpu_ms))
                    .expect("submit")
            })
            .collect();
        for handle in handles {
            outcomes.push(handle.outcome().await);
        }
    }
    outcomes
}

/// Shuts `pool` down (every isolate it made is disposed by then) and checks the scrub
/// ran on each of them and never failed to find a context.
fn finish(pool: Pool, scrubbed_before: u64) {
    pool.shutdown();
    let created = pool.stats().isolates_created;
    let (scrubbed, not_scrubbed, _) = totals();
    assert!(enabled(), "the scrub is on by default");
    assert!(
        scrubbed - scrubbed_before >= created,
        "{} scrubs for {created} isolates",
        scrubbed - scrubbed_before
    );
    assert_eq!(not_scrubbed, 0, "isolates the scrub could not handle");
}

#[tokio::test]
async fn normal_runs_keep_their_outcomes() {
    let before = totals().0;
    let pool = pool(2, 2);
    let hello = agent("hello");
    for (i, o) in run_many(&pool, &hello, json!({ "name": "Ada" }), 300, 32)
        .await
        .into_iter()
        .enumerate()
    {
        assert!(o.succeeded(), "run {i}: {o:?}");
        assert_eq!(o.output.expect("output")["greeting"], "Hello, Ada!");
    }
    let counter = agent("counter");
    for o in run_many(&pool, &counter, json!({}), 30, 10).await {
        assert!(o.succeeded(), "{o:?}");
    }
    finish(pool, before);
}

#[tokio::test]
async fn terminated_runs_hit_the_cpu_limit() {
    let before = totals().0;
    let pool = pool(2, 1);
    for (name, n) in [
        ("hostile-loop", 50),
        ("hostile-loop-async", 10),
        ("hostile-loop-toplevel", 10),
    ] {
        let hostile = agent(name);
        for o in run_many_capped(&pool, &hostile, json!({}), n, 10, Some(SHORT_CPU_MS)).await {
            assert_eq!(o.error_code(), Some(ErrorCode::CpuLimit), "{name}: {o:?}");
        }
    }
    // The threads that disposed them keep serving.
    let hello = agent("hello");
    for o in run_many(&pool, &hello, json!({ "name": "after" }), 10, 10).await {
        assert!(o.succeeded(), "{o:?}");
    }
    finish(pool, before);
}

/// Heap-limit hits, failed allocations and stack overflows, then ordinary runs on the
/// same threads. (Before the near-heap-limit callback gave the unwinding head-room, this
/// mix crashed the engine in QuickJS's `build_backtrace` about once in a few hundred
/// heap-limit hits, with or without the scrub.)
#[tokio::test]
async fn runs_at_the_heap_limit_hit_the_memory_limit() {
    let before = totals().0;
    let pool = pool(2, 1);
    for (name, n) in [("hostile-heap", 50), ("hostile-arraybuffer", 10)] {
        let hostile = agent(name);
        for o in run_many(&pool, &hostile, json!({}), n, 4).await {
            assert_eq!(
                o.error_code(),
                Some(ErrorCode::MemoryLimit),
                "{name}: {o:?}"
            );
        }
    }
    let recursion = agent("hostile-recursion");
    for o in run_many(&pool, &recursion, json!({}), 10, 5).await {
        assert_eq!(o.error_code(), Some(ErrorCode::AgentError), "{o:?}");
    }
    let hello = agent("hello");
    for o in run_many(&pool, &hello, json!({ "name": "after" }), 10, 10).await {
        assert!(o.succeeded(), "{o:?}");
    }
    finish(pool, before);
}

#[tokio::test]
async fn module_runs_keep_their_outputs() {
    let before = totals().0;
    let pool = pool(2, 2);
    let multi = agent("multi-module");
    let expected = json!({
        "sum": 5, "product": 20, "circle_area": 12.56,
        "data_name": "multi-module fixture", "data_items": ["alpha", "beta", "gamma"],
        "lazy_message": "lazy module loaded", "lazy_ready": "ready", "lazy_square": 49,
        "same_math_instance": true, "math_evaluations": 1
    });
    for o in run_many(&pool, &multi, json!({}), 100, 25).await {
        assert!(o.succeeded(), "{o:?}");
        assert_eq!(o.output.as_ref(), Some(&expected));
    }
    finish(pool, before);
}

/// An agent that leaves behind what a careless scrub would trip on: proxies whose every
/// trap spins forever or throws, frozen and sealed objects, a non-configurable
/// `constructor`, a `constructor` accessor, class hierarchies, a suspended generator,
/// pending promises, weak references and a finalization registry.
const HOSTILE_LEFTOVERS: &str = r#"
const spin = () => { for (;;) {} };
const traps = {
  getPrototypeOf: spin, setPrototypeOf: spin, deleteProperty: spin, isExtensible: spin,
  preventExtensions: spin, get: spin, set: spin, has: spin, ownKeys: spin,
  getOwnPropertyDescriptor: spin, defineProperty: spin,
};
class Base { constructor(n) { this.n = n; } get twice() { return this.n * 2; } }
class Derived extends Base { constructor(n) { super(n); this.tag = "d"; } }
function* counter() { let i = 0; for (;;) yield i++; }
export default async (input, ctx) => {
  const kept = [];
  for (let i = 0; i < 200; i++) {
    kept.push(new Proxy({ i }, traps));
    kept.push(new Proxy(function () {}, { apply: spin, construct: spin, ...traps }));
    kept.push(Object.freeze({ i, inner: { i } }));
    kept.push(Object.seal({ i }));
    const pinned = {};
    Object.defineProperty(pinned, "constructor", { value: Base, configurable: false });
    kept.push(pinned);
    const accessor = {};
    Object.defineProperty(accessor, "constructor", { get: spin, configurable: true });
    kept.push(accessor);
    kept.push(new Derived(i), Object.create(null), [i, { i }], new Map([[i, { i }]]));
  }
  const revocable = Proxy.revocable({}, traps);
  revocable.revoke();
  const generator = counter();
  generator.next();
  // Its target stays reachable: the callback could only run if disposal ran jobs.
  const registry = new FinalizationRegistry(spin);
  registry.register(kept[3], "gone");
  globalThis.leftovers = {
    kept, revoked: revocable.proxy, generator, registry,
    weak: new WeakRef(kept[0]), pending: new Promise(() => {}),
    typed: new Float64Array(1024), text: "x".repeat(100000),
  };
  Object.freeze(globalThis.leftovers);
  return { kept: kept.length };
};
"#;

#[tokio::test]
async fn hostile_leftovers_are_scrubbed_without_running_js() {
    let before = totals().0;
    let pool = pool(2, 1);
    let package = inline(HOSTILE_LEFTOVERS);
    for o in run_many(&pool, &package, json!({}), 30, 10).await {
        assert!(o.succeeded(), "{o:?}");
        assert_eq!(o.output, Some(json!({ "kept": 2000 })));
    }
    // A disposal that ran one of the spinning traps would never come back.
    finish(pool, before);
}

#[test]
fn blank_isolates_are_scrubbed() {
    let before = totals().0;
    let snapshot = crate::sandbox::snapshot::runtime_snapshot();
    // Direct, from the snapshot and from source, on a thread of their own (each counts
    // against that thread's lifetime budget of v8x runtimes).
    std::thread::spawn(move || {
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio");
        let _context = tokio.enter();
        for i in 0..60 {
            let source = if i % 4 == 3 { None } else { snapshot };
            drop(Isolate::new(64 << 20, source).expect("isolate"));
        }
    })
    .join()
    .expect("thread");
    assert!(totals().0 - before >= 60);
    // Blank isolates a pool made ahead of demand, disposed at shutdown.
    let before = totals().0;
    let pool = pool(2, 8);
    let deadline = Instant::now() + Duration::from_secs(60);
    while pool.stats().isolates_created < 16 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    finish(pool, before);
}

// ---- measurements ----

fn heap_in_use() -> usize {
    // SAFETY: mallinfo2 only reads the allocator's counters.
    let info = unsafe { libc::mallinfo2() };
    info.uordblks + info.hblkhd
}

/// Leaves ~2 MB of ordinary data on the heap: objects, strings, closures, class
/// instances, a Map.
const HEAVY: &str = r#"
class Item { constructor(i) { this.i = i; this.label = `item-${i}`; } get twice() { return this.i * 2; } }
export default async (input, ctx) => {
  const items = [];
  for (let i = 0; i < 5000; i++) items.push(new Item(i));
  globalThis.kept = {
    items,
    byLabel: new Map(items.map((it) => [it.label, it])),
    closures: items.slice(0, 1000).map((it) => () => it.twice),
    text: items.map((it) => it.label).join(","),
  };
  return { n: items.length };
};
"#;

/// Bytes of heap left in use per isolate after `n` runs of `package` through a one-thread
/// pool (threads retired every 96 isolates, no blanks) and its shutdown; and the mean
/// scrub time per scrubbed isolate.
async fn leak_through_pool(package: &Arc<AgentPackage>, input: Value, n: usize) -> (f64, f64) {
    let (scrubs, _, nanos) = totals();
    let before = heap_in_use();
    let pool = pool(1, 0);
    for o in run_many(&pool, package, input, n, 16).await {
        assert!(o.succeeded(), "{o:?}");
    }
    pool.shutdown();
    let created = pool.stats().isolates_created as f64;
    drop(pool);
    let after = heap_in_use();
    let (scrubs_after, _, nanos_after) = totals();
    let scrub_us = if scrubs_after > scrubs {
        (nanos_after - nanos) as f64 / (scrubs_after - scrubs) as f64 / 1000.0
    } else {
        0.0
    };
    ((after as f64 - before as f64) / created / 1024.0, scrub_us)
}

#[tokio::test]
#[ignore = "a measurement: run alone, with --nocapture"]
async fn measure_leak_per_isolate_through_the_pool() {
    let hello = agent("hello");
    let heavy = inline(HEAVY);
    let hello_input = json!({ "name": "Ada" });
    // Warm-up: the snapshot, lazy statics, allocator arenas.
    set_enabled(true);
    leak_through_pool(&hello, hello_input.clone(), 32).await;
    leak_through_pool(&heavy, json!({}), 32).await;
    let n = 288;
    let mut rows = Vec::new();
    for round in 0..2 {
        for on in [false, true] {
            set_enabled(on);
            let (hello_kb, hello_us) = leak_through_pool(&hello, hello_input.clone(), n).await;
            let (heavy_kb, heavy_us) = leak_through_pool(&heavy, json!({}), n).await;
            println!(
                "round {round} scrub={on}: hello {hello_kb:.1} KB/isolate (scrub {hello_us:.0} µs), \
                 heavy {heavy_kb:.1} KB/isolate (scrub {heavy_us:.0} µs), N={n}"
            );
            rows.push((on, hello_kb, heavy_kb));
        }
    }
    set_enabled(true);
    let mean = |on: bool, pick: fn(&(bool, f64, f64)) -> f64| {
        let v: Vec<f64> = rows.iter().filter(|r| r.0 == on).map(pick).collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let (off_hello, on_hello) = (mean(false, |r| r.1), mean(true, |r| r.1));
    let (off_heavy, on_heavy) = (mean(false, |r| r.2), mean(true, |r| r.2));
    println!(
        "mean: hello {off_hello:.1} -> {on_hello:.1} KB/isolate ({:.2}x), heavy {off_heavy:.1} -> \
         {on_heavy:.1} KB/isolate ({:.2}x)",
        off_hello / on_hello,
        off_heavy / on_heavy
    );
}

/// Creates, uses (runs `script`) and drops `n` isolates on a fresh thread, then ends the
/// thread; returns the bytes of heap left per isolate and the mean drop time.
fn leak_direct(n: usize, script: &'static str) -> (f64, Duration) {
    let snapshot = crate::sandbox::snapshot::runtime_snapshot();
    let before = heap_in_use();
    let dropping = std::thread::spawn(move || {
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio");
        let _context = tokio.enter();
        let mut dropping = Duration::ZERO;
        for _ in 0..n {
            let mut isolate = Isolate::new(64 << 20, snapshot).expect("isolate");
            {
                let entry = isolate.entry();
                let _entered = entry.enter();
                isolate
                    .runtime()
                    .execute_script("<scrub-measure>", script)
                    .expect("script");
            }
            let started = Instant::now();
            drop(isolate);
            dropping += started.elapsed();
        }
        dropping / n as u32
    })
    .join()
    .expect("thread");
    let after = heap_in_use();
    ((after as f64 - before as f64) / n as f64 / 1024.0, dropping)
}

#[test]
#[ignore = "a measurement: run alone, with --nocapture"]
fn measure_leak_and_cost_per_isolate_direct() {
    const TRIVIAL: &str = "globalThis.answer = 42;";
    const HEAVY_SCRIPT: &str = r#"
      class Item { constructor(i) { this.i = i; this.label = `item-${i}`; } }
      const items = [];
      for (let i = 0; i < 5000; i++) items.push(new Item(i));
      globalThis.kept = { items, byLabel: new Map(items.map((it) => [it.label, it])),
                          closures: items.slice(0, 1000).map((it) => () => it.i) };
    "#;
    set_enabled(true);
    leak_direct(8, TRIVIAL);
    let n = 90;
    for on in [false, true, false, true] {
        set_enabled(on);
        let (scrubs, _, nanos) = totals();
        let (trivial_kb, trivial_drop) = leak_direct(n, TRIVIAL);
        let (heavy_kb, heavy_drop) = leak_direct(n, HEAVY_SCRIPT);
        let (scrubs_after, _, nanos_after) = totals();
        let scrub_us = if scrubs_after > scrubs {
            (nanos_after - nanos) as f64 / (scrubs_after - scrubs) as f64 / 1000.0
        } else {
            0.0
        };
        println!(
            "scrub={on}: trivial {trivial_kb:.1} KB/isolate, drop {trivial_drop:?}; \
             heavy {heavy_kb:.1} KB/isolate, drop {heavy_drop:?}; mean scrub {scrub_us:.0} µs (N={n})"
        );
    }
    set_enabled(true);
}

/// Where the pool's isolates differ from bare ones: a bare isolate that evaluated one ES
/// module (sync, or with top-level await) leaves ~780 KB even when scrubbed, one that ran
/// a script ~100 KB — the module record is held from outside the JS heap, where the
/// scrub cannot reach (README, "The heap scrub").
#[test]
#[ignore = "a measurement: run alone, with --nocapture"]
fn measure_leak_direct_with_a_module() {
    let snapshot = crate::sandbox::snapshot::runtime_snapshot();
    for mode in ["script", "module", "module_async"] {
        for on in [false, true] {
            set_enabled(on);
            let n = 60;
            let before = heap_in_use();
            std::thread::spawn(move || {
                let tokio = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("tokio");
                for _ in 0..n {
                    let mut isolate = Isolate::new(64 << 20, snapshot).expect("isolate");
                    let code = if mode == "module" {
                        "export const x = 1; globalThis.y = x;"
                    } else {
                        "await new Promise((r) => setTimeout(r, 1)); export const x = 1;"
                    };
                    isolate.loader().assign(inline(code));
                    {
                        let entry = isolate.entry();
                        let _entered = entry.enter();
                        let runtime = isolate.runtime();
                        match mode {
                            "script" => {
                                runtime
                                    .execute_script("<d>", "globalThis.x = 1;")
                                    .expect("script");
                            }
                            _ => {
                                let url = deno_core::ModuleSpecifier::parse("agent:///main.js")
                                    .expect("url");
                                tokio.block_on(async {
                                    let id = runtime.load_main_es_module(&url).await.expect("load");
                                    let eval = runtime.mod_evaluate(id);
                                    runtime
                                        .run_event_loop(Default::default())
                                        .await
                                        .expect("loop");
                                    eval.await.expect("eval");
                                });
                            }
                        }
                    }
                    drop(isolate);
                }
            })
            .join()
            .expect("thread");
            let after = heap_in_use();
            println!(
                "{mode} scrub={on}: {:.1} KB/isolate",
                (after as f64 - before as f64) / n as f64 / 1024.0
            );
        }
    }
    set_enabled(true);
}
