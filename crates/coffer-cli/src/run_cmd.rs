//! `coffer run`: a command with secrets in its environment.
//!
//! One request fetches every secret under the `--path` prefixes and every
//! `coffer://` reference (in `--env-file` files and in the environment).
//! Without `--redact`, coffer then replaces itself with the command
//! (`exec`), so the command's exit status and signals are its own and no
//! coffer process stays around holding the values. With `--redact`, coffer
//! stays as the command's parent to filter its output, forwards signals and
//! exits with its status (or dies by the signal that ended it, as a shell
//! expects of a command).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

use clap::Args;
use coffer_api::{BundleRef, BundleRequest, ReadResponse};
use coffer_client::{ErrorKind, WireValue};
use zeroize::Zeroizing;

use crate::exit::{Status, fail};
use crate::redact::Redactor;
use crate::run_cache::Cache;
use crate::settings;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Inject every secret directly under this prefix, named by the last
    /// segment of its path (repeatable; a later prefix wins a name clash).
    #[arg(long = "path", value_name = "PREFIX")]
    pub paths: Vec<String>,
    /// Only these names from the prefixes (comma-separated or repeated);
    /// each must exist.
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub only: Vec<String>,
    /// Also load this .env file (repeatable); values may be
    /// `coffer://PATH[#VERSION|#current]` references. File entries win over
    /// prefixes.
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_files: Vec<PathBuf>,
    /// Replace secret values in the command's stdout and stderr by
    /// `[REDACTED:NAME]`.
    #[arg(long)]
    pub redact: bool,
    /// Allow setting a name that is refused by default (LD_*, NODE_OPTIONS,
    /// PATH, GIT_*, PYTHON*, ...; repeatable; the exact spelling).
    #[arg(long = "allow-env", value_name = "NAME")]
    pub allow_env: Vec<String>,
    /// Strict mode: set only names listed in this .env.example (default
    /// ./.env.example; note the `=`). Prefix secrets not listed are left
    /// out; a .env entry or reference not listed is an error.
    #[arg(
        long,
        value_name = "FILE",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = ".env.example"
    )]
    pub only_example: Option<PathBuf>,
    /// Use only the encrypted copy kept by the last successful run with the
    /// same token, server and request; never contact the server.
    #[arg(long, conflicts_with = "no_cache")]
    pub offline: bool,
    /// How long the encrypted offline copy stays usable (at most 30d).
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_ttl)]
    pub cache_ttl: i64,
    /// Keep no offline copy (and delete one kept before).
    #[arg(long)]
    pub no_cache: bool,
    /// Pass COFFER_TOKEN on to the command (by default it and every other
    /// coffer credential, COFFER_* but COFFER_ADDR, COFFER_CACERT and
    /// COFFER_LOG, are removed from the command's environment, as is any
    /// variable whose value holds a token or credential).
    #[arg(long)]
    pub keep_token: bool,
    /// Log in for this run only, as a machine: `jwt:ROLE` (the JWT from
    /// COFFER_JWT or the GitHub Actions runner), or `approle` with
    /// --role-id and --secret-id-file or COFFER_SECRET_ID (each run spends
    /// one use of the secret id). The token is revoked when the command
    /// ends; no offline copy is kept; with --keep-token the command gets it
    /// as COFFER_TOKEN.
    #[arg(long, value_name = "jwt:ROLE|approle", conflicts_with = "offline")]
    pub login: Option<String>,
    /// The app role's role id (with --login approle).
    #[arg(long, value_name = "ID", requires = "login")]
    pub role_id: Option<String>,
    /// Read the secret id from this file (with --login approle).
    #[arg(long, value_name = "FILE", requires = "login")]
    pub secret_id_file: Option<PathBuf>,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, required = true, num_args = 1.., value_name = "CMD")]
    pub command: Vec<OsString>,
}

fn parse_ttl(s: &str) -> Result<i64, String> {
    let ms = coffer_core::duration::parse_duration_ms(s).map_err(|e| e.to_string())?;
    if ms > crate::run_cache::MAX_TTL_MS {
        return Err("at most 30d".into());
    }
    Ok(ms)
}

/// A `coffer://PATH[#VERSION|#LABEL]` reference (`#3`, `#current`,
/// `#previous`, `#pending`).
pub(crate) fn parse_reference(value: &str) -> Option<Result<BundleRef, String>> {
    let rest = value.strip_prefix("coffer://")?;
    let (path, fragment) = match rest.split_once('#') {
        Some((p, f)) => (p, Some(f)),
        None => (rest, None),
    };
    // The messages never quote the value: expansion may have put another
    // variable's value (a secret an outer `coffer run` set) in it.
    if path.is_empty() {
        return Some(Err("the coffer:// reference names no secret".to_string()));
    }
    let (version, label) = match fragment {
        None | Some("current" | "latest") => (None, None),
        Some(l @ ("previous" | "pending")) => (None, Some(l.to_string())),
        Some(f) => match f.parse::<u64>() {
            Ok(v) if v > 0 => (Some(v), None),
            _ => {
                return Some(Err(
                    "in a coffer:// reference, after # comes a version number (#3) or a label \
                     (#current, #previous, #pending)"
                        .to_string(),
                ));
            }
        },
    };
    Some(Ok(BundleRef {
        path: path.to_string(),
        version,
        label,
    }))
}

/// A value as one environment string (fields values as JSON).
pub(crate) fn env_value(value: &WireValue) -> anyhow::Result<Zeroizing<String>> {
    Ok(Zeroizing::new(match value {
        WireValue::Text(t) => t.clone(),
        WireValue::Fields(f) => serde_json::to_string(f)?,
    }))
}

