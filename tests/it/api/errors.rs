//! Every error path answers problem+json with the right status, and every response
//! carries x-request-id.

use std::io::Write;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::{agent_dir, package_json, TestApi, ADMIN};

fn assert_problem(status: StatusCode, body: &Value, expected: StatusCode) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["status"], expected.as_u16(), "{body}");
    assert!(
        body["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("https://")),
        "{body}"
    );
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
}

#[tokio::test]
async fn malformed_bodies_and_wrong_types_are_4xx_problems() {
    let api = TestApi::start().await;
    let (org_key, _app, key) = api.tenant().await;
    api.deploy(&key, "hello").await;
    let url = format!("{}/v1/agents/atoll/hello/runs", api.base);

    let r = api
        .http
        .post(&url)
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert!(r.headers().contains_key("x-request-id"));
    let (s, b) = super::read(r).await;
    assert_problem(s, &b, StatusCode::BAD_REQUEST);

    let r = api
        .http
        .post(&url)
        .bearer_auth(&key)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .expect("send");
    let (s, b) = super::read(r).await;
    assert_problem(s, &b, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let (s, b) = api
        .call(
            Method::POST,
            "/v1/agents/atoll/hello/runs",
            &key,
            Some(json!({ "input": {}, "surprise": 1 })),
        )
        .await;
    assert_problem(s, &b, StatusCode::BAD_REQUEST);
    assert!(
        b["detail"].as_str().unwrap_or("").contains("surprise"),
        "{b}"
    );

    let (s, b) = api
        .call(
            Method::POST,
            "/v1/apps",
            &org_key,
            Some(json!({ "name": 5 })),
        )
        .await;
    assert_problem(s, &b, StatusCode::BAD_REQUEST);

    // Schema-invalid input: 422 and no run created.
    let (s, b) = api
        .call(
            Method::POST,
            "/v1/agents/atoll/hello/runs",
            &key,
            Some(json!({ "input": { "name": 5 } })),
        )
        .await;
    assert_problem(s, &b, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, runs) = api.call(Method::GET, "/v1/runs", &key, None).await;
    assert_eq!(runs["data"], json!([]));

    // Oversize body.
    let big = "x".repeat(7 * 1024 * 1024);
    let r = api
        .http
        .put(format!("{}/v1/agents/atoll/hello/versions/9.9.9", api.base))
        .bearer_auth(&key)
        .header("content-type", "application/gzip")
        .body(big)
        .send()
        .await
        .expect("send");
    let (s, b) = super::read(r).await;
    assert_problem(s, &b, StatusCode::PAYLOAD_TOO_LARGE);
    api.stop().await;
}

#[tokio::test]
async fn bad_packages_are_422_naming_the_file() {
    let api = TestApi::start().await;
    let (_org, _app, key) = api.tenant().await;
    // A broken archive.
    let r = api
        .http
        .put(format!("{}/v1/agents/t/x/versions/1.0.0", api.base))
        .bearer_auth(&key)
        .header("content-type", "application/gzip")
        .body(vec![0x1f, 0x8b, 0, 1, 2, 3])
        .send()
        .await
        .expect("send");
    let (s, b) = super::read(r).await;
    assert_problem(s, &b, StatusCode::UNPROCESSABLE_ENTITY);
    // A bare import.
    let (s, b) = api
        .call(Method::PUT, "/v1/agents/t/x/versions/1.0.0", &key, Some(json!({ "manifest": { "name": "@t/x", "version": "1.0.0" }, "files": { "main.js": "import _ from 'lodash';\nexport default async () => 1;" } })))
        .await;
    assert_problem(s, &b, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(b["file"], "main.js", "{b}");
    // A schema that does not compile.
    let (s, b) = api
        .call(Method::PUT, "/v1/agents/t/x/versions/1.0.0", &key, Some(json!({ "manifest": { "name": "@t/x", "version": "1.0.0", "input": { "type": 12 } }, "files": { "main.js": "export default async () => 1;" } })))
        .await;
    assert_problem(s, &b, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(b["file"], "agent.json", "{b}");
    // Path and manifest disagree.
    let (manifest, files) = package_json(&agent_dir("hello"));
    let (s, b) = api
        .call(
            Method::PUT,
            "/v1/agents/atoll/other/versions/1.0.0",
            &key,
            Some(json!({ "manifest": manifest, "files": files })),
        )
        .await;
    assert_problem(s, &b, StatusCode::UNPROCESSABLE_ENTITY);
    // A real gzip archive works; the same version with other content is 409.
    let tarball = {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for (name, text) in [
            ("agent.json", r#"{"name":"@t/y","version":"1.0.0"}"#),
            ("main.js", "export default async () => 'tar';"),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(text.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, name, text.as_bytes())
                .expect("append");
        }
        builder.into_inner().expect("tar").finish().expect("gzip")
    };
    let r = api
        .http
        .put(format!("{}/v1/agents/t/y/versions/1.0.0", api.base))
        .bearer_auth(&key)
        .header("content-type", "application/gzip")
        .body(tarball)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::CREATED);
    let (s, b) = api
        .call(Method::PUT, "/v1/agents/t/y/versions/1.0.0", &key, Some(json!({ "manifest": { "name": "@t/y", "version": "1.0.0" }, "files": { "main.js": "export default async () => 'changed';" } })))
        .await;
    assert_problem(s, &b, StatusCode::CONFLICT);
    // A zip works too.
    let zipped = {
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default();
        writer.start_file("agent.json", options).expect("zip");
        writer
            .write_all(br#"{"name":"@t/z","version":"1.0.0"}"#)
            .expect("zip");
        writer.start_file("main.js", options).expect("zip");
        writer
            .write_all(b"export default async () => 'zip';")
            .expect("zip");
        writer.finish().expect("zip").into_inner()
    };
    let r = api
        .http
        .put(format!("{}/v1/agents/t/z/versions/1.0.0", api.base))
        .bearer_auth(&key)
        .header("content-type", "application/zip")
        .body(zipped)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::CREATED);
    let (s, run) = api
        .call(
            Method::POST,
            "/v1/agents/t/z/runs?wait=10",
            &key,
            Some(json!({})),
        )
        .await;
    assert_eq!(
        (s, run["output"].clone()),
        (StatusCode::OK, json!("zip")),
        "{run}"
    );
    api.stop().await;
}

#[tokio::test]
async fn keys_scopes_and_unknowns() {
    let api = TestApi::start().await;
    let (org_key, app_id, key) = api.tenant().await;
    let (s, b) = api.call(Method::GET, "/v1/runs", "atl_wrong", None).await;
    assert_problem(s, &b, StatusCode::UNAUTHORIZED);
    let r = api
        .http
        .get(format!("{}/v1/runs", api.base))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // A read-only key cannot start runs.
    let (s, ro) = api
        .call(
            Method::POST,
            "/v1/api-keys",
            &org_key,
            Some(json!({ "name": "ro", "kind": "app", "app_id": app_id, "scopes": ["runs:read"] })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{ro}");
    let ro = ro["secret"].as_str().expect("secret").to_owned();
    api.deploy(&key, "hello").await;
    let (s, b) = api
        .call(
            Method::POST,
            "/v1/agents/atoll/hello/runs",
            &ro,
            Some(json!({ "input": { "name": "x" } })),
        )
        .await;
    assert_problem(s, &b, StatusCode::FORBIDDEN);
    let (s, _) = api.call(Method::GET, "/v1/runs", &ro, None).await;
    assert_eq!(s, StatusCode::OK);
    // Unknown agent and version.
    let (s, b) = api
        .call(
            Method::POST,
            "/v1/agents/nope/nope/runs",
            &key,
            Some(json!({})),
        )
        .await;
    assert_problem(s, &b, StatusCode::NOT_FOUND);
    let (s, b) = api
        .call(
            Method::POST,
            "/v1/agents/atoll/hello/runs",
            &key,
            Some(json!({ "input": { "name": "x" }, "version": "9.9.9" })),
        )
        .await;
    assert_problem(s, &b, StatusCode::NOT_FOUND);
    // Only the admin key creates orgs; a revoked key stops working.
    let (s, b) = api
        .call(
            Method::POST,
            "/v1/orgs",
            &org_key,
            Some(json!({ "name": "x" })),
        )
        .await;
    assert_problem(s, &b, StatusCode::FORBIDDEN);
    let (_, keys) = api.call(Method::GET, "/v1/api-keys", &org_key, None).await;
    assert!(
        keys["data"]
            .as_array()
            .is_some_and(|k| k.iter().all(|k| k.get("secret").is_none())),
        "secrets are never listed"
    );
    let ro_id = keys["data"]
        .as_array()
        .and_then(|k| k.iter().find(|k| k["name"] == "ro"))
        .and_then(|k| k["id"].as_str())
        .expect("ro id")
        .to_owned();
    let (s, _) = api
        .call(
            Method::DELETE,
            &format!("/v1/api-keys/{ro_id}"),
            &org_key,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = api.call(Method::GET, "/v1/runs", &ro, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Audit trail of the state changes.
    let (s, audit) = api.call(Method::GET, "/v1/audit", &org_key, None).await;
    assert_eq!(s, StatusCode::OK);
    let actions: Vec<&str> = audit["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in [
        "app.create",
        "api_key.create",
        "api_key.revoke",
        "agent_version.create",
    ] {
        assert!(
            actions.contains(&action),
            "{action} not audited: {actions:?}"
        );
    }
    let _ = ADMIN;
    api.stop().await;
}

#[tokio::test]
async fn rate_limits_answer_429_with_headers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = super::args_for(dir.path()).await;
    args.rate_per_minute = 5;
    let api = TestApi::start_with(args, dir).await;
    let (_org, _app, key) = api.tenant().await;
    let mut limited = None;
    for _ in 0..10 {
        let r = api
            .req(Method::GET, "/v1/runs", &key)
            .send()
            .await
            .expect("send");
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(r);
            break;
        }
        assert!(r.headers().contains_key("ratelimit-remaining"));
    }
    let r = limited.expect("the 6th request in a minute is refused");
    for h in [
        "retry-after",
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
    ] {
        assert!(r.headers().contains_key(h), "{h} missing");
    }
    assert_eq!(r.headers()["ratelimit-remaining"], "0");
    let (s, b) = super::read(r).await;
    assert_problem(s, &b, StatusCode::TOO_MANY_REQUESTS);
    api.stop().await;
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems_too() {
    let api = TestApi::start().await;
    let (s, b) = api
        .call(Method::GET, "/v1/nothing-here", "atl_x", None)
        .await;
    assert_problem(s, &b, StatusCode::NOT_FOUND);
    let (s, b) = api.call(Method::PATCH, "/v1/runs", "atl_x", None).await;
    assert_problem(s, &b, StatusCode::METHOD_NOT_ALLOWED);
    api.stop().await;
}
