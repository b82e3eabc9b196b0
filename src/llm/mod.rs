//! The host's LLM client: OpenAI-compatible chat completions and Anthropic messages over
//! HTTP, always streamed, behind the broker's address policy.
//!
//! atoll's canonical message format is OpenAI's chat format with flat tool calls
//! (`{id, name, arguments: <object>}`); each wire module converts to and from its provider.
//!
//! # Layout
//! - `openai`: request body and stream assembly for `/chat/completions` (OpenAI, vLLM,
//!   Ollama, llama.cpp and other compatible servers).
//! - `anthropic`: the same for `/v1/messages`.
//! - `message`: atoll's tool calls and assistant message, shared by both.
//! - `sse`: the incremental `text/event-stream` parser both use.
//! - `provider`: [`Provider`] (the one provider type, stored on a connection) and
//!   [`LlmTarget`] (a provider with the connection that holds its key).
//! - `retry`: sending with retries (429, 5xx, connection failures), backoff, `retry-after`,
//!   and turning provider error answers into [`HostError`]s.

pub mod anthropic;
pub mod host;
pub mod message;
pub mod openai;
pub mod provider;
pub mod retry;
pub mod sse;

#[cfg(test)]
mod tests_anthropic;
#[cfg(test)]
mod tests_errors;
#[cfg(test)]
mod tests_openai;
#[cfg(test)]
mod tests_redaction;
#[cfg(test)]
mod testutil;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_TYPE};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;
use url::Url;

use crate::broker::destination::url_host;
use crate::broker::fetch::checked_client_builder;
use crate::broker::redact::Redactor;
use crate::broker::resolve::{fixed_addrs, permitted};
use crate::broker::{AddressPolicy, Lookup, SystemLookup};
use crate::host::{ChatRequest, ChatResponse, DeltaSink, HostError};

use message::bad_response;
pub use provider::{LlmTarget, Provider, ProviderKind};
pub use retry::Backoff;
use sse::{SseEvent, SseParser};

/// Network failure, or 5xx after the retries; also a provider address the policy refuses.
pub const LLM_UNAVAILABLE: &str = "llm_unavailable";
/// 429 after the retries, or a rate-limit error inside the stream.
pub const LLM_RATE_LIMITED: &str = "llm_rate_limited";
/// The provider refused the request (4xx other than 429), or atoll could not convert it.
pub const LLM_REFUSED: &str = "llm_refused";
/// Malformed JSON or event stream, missing fields, unparsable tool arguments.
pub const LLM_BAD_RESPONSE: &str = "llm_bad_response";
/// The deadline came before the whole answer.
pub const LLM_TIMEOUT: &str = "llm_timeout";

/// `max_retries` of a provider unless configured.
pub const DEFAULT_MAX_RETRIES: u32 = 3;
/// Cap on a whole streamed answer; more is a broken or hostile provider.
const MAX_STREAM_BYTES: usize = 32 * 1024 * 1024;

/// A tool offered to the model (the host resolves ctx tool names to these).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub input_schema: Value,
}

/// Talks to LLM providers. One per process; cheap to clone.
#[derive(Clone)]
pub struct LlmHttp {
    client: reqwest::Client,
    policy: Arc<AddressPolicy>,
    backoff: Backoff,
}

impl LlmHttp {
    pub fn new(policy: AddressPolicy) -> Result<Self, HostError> {
        Self::with_lookup(policy, Arc::new(SystemLookup))
    }

