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
//! - `retry`: sending with retries (429, 5xx, connection failures), backoff, `retry-after`,
//!   and turning provider error answers into [`HostError`]s.

pub mod anthropic;
pub mod host;
pub mod message;
pub mod openai;
pub mod retry;
pub mod sse;

#[cfg(test)]
mod tests_anthropic;
#[cfg(test)]
mod tests_errors;
#[cfg(test)]
mod tests_openai;
#[cfg(test)]
mod testutil;

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_TYPE};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;
use url::{Host, Url};

use crate::broker::fetch::checked_client_builder;
use crate::broker::resolve::{fixed_addrs, permitted};
use crate::broker::{AddressPolicy, Lookup, SystemLookup};
use crate::host::{ChatRequest, ChatResponse, DeltaSink, HostError};

use message::bad_response;
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

/// Which wire format a provider speaks.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    Openai,
    Anthropic,
}

/// One configured provider (operator config). Its `Debug` leaves out the api key.
#[derive(Clone)]
pub struct Provider {
    /// `openai`, `local`, ...: the part before '/' in model names.
    pub name: String,
    pub kind: ProviderKind,
    /// E.g. `https://api.openai.com/v1`, `http://127.0.0.1:11434/v1` (OpenAI: the path
    /// gets `/chat/completions`), `https://api.anthropic.com` (Anthropic: the path gets
    /// `/v1/messages`, or `/messages` when it already ends in `/v1`).
    pub base_url: Url,
    pub api_key: Option<String>,
    /// Retries after the first attempt (so at most `max_retries + 1` requests).
    pub max_retries: u32,
}

impl Provider {
    pub fn new(name: impl Into<String>, kind: ProviderKind, base_url: Url) -> Self {
        Provider {
            name: name.into(),
            kind,
            base_url,
            api_key: None,
            max_retries: DEFAULT_MAX_RETRIES,
        }
    }
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("base_url", &self.base_url.as_str())
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("max_retries", &self.max_retries)
            .finish()
    }
}

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
    /// `request.tools` (which holds the agent's tool names). Every error message starts
    /// with the provider's name and never contains its api key.
    pub async fn chat(
        &self,
        provider: &Provider,
        model: &str,
        request: &ChatRequest,
        tools: &[ToolSpec],
        deltas: DeltaSink,
        deadline: Instant,
    ) -> Result<ChatResponse, HostError> {
        if Instant::now() >= deadline {
            return Err(HostError::new(
                LLM_TIMEOUT,
                format!("{}: the deadline has passed", provider.name),
            ));
        }
        let work = self.chat_until_done(provider, model, request, tools, &deltas, deadline);
        let result = match tokio::time::timeout_at(deadline, work).await {
            Ok(result) => result,
            Err(_) => Err(HostError::new(
                LLM_TIMEOUT,
                "no complete answer before the deadline",
            )),
        };
        result.map_err(|e| {
            let message = format!("{}: {}", provider.name, e.message);
            HostError::new(e.code, redact(&message, provider.api_key.as_deref()))
        })
    }

    async fn chat_until_done(
        &self,
        provider: &Provider,
        model: &str,
        request: &ChatRequest,
        tools: &[ToolSpec],
        deltas: &DeltaSink,
        deadline: Instant,
    ) -> Result<ChatResponse, HostError> {
        let (url, body) = match provider.kind {
            ProviderKind::Openai => (
                openai::endpoint(&provider.base_url)?,
                openai::request_body(model, request, tools)?,
            ),
            ProviderKind::Anthropic => (
                anthropic::endpoint(&provider.base_url)?,
                anthropic::request_body(model, request, tools)?,
            ),
        };
        let host = self.check_address(&url)?;
        let body = serde_json::to_vec(&body)
            .map_err(|e| HostError::new(LLM_REFUSED, format!("cannot encode the request: {e}")))?;
        let attempt = retry::Attempt {
            client: &self.client,
            url: &url,
            headers: headers(provider)?,
            body: body.into(),
            host: &host,
            max_retries: provider.max_retries,
            backoff: self.backoff,
            deadline,
        };
        tracing::debug!(provider = %provider.name, model, "llm: chat request");
        let response = attempt.send().await?;
        match provider.kind {
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
        let host = match url.host() {
            Some(Host::Domain(d)) => d.to_owned(),
            Some(Host::Ipv4(ip)) => ip.to_string(),
            Some(Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(HostError::new(LLM_UNAVAILABLE, "base_url has no host")),
        };
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

fn headers(provider: &Provider) -> Result<HeaderMap, HostError> {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
    let key = provider.api_key.as_deref().filter(|k| !k.is_empty());
    let secret = |value: String| {
        let mut value = HeaderValue::from_str(&value)
            .map_err(|_| HostError::new(LLM_UNAVAILABLE, "the api key is not a valid header"))?;
        value.set_sensitive(true);
        Ok::<_, HostError>(value)
    };
    match provider.kind {
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

/// Removes the api key from a message that quotes provider text (belt and braces: a
/// provider may echo what it was sent).
fn redact(message: &str, api_key: Option<&str>) -> String {
    match api_key {
        Some(key) if key.len() >= 4 => message.replace(key, "[redacted]"),
        _ => message.to_owned(),
    }
}
