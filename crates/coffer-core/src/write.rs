//! Secret writes: one value, a generated value, many values at once, and
//! the one write path they and every other writer share.

use std::sync::Arc;

use coffer_crypto::generate::Spec;
use coffer_store::{Mutation, SecretMeta, StoreError, VersionRecord, VersionState};

use crate::actor::Actor;
use crate::auth::{Identity, Operation};
use crate::cache::Cached;
use crate::error::{Conflict, CoreError, InvalidInput, Refusal, Result};
use crate::lifecycle::{self, SecretState};
use crate::path::SecretPath;
use crate::seal::Keys;

/// What a check-and-set refused because of a secret the caller cannot see
/// says instead of its name and version.
const HIDDEN_IN_THE_WAY: &str = "a secret you cannot see is already at a path written (not named)";
use crate::value::SecretValue;
use crate::{Coffer, MAX_BUNDLE, audit, now_ms, strength};

/// The outcome of a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteReceipt {
    /// Canonical path.
    pub path: String,
    /// The version created.
    pub version: u64,
    /// Unix milliseconds of the write.
    pub created_at: i64,
    /// Warnings about the value (a weak value where no rule forbids it).
    pub warnings: Vec<String>,
}

/// What a planned version commits and caches.
pub(crate) struct PlannedVersion {
    pub mutations: Vec<Mutation>,
    pub entry: Cached,
    pub receipt: WriteReceipt,
}

/// What a new version becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Becomes {
    /// `current`; the old current becomes `previous`, served until `grace_until`.
    Current {
        /// When `previous` stops being served; `None`: until the next change.
        grace_until: Option<i64>,
    },
    /// `pending`; `current` stays.
    Pending,
}

/// A version to plan: what it holds, who wrote it and what it becomes.
#[derive(Clone, Copy)]
pub(crate) struct NewVersion<'a> {
    pub path: &'a SecretPath,
    /// The encoded value (see [`Coffer::encode_checked`]).
    pub plaintext: &'a [u8],
    /// The stored author ([`Actor::stored_for`] or [`Actor::stored_system`]).
    pub created_by: &'a str,
    pub becomes: Becomes,
    /// The generator the value came from, remembered for the next rotation.
    pub generated: Option<&'a Spec>,
    /// When it is written (unix milliseconds).
    pub now: i64,
}

/// How the versions a [`WriteTx`] commits appear in the request's audit
/// record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuditNote {
    /// The one version written (the record's `version`).
    Version,
    /// Every version written, with its path (the record's `writes`), for a
    /// request that writes many.
    EachWrite,
    /// Nothing: the use case notes what it did once it is done (a rotation
    /// whose staged version is only a step).
    Nothing,
}

/// The one write path. Every change to secrets goes through a `WriteTx`:
/// it holds the unsealed keys (taken after the encryptions it seals were
/// reserved, since a reservation may add a keyring key) and the write locks
/// of the paths it touches (taken in stripe order, so that two transactions
/// cannot deadlock), reads their cached state under those locks, plans new
/// versions, commits everything staged as one storage transaction, and then
/// updates the cache and notes the audit facts. A failed commit leaves no
/// cached entry of a path it touched.
pub(crate) struct WriteTx<'c> {
    coffer: &'c Coffer,
    keys: Arc<Keys>,
    _locks: Vec<tokio::sync::MutexGuard<'c, ()>>,
    note: AuditNote,
    mutations: Vec<Mutation>,
    /// The cache entries the staged versions leave once committed.
    entries: Vec<Cached>,
    /// Paths changed by staged mutations whose outcome the transaction did
    /// not compute: forgotten by the cache after the commit, whatever it
    /// did.
    touched: Vec<String>,
}

