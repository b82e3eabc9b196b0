//! `GET /v1/usage`: runs, CPU ms, LLM tokens and fetches of the caller's org or app.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{Caller, Principal};
use super::error::{ApiError, ApiResult};
use super::extract::ApiQuery;
use super::AppState;
use crate::ids::now_ms;

pub fn router() -> Router<AppState> {
    Router::new().route("/usage", get(usage))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsageQuery {
    /// For org keys: one app's usage instead of the whole org's.
    #[serde(default)]
    app_id: Option<String>,
    /// `day` (default), `week` or `month`: the period ending now.
    #[serde(default)]
    period: Option<String>,
}

async fn usage(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> ApiResult<Json<Value>> {
    let org_id = caller.org("usage:read")?;
    let app_id = match (&caller.principal, &q.app_id) {
        (Principal::Org { .. }, None) => None,
        _ => Some(
            caller
                .app_to_read(&state, "usage:read", q.app_id.as_deref())
                .await?
                .1,
        ),
    };
    let app_id = app_id.as_deref();
    let period = q.period.as_deref().unwrap_or("day");
    let days = match period {
        "day" => 1,
        "week" => 7,
        "month" => 30,
        other => {
            return Err(ApiError::BadRequest(format!(
                "period '{other}' is not day, week or month"
            )))
        }
    };
    let since = now_ms() - days * 86_400_000;
    let totals = state.store.usage(&org_id, app_id, since).await?;
    Ok(Json(
        json!({ "period": period, "since": since, "org_id": org_id, "app_id": app_id, "usage": totals }),
    ))
}
