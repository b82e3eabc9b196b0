//! Ops of the run itself: the runner's handshake, output, state, logs and events.

use std::cell::RefCell;
use std::rc::Rc;

use deno_core::{op2, v8, OpState};
use deno_error::JsErrorBox;
use serde_json::{json, Value};

use super::{refusal, run_scope};
use crate::sandbox::isolate::AgentRunner;
use crate::sandbox::record::{ErrorCode, EventKind};
use crate::sandbox::scope::ReportedError;

/// Bootstrap hands over the function that runs an agent. Only once per isolate, and
/// never after a run was assigned.
#[op2]
pub fn op_atoll_register_runner(
    state: &mut OpState,
    #[scoped] runner: v8::Global<v8::Function>,
) -> Result<(), JsErrorBox> {
    if state.has::<AgentRunner>() || run_scope(state).is_ok() {
        return Err(JsErrorBox::generic("the runner is already registered"));
    }
    state.put(AgentRunner(runner));
    Ok(())
}

/// The run's input, prior state and identity, as JSON. Handed out once.
#[op2]
#[string]
pub fn op_atoll_run_start(state: &mut OpState) -> Result<String, JsErrorBox> {
    run_scope(state)?
        .start
        .borrow_mut()
        .take()
        .ok_or_else(|| JsErrorBox::generic("the run has already started"))
}

#[op2(fast)]
pub fn op_atoll_run_output(state: &mut OpState, #[string] json: String) -> Result<(), JsErrorBox> {
    let scope = run_scope(state)?;
    let limit = scope.grant.limits.max_output_bytes;
    if json.len() as u64 > limit {
        let msg = format!("the output is {} bytes; the limit is {limit}", json.len());
        return Err(JsErrorBox::range_error(
            scope.violate(ErrorCode::OutputTooLarge, msg),
        ));
    }
    *scope.output.borrow_mut() = Some(json);
    Ok(())
}

#[op2(fast)]
pub fn op_atoll_run_error(
    state: &mut OpState,
    #[string] phase: String,
    #[string] name: String,
    #[string] message: String,
    #[string] stack: String,
) -> Result<(), JsErrorBox> {
    let scope = run_scope(state)?;
    let mut slot = scope.error.borrow_mut();
    if slot.is_none() {
        *slot = Some(ReportedError {
            phase,
            name,
            message,
            stack: (!stack.is_empty()).then_some(stack),
        });
    }
    Ok(())
}

#[op2(fast)]
pub fn op_atoll_state_set(state: &mut OpState, #[string] json: String) -> Result<(), JsErrorBox> {
    let scope = run_scope(state)?;
    let limit = scope.grant.limits.max_state_bytes;
    if json.len() as u64 > limit {
        let msg = format!("the state is {} bytes; the limit is {limit}", json.len());
        return Err(JsErrorBox::range_error(
            scope.violate(ErrorCode::OutputTooLarge, msg),
        ));
    }
    let value: Value = serde_json::from_str(&json)
        .map_err(|e| JsErrorBox::type_error(format!("state is not JSON: {e}")))?;
    *scope.state.borrow_mut() = Some(value);
    Ok(())
}

#[op2(fast)]
pub fn op_atoll_log(
    state: &mut OpState,
    #[string] level: String,
    #[string] message: String,
) -> Result<(), JsErrorBox> {
    let scope = run_scope(state)?;
    let level = match level.as_str() {
        "debug" | "info" | "log" | "warn" | "error" => level,
        _ => "log".to_owned(),
    };
    scope.emit(
        EventKind::Log,
        json!({ "level": level, "message": message }),
    );
    Ok(())
}

#[op2(fast)]
pub fn op_atoll_emit(
    state: &mut OpState,
    #[string] kind: String,
    #[string] json: String,
) -> Result<(), JsErrorBox> {
    let scope = run_scope(state)?;
    if kind.is_empty() || kind.len() > 128 {
        return Err(refusal("bad_event", "an event type is 1 to 128 characters"));
    }
    if json.len() as u64 > scope.grant.limits.max_event_bytes {
        // It cannot fit the run's event volume: dropped like any event past it, without
        // parsing (a JSON text can parse into many times its size on the host).
        scope.emit(EventKind::Emit, json!({ "type": kind, "data": json }));
        return Ok(());
    }
    let data: Value = serde_json::from_str(&json)
        .map_err(|e| JsErrorBox::type_error(format!("event data is not JSON: {e}")))?;
    scope.emit(EventKind::Emit, json!({ "type": kind, "data": data }));
    Ok(())
}

/// Resolves when the run is cancelled; runtime-js aborts `ctx.signal` then.
#[op2]
pub async fn op_atoll_cancel_wait(state: Rc<RefCell<OpState>>) -> Result<(), JsErrorBox> {
    let shared = run_scope(&state.borrow())?.shared.clone();
    while !shared.cancel_requested() {
        shared.cancelled.notified().await;
    }
    Ok(())
}
