//! Newtypes for secret material.
//!
//! These types exist so that secrets are handled differently from ordinary data by
//! construction rather than by discipline:
//!
//! * their memory is overwritten with zeros when they are dropped, so plaintext
//!   does not linger in freed heap or stack memory longer than necessary;
//! * they implement `Debug` by hand and print only `[REDACTED]` (not even the
//!   length), so a stray `{:?}` in a log line cannot leak a secret;
//! * they implement neither `Display` nor `serde::Serialize`, so turning a secret
//!   into text or JSON always requires an explicit, greppable `expose_secret()`;
//! * equality is computed in constant time with `subtle`, so comparing a guess
//!   against a secret does not reveal how many leading bytes matched.
//!
//! Zeroizing on drop cannot erase copies made earlier by moves of the value or by
//! code that reads `expose_secret()`; it narrows the exposure window, it does not
//! close it.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::aead::CryptoError;
use crate::random;

/// Text that prints in debug output in place of any secret.
const REDACTED: &str = "[REDACTED]";

/// A variable-length byte string that is secret.
#[derive(Clone)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Takes ownership of `bytes`; they are zeroized when this value is dropped.
    #[must_use]
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Gives read access to the secret. Keep the borrow short and do not copy the
    /// bytes into buffers that are not zeroized.
    #[must_use]
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes. Lengths are not treated as secret.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Compares two secrets in time that depends only on their lengths.
    #[must_use]
    pub fn ct_eq(&self, other: &Self) -> bool {
        self.0.as_slice().ct_eq(other.0.as_slice()).into()
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(bytes: Vec<u8>) -> Self {
        Self::new(bytes)
    }
}

impl PartialEq for SecretBytes {
    /// Constant-time comparison; see [`SecretBytes::ct_eq`].
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other)
    }
}

impl Eq for SecretBytes {}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// A UTF-8 string that is secret, such as an API token or an encoded key share.
#[derive(Clone)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    /// Takes ownership of `s`; it is zeroized when this value is dropped.
    #[must_use]
    pub fn new(s: String) -> Self {
        Self(Zeroizing::new(s))
    }

    /// Gives read access to the secret. Keep the borrow short.
    #[must_use]
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// Length in bytes. Lengths are not treated as secret.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Compares two secrets in time that depends only on their lengths.
    #[must_use]
    pub fn ct_eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl From<String> for SecretString {
    fn from(s: String) -> Self {
        Self::new(s)
    }
}

impl From<&str> for SecretString {
    fn from(s: &str) -> Self {
        Self::new(s.to_owned())
    }
}

impl PartialEq for SecretString {
    /// Constant-time comparison; see [`SecretString::ct_eq`].
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other)
    }
}

impl Eq for SecretString {}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// A 256-bit symmetric key.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Key256([u8; 32]);

impl Key256 {
    /// Length of the key in bytes.
    pub const LEN: usize = 32;

    /// Generates a fresh key from the operating system's CSPRNG.
    ///
    /// The key is generated in place so that no other copy of it is left behind.
    #[must_use]
    pub fn random() -> Self {
        let mut key = Self([0u8; 32]);
        random::fill(&mut key.0);
        key
    }

    /// Wraps existing key bytes. The caller's array is a separate copy and remains
    /// the caller's responsibility to zeroize.
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Copies a key out of a slice.
    ///
    /// # Errors
    ///
    /// Returns [`CryptoError::Malformed`] unless `bytes` is exactly 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, CryptoError> {
        if bytes.len() != Self::LEN {
            return Err(CryptoError::Malformed);
        }
        // Copy straight into the final value rather than through a temporary
        // array, so the only copy we create is the one that will be zeroized.
        let mut key = Self([0u8; 32]);
        key.0.copy_from_slice(bytes);
        Ok(key)
    }

    /// Generates a fresh key directly on the heap.
    ///
    /// Long-lived keys are kept boxed so that moving their owner (for example when
    /// a map rebalances) moves only a pointer and leaves no stale key copies.
    pub(crate) fn random_boxed() -> Box<Self> {
        let mut key = Box::new(Self([0u8; 32]));
        random::fill(&mut key.0);
        key
    }

    /// Like [`Key256::from_slice`], but builds the key directly on the heap.
    pub(crate) fn from_slice_boxed(bytes: &[u8]) -> Result<Box<Self>, CryptoError> {
        if bytes.len() != Self::LEN {
            return Err(CryptoError::Malformed);
        }
        let mut key = Box::new(Self([0u8; 32]));
        key.0.copy_from_slice(bytes);
        Ok(key)
    }

    /// Gives read access to the key bytes.
    #[must_use]
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.0
    }

    /// Compares two keys in constant time.
    #[must_use]
    pub fn ct_eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl PartialEq for Key256 {
    /// Constant-time comparison; see [`Key256::ct_eq`].
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other)
    }
}

