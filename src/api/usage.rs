//! `GET /v1/usage`: runs, CPU ms, LLM tokens and fetches of the caller's org or app.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Caller, Principal};
use super::error::{ApiError, ApiResult};
use super::extract::ApiQuery;
use super::AppState;
use crate::ids::now_ms;
use crate::store::UsageTotals;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(usage))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct UsageQuery {
    /// For org keys: one app's usage instead of the whole org's.
    #[serde(default)]
    app_id: Option<String>,
    /// `day` (default), `week` or `month`: the period ending now.
    #[serde(default)]
    #[param(pattern = "^(day|week|month)$")]
    period: Option<String>,
}

/// Usage over a period ending now.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({ "period": "day", "since": 1764806400000_i64, "org_id": "org_01hx",
    "app_id": "app_01hx", "usage": { "runs": 42, "cpu_ms": 120.5, "llm_tokens_in": 1000,
    "llm_tokens_out": 250, "fetches": 12 } }))]
struct UsageView {
    period: String,
    /// Start of the period (ms since the epoch).
    since: i64,
    org_id: String,
    /// Null for an org's total.
    app_id: Option<String>,
    usage: UsageTotals,
}

/// Runs, CPU ms, LLM tokens and fetches of the org (org key, or one app with `?app_id=`)
/// or the caller's app.
#[utoipa::path(get, path = "/usage", operation_id = "get_usage", tag = "usage", summary = "Usage per period",
    security(("bearer" = ["usage:read"])), params(UsageQuery),
    responses((status = 200, body = UsageView), (status = 404, response = super::doc::Problem)))]
async fn usage(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> ApiResult<Json<UsageView>> {
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
    Ok(Json(UsageView {
        period: period.to_owned(),
        since,
        org_id,
        app_id: app_id.map(str::to_owned),
        usage: totals,
    }))
}
