//! Secret writes: one value, a generated value, many values at once, and
//! the one write path they and every other writer share.

use std::sync::Arc;

use coffer_crypto::generate::Spec;
use coffer_store::{Mutation, SecretMeta, VersionRecord, VersionState};

use crate::actor::Actor;
use crate::auth::{Identity, Operation};
use crate::cache::Cached;
use crate::error::{CoreError, Result};
use crate::lifecycle::{self, SecretState};
use crate::path::SecretPath;
use crate::seal::Keys;
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
        self.write_value(identity, path, value, cas, None).await
    }

    /// Writes a value generated on the server from `spec` (never sent back).
    pub async fn write_generated(
        &self,
        identity: &Identity,
        path: &str,
        spec: &Spec,
        cas: Option<u64>,
    ) -> Result<WriteReceipt> {
        let value = SecretValue::Text(spec.generate());
        self.write_value(identity, path, &value, cas, Some(spec))
            .await
    }

    async fn write_value(
        &self,
        identity: &Identity,
        path: &str,
        value: &SecretValue,
        cas: Option<u64>,
        generated: Option<&Spec>,
    ) -> Result<WriteReceipt> {
        let path = SecretPath::parse(path)?;
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
        let warnings = self.judge(path.as_str(), value, generated)?;
        self.reserve_seals(1).await?;
        // After the reservation, which may have added a key.
        let keys = self.unsealed()?;
        let _lock = self.write_locks[self.cache.stripe(path.as_str())]
            .lock()
            .await;
        // A conflict without `cas` means another node wrote in between: reload
        // and retry a few times. With `cas`, the caller asked to be told.
        for attempt in 0..4 {
            if attempt > 0 {
                // Each attempt seals anew.
                self.reserve_seals(1).await?;
            }
            let existing = self.cached(path.as_str()).await?;
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
                return Err(CoreError::Conflict(format!(
                    "check-and-set failed: {path} is at version {current}, not {expected}"
                )));
            }
            let now = now_ms();
            let grace_until = self.grace_until(path.as_str(), None, now);
            let planned = self.plan_version(
                &keys,
                path.as_str(),
                &plaintext,
                &Actor::stored_for(identity),
                existing.as_deref(),
                Becomes::Current { grace_until },
                generated,
                now,
            )?;
            match self.store.commit(planned.mutations).await {
                Ok(()) => {
                    self.cache.put(path.as_str(), Arc::new(planned.entry));
                    audit::note_version(planned.receipt.version);
                    return Ok(WriteReceipt {
                        warnings,
                        ..planned.receipt
                    });
                }
                Err(coffer_store::StoreError::Conflict(m)) => {
                    self.cache.invalidate(path.as_str());
                    if cas.is_some() || attempt == 3 {
                        return Err(CoreError::Conflict(format!("write conflict: {m}")));
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

    /// Plans the next version of `path` (whose cached state is `existing`;
    /// the caller holds the path's write lock): the sealed version, the
    /// state record when labels need one, and the cache entry after commit.
    /// A new current version while a rotation is staged is a conflict.
    #[allow(clippy::too_many_arguments)] // one call per kind of write; a struct would only rename them
    pub(crate) fn plan_version(
        &self,
        keys: &Keys,
        path: &str,
        plaintext: &[u8],
        created_by: &str,
        existing: Option<&Cached>,
        becomes: Becomes,
        generated: Option<&Spec>,
        now: i64,
    ) -> Result<PlannedVersion> {
        let head = existing.map_or(0, |c| c.meta.current_version);
        let version = head + 1;
        let (key_id, ciphertext) = keys.keyring.seal_value(path, version, plaintext);
        let record = VersionRecord {
            path: path.to_string(),
            version,
            created_at: now,
            created_by: created_by.to_string(),
            state: VersionState::Active,
            key_id,
            ciphertext,
        };
        let old_state = existing.and_then(|c| c.state.as_ref());
        let labels = existing.map(|c| c.labels());
        if let Some(pending) = labels.and_then(|l| l.pending) {
            return Err(CoreError::Conflict(format!(
                "{path} has a staged rotation (pending version {pending}): promote it with \
                 `coffer promote {path}` or cancel it with `coffer rotate {path} --cancel` first"
            )));
        }
        if let (Becomes::Current { .. }, Some((_, state))) = (becomes, old_state)
            && state.postgres.is_some()
        {
            return Err(CoreError::Invalid(format!(
                "{path} holds the credentials of PostgreSQL roles that coffer manages: its \
                 versions come only from rotations (`coffer rotate {path}`), which change the \
                 roles too"
            )));
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
                    return Err(CoreError::Invalid(format!(
                        "{path} has no current version to rotate from"
                    )));
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

    /// When `previous` stops being served after a change at `now`: the
    /// explicit grace, else the rules' grace, else never (for plain writes)
    /// or after [`lifecycle::DEFAULT_GRACE_MS`] (for rotations, which pass
    /// it as `explicit`).
    pub(crate) fn grace_until(&self, path: &str, explicit: Option<i64>, now: i64) -> Option<i64> {
        let rules = self.access_model();
        explicit
            .or_else(|| lifecycle::effective(&rules.lifecycle, path).grace_ms)
            .map(|g| now.saturating_add(g))
    }

    /// Judges a value against the strength rules for `path`: an error that
    /// says why when a rule requires more, otherwise warnings for weak
    /// values. A generated value counts for its spec's exact entropy.
    pub(crate) fn judge(
        &self,
        path: &str,
        value: &SecretValue,
        generated: Option<&Spec>,
    ) -> Result<Vec<String>> {
        let model = self.access_model();
        let required = lifecycle::effective(&model.lifecycle, path).min_bits;
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
                return Err(CoreError::Invalid(format!(
                    "the value of {what} is too weak: about {:.0} bits where the lifecycle rule \
                     {pattern} requires {min}{why}; generate one with `coffer set {path} --generate`",
                    estimate.bits
                )));
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
            return Err(CoreError::Invalid("nothing to write".into()));
        }
        if writes.len() > MAX_BUNDLE {
            return Err(CoreError::Invalid(format!(
                "at most {MAX_BUNDLE} secrets in one request"
            )));
        }
        let keys = self.unsealed()?;
        let mut planned = Vec::with_capacity(writes.len());
        let mut seen = std::collections::HashSet::new();
        for (path, value, cas) in writes {
            let path = SecretPath::parse(path)?;
            if !seen.insert(path.as_str().to_string()) {
                return Err(CoreError::Invalid(format!("{path} appears more than once")));
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
                refused.push(path.as_str().to_string());
            }
        }
        if !refused.is_empty() {
            audit::refuse(Operation::Update, &refused[0]);
            return Err(CoreError::Forbidden(format!(
                "write refused on {}",
                refused.join(", ")
            )));
        }
        let mut warnings = Vec::with_capacity(planned.len());
        let mut weak = Vec::new();
        for ((path, _, _), (_, value, _)) in planned.iter().zip(writes) {
            match self.judge(path.as_str(), value, None) {
                Ok(w) => warnings.push(w),
                Err(CoreError::Invalid(m)) => {
                    weak.push(m);
                    warnings.push(Vec::new());
                }
                Err(e) => return Err(e),
            }
        }
        if !weak.is_empty() {
            return Err(CoreError::Invalid(format!(
                "nothing written: {}",
                weak.join("; ")
            )));
        }
        self.reserve_seals(planned.len() as u64).await?;
        // Lock every stripe involved, in order, so that two batches cannot
        // deadlock and no single write slips in between check and commit.
        let mut stripes: Vec<usize> = planned
            .iter()
            .map(|(p, _, _)| self.cache.stripe(p.as_str()))
            .collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut _locks = Vec::with_capacity(stripes.len());
        for stripe in stripes {
            _locks.push(self.write_locks[stripe].lock().await);
        }
        let now = now_ms();
        let mut mutations = Vec::with_capacity(planned.len());
        let mut entries = Vec::with_capacity(planned.len());
        let mut changed = Vec::new();
        for ((path, plaintext, cas), warnings) in planned.iter().zip(warnings) {
            let existing = self.cached(path.as_str()).await?;
            let current = existing.as_ref().map_or(0, |c| c.meta.current_version);
            let op = if current == 0 {
                Operation::Create
            } else {
                Operation::Update
            };
            if self.authorize(identity, op, path.as_str()).is_err() {
                refused.push(path.as_str().to_string());
                continue;
            }
            if let Some(expected) = cas
                && *expected != current
            {
                changed.push(format!("{path} (at version {current}, not {expected})"));
                continue;
            }
            let grace_until = self.grace_until(path.as_str(), None, now);
            let plan = match self.plan_version(
                &keys,
                path.as_str(),
                plaintext,
                &Actor::stored_for(identity),
                existing.as_deref(),
                Becomes::Current { grace_until },
                None,
                now,
            ) {
                Ok(plan) => plan,
                Err(CoreError::Conflict(m)) => {
                    changed.push(m);
                    continue;
                }
                Err(e) => return Err(e),
            };
            mutations.extend(plan.mutations);
            entries.push((
                plan.entry,
                WriteReceipt {
                    warnings,
                    ..plan.receipt
                },
            ));
        }
        if !refused.is_empty() {
            audit::refuse(Operation::Update, &refused[0]);
            return Err(CoreError::Forbidden(format!(
                "write refused on {}",
                refused.join(", ")
            )));
        }
        if !changed.is_empty() {
            return Err(CoreError::Conflict(format!(
                "check-and-set failed, nothing written: {}",
                changed.join(", ")
            )));
        }
        if let Err(e) = self.store.commit(mutations).await {
            for (entry, _) in &entries {
                self.cache.invalidate(&entry.meta.path);
            }
            return Err(match e {
                coffer_store::StoreError::Conflict(m) => {
                    CoreError::Conflict(format!("write conflict, nothing written: {m}"))
                }
                e => e.into(),
            });
        }
        let mut receipts = Vec::with_capacity(entries.len());
        for (entry, receipt) in entries {
            audit::note_write(&receipt.path, receipt.version);
            self.cache.put(&receipt.path, Arc::new(entry));
            receipts.push(receipt);
        }
        Ok(receipts)
    }
}
