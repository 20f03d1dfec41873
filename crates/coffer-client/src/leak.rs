//! Leak detection and response: fetching the keyed fingerprints of the
//! values stored under a prefix, matching text against them without ever
//! holding a stored value ([`KnownValues`], [`candidates`]), and marking a
//! version compromised.

use std::collections::{HashMap, HashSet};

use coffer_api::leak as wire;
use coffer_api::routes;
use coffer_crypto::fingerprint::{FingerprintKey, label};

use crate::{Client, ClientError, ErrorKind, Url};

impl Client {
    /// The fingerprints of the values stored under `prefix` (recursively;
    /// the empty string for everything). Needs `list` on the prefix.
    pub async fn fingerprints(
        &self,
        prefix: &str,
    ) -> Result<wire::FingerprintResponse, ClientError> {
        self.call(
            Url::to(&routes::SECRET_FINGERPRINTS, &[]),
            Some(&wire::FingerprintRequest {
                prefix: prefix.to_string(),
            }),
        )
        .await
    }

    /// Marks a version of `path` compromised (default: the one `current`
    /// names). Needs `rotate`.
    pub async fn mark_compromised(
        &self,
        path: &str,
        request: &wire::CompromiseRequest,
    ) -> Result<wire::CompromiseResponse, ClientError> {
        self.call(
            Url::to(&routes::SECRET_COMPROMISE, &[path.trim_start_matches('/')]),
            Some(request),
        )
        .await
    }
}

/// One answer's fingerprints, ready for matching.
struct Set {
    key: FingerprintKey,
    tags: HashSet<[u8; 32]>,
    places: Vec<(wire::FingerprintPlace, [u8; 32])>,
}

/// The fingerprints of one or more answers (one per prefix asked for),
/// against which strings are matched. Holds no value: only the keys,
/// tags and labels the server sent.
#[derive(Default)]
pub struct KnownValues {
    sets: Vec<Set>,
}

// By hand: the keys are never printed.
impl std::fmt::Debug for KnownValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnownValues")
            .field("sets", &self.sets.len())
            .field("places", &self.places())
            .finish()
    }
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn malformed() -> ClientError {
    ClientError::new(
        ErrorKind::Server,
        "the server's fingerprints are malformed (not coffer.fingerprint.v1)",
    )
}

impl KnownValues {
    /// No fingerprints yet.
    pub fn new() -> KnownValues {
        KnownValues::default()
    }

    /// Adds one answer's fingerprints.
    pub fn add(&mut self, answer: wire::FingerprintResponse) -> Result<(), ClientError> {
        if answer.algorithm != wire::FINGERPRINT_ALGORITHM {
            return Err(malformed());
        }
        let key = FingerprintKey::from_bytes(unhex(&answer.key).ok_or_else(malformed)?);
        let tags = answer
            .tags
            .iter()
            .map(|t| unhex(t).ok_or_else(malformed))
            .collect::<Result<HashSet<_>, _>>()?;
        let places = answer
            .places
            .into_iter()
            .map(|p| {
                let l = unhex(&p.label).ok_or_else(malformed)?;
                Ok((p, l))
            })
            .collect::<Result<Vec<_>, ClientError>>()?;
        self.sets.push(Set { key, tags, places });
        Ok(())
    }

    /// How many stored places (versions, fields and lines) are known.
    pub fn places(&self) -> usize {
        self.sets.iter().map(|s| s.places.len()).sum()
    }

    /// The stored places whose value is exactly `candidate`: none for
    /// almost every string, at the cost of one HMAC per answer; the labels
    /// are checked only when a tag matches.
    pub fn matches(&self, candidate: &str) -> Vec<&wire::FingerprintPlace> {
        let mut out = Vec::new();
        for set in &self.sets {
            let tag = set.key.tag(candidate.as_bytes());
            if !set.tags.contains(&tag) {
                continue;
            }
            let name_key = set.key.name_key(candidate.as_bytes());
            for (place, l) in &set.places {
                let want = label(
                    &name_key,
                    &place.path,
                    place.version,
                    place.field.as_deref().unwrap_or(""),
                    &place.part,
                );
                if &want == l {
                    out.push(place);
                }
            }
        }
        out
    }

