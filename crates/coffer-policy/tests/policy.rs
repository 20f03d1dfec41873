//! Policy parsing, error reporting and evaluation, driven by tables of cases.

use coffer_policy::{Capabilities, Capability, Policy, PolicyError, ROOT_POLICY, evaluate};

use Capability::{Admin, Create, Delete, Deny, List, Read, Rotate, Update};

/// A rule as `(pattern, capabilities)`.
type ExpectedRule<'a> = (&'a str, &'a [Capability]);

/// `(policies, target, capabilities allowed, capabilities refused)`.
type EvaluationCase<'a> = (
    &'a [&'a Policy],
    &'a str,
    &'a [Capability],
    &'a [Capability],
);

fn caps(list: &[Capability]) -> Capabilities {
    list.iter().copied().collect()
}

fn parse(source: &str) -> Policy {
    Policy::parse(source).unwrap_or_else(|e| panic!("{e}\nin:\n{source}"))
}

/// The rules of a policy as `(pattern, capabilities)`.
fn rules(policy: &Policy) -> Vec<(&str, Capabilities)> {
    policy
        .rules()
        .iter()
        .map(|r| (r.pattern.as_str(), r.capabilities))
        .collect()
}

#[test]
fn parses_the_documented_example() {
    let policy = parse(
        r#"
# comment
path "app/dev/*" {
  capabilities = ["read", "list"]
}
// also a comment
path "app/prod/+/db_password" { capabilities = ["deny"] }
"#,
    );
    assert_eq!(
        rules(&policy),
        [
            ("app/dev/*", caps(&[Read, List])),
            ("app/prod/+/db_password", caps(&[Deny])),
        ]
    );
}

