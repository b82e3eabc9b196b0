//! Runs: start (`?wait=` for a synchronous answer), get, list, cancel, and the SSE event
//! stream with `Last-Event-ID` replay.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};

use super::agents::{agent_name, latest_version};
use super::auth::Caller;
use super::error::{rate_limit_headers, ApiError, ApiResult};
use super::json::ApiJson;
use super::page::{list, PageQuery};
use super::{audit, AppState};
use crate::runs::adapters::now_ms;
use crate::runs::{is_final, new_id, NewRun, RunError};
use crate::store::{RunFilter, RunRow};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/agents/{scope}/{name}/runs", post(start_run))
        .route("/runs", get(list_runs))
        .route("/runs/{id}", get(get_run))
        .route("/runs/{id}/cancel", post(cancel_run))
        .route("/runs/{id}/events", get(run_events))
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
            RunError::Concurrency { decision, .. } => ApiError::RateLimited {
                what: e_msg("concurrent runs"),
                decision,
            },
            RunError::Store(e) => e.into(),
            RunError::Quota(why) => {
                ApiError::Unavailable(format!("quota backend unavailable: {why}"))
            }
            RunError::ShuttingDown => {
                ApiError::Unavailable("this node is shutting down; retry on another".into())
            }
        }
    }
}

fn e_msg(what: &str) -> String {
    format!("{what} limit reached for this app")
}

async fn start_run(
    State(state): State<AppState>,
    caller: Caller,
    Path((scope, name)): Path<(String, String)>,
    Query(q): Query<WaitQuery>,
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
            state
                .store
                .get_agent_version(&app_id, &full_name, v)
                .await?
        }
        None => latest_version(&state, &app_id, &full_name).await?,
    }
    .ok_or_else(|| ApiError::not_found("agent or version"))?;

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
    // Quotas: runs per minute and CPU per day, per app.
    let quotas = &state.quotas;
    let rate = quotas
        .hit(
            &format!("runs:app:{app_id}"),
            state.limits.runs_per_minute,
            Duration::from_secs(60),
        )
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    if !rate.allowed {
        return Err(ApiError::RateLimited {
            what: e_msg("runs per minute"),
            decision: rate,
        });
    }
    let cpu = quotas
        .check_budget(
            &format!("cpu:app:{app_id}"),
            state.limits.cpu_ms_per_day,
            Duration::from_secs(86_400),
        )
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    if !cpu.allowed {
        return Err(ApiError::RateLimited {
            what: e_msg("CPU milliseconds per day"),
            decision: cpu,
        });
    }

    let row = state
        .runs
        .create(NewRun {
            org_id,
            app_id: app_id.clone(),
            version,
            input: body.input,
            end_user,
            metadata: body.metadata,
            trigger: "api".into(),
        })
        .await?;
    audit::record(
        &state,
        &caller,
        Some(&app_id),
        "run.create",
        &row.id,
        json!({ "agent": row.agent, "version": row.version }),
    )
    .await?;
    let row = if wait > 0 {
        state
            .runs
            .wait(&app_id, &row.id, Duration::from_secs(wait))
            .await?
            .unwrap_or(row)
    } else {
        row
    };
    let status = if is_final(&row.status) {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let mut response = (status, Json(run_json(&row))).into_response();
    rate_limit_headers(response.headers_mut(), &rate);
    Ok(response)
}

