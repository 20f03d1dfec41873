//! Every request is audited under the same operation name as before the
//! route table: the names the audit layer used to find by matching path
//! strings (kept here verbatim) are the table's, for every method on every
//! template, and a request that matches no route is "unmatched".

use coffer_api::routes;

/// The audit layer's operation lookup before the route table.
fn old_operation(m: &str, matched: Option<&str>) -> &'static str {
    let Some(route) = matched.and_then(|m| m.strip_prefix("/api/v1/")) else {
        return "unmatched";
    };
    match (m, route) {
        ("GET", "secrets/{*path}") => "secret.read",
        ("POST", "bundle") => "secret.bundle",
        ("POST", "import") => "secret.import",
        ("PUT", "history/{*path}") => "secret.import_history",
        ("PUT", "secrets/{*path}") => "secret.write",
        ("DELETE", "secrets/{*path}") => "secret.delete",
        ("GET", "metadata/{*path}") => "secret.metadata",
        ("GET", "list" | "list/{*prefix}") => "secret.list",
        ("POST", "undelete/{*path}") => "secret.undelete",
        ("POST", "destroy/{*path}") => "secret.destroy",
        // Routes added since, named as their table entries say.
        ("POST", "fingerprints") => "secret.fingerprints",
        ("POST", "compromise/{*path}") => "secret.compromise",
        ("POST", "rotate/{*path}") => "secret.rotate",
        ("DELETE", "rotate/{*path}") => "secret.rotate_cancel",
        ("POST", "promote/{*path}") => "secret.promote",
        ("POST", "postgres/{*path}") => "postgres.manage",
        ("GET", "postgres/{*path}") => "postgres.read",
        ("PUT", "expiry/{*path}") => "secret.expiry",
        ("POST", "rollback/{*path}") => "secret.rollback",
        ("POST", "copy") => "secret.copy",
        ("POST", "promote-env") => "secret.promote_env",
        ("GET", "rotation/status" | "rotation/status/{*prefix}") => "rotation.status",
        ("GET", "sys/lifecycle") => "lifecycle.list",
        ("PUT", "sys/lifecycle") => "lifecycle.set",
        ("DELETE", "sys/lifecycle") => "lifecycle.remove",
        ("GET", "sys/health") => "sys.health",
        ("GET", "sys/status") => "sys.status",
        ("POST", "sys/init") => "sys.init",
        ("POST", "sys/unseal") => "sys.unseal",
        ("POST", "sys/seal") => "sys.seal",
        ("POST", "sys/rotate") => "sys.rotate",
        ("GET", "sys/keyring") => "sys.keyring",
        ("GET", "sys/metrics") => "sys.metrics",
        ("GET", "sys/backup") => "sys.backup",
        ("GET", "openapi.json") => "sys.openapi",
        ("GET", "sys/policies") => "policy.list",
        ("GET", "sys/policies/{name}") => "policy.read",
        ("PUT", "sys/policies/{name}") => "policy.write",
        ("DELETE", "sys/policies/{name}") => "policy.delete",
        ("GET", "auth/tokens") => "token.list",
        ("POST", "auth/tokens") => "token.create",
        ("GET", "auth/tokens/{accessor}") => "token.lookup",
        ("DELETE", "auth/tokens/{accessor}") => "token.revoke",
        ("POST", "auth/tokens/{accessor}/renew") => "token.renew",
        ("GET", "auth/token/self") => "token.lookup_self",
        ("DELETE", "auth/token/self") => "token.revoke_self",
        ("POST", "auth/token/self/renew") => "token.renew_self",
        ("POST", "auth/login") => "auth.login",
        ("POST", "auth/approle/login") => "approle.login",
        ("GET", "auth/approle/roles") => "approle.list",
        ("GET", "auth/approle/roles/{name}") => "approle.read",
        ("PUT", "auth/approle/roles/{name}") => "approle.create",
        ("DELETE", "auth/approle/roles/{name}") => "approle.delete",
        ("POST", "auth/approle/roles/{name}/secret-ids") => "approle.secret_id.create",
        ("GET", "auth/approle/roles/{name}/secret-ids") => "approle.secret_id.list",
        ("POST", "auth/approle/roles/{name}/secret-ids/revoke") => "approle.secret_id.revoke",
        ("GET", "auth/jwt/roles") => "jwt_role.list",
        ("GET", "auth/jwt/roles/{name}") => "jwt_role.read",
        ("PUT", "auth/jwt/roles/{name}") => "jwt_role.write",
        ("DELETE", "auth/jwt/roles/{name}") => "jwt_role.delete",
        ("POST", "auth/jwt/login") => "auth.jwt_login",
        ("POST", "auth/invites") => "invite.create",
        ("POST", "auth/invites/accept") => "invite.accept",
        ("POST", "auth/totp") => "totp.enroll",
        ("POST", "auth/totp/confirm") => "totp.confirm",
        ("POST", "auth/totp/disable") => "totp.disable",
        ("GET", "sys/users") => "user.list",
        ("GET", "sys/users/{name}") => "user.read",
        ("PATCH", "sys/users/{name}") => "user.update",
        ("DELETE", "sys/users/{name}") => "user.delete",
        ("POST", "sys/users/{name}/disable") => "user.disable",
        ("POST", "sys/users/{name}/enable") => "user.enable",
        ("GET", "sys/protected") => "protected.list",
        ("POST", "sys/protected") => "protected.add",
        ("DELETE", "sys/protected") => "protected.remove",
        ("GET", "sys/breakglass") => "breakglass.list",
        ("POST", "sys/breakglass") => "breakglass.grant",
        ("POST", "shares") => "share.create",
        ("GET", "shares") => "share.list",
        ("DELETE", "shares/{id}") => "share.revoke",
        ("POST", "shares/{id}/open") => "share.open",
        ("POST", "sys/audit/verify") => "audit.verify",
        ("GET", "sys/audit/records") => "audit.query",
        ("GET", "sys/audit/readers") => "audit.readers",
        ("POST", "sys/audit/hash") => "audit.hash",
        ("POST", "sys/audit/rotate") => "audit.rotate",
        ("POST", "sys/audit/acknowledge-gap") => "audit.acknowledge_gap",
        _ => "unmatched",
    }
}

