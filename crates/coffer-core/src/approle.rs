//! App roles: short-lived tokens for machines with no platform identity.
//!
//! An app role names the policies, token lifetime, token use limit and
//! networks of the tokens its logins get. A machine logs in with two
//! parts: the role id (`rid_` + 24 base62 characters), an identifier that
//! is random but not secret, and a secret id (`cfs_...`, checksummed like
//! a token, so scanners find a leaked one), which is shown once when it is
//! created and stored only as its keyed hash (the keyring's token HMAC).
//! A secret id has an expiry and a use count; each login spends one use
//! with a check-and-set on its record in the same store commit as the new
//! token, so two logins racing for the last use get one token between
//! them, on every backend and every node.
//!
//! Every refused login gets the same answer whatever failed (unknown role
//! id, unknown secret id, a secret id of another role, expired, used up,
//! outside the role's networks); the audit record says which. Failed logins
//! are counted per role and paced past [`crate::MAX_FAILED_LOGINS`] an
//! hour, as password logins are per account.
//!
//! Tokens from a login carry the identity `approle:NAME` (their `user`,
//! which no person's name can be: user names refuse `:`) and the secret
//! id's accessor (their display name is `approle:NAME/ACCESSOR`), and a
//! [`crate::workload::Workload`] like a JWT login's: method `approle`, the
//! role, and the secret id's accessor as its subject. Revoking
//! a secret id revokes the tokens it logged in; deleting a role deletes its
//! secret ids and revokes every token its logins issued, and their
//! children.
//!
//! Managing a role needs `admin` on `sys/auth/approle/NAME` (listing, on
//! `sys/auth/approle/`); logging in needs only the two ids.

use std::net::IpAddr;
use std::sync::Arc;

use coffer_crypto::{SecretString, token};
use coffer_store::{Expect, Mutation, RevokeScope, StoreError, TokenKind, TokenRecord};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::access::{TokenView, parse_cidrs};
use crate::auth::{Identity, Operation};
use crate::duration::{format_duration_ms, parse_duration_ms};
use crate::error::{AppRoleRefusal, Busy, Conflict, Integrity, InvalidInput, NotFound, Record};
use crate::text::printable;
use crate::users::StoredFailures;
use crate::{Coffer, CoreError, LOGIN_PACE_MS, MAX_FAILED_LOGINS, Result, now_ms};

const KIND_ROLE: &str = "approle";
const KIND_ROLE_ID: &str = "approle-id";
const KIND_SECRET_ID: &str = "approle-secret-id";
const KIND_FAILURES: &str = "approle-failures";

/// What an app-role token's identity starts with: `approle:NAME`.
pub const IDENTITY_PREFIX: &str = crate::actor::APPROLE_PREFIX;
/// The policy target that `admin` is checked on: this plus the role's name
/// (this alone for listing).
pub const ADMIN_PREFIX: &str = "sys/auth/approle/";
/// Prefix of role ids.
pub const ROLE_ID_PREFIX: &str = "rid_";
/// Prefix of secret-id accessors.
pub const SECRET_ID_ACCESSOR_PREFIX: &str = "sia_";
/// Default lifetime of a login's token.
pub const DEFAULT_TOKEN_TTL_MS: i64 = 15 * 60 * 1000;
/// Longest lifetime of a login's token: these tokens are meant to be
/// short-lived; a job that runs longer logs in again.
pub const MAX_TOKEN_TTL_MS: i64 = 24 * 3600 * 1000;
/// Default lifetime of a secret id.
pub const DEFAULT_SECRET_ID_TTL_MS: i64 = 24 * 3600 * 1000;
/// Longest lifetime of a secret id.
pub const MAX_SECRET_ID_TTL_MS: i64 = 90 * 24 * 3600 * 1000;
/// Default uses of a secret id: one, so that a copy of a used one is
/// worthless and a stolen one that is used first shows up as the owner's
/// failed login.
pub const DEFAULT_SECRET_ID_USES: u64 = 1;
/// Most uses of one secret id.
pub const MAX_SECRET_ID_USES: u64 = 1_000_000;
/// Most live secret ids per role.
pub const MAX_SECRET_IDS: usize = 1_000;
const MAX_NAME_LEN: usize = 64;
/// Rounds of a login that lost a use to a concurrent one before it gives up.
const LOGIN_RETRIES: usize = 8;

