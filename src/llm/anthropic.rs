//! Anthropic messages (`POST {base_url}/v1/messages`, streamed).
//!
//! Conversion from atoll's (OpenAI-style) messages: `system` messages become the
//! top-level `system` prompt; assistant tool calls become `tool_use` blocks; `tool`
//! messages become `tool_result` blocks of a user turn; consecutive turns of one role are
//! merged, as the API wants roles to alternate. `max_tokens` is required here: 1024 unless
//! the request carries one. `response_format` has no Anthropic equivalent: a
//! `json_object` or `json_schema` format becomes an instruction appended to the system
//! prompt (a hint, not a guarantee); `text` and anything else is ignored.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use url::Url;

use super::message::{
    assistant_message, bad_response, finished_tool_call, invalid_message, requested_tool_call,
};
use super::retry::error_text;
use super::sse::SseEvent;
use super::{Assemble, ToolSpec, LLM_RATE_LIMITED, LLM_REFUSED, LLM_UNAVAILABLE};
use crate::host::{ChatRequest, ChatResponse, ChatUsage, DeltaSink, HostError};

/// The `anthropic-version` header sent with every request.
pub const API_VERSION: &str = "2023-06-01";
/// `max_tokens` when the request does not set it.
pub const DEFAULT_MAX_TOKENS: u32 = 1024;

/// `{base_url}/v1/messages`, or `{base_url}/messages` when the base already ends in `/v1`.
pub fn endpoint(base: &Url) -> Result<Url, HostError> {
    let mut url = base.clone();
    let has_v1 = base.path().trim_end_matches('/').ends_with("/v1");
    let mut path = url
        .path_segments_mut()
        .map_err(|_| HostError::new(LLM_UNAVAILABLE, "base_url cannot take a path"))?;
    path.pop_if_empty();
    if !has_v1 {
        path.push("v1");
    }
    path.push("messages");
    drop(path);
    Ok(url)
}

pub fn request_body(
    model: &str,
    request: &ChatRequest,
    tools: &[ToolSpec],
) -> Result<Value, HostError> {
    let mut system: Vec<String> = Vec::new();
    let mut turns: Vec<(String, Vec<Value>)> = Vec::new();
    for (index, message) in request.messages.iter().enumerate() {
        let role = message.get("role").and_then(Value::as_str);
        let content = message.get("content").unwrap_or(&Value::Null);
        match role {
            Some("system" | "developer") => system.push(plain_text(index, content)?),
            Some("user") => push_turn(&mut turns, "user", blocks(index, content)?),
            Some("assistant") => {
                let mut out = blocks(index, content)?;
                let calls = match message.get("tool_calls") {
                    Some(Value::Array(calls)) => calls.as_slice(),
                    None | Some(Value::Null) => &[],
                    Some(_) => return Err(invalid_message(index, "tool_calls must be an array")),
                };
                for call in calls {
                    let (id, name, input) = requested_tool_call(index, call)?;
                    out.push(json!({ "type": "tool_use", "id": id, "name": name, "input": input }));
                }
                push_turn(&mut turns, "assistant", out);
            }
            Some("tool") => {
                let Some(id) = message.get("tool_call_id").and_then(Value::as_str) else {
                    return Err(invalid_message(index, "a tool message needs tool_call_id"));
                };
                let mut result = json!({ "type": "tool_result", "tool_use_id": id });
                match content {
                    Value::Null => {}
                    Value::String(_) => result["content"] = content.clone(),
                    Value::Array(_) => result["content"] = Value::Array(blocks(index, content)?),
                    other => result["content"] = Value::String(other.to_string()),
                }
                push_turn(&mut turns, "user", vec![result]);
            }
            _ => {
                return Err(invalid_message(
                    index,
                    "role must be system, user, assistant or tool",
                ))
            }
        }
    }
    if let Some(hint) = request.response_format.as_ref().and_then(format_hint) {
        system.push(hint);
    }
    let messages: Vec<Value> = turns
        .into_iter()
        .map(|(role, content)| json!({ "role": role, "content": content }))
        .collect();
    let mut body = json!({
        "model": model,
        "max_tokens": request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        "messages": messages,
        "stream": true,
    });
    let system: Vec<String> = system.into_iter().filter(|s| !s.is_empty()).collect();
    if !system.is_empty() {
        body["system"] = system.join("\n\n").into();
    }
    if !tools.is_empty() {
        body["tools"] = tools
            .iter()
            .map(|t| json!({ "name": t.name, "description": t.description, "input_schema": t.input_schema }))
            .collect();
    }
    Ok(body)
}

