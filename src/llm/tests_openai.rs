//! OpenAI-compatible wire format against a loopback server: streaming, tool calls, usage.

use std::sync::Arc;

use serde_json::{json, Value};
use tokio::sync::Notify;

use super::testutil::*;
use super::{openai, ProviderKind, ToolSpec, LLM_BAD_RESPONSE, LLM_UNAVAILABLE};

fn text_chunk(text: &str) -> Value {
    json!({"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]})
}

fn finish_chunk(reason: &str) -> Value {
    json!({"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]})
}

fn usage_chunk(input: u64, output: u64) -> Value {
    json!({"id": "c1", "choices": [], "usage": {"prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output}})
}

#[tokio::test]
async fn text_answer_streams_deltas_in_order() {
    let first = openai_sse(
        &[
            json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}),
            text_chunk("Hel"),
        ],
        false,
    );
    let rest = openai_sse(
        &[
            text_chunk("lo, "),
            text_chunk("w\u{f6}rld \u{1f30d}"),
            finish_chunk("stop"),
            usage_chunk(12, 4),
        ],
        true,
    );
    // The rest of the body waits until the first delta reached the sink: deltas are
    // delivered while the answer is still streaming, not at its end.
    let gate = Arc::new(Notify::new());
    let reply = Reply::sse(&first, 7)
        .step(Step::Wait(gate.clone()))
        .then(&rest, 5);
    let mock = serve(vec![reply]).await;
    let (sink, seen) = recorder(Some(gate));
    let request = chat_request(json!({
        "model": "prov/gpt-test",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        "response_format": {"type": "json_object"},
        "max_tokens": 99,
    }));
    let provider = mock.provider(ProviderKind::Openai);
    let answer = client()
        .chat(&provider, "gpt-test", &request, &[], sink, in_secs(10))
        .await
        .expect("answer");

    assert_eq!(
        *seen.lock().expect("lock"),
        ["Hel", "lo, ", "w\u{f6}rld \u{1f30d}"]
    );
    assert_eq!(
        answer.message,
        json!({"role": "assistant", "content": "Hello, w\u{f6}rld \u{1f30d}"})
    );
    assert!(answer.tool_calls.is_empty());
    assert_eq!(
        (answer.usage.input_tokens, answer.usage.output_tokens),
        (12, 4)
    );

    let got = mock.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, "/v1/chat/completions");
    assert_eq!(
        got[0].headers["authorization"],
        format!("Bearer {TEST_KEY}")
    );
    assert_eq!(got[0].headers["content-type"], "application/json");
    assert_eq!(
        got[0].body,
        json!({
            "model": "gpt-test",
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
            "stream": true,
            "stream_options": {"include_usage": true},
            "response_format": {"type": "json_object"},
            "max_tokens": 99,
        })
    );
}

#[tokio::test]
async fn tool_calls_round_trip() {
    let call = |index: u64, id: Option<&str>, name: Option<&str>, args: &str| {
        let mut f = json!({"arguments": args});
        if let Some(name) = name {
            f["name"] = name.into();
        }
        let mut c = json!({"index": index, "function": f});
        if let Some(id) = id {
            c["id"] = id.into();
            c["type"] = "function".into();
        }
        json!({"choices": [{"index": 0, "delta": {"tool_calls": [c]}, "finish_reason": null}]})
    };
    let body = openai_sse(
        &[
            json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": null}}]}),
            call(0, Some("call_a"), Some("lookup_customer"), ""),
            call(0, None, None, "{\"custo"),
            call(0, None, None, "mer_id\": \"c_"),
            call(1, Some("call_b"), Some("now"), ""),
            call(0, None, None, "42\", \"n\": [1, 2]}"),
            finish_chunk("tool_calls"),
            usage_chunk(50, 17),
        ],
        true,
    );
    let mock = serve(vec![Reply::sse(&body, 11)]).await;
    let request = chat_request(json!({
        "model": "prov/gpt-test",
        "messages": [
            {"role": "user", "content": "Who is c_41?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_0", "name": "lookup_customer", "arguments": {"customer_id": "c_41"}}]},
            {"role": "tool", "tool_call_id": "call_0", "content": "{\"name\":\"Ada\"}"},
            {"role": "assistant", "content": "Ada. Anything else?", "tool_calls": []},
            {"role": "user", "content": "And c_42?"},
        ],
        "tools": ["lookup_customer"],
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
            &mock.provider(ProviderKind::Openai),
            "gpt-test",
            &request,
            &tools,
            sink,
            in_secs(10),
        )
        .await
        .expect("answer");

    assert!(seen.lock().expect("lock").is_empty());
    assert_eq!(
        answer.message,
        json!({"role": "assistant", "content": null})
    );
    assert_eq!(
        answer.tool_calls,
        [
            json!({"id": "call_a", "name": "lookup_customer", "arguments": {"customer_id": "c_42", "n": [1, 2]}}),
            json!({"id": "call_b", "name": "now", "arguments": {}}),
        ]
    );
    assert_eq!(
        (answer.usage.input_tokens, answer.usage.output_tokens),
        (50, 17)
    );

    let sent = &mock.received()[0].body;
    assert_eq!(
        sent["messages"][1],
        json!({"role": "assistant", "content": null, "tool_calls": [{
            "id": "call_0", "type": "function",
            "function": {"name": "lookup_customer", "arguments": "{\"customer_id\":\"c_41\"}"},
        }]})
    );
    assert_eq!(sent["messages"][2], request.messages[2]);
    assert_eq!(
        sent["messages"][3],
        json!({"role": "assistant", "content": "Ada. Anything else?"})
    );
    assert_eq!(
        sent["tools"],
        json!([{"type": "function", "function": {"name": "lookup_customer", "description": "Finds a customer", "parameters": schema}}])
    );
    assert!(sent.get("response_format").is_none() && sent.get("max_tokens").is_none());
}

#[tokio::test]
async fn a_finished_stream_without_done_or_usage_still_answers() {
    // llama.cpp-style servers: whole tool calls without `index`, no usage, no [DONE].
    let body = openai_sse(
        &[
            text_chunk("ok"),
            json!({"choices": [{"delta": {"tool_calls": [{"id": "t1", "function": {"name": "a", "arguments": {"x": 1}}}, {"function": {"name": "b", "arguments": "{}"}}]}}]}),
            json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "t3", "function": {"name": "c", "arguments": "{\"y\":2}"}}]}}]}),
            finish_chunk("stop"),
        ],
        false,
    );
    let mock = serve(vec![Reply::sse(&body, 64)]).await;
    let (sink, _) = recorder(None);
    let request =
        chat_request(json!({"model": "prov/m", "messages": [{"role": "user", "content": "go"}]}));
    let answer = client()
        .chat(
            &mock.provider(ProviderKind::Openai),
            "m",
            &request,
            &[],
            sink,
            in_secs(10),
        )
        .await
        .expect("answer");
    assert_eq!(answer.message["content"], "ok");
    assert_eq!(
        answer.tool_calls,
        [
            json!({"id": "t1", "name": "a", "arguments": {"x": 1}}),
            json!({"id": "call_1", "name": "b", "arguments": {}}),
            json!({"id": "t3", "name": "c", "arguments": {"y": 2}}),
        ]
    );
    assert_eq!(
        (answer.usage.input_tokens, answer.usage.output_tokens),
        (0, 0)
    );
}

