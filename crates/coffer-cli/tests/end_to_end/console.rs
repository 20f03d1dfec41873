//! The web console in a real browser: Debian's Chromium driven by
//! Playwright for Python (`console/console_browser.py`) against a real
//! `coffer server --dev`. Both must be installed (`.ci/deps/browser.sh`):
//! without them this test fails, it does not skip.
//!
//! The script logs in with a one-time code, browses, filters, reveals and
//! copies a value, edits it, reads the audit and readers pages, checks
//! every page's headers and that none holds inline code, sends a forged
//! form from another origin, logs out, and logs in as a person limited to
//! `app/dev/`. It also rolls back from the history, shares a secret with
//! the share button (the link opens once in a fresh browser, then not
//! again; the key is in no request URL or Referer), sends a pasted text
//! with "send a secret" (opened here with `coffer share open`), and
//! compares two environments; on the administration pages ada invites a
//! person (who joins with the code) and sees the break-glass grant a person
//! on call asked for. This test then checks what only the server
//! can see.
//!
//! With `COFFER_SCREENSHOTS=DIR` the script also writes screenshots of the
//! login, tree, secret, audit, rollback, send, environment, users, policy,
//! break-glass and rotation pages there (the ones in
//! `docs/screenshots/` were made so).

use std::process::Command;

use serde_json::json;

use crate::common::{Mode, Server, ok};

const SCRIPT: &str = include_str!("console/console_browser.py");
const ADA_PASSWORD: &str = "console browser battery staple";
const DEV_PASSWORD: &str = "console limited horse staple";
const ONCALL_PASSWORD: &str = "console pager battery horse";
const NEWBIE_PASSWORD: &str = "console newcomer staple horse";

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn base32_decode(s: &str) -> Vec<u8> {
    let (mut bits, mut n, mut out) = (0u64, 0, Vec::new());
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("not base32"),
        } as u64;
        bits = (bits << 5) | v;
        n += 5;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    out
}

fn put(server: &Server, token: &str, path: &str, body: serde_json::Value) -> serde_json::Value {
    let body = body.to_string();
    ok(
        &server.http("PUT", path, Some(token), Some(body.as_bytes())),
        path,
    )
}

fn post(
    server: &Server,
    token: Option<&str>,
    path: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let body = body.to_string();
    ok(
        &server.http("POST", path, token, Some(body.as_bytes())),
        path,
    )
}

/// Invites `user` with `policies` and accepts with `password`.
fn join(server: &Server, root: &str, user: &str, password: &str, policies: &[&str]) {
    let invite = post(
        server,
        Some(root),
        "/api/v1/auth/invites",
        json!({ "policies": policies }),
    );
    post(
        server,
        None,
        "/api/v1/auth/invites/accept",
        json!({ "code": invite["code"], "user": user, "password": password }),
    );
}

/// Enrolls `user` in TOTP through the API and revokes the token that did
/// it; returns the seed (base32) and the time of the code that confirmed it.
fn enroll_totp(server: &Server, user: &str, password: &str) -> (String, u64) {
    let login = post(
        server,
        None,
        "/api/v1/auth/login",
        json!({ "user": user, "password": password }),
    );
    let token = login["token"].as_str().unwrap().to_string();
    let enroll = post(server, Some(&token), "/api/v1/auth/totp", json!({}));
    let secret = enroll["secret"].as_str().unwrap().to_string();
    let seed = coffer_crypto::totp::TotpSecret::from_bytes(&base32_decode(&secret)).unwrap();
    let at = now_secs();
    post(
        server,
        Some(&token),
        "/api/v1/auth/totp/confirm",
        json!({ "code": seed.code_at(at) }),
    );
    let r = server.http("DELETE", "/api/v1/auth/token/self", Some(&token), None);
    assert!((200..300).contains(&r.status), "revoke: {}", r.status);
    (secret, at)
}

