//! Cryptographic building blocks for Coffer, the self-hosted secrets manager.
//!
//! This crate owns every cryptographic decision in the project so that the rest of
//! the code base only ever handles opaque, already-sealed bytes:
//!
//! * [`secret`] — newtypes for secret material that zeroize on drop, compare in
//!   constant time and never print their contents.
//! * [`derive`] — keys and opaque identifiers derived from a secret the caller
//!   holds (the client's offline cache key, from its token).
//! * [`fingerprint`] — keyed fingerprints of secret values, for finding stored
//!   values in files without plaintext.
//! * [`generate`] — generated secret values (base64, hex, URL-safe, alphanumeric,
//!   passphrases) with exact entropy.
//! * [`random`] — the operating system's CSPRNG, the only randomness source used.
//! * [`aead`] — AES-256-GCM sealing with random nonces.
//! * [`keyring`] — the key hierarchy (unseal key → root key → keyring of data
//!   keys), value sealing bound to path/version/key id, and HMAC keys for token
//!   hashes and the audit log.
//! * [`share`] — one-time share links: the link key, the passphrase key and
//!   the sealing the client does before the server sees anything.
//! * [`shamir`] — Shamir secret sharing over GF(2^8) for splitting the unseal key.
//! * [`token`] — generation and format checking of API tokens, invitation codes
//!   and accessors.
//! * [`password`] — Argon2id password hashing (PHC strings), the password policy,
//!   and a dummy verification that hides whether an account exists.
//! * [`totp`] — RFC 6238 one-time codes for two-factor login: secrets, the
//!   verification window and the `otpauth://` enrollment URI.
//! * [`webhook`] — signatures on webhook deliveries (HMAC-SHA256 over the
//!   time and the body) and their verification.
//!
//! The crate performs no I/O of any kind (no files, network, environment or
//! logging); callers persist and transport the bytes it produces. Its only
//! interaction with the outside world is reading randomness from the operating
//! system.

#![forbid(unsafe_code)]

pub mod aead;
pub mod derive;
pub mod fingerprint;
pub mod generate;
pub mod keyring;
pub mod password;
pub mod random;
pub mod secret;
pub mod shamir;
pub mod share;
pub mod token;
pub mod totp;
pub mod webhook;

pub use aead::CryptoError;
pub use keyring::{AuditKey, KeyId, Keyring, RootKey, UnsealKey};
pub use password::PasswordError;
pub use secret::{Key256, SecretBytes, SecretString};
pub use totp::{TotpError, TotpSecret};
