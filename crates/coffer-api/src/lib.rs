//! Coffer's wire types: the JSON bodies of the native HTTP API (`/api/v1/`),
//! shared by the server and the client so the two cannot drift apart, and
//! its route table ([`routes`]): every operation's method, path, audit name
//! and what it requires, from which the server's router and audit layer and
//! the client's URLs are built.
//!
//! Types that carry a secret (a value, an unseal key, a token) have no `Debug`
//! and wipe their strings on drop; they exist only at the API boundary.
//! Timestamps are RFC 3339 strings in UTC.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

pub mod leak;
pub mod lifecycle;
pub mod routes;
pub mod share;
pub mod vault_routes;
pub mod workload;

/// Stable error codes, one per class of failure.
pub mod codes {
    /// The server is sealed (503).
    pub const SEALED: &str = "sealed";
    /// The server has not been initialised (503).
    pub const NOT_INITIALIZED: &str = "not_initialized";
    /// Missing, malformed, unknown or expired token (401).
    pub const UNAUTHENTICATED: &str = "unauthenticated";
    /// The token's policies do not allow this (403).
    pub const FORBIDDEN: &str = "forbidden";
    /// No such secret, version or route (404).
    pub const NOT_FOUND: &str = "not_found";
    /// Bad input (400).
    pub const INVALID: &str = "invalid";
    /// Body or value over the size limit (413).
    pub const TOO_LARGE: &str = "too_large";
    /// Check-and-set failure or initialising twice (409).
    pub const CONFLICT: &str = "conflict";
    /// The version would become current but is marked compromised (409).
    pub const COMPROMISED: &str = "compromised";
    /// Method not allowed on this route (405).
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    /// Stored data failed an integrity check (500).
    pub const INTEGRITY: &str = "integrity";
    /// Anything else (500).
    pub const INTERNAL: &str = "internal";
    /// Too many attempts (failed logins or unseal attempts from one
    /// address, failed logins for one account); `Retry-After` says when
    /// to try again (429).
    pub const RATE_LIMITED: &str = "rate_limited";
    /// The secret's expiry has passed; it is refused to every reader (403).
    pub const EXPIRED: &str = "expired";
    /// A system coffer acts on for the caller (a PostgreSQL server whose
    /// roles it manages) failed or refused (502).
    pub const UPSTREAM: &str = "upstream";
    /// No audit sink could record the request, so it was refused (503).
    pub const AUDIT_UNAVAILABLE: &str = "audit_unavailable";
    /// The `Host` header is missing, repeated, malformed or names a host
    /// this server does not answer to (400).
    pub const BAD_HOST: &str = "bad_host";
    /// The request target is not a path (absolute or asterisk form) (400).
    pub const BAD_REQUEST_TARGET: &str = "bad_request_target";
    /// A request body that is not `application/json` (415).
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "unsupported_media_type";
    /// The request body did not arrive within the body timeout (408).
    pub const REQUEST_TIMEOUT: &str = "request_timeout";
}

/// Every error response: `{"error": {"code", "message", "request_id"}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The error itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// One of [`codes`].
    pub code: String,
    /// A message for people; never contains a value or token.
    pub message: String,
    /// The request id, also in the `x-request-id` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// A secret value on the wire: a string, or an object of string fields.
#[derive(Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum WireValue {
    /// Text.
    Text(String),
    /// Named string fields.
    Fields(BTreeMap<String, String>),
}

impl Drop for WireValue {
    fn drop(&mut self) {
        match self {
            WireValue::Text(s) => s.zeroize(),
            WireValue::Fields(f) => f.values_mut().for_each(Zeroize::zeroize),
        }
    }
}

/// A borrowed secret value, for serialising a response without copying it.
#[derive(Serialize)]
#[serde(untagged)]
pub enum ValueRef<'a> {
    /// Text.
    Text(&'a str),
    /// Named string fields.
    Fields(BTreeMap<&'a str, &'a str>),
}

/// `PUT /api/v1/secrets/{path}`: a value, or a generator spec for a value
/// generated on the server (and never sent back).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteRequest {
    /// The new value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<WireValue>,
    /// Generator spec, `FORMAT[:N]` (instead of `value`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate: Option<String>,
    /// Check-and-set: write only if the current version is this (0: must not exist).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cas: Option<u64>,
}

