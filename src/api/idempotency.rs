//! `Idempotency-Key` on POST: the same key and the same request replay the stored
//! response (with `idempotent-replayed: true`); the same key with another request is 422;
//! a request still in progress is 409. Records are kept 24 hours.
//!
//! The API key is authenticated (it must still be valid) before anything is replayed;
//! records are kept per key, and the request fingerprint binds the method, path, query,
//! the key's tenant and key id, the end-user it acts for and the body. A response that
//! carries a secret (marked by its handler with [`CarriesSecret`]) is stored with the
//! secret replaced by `null`, so the store never holds it and a replay never shows it.
//!
//! A failed request (5xx) forgets its key, so a retry may run it again, unless its
//! handler marked [`Committed`]: once the side effect is stored the key is kept with
//! whatever answer went out, and a retry replays it instead of repeating the effect.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::auth::{key_fingerprint, Caller, Principal};
use super::error::ApiError;
use super::AppState;
use crate::ids::now_ms;
use crate::store::IdempotencyBegin;

/// Responses larger than this are not stored (they are not replayable).
const MAX_STORED_RESPONSE: usize = 1024 * 1024;

/// A response extension a handler sets when its JSON body carries a secret that is shown
/// once: the JSON pointers of the secret fields (e.g. `/secret`, `/key/secret`). The
/// idempotency record keeps a copy where each is `null`, with `<field>_redacted: true`
/// beside it.
#[derive(Debug, Clone, Copy)]
pub struct CarriesSecret(pub &'static [&'static str]);

impl CarriesSecret {
    /// `response` marked as carrying the secrets at these pointers.
    pub fn mark(self, response: impl IntoResponse) -> Response {
        let mut response = response.into_response();
        response.extensions_mut().insert(self);
        response
    }
}

/// A request extension (present when the request carries an `Idempotency-Key`) that its
/// handler marks once its side effect is stored.
#[derive(Debug, Clone, Default)]
pub struct Committed(Arc<AtomicBool>);

impl Committed {
    pub fn mark(&self) {
        self.0.store(true, Ordering::Release);
    }

    fn is_marked(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

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
    let (mut parts, body) = request.into_parts();
    // Unauthenticated routes (no API key) are not idempotent.
    let Some(scope) = key_fingerprint(&parts) else {
        return next.run(Request::from_parts(parts, body)).await;
    };
    // Authenticate before anything is replayed: a revoked key replays nothing. The
    // handler reuses this caller.
    let caller = match Caller::from_request_parts(&mut parts, &state).await {
        Ok(caller) => caller,
        Err(e) => return e.into_response(),
    };
    parts.extensions.insert(caller.clone());
    let bytes = match to_bytes(body, state.limits.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::PayloadTooLarge(
                "the request body is larger than this server accepts".into(),
            )
            .into_response()
        }
    };
    let request_hash = fingerprint(&caller, &parts, &bytes);
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
                "this Idempotency-Key was used for a different request (method, path, query, \
                 end-user or body); send a new Idempotency-Key for a new request",
            )
            .into_response()
        }
        Err(e) => return ApiError::from(e).into_response(),
    }
    let committed = Committed::default();
    parts.extensions.insert(committed.clone());
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let status = response.status();
    // A refusal that may pass on a retry (a rate limit, a quota, a conflict of the moment,
    // server trouble) is not the key's answer when nothing happened: the retry the client
    // sends with the same key runs again.
    let transient = status.is_server_error() || matches!(status.as_u16(), 408 | 409 | 425 | 429);
    if transient && !committed.is_marked() {
        let _ = store.idempotency_abandon(&scope, &key).await;
        return response;
    }
    let (parts, body) = response.into_parts();
    match to_bytes(body, MAX_STORED_RESPONSE).await {
        Ok(body) => {
            let kept = match parts.extensions.get::<CarriesSecret>() {
                Some(secrets) => redacted(&body, secrets.0),
                None => String::from_utf8_lossy(&body).into_owned(),
            };
            if let Err(e) = store
                .idempotency_complete(&scope, &key, status.as_u16(), &kept)
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

/// The one fingerprint of a request: method, path, query, the acting key's tenant and
/// id, the end-user it acts for, and the body. Each part is length-prefixed so no two
/// different requests hash alike.
fn fingerprint(caller: &Caller, parts: &Parts, body: &Bytes) -> String {
    let tenant = match &caller.principal {
        Principal::Admin => "admin".to_owned(),
        Principal::Org { org_id } => format!("org:{org_id}"),
        Principal::App { org_id, app_id } => format!("app:{org_id}/{app_id}"),
    };
    let mut hasher = Sha256::new();
    let fields: [Option<&[u8]>; 7] = [
        Some(parts.method.as_str().as_bytes()),
        Some(parts.uri.path().as_bytes()),
        Some(parts.uri.query().unwrap_or("").as_bytes()),
        Some(tenant.as_bytes()),
        caller.key_id.as_deref().map(str::as_bytes),
        caller.end_user.as_deref().map(str::as_bytes),
        Some(body),
    ];
    for field in fields {
        match field {
            None => hasher.update([0]),
            Some(bytes) => {
                hasher.update([1]);
                hasher.update((bytes.len() as u64).to_be_bytes());
                hasher.update(bytes);
            }
        }
    }
    hex::encode(hasher.finalize())
}

/// The copy of a secret-carrying body that may be stored: each secret is `null` with
/// `<field>_redacted: true` beside it. A body that cannot be redacted is not kept at all
/// (only the marker is), never in plaintext.
fn redacted(body: &[u8], pointers: &[&str]) -> String {
    let Ok(mut value) = serde_json::from_slice::<Value>(body) else {
        tracing::warn!("a secret-carrying response is not JSON; keeping only a marker");
        return json!({ "secret_redacted": true }).to_string();
    };
    for pointer in pointers {
        let (parent, field) = pointer.rsplit_once('/').unwrap_or(("", pointer));
        match value.pointer_mut(parent).and_then(Value::as_object_mut) {
            Some(object) => redact_field(object, field),
            None => {
                tracing::warn!(pointer, "secret pointer not found; keeping only a marker");
                return json!({ "secret_redacted": true }).to_string();
            }
        }
    }
    value.to_string()
}

fn redact_field(object: &mut Map<String, Value>, field: &str) {
    object.insert(field.to_owned(), Value::Null);
    object.insert(format!("{field}_redacted"), Value::Bool(true));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_replaces_every_secret_and_says_so() {
        let body = json!({ "org": { "id": "org_1" }, "key": { "id": "key_1", "secret": "atl_s" } });
        let kept = redacted(body.to_string().as_bytes(), &["/key/secret"]);
        assert!(!kept.contains("atl_s"), "{kept}");
        let kept: Value = serde_json::from_str(&kept).expect("json");
        assert_eq!(kept["key"]["secret"], Value::Null);
        assert_eq!(kept["key"]["secret_redacted"], true);
        assert_eq!(kept["org"]["id"], "org_1");
        let top = redacted(br#"{"id":"k","secret":"atl_t"}"#, &["/secret"]);
        assert!(
            !top.contains("atl_t") && top.contains("secret_redacted"),
            "{top}"
        );
    }

    #[test]
    fn an_unredactable_body_is_not_kept() {
        for (body, pointer) in [
            (&b"atl_plain"[..], "/secret"),
            (br#"{"a":"atl_x"}"#, "/b/secret"),
        ] {
            let kept = redacted(body, &[pointer]);
            assert!(!kept.contains("atl_"), "{kept}");
        }
    }
}
