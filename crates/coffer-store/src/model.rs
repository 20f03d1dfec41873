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
    /// Set once the version's value is known to have leaked: it never
    /// becomes `current` again.
    pub compromised: Option<Compromise>,
}

/// The mark of a compromised version: when, and why (free text that names
/// where the value leaked, never the value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compromise {
    /// Unix milliseconds of the mark.
    pub at: i64,
    /// Why it was marked.
    pub reason: String,
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
            .field("compromised", &self.compromised)
            .finish()
    }
}

/// Who a token stands for. Human tokens come from a user's login (and every
/// token created from one stays human); everything else is a service token.
/// Protected environments refuse values to human tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// A pipeline, application or operator token.
    #[default]
    Service,
    /// A person, logged in with a password.
    Human,
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
    /// Accessor of the token that created this one. Revoking the parent
    /// revokes this token too.
    pub parent: Option<String>,
    /// Service or human.
    #[serde(default)]
    pub kind: TokenKind,
    /// The user a human token belongs to (canonical user name).
    #[serde(default)]
    pub user: Option<String>,
    /// Renewal period in milliseconds: a renew sets `expires_at` to now plus
    /// this, capped by `max_expires_at`. `None`: not renewable.
    #[serde(default)]
    pub ttl_ms: Option<i64>,
    /// Unix milliseconds that no renewal can go past.
    #[serde(default)]
    pub max_expires_at: Option<i64>,
    /// Number of requests the token was created for; `None` is unlimited.
    #[serde(default)]
    pub uses_limit: Option<u64>,
    /// Requests left (kept by the backend, decremented atomically by
    /// [`Mutation::ConsumeTokenUse`]); `None` is unlimited.
    #[serde(skip)]
    pub uses_left: Option<u64>,
    /// Networks (CIDR notation) requests must come from; empty is anywhere.
    #[serde(default)]
    pub cidrs: Vec<String>,
    /// The workload a machine login issued this token to (a JWT role's
    /// issuer, subject and bound claims); `None` for every other token.
    /// (Boxed: most tokens have none, and every record is copied around.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<Box<Workload>>,
}

/// Who a workload token was issued to: what the platform vouched for at
/// login. Nothing in it is secret (no JWT, no signature): it is the
/// identity audit records name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workload {
    /// How it logged in: `jwt` (or `approle`).
    pub method: String,
    /// The role it logged in with.
    pub role: String,
    /// The token issuer (`iss`), for JWT logins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The subject (`sub`) for JWT logins; the secret id's accessor for
    /// app-role logins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The values of the role's bound claims, by claim name.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub claims: std::collections::BTreeMap<String, String>,
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
            .field("kind", &self.kind)
            .field("user", &self.user)
            .field("uses_left", &self.uses_left)
            .field("cidrs", &self.cidrs)
            .finish_non_exhaustive()
    }
}

/// A small record of the access model (a policy, a user, an invitation, a
/// protected prefix, a break-glass grant), stored by kind and key.
///
/// Values are opaque bytes to the backend: non-secret JSON, or ciphertext for
/// anything secret (a TOTP seed is sealed before it gets here). `revision`
/// starts at 1 and grows by one on every write, for check-and-set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// Kind ("policy", "user", ...).
    pub kind: String,
    /// Key within the kind.
    pub key: String,
    /// Write counter, from 1.
    pub revision: u64,
    /// Record bytes.
    pub value: Vec<u8>,
}

/// The condition a [`Mutation::PutObject`] or [`Mutation::DeleteObject`] checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Whatever is there.
    Any,
    /// Nothing may be stored under the key yet.
    Absent,
    /// The stored revision must be exactly this.
    Revision(u64),
}

