//! OAuth2 client-credentials tokens (RFC 6749 §4.4), fetched through [`HttpFetcher`] so the
//! operator's address policy covers token endpoints, and cached until shortly before they
//! expire.
//!
//! One fetch per credential at a time: concurrent requests for the same key wait for the
//! first (moka's `try_get_with`). Failures are not cached; the next request tries again.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use moka::future::Cache;
use moka::Expiry;
use reqwest::header::HeaderValue;
use serde_json::Value;
use sha2::{Digest, Sha256};
use url::{form_urlencoded, Url};

use super::connection::BrokerError;
use super::fetch::{FetchLimits, FetchRequest, HttpFetcher};
use super::redact::{Redactor, REDACTED};

/// Tokens are dropped this long before the endpoint says they expire.
pub const DEFAULT_MARGIN: Duration = Duration::from_secs(60);
/// When the endpoint gives no `expires_in`.
const DEFAULT_LIFETIME_SECS: u64 = 3600;
/// Even a long-lived token is fetched again daily (revocations take effect).
const MAX_LIFETIME_SECS: u64 = 24 * 3600;
const MAX_ENTRIES: u64 = 10_000;
/// How much of the endpoint's `error_description` reaches the message.
const MAX_DESCRIPTION: usize = 300;

/// One client's credentials, borrowed from its connection.
#[derive(Clone, Copy)]
pub struct ClientCredentials<'a> {
    pub token_url: &'a str,
    pub client_id: &'a str,
    pub client_secret: &'a str,
    pub scopes: &'a [String],
    pub audience: Option<&'a str>,
}

impl ClientCredentials<'_> {
    /// SHA-256 over every field, length-prefixed: the cache never holds the secret itself.
    fn cache_key(&self) -> [u8; 32] {
        let mut hash = Sha256::new();
        let mut field = |s: &str| {
            hash.update((s.len() as u64).to_be_bytes());
            hash.update(s.as_bytes());
        };
        field(self.token_url);
        field(self.client_id);
        field(self.client_secret);
        field(if self.audience.is_some() { "1" } else { "0" });
        field(self.audience.unwrap_or(""));
        for scope in self.scopes {
            field(scope);
        }
        hash.finalize().into()
    }
}

#[derive(Clone)]
struct Token {
    access_token: String,
    /// How long the cache keeps it.
    keep: Duration,
}

struct TokenExpiry;

impl Expiry<[u8; 32], Token> for TokenExpiry {
    fn expire_after_create(&self, _: &[u8; 32], token: &Token, _: Instant) -> Option<Duration> {
        Some(token.keep)
    }
}

/// Access tokens by credential. Build one per process and share it.
pub struct TokenCache {
    cache: Cache<[u8; 32], Token>,
    margin: Duration,
    limits: FetchLimits,
}

impl Default for TokenCache {
    fn default() -> Self {
        Self::new()
    }
}

impl TokenCache {
    pub fn new() -> Self {
        Self::with_margin(DEFAULT_MARGIN)
    }

    /// Tokens are refreshed `margin` before they expire (half their lifetime, for tokens
    /// that live less than twice the margin).
    pub fn with_margin(margin: Duration) -> Self {
        let cache = Cache::builder()
            .max_capacity(MAX_ENTRIES)
            .expire_after(TokenExpiry)
            .build();
        let limits = FetchLimits {
            max_response_bytes: 64 * 1024,
            timeout: Duration::from_secs(15),
            // A token endpoint has no business redirecting a POST carrying the secret.
            max_redirects: 0,
        };
        Self {
            cache,
            margin,
            limits,
        }
    }

    /// A valid access token for `creds`: the cached one, or a new one from the endpoint.
    pub async fn token(
        &self,
        creds: &ClientCredentials<'_>,
        fetcher: &HttpFetcher,
    ) -> Result<String, BrokerError> {
        self.cache
            .try_get_with(creds.cache_key(), self.fetch(creds, fetcher))
            .await
            .map(|t| t.access_token)
            .map_err(|reason| BrokerError::OauthTokenFailed(reason.to_string()))
    }

    /// Forgets the token of `creds` (e.g. after the API answered 401 with it).
    pub async fn invalidate(&self, creds: &ClientCredentials<'_>) {
        self.cache.invalidate(&creds.cache_key()).await;
    }

