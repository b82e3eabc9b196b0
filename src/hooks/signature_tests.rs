use axum::http::{HeaderMap, HeaderValue};

use super::*;

/// The example of the Standard Webhooks specification (standard-webhooks/spec).
const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const SPEC_TS: i64 = 1614265330;
const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in pairs {
        h.insert(
            *name,
            HeaderValue::from_str(value).expect("test header value"),
        );
    }
    h
}

fn standard(sig: &str, ts: i64) -> HeaderMap {
    headers(&[
        ("webhook-id", SPEC_ID),
        ("webhook-timestamp", &ts.to_string()),
        ("webhook-signature", sig),
    ])
}

const STANDARD: Verify = Verify::Named(Scheme::Standard);

#[test]
fn signs_the_specification_example() {
    assert_eq!(
        sign_standard(&[SPEC_SECRET], SPEC_ID, SPEC_TS, SPEC_BODY).as_deref(),
        Some(SPEC_SIGNATURE)
    );
}

#[test]
fn standard_accepts_the_example_and_any_of_several_signatures() {
    let got = verify(
        &STANDARD,
        SPEC_SECRET,
        &standard(SPEC_SIGNATURE, SPEC_TS),
        SPEC_BODY,
        SPEC_TS,
    );
    assert_eq!(got.as_deref(), Ok(SPEC_ID));
    // A rotation overlap: the old secret's signature comes second.
    let other = new_secret().expect("random");
    let both = sign_standard(&[&other, SPEC_SECRET], SPEC_ID, SPEC_TS, SPEC_BODY).expect("sign");
    assert!(both.contains(' '));
    assert!(verify(
        &STANDARD,
        SPEC_SECRET,
        &standard(&both, SPEC_TS),
        SPEC_BODY,
        SPEC_TS
    )
    .is_ok());
    assert!(verify(
        &STANDARD,
        &other,
        &standard(&both, SPEC_TS),
        SPEC_BODY,
        SPEC_TS
    )
    .is_ok());
}

#[test]
fn standard_refuses_tampering_staleness_and_missing_headers() {
    let at = |ts| standard(SPEC_SIGNATURE, ts);
    assert_eq!(
        verify(
            &STANDARD,
            SPEC_SECRET,
            &at(SPEC_TS),
            br#"{"test": 1}"#,
            SPEC_TS
        ),
        Err(Rejected::Mismatch)
    );
    assert_eq!(
        verify(
            &STANDARD,
            SPEC_SECRET,
            &at(SPEC_TS),
            SPEC_BODY,
            SPEC_TS + 301
        ),
        Err(Rejected::Stale)
    );
    assert_eq!(
        verify(
            &STANDARD,
            SPEC_SECRET,
            &at(SPEC_TS),
            SPEC_BODY,
            SPEC_TS - 301
        ),
        Err(Rejected::Stale)
    );
    // The timestamp is signed: moving it to look fresh breaks the signature.
    assert_eq!(
        verify(
            &STANDARD,
            SPEC_SECRET,
            &at(SPEC_TS + 1000),
            SPEC_BODY,
            SPEC_TS + 1000
        ),
        Err(Rejected::Mismatch)
    );
    let other = new_secret().expect("random");
    assert_eq!(
        verify(&STANDARD, &other, &at(SPEC_TS), SPEC_BODY, SPEC_TS),
        Err(Rejected::Mismatch)
    );
    assert_eq!(
        verify(
            &STANDARD,
            SPEC_SECRET,
            &HeaderMap::new(),
            SPEC_BODY,
            SPEC_TS
        ),
        Err(Rejected::Missing("webhook-id"))
    );
    assert_eq!(
        verify(
            &STANDARD,
            SPEC_SECRET,
            &standard("v1,", SPEC_TS),
            SPEC_BODY,
            SPEC_TS
        ),
        Err(Rejected::Mismatch)
    );
}

fn hex_hmac(key: &str, parts: &[&[u8]]) -> String {
    let mut m = HmacSha256::new_from_slice(key.as_bytes()).expect("hmac key");
    for p in parts {
        m.update(p);
    }
    hex::encode(m.finalize().into_bytes())
}

