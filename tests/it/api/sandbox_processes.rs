//! Sandbox processes attacked from outside, as an operator would check them: the children
//! of a real server are locked down (empty environment, seccomp, no new privileges), hold
//! no secret in their memory after brokering a credentialed fetch, lose only their own
//! runs when killed, and are recycled without losing a run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use reqwest::{Method, StatusCode};
use serde_json::json;

use super::broker::host_of;
use super::{args_for, upload_inline, wait_final, TestApi, ADMIN};

const SECRET: &str = "sk_sandbox_secret_7f3a91c2e8";
const MASTER_HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

pub(super) fn children(api: &TestApi) -> Vec<u32> {
    let server = api.server.as_ref().expect("server");
    let stats = server
        .state
        .runs
        .sandbox()
        .process_stats()
        .expect("the server runs isolates in sandbox processes");
    assert!(!stats.pids.is_empty(), "no sandbox process is alive");
    stats.pids
}

/// Every readable mapping of `pid`, searched for each needle; answers the needles found.
fn memory_holds(pid: &str, needles: &[&str]) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("maps");
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem")).expect("mem");
    let mut found = Vec::new();
    for line in maps.lines() {
        let mut parts = line.split_whitespace();
        let (Some(range), Some(perms)) = (parts.next(), parts.next()) else {
            continue;
        };
        if !perms.starts_with('r') || line.ends_with("[vvar]") || line.ends_with("[vsyscall]") {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16))
        else {
            continue;
        };
        let mut region = vec![0u8; (end - start) as usize];
        if mem.seek(SeekFrom::Start(start)).is_err() || mem.read_exact(&mut region).is_err() {
            continue;
        }
        for needle in needles {
            let bytes = needle.as_bytes();
            if region.windows(bytes.len()).any(|w| w == bytes)
                && !found.contains(&needle.to_string())
            {
                found.push(needle.to_string());
            }
        }
    }
    found
}

