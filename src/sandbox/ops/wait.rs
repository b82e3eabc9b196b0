//! `ctx.sleep(ms)` and `ctx.waitFor(name, { timeout_ms, schema })`. On a server the host
//! parks the run (its isolate ends; it resumes by replay); the op only checks the request.

use std::cell::RefCell;
use std::rc::Rc;

use deno_core::{op2, OpState};
use deno_error::JsErrorBox;

use super::{parse_bounded, refusal, run_scope};
use crate::host::{HostError, WaitRequest};

/// Largest wait request (the schema is most of it).
const MAX_REQUEST_BYTES: u64 = 2 * WaitRequest::MAX_SCHEMA_BYTES as u64;

#[op2]
#[string]
pub async fn op_atoll_wait(
    state: Rc<RefCell<OpState>>,
    #[string] request: String,
) -> Result<String, JsErrorBox> {
    let scope = run_scope(&state.borrow())?;
    let request: WaitRequest = parse_bounded(&request, MAX_REQUEST_BYTES, "a wait")?;
    request.check().map_err(|e| refusal(e.code, e.message))?;
    let waits = scope.services.waits.clone();
    let answered = scope.host_call(waits.wait(scope.tenant(), request)).await;
    match answered {
        Ok(value) => Ok(value.to_string()),
        Err(HostError { code, message }) => Err(refusal(code, message)),
    }
}

/// One JS timer of a journaled run (`setTimeout`, one `setInterval` tick), served on the
/// host so that its firing is journaled: resolves when it is due; rejects with the code
/// `cleared` once `op_atoll_clear_timer` cleared it.
#[op2]
pub async fn op_atoll_timer(
    state: Rc<RefCell<OpState>>,
    id: u32,
    #[number] ms: u64,
) -> Result<(), JsErrorBox> {
    let scope = run_scope(&state.borrow())?;
    let waits = scope.services.waits.clone();
    waits
        .timer(id, ms.min(WaitRequest::MAX_MS))
        .await
        .map_err(|HostError { code, message }| refusal(code, message))
}

#[op2(fast)]
pub fn op_atoll_clear_timer(state: &mut OpState, id: u32) -> Result<(), JsErrorBox> {
    run_scope(state)?.services.waits.clear_timer(id);
    Ok(())
}