    /// The stored places found in `text`, with the 1-based line each was
    /// found on, trying every candidate of each line ([`candidates`]) and,
    /// for double-quoted strings whose escapes make a value span lines, the
    /// unescaped string. Each place is reported once per line.
    pub fn find_in(&self, text: &str) -> Vec<(usize, &wire::FingerprintPlace)> {
        let mut out = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let mut seen: HashMap<(&str, u64, Option<&str>, &str), ()> = HashMap::new();
            for c in candidates(line) {
                for place in self.matches(&c) {
                    let k = (
                        place.path.as_str(),
                        place.version,
                        place.field.as_deref(),
                        place.part.as_str(),
                    );
                    if seen.insert(k, ()).is_none() {
                        out.push((n + 1, place));
                    }
                }
            }
        }
        out
    }
}

/// Shortest candidate tried: no part of a value shorter than this is
/// fingerprinted (the server's 80-bit floor needs at least 25 characters).
pub const MIN_CANDIDATE: usize = 25;

/// Most candidates taken from one line (a minified file's one line is
/// split many ways; this bounds the work per line).
const MAX_PER_LINE: usize = 4096;

/// The strings of one line of text that could be a whole stored value,
/// trimmed, deduplicated, each at least [`MIN_CANDIDATE`] characters:
///
/// * the whole line;
/// * what follows the first `=` or `:` (an assignment, a YAML or JSON
///   entry), with an `export ` prefix, quotes and a trailing `,` or `;`
///   taken off;
/// * the contents of each quoted string (`"`, `'` or `` ` ``), and of a
///   double-quoted one also with its backslash escapes (`\n`, `\"`, `\\`,
///   `\t`, `\r`, `\/`) resolved, so a multi-line value written on one line
///   is found whole;
/// * each run between whitespace, and each run between the delimiters
///   people put around values (whitespace, quotes, `=`, `,`, `;`, brackets,
///   `<`, `>`, `|`), and between URL delimiters (`:`, `/`, `@`, `?`, `&`,
///   `#`), which finds a password in `scheme://user:PASSWORD@host`.
///
/// Values are found only whole: a stored value that appears cut, or joined
/// to other characters no delimiter separates, is not found.
pub fn candidates(line: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut push = |s: &str| {
        let s = s.trim();
        if s.chars().count() >= MIN_CANDIDATE
            && out.len() < MAX_PER_LINE
            && seen.insert(s.to_string())
        {
            out.push(s.to_string());
        }
    };
    push(line);
    // An assignment's value.
    let stripped = line.trim_start();
    let stripped = stripped.strip_prefix("export ").unwrap_or(stripped);
    if let Some(i) = stripped.find(['=', ':']) {
        let value = stripped[i + 1..].trim();
        let value = value.trim_end_matches([',', ';']).trim();
        push(value);
        for q in ['"', '\'', '`'] {
            if let Some(inner) = value.strip_prefix(q).and_then(|v| v.strip_suffix(q)) {
                push(inner);
            }
        }
    }
    // Quoted strings.
    for q in ['"', '\'', '`'] {
        let mut rest = line;
        while let Some(start) = rest.find(q) {
            let after = &rest[start + q.len_utf8()..];
            let Some(end) = find_closing(after, q) else {
                break;
            };
            let inner = &after[..end];
            push(inner);
            if q == '"' && inner.contains('\\') {
                push(&unescape(inner));
            }
            rest = &after[end + q.len_utf8()..];
        }
    }
    // Runs between delimiters.
    let value_delims = |c: char| {
        c.is_whitespace()
            || matches!(
                c,
                '"' | '\''
                    | '`'
                    | '='
                    | ','
                    | ';'
                    | '('
                    | ')'
                    | '['
                    | ']'
                    | '{'
                    | '}'
                    | '<'
                    | '>'
                    | '|'
            )
    };
    let url_delims = |c: char| value_delims(c) || matches!(c, ':' | '/' | '@' | '?' | '&' | '#');
    for run in line.split(char::is_whitespace) {
        push(run);
    }
    for run in line.split(value_delims) {
        push(run);
    }
    for run in line.split(url_delims) {
        push(run);
    }
    out
}

