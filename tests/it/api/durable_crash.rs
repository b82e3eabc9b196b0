//! Two real `atoll serve` processes on one database: the node running a durable run is
//! killed with SIGKILL between two fetches, and the other node resumes the run by replay
//! without repeating the fetch the journal already holds.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;

use super::real_server::{call, free_port, kill, serve};
use serde_json::{json, Value};

const ADMIN: &str = "atl_durable_crash_admin_key_0123456789";

/// Both nodes on one embedded database (one file, two processes), short leases.
fn env(node: &str) -> [(&str, &str); 3] {
    [
        ("ATOLL_ADMIN_KEY", ADMIN),
        ("ATOLL_NODE_ID", node),
        ("ATOLL_LEASE_MS", "1500"),
    ]
}

/// `/count` answers how many times it was asked; `/slow` holds its first request until
/// the test is done with it, and answers later ones at once.
async fn services() -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let counted = Arc::new(AtomicUsize::new(0));
    let slowed = Arc::new(AtomicUsize::new(0));
    let (c, s) = (counted.clone(), slowed.clone());
    let app = axum::Router::new()
        .route(
            "/count",
            axum::routing::get(move || {
                let n = c.fetch_add(1, Ordering::SeqCst) + 1;
                async move { n.to_string() }
            }),
        )
        .route(
            "/slow",
            axum::routing::get(move || {
                let n = s.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    if n == 1 {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                    "slow".to_owned()
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), counted, slowed)
}

const AGENT: &str = r#"
export default async (input, ctx) => {
  const first = await (await fetch(input.base + "/count")).text();
  const slow = await (await fetch(input.base + "/slow")).text();
  const second = await (await fetch(input.base + "/count")).text();
  return { first, slow, second, attempt: ctx.run.attempt };
};
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_run_resumes_on_another_node_after_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (base, counted, slowed) = services().await;
    let (port_a, port_b) = (free_port(), free_port());
    let mut a = serve(dir.path(), port_a, &env("node_a")).await;
    let mut b = serve(dir.path(), port_b, &env("node_b")).await;
    let http = reqwest::Client::new();
    let url_a = format!("http://127.0.0.1:{port_a}");
    let url_b = format!("http://127.0.0.1:{port_b}");
    let org = call(
        &http,
        Method::POST,
        format!("{url_a}/v1/orgs"),
        ADMIN,
        json!({ "name": "d" }),
    )
    .await;
    let org_key = org["key"]["secret"].as_str().expect("org key").to_owned();
    let app = call(
        &http,
        Method::POST,
        format!("{url_a}/v1/apps"),
        &org_key,
        json!({ "name": "d" }),
    )
    .await;
    let key = call(
        &http,
        Method::POST,
        format!("{url_a}/v1/api-keys"),
        &org_key,
        json!({ "name": "k", "app_id": app["id"] }),
    )
    .await;
    let key = key["secret"].as_str().expect("key").to_owned();
    let manifest = json!({
        "name": "@t/durable", "version": "1.0.0", "durable": true,
        "permissions": { "fetch": ["127.0.0.1"] }
    });
    call(
        &http,
        Method::PUT,
        format!("{url_a}/v1/agents/t/durable/versions/1.0.0"),
        &key,
        json!({ "manifest": manifest, "files": { "main.js": AGENT } }),
    )
    .await;
    let run = call(
        &http,
        Method::POST,
        format!("{url_a}/v1/agents/t/durable/runs"),
        &key,
        json!({ "input": { "base": base } }),
    )
    .await;
    let run_id = run["id"].as_str().expect("run").to_owned();
    // The first fetch is done and journaled; the second hangs on node a.
    let deadline = Instant::now() + Duration::from_secs(20);
    while slowed.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the run never reached its slow fetch"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(counted.load(Ordering::SeqCst), 1);
    kill(&mut a, libc::SIGKILL);

    let deadline = Instant::now() + Duration::from_secs(30);
    let done = loop {
        let row = call(
            &http,
            Method::GET,
            format!("{url_b}/v1/runs/{run_id}"),
            &key,
            Value::Null,
        )
        .await;
        if row["status"] != "running" && row["status"] != "queued" {
            break row;
        }
        assert!(
            Instant::now() < deadline,
            "the run did not resume on node b: {row}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        done["output"],
        json!({ "first": "1", "slow": "slow", "second": "2", "attempt": 2 }),
        "the first fetch came from the journal"
    );
    assert_eq!(
        counted.load(Ordering::SeqCst),
        2,
        "the journaled fetch was not repeated"
    );
    // The fetch in flight when node a died was made again: at least once.
    assert_eq!(slowed.load(Ordering::SeqCst), 2);
    kill(&mut b, libc::SIGTERM);
}