    /// Like `new` with another name lookup (tests map names to loopback with it).
    pub fn with_lookup(policy: AddressPolicy, lookup: Arc<dyn Lookup>) -> Result<Self, HostError> {
        let policy = Arc::new(policy);
        let client = checked_client_builder(policy.clone(), lookup)
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| {
                HostError::new(
                    LLM_UNAVAILABLE,
                    format!("cannot build the HTTP client: {e}"),
                )
            })?;
        Ok(LlmHttp {
            client,
            policy,
            backoff: Backoff::default(),
        })
    }

    /// Replaces the retry backoff (tests shorten it).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// One chat completion, streamed: `deltas` gets each text fragment as it arrives.
    ///
    /// `model` is the name without the provider prefix. `tools` replaces
    /// `request.tools` (which holds the agent's tool names). The endpoint must pass the
    /// connection's checks (hosts, scheme, port) before anything is sent. Every delta,
    /// the answer and every error message are scrubbed of the key in all its forms (a
    /// key split across deltas included); errors start with the provider's name.
    pub async fn chat(
        &self,
        target: &LlmTarget,
        model: &str,
        request: &ChatRequest,
        tools: &[ToolSpec],
        deltas: DeltaSink,
        deadline: Instant,
    ) -> Result<ChatResponse, HostError> {
        let name = target.name.as_str();
        if Instant::now() >= deadline {
            return Err(HostError::new(
                LLM_TIMEOUT,
                format!("{name}: the deadline has passed"),
            ));
        }
        let sent: Vec<String> = target
            .api_key()
            .map(|k| format!("Bearer {k}"))
            .into_iter()
            .collect();
        let redactor = target
            .connection
            .redactor(&sent)
            .map_err(|e| HostError::new(LLM_UNAVAILABLE, format!("{name}: {e}")))?;
        let (sink, stream) = scrubbed_sink(&redactor, deltas.clone());
        let work = self.chat_until_done(target, model, request, tools, &sink, deadline);
        let result = match tokio::time::timeout_at(deadline, work).await {
            Ok(result) => result,
            Err(_) => Err(HostError::new(
                LLM_TIMEOUT,
                "no complete answer before the deadline",
            )),
        };
        if let Some(stream) = stream {
            let rest = match stream.lock() {
                Ok(mut s) => s.finish(),
                Err(poisoned) => poisoned.into_inner().finish(),
            };
            if !rest.is_empty() {
                deltas(&rest);
            }
        }
        match result {
            Ok(mut answer) => {
                redactor.json(&mut answer.message);
                answer.tool_calls.iter_mut().for_each(|c| redactor.json(c));
                Ok(answer)
            }
            Err(e) => {
                let message = format!("{name}: {}", e.message);
                Err(redactor.host_error(HostError::new(e.code, message)))
            }
        }
    }

    async fn chat_until_done(
        &self,
        target: &LlmTarget,
        model: &str,
        request: &ChatRequest,
        tools: &[ToolSpec],
        deltas: &DeltaSink,
        deadline: Instant,
    ) -> Result<ChatResponse, HostError> {
        let kind = target.provider.kind;
        let url = target.provider.endpoint()?;
        // The same check as a brokered fetch: the key goes only where the connection says.
        target
            .connection
            .authorize(&url)
            .map_err(|e| HostError::new(e.code(), e.to_string()))?;
        let body = match kind {
            ProviderKind::Openai => openai::request_body(model, request, tools)?,
            ProviderKind::Anthropic => anthropic::request_body(model, request, tools)?,
        };
        let host = self.check_address(&url)?;
        let body = serde_json::to_vec(&body)
            .map_err(|e| HostError::new(LLM_REFUSED, format!("cannot encode the request: {e}")))?;
        let attempt = retry::Attempt {
            client: &self.client,
            url: &url,
            headers: headers(target)?,
            body: body.into(),
            host: &host,
            max_retries: target.max_retries,
            backoff: self.backoff,
            deadline,
        };
        tracing::debug!(provider = %target.name, model, "llm: chat request");
        let response = attempt.send().await?;
        match kind {
            ProviderKind::Openai => {
                read_stream(response, openai::Assembler::default(), deltas, &host).await
            }
            ProviderKind::Anthropic => {
                read_stream(response, anthropic::Assembler::default(), deltas, &host).await
            }
        }
    }

    /// The address check for hosts that skip the resolver (IP literals) or must not reach
    /// DNS (localhost); names are checked by the client's resolver. Nothing is sent when
    /// this fails.
    fn check_address(&self, url: &Url) -> Result<String, HostError> {
        let host =
            url_host(url).ok_or_else(|| HostError::new(LLM_UNAVAILABLE, "base_url has no host"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(HostError::new(LLM_UNAVAILABLE, "base_url must be http(s)"));
        }
        if let Some(addrs) = fixed_addrs(&host) {
            permitted(&host, addrs, &self.policy)
                .map_err(|refused| HostError::new(LLM_UNAVAILABLE, refused.to_string()))?;
        }
        Ok(host)
    }
}