impl Eq for Key256 {}

impl fmt::Debug for Key256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn debug_is_redacted_without_length() {
        let cases: Vec<String> = vec![
            format!("{:?}", SecretBytes::new(b"hunter2".to_vec())),
            format!("{:?}", SecretBytes::new(Vec::new())),
            format!("{:?}", SecretString::from("hunter2")),
            format!("{:#?}", SecretString::from(String::from("hunter2"))),
            format!("{:?}", Key256::from_bytes([0x41; 32])),
        ];
        for printed in cases {
            assert_eq!(printed, "[REDACTED]");
        }
    }

    #[test]
    fn accessors() {
        let b = SecretBytes::new(vec![1, 2, 3]);
        assert_eq!(b.expose_secret(), &[1, 2, 3]);
        assert_eq!(b.len(), 3);
        assert!(!b.is_empty());
        assert!(SecretBytes::from(Vec::new()).is_empty());

        let s = SecretString::from("abc");
        assert_eq!(s.expose_secret(), "abc");
        assert_eq!(s.len(), 3);
        assert!(!s.is_empty());
        assert!(SecretString::from("").is_empty());
    }

    #[test]
    fn equality_cases() {
        // (left, right, expected equal)
        let cases: &[(&[u8], &[u8], bool)] = &[
            (b"", b"", true),
            (b"a", b"a", true),
            (b"abc", b"abd", false),
            (b"abc", b"ab", false),
            (b"", b"x", false),
            (b"xbc", b"abc", false),
        ];
        for &(l, r, want) in cases {
            let (bl, br) = (SecretBytes::new(l.to_vec()), SecretBytes::new(r.to_vec()));
            assert_eq!(bl.ct_eq(&br), want, "{l:?} vs {r:?}");
            assert_eq!(bl == br, want);
            let (sl, sr) = (
                SecretString::new(String::from_utf8(l.to_vec()).unwrap()),
                SecretString::new(String::from_utf8(r.to_vec()).unwrap()),
            );
            assert_eq!(sl.ct_eq(&sr), want);
            assert_eq!(sl == sr, want);
        }
    }

    #[test]
    fn key_from_slice_checks_length() {
        for len in [0usize, 1, 16, 31, 33, 64] {
            assert_eq!(
                Key256::from_slice(&vec![7u8; len]).unwrap_err(),
                CryptoError::Malformed
            );
        }
        let k = Key256::from_slice(&[7u8; 32]).unwrap();
        assert_eq!(k.expose_secret(), &[7u8; 32]);
        assert_eq!(k, Key256::from_bytes([7u8; 32]));
        assert_ne!(k, Key256::from_bytes([8u8; 32]));
    }

    #[test]
    fn random_keys_differ_and_clone_equal() {
        let a = Key256::random();
        let b = Key256::random();
        assert!(!a.ct_eq(&b));
        assert!(a.clone().ct_eq(&a));
    }

    #[test]
    fn zeroize_clears_key() {
        // Drop-time zeroizing cannot be observed without unsafe code, so check the
        // same `Zeroize` implementation that the drop glue calls.
        let mut k = Key256::from_bytes([0xAA; 32]);
        k.zeroize();
        assert_eq!(k.expose_secret(), &[0u8; 32]);
    }

    proptest! {
        #[test]
        fn ct_eq_matches_plain_eq(a in proptest::collection::vec(any::<u8>(), 0..64),
                                  b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let want = a == b;
            prop_assert_eq!(SecretBytes::new(a.clone()).ct_eq(&SecretBytes::new(b.clone())), want);
            prop_assert!(SecretBytes::new(a.clone()).ct_eq(&SecretBytes::new(a)));
        }
    }
}
