//! Reports: text for people, JSON for scripts, SARIF 2.1.0 for code-scanning
//! tools. Each shows a finding's file, line, rule and redacted match, never
//! the secret.

use serde::Serialize;
use serde_json::json;

use crate::Finding;

/// Where a finding came from in git history.
#[derive(Debug, Clone, Serialize)]
pub struct Commit {
    pub commit: String,
    pub author: String,
    pub date: String,
}

/// A finding as reported: its file (as given, possibly not UTF-8, shown
/// lossily) and, for history scans, its commit.
#[derive(Debug, Clone, Serialize)]
pub struct Reported {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub rule: String,
    pub description: String,
    /// The match, redacted: a short prefix and its length.
    pub redacted: String,
    pub fingerprint: String,
    #[serde(skip_serializing_if = "Option::is_none", flatten)]
    pub commit: Option<Commit>,
}

impl Reported {
    pub fn new(file: &str, f: &Finding) -> Reported {
        Reported {
            file: file.to_string(),
            line: f.line,
            column: f.column,
            rule: f.rule.clone(),
            description: f.description.clone(),
            redacted: f.redacted.clone(),
            fingerprint: f.fingerprint.clone(),
            commit: None,
        }
    }
}

/// Escapes control characters (newlines, escape sequences, bidi overrides)
/// so a hostile file name cannot forge or hide lines of the report.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || is_bidi_or_invisible(c) => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

fn is_bidi_or_invisible(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// One line per finding: `file:line:column: rule: redacted (description)`,
/// plus the commit for history scans.
pub fn text(findings: &[Reported]) -> String {
    let mut out = String::new();
    for f in findings {
        out.push_str(&format!(
            "{}:{}:{}: {}: {} ({})",
            escape(&f.file),
            f.line,
            f.column,
            f.rule,
            escape(&f.redacted),
            escape(&f.description)
        ));
        if let Some(c) = &f.commit {
            out.push_str(&format!(
                " in commit {} by {} on {}",
                escape(&c.commit),
                escape(&c.author),
                escape(&c.date)
            ));
        }
        out.push('\n');
    }
    out
}

/// `{"findings": [...]}`.
pub fn json(findings: &[Reported]) -> String {
    let mut s = serde_json::to_string_pretty(&json!({ "findings": findings })).expect("JSON");
    s.push('\n');
    s
}

/// The SARIF 2.1.0 schema's address.
pub const SARIF_SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// A SARIF 2.1.0 log with one run: the rules that fired and a result for
/// each finding (`partialFingerprints` carries the baseline fingerprint, so
/// code-scanning tools track a finding across commits).
pub fn sarif(findings: &[Reported], rules: &[(String, String)], tool_version: &str) -> String {
    let mut used: Vec<&(String, String)> = rules
        .iter()
        .filter(|(id, _)| findings.iter().any(|f| &f.rule == id))
        .collect();
    // Rules from matchers (known values) are not in the rules list.
    let extra: Vec<(String, String)> = findings
        .iter()
        .filter(|f| !rules.iter().any(|(id, _)| *id == f.rule))
        .map(|f| (f.rule.clone(), f.description.clone()))
        .collect();
    for e in &extra {
        if !used.iter().any(|(id, _)| *id == e.0) {
            used.push(e);
        }
    }
    let rule_objs: Vec<_> = used
        .iter()
        .map(|(id, description)| {
            json!({
                "id": id,
                "name": id,
                "shortDescription": { "text": description },
                "defaultConfiguration": { "level": "error" },
            })
        })
        .collect();
    let results: Vec<_> = findings
        .iter()
        .map(|f| {
            let index = used
                .iter()
                .position(|(id, _)| *id == f.rule)
                .expect("rule listed");
            let mut text = format!("{}: {}", f.description, f.redacted);
            if let Some(c) = &f.commit {
                text.push_str(&format!(
                    " (commit {} by {} on {})",
                    c.commit, c.author, c.date
                ));
            }
            let mut result = json!({
                "ruleId": f.rule,
                "ruleIndex": index,
                "level": "error",
                "message": { "text": text },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": uri(&f.file) },
                        "region": { "startLine": f.line.max(1), "startColumn": f.column.max(1) },
                    }
                }],
                "partialFingerprints": { "cofferScan/v1": f.fingerprint },
            });
            if let Some(c) = &f.commit {
                result["properties"] =
                    json!({ "commit": c.commit, "author": c.author, "date": c.date });
            }
            result
        })
        .collect();
    let log = json!({
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "coffer scan",
                    "version": tool_version,
                    "rules": rule_objs,
                }
            },
            "results": results,
        }]
    });
    let mut s = serde_json::to_string_pretty(&log).expect("JSON");
    s.push('\n');
    s
}

/// A relative URI reference for a path: every byte outside the unreserved
/// set and `/` percent-encoded (RFC 3986).
pub fn uri(path: &str) -> String {
    let path = path.strip_prefix("./").unwrap_or(path);
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
