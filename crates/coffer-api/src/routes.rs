//! The route table: every operation of the native API, once.
//!
//! Each [`Route`] names its HTTP method, its path template (axum's syntax:
//! `{name}` is one segment, `{*path}` the rest of the path), the operation
//! audit records name it by, and what the server requires of the caller.
//! The server registers its handlers against these entries and finds a
//! request's audit operation here; the client builds its URLs from them
//! ([`Route::url`]); tests check the table against the OpenAPI document.
//! Adding a route is one entry here plus its handler.
//!
//! [`Requires`] documents the checks `coffer-core` makes for the route; it
//! is data for readers and tests, not the check itself (every decision is
//! made in the core, by `auth::authorize`). coffer-server's
//! `tests/in_process/route_requires.rs` holds every entry to what the server enforces:
//! the policy an entry describes must pass, and the same policy without any
//! one of its requirements must be refused.

use std::collections::HashMap;
use std::sync::OnceLock;

pub use coffer_policy::Operation;

/// An HTTP method the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`.
    Get,
    /// `PUT`.
    Put,
    /// `POST`.
    Post,
    /// `DELETE`.
    Delete,
    /// `PATCH`.
    Patch,
}

impl Method {
    /// The method's name on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Put => "PUT",
            Self::Post => "POST",
            Self::Delete => "DELETE",
            Self::Patch => "PATCH",
        }
    }
}

/// What a capability is checked on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The secret path in the URL (`{*path}`).
    UrlPath,
    /// The prefix in the URL (`{*prefix}`), or the root on the route
    /// without one.
    UrlPrefix,
    /// Each secret path the request body's `secrets` list names (its
    /// entries' `path`).
    BodyPaths,
    /// Each prefix of the request body's `prefixes` list.
    BodyPrefixes,
    /// The secret path or prefix in this field of the request body.
    BodyField(&'static str),
    /// Each secret directly below the prefix (or prefixes) in this field of
    /// the request body that a listing of the prefix shows the caller:
    /// secrets the listing leaves out are left out of the request too, not
    /// refused. (A listing shows a secret when the caller may `list` the
    /// prefix, and, where metadata is shown, read the secret's metadata.)
    Below(&'static str),
    /// This fixed `sys/` target.
    Sys(&'static str),
    /// This `sys/` prefix followed by the URL's one parameter (`{name}` or
    /// `{accessor}`).
    SysNamed(&'static str),
}

/// What the server requires of a request before it acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requires {
    /// Nothing: no token is asked for (health, status, init, unseal, login,
    /// accepting an invitation, the OpenAPI document, and a request that
    /// matches no route).
    Nothing,
    /// A token whose policies grant the capability on the target.
    Allow(Operation, Target),
    /// Every one of these.
    AllOf(&'static [Requires]),
    /// One of these (a write needs `create` for a secret's first version,
    /// `update` for any other).
    AnyOf(&'static [Requires]),
    /// These too when the request body sets the field of this name (its
    /// name on the wire): a flag that is true, or any other value that is
    /// present and not `null`.
    If(&'static str, &'static Requires),
    /// The token the URL's `{accessor}` names is the caller's own (`self`
    /// on `sys/tokens/self`), a descendant of it or, for a person's token,
    /// another token of the same person, or the caller holds `admin` on
    /// `sys/tokens/ACCESSOR`.
    ManagedToken,
}

/// What a request is for the audit log: the operation of its route, or
/// [`UNMATCHED`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {
    /// The operation's name in audit records (`secret.read`, ...).
    pub name: &'static str,
    /// What the server requires of the caller.
    pub requires: Requires,
    /// Whether requests are audited. Only health and status are not: load
    /// balancers poll them and they reveal nothing (they are audited only
    /// when refused before reaching their handler).
    pub audited: bool,
}

/// One operation of the API: a method on a path template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The HTTP method.
    pub method: Method,
    /// The path template, in axum's syntax (`/api/v1/secrets/{*path}`).
    pub path: &'static str,
    /// The operation.
    pub op: Op,
}

impl Route {
    const fn new(
        method: Method,
        path: &'static str,
        name: &'static str,
        requires: Requires,
    ) -> Route {
        Route {
            method,
            path,
            op: Op {
                name,
                requires,
                audited: true,
            },
        }
    }

    const fn unaudited(self) -> Route {
        Route {
            op: Op {
                audited: false,
                ..self.op
            },
            ..self
        }
    }

    /// The path template as the OpenAPI document spells it (`{*path}`
    /// becomes `{path}`).
    pub fn openapi_path(&self) -> String {
        self.path.replace("{*", "{")
    }

    /// The URL path of this route with its parameters filled in, in order:
    /// a `{name}` parameter is one segment (a `/` in it is encoded), a
    /// `{*path}` parameter keeps its `/`s ([`encode_path`]). Callers trim
    /// slashes as the route needs before passing a value.
    ///
    /// # Panics
    ///
    /// When `params` does not hold exactly one value per parameter of the
    /// template: a caller's mistake that must not become a request to some
    /// other URL. The message names the template only, never a value.
    pub fn url(&self, params: &[&str]) -> String {
        let wanted = self.path.matches('{').count();
        assert!(
            params.len() == wanted,
            "{} takes {wanted} parameter(s), not {}",
            self.path,
            params.len()
        );
        let mut out =
            String::with_capacity(self.path.len() + params.iter().map(|p| p.len()).sum::<usize>());
        let mut params = params.iter();
        let mut rest = self.path;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let close = rest[open..].find('}').map_or(rest.len(), |c| open + c);
            let value = params.next().copied().unwrap_or_default();
            if rest[open + 1..].starts_with('*') {
                out.push_str(&encode_path(value));
            } else {
                out.push_str(&encode_segment(value));
            }
            rest = &rest[(close + 1).min(rest.len())..];
        }
        out.push_str(rest);
        out
    }
}

/// Percent-encodes everything but the characters coffer paths may contain
/// (and `/`), so no path can change the URL's structure.
pub fn encode_path(path: &str) -> String {
    encode(path, b"_-.~@:=,/")
}

/// Percent-encodes a value that must stay one URL segment or one query
/// value: everything but ASCII letters, digits and `_-.~`.
pub fn encode_segment(value: &str) -> String {
    encode(value, b"_-.~")
}

fn encode(value: &str, keep: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0xf)] as char);
        }
    }
    out
}