fn audit_records(server: &Server) -> Vec<serde_json::Value> {
    std::fs::read_to_string(server.data_dir().join("audit.log"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn the_console_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    put(
        &server,
        &root,
        "/api/v1/sys/policies/everything",
        json!({ "policy": r#"path "*" { capabilities = ["read", "list", "create", "update", "delete", "rotate", "admin"] }"# }),
    );
    put(
        &server,
        &root,
        "/api/v1/sys/policies/dev-only",
        json!({ "policy": r#"path "app/dev/*" { capabilities = ["read", "list", "create", "update"] }"# }),
    );
    join(&server, &root, "ada", ADA_PASSWORD, &["everything"]);
    join(&server, &root, "dev", DEV_PASSWORD, &["dev-only"]);
    put(
        &server,
        &root,
        "/api/v1/sys/policies/oncall",
        json!({ "policy": r#"path "app/prod/*" { capabilities = ["breakglass", "list"] }"# }),
    );
    join(&server, &root, "oncall", ONCALL_PASSWORD, &["oncall"]);
    let (seed, confirmed_at) = enroll_totp(&server, "ada", ADA_PASSWORD);
    put(
        &server,
        &root,
        "/api/v1/secrets/app/dev/API_KEY",
        json!({ "value": "dev-value-1" }),
    );
    put(
        &server,
        &root,
        "/api/v1/secrets/app/prod/DB_PASSWORD",
        json!({ "value": "prod-value-1" }),
    );

    // Production is protected, and its secret expires soon (for the
    // rotation page).
    post(
        &server,
        Some(&root),
        "/api/v1/sys/protected",
        json!({ "pattern": "app/prod/*" }),
    );
    put(
        &server,
        &root,
        "/api/v1/expiry/app/prod/DB_PASSWORD",
        json!({ "expires_in": "2d" }),
    );

    let script = dir.path().join("console_browser.py");
    std::fs::write(&script, SCRIPT).unwrap();
    let send_link_file = dir.path().join("send-link");
    let mut cmd = Command::new("python3");
    cmd.arg(&script)
        .env("COFFER_SEND_LINK_FILE", &send_link_file)
        .env("COFFER_ADDR", &server.addr)
        .env("ADA_PASSWORD", ADA_PASSWORD)
        .env("DEV_PASSWORD", DEV_PASSWORD)
        .env("ONCALL_PASSWORD", ONCALL_PASSWORD)
        .env("NEWBIE_PASSWORD", NEWBIE_PASSWORD)
        .env("ADA_TOTP_SECRET", &seed)
        .env("ADA_TOTP_CONFIRMED_AT", confirmed_at.to_string());
    if let Ok(shots) = std::env::var("COFFER_SCREENSHOTS") {
        // Relative to the workspace, where the screenshots are kept.
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        cmd.env("COFFER_SCREENSHOTS", root.join(shots));
    } else {
        cmd.env_remove("COFFER_SCREENSHOTS");
    }
    let out = cmd
        .output()
        .expect("python3 runs (Playwright for Python and Debian's chromium are needed: .ci/deps/browser.sh)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("console ok"),
        "the browser script failed:\n{stdout}\n{stderr}"
    );

    // The "send a secret" link opens with the CLI, once.
    let link = std::fs::read_to_string(&send_link_file).unwrap();
    let opened = server
        .cli()
        .env_remove("COFFER_SHARE_LINK")
        .stdin(&link)
        .run(&["share", "open"])
        .expect(0);
    assert_eq!(opened.stdout(), "sent from the console");
    let again = server
        .cli()
        .env_remove("COFFER_SHARE_LINK")
        .stdin(&link)
        .run(&["share", "open"]);
    assert_ne!(again.code(), 0, "a second open");
    // The link's key (after `#`) never reached the server: not in its log,
    // not in the audit log.
    let key = link.split_once('#').unwrap().1;
    assert!(
        !server.logs().contains(key),
        "the server log holds a link's key"
    );
    let audit = std::fs::read_to_string(server.data_dir().join("audit.log")).unwrap();
    assert!(!audit.contains(key), "the audit log holds a link's key");

    // The reveal was audited as a read by ada, without the value.
    let records = audit_records(&server);
    let reveal = records
        .iter()
        .find(|r| r["op"] == "ui.reveal" && r["outcome"] == "ok")
        .expect("a reveal record");
    assert_eq!(reveal["actor"]["name"], "ada");
    assert_eq!(reveal["decision"], "read");
    assert_eq!(reveal["path"], "app/dev/API_KEY");
    let log = std::fs::read_to_string(server.data_dir().join("audit.log")).unwrap();
    for secret in [
        "dev-value-1",
        "dev-value-2",
        "prod-value-1",
        "sent from the console",
        ADA_PASSWORD,
        DEV_PASSWORD,
        ONCALL_PASSWORD,
        NEWBIE_PASSWORD,
    ] {
        assert!(!log.contains(secret), "the audit log holds a secret");
        assert!(
            !server.logs().contains(secret),
            "the server log holds a secret"
        );
    }
    // The edit wrote version 2, the rollback version 3 with version 1's
    // value (recorded as secret.rollback); the forged form wrote nothing.
    let read = ok(
        &server.http("GET", "/api/v1/secrets/app/dev/API_KEY", Some(&root), None),
        "read",
    );
    assert_eq!(read["value"], "dev-value-1");
    assert_eq!(read["version"], 3);
    assert!(records.iter().any(|r| r["op"] == "secret.rollback"
        && r["outcome"] == "ok"
        && r["actor"]["name"] == "ada"));
    // The share button's link records the version shared and names the link.
    let shared = records
        .iter()
        .find(|r| r["op"] == "share.create" && r["path"] == "app/dev/API_KEY")
        .expect("the share button's record");
    assert_eq!(shared["version"], 3);
    assert!(
        shared["writes"][0]["path"]
            .as_str()
            .unwrap()
            .starts_with("sys/shares/")
    );
    let forged = server.http("GET", "/api/v1/secrets/app/dev/FORGED", Some(&root), None);
    assert_eq!(forged.status, 404, "the forged form wrote a secret");
    let forged_record = records
        .iter()
        .rev()
        .find(|r| r["op"] == "ui.save" && r["status"] == 403)
        .expect("the forged form's refusal is audited");
    assert_eq!(forged_record["outcome"], "denied");
    // The limited person was refused the prod secret, and that was audited.
    assert!(records.iter().any(|r| r["op"] == "ui.secret"
        && r["path"] == "app/prod/DB_PASSWORD"
        && r["outcome"] == "denied"
        && r["actor"]["name"] == "dev"));
    // ada's invitation made newbie, with the policy she typed; oncall's
    // break-glass request is a live grant with its reason; both were
    // audited under the console's twins of the API's operations.
    let newbie = ok(
        &server.http("GET", "/api/v1/sys/users/newbie", Some(&root), None),
        "newbie",
    );
    assert_eq!(newbie["policies"], json!(["everything"]));
    let grants = ok(
        &server.http("GET", "/api/v1/sys/breakglass", Some(&root), None),
        "grants",
    );
    let grants = grants["grants"].as_array().unwrap();
    assert_eq!(grants.len(), 1, "{grants:?}");
    assert_eq!(grants[0]["user"], "oncall");
    assert_eq!(
        grants[0]["reason"],
        "incident 7: payments cannot reach the database"
    );
    assert!(records.iter().any(|r| r["op"] == "ui.invite.create"
        && r["outcome"] == "ok"
        && r["actor"]["name"] == "ada"));
    assert!(records.iter().any(|r| r["op"] == "ui.breakglass.grant"
        && r["outcome"] == "ok"
        && r["path"] == "app/prod/DB_PASSWORD"
        && r["actor"]["name"] == "oncall"));
    // The refused disable (a wrong name typed) changed nothing.
    assert!(
        records
            .iter()
            .any(|r| r["op"] == "ui.user.disable" && r["status"] == 400)
    );
    assert_eq!(newbie["disabled"], false);
    // Logout revoked ada's token: she has none left.
    let tokens = ok(
        &server.http("GET", "/api/v1/auth/tokens", Some(&root), None),
        "tokens",
    )
    .to_string();
    assert!(!tokens.contains("\"user\":\"ada\""), "{tokens}");
}
