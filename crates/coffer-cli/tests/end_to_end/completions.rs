//! `coffer completions` and `coffer manpages`: generated from the command
//! definitions, so these check that the output is usable by the tools that
//! read it (bash parses and completes with it, `man` renders each page)
//! rather than its exact text.

use std::process::Command;

use crate::common::BIN;

fn coffer(args: &[&str]) -> std::process::Output {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "coffer {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn every_shell_gets_a_script_naming_the_commands() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = String::from_utf8(coffer(&["completions", shell]).stdout).unwrap();
        for word in ["operator", "unseal", "export", "json"] {
            assert!(script.contains(word), "{shell}: no {word}");
        }
    }
    let bad = Command::new(BIN)
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(
        bad.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}

/// Completes as bash would at `words`, the cursor on the last one.
fn bash_complete(script: &std::path::Path, words: &[&str]) -> Vec<String> {
    let cword = words.len() - 1;
    let program = format!(
        "source {script}; COMP_WORDS=({words}); COMP_CWORD={cword}; \
         COMP_LINE=\"${{COMP_WORDS[*]}}\"; COMP_POINT=${{#COMP_LINE}}; \
         _coffer coffer {cur} {prev}; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script = script.display(),
        words = words.join(" "),
        cur = words[cword],
        prev = words[cword - 1],
    );
    let out = Command::new("bash")
        .args(["--norc", "-c", &program])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn bash_parses_the_script_and_completes_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("coffer.bash");
    std::fs::write(&script, coffer(&["completions", "bash"]).stdout).unwrap();
    let check = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&check.stderr)
    );

    assert_eq!(bash_complete(&script, &["coffer", "oper"]), ["operator"]);
    assert_eq!(
        bash_complete(&script, &["coffer", "operator", "uns"]),
        ["unseal"]
    );
    let flags = bash_complete(&script, &["coffer", "export", "--"]);
    for f in ["--format", "--path", "--out", "--namespace"] {
        assert!(flags.contains(&f.to_string()), "{flags:?}");
    }
}

#[test]
fn every_manual_page_renders_with_man() {
    let dir = tempfile::tempdir().unwrap();
    let pages = dir.path().join("man1");
    let out = coffer(&["manpages", pages.to_str().unwrap()]);
    let mut names: Vec<String> = std::fs::read_dir(&pages)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("{} manual pages", names.len())),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "coffer.1",
        "coffer-set.1",
        "coffer-operator-unseal.1",
        "coffer-audit-verify.1",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "no {expected} in {names:?}"
        );
    }
    for name in &names {
        let rendered = Command::new("man")
            .arg("-l")
            .arg(pages.join(name))
            .env("MANWIDTH", "100")
            .env("MANPAGER", "cat")
            .env("PAGER", "cat")
            .output()
            .unwrap_or_else(|e| panic!("cannot run man (.ci/run installs man-db): {e}"));
        let text = String::from_utf8_lossy(&rendered.stdout);
        assert!(
            rendered.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&rendered.stderr)
        );
        assert!(
            text.contains("NAME") && text.contains("SYNOPSIS"),
            "{name}:\n{text}"
        );
    }
    // The examples in each command's help reach its page.
    let set = Command::new("man")
        .arg("-l")
        .arg(pages.join("coffer-set.1"))
        .env("MANWIDTH", "200")
        .env("MANPAGER", "cat")
        .output()
        .unwrap();
    // Not on a terminal, man marks bold and underline by overstriking
    // (`c\u{8}c`), and it justifies lines with extra spaces.
    let mut text = String::new();
    for c in String::from_utf8_lossy(&set.stdout).chars() {
        if c == '\u{8}' {
            text.pop();
        } else {
            text.push(c);
        }
    }
    let words = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.contains("coffer set myapp/prod/DB_PASSWORD --generate alnum:24"),
        "{text}"
    );
}

/// On a terminal, help is coloured unless `NO_COLOR` is set (no-color.org).
/// util-linux's `script` gives the command a pseudo-terminal.
#[test]
fn no_color_turns_colour_off_on_a_terminal() {
    let on_terminal = |no_color: Option<&str>| {
        let mut cmd = Command::new("script");
        cmd.args(["-qec", &format!("{BIN} --help"), "/dev/null"]);
        cmd.env_remove("NO_COLOR");
        if let Some(v) = no_color {
            cmd.env("NO_COLOR", v);
        }
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run script (util-linux): {e}"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage"));
        out.stdout.contains(&0x1b)
    };
    assert!(on_terminal(None), "help is coloured on a terminal");
    assert!(!on_terminal(Some("1")), "NO_COLOR=1 still coloured");
    // An empty NO_COLOR does not count.
    assert!(on_terminal(Some("")), "NO_COLOR= (empty) turned colour off");
}
