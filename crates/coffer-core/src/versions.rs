//! Version operations that act on whole secrets: rollback to an earlier
//! version, copy and move with history, and promotion of an environment's
//! secrets into another with a preview of the difference.
//!
//! Each needs to read the values it carries (so it authorizes `read` on the
//! source and holds the witness that opens them): a copy re-seals every
//! version under the new path, because a ciphertext is bound to its path
//! and version and would not open anywhere else.

use coffer_store::{Compromise, Expect, Mutation, VersionRecord, VersionState, VersionStateChange};
use subtle::ConstantTimeEq;

use crate::actor::Actor;
use crate::auth::{Identity, Operation, Reveals};
use crate::error::{Conflict, CoreError, InvalidInput, NotFound, Refusal, Result};
use crate::lifecycle::{KIND_STATE, Label};
use crate::path::{ListPrefix, SecretPath};
use crate::read::open_value;
use crate::write::{AuditNote, Becomes, NewVersion, WriteReceipt};
use crate::{At, Coffer, MAX_BUNDLE, audit, now_ms};

/// What promoting one secret would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanAction {
    /// The target has no such secret: it is created.
    Create,
    /// The target's value differs: a new version is written.
    Update,
    /// Same value: nothing to do.
    Unchanged,
    /// Only the target has it: left alone.
    OnlyInTarget,
}

/// One line of a promotion plan. Names and versions only, never values.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlanEntry {
    /// The secret's name (last path segment).
    pub name: String,
    /// What happens to it.
    pub action: PlanAction,
    /// The source's current version (0 when only the target has it).
    pub from_version: u64,
    /// The target's current version (0 when it has none).
    pub to_version: u64,
}

/// What marking a version compromised did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompromiseReceipt {
    /// The secret.
    pub path: String,
    /// The version marked.
    pub version: u64,
    /// The mark (the first one, if the version was marked already).
    pub mark: Compromise,
    /// Whether this call marked it (false: it was marked already).
    pub newly_marked: bool,
    /// Whether the version is the one `current` names (the value readers
    /// get until a rotation replaces it).
    pub is_current: bool,
}

/// Refuses to make a compromised version current (again).
pub(crate) fn refuse_compromised(record: &VersionRecord) -> Result<()> {
    match &record.compromised {
        Some(_) => Err(CoreError::Conflict(Conflict::Compromised {
            path: record.path.clone(),
            version: record.version,
        })),
        None => Ok(()),
    }
}

impl Coffer {
    /// Marks a version compromised (default: the one `current` names): its
    /// value leaked. Needs `rotate` on the path, since what follows is a
    /// rotation, and opens no value. A compromised version never becomes
    /// current again: rollback to it, promotion of it, a copy or move whose
    /// `current` it would be and undeleting it as `current` are refused.
    /// Marking a version marked already keeps the first mark and says so.
    pub async fn mark_compromised(
        &self,
        identity: &Identity,
        path: &str,
        version: Option<u64>,
        reason: &str,
    ) -> Result<CompromiseReceipt> {
        let reason = crate::text::check_free_text("a reason", reason, 500)?;
        if reason.chars().count() < 4 {
            return Err(CoreError::Invalid(InvalidInput::LeakReason));
        }
        let path = self.admit(identity, Operation::Rotate, path)?;
        let mut tx = self.begin_write(&[&path], 0, AuditNote::Nothing).await?;
        let existing = tx.existing_secret(&path).await?;
        let current = existing.labels().current;
        let version = version.unwrap_or(current);
        let record = self
            .store
            .get_version(path.as_str(), version)
            .await?
            .ok_or_else(|| {
                CoreError::NotFound(NotFound::Version {
                    path: path.to_string(),
                    version,
                })
            })?;
        audit::note_version(version);
        let receipt = |mark: Compromise, newly_marked: bool| CompromiseReceipt {
            path: path.to_string(),
            version,
            mark,
            newly_marked,
            is_current: version == current,
        };
        if let Some(mark) = record.compromised {
            return Ok(receipt(mark, false));
        }
        let mark = Compromise {
            at: now_ms(),
            reason,
        };
        tx.stage_mutations(
            &[&path],
            [Mutation::MarkCompromised {
                path: path.to_string(),
                version,
                mark: mark.clone(),
            }],
        );
        tx.commit().await?;
        tracing::warn!(
            target: "coffer::alert",
            alert = "version_compromised",
            actor = identity.display_name(),
            path = path.as_str(),
            version,
            "version marked compromised"
        );
        Ok(receipt(mark, true))
    }

