//! `coffer import` and `coffer export`: secrets in and out of the formats
//! other tools read.
//!
//! Import compares the file with what is stored (names only are reported,
//! never values) and writes every change in one all-or-nothing request, each
//! write checked against the version it was compared with. Export fetches the
//! prefixes in one request (audited with every path and version) and writes
//! dotenv, JSON, YAML, shell, a Kubernetes Secret, Docker secret files or
//! GitHub Actions environment lines.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use clap::{Args, ValueEnum};
use coffer_api::ReadResponse;
use coffer_client::{ListOptions, WireValue};
use zeroize::Zeroizing;

use crate::exit::{Status, fail};
use crate::run_cmd::{by_name, check_only, env_value, parse_dotenv, parse_reference, read_file};
use crate::settings;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InputFormat {
    /// KEY=value lines (python-dotenv's dialect).
    Dotenv,
    /// One object: names to strings (or to objects of string fields).
    Json,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file to import (`-` for stdin).
    pub file: PathBuf,
    /// Store each entry as PREFIX/NAME.
    #[arg(long = "path", value_name = "PREFIX")]
    pub prefix: String,
    /// The file's format (default: json for *.json, dotenv otherwise).
    #[arg(long, value_enum)]
    pub format: Option<InputFormat>,
    /// Say what would change, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Replace stored values that differ (otherwise the import is refused,
    /// naming them, and nothing is written).
    #[arg(long)]
    pub overwrite: bool,
    /// Import empty values too (by default they are skipped).
    #[arg(long)]
    pub allow_empty: bool,
    /// Print JSON for scripts.
    #[arg(long)]
    pub json: bool,
}

/// What an import does with one name.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    Create,
    Update { from: u64 },
    Unchanged,
    Differs,
    Skip(&'static str),
}

/// The entries of the file, in order (a later duplicate replaces an earlier
/// one in place), each with its value or the reason it is skipped.
fn read_entries(a: &ImportArgs) -> anyhow::Result<Vec<(String, Result<WireValue, &'static str>)>> {
    let text = if a.file.as_os_str() == "-" {
        let mut s = Zeroizing::new(String::new());
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
        s
    } else {
        read_file(&a.file)?
    };
    let format = a.format.unwrap_or(
        if a.file
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        {
            InputFormat::Json
        } else {
            InputFormat::Dotenv
        },
    );
    let mut out: Vec<(String, Result<WireValue, &'static str>)> = Vec::new();
    let mut push = |name: String, value| match out.iter_mut().find(|(n, _)| *n == name) {
        Some(slot) => slot.1 = value,
        None => out.push((name, value)),
    };
    let is_reference = |v: &str| parse_reference(v).is_some();
    match format {
        InputFormat::Dotenv => {
            let parsed = parse_dotenv(&a.file, &text, "; nothing imported")?;
            // `${VAR}` refers to the file's own earlier entries only: the
            // importing user's environment is not part of the file.
            let resolved = parsed
                .resolve_within(&|_| None, coffer_dotenv::EXPANSION_ALLOWANCE)
                .map_err(|e| {
                    fail(
                        Status::Invalid,
                        format!("{}: {e}; nothing imported", a.file.display()),
                    )
                })?;
            for (name, value) in resolved {
                let value = match value {
                    None => Err("no value"),
                    Some(v) if is_reference(&v) => Err("a coffer:// reference, not a value"),
                    Some(v) => Ok(WireValue::Text(v)),
                };
                push(name, value);
            }
        }
        InputFormat::Json => {
            let object: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&text).map_err(|e| {
                    // The position only: serde's message can quote input.
                    fail(
                        Status::Invalid,
                        format!(
                            "{}: not a JSON object of strings (line {}, column {}); nothing imported",
                            a.file.display(),
                            e.line(),
                            e.column()
                        ),
                    )
                })?;
            let mut bad = Vec::new();
            for (name, value) in object {
                let value = match value {
                    serde_json::Value::String(v) if is_reference(&v) => {
                        Err("a coffer:// reference, not a value")
                    }
                    serde_json::Value::String(v) => Ok(WireValue::Text(v)),
                    serde_json::Value::Object(fields)
                        if fields.values().all(serde_json::Value::is_string) =>
                    {
                        Ok(WireValue::Fields(
                            fields
                                .into_iter()
                                .map(|(k, v)| match v {
                                    serde_json::Value::String(v) => (k, v),
                                    _ => unreachable!("checked above"),
                                })
                                .collect(),
                        ))
                    }
                    _ => {
                        bad.push(format!("{:?}", crate::env_names::mask_tokens(&name)));
                        continue;
                    }
                };
                push(name, value);
            }
            if !bad.is_empty() {
                return Err(fail(
                    Status::Invalid,
                    format!(
                        "{}: values must be strings or objects of strings: {}; nothing imported",
                        a.file.display(),
                        bad.join(", ")
                    ),
                ));
            }
        }
    }
    if !a.allow_empty {
        for (_, v) in &mut out {
            if matches!(v, Ok(WireValue::Text(t)) if t.is_empty()) {
                *v = Err("empty (--allow-empty imports it)");
            }
        }
    }
    Ok(out)
}

