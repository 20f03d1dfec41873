//! Differential tests against python-dotenv (`pip install python-dotenv`):
//! every file in `tests/corpus/` must read the same with both, and
//! `tests/deviations.env` must differ exactly as the crate docs say (single
//! quotes are never expanded here). Written files must read back the same
//! in python-dotenv too. Fails, never skips, without python-dotenv.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

type Values = Vec<(String, Option<String>)>;

/// Variables both readers see beyond the file.
fn env() -> HashMap<String, String> {
    let mut env: HashMap<String, String> = std::env::vars().collect();
    env.insert("DOTENV_TEST_SET".into(), "from-env".into());
    env.insert("DOTENV_TEST_EMPTY".into(), String::new());
    env.insert("OVERRIDES_ENV".into(), "from-env".into());
    env
}

/// Values, and the lines python-dotenv warned it could not parse.
fn python(path: &Path) -> Values {
    python_with_errors(path).0
}

fn python_with_errors(path: &Path) -> (Values, Vec<usize>) {
    let script = "import json, sys\n\
                  from dotenv import dotenv_values\n\
                  print(json.dumps(list(dotenv_values(sys.argv[1]).items())))";
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(path)
        .env_clear()
        .envs(env())
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python-dotenv failed on {} (is it installed? pip install python-dotenv): {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| l.rsplit_once("starting at line "))
        .map(|(_, n)| n.trim().parse().expect("a line number"))
        .collect();
    (
        serde_json::from_slice(&out.stdout).expect("python printed JSON"),
        lines,
    )
}

fn ours(path: &Path) -> Values {
    let text = std::fs::read_to_string(path).unwrap();
    let env = env();
    coffer_dotenv::parse(&text).resolve(&|name| env.get(name).cloned())
}

fn corpus() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 5, "the corpus is missing");
    files
}

#[test]
fn the_corpus_reads_as_python_dotenv_reads_it() {
    let mut errors = 0;
    for file in corpus() {
        let ((py, py_errors), us) = (python_with_errors(&file), ours(&file));
        assert!(!py.is_empty(), "{}: python read nothing", file.display());
        assert_eq!(us, py, "{} reads differently", file.display());
        let text = std::fs::read_to_string(&file).unwrap();
        let our_errors: Vec<usize> = coffer_dotenv::parse(&text)
            .errors
            .iter()
            .map(|e| e.line)
            .collect();
        assert_eq!(
            our_errors,
            py_errors,
            "{}: statements skipped",
            file.display()
        );
        errors += our_errors.len();
    }
    assert!(errors >= 3, "the corpus has bad statements too");
}

#[test]
fn single_quotes_are_the_one_documented_difference() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/deviations.env");
    let home = env()["HOME"].clone();
    assert_eq!(
        python(&file),
        [
            ("LITERAL".to_string(), Some(format!("{home} stays"))),
            ("LITERAL_DEFAULT".to_string(), Some("x".to_string())),
        ]
    );
    assert_eq!(
        ours(&file),
        [
            ("LITERAL".to_string(), Some("${HOME} stays".to_string())),
            (
                "LITERAL_DEFAULT".to_string(),
                Some("${MISSING:-x}".to_string())
            ),
        ]
    );
}

#[test]
fn python_dotenv_reads_written_files_back() {
    let values = [
        "plain",
        "two words",
        "it's",
        "say \"hi\"",
        "back\\slash and 'both' \"quotes\"",
        "line one\nline two\n",
        "tab\there # not a comment",
        " padded ",
        "$HOME is not expanded by anyone",
        "unicode é ☃",
        "=leading equals",
        "#leading hash",
        "",
        "ends with backslash\\",
        "cr\rlf",
        "it's $(touch /nonexistent/pwned) `id`",
        "single $HOME and $(id)",
        "cr\r and $(id)",
    ];
    let entries: Vec<(String, &str)> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("K{i}"), *v))
        .collect();
    let text = coffer_dotenv::write(entries.iter().map(|(k, v)| (k.as_str(), *v))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("written.env");
    std::fs::write(&file, &text).unwrap();
    let want: Values = entries
        .iter()
        .map(|(k, v)| (k.clone(), Some(v.to_string())))
        .collect();
    assert_eq!(
        python(&file),
        want,
        "python-dotenv reads {text:?} differently"
    );
    assert_eq!(ours(&file), want);
}