impl Coffer {
    /// Begins a write to `paths`: reserves `seals` encryptions under the
    /// active keyring key, takes the unsealed keys and locks the paths.
    pub(crate) async fn begin_write(
        &self,
        paths: &[&SecretPath],
        seals: u64,
        note: AuditNote,
    ) -> Result<WriteTx<'_>> {
        self.begin(paths.iter().map(|p| p.as_str()), seals, note)
            .await
    }

    /// Begins the re-wrap of a version read back from storage, whose path
    /// was validated when it was written.
    pub(crate) async fn begin_rewrap(&self, stored_path: &str) -> Result<WriteTx<'_>> {
        self.begin(std::iter::once(stored_path), 0, AuditNote::Nothing)
            .await
    }

    async fn begin<'p>(
        &self,
        paths: impl Iterator<Item = &'p str>,
        seals: u64,
        note: AuditNote,
    ) -> Result<WriteTx<'_>> {
        if seals > 0 {
            self.reserve_seals(seals).await?;
        }
        // After the reservation, which may have added a key.
        let keys = self.unsealed()?;
        let mut stripes: Vec<usize> = paths.map(|p| self.cache.stripe(p)).collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut locks = Vec::with_capacity(stripes.len());
        for stripe in stripes {
            locks.push(self.write_locks[stripe].lock().await);
        }
        Ok(WriteTx {
            coffer: self,
            keys,
            _locks: locks,
            note,
            mutations: Vec::new(),
            entries: Vec::new(),
            touched: Vec::new(),
        })
    }
}