#[test]
fn accepted_syntax_variations() {
    let cases: &[(&str, &[ExpectedRule])] = &[
        ("", &[]),
        ("   \n\t\r\n", &[]),
        ("# only a comment", &[]),
        ("// only a comment\n# and another\n", &[]),
        (r#"path "a" { capabilities = ["read"] }"#, &[("a", &[Read])]),
        (r#"path"a"{capabilities=["read"]}"#, &[("a", &[Read])]),
        (
            r#"path "a" { capabilities = ["read",] }"#,
            &[("a", &[Read])],
        ),
        (
            "path\n\"a\"\n{\ncapabilities\n=\n[\n\"read\"\n,\n\"list\"\n,\n]\n}\n",
            &[("a", &[Read, List])],
        ),
        (
            r#"path "a" { capabilities = ["read", "read", "read"] }"#,
            &[("a", &[Read])],
        ),
        (
            r#"path "a" { capabilities = ["read"] # trailing comment
               }  // and here"#,
            &[("a", &[Read])],
        ),
        (
            // `#` and `//` start a comment right after a token, with no space.
            "path \"a/*\"#c\n{capabilities=[\"list\"]//c\n}",
            &[("a/*", &[List])],
        ),
        (
            "\u{feff}path \"a\" { capabilities = [\"read\"] }",
            &[("a", &[Read])],
        ),
        (
            r#"path "/a" { capabilities = ["read"] }"#,
            &[("a", &[Read])],
        ),
        (r#"path "" { capabilities = ["list"] }"#, &[("", &[List])]),
        (
            r#"path "a" { capabilities = ["read", "list", "create", "update", "delete", "destroy", "rotate", "admin", "breakglass", "deny"] }"#,
            &[("a", &Capability::ALL)],
        ),
        (
            // Blocks for the same pattern merge; canonical forms compare equal; first
            // appearance sets the order.
            r#"
path "b" { capabilities = ["read"] }
path "a" { capabilities = ["list"] }
path "/b" { capabilities = ["update"] }
path "b" { capabilities = ["deny"] }
"#,
            &[("b", &[Read, Update, Deny]), ("a", &[List])],
        ),
    ];
    for (source, expected) in cases {
        let policy = parse(source);
        let expected: Vec<(&str, Capabilities)> =
            expected.iter().map(|(p, c)| (*p, caps(c))).collect();
        assert_eq!(rules(&policy), expected, "{source:?}");
    }
}

/// Each case: source, expected line, expected column, a fragment of the message.
#[test]
fn parse_errors_say_where_and_what() {
    let cases: &[(&str, usize, usize, &str)] = &[
        (
            "path \"a\" {\n  capabilities = [\"read\",\n    \"reed\"]\n}",
            3,
            5,
            "unknown capability \"reed\"; expected one of read, list, create, update, delete, destroy, rotate, admin, breakglass, deny",
        ),
        (
            r#"path "a" { capabilities = ["Read"] }"#,
            1,
            28,
            "unknown capability \"Read\"; expected one of read, list",
        ),
        (
            r#"path "a" { capabilities = ["READ"] }"#,
            1,
            28,
            "(capability names are lowercase: \"read\")",
        ),
        (
            r#"path "a" { capabilities = [" read"] }"#,
            1,
            28,
            "unknown capability \" read\"",
        ),
        (
            r#"path "a" { capabilities = [""] }"#,
            1,
            28,
            "unknown capability \"\"",
        ),
        (
            "path \"a\" {\n  capabilities = [\"read\"]\n  allowed_parameters = {}\n}",
            3,
            3,
            "unknown key \"allowed_parameters\" in a path block; only `capabilities` is supported",
        ),
        (
            r#"path "a" { policy = "read" }"#,
            1,
            12,
            "unknown key \"policy\"",
        ),
        (
            r#"path "a" { capabilities = ["read"] capabilities = ["list"] }"#,
            1,
            36,
            "`capabilities` is set twice",
        ),
        (
            r#"key "a" { capabilities = ["read"] }"#,
            1,
            1,
            "unknown keyword \"key\"; a policy contains only `path",
        ),
        ("\n\n  { }", 3, 3, "expected `path`, found `{`"),
        (
            r#""a" { }"#,
            1,
            1,
            "expected `path`, found the string \"a\"",
        ),
        // Missing quotes, braces, brackets.
        (
            "path app/dev { capabilities = [\"read\"] }",
            1,
            6,
            "expected a quoted pattern after `path` (like `path \"app/dev/*\"`), found `app`",
        ),
        ("path", 1, 5, "found the end of the policy"),
        (
            r#"path "a" capabilities = ["read"] }"#,
            1,
            10,
            "expected `{` after the pattern \"a\", found `capabilities`",
        ),
        (
            "path \"a\" {\n  capabilities = [\"read\"]\n",
            3,
            1,
            "missing `}` to close the block for \"a\" opened at line 1, column 10",
        ),
        (
            r#"path "a" { capabilities = "read" }"#,
            1,
            27,
            "expected `[` after `capabilities =`, found the string \"read\"",
        ),
        (
            r#"path "a" { capabilities ["read"] }"#,
            1,
            25,
            "expected `=` after `capabilities`, found `[`",
        ),
        (
            r#"path "a" { capabilities = ["read" }"#,
            1,
            35,
            "expected `,` or `]` after a capability, found `}`",
        ),
        (
            r#"path "a" { capabilities = ["read" "list"] }"#,
            1,
            35,
            "expected `,` or `]` after a capability, found the string \"list\"",
        ),
        (
            r#"path "a" { capabilities = [read] }"#,
            1,
            28,
            "expected a quoted capability name (like \"read\"), found `read`",
        ),
        (
            r#"path "a" { capabilities = [,"read"] }"#,
            1,
            28,
            "expected a quoted capability name or `]`, found `,`",
        ),
        (
            r#"path "a" { capabilities = ["read"]"#,
            1,
            35,
            "missing `}`",
        ),
        (
            r#"path "a" { "read" }"#,
            1,
            12,
            "expected `capabilities` or `}`, found the string",
        ),
        // Empty or missing capabilities.
        (
            "path \"a\" {\n  capabilities = []\n}",
            2,
            18,
            "empty capabilities list; name at least one capability (use [\"deny\"] to forbid access)",
        ),
        (
            r#"path "a" { capabilities = [ ] }"#,
            1,
            27,
            "empty capabilities list",
        ),
        (
            "# x\n  path \"a\" { }",
            2,
            3,
            "the block for \"a\" has no `capabilities = [...]`",
        ),
        // Bad patterns: the column points into the string.
        (
            r#"path "a*b" { capabilities = ["read"] }"#,
            1,
            8,
            "invalid pattern \"a*b\": `*` is allowed only at the end of a pattern or as a whole segment",
        ),
        (
            r#"path "a/../b" { capabilities = ["read"] }"#,
            1,
            9,
            "invalid pattern \"a/../b\": `.` and `..` segments are not allowed",
        ),
        (
            r#"path "a//b" { capabilities = ["read"] }"#,
            1,
            9,
            "invalid pattern \"a//b\": empty segment",
        ),
        (
            r#"path "+x" { capabilities = ["read"] }"#,
            1,
            7,
            "invalid pattern \"+x\": `+` must be a whole segment",
        ),
        (
            r#"path "/é/a b" { capabilities = ["read"] }"#,
            1,
            8,
            "character 'é' is not allowed",
        ),
        (
            r#"path "é/a b" { capabilities = ["read"] }"#,
            1,
            7,
            "character 'é' is not allowed",
        ),
        (
            r#"path "ok/a b" { capabilities = ["read"] }"#,
            1,
            11,
            "character ' ' is not allowed",
        ),
        // Strings.
        (
            "path \"a\tb\" { capabilities = [\"read\"] }",
            1,
            8,
            "control character U+0009 is not allowed in a string",
        ),
        (
            "path \"a\" { capabilities = [\"re\u{7f}ad\"] }",
            1,
            31,
            "control character U+007F",
        ),
        (
            r#"path "a\"b" { capabilities = ["read"] }"#,
            1,
            8,
            "backslash in a string: escapes are not supported",
        ),
        (
            "path \"app/dev {\n  capabilities = [\"read\"]\n}",
            1,
            6,
            "unterminated string",
        ),
        ("path \"a", 1, 6, "unterminated string"),
        // Other characters.
        (
            "path \"a\" { capabilities = [\"read\"] };",
            1,
            37,
            "unexpected character ';'",
        ),
        (
            "/* c */",
            1,
            1,
            "block comments (`/* */`) are not supported",
        ),
        ("path \"a\" / ", 1, 10, "unexpected character '/'"),
        ("\u{0}", 1, 1, "control character U+0000 is not allowed"),
        ("  ü", 1, 3, "unexpected character 'ü'"),
    ];
    for &(source, line, column, fragment) in cases {
        let err = Policy::parse(source).expect_err(source);
        assert!(
            err.message.contains(fragment),
            "{source:?}\n  got:  {err}\n  want: ...{fragment}..."
        );
        assert_eq!((err.line, err.column), (line, column), "{source:?}: {err}");
    }
}

#[test]
fn error_display_format() {
    let err =
        Policy::parse("path \"a\" {\n  capabilities = [\"read\",\n    \"reed\"]\n}").unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 3, column 5: unknown capability \"reed\"; expected one of read, list, create, \
         update, delete, destroy, rotate, admin, breakglass, deny"
    );
    assert_eq!(
        err,
        PolicyError {
            line: 3,
            column: 5,
            message: err.message.clone()
        }
    );
}

#[test]
fn echoed_input_is_shortened() {
    let key = "k".repeat(1000);
    let err = Policy::parse(&format!("path \"a\" {{ {key} = [] }}")).unwrap_err();
    assert!(err.message.len() < 200, "{err}");
}

#[test]
fn size_limits() {
    // 64 KiB exactly is accepted; one byte more is not.
    let block = "path \"a\" { capabilities = [\"read\"] }\n";
    let mut at_limit = block.repeat(64 * 1024 / block.len());
    at_limit.push_str(&"#".repeat(64 * 1024 - at_limit.len()));
    assert_eq!(at_limit.len(), 64 * 1024);
    assert_eq!(parse(&at_limit).rules().len(), 1);
    let over = format!("{at_limit}\n");
    let err = Policy::parse(&over).unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 1, column 1: policy is 65537 bytes; the limit is 65536 bytes (64 KiB)"
    );

    // 1000 distinct patterns are accepted; the 1001st is refused where it starts.
    let many = |n: usize| -> String {
        (0..n)
            .map(|i| format!("path \"p{i}\" {{ capabilities = [\"read\"] }}\n"))
            .collect()
    };
    assert_eq!(parse(&many(1000)).rules().len(), 1000);
    let err = Policy::parse(&many(1001)).unwrap_err();
    assert_eq!((err.line, err.column), (1001, 1));
    assert!(
        err.message.contains("at most 1000 distinct path patterns"),
        "{err}"
    );
    // Repeating a pattern does not count against the limit.
    let mut repeated = many(1000);
    repeated.push_str("path \"p0\" { capabilities = [\"list\"] }\n");
    assert_eq!(parse(&repeated).rules().len(), 1000);

    // An over-long pattern is reported at its first character.
    let long = format!(
        "path \"{}\" {{ capabilities = [\"read\"] }}",
        "a".repeat(513)
    );
    let err = Policy::parse(&long).unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 1, column 7: pattern is 513 bytes; the limit is 512"
    );
}

