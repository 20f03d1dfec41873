//! Pattern syntax and matching, driven by tables of cases.

use coffer_policy::Pattern;

/// Checks `pattern` against each `(target, expected)`.
fn check(pattern: &str, cases: &[(&str, bool)]) {
    let parsed = Pattern::parse(pattern).unwrap_or_else(|e| panic!("{pattern:?}: {e}"));
    for &(target, expected) in cases {
        assert_eq!(
            parsed.matches(target),
            expected,
            "pattern {pattern:?} against target {target:?}"
        );
    }
}

#[test]
fn exact_patterns_match_only_themselves() {
    check(
        "app/dev",
        &[
            ("app/dev", true),
            ("app/dev2", false),
            ("app/de", false),
            ("app/dev/x", false),
            ("app/dev/", false),
            ("app", false),
            ("app/", false),
            ("", false),
            ("xapp/dev", false),
            ("App/dev", false),
            ("app/Dev", false),
            ("/app/dev", false),
        ],
    );
    check(
        "a",
        &[
            ("a", true),
            ("a/", false),
            ("a/b", false),
            ("ab", false),
            ("", false),
        ],
    );
    check(
        "sys/policies/ops",
        &[
            ("sys/policies/ops", true),
            ("sys/policies/ops2", false),
            ("sys/policies/", false),
        ],
    );
}

#[test]
fn trailing_slash_star_matches_inside_the_folder() {
    check(
        "app/dev/*",
        &[
            ("app/dev/x", true),
            ("app/dev/x/y", true),
            ("app/dev/x/y/z/", true),
            ("app/dev/", true),
            ("app/dev", false),
            ("app/dev2", false),
            ("app/dev2/x", false),
            ("app/", false),
            ("app", false),
            ("", false),
            ("App/dev/x", false),
        ],
    );
}

#[test]
fn glued_star_is_a_prefix_match() {
    check(
        "app/dev*",
        &[
            ("app/dev", true),
            ("app/dev2", true),
            ("app/devops/y", true),
            ("app/dev/x", true),
            ("app/dev/", true),
            ("app/de", false),
            ("app/", false),
            ("app", false),
            ("app/Dev", false),
            ("", false),
        ],
    );
    check(
        "app/+/db*",
        &[
            ("app/dev/db", true),
            ("app/dev/db_password", true),
            ("app/dev/db/x", true),
            ("app/db", false),
            ("app//db", false),
            ("app/a/b/db", false),
        ],
    );
}

#[test]
fn plus_matches_exactly_one_segment() {
    check(
        "app/+/db",
        &[
            ("app/dev/db", true),
            ("app/prod/db", true),
            ("app/db", false),
            ("app//db", false),
            ("app/a/b/db", false),
            ("app/dev/db2", false),
            ("app/dev/db/", false),
        ],
    );
    check(
        "+",
        &[
            ("a", true),
            ("app", true),
            ("", false),
            ("a/b", false),
            ("a/", false),
        ],
    );
    check(
        "app/+",
        &[
            ("app/x", true),
            ("app/", false),
            ("app", false),
            ("app/x/y", false),
            ("app/x/", false),
        ],
    );
    check(
        "+/+",
        &[
            ("a/b", true),
            ("a", false),
            ("a/b/c", false),
            ("a/", false),
            ("/b", false),
        ],
    );
    check(
        "app/+/",
        &[
            ("app/dev/", true),
            ("app/dev", false),
            ("app/", false),
            ("app/a/b/", false),
        ],
    );
}

#[test]
fn whole_segment_star_before_the_end_matches_one_segment() {
    check(
        "*/prod/*",
        &[
            ("app/prod/x", true),
            ("app/prod/x/y", true),
            ("app/prod/", true),
            ("web/prod/key", true),
            ("prod/x", false),
            ("app/prod", false),
            ("a/b/prod/x", false),
            ("app/production/x", false),
            ("app/dev/x", false),
        ],
    );
    check("*/db", &[("a/db", true), ("db", false), ("a/b/db", false)]);
}

#[test]
fn star_alone_matches_everything() {
    check(
        "*",
        &[
            ("", true),
            ("a", true),
            ("a/b/c", true),
            ("a/", true),
            ("sys/policies/ops", true),
        ],
    );
    check("/*", &[("", true), ("a/b", true)]);
}

#[test]
fn trailing_slash_patterns_match_only_that_folder() {
    check(
        "app/dev/",
        &[
            ("app/dev/", true),
            ("app/dev", false),
            ("app/dev/x", false),
            ("app/dev/x/", false),
            ("app/", false),
            ("app/dev2/", false),
        ],
    );
    check("", &[("", true), ("a", false), ("a/", false)]);
    check("/", &[("", true), ("a", false), ("a/", false)]);
}

#[test]
fn leading_slash_is_dropped() {
    for (with_slash, without) in [
        ("/app/dev", "app/dev"),
        ("/app/dev/*", "app/dev/*"),
        ("/app/", "app/"),
        ("/*", "*"),
        ("/", ""),
    ] {
        let a = Pattern::parse(with_slash).unwrap();
        let b = Pattern::parse(without).unwrap();
        assert_eq!(a, b, "{with_slash:?}");
        assert_eq!(a.as_str(), without);
        assert_eq!(a.to_string(), without);
    }
    check("/app/dev", &[("app/dev", true), ("/app/dev", false)]);
}

#[test]
fn matching_is_case_sensitive_and_byte_exact() {
    check(
        "App/dev",
        &[("App/dev", true), ("app/dev", false), ("APP/DEV", false)],
    );
    check(
        "a.b-c_d@e:f=g,h~i",
        &[("a.b-c_d@e:f=g,h~i", true), ("a.b-c_d@e:f=g,h~j", false)],
    );
}

#[test]
fn canonical_spelling_keeps_star_segments() {
    for pattern in ["*/prod/*", "+/prod/*", "app/dev*", "app/dev/", "a/b"] {
        assert_eq!(Pattern::parse(pattern).unwrap().as_str(), pattern);
    }
}

#[test]
fn invalid_patterns() {
    let cases = [
        (
            "a*b",
            "`*` is allowed only at the end of a pattern or as a whole segment",
        ),
        ("a*/c", "`*` is allowed only at the end"),
        ("**", "`*` is allowed only at the end"),
        ("a/**", "`*` is allowed only at the end"),
        ("*a", "`*` is allowed only at the end"),
        ("a/../b", "`.` and `..` segments are not allowed"),
        ("a/./b", "`.` and `..` segments are not allowed"),
        ("..", "`.` and `..` segments are not allowed"),
        ("a//b", "empty segment"),
        ("a//", "empty segment"),
        ("//a", "at most one `/`"),
        ("+x", "`+` must be a whole segment"),
        ("a/x+/b", "`+` must be a whole segment"),
        ("a+*", "`+` must be a whole segment"),
        ("a b", "character ' ' is not allowed"),
        ("a\\b", "character '\\\\' is not allowed"),
        ("a/é", "character 'é' is not allowed"),
        ("a?", "character '?' is not allowed"),
        ("a\tb", "character '\\t' is not allowed"),
    ];
    for (pattern, fragment) in cases {
        let err = Pattern::parse(pattern).expect_err(pattern);
        assert!(err.0.contains(fragment), "{pattern:?}: {err}");
    }
    let long = "a".repeat(513);
    assert_eq!(
        Pattern::parse(&long).unwrap_err().0,
        "pattern is 513 bytes; the limit is 512"
    );
    assert!(Pattern::parse(&"a".repeat(512)).is_ok());
}
