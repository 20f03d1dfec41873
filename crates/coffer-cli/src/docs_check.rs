//! Checks that the documentation (the README and the book under `docs/`)
//! stays true to the command line and to itself:
//!
//! - every `coffer ...` command in a shell code block parses with the real
//!   command definitions (a documented command that fails is a bug in the
//!   documentation, reported with its file and line);
//! - the CLI reference chapter and `coffer --help` name the same top-level
//!   commands, so a new command cannot ship undocumented;
//! - every relative link and `#anchor` between the README, the book and the
//!   repository's other Markdown files resolves, and no link leaves the
//!   repository but for the project's own address;
//! - the book builds with mdBook (installed by `.ci/deps/docs.sh`; the test
//!   fails when it is missing).
//!
//! Test-only: compiled into `coffer`'s unit tests, never into the binary.

#![cfg(test)]

use std::collections::{BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};
use std::process::Command as Process;

use clap::{CommandFactory, Parser};

use crate::cli::Cli;

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every Markdown file of the documentation, relative to the root: the
/// top-level ones, those under `deploy/` and `bench/`, and the book's.
fn documents() -> Vec<PathBuf> {
    let root = root();
    let mut files = Vec::new();
    for dir in [".", "deploy", "bench"] {
        let entries =
            std::fs::read_dir(root.join(dir)).unwrap_or_else(|e| panic!("cannot read {dir}: {e}"));
        for entry in entries {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|x| x == "md") {
                files.push(path.strip_prefix(&root).unwrap().to_path_buf());
            }
        }
    }
    fn walk(root: &Path, dir: &Path, files: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(root.join(dir))
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
        for entry in entries {
            let entry = entry.unwrap();
            let rel = dir.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                walk(root, &rel, files);
            } else if rel.extension().is_some_and(|x| x == "md") {
                files.push(rel);
            }
        }
    }
    walk(&root, Path::new("docs/src"), &mut files);
    files.sort();
    assert!(
        files.iter().any(|f| f == Path::new("docs/src/SUMMARY.md")),
        "the book has no docs/src/SUMMARY.md"
    );
    files
}

fn read(rel: &Path) -> String {
    std::fs::read_to_string(root().join(rel))
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", rel.display()))
}

/// A fenced code block: its info string's first word and its lines, each
/// with its line number in the file.
struct Block {
    lang: String,
    lines: Vec<(usize, String)>,
}

/// The fenced code blocks of a Markdown text (backtick or tilde fences,
/// indented or not, closed by a fence of the same character at least as
/// long).
fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<(char, usize, Block)> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let fence = trimmed
            .chars()
            .next()
            .filter(|c| *c == '`' || *c == '~')
            .map(|c| (c, trimmed.chars().take_while(|x| *x == c).count()))
            .filter(|(_, n)| *n >= 3);
        match (&mut open, fence) {
            (Some((c, n, _)), Some((fc, fn_)))
                if fc == *c && fn_ >= *n && trimmed[fn_..].trim().is_empty() =>
            {
                out.push(open.take().unwrap().2);
            }
            (Some((_, _, block)), _) => block.lines.push((i + 1, line.to_string())),
            (None, Some((c, n))) => {
                let lang = trimmed[n..]
                    .split(|x: char| x.is_whitespace() || x == ',' || x == '{')
                    .next()
                    .unwrap_or("")
                    .to_string();
                open = Some((
                    c,
                    n,
                    Block {
                        lang,
                        lines: Vec::new(),
                    },
                ));
            }
            (None, None) => {}
        }
    }
    out
}

