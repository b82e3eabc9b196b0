//! Anthropic wire format against a loopback server: conversion, streaming, tool use, usage.

use serde_json::{json, Value};

use super::testutil::*;
use super::{anthropic, ProviderKind, ToolSpec, LLM_BAD_RESPONSE, LLM_REFUSED, LLM_UNAVAILABLE};

fn message_start(input: u64, cache_read: u64) -> Value {
    json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "claude-test",
        "usage": {"input_tokens": input, "cache_read_input_tokens": cache_read, "output_tokens": 1}}})
}

fn text_block(index: u64) -> Value {
    json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}})
}

fn text_delta(index: u64, text: &str) -> Value {
    json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}})
}

fn stop_block(index: u64) -> Value {
    json!({"type": "content_block_stop", "index": index})
}

fn message_end(reason: &str, output: u64) -> [Value; 2] {
    [
        json!({"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": null}, "usage": {"output_tokens": output}}),
        json!({"type": "message_stop"}),
    ]
}

#[tokio::test]
async fn text_answer_with_deltas_usage_and_headers() {
    let mut events = vec![message_start(20, 5), json!({"type": "ping"}), text_block(0)];
    events.extend(["Bon", "jour, ", "\u{e7}a va"].map(|t| text_delta(0, t)));
    events.push(stop_block(0));
    events.extend(message_end("end_turn", 7));
    let mock = serve(vec![Reply::sse(&anthropic_sse(&events), 6)]).await;
    let mut provider = mock.provider(ProviderKind::Anthropic);
    provider.provider.base_url = provider.provider.base_url.join("/").expect("root");
    let request = chat_request(json!({
        "model": "prov/claude-test",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "system", "content": [{"type": "text", "text": "Speak French."}]},
            {"role": "user", "content": "Hi"},
        ],
        "response_format": {"type": "json_object"},
    }));
    let (sink, seen) = recorder(None);
    let answer = client()
        .chat(&provider, "claude-test", &request, &[], sink, in_secs(10))
        .await
        .expect("answer");

    assert_eq!(*seen.lock().expect("lock"), ["Bon", "jour, ", "\u{e7}a va"]);
    assert_eq!(
        answer.message,
        json!({"role": "assistant", "content": "Bonjour, \u{e7}a va"})
    );
    assert!(answer.tool_calls.is_empty());
    assert_eq!(
        (answer.usage.input_tokens, answer.usage.output_tokens),
        (25, 7)
    );

    let got = &mock.received()[0];
    assert_eq!(got.path, "/v1/messages");
    assert_eq!(got.headers["x-api-key"], TEST_KEY);
    assert_eq!(got.headers["anthropic-version"], "2023-06-01");
    assert!(!got.headers.contains_key("authorization"));
    assert_eq!(
        got.body,
        json!({
            "model": "claude-test",
            "max_tokens": 1024,
            "stream": true,
            "system": "Be brief.\n\nSpeak French.\n\nAnswer with a single JSON object and nothing else: no prose, no code fences.",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
        })
    );
}

#[tokio::test]
async fn tool_use_round_trip() {
    let mut events = vec![
        message_start(300, 0),
        text_block(0),
        text_delta(0, "Let me check."),
    ];
    events.push(stop_block(0));
    events.push(json!({"type": "content_block_start", "index": 1,
        "content_block": {"type": "tool_use", "id": "toolu_1", "name": "lookup_customer", "input": {}}}));
    for part in ["", "{\"customer", "_id\": \"c_", "42\"}"] {
        events.push(json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": part}}));
    }
    events.push(stop_block(1));
    events.push(json!({"type": "content_block_start", "index": 2,
        "content_block": {"type": "tool_use", "id": "toolu_2", "name": "now", "input": {}}}));
    events.push(stop_block(2));
    events.extend(message_end("tool_use", 33));
    let mock = serve(vec![Reply::sse(&anthropic_sse(&events), 13)]).await;
    let request = chat_request(json!({
        "model": "prov/claude-test",
        "max_tokens": 300,
        "messages": [
            {"role": "system", "content": "You look things up."},
            {"role": "user", "content": "Who are c_41 and c_40?"},
            {"role": "assistant", "content": "Looking.", "tool_calls": [
                {"id": "toolu_a", "name": "lookup_customer", "arguments": {"customer_id": "c_41"}},
                {"id": "toolu_b", "type": "function", "function": {"name": "lookup_customer", "arguments": "{\"customer_id\":\"c_40\"}"}},
            ]},
            {"role": "tool", "tool_call_id": "toolu_a", "content": "{\"name\":\"Ada\"}"},
            {"role": "tool", "tool_call_id": "toolu_b", "content": null},
            {"role": "user", "content": [{"type": "text", "text": "And c_42?"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}}]},
        ],
    }));
    let schema = json!({"type": "object", "properties": {"customer_id": {"type": "string"}}});
    let tools = [ToolSpec {
        name: "lookup_customer".into(),
        description: "Finds a customer".into(),
        input_schema: schema.clone(),
    }];
    let (sink, seen) = recorder(None);
    let answer = client()
        .chat(
            &mock.provider(ProviderKind::Anthropic),
            "claude-test",
            &request,
            &tools,
            sink,
            in_secs(10),
        )
        .await
        .expect("answer");

    assert_eq!(*seen.lock().expect("lock"), ["Let me check."]);
    assert_eq!(answer.message["content"], "Let me check.");
    assert_eq!(
        answer.tool_calls,
        [
            json!({"id": "toolu_1", "name": "lookup_customer", "arguments": {"customer_id": "c_42"}}),
            json!({"id": "toolu_2", "name": "now", "arguments": {}}),
        ]
    );
    assert_eq!(
        (answer.usage.input_tokens, answer.usage.output_tokens),
        (300, 33)
    );

    let got = &mock.received()[0];
    assert_eq!(
        got.path, "/v1/messages",
        "a base ending in /v1 is not doubled"
    );
    assert_eq!(got.body["max_tokens"], 300);
    assert_eq!(got.body["system"], "You look things up.");
    assert_eq!(
        got.body["tools"],
        json!([{"name": "lookup_customer", "description": "Finds a customer", "input_schema": schema}])
    );
    assert_eq!(
        got.body["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "Who are c_41 and c_40?"}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Looking."},
                {"type": "tool_use", "id": "toolu_a", "name": "lookup_customer", "input": {"customer_id": "c_41"}},
                {"type": "tool_use", "id": "toolu_b", "name": "lookup_customer", "input": {"customer_id": "c_40"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_a", "content": "{\"name\":\"Ada\"}"},
                {"type": "tool_result", "tool_use_id": "toolu_b"},
                {"type": "text", "text": "And c_42?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
            ]},
        ])
    );
}