#[derive(Clone, Serialize, Deserialize)]
struct StoredRole {
    role_id: String,
    policies: Vec<String>,
    token_ttl_ms: i64,
    token_uses: Option<u64>,
    secret_id_ttl_ms: i64,
    secret_id_uses: u64,
    cidrs: Vec<String>,
    created_by: String,
    created_at: i64,
}

#[derive(Clone, Serialize, Deserialize)]
struct StoredSecretId {
    role: String,
    accessor: String,
    created_at: i64,
    expires_at: i64,
    uses_left: u64,
}

/// What `coffer approle create` asks for.
#[derive(Debug, Clone, Default)]
pub struct AppRoleSpec {
    /// Policies of the tokens; the creator must hold each.
    pub policies: Vec<String>,
    /// Lifetime of a login's token (default 15m, at most 24h).
    pub token_ttl: Option<String>,
    /// Requests a login's token may make (default unlimited).
    pub token_uses: Option<u64>,
    /// Lifetime of a secret id (default 24h, at most 90 days).
    pub secret_id_ttl: Option<String>,
    /// Logins one secret id allows (default 1).
    pub secret_id_uses: Option<u64>,
    /// Networks logins may come from; the tokens are bound to them.
    pub cidrs: Vec<String>,
}

/// An app role as `coffer approle read` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRoleInfo {
    /// Name.
    pub name: String,
    /// The role id (an identifier, not a secret).
    pub role_id: String,
    /// Policies of the tokens.
    pub policies: Vec<String>,
    /// Lifetime of a token, in milliseconds.
    pub token_ttl_ms: i64,
    /// Requests a token may make; `None` is unlimited.
    pub token_uses: Option<u64>,
    /// Lifetime of a secret id, in milliseconds.
    pub secret_id_ttl_ms: i64,
    /// Logins per secret id.
    pub secret_id_uses: u64,
    /// Networks.
    pub cidrs: Vec<String>,
    /// Who created it.
    pub created_by: String,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// A secret id's public description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretIdInfo {
    /// The accessor (a handle, not a secret).
    pub accessor: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub expires_at: i64,
    /// Logins left.
    pub uses_left: u64,
}

/// A new secret id: shown once. No `Debug`: it holds the secret.
pub struct NewSecretId {
    /// The secret id.
    pub secret_id: SecretString,
    /// Its description.
    pub info: SecretIdInfo,
}

/// An app-role login.
pub struct AppRoleLogin<'a> {
    /// The role id.
    pub role_id: &'a str,
    /// The secret id.
    pub secret_id: &'a str,
    /// Where the request came from (checked against the role's networks).
    pub source: Option<IpAddr>,
}

/// Checks an app-role name: 1 to 64 ASCII letters, digits, `-`, `_`, `.`,
/// starting with a letter or digit, and nothing shaped like a credential.
pub fn check_role_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !coffer_policy::contains_credential(name);
    if ok {
        Ok(())
    } else {
        Err(CoreError::Invalid(InvalidInput::AppRoleName {
            shown: if coffer_policy::contains_credential(name) {
                "that".to_string()
            } else {
                printable(name)
            },
        }))
    }
}

fn hash_key(hash: &[u8; 32]) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

fn duration(what: &'static str, input: Option<&str>, default: i64, max: i64) -> Result<i64> {
    let ms = match input {
        Some(t) => {
            parse_duration_ms(t).map_err(|e| CoreError::Invalid(InvalidInput::Duration(e)))?
        }
        None => default,
    };
    if !(1000..=max).contains(&ms) {
        return Err(CoreError::Invalid(InvalidInput::AppRoleDuration {
            what,
            max: format_duration_ms(max),
        }));
    }
    Ok(ms)
}

fn decode_role(name: &str, bytes: &[u8]) -> Result<StoredRole> {
    serde_json::from_slice(bytes).map_err(|_| {
        CoreError::Corrupt(Integrity::Unreadable(Record::AppRole {
            name: name.to_string(),
        }))
    })
}

fn decode_secret_id(bytes: &[u8]) -> Option<StoredSecretId> {
    serde_json::from_slice(bytes).ok()
}

