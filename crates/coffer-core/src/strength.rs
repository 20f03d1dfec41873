//! How hard a value is to guess, in bits.
//!
//! Values people type are judged with zxcvbn (dictionaries of common
//! passwords, names and words, keyboard walks, repeats, sequences, dates),
//! combined with a character-class count: each part zxcvbn recognised
//! counts for the guesses it needs, and each stretch it could only brute
//! force counts for its length times the bits of the character classes it
//! uses (zxcvbn itself assumes ten guesses per character there, and its
//! total saturates at 64 bits, which would make any policy above that
//! unreachable). The whole is capped by the character-class bound of the
//! value. Generated values are not estimated: their spec gives their exact
//! entropy.
//!
//! Reasons are fixed phrases (zxcvbn's warnings and our own): they never
//! quote the value or say how long it is.

use crate::value::SecretValue;

/// Below this many bits a value is called weak (a warning where no rule
/// requires more, a refusal where one does).
pub const WEAK_BITS: f64 = 64.0;

/// Values estimated below this many bits are never fingerprinted for a
/// scanner (see `crate::fingerprint`): a fingerprint can be checked against
/// guesses offline at HMAC speed, and 2^80 HMAC-SHA256 computations are out
/// of reach of any attacker we defend against (about 38,000 years at 10^12
/// a second). The margin over [`WEAK_BITS`] covers estimates that credit a
/// typed value with more than its true guessing work.
pub const FINGERPRINT_MIN_BITS: f64 = 80.0;

/// Whether a value (or a part of one: a field, a line) is strong enough to
/// be fingerprinted.
///
/// Whoever checks guesses against a fingerprint may know every part of the
/// value but one: the scheme, user, host and port of a connection string,
/// the name in `KEY=value`, the other fields of a small JSON object. So the
/// value counts only as hard to guess as the hardest *single* run of
/// characters between delimiters (`:`, `@`, `=`, `;`, `,`, `?`, `&`,
/// quotes, brackets, `|`, `\`, white space) it holds, and one such run must
/// pass on its own: at least 25 characters, machine-made ([`machine_made`]:
/// varied characters, none dominating, no 8-character stretch twice, which
/// rules out `aaaa...` and repeated words however long), and at least
/// [`FINGERPRINT_MIN_BITS`] by
/// the pessimistic estimate ([`pessimistic_bits`]) of its first 256
/// characters alone (nothing is credited for length beyond them). A random
/// key, token or base64 blob passes; a connection string or `KEY=value`
/// passes only when its secret part would on its own, and a typed password
/// with delimiters in it is left out (a missed scan match, never a
/// guessable fingerprint).
pub fn fingerprintable(value: &str) -> bool {
    value.split(is_delimiter).any(|run| {
        let n = run.chars().count();
        // No run under 25 characters reaches 80 bits at 3.3 bits a
        // character; skip zxcvbn for them.
        if n < 25 {
            return false;
        }
        let judged: String = run.chars().take(ESTIMATED_PREFIX).collect();
        machine_made(&judged) && pessimistic_bits(&judged) >= FINGERPRINT_MIN_BITS
    })
}

/// Whether a run looks machine-made rather than typed or repeated: at
/// least ten distinct characters, none making up more than a quarter of
/// it, and no stretch of eight characters that appears twice (which rules
/// out `aaaa...`, `abab...` and a word repeated to length, however long,
/// while a random key of any alphabet passes: two equal 8-character
/// stretches in a random 256-character hex string have a chance of about
/// one in a hundred thousand).
fn machine_made(run: &str) -> bool {
    let chars: Vec<char> = run.chars().collect();
    let mut counts = std::collections::HashMap::new();
    for c in &chars {
        *counts.entry(*c).or_insert(0usize) += 1;
    }
    if counts.len() < 10 || counts.values().any(|k| k * 4 > chars.len()) {
        return false;
    }
    let mut grams = std::collections::HashSet::with_capacity(chars.len());
    chars.windows(8).all(|w| grams.insert(w))
}

/// Where [`fingerprintable`] splits a value into the runs it judges: the
/// characters that separate the parts of URLs, connection strings,
/// assignments and data formats. `+`, `/`, `.`, `-` and `_` are not among
/// them, so base64, JWTs and tokens stay whole.
fn is_delimiter(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            ':' | '@'
                | '='
                | ';'
                | ','
                | '?'
                | '&'
                | '"'
                | '\''
                | '`'
                | '{'
                | '}'
                | '['
                | ']'
                | '('
                | ')'
                | '<'
                | '>'
                | '|'
                | '\\'
        )
}

