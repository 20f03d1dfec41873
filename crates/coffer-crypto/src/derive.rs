//! Keys derived from a high-entropy secret the caller already holds.
//!
//! The client's offline cache is encrypted under a key derived from the
//! token that fetched it, so only a holder of that token can open it and
//! nothing new has to be stored. A token carries 256 bits from the
//! operating system's CSPRNG, so one HMAC-SHA256 (the extract step of HKDF)
//! is a sound key derivation; each use is domain-separated by a label.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::Key256;

const PREFIX: &[u8] = b"coffer.derive.v1\0";

/// HMAC-SHA256 keyed by `secret` over the label and the context, each
/// length-prefixed so that no two (label, context) pairs collide.
fn mac(secret: &[u8], label: &str, context: &[u8]) -> [u8; 32] {
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(PREFIX);
    for part in [label.as_bytes(), context] {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// A 256-bit key for `label` (a fixed string naming the use) and `context`.
#[must_use]
pub fn key(secret: &[u8], label: &str, context: &[u8]) -> Key256 {
    Key256::from_bytes(mac(secret, label, context))
}

/// A public identifier for `context` that reveals nothing about it or the
/// secret (for example a cache file name), as 64 hex digits.
#[must_use]
pub fn id(secret: &[u8], label: &str, context: &[u8]) -> String {
    mac(secret, label, context)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_contexts_and_secrets_separate() {
        let k = |s: &[u8], l: &str, c: &[u8]| *key(s, l, c).expose_secret();
        let base = k(b"secret", "a", b"ctx");
        assert_eq!(base, k(b"secret", "a", b"ctx"));
        assert_ne!(base, k(b"secret2", "a", b"ctx"));
        assert_ne!(base, k(b"secret", "b", b"ctx"));
        assert_ne!(base, k(b"secret", "a", b"ctx2"));
        // Length prefixes: moving a byte between label and context changes the key.
        assert_ne!(k(b"s", "ab", b"c"), k(b"s", "a", b"bc"));
        let i = id(b"secret", "a", b"ctx");
        assert_eq!(i.len(), 64);
        assert!(i.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(i, id(b"secret", "b", b"ctx"));
    }
}