    /// Asks the endpoint. The error is the message for [`BrokerError::OauthTokenFailed`].
    async fn fetch(
        &self,
        creds: &ClientCredentials<'_>,
        fetcher: &HttpFetcher,
    ) -> Result<Token, String> {
        let url = Url::parse(creds.token_url).map_err(|_| "token_url is not a URL".to_owned())?;
        let endpoint = format!("token endpoint {}", url.host_str().unwrap_or("(no host)"));
        let body = token_form(creds);
        let request = FetchRequest {
            method: "POST".into(),
            url,
            headers: vec![
                ("authorization".into(), basic_auth(creds)),
                (
                    "content-type".into(),
                    "application/x-www-form-urlencoded".into(),
                ),
                ("accept".into(), "application/json".into()),
                ("accept-encoding".into(), "identity".into()),
            ],
            body: Some(Bytes::from(body)),
            sensitive_headers: vec![],
            redirect: Default::default(),
        };
        // No redirects are followed, so only the token URL's own host is ever contacted;
        // the address policy still applies to it.
        let resp = fetcher
            .fetch(request, &self.limits, &|_| true)
            .await
            .map_err(|e| scrub(&format!("{endpoint}: {e}"), creds))?;
        let body: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
        let text = |key: &str| body.get(key).and_then(Value::as_str);
        let access_token = text("access_token").filter(|t| usable(t));
        let (true, Some(access_token)) = ((200..300).contains(&resp.status), access_token) else {
            let mut reason = format!("{endpoint} answered {}", resp.status);
            match text("error") {
                Some(error) => reason.push_str(&format!(": {}", clean(error, creds))),
                None if body.is_null() => reason.push_str(" without a JSON body"),
                None => reason.push_str(" without a usable access_token"),
            }
            if let Some(description) = text("error_description") {
                reason.push_str(&format!(" ({})", clean(description, creds)));
            }
            return Err(reason);
        };
        if let Some(kind) = text("token_type") {
            if !kind.eq_ignore_ascii_case("bearer") {
                return Err(format!(
                    "{endpoint} issued a '{}' token; only bearer tokens are supported",
                    clean(kind, creds)
                ));
            }
        }
        Ok(Token {
            access_token: access_token.to_owned(),
            keep: keep_for(expires_in(&body), self.margin),
        })
    }
}

/// The request body: grant type, scopes space-joined, audience (Auth0 and others).
fn token_form(creds: &ClientCredentials<'_>) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "client_credentials");
    if !creds.scopes.is_empty() {
        form.append_pair("scope", &creds.scopes.join(" "));
    }
    if let Some(audience) = creds.audience {
        form.append_pair("audience", audience);
    }
    form.finish()
}

/// RFC 6749 §2.3.1: id and secret are form-encoded, then joined for HTTP basic.
fn basic_auth(creds: &ClientCredentials<'_>) -> String {
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let pair = format!("{}:{}", enc(creds.client_id), enc(creds.client_secret));
    format!("Basic {}", STANDARD.encode(pair))
}

/// A token that can go in `authorization: Bearer ...` as is.
fn usable(token: &str) -> bool {
    !token.is_empty()
        && token.is_ascii()
        && !token.contains(char::is_whitespace)
        && HeaderValue::from_str(token).is_ok()
}

/// `expires_in` as a number or a numeric string (both are seen in the wild).
fn expires_in(body: &Value) -> u64 {
    match body.get("expires_in") {
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
            .unwrap_or(0),
        Some(Value::String(s)) => s.trim().parse().unwrap_or(DEFAULT_LIFETIME_SECS),
        _ => DEFAULT_LIFETIME_SECS,
    }
}

fn keep_for(expires_in: u64, margin: Duration) -> Duration {
    let life = Duration::from_secs(expires_in.min(MAX_LIFETIME_SECS));
    if life > margin * 2 {
        life - margin
    } else {
        life / 2
    }
}

/// Endpoint text for a message: secret removed first, then control characters, then cut.
fn clean(text: &str, creds: &ClientCredentials<'_>) -> String {
    let scrubbed = scrub(text, creds);
    let printable: String = scrubbed.chars().filter(|c| !c.is_control()).collect();
    match printable.char_indices().nth(MAX_DESCRIPTION) {
        Some((cut, _)) => format!("{}...", &printable[..cut]),
        None => printable,
    }
}

/// Removes the client secret, in every form the request carried it (and the derived
/// forms the broker's [`Redactor`] knows), from `text`.
fn scrub(text: &str, creds: &ClientCredentials<'_>) -> String {
    if creds.client_secret.is_empty() {
        return text.to_owned();
    }
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let values = [
        creds.client_secret.to_owned(),
        format!("{}:{}", creds.client_id, creds.client_secret),
        format!("{}:{}", enc(creds.client_id), enc(creds.client_secret)),
        basic_auth(creds),
    ];
    match Redactor::for_secrets(values) {
        Ok(redactor) => redactor.text(text).into_owned(),
        Err(_) => REDACTED.to_owned(),
    }
}

#[cfg(test)]
#[path = "oauth_tests.rs"]
mod tests;