use Method::{Get, Patch, Post, Put};
use Operation::{
    Admin, Breakglass, Create, Destroy, List, ReadMetadata, ReadValue, Rotate, SelfService, Update,
};
use Requires::{AllOf, Allow, AnyOf, ManagedToken, Nothing};
use Target::{Below, BodyField, BodyPaths, BodyPrefixes, Sys, SysNamed, UrlPath, UrlPrefix};

/// The operation of a request that matches no route (an unknown path, or a
/// method the path does not take). It reaches no handler; it is audited.
pub const UNMATCHED: Op = Op {
    name: "unmatched",
    requires: Nothing,
    audited: true,
};

const CREATE_OR_UPDATE_URL_PATH: Requires =
    AnyOf(&[Allow(Create, UrlPath), Allow(Update, UrlPath)]);

// ---- secrets ----

/// Reads a secret's value (a version or a label).
pub const SECRET_READ: Route = Route::new(
    Get,
    "/api/v1/secrets/{*path}",
    "secret.read",
    Allow(ReadValue, UrlPath),
);
/// Writes a new version (a value, or one the server generates).
pub const SECRET_WRITE: Route = Route::new(
    Put,
    "/api/v1/secrets/{*path}",
    "secret.write",
    CREATE_OR_UPDATE_URL_PATH,
);
/// Soft-deletes versions.
pub const SECRET_DELETE: Route = Route::new(
    Method::Delete,
    "/api/v1/secrets/{*path}",
    "secret.delete",
    Allow(Operation::Delete, UrlPath),
);
/// Reads many secrets at once, all or nothing.
pub const SECRET_BUNDLE: Route = Route::new(
    Post,
    "/api/v1/bundle",
    "secret.bundle",
    AllOf(&[
        Allow(List, BodyPrefixes),
        Allow(ReadValue, BodyPaths),
        Allow(ReadValue, Below("prefixes")),
    ]),
);
/// Writes many secrets in one transaction, all or nothing.
pub const SECRET_IMPORT: Route = Route::new(
    Post,
    "/api/v1/import",
    "secret.import",
    AnyOf(&[Allow(Create, BodyPaths), Allow(Update, BodyPaths)]),
);
/// Writes a secret's whole history (versions with their times and
/// deleted or destroyed states) in one transaction. Appending to a secret
/// that exists also needs `update` on it, and `delete` or `destroy` when an
/// appended version is deleted or destroyed (decided in the core: the
/// table cannot say "when the secret exists").
pub const SECRET_HISTORY_IMPORT: Route = Route::new(
    Put,
    "/api/v1/history/{*path}",
    "secret.import_history",
    AllOf(&[
        Allow(Admin, Sys("sys/import")),
        Allow(ReadValue, UrlPath),
        Allow(Create, UrlPath),
    ]),
);
/// A secret's metadata and version history.
pub const SECRET_METADATA: Route = Route::new(
    Get,
    "/api/v1/metadata/{*path}",
    "secret.metadata",
    Allow(ReadMetadata, UrlPath),
);
/// Lists the root.
pub const SECRET_LIST_ROOT: Route =
    Route::new(Get, "/api/v1/list", "secret.list", Allow(List, UrlPrefix));
