//! Fingerprints of the values stored under a prefix, for `coffer scan
//! --known`: a scanner finds the exact values coffer holds in files without
//! receiving a value and without `read` on any secret.
//!
//! The caller needs `list` on the prefix; the secrets fingerprinted are the
//! ones a listing of it shows with their metadata ([`Reveals::Metadata`]:
//! `list` or `read` on the secret, no `deny`), recursively, including
//! secrets whose current version is deleted. Of each, every version that is
//! not destroyed (current, previous, pending and older) is opened by
//! [`read::fingerprint_listed`] under a fresh per-request key, and only its
//! parts strong enough that offline guessing is hopeless are fingerprinted
//! ([`strength::fingerprintable`], [`strength::FINGERPRINT_MIN_BITS`]).
//! Protected prefixes are included for every caller, people too: a
//! fingerprint of such a value tells nothing to whoever does not already
//! hold it, and a production value found on a developer's machine is the
//! leak that most needs finding. ARCHITECTURE.md says why this resists
//! guessing.
//!
//! [`read::fingerprint_listed`]: crate::read
//! [`strength::fingerprintable`]: crate::strength::fingerprintable
//! [`strength::FINGERPRINT_MIN_BITS`]: crate::strength::FINGERPRINT_MIN_BITS

use coffer_crypto::fingerprint::FingerprintKey;
use coffer_store::VersionState;

use crate::auth::{Identity, Listing, Reveals};
use crate::error::{CoreError, InvalidInput, Result};
use crate::path::ListPrefix;
use crate::read::{self, Listed};
use crate::{Coffer, DEFAULT_LIST_LIMIT, ListOptions, now_ms};

/// Most secrets one fingerprint request covers; a larger tree is asked for
/// prefix by prefix.
pub const MAX_FINGERPRINT_SECRETS: usize = 10_000;

/// Most versions one fingerprint request opens, and most bytes of
/// ciphertext: every version is opened and judged (zxcvbn takes
/// milliseconds a part), so the work one request may ask of the server is
/// bounded by these as well as by the number of secrets.
pub const MAX_FINGERPRINT_VERSIONS: usize = 50_000;
const MAX_FINGERPRINT_BYTES: usize = 64 << 20;

/// One place a fingerprinted value is stored: a secret's version, and the
/// field and part of its value. Its `label` proves it to a scanner that
/// holds the value, and to no one else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FingerprintPlace {
    /// The secret's path.
    pub path: String,
    /// The version.
    pub version: u64,
    /// The field of a fields value; `None` for a text value.
    pub field: Option<String>,
    /// `value` (the whole trimmed value or field) or `line` (one line of
    /// one that spans lines).
    pub part: &'static str,
    /// Whether the version is marked compromised.
    pub compromised: bool,
    /// The label: HMAC over the place under a key only the value gives.
    pub label: [u8; 32],
}

/// The fingerprints of the values under a prefix.
pub struct Fingerprints {
    /// The prefix, canonical.
    pub prefix: String,
    /// The fresh key everything is computed under (the scanner tags its
    /// candidates with it).
    pub key: FingerprintKey,
    /// The tags of every fingerprinted part, each once, sorted: which place
    /// a tag belongs to is not said.
    pub tags: Vec<[u8; 32]>,
    /// Every fingerprinted place, in path and version order.
    pub places: Vec<FingerprintPlace>,
    /// Secrets covered.
    pub secrets: usize,
    /// Versions opened.
    pub versions: usize,
}

impl Coffer {
    /// Fingerprints of the values stored under `prefix` (see the module
    /// documentation). Needs `list` on the prefix; the decision on the
    /// prefix is the request's audited one.
    pub async fn fingerprints(&self, identity: &Identity, prefix: &str) -> Result<Fingerprints> {
        let prefix = ListPrefix::parse(prefix)?;
        let keys = self.unsealed()?;
        let names = self.listed_names(identity, &prefix).await?;
        let authorized = self.authorize(identity, crate::Operation::List, prefix.as_str())?;
        let listing = Listing::new(
            &authorized,
            self.access_model(),
            identity,
            Reveals::Metadata,
            now_ms(),
        );
        let mut listed: Vec<Listed> = Vec::new();
        let mut bytes = 0usize;
        let too_much = || {
            CoreError::Invalid(InvalidInput::TooMuchToFingerprint {
                prefix: prefix.as_str().to_string(),
                limit: MAX_FINGERPRINT_VERSIONS,
            })
        };
        let secrets = names.len();
        for name in &names {
            let path = format!("{}{name}", prefix.as_str());
            for info in self.store.history(&path).await? {
                if matches!(info.state, VersionState::Destroyed(_)) {
                    continue;
                }
                // The history has no ciphertext; a version destroyed or a
                // secret moved meanwhile is simply not there.
                let Some(record) = self.store.get_version(&path, info.version).await? else {
                    continue;
                };
                if matches!(record.state, VersionState::Destroyed(_)) {
                    continue;
                }
                let size = record.ciphertext.len();
                if let Some(l) = read::listed_version(&listing, name, record) {
                    bytes += size;
                    if listed.len() >= MAX_FINGERPRINT_VERSIONS || bytes > MAX_FINGERPRINT_BYTES {
                        return Err(too_much());
                    }
                    listed.push(l);
                }
            }
        }
        let versions = listed.len();
        let prefix = prefix.as_str().to_string();
        // Opening and estimating (zxcvbn takes milliseconds a part) run off
        // the request threads.
        tokio::task::spawn_blocking(move || {
            let key = FingerprintKey::random();
            let mut tags = Vec::new();
            let mut places = Vec::new();
            for l in &listed {
                let record = l.record();
                for p in read::fingerprint_listed(&keys, l, &key)? {
                    tags.push(p.tag);
                    places.push(FingerprintPlace {
                        path: record.path.clone(),
                        version: record.version,
                        field: p.field,
                        part: p.part,
                        compromised: record.compromised.is_some(),
                        label: p.label,
                    });
                }
            }
            tags.sort_unstable();
            tags.dedup();
            Ok(Fingerprints {
                prefix,
                key,
                tags,
                places,
                secrets,
                versions,
            })
        })
        .await
        // A panic there is a bug: it is the request's, answered as a 500.
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    /// Every secret below `prefix` (recursively, deleted ones included)
    /// that a listing with metadata shows the caller, by name relative to
    /// the prefix; refused beyond [`MAX_FINGERPRINT_SECRETS`].
    async fn listed_names(&self, identity: &Identity, prefix: &ListPrefix) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .enumerate(
                    identity,
                    prefix,
                    Reveals::Metadata,
                    ListOptions {
                        recursive: true,
                        include_deleted: true,
                        after: after.take(),
                        limit: DEFAULT_LIST_LIMIT,
                    },
                )
                .await?;
            names.extend(
                page.entries
                    .into_iter()
                    .filter(|e| !e.folder)
                    .map(|e| e.name),
            );
            if names.len() > MAX_FINGERPRINT_SECRETS {
                return Err(CoreError::Invalid(InvalidInput::TooManyUnder {
                    prefix: prefix.as_str().to_string(),
                    limit: MAX_FINGERPRINT_SECRETS,
                }));
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(names),
            }
        }
    }
}
