//! `coffer doctor` against a real server and a real git repository: each
//! problem it should find is made, found with its fix, then fixed and seen
//! fixed; the exit status says whether anything failed.

use std::path::Path;
use std::process::Command;

use crate::common::{Cli, Mode, Server};

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The status and message of each check, by name (the last one of a name).
fn checks(run: &crate::common::Run) -> Vec<(String, String, String)> {
    run.json()["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["check"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
                c["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn status_of(list: &[(String, String, String)], name: &str) -> String {
    list.iter()
        .filter(|c| c.0 == name)
        .map(|c| c.1.clone())
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn doctor_finds_each_problem_and_sees_it_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let repo = dir.path().join("project");
    std::fs::create_dir(&repo).unwrap();
    git(&repo, &["init", "-q"]);
    std::fs::write(repo.join(".env"), "API_KEY=not-a-real-key\n").unwrap();
    std::fs::write(repo.join(".env.example"), "API_KEY=\n").unwrap();
    let doctor = || {
        Cli::new(&server.addr, dir.path()).token(&root).run(&[
            "doctor",
            "--json",
            "--dir",
            repo.to_str().unwrap(),
        ])
    };

    let run = doctor().expect(7);
    let list = checks(&run);
    for (name, want) in [
        ("transport", "ok"),
        ("token file", "ok"),
        ("server", "ok"),
        ("seal", "ok"),
        ("audit log", "ok"),
        ("clock", "ok"),
        ("token", "ok"),
        ("audit chain", "ok"),
        ("backups", "warn"),
        (".env files", "fail"),
        ("pre-commit hook", "warn"),
    ] {
        assert_eq!(status_of(&list, name), want, "{name}: {list:?}");
    }
    let env = list.iter().find(|c| c.0 == ".env files").unwrap();
    assert!(
        env.2.contains(".env") && !env.2.contains(".env.example"),
        "{env:?}"
    );
    assert!(!run.stdout().contains("not-a-real-key"));
    assert_eq!(run.json()["ok"], false);

    // Fixed: ignored, a hook that scans, a backup.
    std::fs::write(repo.join(".gitignore"), ".env\n").unwrap();
    let hooks = repo.join(".git/hooks");
    std::fs::write(
        hooks.join("pre-commit"),
        "#!/bin/sh\nexec coffer scan --staged\n",
    )
    .unwrap();
    Cli::new(&server.addr, dir.path())
        .token(&root)
        .run(&[
            "operator",
            "backup",
            dir.path().join("b.backup").to_str().unwrap(),
        ])
        .expect(0);
    let run = doctor().expect(0);
    let list = checks(&run);
    for (name, want) in [
        (".env files", "ok"),
        ("pre-commit hook", "ok"),
        ("backups", "ok"),
    ] {
        assert_eq!(status_of(&list, name), want, "{name}: {list:?}");
    }
    assert_eq!(run.json()["ok"], true);

    // Committed anyway (forced past .gitignore): found in the index.
    git(&repo, &["add", "-f", ".env"]);
    git(&repo, &["commit", "-q", "-m", "oops"]);
    let run = doctor().expect(7);
    let env = checks(&run)
        .into_iter()
        .find(|c| c.0 == ".env files")
        .unwrap();
    assert_eq!(env.1, "fail");
    assert!(env.2.contains("committed to git"), "{env:?}");

    // A token that may not verify the audit log or search it: skipped, not failed.
    let limited = server.token_with_policy(
        &root,
        "app-reader",
        r#"path "app/*" { capabilities = ["read"] }"#,
    );
    git(&repo, &["rm", "-q", "--cached", ".env"]);
    git(&repo, &["commit", "-q", "-m", "fix"]);
    let run = Cli::new(&server.addr, dir.path())
        .token(&limited)
        .run(&["doctor", "--json", "--dir", repo.to_str().unwrap()])
        .expect(0);
    let list = checks(&run);
    assert_eq!(status_of(&list, "audit chain"), "skip", "{list:?}");
    assert_eq!(status_of(&list, "backups"), "skip", "{list:?}");

    // Text output: one line per check, each failure with its fix.
    std::fs::remove_file(repo.join(".gitignore")).unwrap();
    let run = Cli::new(&server.addr, dir.path())
        .token(&root)
        .run(&["doctor", "--dir", repo.to_str().unwrap()])
        .expect(7);
    let text = run.stdout();
    assert!(text.contains("FAIL  .env files"), "{text}");
    assert!(text.contains("fix: add them to .gitignore"), "{text}");
    assert!(text.contains("1 failure(s)"), "{text}");
    server.stop();
}

#[test]
fn doctor_says_what_is_wrong_without_a_server_or_with_an_open_token_file() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("config/coffer");
    std::fs::create_dir_all(&config).unwrap();
    let token = config.join("token");
    std::fs::write(&token, "cft_not_a_real_token\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = Cli::new(&format!("http://127.0.0.1:{port}"), dir.path())
        .run(&["doctor", "--json", "--dir", dir.path().to_str().unwrap()])
        .expect(7);
    let list = checks(&run);
    assert_eq!(status_of(&list, "token file"), "fail", "{list:?}");
    assert_eq!(status_of(&list, "server"), "fail", "{list:?}");
    assert_eq!(status_of(&list, "git"), "skip", "{list:?}");
    assert!(!run.stdout().contains("cft_not_a_real_token"));
    let fixes: Vec<String> = run.json()["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| c["fix"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        fixes.iter().all(|f| !f.is_empty()),
        "every failure says how to fix it: {fixes:?}"
    );
}
