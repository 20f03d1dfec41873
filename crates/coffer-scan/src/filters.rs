//! Filters for what fools scanners: values that match a rule's shape but are
//! not secrets (placeholders, documented example keys, environment lookups,
//! hashes, lockfile integrity strings, UUIDs, data URIs, identifiers).

use serde::Deserialize;

/// A filter a rule applies to its secret: when it matches, the candidate is
/// dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Filter {
    /// `changeme`, `xxxx`, `<your-key>`, `example`, `dummy`...
    Placeholder,
    /// Keys published in documentation (AWS's `AKIAIOSFODNN7EXAMPLE`...).
    ExampleKey,
    /// `${VAR}`, `$VAR`, `os.environ[...]`, `process.env.X` and other lookups.
    Lookup,
    /// Hex digests (commit ids, content hashes).
    Hash,
    /// Lockfile integrity strings (`sha512-...`).
    Integrity,
    /// UUIDs.
    Uuid,
    /// `data:` URIs.
    DataUri,
    /// Identifiers and words (`my_secret_name`, `config.password`).
    Word,
    /// Well-known default passwords (`password`, `admin`, `secret`).
    Weak,
    /// File paths (`/run/secrets/db`).
    Path,
    /// Tokens with a checksummed prefix whose checksum is wrong.
    BadChecksum,
}

/// Keys that providers publish in their documentation: never real.
const EXAMPLE_KEYS: &[&str] = &[
    "AKIAIOSFODNN7EXAMPLE",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "AKIAI44QH8DHBEXAMPLE",
    "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
    "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
    "sk_test_BQokikJOvBiI2HlWgH4olfQ2",
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
];

/// Words that mark a value as a placeholder wherever they appear in it
/// (long enough that a random token holds one by chance less than once in
/// 10^8).
const PLACEHOLDER_WORDS: &[&str] = &[
    "changeme",
    "change_me",
    "change-me",
    "changeit",
    "example",
    "placeholder",
    "dummy",
    "sample",
    "your_",
    "your-",
    "yourkey",
    "yoursecret",
    "yourtoken",
    "yourpass",
    "xxxxxx",
    "****",
    "....",
    "replace",
    "redacted",
    "insert",
    "lorem",
    "mysecret",
    "secretkey",
    "notreal",
    "not_real",
    "not-real",
    "undefined",
    "<",
    ">",
    "0000000",
    "1234567",
    "abcdefg",
];

/// The longest value in which a placeholder word counts wherever it occurs.
/// In a longer value (a key body, a connection string) a five-letter word
/// occurs by chance (`lorem` in 1,600 random base64 characters about once in
/// 20,000 keys), so there a word counts only standing apart from letters and
/// digits, and a short word not at all.
const SHORT_WORD_REACH: usize = 64;

/// Short words that mark a placeholder only as a whole word (`todo`,
/// `fake-token`), not inside a random string.
const PLACEHOLDER_SHORT: &[&str] = &[
    "todo", "fixme", "fake", "none", "null", "xxx", "test", "here",
];

/// Passwords so common that finding one says nothing about a leak.
const WEAK: &[&str] = &[
    "password", "passwd", "pass", "secret", "admin", "root", "test", "guest", "user", "postgres",
    "mysql", "redis", "123456", "12345678", "qwerty", "letmein", "default",
];

impl Filter {
    /// Whether this filter drops `value`.
    pub(crate) fn drops(self, value: &[u8]) -> bool {
        let v = String::from_utf8_lossy(value);
        let v = v.as_ref();
        match self {
            Filter::Placeholder => is_placeholder(v),
            Filter::ExampleKey => EXAMPLE_KEYS.iter().any(|k| v.contains(k)),
            Filter::Lookup => is_lookup(v),
            Filter::Hash => is_hex_digest(v),
            Filter::Integrity => is_integrity(v),
            Filter::Uuid => is_uuid(v),
            Filter::DataUri => v.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("data:")),
            Filter::Word => is_word(v),
            Filter::Weak => {
                let l = v.to_ascii_lowercase();
                WEAK.iter().any(|w| l == *w)
            }
            Filter::Path => is_path(v),
            Filter::BadChecksum => is_bad_checksum(v),
        }
    }
}

