//! The HTTP side of the client: one `reqwest` client with the key, JSON calls that turn
//! non-2xx answers into [`CliError`]s, and retries where they are safe (GETs, and POSTs,
//! which carry an `Idempotency-Key` so that a retried one is answered, not repeated).

use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::{header, Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;
use tracing::debug;

use super::error::{CliError, CliResult};
use super::profile::Connection;

/// Everything but unreserved characters is escaped in a path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Attempts for one call when the server cannot be reached or answers 502/503/504.
const ATTEMPTS: u32 = 3;

/// A path segment, escaped.
pub fn seg(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

pub struct Api {
    pub base: String,
    key: String,
    pub app_id: Option<String>,
    http: reqwest::Client,
}

/// A 2xx answer.
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl Api {
    pub fn new(conn: Connection) -> CliResult<Api> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // Longer than `?wait=60` and the event stream's 15 s keep-alives.
            .read_timeout(Duration::from_secs(90))
            .user_agent(concat!("atoll-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CliError::unavailable(format!("cannot build an HTTP client: {e}")))?;
        Ok(Api {
            base: conn.url,
            key: conn.api_key,
            app_id: conn.app_id,
            http,
        })
    }

    /// A request to `path` (starting with `/`) with the key.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key)
    }

    /// `?app_id=` for reads made with an org key (`--app` or the profile's).
    pub fn app_query(&self) -> Vec<(&'static str, String)> {
        self.app_id
            .iter()
            .map(|id| ("app_id", id.clone()))
            .collect()
    }

    /// Sends, retrying connection failures and 502/503/504; the response whatever its
    /// status. `build` makes the request afresh for each attempt.
    pub async fn send(&self, build: impl Fn() -> RequestBuilder) -> CliResult<Response> {
        let mut attempt = 1;
        loop {
            let result = build().send().await;
            let retry = match &result {
                Ok(r) => matches!(r.status().as_u16(), 502..=504),
                Err(e) => e.is_connect() || e.is_timeout() || e.is_request(),
            };
            if !retry || attempt >= ATTEMPTS {
                return result.map_err(|e| self.unreachable(&e));
            }
            debug!(attempt, "retrying a call");
            tokio::time::sleep(Duration::from_millis(300 * u64::from(attempt))).await;
            attempt += 1;
        }
    }

    /// The error for a request that got no answer.
    pub fn unreachable(&self, e: &reqwest::Error) -> CliError {
        let what = if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "could not connect"
        } else {
            "failed"
        };
        CliError::unavailable(format!(
            "the request to {} {what}: {}",
            self.base,
            error_chain(e)
        ))
        .hint("is the server running? `atoll dev` starts one; --url, ATOLL_URL or `atoll login` say where it is")
    }

    /// One JSON call; a non-2xx answer is an error carrying its problem document.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> CliResult<Answer> {
        // One key for every attempt: a retried POST is answered with what the first did.
        let idempotency = (method == Method::POST).then(|| uuid::Uuid::new_v4().to_string());
        let response = self
            .send(|| {
                let mut req = self.request(method.clone(), path).query(query);
                if let Some(key) = &idempotency {
                    req = req.header("idempotency-key", key);
                }
                if let Some(body) = body {
                    req = req
                        .header(header::CONTENT_TYPE, "application/json")
                        .body(body.to_string());
                }
                req
            })
            .await?;
        self.answer(response).await
    }

    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> CliResult<Answer> {
        self.call(Method::GET, path, query, None).await
    }

    /// Reads a response: its JSON if 2xx, else the error it means.
    pub async fn answer(&self, response: Response) -> CliResult<Answer> {
        let status = response.status();
        let request_id = response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await.map_err(|e| self.unreachable(&e))?;
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status.is_success() {
            Ok(Answer { status, body })
        } else {
            Err(CliError::from_answer(status, body, request_id))
        }
    }
}

/// An error and its causes on one line (reqwest's own message hides the cause).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn segments_are_escaped() {
        assert_eq!(super::seg("run_1"), "run_1");
        assert_eq!(super::seg("a/b c"), "a%2Fb%20c");
        assert_eq!(super::seg("1.0.1-dev.2"), "1.0.1-dev.2");
    }
}
