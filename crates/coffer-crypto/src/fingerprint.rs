//! Keyed fingerprints of secret values: how a scanner finds values coffer
//! stores without ever holding them.
//!
//! The server draws a fresh [`FingerprintKey`] for each request and hands
//! it out with two things per stored value (each derived from the value by
//! HMAC-SHA256 under that key, domain-separated):
//!
//! * its **tag** ([`FingerprintKey::tag`]): the scanner tags every candidate
//!   string it finds in a file the same way and looks the tag up in the set
//!   of tags. The set is sorted and holds each tag once, so it says nothing
//!   about which secret a tag belongs to, nor which secrets share a value.
//! * its **label** ([`label`]), keyed by the value's *name key*
//!   ([`FingerprintKey::name_key`], a second HMAC of the value that the
//!   response never contains) over the secret's path, version, field and
//!   part. Only a holder of the value can compute the name key, so only a
//!   scanner that found the value in a file can tell which secret it is;
//!   two secrets holding one value have unrelated labels.
//!
//! Both are plain HMAC-SHA256 (no slow hash): anyone holding the response
//! can test guesses offline at HMAC speed, which is why the server
//! fingerprints only values whose estimated guessing work makes that
//! hopeless (see `coffer_core::fingerprint`). The per-request key keeps
//! tags from being computed ahead of time or compared across requests or
//! servers.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::Key256;

const PREFIX: &[u8] = b"coffer.fingerprint.v1\0";

/// A fingerprinting key: fresh per request on the server, received with
/// the fingerprints by a scanner. Not a long-term secret, but never logged
/// or audited (with it, the tags of guessed values can be checked).
pub struct FingerprintKey(Key256);

impl FingerprintKey {
    /// A fresh key from the operating system's random source.
    #[must_use]
    pub fn random() -> FingerprintKey {
        FingerprintKey(Key256::random())
    }

    /// The key a server sent (32 bytes).
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> FingerprintKey {
        FingerprintKey(Key256::from_bytes(bytes))
    }

    /// The key's bytes, to send to the scanner.
    #[must_use]
    pub fn expose_secret(&self) -> &[u8; 32] {
        self.0.expose_secret()
    }

    /// The tag of a value (or of a candidate string found in a file).
    #[must_use]
    pub fn tag(&self, value: &[u8]) -> [u8; 32] {
        mac(self.0.expose_secret(), b"tag", &[value])
    }

    /// The key that labels a value's secrets; never sent.
    #[must_use]
    pub fn name_key(&self, value: &[u8]) -> [u8; 32] {
        mac(self.0.expose_secret(), b"name", &[value])
    }
}

// Hand-written: the key is never printed.
impl std::fmt::Debug for FingerprintKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FingerprintKey([REDACTED])")
    }
}

/// The label of one place a value is stored: its path, version, field (or
/// the empty string for a text value) and part (`value` or `line`), under
/// the value's name key.
#[must_use]
pub fn label(name_key: &[u8; 32], path: &str, version: u64, field: &str, part: &str) -> [u8; 32] {
    mac(
        name_key,
        b"label",
        &[
            path.as_bytes(),
            &version.to_be_bytes(),
            field.as_bytes(),
            part.as_bytes(),
        ],
    )
}

/// HMAC-SHA256 under `key` of the prefix, a use and length-prefixed parts,
/// so that no two uses or splits of the parts collide.
fn mac(key: &[u8], use_: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(PREFIX);
    mac.update(&(use_.len() as u64).to_be_bytes());
    mac.update(use_);
    for part in parts {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_depend_on_key_and_value_only() {
        let k = FingerprintKey::from_bytes([7; 32]);
        let again = FingerprintKey::from_bytes([7; 32]);
        let other = FingerprintKey::from_bytes([8; 32]);
        assert_eq!(k.tag(b"value"), again.tag(b"value"));
        assert_ne!(k.tag(b"value"), other.tag(b"value"));
        assert_ne!(k.tag(b"value"), k.tag(b"value2"));
        // The tag is not the name key: the response's tags never give the
        // key that labels a value's secrets.
        assert_ne!(k.tag(b"value"), k.name_key(b"value"));
        assert_ne!(FingerprintKey::random().tag(b"v"), k.tag(b"v"));
    }

    #[test]
    fn labels_separate_every_part() {
        let n = FingerprintKey::from_bytes([1; 32]).name_key(b"v");
        let base = label(&n, "app/dev/K", 1, "", "value");
        assert_eq!(base, label(&n, "app/dev/K", 1, "", "value"));
        assert_ne!(base, label(&n, "app/dev/K", 2, "", "value"));
        assert_ne!(base, label(&n, "app/dev/L", 1, "", "value"));
        assert_ne!(base, label(&n, "app/dev/K", 1, "", "line"));
        assert_ne!(base, label(&n, "app/dev/K", 1, "f", "value"));
        // Moving bytes between parts changes the label.
        assert_ne!(label(&n, "a", 1, "bc", "x"), label(&n, "ab", 1, "c", "x"));
        let m = FingerprintKey::from_bytes([1; 32]).name_key(b"w");
        assert_ne!(base, label(&m, "app/dev/K", 1, "", "value"));
    }

    #[test]
    fn the_key_does_not_print() {
        let k = FingerprintKey::from_bytes([0xab; 32]);
        assert_eq!(format!("{k:?}"), "FingerprintKey([REDACTED])");
    }
}
