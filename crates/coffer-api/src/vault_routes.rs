//! The route table of the Vault-compatible API (`/v1/`): every Vault route
//! coffer answers, once, beside the native table ([`crate::routes`]).
//!
//! Each [`VaultRoute`] names Vault's method (with `LIST`, which clients
//! also send as `GET ?list=true`; `PUT` is `POST`, as in Vault, and has no
//! entries of its own), the path template (axum's syntax;
//! `{mount}` is one of the configured KV version 2 mounts) and an [`Op`]:
//! the name audit records give the request (`vault.kv.read`, ...) and what
//! the route requires of the caller, in the coffer [`Operation`]s the core
//! decides with. The server registers its Vault handlers against these
//! entries and its audit layer finds a request's entry here, so an audit
//! record names both the Vault route (its `op`) and the coffer operation
//! (its `decision`). Like the native table's, `requires` is data for
//! readers and tests; the decision is made in `coffer-core`.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::routes::{Op, Operation, Requires, Target};

/// A method of the Vault API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VaultMethod {
    /// `GET`.
    Get,
    /// `POST`.
    Post,
    /// `DELETE`.
    Delete,
    /// `PATCH` (a JSON merge patch).
    Patch,
    /// `LIST`, or `GET` with `?list=true`.
    List,
}

impl VaultMethod {
    /// The method's name on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Delete => "DELETE",
            Self::Patch => "PATCH",
            Self::List => "LIST",
        }
    }
}

/// One operation of the Vault API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VaultRoute {
    /// The method.
    pub method: VaultMethod,
    /// The path template, in axum's syntax (`/v1/{mount}/data/{*path}`).
    pub path: &'static str,
    /// The operation: audit name, requirements, whether it is audited.
    pub op: Op,
}

const fn route(
    method: VaultMethod,
    path: &'static str,
    name: &'static str,
    requires: Requires,
) -> VaultRoute {
    VaultRoute {
        method,
        path,
        op: Op {
            name,
            requires,
            audited: true,
        },
    }
}

const fn unaudited(r: VaultRoute) -> VaultRoute {
    VaultRoute {
        op: Op {
            audited: false,
            ..r.op
        },
        ..r
    }
}

use Operation::{Admin, Create, Destroy, List, ReadMetadata, ReadValue, SelfService, Update};
use Requires::{AllOf, Allow, AnyOf, ManagedToken, Nothing};
use Target::{Sys, SysNamed, UrlPath, UrlPrefix};
use VaultMethod::{Delete, Get, List as ListMethod, Patch, Post};

const WRITE: Requires = AnyOf(&[Allow(Create, UrlPath), Allow(Update, UrlPath)]);

/// The operation of a `/v1/` request that matches no route.
pub const UNMATCHED: Op = Op {
    name: "vault.unmatched",
    requires: Nothing,
    audited: true,
};

// ---- KV version 2 (the mount's coffer prefix is put before the URL path) ----

/// Reads a version's value (`?version=N`, default the current one).
pub const KV_READ: VaultRoute = route(
    Get,
    "/v1/{mount}/data/{*path}",
    "vault.kv.read",
    Allow(ReadValue, UrlPath),
);
/// Writes a new version (`options.cas`).
pub const KV_WRITE_POST: VaultRoute =
    route(Post, "/v1/{mount}/data/{*path}", "vault.kv.write", WRITE);