fn info(name: &str, r: &StoredRole) -> AppRoleInfo {
    AppRoleInfo {
        name: name.to_string(),
        role_id: r.role_id.clone(),
        policies: r.policies.clone(),
        token_ttl_ms: r.token_ttl_ms,
        token_uses: r.token_uses,
        secret_id_ttl_ms: r.secret_id_ttl_ms,
        secret_id_uses: r.secret_id_uses,
        cidrs: r.cidrs.clone(),
        created_by: crate::actor::Actor::parse(&r.created_by).describe(),
        created_at: r.created_at,
    }
}

fn not_found(name: &str) -> CoreError {
    CoreError::NotFound(NotFound::AppRole {
        name: name.to_string(),
    })
}

/// The identity of a role's tokens.
fn identity_of(name: &str) -> String {
    format!("{IDENTITY_PREFIX}{name}")
}

impl Coffer {
    fn approle_admin(&self, identity: &Identity, name: &str) -> Result<()> {
        check_role_name(name)?;
        self.require_unsealed()?;
        self.authorize(identity, Operation::Admin, &format!("{ADMIN_PREFIX}{name}"))?;
        Ok(())
    }

    async fn load_role(&self, name: &str) -> Result<(StoredRole, u64)> {
        let o = self
            .store
            .get_object(KIND_ROLE, name)
            .await?
            .ok_or_else(|| not_found(name))?;
        Ok((decode_role(name, &o.value)?, o.revision))
    }

    /// Creates an app role. Its policies must be held by the creator, as
    /// for a token; its role id is drawn at random.
    pub async fn create_approle(
        &self,
        identity: &Identity,
        name: &str,
        spec: &AppRoleSpec,
    ) -> Result<AppRoleInfo> {
        self.approle_admin(identity, name)?;
        let mut policies = spec.policies.clone();
        policies.sort();
        policies.dedup();
        self.check_grantable(identity, &policies)?;
        let token_ttl_ms = duration(
            "the token ttl",
            spec.token_ttl.as_deref(),
            DEFAULT_TOKEN_TTL_MS,
            MAX_TOKEN_TTL_MS,
        )?;
        let secret_id_ttl_ms = duration(
            "the secret-id ttl",
            spec.secret_id_ttl.as_deref(),
            DEFAULT_SECRET_ID_TTL_MS,
            MAX_SECRET_ID_TTL_MS,
        )?;
        if spec.token_uses == Some(0) {
            return Err(CoreError::Invalid(InvalidInput::ZeroUses));
        }
        let secret_id_uses = spec.secret_id_uses.unwrap_or(DEFAULT_SECRET_ID_USES);
        if !(1..=MAX_SECRET_ID_USES).contains(&secret_id_uses) {
            return Err(CoreError::Invalid(InvalidInput::SecretIdUses {
                max: MAX_SECRET_ID_USES,
            }));
        }
        let cidrs = parse_cidrs(&spec.cidrs)?;
        let role = StoredRole {
            role_id: token::generate_handle(ROLE_ID_PREFIX),
            policies,
            token_ttl_ms,
            token_uses: spec.token_uses,
            secret_id_ttl_ms,
            secret_id_uses,
            cidrs: cidrs.iter().map(ToString::to_string).collect(),
            created_by: crate::actor::Actor::stored_for(identity),
            created_at: now_ms(),
        };
        let stored = serde_json::to_vec(&role).expect("serialises");
        match self
            .store
            .commit(vec![
                Mutation::PutObject {
                    kind: KIND_ROLE.into(),
                    key: name.into(),
                    value: stored,
                    expect: Expect::Absent,
                },
                Mutation::PutObject {
                    kind: KIND_ROLE_ID.into(),
                    key: role.role_id.clone(),
                    value: name.as_bytes().to_vec(),
                    expect: Expect::Absent,
                },
            ])
            .await
        {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                return Err(CoreError::Conflict(Conflict::AppRoleExists {
                    name: name.to_string(),
                }));
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(
            actor = identity.display_name(),
            approle = name,
            "app role created"
        );
        Ok(info(name, &role))
    }

    /// An app role's description, with its role id.
    pub async fn read_approle(&self, identity: &Identity, name: &str) -> Result<AppRoleInfo> {
        self.approle_admin(identity, name)?;
        let (role, _) = self.load_role(name).await?;
        Ok(info(name, &role))
    }

    /// Every app role (admin of `sys/auth/approle/`), except those a
    /// `deny` of the caller's on `sys/auth/approle/NAME` hides.
    pub async fn list_approles(&self, identity: &Identity) -> Result<Vec<AppRoleInfo>> {
        self.require_unsealed()?;
        self.authorize(identity, Operation::Admin, ADMIN_PREFIX)?;
        let model = self.access_model();
        let mut out = Vec::new();
        for o in self.store.list_objects(KIND_ROLE).await? {
            if crate::auth::denied_at(&model, identity, &format!("{ADMIN_PREFIX}{}", o.key)) {
                continue;
            }
            out.push(info(&o.key, &decode_role(&o.key, &o.value)?));
        }
        Ok(out)
    }

    /// Deletes an app role with its secret ids, and revokes every token its
    /// logins issued (and their children), in one commit.
    pub async fn delete_approle(&self, identity: &Identity, name: &str) -> Result<()> {
        self.approle_admin(identity, name)?;
        let (role, revision) = self.load_role(name).await?;
        let mut mutations = vec![
            Mutation::DeleteObject {
                kind: KIND_ROLE.into(),
                key: name.into(),
                expect: Expect::Revision(revision),
            },
            Mutation::DeleteObject {
                kind: KIND_ROLE_ID.into(),
                key: role.role_id.clone(),
                expect: Expect::Any,
            },
        ];
        for o in self.store.list_objects(KIND_SECRET_ID).await? {
            if decode_secret_id(&o.value).is_some_and(|s| s.role == name) {
                mutations.push(Mutation::DeleteObject {
                    kind: KIND_SECRET_ID.into(),
                    key: o.key,
                    expect: Expect::Any,
                });
            }
        }
        mutations.push(Mutation::RevokeTokens(RevokeScope::User(identity_of(name))));
        match self.store.commit(mutations).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => return Err(not_found(name)),
            Err(e) => return Err(e.into()),
        }
        // Failures are kept: recreating the role must not reset the pacing.
        self.forget_tokens();
        tracing::info!(
            actor = identity.display_name(),
            approle = name,
            "app role deleted; its secret ids are gone and its tokens revoked"
        );
        Ok(())
    }

