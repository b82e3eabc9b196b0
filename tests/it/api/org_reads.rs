//! Org keys read their apps' runs, events and usage with `?app_id=`; key kinds are
//! inferred from `app_id`. Another org's app stays invisible (404), and an app key cannot
//! reach a sibling app by naming it.

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::{wait_final, TestApi};

#[tokio::test]
async fn org_keys_read_their_apps_runs_events_and_usage() {
    let api = TestApi::start().await;
    let (org_key, app_id, app_key) = api.tenant().await;
    let (_other_org_key, other_app, _other_app_key) = api.tenant().await;
    api.deploy(&app_key, "hello").await;
    let (status, run) = api
        .call(
            Method::POST,
            "/v1/agents/atoll/hello/runs",
            &app_key,
            Some(json!({ "input": { "name": "Org" } })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{run}");
    let run_id = run["id"].as_str().expect("id").to_owned();
    assert_eq!(
        wait_final(&api, &app_key, &run_id).await["status"],
        "succeeded"
    );

    // The org key names the app it reads.
    let (status, list) = api
        .call(
            Method::GET,
            &format!("/v1/runs?app_id={app_id}"),
            &org_key,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["data"][0]["id"], run_id.as_str());
    let (status, one) = api
        .call(
            Method::GET,
            &format!("/v1/runs/{run_id}?app_id={app_id}"),
            &org_key,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["output"]["greeting"], "Hello, Org!");
    let events = api
        .req(
            Method::GET,
            &format!("/v1/runs/{run_id}/events?app_id={app_id}"),
            &org_key,
        )
        .send()
        .await
        .expect("events");
    assert_eq!(events.status(), StatusCode::OK);
    let text = events.text().await.expect("body");
    assert!(text.contains("event: end"), "{text}");
    let (status, usage) = api
        .call(
            Method::GET,
            &format!("/v1/usage?app_id={app_id}"),
            &org_key,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{usage}");
    assert_eq!(usage["app_id"], app_id.as_str());
    assert_eq!(usage["usage"]["runs"], 1, "{usage}");

    // Without app_id an org key is told what to add; another org's app does not exist.
    let (status, err) = api.call(Method::GET, "/v1/runs", &org_key, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert!(
        err["detail"].as_str().unwrap_or("").contains("app_id"),
        "{err}"
    );
    // A control character in app_id is a bad request, not a lookup.
    let (status, err) = api
        .call(Method::GET, "/v1/runs?app_id=app_%00x", &org_key, None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    for path in [
        format!("/v1/runs?app_id={other_app}"),
        format!("/v1/runs/{run_id}?app_id={other_app}"),
        format!("/v1/usage?app_id={other_app}"),
    ] {
        let (status, body) = api.call(Method::GET, &path, &org_key, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }

    // An app key may name its own app, never another.
    let (status, _) = api
        .call(
            Method::GET,
            &format!("/v1/runs?app_id={app_id}"),
            &app_key,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = api
        .call(
            Method::GET,
            &format!("/v1/runs?app_id={other_app}"),
            &app_key,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    api.stop().await;
}

#[tokio::test]
async fn key_kind_follows_app_id() {
    let api = TestApi::start().await;
    let (org_key, app_id, app_key) = api.tenant().await;
    // (caller, body, expected status, expected kind, expected app_id)
    let cases = [
        (
            &org_key,
            json!({ "name": "for-app", "app_id": app_id }),
            StatusCode::CREATED,
            Some("app"),
            Some(&app_id),
        ),
        // An org key is never made by leaving things out (a template's empty app_id).
        (
            &org_key,
            json!({ "name": "for-org" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            None,
        ),
        (
            &org_key,
            json!({ "name": "for-org", "app_id": null }),
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            None,
        ),
        (
            &org_key,
            json!({ "name": "for-org", "kind": "org" }),
            StatusCode::CREATED,
            Some("org"),
            None,
        ),
        // An app key creates keys for its own app only.
        (
            &app_key,
            json!({ "name": "sibling" }),
            StatusCode::CREATED,
            Some("app"),
            Some(&app_id),
        ),
    ];
    for (caller, body, status, kind, app) in cases {
        let (got, key) = api
            .call(Method::POST, "/v1/api-keys", caller, Some(body.clone()))
            .await;
        assert_eq!(got, status, "{body}: {key}");
        if let Some(kind) = kind {
            assert_eq!(key["kind"], kind, "{body}: {key}");
            assert_eq!(
                key["app_id"].as_str(),
                app.map(String::as_str),
                "{body}: {key}"
            );
        }
    }
    api.stop().await;
}