fn last_segment(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// A file's text (kept in a buffer wiped when dropped), with the exit
/// status its failure deserves.
pub(crate) fn read_file(path: &std::path::Path) -> anyhow::Result<Zeroizing<String>> {
    std::fs::read_to_string(path)
        .map(Zeroizing::new)
        .map_err(|e| {
            let status = match e.kind() {
                std::io::ErrorKind::NotFound => Status::NotFound,
                std::io::ErrorKind::PermissionDenied => Status::Denied,
                _ => Status::Invalid,
            };
            fail(status, format!("cannot read {}: {e}", path.display()))
        })
}

/// The largest `.env`, `.env.example` or template file read: far more than
/// any environment holds (Linux takes 2 MiB of arguments and environment).
pub(crate) const MAX_ENV_FILE: u64 = 16 << 20;

/// [`read_file`] for `.env`-style files, refusing one larger than
/// [`MAX_ENV_FILE`] before it is read whole (a file in a cloned
/// repository, or `/dev/zero`).
pub(crate) fn read_env_file(path: &std::path::Path) -> anyhow::Result<Zeroizing<String>> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| {
        let status = match e.kind() {
            std::io::ErrorKind::NotFound => Status::NotFound,
            std::io::ErrorKind::PermissionDenied => Status::Denied,
            _ => Status::Invalid,
        };
        fail(status, format!("cannot read {}: {e}", path.display()))
    })?;
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(MAX_ENV_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| {
            fail(
                Status::Invalid,
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
    if bytes.len() as u64 > MAX_ENV_FILE {
        return Err(fail(
            Status::Invalid,
            format!(
                "{}: larger than {} MiB, not read; nothing done",
                path.display(),
                MAX_ENV_FILE >> 20
            ),
        ));
    }
    match std::str::from_utf8(&bytes) {
        Ok(text) => Ok(Zeroizing::new(text.to_string())),
        Err(_) => Err(fail(
            Status::Invalid,
            format!("cannot read {}: it is not UTF-8 text", path.display()),
        )),
    }
}

/// Parses a .env file; any statement that does not parse is an error
/// naming every such line (never its text, which may hold a value).
/// `consequence` ends the message ("; nothing imported").
pub(crate) fn parse_dotenv(
    path: &std::path::Path,
    text: &str,
    consequence: &str,
) -> anyhow::Result<coffer_dotenv::Parsed> {
    let parsed = coffer_dotenv::parse(text);
    if parsed.errors.is_empty() {
        return Ok(parsed);
    }
    let lines: Vec<String> = parsed.errors.iter().map(|e| e.line.to_string()).collect();
    Err(fail(
        Status::Invalid,
        format!(
            "{}: cannot parse line(s) {}{consequence}",
            path.display(),
            lines.join(", ")
        ),
    ))
}

/// `--only`: every name asked for must be there.
pub(crate) fn check_only(only: &[String], present: impl Fn(&str) -> bool) -> anyhow::Result<()> {
    let missing: Vec<&str> = only
        .iter()
        .map(String::as_str)
        .filter(|n| !present(n))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(fail(
        Status::NotFound,
        format!("not found under the prefixes: {}", missing.join(", ")),
    ))
}

/// The secrets directly under each prefix, by the last segment of their
/// path; a later prefix wins a name clash. `fetched` is a bundle's answer:
/// the prefixes' secrets (current versions) come first, so a later entry for
/// the same path (a reference's version) is not a prefix's.
pub(crate) fn by_name<'a>(
    prefixes: &[String],
    fetched: &'a [ReadResponse<WireValue>],
) -> BTreeMap<&'a str, &'a ReadResponse<WireValue>> {
    let mut out = BTreeMap::new();
    for prefix in prefixes {
        // As the server canonicalizes it: "" (the top level) or "a/b/".
        let prefix = match prefix.trim_matches('/') {
            "" => String::new(),
            p => format!("{p}/"),
        };
        let mut seen = std::collections::HashSet::new();
        for read in fetched.iter().filter(|r| {
            r.label.is_none()
                && r.path
                    .strip_prefix(&prefix)
                    .is_some_and(|rest| !rest.contains('/'))
        }) {
            if seen.insert(read.path.as_str()) {
                out.insert(last_segment(&read.path), read);
            }
        }
    }
    out
}

/// What the `.env` files and the environment ask for, before any request:
/// the files' entries (in order; later files and lines win) and the
/// references among them and in the environment.
pub(crate) struct Inputs {
    pub file_vars: Vec<(String, Zeroizing<String>)>,
    pub refs: Vec<(String, BundleRef)>,
}

/// Reads the `.env` files' texts and the inherited environment into
/// [`Inputs`]. Every key must be a variable name (checked after parsing
/// and quoting, so `'PYTHONPATH=x'=y` is an error, not `PYTHONPATH`);
/// `${NAME}` never reads a coffer credential from `env`; no reference
/// that holds something token-shaped (or a credential's value) is kept.
/// Errors name files, lines and variable names, never values.
pub(crate) fn collect(
    files: &[(PathBuf, Zeroizing<String>)],
    env: &dyn Fn(&str) -> Option<String>,
    inherited: &[(String, String)],
) -> anyhow::Result<Inputs> {
    let mut file_vars: Vec<(String, Zeroizing<String>)> = Vec::new();
    for (file, text) in files {
        let parsed = parse_dotenv(file, text, "; nothing run")?;
        let mut bad_lines: Vec<String> = parsed
            .bindings
            .iter()
            .filter(|b| !coffer_dotenv::is_portable_key(&b.key))
            .map(|b| b.line.to_string())
            .collect();
        bad_lines.dedup();
        if !bad_lines.is_empty() {
            return Err(fail(
                Status::Invalid,
                format!(
                    "{}: line(s) {}: the key is not a variable name (letters, digits and _, not starting with a digit, unquoted or in single quotes); nothing run",
                    file.display(),
                    bad_lines.join(", ")
                ),
            ));
        }
        let credentials_read = std::cell::RefCell::new(Vec::<String>::new());
        let env_lookup = |name: &str| {
            if let Some((_, v)) = file_vars.iter().rev().find(|(k, _)| k == name) {
                return Some(v.to_string());
            }
            if crate::env_names::is_coffer_credential(name) {
                credentials_read
                    .borrow_mut()
                    .push(crate::env_names::mask_tokens(name));
                return None;
            }
            env(name)
        };
        let resolved = parsed
            .resolve_within(&env_lookup, coffer_dotenv::EXPANSION_ALLOWANCE)
            .map_err(|e| {
                fail(
                    Status::Invalid,
                    format!("{}: {e}; nothing run", file.display()),
                )
            })?;
        let credentials_read = credentials_read.into_inner();
        if !credentials_read.is_empty() {
            return Err(fail(
                Status::Invalid,
                format!(
                    "{}: ${{{}}} would read coffer's own credential: expansion never reads COFFER_* credentials (only COFFER_ADDR, COFFER_CACERT and COFFER_LOG); nothing run",
                    file.display(),
                    credentials_read.join("}, ${")
                ),
            ));
        }
        let mut holding = Vec::new();
        for (key, value) in resolved {
            // A bare `KEY` line has no value to set.
            if let Some(v) = value {
                // A credential's value, or anything token-shaped (a copy
                // of the token under another name: `${MYTOK}` where the
                // shell set `MYTOK=$COFFER_TOKEN`, or a saved one).
                if crate::env_names::holds_credential(&v) {
                    holding.push(key.clone());
                }
                file_vars.push((key, Zeroizing::new(v)));
            }
        }
        if !holding.is_empty() {
            return Err(fail(
                Status::Invalid,
                format!(
                    "{}: {}: the value holds a coffer token or coffer's own credential; nothing run",
                    file.display(),
                    holding.join(", ")
                ),
            ));
        }
    }
    let mut refs: Vec<(String, BundleRef)> = Vec::new();
    let mut bad = Vec::new();
    for (name, value) in file_vars
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(inherited.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    {
        if !value.starts_with("coffer://") {
            continue;
        }
        let shown = crate::env_names::mask_tokens(name);
        // Never sent, never echoed: the server would record the path.
        if crate::env_names::holds_credential(value) {
            bad.push(format!(
                "{shown}: the reference holds a coffer token or credential; it is never sent"
            ));
            continue;
        }
        match parse_reference(value) {
            Some(Ok(r)) => refs.push((name.to_string(), r)),
            Some(Err(e)) => bad.push(format!("{shown}: {e}")),
            None => {}
        }
    }
    if !bad.is_empty() {
        return Err(fail(Status::Invalid, bad.join("; ")));
    }
    Ok(Inputs { file_vars, refs })
}

/// The variables to set, from what was fetched and the inputs: every name
/// a variable name, none refused unless allowed (`--allow-env`) or placed
/// by a reference in coffer's own environment, and with `example` (the
/// names of `--only-example`'s file) none outside it.
pub(crate) fn assemble(
    a: &RunArgs,
    inputs: &Inputs,
    fetched: &[ReadResponse<WireValue>],
    example: Option<&[String]>,
) -> anyhow::Result<BTreeMap<String, Zeroizing<String>>> {
    let mask = crate::env_names::mask_tokens;
    // Variables from the prefixes: by last segment, later prefixes winning.
    let mut vars: BTreeMap<String, Zeroizing<String>> = BTreeMap::new();
    let mut invalid = Vec::new();
    for (name, read) in by_name(&a.paths, fetched) {
        let picked = a.only.iter().any(|n| n == name)
            || (a.only.is_empty() && example.is_none_or(|e| e.iter().any(|n| n == name)));
        if !coffer_dotenv::is_portable_key(name) {
            // With --only (or --only-example), a name that cannot be a
            // variable cannot have been picked either: only the names
            // asked for matter.
            if picked {
                invalid.push(mask(&read.path));
            }
            continue;
        }
        vars.insert(name.to_string(), env_value(&read.value)?);
    }
    if !a.only.is_empty() {
        check_only(&a.only, |n| vars.contains_key(n))?;
        vars.retain(|k, _| a.only.contains(k));
    }
    if let Some(example) = example {
        vars.retain(|k, _| example.contains(k));
    }
    if !invalid.is_empty() {
        return Err(fail(
            Status::Invalid,
            format!(
                "not usable as variable names (letters, digits and _, not starting with a digit): {}; use --only to pick others",
                invalid.join(", ")
            ),
        ));
    }
    // File entries, then references resolved in place.
    for (k, v) in &inputs.file_vars {
        vars.insert(k.clone(), v.clone());
    }
    let mut from_environment = Vec::new();
    for (name, r) in &inputs.refs {
        let read = fetched
            .iter()
            .find(|f| {
                f.path == r.path.trim_matches('/')
                    && f.label == r.label
                    && r.version.is_none_or(|v| v == f.version)
            })
            .ok_or_else(|| {
                fail(
                    Status::NotFound,
                    format!("{}: {} was not served", mask(name), mask(&r.path)),
                )
            })?;
        if !vars.contains_key(name) {
            from_environment.push(name.clone());
        }
        vars.insert(name.clone(), env_value(&read.value)?);
    }
    // Whatever the source, a name coffer sets is a variable name.
    let unusable: Vec<String> = vars
        .keys()
        .filter(|k| !coffer_dotenv::is_portable_key(k))
        .map(|k| format!("{:?}", mask(k)))
        .collect();
    if !unusable.is_empty() {
        return Err(fail(
            Status::Invalid,
            format!(
                "not usable as variable names (letters, digits and _, not starting with a digit): {}; nothing run",
                unusable.join(", ")
            ),
        ));
    }
    if let Some(example) = example {
        let outside: Vec<&str> = vars
            .keys()
            .filter(|k| !example.contains(k) && !from_environment.contains(k))
            .map(String::as_str)
            .collect();
        if !outside.is_empty() {
            return Err(fail(
                Status::Invalid,
                format!(
                    "--only-example: not listed in {}: {}; nothing run",
                    a.only_example
                        .as_deref()
                        .unwrap_or(std::path::Path::new(".env.example"))
                        .display(),
                    outside.join(", ")
                ),
            ));
        }
    }
    // The environment is NUL-terminated strings: exec would fail with a
    // message that names neither the variable nor the cause.
    let nul: Vec<String> = vars
        .iter()
        .filter(|(_, v)| v.contains('\0'))
        .map(|(k, _)| mask(k))
        .collect();
    if !nul.is_empty() {
        return Err(fail(
            Status::Invalid,
            format!(
                "values with a NUL byte cannot be environment variables: {}; nothing run",
                nul.join(", ")
            ),
        ));
    }
    let refused: Vec<&str> = vars
        .keys()
        .filter(|k| {
            crate::env_names::refused_unless_allowed(k, &a.allow_env)
                && !from_environment.contains(k)
        })
        .map(String::as_str)
        .collect();
    if !refused.is_empty() {
        return Err(fail(
            Status::Invalid,
            crate::env_names::refusal_message(&refused, "set"),
        ));
    }
    Ok(vars)
}

/// The names a `.env.example` lists (each must be a variable name).
pub(crate) fn example_names(path: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let text = read_env_file(path)?;
    let parsed = parse_dotenv(path, &text, "; nothing run")?;
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
                "{}: line(s) {}: the key is not a variable name; nothing run",
                path.display(),
                bad.join(", ")
            ),
        ));
    }
    Ok(parsed.bindings.into_iter().map(|b| b.key).collect())
}

