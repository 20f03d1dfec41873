//! Secret reads: one value, many values, listings and metadata. Every
//! listing goes through [`Coffer::enumerate`], and every value is opened by
//! [`open_value`], which needs the witness that reading it was authorized.

use std::sync::Arc;

use coffer_store::{ListPage, ListQuery, SecretMeta, VersionRecord, VersionState};

use crate::actor::Actor;
use crate::auth::{Authorized, Identity, Listing, Operation, Reveals};
use crate::cache::Cached;
use crate::error::{
    CoreError, Expired, Integrity, InvalidInput, NotFound, Record, Refusal, Result,
};
use crate::lifecycle::{At, Label, Labels, SecretState};
use crate::path::{self, ListPrefix, SecretPath};
use crate::seal::Keys;
use crate::value::SecretValue;
use crate::{Coffer, audit, lifecycle, now_ms, strength};

/// A secret value read back.
pub struct SecretRead {
    /// Canonical path.
    pub path: String,
    /// Version that was read.
    pub version: u64,
    /// The value.
    pub value: SecretValue,
    /// Unix milliseconds the version was written.
    pub created_at: i64,
    /// Who wrote it: name, kind and token accessor.
    pub created_by: Actor,
    /// The label it was asked for by, when not `current`.
    pub label: Option<Label>,
}

/// One version in a secret's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    /// Version number.
    pub version: u64,
    /// Unix milliseconds of the write.
    pub created_at: i64,
    /// Who wrote it: name, kind and token accessor.
    pub created_by: Actor,
    /// Active, deleted or destroyed.
    pub state: VersionState,
    /// Keyring key that sealed it.
    pub key_id: u32,
    /// The mark of a compromised version (its value leaked).
    pub compromised: Option<coffer_store::Compromise>,
}

/// A secret's metadata and history (never values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretMetadata {
    /// Path, current version, liveness, times.
    pub meta: SecretMeta,
    /// Every version, oldest first.
    pub versions: Vec<VersionInfo>,
    /// Labels and expiry.
    pub labels: Labels,
}

/// Options of a listing.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Every path below the prefix rather than its direct children.
    pub recursive: bool,
    /// Also secrets whose current version is deleted or destroyed.
    pub include_deleted: bool,
    /// Resume after this entry.
    pub after: Option<String>,
    /// Page size; 0 means the default.
    pub limit: usize,
}

/// Default and largest listing page.
pub const DEFAULT_LIST_LIMIT: usize = 1000;

/// Largest listing page.
pub const MAX_LIST_LIMIT: usize = 10_000;

/// Most secrets (and most prefixes and paths asked for) in one
/// [`Coffer::read_many`].
pub const MAX_BUNDLE: usize = 1000;

impl Coffer {
    /// Reads a secret: the current version, or `version`.
    pub async fn read(
        &self,
        identity: &Identity,
        path: &str,
        version: Option<u64>,
    ) -> Result<SecretRead> {
        self.read_at(identity, path, At::version(version)).await
    }

    /// Reads a secret at a label or a version. An expired secret is refused
    /// whatever is asked for; `previous` is refused after its grace period.
    pub async fn read_at(&self, identity: &Identity, path: &str, at: At) -> Result<SecretRead> {
        let path = SecretPath::parse(path)?;
        self.read_path(identity, &path, at).await
    }

