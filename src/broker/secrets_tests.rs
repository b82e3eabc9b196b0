//! Sealing and opening: round trips, rotation, tampering, bindings and key specs.

use super::*;

const KEY_A: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const KEY_B: &str = "f0e1d2c3b4a5968778695a4b3c2d1e0f00112233445566778899aabbccddeeff";
const AAD: &str = "app_x/connection/acme-api/";

fn keys(spec: &str) -> MasterKeys {
    MasterKeys::parse(spec).expect("spec")
}

#[test]
fn round_trip() {
    let k = keys(KEY_A);
    assert_eq!(k.current_key_id(), "k1");
    let sealed = k.seal(b"hunter2", AAD).expect("seal");
    assert!(sealed.starts_with("v1.k1."), "{sealed}");
    assert_eq!(sealed.split('.').count(), 4);
    assert!(!sealed.contains("hunter2"));
    assert_eq!(k.open(&sealed, AAD).expect("open"), b"hunter2");
    assert_eq!(
        k.open(&k.seal(b"", AAD).expect("seal"), AAD).expect("open"),
        b""
    );
}

#[test]
fn every_seal_uses_a_fresh_nonce() {
    let k = keys(KEY_A);
    let a = k.seal(b"same", AAD).expect("seal");
    let b = k.seal(b"same", AAD).expect("seal");
    assert_ne!(a, b);
    assert_ne!(a.split('.').nth(2), b.split('.').nth(2));
}

#[test]
fn rotation_keeps_old_values_readable() {
    let old = keys(&format!("2025:{KEY_A}"));
    let sealed_old = old.seal(b"old secret", AAD).expect("seal");
    let rotated = keys(&format!("2026:{KEY_B}, 2025:{KEY_A}"));
    assert_eq!(rotated.current_key_id(), "2026");
    assert_eq!(rotated.open(&sealed_old, AAD).expect("open"), b"old secret");
    assert!(!rotated.is_current(&sealed_old));
    let sealed_new = rotated.seal(b"new secret", AAD).expect("seal");
    assert!(sealed_new.starts_with("v1.2026."));
    assert!(rotated.is_current(&sealed_new));
    // The old deployment cannot read what the new key sealed, and says why.
    assert_eq!(
        old.open(&sealed_new, AAD),
        Err(SecretError::UnknownKey("2026".into()))
    );
}

#[test]
fn a_bare_key_is_k1_in_a_list_too() {
    let sealed = keys(KEY_A).seal(b"x", AAD).expect("seal");
    let listed = keys(&format!("k2:{KEY_B},k1:{KEY_A}"));
    assert_eq!(listed.open(&sealed, AAD).expect("open"), b"x");
}

#[test]
fn the_same_key_under_another_id_does_not_open() {
    // The key id is authenticated: relabelling a value is tampering.
    let sealed = keys(&format!("a:{KEY_A}")).seal(b"x", AAD).expect("seal");
    let relabelled = sealed.replacen("v1.a.", "v1.b.", 1);
    let both = keys(&format!("a:{KEY_A},b:{KEY_A}"));
    assert_eq!(both.open(&relabelled, AAD), Err(SecretError::Tampered));
}

#[test]
fn tampering_with_any_part_fails() {
    let k = keys(&format!("k1:{KEY_A},k2:{KEY_B}"));
    let sealed = k.seal(b"the secret", AAD).expect("seal");
    let parts: Vec<&str> = sealed.split('.').collect();
    for part in 0..parts.len() {
        for pos in 0..parts[part].len() {
            let mut changed: Vec<String> = parts.iter().map(|p| p.to_string()).collect();
            let mut bytes = changed[part].clone().into_bytes();
            // Another character of the same alphabet, so the change is not just a bad
            // encoding (base64) or an unknown id.
            bytes[pos] = match bytes[pos] {
                b'A' => b'B',
                b'1' => b'2',
                b'2' => b'1',
                _ => b'A',
            };
            changed[part] = String::from_utf8(bytes).expect("ascii");
            let tampered = changed.join(".");
            let result = k.open(&tampered, AAD);
            assert!(result.is_err(), "part {part} pos {pos}: {tampered} opened");
        }
    }
    // Truncated, extended, reordered.
    for bad in [
        &sealed[..sealed.len() - 1],
        &format!("{sealed}A"),
        &format!("{sealed}.x"),
        &parts[..3].join("."),
        &format!("{}.{}.{}.{}", parts[0], parts[1], parts[3], parts[2]),
    ] {
        assert!(k.open(bad, AAD).is_err(), "{bad}");
    }
}

