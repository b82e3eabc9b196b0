//! The OpenAPI document against independent checkers: `openapi-spec-validator` says it
//! is valid OpenAPI 3.1, and a schemathesis run (both PyPI packages, installed into a
//! virtualenv under the target dir) against a live server finds no 5xx, no undocumented
//! status and no answer that breaks its schema. Plus what the validators do not check:
//! every operation has a summary, a 2xx answer, an example, and a security requirement
//! naming its scope unless it is public.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::TestApi;

const SCHEMATHESIS: &str = "schemathesis==4.32.5";
const SPEC_VALIDATOR: &str = "openapi-spec-validator==0.9.0";

/// Operations anyone may call (no API key).
const PUBLIC: &[&str] = &[
    "/healthz",
    "/readyz",
    "/metrics",
    "/v1/openapi.json",
    "/v1/hooks/{id}",
];

/// A virtualenv with the two checkers (made once per target dir, from PyPI).
fn venv() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("venv-schemathesis");
        let ready = dir.join("ready-4.32.5");
        if !ready.exists() {
            let made = std::process::Command::new("python3")
                .args(["-m", "venv"])
                .arg(&dir)
                .status()
                .expect("python3 runs (Python 3 is needed for the OpenAPI tests)");
            assert!(made.success(), "python3 -m venv failed");
            let installed = std::process::Command::new(dir.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check"])
                .args([SCHEMATHESIS, SPEC_VALIDATOR])
                .status()
                .expect("pip runs");
            assert!(installed.success(), "pip install {SCHEMATHESIS} failed");
            std::fs::write(&ready, "").expect("mark the virtualenv ready");
        }
        dir
    })
}

async fn document(api: &TestApi) -> Value {
    let (status, doc) = api
        .call(Method::GET, "/v1/openapi.json", "none", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    doc
}

/// `$ref`s resolved, depth-bounded: does this part of the document hold an example?
fn has_example(doc: &Value, value: &Value, depth: u32) -> bool {
    if depth > 12 {
        return false;
    }
    match value {
        Value::Object(map) => {
            if map.contains_key("example") || map.contains_key("examples") {
                return true;
            }
            if let Some(target) = map.get("$ref").and_then(Value::as_str) {
                let pointer = target.trim_start_matches('#');
                return doc
                    .pointer(pointer)
                    .is_some_and(|t| has_example(doc, t, depth + 1));
            }
            map.values().any(|v| has_example(doc, v, depth + 1))
        }
        Value::Array(items) => items.iter().any(|v| has_example(doc, v, depth + 1)),
        _ => false,
    }
}

#[tokio::test]
async fn the_document_is_valid_openapi_and_every_operation_is_described() {
    let api = TestApi::start().await;
    let doc = document(&api).await;
    api.stop().await;
    assert_eq!(doc["openapi"], "3.1.0");
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("operation map") {
            operations += 1;
            let what = format!("{method} {path}");
            assert!(
                op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{what} has no summary"
            );
            let responses = op["responses"].as_object().expect("responses");
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{what} documents no success"
            );
            let public = PUBLIC.contains(&path.as_str());
            if public {
                assert!(op.get("security").is_none(), "{what} is public");
            } else {
                let security = &op["security"][0]["bearer"];
                assert!(security.is_array(), "{what} has no bearer requirement");
                assert!(
                    responses.contains_key("401") && responses.contains_key("429"),
                    "{what} lacks the shared error answers"
                );
            }
            if method == "post" && path.starts_with("/v1/") {
                let params = op["parameters"].as_array().expect("parameters");
                assert!(
                    params.iter().any(|p| p["name"] == "Idempotency-Key"),
                    "{what} does not document Idempotency-Key"
                );
            }
            if matches!(method.as_str(), "post" | "put") && path != "/v1/orgs" {
                // Bodies are typed: no operation takes "anything" without saying so.
                if let Some(body) = op.get("requestBody") {
                    assert!(body["content"].is_object(), "{what}: body without content");
                }
            }
            assert!(
                has_example(&doc, &op["requestBody"], 0)
                    || has_example(&doc, &op["parameters"], 0)
                    || responses
                        .iter()
                        .filter(|(s, _)| s.starts_with('2'))
                        .any(|(_, r)| has_example(&doc, r, 0)),
                "{what} has no example"
            );
        }
    }
    assert!(operations >= 50, "only {operations} operations documented");
    // The independent validator.
    let file = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("openapi-under-test.json");
    std::fs::write(&file, doc.to_string()).expect("write the document");
    let out = std::process::Command::new(venv().join("bin/openapi-spec-validator"))
        .arg(&file)
        .output()
        .expect("openapi-spec-validator runs");
    assert!(
        out.status.success(),
        "openapi-spec-validator refused the document:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs schemathesis with `key` against `base`; its output when it finds something.
async fn schemathesis(dir: &Path, base: &str, key: &str) -> Result<(), String> {
    let out = tokio::process::Command::new(dir.join("bin/schemathesis"))
        .args(["run", &format!("{base}/v1/openapi.json"), "--url", base])
        .args(["--header", &format!("Authorization: Bearer {key}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance",
            "--max-examples",
            "15",
            // Generous: the suite runs many servers on two cores at once.
            "--request-timeout",
            "60",
            "--no-color",
        ])
        .env("SCHEMATHESIS_HOOKS", "")
        // It keeps a cache of what it found in its working directory.
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .output()
        .await
        .map_err(|e| format!("schemathesis did not run: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_schema() {
    let dir = venv().clone();
    let api = TestApi::start().await;
    let (org_key, _app_id, app_key) = api.tenant().await;
    // Something to find: an agent, a run, memory, a tool.
    let (name, _) = api.deploy(&app_key, "hello").await;
    let (status, run) = api
        .call(
            Method::POST,
            &format!("/v1/agents/{name}/runs?wait=10"),
            &app_key,
            Some(json!({ "input": { "name": "Ada" } })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{run}");
    let (status, _) = api
        .call(
            Method::PUT,
            "/v1/memory/app/greeting",
            &app_key,
            Some(json!({ "text": "hello" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    for key in [&app_key, &org_key] {
        if let Err(found) = schemathesis(&dir, &api.base, key).await {
            panic!("schemathesis found problems:\n{found}");
        }
    }
    // The server is still healthy afterwards.
    let (status, _) = api.call(Method::GET, "/healthz", "none", None).await;
    assert_eq!(status, StatusCode::OK);
    api.stop().await;
}
