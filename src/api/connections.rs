//! Connections: named credentials the broker injects into outbound requests. Secrets are
//! write-only: they are sealed (AES-256-GCM) before they reach the store, and every read
//! shows metadata and a fingerprint, never the secret.

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
use super::page::readable;
use super::{audit, AppState};
use crate::broker::connection::{describe, Connection, ConnectionSecret};
use crate::broker::connection_aad;
use crate::broker::destination::validate_entry;
use crate::ids::now_ms;
use crate::llm::Provider;
use crate::store::{ConnectionRow, Page};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_connections))
        .routes(routes!(get_connection, put_connection, delete_connection))
}

#[derive(Deserialize, Default, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct EndUserQuery {
    /// Whose connection: an end-user's external id (or send `x-atoll-end-user`); the
    /// app's own when left out.
    end_user: Option<String>,
}

/// The body of `PUT /v1/connections/{name}`: the credential (`type` and its fields),
/// where it may be sent, and optionally the LLM provider it reaches. (Read field by
/// field in [`put_connection`]: serde cannot flatten a tagged enum that refuses unknown
/// fields.)
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({ "type": "bearer", "token": "sk-live-...", "hosts": ["api.example.com"] }))]
#[allow(dead_code)]
struct ConnectionBody {
    #[serde(flatten)]
    secret: ConnectionSecret,
    /// Where the credential may be sent: host patterns (`api.example.com`,
    /// `*.example.com`), each with an optional `:port`.
    hosts: Vec<String>,
    /// The credential may go over plain http too (a local model, a test server).
    #[serde(default)]
    allow_http: bool,
    provider: Option<Provider>,
}

/// A connection as every read shows it: metadata and a fingerprint, never the secret.
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(example = json!({ "name": "openai", "type": "bearer", "hosts": ["api.openai.com"],
    "fingerprint": "3b9c1f0a52e4", "created_at": 1764892800000_i64, "updated_at": 1764892800000_i64 }))]
struct ConnectionView {
    name: String,
    /// `bearer`, `header`, `basic`, `query` or `oauth2_client_credentials`.
    #[serde(rename = "type")]
    kind: String,
    hosts: Vec<String>,
    /// Identifies the secret without revealing it.
    fingerprint: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    allow_http: bool,
    /// The header a `header` connection sets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    header: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    /// The query parameter a `query` connection sets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    param: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scopes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    audience: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    provider: Option<Provider>,
    /// Set for an end-user's own connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    end_user: Option<String>,
    #[serde(default)]
    created_at: i64,
    #[serde(default)]
    updated_at: i64,
}

/// The app's connections (one page holds them all).
#[derive(Serialize, ToSchema)]
struct ConnectionList {
    data: Vec<ConnectionView>,
    /// Always null: every connection is on the one page.
    next_cursor: Option<String>,
}

/// The end-user whose connection this is ("" for the app's own).
fn end_user_of(caller: &Caller, q: &EndUserQuery) -> ApiResult<String> {
    Ok(caller
        .acting_end_user(q.end_user.as_deref())?
        .unwrap_or_default())
}

pub fn check_name(name: &str) -> ApiResult<()> {
    super::extract::check_text("the name", name)?;
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::unprocessable(
            "Invalid name",
            "names are 1 to 128 of a-z, A-Z, 0-9, '-', '_', '.'",
        ))
    }
}

/// Create or replace a connection. The secret is sealed before it is stored and never
/// shown again; where it may go (hosts, the provider's endpoint, the token URL) is
/// checked now and before every use.
#[utoipa::path(put, path = "/connections/{name}", tag = "connections",
    summary = "Create or replace a connection (secret write-only)",
    security(("bearer" = ["connections:write"])),
    params(("name" = String, Path, description = "1 to 128 of a-z, A-Z, 0-9, '-', '_', '.'"), EndUserQuery),
    request_body = ConnectionBody,
    responses((status = 201, description = "Created", body = ConnectionView),
        (status = 200, description = "Replaced", body = ConnectionView),
        (status = 422, response = Problem)))]
