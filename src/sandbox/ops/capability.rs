//! Ops for `ctx.memory`, `ctx.tools` and `ctx.llm`: each checks the run's grant, then
//! calls the host service with the run's tenant.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use deno_core::{op2, OpState};
use deno_error::JsErrorBox;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{parse_bounded, refusal, run_scope};
use crate::host::{ChatRequest, DeltaSink, HostError, MemoryNamespace};
use crate::package::MemoryScope;
use crate::sandbox::record::EventKind;

const MAX_KEY_BYTES: usize = 512;
const MAX_LIST: usize = 1000;
/// Room for a memory call's key and options beside its value.
const CALL_OVERHEAD_BYTES: u64 = 4096;

/// LLM deltas queued between the client's thread and the isolate's, per call.
const DELTA_QUEUE: usize = 1024;

fn scope_name(scope: MemoryScope) -> &'static str {
    match scope {
        MemoryScope::EndUser => "end_user",
        MemoryScope::App => "app",
        MemoryScope::Org => "org",
    }
}

fn host_error(e: HostError) -> JsErrorBox {
    refusal(e.code, e.message)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemoryCall {
    action: String,
    key: String,
    #[serde(default)]
    value: Option<Value>,
    #[serde(default)]
    scope: Option<MemoryScope>,
    #[serde(default)]
    limit: Option<usize>,
}

/// `ctx.memory.get/set/delete/list`. Returns JSON: the value, `true`/`false`, or keys.
#[op2]
#[string]
pub async fn op_atoll_memory(
    state: Rc<RefCell<OpState>>,
    #[string] call: String,
) -> Result<String, JsErrorBox> {
    let scope = run_scope(&state.borrow())?;
    let limit = scope.grant.limits.max_state_bytes + CALL_OVERHEAD_BYTES;
    let call: MemoryCall = parse_bounded(&call, limit, "a memory call")?;
    let memory_scope = call.scope.unwrap_or(MemoryScope::EndUser);
    if !scope.grant.allows_memory(memory_scope) {
        return Err(refusal(
            "permission_denied",
            format!(
                "memory scope '{}' is not in this agent's permissions.memory",
                scope_name(memory_scope)
            ),
        ));
    }
    if call.key.len() > MAX_KEY_BYTES || (call.key.is_empty() && call.action != "list") {
        return Err(refusal(
            "bad_key",
            format!("a memory key is 1 to {MAX_KEY_BYTES} bytes"),
        ));
    }
    let tenant = scope.tenant();
    let end_user = match memory_scope {
        MemoryScope::EndUser => Some(tenant.end_user.clone().ok_or_else(|| {
            refusal(
                "no_end_user",
                "this run has no end-user, so end_user memory is unavailable; pass end_user when starting the run or use scope 'app'",
            )
        })?),
        _ => None,
    };
    let ns = MemoryNamespace {
        org_id: tenant.org_id.clone(),
        app_id: tenant.app_id.clone(),
        scope: memory_scope,
        end_user,
    };
    let store = scope.services.memory.clone();
    let answer = match call.action.as_str() {
        "get" => store
            .get(&ns, &call.key)
            .await
            .map_err(host_error)?
            .unwrap_or(Value::Null),
        "set" => {
            let value = call.value.unwrap_or(Value::Null);
            let size = value.to_string().len() as u64;
            let limit = scope.grant.limits.max_state_bytes;
            if size > limit {
                return Err(refusal(
                    "value_too_large",
                    format!("a memory value is at most {limit} bytes; this one is {size}"),
                ));
            }
            store.set(&ns, &call.key, value).await.map_err(host_error)?;
            Value::Bool(true)
        }
        "delete" => Value::Bool(store.delete(&ns, &call.key).await.map_err(host_error)?),
        "list" => {
            let limit = call.limit.unwrap_or(MAX_LIST).min(MAX_LIST);
            json!(store
                .list(&ns, &call.key, limit)
                .await
                .map_err(host_error)?)
        }
        other => {
            return Err(JsErrorBox::type_error(format!(
                "unknown memory action '{other}'"
            )))
        }
    };
    Ok(answer.to_string())
}

/// `ctx.tools.call(name, args)`.
#[op2]
#[string]
pub async fn op_atoll_tool_call(
    state: Rc<RefCell<OpState>>,
    #[string] name: String,
    #[string] args: String,
) -> Result<String, JsErrorBox> {
    let scope = run_scope(&state.borrow())?;
    if !scope.grant.allows_tool(&name) {
        return Err(refusal(
            "permission_denied",
            format!("tool '{name}' is not in this agent's permissions.tools"),
        ));
    }
    let args: Value = parse_bounded(
        &args,
        scope.grant.limits.max_state_bytes,
        "the tool arguments",
    )?;
    scope.emit(EventKind::ToolCall, json!({ "name": name, "args": args }));
    let tools = scope.services.tools.clone();
    let result = scope
        .host_call(tools.call(scope.tenant(), &name, args))
        .await;
    match result {
        Ok(value) => {
            scope.emit(
                EventKind::ToolResult,
                json!({ "name": name, "ok": true, "result": value }),
            );
            Ok(value.to_string())
        }
        Err(e) => {
            scope.emit(
                EventKind::ToolResult,
                json!({ "name": name, "ok": false, "error": { "code": e.code, "message": e.message } }),
            );
            Err(host_error(e))
        }
    }
}

/// `ctx.llm.chat(request)`; token deltas become `llm.delta` events while it runs.
#[op2]
#[string]
pub async fn op_atoll_llm_chat(
    state: Rc<RefCell<OpState>>,
    #[string] request: String,
) -> Result<String, JsErrorBox> {
    let scope = run_scope(&state.borrow())?;
    // 1 MiB by default: about 250k tokens of text, past most context windows.
    let limit = scope.grant.limits.max_state_bytes;
    let request: ChatRequest = parse_bounded(&request, limit, "the chat request")?;
    if !scope.grant.allows_model(&request.model) {
        return Err(refusal(
            "permission_denied",
            format!(
                "model '{}' is not in this agent's permissions.llm",
                request.model
            ),
        ));
    }
    for tool in &request.tools {
        let name = tool
            .as_str()
            .or_else(|| tool.get("name").and_then(Value::as_str));
        match name {
            Some(name) if scope.grant.allows_tool(name) => {}
            _ => {
                return Err(refusal(
                    "permission_denied",
                    format!("tool {tool} offered to the model is not in permissions.tools"),
                ))
            }
        }
    }
    // Deltas arrive on whatever thread the client streams on; they are queued (bounded:
    // a stream faster than this thread publishes drops deltas, counted, never the
    // answer) and published from this thread, in order, as events of this run.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(DELTA_QUEUE);
    let dropped = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let dropped_by_sink = dropped.clone();
    let deltas: DeltaSink = Arc::new(move |delta: &str| {
        if tx.try_send(delta.to_owned()).is_err() {
            dropped_by_sink.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    let llm = scope.services.llm.clone();
    let model = request.model.clone();
    let chat = scope.host_call(llm.chat(scope.tenant(), request, deltas));
    tokio::pin!(chat);
    let response = loop {
        tokio::select! {
            biased;
            Some(delta) = rx.recv() => {
                scope.emit(EventKind::LlmDelta, json!({ "model": model, "delta": delta }));
            }
            response = &mut chat => break response,
        }
    };
    while let Ok(delta) = rx.try_recv() {
        scope.emit(
            EventKind::LlmDelta,
            json!({ "model": model, "delta": delta }),
        );
    }
    let dropped = dropped.load(std::sync::atomic::Ordering::Relaxed);
    if dropped > 0 {
        scope.emit(
            EventKind::LlmDelta,
            json!({ "model": model, "delta": "", "dropped": dropped }),
        );
    }
    let response = response.map_err(host_error)?;
    scope
        .llm_tokens_in
        .set(scope.llm_tokens_in.get() + response.usage.input_tokens);
    scope
        .llm_tokens_out
        .set(scope.llm_tokens_out.get() + response.usage.output_tokens);
    serde_json::to_string(&response).map_err(|e| JsErrorBox::generic(e.to_string()))
}