async fn upstream(hits: Arc<AtomicUsize>) -> String {
    let app = Router::new().route(
        "/data",
        get(move || {
            hits.fetch_add(1, Ordering::SeqCst);
            async { "plain answer" }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn sandbox_processes_are_locked_down_and_never_hold_a_secret() {
    let api = TestApi::start().await;
    let (_org, _app, key) = api.tenant().await;
    let hits = Arc::new(AtomicUsize::new(0));
    let base = upstream(hits.clone()).await;
    let (status, body) = api
        .call(
            Method::PUT,
            "/v1/connections/crm",
            &key,
            Some(json!({ "type": "bearer", "token": SECRET, "hosts": [host_of(&base)], "allow_http": true })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let main = "export default async (input) => { const r = await fetch(input.url, { connection: 'crm' }); return { status: r.status, body: await r.text() }; };";
    let upload = json!({
        "manifest": { "name": "@t/crm", "version": "1.0.0",
            "permissions": { "fetch": ["127.0.0.1"], "connections": ["crm"] } },
        "files": { "main.js": main }
    });
    let (status, body) = api
        .call(
            Method::PUT,
            "/v1/agents/t/crm/versions/1.0.0",
            &key,
            Some(upload),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for _ in 0..3 {
        let (status, run) = api
            .call(
                Method::POST,
                "/v1/agents/t/crm/runs?wait=20",
                &key,
                Some(json!({ "input": { "url": format!("{base}/data") } })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{run}");
        assert_eq!(
            run["output"],
            json!({ "status": 200, "body": "plain answer" }),
            "{run}"
        );
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        3,
        "the fetches reached the upstream"
    );

    // The scan can find a secret where there is one: the server holds all of these.
    let own = memory_holds("self", &[SECRET, MASTER_HEX, &key]);
    assert!(
        own.contains(&SECRET.to_string()),
        "the scanner finds the secret in the server: {own:?}"
    );

    let pids = children(&api);
    assert!(
        pids.len() >= 2,
        "an active child and a warm spare: {pids:?}"
    );
    for pid in pids {
        let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("environ");
        assert!(
            environ.is_empty(),
            "child {pid} has an environment: {:?}",
            String::from_utf8_lossy(&environ)
        );
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        assert!(
            status.contains("Seccomp:\t2"),
            "child {pid} is not under a seccomp filter:\n{status}"
        );
        assert!(
            status.contains("NoNewPrivs:\t1"),
            "child {pid} may gain privileges:\n{status}"
        );
        let fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .expect("fd dir")
            .flatten()
            .filter_map(|e| std::fs::read_link(e.path()).ok())
            .map(|target| target.display().to_string())
            .collect();
        assert!(
            !fds.iter()
                .any(|f| f.starts_with('/') && !f.starts_with("/dev/null")),
            "child {pid} holds files open: {fds:?}"
        );
        let leaked = memory_holds(&pid.to_string(), &[SECRET, MASTER_HEX, &key, ADMIN]);
        assert!(leaked.is_empty(), "child {pid} holds {leaked:?}");
    }
    let (status, ready) = api.call(Method::GET, "/readyz", "", None).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(ready["sandbox"]["mode"], "processes", "{ready}");
    let layers = ready["sandbox"]["lockdown"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for layer in ["no_new_privs", "seccomp"] {
        assert!(
            layers.contains(&json!(layer)),
            "/readyz names the {layer} layer: {ready}"
        );
    }
    api.stop().await;
}

async fn start_run(api: &TestApi, key: &str, agent: &str) -> String {
    let (status, run) = api
        .call(
            Method::POST,
            &format!("/v1/agents/t/{agent}/runs"),
            key,
            Some(json!({ "input": {} })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{run}");
    run["id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn a_killed_sandbox_process_fails_only_its_own_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = args_for(dir.path()).await;
    args.concurrent_runs = 1_000;
    let api = TestApi::start_with(args, dir).await;
    let (_org, _app, key) = api.tenant().await;
    let sleeper = "export default async () => { await new Promise((r) => setTimeout(r, 1500)); return 'slept'; };";
    upload_inline(&api, &key, "sleeper", json!({}), sleeper).await;
    upload_inline(
        &api,
        &key,
        "retrier",
        json!({ "retry_on_node_lost": true }),
        sleeper,
    )
    .await;

    let mut victims = Vec::new();
    for _ in 0..195 {
        victims.push(start_run(&api, &key, "sleeper").await);
    }
    let mut retried = Vec::new();
    for _ in 0..5 {
        retried.push(start_run(&api, &key, "retrier").await);
    }
    let last = retried.last().expect("a run").clone();
    super::wait_running(&api, &key, &last).await;
    let active = children(&api)[0];
    // SAFETY: kill(2) of a child process of this test's server.
    assert_eq!(unsafe { libc::kill(active as i32, libc::SIGKILL) }, 0);

    // Once the server has seen it die (its channel closes at once), the spare has taken
    // over: runs started from then on succeed.
    for _ in 0..200 {
        if children(&api).first() != Some(&active) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_ne!(
        children(&api).first(),
        Some(&active),
        "the dead process was replaced"
    );
    let mut after = Vec::new();
    for _ in 0..20 {
        after.push(start_run(&api, &key, "sleeper").await);
    }
    let (mut crashed, mut succeeded) = (0, 0);
    for id in &victims {
        let run = wait_final(&api, &key, id).await;
        match (run["status"].as_str(), run["error"]["code"].as_str()) {
            (Some("succeeded"), _) => succeeded += 1,
            (Some("failed"), Some("sandbox_crashed")) => crashed += 1,
            other => panic!("a run ended {other:?}: {run}"),
        }
    }
    assert!(
        crashed >= 1,
        "the killed process hosted runs ({succeeded} succeeded)"
    );
    for id in retried.iter().chain(&after) {
        let run = wait_final(&api, &key, id).await;
        assert_eq!(run["status"], "succeeded", "{run}");
    }
    for id in &retried {
        let run = wait_final(&api, &key, id).await;
        assert_eq!(
            run["attempt"], 2,
            "a retry_on_node_lost run is tried again once: {run}"
        );
    }
    let (status, _) = api.call(Method::GET, "/healthz", "", None).await;
    assert_eq!(status, StatusCode::OK);
    let (_, running) = api
        .call(Method::GET, "/v1/runs?status=running", &key, None)
        .await;
    assert_eq!(
        running["data"],
        json!([]),
        "no run is left running: {running}"
    );
    let stats = api
        .server
        .as_ref()
        .expect("server")
        .state
        .runs
        .sandbox()
        .process_stats()
        .expect("processes");
    assert!(stats.children_crashed >= 1, "{stats:?}");
    for _ in 0..100 {
        if children(&api).len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        children(&api).len() >= 2,
        "a new spare replaced the dead process"
    );
    api.stop().await;
}

#[tokio::test]
async fn runs_go_on_across_recycled_sandbox_processes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = args_for(dir.path()).await;
    args.sandbox_runs = 8;
    let api = TestApi::start_with(args, dir).await;
    let (_org, _app, key) = api.tenant().await;
    api.deploy(&key, "hello").await;
    let first = children(&api);
    for i in 0..40 {
        let name = format!("n{i}");
        let (status, run) = api
            .call(
                Method::POST,
                "/v1/agents/atoll/hello/runs?wait=20",
                &key,
                Some(json!({ "input": { "name": name } })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{run}");
        assert_eq!(
            run["output"]["greeting"],
            format!("Hello, {name}!"),
            "{run}"
        );
    }
    let stats = api
        .server
        .as_ref()
        .expect("server")
        .state
        .runs
        .sandbox()
        .process_stats()
        .expect("processes");
    assert!(stats.children_recycled >= 3, "{stats:?}");
    assert_eq!(stats.children_crashed, 0, "{stats:?}");
    assert!(
        !children(&api).iter().any(|pid| first.contains(pid)),
        "the first processes were all retired"
    );
    api.stop().await;
}
