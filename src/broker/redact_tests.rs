use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::json;

use super::*;

const SECRET: &str = "sk-live+Sec/ret=42";

fn redactor(secrets: &[&str]) -> Redactor {
    Redactor::for_secrets(secrets.iter().copied()).expect("redactor")
}

fn clean(r: &Redactor, text: &str) -> String {
    r.text(text).into_owned()
}

#[test]
fn literal_form_encoded_and_percent_encoded_in_either_case() {
    let r = redactor(&[SECRET]);
    let encoded: String = url::form_urlencoded::byte_serialize(SECRET.as_bytes()).collect();
    for text in [
        format!("a {SECRET} b"),
        format!("?key={encoded}&x=1"),
        // Lowercase hex digits in the escapes.
        format!(
            "?key={}",
            encoded.replace("%2B", "%2b").replace("%2F", "%2f")
        ),
        // Every byte percent-encoded, as a hostile Link header might.
        SECRET.bytes().map(|b| format!("%{b:02X}")).collect(),
    ] {
        let out = clean(&r, &text);
        assert!(out.contains(REDACTED), "{text} -> {out}");
        assert!(!r.matches(out.as_bytes()), "{text} -> {out}");
        assert!(!out.contains("Sec"), "{text} -> {out}");
    }
}

#[test]
fn base64_and_base64url_with_and_without_padding_at_any_alignment() {
    let r = redactor(&[SECRET]);
    for prefix in ["", "x", "xy", "xyz", "Bearer "] {
        let raw = format!("{prefix}{SECRET} and more");
        for text in [STANDARD.encode(&raw), URL_SAFE_NO_PAD.encode(&raw)] {
            let out = clean(&r, &text);
            assert!(out.contains(REDACTED), "{prefix:?}: {text} -> {out}");
            assert!(!r.matches(out.as_bytes()), "{prefix:?}: {text} -> {out}");
        }
    }
}

#[test]
fn hex_json_unicode_escapes_and_mixed_escapes() {
    let r = redactor(&[SECRET]);
    let escaped: String = SECRET
        .chars()
        .map(|c| format!("\\u{:04x}", c as u32))
        .collect();
    let upper: String = SECRET
        .chars()
        .map(|c| format!("\\u{:04X}", c as u32))
        .collect();
    let mixed = "sk-li\\u0076e+Sec\\/ret=4%32".to_owned();
    for text in [
        hex::encode(SECRET),
        hex::encode_upper(SECRET),
        format!("{{\"echo\":\"{escaped}\"}}"),
        format!("{{\"echo\":\"{upper}\"}}"),
        mixed,
    ] {
        let out = clean(&r, &text);
        assert!(out.contains(REDACTED), "{text} -> {out}");
        assert!(!out.contains("\\u0053"), "{text} -> {out}");
    }
    // The JSON stays JSON: the whole escaped span is replaced.
    let body = format!("{{\"echo\":\"{escaped}\",\"n\":1}}");
    let out = clean(&r, &body);
    let parsed: serde_json::Value = serde_json::from_str(&out).expect("still JSON");
    assert_eq!(parsed, json!({ "echo": REDACTED, "n": 1 }));
}

#[test]
fn short_secrets_match_only_whole_tokens() {
    let r = redactor(&["ab", "x"]);
    assert_eq!(clean(&r, "ab"), REDACTED);
    assert_eq!(clean(&r, "key=ab;"), format!("key={REDACTED};"));
    assert_eq!(clean(&r, "about cab x"), format!("about cab {REDACTED}"));
    assert_eq!(clean(&r, "xylophone"), "xylophone");
    // Derived forms of a short secret too (base64 of "ab" is "YWI=").
    assert_eq!(clean(&r, "v: YWI="), format!("v: {REDACTED}"));
    assert_eq!(clean(&r, "v: YWI"), format!("v: {REDACTED}"));
}

#[test]
fn secrets_of_any_length_from_one_byte() {
    for secret in ["k", "ke", "key", "key4", "key45"] {
        let r = redactor(&[secret]);
        let out = clean(&r, &format!("got {secret}."));
        assert_eq!(out, format!("got {REDACTED}."), "{secret}");
    }
}

#[test]
fn nothing_else_is_touched_and_empty_secrets_are_ignored() {
    let r = redactor(&["", SECRET]);
    let text = "an ordinary answer with no credential in it, 0123456789 abcdef";
    assert!(matches!(r.text(text), Cow::Borrowed(_)));
    assert!(redactor(&[""]).is_noop());
    assert!(matches!(Redactor::none().text(SECRET), Cow::Borrowed(_)));
}

