//! The audit log against hostile input and hostile operators' mistakes, end
//! to end against the real binary: token-shaped strings masked, line and
//! direction characters escaped and shown visibly, webhook URLs kept out of
//! the server log, symbolic links refused, a log truncated while the server
//! was stopped failing verification until acknowledged, and the audit API
//! hiding the names a caller's policies deny.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Mode, Server, init_and_unseal};
use serde_json::Value;

fn audit_log(server: &Server) -> PathBuf {
    server.data_dir().join("audit.log")
}

fn records(file: &Path) -> Vec<Value> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// A string of the token shape (`cft_` + 43 base62 + 6 base62), with a
/// checksum that need not be valid.
fn fake_token(prefix: &str, fill: char) -> String {
    format!("{prefix}{}{}", fill.to_string().repeat(43), "Zz9Zz9")
}

#[test]
fn audit_masks_token_shaped_strings_in_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let leak = fake_token("cft_", 'Q');
    let invite = fake_token("cfi_", 'W');
    let short = "cft_Rr7Rr7Rr7Rr7Rr7Rr7";
    // The way `coffer run` leaked it: a reference path holding a token.
    for path in [
        format!("/api/v1/secrets/leak/{leak}"),
        format!("/api/v1/secrets/leak/x{invite}"),
        format!("/api/v1/secrets/{short}"),
        format!("/api/v1/list/leak/{leak}"),
        format!("/v1/secret/data/leak/{leak}"),
        format!("/api/v1/secrets/leak/cft%5F{}", &leak[4..]),
        format!("/api/v1/nothing/{leak}"),
    ] {
        server.http("GET", &path, Some(&root), None);
        // And unauthenticated, refused before any decision.
        server.http("GET", &path, None, None);
    }
    // The server's own token, presented where a path goes.
    server.http(
        "GET",
        &format!("/api/v1/secrets/leak/{root}"),
        Some(&root),
        None,
    );
    let raw = std::fs::read_to_string(audit_log(&server)).unwrap();
    for secret in [&leak[4..], &invite[4..], &short[4..], &root[4..]] {
        assert!(!raw.contains(secret), "a token body reached the audit log");
    }
    assert!(raw.contains("leak/cft_<masked>"), "{raw}");
    // The log still verifies (masking happens before the line is linked),
    // and the server log holds none of them either.
    server
        .cli()
        .token(&root)
        .run(&["audit", "verify"])
        .expect(0);
    let logs = server.logs();
    for secret in [&leak[4..], &invite[4..], &short[4..]] {
        assert!(
            !logs.contains(secret),
            "a token body reached the server log"
        );
    }
}

/// `audit query` (and every table) shows such characters visibly, from a
/// log written by anything (here, offline from a file).
#[test]
fn query_output_shows_line_and_direction_characters_visibly() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("copy.log");
    let record = serde_json::json!({
        "seq": 1,
        "time": "2026-12-01T00:00:00.000Z",
        "type": "request",
        "actor": {"kind": "service", "name": "ci\u{202e}toor", "accessor": "acc_x"},
        "op": "secret.read",
        "path": "app/dev/a\u{2028}b\u{1b}[31mc\u{85}",
        "outcome": "ok",
        "status": 200,
    });
    std::fs::write(&file, format!("{record}\n")).unwrap();
    let cli = common::Cli::new("http://127.0.0.1:9", dir.path());
    let out = cli
        .run(&["audit", "query", "--file", file.to_str().unwrap()])
        .expect(0)
        .stdout();
    for c in ['\u{2028}', '\u{202e}', '\u{1b}', '\u{85}'] {
        assert!(!out.contains(c), "{c:?} raw in: {out:?}");
    }
    assert!(
        out.contains(r"app/dev/a\u{2028}b\u{001B}[31mc\u{0085}"),
        "{out}"
    );
    assert!(
        out.contains(r#"service token "ci\u{202E}toor" (acc_x)"#),
        "{out}"
    );
    assert_eq!(out.lines().count(), 2, "{out}");
}

#[test]
fn audit_log_symlink_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let precious = dir.path().join("precious");
    std::fs::write(&precious, "do not touch\n").unwrap();
    std::os::unix::fs::symlink(&precious, logs.join("audit.log")).unwrap();
    let config = format!(
        "[audit]\nfiles = [\"{}\"]\n",
        logs.join("audit.log").display()
    );
    let err = match Server::try_start(dir.path(), Mode::Config(&config)) {
        Ok(s) => {
            s.stop();
            panic!("the server started with its audit log a symbolic link")
        }
        Err(e) => e,
    };
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&precious).unwrap(),
        "do not touch\n"
    );
}