/// The text of a Markdown file outside fenced code blocks, line by line
/// (the lines of code blocks are left empty, so numbers still match).
fn prose(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text.lines().map(str::to_string).collect();
    let mut open: Option<(char, usize)> = None;
    for line in out.iter_mut() {
        let trimmed = line.trim_start();
        let fence = trimmed
            .chars()
            .next()
            .filter(|c| *c == '`' || *c == '~')
            .map(|c| (c, trimmed.chars().take_while(|x| *x == c).count()))
            .filter(|(_, n)| *n >= 3);
        match (open, fence) {
            (Some((c, n)), Some((fc, fn_))) if fc == c && fn_ >= n => {
                open = None;
                line.clear();
            }
            (Some(_), _) => line.clear(),
            (None, Some(f)) => {
                open = Some(f);
                line.clear();
            }
            (None, None) => {}
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Shell command lines

/// A shell token: a word (quotes removed) or an operator.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    /// `|`, `||`, `&&`, `;`, `&`, `(`, `)`: ends a simple command.
    Sep,
}

/// Splits one logical shell line into tokens, the way a POSIX shell reads
/// it, well enough for documentation: quotes, backslashes, comments,
/// redirections (dropped with their target), and `$(...)`, `<(...)` and
/// backticks, whose contents are returned as further command lines.
fn lex(line: &str, nested: &mut Vec<String>) -> Vec<Tok> {
    let chars: Vec<char> = line.chars().collect();
    let mut toks = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    // The next word is a redirection's target, to be dropped.
    let mut drop_next = false;
    let mut i = 0;
    let push = |toks: &mut Vec<Tok>, word: &mut String, in_word: &mut bool, drop: &mut bool| {
        if *in_word {
            if *drop {
                *drop = false;
            } else {
                toks.push(Tok::Word(std::mem::take(word)));
            }
            word.clear();
            *in_word = false;
        }
    };
    // The text up to the parenthesis that closes one opened before `start`.
    let close = |start: usize| -> usize {
        let mut depth = 1;
        let mut j = start;
        let mut quote: Option<char> = None;
        while j < chars.len() {
            let c = chars[j];
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None if c == '\'' || c == '"' => quote = Some(c),
                None if c == '(' => depth += 1,
                None if c == ')' => {
                    depth -= 1;
                    if depth == 0 {
                        return j;
                    }
                }
                None => {}
            }
            j += 1;
        }
        chars.len()
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' => push(&mut toks, &mut word, &mut in_word, &mut drop_next),
            '#' if !in_word => break,
            '\\' => {
                if let Some(&n) = chars.get(i + 1) {
                    word.push(n);
                    i += 1;
                }
                in_word = true;
            }
            '\'' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|x| *x == '\'')
                    .map_or(chars.len(), |p| i + 1 + p);
                word.extend(&chars[i + 1..end]);
                in_word = true;
                i = end;
            }
            '"' => {
                let mut j = i + 1;
                while j < chars.len() && chars[j] != '"' {
                    if chars[j] == '\\' && j + 1 < chars.len() {
                        word.push(chars[j + 1]);
                        j += 2;
                        continue;
                    }
                    if chars[j] == '$' && chars.get(j + 1) == Some(&'(') {
                        let end = close(j + 2);
                        nested.push(chars[j + 2..end.min(chars.len())].iter().collect());
                        word.push_str("$(...)");
                        j = end + 1;
                        continue;
                    }
                    word.push(chars[j]);
                    j += 1;
                }
                in_word = true;
                i = j;
            }
            '`' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|x| *x == '`')
                    .map_or(chars.len(), |p| i + 1 + p);
                nested.push(chars[i + 1..end].iter().collect());
                word.push_str("`...`");
                in_word = true;
                i = end;
            }
            '$' if chars.get(i + 1) == Some(&'(') => {
                let end = close(i + 2);
                nested.push(chars[i + 2..end.min(chars.len())].iter().collect());
                word.push_str("$(...)");
                in_word = true;
                i = end;
            }
            '<' if chars.get(i + 1) == Some(&'(') => {
                push(&mut toks, &mut word, &mut in_word, &mut drop_next);
                let end = close(i + 2);
                nested.push(chars[i + 2..end.min(chars.len())].iter().collect());
                toks.push(Tok::Word("/dev/fd/63".to_string()));
                i = end;
            }
            '<' | '>' => {
                // A file descriptor number before it belongs to the operator.
                if in_word && !word.is_empty() && word.chars().all(|d| d.is_ascii_digit()) {
                    word.clear();
                    in_word = false;
                }
                push(&mut toks, &mut word, &mut in_word, &mut drop_next);
                let mut j = i + 1;
                while j < chars.len() && matches!(chars[j], '<' | '>' | '|') {
                    j += 1;
                }
                if chars.get(j) == Some(&'&') {
                    // `>&2`, `2>&1`, `>&-`: no target word.
                    j += 1;
                    while j < chars.len() && (chars[j].is_ascii_digit() || chars[j] == '-') {
                        j += 1;
                    }
                } else {
                    drop_next = true;
                }
                i = j;
                continue;
            }
            '&' if chars.get(i + 1) == Some(&'>') => {
                push(&mut toks, &mut word, &mut in_word, &mut drop_next);
                drop_next = true;
                i += 2;
                continue;
            }
            '|' | '&' | ';' | '(' | ')' => {
                push(&mut toks, &mut word, &mut in_word, &mut drop_next);
                if !matches!(toks.last(), Some(Tok::Sep)) {
                    toks.push(Tok::Sep);
                }
                if i + 1 < chars.len() && matches!(chars[i + 1], '|' | '&') && c != '(' && c != ')'
                {
                    i += 1;
                }
            }
            _ => {
                word.push(c);
                in_word = true;
            }
        }
        i += 1;
    }
    push(&mut toks, &mut word, &mut in_word, &mut drop_next);
    toks
}

fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

fn is_coffer(word: &str) -> bool {
    word == "coffer" || word.ends_with("/coffer")
}

/// The arguments of a simple command that runs `coffer`, with `coffer`
/// first, once the shell's keywords, variable assignments and the usual
/// wrappers (`sudo`, `env`, `exec`, `docker exec`, `kubectl exec`,
/// `cargo run -p coffer-cli --`) are taken off; `None` for any other
/// command.
fn coffer_args(words: &[String]) -> Option<Vec<String>> {
    let mut w: &[String] = words;
    loop {
        let first = w.first()?.as_str();
        match first {
            "do" | "then" | "else" | "elif" | "if" | "while" | "until" | "!" | "{" | "time"
            | "exec" | "nohup" | "command" => w = &w[1..],
            _ if is_assignment(first) => w = &w[1..],
            "env" => {
                w = &w[1..];
                while w.first().is_some_and(|x| x.starts_with('-')) {
                    w = &w[1..];
                }
            }
            "sudo" | "runuser" => {
                w = &w[1..];
                while let Some(flag) = w.first().filter(|x| x.starts_with('-')) {
                    let takes_value = matches!(flag.as_str(), "-u" | "-g" | "-C" | "-D");
                    if flag == "--" {
                        w = &w[1..];
                        break;
                    }
                    w = &w[if takes_value { 2 } else { 1 }.min(w.len())..];
                }
            }
            "docker" | "podman" if w.get(1).is_some_and(|x| x == "exec") => {
                w = &w[2..];
                while let Some(flag) = w.first().filter(|x| x.starts_with('-')) {
                    let takes_value = matches!(
                        flag.as_str(),
                        "-e" | "-u" | "-w" | "--env" | "--user" | "--workdir"
                    );
                    w = &w[if takes_value { 2 } else { 1 }.min(w.len())..];
                }
                // The container.
                w = w.get(1..)?;
            }
            "kubectl" if w.iter().any(|x| x == "exec") => {
                let dash = w.iter().position(|x| x == "--")?;
                w = &w[dash + 1..];
            }
            "cargo"
                if w.get(1).is_some_and(|x| x == "run")
                    && w.windows(2).any(|p| p[0] == "-p" && p[1] == "coffer-cli") =>
            {
                let dash = w.iter().position(|x| x == "--");
                let mut args = vec!["coffer".to_string()];
                if let Some(dash) = dash {
                    args.extend(w[dash + 1..].iter().cloned());
                }
                return Some(args);
            }
            _ if is_coffer(first) => {
                let mut args = vec!["coffer".to_string()];
                args.extend(w[1..].iter().cloned());
                return Some(args);
            }
            _ => return None,
        }
    }
}

/// Every `coffer` command line of one logical shell line (those inside
/// `$(...)`, `<(...)` and backticks too).
fn commands_of(line: &str) -> Vec<Vec<String>> {
    let mut pending = vec![line.to_string()];
    let mut out = Vec::new();
    while let Some(text) = pending.pop() {
        let mut nested = Vec::new();
        let toks = lex(&text, &mut nested);
        pending.extend(nested);
        for simple in toks.split(|t| *t == Tok::Sep) {
            let words: Vec<String> = simple
                .iter()
                .filter_map(|t| match t {
                    Tok::Word(w) => Some(w.clone()),
                    Tok::Sep => None,
                })
                .collect();
            if let Some(args) = coffer_args(&words) {
                out.push(args);
            }
        }
    }
    out
}