/// Characters zxcvbn judges at a time in [`pessimistic_bits`]: its guess
/// counts are 64-bit and saturate beyond about 19 characters, and once every
/// way of reading a string saturates it no longer prefers the dictionary
/// reading (`correcthorsebatterystaple` came out as one brute-forced
/// stretch).
const PESSIMISTIC_CHUNK: usize = 15;

/// A lower estimate than [`estimate`], for deciding what may be checked
/// against guesses offline: the value is judged in chunks of
/// [`PESSIMISTIC_CHUNK`] characters, each part zxcvbn recognised counts for
/// its guesses, and each stretch it could only brute force counts for 3.3
/// bits a character (ten guesses, as zxcvbn assumes), never for its
/// character classes, so words joined by separators are not credited with
/// the separators' classes. Beyond the first 256 characters, 3.3 bits a
/// character. Never more than [`estimate`].
fn pessimistic_bits(value: &str) -> f64 {
    use zxcvbn::matching::patterns::MatchPattern;
    let per_char = 10f64.log2();
    let chars: Vec<char> = value.chars().collect();
    let judged = chars.len().min(ESTIMATED_PREFIX);
    let mut bits = (chars.len() - judged) as f64 * per_char;
    for chunk in chars[..judged].chunks(PESSIMISTIC_CHUNK) {
        let chunk: String = chunk.iter().collect();
        let mut chunk_bits = 0.0;
        for m in zxcvbn::zxcvbn(&chunk, &[]).sequence() {
            chunk_bits += match m.pattern {
                MatchPattern::BruteForce => m.token.chars().count() as f64 * per_char,
                _ => (m.guesses.unwrap_or(1).max(1) as f64).log2(),
            };
        }
        bits += chunk_bits.min(class_bits(&chunk));
    }
    bits.min(estimate(value).bits)
}

/// Only this many characters are given to zxcvbn (its work grows quickly
/// with length); the rest count by their character classes.
const ESTIMATED_PREFIX: usize = 256;

/// The estimate for one value.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// Estimated bits of guessing work.
    pub bits: f64,
    /// Why it is weak, if it is: fixed phrases, never the value.
    pub reasons: Vec<String>,
}

/// Values at least this long may skip zxcvbn when no rule asks for bits
/// (see [`clearly_not_weak`]).
const SCREENED_LENGTH: usize = 20;

/// Whether a value is plainly not weak without running zxcvbn, which costs
/// 1 to 4 ms of CPU per value and would cap write throughput: at least
/// [`SCREENED_LENGTH`] characters from at least three character classes (or
/// two, with digits), at least ten distinct characters, no character making
/// up more than a quarter of it, and no stretch of four characters that
/// appears twice, nor many runs such as `abcd`. Machine-made keys and tokens pass; values people type
/// (words, names, dates, repeats) mostly do not and get the full estimate.
/// Only used to decide whether to *warn*: a lifecycle rule's `min_bits` is
/// always checked with the full estimate.
pub fn clearly_not_weak(value: &str) -> bool {
    let chars: Vec<char> = value.chars().collect();
    let n = chars.len();
    if !(SCREENED_LENGTH..=4096).contains(&n) {
        return false;
    }
    let (mut lower, mut upper, mut digit, mut other) = (0usize, 0usize, 0usize, 0usize);
    let mut counts = std::collections::HashMap::new();
    for c in &chars {
        match c {
            'a'..='z' => lower += 1,
            'A'..='Z' => upper += 1,
            '0'..='9' => digit += 1,
            _ => other += 1,
        }
        *counts.entry(*c).or_insert(0usize) += 1;
    }
    let classes = [lower, upper, digit, other]
        .iter()
        .filter(|k| **k > 0)
        .count();
    let mixed = classes >= 3 || (classes == 2 && digit * 10 >= n);
    let spread = counts.len() >= 10 && counts.values().all(|k| k * 4 <= n);
    if !mixed || !spread {
        return false;
    }
    // Runs such as abcd or 4321.
    let stepping = chars
        .windows(2)
        .filter(|w| (w[1] as i64 - w[0] as i64).abs() == 1)
        .count();
    if stepping * 4 > n {
        return false;
    }
    let mut grams = std::collections::HashSet::with_capacity(n);
    chars.windows(4).all(|w| grams.insert(w))
}

