//! Impersonation binds: an app key acting for alice (`x-atoll-end-user: alice`) cannot
//! reach bob's memory, runs or connection by naming bob in a parameter, and sees only
//! alice's runs.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::TestApi;

/// `call` with `x-atoll-end-user`: (status, content type, body).
async fn as_user(
    api: &TestApi,
    user: &str,
    method: Method,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (StatusCode, String, Value) {
    let mut req = api.req(method, path, key).header("x-atoll-end-user", user);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let response = req.send().await.expect("request");
    let content_type = super::content_type(&response);
    let (status, body) = super::read(response).await;
    (status, content_type, body)
}

/// Starts a finished `counter` run for `user` (None: the app itself); its id.
async fn run_for(api: &TestApi, key: &str, user: Option<&str>) -> String {
    let mut req = api.req(Method::POST, "/v1/agents/atoll/counter/runs?wait=10", key);
    if let Some(user) = user {
        req = req.header("x-atoll-end-user", user);
    }
    let response = req
        .json(&json!({ "input": {} }))
        .send()
        .await
        .expect("send");
    let (status, run) = super::read(response).await;
    assert_eq!(status, StatusCode::OK, "{run}");
    run["id"].as_str().expect("run id").to_owned()
}

#[tokio::test]
async fn an_impersonating_key_cannot_reach_another_end_users_data() {
    let api = TestApi::start().await;
    let (_org, _app, key) = api.tenant().await;
    api.deploy(&key, "counter").await;
    let run_bob = run_for(&api, &key, Some("bob")).await;
    let run_app = run_for(&api, &key, None).await;
    let run_alice = run_for(&api, &key, Some("alice")).await;
    // The app itself (no header) gives bob a memory key and his own connection.
    let (status, body) = api
        .call(
            Method::PUT,
            "/v1/memory/end_user/diary?end_user=bob",
            &key,
            Some(json!("bob's diary")),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let bob_connection =
        json!({ "type": "bearer", "token": "bob-token-123", "hosts": ["api.example.com"] });
    let (status, body) = api
        .call(
            Method::PUT,
            "/v1/connections/mail?end_user=bob",
            &key,
            Some(bob_connection.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Acting for alice, every parameter naming bob (or the app) is refused with 403.
    let forbidden = [
        (Method::GET, "/v1/memory/end_user/diary?end_user=bob", None),
        (
            Method::PUT,
            "/v1/memory/end_user/diary?end_user=bob",
            Some(json!("overwritten by alice")),
        ),
        (
            Method::DELETE,
            "/v1/memory/end_user/diary?end_user=bob",
            None,
        ),
        (Method::GET, "/v1/memory/end_user?end_user=bob", None),
        (Method::GET, "/v1/runs?end_user=bob", None),
        (Method::GET, "/v1/connections/mail?end_user=bob", None),
        (
            Method::PUT,
            "/v1/connections/mail?end_user=bob",
            Some(
                json!({ "type": "bearer", "token": "alice-token", "hosts": ["evil.example.com"] }),
            ),
        ),
        (Method::DELETE, "/v1/connections/mail?end_user=bob", None),
        // The app's own connection (end_user empty) is not alice's to change either.
        (
            Method::PUT,
            "/v1/connections/mail?end_user=",
            Some(
                json!({ "type": "bearer", "token": "alice-token", "hosts": ["evil.example.com"] }),
            ),
        ),
        (
            Method::POST,
            "/v1/agents/atoll/counter/runs",
            Some(json!({ "input": {}, "end_user": "bob" })),
        ),
        // Reports over the whole app are not alice's to read.
        (Method::GET, "/v1/usage", None),
        (Method::GET, "/v1/audit", None),
    ];
    for (method, path, body) in forbidden {
        let (status, content_type, answer) =
            as_user(&api, "alice", method.clone(), path, &key, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
        assert_eq!(content_type, "application/problem+json", "{method} {path}");
        assert!(
            answer["detail"]
                .as_str()
                .is_some_and(|d| d.contains("x-atoll-end-user")),
            "{method} {path}: the detail says what to do: {answer}"
        );
        let text = answer.to_string();
        assert!(
            !text.contains("diary") && !text.contains(&run_bob),
            "{method} {path} leaked: {text}"
        );
    }

    // Bob's runs, and the app's, do not exist for alice: the same 404 as another tenant's.
    for run in [&run_bob, &run_app] {
        for (method, path) in [
            (Method::GET, format!("/v1/runs/{run}")),
            (Method::GET, format!("/v1/runs/{run}/events")),
            (Method::POST, format!("/v1/runs/{run}/cancel")),
        ] {
            let (status, _, answer) =
                as_user(&api, "alice", method.clone(), &path, &key, None).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {answer}");
            assert!(
                !answer.to_string().contains("visits"),
                "{path} leaked output"
            );
        }
    }
    // Alice's list holds her runs only; her own run and memory stay reachable.
    let (status, _, runs) = as_user(&api, "alice", Method::GET, "/v1/runs", &key, None).await;
    assert_eq!(status, StatusCode::OK, "{runs}");
    let ids: Vec<&str> = runs["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(ids, [run_alice.as_str()], "{runs}");
    let (status, _, run) = as_user(
        &api,
        "alice",
        Method::GET,
        &format!("/v1/runs/{run_alice}"),
        &key,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{run}");
    let (status, _, visits) = as_user(
        &api,
        "alice",
        Method::GET,
        "/v1/memory/end_user/visits?end_user=alice",
        &key,
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a matching parameter is fine: {visits}"
    );
    let (status, _, listed) =
        as_user(&api, "alice", Method::GET, "/v1/connections", &key, None).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert!(
        !listed.to_string().contains("bob"),
        "alice's connection list shows bob's: {listed}"
    );

    // Nothing of bob's changed.
    let (status, diary) = api
        .call(
            Method::GET,
            "/v1/memory/end_user/diary?end_user=bob",
            &key,
            None,
        )
        .await;
    assert_eq!(
        (status, diary["value"].clone()),
        (StatusCode::OK, json!("bob's diary"))
    );
    let (status, connection) = api
        .call(Method::GET, "/v1/connections/mail?end_user=bob", &key, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{connection}");
    assert_eq!(connection["hosts"], json!(["api.example.com"]));
    let (status, run) = api
        .call(Method::GET, &format!("/v1/runs/{run_bob}"), &key, None)
        .await;
    assert_eq!(
        (status, run["status"].clone()),
        (StatusCode::OK, json!("succeeded"))
    );
    api.stop().await;
}

/// Acting for alice, a request may not write what every end-user's runs read — the app's
/// and the org's shared memory, the app's tools, agents and keys — or an app that
/// forwards its end-users' calls with `x-atoll-end-user` would let alice rewrite the
/// memory bob's runs trust, or point a tool bob's runs call somewhere else. Reading the
/// shared memory stays allowed, and the app itself still writes it.
#[tokio::test]
async fn an_impersonating_key_cannot_write_what_every_end_user_shares() {
    let api = TestApi::start().await;
    let (_org, _app, key) = api.tenant().await;
    for scope in ["app", "org"] {
        let (status, _, body) = as_user(
            &api,
            "alice",
            Method::PUT,
            &format!("/v1/memory/{scope}/policy"),
            &key,
            Some(json!({ "refunds": "always" })),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{scope}: {body}");
    }
    let (status, _, body) = as_user(
        &api,
        "alice",
        Method::PUT,
        "/v1/tools/lookup_customer",
        &key,
        Some(json!({
            "description": "looks a customer up",
            "input_schema": { "type": "object" },
            "method": "POST",
            "url": "https://crm.example.com/lookup"
        })),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    for (method, path, body) in [
        (
            Method::POST,
            "/v1/api-keys",
            Some(json!({ "name": "alice-key", "kind": "app" })),
        ),
        (Method::GET, "/v1/api-keys", None),
        (
            Method::PUT,
            "/v1/agents/acme/triage/versions/1.0.0",
            Some(json!({})),
        ),
    ] {
        let (status, _, body) = as_user(&api, "alice", method, path, &key, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
    }
    let (status, _, body) = as_user(
        &api,
        "alice",
        Method::GET,
        "/v1/memory/app/policy",
        &key,
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "alice may read shared memory: {body}"
    );
    let (status, body) = api
        .call(
            Method::PUT,
            "/v1/memory/app/policy",
            &key,
            Some(json!({ "refunds": "never" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "the app writes its memory: {body}");
    api.stop().await;
}
