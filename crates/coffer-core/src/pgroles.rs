//! PostgreSQL role rotation: a secret that holds the credentials of a
//! PostgreSQL login made of two alternating roles.
//!
//! **Setup** (`manage_postgres`) binds a new secret to two roles and to a
//! secret holding an administrator connection (a `postgres://` URL, or
//! fields `url` and `password`). The caller must be allowed to create the
//! secret and to read the administrator credentials, so nobody can use
//! credentials they could not read. The first role gets a generated
//! password; the second loses any password it had. The secret's value is
//! the fields `username`, `password` and `url` (a connection URL with the
//! credentials in it).
//!
//! **Rotation** gives the inactive role a new password and makes it
//! `current`; the other role keeps its password through the grace period,
//! during which `previous` serves it. The steps, each leaving a state that
//! is safe to stop in:
//!
//! 1. the new credentials are written as `pending` (so coffer knows the
//!    password before PostgreSQL does);
//! 2. PostgreSQL gets the new password (as a SCRAM verifier) on the
//!    inactive role. If that fails, `pending` is dropped again;
//! 3. PostgreSQL is told that the old role's password expires when the
//!    grace period ends (`VALID UNTIL`, enforced by the server even when no
//!    coffer node runs);
//! 4. `pending` becomes `current`, the old `current` becomes `previous`. If
//!    that fails, step 3 is undone.
//!
//! A staged rotation (`--stage`) stops after step 2 and `promote` does
//! steps 3 and 4; cancelling it removes the staged role's new password.
//! While `previous` is still in its grace period a new rotation would take
//! its role's password away, so it is refused unless forced. Versions of a
//! managed secret come only from rotations: plain writes, rollbacks,
//! imports and copies are refused.

use coffer_crypto::SecretString;
use coffer_crypto::generate::Spec;
use coffer_pgroles::{Change, RoleAdmin};
use zeroize::Zeroizing;

use crate::auth::{Authorized, Identity, Operation};
use crate::error::{
    Conflict, CoreError, Expired, InvalidInput, NotFound, Refusal, Result, UpstreamFailure,
};
pub use crate::lifecycle::PgRoles;
use crate::lifecycle::{KIND_STATE, Labels, RotateReceipt, SecretState};
use crate::path::SecretPath;
use crate::read::{not_found, open_value};
use crate::seal::Keys;
use crate::write::{AuditNote, Becomes, NewVersion};
use crate::{Coffer, SecretValue, audit, now_ms};

/// The generator of role passwords when none is given: letters and digits
/// carrying 32 bytes of randomness (43 characters, 256 bits, nothing that
/// needs quoting in a URL).
pub const DEFAULT_GENERATOR: &str = "alnum:32";

/// The settings of one rotation of a managed secret, resolved by
/// `rotate` (from the request and the rules) or by the scheduler.
pub(crate) struct PgRotation<'a> {
    /// The stored author of the new version.
    pub created_by: &'a str,
    /// The password generator.
    pub spec: &'a Spec,
    /// Only stage the new version as `pending`.
    pub stage: bool,
    /// How long the old role keeps its password.
    pub grace_ms: i64,
    /// Rotate even while `previous` is in its grace period.
    pub force: bool,
}

/// `coffer pg manage`: what to bind.
pub struct ManageRequest {
    /// Path of the secret holding the administrator connection.
    pub admin: String,
    /// The two roles.
    pub roles: [String; 2],
    /// Where applications connect, without credentials; default: the
    /// administrator URL's server and database.
    pub connect_url: Option<String>,
    /// The password generator; default [`DEFAULT_GENERATOR`].
    pub generate: Option<Spec>,
    /// Create roles that do not exist yet.
    pub create_roles: bool,
    /// The group role created roles join.
    pub member_of: Option<String>,
}

/// What `manage_postgres` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManageReceipt {
    /// Canonical path.
    pub path: String,
    /// The version written (1).
    pub version: u64,
    /// The role whose credentials are `current`.
    pub role: String,
    /// Roles that were created.
    pub created: Vec<String>,
}

/// A managed secret's binding, for `coffer pg show`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgInfo {
    /// Canonical path.
    pub path: String,
    /// The binding.
    pub roles: PgRoles,
    /// The labels.
    pub labels: Labels,
}