fn is_placeholder(v: &str) -> bool {
    let l = v.to_ascii_lowercase();
    let found = |w: &&str| {
        if l.len() <= SHORT_WORD_REACH {
            return l.contains(*w);
        }
        l.match_indices(*w).any(|(i, _)| {
            let b = l.as_bytes();
            let apart_before = !w.as_bytes()[0].is_ascii_alphanumeric()
                || i == 0
                || !b[i - 1].is_ascii_alphanumeric();
            let end = i + w.len();
            let apart_after = !w.as_bytes()[w.len() - 1].is_ascii_alphanumeric()
                || end == b.len()
                || !b[end].is_ascii_alphanumeric();
            apart_before && apart_after
        })
    };
    if PLACEHOLDER_WORDS.iter().any(found) {
        return true;
    }
    // A short word marks a short value (`xxx-xxx`, `<todo>`, `test_key`);
    // in a long blob such as a key body it occurs by chance (`/xxx+`), and
    // base64's `+` and `/` or an escaped `\n` do not separate words.
    if l.len() <= SHORT_WORD_REACH
        && l.split(|c: char| !(c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '\\'))
            .any(|word| PLACEHOLDER_SHORT.contains(&word))
    {
        return true;
    }
    // One character repeated (`aaaaaaaa`) or only punctuation.
    let first = l.bytes().next();
    first.is_some_and(|f| l.bytes().all(|b| b == f))
        || !l.bytes().any(|b| b.is_ascii_alphanumeric())
}

fn is_lookup(v: &str) -> bool {
    let t = v.trim_start_matches(['"', '\'', '`']);
    if t.starts_with('$')
        || t.starts_with("%(")
        || t.starts_with("%{")
        || t.starts_with("{{")
        || t.starts_with("<%")
        || t.starts_with("#{")
        || t.starts_with("@{")
    {
        return true;
    }
    const LOOKUPS: &[&str] = &[
        "os.environ",
        "os.getenv",
        "getenv(",
        "process.env",
        "env(",
        "env[",
        "env::var",
        "environ[",
        "environ.get",
        "system.getenv",
        "secrets.",
        "vault:",
        "coffer://",
        "import.meta.env",
        "config[",
        "settings.",
        "%env",
    ];
    let l = t.to_ascii_lowercase();
    LOOKUPS.iter().any(|k| l.contains(k))
}

/// A hex string of a digest's length: MD5, SHA-1 (git commits), SHA-224,
/// SHA-256, SHA-384, SHA-512.
fn is_hex_digest(v: &str) -> bool {
    matches!(v.len(), 32 | 40 | 56 | 64 | 96 | 128) && v.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_integrity(v: &str) -> bool {
    ["sha1-", "sha256-", "sha384-", "sha512-"]
        .iter()
        .any(|p| v.starts_with(p))
}

fn is_uuid(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Identifiers, dotted member paths, words joined by `_`, `-` or spaces:
/// no digits and a single case per segment, or code such as `config.password`.
fn is_word(v: &str) -> bool {
    let ident_chars = v
        .bytes()
        .all(|b| b.is_ascii_alphabetic() || b == b'_' || b == b'-' || b == b'.');
    if ident_chars {
        // Words are lowercase, UPPERCASE or CamelCase (an uppercase letter
        // starts each word); a random string of letters is about half
        // uppercase, mixed throughout.
        let letters = v.bytes().filter(u8::is_ascii_alphabetic).count();
        let upper = v.bytes().filter(u8::is_ascii_uppercase).count();
        if upper == letters || upper == 0 {
            return true;
        }
        // CamelCase: few capitals, each starting a word, with at most one
        // acronym (`parseHTTPHeader`), and words that are pronounceable. A
        // random mixed-case string holds several runs of capitals or a run of
        // five consonants (`eGuoAWpdTqmomffjzwDCnte`).
        let b = v.as_bytes();
        let capital_runs = (0..b.len().saturating_sub(1))
            .filter(|&i| {
                b[i].is_ascii_uppercase()
                    && b[i + 1].is_ascii_uppercase()
                    && (i == 0 || !b[i - 1].is_ascii_uppercase())
            })
            .count();
        let mut consonants = 0;
        let mut unpronounceable = false;
        for c in b {
            if c.is_ascii_lowercase() && !b"aeiouy".contains(c) {
                consonants += 1;
                unpronounceable |= consonants >= 5;
            } else {
                consonants = 0;
            }
        }
        return upper * 3 <= letters && capital_runs <= 1 && !unpronounceable;
    }
    // Code: `self.token()`, `cfg.get("x")`, `req.headers[...]`.
    v.contains('(') || v.contains(')')
}

/// File paths and URLs: a rooted or relative path in lowercase path
/// characters, or under a well-known root (a random base64 string may start
/// with `/` and hold slashes, but not both of these).
fn is_path(v: &str) -> bool {
    const ROOTS: &[&str] = &[
        "/run/",
        "/var/",
        "/etc/",
        "/home/",
        "/tmp/",
        "/usr/",
        "/opt/",
        "/srv/",
        "/mnt/",
        "/secrets/",
        "/data/",
        "/app/",
        "./",
        "../",
        "~/",
        "file:",
        "http://",
        "https://",
    ];
    if ROOTS.iter().any(|r| v.starts_with(r)) {
        return true;
    }
    v.starts_with('/')
        && v.matches('/').count() >= 2
        && v.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'/' | b'.' | b'_' | b'-')
        })
}