fn same(a: &WireValue, b: &WireValue) -> bool {
    match (a, b) {
        (WireValue::Text(a), WireValue::Text(b)) => a == b,
        (WireValue::Fields(a), WireValue::Fields(b)) => a == b,
        _ => false,
    }
}

fn join(prefix: &str, name: &str) -> String {
    match prefix.trim_matches('/') {
        "" => name.to_string(),
        p => format!("{p}/{name}"),
    }
}

pub async fn import(g: &crate::cli::Global, a: ImportArgs) -> anyhow::Result<Status> {
    let entries = read_entries(&a)?;
    crate::env_names::refuse_credential_paths(
        "--path prefix or name(s)",
        std::iter::once(a.prefix.as_str()).chain(entries.iter().map(|(n, _)| n.as_str())),
    )?;
    // Every name must make a valid path before anything is asked or written.
    let bad: Vec<String> = entries
        .iter()
        .filter(|(n, _)| {
            // One segment each: a name is what `coffer run` will inject.
            n.contains('/') || coffer_core::SecretPath::parse(&join(&a.prefix, n)).is_err()
        })
        // Quoted and escaped: a name from the file may hold terminal
        // escape sequences or bidirectional overrides.
        .map(|(n, _)| format!("{:?}", n))
        .collect();
    if !bad.is_empty() {
        return Err(fail(
            Status::Invalid,
            format!(
                "not usable as secret names: {}; nothing imported",
                bad.join(", ")
            ),
        ));
    }
    let client = settings::client(g)?;
    // What is stored: live values (to compare), and every name including
    // deleted ones (whose version the check-and-set needs).
    let stored = client
        .bundle(std::slice::from_ref(&a.prefix), &[])
        .await
        .map_err(|e| {
            if e.kind == coffer_client::ErrorKind::Forbidden {
                fail(
                    Status::Denied,
                    format!(
                        "{} (import compares with the stored values: it needs list and read on the prefix)",
                        e.message
                    ),
                )
            } else {
                e.into()
            }
        })?;
    let live: BTreeMap<&str, &ReadResponse<WireValue>> =
        by_name(std::slice::from_ref(&a.prefix), &stored);
    let listed: Vec<String> = client
        .list_all(
            &a.prefix,
            &ListOptions {
                include_deleted: true,
                ..ListOptions::default()
            },
        )
        .await?
        .into_iter()
        .filter(|e| !e.folder)
        .map(|e| e.name)
        .collect();

    let mut plan: Vec<(&str, Action)> = Vec::new();
    for (name, value) in &entries {
        let action = match (value, live.get(name.as_str())) {
            (Err(reason), _) => Action::Skip(reason),
            (Ok(v), Some(read)) if same(v, &read.value) => Action::Unchanged,
            (Ok(_), Some(read)) if a.overwrite => Action::Update { from: read.version },
            (Ok(_), Some(_)) => Action::Differs,
            (Ok(_), None) if listed.contains(name) => {
                // Stored but deleted: a new version on top of it.
                let meta = client.metadata(&join(&a.prefix, name)).await?;
                Action::Update {
                    from: meta.current_version,
                }
            }
            (Ok(_), None) => Action::Create,
        };
        plan.push((name, action));
    }

    let differs: Vec<&str> = plan
        .iter()
        .filter(|(_, act)| *act == Action::Differs)
        .map(|(n, _)| *n)
        .collect();
    let writes: Vec<(String, &WireValue, Option<u64>)> = plan
        .iter()
        .zip(&entries)
        .filter_map(|((name, act), (_, value))| {
            let cas = match act {
                Action::Create => 0,
                Action::Update { from } => *from,
                _ => return None,
            };
            Some((join(&a.prefix, name), value.as_ref().ok()?, Some(cas)))
        })
        .collect();
    let mut written = false;
    if differs.is_empty() && !a.dry_run && !writes.is_empty() {
        let refs: Vec<(&str, &WireValue, Option<u64>)> = writes
            .iter()
            .map(|(p, v, c)| (p.as_str(), *v, *c))
            .collect();
        client.import(&refs).await?;
        written = true;
    }
    report(&a, &plan, written)?;
    if !differs.is_empty() {
        return Err(fail(
            Status::Conflict,
            format!(
                "stored values differ for {}: nothing imported (--overwrite replaces them)",
                differs.join(", ")
            ),
        ));
    }
    Ok(Status::Ok)
}

