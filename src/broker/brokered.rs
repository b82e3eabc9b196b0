//! The fetcher runs actually get: plain fetches go straight to [`HttpFetcher`]; a fetch
//! naming a connection gets that connection's credential injected on the host — the
//! end-user's own connection if it has one, else the app's — after the connection's host
//! list is checked. The secret is opened only here, for one request.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::connection::{inject, Connection, ConnectionSecret};
use super::oauth::TokenCache;
use super::secrets::MasterKeys;
use super::{FetchError, FetchLimits, FetchRequest, FetchResponse, HttpFetcher};
use crate::host::{Fetcher, HostCheck, Tenant};
use crate::store::{ConnectionRow, Store};

/// An LLM provider a connection stands for (`"provider": { ... }` on the connection).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    /// `openai` (any OpenAI-compatible server) or `anthropic`.
    pub kind: String,
    pub base_url: String,
}

/// What binds a sealed secret to its row: a ciphertext copied to another app, name or
/// end-user does not open.
pub fn connection_aad(app_id: &str, name: &str, end_user: &str) -> String {
    format!("{app_id}/connection/{name}/{end_user}")
}

pub struct BrokeredFetcher {
    pub store: Arc<dyn Store>,
    pub keys: Option<Arc<MasterKeys>>,
    pub tokens: Arc<TokenCache>,
    pub http: Arc<HttpFetcher>,
}

impl BrokeredFetcher {
    /// The connection a run of `tenant` sees under `name`, opened.
    pub async fn connection(
        &self,
        tenant: &Tenant,
        name: &str,
    ) -> Result<Option<(ConnectionRow, Connection)>, FetchError> {
        let unavailable = |message: String| FetchError::Connection {
            code: "secret_unavailable",
            message,
        };
        let mut row = None;
        if let Some(end_user) = &tenant.end_user {
            row = self
                .store
                .get_connection(&tenant.app_id, name, end_user)
                .await
                .map_err(|e| unavailable(e.to_string()))?;
        }
        if row.is_none() {
            row = self
                .store
                .get_connection(&tenant.app_id, name, "")
                .await
                .map_err(|e| unavailable(e.to_string()))?;
        }
        let Some(row) = row else {
            return Ok(None);
        };
        let keys = self.keys.as_ref().ok_or_else(|| {
            unavailable("secrets are unavailable: the operator has not set ATOLL_MASTER_KEY".into())
        })?;
        let plaintext = keys
            .open(
                &row.sealed,
                &connection_aad(&row.app_id, &row.name, &row.end_user),
            )
            .map_err(|_| {
                unavailable(format!(
                    "connection '{name}' cannot be opened with the current master keys"
                ))
            })?;
        let secret: ConnectionSecret = serde_json::from_slice(&plaintext)
            .map_err(|_| unavailable(format!("connection '{name}' is corrupt")))?;
        let hosts: Vec<String> = row
            .public
            .get("hosts")
            .and_then(|h| serde_json::from_value(h.clone()).ok())
            .unwrap_or_default();
        let connection = Connection {
            name: name.to_owned(),
            hosts,
            secret,
        };
        Ok(Some((row, connection)))
    }
}

#[async_trait]
impl Fetcher for BrokeredFetcher {
    async fn fetch(
        &self,
        tenant: &Tenant,
        connection: Option<&str>,
        mut request: FetchRequest,
        limits: &FetchLimits,
        allow_host: HostCheck,
    ) -> Result<FetchResponse, FetchError> {
        let Some(name) = connection else {
            return self.http.fetch(request, limits, &*allow_host).await;
        };
        let (_, connection) =
            self.connection(tenant, name)
                .await?
                .ok_or_else(|| FetchError::Connection {
                    code: "connection_not_found",
                    message: format!("connection '{name}' does not exist for this app"),
                })?;
        let before: Vec<(String, String)> = request.headers.clone();
        let url_before = request.url.clone();
        inject(&connection, &mut request, &self.tokens, &self.http)
            .await
            .map_err(|e| FetchError::Connection {
                code: e.code(),
                message: e.to_string(),
            })?;
        let secrets = injected_values(&before, &url_before, &request, &connection.secret);
        // Redirects may not carry the credential beyond the connection's own hosts.
        let hosts = connection.hosts.clone();
        let allow = move |host: &str| allow_host(host) && super::host_allowed(&hosts, host);
        let mut response = self.http.fetch(request, limits, &allow).await?;
        scrub(&mut response, &secrets);
        Ok(response)
    }
}