/// The logical command lines of a shell code block, each with the number
/// of its first line: comments and output are left out, continued lines
/// are joined, here-documents skipped. In a block where any line starts
/// with a `$ ` prompt, only prompted lines are commands (the rest is
/// output).
fn shell_lines(block: &Block) -> Vec<(usize, String)> {
    let prompted = block
        .lines
        .iter()
        .any(|(_, l)| l.trim_start().starts_with("$ "));
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    let mut heredoc: Option<String> = None;
    for (n, raw) in &block.lines {
        if let Some(end) = &heredoc {
            if raw.trim() == end {
                heredoc = None;
            }
            continue;
        }
        let line = match &mut current {
            Some((_, text)) => {
                text.push(' ');
                text.push_str(raw.trim());
                text.clone()
            }
            None => {
                let trimmed = raw.trim_start();
                let text = match trimmed.strip_prefix("$ ") {
                    Some(rest) => rest,
                    None if prompted => continue,
                    None => trimmed,
                };
                current = Some((*n, text.to_string()));
                text.to_string()
            }
        };
        if let Some(stripped) = line.strip_suffix('\\') {
            current.as_mut().unwrap().1 = stripped.to_string();
            continue;
        }
        let (start, text) = current.take().unwrap();
        if let Some(pos) = text.find("<<").filter(|p| !text[p + 2..].starts_with('<')) {
            let delim = text[pos + 2..]
                .trim_start_matches(['-', '~'])
                .split_whitespace()
                .next()
                .unwrap_or("")
                .trim_matches(['\'', '"']);
            if !delim.is_empty() {
                heredoc = Some(delim.to_string());
            }
        }
        out.push((start, text));
    }
    out
}

/// Every `coffer` command of the documentation's code blocks: shell
/// blocks (`sh`, `bash`, `shell`, `console`) and the `run:` steps of YAML
/// ones (CI workflows), each with `file:line`.
fn documented_commands() -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for file in documents() {
        for block in blocks(&read(&file)) {
            let lines: Vec<(usize, String)> = match block.lang.as_str() {
                "sh" | "bash" | "shell" | "console" => shell_lines(&block),
                "yaml" | "yml" => block
                    .lines
                    .iter()
                    .filter_map(|(n, l)| {
                        let rest = l.trim_start().trim_start_matches("- ").trim_start();
                        let cmd = rest.strip_prefix("run:")?.trim();
                        (!cmd.is_empty() && !cmd.starts_with(['|', '>']))
                            .then(|| (*n, cmd.to_string()))
                    })
                    .collect(),
                _ => Vec::new(),
            };
            for (n, line) in lines {
                for args in commands_of(&line) {
                    out.push((format!("{}:{n}", file.display()), args));
                }
            }
        }
    }
    out
}

/// Whether the real command definitions accept these arguments (asking
/// for help or the version counts).
fn parses(args: &[String]) -> Result<(), String> {
    match Cli::try_parse_from(args) {
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(e.to_string().lines().next().unwrap_or("").to_string()),
    }
}

