//! A real `atoll serve` killed with SIGKILL while a delivery waits for its retry: the
//! restarted server sends it, with the same `webhook-id`, and it verifies.

use std::time::Duration;

use serde_json::{json, Value};

use super::hook_kit::{node_verify, receiver};
use super::real_server::{call, free_port, kill, serve};
use super::{agent_dir, package_json};

const ADMIN: &str = "atl_webhook_crash_admin_key_0123456789";
const MASTER: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const ENV: [(&str, &str); 4] = [
    ("ATOLL_ADMIN_KEY", ADMIN),
    ("ATOLL_MASTER_KEY", MASTER),
    ("ATOLL_WEBHOOK_RETRY_DELAYS", "2s,2s"),
    ("ATOLL_WEBHOOK_POLL_MS", "50"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_delivery_survives_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hook = receiver().await;
    hook.answer(&[503]);
    let port = free_port();
    let mut server = serve(dir.path(), port, &ENV).await;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    use reqwest::Method;
    let org = call(
        &http,
        Method::POST,
        format!("{base}/v1/orgs"),
        ADMIN,
        json!({ "name": "k" }),
    )
    .await;
    let org_key = org["key"]["secret"].as_str().expect("org key").to_owned();
    let app = call(
        &http,
        Method::POST,
        format!("{base}/v1/apps"),
        &org_key,
        json!({ "name": "k" }),
    )
    .await;
    let key = call(
        &http,
        Method::POST,
        format!("{base}/v1/api-keys"),
        &org_key,
        json!({ "name": "k", "app_id": app["id"] }),
    )
    .await;
    let key = key["secret"].as_str().expect("key").to_owned();
    let (manifest, files) = package_json(&agent_dir("hello"));
    call(
        &http,
        Method::PUT,
        format!("{base}/v1/agents/atoll/hello/versions/1.0.0"),
        &key,
        json!({ "manifest": manifest, "files": files }),
    )
    .await;
    let endpoint = call(
        &http,
        Method::POST,
        format!("{base}/v1/webhooks"),
        &key,
        json!({ "url": hook.url, "events": ["run.succeeded"] }),
    )
    .await;
    let secret = endpoint["secret"].as_str().expect("secret").to_owned();
    let run = call(
        &http,
        Method::POST,
        format!("{base}/v1/agents/atoll/hello/runs?wait=20"),
        &key,
        json!({ "input": { "name": "Ada" } }),
    )
    .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let first = hook.wait_for(1, Duration::from_secs(20)).await;
    // The retry is due in 2 s: the node dies before it.
    kill(&mut server, libc::SIGKILL);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(hook.seen().len(), 1, "nothing sends while no node is up");

    let port = free_port();
    let mut restarted = serve(dir.path(), port, &ENV).await;
    let seen = hook.wait_for(2, Duration::from_secs(20)).await;
    assert_eq!(seen[1].header("webhook-id"), first[0].header("webhook-id"));
    let payload = node_verify(&secret, &seen[1]).expect("verifies after the restart");
    assert_eq!(payload["data"]["id"], run["id"]);
    let mut codes = Vec::new();
    for _ in 0..100 {
        let log = call(
            &http,
            Method::GET,
            format!(
                "http://127.0.0.1:{port}/v1/webhooks/{}/deliveries",
                endpoint["id"].as_str().expect("id")
            ),
            &key,
            Value::Null,
        )
        .await;
        codes = log["data"][0]["attempts"]
            .as_array()
            .expect("attempts")
            .iter()
            .map(|a| a["status_code"].clone())
            .collect();
        if codes.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(codes, vec![json!(503), json!(200)]);
    kill(&mut restarted, libc::SIGTERM);
}