#[tokio::test]
async fn stream_errors_and_malformed_events() {
    let overloaded = vec![
        message_start(1, 0),
        text_block(0),
        text_delta(0, "Hm"),
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    ];
    let mut bad_input = vec![message_start(1, 0)];
    bad_input.push(json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "t", "name": "f", "input": {}}}));
    bad_input.push(json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{\"a\": tru"}}));
    bad_input.extend(message_end("tool_use", 2));
    let cases = [
        (anthropic_sse(&overloaded), LLM_UNAVAILABLE, "Overloaded"),
        (
            anthropic_sse(&[message_start(1, 0), text_block(0), text_delta(0, "cut")]),
            LLM_BAD_RESPONSE,
            "before message_stop",
        ),
        (
            anthropic_sse(&bad_input),
            LLM_BAD_RESPONSE,
            "not valid JSON",
        ),
        (
            anthropic_sse(&[message_start(1, 0), text_delta(3, "x")]),
            LLM_BAD_RESPONSE,
            "unknown block 3",
        ),
        (
            "event: message_start\ndata: {oops\n\n".to_owned(),
            LLM_BAD_RESPONSE,
            "not JSON",
        ),
    ];
    for (body, code, expected) in cases {
        let mock = serve(vec![Reply::sse(&body, 4)]).await;
        let request = chat_request(
            json!({"model": "prov/c", "messages": [{"role": "user", "content": "x"}]}),
        );
        let (sink, _) = recorder(None);
        let err = client()
            .chat(
                &mock.provider(ProviderKind::Anthropic),
                "c",
                &request,
                &[],
                sink,
                in_secs(10),
            )
            .await
            .expect_err("error");
        assert_eq!(err.code, code, "{body}: {err}");
        assert!(err.message.contains(expected), "{body}: {err}");
        assert_eq!(mock.hits(), 1);
    }
}

#[test]
fn endpoints_schema_hints_and_invalid_messages() {
    let url = |s: &str| {
        anthropic::endpoint(&s.parse().expect("url"))
            .expect("endpoint")
            .to_string()
    };
    assert_eq!(
        url("https://api.anthropic.com"),
        "https://api.anthropic.com/v1/messages"
    );
    assert_eq!(
        url("https://api.anthropic.com/v1/"),
        "https://api.anthropic.com/v1/messages"
    );
    assert_eq!(
        url("https://proxy.example/anthropic"),
        "https://proxy.example/anthropic/v1/messages"
    );

    let request = chat_request(json!({"model": "p/m", "messages": [], "response_format":
        {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}}));
    let body = anthropic::request_body("m", &request, &[]).expect("body");
    assert!(body["system"]
        .as_str()
        .expect("system")
        .ends_with("JSON Schema: {\"type\":\"object\"}"));
    let request =
        chat_request(json!({"model": "p/m", "messages": [], "response_format": {"type": "text"}}));
    assert!(anthropic::request_body("m", &request, &[])
        .expect("body")
        .get("system")
        .is_none());

    for (messages, expected) in [
        (
            json!([{"role": "tool", "content": "x"}]),
            "messages[0]: a tool message needs tool_call_id",
        ),
        (
            json!([{"role": "robot", "content": "x"}]),
            "messages[0]: role must be",
        ),
        (json!([{"role": "user", "content": 7}]), "content must be"),
        (
            json!([{"role": "user", "content": [{"text": "no type"}]}]),
            "needs a type",
        ),
    ] {
        let request = chat_request(json!({"model": "p/m", "messages": messages}));
        let err = anthropic::request_body("m", &request, &[]).expect_err("invalid");
        assert_eq!(err.code, LLM_REFUSED);
        assert!(err.message.contains(expected), "{err}");
    }
}
