//! Leak response against the real binary: `coffer leak` marks the version,
//! lists who read it, rotates it and raises an alert that reaches a
//! loopback webhook; the old version is refused as current afterwards;
//! `coffer check` flags a `.env` that still holds it, by fingerprint; and
//! no value reaches the output, the server's log or the audit log.

use crate::common;

use std::time::{Duration, Instant};

use common::{Mode, Server, init_and_unseal, webhook_receiver_with_headers};

fn token(server: &Server, root: &str, name: &str, hcl: &str) -> (String, String) {
    let file = server.dir.join(format!("{name}.hcl"));
    std::fs::write(&file, hcl).unwrap();
    server
        .cli()
        .token(root)
        .run(&["policy", "write", name, file.to_str().unwrap()])
        .expect(0);
    let t = server
        .cli()
        .token(root)
        .run(&[
            "token",
            "create",
            "--policy",
            name,
            "--display-name",
            name,
            "--json",
        ])
        .expect(0)
        .json();
    (
        t["token"].as_str().unwrap().to_string(),
        t["accessor"].as_str().unwrap().to_string(),
    )
}

fn audit_log(server: &Server) -> String {
    std::fs::read_to_string(server.data_dir().join("audit.log")).unwrap()
}

#[test]
fn leak_response_marks_lists_readers_rotates_and_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let (port, bodies, _) = webhook_receiver_with_headers();
    let config = format!("[audit]\nwebhooks = [\"http://127.0.0.1:{port}/hook\"]\n");
    let server = Server::start(dir.path(), Mode::Config(&config));
    let (_, root) = init_and_unseal(|| server.cli());
    let cli = || server.cli().token(&root);
    cli()
        .run(&["set", "app/prod/API_KEY", "--generate", "hex:32"])
        .expect(0);
    let (reader, reader_accessor) = token(
        &server,
        &root,
        "deployer",
        r#"path "app/prod/*" { capabilities = ["read", "list"] }"#,
    );
    // The deployer reads the value twice; that is the value that leaks.
    let value = server
        .cli()
        .token(&reader)
        .run(&["get", "app/prod/API_KEY"])
        .expect(0)
        .stdout()
        .trim()
        .to_string();
    assert_eq!(value.len(), 64);
    server
        .cli()
        .token(&reader)
        .run(&["get", "app/prod/API_KEY"])
        .expect(0);
    let run = cli().run(&[
        "leak",
        "app/prod/API_KEY",
        "--reason",
        "pushed to a public repository",
    ]);
    let out = run.stdout();
    assert_eq!(run.code(), 0, "{out}{}", run.stderr());
    assert!(
        out.contains("Marked version 1 of app/prod/API_KEY compromised"),
        "{out}"
    );
    assert!(out.contains("Read by 1 identity"), "{out}");
    assert!(
        out.contains(&format!("deployer ({reader_accessor}): 2 read(s)")),
        "{out}"
    );
    assert!(
        out.contains("Rotated app/prod/API_KEY: current is version 2."),
        "{out}"
    );
    assert!(!out.contains(&value) && !run.stderr().contains(&value));
    // Readers now get a new value.
    let new = cli()
        .run(&["get", "app/prod/API_KEY"])
        .expect(0)
        .stdout()
        .trim()
        .to_string();
    assert_ne!(new, value);
    // The old version is refused as current, whichever way it is tried.
    let r = cli().run(&["rollback", "app/prod/API_KEY", "1"]).expect(8);
    assert!(
        r.stderr()
            .contains("version 1 of app/prod/API_KEY is marked compromised"),
        "{}",
        r.stderr()
    );
    cli()
        .run(&["cp", "app/prod/API_KEY", "app/prod/COPY"])
        .expect(0);
    cli().run(&["rollback", "app/prod/COPY", "1"]).expect(8);
    // History shows the mark.
    let h = cli()
        .run(&["history", "app/prod/API_KEY"])
        .expect(0)
        .stdout();
    assert!(
        h.lines().any(|l| l.starts_with("1 ")
            && l.contains("[COMPROMISED ")
            && l.contains("pushed to a public repository")),
        "{h}"
    );
    // Marking it again says so, and rotates only when asked.
    let again = cli()
        .run(&[
            "leak",
            "app/prod/API_KEY",
            "--version",
            "1",
            "--reason",
            "found again",
            "--json",
        ])
        .expect(0)
        .json();
    assert_eq!(again["marked"]["newly_marked"], false);
    assert_eq!(again["marked"]["reason"], "pushed to a public repository");
    assert_eq!(again["rotation_done"], "none");
    assert_eq!(again["readers"]["readers"][0]["accessor"], reader_accessor);
    // The alert reaches the webhook.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = bodies.lock().unwrap().clone();
        if got
            .iter()
            .any(|b| b.contains("version_compromised") && b.contains("app/prod/API_KEY"))
        {
            assert!(got.iter().all(|b| !b.contains(&value)));
            break;
        }
        assert!(Instant::now() < deadline, "no alert delivered: {got:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Nothing wrote the value down.
    assert!(!audit_log(&server).contains(&value));
    assert!(!server.logs().contains(&value));
}

