//! The records a backend stores. None of them holds a plaintext value or raw token.

use serde::{Deserialize, Serialize};

/// Per-secret metadata. `current_version` is the newest version ever written
/// (0 means none yet); `live` is false when that version is deleted or destroyed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretMeta {
    /// Canonical path.
    pub path: String,
    /// Newest version number.
    pub current_version: u64,
    /// Whether the newest version can be read.
    pub live: bool,
    /// Unix milliseconds of the first write.
    pub created_at: i64,
    /// Unix milliseconds of the last change (write, delete, undelete, destroy).
    pub updated_at: i64,
}

/// The state of one version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionState {
    /// Readable.
    Active,
    /// Soft-deleted at the given unix milliseconds; can be undeleted.
    Deleted(i64),
    /// Ciphertext erased at the given unix milliseconds; gone for good.
    Destroyed(i64),
}

/// One stored version of a secret.
///
/// `ciphertext` is the AEAD output sealed under keyring key `key_id`, with
/// associated data binding it to `path` and `version`; it is empty once destroyed
/// and in [`Storage::history`](crate::Storage::history) listings.
#[derive(Clone, PartialEq, Eq)]
pub struct VersionRecord {
    /// Canonical path.
    pub path: String,
    /// Version number, from 1.
    pub version: u64,
    /// Unix milliseconds of the write.
    pub created_at: i64,
    /// Who wrote it (a display name; never a token).
    pub created_by: String,
    /// Active, deleted or destroyed.
    pub state: VersionState,
    /// Keyring key that sealed `ciphertext`.
    pub key_id: u32,
    /// Sealed value bytes.
    pub ciphertext: Vec<u8>,
}

// Hand-written so that logs of a record show its size, not its bytes.
impl std::fmt::Debug for VersionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VersionRecord")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("created_at", &self.created_at)
            .field("created_by", &self.created_by)
            .field("state", &self.state)
            .field("key_id", &self.key_id)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

/// A stored token. The raw token is never stored: `hash` is a keyed HMAC of it,
/// and `accessor` is a separate, non-secret handle for managing the token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// HMAC-SHA256 of the raw token under the keyring's token key.
    #[serde(skip)]
    pub hash: [u8; 32],
    /// Non-secret handle.
    pub accessor: String,
    /// Human-readable name ("root", "ci-deploy").
    pub display_name: String,
    /// Policy names attached to the token.
    pub policies: Vec<String>,
    /// Unix milliseconds of creation.
    pub created_at: i64,
    /// Unix milliseconds after which the token is refused; `None` never expires.
    pub expires_at: Option<i64>,
    /// Accessor of the token that created this one.
    pub parent: Option<String>,
}

impl std::fmt::Debug for TokenRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRecord")
            .field("accessor", &self.accessor)
            .field("display_name", &self.display_name)
            .field("policies", &self.policies)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("parent", &self.parent)
            .finish_non_exhaustive()
    }
}

/// A change to the state of existing versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionStateChange {
    /// Soft delete at the given unix milliseconds (active versions only).
    Delete(i64),
    /// Undo a soft delete (deleted versions only).
    Undelete,
    /// Erase the ciphertext at the given unix milliseconds (any not yet destroyed version).
    Destroy(i64),
}

/// One write, applied atomically with the others of its commit.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Inserts `record` as the next version of its path. The commit fails with a
    /// conflict unless the path's current version is exactly `expected_current`
    /// (0 for a new secret) and `record.version == expected_current + 1`.
    PutVersion {
        /// The new version.
        record: VersionRecord,
        /// The version the writer based its write on.
        expected_current: u64,
    },
    /// Changes the state of the listed versions of `path`. Versions that do not
    /// exist, or are not in a state the change applies to, are left as they are.
    SetVersionState {
        /// Canonical path.
        path: String,
        /// Version numbers.
        versions: Vec<u64>,
        /// What to do.
        change: VersionStateChange,
        /// Unix milliseconds, recorded as the secret's `updated_at`.
        at: i64,
    },
    /// Creates a system record, failing with a conflict if it exists already.
    /// Used for one-time initialisation, so two racing `init`s cannot both win.
    InsertSystem {
        /// Record name.
        key: String,
        /// Record bytes (ciphertext or non-secret configuration).
        value: Vec<u8>,
    },
    /// Creates or replaces a system record.
    PutSystem {
        /// Record name.
        key: String,
        /// Record bytes.
        value: Vec<u8>,
    },
    /// Stores a token record.
    PutToken(TokenRecord),
    /// Removes the token with this accessor, if any.
    DeleteToken {
        /// Accessor.
        accessor: String,
    },
}

/// A prefix listing request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Canonical prefix with no leading slash; empty for the root, otherwise it
    /// ends with `/`.
    pub prefix: String,
    /// List every secret below the prefix instead of only its direct children.
    pub recursive: bool,
    /// Include secrets whose current version is deleted or destroyed.
    pub include_deleted: bool,
    /// Resume after this entry name (as returned in [`ListPage::next`]).
    pub after: Option<String>,
    /// Largest number of entries to return (at least 1).
    pub limit: usize,
}

/// One entry of a listing, relative to the prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    /// Name relative to the prefix; folders end with `/`.
    pub name: String,
    /// Whether this is a folder (a non-recursive listing's grouping of deeper paths).
    pub folder: bool,
}

/// A page of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    /// Entries in byte order.
    pub entries: Vec<ListEntry>,
    /// Pass as [`ListQuery::after`] to get the next page; `None` on the last page.
    pub next: Option<String>,
}
