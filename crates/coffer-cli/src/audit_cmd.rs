//! `coffer audit`: verify the log, search it, list who read a secret,
//! compute the HMAC under which a token or name appears in it, and rotate it.
//!
//! `verify`, `hash` and `rotate` need the server (the audit key never leaves it).
//! `query` and `readers` ask the server (admin), or read a log file directly
//! with `--file`, which works with the server stopped. `verify-webhook` checks
//! a webhook delivery's signature, for receivers, with no server at all.

use std::io::BufReader;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use coffer_api::{AuditRecordsResponse, Record};
use coffer_audit::query;

use crate::cli::Global;
use crate::exit::{Status, fail};
use crate::{input, output, settings};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the audit log's hash chain and head: names the first record that
    /// was inserted, deleted, edited or reordered, or a truncation. Exits 7
    /// when the log does not verify. Admin (`admin` on `sys/audit`).
    #[command(after_help = "Examples:
  coffer audit verify                                 # every log file the server writes
  coffer audit verify --rotated                       # and every rotated file, in order
  coffer audit verify --file /var/log/coffer/audit.log.20261204T000000Z   # one rotated file
  coffer audit verify --file /var/log/coffer/siem-copy.jsonl --stream    # a collector's copy
  coffer audit verify --json")]
    Verify {
        /// A file on the server, in the directory of one of its audit logs.
        #[arg(long, value_name = "PATH")]
        file: Option<String>,
        /// Also every file rotation set aside beside each log, oldest first,
        /// and that each continues the one before it (none missing between).
        #[arg(long, conflicts_with = "stream")]
        rotated: bool,
        /// The --file is a collector's copy of a standard-output or socket
        /// sink: each run of the server is a chain of its own, verified
        /// alone (a copy has no head file to check its end against).
        #[arg(long, requires = "file")]
        stream: bool,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Search the audit log.
    #[command(
        after_help = "Times are RFC 3339 (2026-11-23T10:00:00Z), a date (2026-11-23), or a
duration ago (15m, 24h, 7d).

Examples:
  coffer audit query --path 'payments/prod/*' --since 24h
  coffer audit query --actor alice --outcome denied
  coffer audit query --type alert --json
  coffer audit query --file /var/log/coffer/audit.log --op secret.read   # offline"
    )]
    Query(QueryArgs),
    /// Every identity that read a secret, over the log's whole history (the
    /// files rotation set aside, then the live one): for leak response.
    #[command(after_help = "Examples:
  coffer audit readers payments/prod/DB_PASSWORD
  coffer audit readers payments/prod/DB_PASSWORD --version 3 --json
  coffer audit readers app/prod/KEY --file ./audit.log      # offline")]
    Readers {
        /// The secret.
        path: String,
        /// Only reads of this version.
        #[arg(long)]
        version: Option<u64>,
        /// Read this log file directly instead of asking the server.
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
        /// Only the live file, not the files rotation set aside.
        #[arg(long)]
        live_only: bool,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Print the HMAC under which audit records show a value (a token, a
    /// login name). The value is read from stdin or prompted for.
    #[command(after_help = "Examples:
  coffer audit hash < leaked-token.txt
  coffer audit query --actor \"$(coffer audit hash < leaked-token.txt)\"")]
    Hash,
    /// Start new audit log files while the server runs. Each file is renamed
    /// to FILE.YYYYMMDDTHHMMSSZ (UTC) with its head file, and a new one starts
    /// at its path; the old file's last record and the new file's first say
    /// so, with the old file's last chain link. Sending the server SIGHUP does
    /// the same. Admin (`admin` on `sys/audit`).
    #[command(after_help = "Examples:
  coffer audit rotate
  coffer audit verify --file /var/log/coffer/audit.log.20261204T000000Z
  find /var/log/coffer -name 'audit.log.2*' -mtime +90 -delete   # retention")]
    Rotate {
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Acknowledge a gap that `coffer audit verify` reports: records lost
    /// or rewritten while the server was stopped, found when it started.
    /// Investigate first; the acknowledgement is itself a record, with who
    /// and why, after which verify passes that gap (and still lists it).
    /// Admin (`admin` on `sys/audit`).
    #[command(
        name = "acknowledge-gap",
        after_help = "Examples:
  coffer audit verify                  # FAILED ... records 812 to 840 were lost ... record 841
  coffer audit acknowledge-gap --record 841 --reason 'disk restored from the 02:00 snapshot; INC-123'
  coffer audit acknowledge-gap --file /var/log/coffer/audit.log.20261204T000000Z --record 17 --reason '...'"
    )]
    AcknowledgeGap {
        /// The number of the record that reports the gap (verify names it).
        #[arg(long, value_name = "N")]
        record: u64,
        /// Why: what the investigation found (kept in the audit log).
        #[arg(long)]
        reason: String,
        /// The log file, on the server (default: its first log file).
        #[arg(long, value_name = "PATH")]
        file: Option<String>,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Check a webhook delivery's signature (its `coffer-signature` header)
    /// against its body, read from stdin, with the signing key from
    /// COFFER_WEBHOOK_SECRET or --secret-file. Exits 0 when it matches and is
    /// fresh, 7 when not. Needs no server.
    #[command(
        name = "verify-webhook",
        after_help = "Examples:
  coffer audit verify-webhook --secret-file /etc/receiver/coffer-webhook.key \\
      --signature \"$HTTP_COFFER_SIGNATURE\" < body.json"
    )]
    VerifyWebhook {
        /// The `coffer-signature` header's value: t=SECONDS,v1=HEX.
        #[arg(long, value_name = "HEADER")]
        signature: String,
        /// A file holding the signing key (the server's
        /// audit.webhook_secret_file).
        #[arg(long, value_name = "PATH")]
        secret_file: Option<PathBuf>,
        /// How many seconds a signature's time may be from this clock.
        #[arg(long, value_name = "SECS", default_value_t = coffer_crypto::webhook::DEFAULT_TOLERANCE_SECS)]
        tolerance: u64,
    },
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// A secret path, a folder (`app/prod/`) or a pattern (`*/prod/*`).
    #[arg(long)]
    path: Option<String>,
    /// A user or token name, an accessor, or an `hmac-sha256:` tag.
    #[arg(long)]
    actor: Option<String>,
    /// Records at or after this time.
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Records before this time.
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// ok, denied or error.
    #[arg(long, value_parser = ["ok", "denied", "error"])]
    outcome: Option<String>,
    /// An operation, such as secret.read or token.create.
    #[arg(long)]
    op: Option<String>,
    /// request, alert or notice.
    #[arg(long = "type", value_name = "TYPE", value_parser = ["request", "alert", "notice"])]
    kind: Option<String>,
    /// Only machine logins through a role that lacks a binding today's
    /// rules require (one stored before the rule): the roles to rewrite.
    #[arg(long)]
    needs_binding: bool,
    /// At most this many records (the most recent).
    #[arg(long, default_value_t = 1000)]
    limit: usize,
    /// Read this log file directly instead of asking the server.
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
    /// Also the files rotation set aside beside the log, oldest first: its
    /// whole history.
    #[arg(long)]
    rotated: bool,
    /// Print JSON for scripts.
    #[arg(long)]
    json: bool,
}

