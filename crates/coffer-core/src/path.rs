//! Secret paths: validation and canonical form.
//!
//! A path is one or more segments separated by `/`, conventionally
//! `{app}/{env}/{name}`. The canonical form has no leading or trailing slash.
//! Segments use a deliberately small alphabet, ASCII letters, digits and
//! `_ - . @ : = , ~`, so that a path never needs percent-encoding in a URL, can
//! never be confused with a policy wildcard (`*`, `+`), and has exactly one
//! spelling (no Unicode look-alikes, no case folding). `.` and `..` segments,
//! empty segments (`a//b`) and control characters are refused rather than
//! "fixed", because silently rewriting a path is how path confusion bugs start.

use std::fmt;

/// Longest canonical path, in bytes.
pub const MAX_PATH_LEN: usize = 512;
/// Longest segment, in bytes.
pub const MAX_SEGMENT_LEN: usize = 128;
/// Most segments in a path.
pub const MAX_DEPTH: usize = 32;

/// Why a path was refused. The message quotes the offending input only when it
/// is printable and short, so an error can never carry a pasted secret in full.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid path: {0}")]
pub struct PathError(pub String);

/// A validated, canonical secret path. Paths are names, not secrets: they
/// appear in logs, errors and listings by design.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretPath(String);

impl SecretPath {
    /// Validates `input` (one leading `/` is allowed and dropped).
    pub fn parse(input: &str) -> Result<SecretPath, PathError> {
        let s = input.strip_prefix('/').unwrap_or(input);
        if s.is_empty() {
            return Err(PathError("a secret path cannot be empty".into()));
        }
        if s.ends_with('/') {
            return Err(PathError(
                "a secret path cannot end with '/' (that names a folder)".into(),
            ));
        }
        validate_segments(s)?;
        Ok(SecretPath(s.to_string()))
    }

    /// The canonical path.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last segment (the secret's name).
    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }
}