pub async fn run(g: &crate::cli::Global, a: RunArgs) -> anyhow::Result<Status> {
    crate::env_names::refuse_credential_paths(
        "--path prefix(es)",
        a.paths.iter().map(String::as_str),
    )?;
    let example = match &a.only_example {
        Some(path) => Some(example_names(path)?),
        None => None,
    };
    let mut files = Vec::with_capacity(a.env_files.len());
    for file in &a.env_files {
        files.push((file.clone(), read_env_file(file)?));
    }
    let inherited: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let inputs = collect(&files, &|name| std::env::var(name).ok(), &inherited)?;
    drop(inherited);

    // A login for this run: its token fetches, and is revoked at the end,
    // on every way out: the secrets cannot be fetched or the environment
    // built, the command cannot start, it fails, or coffer is signalled
    // (forwarded to the command, then revoked). From here on coffer
    // catches the signals a terminal or a supervisor sends (queued while
    // the login is under way), so none of them ends coffer before it has
    // revoked. SIGKILL cannot be caught: the token then lives out its TTL.
    let mut signals = match a.login {
        Some(_) => Some(catch_signals()?),
        None => None,
    };
    let login_fut = async {
        anyhow::Ok(match (a.login.as_deref(), &a.role_id) {
            (Some("approle"), Some(role_id)) => Some(
                crate::approle_cmd::login_for_run(g, role_id, a.secret_id_file.as_deref()).await?,
            ),
            (Some("approle"), None) => {
                return Err(fail(
                    Status::Usage,
                    "--login approle needs --role-id ID (and the secret id from --secret-id-file or COFFER_SECRET_ID)",
                ));
            }
            (Some(_), Some(_)) => {
                return Err(fail(Status::Usage, "--role-id goes with --login approle"));
            }
            (Some(spec), None) => Some(crate::auth_cmd::login_for_run(g, spec).await?),
            (None, _) => None,
        })
    };
    // A signal during the login ends the run promptly: the login gets a
    // short grace to finish (so that a token the server issued is received
    // and revoked), then coffer dies by that signal even if the server
    // has not answered (a token issued after that reaches no one and
    // expires with its TTL).
    tokio::pin!(login_fut);
    let login = match signals.as_mut() {
        Some(signals) => tokio::select! {
            l = &mut login_fut => l?,
            Some((sig, _)) = signals.recv() => {
                eprintln!(
                    "coffer: signal {} during the login; stopping",
                    sig.as_raw()
                );
                if let Ok(Ok(Some((_, client)))) =
                    tokio::time::timeout(LOGIN_GRACE, &mut login_fut).await
                    && let Err(e) = client.revoke_token(None).await
                {
                    eprintln!(
                        "coffer: warning: could not revoke this run's token ({e}); it expires with its TTL"
                    );
                }
                end(Ending::Signal(sig.as_raw()));
            }
        },
        None => (&mut login_fut).await?,
    };
    if let (Some((token, client)), Some(signals)) = (login, signals.as_mut()) {
        let outcome = run_logged_in(g, &a, &inputs, example.as_deref(), token, signals).await;
        if let Err(e) = client.revoke_token(None).await {
            eprintln!(
                "coffer: warning: could not revoke this run's token ({e}); it expires with its TTL"
            );
        }
        return match outcome {
            Ok(ending) => end(ending),
            Err(e) => Err(e),
        };
    }
    let fetched = fetch_all(g, &a, &inputs, None).await?;
    let vars = assemble(&a, &inputs, &fetched, example.as_deref())?;
    let command = prepare_command(&a, &vars);
    if a.redact {
        let mut signals = catch_signals()?;
        let ending = redacted(command, &vars, &a.command[0], &mut signals).await?;
        end(ending);
    }
    exec(command, &a.command[0])
}