/// The end of a quoted string starting after its opening quote: the next
/// `quote` not escaped by a backslash (for `'`, the next one).
fn find_closing(s: &str, quote: char) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' && quote != '\'' {
            escaped = true;
        } else if c == quote {
            return Some(i);
        }
    }
    None
}

/// A double-quoted string's common backslash escapes resolved.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: &str = "q3Zr8_TbKx-0VhWm2LpYs7NdJc4uFgAe";

    #[test]
    fn a_value_is_a_candidate_wherever_people_write_values() {
        for line in [
            V.to_string(),
            format!("API_KEY={V}"),
            format!("export API_KEY=\"{V}\""),
            format!("  api_key: '{V}'"),
            format!("\"api_key\": \"{V}\","),
            format!("const k = `{V}`;"),
            format!("curl -H 'Authorization: Bearer {V}' https://x"),
            format!("postgres://app:{V}@db.internal:5432/app"),
            format!("key=({V})"),
            format!("<password>{V}</password>"),
            format!("| {V} |"),
        ] {
            let c = candidates(&line);
            assert!(c.iter().any(|c| c == V), "{line}: {c:?}");
        }
    }

    #[test]
    fn an_escaped_multi_line_value_is_found_whole() {
        let value = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END KEY-----";
        let line = format!("KEY=\"{}\"", value.replace('\n', "\\n"));
        assert!(candidates(&line).iter().any(|c| c == value));
    }

    #[test]
    fn short_strings_are_not_candidates() {
        assert!(candidates("a=b c d").is_empty());
        assert!(candidates("PASSWORD=hunter2").is_empty());
    }

    #[test]
    fn candidates_per_line_are_bounded() {
        let line = (0..20_000)
            .map(|i| format!("{i:0>30}"))
            .collect::<Vec<_>>()
            .join(" ");
        assert!(candidates(&line).len() <= MAX_PER_LINE);
    }

    #[test]
    fn matching_needs_the_value_and_names_its_place() {
        let key = FingerprintKey::from_bytes([9; 32]);
        let hex = |b: &[u8; 32]| b.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let name_key = key.name_key(V.as_bytes());
        let answer = wire::FingerprintResponse {
            prefix: String::new(),
            algorithm: wire::FINGERPRINT_ALGORITHM.into(),
            key: hex(key.expose_secret()),
            min_bits: 80.0,
            tags: vec![hex(&key.tag(V.as_bytes()))],
            places: vec![
                wire::FingerprintPlace {
                    path: "app/dev/K".into(),
                    version: 2,
                    field: None,
                    part: "value".into(),
                    compromised: true,
                    label: hex(&label(&name_key, "app/dev/K", 2, "", "value")),
                },
                // Another secret's place, with a label of another value.
                wire::FingerprintPlace {
                    path: "app/dev/L".into(),
                    version: 1,
                    field: None,
                    part: "value".into(),
                    compromised: false,
                    label: hex(&[0; 32]),
                },
            ],
            secrets: 2,
            versions: 2,
        };
        let mut known = KnownValues::new();
        known.add(answer).unwrap();
        let found = known.find_in(&format!("# config\nTOKEN={V}\n"));
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].0, found[0].1.path.as_str()), (2, "app/dev/K"));
        assert!(found[0].1.compromised);
        assert!(known.matches("q3Zr8_TbKx-0VhWm2LpYs7NdJc4uFgAf").is_empty());
        assert!(!format!("{known:?}").contains(&hex(key.expose_secret())));
        let mut bad = KnownValues::new();
        let e = bad
            .add(wire::FingerprintResponse {
                prefix: String::new(),
                algorithm: "other".into(),
                key: String::new(),
                min_bits: 0.0,
                tags: vec![],
                places: vec![],
                secrets: 0,
                versions: 0,
            })
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Server);
    }
}
