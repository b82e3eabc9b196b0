//! One attempt against loopback servers: the address policy is applied at delivery time
//! (not only when the URL was saved), and a redirect is an answer, never followed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use serde_json::json;

use super::*;
use crate::broker::resolve::SystemLookup;
use crate::store::{DeliveryStatus, RunStatus, SqlStore, WebhookEvent};

const MASTER: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// A server on loopback that counts requests and answers with `answer`.
async fn server(answer: axum::response::Response) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let answer = Arc::new(std::sync::Mutex::new(Some(answer)));
    let app = axum::Router::new().route(
        "/",
        post(move || {
            let (hits, answer) = (counted.clone(), answer.clone());
            async move {
                hits.fetch_add(1, Ordering::SeqCst);
                answer
                    .lock()
                    .ok()
                    .and_then(|mut a| a.take())
                    .unwrap_or_else(|| StatusCode::OK.into_response())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/"), hits)
}

async fn deliverer(policy: AddressPolicy, keys: Arc<MasterKeys>) -> Arc<Deliverer> {
    let store = SqlStore::connect("sqlite::memory:").await.expect("store");
    Deliverer::new(
        Arc::new(store),
        Some(keys),
        policy,
        Arc::new(SystemLookup),
        DelivererConfig {
            node_id: "node_t".into(),
            retry_delays: parse_delays(DEFAULT_RETRY_DELAYS).expect("delays"),
            timeout: Duration::from_secs(5),
            per_endpoint: 4,
            max_inflight: 8,
            poll: Duration::from_millis(50),
            disable_after: Duration::from_secs(5 * 86_400),
        },
    )
    .expect("deliverer")
}

fn claimed(keys: &MasterKeys, url: &str) -> ClaimedDelivery {
    let (_, sealed) = new_sealed_secret(keys, "wh_t").expect("secret");
    let run: crate::store::RunRow = serde_json::from_value(json!({
        "id": "run_t", "org_id": "org_t", "app_id": "app_t", "agent": "@t/a", "version": "1.0.0",
        "end_user": null, "trigger": "api", "status": RunStatus::Succeeded, "input": {},
        "output": null, "error": null, "metadata": null, "usage": null, "attempt": 1,
        "created_at": 1, "started_at": 2, "finished_at": 3, "lease_owner": null,
        "lease_expires_at": null
    }))
    .expect("run row");
    ClaimedDelivery {
        delivery: Delivery {
            id: "msg_t".into(),
            endpoint_id: "wh_t".into(),
            app_id: "app_t".into(),
            event: WebhookEvent::RunSucceeded,
            run_id: "run_t".into(),
            run,
            event_at: 3,
            status: DeliveryStatus::Pending,
            attempts: 0,
            next_attempt_at: Some(3),
            created_at: 3,
        },
        endpoint: WebhookEndpoint {
            id: "wh_t".into(),
            org_id: "org_t".into(),
            app_id: "app_t".into(),
            url: url.into(),
            description: None,
            events: None,
            agents: None,
            secret: sealed,
            previous_secret: None,
            previous_until: None,
            created_at: 1,
            failing_since: None,
            disabled_at: None,
            disabled_reason: None,
        },
    }
}

#[tokio::test]
async fn the_address_policy_is_checked_at_every_delivery() {
    let keys = Arc::new(MasterKeys::parse(MASTER).expect("keys"));
    let (url, hits) = server(StatusCode::NO_CONTENT.into_response()).await;
    // Saved while loopback was allowed; the operator's policy now refuses it.
    let refusing = deliverer(AddressPolicy::deny_all(), keys.clone()).await;
    let err = refusing
        .attempt(&claimed(&keys, &url), 10_000)
        .await
        .expect_err("refused");
    assert!(err.contains("refused"), "{err}");
    let named = url.replace("127.0.0.1", "localhost");
    let err = refusing
        .attempt(&claimed(&keys, &named), 10_000)
        .await
        .expect_err("refused");
    assert!(err.contains("refused"), "{err}");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "nothing reached the endpoint"
    );
    let allowing = deliverer(
        AddressPolicy::parse(["127.0.0.1/32"]).expect("policy"),
        keys.clone(),
    )
    .await;
    let (code, _) = allowing
        .attempt(&claimed(&keys, &url), 10_000)
        .await
        .expect("sent");
    assert_eq!((code, hits.load(Ordering::SeqCst)), (204, 1));
}

#[tokio::test]
async fn a_redirect_is_an_answer_and_is_not_followed() {
    let keys = Arc::new(MasterKeys::parse(MASTER).expect("keys"));
    let (target, target_hits) = server(StatusCode::OK.into_response()).await;
    let redirect = (
        StatusCode::TEMPORARY_REDIRECT,
        [(axum::http::header::LOCATION, target.clone())],
    )
        .into_response();
    let (url, hits) = server(redirect).await;
    let d = deliverer(
        AddressPolicy::parse(["127.0.0.1/32"]).expect("policy"),
        keys.clone(),
    )
    .await;
    let (code, _) = d
        .attempt(&claimed(&keys, &url), 10_000)
        .await
        .expect("sent");
    assert_eq!(code, 307);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert_eq!(
        target_hits.load(Ordering::SeqCst),
        0,
        "the redirect was not followed"
    );
}
