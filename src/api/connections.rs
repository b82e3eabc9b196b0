//! Connections: named credentials the broker injects into outbound requests. Secrets are
//! write-only: they are sealed (AES-256-GCM) before they reach the store, and every read
//! shows metadata and a fingerprint, never the secret.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::{ApiPath, ApiQuery};
use super::json::ApiJson;
use super::{audit, AppState};
use crate::broker::connection::{describe, Connection, ConnectionSecret};
use crate::broker::connection_aad;
use crate::broker::destination::validate_entry;
use crate::ids::now_ms;
use crate::llm::Provider;
use crate::store::ConnectionRow;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/connections", get(list_connections))
        .route(
            "/connections/{name}",
            get(get_connection)
                .put(put_connection)
                .delete(delete_connection),
        )
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct EndUserQuery {
    end_user: Option<String>,
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

async fn put_connection(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<EndUserQuery>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
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
    Ok((status, Json(view(&row))))
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

fn view(row: &ConnectionRow) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), json!(row.name));
    if let Value::Object(public) = &row.public {
        for (k, v) in public {
            out.insert(k.clone(), v.clone());
        }
    }
    out.insert("created_at".into(), json!(row.created_at));
    out.insert("updated_at".into(), json!(row.updated_at));
    Value::Object(out)
}

async fn get_connection(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<EndUserQuery>,
) -> ApiResult<Json<Value>> {
    let (_org, app_id) = caller.app("connections:read")?;
    let row = state
        .store
        .get_connection(&app_id, &name, &end_user_of(&caller, &q)?)
        .await?
        .ok_or_else(|| ApiError::not_found("connection"))?;
    Ok(Json(view(&row)))
}

async fn list_connections(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let (_org, app_id) = caller.app("connections:read")?;
    let rows = state.store.list_connections(&app_id).await?;
    let data: Vec<Value> = rows
        .iter()
        .filter(|row| caller.sees(Some(row.end_user.as_str())))
        .map(view)
        .collect();
    Ok(Json(json!({ "data": data, "next_cursor": null })))
}

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
