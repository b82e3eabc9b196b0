//! The escapes a redactor looks through: `%HH`, `\uHHHH` (surrogate pairs included),
//! `\xHH`, JSON's `\"` `\\` `\/`, and HTML character references — undone in a *decoded view*
//! of a text that remembers where each decoded byte came from, so a match in the view
//! maps back to the original bytes it must replace.

use super::redact::MAX_ESCAPE;

/// `haystack` with escapes undone, and where each decoded byte came from.
pub(super) struct DecodedView {
    pub(super) bytes: Vec<u8>,
    /// `(decoded_at, decoded_len, original_at, original_len)` of each escape, in order.
    escapes: Vec<(usize, usize, usize, usize)>,
}

impl DecodedView {
    /// `None` when `haystack` has no escape to undo.
    pub(super) fn of(haystack: &[u8]) -> Option<DecodedView> {
        if !haystack.iter().any(|&b| matches!(b, b'%' | b'\\' | b'&')) {
            return None;
        }
        let mut bytes = Vec::with_capacity(haystack.len());
        let mut escapes = Vec::new();
        let mut i = 0;
        while i < haystack.len() {
            match decode_escape(&haystack[i..]) {
                Some((decoded, used)) => {
                    escapes.push((bytes.len(), decoded.len(), i, used));
                    bytes.extend_from_slice(&decoded);
                    i += used;
                }
                None => {
                    bytes.push(haystack[i]);
                    i += 1;
                }
            }
        }
        (!escapes.is_empty()).then_some(DecodedView { bytes, escapes })
    }

    /// The escape at or before decoded offset `at`, if any.
    fn escape_before(&self, at: usize) -> Option<&(usize, usize, usize, usize)> {
        let idx = self.escapes.partition_point(|e| e.0 <= at);
        idx.checked_sub(1).map(|i| &self.escapes[i])
    }

    pub(super) fn original_start(&self, at: usize) -> usize {
        match self.escape_before(at) {
            None => at,
            Some(&(d, dl, o, _)) if at < d + dl => o,
            Some(&(d, dl, o, ol)) => o + ol + (at - d - dl),
        }
    }

    pub(super) fn original_end(&self, end: usize) -> usize {
        let last = end - 1;
        match self.escape_before(last) {
            None => end,
            Some(&(d, dl, o, ol)) if last < d + dl => o + ol,
            Some(&(d, dl, o, ol)) => o + ol + (last - d - dl) + 1,
        }
    }
}

fn hex_value(digits: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(digits).ok()?;
    u32::from_str_radix(text, 16).ok()
}

fn high_surrogate(digits: &[u8]) -> bool {
    digits.len() == 4
        && digits.iter().all(u8::is_ascii_hexdigit)
        && hex_value(digits).is_some_and(|v| (0xD800..0xDC00).contains(&v))
}

/// An HTML character reference at the start of `s` (`&amp;`, `&lt;`, `&gt;`, `&quot;`,
/// `&apos;`, `&#39;`, `&#x27;`), as an error page quoting the request writes it.
fn html_reference(s: &[u8]) -> Option<(Vec<u8>, usize)> {
    let end = s.iter().take(MAX_ESCAPE).position(|&b| b == b';')?;
    let name = &s[1..end];
    let c = match name {
        b"amp" => '&',
        b"lt" => '<',
        b"gt" => '>',
        b"quot" => '"',
        b"apos" => '\'',
        [b'#', b'x' | b'X', hex @ ..]
            if !hex.is_empty() && hex.iter().all(u8::is_ascii_hexdigit) =>
        {
            char::from_u32(hex_value(hex)?)?
        }
        [b'#', dec @ ..] if !dec.is_empty() && dec.iter().all(u8::is_ascii_digit) => {
            char::from_u32(std::str::from_utf8(dec).ok()?.parse().ok()?)?
        }
        _ => return None,
    };
    Some((c.to_string().into_bytes(), end + 1))
}

/// True when `s` is an escape cut off before its end (`%4`, `\\u00`, a lone `\\`).
pub(super) fn partial_escape(s: &[u8]) -> bool {
    let hex = |b: &[u8]| b.iter().all(u8::is_ascii_hexdigit);
    match s {
        [b'%', rest @ ..] => rest.len() < 2 && hex(rest),
        [b'\\'] => true,
        [b'\\', b'u', rest @ ..] if rest.len() < 4 => hex(rest),
        // A high surrogate whose low half may follow.
        [b'\\', b'u', rest @ ..] if rest.len() < 10 => {
            high_surrogate(&rest[..4]) && b"\\u".starts_with(&rest[4..rest.len().min(6)])
        }
        [b'&', rest @ ..] => {
            rest.len() < MAX_ESCAPE - 1
                && rest.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'#')
        }
        [b'\\', b'x', rest @ ..] => rest.len() < 2 && hex(rest),
        _ => false,
    }
}

/// The bytes an escape at the start of `s` stands for, and its length.
pub(super) fn decode_escape(s: &[u8]) -> Option<(Vec<u8>, usize)> {
    match s {
        [b'%', a, b, ..] if a.is_ascii_hexdigit() && b.is_ascii_hexdigit() => {
            Some((vec![hex_value(&[*a, *b])? as u8], 3))
        }
        // A surrogate pair, as JSON encoders write characters beyond the BMP.
        [b'\\', b'u', h @ ..] if h.len() >= 10 && high_surrogate(&h[..4]) && h[4..6] == *b"\\u" => {
            let high = hex_value(&h[..4])?;
            let low = hex_value(&h[6..10]).filter(|l| (0xDC00..0xE000).contains(l))?;
            let c = char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))?;
            Some((c.to_string().into_bytes(), 12))
        }
        [b'\\', b'u', rest @ ..]
            if rest.len() >= 4 && rest[..4].iter().all(u8::is_ascii_hexdigit) =>
        {
            let c = char::from_u32(hex_value(&rest[..4])?)?;
            Some((c.to_string().into_bytes(), 6))
        }
        [b'&', ..] => html_reference(s),
        [b'\\', b'x', a, b, ..] if a.is_ascii_hexdigit() && b.is_ascii_hexdigit() => {
            Some((vec![hex_value(&[*a, *b])? as u8], 4))
        }
        [b'\\', c @ (b'"' | b'\\' | b'/'), ..] => Some((vec![*c], 2)),
        _ => None,
    }
}
