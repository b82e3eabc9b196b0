//! The last line of defence: one scrubber, built once per use of a credential, that
//! removes the secret and every form of it a server might echo from whatever goes back
//! to the agent (bodies, headers, URLs, LLM text, tool results) and from error messages.
//!
//! A host on a connection's list receives the credential: this stops accidental echoes
//! (an echo endpoint, an error page quoting the request, a re-encoded `Link` header), not
//! a host that encrypts or transforms it on purpose.
//!
//! Forms matched, for every secret value: the value itself; its `application/x-www-form-
//! urlencoded` form; base64 and base64url, padded and not, plus the three "cores" that
//! show up when the value sits inside a longer base64 text at any alignment; hex in lower
//! and upper case. Text is also matched through a *decoded view* in which `%HH`, `\uHHHH`,
//! `\xHH`, `\"`, `\\` and `\/` escapes are undone, so a value escaped in whole or in part
//! (JSON `\u` escapes, percent-encoding with either case of hex) is caught and the whole
//! escaped span is replaced. Forms shorter than [`MIN_SUBSTRING`] bytes match only as
//! whole tokens (delimited by anything but ASCII letters and digits), so a two-character
//! secret does not blank out every word that contains it.

use std::borrow::Cow;
use std::sync::Arc;

use aho_corasick::AhoCorasick;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::Value;

use super::escapes::{decode_escape, partial_escape, DecodedView};
use super::fetch::FetchError;
use crate::host::HostError;

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";
/// Forms shorter than this match only as whole tokens.
pub const MIN_SUBSTRING: usize = 4;
/// Base64 cores shorter than this are not matched (too likely by chance).
const MIN_CORE: usize = 8;
/// Most bytes of escaped text one decoded byte can take (`&#x00027;`, `\uHHHH`; an
/// HTML character reference is undone only up to this length).
pub(super) const MAX_ESCAPE: usize = 10;

/// The redactor could not be built; nothing may be sent with that credential.
#[derive(Debug, thiserror::Error)]
#[error("cannot prepare redaction of the credential: {0}")]
pub struct RedactorError(String);

/// Scrubs secrets out of bytes, text, JSON and errors. Cheap to clone; [`Redactor::none`]
/// does nothing.
#[derive(Clone, Default)]
pub struct Redactor {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    matcher: AhoCorasick,
    /// The hex forms again, in any mix of letter case (a dump tool, a checksum page).
    hex: AhoCorasick,
    /// Each pattern, by pattern id.
    patterns: Vec<Vec<u8>>,
    /// Length of each pattern, by pattern id.
    lens: Vec<usize>,
    longest: usize,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let forms = self.inner.as_ref().map_or(0, |i| i.lens.len());
        f.debug_struct("Redactor").field("forms", &forms).finish()
    }
}

impl Redactor {
    /// A redactor that changes nothing (no credential was used).
    pub fn none() -> Redactor {
        Redactor { inner: None }
    }

    /// A redactor for `secrets` and all their derived forms. Empty values are ignored.
    /// Fails only past the matcher's size limits (far beyond a few secrets of the sizes a
    /// connection accepts); callers refuse the request then rather than send it unscrubbed.
    pub fn for_secrets<S: AsRef<[u8]>>(
        secrets: impl IntoIterator<Item = S>,
    ) -> Result<Redactor, RedactorError> {
        let mut patterns: Vec<Vec<u8>> = Vec::new();
        let mut hex_forms: Vec<Vec<u8>> = Vec::new();
        for secret in secrets {
            let secret = secret.as_ref();
            if !secret.is_empty() {
                patterns.extend(forms(secret));
                hex_forms.push(hex::encode(secret).into_bytes());
            }
        }
        patterns.retain(|p| !p.is_empty());
        patterns.sort();
        patterns.dedup();
        if patterns.is_empty() {
            return Ok(Redactor::none());
        }
        let lens: Vec<usize> = patterns.iter().map(Vec::len).collect();
        let longest = lens.iter().copied().max().unwrap_or(0);
        let matcher = AhoCorasick::new(&patterns).map_err(|e| RedactorError(e.to_string()))?;
        let hex = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(&hex_forms)
            .map_err(|e| RedactorError(e.to_string()))?;
        Ok(Redactor {
            inner: Some(Arc::new(Inner {
                matcher,
                hex,
                patterns,
                lens,
                longest,
            })),
        })
    }

    /// True when nothing would ever be redacted.
    pub fn is_noop(&self) -> bool {
        self.inner.is_none()
    }

