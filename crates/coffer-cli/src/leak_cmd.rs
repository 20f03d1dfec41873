//! `coffer leak`: the response to a leaked secret in one command. It marks
//! the version compromised (so it never becomes current again; audited, and
//! an alert to the webhooks), lists every identity that read that version
//! (the audit log's readers, over the rotated files too), and rotates the
//! secret (or stages the rotation; a managed PostgreSQL secret rotates its
//! roles), printing what it did. No value is read or printed.

use clap::Args;
use coffer_api::AuditReadersResponse;
use coffer_api::leak::{CompromiseRequest, CompromiseResponse};
use coffer_api::lifecycle::{RotateRequest, RotateResponse};
use coffer_client::{Client, ErrorKind};
use serde::Serialize;

use crate::exit::{Status, fail};
use crate::{output, settings};

#[derive(Debug, Args)]
pub struct LeakArgs {
    /// Secret path.
    pub path: String,
    /// The version that leaked (default: the one `current` names).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub version: Option<u64>,
    /// Where or how it leaked (4 to 500 characters on one line; never the
    /// value itself).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// Rotate now: a new value becomes current (the default when the
    /// leaked version is the current one).
    #[arg(long, conflicts_with_all = ["stage", "no_rotate"])]
    pub rotate: bool,
    /// Stage the rotation: the new value becomes `pending`, to promote with
    /// `coffer promote` once consumers are ready.
    #[arg(long, conflicts_with = "no_rotate")]
    pub stage: bool,
    /// Only mark the version and list its readers.
    #[arg(long)]
    pub no_rotate: bool,
    /// Generate the new value with this spec (FORMAT[:N]) instead of the
    /// lifecycle rule's generator.
    #[arg(long, value_name = "SPEC", conflicts_with = "no_rotate")]
    pub generate: Option<String>,
    /// How long the leaked value stays readable as `previous` after the
    /// rotation (default: the lifecycle rule's, else 24h; `0s` ends it at
    /// once).
    #[arg(long, value_name = "DURATION", conflicts_with = "no_rotate")]
    pub grace: Option<String>,
    /// Rotate a managed PostgreSQL secret even while its previous
    /// credentials are in their grace period.
    #[arg(long, conflicts_with = "no_rotate")]
    pub force: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// What `coffer leak` did, as `--json` prints it.
#[derive(Serialize)]
struct Report {
    marked: CompromiseResponse,
    #[serde(skip_serializing_if = "Option::is_none")]
    readers: Option<AuditReadersResponse>,
    /// Why the readers could not be listed.
    #[serde(skip_serializing_if = "Option::is_none")]
    readers_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rotation: Option<RotateResponse>,
    /// `rotated`, `staged` or `none`.
    rotation_done: &'static str,
}

pub async fn leak(g: &crate::cli::Global, a: LeakArgs) -> anyhow::Result<Status> {
    if let Some(spec) = &a.generate {
        coffer_core::lifecycle::parse_generator(spec)
            .map_err(|e| fail(Status::Usage, e.to_string()))?;
    }
    let client = settings::client(g)?;
    let marked = client
        .mark_compromised(
            &a.path,
            &CompromiseRequest {
                version: a.version,
                reason: a.reason.clone(),
            },
        )
        .await?;
    if !a.json {
        print_mark(&marked);
    }
    let (readers, readers_error) = readers(&client, &marked).await?;
    if !a.json {
        print_readers(&marked, readers.as_ref(), readers_error.as_deref());
    }
    let rotate = !a.no_rotate && (a.rotate || a.stage || marked.is_current);
    let rotation = if rotate {
        let request = RotateRequest {
            value: None,
            generate: a.generate.clone(),
            stage: a.stage,
            grace: a.grace.clone(),
            force: a.force,
        };
        match client.rotate_secret(&marked.path, &request).await {
            Ok(r) => Some(r),
            Err(e) => {
                // The mark and the readers stand; say what is left to do.
                let status = crate::exit::status_of(&anyhow::Error::from(e.clone()));
                return Err(fail(
                    status,
                    format!(
                        "version {} of {} is marked compromised, but the rotation failed: {e}; \
                         rotate it with `coffer rotate {}`",
                        marked.version, marked.path, marked.path
                    ),
                ));
            }
        }
    } else {
        None
    };
    for w in rotation.iter().flat_map(|r| &r.warnings) {
        eprintln!("coffer: warning: {w}");
    }
    let rotation_done = match (&rotation, a.stage) {
        (None, _) => "none",
        (Some(_), true) => "staged",
        (Some(_), false) => "rotated",
    };
    if a.json {
        output::json(&Report {
            marked,
            readers,
            readers_error,
            rotation,
            rotation_done,
        })?;
    } else {
        print_rotation(&marked, rotation.as_ref(), a.stage);
    }
    Ok(Status::Ok)
}

/// Who read the marked version, over the log's whole history. A token
/// without `admin` on `sys/audit` gets the mark and the rotation done and a
/// note that the readers need an auditor; other failures stop.
async fn readers(
    client: &Client,
    marked: &CompromiseResponse,
) -> anyhow::Result<(Option<AuditReadersResponse>, Option<String>)> {
    match client
        .audit_readers(&marked.path, Some(marked.version), true)
        .await
    {
        Ok(r) => Ok((Some(r), None)),
        Err(e) if e.kind == ErrorKind::Forbidden => Ok((None, Some(e.message))),
        Err(e) => Err(e.into()),
    }
}

fn print_mark(m: &CompromiseResponse) {
    let path = output::visible(&m.path);
    if m.newly_marked {
        println!(
            "Marked version {} of {path} compromised: it can never become current again.",
            m.version
        );
    } else {
        println!(
            "Version {} of {path} was marked compromised already, at {} ({}).",
            m.version,
            m.compromised_at,
            output::visible(&m.reason)
        );
    }
}

fn print_readers(m: &CompromiseResponse, r: Option<&AuditReadersResponse>, error: Option<&str>) {
    let Some(r) = r else {
        println!(
            "Could not list who read it ({}): ask an auditor to run `coffer audit readers {} \
             --version {}`.",
            error.unwrap_or("refused"),
            output::visible(&m.path),
            m.version
        );
        return;
    };
    if r.readers.is_empty() {
        println!(
            "No one read version {} in the audit log ({} file(s) searched).",
            m.version,
            r.files.len().max(1)
        );
        return;
    }
    println!(
        "Read by {} identit{} (every one may hold the value):",
        r.readers.len(),
        if r.readers.len() == 1 { "y" } else { "ies" }
    );
    for reader in &r.readers {
        println!(
            "  {} {} ({}): {} read(s), first {}, last {}, from {}{}",
            output::visible(&reader.kind),
            output::visible(&reader.name),
            output::visible(&reader.accessor),
            reader.reads,
            reader.first,
            reader.last,
            reader
                .sources
                .iter()
                .map(|s| output::visible(s))
                .collect::<Vec<_>>()
                .join(", "),
            if reader.breakglass {
                " (break-glass)"
            } else {
                ""
            }
        );
    }
}

fn print_rotation(m: &CompromiseResponse, r: Option<&RotateResponse>, staged: bool) {
    let path = output::visible(&m.path);
    let Some(r) = r else {
        if m.is_current {
            println!(
                "Not rotated: readers still get the compromised value. Rotate with `coffer \
                 rotate {path}`."
            );
        } else {
            println!("Not rotated: version {} is not current.", m.version);
        }
        return;
    };
    let l = &r.labels;
    if staged {
        println!(
            "Staged a rotation: pending is version {}; current is still version {}. Promote it \
             with `coffer promote {path}`.",
            l.pending.unwrap_or(0),
            l.current
        );
        return;
    }
    println!("Rotated {path}: current is version {}.", l.current);
    if l.previous == Some(m.version) {
        match &l.previous_until {
            Some(t) => println!(
                "The compromised version {} stays readable as previous until {t}.",
                m.version
            ),
            None => println!("The compromised version {} is previous.", m.version),
        }
    }
}
