//! API hygiene (issue 12, item 7): query-string, path and header-size errors are
//! problem+json; control characters in identifiers, names, keys and filters are 400 on
//! both stores; `?agent=` takes `@scope/name` and `scope/name`; a malformed admin key
//! stops the server from starting.

use std::process::{Command, Stdio};

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};

use super::{TestApi, ADMIN};

/// Sends `req` and asserts a problem+json answer with `expected` status.
async fn expect_problem(req: RequestBuilder, expected: StatusCode, what: &str) -> Value {
    let response = req.send().await.expect("send");
    let content_type = super::content_type(&response);
    let has_request_id = response.headers().contains_key("x-request-id");
    let (status, body) = super::read(response).await;
    assert_eq!(status, expected, "{what}: {body}");
    assert_eq!(content_type, "application/problem+json", "{what}: {body}");
    assert!(has_request_id, "{what}: no x-request-id");
    assert_eq!(body["status"], expected.as_u16(), "{what}: {body}");
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{what}: {body}"
    );
    body
}

#[tokio::test]
async fn query_path_and_content_type_errors_are_problems() {
    let api = TestApi::start().await;
    let (_org, _app, key) = api.tenant().await;
    let get = |path: &str| api.req(Method::GET, path, &key);

    expect_problem(
        get("/v1/runs?limit=many"),
        StatusCode::BAD_REQUEST,
        "bad limit",
    )
    .await;
    let b = expect_problem(
        get("/v1/runs?colour=red"),
        StatusCode::BAD_REQUEST,
        "unknown",
    )
    .await;
    assert!(b["detail"].as_str().unwrap_or("").contains("colour"), "{b}");
    expect_problem(
        get("/v1/runs/run_%FF"),
        StatusCode::BAD_REQUEST,
        "not UTF-8",
    )
    .await;
    expect_problem(
        get("/v1/memory/app?limit=-1"),
        StatusCode::BAD_REQUEST,
        "negative limit",
    )
    .await;
    expect_problem(
        api.req(Method::POST, "/v1/agents/atoll/hello/runs?wait=soon", &key)
            .json(&json!({ "input": {} })),
        StatusCode::BAD_REQUEST,
        "bad wait",
    )
    .await;
    expect_problem(
        api.req(Method::PUT, "/v1/agents/atoll/hello/versions/1.0.0", &key)
            .header("content-type", "text/plain")
            .body("hello"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "upload as text",
    )
    .await;
    expect_problem(
        api.req(Method::PUT, "/v1/memory/app/k", &key)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("value=1"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "form body",
    )
    .await;
    api.stop().await;
}

#[tokio::test]
async fn oversized_headers_are_431_problems() {
    let api = TestApi::start().await;
    let (_org, _app, key) = api.tenant().await;
    let big = "x".repeat(100 * 1024);
    expect_problem(
        api.req(Method::GET, "/v1/runs", &key)
            .header("x-padding", big),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "100 KiB header",
    )
    .await;
    let many = (0..40).fold(api.req(Method::GET, "/v1/runs", &key), |req, i| {
        req.header(format!("x-pad-{i}"), "y".repeat(2048))
    });
    expect_problem(
        many,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "80 KiB over 40 headers",
    )
    .await;
    // Under the limit the same request is served.
    let (s, b) = super::read(
        api.req(Method::GET, "/v1/runs", &key)
            .header("x-padding", "x".repeat(8 * 1024))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    api.stop().await;
}

#[tokio::test]
async fn control_characters_are_400_everywhere() {
    let api = TestApi::start().await;
    let (org_key, _app, key) = api.tenant().await;
    let (agent, _) = api.deploy(&key, "hello").await;
    let k = key.as_str();
    let cases: Vec<(&str, RequestBuilder)> = vec![
        ("run id", api.req(Method::GET, "/v1/runs/run_%00x", k)),
        (
            "run cancel",
            api.req(Method::POST, "/v1/runs/run_%01x/cancel", k),
        ),
        (
            "run events",
            api.req(Method::GET, "/v1/runs/run_%00/events", k),
        ),
        (
            "?agent=",
            api.req(Method::GET, "/v1/runs?agent=%40atoll%00/hello", k),
        ),
        (
            "?status=",
            api.req(Method::GET, "/v1/runs?status=queued%00", k),
        ),
        (
            "?end_user=",
            api.req(Method::GET, "/v1/runs?end_user=al%00ice", k),
        ),
        (
            "cursor",
            api.req(Method::GET, "/v1/runs?cursor=MTIzOnJ1bgA", k),
        ),
        (
            "memory key",
            api.req(Method::GET, "/v1/memory/app/k%00ey", k),
        ),
        (
            "memory key put",
            api.req(Method::PUT, "/v1/memory/app/k%7Fey", k)
                .json(&json!({ "value": 1 })),
        ),
        (
            "memory ?end_user=",
            api.req(Method::GET, "/v1/memory/end_user/k?end_user=a%00", k),
        ),
        (
            "memory ?prefix=",
            api.req(Method::GET, "/v1/memory/app?prefix=%00", k),
        ),
        (
            "connection name",
            api.req(Method::PUT, "/v1/connections/gh%00", k)
                .json(&json!({ "kind": "bearer", "token": "t" })),
        ),
        ("tool name", api.req(Method::GET, "/v1/tools/t%00ol", k)),
        (
            "agent scope",
            api.req(Method::GET, "/v1/agents/atoll%00/hello", k),
        ),
        (
            "upload version",
            api.req(Method::PUT, "/v1/agents/atoll/hello/versions/1.0.0%00", k)
                .json(&json!({ "manifest": {}, "files": {} })),
        ),
        (
            "run end_user",
            api.req(Method::POST, &format!("/v1/agents/{agent}/runs"), k)
                .json(&json!({ "input": {}, "end_user": "al\u{0}ice" })),
        ),
        (
            "run version",
            api.req(Method::POST, &format!("/v1/agents/{agent}/runs"), k)
                .json(&json!({ "input": {}, "version": "1\u{0}" })),
        ),
        (
            "x-atoll-end-user",
            api.req(Method::GET, "/v1/runs", k)
                .header("x-atoll-end-user", "al\tice"),
        ),
        ("app id", api.req(Method::GET, "/v1/apps/app_%00", &org_key)),
        (
            "key id",
            api.req(Method::DELETE, "/v1/api-keys/key_%00", &org_key),
        ),
        ("org id", api.req(Method::GET, "/v1/orgs/org_%00", ADMIN)),
        (
            "app name",
            api.req(Method::POST, "/v1/apps", &org_key)
                .json(&json!({ "name": "ma\u{0}in" })),
        ),
        (
            "key name",
            api.req(Method::POST, "/v1/api-keys", &org_key)
                .json(&json!({ "name": "k\u{1b}[31m", "kind": "org" })),
        ),
        (
            "key app_id",
            api.req(Method::POST, "/v1/api-keys", &org_key)
                .json(&json!({ "name": "k", "kind": "app", "app_id": "app_\u{0}" })),
        ),
        (
            "org name",
            api.req(Method::POST, "/v1/orgs", ADMIN)
                .json(&json!({ "name": "ac\u{0}me" })),
        ),
    ];
    for (what, req) in cases {
        let b = expect_problem(req, StatusCode::BAD_REQUEST, what).await;
        // A cursor is opaque: one holding a NUL is simply not one the server gave out.
        let expected = if what == "cursor" {
            "cursor"
        } else {
            "control character"
        };
        assert!(
            b["detail"].as_str().unwrap_or("").contains(expected),
            "{what}: {b}"
        );
    }
    // Nothing was created on the way.
    let (s, apps) = api.call(Method::GET, "/v1/apps", &org_key, None).await;
    assert_eq!(s, StatusCode::OK, "{apps}");
    let names: Vec<&str> = apps["data"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["main"], "{apps}");
    let (s, keys) = api.call(Method::GET, "/v1/api-keys", &org_key, None).await;
    assert_eq!(s, StatusCode::OK, "{keys}");
    assert!(
        keys["data"]
            .as_array()
            .is_some_and(|a| a.iter().all(|x| x["name"] != "k\u{1b}[31m")),
        "{keys}"
    );
    // Printable text outside ASCII still works.
    let (s, b) = api
        .call(
            Method::PUT,
            "/v1/memory/app/caf%C3%A9%20cr%C3%A8me",
            k,
            Some(json!({ "value": 1 })),
        )
        .await;
    assert!(s.is_success(), "{s} {b}");
    api.stop().await;
}

#[tokio::test]
async fn agent_filter_takes_both_spellings() {
    let api = TestApi::start().await;
    let (_org, _app, key) = api.tenant().await;
    let (agent, _) = api.deploy(&key, "hello").await;
    let (s, run) = api
        .call(
            Method::POST,
            &format!("/v1/agents/{agent}/runs"),
            &key,
            Some(json!({ "input": { "name": "x" } })),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{run}");
    let id = run["id"].as_str().expect("id").to_owned();
    let ids = |body: &Value| -> Vec<String> {
        body["data"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    for filter in [format!("%40{agent}"), agent.clone()] {
        let (s, b) = api
            .call(Method::GET, &format!("/v1/runs?agent={filter}"), &key, None)
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(ids(&b), std::slice::from_ref(&id), "?agent={filter}: {b}");
    }
    let (s, b) = api
        .call(Method::GET, "/v1/runs?agent=atoll/other", &key, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(ids(&b).is_empty(), "{b}");
    super::wait_final(&api, &key, &id).await;
    api.stop().await;
}

#[tokio::test]
async fn malformed_admin_keys_refuse_to_start() {
    for bad in [
        "atl_short",
        "not_a_key_but_long_enough_0123456789",
        "atl_has space in it 0123456789abcdef",
        "",
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut args = super::args_for(dir.path()).await;
        args.admin_key = Some(bad.into());
        let err = match atoll::server::start(args).await {
            Ok(server) => {
                let _ = server.stop().await;
                panic!("the server started with admin key {bad:?}");
            }
            Err(e) => format!("{e:#}"),
        };
        assert!(
            err.contains("ATOLL_ADMIN_KEY") && err.contains("atl_"),
            "{bad:?}: {err}"
        );
    }

    // The real binary exits non-zero and says what to do, before opening any storage.
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let out = Command::new(env!("CARGO_BIN_EXE_atoll"))
        .arg("serve")
        .env("ATOLL_ADMIN_KEY", "atl_short")
        .env("ATOLL_LISTEN", "127.0.0.1:0")
        .env("ATOLL_DATA_DIR", &data)
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .stdin(Stdio::null())
        .output()
        .expect("run atoll serve");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "atoll serve exited 0: {stderr}");
    assert!(
        stderr.contains("ATOLL_ADMIN_KEY") && stderr.contains("at least 24"),
        "{stderr}"
    );
    assert!(
        !data.exists(),
        "storage was opened before the key was checked"
    );
}
