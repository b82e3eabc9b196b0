//! The audit log: every state-changing call records who, what, when, from which key;
//! `GET /v1/audit` reads it back for the caller's org or app.

use axum::extract::State;
use axum::Json;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Caller, Principal};
use super::error::ApiResult;
use super::extract::ApiQuery;
use super::page::{list, Listed, PageQuery};
use super::AppState;
use crate::ids::new_id;
use crate::ids::now_ms;
use crate::store::AuditEvent;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit))
}

/// Records an audit event; a failure to record is logged, and fails the request, since
/// every state change must leave a trace. Call it before the change, or store the event
/// with the change (see [`event`]) where the change cannot be undone.
pub async fn record(
    state: &AppState,
    caller: &Caller,
    app_id: Option<&str>,
    action: &str,
    target: &str,
    detail: Value,
) -> ApiResult<()> {
    if let Some(event) = event(caller, app_id, action, target, detail) {
        state.store.append_audit(&event).await?;
    }
    Ok(())
}

/// The audit event of a change by `caller`; None for an admin acting outside any org.
pub fn event(
    caller: &Caller,
    app_id: Option<&str>,
    action: &str,
    target: &str,
    detail: Value,
) -> Option<AuditEvent> {
    let org_id = match &caller.principal {
        Principal::Org { org_id } | Principal::App { org_id, .. } => org_id.clone(),
        Principal::Admin => detail.get("org_id").and_then(Value::as_str)?.to_owned(),
    };
    Some(AuditEvent {
        id: new_id("aud"),
        org_id,
        app_id: app_id.map(str::to_owned),
        key_id: caller.key_id.clone(),
        action: action.to_owned(),
        target: target.to_owned(),
        detail,
        created_at: now_ms(),
    })
}

/// Audit events of the org (org key) or the caller's app (app key), newest first.
#[utoipa::path(get, path = "/audit", tag = "audit", summary = "Audit events",
    security(("bearer" = ["audit:read"])), params(PageQuery),
    responses((status = 200, body = Listed<AuditEvent>)))]
async fn list_audit(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Listed<AuditEvent>>> {
    let org_id = caller.org("audit:read")?;
    let app_id = match &caller.principal {
        Principal::App { app_id, .. } => Some(app_id.as_str()),
        _ => None,
    };
    let page = q.page()?;
    let events = state.store.list_audit(&org_id, app_id, &page).await?;
    Ok(Json(list(events, &page, |e| (e.created_at, e.id.clone()))))
}
