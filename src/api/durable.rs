//! Durable runs over HTTP: signals (`POST /v1/runs/{id}/signals/{name}`) and the journal
//! a run replays (`GET /v1/runs/{id}/journal`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::doc::Problem;
use super::error::{ApiError, ApiResult};
use super::extract::{ApiPath, ApiQuery};
use super::idempotency::Committed;
use super::json::ApiJson;
use super::runs::visible_run;
use super::{audit, AppState};
use crate::runs::RunView;

/// Journal entries on one page at most.
const MAX_PAGE: u32 = 1000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(signal))
        .routes(routes!(journal))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "payload": { "approved": true } }))]
struct SignalBody {
    /// Validated against the wait's `schema` (422); at most 256 KiB.
    #[serde(default)]
    payload: Value,
}

/// Deliver a signal to `ctx.waitFor(name)`: it resumes a run waiting for it, or is kept
/// (first come, per name) until the run waits.
#[utoipa::path(post, path = "/runs/{id}/signals/{name}", operation_id = "signal_run", tag = "runs",
    summary = "Deliver a signal to a run's ctx.waitFor(name)",
    security(("bearer" = ["runs:write"])),
    params(("id" = String, Path, description = "Run id (`run_...`)"),
        ("name" = String, Path, description = "Signal name, 1 to 128 characters")),
    request_body = SignalBody,
    responses((status = 202, description = "Delivered or kept", body = RunView),
        (status = 404, response = Problem),
        (status = 409, response = Problem),
        (status = 422, response = Problem)))]
async fn signal(
    State(state): State<AppState>,
    caller: Caller,
    committed: Option<Extension<Committed>>,
    ApiPath((id, name)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<SignalBody>,
) -> ApiResult<(StatusCode, Json<RunView>)> {
    let (_org, app_id) = caller.app("runs:write")?;
    if name.is_empty() || name.len() > 128 {
        return Err(ApiError::BadRequest(
            "a signal name is 1 to 128 characters".into(),
        ));
    }
    visible_run(&state, &caller, &app_id, &id).await?;
    audit::record(
        &state,
        &caller,
        Some(&app_id),
        "run.signal",
        &id,
        json!({ "name": name }),
    )
    .await?;
    let row = state
        .runs
        .signal(&app_id, &id, &name, body.payload)
        .await?
        .ok_or_else(|| ApiError::not_found("run"))?;
    if let Some(Extension(committed)) = committed {
        committed.mark();
    }
    Ok((StatusCode::ACCEPTED, Json(RunView::from(row))))
}

/// A journal entry as listed: where, what, when, how big; never the answer itself
/// (answers hold fetched bodies and tool results, which are the run's own business).
#[derive(Serialize, ToSchema)]
struct EntryView {
    /// Position: the n-th host call of the run.
    seq: i64,
    /// The call's kind (e.g. `fetch`, `tool`, `llm`, `memory.get`, `sleep`, `wait`).
    op: String,
    created_at: i64,
    /// Size of the journaled answer.
    bytes: i64,
}

/// One page of a run's journal, first entries first.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({ "data": [{ "seq": 0, "op": "fetch", "created_at": 1764892800000_i64, "bytes": 412 }],
    "length": 1, "next_cursor": null }))]
struct JournalView {
    data: Vec<EntryView>,
    /// Entries in the journal.
    length: i64,
    /// Pass as `?cursor=` for the next page; null on the last page.
    next_cursor: Option<String>,
}

/// `?limit=&cursor=` over journal positions.
#[derive(Deserialize, Default, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct JournalQuery {
    /// For org keys: which of the org's apps.
    app_id: Option<String>,
    /// Entries per page, 1 to 1000 (default 200).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// The journal a resumed run replays: positions, ops, sizes; never the answers.
#[utoipa::path(get, path = "/runs/{id}/journal", operation_id = "get_run_journal", tag = "runs", summary = "A run's journal",
    security(("bearer" = ["runs:read"])),
    params(("id" = String, Path, description = "Run id (`run_...`)"), JournalQuery),
    responses((status = 200, body = JournalView), (status = 404, response = Problem)))]
async fn journal(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<JournalQuery>,
) -> ApiResult<Json<JournalView>> {
    let (_org, app_id) = caller
        .app_to_read(&state, "runs:read", q.app_id.as_deref())
        .await?;
    visible_run(&state, &caller, &app_id, &id).await?;
    let limit = q.limit.unwrap_or(200);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest(format!("limit is 1 to {MAX_PAGE}")));
    }
    // Position -1 holds the run's seed and start, not a call: pages start after it.
    let after =
        match &q.cursor {
            None => -1,
            Some(c) => c.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                ApiError::BadRequest("cursor is not one this server gave out".into())
            })?,
        };
    let entries = state.store.journal_index(&id, after, limit).await?;
    let next_cursor = (entries.len() as u32 >= limit)
        .then(|| entries.last().map(|e| e.seq.to_string()))
        .flatten();
    let data = entries
        .into_iter()
        .map(|e| EntryView {
            seq: e.seq,
            op: e.op,
            created_at: e.created_at,
            bytes: e.bytes,
        })
        .collect();
    Ok(Json(JournalView {
        data,
        length: state.store.journal_length(&id).await?,
        next_cursor,
    }))
}