/// Every credential value this request carries: what injection added (headers, query
/// values, the bearer/basic part of `authorization`) and the raw secret fields.
fn injected_values(
    before: &[(String, String)],
    url_before: &url::Url,
    after: &FetchRequest,
    secret: &ConnectionSecret,
) -> Vec<Vec<u8>> {
    let mut values: Vec<String> = Vec::new();
    for (name, value) in &after.headers {
        if !before.iter().any(|(n, v)| n == name && v == value) {
            values.push(value.clone());
            if let Some((_, credential)) = value.split_once(' ') {
                values.push(credential.to_owned());
            }
        }
    }
    let old: Vec<(String, String)> = url_before.query_pairs().into_owned().collect();
    for (k, v) in after.url.query_pairs() {
        if !old.iter().any(|(ok, ov)| ok == &k && ov == &v) {
            values.push(v.into_owned());
        }
    }
    if let Ok(Value::Object(fields)) = serde_json::to_value(secret) {
        for (name, v) in fields {
            let secretish = matches!(
                name.as_str(),
                "token" | "value" | "password" | "client_secret"
            );
            if let (true, Some(text)) = (secretish, v.as_str()) {
                values.push(text.to_owned());
            }
        }
    }
    let mut out: Vec<Vec<u8>> = values
        .into_iter()
        .filter(|v| v.len() >= 4)
        .map(String::into_bytes)
        .collect();
    // Percent-encoded forms too (a query value, a token echoed inside a URL).
    let encoded: Vec<Vec<u8>> = out
        .iter()
        .filter_map(|v| std::str::from_utf8(v).ok())
        .map(|v| {
            url::form_urlencoded::byte_serialize(v.as_bytes())
                .collect::<String>()
                .into_bytes()
        })
        .collect();
    out.extend(encoded);
    out.sort();
    out.dedup();
    out
}

const REDACTED: &[u8] = b"[redacted]";

fn replace_all(haystack: &[u8], needle: &[u8]) -> Option<Vec<u8>> {
    let first = haystack.windows(needle.len()).position(|w| w == needle)?;
    let mut out = Vec::with_capacity(haystack.len());
    out.extend_from_slice(&haystack[..first]);
    out.extend_from_slice(REDACTED);
    let mut rest = &haystack[first + needle.len()..];
    while let Some(i) = rest.windows(needle.len()).position(|w| w == needle) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(REDACTED);
        rest = &rest[i + needle.len()..];
    }
    out.extend_from_slice(rest);
    Some(out)
}

/// An upstream that reflects the credential (an echo server, an error page quoting the
/// request) must not hand it to the agent: it is replaced in the response's headers,
/// body and final URL before the response leaves the host.
fn scrub(response: &mut FetchResponse, secrets: &[Vec<u8>]) {
    for secret in secrets {
        if let Some(clean) = replace_all(&response.body, secret) {
            response.body = clean.into();
        }
        for (_, value) in response.headers.iter_mut() {
            if let Some(clean) = replace_all(value.as_bytes(), secret) {
                *value = String::from_utf8_lossy(&clean).into_owned();
            }
        }
        if let Some(clean) = replace_all(response.url.as_bytes(), secret) {
            response.url = String::from_utf8_lossy(&clean).into_owned();
        }
    }
}
