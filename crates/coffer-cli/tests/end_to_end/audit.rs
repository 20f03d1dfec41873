//! The audit log end to end, against the real binary: records found by
//! `coffer audit query`, `readers` and `hash`, tampering named by `coffer
//! audit verify`, fail closed when no sink can record (and service resumes
//! when one recovers), alerts delivered to a webhook, rotation, and the
//! project-wide canary scan.

use crate::common;

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::canary::Canary;
use common::{Mode, Server, init_and_unseal, ok, webhook_receiver_with_headers};
use serde_json::Value;

fn records(file: &Path) -> Vec<Value> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn audit_log(server: &Server) -> PathBuf {
    server.data_dir().join("audit.log")
}

/// The records of a set of requests, as `coffer audit hash`, `query` and
/// `readers` find them. (The records themselves, field by field, are
/// checked in-process in coffer-server's `tests/audit.rs`.)
#[test]
fn audit_records_are_found_by_the_cli_query_readers_and_hash() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let body = br#"{"value":"v1"}"#;
    // (request, expected op, expected outcome, expected status)
    let cases: Vec<(common::Response, &str, &str, u16)> = vec![
        (
            server.http("PUT", "/api/v1/secrets/app/dev/db", Some(&root), Some(body)),
            "secret.write",
            "ok",
            200,
        ),
        (
            server.http("GET", "/api/v1/secrets/app/dev/db", Some(&root), None),
            "secret.read",
            "ok",
            200,
        ),
        (
            server.http(
                "GET",
                "/api/v1/secrets/app/dev/db",
                Some("cft_not_a_token"),
                None,
            ),
            "secret.read",
            "denied",
            401,
        ),
        (
            server.http("GET", "/api/v1/secrets/app/dev/nope", Some(&root), None),
            "secret.read",
            "error",
            404,
        ),
        (
            server.http(
                "PUT",
                "/api/v1/secrets/app/dev/db",
                Some(&root),
                Some(b"{not json"),
            ),
            "secret.write",
            "error",
            400,
        ),
        (
            common::http(
                server.host_port(),
                "PUT",
                "/api/v1/secrets/app/dev/db",
                Some(&root),
                Some(b"{}"),
                &[("Content-Length", "999999999")],
            ),
            "secret.write",
            "error",
            413,
        ),
        (
            server.http("GET", "/api/v1/no/such/route", None, None),
            "unmatched",
            "error",
            404,
        ),
        (
            server.http("POST", "/api/v1/sys/keyring", Some(&root), None),
            "unmatched",
            "error",
            405,
        ),
    ];
    let log = records(&audit_log(&server));
    let by_id = |id: &str| -> Vec<&Value> {
        log.iter()
            .filter(|r| r["request_id"].as_str() == Some(id))
            .collect()
    };
    for (resp, op, _, code) in &cases {
        assert_eq!(resp.status, *code, "{op}: {}", resp.text());
    }
    let read = by_id(cases[1].0.header("x-request-id").unwrap())[0];
    let bad = by_id(cases[2].0.header("x-request-id").unwrap())[0];
    // `coffer audit hash` gives the tags the records carry.
    let cli = || server.cli().token(&root);
    let tag = cli()
        .stdin("cft_not_a_token")
        .run(&["audit", "hash"])
        .expect(0)
        .stdout();
    assert_eq!(bad["token"], tag.trim());
    // A token that authenticated is tagged once and the tag kept with the
    // cached token: every request it made carries the same tag, the one
    // `coffer audit hash` gives for it.
    let root_tag = cli()
        .stdin(&root)
        .run(&["audit", "hash"])
        .expect(0)
        .stdout();
    assert_eq!(read["token"], root_tag.trim());
    let by_root: Vec<&Value> = log
        .iter()
        .filter(|r| r["actor"]["accessor"] == read["actor"]["accessor"])
        .collect();
    assert!(by_root.len() > 3, "{by_root:?}");
    for r in by_root {
        assert_eq!(r["token"], root_tag.trim(), "{r}");
    }

    // Queries, through the server and offline on the file.
    let q = cli()
        .run(&[
            "audit",
            "query",
            "--op",
            "secret.read",
            "--outcome",
            "ok",
            "--json",
        ])
        .expect(0)
        .json();
    assert_eq!(q["records"].as_array().unwrap().len(), 1);
    let offline = server
        .cli()
        .run(&[
            "audit",
            "query",
            "--file",
            audit_log(&server).to_str().unwrap(),
            "--path",
            "app/*",
            "--since",
            "1h",
            "--json",
        ])
        .expect(0)
        .json();
    // Refused requests name the path from the URL when no decision did.
    assert_eq!(offline["records"].as_array().unwrap().len(), 6, "{offline}");
    let by_tag = cli()
        .run(&["audit", "query", "--actor", tag.trim(), "--json"])
        .expect(0)
        .json();
    assert_eq!(by_tag["records"].as_array().unwrap().len(), 1);
    let readers = cli()
        .run(&["audit", "readers", "app/dev/db", "--json"])
        .expect(0)
        .json();
    let readers = readers["readers"].as_array().unwrap();
    assert_eq!(readers.len(), 1);
    assert_eq!(readers[0]["name"], "root");
    assert_eq!(readers[0]["reads"], 1);
    let human = cli()
        .run(&["audit", "readers", "app/dev/db"])
        .expect(0)
        .stdout();
    assert!(human.contains("service token \"root\" (acc_"), "{human}");

    // The audit API is for admins of sys/audit only.
    cli()
        .stdin("path \"app/*\" { capabilities = [\"read\"] }")
        .run(&["policy", "write", "reader"])
        .expect(0);
    let scoped = cli()
        .run(&["token", "create", "--policy", "reader", "--json"])
        .expect(0)
        .json()["token"]
        .as_str()
        .unwrap()
        .to_string();
    for args in [
        &["audit", "query"][..],
        &["audit", "verify"],
        &["audit", "readers", "app/dev/db"],
    ] {
        server.cli().token(&scoped).run(args).expect(4);
    }
    server
        .cli()
        .token(&scoped)
        .stdin("x")
        .run(&["audit", "hash"])
        .expect(4);
    // Bad query input is a usage error that changes nothing.
    cli()
        .run(&["audit", "query", "--since", "yesterday"])
        .expect(2);
    cli()
        .run(&["audit", "verify", "--file", "/etc/passwd"])
        .expect(7);
}

