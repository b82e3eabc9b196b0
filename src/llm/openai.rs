//! OpenAI-compatible chat completions (`POST {base_url}/chat/completions`, streamed):
//! OpenAI itself, vLLM, Ollama, llama.cpp's server and the like.
//!
//! atoll's messages are already in this format except for tool calls, which atoll keeps
//! flat (`{id, name, arguments: <object>}`) and OpenAI nests
//! (`{id, type: "function", function: {name, arguments: "<json text>"}}`).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use url::Url;

use super::message::{
    assistant_message, bad_response, finished_tool_call, invalid_message, requested_tool_call,
};
use super::retry::error_text;
use super::sse::SseEvent;
use super::{Assemble, ToolSpec, LLM_RATE_LIMITED, LLM_UNAVAILABLE};
use crate::host::{ChatRequest, ChatResponse, ChatUsage, DeltaSink, HostError};

/// `{base_url}/chat/completions`.
pub fn endpoint(base: &Url) -> Result<Url, HostError> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|_| HostError::new(LLM_UNAVAILABLE, "base_url cannot take a path"))?
        .pop_if_empty()
        .extend(["chat", "completions"]);
    Ok(url)
}

/// The JSON body: messages with tool calls nested, `tools` as functions,
/// `response_format` and `max_tokens` passed through, streaming with usage.
pub fn request_body(
    model: &str,
    request: &ChatRequest,
    tools: &[ToolSpec],
) -> Result<Value, HostError> {
    let messages = request
        .messages
        .iter()
        .enumerate()
        .map(|(index, message)| wire_message(index, message))
        .collect::<Result<Vec<_>, _>>()?;
    let mut body = json!({
        "model": model,
        "messages": messages,
        "stream": true,
        "stream_options": { "include_usage": true },
    });
    if !tools.is_empty() {
        body["tools"] = tools
            .iter()
            .map(|tool| {
                json!({
                    "type": "function",
                    "function": {
                        "name": tool.name,
                        "description": tool.description,
                        "parameters": tool.input_schema,
                    },
                })
            })
            .collect();
    }
    if let Some(format) = &request.response_format {
        body["response_format"] = format.clone();
    }
    if let Some(max) = request.max_tokens {
        body["max_tokens"] = max.into();
    }
    Ok(body)
}

/// One message as OpenAI wants it: everything passes through but `tool_calls`.
fn wire_message(index: usize, message: &Value) -> Result<Value, HostError> {
    let Some(fields) = message.as_object() else {
        return Err(invalid_message(index, "a message must be an object"));
    };
    if !fields.get("role").is_some_and(Value::is_string) {
        return Err(invalid_message(index, "a message needs a string role"));
    }
    let mut out: Map<String, Value> = fields.clone();
    match fields.get("tool_calls") {
        None => {}
        // OpenAI refuses an empty list.
        Some(Value::Null) => {
            out.remove("tool_calls");
        }
        Some(Value::Array(calls)) if calls.is_empty() => {
            out.remove("tool_calls");
        }
        Some(Value::Array(calls)) => {
            let calls = calls
                .iter()
                .map(|call| {
                    let (id, name, arguments) = requested_tool_call(index, call)?;
                    Ok(json!({
                        "id": id,
                        "type": "function",
                        "function": { "name": name, "arguments": arguments.to_string() },
                    }))
                })
                .collect::<Result<Vec<_>, HostError>>()?;
            out.insert("tool_calls".into(), Value::Array(calls));
        }
        Some(_) => return Err(invalid_message(index, "tool_calls must be an array")),
    }
    Ok(Value::Object(out))
}

/// A tool call whose fragments are still arriving.
#[derive(Debug, Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

/// Assembles `chat.completion.chunk`s: text of choice 0, tool calls by their `index`,
/// and the usage of the last chunk.
#[derive(Debug, Default)]
pub struct Assembler {
    text: String,
    calls: BTreeMap<u64, PartialCall>,
    usage: ChatUsage,
    /// A `finish_reason` was seen: a stream that then ends without `[DONE]` is complete.
    finished: bool,
}

