//! Tokens, users, protected environments and break-glass through the
//! router in-process: names coffer reserves, who wrote each version, and
//! text that would rewrite what people see. (Lifecycles that need the CLI,
//! the clock or the sweeper are tested against the binary in coffer-cli's
//! `tests/access.rs`.)

use crate::common;

use common::{Mode, Server, ok};
use serde_json::json;

fn put_policy(server: &Server, root: &str, name: &str, source: &str) {
    let body = json!({ "policy": source }).to_string();
    ok(
        &server.http(
            "PUT",
            &format!("/api/v1/sys/policies/{name}"),
            Some(root),
            Some(body.as_bytes()),
        ),
        name,
    );
}

fn put_secret(server: &Server, root: &str, path: &str, value: &str) {
    let body = json!({ "value": value }).to_string();
    ok(
        &server.http(
            "PUT",
            &format!("/api/v1/secrets/{path}"),
            Some(root),
            Some(body.as_bytes()),
        ),
        path,
    );
}

/// Invites `user` with `policies`, accepts with `password`, and returns a login token.
fn join(server: &Server, root: &str, user: &str, password: &str, policies: &[&str]) -> String {
    let body = json!({ "policies": policies }).to_string();
    let code = ok(
        &server.http(
            "POST",
            "/api/v1/auth/invites",
            Some(root),
            Some(body.as_bytes()),
        ),
        "invite",
    )["code"]
        .as_str()
        .unwrap()
        .to_string();
    let body = json!({ "code": code, "user": user, "password": password }).to_string();
    ok(
        &server.http(
            "POST",
            "/api/v1/auth/invites/accept",
            None,
            Some(body.as_bytes()),
        ),
        "accept",
    );
    let body = json!({ "user": user, "password": password }).to_string();
    let r = server.http("POST", "/api/v1/auth/login", None, Some(body.as_bytes()));
    ok(&r, "login")["token"].as_str().unwrap().to_string()
}

// ---- findings: posing as the system, and text that rewrites what people see ----

/// Spellings of the names coffer writes for its own actions.
const RESERVED_VARIANTS: &[&str] = &[
    "root",
    "Root",
    "ROOT",
    "root ",
    " root",
    "\u{FF52}\u{FF4F}\u{FF4F}\u{FF54}", // full-width
    "r\u{043E}\u{043E}t",               // Cyrillic o
    "r00t",
    "r.o.o.t",
    "system",
    "System",
    "coffer-scheduler",
    "Coffer-Scheduler",
    "coffer_scheduler",
    "c\u{043E}ffer-scheduler",
    "coffer",
    "scheduler",
    "anonymous",
];

