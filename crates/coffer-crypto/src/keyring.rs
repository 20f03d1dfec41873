//! Coffer's key hierarchy and the keyring that seals stored values.
//!
//! The hierarchy has three levels, so that each level can change without
//! re-encrypting everything below it:
//!
//! 1. The **unseal key** ([`UnsealKey`]) exists only outside the server: it is
//!    split into Shamir shares held by operators and reassembled in memory to
//!    unseal. It encrypts only the root key.
//! 2. The **root key** ([`RootKey`]) is stored wrapped by the unseal key. It
//!    encrypts only the keyring, so that rekeying the unseal key means rewrapping
//!    32 bytes.
//! 3. The **keyring** ([`Keyring`]) holds the data keys that seal stored values,
//!    plus two HMAC keys: one for hashing API tokens and one for the audit log.
//!    Rotation adds a new data key and makes it active; old keys stay so existing
//!    values still open.
//!
//! Every seal binds the ciphertext to its context through the AEAD associated data
//! (path, version and key id for values), so a ciphertext moved, replayed under
//! another version or relabelled with another key id fails to open.
//!
//! # Serialized keyring format (version 1)
//!
//! All integers are big-endian. The plaintext is sealed with the root key and the
//! AAD `b"coffer.keyring.v1"`.
//!
//! ```text
//! u8       format version (1)
//! u32      active key id
//! [u8;32]  token HMAC key
//! [u8;32]  audit HMAC key
//! u32      key count (>= 1)
//! count ×  { u32 key id, i64 created (unix seconds), [u8;32] key }
//! ```
//!
//! Parsing is strict so that every keyring has exactly one encoding: no trailing
//! bytes, key ids non-zero and strictly ascending (hence no duplicates), and the
//! active id must be one of them.

use std::collections::BTreeMap;
use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::aead::{self, CryptoError};
use crate::secret::{Key256, SecretBytes};

/// Identifier of a data key in a [`Keyring`]. Ids start at 1 and only grow.
pub type KeyId = u32;

/// AAD for the root key wrapped by the unseal key.
const ROOT_KEY_AAD: &[u8] = b"coffer.root-key.v1";
/// AAD for the keyring wrapped by the root key.
const KEYRING_AAD: &[u8] = b"coffer.keyring.v1";
/// AAD prefix for secret values; followed by key id, version and path.
const SECRET_AAD_PREFIX: &[u8] = b"coffer.secret.v1\0";
/// AAD prefix for generic records; followed by key id, domain and context.
const RECORD_AAD_PREFIX: &[u8] = b"coffer.record.v1\0";
/// Domain-separation prefix for token hashes.
const TOKEN_HASH_PREFIX: &[u8] = b"coffer.token.v1\0";

/// Version byte of the serialized keyring format.
const FORMAT_VERSION: u8 = 1;
/// Bytes before the first key entry: version, active id, two HMAC keys, count.
const HEADER_LEN: usize = 1 + 4 + Key256::LEN + Key256::LEN + 4;
/// Bytes per key entry: id, creation time, key.
const ENTRY_LEN: usize = 4 + 8 + Key256::LEN;

type HmacSha256 = Hmac<Sha256>;

fn keyed_mac(key: &Key256) -> HmacSha256 {
    match <HmacSha256 as Mac>::new_from_slice(key.expose_secret()) {
        Ok(mac) => mac,
        // HMAC accepts keys of any length, so this cannot happen.
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    }
}

