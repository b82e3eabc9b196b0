//! Triggers of an agent: inbound webhooks (`POST /v1/hooks/{id}`, see `hooks`) and
//! cron schedules (fired by `crate::hooks::cron`); list, get, delete, pause, resume.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::agents::agent_name;
use super::agents::AgentPath;
use super::auth::Caller;
use super::doc::Problem;
use super::error::{ApiError, ApiResult};
use super::extract::{check_text, ApiPath, ApiQuery};
use super::idempotency::CarriesSecret;
use super::json::ApiJson;
use super::page::{readable, Listed, PageQuery};
use super::{audit, AppState};
use crate::hooks::schedule::Schedule;
use crate::hooks::signature::{new_secret, Scheme, Verify};
use crate::hooks::trigger::{trigger_secret_aad, CronTrigger, TriggerConfig, WebhookTrigger};
use crate::ids::{new_id, now_ms};
use crate::store::{TriggerKind, TriggerRow};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list_triggers))
        .routes(routes!(get_trigger, delete_trigger))
        .routes(routes!(pause))
        .routes(routes!(resume))
        .routes(routes!(rotate_secret))
}

/// Triggers one agent may have (the cron loop takes due triggers oldest first, so a
/// bounded number keeps one tenant's schedules from delaying another's).
pub const MAX_TRIGGERS_PER_AGENT: usize = 50;

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::unprocessable("Invalid trigger", detail)
}

/// A trigger as the API shows it: its config (tagged by `type`), where it is and when
/// it next fires; the secret only in the answers that make one.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({ "type": "cron", "schedule": "*/5 * * * *", "timezone": "Europe/Paris",
    "input": {}, "id": "trg_0123456789abcdef0123456789abcdef", "agent": "@acme/digest",
    "created_at": 1764892800000_i64, "paused": false, "paused_at": null,
    "next_fire_at": 1764893100000_i64 }))]
