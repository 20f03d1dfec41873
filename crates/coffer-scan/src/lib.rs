//! Finds secrets in text. Pure: the caller reads files and runs git.
//!
//! Rules live in a TOML data file embedded in the binary ([`rules::BUILTIN_RULES`]),
//! extended per repository by `.coffer-scan.toml` ([`Config`]). A [`Scanner`]
//! runs one keyword pass over the bytes, then only the regexes of rules whose
//! keywords occur, on the lines where they occur; then structural checks
//! (checksums, JWT headers), filters (placeholders, example keys, lookups,
//! hashes...), inline allow comments (`coffer:allow`,
//! `coffer:allow-next-line`) and allowlists. A [`Matcher`] adds findings from
//! elsewhere (exact values a coffer server holds). Findings never expose the
//! secret: they carry a redacted form and a fingerprint for baselines.

#![forbid(unsafe_code)]

pub mod baseline;
mod checks;
mod config;
pub mod corpus;
mod engine;
mod filters;
pub mod report;
pub mod rules;

pub use baseline::Baseline;
pub use checks::Check;
pub use config::{CONFIG_FILE, Config};
pub use engine::{
    ALLOW_MARKER, ALLOW_NEXT_LINE_MARKER, Finding, Matcher, MatcherHit, Scanner, fingerprint,
    is_binary, redact,
};
pub use filters::{Filter, entropy};
pub use rules::{Rule, RuleError};
