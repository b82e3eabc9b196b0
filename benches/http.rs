//! End-to-end benchmark (`cargo bench --bench http`): trivial runs through the HTTP API
//! (`POST ...?wait=10`) with SQLite, and with PostgreSQL when `ATOLL_BENCH_DATABASE_URL`
//! is set, compared in the same process with the sandbox pool's own throughput and
//! latency. Prints a table; asserts nothing.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use atoll::broker::{AddressPolicy, HttpFetcher};
use atoll::host::memory::{DiscardEvents, InMemoryMemory, NoLlm, NoTools};
use atoll::host::{HostServices, Tenant};
use atoll::package::{AgentPackage, PackageLimits};
use atoll::sandbox::{Limits, Pool, PoolConfig, RunGrant, RunRequest};
use serde_json::json;

mod serving;

const SOURCE: &str = "export default async (input) => input.n;";

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    sorted
        .get(((sorted.len().max(1) - 1) as f64 * p).round() as usize)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// (runs/s with `lanes` concurrent clients, p50 ms, p99 ms sequential).
async fn http_bench(
    label: &str,
    database_url: Option<String>,
    secs: f64,
    lanes: usize,
) -> (f64, f64, f64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = atoll::server::start(serving::args(dir.path(), database_url))
        .await
        .expect("server");
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let (_, key) = serving::app_key(&http, &base, "bench").await;
    serving::upload(&http, &base, &key, "@bench/trivial", SOURCE).await;
    let url = format!("{base}/v1/agents/bench/trivial/runs?wait=10");

    // Latency: one client, one run at a time, pausing so blank isolates are ready.
    let mut latencies = Vec::new();
    for n in 0..200 {
        let t0 = Instant::now();
        let run = serving::post(&http, &url, &key, json!({ "input": { "n": n } })).await;
        latencies.push(t0.elapsed());
        assert_eq!(run["status"], "succeeded", "{run}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    latencies.sort();

    // Throughput: `lanes` clients in a closed loop.
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for lane in 0..lanes {
        let (http, url, key, done) = (http.clone(), url.clone(), key.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = lane as u64 * 1_000_000;
            while Instant::now() < deadline {
                n += 1;
                let run = serving::post(&http, &url, &key, json!({ "input": { "n": n } })).await;
                if run["status"] == "succeeded" {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("lane");
    }
    let rate = done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    server.stop().await.expect("stop");
    let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    println!(
        "{label}: {rate:.0} runs/s ({lanes} clients); latency p50 {p50:.2} ms, p99 {p99:.2} ms"
    );
    (rate, p50, p99)
}

/// The pool alone, same agent: (runs/s, p50 ms, p99 ms).
async fn pool_bench(secs: f64, lanes: usize) -> (f64, f64, f64) {
    let pool = Pool::new(PoolConfig::default()).expect("pool");
    let manifest = json!({ "name": "@bench/trivial", "version": "1.0.0" });
    let files = BTreeMap::from([("main.js".to_owned(), SOURCE.to_owned())]);
    let pkg = Arc::new(
        AgentPackage::from_files(manifest, files, &PackageLimits::default()).expect("package"),
    );
    let services = HostServices {
        memory: Arc::new(InMemoryMemory::default()),
        tools: Arc::new(NoTools),
        llm: Arc::new(NoLlm),
        fetcher: Arc::new(HttpFetcher::new(AddressPolicy::default()).expect("fetcher")),
        events: Arc::new(DiscardEvents),
        waits: Arc::new(atoll::host::memory::LocalWaits::default()),
        clock: None,
    };
    let request = move |n: u64| RunRequest {
        run_id: format!("run_{n}"),
        package: pkg.clone(),
        tenant: Tenant {
            org_id: "o".into(),
            app_id: "a".into(),
            end_user: None,
        },
        input: json!({ "n": n }),
        state: None,
        grant: RunGrant::from_manifest(&pkg.manifest, &Limits::default()),
        services: services.clone(),
        trigger: "bench".into(),
        attempt: 1,
        events_before: 0,
        journal: None,
    };
    let request = Arc::new(request);
    let mut latencies = Vec::new();
    for n in 0..200 {
        let t0 = Instant::now();
        let o = pool.submit(request(n)).expect("submit").outcome().await;
        latencies.push(t0.elapsed());
        assert!(o.succeeded());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    latencies.sort();
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for lane in 0..lanes {
        let (pool, request, done) = (pool.clone(), request.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = lane as u64 * 1_000_000;
            while Instant::now() < deadline {
                n += 1;
                if let Ok(h) = pool.submit(request(n)) {
                    if h.outcome().await.succeeded() {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("lane");
    }
    let rate = done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    pool.shutdown();
    let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    println!("pool alone: {rate:.0} runs/s ({lanes} submitters); latency p50 {p50:.2} ms, p99 {p99:.2} ms");
    (rate, p50, p99)
}

fn main() {
    let secs: f64 = std::env::var("ATOLL_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10.0);
    let lanes = 32;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        // ATOLL_BENCH_SKIP_POOL=1 leaves the pool phase out (e.g. to profile HTTP alone).
        let pool = if std::env::var_os("ATOLL_BENCH_SKIP_POOL").is_some() {
            (f64::NAN, f64::NAN, f64::NAN)
        } else {
            pool_bench(secs, lanes).await
        };
        let mut rows = vec![("sqlite", http_bench("HTTP + SQLite", None, secs, lanes).await)];
        if let Ok(url) = std::env::var("ATOLL_BENCH_DATABASE_URL") {
            rows.push(("postgres", http_bench("HTTP + PostgreSQL", Some(url), secs, lanes).await));
        }
        for (label, (rate, p50, p99)) in rows {
            println!(
                "{label}: throughput ratio to the pool {:.2}; added latency p50 {:+.2} ms, p99 {:+.2} ms",
                rate / pool.0,
                p50 - pool.1,
                p99 - pool.2
            );
        }
    });
}
