//! `Idempotency-Key` on POST: the same key and body replay the stored response (with
//! `idempotent-replayed: true`); the same key with another body is 422; a request still
//! in progress is 409. Records are kept 24 hours.

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::auth::key_fingerprint;
use super::error::ApiError;
use super::AppState;
use crate::runs::adapters::now_ms;
use crate::store::IdempotencyBegin;

/// Responses larger than this are not stored (they are not replayable).
const MAX_STORED_RESPONSE: usize = 1024 * 1024;

pub async fn middleware(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let Some(key) = request.headers().get("idempotency-key").cloned() else {
        return next.run(request).await;
    };
    let key = match key.to_str().map(str::trim) {
        Ok(k) if !k.is_empty() && k.len() <= 255 => k.to_owned(),
        _ => {
            return ApiError::BadRequest(
                "Idempotency-Key must be 1 to 255 visible characters".into(),
            )
            .into_response()
        }
    };
    let (parts, body) = request.into_parts();
    let Some(scope) = key_fingerprint(&parts) else {
        return next.run(Request::from_parts(parts, body)).await;
    };
    let bytes = match to_bytes(body, state.limits.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::PayloadTooLarge(
                "the request body is larger than this server accepts".into(),
            )
            .into_response()
        }
    };
    let mut hasher = Sha256::new();
    hasher.update(parts.uri.path().as_bytes());
    hasher.update([0]);
    hasher.update(parts.uri.query().unwrap_or("").as_bytes());
    hasher.update([0]);
    hasher.update(&bytes);
    let request_hash = hex::encode(hasher.finalize());
    let store = &state.store;
    match store
        .idempotency_begin(&scope, &key, &request_hash, now_ms())
        .await
    {
        Ok(IdempotencyBegin::Started) => {}
        Ok(IdempotencyBegin::Replay { status, body }) => return replay(status, body),
        Ok(IdempotencyBegin::InProgress) => {
            return ApiError::Conflict(
                "a request with this Idempotency-Key is still being processed; retry later".into(),
            )
            .into_response()
        }
        Ok(IdempotencyBegin::Mismatch) => {
            return ApiError::unprocessable(
                "Idempotency-Key reused",
                "this Idempotency-Key was used with a different request body",
            )
            .into_response()
        }
        Err(e) => return ApiError::from(e).into_response(),
    }
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let status = response.status();
    if status.is_server_error() {
        let _ = store.idempotency_abandon(&scope, &key).await;
        return response;
    }
    let (parts, body) = response.into_parts();
    match to_bytes(body, MAX_STORED_RESPONSE).await {
        Ok(body) => {
            let text = String::from_utf8_lossy(&body).into_owned();
            if let Err(e) = store
                .idempotency_complete(&scope, &key, status.as_u16(), &text)
                .await
            {
                tracing::warn!(error = %e, "could not store an idempotent response");
            }
            Response::from_parts(parts, Body::from(body))
        }
        Err(_) => {
            let _ = store.idempotency_abandon(&scope, &key).await;
            ApiError::Internal("response too large to keep for idempotency".into()).into_response()
        }
    }
}

fn replay(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let content_type = if status.is_success() {
        "application/json"
    } else {
        "application/problem+json"
    };
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
        .headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}