/// Which tokens a [`Mutation::RevokeTokens`] removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevokeScope {
    /// The token with this accessor and all its descendants.
    Tree(String),
    /// Every token of this user, and all their descendants.
    User(String),
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
    /// Removes a secret and every one of its versions (the source of a move).
    /// The commit fails with a conflict unless the secret exists at exactly
    /// `expected_current`.
    DeleteSecret {
        /// Canonical path.
        path: String,
        /// The newest version the remover saw.
        expected_current: u64,
    },
    /// Replaces a version's ciphertext with the same value sealed under
    /// another key (the keyring's background re-wrap). A conflict unless the
    /// version exists, is not destroyed and is still sealed under
    /// `expected_key_id`.
    ResealVersion {
        /// Canonical path.
        path: String,
        /// Version number.
        version: u64,
        /// The key it was sealed under when read.
        expected_key_id: u32,
        /// The new key.
        key_id: u32,
        /// The new ciphertext.
        ciphertext: Vec<u8>,
    },
    /// Marks a version compromised. The first mark stays: marking a version
    /// marked already changes nothing. A conflict unless the version exists.
    MarkCompromised {
        /// Canonical path.
        path: String,
        /// Version number.
        version: u64,
        /// The mark.
        mark: Compromise,
    },
    /// Creates a system record, failing with a conflict if it exists already.
    /// Used for one-time initialisation, so two racing `init`s cannot both win.
    InsertSystem {
        /// Record name.
        key: String,
        /// Record bytes (ciphertext or non-secret configuration).
        value: Vec<u8>,
    },
    /// Replaces a system record if it still holds exactly `expected` (a
    /// check-and-set on the whole value, for records several nodes update,
    /// such as the wrapped keyring); a conflict otherwise.
    ReplaceSystem {
        /// Record name.
        key: String,
        /// The bytes the writer read.
        expected: Vec<u8>,
        /// The new bytes.
        value: Vec<u8>,
    },
    /// Creates or replaces a system record.
    PutSystem {
        /// Record name.
        key: String,
        /// Record bytes.
        value: Vec<u8>,
    },
    /// Stores a new token. Fails with a conflict if the accessor or hash is
    /// taken, or if the record names a parent that no longer exists (so a
    /// token cannot be created from one that is being revoked).
    PutToken(TokenRecord),
    /// Removes the token with this accessor, if any (not its children).
    DeleteToken {
        /// Accessor.
        accessor: String,
    },
    /// Removes tokens and all their descendants.
    RevokeTokens(RevokeScope),
    /// Removes every token that expired at or before `now` (unix
    /// milliseconds) or has no uses left, and all their descendants. The
    /// condition is evaluated in the same transaction, so a token renewed
    /// meanwhile is kept.
    DeleteExpiredTokens {
        /// Unix milliseconds.
        now: i64,
    },
    /// Spends one use of a use-limited token; a conflict if the token is gone
    /// or has no uses left. A no-op for unlimited tokens.
    ConsumeTokenUse {
        /// Accessor.
        accessor: String,
    },
    /// Moves a token's expiry (renewal); a conflict if the token is gone.
    SetTokenExpiry {
        /// Accessor.
        accessor: String,
        /// New expiry, unix milliseconds.
        expires_at: i64,
    },
    /// Creates or replaces an access-model record, if `expect` holds.
    PutObject {
        /// Kind.
        kind: String,
        /// Key.
        key: String,
        /// Record bytes.
        value: Vec<u8>,
        /// Condition; a conflict when it fails.
        expect: Expect,
    },
    /// Removes an access-model record, if `expect` holds (`Absent` is a no-op
    /// check that nothing is there).
    DeleteObject {
        /// Kind.
        kind: String,
        /// Key.
        key: String,
        /// Condition; a conflict when it fails.
        expect: Expect,
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

/// A change another node committed, which this node's caches must forget
/// (see [`Storage::sync`](crate::Storage::sync)).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Change {
    /// A secret's versions or metadata.
    Secret(String),
    /// Token records (revoked, renewed, swept): forget every cached token.
    Tokens,
    /// An access-model record.
    Object {
        /// Kind.
        kind: String,
        /// Key.
        key: String,
    },
    /// A system record (seal configuration, wrapped keyring).
    System(String),
    /// Too much changed, or changes were missed: forget everything.
    Reset,
}

impl Change {
    /// What a mutation changes, as other nodes must see it. Creating a token
    /// changes nothing cached elsewhere (caches hold only tokens that exist),
    /// and use counting is never cached.
    pub fn of(m: &Mutation) -> Option<Change> {
        Some(match m {
            Mutation::PutVersion { record, .. } => Change::Secret(record.path.clone()),
            Mutation::SetVersionState { path, .. }
            | Mutation::DeleteSecret { path, .. }
            | Mutation::ResealVersion { path, .. }
            | Mutation::MarkCompromised { path, .. } => Change::Secret(path.clone()),
            Mutation::InsertSystem { key, .. }
            | Mutation::ReplaceSystem { key, .. }
            | Mutation::PutSystem { key, .. } => Change::System(key.clone()),
            Mutation::DeleteToken { .. }
            | Mutation::RevokeTokens(_)
            | Mutation::DeleteExpiredTokens { .. }
            | Mutation::SetTokenExpiry { .. } => Change::Tokens,
            Mutation::PutToken(_) | Mutation::ConsumeTokenUse { .. } => return None,
            Mutation::PutObject { kind, key, .. } | Mutation::DeleteObject { kind, key, .. } => {
                Change::Object {
                    kind: kind.clone(),
                    key: key.clone(),
                }
            }
        })
    }
}

/// One record of a consistent snapshot of a whole store (backup and
/// restore). Like everything a backend holds, none of it is plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exported {
    /// A system record.
    System {
        /// Record name.
        key: String,
        /// Record bytes.
        value: Vec<u8>,
    },
    /// A secret's metadata.
    Secret(SecretMeta),
    /// A version, with its ciphertext.
    Version(VersionRecord),
    /// A token, with its hash and remaining uses.
    Token(TokenRecord),
    /// An access-model record.
    Object(StoredObject),
}

// Helpers both backends share.

/// The `compromised_at` and `compromised_reason` columns of a version.
pub(crate) fn compromise_columns(c: Option<&Compromise>) -> (Option<i64>, Option<&str>) {
    match c {
        Some(c) => (Some(c.at), Some(c.reason.as_str())),
        None => (None, None),
    }
}