#[test]
fn head_tmp_symlink_does_not_overwrite_target() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let data = server.data_dir();
    let precious = dir.path().join("precious");
    std::fs::write(&precious, "do not touch\n").unwrap();
    let tmp = data.join("audit.log.head.tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&precious, &tmp).unwrap();
    // Records, then a stop: the head file is rewritten several times.
    for _ in 0..5 {
        server.http("GET", "/api/v1/secrets/x", Some(&root), None);
        std::thread::sleep(Duration::from_millis(250));
    }
    server.stop();
    assert_eq!(
        std::fs::read_to_string(&precious).unwrap(),
        "do not touch\n"
    );
    let head: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("audit.log.head")).unwrap())
            .unwrap();
    assert!(head["seq"].as_u64().unwrap() > 5, "{head}");
}

/// Starts a dev server, makes a few requests, stops it and cuts the last
/// `cut` lines off its log; starts it again.
fn truncated_while_stopped(dir: &Path, cut: usize) -> (Server, String) {
    let server = Server::start(dir, Mode::Dev);
    let root = server.root_token();
    for _ in 0..4 {
        server.http("GET", "/api/v1/secrets/x", Some(&root), None);
    }
    let log = audit_log(&server);
    server.stop();
    let text = std::fs::read_to_string(&log).unwrap();
    let keep: String = text
        .lines()
        .take(text.lines().count() - cut)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&log, keep).unwrap();
    (Server::start(dir, Mode::Dev), root)
}

#[test]
fn truncation_while_stopped_fails_verify_until_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let (server, root) = truncated_while_stopped(dir.path(), 3);
    let cli = || server.cli().token(&root);
    for _ in 0..3 {
        server.http("GET", "/api/v1/secrets/y", Some(&root), None);
    }
    let run = cli().run(&["audit", "verify", "--json"]);
    let out = run.json();
    assert_eq!(run.code(), 7, "{out}");
    let file = &out["files"][0];
    let gap = &file["gaps"][0];
    let record = gap["record"].as_u64().unwrap();
    assert_eq!(gap["acknowledged"], false, "{out}");
    assert_eq!(
        gap["last"].as_u64().unwrap() - gap["first"].as_u64().unwrap() + 1,
        3,
        "{out}"
    );
    let reason = file["problem"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("acknowledge") && reason.contains(gap["noticed"].as_str().unwrap()),
        "{reason}"
    );
    let human = cli().run(&["audit", "verify"]).expect(7).stdout();
    assert!(human.contains("NOT acknowledged"), "{human}");

    // Still failing later, with more records after it and after a restart.
    server.stop();
    let server = Server::start(dir.path(), Mode::Dev);
    let cli = || server.cli().token(&root);
    cli().run(&["audit", "verify"]).expect(7);

    // Bad acknowledgements change nothing.
    let before = records(&audit_log(&server))
        .iter()
        .filter(|r| r.get("acknowledges").is_some())
        .count();
    assert_eq!(before, 0);
    let n = record.to_string();
    cli()
        .run(&["audit", "acknowledge-gap", "--record", &n, "--reason", "  "])
        .expect(7);
    cli()
        .run(&[
            "audit",
            "acknowledge-gap",
            "--record",
            &n,
            "--reason",
            "fine\u{202e}enif",
        ])
        .expect(7);
    cli()
        .run(&["audit", "acknowledge-gap", "--record", "2", "--reason", "x"])
        .expect(7);
    // Only an admin of sys/audit may acknowledge.
    let scoped = server.token_with_policy(
        &root,
        "reader",
        "path \"*\" { capabilities = [\"read\", \"list\"] }",
    );
    server
        .cli()
        .token(&scoped)
        .run(&["audit", "acknowledge-gap", "--record", &n, "--reason", "x"])
        .expect(4);
    let acks = |s: &Server| {
        records(&audit_log(s))
            .into_iter()
            .filter(|r| r.get("acknowledges").is_some())
            .collect::<Vec<_>>()
    };
    assert!(acks(&server).is_empty());

    // Acknowledged: recorded with who and why; verify passes and still
    // lists the gap.
    cli()
        .run(&[
            "audit",
            "acknowledge-gap",
            "--record",
            &n,
            "--reason",
            "restored from the 02:00 snapshot; INC-123",
        ])
        .expect(0);
    let ack = acks(&server);
    assert_eq!(ack.len(), 1);
    assert_eq!(ack[0]["actor"]["name"], "root");
    assert!(ack[0]["message"].as_str().unwrap().contains("INC-123"));
    let out = cli().run(&["audit", "verify", "--json"]).expect(0).json();
    assert_eq!(out["files"][0]["gaps"][0]["acknowledged"], true, "{out}");
    let human = cli().run(&["audit", "verify"]).expect(0).stdout();
    assert!(
        human.contains("gap:") && human.contains("acknowledged"),
        "{human}"
    );
    // Twice is refused.
    cli()
        .run(&[
            "audit",
            "acknowledge-gap",
            "--record",
            &n,
            "--reason",
            "again",
        ])
        .expect(7);

    // Rotated: the gap is in the rotated file, its acknowledgement in the
    // live one; the whole history verifies.
    cli().run(&["audit", "rotate"]).expect(0);
    cli().run(&["audit", "verify", "--rotated"]).expect(0);
}

