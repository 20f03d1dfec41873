//! Lifecycle use cases: lifecycle rules, rotation (immediate or staged),
//! promotion, expiry, the rotation status report and the scheduler's tick.
//!
//! A rotation writes a new version like any write, but needs only the
//! `rotate` capability, can generate the value on the server, and always
//! gives `previous` a grace period (the rules', the request's, or a day).
//! The scheduler acts for no token, like a login: it rotates what the rules
//! say is due, with the rules' generator, and reports what it did for the
//! server to audit.

use coffer_crypto::generate::Spec;
use coffer_policy::Pattern;
use coffer_store::{Expect, Mutation, VersionState};
use serde::Serialize;

use crate::auth::{Identity, Operation, Reveals};
use crate::error::{Conflict, CoreError, Integrity, InvalidInput, NotFound, Record, Result};
pub use crate::lifecycle::RotateReceipt;
use crate::lifecycle::{
    self, DEFAULT_GRACE_MS, KIND_RULE, KIND_STATE, Labels, Rule, RuleInfo, RuleSpec, SecretState,
    StoredRule,
};
use crate::path::{ListPrefix, SecretPath};
use crate::pgroles::PgRotation;
use crate::write::{AuditNote, Becomes, NewVersion};
use crate::{Coffer, SecretValue, audit, now_ms};

/// Who the scheduler's versions are written by.
pub const SCHEDULER: &str = "coffer-scheduler";

/// Most secrets a status report or a scheduler pass looks at.
pub const MAX_SCAN: usize = 100_000;

/// A rotation asked for by a person or a pipeline.
#[derive(Default)]
pub struct RotateRequest {
    /// The new value; `None`: generate one.
    pub value: Option<SecretValue>,
    /// The generator to use instead of the rules' one.
    pub generate: Option<Spec>,
    /// Only stage the new version as `pending`.
    pub stage: bool,
    /// Grace period for `previous`, instead of the rules' one.
    pub grace_ms: Option<i64>,
    /// For a secret that manages PostgreSQL roles: rotate even while
    /// `previous` is in its grace period (its role's password is replaced
    /// at once).
    pub force: bool,
}

/// Where a secret stands in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Standing {
    /// Expired: refused to every reader.
    Expired,
    /// Past its rotation date.
    Overdue,
    /// A staged rotation waits for `promote`.
    Pending,
    /// Expires within the warning window.
    Expiring,
    /// Comes due for rotation within the warning window.
    Due,
    /// Nothing to do.
    Ok,
}

impl Standing {
    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Standing::Expired => "expired",
            Standing::Overdue => "overdue",
            Standing::Pending => "pending",
            Standing::Expiring => "expiring",
            Standing::Due => "due",
            Standing::Ok => "ok",
        }
    }
}

/// One line of `coffer rotation status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusEntry {
    /// Canonical path.
    pub path: String,
    /// The worst standing.
    pub standing: Standing,
    /// Current version.
    pub current: u64,
    /// Pending version, if staged.
    pub pending: Option<u64>,
    /// When the current version was written (its last rotation).
    pub changed_at: i64,
    /// Rotation interval and the pattern that sets it.
    pub rotate_every_ms: Option<(i64, String)>,
    /// When the next rotation is due.
    pub due_at: Option<i64>,
    /// Whether the scheduler can rotate it (a generator applies).
    pub automatic: bool,
    /// Expiry.
    pub expires_at: Option<i64>,
}

/// What one scheduler pass did and found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TickReport {
    /// Rotated: path, new version, when `previous` stops being served.
    pub rotated: Vec<(String, u64, Option<i64>)>,
    /// Due, but no generator applies: path, due time.
    pub due_by_hand: Vec<(String, i64)>,
    /// Expiring within the warning window or expired: path, expiry.
    pub expiring: Vec<(String, i64)>,
    /// Rotations that failed: path, reason.
    pub failed: Vec<(String, String)>,
    /// Keyring keys added because the active one had sealed its share: id, when.
    pub keys_added: Vec<(u32, i64)>,
    /// Versions moved to the active keyring key in this pass.
    pub rewrapped: usize,
}

/// The generator a secret's state remembers, if it parses.
fn own_generator(state: Option<&SecretState>) -> Option<Spec> {
    state
        .and_then(|s| s.generator.as_deref())
        .and_then(|g| Spec::parse(g).ok())
}