/// The secrets of `--path` and the references, in one request (nothing
/// when there are none).
async fn fetch_all(
    g: &crate::cli::Global,
    a: &RunArgs,
    inputs: &Inputs,
    login: Option<coffer_crypto::SecretString>,
) -> anyhow::Result<Vec<ReadResponse<WireValue>>> {
    if a.paths.is_empty() && inputs.refs.is_empty() {
        return Ok(Vec::new());
    }
    let request = BundleRequest {
        prefixes: a.paths.clone(),
        secrets: inputs.refs.iter().map(|(_, r)| r.clone()).collect(),
    };
    fetch(g, a, &request, login).await
}

/// The command with its secrets, without coffer's own credentials.
fn prepare_command(
    a: &RunArgs,
    vars: &BTreeMap<String, Zeroizing<String>>,
) -> std::process::Command {
    let mut command = std::process::Command::new(&a.command[0]);
    command.args(&a.command[1..]);
    let (remove, copies) =
        crate::env_names::credentials_to_remove(std::env::vars_os(), a.keep_token);
    if !copies.is_empty() {
        eprintln!(
            "coffer: note: not passing {} to the command: the value holds a coffer token or credential (--keep-token passes it)",
            copies.join(", ")
        );
    }
    for name in remove {
        command.env_remove(name);
    }
    for (k, v) in vars {
        command.env(k, v.as_str());
    }
    command
}

/// What `coffer run --login` does between its login and the revocation:
/// fetch, build the environment, run the command as a child (so that the
/// token can be revoked when it ends) and forward signals to it. Returns
/// how to end; a signal before the command starts ends the run by that
/// signal.
async fn run_logged_in(
    g: &crate::cli::Global,
    a: &RunArgs,
    inputs: &Inputs,
    example: Option<&[String]>,
    token: coffer_crypto::SecretString,
    signals: &mut Signals,
) -> anyhow::Result<Ending> {
    let keep = a.keep_token.then(|| token.clone());
    let prepare = async {
        let fetched = fetch_all(g, a, inputs, Some(token)).await?;
        let vars = assemble(a, inputs, &fetched, example)?;
        let mut command = prepare_command(a, &vars);
        // With --keep-token the command gets this run's token (to call
        // coffer itself, as the GitHub Action's export does).
        if let Some(token) = &keep {
            command.env("COFFER_TOKEN", token.expose_secret());
        }
        anyhow::Ok((command, vars))
    };
    let (command, vars) = tokio::select! {
        biased;
        Some((sig, _)) = signals.recv() => {
            eprintln!(
                "coffer: signal {} before the command started; revoking this run's token",
                sig.as_raw()
            );
            return Ok(Ending::Signal(sig.as_raw()));
        }
        prepared = prepare => prepared?,
    };
    drop(keep);
    if a.redact {
        return redacted(command, &vars, &a.command[0], signals).await;
    }
    drop(vars);
    let mut child = tokio::process::Command::from(command)
        .kill_on_drop(false)
        .spawn()
        .map_err(|e| not_started(&a.command[0], &e))?;
    let status = wait_forwarding(&mut child, signals).await?;
    Ok(ending(status))
}

/// How long a login under way may still finish after a signal, so that
/// its token is received and revoked.
const LOGIN_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// The signals coffer catches while it runs a child (or holds a token to
/// revoke), each with whether to forward it to the child.
type Signals = tokio::sync::mpsc::UnboundedReceiver<(rustix::process::Signal, bool)>;

