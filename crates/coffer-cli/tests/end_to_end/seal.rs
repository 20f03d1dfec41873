//! Seal and unseal through the real binary with a real (non-dev) config:
//! init with shares, sealed routes answer 503, unseal with a threshold of
//! keys from stdin, restart comes up sealed with data intact, seal again,
//! keyring rotation.

use crate::common;

use common::{Mode, Server};

const SEALED_ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/v1/secrets/app/dev/KEY"),
    ("PUT", "/api/v1/secrets/app/dev/KEY"),
    ("DELETE", "/api/v1/secrets/app/dev/KEY"),
    ("GET", "/api/v1/metadata/app/dev/KEY"),
    ("GET", "/api/v1/list"),
    ("GET", "/api/v1/list/app"),
    ("POST", "/api/v1/undelete/app/dev/KEY"),
    ("POST", "/api/v1/destroy/app/dev/KEY"),
    ("POST", "/api/v1/sys/seal"),
    ("POST", "/api/v1/sys/rotate"),
    ("GET", "/api/v1/sys/keyring"),
    ("GET", "/api/v1/sys/backup"),
    ("GET", "/api/v1/auth/token/self"),
];

fn assert_all_sealed(server: &Server, token: Option<&str>) {
    for (method, path) in SEALED_ROUTES {
        let body = (*method == "PUT").then_some(&br#"{"value":"x"}"#[..]);
        let r = server.http(method, path, token, body);
        assert_eq!(r.status, 503, "{method} {path}: {}", r.text());
        assert!(
            matches!(r.error_code().as_str(), "sealed" | "not_initialized"),
            "{method} {path}: {}",
            r.text()
        );
    }
    // Status, health and unseal still answer.
    assert_eq!(
        server.http("GET", "/api/v1/sys/status", None, None).status,
        200
    );
    let h = server.http("GET", "/api/v1/sys/health", None, None).status;
    assert!(h == 503 || h == 501, "health while sealed: {h}");
}

#[test]
fn init_unseal_restart_seal_rotate() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Config(""));
    let cli = || server.cli();

    // Not initialized: 501 on health, 503 everywhere else, status says so.
    assert_eq!(
        server.http("GET", "/api/v1/sys/health", None, None).status,
        501
    );
    assert_all_sealed(&server, None);
    let s = cli().run(&["status", "--json"]).expect(5).json();
    assert_eq!(s["initialized"], false);

    let init = cli()
        .run(&[
            "operator",
            "init",
            "--shares",
            "3",
            "--threshold",
            "2",
            "--json",
        ])
        .expect(0)
        .json();
    let keys: Vec<String> = init["unseal_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    let root = init["root_token"].as_str().unwrap().to_string();
    assert_eq!(keys.len(), 3);
    assert!(root.starts_with("cft_") && root.len() == 53);
    cli()
        .run(&["operator", "init", "--shares", "1", "--threshold", "1"])
        .expect(8);
    cli()
        .run(&["operator", "init", "--shares", "2", "--threshold", "3"])
        .expect(2);

    // Sealed after init, even with the root token.
    assert_all_sealed(&server, Some(&root));
    let s = cli().run(&["status", "--json"]).expect(5).json();
    assert_eq!(
        (s["initialized"].as_bool(), s["sealed"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(
        (s["threshold"].as_u64(), s["shares"].as_u64()),
        (Some(2), Some(3))
    );

    // A malformed key is refused and is not progress.
    let bad = cli()
        .stdin("definitely-not-a-key")
        .run(&["operator", "unseal"])
        .expect(7);
    assert!(
        !bad.stderr().contains("definitely-not-a-key"),
        "errors never echo keys"
    );
    // One key: progress 1/2. The same key again is refused.
    let p = cli()
        .stdin(&keys[2])
        .run(&["operator", "unseal", "--json"])
        .expect(0)
        .json();
    assert_eq!(
        (p["sealed"].as_bool(), p["progress"].as_u64()),
        (Some(true), Some(1))
    );
    cli().stdin(&keys[2]).run(&["operator", "unseal"]).expect(7);
    // Reset, then two different keys unseal.
    cli().run(&["operator", "unseal", "--reset"]).expect(0);
    assert_eq!(
        cli().run(&["status", "--json"]).expect(5).json()["progress"],
        0
    );
    cli()
        .stdin(format!("{}\n", keys[0]))
        .run(&["operator", "unseal"])
        .expect(0);
    let done = cli().stdin(&keys[1]).run(&["operator", "unseal"]).expect(0);
    assert!(done.stdout().contains("Unsealed"), "{}", done.stdout());
    cli().run(&["status"]).expect(0);
    assert_eq!(
        server.http("GET", "/api/v1/sys/health", None, None).status,
        200
    );

    cli()
        .token(&root)
        .stdin("before-rotate")
        .run(&["set", "app/dev/KEY"])
        .expect(0);
    let rot = cli()
        .token(&root)
        .run(&["operator", "rotate", "--json"])
        .expect(0)
        .json();
    assert_eq!(rot["active_key"], 2);
    cli()
        .token(&root)
        .stdin("after-rotate")
        .run(&["set", "app/dev/KEY"])
        .expect(0);
    let h = cli()
        .token(&root)
        .run(&["history", "app/dev/KEY", "--json"])
        .expect(0)
        .json();
    // The first version was sealed under key 1; the background re-wrap may
    // already have moved it to key 2 by the time the history is read.
    let first = h["versions"][0]["key_id"].as_u64().unwrap();
    assert!(first == 1 || first == 2, "{h}");
    assert_eq!(h["versions"][1]["key_id"], 2);

    // Restart: sealed, data intact once unsealed.
    assert!(server.stop().success());
    let server = Server::start(dir.path(), Mode::Config(""));
    let cli = || server.cli();
    assert_all_sealed(&server, Some(&root));
    cli().stdin(&keys[1]).run(&["operator", "unseal"]).expect(0);
    cli().stdin(&keys[2]).run(&["operator", "unseal"]).expect(0);
    assert_eq!(
        cli()
            .token(&root)
            .run(&["get", "app/dev/KEY", "--version", "1"])
            .expect(0)
            .stdout(),
        "before-rotate"
    );
    assert_eq!(
        cli()
            .token(&root)
            .run(&["get", "app/dev/KEY"])
            .expect(0)
            .stdout(),
        "after-rotate"
    );

    // Seal: back to 503 for everything but status and unseal.
    cli().token(&root).run(&["operator", "seal"]).expect(0);
    assert_all_sealed(&server, Some(&root));
    let sealed_get = cli().token(&root).run(&["get", "app/dev/KEY"]).expect(5);
    assert!(sealed_get.stderr().contains("sealed"));

    // A share from the wrong set does not unseal, and keys never reach the logs.
    let logs = server.logs();
    for k in &keys {
        assert!(
            !logs.contains(k.as_str()),
            "an unseal key reached the server log"
        );
    }
    assert!(
        !logs.contains(&root),
        "the root token reached the server log"
    );
}

#[test]
fn non_loopback_without_tls_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = Server::try_start(dir.path(), Mode::Config("listen = \"0.0.0.0:0\""))
        .err()
        .unwrap();
    assert!(
        err.contains("[tls]") && err.contains("exit status: 2"),
        "{err}"
    );
    // Also when the flag, not the file, asks for it.
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::BIN)
        .args(["server", "--dev", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
}

#[test]
fn data_dir_lock_file_symlink_is_not_followed() {
    // A link planted at the lock file's name must not make the server open
    // (and create or lock) whatever it points at.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let target = dir.path().join("elsewhere");
    std::os::unix::fs::symlink(&target, data.join("coffer.lock")).unwrap();
    let err = Server::try_start(dir.path(), Mode::Dev).err().unwrap();
    assert!(err.contains("coffer.lock"), "{err}");
    assert!(!target.exists(), "the server created the link's target");
}
