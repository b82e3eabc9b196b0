//! The key never comes back: a provider that echoes it (in deltas, split across them, in
//! the answer, in tool arguments, in an error) hands back `[redacted]`; and the key goes
//! only where its connection allows.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use super::testutil::*;
use super::{ProviderKind, LLM_REFUSED};
use crate::broker::redact::REDACTED;

fn text_chunk(text: &str) -> Value {
    json!({"choices": [{"index": 0, "delta": {"content": text}}]})
}

fn ask() -> crate::host::ChatRequest {
    chat_request(json!({"model": "prov/m", "messages": [{"role": "user", "content": "echo"}]}))
}

#[tokio::test]
async fn an_echoed_key_is_scrubbed_from_deltas_even_when_split_and_from_the_answer() {
    let (head, tail) = TEST_KEY.split_at(9);
    let b64 = STANDARD.encode(format!("Bearer {TEST_KEY}"));
    let body = openai_sse(
        &[
            text_chunk("You sent "),
            text_chunk(head),
            text_chunk(tail),
            text_chunk(&format!(" and {b64}.")),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "t", "arguments": format!("{{\"k\":\"{TEST_KEY}\"}}")}}]}, "finish_reason": "tool_calls"}]}),
        ],
        true,
    );
    let mock = serve(vec![Reply::sse(&body, 5)]).await;
    let (sink, seen) = recorder(None);
    let answer = client()
        .chat(
            &mock.provider(ProviderKind::Openai),
            "m",
            &ask(),
            &[],
            sink,
            in_secs(10),
        )
        .await
        .expect("answer");
    let deltas = seen.lock().expect("lock").clone();
    for delta in &deltas {
        assert!(!delta.contains(head) && !delta.contains(tail), "{deltas:?}");
    }
    let streamed = deltas.concat();
    assert_eq!(streamed, format!("You sent {REDACTED} and {REDACTED}."));
    assert_eq!(answer.message["content"], streamed);
    assert_eq!(answer.tool_calls[0]["arguments"], json!({ "k": REDACTED }));
    // The provider did get the key.
    let auth = mock.received()[0].headers["authorization"].clone();
    assert_eq!(auth, format!("Bearer {TEST_KEY}"));
}

#[tokio::test]
async fn ordinary_text_still_streams_piece_by_piece() {
    let body = openai_sse(
        &[
            text_chunk("one "),
            text_chunk("two "),
            text_chunk("three"),
            json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
        ],
        true,
    );
    let mock = serve(vec![Reply::sse(&body, 64)]).await;
    let (sink, seen) = recorder(None);
    client()
        .chat(
            &mock.provider(ProviderKind::Openai),
            "m",
            &ask(),
            &[],
            sink,
            in_secs(10),
        )
        .await
        .expect("answer");
    let deltas = seen.lock().expect("lock").clone();
    assert_eq!(deltas.concat(), "one two three");
    assert!(deltas.len() >= 3, "{deltas:?}");
}

#[tokio::test]
async fn an_error_that_quotes_the_key_is_scrubbed() {
    let quoted = format!(
        "{{\"error\":{{\"message\":\"bad key {}\"}}}}",
        hex::encode(TEST_KEY)
    );
    let mock = serve(vec![Reply::status(401, &quoted)]).await;
    let (sink, _) = recorder(None);
    let err = client()
        .chat(
            &mock.provider(ProviderKind::Anthropic),
            "m",
            &ask(),
            &[],
            sink,
            in_secs(10),
        )
        .await
        .expect_err("refused");
    assert_eq!(err.code, LLM_REFUSED);
    assert_eq!(
        err.message,
        format!("prov: request refused (401): bad key {REDACTED}")
    );
}

#[tokio::test]
async fn a_base_url_outside_the_connections_hosts_is_never_contacted() {
    let mock = serve(vec![Reply::status(200, "")]).await;
    let mut target = mock.provider(ProviderKind::Openai);
    target.connection.hosts = vec!["api.openai.com".into()];
    let (sink, _) = recorder(None);
    let err = client()
        .chat(&target, "m", &ask(), &[], sink, in_secs(10))
        .await
        .expect_err("refused");
    assert_eq!(err.code, "connection_host_not_allowed", "{err}");
    assert!(!err.message.contains(TEST_KEY));
    assert_eq!(mock.hits(), 0, "the provider was not contacted");
}

#[tokio::test]
async fn plain_http_and_unlisted_ports_are_refused_for_providers_too() {
    let mock = serve(vec![Reply::status(200, "")]).await;
    let mut target = mock.provider(ProviderKind::Openai);
    target.connection.allow_http = false;
    let (sink, _) = recorder(None);
    let err = client()
        .chat(&target, "m", &ask(), &[], sink.clone(), in_secs(10))
        .await
        .expect_err("http refused");
    assert_eq!(err.code, "connection_scheme_not_allowed", "{err}");
    let mut target = mock.provider(ProviderKind::Openai);
    target.connection.hosts = vec!["127.0.0.1".into()];
    let err = client()
        .chat(&target, "m", &ask(), &[], sink, in_secs(10))
        .await
        .expect_err("port refused");
    assert_eq!(err.code, "connection_port_not_allowed", "{err}");
    assert_eq!(mock.hits(), 0);
}
