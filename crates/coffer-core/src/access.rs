//! The access model's use cases: policies, scoped tokens, protected prefixes
//! and break-glass grants.
//!
//! Every method authorizes through [`Coffer::authorize`] before it reads or
//! changes anything. Administrative targets live under `sys/`:
//!
//! | target | what `admin` on it allows |
//! |---|---|
//! | `sys/policies/NAME` | read, write, delete policy NAME (`sys/policies/` lists) |
//! | `sys/tokens/ACCESSOR` | look up, renew, revoke someone else's token (`sys/tokens/` lists) |
//! | `sys/users/NAME` | show, disable, enable, remove a user (`sys/users/` lists) |
//! | `sys/invites` | invite users |
//! | `sys/protected` | mark and unmark protected prefixes, list them |
//! | `sys/breakglass` | list break-glass grants |
//! | `sys/seal`, `sys/rotate`, `sys/keyring` | operate the server |

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use coffer_crypto::{SecretString, token};
use coffer_policy::{Capability, Pattern, Policy};
use coffer_store::{Expect, Mutation, RevokeScope, StoreError, TokenRecord};
use serde::{Deserialize, Serialize};

use crate::auth::{AccessModel, BreakglassGrant, Identity, Operation, Protected, ROOT_POLICY};
use crate::duration::{format_duration_ms, parse_duration_ms};
use crate::error::{Integrity, NotFound, Record};
use crate::error::{InvalidInput, Refusal};
use crate::text::printable;
use crate::{Coffer, CoreError, ListPrefix, Result, SecretPath, now_ms};

pub(crate) const KIND_POLICY: &str = "policy";
pub(crate) const KIND_PROTECTED: &str = "protected";
pub(crate) const KIND_BREAKGLASS: &str = "breakglass";

/// Default lifetime of a token created without `ttl` (32 days, as Vault).
pub const DEFAULT_TOKEN_TTL_MS: i64 = 768 * 3600 * 1000;
/// Default and longest break-glass grant.
pub const DEFAULT_BREAKGLASS_TTL_MS: i64 = 15 * 60 * 1000;
/// Longest break-glass grant.
pub const MAX_BREAKGLASS_TTL_MS: i64 = 4 * 3600 * 1000;
/// Most CIDR blocks on one token.
const MAX_CIDRS: usize = 32;
/// Most policies on one token or user.
const MAX_POLICIES: usize = 64;
/// How far up a token's lineage an ownership check walks.
const MAX_LINEAGE: usize = 64;

/// A stored policy: its source text as written (the compiled form is rebuilt
/// from it).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredPolicy {
    source: String,
    updated_by: String,
    updated_at: i64,
}

/// A policy as `coffer policy read` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyInfo {
    /// Name.
    pub name: String,
    /// Source text.
    pub source: String,
    /// Who last wrote it.
    pub updated_by: String,
    /// Unix milliseconds of the last write.
    pub updated_at: i64,
    /// The stored record's revision, for a compare-and-set edit
    /// ([`PolicyExpect::Revision`]); 0 when not known.
    pub revision: u64,
}

/// What a policy write expects to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyExpect {
    /// Anything: create or replace.
    Any,
    /// No policy of that name (create only).
    Absent,
    /// The policy at this revision (an edit of what was shown).
    Revision(u64),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredProtected {
    created_by: String,
    created_at: i64,
}

/// A protected prefix as `coffer protected list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectedInfo {
    /// The pattern.
    pub pattern: String,
    /// Who marked it.
    pub created_by: String,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// What `coffer token create` asks for.
#[derive(Debug, Clone, Default)]
pub struct TokenRequest {
    /// Policy names; each must exist and be held by the creating token.
    pub policies: Vec<String>,
    /// Lifetime (and renewal period), e.g. `24h`; default 768h, never past the parent's.
    pub ttl: Option<String>,
    /// Hard limit that renewals cannot pass, e.g. `720h`.
    pub max_ttl: Option<String>,
    /// Number of requests the token may make.
    pub uses: Option<u64>,
    /// Networks the token may be used from.
    pub cidrs: Vec<String>,
    /// A name for people reading token lists.
    pub display_name: Option<String>,
}

