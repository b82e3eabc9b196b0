//! `GET /v1/runs/{id}/events`: a run's events as SSE — the stored history after
//! `Last-Event-ID`, then live, closing after `end`.
//!
//! Every event this stream sends carries its stored id, in order, and none is skipped:
//! the stream subscribes before it reads the history; a live event that is not the next
//! id (the bus lagged, or events were dropped in between) sends it back to the store for
//! the gap; and a store error closes the stream instead of skipping ahead, so the
//! client's `Last-Event-ID` refills the gap on reconnect. The only event without an id is
//! a closing `end` the stream adds for a finished run whose stored history has none
//! after `Last-Event-ID` (the client already had it, or it was never written): an id is
//! never invented.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::stream::{self, BoxStream, Stream, StreamExt};
use serde_json::json;
use tracing::warn;

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::{ApiPath, ApiQuery};
use super::runs::{visible_run, AppQuery};
use super::AppState;
use crate::bus::BusEvent;
use crate::store::{RunStatus, StoredEvent};

/// Events read from the store per query.
const PAGE: u32 = 500;
/// How often a finished run's stream looks in the store for events still on their way.
const END_POLL: Duration = Duration::from_millis(250);
/// Looks without progress after which a finished run's stream stops waiting for an `end`
/// that was never written (about 10 s).
const END_POLLS: u32 = 40;

enum Phase {
    /// Reading the store after `last`.
    Replay,
    /// Following the bus.
    Live,
    /// The run is final and everything stored is sent: waiting for its `end` (live or
    /// in the store), `polls` looks so far without progress.
    Ending {
        status: RunStatus,
        polls: u32,
    },
    Done,
}

struct Cursor {
    state: AppState,
    app_id: String,
    run_id: String,
    /// The id of the last event sent (or the client's `Last-Event-ID`).
    last: i64,
    phase: Phase,
    live: BoxStream<'static, BusEvent>,
}

/// One Server-Sent Event of a run's stream (what the schema of the stream describes).
#[derive(utoipa::ToSchema)]
#[schema(example = json!({ "id": "1", "event": "status", "data": "{\"status\":\"running\"}" }))]
#[allow(dead_code)]
struct RunEventFrame {
    /// The event's number, strictly increasing per run (a closing `end` the stream adds
    /// for a finished run whose stored history has none after `Last-Event-ID` has none).
    id: Option<String>,
    #[schema(
        pattern = "^(status|log|emit|llm\\.delta|tool\\.call|tool\\.result|fetch|waiting|resumed|output|error|log_truncated|end)$"
    )]
    event: String,
    /// The event's JSON, as text.
    data: String,
}

/// The run's events as Server-Sent Events: `id:` strictly increasing per run, `event:`
/// one of status, log, emit, llm.delta, tool.call, tool.result, fetch, waiting, resumed,
/// output, error, and a final `end` after which the stream closes. `Last-Event-ID`
/// resumes after that event with everything stored since.
#[utoipa::path(get, path = "/runs/{id}/events", operation_id = "stream_run_events", tag = "runs",
    summary = "Stream run events (SSE, Last-Event-ID resumes)",
    security(("bearer" = ["runs:read"])),
    params(("id" = String, Path, description = "Run id (`run_...`)"),
        ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this event id"),
        AppQuery),
    responses(
        (status = 200, description = "An SSE stream; the schema describes each event",
            content_type = "text/event-stream", body = RunEventFrame),
        (status = 404, response = super::doc::Problem),
    ))]
pub async fn stream(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<AppQuery>,
    headers: HeaderMap,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let (_org, app_id) = caller
        .app_to_read(&state, "runs:read", q.app_id.as_deref())
        .await?;
    visible_run(&state, &caller, &app_id, &id).await?;
    let after: i64 = match headers.get("last-event-id") {
        None => 0,
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .filter(|n: &i64| *n >= 0)
            .ok_or_else(|| {
                ApiError::BadRequest("Last-Event-ID must be an event id this stream sent".into())
            })?,
    };
    // Subscribe before reading the history so nothing falls between the two.
    let live = state.runs.bus().subscribe(&id).await.map_err(|e| {
        warn!(run = %id, error = %e, "could not subscribe to a run's events");
        ApiError::Unavailable("live events are unavailable; retry shortly".into())
    })?;
    let cursor = Cursor {
        state,
        app_id,
        run_id: id,
        last: after,
        phase: Phase::Replay,
        live,
    };
    let events = stream::unfold(cursor, |mut c| async move {
        let out = step(&mut c).await?;
        Some((stream::iter(out.into_iter().map(Ok)), c))
    })
    .flatten();
    Ok(Sse::new(events).keep_alive(
        KeepAlive::new()
            .interval(Duration::from_secs(15))
            .text("keep-alive"),
    ))
}