#[test]
fn token_cannot_be_named_root() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    put_policy(&server, &root, "nothing", "");
    let mut failures = Vec::new();
    let invisible = ["root\u{200B}", "\u{2060}root", "ro\u{AD}ot", "root\u{FEFF}"];
    for name in RESERVED_VARIANTS.iter().chain(invisible.iter()) {
        let body = json!({ "display_name": name, "policies": ["nothing"] }).to_string();
        let r = server.http(
            "POST",
            "/api/v1/auth/tokens",
            Some(&root),
            Some(body.as_bytes()),
        );
        let m = r.json()["error"]["message"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let why_ok = m.contains("coffer writes that name") || m.contains("invisible");
        if r.status != 400 || r.error_code() != "invalid" || !why_ok {
            failures.push(format!("token {name:?}: {} {}", r.status, r.text()));
        }
    }
    // Names that only contain a reserved word are fine.
    for name in ["rootkit", "root-admin", "deploy bot"] {
        let body = json!({ "display_name": name, "policies": ["nothing"] }).to_string();
        let r = server.http(
            "POST",
            "/api/v1/auth/tokens",
            Some(&root),
            Some(body.as_bytes()),
        );
        if r.status != 200 {
            failures.push(format!("token {name:?}: {} {}", r.status, r.text()));
        }
    }
    // Nor can a person take one as a user name (the code stays usable).
    let code = ok(
        &server.http(
            "POST",
            "/api/v1/auth/invites",
            Some(&root),
            Some(br#"{"policies":["nothing"]}"#),
        ),
        "invite",
    )["code"]
        .as_str()
        .unwrap()
        .to_string();
    for name in RESERVED_VARIANTS {
        let body =
            json!({ "code": code, "user": name, "password": "correct horse battery staple" })
                .to_string();
        let r = server.http(
            "POST",
            "/api/v1/auth/invites/accept",
            None,
            Some(body.as_bytes()),
        );
        // Variants that are not even valid user names are refused earlier.
        if r.status != 400 {
            failures.push(format!("user {name:?}: {} {}", r.status, r.text()));
        }
    }
    let body =
        json!({ "code": code, "user": "rootless", "password": "correct horse battery staple" })
            .to_string();
    ok(
        &server.http(
            "POST",
            "/api/v1/auth/invites/accept",
            None,
            Some(body.as_bytes()),
        ),
        "rootless",
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn history_shows_kind_and_accessor() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    put_policy(
        &server,
        &root,
        "writer",
        r#"path "app/*" { capabilities = ["read", "list", "create", "update"] }"#,
    );
    let body = json!({ "policies": ["writer"], "display_name": "deployer" }).to_string();
    let r = server.http(
        "POST",
        "/api/v1/auth/tokens",
        Some(&root),
        Some(body.as_bytes()),
    );
    let created = ok(&r, "token");
    let token = created["token"].as_str().unwrap().to_string();
    let accessor = created["accessor"].as_str().unwrap().to_string();
    let root_accessor = ok(
        &server.http("GET", "/api/v1/auth/token/self", Some(&root), None),
        "self",
    )["accessor"]
        .as_str()
        .unwrap()
        .to_string();
    put_secret(&server, &root, "app/dev/KEY", "first-Xy7#kQ2!vR9z");
    put_secret(&server, &token, "app/dev/KEY", "second-Xy7#kQ2!vR9z");
    let human = join(
        &server,
        &root,
        "alice",
        "correct horse battery staple",
        &["writer"],
    );
    let alice_accessor = ok(
        &server.http("GET", "/api/v1/auth/token/self", Some(&human), None),
        "self",
    )["accessor"]
        .as_str()
        .unwrap()
        .to_string();
    put_secret(&server, &human, "app/dev/KEY", "third-Xy7#kQ2!vR9z");

    // The API: every version says who, of which kind, with which token.
    let md = ok(
        &server.http("GET", "/api/v1/metadata/app/dev/KEY", Some(&root), None),
        "metadata",
    );
    let versions = md["versions"].as_array().unwrap();
    let who: Vec<(&str, &str, &str)> = versions
        .iter()
        .map(|v| {
            (
                v["created_by"].as_str().unwrap(),
                v["created_by_kind"].as_str().unwrap(),
                v["created_by_accessor"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        who,
        [
            ("root", "service", root_accessor.as_str()),
            ("deployer", "service", accessor.as_str()),
            ("alice", "human", alice_accessor.as_str()),
        ]
    );
    let read = ok(
        &server.http("GET", "/api/v1/secrets/app/dev/KEY", Some(&token), None),
        "read",
    );
    assert_eq!(read["created_by"], "alice");
    assert_eq!(read["created_by_kind"], "human");
    assert_eq!(read["created_by_accessor"], alice_accessor.as_str());
}

#[test]
fn bidi_controls_refused_in_display_names_and_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    put_policy(
        &server,
        &root,
        "prod-bg",
        r#"path "app/prod/*" { capabilities = ["read", "list", "breakglass"] }"#,
    );
    put_secret(&server, &root, "app/prod/db", "prod-Xy7#kQ2!vR9z");
    ok(
        &server.http(
            "POST",
            "/api/v1/sys/protected",
            Some(&root),
            Some(br#"{"pattern":"app/prod/*"}"#),
        ),
        "protect",
    );
    let human = join(
        &server,
        &root,
        "oncall",
        "correct horse battery staple",
        &["prod-bg"],
    );
    let controls = [
        '\u{2028}', '\u{2029}', '\u{202E}', '\u{202A}', '\u{202D}', '\u{2066}', '\u{2069}',
        '\u{200E}', '\u{200F}', '\u{061C}', '\u{85}', '\u{9B}', '\u{1B}', '\n', '\r',
    ];
    let mut failures = Vec::new();
    for c in controls {
        let text = format!("INC-42 db{c}hunter2 outage");
        let body = json!({ "display_name": text, "policies": ["prod-bg"] }).to_string();
        let r = server.http(
            "POST",
            "/api/v1/auth/tokens",
            Some(&root),
            Some(body.as_bytes()),
        );
        let body = json!({ "path": "app/prod/db", "reason": text }).to_string();
        let bg = server.http(
            "POST",
            "/api/v1/sys/breakglass",
            Some(&human),
            Some(body.as_bytes()),
        );
        for (what, r) in [("display name", r), ("reason", bg)] {
            let says_which = r.text().contains(&format!("U+{:04X}", c as u32));
            if r.status != 400
                || !says_which
                || r.text().contains("hunter2")
                || r.text().contains(c)
            {
                failures.push(format!(
                    "{what} with U+{:04X}: {} {}",
                    c as u32,
                    r.status,
                    r.text()
                ));
            }
        }
    }
    // Nothing was granted and no token by such a name exists.
    let grants = ok(
        &server.http("GET", "/api/v1/sys/breakglass", Some(&root), None),
        "grants",
    );
    assert_eq!(grants["grants"].as_array().unwrap().len(), 0, "{grants}");
    let tokens = server
        .http("GET", "/api/v1/auth/tokens", Some(&root), None)
        .text();
    assert!(!tokens.contains("hunter2"), "{tokens}");
    // A plain reason still works.
    let r = server.http(
        "POST",
        "/api/v1/sys/breakglass",
        Some(&human),
        Some(br#"{"path":"app/prod/db","reason":"INC-42 db outage"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---- policy writes never grant more than the writer has ----

fn write_policy_as(server: &Server, token: &str, name: &str, source: &str) -> common::Response {
    let body = json!({ "policy": source }).to_string();
    server.http(
        "PUT",
        &format!("/api/v1/sys/policies/{name}"),
        Some(token),
        Some(body.as_bytes()),
    )
}

fn policy_text(server: &Server, root: &str, name: &str) -> String {
    let r = server.http(
        "GET",
        &format!("/api/v1/sys/policies/{name}"),
        Some(root),
        None,
    );
    ok(&r, name)["policy"].as_str().unwrap().to_string()
}

/// A person who administers the policy they hold cannot rewrite it (or
/// write any other) to grant what they lack, nor drop a deny from it;
/// writing within their own capabilities still works.
#[test]
fn policy_write_cannot_widen_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let team = r#"path "sys/policies/team" { capabilities = ["admin"] }
path "sys/policies/helper" { capabilities = ["admin"] }
path "app/dev/*" { capabilities = ["read", "list"] }
path "app/dev/secret/*" { capabilities = ["deny"] }
"#;
    put_policy(&server, &root, "team", team);
    put_policy(
        &server,
        &root,
        "other",
        r#"path "app/*" { capabilities = ["read"] }"#,
    );
    let t = join(
        &server,
        &root,
        "tess",
        "a long enough password 1",
        &["team"],
    );
    let everything = r#"path "*" { capabilities = ["read", "list", "create", "update", "delete", "rotate", "admin"] }"#;
    let widening = [
        ("team", everything.to_string()),
        // A capability the writer lacks, on a path it reads.
        (
            "team",
            format!("{team}path \"app/dev/*\" {{ capabilities = [\"update\"] }}\n"),
        ),
        // A pattern broader than the writer's.
        ("team", team.replace("app/dev/*", "app/*")),
        ("team", team.replace("app/dev/*\" {", "app/dev*\" {")),
        // The writer's own deny dropped (everyone holding team gains).
        ("team", team.replace("app/dev/secret/*", "app/dev/secret/x")),
        // A new policy that reaches into what the writer is denied.
        (
            "helper",
            r#"path "app/dev/*" { capabilities = ["read"] }"#.to_string(),
        ),
        (
            "helper",
            r#"path "sys/policies/*" { capabilities = ["admin"] }"#.to_string(),
        ),
    ];
    for (name, source) in &widening {
        let r = write_policy_as(&server, &t, name, source);
        assert_eq!(r.status, 403, "{name}: {source}: {}", r.text());
        let message = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(
            message.contains("would grant more than this token has"),
            "{message}"
        );
        let rec = server
            .audit_records()
            .into_iter()
            .rev()
            .find(|r| r["op"] == "policy.write")
            .unwrap();
        assert_eq!(rec["outcome"], "denied", "{rec}");
        assert_eq!(rec["status"], 403, "{rec}");
    }
    assert_eq!(policy_text(&server, &root, "team"), team);
    assert_eq!(
        server
            .http("GET", "/api/v1/sys/policies/helper", Some(&root), None)
            .status,
        404
    );
    // Within the writer's own: narrower patterns and capabilities, the
    // deny kept or widened, new denies added.
    let narrower = team.replace("[\"read\", \"list\"]", "[\"read\"]")
        + "path \"app/dev/other\" { capabilities = [\"deny\"] }\n";
    let r = write_policy_as(&server, &t, "team", &narrower);
    assert_eq!(r.status, 200, "{}", r.text());
    let r = write_policy_as(
        &server,
        &t,
        "helper",
        "path \"app/dev/*\" { capabilities = [\"read\"] }\n\
         path \"app/dev/secret/*\" { capabilities = [\"deny\"] }\n\
         path \"app/dev/other\" { capabilities = [\"deny\"] }\n",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // Root still writes anything, and may drop a deny.
    let r = write_policy_as(&server, &root, "team", everything);
    assert_eq!(r.status, 200, "{}", r.text());
}

// ---- user administration never reaches past the administrator ----

fn users_call(
    server: &Server,
    token: &str,
    method: &str,
    path: &str,
    body: serde_json::Value,
) -> common::Response {
    let body = body.to_string();
    server.http(method, path, Some(token), Some(body.as_bytes()))
}

/// A helpdesk administrator (admin on every `sys/users/*`) cannot demote,
/// disable, remove or reset the one-time codes of a user holding a policy
/// it does not hold; it can on users within its own policies. Nobody, root
/// included, can disable, remove or demote the last active root user.
#[test]
fn user_admin_cannot_act_on_more_powerful_users() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    put_policy(
        &server,
        &root,
        "helpdesk",
        r#"path "sys/users/*" { capabilities = ["admin"] }"#,
    );
    put_policy(
        &server,
        &root,
        "reader",
        r#"path "app/*" { capabilities = ["read"] }"#,
    );
    let h = join(
        &server,
        &root,
        "hal",
        "a long enough password 1",
        &["helpdesk"],
    );
    join(
        &server,
        &root,
        "alice",
        "a long enough password 2",
        &["root"],
    );
    join(
        &server,
        &root,
        "rita",
        "a long enough password 3",
        &["reader"],
    );
    join(
        &server,
        &root,
        "hank",
        "a long enough password 4",
        &["helpdesk"],
    );
    let attempts = [
        (
            "PATCH",
            "/api/v1/sys/users/alice",
            json!({ "policies": ["helpdesk"] }),
        ),
        (
            "PATCH",
            "/api/v1/sys/users/alice",
            json!({ "reset_totp": true }),
        ),
        ("POST", "/api/v1/sys/users/alice/disable", json!({})),
        ("DELETE", "/api/v1/sys/users/alice", json!({})),
        ("POST", "/api/v1/sys/users/rita/disable", json!({})),
        (
            "PATCH",
            "/api/v1/sys/users/rita",
            json!({ "policies": ["helpdesk"] }),
        ),
    ];
    for (method, path, body) in attempts {
        let before = ok(
            &server.http("GET", "/api/v1/sys/users/alice", Some(&root), None),
            "alice",
        );
        let r = users_call(&server, &h, method, path, body);
        assert_eq!(r.status, 403, "{method} {path}: {}", r.text());
        let message = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(
            message.contains("which this token does not hold"),
            "{message}"
        );
        let after = ok(
            &server.http("GET", "/api/v1/sys/users/alice", Some(&root), None),
            "alice",
        );
        assert_eq!(before, after);
    }
    assert_eq!(
        server
            .audit_records()
            .into_iter()
            .rev()
            .find(|r| r["op"] == "user.update")
            .unwrap()["outcome"],
        "denied"
    );
    // A peer within its own policies: allowed.
    let r = users_call(
        &server,
        &h,
        "POST",
        "/api/v1/sys/users/hank/disable",
        json!({}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // alice is the only active root user: root itself may not lock her out.
    for (method, path, body) in [
        (
            "PATCH",
            "/api/v1/sys/users/alice",
            json!({ "policies": ["reader"] }),
        ),
        ("POST", "/api/v1/sys/users/alice/disable", json!({})),
        ("DELETE", "/api/v1/sys/users/alice", json!({})),
    ] {
        let r = users_call(&server, &root, method, path, body);
        assert_eq!(r.status, 403, "{method} {path}: {}", r.text());
        let message = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(
            message.contains("last active user holding the root policy"),
            "{message}"
        );
    }
    // With a second root user, either may go.
    join(&server, &root, "bob", "a long enough password 5", &["root"]);
    let r = users_call(
        &server,
        &root,
        "POST",
        "/api/v1/sys/users/alice/disable",
        json!({}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = users_call(&server, &root, "DELETE", "/api/v1/sys/users/bob", json!({}));
    assert_eq!(r.status, 403, "{}", r.text());
    // Resetting a root user's codes keeps them root: allowed to root.
    let r = users_call(
        &server,
        &root,
        "PATCH",
        "/api/v1/sys/users/bob",
        json!({ "reset_totp": true }),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

/// A token typed unquoted into a policy's capabilities list is refused
/// without being repeated in the answer or the audit log.
#[test]
fn policy_parse_error_never_repeats_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    for source in [
        format!("path \"a/*\" {{ capabilities = [{root}] }}"),
        format!("path \"a/*\" {{ capabilities = [\"read\", {root}] }}"),
        format!("path \"a/*\" {{ capabilities = [\"{root}\"] }}"),
    ] {
        let r = write_policy_as(&server, &root, "leak", &source);
        assert_eq!(r.status, 400, "{}", r.text());
        assert!(!r.text().contains(&root), "the token was echoed");
        assert!(r.text().contains("line 1"), "{}", r.text());
    }
    assert!(!server.audit_log_text().contains(&root));
}
