//! `coffer example` and `coffer check`: the `.env.example` a project
//! commits, and the check that what an application will get matches it.
//!
//! `example` needs only `list`: it reads names, never values, so making the
//! template reads no secret. `check` reads the values it checks (one audited
//! bundle request, or the current environment with `--env`) and reports
//! names and problems only, never a value.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use coffer_client::ListOptions;
use zeroize::Zeroizing;

use crate::exit::{Status, fail};
use crate::run_cmd::{by_name, env_value, parse_dotenv, read_env_file};
use crate::settings;

#[derive(Debug, Args)]
pub struct ExampleArgs {
    /// The names directly under this prefix (repeatable).
    #[arg(long = "path", value_name = "PREFIX", required = true)]
    pub paths: Vec<String>,
    /// An existing .env.example whose comments (descriptions) and
    /// placeholders are kept for the names still there.
    #[arg(long, value_name = "FILE")]
    pub template: Option<PathBuf>,
    /// Write the file here instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Check the secrets directly under this prefix (repeatable; a later
    /// prefix wins a name clash).
    #[arg(
        long = "path",
        value_name = "PREFIX",
        required_unless_present_any = ["env", "env_files"],
        conflicts_with_all = ["env", "env_files"]
    )]
    pub paths: Vec<String>,
    /// Check the current environment instead of the store.
    #[arg(long, conflicts_with = "env_files")]
    pub env: bool,
    /// Check the values in this .env file instead of the store (repeatable;
    /// a later file wins a name clash). Values are taken as written, not
    /// expanded.
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_files: Vec<PathBuf>,
    /// Also flag every value equal to a version marked compromised among
    /// the secrets under this prefix (repeatable; "" for every secret the
    /// token may list). Uses the server's keyed fingerprints: needs `list`
    /// only, and no value leaves this machine.
    #[arg(long, value_name = "PREFIX")]
    pub known: Vec<String>,
    /// The names that must be set (default: .env.example).
    #[arg(long, value_name = "FILE", default_value = ".env.example")]
    pub template: PathBuf,
    /// Print JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

/// One entry of a template: its name, the comment lines just above it
/// (its description) and its placeholder value.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TemplateEntry {
    name: String,
    description: Vec<String>,
    placeholder: Option<String>,
}

/// Reads a template: every name in it, in order, with descriptions and
/// placeholders. A line that does not parse is an error naming it.
fn read_template(path: &Path) -> anyhow::Result<Vec<TemplateEntry>> {
    let text = read_env_file(path)?;
    let parsed = parse_dotenv(path, &text, "")?;
    let bad: Vec<String> = parsed
        .bindings
        .iter()
        .filter(|b| !coffer_dotenv::is_portable_key(&b.key))
        .map(|b| b.line.to_string())
        .collect();
    if !bad.is_empty() {
        return Err(fail(
            Status::Invalid,
            format!(
                "{}: line(s) {}: the key is not a variable name (letters, digits and _, not starting with a digit)",
                path.display(),
                bad.join(", ")
            ),
        ));
    }
    let lines: Vec<&str> = text.lines().collect();
    let mut out: Vec<TemplateEntry> = Vec::new();
    for b in &parsed.bindings {
        // The run of comment lines directly above the binding's first line.
        let mut description = Vec::new();
        let mut i = b.line.saturating_sub(1);
        while i > 0 {
            let line = lines.get(i - 1).map_or("", |l| l.trim());
            if !line.starts_with('#') {
                break;
            }
            description.push(line.to_string());
            i -= 1;
        }
        description.reverse();
        let entry = TemplateEntry {
            name: b.key.clone(),
            description,
            placeholder: b.value.clone().filter(|v| !v.is_empty()),
        };
        match out.iter_mut().find(|e| e.name == b.key) {
            Some(slot) => *slot = entry,
            None => out.push(entry),
        }
    }
    Ok(out)
}

