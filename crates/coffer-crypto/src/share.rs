//! One-time share links, sealed on the client.
//!
//! A share link is `https://HOST/s/ID#KEY`. The server stores only what
//! [`seal`] returns and the link's non-secret metadata; the key lives in the
//! URL fragment, which browsers never send, so the server cannot read a
//! shared value. The same construction is implemented with WebCrypto in
//! the server's `share.js`; the two must stay byte-for-byte compatible
//! (the end-to-end tests open each side's links with the other).
//!
//! - **ID**: 128 random bits, base64url without padding (22 characters),
//!   chosen by the creating client from the operating system's CSPRNG so
//!   that the ciphertext can be bound to it; the server refuses an id that
//!   is taken or malformed.
//! - **KEY**: 256 random bits, base64url without padding (43 characters).
//! - **Content key**: HKDF-SHA256 over KEY (info `coffer-share-v1/key`).
//!   With a passphrase, PBKDF2-HMAC-SHA256 over the passphrase (UTF-8 as
//!   typed) with a random 128-bit salt and [`PBKDF2_ITERATIONS`] rounds
//!   gives 256 bits P, and the content key is HKDF-SHA256 over KEY ‖ P
//!   with the salt (info `coffer-share-v1/passphrase`): the link alone or
//!   the passphrase alone opens nothing. PBKDF2 rather than Argon2 because
//!   browsers offer only PBKDF2 and HKDF.
//! - **Sealing**: AES-256-GCM, a random 96-bit nonce, associated data
//!   `coffer-share-v1\nID\nnone` (or `\npassphrase`), so a ciphertext
//!   served under another link's id, or with its passphrase flag flipped,
//!   fails to open. The sealed form is nonce ‖ ciphertext ‖ tag.
//!
//! Errors are coarse on purpose: a wrong key, a wrong passphrase, a
//! tampered ciphertext and a swapped id are all [`ShareError::Open`].

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use crate::SecretString;
use crate::random;

/// Bytes of a share id.
pub const ID_BYTES: usize = 16;
/// Bytes of a link key.
pub const KEY_BYTES: usize = 32;
/// Bytes of a passphrase salt.
pub const SALT_BYTES: usize = 16;
/// Bytes of an AES-GCM nonce.
pub const NONCE_BYTES: usize = 12;
/// Bytes of an AES-GCM tag.
pub const TAG_BYTES: usize = 16;
/// PBKDF2 rounds for a new passphrase share (OWASP's 2023 figure for
/// PBKDF2-HMAC-SHA256).
pub const PBKDF2_ITERATIONS: u32 = 600_000;
/// The fewest rounds an opener accepts (a server could otherwise make a
/// passphrase cheap to guess by lowering the count it hands out).
pub const MIN_PBKDF2_ITERATIONS: u32 = 600_000;
/// The most rounds an opener will spend.
pub const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;

const VERSION: &str = "coffer-share-v1";

/// Why a share could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShareError {
    /// The link, key, salt or sealed bytes are not of the right shape.
    #[error("malformed share link or data")]
    Malformed,
    /// Decryption failed: wrong key or passphrase, or tampered data.
    #[error("the share could not be decrypted (wrong link or passphrase, or the data was altered)")]
    Open,
}

/// A link key: 256 bits, never sent to the server. No `Debug`; wiped on
/// drop.
pub struct ShareKey(Zeroizing<[u8; KEY_BYTES]>);

impl ShareKey {
    /// A new random key.
    #[must_use]
    pub fn generate() -> ShareKey {
        let mut k = Zeroizing::new([0u8; KEY_BYTES]);
        random::fill(&mut k[..]);
        ShareKey(k)
    }

    /// The key from a link's fragment (base64url, no padding).
    pub fn from_fragment(fragment: &str) -> Result<ShareKey, ShareError> {
        let bytes = Zeroizing::new(decode(fragment)?);
        let arr: [u8; KEY_BYTES] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| ShareError::Malformed)?;
        Ok(ShareKey(Zeroizing::new(arr)))
    }

    /// The key as a link's fragment.
    #[must_use]
    pub fn to_fragment(&self) -> SecretString {
        SecretString::new(URL_SAFE_NO_PAD.encode(&self.0[..]))
    }
}

