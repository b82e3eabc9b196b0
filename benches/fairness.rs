//! Fair scheduling (`cargo bench --bench fairness`): on one node that runs 16 runs at a
//! time, app A queues 5,000 runs that each hold a slot for 100 ms; then app B queues 20.
//! Reports B's queue wait (created → started) and how far A's backlog moved meanwhile, with
//! SQLite and, when `ATOLL_BENCH_DATABASE_URL` is set, PostgreSQL. Asserts nothing.

use std::time::{Duration, Instant};

use atoll::store::{Page, RunFilter, RunRow, Store};
use futures::StreamExt;
use serde_json::json;

mod serving;

const SLOW: &str =
    "export default async () => { await new Promise((r) => setTimeout(r, 100)); return 'ok'; };";
const FLOOD: usize = 5_000;
const FEW: usize = 20;
const INFLIGHT: usize = 16;

async fn enqueue(http: &reqwest::Client, url: &str, key: &str, n: usize) {
    futures::stream::iter(0..n)
        .map(|_| serving::post(http, url, key, json!({})))
        .buffer_unordered(32)
        .for_each(|run| async move { assert_eq!(run["status"], "queued", "{run}") })
        .await;
}

async fn runs_of(store: &dyn Store, app_id: &str) -> Vec<RunRow> {
    let mut runs = Vec::new();
    let mut page = Page {
        limit: 1_000,
        after: None,
    };
    loop {
        let rows = store
            .list_runs(app_id, &RunFilter::default(), &page)
            .await
            .expect("list runs");
        let Some(last) = rows.last() else {
            return runs;
        };
        page.after = Some((last.created_at, last.id.clone()));
        runs.extend(rows);
    }
}

async fn fairness(label: &str, database_url: Option<String>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = serving::args(dir.path(), database_url);
    args.max_inflight = INFLIGHT;
    let server = atoll::server::start(args).await.expect("server");
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let (app_a, key_a) = serving::app_key(&http, &base, "flood").await;
    let (app_b, key_b) = serving::app_key(&http, &base, "few").await;
    serving::upload(&http, &base, &key_a, "@bench/slow", SLOW).await;
    serving::upload(&http, &base, &key_b, "@bench/slow", SLOW).await;
    let url = format!("{base}/v1/agents/bench/slow/runs");

    let t0 = Instant::now();
    enqueue(&http, &url, &key_a, FLOOD).await;
    let flood_secs = t0.elapsed().as_secs_f64();
    enqueue(&http, &url, &key_b, FEW).await;
    let store = server.state.store.clone();
    let deadline = Instant::now() + Duration::from_secs(300);
    let b_runs = loop {
        let runs = runs_of(store.as_ref(), &app_b).await;
        if runs.iter().all(|r| r.started_at.is_some()) || Instant::now() > deadline {
            break runs;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let a_runs = runs_of(store.as_ref(), &app_a).await;
    let b_from = b_runs.iter().map(|r| r.created_at).min().unwrap_or(0);
    let b_to = b_runs
        .iter()
        .filter_map(|r| r.started_at)
        .max()
        .unwrap_or(0);
    let a_backlog_when_b_came = a_runs
        .iter()
        .filter(|r| r.started_at.is_none_or(|t| t > b_from))
        .count();
    let a_meanwhile = a_runs
        .iter()
        .filter_map(|r| r.started_at)
        .filter(|&t| t >= b_from && t <= b_to)
        .count();
    let mut waits: Vec<i64> = b_runs
        .iter()
        .filter_map(|r| Some(r.started_at? - r.created_at))
        .collect();
    waits.sort_unstable();
    let pct = |p: f64| waits[((waits.len() - 1) as f64 * p).round() as usize];
    println!(
        "{label}: A queued {FLOOD} in {flood_secs:.1} s; when B queued {FEW}, A's backlog was \
         {a_backlog_when_b_came}; B's runs all started after {a_meanwhile} more A runs; \
         B queue wait p50 {} ms, p99 {} ms, max {} ms ({INFLIGHT} slots, 100 ms runs)",
        pct(0.5),
        pct(0.99),
        waits[waits.len() - 1],
    );
    server.stop().await.expect("stop");
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        fairness("SQLite", None).await;
        if let Ok(url) = std::env::var("ATOLL_BENCH_DATABASE_URL") {
            fairness("PostgreSQL", Some(url)).await;
        }
    });
}
