//! Bodies of leak detection and response: the fingerprints a scanner
//! matches files against (`POST /api/v1/fingerprints`) and marking a
//! version compromised (`POST /api/v1/compromise/{path}`).

use serde::{Deserialize, Serialize};

/// The fingerprint scheme a [`FingerprintResponse`] uses: HMAC-SHA256
/// tags and labels as `coffer_crypto::fingerprint` computes them.
pub const FINGERPRINT_ALGORITHM: &str = "coffer.fingerprint.v1";

/// `POST /api/v1/fingerprints`: the fingerprints of the values stored under
/// a prefix (recursively). Needs `list` on the prefix; no `read`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FingerprintRequest {
    /// The prefix (ends with `/`), or the empty string for everything.
    pub prefix: String,
}

/// One place a fingerprinted value is stored. Which tag it belongs to is
/// not said: a scanner that found a value computes the label from it
/// (`coffer_crypto::fingerprint::label` under the value's name key) and
/// compares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FingerprintPlace {
    /// The secret's path.
    pub path: String,
    /// The version.
    pub version: u64,
    /// The field of a fields value (absent for a text value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// `value` (the whole value or field, trimmed) or `line` (one line of
    /// one that spans lines).
    pub part: String,
    /// Whether the version is marked compromised.
    pub compromised: bool,
    /// The label, 64 hex digits.
    pub label: String,
}

/// Answer of `POST /api/v1/fingerprints`. Holds no value, but its key lets
/// a holder check guesses against the tags, so it is never logged (its
/// `Debug` leaves the key out).
#[derive(Clone, Serialize, Deserialize)]
pub struct FingerprintResponse {
    /// The prefix, canonical.
    pub prefix: String,
    /// [`FINGERPRINT_ALGORITHM`].
    pub algorithm: String,
    /// The fresh key of this answer, 64 hex digits.
    pub key: String,
    /// Parts estimated below this many bits are not fingerprinted.
    pub min_bits: f64,
    /// The tags of the fingerprinted parts, each once, sorted, 64 hex
    /// digits each.
    pub tags: Vec<String>,
    /// Every fingerprinted place, in path and version order.
    pub places: Vec<FingerprintPlace>,
    /// Secrets covered.
    pub secrets: usize,
    /// Versions (not destroyed) whose values were looked at.
    pub versions: usize,
}

impl std::fmt::Debug for FingerprintResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FingerprintResponse")
            .field("prefix", &self.prefix)
            .field("algorithm", &self.algorithm)
            .field("tags", &self.tags.len())
            .field("places", &self.places.len())
            .field("secrets", &self.secrets)
            .field("versions", &self.versions)
            .finish_non_exhaustive()
    }
}

/// `POST /api/v1/compromise/{path}`: marks a version compromised. Needs
/// `rotate` on the path.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompromiseRequest {
    /// The version (default: the one `current` names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// Where or how it leaked: free text of 4 to 500 characters on one
    /// line. Never the value.
    pub reason: String,
}

/// Answer of `POST /api/v1/compromise/{path}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompromiseResponse {
    /// Canonical path.
    pub path: String,
    /// The version marked.
    pub version: u64,
    /// When it was marked (the first mark, if it was marked before).
    pub compromised_at: String,
    /// Why (the first mark's reason).
    pub reason: String,
    /// Whether this request marked it (false: it was marked already).
    pub newly_marked: bool,
    /// Whether it is the version `current` names, which readers get until
    /// a rotation replaces it.
    pub is_current: bool,
}
