//! Memory from outside the sandbox: the same key-value store agents reach with
//! `ctx.memory`, scoped to the caller's app (or org) and, for `end_user`, one end-user.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::doc::Problem;
use super::error::{ApiError, ApiResult};
use super::extract::{ApiPath, ApiQuery};
use super::json::ApiJson;
use super::{audit, AppState};
use crate::ids::now_ms;
use crate::store::MemoryNs;

const MAX_VALUE_BYTES: usize = 1024 * 1024;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_keys))
        .routes(routes!(get_key, put_key, delete_key))
}

/// `?end_user=`: whose memory, for the `end_user` scope.
#[derive(Deserialize, Default, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct EndUserQuery {
    /// The end-user's external id (or send `x-atoll-end-user`).
    end_user: Option<String>,
}

#[derive(Deserialize, Default, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// The end-user's external id (or send `x-atoll-end-user`).
    end_user: Option<String>,
    /// Only keys starting with this.
    prefix: Option<String>,
    /// The `next_cursor` of the previous page (a key).
    cursor: Option<String>,
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
}

/// A memory key and its JSON value.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({ "key": "preferences", "value": { "language": "fr" } }))]
struct MemoryEntry {
    key: String,
    value: Value,
}

/// One page of memory keys.
#[derive(Serialize, ToSchema)]
struct MemoryPage {
    data: Vec<MemoryEntry>,
    /// Pass as `?cursor=` for the next page; null on the last page.
    next_cursor: Option<String>,
}

fn namespace(
    caller: &Caller,
    scope: &str,
    end_user: Option<&str>,
    write: bool,
) -> ApiResult<MemoryNs> {
    let (org_id, app_id) = caller.app(if write { "memory:write" } else { "memory:read" })?;
    let end_user = caller.acting_end_user(end_user)?;
    if write && scope != "end_user" {
        // Shared by every end-user: readable while acting for one, changed by the app only.
        caller.require_not_impersonating(&format!("{scope} memory"))?;
    }
    match scope {
        "end_user" => {
            let end_user = end_user.filter(|e| !e.is_empty()).ok_or_else(|| {
                ApiError::BadRequest(
                    "end_user memory needs ?end_user=<external_id> or x-atoll-end-user".into(),
                )
            })?;
            Ok(MemoryNs {
                org_id,
                app_id,
                scope: scope.into(),
                end_user,
            })
        }
        "app" => Ok(MemoryNs {
            org_id,
            app_id,
            scope: scope.into(),
            end_user: String::new(),
        }),
        "org" => Ok(MemoryNs {
            org_id,
            app_id: String::new(),
            scope: scope.into(),
            end_user: String::new(),
        }),
        other => Err(ApiError::NotFound(format!(
            "memory scope '{other}' does not exist (end_user, app, org)"
        ))),
    }
}

fn check_key(key: &str) -> ApiResult<()> {
    if key.is_empty() || key.len() > 512 {
        return Err(ApiError::BadRequest(
            "a memory key is 1 to 512 bytes".into(),
        ));
    }
    Ok(())
}

/// Get a memory value.
#[utoipa::path(get, path = "/memory/{scope}/{key}", operation_id = "get_memory", tag = "memory", summary = "Get a memory value",
    security(("bearer" = ["memory:read"])),
    params(("scope" = String, Path, description = "`end_user`, `app` or `org`"),
        ("key" = String, Path, description = "1 to 512 bytes"), EndUserQuery),
    responses((status = 200, body = MemoryEntry), (status = 404, response = Problem)))]
async fn get_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((scope, key)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<EndUserQuery>,
) -> ApiResult<Json<MemoryEntry>> {
    let ns = namespace(&caller, &scope, q.end_user.as_deref(), false)?;
    check_key(&key)?;
    let value = state
        .store
        .memory_get(&ns, &key)
        .await?
        .ok_or_else(|| ApiError::not_found("memory key"))?;
    Ok(Json(MemoryEntry { key, value }))
}

