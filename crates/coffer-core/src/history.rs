//! Writing a secret's whole history at once: every version in order, with
//! its time and its active, deleted or destroyed state, as another secrets
//! manager kept it (`coffer migrate from-vault`).
//!
//! The history is written in one store transaction through the one write
//! path, so a secret is either all there or not there. Writing it again is
//! safe: a secret whose versions already are the first ones of the history
//! given (same numbers, times, states and values, compared on the server in
//! constant time) gets the rest appended, or nothing when there is no rest;
//! any difference is a conflict that writes nothing. That is what makes an
//! interrupted migration resume and a finished one change nothing, without
//! the migrating client keeping any value.
//!
//! Because it sets times and deleted or destroyed states that no ordinary
//! write can, it needs `admin` on `sys/import` besides `create` on the
//! path; and because the caller learns whether the values it sent equal
//! the stored ones, it needs `read` on the path too.

use coffer_store::{Expect, Mutation, VersionRecord, VersionState};
use subtle::ConstantTimeEq;

use crate::actor::Actor;
use crate::auth::{Identity, Operation};
use crate::error::{Conflict, CoreError, InvalidInput, Result};
use crate::lifecycle::{KIND_STATE, SecretState};
use crate::path::SecretPath;
use crate::read::open_value;
use crate::value::SecretValue;
use crate::write::AuditNote;
use crate::{Coffer, audit};

/// Most versions one history may hold.
pub const MAX_HISTORY: usize = 1000;

/// The `sys/` target whose `admin` capability allows writing histories.
pub const IMPORT_TARGET: &str = "sys/import";

/// One version of a history: when it was written, its state, and its value
/// (none exactly when it is destroyed). No `Debug`: it holds a value.
pub struct HistoryVersion {
    /// Unix milliseconds of the write.
    pub created_at: i64,
    /// Active, deleted (with when) or destroyed (with when).
    pub state: VersionState,
    /// The value; `None` for a destroyed version, which has none.
    pub value: Option<SecretValue>,
}

/// What writing a history did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryOutcome {
    /// The secret did not exist; every version was written.
    Created,
    /// The secret held the first versions of the history; the rest were
    /// written after them.
    Appended,
    /// The secret already held exactly this history; nothing was written.
    Unchanged,
}

impl HistoryOutcome {
    /// The outcome's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            HistoryOutcome::Created => "created",
            HistoryOutcome::Appended => "appended",
            HistoryOutcome::Unchanged => "unchanged",
        }
    }
}

/// The outcome of writing a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryReceipt {
    /// Canonical path.
    pub path: String,
    /// What happened.
    pub outcome: HistoryOutcome,
    /// The versions written by this call, in order (none when unchanged);
    /// in a dry run, the versions that would be written.
    pub written: Vec<u64>,
    /// The newest version the secret now has (in a dry run, still has).
    pub current_version: u64,
}

/// One history version checked and encoded, ready to seal.
struct Checked {
    created_at: i64,
    state: VersionState,
    plaintext: Option<zeroize::Zeroizing<Vec<u8>>>,
}

