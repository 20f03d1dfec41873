//! `coffer scan --known` and `--respond`: the exact values coffer stores,
//! found in files by keyed fingerprint, and the leak response offered for
//! each one found.
//!
//! The server hands out fingerprints (`POST /api/v1/fingerprints`, which
//! needs `list` only); [`KnownMatcher`] is the scanner's hook
//! (`coffer_scan::Matcher`): it tags every candidate string of every line
//! (`coffer_client::candidates`) and reports those that match a stored
//! value as `coffer-known-value` findings naming the secret's path and
//! version. No value is fetched, and a found value is printed redacted like
//! any other finding.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};

use coffer_client::KnownValues;
use coffer_scan::{Matcher, MatcherHit};

use crate::exit::Status;
use crate::leak_cmd::LeakArgs;
use crate::scan_cmd::ScanArgs;
use crate::{output, settings};

/// The rule id of a stored value found in a file.
pub const RULE: &str = "coffer-known-value";

/// The scanner's hook for values coffer stores.
pub struct KnownMatcher {
    known: KnownValues,
    /// What each description names: (path, version, compromised), for
    /// `--respond`.
    named: Mutex<HashMap<String, (String, u64)>>,
}

impl KnownMatcher {
    fn describe(p: &coffer_api::leak::FingerprintPlace) -> String {
        let mut d = format!("the value of version {} of {}", p.version, p.path);
        if let Some(f) = &p.field {
            d.push_str(&format!(", field {f}"));
        }
        if p.part == "line" {
            d.push_str(" (one line of it)");
        }
        if p.compromised {
            d.push_str(", marked compromised");
        }
        d
    }
}

impl Matcher for KnownMatcher {
    fn find(&self, content: &[u8], out: &mut Vec<MatcherHit>) {
        let mut offset = 0;
        for raw in content.split(|b| *b == b'\n') {
            let start = offset;
            offset += raw.len() + 1;
            let Ok(line) = std::str::from_utf8(raw) else {
                continue;
            };
            let trimmed = line.trim();
            if trimmed.chars().count() < coffer_client::MIN_CANDIDATE {
                continue;
            }
            let mut seen = std::collections::HashSet::new();
            for c in coffer_client::candidates(line) {
                for place in self.known.matches(&c) {
                    let description = KnownMatcher::describe(place);
                    if !seen.insert(description.clone()) {
                        continue;
                    }
                    // Where the candidate sits in the line; an unescaped
                    // string (not there as such) is reported as the line.
                    let (s, e) = match line.find(c.as_str()) {
                        Some(i) => (i, i + c.len()),
                        None => {
                            let lead = line.len() - line.trim_start().len();
                            (lead, lead + trimmed.len())
                        }
                    };
                    self.named
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(description.clone(), (place.path.clone(), place.version));
                    out.push(MatcherHit {
                        rule: RULE.to_string(),
                        description,
                        start: start + s,
                        end: start + e,
                    });
                }
            }
        }
    }
}

/// `coffer scan`, with `--known` and `--respond` when given.
pub async fn scan(g: &crate::cli::Global, a: ScanArgs) -> anyhow::Result<Status> {
    if a.known.is_empty() {
        return crate::scan_cmd::run(a);
    }
    // `--known` takes an optional value, so `coffer scan --known src`
    // would read `src` as the prefix and scan the current directory: a
    // prefix must end with `/`.
    if let Some(p) = a.known.iter().find(|p| !p.is_empty() && !p.ends_with('/')) {
        return Err(crate::exit::fail(
            Status::Usage,
            format!(
                "--known takes a prefix ending with / (or nothing), not {}; to scan a path, \
                 write it before --known or use --known=PREFIX",
                output::visible(p)
            ),
        ));
    }
    let client = settings::client(g)?;
    let mut known = KnownValues::new();
    for prefix in &a.known {
        known.add(client.fingerprints(prefix).await?)?;
    }
    let matcher = Arc::new(KnownMatcher {
        known,
        named: Mutex::new(HashMap::new()),
    });
    let respond = a.respond;
    let yes = a.yes;
    let (status, reported) = crate::scan_cmd::run_with(a, Some(matcher.clone()))?;
    if !respond {
        return Ok(status);
    }
    // Each leaked version once, at its first finding.
    let mut leaks: Vec<(String, u64, String)> = Vec::new();
    {
        let named = matcher.named.lock().unwrap_or_else(|p| p.into_inner());
        for f in reported.iter().filter(|f| f.rule == RULE) {
            if let Some((path, version)) = named.get(&f.description)
                && !leaks.iter().any(|(p, v, _)| p == path && v == version)
            {
                leaks.push((path.clone(), *version, format!("{}:{}", f.file, f.line)));
            }
        }
    }
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    for (path, version, place) in leaks {
        let shown = output::visible(&path).into_owned();
        if !yes {
            if !interactive {
                eprintln!(
                    "coffer scan: found version {version} of {shown}; not responding without a \
                     terminal (pass --yes, or run `coffer leak {shown} --version {version} \
                     --reason ...`)"
                );
                continue;
            }
            eprint!(
                "Version {version} of {shown} is in {}. Mark it compromised, list its readers \
                 and rotate it (coffer leak)? [y/N] ",
                output::visible(&place)
            );
            std::io::stderr().flush()?;
            let mut answer = String::new();
            std::io::stdin().read_line(&mut answer)?;
            if !matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
                continue;
            }
        }
        let args = LeakArgs {
            path: path.clone(),
            version: Some(version),
            reason: reason(&place),
            rotate: false,
            stage: false,
            no_rotate: false,
            generate: None,
            grace: None,
            force: false,
            json: false,
        };
        if let Err(e) = crate::leak_cmd::leak(g, args).await {
            crate::exit::report(&e);
        }
    }
    // The scan's own status: secrets were found (9) whatever was done.
    Ok(status)
}

/// The reason recorded for a leak found by the scan: where it was found,
/// on one line, at most 300 characters (the file name is text someone
/// else chose).
fn reason(place: &str) -> String {
    let place: String = output::visible(place)
        .chars()
        .filter(|c| !c.is_control())
        .take(260)
        .collect();
    format!("found by coffer scan in {place}")
}
