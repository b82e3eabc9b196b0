//! Webhook signatures: Standard Webhooks both ways (atoll signs what it sends and checks
//! what `standard` triggers receive), and the GitHub, Stripe and plain-HMAC schemes
//! inbound triggers accept. Every comparison is constant-time (`subtle`), and each MAC
//! is computed once per request whatever the number of signatures offered.

use axum::http::HeaderMap;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// How far a signed timestamp may be from our clock (Standard Webhooks, Stripe).
pub const TOLERANCE_SECS: i64 = 5 * 60;

/// Signatures one request may offer (a rotation needs two): the MAC is computed once and
/// compared with each, so a header of thousands of candidates buys nothing.
const MAX_CANDIDATES: usize = 8;

/// HMAC-SHA256 of `parts` under `key`.
fn hmac_of(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut m = mac(key);
    for part in parts {
        m.update(part);
    }
    m.finalize().into_bytes().into()
}

/// Whether any candidate equals `expected`, comparing in constant time; more than
/// [`MAX_CANDIDATES`] is malformed.
fn any_matches(
    expected: &[u8; 32],
    candidates: &[Vec<u8>],
    header: &'static str,
) -> Result<(), Rejected> {
    if candidates.len() > MAX_CANDIDATES {
        return Err(Rejected::Malformed(header));
    }
    let matched = candidates.iter().fold(subtle::Choice::from(0), |any, c| {
        any | expected.as_slice().ct_eq(c)
    });
    if bool::from(matched) {
        Ok(())
    } else {
        Err(Rejected::Mismatch)
    }
}

/// A new `whsec_` secret: base64 of 32 random bytes.
pub fn new_secret() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes)?;
    Ok(format!("whsec_{}", B64.encode(bytes)))
}

/// The HMAC key of a Standard Webhooks secret: the base64 after `whsec_`.
pub fn standard_key(secret: &str) -> Option<Vec<u8>> {
    B64.decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .ok()
}

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
    match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    }
}

/// `v1,<base64 HMAC-SHA256 of id.timestamp.body>` for each secret, space-separated (the
/// receiver accepts any one: that is how a rotation overlaps).
pub fn sign_standard(secrets: &[&str], id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let mut out = Vec::new();
    for secret in secrets {
        let mut m = mac(&standard_key(secret)?);
        m.update(format!("{id}.{timestamp}.").as_bytes());
        m.update(body);
        out.push(format!("v1,{}", B64.encode(m.finalize().into_bytes())));
    }
    Some(out.join(" "))
}

/// How an inbound trigger checks its requests (`verify` in the trigger).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Verify {
    Named(Scheme),
    Hmac(HmacHeader),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    Standard,
    /// GitHub: `x-hub-signature-256: sha256=<hex>`, delivery id in `x-github-delivery`.
    Github,
    /// Stripe: `stripe-signature: t=<ts>,v1=<hex>`, event id in the body's `id`.
    Stripe,
}

/// HMAC-SHA256 of the body (hex, or base64) in a header, after an optional prefix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HmacHeader {
    pub hmac_header: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

