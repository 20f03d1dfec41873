//! Wire types of one-time share links (`/api/v1/shares`).
//!
//! Nothing here is secret to the server: the value is sealed by the client
//! before it is sent (see `coffer_crypto::share`), and the key never
//! leaves the link's fragment. Binary fields are base64url without padding.

use serde::{Deserialize, Serialize};

/// `POST /api/v1/shares`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareCreateRequest {
    /// The id the client chose: 128 random bits, 22 base64url characters.
    pub id: String,
    /// The sealed value: nonce ‖ ciphertext ‖ tag (AES-256-GCM).
    pub ciphertext: String,
    /// The PBKDF2 salt, when the link needs a passphrase (16 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
    /// PBKDF2-HMAC-SHA256 rounds, with `salt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iterations: Option<u32>,
    /// How long the link works (`30m`, `1h`, `7d`; default 1h, at most 7d).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<String>,
    /// How many opens it allows (default 1, at most 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub views: Option<u32>,
    /// The stored secret shared (needs `read` on it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The version of `path` shared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

// By hand: the sealed bytes stay out of logs, so that a link's ciphertext
// never outlives the link there (a leaked link plus a logged ciphertext
// would open after the link burned).
impl std::fmt::Debug for ShareCreateRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShareCreateRequest")
            .field("id", &self.id)
            .field("expires_in", &self.expires_in)
            .field("views", &self.views)
            .field("path", &self.path)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// A share as its owner sees it: never its ciphertext.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShareInfo {
    /// The id (the link is `/s/ID#KEY`).
    pub id: String,
    /// Opens allowed in all.
    pub views: u32,
    /// Opens left.
    pub views_left: u32,
    /// Whether opening needs a passphrase.
    pub passphrase: bool,
    /// Who made it.
    pub created_by: String,
    /// When.
    pub created_at: String,
    /// When it stops working.
    pub expires_at: String,
    /// The stored secret shared, if one was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Its version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

/// `GET /api/v1/shares`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShareListResponse {
    /// The caller's live shares, oldest first.
    pub shares: Vec<ShareInfo>,
}

/// `POST /api/v1/shares/{id}/open`: what the opener needs to decrypt.
#[derive(Clone, Serialize, Deserialize)]
pub struct ShareOpenResponse {
    /// The sealed value.
    pub ciphertext: String,
    /// The PBKDF2 salt, when a passphrase is needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
    /// PBKDF2 rounds, with `salt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iterations: Option<u32>,
    /// Opens left after this one (0: the link no longer works).
    pub views_left: u32,
}

// By hand: the sealed bytes stay out of logs, so that a link's ciphertext
// never outlives the link there (a leaked link plus a logged ciphertext
// would open after the link burned).
impl std::fmt::Debug for ShareOpenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShareOpenResponse")
            .field("views_left", &self.views_left)
            .finish_non_exhaustive()
    }
}