/// `POST /api/v1/import`: many writes in one transaction (what
/// `coffer import` sends). All or nothing: one refused write or failed
/// check-and-set writes none.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    /// The writes, each to a different path.
    pub secrets: Vec<ImportEntry>,
}

/// One write in an [`ImportRequest`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportEntry {
    /// The secret's path.
    pub path: String,
    /// The new value.
    pub value: WireValue,
    /// Check-and-set: write only if the current version is this (0: must not exist).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cas: Option<u64>,
}

/// The answer to an [`ImportRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportResponse {
    /// The versions created, in request order.
    pub written: Vec<WriteResponse>,
}

/// `PUT /api/v1/history/{path}`: a secret's whole history, written in one
/// transaction (what `coffer migrate from-vault` sends). The versions are
/// numbered from 1, in order. A secret that already holds the first
/// versions of the history gets the rest (or nothing, when it holds them
/// all); any difference is a conflict that writes nothing.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryRequest {
    /// Every version, version 1 first.
    pub versions: Vec<HistoryEntry>,
    /// Check and compare everything, write nothing: the answer says what
    /// would be written.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

/// One version of a [`HistoryRequest`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryEntry {
    /// Its number: its place in the list, from 1 (checked).
    pub version: u64,
    /// When it was written (RFC 3339).
    pub created_at: String,
    /// `active`, `deleted` or `destroyed`.
    pub state: String,
    /// When it was deleted or destroyed (RFC 3339); only for those states,
    /// and required for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_at: Option<String>,
    /// The value; absent exactly when the version is destroyed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<WireValue>,
}

/// The answer to a [`HistoryRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryResponse {
    /// Canonical path.
    pub path: String,
    /// `created`, `appended` or `unchanged`.
    pub outcome: String,
    /// The versions this request wrote, in order (in a dry run, the versions
    /// it would write).
    pub written: Vec<u64>,
    /// The newest version the secret now has (in a dry run, still has).
    pub current_version: u64,
}

/// The answer to a write.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WriteResponse {
    /// Canonical path.
    pub path: String,
    /// The version created.
    pub version: u64,
    /// When.
    pub created_at: String,
    /// Warnings about the value (a weak value where no rule forbids it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// `GET /api/v1/secrets/{path}`, generic over the value's representation.
#[derive(Serialize, Deserialize)]
pub struct ReadResponse<V> {
    /// Canonical path.
    pub path: String,
    /// Version read.
    pub version: u64,
    /// The value.
    pub value: V,
    /// When the version was written.
    pub created_at: String,
    /// Who wrote it: the user name or token display name (or the system
    /// actor's name, such as `coffer-scheduler`).
    pub created_by: String,
    /// The kind of identity that wrote it: `service`, `human` or `system`
    /// (absent for versions written before kinds were recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by_kind: Option<String>,
    /// The accessor of the token that wrote it (absent for the system and
    /// for versions written before accessors were recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by_accessor: Option<String>,
    /// The label it was asked for by (`previous`, `pending`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// `POST /api/v1/bundle`: many secrets in one request (what `coffer run`
/// fetches). All or nothing: one refused read refuses the request.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleRequest {
    /// Every live secret directly under each prefix.
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// And these secrets (each must exist).
    #[serde(default)]
    pub secrets: Vec<BundleRef>,
}

/// One secret named in a [`BundleRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleRef {
    /// The secret's path.
    pub path: String,
    /// A version; the current one if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// A label (`current`, `previous`, `pending`) instead of a version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// The answer to a [`BundleRequest`].
#[derive(Serialize, Deserialize)]
pub struct BundleResponse<V> {
    /// The secrets, prefixes' first (in path order), then those named.
    pub secrets: Vec<ReadResponse<V>>,
    /// Set when a person was served a value under a protected prefix (which
    /// only a live break-glass grant allows): the client must not keep an
    /// offline copy of this answer, and drops any copy it has for the
    /// request. Absent (false) from servers that predate it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_offline_copy: bool,
}

