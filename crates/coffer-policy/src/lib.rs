//! Coffer's access-policy language: parsing, path patterns and evaluation.
//!
//! Access in coffer is denied by default. An identity carries a list of named
//! policies; each policy is a list of rules, and each rule grants (or denies)
//! [capabilities](Capability) on the targets its [path pattern](Pattern) matches. This
//! crate parses policy text, matches patterns and computes the capabilities an
//! identity has on a target. It is pure: no I/O, no clock, no global state.
//!
//! # The policy language
//!
//! The syntax is a small subset of HashiCorp Vault's HCL policy syntax:
//!
//! ```hcl
//! # Developers read and list everything under app/dev.
//! path "app/dev/*" {
//!   capabilities = ["read", "list"]
//! }
//!
//! // ...but never a production database password.
//! path "app/prod/+/db_password" { capabilities = ["deny"] }
//! ```
//!
//! * A policy is zero or more blocks of the form
//!   `path "PATTERN" { capabilities = [ "CAPABILITY", ... ] }`. An empty policy (or
//!   one with only comments) is valid and grants nothing.
//! * Whitespace, including line breaks, is free-form between tokens. A trailing comma
//!   after the last capability is allowed.
//! * Comments start with `#` or `//` and run to the end of the line. Block comments
//!   (`/* */`) are not supported.
//! * Strings are enclosed in double quotes and must end on the line where they start.
//!   There are no escape sequences: a backslash or a control character (including a
//!   tab) inside a string is an error. Nothing valid needs either.
//! * `capabilities` is the only key a block may contain, exactly once, with a
//!   non-empty list. Vault's other block keys (`allowed_parameters`,
//!   `denied_parameters`, `required_parameters`, `min_wrapping_ttl`, …) and its older
//!   `policy = "read"` form are errors, as is any top-level keyword other than `path`.
//! * Several blocks for the same pattern are merged: the rule gets the union of their
//!   capabilities. Patterns are compared in canonical form, so `"/app/*"` and
//!   `"app/*"` are the same pattern. A capability listed twice is harmless.
//! * Limits: the source may be at most 64 KiB, and a policy may have at most 1000
//!   distinct patterns. A pattern may be at most 512 bytes.
//!
//! Every problem is reported as a [`PolicyError`] with a 1-based line and column
//! (columns count characters, a tab counts as one) and a message that says what was
//! expected, for example
//! `line 3, column 20: unknown capability "reed"; expected one of read, list, ...`.
//! A policy that has any error is rejected as a whole.
//!
//! ## Capabilities
//!
//! Names are exact and lowercase (`"Read"` is an error). The server decides which
//! capability each operation needs; conventionally:
//!
//! | name         | grants                                                              |
//! |--------------|---------------------------------------------------------------------|
//! | `read`       | read a secret's value and metadata                                  |
//! | `list`       | list the entries of a folder                                        |
//! | `create`     | write a secret that does not exist yet                              |
//! | `update`     | write a new version of an existing secret, change its metadata      |
//! | `delete`     | soft-delete (and undelete) versions                                 |
//! | `destroy`    | permanently destroy versions                                        |
//! | `rotate`     | start a rotation                                                    |
//! | `admin`      | administer (`sys/…` targets: policies, identities, tokens, …)       |
//! | `breakglass` | request time-limited break-glass access to a protected environment |
//! | `deny`       | nothing; overrides every other capability (see below)              |
//!
//! ## Targets
//!
//! Patterns are matched against canonical targets, never against raw request text:
//!
//! * a secret path such as `app/dev/db`: one or more segments of ASCII letters,
//!   digits and `_ - . @ : = , ~`, separated by single `/`, with no leading or
//!   trailing `/` and no empty, `.` or `..` segment;
//! * a folder (for listing): the root folder `""`, or segments followed by `/`, such
//!   as `app/dev/`;
//! * a system target such as `sys/policies/ops`.
//!
//! ## Patterns
//!
//! A pattern is a path with wildcards. Matching is byte-exact and case-sensitive
//! (`App/dev` does not match `app/dev`).
//!
//! * Segments are separated by `/`. One leading `/` is accepted and dropped
//!   (`"/app/dev"` is `"app/dev"`); two are an error. Literal segments use the path
//!   alphabet above; an empty segment (`a//b`), `.` or `..` is an error.
//! * **Exact**: a pattern without wildcards, such as `app/dev`, matches only the
//!   target `app/dev`. It does not match `app/dev2`, `app/dev/x` or the folder
//!   `app/dev/`.
//! * **Folder**: a pattern ending in `/`, such as `app/dev/`, matches only the
//!   folder target `app/dev/`, i.e. listing that folder, without its children. The
//!   pattern `""` (or `"/"`) matches only the root folder `""`.
//! * **`+`** as a whole segment matches exactly one non-empty segment:
//!   `app/+/db` matches `app/dev/db` but not `app/db` nor `app/a/b/db`. A `+` that is
//!   not a whole segment (`+x`, `a+`) is an error.
//! * **Trailing `*`**: a `*` as the last character matches any suffix, possibly
//!   empty, which may contain `/`.
//!   * After a `/` (`app/dev/*`) it matches everything inside the folder:
//!     `app/dev/x`, `app/dev/x/y` and the folder `app/dev/` itself, but **not**
//!     `app/dev` and **not** `app/dev2`.
//!   * Glued to a segment (`app/dev*`) it is a plain prefix match on the text:
//!     `app/dev`, `app/dev2`, `app/dev/x` and `app/devops/y` all match. Write
//!     `app/dev/*` when you mean "inside `app/dev`".
//!   * Alone (`*`) it matches every target, including the root folder `""`.
//! * **`*` as a whole segment that is not last** (`*/prod/*`) matches exactly one
//!   segment, the same as `+`, so the common spelling `*/prod/*` works as expected.
//! * Any other `*` (`a*b`, `a*/c`, `**`) is an error: `*` is allowed only at the end
//!   of a pattern or as a whole segment.
//!
//! Matching works segment by segment, without regular expressions or backtracking,
//! in time linear in the length of the target.
//!
//! # Evaluation: union, and deny wins
//!
//! A request that needs capability *C* on a target is allowed when
//!
//! 1. the union of the capabilities of every rule, in every policy of the identity,
//!    whose pattern matches the target contains *C*, and
//! 2. no matching rule, in any of those policies, says `deny`.
//!
//! [`evaluate`] computes that union and [`Capabilities::allows`] applies both
//! conditions. Targets no rule matches get nothing (deny by default).
//!
//! **This differs from Vault**, where only the most specific matching pattern applies.
//! In coffer every matching rule counts, so a broad grant can never be narrowed by a
//! more specific rule that lists fewer capabilities; narrow it with `deny` instead:
//!
//! ```hcl
//! path "app/*"           { capabilities = ["read", "list"] }
//! path "app/prod/*"      { capabilities = ["deny"] }      # no access at all below app/prod/
//! ```
//!
//! Here `app/prod/*` matches the folder `app/prod/` and everything below it, but
//! neither a secret named `app/prod` nor the listing of `app/`.
//!
//! Policies written for Vault or OpenBao, over their KV version 2 paths, are
//! translated (exactly, or refused) by the [`vault`] module.
//!
//! The built-in policy named [`ROOT_POLICY`] grants everything; it has no source and
//! is never parsed. Callers recognise it by name and handle it themselves.
//!
//! # Example
//!
//! ```
//! use coffer_policy::{Capability, Policy, evaluate};
//!
//! let dev = Policy::parse(r#"path "app/dev/*" { capabilities = ["read", "list"] }"#)?;
//! let no_db = Policy::parse(r#"path "+/+/db_password" { capabilities = ["deny"] }"#)?;
//!
//! assert!(evaluate([&dev, &no_db], "app/dev/api_key").allows(Capability::Read));
//! assert!(!evaluate([&dev, &no_db], "app/dev/api_key").allows(Capability::Update));
//! assert!(!evaluate([&dev, &no_db], "app/dev/db_password").allows(Capability::Read));
//! assert!(!evaluate([&dev, &no_db], "app/prod/api_key").allows(Capability::Read));
//! # Ok::<(), coffer_policy::PolicyError>(())
//! ```

