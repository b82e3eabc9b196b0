//! `fetch` on the host side: the grant's host list, the connection grant, the per-run
//! fetch count and response size caps, then the host's [`Fetcher`](crate::host::Fetcher).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use deno_core::{op2, JsBuffer, OpState};
use deno_error::JsErrorBox;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{parse_bounded, refusal, run_scope};
use crate::broker::{FetchError, FetchLimits, FetchRequest, Redirect};
use crate::sandbox::record::{ErrorCode, EventKind};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FetchCall {
    method: String,
    url: String,
    #[serde(default)]
    headers: Vec<(String, String)>,
    #[serde(default)]
    connection: Option<String>,
    #[serde(default)]
    has_body: bool,
    #[serde(default)]
    redirect: Redirect,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FetchAnswer {
    status: u16,
    status_text: String,
    headers: Vec<(String, String)>,
    url: String,
    redirected: bool,
    /// The body stays on the host until the isolate copies it into a buffer it
    /// allocated itself ([`op_atoll_fetch_body`]): an allocation the heap limit refuses
    /// then fails the run with `memory_limit` like any other, instead of failing inside
    /// the engine's conversion.
    body_id: u32,
    body_length: usize,
}

#[op2]
#[serde]
pub async fn op_atoll_fetch(
    state: Rc<RefCell<OpState>>,
    #[string] call: String,
    #[buffer] body: JsBuffer,
) -> Result<FetchAnswer, JsErrorBox> {
    let scope = run_scope(&state.borrow())?;
    // URL and headers; the body travels apart, as bytes.
    let call: FetchCall = parse_bounded(&call, scope.grant.limits.max_state_bytes, "a fetch call")?;
    let url = url::Url::parse(&call.url).map_err(|e| {
        refusal(
            "fetch_bad_request",
            format!("invalid URL '{}': {e}", call.url),
        )
    })?;
    let host = url.host_str().unwrap_or_default().to_owned();
    if !scope.grant.allows_host(&host) {
        return Err(refusal(
            "fetch_host_not_allowed",
            format!("host '{host}' is not in this agent's permissions.fetch"),
        ));
    }
    if let Some(name) = &call.connection {
        if !scope.grant.allows_connection(name) {
            return Err(refusal(
                "permission_denied",
                format!("connection '{name}' is not in this agent's permissions.connections"),
            ));
        }
    }
    let limits = &scope.grant.limits;
    let count = scope.fetches.get() + 1;
    if count > limits.max_fetches {
        let msg = format!("the run may make at most {} fetches", limits.max_fetches);
        return Err(refusal(
            ErrorCode::FetchLimit.as_str(),
            scope.violate(ErrorCode::FetchLimit, msg),
        ));
    }
    scope.fetches.set(count);

    let fetch_limits = FetchLimits {
        max_response_bytes: limits.max_fetch_response_bytes,
        timeout: limits.wall(),
        max_redirects: 5,
    };
    // The host's copy of the request body is the run's until the request is done.
    let body_len = if call.has_body { body.len() as u64 } else { 0 };
    let _request_body = scope
        .host_memory
        .reserve(body_len)
        .map_err(|_| refusal(ErrorCode::MemoryLimit.as_str(), scope.over_budget()))?;
    let request = FetchRequest {
        method: call.method.clone(),
        url: url.clone(),
        headers: call.headers,
        body: call.has_body.then(|| bytes::Bytes::copy_from_slice(&body)),
        sensitive_headers: Vec::new(),
        redirect: call.redirect,
    };
    let grant = scope.grant.clone();
    let allow_host: crate::host::HostCheck =
        std::sync::Arc::new(move |h: &str| grant.allows_host(h));
    let fetcher = scope.services.fetcher.clone();
    let started = Instant::now();
    let result = scope
        .host_call(fetcher.fetch(
            scope.tenant(),
            call.connection.as_deref(),
            request,
            &fetch_limits,
            allow_host,
        ))
        .await;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut event = json!({
        "method": call.method, "host": host, "path": url.path(), "ms": round_ms(ms),
    });
    match result {
        Ok(response) => {
            event["status"] = json!(response.status);
            event["bytes"] = json!(response.body.len());
            scope.emit(EventKind::Fetch, event);
            let body_length = response.body.len();
            let body_id = scope
                .hold_body(response.body)
                .map_err(|message| refusal(ErrorCode::MemoryLimit.as_str(), message))?;
            Ok(FetchAnswer {
                status: response.status,
                status_text: response.status_text,
                headers: response.headers,
                url: response.url,
                redirected: response.redirected,
                body_id,
                body_length,
            })
        }
        Err(e) => {
            event["error"] = json!(e.code());
            scope.emit(EventKind::Fetch, event);
            if let FetchError::TooLarge { .. } = e {
                let message = scope.violate(ErrorCode::FetchLimit, e.to_string());
                return Err(refusal(ErrorCode::FetchLimit.as_str(), message));
            }
            // (An `OverBudget` error has ended the run already, in `host_call`.)
            Err(refusal(e.code(), e))
        }
    }
}

/// Copies a held response body into `into`, a buffer the isolate allocated with exactly
/// the body's length, and releases the host's copy.
#[op2(fast)]
pub fn op_atoll_fetch_body(
    state: &mut OpState,
    #[smi] id: u32,
    #[buffer] into: &mut [u8],
) -> Result<(), JsErrorBox> {
    let scope = run_scope(state)?;
    let body = scope
        .take_body(id)
        .ok_or_else(|| JsErrorBox::type_error("this response body was already taken"))?;
    if body.len() != into.len() {
        return Err(JsErrorBox::type_error(format!(
            "a response body of {} bytes does not fit a buffer of {}",
            body.len(),
            into.len()
        )));
    }
    into.copy_from_slice(&body);
    Ok(())
}

fn round_ms(ms: f64) -> f64 {
    (ms * 10.0).round() / 10.0
}