pub async fn example(g: &crate::cli::Global, a: ExampleArgs) -> anyhow::Result<Status> {
    let template = match &a.template {
        Some(t) => read_template(t)?,
        None => Vec::new(),
    };
    let client = settings::client(g)?;
    let mut names = BTreeSet::new();
    for prefix in &a.paths {
        for e in client.list_all(prefix, &ListOptions::default()).await? {
            if !e.folder {
                names.insert(e.name);
            }
        }
    }
    let unusable: Vec<&str> = names
        .iter()
        .filter(|n| !coffer_dotenv::is_portable_key(n))
        .map(String::as_str)
        .collect();
    if !unusable.is_empty() {
        eprintln!(
            "coffer: note: left out (not usable as variable names): {}",
            unusable.join(", ")
        );
    }
    let gone: Vec<&str> = template
        .iter()
        .filter(|t| !names.contains(&t.name))
        .map(|t| t.name.as_str())
        .collect();
    if !gone.is_empty() {
        eprintln!(
            "coffer: note: dropped from the template (no longer stored): {}",
            gone.join(", ")
        );
    }
    let mut text = String::new();
    text.push_str(&format!(
        "# Variables this application needs, from {} (names only, no values).\n",
        a.paths.join(", ")
    ));
    text.push_str(&format!(
        "# Run with: coffer run{} -- COMMAND\n# Check with: coffer check{}\n",
        a.paths
            .iter()
            .map(|p| format!(" --path {p}"))
            .collect::<String>(),
        a.paths
            .iter()
            .map(|p| format!(" --path {p}"))
            .collect::<String>(),
    ));
    for name in names.iter().filter(|n| coffer_dotenv::is_portable_key(n)) {
        text.push('\n');
        let kept = template.iter().find(|t| &t.name == name);
        for line in kept.map(|t| t.description.as_slice()).unwrap_or_default() {
            text.push_str(line);
            text.push('\n');
        }
        let placeholder = kept
            .and_then(|t| t.placeholder.as_deref())
            .map(coffer_dotenv::quote)
            .unwrap_or_default();
        text.push_str(&format!("{name}={placeholder}\n"));
    }
    match &a.out {
        Some(path) => {
            // Names only, meant to be committed: 0644, replaced atomically,
            // never written through a symbolic link.
            settings::write_file(path, text.as_bytes(), true, 0o644)
                .map_err(|e| fail(Status::Other, format!("{e:#}")))?;
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
        }
    }
    Ok(Status::Ok)
}

/// What is wrong with one name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Problem {
    Missing,
    Empty,
    Placeholder,
    Weak,
    Guessable,
    Compromised,
}

impl Problem {
    fn label(self) -> &'static str {
        match self {
            Problem::Missing => "missing",
            Problem::Empty => "empty",
            Problem::Placeholder => "placeholder",
            Problem::Weak | Problem::Guessable => "weak",
            Problem::Compromised => "compromised",
        }
    }

    fn explain(self) -> &'static str {
        match self {
            Problem::Missing => "not set",
            Problem::Empty => "set to the empty string",
            Problem::Placeholder => "still the template's example value",
            Problem::Weak => "a well-known placeholder or default, not a real value",
            Problem::Guessable => {
                "easy to guess, under 64 bits by a strength estimate; generate one with \
                 `coffer set PATH --generate`"
            }
            Problem::Compromised => {
                "the value of a secret version marked compromised (it leaked): take the \
                 rotated value"
            }
        }
    }
}

/// Values that are never real secrets: defaults and placeholders people
/// leave behind. Compared case-insensitively.
fn known_placeholder(value: &str) -> bool {
    const KNOWN: &[&str] = &[
        "changeme",
        "change-me",
        "change_me",
        "changeit",
        "password",
        "passw0rd",
        "secret",
        "todo",
        "tbd",
        "fixme",
        "xxx",
        "xxxx",
        "xxxxxx",
        "placeholder",
        "example",
        "test",
        "dummy",
        "null",
        "none",
        "undefined",
        "123456",
        "12345678",
        "admin",
        "your-api-key",
        "your_api_key",
        "<secret>",
        "<value>",
        "...",
    ];
    let v = value.trim().to_ascii_lowercase();
    KNOWN.contains(&v.as_str())
}

/// Whether a variable's name says it holds a password, key or token (its
/// value then gets a strength estimate; other values, such as ports and
/// hosts, are not guessing targets).
fn names_a_secret(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    [
        "PASSWORD",
        "PASSWD",
        "SECRET",
        "TOKEN",
        "CREDENTIAL",
        "PRIVATE",
    ]
    .iter()
    .any(|w| n.contains(w))
        || n == "KEY"
        || n.ends_with("_KEY")
        || n.ends_with("_PASS")
        || n.ends_with("_PWD")
}