impl Coffer {
    /// Writes `versions` as the history of `path`: version `i + 1` is
    /// `versions[i]`. See the module documentation for what happens when the
    /// secret exists. Needs `admin` on `sys/import`, `read` and `create` on
    /// the path, and to append to a secret that exists `update` (and
    /// `delete` or `destroy` when an appended version is deleted or
    /// destroyed). All or nothing. With `dry_run`, everything is checked and
    /// compared the same way and the receipt says what would be written,
    /// but nothing is.
    pub async fn import_history(
        &self,
        identity: &Identity,
        path: &str,
        versions: &[HistoryVersion],
        dry_run: bool,
    ) -> Result<HistoryReceipt> {
        let path = SecretPath::parse(path)?;
        let checked = self.check_history(&path, versions)?;
        self.require_unsealed()?;
        self.authorize(identity, Operation::Admin, IMPORT_TARGET)?;
        let auth = self.authorize(identity, Operation::ReadValue, path.as_str())?;
        // The last decision is the one the audit record names: the write.
        self.authorize(identity, Operation::Create, path.as_str())?;
        // A rule's minimum strength applies to the value the secret will
        // serve, the newest active one; older values are history.
        if let Some(newest) = versions
            .iter()
            .rev()
            .find(|v| v.state == VersionState::Active)
            .and_then(|v| v.value.as_ref())
        {
            self.judge(&path, newest, None)?;
        }
        let seals = if dry_run {
            0
        } else {
            checked.iter().filter(|c| c.plaintext.is_some()).count() as u64
        };
        let mut tx = self
            .begin_write(&[&path], seals, AuditNote::Nothing)
            .await?;
        let existing = tx.existing(&path).await?;
        let have = existing.as_ref().map_or(0, |c| c.meta.current_version);
        if let Some(cached) = &existing {
            Coffer::refuse_managed(&cached.state, &path, "given a history")?;
            if let Some((_, state)) = &cached.state
                && let Some(pending) = state.pending
            {
                return Err(CoreError::Conflict(Conflict::Staged {
                    path: path.to_string(),
                    pending,
                }));
            }
        }
        let given = checked.len() as u64;
        if have > given {
            return Err(CoreError::Conflict(Conflict::HistoryDiffers {
                path: path.to_string(),
                why: format!("coffer has {have} versions, the history {given}"),
            }));
        }
        // The versions coffer has must be the history's first ones.
        for version in 1..=have {
            let stored = self
                .store
                .get_version(path.as_str(), version)
                .await?
                .ok_or_else(|| {
                    CoreError::Conflict(Conflict::HistoryDiffers {
                        path: path.to_string(),
                        why: format!("version {version} is missing in coffer"),
                    })
                })?;
            let want = &checked[(version - 1) as usize];
            if let Some(why) = differs(tx.keys(), &auth, &stored, want)? {
                return Err(CoreError::Conflict(Conflict::HistoryDiffers {
                    path: path.to_string(),
                    why: format!("version {version}: {why}"),
                }));
            }
        }
        if have == given {
            audit::note_version(have);
            return Ok(HistoryReceipt {
                path: path.to_string(),
                outcome: HistoryOutcome::Unchanged,
                written: Vec::new(),
                current_version: have,
            });
        }
        let outcome = if have == 0 {
            HistoryOutcome::Created
        } else {
            HistoryOutcome::Appended
        };
        // Appending to a secret that exists changes what it serves: that is
        // an update, and appending a deleted or destroyed version is a
        // delete or destroy, whatever sys/import allows (which is only the
        // right to set times and states on a history).
        if have > 0 {
            let appended = &checked[have as usize..];
            if appended
                .iter()
                .any(|c| matches!(c.state, VersionState::Deleted(_)))
            {
                self.authorize(identity, Operation::Delete, path.as_str())?;
            }
            if appended
                .iter()
                .any(|c| matches!(c.state, VersionState::Destroyed(_)))
            {
                self.authorize(identity, Operation::Destroy, path.as_str())?;
            }
            self.authorize(identity, Operation::Update, path.as_str())?;
        }
        if dry_run {
            return Ok(HistoryReceipt {
                path: path.to_string(),
                outcome,
                written: (have + 1..=given).collect(),
                current_version: have,
            });
        }
        let created_by = Actor::stored_for(identity);
        let keys = tx.keys();
        let mut mutations = Vec::new();
        let mut written = Vec::new();
        for version in have + 1..=given {
            let c = &checked[(version - 1) as usize];
            let (key_id, ciphertext) = match &c.plaintext {
                Some(plain) => keys.keyring.seal_value(path.as_str(), version, plain),
                None => (keys.keyring.active_id(), Vec::new()),
            };
            mutations.push(Mutation::PutVersion {
                record: VersionRecord {
                    path: path.to_string(),
                    version,
                    created_at: c.created_at,
                    created_by: created_by.clone(),
                    state: c.state,
                    key_id,
                    ciphertext,
                    compromised: None,
                },
                expected_current: version - 1,
            });
            written.push(version);
        }
        // A secret with a state record (an expiry, a remembered generator)
        // keeps it; its labels follow the new newest version as a plain
        // write's would.
        if let Some((revision, state)) = existing.as_ref().and_then(|c| c.state.as_ref()) {
            let state = SecretState {
                current: None,
                previous: (given > 1).then(|| given - 1),
                previous_until: None,
                pending: None,
                ..state.clone()
            };
            mutations.push(Mutation::PutObject {
                kind: KIND_STATE.into(),
                key: path.to_string(),
                value: serde_json::to_vec(&state).expect("state serialises"),
                expect: Expect::Revision(*revision),
            });
        }
        tx.stage_mutations(&[&path], mutations);
        tx.commit().await.map_err(|e| match e {
            coffer_store::StoreError::Conflict(m) => {
                CoreError::Conflict(Conflict::Write(Box::new(Conflict::Store(m))))
            }
            e => e.into(),
        })?;
        // Noted once committed: a refused or failed history wrote nothing.
        for version in &written {
            audit::note_write(path.as_str(), *version);
        }
        audit::note_version(given);
        tracing::info!(
            actor = identity.display_name(),
            path = path.as_str(),
            written = written.len(),
            "secret history imported"
        );
        Ok(HistoryReceipt {
            path: path.to_string(),
            outcome,
            written,
            current_version: given,
        })
    }