/// Lists a prefix.
pub const SECRET_LIST: Route = Route::new(
    Get,
    "/api/v1/list/{*prefix}",
    "secret.list",
    Allow(List, UrlPrefix),
);
/// Restores soft-deleted versions.
pub const SECRET_UNDELETE: Route = Route::new(
    Post,
    "/api/v1/undelete/{*path}",
    "secret.undelete",
    Allow(Operation::Delete, UrlPath),
);
/// The keyed fingerprints of the values stored under a prefix, for
/// scanners (no value, no `read`).
pub const SECRET_FINGERPRINTS: Route = Route::new(
    Post,
    "/api/v1/fingerprints",
    "secret.fingerprints",
    Allow(List, BodyField("prefix")),
);
/// Marks a version compromised: it never becomes current again.
pub const SECRET_COMPROMISE: Route = Route::new(
    Post,
    "/api/v1/compromise/{*path}",
    "secret.compromise",
    Allow(Rotate, UrlPath),
);
/// Erases versions for good.
pub const SECRET_DESTROY: Route = Route::new(
    Post,
    "/api/v1/destroy/{*path}",
    "secret.destroy",
    Allow(Destroy, UrlPath),
);

// ---- the secret lifecycle ----

/// Rotates a secret (or stages a rotation).
pub const SECRET_ROTATE: Route = Route::new(
    Post,
    "/api/v1/rotate/{*path}",
    "secret.rotate",
    Allow(Rotate, UrlPath),
);
/// Cancels a staged rotation.
pub const SECRET_ROTATE_CANCEL: Route = Route::new(
    Method::Delete,
    "/api/v1/rotate/{*path}",
    "secret.rotate_cancel",
    Allow(Rotate, UrlPath),
);
/// Promotes a staged version to `current`.
pub const SECRET_PROMOTE: Route = Route::new(
    Post,
    "/api/v1/promote/{*path}",
    "secret.promote",
    Allow(Rotate, UrlPath),
);
/// Makes a secret a managed PostgreSQL role pair.
pub const POSTGRES_MANAGE: Route = Route::new(
    Post,
    "/api/v1/postgres/{*path}",
    "postgres.manage",
    AllOf(&[Allow(Create, UrlPath), Allow(ReadValue, BodyField("admin"))]),
);
/// Describes a managed PostgreSQL secret.
pub const POSTGRES_READ: Route = Route::new(
    Get,
    "/api/v1/postgres/{*path}",
    "postgres.read",
    Allow(ReadMetadata, UrlPath),
);
/// Sets or clears a secret's expiry.
pub const SECRET_EXPIRY: Route = Route::new(
    Put,
    "/api/v1/expiry/{*path}",
    "secret.expiry",
    Allow(Update, UrlPath),
);
/// Writes an earlier version's value as a new version.
pub const SECRET_ROLLBACK: Route = Route::new(
    Post,
    "/api/v1/rollback/{*path}",
    "secret.rollback",
    AllOf(&[Allow(ReadValue, UrlPath), Allow(Update, UrlPath)]),
);
/// Copies (or moves) a secret with its history.
pub const SECRET_COPY: Route = Route::new(
    Post,
    "/api/v1/copy",
    "secret.copy",
    AllOf(&[
        Allow(ReadValue, BodyField("from")),
        Requires::If("move", &Allow(Operation::Delete, BodyField("from"))),
        Allow(Create, BodyField("to")),
    ]),
);
/// Promotes the secrets of one environment to another.
pub const SECRET_PROMOTE_ENV: Route = Route::new(
    Post,
    "/api/v1/promote-env",
    "secret.promote_env",
    AllOf(&[
        Allow(List, BodyField("from")),
        Allow(List, BodyField("to")),
        Allow(ReadValue, Below("from")),
        // The target's secrets are read where the source has one of the same
        // name, to compare the values.
        Allow(ReadValue, Below("to")),
        Requires::If(
            "apply",
            &AnyOf(&[Allow(Create, Below("to")), Allow(Update, Below("to"))]),
        ),
    ]),
);
/// The rotation status of every secret.
pub const ROTATION_STATUS_ROOT: Route = Route::new(
    Get,
    "/api/v1/rotation/status",
    "rotation.status",
    Allow(List, UrlPrefix),
);
/// The rotation status of the secrets under a prefix.
pub const ROTATION_STATUS: Route = Route::new(
    Get,
    "/api/v1/rotation/status/{*prefix}",
    "rotation.status",
    Allow(List, UrlPrefix),
);
/// Every lifecycle rule.
pub const LIFECYCLE_LIST: Route = Route::new(
    Get,
    "/api/v1/sys/lifecycle",
    "lifecycle.list",
    Allow(Admin, Sys("sys/lifecycle")),
);
/// Creates or replaces a lifecycle rule.
pub const LIFECYCLE_SET: Route = Route::new(
    Put,
    "/api/v1/sys/lifecycle",
    "lifecycle.set",
    Allow(Admin, Sys("sys/lifecycle")),
);
/// Removes a lifecycle rule.
pub const LIFECYCLE_REMOVE: Route = Route::new(
    Method::Delete,
    "/api/v1/sys/lifecycle",
    "lifecycle.remove",
    Allow(Admin, Sys("sys/lifecycle")),
);