fn problem_of(name: &str, value: Option<&str>, placeholder: Option<&str>) -> Option<Problem> {
    use coffer_core::strength;
    match value {
        None => Some(Problem::Missing),
        Some("") => Some(Problem::Empty),
        Some(v) if placeholder.is_some_and(|p| p == v) => Some(Problem::Placeholder),
        Some(v) if known_placeholder(v) => Some(Problem::Weak),
        Some(v)
            if names_a_secret(name)
                && !strength::clearly_not_weak(v)
                && strength::estimate(v).bits < strength::WEAK_BITS =>
        {
            Some(Problem::Guessable)
        }
        Some(_) => None,
    }
}

pub async fn check(g: &crate::cli::Global, a: CheckArgs) -> anyhow::Result<Status> {
    crate::env_names::refuse_credential_paths(
        "--path prefix(es)",
        a.paths.iter().map(String::as_str),
    )?;
    let template = read_template(&a.template)?;
    if template.is_empty() {
        return Err(fail(
            Status::Invalid,
            format!("{} names no variables", a.template.display()),
        ));
    }
    // The values, by name; dropped (wiped) when the check is done.
    let mut values: BTreeMap<String, Zeroizing<String>> = BTreeMap::new();
    let source = if a.env {
        for t in &template {
            if let Some(v) = std::env::var_os(&t.name) {
                values.insert(
                    t.name.clone(),
                    Zeroizing::new(v.to_string_lossy().into_owned()),
                );
            }
        }
        "the environment".to_string()
    } else if !a.env_files.is_empty() {
        for file in &a.env_files {
            let text = read_env_file(file)?;
            let parsed = parse_dotenv(file, &text, "")?;
            for b in parsed.bindings {
                if let Some(v) = b.value {
                    values.insert(b.key, Zeroizing::new(v));
                }
            }
        }
        a.env_files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        let fetched = settings::client(g)?.bundle(&a.paths, &[]).await?;
        for (name, read) in by_name(&a.paths, &fetched) {
            values.insert(name.to_string(), env_value(&read.value)?);
        }
        a.paths.join(", ")
    };
    // Values equal to a compromised version, by name, with where it is
    // stored; matched by keyed fingerprint, so no value is sent anywhere.
    let mut compromised: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if !a.known.is_empty() {
        let client = settings::client(g)?;
        let mut known = coffer_client::KnownValues::new();
        for prefix in &a.known {
            known.add(client.fingerprints(prefix).await?)?;
        }
        for (name, value) in &values {
            let mut found: Vec<String> = coffer_client::candidates(value)
                .iter()
                .chain(std::iter::once(&value.trim().to_string()))
                .flat_map(|c| known.matches(c))
                .filter(|p| p.compromised)
                .map(|p| format!("version {} of {}", p.version, p.path))
                .collect();
            found.sort();
            found.dedup();
            if !found.is_empty() {
                compromised.insert(name.clone(), found);
            }
        }
    }
    let mut problems: Vec<(&str, Problem)> = template
        .iter()
        .filter_map(|t| {
            let value = values.get(&t.name).map(|v| v.as_str());
            // Coffer's own credentials in the environment: whether they are
            // set, nothing more. The template is the project's, and a
            // placeholder equal to the value, or a strength verdict, would
            // tell its author something about the token.
            if a.env && crate::env_names::is_coffer_credential(&t.name) {
                return match value {
                    None => Some(Problem::Missing),
                    Some("") => Some(Problem::Empty),
                    Some(_) => None,
                }
                .map(|p| (t.name.as_str(), p));
            }
            if compromised.contains_key(&t.name) {
                return Some((t.name.as_str(), Problem::Compromised));
            }
            problem_of(&t.name, value, t.placeholder.as_deref()).map(|p| (t.name.as_str(), p))
        })
        .collect();
    // A compromised value is a problem wherever it is, in the template or not.
    for name in compromised.keys() {
        if !template.iter().any(|t| &t.name == name) {
            problems.push((name.as_str(), Problem::Compromised));
        }
    }
    let extra: Vec<&str> = if a.env {
        Vec::new()
    } else {
        values
            .keys()
            .filter(|k| !template.iter().any(|t| &t.name == *k))
            .map(String::as_str)
            .collect()
    };
    let mut out = std::io::stdout().lock();
    if a.json {
        let doc = serde_json::json!({
            "ok": problems.is_empty(),
            "checked": template.len(),
            "source": source,
            "problems": problems
                .iter()
                .map(|(n, p)| {
                    let mut entry = serde_json::json!({ "name": n, "problem": p.label(), "detail": p.explain() });
                    if let Some(places) = compromised.get(*n) {
                        entry["compromised"] = serde_json::json!(places);
                    }
                    entry
                })
                .collect::<Vec<_>>(),
            "not_in_template": extra,
        });
        writeln!(out, "{doc}")?;
    } else {
        for (name, p) in &problems {
            writeln!(out, "{:<12}{name} ({})", p.label(), p.explain())?;
            for place in compromised.get(*name).into_iter().flatten() {
                writeln!(out, "{:<12}  {}", "", crate::output::visible(place))?;
            }
        }
        if !extra.is_empty() {
            writeln!(
                out,
                "note: stored but not in {}: {}",
                a.template.display(),
                extra.join(", ")
            )?;
        }
        if problems.is_empty() {
            writeln!(
                out,
                "ok: all {} names in {} are set in {source}",
                template.len(),
                a.template.display()
            )?;
        } else {
            writeln!(
                out,
                "{} problem(s) among {} names in {}, checked against {source}",
                problems.len(),
                template.len(),
                a.template.display()
            )?;
        }
    }
    out.flush()?;
    Ok(if problems.is_empty() {
        Status::Ok
    } else {
        Status::Invalid
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems() {
        assert_eq!(problem_of("X", None, None), Some(Problem::Missing));
        assert_eq!(problem_of("X", Some(""), None), Some(Problem::Empty));
        assert_eq!(
            problem_of(
                "DATABASE_URL",
                Some("postgres://localhost/app"),
                Some("postgres://localhost/app")
            ),
            Some(Problem::Placeholder)
        );
        assert_eq!(problem_of("X", Some("ChangeMe"), None), Some(Problem::Weak));
        assert_eq!(problem_of("X", Some("k7Qm2-real"), Some("changeme")), None);
    }

    #[test]
    fn typed_passwords_and_keys_are_judged() {
        for (name, value) in [
            ("DB_PASSWORD", "password123"),
            ("STRIPE_SECRET", "summer2024"),
            ("API_KEY", "qwertyuiop"),
            ("SMTP_PASS", "letmein2024"),
            ("GITHUB_TOKEN", "aaaaaaaaaaaaaaaaaaaaaaaa"),
        ] {
            assert_eq!(
                problem_of(name, Some(value), None),
                Some(Problem::Guessable),
                "{name}={value}"
            );
        }
        for (name, value) in [
            // Generated values pass.
            ("DB_PASSWORD", "rQ8vK2mX9pL4nW7tY3sB6hJ1"),
            (
                "SESSION_KEY",
                "correct-horse-battery-staple-orbit-lantern-cobalt",
            ),
            // Names that hold no secret are not judged.
            ("PORT", "8080"),
            ("LOG_LEVEL", "debug"),
            ("DATABASE_HOST", "localhost"),
        ] {
            assert_eq!(problem_of(name, Some(value), None), None, "{name}={value}");
        }
    }

    #[test]
    fn templates_keep_descriptions_and_placeholders() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env.example");
        std::fs::write(
            &path,
            "# header\n\n# The database.\n# Read-write.\nDATABASE_URL=postgres://localhost/app\nAPI_KEY=\nexport PORT=8080 # inline\n",
        )
        .unwrap();
        let t = read_template(&path).unwrap();
        assert_eq!(
            t[0],
            TemplateEntry {
                name: "DATABASE_URL".into(),
                description: vec!["# The database.".into(), "# Read-write.".into()],
                placeholder: Some("postgres://localhost/app".into()),
            }
        );
        assert_eq!(t[1].name, "API_KEY");
        assert!(t[1].description.is_empty());
        assert_eq!(t[1].placeholder, None);
        assert_eq!(t[2].placeholder.as_deref(), Some("8080"));
    }
}