impl Verify {
    /// Checks what a trigger is created with.
    pub fn validate(&self) -> Result<(), String> {
        if let Verify::Hmac(h) = self {
            if axum::http::HeaderName::from_bytes(h.hmac_header.as_bytes()).is_err() {
                return Err(format!("{:?} is not a header name", h.hmac_header));
            }
            if h.prefix.as_ref().is_some_and(|p| p.len() > 64) {
                return Err("prefix is at most 64 characters".into());
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("the request carries no {0} header")]
    Missing(&'static str),
    #[error("the {0} header is malformed")]
    Malformed(&'static str),
    #[error("the signature timestamp is more than 5 minutes from the server's clock")]
    Stale,
    #[error("no signature matches")]
    Mismatch,
}

fn header<'h>(headers: &'h HeaderMap, name: &'static str) -> Result<&'h str, Rejected> {
    headers
        .get(name)
        .ok_or(Rejected::Missing(name))?
        .to_str()
        .map_err(|_| Rejected::Malformed(name))
}

fn fresh(timestamp: i64, now_secs: i64) -> Result<(), Rejected> {
    if (now_secs - timestamp).abs() > TOLERANCE_SECS {
        return Err(Rejected::Stale);
    }
    Ok(())
}

/// Checks a request's signature; returns the sender's delivery id, what makes a repeat of
/// the same delivery recognisable: the signed `webhook-id` (Standard Webhooks), the
/// event id in the signed body (Stripe), else the digest of the signed body.
pub fn verify(
    verify: &Verify,
    secret: &str,
    headers: &HeaderMap,
    body: &[u8],
    now_secs: i64,
) -> Result<String, Rejected> {
    match verify {
        Verify::Named(Scheme::Standard) => {
            let id = header(headers, "webhook-id")?;
            let ts: i64 = header(headers, "webhook-timestamp")?
                .parse()
                .map_err(|_| Rejected::Malformed("webhook-timestamp"))?;
            fresh(ts, now_secs)?;
            let key = standard_key(secret).ok_or(Rejected::Mismatch)?;
            let candidates: Vec<Vec<u8>> = header(headers, "webhook-signature")?
                .split(' ')
                .filter_map(|sig| B64.decode(sig.strip_prefix("v1,")?).ok())
                .collect();
            let expected = hmac_of(&key, &[format!("{id}.{ts}.").as_bytes(), body]);
            any_matches(&expected, &candidates, "webhook-signature")?;
            Ok(id.to_owned())
        }
        Verify::Named(Scheme::Github) => {
            let value = header(headers, "x-hub-signature-256")?;
            let given = value
                .strip_prefix("sha256=")
                .and_then(|h| hex::decode(h).ok())
                .ok_or(Rejected::Malformed("x-hub-signature-256"))?;
            any_matches(
                &hmac_of(secret.as_bytes(), &[body]),
                &[given],
                "x-hub-signature-256",
            )?;
            // `x-github-delivery` is not signed (and GitHub sends no timestamp): whoever
            // holds one signed request could resend it under new ids. The signed body is
            // what identifies a delivery, so a resend is the run it already started.
            Ok(body_digest(body))
        }
        Verify::Named(Scheme::Stripe) => {
            let value = header(headers, "stripe-signature")?;
            let mut ts = None;
            let mut candidates = Vec::new();
            for part in value.split(',') {
                match part.trim().split_once('=') {
                    Some(("t", t)) => ts = t.parse::<i64>().ok(),
                    Some(("v1", sig)) => candidates.extend(hex::decode(sig).ok()),
                    _ => {}
                }
            }
            let ts = ts.ok_or(Rejected::Malformed("stripe-signature"))?;
            fresh(ts, now_secs)?;
            let expected = hmac_of(secret.as_bytes(), &[format!("{ts}.").as_bytes(), body]);
            any_matches(&expected, &candidates, "stripe-signature")?;
            let event_id = serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v.get("id").and_then(|id| id.as_str()).map(str::to_owned));
            Ok(event_id.unwrap_or_else(|| body_digest(body)))
        }
        Verify::Hmac(h) => {
            let value = headers
                .get(h.hmac_header.as_str())
                .ok_or(Rejected::Missing("signature"))?
                .to_str()
                .map_err(|_| Rejected::Malformed("signature"))?;
            let value = match &h.prefix {
                Some(prefix) => value
                    .strip_prefix(prefix.as_str())
                    .ok_or(Rejected::Malformed("signature"))?,
                None => value,
            };
            let given = hex::decode(value)
                .ok()
                .filter(|b| b.len() == 32)
                .or_else(|| B64.decode(value).ok())
                .ok_or(Rejected::Malformed("signature"))?;
            any_matches(&hmac_of(secret.as_bytes(), &[body]), &[given], "signature")?;
            // No delivery id and no timestamp: a replay is the same body, so the body's
            // digest is what recognises it.
            Ok(body_digest(body))
        }
    }
}

fn body_digest(body: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(body)))
}

#[cfg(test)]
#[path = "signature_tests.rs"]
mod tests;
