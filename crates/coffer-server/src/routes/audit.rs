//! The audit API (`/api/v1/sys/audit/...`): verifying the log's chains,
//! searching it, who read a secret, tagging a value, rotating the files and
//! acknowledging a gap. Every call needs `admin` on `sys/audit`.

use std::io::BufReader;
use std::path::{Path, PathBuf};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use coffer_api::{self as api, codes};
use coffer_audit::query::{self, Filter};
use coffer_audit::{Kind, Outcome, Record};
use coffer_core::Operation;
use serde::Deserialize;

use crate::audit_layer::{actor, unavailable};
use crate::error::ApiError;
use crate::extract::{Auth, JsonBody, JsonOrEmpty, UrlQuery};
use crate::state::AppState;

const AUDIT_TARGET: &str = "sys/audit";

/// Resolves the file an operator named: it must be one of the log files or
/// sit in the directory of one (a rotated or copied log), so the endpoint
/// cannot be used to probe the rest of the server's file system.
fn allowed_file(state: &AppState, named: &str) -> Result<PathBuf, ApiError> {
    let refuse = || {
        ApiError::invalid(
            "the file must be an audit log file of this server, or a file in the same directory",
        )
    };
    let path = std::fs::canonicalize(named).map_err(|_| refuse())?;
    let allowed = state.auditor.files().iter().any(|f| {
        let dir = f.parent().and_then(|d| std::fs::canonicalize(d).ok());
        dir.is_some_and(|d| path.parent() == Some(d.as_path()))
    });
    if allowed && path.is_file() {
        Ok(path)
    } else {
        Err(refuse())
    }
}

pub(super) async fn verify(
    State(st): State<AppState>,
    Auth(id): Auth,
    JsonOrEmpty(req): JsonOrEmpty<api::AuditVerifyRequest>,
) -> Result<Json<api::AuditVerifyResponse>, ApiError> {
    st.coffer.authorize(&id, Operation::Admin, AUDIT_TARGET)?;
    let key = st
        .coffer
        .audit_key()
        .ok_or(coffer_core::CoreError::Sealed)?;
    if req.stream {
        let Some(f) = &req.file else {
            return Err(ApiError::invalid(
                "\"stream\" verifies a collector's copy: name it with \"file\"",
            ));
        };
        if req.rotated {
            return Err(ApiError::invalid(
                "\"stream\" and \"rotated\" do not go together: a stream sink is never rotated",
            ));
        }
        let file = allowed_file(&st, f)?;
        return verify_copy(file, key).await.map(Json);
    }
    let live = st.auditor.heads();
    let logs: Vec<PathBuf> = match &req.file {
        Some(f) => vec![allowed_file(&st, f)?],
        None => live.iter().map(|(p, _)| p.clone()).collect(),
    };
    if logs.is_empty() {
        return Err(ApiError::invalid(
            "this server writes no audit log file (only stdout or sockets); name one with \"file\"",
        ));
    }
    // Each log alone, or its whole history, oldest file first.
    let histories: Vec<Vec<PathBuf>> = if req.rotated {
        logs.iter()
            .map(|log| history(log.clone(), true))
            .collect::<Result<_, _>>()?
    } else {
        logs.into_iter().map(|log| vec![log]).collect()
    };
    let reports = tokio::task::spawn_blocking(move || {
        histories
            .into_iter()
            .flat_map(|files| verify_history(&files, &key, &live))
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|_| verification_failed())?;
    Ok(Json(api::AuditVerifyResponse {
        ok: reports.iter().all(|r| r.ok),
        files: reports,
    }))
}

/// A verification that did not finish (its blocking task panicked).
fn verification_failed() -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        codes::INTERNAL,
        "verification failed",
    )
}

/// Verifies a collector's copy of a stream sink, chain by chain.
pub(super) async fn verify_copy(
    file: PathBuf,
    key: coffer_crypto::AuditKey,
) -> Result<api::AuditVerifyResponse, ApiError> {
    let name = file.display().to_string();
    let chains = tokio::task::spawn_blocking(move || {
        std::fs::File::open(&file).and_then(|f| coffer_audit::chain::verify_stream(f, &key))
    })
    .await
    .map_err(|_| verification_failed())?
    .map_err(|e| ApiError::invalid(format!("cannot read {name}: {e}")))?;
    if chains.is_empty() {
        return Err(ApiError::invalid(format!(
            "{name} is empty: there is nothing to verify"
        )));
    }
    let files: Vec<api::AuditFileReport> = chains
        .into_iter()
        .enumerate()
        .map(|(i, c)| api::AuditFileReport {
            file: name.clone(),
            ok: c.report.ok(),
            records: c.report.records,
            unkeyed: c.report.unkeyed,
            head: "none".into(),
            problem: c.report.problem,
            gaps: c.report.gaps,
            chain: Some(api::AuditStreamChain {
                number: i as u64 + 1,
                first_line: c.first_line,
                closed: c.closed,
            }),
        })
        .collect();
    Ok(api::AuditVerifyResponse {
        ok: files.iter().all(|r| r.ok),
        files,
    })
}

