//! One-time share links end to end: links made with `coffer share create`
//! are opened in a real Chromium (Debian's `chromium`, driven by Playwright
//! for Python: `.ci/deps/browser.sh` installs both; without them this
//! test fails, it does not skip), links made in the browser by `share.js`
//! are opened with `coffer share open`, and neither the SQLite file nor the
//! audit log nor the server's log ever holds a shared value, a link key or
//! a passphrase.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::json;

use crate::common::{Mode, Server};

const BROWSER_SCRIPT: &str = include_str!("share/share_browser.py");

/// `coffer share create` with the value on stdin; the link.
fn create(
    server: &Server,
    token: &str,
    value: &str,
    args: &[&str],
    passphrase: Option<&str>,
) -> String {
    let mut cli = server.cli().token(token).stdin(value);
    if let Some(p) = passphrase {
        cli = cli.env("COFFER_SHARE_PASSPHRASE", p);
    }
    let mut all = vec!["share", "create", "--stdin"];
    all.extend_from_slice(args);
    let run = cli.run(&all).expect(0);
    let link = run.stdout().trim().to_string();
    assert!(link.starts_with(&format!("{}/s/", server.addr)), "{link}");
    link
}

/// `coffer share open` with the link on stdin.
fn open(server: &Server, link: &str, passphrase: Option<&str>) -> crate::common::Run {
    let mut cli = server.cli().env_remove("COFFER_SHARE_LINK").stdin(link);
    if let Some(p) = passphrase {
        cli = cli.env("COFFER_SHARE_PASSPHRASE", p);
    }
    cli.run(&["share", "open"])
}

fn id_of(link: &str) -> &str {
    link.rsplit_once("/s/")
        .unwrap()
        .1
        .split('#')
        .next()
        .unwrap()
}

fn key_of(link: &str) -> &str {
    link.split_once('#').unwrap().1
}