/// A second truncation, after the first was acknowledged, cutting the gap
/// notice away too, is a new gap.
#[test]
fn truncation_after_an_acknowledged_gap_is_found_again() {
    let dir = tempfile::tempdir().unwrap();
    let (server, root) = truncated_while_stopped(dir.path(), 2);
    let out = server
        .cli()
        .token(&root)
        .run(&["audit", "verify", "--json"])
        .expect(7)
        .json();
    let first_gap = out["files"][0]["gaps"][0]["first"].as_u64().unwrap();
    let n = out["files"][0]["gaps"][0]["record"]
        .as_u64()
        .unwrap()
        .to_string();
    server
        .cli()
        .token(&root)
        .run(&["audit", "acknowledge-gap", "--record", &n, "--reason", "ok"])
        .expect(0);
    let log = audit_log(&server);
    server.stop();
    let text = std::fs::read_to_string(&log).unwrap();
    let keep: String = text
        .lines()
        .take(first_gap as usize - 2)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&log, keep).unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let out = server
        .cli()
        .token(&root)
        .run(&["audit", "verify", "--json"])
        .expect(7)
        .json();
    let gaps = out["files"][0]["gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 1, "{out}");
    assert_eq!(gaps[0]["acknowledged"], false);
}

#[test]
fn readers_hide_denied_names() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    for p in ["app/prod/db", "app/dev/db"] {
        let r = server.http(
            "PUT",
            &format!("/api/v1/secrets/{p}"),
            Some(&root),
            Some(br#"{"value":"v"}"#),
        );
        assert_eq!(r.status, 200);
        server.http("GET", &format!("/api/v1/secrets/{p}"), Some(&root), None);
    }
    let auditor = server.token_with_policy(
        &root,
        "auditor",
        "path \"sys/audit\" { capabilities = [\"admin\"] }\n\
         path \"app/*\" { capabilities = [\"read\", \"list\"] }\n\
         path \"app/prod/*\" { capabilities = [\"deny\"] }",
    );
    let cli = || server.cli().token(&auditor);
    // Same answer for a denied name that was read and one that never was.
    for p in ["app/prod/db", "app/prod/never-existed"] {
        let run = cli().run(&["audit", "readers", p, "--json"]);
        assert_eq!(run.code(), 4, "{p}");
    }
    let dev = cli()
        .run(&["audit", "readers", "app/dev/db", "--json"])
        .expect(0)
        .json();
    assert_eq!(dev["readers"].as_array().unwrap().len(), 1, "{dev}");
    // The query leaves out every record naming app/prod/..., asked for or not.
    for args in [
        &["audit", "query", "--json"][..],
        &["audit", "query", "--path", "app/prod/db", "--json"],
        &["audit", "query", "--path", "app/*", "--json"],
    ] {
        let out = cli().run(args).expect(0).json();
        let text = out.to_string();
        assert!(!text.contains("app/prod"), "{args:?}: {text}");
    }
    let all = cli().run(&["audit", "query", "--json"]).expect(0).json();
    assert!(all.to_string().contains("app/dev/db"));
    // Root sees everything.
    let r = server
        .cli()
        .token(&root)
        .run(&["audit", "query", "--path", "app/prod/db", "--json"])
        .expect(0)
        .json();
    assert!(!r["records"].as_array().unwrap().is_empty());
}

