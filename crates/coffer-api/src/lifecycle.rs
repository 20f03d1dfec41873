//! Wire types of the lifecycle API: rotation, promotion, expiry, lifecycle
//! rules, the rotation status report, rollback, copy and move, and
//! environment promotion. None of them carries a value except the optional
//! new value of a rotation, which is a [`WireValue`] (no `Debug`, wiped on
//! drop). Durations are strings such as `90d` or `1h30m`; times are RFC
//! 3339 in UTC.

use serde::{Deserialize, Serialize};

use crate::WireValue;

/// `POST /api/v1/rotate/{path}`: a new version, given or generated.
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// The new value; absent: generate one (with `generate`, or the
    /// lifecycle rules' generator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<WireValue>,
    /// Generator spec, `FORMAT[:N]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate: Option<String>,
    /// Only stage the new version as `pending`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stage: bool,
    /// How long `previous` stays readable, instead of the rules' grace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace: Option<String>,
    /// For a secret that manages PostgreSQL roles: rotate even while
    /// `previous` is in its grace period (its role's password is replaced at
    /// once).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
}

/// `POST /api/v1/postgres/{path}`: a new secret that manages the
/// credentials of two alternating PostgreSQL roles.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresManageRequest {
    /// Path of the secret holding the administrator connection (a
    /// `postgres://` URL, or fields `url` and `password`).
    pub admin: String,
    /// The two roles that take turns.
    pub roles: [String; 2],
    /// Where applications connect, without credentials (default: the
    /// administrator URL's server and database).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_url: Option<String>,
    /// Password generator, `FORMAT[:N]` (default `alnum:32`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate: Option<String>,
    /// Create roles that do not exist yet.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub create_roles: bool,
    /// The group role that created roles join.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_of: Option<String>,
}

/// The answer of `POST /api/v1/postgres/{path}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PostgresManageResponse {
    /// Canonical path.
    pub path: String,
    /// The version written.
    pub version: u64,
    /// The role whose credentials are current.
    pub role: String,
    /// Roles that coffer created.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub created: Vec<String>,
}

/// `GET /api/v1/postgres/{path}`: a managed secret's binding (no value).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PostgresInfo {
    /// Canonical path.
    pub path: String,
    /// Path of the administrator secret.
    pub admin: String,
    /// The two roles.
    pub roles: [String; 2],
    /// Where applications connect, without credentials.
    pub connect_url: String,
    /// The labels.
    pub labels: LabelsInfo,
}

/// `POST /api/v1/promote/{path}`: make `pending` current.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoteRequest {
    /// How long `previous` stays readable, instead of the rules' grace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace: Option<String>,
}

/// A secret's labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelsInfo {
    /// The version served by default.
    pub current: u64,
    /// The version that was current before the last change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<u64>,
    /// When `previous` stops being served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_until: Option<String>,
    /// A staged rotation's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<u64>,
    /// When the secret expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// The answer of rotate, promote, cancel and expiry changes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RotateResponse {
    /// Canonical path.
    pub path: String,
    /// The version written or promoted (the current one for other changes).
    pub version: u64,
    /// The labels afterwards.
    pub labels: LabelsInfo,
    /// The value was generated on the server (and is not in this answer).
    #[serde(default)]
    pub generated: bool,
    /// Warnings about a value given by hand.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// `PUT /api/v1/expiry/{path}`: at most one of the two; neither clears it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpiryRequest {
    /// An RFC 3339 time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// A duration from now, such as `90d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<String>,
}

/// `PUT /api/v1/sys/lifecycle`: a rule for a path pattern.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleRequest {
    /// Path pattern, such as `*/prod/*` or an exact path.
    pub pattern: String,
    /// Fewest bits of guessing work a value written there must take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_bits: Option<u32>,
    /// Rotation interval, such as `90d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotate_every: Option<String>,
    /// Generator spec for rotations, `FORMAT[:N]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<String>,
    /// How long `previous` stays readable after a change, such as `24h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace: Option<String>,
}

/// A lifecycle rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuleInfo {
    /// The pattern.
    pub pattern: String,
    /// Fewest bits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_bits: Option<u32>,
    /// Rotation interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotate_every: Option<String>,
    /// Generator spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<String>,
    /// Grace period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace: Option<String>,
    /// Who set it.
    pub created_by: String,
    /// When.
    pub created_at: String,
}

/// `GET /api/v1/sys/lifecycle`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuleListResponse {
    /// Rules, most specific first.
    pub rules: Vec<RuleInfo>,
}

/// One secret in the rotation status report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusEntry {
    /// Canonical path.
    pub path: String,
    /// `expired`, `overdue`, `pending`, `expiring`, `due` or `ok`.
    pub status: String,
    /// Current version.
    pub current: u64,
    /// Pending version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<u64>,
    /// When the current version was written.
    pub changed_at: String,
    /// Rotation interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotate_every: Option<String>,
    /// The pattern of the rule that sets the interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// When the next rotation is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<String>,
    /// The scheduler rotates it (a generator applies).
    pub automatic: bool,
    /// Expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// `GET /api/v1/rotation/status/{prefix}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusResponse {
    /// Secrets with a rotation interval, an expiry or a staged rotation,
    /// worst first.
    pub secrets: Vec<StatusEntry>,
}

/// `POST /api/v1/rollback/{path}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The version whose value becomes current again (as a new version).
    pub version: u64,
}

/// `POST /api/v1/copy`: copy or move a secret with its history.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyRequest {
    /// Source path.
    pub from: String,
    /// Target path (must not exist).
    pub to: String,
    /// Remove the source (a move).
    #[serde(default, rename = "move")]
    pub remove_source: bool,
}

/// One line of an environment promotion plan (names and versions only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanEntry {
    /// Secret name (last path segment).
    pub name: String,
    /// `create`, `update`, `unchanged` or `only_in_target`.
    pub action: String,
    /// The source's current version (0: none).
    pub from_version: u64,
    /// The target's current version (0: none).
    pub to_version: u64,
}

/// `POST /api/v1/promote-env`: preview (no `apply`) or apply a plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoteEnvRequest {
    /// Source prefix, such as `app/staging`.
    pub from: String,
    /// Target prefix, such as `app/prod`.
    pub to: String,
    /// The previewed plan to apply; absent: preview only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply: Option<Vec<PlanEntry>>,
}

/// The answer to a [`PromoteEnvRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PromoteEnvResponse {
    /// The plan, by name.
    pub plan: Vec<PlanEntry>,
    /// Versions written (empty for a preview).
    pub written: Vec<crate::WriteResponse>,
}