/// The passphrase parameters stored with a share (not secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kdf {
    /// The PBKDF2 salt.
    pub salt: [u8; SALT_BYTES],
    /// PBKDF2 rounds.
    pub iterations: u32,
}

impl Kdf {
    /// Fresh parameters for a new share.
    #[must_use]
    pub fn generate() -> Kdf {
        Kdf {
            salt: random::bytes(),
            iterations: PBKDF2_ITERATIONS,
        }
    }
}

/// A new random share id.
#[must_use]
pub fn new_id() -> String {
    URL_SAFE_NO_PAD.encode(random::bytes::<ID_BYTES>())
}

/// Whether `id` is a share id: exactly 22 base64url characters that
/// decode to 16 bytes (canonically: the last character's unused bits are 0).
#[must_use]
pub fn is_id(id: &str) -> bool {
    id.len() == 22 && decode(id).is_ok_and(|b| b.len() == ID_BYTES && encode(&b) == id)
}

/// Base64url without padding, the encoding of every binary share field.
#[must_use]
pub fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url without padding; anything else is malformed.
pub fn decode(text: &str) -> Result<Vec<u8>, ShareError> {
    URL_SAFE_NO_PAD
        .decode(text.as_bytes())
        .map_err(|_| ShareError::Malformed)
}

fn associated_data(id: &str, passphrase: bool) -> Vec<u8> {
    format!(
        "{VERSION}\n{id}\n{}",
        if passphrase { "passphrase" } else { "none" }
    )
    .into_bytes()
}

fn content_key(
    key: &ShareKey,
    passphrase: Option<(&str, &Kdf)>,
) -> Result<Zeroizing<[u8; 32]>, ShareError> {
    let mut out = Zeroizing::new([0u8; 32]);
    match passphrase {
        None => {
            Hkdf::<Sha256>::new(None, &key.0[..])
                .expand(format!("{VERSION}/key").as_bytes(), &mut out[..])
                .map_err(|_| ShareError::Malformed)?;
        }
        Some((pass, kdf)) => {
            if !(MIN_PBKDF2_ITERATIONS..=MAX_PBKDF2_ITERATIONS).contains(&kdf.iterations) {
                return Err(ShareError::Malformed);
            }
            let mut ikm = Zeroizing::new([0u8; KEY_BYTES + 32]);
            ikm[..KEY_BYTES].copy_from_slice(&key.0[..]);
            pbkdf2::pbkdf2_hmac::<Sha256>(
                pass.as_bytes(),
                &kdf.salt,
                kdf.iterations,
                &mut ikm[KEY_BYTES..],
            );
            Hkdf::<Sha256>::new(Some(&kdf.salt), &ikm[..])
                .expand(format!("{VERSION}/passphrase").as_bytes(), &mut out[..])
                .map_err(|_| ShareError::Malformed)?;
        }
    }
    Ok(out)
}