// ---- the system ----

/// Health, for load balancers (not audited).
pub const SYS_HEALTH: Route =
    Route::new(Get, "/api/v1/sys/health", "sys.health", Nothing).unaudited();
/// Seal status (not audited).
pub const SYS_STATUS: Route =
    Route::new(Get, "/api/v1/sys/status", "sys.status", Nothing).unaudited();
/// Initialises the server (from this machine unless remote init is allowed).
pub const SYS_INIT: Route = Route::new(Post, "/api/v1/sys/init", "sys.init", Nothing);
/// One unseal key share, or a reset.
pub const SYS_UNSEAL: Route = Route::new(Post, "/api/v1/sys/unseal", "sys.unseal", Nothing);
/// Seals the server.
pub const SYS_SEAL: Route = Route::new(
    Post,
    "/api/v1/sys/seal",
    "sys.seal",
    Allow(Admin, Sys("sys/seal")),
);
/// Adds a keyring key for new writes.
pub const SYS_ROTATE: Route = Route::new(
    Post,
    "/api/v1/sys/rotate",
    "sys.rotate",
    Allow(Admin, Sys("sys/rotate")),
);
/// The keyring's keys.
pub const SYS_KEYRING: Route = Route::new(
    Get,
    "/api/v1/sys/keyring",
    "sys.keyring",
    Allow(Admin, Sys("sys/keyring")),
);
/// The node's metrics, in Prometheus' text format.
pub const SYS_METRICS: Route = Route::new(
    Get,
    "/api/v1/sys/metrics",
    "sys.metrics",
    Allow(ReadMetadata, Sys("sys/metrics")),
);
/// An encrypted backup of the whole store.
pub const SYS_BACKUP: Route = Route::new(
    Get,
    "/api/v1/sys/backup",
    "sys.backup",
    Allow(Admin, Sys("sys/backup")),
);
/// This API's OpenAPI description.
pub const SYS_OPENAPI: Route = Route::new(Get, "/api/v1/openapi.json", "sys.openapi", Nothing);

// ---- the access model ----

/// Every policy's name.
pub const POLICY_LIST: Route = Route::new(
    Get,
    "/api/v1/sys/policies",
    "policy.list",
    Allow(Admin, Sys("sys/policies/")),
);
/// A policy's source.
pub const POLICY_READ: Route = Route::new(
    Get,
    "/api/v1/sys/policies/{name}",
    "policy.read",
    Allow(Admin, SysNamed("sys/policies/")),
);
/// Creates or replaces a policy.
pub const POLICY_WRITE: Route = Route::new(
    Put,
    "/api/v1/sys/policies/{name}",
    "policy.write",
    Allow(Admin, SysNamed("sys/policies/")),
);
/// Removes a policy.
pub const POLICY_DELETE: Route = Route::new(
    Method::Delete,
    "/api/v1/sys/policies/{name}",
    "policy.delete",
    Allow(Admin, SysNamed("sys/policies/")),
);
/// Every token.
pub const TOKEN_LIST: Route = Route::new(
    Get,
    "/api/v1/auth/tokens",
    "token.list",
    Allow(Admin, Sys("sys/tokens/")),
);
/// Creates a token below the caller's.
pub const TOKEN_CREATE: Route = Route::new(
    Post,
    "/api/v1/auth/tokens",
    "token.create",
    Allow(SelfService, Sys("sys/tokens/create")),
);
/// Looks a token up by accessor.
pub const TOKEN_LOOKUP: Route = Route::new(
    Get,
    "/api/v1/auth/tokens/{accessor}",
    "token.lookup",
    ManagedToken,
);
/// Revokes a token and its descendants.
pub const TOKEN_REVOKE: Route = Route::new(
    Method::Delete,
    "/api/v1/auth/tokens/{accessor}",
    "token.revoke",
    ManagedToken,
);
/// Renews a token.
pub const TOKEN_RENEW: Route = Route::new(
    Post,
    "/api/v1/auth/tokens/{accessor}/renew",
    "token.renew",
    ManagedToken,
);
/// The calling token.
pub const TOKEN_LOOKUP_SELF: Route = Route::new(
    Get,
    "/api/v1/auth/token/self",
    "token.lookup_self",
    Allow(SelfService, Sys("sys/tokens/self")),
);
/// Revokes the calling token and its descendants.
pub const TOKEN_REVOKE_SELF: Route = Route::new(
    Method::Delete,
    "/api/v1/auth/token/self",
    "token.revoke_self",
    Allow(SelfService, Sys("sys/tokens/self")),
);
/// Renews the calling token.
pub const TOKEN_RENEW_SELF: Route = Route::new(
    Post,
    "/api/v1/auth/token/self/renew",
    "token.renew_self",
    Allow(SelfService, Sys("sys/tokens/self")),
);
/// A person logs in.
pub const AUTH_LOGIN: Route = Route::new(Post, "/api/v1/auth/login", "auth.login", Nothing);
/// Every JWT role's name.
pub const JWT_ROLE_LIST: Route = Route::new(
    Get,
    "/api/v1/auth/jwt/roles",
    "jwt_role.list",
    Allow(Admin, Sys("sys/auth/jwt/")),
);
/// A JWT role.
pub const JWT_ROLE_READ: Route = Route::new(
    Get,
    "/api/v1/auth/jwt/roles/{name}",
    "jwt_role.read",
    Allow(Admin, SysNamed("sys/auth/jwt/")),
);
/// Creates or replaces a JWT role.
pub const JWT_ROLE_WRITE: Route = Route::new(
    Put,
    "/api/v1/auth/jwt/roles/{name}",
    "jwt_role.write",
    Allow(Admin, SysNamed("sys/auth/jwt/")),
);
/// Removes a JWT role.
pub const JWT_ROLE_DELETE: Route = Route::new(
    Method::Delete,
    "/api/v1/auth/jwt/roles/{name}",
    "jwt_role.delete",
    Allow(Admin, SysNamed("sys/auth/jwt/")),
);
/// A machine logs in with a JWT its platform issued (the JWT is the
/// credential; rate limited like a person's login).
pub const AUTH_JWT_LOGIN: Route =
    Route::new(Post, "/api/v1/auth/jwt/login", "auth.jwt_login", Nothing);
