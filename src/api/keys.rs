//! API keys: the secret is shown once, stored as a SHA-256 hash; org keys manage the
//! whole org, app keys act on one app with the scopes they were given.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{hash_secret, new_secret, Caller, Principal, SCOPES};
use super::doc::Problem;
use super::error::{ApiError, ApiResult};
use super::extract::{ApiPath, ApiQuery};
use super::idempotency::CarriesSecret;
use super::json::ApiJson;
use super::page::{list, Listed, PageQuery};
use super::{audit, AppState};
use crate::ids::new_id;
use crate::ids::now_ms;
use crate::store::{ApiKey, KeyKind, KeyRevoke, RevokeRule, Store};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_keys, create_key))
        .routes(routes!(revoke_key))
}

/// A key with its secret: the only answer that ever holds the secret.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "id": "key_01hx", "org_id": "org_01hx", "app_id": "app_01hx", "kind": "app",
    "name": "backend", "prefix": "atl_k3j9x2ab", "scopes": ["runs:read", "runs:write"],
    "created_at": 1764892800000_i64, "revoked_at": null,
    "secret": "atl_k3j9x2ab5mfq0w8e7r6t5y4u3i2o1p0a"
}))]
pub struct KeyWithSecret {
    #[serde(flatten)]
    pub key: ApiKey,
    /// Shown once: store it now.
    pub secret: String,
}

/// Creates a key and returns it with its secret (the only time the secret exists). The
/// one way a key is made: the API's handlers and `atoll dev`'s bootstrap call it.
pub async fn issue_key(
    store: &dyn Store,
    org_id: &str,
    app_id: Option<&str>,
    kind: KeyKind,
    name: &str,
    scopes: Vec<String>,
) -> ApiResult<(ApiKey, String)> {
    let secret = new_secret()?;
    let key = ApiKey {
        id: new_id("key"),
        org_id: org_id.to_owned(),
        app_id: app_id.map(str::to_owned),
        kind,
        name: name.to_owned(),
        prefix: secret[..12].to_owned(),
        scopes,
        created_at: now_ms(),
        revoked_at: None,
    };
    store.create_api_key(&key, &hash_secret(&secret)).await?;
    Ok((key, secret))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "name": "backend", "app_id": "app_01hx", "scopes": ["runs:read", "runs:write"] }))]
struct NewKey {
    /// 1 to 200 characters.
    name: String,
    /// Inferred when left out: an app key when `app_id` is given or the caller is an app
    /// key. An org key (all apps) is only made when asked for by name.
    #[serde(default)]
    kind: Option<KeyKind>,
    #[serde(default)]
    app_id: Option<String>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
}

/// Create an API key (its secret is shown once). With `app_id` (or from an app key) an
/// app key; an org key needs `"kind": "org"` and an org key. Scopes default to `*` and
/// never exceed the caller's.
#[utoipa::path(post, path = "/api-keys", operation_id = "create_api_key", tag = "keys", summary = "Create an API key",
    security(("bearer" = ["keys:write"])),
    request_body = NewKey,
    responses((status = 201, body = KeyWithSecret), (status = 404, response = Problem),
        (status = 422, response = Problem)))]