/// Seals `plaintext` for the share `id`: nonce ‖ ciphertext ‖ tag.
pub fn seal(
    key: &ShareKey,
    id: &str,
    passphrase: Option<(&str, &Kdf)>,
    plaintext: &[u8],
) -> Result<Vec<u8>, ShareError> {
    let ck = content_key(key, passphrase)?;
    let cipher = Aes256Gcm::new_from_slice(&ck[..]).map_err(|_| ShareError::Malformed)?;
    let nonce = random::bytes::<NONCE_BYTES>();
    let aad = associated_data(id, passphrase.is_some());
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| ShareError::Malformed)?;
    let mut out = Vec::with_capacity(NONCE_BYTES + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Opens what [`seal`] made for the share `id`.
pub fn open(
    key: &ShareKey,
    id: &str,
    passphrase: Option<(&str, &Kdf)>,
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, ShareError> {
    if sealed.len() < NONCE_BYTES + TAG_BYTES {
        return Err(ShareError::Open);
    }
    let ck = content_key(key, passphrase)?;
    let cipher = Aes256Gcm::new_from_slice(&ck[..]).map_err(|_| ShareError::Malformed)?;
    let (nonce, ct) = sealed.split_at(NONCE_BYTES);
    let aad = associated_data(id, passphrase.is_some());
    let mut plain = cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
        .map_err(|_| ShareError::Open)?;
    let out = Zeroizing::new(plain.clone());
    plain.zeroize();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick_kdf() -> Kdf {
        Kdf {
            salt: [7; SALT_BYTES],
            iterations: MIN_PBKDF2_ITERATIONS,
        }
    }

    #[test]
    fn a_sealed_value_opens_with_its_key_and_id_only() {
        let key = ShareKey::generate();
        let id = new_id();
        assert!(is_id(&id));
        let sealed = seal(&key, &id, None, b"hunter2").unwrap();
        assert_eq!(&open(&key, &id, None, &sealed).unwrap()[..], b"hunter2");
        // Another link's id, another key, a flipped bit: one coarse error.
        assert_eq!(
            open(&key, &new_id(), None, &sealed).unwrap_err(),
            ShareError::Open
        );
        assert_eq!(
            open(&ShareKey::generate(), &id, None, &sealed).unwrap_err(),
            ShareError::Open
        );
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert_eq!(open(&key, &id, None, &bad).unwrap_err(), ShareError::Open);
        }
        assert_eq!(
            open(&key, &id, None, &sealed[..20]).unwrap_err(),
            ShareError::Open
        );
    }

    #[test]
    fn a_passphrase_share_needs_both_the_key_and_the_passphrase() {
        let key = ShareKey::generate();
        let id = new_id();
        let kdf = quick_kdf();
        let sealed = seal(&key, &id, Some(("correct horse", &kdf)), b"v").unwrap();
        assert_eq!(
            &open(&key, &id, Some(("correct horse", &kdf)), &sealed).unwrap()[..],
            b"v"
        );
        for pass in [Some(("wrong", &kdf)), None] {
            assert_eq!(
                open(&key, &id, pass, &sealed).unwrap_err(),
                ShareError::Open
            );
        }
        // A server that lowers the rounds it hands out is refused.
        let cheap = Kdf {
            iterations: 1000,
            ..kdf
        };
        assert_eq!(
            open(&key, &id, Some(("correct horse", &cheap)), &sealed).unwrap_err(),
            ShareError::Malformed
        );
    }

    #[test]
    fn fragments_and_ids_are_strict() {
        let key = ShareKey::generate();
        let frag = key.to_fragment();
        assert_eq!(frag.expose_secret().len(), 43);
        let again = ShareKey::from_fragment(frag.expose_secret()).unwrap();
        assert_eq!(again.0[..], key.0[..]);
        for bad in ["", "abc", "a+b/", &"A".repeat(44), "AAAA=="] {
            assert!(ShareKey::from_fragment(bad).is_err(), "{bad}");
        }
        for bad in [
            "",
            "short",
            "AAAAAAAAAAAAAAAAAAAAAB",
            "AAAAAAAAAAAAAAAAAAAA/A",
            "../../../../etc/passwd",
            "AAAAAAAAAAAAAAAAAAAAA\u{202e}",
        ] {
            assert!(!is_id(bad), "{bad}");
        }
        assert!(is_id("AAAAAAAAAAAAAAAAAAAAAA"));
    }

    /// Known answer shared with `share.js`'s construction (computed by this
    /// module; the browser test opens links made by each side).
    #[test]
    fn the_content_key_is_deterministic() {
        let key = ShareKey(Zeroizing::new([1; KEY_BYTES]));
        let a = content_key(&key, None).unwrap();
        let b = content_key(&key, None).unwrap();
        assert_eq!(a[..], b[..]);
        let kdf = quick_kdf();
        let c = content_key(&key, Some(("p", &kdf))).unwrap();
        assert_ne!(a[..], c[..]);
    }
}
