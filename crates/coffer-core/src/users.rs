//! People: invitations, passwords, one-time codes, login and its limits.
//!
//! A person joins only with a one-time, expiring invitation code created by an
//! admin; the code is stored as a keyed hash, like a token. Passwords are
//! hashed with Argon2id (OWASP's parameters). A TOTP seed, being a secret, is
//! sealed with the keyring before it is stored.
//!
//! Logins never tell an attacker whether an account exists: an unknown name, a
//! disabled account, a wrong password and a wrong or missing one-time code all
//! get the same answer, after the same Argon2 work (a dummy hash is verified
//! for unknown names). Failed logins are counted per *canonical* name, known or
//! not, in the store (so every node sharing it sees the same count); past
//! [`MAX_FAILED_LOGINS`] in an hour, the name is slowed down, not locked: an
//! attempt within [`LOGIN_PACE_MS`] of the last failure is refused with 429,
//! so a guesser gets at most one try per pace while the owner, whose attempt
//! lands between them, still gets in. An attacker with enough addresses
//! can take every slot the moment it opens, so pacing does not apply to a
//! login from a source the account logged in from successfully within the
//! last [`KNOWN_SOURCE_TTL_MS`] (the last [`MAX_KNOWN_SOURCES`] of them),
//! as long as few of the name's failures came from there too (behind a
//! reverse proxy every client has the proxy's address): the owner at their
//! usual address is not held back by someone else's guessing (and their
//! successful login does not clear the name's failures, which would hand
//! the guesser a fresh allowance). (The HTTP layer also backs off each
//! source address on its own, which bounds guessing from a known source.)

use std::net::IpAddr;
use std::sync::Arc;

use coffer_crypto::password;
use coffer_crypto::totp::TotpSecret;
use coffer_crypto::{SecretString, token};
use coffer_store::{Expect, Mutation, RevokeScope, StoreError, TokenKind, TokenRecord};
use serde::{Deserialize, Serialize};

use crate::access::TokenView;
use crate::auth::ROOT_POLICY;
use crate::auth::{Identity, Operation};
use crate::duration::parse_duration_ms;
use crate::error::{
    Busy, Conflict, Integrity, InvalidInput, LoginRefused, NotFound, Record, Refusal,
};
use crate::username::canonical_user_name;
use crate::{Coffer, CoreError, Result, now_ms};

const KIND_USER: &str = "user";
const KIND_INVITE: &str = "invite";
const KIND_LOGIN_FAILURES: &str = "login-failures";

/// Failed logins per account per hour before its attempts are paced.
pub const MAX_FAILED_LOGINS: usize = 100;
/// Past [`MAX_FAILED_LOGINS`], the least time between a failed login for an
/// account and the next attempt for it.
pub const LOGIN_PACE_MS: i64 = 5_000;
const FAILURE_WINDOW_MS: i64 = 3600 * 1000;
/// How long a source an account logged in from stays exempt from pacing.
pub const KNOWN_SOURCE_TTL_MS: i64 = 30 * 24 * 3600 * 1000;
/// How many such sources an account remembers (the most recent).
pub const MAX_KNOWN_SOURCES: usize = 8;
/// Default lifetime of an invitation.
pub const DEFAULT_INVITE_TTL_MS: i64 = 24 * 3600 * 1000;
const MAX_INVITE_TTL_MS: i64 = 30 * 24 * 3600 * 1000;
/// Lifetime (and renewal period) of a login token.
pub const LOGIN_TOKEN_TTL_MS: i64 = 8 * 3600 * 1000;
/// Longest a login token can be renewed to.
pub const LOGIN_TOKEN_MAX_TTL_MS: i64 = 24 * 3600 * 1000;
const TOTP_DOMAIN: &str = "coffer.totp.v1";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredInvite {
    policies: Vec<String>,
    created_by: String,
    created_at: i64,
    expires_at: i64,
}

#[derive(Clone, Serialize, Deserialize)]
struct StoredUser {
    name: String,
    policies: Vec<String>,
    disabled: bool,
    created_at: i64,
    invited_by: String,
    /// Argon2id PHC string.
    password_hash: String,
    last_login_at: Option<i64>,
    totp: Option<StoredTotp>,
    /// Sources (an IPv4 address, an IPv6 /64) of recent successful logins,
    /// oldest first: logins from them are not paced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    login_sources: Vec<KnownSource>,
}

#[derive(Clone, Serialize, Deserialize)]
struct KnownSource {
    source: IpAddr,
    /// Unix milliseconds of the last successful login from it.
    at: i64,
}