    /// Creates a secret id for a role: returned once, stored as its keyed
    /// hash. Expired and used-up secret ids of the role are dropped here.
    pub async fn create_secret_id(&self, identity: &Identity, name: &str) -> Result<NewSecretId> {
        self.approle_admin(identity, name)?;
        let keys = self.unsealed()?;
        let (role, revision) = self.load_role(name).await?;
        let now = now_ms();
        let mut mutations = Vec::new();
        let mut live = 0;
        for o in self.store.list_objects(KIND_SECRET_ID).await? {
            let Some(s) = decode_secret_id(&o.value).filter(|s| s.role == name) else {
                continue;
            };
            if s.expires_at <= now || s.uses_left == 0 {
                mutations.push(Mutation::DeleteObject {
                    kind: KIND_SECRET_ID.into(),
                    key: o.key,
                    expect: Expect::Revision(o.revision),
                });
            } else {
                live += 1;
            }
        }
        if live >= MAX_SECRET_IDS {
            return Err(CoreError::Invalid(InvalidInput::TooManySecretIds {
                limit: MAX_SECRET_IDS,
            }));
        }
        let raw = token::generate_secret_id();
        let stored = StoredSecretId {
            role: name.to_string(),
            accessor: token::generate_handle(SECRET_ID_ACCESSOR_PREFIX),
            created_at: now,
            expires_at: now + role.secret_id_ttl_ms,
            uses_left: role.secret_id_uses,
        };
        mutations.push(Mutation::PutObject {
            kind: KIND_SECRET_ID.into(),
            key: hash_key(&keys.keyring.token_hash(raw.expose_secret())),
            value: serde_json::to_vec(&stored).expect("serialises"),
            expect: Expect::Absent,
        });
        // The role must still be there, unchanged: a delete that lands
        // first would leave this secret id behind it.
        mutations.push(Mutation::PutObject {
            kind: KIND_ROLE.into(),
            key: name.into(),
            value: serde_json::to_vec(&role).expect("serialises"),
            expect: Expect::Revision(revision),
        });
        match self.store.commit(mutations).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                return Err(CoreError::Conflict(Conflict::Store(
                    "the app role changed meanwhile; try again".into(),
                )));
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(
            actor = identity.display_name(),
            approle = name,
            accessor = %stored.accessor,
            "secret id created"
        );
        Ok(NewSecretId {
            secret_id: raw,
            info: SecretIdInfo {
                accessor: stored.accessor,
                created_at: stored.created_at,
                expires_at: stored.expires_at,
                uses_left: stored.uses_left,
            },
        })
    }