#[test]
fn leak_stages_or_skips_the_rotation_and_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let cli = || server.cli().token(&root);
    cli()
        .run(&["set", "app/dev/JWT_KEY", "--generate", "base64:32"])
        .expect(0);
    let staged = cli()
        .run(&[
            "leak",
            "app/dev/JWT_KEY",
            "--reason",
            "in a support ticket",
            "--stage",
            "--generate",
            "base64:32",
        ])
        .expect(0)
        .stdout();
    assert!(
        staged.contains("Staged a rotation: pending is version 2; current is still version 1."),
        "{staged}"
    );
    // The staged version is the way out; promoting it works.
    cli().run(&["promote", "app/dev/JWT_KEY"]).expect(0);
    // An older version: marked, not rotated unless asked.
    let old = cli()
        .run(&[
            "leak",
            "app/dev/JWT_KEY",
            "--version",
            "1",
            "--reason",
            "old backup leaked",
        ])
        .expect(0)
        .stdout();
    assert!(
        old.contains("Not rotated: version 1 is not current."),
        "{old}"
    );
    // A token without audit rights gets the mark and the rotation, and a
    // note about the readers.
    let (rotator, _) = token(
        &server,
        &root,
        "rotator",
        r#"path "app/dev/*" { capabilities = ["rotate"] }"#,
    );
    let r = server
        .cli()
        .token(&rotator)
        .run(&[
            "leak",
            "app/dev/JWT_KEY",
            "--reason",
            "seen in a CI log",
            "--generate",
            "hex:32",
        ])
        .expect(0)
        .stdout();
    assert!(r.contains("Could not list who read it"), "{r}");
    assert!(r.contains("current is version 3"), "{r}");
    // Bad input changes nothing.
    for (args, code) in [
        (vec!["leak", "app/dev/JWT_KEY"], 2),
        (vec!["leak", "app/dev/JWT_KEY", "--reason", "x"], 7),
        (vec!["leak", "app/dev/JWT_KEY", "--reason", "a\nb c d"], 7),
        (
            vec![
                "leak",
                "app/dev/JWT_KEY",
                "--reason",
                "fine reason",
                "--version",
                "0",
            ],
            2,
        ),
        (
            vec![
                "leak",
                "app/dev/JWT_KEY",
                "--reason",
                "fine reason",
                "--version",
                "99",
            ],
            3,
        ),
        (vec!["leak", "app/dev/NOPE", "--reason", "fine reason"], 3),
        (vec!["leak", "app/../x", "--reason", "fine reason"], 7),
        (
            vec![
                "leak",
                "app/dev/JWT_KEY",
                "--reason",
                "fine reason",
                "--stage",
                "--no-rotate",
            ],
            2,
        ),
        (
            vec![
                "leak",
                "app/dev/JWT_KEY",
                "--reason",
                "fine reason",
                "--generate",
                "nope:1",
            ],
            2,
        ),
    ] {
        let r = cli().run(&args);
        assert_eq!(r.code(), code, "{args:?}: {}{}", r.stdout(), r.stderr());
    }
    let h = cli()
        .run(&["history", "app/dev/JWT_KEY", "--json"])
        .expect(0)
        .json();
    let marked: Vec<u64> = h["versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v.get("compromised_at").is_some())
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    // 1 and 2 leaked; 3 is the rotation's new value.
    assert_eq!(marked, [1, 2]);
}