/// Merges fields into the current value (a JSON merge patch).
pub const KV_PATCH: VaultRoute = route(
    Patch,
    "/v1/{mount}/data/{*path}",
    "vault.kv.patch",
    AllOf(&[Allow(ReadValue, UrlPath), Allow(Update, UrlPath)]),
);
/// Soft-deletes the current version.
pub const KV_DELETE_LATEST: VaultRoute = route(
    Delete,
    "/v1/{mount}/data/{*path}",
    "vault.kv.delete",
    Allow(Operation::Delete, UrlPath),
);
/// Soft-deletes the versions named in the body.
pub const KV_DELETE_POST: VaultRoute = route(
    Post,
    "/v1/{mount}/delete/{*path}",
    "vault.kv.delete_versions",
    Allow(Operation::Delete, UrlPath),
);
/// Restores soft-deleted versions.
pub const KV_UNDELETE_POST: VaultRoute = route(
    Post,
    "/v1/{mount}/undelete/{*path}",
    "vault.kv.undelete",
    Allow(Operation::Delete, UrlPath),
);
/// Destroys versions.
pub const KV_DESTROY_POST: VaultRoute = route(
    Post,
    "/v1/{mount}/destroy/{*path}",
    "vault.kv.destroy",
    Allow(Destroy, UrlPath),
);
/// A secret's metadata and version history.
pub const KV_METADATA: VaultRoute = route(
    Get,
    "/v1/{mount}/metadata/{*path}",
    "vault.kv.metadata",
    Allow(ReadMetadata, UrlPath),
);
/// Lists a folder.
pub const KV_LIST: VaultRoute = route(
    ListMethod,
    "/v1/{mount}/metadata/{*path}",
    "vault.kv.list",
    Allow(List, UrlPrefix),
);
/// Lists the mount's top folder (`metadata/`).
pub const KV_LIST_ROOT: VaultRoute = route(
    ListMethod,
    "/v1/{mount}/metadata/",
    "vault.kv.list",
    Allow(List, UrlPrefix),
);
/// Lists the mount's top folder (`metadata`, no slash).
pub const KV_LIST_ROOT_BARE: VaultRoute = route(
    ListMethod,
    "/v1/{mount}/metadata",
    "vault.kv.list",
    Allow(List, UrlPrefix),
);
/// Metadata settings: coffer keeps none of Vault's, so only their
/// defaults are accepted (and nothing changes).
pub const KV_METADATA_WRITE_POST: VaultRoute = route(
    Post,
    "/v1/{mount}/metadata/{*path}",
    "vault.kv.metadata_write",
    Allow(Update, UrlPath),
);
/// Destroys every version of a secret.
pub const KV_METADATA_DELETE: VaultRoute = route(
    Delete,
    "/v1/{mount}/metadata/{*path}",
    "vault.kv.metadata_delete",
    AllOf(&[Allow(ReadMetadata, UrlPath), Allow(Destroy, UrlPath)]),
);

// ---- sys ----

/// Health, with Vault's status codes (not audited, as the native one).
pub const SYS_HEALTH: VaultRoute =
    unaudited(route(Get, "/v1/sys/health", "vault.sys.health", Nothing));
