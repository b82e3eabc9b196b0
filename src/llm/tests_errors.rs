//! Retries, provider refusals, deadlines and the address policy.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use super::testutil::*;
use super::{LlmHttp, ProviderKind, LLM_RATE_LIMITED, LLM_REFUSED, LLM_TIMEOUT, LLM_UNAVAILABLE};
use crate::broker::{AddressPolicy, Lookup};
use crate::host::{ChatResponse, HostError};

fn ok_stream() -> Reply {
    let body = openai_sse(
        &[
            json!({"choices": [{"index": 0, "delta": {"content": "fine"}, "finish_reason": "stop"}]}),
            json!({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}),
        ],
        true,
    );
    Reply::sse(&body, 16)
}

async fn chat_with(
    http: &LlmHttp,
    mock: &Mock,
    kind: ProviderKind,
    max_retries: u32,
    deadline: Instant,
) -> Result<ChatResponse, HostError> {
    let mut provider = mock.provider(kind);
    provider.max_retries = max_retries;
    let request =
        chat_request(json!({"model": "prov/m", "messages": [{"role": "user", "content": "x"}]}));
    let (sink, _) = recorder(None);
    http.chat(&provider, "m", &request, &[], sink, deadline)
        .await
}

#[tokio::test]
async fn rate_limit_with_retry_after_is_retried() {
    let limited = Reply::status(
        429,
        r#"{"error":{"message":"slow down","type":"rate_limit_error"}}"#,
    )
    .header("retry-after", "1")
    .header("content-type", "application/json");
    let mock = serve(vec![limited, ok_stream()]).await;
    let started = Instant::now();
    let answer = chat_with(&client(), &mock, ProviderKind::Openai, 3, in_secs(10))
        .await
        .expect("answer after a retry");
    assert_eq!(answer.message["content"], "fine");
    assert_eq!(answer.usage.input_tokens, 3);
    assert_eq!(mock.hits(), 2);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(950),
        "retry-after honoured: {waited:?}"
    );
    assert!(waited < Duration::from_secs(5), "{waited:?}");
}

