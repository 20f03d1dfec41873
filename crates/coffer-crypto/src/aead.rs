//! Authenticated encryption with AES-256-GCM.
//!
//! Every sealed blob in Coffer has the layout `nonce (12) || ciphertext || tag (16)`,
//! so the nonce travels with the ciphertext and nothing else has to be stored.
//!
//! Each call to [`seal`] draws a fresh 96-bit nonce from the operating system.
//! GCM is catastrophically broken by nonce reuse under one key, and a counter
//! would need persistent state that survives crashes and restores from backup;
//! random nonces avoid that state at the cost of a birthday bound (about 2^32
//! messages per key for a 2^-32 collision chance), which is why the keyring
//! supports rotation.
//!
//! The associated data (AAD) is authenticated but not encrypted. Callers use it to
//! bind a ciphertext to where it belongs (path, version, key id), so that a blob
//! copied to another place fails to open instead of being accepted.

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{A_MAX, Aes256Gcm, Key, KeyInit, Nonce, P_MAX, Tag};
use zeroize::Zeroizing;

use crate::random;
use crate::secret::{Key256, SecretBytes};

/// Errors from this crate.
///
/// The variants are deliberately coarse: in particular every failure to open a
/// ciphertext is the same [`CryptoError::Decrypt`], so that an attacker probing
/// with modified ciphertexts learns nothing about which check failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum CryptoError {
    /// Any AEAD open failure: tampering, wrong key, wrong AAD or truncation.
    #[error("decryption failed")]
    Decrypt,
    /// Bad lengths, bad encodings or a bad share.
    #[error("malformed key material")]
    Malformed,
    /// A ciphertext names a key id that the keyring does not hold.
    #[error("unknown key id {0}")]
    UnknownKey(u32),
    /// Shamir split parameters out of range.
    #[error("invalid Shamir parameters: {0}")]
    ShamirParams(&'static str),
    /// Shamir shares that cannot be combined (duplicate x, inconsistent lengths, none).
    #[error("shares do not combine: {0}")]
    Shares(&'static str),
}

/// Length of the random nonce prepended to every sealed blob.
pub const NONCE_LEN: usize = 12;

/// Length of the GCM authentication tag appended to every sealed blob.
pub const TAG_LEN: usize = 16;

/// Bytes that [`seal`] adds to the plaintext length.
pub const OVERHEAD: usize = 28;

// Keep the public constant honest if someone changes one of the parts.
const _: () = assert!(OVERHEAD == NONCE_LEN + TAG_LEN);

pub(crate) fn cipher(key: &Key256) -> Aes256Gcm {
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key.expose_secret()))
}

/// Encrypts and authenticates `plaintext`, also authenticating `aad`.
///
/// Returns `nonce || ciphertext || tag`, which is `plaintext.len() + OVERHEAD`
/// bytes long.
///
/// # Panics
///
/// Panics if `plaintext` or `aad` exceeds the GCM limit of 2^36 bytes (64 GiB),
/// or if the operating system cannot supply randomness for the nonce. Neither can
/// happen for inputs Coffer handles, and a panic is safer than returning an
/// unsealed buffer.
#[must_use]
pub fn seal(key: &Key256, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    seal_with(&cipher(key), aad, plaintext)
}

/// [`seal`] with an already expanded cipher.
pub(crate) fn seal_with(cipher: &Aes256Gcm, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    // Check the limits before copying the plaintext into the output buffer, so the
    // encryption below cannot fail and leave a plaintext copy in a dropped Vec.
    assert!(
        plaintext.len() as u64 <= P_MAX && aad.len() as u64 <= A_MAX,
        "input exceeds the AES-GCM length limit"
    );
    let nonce: [u8; NONCE_LEN] = random::bytes();

    // Reserve the exact final size up front; a reallocation would leave an
    // unzeroized copy of the plaintext in freed memory.
    let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let tag = match cipher.encrypt_in_place_detached(
        Nonce::from_slice(&nonce),
        aad,
        &mut out[NONCE_LEN..],
    ) {
        Ok(tag) => tag,
        // The only error aes-gcm reports is the length limit checked above.
        Err(_) => unreachable!("AES-GCM length limits were checked before encrypting"),
    };
    out.extend_from_slice(&tag);
    out
}

/// Verifies and decrypts a blob produced by [`seal`] with the same key and AAD.
///
/// # Errors
///
/// Returns [`CryptoError::Decrypt`] for every failure: input shorter than
/// [`OVERHEAD`], any modified byte, the wrong key or the wrong AAD.
pub fn open(key: &Key256, aad: &[u8], sealed: &[u8]) -> Result<SecretBytes, CryptoError> {
    open_with(&cipher(key), aad, sealed)
}