impl Assemble for Assembler {
    fn event(&mut self, event: SseEvent, deltas: &DeltaSink) -> Result<bool, HostError> {
        let data = event.data.trim();
        if data == "[DONE]" {
            return Ok(true);
        }
        let chunk: Value = serde_json::from_str(data)
            .map_err(|e| bad_response(format!("a stream chunk is not JSON: {e}")))?;
        if let Some(error) = chunk.get("error").filter(|e| !e.is_null()) {
            return Err(stream_error(error));
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            let count = |name: &str| usage.get(name).and_then(Value::as_u64).unwrap_or(0);
            self.usage = ChatUsage {
                input_tokens: count("prompt_tokens"),
                output_tokens: count("completion_tokens"),
            };
        }
        let choices = match chunk.get("choices") {
            Some(Value::Array(choices)) => choices.as_slice(),
            None | Some(Value::Null) => &[],
            Some(_) => return Err(bad_response("a stream chunk's choices is not a list")),
        };
        for choice in choices {
            if choice.get("index").and_then(Value::as_u64).unwrap_or(0) != 0 {
                continue;
            }
            if let Some(delta) = choice.get("delta") {
                self.delta(delta, deltas)?;
            }
            if choice.get("finish_reason").is_some_and(Value::is_string) {
                self.finished = true;
            }
        }
        Ok(false)
    }

    fn finish(self, complete: bool) -> Result<ChatResponse, HostError> {
        if !complete && !self.finished {
            return Err(bad_response(
                "the stream ended before the answer was complete",
            ));
        }
        let tool_calls = self
            .calls
            .into_iter()
            .map(|(index, call)| {
                let id = if call.id.is_empty() {
                    format!("call_{index}")
                } else {
                    call.id
                };
                finished_tool_call(id, call.name, &call.arguments)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ChatResponse {
            message: assistant_message(self.text),
            tool_calls,
            usage: self.usage,
        })
    }
}

impl Assembler {
    fn delta(&mut self, delta: &Value, deltas: &DeltaSink) -> Result<(), HostError> {
        if let Some(text) = delta.get("content").and_then(Value::as_str) {
            if !text.is_empty() {
                deltas(text);
                self.text.push_str(text);
            }
        }
        let calls = match delta.get("tool_calls") {
            Some(Value::Array(calls)) => calls.as_slice(),
            None | Some(Value::Null) => &[],
            Some(_) => return Err(bad_response("delta.tool_calls is not a list")),
        };
        for fragment in calls {
            // Servers that send each call whole sometimes leave out `index`.
            let next = self.calls.keys().next_back().map_or(0, |last| last + 1);
            let mut index = fragment
                .get("index")
                .and_then(Value::as_u64)
                .unwrap_or(next);
            let id = fragment.get("id").and_then(Value::as_str);
            // ... and some number every call 0: a new id at a used index is a new call.
            if let (Some(id), Some(call)) = (id, self.calls.get(&index)) {
                if !call.id.is_empty() && call.id != id {
                    index = next;
                }
            }
            let call = self.calls.entry(index).or_default();
            if let Some(id) = id {
                call.id = id.to_owned();
            }
            let Some(function) = fragment.get("function") else {
                continue;
            };
            if let Some(name) = function.get("name").and_then(Value::as_str) {
                if call.name.is_empty() {
                    call.name = name.to_owned();
                }
            }
            match function.get("arguments") {
                Some(Value::String(part)) => call.arguments.push_str(part),
                // A server that sends the arguments whole, as an object.
                Some(object @ Value::Object(_)) => call.arguments = object.to_string(),
                _ => {}
            }
        }
        Ok(())
    }
}

/// An error object inside the stream (vLLM and some proxies send these mid-answer).
fn stream_error(error: &Value) -> HostError {
    let message = error_text(&json!({ "error": error }))
        .unwrap_or_else(|| "the provider reported an error".to_owned());
    let kind = [error.get("type"), error.get("code")]
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>();
    let code = if kind.iter().any(|k| k.contains("rate_limit")) {
        LLM_RATE_LIMITED
    } else {
        LLM_UNAVAILABLE
    };
    HostError::new(code, format!("error in the stream: {message}"))
}