impl StoredUser {
    fn knows_source(&self, source: Option<IpAddr>, now: i64) -> bool {
        source.is_some_and(|ip| {
            self.login_sources
                .iter()
                .any(|k| k.source == ip && now - k.at < KNOWN_SOURCE_TTL_MS)
        })
    }

    fn remember_source(&mut self, source: Option<IpAddr>, now: i64) {
        let Some(ip) = source else { return };
        self.login_sources
            .retain(|k| k.source != ip && now - k.at < KNOWN_SOURCE_TTL_MS);
        self.login_sources.push(KnownSource {
            source: ip,
            at: now,
        });
        let excess = self.login_sources.len().saturating_sub(MAX_KNOWN_SOURCES);
        self.login_sources.drain(..excess);
    }
}

#[derive(Clone, Serialize, Deserialize)]
struct StoredTotp {
    key_id: u32,
    /// The seed sealed with the keyring (base64-free: raw bytes as a JSON array
    /// would be wasteful, so hex).
    sealed_hex: String,
    confirmed: bool,
    /// Last time step accepted; a code for this step or earlier is refused.
    last_step: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct StoredFailures {
    /// Unix milliseconds of failures within the last hour, oldest first.
    pub(crate) at: Vec<i64>,
    /// Where each failure in `at` came from (same order), when known;
    /// records written before sources were kept have none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    from: Vec<Option<IpAddr>>,
}

impl StoredFailures {
    /// The failures in a stored record that are within the window.
    pub(crate) fn recent(bytes: Option<&[u8]>, now: i64) -> StoredFailures {
        let mut f = bytes
            .and_then(|b| serde_json::from_slice::<StoredFailures>(b).ok())
            .unwrap_or_default();
        // Line the sources up with the times (older records have none).
        f.from.truncate(f.at.len());
        let missing = f.at.len() - f.from.len();
        f.from.splice(0..0, std::iter::repeat_n(None, missing));
        let keep: Vec<bool> = f.at.iter().map(|t| now - t < FAILURE_WINDOW_MS).collect();
        let mut k = keep.iter();
        f.at.retain(|_| *k.next().unwrap_or(&false));
        let mut k = keep.iter();
        f.from.retain(|_| *k.next().unwrap_or(&false));
        f
    }

    pub(crate) fn push(&mut self, now: i64, source: Option<IpAddr>) {
        self.at.push(now);
        self.from.push(source);
        let excess = self.at.len().saturating_sub(MAX_FAILED_LOGINS);
        self.at.drain(..excess);
        self.from.drain(..excess.min(self.from.len()));
    }

    pub(crate) fn last(&self) -> i64 {
        self.at.iter().copied().max().unwrap_or(i64::MIN)
    }

    /// How many of the failures came from `source`.
    fn count_from(&self, source: Option<IpAddr>) -> usize {
        source.map_or(0, |ip| self.from.iter().filter(|s| **s == Some(ip)).count())
    }
}

/// A known source stays exempt from pacing only while fewer of the name's
/// recent failures than this came from it: behind a reverse proxy every
/// client is the proxy's address, and guessing from there must stay paced.
const MAX_FAILURES_FROM_KNOWN_SOURCE: usize = 10;

/// A user as `coffer user list` shows it (no password hash, no seed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserView {
    /// Canonical name.
    pub name: String,
    /// Policies a login receives.
    pub policies: Vec<String>,
    /// Disabled users cannot log in and have no tokens.
    pub disabled: bool,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Who invited them.
    pub invited_by: String,
    /// Unix milliseconds of the last login.
    pub last_login_at: Option<i64>,
    /// Whether a one-time code is required at login.
    pub totp: bool,
}

impl From<&StoredUser> for UserView {
    fn from(u: &StoredUser) -> Self {
        UserView {
            name: u.name.clone(),
            policies: u.policies.clone(),
            disabled: u.disabled,
            created_at: u.created_at,
            invited_by: u.invited_by.clone(),
            last_login_at: u.last_login_at,
            totp: u.totp.as_ref().is_some_and(|t| t.confirmed),
        }
    }
}

/// What `coffer invite create` asks for.
#[derive(Debug, Clone, Default)]
pub struct InviteRequest {
    /// Policies the new user's logins receive.
    pub policies: Vec<String>,
    /// How long the code stays valid; default 24h, at most 30d.
    pub ttl: Option<String>,
}

/// A login attempt.
pub struct LoginRequest<'a> {
    /// User name, any spelling of it.
    pub user: &'a str,
    /// Password.
    pub password: &'a str,
    /// Six-digit code, for users with TOTP.
    pub totp: Option<&'a str>,
}

