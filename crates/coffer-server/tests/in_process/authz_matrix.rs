//! The authorization matrix: identity kinds x policies x paths x operations
//! -> expected status, through the server's router in-process.
//!
//! One table drives it. It covers deny precedence, pattern edges (`app/dev`
//! never matching `app/dev2` or `app/dev/x`, `+` as exactly one segment),
//! non-canonical paths (double slashes, dot segments, percent-encoded dots,
//! trailing slashes, case), protected prefixes for people versus services,
//! and every route of the API, and it checks that no refused read carries a
//! value. Every refusal (401/403) leaves exactly one audit record, a
//! denial of the route's operation (beside any alert about that very
//! request), and a refused write leaves everything root can see as it was
//! (see [`state_snapshot`]).
//!
//! `COUNTERPARTS` gives routes their allowed counterpart, one row each:
//! the minimal policy that permits the request gets its 2xx, and the same
//! policy without the capability it needs, or on a sibling path, gets 403
//! and changes nothing. `every_route_of_the_table_has_a_row` fails for a
//! route that needs a token and lacks a refusal or an allowed case, unless
//! `NO_ALLOWED_COUNTERPART` names it with the reason. (The CLI's views of the deny fixture, `ls -r`, `rotation status`,
//! `example` and `export`, are checked against the binary in coffer-cli's
//! `tests/authz_matrix.rs`; `vault_authz.rs` runs its reads and writes
//! again through the Vault API.)

use crate::common;

use common::{Mode, Server, ok};
use serde_json::json;

const POLICIES: &[(&str, &str)] = &[
    (
        "dev-reader",
        r#"path "app/dev/*" { capabilities = ["read", "list"] }"#,
    ),
    (
        "dev-exact",
        r#"path "app/dev" { capabilities = ["read", "list"] }"#,
    ),
    ("one-seg", r#"path "app/+/db" { capabilities = ["read"] }"#),
    (
        "dev-creator",
        r#"path "app/dev/*" { capabilities = ["create"] }"#,
    ),
    (
        "dev-updater",
        r#"path "app/dev/*" { capabilities = ["update"] }"#,
    ),
    (
        "dev-deleter",
        r#"path "app/dev/*" { capabilities = ["delete", "destroy"] }"#,
    ),
    (
        "deny-db",
        r#"path "app/dev/db" { capabilities = ["deny"] }"#,
    ),
    (
        "prod-reader",
        r#"path "*/prod/*" { capabilities = ["read", "list"] }"#,
    ),
    (
        "policy-admin",
        r#"path "sys/policies/*" { capabilities = ["admin"] }"#,
    ),
    (
        "lister",
        r#"
        path "app/" { capabilities = ["list"] }
        path "app/dev/" { capabilities = ["list"] }
        "#,
    ),
];

/// Identities: name -> (kind, policies).
const IDENTITIES: &[(&str, &str, &[&str])] = &[
    ("svc-dev", "service", &["dev-reader"]),
    ("svc-exact", "service", &["dev-exact"]),
    ("svc-oneseg", "service", &["one-seg"]),
    ("svc-create", "service", &["dev-creator"]),
    ("svc-update", "service", &["dev-updater"]),
    ("svc-delete", "service", &["dev-deleter"]),
    ("svc-dev-deny", "service", &["dev-reader", "deny-db"]),
    ("svc-prod", "service", &["prod-reader"]),
    ("svc-padmin", "service", &["policy-admin"]),
    ("svc-lister", "service", &["lister"]),
    ("human-dev", "human", &["dev-reader"]),
    ("human-prod", "human", &["prod-reader"]),
    ("human-root", "human", &["root"]),
];

const SECRETS: &[&str] = &[
    "app/dev/db",
    "app/dev/api",
    "app/dev/sub/deep",
    "app/dev2/db",
    "app/prod/db",
    "App/dev/db",
    "app/dev/trash",
    "app/dev/gone",
];

pub(crate) struct Fixture {
    pub(crate) server: Server,
    tokens: std::collections::HashMap<String, String>,
}

impl Fixture {
    pub(crate) fn token(&self, who: &str) -> Option<String> {
        match who {
            "anonymous" => None,
            "malformed" => Some("not-a-token".into()),
            // Well formed (prefix, length, checksum) but never issued.
            "unknown" => Some(
                coffer_crypto::token::generate_token()
                    .expose_secret()
                    .to_string(),
            ),
            other => Some(
                self.tokens
                    .get(other)
                    .unwrap_or_else(|| panic!("no identity {other}"))
                    .clone(),
            ),
        }
    }
}

pub(crate) fn setup() -> (tempfile::TempDir, Fixture) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    for (name, source) in POLICIES {
        let body = json!({ "policy": source }).to_string();
        ok(
            &server.http(
                "PUT",
                &format!("/api/v1/sys/policies/{name}"),
                Some(&root),
                Some(body.as_bytes()),
            ),
            name,
        );
    }
    for path in SECRETS {
        let body = json!({ "value": format!("value-of-{path}") }).to_string();
        ok(
            &server.http(
                "PUT",
                &format!("/api/v1/secrets/{path}"),
                Some(&root),
                Some(body.as_bytes()),
            ),
            path,
        );
    }
    ok(
        &server.http(
            "POST",
            "/api/v1/sys/protected",
            Some(&root),
            Some(br#"{"pattern":"*/prod/*"}"#),
        ),
        "protect",
    );
    let mut tokens = std::collections::HashMap::new();
    tokens.insert("root".to_string(), root.clone());
    for (name, kind, policies) in IDENTITIES {
        let token = match *kind {
            "service" => {
                let body = json!({ "policies": policies, "display_name": name }).to_string();
                let r = server.http(
                    "POST",
                    "/api/v1/auth/tokens",
                    Some(&root),
                    Some(body.as_bytes()),
                );
                ok(&r, name)["token"].as_str().unwrap().to_string()
            }
            _ => {
                let body = json!({ "policies": policies }).to_string();
                let r = server.http(
                    "POST",
                    "/api/v1/auth/invites",
                    Some(&root),
                    Some(body.as_bytes()),
                );
                let code = ok(&r, name)["code"].as_str().unwrap().to_string();
                let password = format!("correct horse battery {name}");
                let body = json!({ "code": code, "user": name, "password": password }).to_string();
                ok(
                    &server.http(
                        "POST",
                        "/api/v1/auth/invites/accept",
                        None,
                        Some(body.as_bytes()),
                    ),
                    name,
                );
                let body = json!({ "user": name, "password": password }).to_string();
                let r = server.http("POST", "/api/v1/auth/login", None, Some(body.as_bytes()));
                let login = ok(&r, name);
                assert_eq!(login["kind"], "human");
                login["token"].as_str().unwrap().to_string()
            }
        };
        tokens.insert(name.to_string(), token);
    }
    (dir, Fixture { server, tokens })
}

// (identity, method, url, body, expected status)
pub(crate) type Case = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    u16,
);

pub(crate) const READS: &[Case] = &[
    // Pattern edges: app/dev/* covers deeper paths but not app/dev2.
    ("svc-dev", "GET", "/api/v1/secrets/app/dev/db", None, 200),
    (
        "svc-dev",
        "GET",
        "/api/v1/secrets/app/dev/sub/deep",
        None,
        200,
    ),
    ("svc-dev", "GET", "/api/v1/secrets/app/dev2/db", None, 403),
    ("svc-dev", "GET", "/api/v1/secrets/app/prod/db", None, 403),
    // Case is significant: App/ is another path.
    ("svc-dev", "GET", "/api/v1/secrets/App/dev/db", None, 403),
    ("root", "GET", "/api/v1/secrets/App/dev/db", None, 200),
    // An exact rule matches only itself: not app/dev2, not app/dev/x.
    ("svc-exact", "GET", "/api/v1/secrets/app/dev/db", None, 403),
    ("svc-exact", "GET", "/api/v1/secrets/app/dev2/db", None, 403),
    ("svc-exact", "GET", "/api/v1/list/app/dev", None, 403),
    // `+` is exactly one segment.
    ("svc-oneseg", "GET", "/api/v1/secrets/app/dev/db", None, 200),
    (
        "svc-oneseg",
        "GET",
        "/api/v1/secrets/app/dev2/db",
        None,
        200,
    ),
    (
        "svc-oneseg",
        "GET",
        "/api/v1/secrets/app/dev/sub/db",
        None,
        403,
    ),
    ("svc-oneseg", "GET", "/api/v1/secrets/app/db", None, 403),
    (
        "svc-oneseg",
        "GET",
        "/api/v1/secrets/app/dev/api",
        None,
        403,
    ),
    // Deny wins over a grant from another policy, on that path only.
    (
        "svc-dev-deny",
        "GET",
        "/api/v1/secrets/app/dev/db",
        None,
        403,
    ),
    (
        "svc-dev-deny",
        "GET",
        "/api/v1/metadata/app/dev/db",
        None,
        403,
    ),
    (
        "svc-dev-deny",
        "GET",
        "/api/v1/secrets/app/dev/api",
        None,
        200,
    ),
    // Non-canonical spellings are refused, never normalised into a grant.
    ("svc-dev", "GET", "/api/v1/secrets/app//dev/db", None, 400),
    ("svc-dev", "GET", "/api/v1/secrets/app/dev/./db", None, 400),
    (
        "svc-dev",
        "GET",
        "/api/v1/secrets/app/dev/../prod/db",
        None,
        400,
    ),
    (
        "svc-dev",
        "GET",
        "/api/v1/secrets/app/dev/%2e%2e/prod/db",
        None,
        400,
    ),
    (
        "svc-dev",
        "GET",
        "/api/v1/secrets/app/dev/%2E%2E/prod/db",
        None,
        400,
    ),
    ("svc-dev", "GET", "/api/v1/secrets/app/dev/db/", None, 400),
    ("svc-dev", "GET", "/api/v1/secrets/app/dev/db%00", None, 400),
    ("svc-dev", "GET", "/api/v1/secrets/app/dev/d%20b", None, 400),
    ("root", "GET", "/api/v1/secrets/app//dev/db", None, 400),
    (
        "root",
        "GET",
        "/api/v1/secrets/app/dev/%2e%2e/prod/db",
        None,
        400,
    ),
    // An encoded slash decodes to the same canonical path, with the same decision.
    (
        "svc-dev",
        "GET",
        "/api/v1/secrets/app%2Fdev%2Fdb",
        None,
        200,
    ),
    (
        "svc-dev-deny",
        "GET",
        "/api/v1/secrets/app%2Fdev%2Fdb",
        None,
        403,
    ),
    (
        "svc-dev",
        "GET",
        "/api/v1/secrets/app%2Fprod%2Fdb",
        None,
        403,
    ),
    // Listing: the folder target.
    ("svc-dev", "GET", "/api/v1/list/app/dev", None, 200),
    ("svc-dev", "GET", "/api/v1/list/app/dev/", None, 200),
    ("svc-dev", "GET", "/api/v1/list/app", None, 403),
    ("svc-dev", "GET", "/api/v1/list", None, 403),
    ("svc-dev", "GET", "/api/v1/list/app/dev2", None, 403),
    ("svc-lister", "GET", "/api/v1/list/app", None, 200),
    ("svc-lister", "GET", "/api/v1/list/app/dev", None, 200),
    ("svc-lister", "GET", "/api/v1/list/app/dev/sub", None, 403),
    ("svc-lister", "GET", "/api/v1/secrets/app/dev/db", None, 403),
    (
        "svc-lister",
        "GET",
        "/api/v1/metadata/app/dev/db",
        None,
        403,
    ),
    // Metadata needs read or list on the path.
    ("svc-dev", "GET", "/api/v1/metadata/app/dev/db", None, 200),
    ("svc-dev", "GET", "/api/v1/metadata/app/prod/db", None, 403),
    // Protected prefix */prod/*: services read values; people do not, whatever
    // their policies (even root), but may list and see metadata.
    ("svc-prod", "GET", "/api/v1/secrets/app/prod/db", None, 200),
    (
        "human-prod",
        "GET",
        "/api/v1/secrets/app/prod/db",
        None,
        403,
    ),
    (
        "human-root",
        "GET",
        "/api/v1/secrets/app/prod/db",
        None,
        403,
    ),
    (
        "human-prod",
        "GET",
        "/api/v1/metadata/app/prod/db",
        None,
        200,
    ),
    ("human-prod", "GET", "/api/v1/list/app/prod", None, 200),
    ("human-root", "GET", "/api/v1/secrets/app/dev/db", None, 200),
    ("human-dev", "GET", "/api/v1/secrets/app/dev/db", None, 200),
    ("human-dev", "GET", "/api/v1/secrets/app/dev2/db", None, 403),
    // No token, a malformed token, a well-formed unknown token.
    ("anonymous", "GET", "/api/v1/secrets/app/dev/db", None, 401),
    ("malformed", "GET", "/api/v1/secrets/app/dev/db", None, 401),
    ("unknown", "GET", "/api/v1/secrets/app/dev/db", None, 401),
    ("anonymous", "GET", "/api/v1/list", None, 401),
    ("anonymous", "GET", "/api/v1/metadata/app/dev/db", None, 401),
    ("anonymous", "GET", "/api/v1/secrets/app//dev/db", None, 401),
];

