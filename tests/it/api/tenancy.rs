//! Tenant isolation: every endpoint, called with another tenant's ids, answers 404 (or
//! an empty list), never the other tenant's data.

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::{wait_final, TestApi};

#[tokio::test]
async fn every_endpoint_hides_other_tenants() {
    let api = TestApi::start().await;
    let (org_a, app_a, key_a) = api.tenant().await;
    let (org_b, app_b, key_b) = api.tenant().await;
    api.deploy(&key_a, "counter").await;
    let (_, run) = api
        .http
        .post(format!("{}/v1/agents/atoll/counter/runs?wait=10", api.base))
        .bearer_auth(&key_a)
        .header("x-atoll-end-user", "alice")
        .json(&json!({ "input": {} }))
        .send()
        .await
        .map(|r| ((), r))
        .expect("send");
    let run: serde_json::Value = run.json().await.expect("json");
    let run_a = run["id"].as_str().expect("id").to_owned();
    wait_final(&api, &key_a, &run_a).await;
    let (_, keys_a) = api.call(Method::GET, "/v1/api-keys", &org_a, None).await;
    let key_a_id = keys_a["data"][0]["id"].as_str().expect("key id").to_owned();
    let org_a_id = {
        let (_, apps) = api
            .call(Method::GET, &format!("/v1/apps/{app_a}"), &org_a, None)
            .await;
        apps["org_id"].as_str().expect("org").to_owned()
    };

    // Tenant B, with its own valid keys, aims at A's ids.
    let not_found = [
        (Method::GET, format!("/v1/orgs/{org_a_id}"), org_b.clone()),
        (Method::GET, format!("/v1/apps/{app_a}"), org_b.clone()),
        (Method::GET, format!("/v1/runs/{run_a}"), key_b.clone()),
        (
            Method::POST,
            format!("/v1/runs/{run_a}/cancel"),
            key_b.clone(),
        ),
        (
            Method::GET,
            format!("/v1/runs/{run_a}/events"),
            key_b.clone(),
        ),
        (
            Method::GET,
            "/v1/agents/atoll/counter".to_owned(),
            key_b.clone(),
        ),
        (
            Method::GET,
            "/v1/agents/atoll/counter/versions".to_owned(),
            key_b.clone(),
        ),
        (
            Method::GET,
            "/v1/agents/atoll/counter/versions/1.0.0".to_owned(),
            key_b.clone(),
        ),
        (
            Method::POST,
            "/v1/agents/atoll/counter/runs".to_owned(),
            key_b.clone(),
        ),
        (
            Method::DELETE,
            format!("/v1/api-keys/{key_a_id}"),
            org_b.clone(),
        ),
        (
            Method::GET,
            "/v1/memory/end_user/visits?end_user=alice".to_owned(),
            key_b.clone(),
        ),
        (
            Method::GET,
            "/v1/memory/app/total".to_owned(),
            key_b.clone(),
        ),
        (
            Method::DELETE,
            "/v1/memory/app/total".to_owned(),
            key_b.clone(),
        ),
    ];
    for (method, path, key) in not_found {
        let body = (method == Method::POST).then(|| json!({}));
        let (status, answer) = api.call(method.clone(), &path, &key, body).await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "{method} {path} answered {answer}"
        );
        assert!(
            !answer.to_string().contains(&run_a),
            "{method} {path} leaked a run id"
        );
    }
    // App keys are bound to their app too: B's app key cannot read A's app.
    let (status, _) = api
        .call(Method::GET, &format!("/v1/apps/{app_a}"), &key_b, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Lists are B's own, which are empty of A's data.
    for path in [
        "/v1/runs",
        "/v1/agents",
        "/v1/audit",
        "/v1/memory/app",
        "/v1/api-keys",
    ] {
        let key = if path == "/v1/api-keys" || path == "/v1/audit" {
            &org_b
        } else {
            &key_b
        };
        let (status, list) = api.call(Method::GET, path, key, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {list}");
        let text = list.to_string();
        assert!(
            !text.contains(&run_a)
                && !text.contains(&app_a)
                && !text.contains("@atoll/counter")
                && !text.contains(&key_a_id),
            "{path} leaked: {text}"
        );
    }
    let (_, apps_b) = api.call(Method::GET, "/v1/apps", &org_b, None).await;
    assert!(apps_b["data"]
        .as_array()
        .is_some_and(|a| a.len() == 1 && a[0]["id"] == app_b.as_str()));
    // A's data is intact.
    let (status, _) = api
        .call(Method::GET, &format!("/v1/runs/{run_a}"), &key_a, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    api.stop().await;
}
