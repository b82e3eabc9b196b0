//! Shapes both wire formats share: atoll's tool calls, its assistant message, and the
//! errors of converting to and from them.

use serde_json::{json, Value};

use super::{LLM_BAD_RESPONSE, LLM_REFUSED};
use crate::host::HostError;

pub fn bad_response(message: impl Into<String>) -> HostError {
    HostError::new(LLM_BAD_RESPONSE, message)
}

/// A request the agent wrote that cannot be converted: refused before anything is sent.
pub fn invalid_message(index: usize, why: &str) -> HostError {
    HostError::new(LLM_REFUSED, format!("messages[{index}]: {why}"))
}

/// `{role: "assistant", content: <text or null>}`.
pub fn assistant_message(text: String) -> Value {
    let content = if text.is_empty() {
        Value::Null
    } else {
        Value::String(text)
    };
    json!({ "role": "assistant", "content": content })
}

/// A finished tool call `{id, name, arguments}`; `arguments` is the streamed JSON text
/// (empty means no arguments) and must be an object.
pub fn finished_tool_call(id: String, name: String, arguments: &str) -> Result<Value, HostError> {
    if name.is_empty() {
        return Err(bad_response("a tool call has no name"));
    }
    let arguments = if arguments.trim().is_empty() {
        json!({})
    } else {
        serde_json::from_str::<Value>(arguments).map_err(|e| {
            bad_response(format!(
                "arguments of tool call '{name}' are not valid JSON: {e}"
            ))
        })?
    };
    if !arguments.is_object() {
        return Err(bad_response(format!(
            "arguments of tool call '{name}' are not a JSON object"
        )));
    }
    Ok(json!({ "id": id, "name": name, "arguments": arguments }))
}

/// A tool call of an assistant message in the agent's request: atoll's flat
/// `{id, name, arguments}` (arguments an object or a JSON string), or OpenAI's
/// `{id, type, function: {name, arguments}}`. Returns `(id, name, arguments object)`.
pub fn requested_tool_call(
    index: usize,
    call: &Value,
) -> Result<(String, String, Value), HostError> {
    let call_of = call.get("function").unwrap_or(call);
    let id = call.get("id").and_then(Value::as_str);
    let name = call_of.get("name").and_then(Value::as_str);
    let (Some(id), Some(name)) = (id, name) else {
        return Err(invalid_message(
            index,
            "a tool call needs a string id and name",
        ));
    };
    let arguments = match call_of.get("arguments") {
        None | Some(Value::Null) => json!({}),
        Some(Value::String(text)) if text.trim().is_empty() => json!({}),
        Some(Value::String(text)) => serde_json::from_str(text)
            .map_err(|_| invalid_message(index, "tool call arguments are not valid JSON"))?,
        Some(other) => other.clone(),
    };
    Ok((id.to_owned(), name.to_owned(), arguments))
}
