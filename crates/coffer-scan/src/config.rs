//! A repository's `.coffer-scan.toml`: extra rules, disabled rules, and
//! allowed paths and patterns.
//!
//! ```toml
//! [allow]
//! paths = ["tests/fixtures/**", "docs/*.md"]   # globs; findings there are not reported
//! patterns = ['''^sk_test_''']                  # regexes matched against each secret
//! rules = ["generic-secret"]                    # built-in rules turned off
//!
//! [[rules]]                                     # extra rules, as in the built-in rules.toml
//! id = "acme-key"
//! description = "ACME internal API key"
//! keywords = ["acme_"]
//! regex = '''\b(acme_[0-9a-f]{32})\b'''
//! ```

use regex::bytes::{Regex, RegexSet};
use serde::Deserialize;

use crate::rules::{RuleError, RuleSpec};

/// The name of the per-repository configuration file.
pub const CONFIG_FILE: &str = ".coffer-scan.toml";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    allow: AllowSection,
    #[serde(default)]
    rules: Vec<RuleSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowSection {
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    patterns: Vec<String>,
    #[serde(default)]
    rules: Vec<String>,
}

/// A parsed repository configuration.
#[derive(Debug, Default)]
pub struct Config {
    pub(crate) extra_rules: Vec<RuleSpec>,
    pub(crate) disabled_rules: Vec<String>,
    allowed_paths: Option<globset::GlobSet>,
    allowed_patterns: Option<RegexSet>,
}

impl Config {
    /// Parses the text of a `.coffer-scan.toml`.
    pub fn parse(text: &str) -> Result<Config, RuleError> {
        let file: ConfigFile = toml::from_str(text)?;
        let allowed_paths = if file.allow.paths.is_empty() {
            None
        } else {
            let mut b = globset::GlobSetBuilder::new();
            for p in &file.allow.paths {
                let glob = globset::GlobBuilder::new(p)
                    .literal_separator(true)
                    .build()
                    .map_err(|e| RuleError::AllowPath {
                        pattern: p.clone(),
                        source: e,
                    })?;
                b.add(glob);
            }
            Some(b.build().map_err(|e| RuleError::AllowPath {
                pattern: file.allow.paths.join(", "),
                source: e,
            })?)
        };
        for p in &file.allow.patterns {
            Regex::new(p).map_err(|e| RuleError::AllowPattern {
                pattern: p.clone(),
                source: Box::new(e),
            })?;
        }
        let allowed_patterns = if file.allow.patterns.is_empty() {
            None
        } else {
            Some(
                regex::bytes::RegexSetBuilder::new(&file.allow.patterns)
                    .size_limit(8 << 20)
                    .build()
                    .map_err(|e| RuleError::AllowPattern {
                        pattern: file.allow.patterns.join(", "),
                        source: Box::new(e),
                    })?,
            )
        };
        Ok(Config {
            extra_rules: file.rules,
            disabled_rules: file.allow.rules,
            allowed_paths,
            allowed_patterns,
        })
    }

    /// Whether findings in `path` (relative to the repository, `/`-separated)
    /// are all allowed.
    pub fn path_allowed(&self, path: &str) -> bool {
        let path = path.strip_prefix("./").unwrap_or(path);
        self.allowed_paths
            .as_ref()
            .is_some_and(|g| g.is_match(path))
    }

    /// Whether an allowed pattern matches the secret.
    pub fn pattern_allowed(&self, secret: &[u8]) -> bool {
        self.allowed_patterns
            .as_ref()
            .is_some_and(|s| s.is_match(secret))
    }
}