fn report(a: &ImportArgs, plan: &[(&str, Action)], written: bool) -> anyhow::Result<()> {
    let label = |act: &Action| match act {
        Action::Create => "created",
        Action::Update { .. } => "updated",
        Action::Unchanged => "unchanged",
        Action::Differs => "differs",
        Action::Skip(_) => "skipped",
    };
    let mut out = std::io::stdout().lock();
    if a.json {
        let mut groups: BTreeMap<&str, Vec<serde_json::Value>> = BTreeMap::new();
        for key in ["created", "updated", "unchanged", "differs", "skipped"] {
            groups.insert(key, Vec::new());
        }
        for (name, act) in plan {
            let entry = match act {
                Action::Skip(reason) => serde_json::json!({ "name": name, "reason": reason }),
                _ => serde_json::json!(name),
            };
            groups.entry(label(act)).or_default().push(entry);
        }
        let mut doc = serde_json::json!(groups);
        doc["dry_run"] = serde_json::json!(a.dry_run);
        doc["written"] = serde_json::json!(written);
        writeln!(out, "{doc}")?;
        return Ok(());
    }
    if a.dry_run {
        writeln!(out, "dry run: nothing written")?;
    }
    for (name, act) in plan {
        match act {
            Action::Skip(reason) => writeln!(out, "{:<10}{name} ({reason})", label(act))?,
            _ => writeln!(out, "{:<10}{name}", label(act))?,
        }
    }
    let count = |l: &str| plan.iter().filter(|(_, act)| label(act) == l).count();
    let mut summary: Vec<String> = ["created", "updated", "unchanged", "differs", "skipped"]
        .iter()
        .filter(|l| count(l) > 0)
        .map(|l| format!("{} {l}", count(l)))
        .collect();
    if summary.is_empty() {
        summary.push("nothing to import".into());
    }
    writeln!(out, "{}", summary.join(", "))?;
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// KEY=value lines, quoted so that dotenv readers get the value back.
    Dotenv,
    /// One JSON object (fields values as objects).
    Json,
    /// One YAML mapping (fields values as mappings).
    Yaml,
    /// `export KEY='value'` lines that survive `eval`.
    Shell,
    /// A Kubernetes Secret manifest (base64 data).
    K8s,
    /// One file per secret in --out DIR, readable by its owner only.
    Docker,
    /// `::add-mask::` lines on stdout, and KEY=value lines appended to
    /// --out FILE or $GITHUB_ENV.
    Github,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Export every secret directly under this prefix, named by the last
    /// segment of its path (repeatable; a later prefix wins a name clash).
    #[arg(long = "path", value_name = "PREFIX", required = true)]
    pub paths: Vec<String>,
    /// The format.
    #[arg(long, value_enum)]
    pub format: OutputFormat,
    /// Only these names (comma-separated or repeated); each must exist.
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub only: Vec<String>,
    /// k8s: the Secret's name (default: the first prefix, as a DNS name).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// k8s: the Secret's namespace.
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Write here instead of stdout, readable by you only: a directory for
    /// docker (required), the file to append to for github (default
    /// $GITHUB_ENV), a file otherwise.
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
    /// dotenv, shell, github, k8s: allow a name that is refused by default
    /// (LD_*, PATH, BASH_ENV, PYTHON*, GIT_*, ...; repeatable), as
    /// `coffer run --allow-env` does.
    #[arg(long = "allow-env", value_name = "NAME")]
    pub allow_env: Vec<String>,
}