    /// Writes a new version equal to version `version` (needs `read` and
    /// `update`). The old current version becomes `previous`.
    pub async fn rollback(
        &self,
        identity: &Identity,
        path: &str,
        version: u64,
    ) -> Result<WriteReceipt> {
        let path = SecretPath::parse(path)?;
        self.require_unsealed()?;
        let auth = self.authorize(identity, Operation::ReadValue, path.as_str())?;
        self.authorize(identity, Operation::Update, path.as_str())?;
        let mut tx = self.begin_write(&[&path], 1, AuditNote::Version).await?;
        let existing = tx.existing_secret(&path).await?;
        let record = self
            .store
            .get_version(path.as_str(), version)
            .await?
            .filter(|r| r.state == VersionState::Active)
            .ok_or_else(|| {
                CoreError::NotFound(NotFound::ReadableVersion {
                    path: path.to_string(),
                    version,
                })
            })?;
        refuse_compromised(&record)?;
        let value = open_value(tx.keys(), &auth, &record)?;
        let warnings = self.judge(&path, &value, None)?;
        let plaintext = self.encode_checked(&value)?;
        let now = now_ms();
        let new = NewVersion {
            path: &path,
            plaintext: &plaintext,
            created_by: &Actor::stored_for(identity),
            becomes: Becomes::Current {
                grace_until: self.grace_until(&path, None, now),
            },
            generated: None,
            now,
        };
        let receipt = tx.stage(tx.plan(&new, Some(&existing))?);
        tx.commit().await?;
        Ok(WriteReceipt {
            warnings,
            ..receipt
        })
    }

    /// Copies a secret with its whole history (version numbers, authors,
    /// times, deleted and destroyed states, labels and expiry) to a path that
    /// does not exist yet; with `remove_source`, the source is removed in the
    /// same transaction (a move). Needs `read` on the source (and `delete`
    /// for a move) and `create` on the target.
    pub async fn copy(
        &self,
        identity: &Identity,
        from: &str,
        to: &str,
        remove_source: bool,
    ) -> Result<WriteReceipt> {
        let from = SecretPath::parse(from)?;
        let to = SecretPath::parse(to)?;
        if from == to {
            return Err(CoreError::Invalid(InvalidInput::CopyOntoItself {
                path: from.to_string(),
            }));
        }
        self.require_unsealed()?;
        let auth = self.authorize(identity, Operation::ReadValue, from.as_str())?;
        if auth.via_breakglass() {
            // A grant lets a person read for a while; a copy would outlive
            // it (and could land outside the protected environment).
            audit::refuse(Operation::ReadValue, from.as_str());
            return Err(breakglass_no_copy(from.as_str()));
        }
        if remove_source {
            self.authorize(identity, Operation::Delete, from.as_str())?;
        }
        self.authorize(identity, Operation::Create, to.as_str())?;
        let mut tx = self
            .begin_write(&[&from, &to], 0, AuditNote::Nothing)
            .await?;
        if tx.existing(&to).await?.is_some() {
            return Err(CoreError::Conflict(Conflict::CopyTargetExists {
                to: to.to_string(),
            }));
        }
        let source = tx.existing_secret(&from).await?;
        Coffer::refuse_managed(&source.state, &from, "copied or moved")?;
        let head = source.meta.current_version;
        tx.reserve(head).await?;
        let keys = tx.keys();
        let mut mutations = Vec::new();
        let mut copied = Vec::new();
        // The target's `current` is the source's: a compromised one would
        // become current anew at the target.
        let source_current = source.labels().current;
        for info in self.store.history(from.as_str()).await? {
            let record = self
                .store
                .get_version(from.as_str(), info.version)
                .await?
                .ok_or_else(|| {
                    CoreError::Conflict(Conflict::CopySourceChanged {
                        from: from.to_string(),
                    })
                })?;
            if record.version == source_current {
                refuse_compromised(&record)?;
            }
            let (key_id, ciphertext) = match record.state {
                VersionState::Destroyed(_) => (record.key_id, Vec::new()),
                _ => {
                    let value = open_value(keys, &auth, &record)?;
                    let plaintext = value.encode();
                    keys.keyring
                        .seal_value(to.as_str(), record.version, &plaintext)
                }
            };
            mutations.push(Mutation::PutVersion {
                record: VersionRecord {
                    path: to.to_string(),
                    key_id,
                    ciphertext,
                    ..record
                },
                expected_current: info.version - 1,
            });
            copied.push(info.version);
        }
        if let Some((revision, state)) = &source.state {
            mutations.push(Mutation::PutObject {
                kind: KIND_STATE.into(),
                key: to.to_string(),
                value: serde_json::to_vec(state).expect("state serialises"),
                expect: Expect::Absent,
            });
            if remove_source {
                mutations.push(Mutation::DeleteObject {
                    kind: KIND_STATE.into(),
                    key: from.to_string(),
                    expect: Expect::Revision(*revision),
                });
            }
        }
        if remove_source {
            mutations.push(Mutation::DeleteSecret {
                path: from.to_string(),
                expected_current: head,
            });
        }
        tx.stage_mutations(&[&from, &to], mutations);
        tx.commit().await.map_err(|e| match e {
            coffer_store::StoreError::Conflict(m) => CoreError::Conflict(Conflict::Copy {
                from: from.to_string(),
                cause: Box::new(Conflict::Store(m)),
            }),
            e => e.into(),
        })?;
        // Noted once committed: a failed copy wrote nothing.
        for version in copied {
            audit::note_write(to.as_str(), version);
        }
        audit::note_version(head);
        tracing::info!(
            actor = identity.display_name(),
            from = from.as_str(),
            to = to.as_str(),
            moved = remove_source,
            "secret copied"
        );
        Ok(WriteReceipt {
            path: to.to_string(),
            version: head,
            created_at: now_ms(),
            warnings: Vec::new(),
        })
    }

