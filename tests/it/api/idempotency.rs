//! Idempotency is safe: a record is replayed only to the same key, tenant and end-user
//! for the same request, only while the key is valid, and a secret shown once is
//! neither kept in the store nor shown again on replay.

use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

use super::{args_for, read, TestApi, ADMIN};

/// POST `path` with an Idempotency-Key (and `x-atoll-end-user` when `user` is set):
/// (status, replayed?, body).
async fn post(
    api: &TestApi,
    key: &str,
    user: Option<&str>,
    path: &str,
    idempotency_key: &str,
    body: Value,
) -> (StatusCode, bool, Value) {
    let mut req = api
        .req(Method::POST, path, key)
        .header("idempotency-key", idempotency_key);
    if let Some(user) = user {
        req = req.header("x-atoll-end-user", user);
    }
    let response: Response = req.json(&body).send().await.expect("send");
    let replayed = response
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true");
    let (status, body) = read(response).await;
    (status, replayed, body)
}

#[tokio::test]
async fn a_record_replays_only_to_its_own_end_user_and_tenant() {
    let api = TestApi::start().await;
    let (_org, _app, key) = api.tenant().await;
    let (_org_b, _app_b, key_b) = api.tenant().await;
    api.deploy(&key, "hello").await;
    api.deploy(&key_b, "hello").await;
    let path = "/v1/agents/atoll/hello/runs";
    let body = json!({ "input": { "name": "A" } });
    let (status, _, alice_run) = post(&api, &key, Some("alice"), path, "k-1", body.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{alice_run}");
    let alice_id = alice_run["id"].as_str().expect("id").to_owned();
    let (status, replayed, again) =
        post(&api, &key, Some("alice"), path, "k-1", body.clone()).await;
    assert!(
        replayed && again["id"] == alice_id.as_str(),
        "{status} {again}"
    );

    // Bob, through the same app key, sends the same Idempotency-Key and body.
    let (status, replayed, bob) = post(&api, &key, Some("bob"), path, "k-1", body.clone()).await;
    assert!(!replayed, "bob was replayed alice's response: {bob}");
    assert!(
        !bob.to_string().contains(&alice_id),
        "bob saw alice's run: {bob}"
    );
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bob}");
    // The app itself (no end-user) is another request too.
    let (status, replayed, app) = post(&api, &key, None, path, "k-1", body.clone()).await;
    assert!(
        !replayed && status == StatusCode::UNPROCESSABLE_ENTITY,
        "{status} {app}"
    );

    // Another tenant's key with the same Idempotency-Key and request gets its own run.
    let (status, replayed, other) = post(&api, &key_b, Some("alice"), path, "k-1", body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{other}");
    assert!(!replayed && other["id"] != alice_id.as_str(), "{other}");
    api.stop().await;
}

#[tokio::test]
async fn a_revoked_key_replays_nothing() {
    let api = TestApi::start().await;
    let (org_key, app_id, _key) = api.tenant().await;
    let (status, created) = api
        .call(
            Method::POST,
            "/v1/api-keys",
            &org_key,
            Some(json!({ "name": "short-lived", "kind": "app", "app_id": app_id })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let key = created["secret"].as_str().expect("secret").to_owned();
    let key_id = created["id"].as_str().expect("id").to_owned();
    api.deploy(&key, "hello").await;
    let path = "/v1/agents/atoll/hello/runs";
    let body = json!({ "input": { "name": "A" } });
    let (status, _, run) = post(&api, &key, None, path, "r-1", body.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{run}");

    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("/v1/api-keys/{key_id}"),
            &org_key,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, replayed, answer) = post(&api, &key, None, path, "r-1", body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    assert!(!replayed, "a revoked key was replayed its run: {answer}");
    assert!(
        answer["detail"]
            .as_str()
            .is_some_and(|d| d.contains("revoked")),
        "{answer}"
    );
    api.stop().await;
}

/// Every stored idempotency response body, read from the server's database.
async fn stored_bodies(database_url: &str) -> Vec<String> {
    use sqlx::Connection;
    let query = "SELECT body FROM idempotency_keys";
    let rows: Vec<(Option<String>,)> = if database_url.starts_with("postgres") {
        let mut conn = sqlx::PgConnection::connect(database_url)
            .await
            .expect("connect");
        sqlx::query_as(query)
            .fetch_all(&mut conn)
            .await
            .expect("select")
    } else {
        let mut conn = sqlx::SqliteConnection::connect(database_url)
            .await
            .expect("connect");
        sqlx::query_as(query)
            .fetch_all(&mut conn)
            .await
            .expect("select")
    };
    rows.into_iter().filter_map(|(body,)| body).collect()
}

#[tokio::test]
async fn secrets_are_neither_stored_nor_replayed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let args = args_for(dir.path()).await;
    let database_url = args.database_url();
    let api = TestApi::start_with(args, dir).await;

    let new_org = json!({ "name": "acme" });
    let (status, replayed, org) = post(&api, ADMIN, None, "/v1/orgs", "o-1", new_org.clone()).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, false), "{org}");
    let org_secret = org["key"]["secret"].as_str().expect("secret").to_owned();
    let (status, replayed, again) = post(&api, ADMIN, None, "/v1/orgs", "o-1", new_org).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, true), "{again}");
    assert_eq!(
        again["org"]["id"], org["org"]["id"],
        "the same org, not a second one"
    );
    assert_eq!(again["key"]["id"], org["key"]["id"]);
    assert_eq!(again["key"]["secret"], Value::Null, "{again}");
    assert_eq!(again["key"]["secret_redacted"], true, "{again}");

    let new_key = json!({ "name": "ci", "kind": "org" });
    let (status, replayed, key) = post(
        &api,
        &org_secret,
        None,
        "/v1/api-keys",
        "k-1",
        new_key.clone(),
    )
    .await;
    assert_eq!((status, replayed), (StatusCode::CREATED, false), "{key}");
    let key_secret = key["secret"].as_str().expect("secret").to_owned();
    let (status, replayed, again) =
        post(&api, &org_secret, None, "/v1/api-keys", "k-1", new_key).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, true), "{again}");
    assert_eq!(again["id"], key["id"], "the same key, not a second one");
    assert_eq!(again["secret"], Value::Null, "{again}");
    assert_eq!(again["secret_redacted"], true, "{again}");
    for secret in [&org_secret, &key_secret] {
        assert!(!again.to_string().contains(secret.as_str()));
    }

    let bodies = stored_bodies(&database_url).await;
    assert_eq!(bodies.len(), 2, "both responses are kept: {bodies:?}");
    for body in &bodies {
        assert!(
            !body.contains(&org_secret) && !body.contains(&key_secret),
            "a secret is stored in plaintext: {body}"
        );
        assert!(body.contains("secret_redacted"), "{body}");
    }
    api.stop().await;
}