#[test]
fn capabilities_for_unions_matching_rules() {
    let policy = parse(
        r#"
path "app/*"        { capabilities = ["list"] }
path "app/dev/*"    { capabilities = ["read"] }
path "app/dev/db"   { capabilities = ["update"] }
path "sys/policies/*" { capabilities = ["admin"] }
"#,
    );
    let cases: &[(&str, &[Capability])] = &[
        ("app/dev/db", &[Read, List, Update]),
        ("app/dev/api", &[Read, List]),
        ("app/dev/", &[Read, List]),
        ("app/prod/db", &[List]),
        ("app/", &[List]),
        ("app", &[]),
        ("", &[]),
        ("other/x", &[]),
        ("sys/policies/ops", &[Admin]),
    ];
    for &(target, expected) in cases {
        assert_eq!(
            policy.capabilities_for(target),
            caps(expected),
            "{target:?}"
        );
    }
}

#[test]
fn deny_wins_across_rules() {
    let policy = parse(
        r#"
path "*"                     { capabilities = ["read", "list", "create", "update"] }
path "app/prod/+/db_password" { capabilities = ["deny"] }
path "app/secret"            { capabilities = ["read", "deny"] }
"#,
    );
    let cases: &[(&str, Capability, bool)] = &[
        ("app/dev/db_password", Read, true),
        ("app/prod/web/db_password", Read, false),
        ("app/prod/web/db_password", List, false),
        ("app/prod/web/db_password", Update, false),
        ("app/prod/web/api_key", Read, true),
        ("app/secret", Read, false),
        ("app/secret2", Read, true),
        ("app/dev/x", Delete, false),
        ("app/dev/x", Deny, false),
    ];
    for &(target, cap, allowed) in cases {
        let got = policy.capabilities_for(target);
        assert_eq!(got.allows(cap), allowed, "{target:?} {cap}: {got:?}");
    }
    assert!(policy.capabilities_for("app/secret").contains(Deny));
}