struct TriggerView {
    #[serde(flatten)]
    config: TriggerConfig,
    id: String,
    agent: String,
    created_at: i64,
    paused: bool,
    paused_at: Option<i64>,
    /// Webhook triggers: where senders post (`/v1/hooks/{id}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    /// Cron triggers: the next firing (null while paused).
    #[serde(skip_serializing_if = "Option::is_none")]
    next_fire_at: Option<Option<i64>>,
    /// The verification secret: shown once, when it is made.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

fn view(t: &TriggerRow) -> ApiResult<TriggerView> {
    Ok(TriggerView {
        config: TriggerConfig::of(t)?,
        id: t.id.clone(),
        agent: t.agent.clone(),
        created_at: t.created_at,
        paused: t.paused_at.is_some(),
        paused_at: t.paused_at,
        url: (t.kind == TriggerKind::Webhook).then(|| format!("/v1/hooks/{}", t.id)),
        next_fire_at: (t.kind == TriggerKind::Cron).then_some(t.next_fire_at),
        secret: None,
    })
}

/// Create a webhook trigger (its secret is shown once) or a cron trigger.
#[utoipa::path(post, path = "/agents/{scope}/{name}/triggers", operation_id = "create_trigger", tag = "triggers",
    summary = "Create a webhook or cron trigger",
    security(("bearer" = ["agents:write"])),
    params(AgentPath),
    request_body(content = TriggerConfig, example = json!({ "type": "webhook", "verify": "github", "input_pointer": "/pull_request" })),
    responses((status = 201, body = TriggerView), (status = 404, response = Problem),
        (status = 409, response = Problem), (status = 422, response = Problem)))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((scope, name)): ApiPath<(String, String)>,
    ApiJson(config): ApiJson<TriggerConfig>,
) -> ApiResult<Response> {
    let (org_id, app_id) = caller.app("agents:write")?;
    let agent = agent_name(&scope, &name);
    state
        .store
        .get_agent(&app_id, &agent)
        .await?
        .ok_or_else(|| ApiError::not_found("agent"))?;
    let version = match config.version() {
        Some(v) => {
            check_text("version", v)?;
            state.store.get_agent_version(&app_id, &agent, v).await?
        }
        None => state.store.latest_agent_version(&app_id, &agent).await?,
    }
    .ok_or_else(|| ApiError::not_found("agent version"))?;
    let existing = state
        .store
        .list_triggers(
            &app_id,
            &agent,
            &crate::store::Page {
                limit: MAX_TRIGGERS_PER_AGENT as u32,
                after: None,
            },
        )
        .await?;
    if existing.len() >= MAX_TRIGGERS_PER_AGENT {
        return Err(ApiError::Conflict(format!(
            "an agent has at most {MAX_TRIGGERS_PER_AGENT} triggers; delete one first"
        )));
    }
    let id = new_id("trg");
    let now = now_ms();
    let (secret, next_fire_at) = match &config {
        TriggerConfig::Webhook(w) => (Some(webhook_secret(w)?), None),
        TriggerConfig::Cron(c) => {
            let next = cron_check(&state, &version, c)?.next_after(now);
            (None, next)
        }
    };
    let sealed = match &secret {
        Some(secret) => Some(seal(&state, &id, secret)?),
        None => None,
    };
    let row = TriggerRow {
        id: id.clone(),
        org_id,
        app_id: app_id.clone(),
        agent: agent.clone(),
        kind: config.kind(),
        config: serde_json::to_value(&config).map_err(|e| ApiError::Internal(e.to_string()))?,
        secret: sealed,
        paused_at: None,
        next_fire_at,
        created_at: now,
    };
    audit::record(
        &state,
        &caller,
        Some(&app_id),
        "trigger.create",
        &id,
        json!({ "agent": agent, "type": row.kind.as_str() }),
    )
    .await?;
    state.store.create_trigger(&row).await?;
    let mut out = view(&row)?;
    // Shown once: only its sealed form is stored (an idempotent replay omits it).
    out.secret = secret;
    Ok(CarriesSecret(&["/secret"]).mark((StatusCode::CREATED, Json(out))))
}

fn seal(state: &AppState, id: &str, secret: &str) -> ApiResult<String> {
    state
        .master_keys
        .as_ref()
        .ok_or_else(|| {
            ApiError::Unavailable(
                "trigger secrets cannot be stored: the operator has not set ATOLL_MASTER_KEY"
                    .into(),
            )
        })?
        .seal(secret.as_bytes(), &trigger_secret_aad(id))
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// The secret the sender signs with: the one given (Stripe chooses its own), or a new one.
fn webhook_secret(w: &WebhookTrigger) -> ApiResult<String> {
    w.verify.validate().map_err(invalid)?;
    if let Some(pointer) = &w.input_pointer {
        if !(pointer.is_empty() || pointer.starts_with('/')) {
            return Err(invalid(
                "input_pointer is a JSON Pointer: empty, or starting with '/' (e.g. \"/data\")",
            ));
        }
    }
    match &w.secret {
        None => new_secret().map_err(|e| ApiError::Internal(format!("no randomness: {e}"))),
        Some(given) => {
            check_text("secret", given)?;
            if !(16..=256).contains(&given.len()) {
                return Err(invalid("secret is 16 to 256 characters"));
            }
            let standard = w.verify == Verify::Named(Scheme::Standard);
            if standard && crate::hooks::signature::standard_key(given).is_none() {
                return Err(invalid(
                    "a standard trigger's secret is whsec_ followed by base64",
                ));
            }
            Ok(given.clone())
        }
    }
}

/// The schedule parses and the fixed input fits the agent's input schema.
fn cron_check(
    state: &AppState,
    version: &crate::store::AgentVersion,
    c: &CronTrigger,
) -> ApiResult<Schedule> {
    let schedule = Schedule::parse(&c.schedule, &c.timezone).map_err(invalid)?;
    let package = state.runs.package(version)?;
    package.validate_input(&c.input).map_err(|why| {
        invalid(format!(
            "input does not match the agent's input schema: {why}"
        ))
    })?;
    Ok(schedule)
}

async fn find(
    state: &AppState,
    app_id: &str,
    scope: &str,
    name: &str,
    id: &str,
) -> ApiResult<TriggerRow> {
    state
        .store
        .get_trigger(app_id, &agent_name(scope, name), id)
        .await?
        .ok_or_else(|| ApiError::not_found("trigger"))
}

/// List an agent's triggers.
#[utoipa::path(get, path = "/agents/{scope}/{name}/triggers", tag = "triggers",
    summary = "List an agent's triggers",
    security(("bearer" = ["agents:read"])),
    params(AgentPath, PageQuery),
    responses((status = 200, body = Listed<TriggerView>)))]
