//! App roles through the real binary and server: `coffer approle`,
//! `coffer login --method approle`, `coffer run --login approle`, the audit
//! identity `approle:NAME`, a secret id that appears nowhere but where it
//! was shown once, `coffer scan` finding a leaked one, and concurrent
//! logins with a one-use secret id on SQLite and on PostgreSQL.

use crate::common;

use common::canary::Canary;
use common::{Mode, Server, init_and_unseal};
use serde_json::json;

const READER: &str = r#"path "app/*" { capabilities = ["read", "list"] }"#;

fn setup(server: &Server, root: &str) {
    let file = server.dir.join("reader.hcl");
    std::fs::write(&file, READER).unwrap();
    server
        .cli()
        .token(root)
        .run(&["policy", "write", "reader", file.to_str().unwrap()])
        .expect(0);
    server
        .cli()
        .token(root)
        .stdin("approle-read-value")
        .run(&["set", "app/dev/KEY"])
        .expect(0);
}

#[test]
fn an_app_role_lifecycle_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    setup(&server, &root);
    let admin = || server.cli().token(&root);

    let created = admin()
        .run(&[
            "approle",
            "create",
            "web",
            "--policy",
            "reader",
            "--token-ttl",
            "10m",
            "--secret-id-uses",
            "3",
            "--json",
        ])
        .expect(0)
        .json();
    assert_eq!(created["token_ttl"], "10m");
    assert_eq!(created["secret_id_uses"], 3);
    let role_id = admin()
        .run(&["approle", "role-id", "web"])
        .expect(0)
        .stdout()
        .trim()
        .to_string();
    assert_eq!(role_id, created["role_id"]);
    let listed = admin().run(&["approle", "list"]).expect(0).stdout();
    assert!(
        listed.contains("web") && listed.contains("reader"),
        "{listed}"
    );
    let read = admin().run(&["approle", "read", "web"]).expect(0).stdout();
    assert!(read.contains(&role_id), "{read}");

    // The secret id: to a file readable only by its owner, shown once.
    let sid_file = dir.path().join("web.secret-id");
    let made = admin().run(&[
        "approle",
        "secret-id",
        "web",
        "--out",
        sid_file.to_str().unwrap(),
    ]);
    let made = made.expect(0);
    let sid = std::fs::read_to_string(&sid_file).unwrap();
    assert!(sid.starts_with("cfs_") && sid.len() == 53, "{sid}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&sid_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let accessor = made
        .stderr()
        .split_whitespace()
        .find(|w| w.starts_with("sia_"))
        .unwrap()
        .trim_end_matches(',')
        .to_string();
    let mut canary = Canary::with_value(sid.clone());
    canary.search_run("secret-id --out", &made);
    // Piped to a program (not a terminal): printed on stdout, once.
    let piped = admin()
        .run(&["approle", "secret-id", "web", "--json"])
        .expect(0);
    let piped_json = piped.json();
    let sid2 = piped_json["secret_id"].as_str().unwrap().to_string();
    assert_eq!(piped_json["uses_left"], 3);

    let ids = admin()
        .run(&["approle", "secret-ids", "web", "--json"])
        .expect(0)
        .json();
    assert_eq!(ids["secret_ids"].as_array().unwrap().len(), 2, "{ids}");
    let ids_text = ids.to_string();
    assert!(ids_text.contains(&accessor) && !ids_text.contains("cfs_"));

    // Logging in: from a file, from COFFER_SECRET_ID, from stdin.
    let home = dir.path().join("machine");
    std::fs::create_dir_all(&home).unwrap();
    let machine = || common::Cli::new(&server.addr, &home);
    let login = machine()
        .run(&[
            "login",
            "--method",
            "approle",
            "--role-id",
            &role_id,
            "--secret-id-file",
            sid_file.to_str().unwrap(),
            "--json",
        ])
        .expect(0);
    canary.search_run("login", &login);
    assert_eq!(login.json()["identity"], "approle:web");
    let got = machine().run(&["get", "app/dev/KEY"]).expect(0);
    assert_eq!(got.stdout().trim(), "approle-read-value");
    machine()
        .env("COFFER_SECRET_ID", &sid)
        .run(&["login", "--method", "approle", "--role-id", &role_id])
        .expect(0);
    machine()
        .stdin(format!("{sid}\n"))
        .run(&["login", "--method", "approle", "--role-id", &role_id])
        .expect(0);
    // Three uses spent: the fourth is refused (permission denied).
    let refused = machine().env("COFFER_SECRET_ID", &sid).run(&[
        "login",
        "--method",
        "approle",
        "--role-id",
        &role_id,
    ]);
    assert_eq!(refused.code(), 4, "{}", refused.stderr());
    assert!(refused.stderr().contains("app-role login failed"));
    canary.search_run("refused login", &refused);
    // Usage errors: no role id; a role id without the method.
    assert_eq!(machine().run(&["login", "--method", "approle"]).code(), 2);
    assert_eq!(machine().run(&["login", "--role-id", &role_id]).code(), 2);

    // `coffer run --login approle` logs in for the one command.
    let sid2_file = dir.path().join("sid2");
    std::fs::write(&sid2_file, &sid2).unwrap();
    let ran = common::Cli::new(&server.addr, &dir.path().join("nobody"))
        .run(&[
            "run",
            "--login",
            "approle",
            "--role-id",
            &role_id,
            "--secret-id-file",
            sid2_file.to_str().unwrap(),
            "--path",
            "app/dev",
            "--",
            "sh",
            "-c",
            "printf '%s|%s' \"$KEY\" \"${COFFER_SECRET_ID:-none}\"",
        ])
        .expect(0);
    assert_eq!(ran.stdout(), "approle-read-value|none");

    // The audit log names the caller approle:web, and finds it by that.
    let q = admin()
        .run(&["audit", "query", "--actor", "approle:web", "--json"])
        .expect(0)
        .stdout();
    assert!(q.contains("approle:web") && q.contains(&accessor), "{q}");
    let readers = admin()
        .run(&["audit", "readers", "app/dev/KEY"])
        .expect(0)
        .stdout();
    assert!(readers.contains("approle:web"), "{readers}");

    // Revoking a secret id; deleting the role revokes its tokens.
    admin()
        .run(&["approle", "revoke-secret-id", "web", &accessor])
        .expect(0);
    assert_eq!(
        admin()
            .run(&["approle", "revoke-secret-id", "web", &accessor])
            .code(),
        3
    );
    let sid3 = admin()
        .run(&["approle", "secret-id", "web", "--json"])
        .expect(0)
        .json()["secret_id"]
        .as_str()
        .unwrap()
        .to_string();
    machine()
        .env("COFFER_SECRET_ID", &sid3)
        .run(&["login", "--method", "approle", "--role-id", &role_id])
        .expect(0);
    machine().run(&["get", "app/dev/KEY"]).expect(0);
    admin().run(&["approle", "delete", "web"]).expect(0);
    assert_eq!(machine().run(&["get", "app/dev/KEY"]).code(), 4);
    assert_eq!(admin().run(&["approle", "read", "web"]).code(), 3);
    assert_eq!(
        admin()
            .run(&["approle", "create", "bad\u{1b}name", "--policy", "reader"])
            .code(),
        7
    );

    // The secret id is in no log, audit record or stored file.
    canary.search_server(&server);
    canary.assert_nowhere_else();
    let mut second = Canary::with_value(sid2);
    second.search_server(&server);
    second.search_run("run", &ran);
    second.assert_nowhere_else();
}