/// Versions one scheduler pass moves to the active keyring key.
pub const REWRAP_BATCH: usize = 1000;

/// Expiries and due dates this close are reported as coming.
pub const WARNING_WINDOW_MS: i64 = 7 * 24 * 3600 * 1000;

impl Coffer {
    // ---- rules -----------------------------------------------------------------

    /// Loads the lifecycle rules, most specific first. A rule that fails to
    /// load is an integrity error: dropping it could let weak values in.
    pub(crate) async fn load_rules(&self) -> Result<Vec<Rule>> {
        let mut rules = Vec::new();
        for o in self.store.list_objects(KIND_RULE).await? {
            let pattern = Pattern::parse_stored(&o.key).map_err(|e| {
                CoreError::Corrupt(Integrity::StoredPattern {
                    what: "lifecycle rule",
                    cause: e,
                })
            })?;
            let stored: StoredRule = serde_json::from_slice(&o.value).map_err(|_| {
                CoreError::Corrupt(Integrity::Unreadable(Record::Rule {
                    pattern: o.key.clone(),
                }))
            })?;
            let generator = stored.spec.validate().map_err(|e| {
                CoreError::Corrupt(Integrity::InvalidRule {
                    pattern: o.key.clone(),
                    cause: Box::new(e),
                })
            })?;
            rules.push(Rule {
                pattern,
                spec: stored.spec,
                generator,
                created_by: crate::actor::Actor::parse(&stored.created_by).describe(),
                created_at: stored.created_at,
            });
        }
        lifecycle::sort_rules(&mut rules);
        Ok(rules)
    }

    /// Creates or replaces the lifecycle rule of a pattern (admin of
    /// `sys/lifecycle`).
    pub async fn set_rule(
        &self,
        identity: &Identity,
        pattern: &str,
        spec: RuleSpec,
    ) -> Result<RuleInfo> {
        let pattern = self.admit_pattern(identity, pattern, "sys/lifecycle")?;
        spec.validate()?;
        let stored = StoredRule {
            spec,
            created_by: crate::actor::Actor::stored_for(identity),
            created_at: now_ms(),
        };
        self.put_access_object(
            KIND_RULE,
            pattern.as_str(),
            serde_json::to_vec(&stored).expect("serialises"),
            Expect::Any,
        )
        .await?;
        tracing::info!(
            actor = identity.display_name(),
            pattern = pattern.as_str(),
            "lifecycle rule set"
        );
        Ok(RuleInfo {
            pattern: pattern.as_str().into(),
            spec: stored.spec,
            created_by: crate::actor::Actor::parse(&stored.created_by).describe(),
            created_at: stored.created_at,
        })
    }

    /// Removes the lifecycle rule of a pattern.
    pub async fn delete_rule(&self, identity: &Identity, pattern: &str) -> Result<()> {
        let pattern = self.admit_pattern(identity, pattern, "sys/lifecycle")?;
        self.delete_access_object(KIND_RULE, pattern.as_str(), || {
            CoreError::NotFound(NotFound::Rule {
                pattern: pattern.as_str().to_string(),
            })
        })
        .await?;
        tracing::warn!(
            actor = identity.display_name(),
            pattern = pattern.as_str(),
            "lifecycle rule removed"
        );
        Ok(())
    }

    /// Every lifecycle rule, most specific first, except those whose pattern
    /// a `deny` of the caller's policies matches (a rule's pattern can name a
    /// secret).
    pub fn list_rules(&self, identity: &Identity) -> Result<Vec<RuleInfo>> {
        self.require_unsealed()?;
        self.authorize(identity, Operation::Admin, "sys/lifecycle")?;
        let model = self.access_model();
        Ok(model
            .lifecycle
            .iter()
            .filter(|r| !crate::auth::denied_at(&model, identity, r.pattern.as_str()))
            .map(Rule::info)
            .collect())
    }

    // ---- rotation ------------------------------------------------------------