/// Quotes a string for POSIX shells and fish: single quotes hold anything
/// but a single quote, written `'\''`, and a backslash, written `'\\'`
/// (outside the quotes, where every shell reads `\'` as `'` and `\\` as
/// `\`). In fish `\'` and `\\` are escapes inside single quotes too: a value
/// ending in a backslash would have escaped its closing quote and let the
/// next line run as commands.
pub fn shell_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\'' => out.push_str(r"'\''"),
            '\\' => out.push_str(r"'\\'"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// A YAML double-quoted scalar in printable ASCII: every other character is
/// escaped, so no YAML reader folds, normalizes or rejects it.
pub fn yaml_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            ' '..='~' => out.push(c),
            c if (c as u32) <= 0xff => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) <= 0xffff => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// A DNS subdomain name (RFC 1123) as Kubernetes wants for object names.
fn dns_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Secret data keys Kubernetes accepts: not `.`, and not starting with
/// `..` (a mounted Secret volume keeps its own `..data` link and
/// `..TIMESTAMP` directories there; the API server refuses such keys).
fn k8s_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s != "."
        && !s.starts_with("..")
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
}

/// GitHub's workflow-command escaping of a command's data.
fn github_escape(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Refuses the export, naming every entry that `bad` says the format
/// cannot carry (never a value).
fn refuse(
    what: &str,
    values: &[(&str, Zeroizing<String>)],
    bad: impl Fn(&str, &str) -> bool,
) -> anyhow::Result<()> {
    let names: Vec<&str> = values
        .iter()
        .filter(|(n, v)| bad(n, v))
        .map(|(n, _)| *n)
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    Err(fail(
        Status::Invalid,
        format!(
            "{what}: {}; use --only to pick others; nothing exported",
            names.join(", ")
        ),
    ))
}

/// The names (and values) a format of that kind can carry: variable names
/// without NUL in their values for dotenv, shell and github, and no name
/// `coffer run` refuses (unless allowed) in those and k8s.
pub(crate) fn check_names(
    format: OutputFormat,
    allow_env: &[String],
    values: &[(&str, Zeroizing<String>)],
) -> anyhow::Result<()> {
    // Names and values every format of that kind can carry.
    if matches!(
        format,
        OutputFormat::Dotenv | OutputFormat::Shell | OutputFormat::Github
    ) {
        refuse(
            "not usable as variable names (letters, digits and _, not starting with a digit)",
            values,
            |n, _| !coffer_dotenv::is_portable_key(n),
        )?;
        refuse(
            "values with a NUL byte cannot be environment variables",
            values,
            |_, v| v.contains('\0'),
        )?;
    }
    // dotenvx runs `$(...)` and expands `$NAME` and `${...}` outside single
    // quotes: a value that needs double quotes (a line break, a control
    // character, `${`, a backslash before `\`, `'` or the end) and holds a
    // `$NAME` or `${` cannot be written so that it reads the same everywhere.
    if format == OutputFormat::Dotenv {
        refuse(
            "values that need double quotes in a .env file (line breaks, control characters, `${`, some backslashes) and hold `$NAME` or `${`, which dotenvx would expand: use --format json or shell for them",
            values,
            |_, v| !coffer_dotenv::portable_value(v),
        )?;
    }
    // The formats that become environment variables (a Secret through
    // `envFrom` too) refuse the names `coffer run` refuses.
    if matches!(
        format,
        OutputFormat::Dotenv | OutputFormat::Shell | OutputFormat::Github | OutputFormat::K8s
    ) {
        let refused: Vec<&str> = values
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| crate::env_names::refused_unless_allowed(n, allow_env))
            .collect();
        if !refused.is_empty() {
            return Err(fail(
                Status::Invalid,
                format!(
                    "{}; nothing exported",
                    crate::env_names::refusal_message(&refused, "export")
                ),
            ));
        }
    }
    Ok(())
}