pub async fn run(g: &Global, cmd: AuditCommand) -> anyhow::Result<Status> {
    match cmd {
        AuditCommand::Verify {
            file,
            rotated,
            stream,
            json,
        } => verify(g, file, rotated, stream, json).await,
        AuditCommand::Query(q) => query_cmd(g, q).await,
        AuditCommand::Readers {
            path,
            version,
            file,
            live_only,
            json,
        } => readers(g, path, version, file, !live_only, json).await,
        AuditCommand::Rotate { json } => {
            let r = settings::client(g)?.audit_rotate().await?;
            if json {
                output::json(&r)?;
            } else {
                for f in &r.rotated {
                    println!(
                        "{}: {} records moved to {}; a new file started",
                        output::visible(&f.file),
                        f.records,
                        output::visible(&f.to)
                    );
                }
                for f in &r.failed {
                    println!(
                        "{}: NOT rotated: {}",
                        output::visible(&f.file),
                        output::visible(&f.reason)
                    );
                }
                for f in &r.removed {
                    println!("{}: removed (retention)", output::visible(f));
                }
                for f in &r.not_removed {
                    println!(
                        "{}: NOT removed (retention): {}",
                        output::visible(&f.file),
                        output::visible(&f.reason)
                    );
                }
            }
            Ok(if r.ok { Status::Ok } else { Status::Other })
        }
        AuditCommand::AcknowledgeGap {
            record,
            reason,
            file,
            json,
        } => {
            let r = settings::client(g)?
                .audit_acknowledge_gap(file.as_deref(), record, &reason)
                .await?;
            if json {
                output::json(&r)?;
            } else {
                println!(
                    "{}: the gap of {} (reported by record {}) is acknowledged",
                    output::visible(&r.file),
                    r.gap.describe(),
                    r.gap.record
                );
            }
            Ok(Status::Ok)
        }
        AuditCommand::VerifyWebhook {
            signature,
            secret_file,
            tolerance,
        } => verify_webhook(&signature, secret_file.as_deref(), tolerance),
        AuditCommand::Hash => {
            let value = if input::stdin_is_terminal() {
                input::prompt("Value to hash", false)?
            } else {
                input::strip_one_newline(input::read_stdin()?)
            };
            let h = settings::client(g)?
                .audit_hash(value.expose_secret())
                .await?;
            println!("{}", h.hmac);
            Ok(Status::Ok)
        }
    }
}

