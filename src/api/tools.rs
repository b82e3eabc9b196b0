//! HTTP tools of an app: a name, a description, JSON Schemas, and the endpoint the broker
//! calls (optionally with a connection's credential).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::auth::Caller;
use super::connections::check_name;
use super::error::{ApiError, ApiResult};
use super::extract::ApiPath;
use super::json::ApiJson;
use super::{audit, AppState};
use crate::broker::tools::ToolSpec;
use crate::ids::now_ms;
use crate::store::ToolRow;

pub fn router() -> Router<AppState> {
    Router::new().route("/tools", get(list_tools)).route(
        "/tools/{name}",
        get(get_tool).put(put_tool).delete(delete_tool),
    )
}

fn view(row: &ToolRow) -> Value {
    let mut out = row.spec.clone();
    out["name"] = json!(row.name);
    out["created_at"] = json!(row.created_at);
    out["updated_at"] = json!(row.updated_at);
    out
}

async fn put_tool(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(spec): ApiJson<ToolSpec>,
) -> ApiResult<(StatusCode, Json<Value>)> {
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
    Ok((status, Json(view(&row))))
}

async fn get_tool(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let (_org, app_id) = caller.app("agents:read")?;
    let row = state
        .store
        .get_tool(&app_id, &name)
        .await?
        .ok_or_else(|| ApiError::not_found("tool"))?;
    Ok(Json(view(&row)))
}

async fn list_tools(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let (_org, app_id) = caller.app("agents:read")?;
    let rows = state.store.list_tools(&app_id).await?;
    let data: Vec<Value> = rows.iter().map(view).collect();
    Ok(Json(json!({ "data": data, "next_cursor": null })))
}

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