pub async fn export(g: &crate::cli::Global, a: ExportArgs) -> anyhow::Result<Status> {
    crate::env_names::refuse_credential_paths(
        "--path prefix(es)",
        a.paths.iter().map(String::as_str),
    )?;
    let fetched = settings::client(g)?.bundle(&a.paths, &[]).await?;
    let mut named = by_name(&a.paths, &fetched);
    if !a.only.is_empty() {
        check_only(&a.only, |n| named.contains_key(n))?;
        named.retain(|k, _| a.only.iter().any(|n| n == k));
    }
    let mut values: Vec<(&str, Zeroizing<String>)> = Vec::with_capacity(named.len());
    for (name, read) in &named {
        values.push((name, env_value(&read.value)?));
    }

    check_names(a.format, &a.allow_env, &values)?;

    let text: Zeroizing<String> = match a.format {
        OutputFormat::Dotenv => Zeroizing::new(
            coffer_dotenv::write(values.iter().map(|(n, v)| (*n, v.as_str())))
                .map_err(|e| fail(Status::Invalid, e.to_string()))?,
        ),
        OutputFormat::Shell => {
            let mut s = Zeroizing::new(String::new());
            for (n, v) in &values {
                s.push_str(&format!("export {n}={}\n", shell_quote(v)));
            }
            s
        }
        OutputFormat::Json => {
            let object: BTreeMap<&str, &WireValue> =
                named.iter().map(|(n, r)| (*n, &r.value)).collect();
            let mut s = Zeroizing::new(serde_json::to_string_pretty(&object)?);
            s.push('\n');
            s
        }
        OutputFormat::Yaml => {
            let mut s = Zeroizing::new(String::new());
            if named.is_empty() {
                s.push_str("{}\n");
            }
            for (n, r) in &named {
                match &r.value {
                    WireValue::Text(t) => {
                        s.push_str(&format!("{}: {}\n", yaml_quote(n), yaml_quote(t)));
                    }
                    WireValue::Fields(f) if f.is_empty() => {
                        s.push_str(&format!("{}: {{}}\n", yaml_quote(n)));
                    }
                    WireValue::Fields(f) => {
                        s.push_str(&format!("{}:\n", yaml_quote(n)));
                        for (k, v) in f {
                            s.push_str(&format!("  {}: {}\n", yaml_quote(k), yaml_quote(v)));
                        }
                    }
                }
            }
            s
        }
        OutputFormat::K8s => k8s_manifest(&a, &values)?,
        OutputFormat::Docker => {
            let Some(dir) = &a.out else {
                return Err(fail(
                    Status::Usage,
                    "--format docker writes one file per secret: name the directory with --out DIR",
                ));
            };
            return docker_files(dir, &values);
        }
        OutputFormat::Github => {
            let fields: Vec<&str> = named
                .values()
                .filter_map(|r| match &r.value {
                    WireValue::Fields(f) => Some(f.values().map(String::as_str)),
                    WireValue::Text(_) => None,
                })
                .flatten()
                .collect();
            return github(&a, &values, &fields);
        }
    };
    match &a.out {
        Some(path) => settings::write_private(path, text.as_bytes())?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
        }
    }
    Ok(Status::Ok)
}

fn k8s_manifest(
    a: &ExportArgs,
    values: &[(&str, Zeroizing<String>)],
) -> anyhow::Result<Zeroizing<String>> {
    let name = match &a.name {
        Some(n) => n.clone(),
        None => a.paths[0]
            .trim_matches('/')
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect::<String>()
            .trim_matches('-')
            .to_string(),
    };
    if !dns_name(&name, 253) {
        return Err(fail(
            Status::Invalid,
            format!(
                "{name:?} is not a Kubernetes object name (lowercase letters, digits, '-' and '.'); pass --name"
            ),
        ));
    }
    if let Some(ns) = &a.namespace
        && (!dns_name(ns, 63) || ns.contains('.'))
    {
        return Err(fail(
            Status::Invalid,
            format!("{ns:?} is not a Kubernetes namespace (lowercase letters, digits and '-')"),
        ));
    }
    refuse(
        "not usable as Secret keys (letters, digits, '-', '.' and '_')",
        values,
        |n, _| !k8s_key(n),
    )?;
    // Every key and scalar double-quoted: unquoted, a YAML 1.1 reader
    // makes `yes`, `on` and `null` booleans and null, `010` and `0x10`
    // numbers and `2001-01-01` a date (and `yes`, `on`, `true` one key).
    let q = |s: &str| yaml_quote(s);
    let mut s = Zeroizing::new(String::new());
    s.push_str(&format!(
        "{}: {}\n{}: {}\n{}:\n",
        q("apiVersion"),
        q("v1"),
        q("kind"),
        q("Secret"),
        q("metadata")
    ));
    s.push_str(&format!("  {}: {}\n", q("name"), q(&name)));
    if let Some(ns) = &a.namespace {
        s.push_str(&format!("  {}: {}\n", q("namespace"), q(ns)));
    }
    s.push_str(&format!("{}: {}\n", q("type"), q("Opaque")));
    if values.is_empty() {
        s.push_str(&format!("{}: {{}}\n", q("data")));
    } else {
        s.push_str(&format!("{}:\n", q("data")));
    }
    for (n, v) in values {
        let encoded =
            Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(v.as_bytes()));
        s.push_str(&format!("  {}: {}\n", q(n), q(encoded.as_str())));
    }
    Ok(s)
}

