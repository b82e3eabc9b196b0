//! Outbound webhook endpoints of an app, their delivery log, manual retries and secret
//! rotation. The deliveries themselves are written by the store with the run changes
//! they announce and sent by `crate::hooks::deliver`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use url::Url;

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::{check_text, ApiPath, ApiQuery};
use super::idempotency::CarriesSecret;
use super::json::ApiJson;
use super::page::{list, PageQuery};
use super::{audit, AppState};
use crate::broker::secrets::MasterKeys;
use crate::hooks::deliver::{check_destination, new_sealed_secret};
use crate::ids::{new_id, now_ms};
use crate::store::{DeliveryAttempt, DeliveryStatus, RetryDelivery, WebhookEndpoint, WebhookEvent};

/// Endpoints one app may have: every run change is written once per matching endpoint,
/// inside the claim or finish transaction, so the number is bounded.
pub const MAX_ENDPOINTS_PER_APP: usize = 50;

/// How long a rotated-out secret keeps signing.
const ROTATION_OVERLAP_MS: i64 = 24 * 3_600_000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/webhooks", post(create).get(list_endpoints))
        .route("/webhooks/{id}", get(get_endpoint).delete(delete_endpoint))
        .route("/webhooks/{id}/rotate-secret", post(rotate_secret))
        .route("/webhooks/{id}/deliveries", get(list_deliveries))
        .route(
            "/webhooks/{id}/deliveries/{delivery_id}/retry",
            post(retry_delivery),
        )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateEndpoint {
    url: String,
    events: Option<Vec<String>>,
    agents: Option<Vec<String>>,
    description: Option<String>,
}

/// An endpoint as the API shows it (never its secret).
#[derive(Serialize)]
struct EndpointView {
    id: String,
    url: String,
    description: Option<String>,
    events: Option<Vec<WebhookEvent>>,
    agents: Option<Vec<String>>,
    created_at: i64,
    disabled_at: Option<i64>,
    disabled_reason: Option<String>,
    /// Until when the secret before the last rotation still signs.
    previous_secret_expires_at: Option<i64>,
}

impl From<WebhookEndpoint> for EndpointView {
    fn from(e: WebhookEndpoint) -> Self {
        EndpointView {
            previous_secret_expires_at: e.previous_until.filter(|until| *until > now_ms()),
            id: e.id,
            url: e.url,
            description: e.description,
            events: e.events,
            agents: e.agents,
            created_at: e.created_at,
            disabled_at: e.disabled_at,
            disabled_reason: e.disabled_reason,
        }
    }
}

fn keys(state: &AppState) -> ApiResult<&MasterKeys> {
    state.master_keys.as_deref().ok_or_else(|| {
        ApiError::Unavailable(
            "webhook secrets cannot be stored: the operator has not set ATOLL_MASTER_KEY".into(),
        )
    })
}

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::unprocessable("Invalid webhook endpoint", detail)
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateEndpoint>,
) -> ApiResult<Response> {
    let (org_id, app_id) = caller.app("webhooks:write")?;
    caller.require_not_impersonating("webhook endpoints")?;
    let keys = keys(&state)?;
    if body.url.len() > 2048 {
        return Err(invalid("url is at most 2048 characters"));
    }
    let url = Url::parse(&body.url).map_err(|e| invalid(format!("url: {e}")))?;
    check_destination(&state.destinations, &url)
        .await
        .map_err(invalid)?;
    let events = body
        .events
        .map(|names| {
            names
                .iter()
                .map(|n| {
                    WebhookEvent::parse(n).ok_or_else(|| {
                        invalid(format!(
                            "unknown event {n:?}; events are {}",
                            WebhookEvent::ALL.map(|e| e.as_str()).join(", ")
                        ))
                    })
                })
                .collect::<ApiResult<Vec<_>>>()
        })
        .transpose()?;
    if let Some(agents) = &body.agents {
        if agents.len() > 100 {
            return Err(invalid("agents lists at most 100 agents"));
        }
        for agent in agents {
            check_text("agents", agent)?;
            if agent.contains(',') || !agent.starts_with('@') {
                return Err(invalid(format!(
                    "{agent:?} is not an agent name (@scope/name)"
                )));
            }
        }
    }
    if let Some(d) = &body.description {
        check_text("description", d)?;
        if d.len() > 1024 {
            return Err(invalid("description is at most 1024 characters"));
        }
    }
    let existing = state
        .store
        .list_webhooks(
            &app_id,
            &crate::store::Page {
                limit: MAX_ENDPOINTS_PER_APP as u32,
                after: None,
            },
        )
        .await?;
    if existing.len() >= MAX_ENDPOINTS_PER_APP {
        return Err(ApiError::Conflict(format!(
            "an app has at most {MAX_ENDPOINTS_PER_APP} webhook endpoints; delete one first"
        )));
    }
    let id = new_id("wh");
    let (secret, sealed) = new_sealed_secret(keys, &id).map_err(ApiError::Internal)?;
    let endpoint = WebhookEndpoint {
        id: id.clone(),
        org_id,
        app_id: app_id.clone(),
        url: url.to_string(),
        description: body.description,
        events,
        agents: body.agents,
        secret: sealed,
        previous_secret: None,
        previous_until: None,
        created_at: now_ms(),
        failing_since: None,
        disabled_at: None,
        disabled_reason: None,
    };
    audit::record(
        &state,
        &caller,
        Some(&app_id),
        "webhook.create",
        &id,
        json!({ "url": endpoint.url }),
    )
    .await?;
    state.store.create_webhook(&endpoint).await?;
    let mut view = serde_json::to_value(EndpointView::from(endpoint))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    // Shown once: only its sealed form is stored (an idempotent replay omits it).
    view["secret"] = json!(secret);
    Ok(CarriesSecret(&["/secret"]).mark((StatusCode::CREATED, Json(view))))
}

