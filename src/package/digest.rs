//! The package digest: sha256 over a canonical encoding, so that a directory, a tarball, a
//! zip and the JSON upload form of the same content all give the same digest.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Bumped if the encoding below ever changes, so old and new digests cannot collide.
const DOMAIN: &[u8] = b"atoll-package-v1\0";

/// sha256 hex of: the domain tag, the canonical manifest JSON, then every file in path
/// order; each string is preceded by its byte length (u64 big-endian) so that no two
/// different packages encode alike.
pub(crate) fn digest(manifest: &Value, files: &BTreeMap<String, Arc<str>>) -> String {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    let manifest = canonical_json(manifest);
    put(&mut h, manifest.as_bytes());
    for (path, text) in files {
        put(&mut h, path.as_bytes());
        put(&mut h, text.as_bytes());
    }
    hex::encode(h.finalize())
}

fn put(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

/// Compact JSON with object keys sorted by their UTF-8 bytes, written by hand so the
/// result does not depend on serde_json's `preserve_order` feature being on somewhere in
/// the dependency graph.
pub(crate) fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_value(v, &mut out);
    out
}

fn write_value(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, val)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(k, out);
                out.push(':');
                write_value(val, out);
            }
            out.push('}');
        }
    }
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