async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewKey>,
) -> ApiResult<Response> {
    let org_id = caller.org("keys:write")?;
    super::orgs::check_name(&body.name, "a key")?;
    if let Some(app_id) = &body.app_id {
        super::extract::check_text("app_id", app_id)?;
    }
    let scopes = body.scopes.unwrap_or_else(|| vec!["*".into()]);
    if let Some(bad) = scopes
        .iter()
        .find(|s| *s != "*" && !SCOPES.contains(&s.as_str()))
    {
        return Err(ApiError::unprocessable(
            "Unknown scope",
            format!("unknown scope '{bad}'; known scopes: {}", SCOPES.join(", ")),
        ));
    }
    // A key never creates a key with more power than its own.
    if !caller.scopes.iter().any(|s| s == "*") {
        if let Some(extra) = scopes.iter().find(|s| !caller.scopes.contains(s)) {
            return Err(ApiError::Forbidden(format!(
                "cannot grant scope '{extra}' that this key does not have"
            )));
        }
    }
    let kind = match body.kind {
        Some(kind) => kind,
        None if body.app_id.is_some() || matches!(caller.principal, Principal::App { .. }) => {
            KeyKind::App
        }
        None => return Err(ApiError::unprocessable(
            "Invalid key",
            "give app_id for an app key, or \"kind\": \"org\" for a key over every app of the org",
        )),
    };
    let app_id = match (kind, &caller.principal, body.app_id) {
        (KeyKind::Org, Principal::Org { .. }, None) => None,
        (KeyKind::Org, _, _) => {
            return Err(ApiError::unprocessable(
                "Invalid key",
                "org keys are created by org keys, without app_id",
            ))
        }
        (KeyKind::App, Principal::Org { .. }, Some(app_id)) => {
            state
                .store
                .get_app(&org_id, &app_id)
                .await?
                .ok_or_else(|| ApiError::not_found("app"))?;
            Some(app_id)
        }
        (KeyKind::App, Principal::App { app_id: own, .. }, requested) => {
            if requested.as_ref().is_some_and(|r| r != own) {
                return Err(ApiError::not_found("app"));
            }
            Some(own.clone())
        }
        (KeyKind::App, _, None) => {
            return Err(ApiError::unprocessable(
                "Invalid key",
                "app keys need app_id",
            ))
        }
        (KeyKind::App, Principal::Admin, Some(_)) => {
            return Err(ApiError::Forbidden(
                "the admin key manages orgs only".into(),
            ))
        }
    };
    let (key, secret) = issue_key(
        state.store.as_ref(),
        &org_id,
        app_id.as_deref(),
        kind,
        &body.name,
        scopes,
    )
    .await?;
    audit::record(
        &state,
        &caller,
        key.app_id.as_deref(),
        "api_key.create",
        &key.id,
        json!({ "kind": key.kind, "scopes": key.scopes }),
    )
    .await?;
    let out = KeyWithSecret { key, secret };
    Ok(CarriesSecret(&["/secret"]).mark((StatusCode::CREATED, Json(out))))
}

/// List the keys of the org (org key) or of the caller's app (app key), newest first;
/// secrets are never listed.
#[utoipa::path(get, path = "/api-keys", operation_id = "list_api_keys", tag = "keys", summary = "List API keys",
    security(("bearer" = ["keys:read"])), params(PageQuery),
    responses((status = 200, body = Listed<ApiKey>)))]
async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Listed<ApiKey>>> {
    let org_id = caller.org("keys:read")?;
    let app_id = match &caller.principal {
        Principal::App { app_id, .. } => Some(app_id.as_str()),
        _ => None,
    };
    let page = q.page()?;
    let keys = state.store.list_api_keys(&org_id, app_id, &page).await?;
    Ok(Json(list(keys, &page, |k| (k.created_at, k.id.clone()))))
}

/// Revoke a key; an app's last key is refused (409) so the app stays reachable.
#[utoipa::path(delete, path = "/api-keys/{id}", operation_id = "revoke_api_key", tag = "keys", summary = "Revoke an API key",
    security(("bearer" = ["keys:write"])),
    params(("id" = String, Path, description = "Key id (`key_...`)", example = "key_01hx")),
    responses((status = 204, description = "Revoked"), (status = 404, response = Problem),
        (status = 409, response = Problem)))]
async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let org_id = caller.org("keys:write")?;
    let app_id = match &caller.principal {
        Principal::App { app_id, .. } => Some(app_id.clone()),
        _ => None,
    };
    // An app key may not revoke its app's last key that manages keys: without one,
    // nobody could act on the app again short of the org. An org key may (it can always
    // make a new app key), so a leaked app key can be revoked at once.
    let rule = match caller.principal {
        Principal::App { .. } => RevokeRule::KeepAppReachable,
        _ => RevokeRule::Any,
    };
    match state
        .store
        .revoke_api_key(&org_id, app_id.as_deref(), &id, now_ms(), rule)
        .await?
    {
        KeyRevoke::Revoked => {}
        KeyRevoke::NotFound => return Err(ApiError::not_found("API key")),
        KeyRevoke::LastKeyOfApp => {
            return Err(ApiError::Conflict(
                "this is the app's last key with scope *; create another such key for the \
                 app first (or revoke with an org key), then revoke this one"
                    .into(),
            ))
        }
    }
    audit::record(
        &state,
        &caller,
        app_id.as_deref(),
        "api_key.revoke",
        &id,
        json!({}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