    /// Rotates a secret: a new version from the request's value or from a
    /// generator, which becomes `current` (the old one `previous`, for a
    /// grace period) or, with `stage`, `pending`.
    pub async fn rotate(
        &self,
        identity: &Identity,
        path: &str,
        request: RotateRequest,
    ) -> Result<RotateReceipt> {
        let path = SecretPath::parse(path)?;
        if let Some(g) = request.grace_ms
            && !(0..=lifecycle::MAX_PERIOD_MS).contains(&g)
        {
            return Err(CoreError::Invalid(InvalidInput::Grace));
        }
        self.require_unsealed()?;
        self.authorize(identity, Operation::Rotate, path.as_str())?;
        let effective = self.generator_for(&path).await?;
        if let Some(pg) = self.postgres_of(&path).await? {
            if request.value.is_some() {
                return Err(CoreError::Invalid(InvalidInput::ManagedValue {
                    path: path.to_string(),
                }));
            }
            let spec = match request.generate.or(effective.generator) {
                Some(s) => s,
                None => Spec::parse(crate::pgroles::DEFAULT_GENERATOR)
                    .expect("the default generator parses"),
            };
            let grace = request
                .grace_ms
                .or(effective.grace_ms)
                .unwrap_or(DEFAULT_GRACE_MS);
            let receipt = self
                .rotate_postgres(
                    &path,
                    &pg,
                    PgRotation {
                        created_by: &crate::actor::Actor::stored_for(identity),
                        spec: &spec,
                        stage: request.stage,
                        grace_ms: grace,
                        force: request.force,
                    },
                )
                .await?;
            audit::note_version(receipt.version);
            tracing::info!(
                actor = identity.display_name(),
                path = path.as_str(),
                version = receipt.version,
                staged = request.stage,
                "secret rotated"
            );
            return Ok(receipt);
        }
        if request.force {
            return Err(CoreError::Invalid(InvalidInput::ForceUnmanaged));
        }
        let (value, spec) = match (request.value, request.generate.or(effective.generator)) {
            (Some(_), Some(_)) if request.generate.is_some() => {
                return Err(CoreError::Invalid(InvalidInput::ValueAndGenerator));
            }
            (Some(v), _) => (v, None),
            (None, Some(spec)) => (SecretValue::Text(spec.generate()), Some(spec)),
            (None, None) => {
                return Err(CoreError::Invalid(InvalidInput::NoGenerator {
                    path: path.to_string(),
                }));
            }
        };
        let warnings = self.judge(&path, &value, spec.as_ref())?;
        let grace = request
            .grace_ms
            .or(effective.grace_ms)
            .unwrap_or(DEFAULT_GRACE_MS);
        let becomes = if request.stage {
            Becomes::Pending
        } else {
            Becomes::Current {
                grace_until: Some(now_ms().saturating_add(grace)),
            }
        };
        let (version, labels) = self
            .append(
                &path,
                &value,
                &crate::actor::Actor::stored_for(identity),
                becomes,
                spec.as_ref(),
            )
            .await?;
        audit::note_version(version);
        tracing::info!(
            actor = identity.display_name(),
            path = path.as_str(),
            version,
            staged = request.stage,
            "secret rotated"
        );
        Ok(RotateReceipt {
            path: path.to_string(),
            version,
            labels,
            generated: spec.is_some(),
            warnings,
        })
    }

    /// Appends a version that must build on an existing secret, under the
    /// write lock; returns its number and the labels afterwards.
    pub(crate) async fn append(
        &self,
        path: &SecretPath,
        value: &SecretValue,
        created_by: &str,
        becomes: Becomes,
        generated: Option<&Spec>,
    ) -> Result<(u64, Labels)> {
        let plaintext = self.encode_checked(value)?;
        let mut tx = self.begin_write(&[path], 1, AuditNote::Nothing).await?;
        let existing = tx.existing_secret(path).await?;
        let new = NewVersion {
            path,
            plaintext: &plaintext,
            created_by,
            becomes,
            generated,
            now: now_ms(),
        };
        let planned = tx.plan(&new, Some(&existing))?;
        let labels = planned.entry.labels();
        let receipt = tx.stage(planned);
        tx.commit().await.map_err(|e| match e {
            coffer_store::StoreError::Conflict(m) => {
                CoreError::Conflict(Conflict::Rotation(Box::new(Conflict::Store(m))))
            }
            e => e.into(),
        })?;
        Ok((receipt.version, labels))
    }