#[test]
fn every_documented_command_parses() {
    let commands = documented_commands();
    // The extraction itself must find the commands: the README's tour alone
    // has six.
    assert!(
        commands.len() > 100,
        "only {} coffer commands found in the documentation",
        commands.len()
    );
    let failures: Vec<String> = commands
        .iter()
        .filter_map(|(at, args)| {
            parses(args)
                .err()
                .map(|e| format!("{at}: `{}`: {e}", args.join(" ")))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "documented commands the CLI does not accept:\n{}",
        failures.join("\n")
    );
}

/// The examples in every command's `--help` (indented lines that run
/// `coffer`) are documentation too.
#[test]
fn every_help_example_parses() {
    fn walk(cmd: &clap::Command, path: &str, out: &mut Vec<(String, String)>) {
        for help in [cmd.get_after_help(), cmd.get_after_long_help()]
            .into_iter()
            .flatten()
        {
            // Continued lines (ending in `\\`) are joined first.
            let mut joined = String::new();
            for line in help.to_string().lines() {
                if !line.starts_with("  ") {
                    joined.clear();
                    continue;
                }
                match line.trim().strip_suffix('\\') {
                    Some(head) => {
                        joined.push_str(head);
                        joined.push(' ');
                    }
                    None => {
                        joined.push_str(line.trim());
                        out.push((path.to_string(), std::mem::take(&mut joined)));
                    }
                }
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }
    let mut examples = Vec::new();
    walk(&Cli::command(), "coffer", &mut examples);
    let mut count = 0;
    let mut failures = Vec::new();
    for (cmd, line) in &examples {
        for args in commands_of(line) {
            count += 1;
            if let Err(e) = parses(&args) {
                failures.push(format!("`{cmd} --help`: `{line}`: {e}"));
            }
        }
    }
    assert!(count > 50, "only {count} examples found in the help");
    assert!(
        failures.is_empty(),
        "help examples the CLI does not accept:\n{}",
        failures.join("\n")
    );
}

/// The extraction handles what documentation writes: prompts, comments,
/// continuations, pipes, `&&`, substitutions, assignments, redirections,
/// wrappers, and leaves output and other programs alone.
#[test]
fn command_extraction_reads_shell_as_a_shell_does() {
    let block = |lang: &str, text: &str| Block {
        lang: lang.to_string(),
        lines: text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.to_string()))
            .collect(),
    };
    let all = |b: &Block| -> Vec<String> {
        shell_lines(b)
            .into_iter()
            .flat_map(|(_, l)| commands_of(&l))
            .map(|a| a.join(" "))
            .collect()
    };
    let cases: &[(&str, &str, &[&str])] = &[
        ("sh", "coffer get a/b # a comment", &["coffer get a/b"]),
        ("sh", "# coffer not-a-command\n", &[]),
        (
            "sh",
            "COFFER_TOKEN=x FOO='a b' coffer ls myapp -r",
            &["coffer ls myapp -r"],
        ),
        (
            "sh",
            "coffer export --path p \\\n    --format k8s | kubectl apply -f -",
            &["coffer export --path p --format k8s"],
        ),
        (
            "sh",
            "coffer status && coffer operator seal || echo coffer",
            &["coffer status", "coffer operator seal"],
        ),
        (
            "sh",
            "export COFFER_TOKEN=\"$(coffer token create --policy ci)\"",
            &["coffer token create --policy ci"],
        ),
        (
            "sh",
            "source <(coffer completions bash)",
            &["coffer completions bash"],
        ),
        (
            "sh",
            "printf '%s' \"$V\" | coffer set a/b 2>/dev/null < in > out",
            &["coffer set a/b"],
        ),
        (
            "sh",
            "for n in a b; do COFFER_ADDR=https://$n coffer operator unseal; done",
            &["coffer operator unseal"],
        ),
        (
            "sh",
            "docker exec -i -e COFFER_ADDR=x coffer coffer operator unseal < key",
            &["coffer operator unseal"],
        ),
        (
            "sh",
            "cargo run -p coffer-cli -- server --dev",
            &["coffer server --dev"],
        ),
        ("sh", "target/debug/coffer get 'a b'", &["coffer get a b"]),
        (
            "console",
            "$ coffer rotate a/b\ncoffer rotate: output, not a command",
            &["coffer rotate a/b"],
        ),
        (
            "sh",
            "cat <<'EOF'\ncoffer inside a here-document\nEOF\ncoffer ls",
            &["coffer ls"],
        ),
        ("sh", "systemctl enable --now coffer", &[]),
    ];
    for (lang, text, want) in cases {
        assert_eq!(all(&block(lang, text)), *want, "{text}");
    }
}

/// A command the CLI refuses is reported: the check can fail.
#[test]
fn a_command_the_cli_refuses_is_reported() {
    for bad in [
        "coffer no-such-command",
        "coffer get",
        "coffer set a/b --no-such-flag",
    ] {
        let args = commands_of(bad).pop().unwrap();
        assert!(parses(&args).is_err(), "{bad}");
    }
    assert!(parses(&commands_of("coffer set --help").pop().unwrap()).is_ok());
}

// ---------------------------------------------------------------------------
// Top-level commands: `coffer --help` against the CLI reference

/// The top-level commands `coffer --help` lists (but `help`).
fn help_commands() -> BTreeSet<String> {
    let help = Cli::command().render_help().to_string();
    let start = help
        .find("Commands:\n")
        .expect("`coffer --help` has a Commands section");
    help[start + "Commands:\n".len()..]
        .lines()
        .take_while(|l| !l.trim().is_empty())
        // A command starts a line at two spaces; a wrapped description is
        // indented further.
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

/// The top-level commands the CLI reference chapter's table documents:
/// the first word after each `` `coffer `` in the first cell of a row
/// (`` `coffer login` / `coffer logout` `` documents two).
fn book_commands() -> BTreeSet<String> {
    let chapter = read(Path::new("docs/src/cli.md"));
    let mut out = BTreeSet::new();
    for row in chapter.lines().filter_map(|l| l.strip_prefix("| `coffer ")) {
        // The first cell ends at the first ` | ` (a `|` inside a cell is
        // written `\|`).
        let cell = row.split(" | ").next().unwrap_or("");
        let cell = format!("`coffer {cell}");
        for part in cell.split("`coffer ").skip(1) {
            if let Some(word) = part.split([' ', '`']).next().filter(|w| !w.is_empty()) {
                out.insert(word.to_string());
            }
        }
    }
    out
}

#[test]
fn help_and_the_book_list_the_same_commands() {
    let help = help_commands();
    let book = book_commands();
    assert!(
        help.len() > 20,
        "too few commands read from --help: {help:?}"
    );
    let undocumented: Vec<_> = help.difference(&book).collect();
    let unknown: Vec<_> = book.difference(&help).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "docs/src/cli.md's table and `coffer --help` disagree:\n\
         in --help, not in the book: {undocumented:?}\n\
         in the book, not in --help: {unknown:?}"
    );
}

// ---------------------------------------------------------------------------
// Links

/// Addresses outside the repository a document may link to: none. (The
/// project publishes no address of its own yet; the book names files
/// outside it, such as ARCHITECTURE.md, in code spans instead, since mdBook
/// turns a relative `.md` link into one to an `.html` page it never
/// writes.)
const ALLOWED_EXTERNAL: &[&str] = &[];

/// Addresses of the repository's own files that a document may link to
/// (checked as those files): none while the project publishes no address.
const PROJECT_FILES: &[&str] = &[];

/// A heading's anchor, as GitHub and mdBook both make it: lower case,
/// letters, digits, `_` and `-` kept, spaces become `-`, the rest dropped.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .chars()
        .filter_map(|c| {
            if c.is_alphanumeric() || c == '_' || c == '-' {
                Some(c.to_lowercase().next().unwrap_or(c))
            } else if c.is_whitespace() {
                Some('-')
            } else {
                None
            }
        })
        .collect()
}

