//! Path patterns: parsing and linear-time matching against canonical targets.
//!
//! The syntax and semantics are documented at the crate root; this file keeps the
//! implementation. A pattern is parsed into whole segments (literal or "exactly one
//! segment") followed by an ending that says what may come after them: nothing, a
//! folder's trailing `/`, or a `/` then a literal prefix then anything. Matching walks
//! the target once, left to right, with no backtracking.

use std::fmt;

/// The longest pattern accepted, in bytes (including a leading `/`).
pub(crate) const MAX_PATTERN_BYTES: usize = 512;

/// A parsed path pattern. See the crate documentation for the syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// The canonical spelling: the source with its leading `/`, if any, dropped.
    text: String,
    segments: Vec<Segment>,
    end: End,
}

/// One whole segment of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Matches exactly this segment.
    Literal(String),
    /// `+` (or a `*` that is a whole segment but not the last): any one non-empty
    /// segment.
    One,
}

/// What a target may contain after the pattern's whole segments.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    /// Nothing: the last segment ends the target (`app/dev`).
    Exact,
    /// A single `/` that ends the target (`app/dev/`, a folder).
    Folder,
    /// A `/` after each segment, then this literal prefix, then anything
    /// (`app/dev/*` has an empty prefix, `app/dev*` has prefix `dev`).
    Prefix(String),
}

/// Why a pattern was rejected. The message names the pattern and the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PatternError(pub String);

/// A pattern error with the byte offset (into the source pattern) it points at, so
/// the policy parser can report a column.
#[derive(Debug)]
pub(crate) struct PatternFault {
    pub(crate) offset: usize,
    pub(crate) message: String,
}

impl Pattern {
    /// Parses a pattern. See the crate documentation for the syntax.
    pub fn parse(s: &str) -> Result<Pattern, PatternError> {
        Pattern::parse_located(s, true).map_err(|fault| PatternError(fault.message))
    }

    /// Parses a pattern that was stored by an earlier release: like
    /// [`Pattern::parse`], except that a segment shaped like a coffer token
    /// is accepted, so that a record written before such patterns were
    /// refused still loads (new patterns always go through `parse`).
    pub fn parse_stored(s: &str) -> Result<Pattern, PatternError> {
        Pattern::parse_checked(s, false).map_err(|fault| PatternError(fault.message))
    }

    /// Whether `target` matches this pattern.
    ///
    /// `target` must be canonical (a secret path such as `app/dev/db`, a folder such
    /// as `app/dev/` or the root folder `""`, or a system target such as
    /// `sys/policies/ops`); callers canonicalise request paths before asking. Matching
    /// is byte-exact, case-sensitive and runs in time linear in the target's length.
    pub fn matches(&self, target: &str) -> bool {
        let mut rest = target;
        let count = self.segments.len();
        for (i, segment) in self.segments.iter().enumerate() {
            if i + 1 == count && self.end == End::Exact {
                // The last segment must be all that is left.
                return segment.matches(rest);
            }
            let Some((head, tail)) = rest.split_once('/') else {
                return false;
            };
            if !segment.matches(head) {
                return false;
            }
            rest = tail;
        }
        match &self.end {
            // Only reached with no segments, i.e. the pattern `""` (the root folder).
            End::Exact | End::Folder => rest.is_empty(),
            End::Prefix(prefix) => rest.starts_with(prefix.as_str()),
        }
    }

    /// The canonical spelling: the pattern as written, with a leading `/` dropped.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether some secret path (a target that does not end in `/`, other
    /// than the root folder) matches.
    pub fn may_match_secret(&self) -> bool {
        match self.end {
            End::Exact => !self.segments.is_empty(),
            End::Folder => false,
            End::Prefix(_) => true,
        }
    }

    /// Whether some folder (the root folder `""` or a target ending in `/`)
    /// matches.
    pub fn may_match_folder(&self) -> bool {
        match self.end {
            End::Exact => self.segments.is_empty(),
            End::Folder | End::Prefix(_) => true,
        }
    }