impl WriteTx<'_> {
    /// The unsealed keys the transaction seals with.
    pub(crate) fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Reserves `n` more encryptions (an attempt after a conflict seals
    /// anew) and takes the keys again, as the reservation may have added a
    /// key.
    pub(crate) async fn reserve(&mut self, n: u64) -> Result<()> {
        self.coffer.reserve_seals(n).await?;
        self.keys = self.coffer.unsealed()?;
        Ok(())
    }

    /// The cached state of a locked path (from storage on a miss).
    pub(crate) async fn existing(&self, path: &SecretPath) -> Result<Option<Arc<Cached>>> {
        self.coffer.cached(path).await
    }

    /// The cached state of many locked paths, in their order (see
    /// [`Coffer::cached_many`]).
    pub(crate) async fn existing_many(
        &self,
        paths: &[&SecretPath],
    ) -> Result<Vec<Option<Arc<Cached>>>> {
        self.coffer.cached_many(paths).await
    }

    /// The cached state of a locked path that must exist.
    pub(crate) async fn existing_secret(&self, path: &SecretPath) -> Result<Arc<Cached>> {
        self.existing(path)
            .await?
            .ok_or_else(|| crate::read::not_found(path))
    }

    /// Plans `new` as the next version of its path, whose cached state is
    /// `existing` (read under this transaction's lock): the sealed version,
    /// the state record when labels need one, and the cache entry after
    /// commit. A new current version while a rotation is staged is a
    /// conflict.
    pub(crate) fn plan(
        &self,
        new: &NewVersion<'_>,
        existing: Option<&Cached>,
    ) -> Result<PlannedVersion> {
        let NewVersion {
            path,
            plaintext,
            created_by,
            becomes,
            generated,
            now,
        } = *new;
        let keys = &self.keys;
        let head = existing.map_or(0, |c| c.meta.current_version);
        let version = head + 1;
        let (key_id, ciphertext) = keys.keyring.seal_value(path.as_str(), version, plaintext);
        let record = VersionRecord {
            path: path.to_string(),
            version,
            created_at: now,
            created_by: created_by.to_string(),
            state: VersionState::Active,
            key_id,
            ciphertext,
            compromised: None,
        };
        let old_state = existing.and_then(|c| c.state.as_ref());
        let labels = existing.map(|c| c.labels());
        if let Some(pending) = labels.and_then(|l| l.pending) {
            return Err(CoreError::Conflict(Conflict::Staged {
                path: path.to_string(),
                pending,
            }));
        }
        if let (Becomes::Current { .. }, Some((_, state))) = (becomes, old_state)
            && state.postgres.is_some()
        {
            return Err(CoreError::Invalid(InvalidInput::ManagedVersions {
                path: path.to_string(),
            }));
        }
        let old_current = labels.map_or(0, |l| l.current);
        let generator = generated
            .map(Spec::to_string)
            .or_else(|| old_state.and_then(|(_, s)| s.generator.clone()));
        let new_state = match becomes {
            Becomes::Current { grace_until } => (old_state.is_some()
                || grace_until.is_some()
                || generator.is_some())
            .then(|| SecretState {
                current: None,
                previous: (old_current > 0).then_some(old_current),
                previous_until: grace_until,
                pending: None,
                expires_at: old_state.and_then(|(_, s)| s.expires_at),
                generator,
                postgres: None,
            }),
            Becomes::Pending => {
                if head == 0 {
                    return Err(CoreError::Invalid(InvalidInput::NoCurrentToRotate {
                        path: path.to_string(),
                    }));
                }
                let old = old_state.map(|(_, s)| s.clone()).unwrap_or(SecretState {
                    previous: labels.and_then(|l| l.previous),
                    ..SecretState::default()
                });
                Some(SecretState {
                    current: Some(old_current),
                    pending: Some(version),
                    generator,
                    ..old
                })
            }
        };
        let mut mutations = vec![Mutation::PutVersion {
            record: record.clone(),
            expected_current: head,
        }];
        let state = match new_state {
            Some(state) => {
                let (expect, revision) = match old_state {
                    Some((rev, _)) => (coffer_store::Expect::Revision(*rev), rev + 1),
                    None => (coffer_store::Expect::Absent, 1),
                };
                mutations.push(Mutation::PutObject {
                    kind: lifecycle::KIND_STATE.into(),
                    key: path.to_string(),
                    value: serde_json::to_vec(&state).expect("state serialises"),
                    expect,
                });
                Some((revision, state))
            }
            None => None,
        };
        let current = match becomes {
            Becomes::Current { .. } => Some(record),
            Becomes::Pending => existing.and_then(|c| c.current.clone()),
        };
        Ok(PlannedVersion {
            mutations,
            entry: Cached {
                meta: SecretMeta {
                    path: path.to_string(),
                    current_version: version,
                    live: true,
                    created_at: existing.map_or(now, |c| c.meta.created_at),
                    updated_at: now,
                },
                state,
                current,
            },
            receipt: WriteReceipt {
                path: path.to_string(),
                version,
                created_at: now,
                warnings: Vec::new(),
            },
        })
    }

    /// Stages a planned version: committed with everything else staged,
    /// then cached. Returns its receipt.
    pub(crate) fn stage(&mut self, planned: PlannedVersion) -> WriteReceipt {
        self.mutations.extend(planned.mutations);
        self.entries.push(planned.entry);
        planned.receipt
    }

    /// Stages mutations of `paths` whose outcome the cache learns by reading
    /// them again.
    pub(crate) fn stage_mutations(
        &mut self,
        paths: &[&SecretPath],
        mutations: impl IntoIterator<Item = Mutation>,
    ) {
        self.mutations.extend(mutations);
        self.touched
            .extend(paths.iter().map(|p| p.as_str().to_string()));
    }

    /// Stages the re-wrap of a version read back from storage (see
    /// [`Coffer::begin_rewrap`]).
    pub(crate) fn stage_rewrap(&mut self, stored_path: &str, mutation: Mutation) {
        self.mutations.push(mutation);
        self.touched.push(stored_path.to_string());
    }

    /// Commits everything staged in one storage transaction. Then each
    /// staged version is cached and noted for the audit record; on failure
    /// every path staged is forgotten by the cache (its cached state may be
    /// what was stale). The locks stay held until the transaction is
    /// dropped, so a caller may stage again and retry.
    pub(crate) async fn commit(&mut self) -> std::result::Result<(), StoreError> {
        let mutations = std::mem::take(&mut self.mutations);
        let entries = std::mem::take(&mut self.entries);
        let touched = std::mem::take(&mut self.touched);
        let cache = &self.coffer.cache;
        let result = self.coffer.store.commit(mutations).await;
        for path in &touched {
            cache.invalidate(path);
        }
        if let Err(e) = result {
            for entry in &entries {
                cache.invalidate(&entry.meta.path);
            }
            return Err(e);
        }
        for entry in entries {
            let (path, version) = (entry.meta.path.clone(), entry.meta.current_version);
            match self.note {
                AuditNote::Version => audit::note_version(version),
                AuditNote::EachWrite => audit::note_write(&path, version),
                AuditNote::Nothing => {}
            }
            cache.put(&path, Arc::new(entry));
        }
        Ok(())
    }
}