/// Runs `coffer audit verify --file F --json` and returns the problem.
fn verify_problem(server: &Server, root: &str, file: &Path) -> Value {
    let run = server.cli().token(root).run(&[
        "audit",
        "verify",
        "--file",
        file.to_str().unwrap(),
        "--json",
    ]);
    let out = run.json();
    assert_eq!(run.code(), 7, "{out}");
    out["files"][0]["problem"].clone()
}

#[test]
fn verify_names_every_kind_of_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    for i in 0..12 {
        let body = format!(r#"{{"value":"v{i}"}}"#);
        let r = server.http(
            "PUT",
            &format!("/api/v1/secrets/app/p{i}"),
            Some(&root),
            Some(body.as_bytes()),
        );
        ok(&r, "write");
    }
    let cli = || server.cli().token(&root);
    let verdict = cli().run(&["audit", "verify"]).expect(0).stdout();
    assert!(verdict.contains("ok, "), "{verdict}");
    // Let the head file catch up with the twelve writes (it is written a
    // few times a second, in the background), then copy it before the log,
    // so the copied log holds at least the records the head names.
    let data = server.data_dir();
    let deadline = Instant::now() + Duration::from_secs(20);
    let (head_seq, head_text) = loop {
        let text = std::fs::read_to_string(data.join("audit.log.head")).unwrap_or_default();
        let seq = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["seq"].as_u64())
            .unwrap_or(0) as usize;
        if seq > 12 {
            break (seq, text);
        }
        assert!(Instant::now() < deadline, "the head file stays at {seq}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let original = std::fs::read_to_string(audit_log(&server)).unwrap();
    let lines: Vec<&str> = original.lines().collect();
    assert!(lines.len() >= head_seq && head_seq > 8, "{head_seq}");
    let write_copy = |name: &str, lines: &[String]| -> PathBuf {
        let p = data.join(format!("{name}.log"));
        std::fs::write(
            &p,
            lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
        )
        .unwrap();
        std::fs::write(data.join(format!("{name}.log.head")), &head_text).unwrap();
        p
    };
    let owned: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    let intact = write_copy("intact", &owned);
    cli()
        .run(&["audit", "verify", "--file", intact.to_str().unwrap()])
        .expect(0);

    // (mutation, mutated lines, line the report must name)
    let mut cases: Vec<(&str, Vec<String>, u64)> = Vec::new();
    let mut v = owned.clone();
    v.insert(5, owned[2].clone());
    cases.push(("insert", v, 6));
    let mut v = owned.clone();
    v.remove(4);
    cases.push(("delete", v, 5));
    let mut v = owned.clone();
    v.swap(6, 7);
    cases.push(("reorder", v, 7));
    let mut v = owned.clone();
    v[3] = v[3].replacen("app/p", "app/q", 1);
    cases.push(("edit one byte", v, 4));
    let mut v = owned.clone();
    v.truncate(head_seq - 2);
    cases.push(("truncate", v, head_seq as u64 - 1));
    for (name, mutated, want) in cases {
        let file = write_copy(&format!("tampered-{}", name.replace(' ', "-")), &mutated);
        let problem = verify_problem(&server, &root, &file);
        assert_eq!(problem["line"], want, "{name}: {problem}");
        let human = cli()
            .run(&["audit", "verify", "--file", file.to_str().unwrap()])
            .expect(7)
            .stdout();
        assert!(
            human.contains(&format!("FAILED at line {want}")),
            "{name}: {human}"
        );
    }

    // Truncating the live log is caught against the running writer's head.
    let live = audit_log(&server);
    let text = std::fs::read_to_string(&live).unwrap();
    let keep: usize = text
        .lines()
        .take(text.lines().count() - 1)
        .map(|l| l.len() + 1)
        .sum();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&live)
        .unwrap()
        .set_len(keep as u64)
        .unwrap();
    let out = cli().run(&["audit", "verify", "--json"]).expect(7).json();
    let reason = out["files"][0]["problem"]["reason"].as_str().unwrap();
    assert!(reason.contains("truncated"), "{reason}");
    assert_eq!(out["files"][0]["head"], "live");
    server.stop();

    // Truncated while the server is down: found at the next start.
    let dir2 = tempfile::tempdir().unwrap();
    let server = Server::start(dir2.path(), Mode::Dev);
    let root = server.root_token();
    for _ in 0..3 {
        server.http("GET", "/api/v1/secrets/x", Some(&root), None);
    }
    let data = server.data_dir();
    server.stop();
    let log = data.join("audit.log");
    let text = std::fs::read_to_string(&log).unwrap();
    let keep: String = text
        .lines()
        .take(text.lines().count() - 2)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&log, keep).unwrap();
    let server = Server::start(dir2.path(), Mode::Dev);
    let alerts = server
        .cli()
        .token(&root)
        .run(&["audit", "query", "--type", "alert", "--json"])
        .expect(0)
        .json();
    let rules: Vec<&str> = alerts["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["alert"]["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["audit_log_truncated"]);
}