/// Invites a person.
pub const INVITE_CREATE: Route = Route::new(
    Post,
    "/api/v1/auth/invites",
    "invite.create",
    Allow(Admin, Sys("sys/invites")),
);
/// A person accepts an invitation (the code is the credential).
pub const INVITE_ACCEPT: Route = Route::new(
    Post,
    "/api/v1/auth/invites/accept",
    "invite.accept",
    Nothing,
);
/// Starts enrolling the caller in one-time codes.
pub const TOTP_ENROLL: Route = Route::new(
    Post,
    "/api/v1/auth/totp",
    "totp.enroll",
    Allow(SelfService, Sys("sys/users/self")),
);
/// Confirms an enrolment with a code.
pub const TOTP_CONFIRM: Route = Route::new(
    Post,
    "/api/v1/auth/totp/confirm",
    "totp.confirm",
    Allow(SelfService, Sys("sys/users/self")),
);
/// Turns one-time codes off, with a code.
pub const TOTP_DISABLE: Route = Route::new(
    Post,
    "/api/v1/auth/totp/disable",
    "totp.disable",
    Allow(SelfService, Sys("sys/users/self")),
);
/// Every user.
pub const USER_LIST: Route = Route::new(
    Get,
    "/api/v1/sys/users",
    "user.list",
    Allow(Admin, Sys("sys/users/")),
);
/// A user.
pub const USER_READ: Route = Route::new(
    Get,
    "/api/v1/sys/users/{name}",
    "user.read",
    Allow(Admin, SysNamed("sys/users/")),
);
/// Changes a user's policies or resets their one-time codes.
pub const USER_UPDATE: Route = Route::new(
    Patch,
    "/api/v1/sys/users/{name}",
    "user.update",
    Allow(Admin, SysNamed("sys/users/")),
);
/// Removes a user and their tokens.
pub const USER_DELETE: Route = Route::new(
    Method::Delete,
    "/api/v1/sys/users/{name}",
    "user.delete",
    Allow(Admin, SysNamed("sys/users/")),
);
/// Disables a user.
pub const USER_DISABLE: Route = Route::new(
    Post,
    "/api/v1/sys/users/{name}/disable",
    "user.disable",
    Allow(Admin, SysNamed("sys/users/")),
);
/// Enables a user.
pub const USER_ENABLE: Route = Route::new(
    Post,
    "/api/v1/sys/users/{name}/enable",
    "user.enable",
    Allow(Admin, SysNamed("sys/users/")),
);
/// Every protected prefix.
pub const PROTECTED_LIST: Route = Route::new(
    Get,
    "/api/v1/sys/protected",
    "protected.list",
    Allow(Admin, Sys("sys/protected")),
);
/// Protects a prefix.
pub const PROTECTED_ADD: Route = Route::new(
    Post,
    "/api/v1/sys/protected",
    "protected.add",
    Allow(Admin, Sys("sys/protected")),
);
/// Stops protecting a prefix.
pub const PROTECTED_REMOVE: Route = Route::new(
    Method::Delete,
    "/api/v1/sys/protected",
    "protected.remove",
    Allow(Admin, Sys("sys/protected")),
);
/// Every live break-glass grant.
pub const BREAKGLASS_LIST: Route = Route::new(
    Get,
    "/api/v1/sys/breakglass",
    "breakglass.list",
    Allow(Admin, Sys("sys/breakglass")),
);
/// Grants the calling person a time-limited read under a protected prefix.
pub const BREAKGLASS_GRANT: Route = Route::new(
    Post,
    "/api/v1/sys/breakglass",
    "breakglass.grant",
    Allow(Breakglass, BodyField("path")),
);

