//! `coffer generate`, `rotate`, `promote`, `expire`, `lifecycle`,
//! `rotation status`, `rollback`, `cp`, `mv` and `env promote`: the secret
//! lifecycle on the command line. Values never appear in their output: a
//! rotation reports versions and labels, a promotion plan names only.

use std::io::{IsTerminal, Write};

use clap::{Args, Subcommand};
use coffer_api::WireValue;
use coffer_api::lifecycle as wire;
use coffer_crypto::generate::{Format, Spec};

use crate::exit::{Status, fail};
use crate::{input, output, settings};

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Bytes of randomness (8 to 1024; not for words).
    #[arg(long, value_name = "N", conflicts_with = "words")]
    pub bytes: Option<u32>,
    /// base64, hex, urlsafe, alnum or words.
    #[arg(long, default_value = "base64", value_parser = ["base64", "hex", "urlsafe", "alnum", "words"])]
    pub format: String,
    /// Words of a passphrase (4 to 64; default 10).
    #[arg(long, value_name = "N")]
    pub words: Option<u32>,
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    /// Secret path.
    pub path: String,
    /// Generate the new value with this spec (FORMAT[:N]) instead of the
    /// lifecycle rule's generator.
    #[arg(long, value_name = "SPEC", conflicts_with_all = ["stdin", "cancel"])]
    pub generate: Option<String>,
    /// Read the new value from stdin (one trailing newline dropped) instead
    /// of generating one.
    #[arg(long, conflicts_with = "cancel")]
    pub stdin: bool,
    /// Only stage the new version as `pending`; `coffer promote` completes it.
    #[arg(long, conflicts_with = "cancel")]
    pub stage: bool,
    /// How long the previous version stays readable (such as 1h, 7d; 0s retires it at once).
    #[arg(long, value_name = "DURATION", conflicts_with = "cancel")]
    pub grace: Option<String>,
    /// Drop a staged rotation's pending version; current stays.
    #[arg(long)]
    pub cancel: bool,
    /// For a secret that manages PostgreSQL roles: rotate even while the
    /// previous credentials are in their grace period (they stop working at
    /// once).
    #[arg(long, conflicts_with_all = ["cancel", "stdin"])]
    pub force: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// Secret path.
    pub path: String,
    /// How long the old current version stays readable as previous.
    #[arg(long, value_name = "DURATION")]
    pub grace: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct ExpiryChoice {
    /// Expire after this long (such as 90d).
    #[arg(long = "in", value_name = "DURATION")]
    pub within: Option<String>,
    /// Expire at this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Remove the expiry.
    #[arg(long)]
    pub never: bool,
}

