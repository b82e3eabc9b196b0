//! Memory from outside the sandbox: the same key-value store agents reach with
//! `ctx.memory`, scoped to the caller's app (or org) and, for `end_user`, one end-user.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::{ApiPath, ApiQuery};
use super::json::ApiJson;
use super::{audit, AppState};
use crate::ids::now_ms;
use crate::store::MemoryNs;

const MAX_VALUE_BYTES: usize = 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/memory/{scope}", get(list_keys))
        .route(
            "/memory/{scope}/{key}",
            get(get_key).put(put_key).delete(delete_key),
        )
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MemoryQuery {
    end_user: Option<String>,
    prefix: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

fn namespace(caller: &Caller, scope: &str, q: &MemoryQuery, write: bool) -> ApiResult<MemoryNs> {
    let (org_id, app_id) = caller.app(if write { "memory:write" } else { "memory:read" })?;
    let end_user = caller.acting_end_user(q.end_user.as_deref())?;
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

async fn get_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((scope, key)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<MemoryQuery>,
) -> ApiResult<Json<Value>> {
    let ns = namespace(&caller, &scope, &q, false)?;
    check_key(&key)?;
    let value = state
        .store
        .memory_get(&ns, &key)
        .await?
        .ok_or_else(|| ApiError::not_found("memory key"))?;
    Ok(Json(json!({ "key": key, "value": value })))
}

async fn put_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((scope, key)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<MemoryQuery>,
    ApiJson(value): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let ns = namespace(&caller, &scope, &q, true)?;
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
    Ok(Json(json!({ "key": key, "value": value })))
}

async fn delete_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((scope, key)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<MemoryQuery>,
) -> ApiResult<StatusCode> {
    let ns = namespace(&caller, &scope, &q, true)?;
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

async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(scope): ApiPath<String>,
    ApiQuery(q): ApiQuery<MemoryQuery>,
) -> ApiResult<Json<Value>> {
    let ns = namespace(&caller, &scope, &q, false)?;
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
    let data: Vec<Value> = rows
        .into_iter()
        .map(|(key, value)| json!({ "key": key, "value": value }))
        .collect();
    Ok(Json(json!({ "data": data, "next_cursor": next })))
}
