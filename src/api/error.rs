//! The one API error type: every failure becomes RFC 9457 `application/problem+json`.
//! Internal errors are logged with the request id and never echoed to the client.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use crate::quota::Decision;
use crate::runs::admission::Refused;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("missing, invalid or revoked API key: send Authorization: Bearer atl_... with a key that is still valid")]
    Unauthorized,
    /// 401 for an inbound webhook whose signature does not check out.
    #[error("{0}")]
    BadSignature(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("this route does not accept that method")]
    MethodNotAllowed,
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    HeaderFieldsTooLarge(String),
    /// 422 with a title and optional extension members (e.g. the package file at fault).
    #[error("{detail}")]
    Unprocessable {
        title: &'static str,
        detail: String,
        extra: Option<Map<String, Value>>,
    },
    #[error("rate limit or quota exceeded: {what}")]
    RateLimited { what: String, decision: Decision },
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized | ApiError::BadSignature(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::HeaderFieldsTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn slug_and_title(&self) -> (&'static str, &'static str) {
        match self {
            ApiError::BadRequest(_) => ("bad-request", "Bad request"),
            ApiError::Unauthorized => ("unauthorized", "Unauthorized"),
            ApiError::BadSignature(_) => ("bad-signature", "Invalid webhook signature"),
            ApiError::Forbidden(_) => ("forbidden", "Forbidden"),
            ApiError::NotFound(_) => ("not-found", "Not found"),
            ApiError::Conflict(_) => ("conflict", "Conflict"),
            ApiError::MethodNotAllowed => ("method-not-allowed", "Method not allowed"),
            ApiError::PayloadTooLarge(_) => ("payload-too-large", "Payload too large"),
            ApiError::UnsupportedMediaType(_) => {
                ("unsupported-media-type", "Unsupported media type")
            }
            ApiError::HeaderFieldsTooLarge(_) => (
                "request-header-fields-too-large",
                "Request header fields too large",
            ),
            ApiError::Unprocessable { title, .. } => ("unprocessable", title),
            ApiError::RateLimited { .. } => ("rate-limited", "Too many requests"),
            ApiError::Unavailable(_) => ("unavailable", "Service unavailable"),
            ApiError::Internal(_) => ("internal", "Internal server error"),
        }
    }

    pub fn not_found(what: &str) -> ApiError {
        ApiError::NotFound(format!("{what} not found"))
    }

    pub fn unprocessable(title: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError::Unprocessable {
            title,
            detail: detail.into(),
            extra: None,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => ApiError::Conflict(format!("{what} already exists")),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<Refused> for ApiError {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::Limit { what, decision } => ApiError::RateLimited {
                what: format!("{what} limit reached"),
                decision,
            },
            // Logged here; the client gets a generic answer.
            Refused::Backend(e) => {
                tracing::warn!(error = %e, "quota backend failed");
                ApiError::Unavailable("the quota backend is unavailable; retry shortly".into())
            }
        }
    }
}

/// Sets `ratelimit-*` headers (and `retry-after` when refused) from a quota decision.
pub fn rate_limit_headers(headers: &mut HeaderMap, decision: &Decision) {
    let mut set = |name: &'static str, value: u64| {
        if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
            headers.insert(name, v);
        }
    };
    set("ratelimit-limit", decision.limit);
    set("ratelimit-remaining", decision.remaining);
    set("ratelimit-reset", decision.reset_secs);
    if !decision.allowed {
        set("retry-after", decision.retry_after_secs.max(1));
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let (slug, title) = self.slug_and_title();
        let detail = match &self {
            ApiError::Internal(message) => {
                tracing::error!(error = %message, "internal error");
                "the server failed to handle this request; it has been logged".to_owned()
            }
            other => other.to_string(),
        };
        let mut body = json!({
            "type": format!("https://atoll.dev/problems/{slug}"),
            "title": title,
            "status": status.as_u16(),
            "detail": detail,
        });
        if let (
            ApiError::Unprocessable {
                extra: Some(extra), ..
            },
            Some(obj),
        ) = (&self, body.as_object_mut())
        {
            for (k, v) in extra {
                obj.insert(k.clone(), v.clone());
            }
        }
        let mut response = (status, body.to_string()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let ApiError::RateLimited { decision, .. } = &self {
            rate_limit_headers(response.headers_mut(), decision);
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
