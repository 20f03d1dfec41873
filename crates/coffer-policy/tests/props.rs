//! Property tests: no input makes the parsers panic, and literal patterns match
//! exactly themselves.

use coffer_policy::{Capability, Pattern, Policy};
use proptest::prelude::*;

/// A literal path segment (never `.` or `..`).
fn segment() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.@:=,~-]{1,6}".prop_filter("dot segments are not paths", |s| s != "." && s != "..")
}

/// A canonical secret path of one to four segments.
fn literal_path() -> impl Strategy<Value = String> {
    prop::collection::vec(segment(), 1..5).prop_map(|segments| segments.join("/"))
}

/// Text built from the language's own tokens (and some near misses), so random
/// inputs reach deep into the parser rather than failing at the first character.
fn token_soup() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        "path",
        "capabilities",
        "=",
        "{",
        "}",
        "[",
        "]",
        ",",
        "\"",
        "\"a/*\"",
        "\"read\"",
        "\"deny\"",
        "\"+/x\"",
        "\"a*b\"",
        "\"\"",
        "#c\n",
        "//c\n",
        "/",
        "*",
        "+",
        "\n",
        " ",
        "\t",
        "\\",
        "é",
        "\u{0}",
        "\u{feff}",
        "\"Read\"",
        "policy",
        "a",
    ]);
    prop::collection::vec(token, 0..40).prop_map(|tokens| tokens.concat())
}

fn check_parse(source: &str) {
    match Policy::parse(source) {
        Ok(policy) => {
            for rule in policy.rules() {
                assert!(!rule.capabilities.is_empty());
            }
        }
        Err(err) => {
            // Positions are 1-based and inside (or just past the end of) the source.
            let lines = source.split('\n').count();
            assert!(err.line >= 1 && err.line <= lines, "{err}");
            let line_len = source
                .split('\n')
                .nth(err.line - 1)
                .unwrap()
                .chars()
                .count();
            assert!(err.column >= 1 && err.column <= line_len + 1, "{err}");
            assert!(!err.message.is_empty());
        }
    }
}

proptest! {
    #[test]
    fn policy_parse_never_panics(source in any::<String>()) {
        check_parse(&source);
    }

    #[test]
    fn policy_parse_never_panics_on_token_soup(source in token_soup()) {
        check_parse(&source);
    }

    #[test]
    fn pattern_parse_and_match_never_panic(
        pattern in any::<String>(),
        target in any::<String>(),
    ) {
        if let Ok(p) = Pattern::parse(&pattern) {
            let _ = p.matches(&target);
        }
    }

    #[test]
    fn wildcard_patterns_never_panic(
        pattern in "/?([a+*]{0,3}/){0,4}[a+*]{0,3}/?",
        target in "([a/]){0,10}",
    ) {
        if let Ok(p) = Pattern::parse(&pattern) {
            let _ = p.matches(&target);
        }
    }

    #[test]
    fn literal_pattern_matches_exactly_itself(path in literal_path(), other in literal_path()) {
        let pattern = Pattern::parse(&path).unwrap();
        prop_assert_eq!(pattern.as_str(), path.as_str());
        prop_assert!(pattern.matches(&path));
        prop_assert_eq!(pattern.matches(&other), other == path);
        let near_misses = [
            format!("{path}/"),
            format!("{path}x"),
            format!("{path}/x"),
            format!("x{path}"),
            format!("/{path}"),
            String::new(),
        ];
        for target in &near_misses {
            prop_assert!(!pattern.matches(target), "{:?} matched {:?}", path, target);
        }

        // The same holds inside a policy, with or without the leading slash.
        let policy = Policy::parse(&format!("path \"/{path}\" {{ capabilities = [\"read\"] }}")).unwrap();
        prop_assert_eq!(policy.capabilities_for(&path).allows(Capability::Read), true);
        prop_assert_eq!(policy.capabilities_for(&other).is_empty(), other != path);
    }

    #[test]
    fn folder_star_matches_exactly_the_descendants(path in literal_path(), other in literal_path()) {
        let inside = Pattern::parse(&format!("{path}/*")).unwrap();
        let folder = Pattern::parse(&format!("{path}/")).unwrap();
        let prefix = format!("{path}/");
        for target in [other.clone(), format!("{other}/")] {
            prop_assert_eq!(inside.matches(&target), target.starts_with(&prefix));
            prop_assert_eq!(folder.matches(&target), target == prefix);
        }
        let descendant = format!("{path}/{other}");
        prop_assert!(inside.matches(&descendant));
        prop_assert!(inside.matches(&prefix));
        prop_assert!(!inside.matches(&path));
    }
}
