//! Backup and restore with the real binary: a backup taken under write load
//! restores, from SQLite into PostgreSQL and back, to the same secrets and
//! versions (the same checksum), holds no plaintext, needs the original
//! unseal keys, and a damaged or misdirected restore writes nothing.

use crate::common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Cli, Mode, Server, contains, http, init_and_unseal};

const CANARY: &str = "CANARY-backup-7d1e9b3a5c0f4e2a8b6d";

fn pg_config(url: &str) -> String {
    format!("[storage]\nurl = {url:?}\n")
}

#[test]
fn a_backup_under_write_load_restores_to_the_same_secrets_on_either_backend() {
    let dir = tempfile::tempdir().unwrap();
    let source = Server::start(dir.path(), Mode::Config(""));
    let (key, root) = init_and_unseal(|| source.cli());
    let cli = || source.cli().token(&root);
    cli()
        .stdin(CANARY)
        .run(&["set", "vault/prod/CANARY_KEY"])
        .expect(0);
    for v in 0..3 {
        cli()
            .stdin(format!("db-password-{v}"))
            .run(&["set", "vault/prod/DB_PASSWORD"])
            .expect(0);
    }
    cli().run(&["rm", "vault/prod/DB_PASSWORD"]).expect(0);
    let reader = source.token_with_policy(
        &root,
        "reader",
        r#"path "vault/*" { capabilities = ["read"] }"#,
    );

    // Writers run all through the backup.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::<(String, u64, String)>::new()));
    let host = source.host_port().to_string();
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let (host, root, stop, acked) =
                (host.clone(), root.clone(), stop.clone(), acked.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let path = format!("load/w{w}/k{}", i % 4);
                    let value = format!("w{w}-i{i}");
                    let r = http(
                        &host,
                        "PUT",
                        &format!("/api/v1/secrets/{path}"),
                        Some(&root),
                        Some(format!(r#"{{"value":"{value}"}}"#).as_bytes()),
                        &[],
                    );
                    assert_eq!(r.status, 200, "{}", r.text());
                    let version = r.json()["version"].as_u64().unwrap();
                    acked.lock().unwrap().push((path, version, value));
                    i += 1;
                }
            })
        })
        .collect();
    common::wait_until(Duration::from_secs(30), "writes before the backup", || {
        !acked.lock().unwrap().is_empty()
    });
    let before_backup = acked.lock().unwrap().len();
    let backup_file = dir.path().join("one.backup");
    let report = cli()
        .run(&[
            "operator",
            "backup",
            backup_file.to_str().unwrap(),
            "--json",
        ])
        .expect(0)
        .json();
    common::wait_until(Duration::from_secs(30), "writes after the backup", || {
        acked.lock().unwrap().len() > before_backup
    });
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > before_backup,
        "writes went on during the backup"
    );
    let checksum = report["checksum"].as_str().unwrap().to_string();
    assert!(checksum.starts_with("sha256:"), "{report}");

    // The file is private and holds no plaintext: not the value, nor even a path.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&backup_file)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let bytes = std::fs::read(&backup_file).unwrap();
    for needle in [CANARY, "vault/prod", "CANARY_KEY", "load/w0", &reader] {
        assert!(
            !contains(&bytes, needle.as_bytes()),
            "{needle} is readable in the backup"
        );
    }
    // A backup never overwrites a file.
    cli()
        .run(&["operator", "backup", backup_file.to_str().unwrap()])
        .expect(8);

    // Restore into PostgreSQL: the migration path.
    let db = coffer_testpg::database_blocking();
    let password_free = db.replace(&format!(":{}@", coffer_testpg::SUPERUSER_PASSWORD), "@");
    let restore = |file: &std::path::Path, target: &[&str], keys: &str| {
        let mut args = vec!["operator", "restore", file.to_str().unwrap(), "--json"];
        args.extend_from_slice(target);
        Cli::new("http://127.0.0.1:9", dir.path())
            .env("COFFER_STORAGE_PASSWORD", coffer_testpg::SUPERUSER_PASSWORD)
            .stdin(keys)
            .run(&args)
    };
    // Wrong keys, a cut-short file and an edited byte: refused, nothing written.
    let wrong_key = {
        let d = tempfile::tempdir().unwrap();
        let s = Server::start(d.path(), Mode::Config(""));
        let (k, _) = init_and_unseal(|| s.cli());
        k
    };
    let r = restore(&backup_file, &["--storage", &password_free], &wrong_key).expect(4);
    assert!(
        r.stderr().contains("do not open this backup"),
        "{}",
        r.stderr()
    );
    let cut = dir.path().join("cut.backup");
    std::fs::write(&cut, &bytes[..bytes.len() - 40]).unwrap();
    let r = restore(&cut, &["--storage", &password_free], &key).expect(7);
    assert!(
        r.stderr().contains("truncated") || r.stderr().contains("damaged"),
        "{}",
        r.stderr()
    );
    let edited = dir.path().join("edited.backup");
    let mut e = bytes.clone();
    let at = e.len() / 2;
    e[at] ^= 0x01;
    std::fs::write(&edited, &e).unwrap();
    let r = restore(&edited, &["--storage", &password_free], &key).expect(7);
    assert!(r.stderr().contains("integrity"), "{}", r.stderr());

    let restored = restore(&backup_file, &["--storage", &password_free], &key)
        .expect(0)
        .json();
    assert_eq!(restored["checksum"], checksum.as_str());
    assert_eq!(restored["secrets"], report["secrets"]);
    assert_eq!(restored["versions"], report["versions"]);
    // Only into an empty store.
    let r = restore(&backup_file, &["--storage", &password_free], &key).expect(8);
    assert!(r.stderr().contains("not empty"), "{}", r.stderr());

    // The restored server is sealed until the original keys unseal it.
    let pg_dir = tempfile::tempdir().unwrap();
    let pg = Server::start(pg_dir.path(), Mode::Config(&pg_config(&db)));
    pg.cli().run(&["status"]).expect(5);
    let r = pg.http(
        "GET",
        "/api/v1/secrets/vault/prod/CANARY_KEY",
        Some(&root),
        None,
    );
    assert_eq!(r.status, 503);
    pg.cli().stdin(&key).run(&["operator", "unseal"]).expect(0);
    let got = pg
        .cli()
        .token(&root)
        .run(&["get", "vault/prod/CANARY_KEY"])
        .expect(0)
        .stdout();
    assert_eq!(got, CANARY);
    // Tokens and policies came along; deleted stays deleted, history stays.
    let r = pg.http(
        "GET",
        "/api/v1/secrets/vault/prod/CANARY_KEY",
        Some(&reader),
        None,
    );
    assert_eq!(r.status, 200);
    pg.cli()
        .token(&root)
        .run(&["get", "vault/prod/DB_PASSWORD"])
        .expect(3);
    let old = pg
        .cli()
        .token(&root)
        .run(&["get", "vault/prod/DB_PASSWORD", "--version", "2"])
        .expect(0)
        .stdout();
    assert_eq!(old, "db-password-1");
    // Consistent: every write acknowledged before the backup began is there,
    // and every version there has the value that was acknowledged for it.
    let mut newest = std::collections::HashMap::new();
    for (path, _, _) in &acked {
        if !newest.contains_key(path) {
            let r = pg.http(
                "GET",
                &format!("/api/v1/metadata/{path}"),
                Some(&root),
                None,
            );
            let current = if r.status == 200 {
                r.json()["current_version"].as_u64().unwrap()
            } else {
                0
            };
            newest.insert(path.clone(), current);
        }
    }
    for (n, (path, version, value)) in acked.iter().enumerate() {
        let current = newest[path];
        if n < before_backup {
            assert!(
                *version <= current,
                "{path} v{version} was acknowledged before the backup"
            );
        }
        if *version <= current {
            let r = pg.http(
                "GET",
                &format!("/api/v1/secrets/{path}?version={version}"),
                Some(&root),
                None,
            );
            assert_eq!(r.json()["value"], value.as_str(), "{path} v{version}");
        }
    }

    // And back from PostgreSQL into SQLite: the same checksum again.
    let second = pg_dir.path().join("two.backup");
    let report2 = pg
        .cli()
        .token(&root)
        .run(&["operator", "backup", second.to_str().unwrap(), "--json"])
        .expect(0)
        .json();
    assert_eq!(
        report2["checksum"],
        checksum.as_str(),
        "nothing changed in between"
    );
    let sqlite_dir = tempfile::tempdir().unwrap();
    let data = sqlite_dir.path().join("data");
    let back = restore(&second, &["--data-dir", data.to_str().unwrap()], &key)
        .expect(0)
        .json();
    assert_eq!(back["checksum"], checksum.as_str());
    let again = Server::start(sqlite_dir.path(), Mode::Config(""));
    again
        .cli()
        .stdin(&key)
        .run(&["operator", "unseal"])
        .expect(0);
    let got = again
        .cli()
        .token(&root)
        .run(&["get", "vault/prod/CANARY_KEY"])
        .expect(0)
        .stdout();
    assert_eq!(got, CANARY);
    // Restoring into the data directory of a running server is refused.
    let r = restore(&second, &["--data-dir", data.to_str().unwrap()], &key).expect(1);
    assert!(r.stderr().contains("already using"), "{}", r.stderr());

    // Only an admin can take a backup, and every attempt is audited.
    let r = source.http("GET", "/api/v1/sys/backup", Some(&reader), None);
    assert_eq!(r.status, 403);
    let audit = std::fs::read_to_string(source.data_dir().join("audit.log")).unwrap();
    let backups: Vec<&str> = audit
        .lines()
        .filter(|l| l.contains("\"sys.backup\""))
        .collect();
    // One by root (the second was refused by the CLI before asking) and one denied.
    assert_eq!(backups.len(), 2, "{backups:?}");
    assert!(
        backups.iter().any(|l| l.contains("\"denied\"")),
        "{backups:?}"
    );

    // The canary appears in no log.
    for s in [&source, &pg, &again] {
        assert!(!s.logs().contains(CANARY));
        let audit = std::fs::read(s.data_dir().join("audit.log")).unwrap_or_default();
        assert!(!contains(&audit, CANARY.as_bytes()));
    }
}