/// A version's compromise mark from its columns (a mark without a reason
/// still counts).
pub(crate) fn compromise_from(at: Option<i64>, reason: Option<String>) -> Option<Compromise> {
    at.map(|at| Compromise {
        at,
        reason: reason.unwrap_or_default(),
    })
}

/// The `deleted_at` and `destroyed_at` columns of a version state.
pub(crate) fn state_columns(state: VersionState) -> (Option<i64>, Option<i64>) {
    match state {
        VersionState::Active => (None, None),
        VersionState::Deleted(t) => (Some(t), None),
        VersionState::Destroyed(t) => (None, Some(t)),
    }
}

/// A token record from its stored parts: the JSON record, its hash column
/// and its remaining uses.
pub(crate) fn token_from_parts(
    hash: &[u8],
    data: &str,
    uses_left: Option<i64>,
) -> crate::Result<TokenRecord> {
    let mut rec: TokenRecord = serde_json::from_str(data)
        .map_err(|e| crate::StoreError::Corrupt(format!("token record: {e}")))?;
    rec.hash = hash
        .try_into()
        .map_err(|_| crate::StoreError::Corrupt("token hash has the wrong length".into()))?;
    rec.uses_left = uses_left.map(|n| n.max(0) as u64);
    Ok(rec)
}

/// The smallest string greater than every string that starts with `prefix`
/// (which ends with `/`), in byte order: the `/` becomes `0`, the next byte.
pub(crate) fn prefix_upper_bound(prefix: &str) -> Option<String> {
    prefix.strip_suffix('/').map(|stem| format!("{stem}0"))
}

/// A one-level listing built from runs of paths read in path order, for the
/// backends: each run starts at [`LevelScan::cursor`] and asks for
/// [`LevelScan::batch`] rows. A child secret becomes an entry; the first
/// path below a child folder becomes the folder's entry, and the paths
/// after it in the same folder are skipped (the next run starts after the
/// whole folder). Runs grow while they hold only entries (a folder of a
/// thousand secrets takes a few queries, not a thousand) and drop to one
/// row after skipping into a folder (a folder of deep subfolders costs
/// about two small queries per subfolder, not a read of all that is below
/// them).
pub(crate) struct LevelScan {
    prefix: String,
    limit: usize,
    /// Where the next run starts: inclusive (`true`) or just after.
    pub(crate) cursor: (bool, String),
    pub(crate) entries: Vec<ListEntry>,
    /// Rows the next run asks for.
    pub(crate) batch: usize,
    done: bool,
}

impl LevelScan {
    pub(crate) fn new(q: &ListQuery) -> LevelScan {
        let cursor = match &q.after {
            Some(a) if a.ends_with('/') => (true, format!("{}{}0", q.prefix, &a[..a.len() - 1])),
            Some(a) => (false, format!("{}{a}", q.prefix)),
            None => (true, q.prefix.clone()),
        };
        let limit = q.limit.max(1);
        LevelScan {
            prefix: q.prefix.clone(),
            limit,
            cursor,
            entries: Vec::new(),
            batch: 16.min(limit + 1),
            done: false,
        }
    }

    /// Whether another run is needed.
    pub(crate) fn wants_more(&self) -> bool {
        !self.done && self.entries.len() <= self.limit
    }

    /// Takes the paths of one run (in path order, at most `batch`).
    pub(crate) fn take(&mut self, paths: Vec<String>) {
        let asked = self.batch;
        let got = paths.len();
        let mut skipped = false;
        let mut inside: Option<String> = None;
        for path in paths {
            if let Some(folder) = &inside
                && path.starts_with(folder.as_str())
            {
                skipped = true;
                continue;
            }
            if self.entries.len() > self.limit {
                break;
            }
            let rest = &path[self.prefix.len()..];
            match rest.find('/') {
                Some(i) => {
                    self.entries.push(ListEntry {
                        name: rest[..=i].to_string(),
                        folder: true,
                    });
                    inside = Some(format!("{}{}", self.prefix, &rest[..=i]));
                    self.cursor = (true, format!("{}{}0", self.prefix, &rest[..i]));
                }
                None => {
                    self.entries.push(ListEntry {
                        name: rest.to_string(),
                        folder: false,
                    });
                    inside = None;
                    self.cursor = (false, path);
                }
            }
        }
        if got < asked {
            self.done = true;
        }
        let wanted = (self.limit + 1).saturating_sub(self.entries.len()).max(1);
        self.batch = if skipped { 1 } else { (asked * 4).min(1024) }.min(wanted);
    }

    /// The page: at most `limit` entries, and the cursor of the next page
    /// when more follow.
    pub(crate) fn page(mut self) -> ListPage {
        let next = if self.entries.len() > self.limit {
            self.entries.truncate(self.limit);
            self.entries.last().map(|e| e.name.clone())
        } else {
            None
        };
        ListPage {
            entries: self.entries,
            next,
        }
    }
}