/// Turns one wire format's events into the answer.
pub(crate) trait Assemble {
    /// Takes one event (passing text to `deltas`); `Ok(true)` once the answer is complete.
    fn event(&mut self, event: SseEvent, deltas: &DeltaSink) -> Result<bool, HostError>;
    /// The answer; `complete` says whether the stream's final event was seen.
    fn finish(self, complete: bool) -> Result<ChatResponse, HostError>;
}

async fn read_stream(
    mut response: reqwest::Response,
    mut assembler: impl Assemble,
    deltas: &DeltaSink,
    host: &str,
) -> Result<ChatResponse, HostError> {
    let mut parser = SseParser::new();
    let mut events = Vec::new();
    let mut total = 0usize;
    let mut seen = 0usize;
    loop {
        let chunk = response.chunk().await.map_err(|e| {
            let e = crate::broker::fetch::map_error(e, host);
            HostError::new(LLM_UNAVAILABLE, format!("the stream broke off: {e}"))
        })?;
        match &chunk {
            Some(bytes) => {
                total += bytes.len();
                if total > MAX_STREAM_BYTES {
                    return Err(bad_response(format!(
                        "the answer exceeds {MAX_STREAM_BYTES} bytes"
                    )));
                }
                parser.feed(bytes, &mut events).map_err(bad_response)?;
            }
            None => parser.finish(&mut events).map_err(bad_response)?,
        }
        for event in events.drain(..) {
            seen += 1;
            if assembler.event(event, deltas)? {
                return assembler.finish(true);
            }
        }
        if chunk.is_none() {
            if seen == 0 {
                return Err(bad_response("the answer is not an event stream"));
            }
            return assembler.finish(false);
        }
    }
}

/// `deltas` behind a stream redactor (and the redactor, to flush at the end); `deltas`
/// itself when there is nothing to redact.
type HeldBack = Arc<Mutex<crate::broker::redact::StreamRedactor>>;

fn scrubbed_sink(redactor: &Redactor, deltas: DeltaSink) -> (DeltaSink, Option<HeldBack>) {
    if redactor.is_noop() {
        return (deltas, None);
    }
    let stream: HeldBack = Arc::new(Mutex::new(redactor.stream()));
    let held = stream.clone();
    let sink: DeltaSink = Arc::new(move |piece: &str| {
        let out = match held.lock() {
            Ok(mut s) => s.push(piece),
            Err(poisoned) => poisoned.into_inner().push(piece),
        };
        if !out.is_empty() {
            deltas(&out);
        }
    });
    (sink, Some(stream))
}

fn headers(target: &LlmTarget) -> Result<HeaderMap, HostError> {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
    // A provider that compresses would hand us bytes we could not scrub.
    headers.insert(
        reqwest::header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    let key = target.api_key();
    let secret = |value: String| {
        let mut value = HeaderValue::from_str(&value)
            .map_err(|_| HostError::new(LLM_UNAVAILABLE, "the api key is not a valid header"))?;
        value.set_sensitive(true);
        Ok::<_, HostError>(value)
    };
    match target.provider.kind {
        ProviderKind::Openai => {
            if let Some(key) = key {
                headers.insert("authorization", secret(format!("Bearer {key}"))?);
            }
        }
        ProviderKind::Anthropic => {
            if let Some(key) = key {
                headers.insert("x-api-key", secret(key.to_owned())?);
            }
            headers.insert(
                "anthropic-version",
                HeaderValue::from_static(anthropic::API_VERSION),
            );
        }
    }
    Ok(headers)
}
