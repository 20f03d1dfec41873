//! Vault policy translation (`coffer_policy::vault`), driven by tables:
//! what translates and to what, what is refused and on which line, hostile
//! input, rendering back, and mounts.

use coffer_policy::vault::{Mount, MountError, Mounts, render, translate};
use coffer_policy::{Pattern, Policy};

/// Translates with the default mount and returns the coffer source.
fn coffer(source: &str) -> String {
    translate(source, &Mounts::default())
        .unwrap_or_else(|e| panic!("{e}\nin:\n{source}"))
        .to_source()
}

/// The coffer source for `(pattern, [caps])` rules.
fn expect(rules: &[(&str, &[&str])]) -> String {
    rules
        .iter()
        .map(|(p, caps)| {
            let caps: Vec<String> = caps.iter().map(|c| format!("\"{c}\"")).collect();
            format!(
                "path \"{p}\" {{\n  capabilities = [{}]\n}}\n",
                caps.join(", ")
            )
        })
        .collect()
}

fn block(path: &str, caps: &str) -> String {
    format!("path \"{path}\" {{ capabilities = [{caps}] }}\n")
}

#[test]
fn translates_exact_equivalents() {
    let cases: &[(String, String)] = &[
        // Reading values needs metadata read beside it (coffer's read shows both).
        (
            block("secret/data/app/*", r#""read""#)
                + &block("secret/metadata/app/*", r#""read", "list""#),
            expect(&[("app/*", &["read", "list"])]),
        ),
        // Written with the all-kinds wildcard.
        (
            block("secret/+/app/dev/db", r#""read""#),
            expect(&[("app/dev/db", &["read"])]),
        ),
        // Metadata read alone, on one secret: coffer's list there reads metadata only.
        (
            block("secret/metadata/app/db", r#""read""#),
            expect(&[("app/db", &["list"])]),
        ),
        // Listing a folder alone.
        (
            block("secret/metadata/app/", r#""list""#),
            expect(&[("app/", &["list"])]),
        ),
        (
            block("secret/metadata/", r#""list""#),
            expect(&[("", &["list"])]),
        ),
        // Writes: create and update stay apart.
        (
            block("secret/data/app/*", r#""create""#),
            expect(&[("app/*", &["create"])]),
        ),
        (
            block("secret/data/app/*", r#""create", "update""#),
            expect(&[("app/*", &["create", "update"])]),
        ),
        // Patch comes with read and update.
        (
            block("secret/data/app/*", r#""read", "update", "patch""#)
                + &block("secret/metadata/app/*", r#""read""#),
            expect(&[("app/*", &["read", "update"])]),
        ),
        // Soft delete needs its three Vault forms.
        (
            block("secret/data/app/*", r#""delete""#)
                + &block("secret/delete/app/*", r#""update""#)
                + &block("secret/undelete/app/*", r#""update""#),
            expect(&[("app/*", &["delete"])]),
        ),
        // Destroying versions, and with metadata read, deleting the metadata.
        (
            block("secret/destroy/app/*", r#""update""#),
            expect(&[("app/*", &["destroy"])]),
        ),
        (
            block("secret/destroy/app/*", r#""update""#)
                + &block("secret/metadata/app/*", r#""read", "list", "delete""#),
            expect(&[("app/*", &["list", "destroy"])]),
        ),
        // Deny on every kind.
        (
            block("secret/+/app/prod/*", r#""deny""#),
            expect(&[("app/prod/*", &["deny"])]),
        ),
        // A broad grant narrowed by a more specific deny.
        (
            block("secret/+/app/*", r#""read""#) + &block("secret/+/app/prod/*", r#""deny""#),
            expect(&[("app/*", &["read"]), ("app/prod/*", &["deny"])]),
        ),
        // A more specific rule that grants more.
        (
            block("secret/+/app/*", r#""read""#)
                + &block("secret/+/app/dev/*", r#""read""#)
                + &block("secret/data/app/dev/*", r#""create", "update""#),
            expect(&[
                ("app/*", &["read"]),
                ("app/dev/*", &["read", "create", "update"]),
            ]),
        ),
        // Capabilities no request of that kind uses grant nothing.
        (
            block("secret/data/app/*", r#""list", "sudo""#),
            String::new(),
        ),
        (
            block("secret/delete/app/*", r#""create", "read""#),
            String::new(),
        ),
        (
            block("secret/metadata/app/*", r#""create", "update", "patch""#),
            String::new(),
        ),
        // Paths every token may use on itself need no rule.
        (
            block("auth/token/lookup-self", r#""read""#)
                + &block("auth/token/renew-self", r#""update""#)
                + &block("sys/capabilities-self", r#""update""#),
            String::new(),
        ),
        // Policies: admin when the whole set is granted.
        (
            block(
                "sys/policies/acl/*",
                r#""create", "read", "update", "delete", "list", "sudo""#,
            ),
            expect(&[("sys/policies/*", &["admin"])]),
        ),
        (
            block("sys/policy/ops", r#""create", "read", "update", "delete""#),
            expect(&[("sys/policies/ops", &["admin"])]),
        ),
        (
            block("sys/policies/acl/ops", r#""deny""#),
            expect(&[("sys/policies/ops", &["deny"])]),
        ),
        // A leading slash, comments, several blocks for one path.
        (
            "# ops\n".to_owned()
                + &block("/secret/data/x", r#""read""#)
                + "// again\n"
                + &block("secret/metadata/x", r#""read""#),
            expect(&[("x", &["read"])]),
        ),
        (String::new(), String::new()),
    ];
    for (source, expected) in cases {
        assert_eq!(&coffer(source), expected, "in:\n{source}");
        // The result is a valid coffer policy that reads back the same.
        let policy = Policy::parse(expected).unwrap();
        assert_eq!(policy.to_source(), *expected);
    }
}

#[test]
fn refuses_what_has_no_exact_equivalent_naming_the_line() {
    // (source, line, fragment of the message)
    let cases: &[(String, usize, &str)] = &[
        // Coffer's read also shows metadata.
        (
            "\n".to_owned() + &block("secret/data/app/*", r#""read""#),
            2,
            "\"read\" on \"secret/metadata/app/*\"",
        ),
        // Metadata read on a wildcard would also list folders.
        (
            block("secret/metadata/app/*", r#""read""#),
            1,
            "\"list\" on \"secret/metadata/app/*\"",
        ),
        // Listing on a wildcard would also read metadata.
        (
            block("secret/metadata/app/*", r#""list""#),
            1,
            "\"read\" on \"secret/metadata/app/*\"",
        ),
        // Patch alone, or without read.
        (
            block("secret/data/app/*", r#""patch""#),
            1,
            "drop \"patch\"",
        ),
        (
            block("secret/data/app/*", r#""update", "patch""#),
            1,
            "drop \"patch\"",
        ),
        // Delete without undelete.
        (
            block("secret/data/app/*", r#""delete""#)
                + &block("secret/delete/app/*", r#""update""#),
            1,
            "\"update\" on \"secret/undelete/app/*\"",
        ),
        // Metadata delete without destroy, or without metadata read.
        (
            block("secret/metadata/app/db", r#""delete""#),
            1,
            "\"update\" on \"secret/destroy/app/db\"",
        ),
        (
            block("secret/metadata/app/db", r#""delete""#)
                + &block("secret/destroy/app/db", r#""update""#),
            1,
            "\"read\" on \"secret/metadata/app/db\"",
        ),
        // A deny on one kind only.
        (
            block("secret/data/app/prod/*", r#""deny""#),
            1,
            "every kind",
        ),
        // A deny with a grant on the same path.
        (
            block("secret/+/a/*", r#""deny""#) + &block("secret/data/a/*", r#""create""#),
            1,
            "every kind",
        ),
        // A deny that would reach coffer's sys/ targets.
        (
            block("secret/+/*", r#""deny""#),
            1,
            "administration under sys/",
        ),
        (
            block("secret/*", r#""deny""#),
            1,
            "administration under sys/",
        ),
        // Overlap where Vault's most specific rule narrows (the union would widen).
        (
            block("secret/data/app/*", r#""create", "update""#)
                + &block("secret/data/app/prod/*", r#""create""#),
            2,
            "overlaps \"secret/data/app/*\" (line 1)",
        ),
        // A broad deny under a more specific grant (coffer would deny, Vault grant).
        (
            block("secret/+/app/*", r#""deny""#) + &block("secret/data/app/dev/*", r#""create""#),
            2,
            "overlaps",
        ),
        // Vault ranks more `+` segments lower even when narrower.
        (
            block("secret/data/a/+/*", r#""create""#)
                + &block("secret/data/a/+/+/*", r#""create", "update""#),
            2,
            "overlaps",
        ),
        // Policies: partial grants.
        (
            block("sys/policies/acl/*", r#""read", "list""#),
            1,
            "coffer's admin on policies",
        ),
        (
            block("sys/policies/acl/ops", r#""read""#),
            1,
            "coffer's admin on policies",
        ),
        // Self-service paths cannot be denied.
        (
            block("auth/token/lookup-self", r#""deny""#),
            1,
            "cannot be denied",
        ),
        // Paths with no coffer counterpart.
        (
            block("sys/mounts/*", r#""read""#),
            1,
            "coffer translates only",
        ),
        (
            block("auth/token/*", r#""sudo""#),
            1,
            "coffer translates only",
        ),
        (
            block("transit/encrypt/k", r#""update""#),
            1,
            "coffer translates only",
        ),
        (block("*", r#""deny""#), 1, "coffer translates only"),
        (block("+/data/x", r#""read""#), 1, "coffer translates only"),
        (block("secret", r#""read""#), 1, "expected secret/data/"),
        (
            block("secret/data", r#""read""#),
            1,
            "expected secret/data/",
        ),
        (
            block("secret/config", r#""read""#),
            1,
            "expected secret/data/",
        ),
        (block("secret/d*", r#""read""#), 1, "expected secret/data/"),
        (
            block("secret/kv/x", r#""read""#),
            1,
            "not a KV version 2 path",
        ),
        // A `*` Vault reads literally.
        (
            block("secret/data/*/prod", r#""read""#),
            1,
            "only at the end",
        ),
        // Unknown capabilities and keys.
        (
            block("secret/data/x", r#""subscribe""#),
            1,
            "unsupported Vault capability",
        ),
        (
            block("secret/data/x", r#""READ""#),
            1,
            "unsupported Vault capability",
        ),
        (
            "path \"secret/data/x\" { capabilities = [\"read\"] allowed_parameters = {} }"
                .to_owned(),
            1,
            "only `capabilities`",
        ),
        (
            "path \"secret/data/x\" { policy = \"read\" }".to_owned(),
            1,
            "only `capabilities`",
        ),
        ("{\"path\": {}}".to_owned(), 1, "expected `path`"),
    ];
    for (source, line, fragment) in cases {
        let error = translate(source, &Mounts::default())
            .map(|p| p.to_source())
            .expect_err(source);
        assert_eq!(error.line, *line, "{error}\nin:\n{source}");
        assert!(error.message.contains(fragment), "{error}\nin:\n{source}");
    }
}

#[test]
fn hostile_input_is_refused_without_echoing_it() {
    let token = format!("cft_{}", "Ab9".repeat(16));
    let cases: Vec<String> = vec![
        block(&format!("secret/data/{token}"), r#""read""#),
        block("secret/data/../sys", r#""read""#),
        block("secret/data/a//b", r#""read""#),
        block("secret/data/a\\b", r#""read""#),
        block("secret/data/a\u{202E}b", r#""read""#),
        block("secret/data/é", r#""read""#),
        block("secret/data/a b", r#""read""#),
        format!("# \u{1b}[2K\n{}", block("secret/data/x", r#""read""#)),
        format!("{}\u{2028}", block("secret/data/x", r#""read""#)),
        block("secret/data/x", "\"read\n\""),
        block(&format!("secret/data/{}", "a".repeat(600)), r#""read""#),
        "x".repeat(70 * 1024),
        "path \"secret/data/x\" { capabilities = [\"read\"] ".to_owned(),
        "path \"secret/data/x\" /* c */ { capabilities = [\"read\"] }".to_owned(),
    ];
    for source in &cases {
        let error = translate(source, &Mounts::default()).expect_err(source);
        assert!(!error.message.contains("Ab9Ab9"), "{error}");
        assert!(error.message.len() < 600, "{error}");
        assert!(!error.message.contains('\u{202E}') && !error.message.contains('\u{1b}'));
    }
    // Many distinct rules are capped like coffer's own.
    let many: String = (0..1001)
        .map(|i| block(&format!("secret/+/p{i}"), r#""deny""#))
        .collect();
    let error = translate(&many, &Mounts::default()).unwrap_err();
    assert!(error.message.contains("too many rules"), "{error}");
}

#[test]
fn mounts_map_vault_paths_to_coffer_folders() {
    let mounts = Mounts::new(vec![
        Mount::new("secret", "apps/").unwrap(),
        Mount::new("team-kv", "team/kv/").unwrap(),
    ])
    .unwrap();
    let source =
        block("team-kv/+/x/*", r#""read", "list""#) + &block("secret/metadata/", r#""list""#);
    assert_eq!(
        translate(&source, &mounts).unwrap().to_source(),
        expect(&[("team/kv/x/*", &["read", "list"]), ("apps/", &["list"])])
    );
    // A name that is not a mount is refused, naming the mounts.
    let error = translate(&block("kv/data/x", r#""read""#), &mounts).unwrap_err();
    assert!(error.message.contains("\"secret\", \"team-kv\""), "{error}");
    // A prefixed mount's wildcard deny stays out of sys/.
    assert_eq!(
        translate(&block("secret/+/*", r#""deny""#), &mounts)
            .unwrap()
            .to_source(),
        expect(&[("apps/*", &["deny"])])
    );

    for (name, prefix, error) in [
        ("", "", MountError::Name(String::new())),
        ("a/b", "", MountError::Name("a/b".into())),
        ("..", "", MountError::Name("..".into())),
        ("sys", "", MountError::Reserved("sys".into())),
        ("auth", "x/", MountError::Reserved("auth".into())),
        ("kv", "x", MountError::Prefix("x".into())),
        ("kv", "/", MountError::Prefix("/".into())),
        ("kv", "a//", MountError::Prefix("a//".into())),
        ("kv", "a/../", MountError::Prefix("a/../".into())),
        ("kv", "a/*/", MountError::Prefix("a/*/".into())),
        ("kv", "+/", MountError::Prefix("+/".into())),
    ] {
        assert_eq!(Mount::new(name, prefix), Err(error), "{name:?} {prefix:?}");
    }
    let m = |n, p| Mount::new(n, p).unwrap();
    assert!(matches!(
        Mounts::new(vec![m("a", ""), m("b", "x/")]),
        Err(MountError::Overlap { .. })
    ));
    assert!(matches!(
        Mounts::new(vec![m("a", "x/"), m("b", "x/y/")]),
        Err(MountError::Overlap { .. })
    ));
    assert_eq!(
        Mounts::new(vec![m("a", "x/"), m("a", "y/")]),
        Err(MountError::Duplicate("a".into()))
    );
    assert_eq!(Mounts::new(vec![]), Err(MountError::Empty));
    assert!(Mounts::new(vec![m("a", "x/"), m("b", "xy/")]).is_ok());
}

#[test]
fn renders_coffer_policies_that_translate_back() {
    let mounts = Mounts::default();
    for source in [
        r#"path "app/*" { capabilities = ["read", "list"] }"#,
        r#"path "app/dev/db" { capabilities = ["read", "update", "create"] }"#,
        r#"path "app/*" { capabilities = ["read", "list", "create", "update", "delete", "destroy"] }"#,
        r#"path "app/" { capabilities = ["list"] }"#,
        r#"path "app/+/db" { capabilities = ["list"] }"#,
        "path \"app/*\" { capabilities = [\"read\", \"list\"] }\npath \"app/prod/*\" { capabilities = [\"deny\"] }",
        r#"path "sys/policies/*" { capabilities = ["admin"] }"#,
        r#"path "sys/policies/ops" { capabilities = ["deny"] }"#,
        "",
    ] {
        let policy = Policy::parse(source).unwrap();
        let vault = render(&policy, &mounts).unwrap_or_else(|e| panic!("{e}\nin:\n{source}"));
        let back = translate(&vault, &mounts).unwrap_or_else(|e| panic!("{e}\nin:\n{vault}"));
        assert_eq!(back, policy, "{source}\nrendered:\n{vault}");
    }
    // A rendering, word for word.
    let policy = Policy::parse(r#"path "app/*" { capabilities = ["read", "list"] }"#).unwrap();
    assert_eq!(
        render(&policy, &mounts).unwrap(),
        "path \"secret/data/app/*\" {\n  capabilities = [\"read\"]\n}\n\
         path \"secret/metadata/app/*\" {\n  capabilities = [\"read\", \"list\"]\n}\n"
    );

    // What Vault cannot say.
    for (source, fragment) in [
        (
            r#"path "app/*" { capabilities = ["rotate"] }"#,
            "\"rotate\"",
        ),
        (
            r#"path "app/*" { capabilities = ["breakglass"] }"#,
            "\"breakglass\"",
        ),
        (
            r#"path "sys/tokens/*" { capabilities = ["admin"] }"#,
            "\"admin\"",
        ),
        (r#"path "*" { capabilities = ["deny"] }"#, "overlap"),
        (
            "path \"app/*\" { capabilities = [\"read\", \"list\", \"update\"] }\npath \"app/prod/*\" { capabilities = [\"read\", \"list\"] }",
            "overlap",
        ),
    ] {
        let policy = Policy::parse(source).unwrap();
        let error = render(&policy, &mounts).unwrap_err();
        assert!(
            error.to_string().contains(fragment),
            "{error}\nin:\n{source}"
        );
    }
    // A path no mount shows.
    let prefixed = Mounts::new(vec![Mount::new("secret", "apps/").unwrap()]).unwrap();
    let policy = Policy::parse(r#"path "other/*" { capabilities = ["read"] }"#).unwrap();
    assert!(
        render(&policy, &prefixed)
            .unwrap_err()
            .to_string()
            .contains("no configured mount")
    );
}

#[test]
fn pattern_overlap_agrees_with_matching() {
    // Every pair of these patterns, against every one of these targets: where
    // a target matches both, `overlaps` must say so; where it says so for
    // these simple shapes, some target here matches both.
    let patterns = [
        "", "*", "a", "a/", "a/*", "a*", "ab*", "a/b", "a/b/", "a/+", "+/b", "+", "+/*", "a/+/c",
        "a/b*", "b/*", "a/b/c", "+/+/*", "a/bc", "sys/*",
    ];
    // Every path of up to three of these segments, as a secret and as a folder.
    let words = ["a", "b", "ab", "abc", "bc", "c", "x", "sys"];
    let mut targets = vec![String::new()];
    let mut level = vec![String::new()];
    for _ in 0..3 {
        level = level
            .iter()
            .flat_map(|p| {
                words.iter().map(move |w| {
                    if p.is_empty() {
                        (*w).to_owned()
                    } else {
                        format!("{p}/{w}")
                    }
                })
            })
            .collect();
        for t in &level {
            targets.push(t.clone());
            targets.push(format!("{t}/"));
        }
    }
    for a in patterns {
        for b in patterns {
            let (pa, pb) = (Pattern::parse(a).unwrap(), Pattern::parse(b).unwrap());
            let witnessed = targets.iter().any(|t| pa.matches(t) && pb.matches(t));
            assert_eq!(pa.overlaps(&pb), witnessed, "{a:?} vs {b:?}");
            assert_eq!(pa.overlaps(&pb), pb.overlaps(&pa), "{a:?} vs {b:?}");
        }
        let p = Pattern::parse(a).unwrap();
        assert_eq!(
            p.may_match_folder(),
            targets
                .iter()
                .any(|t| (t.is_empty() || t.ends_with('/')) && p.matches(t)),
            "{a:?}"
        );
        assert_eq!(
            p.may_match_secret(),
            targets
                .iter()
                .any(|t| !t.is_empty() && !t.ends_with('/') && p.matches(t)),
            "{a:?}"
        );
    }
}