/// Verifies files that follow one another (a log's rotated files, then the
/// log), each alone, and then that each one continues the one before it:
/// a file missing from the middle of a history, or one put in its place,
/// fails the file after the gap. A history may begin after a rotation
/// (older files expire); it may not have holes.
fn verify_history(
    files: &[PathBuf],
    key: &coffer_crypto::AuditKey,
    live: &[(PathBuf, coffer_audit::Head)],
) -> Vec<api::AuditFileReport> {
    let mut out = Vec::with_capacity(files.len());
    let mut chains = Vec::with_capacity(files.len());
    let mut previous: Option<coffer_audit::VerifyReport> = None;
    for file in files {
        let (mut report, chain) = verify_file(file, key, live);
        // A file whose only problem is a gap that a later file may
        // acknowledge still vouches for the next one.
        let only_gap = chain
            .as_ref()
            .is_some_and(|c| c.gap_problem && report.problem == c.problem);
        if let (Some(prev), Some(this)) = (&previous, &chain)
            && report.ok
            && !coffer_audit::chain::continues(prev, this)
        {
            report.ok = false;
            report.problem = Some(coffer_audit::Problem {
                line: 1,
                seq: 1,
                reason: format!(
                    "it does not continue from {}: its first record does not name that file's last one, so a rotated file between them is missing or was replaced",
                    out.last()
                        .map_or("", |r: &api::AuditFileReport| r.file.as_str())
                ),
            });
        }
        // Only an intact file vouches for the next one.
        previous = chain.clone().filter(|_| report.ok || only_gap);
        chains.push((chain, only_gap));
        out.push(report);
    }
    // A gap is acknowledged by a record in its own file or in any later
    // one (acknowledgements go to the live file).
    let mut later: Vec<[u8; 32]> = Vec::new();
    for (report, (chain, only_gap)) in out.iter_mut().zip(chains).rev() {
        let Some(mut c) = chain else { continue };
        c.settle_gaps(&later);
        report.gaps = c.gaps.clone();
        if only_gap {
            report.ok = c.ok();
            report.problem = c.problem.clone();
        }
        later.extend(c.acks);
    }
    out
}

fn verify_file(
    file: &Path,
    key: &coffer_crypto::AuditKey,
    live: &[(PathBuf, coffer_audit::Head)],
) -> (api::AuditFileReport, Option<coffer_audit::VerifyReport>) {
    let canonical = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    let live_head = live
        .iter()
        .find_map(|(p, h)| (std::fs::canonicalize(p).is_ok_and(|p| p == canonical)).then_some(*h));
    let (head, source) = match live_head {
        Some(h) => (Some(h), "live"),
        None => match coffer_audit::chain::read_head_file(file, Some(key)) {
            coffer_audit::chain::HeadFileState::Valid(h) => (Some(h), "head-file"),
            coffer_audit::chain::HeadFileState::Invalid => {
                let report = api::AuditFileReport {
                    file: file.display().to_string(),
                    ok: false,
                    records: 0,
                    unkeyed: 0,
                    head: "none".into(),
                    problem: Some(coffer_audit::Problem {
                        line: 0,
                        seq: 0,
                        reason: "its head file does not verify (edited, or written while sealed)"
                            .into(),
                    }),
                    chain: None,
                    gaps: Vec::new(),
                };
                return (report, None);
            }
            coffer_audit::chain::HeadFileState::Missing => (None, "none"),
        },
    };
    let result = std::fs::File::open(file).and_then(|f| {
        let reader = BufReader::with_capacity(coffer_audit::chain::READ_BUFFER, f);
        coffer_audit::chain::verify(reader, key, head)
    });
    match result {
        Ok(r) => (
            api::AuditFileReport {
                file: file.display().to_string(),
                ok: r.ok(),
                records: r.records,
                unkeyed: r.unkeyed,
                head: source.into(),
                problem: r.problem.clone(),
                chain: None,
                gaps: r.gaps.clone(),
            },
            Some(r),
        ),
        Err(e) => (
            api::AuditFileReport {
                file: file.display().to_string(),
                ok: false,
                records: 0,
                unkeyed: 0,
                head: source.into(),
                problem: Some(coffer_audit::Problem {
                    line: 0,
                    seq: 0,
                    reason: format!("cannot read the file: {e}"),
                }),
                chain: None,
                gaps: Vec::new(),
            },
            None,
        ),
    }
}