#[tokio::test]
async fn malformed_streams_are_bad_responses() {
    let bad_args = openai_sse(
        &[
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "x", "function": {"name": "f", "arguments": "{\"a\": "}}]}}]}),
            finish_chunk("tool_calls"),
        ],
        true,
    );
    let cases = [
        ("data: {\"choices\": [\n\n".to_owned(), "not JSON"),
        (openai_sse(&[text_chunk("cut")], false), "ended before"),
        (bad_args, "not valid JSON"),
        (openai_sse(&[json!({"choices": "no"})], true), "not a list"),
        ("{\"id\": \"chatcmpl-1\"}".to_owned(), "not an event stream"),
    ];
    for (body, expected) in cases {
        let mock = serve(vec![Reply::sse(&body, 3)]).await;
        let (sink, _) = recorder(None);
        let request = chat_request(json!({"model": "prov/m", "messages": []}));
        let err = client()
            .chat(
                &mock.provider(ProviderKind::Openai),
                "m",
                &request,
                &[],
                sink,
                in_secs(10),
            )
            .await
            .expect_err("bad response");
        assert_eq!(err.code, LLM_BAD_RESPONSE, "{body}: {err}");
        assert!(err.message.contains(expected), "{body}: {err}");
        assert!(err.message.starts_with("prov: "), "{err}");
    }
}

#[tokio::test]
async fn an_error_inside_the_stream_is_reported() {
    let body = openai_sse(
        &[
            text_chunk("par"),
            json!({"error": {"message": "engine crashed", "type": "server_error"}}),
        ],
        false,
    );
    let mock = serve(vec![Reply::sse(&body, 9)]).await;
    let (sink, seen) = recorder(None);
    let request = chat_request(json!({"model": "prov/m", "messages": []}));
    let err = client()
        .chat(
            &mock.provider(ProviderKind::Openai),
            "m",
            &request,
            &[],
            sink,
            in_secs(10),
        )
        .await
        .expect_err("error");
    assert_eq!(err.code, LLM_UNAVAILABLE);
    assert!(err.message.contains("engine crashed"), "{err}");
    assert_eq!(*seen.lock().expect("lock"), ["par"]);
    assert_eq!(mock.hits(), 1, "a stream that started is never retried");
}

#[test]
fn endpoints_and_invalid_messages() {
    let url = |s: &str| {
        openai::endpoint(&s.parse().expect("url"))
            .expect("endpoint")
            .to_string()
    };
    assert_eq!(
        url("https://api.openai.com/v1"),
        "https://api.openai.com/v1/chat/completions"
    );
    assert_eq!(
        url("http://127.0.0.1:11434/v1/"),
        "http://127.0.0.1:11434/v1/chat/completions"
    );
    assert_eq!(url("http://h:8080"), "http://h:8080/chat/completions");

    for (messages, expected) in [
        (json!(["hi"]), "messages[0]: a message must be an object"),
        (
            json!([{"content": "x"}]),
            "messages[0]: a message needs a string role",
        ),
        (
            json!([{"role": "user"}, {"role": "assistant", "tool_calls": [{"name": "f"}]}]),
            "messages[1]: a tool call needs",
        ),
        (
            json!([{"role": "assistant", "tool_calls": [{"id": "1", "name": "f", "arguments": "{"}]}]),
            "not valid JSON",
        ),
    ] {
        let request = chat_request(json!({"model": "p/m", "messages": messages}));
        let err = openai::request_body("m", &request, &[]).expect_err("invalid");
        assert_eq!(err.code, super::LLM_REFUSED);
        assert!(err.message.contains(expected), "{err}");
    }
}
