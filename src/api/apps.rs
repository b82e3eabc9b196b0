//! Apps of an org.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{Caller, Principal};
use super::error::{ApiError, ApiResult};
use super::extract::{ApiPath, ApiQuery};
use super::json::ApiJson;
use super::orgs::check_name;
use super::page::{list, PageQuery};
use super::{audit, AppState};
use crate::ids::new_id;
use crate::ids::now_ms;
use crate::store::App;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/apps", get(list_apps).post(create_app))
        .route("/apps/{id}", get(get_app))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewApp {
    name: String,
    #[serde(default)]
    settings: Option<Value>,
}

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

async fn list_apps(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Value>> {
    let org_id = caller.org("apps:read")?;
    let page = q.page()?;
    let mut apps = state.store.list_apps(&org_id, &page).await?;
    if let Principal::App { app_id, .. } = &caller.principal {
        apps.retain(|a| &a.id == app_id);
    }
    Ok(Json(list(&apps, &page, |a| (a.created_at, a.id.clone()))))
}

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
