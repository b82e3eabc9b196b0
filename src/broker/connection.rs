//! Connections: a named credential, the hosts it may be sent to, and how it is applied.
//!
//! The secret is JSON (stored sealed by the caller, see `secrets`); [`describe`] is the
//! only view of it that leaves the host, and [`inject`] the only place it meets a request.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use reqwest::header::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use url::Url;

use super::destination::{self, Refusal};
use super::fetch::{FetchError, FetchRequest, HttpFetcher};
use super::oauth::{ClientCredentials, TokenCache};
use super::redact::{Redactor, RedactorError};
use super::request::REFUSED_HEADERS;
use super::secrets::SecretError;

/// Longest accepted field (a large JWT fits).
const MAX_FIELD: usize = 16 * 1024;
const MAX_SCOPES: usize = 64;

/// The credential. `Debug` shows the kind and fingerprint only.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ConnectionSecret {
    Bearer {
        token: String,
    },
    Header {
        name: String,
        value: String,
    },
    Basic {
        username: String,
        password: String,
    },
    Query {
        param: String,
        value: String,
    },
    Oauth2ClientCredentials {
        token_url: String,
        client_id: String,
        client_secret: String,
        #[serde(default)]
        scopes: Vec<String>,
        #[serde(default)]
        audience: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub name: String,
    /// Host patterns as in `permissions.fetch` (exact names or `*.domain`), each with an
    /// optional `:port` (see [`destination`]).
    pub hosts: Vec<String>,
    /// The credential may go over plain `http` too (a local model, a test server).
    pub allow_http: bool,
    pub secret: ConnectionSecret,
}

impl Connection {
    /// The one check before this credential goes anywhere: scheme, host and port of
    /// `url` against the connection (see [`destination::check`]).
    pub fn authorize(&self, url: &Url) -> Result<(), BrokerError> {
        destination::check(&self.hosts, self.allow_http, url).map_err(|why| {
            BrokerError::Destination {
                connection: self.name.clone(),
                why,
            }
        })
    }

    /// The scrubber for one use of this credential: the secret's values and what
    /// injection added (`injected`: header values, an OAuth2 access token).
    pub fn redactor(&self, injected: &[String]) -> Result<Redactor, RedactorError> {
        let mut values = self.secret.secret_values();
        values.extend(injected.iter().cloned());
        Redactor::for_secrets(values)
    }
}

/// Failures of the broker; `code()` is what the run's error carries. Messages never carry
/// secret material.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("connection '{connection}' {why}")]
    Destination { connection: String, why: Refusal },
    #[error("connection '{connection}' sets {what}, which the request already sets")]
    HeaderConflict { connection: String, what: String },
    #[error("OAuth2 token request failed: {0}")]
    OauthTokenFailed(String),
    #[error("{0}")]
    SecretUnavailable(String),
    #[error(transparent)]
    Fetch(#[from] FetchError),
}

impl BrokerError {
    pub fn code(&self) -> &'static str {
        match self {
            BrokerError::Destination { why, .. } => match why {
                Refusal::Host(_) => "connection_host_not_allowed",
                Refusal::Scheme(_) => "connection_scheme_not_allowed",
                Refusal::Port { .. } => "connection_port_not_allowed",
            },
            BrokerError::HeaderConflict { .. } => "connection_header_conflict",
            BrokerError::OauthTokenFailed(_) => "oauth_token_failed",
            BrokerError::SecretUnavailable(_) => "secret_unavailable",
            BrokerError::Fetch(e) => e.code(),
        }
    }
}

impl From<SecretError> for BrokerError {
    fn from(e: SecretError) -> Self {
        BrokerError::SecretUnavailable(e.to_string())
    }
}

impl std::fmt::Debug for ConnectionSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(self.kind())
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