    /// [`Coffer::read_at`] of a parsed path.
    pub(crate) async fn read_path(
        &self,
        identity: &Identity,
        path: &SecretPath,
        at: At,
    ) -> Result<SecretRead> {
        let keys = self.unsealed()?;
        let auth = self.authorize(identity, Operation::ReadValue, path.as_str())?;
        let cached = self.cached(path).await?.ok_or_else(|| not_found(path))?;
        let labels = cached.labels();
        let now = now_ms();
        if let Some(expired) = labels.expires_at
            && now >= expired
        {
            return Err(CoreError::Expired(Expired::Secret {
                path: path.to_string(),
                at: expired,
            }));
        }
        let version = match at {
            At::Version(v) => v,
            At::Label(label) => {
                let v = labels.resolve(label, path.as_str(), now)?;
                if label == Label::Current && !cached.meta.live && v == cached.meta.current_version
                {
                    return Err(CoreError::NotFound(NotFound::CurrentDeleted {
                        path: path.to_string(),
                        version: v,
                    }));
                }
                v
            }
        };
        let record = match &cached.current {
            Some(r) if r.version == version => std::borrow::Cow::Borrowed(r),
            _ => std::borrow::Cow::Owned(
                self.store
                    .get_version(path.as_str(), version)
                    .await?
                    .ok_or_else(|| {
                        CoreError::NotFound(NotFound::Version {
                            path: path.to_string(),
                            version,
                        })
                    })?,
            ),
        };
        match record.state {
            VersionState::Active => {}
            VersionState::Deleted(_) => {
                return Err(CoreError::NotFound(NotFound::VersionDeleted {
                    path: path.to_string(),
                    version: record.version,
                }));
            }
            VersionState::Destroyed(_) => {
                return Err(CoreError::NotFound(NotFound::VersionDestroyed {
                    path: path.to_string(),
                    version: record.version,
                }));
            }
        }
        audit::note_version(record.version);
        let value = open_value(&keys, &auth, &record)?;
        Ok(SecretRead {
            path: path.to_string(),
            version: record.version,
            value,
            created_at: record.created_at,
            created_by: Actor::parse(&record.created_by),
            label: match at {
                At::Label(Label::Current) | At::Version(_) => None,
                At::Label(l) => Some(l),
            },
        })
    }

    /// Reads many secrets in one call: every live secret directly under each
    /// of `prefixes`, and each of `paths` (at a version, if given). All or
    /// nothing: a listing or a read that is refused fails the whole call
    /// (naming every refused path), as does an explicitly named secret that
    /// does not exist. Each read is authorized on its own, and the request's
    /// audit record lists every path and version served.
    pub async fn read_many(
        &self,
        identity: &Identity,
        prefixes: &[String],
        paths: &[(String, At)],
    ) -> Result<Vec<SecretRead>> {
        if prefixes.len() + paths.len() > MAX_BUNDLE {
            return Err(CoreError::Invalid(InvalidInput::Bundle {
                limit: MAX_BUNDLE,
            }));
        }
        self.require_unsealed()?;
        let mut wanted: Vec<(SecretPath, At, bool)> = Vec::new();
        for prefix in prefixes {
            let prefix = ListPrefix::parse(prefix)?;
            // Entries the caller may not see are left out, as from a listing.
            let names = self
                .secrets_under(identity, &prefix, Reveals::Names, false, MAX_BUNDLE)
                .await?
                .ok_or_else(|| {
                    CoreError::Invalid(InvalidInput::TooManyUnder {
                        prefix: prefix.as_str().to_string(),
                        limit: MAX_BUNDLE,
                    })
                })?;
            for name in names {
                wanted.push((prefix.child(&name)?, At::Label(Label::Current), false));
            }
        }
        for (path, version) in paths {
            wanted.push((SecretPath::parse(path)?, *version, true));
        }
        let mut seen = std::collections::HashSet::new();
        wanted.retain(|(p, v, _)| seen.insert((p.clone(), *v)));
        if wanted.len() > MAX_BUNDLE {
            return Err(CoreError::Invalid(InvalidInput::BundleSecrets {
                limit: MAX_BUNDLE,
            }));
        }
        let mut out = Vec::with_capacity(wanted.len());
        let mut refused = Vec::new();
        let mut last_refusal = None;
        for (path, at, named) in wanted {
            match self.read_path(identity, &path, at).await {
                Ok(read) => {
                    audit::note_read(&read.path, read.version);
                    out.push(read);
                }
                Err(CoreError::Forbidden(m)) => {
                    refused.push(path.to_string());
                    last_refusal = Some(m);
                }
                // A listed secret deleted meanwhile is simply not there.
                Err(CoreError::NotFound(_)) if !named => {}
                Err(e) => return Err(e),
            }
        }
        if let Some(m) = last_refusal {
            // The refusal is the request's decision in the audit record, and
            // nothing was served.
            audit::refuse_reads(refused.last().map_or("", String::as_str));
            return Err(CoreError::Forbidden(if refused.len() == 1 {
                m
            } else {
                Refusal::Reads { paths: refused }
            }));
        }
        Ok(out)
    }

