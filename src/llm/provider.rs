//! The one provider type: what a connection's `"provider": { "kind", "base_url" }` says,
//! checked against the connection when it is saved and again before every call.

use serde::{Deserialize, Serialize};
use url::Url;

use super::{anthropic, openai, DEFAULT_MAX_RETRIES};
use crate::broker::connection::{Connection, ConnectionSecret};
use crate::host::HostError;

/// Which wire format a provider speaks.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// OpenAI and compatible servers (vLLM, Ollama, llama.cpp, ...).
    Openai,
    Anthropic,
}

/// An LLM provider's settings, as stored on its connection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    pub kind: ProviderKind,
    /// E.g. `https://api.openai.com/v1`, `http://127.0.0.1:11434/v1` (OpenAI: the path
    /// gets `/chat/completions`), `https://api.anthropic.com` (Anthropic: the path gets
    /// `/v1/messages`, or `/messages` when it already ends in `/v1`).
    #[schema(value_type = String)]
    pub base_url: Url,
}

impl Provider {
    /// Where chat requests go.
    pub fn endpoint(&self) -> Result<Url, HostError> {
        match self.kind {
            ProviderKind::Openai => openai::endpoint(&self.base_url),
            ProviderKind::Anthropic => anthropic::endpoint(&self.base_url),
        }
    }

    /// What a save checks: the endpoint is a URL the connection's key may be sent to
    /// (host, scheme and port of the connection), and the connection's type carries a
    /// key (`bearer` or `header`). The message says what to change.
    pub fn validate(&self, connection: &Connection) -> Result<(), String> {
        if !matches!(
            connection.secret,
            ConnectionSecret::Bearer { .. } | ConnectionSecret::Header { .. }
        ) {
            return Err(format!(
                "a provider's key is a bearer token or a header value, not a {} credential",
                connection.secret.kind()
            ));
        }
        let endpoint = self
            .endpoint()
            .map_err(|e| format!("base_url: {}", e.message))?;
        connection.authorize(&endpoint).map_err(|e| {
            format!(
                "provider.base_url: {e}; add its host (with :port when it is not the default) \
                 to hosts, and set allow_http for a plain-http server"
            )
        })
    }
}

/// A provider as one call uses it: its name (the part before '/' in model names), its
/// settings, and the connection whose secret is the key. `Debug` shows the secret's
/// fingerprint only.
#[derive(Clone, Debug)]
pub struct LlmTarget {
    pub name: String,
    pub provider: Provider,
    pub connection: Connection,
    /// Retries after the first attempt (so at most `max_retries + 1` requests).
    pub max_retries: u32,
}

impl LlmTarget {
    pub fn new(name: impl Into<String>, provider: Provider, connection: Connection) -> Self {
        LlmTarget {
            name: name.into(),
            provider,
            connection,
            max_retries: DEFAULT_MAX_RETRIES,
        }
    }

    /// The key sent to the provider: a bearer token or a header connection's value.
    pub fn api_key(&self) -> Option<&str> {
        match &self.connection.secret {
            ConnectionSecret::Bearer { token } => Some(token.as_str()),
            ConnectionSecret::Header { value, .. } => Some(value.as_str()),
            _ => None,
        }
        .filter(|k| !k.is_empty())
    }
}