#![forbid(unsafe_code)]

mod capability;
mod operation;
mod parse;
mod pattern;
pub mod vault;

pub use capability::{Capabilities, Capability};
pub use operation::Operation;
pub use pattern::{Pattern, PatternError, contains_credential};

/// The name of the built-in policy that grants everything. It has no source text;
/// callers handle it by name, and [`validate_policy_name`] rejects it for
/// user-defined policies.
pub const ROOT_POLICY: &str = "root";

/// The longest policy name, in bytes.
const MAX_POLICY_NAME_BYTES: usize = 64;

/// One rule of a policy: the capabilities granted (or, with `deny`, refused) on the
/// targets the pattern matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Which targets the rule applies to.
    pub pattern: Pattern,
    /// What it grants there (never empty in a parsed policy).
    pub capabilities: Capabilities,
}

/// A parsed policy: its rules, one per distinct pattern, in order of first
/// appearance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    rules: Vec<Rule>,
}

impl Policy {
    /// Parses policy source. See the crate documentation for the language.
    ///
    /// Anywhere in the source, comments included, characters that reorder
    /// displayed text (bidirectional controls) or break lines other than
    /// `\n` and `\r\n` (U+0085, U+2028, U+2029, other control characters
    /// but tab) are refused: a policy must read as it evaluates.
    pub fn parse(source: &str) -> Result<Policy, PolicyError> {
        Policy::parse_check_characters(source)?;
        parse::parse_rules(source, false).map(|rules| Policy { rules })
    }