/// The URL with its user and password replaced (percent-encoded). Every
/// buffer that holds the password is wiped when dropped.
fn with_credentials(base: &str, user: &str, password: &str) -> Zeroizing<String> {
    fn encode(s: &str) -> Zeroizing<String> {
        // Large enough never to grow (a grown buffer leaves a copy behind).
        let mut out = Zeroizing::new(String::with_capacity(3 * s.len()));
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }
    let (scheme, rest) = base.split_once("://").unwrap_or(("postgres", base));
    let host = match rest.find(['/', '?']) {
        Some(i) => match rest[..i].rsplit_once('@') {
            Some((_, h)) => format!("{h}{}", &rest[i..]),
            None => rest.to_string(),
        },
        None => rest.rsplit_once('@').map_or(rest, |(_, h)| h).to_string(),
    };
    let (user, password) = (encode(user), encode(password));
    let mut out = Zeroizing::new(String::with_capacity(
        scheme.len() + 4 + user.len() + password.len() + host.len(),
    ));
    for part in [scheme, "://", &user, ":", &password, "@", &host] {
        out.push_str(part);
    }
    out
}

fn credentials(pg: &PgRoles, role: &str, password: &SecretString) -> SecretValue {
    let mut fields = std::collections::BTreeMap::new();
    fields.insert("username".to_string(), SecretString::from(role));
    fields.insert(
        "url".to_string(),
        SecretString::from(
            with_credentials(&pg.connect_url, role, password.expose_secret()).as_str(),
        ),
    );
    fields.insert("password".to_string(), password.clone());
    SecretValue::Fields(fields)
}

/// A rotation whose promotion failed after the new password was set.
fn staged_only(cause: CoreError, role: &str, staged: u64, path: &SecretPath) -> CoreError {
    CoreError::Upstream(UpstreamFailure::StagedOnly {
        cause: Box::new(cause),
        role: role.to_string(),
        staged,
        path: path.to_string(),
    })
}

fn upstream(e: coffer_pgroles::Error) -> CoreError {
    CoreError::Upstream(UpstreamFailure::Postgres(e))
}