pub(crate) const WRITES: &[Case] = &[
    // create vs update.
    (
        "svc-create",
        "PUT",
        "/api/v1/secrets/app/dev/new",
        Some(r#"{"value":"n"}"#),
        200,
    ),
    (
        "svc-create",
        "PUT",
        "/api/v1/secrets/app/dev/new",
        Some(r#"{"value":"n2"}"#),
        403,
    ),
    (
        "svc-update",
        "PUT",
        "/api/v1/secrets/app/dev/new",
        Some(r#"{"value":"n3"}"#),
        200,
    ),
    (
        "svc-update",
        "PUT",
        "/api/v1/secrets/app/dev/other",
        Some(r#"{"value":"o"}"#),
        403,
    ),
    (
        "svc-create",
        "PUT",
        "/api/v1/secrets/app/dev2/new",
        Some(r#"{"value":"n"}"#),
        403,
    ),
    (
        "svc-dev",
        "PUT",
        "/api/v1/secrets/app/dev/db",
        Some(r#"{"value":"x"}"#),
        403,
    ),
    (
        "svc-create",
        "PUT",
        "/api/v1/secrets/app/dev/../x",
        Some(r#"{"value":"x"}"#),
        400,
    ),
    (
        "anonymous",
        "PUT",
        "/api/v1/secrets/app/dev/new",
        Some(r#"{"value":"x"}"#),
        401,
    ),
    // People may write under a protected prefix if a policy lets them; only
    // reading values is withheld.
    (
        "human-root",
        "PUT",
        "/api/v1/secrets/web/prod/key",
        Some(r#"{"value":"k"}"#),
        200,
    ),
    (
        "human-prod",
        "PUT",
        "/api/v1/secrets/web/prod/key",
        Some(r#"{"value":"k"}"#),
        403,
    ),
    // PostgreSQL role management: create on the path and read on the
    // administrator secret, decided before PostgreSQL is contacted. People
    // cannot borrow credentials from a protected environment either.
    (
        "svc-create",
        "POST",
        "/api/v1/postgres/app/dev/pg",
        Some(r#"{"admin":"app/prod/db","roles":["r_one","r_two"]}"#),
        403,
    ),
    (
        "svc-dev",
        "POST",
        "/api/v1/postgres/app/dev/pg",
        Some(r#"{"admin":"app/dev/db","roles":["r_one","r_two"]}"#),
        403,
    ),
    (
        "human-root",
        "POST",
        "/api/v1/postgres/app/dev/pg",
        Some(r#"{"admin":"app/prod/db","roles":["r_one","r_two"]}"#),
        403,
    ),
    (
        "anonymous",
        "POST",
        "/api/v1/postgres/app/dev/pg",
        Some(r#"{"admin":"app/dev/db","roles":["r_one","r_two"]}"#),
        401,
    ),
    ("svc-dev", "GET", "/api/v1/postgres/app/dev/db", None, 404),
    ("svc-dev", "GET", "/api/v1/postgres/app/prod/db", None, 403),
    (
        "svc-lister",
        "GET",
        "/api/v1/postgres/app/dev/db",
        None,
        403,
    ),
    // delete, undelete, destroy.
    (
        "svc-dev",
        "DELETE",
        "/api/v1/secrets/app/dev/trash",
        None,
        403,
    ),
    (
        "svc-delete",
        "DELETE",
        "/api/v1/secrets/app/dev/trash",
        None,
        200,
    ),
    (
        "svc-dev",
        "POST",
        "/api/v1/undelete/app/dev/trash",
        Some("{}"),
        403,
    ),
    (
        "svc-delete",
        "POST",
        "/api/v1/undelete/app/dev/trash",
        Some("{}"),
        200,
    ),
    (
        "svc-dev",
        "POST",
        "/api/v1/destroy/app/dev/gone",
        Some("{}"),
        403,
    ),
    (
        "svc-delete",
        "POST",
        "/api/v1/destroy/app/dev/gone",
        Some("{}"),
        200,
    ),
    (
        "svc-delete",
        "DELETE",
        "/api/v1/secrets/app/dev2/db",
        None,
        403,
    ),
    (
        "anonymous",
        "DELETE",
        "/api/v1/secrets/app/dev/trash",
        None,
        401,
    ),
    (
        "anonymous",
        "POST",
        "/api/v1/undelete/app/dev/trash",
        Some("{}"),
        401,
    ),
    (
        "anonymous",
        "POST",
        "/api/v1/destroy/app/dev/trash",
        Some("{}"),
        401,
    ),
];

/// What a refused machine login answers (a bad JWT, an unknown role id):
/// the refusal of the credentials presented, never a demand for a token.
const LOGIN_REFUSED: u16 = 401;

/// The routes added after the first matrix: app roles, JWT roles and
/// logins, shares, metrics, history, fingerprints, compromise, the
/// lifecycle schedule and the audit log's routes.
const NEWER: &[Case] = &[
    // Secrets, beyond read and write: refused without the capability on
    // the path, 401 without a token.
    (
        "svc-dev",
        "POST",
        "/api/v1/bundle",
        Some(r#"{"prefixes":["app/prod/"]}"#),
        403,
    ),
    (
        "svc-dev",
        "POST",
        "/api/v1/bundle",
        Some(r#"{"prefixes":["app/dev/"]}"#),
        200,
    ),
    (
        "anonymous",
        "POST",
        "/api/v1/bundle",
        Some(r#"{"prefixes":["app/dev/"]}"#),
        401,
    ),
    (
        "svc-dev",
        "POST",
        "/api/v1/import",
        Some(r#"{"secrets":[{"path":"app/dev/imported","value":"x-imported"}]}"#),
        403,
    ),
    (
        "anonymous",
        "POST",
        "/api/v1/import",
        Some(r#"{"secrets":[{"path":"app/dev/imported","value":"x-imported"}]}"#),
        401,
    ),
    (
        "svc-dev",
        "PUT",
        "/api/v1/history/app/dev/migrated",
        Some(
            r#"{"versions":[{"version":1,"created_at":"2024-03-01T00:00:00Z","state":"active","value":"x-migrated"}]}"#,
        ),
        403,
    ),
    (
        "anonymous",
        "PUT",
        "/api/v1/history/app/dev/migrated",
        Some(
            r#"{"versions":[{"version":1,"created_at":"2024-03-01T00:00:00Z","state":"active","value":"x-migrated"}]}"#,
        ),
        401,
    ),
    (
        "svc-dev",
        "POST",
        "/api/v1/fingerprints",
        Some(r#"{"prefix":"app/prod/"}"#),
        403,
    ),
    (
        "anonymous",
        "POST",
        "/api/v1/fingerprints",
        Some(r#"{"prefix":"app/dev/"}"#),
        401,
    ),
    (
        "svc-dev",
        "POST",
        "/api/v1/compromise/app/dev/api",
        Some(r#"{"version":1,"reason":"pasted in a ticket"}"#),
        403,
    ),
    (
        "anonymous",
        "POST",
        "/api/v1/compromise/app/dev/api",
        Some(r#"{"version":1,"reason":"pasted in a ticket"}"#),
        401,
    ),
    (
        "svc-dev",
        "POST",
        "/api/v1/rotate/app/dev/api",
        Some(r#"{"generate":"alnum:32"}"#),
        403,
    ),
    ("svc-dev", "DELETE", "/api/v1/rotate/app/dev/api", None, 403),
    ("svc-dev", "POST", "/api/v1/promote/app/dev/api", None, 403),
    (
        "svc-dev",
        "PUT",
        "/api/v1/expiry/app/dev/api",
        Some(r#"{"expires_in":"90d"}"#),
        403,
    ),
    (
        "svc-dev",
        "POST",
        "/api/v1/rollback/app/dev/api",
        Some(r#"{"version":1}"#),
        403,
    ),
    (
        "svc-dev",
        "POST",
        "/api/v1/copy",
        Some(r#"{"from":"app/dev/api","to":"app/dev/copy"}"#),
        403,
    ),
    (
        "svc-dev",
        "POST",
        "/api/v1/promote-env",
        Some(
            r#"{"from":"app/dev/","to":"app/prod/","apply":[{"name":"db","action":"update","from_version":1,"to_version":1}]}"#,
        ),
        403,
    ),
    ("anonymous", "GET", "/api/v1/rotation/status", None, 401),
    (
        "svc-prod",
        "GET",
        "/api/v1/rotation/status/app/dev/",
        None,
        403,
    ),
    (
        "svc-dev",
        "GET",
        "/api/v1/rotation/status/app/dev/",
        None,
        200,
    ),
    // The lifecycle schedule and metrics: their own sys/ paths.
    ("svc-dev", "GET", "/api/v1/sys/lifecycle", None, 403),
    ("root", "GET", "/api/v1/sys/lifecycle", None, 200),
    (
        "svc-dev",
        "PUT",
        "/api/v1/sys/lifecycle",
        Some(r#"{"pattern":"app/*","rotate_every":"90d"}"#),
        403,
    ),
    (
        "svc-dev",
        "DELETE",
        "/api/v1/sys/lifecycle?pattern=app/*",
        None,
        403,
    ),
    ("svc-dev", "GET", "/api/v1/sys/metrics", None, 403),
    ("anonymous", "GET", "/api/v1/sys/metrics", None, 401),
    ("root", "GET", "/api/v1/sys/metrics", None, 200),
    // JWT roles: admin; the login needs no token (it is how a machine gets
    // one), and refuses a JWT that does not verify.
    ("svc-padmin", "GET", "/api/v1/auth/jwt/roles", None, 403),
    ("root", "GET", "/api/v1/auth/jwt/roles", None, 200),
    ("svc-dev", "GET", "/api/v1/auth/jwt/roles/ci", None, 403),
    (
        "svc-dev",
        "PUT",
        "/api/v1/auth/jwt/roles/ci",
        Some(
            r#"{"issuer":"https://issuer.example","audience":"coffer","jwks_url":"https://issuer.example/jwks","bound_claims":{"sub":["x"]},"policies":["root"]}"#,
        ),
        403,
    ),
    (
        "anonymous",
        "PUT",
        "/api/v1/auth/jwt/roles/ci",
        Some(
            r#"{"issuer":"https://issuer.example","audience":"coffer","jwks_url":"https://issuer.example/jwks","bound_claims":{"sub":["x"]},"policies":["root"]}"#,
        ),
        401,
    ),
    (
        "human-dev",
        "DELETE",
        "/api/v1/auth/jwt/roles/ci",
        None,
        403,
    ),
    (
        "anonymous",
        "POST",
        "/api/v1/auth/jwt/login",
        Some(r#"{"role":"ci","jwt":"eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."}"#),
        LOGIN_REFUSED,
    ),
    // App roles: admin; the login needs no token.
    ("svc-padmin", "GET", "/api/v1/auth/approle/roles", None, 403),
    ("root", "GET", "/api/v1/auth/approle/roles", None, 200),
    (
        "svc-dev",
        "GET",
        "/api/v1/auth/approle/roles/web",
        None,
        403,
    ),
    (
        "svc-dev",
        "PUT",
        "/api/v1/auth/approle/roles/web",
        Some(r#"{"policies":["root"]}"#),
        403,
    ),
    (
        "anonymous",
        "PUT",
        "/api/v1/auth/approle/roles/web",
        Some(r#"{"policies":["root"]}"#),
        401,
    ),
    (
        "human-dev",
        "DELETE",
        "/api/v1/auth/approle/roles/web",
        None,
        403,
    ),
    (
        "svc-dev",
        "POST",
        "/api/v1/auth/approle/roles/web/secret-ids",
        None,
        403,
    ),
    (
        "svc-dev",
        "GET",
        "/api/v1/auth/approle/roles/web/secret-ids",
        None,
        403,
    ),
    (
        "svc-dev",
        "POST",
        "/api/v1/auth/approle/roles/web/secret-ids/revoke",
        Some(r#"{"accessor":"sia_AAAAAAAAAAAAAAAAAAAAAAAA"}"#),
        403,
    ),
    (
        "anonymous",
        "POST",
        "/api/v1/auth/approle/login",
        Some(
            r#"{"role_id":"rid_AAAAAAAAAAAAAAAAAAAAAAAA","secret_id":"sid_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#,
        ),
        LOGIN_REFUSED,
    ),
    // Shares: creating one needs read on the secret; anyone may open a
    // link (the key is in its fragment), so opening needs no token.
    (
        "svc-dev",
        "POST",
        "/api/v1/shares",
        Some(
            r#"{"id":"AAAAAAAAAAAAAAAAAAAAAA","ciphertext":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","path":"app/prod/db","version":1}"#,
        ),
        403,
    ),
    (
        "anonymous",
        "POST",
        "/api/v1/shares",
        Some(
            r#"{"id":"AAAAAAAAAAAAAAAAAAAAAA","ciphertext":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","path":"app/dev/db","version":1}"#,
        ),
        401,
    ),
    ("anonymous", "GET", "/api/v1/shares", None, 401),
    (
        "anonymous",
        "DELETE",
        "/api/v1/shares/AAAAAAAAAAAAAAAAAAAAAA",
        None,
        401,
    ),
    (
        "anonymous",
        "POST",
        "/api/v1/shares/AAAAAAAAAAAAAAAAAAAAAA/open",
        None,
        404,
    ),
    // The audit log: its own sys/audit paths.
    (
        "svc-dev",
        "POST",
        "/api/v1/sys/audit/verify",
        Some("{}"),
        403,
    ),
    (
        "anonymous",
        "POST",
        "/api/v1/sys/audit/verify",
        Some("{}"),
        401,
    ),
    ("svc-dev", "GET", "/api/v1/sys/audit/records", None, 403),
    ("root", "GET", "/api/v1/sys/audit/records", None, 200),
    (
        "svc-dev",
        "GET",
        "/api/v1/sys/audit/readers?path=app/dev/db",
        None,
        403,
    ),
    (
        "root",
        "GET",
        "/api/v1/sys/audit/readers?path=app/dev/db",
        None,
        200,
    ),
    (
        "svc-dev",
        "POST",
        "/api/v1/sys/audit/hash",
        Some(r#"{"value":"a value to tag"}"#),
        403,
    ),
    ("svc-dev", "POST", "/api/v1/sys/audit/rotate", None, 403),
    (
        "human-dev",
        "POST",
        "/api/v1/sys/audit/acknowledge-gap",
        Some(r#"{"record":1,"reason":"a test gap"}"#),
        403,
    ),
];

const ADMIN: &[Case] = &[
    // Server operations: root only.
    ("svc-dev", "POST", "/api/v1/sys/seal", None, 403),
    ("human-dev", "POST", "/api/v1/sys/seal", None, 403),
    ("anonymous", "POST", "/api/v1/sys/seal", None, 401),
    ("svc-padmin", "POST", "/api/v1/sys/rotate", None, 403),
    ("svc-dev", "GET", "/api/v1/sys/keyring", None, 403),
    ("root", "GET", "/api/v1/sys/keyring", None, 200),
    ("root", "POST", "/api/v1/sys/rotate", None, 200),
    ("svc-padmin", "GET", "/api/v1/sys/backup", None, 403),
    ("human-dev", "GET", "/api/v1/sys/backup", None, 403),
    ("anonymous", "GET", "/api/v1/sys/backup", None, 401),
    ("root", "GET", "/api/v1/sys/backup", None, 200),
    // Open to everyone.
    ("anonymous", "GET", "/api/v1/sys/health", None, 200),
    ("anonymous", "GET", "/api/v1/sys/status", None, 200),
    ("anonymous", "GET", "/api/v1/openapi.json", None, 200),
    (
        "anonymous",
        "POST",
        "/api/v1/sys/init",
        Some(r#"{"shares":1,"threshold":1}"#),
        409,
    ),
    (
        "anonymous",
        "POST",
        "/api/v1/sys/unseal",
        Some(r#"{"reset":true}"#),
        200,
    ),
    // Policies: admin on sys/policies/*.
    (
        "svc-padmin",
        "GET",
        "/api/v1/sys/policies/dev-reader",
        None,
        200,
    ),
    (
        "svc-padmin",
        "PUT",
        "/api/v1/sys/policies/new-one",
        Some(r#"{"policy":"path \"sys/policies/new-one\" { capabilities = [\"admin\"] }"}"#),
        200,
    ),
    // ...but nothing it does not have itself.
    (
        "svc-padmin",
        "PUT",
        "/api/v1/sys/policies/other-one",
        Some(r#"{"policy":"path \"x/*\" { capabilities = [\"read\"] }"}"#),
        403,
    ),
    (
        "svc-padmin",
        "DELETE",
        "/api/v1/sys/policies/new-one",
        None,
        204,
    ),
    // `sys/policies/*` also covers the folder `sys/policies/`: listing.
    ("svc-padmin", "GET", "/api/v1/sys/policies", None, 200),
    ("svc-padmin", "GET", "/api/v1/sys/users", None, 403),
    (
        "svc-dev",
        "GET",
        "/api/v1/sys/policies/dev-reader",
        None,
        403,
    ),
    (
        "svc-dev",
        "PUT",
        "/api/v1/sys/policies/dev-reader",
        Some(r#"{"policy":"path \"*\" { capabilities = [\"read\"] }"}"#),
        403,
    ),
    (
        "human-dev",
        "DELETE",
        "/api/v1/sys/policies/dev-reader",
        None,
        403,
    ),
    ("root", "GET", "/api/v1/sys/policies", None, 200),
    ("anonymous", "GET", "/api/v1/sys/policies", None, 401),
    // Tokens: anyone acts on their own; listing and others' tokens need admin.
    ("svc-dev", "GET", "/api/v1/auth/token/self", None, 200),
    ("human-dev", "GET", "/api/v1/auth/token/self", None, 200),
    (
        "svc-dev",
        "POST",
        "/api/v1/auth/token/self/renew",
        None,
        200,
    ),
    ("anonymous", "GET", "/api/v1/auth/token/self", None, 401),
    ("svc-dev", "GET", "/api/v1/auth/tokens", None, 403),
    ("root", "GET", "/api/v1/auth/tokens", None, 200),
    (
        "svc-dev",
        "POST",
        "/api/v1/auth/tokens",
        Some(r#"{"policies":["dev-reader"],"ttl":"1h"}"#),
        200,
    ),
    (
        "svc-dev",
        "POST",
        "/api/v1/auth/tokens",
        Some(r#"{"policies":["prod-reader"]}"#),
        403,
    ),
    (
        "svc-dev",
        "POST",
        "/api/v1/auth/tokens",
        Some(r#"{"policies":["root"]}"#),
        403,
    ),
    (
        "human-dev",
        "POST",
        "/api/v1/auth/tokens",
        Some(r#"{"policies":["dev-reader"]}"#),
        200,
    ),
    (
        "anonymous",
        "POST",
        "/api/v1/auth/tokens",
        Some(r#"{"policies":["dev-reader"]}"#),
        401,
    ),
    (
        "svc-dev",
        "GET",
        "/api/v1/auth/tokens/{root-accessor}",
        None,
        403,
    ),
    (
        "svc-dev",
        "POST",
        "/api/v1/auth/tokens/{root-accessor}/renew",
        None,
        403,
    ),
    (
        "svc-dev",
        "DELETE",
        "/api/v1/auth/tokens/{root-accessor}",
        None,
        403,
    ),
    (
        "svc-dev",
        "GET",
        "/api/v1/auth/tokens/acc_000000000000000000000000",
        None,
        403,
    ),
    (
        "root",
        "GET",
        "/api/v1/auth/tokens/acc_000000000000000000000000",
        None,
        404,
    ),
    (
        "root",
        "GET",
        "/api/v1/auth/tokens/{svc-dev-accessor}",
        None,
        200,
    ),
    (
        "human-dev",
        "GET",
        "/api/v1/auth/tokens/{svc-dev-accessor}",
        None,
        403,
    ),
    // Users and invitations: admin.
    ("svc-dev", "GET", "/api/v1/sys/users", None, 403),
    (
        "human-dev",
        "GET",
        "/api/v1/sys/users/human-prod",
        None,
        403,
    ),
    (
        "human-dev",
        "POST",
        "/api/v1/sys/users/human-prod/disable",
        None,
        403,
    ),
    (
        "human-dev",
        "POST",
        "/api/v1/sys/users/human-prod/enable",
        None,
        403,
    ),
    (
        "human-dev",
        "DELETE",
        "/api/v1/sys/users/human-prod",
        None,
        403,
    ),
    (
        "human-dev",
        "PATCH",
        "/api/v1/sys/users/human-prod",
        Some(r#"{"policies":["dev-reader"]}"#),
        403,
    ),
    (
        "svc-padmin",
        "PATCH",
        "/api/v1/sys/users/human-dev",
        Some(r#"{"reset_totp":true}"#),
        403,
    ),
    (
        "anonymous",
        "PATCH",
        "/api/v1/sys/users/human-prod",
        Some(r#"{"reset_totp":true}"#),
        401,
    ),
    ("root", "GET", "/api/v1/sys/users", None, 200),
    ("root", "GET", "/api/v1/sys/users/Human-Prod", None, 200),
    (
        "svc-dev",
        "POST",
        "/api/v1/auth/invites",
        Some(r#"{"policies":["dev-reader"]}"#),
        403,
    ),
    (
        "anonymous",
        "POST",
        "/api/v1/auth/invites/accept",
        Some(r#"{"code":"cfi_x","user":"mallory","password":"long enough password"}"#),
        400,
    ),
    (
        "anonymous",
        "POST",
        "/api/v1/auth/login",
        Some(r#"{"user":"nobody","password":"long enough password"}"#),
        401,
    ),
    // One-time codes belong to people.
    ("svc-dev", "POST", "/api/v1/auth/totp", None, 400),
    ("anonymous", "POST", "/api/v1/auth/totp", None, 401),
    (
        "human-dev",
        "POST",
        "/api/v1/auth/totp/confirm",
        Some(r#"{"code":"000000"}"#),
        400,
    ),
    (
        "human-dev",
        "POST",
        "/api/v1/auth/totp/disable",
        Some(r#"{"code":"000000"}"#),
        400,
    ),
    // Protected prefixes: admin.
    ("svc-prod", "GET", "/api/v1/sys/protected", None, 403),
    (
        "human-prod",
        "POST",
        "/api/v1/sys/protected",
        Some(r#"{"pattern":"x/*"}"#),
        403,
    ),
    (
        "human-prod",
        "DELETE",
        "/api/v1/sys/protected?pattern=*/prod/*",
        None,
        403,
    ),
    ("root", "GET", "/api/v1/sys/protected", None, 200),
    // Break-glass: people, with the capability, on protected paths.
    (
        "human-prod",
        "POST",
        "/api/v1/sys/breakglass",
        Some(r#"{"path":"app/prod/db","reason":"INC-1 outage"}"#),
        403,
    ),
    (
        "svc-prod",
        "POST",
        "/api/v1/sys/breakglass",
        Some(r#"{"path":"app/prod/db","reason":"INC-1 outage"}"#),
        400,
    ),
    (
        "human-root",
        "POST",
        "/api/v1/sys/breakglass",
        Some(r#"{"path":"app/dev/db","reason":"INC-1 outage"}"#),
        400,
    ),
    ("svc-dev", "GET", "/api/v1/sys/breakglass", None, 403),
    ("root", "GET", "/api/v1/sys/breakglass", None, 200),
    // A token's own: nothing but the token is needed, no policy takes it
    // away.
    ("anonymous", "DELETE", "/api/v1/auth/token/self", None, 401),
    (
        "anonymous",
        "POST",
        "/api/v1/auth/token/self/renew",
        None,
        401,
    ),
    (
        "anonymous",
        "POST",
        "/api/v1/auth/totp/confirm",
        Some(r#"{"code":"000000"}"#),
        401,
    ),
    (
        "anonymous",
        "POST",
        "/api/v1/auth/totp/disable",
        Some(r#"{"code":"000000"}"#),
        401,
    ),
    // Self-revocation last: the token stops working at once.
    ("svc-update", "DELETE", "/api/v1/auth/token/self", None, 204),
    ("svc-update", "GET", "/api/v1/auth/token/self", None, 401),
];

fn run(f: &Fixture, table: &[Case], substitutions: &[(&str, String)]) {
    let root = f.token("root").unwrap();
    let mut failures = Vec::new();
    for (who, method, url, body, expected) in table {
        let mut url = url.to_string();
        for (k, v) in substitutions {
            url = url.replace(k, v);
        }
        let token = f.token(who);
        let r = if *expected == 401 || *expected == 403 {
            // A refusal: one denied record, and nothing changed.
            refused_changes_nothing(
                &f.server,
                &root,
                (who, token.as_deref()),
                (method, &url, *body),
                *expected,
                &[],
                &mut failures,
            )
        } else {
            f.server
                .http(method, &url, token.as_deref(), body.map(str::as_bytes))
        };
        if r.status != *expected {
            failures.push(format!(
                "{who} {method} {url}: expected {expected}, got {} {}",
                r.status,
                r.text()
            ));
        }
        // A refused read never carries a value, and every error body is the
        // API's error shape.
        if r.status >= 400 {
            assert!(
                !r.text().contains("value-of-"),
                "{who} {method} {url} leaked a value: {}",
                r.text()
            );
            assert!(
                !r.error_code().is_empty(),
                "{who} {method} {url}: error without a code"
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn authorization_matrix() {
    let (_dir, f) = setup();
    let root = f.token("root").unwrap();
    let accessor_of = |who: &str| {
        let r = f.server.http(
            "GET",
            "/api/v1/auth/token/self",
            f.token(who).as_deref(),
            None,
        );
        ok(&r, who)["accessor"].as_str().unwrap().to_string()
    };
    let subs = [
        ("{root-accessor}", accessor_of("root")),
        ("{svc-dev-accessor}", accessor_of("svc-dev")),
    ];
    run(&f, READS, &subs);
    run(&f, WRITES, &subs);
    run(&f, NEWER, &subs);
    run(&f, ADMIN, &subs);

    // What the allowed reads returned is the right value.
    let r = f.server.http(
        "GET",
        "/api/v1/secrets/app/dev/sub/deep",
        f.token("svc-dev").as_deref(),
        None,
    );
    assert_eq!(r.json()["value"], "value-of-app/dev/sub/deep");
    // The refused writes changed nothing.
    let r = f
        .server
        .http("GET", "/api/v1/metadata/app/dev/db", Some(&root), None);
    assert_eq!(r.json()["current_version"], 1);
    let r = f
        .server
        .http("GET", "/api/v1/secrets/app/dev2/new", Some(&root), None);
    assert_eq!(r.status, 404);
    let r = f
        .server
        .http("GET", "/api/v1/sys/policies/dev-reader", Some(&root), None);
    assert!(r.json()["policy"].as_str().unwrap().contains("app/dev/*"));
    // Protected prefixes are still there.
    let r = f
        .server
        .http("GET", "/api/v1/sys/protected", Some(&root), None);
    assert_eq!(r.json()["protected"][0]["pattern"], "*/prod/*");
}

#[test]
fn policy_changes_take_effect_on_the_next_request() {
    let (_dir, f) = setup();
    let root = f.token("root").unwrap();
    let svc = f.token("svc-dev");
    let get = |t: Option<&str>| {
        f.server
            .http("GET", "/api/v1/secrets/app/dev/db", t, None)
            .status
    };
    assert_eq!(get(svc.as_deref()), 200);
    // Tighten the policy: refused at once.
    let body = json!({ "policy": r#"path "app/dev/api" { capabilities = ["read"] }"# }).to_string();
    ok(
        &f.server.http(
            "PUT",
            "/api/v1/sys/policies/dev-reader",
            Some(&root),
            Some(body.as_bytes()),
        ),
        "rewrite",
    );
    assert_eq!(get(svc.as_deref()), 403);
    // Delete it: everything it granted is gone.
    ok(
        &f.server.http(
            "DELETE",
            "/api/v1/sys/policies/dev-reader",
            Some(&root),
            None,
        ),
        "delete",
    );
    let r = f
        .server
        .http("GET", "/api/v1/secrets/app/dev/api", svc.as_deref(), None);
    assert_eq!(r.status, 403);
    // Root is built in and cannot be written or deleted; names are exact.
    for (method, url, body) in [
        ("DELETE", "/api/v1/sys/policies/root", None),
        (
            "PUT",
            "/api/v1/sys/policies/root",
            Some(r#"{"policy":"path \"*\" { capabilities = [\"deny\"] }"}"#),
        ),
        (
            "PUT",
            "/api/v1/sys/policies/Root",
            Some(r#"{"policy":"path \"*\" { capabilities = [\"read\"] }"}"#),
        ),
        (
            "PUT",
            "/api/v1/sys/policies/%20root",
            Some(r#"{"policy":"path \"*\" { capabilities = [\"read\"] }"}"#),
        ),
    ] {
        let r = f
            .server
            .http(method, url, Some(&root), body.map(str::as_bytes));
        assert_eq!(r.status, 400, "{method} {url}: {}", r.text());
    }
    // A token cannot carry a name variant of root.
    let r = f.server.http(
        "POST",
        "/api/v1/auth/tokens",
        Some(&root),
        Some(br#"{"policies":["Root"]}"#),
    );
    assert_eq!(r.status, 400, "{}", r.text());
}

// ---- finding: deny hides names in every enumeration ---------------------------

/// The policy of the caller in the deny tests: wide grants, and denies of
/// several shapes (a glob, one name inside an allowed glob, a `+` pattern, a
/// folder).
const WIDE: &str = r#"
path "" { capabilities = ["list"] }
path "app/*" { capabilities = ["read", "list", "create", "update"] }
path "sys/lifecycle" { capabilities = ["admin"] }
path "sys/protected" { capabilities = ["admin"] }
path "sys/breakglass" { capabilities = ["admin"] }
"#;
const DENIES: &str = r#"
path "app/prod/*" { capabilities = ["deny"] }
path "app/dev/HIDDEN" { capabilities = ["deny"] }
path "app/+/PLUSHIDDEN" { capabilities = ["deny"] }
path "app/vaulted/" { capabilities = ["deny"] }
"#;
const DENY_SECRETS: &[&str] = &[
    "app/prod/S",
    "app/dev/HIDDEN",
    "app/dev/OK",
    "app/dev/PLUSHIDDEN",
    "app/dev/sub/DEEP",
    "app/staging/OK",
    "app/staging/PLUSHIDDEN",
    "app/vaulted/x",
];
/// Text that must never appear in what the denied caller is shown.
const HIDDEN_MARKERS: &[&str] = &["prod", "HIDDEN", "vaulted"];

/// A server with the secrets above (each with an expiry, so that rotation
/// status reports them), lifecycle rules and a protected prefix naming the
/// denied ones, and a token with `WIDE` and `DENIES`.
fn deny_fixture() -> (tempfile::TempDir, Server, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    for (name, source) in [("wide", WIDE), ("denies", DENIES)] {
        let body = json!({ "policy": source }).to_string();
        ok(
            &server.http(
                "PUT",
                &format!("/api/v1/sys/policies/{name}"),
                Some(&root),
                Some(body.as_bytes()),
            ),
            name,
        );
    }
    for path in DENY_SECRETS {
        let body = json!({ "value": format!("value-of-{path}-Xy7#kQ2!vR9z") }).to_string();
        ok(
            &server.http(
                "PUT",
                &format!("/api/v1/secrets/{path}"),
                Some(&root),
                Some(body.as_bytes()),
            ),
            path,
        );
        ok(
            &server.http(
                "PUT",
                &format!("/api/v1/expiry/{path}"),
                Some(&root),
                Some(br#"{"expires_in":"2d"}"#),
            ),
            path,
        );
    }
    for pattern in ["app/prod/S", "app/dev/HIDDEN", "app/dev/OK"] {
        let body = json!({ "pattern": pattern, "min_bits": 8 }).to_string();
        ok(
            &server.http(
                "PUT",
                "/api/v1/sys/lifecycle",
                Some(&root),
                Some(body.as_bytes()),
            ),
            pattern,
        );
    }
    for pattern in ["app/prod/*", "app/dev/OK"] {
        let body = json!({ "pattern": pattern }).to_string();
        ok(
            &server.http(
                "POST",
                "/api/v1/sys/protected",
                Some(&root),
                Some(body.as_bytes()),
            ),
            pattern,
        );
    }
    let body = json!({ "policies": ["wide", "denies"], "display_name": "denied" }).to_string();
    let r = server.http(
        "POST",
        "/api/v1/auth/tokens",
        Some(&root),
        Some(body.as_bytes()),
    );
    let token = ok(&r, "token")["token"].as_str().unwrap().to_string();
    (dir, server, root, token)
}

/// Every route that enumerates paths or shows records naming paths, with
/// what the allowed part of its answer must contain.
const ENUMERATING: &[(&str, &str, Option<&str>, &str)] = &[
    ("GET", "/api/v1/list", None, "app/"),
    ("GET", "/api/v1/list?recursive=true", None, "app/dev/OK"),
    ("GET", "/api/v1/list/app", None, "dev/"),
    ("GET", "/api/v1/list/app?recursive=true", None, "dev/OK"),
    (
        "GET",
        "/api/v1/list/app?recursive=true&include_deleted=true",
        None,
        "dev/OK",
    ),
    ("GET", "/api/v1/list/app/dev", None, "OK"),
    ("GET", "/api/v1/list/app/staging", None, "OK"),
    ("GET", "/api/v1/rotation/status", None, "app/dev/OK"),
    ("GET", "/api/v1/rotation/status/app", None, "app/dev/OK"),
    ("GET", "/api/v1/rotation/status/app/dev", None, "app/dev/OK"),
    (
        "POST",
        "/api/v1/bundle",
        Some(r#"{"prefixes":["app/dev","app/staging"]}"#),
        "app/staging/OK",
    ),
    (
        "POST",
        "/api/v1/promote-env",
        Some(r#"{"from":"app/dev","to":"app/staging"}"#),
        "OK",
    ),
    (
        "POST",
        "/api/v1/promote-env",
        Some(r#"{"from":"app/staging","to":"app/dev"}"#),
        "OK",
    ),
    ("GET", "/api/v1/sys/lifecycle", None, "app/dev/OK"),
    ("GET", "/api/v1/sys/protected", None, "app/dev/OK"),
    ("GET", "/api/v1/sys/breakglass", None, "grants"),
];

#[test]
fn deny_hides_names_in_every_enumerating_route() {
    let (_dir, server, root, token) = deny_fixture();
    let mut failures = Vec::new();
    for (method, url, body, wanted) in ENUMERATING {
        // Root sees everything, so the hidden names are really there.
        let as_root = server.http(method, url, Some(&root), body.map(str::as_bytes));
        assert_eq!(
            as_root.status,
            200,
            "root {method} {url}: {}",
            as_root.text()
        );
        let r = server.http(method, url, Some(&token), body.map(str::as_bytes));
        let text = r.text();
        if r.status != 200 {
            failures.push(format!("{method} {url}: {} {text}", r.status));
            continue;
        }
        if !text.contains(wanted) {
            failures.push(format!("{method} {url}: lacks {wanted:?}: {text}"));
        }
        for marker in HIDDEN_MARKERS {
            if text.contains(marker) {
                failures.push(format!("{method} {url} shows {marker:?}: {text}"));
            }
        }
    }
    // The recursive listing as root does show what the caller cannot see.
    let all = server
        .http("GET", "/api/v1/list/app?recursive=true", Some(&root), None)
        .text();
    for marker in HIDDEN_MARKERS {
        assert!(all.contains(marker), "root should see {marker}: {all}");
    }
    // The denied items themselves stay refused.
    for url in [
        "/api/v1/list/app/prod",
        "/api/v1/list/app/vaulted",
        "/api/v1/metadata/app/prod/S",
        "/api/v1/metadata/app/dev/HIDDEN",
        "/api/v1/metadata/app/staging/PLUSHIDDEN",
        "/api/v1/rotation/status/app/prod",
    ] {
        let r = server.http("GET", url, Some(&token), None);
        if r.status != 403 {
            failures.push(format!("GET {url}: expected 403, got {}", r.status));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn deny_hides_names_across_listing_pages() {
    let (_dir, server, _root, token) = deny_fixture();
    // One entry per page: no page, and no cursor, names a hidden entry, and
    // following the cursors yields exactly the visible entries.
    for (prefix, recursive, want) in [
        ("app/dev", false, vec!["OK", "sub/"]),
        ("app", true, vec!["dev/OK", "dev/sub/DEEP", "staging/OK"]),
        ("app", false, vec!["dev/", "staging/"]),
    ] {
        let mut after: Option<String> = None;
        let mut seen = Vec::new();
        for _ in 0..20 {
            let mut url = format!("/api/v1/list/{prefix}?limit=1");
            if recursive {
                url.push_str("&recursive=true");
            }
            if let Some(a) = &after {
                url.push_str(&format!("&after={}", a.replace('/', "%2F")));
            }
            let r = server.http("GET", &url, Some(&token), None);
            let page = ok(&r, &url);
            for marker in HIDDEN_MARKERS {
                assert!(!r.text().contains(marker), "{url}: {}", r.text());
            }
            for e in page["entries"].as_array().unwrap() {
                seen.push(e["name"].as_str().unwrap().to_string());
            }
            match page["next"].as_str() {
                Some(n) => after = Some(n.to_string()),
                None => break,
            }
        }
        assert_eq!(seen, want, "{prefix} recursive={recursive}");
    }
}

#[test]
fn deny_hides_folders_whose_every_secret_is_denied_and_the_cursor_after_the_last_shown() {
    let (_dir, server, root, token) = deny_fixture();
    // Folders that hold only secrets the caller is denied: one between the
    // shown folders, one after the last of them.
    for path in ["app/merger/PLUSHIDDEN", "app/zeta/PLUSHIDDEN"] {
        ok(
            &server.http(
                "PUT",
                &format!("/api/v1/secrets/{path}"),
                Some(&root),
                Some(br#"{"value":"Xy7#kQ2!vR9z-long-value"}"#),
            ),
            path,
        );
    }
    let list = |url: &str| ok(&server.http("GET", url, Some(&token), None), url);
    let page = list("/api/v1/list/app");
    let names: Vec<&str> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["dev/", "staging/"]);
    // The page that holds the last shown entry has no cursor, although
    // zeta/ follows it in the store.
    let page = list("/api/v1/list/app?limit=1&after=dev%2F");
    assert_eq!(page["entries"][0]["name"], "staging/");
    assert!(page["next"].is_null(), "{page}");
    // Root sees both folders.
    let all = ok(
        &server.http("GET", "/api/v1/list/app", Some(&root), None),
        "root",
    );
    let text = all.to_string();
    assert!(text.contains("merger/") && text.contains("zeta/"), "{text}");
}

/// Whether `url` (a row's, query string dropped) is a request to the
/// route template `template`: `{name}` is one segment, `{*name}` the rest.
fn matches_template(template: &str, url: &str) -> bool {
    let url = url.split_once('?').map_or(url, |(p, _)| p);
    let mut t = template.trim_start_matches('/').split('/');
    let mut u = url.trim_start_matches('/').split('/');
    loop {
        match (t.next(), u.next()) {
            (None, None) => return true,
            (Some(seg), Some(got)) if seg.starts_with("{*") => {
                return !got.is_empty() || u.next().is_some();
            }
            (Some(seg), Some(got)) if seg.starts_with('{') => {
                if got.is_empty() {
                    return false;
                }
            }
            (Some(seg), Some(got)) if seg == got => {}
            _ => return false,
        }
    }
}

/// Every route of the route table (from which `openapi.json` is checked)
/// has at least one row in the matrix: a new route fails here until its
/// authorization is pinned by a row. A route that needs a token also needs
/// a refusal (a 401/403 row or a counterpart) and an allowed case (a 2xx
/// row or a counterpart), unless `NO_ALLOWED_COUNTERPART` says why no
/// test here can allow it.
#[test]
fn every_route_of_the_table_has_a_row() {
    use coffer_api::routes::Requires;
    let rows: Vec<&Case> = [READS, WRITES, ADMIN, NEWER]
        .into_iter()
        .flatten()
        .collect();
    let has_row = |route: &coffer_api::routes::Route, status: &dyn Fn(u16) -> bool| {
        rows.iter().any(|(_, method, url, _, expected)| {
            *method == route.method.as_str()
                && matches_template(route.path, url)
                && status(*expected)
        })
    };
    let counterpart = |route: &coffer_api::routes::Route| {
        COUNTERPARTS
            .iter()
            .find(|c| std::ptr::eq(c.route, route) || *c.route == *route)
    };
    let exempt = |route: &coffer_api::routes::Route| {
        NO_ALLOWED_COUNTERPART.iter().any(|(r, _)| **r == *route)
    };
    let mut missing = Vec::new();
    for route in coffer_api::routes::ALL {
        let name = format!("{} {}", route.method.as_str(), route.path);
        if !has_row(route, &|_| true) && counterpart(route).is_none() {
            missing.push(format!("{name}: no row"));
        }
        if route.op.requires == Requires::Nothing {
            continue;
        }
        if !has_row(route, &|s| s == 401 || s == 403)
            && counterpart(route).is_none_or(|c| c.refused.is_none())
        {
            missing.push(format!("{name}: no refusal"));
        }
        let allowed = has_row(route, &|s| (200..300).contains(&s)) || counterpart(route).is_some();
        if !allowed && !exempt(route) {
            missing.push(format!("{name}: no allowed case"));
        }
        if allowed && exempt(route) {
            missing.push(format!("{name}: exempt, yet allowed: drop the exemption"));
        }
    }
    assert!(
        missing.is_empty(),
        "routes the matrix does not pin:\n{}",
        missing.join("\n")
    );
}

#[test]
fn route_templates_match_as_the_router_does() {
    for (template, url, want) in [
        ("/api/v1/secrets/{*path}", "/api/v1/secrets/a/b/c", true),
        ("/api/v1/secrets/{*path}", "/api/v1/secrets/", false),
        (
            "/api/v1/auth/tokens/{accessor}",
            "/api/v1/auth/tokens/x",
            true,
        ),
        (
            "/api/v1/auth/tokens/{accessor}",
            "/api/v1/auth/tokens/x/renew",
            false,
        ),
        ("/api/v1/auth/tokens", "/api/v1/auth/tokens?x=1", true),
        ("/api/v1/sys/seal", "/api/v1/sys/seal/more", false),
    ] {
        assert_eq!(matches_template(template, url), want, "{template} {url}");
    }
}

/// Logins (and accepting an invitation, opening a share link) are
/// unauthenticated by design: the route table requires nothing of them,
/// and a token sent along (none, a malformed one, a well-formed unknown
/// one, a valid one of another identity) changes nothing in the answer to
/// bad credentials: it is neither demanded nor used.
#[test]
fn logins_need_no_token_and_ignore_one_sent_along() {
    use coffer_api::routes::{self, Requires};
    for route in [
        &routes::AUTH_LOGIN,
        &routes::AUTH_JWT_LOGIN,
        &routes::APPROLE_LOGIN,
        &routes::INVITE_ACCEPT,
        &routes::SHARE_OPEN,
    ] {
        assert_eq!(route.op.requires, Requires::Nothing, "{}", route.path);
    }
    let logins: Vec<&Case> = [ADMIN, NEWER]
        .into_iter()
        .flatten()
        .filter(|(who, _, url, _, _)| {
            *who == "anonymous"
                && (url.ends_with("/login") || url.ends_with("/accept") || url.ends_with("/open"))
        })
        .collect();
    assert_eq!(logins.len(), 5, "{logins:?}");
    for (_, method, url, body, expected) in logins {
        // A node per route: failed logins from one address are limited.
        let (_dir, f) = setup();
        for who in ["anonymous", "malformed", "unknown", "svc-dev", "root"] {
            let r = f.server.http(
                method,
                url,
                f.token(who).as_deref(),
                body.map(str::as_bytes),
            );
            assert_eq!(r.status, *expected, "{who} {method} {url}: {}", r.text());
            assert_ne!(r.error_code(), "forbidden", "{who} {url}");
        }
    }
}

// ---- allowed counterparts ------------------------------------------------------

/// Who makes a counterpart's requests.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// A service token holding only the row's policy.
    Service,
    /// A person invited with only the row's policy, logged in.
    Person,
}

/// One route's allowed counterpart: the minimal policy that permits its
/// request, and a policy that lacks what it needs (the capability, or the
/// right path: a sibling), under which the same request is refused.
struct Counterpart {
    route: &'static coffer_api::routes::Route,
    kind: Kind,
    /// The request's URL and body. `{...}` placeholders are filled in from
    /// the counterpart fixture (`{grant}` is the name of the caller's own
    /// policy).
    url: &'static str,
    body: Option<&'static str>,
    /// The policy that permits the request, and the 2xx status it gets.
    grant: &'static str,
    allowed: u16,
    /// The policy that refuses it (403), or `None` when no policy can take
    /// the route away (a person's own one-time codes).
    refused: Option<&'static str>,
    /// Named policies both callers hold besides their own (what the people
    /// they manage hold: one may change a person only if it holds every
    /// policy the person holds).
    also: &'static [&'static str],
    /// A request the allowed caller makes first, before the refused one:
    /// what it acts on must be its own (a share link).
    setup: Option<(&'static str, &'static str, Option<&'static str>)>,
    /// What root reads, before and after the refused request, to show it
    /// changed nothing (beside the whole-server snapshot of
    /// [`state_snapshot`]).
    probes: &'static [&'static str],
}

const fn cp(
    route: &'static coffer_api::routes::Route,
    url: &'static str,
    body: Option<&'static str>,
    grant: &'static str,
    allowed: u16,
    refused: &'static str,
    probes: &'static [&'static str],
) -> Counterpart {
    Counterpart {
        route,
        kind: Kind::Service,
        url,
        body,
        grant,
        allowed,
        refused: Some(refused),
        also: &[],
        setup: None,
        probes,
    }
}

/// Rows run in order on one node: a row may rely on what an earlier
/// row's allowed request did (a lifecycle rule set, then removed). Each
/// row's refused request runs before its allowed one.
const COUNTERPARTS: &[Counterpart] = {
    use coffer_api::routes as r;
    &[
        cp(
            &r::SECRET_IMPORT,
            "/api/v1/import",
            Some(r#"{"secrets":[{"path":"app/cp/imported","value":"x-imported-Qw9#"}]}"#),
            r#"path "app/cp/imported" { capabilities = ["create"] }"#,
            200,
            r#"path "app/cp/imported" { capabilities = ["read", "list"] }"#,
            &["/api/v1/secrets/app/cp/imported"],
        ),
        cp(
            &r::SECRET_HISTORY_IMPORT,
            "/api/v1/history/app/cp/migrated",
            Some(
                r#"{"versions":[{"version":1,"created_at":"2024-03-01T00:00:00Z","state":"active","value":"x-migrated-Qw9#"}]}"#,
            ),
            r#"path "sys/import" { capabilities = ["admin"] }
            path "app/cp/migrated" { capabilities = ["read", "create"] }"#,
            200,
            r#"path "sys/import" { capabilities = ["admin"] }
            path "app/cp/migrated" { capabilities = ["read"] }"#,
            &["/api/v1/metadata/app/cp/migrated"],
        ),
        cp(
            &r::SECRET_FINGERPRINTS,
            "/api/v1/fingerprints",
            Some(r#"{"prefix":"app/dev/"}"#),
            r#"path "app/dev/" { capabilities = ["list"] }"#,
            200,
            r#"path "app/dev2/" { capabilities = ["list"] }"#,
            &[],
        ),
        cp(
            &r::SECRET_COMPROMISE,
            "/api/v1/compromise/app/cp/compromise",
            Some(r#"{"version":1,"reason":"pasted in a ticket"}"#),
            r#"path "app/cp/compromise" { capabilities = ["rotate"] }"#,
            200,
            r#"path "app/cp/rotate" { capabilities = ["rotate"] }"#,
            &["/api/v1/metadata/app/cp/compromise"],
        ),
        cp(
            &r::SECRET_ROTATE,
            "/api/v1/rotate/app/cp/rotate",
            Some(r#"{"generate":"alnum:32"}"#),
            r#"path "app/cp/rotate" { capabilities = ["rotate"] }"#,
            200,
            r#"path "app/cp/rotate" { capabilities = ["read", "update"] }"#,
            &[
                "/api/v1/metadata/app/cp/rotate",
                "/api/v1/secrets/app/cp/rotate",
            ],
        ),
        cp(
            &r::SECRET_ROTATE_CANCEL,
            "/api/v1/rotate/app/cp/cancel",
            None,
            r#"path "app/cp/cancel" { capabilities = ["rotate"] }"#,
            200,
            r#"path "app/cp/cancel" { capabilities = ["update", "delete"] }"#,
            &["/api/v1/metadata/app/cp/cancel"],
        ),
        cp(
            &r::SECRET_PROMOTE,
            "/api/v1/promote/app/cp/promote",
            None,
            r#"path "app/cp/promote" { capabilities = ["rotate"] }"#,
            200,
            r#"path "app/cp/promote" { capabilities = ["update"] }"#,
            &[
                "/api/v1/metadata/app/cp/promote",
                "/api/v1/secrets/app/cp/promote",
            ],
        ),
        cp(
            &r::SECRET_EXPIRY,
            "/api/v1/expiry/app/cp/expiry",
            Some(r#"{"expires_in":"90d"}"#),
            r#"path "app/cp/expiry" { capabilities = ["update"] }"#,
            200,
            r#"path "app/cp/expiry" { capabilities = ["read", "create"] }"#,
            &["/api/v1/metadata/app/cp/expiry"],
        ),
        cp(
            &r::SECRET_ROLLBACK,
            "/api/v1/rollback/app/cp/rollback",
            Some(r#"{"version":1}"#),
            r#"path "app/cp/rollback" { capabilities = ["read", "update"] }"#,
            200,
            r#"path "app/cp/rollback" { capabilities = ["update"] }"#,
            &[
                "/api/v1/metadata/app/cp/rollback",
                "/api/v1/secrets/app/cp/rollback",
            ],
        ),
        cp(
            &r::SECRET_COPY,
            "/api/v1/copy",
            Some(r#"{"from":"app/cp/copy-from","to":"app/cp/copy-to"}"#),
            r#"path "app/cp/copy-from" { capabilities = ["read"] }
            path "app/cp/copy-to" { capabilities = ["create"] }"#,
            200,
            r#"path "app/cp/copy-from" { capabilities = ["read"] }
            path "app/cp/copy-to2" { capabilities = ["create"] }"#,
            &[
                "/api/v1/secrets/app/cp/copy-to",
                "/api/v1/metadata/app/cp/copy-from",
            ],
        ),
        cp(
            &r::SECRET_PROMOTE_ENV,
            "/api/v1/promote-env",
            Some(r#"{"from":"app/pe1/","to":"app/pe2/"}"#),
            r#"path "app/pe1/" { capabilities = ["list"] }
            path "app/pe2/" { capabilities = ["list"] }
            path "app/pe1/+" { capabilities = ["read", "list"] }
            path "app/pe2/+" { capabilities = ["read", "list"] }"#,
            200,
            r#"path "app/pe1/" { capabilities = ["list"] }
            path "app/pe3/" { capabilities = ["list"] }
            path "app/pe1/+" { capabilities = ["read", "list"] }
            path "app/pe2/+" { capabilities = ["read", "list"] }"#,
            &["/api/v1/list/app/pe2"],
        ),
        cp(
            &r::SECRET_LIST_ROOT,
            "/api/v1/list",
            None,
            r#"path "" { capabilities = ["list"] }"#,
            200,
            r#"path "app/" { capabilities = ["list"] }"#,
            &[],
        ),
        cp(
            &r::ROTATION_STATUS_ROOT,
            "/api/v1/rotation/status",
            None,
            r#"path "" { capabilities = ["list"] }"#,
            200,
            r#"path "app/" { capabilities = ["list"] }"#,
            &[],
        ),
        cp(
            &r::LIFECYCLE_SET,
            "/api/v1/sys/lifecycle",
            Some(r#"{"pattern":"app/cp/*","rotate_every":"90d"}"#),
            r#"path "sys/lifecycle" { capabilities = ["admin"] }"#,
            200,
            r#"path "sys/protected" { capabilities = ["admin"] }"#,
            &["/api/v1/sys/lifecycle"],
        ),
        cp(
            &r::LIFECYCLE_REMOVE,
            "/api/v1/sys/lifecycle?pattern=app/cp/*",
            None,
            r#"path "sys/lifecycle" { capabilities = ["admin"] }"#,
            204,
            r#"path "sys/lifecycle" { capabilities = ["read", "list", "update", "delete"] }"#,
            &["/api/v1/sys/lifecycle"],
        ),
        cp(
            &r::TOKEN_REVOKE,
            "/api/v1/auth/tokens/{victim}",
            None,
            r#"path "sys/tokens/*" { capabilities = ["admin"] }"#,
            204,
            r#"path "sys/tokens/acc_000000000000000000000000" { capabilities = ["admin"] }"#,
            &["/api/v1/auth/tokens/{victim}"],
        ),
        cp(
            &r::TOKEN_RENEW,
            "/api/v1/auth/tokens/{renewed}/renew",
            None,
            r#"path "sys/tokens/*" { capabilities = ["admin"] }"#,
            200,
            r#"path "sys/policies/*" { capabilities = ["admin"] }"#,
            &["/api/v1/auth/tokens/{renewed}"],
        ),
        cp(
            &r::JWT_ROLE_WRITE,
            "/api/v1/auth/jwt/roles/ci",
            Some(
                r#"{"issuer":"https://issuer.example","audience":"coffer","jwks":"{jwks}","bound_claims":{"sub":["x"]},"policies":["{grant}"]}"#,
            ),
            r#"path "sys/auth/jwt/ci" { capabilities = ["admin"] }"#,
            200,
            r#"path "sys/auth/jwt/cd" { capabilities = ["admin"] }"#,
            &["/api/v1/auth/jwt/roles"],
        ),
        cp(
            &r::JWT_ROLE_READ,
            "/api/v1/auth/jwt/roles/ci",
            None,
            r#"path "sys/auth/jwt/ci" { capabilities = ["admin"] }"#,
            200,
            r#"path "sys/auth/jwt/ci" { capabilities = ["read", "list"] }"#,
            &[],
        ),
        cp(
            &r::JWT_ROLE_DELETE,
            "/api/v1/auth/jwt/roles/ci",
            None,
            r#"path "sys/auth/jwt/ci" { capabilities = ["admin"] }"#,
            204,
            r#"path "sys/auth/jwt/ci" { capabilities = ["delete"] }"#,
            &["/api/v1/auth/jwt/roles/ci"],
        ),
        cp(
            &r::INVITE_CREATE,
            "/api/v1/auth/invites",
            Some(r#"{"policies":["{grant}"]}"#),
            r#"path "sys/invites" { capabilities = ["admin"] }"#,
            200,
            r#"path "sys/users/*" { capabilities = ["admin"] }"#,
            &["/api/v1/sys/users"],
        ),
        Counterpart {
            also: &["people"],
            ..cp(
                &r::USER_UPDATE,
                "/api/v1/sys/users/cp-alice",
                Some(r#"{"reset_totp":true}"#),
                r#"path "sys/users/cp-alice" { capabilities = ["admin"] }"#,
                200,
                r#"path "sys/users/cp-bob" { capabilities = ["admin"] }"#,
                &["/api/v1/sys/users/cp-alice"],
            )
        },
        Counterpart {
            also: &["people"],
            ..cp(
                &r::USER_DISABLE,
                "/api/v1/sys/users/cp-bob/disable",
                None,
                r#"path "sys/users/cp-bob" { capabilities = ["admin"] }"#,
                200,
                r#"path "sys/users/cp-alice" { capabilities = ["admin"] }"#,
                &["/api/v1/sys/users/cp-bob"],
            )
        },
        Counterpart {
            also: &["people"],
            ..cp(
                &r::USER_ENABLE,
                "/api/v1/sys/users/cp-bob/enable",
                None,
                r#"path "sys/users/cp-bob" { capabilities = ["admin"] }"#,
                200,
                r#"path "sys/users/cp-bob" { capabilities = ["update"] }"#,
                &["/api/v1/sys/users/cp-bob"],
            )
        },
        Counterpart {
            also: &["people"],
            ..cp(
                &r::USER_DELETE,
                "/api/v1/sys/users/cp-carol",
                None,
                r#"path "sys/users/cp-carol" { capabilities = ["admin"] }"#,
                204,
                r#"path "sys/users/cp-carol" { capabilities = ["delete"] }"#,
                &["/api/v1/sys/users/cp-carol"],
            )
        },
        cp(
            &r::PROTECTED_ADD,
            "/api/v1/sys/protected",
            Some(r#"{"pattern":"x/cp/*"}"#),
            r#"path "sys/protected" { capabilities = ["admin"] }"#,
            200,
            r#"path "sys/lifecycle" { capabilities = ["admin"] }"#,
            &["/api/v1/sys/protected"],
        ),
        cp(
            &r::PROTECTED_REMOVE,
            "/api/v1/sys/protected?pattern=x/cp/*",
            None,
            r#"path "sys/protected" { capabilities = ["admin"] }"#,
            204,
            r#"path "sys/protected" { capabilities = ["delete", "update"] }"#,
            &["/api/v1/sys/protected"],
        ),
        Counterpart {
            kind: Kind::Person,
            ..cp(
                &r::BREAKGLASS_GRANT,
                "/api/v1/sys/breakglass",
                Some(r#"{"path":"app/prod/db","reason":"INC-7 outage"}"#),
                r#"path "app/prod/db" { capabilities = ["breakglass"] }"#,
                200,
                r#"path "app/prod/api" { capabilities = ["breakglass"] }"#,
                &["/api/v1/sys/breakglass"],
            )
        },
        Counterpart {
            kind: Kind::Person,
            refused: None,
            ..cp(
                &r::TOTP_ENROLL,
                "/api/v1/auth/totp",
                None,
                r#"path "unrelated/filler" { capabilities = ["read"] }"#,
                200,
                "",
                &[],
            )
        },
        cp(
            &r::SHARE_CREATE,
            "/api/v1/shares",
            Some(
                r#"{"id":"BBBBBBBBBBBBBBBBBBBBBA","ciphertext":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","path":"app/dev/db","version":1}"#,
            ),
            r#"path "sys/shares" { capabilities = ["create"] }
            path "app/dev/db" { capabilities = ["read"] }"#,
            201,
            r#"path "sys/shares" { capabilities = ["create"] }
            path "app/dev/api" { capabilities = ["read"] }"#,
            &["/api/v1/shares"],
        ),
        cp(
            &r::SHARE_LIST,
            "/api/v1/shares",
            None,
            r#"path "sys/shares" { capabilities = ["create"] }"#,
            200,
            r#"path "sys/shares" { capabilities = ["read", "list"] }"#,
            &[],
        ),
        Counterpart {
            setup: Some((
                "POST",
                "/api/v1/shares",
                Some(r#"{"id":"{share}","ciphertext":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#),
            )),
            ..cp(
                &r::SHARE_REVOKE,
                "/api/v1/shares/{share}",
                None,
                r#"path "sys/shares" { capabilities = ["create"] }"#,
                204,
                r#"path "sys/shares" { capabilities = ["delete"] }"#,
                &["/api/v1/shares"],
            )
        },
        cp(
            &r::APPROLE_CREATE,
            "/api/v1/auth/approle/roles/batch",
            Some(r#"{"policies":["{grant}"]}"#),
            r#"path "sys/auth/approle/batch" { capabilities = ["admin"] }"#,
            200,
            r#"path "sys/auth/approle/batch2" { capabilities = ["admin"] }"#,
            &["/api/v1/auth/approle/roles"],
        ),
        cp(
            &r::APPROLE_READ,
            "/api/v1/auth/approle/roles/web",
            None,
            r#"path "sys/auth/approle/web" { capabilities = ["admin"] }"#,
            200,
            r#"path "sys/auth/approle/web" { capabilities = ["read", "list"] }"#,
            &[],
        ),
        cp(
            &r::APPROLE_SECRET_ID_CREATE,
            "/api/v1/auth/approle/roles/web/secret-ids",
            None,
            r#"path "sys/auth/approle/web" { capabilities = ["admin"] }"#,
            200,
            r#"path "sys/auth/approle/api" { capabilities = ["admin"] }"#,
            &["/api/v1/auth/approle/roles/web/secret-ids"],
        ),
        cp(
            &r::APPROLE_SECRET_ID_LIST,
            "/api/v1/auth/approle/roles/web/secret-ids",
            None,
            r#"path "sys/auth/approle/web" { capabilities = ["admin"] }"#,
            200,
            r#"path "sys/auth/approle/web" { capabilities = ["read", "list"] }"#,
            &[],
        ),
        cp(
            &r::APPROLE_SECRET_ID_REVOKE,
            "/api/v1/auth/approle/roles/web/secret-ids/revoke",
            Some(r#"{"accessor":"{secret-id-accessor}"}"#),
            r#"path "sys/auth/approle/web" { capabilities = ["admin"] }"#,
            204,
            r#"path "sys/auth/approle/api" { capabilities = ["admin"] }"#,
            &["/api/v1/auth/approle/roles/web/secret-ids"],
        ),
        cp(
            &r::APPROLE_DELETE,
            "/api/v1/auth/approle/roles/web",
            None,
            r#"path "sys/auth/approle/web" { capabilities = ["admin"] }"#,
            204,
            r#"path "sys/auth/approle/web" { capabilities = ["delete"] }"#,
            &["/api/v1/auth/approle/roles"],
        ),
        cp(
            &r::AUDIT_VERIFY,
            "/api/v1/sys/audit/verify",
            Some("{}"),
            r#"path "sys/audit" { capabilities = ["admin"] }"#,
            200,
            r#"path "sys/audit/" { capabilities = ["read", "list"] }"#,
            &[],
        ),
        cp(
            &r::AUDIT_HASH,
            "/api/v1/sys/audit/hash",
            Some(r#"{"value":"a value to tag"}"#),
            r#"path "sys/audit" { capabilities = ["admin"] }"#,
            200,
            r#"path "sys/lifecycle" { capabilities = ["admin"] }"#,
            &[],
        ),
        cp(
            &r::AUDIT_ROTATE,
            "/api/v1/sys/audit/rotate",
            None,
            r#"path "sys/audit" { capabilities = ["admin"] }"#,
            200,
            r#"path "sys/audits" { capabilities = ["admin"] }"#,
            &[],
        ),
        // Last: sealing stops every later request.
        cp(
            &r::SYS_SEAL,
            "/api/v1/sys/seal",
            None,
            r#"path "sys/seal" { capabilities = ["admin"] }"#,
            204,
            r#"path "sys/rotate" { capabilities = ["admin"] }"#,
            &["/api/v1/sys/status"],
        ),
    ]
};

/// Routes that need a token but have no allowed counterpart here, and why.
/// (Routes that require nothing, such as logins, are exempt by their
/// `Requires::Nothing`: no policy is involved.)
const NO_ALLOWED_COUNTERPART: &[(&coffer_api::routes::Route, &str)] = {
    use coffer_api::routes as r;
    &[
        // Allowed requests contact PostgreSQL (managing the two roles, or
        // reading a managed pair's state); route_requires.rs shows the
        // minimal grant gets past authorization, and the PostgreSQL tests
        // (coffer-pgroles, tests/in_process/node.rs) show the 2xx.
        (&r::POSTGRES_MANAGE, "needs a PostgreSQL server"),
        (&r::POSTGRES_READ, "needs a PostgreSQL-managed pair"),
        // A person's own one-time codes: any person may, no policy can
        // refuse them, and an allowed call needs a code from the enrolled
        // secret (console and totp tests do that).
        (
            &r::TOTP_CONFIRM,
            "needs a code from an enrolled TOTP secret",
        ),
        (
            &r::TOTP_DISABLE,
            "needs a code from an enrolled TOTP secret",
        ),
        // An allowed call needs a real gap in the log (a record lost while
        // the server was stopped); audit.rs makes one.
        (
            &r::AUDIT_ACKNOWLEDGE_GAP,
            "needs a real gap in the audit log",
        ),
    ]
};

/// What root sees of the whole server: every secret (deleted ones too)
/// and its metadata (versions, labels, expiry, compromise), policies,
/// protected prefixes, lifecycle rules, people, tokens, JWT and app roles,
/// break-glass grants and shares. A refused write must leave it as it was.
/// Root's reads change none of it.
fn state_snapshot(server: &Server, root: &str, extra: &[String]) -> Vec<(String, u16, String)> {
    let listing = ok(
        &server.http(
            "GET",
            "/api/v1/list?recursive=true&include_deleted=true&limit=1000",
            Some(root),
            None,
        ),
        "snapshot",
    );
    assert!(listing["next"].is_null(), "the snapshot needs one page");
    let metadata = listing["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("/api/v1/metadata/{}", e["name"].as_str().unwrap()));
    const WHOLE: &[&str] = &[
        "/api/v1/list?recursive=true&include_deleted=true",
        "/api/v1/sys/policies",
        "/api/v1/sys/protected",
        "/api/v1/sys/lifecycle",
        "/api/v1/sys/users",
        "/api/v1/auth/tokens",
        "/api/v1/auth/jwt/roles",
        "/api/v1/auth/approle/roles",
        "/api/v1/sys/breakglass",
        "/api/v1/shares",
        "/api/v1/sys/keyring",
    ];
    WHOLE
        .iter()
        .map(|u| u.to_string())
        .chain(metadata)
        .chain(extra.iter().cloned())
        .map(|url| {
            let r = server.http("GET", &url, Some(root), None);
            // An error names its request; that is not state.
            let mut text = r.text();
            if let Ok(mut v) = serde_json::from_str::<serde_json::Value>(&text)
                && let Some(e) = v.get_mut("error").and_then(|e| e.as_object_mut())
            {
                e.remove("request_id");
                text = v.to_string();
            }
            (url, r.status, text)
        })
        .collect()
}

/// The route a row's request goes to, when one template alone matches it
/// (a fixed segment, `self`, wins over a parameter as in the router).
fn route_of(method: &str, url: &str) -> Option<&'static coffer_api::routes::Route> {
    let matching: Vec<_> = coffer_api::routes::ALL
        .iter()
        .copied()
        .filter(|r| r.method.as_str() == method && matches_template(r.path, url))
        .collect();
    match matching.as_slice() {
        [one] => Some(one),
        many => many.iter().copied().find(|r| !r.path.contains('{')),
    }
}

/// Sends a request that must be refused with `expected` (401 or 403) and
/// checks it left exactly one audit record, a denial of the route's
/// operation, and, for a write, changed nothing root can see.
fn refused_changes_nothing(
    server: &Server,
    root: &str,
    (who, token): (&str, Option<&str>),
    (method, url, body): (&str, &str, Option<&str>),
    expected: u16,
    probes: &[String],
    failures: &mut Vec<String>,
) -> common::Response {
    let write = method != "GET";
    let before = write.then(|| state_snapshot(server, root, probes));
    let records = server.audit_records().len();
    let r = server.http(method, url, token, body.map(str::as_bytes));
    if r.status != expected {
        // The caller reports the status.
        return r;
    }
    // A refusal may raise an alert (a refused read of a protected path, a
    // burst of failures): that is the record of the refusal, not an effect
    // of the request, so alerts about this very request are set aside.
    let mut new = server.audit_records().split_off(records);
    let request_id = new.first().map(|rec| rec["request_id"].clone());
    new.retain(|rec| !(rec["type"] == "alert" && Some(&rec["request_id"]) == request_id.as_ref()));
    let op = route_of(method, url).map(|r| r.op);
    if new.len() != 1 || new[0]["outcome"] != "denied" || new[0]["status"] != expected {
        failures.push(format!(
            "{who} {method} {url}: the refusal left other audit records than one denial: {new:?}"
        ));
    } else if let Some(op) = op
        && new[0]["op"] != op.name
    {
        failures.push(format!(
            "{who} {method} {url}: denied record names {} not {}",
            new[0]["op"], op.name
        ));
    }
    if let Some(before) = before {
        let after = state_snapshot(server, root, probes);
        for (b, a) in before.iter().zip(&after) {
            if b != a {
                failures.push(format!(
                    "{who} {method} {url}: the refused write changed {}: {} {} -> {} {}",
                    b.0, b.1, b.2, a.1, a.2
                ));
            }
        }
    }
    r
}

/// A token of `kind` holding only the policy `name` (written from
/// `source` by root).
fn counterpart_token(
    f: &Fixture,
    root: &str,
    (kind, also): (Kind, &[&str]),
    name: &str,
    source: &str,
) -> String {
    let policies: Vec<&str> = std::iter::once(name).chain(also.iter().copied()).collect();
    let body = json!({ "policy": source }).to_string();
    ok(
        &f.server.http(
            "PUT",
            &format!("/api/v1/sys/policies/{name}"),
            Some(root),
            Some(body.as_bytes()),
        ),
        name,
    );
    match kind {
        Kind::Service => {
            let body = json!({ "policies": policies, "display_name": name }).to_string();
            let r = f.server.http(
                "POST",
                "/api/v1/auth/tokens",
                Some(root),
                Some(body.as_bytes()),
            );
            ok(&r, name)["token"].as_str().unwrap().to_string()
        }
        Kind::Person => {
            let body = json!({ "policies": policies }).to_string();
            let r = f.server.http(
                "POST",
                "/api/v1/auth/invites",
                Some(root),
                Some(body.as_bytes()),
            );
            let code = ok(&r, name)["code"].as_str().unwrap().to_string();
            let password = format!("correct horse battery {name}");
            let body = json!({ "code": code, "user": name, "password": password }).to_string();
            ok(
                &f.server.http(
                    "POST",
                    "/api/v1/auth/invites/accept",
                    None,
                    Some(body.as_bytes()),
                ),
                name,
            );
            let body = json!({ "user": name, "password": password }).to_string();
            let r = f
                .server
                .http("POST", "/api/v1/auth/login", None, Some(body.as_bytes()));
            ok(&r, name)["token"].as_str().unwrap().to_string()
        }
    }
}

/// Every counterpart: the refused request first (403, one denied record,
/// nothing changed), then the allowed one (its 2xx).
#[test]
fn every_route_has_an_allowed_counterpart_and_a_refusal_that_changes_nothing() {
    let (_dir, f) = setup();
    let root = f.token("root").unwrap();
    let put = |path: &str, body: &str| {
        ok(
            &f.server.http(
                "PUT",
                &format!("/api/v1/secrets/{path}"),
                Some(&root),
                Some(body.as_bytes()),
            ),
            path,
        );
    };
    for path in [
        "app/cp/compromise",
        "app/cp/rotate",
        "app/cp/cancel",
        "app/cp/promote",
        "app/cp/expiry",
        "app/cp/rollback",
        "app/cp/copy-from",
        "app/pe1/k",
        "app/pe2/k",
    ] {
        put(
            path,
            &json!({ "value": format!("value-of-{path}") }).to_string(),
        );
    }
    put("app/cp/rollback", r#"{"value":"value-of-rollback-two"}"#);
    // A staged version for the cancel and the promotion.
    for path in ["app/cp/cancel", "app/cp/promote"] {
        ok(
            &f.server.http(
                "POST",
                &format!("/api/v1/rotate/{path}"),
                Some(&root),
                Some(br#"{"generate":"alnum:32","stage":true}"#),
            ),
            path,
        );
    }
    // Tokens for the revocation and the renewal, a share to revoke, an app
    // role's secret id, a JWT key.
    let accessor = |body: &str| {
        let r = f.server.http(
            "POST",
            "/api/v1/auth/tokens",
            Some(&root),
            Some(body.as_bytes()),
        );
        ok(&r, "token")["accessor"].as_str().unwrap().to_string()
    };
    let victim = accessor(r#"{"policies":["dev-reader"]}"#);
    let renewed = accessor(r#"{"policies":["dev-reader"],"ttl":"1h"}"#);
    let share = "CCCCCCCCCCCCCCCCCCCCCA";
    // People for the user rows, holding a policy that grants nothing the
    // rows touch.
    ok(
        &f.server.http(
            "PUT",
            "/api/v1/sys/policies/people",
            Some(&root),
            Some(br#"{"policy":"path \"unrelated/filler\" { capabilities = [\"read\"] }"}"#),
        ),
        "people",
    );
    for user in ["cp-alice", "cp-bob", "cp-carol"] {
        let r = f.server.http(
            "POST",
            "/api/v1/auth/invites",
            Some(&root),
            Some(br#"{"policies":["people"]}"#),
        );
        let code = ok(&r, user)["code"].as_str().unwrap().to_string();
        let body = json!({ "code": code, "user": user, "password": format!("correct horse battery {user}") })
            .to_string();
        ok(
            &f.server.http(
                "POST",
                "/api/v1/auth/invites/accept",
                None,
                Some(body.as_bytes()),
            ),
            user,
        );
    }
    ok(
        &f.server.http(
            "PUT",
            "/api/v1/auth/approle/roles/web",
            Some(&root),
            Some(br#"{"policies":["dev-reader"]}"#),
        ),
        "app role",
    );
    let r = f.server.http(
        "POST",
        "/api/v1/auth/approle/roles/web/secret-ids",
        Some(&root),
        None,
    );
    let secret_id_accessor = ok(&r, "secret id")["accessor"]
        .as_str()
        .unwrap()
        .to_string();
    let key = crate::jwt_login::ed25519("ci");
    let jwks = json!({"keys": [key.jwk.clone()]}).to_string();
    let jwks = jwks.replace('"', "\\\"");

    let mut failures = Vec::new();
    for (n, row) in COUNTERPARTS.iter().enumerate() {
        let method = row.route.method.as_str();
        let grant_name = format!("cp-grant-{n}");
        let fill = |s: &str| {
            s.replace("{victim}", &victim)
                .replace("{renewed}", &renewed)
                .replace("{share}", share)
                .replace("{secret-id-accessor}", &secret_id_accessor)
                .replace("{jwks}", &jwks)
                .replace("{grant}", &grant_name)
        };
        let url = fill(row.url);
        let body = row.body.map(fill);
        assert!(
            matches_template(row.route.path, &url),
            "{method} {url} is not a request to {}",
            row.route.path
        );
        assert!((200..300).contains(&row.allowed), "{url}: {}", row.allowed);
        let token = counterpart_token(&f, &root, (row.kind, row.also), &grant_name, row.grant);
        if let Some((method, url, body)) = row.setup {
            let body = body.map(fill);
            let r = f.server.http(
                method,
                &fill(url),
                Some(&token),
                body.as_deref().map(str::as_bytes),
            );
            ok(&r, &format!("{grant_name}: setup {method} {url}"));
        }
        if let Some(refused) = row.refused {
            let name = format!("cp-refused-{n}");
            let token = counterpart_token(&f, &root, (row.kind, row.also), &name, refused);
            let probes: Vec<String> = row.probes.iter().map(|p| fill(p)).collect();
            let r = refused_changes_nothing(
                &f.server,
                &root,
                (&name, Some(&token)),
                (method, &url, body.as_deref()),
                403,
                &probes,
                &mut failures,
            );
            if r.status != 403 {
                failures.push(format!(
                    "{name} {method} {url}: expected 403, got {} {}",
                    r.status,
                    r.text()
                ));
            }
        }
        let r = f.server.http(
            method,
            &url,
            Some(&token),
            body.as_deref().map(str::as_bytes),
        );
        if r.status != row.allowed {
            failures.push(format!(
                "{grant_name} {method} {url}: expected {}, got {} {}",
                row.allowed,
                r.status,
                r.text()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
