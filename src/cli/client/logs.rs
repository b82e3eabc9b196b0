//! `atoll logs RUN [--follow]`: a run's events from `GET /v1/runs/{id}/events` (SSE).
//! A dropped connection is resumed with `Last-Event-ID` after a backoff, so no event is
//! missed or shown twice.

use std::time::Duration;

use futures::StreamExt;
use reqwest::header;
use serde_json::{json, Value};

use super::error::{CliError, CliResult, Exit};
use super::http::{seg, Api};
use super::render::EventPrinter;
use crate::status::RunStatus;

/// Reconnections in a row without an event in between before giving up (about 30 s).
const RECONNECTS: u32 = 10;
/// Without `--follow`, a run still going: how long the stream may be quiet before what is
/// stored is taken to be all sent.
const QUIET: Duration = Duration::from_millis(800);

/// One server-sent event; `data` is its JSON (or its text when not JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub id: Option<i64>,
    pub event: String,
    pub data: Value,
}

impl SseEvent {
    /// The form `--json` prints, one per line.
    pub fn to_json(&self) -> Value {
        json!({ "id": self.id, "event": self.event, "data": self.data })
    }
}

/// Splits a byte stream into events (the SSE format: `field: value` lines, a blank line
/// ends an event, `:` lines are comments).
#[derive(Default)]
pub struct SseParser {
    buf: Vec<u8>,
    id: Option<i64>,
    event: Option<String>,
    data: Option<String>,
}

impl SseParser {
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=nl).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line).into_owned();
            if let Some(event) = self.line(&line) {
                out.push(event);
            }
        }
        out
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            let data = self.data.take();
            let event = self.event.take();
            let id = self.id.take();
            if data.is_none() && event.is_none() {
                return None;
            }
            let text = data.unwrap_or_default();
            let data = serde_json::from_str(&text).unwrap_or(Value::String(text));
            return Some(SseEvent {
                id,
                event: event.unwrap_or_else(|| "message".into()),
                data,
            });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => self.id = value.trim().parse().ok(),
            "event" => self.event = Some(value.to_owned()),
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            _ => {}
        }
        None
    }
}

/// How a stream of events ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// The run's `end`, with the status it carries.
    Ended(Option<RunStatus>),
    /// Not following, the run still going: everything stored was shown.
    Quiet,
}

/// Reads a run's events, calling `on_event` for each, until its `end` (or, with
/// `stop_when_quiet`, until the stream has been quiet for a moment). Reconnects with
/// `Last-Event-ID` when the connection drops.
pub async fn stream_events(
    api: &Api,
    run_id: &str,
    stop_when_quiet: bool,
    mut on_event: impl FnMut(&SseEvent),
) -> CliResult<StreamEnd> {
    let path = format!("/v1/runs/{}/events", seg(run_id));
    let query = api.app_query();
    let mut last: Option<i64> = None;
    let mut failures = 0u32;
    loop {
        let mut req = api
            .request(reqwest::Method::GET, &path)
            .query(&query)
            .header(header::ACCEPT, "text/event-stream");
        if let Some(id) = last {
            req = req.header("last-event-id", id.to_string());
        }
        let why = match req.send().await {
            Err(e) => api.unreachable(&e).message,
            Ok(response) if response.status().is_success() => {
                let mut body = response.bytes_stream();
                let mut parser = SseParser::default();
                loop {
                    let next = if stop_when_quiet {
                        match tokio::time::timeout(QUIET, body.next()).await {
                            Ok(next) => next,
                            Err(_) => return Ok(StreamEnd::Quiet),
                        }
                    } else {
                        body.next().await
                    };
                    match next {
                        Some(Ok(chunk)) => {
                            for event in parser.feed(&chunk) {
                                if event.id.is_some() {
                                    last = event.id;
                                }
                                failures = 0;
                                on_event(&event);
                                if event.event == "end" {
                                    let status =
                                        event.data["status"].as_str().and_then(|s| s.parse().ok());
                                    return Ok(StreamEnd::Ended(status));
                                }
                            }
                        }
                        Some(Err(e)) => break super::http::error_chain(&e),
                        None => break "the server closed the stream before the run's end".into(),
                    }
                }
            }
            // A failing server, or a rate limit: worth another try after the backoff.
            Ok(response)
                if response.status().is_server_error()
                    || response.status() == reqwest::StatusCode::TOO_MANY_REQUESTS =>
            {
                api.answer(response)
                    .await
                    .err()
                    .map(|e| e.message)
                    .unwrap_or_default()
            }
            // 4xx: the run is not there, the key is refused: reconnecting will not help.
            Ok(response) => {
                return Err(api.answer(response).await.err().unwrap_or_else(|| {
                    CliError::new(Exit::Unavailable, "the event stream was refused")
                }))
            }
        };
        failures += 1;
        if failures > RECONNECTS {
            return Err(
                CliError::unavailable(format!("lost the event stream of {run_id}: {why}")).hint(
                    format!("`atoll logs {run_id} --follow` picks it up again from the start"),
                ),
            );
        }
        let wait = Duration::from_millis((200u64 << (failures - 1).min(5)).min(5_000));
        let resume = last.map_or("the start".to_owned(), |id| format!("event {id}"));
        eprintln!("atoll: connection lost ({why}); resuming after {resume} in {wait:?}");
        tokio::time::sleep(wait).await;
    }
}

/// Prints a run's events (as lines, or as JSON lines with `json`) until its end.
pub async fn print_events(
    api: &Api,
    run_id: &str,
    stop_when_quiet: bool,
    json: bool,
) -> CliResult<StreamEnd> {
    let mut printer = EventPrinter::default();
    let end = stream_events(api, run_id, stop_when_quiet, |event| {
        if json {
            println!("{}", event.to_json());
        } else {
            printer.print(event);
        }
    })
    .await;
    printer.finish();
    end
}

/// `atoll logs`: the whole history of an ended run; with `follow`, a running run's
/// events as they come until its end; without, a running run's stored events so far.
pub async fn logs(api: &Api, run_id: &str, follow: bool, json: bool) -> CliResult<Exit> {
    let stop_when_quiet = if follow {
        false
    } else {
        let run = api
            .get(&format!("/v1/runs/{}", seg(run_id)), &api.app_query())
            .await?
            .body;
        let status: Option<RunStatus> = run["status"].as_str().and_then(|s| s.parse().ok());
        !status.is_some_and(RunStatus::is_final)
    };
    match print_events(api, run_id, stop_when_quiet, json).await? {
        StreamEnd::Quiet if !json => {
            eprintln!(
                "atoll: {run_id} has not ended; these are its events so far (`atoll logs {run_id} --follow` waits for more)"
            );
        }
        _ => {}
    }
    Ok(Exit::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parser_handles_split_chunks_comments_and_crlf() {
        let mut p = SseParser::default();
        assert!(p.feed(b": keep-alive\n\nid: 3\nevent: log\nda").is_empty());
        let events = p.feed(b"ta: {\"level\":\"info\"}\r\n\r\nevent: end\ndata: {}\n\n");
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].id, Some(3));
        assert_eq!(events[0].event, "log");
        assert_eq!(events[0].data["level"], "info");
        assert_eq!(events[1].id, None);
        assert_eq!(events[1].event, "end");
        let events = p.feed(b"data: a\ndata: b\n\n");
        assert_eq!(events[0].data, Value::String("a\nb".into()));
    }
}