/// A token with a checksummed prefix (GitHub, npm, coffer) whose checksum is
/// wrong: not a token, whatever name it is assigned to.
fn is_bad_checksum(v: &str) -> bool {
    use crate::checks::Check;
    let b = v.as_bytes();
    if ["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "npm_"]
        .iter()
        .any(|p| v.starts_with(p))
    {
        return !Check::Crc32Base62.passes(b, None);
    }
    if v.starts_with("cft_") {
        return !Check::CofferToken.passes(b, None);
    }
    if v.starts_with("cfi_") {
        return !Check::CofferInvite.passes(b, None);
    }
    if v.starts_with("cfs_") {
        return !Check::CofferSecretId.passes(b, None);
    }
    false
}

/// Shannon entropy of `data`, in bits per byte.
pub fn entropy(data: &[u8]) -> f64 {
    if data.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in data {
        counts[usize::from(b)] += 1;
    }
    let n = data.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drops(f: Filter, cases: &[(&str, bool)]) {
        for (v, expect) in cases {
            assert_eq!(f.drops(v.as_bytes()), *expect, "{f:?} on {v:?}");
        }
    }

    #[test]
    fn each_filter() {
        drops(
            Filter::Placeholder,
            &[
                ("changeme", true),
                ("<your-key>", true),
                ("xxxxxxxxxx", true),
                ("test_key", true),
                ("xxx-xxx", true),
                ("k9Fq2LmZ8vR1", false),
                // Short words met by chance in a key body or behind an
                // escaped newline are not placeholders.
                (
                    format!("{}qZ/xxx+gO{}", "A".repeat(40), "b".repeat(40)).as_str(),
                    false,
                ),
                ("MIIEvQIBADA\\nuLl+zLq8", false),
                // In a long value a placeholder word counts standing apart.
                (
                    format!("{}lorem{}", "A".repeat(40), "b".repeat(40)).as_str(),
                    false,
                ),
                (
                    format!("{}/dummyQ{}", "A".repeat(40), "b".repeat(40)).as_str(),
                    false,
                ),
                (
                    format!("{}-your_key-{}", "A".repeat(40), "b".repeat(40)).as_str(),
                    true,
                ),
                (
                    format!("{}.example.{}", "A".repeat(40), "b".repeat(40)).as_str(),
                    true,
                ),
                (format!("<{}>", "A".repeat(80)).as_str(), true),
            ],
        );
        drops(
            Filter::ExampleKey,
            &[
                ("AKIAIOSFODNN7EXAMPLE", true),
                ("AKIAZ5XQ3MLP7VT2RN4K", false),
            ],
        );
        drops(
            Filter::Lookup,
            &[
                ("${DB_PASSWORD}", true),
                ("$TOKEN", true),
                ("os.environ[\"X\"]", true),
                ("process.env.API_KEY", true),
                ("k9Fq2LmZ8vR1", false),
            ],
        );
        drops(
            Filter::Hash,
            &[
                ("da39a3ee5e6b4b0d3255bfef95601890afd80709", true),
                ("da39a3ee5e6b", false),
            ],
        );
        drops(
            Filter::Integrity,
            &[("sha512-abc+/=", true), ("shaky", false)],
        );
        drops(
            Filter::Uuid,
            &[
                ("123e4567-e89b-12d3-a456-426614174000", true),
                ("123e4567e89b", false),
            ],
        );
        drops(
            Filter::DataUri,
            &[("data:image/png;base64,iVBOR", true), ("database", false)],
        );
        drops(
            Filter::Word,
            &[
                ("my_secret_name", true),
                ("self.token()", true),
                ("parseHTTPHeader", true),
                ("databaseConnectionString", true),
                ("SECRET_NAME", true),
                ("k9Fq2LmZ8vR1", false),
                // Random letters, found as false negatives by the corpus.
                ("eGuoAWpdTqmomffjzwDCnteiuEKnkQPv", false),
                ("rgNulGwRncjjtxmjyFPGsfvVxPhfMjIm", false),
            ],
        );
        drops(Filter::Weak, &[("Password", true), ("k9Fq2LmZ8vR1", false)]);
        drops(
            Filter::Path,
            &[("/run/secrets/db", true), ("k9Fq/2LmZ8vR1", false)],
        );
    }

    #[test]
    fn entropy_of_known_strings() {
        assert_eq!(entropy(b""), 0.0);
        assert_eq!(entropy(b"aaaa"), 0.0);
        assert!((entropy(b"abcd") - 2.0).abs() < 1e-9);
    }
}
