//! Orgs: created by the operator's admin key; creating one returns its first org key.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Caller, Principal};
use super::doc::Problem;
use super::error::{ApiError, ApiResult};
use super::extract::ApiPath;
use super::idempotency::CarriesSecret;
use super::json::ApiJson;
use super::keys::{issue_key, KeyWithSecret};
use super::{audit, AppState};
use crate::ids::new_id;
use crate::ids::now_ms;
use crate::store::{KeyKind, Org};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_org))
        .routes(routes!(get_org))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "name": "Acme" }))]
struct NewOrg {
    /// 1 to 200 characters.
    name: String,
}

/// A new org and its first org key (the secret is shown once).
#[derive(Serialize, ToSchema)]
struct CreatedOrg {
    org: Org,
    key: KeyWithSecret,
}

pub fn check_name(name: &str, what: &str) -> ApiResult<()> {
    super::extract::check_text(&format!("{what} name"), name)?;
    if name.trim().is_empty() || name.len() > 200 {
        return Err(ApiError::unprocessable(
            "Invalid name",
            format!("{what} name must be 1 to 200 characters"),
        ));
    }
    Ok(())
}

/// Create an org and its first org key (admin key only).
#[utoipa::path(post, path = "/orgs", tag = "orgs", summary = "Create an org and its first org key",
    security(("bearer" = ["admin"])), request_body = NewOrg,
    responses((status = 201, body = CreatedOrg), (status = 422, response = Problem)))]
async fn create_org(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewOrg>,
) -> ApiResult<Response> {
    if caller.principal != Principal::Admin {
        return Err(ApiError::Forbidden(
            "only the admin key creates orgs".into(),
        ));
    }
    check_name(&body.name, "an org")?;
    let org = Org {
        id: new_id("org"),
        name: body.name,
        created_at: now_ms(),
    };
    state.store.create_org(&org).await?;
    let (key, secret) = issue_key(
        state.store.as_ref(),
        &org.id,
        None,
        KeyKind::Org,
        "initial org key",
        vec!["*".into()],
    )
    .await?;
    audit::record(
        &state,
        &caller,
        None,
        "org.create",
        &org.id,
        json!({ "org_id": org.id, "key_id": key.id }),
    )
    .await?;
    let body = CreatedOrg {
        org,
        key: KeyWithSecret { key, secret },
    };
    Ok(CarriesSecret(&["/key/secret"]).mark((StatusCode::CREATED, Json(body))))
}

/// Get an org: the admin key reads any, other keys their own.
#[utoipa::path(get, path = "/orgs/{id}", tag = "orgs", summary = "Get an org",
    security(("bearer" = [])), params(("id" = String, Path, description = "Org id (`org_...`)")),
    responses((status = 200, body = Org), (status = 404, response = Problem)))]
async fn get_org(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Org>> {
    let allowed = match &caller.principal {
        Principal::Admin => true,
        Principal::Org { org_id } | Principal::App { org_id, .. } => *org_id == id,
    };
    if !allowed {
        return Err(ApiError::not_found("org"));
    }
    state
        .store
        .get_org(&id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("org"))
}