/// Seal status (not audited).
pub const SYS_SEAL_STATUS: VaultRoute = unaudited(route(
    Get,
    "/v1/sys/seal-status",
    "vault.sys.seal_status",
    Nothing,
));
/// The HA leader (coffer nodes have none; `status` asks).
pub const SYS_LEADER: VaultRoute = route(Get, "/v1/sys/leader", "vault.sys.leader", Nothing);
/// Whether the server is initialised.
pub const SYS_INIT: VaultRoute = route(Get, "/v1/sys/init", "vault.sys.init", Nothing);
/// The KV mounts (what `vault secrets list` shows).
pub const SYS_MOUNTS: VaultRoute = route(
    Get,
    "/v1/sys/mounts",
    "vault.sys.mounts",
    Allow(SelfService, Sys("sys/mounts")),
);
/// Every mount, as the CLI's preflight sees them.
pub const SYS_UI_MOUNTS: VaultRoute = route(
    Get,
    "/v1/sys/internal/ui/mounts",
    "vault.sys.ui_mounts",
    Allow(SelfService, Sys("sys/mounts")),
);
/// The mount of a path (the `kv` commands' preflight).
pub const SYS_UI_MOUNT: VaultRoute = route(
    Get,
    "/v1/sys/internal/ui/mounts/{*path}",
    "vault.sys.ui_mounts",
    Allow(SelfService, Sys("sys/mounts")),
);
/// The caller's capabilities on paths.
pub const SYS_CAPABILITIES_SELF: VaultRoute = route(
    Post,
    "/v1/sys/capabilities-self",
    "vault.sys.capabilities_self",
    Allow(SelfService, Sys("sys/tokens/self")),
);
/// Lists policies (`sys/policy`).
pub const SYS_POLICY_LIST: VaultRoute = route(
    Get,
    "/v1/sys/policy",
    "vault.policy.list",
    Allow(Admin, Sys("sys/policies/")),
);
/// Reads a policy (`sys/policy/NAME`).
pub const SYS_POLICY_READ: VaultRoute = route(
    Get,
    "/v1/sys/policy/{name}",
    "vault.policy.read",
    Allow(Admin, SysNamed("sys/policies/")),
);
/// Writes a policy in Vault syntax (`sys/policy/NAME`).
pub const SYS_POLICY_WRITE_POST: VaultRoute = route(
    Post,
    "/v1/sys/policy/{name}",
    "vault.policy.write",
    Allow(Admin, SysNamed("sys/policies/")),
);
/// Deletes a policy.
pub const SYS_POLICY_DELETE: VaultRoute = route(
    Delete,
    "/v1/sys/policy/{name}",
    "vault.policy.delete",
    Allow(Admin, SysNamed("sys/policies/")),
);
/// Lists policies (`sys/policies/acl`).
pub const SYS_ACL_LIST: VaultRoute = route(
    ListMethod,
    "/v1/sys/policies/acl",
    "vault.policy.list",
    Allow(Admin, Sys("sys/policies/")),
);
/// Reads a policy (`sys/policies/acl/NAME`).
pub const SYS_ACL_READ: VaultRoute = route(
    Get,
    "/v1/sys/policies/acl/{name}",
    "vault.policy.read",
    Allow(Admin, SysNamed("sys/policies/")),
);
/// Writes a policy (`sys/policies/acl/NAME`).
pub const SYS_ACL_WRITE_POST: VaultRoute = route(
    Post,
    "/v1/sys/policies/acl/{name}",
    "vault.policy.write",
    Allow(Admin, SysNamed("sys/policies/")),
);
/// Deletes a policy.
pub const SYS_ACL_DELETE: VaultRoute = route(
    Delete,
    "/v1/sys/policies/acl/{name}",
    "vault.policy.delete",
    Allow(Admin, SysNamed("sys/policies/")),
);

// ---- token auth ----

/// Creates a child token.
pub const TOKEN_CREATE: VaultRoute = route(
    Post,
    "/v1/auth/token/create",
    "vault.token.create",
    Allow(SelfService, Sys("sys/tokens/create")),
);
/// Describes the calling token.
pub const TOKEN_LOOKUP_SELF: VaultRoute = route(
    Get,
    "/v1/auth/token/lookup-self",
    "vault.token.lookup_self",
    Allow(SelfService, Sys("sys/tokens/self")),
);
/// Describes a token given by accessor.
pub const TOKEN_LOOKUP_ACCESSOR: VaultRoute = route(
    Post,
    "/v1/auth/token/lookup-accessor",
    "vault.token.lookup_accessor",
    ManagedToken,
);
/// Describes a token given in the body.
pub const TOKEN_LOOKUP: VaultRoute = route(
    Post,
    "/v1/auth/token/lookup",
    "vault.token.lookup",
    ManagedToken,
);
/// Renews the calling token.
pub const TOKEN_RENEW_SELF: VaultRoute = route(
    Post,
    "/v1/auth/token/renew-self",
    "vault.token.renew_self",
    Allow(SelfService, Sys("sys/tokens/self")),
);
/// Renews a token given in the body.
pub const TOKEN_RENEW: VaultRoute = route(
    Post,
    "/v1/auth/token/renew",
    "vault.token.renew",
    ManagedToken,
);
/// Revokes the calling token and its descendants.
pub const TOKEN_REVOKE_SELF: VaultRoute = route(
    Post,
    "/v1/auth/token/revoke-self",
    "vault.token.revoke_self",
    Allow(SelfService, Sys("sys/tokens/self")),
);
/// Revokes a token given in the body, and its descendants.
pub const TOKEN_REVOKE: VaultRoute = route(
    Post,
    "/v1/auth/token/revoke",
    "vault.token.revoke",
    ManagedToken,
);
/// Revokes a token given by accessor, and its descendants.
pub const TOKEN_REVOKE_ACCESSOR: VaultRoute = route(
    Post,
    "/v1/auth/token/revoke-accessor",
    "vault.token.revoke_accessor",
    ManagedToken,
);
/// Logs a coffer user in with a password (and a one-time code).
pub const USERPASS_LOGIN: VaultRoute = route(
    Post,
    "/v1/auth/userpass/login/{username}",
    "vault.userpass.login",
    Nothing,
);

