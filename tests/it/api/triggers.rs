//! Triggers in: inbound webhooks signed by independent implementations (the
//! `standardwebhooks` npm package, Node's crypto for GitHub, Stripe and plain HMAC), every
//! refusal path, and cron triggers fired by two nodes on one database.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::hook_kit::{node_hmac_hex, node_sign, now_secs};
use super::{args_for, wait_final, TestApi};
use atoll::hooks::cron::fire_due;

async fn trigger(api: &TestApi, key: &str, body: Value) -> Value {
    let (status, created) = api
        .call(
            Method::POST,
            "/v1/agents/atoll/hello/triggers",
            key,
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

/// Posts to a hook with no API key: (status, body, headers).
async fn post_hook(
    api: &TestApi,
    url: &str,
    headers: &[(&str, String)],
    body: &str,
) -> (StatusCode, Value, HeaderMap) {
    let mut req = api
        .http
        .post(format!("{}{url}", api.base))
        .body(body.to_owned());
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    let response = req.send().await.expect("hook request");
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
        headers,
    )
}

async fn run_count(api: &TestApi, key: &str) -> usize {
    let (_, runs) = api.call(Method::GET, "/v1/runs?limit=200", key, None).await;
    runs["data"].as_array().expect("runs").len()
}

fn standard(secret: &str, id: &str, ts: i64, body: &str) -> Vec<(&'static str, String)> {
    vec![
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", ts.to_string()),
        ("webhook-signature", node_sign(secret, id, ts, body)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_hooks_start_one_run_per_delivery_and_refuse_the_rest() {
    let api = TestApi::start().await;
    let (org_key, _app, key) = api.tenant().await;
    api.deploy(&key, "hello").await;
    let created = trigger(
        &api,
        &key,
        json!({ "type": "webhook", "verify": "standard", "input_pointer": "/data" }),
    )
    .await;
    let id = created["id"].as_str().expect("id").to_owned();
    let url = created["url"].as_str().expect("url").to_owned();
    assert_eq!(url, format!("/v1/hooks/{id}"));
    let secret = created["secret"].as_str().expect("secret").to_owned();
    let (_, shown) = api
        .call(
            Method::GET,
            &format!("/v1/agents/atoll/hello/triggers/{id}"),
            &key,
            None,
        )
        .await;
    assert!(!shown.to_string().contains(&secret), "{shown}");

    let body = r#"{"type":"greet","data":{"name":"Ada"}}"#;
    let now = now_secs();
    let signed = standard(&secret, "evt_1", now, body);
    let (status, answer, _) = post_hook(&api, &url, &signed, body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let run_id = answer["run_id"].as_str().expect("run id").to_owned();
    let run = wait_final(&api, &key, &run_id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["trigger"], format!("webhook:{id}"));
    assert_eq!(run["input"], json!({ "name": "Ada" }));
    // The same delivery again: the same run, nothing new.
    let (status, again, headers) = post_hook(&api, &url, &signed, body).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(again["run_id"], run_id.as_str());
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(run_count(&api, &key).await, 1);

    let other_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    type Refusal = (
        &'static str,
        Vec<(&'static str, String)>,
        String,
        StatusCode,
    );
    let refusals: Vec<Refusal> = vec![
        (
            "another secret",
            standard(other_secret, "evt_2", now, body),
            body.into(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "no signature",
            vec![],
            body.into(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "stale timestamp",
            standard(&secret, "evt_3", now - 600, body),
            body.into(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "future timestamp",
            standard(&secret, "evt_4", now + 600, body),
            body.into(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "body changed after signing",
            standard(&secret, "evt_5", now, body),
            body.replace("Ada", "Eve"),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "input fails the schema",
            standard(&secret, "evt_6", now, r#"{"data":{"name":5}}"#),
            r#"{"data":{"name":5}}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "nothing at the pointer",
            standard(&secret, "evt_7", now, r#"{"other":1}"#),
            r#"{"other":1}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    for (what, headers, sent, expected) in refusals {
        let (status, problem, _) = post_hook(&api, &url, &headers, &sent).await;
        assert_eq!(status, expected, "{what}: {problem}");
    }
    // Over the hook body limit (64 KiB in tests), signed or not.
    let big = format!(r#"{{"data":{{"name":"{}"}}}}"#, "x".repeat(70 * 1024));
    let (status, _, _) = post_hook(&api, &url, &standard(&secret, "evt_8", now, &big), &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, _, _) = post_hook(&api, "/v1/hooks/trg_unknown", &signed, body).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(run_count(&api, &key).await, 1, "no refusal started a run");

    // Paused: refused; resumed: accepted.
    let base = format!("/v1/agents/atoll/hello/triggers/{id}");
    let (status, paused) = api
        .call(Method::POST, &format!("{base}/pause"), &key, None)
        .await;
    assert_eq!((status, &paused["paused"]), (StatusCode::OK, &json!(true)));
    let fresh = standard(&secret, "evt_9", now, body);
    let (status, _, _) = post_hook(&api, &url, &fresh, body).await;
    assert_eq!(status, StatusCode::CONFLICT);
    api.call(Method::POST, &format!("{base}/resume"), &key, None)
        .await;
    let (status, _, _) = post_hook(&api, &url, &fresh, body).await;
    assert_eq!(status, StatusCode::ACCEPTED);

    // Another tenant cannot see, pause or delete it; a cron trigger is no hook.
    let (_other_app, other_key) = api.app_with_key(&org_key, "other").await;
    api.deploy(&other_key, "hello").await;
    for (method, path) in [
        (Method::GET, base.clone()),
        (Method::DELETE, base.clone()),
        (Method::POST, format!("{base}/pause")),
        (Method::POST, format!("{base}/resume")),
        (Method::POST, format!("{base}/rotate-secret")),
    ] {
        let (status, _) = api.call(method.clone(), &path, &other_key, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
    }
    let cron = trigger(
        &api,
        &key,
        json!({ "type": "cron", "schedule": "0 9 * * *", "input": { "name": "x" } }),
    )
    .await;
    assert!(cron.get("secret").is_none());
    let cron_hook = format!("/v1/hooks/{}", cron["id"].as_str().expect("id"));
    let (status, _) = api
        .call(
            Method::POST,
            &format!(
                "/v1/agents/atoll/hello/triggers/{}/rotate-secret",
                cron["id"].as_str().expect("id")
            ),
            &key,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // A rotated secret replaces the old one at once.
    let (_, rotated) = api
        .call(Method::POST, &format!("{base}/rotate-secret"), &key, None)
        .await;
    let new_secret = rotated["secret"].as_str().expect("new secret").to_owned();
    assert_ne!(new_secret, secret);
    let (status, _, _) = post_hook(&api, &url, &standard(&secret, "evt_11", now, body), body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = post_hook(
        &api,
        &url,
        &standard(&new_secret, "evt_11", now, body),
        body,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _, _) = post_hook(&api, &cron_hook, &signed, body).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api.call(Method::DELETE, &base, &key, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = post_hook(&api, &url, &standard(&secret, "evt_10", now, body), body).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_stripe_and_plain_hmac_hooks() {
    let api = TestApi::start().await;
    let (_org, _app, key) = api.tenant().await;
    api.deploy(&key, "hello").await;
    let body = r#"{"id":"evt_stripe_1","name":"Grace"}"#;

    let github = trigger(&api, &key, json!({ "type": "webhook", "verify": "github" })).await;
    let (url, secret) = (
        github["url"].as_str().expect("url"),
        github["secret"].as_str().expect("secret"),
    );
    let sig = format!("sha256={}", node_hmac_hex(secret, body));
    let headers = vec![
        ("x-hub-signature-256", sig.clone()),
        ("x-github-delivery", "gh-1".to_owned()),
    ];
    let (status, first, _) = post_hook(&api, url, &headers, body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    // GitHub does not sign its delivery id: a captured request resent under a new id is
    // still the run it started, not a new one.
    let resent = vec![
        ("x-hub-signature-256", sig.clone()),
        ("x-github-delivery", "gh-forged".to_owned()),
    ];
    let (_, again, _) = post_hook(&api, url, &resent, body).await;
    assert_eq!(again["run_id"], first["run_id"]);
    let wrong = vec![(
        "x-hub-signature-256",
        format!("sha256={}", node_hmac_hex("nope", body)),
    )];
    assert_eq!(
        post_hook(&api, url, &wrong, body).await.0,
        StatusCode::UNAUTHORIZED
    );

    // Stripe picks the secret once its endpoint (our URL) exists: the trigger takes it.
    let stripe_secret = "whsec_stripe_test_0123456789abcdef";
    let stripe = trigger(&api, &key, json!({ "type": "webhook", "verify": "stripe" })).await;
    let url = stripe["url"].as_str().expect("url");
    let rotate = format!(
        "/v1/agents/atoll/hello/triggers/{}/rotate-secret",
        stripe["id"].as_str().expect("id")
    );
    let (status, rotated) = api
        .call(
            Method::POST,
            &rotate,
            &key,
            Some(json!({ "secret": stripe_secret })),
        )
        .await;
    assert_eq!(
        (status, &rotated["secret"]),
        (StatusCode::OK, &json!(stripe_secret))
    );
    let stripe_header = |ts: i64| {
        let v1 = node_hmac_hex(stripe_secret, &format!("{ts}.{body}"));
        vec![("stripe-signature", format!("t={ts},v1={v1}"))]
    };
    let (status, first, _) = post_hook(&api, url, &stripe_header(now_secs()), body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    // A later delivery of the same event (its id is in the body) is the same run.
    let (_, again, _) = post_hook(&api, url, &stripe_header(now_secs() + 1), body).await;
    assert_eq!(again["run_id"], first["run_id"]);
    let stale = post_hook(&api, url, &stripe_header(now_secs() - 600), body).await;
    assert_eq!(stale.0, StatusCode::UNAUTHORIZED);

    let custom = trigger(
        &api,
        &key,
        json!({ "type": "webhook", "verify": { "hmac_header": "x-signature", "prefix": "sha256=" } }),
    )
    .await;
    let (url, secret) = (
        custom["url"].as_str().expect("url"),
        custom["secret"].as_str().expect("secret"),
    );
    let headers = vec![(
        "x-signature",
        format!("sha256={}", node_hmac_hex(secret, body)),
    )];
    let (status, first, _) = post_hook(&api, url, &headers, body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    // No delivery id and no timestamp: a replayed request is the same run, not a new one.
    let (_, again, _) = post_hook(&api, url, &headers, body).await;
    assert_eq!(again["run_id"], first["run_id"]);
    let unprefixed = vec![("x-signature", node_hmac_hex(secret, body))];
    assert_eq!(
        post_hook(&api, url, &unprefixed, body).await.0,
        StatusCode::UNAUTHORIZED
    );
    let run = wait_final(&api, &key, first["run_id"].as_str().expect("run")).await;
    assert_eq!(run["input"]["name"], "Grace");
    assert_eq!(run_count(&api, &key).await, 3);

    for bad in [
        json!({ "type": "webhook", "verify": "md5" }),
        json!({ "type": "webhook", "verify": { "hmac_header": "bad header" } }),
        json!({ "type": "webhook", "verify": "standard", "secret": "too-short" }),
        json!({ "type": "webhook", "verify": "standard", "input_pointer": "data" }),
        json!({ "type": "cron", "schedule": "* * * *" }),
        json!({ "type": "cron", "schedule": "*/5 * * * *", "timezone": "Mars/Olympus" }),
        json!({ "type": "cron", "schedule": "*/5 * * * *", "input": { "name": 5 } }),
        json!({ "type": "carrier-pigeon" }),
    ] {
        let (status, problem) = api
            .call(
                Method::POST,
                "/v1/agents/atoll/hello/triggers",
                &key,
                Some(bad.clone()),
            )
            .await;
        assert!(status.is_client_error(), "{bad}: {status} {problem}");
        assert_eq!(run_count(&api, &key).await, 3);
    }
    api.stop().await;
}

/// Two nodes on one database fire one cron trigger: one run per firing, whatever the
/// race; after downtime only the latest missed firing runs. The nodes' own cron loops
/// are slowed down and the firings are driven with chosen clock times.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cron_fires_once_per_firing_across_two_nodes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = args_for(dir.path()).await;
    args.cron_tick_ms = 3_600_000;
    let mut args_b = args.clone();
    args_b.node_id = Some(format!("node_b_{}", uuid::Uuid::new_v4().simple()));
    let a = TestApi::start_with(args, dir).await;
    let b = TestApi::start_with(args_b, tempfile::tempdir().expect("tempdir")).await;
    let (_org, _app, key) = a.tenant().await;
    a.deploy(&key, "hello").await;
    let created = trigger(
        &a,
        &key,
        json!({
            "type": "cron", "schedule": "*/5 * * * *", "timezone": "Europe/Paris",
            "input": { "name": "cron" }
        }),
    )
    .await;
    let id = created["id"].as_str().expect("id").to_owned();
    let first = created["next_fire_at"].as_i64().expect("next_fire_at");
    assert!(
        first > now_secs() * 1000 && first % 300_000 == 0,
        "{created}"
    );
    let runs_a = a.server.as_ref().expect("a").state.runs.clone();
    let runs_b = b.server.as_ref().expect("b").state.runs.clone();
    let fire_both = |now: i64| {
        let (ra, rb) = (runs_a.clone(), runs_b.clone());
        async move {
            let (x, y) = tokio::join!(fire_due(&ra, now), fire_due(&rb, now));
            x.expect("node a fires");
            y.expect("node b fires");
        }
    };
    for i in 0..3 {
        fire_both(first + i * 300_000 + 1_000).await;
        // Firing again at the same time, or a little later, starts nothing new.
        fire_both(first + i * 300_000 + 2_000).await;
    }
    assert_eq!(run_count(&a, &key).await, 3);
    // Down for ten firings: only the latest runs.
    fire_both(first + 13 * 300_000 + 30_000).await;
    let (_, runs) = a.call(Method::GET, "/v1/runs?limit=200", &key, None).await;
    let runs = runs["data"].as_array().expect("runs").clone();
    assert_eq!(runs.len(), 4, "{runs:?}");
    assert!(runs.iter().all(|r| r["trigger"] == format!("cron:{id}")));
    for run in &runs {
        let done = wait_final(&a, &key, run["id"].as_str().expect("id")).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        assert_eq!(done["input"], json!({ "name": "cron" }));
    }
    let (_, shown) = b
        .call(
            Method::GET,
            &format!("/v1/agents/atoll/hello/triggers/{id}"),
            &key,
            None,
        )
        .await;
    assert_eq!(shown["next_fire_at"], first + 14 * 300_000, "{shown}");

    // Paused: nothing fires; resumed: the next firing is the next one from now.
    let base = format!("/v1/agents/atoll/hello/triggers/{id}");
    a.call(Method::POST, &format!("{base}/pause"), &key, None)
        .await;
    fire_both(first + 20 * 300_000).await;
    assert_eq!(run_count(&a, &key).await, 4);
    let (_, resumed) = a
        .call(Method::POST, &format!("{base}/resume"), &key, None)
        .await;
    let next = resumed["next_fire_at"].as_i64().expect("next");
    assert!(
        next > now_secs() * 1000 && next <= now_secs() * 1000 + 300_000,
        "{resumed}"
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
    b.stop().await;
    a.stop().await;
}
