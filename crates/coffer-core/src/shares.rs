//! One-time share links: the server's half.
//!
//! The creating client seals the value itself (`coffer_crypto::share`) and
//! sends only the sealed bytes, the share id it chose and non-secret
//! metadata; the key stays in the link's fragment. What is stored is one
//! `objects` record (kind `share`, keyed by the id): the sealed bytes, the
//! passphrase parameters, the views left, the expiry, who made it and,
//! for a stored secret, which path and version it came from.
//!
//! Each owner's links are also named in an index record (kind
//! `share_owner`, keyed by the owner, holding each link's id and expiry),
//! written in the same transaction as the share, so that creating and
//! listing read that index and the owner's own records, never every share
//! of the store (review finding). Stores from before the index get it
//! built once, from one scan of the share records, by the first create or
//! list after the upgrade; a marker record (key [`INDEX_MARKER`]) says it
//! was built. Existing share records are not rewritten.
//!
//! Opening spends one view with a check-and-set on the record's revision:
//! of two opens racing for the last view, exactly one wins and the other
//! finds the record gone. The last view deletes the record (and with it
//! the ciphertext); an expired record is deleted when it is next touched
//! and by the periodic sweep, so expired ciphertext does not stay.
//!
//! Creating needs `create` on `sys/shares`, and for a stored secret `read`
//! on its path too; listing and revoking need `create` on `sys/shares` and
//! act on the caller's own shares only (a person's, across their tokens).
//! Opening needs nothing but the id: the server answers every unknown,
//! used-up and expired id alike.

use coffer_crypto::share as crypto;
use coffer_store::{Expect, Mutation, StoreError, VersionState};
use serde::{Deserialize, Serialize};

use crate::auth::{Identity, Operation};
use crate::duration::parse_duration_ms;
use crate::error::{Integrity, InvalidInput, NotFound, Record};
use crate::path::SecretPath;
use crate::{Coffer, CoreError, Result, now_ms};

/// The object kind of share records.
pub const KIND_SHARE: &str = "share";
/// The object kind of the per-owner index of share ids.
pub const KIND_SHARE_OWNER: &str = "share_owner";
/// The key, under [`KIND_SHARE_OWNER`], of the marker that says every
/// owner's index was built (no owner key is empty).
pub const INDEX_MARKER: &str = "";
/// The policy path whose `create` capability lets a caller make, list and
/// revoke shares.
pub const SHARES_TARGET: &str = "sys/shares";
/// How long a share lasts unless asked otherwise.
pub const DEFAULT_SHARE_TTL_MS: i64 = 3600 * 1000;
/// The longest a share may last.
pub const MAX_SHARE_TTL_MS: i64 = 7 * 24 * 3600 * 1000;
/// The shortest a share may last.
pub const MIN_SHARE_TTL_MS: i64 = 60 * 1000;
/// Views allowed unless asked otherwise.
pub const DEFAULT_SHARE_VIEWS: u32 = 1;
/// The most views a share may allow.
pub const MAX_SHARE_VIEWS: u32 = 100;
/// The largest sealed value, in bytes (64 KiB of plaintext and the AEAD's
/// nonce and tag).
pub const MAX_SHARE_SEALED_BYTES: usize = 64 * 1024 + crypto::NONCE_BYTES + crypto::TAG_BYTES;
/// Most live shares one owner may hold at once.
pub const MAX_SHARES_PER_OWNER: usize = 1000;
/// Tries of an open that loses a race to another open of the same share.
const OPEN_RETRIES: usize = 16;
/// How long a used-up, revoked or expired link's id stays taken after the
/// link's own expiry.
const TOMBSTONE_KEEP_MS: i64 = 30 * 24 * 3600 * 1000;

impl StoredShare {
    /// The tombstone of this share: no sealed bytes, no views, its id kept.
    fn burned(&self, now: i64) -> StoredShare {
        StoredShare {
            sealed: String::new(),
            salt: None,
            iterations: None,
            views_left: 0,
            burned_until: Some(self.expires_at.max(now).saturating_add(TOMBSTONE_KEEP_MS)),
            ..self.clone()
        }
    }

    fn is_tombstone(&self) -> bool {
        self.burned_until.is_some()
    }
}

/// Replaces a share's record with its tombstone, if it is still at `revision`.
fn burn(id: &str, revision: u64, share: &StoredShare, now: i64) -> Mutation {
    Mutation::PutObject {
        kind: KIND_SHARE.into(),
        key: id.to_string(),
        value: serde_json::to_vec(&share.burned(now)).expect("serialises"),
        expect: Expect::Revision(revision),
    }
}