impl ConnectionSecret {
    /// The `type` tag.
    pub fn kind(&self) -> &'static str {
        match self {
            ConnectionSecret::Bearer { .. } => "bearer",
            ConnectionSecret::Header { .. } => "header",
            ConnectionSecret::Basic { .. } => "basic",
            ConnectionSecret::Query { .. } => "query",
            ConnectionSecret::Oauth2ClientCredentials { .. } => "oauth2_client_credentials",
        }
    }

    /// Every string field, secret or not, in a fixed order.
    fn fields(&self) -> Vec<(&'static str, &str)> {
        match self {
            ConnectionSecret::Bearer { token } => vec![("token", token)],
            ConnectionSecret::Header { name, value } => vec![("name", name), ("value", value)],
            ConnectionSecret::Basic { username, password } => {
                vec![("username", username), ("password", password)]
            }
            ConnectionSecret::Query { param, value } => vec![("param", param), ("value", value)],
            ConnectionSecret::Oauth2ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scopes,
                audience,
            } => {
                let mut fields = vec![
                    ("token_url", token_url.as_str()),
                    ("client_id", client_id),
                    ("client_secret", client_secret),
                    ("audience", audience.as_deref().unwrap_or("")),
                ];
                fields.extend(scopes.iter().map(|s| ("scopes", s.as_str())));
                fields
            }
        }
    }

    /// First 12 hex characters of SHA-256 over the kind and every field (length-prefixed):
    /// shows that a secret changed without revealing it.
    pub fn fingerprint(&self) -> String {
        let mut hash = Sha256::new();
        hash.update(b"atoll.connection.v1\0");
        hash.update(self.kind().as_bytes());
        for (_, value) in self.fields() {
            hash.update((value.len() as u64).to_be_bytes());
            hash.update(value.as_bytes());
        }
        hex::encode(&hash.finalize()[..6])
    }

    /// Checks what a PUT stores. Messages name fields, never their values.
    pub fn validate(&self) -> Result<(), String> {
        for (field, value) in self.fields() {
            if value.len() > MAX_FIELD {
                return Err(format!("{field} is longer than {MAX_FIELD} bytes"));
            }
            if value.chars().any(char::is_control) {
                return Err(format!(
                    "{field} contains a control character (CR, LF, tab...)"
                ));
            }
        }
        match self {
            ConnectionSecret::Bearer { token } => {
                required("token", token)?;
                if token.contains(char::is_whitespace) {
                    return Err("token contains whitespace".into());
                }
                header_value("token", token)
            }
            ConnectionSecret::Header { name, value } => {
                let parsed = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| "name is not a valid HTTP header name".to_owned())?;
                if REFUSED_HEADERS.contains(&parsed.as_str()) {
                    return Err(format!("header {parsed} is set by the runtime"));
                }
                required("value", value)?;
                header_value("value", value)
            }
            ConnectionSecret::Basic { username, password } => {
                if username.contains(':') {
                    return Err("username cannot contain ':' (RFC 7617)".into());
                }
                if username.is_empty() && password.is_empty() {
                    return Err("username and password are both empty".into());
                }
                Ok(())
            }
            ConnectionSecret::Query { param, value } => {
                required("param", param)?;
                required("value", value)
            }
            ConnectionSecret::Oauth2ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scopes,
                audience,
            } => {
                let url = Url::parse(token_url).map_err(|e| format!("token_url: {e}"))?;
                if !matches!(url.scheme(), "https" | "http") || url.host().is_none() {
                    return Err("token_url must be an http(s) URL with a host".into());
                }
                if !url.username().is_empty() || url.password().is_some() {
                    return Err("token_url must not include credentials".into());
                }
                if url.fragment().is_some() {
                    return Err("token_url must not have a fragment".into());
                }
                required("client_id", client_id)?;
                required("client_secret", client_secret)?;
                if scopes.len() > MAX_SCOPES {
                    return Err(format!("at most {MAX_SCOPES} scopes"));
                }
                // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
                let scope_ok = |s: &String| {
                    !s.is_empty()
                        && s.bytes()
                            .all(|b| b > 0x20 && b < 0x7f && b != b'"' && b != b'\\')
                };
                if !scopes.iter().all(scope_ok) {
                    return Err(
                        "scopes are non-empty and without spaces, quotes or backslashes".into(),
                    );
                }
                match audience {
                    Some(a) => required("audience", a),
                    None => Ok(()),
                }
            }
        }
    }

    /// Every value that authenticates, for the redactor: the secret fields, and the
    /// pairs that basic auth joins (a basic username counts: some APIs take the key as
    /// the username).
    pub fn secret_values(&self) -> Vec<String> {
        match self {
            ConnectionSecret::Bearer { token } => vec![token.clone()],
            ConnectionSecret::Header { value, .. } | ConnectionSecret::Query { value, .. } => {
                vec![value.clone()]
            }
            ConnectionSecret::Basic { username, password } => vec![
                username.clone(),
                password.clone(),
                format!("{username}:{password}"),
            ],
            ConnectionSecret::Oauth2ClientCredentials {
                client_id,
                client_secret,
                ..
            } => {
                let enc = |s: &str| {
                    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
                };
                vec![
                    client_secret.clone(),
                    format!("{client_id}:{client_secret}"),
                    format!("{}:{}", enc(client_id), enc(client_secret)),
                ]
            }
        }
    }

    /// The header this secret sets, lowercase; `None` for a query parameter.
    fn header_name(&self) -> Option<String> {
        match self {
            ConnectionSecret::Header { name, .. } => Some(name.to_ascii_lowercase()),
            ConnectionSecret::Query { .. } => None,
            _ => Some("authorization".into()),
        }
    }
}

fn required(field: &str, value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!("{field} is required"));
    }
    Ok(())
}

