//! Durable runs over HTTP: signals (`POST /v1/runs/{id}/signals/{name}`) and the journal
//! a run replays (`GET /v1/runs/{id}/journal`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::{ApiPath, ApiQuery};
use super::idempotency::Committed;
use super::json::ApiJson;
use super::runs::{visible_run, AppQuery};
use super::{audit, AppState};
use crate::runs::RunView;

/// Journal entries listed at most.
const MAX_LISTED: usize = 1000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/runs/{id}/signals/{name}", post(signal))
        .route("/runs/{id}/journal", get(journal))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignalBody {
    #[serde(default)]
    payload: Value,
}

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
#[derive(Serialize)]
struct EntryView {
    seq: i64,
    op: String,
    created_at: i64,
    bytes: usize,
}

async fn journal(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<AppQuery>,
) -> ApiResult<Json<Value>> {
    let (_org, app_id) = caller
        .app_to_read(&state, "runs:read", q.app_id.as_deref())
        .await?;
    visible_run(&state, &caller, &app_id, &id).await?;
    // Position -1 holds the run's seed and start, not a call.
    let mut entries = state.store.journal(&id).await?;
    entries.retain(|e| e.seq >= 0);
    let total = entries.len();
    let data: Vec<EntryView> = entries
        .into_iter()
        .take(MAX_LISTED)
        .map(|e| EntryView {
            seq: e.seq,
            op: e.op,
            created_at: e.created_at,
            bytes: e.answer.len(),
        })
        .collect();
    Ok(Json(
        json!({ "data": data, "length": total, "truncated": total > MAX_LISTED }),
    ))
}