    /// The most bytes of original text one match can span (escapes included).
    pub fn window(&self) -> usize {
        self.inner.as_ref().map_or(0, |i| i.longest * MAX_ESCAPE)
    }

    /// `haystack` with every match replaced by [`REDACTED`].
    pub fn bytes<'a>(&self, haystack: &'a [u8]) -> Cow<'a, [u8]> {
        let Some(inner) = &self.inner else {
            return Cow::Borrowed(haystack);
        };
        let spans = inner.spans(haystack);
        if spans.is_empty() {
            return Cow::Borrowed(haystack);
        }
        Cow::Owned(replace(haystack, &spans))
    }

    /// `text` with every match replaced by [`REDACTED`].
    pub fn text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match self.bytes(text.as_bytes()) {
            Cow::Borrowed(_) => Cow::Borrowed(text),
            Cow::Owned(bytes) => Cow::Owned(String::from_utf8_lossy(&bytes).into_owned()),
        }
    }

    /// True when `text` holds a secret in any form.
    pub fn matches(&self, text: &[u8]) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|inner| !inner.spans(text).is_empty())
    }

    /// Scrubs every string and object key of `value` in place.
    pub fn json(&self, value: &mut Value) {
        if self.is_noop() {
            return;
        }
        match value {
            Value::String(s) => {
                if let Cow::Owned(clean) = self.text(s) {
                    *s = clean;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.json(v)),
            Value::Object(map) => {
                let old = std::mem::take(map);
                for (key, mut v) in old {
                    self.json(&mut v);
                    map.insert(self.text(&key).into_owned(), v);
                }
            }
            _ => {}
        }
    }

    /// The same error with every text it carries scrubbed.
    pub fn fetch_error(&self, error: FetchError) -> FetchError {
        if self.is_noop() {
            return error;
        }
        let t = |s: String| self.text(&s).into_owned();
        match error {
            FetchError::HostNotAllowed(host) => FetchError::HostNotAllowed(t(host)),
            FetchError::AddressRefused { host, ip, class } => FetchError::AddressRefused {
                host: t(host),
                ip,
                class,
            },
            FetchError::BadRequest(m) => FetchError::BadRequest(t(m)),
            FetchError::Network(m) => FetchError::Network(t(m)),
            FetchError::Connection { code, message } => FetchError::Connection {
                code,
                message: t(message),
            },
            other @ (FetchError::TooLarge { .. }
            | FetchError::Timeout
            | FetchError::OverBudget(_)) => other,
        }
    }

    /// The same error with its message scrubbed.
    pub fn host_error(&self, error: HostError) -> HostError {
        match self.text(&error.message) {
            Cow::Borrowed(_) => error,
            Cow::Owned(message) => HostError::new(error.code, message),
        }
    }

    /// A scrubber for text that arrives in pieces (LLM deltas).
    pub fn stream(&self) -> StreamRedactor {
        StreamRedactor {
            redactor: self.clone(),
            pending: String::new(),
        }
    }
}

/// Scrubs a text stream whose pieces may split a secret: it holds back the shortest tail
/// that could still grow into a match (a prefix of some form, escapes undone; at most
/// [`Redactor::window`] bytes) until the next piece or [`StreamRedactor::finish`]. Text
/// that cannot begin a secret passes straight on.
pub struct StreamRedactor {
    redactor: Redactor,
    pending: String,
}

impl StreamRedactor {
    /// Takes the next piece; returns what can be passed on now (possibly empty).
    pub fn push(&mut self, piece: &str) -> String {
        let Some(inner) = self.redactor.inner.clone() else {
            return piece.to_owned();
        };
        self.pending.push_str(piece);
        let pending = self.pending.as_bytes();
        let spans = inner.spans(pending);
        let mut cut = inner.hold_from(pending, self.redactor.window());
        // A match that runs past the cut stays whole in what is held back.
        for &(start, end) in &spans {
            if start < cut && end > cut {
                cut = start;
            }
        }
        while !self.pending.is_char_boundary(cut) {
            cut -= 1;
        }
        let head: Vec<(usize, usize)> = spans.into_iter().filter(|s| s.1 <= cut).collect();
        let out = replace(&pending[..cut], &head);
        self.pending.drain(..cut);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Everything still held back, scrubbed.
    pub fn finish(&mut self) -> String {
        let rest = std::mem::take(&mut self.pending);
        self.redactor.text(&rest).into_owned()
    }
}

impl Inner {
    /// Sorted, merged spans of `haystack` to replace.
    fn spans(&self, haystack: &[u8]) -> Vec<(usize, usize)> {
        let mut spans: Vec<(usize, usize)> = self.matches_in(haystack).collect();
        if let Some(view) = DecodedView::of(haystack) {
            spans.extend(
                self.matches_in(&view.bytes)
                    .map(|(s, e)| (view.original_start(s), view.original_end(e))),
            );
        }
        merge(spans)
    }