/// Estimates a typed value.
pub fn estimate(value: &str) -> Estimate {
    let mut reasons = Vec::new();
    if value.is_empty() {
        return Estimate {
            bits: 0.0,
            reasons: vec!["it is empty".into()],
        };
    }
    let cut = value
        .char_indices()
        .nth(ESTIMATED_PREFIX)
        .map_or(value.len(), |(i, _)| i);
    let (head, tail) = value.split_at(cut);
    let entropy = zxcvbn::zxcvbn(head, &[]);
    use zxcvbn::matching::patterns::MatchPattern;
    let mut bits = 0.0;
    let mut found = Vec::new();
    for m in entropy.sequence() {
        bits += match m.pattern {
            MatchPattern::BruteForce => class_bits(&m.token),
            _ => (m.guesses.unwrap_or(1).max(1) as f64).log2(),
        };
        let what = match m.pattern {
            MatchPattern::Dictionary(_) => "common words, names or passwords",
            MatchPattern::Spatial(_) => "keyboard patterns",
            MatchPattern::Repeat(_) => "repeats",
            MatchPattern::Sequence(_) => "sequences such as abc or 123",
            MatchPattern::Date(_) => "dates",
            MatchPattern::Regex(_) => "recent years",
            MatchPattern::BruteForce => continue,
        };
        if !found.contains(&what) {
            found.push(what);
        }
    }
    bits += class_bits(tail);
    bits = bits.min(class_bits(value));
    if let Some(w) = entropy.feedback().and_then(|f| f.warning()) {
        reasons.push(w.to_string().trim_end_matches('.').to_lowercase());
    } else if bits < WEAK_BITS && !found.is_empty() {
        reasons.push(format!("it is made of {}", found.join(", ")));
    }
    if value.chars().count() < 12 {
        reasons.push("it is shorter than 12 characters".into());
    }
    Estimate { bits, reasons }
}

/// The parts of a value a strength rule judges: the whole of a text value;
/// of a fields value, the fields whose names say they hold a credential
/// (`password`, `secret`, `token`, `key`, ...), since the others (a user
/// name, a host) are not meant to be hard to guess.
pub fn judged_parts(value: &SecretValue) -> Vec<(Option<&str>, &str)> {
    const CREDENTIAL_WORDS: [&str; 6] = ["pass", "secret", "token", "key", "pwd", "credential"];
    match value {
        SecretValue::Text(t) => vec![(None, t.expose_secret())],
        SecretValue::Fields(fields) => fields
            .iter()
            .filter(|(name, _)| {
                let name = name.to_ascii_lowercase();
                CREDENTIAL_WORDS.iter().any(|w| name.contains(w))
            })
            .map(|(name, v)| (Some(name.as_str()), v.expose_secret()))
            .collect(),
    }
}

/// `len * log2(pool)`, the pool being the character classes present.
fn class_bits(s: &str) -> f64 {
    let (mut lower, mut upper, mut digit, mut symbol, mut other) =
        (false, false, false, false, false);
    let mut len = 0usize;
    for c in s.chars() {
        len += 1;
        match c {
            'a'..='z' => lower = true,
            'A'..='Z' => upper = true,
            '0'..='9' => digit = true,
            c if c.is_ascii() => symbol = true,
            _ => other = true,
        }
    }
    let pool = 26 * u32::from(lower)
        + 26 * u32::from(upper)
        + 10 * u32::from(digit)
        + 33 * u32::from(symbol)
        + 100 * u32::from(other);
    if pool <= 1 {
        return 0.0;
    }
    len as f64 * f64::from(pool).log2()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_values_are_weak_and_say_why() {
        for v in [
            "password123",
            "hunter2",
            "letmein",
            "qwertyuiop",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "0123456789abcdef0123456789abcdef",
            "dragon",
            "correcthorse",
            "8080",
        ] {
            let e = estimate(v);
            assert!(e.bits < WEAK_BITS, "{v}: {}", e.bits);
            assert!(!e.reasons.is_empty(), "{v}");
            assert!(
                e.reasons.iter().all(|r| !r.contains(v)),
                "{v}: {:?}",
                e.reasons
            );
        }
    }

    #[test]
    fn strong_values_are_strong() {
        for (v, at_least) in [
            (
                "dGhpcyBpcyBhIHJhbmRvbSBiYXNlNjQgc3RyaW5nIG9mIDMyIGJ5dGVz",
                128.0,
            ),
            ("kX9#mP2$vL8@nQ5!wR7^", 100.0),
            ("sBq3ZVh0c2N9Xk2LrTm8pW4yJdF6gHa1", 128.0),
        ] {
            let e = estimate(v);
            assert!(e.bits >= at_least, "{v}: {}", e.bits);
        }
        // A generated passphrase of ten words is judged by its spec, but
        // even estimated it is far from weak.
        assert!(estimate("abacus-zesty-unclamped-hatchback-oyster-prowling").bits > WEAK_BITS);
    }

    #[test]
    fn long_values_are_estimated_quickly_and_fully() {
        let pem = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7".repeat(60);
        let e = estimate(&pem);
        assert!(e.bits > 1000.0, "{}", e.bits);
        assert_eq!(estimate("").bits, 0.0);
    }

    #[test]
    fn only_credential_fields_are_judged() {
        let v = SecretValue::Fields(
            [
                ("user".to_string(), "app".into()),
                ("host".to_string(), "db.internal".into()),
                ("Password".to_string(), "pw".into()),
                ("api_key".to_string(), "k".into()),
            ]
            .into_iter()
            .collect(),
        );
        let names: Vec<_> = judged_parts(&v).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, vec![Some("Password"), Some("api_key")]);
    }
}

