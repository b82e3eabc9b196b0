//! Runs: start (`?wait=` for a synchronous answer), get, list, cancel; the SSE event
//! stream is in `run_events`.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::agents::AgentPath;
use super::agents::{agent_name, latest_version};
use super::auth::Caller;
use super::doc::Problem;
use super::error::{rate_limit_headers, ApiError, ApiResult};
use super::extract::{check_text, ApiPath, ApiQuery};
use super::idempotency::Committed;
use super::json::ApiJson;
use super::page::{list, Listed, PageQuery};
use super::{audit, AppState};
use crate::ids::new_id;
use crate::ids::now_ms;
pub use crate::runs::RunView;
use crate::runs::{NewRun, RunError};
use crate::store::{RunFilter, RunRow, RunStatus};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_run))
        .routes(routes!(list_runs))
        .routes(routes!(get_run))
        .routes(routes!(cancel_run))
        .routes(routes!(super::run_events::stream))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "input": { "name": "Ada" }, "metadata": { "ticket": "T-1" } }))]
struct StartRun {
    /// Validated against the agent's `input_schema` (422 and no run when it fails).
    #[serde(default)]
    #[schema(value_type = Object)]
    input: Value,
    /// A version to pin; the latest (highest semver, not deprecated) when left out.
    version: Option<String>,
    /// The end-user this run acts for (their external id, 1 to 256 characters).
    end_user: Option<String>,
    /// Free-form JSON kept with the run.
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
}

#[derive(Deserialize, Default, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct WaitQuery {
    /// Seconds (at most 60) to wait for the run to end: 200 with the finished run, or
    /// 202 if it is still going.
    #[param(maximum = 60)]
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
            RunError::Busy(why) => ApiError::Conflict(why),
            RunError::ShuttingDown => {
                ApiError::Unavailable("this node is shutting down; retry on another".into())
            }
        }
    }
}

/// Start a run of the agent's latest (or pinned) version.
#[utoipa::path(post, path = "/agents/{scope}/{name}/runs", tag = "runs",
    summary = "Start a run (?wait=N for up to 60 s)",
    security(("bearer" = ["runs:write"])),
    params(AgentPath, WaitQuery),
    request_body = StartRun,
    responses(
        (status = 202, description = "Queued or still running", body = RunView),
        (status = 200, description = "Finished within `wait`", body = RunView),
        (status = 404, response = Problem), (status = 409, response = Problem),
        (status = 422, response = Problem),
    ))]
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
    let new = NewRun {
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
    };
    // The side effect is committed once the run is stored, whether or not the client
    // stays for the wait; whatever happens after, the answer names the run.
    let mark = || {
        if let Some(Extension(committed)) = &committed {
            committed.mark();
        }
    };
    let (row, rate) = if wait > 0 {
        state
            .runs
            .create_and_wait(new, Duration::from_secs(wait), mark)
            .await?
    } else {
        let created = state.runs.create(new).await?;
        mark();
        created
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

#[derive(Deserialize, Default, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct RunsQuery {
    /// For org keys: which of the org's apps.
    app_id: Option<String>,
    /// `@scope/name` or `scope/name`.
    agent: Option<String>,
    #[param(value_type = Option<RunStatus>)]
    status: Option<String>,
    /// An end-user's external id.
    end_user: Option<String>,
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// List runs, newest first.
#[utoipa::path(get, path = "/runs", tag = "runs", summary = "List runs (?agent=&status=&end_user=)",
    security(("bearer" = ["runs:read"])), params(RunsQuery),
    responses((status = 200, body = Listed<RunView>), (status = 404, response = Problem)))]
async fn list_runs(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<RunsQuery>,
) -> ApiResult<Json<Listed<RunView>>> {
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
    Ok(Json(list(views, &page, |r| (r.created_at, r.id.clone()))))
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
#[derive(Deserialize, Default, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct AppQuery {
    /// For org keys: which of the org's apps.
    pub app_id: Option<String>,
}

/// Get a run, with what a `waiting` run waits for and its journal's length.
#[utoipa::path(get, path = "/runs/{id}", tag = "runs", summary = "Get a run",
    security(("bearer" = ["runs:read"])),
    params(("id" = String, Path, description = "Run id (`run_...`)"), AppQuery),
    responses((status = 200, body = RunView), (status = 404, response = Problem)))]
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

/// Cancel a run: a queued or waiting run ends at once, a running one within the cancel
/// grace; an ended run is answered as it is.
#[utoipa::path(post, path = "/runs/{id}/cancel", tag = "runs", summary = "Cancel a run",
    security(("bearer" = ["runs:write"])),
    params(("id" = String, Path, description = "Run id (`run_...`)")),
    responses((status = 200, body = RunView), (status = 404, response = Problem)))]
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
