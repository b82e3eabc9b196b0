//! The host side of an agent's `fetch`: grant and address checks, manual redirects, limits.

use std::error::Error as _;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::header::{HeaderMap, HeaderName, LOCATION};
use reqwest::Method;
use url::{Host, Url};

use super::addr::{AddressClass, AddressPolicy};
use super::budget::{self, OverBudget};
use super::request::{self, Prepared};
use super::resolve::{fixed_addrs, permitted, Lookup, PolicyResolver, Refused, SystemLookup};

/// One outbound request as the agent asked for it (plus whatever the broker injected).
#[derive(Debug, Clone)]
pub struct FetchRequest {
    pub method: String,
    pub url: Url,
    pub headers: Vec<(String, String)>,
    pub body: Option<Bytes>,
    /// Extra header names (e.g. a connection's `x-api-key`) dropped, like `authorization`,
    /// `cookie` and `proxy-authorization`, when a redirect leaves the origin.
    pub sensitive_headers: Vec<String>,
    /// What a redirect answer does (the fetch standard's `redirect` option).
    pub redirect: Redirect,
}

/// The fetch standard's redirect modes. `Manual` hands the 3xx answer (with its
/// `Location`) to the agent, as Deno and Workers do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Redirect {
    #[default]
    Follow,
    Error,
    Manual,
}

#[derive(Debug, Clone)]
pub struct FetchResponse {
    pub status: u16,
    /// The canonical reason phrase of `status` (HTTP/1 reason phrases are not kept).
    pub status_text: String,
    pub headers: Vec<(String, String)>,
    /// The final URL, after redirects, without fragment.
    pub url: String,
    pub body: Bytes,
    pub redirected: bool,
}

#[derive(Debug, Clone)]
pub struct FetchLimits {
    /// Cap on the response body, and on the request body.
    pub max_response_bytes: u64,
    /// Covers every hop: DNS, connect, headers and body.
    pub timeout: Duration,
    pub max_redirects: u8,
}

