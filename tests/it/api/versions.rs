//! A version after upload: deprecated versions leave `latest` (pinned runs still work),
//! and a version is deleted only while no run that has not ended and no trigger uses it.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::TestApi;

/// Uploads `@t/lifecycle@{version}`: it answers its version, or waits for a signal when
/// asked to.
async fn upload(api: &TestApi, key: &str, version: &str) {
    let main = format!(
        "export default async (input, ctx) => {{\n  if (input.wait) await ctx.waitFor('go');\n  return '{version}';\n}};"
    );
    let (status, body) = api
        .call(
            Method::PUT,
            &format!("/v1/agents/t/lifecycle/versions/{version}"),
            key,
            Some(json!({
                "manifest": { "name": "@t/lifecycle", "version": version },
                "files": { "main.js": main },
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn latest(api: &TestApi, key: &str) -> Value {
    let (status, agent) = api
        .call(Method::GET, "/v1/agents/t/lifecycle", key, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{agent}");
    agent["latest_version"].clone()
}

async fn run(api: &TestApi, key: &str, body: Value) -> Value {
    let (status, run) = api
        .call(
            Method::POST,
            "/v1/agents/t/lifecycle/runs?wait=20",
            key,
            Some(body),
        )
        .await;
    assert!(status.is_success(), "{status} {run}");
    run
}

async fn deprecate(
    api: &TestApi,
    key: &str,
    version: &str,
    deprecated: bool,
) -> (StatusCode, Value) {
    api.call(
        Method::PATCH,
        &format!("/v1/agents/t/lifecycle/versions/{version}"),
        key,
        Some(json!({ "deprecated": deprecated })),
    )
    .await
}

async fn delete(api: &TestApi, key: &str, version: &str) -> (StatusCode, Value) {
    api.call(
        Method::DELETE,
        &format!("/v1/agents/t/lifecycle/versions/{version}"),
        key,
        None,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deprecated_version_leaves_latest_and_pinned_runs_still_work() {
    let api = TestApi::start().await;
    let (_org, _app, key) = api.tenant().await;
    upload(&api, &key, "1.0.0").await;
    upload(&api, &key, "1.1.0").await;
    assert_eq!(latest(&api, &key).await, "1.1.0");

    let (status, v) = deprecate(&api, &key, "1.1.0", true).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(v["deprecated_at"].is_i64(), "{v}");
    assert_eq!(latest(&api, &key).await, "1.0.0");
    let unpinned = run(&api, &key, json!({ "input": {} })).await;
    assert_eq!(unpinned["output"], "1.0.0", "{unpinned}");
    let pinned = run(&api, &key, json!({ "input": {}, "version": "1.1.0" })).await;
    assert_eq!(pinned["output"], "1.1.0", "{pinned}");
    let (_, versions) = api
        .call(Method::GET, "/v1/agents/t/lifecycle/versions", &key, None)
        .await;
    let listed: Vec<(&Value, bool)> = versions["data"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| (&v["version"], v["deprecated_at"].is_i64()))
        .collect();
    assert!(listed.contains(&(&json!("1.1.0"), true)), "{versions}");
    assert!(listed.contains(&(&json!("1.0.0"), false)), "{versions}");

    // Back again.
    let (status, v) = deprecate(&api, &key, "1.1.0", false).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(v["deprecated_at"].is_null(), "{v}");
    assert_eq!(latest(&api, &key).await, "1.1.0");
    // Every version deprecated: nothing is latest, a run needs a pinned version.
    deprecate(&api, &key, "1.0.0", true).await;
    deprecate(&api, &key, "1.1.0", true).await;
    assert_eq!(latest(&api, &key).await, Value::Null);
    let (status, _) = api
        .call(
            Method::POST,
            "/v1/agents/t/lifecycle/runs",
            &key,
            Some(json!({ "input": {} })),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Not there: 404; bad body: 400; nothing recorded for either.
    let (status, _) = deprecate(&api, &key, "9.9.9", true).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api
        .call(
            Method::PATCH,
            "/v1/agents/t/lifecycle/versions/1.0.0",
            &key,
            Some(json!({ "deprecated": true, "why": "x" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, audit) = api.call(Method::GET, "/v1/audit", &key, None).await;
    let deprecations = audit["data"]
        .as_array()
        .expect("audit")
        .iter()
        .filter(|e| e["action"] == "agent_version.deprecate")
        .count();
    assert_eq!(deprecations, 3, "{audit}");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_in_use_is_not_deleted_and_latest_moves_back_when_it_goes() {
    let api = TestApi::start().await;
    let (_org, _app, key) = api.tenant().await;
    upload(&api, &key, "1.0.0").await;
    upload(&api, &key, "2.0.0").await;
    // A run of 2.0.0 waits (it would replay 2.0.0 when it resumes): 2.0.0 stays.
    let (status, waiting) = api
        .call(
            Method::POST,
            "/v1/agents/t/lifecycle/runs",
            &key,
            Some(json!({ "input": { "wait": true } })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{waiting}");
    let id = waiting["id"].as_str().expect("run id").to_owned();
    for _ in 0..200 {
        let (_, r) = api
            .call(Method::GET, &format!("/v1/runs/{id}"), &key, None)
            .await;
        if r["status"] == "waiting" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (status, body) = delete(&api, &key, "2.0.0").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    // A trigger pinned to 1.0.0 keeps 1.0.0.
    let (status, trigger) = api
        .call(
            Method::POST,
            "/v1/agents/t/lifecycle/triggers",
            &key,
            Some(
                json!({ "type": "cron", "schedule": "0 3 * * *", "version": "1.0.0", "input": {} }),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{trigger}");
    let (status, body) = delete(&api, &key, "1.0.0").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains(trigger["id"].as_str().unwrap_or("?"))),
        "{body}"
    );

    // Once the run has ended, 2.0.0 goes and latest is 1.0.0 again.
    let (status, _) = api
        .call(Method::POST, &format!("/v1/runs/{id}/cancel"), &key, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = delete(&api, &key, "2.0.0").await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(latest(&api, &key).await, "1.0.0");
    let (status, _) = api
        .call(
            Method::GET,
            "/v1/agents/t/lifecycle/versions/2.0.0",
            &key,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let after = run(&api, &key, json!({ "input": {} })).await;
    assert_eq!(after["output"], "1.0.0", "{after}");
    let (status, _) = delete(&api, &key, "2.0.0").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The ended run's record still names the version it ran.
    let (_, ended) = api
        .call(Method::GET, &format!("/v1/runs/{id}"), &key, None)
        .await;
    assert_eq!(ended["version"], "2.0.0");
    // A deleted number is never given to other content (caches keyed by agent@version
    // would take it for the deleted code): 409, and a new number goes in.
    let (status, body) = api
        .call(
            Method::PUT,
            "/v1/agents/t/lifecycle/versions/2.0.0",
            &key,
            Some(json!({
                "manifest": { "name": "@t/lifecycle", "version": "2.0.0" },
                "files": { "main.js": "export default async () => 'other';" },
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("never reused")),
        "{body}"
    );
    upload(&api, &key, "2.0.1").await;
    assert_eq!(latest(&api, &key).await, "2.0.1");
    let (_, versions) = api
        .call(Method::GET, "/v1/agents/t/lifecycle/versions", &key, None)
        .await;
    assert!(
        versions["data"]
            .as_array()
            .expect("versions")
            .iter()
            .all(|v| v["version"] != "2.0.0"),
        "a deleted version is not listed: {versions}"
    );
    // The audit has the delete that happened, not the refused ones.
    let (_, audit) = api.call(Method::GET, "/v1/audit", &key, None).await;
    let deletes = audit["data"]
        .as_array()
        .expect("audit")
        .iter()
        .filter(|e| e["action"] == "agent_version.delete")
        .count();
    assert_eq!(deletes, 1, "{audit}");
    api.stop().await;
}

/// Another tenant's key, an impersonating key and bad input change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn others_cannot_deprecate_or_delete_a_version() {
    let api = TestApi::start().await;
    let (_org, _app, key) = api.tenant().await;
    let (_other_org, _other_app, other_key) = api.tenant().await;
    upload(&api, &key, "1.0.0").await;
    let (status, _) = deprecate(&api, &other_key, "1.0.0", true).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another tenant's version");
    let (status, _) = delete(&api, &other_key, "1.0.0").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another tenant's version");
    // Acting for an end-user: the app's versions are not theirs to change.
    let acting = api
        .req(
            Method::DELETE,
            "/v1/agents/t/lifecycle/versions/1.0.0",
            &key,
        )
        .header("x-atoll-end-user", "mallory")
        .send()
        .await
        .expect("send");
    assert_eq!(acting.status(), StatusCode::FORBIDDEN);
    // A control character in the version, a body that is not the one documented.
    let (status, _) = delete(&api, &key, "1.0.0%00").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = api
        .call(
            Method::PATCH,
            "/v1/agents/t/lifecycle/versions/1.0.0",
            &key,
            Some(json!({ "deprecated": "yes" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Nothing changed: the version is there, latest and not deprecated.
    assert_eq!(latest(&api, &key).await, "1.0.0");
    let (_, v) = api
        .call(
            Method::GET,
            "/v1/agents/t/lifecycle/versions/1.0.0",
            &key,
            None,
        )
        .await;
    assert!(v["deprecated_at"].is_null(), "{v}");
    api.stop().await;
}
