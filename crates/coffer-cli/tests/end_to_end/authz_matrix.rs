//! What the CLI shows a caller whose policy denies some paths: the names
//! it is denied never appear in `ls -r`, `rotation status`, `example`,
//! `export` or `env promote --dry-run`. (The HTTP side of the same fixture,
//! and the authorization matrix, are tested in-process in coffer-server's
//! `tests/authz_matrix.rs`.)

use crate::common;

use common::{Mode, Server, ok};
use serde_json::json;

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

#[test]
fn deny_hides_names_in_recursive_list() {
    let (_dir, server, _root, token) = deny_fixture();
    let run = server
        .cli()
        .token(&token)
        .run(&["ls", "app", "-r"])
        .expect(0);
    let out = run.stdout();
    assert!(out.contains("dev/OK"), "{out}");
    for marker in HIDDEN_MARKERS {
        assert!(!out.contains(marker), "{out}");
    }
}

#[test]
fn deny_hides_names_in_rotation_status() {
    let (_dir, server, _root, token) = deny_fixture();
    for args in [
        &["rotation", "status", "app"][..],
        &["rotation", "status", "app", "--json"],
    ] {
        let run = server.cli().token(&token).run(args).expect(0);
        let out = run.stdout();
        assert!(out.contains("app/dev/OK"), "{args:?}: {out}");
        for marker in HIDDEN_MARKERS {
            assert!(!out.contains(marker), "{args:?}: {out}");
        }
    }
}

#[test]
fn deny_hides_names_in_example_and_export() {
    let (_dir, server, _root, token) = deny_fixture();
    for args in [
        &["example", "--path", "app/dev", "--path", "app/staging"][..],
        &[
            "export",
            "--path",
            "app/dev",
            "--path",
            "app/staging",
            "--format",
            "json",
        ],
        &["env", "promote", "app/dev", "app/staging", "--dry-run"],
    ] {
        let run = server.cli().token(&token).run(args);
        let out = format!("{}{}", run.stdout(), run.stderr());
        assert_eq!(run.code(), 0, "{args:?}: {out}");
        assert!(out.contains("OK"), "{args:?}: {out}");
        for marker in HIDDEN_MARKERS {
            assert!(!out.contains(marker), "{args:?}: {out}");
        }
    }
}
