//! Outbound webhook endpoints of an app, their delivery log, manual retries and secret
//! rotation. The deliveries themselves are written by the store with the run changes
//! they announce and sent by `crate::hooks::deliver`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use url::Url;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::doc::Problem;
use super::error::{ApiError, ApiResult};
use super::extract::{check_text, ApiPath, ApiQuery};
use super::idempotency::CarriesSecret;
use super::json::ApiJson;
use super::page::{list, Listed, PageQuery};
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

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list_endpoints))
        .routes(routes!(get_endpoint, delete_endpoint))
        .routes(routes!(rotate_secret))
        .routes(routes!(list_deliveries))
        .routes(routes!(retry_delivery))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "url": "https://example.com/atoll-hooks", "events": ["run.succeeded", "run.failed"],
    "agents": ["@acme/triage"], "description": "billing backend" }))]
struct CreateEndpoint {
    /// https URL (at most 2048 characters), checked against the address policy.
    url: String,
    /// Events to send (all when left out).
    #[schema(value_type = Option<Vec<WebhookEvent>>)]
    events: Option<Vec<String>>,
    /// Only runs of these agents (`@scope/name`, at most 100); all when left out.
    agents: Option<Vec<String>>,
    /// At most 1024 characters.
    description: Option<String>,
}

/// An endpoint as the API shows it (never its secret).
#[derive(Serialize, ToSchema)]
#[schema(example = json!({ "id": "wh_01hx", "url": "https://example.com/atoll-hooks", "description": null,
    "events": ["run.succeeded"], "agents": null, "created_at": 1764892800000_i64, "disabled_at": null,
    "disabled_reason": null, "previous_secret_expires_at": null }))]
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

/// An endpoint with its signing secret: the only answer that holds it.
#[derive(Serialize, ToSchema)]
struct EndpointWithSecret {
    #[serde(flatten)]
    endpoint: EndpointView,
    /// `whsec_` + base64 of 32 random bytes; shown once.
    secret: String,
}

/// Create a webhook endpoint: run events are signed (Standard Webhooks) with its secret,
/// which is shown this once.
#[utoipa::path(post, path = "/webhooks", operation_id = "create_webhook", tag = "webhooks",
    summary = "Create a webhook endpoint (its secret is shown once)",
    security(("bearer" = ["webhooks:write"])), request_body = CreateEndpoint,
    responses((status = 201, body = EndpointWithSecret), (status = 409, response = Problem),
        (status = 422, response = Problem)))]
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
    // Shown once: only its sealed form is stored (an idempotent replay omits it).
    let view = EndpointWithSecret {
        endpoint: endpoint.into(),
        secret,
    };
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

/// List the app's webhook endpoints.
#[utoipa::path(get, path = "/webhooks", operation_id = "list_webhooks", tag = "webhooks", summary = "List webhook endpoints",
    security(("bearer" = ["webhooks:read"])), params(PageQuery),
    responses((status = 200, body = Listed<EndpointView>)))]
async fn list_endpoints(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Listed<EndpointView>>> {
    let (_org, app_id) = caller.app("webhooks:read")?;
    let page = q.page()?;
    let rows = state.store.list_webhooks(&app_id, &page).await?;
    let views: Vec<EndpointView> = rows.into_iter().map(EndpointView::from).collect();
    Ok(Json(list(views, &page, |e| (e.created_at, e.id.clone()))))
}

/// Get a webhook endpoint.
#[utoipa::path(get, path = "/webhooks/{id}", operation_id = "get_webhook", tag = "webhooks", summary = "Get a webhook endpoint",
    security(("bearer" = ["webhooks:read"])),
    params(("id" = String, Path, description = "Endpoint id (`wh_...`)")),
    responses((status = 200, body = EndpointView), (status = 404, response = Problem)))]