#[test]
fn github_checks_the_sha256_header_and_keys_deliveries_by_the_signed_body() {
    let secret = "It's a Secret to Everybody";
    let body = b"Hello, World!";
    // GitHub's documented example signature for this secret and body.
    let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    assert_eq!(format!("sha256={}", hex_hmac(secret, &[body])), sig);
    let h = headers(&[("x-hub-signature-256", sig), ("x-github-delivery", "d-1")]);
    let github = Verify::Named(Scheme::Github);
    let key = verify(&github, secret, &h, body, 0).expect("valid");
    assert!(key.starts_with("sha256:"), "{key}");
    // The delivery id is not signed: a resend under another id is the same delivery.
    let resent = headers(&[("x-hub-signature-256", sig), ("x-github-delivery", "d-2")]);
    assert_eq!(verify(&github, secret, &resent, body, 0), Ok(key));
    assert_eq!(
        verify(&github, secret, &h, b"Hello", 0),
        Err(Rejected::Mismatch)
    );
    let bad = headers(&[("x-hub-signature-256", "sha1=00")]);
    assert_eq!(
        verify(&github, secret, &bad, body, 0),
        Err(Rejected::Malformed("x-hub-signature-256"))
    );
}

#[test]
fn stripe_checks_timestamp_and_v1_and_uses_the_event_id() {
    let secret = "whsec_test_stripe";
    let body = br#"{"id":"evt_1","type":"charge.succeeded"}"#;
    let ts = 1_700_000_000i64;
    let sig = hex_hmac(secret, &[format!("{ts}.").as_bytes(), body]);
    let h = headers(&[(
        "stripe-signature",
        &format!("t={ts},v1=00ff,v1={sig},v0=abc"),
    )]);
    let stripe = Verify::Named(Scheme::Stripe);
    assert_eq!(
        verify(&stripe, secret, &h, body, ts + 10).as_deref(),
        Ok("evt_1")
    );
    assert_eq!(
        verify(&stripe, secret, &h, body, ts + 400),
        Err(Rejected::Stale)
    );
    assert_eq!(
        verify(&stripe, "other", &h, body, ts),
        Err(Rejected::Mismatch)
    );
}

#[test]
fn plain_hmac_takes_hex_or_base64_after_the_prefix() {
    let secret = "s3cret-s3cret-s3cret";
    let body = b"{\"a\":1}";
    let hexsig = hex_hmac(secret, &[body]);
    let spec = Verify::Hmac(HmacHeader {
        hmac_header: "x-signature".into(),
        prefix: Some("sha256=".into()),
    });
    let h = headers(&[("x-signature", &format!("sha256={hexsig}"))]);
    let id = verify(&spec, secret, &h, body, 0).expect("valid");
    assert!(id.starts_with("sha256:"));
    let h = headers(&[("x-signature", &hexsig)]);
    assert_eq!(
        verify(&spec, secret, &h, body, 0),
        Err(Rejected::Malformed("signature"))
    );
    let plain = Verify::Hmac(HmacHeader {
        hmac_header: "x-signature".into(),
        prefix: None,
    });
    let b64 = B64.encode(hex::decode(&hexsig).expect("hex"));
    let h = headers(&[("x-signature", &b64)]);
    assert!(verify(&plain, secret, &h, body, 0).is_ok());
    assert_eq!(
        verify(&plain, secret, &h, b"{\"a\":2}", 0),
        Err(Rejected::Mismatch)
    );
}

#[test]
fn verify_parses_as_the_spec_writes_it() {
    let named: Verify = serde_json::from_str("\"github\"").expect("named");
    assert_eq!(named, Verify::Named(Scheme::Github));
    let custom: Verify =
        serde_json::from_str(r#"{"hmac_header":"x-sig","prefix":"sha256="}"#).expect("custom");
    assert!(matches!(custom, Verify::Hmac(_)));
    assert!(serde_json::from_str::<Verify>("\"md5\"").is_err());
    assert!(serde_json::from_str::<Verify>(r#"{"hmac_header":"x","extra":1}"#).is_err());
    let bad = Verify::Hmac(HmacHeader {
        hmac_header: "bad header".into(),
        prefix: None,
    });
    assert!(bad.validate().is_err());
}

#[test]
fn a_flood_of_candidate_signatures_is_refused_before_any_work() {
    let one = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    let many = [one; 9].join(" ");
    assert_eq!(
        verify(
            &STANDARD,
            SPEC_SECRET,
            &standard(&many, SPEC_TS),
            SPEC_BODY,
            SPEC_TS
        ),
        Err(Rejected::Malformed("webhook-signature"))
    );
    // Eight (a rotation and then some) are still compared, and the right one matches.
    let eight = [one; 8].join(" ");
    assert!(verify(
        &STANDARD,
        SPEC_SECRET,
        &standard(&eight, SPEC_TS),
        SPEC_BODY,
        SPEC_TS
    )
    .is_ok());
    let stripe = Verify::Named(Scheme::Stripe);
    let flood = format!("t=1,{}", ["v1=00"; 9].join(","));
    let h = headers(&[("stripe-signature", &flood)]);
    assert_eq!(
        verify(&stripe, "s", &h, b"{}", 1),
        Err(Rejected::Malformed("stripe-signature"))
    );
}