#[test]
fn coffer_scan_finds_a_leaked_secret_id() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    setup(&server, &root);
    server
        .cli()
        .token(&root)
        .run(&["approle", "create", "ci", "--policy", "reader"])
        .expect(0);
    let sid = server
        .cli()
        .token(&root)
        .run(&["approle", "secret-id", "ci", "--json"])
        .expect(0)
        .json()["secret_id"]
        .as_str()
        .unwrap()
        .to_string();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(
        repo.join("deploy.sh"),
        format!("export COFFER_SECRET_ID={sid}\n"),
    )
    .unwrap();
    let scan =
        common::Cli::new(&server.addr, &repo).run(&["scan", "--json", repo.to_str().unwrap()]);
    assert_eq!(scan.code(), 9, "{}", scan.stderr());
    assert!(
        scan.stdout().contains("coffer-secret-id"),
        "{}",
        scan.stdout()
    );
    // A secret id with one character changed is not reported.
    let last = if sid.ends_with('0') { '1' } else { '0' };
    let broken = format!("{}{last}", &sid[..sid.len() - 1]);
    std::fs::write(
        repo.join("deploy.sh"),
        format!("export COFFER_SECRET_ID={broken}\n"),
    )
    .unwrap();
    let scan =
        common::Cli::new(&server.addr, &repo).run(&["scan", "--json", repo.to_str().unwrap()]);
    assert_eq!(scan.code(), 0, "{}", scan.stdout());
}