fn verify_webhook(
    signature: &str,
    secret_file: Option<&std::path::Path>,
    tolerance: u64,
) -> anyhow::Result<Status> {
    let Some(key) = coffer_server::webhook::signing_key(secret_file)
        .map_err(|e| fail(Status::Usage, format!("{:#}", anyhow::Error::new(e))))?
    else {
        return Err(fail(
            Status::Usage,
            "give the signing key in COFFER_WEBHOOK_SECRET or --secret-file",
        ));
    };
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut std::io::stdin(), &mut body)?;
    let now = coffer_server::webhook::unix_now();
    match key.verify(signature, &body, now, tolerance) {
        Ok(t) => {
            println!(
                "signature ok: signed {} s {}",
                now.abs_diff(t),
                if t <= now {
                    "ago"
                } else {
                    "ahead of this clock"
                }
            );
            Ok(Status::Ok)
        }
        Err(e) => Err(fail(
            Status::Invalid,
            format!("signature NOT accepted: {e}"),
        )),
    }
}

async fn verify(
    g: &Global,
    file: Option<String>,
    rotated: bool,
    stream: bool,
    json: bool,
) -> anyhow::Result<Status> {
    let client = settings::client(g)?;
    let r = match (&file, stream) {
        (Some(f), true) => client.audit_verify_stream(f).await?,
        _ => client.audit_verify(file.as_deref(), rotated).await?,
    };
    if json {
        output::json(&r)?;
    } else {
        for f in &r.files {
            let shown = output::visible(&f.file);
            let reason = f.problem.as_ref().map(|p| output::visible(&p.reason));
            if let Some(c) = &f.chain {
                let end = if c.closed {
                    "ends with a clean stop"
                } else {
                    "does not end with a clean stop (the server is running, or stopped without closing the log, or records after it are missing)"
                };
                match (&f.problem, &reason) {
                    (Some(p), Some(reason)) => println!(
                        "{shown}, chain {} from line {}: FAILED at line {} (record {}): {reason}",
                        c.number, c.first_line, p.line, p.seq
                    ),
                    _ => println!(
                        "{shown}, chain {} from line {}: ok, {} records; {end}",
                        c.number, c.first_line, f.records
                    ),
                }
                continue;
            }
            match (&f.problem, &reason) {
                (Some(p), Some(reason)) => println!(
                    "{shown}: FAILED at line {} (record {}): {reason}",
                    p.line, p.seq
                ),
                _ => println!(
                    "{shown}: ok, {} records{} (end checked against the {} head)",
                    f.records,
                    if f.unkeyed > 0 {
                        format!(", {} written while sealed", f.unkeyed)
                    } else {
                        String::new()
                    },
                    output::visible(&f.head)
                ),
            }
            for gap in &f.gaps {
                let what = gap.describe();
                println!(
                    "{shown}: gap: {what} lost while the server was stopped (noticed {}, record {}): {}",
                    output::visible(&gap.noticed),
                    gap.record,
                    if gap.acknowledged {
                        "acknowledged"
                    } else {
                        "NOT acknowledged"
                    }
                );
            }
        }
    }
    Ok(if r.ok { Status::Ok } else { Status::Invalid })
}