#[test]
fn readers_show_kind_and_accessor() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let r = server.http(
        "PUT",
        "/api/v1/secrets/app/dev/db",
        Some(&root),
        Some(br#"{"value":"v"}"#),
    );
    assert_eq!(r.status, 200);
    std::fs::write(
        dir.path().join("r.hcl"),
        "path \"app/*\" { capabilities = [\"read\"] }",
    )
    .unwrap();
    let cli = || server.cli().token(&root);
    cli()
        .run(&[
            "policy",
            "write",
            "r",
            dir.path().join("r.hcl").to_str().unwrap(),
        ])
        .expect(0);
    // A token that names itself after someone else.
    let made = cli()
        .run(&[
            "token",
            "create",
            "--policy",
            "r",
            "--display-name",
            "security-team",
            "--json",
        ])
        .expect(0)
        .json();
    let child = made["token"].as_str().unwrap().to_string();
    let child_acc = made["accessor"].as_str().unwrap().to_string();
    let root_acc = server
        .http("GET", "/api/v1/auth/token/self", Some(&root), None)
        .json()["accessor"]
        .as_str()
        .unwrap()
        .to_string();
    server.http("GET", "/api/v1/secrets/app/dev/db", Some(&child), None);
    server.http("GET", "/api/v1/secrets/app/dev/db", Some(&root), None);
    let human = cli()
        .run(&["audit", "readers", "app/dev/db"])
        .expect(0)
        .stdout();
    assert!(
        human.contains(&format!("service token \"security-team\" ({child_acc})")),
        "{human}"
    );
    assert!(
        human.contains(&format!("service token \"root\" ({root_acc})")),
        "{human}"
    );
    let q = cli()
        .run(&["audit", "query", "--op", "secret.read"])
        .expect(0)
        .stdout();
    assert!(
        q.contains(&format!("service token \"security-team\" ({child_acc})")),
        "{q}"
    );
}

#[test]
fn webhook_url_is_redacted_in_logs() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens there: every delivery fails and is logged.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = format!(
        "[audit]\nwebhooks = [\"http://127.0.0.1:{port}/services/T0/B0/PATHSECRETxyz?token=QUERYSECRETxyz#FRAGSECRET\"]\n[audit.alerts]\nfailures = 1\n"
    );
    let server = Server::start(dir.path(), Mode::Config(&config));
    init_and_unseal(|| server.cli());
    server.http("GET", "/api/v1/secrets/app/db", Some("cft_nobody"), None);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !server.logs().contains("retrying") {
        assert!(
            Instant::now() < deadline,
            "no failed delivery: {}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let logs = server.logs();
    for secret in ["PATHSECRET", "QUERYSECRET", "FRAGSECRET", "/services/"] {
        assert!(!logs.contains(secret), "{secret} in the server log: {logs}");
    }
    assert!(
        logs.contains(&format!("http://127.0.0.1:{port}/…")),
        "{logs}"
    );
    let status = server.cli().run(&["operator", "status", "--json"]);
    assert!(!status.stdout().contains("PATHSECRET"));
}

#[test]
fn webhook_url_with_credentials_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = "[audit]\nwebhooks = [\"https://alice:hunter2secret@alerts.example/in\"]\n";
    let err = match Server::try_start(dir.path(), Mode::Config(config)) {
        Ok(s) => {
            s.stop();
            panic!("a webhook URL with credentials was accepted")
        }
        Err(e) => e,
    };
    assert!(err.contains("user name or password"), "{err}");
    assert!(err.contains("https://alerts.example/…"), "{err}");
    assert!(
        !err.contains("hunter2secret") && !err.contains("alice"),
        "{err}"
    );
}

/// The configuration's `Debug` (the server's, which holds it, included)
/// shows webhook URLs as scheme, host and port only.
#[test]
fn webhook_url_is_redacted_in_config_debug() {
    let audit = coffer_server::AuditConfig {
        webhooks: vec![
            "https://hooks.slack.com/services/T0/B0/SLACKPATHSECRET".into(),
            "http://u:PASSWORDSECRET@h:8080/x?token=QUERYSECRET".into(),
        ],
        ..coffer_server::AuditConfig::default()
    };
    let shown = format!("{audit:?}");
    for secret in [
        "SLACKPATHSECRET",
        "PASSWORDSECRET",
        "QUERYSECRET",
        "/services/",
    ] {
        assert!(!shown.contains(secret), "{shown}");
    }
    assert!(
        shown.contains("https://hooks.slack.com/…") && shown.contains("http://h:8080/…"),
        "{shown}"
    );
}