/// Sets the log files aside and starts new ones (see `Auditor::rotate`).
/// This request's own record is the new files' second.
pub(super) async fn rotate(
    State(st): State<AppState>,
    Auth(id): Auth,
) -> Result<Json<api::AuditRotateResponse>, ApiError> {
    st.coffer.authorize(&id, Operation::Admin, AUDIT_TARGET)?;
    let auditor = st.auditor.clone();
    let report = tokio::task::spawn_blocking(move || auditor.rotate())
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                codes::INTERNAL,
                "rotation failed",
            )
        })?
        .map_err(|e| match e {
            coffer_audit::RotateError::NoFiles => ApiError::invalid(e.to_string()),
            coffer_audit::RotateError::Closed => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                codes::AUDIT_UNAVAILABLE,
                e.to_string(),
            ),
        })?;
    let failures = |list: &[(PathBuf, String)]| -> Vec<api::AuditRotateFailure> {
        list.iter()
            .map(|(f, reason)| api::AuditRotateFailure {
                file: f.display().to_string(),
                reason: reason.clone(),
            })
            .collect()
    };
    Ok(Json(api::AuditRotateResponse {
        ok: report.failed.is_empty() && report.expire_failed.is_empty(),
        rotated: report
            .rotated
            .iter()
            .map(|r| api::AuditRotatedFile {
                file: r.log.display().to_string(),
                to: r.to.display().to_string(),
                records: r.records,
            })
            .collect(),
        failed: failures(&report.failed),
        removed: report
            .expired
            .iter()
            .map(|f| f.display().to_string())
            .collect(),
        not_removed: failures(&report.expire_failed),
    }))
}

/// The log alone, or (`rotated`) the files rotation set aside beside it
/// and then the log: its whole history, oldest first.
fn history(log: PathBuf, rotated: bool) -> Result<Vec<PathBuf>, ApiError> {
    if !rotated {
        return Ok(vec![log]);
    }
    coffer_audit::with_rotated(&log).map_err(|e| {
        tracing::error!(error = %e, "cannot list the rotated audit log files");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::INTERNAL,
            "cannot list the rotated audit log files",
        )
    })
}

/// Runs a scan of log files, read as one stream in order, on the blocking pool.
pub(super) async fn read_log<T: Send + 'static>(
    files: Vec<PathBuf>,
    scan: impl FnOnce(BufReader<Box<dyn std::io::Read + Send>>) -> std::io::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    let internal = |m: &str| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, codes::INTERNAL, m);
    tokio::task::spawn_blocking(move || coffer_audit::open_chained(&files).and_then(scan))
        .await
        .map_err(|_| internal("query failed"))?
        .map_err(|e| {
            tracing::error!(error = %e, "cannot read the audit log");
            internal("cannot read the audit log")
        })
}

