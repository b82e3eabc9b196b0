//! Sending a chat request with retries, and turning provider error answers into errors.
//!
//! A request is retried on 429, on 5xx and on connection failures, all of which happen
//! before any byte of the stream is consumed: once the answer streams, it is never retried.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::time::Instant;
use url::Url;

use super::{LLM_BAD_RESPONSE, LLM_RATE_LIMITED, LLM_REFUSED, LLM_UNAVAILABLE};
use crate::broker::fetch::map_error;
use crate::broker::FetchError;
use crate::host::HostError;

/// Exponential backoff between attempts: `base * 2^n`, at most `cap`, then scaled by a
/// random factor in [0.5, 1) so that many runs do not retry in step.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(20),
        }
    }
}

impl Backoff {
    /// The wait before retry number `retry` (0 for the first retry).
    pub fn delay(&self, retry: u32) -> Duration {
        let full = self
            .base
            .saturating_mul(1u32 << retry.min(20))
            .min(self.cap);
        full.mul_f64(0.5 + 0.5 * random_unit())
    }
}

/// A number in [0, 1) that differs between calls; good enough for jitter, not for secrets.
fn random_unit() -> f64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// How long the provider asks us to wait: `retry-after-ms` (OpenAI), else `retry-after`
/// in seconds or as an HTTP date (IMF-fixdate). `None` when absent or unreadable.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        if ms.is_finite() && ms >= 0.0 {
            return Some(Duration::from_secs_f64(ms.min(86_400_000.0) / 1000.0));
        }
    }
    let value = text("retry-after")?;
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs.min(86_400)));
    }
    let at = parse_http_date(value)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form RFC 9110 requires
/// senders to use.
pub fn parse_http_date(text: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = text.split_ascii_whitespace().collect();
    let [_weekday, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| m == month)? as i64 + 1;
    let day: i64 = day.parse().ok()?;
    let year: i64 = year.parse().ok()?;
    let mut hms = time.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    if hms.next().is_some() || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    // Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + m * 60 + s;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// One request to send, with what its retries need.
pub(crate) struct Attempt<'a> {
    pub client: &'a reqwest::Client,
    pub url: &'a Url,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// For error messages (the URL is left out: it may carry secrets).
    pub host: &'a str,
    pub max_retries: u32,
    pub backoff: Backoff,
    pub deadline: Instant,
}

impl Attempt<'_> {
    /// Sends until a 2xx answer (returned with its body unread), a final error, the last
    /// retry, or a wait that would pass the deadline (then the last error is returned).
    pub async fn send(&self) -> Result<reqwest::Response, HostError> {
        let mut retry = 0u32;
        loop {
            let sent = self
                .client
                .post(self.url.clone())
                .headers(self.headers.clone())
                .body(self.body.clone())
                .send()
                .await;
            let (error, asked_wait) = match sent {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => {
                    let status = response.status();
                    let wait = retry_after(response.headers(), SystemTime::now());
                    let error = status_error(status, response).await;
                    if !retryable(status) {
                        return Err(error);
                    }
                    (error, wait)
                }
                Err(e) => match map_error(e, self.host) {
                    refused @ FetchError::AddressRefused { .. } => {
                        return Err(HostError::new(LLM_UNAVAILABLE, refused.to_string()));
                    }
                    FetchError::Timeout => {
                        let message = format!("connecting to {} timed out", self.host);
                        (HostError::new(LLM_UNAVAILABLE, message), None)
                    }
                    other => (HostError::new(LLM_UNAVAILABLE, other.to_string()), None),
                },
            };
            let attempts = retry + 1;
            let give_up = |why: &str| {
                let message = format!("{} ({attempts} attempts{why})", error.message);
                HostError::new(error.code, message)
            };
            if retry >= self.max_retries {
                return Err(give_up(""));
            }
            let wait = asked_wait.unwrap_or_else(|| self.backoff.delay(retry));
            if Instant::now() + wait >= self.deadline {
                return Err(give_up("; the next would pass the deadline"));
            }
            tracing::debug!(
                host = self.host,
                code = error.code,
                retry,
                wait_ms = wait.as_millis() as u64,
                "llm: retrying"
            );
            tokio::time::sleep(wait).await;
            retry += 1;
        }
    }
}

