//! A user's first minutes, through the real binary: dev server, login, set,
//! get, ls, history, rm, undelete, destroy, restart; and the exit statuses.

use crate::common;

use common::{Mode, Server};

#[test]
fn dev_server_first_minutes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let banner = std::fs::read_to_string(&server.stdout_log).unwrap();
    assert!(
        banner.contains("login <"),
        "the banner says how to connect: {banner}"
    );

    // Root token file: owner-only.
    use std::os::unix::fs::PermissionsExt;
    for f in ["root-token", "unseal-key", "coffer.db"] {
        let mode = std::fs::metadata(server.data_dir().join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{f} must be readable by its owner only");
    }

    // login from stdin saves the token, owner-only.
    let token = server.root_token();
    let login = server.cli().stdin(&token).run(&["login"]).expect(0);
    assert!(
        login.stderr().contains("Logged in as root"),
        "{}",
        login.stderr()
    );
    let saved = dir.path().join("config/coffer/token");
    assert_eq!(
        std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(!login.stdout().contains(&token) && !login.stderr().contains(&token));

    // set from stdin (one trailing newline dropped), get prints the value alone.
    server
        .cli()
        .stdin("s3cr3t-value\n")
        .run(&["set", "myapp/dev/API_KEY"])
        .expect(0);
    let got = server.cli().run(&["get", "myapp/dev/API_KEY"]).expect(0);
    assert_eq!(got.stdout(), "s3cr3t-value");
    server
        .cli()
        .stdin("second\n")
        .run(&["set", "/myapp/dev/API_KEY"])
        .expect(0);
    server
        .cli()
        .stdin("other")
        .run(&["set", "myapp/prod/DB_URL"])
        .expect(0);
    server
        .cli()
        .stdin("deep")
        .run(&["set", "myapp/dev/nested/X"])
        .expect(0);

    let j = server
        .cli()
        .run(&["get", "myapp/dev/API_KEY", "--json"])
        .expect(0)
        .json();
    assert_eq!(j["value"], "second");
    assert_eq!(j["version"], 2);
    assert_eq!(j["path"], "myapp/dev/API_KEY");
    assert_eq!(j["created_by"], "root");
    assert_eq!(
        server
            .cli()
            .run(&["get", "myapp/dev/API_KEY", "--version", "1"])
            .expect(0)
            .stdout(),
        "s3cr3t-value"
    );

    // ls: one level, recursive, JSON.
    assert_eq!(server.cli().run(&["ls"]).expect(0).stdout(), "myapp/\n");
    assert_eq!(
        server.cli().run(&["ls", "myapp/dev"]).expect(0).stdout(),
        "API_KEY\nnested/\n"
    );
    assert_eq!(
        server.cli().run(&["ls", "myapp", "-r"]).expect(0).stdout(),
        "dev/API_KEY\ndev/nested/X\nprod/DB_URL\n"
    );
    let j = server
        .cli()
        .run(&["ls", "myapp/dev", "--json"])
        .expect(0)
        .json();
    assert_eq!(j[1]["name"], "nested/");
    assert_eq!(j[1]["folder"], true);

    // history never shows values.
    let h = server
        .cli()
        .run(&["history", "myapp/dev/API_KEY"])
        .expect(0);
    assert!(h.stdout().contains("[current]"));
    assert!(!h.stdout().contains("second") && !h.stdout().contains("s3cr3t"));
    let hj = server
        .cli()
        .run(&["history", "myapp/dev/API_KEY", "--json"])
        .expect(0)
        .json();
    assert_eq!(hj["versions"].as_array().unwrap().len(), 2);

    // Fields values.
    server
        .cli()
        .stdin(r#"{"username":"app","password":"pw-123"}"#)
        .run(&["set", "myapp/dev/db", "--fields"])
        .expect(0);
    assert_eq!(
        server
            .cli()
            .run(&["get", "myapp/dev/db", "--field", "password"])
            .expect(0)
            .stdout(),
        "pw-123"
    );
    server
        .cli()
        .run(&["get", "myapp/dev/db", "--field", "nope"])
        .expect(3);

    // rm (soft), then undelete, then destroy an old version.
    server.cli().run(&["rm", "myapp/dev/API_KEY"]).expect(0);
    let gone = server.cli().run(&["get", "myapp/dev/API_KEY"]).expect(3);
    assert!(gone.stderr().contains("deleted"), "{}", gone.stderr());
    assert!(
        !server
            .cli()
            .run(&["ls", "myapp/dev"])
            .expect(0)
            .stdout()
            .contains("API_KEY")
    );
    assert!(
        server
            .cli()
            .run(&["ls", "myapp/dev", "--all"])
            .expect(0)
            .stdout()
            .contains("API_KEY")
    );
    server
        .cli()
        .run(&["undelete", "myapp/dev/API_KEY"])
        .expect(0);
    assert_eq!(
        server
            .cli()
            .run(&["get", "myapp/dev/API_KEY"])
            .expect(0)
            .stdout(),
        "second"
    );
    server
        .cli()
        .run(&["rm", "myapp/dev/API_KEY", "--destroy", "--version", "1"])
        .expect(0);
    let destroyed = server
        .cli()
        .run(&["get", "myapp/dev/API_KEY", "--version", "1"])
        .expect(3);
    assert!(destroyed.stderr().contains("destroyed"));
    server
        .cli()
        .run(&["undelete", "myapp/dev/API_KEY", "--version", "1"])
        .expect(0);
    server
        .cli()
        .run(&["get", "myapp/dev/API_KEY", "--version", "1"])
        .expect(3);

    // Restart: dev mode unseals itself again, data intact.
    assert!(server.stop().success());
    let server = Server::start(dir.path(), Mode::Dev);
    assert_eq!(
        server
            .cli()
            .run(&["get", "myapp/dev/API_KEY"])
            .expect(0)
            .stdout(),
        "second"
    );
    assert_eq!(
        server
            .cli()
            .run(&["get", "myapp/prod/DB_URL"])
            .expect(0)
            .stdout(),
        "other"
    );
    server.cli().run(&["logout"]).expect(0);
    assert!(!saved.exists());
    server.cli().run(&["get", "myapp/prod/DB_URL"]).expect(4);
}

#[test]
fn exit_statuses_and_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let token = server.root_token();
    let cli = || server.cli().token(&token);

    // Usage error: clap's status 2.
    cli().run(&["get"]).expect(2);
    cli().run(&["frobnicate"]).expect(2);
    cli().run(&["get", "x", "--version", "0"]).expect(2);
    // Not found: 3.
    let nf = cli().run(&["get", "nothing/here"]).expect(3);
    assert_eq!(nf.stderr().lines().count(), 1, "one line: {}", nf.stderr());
    assert!(
        nf.stderr()
            .starts_with("coffer: error: no secret at nothing/here")
    );
    // Permission denied: 4 (no token, or a wrong one).
    let denied = server.cli().run(&["get", "a/b"]).expect(4);
    assert!(denied.stderr().contains("coffer login"));
    let fake = "cft_0000000000000000000000000000000000000000000abcdef";
    server.cli().token(fake).run(&["get", "a/b"]).expect(4);
    // Validation: 7 (bad path, empty value).
    let bad = cli().stdin("v").run(&["set", "a/../b"]).expect(7);
    assert!(bad.stderr().contains("'..'"), "{}", bad.stderr());
    cli().stdin("").run(&["set", "a/b"]).expect(7);
    cli()
        .stdin("")
        .run(&["set", "a/b", "--allow-empty"])
        .expect(0);
    cli()
        .stdin("not json")
        .run(&["set", "a/c", "--fields"])
        .expect(7);
    // Conflict: 8.
    cli()
        .stdin("v")
        .run(&["set", "a/b", "--cas", "0"])
        .expect(8);
    cli()
        .stdin("v")
        .run(&["set", "a/b", "--cas", "1"])
        .expect(0);
    // Unreachable: 6.
    let un = server
        .cli()
        .env("COFFER_ADDR", "http://127.0.0.1:9")
        .token(&token)
        .run(&["get", "a/b"])
        .expect(6);
    assert!(
        un.stderr().contains("cannot reach coffer"),
        "{}",
        un.stderr()
    );
    // Bad address: usage.
    server
        .cli()
        .env("COFFER_ADDR", "ftp://nope")
        .run(&["status"])
        .expect(2);

    // --value works but warns, and the warning names the risk.
    let w = cli()
        .run(&["set", "a/d", "--value", "on-the-command-line"])
        .expect(0);
    assert!(w.stderr().contains("warning") && w.stderr().contains("process list"));

    // status --json; exits 0 unsealed.
    let s = server.cli().run(&["status", "--json"]).expect(0).json();
    assert_eq!(s["initialized"], true);
    assert_eq!(s["sealed"], false);
    assert_eq!(s["storage"], "sqlite");
    assert_eq!(s["audit_available"], true);

    // --help has examples for every command.
    for cmd in [
        "server", "status", "set", "get", "ls", "rm", "undelete", "history", "login",
    ] {
        let h = server.cli().run(&[cmd, "--help"]).expect(0);
        assert!(
            h.stdout().contains("Example"),
            "{cmd} --help lacks examples"
        );
    }
    let h = server.cli().run(&["--help"]).expect(0);
    assert!(h.stdout().contains("Exit status"));
}

#[test]
fn login_checks_the_token_and_the_token_file_stays_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let saved = dir.path().join("config/coffer/token");

    // A wrong token is refused and nothing is saved.
    let fake = "cft_0000000000000000000000000000000000000000000abcdef";
    let bad = server.cli().stdin(fake).run(&["login"]).expect(4);
    assert!(!bad.stderr().contains(fake));
    assert!(!saved.exists(), "a refused login must not save the token");

    // A good one is saved 0600; if someone loosens the file, coffer refuses it.
    server
        .cli()
        .stdin(server.root_token())
        .run(&["login"])
        .expect(0);
    server.cli().stdin("v").run(&["set", "p/q"]).expect(0);
    std::fs::set_permissions(&saved, std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused = server.cli().run(&["get", "p/q"]).expect(4);
    assert!(
        refused.stderr().contains("readable by others"),
        "{}",
        refused.stderr()
    );
    assert!(refused.stdout().is_empty());
    // COFFER_TOKEN still works and takes precedence.
    server
        .cli()
        .token(&server.root_token())
        .run(&["get", "p/q"])
        .expect(0);
}

#[test]
fn a_second_server_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = Server::start(dir.path(), Mode::Dev);
    let err = Server::try_start(dir.path(), Mode::Dev).err().unwrap();
    assert!(err.contains("already using"), "{err}");
    // The first one is unaffected.
    first
        .cli()
        .token(&first.root_token())
        .stdin("v")
        .run(&["set", "x/y"])
        .expect(0);
}