#[derive(Clone, Serialize, Deserialize)]
struct StoredShare {
    /// Base64url of nonce ‖ ciphertext ‖ tag.
    sealed: String,
    /// Base64url of the PBKDF2 salt, when a passphrase is needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    salt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iterations: Option<u32>,
    views: u32,
    views_left: u32,
    owner: String,
    created_by: String,
    created_at: i64,
    expires_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<u64>,
    /// Set once the link is used up, revoked or expired: the record is
    /// then a tombstone (its sealed bytes gone) kept until this time, so
    /// that its id can never be taken again while anyone may still hold
    /// the link (review finding: re-creating a burned id with the sealed
    /// bytes an interceptor got from its one view made the link open for
    /// its recipient as if unread).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    burned_until: Option<i64>,
}

/// One owner's share ids with their expiry (Unix milliseconds): an upper
/// bound of their live links (a used-up or revoked link stays listed until
/// its expiry, and is then pruned by the owner's next create).
#[derive(Clone, Default, Serialize, Deserialize)]
struct OwnerIndex {
    ids: std::collections::BTreeMap<String, i64>,
}

/// What a client sends to create a share.
#[derive(Clone)]
pub struct ShareRequest {
    /// The id the client chose (`coffer_crypto::share::new_id`).
    pub id: String,
    /// Base64url of the sealed bytes.
    pub sealed: String,
    /// Base64url of the PBKDF2 salt, when a passphrase is needed.
    pub salt: Option<String>,
    /// PBKDF2 rounds, with `salt`.
    pub iterations: Option<u32>,
    /// How long it lasts (`1h`, `7d`); [`DEFAULT_SHARE_TTL_MS`] if `None`.
    pub expires_in: Option<String>,
    /// Views allowed; [`DEFAULT_SHARE_VIEWS`] if `None`.
    pub views: Option<u32>,
    /// The stored secret shared, and its version.
    pub source: Option<(String, u64)>,
}

/// A share as its owner sees it (never its ciphertext).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareView {
    /// The id.
    pub id: String,
    /// Views allowed in all.
    pub views: u32,
    /// Views left.
    pub views_left: u32,
    /// Whether a passphrase is needed.
    pub passphrase: bool,
    /// Who made it.
    pub created_by: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub expires_at: i64,
    /// The stored secret shared (path, version).
    pub source: Option<(String, u64)>,
}

/// What an open hands back: the sealed bytes and how to derive the key.
#[derive(Clone, PartialEq, Eq)]
pub struct OpenedShare {
    /// Base64url of the sealed bytes.
    pub sealed: String,
    /// Base64url of the PBKDF2 salt, when a passphrase is needed.
    pub salt: Option<String>,
    /// PBKDF2 rounds, with `salt`.
    pub iterations: Option<u32>,
    /// Views left after this one.
    pub views_left: u32,
}

// By hand: the sealed bytes stay out of logs, so that a link's ciphertext
// never outlives the link there (a leaked link plus a logged ciphertext
// would open after the link burned).
impl std::fmt::Debug for OpenedShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedShare")
            .field("views_left", &self.views_left)
            .finish_non_exhaustive()
    }
}

fn bad(why: &'static str) -> CoreError {
    CoreError::Invalid(InvalidInput::Share(why))
}

fn gone() -> CoreError {
    CoreError::NotFound(NotFound::Share)
}

fn owner_of(identity: &Identity) -> String {
    match identity.user() {
        Some(user) => format!("user:{user}"),
        None => format!("token:{}", identity.accessor()),
    }
}

fn decode(o: &coffer_store::StoredObject) -> Result<StoredShare> {
    serde_json::from_slice(&o.value)
        .map_err(|_| CoreError::Corrupt(Integrity::Unreadable(Record::Share)))
}

impl StoredShare {
    fn view(&self, id: &str) -> ShareView {
        ShareView {
            id: id.to_string(),
            views: self.views,
            views_left: self.views_left,
            passphrase: self.salt.is_some(),
            created_by: crate::actor::Actor::parse(&self.created_by).describe(),
            created_at: self.created_at,
            expires_at: self.expires_at,
            source: self.path.clone().zip(self.version),
        }
    }
}