/// Eight logins at once with one one-use secret id: exactly one token.
fn race(server: &Server, root: &str) {
    let role_id = server
        .cli()
        .token(root)
        .run(&["approle", "create", "race", "--policy", "reader", "--json"])
        .expect(0)
        .json()["role_id"]
        .as_str()
        .unwrap()
        .to_string();
    for round in 0..3 {
        let sid = server
            .cli()
            .token(root)
            .run(&["approle", "secret-id", "race", "--json"])
            .expect(0)
            .json()["secret_id"]
            .as_str()
            .unwrap()
            .to_string();
        let body = json!({ "role_id": role_id, "secret_id": sid }).to_string();
        let statuses: Vec<u16> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        server
                            .http(
                                "POST",
                                "/api/v1/auth/approle/login",
                                None,
                                Some(body.as_bytes()),
                            )
                            .status
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(
            statuses.iter().filter(|s| **s == 200).count(),
            1,
            "round {round}: {statuses:?}"
        );
        assert!(
            statuses.iter().all(|s| *s == 200 || *s == 401),
            "{statuses:?}"
        );
    }
}

/// The racing logins all come from loopback: the address's own backoff
/// of failed logins must not decide who wins.
const MANY_FAILURES: &str = "login_failures_per_address = 1000\n";

#[test]
fn concurrent_logins_with_a_one_use_secret_id_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Config(MANY_FAILURES));
    let (_key, root) = init_and_unseal(|| server.cli());
    setup(&server, &root);
    race(&server, &root);
}