fn retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// Cap on an error body read for its message.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Cap on the provider text quoted in a message.
const MAX_QUOTED_CHARS: usize = 500;

/// The error for a non-2xx answer, quoting the provider's message.
async fn status_error(status: StatusCode, mut response: reqwest::Response) -> HostError {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() >= MAX_ERROR_BODY {
            break;
        }
    }
    let said = provider_message(&body);
    let said = if said.is_empty() {
        String::new()
    } else {
        format!(": {said}")
    };
    let code = status.as_u16();
    if status == StatusCode::TOO_MANY_REQUESTS {
        HostError::new(LLM_RATE_LIMITED, format!("rate limited (429){said}"))
    } else if status.is_server_error() {
        HostError::new(LLM_UNAVAILABLE, format!("provider error ({code}){said}"))
    } else if status.is_client_error() {
        HostError::new(LLM_REFUSED, format!("request refused ({code}){said}"))
    } else {
        HostError::new(LLM_BAD_RESPONSE, format!("unexpected status {code}{said}"))
    }
}

/// The message in an error body: `error.message` (OpenAI, Anthropic), `error` as a
/// string (Ollama), `message` or `detail` (vLLM, FastAPI); else the body's text.
pub(crate) fn provider_message(body: &[u8]) -> String {
    let text = match serde_json::from_slice::<Value>(body) {
        Ok(json) => error_text(&json).unwrap_or_default(),
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    let clean: String = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_QUOTED_CHARS)
        .collect();
    clean
}

/// The message of a JSON error object, in any of the shapes providers use.
pub(crate) fn error_text(json: &Value) -> Option<String> {
    let candidates = [
        json.pointer("/error/message"),
        json.get("error"),
        json.get("message"),
        json.get("detail"),
    ];
    candidates.into_iter().flatten().find_map(|v| match v {
        Value::String(s) => Some(s.clone()),
        Value::Null | Value::Object(_) => None,
        other => Some(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().expect("header value"));
        }
        map
    }

    #[test]
    fn retry_after_in_seconds_millis_and_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37
        let got = |pairs| retry_after(&headers(pairs), now);
        assert_eq!(got(&[("retry-after", "7")]), Some(Duration::from_secs(7)));
        assert_eq!(
            got(&[("retry-after", "Sun, 06 Nov 1994 08:49:40 GMT")]),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            got(&[("retry-after", "Sat, 05 Nov 1994 08:49:40 GMT")]),
            Some(Duration::ZERO)
        );
        assert_eq!(
            got(&[("retry-after-ms", "250"), ("retry-after", "9")]),
            Some(Duration::from_millis(250))
        );
        assert_eq!(got(&[("retry-after", "soon")]), None);
        assert_eq!(got(&[]), None);
    }

    #[test]
    fn http_dates() {
        let at = |s| parse_http_date(s).map(|t| t.duration_since(UNIX_EPOCH).ok());
        assert_eq!(
            at("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Some(Duration::from_secs(784_111_777)))
        );
        assert_eq!(
            at("Thu, 29 Feb 2024 00:00:00 GMT"),
            Some(Some(Duration::from_secs(1_709_164_800)))
        );
        for bad in [
            "Sun, 06 Nov 1994 08:49:37",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "1994",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let b = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_millis(1000),
        };
        for retry in 0..40 {
            let full = Duration::from_millis(100 * (1u64 << retry.min(20))).min(b.cap);
            let d = b.delay(retry);
            assert!(d >= full / 2 && d < full, "retry {retry}: {d:?}");
        }
    }

    #[test]
    fn provider_messages_in_their_shapes() {
        let m = |s: &str| provider_message(s.as_bytes());
        assert_eq!(
            m(r#"{"error":{"message":"bad model","type":"x"}}"#),
            "bad model"
        );
        assert_eq!(
            m(
                r#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: too big"}}"#
            ),
            "max_tokens: too big"
        );
        assert_eq!(m(r#"{"error":"model not found"}"#), "model not found");
        assert_eq!(m(r#"{"object":"error","message":"too long"}"#), "too long");
        assert_eq!(m("upstream\nconnect error"), "upstream connect error");
        assert_eq!(m(&"x".repeat(2000)).len(), MAX_QUOTED_CHARS);
    }
}
