//! The audit record: one JSON object per line.
//!
//! Two formats are read: the first (no `v` field) and version 2, which the
//! writer writes (see [`Record::encode`]). [`Record`] is the full form, as
//! queries return it: [`Record::expand`] fills in what a version 2 line
//! leaves out.
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
    /// The record format: [`VERSION`] for what the writer writes now, none
    /// for the first format (see [`Record::encode`] for what changed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<u32>,
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
    /// A machine login through a role that today's rules would refuse (one
    /// stored before a rule existed, which keeps logging in): what the
    /// role lacks, as `coffer auth jwt read` says it. Operators find these
    /// logins, and so the roles to rewrite, by this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needs_binding: Option<String>,
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
/// The record format the writer writes.
pub const VERSION: u32 = 2;

/// The method and URL path prefix that an operation's requests always
/// have, where its URL path is that prefix followed by the record's `path`
/// (for the operations most requests are). Version 2 records leave
/// `method` and `route` out when they are exactly these.
fn request_line_of(op: &str) -> Option<(&'static str, &'static str)> {
    Some(match op {
        "secret.read" => ("GET", "/api/v1/secrets/"),
        "secret.write" => ("PUT", "/api/v1/secrets/"),
        "secret.delete" => ("DELETE", "/api/v1/secrets/"),
        "secret.metadata" => ("GET", "/api/v1/metadata/"),
        _ => return None,
    })
}

/// A record as version 2 writes it: `v` first, `type` left out for
/// requests, and `method` and `route` left out when `op` and `path` imply
/// them. Field names and everything else are as in [`Record`].
#[derive(Serialize)]
struct Wire<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    #[serde(skip_serializing_if = "is_false")]
    unkeyed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    missed: Option<u64>,
    v: u32,
    time: &'a str,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<Kind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    actor: Option<&'a Actor>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    method: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    route: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    op: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    decision: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<u64>,
    #[serde(skip_serializing_if = "<[ReadRef]>::is_empty")]
    reads: &'a [ReadRef],
    #[serde(skip_serializing_if = "<[ReadRef]>::is_empty")]
    writes: &'a [ReadRef],
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<Outcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_us: Option<u64>,
    #[serde(skip_serializing_if = "is_false")]
    breakglass: bool,
    #[serde(skip_serializing_if = "is_false")]
    protected: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    login: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    workload: Option<&'a Workload>,
    #[serde(skip_serializing_if = "Option::is_none")]
    needs_binding: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    alert: Option<&'a AlertInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gap: Option<Gap>,
    #[serde(skip_serializing_if = "Option::is_none")]
    acknowledges: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    chain: Option<&'a str>,
}

impl Record {
    /// The record as the writer writes it: the [`VERSION`] 2 format.
    ///
    /// What changed from the first format: `"v":2` comes first (after the
    /// writer's `seq`, `unkeyed` and `missed`); `type` is left out for
    /// requests (a record without one is a request); `method` and `route`
    /// are left out when the operation and `path` imply them (a
    /// `secret.read` of `app/KEY` is `GET /api/v1/secrets/app/KEY`), and
    /// kept whenever the request's URL path was anything else (encoded
    /// differently, say). [`Record::expand`] puts them back.
    pub fn encode(&self) -> serde_json::Result<Vec<u8>> {
        let op = self.op.as_deref();
        let (mut method, mut route) = (self.method.as_deref(), self.route.as_deref());
        // Compared without building the implied URL path.
        if let (Some((m, prefix)), Some(sent), Some(url), Some(path)) = (
            op.and_then(request_line_of),
            method,
            route,
            self.path.as_deref(),
        ) && self.kind == Kind::Request
            && m == sent
            && url.strip_prefix(prefix) == Some(path)
        {
            (method, route) = (None, None);
        }
        let mut out = Vec::with_capacity(512);
        serde_json::to_writer(
            &mut out,
            &Wire {
                seq: self.seq,
                unkeyed: self.unkeyed,
                missed: self.missed,
                v: VERSION,
                time: &self.time,
                kind: (self.kind != Kind::Request).then_some(self.kind),
                request_id: self.request_id.as_deref(),
                actor: self.actor.as_ref(),
                token: self.token.as_deref(),
                source: self.source.as_deref(),
                method,
                route,
                op,
                decision: self.decision.as_deref(),
                path: self.path.as_deref(),
                version: self.version,
                reads: &self.reads,
                writes: &self.writes,
                outcome: self.outcome,
                status: self.status,
                error: self.error.as_deref(),
                duration_us: self.duration_us,
                breakglass: self.breakglass,
                protected: self.protected,
                login: self.login.as_deref(),
                reason: self.reason.as_deref(),
                workload: self.workload.as_ref(),
                needs_binding: self.needs_binding.as_deref(),
                alert: self.alert.as_ref(),
                gap: self.gap,
                acknowledges: self.acknowledges.as_deref(),
                message: self.message.as_deref(),
                chain: self.chain.as_deref(),
            },
        )?;
        Ok(out)
    }