/// The operation the audit layer names now: the table's entry for the
/// method and matched template, else [`routes::UNMATCHED`].
fn new_operation(method: &str, matched: Option<&str>) -> &'static str {
    matched
        .and_then(|m| routes::find(method, m))
        .map_or(routes::UNMATCHED.name, |r| r.op.name)
}

const METHODS: &[&str] = &[
    "GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS", "TRACE",
];

#[test]
fn every_method_on_every_template_is_named_as_before() {
    let mut templates: Vec<Option<&str>> = routes::ALL.iter().map(|r| Some(r.path)).collect();
    templates.extend([
        None,
        Some("/api/v1/"),
        Some("/api/v2/secrets/{*path}"),
        Some("/api/v1/secrets"),
        Some("/api/v1/sys/audit"),
    ]);
    for &m in METHODS {
        for &t in &templates {
            assert_eq!(new_operation(m, t), old_operation(m, t), "{m} {t:?}");
        }
    }
    // Each route of the table is reached by its own method.
    for r in routes::ALL {
        assert_ne!(old_operation(r.method.as_str(), Some(r.path)), "unmatched");
    }
}

#[test]
fn only_health_and_status_go_unaudited_as_before() {
    let unaudited: Vec<&str> = routes::ALL
        .iter()
        .filter(|r| !r.op.audited)
        .map(|r| r.op.name)
        .collect();
    assert_eq!(unaudited, ["sys.health", "sys.status"]);
    const { assert!(routes::UNMATCHED.audited) };
}