async fn put_connection(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<EndUserQuery>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<ConnectionView>)> {
    let (_org, app_id) = caller.app("connections:write")?;
    let end_user = end_user_of(&caller, &q)?;
    check_name(&name)?;
    let keys = state.master_keys.as_ref().ok_or_else(|| {
        ApiError::Unavailable(
            "secrets cannot be stored: the operator has not set ATOLL_MASTER_KEY".into(),
        )
    })?;
    let Value::Object(mut fields) = body else {
        return Err(ApiError::BadRequest(
            "the body is a JSON object: { type, hosts, ... }".into(),
        ));
    };
    let hosts: Vec<String> = match fields.remove("hosts") {
        Some(v) => {
            serde_json::from_value(v).map_err(|e| ApiError::BadRequest(format!("hosts: {e}")))?
        }
        None => {
            return Err(ApiError::unprocessable(
                "Invalid connection",
                "hosts lists where this credential may be sent, e.g. [\"api.example.com\"]",
            ))
        }
    };
    if hosts.is_empty() {
        return Err(ApiError::unprocessable(
            "Invalid connection",
            "hosts lists where this credential may be sent, e.g. [\"api.example.com\"]",
        ));
    }
    for host in &hosts {
        validate_entry(host).map_err(|why| {
            ApiError::unprocessable("Invalid connection", format!("hosts: {why}"))
        })?;
    }
    let allow_http = match fields.remove("allow_http") {
        None => false,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err(ApiError::BadRequest("allow_http is true or false".into())),
    };
    let provider: Option<Provider> = match fields.remove("provider") {
        Some(v) => Some(
            serde_json::from_value(v)
                .map_err(|e| ApiError::BadRequest(format!("provider: {e}")))?,
        ),
        None => None,
    };
    let secret: ConnectionSecret = serde_json::from_value(Value::Object(fields))
        .map_err(|e| ApiError::BadRequest(format!("connection: {e}")))?;
    secret
        .validate()
        .map_err(|why| ApiError::unprocessable("Invalid connection", why))?;
    let connection = Connection {
        name: name.clone(),
        hosts,
        allow_http,
        secret,
    };
    check_destinations(&connection, provider.as_ref())?;
    let plaintext =
        serde_json::to_vec(&connection.secret).map_err(|e| ApiError::Internal(e.to_string()))?;
    let sealed = keys
        .seal(&plaintext, &connection_aad(&app_id, &name, &end_user))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut public = describe(&connection);
    if let Some(p) = &provider {
        public["provider"] = json!(p);
    }
    if !end_user.is_empty() {
        public["end_user"] = json!(end_user);
    }
    let now = now_ms();
    let existing = state
        .store
        .get_connection(&app_id, &name, &end_user)
        .await?;
    let row = ConnectionRow {
        app_id: app_id.clone(),
        name: name.clone(),
        end_user: end_user.clone(),
        public: public.clone(),
        sealed,
        created_at: existing.as_ref().map_or(now, |e| e.created_at),
        updated_at: now,
    };
    state.store.put_connection(&row).await?;
    audit::record(
        &state,
        &caller,
        Some(&app_id),
        "connection.put",
        &name,
        json!({ "end_user": end_user, "fingerprint": public.get("fingerprint") }),
    )
    .await?;
    let status = if existing.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(view(&row)?)))
}

/// Where this credential will be sent is covered by the connection itself: the
/// provider's endpoint and the OAuth2 token URL pass the same check as every request.
fn check_destinations(c: &Connection, provider: Option<&Provider>) -> ApiResult<()> {
    let invalid = |why: String| ApiError::unprocessable("Invalid connection", why);
    if let Some(provider) = provider {
        provider.validate(c).map_err(invalid)?;
    }
    if let ConnectionSecret::Oauth2ClientCredentials { token_url, .. } = &c.secret {
        let url = url::Url::parse(token_url).map_err(|e| invalid(format!("token_url: {e}")))?;
        c.authorize(&url).map_err(|e| {
            invalid(format!(
                "token_url: {e}; the client secret goes there, so list its host in hosts"
            ))
        })?;
    }
    Ok(())
}

/// The stored public description read back as its type (it was written by
/// `describe` with these fields).
fn view(row: &ConnectionRow) -> ApiResult<ConnectionView> {
    let mut view: ConnectionView = serde_json::from_value(row.public.clone())
        .map_err(|e| ApiError::Internal(format!("connection {}: {e}", row.name)))?;
    view.name = row.name.clone();
    view.created_at = row.created_at;
    view.updated_at = row.updated_at;
    Ok(view)
}

/// Get a connection's metadata and fingerprint.
#[utoipa::path(get, path = "/connections/{name}", tag = "connections",
    summary = "Get a connection's metadata and fingerprint",
    security(("bearer" = ["connections:read"])),
    params(("name" = String, Path, description = "Connection name"), EndUserQuery),
    responses((status = 200, body = ConnectionView), (status = 404, response = Problem)))]
async fn get_connection(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<EndUserQuery>,
) -> ApiResult<Json<ConnectionView>> {
    let (_org, app_id) = caller.app("connections:read")?;
    let row = state
        .store
        .get_connection(&app_id, &name, &end_user_of(&caller, &q)?)
        .await?
        .ok_or_else(|| ApiError::not_found("connection"))?;
    Ok(Json(view(&row)?))
}

/// List the app's connections (while acting for an end-user: theirs and the app's).
#[utoipa::path(get, path = "/connections", tag = "connections", summary = "List connections",
    security(("bearer" = ["connections:read"])),
    responses((status = 200, body = ConnectionList)))]
async fn list_connections(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<ConnectionList>> {
    let (_org, app_id) = caller.app("connections:read")?;
    let mut rows = state.store.list_connections(&app_id).await?;
    rows.retain(|row| caller.sees(Some(row.end_user.as_str())));
    // One page holds every connection: no cursor to keep.
    let unpaged = Page {
        limit: u32::MAX,
        after: None,
    };
    let listed = readable(
        rows,
        &unpaged,
        |r| (r.created_at, r.name.clone()),
        view,
        "connection",
    );
    Ok(Json(ConnectionList {
        data: listed.data,
        next_cursor: None,
    }))
}

/// Delete a connection.
#[utoipa::path(delete, path = "/connections/{name}", tag = "connections", summary = "Delete a connection",
    security(("bearer" = ["connections:write"])),
    params(("name" = String, Path, description = "Connection name", example = "openai"), EndUserQuery),
    responses((status = 204, description = "Deleted"), (status = 404, response = Problem)))]
async fn delete_connection(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<EndUserQuery>,
) -> ApiResult<StatusCode> {
    let (_org, app_id) = caller.app("connections:write")?;
    let end_user = end_user_of(&caller, &q)?;
    if !state
        .store
        .delete_connection(&app_id, &name, &end_user)
        .await?
    {
        return Err(ApiError::not_found("connection"));
    }
    audit::record(
        &state,
        &caller,
        Some(&app_id),
        "connection.delete",
        &name,
        json!({ "end_user": end_user }),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