pub fn run_json(row: &RunRow) -> Value {
    json!(row)
        .as_object()
        .map(|o| {
            let mut o = o.clone();
            o.remove("lease_owner");
            o.remove("lease_expires_at");
            Value::Object(o)
        })
        .unwrap_or(Value::Null)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RunsQuery {
    agent: Option<String>,
    status: Option<String>,
    end_user: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

async fn list_runs(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<RunsQuery>,
) -> ApiResult<Json<Value>> {
    let (_org, app_id) = caller.app("runs:read")?;
    if let Some(status) = &q.status {
        if !matches!(
            status.as_str(),
            "queued" | "running" | "succeeded" | "failed" | "timed_out" | "cancelled"
        ) {
            return Err(ApiError::BadRequest(format!("unknown status '{status}'")));
        }
    }
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor.clone(),
    }
    .page()?;
    let filter = RunFilter {
        agent: q.agent.clone(),
        status: q.status.clone(),
        end_user: caller.acting_end_user(q.end_user.as_deref())?,
    };
    let rows = state.store.list_runs(&app_id, &filter, &page).await?;
    let mut out = list(&rows, &page, |r| (r.created_at, r.id.clone()));
    if let Some(data) = out.get_mut("data").and_then(Value::as_array_mut) {
        for item in data.iter_mut() {
            if let Some(o) = item.as_object_mut() {
                o.remove("lease_owner");
                o.remove("lease_expires_at");
            }
        }
    }
    Ok(Json(out))
}

/// A run of the caller's app that the caller may see: another tenant's run, or another
/// end-user's (or the app's own) run for an impersonating caller, does not exist.
async fn visible_run(
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

async fn get_run(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (_org, app_id) = caller.app("runs:read")?;
    let row = visible_run(&state, &caller, &app_id, &id).await?;
    Ok(Json(run_json(&row)))
}

async fn cancel_run(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (_org, app_id) = caller.app("runs:write")?;
    visible_run(&state, &caller, &app_id, &id).await?;
    let row = state
        .runs
        .cancel(&app_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("run"))?;
    audit::record(&state, &caller, Some(&app_id), "run.cancel", &id, json!({})).await?;
    // A running run ends within the cancel grace; give it that long to report.
    let row = if is_final(&row.status) {
        row
    } else {
        state
            .runs
            .wait(&app_id, &id, Duration::from_millis(500))
            .await?
            .unwrap_or(row)
    };
    Ok(Json(run_json(&row)))
}

fn sse_event(seq: i64, kind: &str, data: &Value) -> Event {
    Event::default()
        .id(seq.to_string())
        .event(kind)
        .data(data.to_string())
}

async fn run_events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let (_org, app_id) = caller.app("runs:read")?;
    visible_run(&state, &caller, &app_id, &id).await?;
    let after: i64 = match headers.get("last-event-id") {
        None => 0,
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| {
                ApiError::BadRequest("Last-Event-ID must be an event id this stream sent".into())
            })?,
    };
    // Subscribe before reading the history so nothing falls between the two.
    let live = state
        .runs
        .bus()
        .subscribe(&id)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    struct Cursor {
        state: AppState,
        app_id: String,
        run_id: String,
        last: i64,
        replaying: bool,
        ended: bool,
        live: futures::stream::BoxStream<'static, crate::bus::BusEvent>,
    }
    let cursor = Cursor {
        state,
        app_id,
        run_id: id,
        last: after,
        replaying: true,
        ended: false,
        live,
    };
    let events = stream::unfold(cursor, |mut c| async move {
        if c.ended {
            return None;
        }
        if c.replaying {
            let batch = c
                .state
                .store
                .events_after(&c.run_id, c.last, 500)
                .await
                .unwrap_or_default();
            if !batch.is_empty() {
                let mut out = Vec::with_capacity(batch.len());
                for e in batch {
                    c.last = e.seq;
                    c.ended |= e.kind == "end";
                    out.push(Ok(sse_event(e.seq, &e.kind, &e.data)));
                }
                return Some((stream::iter(out), c));
            }
            c.replaying = false;
            // A finished run whose end event never made it to the store still closes.
            if let Ok(Some(row)) = c.state.store.get_run(&c.app_id, &c.run_id).await {
                if is_final(&row.status) {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let tail = c
                        .state
                        .store
                        .events_after(&c.run_id, c.last, 500)
                        .await
                        .unwrap_or_default();
                    let mut out: Vec<Result<Event, Infallible>> = Vec::new();
                    for e in tail {
                        c.last = e.seq;
                        c.ended |= e.kind == "end";
                        out.push(Ok(sse_event(e.seq, &e.kind, &e.data)));
                    }
                    if !c.ended {
                        c.ended = true;
                        out.push(Ok(sse_event(
                            c.last + 1,
                            "end",
                            &json!({ "status": row.status }),
                        )));
                    }
                    return Some((stream::iter(out), c));
                }
            }
        }
        loop {
            let event = c.live.next().await?;
            if event.seq <= c.last {
                continue;
            }
            c.last = event.seq;
            c.ended = event.kind == "end";
            return Some((
                stream::iter(vec![Ok(sse_event(event.seq, &event.kind, &event.data))]),
                c,
            ));
        }
    })
    .flatten();
    Ok(Sse::new(events).keep_alive(
        KeepAlive::new()
            .interval(Duration::from_secs(15))
            .text("keep-alive"),
    ))
}
