//! The audit record: one JSON object per line.
//!
//! Field order is fixed by this struct; the writer puts `seq` (and, when it
//! applies, `unkeyed` and `missed`) first and `chain` last. Optional fields
//! are left out when they do not apply. JSON string escaping covers every
//! control character, so no input (a path, a display name) can end a line
//! early or forge a field, and the writer escapes the characters that some
//! readers take for a line end or that reorder text (see
//! [`crate::sanitize`]): one record is always exactly one line.

use serde::{Deserialize, Serialize};

/// What a record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// An API request and its outcome.
    #[default]
    Request,
    /// An alert raised by a rule (see [`crate::alerts`]).
    Alert,
    /// An event of the audit log itself (start, stop, a truncation found).
    Notice,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Served (2xx).
    Ok,
    /// Refused: unauthenticated, forbidden or rate-limited (401, 403, 429).
    Denied,
    /// Anything else: invalid input, not found, conflict, sealed, failure.
    Error,
}

impl Outcome {
    /// The outcome of an HTTP status.
    pub fn of_status(status: u16) -> Outcome {
        match status {
            200..=399 => Outcome::Ok,
            401 | 403 | 429 => Outcome::Denied,
            _ => Outcome::Error,
        }
    }

    /// Parses `ok`, `denied` or `error`.
    pub fn parse(s: &str) -> Option<Outcome> {
        match s {
            "ok" => Some(Outcome::Ok),
            "denied" => Some(Outcome::Denied),
            "error" => Some(Outcome::Error),
            _ => None,
        }
    }

    /// The name used in records.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
            Outcome::Error => "error",
        }
    }
}

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// `service` or `human`.
    pub kind: String,
    /// The user name for people, the token's display name for services.
    pub name: String,
    /// The token's accessor (not a credential: it cannot authenticate).
    pub accessor: String,
    /// What the token was issued for, when a login issued it: the accessor
    /// of the app-role secret id it logged in with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
}

/// Who a machine login vouched for: the identity its token acts as.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workload {
    /// How it logged in: `jwt` (or `approle`).
    pub method: String,
    /// The role it logged in with.
    pub role: String,
    /// The JWT's issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The JWT's subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The values of the role's bound claims.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub claims: std::collections::BTreeMap<String, String>,
}

/// What an alert record reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertInfo {
    /// The rule that fired, such as `failure_burst` or `breakglass_read`.
    pub rule: String,
    /// What the rule counted by: an accessor, a source address, a login.
    pub subject: String,
    /// Events counted in the window (1 for single-event rules).
    pub count: u64,
    /// The window, in seconds (0 for single-event rules).
    pub window_secs: u64,
}

/// One secret version served or written by a request that acts on many.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadRef {
    /// The secret's path.
    pub path: String,
    /// The version served.
    pub version: u64,
}

/// Records of a log that were lost (or rewritten) while the server was
/// stopped, first to last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    /// The first record concerned.
    pub first: u64,
    /// The last record concerned (the highest the log had ever had).
    pub last: u64,
}