    /// Whether some target matches both patterns. Exact, in time linear in
    /// the patterns' length.
    pub fn overlaps(&self, other: &Pattern) -> bool {
        // The root pattern `""` is a folder with no segments.
        let tail = |p: &Pattern| match &p.end {
            End::Exact if p.segments.is_empty() => End::Folder,
            end => end.clone(),
        };
        let (a_end, b_end) = (tail(self), tail(other));
        let (a, b) = (&self.segments, &other.segments);
        let common = a.len().min(b.len());
        for (x, y) in a[..common].iter().zip(&b[..common]) {
            if let (Segment::Literal(x), Segment::Literal(y)) = (x, y)
                && x != y
            {
                return false;
            }
        }
        if a.len() == b.len() {
            return match (&a_end, &b_end) {
                (End::Exact, End::Exact) | (End::Folder, End::Folder) => true,
                (End::Exact, _) | (_, End::Exact) => false,
                (End::Folder, End::Prefix(p)) | (End::Prefix(p), End::Folder) => p.is_empty(),
                (End::Prefix(p), End::Prefix(q)) => {
                    p.starts_with(q.as_str()) || q.starts_with(p.as_str())
                }
            };
        }
        // The shorter pattern must end in a prefix that the longer one's
        // next segment can start with.
        let (short_end, long) = if a.len() < b.len() {
            (&a_end, b)
        } else {
            (&b_end, a)
        };
        match short_end {
            End::Prefix(p) => match &long[common] {
                Segment::Literal(l) => l.starts_with(p.as_str()),
                Segment::One => true,
            },
            End::Exact | End::Folder => false,
        }
    }

    /// Whether every target `other` matches is also matched by `self`.
    /// Exact, in time linear in the patterns' length.
    pub fn contains(&self, other: &Pattern) -> bool {
        // The root pattern `""` is a folder with no segments.
        let tail = |p: &Pattern| match &p.end {
            End::Exact if p.segments.is_empty() => End::Folder,
            end => end.clone(),
        };
        let (a_end, b_end) = (tail(self), tail(other));
        let (a, b) = (&self.segments, &other.segments);
        let common = a.len().min(b.len());
        for (x, y) in a[..common].iter().zip(&b[..common]) {
            match (x, y) {
                (Segment::One, _) => {}
                (Segment::Literal(x), Segment::Literal(y)) if x == y => {}
                _ => return false,
            }
        }
        match a_end {
            End::Exact | End::Folder => a.len() == b.len() && a_end == b_end,
            End::Prefix(p) => {
                if b.len() > a.len() {
                    // The target's next segment must start with `p`.
                    match &b[a.len()] {
                        Segment::Literal(l) => l.starts_with(p.as_str()),
                        Segment::One => p.is_empty(),
                    }
                } else if b.len() == a.len() {
                    match b_end {
                        // `a/b` has no `/` after its last segment; `a/b/*` needs one.
                        End::Exact => false,
                        End::Folder => p.is_empty(),
                        End::Prefix(q) => q.starts_with(p.as_str()),
                    }
                } else {
                    false
                }
            }
        }
    }

    /// Parses `s`, reporting where in `s` a problem is.
    /// `refuse_credentials` is false only for policies read back from
    /// storage ([`crate::Policy::parse_stored`]).
    pub(crate) fn parse_located(
        s: &str,
        refuse_credentials: bool,
    ) -> Result<Pattern, PatternFault> {
        Pattern::parse_checked(s, refuse_credentials)
    }

    fn parse_checked(s: &str, refuse_credentials: bool) -> Result<Pattern, PatternFault> {
        if s.len() > MAX_PATTERN_BYTES {
            return Err(PatternFault {
                offset: 0,
                message: format!(
                    "pattern is {} bytes; the limit is {MAX_PATTERN_BYTES}",
                    s.len()
                ),
            });
        }
        let fault = |offset: usize, problem: &str| PatternFault {
            offset,
            message: format!("invalid pattern {}: {problem}", quote(s)),
        };

        if refuse_credentials && contains_credential(s) {
            return Err(PatternFault {
                offset: 0,
                message: "invalid pattern: it contains what looks like a coffer token or \
                          invitation code (cft_..., cfi_... or cfs_...); credentials never belong in a \
                          pattern (the pattern is not shown)"
                    .to_owned(),
            });
        }
        let base = usize::from(s.starts_with('/'));
        let body = &s[base..];
        let mut segments = Vec::new();
        let mut end = End::Exact;
        if !body.is_empty() {
            let last_index = body.split('/').count() - 1;
            let mut offset = base;
            for (i, part) in body.split('/').enumerate() {
                let is_last = i == last_index;
                if part.is_empty() {
                    if is_last {
                        // `body` is not empty, so a final empty part follows a `/`.
                        end = End::Folder;
                        break;
                    }
                    let problem = if offset == base && base == 1 {
                        "a pattern may start with at most one `/`"
                    } else {
                        "empty segment (`//`)"
                    };
                    return Err(fault(offset, problem));
                }
                match part {
                    "+" => segments.push(Segment::One),
                    "*" if is_last => end = End::Prefix(String::new()),
                    "*" => segments.push(Segment::One),
                    "." | ".." => {
                        return Err(fault(offset, "`.` and `..` segments are not allowed"));
                    }
                    _ => {
                        let (literal, glued_star) = match part.find('*') {
                            Some(star) if is_last && star == part.len() - 1 => {
                                (&part[..star], true)
                            }
                            Some(star) => {
                                return Err(fault(
                                    offset + star,
                                    "`*` is allowed only at the end of a pattern or as a whole segment",
                                ));
                            }
                            None => (part, false),
                        };
                        check_literal(literal)
                            .map_err(|(at, problem)| fault(offset + at, &problem))?;
                        if glued_star {
                            end = End::Prefix(literal.to_owned());
                        } else {
                            segments.push(Segment::Literal(literal.to_owned()));
                        }
                    }
                }
                offset += part.len() + 1;
            }
        }
        Ok(Pattern {
            text: body.to_owned(),
            segments,
            end,
        })
    }
}