/// Turns `15m`/`24h`/`7d` into a time that long ago; leaves other input to
/// the time parser.
fn resolve_time(input: Option<String>) -> anyhow::Result<Option<String>> {
    let Some(t) = input else { return Ok(None) };
    if let Ok(ms) = coffer_core::duration::parse_duration_ms(&t) {
        let then = coffer_core::now_ms().saturating_sub(ms);
        return Ok(Some(coffer_server::rfc3339(then)));
    }
    query::normalize_time(&t)
        .map(Some)
        .map_err(|e| fail(Status::Usage, e))
}

async fn query_cmd(g: &Global, q: QueryArgs) -> anyhow::Result<Status> {
    let since = resolve_time(q.since)?;
    let until = resolve_time(q.until)?;
    let found = match &q.file {
        Some(file) => {
            let filter = coffer_server::filter_from(
                q.path.as_deref(),
                q.actor.as_deref(),
                since.as_deref(),
                until.as_deref(),
                q.outcome.as_deref(),
                q.op.as_deref(),
                q.kind.as_deref(),
                q.needs_binding,
            )
            .map_err(|e| fail(Status::Usage, e))?;
            let files = offline_files(file, q.rotated)?;
            let found = query::search(open_files(&files)?, &filter, q.limit)?;
            AuditRecordsResponse {
                file: file.display().to_string(),
                files: files.iter().map(|f| f.display().to_string()).collect(),
                records: found.records,
                truncated: found.truncated,
                unreadable: found.unreadable,
            }
        }
        None => {
            settings::client(g)?
                .audit_records(&coffer_client::AuditQuery {
                    path: q.path,
                    actor: q.actor,
                    since,
                    until,
                    outcome: q.outcome,
                    op: q.op,
                    kind: q.kind,
                    needs_binding: q.needs_binding,
                    limit: Some(q.limit),
                    rotated: q.rotated,
                })
                .await?
        }
    };
    if q.json {
        output::json(&found)?;
    } else {
        let rows: Vec<Vec<String>> = found.records.iter().map(row).collect();
        output::table(
            &[
                "TIME", "OUTCOME", "STATUS", "ACTOR", "SOURCE", "OP", "PATH", "DETAIL",
            ],
            &rows,
        )?;
        if found.truncated {
            eprintln!(
                "(only the most recent {} matches are shown; narrow the search or raise --limit)",
                found.records.len()
            );
        }
    }
    if found.unreadable > 0 {
        eprintln!(
            "warning: {} lines of {} are not audit records; run `coffer audit verify`",
            found.unreadable,
            output::visible(&found.file)
        );
    }
    Ok(Status::Ok)
}

/// An identity as people see it: never a bare name (a token can be named
/// anything, `root` included), always its kind and its accessor, which no
/// one chooses: `service token "ci" (acc_...)`, `user "alice" (acc_...)`.
pub(crate) fn who(kind: &str, name: &str, accessor: &str) -> String {
    let kind = match kind {
        "service" => "service token",
        "human" => "user",
        other => other,
    };
    format!("{kind} \"{name}\" ({accessor})")
}

