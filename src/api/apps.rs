//! Apps of an org.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Caller, Principal};
use super::doc::Problem;
use super::error::{ApiError, ApiResult};
use super::extract::{ApiPath, ApiQuery};
use super::json::ApiJson;
use super::orgs::check_name;
use super::page::{list, Listed, PageQuery};
use super::{audit, AppState};
use crate::ids::new_id;
use crate::ids::now_ms;
use crate::store::App;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_apps, create_app))
        .routes(routes!(get_app))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "name": "support", "settings": { "limits": { "timeout_ms": 30000 } } }))]
struct NewApp {
    /// 1 to 200 characters.
    name: String,
    /// Per-app settings (limit ceilings, quotas): a JSON object.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    settings: Option<Value>,
}

/// Create an app (org key).
#[utoipa::path(post, path = "/apps", tag = "apps", summary = "Create an app",
    security(("bearer" = ["apps:write"])), request_body = NewApp,
    responses((status = 201, body = App), (status = 422, response = Problem)))]
async fn create_app(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewApp>,
) -> ApiResult<(StatusCode, Json<App>)> {
    let org_id = caller.org("apps:write")?;
    if matches!(caller.principal, Principal::App { .. }) {
        return Err(ApiError::Forbidden(
            "apps are created with an org key".into(),
        ));
    }
    check_name(&body.name, "an app")?;
    let settings = body.settings.unwrap_or_else(|| json!({}));
    if !settings.is_object() {
        return Err(ApiError::unprocessable(
            "Invalid settings",
            "settings must be a JSON object",
        ));
    }
    let app = App {
        id: new_id("app"),
        org_id,
        name: body.name,
        settings,
        created_at: now_ms(),
    };
    state.store.create_app(&app).await?;
    audit::record(
        &state,
        &caller,
        Some(&app.id),
        "app.create",
        &app.id,
        json!({ "name": app.name }),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(app)))
}

/// List the org's apps (an app key sees its own).
#[utoipa::path(get, path = "/apps", tag = "apps", summary = "List apps",
    security(("bearer" = ["apps:read"])), params(PageQuery),
    responses((status = 200, body = Listed<App>)))]
async fn list_apps(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Listed<App>>> {
    let org_id = caller.org("apps:read")?;
    let page = q.page()?;
    let mut apps = state.store.list_apps(&org_id, &page).await?;
    if let Principal::App { app_id, .. } = &caller.principal {
        apps.retain(|a| &a.id == app_id);
    }
    Ok(Json(list(apps, &page, |a| (a.created_at, a.id.clone()))))
}

/// Get an app.
#[utoipa::path(get, path = "/apps/{id}", tag = "apps", summary = "Get an app",
    security(("bearer" = ["apps:read"])), params(("id" = String, Path, description = "App id (`app_...`)")),
    responses((status = 200, body = App), (status = 404, response = Problem)))]
async fn get_app(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<App>> {
    let org_id = caller.org("apps:read")?;
    if let Principal::App { app_id, .. } = &caller.principal {
        if *app_id != id {
            return Err(ApiError::not_found("app"));
        }
    }
    state
        .store
        .get_app(&org_id, &id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("app"))
}