impl Default for FetchLimits {
    fn default() -> Self {
        Self {
            max_response_bytes: 10 * 1024 * 1024,
            timeout: Duration::from_secs(30),
            max_redirects: 5,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("fetch to host {0} is not permitted")]
    HostNotAllowed(String),
    /// The message leaves out `ip`, so agents cannot map internal DNS through it.
    #[error("address of {host} is refused ({class})")]
    AddressRefused {
        host: String,
        ip: IpAddr,
        class: AddressClass,
    },
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("body exceeds the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("fetch timed out")]
    Timeout,
    /// Never carries request headers, query strings or bodies.
    #[error("network error: {0}")]
    Network(String),
    /// A refusal of the credential broker (connection missing, host not covered, ...),
    /// with its own code.
    #[error("{message}")]
    Connection { code: &'static str, message: String },
    /// The run's host-side memory budget is spent (see [`super::budget`]).
    #[error(transparent)]
    OverBudget(#[from] OverBudget),
}

impl FetchError {
    pub fn code(&self) -> &'static str {
        match self {
            FetchError::HostNotAllowed(_) => "fetch_host_not_allowed",
            FetchError::AddressRefused { .. } => "fetch_address_refused",
            FetchError::BadRequest(_) => "fetch_bad_request",
            FetchError::TooLarge { .. } => "fetch_limit",
            FetchError::Timeout => "fetch_timeout",
            FetchError::Network(_) => "fetch_network",
            FetchError::Connection { code, .. } => code,
            FetchError::OverBudget(_) => "memory_limit",
        }
    }
}

impl From<Refused> for FetchError {
    fn from(r: Refused) -> Self {
        FetchError::AddressRefused {
            host: r.host,
            ip: r.ip,
            class: r.class,
        }
    }
}

/// Performs agents' HTTP requests. Cheap to share (`Arc`); build one per process.
#[derive(Clone)]
pub struct HttpFetcher {
    client: reqwest::Client,
    policy: Arc<AddressPolicy>,
}

impl HttpFetcher {
    pub fn new(policy: AddressPolicy) -> Result<Self, FetchError> {
        Self::with_lookup(policy, Arc::new(SystemLookup))
    }

    /// Like `new` with another name lookup (tests map names to loopback with it).
    pub fn with_lookup(policy: AddressPolicy, lookup: Arc<dyn Lookup>) -> Result<Self, FetchError> {
        let policy = Arc::new(policy);
        // Redirects are followed here, each hop re-checked.
        let client = checked_client_builder(policy.clone(), lookup)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| FetchError::Network(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { client, policy })
    }

    /// Performs `req`, following redirects.
    ///
    /// `allow_host` is called for the first URL and for every redirect hop (the caller checks
    /// the agent's grant). It gets the host as a lowercase ASCII (punycode) domain as
    /// written in the URL, trailing dot kept, or an IP address without brackets.
    pub async fn fetch(
        &self,
        req: FetchRequest,
        limits: &FetchLimits,
        allow_host: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<FetchResponse, FetchError> {
        let prepared = request::prepare(req, limits.max_response_bytes)?;
        match tokio::time::timeout(limits.timeout, self.follow(prepared, limits, allow_host)).await
        {
            Ok(result) => result,
            Err(_) => Err(FetchError::Timeout),
        }
    }

    async fn follow(
        &self,
        mut req: Prepared,
        limits: &FetchLimits,
        allow_host: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<FetchResponse, FetchError> {
        let mut hops: u8 = 0;
        loop {
            let host = self.check_target(&req.url, allow_host)?;
            let mut builder = self
                .client
                .request(req.method.clone(), req.url.clone())
                .headers(req.headers.clone());
            if let Some(body) = &req.body {
                builder = builder.body(body.clone());
            }
            let resp = builder.send().await.map_err(|e| map_error(e, &host))?;
            let target = match req.redirect {
                Redirect::Manual => None,
                _ => redirect_target(&resp, &req.url)?,
            };
            if let Some(next) = target {
                if req.redirect == Redirect::Error {
                    return Err(FetchError::Network(format!(
                        "the answer is a redirect ({}) and the request's redirect mode is \
                         'error'; nothing was followed",
                        resp.status().as_u16()
                    )));
                }
                if hops >= limits.max_redirects {
                    return Err(FetchError::Network(format!(
                        "too many redirects (limit {})",
                        limits.max_redirects
                    )));
                }
                hops += 1;
                request::apply_redirect(&mut req, resp.status().as_u16(), next);
                continue;
            }
            return read_response(resp, &req, &host, hops > 0, limits.max_response_bytes).await;
        }
    }

    /// Grant check, then the address check for hosts that skip the resolver (IP literals)
    /// or must not reach it (localhost). Nothing is sent when this fails.
    fn check_target(
        &self,
        url: &Url,
        allow_host: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<String, FetchError> {
        let host = match url.host() {
            Some(Host::Domain(d)) => d.to_owned(),
            Some(Host::Ipv4(ip)) => ip.to_string(),
            Some(Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(FetchError::BadRequest("URL has no host".into())),
        };
        if !allow_host(&host) {
            return Err(FetchError::HostNotAllowed(host));
        }
        if let Some(addrs) = fixed_addrs(&host) {
            permitted(&host, addrs, &self.policy)?;
        }
        Ok(host)
    }
}

/// A reqwest client builder whose connections obey `policy`: names resolve only to
/// permitted addresses, redirects are not followed, no proxy, no retries. Shared with the
/// LLM client. IP-literal hosts skip the resolver: check them with [`fixed_addrs`] and
/// [`permitted`] before sending.
pub fn checked_client_builder(
    policy: Arc<AddressPolicy>,
    lookup: Arc<dyn Lookup>,
) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        // A proxy would resolve the target itself, past the address policy.
        .no_proxy()
        .dns_resolver(Arc::new(PolicyResolver::new(policy, lookup)))
        .retry(reqwest::retry::never())
        .user_agent(concat!("atoll/", env!("CARGO_PKG_VERSION")))
}

/// The next URL when `resp` is a redirect with a Location; `None` when it is the answer.
fn redirect_target(resp: &reqwest::Response, current: &Url) -> Result<Option<Url>, FetchError> {
    if !matches!(resp.status().as_u16(), 301 | 302 | 303 | 307 | 308) {
        return Ok(None);
    }
    // A redirect without Location is handed to the agent as is, as browsers do.
    let Some(location) = resp.headers().get(LOCATION) else {
        return Ok(None);
    };
    let bad = |why: &str| FetchError::Network(format!("redirect {why}"));
    let location =
        std::str::from_utf8(location.as_bytes()).map_err(|_| bad("Location is not UTF-8"))?;
    let mut next = current
        .join(location)
        .map_err(|_| bad("to an invalid URL"))?;
    if !matches!(next.scheme(), "http" | "https") {
        return Err(bad("to a non-http(s) URL"));
    }
    if !next.username().is_empty() || next.password().is_some() {
        return Err(bad("to a URL with credentials"));
    }
    next.set_fragment(None);
    Ok(Some(next))
}

async fn read_response(
    mut resp: reqwest::Response,
    req: &Prepared,
    host: &str,
    redirected: bool,
    limit: u64,
) -> Result<FetchResponse, FetchError> {
    let status = resp.status();
    let headers = header_pairs(resp.headers());
    // An announced length over the cap fails before any of the body is read.
    let announced = resp.content_length().unwrap_or(0);
    if req.method != Method::HEAD && announced > limit {
        return Err(FetchError::TooLarge { limit });
    }
    // The body is held for the run being served: its budget pays for every byte read.
    let mut held = budget::current()
        .map(|memory| memory.reserve(0))
        .transpose()?;
    let mut body = BytesMut::with_capacity(announced.min(1024 * 1024) as usize);
    while let Some(chunk) = resp.chunk().await.map_err(|e| map_error(e, host))? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(FetchError::TooLarge { limit });
        }
        if let Some(held) = held.as_mut() {
            held.grow(chunk.len() as u64)?;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(FetchResponse {
        status: status.as_u16(),
        status_text: status.canonical_reason().unwrap_or("").to_owned(),
        headers,
        url: req.url.to_string(),
        body: body.freeze(),
        redirected,
    })
}

fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value): (&HeaderName, _)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_owned(), value)
        })
        .collect()
}

/// Turns a reqwest error into ours: a refusal from our resolver stays a refusal; the rest
/// becomes a message built from the error chain, without the URL (it may carry secrets in
/// its query) and without headers (reqwest never puts them in errors).
pub(crate) fn map_error(err: reqwest::Error, host: &str) -> FetchError {
    let mut source = err.source();
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<Refused>() {
            return refused.clone().into();
        }
        source = e.source();
    }
    if err.is_timeout() {
        return FetchError::Timeout;
    }
    let err = err.without_url();
    let mut message = format!("{host}: {err}");
    let mut source = err.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !message.ends_with(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = e.source();
    }
    FetchError::Network(message)
}

#[cfg(test)]
#[path = "fetch_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "fetch_limit_tests.rs"]
mod limit_tests;