async fn list_triggers(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((scope, name)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Listed<TriggerView>>> {
    let (_org, app_id) = caller.app("agents:read")?;
    let page = q.page()?;
    let rows = state
        .store
        .list_triggers(&app_id, &agent_name(&scope, &name), &page)
        .await?;
    Ok(Json(readable(
        rows,
        &page,
        |r| (r.created_at, r.id.clone()),
        view,
        "trigger",
    )))
}

/// Get a trigger (with `next_fire_at` for cron).
#[utoipa::path(get, path = "/agents/{scope}/{name}/triggers/{id}", tag = "triggers",
    summary = "Get a trigger (with next_fire_at)",
    security(("bearer" = ["agents:read"])),
    params(AgentPath,
        ("id" = String, Path, description = "Trigger id (`trg_...`)")),
    responses((status = 200, body = TriggerView), (status = 404, response = Problem)))]
async fn get_trigger(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((scope, name, id)): ApiPath<(String, String, String)>,
) -> ApiResult<Json<TriggerView>> {
    let (_org, app_id) = caller.app("agents:read")?;
    Ok(Json(view(
        &find(&state, &app_id, &scope, &name, &id).await?,
    )?))
}

/// Delete a trigger.
#[utoipa::path(delete, path = "/agents/{scope}/{name}/triggers/{id}", tag = "triggers",
    summary = "Delete a trigger",
    security(("bearer" = ["agents:write"])),
    params(AgentPath,
        ("id" = String, Path, description = "Trigger id (`trg_...`)", example = "trg_0123456789abcdef0123456789abcdef")),
    responses((status = 204, description = "Deleted"), (status = 404, response = Problem)))]
async fn delete_trigger(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((scope, name, id)): ApiPath<(String, String, String)>,
) -> ApiResult<StatusCode> {
    let (_org, app_id) = caller.app("agents:write")?;
    let trigger = find(&state, &app_id, &scope, &name, &id).await?;
    audit::record(
        &state,
        &caller,
        Some(&app_id),
        "trigger.delete",
        &id,
        json!({ "agent": trigger.agent }),
    )
    .await?;
    if !state
        .store
        .delete_trigger(&app_id, &trigger.agent, &id)
        .await?
    {
        return Err(ApiError::not_found("trigger"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Pause a trigger: it starts nothing until resumed.
#[utoipa::path(post, path = "/agents/{scope}/{name}/triggers/{id}/pause", operation_id = "pause_trigger", tag = "triggers",
    summary = "Pause a trigger",
    security(("bearer" = ["agents:write"])),
    params(AgentPath,
        ("id" = String, Path, description = "Trigger id (`trg_...`)")),
    responses((status = 200, body = TriggerView), (status = 404, response = Problem)))]
async fn pause(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((scope, name, id)): ApiPath<(String, String, String)>,
) -> ApiResult<Json<TriggerView>> {
    set_paused(state, caller, scope, name, id, true).await
}

/// Resume a trigger: a cron trigger next fires at its next time from now (no catch-up).
#[utoipa::path(post, path = "/agents/{scope}/{name}/triggers/{id}/resume", operation_id = "resume_trigger", tag = "triggers",
    summary = "Resume a trigger",
    security(("bearer" = ["agents:write"])),
    params(AgentPath,
        ("id" = String, Path, description = "Trigger id (`trg_...`)")),
    responses((status = 200, body = TriggerView), (status = 404, response = Problem)))]