/// Sent exactly as stored: visible ASCII, nothing the fetcher would trim.
fn header_value(field: &str, value: &str) -> Result<(), String> {
    if value.trim() != value {
        return Err(format!("{field} has leading or trailing whitespace"));
    }
    if !value.is_ascii() || HeaderValue::from_str(value).is_err() {
        return Err(format!("{field} must be printable ASCII to go in a header"));
    }
    Ok(())
}

/// Public view for GET: name, type, hosts, fingerprint and the fields that identify rather
/// than authenticate — header name, query parameter, OAuth2 client id, scopes, audience and
/// token URL (without its query). A basic username is shown only when there is a password:
/// some APIs (Stripe) take the secret key as the username with an empty password.
pub fn describe(c: &Connection) -> Value {
    let mut out = json!({
        "name": c.name,
        "type": c.secret.kind(),
        "hosts": c.hosts,
        "fingerprint": c.secret.fingerprint(),
    });
    if c.allow_http {
        out["allow_http"] = json!(true);
    }
    match &c.secret {
        ConnectionSecret::Bearer { .. } => {}
        ConnectionSecret::Header { name, .. } => out["header"] = json!(name),
        ConnectionSecret::Basic { username, password } => {
            if !password.is_empty() {
                out["username"] = json!(username);
            }
        }
        ConnectionSecret::Query { param, .. } => out["param"] = json!(param),
        ConnectionSecret::Oauth2ClientCredentials {
            token_url,
            client_id,
            scopes,
            audience,
            ..
        } => {
            let shown = Url::parse(token_url).map(|mut u| {
                u.set_query(None);
                u.set_fragment(None);
                u.to_string()
            });
            out["token_url"] = json!(shown.ok());
            out["client_id"] = json!(client_id);
            out["scopes"] = json!(scopes);
            out["audience"] = json!(audience);
        }
    }
    out
}

/// Applies a credential to a request: adds the header / basic auth / query param (for
/// OAuth2, the bearer token from the cache), and records the header names it added in
/// `req.sensitive_headers`. Refuses (before anything is sent) what [`Connection::authorize`]
/// refuses, and a request that already sets the header (or query parameter) the connection
/// sets. Returns the credential values it added (header value, OAuth2 access token), which
/// the caller's redactor must cover.
pub async fn inject(
    c: &Connection,
    req: &mut FetchRequest,
    tokens: &TokenCache,
    fetcher: &HttpFetcher,
) -> Result<Vec<String>, BrokerError> {
    if req.url.host().is_none() {
        return Err(FetchError::BadRequest("URL has no host".into()).into());
    }
    c.authorize(&req.url)?;
    c.secret.validate().map_err(|why| {
        BrokerError::SecretUnavailable(format!("connection '{}' is invalid: {why}", c.name))
    })?;
    let conflict = |what: String| BrokerError::HeaderConflict {
        connection: c.name.clone(),
        what,
    };
    let header = c.secret.header_name();
    if let Some(name) = &header {
        if req
            .headers
            .iter()
            .any(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        {
            return Err(conflict(format!("header {name}")));
        }
    }
    let mut added = Vec::new();
    let value = match &c.secret {
        ConnectionSecret::Bearer { token } => format!("Bearer {token}"),
        ConnectionSecret::Header { value, .. } => value.clone(),
        ConnectionSecret::Basic { username, password } => {
            format!(
                "Basic {}",
                STANDARD.encode(format!("{username}:{password}"))
            )
        }
        ConnectionSecret::Query { param, value } => {
            if req.url.query_pairs().any(|(k, _)| k == param.as_str()) {
                return Err(conflict(format!("query parameter {param}")));
            }
            req.url.query_pairs_mut().append_pair(param, value);
            return Ok(vec![value.clone()]);
        }
        ConnectionSecret::Oauth2ClientCredentials {
            token_url,
            client_id,
            client_secret,
            scopes,
            audience,
        } => {
            // The client secret goes to the token endpoint: the same check applies.
            let endpoint = Url::parse(token_url).map_err(|_| {
                BrokerError::SecretUnavailable(format!(
                    "connection '{}' has an invalid token_url",
                    c.name
                ))
            })?;
            c.authorize(&endpoint)?;
            let credentials = ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scopes,
                audience: audience.as_deref(),
            };
            let token = tokens.token(&credentials, fetcher).await?;
            added.push(token.clone());
            format!("Bearer {token}")
        }
    };
    added.push(value.clone());
    let Some(name) = header else {
        return Ok(added);
    };
    if !req
        .sensitive_headers
        .iter()
        .any(|h| h.eq_ignore_ascii_case(&name))
    {
        req.sensitive_headers.push(name.clone());
    }
    req.headers.push((name, value));
    Ok(added)
}

#[cfg(test)]
#[path = "connection_tests.rs"]
mod tests;
