//! Runs: start (`?wait=` for a synchronous answer), get, list, cancel; the SSE event
//! stream is in `run_events`.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::agents::{agent_name, latest_version};
use super::auth::Caller;
use super::error::{rate_limit_headers, ApiError, ApiResult};
use super::extract::{check_text, ApiPath, ApiQuery};
use super::idempotency::Committed;
use super::json::ApiJson;
use super::page::{list, PageQuery};
use super::{audit, AppState};
use crate::ids::new_id;
use crate::ids::now_ms;
pub use crate::runs::RunView;
use crate::runs::{NewRun, RunError};
use crate::store::{RunFilter, RunRow, RunStatus};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/agents/{scope}/{name}/runs", post(start_run))
        .route("/runs", get(list_runs))
        .route("/runs/{id}", get(get_run))
        .route("/runs/{id}/cancel", post(cancel_run))
        .route("/runs/{id}/events", get(super::run_events::stream))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartRun {
    #[serde(default)]
    input: Value,
    version: Option<String>,
    end_user: Option<String>,
    metadata: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct WaitQuery {
    wait: Option<u64>,
}

impl From<RunError> for ApiError {
    fn from(e: RunError) -> Self {
        match e {
            RunError::InputInvalid(why) => ApiError::unprocessable("Invalid input", why),
            RunError::PackageInvalid(why) => ApiError::unprocessable("Invalid agent package", why),
            RunError::Refused(refused) => refused.into(),
            RunError::Store(e) => e.into(),
            RunError::TriggerPaused => {
                ApiError::Conflict("this trigger is paused; resume it to start runs again".into())
            }
            RunError::Ended(status) => ApiError::Conflict(format!(
                "the run has ended ({status}); signals reach only runs that have not"
            )),
            RunError::ShuttingDown => {
                ApiError::Unavailable("this node is shutting down; retry on another".into())
            }
        }
    }
}

async fn start_run(
    State(state): State<AppState>,
    caller: Caller,
    committed: Option<Extension<Committed>>,
    ApiPath((scope, name)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<WaitQuery>,
    ApiJson(body): ApiJson<StartRun>,
) -> ApiResult<Response> {
    let (org_id, app_id) = caller.app("runs:write")?;
    let wait = q.wait.unwrap_or(0);
    if wait > 60 {
        return Err(ApiError::BadRequest("wait is at most 60 seconds".into()));
    }
    let full_name = agent_name(&scope, &name);
    let version = match &body.version {
        Some(v) => {
            check_text("version", v)?;
            state
                .store
                .get_agent_version(&app_id, &full_name, v)
                .await?
        }
        None => latest_version(&state, &app_id, &full_name).await?,
    }
    .ok_or_else(|| ApiError::not_found("agent or version"))?;
    let version_name = version.version.clone();

    let end_user = caller.acting_end_user(body.end_user.as_deref())?;
    if let Some(external) = &end_user {
        if external.is_empty() || external.len() > 256 {
            return Err(ApiError::BadRequest(
                "end_user is 1 to 256 characters".into(),
            ));
        }
        state
            .store
            .upsert_end_user(&app_id, external, &new_id("eu"), now_ms())
            .await?;
    }
    let (row, rate) = state
        .runs
        .create(NewRun {
            org_id,
            app_id: app_id.clone(),
            version,
            input: body.input,
            end_user,
            metadata: body.metadata,
            trigger: "api".into(),
            // Stored with the run: a run is never created without its trace.
            audit: audit::event(
                &caller,
                Some(&app_id),
                "run.create",
                "",
                json!({ "agent": full_name, "version": version_name }),
            ),
            firing: None,
        })
        .await?;
    if let Some(Extension(committed)) = committed {
        committed.mark();
    }
    // The run exists from here on: whatever happens, the answer names it.
    let row = if wait > 0 {
        match state
            .runs
            .wait(&app_id, &row.id, Duration::from_secs(wait))
            .await
        {
            Ok(latest) => latest.unwrap_or(row),
            Err(e) => {
                tracing::warn!(run = %row.id, error = %e, "waiting for a run failed; answering 202");
                row
            }
        }
    } else {
        row
    };
    let status = if row.status.is_final() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let mut response = (status, Json(RunView::from(row))).into_response();
    rate_limit_headers(response.headers_mut(), &rate);
    Ok(response)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RunsQuery {
    /// For org keys: which of the org's apps.
    app_id: Option<String>,
    agent: Option<String>,
    status: Option<String>,
    end_user: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

async fn list_runs(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<RunsQuery>,
) -> ApiResult<Json<Value>> {
    let (_org, app_id) = caller
        .app_to_read(&state, "runs:read", q.app_id.as_deref())
        .await?;
    let status = q
        .status
        .as_deref()
        .map(str::parse::<RunStatus>)
        .transpose()
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor.clone(),
    }
    .page()?;
    let filter = RunFilter {
        // `@scope/name` as stored, or `scope/name` as in paths.
        agent: q.agent.as_deref().map(|a| {
            if a.starts_with('@') {
                a.to_owned()
            } else {
                format!("@{a}")
            }
        }),
        status,
        end_user: caller.acting_end_user(q.end_user.as_deref())?,
    };
    let rows = state.store.list_runs(&app_id, &filter, &page).await?;
    let views: Vec<RunView> = rows.into_iter().map(RunView::from).collect();
    Ok(Json(list(&views, &page, |r| (r.created_at, r.id.clone()))))
}

/// A run of the caller's app that the caller may see: another tenant's run, or another
/// end-user's (or the app's own) run for an impersonating caller, does not exist.
pub(super) async fn visible_run(
    state: &AppState,
    caller: &Caller,
    app_id: &str,
    id: &str,
) -> ApiResult<RunRow> {
    state
        .store
        .get_run(app_id, id)
        .await?
        .filter(|row| caller.sees(row.end_user.as_deref()))
        .ok_or_else(|| ApiError::not_found("run"))
}

/// `?app_id=`: which app an org key reads (app keys may leave it out).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct AppQuery {
    pub app_id: Option<String>,
}

async fn get_run(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<AppQuery>,
) -> ApiResult<Json<RunView>> {
    let (_org, app_id) = caller
        .app_to_read(&state, "runs:read", q.app_id.as_deref())
        .await?;
    let row = visible_run(&state, &caller, &app_id, &id).await?;
    let waiting = row.status == RunStatus::Waiting;
    let mut view = RunView::from(row);
    view.journal_length = Some(state.store.journal_length(&id).await?);
    if waiting {
        view.wait = state
            .store
            .run_wait(&id)
            .await?
            .map(|w| crate::runs::WaitView {
                signal: w.name,
                wake_at: w.wake_at,
            });
    }
    Ok(Json(view))
}

async fn cancel_run(
    State(state): State<AppState>,
    caller: Caller,
    committed: Option<Extension<Committed>>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<RunView>> {
    let (_org, app_id) = caller.app("runs:write")?;
    visible_run(&state, &caller, &app_id, &id).await?;
    // Recorded before the cancel, which cannot be undone: no cancel without its trace.
    audit::record(&state, &caller, Some(&app_id), "run.cancel", &id, json!({})).await?;
    let row = state
        .runs
        .cancel(&app_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("run"))?;
    if let Some(Extension(committed)) = committed {
        committed.mark();
    }
    // A running run ends within the cancel grace; give it that long to report.
    let row = if row.status.is_final() {
        row
    } else {
        match state
            .runs
            .wait(&app_id, &id, Duration::from_millis(500))
            .await
        {
            Ok(latest) => latest.unwrap_or(row),
            Err(e) => {
                tracing::warn!(run = %id, error = %e, "re-reading a cancelled run failed");
                row
            }
        }
    };
    Ok(Json(RunView::from(row)))
}