/// Every route of the Vault API.
pub const ALL: &[&VaultRoute] = &[
    &KV_READ,
    &KV_WRITE_POST,
    &KV_PATCH,
    &KV_DELETE_LATEST,
    &KV_DELETE_POST,
    &KV_UNDELETE_POST,
    &KV_DESTROY_POST,
    &KV_METADATA,
    &KV_LIST,
    &KV_LIST_ROOT,
    &KV_LIST_ROOT_BARE,
    &KV_METADATA_WRITE_POST,
    &KV_METADATA_DELETE,
    &SYS_HEALTH,
    &SYS_SEAL_STATUS,
    &SYS_INIT,
    &SYS_LEADER,
    &SYS_MOUNTS,
    &SYS_UI_MOUNTS,
    &SYS_UI_MOUNT,
    &SYS_CAPABILITIES_SELF,
    &SYS_POLICY_LIST,
    &SYS_POLICY_READ,
    &SYS_POLICY_WRITE_POST,
    &SYS_POLICY_DELETE,
    &SYS_ACL_LIST,
    &SYS_ACL_READ,
    &SYS_ACL_WRITE_POST,
    &SYS_ACL_DELETE,
    &TOKEN_CREATE,
    &TOKEN_LOOKUP_SELF,
    &TOKEN_LOOKUP_ACCESSOR,
    &TOKEN_LOOKUP,
    &TOKEN_RENEW_SELF,
    &TOKEN_RENEW,
    &TOKEN_REVOKE_SELF,
    &TOKEN_REVOKE,
    &TOKEN_REVOKE_ACCESSOR,
    &USERPASS_LOGIN,
];

/// The entry for a method (`LIST` for a listing, whichever way it was
/// sent; `POST` for `PUT`) and the template the router matched.
pub fn find(method: &str, template: &str) -> Option<&'static VaultRoute> {
    static INDEX: OnceLock<HashMap<(&'static str, &'static str), &'static VaultRoute>> =
        OnceLock::new();
    let index = INDEX.get_or_init(|| {
        ALL.iter()
            .map(|r| ((r.method.as_str(), r.path), *r))
            .collect()
    });
    index.get(&(method, template)).copied()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_route_is_under_v1_once_and_named_vault() {
        let mut seen = HashSet::new();
        for r in ALL {
            assert!(r.path.starts_with("/v1/"), "{}", r.path);
            assert!(r.op.name.starts_with("vault."), "{}", r.op.name);
            assert!(
                seen.insert((r.method, r.path)),
                "{} {} twice",
                r.method.as_str(),
                r.path
            );
            assert_eq!(find(r.method.as_str(), r.path), Some(*r));
        }
        assert_eq!(find("GET", "/v1/nothing"), None);
        // The native table's names and these never collide.
        for r in ALL {
            assert!(crate::routes::ALL.iter().all(|n| n.op.name != r.op.name));
        }
    }

    #[test]
    fn only_health_and_seal_status_go_unaudited() {
        let unaudited: Vec<_> = ALL
            .iter()
            .filter(|r| !r.op.audited)
            .map(|r| r.path)
            .collect();
        assert_eq!(unaudited, ["/v1/sys/health", "/v1/sys/seal-status"]);
    }
}