async fn get_endpoint(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<EndpointView>> {
    let (_org, app_id) = caller.app("webhooks:read")?;
    Ok(Json(find(&state, &app_id, &id).await?.into()))
}

/// Delete a webhook endpoint and its delivery log.
#[utoipa::path(delete, path = "/webhooks/{id}", operation_id = "delete_webhook", tag = "webhooks",
    summary = "Delete a webhook endpoint and its delivery log",
    security(("bearer" = ["webhooks:write"])),
    params(("id" = String, Path, description = "Endpoint id (`wh_...`)", example = "wh_01hx")),
    responses((status = 204, description = "Deleted"), (status = 404, response = Problem)))]
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

/// A new signing secret (shown once); the old one signs too for 24 hours.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({ "id": "wh_01hx", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "previous_secret_expires_at": 1764979200000_i64 }))]
struct RotatedSecret {
    id: String,
    secret: String,
    previous_secret_expires_at: i64,
}

/// Rotate the signing secret.
#[utoipa::path(post, path = "/webhooks/{id}/rotate-secret", operation_id = "rotate_webhook_secret", tag = "webhooks",
    summary = "Rotate the signing secret (the old one signs for 24 h more)",
    security(("bearer" = ["webhooks:write"])),
    params(("id" = String, Path, description = "Endpoint id (`wh_...`)")),
    responses((status = 200, body = RotatedSecret), (status = 404, response = Problem)))]
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
    let body = RotatedSecret {
        id,
        secret,
        previous_secret_expires_at: until,
    };
    Ok(CarriesSecret(&["/secret"]).mark(Json(body)))
}

/// A delivery with every attempt at it.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({ "id": "msg_01hx", "event": "run.succeeded", "run_id": "run_01hx", "status": "succeeded",
    "created_at": 1764892800000_i64, "next_attempt_at": null,
    "attempts": [{ "attempt": 1, "at": 1764892800100_i64, "status_code": 200, "latency_ms": 35, "response": "ok", "error": null }] }))]
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

/// The delivery log of an endpoint, newest first.
#[utoipa::path(get, path = "/webhooks/{id}/deliveries", operation_id = "list_webhook_deliveries", tag = "webhooks",
    summary = "The delivery log: every delivery with its attempts",
    security(("bearer" = ["webhooks:read"])),
    params(("id" = String, Path, description = "Endpoint id (`wh_...`)"), PageQuery),
    responses((status = 200, body = Listed<DeliveryView>), (status = 404, response = Problem)))]
async fn list_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Listed<DeliveryView>>> {
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
    Ok(Json(list(views, &page, |d| (d.created_at, d.id.clone()))))
}

/// A delivery scheduled to be sent again now.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({ "id": "msg_01hx", "status": "pending" }))]
struct RetryScheduled {
    id: String,
    status: DeliveryStatus,
}

/// Send a delivery again now (its attempts so far are kept).
#[utoipa::path(post, path = "/webhooks/{id}/deliveries/{delivery_id}/retry", operation_id = "retry_webhook_delivery", tag = "webhooks",
    summary = "Send a delivery again now",
    security(("bearer" = ["webhooks:write"])),
    params(("id" = String, Path, description = "Endpoint id (`wh_...`)"),
        ("delivery_id" = String, Path, description = "Delivery id")),
    responses((status = 202, body = RetryScheduled), (status = 404, response = Problem),
        (status = 409, response = Problem)))]
async fn retry_delivery(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, delivery_id)): ApiPath<(String, String)>,
) -> ApiResult<(StatusCode, Json<RetryScheduled>)> {
    let (_org, app_id) = caller.app("webhooks:write")?;
    check_text("id", &id)?;
    check_text("delivery_id", &delivery_id)?;
    find(&state, &app_id, &id).await?;
    audit::record(
        &state,
        &caller,
        Some(&app_id),
        "webhook.retry_delivery",
        &id,
        json!({ "delivery_id": delivery_id }),
    )
    .await?;
    match state
        .store
        .retry_delivery(&app_id, &id, &delivery_id, now_ms())
        .await?
    {
        RetryDelivery::Scheduled => Ok((
            StatusCode::ACCEPTED,
            Json(RetryScheduled {
                id: delivery_id,
                status: DeliveryStatus::Pending,
            }),
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