#[test]
fn check_flags_a_dotenv_that_still_holds_a_compromised_value() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let cli = || server.cli().token(&root);
    cli()
        .run(&["set", "app/dev/API_KEY", "--generate", "hex:32"])
        .expect(0);
    let value = cli()
        .run(&["get", "app/dev/API_KEY"])
        .expect(0)
        .stdout()
        .trim()
        .to_string();
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join(".env.example"), "API_KEY=\nPORT=8080\n").unwrap();
    std::fs::write(
        work.join(".env"),
        format!("API_KEY=\"{value}\"\nPORT=8081\nOTHER_TOKEN={value}\n"),
    )
    .unwrap();
    let template = work.join(".env.example");
    let env = work.join(".env");
    let args = [
        "check",
        "--env-file",
        env.to_str().unwrap(),
        "--template",
        template.to_str().unwrap(),
        "--known",
        "app/",
    ];
    // Not compromised yet: the check passes.
    let (lister, _) = token(
        &server,
        &root,
        "lister",
        r#"path "app/" { capabilities = ["list"] }
           path "app/*" { capabilities = ["list"] }"#,
    );
    server.cli().token(&lister).run(&args).expect(0);
    cli()
        .run(&[
            "leak",
            "app/dev/API_KEY",
            "--reason",
            "committed by mistake",
        ])
        .expect(0);
    // With `list` only, the check finds the leaked value in both names.
    let r = server.cli().token(&lister).run(&args).expect(7);
    let out = r.stdout();
    assert!(
        out.contains("compromised API_KEY") && out.contains("compromised OTHER_TOKEN"),
        "{out}"
    );
    assert!(out.contains("version 1 of app/dev/API_KEY"), "{out}");
    assert!(!out.contains(&value) && !r.stderr().contains(&value));
    let json = {
        let mut a = args.to_vec();
        a.push("--json");
        server.cli().token(&lister).run(&a).expect(7).json()
    };
    let names: Vec<&str> = json["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["API_KEY", "OTHER_TOKEN"]);
    assert_eq!(
        json["problems"][0]["compromised"][0],
        "version 1 of app/dev/API_KEY"
    );
    // After the rotation, a .env with the new value passes.
    let new = cli()
        .run(&["get", "app/dev/API_KEY"])
        .expect(0)
        .stdout()
        .trim()
        .to_string();
    std::fs::write(work.join(".env"), format!("API_KEY={new}\nPORT=8081\n")).unwrap();
    server.cli().token(&lister).run(&args).expect(0);
    assert!(!audit_log(&server).contains(&value));
    assert!(!server.logs().contains(&value));
}