    /// The secrets (not folders) below `prefix` that the caller may see,
    /// by name relative to the prefix: its direct children, or with
    /// `recursive` every secret at any depth. Pages through
    /// [`Coffer::enumerate`]; `None` once there are more than `max`.
    pub(crate) async fn secrets_under(
        &self,
        identity: &Identity,
        prefix: &ListPrefix,
        reveals: Reveals,
        recursive: bool,
        max: usize,
    ) -> Result<Option<Vec<String>>> {
        let mut names = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .enumerate(
                    identity,
                    prefix,
                    reveals,
                    ListOptions {
                        recursive,
                        after: after.take(),
                        limit: DEFAULT_LIST_LIMIT,
                        ..ListOptions::default()
                    },
                )
                .await?;
            names.extend(
                page.entries
                    .into_iter()
                    .filter(|e| !e.folder)
                    .map(|e| e.name),
            );
            if names.len() > max {
                return Ok(None);
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(Some(names)),
            }
        }
    }

    /// Lists paths under a prefix: only the entries the caller may see (see
    /// [`auth::Listing`]).
    pub async fn list(
        &self,
        identity: &Identity,
        prefix: &str,
        options: ListOptions,
    ) -> Result<ListPage> {
        let prefix = ListPrefix::parse(prefix)?;
        self.require_unsealed()?;
        let limit = match options.limit {
            0 => DEFAULT_LIST_LIMIT,
            n => n.min(MAX_LIST_LIMIT),
        };
        if let Some(after) = &options.after
            && (after.is_empty()
                || after.len() > path::MAX_PATH_LEN
                || after.chars().any(char::is_control))
        {
            return Err(CoreError::Invalid(InvalidInput::ListCursor));
        }
        self.enumerate(
            identity,
            &prefix,
            Reveals::Names,
            ListOptions { limit, ..options },
        )
        .await
    }

    /// The one way the core enumerates secrets under a prefix for a caller:
    /// authorizes `list` on the prefix (the request's audited decision), then
    /// reads the store's listing page by page and keeps only the entries the
    /// [`auth::Listing`] witness admits, until `options.limit` entries are
    /// found. The cursor it returns is always the name of an entry it shows,
    /// never of one it left out, and it is returned only when another shown
    /// entry follows. Every use case that returns names or
    /// metadata for a prefix goes through here (a test checks that nothing
    /// else in the core calls the store's `list`).
    pub(crate) async fn enumerate(
        &self,
        identity: &Identity,
        prefix: &ListPrefix,
        reveals: Reveals,
        options: ListOptions,
    ) -> Result<ListPage> {
        let authorized = self.authorize(identity, Operation::List, prefix.as_str())?;
        let listing = Listing::new(
            &authorized,
            self.access_model(),
            identity,
            reveals,
            now_ms(),
        );
        let limit = options.limit.max(1);
        let mut entries = Vec::new();
        let mut after = options.after;
        loop {
            let page = self
                .store
                .list(&ListQuery {
                    prefix: listing.prefix().to_string(),
                    recursive: options.recursive,
                    include_deleted: options.include_deleted,
                    after: after.take(),
                    limit,
                })
                .await?;
            for entry in page.entries {
                if !listing.admits(&entry.name) {
                    continue;
                }
                if entry.folder
                    && listing.folder_may_hide(&entry.name)
                    && !self
                        .holds_undenied(&listing, &entry.name, options.include_deleted)
                        .await?
                {
                    continue;
                }
                entries.push(entry);
                // A page is full when one more shown entry exists: whether
                // anything follows is decided on entries the caller may
                // see, never on hidden ones (a cursor answered for hidden
                // entries alone would tell that they are there).
                if entries.len() > limit {
                    entries.pop();
                    let next = entries
                        .last()
                        .map(|e: &coffer_store::ListEntry| e.name.clone());
                    return Ok(ListPage { entries, next });
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => {
                    return Ok(ListPage {
                        entries,
                        next: None,
                    });
                }
            }
        }
    }

    /// Whether the folder entry `folder` of `listing` holds a secret that
    /// no `deny` of the caller's hides (see
    /// [`Listing::folder_may_hide`]). Stops at the first.
    async fn holds_undenied(
        &self,
        listing: &Listing<'_>,
        folder: &str,
        include_deleted: bool,
    ) -> Result<bool> {
        let mut after = None;
        loop {
            let page = self
                .store
                .list(&ListQuery {
                    prefix: format!("{}{folder}", listing.prefix()),
                    recursive: true,
                    include_deleted,
                    after: after.take(),
                    limit: MAX_LIST_LIMIT,
                })
                .await?;
            if page
                .entries
                .iter()
                .any(|e| !e.folder && listing.undenied_below(folder, &e.name))
            {
                return Ok(true);
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(false),
            }
        }
    }

    /// A secret's metadata and version history (never values).
    pub async fn metadata(&self, identity: &Identity, path: &str) -> Result<SecretMetadata> {
        let path = self.admit(identity, Operation::ReadMetadata, path)?;
        let cached = self.cached(&path).await?.ok_or_else(|| not_found(&path))?;
        let meta = cached.meta.clone();
        let labels = cached.labels();
        let versions = self
            .store
            .history(path.as_str())
            .await?
            .into_iter()
            .map(|r| VersionInfo {
                version: r.version,
                created_at: r.created_at,
                created_by: Actor::parse(&r.created_by),
                state: r.state,
                key_id: r.key_id,
                compromised: r.compromised,
            })
            .collect();
        Ok(SecretMetadata {
            meta,
            versions,
            labels,
        })
    }

    /// Cached metadata and current ciphertext for `path`, from storage on a miss.
    pub(crate) async fn cached(&self, path: &SecretPath) -> Result<Option<Arc<Cached>>> {
        // Storage and the cache key by the canonical string.
        let path = path.as_str();
        if let Some(c) = self.cache.get(path) {
            return Ok(Some(c));
        }
        let generation = self.cache.generation(path);
        let Some(meta) = self.store.get_meta(path).await? else {
            return Ok(None);
        };
        self.cache_with_meta(generation, meta).await.map(Some)
    }

    /// The cached state of many paths at once, for a bulk write holding
    /// their locks: what the cache holds, and for the rest one batched
    /// metadata read ([`coffer_store::Storage::get_metas`]) followed by the
    /// per-path reads of the paths that exist. `None` for a path with no
    /// secret. Same answers as [`Coffer::cached`] path by path.
    pub(crate) async fn cached_many(
        &self,
        paths: &[&SecretPath],
    ) -> Result<Vec<Option<Arc<Cached>>>> {
        let mut out: Vec<Option<Arc<Cached>>> = Vec::with_capacity(paths.len());
        let mut misses = Vec::new();
        let mut generations = std::collections::HashMap::new();
        for path in paths {
            let hit = self.cache.get(path.as_str());
            if hit.is_none() {
                generations.insert(path.as_str(), self.cache.generation(path.as_str()));
                misses.push(path.to_string());
            }
            out.push(hit);
        }
        if misses.is_empty() {
            return Ok(out);
        }
        let mut found: std::collections::HashMap<String, SecretMeta> = self
            .store
            .get_metas(&misses)
            .await?
            .into_iter()
            .map(|m| (m.path.clone(), m))
            .collect();
        for (path, slot) in paths.iter().zip(out.iter_mut()) {
            if slot.is_some() {
                continue;
            }
            if let Some(meta) = found.remove(path.as_str()) {
                let generation = generations[path.as_str()];
                *slot = Some(self.cache_with_meta(generation, meta).await?);
            }
        }
        Ok(out)
    }

    /// Completes the cached state of an existing secret from its metadata,
    /// read after the cache's `generation` of its path was taken.
    async fn cache_with_meta(&self, generation: u64, meta: SecretMeta) -> Result<Arc<Cached>> {
        let path = meta.path.clone();
        let path = path.as_str();
        let state = match self.store.get_object(lifecycle::KIND_STATE, path).await? {
            Some(o) => Some((
                o.revision,
                serde_json::from_slice::<SecretState>(&o.value).map_err(|_| {
                    CoreError::Corrupt(Integrity::Unreadable(Record::LifecycleState {
                        path: path.to_string(),
                    }))
                })?,
            )),
            None => None,
        };
        let current_version = Labels::of(&meta, state.as_ref().map(|(_, s)| s)).current;
        let current = self.store.get_version(path, current_version).await?;
        let entry = Arc::new(Cached {
            meta,
            state,
            current,
        });
        self.cache
            .insert_if_unchanged(path, generation, entry.clone());
        Ok(entry)
    }
}