/// Catches TERM, HUP, INT, QUIT, USR1 and USR2 from now on (they no
/// longer end coffer). TERM, HUP, USR1 and USR2 are forwarded to the
/// child. INT and QUIT are forwarded only when coffer is not in the
/// foreground of a terminal: there, Ctrl-C and Ctrl-\ reach the whole
/// foreground process group, the child included, and forwarding them
/// would deliver them twice. Whether coffer is in the foreground is asked
/// when the signal arrives (a job moved by `fg` or `bg` changes it); the
/// answer does not depend on where standard input comes from, since
/// `coffer run ... < file` typed at a terminal is still in its foreground.
fn catch_signals() -> anyhow::Result<Signals> {
    use tokio::signal::unix::{SignalKind, signal};
    let kinds = [
        (
            SignalKind::terminate(),
            rustix::process::Signal::TERM,
            false,
        ),
        (SignalKind::hangup(), rustix::process::Signal::HUP, false),
        (
            SignalKind::user_defined1(),
            rustix::process::Signal::USR1,
            false,
        ),
        (
            SignalKind::user_defined2(),
            rustix::process::Signal::USR2,
            false,
        ),
        (SignalKind::interrupt(), rustix::process::Signal::INT, true),
        (SignalKind::quit(), rustix::process::Signal::QUIT, true),
    ];
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    for (kind, sig, from_terminal) in kinds {
        let mut stream = signal(kind)?;
        let tx = tx.clone();
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                let forward = !(from_terminal && in_terminal_foreground());
                let _ = tx.send((sig, forward));
            }
        });
    }
    Ok(rx)
}

/// Whether coffer's process group is the foreground group of its
/// controlling terminal (the group a terminal sends Ctrl-C and Ctrl-\
/// to). No controlling terminal: no.
fn in_terminal_foreground() -> bool {
    let Ok(tty) = std::fs::File::open("/dev/tty") else {
        return false;
    };
    rustix::termios::tcgetpgrp(&tty).is_ok_and(|group| group == rustix::process::getpgrp())
}

/// Waits for the child, forwarding the signals coffer receives meanwhile.
async fn wait_forwarding(
    child: &mut tokio::process::Child,
    signals: &mut Signals,
) -> std::io::Result<std::process::ExitStatus> {
    let pid = child
        .id()
        .and_then(|p| rustix::process::Pid::from_raw(p as i32));
    loop {
        tokio::select! {
            status = child.wait() => return status,
            Some((sig, forward)) = signals.recv() => {
                if forward && let Some(pid) = pid {
                    let _ = rustix::process::kill_process(pid, sig);
                }
            }
        }
    }
}

/// How a run that stays the command's parent ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Exit with this status.
    Exit(i32),
    /// Die by this signal: the one that ended the command, or the one
    /// coffer received before the command started.
    Signal(i32),
}

/// How to end for the command's status: its exit status, or the signal
/// that ended it.
fn ending(status: std::process::ExitStatus) -> Ending {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => Ending::Exit(c),
        (None, Some(s)) => Ending::Signal(s),
        _ => Ending::Exit(1),
    }
}

/// Ends coffer as `ending` says, once the run's token is revoked. A
/// command ended by a signal makes coffer die by the same signal, so that
/// whoever waits for coffer (a shell, `xargs`, a supervisor) sees what it
/// would have seen of the command itself: a shell script stops on a
/// Ctrl-C instead of taking it for an ordinary failure. The handler
/// coffer installed is replaced by the default one first; a signal whose
/// default is not to end the process (or one unknown here) leaves coffer
/// alive, which then exits with 128 + its number, as a shell reports it.
fn end(ending: Ending) -> ! {
    match ending {
        Ending::Exit(code) => std::process::exit(code),
        Ending::Signal(sig) => {
            // This process held secret values and a token: a signal whose
            // default writes a core file (SIGQUIT, SIGSEGV, SIGABRT) must
            // not write its memory to disk.
            let _ = rustix::process::setrlimit(
                rustix::process::Resource::Core,
                rustix::process::Rlimit {
                    current: Some(0),
                    maximum: Some(0),
                },
            );
            #[cfg(target_os = "linux")]
            let _ = rustix::process::set_dumpable_behavior(
                rustix::process::DumpableBehavior::NotDumpable,
            );
            let _ = signal_hook::low_level::emulate_default_handler(sig);
            std::process::exit(128 + sig)
        }
    }
}

/// The secrets for `request`: from the server, keeping an encrypted copy;
/// from that copy when the server cannot be reached or with `--offline`.
async fn fetch(
    g: &crate::cli::Global,
    a: &RunArgs,
    request: &BundleRequest,
    login: Option<coffer_crypto::SecretString>,
) -> anyhow::Result<Vec<ReadResponse<WireValue>>> {
    // A token logged in for this run is gone when it ends: no copy for it.
    let logged_in = login.is_some();
    let token = match login {
        Some(t) => Some(t),
        None => settings::resolve_token()?,
    };
    let cache = token
        .as_ref()
        .filter(|_| !logged_in)
        .and_then(|t| Cache::for_request(t, &settings::addr(g), request));
    if a.offline {
        let Some(cache) = &cache else {
            return Err(fail(
                Status::NotFound,
                "--offline needs the token that fetched the cached copy (COFFER_TOKEN or `coffer login`) and a home directory",
            ));
        };
        let cached = cache.load()?.ok_or_else(|| {
            fail(
                Status::NotFound,
                "no cached copy for this token, server and request: run once while the server is reachable",
            )
        })?;
        notice("offline", &cached);
        return Ok(cached.reads);
    }
    let mut builder = settings::client_builder(g);
    if let Some(t) = token {
        builder = builder.secret_token(t);
    }
    let client = builder.build()?;
    match client
        .bundle_response(&request.prefixes, &request.secrets)
        .await
    {
        Ok(resp) => {
            let reads = resp.secrets;
            if let Some(cache) = &cache {
                if resp.no_offline_copy {
                    // Values served under break-glass: a copy on disk
                    // would outlive the grant. Older servers never set
                    // this, and their answers are kept as before.
                    cache.remove();
                    if !a.no_cache {
                        eprintln!(
                            "coffer: note: not keeping an offline copy: the server served values from a protected environment"
                        );
                    }
                } else if a.no_cache {
                    cache.remove();
                } else if let Err(e) = cache.store(&reads, a.cache_ttl) {
                    eprintln!("coffer: warning: cannot keep an offline copy: {e:#}");
                }
            }
            Ok(reads)
        }
        Err(e) if unavailable(&e) && !a.no_cache => {
            let Some(cache) = &cache else {
                return Err(e.into());
            };
            match cache.load() {
                Ok(Some(cached)) => {
                    notice(&e.message, &cached);
                    Ok(cached.reads)
                }
                Ok(None) => Err(e.into()),
                Err(cache_error) => {
                    eprintln!("coffer: warning: {cache_error:#}");
                    Err(e.into())
                }
            }
        }
        Err(e) => {
            // A server that answers "no" (or "not found") must not be
            // bypassed by an old copy.
            if let Some(cache) = &cache {
                match e.kind {
                    ErrorKind::Unauthenticated => cache.remove_all_for_token(),
                    ErrorKind::Forbidden | ErrorKind::NotFound => cache.remove(),
                    _ => {}
                }
            }
            Err(e.into())
        }
    }
}