async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((scope, name, id)): ApiPath<(String, String, String)>,
) -> ApiResult<Json<TriggerView>> {
    set_paused(state, caller, scope, name, id, false).await
}

async fn set_paused(
    state: AppState,
    caller: Caller,
    scope: String,
    name: String,
    id: String,
    paused: bool,
) -> ApiResult<Json<TriggerView>> {
    let (_org, app_id) = caller.app("agents:write")?;
    let trigger = find(&state, &app_id, &scope, &name, &id).await?;
    let now = now_ms();
    let paused_at = paused.then(|| trigger.paused_at.unwrap_or(now));
    // Resuming does not catch up: a cron trigger next fires at its next time from now.
    let next_fire_at = match TriggerConfig::of(&trigger)? {
        TriggerConfig::Cron(c) if !paused => Schedule::parse(&c.schedule, &c.timezone)
            .map_err(invalid)?
            .next_after(now),
        _ => trigger.next_fire_at,
    };
    audit::record(
        &state,
        &caller,
        Some(&app_id),
        if paused {
            "trigger.pause"
        } else {
            "trigger.resume"
        },
        &id,
        json!({ "agent": trigger.agent }),
    )
    .await?;
    state
        .store
        .set_trigger_paused(&app_id, &trigger.agent, &id, paused_at, next_fire_at)
        .await?;
    Ok(Json(view(&TriggerRow {
        paused_at,
        next_fire_at,
        ..trigger
    })?))
}

#[derive(serde::Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
struct RotateSecret {
    /// The sender's own secret (Stripe shows one per endpoint); else a new one is made.
    secret: Option<String>,
}

/// A webhook trigger's new secret, shown once.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({ "id": "trg_0123456789abcdef0123456789abcdef", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" }))]
struct TriggerSecret {
    id: String,
    secret: String,
}

/// Replaces a webhook trigger's secret at once (no overlap: the sender switches with it).
#[utoipa::path(post, path = "/agents/{scope}/{name}/triggers/{id}/rotate-secret", operation_id = "rotate_trigger_secret", tag = "triggers",
    summary = "Replace a webhook trigger's secret",
    security(("bearer" = ["agents:write"])),
    params(AgentPath,
        ("id" = String, Path, description = "Trigger id (`trg_...`)")),
    request_body(content = Option<RotateSecret>, description = "Optional: the sender's own secret"),
    responses((status = 200, body = TriggerSecret), (status = 404, response = Problem),
        (status = 422, response = Problem)))]
async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((scope, name, id)): ApiPath<(String, String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    // The body is optional: none (or `{}`) makes a new secret.
    let body: RotateSecret = if body.is_empty() {
        RotateSecret::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::BadRequest(format!("the body is {{ \"secret\"?: \"...\" }}: {e}"))
        })?
    };
    let (_org, app_id) = caller.app("agents:write")?;
    let trigger = find(&state, &app_id, &scope, &name, &id).await?;
    let TriggerConfig::Webhook(mut config) = TriggerConfig::of(&trigger)? else {
        return Err(invalid("only webhook triggers have a secret"));
    };
    config.secret = body.secret;
    let secret = webhook_secret(&config)?;
    let sealed = seal(&state, &id, &secret)?;
    audit::record(
        &state,
        &caller,
        Some(&app_id),
        "trigger.rotate_secret",
        &id,
        json!({ "agent": trigger.agent }),
    )
    .await?;
    if !state
        .store
        .set_trigger_secret(&app_id, &trigger.agent, &id, &sealed)
        .await?
    {
        return Err(ApiError::not_found("trigger"));
    }
    Ok(CarriesSecret(&["/secret"]).mark(Json(TriggerSecret { id, secret })))
}