#[tokio::test]
async fn rate_limits_and_server_errors_give_up_after_max_retries() {
    let mock = serve(vec![Reply::status(500, r#"{"error":{"message":"boom"}}"#)]).await;
    let err = chat_with(&client(), &mock, ProviderKind::Openai, 2, in_secs(10))
        .await
        .expect_err("unavailable");
    assert_eq!(err.code, LLM_UNAVAILABLE);
    assert!(err.message.contains("(500): boom (3 attempts)"), "{err}");
    assert_eq!(mock.hits(), 3);

    let mock = serve(vec![Reply::status(429, "")]).await;
    let err = chat_with(&client(), &mock, ProviderKind::Anthropic, 1, in_secs(10))
        .await
        .expect_err("rate limited");
    assert_eq!(err.code, LLM_RATE_LIMITED);
    assert_eq!(mock.hits(), 2);

    // 529 (Anthropic's "overloaded") is a server error, retried like any 5xx.
    let overloaded = Reply::status(
        529,
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
    );
    let mock = serve(vec![overloaded, ok_stream()]).await;
    let answer = chat_with(&client(), &mock, ProviderKind::Openai, 3, in_secs(10)).await;
    assert_eq!(answer.expect("answer").message["content"], "fine");
    assert_eq!(mock.hits(), 2);
}

#[tokio::test]
async fn a_wait_past_the_deadline_is_not_taken() {
    let limited = Reply::status(429, "").header("retry-after", "30");
    let mock = serve(vec![limited, ok_stream()]).await;
    let started = Instant::now();
    let err = chat_with(&client(), &mock, ProviderKind::Openai, 3, in_secs(5))
        .await
        .expect_err("gives up");
    assert_eq!(err.code, LLM_RATE_LIMITED);
    assert!(err.message.contains("pass the deadline"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(mock.hits(), 1);
}

#[tokio::test]
async fn client_errors_are_refusals_with_the_providers_message_but_not_the_key() {
    let body = format!(
        r#"{{"error":{{"message":"Incorrect API key provided: {TEST_KEY}.","type":"invalid_request_error"}}}}"#
    );
    for kind in [ProviderKind::Openai, ProviderKind::Anthropic] {
        let mock = serve(vec![Reply::status(401, &body)]).await;
        let err = chat_with(&client(), &mock, kind, 3, in_secs(10))
            .await
            .expect_err("refused");
        assert_eq!(err.code, LLM_REFUSED);
        assert!(
            err.message
                .starts_with("prov: request refused (401): Incorrect API key provided"),
            "{err}"
        );
        assert!(
            !err.message.contains(TEST_KEY) && !format!("{err:?}").contains(TEST_KEY),
            "{err}"
        );
        assert_eq!(mock.hits(), 1, "4xx is not retried");
    }
    let mock = serve(vec![Reply::status(400, "model 'm' not found")]).await;
    let err = chat_with(&client(), &mock, ProviderKind::Openai, 3, in_secs(10))
        .await
        .expect_err("refused");
    assert_eq!(
        err.message,
        "prov: request refused (400): model 'm' not found"
    );
}

#[tokio::test]
async fn a_slow_provider_times_out_at_the_deadline() {
    let first = openai_sse(
        &[json!({"choices": [{"index": 0, "delta": {"content": "so"}}]})],
        false,
    );
    let stalled = Reply::sse(&first, 64).step(Step::Sleep(Duration::from_secs(30)));
    let before_headers = ok_stream().after(Duration::from_secs(30));
    for reply in [stalled, before_headers] {
        let mock = serve(vec![reply]).await;
        let started = Instant::now();
        let deadline = started + Duration::from_millis(300);
        let err = chat_with(&client(), &mock, ProviderKind::Openai, 3, deadline)
            .await
            .expect_err("timeout");
        assert_eq!(err.code, LLM_TIMEOUT, "{err}");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(290) && took < Duration::from_secs(1),
            "{took:?}"
        );
    }
    // A deadline already gone: nothing is sent.
    let mock = serve(vec![ok_stream()]).await;
    let err = chat_with(&client(), &mock, ProviderKind::Openai, 3, Instant::now())
        .await
        .expect_err("timeout");
    assert_eq!(err.code, LLM_TIMEOUT);
    assert_eq!(mock.hits(), 0);
}

#[tokio::test]
async fn connection_failures_are_retried_then_unavailable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let mut mock = serve(vec![ok_stream()]).await;
    mock.base = format!("http://{addr}/v1").parse().expect("url");
    let err = chat_with(&client(), &mock, ProviderKind::Openai, 2, in_secs(10))
        .await
        .expect_err("unavailable");
    assert_eq!(err.code, LLM_UNAVAILABLE);
    assert!(err.message.contains("(3 attempts)"), "{err}");
}

struct ToLoopback;

#[async_trait::async_trait]
impl Lookup for ToLoopback {
    async fn lookup(&self, _host: &str) -> std::io::Result<Vec<IpAddr>> {
        Ok(vec![IpAddr::from([127, 0, 0, 1])])
    }
}

#[tokio::test]
async fn loopback_providers_are_refused_unless_the_policy_permits_them() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let closed = AddressPolicy::default();
    let http = LlmHttp::with_lookup(closed, Arc::new(ToLoopback)).expect("client");
    for base in [
        format!("http://127.0.0.1:{port}/v1"),
        format!("http://localhost:{port}/v1"),
        format!("http://llm.internal.test:{port}/v1"),
    ] {
        let mut mock = serve(vec![ok_stream()]).await;
        mock.base = base.parse().expect("url");
        let err = chat_with(&http, &mock, ProviderKind::Openai, 3, in_secs(10))
            .await
            .expect_err("refused");
        assert_eq!(err.code, LLM_UNAVAILABLE, "{base}: {err}");
        assert!(
            err.message.contains("is refused (loopback)"),
            "{base}: {err}"
        );
        assert!(!err.message.contains("attempts"), "not retried: {err}");
    }
    let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
    assert!(accepted.is_err(), "no connection was made");
}

#[tokio::test]
async fn a_providers_debug_output_leaves_out_the_key() {
    let mock = serve(vec![ok_stream()]).await;
    let shown = format!("{:?}", mock.provider(ProviderKind::Anthropic));
    assert!(!shown.contains(TEST_KEY), "{shown}");
    assert!(shown.contains("fingerprint"), "{shown}");
}
