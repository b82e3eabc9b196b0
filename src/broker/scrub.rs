//! Scrubbing a credentialed response before it leaves the host: the body is decoded
//! first (a compressed body cannot be scrubbed, so it is never handed over compressed),
//! then every header name and value, the body, the status text and the final URL go
//! through the connection's [`Redactor`].

use std::io::Read;

use flate2::read::{GzDecoder, ZlibDecoder};

use super::fetch::{FetchError, FetchResponse};
use super::redact::Redactor;

/// Decodes `response`'s body (gzip, deflate; at most `limit` bytes) and scrubs it all.
pub fn response(
    response: &mut FetchResponse,
    redactor: &Redactor,
    limit: u64,
) -> Result<(), FetchError> {
    decode_body(response, limit)?;
    if redactor.is_noop() {
        return Ok(());
    }
    // A header whose *name* carries the secret is dropped: there is no name to give it.
    response
        .headers
        .retain(|(name, _)| !redactor.matches(name.as_bytes()));
    for (_, value) in response.headers.iter_mut() {
        *value = redactor.text(value).into_owned();
    }
    if let std::borrow::Cow::Owned(clean) = redactor.bytes(&response.body) {
        response.body = clean.into();
    }
    response.url = redactor.text(&response.url).into_owned();
    response.status_text = redactor.text(&response.status_text).into_owned();
    Ok(())
}

/// Undoes `content-encoding` (the request asked for `identity`, but a server may ignore
/// that); an encoding we cannot undo fails the request rather than pass on bytes that
/// were never scrubbed.
fn decode_body(response: &mut FetchResponse, limit: u64) -> Result<(), FetchError> {
    let codings: Vec<String> = response
        .headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("content-encoding"))
        .flat_map(|(_, v)| v.split(','))
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty() && c != "identity")
        .collect();
    if codings.is_empty() {
        return Ok(());
    }
    let mut body = response.body.to_vec();
    if !body.is_empty() {
        // Codings are listed in the order they were applied.
        for coding in codings.iter().rev() {
            body = match coding.as_str() {
                "gzip" | "x-gzip" => inflate(GzDecoder::new(&body[..]), limit)?,
                "deflate" => inflate(ZlibDecoder::new(&body[..]), limit)
                    .or_else(|_| inflate(flate2::read::DeflateDecoder::new(&body[..]), limit))?,
                other => {
                    return Err(FetchError::Network(format!(
                        "the response is encoded with {other:?}, which the broker cannot \
                         decode to check it for the credential"
                    )))
                }
            };
        }
    }
    response.body = body.into();
    response.headers.retain(|(name, _)| {
        !name.eq_ignore_ascii_case("content-encoding")
            && !name.eq_ignore_ascii_case("content-length")
    });
    Ok(())
}

fn inflate(reader: impl Read, limit: u64) -> Result<Vec<u8>, FetchError> {
    let mut out = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| FetchError::Network(format!("the compressed body is corrupt: {e}")))?;
    if out.len() as u64 > limit {
        return Err(FetchError::TooLarge { limit });
    }
    Ok(out)
}
