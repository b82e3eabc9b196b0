//! Checking an agent's request before it is sent, and rewriting it for a redirect hop.

use bytes::Bytes;
use reqwest::header::{
    HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION,
};
use reqwest::Method;
use url::Url;

use super::fetch::{FetchError, FetchRequest};

/// Headers that belong to the connection, which reqwest manages itself (connections may
/// not set them either).
pub(crate) const REFUSED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "expect",
];

/// Headers that describe a body; dropped with it when a redirect turns the request into GET.
const BODY_HEADERS: &[&str] = &[
    "content-type",
    "content-encoding",
    "content-language",
    "content-location",
];

/// A request that passed every check that needs no network.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Option<Bytes>,
    /// Dropped when a redirect leaves the origin.
    pub sensitive: Vec<HeaderName>,
    pub redirect: super::fetch::Redirect,
}

pub fn prepare(req: FetchRequest, max_body: u64) -> Result<Prepared, FetchError> {
    let bad = |m: String| FetchError::BadRequest(m);
    let mut url = req.url;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(format!(
            "scheme {:?} is not http or https",
            url.scheme()
        )));
    }
    // As in browsers' fetch: credentials belong in headers (or a connection), not URLs.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("URL must not include credentials".into()));
    }
    url.set_fragment(None);
    let method = parse_method(&req.method)?;
    if req.body.is_some() && (method == Method::GET || method == Method::HEAD) {
        return Err(bad(format!("a {method} request cannot have a body")));
    }
    if let Some(body) = &req.body {
        if body.len() as u64 > max_body {
            return Err(FetchError::TooLarge { limit: max_body });
        }
    }
    let mut headers = HeaderMap::new();
    for (name, value) in &req.headers {
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| bad(format!("invalid header name {name:?}")))?;
        if REFUSED_HEADERS.contains(&name.as_str()) {
            return Err(bad(format!("header {name} is set by the runtime")));
        }
        // Name only: the value may be a secret.
        let value = HeaderValue::from_str(value.trim())
            .map_err(|_| bad(format!("invalid value for header {name}")))?;
        headers.append(name, value);
    }
    let mut sensitive = vec![AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION];
    for name in &req.sensitive_headers {
        sensitive.push(
            HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| bad(format!("invalid header name {name:?}")))?,
        );
    }
    Ok(Prepared {
        method,
        url,
        headers,
        body: req.body,
        sensitive,
        redirect: req.redirect,
    })
}

/// Parses a method as fetch does: the six common ones are uppercased, others kept as
/// written; CONNECT, TRACE and TRACK are refused.
fn parse_method(raw: &str) -> Result<Method, FetchError> {
    const NORMALIZED: [&str; 6] = ["DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"];
    const FORBIDDEN: [&str; 3] = ["CONNECT", "TRACE", "TRACK"];
    if FORBIDDEN.iter().any(|m| m.eq_ignore_ascii_case(raw)) {
        return Err(FetchError::BadRequest(format!(
            "method {raw} is not allowed"
        )));
    }
    let raw = match NORMALIZED.iter().find(|m| m.eq_ignore_ascii_case(raw)) {
        Some(m) => m,
        None => raw,
    };
    Method::from_bytes(raw.as_bytes())
        .map_err(|_| FetchError::BadRequest(format!("invalid method {raw:?}")))
}

/// Rewrites `req` to follow a redirect with `status` to `next` (fetch's rules).
pub fn apply_redirect(req: &mut Prepared, status: u16, next: Url) {
    let to_get = (matches!(status, 301 | 302) && req.method == Method::POST)
        || (status == 303 && req.method != Method::GET && req.method != Method::HEAD);
    if to_get {
        req.method = Method::GET;
        req.body = None;
        for name in BODY_HEADERS {
            req.headers.remove(*name);
        }
    }
    // Origin, not just host: a port or scheme change is another party too.
    if next.origin() != req.url.origin() {
        for name in &req.sensitive {
            req.headers.remove(name);
        }
    }
    req.url = next;
}