#[test]
fn links_open_once_in_a_browser_and_the_server_never_holds_a_value_or_key() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();

    let plain_value = "browser-canary-plain-6f1e2d";
    let pass_value = "browser-canary-pass-0a9b8c";
    let passphrase = "correct horse share staple";
    let xss_value = r#"<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>"#;
    let browser_value = "made-in-the-browser-canary-4d3c2b";

    let plain = create(&server, &root, plain_value, &[], None);
    let with_pass = create(
        &server,
        &root,
        pass_value,
        &["--passphrase"],
        Some(passphrase),
    );
    let xss = create(&server, &root, xss_value, &[], None);
    let tamper = create(&server, &root, "tamper-canary-77aa", &[], None);
    let swap_source = create(&server, &root, "swap-source-canary-11bb", &[], None);
    let swap_target = create(&server, &root, "swap-target-canary-22cc", &[], None);

    let script = dir.path().join("share_browser.py");
    std::fs::write(&script, BROWSER_SCRIPT).unwrap();
    let job = json!({
        "origin": server.addr,
        "plain": plain,
        "passphrase_link": with_pass,
        "passphrase": passphrase,
        "xss": xss,
        "tamper": tamper,
        "swap_source_id": id_of(&swap_source),
        "swap_target": swap_target,
        "token": root,
        "browser_value": browser_value,
    });
    let mut child = Command::new("python3")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs (Playwright and chromium are needed: .ci/deps/browser.sh)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(job.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the browser script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();

    // A preview did not spend the view; the first reveal shows the value,
    // the fragment is gone from the address bar, the second says nothing
    // about why it fails.
    let first = &report["plain_first"];
    assert_eq!(first["value"], plain_value, "{report}");
    assert!(!first["address"].as_str().unwrap().contains('#'), "{first}");
    let second = &report["plain_second"];
    assert_eq!(second["value"], serde_json::Value::Null);
    assert_eq!(
        second["status"], "This link is unknown, used up or expired.",
        "{second}"
    );
    // A wrong passphrase is asked again without spending another view.
    assert_eq!(report["passphrase"]["value"], pass_value, "{report}");
    assert_eq!(report["passphrase"]["wrong_shown"], true);
    // The value is text, never markup.
    assert_eq!(report["xss"]["value"], xss_value);
    assert_eq!(report["xss"]["value_children"], 0);
    assert_eq!(report["xss"]["xss"], serde_json::Value::Null);
    // Tampered or swapped ciphertext does not decrypt, and the page says so.
    for case in ["tamper", "swap"] {
        assert_eq!(report[case]["value_shown"], false, "{case}");
        assert!(
            report[case]["status"]
                .as_str()
                .unwrap()
                .contains("could not be decrypted"),
            "{case}: {}",
            report[case]
        );
    }
    // No request carried a Referer, a link key or a passphrase.
    let keys = [
        key_of(&plain),
        key_of(&with_pass),
        key_of(&xss),
        key_of(&tamper),
    ];
    for r in report["requests"].as_array().unwrap() {
        assert!(r["referer"].is_null(), "{r}");
        let url = r["url"].as_str().unwrap();
        let body = r["body"].as_str().unwrap();
        for k in keys {
            assert!(!url.contains(k) && !body.contains(k), "{r}");
        }
        assert!(
            !body.contains(passphrase) && !body.contains(browser_value),
            "{r}"
        );
    }

    // Links made in the browser open with the CLI; the second open of a
    // one-view link exits 3 (not found), and a wrong passphrase exits 7.
    let made_plain = report["made"]["plain"].as_str().unwrap().to_string();
    let made_pass = report["made"]["passphrase"].as_str().unwrap().to_string();
    assert_eq!(report["made"]["info"]["views"], 2);
    assert_eq!(
        open(&server, &made_plain, None).expect(0).stdout(),
        browser_value
    );
    open(&server, &made_plain, None).expect(3);
    open(&server, &made_pass, Some("not it")).expect(7);
    assert_eq!(
        open(&server, &made_pass, Some(passphrase))
            .expect(0)
            .stdout(),
        browser_value
    );
    open(&server, &made_pass, Some(passphrase)).expect(3);

    // A stored secret: needs read, and records the version shared.
    let stored_value = "stored-canary-9e8d7c";
    server
        .cli()
        .token(&root)
        .stdin(stored_value)
        .run(&["set", "app/dev/SHARED"])
        .expect(0);
    let run = server
        .cli()
        .token(&root)
        .run(&[
            "share",
            "create",
            "app/dev/SHARED",
            "--views",
            "2",
            "--expires",
            "2h",
            "--json",
        ])
        .expect(0);
    let made = run.json();
    let stored_link = made["url"].as_str().unwrap().to_string();
    let listed = server
        .cli()
        .token(&root)
        .run(&["share", "list", "--json"])
        .expect(0)
        .json();
    let entry = listed["shares"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == made["id"])
        .unwrap()
        .clone();
    assert_eq!(entry["path"], "app/dev/SHARED");
    assert_eq!(entry["version"], 1);
    assert_eq!(entry["views_left"], 2);
    assert_eq!(
        open(&server, &stored_link, None).expect(0).stdout(),
        stored_value
    );
    server
        .cli()
        .token(&root)
        .run(&["share", "revoke", made["id"].as_str().unwrap()])
        .expect(0);
    open(&server, &stored_link, None).expect(3);
    // Regression: an id that starts with `-` was taken for a flag.
    let dash = "-AAAAAAAAAAAAAAAAAAAAA";
    let body = json!({ "id": dash, "ciphertext": "A".repeat(40) }).to_string();
    let r = server.http("POST", "/api/v1/shares", Some(&root), Some(body.as_bytes()));
    assert_eq!(r.status, 201, "{}", r.text());
    server
        .cli()
        .token(&root)
        .run(&["share", "revoke", dash])
        .expect(0);
    // Not a link at all: a usage error that does not echo it.
    let bad = open(
        &server,
        "https://example.test/s/nope#secretish-fragment",
        None,
    )
    .expect(2);
    assert!(!bad.stderr().contains("secretish"), "{}", bad.stderr());
    // A token without the capability: permission denied.
    let reader = server.token_with_policy(
        &root,
        "reader",
        r#"path "app/*" { capabilities = ["read"] }"#,
    );
    server
        .cli()
        .token(&reader)
        .stdin("v")
        .run(&["share", "create", "--stdin"])
        .expect(4);

    // Nothing the server keeps holds a value, a key or the passphrase.
    let mut needles: Vec<String> = vec![
        plain_value.into(),
        pass_value.into(),
        browser_value.into(),
        stored_value.into(),
        passphrase.into(),
        "tamper-canary-77aa".into(),
    ];
    for link in [
        &plain,
        &with_pass,
        &xss,
        &tamper,
        &made_plain,
        &made_pass,
        &stored_link,
    ] {
        needles.push(key_of(link).to_string());
    }
    let mut haystacks: Vec<(String, Vec<u8>)> = Vec::new();
    for entry in std::fs::read_dir(server.data_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            haystacks.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    haystacks.push(("server log".into(), server.logs().into_bytes()));
    assert!(haystacks.iter().any(|(n, _)| n.ends_with("coffer.db")));
    assert!(haystacks.iter().any(|(n, _)| n.ends_with("audit.log")));
    for (name, bytes) in &haystacks {
        for needle in &needles {
            let found = bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
            // The stored secret's own value is sealed by the keyring, so
            // it is not in the file in plain either.
            assert!(!found, "{name} holds a shared value, key or passphrase");
        }
    }
}

/// Every `coffer ...` command the sharing chapter shows parses with the
/// real CLI: run against an address where nothing listens, each gets as
/// far as the network (exit 6, unreachable), never a usage error.
#[test]
fn every_command_in_the_sharing_chapter_parses() {
    const CHAPTER: &str = include_str!("../../../../docs/src/sharing.md");
    let dir = tempfile::tempdir().unwrap();
    let link = format!(
        "http://127.0.0.1:1/s/AAAAAAAAAAAAAAAAAAAAAA#{}",
        "A".repeat(43)
    );
    let mut in_sh = false;
    let mut seen = 0;
    for line in CHAPTER.lines() {
        if line.starts_with("```") {
            in_sh = line == "```sh";
            continue;
        }
        let Some(at) = line.find("coffer ").filter(|_| in_sh) else {
            continue;
        };
        let mut command = &line[at..];
        for cut in [" #", " >"] {
            if let Some(i) = command.find(cut) {
                command = &command[..i];
            }
        }
        let args: Vec<&str> = command.split_whitespace().skip(1).collect();
        let input = if args.get(1) == Some(&"open") {
            link.clone()
        } else {
            "a value to share".to_string()
        };
        let run = crate::common::Cli::new("http://127.0.0.1:1", dir.path())
            .token("cft_unused")
            .env("COFFER_SHARE_PASSPHRASE", "a passphrase")
            .env_remove("COFFER_SHARE_LINK")
            .stdin(input)
            .run(&args);
        assert_eq!(run.code(), 6, "{command}: {}", run.stderr());
        seen += 1;
    }
    assert!(seen >= 10, "{seen} commands found");
}