fn docker_files(dir: &Path, values: &[(&str, Zeroizing<String>)]) -> anyhow::Result<Status> {
    refuse("not usable as file names", values, |n, _| {
        n.starts_with('.') || n.contains(['/', '\0'])
    })?;
    // On a case-insensitive file system (macOS, Windows, a mounted volume)
    // `db` and `DB` are one file: one value would silently replace the other.
    refuse(
        "names that differ only in case (one file on a case-insensitive file system)",
        values,
        |n, _| {
            values
                .iter()
                .filter(|(m, _)| m.eq_ignore_ascii_case(n))
                .count()
                > 1
        },
    )?;
    refuse_linked_dir(dir)?;
    settings::create_private_dir(dir)?;
    for (n, v) in values {
        // Docker and Compose only ever read secret files: 0400, set on the
        // temporary file's handle before it is renamed into place.
        settings::write_file(&dir.join(n), v.as_bytes(), true, 0o400)?;
    }
    eprintln!(
        "coffer: wrote {} secret file(s) to {} (mode 0400)",
        values.len(),
        dir.display()
    );
    Ok(Status::Ok)
}

/// Refuses a docker `--out` directory reached through a symbolic link
/// below the current directory's own path: a cloned repository can commit
/// `secrets -> ../../.ssh`, and files named after secrets (a colleague's
/// `authorized_keys`, `config`) would land there. The path down to the
/// current directory is yours, and is not checked (`/tmp` is a link on
/// macOS).
fn refuse_linked_dir(dir: &Path) -> anyhow::Result<()> {
    let cwd = std::env::current_dir()?;
    let full = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        cwd.join(dir)
    };
    let mut at = PathBuf::new();
    for part in full.components() {
        at.push(part);
        if cwd.starts_with(&at) {
            continue;
        }
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(fail(
                    Status::Invalid,
                    format!(
                        "{} is a symbolic link: docker secret files are never written through one (name the directory it points to); nothing exported",
                        at.display()
                    ),
                ));
            }
            Ok(_) => {}
            // Missing from here on: created as real directories.
            Err(_) => break,
        }
    }
    Ok(())
}