    /// Completes a staged rotation in one step: `pending` becomes `current`,
    /// the old `current` becomes `previous` for the grace period.
    pub async fn promote(
        &self,
        identity: &Identity,
        path: &str,
        grace_ms: Option<i64>,
    ) -> Result<RotateReceipt> {
        let path = self.admit(identity, Operation::Rotate, path)?;
        let grace = grace_ms
            .or(lifecycle::effective(&self.access_model().lifecycle, path.as_str()).grace_ms)
            .unwrap_or(DEFAULT_GRACE_MS);
        if let Some(pg) = self.postgres_of(&path).await? {
            let receipt = self.promote_postgres(&path, &pg, None, grace).await?;
            tracing::info!(
                actor = identity.display_name(),
                path = path.as_str(),
                version = receipt.version,
                "pending version promoted"
            );
            return Ok(receipt);
        }
        let receipt = self
            .change_state(&path, |labels, meta_head, state| {
                let pending = labels.pending.ok_or_else(|| {
                    CoreError::Conflict(Conflict::NothingToPromote {
                        path: path.to_string(),
                    })
                })?;
                Ok(state.promoted(labels, meta_head, pending, now_ms().saturating_add(grace)))
            })
            .await?;
        audit::note_version(receipt.version);
        tracing::info!(
            actor = identity.display_name(),
            path = path.as_str(),
            version = receipt.version,
            "pending version promoted"
        );
        Ok(receipt)
    }

    /// Drops a staged rotation: `pending` is forgotten (its version stays in
    /// the history), `current` stays.
    pub async fn cancel_rotation(&self, identity: &Identity, path: &str) -> Result<RotateReceipt> {
        let path = self.admit(identity, Operation::Rotate, path)?;
        if let Some(pg) = self.postgres_of(&path).await? {
            return self.cancel_postgres(&path, &pg).await;
        }
        self.change_state(&path, |labels, meta_head, state| {
            if labels.pending.is_none() {
                return Err(CoreError::Conflict(Conflict::NothingToCancel {
                    path: path.to_string(),
                }));
            }
            Ok(state.without_pending(labels, meta_head))
        })
        .await
    }

    /// Sets or clears a secret's expiry (needs `update`).
    pub async fn set_expiry(
        &self,
        identity: &Identity,
        path: &str,
        expires_at: Option<i64>,
    ) -> Result<RotateReceipt> {
        let path = self.admit(identity, Operation::Update, path)?;
        self.change_state(&path, |_, _, state| {
            Ok(SecretState {
                expires_at,
                ..state.clone()
            })
        })
        .await
    }

    /// Replaces a secret's state record under its write lock, with a
    /// check-and-set on the record's revision. `change` gets the labels, the
    /// newest version and the state as it is (made explicit from the labels
    /// when there is no record yet).
    pub(crate) async fn change_state(
        &self,
        path: &SecretPath,
        change: impl FnOnce(&Labels, u64, &SecretState) -> Result<SecretState>,
    ) -> Result<RotateReceipt> {
        let mut tx = self.begin_write(&[path], 0, AuditNote::Nothing).await?;
        let existing = tx.existing_secret(path).await?;
        let labels = existing.labels();
        let head = existing.meta.current_version;
        let (expect, state) = match &existing.state {
            Some((rev, s)) => (Expect::Revision(*rev), s.clone()),
            None => (
                Expect::Absent,
                SecretState {
                    previous: labels.previous,
                    ..SecretState::default()
                },
            ),
        };
        let next = change(&labels, head, &state)?;
        if let Some(v) = next.current.or(Some(head))
            && v != labels.current
        {
            // Promoting a version that was deleted meanwhile would serve nothing.
            let record = self.store.get_version(path.as_str(), v).await?;
            let Some(record) = record.filter(|r| r.state == VersionState::Active) else {
                return Err(CoreError::Conflict(Conflict::NotActive {
                    path: path.to_string(),
                    version: v,
                }));
            };
            crate::versions::refuse_compromised(&record)?;
        }
        tx.stage_mutations(
            &[path],
            [Mutation::PutObject {
                kind: KIND_STATE.into(),
                key: path.to_string(),
                value: serde_json::to_vec(&next).expect("state serialises"),
                expect,
            }],
        );
        tx.commit().await?;
        let labels = Labels::of(&existing.meta, Some(&next));
        Ok(RotateReceipt {
            path: path.to_string(),
            version: labels.current,
            labels,
            generated: false,
            warnings: Vec::new(),
        })
    }

    // ---- status and the scheduler --------------------------------------------