#[test]
fn concurrent_logins_with_a_one_use_secret_id_on_postgres_across_two_nodes() {
    let db = coffer_testpg::database_blocking();
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let config = |dir: &std::path::Path| {
        let password_file = dir.join("db-password");
        std::fs::write(&password_file, coffer_testpg::SUPERUSER_PASSWORD).unwrap();
        let url = db.replace(&format!(":{}@", coffer_testpg::SUPERUSER_PASSWORD), "@");
        format!(
            "{MANY_FAILURES}[storage]\nurl = {url:?}\npassword_file = {:?}\npool_size = 8\n",
            password_file.display().to_string()
        )
    };
    let a = Server::start(dirs[0].path(), Mode::Config(&config(dirs[0].path())));
    let (key, root) = init_and_unseal(|| a.cli());
    setup(&a, &root);
    race(&a, &root);
    // Two nodes on one database: a one-use secret id still logs in once.
    let b = Server::start(dirs[1].path(), Mode::Config(&config(dirs[1].path())));
    b.cli().stdin(&key).run(&["operator", "unseal"]).expect(0);
    let role_id = a
        .cli()
        .token(&root)
        .run(&["approle", "role-id", "race"])
        .expect(0)
        .stdout()
        .trim()
        .to_string();
    for _ in 0..3 {
        let sid = a
            .cli()
            .token(&root)
            .run(&["approle", "secret-id", "race", "--json"])
            .expect(0)
            .json()["secret_id"]
            .as_str()
            .unwrap()
            .to_string();
        let body = json!({ "role_id": role_id, "secret_id": sid }).to_string();
        let statuses: Vec<u16> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let node = if i % 2 == 0 { &a } else { &b };
                    let body = &body;
                    s.spawn(move || {
                        node.http(
                            "POST",
                            "/api/v1/auth/approle/login",
                            None,
                            Some(body.as_bytes()),
                        )
                        .status
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(
            statuses.iter().filter(|s| **s == 200).count(),
            1,
            "{statuses:?}"
        );
    }
}

/// Live tokens issued by app role `run` (revoked ones are not listed):
/// their display name is `approle:run/` and the secret id's accessor.
fn live_run_tokens(server: &Server, root: &str) -> usize {
    let r = server.http("GET", "/api/v1/auth/tokens", Some(root), None);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| {
            t["display_name"]
                .as_str()
                .unwrap_or("")
                .starts_with("approle:run/")
        })
        .count()
}

/// A role `run` whose secret id (many uses) is in a file; returns the
/// role id and the file.
fn run_role(server: &Server, root: &str, dir: &std::path::Path) -> (String, std::path::PathBuf) {
    setup(server, root);
    let admin = || server.cli().token(root);
    admin()
        .run(&[
            "approle",
            "create",
            "run",
            "--policy",
            "reader",
            "--secret-id-uses",
            "100",
        ])
        .expect(0);
    let role_id = admin()
        .run(&["approle", "role-id", "run"])
        .expect(0)
        .stdout()
        .trim()
        .to_string();
    let sid = dir.join("run.secret-id");
    admin()
        .run(&[
            "approle",
            "secret-id",
            "run",
            "--out",
            sid.to_str().unwrap(),
        ])
        .expect(0);
    (role_id, sid)
}

/// `coffer run --login` revokes its token on every way out that coffer
/// can see: the environment cannot be built, the command cannot start,
/// the command fails, and coffer is sent TERM, INT or HUP while the
/// command runs (forwarded to it; coffer exits with its status).
#[test]
fn run_with_a_login_revokes_its_token_on_every_exit_path() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let (role_id, sid) = run_role(&server, &root, dir.path());
    // A secret whose name coffer refuses to put in an environment.
    server
        .cli()
        .token(&root)
        .stdin("x")
        .run(&["set", "app/bad/LD_PRELOAD"])
        .expect(0);
    let home = dir.path().join("machine");
    std::fs::create_dir_all(&home).unwrap();
    let base = |path: &str| -> Vec<String> {
        [
            "run",
            "--login",
            "approle",
            "--role-id",
            &role_id,
            "--secret-id-file",
            sid.to_str().unwrap(),
            "--path",
            path,
            "--",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let cases: Vec<(&str, Vec<String>, Option<i32>, &str)> = vec![
        (
            "the environment cannot be built",
            [base("app/bad"), vec!["true".into()]].concat(),
            None,
            "LD_PRELOAD",
        ),
        (
            "the command cannot start",
            [base("app/dev"), vec!["/nonexistent/command".into()]].concat(),
            Some(3),
            "cannot run /nonexistent/command",
        ),
        (
            "the command fails",
            [
                base("app/dev"),
                vec!["sh".into(), "-c".into(), "exit 7".into()],
            ]
            .concat(),
            Some(7),
            "",
        ),
    ];
    for (what, args, code, says) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = common::Cli::new(&server.addr, &home).run(&args);
        match code {
            Some(c) => assert_eq!(r.code(), *c, "{what}: {}", r.stderr()),
            None => assert!(r.code() > 0, "{what}: {}", r.stderr()),
        }
        assert!(r.stderr().contains(says), "{what}: {}", r.stderr());
        assert_eq!(live_run_tokens(&server, &root), 0, "{what}: revoked");
    }
    // Signals while the command runs: forwarded, waited for, revoked.
    let script = "trap 'exit 42' TERM; trap 'exit 43' INT; trap 'exit 44' HUP; echo ready; while :; do sleep 0.05; done";
    for (signal, code) in [("TERM", 42), ("INT", 43), ("HUP", 44)] {
        for redact in [false, true] {
            let mut args = base("app/dev");
            if redact {
                args.insert(1, "--redact".into());
            }
            args.extend(["sh".into(), "-c".into(), script.into()]);
            let mut child = std::process::Command::new(common::BIN)
                .env("COFFER_ADDR", &server.addr)
                .env_remove("COFFER_TOKEN")
                .env("HOME", &home)
                .env("XDG_CONFIG_HOME", home.join("config"))
                .env("XDG_CACHE_HOME", home.join("cache"))
                .args(&args)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            let mut line = String::new();
            std::io::BufReader::new(child.stdout.as_mut().unwrap())
                .read_line(&mut line)
                .unwrap();
            assert_eq!(line, "ready\n", "{signal} redact={redact}");
            assert_eq!(live_run_tokens(&server, &root), 1, "logged in");
            let kill = std::process::Command::new("kill")
                .args([&format!("-{signal}"), &child.id().to_string()])
                .status()
                .unwrap();
            assert!(kill.success());
            let status = child.wait().unwrap();
            assert_eq!(status.code(), Some(code), "{signal} redact={redact}");
            assert_eq!(
                live_run_tokens(&server, &root),
                0,
                "{signal} redact={redact}: revoked"
            );
        }
    }
}

/// A signal at any moment of `coffer run --login` (during the login, the
/// fetch, the start of the command, or its run) never leaves the run's
/// token alive once coffer has exited: whatever the moment, coffer catches
/// it, revokes, and exits with a signal's status or the command's.
#[test]
fn a_signal_at_an_awkward_moment_never_leaves_the_runs_token_alive() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let (role_id, sid) = run_role(&server, &root, dir.path());
    let home = dir.path().join("machine");
    std::fs::create_dir_all(&home).unwrap();
    for (i, signal) in ["TERM", "INT", "HUP"].iter().cycle().take(12).enumerate() {
        let mut child = std::process::Command::new(common::BIN)
            .env("COFFER_ADDR", &server.addr)
            .env_remove("COFFER_TOKEN")
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("XDG_CACHE_HOME", home.join("cache"))
            .args([
                "run",
                "--login",
                "approle",
                "--role-id",
                &role_id,
                "--secret-id-file",
                sid.to_str().unwrap(),
                "--path",
                "app/dev",
                "--",
                "sleep",
                "5",
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Spread over the run's phases: from right after the start to
        // well into the command.
        std::thread::sleep(std::time::Duration::from_millis(
            5 * (i as u64) * (i as u64),
        ));
        let _ = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        let status = child.wait().unwrap();
        assert!(
            status.code().is_some_and(|c| c != 0) || status.code().is_none(),
            "{signal} after {i}: {status:?}"
        );
        assert_eq!(
            live_run_tokens(&server, &root),
            0,
            "{signal} at moment {i}: no live token once coffer has exited"
        );
    }
}

/// A TERM or INT while the login is under way (here: a server that never
/// answers) ends `coffer run --login` after a short grace with the signal's status,
/// instead of after the login's timeout; the command never starts.
#[test]
fn a_signal_during_a_hanging_login_ends_the_run_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    // Accepts and holds every connection, never answering.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming() {
            held.push(c);
        }
    });
    let sid = dir.path().join("sid");
    std::fs::write(&sid, "cfs_0123456789abcdefghijABCDEFGHIJ").unwrap();
    let marker = dir.path().join("started");
    for (signal, number) in [("TERM", 15), ("INT", 2)] {
        let mut child = std::process::Command::new(common::BIN)
            .env("COFFER_ADDR", &addr)
            .env_remove("COFFER_TOKEN")
            .env("HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .env("XDG_CACHE_HOME", dir.path().join("cache"))
            .args([
                "run",
                "--login",
                "approle",
                "--role-id",
                "role-x",
                "--secret-id-file",
                sid.to_str().unwrap(),
                "--",
                "touch",
                marker.to_str().unwrap(),
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(700));
        assert!(
            child.try_wait().unwrap().is_none(),
            "coffer is waiting for the login"
        );
        std::process::Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        // The login's own timeout is 60 s, its grace after a signal 3 s:
        // well before the timeout, coffer is gone.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("{signal}: coffer still waits for the login");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        // coffer dies by the signal it was sent, as a shell expects.
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(number),
            "{signal}: {status:?} {err}"
        );
        assert!(err.contains("during the login"), "{signal}: {err}");
        assert!(!err.contains("cfs_"), "{err}");
        assert!(!marker.exists(), "the command never started");
    }
}