/// GitHub Actions: the runner hides a value from the job's log once it has
/// read `::add-mask::VALUE` on a step's stdout (one line of a multi-line
/// value at a time); `$GITHUB_ENV` takes `NAME<<DELIMITER` blocks, which
/// hold any value.
fn github(
    a: &ExportArgs,
    values: &[(&str, Zeroizing<String>)],
    fields: &[&str],
) -> anyhow::Result<Status> {
    let target = a
        .out
        .clone()
        .or_else(|| std::env::var_os("GITHUB_ENV").map(PathBuf::from))
        .ok_or_else(|| {
            fail(
                Status::Usage,
                "--format github appends to $GITHUB_ENV: run it in a workflow step, or name a file with --out",
            )
        })?;
    let mut masks = Zeroizing::new(String::new());
    let mut env = Zeroizing::new(String::new());
    let mut mask = |value: &str| {
        for line in value.split('\n').map(|l| l.trim_end_matches('\r')) {
            if !line.trim().is_empty() {
                masks.push_str(&format!("::add-mask::{}\n", github_escape(line)));
            }
            // Without its surrounding whitespace too (an indented line of a
            // key printed on its own, a value read and trimmed): the runner
            // masks the exact text it was given.
            if line.trim() != line && !line.trim().is_empty() {
                masks.push_str(&format!("::add-mask::{}\n", github_escape(line.trim())));
            }
        }
    };
    // Each field of a fields value too: a step may print one on its own.
    for f in fields {
        mask(f);
    }
    for (_, v) in values {
        mask(v);
    }
    for (n, v) in values {
        let delimiter = loop {
            let d = format!(
                "COFFER_EOF_{}",
                coffer_crypto::random::bytes::<8>()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            );
            if !v.contains(&d) {
                break d;
            }
        };
        env.push_str(&format!("{n}<<{delimiter}\n{}\n{delimiter}\n", v.as_str()));
    }
    // Masks first: a value must be hidden before anything could print it.
    let mut out = std::io::stdout().lock();
    out.write_all(masks.as_bytes())?;
    out.flush()?;
    // Never through a symbolic link, and only into a regular file.
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(settings::no_follow())
        .open(&target)
        .map_err(|e| {
            let why = if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
                "it is a symbolic link".to_string()
            } else {
                e.to_string()
            };
            fail(
                Status::Other,
                format!("cannot open {}: {why}", target.display()),
            )
        })?;
    if !file.metadata()?.is_file() {
        return Err(fail(
            Status::Other,
            format!("cannot append to {}: not a regular file", target.display()),
        ));
    }
    // The runner reads the file line by line: after a last line without
    // its line break (`printf X=1 >> $GITHUB_ENV`), `NAME<<DELIMITER` would
    // continue that line, and the value's own lines would be read as
    // `NAME=value` lines, past the name checks.
    let len = file.metadata()?.len();
    if len > 0 {
        let mut last = [0u8; 1];
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut last, len - 1)?;
        if last[0] != b'\n' {
            file.write_all(b"\n")?;
        }
    }
    file.write_all(env.as_bytes())?;
    file.sync_all()?;
    Ok(Status::Ok)
}

use std::os::unix::fs::OpenOptionsExt;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_quoting_is_printable_ascii() {
        assert_eq!(yaml_quote("plain"), "\"plain\"");
        assert_eq!(yaml_quote("a\"b\\c\nd\te"), r#""a\"b\\c\nd\te""#);
        assert_eq!(
            yaml_quote("\u{85}\u{2028}\u{1F600}\0"),
            r#""\x85\u2028\U0001f600\x00""#
        );
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$HOME\n`x`"), "'$HOME\n`x`'");
    }

    #[test]
    fn shell_export_fish_backslash_escape() {
        // A trailing backslash escaped fish's closing quote: the next
        // line's value ran as commands.
        assert_eq!(shell_quote("x\\"), r"'x'\\''");
        assert_eq!(shell_quote(r"a\'b"), r"'a'\\''\''b'");
        // sh reads every form back exactly.
        for v in ["x\\", r"a\'b", "\\\\n", "'", "end\\\n$(id)"] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", shell_quote(v)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), v);
        }
        // fish, where it is installed: the pair that ran a command before.
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let b = format!(";touch {};#", marker.display());
        let script = format!(
            "export A={}\nexport B={}\n",
            shell_quote("x\\"),
            shell_quote(&b)
        );
        if let Ok(out) = std::process::Command::new("fish")
            .arg("-c")
            .arg(format!(
                "eval {}; printf %s \"$A|$B\"",
                shell_quote(&script)
            ))
            .output()
        {
            assert!(!marker.exists(), "fish ran a value");
            assert_eq!(String::from_utf8(out.stdout).unwrap(), format!("x\\|{b}"));
        }
    }

    #[test]
    fn kubernetes_names() {
        assert!(dns_name("myapp-dev", 253));
        assert!(dns_name("a.b-c", 253));
        for bad in ["", "My", "-a", "a-", "a..b", "a_b"] {
            assert!(!dns_name(bad, 253), "{bad}");
        }
        assert!(k8s_key("DB_URL.v-1"));
        assert!(!k8s_key("a b"));
    }

    #[test]
    fn k8s_export_kubelet_reserved_keys() {
        // kubelet's own names in a mounted Secret volume (`..data` is the
        // link it swaps on update): the API server refuses them.
        assert!(k8s_key(".hidden"));
        assert!(!k8s_key("..data"));
        assert!(!k8s_key("..2026_12_07"));
        assert!(!k8s_key("."));
    }
}
