//! `POST /v1/hooks/{id}`: an inbound webhook starts its trigger's agent. No API key: the
//! trigger id and the request's signature are the credentials, checked on the raw body
//! before anything else is read from it.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{rate_limit_headers, ApiError, ApiResult};
use super::extract::ApiPath;
use super::AppState;
use crate::hooks::signature::verify;
use crate::hooks::trigger::{fire, trigger_secret_aad, FireError, TriggerConfig};
use crate::ids::now_ms;
use crate::store::{Firing, TriggerKind};

/// Longest delivery id kept (the firing key).
const MAX_DELIVERY_ID: usize = 256;

/// Inbound webhooks one node handles at once.
pub const HOOKS_IN_FLIGHT: usize = 256;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(receive))
}

/// The run an inbound webhook started (or, for a repeated delivery, had started).
#[derive(Serialize, ToSchema)]
#[schema(example = json!({ "run_id": "run_01hx", "replayed": false }))]
struct HookAccepted {
    run_id: String,
    /// This delivery id was seen before: nothing new was started.
    replayed: bool,
}

/// `trg_` and 32 hex digits, as [`crate::ids::new_id`] makes them: anything else is
/// answered without a query.
fn looks_like_trigger_id(id: &str) -> bool {
    id.strip_prefix("trg_")
        .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// An inbound webhook: the request must carry a valid signature for the trigger's
/// scheme (Standard Webhooks, GitHub, Stripe or an HMAC header); the body (or the part at
/// `input_pointer`) becomes the run's input. No API key.
#[utoipa::path(post, path = "/hooks/{id}", operation_id = "receive_hook", tag = "triggers",
    summary = "Inbound webhook: signature-checked, starts the trigger's agent (no API key)",
    params(("id" = String, Path, description = "Trigger id (`trg_...`)"),
        ("webhook-id" = Option<String>, Header, description = "Standard Webhooks: the delivery id"),
        ("webhook-timestamp" = Option<String>, Header, description = "Standard Webhooks: seconds since the epoch"),
        ("webhook-signature" = Option<String>, Header, description = "Standard Webhooks: `v1,<base64>` signatures")),
    request_body(content = Value, description = "The sender's JSON payload", example = json!({ "action": "opened" })),
    responses((status = 202, body = HookAccepted),
        (status = 401, response = super::doc::Problem),
        (status = 404, response = super::doc::Problem),
        (status = 409, response = super::doc::Problem),
        (status = 413, response = super::doc::Problem),
        (status = 422, response = super::doc::Problem)))]
async fn receive(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    // Unauthenticated: what a caller can make the server do before the signature is
    // checked is bounded (id shape, requests in flight, a rate per trigger, body size).
    let unknown = || ApiError::not_found("hook");
    if !looks_like_trigger_id(&id) {
        return Err(unknown());
    }
    let _slot = state.hook_slots.clone().try_acquire_owned().map_err(|_| {
        ApiError::Unavailable("too many inbound webhooks in flight; retry shortly".into())
    })?;
    let trigger = state.store.find_trigger(&id).await?.ok_or_else(unknown)?;
    let TriggerConfig::Webhook(config) = TriggerConfig::of(&trigger)? else {
        return Err(unknown());
    };
    if trigger.kind != TriggerKind::Webhook {
        return Err(unknown());
    }
    state
        .admission
        .request(&format!("hook:{}", trigger.id))
        .await?;
    let limit = state.limits.hook_max_body_bytes;
    let body = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::PayloadTooLarge(format!("an inbound webhook body is at most {limit} bytes"))
    })?;
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
            tracing::debug!(trigger = %trigger.id, %why, "inbound webhook refused");
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
        Json(HookAccepted {
            run_id: run_id.to_owned(),
            replayed,
        }),
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
