//! Baselines: the findings a repository has accepted, so only new ones are
//! reported.
//!
//! A baseline is JSON: `{"version": 1, "findings": [{"fingerprint", "rule",
//! "file", "line"}]}`. A finding is identified by its fingerprint, SHA-256
//! over the rule, the file and the secret (see [`crate::fingerprint`]); the
//! baseline never holds the secret. The line is kept for people reading the
//! file and ignored when matching, so a baselined finding stays baselined
//! when lines above it move.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::Finding;
use crate::report::Reported;

/// Why a baseline file was refused.
#[derive(Debug, thiserror::Error)]
#[error("not a coffer scan baseline: {0}")]
pub struct BaselineError(String);

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BaselineFile {
    version: u32,
    findings: Vec<Entry>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    fingerprint: String,
    rule: String,
    file: String,
    line: usize,
}

/// A loaded baseline.
#[derive(Debug, Default)]
pub struct Baseline {
    fingerprints: HashSet<String>,
}

impl Baseline {
    /// Parses a baseline file's text.
    pub fn parse(text: &str) -> Result<Baseline, BaselineError> {
        let f: BaselineFile =
            serde_json::from_str(text).map_err(|e| BaselineError(e.to_string()))?;
        if f.version != 1 {
            return Err(BaselineError(format!("unknown version {}", f.version)));
        }
        Ok(Baseline {
            fingerprints: f.findings.into_iter().map(|e| e.fingerprint).collect(),
        })
    }

    /// Whether the baseline holds this finding.
    pub fn contains(&self, f: &Finding) -> bool {
        self.contains_fingerprint(&f.fingerprint)
    }

    /// Whether the baseline holds a finding with this fingerprint.
    pub fn contains_fingerprint(&self, fingerprint: &str) -> bool {
        self.fingerprints.contains(fingerprint)
    }

    /// The number of findings in the baseline.
    pub fn len(&self) -> usize {
        self.fingerprints.len()
    }

    /// Whether the baseline is empty.
    pub fn is_empty(&self) -> bool {
        self.fingerprints.is_empty()
    }
}

/// The text of a baseline holding `findings`, sorted so that rewriting an
/// unchanged baseline gives the same bytes.
pub fn write_reported(findings: &[Reported]) -> String {
    let mut entries: Vec<Entry> = findings
        .iter()
        .map(|f| Entry {
            fingerprint: f.fingerprint.clone(),
            rule: f.rule.clone(),
            file: f.file.clone(),
            line: f.line,
        })
        .collect();
    entries.sort_by(|a, b| {
        (&a.file, a.line, &a.rule, &a.fingerprint).cmp(&(&b.file, b.line, &b.rule, &b.fingerprint))
    });
    let mut seen = HashSet::new();
    entries.retain(|e| seen.insert(e.fingerprint.clone()));
    let mut s = serde_json::to_string_pretty(&BaselineFile {
        version: 1,
        findings: entries,
    })
    .expect("a baseline serializes");
    s.push('\n');
    s
}