#[cfg(test)]
mod fingerprint_tests {
    use super::*;

    #[test]
    fn only_values_beyond_offline_guessing_are_fingerprinted() {
        for strong in [
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "q3Zr8_TbKx-0VhWm2LpYs7NdJc4uFgAe",
            "kX9#mP2$vL8%nQ5!wR7^Ty3*zB6~",
            // The secret part of a structure passes on its own.
            "postgres://app:q3Zr8_TbKx-0VhWm2LpYs7NdJc4uFgAe@db.internal:5432/app",
            "API_KEY=q3Zr8_TbKx-0VhWm2LpYs7NdJc4uFgAe",
            "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7",
        ] {
            assert!(fingerprintable(strong), "{strong}");
        }
        // Random keys pass every time, whatever their alphabet (a screen
        // refusing any repeated 4-character stretch missed about one
        // 64-character hex key in thirty).
        for _ in 0..500 {
            let hex: String = coffer_crypto::random::bytes::<32>()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert!(fingerprintable(&hex), "{hex}");
        }
        for weak in [
            "",
            "hunter2",
            "password123",
            "Summer2024!",
            "correct-horse-battery-staple-1",
            "correcthorsebatterystaple",
            "correct horse battery staple",
            "Password123Password123Password123",
            "abcdefghijklmnopqrstuvwxyz0123456789",
            // Strong enough to store, but shorter than 25 characters.
            "kX9#mP2$vL8@nQ5!wR7^",
            "0123456789abcdef",
            "Tr0ub4dor&3",
            // 64 bits of hex: strong enough to store, not to fingerprint.
            "9f86d081884c7d65",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            // Structures whose every part is guessable: an attacker who
            // knows the rest confirms the password offline.
            "postgres://billing:Summer2024!@db.prod.internal:5432/billing",
            "redis://:hunter2hunter2@cache.internal:6379/0",
            "https://admin:Winter2023@grafana.example.com/login",
            r#"{"user":"app","password":"Summer2024!","host":"db.prod.internal"}"#,
            "DATABASE_PASSWORD=Summer2024!Summer2024!",
            // Length is not strength.
            "a".repeat(300).as_str(),
            "ab".repeat(150).as_str(),
            "Summer2024!".repeat(30).as_str(),
        ] {
            assert!(!fingerprintable(weak), "{weak}");
        }
    }
}

#[cfg(test)]
mod screen_tests {
    use super::*;

    #[test]
    fn only_machine_made_values_skip_the_full_estimate() {
        for strong in [
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "q3Zr8_TbKx-0VhWm2LpYs7NdJc4uFgAe",
            "sk_live_51HqLyjWDarjtT1zdp7dcXQmAQ",
            "AKIAIOSFODNN7EXAMPLEwJalrXUtnFEMI",
        ] {
            assert!(clearly_not_weak(strong), "{strong}");
            assert!(estimate(strong).bits >= WEAK_BITS, "{strong}");
        }
        for typed in [
            "password123",
            "Password123Password123",
            "correcthorsebatterystaple",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "bench-00012345-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "Summer2024!",
            "abcdefghijklmnopqrstuvwxyz012345",
        ] {
            assert!(!clearly_not_weak(typed), "{typed}");
        }
    }
}