/// Set a memory value (any JSON, at most 1 MiB). Shared scopes (`app`, `org`) are not
/// written while acting for an end-user.
#[utoipa::path(put, path = "/memory/{scope}/{key}", operation_id = "put_memory", tag = "memory", summary = "Set a memory value",
    security(("bearer" = ["memory:write"])),
    params(("scope" = String, Path, description = "`end_user`, `app` or `org`"),
        ("key" = String, Path, description = "1 to 512 bytes"), EndUserQuery),
    request_body(content = Value, description = "Any JSON value", example = json!({ "language": "fr" })),
    responses((status = 200, body = MemoryEntry), (status = 404, response = Problem)))]
async fn put_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((scope, key)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<EndUserQuery>,
    ApiJson(value): ApiJson<Value>,
) -> ApiResult<Json<MemoryEntry>> {
    let ns = namespace(&caller, &scope, q.end_user.as_deref(), true)?;
    check_key(&key)?;
    if value.to_string().len() > MAX_VALUE_BYTES {
        return Err(ApiError::PayloadTooLarge(format!(
            "a memory value is at most {MAX_VALUE_BYTES} bytes"
        )));
    }
    state.store.memory_set(&ns, &key, &value, now_ms()).await?;
    let app = (!ns.app_id.is_empty()).then_some(ns.app_id.as_str());
    audit::record(
        &state,
        &caller,
        app,
        "memory.set",
        &format!("{scope}/{key}"),
        json!({ "end_user": ns.end_user }),
    )
    .await?;
    Ok(Json(MemoryEntry { key, value }))
}

/// Delete a memory value.
#[utoipa::path(delete, path = "/memory/{scope}/{key}", operation_id = "delete_memory", tag = "memory", summary = "Delete a memory value",
    security(("bearer" = ["memory:write"])),
    params(("scope" = String, Path, description = "`end_user`, `app` or `org`"),
        ("key" = String, Path, description = "1 to 512 bytes", example = "preferences"), EndUserQuery),
    responses((status = 204, description = "Deleted"), (status = 404, response = Problem)))]
async fn delete_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((scope, key)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<EndUserQuery>,
) -> ApiResult<StatusCode> {
    let ns = namespace(&caller, &scope, q.end_user.as_deref(), true)?;
    check_key(&key)?;
    if !state.store.memory_delete(&ns, &key).await? {
        return Err(ApiError::not_found("memory key"));
    }
    let app = (!ns.app_id.is_empty()).then_some(ns.app_id.as_str());
    audit::record(
        &state,
        &caller,
        app,
        "memory.delete",
        &format!("{scope}/{key}"),
        json!({ "end_user": ns.end_user }),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List memory keys with their values, in key order.
#[utoipa::path(get, path = "/memory/{scope}", operation_id = "list_memory", tag = "memory", summary = "List memory keys",
    security(("bearer" = ["memory:read"])),
    params(("scope" = String, Path, description = "`end_user`, `app` or `org`"), ListQuery),
    responses((status = 200, body = MemoryPage), (status = 404, response = Problem)))]
async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(scope): ApiPath<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<MemoryPage>> {
    let ns = namespace(&caller, &scope, q.end_user.as_deref(), false)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::BadRequest("limit is 1 to 200".into()));
    }
    let rows = state
        .store
        .memory_list(
            &ns,
            q.prefix.as_deref().unwrap_or(""),
            q.cursor.as_deref(),
            limit,
        )
        .await?;
    let next = (rows.len() as u32 >= limit)
        .then(|| rows.last().map(|(k, _)| k.clone()))
        .flatten();
    let data = rows
        .into_iter()
        .map(|(key, value)| MemoryEntry { key, value })
        .collect();
    Ok(Json(MemoryPage {
        data,
        next_cursor: next,
    }))
}
