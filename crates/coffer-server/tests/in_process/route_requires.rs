//! The route table's `Requires` held to what the server enforces.
//!
//! For every route of `coffer_api::routes::ALL`, the policies are derived
//! from the route's own `Requires` (not from a second list here): a policy
//! granting exactly what the entry says on the sample request's targets must
//! get past authorization (any answer but 403), and the same policy without
//! any one requirement (for `AnyOf`, without all of its alternatives) must be
//! refused with 403. Each alternative of an `AnyOf` must be enough alone (a
//! write's `create` and `update` each for the secrets it fits), `read`
//! must grant `read_metadata` as `list` does, and `self` must hold under a
//! `deny`. Routes that require nothing must answer a request without a
//! token with neither 401 nor 403; `ManagedToken` and `If(...)` are checked
//! for what they mean. Each route is tried on a node of its own,
//! so what one request changes (a seal, a revoked token, a destroyed
//! version) never decides another route's outcome.
//!
//! Every route needs a sample request below: a new route fails this test
//! until it has one.

use crate::common;

use std::collections::BTreeMap;

use coffer_api::routes::{self, ALL, Operation, Requires, Route, Target};
use common::{Mode, Response, Server, ok};
use serde_json::{Value, json};

/// The secret most samples act on.
const PATH: &str = "app/prod/db";
/// A second environment, for copies, bundles and promotions.
const STAGING: &str = "app/staging/db";
/// The secret holding a PostgreSQL administrator connection.
const PG_ADMIN: &str = "ops/pg-admin";
/// The person whose tokens make the requests (children of their login).
const USER: &str = "hugo";
/// A rule every test policy has, so no policy is empty; it matches nothing
/// the samples touch.
const FILLER: &str = r#"path "unrelated/filler" { capabilities = ["read"] }"#;

/// A sample request: the route, its URL parameters, a query string and a
/// body. In the body, `{policy}` is the name of the caller's policy and
/// `{invite}` an open invitation's code, `{role_id}` and `{secret_id}`
/// those of the app role `sample-role`.
type Sample = (
    &'static Route,
    &'static [&'static str],
    &'static str,
    Option<&'static str>,
);