    /// The live secret ids of a role (accessors, never the ids).
    pub async fn list_secret_ids(
        &self,
        identity: &Identity,
        name: &str,
    ) -> Result<Vec<SecretIdInfo>> {
        self.approle_admin(identity, name)?;
        self.load_role(name).await?;
        let now = now_ms();
        let mut out: Vec<SecretIdInfo> = self
            .store
            .list_objects(KIND_SECRET_ID)
            .await?
            .into_iter()
            .filter_map(|o| decode_secret_id(&o.value))
            .filter(|s| s.role == name && s.expires_at > now && s.uses_left > 0)
            .map(|s| SecretIdInfo {
                accessor: s.accessor,
                created_at: s.created_at,
                expires_at: s.expires_at,
                uses_left: s.uses_left,
            })
            .collect();
        out.sort_by(|a, b| (a.created_at, &a.accessor).cmp(&(b.created_at, &b.accessor)));
        Ok(out)
    }

    /// Revokes one secret id of a role and every token it logged in (and
    /// their children).
    pub async fn revoke_secret_id(
        &self,
        identity: &Identity,
        name: &str,
        accessor: &str,
    ) -> Result<()> {
        if !token::is_handle_well_formed(SECRET_ID_ACCESSOR_PREFIX, accessor) {
            return Err(CoreError::Invalid(InvalidInput::SecretIdAccessor {
                shown: printable(accessor),
            }));
        }
        self.approle_admin(identity, name)?;
        self.load_role(name).await?;
        let missing = || {
            CoreError::NotFound(NotFound::SecretId {
                name: name.to_string(),
                accessor: accessor.to_string(),
            })
        };
        let found = self
            .store
            .list_objects(KIND_SECRET_ID)
            .await?
            .into_iter()
            .find(|o| {
                decode_secret_id(&o.value).is_some_and(|s| s.role == name && s.accessor == accessor)
            })
            .ok_or_else(missing)?;
        let display = format!("{}/{accessor}", identity_of(name));
        let mut mutations = vec![Mutation::DeleteObject {
            kind: KIND_SECRET_ID.into(),
            key: found.key,
            expect: Expect::Any,
        }];
        mutations.extend(
            self.store
                .list_tokens()
                .await?
                .into_iter()
                .filter(|t| t.display_name == display)
                .map(|t| Mutation::RevokeTokens(RevokeScope::Tree(t.accessor))),
        );
        self.store.commit(mutations).await?;
        self.forget_tokens();
        tracing::info!(
            actor = identity.display_name(),
            approle = name,
            accessor,
            "secret id revoked with its tokens"
        );
        Ok(())
    }