async fn find(state: &AppState, app_id: &str, id: &str) -> ApiResult<WebhookEndpoint> {
    check_text("id", id)?;
    state
        .store
        .get_webhook(app_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook endpoint"))
}

async fn list_endpoints(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Value>> {
    let (_org, app_id) = caller.app("webhooks:read")?;
    let page = q.page()?;
    let rows = state.store.list_webhooks(&app_id, &page).await?;
    let views: Vec<EndpointView> = rows.into_iter().map(EndpointView::from).collect();
    Ok(Json(list(&views, &page, |e| (e.created_at, e.id.clone()))))
}

async fn get_endpoint(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<EndpointView>> {
    let (_org, app_id) = caller.app("webhooks:read")?;
    Ok(Json(find(&state, &app_id, &id).await?.into()))
}

async fn delete_endpoint(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let (_org, app_id) = caller.app("webhooks:write")?;
    caller.require_not_impersonating("webhook endpoints")?;
    let endpoint = find(&state, &app_id, &id).await?;
    audit::record(
        &state,
        &caller,
        Some(&app_id),
        "webhook.delete",
        &id,
        json!({ "url": endpoint.url }),
    )
    .await?;
    if !state.store.delete_webhook(&app_id, &id).await? {
        return Err(ApiError::not_found("webhook endpoint"));
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    let (_org, app_id) = caller.app("webhooks:write")?;
    caller.require_not_impersonating("webhook endpoints")?;
    let keys = keys(&state)?;
    find(&state, &app_id, &id).await?;
    let (secret, sealed) = new_sealed_secret(keys, &id).map_err(ApiError::Internal)?;
    let until = now_ms() + ROTATION_OVERLAP_MS;
    audit::record(
        &state,
        &caller,
        Some(&app_id),
        "webhook.rotate_secret",
        &id,
        json!({}),
    )
    .await?;
    if !state
        .store
        .rotate_webhook_secret(&app_id, &id, &sealed, until)
        .await?
    {
        return Err(ApiError::not_found("webhook endpoint"));
    }
    let body = json!({ "id": id, "secret": secret, "previous_secret_expires_at": until });
    Ok(CarriesSecret(&["/secret"]).mark(Json(body)))
}

#[derive(Serialize)]
struct DeliveryView {
    id: String,
    event: WebhookEvent,
    run_id: String,
    status: DeliveryStatus,
    created_at: i64,
    /// When the next attempt is due (none once it succeeded or gave up).
    next_attempt_at: Option<i64>,
    attempts: Vec<DeliveryAttempt>,
}

async fn list_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Value>> {
    let (_org, app_id) = caller.app("webhooks:read")?;
    find(&state, &app_id, &id).await?;
    let page = q.page()?;
    let rows = state.store.list_deliveries(&app_id, &id, &page).await?;
    let views: Vec<DeliveryView> = rows
        .into_iter()
        .map(|(d, attempts)| DeliveryView {
            next_attempt_at: (d.status == DeliveryStatus::Pending)
                .then_some(d.next_attempt_at)
                .flatten(),
            id: d.id,
            event: d.event,
            run_id: d.run_id,
            status: d.status,
            created_at: d.created_at,
            attempts,
        })
        .collect();
    Ok(Json(list(&views, &page, |d| (d.created_at, d.id.clone()))))
}

async fn retry_delivery(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, delivery_id)): ApiPath<(String, String)>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (_org, app_id) = caller.app("webhooks:write")?;
    check_text("id", &id)?;
    check_text("delivery_id", &delivery_id)?;
    match state
        .store
        .retry_delivery(&app_id, &id, &delivery_id, now_ms())
        .await?
    {
        RetryDelivery::Scheduled => Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "id": delivery_id, "status": "pending" })),
        )),
        RetryDelivery::NotFound => Err(ApiError::not_found("delivery")),
        RetryDelivery::EndpointDisabled => Err(ApiError::Conflict(
            "the endpoint is disabled; create a new endpoint to receive deliveries again".into(),
        )),
        RetryDelivery::InFlight => Err(ApiError::Conflict(
            "an attempt of this delivery is under way; retry once it is recorded".into(),
        )),
    }
}
