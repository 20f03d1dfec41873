//! The scanner: one keyword pass over a file's bytes (Aho-Corasick), then the
//! regexes of the rules whose keywords occur, only on the lines (or, on very
//! long lines, the windows) where they occur; then checks, filters, allow
//! comments and allowlists.

use std::collections::HashSet;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::filters::entropy;
use crate::rules::{self, Rule, RuleError};

/// The inline comment that allows a finding on its line.
pub const ALLOW_MARKER: &[u8] = b"coffer:allow";
/// The inline comment that allows findings on the next line.
pub const ALLOW_NEXT_LINE_MARKER: &[u8] = b"coffer:allow-next-line";

/// Lines longer than this are searched in windows around keyword hits, so a
/// megabyte-long minified line with a keyword every few bytes costs time
/// proportional to its length, not to its length times its hits.
const LONG_LINE: usize = 4096;
/// Half the width of a window on a long line.
const WINDOW: usize = 1024;
/// How far a multi-line rule (a private key block) may reach from its line.
const MULTILINE_REACH: usize = 64 * 1024;
/// Secrets longer than this are not reported (nor hashed): no credential is.
const MAX_SECRET: usize = 16 * 1024;

/// A source of findings besides the rules, such as the exact values a coffer
/// server holds (matched by keyed fingerprint). Its hits go through the same
/// allow comments, allowlists, baseline and redaction as rule findings.
pub trait Matcher: Send + Sync {
    /// Appends the matches in `content` to `out`.
    fn find(&self, content: &[u8], out: &mut Vec<MatcherHit>);
}

/// A match reported by a [`Matcher`].
#[derive(Debug, Clone)]
pub struct MatcherHit {
    /// The rule id reported with the finding (e.g. `coffer-known-value`).
    pub rule: String,
    /// What was found, e.g. the secret path and version it matched. Must not
    /// contain the value.
    pub description: String,
    /// Byte range of the match in the content.
    pub start: usize,
    pub end: usize,
}

/// One finding. The matched secret is kept only to hash and redact it; it has
/// no accessor, `Debug` shows only the redacted form.
pub struct Finding {
    pub rule: String,
    pub description: String,
    /// 1-based line of the secret's first byte.
    pub line: usize,
    /// 1-based byte column of the secret's first byte.
    pub column: usize,
    /// Byte range of the secret in the scanned content.
    pub start: usize,
    pub end: usize,
    /// The secret redacted: a short prefix and its length.
    pub redacted: String,
    /// Identifies the finding in a baseline: SHA-256 over the rule, the file
    /// and the secret (never the secret itself). Independent of the line, so
    /// edits elsewhere in the file keep a baselined finding baselined.
    pub fingerprint: String,
}

impl std::fmt::Debug for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Finding")
            .field("rule", &self.rule)
            .field("line", &self.line)
            .field("column", &self.column)
            .field("redacted", &self.redacted)
            .finish_non_exhaustive()
    }
}

/// Redacts a secret: at most 4 leading characters, never more than a quarter
/// of it, then its length.
pub fn redact(secret: &[u8]) -> String {
    let text = String::from_utf8_lossy(secret);
    let chars: Vec<char> = text.chars().collect();
    let shown = (chars.len() / 4).min(4);
    let prefix: String = chars[..shown]
        .iter()
        .map(|c| if c.is_control() { '?' } else { *c })
        .collect();
    format!("{prefix}…({} chars)", chars.len())
}

/// The baseline fingerprint of a finding.
pub fn fingerprint(rule: &str, path: &str, secret: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b"coffer-scan-v1\0");
    h.update(rule.as_bytes());
    h.update(b"\0");
    h.update(path.as_bytes());
    h.update(b"\0");
    h.update(secret);
    let d = h.finalize();
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// A compiled scanner: rules, their keyword automaton, the repository's
/// allowlists and any extra matchers. Cheap to share between threads.
pub struct Scanner {
    rules: Vec<Rule>,
    /// Keyword automaton; pattern `i` triggers the rules in `triggers[i]`.
    keywords: AhoCorasick,
    triggers: Vec<Vec<usize>>,
    /// `near` rules and the rule each one is near.
    near_rules: Vec<usize>,
    config: Config,
    matchers: Vec<Arc<dyn Matcher>>,
}