#[test]
fn a_full_disk_refuses_every_request_and_reveals_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // Bootstrap a dev data directory with a secret, audited normally.
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    server
        .cli()
        .token(&root)
        .stdin("CANARY-full-disk")
        .run(&["set", "app/db"])
        .expect(0);
    server.stop();
    // Now the only sink is a device that is always full.
    let mut cmd = std::process::Command::new(common::BIN);
    let out_log = dir.path().join("full.out");
    let err_log = dir.path().join("full.err");
    let mut child = cmd
        .args([
            "server",
            "--dev",
            "--listen",
            "127.0.0.1:0",
            "--audit-file",
            "/dev/full",
        ])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .stdout(std::fs::File::create(&out_log).unwrap())
        .stderr(std::fs::File::create(&err_log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = loop {
        let out = std::fs::read_to_string(&out_log).unwrap_or_default();
        if let Some(a) = out
            .split_whitespace()
            .find(|w| w.starts_with("http://127.0.0.1:"))
        {
            break a.to_string();
        }
        assert!(Instant::now() < deadline, "no address");
        std::thread::sleep(Duration::from_millis(20));
    };
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let cli = || common::Cli::new(&addr, &home).token(&root);
    let get = cli().run(&["get", "app/db"]);
    assert_eq!(get.code(), 5, "{}", get.stderr());
    assert!(
        !get.stdout().contains("CANARY"),
        "a value was served unaudited"
    );
    assert!(get.stderr().contains("audit"), "{}", get.stderr());
    cli().stdin("changed").run(&["set", "app/db"]).expect(5);
    let host = addr.trim_start_matches("http://");
    let r = common::http(
        host,
        "GET",
        "/api/v1/secrets/app/db",
        Some(&root),
        None,
        &[],
    );
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (503, "audit_unavailable")
    );
    assert!(!r.text().contains("CANARY"));
    // The Vault API fails closed the same way, in Vault's error shape.
    for (method, body) in [
        ("GET", None),
        ("POST", Some(&br#"{"data":{"v":"changed"}}"#[..])),
    ] {
        let r = common::http(
            host,
            method,
            "/v1/secret/data/app/db",
            None,
            body,
            &[("x-vault-token", &root)],
        );
        assert_eq!(r.status, 503, "{method}: {}", r.text());
        assert!(
            r.json()["errors"][0]
                .as_str()
                .unwrap()
                .contains("audit log"),
            "{}",
            r.text()
        );
        assert!(!r.text().contains("CANARY"));
    }
    let h = common::http(host, "GET", "/v1/sys/health", None, None, &[]);
    assert_eq!(h.status, 503, "{}", h.text());
    let h = common::http(host, "GET", "/api/v1/sys/health", None, None, &[]);
    assert_eq!(h.status, 503, "{}", h.text());
    assert_eq!(h.json()["audit_available"], false);
    let _ = child.kill();
    let _ = child.wait();
    let logs = std::fs::read_to_string(&err_log).unwrap();
    assert!(logs.contains("no audit sink can record"), "{logs}");
    // Nothing changed while unaudited.
    let server = Server::start(dir.path(), Mode::Dev);
    let meta = server
        .cli()
        .token(&root)
        .run(&["get", "app/db"])
        .expect(0)
        .stdout();
    assert_eq!(meta, "CANARY-full-disk");
}

/// A line collector on a TCP port that can be stopped and restarted.
struct Collector {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Collector {
    fn start(port: u16, lines: Arc<Mutex<Vec<String>>>) -> Collector {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (s, l) = (stop.clone(), lines.clone());
        let thread = std::thread::spawn(move || {
            // Each connection with the part of a line read so far.
            let mut conns: Vec<(BufReader<TcpStream>, String)> = Vec::new();
            loop {
                // Read once more after the stop is asked for: a record
                // written before `stop` was called (say, that of the last
                // request, acknowledged before its response) may still be
                // in the receive buffer, and closing would drop it.
                let stopping = s.load(Ordering::Acquire);
                while let Ok((c, _)) = listener.accept() {
                    c.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
                    conns.push((BufReader::new(c), String::new()));
                }
                for (c, line) in &mut conns {
                    while c.read_line(line).is_ok_and(|n| n > 0) {
                        if line.ends_with('\n') {
                            l.lock().unwrap().push(std::mem::take(line));
                        }
                    }
                }
                if stopping {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            // Dropping the connections and the listener closes them.
        });
        Collector {
            port,
            stop,
            thread: Some(thread),
        }
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        self.thread.take().unwrap().join().unwrap();
    }
}

#[test]
fn a_lost_socket_sink_refuses_requests_until_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let collector = Collector::start(0, lines.clone());
    let port = collector.port;
    let config = format!("[audit]\nfiles = []\nsockets = [\"tcp://127.0.0.1:{port}\"]\n");
    let server = Server::start(dir.path(), Mode::Config(&config));
    let (_, root) = init_and_unseal(|| server.cli());
    let cli = || server.cli().token(&root);
    cli()
        .stdin("CANARY-socket")
        .run(&["set", "app/db"])
        .expect(0);
    assert_eq!(
        cli().run(&["get", "app/db"]).expect(0).stdout(),
        "CANARY-socket"
    );

    let health = |status: u16| {
        let r = server.http("GET", "/api/v1/sys/health", None, None);
        (r.status == status).then(|| r.json())
    };
    assert!(health(200).is_some_and(|h| h["audit_available"] == true));

    collector.stop();
    let get = cli().run(&["get", "app/db"]);
    assert_eq!(get.code(), 5, "{}", get.stderr());
    assert!(!get.stdout().contains("CANARY"));
    cli().stdin("changed").run(&["set", "app/db"]).expect(5);
    // Health tells load balancers, and status operators, that every request
    // is being refused.
    let h = health(503).expect("health answers 503 while nothing can record");
    assert_eq!(h["sealed"], false);
    assert_eq!(h["audit_available"], false);
    let status = cli().run(&["status"]);
    assert_eq!(status.code(), 5, "{}", status.stdout());
    assert!(
        status.stdout().contains("UNAVAILABLE"),
        "{}",
        status.stdout()
    );

    // The collector returns. With no request made (a load balancer sends
    // none to a server whose health is 503), the server finds out by itself.
    let collector = Collector::start(port, lines.clone());
    let deadline = Instant::now() + Duration::from_secs(15);
    while health(200).is_none() {
        assert!(
            Instant::now() < deadline,
            "the recovered sink was not noticed:\n{}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        cli().run(&["get", "app/db"]).expect(0).stdout(),
        "CANARY-socket",
        "the refused write changed nothing"
    );
    cli().run(&["status"]).expect(0);
    collector.stop();
    let got: Vec<Value> = lines
        .lock()
        .unwrap()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // One chain across the outage: sequence numbers run on, and the first
    // line after it says how many records this sink missed.
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r["seq"], i as u64 + 1, "{r}");
    }
    // The first record after the outage is the server's test of the sink,
    // and it counts the records lost (the two refused requests and those
    // made while the lost connection went unnoticed), not the tests.
    let back = got
        .iter()
        .find(|r| r["missed"].as_u64().is_some_and(|n| n >= 1))
        .expect("a record says what was missed");
    assert!(
        back["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("audit log recording again")),
        "{back}"
    );
    assert!(back["missed"].as_u64().unwrap() <= 6, "{back}");
    assert!(!lines.lock().unwrap().concat().contains("CANARY"));
}

#[test]
fn alerts_are_records_and_reach_webhooks_with_retry() {
    let dir = tempfile::tempdir().unwrap();
    let (port, bodies, deliveries) = webhook_receiver_with_headers();
    // The signing key is itself a canary: it must show nowhere.
    let key = "CANARYwebhookkey0123456789abcdef0123456789abcdef";
    let key_file = dir.path().join("webhook.key");
    std::fs::write(&key_file, format!("{key}\n")).unwrap();
    let config = format!(
        "[audit]\nwebhooks = [\"http://127.0.0.1:{port}/hook\"]\nwebhook_secret_file = \"{}\"\n[audit.alerts]\nfailures = 3\n",
        key_file.display()
    );
    let server = Server::start(dir.path(), Mode::Config(&config));
    let (_, root) = init_and_unseal(|| server.cli());
    let stolen = "cft_CANARY_stolen_token";
    for _ in 0..5 {
        let r = server.http("GET", "/api/v1/secrets/app/db", Some(stolen), None);
        assert_eq!(r.status, 401);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let delivered = loop {
        let got = bodies.lock().unwrap().clone();
        if let Some(b) = got.iter().find(|b| b.contains("failure_burst")) {
            break b.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no alert delivered: {got:?}\n{}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let alert: Value = serde_json::from_str(&delivered).unwrap();
    assert_eq!(alert["type"], "alert");
    assert_eq!(alert["alert"]["count"], 3);
    assert_eq!(alert["alert"]["subject"], "source 127.0.0.1");
    assert!(!delivered.contains(stolen));
    assert!(server.logs().contains("retrying"), "{}", server.logs());
    // One alert for the burst, however long it goes on, and it is in the log.
    let q = server
        .cli()
        .token(&root)
        .run(&["audit", "query", "--type", "alert", "--json"])
        .expect(0)
        .json();
    let recs = q["records"].as_array().unwrap();
    assert_eq!(recs.len(), 1, "{q}");
    assert_eq!(recs[0]["alert"]["rule"], "failure_burst");
    let raw = std::fs::read_to_string(server.data_dir().join("audit.log")).unwrap();
    assert!(!raw.contains(stolen));

    // Every attempt is signed afresh, under one delivery id; a receiver
    // checks the signature with `coffer audit verify-webhook`.
    let attempts: Vec<common::Delivery> = deliveries
        .lock()
        .unwrap()
        .iter()
        .filter(|d| d.body.contains("failure_burst"))
        .cloned()
        .collect();
    assert!(attempts.len() >= 2, "{attempts:?}");
    assert_eq!((attempts[0].status, attempts[1].status), (500, 200));
    let id = attempts[0]
        .header("coffer-delivery")
        .expect("a delivery id");
    assert_eq!(id.len(), 32, "{id}");
    assert!(
        attempts
            .iter()
            .all(|d| d.header("coffer-delivery") == Some(id))
    );
    let other_key = dir.path().join("other.key");
    std::fs::write(&other_key, "another-key-0123456789abcdef0123456789").unwrap();
    let mut outputs = String::new();
    for d in &attempts {
        let sig = d.header("coffer-signature").expect("signed");
        let check = |file: &Path, body: &str| {
            let out = server.cli().stdin(body).run(&[
                "audit",
                "verify-webhook",
                "--secret-file",
                file.to_str().unwrap(),
                "--signature",
                sig,
            ]);
            (out.code(), format!("{}{}", out.stdout(), out.stderr()))
        };
        let (code, out) = check(&key_file, &d.body);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("signature ok"), "{out}");
        outputs += &out;
        // One byte of the body changed, or another key: refused, exit 7.
        let edited = d.body.replacen("failure_burst", "failure_bursT", 1);
        let (code, out) = check(&key_file, &edited);
        assert_eq!(code, 7, "{out}");
        assert!(out.contains("does not match"), "{out}");
        outputs += &out;
        let (code, out) = check(&other_key, &d.body);
        assert_eq!(code, 7, "{out}");
        outputs += &out;
    }
    // A replay: the first attempt was signed at least a second before the
    // retry (its backoff), so with no tolerance it is too old by now.
    let replay = server
        .cli()
        .env("COFFER_WEBHOOK_SECRET", key)
        .stdin(&attempts[0].body)
        .run(&[
            "audit",
            "verify-webhook",
            "--signature",
            attempts[0].header("coffer-signature").unwrap(),
            "--tolerance",
            "0",
        ]);
    assert_eq!(replay.code(), 7, "{}", replay.stderr());
    assert!(replay.stderr().contains("old"), "{}", replay.stderr());
    outputs += &replay.stderr();
    let raw = std::fs::read_to_string(server.data_dir().join("audit.log")).unwrap();
    for place in [&raw, &server.logs(), &outputs] {
        assert!(
            !place.contains("CANARYwebhookkey"),
            "the signing key leaked: {place}"
        );
    }
}

/// An alert whose delivery waits for a retry when the server stops is tried
/// once more, at once, before the server exits, under the same delivery id.
#[test]
fn a_stopping_server_tries_its_undelivered_alerts_once_more() {
    let dir = tempfile::tempdir().unwrap();
    let (port, bodies, deliveries) = webhook_receiver_with_headers();
    let config = format!(
        "[audit]\nwebhooks = [\"http://127.0.0.1:{port}/hook\"]\n[audit.alerts]\nfailures = 3\n"
    );
    let server = Server::start(dir.path(), Mode::Config(&config));
    init_and_unseal(|| server.cli());
    for _ in 0..3 {
        let r = server.http("GET", "/api/v1/secrets/app/db", Some("cft_nobody"), None);
        assert_eq!(r.status, 401);
    }
    // The receiver refuses the first attempt; the next would come a second
    // later, but the server is stopped at once.
    let deadline = Instant::now() + Duration::from_secs(20);
    while deliveries.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "no delivery attempted");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(server.stop().success());
    let got = bodies.lock().unwrap().clone();
    assert!(
        got.iter().any(|b| b.contains("failure_burst")),
        "the alert was dropped at stop: {got:?}"
    );
    let attempts = deliveries.lock().unwrap().clone();
    let ids: Vec<_> = attempts
        .iter()
        .filter(|d| d.body.contains("failure_burst"))
        .map(|d| (d.status, d.header("coffer-delivery").map(str::to_string)))
        .collect();
    assert_eq!(ids.len(), 2, "{attempts:?}");
    assert_eq!((ids[0].0, ids[1].0), (500, 200));
    assert_eq!(ids[0].1, ids[1].1);
}

/// The project-wide canary scan: one value sent through every kind of
/// request, good and bad, then searched for in everything the system wrote.
#[test]
fn canary_appears_only_where_it_belongs() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let mut canary = Canary::new("audit");
    let c = canary.value.clone();
    let cli = || server.cli().token(&root);

    let set = cli().stdin(&c).run(&["set", "app/prod/db"]).expect(0);
    canary.search_run("set", &set);
    let get = cli().run(&["get", "app/prod/db"]).expect(0);
    canary.search_run_allowing_stdout("get", &get);
    let fields = format!(r#"{{"user":"app","password":"{c}"}}"#);
    let set = cli()
        .stdin(&fields)
        .run(&["set", "app/prod/f", "--fields"])
        .expect(0);
    canary.search_run("set --fields", &set);
    let r = server.http("GET", "/api/v1/secrets/app/prod/db", Some(&root), None);
    assert!(r.text().contains(&c));
    // The read response is where the value belongs; its headers are not.
    canary.search("read: headers", format!("{:?}", r.headers));

    // Hostile and mistaken uses of the value.
    let hostile: Vec<(&str, &str, String, Option<Vec<u8>>)> = vec![
        ("token", "/api/v1/secrets/app/prod/db", c.clone(), None),
        (
            "bad json",
            "/api/v1/secrets/app/x",
            root.clone(),
            Some(format!("{{\"value\": {c}}}").into_bytes()),
        ),
        (
            "number value",
            "/api/v1/secrets/app/x",
            root.clone(),
            Some(format!("{{\"value\":\"a\",\"{c}\":1}}").into_bytes()),
        ),
        (
            "login",
            "/api/v1/auth/login",
            String::new(),
            Some(format!(r#"{{"user":"{c}","password":"{c}"}}"#).into_bytes()),
        ),
        (
            "invite",
            "/api/v1/auth/invites/accept",
            String::new(),
            Some(format!(r#"{{"code":"{c}","user":"bob","password":"{c}"}}"#).into_bytes()),
        ),
        (
            "unseal",
            "/api/v1/sys/unseal",
            String::new(),
            Some(format!(r#"{{"key":"{c}"}}"#).into_bytes()),
        ),
        (
            "hash",
            "/api/v1/sys/audit/hash",
            root.clone(),
            Some(format!(r#"{{"value":"{c}"}}"#).into_bytes()),
        ),
        (
            "verify",
            "/api/v1/sys/audit/verify",
            root.clone(),
            Some(format!(r#"{{"file":"{c}"}}"#).into_bytes()),
        ),
    ];
    for (name, path, token, body) in &hostile {
        let method = if body.is_some() && path.contains("secrets") {
            "PUT"
        } else if body.is_some() {
            "POST"
        } else {
            "GET"
        };
        let token = (!token.is_empty()).then_some(token.as_str());
        let r = server.http(method, path, token, body.as_deref());
        canary.search_response(name, &r);
    }
    let r = server.http(
        "GET",
        &format!("/api/v1/secrets/app/prod/db?version={c}"),
        Some(&root),
        None,
    );
    canary.search_response("version query", &r);
    let login = server.cli().stdin(&c).run(&["login", "--user", "nobody"]);
    canary.search_run("login", &login);
    let hash = cli().stdin(&c).run(&["audit", "hash"]).expect(0);
    canary.search_run("audit hash", &hash);
    for args in [
        &["audit", "query", "--json"][..],
        &["audit", "readers", "app/prod/db", "--json"],
        &["audit", "verify", "--json"],
    ] {
        let run = cli().run(args);
        canary.search_run(&args.join(" "), &run);
    }

    let data = server.data_dir();
    server.stop();
    canary.search_dir(&data);
    canary.search_dir(dir.path());
    canary.assert_nowhere_else();
}

/// The rotated files beside a log, oldest first.
fn rotated_logs(log: &Path) -> Vec<PathBuf> {
    let name = log.file_name().unwrap().to_string_lossy().into_owned();
    let mut files: Vec<PathBuf> = std::fs::read_dir(log.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.starts_with(&format!("{name}.2")) && !n.ends_with(".head")
        })
        .collect();
    files.sort();
    files
}

#[test]
fn the_log_rotates_while_requests_go_on_by_command_and_by_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let log = audit_log(&server);
    let mut canary = Canary::new("rotate");
    let put = server.http(
        "PUT",
        "/api/v1/secrets/app/prod/db",
        Some(&root),
        Some(format!(r#"{{"value":"{}"}}"#, canary.value).as_bytes()),
    );
    assert_eq!(put.status, 200, "{}", put.text());

    // Reads on two threads all along, each noting its request id.
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (stop, host, root) = (stop.clone(), server.host_port().to_string(), root.clone());
            std::thread::spawn(move || {
                let mut ids = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let r = common::http(
                        &host,
                        "GET",
                        "/api/v1/secrets/app/prod/db",
                        Some(&root),
                        None,
                        &[],
                    );
                    assert_eq!(r.status, 200, "{}", r.text());
                    ids.push(r.header("x-request-id").unwrap().to_string());
                }
                ids
            })
        })
        .collect();
    // Whole lines only: the server is writing the file meanwhile.
    let enough_reads = |n: usize| {
        common::wait_until(Duration::from_secs(30), "reads to be recorded", || {
            std::fs::read(&log).is_ok_and(|b| b.iter().filter(|&&c| c == b'\n').count() >= n)
        })
    };

    // By command, twice (the second in the same second takes a suffix).
    enough_reads(20);
    let first = server
        .cli()
        .token(&root)
        .run(&["audit", "rotate", "--json"])
        .expect(0);
    canary.search_run("rotate --json", &first);
    let first = first.json();
    assert_eq!(first["ok"], true, "{first}");
    assert_eq!(
        first["rotated"][0]["file"],
        log.display().to_string(),
        "{first}"
    );
    enough_reads(10);
    let second = server
        .cli()
        .token(&root)
        .run(&["audit", "rotate"])
        .expect(0);
    canary.search_run("rotate", &second);
    assert!(
        second.stdout().contains("a new file started"),
        "{}",
        second.stdout()
    );
    // By SIGHUP.
    enough_reads(10);
    let pid = server.child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    common::wait_until(Duration::from_secs(30), "the SIGHUP rotation", || {
        rotated_logs(&log).len() == 3
    });
    enough_reads(10);
    stop.store(true, Ordering::Relaxed);
    let read_ids: Vec<String> = readers
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert!(
        server.logs().contains("SIGHUP: audit log file rotated"),
        "{}",
        server.logs()
    );

    // Without admin on sys/audit: denied, and recorded.
    let reader = server.token_with_policy(
        &root,
        "reader",
        r#"path "app/*" { capabilities = ["read"] }"#,
    );
    let denied = server.cli().token(&reader).run(&["audit", "rotate"]);
    assert_eq!(denied.code(), 4, "{}", denied.stderr());

    // Every file verifies: the live one against the live head, each rotated
    // one against the head file paired with its name.
    let rotated = rotated_logs(&log);
    assert_eq!(rotated.len(), 3, "{rotated:?}");
    let v = server
        .cli()
        .token(&root)
        .run(&["audit", "verify", "--json"])
        .expect(0)
        .json();
    assert_eq!(v["files"][0]["head"], "live", "{v}");
    for file in &rotated {
        let f = file.display().to_string();
        let v = server
            .cli()
            .token(&root)
            .run(&["audit", "verify", "--file", &f, "--json"])
            .expect(0)
            .json();
        assert_eq!(
            (v["ok"].as_bool(), v["files"][0]["head"].as_str()),
            (Some(true), Some("head-file")),
            "{v}"
        );
    }
    // Each old file ends with the rotation notice, and the next file starts
    // with a notice naming it and its last chain link.
    let mut files = rotated.clone();
    files.push(log.clone());
    for pair in files.windows(2) {
        let old = records(&pair[0]);
        let last = old.last().unwrap();
        assert!(
            last["message"]
                .as_str()
                .unwrap()
                .starts_with("audit log rotation:"),
            "{last}"
        );
        let next = records(&pair[1]);
        let opening = next[0]["message"].as_str().unwrap();
        assert_eq!(next[0]["seq"], 1);
        assert!(
            opening.contains(&pair[0].display().to_string()),
            "{opening}"
        );
        assert!(
            opening.contains(last["chain"].as_str().unwrap()),
            "{opening}"
        );
    }
    // Every read is recorded exactly once, across the files.
    let mut recorded: Vec<String> = Vec::new();
    for file in &files {
        recorded.extend(
            records(file)
                .iter()
                .filter(|r| r["op"] == "secret.read")
                .map(|r| r["request_id"].as_str().unwrap().to_string()),
        );
    }
    let mut want = read_ids.clone();
    want.sort();
    recorded.sort();
    assert_eq!(
        recorded, want,
        "reads recorded once each, across the rotated files"
    );
    let live = records(&log);
    assert!(
        live.iter()
            .any(|r| r["op"] == "audit.rotate" && r["outcome"] == "denied"),
        "the denied rotation is in the live file"
    );
    // Offline, a rotated file answers who read the secret.
    let f = rotated[0].display().to_string();
    let who = server
        .cli()
        .run(&["audit", "readers", "app/prod/db", "--file", &f, "--json"])
        .expect(0)
        .json();
    assert!(!who["readers"].as_array().unwrap().is_empty(), "{who}");
    // For leak response, readers searches the whole history by default,
    // oldest file first, through the server and offline: every read is
    // counted. With --live-only, the live file alone (and the text output
    // says so).
    let reads_of = |v: &Value| v["readers"][0]["reads"].as_u64().unwrap_or(0) as usize;
    let live_only = server
        .cli()
        .token(&root)
        .run(&["audit", "readers", "app/prod/db", "--live-only", "--json"])
        .expect(0)
        .json();
    assert!(reads_of(&live_only) < read_ids.len(), "{live_only}");
    let all = server
        .cli()
        .token(&root)
        .run(&["audit", "readers", "app/prod/db", "--json"])
        .expect(0)
        .json();
    assert_eq!(reads_of(&all), read_ids.len(), "{all}");
    let want_files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    assert_eq!(all["files"], serde_json::json!(want_files), "{all}");
    let l = log.display().to_string();
    let offline = server
        .cli()
        .run(&["audit", "readers", "app/prod/db", "--file", &l, "--json"])
        .expect(0)
        .json();
    assert_eq!(reads_of(&offline), read_ids.len(), "{offline}");
    let text = server
        .cli()
        .token(&root)
        .run(&["audit", "readers", "app/prod/db", "--live-only"])
        .expect(0);
    assert!(
        text.stderr().contains("without --live-only"),
        "{}",
        text.stderr()
    );
    let q = server
        .cli()
        .token(&root)
        .run(&[
            "audit",
            "query",
            "--op",
            "secret.read",
            "--rotated",
            "--limit",
            "100000",
            "--json",
        ])
        .expect(0)
        .json();
    assert_eq!(
        q["records"].as_array().unwrap().len(),
        read_ids.len(),
        "all reads, by query"
    );

    // A restart continues the new file with no truncation alarm.
    assert_eq!(server.stop().code(), Some(0));
    let server = Server::start(dir.path(), Mode::Dev);
    let restarted = records(&log);
    assert!(
        restarted.iter().all(|r| r["type"] != "alert"),
        "a rotated log raised an alert at restart"
    );
    server
        .cli()
        .token(&root)
        .run(&["audit", "verify"])
        .expect(0);
    // The whole history verifies, oldest file first, each continuing the one
    // before it.
    let v = server
        .cli()
        .token(&root)
        .run(&["audit", "verify", "--rotated", "--json"])
        .expect(0)
        .json();
    let verified: Vec<&str> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["file"].as_str().unwrap())
        .collect();
    let want: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    assert_eq!(verified, want, "{v}");
    // A file missing from the middle of the history fails the file after
    // the gap, named.
    std::fs::remove_file(&rotated[1]).unwrap();
    let gap = server
        .cli()
        .token(&root)
        .run(&["audit", "verify", "--rotated"]);
    assert_eq!(gap.code(), 7, "{}", gap.stdout());
    let out = gap.stdout();
    assert!(
        out.contains(&format!("{}: FAILED at line 1", rotated[2].display()))
            && out.contains("a rotated file between them is missing"),
        "{out}"
    );
    // Older files may expire: a history that begins after a rotation is
    // whole (which is also why deleting the oldest files cannot be told
    // from retention).
    std::fs::remove_file(&rotated[0]).unwrap();
    std::fs::remove_file(format!("{}.head", rotated[0].display())).unwrap();
    server
        .cli()
        .token(&root)
        .run(&["audit", "verify", "--rotated"])
        .expect(0);
    // Each file alone still verifies: the gap is only visible in order.
    server
        .cli()
        .token(&root)
        .run(&["audit", "verify"])
        .expect(0);

    // Nowhere: not the rotated files, their head files, nor the server's output.
    canary.search("server logs", server.logs());
    canary.search_dir(dir.path());
    canary.assert_nowhere_else();
}

#[test]
fn the_server_rotates_its_log_by_itself_at_the_configured_size() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        Mode::Config("[audit]\nrotate_bytes = 1048576\n"),
    );
    let (_, root) = init_and_unseal(|| server.cli());
    let log = audit_log(&server);
    // Refused reads make records just as well (about 450 bytes each), on
    // four threads, until a file was set aside.
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (stop, host) = (stop.clone(), server.host_port().to_string());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let r = common::http(
                        &host,
                        "GET",
                        "/api/v1/secrets/app/db",
                        Some("cft_not_a_token"),
                        None,
                        &[],
                    );
                    assert_eq!(r.status, 401, "{}", r.text());
                }
            })
        })
        .collect();
    common::wait_until(Duration::from_secs(120), "a rotation by size", || {
        !rotated_logs(&log).is_empty()
    });
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }
    let rotated = rotated_logs(&log);
    // It rotated at about the size: past it by at most what five checks a
    // second let through.
    let size = std::fs::metadata(&rotated[0]).unwrap().len();
    assert!(size >= 1 << 20, "rotated at {size} bytes");
    assert!(
        server.logs().contains("audit log file rotated"),
        "{}",
        server.logs()
    );
    server
        .cli()
        .token(&root)
        .run(&["audit", "verify", "--rotated"])
        .expect(0);
}

/// With `keep_rotated_files`, each rotation removes the oldest rotated
/// files beyond that many; the command lists them, the log says so, and
/// what is left still verifies as one history.
#[test]
fn retention_removes_the_oldest_rotated_files() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        Mode::Config("[audit]\nkeep_rotated_files = 2\n"),
    );
    let (_, root) = init_and_unseal(|| server.cli());
    let log = audit_log(&server);
    let cli = || server.cli().token(&root);
    cli()
        .stdin("CANARY-retention")
        .run(&["set", "app/db"])
        .expect(0);
    let mut made = Vec::new();
    let mut removed = Vec::new();
    for _ in 0..4 {
        cli().run(&["get", "app/db"]).expect(0);
        let r = cli().run(&["audit", "rotate", "--json"]).expect(0).json();
        assert_eq!(r["ok"], true, "{r}");
        made.push(PathBuf::from(r["rotated"][0]["to"].as_str().unwrap()));
        removed.extend(
            r["removed"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|f| PathBuf::from(f.as_str().unwrap())),
        );
    }
    // The two oldest went, one per rotation from the third on.
    assert_eq!(removed, made[..2].to_vec());
    assert_eq!(rotated_logs(&log), made[2..].to_vec());
    for f in &made[..2] {
        assert!(!f.exists());
        assert!(!PathBuf::from(format!("{}.head", f.display())).exists());
    }
    let text = cli().run(&["audit", "rotate"]).expect(0).stdout();
    assert!(text.contains("removed (retention)"), "{text}");
    // The log says what went, and the rest still verifies and is searched.
    let notices = cli()
        .run(&["audit", "query", "--type", "notice", "--json"])
        .expect(0)
        .json();
    assert!(
        notices["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("audit log retention:"))),
        "{notices}"
    );
    cli().run(&["audit", "verify", "--rotated"]).expect(0);
    let readers = cli()
        .run(&["audit", "readers", "app/db", "--json"])
        .expect(0)
        .json();
    assert_eq!(readers["files"].as_array().unwrap().len(), 3, "{readers}");
    for f in rotated_logs(&log).iter().chain([&log]) {
        assert!(!std::fs::read_to_string(f).unwrap().contains("CANARY"));
    }
}

/// A collector's copy of a socket sink, across a restart of the server, is
/// verified chain by chain (one per run); an edited byte or a line forged
/// to start a chain is found, by its line in the copy.
#[test]
fn a_collectors_copy_verifies_run_by_run() {
    let dir = tempfile::tempdir().unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let collector = Collector::start(0, lines.clone());
    let config = format!(
        "[audit]\nsockets = [\"tcp://127.0.0.1:{}\"]\n",
        collector.port
    );
    let server = Server::start(dir.path(), Mode::Config(&config));
    let (key, root) = init_and_unseal(|| server.cli());
    server
        .cli()
        .token(&root)
        .stdin("CANARY-copy")
        .run(&["set", "app/db"])
        .expect(0);
    assert!(server.stop().success());
    let server = Server::start(dir.path(), Mode::Config(&config));
    server
        .cli()
        .stdin(&key)
        .run(&["operator", "unseal"])
        .expect(0);
    let cli = || server.cli().token(&root);
    for _ in 0..3 {
        cli().run(&["get", "app/db"]).expect(0);
    }
    // What the collector has so far, saved beside the server's log.
    let copy = audit_log(&server).with_file_name("collector-copy.jsonl");
    let save = |text: &str| std::fs::write(&copy, text).unwrap();
    let wait_for = |n: usize| {
        common::wait_until(Duration::from_secs(10), "the collector's lines", || {
            lines.lock().unwrap().len() >= n
        })
    };
    wait_for(8);
    let got: String = lines.lock().unwrap().concat();
    assert!(!got.contains("CANARY"));
    save(&got);
    let verify = |stream: bool| {
        let mut args = vec![
            "audit",
            "verify",
            "--file",
            copy.to_str().unwrap(),
            "--json",
        ];
        if stream {
            args.push("--stream");
        }
        cli().run(&args)
    };
    let r = verify(true).expect(0).json();
    let chains = r["files"].as_array().unwrap();
    assert_eq!(chains.len(), 2, "{r}");
    assert_eq!(chains[0]["chain"]["closed"], true, "{r}");
    assert_eq!(
        chains[1]["chain"]["closed"], false,
        "the server still runs: {r}"
    );
    let second = chains[1]["chain"]["first_line"].as_u64().unwrap();
    assert!(second > 2, "{r}");
    let text = cli()
        .run(&[
            "audit",
            "verify",
            "--file",
            copy.to_str().unwrap(),
            "--stream",
        ])
        .expect(0)
        .stdout();
    assert!(
        text.contains("chain 2 from line") && text.contains("clean stop"),
        "{text}"
    );
    // Not a log file: the second run's record 1 is out of place.
    assert_eq!(verify(false).code(), 7);

    let copy_lines: Vec<&str> = got.lines().collect();
    // One byte edited in the second run's records.
    let edit_at = second as usize + 1; // a line number, from 1
    let mut edited: Vec<String> = copy_lines.iter().map(|l| l.to_string()).collect();
    edited[edit_at - 1] = edited[edit_at - 1].replacen("\"status\":200", "\"status\":201", 1);
    assert_ne!(edited[edit_at - 1], copy_lines[edit_at - 1]);
    save(&(edited.join("\n") + "\n"));
    let out = verify(true);
    assert_eq!(out.code(), 7, "{}", out.stdout());
    let r = out.json();
    assert_eq!(r["files"][0]["ok"], true, "{r}");
    assert_eq!(r["files"][1]["problem"]["line"], edit_at as u64, "{r}");
    // The first run's first record put in the middle of the second run:
    // it starts a chain of its own, and the records after it do not follow.
    let mut forged: Vec<&str> = copy_lines.clone();
    forged.insert(edit_at, copy_lines[0]);
    save(&(forged.join("\n") + "\n"));
    let r = verify(true).expect(7).json();
    let chains = r["files"].as_array().unwrap();
    assert_eq!(chains.len(), 3, "{r}");
    assert_eq!(chains[2]["ok"], false, "{r}");
    assert_eq!(chains[2]["problem"]["line"], edit_at as u64 + 2, "{r}");
    collector.stop();
}