pub(crate) fn not_found(path: &SecretPath) -> CoreError {
    CoreError::NotFound(NotFound::Secret {
        path: path.to_string(),
    })
}

/// Opens a stored version. Requires the witness that reading this exact path
/// was authorized, so no code path can decrypt without the check.
pub(crate) fn open_value(
    keys: &Keys,
    auth: &Authorized<'_>,
    record: &VersionRecord,
) -> Result<SecretValue> {
    if auth.operation() != Operation::ReadValue || auth.target() != record.path {
        return Err(CoreError::Forbidden(Refusal::WrongWitness));
    }
    let plain = keys
        .keyring
        .open_value(&record.path, record.version, record.key_id, &record.ciphertext)
        .map_err(|_| {
            tracing::error!(path = %record.path, version = record.version, "stored ciphertext failed to open");
            CoreError::Corrupt(Integrity::Failed(Record::Version {
                path: record.path.to_string(),
                version: record.version,
            }))
        })?;
    SecretValue::decode(&plain)
}

/// A stored version of a secret that a [`Listing`] shows the caller, with
/// its ciphertext: the one thing [`fingerprint_listed`] opens. Only
/// [`listed_version`] makes one.
pub(crate) struct Listed {
    record: VersionRecord,
    _private: (),
}

impl Listed {
    /// The version's record (its ciphertext included).
    pub(crate) fn record(&self) -> &VersionRecord {
        &self.record
    }
}

