//! Fair scheduling over HTTP: one app's flood of queued runs does not starve another app.
//! App A queues 5,000 runs on a node that runs 4 at a time; then app B queues 20. B's runs
//! must all start while A's backlog has moved by no more than a few hundred runs (round
//! robin: about one A run per B run). Without fair claiming B would wait behind ~4,000.

use std::time::{Duration, Instant};

use atoll::store::{Page, RunFilter, RunRow};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::json;

use super::{args_for, TestApi};

/// Each run holds its slot for 50 ms, so A's backlog drains at ~80 runs/s.
const SLOW: &str =
    "export default async () => { await new Promise((r) => setTimeout(r, 50)); return 'ok'; };";

async fn deploy(api: &TestApi, key: &str) {
    let manifest = json!({ "name": "@t/slow", "version": "1.0.0" });
    let (status, body) = api
        .call(
            Method::PUT,
            "/v1/agents/t/slow/versions/1.0.0",
            key,
            Some(json!({ "manifest": manifest, "files": { "main.js": SLOW } })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// Starts `n` runs, 32 requests at a time; returns their ids.
async fn enqueue(api: &TestApi, key: &str, n: usize) -> Vec<String> {
    futures::stream::iter(0..n)
        .map(|_| async {
            let (status, run) = api
                .call(Method::POST, "/v1/agents/t/slow/runs", key, Some(json!({})))
                .await;
            assert_eq!(status, StatusCode::ACCEPTED, "{run}");
            run["id"].as_str().expect("run id").to_owned()
        })
        .buffer_unordered(32)
        .collect()
        .await
}

async fn all_runs(api: &TestApi, app_id: &str) -> Vec<RunRow> {
    let store = &api.server.as_ref().expect("server").state.store;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flooding_app_does_not_starve_another() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = args_for(dir.path()).await;
    args.max_inflight = 4;
    args.concurrent_runs = 10_000;
    args.runs_per_minute = 100_000;
    let api = TestApi::start_with(args, dir).await;
    let (org_key, app_a, key_a) = api.tenant().await;
    let (app_b, key_b) = api.app_with_key(&org_key, "b").await;
    deploy(&api, &key_a).await;
    deploy(&api, &key_b).await;

    enqueue(&api, &key_a, 5_000).await;
    let b_ids = enqueue(&api, &key_b, 20).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let b_runs = loop {
        let runs = all_runs(&api, &app_b).await;
        if runs.iter().all(|r| r.started_at.is_some()) {
            break runs;
        }
        assert!(
            Instant::now() < deadline,
            "B's runs did not all start in 120 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(b_runs.len(), b_ids.len());
    let b_queued_from = b_runs.iter().map(|r| r.created_at).min().expect("runs");
    let b_all_started = b_runs
        .iter()
        .filter_map(|r| r.started_at)
        .max()
        .expect("runs");
    let a_runs = all_runs(&api, &app_a).await;
    let a_started_meanwhile = a_runs
        .iter()
        .filter_map(|r| r.started_at)
        .filter(|&t| t >= b_queued_from && t <= b_all_started)
        .count();
    let a_backlog = a_runs.iter().filter(|r| r.started_at.is_none()).count();
    let mut waits: Vec<i64> = b_runs
        .iter()
        .filter_map(|r| Some(r.started_at? - r.created_at))
        .collect();
    waits.sort_unstable();
    let b_created_to = b_runs.iter().map(|r| r.created_at).max().expect("runs");
    let b_started_from = b_runs
        .iter()
        .filter_map(|r| r.started_at)
        .min()
        .expect("runs");
    eprintln!(
        "B created over {} ms; B started from +{} ms to +{} ms after B's first was created",
        b_created_to - b_queued_from,
        b_started_from - b_queued_from,
        b_all_started - b_queued_from
    );
    eprintln!(
        "B's 20 runs started while {a_started_meanwhile} of A's runs started; \
         A still queued {a_backlog}; B queue wait p50 {} ms, max {} ms",
        waits[waits.len() / 2],
        waits[waits.len() - 1]
    );
    // The test means something only while A still has a backlog.
    assert!(
        a_backlog > 1_000,
        "A's backlog drained too early: {a_backlog}"
    );
    assert!(
        a_started_meanwhile <= 300,
        "{a_started_meanwhile} of A's runs started before B's 20 did"
    );
    api.stop().await;
}