/// The anchors a Markdown file defines: its headings' (a repeated one gets
/// `-1`, `-2`, ...) and any `<a id="...">` or `name="..."`.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = BTreeSet::new();
    for line in prose(text) {
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if (1..=6).contains(&hashes) && line[hashes..].starts_with(' ') {
            let text: String = line[hashes..].replace('`', "");
            // A link in a heading contributes its text only.
            let text = strip_link_targets(&text);
            let base = slug(&text);
            let n = seen.entry(base.clone()).or_insert(0);
            out.insert(if *n == 0 {
                base.clone()
            } else {
                format!("{base}-{n}")
            });
            *n += 1;
        }
        for attr in ["id=\"", "name=\""] {
            let mut rest = line.as_str();
            while let Some(pos) = rest.find(attr) {
                rest = &rest[pos + attr.len()..];
                if let Some(end) = rest.find('"') {
                    out.insert(rest[..end].to_string());
                }
            }
        }
    }
    out
}

fn strip_link_targets(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(pos) = rest.find("](") {
        out.push_str(&rest[..pos]);
        rest = &rest[pos + 2..];
        rest = rest.find(')').map_or("", |end| &rest[end + 1..]);
    }
    out.push_str(rest);
    out.replace(['[', ']'], "")
}

/// Removes inline code spans, whose text is not Markdown.
fn without_code_spans(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find('`') {
        out.push_str(&rest[..start]);
        let ticks = rest[start..].chars().take_while(|c| *c == '`').count();
        let after = &rest[start + ticks..];
        let fence = "`".repeat(ticks);
        match after.find(&fence) {
            Some(end) => rest = &after[end + ticks..],
            None => {
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The link targets of a Markdown file, each with its line number: inline
/// links and images (`](target)`), reference definitions (`[x]: target`)
/// and autolinks (`<https://...>`).
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, line) in prose(text).iter().enumerate() {
        let line = without_code_spans(line);
        let mut rest = line.as_str();
        while let Some(pos) = rest.find("](") {
            rest = &rest[pos + 2..];
            let end = rest.find(')').unwrap_or(rest.len());
            let target = rest[..end].split_whitespace().next().unwrap_or("");
            out.push((i + 1, target.trim_matches(['<', '>']).to_string()));
            rest = &rest[end..];
        }
        let trimmed = line.trim_start();
        if trimmed.starts_with('[')
            && let Some(pos) = trimmed.find("]: ")
            && !trimmed[1..pos].contains(']')
        {
            let target = trimmed[pos + 3..].split_whitespace().next().unwrap_or("");
            out.push((i + 1, target.to_string()));
        }
        let mut rest = line.as_str();
        while let Some(pos) = rest.find("<http") {
            rest = &rest[pos + 1..];
            let end = rest.find('>').unwrap_or(rest.len());
            out.push((i + 1, rest[..end].to_string()));
        }
    }
    out
}

/// Resolves `target` against the directory of `from` (both relative to
/// the repository's root), without leaving the repository.
fn resolve(from: &Path, target: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in from
        .parent()
        .unwrap_or(Path::new(""))
        .join(target)
        .components()
    {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(p) => out.push(p),
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// What is wrong with one link, if anything.
fn check_link(
    from: &Path,
    target: &str,
    anchors_of: &mut dyn FnMut(&Path) -> BTreeSet<String>,
) -> Option<String> {
    if target.is_empty() {
        return Some("an empty link".to_string());
    }
    if let Some(rest) = PROJECT_FILES.iter().find_map(|p| target.strip_prefix(p)) {
        return check_link(Path::new("README.md"), rest, anchors_of)
            .map(|problem| format!("{target}: {problem}"));
    }
    if target.contains("://") || target.starts_with("mailto:") {
        let allowed = ALLOWED_EXTERNAL
            .iter()
            .any(|a| target == *a || target.starts_with(&format!("{a}/")));
        return (!allowed).then(|| format!("{target}: a link out of the repository"));
    }
    let (path, anchor) = match target.split_once('#') {
        Some((p, a)) => (p, Some(a)),
        None => (target, None),
    };
    let file = if path.is_empty() {
        from.to_path_buf()
    } else {
        match resolve(from, path) {
            Some(f) => f,
            None => return Some(format!("{target}: outside the repository")),
        }
    };
    let full = root().join(&file);
    if !full.exists() {
        return Some(format!("{target}: no such file ({})", file.display()));
    }
    // The repository's files only: no symbolic link out of it.
    let real = full.canonicalize().ok()?;
    if !real.starts_with(root().canonicalize().unwrap()) {
        return Some(format!("{target}: resolves outside the repository"));
    }
    if let Some(anchor) = anchor {
        if file.extension().is_none_or(|x| x != "md") {
            return Some(format!(
                "{target}: an anchor in a file that is not Markdown"
            ));
        }
        if !anchors_of(&file).contains(anchor) {
            return Some(format!(
                "{target}: no heading makes #{anchor} in {}",
                file.display()
            ));
        }
    }
    None
}

#[test]
fn every_link_resolves() {
    let mut cache: HashMap<PathBuf, BTreeSet<String>> = HashMap::new();
    let mut anchors_of = |file: &Path| {
        cache
            .entry(file.to_path_buf())
            .or_insert_with(|| anchors(&read(file)))
            .clone()
    };
    let mut count = 0;
    let mut failures = Vec::new();
    for file in documents() {
        for (line, target) in links(&read(&file)) {
            count += 1;
            if let Some(problem) = check_link(&file, &target, &mut anchors_of) {
                failures.push(format!("{}:{line}: {problem}", file.display()));
            }
        }
    }
    assert!(count > 100, "only {count} links found");
    assert!(
        failures.is_empty(),
        "broken links:\n{}",
        failures.join("\n")
    );
}

/// The checker refuses what it should: it can fail.
#[test]
fn the_link_check_finds_broken_links() {
    let mut anchors_of = |file: &Path| anchors(&read(file));
    let from = Path::new("docs/src/cli.md");
    for bad in [
        "missing.md",
        "configuration.md#no-such-heading",
        "../../../outside.md",
        "/etc/passwd",
        "https://example.com/",
        "http://github.com/example/coffer",
        "#not-a-heading-here",
        "../../Cargo.toml#anchor",
        "https://github.com/example/coffer/blob/main/NO-SUCH-FILE.md",
        "https://github.com/example/coffer/blob/main/README.md#no-such-heading",
        "https://github.com/example/coffer/blob/main/../../etc/passwd",
    ] {
        assert!(check_link(from, bad, &mut anchors_of).is_some(), "{bad}");
    }
    for good in [
        "configuration.md",
        "lifecycle.md#rotation",
        "../../README.md#development",
        "../../deploy/README.md",
    ] {
        assert_eq!(check_link(from, good, &mut anchors_of), None, "{good}");
    }
    let text = "# A `code` heading\n## Twice\n## Twice\n```sh\n# not a heading\n```\n";
    assert_eq!(
        anchors(text),
        ["a-code-heading", "twice", "twice-1"]
            .map(String::from)
            .into(),
    );
    assert_eq!(
        links("[a](x.md) `[b](y.md)` <https://z>\n```\n[c](w.md)\n```\n[r]: v.md\n"),
        vec![
            (1, "x.md".to_string()),
            (1, "https://z".to_string()),
            (5, "v.md".to_string())
        ]
    );
}

// ---------------------------------------------------------------------------
// mdBook

#[test]
fn the_book_builds_with_mdbook() {
    let out_dir = std::env::temp_dir().join(format!("coffer-book-{}", std::process::id()));
    let output = Process::new("mdbook")
        .arg("build")
        .arg(root().join("docs"))
        .arg("--dest-dir")
        .arg(&out_dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run mdbook (.ci/deps/docs.sh installs it with cargo install): {e}")
        });
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let built = out_dir.join("cli.html").is_file() && out_dir.join("index.html").is_file();
    let _ = std::fs::remove_dir_all(&out_dir);
    assert!(
        output.status.success() && built,
        "mdbook build failed:\n{log}"
    );
    // mdBook only warns about some mistakes (a chapter it cannot find, a
    // broken include): they fail here.
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .collect();
    assert!(
        warnings.is_empty(),
        "mdbook warned:\n{}",
        warnings.join("\n")
    );
}

// ---------------------------------------------------------------------------
// Invisible characters

/// Characters that change how text is shown without being seen (bidi
/// overrides and isolates, zero-width characters, a byte-order mark): in
/// a documented command, one would make what a reader copies differ from
/// what they see.
fn invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
        || (c.is_control() && c != '\n' && c != '\t')
}

#[test]
fn no_document_holds_an_invisible_character() {
    let mut found = Vec::new();
    for file in documents() {
        for (i, line) in read(&file).lines().enumerate() {
            if let Some(c) = line.chars().find(|c| invisible(*c)) {
                found.push(format!("{}:{}: U+{:04X}", file.display(), i + 1, c as u32));
            }
        }
    }
    assert!(
        found.is_empty(),
        "invisible characters:\n{}",
        found.join("\n")
    );
    for c in [
        '\u{202E}', '\u{200B}', '\u{2066}', '\u{FEFF}', '\u{7}', '\r',
    ] {
        assert!(invisible(c), "U+{:04X}", c as u32);
    }
    for c in ['a', ' ', '…', '─', 'é'] {
        assert!(!invisible(c), "{c}");
    }
}

/// A chapter that `SUMMARY.md` does not list is left out of the built
/// book without a word from mdBook; a listed one that is missing fails
/// the build (`create-missing = false`).
#[test]
fn every_chapter_is_in_the_summary() {
    let summary = read(Path::new("docs/src/SUMMARY.md"));
    let listed: BTreeSet<PathBuf> = links(&summary)
        .into_iter()
        .map(|(_, target)| Path::new("docs/src").join(target.split('#').next().unwrap_or("")))
        .collect();
    let missing: Vec<String> = documents()
        .into_iter()
        .filter(|f| f.starts_with("docs/src") && f != Path::new("docs/src/SUMMARY.md"))
        .filter(|f| !listed.contains(f))
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "chapters docs/src/SUMMARY.md does not list: {missing:?}"
    );
}