/// One audit record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Position in this sink's log, from 1 (written by the writer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// The link was made without the audit key (coffer was sealed).
    #[serde(default, skip_serializing_if = "is_false")]
    pub unkeyed: bool,
    /// Records this sink missed while it was failing, just before this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed: Option<u64>,
    /// When the request arrived (RFC 3339, UTC, milliseconds).
    pub time: String,
    /// Request, alert or notice.
    #[serde(rename = "type", default)]
    pub kind: Kind,
    /// The request id (also the `x-request-id` response header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The authenticated caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
    /// HMAC of the bearer token presented, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The peer address of the connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// HTTP method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The URL path (never the query string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// The API operation, such as `secret.read` or `token.create`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
    /// The authorization check: the operation decided (`read`, `update`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    /// The target decided on: a secret path or a `sys/` target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The secret version read or written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// Every secret served by a request that reads many (`secret.bundle`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reads: Vec<ReadRef>,
    /// Every secret version written by a request that writes many
    /// (`secret.import`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub writes: Vec<ReadRef>,
    /// Ok, denied or error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// HTTP status sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The error code sent, for failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Time spent handling the request, in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_us: Option<u64>,
    /// A break-glass grant allowed this read.
    #[serde(default, skip_serializing_if = "is_false")]
    pub breakglass: bool,
    /// The target is in a protected environment.
    #[serde(default, skip_serializing_if = "is_false")]
    pub protected: bool,
    /// HMAC of the user name a login or invitation named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    /// Why a login was refused (`secret_id_expired role=web
    /// secret_id=sia_...`); never a credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The workload the caller's token was issued to by a machine login
    /// (its role, issuer, subject and bound claims' values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<Workload>,
    /// For alert records: what fired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<AlertInfo>,
    /// For the notice of a gap in this log (records lost or rewritten while
    /// the server was stopped): the records concerned. The records after
    /// it are numbered from the highest the log ever had, so the gap shows
    /// in the numbering, and `coffer audit verify` fails until it is
    /// acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap: Option<Gap>,
    /// For an acknowledgement of a gap: the chain link of the gap's notice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledges: Option<String>,
    /// A human-readable explanation (alerts and notices).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The chain link (written by the writer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The operations that serve the value of the one secret at the record's
/// path (a bundle, the console's reveal, names each value in `reads`
/// instead). Every front end that reads one value must be here, or
/// `coffer audit readers` misses its readers.
const VALUE_READS: [&str; 2] = ["secret.read", "vault.kv.read"];

impl Record {
    /// A notice record about the audit log itself.
    pub fn notice(message: impl Into<String>) -> Record {
        Record {
            time: crate::now_rfc3339(),
            kind: Kind::Notice,
            message: Some(message.into()),
            ..Record::default()
        }
    }

    /// An alert raised by the writer about a log file, not by a rule over
    /// requests (`audit_log_truncated`, `audit_rotation_failed`, ...), also
    /// written to the server log under `coffer::alert`.
    pub fn file_alert(rule: &str, file: &std::path::Path, count: u64, message: String) -> Record {
        tracing::error!(target: "coffer::alert", alert = rule, "{}", crate::sanitize::visible(&message));
        Record {
            kind: Kind::Alert,
            alert: Some(AlertInfo {
                rule: rule.to_string(),
                subject: file.display().to_string(),
                count,
                window_secs: 0,
            }),
            ..Record::notice(message)
        }
    }

    /// The secrets whose values this request served, with versions: its
    /// path for a successful read of one secret (the native `secret.read`,
    /// the Vault API's `vault.kv.read`), its `reads` for a bundle.
    pub fn values_served(&self) -> Vec<(&str, Option<u64>)> {
        if self.kind != Kind::Request || self.outcome != Some(Outcome::Ok) {
            return Vec::new();
        }
        let mut out: Vec<(&str, Option<u64>)> = self
            .reads
            .iter()
            .map(|r| (r.path.as_str(), Some(r.version)))
            .collect();
        if matches!(self.op.as_deref(), Some(op) if VALUE_READS.contains(&op))
            && let Some(p) = self.path.as_deref()
        {
            out.push((p, self.version));
        }
        out
    }

    /// The key that identifies the actor in queries and alert subjects.
    pub fn actor_key(&self) -> Option<&str> {
        self.actor.as_ref().map(|a| a.accessor.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_strings_stay_on_one_line() {
        let r = Record {
            time: "t".into(),
            path: Some("a\nb\r\u{2028}\"},{\"x\":1".into()),
            message: Some("\u{0}\u{1b}[31m".into()),
            ..Record::default()
        };
        let line = serde_json::to_string(&r).unwrap();
        assert!(!line.contains('\n') && !line.contains('\r'), "{line}");
        let back: Record = serde_json::from_str(&line).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn outcomes_follow_status() {
        assert_eq!(Outcome::of_status(200), Outcome::Ok);
        assert_eq!(Outcome::of_status(204), Outcome::Ok);
        for s in [401, 403, 429] {
            assert_eq!(Outcome::of_status(s), Outcome::Denied);
        }
        for s in [400, 404, 409, 413, 500, 503] {
            assert_eq!(Outcome::of_status(s), Outcome::Error);
        }
    }
}