impl Coffer {
    /// Writes a new version. With `cas`, the write only happens if the current
    /// version is exactly `cas` (0: the secret must not exist yet). A value
    /// weaker than a lifecycle rule requires is refused; a weak value where
    /// no rule applies is written with a warning in the receipt.
    pub async fn write(
        &self,
        identity: &Identity,
        path: &str,
        value: &SecretValue,
        cas: Option<u64>,
    ) -> Result<WriteReceipt> {
        let path = SecretPath::parse(path)?;
        self.write_value(identity, &path, value, cas, None).await
    }

    /// Writes a value generated on the server from `spec` (never sent back).
    pub async fn write_generated(
        &self,
        identity: &Identity,
        path: &str,
        spec: &Spec,
        cas: Option<u64>,
    ) -> Result<WriteReceipt> {
        let path = SecretPath::parse(path)?;
        let value = SecretValue::Text(spec.generate());
        self.write_value(identity, &path, &value, cas, Some(spec))
            .await
    }

    async fn write_value(
        &self,
        identity: &Identity,
        path: &SecretPath,
        value: &SecretValue,
        cas: Option<u64>,
        generated: Option<&Spec>,
    ) -> Result<WriteReceipt> {
        let plaintext = self.encode_checked(value)?;
        self.require_unsealed()?;
        // Someone who can neither create nor update here learns nothing about
        // whether the secret exists: refuse before looking.
        if self
            .authorize(identity, Operation::Create, path.as_str())
            .is_err()
        {
            self.authorize(identity, Operation::Update, path.as_str())?;
        }
        let warnings = self.judge(path, value, generated)?;
        let created_by = Actor::stored_for(identity);
        let mut tx = self.begin_write(&[path], 1, AuditNote::Version).await?;
        // A conflict without `cas` means another node wrote in between: reload
        // and retry a few times. With `cas`, the caller asked to be told.
        for attempt in 0..4 {
            if attempt > 0 {
                // Each attempt seals anew.
                tx.reserve(1).await?;
            }
            let existing = tx.existing(path).await?;
            let current = existing.as_ref().map_or(0, |c| c.meta.current_version);
            let op = if current == 0 {
                Operation::Create
            } else {
                Operation::Update
            };
            self.authorize(identity, op, path.as_str())?;
            if let Some(expected) = cas
                && expected != current
            {
                return Err(CoreError::Conflict(Conflict::CheckAndSet {
                    path: path.to_string(),
                    current,
                    expected,
                }));
            }
            let now = now_ms();
            let new = NewVersion {
                path,
                plaintext: &plaintext,
                created_by: &created_by,
                becomes: Becomes::Current {
                    grace_until: self.grace_until(path, None, now),
                },
                generated,
                now,
            };
            let receipt = tx.stage(tx.plan(&new, existing.as_deref())?);
            match tx.commit().await {
                Ok(()) => {
                    return Ok(WriteReceipt {
                        warnings,
                        ..receipt
                    });
                }
                Err(StoreError::Conflict(m)) => {
                    if cas.is_some() || attempt == 3 {
                        return Err(CoreError::Conflict(Conflict::Write(Box::new(
                            Conflict::Store(m),
                        ))));
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        unreachable!("the loop returns on its last attempt")
    }

    /// Validates a value and encodes it, refusing one over the size limit.
    pub(crate) fn encode_checked(
        &self,
        value: &SecretValue,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        value.validate()?;
        let plaintext = value.encode();
        // The tag byte is framing, not part of the user's value.
        let size = plaintext.len() - 1;
        if size > self.options.max_value_bytes {
            return Err(CoreError::TooLarge {
                size,
                limit: self.options.max_value_bytes,
            });
        }
        Ok(plaintext)
    }

    /// When `previous` stops being served after a change at `now`: the
    /// explicit grace, else the rules' grace, else never (for plain writes)
    /// or after [`lifecycle::DEFAULT_GRACE_MS`] (for rotations, which pass
    /// it as `explicit`).
    pub(crate) fn grace_until(
        &self,
        path: &SecretPath,
        explicit: Option<i64>,
        now: i64,
    ) -> Option<i64> {
        let rules = self.access_model();
        explicit
            .or_else(|| lifecycle::effective(&rules.lifecycle, path.as_str()).grace_ms)
            .map(|g| now.saturating_add(g))
    }

    /// Judges a value against the strength rules for `path`: an error that
    /// says why when a rule requires more, otherwise warnings for weak
    /// values. A generated value counts for its spec's exact entropy.
    pub(crate) fn judge(
        &self,
        path: &SecretPath,
        value: &SecretValue,
        generated: Option<&Spec>,
    ) -> Result<Vec<String>> {
        let model = self.access_model();
        let required = lifecycle::effective(&model.lifecycle, path.as_str()).min_bits;
        let mut warnings = Vec::new();
        let parts: Vec<(Option<&str>, strength::Estimate)> = match generated {
            Some(spec) => vec![(
                None,
                strength::Estimate {
                    bits: spec.bits(),
                    reasons: Vec::new(),
                },
            )],
            None => strength::judged_parts(value)
                .into_iter()
                // Without a rule only a warning is at stake: values that
                // are plainly machine-made skip the costly estimator.
                .filter(|(_, v)| required.is_some() || !strength::clearly_not_weak(v))
                .map(|(name, v)| (name, strength::estimate(v)))
                .collect(),
        };
        for (field, estimate) in parts {
            let what = match field {
                // A field name is not secret, but one shaped like a token is
                // not repeated in a warning, an error or its audit record.
                Some(f) if coffer_policy::contains_credential(f) => {
                    format!("a field (name not shown) of {path}")
                }
                Some(f) => format!("field {f:?} of {path}"),
                None => path.to_string(),
            };
            let why = if estimate.reasons.is_empty() {
                String::new()
            } else {
                format!(": {}", estimate.reasons.join("; "))
            };
            if let Some((min, pattern)) = &required
                && estimate.bits < f64::from(*min)
            {
                return Err(CoreError::Invalid(InvalidInput::TooWeak {
                    what,
                    bits: estimate.bits,
                    pattern: pattern.clone(),
                    min: *min,
                    why,
                    path: path.to_string(),
                }));
            }
            if estimate.bits < strength::WEAK_BITS {
                warnings.push(format!(
                    "the value of {what} is weak (about {:.0} bits){why}",
                    estimate.bits
                ));
            }
        }
        Ok(warnings)
    }

    /// [`Coffer::judge`] of many values, in their order. The strength
    /// estimate of a value that looks typed costs milliseconds of CPU, so a
    /// large batch is judged on as many threads as the machine has cores
    /// (each value exactly as one write judges it).
    fn judge_many(&self, values: Vec<(&SecretPath, &SecretValue)>) -> Vec<Result<Vec<String>>> {
        /// Below this many values a batch is judged on the calling thread.
        const PER_THREAD: usize = 64;
        let threads = std::thread::available_parallelism()
            .map_or(1, std::num::NonZeroUsize::get)
            .min(values.len().div_ceil(PER_THREAD));
        if threads <= 1 {
            return values
                .into_iter()
                .map(|(path, value)| self.judge(path, value, None))
                .collect();
        }
        let chunk = values.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> = values
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|(path, value)| self.judge(path, value, None))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        })
    }

    /// Writes many secrets at once, all or nothing (`coffer import`): every
    /// write is authorized and its check-and-set verified first, then all
    /// versions are committed in one transaction. A refusal names every
    /// refused path; a failed check-and-set names every path that changed.
    /// The request's audit record lists every path and version written.
    pub async fn write_many(
        &self,
        identity: &Identity,
        writes: &[(String, SecretValue, Option<u64>)],
    ) -> Result<Vec<WriteReceipt>> {
        if writes.is_empty() {
            return Err(CoreError::Invalid(InvalidInput::NothingToWrite));
        }
        if writes.len() > MAX_BUNDLE {
            return Err(CoreError::Invalid(InvalidInput::WriteBundle {
                limit: MAX_BUNDLE,
            }));
        }
        self.require_unsealed()?;
        let mut planned = Vec::with_capacity(writes.len());
        let mut seen = std::collections::HashSet::new();
        for (path, value, cas) in writes {
            let path = SecretPath::parse(path)?;
            if !seen.insert(path.clone()) {
                return Err(CoreError::Invalid(InvalidInput::Repeated {
                    path: path.to_string(),
                }));
            }
            let plaintext = self.encode_checked(value)?;
            planned.push((path, plaintext, *cas));
        }
        // As for one write: a refusal says nothing about existence.
        let mut refused = Vec::new();
        for (path, _, _) in &planned {
            if self
                .authorize(identity, Operation::Create, path.as_str())
                .is_err()
                && self
                    .authorize(identity, Operation::Update, path.as_str())
                    .is_err()
            {
                refused.push(path.to_string());
            }
        }
        if !refused.is_empty() {
            audit::refuse(Operation::Update, &refused[0]);
            return Err(CoreError::Forbidden(Refusal::Writes { paths: refused }));
        }
        let mut warnings = Vec::with_capacity(planned.len());
        let mut weak = Vec::new();
        let judged = self.judge_many(
            planned
                .iter()
                .zip(writes)
                .map(|((path, _, _), (_, value, _))| (path, value))
                .collect(),
        );
        for verdict in judged {
            match verdict {
                Ok(w) => warnings.push(w),
                Err(CoreError::Invalid(refusal @ InvalidInput::TooWeak { .. })) => {
                    weak.push(refusal);
                    warnings.push(Vec::new());
                }
                Err(e) => return Err(e),
            }
        }
        if !weak.is_empty() {
            return Err(CoreError::Invalid(InvalidInput::Weak { refusals: weak }));
        }
        // Every path is locked, so no single write slips in between check
        // and commit.
        let paths: Vec<&SecretPath> = planned.iter().map(|(p, _, _)| p).collect();
        let mut tx = self
            .begin_write(&paths, planned.len() as u64, AuditNote::EachWrite)
            .await?;
        let created_by = Actor::stored_for(identity);
        let now = now_ms();
        let mut receipts = Vec::with_capacity(planned.len());
        let mut changed = Vec::new();
        let mut hidden = false;
        // Read under the locks, in one batch: most paths of an import are new.
        let found = tx.existing_many(&paths).await?;
        for (((path, plaintext, cas), warnings), existing) in
            planned.iter().zip(warnings).zip(found)
        {
            let current = existing.as_ref().map_or(0, |c| c.meta.current_version);
            let op = if current == 0 {
                Operation::Create
            } else {
                Operation::Update
            };
            // A check-and-set (a promote's plan) against a secret the caller
            // cannot see: refused without its name or version, which would
            // tell that it exists and how far along it is.
            if cas.is_some()
                && current != 0
                && self
                    .authorize(identity, Operation::ReadMetadata, path.as_str())
                    .is_err()
            {
                hidden = true;
                continue;
            }
            if self.authorize(identity, op, path.as_str()).is_err() {
                refused.push(path.to_string());
                continue;
            }
            if let Some(expected) = cas
                && *expected != current
            {
                changed.push(format!("{path} (at version {current}, not {expected})"));
                continue;
            }
            let new = NewVersion {
                path,
                plaintext,
                created_by: &created_by,
                becomes: Becomes::Current {
                    grace_until: self.grace_until(path, None, now),
                },
                generated: None,
                now,
            };
            match tx.plan(&new, existing.as_deref()) {
                Ok(plan) => receipts.push(WriteReceipt {
                    warnings,
                    ..tx.stage(plan)
                }),
                Err(CoreError::Conflict(m)) => changed.push(m.to_string()),
                Err(e) => return Err(e),
            }
        }
        if hidden {
            return Err(CoreError::Conflict(Conflict::CheckAndSetMany {
                changed: vec![HIDDEN_IN_THE_WAY.to_string()],
            }));
        }
        if !refused.is_empty() {
            audit::refuse(Operation::Update, &refused[0]);
            return Err(CoreError::Forbidden(Refusal::Writes { paths: refused }));
        }
        if !changed.is_empty() {
            return Err(CoreError::Conflict(Conflict::CheckAndSetMany { changed }));
        }
        tx.commit().await.map_err(|e| match e {
            StoreError::Conflict(m) => {
                CoreError::Conflict(Conflict::WriteMany(Box::new(Conflict::Store(m))))
            }
            e => e.into(),
        })?;
        Ok(receipts)
    }
}