    /// The method and URL path that this record's operation and `path`
    /// imply, for the operations whose requests always have them.
    pub fn implied_request_line(&self) -> Option<(&'static str, String)> {
        let (method, prefix) = request_line_of(self.op.as_deref()?)?;
        Some((method, format!("{prefix}{}", self.path.as_deref()?)))
    }

    /// Fills in what a version 2 record leaves out (see [`Record::encode`]):
    /// `method` and `route` from `op` and `path`. A first-format record is
    /// left as it is.
    pub fn expand(&mut self) {
        if self.v.is_some_and(|v| v >= 2)
            && self.kind == Kind::Request
            && self.method.is_none()
            && self.route.is_none()
            && let Some((method, route)) = self.implied_request_line()
        {
            self.method = Some(method.to_string());
            self.route = Some(route);
        }
    }

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
        Record::sink_alert(rule, &file.display().to_string(), count, message)
    }

    /// An alert about an audit sink (`subject` as the configuration names
    /// it: `file PATH`, `socket ADDR`, `stdout`), logged as raised.
    pub fn sink_alert(rule: &str, subject: &str, count: u64, message: String) -> Record {
        tracing::error!(target: "coffer::alert", alert = rule, "{}", crate::sanitize::visible(&message));
        Record {
            kind: Kind::Alert,
            alert: Some(AlertInfo {
                rule: rule.to_string(),
                subject: subject.to_string(),
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
pub(crate) mod tests {
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

    /// A read as the server records it (the book's example).
    pub(crate) fn typical_read() -> Record {
        Record {
            time: "2026-11-23T10:04:05.123Z".into(),
            kind: Kind::Request,
            request_id: Some("4be01c9a-0000000003e8".into()),
            actor: Some(Actor {
                kind: "service".into(),
                name: "ci-deploy".into(),
                accessor: "acc_BAeOawQvhCjma9PS4oHzv3rm".into(),
                via: None,
            }),
            token: Some(format!("hmac-sha256:{}", "01c1468983".repeat(6) + "abcd")),
            source: Some("10.20.3.7".into()),
            method: Some("GET".into()),
            route: Some("/api/v1/secrets/myapp/prod/DB_PASSWORD".into()),
            op: Some("secret.read".into()),
            decision: Some("read".into()),
            path: Some("myapp/prod/DB_PASSWORD".into()),
            version: Some(3),
            outcome: Some(Outcome::Ok),
            status: Some(200),
            duration_us: Some(412),
            protected: true,
            ..Record::default()
        }
    }

    #[test]
    fn version_2_leaves_out_what_is_implied_and_expands_back() {
        let r = typical_read();
        let v1 = serde_json::to_string(&r).unwrap();
        let v2 = String::from_utf8(r.encode().unwrap()).unwrap();
        assert!(v2.starts_with("{\"v\":2,\"time\":"), "{v2}");
        for gone in ["\"type\"", "\"route\"", "\"method\""] {
            assert!(v1.contains(gone) && !v2.contains(gone), "{gone}: {v2}");
        }
        assert!(v2.len() < v1.len());
        let mut back: Record = serde_json::from_str(&v2).unwrap();
        assert_eq!(back.route, None);
        back.expand();
        assert_eq!(
            back,
            Record {
                v: Some(2),
                ..r.clone()
            }
        );
        // A first-format record is read as it is.
        let mut old: Record = serde_json::from_str(&v1).unwrap();
        old.expand();
        assert_eq!(old, r);
    }

    #[test]
    fn version_2_keeps_what_is_not_implied() {
        let base = typical_read();
        let cases = [
            // The URL path encoded otherwise than the path reads.
            Record {
                route: Some("/api/v1/secrets/myapp%2Fprod/DB_PASSWORD".into()),
                ..base.clone()
            },
            // Another method (HEAD) for the same operation.
            Record {
                method: Some("HEAD".into()),
                ..base.clone()
            },
            // A path decided that is not the URL's.
            Record {
                path: Some("other/DB_PASSWORD".into()),
                ..base.clone()
            },
            // No decision (refused before one): the URL path stays.
            Record {
                path: None,
                ..base.clone()
            },
            // An operation whose URL the record cannot imply.
            Record {
                op: Some("vault.kv.read".into()),
                route: Some("/v1/secret/data/myapp/prod/DB_PASSWORD".into()),
                ..base.clone()
            },
            // Not a request: the type stays.
            Record {
                kind: Kind::Alert,
                ..base.clone()
            },
        ];
        for r in cases {
            let line = r.encode().unwrap();
            let mut back: Record = serde_json::from_slice(&line).unwrap();
            back.expand();
            assert_eq!(
                back,
                Record {
                    v: Some(2),
                    ..r.clone()
                }
            );
            let text = String::from_utf8(line).unwrap();
            assert!(
                text.contains("\"route\"") && text.contains("\"method\""),
                "{text}"
            );
        }
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