impl std::fmt::Debug for Scanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scanner")
            .field("rules", &self.rules.len())
            .field("matchers", &self.matchers.len())
            .finish_non_exhaustive()
    }
}

impl Scanner {
    /// The built-in rules with the given repository configuration (its extra
    /// rules, disabled rules and allowlists).
    pub fn new(config: Config) -> Result<Scanner, RuleError> {
        let mut specs = rules::parse(rules::BUILTIN_RULES)?;
        specs.retain(|s| !config.disabled_rules.contains(&s.id));
        specs.extend(config.extra_rules.iter().cloned());
        let rules = rules::compile(specs)?;

        // Each distinct keyword (ASCII case folded) triggers every rule with
        // a keyword that it contains: the automaton reports non-overlapping
        // leftmost-longest matches, so a shorter keyword inside a longer one
        // must be covered by the longer one's triggers.
        let mut words: Vec<String> = Vec::new();
        for r in &rules {
            for k in &r.keywords {
                let k = k.to_ascii_lowercase();
                if !words.contains(&k) {
                    words.push(k);
                }
            }
        }
        let triggers = words
            .iter()
            .map(|w| {
                rules
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| {
                        r.keywords
                            .iter()
                            .any(|k| w.contains(&k.to_ascii_lowercase()))
                    })
                    .map(|(i, _)| i)
                    .collect()
            })
            .collect();
        let keywords = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .build(&words)
            .map_err(|e| RuleError::Invalid {
                id: "keywords".into(),
                message: e.to_string(),
            })?;
        let near_rules = (0..rules.len())
            .filter(|&i| rules[i].near.is_some())
            .collect();
        Ok(Scanner {
            rules,
            keywords,
            triggers,
            near_rules,
            config,
            matchers: Vec::new(),
        })
    }

    /// Adds a source of findings besides the rules.
    pub fn add_matcher(&mut self, m: Arc<dyn Matcher>) {
        self.matchers.push(m);
    }

    /// The compiled rules, in evaluation order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Whether the repository configuration allows every finding in `path`.
    pub fn path_allowed(&self, path: &str) -> bool {
        self.config.path_allowed(path)
    }

    /// Finds the secrets in `content`, the bytes of the file at `path` (the
    /// path is used for allowlists, rules' skip_paths and fingerprints).
    /// Findings are in order of position.
    pub fn scan(&self, path: &str, content: &[u8]) -> Vec<Finding> {
        if self.path_allowed(path) {
            return Vec::new();
        }
        let mut raw: Vec<Raw> = Vec::new();
        let mut seen: HashSet<(usize, usize, usize)> = HashSet::new();

        // Candidate regions: (rule, region start, region end).
        let mut regions: Vec<(usize, usize, usize)> = Vec::new();
        // The line of the previous hit: hits come in order, so a long line
        // with many hits is measured once, not once per hit.
        let mut line = (0usize, 0usize);
        let mut have_line = false;
        for m in self.keywords.find_iter(content) {
            if !have_line || m.start() > line.1 {
                line = line_bounds(content, m.start());
                have_line = true;
            }
            let (ls, le) = line;
            for &ri in &self.triggers[m.pattern().as_usize()] {
                let rule = &self.rules[ri];
                let region = if rule.multiline {
                    (ls, (ls + MULTILINE_REACH).min(content.len()))
                } else if le - ls > LONG_LINE {
                    (
                        m.start().saturating_sub(WINDOW).max(ls),
                        (m.end() + WINDOW).min(le),
                    )
                } else {
                    (ls, le)
                };
                // Merge with the previous region of the same rule when they overlap.
                if let Some(last) = regions.iter_mut().rev().take(8).find(|r| r.0 == ri)
                    && region.1 >= last.1
                    && region.0 <= last.2
                {
                    last.2 = last.2.max(region.1);
                    continue;
                }
                regions.push((ri, region.0, region.1));
            }
        }
        for (ri, s, e) in regions {
            let rule = &self.rules[ri];
            if !rule.applies_to(path) {
                continue;
            }
            self.run_rule(ri, content, s, e, &mut raw, &mut seen);
        }

        // Rules that only count near another rule's finding.
        for &ri in &self.near_rules {
            let rule = &self.rules[ri];
            let (target, lines) = rule.near.expect("near rule");
            if !rule.applies_to(path) {
                continue;
            }
            let anchors: Vec<usize> = raw
                .iter()
                .filter(|r| r.rule == target)
                .map(|r| r.start)
                .collect();
            for a in anchors {
                let (s, e) = lines_around(content, a, lines);
                self.run_rule(ri, content, s, e, &mut raw, &mut seen);
            }
        }

        // A more specific rule's finding hides a less specific one on the same bytes.
        raw.sort_by_key(|r| (r.start, std::cmp::Reverse(self.rules[r.rule].priority)));
        let mut kept: Vec<Raw> = Vec::with_capacity(raw.len());
        for r in raw {
            let p = self.rules[r.rule].priority;
            let hidden = kept
                .iter()
                .rev()
                .take(16)
                .any(|k| k.start < r.end && r.start < k.end && self.rules[k.rule].priority > p);
            if !hidden {
                // Only the last few can overlap (sorted by start; matches are
                // short), which keeps this linear in the number of findings.
                let from = kept.len().saturating_sub(16);
                let tail: Vec<Raw> = kept
                    .drain(from..)
                    .filter(|k| {
                        !(k.start < r.end && r.start < k.end && self.rules[k.rule].priority < p)
                    })
                    .collect();
                kept.extend(tail);
                kept.push(r);
            }
        }

        let mut hits = Vec::new();
        for m in &self.matchers {
            m.find(content, &mut hits);
        }

        let mut out = Vec::with_capacity(kept.len() + hits.len());
        let mut lines = LineCounter::new(content);
        let mut items: Vec<(usize, usize, String, String)> = kept
            .into_iter()
            .map(|r| {
                let rule = &self.rules[r.rule];
                (r.start, r.end, rule.id.clone(), rule.description.clone())
            })
            .collect();
        items.extend(
            hits.into_iter()
                .filter(|h| h.start < h.end && h.end <= content.len())
                .map(|h| (h.start, h.end, h.rule, h.description)),
        );
        items.sort_by_key(|i| i.0);
        // Whether the last line looked at is allowed: many findings on one
        // long line check its allow comment once.
        let mut allowed: Option<(usize, bool)> = None;
        for (start, end, rule, description) in items {
            let secret = &content[start..end];
            if self.config.pattern_allowed(secret) {
                continue;
            }
            let (line, column, line_start) = lines.locate(start);
            let is_allowed = match allowed {
                Some((s, a)) if s == line_start => a,
                _ => {
                    let a = allowed_inline(content, line_start);
                    allowed = Some((line_start, a));
                    a
                }
            };
            if is_allowed {
                continue;
            }
            out.push(Finding {
                fingerprint: fingerprint(&rule, path, secret),
                redacted: redact(secret),
                rule,
                description,
                line,
                column,
                start,
                end,
            });
        }
        out
    }

    fn run_rule(
        &self,
        ri: usize,
        content: &[u8],
        s: usize,
        e: usize,
        raw: &mut Vec<Raw>,
        seen: &mut HashSet<(usize, usize, usize)>,
    ) {
        let rule = &self.rules[ri];
        let hay = &content[s..e];
        for caps in rule.regex.captures_iter(hay) {
            let Some(m) = caps
                .name("secret")
                .or_else(|| caps.name("quoted"))
                .or_else(|| caps.name("bare"))
                .or_else(|| caps.get(1))
                .or_else(|| caps.get(0))
            else {
                continue;
            };
            let secret = m.as_bytes();
            if secret.is_empty() || secret.len() > MAX_SECRET {
                continue;
            }
            let (start, end) = (s + m.start(), s + m.end());
            if !seen.insert((ri, start, end)) {
                continue;
            }
            if let Some(c) = rule.check
                && !c.passes(secret, caps.name("name").map(|n| n.as_bytes()))
            {
                continue;
            }
            if let Some(min) = rule.min_entropy
                && entropy(secret) < min
            {
                continue;
            }
            if rule.filters.iter().any(|f| f.drops(secret)) {
                continue;
            }
            // A generic value that repeats its own name is not a secret.
            if let Some(n) = caps.name("name")
                && contains_ignore_case(secret, n.as_bytes())
            {
                continue;
            }
            raw.push(Raw {
                rule: ri,
                start,
                end,
            });
        }
    }
}