fn row(r: &Record) -> Vec<String> {
    let actor = r
        .actor
        .as_ref()
        .map_or_else(|| "-".to_string(), |a| who(&a.kind, &a.name, &a.accessor));
    let detail = match (&r.alert, &r.message) {
        (Some(a), Some(m)) => format!("ALERT {}: {m}", a.rule),
        (None, Some(m)) => m.clone(),
        _ => {
            let mut d = Vec::new();
            if let Some(v) = r.version {
                d.push(format!("v{v}"));
            }
            if let Some(e) = &r.error {
                d.push(e.clone());
            }
            if r.breakglass {
                d.push("break-glass".into());
            }
            if r.needs_binding.is_some() {
                d.push("role-needs-binding".into());
            }
            d.join(" ")
        }
    };
    vec![
        r.time.clone(),
        r.outcome.map_or("-", |o| o.as_str()).to_string(),
        r.status.map_or_else(|| "-".into(), |s| s.to_string()),
        actor,
        r.source.clone().unwrap_or_else(|| "-".into()),
        r.op.clone().unwrap_or_else(|| "-".into()),
        r.path.clone().unwrap_or_else(|| "-".into()),
        detail,
    ]
}

fn open(file: &std::path::Path) -> anyhow::Result<std::fs::File> {
    std::fs::File::open(file).map_err(|e| {
        let status = if e.kind() == std::io::ErrorKind::NotFound {
            Status::NotFound
        } else {
            Status::Other
        };
        fail(status, format!("cannot read {}: {e}", file.display()))
    })
}

/// `file`, or (`rotated`) the files rotation set aside beside it and then it.
fn offline_files(file: &std::path::Path, rotated: bool) -> anyhow::Result<Vec<PathBuf>> {
    open(file)?;
    if !rotated {
        return Ok(vec![file.to_path_buf()]);
    }
    coffer_audit::with_rotated(file).map_err(|e| {
        fail(
            Status::Other,
            format!("cannot list the files beside {}: {e}", file.display()),
        )
    })
}

/// The files as one stream of lines, in order.
fn open_files(files: &[PathBuf]) -> anyhow::Result<BufReader<Box<dyn std::io::Read + Send>>> {
    for f in files {
        open(f)?;
    }
    coffer_audit::open_chained(files)
        .map_err(|e| fail(Status::Other, format!("cannot read the audit log: {e}")))
}

async fn readers(
    g: &Global,
    path: String,
    version: Option<u64>,
    file: Option<PathBuf>,
    rotated: bool,
    json: bool,
) -> anyhow::Result<Status> {
    let r = match &file {
        Some(f) => {
            let canonical = coffer_core::SecretPath::parse(&path)
                .map_err(|e| fail(Status::Usage, e.to_string()))?
                .as_str()
                .to_string();
            let files = offline_files(f, rotated)?;
            let (readers, unreadable) = query::readers(open_files(&files)?, &canonical, version)?;
            coffer_api::AuditReadersResponse {
                path: canonical,
                version,
                readers,
                files: files.iter().map(|f| f.display().to_string()).collect(),
                unreadable,
            }
        }
        None => {
            settings::client(g)?
                .audit_readers(&path, version, rotated)
                .await?
        }
    };
    if json {
        output::json(&r)?;
    } else if r.readers.is_empty() {
        eprintln!("No one has read {} in this log.", output::visible(&r.path));
    }
    if !json {
        // For leak response, say how far back this looked.
        let searched = match &r.files[..] {
            [] => "the live log".to_string(),
            [one] => one.clone(),
            [first, .., last] => format!("{} files, {first} to {last}", r.files.len()),
        };
        let searched = output::visible(&searched);
        let hint = if rotated {
            ""
        } else {
            "; without --live-only, the files rotation set aside are searched too"
        };
        eprintln!("(searched {searched}{hint})");
    }
    if !json && !r.readers.is_empty() {
        let rows: Vec<Vec<String>> = r
            .readers
            .iter()
            .map(|x| {
                vec![
                    who(&x.kind, &x.name, &x.accessor),
                    x.reads.to_string(),
                    x.first.clone(),
                    x.last.clone(),
                    x.versions
                        .iter()
                        .map(u64::to_string)
                        .collect::<Vec<_>>()
                        .join(","),
                    x.sources.iter().cloned().collect::<Vec<_>>().join(","),
                    if x.breakglass { "break-glass" } else { "" }.to_string(),
                ]
            })
            .collect();
        output::table(
            &["WHO", "READS", "FIRST", "LAST", "VERSIONS", "FROM", ""],
            &rows,
        )?;
    }
    Ok(Status::Ok)
}