    /// Compares the secrets directly under `from` with those under `to`
    /// (values compared on the server, in constant time; the plan holds
    /// names and versions only). With `apply`, the plan the caller
    /// previewed, writes every create and update in one transaction, each
    /// checked against the target version the preview saw; a plan that no
    /// longer matches is a conflict and writes nothing.
    pub async fn promote_env(
        &self,
        identity: &Identity,
        from: &str,
        to: &str,
        apply: Option<&[PlanEntry]>,
    ) -> Result<(Vec<PlanEntry>, Vec<WriteReceipt>)> {
        let from = ListPrefix::parse(from)?;
        let to = ListPrefix::parse(to)?;
        if from.as_str().is_empty() || to.as_str().is_empty() {
            return Err(CoreError::Invalid(InvalidInput::TwoEnvironments));
        }
        if from.as_str().starts_with(to.as_str()) || to.as_str().starts_with(from.as_str()) {
            return Err(CoreError::Invalid(InvalidInput::Overlap {
                from: from.as_str().to_string(),
                to: to.as_str().to_string(),
            }));
        }
        self.require_unsealed()?;
        let source = self.names_under(identity, &from).await?;
        let target = self.names_under(identity, &to).await?;
        if identity.is_human() {
            // People read protected values only through a break-glass
            // grant, which is for reading, not for copying values out.
            let model = self.access_model();
            if let Some(name) = source
                .iter()
                .find(|n| model.is_protected(&format!("{}{n}", from.as_str())))
            {
                let path = format!("{}{name}", from.as_str());
                audit::refuse(Operation::ReadValue, &path);
                return Err(breakglass_no_copy(&path));
            }
        }
        let mut plan = Vec::new();
        let mut writes = Vec::new();
        for name in &source {
            let from_path = from.child(name)?;
            let read = self
                .read_path(identity, &from_path, At::Label(Label::Current))
                .await?;
            // A compromised value is not carried to another environment
            // (as a new version there, it would carry no mark).
            if let Some(record) = self
                .store
                .get_version(from_path.as_str(), read.version)
                .await?
            {
                refuse_compromised(&record)?;
            }
            let to_path = to.child(name)?;
            let (action, to_version) = if target.contains(name) {
                let there = self
                    .read_path(identity, &to_path, At::Label(Label::Current))
                    .await?;
                let same: bool = read.value.encode().ct_eq(&there.value.encode()).into();
                if same {
                    (PlanAction::Unchanged, there.version)
                } else {
                    (PlanAction::Update, there.version)
                }
            } else {
                (PlanAction::Create, 0)
            };
            plan.push(PlanEntry {
                name: name.clone(),
                action,
                from_version: read.version,
                to_version,
            });
            if action != PlanAction::Unchanged {
                writes.push((to_path.to_string(), read.value, Some(to_version)));
            }
        }
        for name in target.iter().filter(|n| !source.contains(*n)) {
            let cached = self
                .cached(&to.child(name)?)
                .await?
                .map_or(0, |c| c.labels().current);
            plan.push(PlanEntry {
                name: name.clone(),
                action: PlanAction::OnlyInTarget,
                from_version: 0,
                to_version: cached,
            });
        }
        plan.sort_by(|a, b| a.name.cmp(&b.name));
        let Some(expected) = apply else {
            return Ok((plan, Vec::new()));
        };
        if expected != plan.as_slice() {
            return Err(CoreError::Conflict(Conflict::PreviewChanged {
                from: from.as_str().to_string(),
                to: to.as_str().to_string(),
            }));
        }
        if writes.is_empty() {
            return Ok((plan, Vec::new()));
        }
        let receipts = self.write_many(identity, &writes).await?;
        tracing::info!(
            actor = identity.display_name(),
            from = from.as_str(),
            to = to.as_str(),
            written = receipts.len(),
            "environment promoted"
        );
        Ok((plan, receipts))
    }