const SAMPLES: &[Sample] = &[
    (&routes::SECRET_READ, &[PATH], "", None),
    (
        &routes::SECRET_WRITE,
        &[PATH],
        "",
        Some(r#"{"value":"a-new-value-for-prod"}"#),
    ),
    (&routes::SECRET_DELETE, &[PATH], "?versions=1", None),
    (
        &routes::SECRET_BUNDLE,
        &[],
        "",
        Some(r#"{"prefixes":["app/prod/"],"secrets":[{"path":"app/staging/db"}]}"#),
    ),
    (
        &routes::SECRET_IMPORT,
        &[],
        "",
        Some(
            r#"{"secrets":[{"path":"app/prod/db","value":"imported-one"},{"path":"app/prod/new","value":"imported-two"}]}"#,
        ),
    ),
    (
        &routes::SECRET_HISTORY_IMPORT,
        &["app/prod/migrated"],
        "",
        Some(
            r#"{"versions":[{"version":1,"created_at":"2024-01-02T03:04:05Z","state":"destroyed","state_at":"2024-02-01T00:00:00Z"},{"version":2,"created_at":"2024-03-01T00:00:00Z","state":"active","value":{"user":"app","password":"a-migrated-one"}}]}"#,
        ),
    ),
    (&routes::SECRET_METADATA, &[PATH], "", None),
    (&routes::SECRET_LIST_ROOT, &[], "", None),
    (&routes::SECRET_LIST, &["app/prod/"], "", None),
    (
        &routes::SECRET_UNDELETE,
        &[PATH],
        "",
        Some(r#"{"versions":[1]}"#),
    ),
    (
        &routes::SECRET_DESTROY,
        &[PATH],
        "",
        Some(r#"{"versions":[1]}"#),
    ),
    (
        &routes::SECRET_ROTATE,
        &[PATH],
        "",
        Some(r#"{"generate":"alnum:32"}"#),
    ),
    (&routes::SECRET_ROTATE_CANCEL, &[PATH], "", None),
    (&routes::SECRET_PROMOTE, &[PATH], "", None),
    (
        &routes::POSTGRES_MANAGE,
        &["app/prod/pg"],
        "",
        Some(r#"{"admin":"ops/pg-admin","roles":["app_blue","app_green"]}"#),
    ),
    (&routes::POSTGRES_READ, &[PATH], "", None),
    (
        &routes::SECRET_EXPIRY,
        &[PATH],
        "",
        Some(r#"{"expires_in":"90d"}"#),
    ),
    (
        &routes::SECRET_FINGERPRINTS,
        &[],
        "",
        Some(r#"{"prefix":"app/prod/"}"#),
    ),
    (
        &routes::SECRET_COMPROMISE,
        &[PATH],
        "",
        Some(r#"{"version":1,"reason":"pasted in a ticket"}"#),
    ),
    (
        &routes::SECRET_ROLLBACK,
        &[PATH],
        "",
        Some(r#"{"version":1}"#),
    ),
    (
        &routes::SECRET_COPY,
        &[],
        "",
        Some(r#"{"from":"app/prod/db","to":"app/prod/copy","move":true}"#),
    ),
    (
        &routes::SECRET_PROMOTE_ENV,
        &[],
        "",
        Some(
            r#"{"from":"app/staging/","to":"app/prod/","apply":[{"name":"db","action":"update","from_version":1,"to_version":1}]}"#,
        ),
    ),
    (&routes::ROTATION_STATUS_ROOT, &[], "", None),
    (&routes::ROTATION_STATUS, &["app/prod/"], "", None),
    (&routes::LIFECYCLE_LIST, &[], "", None),
    (
        &routes::LIFECYCLE_SET,
        &[],
        "",
        Some(r#"{"pattern":"app/*","rotate_every":"90d"}"#),
    ),
    (&routes::LIFECYCLE_REMOVE, &[], "?pattern=app/*", None),
    (&routes::SYS_HEALTH, &[], "", None),
    (&routes::SYS_STATUS, &[], "", None),
    (
        &routes::SYS_INIT,
        &[],
        "",
        Some(r#"{"shares":1,"threshold":1}"#),
    ),
    (&routes::SYS_UNSEAL, &[], "", Some(r#"{"reset":true}"#)),
    (&routes::SYS_SEAL, &[], "", None),
    (&routes::SYS_ROTATE, &[], "", None),
    (&routes::SYS_KEYRING, &[], "", None),
    (&routes::SYS_METRICS, &[], "", None),
    (&routes::SYS_BACKUP, &[], "", None),
    (&routes::SYS_OPENAPI, &[], "", None),
    (&routes::POLICY_LIST, &[], "", None),
    (&routes::POLICY_READ, &["some-policy"], "", None),
    (
        &routes::POLICY_WRITE,
        &["some-policy"],
        "",
        // Within the writer's own capabilities: a policy may not grant
        // what its writer lacks.
        Some(r#"{"policy":"path \"sys/policies/some-policy\" { capabilities = [\"admin\"] }"}"#),
    ),
    (&routes::POLICY_DELETE, &["some-policy"], "", None),
    (&routes::TOKEN_LIST, &[], "", None),
    (
        &routes::TOKEN_CREATE,
        &[],
        "",
        Some(r#"{"policies":["{policy}"],"ttl":"1h"}"#),
    ),
    // The `ManagedToken` routes take an accessor the test chooses.
    (&routes::TOKEN_LOOKUP, &[], "", None),
    (&routes::TOKEN_REVOKE, &[], "", None),
    (&routes::TOKEN_RENEW, &[], "", None),
    (&routes::TOKEN_LOOKUP_SELF, &[], "", None),
    (&routes::TOKEN_REVOKE_SELF, &[], "", None),
    (&routes::TOKEN_RENEW_SELF, &[], "", None),
    (
        &routes::AUTH_LOGIN,
        &[],
        "",
        Some(r#"{"user":"hugo","password":"correct horse battery hugo"}"#),
    ),
    (&routes::JWT_ROLE_LIST, &[], "", None),
    (&routes::JWT_ROLE_READ, &["some-role"], "", None),
    (
        &routes::JWT_ROLE_WRITE,
        &["some-role"],
        "",
        Some(
            r#"{"issuer":"https://issuer.example","audience":"coffer","jwks_url":"https://issuer.example/jwks","bound_claims":{"sub":["x"]},"policies":["{policy}"]}"#,
        ),
    ),
    (&routes::JWT_ROLE_DELETE, &["some-role"], "", None),
    // A JWT role `ci` whose key signed `{jwt}` is written at start.
    (
        &routes::AUTH_JWT_LOGIN,
        &[],
        "",
        Some(r#"{"role":"ci","jwt":"{jwt}"}"#),
    ),
    (
        &routes::INVITE_CREATE,
        &[],
        "",
        Some(r#"{"policies":["{policy}"]}"#),
    ),
    (
        &routes::INVITE_ACCEPT,
        &[],
        "",
        Some(r#"{"code":"{invite}","user":"ivy","password":"correct horse battery ivy"}"#),
    ),
    (&routes::TOTP_ENROLL, &[], "", None),
    (&routes::TOTP_CONFIRM, &[], "", Some(r#"{"code":"123456"}"#)),
    (&routes::TOTP_DISABLE, &[], "", Some(r#"{"code":"123456"}"#)),
    (&routes::USER_LIST, &[], "", None),
    (&routes::USER_READ, &["ivy"], "", None),
    (
        &routes::USER_UPDATE,
        &["ivy"],
        "",
        Some(r#"{"reset_totp":true}"#),
    ),
    (&routes::USER_DELETE, &["ivy"], "", None),
    (&routes::USER_DISABLE, &["ivy"], "", None),
    (&routes::USER_ENABLE, &["ivy"], "", None),
    (&routes::PROTECTED_LIST, &[], "", None),
    (
        &routes::PROTECTED_ADD,
        &[],
        "",
        Some(r#"{"pattern":"app/prod/*"}"#),
    ),
    (&routes::PROTECTED_REMOVE, &[], "?pattern=app/prod/*", None),
    (&routes::BREAKGLASS_LIST, &[], "", None),
    (
        &routes::BREAKGLASS_GRANT,
        &[],
        "",
        Some(r#"{"path":"app/prod/db","reason":"the pager went off"}"#),
    ),
    (
        &routes::SHARE_CREATE,
        &[],
        "",
        Some(
            r#"{"id":"AAAAAAAAAAAAAAAAAAAAAA","ciphertext":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","path":"app/prod/db","version":1}"#,
        ),
    ),
    (&routes::SHARE_LIST, &[], "", None),
    (&routes::SHARE_REVOKE, &["AAAAAAAAAAAAAAAAAAAAAA"], "", None),
    (&routes::SHARE_OPEN, &["AAAAAAAAAAAAAAAAAAAAAA"], "", None),
    (
        &routes::APPROLE_LOGIN,
        &[],
        "",
        Some(r#"{"role_id":"{role_id}","secret_id":"{secret_id}"}"#),
    ),
    (&routes::APPROLE_LIST, &[], "", None),
    (&routes::APPROLE_READ, &["sample-role"], "", None),
    (
        &routes::APPROLE_CREATE,
        &["new-role"],
        "",
        Some(r#"{"policies":["{policy}"]}"#),
    ),
    (&routes::APPROLE_DELETE, &["sample-role"], "", None),
    (
        &routes::APPROLE_SECRET_ID_CREATE,
        &["sample-role"],
        "",
        None,
    ),
    (&routes::APPROLE_SECRET_ID_LIST, &["sample-role"], "", None),
    (
        &routes::APPROLE_SECRET_ID_REVOKE,
        &["sample-role"],
        "",
        Some(r#"{"accessor":"sia_AAAAAAAAAAAAAAAAAAAAAAAA"}"#),
    ),
    (&routes::AUDIT_VERIFY, &[], "", Some("{}")),
    (&routes::AUDIT_QUERY, &[], "", None),
    (&routes::AUDIT_READERS, &[], "?path=app/prod/db", None),
    (
        &routes::AUDIT_HASH,
        &[],
        "",
        Some(r#"{"value":"a value to tag"}"#),
    ),
    (&routes::AUDIT_ROTATE, &[], "", None),
    (
        &routes::AUDIT_ACKNOWLEDGE_GAP,
        &[],
        "",
        Some(r#"{"record":1,"reason":"a test gap"}"#),
    ),
];

/// One requirement of a request: any one of these (capability, target)
/// pairs satisfies it.
#[derive(Debug, Clone, PartialEq)]
struct Need {
    any_of: Vec<(Operation, Target)>,
}

/// A rule of a test policy: a capability on a pattern.
type Grant = (&'static str, String);

/// The requirements `requires` makes of a request with `body`: `AllOf`
/// flattened, `If` included when the body sets its field.
fn needs(requires: &Requires, body: &Value, out: &mut Vec<Need>) {
    match requires {
        Requires::Nothing | Requires::ManagedToken => {}
        Requires::Allow(cap, target) => out.push(Need {
            any_of: vec![(*cap, *target)],
        }),
        Requires::AllOf(all) => {
            for r in *all {
                needs(r, body, out);
            }
        }
        Requires::AnyOf(alternatives) => out.push(Need {
            any_of: alternatives
                .iter()
                .map(|r| match r {
                    Requires::Allow(cap, target) => (*cap, *target),
                    other => panic!("AnyOf of {other:?}: only alternatives of Allow are tested"),
                })
                .collect(),
        }),
        Requires::If(field, inner) => {
            if body_sets(body, field) {
                needs(inner, body, out);
            }
        }
    }
}

/// Whether the body sets `field`: a flag that is true, or any other value
/// that is present (not `null`).
fn body_sets(body: &Value, field: &str) -> bool {
    !matches!(
        body.get(field),
        None | Some(Value::Null | Value::Bool(false))
    )
}

/// The targets `target` names in a request, as policy patterns.
fn patterns(target: Target, params: &[&str], body: &Value) -> Vec<String> {
    let strings = |v: &Value| -> Vec<String> {
        match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(items) => items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    };
    let found = match target {
        Target::UrlPath | Target::UrlPrefix => {
            params.first().map(|p| p.to_string()).into_iter().collect()
        }
        Target::BodyPaths => body["secrets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["path"].as_str().map(str::to_string))
            .collect(),
        Target::BodyPrefixes => strings(&body["prefixes"]),
        Target::BodyField(field) => strings(&body[field]),
        // `+` is one segment: exactly the secrets directly below.
        Target::Below(field) => strings(&body[field])
            .into_iter()
            .map(|prefix| format!("{prefix}+"))
            .collect(),
        Target::Sys(target) => vec![target.to_string()],
        Target::SysNamed(prefix) => vec![format!("{prefix}{}", params[0])],
    };
    // The root has no URL parameter: its pattern is the empty one.
    if found.is_empty() && target == Target::UrlPrefix {
        return vec![String::new()];
    }
    assert!(
        !found.is_empty(),
        "the sample names no target for {target:?}"
    );
    found
}

/// The policy rules that satisfy `need`, every alternative of it.
fn grants(need: &Need, params: &[&str], body: &Value) -> Vec<Grant> {
    let mut out = Vec::new();
    for (cap, target) in &need.any_of {
        let capability = match cap {
            // Every token holds `self`: no policy grants it.
            Operation::SelfService => continue,
            // `read` or `list` grants it; the weaker is enough.
            Operation::ReadMetadata => "list",
            other => other.name(),
        };
        for pattern in patterns(*target, params, body) {
            out.push((capability, pattern));
        }
    }
    out
}

/// What every policy derived for a request holds besides its needs: the
/// secrets a `Below` target covers are the ones a listing shows the caller,
/// so they are made visible (`list` on each, which reveals no value).
fn baseline(requires: &[Need], params: &[&str], body: &Value) -> Vec<Grant> {
    let mut out = Vec::new();
    for need in requires {
        for (_, target) in &need.any_of {
            if let Target::Below(_) = target {
                for pattern in patterns(*target, params, body) {
                    out.push(("list", pattern));
                }
            }
        }
    }
    out
}

/// A policy's source from its rules.
fn policy_source(grants: &[Grant]) -> String {
    let mut by_pattern: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (cap, pattern) in grants {
        let caps = by_pattern.entry(pattern).or_default();
        if !caps.contains(cap) {
            caps.push(cap);
        }
    }
    let mut source = String::from(FILLER);
    for (pattern, caps) in by_pattern {
        let caps: Vec<String> = caps.iter().map(|c| format!("{c:?}")).collect();
        source.push_str(&format!(
            "\npath {pattern:?} {{ capabilities = [{}] }}",
            caps.join(", ")
        ));
    }
    source
}

/// A node with the samples' state: secrets in two environments and a
/// PostgreSQL administrator secret, a person (`hugo`, with the root
/// policy) whose tokens make the requests, an open invitation and a
/// service token of the root's.
struct Node {
    _dir: tempfile::TempDir,
    server: Server,
    root: String,
    person: String,
    invite: String,
    /// The accessor of a token that is not the person's (the root's
    /// child).
    other: String,
    /// The role id and a secret id of the app role `sample-role`.
    approle: (String, String),
    /// A JWT the role `ci` accepts.
    jwt: String,
    policies: usize,
}

impl Node {
    fn start() -> Node {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(dir.path(), Mode::Dev);
        let root = server.root_token();
        for (path, value) in [
            (PATH, "prod-value-one"),
            (STAGING, "staging-value-one"),
            (
                PG_ADMIN,
                "postgres://admin:not-a-real-password@127.0.0.1:9/postgres",
            ),
        ] {
            let body = json!({ "value": value }).to_string();
            let url = routes::SECRET_WRITE.url(&[path]);
            ok(
                &server.http("PUT", &url, Some(&root), Some(body.as_bytes())),
                path,
            );
        }
        let invite = |policies: Value| -> String {
            let body = json!({ "policies": policies }).to_string();
            let r = server.http(
                "POST",
                routes::INVITE_CREATE.path,
                Some(&root),
                Some(body.as_bytes()),
            );
            ok(&r, "invite")["code"].as_str().unwrap().to_string()
        };
        let code = invite(json!(["root"]));
        let password = format!("correct horse battery {USER}");
        let body = json!({ "code": code, "user": USER, "password": password }).to_string();
        ok(
            &server.http(
                "POST",
                routes::INVITE_ACCEPT.path,
                None,
                Some(body.as_bytes()),
            ),
            "accept",
        );
        let body = json!({ "user": USER, "password": password }).to_string();
        let r = server.http("POST", routes::AUTH_LOGIN.path, None, Some(body.as_bytes()));
        let person = ok(&r, "login")["token"].as_str().unwrap().to_string();
        let body = json!({ "policy": FILLER }).to_string();
        let url = routes::POLICY_WRITE.url(&["filler"]);
        ok(
            &server.http("PUT", &url, Some(&root), Some(body.as_bytes())),
            "filler policy",
        );
        let open = invite(json!(["filler"]));
        let (_, other) = token(&server, &root, &["root"]);
        let body = json!({ "policies": ["filler"], "secret_id_uses": 10 }).to_string();
        let url = routes::APPROLE_CREATE.url(&["sample-role"]);
        let r = server.http("PUT", &url, Some(&root), Some(body.as_bytes()));
        let role_id = ok(&r, "app role")["role_id"].as_str().unwrap().to_string();
        let url = routes::APPROLE_SECRET_ID_CREATE.url(&["sample-role"]);
        let r = server.http("POST", &url, Some(&root), None);
        let secret_id = ok(&r, "secret id")["secret_id"]
            .as_str()
            .unwrap()
            .to_string();
        let key = crate::jwt_login::ed25519("ci");
        let role = json!({
            "preset": "github",
            "issuer": "https://issuer.example",
            "audience": crate::jwt_login::AUDIENCE,
            "jwks": json!({"keys": [key.jwk.clone()]}).to_string(),
            "bound_claims": {"repository": ["acme/api"], "ref": ["refs/heads/main"]},
            "policies": ["filler"],
        })
        .to_string();
        ok(
            &server.http(
                "PUT",
                &routes::JWT_ROLE_WRITE.url(&["ci"]),
                Some(&root),
                Some(role.as_bytes()),
            ),
            "JWT role",
        );
        let jwt = crate::jwt_login::mint(&key, &crate::jwt_login::claims("https://issuer.example"));
        Node {
            _dir: dir,
            server,
            root,
            person,
            invite: open,
            other,
            approle: (role_id, secret_id),
            jwt,
            policies: 0,
        }
    }

    /// A new policy with these rules, and the name it was stored under.
    fn policy(&mut self, grants: &[Grant]) -> String {
        self.policies += 1;
        let name = format!("case-{}", self.policies);
        let body = json!({ "policy": policy_source(grants) }).to_string();
        let url = routes::POLICY_WRITE.url(&[&name]);
        ok(
            &self
                .server
                .http("PUT", &url, Some(&self.root), Some(body.as_bytes())),
            &format!("policy {name}"),
        );
        name
    }

    /// A token of the person's with a new policy of these rules only, its
    /// accessor and the policy's name.
    fn caller(&mut self, grants: &[Grant]) -> (String, String, String) {
        let name = self.policy(grants);
        let (token, accessor) = token(&self.server, &self.person, &[&name]);
        (token, accessor, name)
    }

    /// Sends a route's sample request (with `body`) with a new token of
    /// the person's holding a policy of these rules only.
    fn attempt(&mut self, sample: &Sample, grants: &[Grant], body: Option<&Value>) -> Response {
        let (token, _, policy) = self.caller(grants);
        self.send(sample, sample.1, Some(&token), &policy, body)
    }

    /// Sends a route's sample request.
    fn send(
        &self,
        sample: &Sample,
        params: &[&str],
        token: Option<&str>,
        policy: &str,
        body: Option<&Value>,
    ) -> Response {
        let (route, _, query, _) = sample;
        let url = format!("{}{query}", route.url(params));
        let body = body.map(|b| {
            b.to_string()
                .replace("{policy}", policy)
                .replace("{invite}", &self.invite)
                .replace("{role_id}", &self.approle.0)
                .replace("{secret_id}", &self.approle.1)
                .replace("{jwt}", &self.jwt)
        });
        self.server.http(
            route.method.as_str(),
            &url,
            token,
            body.as_deref().map(str::as_bytes),
        )
    }
}

/// A child token of `parent`'s with these policies, and its accessor.
fn token(server: &Server, parent: &str, policies: &[&str]) -> (String, String) {
    let body = json!({ "policies": policies }).to_string();
    let r = server.http(
        "POST",
        routes::TOKEN_CREATE.path,
        Some(parent),
        Some(body.as_bytes()),
    );
    let created = ok(&r, "token");
    (
        created["token"].as_str().unwrap().to_string(),
        created["accessor"].as_str().unwrap().to_string(),
    )
}

fn sample(route: &Route) -> &'static Sample {
    SAMPLES
        .iter()
        .find(|(r, ..)| *r == route)
        .unwrap_or_else(|| {
            panic!(
                "{} {} ({}) has no sample request in this test: add one",
                route.method.as_str(),
                route.path,
                route.op.name
            )
        })
}

fn describe(route: &Route) -> String {
    format!(
        "{} {} ({})",
        route.method.as_str(),
        route.path,
        route.op.name
    )
}

/// Whether authorization refused the request. A 401 counts too: the
/// callers here hold valid tokens, so it would mean the test lost its
/// caller, and must not pass for "authorized".
fn refused(r: &Response) -> bool {
    r.status == 403 || r.status == 401
}

/// Checks one route whose `Requires` names capabilities: the derived
/// policy passes, and each requirement left out is refused.
fn check_capabilities(sample: &Sample, failures: &mut Vec<String>) {
    let (route, params, _, body) = sample;
    let body_value: Value = body.map_or(Value::Null, |b| serde_json::from_str(b).unwrap());
    let mut all = Vec::new();
    needs(&route.op.requires, &body_value, &mut all);
    let base = baseline(&all, params, &body_value);
    let full: Vec<Grant> = base
        .iter()
        .cloned()
        .chain(all.iter().flat_map(|n| grants(n, params, &body_value)))
        .collect();
    let mut node = Node::start();
    // Each requirement left out first: a refusal changes nothing.
    for (i, need) in all.iter().enumerate() {
        let removed = grants(need, params, &body_value);
        if removed.is_empty() {
            continue; // `self`: nothing to take away
        }
        let rest: Vec<Grant> = base
            .iter()
            .cloned()
            .chain(
                all.iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .flat_map(|(_, n)| grants(n, params, &body_value)),
            )
            .collect();
        assert!(
            removed.iter().all(|g| !rest.contains(g)),
            "{}: the sample cannot take {need:?} away alone",
            describe(route)
        );
        let r = node.attempt(sample, &rest, body_value_ref(&body_value));
        println!("{}: without {need:?}: {}", describe(route), r.status);
        if !(r.status == 403 && r.error_code() == "forbidden") {
            failures.push(format!(
                "{}: without {need:?} (policy: {}) the server answered {} {}, not 403 forbidden",
                describe(route),
                policy_source(&rest),
                r.status,
                r.text()
            ));
        }
    }
    // `If`: without its field, what it adds is not needed.
    if let Some((field, inner)) = conditional(&route.op.requires) {
        let mut without_field = body_value.clone();
        without_field.as_object_mut().unwrap().remove(field);
        let mut added = Vec::new();
        needs(inner, &body_value, &mut added);
        let rest: Vec<Grant> = full
            .iter()
            .filter(|g| {
                !added
                    .iter()
                    .any(|n| grants(n, params, &body_value).contains(g))
            })
            .cloned()
            .collect();
        // On a node of its own: the request may act.
        let mut node = Node::start();
        let r = node.attempt(sample, &rest, Some(&without_field));
        println!("{}: without `{field}`: {}", describe(route), r.status);
        if refused(&r) {
            failures.push(format!(
                "{}: without `{field}` in the body, (policy: {}) was refused: {}",
                describe(route),
                policy_source(&rest),
                r.text()
            ));
        }
    }
    // `AnyOf`: one alternative is enough.
    for (i, need) in all.iter().enumerate() {
        if need.any_of.len() < 2 {
            continue;
        }
        let others: Vec<Grant> = base
            .iter()
            .cloned()
            .chain(
                all.iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .flat_map(|(_, n)| grants(n, params, &body_value)),
            )
            .collect();
        let writes = need
            .any_of
            .iter()
            .all(|(cap, _)| matches!(cap, Operation::Create | Operation::Update));
        let alternatives: Vec<Vec<Grant>> = if writes {
            // A write's `create` and `update` are each enough for the
            // secrets they fit: one policy, with `create` where the secret
            // does not exist yet and `update` where it does.
            vec![fitting_writes(&node, need, params, &body_value)]
        } else {
            need.any_of
                .iter()
                .map(|alternative| {
                    let need = Need {
                        any_of: vec![*alternative],
                    };
                    grants(&need, params, &body_value)
                })
                .collect()
        };
        for alternative in alternatives {
            if alternative.is_empty() {
                continue;
            }
            let mut node = Node::start();
            let alone: Vec<Grant> = others.iter().cloned().chain(alternative.clone()).collect();
            let r = node.attempt(sample, &alone, body_value_ref(&body_value));
            println!(
                "{}: with only {alternative:?}: {}",
                describe(route),
                r.status
            );
            if refused(&r) {
                failures.push(format!(
                    "{}: {alternative:?} is one alternative of {need:?}, but (policy: {}) was refused: {}",
                    describe(route),
                    policy_source(&alone),
                    r.text()
                ));
            }
        }
    }
    // `read_metadata` is granted by `read` as well as by `list`.
    let by_read: Vec<Grant> = full
        .iter()
        .map(|(cap, pattern)| {
            let metadata = all.iter().any(|n| {
                n.any_of.iter().any(|(c, t)| {
                    *c == Operation::ReadMetadata
                        && patterns(*t, params, &body_value).contains(pattern)
                })
            });
            (
                if metadata && *cap == "list" {
                    "read"
                } else {
                    cap
                },
                pattern.clone(),
            )
        })
        .collect();
    if by_read != full {
        let mut node = Node::start();
        let r = node.attempt(sample, &by_read, body_value_ref(&body_value));
        println!("{}: read_metadata by read: {}", describe(route), r.status);
        if refused(&r) {
            failures.push(format!(
                "{}: `read` grants read_metadata, but (policy: {}) was refused: {}",
                describe(route),
                policy_source(&by_read),
                r.text()
            ));
        }
    }
    // `self` is every token's: a `deny` on its target takes nothing away.
    let denied: Vec<Grant> = all
        .iter()
        .flat_map(|n| &n.any_of)
        .filter(|(cap, _)| *cap == Operation::SelfService)
        .flat_map(|(_, target)| patterns(*target, params, &body_value))
        .map(|pattern| ("deny", pattern))
        .collect();
    if !denied.is_empty() {
        let mut node = Node::start();
        let with_deny: Vec<Grant> = full.iter().cloned().chain(denied).collect();
        let r = node.attempt(sample, &with_deny, body_value_ref(&body_value));
        println!("{}: with `self` denied: {}", describe(route), r.status);
        if refused(&r) {
            failures.push(format!(
                "{}: `self` needs no policy, but (policy: {}) was refused: {}",
                describe(route),
                policy_source(&with_deny),
                r.text()
            ));
        }
    }
    let r = node.attempt(sample, &full, body_value_ref(&body_value));
    println!("{}: as the table says: {}", describe(route), r.status);
    if refused(&r) {
        failures.push(format!(
            "{}: the table's requirements (policy: {}) were refused: {}",
            describe(route),
            policy_source(&full),
            r.text()
        ));
    }
}

/// For a write's `create` and `update` alternatives on concrete paths, the
/// rules that fit each path on the node as the sample finds it: `update`
/// where the secret exists, `create` where it does not. Targets below a
/// prefix name no one secret; they are left out.
fn fitting_writes(node: &Node, need: &Need, params: &[&str], body: &Value) -> Vec<Grant> {
    let mut out = Vec::new();
    for (cap, target) in &need.any_of {
        if let Target::Below(_) = target {
            continue;
        }
        for path in patterns(*target, params, body) {
            let url = routes::SECRET_METADATA.url(&[&path]);
            let exists = ok_or_missing(&node.server.http("GET", &url, Some(&node.root), None));
            if (*cap == Operation::Update) == exists {
                out.push((cap.name(), path));
            }
        }
    }
    out
}

/// Whether the secret a metadata read asked for exists.
fn ok_or_missing(r: &Response) -> bool {
    match r.status {
        200 => true,
        404 => false,
        other => panic!("metadata: {other} {}", r.text()),
    }
}

fn body_value_ref(v: &Value) -> Option<&Value> {
    (!v.is_null()).then_some(v)
}

/// The first `If` of a `Requires`, with what it adds.
fn conditional(requires: &Requires) -> Option<(&'static str, &'static Requires)> {
    match requires {
        Requires::If(field, inner) => Some((field, inner)),
        Requires::AllOf(all) | Requires::AnyOf(all) => all.iter().find_map(conditional),
        _ => None,
    }
}

/// Checks a `ManagedToken` route: the caller's own token, one it created
/// and one of the same person need no capability; another identity's token
/// is refused unless the caller holds `admin` on `sys/tokens/ACCESSOR`.
fn check_managed_token(sample: &Sample, failures: &mut Vec<String>) {
    let (route, ..) = sample;
    let mut node = Node::start();
    let mut expect =
        |node: &Node, what: &str, accessor: &str, token: &str, policy: &str, allowed: bool| {
            let r = node.send(sample, &[accessor], Some(token), policy, None);
            println!("{}: {what}: {}", describe(route), r.status);
            let as_expected = if allowed {
                !refused(&r)
            } else {
                r.status == 403 && r.error_code() == "forbidden"
            };
            if !as_expected {
                failures.push(format!(
                    "{}: {what}: expected {}, got {} {}",
                    describe(route),
                    if allowed { "not 403" } else { "403" },
                    r.status,
                    r.text()
                ));
            }
        };
    let other = node.other.clone();
    let (token, _, policy) = node.caller(&[]);
    expect(
        &node,
        "another identity's token, no capability",
        &other,
        &token,
        &policy,
        false,
    );
    let admin_elsewhere = [("admin", "sys/tokens/acc_elsewhere".to_string())];
    let (token, _, policy) = node.caller(&admin_elsewhere);
    expect(
        &node,
        "another identity's token, admin of another token",
        &other,
        &token,
        &policy,
        false,
    );
    let (token, _, policy) = node.caller(&[]);
    let (_, child) = self::token(&node.server, &token, &[&policy]);
    expect(
        &node,
        "a token the caller created",
        &child,
        &token,
        &policy,
        true,
    );
    let (_, sibling, _) = node.caller(&[]);
    let (token, _, policy) = node.caller(&[]);
    expect(
        &node,
        "a token of the same person",
        &sibling,
        &token,
        &policy,
        true,
    );
    let (token, own, policy) = node.caller(&[]);
    expect(&node, "the caller's own token", &own, &token, &policy, true);
    let admin = [("admin", format!("sys/tokens/{other}"))];
    let (token, _, policy) = node.caller(&admin);
    expect(
        &node,
        "another identity's token, admin of it",
        &other,
        &token,
        &policy,
        true,
    );
}

/// Checks a route that requires nothing: no token is asked for.
fn check_open(sample: &Sample, failures: &mut Vec<String>) {
    let (route, params, _, body) = sample;
    let node = Node::start();
    let body_value: Option<Value> = body.map(|b| serde_json::from_str(b).unwrap());
    let r = node.send(sample, params, None, "", body_value.as_ref());
    println!("{}: without a token: {}", describe(route), r.status);
    if r.status == 401 || r.status == 403 {
        failures.push(format!(
            "{}: requires nothing, but without a token the server answered {} {}",
            describe(route),
            r.status,
            r.text()
        ));
    }
}

#[test]
fn every_route_requires_what_the_table_says() {
    let mut failures = Vec::new();
    for route in ALL {
        let sample = sample(route);
        match route.op.requires {
            Requires::Nothing => check_open(sample, &mut failures),
            Requires::ManagedToken => check_managed_token(sample, &mut failures),
            _ => check_capabilities(sample, &mut failures),
        }
    }
    assert!(
        failures.is_empty(),
        "the route table and the server disagree:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_sample_is_of_a_route_of_the_table_and_only_one() {
    for (i, (route, ..)) in SAMPLES.iter().enumerate() {
        assert!(
            ALL.contains(route),
            "{} is not in the table",
            describe(route)
        );
        assert!(
            SAMPLES[..i].iter().all(|(r, ..)| r != route),
            "{} has two samples",
            describe(route)
        );
    }
}