    /// Logs a machine in with a role id and a secret id, and returns a
    /// service token with exactly the role's policies, lifetime, use limit
    /// and networks. See the module docs for what is refused, and how.
    pub async fn login_approle(
        &self,
        request: &AppRoleLogin<'_>,
    ) -> Result<(SecretString, TokenView)> {
        let keys = self.unsealed()?;
        let refuse = |why: AppRoleRefusal, role: Option<&str>, accessor: Option<&str>| {
            let mut reason = why.reason().to_string();
            if let Some(r) = role {
                reason.push_str(&format!(" role={r}"));
            }
            if let Some(a) = accessor {
                reason.push_str(&format!(" secret_id={a}"));
            }
            crate::audit::note_refusal(reason);
            CoreError::AppRoleLoginFailed(why)
        };
        if !token::is_handle_well_formed(ROLE_ID_PREFIX, request.role_id) {
            return Err(refuse(AppRoleRefusal::UnknownRole, None, None));
        }
        let Some(index) = self.store.get_object(KIND_ROLE_ID, request.role_id).await? else {
            return Err(refuse(AppRoleRefusal::UnknownRole, None, None));
        };
        let name = String::from_utf8(index.value).unwrap_or_default();
        let Some(role_obj) = self.store.get_object(KIND_ROLE, &name).await? else {
            return Err(refuse(AppRoleRefusal::UnknownRole, None, None));
        };
        let role = decode_role(&name, &role_obj.value)?;
        // The index and the role agree, compared without a shortcut.
        if !bool::from(role.role_id.as_bytes().ct_eq(request.role_id.as_bytes())) {
            return Err(refuse(AppRoleRefusal::UnknownRole, None, None));
        }
        let now = now_ms();
        let failures = self.store.get_object(KIND_FAILURES, &name).await?;
        let recent = StoredFailures::recent(failures.as_ref().map(|o| &o.value[..]), now);
        let paced = recent.at.len() >= MAX_FAILED_LOGINS
            && now.saturating_sub(recent.last()) < LOGIN_PACE_MS;
        // A valid secret id logs in even while the role is paced: pacing
        // slows guessing, and must not lock out the machine that holds one.
        let result = self.spend_secret_id(&keys, &name, &role, request).await;
        match result {
            Ok(ok) => Ok(ok),
            Err(Failed::Refused(_, _)) if paced => {
                tracing::warn!(
                    target: "coffer::alert",
                    alert = "login_locked",
                    approle = %name,
                    "app-role login refused: too many failures; attempts for this role are paced"
                );
                crate::audit::note_refusal(format!("paced role={name}"));
                Err(CoreError::RateLimited(Busy::AppRolePaced {
                    pace_seconds: LOGIN_PACE_MS / 1000,
                }))
            }
            Err(Failed::Refused(why, accessor)) => {
                let err = refuse(why, Some(&name), accessor.as_deref());
                // From outside the role's networks nothing counts toward the
                // role's pacing (review finding: anyone who knew the role id,
                // which is not a secret, could lock the role out from
                // anywhere).
                if !matches!(why, AppRoleRefusal::Network) {
                    self.approle_failure(&name, request.source).await;
                }
                tracing::info!(approle = %name, reason = why.reason(), "failed app-role login");
                Err(err)
            }
            Err(Failed::Error(e)) => Err(e),
        }
    }