fn hmac_sha256(key: &Key256, parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = keyed_mac(key);
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Domain-separation prefixes of the audit log's keyed hashes.
const AUDIT_FIELD_PREFIX: &[u8] = b"coffer.audit.field.v1\0";
const AUDIT_CHAIN_PREFIX: &[u8] = b"coffer.audit.chain.v1\0";
const AUDIT_HEAD_PREFIX: &[u8] = b"coffer.audit.head.v1\0";

/// The audit log's HMAC key: it pseudonymizes sensitive fields (tokens,
/// attempted login names) and links records into a keyed hash chain, so a
/// log cannot be rewritten by anyone who lacks the keyring. The three uses
/// are domain-separated, so an output of one can never stand in for another.
#[derive(Clone)]
pub struct AuditKey(std::sync::Arc<Key256>);

impl AuditKey {
    /// HMAC of a sensitive field value, as it appears in audit records.
    #[must_use]
    pub fn field(&self, value: &[u8]) -> [u8; 32] {
        hmac_sha256(&self.0, &[AUDIT_FIELD_PREFIX, value])
    }

    /// The chain link of a record: a keyed hash of the previous link and the
    /// record's bytes.
    #[must_use]
    pub fn chain(&self, prev: &[u8; 32], record: &[u8]) -> [u8; 32] {
        self.chain_parts(prev, &[record])
    }

    /// [`AuditKey::chain`] of a record given in pieces (the record's bytes
    /// are their concatenation), so that a reader checking a line need not
    /// copy it to put the record together.
    #[must_use]
    pub fn chain_parts(&self, prev: &[u8; 32], record: &[&[u8]]) -> [u8; 32] {
        let mut mac = keyed_mac(&self.0);
        mac.update(AUDIT_CHAIN_PREFIX);
        mac.update(prev);
        for part in record {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// A tag over a log's head (its last sequence number and link), kept
    /// apart from the log so a truncation cannot be passed off as the end.
    #[must_use]
    pub fn head(&self, seq: u64, link: &[u8; 32]) -> [u8; 32] {
        hmac_sha256(&self.0, &[AUDIT_HEAD_PREFIX, &seq.to_be_bytes(), link])
    }
}

/// The key that wraps the [`RootKey`]; reconstructed from Shamir shares to unseal.
pub struct UnsealKey(Key256);

impl UnsealKey {
    /// Generates a fresh unseal key.
    #[must_use]
    pub fn random() -> Self {
        Self(Key256::random())
    }

    /// The key bytes, for splitting into Shamir shares.
    #[must_use]
    pub fn key(&self) -> &Key256 {
        &self.0
    }

    /// Seals the root key under this unseal key.
    #[must_use]
    pub fn wrap_root(&self, root: &RootKey) -> Vec<u8> {
        aead::seal(&self.0, ROOT_KEY_AAD, root.0.expose_secret())
    }

    /// Opens a root key sealed by [`UnsealKey::wrap_root`].
    ///
    /// # Errors
    ///
    /// [`CryptoError::Decrypt`] if this is the wrong unseal key or `wrapped` was
    /// modified; [`CryptoError::Malformed`] if it authenticates but does not hold
    /// a 32-byte key.
    pub fn unwrap_root(&self, wrapped: &[u8]) -> Result<RootKey, CryptoError> {
        let plaintext = aead::open(&self.0, ROOT_KEY_AAD, wrapped)?;
        Ok(RootKey(Key256::from_slice(plaintext.expose_secret())?))
    }
}

impl From<Key256> for UnsealKey {
    fn from(key: Key256) -> Self {
        Self(key)
    }
}

impl fmt::Debug for UnsealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UnsealKey([REDACTED])")
    }
}

/// The key that wraps the [`Keyring`]; itself stored wrapped by the [`UnsealKey`].
pub struct RootKey(Key256);

impl RootKey {
    /// Generates a fresh root key.
    #[must_use]
    pub fn random() -> Self {
        Self(Key256::random())
    }

    /// The key bytes. Needed only by tests and migration tooling.
    #[must_use]
    pub fn key(&self) -> &Key256 {
        &self.0
    }
}

impl From<Key256> for RootKey {
    fn from(key: Key256) -> Self {
        Self(key)
    }
}

impl fmt::Debug for RootKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RootKey([REDACTED])")
    }
}

/// One data key, its expanded cipher, and when it was created.
///
/// The cipher is expanded once per key rather than on every seal and open
/// (reads are the hot path). Its AES round keys and GHASH key are wiped on
/// drop (the `aes` and `polyval` crates' `zeroize` features).
#[derive(Clone)]
struct KeyEntry {
    key: Box<Key256>,
    cipher: Box<aes_gcm::Aes256Gcm>,
    created_unix: i64,
}

impl KeyEntry {
    fn new(key: Box<Key256>, created_unix: i64) -> KeyEntry {
        KeyEntry {
            cipher: Box::new(aead::cipher(&key)),
            key,
            created_unix,
        }
    }
}

/// The set of data keys plus the HMAC keys for token hashes and the audit log.
///
/// All key material is boxed [`Key256`] values, which zeroize themselves on drop.
#[derive(Clone)]
pub struct Keyring {
    keys: BTreeMap<KeyId, KeyEntry>,
    active: KeyId,
    token_key: Box<Key256>,
    audit_key: Box<Key256>,
}

impl Keyring {
    /// Creates a keyring with a single data key, id 1, which is active, and fresh
    /// token and audit HMAC keys.
    #[must_use]
    pub fn generate(now_unix: i64) -> Keyring {
        let mut keys = BTreeMap::new();
        keys.insert(1, KeyEntry::new(Key256::random_boxed(), now_unix));
        Keyring {
            keys,
            active: 1,
            token_key: Key256::random_boxed(),
            audit_key: Key256::random_boxed(),
        }
    }

    /// Adds a new data key with id one greater than the largest existing id, makes
    /// it active and returns its id. Older keys are kept so existing values open.
    ///
    /// # Panics
    ///
    /// Panics if the largest id is already `u32::MAX`, which would take four
    /// billion rotations.
    pub fn rotate(&mut self, now_unix: i64) -> KeyId {
        let max = self.keys.keys().next_back().copied().unwrap_or(0);
        let id = max.checked_add(1).expect("key id space exhausted");
        self.keys
            .insert(id, KeyEntry::new(Key256::random_boxed(), now_unix));
        self.active = id;
        id
    }