/// A receiver that answers every delivery with `status` and `body`, and
/// counts the deliveries.
fn hostile_receiver(status: &'static str, body: Vec<u8>) -> (u16, Arc<AtomicUsize>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut sink = vec![0u8; len];
            let _ = reader.read_exact(&mut sink);
            c.fetch_add(1, Ordering::SeqCst);
            let head = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\nlocation: http://127.0.0.1:9/elsewhere\r\nx-request-id: rid\u{202e}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(&body);
        }
    });
    (port, count)
}

/// The webhook hole's neighbour: a hostile receiver's answer (a coffer
/// shaped error body with a line break, a forged log line, controls, a
/// direction override, megabytes of text; or a redirect elsewhere) never
/// reaches the server log: only its status does. Redirects are not
/// followed.
#[test]
fn webhook_hole_receiver_answer_stays_out_of_server_log() {
    let dir = tempfile::tempdir().unwrap();
    let message = format!(
        "x\nFORGED 2026-01-01T00:00:00Z ERROR coffer: all good\u{1b}[2J\u{202e}{}",
        "A".repeat(300_000)
    );
    let body = serde_json::to_vec(
        &serde_json::json!({"error": {"code": "c\nFORGEDCODE", "message": message}}),
    )
    .unwrap();
    let (port, count) = hostile_receiver("500 Internal Server Error", body);
    let (redirect_port, redirected) = hostile_receiver("302 Found", Vec::new());
    let config = format!(
        "[audit]\nwebhooks = [\"http://127.0.0.1:{port}/hook\", \"http://127.0.0.1:{redirect_port}/hook\"]\n[audit.alerts]\nfailures = 1\n"
    );
    let server = Server::start(dir.path(), Mode::Config(&config));
    init_and_unseal(|| server.cli());
    server.http("GET", "/api/v1/secrets/app/db", Some("cft_nobody"), None);
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.logs().matches("retrying").count() < 2 {
        assert!(
            Instant::now() < deadline,
            "no failed delivery: {}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let logs = server.logs();
    for bad in ["FORGED", "AAAAAAAAAA", "\u{1b}[2J", "\u{202e}", "rid"] {
        assert!(!logs.contains(bad), "{bad:?} in the server log");
    }
    assert!(
        logs.len() < 100_000,
        "the server log grew by {}",
        logs.len()
    );
    assert!(logs.contains("answered HTTP 500"), "{logs}");
    assert!(logs.contains("answered HTTP 302"), "{logs}");
    assert!(count.load(Ordering::SeqCst) >= 1);
    assert!(redirected.load(Ordering::SeqCst) >= 1);
}

/// The masking hole's neighbours, end to end: a token in a URL path with
/// its prefix or body percent-encoded, or in upper case, reaches neither
/// the audit log nor the server log, in the route nor in the path.
#[test]
fn masking_hole_percent_encoded_token_in_url_is_masked() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let body = &root[4..];
    let enc = |c: char| format!("%{:02X}", c as u32);
    let first = body.chars().next().unwrap();
    for path in [
        format!("/api/v1/secrets/a/%63ft_{body}"),
        format!("/api/v1/secrets/a/%43FT_{body}"),
        format!("/api/v1/secrets/a/cf%74_{body}"),
        format!("/api/v1/secrets/a/CFT_{body}"),
        format!("/api/v1/secrets/a/%2563ft_{body}"),
        format!("/api/v1/secrets/a/cft_{}{}", enc(first), &body[1..]),
        format!(
            "/api/v1/secrets/a/cft_{}%E2%80%8B{}",
            &body[..4],
            &body[4..]
        ),
    ] {
        server.http("GET", &path, Some(&root), None);
        server.http("GET", &path, None, None);
    }
    let raw = std::fs::read_to_string(audit_log(&server)).unwrap();
    assert!(
        !raw.contains(&body[8..24]),
        "a token body reached the audit log"
    );
    assert!(raw.contains("%63ft_<masked>"), "{raw}");
    assert!(!server.logs().contains(&body[8..24]));
    server
        .cli()
        .token(&root)
        .run(&["audit", "verify"])
        .expect(0);
}

/// The acknowledgement hole's neighbour: the gap of a rotated file is
/// acknowledged in the live file, and was then still found open in the
/// rotated one, and acknowledged again and again.
#[test]
fn ack_hole_rotated_gap_is_not_acknowledged_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (server, root) = truncated_while_stopped(dir.path(), 3);
    let cli = || server.cli().token(&root);
    let out = cli().run(&["audit", "verify", "--json"]).expect(7).json();
    let n = out["files"][0]["gaps"][0]["record"]
        .as_u64()
        .unwrap()
        .to_string();
    cli().run(&["audit", "rotate"]).expect(0);
    let rotated = common::files_under(&server.data_dir())
        .into_iter()
        .find(|f| {
            let name = f.file_name().unwrap().to_string_lossy().to_string();
            name.starts_with("audit.log.") && !name.ends_with(".head")
        })
        .expect("a rotated file");
    let ack = |reason: &str| {
        cli().run(&[
            "audit",
            "acknowledge-gap",
            "--file",
            rotated.to_str().unwrap(),
            "--record",
            &n,
            "--reason",
            reason,
        ])
    };
    ack("INC-1").expect(0);
    let run = cli().run(&[
        "audit",
        "acknowledge-gap",
        "--file",
        rotated.to_str().unwrap(),
        "--record",
        &n,
        "--reason",
        "again",
    ]);
    assert_eq!(run.code(), 7, "{}{}", run.stdout(), run.stderr());
    assert!(
        run.stderr().contains("already acknowledged"),
        "{}",
        run.stderr()
    );
    let acks = records(&audit_log(&server))
        .into_iter()
        .filter(|r| r.get("acknowledges").is_some())
        .count();
    assert_eq!(acks, 1, "one acknowledgement, in the live file");
    cli().run(&["audit", "verify", "--rotated"]).expect(0);
}