/// The server could not answer: no connection, no answer in time, or a
/// gateway in front of it saying so (502, 503, 504 without a coffer error
/// body; a sealed coffer answers 503 with one, and is not unavailable).
fn unavailable(e: &coffer_client::ClientError) -> bool {
    e.kind == ErrorKind::Unreachable || (matches!(e.status, Some(502..=504)) && e.code.is_none())
}

/// Says on stderr that values come from the cache, and how old they are.
fn notice(why: &str, cached: &crate::run_cache::Cached) {
    let now = crate::run_cache::now_ms();
    eprintln!(
        "coffer: {why}: using the offline copy fetched {} ago (usable for {} more)",
        crate::run_cache::human(now - cached.fetched_at_ms),
        crate::run_cache::human(cached.expires_at_ms - now),
    );
}

/// Replaces this process with the command; returns only on failure.
fn exec(mut command: std::process::Command, program: &OsString) -> anyhow::Result<Status> {
    use std::os::unix::process::CommandExt;
    let e = command.exec();
    Err(not_started(program, &e))
}

fn not_started(program: &OsString, e: &std::io::Error) -> anyhow::Error {
    let status = match e.kind() {
        std::io::ErrorKind::NotFound => Status::NotFound,
        std::io::ErrorKind::PermissionDenied => Status::Denied,
        _ => Status::Other,
    };
    fail(
        status,
        format!("cannot run {}: {e}", program.to_string_lossy()),
    )
}