impl Coffer {
    /// Binds a new secret at `path` to two PostgreSQL roles (see the module
    /// documentation). Needs `create` on `path` and `read` on the
    /// administrator secret.
    pub async fn manage_postgres(
        &self,
        identity: &Identity,
        path: &str,
        request: ManageRequest,
    ) -> Result<ManageReceipt> {
        let path = SecretPath::parse(path)?;
        let admin_path = SecretPath::parse(&request.admin)?;
        if admin_path == path {
            return Err(CoreError::Invalid(InvalidInput::AdminIsManaged));
        }
        for role in request.roles.iter().chain(request.member_of.iter()) {
            crate::text::refuse_credential("a role name", role)?;
            coffer_pgroles::check_role_name(role).map_err(|e| {
                // The check quotes the name: only when it is short and
                // printable (not, say, a password pasted in its place).
                CoreError::Invalid(if crate::text::quotable(role) {
                    InvalidInput::RoleName(e)
                } else {
                    InvalidInput::RoleNameHidden
                })
            })?;
        }
        if request.roles[0] == request.roles[1] {
            return Err(CoreError::Invalid(InvalidInput::SameRoles));
        }
        if request.member_of.is_some() && !request.create_roles {
            return Err(CoreError::Invalid(InvalidInput::GroupWithoutCreate));
        }
        if let Some(url) = &request.connect_url
            && (!coffer_store::postgres::is_postgres_url(url)
                || url_has_userinfo(url)
                || coffer_store::postgres::url_has_password(url))
        {
            return Err(CoreError::Invalid(InvalidInput::ConnectUrl));
        }
        let spec = match request.generate {
            Some(s) => s,
            None => Spec::parse(DEFAULT_GENERATOR).expect("the default generator parses"),
        };
        let keys = self.unsealed()?;
        self.authorize(identity, Operation::Create, path.as_str())?;
        let admin_auth = self.authorize(identity, Operation::ReadValue, admin_path.as_str())?;
        if admin_auth.via_breakglass() {
            // The roles' credentials would outlive the grant, wherever
            // `path` is.
            audit::refuse(Operation::ReadValue, admin_path.as_str());
            return Err(CoreError::Forbidden(Refusal::BreakglassNoSetup {
                admin: admin_path.to_string(),
            }));
        }
        if self.cached(&path).await?.is_some() {
            return Err(CoreError::Conflict(Conflict::ManagedExists {
                path: path.to_string(),
            }));
        }
        let (admin_url, mut admin) = self.admin_connect(&keys, &admin_auth, &admin_path).await?;
        if request.roles.iter().any(|r| r == admin.user()) {
            return Err(CoreError::Invalid(InvalidInput::AdminOwnRole {
                role: admin.user().to_string(),
            }));
        }
        if !admin.can_manage_roles().await.map_err(upstream)? {
            return Err(CoreError::Upstream(UpstreamFailure::NoCreateRole {
                admin: admin.user().to_string(),
            }));
        }
        let roles: Vec<&str> = request.roles.iter().map(String::as_str).collect();
        let found = admin.inspect(&roles).await.map_err(upstream)?;
        // Every check before the first change.
        let mut missing = Vec::new();
        for role in &request.roles {
            match found.iter().find(|f| &f.name == role) {
                Some(f) if f.superuser => {
                    return Err(CoreError::Invalid(InvalidInput::Superuser {
                        role: role.clone(),
                    }));
                }
                Some(_) => {}
                None if request.create_roles => missing.push(role.clone()),
                None => {
                    return Err(CoreError::NotFound(NotFound::Role { role: role.clone() }));
                }
            }
        }
        let mut created = Vec::new();
        for role in missing {
            admin
                .create_login_role(&role, request.member_of.as_deref())
                .await
                .map_err(|cause| {
                    CoreError::Upstream(UpstreamFailure::CreateRoles {
                        cause,
                        created: created.clone(),
                    })
                })?;
            created.push(role);
        }
        let pg = PgRoles {
            admin: admin_path.to_string(),
            roles: request.roles.clone(),
            connect_url: request
                .connect_url
                .clone()
                .unwrap_or_else(|| coffer_store::postgres::without_credentials(&admin_url)),
        };
        let role = pg.roles[0].clone();
        let password = spec.generate();
        let value = credentials(&pg, &role, &password);
        let plaintext = self.encode_checked(&value)?;
        self.judge(&path, &value, Some(&spec))?;
        {
            let mut tx = self.begin_write(&[&path], 1, AuditNote::Nothing).await?;
            if tx.existing(&path).await?.is_some() {
                return Err(CoreError::Conflict(Conflict::ManagedExists {
                    path: path.to_string(),
                }));
            }
            let new = NewVersion {
                path: &path,
                plaintext: &plaintext,
                created_by: &crate::actor::Actor::stored_for(identity),
                becomes: Becomes::Current { grace_until: None },
                generated: Some(&spec),
                now: now_ms(),
            };
            let mut planned = tx.plan(&new, None)?;
            // The state record binds the roles: written in place of the
            // plain one the plan made, and cached once read back.
            let state = SecretState {
                generator: Some(spec.to_string()),
                postgres: Some(pg.clone()),
                ..SecretState::default()
            };
            planned
                .mutations
                .retain(|m| !matches!(m, coffer_store::Mutation::PutObject { .. }));
            planned.mutations.push(coffer_store::Mutation::PutObject {
                kind: KIND_STATE.into(),
                key: path.to_string(),
                value: serde_json::to_vec(&state).expect("state serialises"),
                expect: coffer_store::Expect::Absent,
            });
            tx.stage_mutations(&[&path], planned.mutations);
            tx.commit().await?;
        }
        // Coffer knows the password; now PostgreSQL gets it. If it refuses,
        // the secret goes again, so nothing names a password no role has.
        let changes = [
            Change::SetPassword {
                role: &role,
                password: password.expose_secret().as_bytes(),
            },
            Change::Retire { role: &pg.roles[1] },
        ];
        if let Err(e) = admin.apply(&changes).await {
            let undo = self.remove_unmanaged(&path).await;
            return Err(CoreError::Upstream(UpstreamFailure::FirstPassword {
                cause: e,
                path: path.to_string(),
                undo: undo.err().map(Box::new),
            }));
        }
        audit::note_version(1);
        tracing::info!(
            actor = identity.display_name(),
            path = path.as_str(),
            admin = admin_path.as_str(),
            role = role.as_str(),
            "postgres roles managed"
        );
        Ok(ManageReceipt {
            path: path.to_string(),
            version: 1,
            role,
            created,
        })
    }