struct Raw {
    rule: usize,
    start: usize,
    end: usize,
}

fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    needle.len() >= 4
        && hay.len() >= needle.len()
        && hay
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

/// The line around `pos`: (start, end), end excluding the newline.
fn line_bounds(content: &[u8], pos: usize) -> (usize, usize) {
    let start = memchr::memrchr(b'\n', &content[..pos]).map_or(0, |i| i + 1);
    let end = memchr::memchr(b'\n', &content[pos..]).map_or(content.len(), |i| pos + i);
    (start, end)
}

/// `lines` lines either side of the line holding `pos`, capped in bytes.
fn lines_around(content: &[u8], pos: usize, lines: usize) -> (usize, usize) {
    const CAP: usize = 16 * 1024;
    let floor = pos.saturating_sub(CAP);
    let mut s = pos;
    let mut n = 0;
    while s > floor {
        if content[s - 1] == b'\n' {
            n += 1;
            if n > lines {
                break;
            }
        }
        s -= 1;
    }
    let ceil = (pos + CAP).min(content.len());
    let mut e = pos;
    let mut n = 0;
    while e < ceil {
        if content[e] == b'\n' {
            n += 1;
            if n > lines {
                break;
            }
        }
        e += 1;
    }
    (s, e)
}

/// Whether the line starting at `line_start` carries an allow comment, or
/// the line before it an allow-next-line comment.
fn allowed_inline(content: &[u8], line_start: usize) -> bool {
    let (_, le) = line_bounds(content, line_start);
    let line = &content[line_start..le];
    if find(line, ALLOW_MARKER).is_some_and(|i| {
        // `coffer:allow-next-line` on the secret's own line does not allow it.
        !line[i..].starts_with(ALLOW_NEXT_LINE_MARKER)
    }) {
        return true;
    }
    if line_start == 0 {
        return false;
    }
    let (ps, pe) = line_bounds(content, line_start - 1);
    find(&content[ps..pe], ALLOW_NEXT_LINE_MARKER).is_some()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

/// Turns byte offsets (visited in increasing order) into line and column.
struct LineCounter<'a> {
    content: &'a [u8],
    pos: usize,
    line: usize,
    line_start: usize,
}

impl<'a> LineCounter<'a> {
    fn new(content: &'a [u8]) -> Self {
        LineCounter {
            content,
            pos: 0,
            line: 1,
            line_start: 0,
        }
    }

    fn locate(&mut self, offset: usize) -> (usize, usize, usize) {
        if offset < self.pos {
            // Out of order (only after overlapping matches): count afresh.
            *self = LineCounter::new(self.content);
        }
        for (i, &b) in self.content[self.pos..offset].iter().enumerate() {
            if b == b'\n' {
                self.line += 1;
                self.line_start = self.pos + i + 1;
            }
        }
        self.pos = offset;
        (self.line, offset - self.line_start + 1, self.line_start)
    }
}

/// Whether `content` looks binary: a NUL byte in its first 8 KiB (what git
/// and grep use).
pub fn is_binary(content: &[u8]) -> bool {
    content[..content.len().min(8192)].contains(&0)
}