// ---- share links ----

/// Creates a one-time share link from a value the client sealed; sharing
/// a stored secret needs `read` on it too.
pub const SHARE_CREATE: Route = Route::new(
    Post,
    "/api/v1/shares",
    "share.create",
    AllOf(&[
        Allow(Create, Sys("sys/shares")),
        Requires::If("path", &Allow(ReadValue, BodyField("path"))),
    ]),
);
/// The caller's live share links (no ciphertext).
pub const SHARE_LIST: Route = Route::new(
    Get,
    "/api/v1/shares",
    "share.list",
    Allow(Create, Sys("sys/shares")),
);
/// Revokes one of the caller's share links.
pub const SHARE_REVOKE: Route = Route::new(
    Method::Delete,
    "/api/v1/shares/{id}",
    "share.revoke",
    Allow(Create, Sys("sys/shares")),
);
/// Opens a share link: spends one view and returns the sealed value (the
/// link's id is the credential; failures are rate limited per address).
pub const SHARE_OPEN: Route = Route::new(Post, "/api/v1/shares/{id}/open", "share.open", Nothing);
// ---- app roles ----

/// A machine logs in with a role id and a secret id.
pub const APPROLE_LOGIN: Route =
    Route::new(Post, "/api/v1/auth/approle/login", "approle.login", Nothing);
/// Every app role.
pub const APPROLE_LIST: Route = Route::new(
    Get,
    "/api/v1/auth/approle/roles",
    "approle.list",
    Allow(Admin, Sys("sys/auth/approle/")),
);
/// An app role, with its role id.
pub const APPROLE_READ: Route = Route::new(
    Get,
    "/api/v1/auth/approle/roles/{name}",
    "approle.read",
    Allow(Admin, SysNamed("sys/auth/approle/")),
);
/// Creates an app role.
pub const APPROLE_CREATE: Route = Route::new(
    Put,
    "/api/v1/auth/approle/roles/{name}",
    "approle.create",
    Allow(Admin, SysNamed("sys/auth/approle/")),
);
/// Deletes an app role, its secret ids, and the tokens its logins issued.
pub const APPROLE_DELETE: Route = Route::new(
    Method::Delete,
    "/api/v1/auth/approle/roles/{name}",
    "approle.delete",
    Allow(Admin, SysNamed("sys/auth/approle/")),
);
/// Creates a secret id for an app role (shown once).
pub const APPROLE_SECRET_ID_CREATE: Route = Route::new(
    Post,
    "/api/v1/auth/approle/roles/{name}/secret-ids",
    "approle.secret_id.create",
    Allow(Admin, SysNamed("sys/auth/approle/")),
);
/// An app role's live secret ids (accessors only).
pub const APPROLE_SECRET_ID_LIST: Route = Route::new(
    Get,
    "/api/v1/auth/approle/roles/{name}/secret-ids",
    "approle.secret_id.list",
    Allow(Admin, SysNamed("sys/auth/approle/")),
);
/// Revokes a secret id and the tokens it logged in.
pub const APPROLE_SECRET_ID_REVOKE: Route = Route::new(
    Post,
    "/api/v1/auth/approle/roles/{name}/secret-ids/revoke",
    "approle.secret_id.revoke",
    Allow(Admin, SysNamed("sys/auth/approle/")),
);

// ---- the audit log ----

/// Verifies the audit log's chain.
pub const AUDIT_VERIFY: Route = Route::new(
    Post,
    "/api/v1/sys/audit/verify",
    "audit.verify",
    Allow(Admin, Sys("sys/audit")),
);
/// Searches the audit log.
pub const AUDIT_QUERY: Route = Route::new(
    Get,
    "/api/v1/sys/audit/records",
    "audit.query",
    Allow(Admin, Sys("sys/audit")),
);
/// Who read a secret.
pub const AUDIT_READERS: Route = Route::new(
    Get,
    "/api/v1/sys/audit/readers",
    "audit.readers",
    Allow(Admin, Sys("sys/audit")),
);
/// The audit tag of a value.
pub const AUDIT_HASH: Route = Route::new(
    Post,
    "/api/v1/sys/audit/hash",
    "audit.hash",
    Allow(Admin, Sys("sys/audit")),
);
/// Sets the log files aside and starts new ones.
pub const AUDIT_ROTATE: Route = Route::new(
    Post,
    "/api/v1/sys/audit/rotate",
    "audit.rotate",
    Allow(Admin, Sys("sys/audit")),
);
/// Acknowledges a gap a log file reports.
pub const AUDIT_ACKNOWLEDGE_GAP: Route = Route::new(
    Post,
    "/api/v1/sys/audit/acknowledge-gap",
    "audit.acknowledge_gap",
    Allow(Admin, Sys("sys/audit")),
);