/// The head hole end to end: the end of the log and its head file removed
/// together while the server was stopped fails verification until
/// acknowledged (it was an alert alone).
#[test]
fn head_hole_log_cut_with_its_head_file_fails_verify() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    for _ in 0..4 {
        server.http("GET", "/api/v1/secrets/x", Some(&root), None);
    }
    let log = audit_log(&server);
    server.stop();
    let text = std::fs::read_to_string(&log).unwrap();
    let keep: String = text.lines().take(3).map(|l| format!("{l}\n")).collect();
    std::fs::write(&log, keep).unwrap();
    std::fs::remove_file(format!("{}.head", log.display())).unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let cli = || server.cli().token(&root);
    let run = cli().run(&["audit", "verify"]);
    assert_eq!(run.code(), 7, "{}", run.stdout());
    assert!(
        run.stdout().contains("records after record 3"),
        "{}",
        run.stdout()
    );
    let out = cli().run(&["audit", "verify", "--json"]).json();
    let n = out["files"][0]["gaps"][0]["record"]
        .as_u64()
        .unwrap()
        .to_string();
    cli()
        .run(&[
            "audit",
            "acknowledge-gap",
            "--record",
            &n,
            "--reason",
            "INC-2",
        ])
        .expect(0);
    cli().run(&["audit", "verify"]).expect(0);
}

/// The hiding hole's neighbour: a denied name requested with a doubled
/// slash, a `.` segment or an encoded slash (refused as invalid, or
/// decoded) was shown to an auditor whose policies deny it.
#[test]
fn hiding_hole_denied_name_in_another_spelling_is_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    for p in [
        "app//prod/DBNAME",
        "app/prod/./DBNAME",
        "app/./prod/DBNAME",
        "app%2F%2Fprod%2FDBNAME",
        "app/dev/x",
    ] {
        server.http("GET", &format!("/api/v1/secrets/{p}"), Some(&root), None);
    }
    let auditor = server.token_with_policy(
        &root,
        "auditor",
        "path \"sys/audit\" { capabilities = [\"admin\"] }\n\
         path \"app/*\" { capabilities = [\"read\", \"list\"] }\n\
         path \"app/prod/*\" { capabilities = [\"deny\"] }",
    );
    let out = server
        .cli()
        .token(&auditor)
        .run(&["audit", "query", "--json"])
        .expect(0)
        .json()
        .to_string();
    assert!(!out.contains("DBNAME"), "{out}");
    assert!(out.contains("app/dev/x"), "{out}");
}
