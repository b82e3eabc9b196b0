//! `POST /v1/hooks/{id}`: an inbound webhook starts its trigger's agent. No API key: the
//! trigger id and the request's signature are the credentials, checked on the raw body
//! before anything else is read from it.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::error::{rate_limit_headers, ApiError, ApiResult};
use super::extract::ApiPath;
use super::AppState;
use crate::hooks::signature::verify;
use crate::hooks::trigger::{fire, trigger_secret_aad, FireError, TriggerConfig};
use crate::ids::now_ms;
use crate::store::{Firing, TriggerKind};

/// Longest delivery id kept (the firing key).
const MAX_DELIVERY_ID: usize = 256;

pub fn router(max_body_bytes: usize) -> Router<AppState> {
    Router::new().route(
        "/hooks/{id}",
        post(receive).layer(DefaultBodyLimit::max(max_body_bytes)),
    )
}

async fn receive(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let body = body.map_err(|e| match e {
        BytesRejection::FailedToBufferBody(_) => ApiError::PayloadTooLarge(format!(
            "an inbound webhook body is at most {} bytes",
            state.limits.hook_max_body_bytes
        )),
        other => ApiError::BadRequest(other.body_text()),
    })?;
    let unknown = || ApiError::not_found("hook");
    let trigger = state.store.find_trigger(&id).await?.ok_or_else(unknown)?;
    let TriggerConfig::Webhook(config) = TriggerConfig::of(&trigger)? else {
        return Err(unknown());
    };
    if trigger.kind != TriggerKind::Webhook {
        return Err(unknown());
    }
    let keys = state
        .master_keys
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable("the operator has not set ATOLL_MASTER_KEY".into()))?;
    let sealed = trigger.secret.as_deref().ok_or_else(unknown)?;
    let secret = keys
        .open(sealed, &trigger_secret_aad(&trigger.id))
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| ApiError::Unavailable("the trigger's secret cannot be opened".into()))?;
    let delivery =
        verify(&config.verify, &secret, &headers, &body, now_ms() / 1000).map_err(|why| {
            tracing::info!(trigger = %trigger.id, %why, "inbound webhook refused");
            ApiError::BadSignature(format!("{why}; nothing was started"))
        })?;
    if delivery.len() > MAX_DELIVERY_ID {
        return Err(ApiError::BadRequest(format!(
            "the delivery id is over {MAX_DELIVERY_ID} characters"
        )));
    }
    if trigger.paused_at.is_some() {
        return Err(ApiError::Conflict(
            "this trigger is paused; resume it to start runs again".into(),
        ));
    }
    let firing = Firing {
        trigger_id: trigger.id.clone(),
        key: delivery,
    };
    // A repeat of a delivery answers with the run it started, and starts nothing.
    if let Some(run_id) = state.store.firing_run(&firing).await? {
        return Ok(accepted(&run_id, true));
    }
    let input = input_of(&body, config.input_pointer.as_deref())?;
    let (run, rate) = fire(
        &state.runs,
        &trigger,
        config.version.as_deref(),
        firing.key,
        input,
    )
    .await
    .map_err(|e| match e {
        FireError::NoVersion(v) => ApiError::Conflict(format!(
            "the trigger runs version {v}, which the agent no longer has"
        )),
        FireError::Run(e) => e.into(),
    })?;
    let mut response = accepted(&run.id, false);
    rate_limit_headers(response.headers_mut(), &rate);
    Ok(response)
}

fn accepted(run_id: &str, replayed: bool) -> Response {
    let mut response = (
        StatusCode::ACCEPTED,
        Json(json!({ "run_id": run_id, "replayed": replayed })),
    )
        .into_response();
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

/// The body as JSON, or the part of it at `pointer`.
fn input_of(body: &[u8], pointer: Option<&str>) -> ApiResult<Value> {
    let whole: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::unprocessable("Invalid input", format!("the body is not JSON: {e}"))
    })?;
    match pointer {
        None | Some("") => Ok(whole),
        Some(p) => whole.pointer(p).cloned().ok_or_else(|| {
            ApiError::unprocessable(
                "Invalid input",
                format!("the body has nothing at input_pointer {p:?}"),
            )
        }),
    }
}