/// Appends to the last turn when it has the same role (empty block lists are dropped:
/// the API refuses empty content).
fn push_turn(turns: &mut Vec<(String, Vec<Value>)>, role: &str, content: Vec<Value>) {
    if content.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some((last, blocks)) if last == role => blocks.extend(content),
        _ => turns.push((role.to_owned(), content)),
    }
}

/// A system message's text: a string or a list of text parts.
fn plain_text(index: usize, content: &Value) -> Result<String, HostError> {
    let parts = blocks(index, content)?;
    Ok(parts
        .iter()
        .filter_map(|b| b.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join("\n"))
}

/// Content as Anthropic blocks: a string is one text block; OpenAI `text` and
/// `image_url` parts are converted; other parts (native Anthropic blocks) pass through.
fn blocks(index: usize, content: &Value) -> Result<Vec<Value>, HostError> {
    match content {
        Value::Null => Ok(Vec::new()),
        Value::String(s) if s.is_empty() => Ok(Vec::new()),
        Value::String(s) => Ok(vec![json!({ "type": "text", "text": s })]),
        Value::Array(parts) => parts.iter().map(|p| part(index, p)).collect(),
        _ => Err(invalid_message(
            index,
            "content must be a string, a list of parts or null",
        )),
    }
}

fn part(index: usize, part: &Value) -> Result<Value, HostError> {
    match part.get("type").and_then(Value::as_str) {
        Some("text") => {
            Ok(json!({ "type": "text", "text": part.get("text").unwrap_or(&Value::Null) }))
        }
        Some("image_url") => {
            let url = part
                .pointer("/image_url/url")
                .or_else(|| part.get("image_url"))
                .and_then(Value::as_str)
                .ok_or_else(|| invalid_message(index, "an image_url part needs a url"))?;
            let source = match url
                .strip_prefix("data:")
                .and_then(|rest| rest.split_once(";base64,"))
            {
                Some((media_type, data)) => {
                    json!({ "type": "base64", "media_type": media_type, "data": data })
                }
                None => json!({ "type": "url", "url": url }),
            };
            Ok(json!({ "type": "image", "source": source }))
        }
        Some(_) => Ok(part.clone()),
        None => Err(invalid_message(index, "a content part needs a type")),
    }
}

/// The system-prompt instruction standing in for OpenAI's `response_format`.
fn format_hint(format: &Value) -> Option<String> {
    let base = "Answer with a single JSON object and nothing else: no prose, no code fences.";
    match format.get("type").and_then(Value::as_str)? {
        "json_object" => Some(base.to_owned()),
        "json_schema" => match format.pointer("/json_schema/schema") {
            Some(schema) => Some(format!("{base} It must match this JSON Schema: {schema}")),
            None => Some(base.to_owned()),
        },
        _ => None,
    }
}

/// One content block of the answer, by its `index`.
#[derive(Debug)]
enum Block {
    Text,
    Tool {
        id: String,
        name: String,
        start: Value,
        json: String,
    },
    /// `thinking` and block types atoll does not surface.
    Other,
}

/// Assembles `message_start` … `message_stop`.
#[derive(Debug, Default)]
pub struct Assembler {
    text: String,
    blocks: BTreeMap<u64, Block>,
    usage: ChatUsage,
}

impl Assemble for Assembler {
    fn event(&mut self, event: SseEvent, deltas: &DeltaSink) -> Result<bool, HostError> {
        let data: Value = serde_json::from_str(&event.data)
            .map_err(|e| bad_response(format!("a stream event is not JSON: {e}")))?;
        let kind = data
            .get("type")
            .and_then(Value::as_str)
            .or(event.event.as_deref());
        match kind {
            Some("message_start") => {
                if let Some(usage) = data.pointer("/message/usage") {
                    self.usage(usage);
                }
            }
            Some("content_block_start") => {
                let index = block_index(&data)?;
                let block = data.get("content_block").unwrap_or(&Value::Null);
                let block = match block.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        if let Some(text) = block.get("text").and_then(Value::as_str) {
                            push_text(&mut self.text, text, deltas);
                        }
                        Block::Text
                    }
                    Some("tool_use") => Block::Tool {
                        id: str_field(block, "id")?,
                        name: str_field(block, "name")?,
                        start: block.get("input").cloned().unwrap_or_else(|| json!({})),
                        json: String::new(),
                    },
                    _ => Block::Other,
                };
                self.blocks.insert(index, block);
            }
            Some("content_block_delta") => {
                let index = block_index(&data)?;
                let delta = data.get("delta").unwrap_or(&Value::Null);
                let block = self
                    .blocks
                    .get_mut(&index)
                    .ok_or_else(|| bad_response(format!("a delta for unknown block {index}")))?;
                match (block, delta.get("type").and_then(Value::as_str)) {
                    (Block::Text, Some("text_delta")) => {
                        push_text(&mut self.text, &str_field(delta, "text")?, deltas);
                    }
                    (Block::Tool { json, .. }, Some("input_json_delta")) => {
                        json.push_str(&str_field(delta, "partial_json")?);
                    }
                    _ => {} // thinking, signatures, citations
                }
            }
            Some("message_delta") => {
                if let Some(usage) = data.get("usage") {
                    self.usage(usage);
                }
            }
            Some("message_stop") => return Ok(true),
            Some("error") => return Err(stream_error(data.get("error").unwrap_or(&data))),
            // `ping`, `content_block_stop`, and event types newer than this code.
            _ => {}
        }
        Ok(false)
    }

    fn finish(self, complete: bool) -> Result<ChatResponse, HostError> {
        if !complete {
            return Err(bad_response("the stream ended before message_stop"));
        }
        let mut tool_calls = Vec::new();
        for block in self.blocks.into_values() {
            if let Block::Tool {
                id,
                name,
                start,
                json,
            } = block
            {
                let arguments = if json.trim().is_empty() {
                    start.to_string()
                } else {
                    json
                };
                tool_calls.push(finished_tool_call(id, name, &arguments)?);
            }
        }
        Ok(ChatResponse {
            message: assistant_message(self.text),
            tool_calls,
            usage: self.usage,
        })
    }
}

