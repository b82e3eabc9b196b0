//! Secrets at rest: AES-256-GCM under operator master keys that carry ids, so keys rotate.
//!
//! A sealed value is `v1.<key id>.<nonce>.<ciphertext>` (nonce and ciphertext+tag in
//! unpadded URL-safe base64). The first key of `ATOLL_MASTER_KEY` seals; every listed key
//! opens, so rotating is: put a new key first, keep the old one after it until every row
//! has been re-sealed ([`MasterKeys::is_current`] tells which rows still need it), then
//! drop the old one.
//!
//! The caller's `aad` (e.g. `app_x/connection/acme-api/`) and the `v1.<key id>` header are
//! authenticated with the ciphertext: a value copied to another row, or relabelled with
//! another key id, does not open.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

const VERSION: &str = "v1";
const NONCE_LEN: usize = 12;
/// GCM's 16-byte tag is appended to every ciphertext.
const TAG_LEN: usize = 16;
/// The id a bare 64-hex-character key gets.
const DEFAULT_KEY_ID: &str = "k1";

/// Errors never carry key material or plaintext; key ids are not secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("ATOLL_MASTER_KEY: {0}")]
    BadSpec(String),
    #[error("sealed with key '{0}', which is not among the configured master keys")]
    UnknownKey(String),
    #[error("not a sealed value")]
    Malformed,
    /// Wrong key, wrong binding (aad) or a modified value: GCM cannot tell them apart.
    #[error("sealed value does not open: modified, or bound to another record")]
    Tampered,
    #[error("cannot seal: {0}")]
    Seal(String),
}

/// The operator's master keys, first one current. Built once at startup from
/// `ATOLL_MASTER_KEY`; cheap to share behind an `Arc`.
pub struct MasterKeys {
    /// Never empty; `keys[0]` seals.
    keys: Vec<(String, Aes256Gcm)>,
}

impl std::fmt::Debug for MasterKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("MasterKeys").field("ids", &ids).finish()
    }
}

impl MasterKeys {
    /// `ATOLL_MASTER_KEY`: either 64 hex chars (key id "k1") or a comma list
    /// `id:hex64,id2:hex64` whose first entry encrypts and all decrypt.
    ///
    /// Ids are 1 to 32 of `A-Z a-z 0-9 _ -` and unique. Whitespace around entries is
    /// ignored. Error messages name the entry by position, never echo its key.
    pub fn parse(spec: &str) -> Result<MasterKeys, SecretError> {
        let bad = |m: String| SecretError::BadSpec(m);
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(bad(
                "is empty; expected 64 hex characters (32 random bytes) or id:hex64,...".into(),
            ));
        }
        let mut keys: Vec<(String, Aes256Gcm)> = Vec::new();
        if !spec.contains(':') && !spec.contains(',') {
            let cipher = cipher(spec).map_err(|why| bad(format!("the key {why}")))?;
            keys.push((DEFAULT_KEY_ID.to_owned(), cipher));
            return Ok(MasterKeys { keys });
        }
        for (i, entry) in spec.split(',').map(str::trim).enumerate() {
            let n = i + 1;
            let Some((id, hex_key)) = entry.split_once(':') else {
                return Err(bad(format!("entry {n} is not id:hex64")));
            };
            let id = id.trim();
            let id_ok = !id.is_empty()
                && id.len() <= 32
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !id_ok {
                return Err(bad(format!(
                    "entry {n}: key ids are 1 to 32 of A-Z, a-z, 0-9, '_', '-'"
                )));
            }
            if keys.iter().any(|(existing, _)| existing == id) {
                return Err(bad(format!("key id '{id}' appears twice")));
            }
            let cipher = cipher(hex_key.trim()).map_err(|why| bad(format!("key '{id}' {why}")))?;
            keys.push((id.to_owned(), cipher));
        }
        Ok(MasterKeys { keys })
    }

    /// The id new seals carry.
    pub fn current_key_id(&self) -> &str {
        &self.keys[0].0
    }

    /// Encrypts `plaintext` under the current key with a fresh random 96-bit nonce, bound
    /// to `aad`. Random nonces are safe for well under 2^32 seals per key.
    pub fn seal(&self, plaintext: &[u8], aad: &str) -> Result<String, SecretError> {
        let (id, cipher) = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::getrandom(&mut nonce)
            .map_err(|e| SecretError::Seal(format!("no randomness for the nonce: {e}")))?;
        let bound = bound_aad(id, aad);
        let ciphertext = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: bound.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Seal("plaintext too long".into()))?;
        Ok(format!(
            "{VERSION}.{id}.{}.{}",
            URL_SAFE_NO_PAD.encode(nonce),
            URL_SAFE_NO_PAD.encode(ciphertext)
        ))
    }

    /// Decrypts what [`seal`](Self::seal) produced with the same `aad`.
    pub fn open(&self, sealed: &str, aad: &str) -> Result<Vec<u8>, SecretError> {
        let (id, nonce, ciphertext) = split(sealed)?;
        let (_, cipher) = self
            .keys
            .iter()
            .find(|(k, _)| k == id)
            .ok_or_else(|| SecretError::UnknownKey(id.to_owned()))?;
        let bound = bound_aad(id, aad);
        cipher
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad: bound.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Tampered)
    }

    /// True when `sealed` is under the current key (false: re-seal it when rotating).
    pub fn is_current(&self, sealed: &str) -> bool {
        split(sealed).is_ok_and(|(id, _, _)| id == self.current_key_id())
    }
}

/// Authenticated with the ciphertext. Unambiguous: the id contains no '.'.
fn bound_aad(key_id: &str, aad: &str) -> String {
    format!("{VERSION}.{key_id}.{aad}")
}

/// `(key id, nonce, ciphertext with tag)` of a sealed value.
fn split(sealed: &str) -> Result<(&str, [u8; NONCE_LEN], Vec<u8>), SecretError> {
    let mut parts = sealed.split('.');
    let (Some(VERSION), Some(id), Some(nonce), Some(ciphertext), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(SecretError::Malformed);
    };
    let nonce: [u8; NONCE_LEN] = URL_SAFE_NO_PAD
        .decode(nonce)
        .ok()
        .and_then(|n| n.try_into().ok())
        .ok_or(SecretError::Malformed)?;
    let ciphertext = URL_SAFE_NO_PAD
        .decode(ciphertext)
        .map_err(|_| SecretError::Malformed)?;
    if ciphertext.len() < TAG_LEN || id.is_empty() {
        return Err(SecretError::Malformed);
    }
    Ok((id, nonce, ciphertext))
}

/// A cipher from 64 hex characters; the error says what is wrong, not what was given.
fn cipher(hex_key: &str) -> Result<Aes256Gcm, &'static str> {
    if hex_key.len() != 64 {
        return Err("is not 64 hex characters (32 bytes)");
    }
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(hex_key, &mut bytes).map_err(|_| "is not hexadecimal")?;
    if bytes.iter().all(|b| *b == bytes[0]) {
        return Err("is one byte repeated, a placeholder rather than a random key");
    }
    Ok(Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes)))
}

#[cfg(test)]
#[path = "secrets_tests.rs"]
mod tests;
