//! Sandbox benchmarks (a plain harness, `cargo bench --bench sandbox`):
//! isolate creation alone vs. pool throughput, run start latency, memory per parked run,
//! and RSS over many runs. Prints a table; asserts nothing.
//!
//! `ATOLL_BENCH_SECS` (default 10) sets each throughput phase; `ATOLL_BENCH_PARKED`
//! (default "1000,5000") the parked-run counts; `ATOLL_BENCH_SOAK` (default 100000) the
//! number of runs of the RSS soak (0 skips it).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use atoll::host::HostServices;
use atoll::package::AgentPackage;
use atoll::sandbox::isolate::Isolate;
use atoll::sandbox::{Pool, PoolConfig};
use tokio::sync::Semaphore;

#[path = "common.rs"]
mod common;

use common::{package, percentile, request, services, ParkingTool};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Isolates created and dropped per second on `threads` threads, fresh threads every
/// `per_thread` isolates (as the pool does).
fn creation_rate(
    threads: usize,
    secs: f64,
    per_thread: usize,
    snapshot: Option<&'static [u8]>,
) -> f64 {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let count = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let count = count.clone();
            std::thread::spawn(move || {
                while Instant::now() < deadline {
                    let count = count.clone();
                    std::thread::spawn(move || {
                        for _ in 0..per_thread {
                            if Instant::now() >= deadline {
                                return;
                            }
                            let isolate = Isolate::new(64 << 20, snapshot).expect("isolate");
                            drop(isolate);
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                    })
                    .join()
                    .expect("creator");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
    count.load(Ordering::Relaxed) as f64 / secs
}

async fn pool_throughput(
    pool: &Pool,
    pkg: &Arc<AgentPackage>,
    svc: &HostServices,
    secs: f64,
    in_flight: usize,
) -> f64 {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for lane in 0..in_flight {
        let (pool, pkg, svc, done) = (pool.clone(), pkg.clone(), svc.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = lane as u64 * 1_000_000;
            while Instant::now() < deadline {
                n += 1;
                match pool.submit(request(&pkg, &svc, n)) {
                    Ok(h) => {
                        let o = h.outcome().await;
                        assert!(o.succeeded(), "{o:?}");
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("lane");
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let secs: f64 = std::env::var("ATOLL_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10.0);
    let parked_counts: Vec<usize> = std::env::var("ATOLL_BENCH_PARKED")
        .unwrap_or_else(|_| "1000,5000".into())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    let soak: u64 = std::env::var("ATOLL_BENCH_SOAK")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("rt");
    let config = PoolConfig::default();
    println!(
        "atoll sandbox benchmarks — {cores} cores, isolates/thread {}",
        config.isolates_per_thread
    );

    // 1. What isolate creation alone allows on every core.
    let t0 = Instant::now();
    let snapshot = atoll::sandbox::snapshot::runtime_snapshot();
    println!(
        "startup snapshot: {} KiB, made in {:.0} ms",
        snapshot.map_or(0, |s| s.len() / 1024),
        t0.elapsed().as_secs_f64() * 1000.0
    );
    let create = creation_rate(cores, secs, config.isolates_per_thread, snapshot);
    println!(
        "isolate create+drop alone, {cores} threads: {create:.0}/s ({:.2} ms each per core)",
        1000.0 * cores as f64 / create
    );

    let trivial = package("export default async (input) => input.n;", &[]);
    let svc = services(Arc::new(ParkingTool {
        gate: Arc::new(Semaphore::new(0)),
        parked: AtomicU64::new(0),
    }));

    // 2. Sustained trivial runs on the pool.
    let pool = Pool::new(config.clone()).expect("pool");
    let runs = rt.block_on(pool_throughput(&pool, &trivial, &svc, secs, 64));
    println!(
        "pool trivial runs: {runs:.0}/s = {:.1}% of creation alone",
        100.0 * runs / create
    );

    // 3. Run start latency with a blank isolate ready: one run at a time, pausing so the
    //    worker refills its blanks between runs.
    let mut latencies = Vec::new();
    rt.block_on(async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        for n in 0..300 {
            let t0 = Instant::now();
            let h = pool.submit(request(&trivial, &svc, n)).expect("submit");
            let o = h.outcome().await;
            latencies.push(t0.elapsed());
            assert!(o.succeeded());
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    });
    latencies.sort();
    println!(
        "run latency, blank isolate ready (submit → result): p50 {:.3} ms, p99 {:.3} ms",
        percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0
    );
    pool.shutdown();

    // 4. Memory per parked run.
    for &n in &parked_counts {
        let gate = Arc::new(Semaphore::new(0));
        let tool = Arc::new(ParkingTool {
            gate: gate.clone(),
            parked: AtomicU64::new(0),
        });
        let svc = services(tool.clone());
        let parker = package(
            "export default async (input, ctx) => ctx.tools.call('park', input);",
            &["park"],
        );
        let pool = Pool::new(PoolConfig {
            prewarm: 0,
            max_threads: 128,
            ..config.clone()
        })
        .expect("pool");
        std::thread::sleep(Duration::from_millis(300));
        let before = rss_bytes();
        let t0 = Instant::now();
        let handles: Vec<_> = (0..n as u64)
            .map(|i| pool.submit(request(&parker, &svc, i)).expect("submit"))
            .collect();
        while tool.parked.load(Ordering::SeqCst) < n as u64 {
            std::thread::sleep(Duration::from_millis(20));
            if t0.elapsed() > Duration::from_secs(600) {
                break;
            }
        }
        let parked_in = t0.elapsed();
        let during = rss_bytes();
        gate.add_permits(n);
        let ok = rt.block_on(async {
            let mut ok = 0;
            for h in handles {
                ok += h.outcome().await.succeeded() as usize;
            }
            ok
        });
        println!(
            "{n} runs parked at once: RSS +{:.0} MiB = {:.2} MiB per parked run ({} threads, parked in {:.1} s, {ok}/{n} succeeded)",
            (during.saturating_sub(before)) as f64 / 1048576.0,
            (during.saturating_sub(before)) as f64 / 1048576.0 / n as f64,
            pool.stats().threads_alive,
            parked_in.as_secs_f64()
        );
        pool.shutdown();
    }

    // 5. RSS over many runs.
    if soak > 0 {
        let pool = Pool::new(config.clone()).expect("pool");
        rt.block_on(async {
            let mut samples = Vec::new();
            let step = soak / 10;
            let mut n = 0u64;
            while n < soak {
                let batch: Vec<_> = (0..64)
                    .map(|i| pool.submit(request(&trivial, &svc, n + i)).expect("submit"))
                    .collect();
                for h in batch {
                    assert!(h.outcome().await.succeeded());
                }
                n += 64;
                if n % step < 64 {
                    samples.push((n, rss_bytes()));
                }
            }
            let first = samples.first().map_or(0, |s| s.1) as f64;
            let line: Vec<String> = samples
                .iter()
                .map(|(n, r)| format!("{}k:{:.0}", n / 1000, *r as f64 / 1048576.0))
                .collect();
            let last = samples.last().map_or(0, |s| s.1) as f64;
            println!(
                "RSS (MiB) over {soak} runs: {} — last vs first sample {:+.1}%",
                line.join(" "),
                100.0 * (last - first) / first.max(1.0)
            );
        });
        pool.shutdown();
    }
}