fn push_text(all: &mut String, text: &str, deltas: &DeltaSink) {
    if !text.is_empty() {
        deltas(text);
        all.push_str(text);
    }
}

impl Assembler {
    /// Counts are cumulative; input includes cache writes and reads.
    fn usage(&mut self, usage: &Value) {
        let count = |name: &str| usage.get(name).and_then(Value::as_u64);
        if let Some(input) = count("input_tokens") {
            let cached = count("cache_creation_input_tokens").unwrap_or(0)
                + count("cache_read_input_tokens").unwrap_or(0);
            self.usage.input_tokens = input + cached;
        }
        if let Some(output) = count("output_tokens") {
            self.usage.output_tokens = output;
        }
    }
}

fn block_index(data: &Value) -> Result<u64, HostError> {
    data.get("index")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad_response("a content block event has no index"))
}

fn str_field(value: &Value, name: &str) -> Result<String, HostError> {
    value
        .get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| bad_response(format!("a stream event lacks the string field {name}")))
}

/// An `error` event: overload and API errors are unavailability, rate limits are rate
/// limits, the rest (invalid request, permission, ...) refusals.
fn stream_error(error: &Value) -> HostError {
    let message = error_text(&json!({ "error": error }))
        .unwrap_or_else(|| "the provider reported an error".to_owned());
    let code = match error.get("type").and_then(Value::as_str) {
        Some("rate_limit_error") => LLM_RATE_LIMITED,
        Some("overloaded_error" | "api_error") | None => LLM_UNAVAILABLE,
        Some(_) => LLM_REFUSED,
    };
    HostError::new(code, format!("error in the stream: {message}"))
}