/// The log the query endpoints read: the first file sink.
fn primary_log(st: &AppState) -> Result<PathBuf, ApiError> {
    st.auditor.files().first().cloned().ok_or_else(|| {
        ApiError::invalid("this server writes no audit log file to query (only stdout or sockets)")
    })
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecordsQuery {
    pub(crate) path: Option<String>,
    pub(crate) actor: Option<String>,
    pub(crate) since: Option<String>,
    pub(crate) until: Option<String>,
    pub(crate) outcome: Option<String>,
    pub(crate) op: Option<String>,
    #[serde(rename = "type")]
    pub(crate) kind: Option<String>,
    pub(crate) limit: Option<usize>,
    /// Only machine logins through a role that needs a binding.
    #[serde(default)]
    pub(crate) needs_binding: bool,
    /// Also the files rotation set aside, oldest first.
    #[serde(default)]
    pub(crate) rotated: bool,
}

/// Builds a filter from query parameters (shared with the CLI's offline mode
/// through [`filter_from`]).
#[allow(clippy::too_many_arguments)] // one per query parameter, named at each call
pub fn filter_from(
    path: Option<&str>,
    actor: Option<&str>,
    since: Option<&str>,
    until: Option<&str>,
    outcome: Option<&str>,
    op: Option<&str>,
    kind: Option<&str>,
    needs_binding: bool,
) -> Result<Filter, String> {
    Ok(Filter {
        path: path
            .map(|p| {
                coffer_policy::Pattern::parse(p.trim_start_matches('/'))
                    .map_err(|e| format!("--path: {e}"))
            })
            .transpose()?,
        actor: actor.map(str::to_string),
        since: since.map(query::normalize_time).transpose()?,
        until: until.map(query::normalize_time).transpose()?,
        outcome: outcome
            .map(|o| Outcome::parse(o).ok_or("outcome must be ok, denied or error"))
            .transpose()?,
        op: op.map(str::to_string),
        kind: kind
            .map(|k| match k {
                "request" => Ok(Kind::Request),
                "alert" => Ok(Kind::Alert),
                "notice" => Ok(Kind::Notice),
                _ => Err("type must be request, alert or notice"),
            })
            .transpose()?,
        needs_binding,
    })
}

const DEFAULT_QUERY_LIMIT: usize = 1000;
const MAX_QUERY_LIMIT: usize = 100_000;

pub(super) async fn records(
    State(st): State<AppState>,
    Auth(id): Auth,
    UrlQuery(q): UrlQuery<RecordsQuery>,
) -> Result<Json<api::AuditRecordsResponse>, ApiError> {
    query_records(&st, &id, q).await.map(Json)
}

/// The audit query of `GET sys/audit/records`, for the API and the web
/// console alike: `admin` on the audit target, and records naming a secret
/// the caller's policies deny left out.
pub(crate) async fn query_records(
    st: &AppState,
    id: &coffer_core::Identity,
    q: RecordsQuery,
) -> Result<api::AuditRecordsResponse, ApiError> {
    st.coffer.authorize(id, Operation::Admin, AUDIT_TARGET)?;
    let filter = filter_from(
        q.path.as_deref(),
        q.actor.as_deref(),
        q.since.as_deref(),
        q.until.as_deref(),
        q.outcome.as_deref(),
        q.op.as_deref(),
        q.kind.as_deref(),
        q.needs_binding,
    )
    .map_err(ApiError::invalid)?;
    let limit = q.limit.unwrap_or(DEFAULT_QUERY_LIMIT).min(MAX_QUERY_LIMIT);
    let file = primary_log(st)?;
    let shown = file.display().to_string();
    let files = history(file, q.rotated)?;
    let names = files.iter().map(|f| f.display().to_string()).collect();
    // Deny hides names: a record that names a secret the caller's policies
    // deny is left out, as if it did not match (no count of them either,
    // which would tell a name's existence to a search for it).
    let (coffer, caller) = (st.coffer.clone(), id.clone());
    let found = read_log(files, move |r| {
        query::search_where(r, &filter, limit, |rec| {
            !query::names_to_hide(rec)
                .iter()
                .any(|n| coffer.audit_hides(&caller, n))
        })
    })
    .await?;
    Ok(api::AuditRecordsResponse {
        file: shown,
        files: names,
        records: found.records,
        truncated: found.truncated,
        unreadable: found.unreadable,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReadersQuery {
    pub(crate) path: String,
    pub(crate) version: Option<u64>,
    /// The files rotation set aside too, oldest first (the default: leak
    /// response needs every read); `false` for the live file alone.
    #[serde(default = "whole_history")]
    pub(crate) rotated: bool,
}

fn whole_history() -> bool {
    true
}

pub(super) async fn readers(
    State(st): State<AppState>,
    Auth(id): Auth,
    UrlQuery(q): UrlQuery<ReadersQuery>,
) -> Result<Json<api::AuditReadersResponse>, ApiError> {
    query_readers(&st, &id, q).await.map(Json)
}

/// Who read a secret (`GET sys/audit/readers`), for the API and the web
/// console alike: `admin` on the audit target, and a path the caller's
/// policies deny refused whether or not anyone read it.
pub(crate) async fn query_readers(
    st: &AppState,
    id: &coffer_core::Identity,
    q: ReadersQuery,
) -> Result<api::AuditReadersResponse, ApiError> {
    st.coffer.authorize(id, Operation::Admin, AUDIT_TARGET)?;
    let path = coffer_core::SecretPath::parse(&q.path)
        .map_err(coffer_core::CoreError::from)?
        .as_str()
        .to_string();
    // Deny hides names: who read a secret the caller's policies deny is
    // not theirs to learn, whether or not anyone did (the same answer
    // either way).
    if st.coffer.audit_hides(id, &path) {
        return Err(coffer_core::CoreError::Forbidden(
            format!("permission denied: your policies deny {path}").into(),
        )
        .into());
    }
    let files = history(primary_log(st)?, q.rotated)?;
    let names = files.iter().map(|f| f.display().to_string()).collect();
    let (p, v) = (path.clone(), q.version);
    let (readers, unreadable) = read_log(files, move |r| query::readers(r, &p, v)).await?;
    Ok(api::AuditReadersResponse {
        path,
        version: q.version,
        readers,
        files: names,
        unreadable,
    })
}

pub(super) async fn hash(
    State(st): State<AppState>,
    Auth(id): Auth,
    JsonBody(req): JsonBody<api::AuditHashRequest>,
) -> Result<Json<api::AuditHashResponse>, ApiError> {
    st.coffer.authorize(&id, Operation::Admin, AUDIT_TARGET)?;
    let key = st
        .coffer
        .audit_key()
        .ok_or(coffer_core::CoreError::Sealed)?;
    Ok(Json(api::AuditHashResponse {
        hmac: coffer_audit::format_tag(&key.field(req.value.expose().as_bytes())),
    }))
}

/// The longest reason an acknowledgement takes.
const MAX_REASON: usize = 1000;

/// Acknowledges a gap that a log file reports (see
/// `coffer_audit::chain::GapFound`): writes a record that names the gap's
/// notice, who acknowledged it and why, after which verification passes
/// that gap. Admin on `sys/audit`, like verification; the request is
/// audited like any other, and its own record follows the acknowledgement.
pub(super) async fn acknowledge_gap(
    State(st): State<AppState>,
    Auth(id): Auth,
    JsonBody(req): JsonBody<api::AuditAckGapRequest>,
) -> Result<Json<api::AuditAckGapResponse>, ApiError> {
    st.coffer.authorize(&id, Operation::Admin, AUDIT_TARGET)?;
    let reason = req.reason.trim();
    if reason.is_empty() {
        return Err(ApiError::invalid(
            "give the reason the gap is acknowledged (what the investigation found)",
        ));
    }
    if reason.chars().count() > MAX_REASON {
        return Err(ApiError::invalid(format!(
            "the reason is longer than {MAX_REASON} characters"
        )));
    }
    if reason.chars().any(coffer_audit::sanitize::is_unsafe_char) {
        return Err(ApiError::invalid(
            "the reason holds a control, line-separator or text-direction character",
        ));
    }
    let key = st
        .coffer
        .audit_key()
        .ok_or(coffer_core::CoreError::Sealed)?;
    let file = match &req.file {
        Some(f) => allowed_file(&st, f)?,
        None => primary_log(&st)?,
    };
    // One acknowledgement at a time: two at once would each find the gap
    // open and both be written.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one = ONE_AT_A_TIME.lock().await;
    let live = st.auditor.heads();
    let (f, k) = (file.clone(), key.clone());
    let logs = st.auditor.files().to_vec();
    let (chain, acked_later) = tokio::task::spawn_blocking(move || {
        let chain = verify_file(&f, &k, &live).1;
        // A gap of a rotated file is acknowledged in the live file: the
        // acknowledgements there count too.
        let mut acks = Vec::new();
        for log in logs
            .iter()
            .filter(|l| std::fs::canonicalize(l).ok() != std::fs::canonicalize(&f).ok())
        {
            if let Some(c) = verify_file(log, &k, &live).1 {
                acks.extend(c.acks);
            }
        }
        (chain, acks)
    })
    .await
    .map_err(|_| verification_failed())?;
    let shown = file.display().to_string();
    let Some(gap) = chain
        .as_ref()
        .and_then(|c| c.gaps.iter().find(|g| g.record == req.record))
        .cloned()
    else {
        return Err(ApiError::invalid(format!(
            "record {} of {shown} does not report a gap (`coffer audit verify` names the record of each)",
            req.record
        )));
    };
    if gap.acknowledged
        || coffer_audit::unhex32(&gap.link).is_some_and(|l| acked_later.contains(&l))
    {
        return Err(ApiError::invalid(format!(
            "the gap reported by record {} of {shown} is already acknowledged",
            req.record
        )));
    }
    let who = actor(&id);
    let record = Record {
        actor: Some(who.clone()),
        acknowledges: Some(gap.link.clone()),
        ..Record::notice(format!(
            "audit log gap acknowledged: {} of {shown} (reported by record {}), by {} {:?} ({}): {reason}",
            gap.describe(),
            gap.record,
            who.kind,
            who.name,
            who.accessor
        ))
    };
    if !st.auditor.record(record).await {
        return Err(unavailable());
    }
    Ok(Json(api::AuditAckGapResponse {
        file: shown,
        gap: coffer_audit::chain::GapFound {
            acknowledged: true,
            ..gap
        },
    }))
}