    /// The id of the key that new seals use.
    #[must_use]
    pub fn active_id(&self) -> KeyId {
        self.active
    }

    /// All key ids with their creation times, in ascending id order.
    #[must_use]
    pub fn key_ids(&self) -> Vec<(KeyId, i64)> {
        self.keys
            .iter()
            .map(|(&id, entry)| (id, entry.created_unix))
            .collect()
    }

    /// Serializes the keyring and seals it under the root key.
    #[must_use]
    pub fn wrap(&self, root: &RootKey) -> Vec<u8> {
        aead::seal(&root.0, KEYRING_AAD, &self.to_plaintext())
    }

    /// Opens and parses a keyring sealed by [`Keyring::wrap`].
    ///
    /// # Errors
    ///
    /// [`CryptoError::Decrypt`] for the wrong root key or a modified blob;
    /// [`CryptoError::Malformed`] if it authenticates but does not parse.
    pub fn unwrap(root: &RootKey, wrapped: &[u8]) -> Result<Keyring, CryptoError> {
        let plaintext = aead::open(&root.0, KEYRING_AAD, wrapped)?;
        Self::from_plaintext(plaintext.expose_secret())
    }

    /// Seal a secret value with the active key. AAD = `b"coffer.secret.v1\0"` ||
    /// key_id u32 BE || version u64 BE || path bytes.
    ///
    /// The path comes last and everything before it has a fixed length, so the
    /// AAD is unambiguous without a length prefix.
    #[must_use]
    pub fn seal_value(&self, path: &str, version: u64, plaintext: &[u8]) -> (KeyId, Vec<u8>) {
        let id = self.active;
        let aad = value_aad(id, version, path);
        (id, aead::seal_with(self.active_cipher(), &aad, plaintext))
    }

    /// Opens a value sealed by [`Keyring::seal_value`] for the same path, version
    /// and key id.
    ///
    /// # Errors
    ///
    /// [`CryptoError::UnknownKey`] if the keyring lacks `key_id`;
    /// [`CryptoError::Decrypt`] if the ciphertext was modified or belongs to a
    /// different path, version or key id.
    pub fn open_value(
        &self,
        path: &str,
        version: u64,
        key_id: KeyId,
        sealed: &[u8],
    ) -> Result<SecretBytes, CryptoError> {
        let cipher = self.cipher(key_id)?;
        aead::open_with(cipher, &value_aad(key_id, version, path), sealed)
    }

    /// Re-seals a value sealed by [`Keyring::seal_value`] under the active key
    /// (for the same path and version), without handing out its plaintext:
    /// the background re-wrap moves old versions to the newest key with it.
    ///
    /// # Errors
    ///
    /// As [`Keyring::open_value`].
    pub fn reseal_value(
        &self,
        path: &str,
        version: u64,
        key_id: KeyId,
        sealed: &[u8],
    ) -> Result<(KeyId, Vec<u8>), CryptoError> {
        let plain = self.open_value(path, version, key_id, sealed)?;
        Ok(self.seal_value(path, version, plain.expose_secret()))
    }

    /// Generic sealing of other records (e.g. metadata) with a caller domain string
    /// in the AAD.
    ///
    /// AAD = `b"coffer.record.v1\0"` || key_id u32 BE || domain length u64 BE ||
    /// domain bytes || context bytes. The length prefix keeps the split between
    /// domain and context unambiguous, and the distinct prefix keeps records and
    /// secret values from ever being confused with each other.
    #[must_use]
    pub fn seal_record(&self, domain: &str, context: &[u8], plaintext: &[u8]) -> (KeyId, Vec<u8>) {
        let id = self.active;
        let aad = record_aad(id, domain, context);
        (id, aead::seal_with(self.active_cipher(), &aad, plaintext))
    }

    /// Opens a record sealed by [`Keyring::seal_record`] with the same domain,
    /// context and key id.
    ///
    /// # Errors
    ///
    /// [`CryptoError::UnknownKey`] if the keyring lacks `key_id`;
    /// [`CryptoError::Decrypt`] for any other failure.
    pub fn open_record(
        &self,
        domain: &str,
        context: &[u8],
        key_id: KeyId,
        sealed: &[u8],
    ) -> Result<SecretBytes, CryptoError> {
        let cipher = self.cipher(key_id)?;
        aead::open_with(cipher, &record_aad(key_id, domain, context), sealed)
    }

    /// HMAC-SHA256(token_key, `b"coffer.token.v1\0"` || token).
    ///
    /// The server stores only this hash, so a database leak does not reveal usable
    /// tokens, and a keyed hash means the leaked hashes cannot be checked against
    /// guesses without the keyring.
    #[must_use]
    pub fn token_hash(&self, token: &str) -> [u8; 32] {
        hmac_sha256(&self.token_key, &[TOKEN_HASH_PREFIX, token.as_bytes()])
    }