#[test]
fn json_values_and_keys() {
    let r = redactor(&[SECRET]);
    let mut v = json!({ SECRET: [format!("x{SECRET}"), 1, { "k": STANDARD.encode(SECRET) }] });
    r.json(&mut v);
    let text = v.to_string();
    assert!(!text.contains("Sec/ret"), "{text}");
    assert!(!text.contains(&STANDARD.encode(SECRET)), "{text}");
    assert_eq!(v[REDACTED][1], 1);
}

#[test]
fn errors_are_scrubbed() {
    let r = redactor(&["tok123456"]);
    let e = r.fetch_error(FetchError::HostNotAllowed("tok123456.leak.invalid".into()));
    assert_eq!(
        e.to_string(),
        format!("fetch to host {REDACTED}.leak.invalid is not permitted")
    );
    let e = r.host_error(HostError::new("tool_failed", "echo: dG9rMTIzNDU2"));
    assert_eq!(e.message, format!("echo: {REDACTED}"));
    assert_eq!(e.code, "tool_failed");
}

#[test]
fn a_secret_split_across_stream_pieces_never_leaks() {
    let r = redactor(&[SECRET]);
    let text = format!("Your key is {SECRET}, and again {SECRET}; bye.");
    for piece in 1..8 {
        let mut stream = r.stream();
        let mut out = String::new();
        let mut emitted = Vec::new();
        let chars: Vec<char> = text.chars().collect();
        for chunk in chars.chunks(piece) {
            let chunk: String = chunk.iter().collect();
            let got = stream.push(&chunk);
            emitted.push(got.clone());
            out.push_str(&got);
        }
        out.push_str(&stream.finish());
        assert_eq!(
            out,
            format!("Your key is {REDACTED}, and again {REDACTED}; bye."),
            "piece {piece}"
        );
        for e in &emitted {
            assert!(!e.contains("Sec/"), "piece {piece}: {e}");
        }
    }
}

#[test]
fn the_stream_passes_text_on_once_past_the_window() {
    let r = redactor(&["abcd"]);
    let mut stream = r.stream();
    let long = "z".repeat(r.window() + 10);
    let first = stream.push(&long);
    assert!(!first.is_empty(), "text well before the tail is passed on");
    assert!(first.len() <= long.len());
    let rest = stream.finish();
    assert_eq!(format!("{first}{rest}"), long);
    // Multi-byte characters are never cut.
    let mut stream = r.stream();
    let text = "é".repeat(r.window());
    let got = format!("{}{}", stream.push(&text), stream.finish());
    assert_eq!(got, text);
}

/// An error page quoting the request is HTML: a secret with `&`, `<`, `>`, `"` or `'` (a
/// password, a query value) comes back entity-escaped, not as written.
#[test]
fn html_entity_escaped_secrets() {
    let secret = "pa&ss<w>rd\"42'x";
    let r = redactor(&[secret]);
    for text in [
        "<p>bad key: pa&amp;ss&lt;w&gt;rd&quot;42&#39;x</p>".to_owned(),
        "<p>bad key: pa&amp;ss&lt;w&gt;rd&quot;42&#x27;x</p>".to_owned(),
        // Every character as a numeric entity.
        secret.chars().map(|c| format!("&#{};", c as u32)).collect(),
    ] {
        let out = clean(&r, &text);
        assert!(out.contains(REDACTED), "{text} -> {out}");
        assert!(!out.contains("rd"), "{text} -> {out}");
    }
}

/// A JSON encoder that escapes everything outside ASCII (Python's `json.dumps`, PHP's
/// `json_encode`) writes a character beyond the BMP as a surrogate pair, which
/// `char::from_u32` refuses: the whole echo then goes through unscrubbed.
#[test]
fn json_surrogate_pair_escapes() {
    let secret = "tok-\u{1F511}-live-7Hq2";
    let r = redactor(&[secret]);
    let text = r#"{"echo":"tok-\ud83d\udd11-live-7Hq2"}"#;
    let out = clean(&r, text);
    assert!(out.contains(REDACTED), "{text} -> {out}");
    assert!(!out.contains("live-7Hq2"), "{text} -> {out}");
}

/// Hex in mixed case (a dump tool, a checksum page) is neither the lower nor the upper form.
#[test]
fn mixed_case_hex() {
    let r = redactor(&[SECRET]);
    // Every other letter upper case: "...2D6c...2B53...2f72..."
    let mut upper = false;
    let mixed: String = hex::encode(SECRET)
        .chars()
        .map(|c| {
            if !c.is_ascii_alphabetic() {
                return c;
            }
            upper = !upper;
            if upper {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect();
    assert_ne!(mixed, hex::encode(SECRET));
    assert_ne!(mixed, hex::encode_upper(SECRET));
    let out = clean(&r, &format!("dump: {mixed}"));
    assert!(out.contains(REDACTED), "{mixed} -> {out}");
}