/// `record` as a [`Listed`] version, if `listing` admits the secret it
/// belongs to (`name`, relative to the listing's prefix) and the record is
/// that secret's.
pub(crate) fn listed_version(
    listing: &Listing<'_>,
    name: &str,
    record: VersionRecord,
) -> Option<Listed> {
    let full = format!("{}{name}", listing.prefix());
    (record.path == full && listing.admits(name)).then_some(Listed {
        record,
        _private: (),
    })
}

/// One fingerprinted part of a stored value: its tag, its label, and where
/// it is (field and part). No value.
pub(crate) struct PartPrint {
    pub(crate) tag: [u8; 32],
    pub(crate) label: [u8; 32],
    pub(crate) field: Option<String>,
    pub(crate) part: &'static str,
}

/// Opens a listed version only to fingerprint it (the caller needs no read
/// witness: it never receives the value, and only parts strong enough that
/// guessing them offline is hopeless are fingerprinted, see
/// [`strength::fingerprintable`]). Each part is the trimmed text value or
/// field value, and, when it spans lines, each of its lines. Returns the
/// parts' tags and labels; the plaintext is dropped (zeroized) here.
pub(crate) fn fingerprint_listed(
    keys: &Keys,
    listed: &Listed,
    key: &coffer_crypto::fingerprint::FingerprintKey,
) -> Result<Vec<PartPrint>> {
    use coffer_crypto::fingerprint::label;
    let record = &listed.record;
    let plain = keys
        .keyring
        .open_value(&record.path, record.version, record.key_id, &record.ciphertext)
        .map_err(|_| {
            tracing::error!(path = %record.path, version = record.version, "stored ciphertext failed to open");
            CoreError::Corrupt(Integrity::Failed(Record::Version {
                path: record.path.to_string(),
                version: record.version,
            }))
        })?;
    let value = SecretValue::decode(&plain)?;
    let parts: Vec<(Option<&str>, &str)> = match &value {
        SecretValue::Text(t) => vec![(None, t.expose_secret())],
        SecretValue::Fields(fields) => fields
            .iter()
            .map(|(name, v)| (Some(name.as_str()), v.expose_secret()))
            .collect(),
    };
    let mut out = Vec::new();
    let mut print = |field: Option<&str>, text: &str, part: &'static str| {
        if strength::fingerprintable(text) {
            let name_key = key.name_key(text.as_bytes());
            out.push(PartPrint {
                tag: key.tag(text.as_bytes()),
                label: label(
                    &name_key,
                    &record.path,
                    record.version,
                    field.unwrap_or(""),
                    part,
                ),
                field: field.map(str::to_string),
                part,
            });
        }
    };
    for (field, text) in parts {
        let whole = text.trim();
        print(field, whole, "value");
        if whole.contains(['\n', '\r']) {
            let mut seen = std::collections::HashSet::new();
            for line in whole.lines().map(str::trim) {
                if seen.insert(line) {
                    print(field, line, "line");
                }
            }
        }
    }
    Ok(out)
}