#[test]
fn graceful_shutdown_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let token = server.root_token();
    server
        .cli()
        .token(&token)
        .stdin("v")
        .run(&["set", "g/x"])
        .expect(0);
    let logs_path = server.stderr_log.clone();
    let status = server.stop();
    assert!(status.success(), "exit status {status}");
    let logs = std::fs::read_to_string(logs_path).unwrap();
    assert!(logs.contains("coffer stopped"), "{logs}");
}

/// A token expanded into a path (`coffer://leak/${COFFER_TOKEN}`) or pasted
/// into any name field is refused, and no answer repeats it.
#[test]
fn token_shaped_path_is_refused_without_echo() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    // The caller's own, live token: the worst thing to leak.
    let token = root.clone();
    let body_of = |v: serde_json::Value| v.to_string();
    let cases: Vec<(&str, String, Option<String>)> = vec![
        ("GET", format!("/api/v1/secrets/leak/{token}"), None),
        (
            "PUT",
            format!("/api/v1/secrets/leak/{token}"),
            Some(body_of(serde_json::json!({ "value": "x" }))),
        ),
        ("GET", format!("/api/v1/metadata/leak/{token}"), None),
        ("GET", format!("/api/v1/list/leak/{token}"), None),
        ("GET", format!("/api/v1/rotation/status/{token}"), None),
        ("DELETE", format!("/api/v1/secrets/app/{token}/x"), None),
        (
            "POST",
            "/api/v1/copy".into(),
            Some(body_of(
                serde_json::json!({ "from": format!("app/{token}"), "to": "app/x" }),
            )),
        ),
        (
            "POST",
            "/api/v1/bundle".into(),
            Some(body_of(serde_json::json!({
                "prefixes": [format!("app/{token}")],
                "secrets": [{ "path": format!("leak/{token}") }]
            }))),
        ),
        (
            "POST",
            "/api/v1/promote-env".into(),
            Some(body_of(
                serde_json::json!({ "from": format!("app/{token}"), "to": "app/prod" }),
            )),
        ),
        (
            "POST",
            "/api/v1/sys/protected".into(),
            Some(body_of(
                serde_json::json!({ "pattern": format!("leak/{token}/*") }),
            )),
        ),
        (
            "PUT",
            "/api/v1/sys/lifecycle".into(),
            Some(body_of(
                serde_json::json!({ "pattern": format!("leak/{token}"), "min_bits": 8 }),
            )),
        ),
        (
            "PUT",
            "/api/v1/sys/policies/leak".into(),
            Some(body_of(serde_json::json!({
                "policy": format!("path \"leak/{token}\" {{ capabilities = [\"read\"] }}")
            }))),
        ),
        ("GET", format!("/api/v1/sys/policies/{token}"), None),
        ("GET", format!("/api/v1/auth/tokens/{token}"), None),
        (
            "POST",
            "/api/v1/auth/tokens".into(),
            Some(body_of(
                serde_json::json!({ "policies": [token.clone()], "ttl": token.clone() }),
            )),
        ),
        (
            "POST",
            "/api/v1/auth/tokens".into(),
            Some(body_of(
                serde_json::json!({ "policies": ["root"], "ttl": token.clone() }),
            )),
        ),
        ("GET", format!("/api/v1/secrets/app/x?label={token}"), None),
        (
            "GET",
            format!("/api/v1/secrets/app/x?version={token}"),
            None,
        ),
        (
            "POST",
            "/api/v1/auth/tokens".into(),
            Some(body_of(
                serde_json::json!({ "policies": ["root"], "cidrs": [token.clone()] }),
            )),
        ),
    ];
    let body_of_token = &token[4..20];
    let mut failures = Vec::new();
    for (method, url, body) in &cases {
        let r = server.http(method, url, Some(&root), body.as_deref().map(str::as_bytes));
        let text = r.text();
        if r.status < 400 || text.contains(body_of_token) {
            failures.push(format!("{method} {url}: {} {text}", r.status));
        }
    }
    // The paths and patterns were refused for their shape, and say so.
    let r = server.http(
        "GET",
        &format!("/api/v1/secrets/leak/{token}"),
        Some(&root),
        None,
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().contains("looks like a coffer token"),
        "{}",
        r.text()
    );
    // The CLI says the same, and nothing was written.
    let run = server
        .cli()
        .token(&root)
        .run(&["get", &format!("leak/{token}")]);
    assert_ne!(run.code(), 0);
    assert!(
        !run.stderr().contains(body_of_token) && !run.stdout().contains(body_of_token),
        "{}",
        run.stderr()
    );
    let listing = server.http("GET", "/api/v1/list?recursive=true", Some(&root), None);
    assert!(
        !listing.text().contains(body_of_token),
        "{}",
        listing.text()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