    /// HMAC-SHA256(audit_key, data), for chaining and pseudonymizing audit entries.
    #[must_use]
    pub fn audit_hmac(&self, data: &[u8]) -> [u8; 32] {
        hmac_sha256(&self.audit_key, &[data])
    }

    /// A shareable handle on the audit HMAC key, for the audit writer. It
    /// lives while the handle does and is wiped when the last clone drops.
    #[must_use]
    pub fn audit_key(&self) -> AuditKey {
        AuditKey(std::sync::Arc::new(self.audit_key.as_ref().clone()))
    }

    fn cipher(&self, id: KeyId) -> Result<&aes_gcm::Aes256Gcm, CryptoError> {
        self.keys
            .get(&id)
            .map(|entry| &*entry.cipher)
            .ok_or(CryptoError::UnknownKey(id))
    }

    fn active_cipher(&self) -> &aes_gcm::Aes256Gcm {
        // Every constructor and `rotate` keep `active` pointing at a present key,
        // and `from_plaintext` rejects keyrings where it does not.
        match self.keys.get(&self.active) {
            Some(entry) => &entry.cipher,
            None => unreachable!("active key id is always present in the keyring"),
        }
    }

    /// Serializes to the version 1 format described in the module docs.
    fn to_plaintext(&self) -> Zeroizing<Vec<u8>> {
        let count = u32::try_from(self.keys.len()).expect("key ids are distinct u32 values");
        // Exact capacity: a reallocation would leave key bytes in freed memory.
        let mut buf = Zeroizing::new(Vec::with_capacity(HEADER_LEN + ENTRY_LEN * self.keys.len()));
        buf.push(FORMAT_VERSION);
        buf.extend_from_slice(&self.active.to_be_bytes());
        buf.extend_from_slice(self.token_key.expose_secret());
        buf.extend_from_slice(self.audit_key.expose_secret());
        buf.extend_from_slice(&count.to_be_bytes());
        for (id, entry) in &self.keys {
            buf.extend_from_slice(&id.to_be_bytes());
            buf.extend_from_slice(&entry.created_unix.to_be_bytes());
            buf.extend_from_slice(entry.key.expose_secret());
        }
        debug_assert_eq!(buf.len(), buf.capacity());
        buf
    }

    /// Parses the version 1 format strictly; see the module docs.
    fn from_plaintext(bytes: &[u8]) -> Result<Keyring, CryptoError> {
        let mut r = Reader(bytes);
        if r.u8()? != FORMAT_VERSION {
            return Err(CryptoError::Malformed);
        }
        let active = r.u32()?;
        let token_key = Key256::from_slice_boxed(r.take(Key256::LEN)?)?;
        let audit_key = Key256::from_slice_boxed(r.take(Key256::LEN)?)?;
        let count = usize::try_from(r.u32()?).map_err(|_| CryptoError::Malformed)?;
        // Check the exact remaining length before looping, which rejects both
        // truncation and trailing bytes and bounds the work by the input size.
        let expected = count.checked_mul(ENTRY_LEN).ok_or(CryptoError::Malformed)?;
        if count == 0 || r.0.len() != expected {
            return Err(CryptoError::Malformed);
        }
        let mut keys = BTreeMap::new();
        let mut previous: KeyId = 0;
        for _ in 0..count {
            let id = r.u32()?;
            let created_unix = r.i64()?;
            let key = Key256::from_slice_boxed(r.take(Key256::LEN)?)?;
            // Strictly ascending and above zero: rejects duplicates and id 0 and
            // makes the encoding canonical.
            if id <= previous {
                return Err(CryptoError::Malformed);
            }
            previous = id;
            keys.insert(id, KeyEntry::new(key, created_unix));
        }
        if !keys.contains_key(&active) {
            return Err(CryptoError::Malformed);
        }
        Ok(Keyring {
            keys,
            active,
            token_key,
            audit_key,
        })
    }
}