    /// The first offset of `text` (within the last `window` bytes) from which the rest
    /// could be the beginning of a match; `text.len()` when there is none.
    fn hold_from(&self, text: &[u8], window: usize) -> usize {
        let start = text.len().saturating_sub(window);
        (start..text.len())
            .find(|&i| {
                let first = text[i];
                (matches!(first, b'%' | b'\\' | b'&')
                    || self.patterns.iter().any(|p| p[0] == first))
                    && self.could_begin(&text[i..])
            })
            .unwrap_or(text.len())
    }

    /// True when `tail` is the beginning of some form, as written or with its escapes
    /// undone (an escape cut off at the end counts as a possible beginning).
    fn could_begin(&self, tail: &[u8]) -> bool {
        if self.patterns.iter().any(|p| p.starts_with(tail)) {
            return true;
        }
        let mut decoded = Vec::with_capacity(tail.len());
        let mut i = 0;
        while i < tail.len() {
            if let Some((bytes, used)) = decode_escape(&tail[i..]) {
                decoded.extend_from_slice(&bytes);
                i += used;
            } else if partial_escape(&tail[i..]) {
                break;
            } else {
                decoded.push(tail[i]);
                i += 1;
            }
            if !self.patterns.iter().any(|p| p.starts_with(&decoded)) {
                return false;
            }
        }
        true
    }

    fn matches_in<'h>(&'h self, haystack: &'h [u8]) -> impl Iterator<Item = (usize, usize)> + 'h {
        let forms = self
            .matcher
            .find_overlapping_iter(haystack)
            .filter(move |m| {
                self.lens[m.pattern().as_usize()] >= MIN_SUBSTRING
                    || whole_token(haystack, m.start(), m.end())
            });
        let hex = self.hex.find_overlapping_iter(haystack).filter(move |m| {
            m.end() - m.start() >= MIN_SUBSTRING || whole_token(haystack, m.start(), m.end())
        });
        forms.chain(hex).map(|m| (m.start(), m.end()))
    }
}

fn whole_token(haystack: &[u8], start: usize, end: usize) -> bool {
    let before = start == 0 || !haystack[start - 1].is_ascii_alphanumeric();
    let after = end == haystack.len() || !haystack[end].is_ascii_alphanumeric();
    before && after
}

fn merge(mut spans: Vec<(usize, usize)>) -> Vec<(usize, usize)> {
    spans.sort_unstable();
    let mut out: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
    for (start, end) in spans {
        match out.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    out
}

fn replace(haystack: &[u8], spans: &[(usize, usize)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut at = 0;
    for &(start, end) in spans {
        out.extend_from_slice(&haystack[at..start]);
        out.extend_from_slice(REDACTED.as_bytes());
        at = end;
    }
    out.extend_from_slice(&haystack[at..]);
    out
}

/// Every form of `secret` matched directly.
fn forms(secret: &[u8]) -> Vec<Vec<u8>> {
    let mut out = vec![secret.to_vec()];
    out.push(
        url::form_urlencoded::byte_serialize(secret)
            .collect::<String>()
            .into_bytes(),
    );
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        out.push(engine.encode(secret).into_bytes());
    }
    // Inside a longer base64 text the secret starts at byte offset 0, 1 or 2 of a
    // 3-byte group; the characters that depend on the secret alone are the same
    // whatever surrounds it.
    for align in 0..3usize {
        let mut shifted = vec![0u8; align];
        shifted.extend_from_slice(secret);
        let encoded = STANDARD_NO_PAD.encode(&shifted);
        let first = (align * 8).div_ceil(6);
        let last = ((align + secret.len()) * 8) / 6;
        if last > first && last - first >= MIN_CORE {
            let core = &encoded.as_bytes()[first..last];
            out.push(core.to_vec());
            let url_safe: Vec<u8> = core
                .iter()
                .map(|&b| match b {
                    b'+' => b'-',
                    b'/' => b'_',
                    b => b,
                })
                .collect();
            out.push(url_safe);
        }
    }
    out.push(hex::encode(secret).into_bytes());
    out.push(hex::encode_upper(secret).into_bytes());
    out
}

#[cfg(test)]
#[path = "redact_tests.rs"]
mod tests;