    /// The lifecycle standing of every secret under `prefix` that has a
    /// rotation interval, an expiry or a staged rotation, worst first.
    pub async fn rotation_status(
        &self,
        identity: &Identity,
        prefix: &str,
    ) -> Result<Vec<StatusEntry>> {
        let prefix = ListPrefix::parse(prefix)?;
        self.require_unsealed()?;
        let now = now_ms();
        let mut out = Vec::new();
        for path in self.scan(identity, &prefix).await? {
            if let Some(entry) = self.standing(&path, now).await? {
                out.push(entry);
            }
        }
        out.sort_by(|a, b| a.standing.cmp(&b.standing).then(a.path.cmp(&b.path)));
        Ok(out)
    }

    /// Every secret path below `prefix` (recursively) whose metadata the
    /// caller may see, at most [`MAX_SCAN`].
    async fn scan(&self, identity: &Identity, prefix: &ListPrefix) -> Result<Vec<SecretPath>> {
        let names = self
            .secrets_under(identity, prefix, Reveals::Metadata, true, MAX_SCAN)
            .await?
            .ok_or_else(|| {
                CoreError::Invalid(InvalidInput::TooManyToScan {
                    prefix: prefix.as_str().to_string(),
                    limit: MAX_SCAN,
                })
            })?;
        Ok(names
            .iter()
            .map(|name| prefix.child(name))
            .collect::<std::result::Result<_, _>>()?)
    }