impl Coffer {
    /// Stores a share the client sealed. Refuses a malformed or taken id,
    /// sealed bytes that are not base64url or are too short or too long,
    /// passphrase parameters that are incomplete or out of range, and an
    /// expiry or view count out of range; nothing is stored then.
    pub async fn create_share(&self, identity: &Identity, req: &ShareRequest) -> Result<ShareView> {
        self.require_unsealed()?;
        self.authorize(identity, Operation::Create, SHARES_TARGET)?;
        let source = match &req.source {
            Some((path, version)) => {
                let path = SecretPath::parse(path)?;
                self.authorize(identity, Operation::ReadValue, path.as_str())?;
                let record = self
                    .store
                    .get_version(path.as_str(), *version)
                    .await?
                    .ok_or_else(|| {
                        CoreError::NotFound(NotFound::Version {
                            path: path.as_str().to_string(),
                            version: *version,
                        })
                    })?;
                if record.state != VersionState::Active {
                    return Err(CoreError::NotFound(NotFound::ReadableVersion {
                        path: path.as_str().to_string(),
                        version: *version,
                    }));
                }
                crate::audit::note_version(*version);
                Some((path.as_str().to_string(), *version))
            }
            None => None,
        };
        if !crypto::is_id(&req.id) {
            return Err(bad(
                "a share id is 22 base64url characters (128 random bits)",
            ));
        }
        let sealed = crypto::decode(&req.sealed)
            .map_err(|_| bad("the sealed value must be base64url without padding"))?;
        if sealed.len() < crypto::NONCE_BYTES + crypto::TAG_BYTES {
            return Err(bad("the sealed value is too short to be AES-GCM output"));
        }
        if sealed.len() > MAX_SHARE_SEALED_BYTES {
            return Err(CoreError::TooLarge {
                size: sealed.len(),
                limit: MAX_SHARE_SEALED_BYTES,
            });
        }
        match (&req.salt, req.iterations) {
            (None, None) => {}
            (Some(salt), Some(n)) => {
                let salt = crypto::decode(salt)
                    .map_err(|_| bad("the salt must be base64url without padding"))?;
                if salt.len() != crypto::SALT_BYTES {
                    return Err(bad("the salt must be 16 bytes"));
                }
                if !(crypto::MIN_PBKDF2_ITERATIONS..=crypto::MAX_PBKDF2_ITERATIONS).contains(&n) {
                    return Err(bad("iterations must be between 600000 and 10000000"));
                }
            }
            _ => return Err(bad("a passphrase share needs both salt and iterations")),
        }
        let ttl = match &req.expires_in {
            Some(t) => {
                parse_duration_ms(t).map_err(|e| CoreError::Invalid(InvalidInput::Duration(e)))?
            }
            None => DEFAULT_SHARE_TTL_MS,
        };
        if !(MIN_SHARE_TTL_MS..=MAX_SHARE_TTL_MS).contains(&ttl) {
            return Err(bad("a share lasts at least 1 minute and at most 7 days"));
        }
        let views = req.views.unwrap_or(DEFAULT_SHARE_VIEWS);
        if !(1..=MAX_SHARE_VIEWS).contains(&views) {
            return Err(bad("a share allows 1 to 100 views"));
        }
        let owner = owner_of(identity);
        let now = now_ms();
        let (path, version) = source.unzip();
        let share = StoredShare {
            sealed: req.sealed.clone(),
            salt: req.salt.clone(),
            iterations: req.iterations,
            views,
            views_left: views,
            owner: owner.clone(),
            created_by: crate::actor::Actor::stored_for(identity),
            created_at: now,
            expires_at: now + ttl,
            path,
            version,
            burned_until: None,
        };
        let value = serde_json::to_vec(&share).expect("serialises");
        self.ensure_share_index().await?;
        let mut committed = false;
        for _ in 0..OPEN_RETRIES {
            let (mut index, expect) = self.owner_index(&owner).await?;
            // Ids past their expiry hold no live link: pruned here.
            index.ids.retain(|_, exp| *exp > now);
            if index.ids.len() >= MAX_SHARES_PER_OWNER {
                // The index is an upper bound: count exactly (at most
                // MAX_SHARES_PER_OWNER reads) before refusing.
                let live: std::collections::BTreeSet<String> = self
                    .live_of(&owner, &index, now)
                    .await?
                    .into_iter()
                    .map(|(id, _)| id)
                    .collect();
                if live.len() >= MAX_SHARES_PER_OWNER {
                    return Err(bad("too many live shares; revoke some first"));
                }
                index.ids.retain(|id, _| live.contains(id));
            }
            index.ids.insert(req.id.clone(), share.expires_at);
            let result = self
                .store
                .commit(vec![
                    Mutation::PutObject {
                        kind: KIND_SHARE.into(),
                        key: req.id.clone(),
                        value: value.clone(),
                        expect: Expect::Absent,
                    },
                    Mutation::PutObject {
                        kind: KIND_SHARE_OWNER.into(),
                        key: owner.clone(),
                        value: serde_json::to_vec(&index).expect("serialises"),
                        expect,
                    },
                ])
                .await;
            match result {
                Ok(()) => {
                    committed = true;
                    break;
                }
                Err(StoreError::Conflict(_)) => {
                    if self.store.get_object(KIND_SHARE, &req.id).await?.is_some() {
                        return Err(bad("that share id is taken; make a new one"));
                    }
                    // Another create of this owner changed the index.
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
        if !committed {
            return Err(CoreError::RateLimited(crate::error::Busy::Share));
        }
        // The record names the link (review finding): the share's record
        // is a write under `sys/shares/ID`, as the sweep's notice names it.
        crate::audit::note_write(&format!("{SHARES_TARGET}/{}", req.id), 0);
        tracing::info!(actor = identity.display_name(), views, "share created");
        Ok(share.view(&req.id))
    }

    /// Whether a share record is stored under `id` (live, used up, expired
    /// or revoked, until it is deleted): the per-link limit on failed opens
    /// counts only ids that name a link. One store read; a store error
    /// counts as no.
    pub async fn share_exists(&self, id: &str) -> bool {
        crypto::is_id(id) && matches!(self.store.get_object(KIND_SHARE, id).await, Ok(Some(_)))
    }

    /// Spends one view of a share and hands back its sealed bytes. Unknown,
    /// malformed, used-up and expired ids get the same [`NotFound::Share`];
    /// an expired record is deleted on the way.
    pub async fn open_share(&self, id: &str) -> Result<OpenedShare> {
        self.require_unsealed()?;
        if !crypto::is_id(id) {
            return Err(gone());
        }
        for _ in 0..OPEN_RETRIES {
            let Some(o) = self.store.get_object(KIND_SHARE, id).await? else {
                return Err(gone());
            };
            let share = decode(&o)?;
            let now = now_ms();
            if share.is_tombstone() {
                return Err(gone());
            }
            let (mutation, views_left) = if share.expires_at <= now || share.views_left == 0 {
                (None, 0)
            } else if share.views_left == 1 {
                // The last view: the sealed bytes go, the id stays taken.
                (Some(burn(id, o.revision, &share, now)), 0)
            } else {
                let mut next = share.clone();
                next.views_left -= 1;
                (
                    Some(Mutation::PutObject {
                        kind: KIND_SHARE.into(),
                        key: id.to_string(),
                        value: serde_json::to_vec(&next).expect("serialises"),
                        expect: Expect::Revision(o.revision),
                    }),
                    next.views_left,
                )
            };
            let Some(mutation) = mutation else {
                // Expired (or corrupt with no views): purge the sealed
                // bytes, keep the id taken, then refuse.
                let _ = self
                    .store
                    .commit(vec![burn(id, o.revision, &share, now)])
                    .await;
                return Err(gone());
            };
            match self.store.commit(vec![mutation]).await {
                Ok(()) => {
                    return Ok(OpenedShare {
                        sealed: share.sealed,
                        salt: share.salt,
                        iterations: share.iterations,
                        views_left,
                    });
                }
                // Another open spent a view first: look again.
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(CoreError::RateLimited(crate::error::Busy::Share))
    }

    /// The caller's live shares, oldest first (no ciphertext).
    pub async fn list_shares(&self, identity: &Identity) -> Result<Vec<ShareView>> {
        self.require_unsealed()?;
        self.authorize(identity, Operation::Create, SHARES_TARGET)?;
        let owner = owner_of(identity);
        let now = now_ms();
        self.ensure_share_index().await?;
        let (index, _) = self.owner_index(&owner).await?;
        let mut out: Vec<ShareView> = self
            .live_of(&owner, &index, now)
            .await?
            .into_iter()
            .filter(|(_, s)| s.views_left > 0)
            .map(|(id, s)| s.view(&id))
            .collect();
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(out)
    }

    /// Revokes one of the caller's shares: its ciphertext is deleted and its
    /// id stays taken (a tombstone). Someone else's share, or one already
    /// used up, is [`NotFound::Share`], as an unknown one is.
    pub async fn revoke_share(&self, identity: &Identity, id: &str) -> Result<()> {
        self.require_unsealed()?;
        self.authorize(identity, Operation::Create, SHARES_TARGET)?;
        if !crypto::is_id(id) {
            return Err(gone());
        }
        let owner = owner_of(identity);
        for _ in 0..OPEN_RETRIES {
            let Some(o) = self.store.get_object(KIND_SHARE, id).await? else {
                return Err(gone());
            };
            let share = decode(&o)?;
            if share.owner != owner || share.is_tombstone() {
                return Err(gone());
            }
            match self
                .store
                .commit(vec![burn(id, o.revision, &share, now_ms())])
                .await
            {
                Ok(()) => {
                    tracing::info!(actor = identity.display_name(), "share revoked");
                    return Ok(());
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(CoreError::RateLimited(crate::error::Busy::Share))
    }

    /// Purges the sealed bytes of every expired or used-up share (leaving
    /// its tombstone), and deletes tombstones past their time; returns the
    /// ids whose sealed bytes were purged (for the sweep's audit record).
    /// A share changed meanwhile is kept.
    pub async fn sweep_shares(&self) -> Result<Vec<String>> {
        self.require_unsealed()?;
        let now = now_ms();
        let mut swept = Vec::new();
        for o in self.store.list_objects(KIND_SHARE).await? {
            let mutation = match decode(&o) {
                Ok(s) if s.is_tombstone() => {
                    if s.burned_until.is_some_and(|t| t > now) {
                        continue;
                    }
                    Mutation::DeleteObject {
                        kind: KIND_SHARE.into(),
                        key: o.key.clone(),
                        expect: Expect::Revision(o.revision),
                    }
                }
                Ok(s) if s.expires_at <= now || s.views_left == 0 => {
                    burn(&o.key, o.revision, &s, now)
                }
                Ok(_) => continue,
                // A record that does not decode holds nothing usable.
                Err(_) => Mutation::DeleteObject {
                    kind: KIND_SHARE.into(),
                    key: o.key.clone(),
                    expect: Expect::Revision(o.revision),
                },
            };
            let purged = matches!(mutation, Mutation::PutObject { .. });
            match self.store.commit(vec![mutation]).await {
                Ok(()) => {
                    if purged {
                        swept.push(o.key);
                    }
                }
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(swept)
    }
}

impl Coffer {
    /// An owner's index and the expectation to replace it with.
    async fn owner_index(&self, owner: &str) -> Result<(OwnerIndex, Expect)> {
        match self.store.get_object(KIND_SHARE_OWNER, owner).await? {
            Some(o) => Ok((
                serde_json::from_slice(&o.value)
                    .map_err(|_| CoreError::Corrupt(Integrity::Unreadable(Record::Share)))?,
                Expect::Revision(o.revision),
            )),
            None => Ok((OwnerIndex::default(), Expect::Absent)),
        }
    }

    /// The owner's live (unexpired, not burned) shares among the index's
    /// ids: one read per id, at most [`MAX_SHARES_PER_OWNER`] of them.
    async fn live_of(
        &self,
        owner: &str,
        index: &OwnerIndex,
        now: i64,
    ) -> Result<Vec<(String, StoredShare)>> {
        let mut out = Vec::new();
        for (id, exp) in index.ids.iter().take(MAX_SHARES_PER_OWNER * 2) {
            if *exp <= now {
                continue;
            }
            let Some(o) = self.store.get_object(KIND_SHARE, id).await? else {
                continue;
            };
            let Ok(s) = decode(&o) else { continue };
            if s.owner == owner && s.expires_at > now && !s.is_tombstone() {
                out.push((id.clone(), s));
            }
        }
        Ok(out)
    }

    /// Builds every owner's index from one scan of the share records, once
    /// per store (stores from before the index); later calls read only the
    /// marker.
    async fn ensure_share_index(&self) -> Result<()> {
        if self
            .store
            .get_object(KIND_SHARE_OWNER, INDEX_MARKER)
            .await?
            .is_some()
        {
            return Ok(());
        }
        let now = now_ms();
        let mut owners: std::collections::BTreeMap<String, OwnerIndex> = Default::default();
        for o in self.store.list_objects(KIND_SHARE).await? {
            if let Ok(s) = decode(&o)
                && s.expires_at > now
                && !s.is_tombstone()
            {
                owners
                    .entry(s.owner.clone())
                    .or_default()
                    .ids
                    .insert(o.key.clone(), s.expires_at);
            }
        }
        let mut mutations = vec![Mutation::PutObject {
            kind: KIND_SHARE_OWNER.into(),
            key: INDEX_MARKER.into(),
            value: b"{}".to_vec(),
            expect: Expect::Absent,
        }];
        for (owner, index) in owners {
            mutations.push(Mutation::PutObject {
                kind: KIND_SHARE_OWNER.into(),
                key: owner,
                value: serde_json::to_vec(&index).expect("serialises"),
                expect: Expect::Absent,
            });
        }
        match self.store.commit(mutations).await {
            // Another node (or request) built it first.
            Ok(()) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