/// What a person needs to add coffer to an authenticator app. Shown once.
pub struct TotpEnrollment {
    /// Base32 seed.
    pub secret: SecretString,
    /// `otpauth://` URI (QR code content).
    pub uri: SecretString,
}

fn put_user(name: &str, user: &StoredUser, expect: Expect) -> Mutation {
    Mutation::PutObject {
        kind: KIND_USER.into(),
        key: name.to_string(),
        value: serde_json::to_vec(user).expect("a user record serialises"),
        expect,
    }
}

fn decode_user(bytes: &[u8]) -> Result<StoredUser> {
    serde_json::from_slice(bytes)
        .map_err(|_| CoreError::Corrupt(Integrity::Unreadable(Record::User)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn login_failed() -> CoreError {
    CoreError::LoginFailed(LoginRefused)
}

impl Coffer {
    // ---- invitations -----------------------------------------------------------

    /// Creates a one-time invitation code. The code is returned once and only
    /// its keyed hash is stored.
    pub async fn create_invite(
        &self,
        identity: &Identity,
        request: &InviteRequest,
    ) -> Result<(SecretString, i64)> {
        let keys = self.unsealed()?;
        self.authorize(identity, Operation::Admin, "sys/invites")?;
        let mut policies = request.policies.clone();
        policies.sort();
        policies.dedup();
        self.check_grantable(identity, &policies)?;
        let ttl = match &request.ttl {
            Some(t) => {
                parse_duration_ms(t).map_err(|e| CoreError::Invalid(InvalidInput::Duration(e)))?
            }
            None => DEFAULT_INVITE_TTL_MS,
        };
        if ttl > MAX_INVITE_TTL_MS {
            return Err(CoreError::Invalid(InvalidInput::InviteTtl {
                max_ms: MAX_INVITE_TTL_MS,
            }));
        }
        let code = token::generate_invite_code();
        let now = now_ms();
        let invite = StoredInvite {
            policies,
            created_by: crate::actor::Actor::stored_for(identity),
            created_at: now,
            expires_at: now + ttl,
        };
        self.store
            .commit(vec![Mutation::PutObject {
                kind: KIND_INVITE.into(),
                key: hex(&keys.keyring.token_hash(code.expose_secret())),
                value: serde_json::to_vec(&invite).expect("serialises"),
                expect: Expect::Absent,
            }])
            .await?;
        tracing::info!(actor = identity.display_name(), policies = ?invite.policies, "invitation created");
        Ok((code, invite.expires_at))
    }

    /// Uses an invitation: creates the user with this password. The code stops
    /// working in the same atomic step.
    pub async fn accept_invite(&self, code: &str, user: &str, pw: &str) -> Result<UserView> {
        let keys = self.unsealed()?;
        let invalid = || CoreError::Invalid(InvalidInput::InviteCode);
        if !token::is_well_formed_invite(code) {
            return Err(invalid());
        }
        let name =
            canonical_user_name(user).map_err(|e| CoreError::Invalid(InvalidInput::UserName(e)))?;
        crate::text::refuse_reserved("a user name", &name)?;
        crate::text::refuse_actor_suffix("a user name", &name)?;
        password::check_password_policy(pw)
            .map_err(|e| CoreError::Invalid(InvalidInput::Password(Arc::new(e))))?;
        let key = hex(&keys.keyring.token_hash(code));
        let stored = self
            .store
            .get_object(KIND_INVITE, &key)
            .await?
            .ok_or_else(invalid)?;
        let invite: StoredInvite = serde_json::from_slice(&stored.value)
            .map_err(|_| CoreError::Corrupt(Integrity::Unreadable(Record::Invitation)))?;
        let now = now_ms();
        if invite.expires_at <= now {
            // Tidy up; the answer is the same either way.
            let _ = self
                .store
                .commit(vec![Mutation::DeleteObject {
                    kind: KIND_INVITE.into(),
                    key,
                    expect: Expect::Revision(stored.revision),
                }])
                .await;
            return Err(invalid());
        }
        let password_hash = self
            .argon2(pw.to_string(), None)
            .await?
            .ok_or_else(|| CoreError::Invalid(InvalidInput::PasswordHash))?;
        let user = StoredUser {
            name: name.clone(),
            policies: invite.policies,
            disabled: false,
            created_at: now,
            invited_by: crate::actor::Actor::parse(&invite.created_by).describe(),
            password_hash,
            last_login_at: None,
            totp: None,
            login_sources: Vec::new(),
        };
        // The name check comes after the code check, so only a holder of a
        // valid code can learn whether a name is taken.
        if self.store.get_object(KIND_USER, &name).await?.is_some() {
            return Err(CoreError::Conflict(Conflict::UserTaken {
                name: name.to_string(),
            }));
        }
        // History and listings show people by name: a name that reads as
        // someone else's (Cyrillic a for Latin a, 0 for o) is as taken.
        for o in self.store.list_objects(KIND_USER).await? {
            if crate::text::looks_like(&name, &o.key) {
                return Err(CoreError::Conflict(Conflict::UserLookalike {
                    name: name.to_string(),
                }));
            }
        }
        match self
            .store
            .commit(vec![
                Mutation::DeleteObject {
                    kind: KIND_INVITE.into(),
                    key,
                    expect: Expect::Revision(stored.revision),
                },
                put_user(&name, &user, Expect::Absent),
            ])
            .await
        {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => return Err(invalid()),
            Err(e) => return Err(e.into()),
        }
        tracing::info!(user = %name, invited_by = %user.invited_by, "invitation accepted");
        Ok(UserView::from(&user))
    }

    /// Hashes (`verify` = None) or verifies a password on the blocking pool,
    /// a few at a time (each Argon2 run takes 19 MiB and tens of milliseconds).
    /// Verification returns `Some(hash)` when it matched, `None` otherwise.
    async fn argon2(&self, pw: String, verify: Option<Option<String>>) -> Result<Option<String>> {
        let pw = zeroize::Zeroizing::new(pw);
        let _slot = self
            .login_slots
            .acquire()
            .await
            .map_err(|_| CoreError::Sealed)?;
        tokio::task::spawn_blocking(move || match verify {
            None => password::hash_password(&pw)
                .map(Some)
                .map_err(|e| CoreError::Invalid(InvalidInput::Password(Arc::new(e)))),
            Some(None) => {
                let _ = password::verify_dummy(&pw);
                Ok(None)
            }
            Some(Some(hash)) => Ok(password::verify_password(&pw, &hash).then_some(hash)),
        })
        .await
        .map_err(|_| CoreError::Invalid(InvalidInput::PasswordCheck))?
    }

    // ---- login -----------------------------------------------------------------

    /// Logs a person in and returns a human token carrying their policies.
    pub async fn login(&self, request: &LoginRequest<'_>) -> Result<(SecretString, TokenView)> {
        self.login_from(request, None).await
    }

    /// [`Coffer::login`] from `source` (the caller's address as the HTTP
    /// layer counts it: an IPv4 address or an IPv6 /64). A source the
    /// account recently logged in from is not paced; a successful login
    /// remembers its source.
    pub async fn login_from(
        &self,
        request: &LoginRequest<'_>,
        source: Option<IpAddr>,
    ) -> Result<(SecretString, TokenView)> {
        let keys = self.unsealed()?;
        let name = canonical_user_name(request.user)
            .map_err(|e| CoreError::Invalid(InvalidInput::UserName(e)))?;
        if request.password.len() > password::MAX_PASSWORD_BYTES {
            return Err(CoreError::Invalid(InvalidInput::PasswordTooLong));
        }
        let failures = self.store.get_object(KIND_LOGIN_FAILURES, &name).await?;
        let now = now_ms();
        let recent = StoredFailures::recent(failures.as_ref().map(|o| &o.value[..]), now);
        let last = recent.last();
        let stored = self.store.get_object(KIND_USER, &name).await?;
        let user = stored.as_ref().map(|o| decode_user(&o.value)).transpose()?;
        // The owner at a source they logged in from is not paced, unless
        // the guessing comes from there too.
        let exempt = user.as_ref().is_some_and(|u| u.knows_source(source, now))
            && recent.count_from(source) < MAX_FAILURES_FROM_KNOWN_SOURCE;
        let paced = recent.at.len() >= MAX_FAILED_LOGINS && !exempt;
        let mut refused = paced && now.saturating_sub(last) < LOGIN_PACE_MS;
        if paced && !refused {
            // Take this pace's one attempt, cluster-wide: a provisional
            // failure, written only if no other attempt wrote first.
            let mut taken = recent.clone();
            taken.push(now, source);
            let expect = failures
                .as_ref()
                .map_or(Expect::Absent, |o| Expect::Revision(o.revision));
            match self
                .store
                .commit(vec![Mutation::PutObject {
                    kind: KIND_LOGIN_FAILURES.into(),
                    key: name.clone(),
                    value: serde_json::to_vec(&taken).expect("serialises"),
                    expect,
                }])
                .await
            {
                Ok(()) => {}
                Err(StoreError::Conflict(_)) => refused = true,
                Err(e) => return Err(e.into()),
            }
        }
        if refused {
            // Name the account only if it exists: an unknown "name" is often
            // a password typed into the wrong field.
            let known = stored.is_some();
            tracing::warn!(
                target: "coffer::alert",
                alert = "login_locked",
                user = if known { name.as_str() } else { "(unknown name)" },
                "login refused: too many failures; attempts for this account are paced"
            );
            return Err(CoreError::RateLimited(Busy::LoginPaced {
                pace_seconds: LOGIN_PACE_MS / 1000,
            }));
        }
        let hash = user.as_ref().map(|u| u.password_hash.clone());
        let matched = self
            .argon2(request.password.to_string(), Some(hash))
            .await?
            .is_some();
        let (Some(stored), Some(mut user)) = (stored, user) else {
            return Err(self.login_failure(&name, false, source).await);
        };
        if !matched || user.disabled {
            return Err(self.login_failure(&name, true, source).await);
        }
        if let Some(totp) = user.totp.as_mut().filter(|t| t.confirmed) {
            let step = request
                .totp
                .and_then(|code| {
                    let seed = self.open_totp(&keys.keyring, &name, totp).ok()?;
                    seed.verify_at(code.trim(), (now / 1000) as u64)
                })
                .filter(|step| *step > totp.last_step);
            match step {
                Some(step) => totp.last_step = step,
                None => return Err(self.login_failure(&name, true, source).await),
            }
        }
        user.last_login_at = Some(now);
        user.remember_source(source, now);
        let raw = token::generate_token();
        let record = TokenRecord {
            hash: keys.keyring.token_hash(raw.expose_secret()),
            accessor: token::generate_accessor(),
            display_name: name.clone(),
            policies: user.policies.clone(),
            created_at: now,
            expires_at: Some(now + LOGIN_TOKEN_TTL_MS),
            parent: None,
            kind: TokenKind::Human,
            user: Some(name.clone()),
            ttl_ms: Some(LOGIN_TOKEN_TTL_MS),
            max_expires_at: Some(now + LOGIN_TOKEN_MAX_TTL_MS),
            uses_limit: None,
            uses_left: None,
            cidrs: Vec::new(),
            workload: None,
        };
        // Check-and-set on the user record: a disable or removal that lands
        // first makes this login fail instead of minting a token for it.
        match self
            .store
            .commit(vec![
                put_user(&name, &user, Expect::Revision(stored.revision)),
                Mutation::PutToken(record.clone()),
                // The name's failures stay: clearing them would hand a
                // guesser a fresh allowance each time the owner logs in.
            ])
            .await
        {
            Ok(()) => {}
            // A concurrent login used the same one-time code, or the account
            // changed: either way this attempt does not get a token.
            Err(StoreError::Conflict(_)) => {
                return Err(self.login_failure(&name, true, source).await);
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(user = %name, accessor = %record.accessor, "login");
        let record = Arc::new(record);
        crate::audit::note_identity(&Identity {
            token: record.clone(),
        });
        Ok((raw, Arc::unwrap_or_clone(record)))
    }

    /// Records a failed login for `name` and returns the error to answer
    /// with. The log names the account only when it exists (`known`): an
    /// unknown name is often a password typed into the wrong field.
    async fn login_failure(&self, name: &str, known: bool, source: Option<IpAddr>) -> CoreError {
        for _ in 0..4 {
            let existing = match self.store.get_object(KIND_LOGIN_FAILURES, name).await {
                Ok(o) => o,
                Err(e) => return e.into(),
            };
            let now = now_ms();
            let mut failures = StoredFailures::recent(existing.as_ref().map(|o| &o.value[..]), now);
            failures.push(now, source);
            let expect = existing.map_or(Expect::Absent, |o| Expect::Revision(o.revision));
            match self
                .store
                .commit(vec![Mutation::PutObject {
                    kind: KIND_LOGIN_FAILURES.into(),
                    key: name.into(),
                    value: serde_json::to_vec(&failures).expect("serialises"),
                    expect,
                }])
                .await
            {
                Ok(()) => break,
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return e.into(),
            }
        }
        tracing::info!(
            user = if known { name } else { "(unknown name)" },
            "failed login"
        );
        login_failed()
    }

    // ---- users -----------------------------------------------------------------

    /// Every user (admin of `sys/users/`), except those whose
    /// `sys/users/NAME` a `deny` of the caller's matches.
    pub async fn list_users(&self, identity: &Identity) -> Result<Vec<UserView>> {
        self.require_unsealed()?;
        self.authorize(identity, Operation::Admin, "sys/users/")?;
        let model = self.access_model();
        self.store
            .list_objects(KIND_USER)
            .await?
            .iter()
            .filter(|o| !crate::auth::denied_at(&model, identity, &format!("sys/users/{}", o.key)))
            .map(|o| decode_user(&o.value).map(|u| UserView::from(&u)))
            .collect()
    }

    async fn admin_user(
        &self,
        identity: &Identity,
        name: &str,
    ) -> Result<(String, coffer_store::StoredObject, StoredUser)> {
        self.require_unsealed()?;
        let name =
            canonical_user_name(name).map_err(|e| CoreError::Invalid(InvalidInput::UserName(e)))?;
        self.authorize(identity, Operation::Admin, &format!("sys/users/{name}"))?;
        let o = self
            .store
            .get_object(KIND_USER, &name)
            .await?
            .ok_or_else(|| CoreError::NotFound(NotFound::User { name: name.clone() }))?;
        let u = decode_user(&o.value)?;
        Ok((name, o, u))
    }

    /// One user.
    pub async fn get_user(&self, identity: &Identity, name: &str) -> Result<UserView> {
        let (_, _, u) = self.admin_user(identity, name).await?;
        Ok(UserView::from(&u))
    }

    /// Disables (revoking every token of the user in the same step) or
    /// re-enables a user.
    pub async fn set_user_disabled(
        &self,
        identity: &Identity,
        name: &str,
        disabled: bool,
    ) -> Result<UserView> {
        let (name, o, mut u) = self.admin_user(identity, name).await?;
        check_outranks(identity, &name, &u)?;
        let _w = self.access_writes.lock().await;
        if disabled {
            self.keep_a_root_user(&name, &u).await?;
        }
        u.disabled = disabled;
        let mut mutations = vec![put_user(&name, &u, Expect::Revision(o.revision))];
        let mut grants = 0;
        if disabled {
            mutations.push(Mutation::RevokeTokens(RevokeScope::User(name.clone())));
            let ended = self.grant_removals(&name).await?;
            grants = ended.len();
            mutations.extend(ended);
        }
        self.store.commit(mutations).await?;
        self.forget_tokens();
        if grants > 0 {
            self.reload_access().await?;
        }
        tracing::warn!(actor = identity.display_name(), user = %name, disabled, "user access changed");
        Ok(UserView::from(&u))
    }

    /// Changes a user: new policies for their logins and/or a reset of their
    /// one-time codes (a lost authenticator). Either change revokes every
    /// token of the user in the same step, so it takes effect at once.
    pub async fn update_user(
        &self,
        identity: &Identity,
        name: &str,
        policies: Option<&[String]>,
        reset_totp: bool,
    ) -> Result<UserView> {
        if policies.is_none() && !reset_totp {
            return Err(CoreError::Invalid(InvalidInput::NothingToChange));
        }
        let (name, o, mut u) = self.admin_user(identity, name).await?;
        check_outranks(identity, &name, &u)?;
        let _w = self.access_writes.lock().await;
        if let Some(policies) = policies {
            let mut policies = policies.to_vec();
            policies.sort();
            policies.dedup();
            self.check_grantable(identity, &policies)?;
            if !policies.iter().any(|p| p == ROOT_POLICY) {
                self.keep_a_root_user(&name, &u).await?;
            }
            u.policies = policies;
        }
        if reset_totp {
            u.totp = None;
        }
        self.store
            .commit(vec![
                put_user(&name, &u, Expect::Revision(o.revision)),
                Mutation::RevokeTokens(RevokeScope::User(name.clone())),
            ])
            .await?;
        self.forget_tokens();
        tracing::warn!(
            actor = identity.display_name(),
            user = %name,
            policies = ?u.policies,
            reset_totp,
            "user changed; their tokens were revoked"
        );
        Ok(UserView::from(&u))
    }

    /// Removes a user and every token of theirs.
    pub async fn delete_user(&self, identity: &Identity, name: &str) -> Result<()> {
        let (name, o, u) = self.admin_user(identity, name).await?;
        check_outranks(identity, &name, &u)?;
        let _w = self.access_writes.lock().await;
        self.keep_a_root_user(&name, &u).await?;
        // Grants are kept by user name: a later account of the same name
        // must not inherit a live one.
        let ended = self.grant_removals(&name).await?;
        let grants = ended.len();
        let mut mutations = vec![
            Mutation::DeleteObject {
                kind: KIND_USER.into(),
                key: name.clone(),
                expect: Expect::Revision(o.revision),
            },
            Mutation::RevokeTokens(RevokeScope::User(name.clone())),
        ];
        mutations.extend(ended);
        self.store.commit(mutations).await?;
        self.forget_tokens();
        if grants > 0 {
            self.reload_access().await?;
        }
        tracing::warn!(actor = identity.display_name(), user = %name, "user removed");
        Ok(())
    }

    /// Refuses to disable, remove or demote `name` when it is the last
    /// active (not disabled) user holding the `root` policy: people could
    /// otherwise lock themselves out of administration. Called with
    /// `access_writes` held, so two changes on this node cannot each see
    /// the other root user still active.
    async fn keep_a_root_user(&self, name: &str, u: &StoredUser) -> Result<()> {
        if u.disabled || !u.policies.iter().any(|p| p == ROOT_POLICY) {
            return Ok(());
        }
        for o in self.store.list_objects(KIND_USER).await? {
            if o.key == name {
                continue;
            }
            let other = decode_user(&o.value)?;
            if !other.disabled && other.policies.iter().any(|p| p == ROOT_POLICY) {
                return Ok(());
            }
        }
        Err(CoreError::Forbidden(Refusal::LastRootUser {
            user: name.to_string(),
        }))
    }

    /// Deletions of every stored break-glass grant of user `name`, for the
    /// commit that disables or removes the user: their emergency access
    /// ends with their tokens.
    async fn grant_removals(&self, name: &str) -> Result<Vec<Mutation>> {
        let mut out = Vec::new();
        for o in self
            .store
            .list_objects(crate::access::KIND_BREAKGLASS)
            .await?
        {
            let of_user = serde_json::from_slice::<crate::auth::BreakglassGrant>(&o.value)
                .is_ok_and(|g| g.user == name);
            if of_user {
                out.push(Mutation::DeleteObject {
                    kind: o.kind,
                    key: o.key,
                    expect: Expect::Revision(o.revision),
                });
            }
        }
        Ok(out)
    }

    // ---- one-time codes ----------------------------------------------------------

    fn open_totp(
        &self,
        keyring: &coffer_crypto::Keyring,
        name: &str,
        t: &StoredTotp,
    ) -> Result<TotpSecret> {
        let sealed = unhex(&t.sealed_hex)
            .ok_or_else(|| CoreError::Corrupt(Integrity::Unreadable(Record::TotpSeed)))?;
        let plain = keyring
            .open_record(TOTP_DOMAIN, name.as_bytes(), t.key_id, &sealed)
            .map_err(|_| CoreError::Corrupt(Integrity::Failed(Record::TotpSeed)))?;
        TotpSecret::from_bytes(plain.expose_secret())
            .map_err(|_| CoreError::Corrupt(Integrity::Unreadable(Record::TotpSeed)))
    }

    async fn own_user(
        &self,
        identity: &Identity,
    ) -> Result<(String, coffer_store::StoredObject, StoredUser)> {
        self.require_unsealed()?;
        self.authorize(identity, Operation::SelfService, "sys/users/self")?;
        let Some(name) = identity.user().filter(|_| identity.is_human()) else {
            return Err(CoreError::Invalid(InvalidInput::TotpPeopleOnly));
        };
        let o = self
            .store
            .get_object(KIND_USER, name)
            .await?
            .ok_or(CoreError::Unauthenticated)?;
        let u = decode_user(&o.value)?;
        Ok((name.to_string(), o, u))
    }

    /// Starts TOTP enrollment for the calling person: a new seed, shown once,
    /// that becomes required at login after [`Coffer::confirm_totp`].
    pub async fn enroll_totp(&self, identity: &Identity) -> Result<TotpEnrollment> {
        self.require_unsealed()?;
        let (name, o, mut u) = self.own_user(identity).await?;
        if u.totp.as_ref().is_some_and(|t| t.confirmed) {
            return Err(CoreError::Conflict(Conflict::TotpEnrolled));
        }
        self.reserve_seals(1).await?;
        let keys = self.unsealed()?;
        let seed = TotpSecret::generate();
        let (key_id, sealed) =
            keys.keyring
                .seal_record(TOTP_DOMAIN, name.as_bytes(), seed.expose_bytes());
        u.totp = Some(StoredTotp {
            key_id,
            sealed_hex: hex(&sealed),
            confirmed: false,
            last_step: 0,
        });
        self.store
            .commit(vec![put_user(&name, &u, Expect::Revision(o.revision))])
            .await?;
        Ok(TotpEnrollment {
            secret: seed.to_base32(),
            uri: seed.otpauth_uri("Coffer", &name),
        })
    }

    /// Confirms enrollment with a current code; from then on logins need one.
    pub async fn confirm_totp(&self, identity: &Identity, code: &str) -> Result<()> {
        self.change_totp(identity, code, true).await
    }

    /// Turns one-time codes off, proven with a current code.
    pub async fn disable_totp(&self, identity: &Identity, code: &str) -> Result<()> {
        self.change_totp(identity, code, false).await
    }

    async fn change_totp(&self, identity: &Identity, code: &str, confirm: bool) -> Result<()> {
        let keys = self.unsealed()?;
        let (name, o, mut u) = self.own_user(identity).await?;
        let Some(t) = u.totp.as_mut() else {
            return Err(CoreError::Invalid(InvalidInput::TotpNotSetUp));
        };
        if confirm && t.confirmed {
            return Err(CoreError::Conflict(Conflict::TotpOn));
        }
        if !confirm && !t.confirmed {
            // Abandoning an unfinished enrollment needs no code.
            u.totp = None;
        } else {
            let seed = self.open_totp(&keys.keyring, &name, t)?;
            let step = seed
                .verify_at(code.trim(), (now_ms() / 1000) as u64)
                .filter(|s| *s > t.last_step)
                .ok_or_else(|| CoreError::Invalid(InvalidInput::TotpCode))?;
            if confirm {
                t.confirmed = true;
                t.last_step = step;
            } else {
                u.totp = None;
            }
        }
        self.store
            .commit(vec![put_user(&name, &u, Expect::Revision(o.revision))])
            .await?;
        tracing::info!(user = %name, on = confirm, "one-time codes changed");
        Ok(())
    }
}

/// What [`Coffer::sweep_expired`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Expired break-glass grants.
    pub grants: usize,
    /// Expired invitations.
    pub invites: usize,
    /// Login-failure counters with no failure in the last hour.
    pub login_failures: usize,
}

impl Coffer {
    /// Deletes what can no longer be used: expired or used-up tokens (with
    /// their descendants), expired break-glass grants and invitations, and
    /// login-failure counters whose failures are all older than the window.
    /// Each deletion is conditional on the record being unchanged, so a
    /// record renewed or updated meanwhile is kept. Safe to run on any node,
    /// at any time.
    pub async fn sweep_expired(&self) -> Result<SweepReport> {
        self.require_unsealed()?;
        let now = now_ms();
        self.store
            .commit(vec![Mutation::DeleteExpiredTokens { now }])
            .await?;
        self.forget_tokens();
        let mut report = SweepReport::default();
        let mut doomed = Vec::new();
        for o in self.store.list_objects(KIND_INVITE).await? {
            let expired = serde_json::from_slice::<StoredInvite>(&o.value)
                .map_or(true, |i| i.expires_at <= now);
            if expired {
                doomed.push(o);
            }
        }
        for o in self
            .store
            .list_objects(crate::access::KIND_BREAKGLASS)
            .await?
        {
            let expired = serde_json::from_slice::<crate::auth::BreakglassGrant>(&o.value)
                .map_or(true, |g| g.expires_at <= now);
            if expired {
                doomed.push(o);
            }
        }
        for o in self.store.list_objects(KIND_LOGIN_FAILURES).await? {
            let stale = serde_json::from_slice::<StoredFailures>(&o.value)
                .map_or(true, |f| f.at.iter().all(|t| now - t >= FAILURE_WINDOW_MS));
            if stale {
                doomed.push(o);
            }
        }
        for o in doomed {
            // One commit per record: a conflict (the record changed since it
            // was listed) keeps that record and nothing else.
            match self
                .store
                .commit(vec![Mutation::DeleteObject {
                    kind: o.kind.clone(),
                    key: o.key.clone(),
                    expect: Expect::Revision(o.revision),
                }])
                .await
            {
                Ok(()) => match o.kind.as_str() {
                    KIND_INVITE => report.invites += 1,
                    KIND_LOGIN_FAILURES => report.login_failures += 1,
                    _ => report.grants += 1,
                },
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if report.grants > 0 {
            let _w = self.access_writes.lock().await;
            self.reload_access().await?;
        }
        Ok(report)
    }
}

/// Refuses an administrator acting on a user who holds a policy the
/// administrator could not grant (does not hold itself; root holds all):
/// a limited user-admin must not demote, disable, remove or reset the
/// one-time codes of someone more powerful.
fn check_outranks(identity: &Identity, name: &str, u: &StoredUser) -> Result<()> {
    if identity.is_root() {
        return Ok(());
    }
    match u.policies.iter().find(|p| !identity.policies().contains(p)) {
        Some(p) => Err(CoreError::Forbidden(Refusal::UserOutranks {
            user: name.to_string(),
            shown: crate::text::printable(p),
        })),
        None => Ok(()),
    }
}