#[derive(Debug, Args)]
pub struct ExpireArgs {
    /// Secret path.
    pub path: String,
    #[command(flatten)]
    pub when: ExpiryChoice,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum LifecycleCommand {
    /// Set the rule of a path pattern (replacing any rule it had).
    #[command(after_help = "Examples:
  coffer lifecycle set '*/prod/*' --min-bits 128
  coffer lifecycle set 'myapp/prod/*' --rotate-every 90d --generator base64:32 --grace 24h
  coffer lifecycle set myapp/prod/JWT_KEY --rotate-every 30d --generator hex:32 --grace 2h

Where several patterns match a path, the highest --min-bits applies, and
each other setting comes from the most specific pattern that sets it (an
exact path first, then the pattern with more literal characters). A
secret with --rotate-every and a generator is rotated by the server when
due; without a generator it is reported (and alerted) as due.")]
    Set(RuleArgs),
    /// List the rules, most specific first.
    Ls(JsonFlag),
    /// Remove the rule of a pattern.
    Rm {
        /// The pattern, as it was set.
        pattern: String,
    },
}

#[derive(Debug, Args)]
pub struct RuleArgs {
    /// Path pattern, such as '*/prod/*', 'myapp/prod/*' or an exact path.
    pub pattern: String,
    /// Values written here must take at least this many bits to guess.
    #[arg(long, value_name = "BITS")]
    pub min_bits: Option<u32>,
    /// Rotate this often (such as 90d).
    #[arg(long, value_name = "DURATION")]
    pub rotate_every: Option<String>,
    /// Generator for rotations (FORMAT[:N]).
    #[arg(long, value_name = "SPEC")]
    pub generator: Option<String>,
    /// How long the previous version stays readable after a change.
    #[arg(long, value_name = "DURATION")]
    pub grace: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum PgCommand {
    /// Create a secret that holds the credentials of a PostgreSQL login made
    /// of two alternating roles. The first role gets a generated password
    /// at once, the second loses any password it had; each rotation then
    /// gives the inactive role a new password and makes it current, while
    /// the other keeps working through the grace period.
    #[command(after_help = "Examples:
  printf '%s' 'postgres://coffer_admin:PASSWORD@db.internal/app?sslmode=verify-full' \\
    | coffer set myapp/prod/DB_ADMIN
  coffer pg manage myapp/prod/DB --admin myapp/prod/DB_ADMIN --roles app_blue,app_green
  coffer pg manage myapp/prod/DB --admin myapp/prod/DB_ADMIN --roles app_blue,app_green \\
    --create-roles --member-of app --connect-url 'postgres://pgbouncer.internal:6432/app'
  coffer lifecycle set myapp/prod/DB --rotate-every 30d --grace 1d
  coffer rotate myapp/prod/DB                 # now: the other role becomes current
  coffer get myapp/prod/DB --field url        # what applications use

The administrator secret holds a postgres:// URL (or fields url and
password) for a role with CREATEROLE. Needs create on PATH and read on the
administrator secret. The value has fields username, password and url.
Passwords reach PostgreSQL only as SCRAM verifiers; the old role's
password expires when the grace period ends (VALID UNTIL, enforced by
PostgreSQL).")]
    Manage(PgManageArgs),
    /// Show a managed secret's roles, administrator secret, connect URL and
    /// labels (never a value).
    #[command(after_help = "Examples:
  coffer pg show myapp/prod/DB
  coffer pg show myapp/prod/DB --json")]
    Show(PgShowArgs),
}

#[derive(Debug, Args)]
pub struct PgManageArgs {
    /// Path of the new secret.
    pub path: String,
    /// Path of the secret holding the administrator connection.
    #[arg(long, value_name = "PATH")]
    pub admin: String,
    /// The two roles that take turns: FIRST,SECOND.
    #[arg(long, value_name = "FIRST,SECOND")]
    pub roles: String,
    /// The URL applications connect to, without user or password (default:
    /// the administrator URL's server and database).
    #[arg(long, value_name = "URL")]
    pub connect_url: Option<String>,
    /// Password generator, FORMAT[:N] (default alnum:32).
    #[arg(long, value_name = "SPEC")]
    pub generate: Option<String>,
    /// Create the roles that do not exist yet (as LOGIN roles).
    #[arg(long)]
    pub create_roles: bool,
    /// The group role that created roles join (owner of the application's
    /// objects).
    #[arg(long, value_name = "ROLE", requires = "create_roles")]
    pub member_of: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PgShowArgs {
    /// Secret path.
    pub path: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn pg(g: &crate::cli::Global, c: PgCommand) -> anyhow::Result<Status> {
    let client = settings::client(g)?;
    match c {
        PgCommand::Manage(a) => {
            let roles: Vec<&str> = a.roles.split(',').map(str::trim).collect();
            let [first, second] = roles.as_slice() else {
                return Err(fail(
                    Status::Usage,
                    "--roles takes two roles separated by a comma, such as app_blue,app_green",
                ));
            };
            if let Some(spec) = &a.generate {
                coffer_core::lifecycle::parse_generator(spec)
                    .map_err(|e| fail(Status::Usage, e.to_string()))?;
            }
            let r = client
                .manage_postgres(
                    &a.path,
                    &wire::PostgresManageRequest {
                        admin: a.admin.clone(),
                        roles: [first.to_string(), second.to_string()],
                        connect_url: a.connect_url.clone(),
                        generate: a.generate.clone(),
                        create_roles: a.create_roles,
                        member_of: a.member_of.clone(),
                    },
                )
                .await?;
            if a.json {
                output::json(&r)?;
            } else {
                for role in &r.created {
                    println!("Created role {role}.");
                }
                println!(
                    "{} now holds the credentials of {} (version {}); {} has no password until \
                     the first rotation.",
                    r.path, r.role, r.version, second
                );
                println!(
                    "Rotate with `coffer rotate {}`, or on a schedule with `coffer lifecycle set \
                     {} --rotate-every 30d`.",
                    r.path, r.path
                );
            }
        }
        PgCommand::Show(a) => {
            let r = client.postgres_info(&a.path).await?;
            if a.json {
                output::json(&r)?;
            } else {
                println!("path:        {}", r.path);
                println!("roles:       {}, {}", r.roles[0], r.roles[1]);
                println!("admin:       {}", r.admin);
                println!("connect url: {}", r.connect_url);
                let l = &r.labels;
                println!("current:     version {}", l.current);
                if let Some(p) = l.previous {
                    match &l.previous_until {
                        Some(t) => println!("previous:    version {p}, served until {t}"),
                        None => println!("previous:    version {p}"),
                    }
                }
                if let Some(p) = l.pending {
                    println!("pending:     version {p}");
                }
            }
        }
    }
    Ok(Status::Ok)
}

#[derive(Debug, Subcommand)]
pub enum RotationCommand {
    /// The secrets under a prefix with a rotation interval, an expiry or a
    /// staged rotation, worst first: expired, overdue, pending, expiring,
    /// due (soon), ok.
    #[command(after_help = "Examples:
  coffer rotation status
  coffer rotation status myapp/prod
  coffer rotation status myapp --check    # exit 7 if anything is expired or overdue")]
    Status(StatusArgs),
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Prefix (default: everything).
    #[arg(default_value = "")]
    pub prefix: String,
    /// Exit 7 when a secret is expired or overdue.
    #[arg(long)]
    pub check: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Secret path.
    pub path: String,
    /// The version whose value becomes current again.
    #[arg(value_parser = clap::value_parser!(u64).range(1..))]
    pub version: u64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// Source path.
    pub from: String,
    /// Target path (must not exist).
    pub to: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// Copy the secrets directly under FROM to TO: shows what would be
    /// created, updated, unchanged and left alone (names only), then applies
    /// it in one transaction when confirmed (or with --yes).
    #[command(after_help = "Examples:
  coffer env promote myapp/staging myapp/prod            # preview, then asks
  coffer env promote myapp/staging myapp/prod --dry-run
  coffer env promote myapp/staging myapp/prod --yes      # in a pipeline

Values are compared on the server; none is shown. The apply step checks
that nothing changed since the preview (exit 8 and nothing written if it
did). Secrets only in TO are left alone.")]
    Promote(EnvPromoteArgs),
}

#[derive(Debug, Args)]
pub struct EnvPromoteArgs {
    /// Source environment prefix.
    pub from: String,
    /// Target environment prefix.
    pub to: String,
    /// Only show the plan.
    #[arg(long, conflicts_with = "yes")]
    pub dry_run: bool,
    /// Apply without asking.
    #[arg(long)]
    pub yes: bool,
    /// Print JSON (the plan, and what was written).
    #[arg(long)]
    pub json: bool,
}

pub fn generate(a: GenerateArgs) -> anyhow::Result<Status> {
    let format = Format::parse(&a.format).expect("clap checks the format");
    let spec = match (format, a.bytes, a.words) {
        (Format::Words, Some(_), _) => {
            return Err(fail(
                Status::Usage,
                "--bytes does not apply to words; use --words N",
            ));
        }
        (Format::Words, None, Some(n)) => Spec::new(format, n),
        (_, _, Some(_)) => {
            return Err(fail(
                Status::Usage,
                "--words applies only to --format words",
            ));
        }
        (_, Some(n), None) => Spec::new(format, n),
        (_, None, None) => Ok(Spec::of(format)),
    }
    .map_err(|e| fail(Status::Usage, e.to_string()))?;
    let value = spec.generate();
    let mut out = std::io::stdout().lock();
    out.write_all(value.expose_secret().as_bytes())?;
    if out.is_terminal() {
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(Status::Ok)
}

fn print_labels(what: &str, r: &wire::RotateResponse) {
    let l = &r.labels;
    let mut line = format!("{what} {}: current is version {}", r.path, l.current);
    if let Some(p) = l.pending {
        line.push_str(&format!(", pending is version {p}"));
    }
    if let Some(p) = l.previous {
        match &l.previous_until {
            Some(t) => line.push_str(&format!(", previous (version {p}) is served until {t}")),
            None => line.push_str(&format!(", previous is version {p}")),
        }
    }
    if let Some(t) = &l.expires_at {
        line.push_str(&format!("; expires at {t}"));
    }
    println!("{line}.");
}

pub async fn rotate(g: &crate::cli::Global, a: RotateArgs) -> anyhow::Result<Status> {
    let client = settings::client(g)?;
    if a.cancel {
        let r = client.cancel_rotation(&a.path).await?;
        if a.json {
            output::json(&r)?;
        } else {
            print_labels("Cancelled the staged rotation of", &r);
        }
        return Ok(Status::Ok);
    }
    if let Some(spec) = &a.generate {
        coffer_core::lifecycle::parse_generator(spec)
            .map_err(|e| fail(Status::Usage, e.to_string()))?;
    }
    let value = if a.stdin {
        if input::stdin_is_terminal() {
            Some(input::prompt(&format!("New value for {}", a.path), true)?)
        } else {
            Some(input::strip_one_newline(input::read_stdin()?))
        }
    } else {
        None
    };
    if value.as_ref().is_some_and(|v| v.is_empty()) {
        return Err(fail(
            Status::Invalid,
            "refusing to rotate to an empty value",
        ));
    }
    let request = wire::RotateRequest {
        value: value.map(|v| WireValue::Text(v.expose_secret().to_string())),
        generate: a.generate.clone(),
        stage: a.stage,
        grace: a.grace.clone(),
        force: a.force,
    };
    let r = client.rotate_secret(&a.path, &request).await?;
    for w in &r.warnings {
        eprintln!("coffer: warning: {w}");
    }
    if a.json {
        output::json(&r)?;
    } else if a.stage {
        print_labels("Staged a rotation of", &r);
        println!("Promote it with `coffer promote {}`.", r.path);
    } else {
        print_labels("Rotated", &r);
    }
    Ok(Status::Ok)
}

pub async fn promote(g: &crate::cli::Global, a: PromoteArgs) -> anyhow::Result<Status> {
    let r = settings::client(g)?
        .promote(&a.path, a.grace.as_deref())
        .await?;
    if a.json {
        output::json(&r)?;
    } else {
        print_labels("Promoted", &r);
    }
    Ok(Status::Ok)
}

pub async fn expire(g: &crate::cli::Global, a: ExpireArgs) -> anyhow::Result<Status> {
    let request = wire::ExpiryRequest {
        expires_at: a.when.at.clone(),
        expires_in: a.when.within.clone(),
    };
    let r = settings::client(g)?.set_expiry(&a.path, &request).await?;
    if a.json {
        output::json(&r)?;
    } else {
        match &r.labels.expires_at {
            Some(t) => println!("{} expires at {t}.", r.path),
            None => println!("{} does not expire.", r.path),
        }
    }
    Ok(Status::Ok)
}

pub async fn lifecycle(g: &crate::cli::Global, c: LifecycleCommand) -> anyhow::Result<Status> {
    let client = settings::client(g)?;
    match c {
        LifecycleCommand::Set(a) => {
            let rule = client
                .set_rule(&wire::RuleRequest {
                    pattern: a.pattern,
                    min_bits: a.min_bits,
                    rotate_every: a.rotate_every,
                    generator: a.generator,
                    grace: a.grace,
                })
                .await?;
            if a.json {
                output::json(&rule)?;
            } else {
                println!("Lifecycle rule for {}: {}.", rule.pattern, describe(&rule));
            }
        }
        LifecycleCommand::Ls(f) => {
            let list = client.list_rules().await?;
            if f.json {
                output::json(&list)?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .rules
                    .iter()
                    .map(|r| {
                        vec![
                            r.pattern.clone(),
                            r.min_bits.map_or("-".into(), |b| b.to_string()),
                            r.rotate_every.clone().unwrap_or_else(|| "-".into()),
                            r.generator.clone().unwrap_or_else(|| "-".into()),
                            r.grace.clone().unwrap_or_else(|| "-".into()),
                            r.created_by.clone(),
                        ]
                    })
                    .collect();
                output::table(
                    &[
                        "PATTERN",
                        "MIN BITS",
                        "ROTATE EVERY",
                        "GENERATOR",
                        "GRACE",
                        "SET BY",
                    ],
                    &rows,
                )?;
            }
        }
        LifecycleCommand::Rm { pattern } => {
            client.delete_rule(&pattern).await?;
            println!("Lifecycle rule for {pattern} removed.");
        }
    }
    Ok(Status::Ok)
}

fn describe(r: &wire::RuleInfo) -> String {
    let mut parts = Vec::new();
    if let Some(b) = r.min_bits {
        parts.push(format!("values of at least {b} bits"));
    }
    if let Some(e) = &r.rotate_every {
        parts.push(format!("rotate every {e}"));
    }
    if let Some(s) = &r.generator {
        parts.push(format!("generator {s}"));
    }
    if let Some(s) = &r.grace {
        parts.push(format!("grace {s}"));
    }
    parts.join(", ")
}

pub async fn rotation(g: &crate::cli::Global, c: RotationCommand) -> anyhow::Result<Status> {
    let RotationCommand::Status(a) = c;
    let report = settings::client(g)?.rotation_status(&a.prefix).await?;
    if a.json {
        output::json(&report)?;
    } else if report.secrets.is_empty() {
        println!(
            "No secret under this prefix has a rotation schedule, an expiry or a staged rotation."
        );
    } else {
        let rows: Vec<Vec<String>> = report
            .secrets
            .iter()
            .map(|s| {
                vec![
                    s.path.clone(),
                    s.status.to_uppercase(),
                    match s.pending {
                        Some(p) => format!("{} (pending {p})", s.current),
                        None => s.current.to_string(),
                    },
                    s.changed_at.clone(),
                    match (&s.rotate_every, s.automatic) {
                        (Some(e), true) => format!("{e}, automatic"),
                        (Some(e), false) => format!("{e}, by hand"),
                        (None, _) => "-".into(),
                    },
                    s.due_at.clone().unwrap_or_else(|| "-".into()),
                    s.expires_at.clone().unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        output::table(
            &[
                "PATH", "STATUS", "CURRENT", "CHANGED", "ROTATION", "DUE", "EXPIRES",
            ],
            &rows,
        )?;
    }
    if a.check
        && report
            .secrets
            .iter()
            .any(|s| s.status == "expired" || s.status == "overdue")
    {
        return Ok(Status::Invalid);
    }
    Ok(Status::Ok)
}

pub async fn rollback(g: &crate::cli::Global, a: RollbackArgs) -> anyhow::Result<Status> {
    let r = settings::client(g)?.rollback(&a.path, a.version).await?;
    for w in &r.warnings {
        eprintln!("coffer: warning: {w}");
    }
    if a.json {
        output::json(&r)?;
    } else {
        println!(
            "Rolled {} back to the value of version {}: it is version {} now.",
            r.path, a.version, r.version
        );
    }
    Ok(Status::Ok)
}

pub async fn copy(
    g: &crate::cli::Global,
    a: CopyArgs,
    remove_source: bool,
) -> anyhow::Result<Status> {
    let r = settings::client(g)?
        .copy_secret(&a.from, &a.to, remove_source)
        .await?;
    if a.json {
        output::json(&r)?;
    } else {
        println!(
            "{} {} to {} with its history ({} version{}).",
            if remove_source { "Moved" } else { "Copied" },
            a.from.trim_matches('/'),
            r.path,
            r.version,
            if r.version == 1 { "" } else { "s" }
        );
    }
    Ok(Status::Ok)
}

pub async fn env(g: &crate::cli::Global, c: EnvCommand) -> anyhow::Result<Status> {
    let EnvCommand::Promote(a) = c;
    let client = settings::client(g)?;
    let preview = client
        .promote_env(&wire::PromoteEnvRequest {
            from: a.from.clone(),
            to: a.to.clone(),
            apply: None,
        })
        .await?;
    let changes = preview
        .plan
        .iter()
        .filter(|e| e.action == "create" || e.action == "update")
        .count();
    if !a.json {
        print_plan(&a.from, &a.to, &preview.plan)?;
    }
    let apply = if changes == 0 || a.dry_run {
        false
    } else if a.yes {
        true
    } else if std::io::stdin().is_terminal() && !a.json {
        eprint!("Apply {changes} change(s) to {}? [y/N] ", a.to);
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        matches!(answer.trim(), "y" | "Y" | "yes")
    } else {
        if !a.json {
            eprintln!("Nothing written: re-run with --yes to apply.");
        }
        false
    };
    if !apply {
        if a.json {
            output::json(&preview)?;
        } else if changes == 0 {
            println!("{} is up to date with {}.", a.to, a.from);
        }
        return Ok(Status::Ok);
    }
    let done = client
        .promote_env(&wire::PromoteEnvRequest {
            from: a.from,
            to: a.to.clone(),
            apply: Some(preview.plan),
        })
        .await?;
    if a.json {
        output::json(&done)?;
    } else {
        println!(
            "Promoted: {} version(s) written under {}.",
            done.written.len(),
            a.to
        );
    }
    Ok(Status::Ok)
}

fn print_plan(from: &str, to: &str, plan: &[wire::PlanEntry]) -> anyhow::Result<()> {
    println!("Promotion of {from} into {to}:");
    let rows: Vec<Vec<String>> = plan
        .iter()
        .map(|e| {
            vec![
                e.name.clone(),
                match e.action.as_str() {
                    "create" => "create".into(),
                    "update" => "update (differs)".into(),
                    "unchanged" => "unchanged".into(),
                    "only_in_target" => format!("left alone (only in {})", to.trim_matches('/')),
                    other => other.into(),
                },
                if e.from_version == 0 {
                    "-".into()
                } else {
                    e.from_version.to_string()
                },
                if e.to_version == 0 {
                    "-".into()
                } else {
                    e.to_version.to_string()
                },
            ]
        })
        .collect();
    output::table(&["NAME", "ACTION", "FROM VERSION", "TO VERSION"], &rows)
}