impl Segment {
    fn matches(&self, segment: &str) -> bool {
        match self {
            Segment::Literal(literal) => segment == literal,
            Segment::One => !segment.is_empty() && !segment.contains('/'),
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Whether `b` may appear in a literal path segment.
pub(crate) fn is_path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"_-.@:=,~".contains(&b)
}

/// Checks the characters of a literal (part of a) segment; returns the offset of the
/// first bad character and what is wrong with it.
fn check_literal(literal: &str) -> Result<(), (usize, String)> {
    for (at, c) in literal.char_indices() {
        if c == '+' {
            return Err((
                at,
                "`+` must be a whole segment (it matches exactly one segment)".to_owned(),
            ));
        }
        if !c.is_ascii() || !is_path_byte(c as u8) {
            return Err((
                at,
                format!(
                    "character {} is not allowed; segments use ASCII letters, digits and _ - . @ : = , ~",
                    quote_char(c)
                ),
            ));
        }
    }
    Ok(())
}

/// Quotes user input for an error message, shortened so a message stays readable.
pub(crate) fn quote(s: &str) -> String {
    const MAX_CHARS: usize = 64;
    if contains_credential(s) {
        return "(not shown: it contains what looks like a coffer token)".to_owned();
    }
    if s.chars().count() <= MAX_CHARS {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(MAX_CHARS).collect();
        format!("{head:?}…")
    }
}

/// Whether `s` contains something shaped like a coffer token, invitation
/// code or app-role secret id: `cft_`, `cfi_` or `cfs_` (in any letter
/// case) followed by a letter or digit.
/// Such input is refused as a path or pattern, and never quoted in an error,
/// because a credential pasted or expanded into a name (`app/${TOKEN}`) must
/// not travel on into error messages, logs and audit records.
pub fn contains_credential(s: &str) -> bool {
    let b = s.as_bytes();
    b.windows(5).any(|w| {
        w[0].eq_ignore_ascii_case(&b'c')
            && w[1].eq_ignore_ascii_case(&b'f')
            && (w[2].eq_ignore_ascii_case(&b't')
                || w[2].eq_ignore_ascii_case(&b'i')
                || w[2].eq_ignore_ascii_case(&b's'))
            && w[3] == b'_'
            && w[4].is_ascii_alphanumeric()
    })
}

/// Quotes one character for an error message, escaping invisible ones.
pub(crate) fn quote_char(c: char) -> String {
    format!("{c:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structure_of_parsed_patterns() {
        let lit = |s: &str| Segment::Literal(s.to_owned());
        let prefix = |s: &str| End::Prefix(s.to_owned());
        let cases = vec![
            ("", vec![], End::Exact),
            ("/", vec![], End::Exact),
            ("*", vec![], prefix("")),
            ("a", vec![lit("a")], End::Exact),
            ("/a/b", vec![lit("a"), lit("b")], End::Exact),
            ("a/", vec![lit("a")], End::Folder),
            ("a*", vec![], prefix("a")),
            ("+/a/*", vec![Segment::One, lit("a")], prefix("")),
            ("*/a*", vec![Segment::One], prefix("a")),
            ("*/+/", vec![Segment::One, Segment::One], End::Folder),
        ];
        for (source, segments, end) in cases {
            let p = Pattern::parse(source).unwrap();
            assert_eq!(p.segments, segments, "{source:?}");
            assert_eq!(p.end, end, "{source:?}");
        }
    }

    #[test]
    fn fault_offsets_point_at_the_problem() {
        let cases = [
            ("a*b", 1),
            ("/a*b", 2),
            ("a/*/b*c", 5),
            ("a//b", 2),
            ("//a", 1),
            ("a/+x", 2),
            ("a/x+", 3),
            ("a/b c", 3),
            ("a/../b", 2),
            ("a/é", 2),
        ];
        for (source, offset) in cases {
            let fault = Pattern::parse_located(source, true).unwrap_err();
            assert_eq!(fault.offset, offset, "{source:?}: {}", fault.message);
        }
    }

    #[test]
    fn credentials_are_refused_and_never_quoted() {
        let token = format!("cft_{}", "A1b2".repeat(12));
        for input in [
            format!("leak/{token}"),
            format!("leak/{token}/*"),
            format!("x/CFI_{}", "z".repeat(40)),
            format!("x/cfs_{}", "z".repeat(49)),
            format!("x/CfS_{}", "z".repeat(49)),
            "a/prefix-cft_9".to_owned(),
        ] {
            let e = Pattern::parse(&input).unwrap_err().0;
            assert!(
                !e.contains("A1b2")
                    && !e.contains("zzz")
                    && !e.contains("prefix")
                    && !e.contains("leak"),
                "{e}"
            );
            assert!(e.contains("looks like a coffer token"), "{e}");
        }
        assert!(!quote(&token).contains("A1b2"));
        // Only the shape counts: these are ordinary names.
        for fine in [
            "cft", "a/cft_", "cft-x", "a/cfx_1", "cf_t1", "a/cfs_", "cfs-x",
        ] {
            assert!(!contains_credential(fine), "{fine}");
        }
        assert!(Pattern::parse("app/cft-notes/*").is_ok());
        // What an earlier release stored still loads.
        assert!(Pattern::parse_stored(&format!("leak/{token}")).is_ok());
    }

    #[test]
    fn quote_shortens_long_input() {
        assert_eq!(quote("ab"), "\"ab\"");
        let long = "x".repeat(100);
        assert_eq!(quote(&long), format!("\"{}\"…", "x".repeat(64)));
        assert_eq!(quote("a\u{7}"), "\"a\\u{7}\"");
    }

    /// `contains` agrees with matching over every pattern and target built
    /// from a small alphabet: `a ⊇ b` exactly when no target matches `b`
    /// but not `a`.
    #[test]
    fn containment_agrees_with_matching() {
        let segs = ["a", "ab", "b"];
        let mut targets = vec![String::new()];
        let mut layer = vec![String::new()];
        for _ in 0..4 {
            let mut next = Vec::new();
            for t in &layer {
                for s in segs {
                    let joined = if t.is_empty() {
                        s.to_string()
                    } else {
                        format!("{t}/{s}")
                    };
                    targets.push(joined.clone());
                    targets.push(format!("{joined}/"));
                    next.push(joined);
                }
            }
            layer = next;
        }
        let parts = ["a", "ab", "+", "*"];
        let mut sources = vec![String::new(), "*".to_string(), "a*".to_string()];
        let mut layer = vec![String::new()];
        for _ in 0..3 {
            let mut next = Vec::new();
            for t in &layer {
                for s in parts {
                    let joined = if t.is_empty() {
                        s.to_string()
                    } else {
                        format!("{t}/{s}")
                    };
                    next.push(joined.clone());
                    sources.push(joined.clone());
                    sources.push(format!("{joined}/"));
                    sources.push(format!("{joined}/*"));
                    sources.push(format!("{joined}/a*"));
                    sources.push(format!("{joined}*"));
                }
            }
            layer = next;
        }
        let patterns: Vec<Pattern> = sources
            .iter()
            .filter_map(|s| Pattern::parse(s).ok())
            .collect();
        assert!(patterns.len() > 200, "{}", patterns.len());
        let mut contained = 0;
        for a in &patterns {
            for b in &patterns {
                let by_targets = targets.iter().all(|t| !b.matches(t) || a.matches(t));
                assert_eq!(a.contains(b), by_targets, "{a} contains {b}?");
                contained += usize::from(by_targets);
            }
        }
        assert!(contained > patterns.len(), "{contained}");
    }
}