    /// The names of the live secrets directly under a prefix that the
    /// caller may see with their metadata (needs `list` on the prefix).
    async fn names_under(&self, identity: &Identity, prefix: &ListPrefix) -> Result<Vec<String>> {
        self.secrets_under(identity, prefix, Reveals::Metadata, false, MAX_BUNDLE)
            .await?
            .ok_or_else(|| {
                CoreError::Invalid(InvalidInput::TooManyToPromote {
                    prefix: prefix.as_str().to_string(),
                    limit: MAX_BUNDLE,
                })
            })
    }
}

fn breakglass_no_copy(path: &str) -> CoreError {
    CoreError::Forbidden(Refusal::BreakglassNoCopy {
        path: path.to_string(),
    })
}

impl Coffer {
    /// Soft-deletes versions (default: the current one). Returns the versions
    /// named.
    pub async fn delete(
        &self,
        identity: &Identity,
        path: &str,
        versions: &[u64],
    ) -> Result<Vec<u64>> {
        self.change_versions(identity, path, versions, Operation::Delete, |now| {
            VersionStateChange::Delete(now)
        })
        .await
    }

    /// Restores soft-deleted versions (default: the current one).
    pub async fn undelete(
        &self,
        identity: &Identity,
        path: &str,
        versions: &[u64],
    ) -> Result<Vec<u64>> {
        self.change_versions(identity, path, versions, Operation::Delete, |_| {
            VersionStateChange::Undelete
        })
        .await
    }

    /// Erases versions for good (default: the current one).
    pub async fn destroy(
        &self,
        identity: &Identity,
        path: &str,
        versions: &[u64],
    ) -> Result<Vec<u64>> {
        self.change_versions(identity, path, versions, Operation::Destroy, |now| {
            VersionStateChange::Destroy(now)
        })
        .await
    }

    async fn change_versions(
        &self,
        identity: &Identity,
        path: &str,
        versions: &[u64],
        op: Operation,
        change: impl Fn(i64) -> VersionStateChange,
    ) -> Result<Vec<u64>> {
        let path = self.admit(identity, op, path)?;
        let mut tx = self.begin_write(&[&path], 0, AuditNote::Nothing).await?;
        let cached = tx.existing_secret(&path).await?;
        let meta = &cached.meta;
        // The default is the version readers get: `current`, which during a
        // staged rotation is not the newest.
        let versions = if versions.is_empty() {
            vec![cached.labels().current]
        } else {
            versions.to_vec()
        };
        if let Some(bad) = versions
            .iter()
            .find(|v| **v == 0 || **v > meta.current_version)
        {
            return Err(CoreError::NotFound(NotFound::Version {
                path: path.to_string(),
                version: *bad,
            }));
        }
        let now = now_ms();
        // Undeleting the version labelled `current` makes it current again.
        let current = cached.labels().current;
        if matches!(change(now), VersionStateChange::Undelete)
            && versions.contains(&current)
            && let Some(record) = self.store.get_version(path.as_str(), current).await?
        {
            refuse_compromised(&record)?;
        }
        // The cache forgets the path even on failure: its cached state may be
        // what was stale.
        tx.stage_mutations(
            &[&path],
            [Mutation::SetVersionState {
                path: path.to_string(),
                versions: versions.clone(),
                change: change(now),
                at: now,
            }],
        );
        tx.commit().await?;
        Ok(versions)
    }
}
