//! Uploads are parsed in a sandbox process: a module that does not parse is refused with
//! 422 naming the file, hostile nesting included, and nothing is stored.

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::TestApi;

async fn upload(
    api: &TestApi,
    key: &str,
    version: &str,
    files: serde_json::Value,
) -> (StatusCode, serde_json::Value) {
    api.call(
        Method::PUT,
        &format!("/v1/agents/t/parsed/versions/{version}"),
        key,
        Some(json!({ "manifest": { "name": "@t/parsed", "version": version }, "files": files })),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modules_that_do_not_parse_are_refused_at_upload() {
    let api = TestApi::start().await;
    let (_org, _app, key) = api.tenant().await;
    let (status, body) = upload(
        &api,
        &key,
        "1.0.0",
        json!({ "main.js": "import { f } from './util.js';\nexport default async () => f();", "util.js": "export const f = () => {\n  return 1 +;\n};" }),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("util.js:2:"),
        "names the file and line: {body}"
    );
    // Nesting deep enough to overflow a recursive parser's stack is an error, not a crash.
    let deep = format!(
        "export default async () => {}1{};",
        "(".repeat(20_000),
        ")".repeat(20_000)
    );
    let (status, body) = upload(&api, &key, "1.0.1", json!({ "main.js": deep })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // Nothing was stored; a good version still goes in, and runs.
    let (status, _) = api
        .call(Method::GET, "/v1/agents/t/parsed", &key, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = upload(
        &api,
        &key,
        "1.0.2",
        // Checked with the package's own loader: JSON modules are fine.
        json!({
            "main.js": "import data from './data.json' with { type: 'json' };\nexport default async () => data.word;",
            "data.json": "{ \"word\": \"ok\" }",
        }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, run) = api
        .call(
            Method::POST,
            "/v1/agents/t/parsed/runs?wait=20",
            &key,
            Some(json!({})),
        )
        .await;
    assert_eq!(
        (status, &run["output"]),
        (StatusCode::OK, &json!("ok")),
        "{run}"
    );
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packages_of_many_modules_upload_and_every_module_is_parsed() {
    let api = TestApi::start().await;
    let (_org, _app, key) = api.tenant().await;
    // The sample with static, JSON and dynamic imports goes in and runs.
    let (name, _) = api.deploy(&key, "multi-module").await;
    let (status, run) = api
        .call(
            Method::POST,
            &format!("/v1/agents/{name}/runs?wait=20"),
            &key,
            Some(json!({ "input": {} })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["output"]["same_math_instance"], true, "{run}");
    // A `?wait` answer is the stored record, started_at included.
    assert!(run["started_at"].is_i64(), "{run}");
    // The same content again answers the stored version, unchanged.
    let (_, stored) = api
        .call(
            Method::GET,
            &format!("/v1/agents/{name}/versions/1.0.0"),
            &key,
            None,
        )
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let (manifest, files) = super::package_json(&super::agent_dir("multi-module"));
    let (status, again) = api
        .call(
            Method::PUT,
            &format!("/v1/agents/{name}/versions/1.0.0"),
            &key,
            Some(json!({ "manifest": manifest, "files": files })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["created_at"], stored["created_at"], "{again}");
    assert_eq!(again["digest"], stored["digest"], "{again}");
    // A module nothing imports is parsed too: its syntax error is named.
    let (status, body) = upload(
        &api,
        &key,
        "2.0.0",
        json!({
            "main.js": "import { f } from './lib/ok.js';\nexport default async () => f();",
            "lib/ok.js": "export const f = () => 1;",
            "lib/unused.mjs": "export const g = () => {\n\n  return 2 +;\n};",
        }),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("lib/unused.mjs:3:"), "{body}");
    api.stop().await;
}