    /// Refuses characters that reorder displayed text or break lines (see
    /// [`Policy::parse`]).
    fn parse_check_characters(source: &str) -> Result<(), PolicyError> {
        for (line_index, line) in source.split('\n').enumerate() {
            let len = line.chars().count();
            for (column, c) in line.chars().enumerate() {
                let line_end = c == '\r' && column + 1 == len;
                // Tabs and line ends are whitespace; any other control
                // character (a terminal escape in a comment) is refused.
                let bad = (c.is_control() && c != '\t' && !line_end)
                    || matches!(
                        c,
                        '\u{2028}'
                            | '\u{2029}'
                            | '\u{061C}'
                            | '\u{200E}'
                            | '\u{200F}'
                            | '\u{202A}'..='\u{202E}'
                            | '\u{2066}'..='\u{2069}'
                    );
                if bad {
                    return Err(PolicyError {
                        line: line_index + 1,
                        column: column + 1,
                        message: format!(
                            "{} U+{:04X} is not allowed anywhere in a policy (it makes a policy \
                             read differently from how it is evaluated)",
                            if c.is_control() {
                                "control character"
                            } else if matches!(c, '\u{2028}' | '\u{2029}') {
                                "line separator"
                            } else {
                                "text direction control"
                            },
                            c as u32
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// The policy in coffer's language, canonical: one block per rule, in
    /// order, capabilities in [`Capability::ALL`] order. It parses back to
    /// the same policy.
    pub fn to_source(&self) -> String {
        let mut out = String::new();
        for rule in &self.rules {
            let names: Vec<String> = rule
                .capabilities
                .iter()
                .map(|c| format!("\"{}\"", c.name()))
                .collect();
            out.push_str(&format!(
                "path \"{}\" {{\n  capabilities = [{}]\n}}\n",
                rule.pattern.as_str(),
                names.join(", ")
            ));
        }
        out
    }

    /// Parses a policy read back from storage: the rules of [`Policy::parse`]
    /// but two that came later. Characters that reorder or break lines, and
    /// patterns holding something shaped like a token, are refused when a
    /// policy is written, not when one written by an earlier release is
    /// loaded: that policy would otherwise deny everything to the tokens
    /// that carry it after an upgrade.
    pub fn parse_stored(source: &str) -> Result<Policy, PolicyError> {
        parse::parse_rules(source, true).map(|rules| Policy { rules })
    }

    /// The rules, one per distinct pattern, in order of first appearance.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// union of the capabilities of every rule whose pattern matches (Deny included as a bit)
    ///
    /// Use [`Capabilities::allows`] on the result (or on the result of [`evaluate`]
    /// across all of an identity's policies) to decide a request.
    pub fn capabilities_for(&self, target: &str) -> Capabilities {
        self.rules
            .iter()
            .filter(|rule| rule.pattern.matches(target))
            .fold(Capabilities::NONE, |acc, rule| acc.union(rule.capabilities))
    }
}

/// union over all policies; the caller uses `.allows(cap)`
///
/// The result contains `Deny` when any matching rule of any policy denies, in which
/// case [`Capabilities::allows`] is false for every capability.
pub fn evaluate<'a>(policies: impl IntoIterator<Item = &'a Policy>, target: &str) -> Capabilities {
    policies
        .into_iter()
        .fold(Capabilities::NONE, |acc, policy| {
            acc.union(policy.capabilities_for(target))
        })
}

/// A problem in policy source, with the 1-based line and column where it was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct PolicyError {
    /// 1-based line number.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// What is wrong and what was expected.
    pub message: String,
}

/// Why a policy name is refused. Its `Display` is the message shown; a
/// name inside it is quoted with its control and invisible characters
/// escaped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyNameError {
    /// The name is empty.
    #[error("policy name is empty")]
    Empty,
    /// The name is longer than 64 bytes.
    #[error("policy name is {bytes} bytes; the limit is {MAX_POLICY_NAME_BYTES}")]
    TooLong {
        /// The name's length in bytes.
        bytes: usize,
    },
    /// The name holds a character policy names may not.
    #[error(
        "policy name {} contains {}; use lowercase letters, digits, '-', '_' and '.'",
        pattern::quote(.name),
        pattern::quote_char(*.bad)
    )]
    Character {
        /// The refused name.
        name: String,
        /// The first character it may not hold.
        bad: char,
    },
    /// The name starts with `-`, `_` or `.`.
    #[error("policy name {} must start with a letter or digit", pattern::quote(.name))]
    Start {
        /// The refused name.
        name: String,
    },
    /// The name is `root`, the built-in policy's.
    #[error("policy name {ROOT_POLICY:?} is reserved for the built-in policy")]
    Reserved,
}

/// Policy names: 1..=64 bytes of lowercase ASCII letters, digits, `-`, `_`,
/// `.`; must start with a letter or digit. `root` is reserved (only built
/// in).
pub fn validate_policy_name(name: &str) -> Result<(), PolicyNameError> {
    if name.is_empty() {
        return Err(PolicyNameError::Empty);
    }
    if name.len() > MAX_POLICY_NAME_BYTES {
        return Err(PolicyNameError::TooLong { bytes: name.len() });
    }
    if let Some(bad) = name
        .chars()
        .find(|&c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.')))
    {
        return Err(PolicyNameError::Character {
            name: name.to_string(),
            bad,
        });
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(PolicyNameError::Start {
            name: name.to_string(),
        });
    }
    if name == ROOT_POLICY {
        return Err(PolicyNameError::Reserved);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_shaped_words_are_not_repeated_in_parse_errors() {
        let token = format!("cft_{}", "Ab9".repeat(16));
        for source in [
            format!("path {token} {{ capabilities = [\"read\"] }}"),
            format!("path \"a/*\" {{ capabilities {token} }}"),
            format!("path \"a/*\" {{ {token} = [\"read\"] }}"),
            format!("path \"a/*\" {{ capabilities = [\"{token}\"] }}"),
            format!("{token} \"a/*\" {{ capabilities = [\"read\"] }}"),
            format!("path \"a/*\" {{ capabilities = [\"read\"] }} {token}"),
        ] {
            let e = Policy::parse(&source).unwrap_err();
            assert!(!e.message.contains("Ab9Ab9"), "{source}: {e}");
        }
        let long = "w".repeat(200);
        let e = Policy::parse(&format!("path {long}")).unwrap_err();
        assert!(e.message.len() < 200, "{e}");
    }

    #[test]
    fn direction_controls_and_line_separators_are_refused_anywhere() {
        for c in [
            '\u{202E}', '\u{2066}', '\u{2069}', '\u{200F}', '\u{061C}', '\u{2028}', '\u{2029}',
            '\u{85}', '\u{9B}',
        ] {
            for source in [
                format!("# allow{c} nothing\npath \"a/*\" {{ capabilities = [\"read\"] }}"),
                format!("path \"a/*\" {{ capabilities = [\"read\"] }} // x{c}y"),
            ] {
                let e = Policy::parse(&source).unwrap_err();
                assert!(e.message.contains(&format!("U+{:04X}", c as u32)), "{e}");
                assert!(!e.message.contains(c), "{e}");
            }
        }
        // A terminal escape or a bare carriage return in a comment is refused.
        for comment in ["# a\u{1b}[2K b", "# allow all\r# deny"] {
            let source = format!("{comment}\npath \"a/*\" {{ capabilities = [\"read\"] }}");
            assert!(Policy::parse(&source).is_err(), "{comment:?}");
        }
        // Tabs, CRLF line ends and other non-ASCII text in comments are fine.
        assert!(
            Policy::parse("# équipe\r\npath \"a/*\" {\tcapabilities = [\"read\"] }\r\n").is_ok()
        );
    }

    #[test]
    fn policy_names() {
        let longest = "x".repeat(64);
        for name in ["ops", "a", "0", "team-a_b.v2", &longest] {
            assert_eq!(validate_policy_name(name), Ok(()), "{name:?}");
        }
        let invalid = [
            ("", "empty"),
            (&*"x".repeat(65), "65 bytes"),
            ("Ops", "'O'"),
            ("a b", "' '"),
            ("a/b", "'/'"),
            ("é", "'é'"),
            ("a\n", "'\\n'"),
            ("-a", "must start"),
            ("_a", "must start"),
            (".a", "must start"),
            ("root", "reserved"),
        ];
        for (name, fragment) in invalid {
            let message = validate_policy_name(name).unwrap_err().to_string();
            assert!(message.contains(fragment), "{name:?}: {message}");
        }
        // The messages, word for word (they were strings before they were
        // typed, and the API shows them).
        for (name, message) in [
            ("", "policy name is empty".to_string()),
            (
                &"a".repeat(65)[..],
                "policy name is 65 bytes; the limit is 64".to_string(),
            ),
            (
                "-a",
                "policy name \"-a\" must start with a letter or digit".to_string(),
            ),
            (
                "root",
                "policy name \"root\" is reserved for the built-in policy".to_string(),
            ),
        ] {
            assert_eq!(validate_policy_name(name).unwrap_err().to_string(), message);
        }
        assert_eq!(
            validate_policy_name("Ops").unwrap_err(),
            PolicyNameError::Character {
                name: "Ops".into(),
                bad: 'O'
            }
        );
        // Reserved only exactly: names that merely contain it are fine.
        assert_eq!(validate_policy_name("root2"), Ok(()));
        assert_eq!(validate_policy_name("r00t"), Ok(()));
    }
}
