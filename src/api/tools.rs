//! HTTP tools of an app: a name, a description, JSON Schemas, and the endpoint the broker
//! calls (optionally with a connection's credential).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::connections::check_name;
use super::doc::Problem;
use super::error::{ApiError, ApiResult};
use super::extract::ApiPath;
use super::json::ApiJson;
use super::page::readable;
use super::{audit, AppState};
use crate::broker::tools::ToolSpec;
use crate::ids::now_ms;
use crate::store::{Page, ToolRow};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tools))
        .routes(routes!(get_tool, put_tool, delete_tool))
}

/// A tool: its name, spec and timestamps.
#[derive(Serialize, ToSchema)]
struct ToolView {
    name: String,
    #[serde(flatten)]
    spec: ToolSpec,
    created_at: i64,
    updated_at: i64,
}

/// The app's tools (one page holds them all).
#[derive(Serialize, ToSchema)]
struct ToolList {
    data: Vec<ToolView>,
    /// Always null: every tool is on the one page.
    next_cursor: Option<String>,
}

fn view(row: &ToolRow) -> ApiResult<ToolView> {
    let spec = serde_json::from_value(row.spec.clone())
        .map_err(|e| ApiError::Internal(format!("tool {}: {e}", row.name)))?;
    Ok(ToolView {
        name: row.name.clone(),
        spec,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

/// Create or replace an HTTP tool agents may call with `ctx.tools`.
#[utoipa::path(put, path = "/tools/{name}", tag = "tools", summary = "Create or replace an HTTP tool",
    security(("bearer" = ["agents:write"])),
    params(("name" = String, Path, description = "1 to 128 of a-z, A-Z, 0-9, '-', '_', '.'")),
    request_body = ToolSpec,
    responses((status = 201, description = "Created", body = ToolView),
        (status = 200, description = "Replaced", body = ToolView),
        (status = 422, response = Problem)))]
async fn put_tool(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(spec): ApiJson<ToolSpec>,
) -> ApiResult<(StatusCode, Json<ToolView>)> {
    let (_org, app_id) = caller.app("agents:write")?;
    check_name(&name)?;
    spec.validate()
        .map_err(|why| ApiError::unprocessable("Invalid tool", why))?;
    let now = now_ms();
    let existing = state.store.get_tool(&app_id, &name).await?;
    let row = ToolRow {
        app_id: app_id.clone(),
        name: name.clone(),
        spec: serde_json::to_value(&spec).map_err(|e| ApiError::Internal(e.to_string()))?,
        created_at: existing.as_ref().map_or(now, |t| t.created_at),
        updated_at: now,
    };
    state.store.put_tool(&row).await?;
    audit::record(
        &state,
        &caller,
        Some(&app_id),
        "tool.put",
        &name,
        json!({ "url": spec.url }),
    )
    .await?;
    let status = if existing.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(view(&row)?)))
}

/// Get a tool.
#[utoipa::path(get, path = "/tools/{name}", tag = "tools", summary = "Get a tool",
    security(("bearer" = ["agents:read"])),
    params(("name" = String, Path, description = "Tool name")),
    responses((status = 200, body = ToolView), (status = 404, response = Problem)))]
async fn get_tool(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<ToolView>> {
    let (_org, app_id) = caller.app("agents:read")?;
    let row = state
        .store
        .get_tool(&app_id, &name)
        .await?
        .ok_or_else(|| ApiError::not_found("tool"))?;
    Ok(Json(view(&row)?))
}

/// List the app's tools.
#[utoipa::path(get, path = "/tools", tag = "tools", summary = "List tools",
    security(("bearer" = ["agents:read"])),
    responses((status = 200, body = ToolList)))]
async fn list_tools(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<ToolList>> {
    let (_org, app_id) = caller.app("agents:read")?;
    let rows = state.store.list_tools(&app_id).await?;
    // One page holds every tool: no cursor to keep.
    let unpaged = Page {
        limit: u32::MAX,
        after: None,
    };
    let listed = readable(
        rows,
        &unpaged,
        |r| (r.created_at, r.name.clone()),
        view,
        "tool",
    );
    Ok(Json(ToolList {
        data: listed.data,
        next_cursor: None,
    }))
}

/// Delete a tool.
#[utoipa::path(delete, path = "/tools/{name}", tag = "tools", summary = "Delete a tool",
    security(("bearer" = ["agents:write"])),
    params(("name" = String, Path, description = "Tool name", example = "lookup_order")),
    responses((status = 204, description = "Deleted"), (status = 404, response = Problem)))]
async fn delete_tool(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let (_org, app_id) = caller.app("agents:write")?;
    if !state.store.delete_tool(&app_id, &name).await? {
        return Err(ApiError::not_found("tool"));
    }
    audit::record(
        &state,
        &caller,
        Some(&app_id),
        "tool.delete",
        &name,
        json!({}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