    /// Removes a secret just created by `manage_postgres` whose roles could
    /// not be set.
    async fn remove_unmanaged(&self, path: &SecretPath) -> Result<()> {
        let mut tx = self.begin_write(&[path], 0, AuditNote::Nothing).await?;
        let existing = tx.existing_secret(path).await?;
        let mut mutations = vec![coffer_store::Mutation::DeleteSecret {
            path: path.to_string(),
            expected_current: existing.meta.current_version,
        }];
        if let Some((revision, _)) = &existing.state {
            mutations.push(coffer_store::Mutation::DeleteObject {
                kind: KIND_STATE.into(),
                key: path.to_string(),
                expect: coffer_store::Expect::Revision(*revision),
            });
        }
        tx.stage_mutations(&[path], mutations);
        Ok(tx.commit().await?)
    }

    /// The binding of a managed secret (needs `read` or `list` on it).
    pub async fn postgres_info(&self, identity: &Identity, path: &str) -> Result<PgInfo> {
        let path = self.admit(identity, Operation::ReadMetadata, path)?;
        let cached = self.cached(&path).await?.ok_or_else(|| not_found(&path))?;
        let roles = managed(&cached.state)
            .ok_or_else(|| {
                CoreError::NotFound(NotFound::NotManaged {
                    path: path.to_string(),
                })
            })?
            .clone();
        Ok(PgInfo {
            path: path.to_string(),
            roles,
            labels: cached.labels(),
        })
    }

    /// The binding of `path`, if it manages PostgreSQL roles.
    pub(crate) async fn postgres_of(&self, path: &SecretPath) -> Result<Option<PgRoles>> {
        Ok(self
            .cached(path)
            .await?
            .and_then(|c| managed(&c.state).cloned()))
    }

    /// Reads the administrator secret and connects with it. Returns the URL
    /// (for the default connect URL) and the connection.
    async fn admin_connect(
        &self,
        keys: &Keys,
        auth: &Authorized<'_>,
        admin: &SecretPath,
    ) -> Result<(String, RoleAdmin)> {
        let cached = self.cached(admin).await?.ok_or_else(|| {
            CoreError::NotFound(NotFound::AdminSecret {
                admin: admin.to_string(),
            })
        })?;
        let labels = cached.labels();
        if let Some(exp) = labels.expires_at
            && now_ms() >= exp
        {
            return Err(CoreError::Expired(Expired::AdminSecret {
                admin: admin.to_string(),
                at: exp,
            }));
        }
        let record = match &cached.current {
            Some(r) if r.version == labels.current && cached.meta.live => r.clone(),
            _ => {
                return Err(CoreError::NotFound(NotFound::AdminValue {
                    admin: admin.to_string(),
                }));
            }
        };
        let value = open_value(keys, auth, &record)?;
        let (url, password) = match &value {
            SecretValue::Text(t) => (t.expose_secret().trim().to_string(), None),
            SecretValue::Fields(f) => (
                f.get("url")
                    .map(|u| u.expose_secret().trim().to_string())
                    .ok_or_else(|| {
                        CoreError::Invalid(InvalidInput::AdminNoUrl {
                            admin: admin.to_string(),
                        })
                    })?,
                f.get("password").cloned(),
            ),
        };
        if !coffer_store::postgres::is_postgres_url(&url) {
            return Err(CoreError::Invalid(InvalidInput::AdminUrl {
                admin: admin.to_string(),
            }));
        }
        let client = RoleAdmin::connect(
            &url,
            password.as_ref().map(|p| p.expose_secret().as_bytes()),
        )
        .await
        .map_err(upstream)?;
        Ok((url, client))
    }

    /// The administrator connection of a managed secret, read on the
    /// server's own behalf (its creator was allowed to read it).
    async fn admin_of(&self, keys: &Keys, pg: &PgRoles) -> Result<RoleAdmin> {
        let admin = SecretPath::parse(&pg.admin)?;
        let auth = Authorized::on_behalf(Operation::ReadValue, admin.as_str());
        Ok(self.admin_connect(keys, &auth, &admin).await?.1)
    }