/// Runs the command as a child, filters its output, forwards signals, and
/// returns how to end.
async fn redacted(
    command: std::process::Command,
    vars: &BTreeMap<String, Zeroizing<String>>,
    program: &OsString,
    signals: &mut Signals,
) -> anyhow::Result<Ending> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let pairs = || vars.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let short = Redactor::too_short(pairs());
    if !short.is_empty() {
        eprintln!(
            "coffer: warning: not redacting {} (shorter than {} bytes)",
            short.join(", "),
            crate::redact::MIN_LEN
        );
    }
    let mut command = tokio::process::Command::from(command);
    command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(false);
    let mut child = command.spawn().map_err(|e| not_started(program, &e))?;

    async fn pump(
        mut from: impl tokio::io::AsyncRead + Unpin,
        mut to: impl tokio::io::AsyncWrite + Unpin,
        mut redactor: Redactor,
    ) {
        let mut buf = Zeroizing::new(vec![0u8; 16 * 1024]);
        loop {
            match from.read(&mut buf[..]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let out = Zeroizing::new(redactor.push(&buf[..n]));
                    if to.write_all(&out).await.is_err() || to.flush().await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.write_all(&redactor.finish()).await;
        let _ = to.flush().await;
    }
    let out = tokio::spawn(pump(
        child.stdout.take().expect("piped"),
        tokio::io::stdout(),
        Redactor::new(pairs()),
    ));
    let err = tokio::spawn(pump(
        child.stderr.take().expect("piped"),
        tokio::io::stderr(),
        Redactor::new(pairs()),
    ));

    let status = wait_forwarding(&mut child, signals).await?;
    let _ = out.await;
    let _ = err.await;
    Ok(ending(status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let ok = |s: &str, path: &str, version: Option<u64>| {
            assert_eq!(
                parse_reference(s).unwrap().unwrap(),
                BundleRef {
                    path: path.into(),
                    version,
                    label: None,
                },
                "{s}"
            );
        };
        ok("coffer://app/dev/DB", "app/dev/DB", None);
        ok("coffer://app/dev/DB#3", "app/dev/DB", Some(3));
        ok("coffer://app/dev/DB#current", "app/dev/DB", None);
        assert!(parse_reference("plain value").is_none());
        assert!(parse_reference("coffer://").unwrap().is_err());
        assert!(parse_reference("coffer://a/b#0").unwrap().is_err());
        assert_eq!(
            parse_reference("coffer://a/b#previous")
                .unwrap()
                .unwrap()
                .label
                .as_deref(),
            Some("previous")
        );
        assert!(parse_reference("coffer://a/b#older").unwrap().is_err());
    }

    fn args(paths: &[&str], allow: &[&str]) -> RunArgs {
        RunArgs {
            paths: paths.iter().map(|p| p.to_string()).collect(),
            only: Vec::new(),
            env_files: Vec::new(),
            redact: false,
            allow_env: allow.iter().map(|p| p.to_string()).collect(),
            only_example: None,
            offline: false,
            cache_ttl: 0,
            no_cache: false,
            keep_token: false,
            login: None,
            role_id: None,
            secret_id_file: None,
            command: vec!["true".into()],
        }
    }

    fn read(path: &str, value: &str) -> ReadResponse<WireValue> {
        ReadResponse {
            path: path.to_string(),
            version: 1,
            value: WireValue::Text(value.to_string()),
            created_at: String::new(),
            created_by: String::new(),
            created_by_kind: None,
            created_by_accessor: None,
            label: None,
        }
    }

    fn file(text: &str) -> Vec<(PathBuf, Zeroizing<String>)> {
        vec![(PathBuf::from("test.env"), Zeroizing::new(text.to_string()))]
    }

    /// Every reference served, with a value.
    fn serve(inputs: &Inputs) -> Vec<ReadResponse<WireValue>> {
        inputs
            .refs
            .iter()
            .map(|(_, r)| read(r.path.trim_matches('/'), "served"))
            .collect()
    }

    fn env_of(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
        allow: &[&str],
    ) -> anyhow::Result<BTreeMap<String, Zeroizing<String>>> {
        let inputs = collect(&file(text), env, &[])?;
        assemble(&args(&[], allow), &inputs, &serve(&inputs), None)
    }

    #[test]
    fn quoted_env_key_cannot_smuggle_a_refused_name() {
        for text in [
            "'PYTHONPATH=./evil:'=x\n",
            "'NODE_OPTIONS=--require=./x.js --title'=x\n",
            "export 'LD_PRELOAD=/tmp/x.so'=x\n",
            "\"PYTHONPATH\"=x\n",
            "`PYTHONPATH`=x\n",
            "'A\0B'=x\n",
            "'has space'=x\n",
            "1ABC=x\n",
            "'\u{41a}EY'=x\n",
        ] {
            let e = env_of(text, &|_| None, &[])
                .err()
                .unwrap_or_else(|| panic!("{text:?} accepted"));
            let msg = format!("{e:#}");
            assert!(msg.contains("line(s) 1"), "{text:?}: {msg}");
            assert!(!msg.contains("evil") && !msg.contains("x.js"), "{msg}");
        }
        // Refused names in any spelling a file allows.
        for text in [
            "PYTHONPATH=x",
            "export PYTHONPATH=x",
            "'PYTHONPATH'=x",
            "export 'PYTHONPATH'=x",
            "  PYTHONPATH = \"x\"",
            "pythonpath=x",
            "ld_preload=x",
        ] {
            let e = env_of(text, &|_| None, &[])
                .err()
                .unwrap_or_else(|| panic!("{text:?} accepted"));
            assert!(
                format!("{e:#}").contains("refusing to set"),
                "{text:?}: {e:#}"
            );
        }
        assert!(env_of("PYTHONPATH=x", &|_| None, &["PYTHONPATH"]).is_ok());
    }

    #[test]
    fn expansion_never_reads_coffer_token() {
        let env = |n: &str| match n {
            "COFFER_TOKEN" => Some("cft_secretsecretsecretsecret".to_string()),
            "COFFER_INVITE_CODE" | "COFFER_STORAGE_PASSWORD" | "COFFER_WEBHOOK_SECRET" => {
                Some("credential-value".to_string())
            }
            "COFFER_ADDR" => Some("http://127.0.0.1:8270".to_string()),
            "HOME" => Some("/home/x".to_string()),
            _ => None,
        };
        for text in [
            "APP_SETTING=${COFFER_TOKEN}",
            "APP_SETTING=\"x ${COFFER_TOKEN:-d}\"",
            "LEAK=coffer://leak/${COFFER_TOKEN}",
            "A=${COFFER_INVITE_CODE}",
            "A=${COFFER_STORAGE_PASSWORD}",
            "A=${COFFER_WEBHOOK_SECRET}",
        ] {
            let e = env_of(text, &env, &[])
                .err()
                .unwrap_or_else(|| panic!("{text:?} accepted"));
            let msg = format!("{e:#}");
            assert!(msg.contains("credential"), "{text:?}: {msg}");
            assert!(
                !msg.contains("secretsecret") && !msg.contains("credential-value"),
                "{msg}"
            );
        }
        // Settings are not credentials; a file's own entry of that name is
        // not the environment's; single quotes never expand.
        let vars = env_of(
            "A=${COFFER_ADDR}\nB='${COFFER_TOKEN}'\nH=${HOME}",
            &env,
            &[],
        )
        .unwrap();
        assert_eq!(vars["A"].as_str(), "http://127.0.0.1:8270");
        assert_eq!(vars["B"].as_str(), "${COFFER_TOKEN}");
        assert_eq!(vars["H"].as_str(), "/home/x");
    }

    #[test]
    fn token_shaped_reference_is_never_sent() {
        let token = "cft_0123456789abcdefghijABCDEFGHIJabcdefghijXYZ012345";
        for (name, value) in [
            ("LEAK", format!("coffer://leak/{token}")),
            ("LEAK", format!("coffer://leak/x#{token}")),
            ("LEAK", "coffer://a/cfi_0123456789abcdefABCD".to_string()),
        ] {
            // In a file and in the environment.
            for inputs in [
                collect(&file(&format!("{name}='{value}'")), &|_| None, &[]),
                collect(&[], &|_| None, &[(name.to_string(), value.clone())]),
            ] {
                let e = inputs.err().expect("refused before any request");
                let msg = format!("{e:#}");
                assert!(
                    msg.contains("never sent") || msg.contains("holds a coffer token"),
                    "{msg}"
                );
                assert!(!msg.contains("0123456789abcdef"), "{msg}");
            }
        }
        // A token-shaped name is masked in messages.
        let e = collect(
            &[],
            &|_| None,
            &[(format!("X{token}"), "coffer://a#older".to_string())],
        )
        .err()
        .unwrap();
        assert!(!format!("{e:#}").contains("0123456789abcdef"), "{e:#}");
    }

    #[test]
    fn reference_error_never_echoes_an_expanded_value() {
        // `${DB_PASSWORD}` from the environment (set by an outer `coffer
        // run`) expanded into a reference that does not parse.
        let env = |name: &str| (name == "DB_PASSWORD").then(|| "hunter2-expanded".to_string());
        for text in [
            "X=coffer://app/x#${DB_PASSWORD}",
            "X=coffer://#${DB_PASSWORD}",
        ] {
            let e = collect(&file(text), &env, &[]).err().expect("refused");
            let msg = format!("{e:#}");
            assert!(msg.starts_with("X: "), "{msg}");
            assert!(!msg.contains("hunter2"), "{msg}");
        }
    }

    #[test]
    fn token_copied_from_environment_under_another_name_is_refused() {
        // The shell ran `export MYTOK=$COFFER_TOKEN` (or the token came from
        // `coffer login`, so COFFER_TOKEN is not even set): a hostile .env
        // copies it into a variable the command sends elsewhere.
        let token = "cft_0123456789abcdefghijABCDEFGHIJabcdefghijXYZ012345";
        let env = |name: &str| (name == "MYTOK").then(|| token.to_string());
        for text in [
            "API_URL=https://evil.example/?t=${MYTOK}",
            "API_URL=${MYTOK:-x}",
            "A=${MYTOK}\nB=${A}",
        ] {
            let e = collect(&file(text), &env, &[]).err().expect("refused");
            let msg = format!("{e:#}");
            assert!(msg.contains("holds a coffer token"), "{msg}");
            assert!(!msg.contains("0123456789abcdef"), "{msg}");
        }
    }

    #[test]
    fn git_config_env_family_is_refused() {
        for name in [
            "GIT_CONFIG_COUNT",
            "GIT_CONFIG_KEY_0",
            "GIT_CONFIG_VALUE_0",
            "PYTHONWARNINGS",
            "BROWSER",
            "DOTNET_STARTUP_HOOKS",
            "OPENSSL_CONF",
            "LUA_INIT",
            "PHPRC",
            "GIT_ASKPASS",
            "LESSCLOSE",
            "PERL5OPT",
            "RUBYOPT",
            "JAVA_TOOL_OPTIONS",
        ] {
            let inputs = collect(&[], &|_| None, &[]).unwrap();
            let fetched = [read(&format!("app/dev/{name}"), "x")];
            let e = assemble(&args(&["app/dev"], &[]), &inputs, &fetched, None)
                .err()
                .unwrap_or_else(|| panic!("{name} accepted"));
            assert!(format!("{e:#}").contains(name), "{e:#}");
            assert!(assemble(&args(&["app/dev"], &[name]), &inputs, &fetched, None).is_ok());
        }
    }

    #[test]
    fn only_example_sets_listed_names_only() {
        let inputs = collect(&file("LISTED=1"), &|_| None, &[]).unwrap();
        let fetched = [read("app/dev/A", "a"), read("app/dev/B", "b")];
        let example = ["A".to_string(), "LISTED".to_string()];
        let vars = assemble(&args(&["app/dev"], &[]), &inputs, &fetched, Some(&example)).unwrap();
        assert_eq!(vars.keys().collect::<Vec<_>>(), ["A", "LISTED"]);
        let inputs = collect(&file("NOT_LISTED=1"), &|_| None, &[]).unwrap();
        let e = assemble(&args(&["app/dev"], &[]), &inputs, &fetched, Some(&example))
            .err()
            .unwrap();
        assert!(format!("{e:#}").contains("NOT_LISTED"), "{e:#}");
        // Listed is not allowed: a refused name stays refused.
        let inputs = collect(&file("PATH=/tmp"), &|_| None, &[]).unwrap();
        let example = ["PATH".to_string()];
        assert!(assemble(&args(&[], &[]), &inputs, &[], Some(&example)).is_err());
    }

    /// Hostile names: refused families in several spellings, invalid
    /// characters, look-alikes, empty, leading digits.
    fn hostile_name() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            3 => proptest::sample::select(vec![
                "LD_PRELOAD", "ld_preload", "PATH", "Path", "NODE_OPTIONS", "PYTHONPATH",
                "PYTHONWARNINGS", "BROWSER", "GIT_CONFIG_COUNT", "GIT_CONFIG_KEY_0",
                "BASH_ENV", "BASH_FUNC_x%%", "ENV", "PS4", "HTTP_PROXY", "https_proxy",
                "COFFER_TOKEN", "COFFER_ADDR", "DOTNET_STARTUP_HOOKS", "HOME",
                "PYTHONPATH=./evil:", "NODE_OPTIONS=--require=./x.js", "A\0B", "", "1A",
                "A B", "\u{41b}D_PRELOAD", "LD_PRELOAD\u{200b}", "export", "DATABASE_URL",
                "NODE_ENV", "API_KEY", "_",
            ])
            .prop_map(str::to_string),
            2 => "[A-Za-z_][A-Za-z0-9_]{0,10}",
            2 => "(LD_|GIT_|PYTHON|NODE_|BASH_|COFFER_|DYLD_|ld_|git_)[A-Za-z0-9_]{0,6}",
            1 => "(LD_|GIT_|PYTHON|NODE_)[A-Za-z0-9_=]{0,6}",
            1 => "[ -~]{0,8}",
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(1000))]

        /// No refused or invalid name reaches the command, from any source,
        /// without --allow-env naming it (or a reference placed in coffer's
        /// own environment, which is the caller's).
        #[test]
        fn no_refused_or_invalid_name_reaches_the_command(
            stored in proptest::collection::vec(hostile_name(), 0..4),
            keys in proptest::collection::vec((hostile_name(), 0..8usize), 0..3),
            inherited in proptest::collection::vec(hostile_name(), 0..3),
            allow in proptest::collection::vec(hostile_name(), 0..2),
            strict in proptest::bool::ANY,
        ) {
            let mut text = String::new();
            for (i, (key, quoting)) in keys.iter().enumerate() {
                let value = if i % 2 == 0 { "v".to_string() } else { format!("coffer://app/ref/R{i}") };
                text.push_str(&match quoting {
                    0 => format!("{key}={value}\n"),
                    1 => format!("'{key}'={value}\n"),
                    2 => format!("export {key}={value}\n"),
                    3 => format!("export '{key}'=\"{value}\"\n"),
                    4 => format!("\"{key}\"={value}\n"),
                    5 => format!("`{key}`={value}\n"),
                    6 => format!("  {key} = '{value}' # c\n"),
                    _ => format!("{key}=${{{key}}}\n"),
                });
            }
            let inherited: Vec<(String, String)> = inherited
                .iter()
                .filter(|n| !n.is_empty() && !n.contains(['=', '\0']))
                .map(|n| (n.clone(), "coffer://app/ref/ENV".to_string()))
                .collect();
            let Ok(inputs) = collect(&file(&text), &|_| Some("x".into()), &inherited) else {
                return Ok(());
            };
            let mut fetched: Vec<ReadResponse<WireValue>> = stored
                .iter()
                .filter(|n| !n.contains('/'))
                .map(|n| read(&format!("app/dev/{n}"), "stored"))
                .collect();
            fetched.extend(serve(&inputs));
            let allow: Vec<&str> = allow.iter().map(String::as_str).collect();
            let a = args(&["app/dev"], &allow);
            let example: Vec<String> = keys.iter().map(|(k, _)| k.clone()).chain(stored.iter().take(1).cloned()).collect();
            let Ok(vars) = assemble(&a, &inputs, &fetched, strict.then_some(example.as_slice())) else {
                return Ok(());
            };
            for name in vars.keys() {
                proptest::prop_assert!(coffer_dotenv::is_portable_key(name), "{name:?}");
                // A stored secret strict mode left out does not count: the
                // inherited reference is then the only source of the name.
                let stored_kept = stored.contains(name) && (!strict || example.contains(name));
                let from_env = inherited.iter().any(|(k, _)| k == name)
                    && !inputs.file_vars.iter().any(|(k, _)| k == name)
                    && !stored_kept;
                proptest::prop_assert!(
                    crate::env_names::refused(name).is_none()
                        || allow.contains(&name.as_str())
                        || from_env,
                    "{name:?} reached the command"
                );
                if strict {
                    proptest::prop_assert!(example.contains(name) || from_env, "{name:?} not in the example");
                }
            }
        }

        /// The same for exports: no refused or invalid name in an
        /// environment-like format without --allow-env.
        #[test]
        fn no_refused_or_invalid_name_reaches_an_export(
            names in proptest::collection::vec(hostile_name(), 0..5),
            allow in proptest::collection::vec(hostile_name(), 0..2),
        ) {
            use crate::transfer_cmd::{OutputFormat, check_names};
            let values: Vec<(&str, Zeroizing<String>)> =
                names.iter().map(|n| (n.as_str(), Zeroizing::new("v".to_string()))).collect();
            for format in [OutputFormat::Dotenv, OutputFormat::Shell, OutputFormat::Github, OutputFormat::K8s] {
                if check_names(format, &allow, &values).is_ok() {
                    for n in &names {
                        proptest::prop_assert!(
                            crate::env_names::refused(n).is_none() || allow.contains(n),
                            "{n:?} exported as {format:?}"
                        );
                        if format != OutputFormat::K8s {
                            proptest::prop_assert!(coffer_dotenv::is_portable_key(n), "{n:?}");
                        }
                    }
                }
            }
        }
    }
}