/// A token's non-secret description.
pub type TokenView = TokenRecord;

/// What `coffer breakglass` asks for.
#[derive(Debug, Clone, Default)]
pub struct BreakglassRequest {
    /// A secret path, or a folder ending in `/`.
    pub path: String,
    /// Why; required.
    pub reason: String,
    /// How long; default 15m, at most 4h.
    pub ttl: Option<String>,
}

pub(crate) fn parse_cidrs(input: &[String]) -> Result<Vec<ipnet::IpNet>> {
    if input.len() > MAX_CIDRS {
        return Err(CoreError::Invalid(InvalidInput::TooManyNetworks {
            limit: MAX_CIDRS,
        }));
    }
    input
        .iter()
        .map(|c| {
            let c = c.trim();
            let net = c
                .parse::<ipnet::IpNet>()
                .or_else(|_| c.parse::<IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    CoreError::Invalid(InvalidInput::Network {
                        shown: printable(c),
                    })
                })?;
            Ok(net.trunc())
        })
        .collect()
}

/// Checks free text that ends up in records and logs (reasons); see
/// [`crate::text`].
pub(crate) fn check_label(what: &str, s: &str, max: usize) -> Result<String> {
    crate::text::check_free_text(what, s, max)
}

impl Coffer {
    /// Stores one object of the access model (a policy, a protected prefix,
    /// a break-glass grant, a lifecycle rule) and reloads the model: one
    /// change at a time on this node.
    pub(crate) async fn put_access_object(
        &self,
        kind: &str,
        key: &str,
        value: Vec<u8>,
        expect: Expect,
    ) -> Result<()> {
        let _w = self.access_writes.lock().await;
        self.store
            .commit(vec![Mutation::PutObject {
                kind: kind.into(),
                key: key.into(),
                value,
                expect,
            }])
            .await?;
        self.reload_access().await
    }

    /// Removes one object of the access model and reloads the model;
    /// `missing` is the error when there is no such object.
    pub(crate) async fn delete_access_object(
        &self,
        kind: &str,
        key: &str,
        missing: impl FnOnce() -> CoreError,
    ) -> Result<()> {
        let _w = self.access_writes.lock().await;
        let o = self
            .store
            .get_object(kind, key)
            .await?
            .ok_or_else(missing)?;
        self.store
            .commit(vec![Mutation::DeleteObject {
                kind: kind.into(),
                key: key.into(),
                expect: Expect::Revision(o.revision),
            }])
            .await?;
        self.reload_access().await
    }