    /// The role whose credentials version `version` of `path` holds, when it
    /// can be read and names one of the managed roles.
    async fn role_at(
        &self,
        keys: &Keys,
        path: &SecretPath,
        pg: &PgRoles,
        version: u64,
    ) -> Result<Option<String>> {
        let Some(record) = self.store.get_version(path.as_str(), version).await? else {
            return Ok(None);
        };
        if record.state != coffer_store::VersionState::Active {
            return Ok(None);
        }
        let value = open_value(
            keys,
            &Authorized::on_behalf(Operation::ReadValue, path.as_str()),
            &record,
        )?;
        Ok(match value {
            SecretValue::Fields(f) => f
                .get("username")
                .map(|u| u.expose_secret().to_string())
                .filter(|u| pg.roles.contains(u)),
            SecretValue::Text(_) => None,
        })
    }

    /// A rotation of a managed secret (see the module documentation).
    pub(crate) async fn rotate_postgres(
        &self,
        path: &SecretPath,
        pg: &PgRoles,
        rotation: PgRotation<'_>,
    ) -> Result<RotateReceipt> {
        let PgRotation {
            created_by,
            spec,
            stage,
            grace_ms,
            force,
        } = rotation;
        let keys = self.unsealed()?;
        let existing = self.cached(path).await?.ok_or_else(|| not_found(path))?;
        let labels = existing.labels();
        if let Some(p) = labels.pending {
            return Err(CoreError::Conflict(Conflict::Staged {
                path: path.to_string(),
                pending: p,
            }));
        }
        let now = now_ms();
        let active = self.role_at(&keys, path, pg, labels.current).await?;
        // The role that gets the new password: the inactive one (the first
        // when the current credentials cannot be read).
        let next = match &active {
            Some(a) => pg.other(a).to_string(),
            None => pg.roles[0].clone(),
        };
        if !force
            && let Some(previous) = labels.previous
            && labels.previous_until.is_none_or(|until| now < until)
        {
            return Err(CoreError::Conflict(Conflict::PreviousInGrace {
                path: path.to_string(),
                previous,
                role: next,
                until: labels.previous_until,
            }));
        }
        // Connect first: when PostgreSQL cannot be reached, nothing changes.
        let mut admin = self.admin_of(&keys, pg).await?;
        let password = spec.generate();
        let value = credentials(pg, &next, &password);
        let warnings = self.judge(path, &value, Some(spec))?;
        let (staged, _) = self
            .append(path, &value, created_by, Becomes::Pending, Some(spec))
            .await?;
        if let Err(e) = admin
            .apply(&[Change::SetPassword {
                role: &next,
                password: password.expose_secret().as_bytes(),
            }])
            .await
        {
            let undo = self.drop_pending(path, staged).await;
            return Err(CoreError::Upstream(UpstreamFailure::RotatePassword {
                cause: e,
                path: path.to_string(),
                staged,
                undo: undo.err().map(Box::new),
            }));
        }
        if stage {
            let labels = self
                .cached(path)
                .await?
                .map(|c| c.labels())
                .unwrap_or(labels);
            return Ok(RotateReceipt {
                path: path.to_string(),
                version: staged,
                labels,
                generated: true,
                warnings,
            });
        }
        let mut receipt = self
            .promote_postgres(path, pg, Some(admin), grace_ms)
            .await
            .map_err(|e| match e {
                e @ (CoreError::Upstream(_) | CoreError::Conflict(_)) => {
                    staged_only(e, &next, staged, path)
                }
                other => other,
            })?;
        receipt.generated = true;
        receipt.warnings = warnings;
        Ok(receipt)
    }

    /// Forgets the pending version `version` (it stays in the history).
    async fn drop_pending(&self, path: &SecretPath, version: u64) -> Result<RotateReceipt> {
        self.change_state(path, |labels, head, state| {
            if labels.pending != Some(version) {
                return Err(CoreError::Conflict(Conflict::NoLongerPending {
                    path: path.to_string(),
                    version,
                }));
            }
            Ok(state.without_pending(labels, head))
        })
        .await
    }