/// Every route of the API.
pub const ALL: &[&Route] = &[
    &SECRET_READ,
    &SECRET_WRITE,
    &SECRET_DELETE,
    &SECRET_BUNDLE,
    &SECRET_IMPORT,
    &SECRET_HISTORY_IMPORT,
    &SECRET_METADATA,
    &SECRET_LIST_ROOT,
    &SECRET_LIST,
    &SECRET_UNDELETE,
    &SECRET_DESTROY,
    &SECRET_FINGERPRINTS,
    &SECRET_COMPROMISE,
    &SECRET_ROTATE,
    &SECRET_ROTATE_CANCEL,
    &SECRET_PROMOTE,
    &POSTGRES_MANAGE,
    &POSTGRES_READ,
    &SECRET_EXPIRY,
    &SECRET_ROLLBACK,
    &SECRET_COPY,
    &SECRET_PROMOTE_ENV,
    &ROTATION_STATUS_ROOT,
    &ROTATION_STATUS,
    &LIFECYCLE_LIST,
    &LIFECYCLE_SET,
    &LIFECYCLE_REMOVE,
    &SYS_HEALTH,
    &SYS_STATUS,
    &SYS_INIT,
    &SYS_UNSEAL,
    &SYS_SEAL,
    &SYS_ROTATE,
    &SYS_KEYRING,
    &SYS_METRICS,
    &SYS_BACKUP,
    &SYS_OPENAPI,
    &POLICY_LIST,
    &POLICY_READ,
    &POLICY_WRITE,
    &POLICY_DELETE,
    &TOKEN_LIST,
    &TOKEN_CREATE,
    &TOKEN_LOOKUP,
    &TOKEN_REVOKE,
    &TOKEN_RENEW,
    &TOKEN_LOOKUP_SELF,
    &TOKEN_REVOKE_SELF,
    &TOKEN_RENEW_SELF,
    &AUTH_LOGIN,
    &JWT_ROLE_LIST,
    &JWT_ROLE_READ,
    &JWT_ROLE_WRITE,
    &JWT_ROLE_DELETE,
    &AUTH_JWT_LOGIN,
    &INVITE_CREATE,
    &INVITE_ACCEPT,
    &TOTP_ENROLL,
    &TOTP_CONFIRM,
    &TOTP_DISABLE,
    &USER_LIST,
    &USER_READ,
    &USER_UPDATE,
    &USER_DELETE,
    &USER_DISABLE,
    &USER_ENABLE,
    &PROTECTED_LIST,
    &PROTECTED_ADD,
    &PROTECTED_REMOVE,
    &BREAKGLASS_LIST,
    &BREAKGLASS_GRANT,
    &SHARE_CREATE,
    &SHARE_LIST,
    &SHARE_REVOKE,
    &SHARE_OPEN,
    &APPROLE_LOGIN,
    &APPROLE_LIST,
    &APPROLE_READ,
    &APPROLE_CREATE,
    &APPROLE_DELETE,
    &APPROLE_SECRET_ID_CREATE,
    &APPROLE_SECRET_ID_LIST,
    &APPROLE_SECRET_ID_REVOKE,
    &AUDIT_VERIFY,
    &AUDIT_QUERY,
    &AUDIT_READERS,
    &AUDIT_HASH,
    &AUDIT_ROTATE,
    &AUDIT_ACKNOWLEDGE_GAP,
];