    async fn spend_secret_id(
        &self,
        keys: &crate::Keys,
        name: &str,
        role: &StoredRole,
        request: &AppRoleLogin<'_>,
    ) -> std::result::Result<(SecretString, TokenView), Failed> {
        if !token::is_well_formed_secret_id(request.secret_id) {
            return Err(Failed::Refused(AppRoleRefusal::UnknownSecretId, None));
        }
        let key = hash_key(&keys.keyring.token_hash(request.secret_id));
        let mut seen = false;
        for _ in 0..LOGIN_RETRIES {
            let Some(o) = self.store.get_object(KIND_SECRET_ID, &key).await? else {
                // Gone between two rounds: another login spent the last use.
                let why = if seen {
                    AppRoleRefusal::UsedUp
                } else {
                    AppRoleRefusal::UnknownSecretId
                };
                return Err(Failed::Refused(why, None));
            };
            seen = true;
            let Some(sid) = decode_secret_id(&o.value) else {
                return Err(Failed::Error(CoreError::Corrupt(Integrity::Unreadable(
                    Record::AppRole {
                        name: name.to_string(),
                    },
                ))));
            };
            let acc = Some(sid.accessor.clone());
            if sid.role != name {
                return Err(Failed::Refused(AppRoleRefusal::OtherRole, acc));
            }
            let now = now_ms();
            if sid.expires_at <= now {
                return Err(Failed::Refused(AppRoleRefusal::Expired, acc));
            }
            if sid.uses_left == 0 {
                return Err(Failed::Refused(AppRoleRefusal::UsedUp, acc));
            }
            // The same check as the issued token's network binding.
            if !role.cidrs.is_empty()
                && !crate::session::source_allowed(&role.cidrs, request.source)
            {
                return Err(Failed::Refused(AppRoleRefusal::Network, acc));
            }
            // A used-up secret id stays (until the role's next secret id
            // is created) so that a later attempt is recorded as what it
            // is: a replay.
            let left = StoredSecretId {
                uses_left: sid.uses_left - 1,
                ..sid.clone()
            };
            let spend = Mutation::PutObject {
                kind: KIND_SECRET_ID.into(),
                key: key.clone(),
                value: serde_json::to_vec(&left).expect("serialises"),
                expect: Expect::Revision(o.revision),
            };
            let identity = identity_of(name);
            let raw = token::generate_token();
            let record = TokenRecord {
                hash: keys.keyring.token_hash(raw.expose_secret()),
                accessor: token::generate_accessor(),
                display_name: format!("{identity}/{}", sid.accessor),
                policies: role.policies.clone(),
                created_at: now,
                expires_at: Some(now + role.token_ttl_ms),
                parent: None,
                kind: TokenKind::Service,
                // The identity `approle:NAME` stays in `user` (what audit
                // queries by actor and `audit readers` name); the token is
                // a workload's like a JWT login's: method, role and the
                // secret id's accessor (never the secret id), in every
                // audit record of a request made with it.
                user: Some(identity),
                workload: Some(Box::new(coffer_store::Workload {
                    method: "approle".into(),
                    role: name.to_string(),
                    issuer: None,
                    subject: Some(sid.accessor.clone()),
                    claims: Default::default(),
                })),
                ttl_ms: Some(role.token_ttl_ms),
                // Not renewable past its first lifetime: a machine that
                // needs longer logs in again.
                max_expires_at: Some(now + role.token_ttl_ms),
                uses_limit: role.token_uses,
                uses_left: role.token_uses,
                cidrs: role.cidrs.clone(),
            };
            match self
                .store
                .commit(vec![spend, Mutation::PutToken(record.clone())])
                .await
            {
                Ok(()) => {}
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(Failed::Error(e.into())),
            }
            tracing::info!(
                approle = %name,
                secret_id = %sid.accessor,
                accessor = %record.accessor,
                "app-role login"
            );
            let record = Arc::new(record);
            crate::audit::note_identity(&Identity {
                token: record.clone(),
            });
            return Ok((raw, Arc::unwrap_or_clone(record)));
        }
        Err(Failed::Refused(AppRoleRefusal::UsedUp, None))
    }

    /// Counts a failed login against the role (best effort: a lost race
    /// is retried a few times, as for password logins).
    async fn approle_failure(&self, name: &str, source: Option<IpAddr>) {
        for _ in 0..4 {
            let Ok(existing) = self.store.get_object(KIND_FAILURES, name).await else {
                return;
            };
            let now = now_ms();
            let mut f = StoredFailures::recent(existing.as_ref().map(|o| &o.value[..]), now);
            f.push(now, source);
            let expect = existing.map_or(Expect::Absent, |o| Expect::Revision(o.revision));
            match self
                .store
                .commit(vec![Mutation::PutObject {
                    kind: KIND_FAILURES.into(),
                    key: name.into(),
                    value: serde_json::to_vec(&f).expect("serialises"),
                    expect,
                }])
                .await
            {
                Err(StoreError::Conflict(_)) => continue,
                _ => return,
            }
        }
    }
}

enum Failed {
    Refused(AppRoleRefusal, Option<String>),
    Error(CoreError),
}

impl From<StoreError> for Failed {
    fn from(e: StoreError) -> Self {
        Failed::Error(e.into())
    }
}

impl Identity {
    /// For a token an app-role login issued (or a child of one): the role's
    /// identity, `approle:NAME`.
    pub fn approle(&self) -> Option<&str> {
        self.token()
            .user
            .as_deref()
            .filter(|u| u.starts_with(IDENTITY_PREFIX))
    }

    /// For a token an app-role login issued: the accessor of the secret id
    /// it logged in with.
    pub fn secret_id_accessor(&self) -> Option<&str> {
        let user = self.approle()?;
        self.token()
            .display_name
            .strip_prefix(user)?
            .strip_prefix('/')
            .filter(|a| token::is_handle_well_formed(SECRET_ID_ACCESSOR_PREFIX, a))
    }
}