#[test]
fn scan_known_finds_and_names_a_stored_value_without_holding_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let cli = || server.cli().token(&root);
    cli()
        .run(&["set", "app/dev/API_KEY", "--generate", "hex:32"])
        .expect(0);
    let value = cli()
        .run(&["get", "app/dev/API_KEY"])
        .expect(0)
        .stdout()
        .trim()
        .to_string();
    cli()
        .stdin("hunter2hunter2")
        .run(&["set", "app/dev/WEAK"])
        .expect(0);
    let work = dir.path().join("repo");
    std::fs::create_dir_all(work.join("config")).unwrap();
    std::fs::write(
        work.join("config/app.yaml"),
        format!("service:\n  name: shop\n  upstream: \"{value}\"\n"),
    )
    .unwrap();
    std::fs::write(work.join("notes.txt"), "the password is hunter2hunter2\n").unwrap();
    let (lister, _) = token(
        &server,
        &root,
        "lister",
        r#"path "app/" { capabilities = ["list"] }
           path "app/*" { capabilities = ["list"] }"#,
    );
    let scan = |args: &[&str]| {
        let mut all = vec!["scan", "--known", "app/"];
        all.extend_from_slice(args);
        all.push(work.to_str().unwrap());
        server.cli().token(&lister).run(&all)
    };
    let r = scan(&[]).expect(9);
    let out = r.stdout();
    let line = out
        .lines()
        .find(|l| l.contains("coffer-known-value"))
        .unwrap_or_else(|| panic!("no known-value finding: {out}"));
    assert!(line.contains("config/app.yaml:3:"), "{line}");
    assert!(
        line.contains("the value of version 1 of app/dev/API_KEY"),
        "{line}"
    );
    assert!(
        !out.contains(&value) && !r.stderr().contains(&value),
        "{out}"
    );
    // The weak value is never fingerprinted, so never found as stored.
    assert!(!out.contains("app/dev/WEAK"), "{out}");
    for format in ["json", "sarif"] {
        let r = scan(&["--format", format]).expect(9);
        assert!(r.stdout().contains("app/dev/API_KEY"), "{format}");
        assert!(!r.stdout().contains(&value), "{format}");
    }
    // Without a terminal, --respond only says what it would do.
    let r = scan(&["--respond"]).expect(9);
    assert!(
        r.stderr().contains("not responding without a terminal"),
        "{}",
        r.stderr()
    );
    let h = cli()
        .run(&["history", "app/dev/API_KEY", "--json"])
        .expect(0)
        .json();
    assert!(h["versions"][0].get("compromised_at").is_none());
    assert_eq!(scan(&["--respond", "--format", "json"]).code(), 2);
    // With --yes it responds: marked, rotated (the lister cannot: exit 4 is
    // reported, the scan's status stays 9), then as root.
    let r = scan(&["--respond", "--yes"]).expect(9);
    assert!(r.stderr().contains("permission denied"), "{}", r.stderr());
    let r = cli()
        .run(&[
            "scan",
            "--known",
            "app/",
            "--respond",
            "--yes",
            work.to_str().unwrap(),
        ])
        .expect(9);
    let out = r.stdout();
    assert!(
        out.contains("Marked version 1 of app/dev/API_KEY compromised"),
        "{out}"
    );
    assert!(
        out.contains("Rotated app/dev/API_KEY: current is version 2."),
        "{out}"
    );
    assert!(!out.contains(&value) && !r.stderr().contains(&value));
    // The next scan says it is a compromised version.
    let again = scan(&[]).expect(9).stdout();
    assert!(
        again.contains("version 1 of app/dev/API_KEY, marked compromised"),
        "{again}"
    );
    // A path taken for the prefix is a usage error, not a scan of the
    // wrong directory.
    let r = server
        .cli()
        .token(&lister)
        .run(&["scan", "--known", work.to_str().unwrap()])
        .expect(2);
    assert!(
        r.stderr().contains("--known takes a prefix ending with /"),
        "{}",
        r.stderr()
    );
    // No token: refused before scanning.
    server
        .cli()
        .run(&["scan", "--known", "app/", work.to_str().unwrap()])
        .expect(4);
    // Nothing wrote the value down.
    assert!(!audit_log(&server).contains(&value));
    assert!(!server.logs().contains(&value));
    let log = audit_log(&server);
    assert!(log.contains("\"op\":\"secret.fingerprints\""));
}