#[test]
fn union_and_deny_across_policies() {
    let readers = parse(r#"path "app/*" { capabilities = ["read", "list"] }"#);
    let writers = parse(r#"path "app/dev/*" { capabilities = ["create", "update"] }"#);
    let rotators = parse(r#"path "app/+/db" { capabilities = ["rotate"] }"#);
    let deny_prod = parse(r#"path "*/prod/*" { capabilities = ["deny"] }"#);

    let all = [&readers, &writers, &rotators, &deny_prod];
    let cases: &[EvaluationCase] = &[
        // (policies, target, allowed, not allowed)
        (
            &all,
            "app/dev/db",
            &[Read, List, Create, Update, Rotate],
            &[Delete, Admin, Deny],
        ),
        (&all, "app/dev/x", &[Read, Create], &[Rotate]),
        (&all, "app/prod/db", &[], &[Read, List, Rotate, Update]),
        (&all, "app/prod/", &[], &[List]),
        (&all, "app/", &[List], &[Update]),
        (
            &[&readers, &writers],
            "app/prod/db",
            &[Read],
            &[Update, Rotate],
        ),
        (
            &[&readers, &rotators],
            "app/prod/db",
            &[Read, Rotate],
            &[Update],
        ),
        (&[&deny_prod], "app/dev/x", &[], &[Read]),
        (&[], "app/dev/x", &[], &[Read, List]),
    ];
    for &(policies, target, allowed, refused) in cases {
        let got = evaluate(policies.iter().copied(), target);
        for &cap in allowed {
            assert!(got.allows(cap), "{target:?} should allow {cap}: {got:?}");
        }
        for &cap in refused {
            assert!(!got.allows(cap), "{target:?} should refuse {cap}: {got:?}");
        }
    }

    // A deny in one policy beats a grant in another, whichever order they come in.
    let grant_prod = parse(r#"path "app/prod/db" { capabilities = ["read"] }"#);
    assert!(!evaluate([&grant_prod, &deny_prod], "app/prod/db").allows(Read));
    assert!(!evaluate([&deny_prod, &grant_prod], "app/prod/db").allows(Read));
    assert!(evaluate([&grant_prod], "app/prod/db").allows(Read));
    assert_eq!(
        evaluate([&grant_prod, &deny_prod], "app/prod/db"),
        caps(&[Read, Deny])
    );
}

#[test]
fn root_policy_name_is_reserved() {
    assert_eq!(ROOT_POLICY, "root");
    assert!(coffer_policy::validate_policy_name(ROOT_POLICY).is_err());
}

#[test]
fn policies_stored_by_earlier_releases_still_load() {
    // Written before these were refused at write time: a pattern shaped
    // like a token and a comment with a direction control. Loading them
    // must not turn the policy into deny-all after an upgrade.
    let token_shaped = "path \"app/cft_notes/*\" { capabilities = [\"read\"] }\n";
    let bidi_comment = "# note \u{202E}\npath \"app/*\" { capabilities = [\"list\"] }\n";
    for (source, target, capability) in [
        (token_shaped, "app/cft_notes/x", Read),
        (bidi_comment, "app/x", List),
    ] {
        assert!(
            Policy::parse(source).is_err(),
            "{source:?} is refused when written"
        );
        let stored = Policy::parse_stored(source).unwrap();
        assert!(
            stored.capabilities_for(target).contains(capability),
            "{source:?}"
        );
    }
}

#[path = "policy/vault.rs"]
mod vault;

/// A token pasted unquoted (or quoted) into a capabilities list is never
/// repeated in the error: every place a word is shown goes through the
/// credential filter.
#[test]
fn token_in_a_capabilities_list_is_not_repeated() {
    let token = "cft_Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZg";
    let sources = [
        format!("path \"a/*\" {{ capabilities = [{token}] }}"),
        format!("path \"a/*\" {{ capabilities = [\"read\", {token}] }}"),
        format!("path \"a/*\" {{ capabilities = [\"{token}\"] }}"),
        format!("path \"a/*\" {{ capabilities = {token} }}"),
        format!("path \"a/*\" {{ capabilities = [\"read\" {token}] }}"),
        format!("path \"a/*\" {{ {token} = [\"read\"] }}"),
        format!("{token} \"a/*\" {{ capabilities = [\"read\"] }}"),
    ];
    for source in &sources {
        let e = Policy::parse(source).expect_err(source).to_string();
        assert!(!e.contains("Zm9vYmFy"), "{source}: {e}");
        assert!(e.contains("line 1"), "{source}: {e}");
    }
}
