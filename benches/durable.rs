//! Durable runs (`cargo bench --bench durable`), on one server with SQLite and sandbox
//! processes: what 10,000 parked runs cost the server's memory, and how long a resume
//! takes (signal → the run finished, after replaying journals of 10 and 1,000 entries).
//! Reports numbers; asserts nothing.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};

mod serving;

/// Parked runs measured (`ATOLL_BENCH_PARKED` to change it).
fn parked_count() -> usize {
    std::env::var("ATOLL_BENCH_PARKED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}
const RESUMES: usize = 40;

/// Resident memory of this process (the server runs in it), bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn agent(calls: usize) -> String {
    format!(
        "export default async (input, ctx) => {{
           for (let i = 0; i < {calls}; i++) await ctx.memory.get('k' + i, {{ scope: 'app' }});
           const go = await ctx.waitFor('go');
           return go.n;
         }};"
    )
}

async fn upload(http: &reqwest::Client, base: &str, key: &str, name: &str, source: &str) {
    let body = json!({
        "manifest": { "name": format!("@bench/{name}"), "version": "1.0.0",
                      "permissions": { "memory": ["app"] } },
        "files": { "main.js": source }
    });
    let r = http
        .put(format!("{base}/v1/agents/bench/{name}/versions/1.0.0"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .expect("upload");
    assert!(r.status().is_success(), "upload: {}", r.status());
}

async fn get(http: &reqwest::Client, url: &str, key: &str) -> Value {
    let r = http.get(url).bearer_auth(key).send().await.expect("get");
    r.json().await.expect("json")
}

/// Starts `n` runs of `agent` and waits until every one is parked.
async fn park(http: &reqwest::Client, base: &str, key: &str, agent: &str, n: usize) -> Vec<String> {
    let url = format!("{base}/v1/agents/bench/{agent}/runs");
    let ids: Vec<String> = futures::stream::iter(0..n)
        .map(|_| serving::post(http, &url, key, json!({ "input": {} })))
        .buffer_unordered(32)
        .map(|run| run["id"].as_str().expect("run id").to_owned())
        .collect()
        .await;
    let deadline = Instant::now() + Duration::from_secs(1_800);
    for id in &ids {
        loop {
            let run = get(http, &format!("{base}/v1/runs/{id}"), key).await;
            if run["status"] == "waiting" {
                break;
            }
            assert!(
                run["status"] == "queued" || run["status"] == "running",
                "ended instead of parking: {run}"
            );
            assert!(Instant::now() < deadline, "not parked: {run}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    ids
}

/// Signal → finished, per run, one at a time.
async fn resume_latency(http: &reqwest::Client, base: &str, key: &str, ids: &[String]) -> Vec<f64> {
    let mut took = Vec::new();
    for id in ids {
        let t = Instant::now();
        serving::post(
            http,
            &format!("{base}/v1/runs/{id}/signals/go"),
            key,
            json!({ "payload": { "n": 1 } }),
        )
        .await;
        loop {
            let run = get(http, &format!("{base}/v1/runs/{id}"), key).await;
            if run["status"] == "succeeded" {
                break;
            }
            assert_ne!(run["status"], "failed", "{run}");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        took.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    took.sort_by(|a, b| a.total_cmp(b));
    took
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = serving::args(dir.path(), None);
    args.waiting_runs_per_app = 1_000_000;
    let server = atoll::server::start(args).await.expect("server");
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let (_app, key) = serving::app_key(&http, &base, "durable").await;
    serving::upload(&http, &base, &key, "@bench/wait0", &agent(0)).await;
    upload(&http, &base, &key, "wait10", &agent(10)).await;
    upload(&http, &base, &key, "wait1000", &agent(1_000)).await;

    // Warm up (children started, packages cached), then measure the parked runs.
    park(&http, &base, &key, "wait0", 200).await;
    let before = rss();
    let t = Instant::now();
    let parked = parked_count();
    park(&http, &base, &key, "wait0", parked).await;
    let secs = t.elapsed().as_secs_f64();
    let after = rss();
    let active = server.state.runs.active_runs();
    println!(
        "parked runs: {parked} in {secs:.1} s; server RSS {:.1} → {:.1} MiB (+{:.1} MiB, {:.0} bytes per parked run); runs holding an isolate: {active}",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        (after as f64 - before as f64) / 1048576.0,
        (after as f64 - before as f64) / parked as f64,
    );

    for (agent, entries) in [("wait10", 10), ("wait1000", 1_000)] {
        let ids = park(&http, &base, &key, agent, RESUMES).await;
        let took = resume_latency(&http, &base, &key, &ids).await;
        println!(
            "resume with a journal of {entries} entries: p50 {:.1} ms, p99 {:.1} ms (signal → finished, {} runs)",
            pct(&took, 0.5),
            pct(&took, 0.99),
            took.len()
        );
    }
    server.stop().await.expect("stop");
}