/// One listing entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListEntry {
    /// Name relative to the prefix; folders end with `/`.
    pub name: String,
    /// Whether it is a folder.
    pub folder: bool,
}

/// `GET /api/v1/list/{prefix}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListResponse {
    /// Canonical prefix (empty or ending with `/`).
    pub prefix: String,
    /// Entries in byte order.
    pub entries: Vec<ListEntry>,
    /// Cursor for the next page (`?after=`), absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// One version in a history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionInfo {
    /// Version number.
    pub version: u64,
    /// When it was written.
    pub created_at: String,
    /// Who wrote it: the user name or token display name (or the system
    /// actor's name, such as `coffer-scheduler`).
    pub created_by: String,
    /// The kind of identity that wrote it: `service`, `human` or `system`
    /// (absent for versions written before kinds were recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by_kind: Option<String>,
    /// The accessor of the token that wrote it (absent for the system and
    /// for versions written before accessors were recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by_accessor: Option<String>,
    /// `active`, `deleted` or `destroyed`.
    pub state: String,
    /// When it was deleted or destroyed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_changed_at: Option<String>,
    /// Keyring key that sealed it.
    pub key_id: u32,
    /// When it was marked compromised (its value leaked); absent when it
    /// was not. A compromised version never becomes current again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compromised_at: Option<String>,
    /// Why it was marked compromised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compromised_reason: Option<String>,
}

/// `GET /api/v1/metadata/{path}`: metadata and history, never values.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetadataResponse {
    /// Canonical path.
    pub path: String,
    /// Newest version.
    pub current_version: u64,
    /// Whether the newest version is deleted or destroyed.
    pub deleted: bool,
    /// First write.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
    /// Every version, oldest first.
    pub versions: Vec<VersionInfo>,
    /// Labels and expiry (absent from servers before labels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<lifecycle::LabelsInfo>,
}

/// Body of delete (optional), undelete and destroy: which versions.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionsRequest {
    /// Versions; empty means the current one.
    #[serde(default)]
    pub versions: Vec<u64>,
}

/// Answer of delete, undelete and destroy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionsResponse {
    /// Canonical path.
    pub path: String,
    /// Versions affected.
    pub versions: Vec<u64>,
}

/// `POST /api/v1/sys/init`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitRequest {
    /// Number of unseal key shares.
    pub shares: u8,
    /// Shares needed to unseal.
    pub threshold: u8,
}

/// The answer to init: shown once, stored nowhere.
#[derive(Serialize, Deserialize)]
pub struct InitResponse {
    /// Unseal key shares.
    pub unseal_keys: Vec<String>,
    /// Initial root token.
    pub root_token: String,
}

impl Drop for InitResponse {
    fn drop(&mut self) {
        self.unseal_keys.iter_mut().for_each(Zeroize::zeroize);
        self.root_token.zeroize();
    }
}

/// `POST /api/v1/sys/unseal`: one share, or a reset of the progress.
#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UnsealRequest {
    /// An unseal key share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Forget the shares provided so far.
    #[serde(default)]
    pub reset: bool,
}

impl Drop for UnsealRequest {
    fn drop(&mut self) {
        if let Some(k) = &mut self.key {
            k.zeroize();
        }
    }
}

/// `GET /api/v1/sys/status` and the answer to unseal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealStatus {
    /// Whether init has run.
    pub initialized: bool,
    /// Whether sealed.
    pub sealed: bool,
    /// Shares needed.
    pub threshold: u8,
    /// Shares handed out.
    pub shares: u8,
    /// Shares provided so far.
    pub progress: u8,
    /// Storage backend.
    pub storage: String,
    /// Server version.
    pub version: String,
    /// Whether the audit log can record: a sink took the last batch. While
    /// it cannot, every audited request is refused with `audit_unavailable`
    /// and health answers 503. (Absent from servers before it: true.)
    #[serde(default = "available")]
    pub audit_available: bool,
    /// Whether the store answered a read just now (within 2 seconds). While
    /// it does not (a PostgreSQL server down or unreachable), requests that
    /// need it fail and health answers 503. (Absent from servers before
    /// it: true.)
    #[serde(default = "available")]
    pub storage_available: bool,
    /// Whether the server's memory is locked in RAM, so keys never reach
    /// swap (see docs/src/hardening.md). Absent when the server did not
    /// report it (an older server, or one embedded in another program).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_locked: Option<bool>,
}

