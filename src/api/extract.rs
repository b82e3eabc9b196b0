//! The API edge for what arrives outside a body: `ApiPath<T>` and `ApiQuery<T>` turn
//! every path and query-string rejection into a problem+json 400, and refuse control
//! characters in any segment or parameter with [`check_text`], the one rule for
//! identifiers, names, keys and filters (a NUL byte would reach PostgreSQL, which
//! refuses it in `text` with an internal error). `header_size_limit` answers 431 as a
//! problem for header sections over [`MAX_HEADER_BYTES`].

use axum::extract::{FromRequestParts, Path, Query, RawPathParams, Request};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// The largest header section (names, values and separators) a request may carry.
/// hyper itself answers a bare 431 (empty body) above its read buffer (about 400 KiB)
/// or past 100 header fields, before the request reaches any layer; below that this
/// limit answers with a problem.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Refuses control characters (NUL, other C0, DEL, C1) in an identifier, name, key or
/// filter, with a 400 that names `what`.
pub fn check_text(what: &str, value: &str) -> Result<(), ApiError> {
    match value.char_indices().find(|(_, c)| c.is_control()) {
        None => Ok(()),
        Some((at, c)) => Err(ApiError::BadRequest(format!(
            "{what} holds a control character (U+{:04X} at byte {at}); identifiers, names, \
             keys and filters take printable characters only",
            c as u32
        ))),
    }
}

/// `Path<T>` whose rejections are problems and whose segments pass [`check_text`].
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let raw = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|r| ApiError::BadRequest(format!("invalid path: {}", r.body_text())))?;
        for (name, value) in &raw {
            check_text(&format!("path segment {{{name}}}"), value)?;
        }
        let Path(value) = Path::<T>::from_request_parts(parts, state)
            .await
            .map_err(|r| ApiError::BadRequest(format!("invalid path: {}", r.body_text())))?;
        Ok(ApiPath(value))
    }
}

/// `Query<T>` whose rejections are problems and whose parameters pass [`check_text`].
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let invalid = |r: axum::extract::rejection::QueryRejection| {
            ApiError::BadRequest(format!("invalid query string: {}", r.body_text()))
        };
        let Query(pairs) =
            Query::<Vec<(String, String)>>::try_from_uri(&parts.uri).map_err(invalid)?;
        for (name, value) in &pairs {
            check_text("a query parameter name", name)?;
            check_text(&format!("query parameter '{name}'"), value)?;
        }
        let Query(value) = Query::<T>::try_from_uri(&parts.uri).map_err(invalid)?;
        Ok(ApiQuery(value))
    }
}

/// 431 as a problem when the request's header section is over [`MAX_HEADER_BYTES`].
pub async fn header_size_limit(request: Request, next: Next) -> Response {
    let size: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if size > MAX_HEADER_BYTES {
        return ApiError::HeaderFieldsTooLarge(format!(
            "the request headers are {size} bytes; this server accepts up to {MAX_HEADER_BYTES}"
        ))
        .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::check_text;

    #[test]
    fn control_characters_are_refused_and_printable_text_is_not() {
        for bad in [
            "a\0b",
            "\u{1}",
            "tab\there",
            "del\u{7f}",
            "c1\u{85}",
            "nl\n",
        ] {
            assert!(check_text("x", bad).is_err(), "{bad:?}");
        }
        for good in ["", "alice", "@acme/triage", "名前 with spaces", "emoji 🦀"] {
            assert!(check_text("x", good).is_ok(), "{good:?}");
        }
    }
}
