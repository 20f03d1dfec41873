//! Detection rules: their TOML form (the built-in `rules.toml` and the
//! `[[rules]]` of a repository's `.coffer-scan.toml`) and their compiled form.

use std::collections::HashSet;

use regex::bytes::Regex;
use serde::Deserialize;

use crate::checks::Check;
use crate::filters::Filter;

/// The built-in rules, embedded in the binary.
pub const BUILTIN_RULES: &str = include_str!("rules.toml");

/// Why a rules file was refused.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// The file is not the TOML expected. Only the parser's message is
    /// shown, never the line it quotes: a configuration file may be a
    /// hostile repository's, and its text anything.
    #[error("rules file: {}", .0.message())]
    Toml(#[from] toml::de::Error),
    #[error("rule {id:?}: bad regex: {source}")]
    Regex {
        id: String,
        #[source]
        source: Box<regex::Error>,
    },
    #[error("rule {id:?}: bad skip_paths glob: {source}")]
    Glob {
        id: String,
        #[source]
        source: globset::Error,
    },
    #[error("rule {id:?}: {message}")]
    Invalid { id: String, message: String },
    #[error("rule id {0:?} is defined twice")]
    Duplicate(String),
    #[error("allow pattern {pattern:?}: {source}")]
    AllowPattern {
        pattern: String,
        #[source]
        source: Box<regex::Error>,
    },
    #[error("allowed path {pattern:?}: {source}")]
    AllowPath {
        pattern: String,
        #[source]
        source: globset::Error,
    },
}

/// A rules file: a list of `[[rules]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RulesFile {
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
}

/// One rule as written in TOML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub id: String,
    pub description: String,
    #[serde(default)]
    pub keywords: Vec<String>,
    pub regex: String,
    #[serde(default)]
    pub check: Option<Check>,
    #[serde(default)]
    pub min_entropy: Option<f64>,
    #[serde(default)]
    pub filters: Option<Vec<Filter>>,
    #[serde(default)]
    pub skip_paths: Vec<String>,
    #[serde(default)]
    pub paths: Vec<String>,
    #[serde(default)]
    pub multiline: bool,
    #[serde(default)]
    pub near: Option<Near>,
    #[serde(default)]
    pub priority: Option<u8>,
}

/// A rule reported only near a finding of another rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Near {
    pub rule: String,
    pub lines: usize,
}

/// The most lines a `near` rule may look around (keeps the work per finding
/// bounded whatever a repository's rules file says).
const MAX_NEAR_LINES: usize = 50;

/// Regexes compile to at most this much memory each: a hostile rules file
/// cannot make the scanner allocate without bound.
const REGEX_SIZE_LIMIT: usize = 8 << 20;

/// A compiled rule.
#[derive(Debug)]
pub struct Rule {
    pub id: String,
    pub description: String,
    pub keywords: Vec<String>,
    pub(crate) regex: Regex,
    pub(crate) check: Option<Check>,
    pub(crate) min_entropy: Option<f64>,
    pub(crate) filters: Vec<Filter>,
    pub(crate) skip_paths: Option<globset::GlobSet>,
    pub(crate) only_paths: Option<globset::GlobSet>,
    pub(crate) multiline: bool,
    /// The index of the rule this one must be near, and how many lines.
    pub(crate) near: Option<(usize, usize)>,
    pub(crate) priority: u8,
}

impl Rule {
    /// Whether this rule looks at the file at `path`.
    pub(crate) fn applies_to(&self, path: &str) -> bool {
        self.skip_paths.as_ref().is_none_or(|g| !g.is_match(path))
            && self.only_paths.as_ref().is_none_or(|g| g.is_match(path))
    }
}

pub(crate) fn parse(text: &str) -> Result<Vec<RuleSpec>, RuleError> {
    Ok(toml::from_str::<RulesFile>(text)?.rules)
}

/// Compiles rule specs; `near` references are resolved among them.
pub(crate) fn compile(specs: Vec<RuleSpec>) -> Result<Vec<Rule>, RuleError> {
    let mut seen = HashSet::new();
    for s in &specs {
        if !seen.insert(s.id.clone()) {
            return Err(RuleError::Duplicate(s.id.clone()));
        }
    }
    let ids: Vec<String> = specs.iter().map(|s| s.id.clone()).collect();
    let mut rules = Vec::with_capacity(specs.len());
    for s in specs {
        let invalid = |message: &str| RuleError::Invalid {
            id: s.id.clone(),
            message: message.to_string(),
        };
        if s.id.is_empty()
            || !s
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        {
            return Err(invalid("ids are ASCII letters, digits, '-', '_' and '.'"));
        }
        if s.keywords.is_empty() && s.near.is_none() {
            // Without keywords the regex would run on every line of every file.
            return Err(invalid("needs keywords (or `near`)"));
        }
        if s.keywords.iter().any(|k| k.len() < 2) {
            return Err(invalid("keywords are at least 2 characters"));
        }
        let regex = regex::bytes::RegexBuilder::new(&s.regex)
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| RuleError::Regex {
                id: s.id.clone(),
                source: Box::new(e),
            })?;
        let near = match &s.near {
            None => None,
            Some(n) => {
                let Some(idx) = ids.iter().position(|i| *i == n.rule) else {
                    return Err(invalid("`near` names an unknown rule"));
                };
                if n.rule == s.id {
                    return Err(invalid("`near` names the rule itself"));
                }
                Some((idx, n.lines.min(MAX_NEAR_LINES)))
            }
        };
        if let Some(e) = s.min_entropy
            && !(0.0..=8.0).contains(&e)
        {
            return Err(invalid("min_entropy is between 0 and 8"));
        }
        let globs = |list: &[String]| -> Result<Option<globset::GlobSet>, RuleError> {
            if list.is_empty() {
                return Ok(None);
            }
            let mut b = globset::GlobSetBuilder::new();
            for g in list {
                b.add(globset::Glob::new(g).map_err(|e| RuleError::Glob {
                    id: s.id.clone(),
                    source: e,
                })?);
            }
            Ok(Some(b.build().map_err(|e| RuleError::Glob {
                id: s.id.clone(),
                source: e,
            })?))
        };
        let skip_paths = globs(&s.skip_paths)?;
        let only_paths = globs(&s.paths)?;
        rules.push(Rule {
            filters: s
                .filters
                .unwrap_or_else(|| vec![Filter::Placeholder, Filter::ExampleKey]),
            id: s.id,
            description: s.description,
            keywords: s.keywords,
            regex,
            check: s.check,
            min_entropy: s.min_entropy,
            skip_paths,
            only_paths,
            multiline: s.multiline,
            near,
            priority: s.priority.unwrap_or(10),
        });
    }
    // A `near` rule must point at a rule that is found by keywords, so the
    // order of evaluation is simple: keyword rules first, then `near` rules.
    for r in &rules {
        if let Some((idx, _)) = r.near
            && rules[idx].near.is_some()
        {
            return Err(RuleError::Invalid {
                id: r.id.clone(),
                message: "`near` names a rule that is itself a `near` rule".into(),
            });
        }
    }
    Ok(rules)
}