impl fmt::Debug for Keyring {
    /// Shows only the non-secret structure: which key ids exist and which is active.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("active", &self.active)
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn value_aad(key_id: KeyId, version: u64, path: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(SECRET_AAD_PREFIX.len() + 4 + 8 + path.len());
    aad.extend_from_slice(SECRET_AAD_PREFIX);
    aad.extend_from_slice(&key_id.to_be_bytes());
    aad.extend_from_slice(&version.to_be_bytes());
    aad.extend_from_slice(path.as_bytes());
    aad
}

fn record_aad(key_id: KeyId, domain: &str, context: &[u8]) -> Vec<u8> {
    let mut aad =
        Vec::with_capacity(RECORD_AAD_PREFIX.len() + 4 + 8 + domain.len() + context.len());
    aad.extend_from_slice(RECORD_AAD_PREFIX);
    aad.extend_from_slice(&key_id.to_be_bytes());
    aad.extend_from_slice(&(domain.len() as u64).to_be_bytes());
    aad.extend_from_slice(domain.as_bytes());
    aad.extend_from_slice(context);
    aad
}

/// A cursor over the serialized keyring that fails with `Malformed` when short.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CryptoError> {
        if self.0.len() < n {
            return Err(CryptoError::Malformed);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CryptoError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, CryptoError> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, CryptoError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, CryptoError> {
        Ok(i64::from_be_bytes(self.array()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: i64 = 1_700_000_000;

    /// Two keyrings are equal exactly when their canonical encodings are equal.
    fn same(a: &Keyring, b: &Keyring) -> bool {
        *a.to_plaintext() == *b.to_plaintext()
    }

    /// Builds a serialized keyring by hand so tests can describe malformed inputs.
    fn encode(
        version: u8,
        active: u32,
        token: [u8; 32],
        count: u32,
        entries: &[(u32, i64, [u8; 32])],
    ) -> Vec<u8> {
        let mut out = vec![version];
        out.extend_from_slice(&active.to_be_bytes());
        out.extend_from_slice(&token);
        out.extend_from_slice(&[0xAD; 32]);
        out.extend_from_slice(&count.to_be_bytes());
        for (id, created, key) in entries {
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&created.to_be_bytes());
            out.extend_from_slice(key);
        }
        out
    }

    #[test]
    fn generate_has_one_active_key() {
        let kr = Keyring::generate(NOW);
        assert_eq!(kr.active_id(), 1);
        assert_eq!(kr.key_ids(), vec![(1, NOW)]);
    }

    #[test]
    fn rotate_adds_ascending_ids() {
        let mut kr = Keyring::generate(NOW);
        assert_eq!(kr.rotate(NOW + 10), 2);
        assert_eq!(kr.rotate(NOW + 20), 3);
        assert_eq!(kr.active_id(), 3);
        assert_eq!(kr.key_ids(), vec![(1, NOW), (2, NOW + 10), (3, NOW + 20)]);
    }

    #[test]
    fn root_key_wrap_round_trip_and_failures() {
        let unseal = UnsealKey::random();
        let root = RootKey::random();
        let wrapped = unseal.wrap_root(&root);
        let back = unseal.unwrap_root(&wrapped).unwrap();
        assert!(back.key().ct_eq(root.key()));

        assert_eq!(
            UnsealKey::random().unwrap_root(&wrapped).unwrap_err(),
            CryptoError::Decrypt
        );
        for pos in 0..wrapped.len() {
            let mut tampered = wrapped.clone();
            tampered[pos] ^= 0x01;
            assert_eq!(
                unseal.unwrap_root(&tampered).unwrap_err(),
                CryptoError::Decrypt
            );
        }
        // A keyring blob sealed under the same key must not pass as a root key.
        let as_root = RootKey::from(unseal.key().clone());
        let keyring_blob = Keyring::generate(NOW).wrap(&as_root);
        assert_eq!(
            unseal.unwrap_root(&keyring_blob).unwrap_err(),
            CryptoError::Decrypt
        );
    }

    #[test]
    fn unseal_key_from_key256() {
        let k = Key256::from_bytes([9; 32]);
        let unseal = UnsealKey::from(k.clone());
        assert!(unseal.key().ct_eq(&k));
    }

    #[test]
    fn wrap_unwrap_round_trip_including_after_rotate() {
        let root = RootKey::random();
        let mut kr = Keyring::generate(NOW);
        for rotations in 0..4 {
            let back = Keyring::unwrap(&root, &kr.wrap(&root)).unwrap();
            assert!(same(&kr, &back), "after {rotations} rotations");
            assert_eq!(back.active_id(), kr.active_id());
            assert_eq!(back.key_ids(), kr.key_ids());
            assert_eq!(back.token_hash("t"), kr.token_hash("t"));
            assert_eq!(back.audit_hmac(b"a"), kr.audit_hmac(b"a"));
            kr.rotate(NOW + rotations);
        }
    }

    #[test]
    fn unwrap_with_wrong_root_fails() {
        let kr = Keyring::generate(NOW);
        let wrapped = kr.wrap(&RootKey::random());
        assert_eq!(
            Keyring::unwrap(&RootKey::random(), &wrapped).unwrap_err(),
            CryptoError::Decrypt
        );
    }

    #[test]
    fn tampered_wrapped_keyring_fails() {
        let root = RootKey::random();
        let wrapped = Keyring::generate(NOW).wrap(&root);
        for pos in 0..wrapped.len() {
            let mut tampered = wrapped.clone();
            tampered[pos] ^= 0x40;
            assert_eq!(
                Keyring::unwrap(&root, &tampered).unwrap_err(),
                CryptoError::Decrypt,
                "byte {pos}"
            );
        }
        assert_eq!(
            Keyring::unwrap(&root, &wrapped[..wrapped.len() - 1]).unwrap_err(),
            CryptoError::Decrypt
        );
    }

    #[test]
    fn value_round_trip() {
        let kr = Keyring::generate(NOW);
        for (path, version, plaintext) in [
            ("a", 1u64, &b"x"[..]),
            ("team/db/password", 7, b"correct horse battery staple"),
            ("", 0, b""),
            ("unicode/π", u64::MAX, &[0u8, 255, 1][..]),
        ] {
            let (id, sealed) = kr.seal_value(path, version, plaintext);
            assert_eq!(id, 1);
            let opened = kr.open_value(path, version, id, &sealed).unwrap();
            assert_eq!(opened.expose_secret(), plaintext);
        }
    }

    #[test]
    fn value_moved_to_other_path_or_version_fails() {
        let kr = Keyring::generate(NOW);
        let (id, sealed) = kr.seal_value("team/db", 3, b"secret");
        for (path, version) in [
            ("team/db2", 3),
            ("team/d", 3),
            ("team/db/", 3),
            ("Team/db", 3),
            ("", 3),
            ("team/db", 2),
            ("team/db", 4),
            ("team/db", 0),
            ("team/db", 3 << 32),
        ] {
            assert_eq!(
                kr.open_value(path, version, id, &sealed).unwrap_err(),
                CryptoError::Decrypt,
                "{path} v{version}"
            );
        }
    }

    #[test]
    fn relabelled_key_id_fails() {
        // Two ids holding the same key bytes: only the AAD distinguishes them, so
        // this checks that the key id really is bound into the AAD.
        let key = [0x11; 32];
        let bytes = encode(1, 2, [0x22; 32], 2, &[(1, NOW, key), (2, NOW, key)]);
        let kr = Keyring::from_plaintext(&bytes).unwrap();
        let (id, sealed) = kr.seal_value("p", 1, b"v");
        assert_eq!(id, 2);
        assert!(kr.open_value("p", 1, 2, &sealed).is_ok());
        assert_eq!(
            kr.open_value("p", 1, 1, &sealed).unwrap_err(),
            CryptoError::Decrypt
        );

        let (rid, rsealed) = kr.seal_record("meta", b"ctx", b"v");
        assert_eq!(
            kr.open_record("meta", b"ctx", rid - 1, &rsealed)
                .unwrap_err(),
            CryptoError::Decrypt
        );

        // An id the keyring never had is reported as such.
        assert_eq!(
            kr.open_value("p", 1, 9, &sealed).unwrap_err(),
            CryptoError::UnknownKey(9)
        );
        assert_eq!(
            kr.open_record("meta", b"ctx", 0, &rsealed).unwrap_err(),
            CryptoError::UnknownKey(0)
        );
    }

    #[test]
    fn rotate_keeps_old_values_readable_and_seals_with_new_key() {
        let root = RootKey::random();
        let mut kr = Keyring::generate(NOW);
        let (id1, old) = kr.seal_value("p", 1, b"old");
        assert_eq!(id1, 1);
        assert_eq!(kr.rotate(NOW + 1), 2);
        let (id2, new) = kr.seal_value("p", 2, b"new");
        assert_eq!(id2, 2);
        // Survives a wrap/unwrap cycle too, as it would across a restart.
        let kr = Keyring::unwrap(&root, &kr.wrap(&root)).unwrap();
        assert_eq!(
            kr.open_value("p", 1, 1, &old).unwrap().expose_secret(),
            b"old"
        );
        assert_eq!(
            kr.open_value("p", 2, 2, &new).unwrap().expose_secret(),
            b"new"
        );
        // Each ciphertext opens only under the key it was sealed with.
        assert_eq!(
            kr.open_value("p", 1, 2, &old).unwrap_err(),
            CryptoError::Decrypt
        );
        assert_eq!(
            kr.open_value("p", 2, 1, &new).unwrap_err(),
            CryptoError::Decrypt
        );
    }

    #[test]
    fn record_round_trip_and_binding() {
        let kr = Keyring::generate(NOW);
        let (id, sealed) = kr.seal_record("policy", b"ab", b"payload");
        assert_eq!(
            kr.open_record("policy", b"ab", id, &sealed)
                .unwrap()
                .expose_secret(),
            b"payload"
        );
        for (domain, context) in [
            ("policy", &b"a"[..]),
            ("policy", b"abc"),
            ("polic", b"yab"), // moving bytes across the boundary must not match
            ("policya", b"b"),
            ("other", b"ab"),
            ("", b"policyab"),
        ] {
            assert_eq!(
                kr.open_record(domain, context, id, &sealed).unwrap_err(),
                CryptoError::Decrypt,
                "{domain:?} {context:?}"
            );
        }
    }

    #[test]
    fn records_and_values_do_not_mix() {
        let kr = Keyring::generate(NOW);
        let (id, value) = kr.seal_value("p", 1, b"v");
        // Try the record AAD that shares the most bytes with the value AAD.
        let mut ctx = 1u64.to_be_bytes().to_vec();
        ctx.extend_from_slice(b"p");
        assert_eq!(
            kr.open_record("", &ctx, id, &value).unwrap_err(),
            CryptoError::Decrypt
        );
        let (id, record) = kr.seal_record("d", b"", b"v");
        assert_eq!(
            kr.open_value("d", 1, id, &record).unwrap_err(),
            CryptoError::Decrypt
        );
    }

    #[test]
    fn token_hash_deterministic_and_keyed() {
        let a = Keyring::generate(NOW);
        let b = Keyring::generate(NOW);
        assert_eq!(a.token_hash("cft_x"), a.token_hash("cft_x"));
        assert_ne!(a.token_hash("cft_x"), b.token_hash("cft_x"));
        assert_ne!(a.token_hash("cft_x"), a.token_hash("cft_y"));
        assert_ne!(a.token_hash(""), a.token_hash("\0"));
        // Rotation changes data keys only; token hashes must stay valid.
        let mut rotated = a.clone();
        rotated.rotate(NOW + 1);
        assert_eq!(rotated.token_hash("cft_x"), a.token_hash("cft_x"));
    }

    #[test]
    fn hmac_known_answers() {
        // RFC 4231 test case 2: key "Jefe". HMAC zero-pads short keys to the block
        // size, so "Jefe" followed by zeros is the same key.
        let mut token = [0u8; 32];
        token[..4].copy_from_slice(b"Jefe");
        let mut bytes = encode(1, 1, token, 1, &[(1, NOW, [0; 32])]);
        bytes[37..69].copy_from_slice(&token); // audit key
        let kr = Keyring::from_plaintext(&bytes).unwrap();
        let expected: [u8; 32] = [
            0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24, 0x26, 0x08, 0x95,
            0x75, 0xc7, 0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9,
            0x64, 0xec, 0x38, 0x43,
        ];
        assert_eq!(kr.audit_hmac(b"what do ya want for nothing?"), expected);
        // The token hash uses the same key but a domain prefix, so it must differ.
        assert_ne!(kr.token_hash("what do ya want for nothing?"), expected);
        let mut prefixed = b"coffer.token.v1\0".to_vec();
        prefixed.extend_from_slice(b"abc");
        assert_eq!(kr.token_hash("abc"), kr.audit_hmac(&prefixed));
    }

    #[test]
    fn audit_hmac_deterministic_and_keyed() {
        let a = Keyring::generate(NOW);
        let b = Keyring::generate(NOW);
        assert_eq!(a.audit_hmac(b"entry"), a.audit_hmac(b"entry"));
        assert_ne!(a.audit_hmac(b"entry"), b.audit_hmac(b"entry"));
        assert_ne!(a.audit_hmac(b"entry"), a.audit_hmac(b"entry2"));
    }

    #[test]
    fn audit_key_uses_are_keyed_and_separated() {
        let a = Keyring::generate(NOW).audit_key();
        let b = Keyring::generate(NOW).audit_key();
        let zero = [0u8; 32];
        assert_eq!(a.field(b"v"), a.clone().field(b"v"));
        assert_ne!(a.field(b"v"), b.field(b"v"));
        assert_ne!(a.chain(&zero, b"r"), b.chain(&zero, b"r"));
        // The same bytes under two uses give unrelated tags.
        let mut joined = zero.to_vec();
        joined.extend_from_slice(b"r");
        assert_ne!(a.field(&joined), a.chain(&zero, b"r"));
        assert_ne!(a.head(1, &zero), a.head(2, &zero));
    }

    #[test]
    fn a_record_in_pieces_links_as_the_whole() {
        let k = Keyring::generate(NOW).audit_key();
        let prev = [7u8; 32];
        let record = b"{\"seq\":1,\"v\":2,\"time\":\"t\"}";
        let whole = k.chain(&prev, record);
        for cut in 0..=record.len() {
            let (a, b) = record.split_at(cut);
            assert_eq!(k.chain_parts(&prev, &[a, b]), whole, "cut at {cut}");
        }
        assert_eq!(k.chain_parts(&prev, &[record]), whole);
        assert_ne!(k.chain_parts(&[0; 32], &[record]), whole);
    }

    #[test]
    fn debug_shows_no_key_material() {
        let mut kr = Keyring::generate(NOW);
        kr.rotate(NOW);
        assert_eq!(
            format!("{kr:?}"),
            "Keyring { active: 2, key_ids: [1, 2], .. }"
        );
        assert_eq!(format!("{:?}", RootKey::random()), "RootKey([REDACTED])");
        assert_eq!(
            format!("{:?}", UnsealKey::random()),
            "UnsealKey([REDACTED])"
        );
    }

    #[test]
    fn serialized_layout_is_as_documented() {
        let mut kr = Keyring::generate(-5);
        kr.rotate(7);
        let bytes = kr.to_plaintext();
        assert_eq!(bytes.len(), HEADER_LEN + 2 * ENTRY_LEN);
        assert_eq!(bytes[0], 1);
        assert_eq!(&bytes[1..5], &2u32.to_be_bytes());
        assert_eq!(&bytes[69..73], &2u32.to_be_bytes());
        assert_eq!(&bytes[73..77], &1u32.to_be_bytes());
        assert_eq!(&bytes[77..85], &(-5i64).to_be_bytes());
        assert_eq!(&bytes[117..121], &2u32.to_be_bytes());
        assert_eq!(&bytes[121..129], &7i64.to_be_bytes());
    }

    #[test]
    fn malformed_serializations_rejected() {
        let k = [0x33; 32];
        let valid = encode(1, 2, k, 2, &[(1, 0, k), (2, 0, k)]);
        assert!(Keyring::from_plaintext(&valid).is_ok());

        let mut trailing = valid.clone();
        trailing.push(0);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", Vec::new()),
            ("trailing byte", trailing),
            ("version 0", encode(0, 1, k, 1, &[(1, 0, k)])),
            ("version 2", encode(2, 1, k, 1, &[(1, 0, k)])),
            ("no keys", encode(1, 1, k, 0, &[])),
            ("count too high", encode(1, 1, k, 2, &[(1, 0, k)])),
            ("count too low", encode(1, 1, k, 1, &[(1, 0, k), (2, 0, k)])),
            ("huge count", encode(1, 1, k, u32::MAX, &[(1, 0, k)])),
            ("duplicate id", encode(1, 1, k, 2, &[(1, 0, k), (1, 0, k)])),
            (
                "descending ids",
                encode(1, 1, k, 2, &[(2, 0, k), (1, 0, k)]),
            ),
            ("id zero", encode(1, 0, k, 1, &[(0, 0, k)])),
            (
                "active missing",
                encode(1, 3, k, 2, &[(1, 0, k), (2, 0, k)]),
            ),
            ("active zero", encode(1, 0, k, 1, &[(1, 0, k)])),
        ];
        for (name, bytes) in cases {
            assert_eq!(
                Keyring::from_plaintext(&bytes).unwrap_err(),
                CryptoError::Malformed,
                "{name}"
            );
        }
        for len in 0..valid.len() {
            assert_eq!(
                Keyring::from_plaintext(&valid[..len]).unwrap_err(),
                CryptoError::Malformed,
                "truncated to {len}"
            );
        }
    }

    #[test]
    fn malformed_plaintext_behind_valid_seal_is_malformed() {
        // Authenticated but unparsable content must report Malformed, not panic.
        let root = RootKey::random();
        for content in [&b""[..], b"\x01", &[0u8; 200]] {
            let wrapped = aead::seal(root.key(), KEYRING_AAD, content);
            assert_eq!(
                Keyring::unwrap(&root, &wrapped).unwrap_err(),
                CryptoError::Malformed
            );
        }
        let unseal = UnsealKey::random();
        let wrapped = aead::seal(unseal.key(), ROOT_KEY_AAD, &[1u8; 31]);
        assert_eq!(
            unseal.unwrap_root(&wrapped).unwrap_err(),
            CryptoError::Malformed
        );
    }

    proptest! {
        #[test]
        fn prop_random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            // Anything that does parse must re-encode to exactly the same bytes.
            if let Ok(kr) = Keyring::from_plaintext(&bytes) {
                prop_assert_eq!(&*kr.to_plaintext(), &bytes);
            }
            prop_assert_eq!(
                Keyring::unwrap(&RootKey::random(), &bytes).unwrap_err(),
                CryptoError::Decrypt
            );
        }

        #[test]
        fn prop_mutated_encoding_is_rejected_or_canonical(
            rotations in 0u32..4, pos in any::<prop::sample::Index>(), value in any::<u8>()
        ) {
            let mut kr = Keyring::generate(NOW);
            for i in 0..rotations {
                kr.rotate(NOW + i64::from(i));
            }
            let mut bytes = kr.to_plaintext().to_vec();
            let i = pos.index(bytes.len());
            bytes[i] = value;
            if let Ok(parsed) = Keyring::from_plaintext(&bytes) {
                prop_assert_eq!(&*parsed.to_plaintext(), &bytes);
            }
        }

        #[test]
        fn prop_value_round_trip(path in ".{0,40}", version in any::<u64>(),
                                 plaintext in proptest::collection::vec(any::<u8>(), 0..200)) {
            let kr = Keyring::generate(NOW);
            let (id, sealed) = kr.seal_value(&path, version, &plaintext);
            prop_assert_eq!(kr.open_value(&path, version, id, &sealed).unwrap().expose_secret().to_vec(), plaintext);
            prop_assert!(kr.open_value(&path, version.wrapping_add(1), id, &sealed).is_err());
        }
    }
}