impl fmt::Display for SecretPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A validated listing prefix: empty (the root) or segments followed by `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPrefix(String);

impl ListPrefix {
    /// Validates `input`; leading and trailing slashes are optional.
    pub fn parse(input: &str) -> Result<ListPrefix, PathError> {
        let s = input.strip_prefix('/').unwrap_or(input);
        let s = s.strip_suffix('/').unwrap_or(s);
        if s.is_empty() {
            return Ok(ListPrefix(String::new()));
        }
        validate_segments(s)?;
        Ok(ListPrefix(format!("{s}/")))
    }

    /// The canonical prefix (empty, or ending with `/`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path of `name` (a listing entry's name, relative to this
    /// prefix) below the prefix.
    pub fn child(&self, name: &str) -> Result<SecretPath, PathError> {
        SecretPath::parse(&format!("{}{name}", self.0))
    }
}

fn validate_segments(s: &str) -> Result<(), PathError> {
    if s.len() > MAX_PATH_LEN {
        return Err(PathError(format!(
            "path is {} bytes long; the limit is {MAX_PATH_LEN}",
            s.len()
        )));
    }
    let mut depth = 0;
    for seg in s.split('/') {
        depth += 1;
        if seg.is_empty() {
            return Err(PathError(
                "empty segment (two slashes in a row, or a trailing slash)".into(),
            ));
        }
        if seg == "." || seg == ".." {
            return Err(PathError(format!("'{seg}' segments are not allowed")));
        }
        if coffer_policy::contains_credential(seg) {
            return Err(PathError(
                "a segment contains what looks like a coffer token or invitation code \
                 (cft_..., cfi_... or cfs_...); credentials never belong in a path (the path is not shown)"
                    .into(),
            ));
        }
        if seg.len() > MAX_SEGMENT_LEN {
            return Err(PathError(format!(
                "a segment is {} bytes long; the limit is {MAX_SEGMENT_LEN}",
                seg.len()
            )));
        }
        if let Some(c) = seg.chars().find(|c| !allowed(*c)) {
            return Err(PathError(if c.is_control() {
                "control characters are not allowed".into()
            } else if c.is_ascii_graphic() || c == ' ' {
                format!("character {c:?} is not allowed; use letters, digits and _ - . @ : = , ~")
            } else {
                format!(
                    "character U+{:04X} is not allowed; use letters, digits and _ - . @ : = , ~",
                    c as u32
                )
            }));
        }
    }
    if depth > MAX_DEPTH {
        return Err(PathError(format!(
            "path has {depth} segments; the limit is {MAX_DEPTH}"
        )));
    }
    Ok(())
}

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@' | ':' | '=' | ',' | '~')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expect: Result<&str, &str>) {
        match (SecretPath::parse(input), expect) {
            (Ok(p), Ok(want)) => assert_eq!(p.as_str(), want, "input {input:?}"),
            (Err(e), Err(want)) => assert!(
                e.0.contains(want),
                "input {input:?}: error {:?} lacks {want:?}",
                e.0
            ),
            (got, want) => panic!("input {input:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn secret_paths() {
        check("app/dev/API_KEY", Ok("app/dev/API_KEY"));
        check("/app/dev/API_KEY", Ok("app/dev/API_KEY"));
        check("single", Ok("single"));
        check("a/b/c/d/e/f", Ok("a/b/c/d/e/f"));
        check(
            "team@corp/db:5432/user=x,y~z.json",
            Ok("team@corp/db:5432/user=x,y~z.json"),
        );
        check(".env/x", Ok(".env/x"));
        check("", Err("empty"));
        check("/", Err("empty"));
        check("//app", Err("empty segment"));
        check("app//dev", Err("empty segment"));
        check("app/dev/", Err("folder"));
        check("app/../prod/x", Err("'..'"));
        check("app/./x", Err("'.'"));
        check("..", Err("'..'"));
        check("app/dev\n/x", Err("control"));
        check("app/de\u{0}v", Err("control"));
        check("app/dev x", Err("' '"));
        check("app/*/x", Err("'*'"));
        check("app/+/x", Err("'+'"));
        check("app/%2e%2e/x", Err("'%'"));
        check("app/dév", Err("U+00E9"));
        check("app\\dev", Err("'\\\\'"));
        check("a/".repeat(33).trim_end_matches('/'), Err("33 segments"));
        check(&"x".repeat(129), Err("limit is 128"));
        check(
            &format!("{}/x", vec!["y".repeat(100); 6].join("/")),
            Err("limit is 512"),
        );
    }

    #[test]
    fn token_shaped_path_is_refused_without_echo() {
        let token = format!("cft_{}", "Ab9".repeat(16));
        let invite = format!("cfi_{}", "Zq3".repeat(16));
        for input in [
            format!("leak/{token}"),
            format!("/leak/{token}"),
            format!("{token}/x"),
            format!("app/dev/KEY-{token}"),
            format!("app/{invite}"),
            format!("app/CFT_{}", "x".repeat(49)),
            // Even a truncated one.
            "app/cft_abc".to_string(),
        ] {
            for err in [
                SecretPath::parse(&input).unwrap_err(),
                ListPrefix::parse(&input).unwrap_err(),
            ] {
                let message = err.to_string();
                assert!(message.contains("looks like a coffer token"), "{message}");
                assert!(
                    !message.to_ascii_lowercase().contains("cft_a")
                        && !message.contains(&token[4..12])
                        && !message.contains(&invite[4..12])
                        && !message.contains("leak"),
                    "{message}"
                );
            }
        }
        // Names that merely contain the letters are fine.
        for fine in ["app/cft/x", "app/cft-x", "app/cf_t1", "app/cfi"] {
            assert!(SecretPath::parse(fine).is_ok(), "{fine}");
        }
    }

    #[test]
    fn name_is_the_last_segment() {
        assert_eq!(SecretPath::parse("a/b/C").unwrap().name(), "C");
        assert_eq!(SecretPath::parse("C").unwrap().name(), "C");
    }

    #[test]
    fn list_prefixes() {
        for (input, want) in [
            ("", ""),
            ("/", ""),
            ("app", "app/"),
            ("app/", "app/"),
            ("/app/dev/", "app/dev/"),
        ] {
            assert_eq!(
                ListPrefix::parse(input).unwrap().as_str(),
                want,
                "{input:?}"
            );
        }
        for bad in ["app//", "a//b", "../x", "a/*"] {
            assert!(ListPrefix::parse(bad).is_err(), "{bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics_and_canonical_form_is_stable(s in "\\PC{0,80}") {
            if let Ok(p) = SecretPath::parse(&s) {
                let again = SecretPath::parse(p.as_str()).unwrap();
                proptest::prop_assert_eq!(again, p);
            }
        }
    }
}