    /// Loads policies, protected prefixes and live break-glass grants.
    pub(crate) async fn load_access_model(&self) -> Result<AccessModel> {
        let mut policies = HashMap::new();
        for o in self.store.list_objects(KIND_POLICY).await? {
            let compiled = serde_json::from_slice::<StoredPolicy>(&o.value)
                .ok()
                .and_then(|p| Policy::parse_stored(&p.source).ok());
            let policy = match compiled {
                Some(p) => p,
                None => {
                    // Failing closed: a policy that cannot be read denies
                    // everything to the tokens that carry it, rather than
                    // vanishing (which could drop a deny rule).
                    tracing::error!(policy = %o.key, "stored policy is unreadable; it now denies everything");
                    Policy::parse(r#"path "*" { capabilities = ["deny"] }"#)
                        .expect("the deny-all policy parses")
                }
            };
            policies.insert(o.key, Arc::new(policy));
        }
        let mut protected = Vec::new();
        for o in self.store.list_objects(KIND_PROTECTED).await? {
            let pattern = Pattern::parse_stored(&o.key).map_err(|e| {
                CoreError::Corrupt(Integrity::StoredPattern {
                    what: "protected prefix",
                    cause: e,
                })
            })?;
            let meta: StoredProtected = serde_json::from_slice(&o.value).map_err(|_| {
                CoreError::Corrupt(Integrity::Unreadable(Record::Protected {
                    prefix: o.key.clone(),
                }))
            })?;
            protected.push(Protected {
                pattern,
                created_by: crate::actor::Actor::parse(&meta.created_by).describe(),
                created_at: meta.created_at,
            });
        }
        let now = now_ms();
        let mut grants = Vec::new();
        for o in self.store.list_objects(KIND_BREAKGLASS).await? {
            let grant: BreakglassGrant = serde_json::from_slice(&o.value).map_err(|_| {
                CoreError::Corrupt(Integrity::Unreadable(Record::Breakglass {
                    key: o.key.clone(),
                }))
            })?;
            if grant.expires_at > now {
                grants.push(grant);
            }
        }
        let mut model = AccessModel::new(policies, protected, grants);
        model.lifecycle = self.load_rules().await?;
        Ok(model)
    }

    /// Reloads the access model after a change (this node's view; other nodes
    /// pick changes up when they reload).
    pub(crate) async fn reload_access(&self) -> Result<()> {
        self.require_unsealed()?;
        let model = self.load_access_model().await?;
        *self.access.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(model);
        Ok(())
    }

    /// Forgets every cached token, so revocations take effect at the next
    /// request.
    pub(crate) fn forget_tokens(&self) {
        self.tokens
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    // ---- policies ------------------------------------------------------------

    /// Creates or replaces a policy.
    pub async fn write_policy(
        &self,
        identity: &Identity,
        name: &str,
        source: &str,
    ) -> Result<PolicyInfo> {
        self.write_policy_expecting(identity, name, source, PolicyExpect::Any)
            .await
    }

    /// Writes a policy if the stored one is as `expect` says: absent (a
    /// create never replaces) or at a revision (an edit of what was shown
    /// is not saved over someone else's later change).
    pub async fn write_policy_expecting(
        &self,
        identity: &Identity,
        name: &str,
        source: &str,
        expect: PolicyExpect,
    ) -> Result<PolicyInfo> {
        coffer_policy::validate_policy_name(name)
            .map_err(|e| CoreError::Invalid(InvalidInput::PolicyName(e)))?;
        if crate::text::looks_like(name, ROOT_POLICY) {
            // Token and user listings show policy names; `r00t` there would
            // read as the policy that grants everything.
            return Err(CoreError::Invalid(InvalidInput::LooksLikeRoot {
                name: name.to_string(),
                root: ROOT_POLICY,
            }));
        }
        let target = format!("sys/policies/{name}");
        self.require_unsealed()?;
        self.authorize(identity, Operation::Admin, &target)?;
        let parsed = Policy::parse(source).map_err(|e| {
            CoreError::Invalid(InvalidInput::Policy {
                name: name.to_string(),
                cause: e,
            })
        })?;
        // Patterns refuse token shapes; a comment could still carry one
        // into storage and into every `coffer policy read`.
        crate::text::refuse_credential(&format!("policy {name}"), source)?;
        self.check_policy_within(identity, name, &parsed)?;
        let stored = StoredPolicy {
            source: source.to_string(),
            updated_by: crate::actor::Actor::stored_for(identity),
            updated_at: now_ms(),
        };
        let store_expect = match expect {
            PolicyExpect::Any => Expect::Any,
            PolicyExpect::Absent => Expect::Absent,
            PolicyExpect::Revision(r) => Expect::Revision(r),
        };
        self.put_access_object(
            KIND_POLICY,
            name,
            serde_json::to_vec(&stored).expect("policy serialises"),
            store_expect,
        )
        .await
        .map_err(|e| match (e, expect) {
            (CoreError::Conflict(_), PolicyExpect::Absent) => {
                CoreError::Conflict(crate::error::Conflict::PolicyExists {
                    name: name.to_string(),
                })
            }
            (CoreError::Conflict(_), PolicyExpect::Revision(_)) => {
                CoreError::Conflict(crate::error::Conflict::PolicyChanged {
                    name: name.to_string(),
                })
            }
            (e, _) => e,
        })?;
        tracing::info!(
            actor = identity.display_name(),
            policy = name,
            "policy written"
        );
        Ok(PolicyInfo {
            name: name.into(),
            source: stored.source,
            updated_by: crate::actor::Actor::parse(&stored.updated_by).describe(),
            updated_at: stored.updated_at,
            revision: 0,
        })
    }

    /// Reads a policy's source.
    pub async fn read_policy(&self, identity: &Identity, name: &str) -> Result<PolicyInfo> {
        coffer_policy::validate_policy_name(name)
            .or_else(|e| if name == ROOT_POLICY { Ok(()) } else { Err(e) })
            .map_err(|e| CoreError::Invalid(InvalidInput::PolicyName(e)))?;
        self.require_unsealed()?;
        self.authorize(identity, Operation::Admin, &format!("sys/policies/{name}"))?;
        if name == ROOT_POLICY {
            return Err(CoreError::NotFound(NotFound::BuiltInPolicy));
        }
        let o = self
            .store
            .get_object(KIND_POLICY, name)
            .await?
            .ok_or_else(|| {
                CoreError::NotFound(NotFound::Policy {
                    name: name.to_string(),
                })
            })?;
        let p: StoredPolicy = serde_json::from_slice(&o.value).map_err(|_| {
            CoreError::Corrupt(Integrity::Unreadable(Record::Policy {
                name: name.to_string(),
            }))
        })?;
        Ok(PolicyInfo {
            name: name.into(),
            source: p.source,
            updated_by: crate::actor::Actor::parse(&p.updated_by).describe(),
            updated_at: p.updated_at,
            revision: o.revision,
        })
    }

    /// Names of every policy, `root` first, except those whose
    /// `sys/policies/NAME` a `deny` of the caller's matches.
    pub async fn list_policies(&self, identity: &Identity) -> Result<Vec<String>> {
        self.require_unsealed()?;
        self.authorize(identity, Operation::Admin, "sys/policies/")?;
        let model = self.access_model();
        let mut names = vec![ROOT_POLICY.to_string()];
        names.extend(
            self.store
                .list_objects(KIND_POLICY)
                .await?
                .into_iter()
                .map(|o| o.key),
        );
        names.retain(|n| !crate::auth::denied_at(&model, identity, &format!("sys/policies/{n}")));
        Ok(names)
    }

    /// Deletes a policy. Tokens that carry it lose what it granted at once.
    pub async fn delete_policy(&self, identity: &Identity, name: &str) -> Result<()> {
        if name == ROOT_POLICY {
            return Err(CoreError::Invalid(InvalidInput::RootBuiltIn));
        }
        coffer_policy::validate_policy_name(name)
            .map_err(|e| CoreError::Invalid(InvalidInput::PolicyName(e)))?;
        self.require_unsealed()?;
        self.authorize(identity, Operation::Admin, &format!("sys/policies/{name}"))?;
        self.delete_access_object(KIND_POLICY, name, || {
            CoreError::NotFound(NotFound::Policy {
                name: name.to_string(),
            })
        })
        .await?;
        tracing::info!(
            actor = identity.display_name(),
            policy = name,
            "policy deleted"
        );
        Ok(())
    }

    /// Checks that a policy written by `identity` grants nothing beyond what
    /// `identity` itself may do, and drops none of the `deny` rules the
    /// stored policy has (removing a deny widens every holder). Root may
    /// write anything.
    ///
    /// Conservative where exactness would be costly: each allow rule needs
    /// one rule of the writer whose pattern contains it with the capability
    /// (two narrower rules that together cover it do not count), and every
    /// deny of the writer's that overlaps it must be contained in a deny of
    /// the new policy.
    pub(crate) fn check_policy_within(
        &self,
        identity: &Identity,
        name: &str,
        new: &Policy,
    ) -> Result<()> {
        if identity.is_root() {
            return Ok(());
        }
        let model = self.access_model();
        let own: Vec<&coffer_policy::Rule> = identity
            .policies()
            .iter()
            .filter_map(|p| model.policy(p))
            .flat_map(|p| p.rules())
            .collect();
        let is_deny = |r: &coffer_policy::Rule| r.capabilities.contains(Capability::Deny);
        let new_denies: Vec<&Pattern> = new
            .rules()
            .iter()
            .filter(|r| is_deny(r))
            .map(|r| &r.pattern)
            .collect();
        let refuse = |what: String| {
            CoreError::Forbidden(Refusal::PolicyWidens {
                policy: name.to_string(),
                what,
            })
        };
        // A stored policy may hold a token-shaped pattern from before such
        // patterns were refused; it is not shown.
        let shown = |p: &Pattern| {
            if coffer_policy::contains_credential(p.as_str()) {
                "(a pattern not shown: it looks like a credential)".to_string()
            } else {
                format!("\"{p}\"")
            }
        };
        // A rule that says deny grants nothing, whatever else it lists.
        for rule in new.rules().iter().filter(|r| !is_deny(r)) {
            for cap in rule.capabilities.iter() {
                let granted = own.iter().any(|r| {
                    !is_deny(r) && r.capabilities.contains(cap) && r.pattern.contains(&rule.pattern)
                });
                if !granted {
                    return Err(refuse(format!(
                        "{cap} on {} is not granted to this token there",
                        shown(&rule.pattern)
                    )));
                }
            }
            if let Some(deny) = own.iter().find(|r| {
                is_deny(r)
                    && r.pattern.overlaps(&rule.pattern)
                    && !new_denies.iter().any(|d| d.contains(&r.pattern))
            }) {
                return Err(refuse(format!(
                    "{} reaches into {}, which this token is denied, and the policy does not \
                     deny it",
                    shown(&rule.pattern),
                    shown(&deny.pattern)
                )));
            }
        }
        if let Some(old) = model.policy(name) {
            for rule in old.rules().iter().filter(|r| is_deny(r)) {
                if !new_denies.iter().any(|d| d.contains(&rule.pattern)) {
                    return Err(refuse(format!(
                        "it drops the deny on {} (only a root token may remove a deny)",
                        shown(&rule.pattern)
                    )));
                }
            }
        }
        Ok(())
    }

    /// Checks that every name is an existing policy (or root) that `identity`
    /// holds, so nothing it hands out exceeds what it has.
    pub(crate) fn check_grantable(&self, identity: &Identity, policies: &[String]) -> Result<()> {
        if policies.is_empty() {
            return Err(CoreError::Invalid(InvalidInput::NoPolicies));
        }
        if policies.len() > MAX_POLICIES {
            return Err(CoreError::Invalid(InvalidInput::TooManyPolicies {
                limit: MAX_POLICIES,
            }));
        }
        let model = self.access_model();
        for p in policies {
            // Holding is checked first: a caller who may not give a policy
            // away learns nothing about whether it exists.
            if !identity.is_root() && !identity.policies().contains(p) {
                let shown = if coffer_policy::validate_policy_name(p).is_ok()
                    && !coffer_policy::contains_credential(p)
                {
                    p.clone()
                } else {
                    printable(p)
                };
                return Err(CoreError::Forbidden(Refusal::PolicyNotHeld { shown }));
            }
            if p != ROOT_POLICY && model.policy(p).is_none() {
                return Err(CoreError::Invalid(InvalidInput::UnknownPolicy {
                    shown: printable(p),
                }));
            }
        }
        Ok(())
    }

    // ---- tokens --------------------------------------------------------------

    /// Creates a child token of `identity`. The child never has more than its
    /// parent: a subset of its policies, an expiry no later than the parent's,
    /// networks inside the parent's, and the parent's kind and user.
    pub async fn create_token(
        &self,
        identity: &Identity,
        request: &TokenRequest,
    ) -> Result<(SecretString, TokenView)> {
        let keys = self.unsealed()?;
        self.authorize(identity, Operation::SelfService, "sys/tokens/create")?;
        let parent = identity.token();
        if parent.uses_limit.is_some() {
            return Err(CoreError::Invalid(InvalidInput::UseLimitedParent));
        }
        let mut policies = request.policies.clone();
        policies.sort();
        policies.dedup();
        self.check_grantable(identity, &policies)?;
        let now = now_ms();
        let ttl = match &request.ttl {
            Some(t) => {
                parse_duration_ms(t).map_err(|e| CoreError::Invalid(InvalidInput::Duration(e)))?
            }
            None => DEFAULT_TOKEN_TTL_MS,
        };
        let max_ttl = request
            .max_ttl
            .as_deref()
            .map(parse_duration_ms)
            .transpose()
            .map_err(|e| CoreError::Invalid(InvalidInput::Duration(e)))?;
        if let Some(max) = max_ttl
            && max < ttl
        {
            return Err(CoreError::Invalid(InvalidInput::MaxTtlBelowTtl {
                max_ms: max,
                ttl_ms: ttl,
            }));
        }
        let mut max_expires_at = max_ttl.map(|m| now + m);
        for cap in [parent.max_expires_at, parent.expires_at]
            .into_iter()
            .flatten()
        {
            max_expires_at = Some(max_expires_at.map_or(cap, |m| m.min(cap)));
        }
        let mut expires_at = now + ttl;
        if let Some(cap) = max_expires_at {
            expires_at = expires_at.min(cap);
        }
        if expires_at <= now {
            return Err(CoreError::Invalid(InvalidInput::ParentExpired));
        }
        if request.uses == Some(0) {
            return Err(CoreError::Invalid(InvalidInput::ZeroUses));
        }
        let mut cidrs = parse_cidrs(&request.cidrs)?;
        if !parent.cidrs.is_empty() {
            let parent_nets = parse_cidrs(&parent.cidrs)?;
            if cidrs.is_empty() {
                cidrs = parent_nets;
            } else if let Some(out) = cidrs
                .iter()
                .find(|c| !parent_nets.iter().any(|p| p.contains(*c)))
            {
                return Err(CoreError::Forbidden(Refusal::NetworkOutside {
                    network: out.to_string(),
                }));
            }
        }
        let display_name = match &request.display_name {
            // App-role logins name their tokens `approle:NAME/...`, and the
            // audit log names their caller so: no other token may claim it.
            Some(d)
                if d.trim_start()
                    .to_lowercase()
                    .starts_with(crate::actor::APPROLE_PREFIX) =>
            {
                return Err(CoreError::Invalid(InvalidInput::AppRoleDisplayName));
            }
            Some(d) => crate::text::check_name("a display name", d, 128)?,
            None => "token".to_string(),
        };
        let raw = token::generate_token();
        let record = TokenRecord {
            hash: keys.keyring.token_hash(raw.expose_secret()),
            accessor: token::generate_accessor(),
            display_name,
            policies,
            created_at: now,
            expires_at: Some(expires_at),
            parent: Some(parent.accessor.clone()),
            kind: parent.kind,
            user: parent.user.clone(),
            ttl_ms: Some(ttl),
            max_expires_at,
            uses_limit: request.uses,
            uses_left: request.uses,
            cidrs: cidrs.iter().map(ToString::to_string).collect(),
            // A child of a workload's token acts for the same workload.
            workload: parent.workload.clone(),
        };
        match self
            .store
            .commit(vec![Mutation::PutToken(record.clone())])
            .await
        {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                return Err(CoreError::Unauthenticated);
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(
            actor = identity.display_name(),
            accessor = %record.accessor,
            policies = ?record.policies,
            "token created"
        );
        Ok((raw, record))
    }

    /// Finds the token `accessor` names (the caller's own with `None`) and
    /// checks that the caller may act on it: it is the caller's own token, a
    /// descendant of it, a token of the same user, or the caller is an admin
    /// of `sys/tokens/ACCESSOR`. Callers who may not learn whether a token
    /// exists get the same refusal either way.
    async fn managed_token(
        &self,
        identity: &Identity,
        accessor: Option<&str>,
    ) -> Result<TokenRecord> {
        self.require_unsealed()?;
        let own = identity.accessor();
        let Some(accessor) = accessor.filter(|a| *a != own) else {
            self.authorize(identity, Operation::SelfService, "sys/tokens/self")?;
            return self
                .store
                .get_token_by_accessor(own)
                .await?
                .ok_or(CoreError::Unauthenticated);
        };
        if !token::is_accessor_well_formed(accessor) {
            return Err(CoreError::Invalid(InvalidInput::Accessor {
                shown: printable(accessor),
            }));
        }
        let target = format!("sys/tokens/{accessor}");
        let admin = self.authorize(identity, Operation::Admin, &target).is_ok();
        let record = self.store.get_token_by_accessor(accessor).await?;
        let Some(record) = record else {
            return Err(if admin {
                CoreError::NotFound(NotFound::Token {
                    accessor: accessor.to_string(),
                })
            } else {
                denied_token(accessor)
            });
        };
        if admin
            || (identity.is_human()
                && record.user.is_some()
                && record.user == identity.token().user)
        {
            return Ok(record);
        }
        // Walk up from the target: the caller owns it if it is an ancestor.
        let mut parent = record.parent.clone();
        for _ in 0..MAX_LINEAGE {
            let Some(p) = parent else { break };
            if p == own {
                return Ok(record);
            }
            parent = self
                .store
                .get_token_by_accessor(&p)
                .await?
                .and_then(|t| t.parent);
        }
        Err(denied_token(accessor))
    }

    /// A token's description (the caller's own with `None`).
    pub async fn lookup_token(
        &self,
        identity: &Identity,
        accessor: Option<&str>,
    ) -> Result<TokenView> {
        self.managed_token(identity, accessor).await
    }

    /// Extends a token's life by its ttl, never past its max ttl or its
    /// parent's expiry.
    pub async fn renew_token(
        &self,
        identity: &Identity,
        accessor: Option<&str>,
    ) -> Result<TokenView> {
        let mut record = self.managed_token(identity, accessor).await?;
        let Some(ttl) = record.ttl_ms else {
            return Err(CoreError::Invalid(InvalidInput::NotRenewable));
        };
        let now = now_ms();
        let mut expires_at = now + ttl;
        if let Some(max) = record.max_expires_at {
            expires_at = expires_at.min(max);
        }
        if let Some(p) = &record.parent
            && let Some(parent) = self.store.get_token_by_accessor(p).await?
            && let Some(pe) = parent.expires_at
        {
            expires_at = expires_at.min(pe);
        }
        if expires_at <= now {
            return Err(CoreError::Invalid(InvalidInput::MaxTtlReached));
        }
        match self
            .store
            .commit(vec![Mutation::SetTokenExpiry {
                accessor: record.accessor.clone(),
                expires_at,
            }])
            .await
        {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => return Err(CoreError::Unauthenticated),
            Err(e) => return Err(e.into()),
        }
        self.forget_tokens();
        record.expires_at = Some(expires_at);
        Ok(record)
    }

    /// Revokes a token and every token created from it.
    pub async fn revoke_token(&self, identity: &Identity, accessor: Option<&str>) -> Result<()> {
        let record = self.managed_token(identity, accessor).await?;
        self.store
            .commit(vec![Mutation::RevokeTokens(RevokeScope::Tree(
                record.accessor.clone(),
            ))])
            .await?;
        self.forget_tokens();
        tracing::info!(
            actor = identity.display_name(),
            accessor = %record.accessor,
            "token revoked with its descendants"
        );
        Ok(())
    }

    /// Every token (admin of `sys/tokens/`), except those whose
    /// `sys/tokens/ACCESSOR` a `deny` of the caller's matches.
    pub async fn list_tokens(&self, identity: &Identity) -> Result<Vec<TokenView>> {
        self.require_unsealed()?;
        self.authorize(identity, Operation::Admin, "sys/tokens/")?;
        let model = self.access_model();
        let mut tokens = self.store.list_tokens().await?;
        tokens.retain(|t| {
            !crate::auth::denied_at(&model, identity, &format!("sys/tokens/{}", t.accessor))
        });
        Ok(tokens)
    }

    // ---- protected prefixes ----------------------------------------------------

    /// Marks a pattern protected: people cannot read values under it.
    pub async fn protect(&self, identity: &Identity, pattern: &str) -> Result<ProtectedInfo> {
        let pattern = self.admit_pattern(identity, pattern, "sys/protected")?;
        let stored = StoredProtected {
            created_by: crate::actor::Actor::stored_for(identity),
            created_at: now_ms(),
        };
        self.put_access_object(
            KIND_PROTECTED,
            pattern.as_str(),
            serde_json::to_vec(&stored).expect("serialises"),
            Expect::Any,
        )
        .await?;
        tracing::info!(
            actor = identity.display_name(),
            pattern = pattern.as_str(),
            "prefix protected"
        );
        Ok(ProtectedInfo {
            pattern: pattern.as_str().into(),
            created_by: crate::actor::Actor::parse(&stored.created_by).describe(),
            created_at: stored.created_at,
        })
    }

    /// Removes a protection.
    pub async fn unprotect(&self, identity: &Identity, pattern: &str) -> Result<()> {
        let pattern = self.admit_pattern(identity, pattern, "sys/protected")?;
        self.delete_access_object(KIND_PROTECTED, pattern.as_str(), || {
            CoreError::NotFound(NotFound::Protected {
                pattern: pattern.as_str().to_string(),
            })
        })
        .await?;
        tracing::warn!(
            actor = identity.display_name(),
            pattern = pattern.as_str(),
            "protection removed"
        );
        Ok(())
    }

    /// Every protected pattern.
    pub async fn list_protected(&self, identity: &Identity) -> Result<Vec<ProtectedInfo>> {
        self.require_unsealed()?;
        self.authorize(identity, Operation::Admin, "sys/protected")?;
        let model = self.access_model();
        Ok(model
            .protected
            .iter()
            .filter(|p| !crate::auth::denied_at(&model, identity, p.pattern.as_str()))
            .map(|p| ProtectedInfo {
                pattern: p.pattern.as_str().into(),
                created_by: p.created_by.clone(),
                created_at: p.created_at,
            })
            .collect())
    }

    // ---- break-glass -----------------------------------------------------------

    /// Grants the calling person a time-limited read of a protected secret (or
    /// of every secret below a protected folder). Needs `breakglass` on the
    /// target and a reason; raised as an alert.
    pub async fn breakglass(
        &self,
        identity: &Identity,
        request: &BreakglassRequest,
    ) -> Result<BreakglassGrant> {
        let target = if request.path.ends_with('/') {
            ListPrefix::parse(&request.path)?.as_str().to_string()
        } else {
            SecretPath::parse(&request.path)?.as_str().to_string()
        };
        if target.is_empty() {
            return Err(CoreError::Invalid(InvalidInput::BreakglassEverything));
        }
        let reason = check_label("a reason", &request.reason, 500)?;
        if reason.chars().count() < 4 {
            return Err(CoreError::Invalid(InvalidInput::BreakglassReason));
        }
        let ttl = match &request.ttl {
            Some(t) => {
                parse_duration_ms(t).map_err(|e| CoreError::Invalid(InvalidInput::Duration(e)))?
            }
            None => DEFAULT_BREAKGLASS_TTL_MS,
        };
        if ttl > MAX_BREAKGLASS_TTL_MS {
            return Err(CoreError::Invalid(InvalidInput::BreakglassTtl {
                max_ms: MAX_BREAKGLASS_TTL_MS,
            }));
        }
        self.require_unsealed()?;
        let Some(user) = identity.user().filter(|_| identity.is_human()) else {
            return Err(CoreError::Invalid(InvalidInput::BreakglassForService));
        };
        self.authorize(identity, Operation::Breakglass, &target)?;
        if !self.access_model().is_protected(&target) {
            return Err(CoreError::Invalid(InvalidInput::NotProtected {
                target: target.to_string(),
            }));
        }
        let now = now_ms();
        let grant = BreakglassGrant {
            id: token::generate_accessor().replacen("acc_", "bg_", 1),
            user: user.to_string(),
            accessor: identity.accessor().to_string(),
            target: target.clone(),
            reason,
            created_at: now,
            expires_at: now + ttl,
        };
        self.put_access_object(
            KIND_BREAKGLASS,
            &grant.id,
            serde_json::to_vec(&grant).expect("serialises"),
            Expect::Absent,
        )
        .await?;
        tracing::warn!(
            target: "coffer::alert",
            alert = "breakglass_granted",
            user = %grant.user,
            accessor = %grant.accessor,
            path = %grant.target,
            reason = %grant.reason,
            expires_in = %format_duration_ms(ttl),
            "break-glass access granted"
        );
        Ok(grant)
    }

    /// Live break-glass grants (admin of `sys/breakglass`).
    pub async fn list_breakglass(&self, identity: &Identity) -> Result<Vec<BreakglassGrant>> {
        self.require_unsealed()?;
        self.authorize(identity, Operation::Admin, "sys/breakglass")?;
        let now = now_ms();
        let model = self.access_model();
        Ok(model
            .grants
            .iter()
            .filter(|g| g.expires_at > now && !crate::auth::denied_at(&model, identity, &g.target))
            .cloned()
            .collect())
    }
}

fn denied_token(accessor: &str) -> CoreError {
    CoreError::Forbidden(Refusal::Token {
        accessor: accessor.to_string(),
    })
}