/// The route a request matched, from its method and the template it
/// matched; `None` for a request that matched none (its operation is
/// [`UNMATCHED`]). The server asks this once per request, so the table is
/// indexed by template once, on first use.
pub fn find(method: &str, template: &str) -> Option<&'static Route> {
    static INDEX: OnceLock<HashMap<&'static str, Vec<&'static Route>>> = OnceLock::new();
    let index = INDEX.get_or_init(|| {
        let mut index: HashMap<&'static str, Vec<&'static Route>> = HashMap::new();
        for &route in ALL {
            index.entry(route.path).or_default().push(route);
        }
        index
    });
    index
        .get(template)?
        .iter()
        .copied()
        .find(|r| r.method.as_str() == method)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_route_has_an_operation_name_and_its_own_method_and_template() {
        let mut seen = HashSet::new();
        for r in ALL {
            assert!(
                !r.op.name.is_empty(),
                "{} {} has no operation name",
                r.method.as_str(),
                r.path
            );
            assert!(
                r.op.name.contains('.') && !r.op.name.contains(char::is_whitespace),
                "{}: operation names are `area.action`",
                r.op.name
            );
            assert!(r.path.starts_with("/api/v1/"), "{}", r.path);
            assert!(
                seen.insert((r.method, r.path)),
                "two routes for {} {}",
                r.method.as_str(),
                r.path
            );
        }
    }

    #[test]
    fn an_operation_name_belongs_to_one_method_and_one_endpoint() {
        // Two templates share a name only when one is the other without its
        // trailing parameter (a listing of the root and of a prefix).
        for a in ALL {
            for b in ALL {
                if a.op.name == b.op.name && a != b {
                    assert_eq!(a.method, b.method, "{}", a.op.name);
                    let (short, long) = if a.path.len() < b.path.len() {
                        (a, b)
                    } else {
                        (b, a)
                    };
                    assert_eq!(
                        long.path.strip_suffix("/{*prefix}"),
                        Some(short.path),
                        "{} names two endpoints",
                        a.op.name
                    );
                }
            }
        }
    }

    #[test]
    fn the_unmatched_operation_is_no_route_of_the_table() {
        assert_eq!(UNMATCHED.name, "unmatched");
        const { assert!(UNMATCHED.audited) };
        assert!(ALL.iter().all(|r| r.op.name != UNMATCHED.name));
        assert_eq!(find("GET", "/api/v1/nothing"), None);
        assert_eq!(find("HEAD", SECRET_READ.path), None);
        assert_eq!(find("GET", SECRET_READ.path), Some(&SECRET_READ));
        assert_eq!(find("PUT", SECRET_READ.path), Some(&SECRET_WRITE));
    }

    #[test]
    fn only_health_and_status_go_unaudited() {
        let unaudited: Vec<&str> = ALL
            .iter()
            .filter(|r| !r.op.audited)
            .map(|r| r.op.name)
            .collect();
        assert_eq!(unaudited, ["sys.health", "sys.status"]);
    }

    #[test]
    fn routes_without_a_token_are_the_documented_few() {
        let open: Vec<&str> = ALL
            .iter()
            .filter(|r| r.op.requires == Nothing)
            .map(|r| r.op.name)
            .collect();
        assert_eq!(
            open,
            [
                "sys.health",
                "sys.status",
                "sys.init",
                "sys.unseal",
                "sys.openapi",
                "auth.login",
                "auth.jwt_login",
                "invite.accept",
                "share.open",
                "approle.login"
            ]
        );
    }

    #[test]
    fn url_fills_parameters_with_encoded_values() {
        for (route, params, url) in [
            (
                &SECRET_READ,
                &["app/dev/KEY"][..],
                "/api/v1/secrets/app/dev/KEY",
            ),
            (
                &SECRET_READ,
                &["a b?c#d%"],
                "/api/v1/secrets/a%20b%3Fc%23d%25",
            ),
            (&SECRET_LIST_ROOT, &[], "/api/v1/list"),
            (&ROTATION_STATUS, &["app/"], "/api/v1/rotation/status/app/"),
            (
                &POLICY_READ,
                &["x/y&z=1"],
                "/api/v1/sys/policies/x%2Fy%26z%3D1",
            ),
            (&TOKEN_RENEW, &["acc_1"], "/api/v1/auth/tokens/acc_1/renew"),
            (
                &USER_DISABLE,
                &["bob smith"],
                "/api/v1/sys/users/bob%20smith/disable",
            ),
            (&SYS_HEALTH, &[], "/api/v1/sys/health"),
        ] {
            assert_eq!(route.url(params), url);
        }
    }

    #[test]
    #[should_panic(expected = "takes 1 parameter(s), not 0")]
    fn a_missing_parameter_is_refused_not_left_empty() {
        let _ = SECRET_READ.url(&[]);
    }

    #[test]
    #[should_panic(expected = "takes 0 parameter(s), not 1")]
    fn an_extra_parameter_is_refused_not_dropped() {
        let _ = SYS_HEALTH.url(&["app/dev/KEY"]);
    }

    #[test]
    fn encoding_keeps_only_safe_bytes() {
        assert_eq!(encode_path("app/dev/KEY"), "app/dev/KEY");
        assert_eq!(encode_path("a@b:c=d,e~f"), "a@b:c=d,e~f");
        assert_eq!(encode_path("é\n"), "%C3%A9%0A");
        assert_eq!(encode_segment("x/y&z=1"), "x%2Fy%26z%3D1");
        assert_eq!(encode_segment("a_b-c.d~e"), "a_b-c.d~e");
    }

    #[test]
    fn openapi_spelling_drops_the_catch_all_star() {
        assert_eq!(SECRET_READ.openapi_path(), "/api/v1/secrets/{path}");
        assert_eq!(POLICY_READ.openapi_path(), "/api/v1/sys/policies/{name}");
        assert_eq!(SECRET_LIST.openapi_path(), "/api/v1/list/{prefix}");
    }
}
