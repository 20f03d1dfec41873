//! Wire types of the audit API (`/api/v1/sys/audit/...`). Records and the
//! readers report are `coffer-audit`'s own types, so the API, the log file
//! and the offline CLI all speak one format.

use serde::{Deserialize, Serialize};

pub use coffer_audit::chain::GapFound;
pub use coffer_audit::query::Reader;
pub use coffer_audit::{Problem, Record};

use crate::WireSecret;

/// `POST /api/v1/sys/audit/verify`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditVerifyRequest {
    /// A file on the server, in the directory of one of its audit logs;
    /// absent: every audit log file the server writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Also every file rotation set aside beside each log, oldest first,
    /// and that each file continues the one before it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rotated: bool,
    /// `file` is a collector's copy of a standard-output or socket sink: a
    /// new chain starts at each record numbered 1 (each run of the
    /// server), and each is verified on its own, with no head to check
    /// its end against.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
}

/// The verdict on each file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditVerifyResponse {
    /// Every file verified.
    pub ok: bool,
    /// One report per file.
    pub files: Vec<AuditFileReport>,
}

/// The verdict on one file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditFileReport {
    /// The file.
    pub file: String,
    /// It verified.
    pub ok: bool,
    /// Intact records read before any problem.
    pub records: u64,
    /// Of those, records linked while coffer was sealed.
    pub unkeyed: u64,
    /// What the end of the log was compared with: `live` (the running
    /// writer's head), `head-file` (`FILE.head`) or `none`.
    pub head: String,
    /// The first problem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
    /// With `stream`: which chain of the copy this is (from 1), the line it
    /// starts on, and whether it ends with the notice of a cleanly stopped
    /// server (every chain but a running server's last should).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<AuditStreamChain>,
    /// Gaps the file reports (records lost while the server was stopped),
    /// acknowledged or not; one not acknowledged is the file's problem.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gaps: Vec<GapFound>,
}

/// Where one chain of a stream sink's copy lies.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditStreamChain {
    /// From 1.
    pub number: u64,
    /// The line it starts on, from 1.
    pub first_line: u64,
    /// It ends with `audit log closed`.
    pub closed: bool,
}

/// `GET /api/v1/sys/audit/records`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditRecordsResponse {
    /// The log searched.
    pub file: String,
    /// Every file searched, oldest first: `file`, after the files rotation
    /// set aside beside it when those were asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    /// Matching records, oldest first (the most recent `limit`).
    pub records: Vec<Record>,
    /// More matched than `limit`.
    pub truncated: bool,
    /// Lines that were not records.
    pub unreadable: u64,
}

/// `GET /api/v1/sys/audit/readers`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditReadersResponse {
    /// The secret.
    pub path: String,
    /// The version asked about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// Every token that read it, by first read.
    pub readers: Vec<Reader>,
    /// Every file searched, oldest first (the live log last).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    /// Lines that were not records.
    pub unreadable: u64,
}

/// `POST /api/v1/sys/audit/hash`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditHashRequest {
    /// The value to look up (a token, a login name).
    pub value: WireSecret,
}

/// The HMAC, as audit records show it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditHashResponse {
    /// `hmac-sha256:HEX`.
    pub hmac: String,
}

/// `POST /api/v1/sys/audit/rotate`: what was set aside.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditRotateResponse {
    /// Every log file was rotated.
    pub ok: bool,
    /// The files rotated.
    pub rotated: Vec<AuditRotatedFile>,
    /// The files that could not be; they go on as they were.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<AuditRotateFailure>,
    /// Rotated files removed afterwards by the retention policy
    /// (`audit.keep_rotated_files`, `audit.keep_rotated_days`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
    /// Rotated files the retention policy no longer keeps but that could
    /// not be removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_removed: Vec<AuditRotateFailure>,
}

/// One log file set aside.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditRotatedFile {
    /// The log's path, where a new file now starts at record 1.
    pub file: String,
    /// Where its records up to now are (with their head file, `TO.head`).
    pub to: String,
    /// Records in it; the last one is the rotation notice.
    pub records: u64,
}

/// A log file that could not be rotated.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditRotateFailure {
    /// The file.
    pub file: String,
    /// Why.
    pub reason: String,
}

/// `POST /sys/audit/acknowledge-gap`: an operator acknowledges a gap that
/// `coffer audit verify` reports, after investigating it. The
/// acknowledgement is itself a record (with who, and why); verification
/// then passes that gap, and still lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditAckGapRequest {
    /// The log file (default: the server's first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The number of the record that reports the gap.
    pub record: u64,
    /// Why it is acknowledged (what the investigation found).
    pub reason: String,
}

/// The gap acknowledged.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditAckGapResponse {
    /// The log file.
    pub file: String,
    /// The gap, now acknowledged.
    pub gap: GapFound,
}