    /// Every secret path below `prefix` (recursively), at most [`MAX_SCAN`],
    /// for the scheduler alone: it acts for no caller and shows what it finds
    /// to no one (its reports are alert records). The only listing in the
    /// core besides [`Coffer::enumerate`].
    async fn scheduler_scan(&self, prefix: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .store
                .list(&coffer_store::ListQuery {
                    prefix: prefix.to_string(),
                    recursive: true,
                    include_deleted: false,
                    after: after.take(),
                    limit: 1000,
                })
                .await?;
            for e in page.entries.into_iter().filter(|e| !e.folder) {
                if out.len() >= MAX_SCAN {
                    return Err(CoreError::Invalid(InvalidInput::TooManyToScan {
                        prefix: prefix.to_string(),
                        limit: MAX_SCAN,
                    }));
                }
                out.push(format!("{prefix}{}", e.name));
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(out),
            }
        }
    }

    /// One secret's standing, or `None` when nothing about it is scheduled.
    async fn standing(&self, path: &SecretPath, now: i64) -> Result<Option<StatusEntry>> {
        let Some(cached) = self.cached(path).await? else {
            return Ok(None);
        };
        let labels = cached.labels();
        let mut effective = lifecycle::effective(&self.access_model().lifecycle, path.as_str());
        if let Some(own) = own_generator(cached.state.as_ref().map(|(_, s)| s)) {
            effective.generator = Some(own);
        }
        if effective.rotate_every_ms.is_none()
            && labels.expires_at.is_none()
            && labels.pending.is_none()
        {
            return Ok(None);
        }
        let changed_at = cached.current.as_ref().map_or(0, |r| r.created_at);
        let due_at = effective
            .rotate_every_ms
            .as_ref()
            .map(|(every, _)| changed_at.saturating_add(*every));
        let mut standing = Standing::Ok;
        let mut worse = |s: Standing| standing = standing.min(s);
        if let Some(due) = due_at {
            let window = effective
                .rotate_every_ms
                .as_ref()
                .map_or(0, |(every, _)| (every / 10).min(WARNING_WINDOW_MS));
            if now >= due {
                worse(Standing::Overdue);
            } else if now >= due - window {
                worse(Standing::Due);
            }
        }
        if labels.pending.is_some() {
            worse(Standing::Pending);
        }
        if let Some(exp) = labels.expires_at {
            if now >= exp {
                worse(Standing::Expired);
            } else if now >= exp - WARNING_WINDOW_MS {
                worse(Standing::Expiring);
            }
        }
        Ok(Some(StatusEntry {
            path: path.to_string(),
            standing,
            current: labels.current,
            pending: labels.pending,
            changed_at,
            rotate_every_ms: effective.rotate_every_ms,
            due_at,
            automatic: effective.generator.is_some(),
            expires_at: labels.expires_at,
        }))
    }

    /// One pass of the scheduler: rotates every secret whose rotation is due
    /// and that a generator applies to, and reports the rest (due without a
    /// generator, expiring, failed). Acts for no token; the server audits
    /// what it reports. Does nothing while sealed.
    pub async fn lifecycle_tick(&self) -> Result<TickReport> {
        let mut report = TickReport::default();
        if !self.is_unsealed() {
            return Ok(report);
        }
        let model = self.access_model();
        let mut paths = std::collections::BTreeSet::new();
        for rule in model
            .lifecycle
            .iter()
            .filter(|r| r.spec.rotate_every_ms.is_some())
        {
            match lifecycle::listing_root(&rule.pattern) {
                None => {
                    paths.insert(rule.pattern.as_str().to_string());
                }
                Some(root) => {
                    for p in self.scheduler_scan(&root).await? {
                        if rule.pattern.matches(&p) {
                            paths.insert(p);
                        }
                    }
                }
            }
        }
        for o in self.store.list_objects(KIND_STATE).await? {
            paths.insert(o.key);
        }
        let now = now_ms();
        for path in paths {
            // A name that is not a path names no secret, so nothing is due.
            let Ok(secret) = SecretPath::parse(&path) else {
                continue;
            };
            let Some(entry) = self.standing(&secret, now).await? else {
                continue;
            };
            // Judged on its own: a secret both overdue and expiring is both.
            if let Some(exp) = entry.expires_at
                && now >= exp.saturating_sub(WARNING_WINDOW_MS)
            {
                report.expiring.push((path.clone(), exp));
            }
            let Some(due) = entry.due_at else { continue };
            if now < due || entry.pending.is_some() {
                continue;
            }
            if !entry.automatic {
                report.due_by_hand.push((path, due));
                continue;
            }
            match self.rotate_scheduled(&secret, now).await {
                Ok((version, until)) => report.rotated.push((path, version, until)),
                Err(e) => report.failed.push((path, e.to_string())),
            }
        }
        // A failing re-wrap must not hide what this pass already did.
        match self.rewrap(REWRAP_BATCH).await {
            Ok(n) => report.rewrapped = n,
            Err(e) => report
                .failed
                .push(("sys/keyring".into(), format!("re-wrap: {e}"))),
        }
        report.keys_added = self.keys_added().await;
        Ok(report)
    }

    /// The settings for `path`, with the generator the secret remembers (from
    /// its last generated value) taking precedence over the rules' one.
    async fn generator_for(&self, path: &SecretPath) -> Result<lifecycle::Effective> {
        let mut effective = lifecycle::effective(&self.access_model().lifecycle, path.as_str());
        if let Some(c) = self.cached(path).await?
            && let Some(own) = own_generator(c.state.as_ref().map(|(_, s)| s))
        {
            effective.generator = Some(own);
        }
        Ok(effective)
    }

    /// A rotation by the scheduler: the secret's or the rules' generator,
    /// and the rules' grace.
    async fn rotate_scheduled(&self, path: &SecretPath, now: i64) -> Result<(u64, Option<i64>)> {
        let effective = self.generator_for(path).await?;
        let spec = effective.generator.ok_or_else(|| {
            CoreError::Invalid(InvalidInput::NoRuleGenerator {
                path: path.to_string(),
            })
        })?;
        if let Some(pg) = self.postgres_of(path).await? {
            let grace = effective.grace_ms.unwrap_or(DEFAULT_GRACE_MS);
            let receipt = self
                .rotate_postgres(
                    path,
                    &pg,
                    PgRotation {
                        created_by: &crate::actor::Actor::stored_system(SCHEDULER),
                        spec: &spec,
                        stage: false,
                        grace_ms: grace,
                        force: false,
                    },
                )
                .await?;
            tracing::info!(
                path = path.as_str(),
                version = receipt.version,
                "scheduled rotation"
            );
            return Ok((receipt.version, receipt.labels.previous_until));
        }
        let value = SecretValue::Text(spec.generate());
        let grace_until = Some(now.saturating_add(effective.grace_ms.unwrap_or(DEFAULT_GRACE_MS)));
        let (version, labels) = self
            .append(
                path,
                &value,
                &crate::actor::Actor::stored_system(SCHEDULER),
                Becomes::Current { grace_until },
                Some(&spec),
            )
            .await?;
        tracing::info!(path = path.as_str(), version, "scheduled rotation");
        Ok((version, labels.previous_until))
    }
}