    /// Checks a history before anything is looked up: its size, that a
    /// value is present exactly when a version is not destroyed, that times
    /// are in order, and each value as any write checks it.
    fn check_history(
        &self,
        path: &SecretPath,
        versions: &[HistoryVersion],
    ) -> Result<Vec<Checked>> {
        let invalid = |why: String| {
            CoreError::Invalid(InvalidInput::History {
                path: path.to_string(),
                why,
            })
        };
        if versions.is_empty() {
            return Err(invalid("a history needs at least one version".into()));
        }
        if versions.len() > MAX_HISTORY {
            return Err(invalid(format!(
                "a history holds at most {MAX_HISTORY} versions"
            )));
        }
        let mut checked: Vec<Checked> = Vec::with_capacity(versions.len());
        // Clocks differ a little; a history from the future does not (a
        // version dated ahead would hold off rotation and its alerts).
        let latest = crate::now_ms().saturating_add(5 * 60 * 1000);
        for (i, v) in versions.iter().enumerate() {
            let n = i + 1;
            if v.created_at < 0 {
                return Err(invalid(format!("version {n} was written before 1970")));
            }
            if v.created_at > latest {
                return Err(invalid(format!("version {n} is dated in the future")));
            }
            if let Some(previous) = checked.last()
                && v.created_at < previous.created_at
            {
                return Err(invalid(format!(
                    "version {n} was written before version {}",
                    n - 1
                )));
            }
            if let VersionState::Deleted(at) | VersionState::Destroyed(at) = v.state
                && at > latest
            {
                return Err(invalid(format!(
                    "version {n} is deleted or destroyed in the future"
                )));
            }
            let plaintext = match (&v.state, &v.value) {
                (VersionState::Destroyed(_), Some(_)) => {
                    return Err(invalid(format!(
                        "version {n} is destroyed and so can have no value"
                    )));
                }
                (VersionState::Destroyed(_), None) => None,
                (_, None) => {
                    return Err(invalid(format!(
                        "version {n} needs a value unless it is destroyed"
                    )));
                }
                (_, Some(value)) => Some(self.encode_checked(value)?),
            };
            if let VersionState::Deleted(at) | VersionState::Destroyed(at) = v.state
                && at < v.created_at
            {
                return Err(invalid(format!(
                    "version {n} was deleted or destroyed before it was written"
                )));
            }
            checked.push(Checked {
                created_at: v.created_at,
                state: v.state,
                plaintext,
            });
        }
        Ok(checked)
    }
}

/// Why a stored version is not the one a history names (`None`: it is).
/// Values are compared in constant time and never described.
fn differs(
    keys: &crate::seal::Keys,
    auth: &crate::auth::Authorized<'_>,
    stored: &VersionRecord,
    want: &Checked,
) -> Result<Option<String>> {
    if stored.created_at != want.created_at {
        return Ok(Some("written at another time".into()));
    }
    let state = |s: &VersionState| match s {
        VersionState::Active => "active",
        VersionState::Deleted(_) => "deleted",
        VersionState::Destroyed(_) => "destroyed",
    };
    if stored.state != want.state {
        return Ok(Some(if state(&stored.state) == state(&want.state) {
            format!("{} at another time", state(&stored.state))
        } else {
            format!(
                "{} in coffer, {} in the history",
                state(&stored.state),
                state(&want.state)
            )
        }));
    }
    let Some(plain) = &want.plaintext else {
        return Ok(None);
    };
    let value = open_value(keys, auth, stored)?;
    let same: bool = value.encode().ct_eq(plain).into();
    Ok((!same).then(|| "another value".to_string()))
}
