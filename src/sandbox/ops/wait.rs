//! `ctx.sleep(ms)` and `ctx.waitFor(name, { timeout_ms, schema })`. On a server the host
//! parks the run (its isolate ends; it resumes by replay); the op only checks the request.

use std::cell::RefCell;
use std::rc::Rc;

use deno_core::{op2, OpState};
use deno_error::JsErrorBox;

use super::{parse_bounded, refusal, run_scope};
use crate::host::{HostError, WaitRequest};

/// Longest signal name, as the API takes it.
const MAX_NAME_BYTES: usize = 128;
/// Longest sleep or wait timeout: a year.
const MAX_WAIT_MS: u64 = 365 * 24 * 3_600_000;
/// Largest wait request (the schema is most of it).
const MAX_REQUEST_BYTES: u64 = 64 * 1024;

#[op2]
#[string]
pub async fn op_atoll_wait(
    state: Rc<RefCell<OpState>>,
    #[string] request: String,
) -> Result<String, JsErrorBox> {
    let scope = run_scope(&state.borrow())?;
    let request: WaitRequest = parse_bounded(&request, MAX_REQUEST_BYTES, "a wait")?;
    if let Some(name) = &request.name {
        let printable = name.chars().all(|c| !c.is_control());
        if name.is_empty() || name.len() > MAX_NAME_BYTES || !printable {
            return Err(refusal(
                "bad_request",
                format!("a signal name is 1 to {MAX_NAME_BYTES} printable bytes"),
            ));
        }
    }
    if request.ms > MAX_WAIT_MS {
        return Err(refusal("bad_request", "a wait is at most a year"));
    }
    let waits = scope.services.waits.clone();
    let answered = scope.host_call(waits.wait(scope.tenant(), request)).await;
    match answered {
        Ok(value) => Ok(value.to_string()),
        Err(HostError { code, message }) => Err(refusal(code, message)),
    }
}