#[test]
fn wrong_aad_fails() {
    let k = keys(KEY_A);
    let sealed = k.seal(b"x", "app_a/connection/api/").expect("seal");
    for other in [
        "app_b/connection/api/",
        "app_a/connection/api2/",
        "app_a/connection/api/u1",
        "",
    ] {
        assert_eq!(
            k.open(&sealed, other),
            Err(SecretError::Tampered),
            "{other}"
        );
    }
}

#[test]
fn garbage_is_malformed_not_a_panic() {
    let k = keys(KEY_A);
    for bad in [
        "",
        "v1",
        "v1...",
        "v1.k1..",
        "v2.k1.AAAA.AAAA",
        "hunter2",
        "v1.k1.!!!.AAAA",
        "v1.k1.AAAAAAAAAAAAAAAA.AAAA", // ciphertext shorter than a tag
        "v1.k1.AAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", // nonce too short
        "v1..AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA",
    ] {
        assert_eq!(k.open(bad, AAD), Err(SecretError::Malformed), "{bad:?}");
    }
    assert!(!k.is_current("garbage"));
}

#[test]
fn unknown_key_id() {
    let sealed = keys(&format!("old:{KEY_A}")).seal(b"x", AAD).expect("seal");
    let err = keys(&format!("new:{KEY_B}"))
        .open(&sealed, AAD)
        .unwrap_err();
    assert_eq!(err, SecretError::UnknownKey("old".into()));
    assert!(err.to_string().contains("'old'"));
}

#[test]
fn bad_specs_are_refused_without_echoing_keys() {
    let short = &KEY_A[..62];
    let not_hex = format!("{}zz", &KEY_A[..62]);
    let placeholder = "0".repeat(64);
    let cases = [
        String::new(),
        "   ".into(),
        short.into(),
        not_hex.clone(),
        format!("{KEY_A}00"),
        placeholder.clone(),
        format!("k1:{short}"),
        format!(":{KEY_A}"),
        format!("a.b:{KEY_A}"),
        format!("{}:{KEY_A}", "x".repeat(33)),
        format!("k1:{KEY_A},k1:{KEY_B}"),
        format!("k1:{KEY_A},"),
        format!("k1:{KEY_A},{KEY_B}"),
        format!("k1:{not_hex}"),
        format!("k1:{placeholder}"),
    ];
    for spec in &cases {
        let err = MasterKeys::parse(spec).expect_err(spec);
        let message = err.to_string();
        assert!(matches!(err, SecretError::BadSpec(_)), "{spec}: {err:?}");
        assert!(message.starts_with("ATOLL_MASTER_KEY: "), "{message}");
        for key in [KEY_A, KEY_B, short, not_hex.as_str()] {
            assert!(!message.contains(key), "{spec}: {message}");
        }
    }
}

#[test]
fn specs_tolerate_spaces_and_upper_case_hex() {
    let k = keys(&format!("  a : {} ,  b:{KEY_B} ", KEY_A.to_uppercase()));
    assert_eq!(k.current_key_id(), "a");
    let sealed = keys(&format!("a:{KEY_A}")).seal(b"x", AAD).expect("seal");
    assert_eq!(k.open(&sealed, AAD).expect("open"), b"x");
}

#[test]
fn debug_shows_ids_only() {
    let shown = format!("{:?}", keys(&format!("a:{KEY_A},b:{KEY_B}")));
    assert_eq!(shown, r#"MasterKeys { ids: ["a", "b"] }"#);
}