fn sse_event(seq: i64, kind: &str, data: &serde_json::Value) -> Event {
    Event::default()
        .id(seq.to_string())
        .event(kind)
        .data(data.to_string())
}

/// The next events to send; `None` closes the stream.
async fn step(c: &mut Cursor) -> Option<Vec<Event>> {
    match std::mem::replace(&mut c.phase, Phase::Done) {
        Phase::Done => None,
        Phase::Replay => replay(c).await,
        Phase::Live => {
            let event = c.live.next().await?;
            c.phase = Phase::Live;
            Some(c.take_live(event))
        }
        Phase::Ending { status, polls } => {
            match tokio::time::timeout(END_POLL, c.live.next()).await {
                Ok(Some(event)) => {
                    c.phase = Phase::Ending { status, polls: 0 };
                    Some(c.take_live(event))
                }
                Ok(None) => Some(vec![closing_end(status)]),
                Err(_) => match c.state.store.events_after(&c.run_id, c.last, PAGE).await {
                    Ok(batch) if !batch.is_empty() => {
                        c.phase = Phase::Ending { status, polls: 0 };
                        Some(c.send(batch))
                    }
                    // Its `end` was never written: close with one that has no id.
                    Ok(_) if polls + 1 >= END_POLLS => Some(vec![closing_end(status)]),
                    Ok(_) => {
                        c.phase = Phase::Ending {
                            status,
                            polls: polls + 1,
                        };
                        Some(Vec::new())
                    }
                    Err(e) => c.close_on(e),
                },
            }
        }
    }
}

async fn replay(c: &mut Cursor) -> Option<Vec<Event>> {
    let store = &c.state.store;
    let batch = match store.events_after(&c.run_id, c.last, PAGE).await {
        Ok(batch) => batch,
        Err(e) => return c.close_on(e),
    };
    if !batch.is_empty() {
        c.phase = Phase::Replay;
        return Some(c.send(batch));
    }
    let row = match store.get_run(&c.app_id, &c.run_id).await {
        Ok(row) => row?,
        Err(e) => return c.close_on(e),
    };
    if !row.status.is_final() {
        c.phase = Phase::Live;
        return Some(Vec::new());
    }
    // Finished and everything stored is sent. If the history ends with `end`, the client
    // has it already (its Last-Event-ID is at or past it); else the end may be on its way.
    match store.last_event(&c.run_id).await {
        // Stored since the read above (the writer raced it): read them first.
        Ok(Some(last)) if last.seq > c.last => {
            c.phase = Phase::Replay;
            Some(Vec::new())
        }
        Ok(Some(last)) if last.kind == "end" => Some(vec![closing_end(row.status)]),
        Ok(_) => {
            c.phase = Phase::Ending {
                status: row.status,
                polls: 0,
            };
            Some(Vec::new())
        }
        Err(e) => c.close_on(e),
    }
}

impl Cursor {
    /// Stored events to send, in order; the stream is done after an `end`.
    fn send(&mut self, events: Vec<StoredEvent>) -> Vec<Event> {
        let mut out = Vec::with_capacity(events.len());
        for e in events {
            self.last = e.seq;
            out.push(sse_event(e.seq, &e.kind, &e.data));
            if e.kind == "end" {
                self.phase = Phase::Done;
                break;
            }
        }
        out
    }

    /// A live event: sent if it is the next one; after a gap the store is read first
    /// (it holds every event published, and the ones in between).
    fn take_live(&mut self, event: BusEvent) -> Vec<Event> {
        let keep = std::mem::replace(&mut self.phase, Phase::Done);
        if event.seq <= self.last {
            self.phase = keep;
            return Vec::new();
        }
        if event.seq > self.last + 1 {
            self.phase = Phase::Replay;
            return Vec::new();
        }
        self.last = event.seq;
        self.phase = if event.kind == "end" {
            Phase::Done
        } else {
            keep
        };
        vec![sse_event(event.seq, &event.kind, &event.data)]
    }

    /// A store error: the stream closes where it is, so the client resumes from the last
    /// event it received instead of missing some.
    fn close_on(&mut self, e: crate::store::StoreError) -> Option<Vec<Event>> {
        warn!(run = %self.run_id, error = %e, "reading run events failed; closing the stream");
        None
    }
}

/// The `end` that closes a finished run's stream when none is left to send from the
/// store; without an id, so the client's `Last-Event-ID` stays on a real event.
fn closing_end(status: RunStatus) -> Event {
    Event::default()
        .event("end")
        .data(json!({ "status": status }).to_string())
}