    /// Completes a managed secret's staged rotation: the role that is not
    /// staged expires after the grace period, then `pending` becomes
    /// `current`.
    pub(crate) async fn promote_postgres(
        &self,
        path: &SecretPath,
        pg: &PgRoles,
        admin: Option<RoleAdmin>,
        grace_ms: i64,
    ) -> Result<RotateReceipt> {
        let keys = self.unsealed()?;
        let existing = self.cached(path).await?.ok_or_else(|| not_found(path))?;
        let labels = existing.labels();
        let pending = labels.pending.ok_or_else(|| {
            CoreError::Conflict(Conflict::NothingToPromote {
                path: path.to_string(),
            })
        })?;
        let staged = self
            .role_at(&keys, path, pg, pending)
            .await?
            .ok_or_else(|| {
                CoreError::Conflict(Conflict::StagedRoleUnknown {
                    path: path.to_string(),
                    pending,
                })
            })?;
        let retiring = pg.other(&staged).to_string();
        let mut admin = match admin {
            Some(a) => a,
            None => self.admin_of(&keys, pg).await?,
        };
        admin
            .apply(&[Change::ExpireIn {
                role: &retiring,
                ms: grace_ms,
            }])
            .await
            .map_err(upstream)?;
        let promoted = self
            .change_state(path, |labels, head, state| {
                if labels.pending != Some(pending) {
                    return Err(CoreError::Conflict(Conflict::NoLongerPending {
                        path: path.to_string(),
                        version: pending,
                    }));
                }
                Ok(state.promoted(labels, head, pending, now_ms().saturating_add(grace_ms)))
            })
            .await;
        match promoted {
            Ok(receipt) => {
                audit::note_version(receipt.version);
                tracing::info!(
                    path = path.as_str(),
                    version = receipt.version,
                    role = staged.as_str(),
                    retiring = retiring.as_str(),
                    grace_ms,
                    "postgres role rotated"
                );
                Ok(receipt)
            }
            Err(e) => {
                // The old credentials are still `current`: keep them valid.
                if let Err(undo) = admin
                    .apply(&[Change::NeverExpire { role: &retiring }])
                    .await
                {
                    tracing::error!(
                        path = path.as_str(),
                        role = retiring.as_str(),
                        error = %undo,
                        "the promotion failed and the old role's expiry could not be lifted"
                    );
                }
                Err(e)
            }
        }
    }

    /// Cancels a managed secret's staged rotation: the staged role's new
    /// password is removed, then `pending` is forgotten.
    pub(crate) async fn cancel_postgres(
        &self,
        path: &SecretPath,
        pg: &PgRoles,
    ) -> Result<RotateReceipt> {
        let keys = self.unsealed()?;
        let existing = self.cached(path).await?.ok_or_else(|| not_found(path))?;
        let labels = existing.labels();
        let pending = labels.pending.ok_or_else(|| {
            CoreError::Conflict(Conflict::NothingToCancel {
                path: path.to_string(),
            })
        })?;
        if let Some(staged) = self.role_at(&keys, path, pg, pending).await?
            && self
                .role_at(&keys, path, pg, labels.current)
                .await?
                .as_deref()
                != Some(&staged)
        {
            let mut admin = self.admin_of(&keys, pg).await?;
            admin
                .apply(&[Change::Retire { role: &staged }])
                .await
                .map_err(upstream)?;
        }
        self.drop_pending(path, pending).await
    }

    /// Refuses what cannot be done to a managed secret.
    pub(crate) fn refuse_managed(
        state: &Option<(u64, SecretState)>,
        path: &SecretPath,
        what: &'static str,
    ) -> Result<()> {
        if managed(state).is_some() {
            return Err(CoreError::Invalid(InvalidInput::Managed {
                path: path.to_string(),
                what,
            }));
        }
        Ok(())
    }
}

/// The binding in a state record.
fn managed(state: &Option<(u64, SecretState)>) -> Option<&PgRoles> {
    state.as_ref().and_then(|(_, s)| s.postgres.as_ref())
}

fn url_has_userinfo(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = match rest.find(['/', '?']) {
        Some(i) => &rest[..i],
        None => rest,
    };
    authority.contains('@')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_get_the_roles_credentials() {
        assert_eq!(
            *with_credentials(
                "postgres://db:5432/app?sslmode=require",
                "app_a",
                "p@ss/w:rd"
            ),
            "postgres://app_a:p%40ss%2Fw%3Ard@db:5432/app?sslmode=require"
        );
        assert_eq!(
            *with_credentials("postgresql://admin:x@db/app", "app_b", "abc"),
            "postgresql://app_b:abc@db/app"
        );
        assert_eq!(
            *with_credentials("postgres://db", "r", "p"),
            "postgres://r:p@db"
        );
        assert!(url_has_userinfo("postgres://u@db/x"));
        assert!(!url_has_userinfo("postgres://db/x?user=y@z"));
    }
}