fn available() -> bool {
    true
}

/// One keyring key: its id and age, never key material.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyInfo {
    /// Key id.
    pub id: u32,
    /// When it was created.
    pub created_at: String,
}

/// `GET /api/v1/sys/keyring` and the answer to `POST /api/v1/sys/rotate`:
/// key ids and ages only, never key material.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyringResponse {
    /// Key used for new writes.
    pub active_key: u32,
    /// All keys.
    pub keys: Vec<KeyInfo>,
}

/// A token's non-secret handle and attributes, never the token itself
/// (`GET /api/v1/auth/token/self`, token lists and lookups).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenInfo {
    /// Non-secret handle.
    pub accessor: String,
    /// Name.
    pub display_name: String,
    /// Policies.
    pub policies: Vec<String>,
    /// `service` or `human`.
    #[serde(default = "service")]
    pub kind: String,
    /// The user of a human token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Creation time.
    pub created_at: String,
    /// Expiry, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Renewals cannot go past this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_expires_at: Option<String>,
    /// Renewal period (`24h`); absent for tokens that do not expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// Requests the token was created for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uses_limit: Option<u64>,
    /// Requests left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uses_left: Option<u64>,
    /// Networks it may be used from; empty means anywhere.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cidrs: Vec<String>,
    /// Accessor of the token that created it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// The workload a machine login issued it to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<workload::WorkloadInfo>,
}

fn service() -> String {
    "service".into()
}

mod access;
pub use access::*;
mod approle;
pub use approle::*;
mod audit;
pub use audit::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_strings_or_string_objects() {
        let w: WriteRequest = serde_json::from_str(r#"{"value":"s"}"#).unwrap();
        assert!(matches!(&w.value, Some(WireValue::Text(s)) if s == "s"));
        assert_eq!(w.cas, None);
        let w: WriteRequest =
            serde_json::from_str(r#"{"value":{"user":"u","password":"p"},"cas":0}"#).unwrap();
        assert!(matches!(&w.value, Some(WireValue::Fields(f)) if f.len() == 2));
        assert_eq!(w.cas, Some(0));
        for bad in [
            r#"{"value":5}"#,
            r#"{"value":{"a":1}}"#,
            r#"{"value":{"a":{"b":"c"}}}"#,
            r#"{"value":["a"]}"#,
            r#"{"value":"s","generate":5}"#,
        ] {
            assert!(serde_json::from_str::<WriteRequest>(bad).is_err(), "{bad}");
        }
        // Neither a value nor a generator parses; the server refuses it (400).
        for neither in [r#"{"value":null}"#, r#"{}"#] {
            let w: WriteRequest = serde_json::from_str(neither).unwrap();
            assert!(w.value.is_none() && w.generate.is_none());
        }
    }

    #[test]
    fn totp_code_request_debug_hides_the_code() {
        let r = TotpCodeRequest {
            code: "493817".into(),
        };
        let shown = format!("{r:?}");
        assert!(!shown.contains("493817"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
    }

    #[test]
    fn bundle_no_offline_copy_is_optional_on_the_wire() {
        // An older server sends no flag: a copy may be kept, as before.
        let r: BundleResponse<WireValue> = serde_json::from_str(r#"{"secrets":[]}"#).unwrap();
        assert!(!r.no_offline_copy);
        let r: BundleResponse<WireValue> =
            serde_json::from_str(r#"{"secrets":[],"no_offline_copy":true}"#).unwrap();
        assert!(r.no_offline_copy);
        // Unset, it is left out, so older clients see the answer unchanged.
        let out = BundleResponse::<WireValue> {
            secrets: vec![],
            no_offline_copy: false,
        };
        assert_eq!(serde_json::to_string(&out).unwrap(), r#"{"secrets":[]}"#);
        let out = BundleResponse::<WireValue> {
            secrets: vec![],
            no_offline_copy: true,
        };
        assert_eq!(
            serde_json::to_string(&out).unwrap(),
            r#"{"secrets":[],"no_offline_copy":true}"#
        );
    }
}
