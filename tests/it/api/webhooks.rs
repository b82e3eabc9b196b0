//! Webhooks out against real receivers on loopback: signatures checked by the
//! `standardwebhooks` npm package, retries with one `webhook-id`, the delivery log,
//! rotation, disabling, slow endpoints, refusals, tenancy.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::hook_kit::{node_verify, now_secs, npm_dir, receiver};
use super::{wait_final, TestApi};

async fn endpoint(api: &TestApi, key: &str, body: Value) -> (String, String) {
    let (status, created) = api
        .call(Method::POST, "/v1/webhooks", key, Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"]
        .as_str()
        .expect("secret shown once")
        .to_owned();
    assert!(secret.starts_with("whsec_"));
    (created["id"].as_str().expect("id").to_owned(), secret)
}

async fn start_run(api: &TestApi, key: &str, agent: &str) -> String {
    let (status, run) = api
        .call(
            Method::POST,
            &format!("/v1/agents/{agent}/runs"),
            key,
            Some(json!({ "input": { "name": "Ada" } })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{run}");
    run["id"].as_str().expect("run id").to_owned()
}

async fn deliveries(api: &TestApi, key: &str, endpoint: &str) -> Vec<Value> {
    let (status, log) = api
        .call(
            Method::GET,
            &format!("/v1/webhooks/{endpoint}/deliveries"),
            key,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{log}");
    log["data"].as_array().expect("data").clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_verify_with_standardwebhooks_and_retry_with_one_id() {
    let api = TestApi::start().await;
    let (_org, _app, key) = api.tenant().await;
    let (agent, _) = api.deploy(&key, "hello").await;
    let hook = receiver().await;
    hook.answer(&[500, 503]);
    let (id, secret) = endpoint(
        &api,
        &key,
        json!({ "url": hook.url, "events": ["run.succeeded"], "description": "ci" }),
    )
    .await;
    // The secret is shown once: never in a read.
    let (_, shown) = api
        .call(Method::GET, &format!("/v1/webhooks/{id}"), &key, None)
        .await;
    assert!(shown.get("secret").is_none(), "{shown}");
    assert!(!shown.to_string().contains(&secret));

    let run_id = start_run(&api, &key, &agent).await;
    let run = wait_final(&api, &key, &run_id).await;
    assert_eq!(run["status"], "succeeded");
    let seen = hook.wait_for(3, Duration::from_secs(20)).await;
    // Exactly three attempts: two failures, then the success ends it.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let seen_after = hook.seen();
    assert_eq!(seen_after.len(), 3, "no attempt after the success");
    let ids: Vec<&str> = seen.iter().map(|r| r.header("webhook-id")).collect();
    assert!(ids[0].starts_with("msg_"));
    assert!(
        ids.iter().all(|i| *i == ids[0]),
        "one webhook-id on every attempt: {ids:?}"
    );
    assert!(
        seen.iter().all(|r| r.body == seen[0].body),
        "the same body every time"
    );
    for received in &seen {
        let payload = node_verify(&secret, received).expect("standardwebhooks verifies it");
        assert_eq!(payload["type"], "run.succeeded");
        assert_eq!(payload["data"]["id"], run_id.as_str());
        assert_eq!(payload["data"]["status"], "succeeded");
        assert_eq!(
            payload["data"]["output"]["greeting"],
            run["output"]["greeting"]
        );
        assert!(payload["data"].get("lease_owner").is_none());
        assert!(payload["timestamp"]
            .as_str()
            .expect("timestamp")
            .ends_with('Z'));
        assert_eq!(received.header("content-type"), "application/json");
    }
    // Another secret, or a changed body, does not verify: the check can fail.
    let (_, other) = endpoint(
        &api,
        &key,
        json!({ "url": hook.url, "events": ["run.failed"] }),
    )
    .await;
    assert!(node_verify(&other, &seen[0]).is_err());
    let mut tampered = seen[0].clone();
    tampered.body = seen[0]
        .body
        .iter()
        .map(|b| if *b == b'A' { b'B' } else { *b })
        .collect();
    assert!(node_verify(&secret, &tampered).is_err());

    let log = deliveries(&api, &key, &id).await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["id"], ids[0]);
    assert_eq!(log[0]["event"], "run.succeeded");
    assert_eq!(log[0]["status"], "succeeded");
    assert_eq!(log[0]["next_attempt_at"], Value::Null);
    let codes: Vec<i64> = log[0]["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| a["status_code"].as_i64().expect("code"))
        .collect();
    assert_eq!(codes, vec![500, 503, 200]);
    assert_eq!(log[0]["attempts"][2]["response"], "answered 200");
    assert!(log[0]["attempts"][0]["latency_ms"].as_i64().is_some());
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_signs_with_both_secrets_during_the_overlap() {
    let api = TestApi::start().await;
    let (_org, _app, key) = api.tenant().await;
    let (agent, _) = api.deploy(&key, "hello").await;
    let hook = receiver().await;
    let (id, old) = endpoint(
        &api,
        &key,
        json!({ "url": hook.url, "events": ["run.started"] }),
    )
    .await;
    let (status, rotated) = api
        .call(
            Method::POST,
            &format!("/v1/webhooks/{id}/rotate-secret"),
            &key,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new = rotated["secret"].as_str().expect("new secret").to_owned();
    assert_ne!(new, old);
    let until = rotated["previous_secret_expires_at"]
        .as_i64()
        .expect("until");
    assert!(until > now_secs() * 1000 + 23 * 3_600_000);
    start_run(&api, &key, &agent).await;
    let seen = hook.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(seen[0].header("webhook-signature").split(' ').count(), 2);
    assert!(
        node_verify(&new, &seen[0]).is_ok(),
        "the new secret verifies"
    );
    assert!(
        node_verify(&old, &seen[0]).is_ok(),
        "the old one too, for 24 hours"
    );
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_deliveries_can_be_retried_by_hand_and_gone_disables() {
    let api = TestApi::start().await;
    let (_org, app_id, key) = api.tenant().await;
    let (agent, _) = api.deploy(&key, "hello").await;
    let hook = receiver().await;
    // 1 attempt + 3 retries (the test server's schedule), all failing.
    hook.answer(&[500, 500, 500, 500]);
    let (id, _) = endpoint(
        &api,
        &key,
        json!({ "url": hook.url, "events": ["run.succeeded"] }),
    )
    .await;
    start_run(&api, &key, &agent).await;
    hook.wait_for(4, Duration::from_secs(20)).await;
    let mut log = Vec::new();
    for _ in 0..100 {
        log = deliveries(&api, &key, &id).await;
        if log[0]["status"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(log[0]["status"], "failed", "{log:?}");
    assert_eq!(log[0]["attempts"].as_array().expect("attempts").len(), 4);
    let delivery = log[0]["id"].as_str().expect("delivery id").to_owned();
    let retry = format!("/v1/webhooks/{id}/deliveries/{delivery}/retry");
    let (status, _) = api.call(Method::POST, &retry, &key, None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, audit) = api.call(Method::GET, "/v1/audit", &key, None).await;
    assert!(
        audit["data"]
            .as_array()
            .expect("audit")
            .iter()
            .any(|e| e["action"] == "webhook.retry_delivery"
                && e["detail"]["delivery_id"] == delivery),
        "a manual retry leaves its trace: {audit}"
    );
    let seen = hook.wait_for(5, Duration::from_secs(20)).await;
    assert_eq!(seen[4].header("webhook-id"), delivery);
    for _ in 0..100 {
        log = deliveries(&api, &key, &id).await;
        if log[0]["status"] == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(log[0]["attempts"][4]["attempt"], 5);

    // 410 Gone: the endpoint is disabled, the audit log says so, and it gets nothing more.
    hook.answer(&[410]);
    start_run(&api, &key, &agent).await;
    let mut shown = Value::Null;
    for _ in 0..200 {
        shown = api
            .call(Method::GET, &format!("/v1/webhooks/{id}"), &key, None)
            .await
            .1;
        if !shown["disabled_at"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        shown["disabled_reason"]
            .as_str()
            .expect("disabled")
            .contains("410"),
        "{shown}"
    );
    let (_, audit) = api.call(Method::GET, "/v1/audit", &key, None).await;
    assert!(
        audit["data"]
            .as_array()
            .expect("audit")
            .iter()
            .any(|a| a["action"] == "webhook.disabled"
                && a["target"] == id.as_str()
                && a["app_id"] == app_id.as_str()),
        "{audit}"
    );
    let before = hook.seen().len();
    let run_id = start_run(&api, &key, &agent).await;
    wait_final(&api, &key, &run_id).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(hook.seen().len(), before);
    let (status, _) = api.call(Method::POST, &retry, &key, None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    api.stop().await;
}

/// One endpoint that never answers holds back neither the runs nor another endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_endpoint_holds_back_nobody() {
    let api = TestApi::start().await;
    let (_org, _app, key) = api.tenant().await;
    let (agent, _) = api.deploy(&key, "hello").await;
    let slow = receiver().await;
    slow.hold();
    let fast = receiver().await;
    endpoint(
        &api,
        &key,
        json!({ "url": slow.url, "events": ["run.succeeded"] }),
    )
    .await;
    endpoint(
        &api,
        &key,
        json!({ "url": fast.url, "events": ["run.succeeded"] }),
    )
    .await;
    let mut runs = Vec::new();
    for _ in 0..12 {
        runs.push(start_run(&api, &key, &agent).await);
    }
    for run in &runs {
        assert_eq!(wait_final(&api, &key, run).await["status"], "succeeded");
    }
    fast.wait_for(12, Duration::from_secs(20)).await;
    assert!(
        slow.seen().is_empty(),
        "the slow endpoint answered nothing yet"
    );
    assert!(
        slow.most_in_flight() <= 4,
        "at most 4 deliveries wait on one endpoint, saw {}",
        slow.most_in_flight()
    );
    slow.release();
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_urls_are_checked_and_endpoints_are_the_apps_own() {
    let api = TestApi::start().await;
    let (org_key, _app, key) = api.tenant().await;
    for url in [
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:9/hook",
        "http://192.168.0.1/",
        "ftp://example.com/hook",
        "not a url",
    ] {
        let (status, body) = api
            .call(
                Method::POST,
                "/v1/webhooks",
                &key,
                Some(json!({ "url": url })),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {body}");
    }
    let (status, body) = api
        .call(
            Method::POST,
            "/v1/webhooks",
            &key,
            Some(json!({ "url": "http://127.0.0.1:9/h", "events": ["run.exploded"] })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) = api
        .call(
            Method::POST,
            "/v1/webhooks",
            &key,
            Some(json!({ "url": "http://127.0.0.1:9/h", "extra": 1 })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (id, _) = endpoint(&api, &key, json!({ "url": "http://127.0.0.1:9/h" })).await;
    // A retried create replays the endpoint, never its secret.
    let create = || {
        api.req(Method::POST, "/v1/webhooks", &key)
            .header("idempotency-key", "create-once")
            .json(&json!({ "url": "http://127.0.0.1:9/idem" }))
            .send()
    };
    let (_, first) = super::read(create().await.expect("send")).await;
    assert!(first["secret"]
        .as_str()
        .expect("secret")
        .starts_with("whsec_"));
    let replay = create().await.expect("send");
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let (_, replayed) = super::read(replay).await;
    assert_eq!(
        (&replayed["secret"], &replayed["secret_redacted"]),
        (&Value::Null, &json!(true))
    );
    assert_eq!(replayed["id"], first["id"]);
    let (_other_app, other_key) = api.app_with_key(&org_key, "other").await;
    for (method, path) in [
        (Method::GET, format!("/v1/webhooks/{id}")),
        (Method::DELETE, format!("/v1/webhooks/{id}")),
        (Method::POST, format!("/v1/webhooks/{id}/rotate-secret")),
        (Method::GET, format!("/v1/webhooks/{id}/deliveries")),
        (
            Method::POST,
            format!("/v1/webhooks/{id}/deliveries/msg_x/retry"),
        ),
    ] {
        let (status, body) = api.call(method.clone(), &path, &other_key, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
    }
    let (_, listed) = api
        .call(Method::GET, "/v1/webhooks", &other_key, None)
        .await;
    assert_eq!(listed["data"], json!([]));
    let (_, listed) = api.call(Method::GET, "/v1/webhooks", &key, None).await;
    assert_eq!(listed["data"].as_array().expect("list").len(), 2);
    let (status, _) = api
        .call(Method::DELETE, &format!("/v1/webhooks/{id}"), &key, None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = api
        .call(Method::GET, &format!("/v1/webhooks/{id}"), &key, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    api.stop().await;
}

/// The receiver the README shows, run as written, gets and verifies a real delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_receiver_verifies_real_deliveries() {
    use std::io::BufRead;
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    let after = &readme[readme.find("<!-- receiver-example").expect("marker")..];
    let start = after.find("```js\n").expect("js block") + "```js\n".len();
    let code = &after[start..start + after[start..].find("```").expect("block end")];
    let script = npm_dir().join(format!(
        "readme-receiver-{}.mjs",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(&script, code).expect("write the example");

    let api = TestApi::start().await;
    let (_org, _app, key) = api.tenant().await;
    let (agent, _) = api.deploy(&key, "hello").await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let (_, secret) = endpoint(
        &api,
        &key,
        json!({ "url": format!("http://127.0.0.1:{port}/"), "events": ["run.succeeded"] }),
    )
    .await;
    let mut node = std::process::Command::new("node")
        .arg(&script)
        .current_dir(npm_dir())
        .env("ATOLL_WEBHOOK_SECRET", &secret)
        .env("PORT", port.to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("node runs the example");
    let stdout = node.stdout.take().expect("stdout");
    let (lines, got) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines.send(line);
        }
    });
    let run_id = start_run(&api, &key, &agent).await;
    let line = tokio::task::spawn_blocking(move || got.recv_timeout(Duration::from_secs(30)))
        .await
        .expect("reader")
        .expect("the example printed the event");
    assert_eq!(line, format!("run.succeeded {run_id} succeeded"));
    let _ = node.kill();
    let _ = node.wait();
    let _ = std::fs::remove_file(&script);
    api.stop().await;
}