/// [`open`] with an already expanded cipher.
pub(crate) fn open_with(
    cipher: &Aes256Gcm,
    aad: &[u8],
    sealed: &[u8],
) -> Result<SecretBytes, CryptoError> {
    if sealed.len() < OVERHEAD {
        return Err(CryptoError::Decrypt);
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);

    // Decrypt in a zeroizing buffer: the plaintext only leaves it, by a move into
    // `SecretBytes`, once the tag has been verified.
    let mut buf = Zeroizing::new(ciphertext.to_vec());
    cipher
        .decrypt_in_place_detached(
            Nonce::from_slice(nonce),
            aad,
            &mut buf,
            Tag::from_slice(tag),
        )
        .map_err(|_| CryptoError::Decrypt)?;
    Ok(SecretBytes::new(std::mem::take(&mut *buf)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn round_trip_various_lengths() {
        let key = Key256::random();
        for len in [0usize, 1, 15, 16, 17, 31, 32, 33, 255, 1000, 4096] {
            for aad in [&b""[..], b"a", b"coffer.secret.v1\0"] {
                let plaintext: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
                let sealed = seal(&key, aad, &plaintext);
                assert_eq!(sealed.len(), len + OVERHEAD);
                let opened = open(&key, aad, &sealed).unwrap();
                assert_eq!(opened.expose_secret(), &plaintext[..]);
            }
        }
    }

    #[test]
    fn nist_known_answer() {
        // NIST CAVP gcmEncryptExtIV256.rsp vector with plaintext and AAD; checks
        // that our nonce || ciphertext || tag layout matches the standard.
        let key = Key256::from_slice(&hex(
            "92e11dcdaa866f5ce790fd24501f92509aacf4cb8b1339d50c9c1240935dd08b",
        ))
        .unwrap();
        let nonce = hex("ac93a1a6145299bde902f21a");
        let plaintext = hex("2d71bcfa914e4ac045b2aa60955fad24");
        let aad = hex("1e0889016f67601c8ebea4943bc23ad6");
        let ciphertext = hex("8995ae2e6df3dbf96fac7b7137bae67f");
        let tag = hex("eca5aa77d51d4a0a14d9c51e1da474ab");
        let sealed = [nonce, ciphertext, tag].concat();
        assert_eq!(
            open(&key, &aad, &sealed).unwrap().expose_secret(),
            &plaintext[..]
        );
    }

    #[test]
    fn every_flipped_byte_fails() {
        let key = Key256::random();
        let sealed = seal(&key, b"aad", b"short secret");
        for pos in 0..sealed.len() {
            for mask in [0x01u8, 0x80, 0xff] {
                let mut tampered = sealed.clone();
                tampered[pos] ^= mask;
                assert_eq!(
                    open(&key, b"aad", &tampered).unwrap_err(),
                    CryptoError::Decrypt,
                    "flip {mask:#x} at {pos}"
                );
            }
        }
    }

    #[test]
    fn wrong_aad_fails() {
        let key = Key256::random();
        let sealed = seal(&key, b"path/a", b"value");
        for aad in [&b""[..], b"path/b", b"path/a\0", b"path/", b"PATH/A"] {
            assert_eq!(open(&key, aad, &sealed).unwrap_err(), CryptoError::Decrypt);
        }
    }

    #[test]
    fn wrong_key_fails() {
        let key = Key256::random();
        let sealed = seal(&key, b"", b"value");
        for other in [Key256::random(), Key256::from_bytes([0; 32])] {
            assert_eq!(
                open(&other, b"", &sealed).unwrap_err(),
                CryptoError::Decrypt
            );
        }
    }

    #[test]
    fn truncated_or_extended_fails() {
        let key = Key256::random();
        let sealed = seal(&key, b"", b"value");
        for len in 0..sealed.len() {
            assert_eq!(
                open(&key, b"", &sealed[..len]).unwrap_err(),
                CryptoError::Decrypt,
                "prefix of length {len}"
            );
            assert_eq!(
                open(&key, b"", &sealed[sealed.len() - len..]).unwrap_err(),
                CryptoError::Decrypt,
                "suffix of length {len}"
            );
        }
        let mut extended = sealed.clone();
        extended.push(0);
        assert_eq!(
            open(&key, b"", &extended).unwrap_err(),
            CryptoError::Decrypt
        );
    }

    #[test]
    fn empty_plaintext_is_still_authenticated() {
        let key = Key256::random();
        let sealed = seal(&key, b"x", b"");
        assert_eq!(sealed.len(), OVERHEAD);
        assert!(open(&key, b"x", &sealed).unwrap().is_empty());
        assert_eq!(open(&key, b"y", &sealed).unwrap_err(), CryptoError::Decrypt);
    }

    #[test]
    fn seals_of_same_plaintext_differ() {
        let key = Key256::random();
        let a = seal(&key, b"", b"same");
        let b = seal(&key, b"", b"same");
        assert_ne!(a[..NONCE_LEN], b[..NONCE_LEN]);
        assert_ne!(a, b);
    }

    proptest! {
        #[test]
        fn prop_round_trip(plaintext in proptest::collection::vec(any::<u8>(), 0..300),
                           aad in proptest::collection::vec(any::<u8>(), 0..64)) {
            let key = Key256::random();
            let sealed = seal(&key, &aad, &plaintext);
            prop_assert_eq!(open(&key, &aad, &sealed).unwrap().expose_secret().to_vec(), plaintext);
        }

        #[test]
        fn prop_garbage_never_opens(garbage in proptest::collection::vec(any::<u8>(), 0..100)) {
            let key = Key256::random();
            prop_assert_eq!(open(&key, b"", &garbage).unwrap_err(), CryptoError::Decrypt);
        }
    }
}
