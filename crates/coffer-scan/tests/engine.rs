//! The engine at its boundary: allow comments, overlaps, pairs, matchers,
//! redaction and fingerprints, configuration errors, hostile inputs.

use std::sync::Arc;

use coffer_scan::{Config, Matcher, MatcherHit, Scanner, corpus, fingerprint, redact};

fn scan(content: &str) -> Vec<(String, usize)> {
    let s = Scanner::new(Config::default()).unwrap();
    s.scan("f.env", content.as_bytes())
        .into_iter()
        .map(|f| (f.rule, f.line))
        .collect()
}

#[test]
fn allow_comments() {
    let t = corpus::github_token();
    assert_eq!(scan(&format!("A={t} # coffer:allow\n")), vec![]);
    assert_eq!(scan(&format!("# coffer:allow-next-line\nA={t}\n")), vec![]);
    // allow-next-line on the secret's own line does not allow it.
    assert_eq!(
        scan(&format!("A={t} # coffer:allow-next-line\n")),
        vec![("github-token".to_string(), 1)]
    );
    // Only the next line.
    assert_eq!(
        scan(&format!("# coffer:allow-next-line\n\nA={t}\n")),
        vec![("github-token".to_string(), 3)]
    );
}

/// Regression: a 40-character run inside a JWT next to an AWS key id was
/// reported as an AWS secret key.
#[test]
fn aws_secret_key_only_as_a_whole_value_near_its_id() {
    let id = format!("AKIA{}", corpus::alnum(16).to_ascii_uppercase());
    for _ in 0..20 {
        let found = scan(&format!("id={id}\nSESSION={}\n", corpus::jwt()));
        assert!(
            found.iter().all(|(r, _)| r != "aws-secret-access-key"),
            "{found:?}"
        );
    }
    let secret = corpus::alnum(40);
    let found = scan(&format!("aws_access_key_id = {id}\nx = {secret}\n"));
    assert!(
        found.contains(&("aws-secret-access-key".to_string(), 2)),
        "{found:?}"
    );
    // Far from any key id, a 40-character string is not an AWS secret.
    let found = scan(&format!(
        "aws_access_key_id = {id}\n\n\n\n\n\n\n\nx = {secret}\n"
    ));
    assert!(
        found.iter().all(|(r, _)| r != "aws-secret-access-key"),
        "{found:?}"
    );
}

#[test]
fn a_provider_finding_hides_the_generic_one_on_the_same_bytes() {
    let t = corpus::github_token();
    assert_eq!(
        scan(&format!("API_TOKEN=\"{t}\"\n")),
        vec![("github-token".to_string(), 1)]
    );
}

#[test]
fn wrong_checksums_are_not_tokens() {
    let t = corpus::github_token();
    let mut bad = t.clone().into_bytes();
    let last = bad.len() - 1;
    bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
    let bad = String::from_utf8(bad).unwrap();
    assert_eq!(scan(&format!("GITHUB_TOKEN={bad}\n")), vec![]);
    let cft = coffer_crypto::token::generate_token();
    let cft = cft.expose_secret();
    assert_eq!(
        scan(&format!("x {cft}\n")),
        vec![("coffer-token".to_string(), 1)]
    );
    let broken = format!("{}0", &cft[..cft.len() - 1]);
    if broken != cft {
        assert_eq!(scan(&format!("x {broken}\n")), vec![]);
    }
}

#[test]
fn a_leaked_app_role_secret_id_is_found_and_a_broken_one_is_not() {
    let sid = coffer_crypto::token::generate_secret_id();
    let sid = sid.expose_secret();
    assert_eq!(
        scan(&format!("COFFER_SECRET_ID={sid}\n")),
        vec![("coffer-secret-id".to_string(), 1)]
    );
    let last = if sid.ends_with('0') { '1' } else { '0' };
    let broken = format!("{}{last}", &sid[..sid.len() - 1]);
    assert_eq!(scan(&format!("x {broken}\n")), vec![]);
}

struct Known(&'static [u8]);

impl Matcher for Known {
    fn find(&self, content: &[u8], out: &mut Vec<MatcherHit>) {
        if let Some(i) = content.windows(self.0.len()).position(|w| w == self.0) {
            out.push(MatcherHit {
                rule: "coffer-known-value".into(),
                description: "app/prod/DB_PASSWORD version 3".into(),
                start: i,
                end: i + self.0.len(),
            });
        }
    }
}

#[test]
fn matchers_join_the_pipeline() {
    let mut s = Scanner::new(Config::default()).unwrap();
    s.add_matcher(Arc::new(Known(b"horse battery staple")));
    let found = s.scan("x.txt", b"line\nthe value horse battery staple here\n");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].rule, "coffer-known-value");
    assert_eq!((found[0].line, found[0].column), (2, 11));
    assert_eq!(found[0].redacted, "hors…(20 chars)");
    // Allow comments apply to them too; out-of-range hits are dropped.
    assert!(
        s.scan("x.txt", b"horse battery staple # coffer:allow\n")
            .is_empty()
    );
}

#[test]
fn redaction_never_shows_more_than_a_quarter() {
    assert_eq!(redact(b"abc"), "…(3 chars)");
    assert_eq!(redact(b"abcdefgh"), "ab…(8 chars)");
    assert_eq!(redact(b"ghp_0123456789abcdef"), "ghp_…(20 chars)");
    assert_eq!(
        redact("\u{1b}[31mxxxxxxxxxxxxxx".as_bytes()),
        "?[31…(19 chars)"
    );
}

#[test]
fn fingerprints_depend_on_rule_file_and_secret_only() {
    let a = fingerprint("r", "f", b"s");
    assert_eq!(a.len(), 64);
    assert_ne!(a, fingerprint("r2", "f", b"s"));
    assert_ne!(a, fingerprint("r", "f2", b"s"));
    assert_ne!(a, fingerprint("r", "f", b"s2"));
    // The separators keep fields apart.
    assert_ne!(fingerprint("ab", "c", b"s"), fingerprint("a", "bc", b"s"));
}

#[test]
fn bad_configurations_are_refused() {
    for bad in [
        "[allow]\npaths = [\"[\"]\n",
        "[allow]\npatterns = [\"(\"]\n",
        "[[rules]]\nid = \"bad id\"\ndescription = \"d\"\nkeywords = [\"ab\"]\nregex = 'a'\n",
        "[[rules]]\nid = \"x\"\ndescription = \"d\"\nkeywords = [\"a\"]\nregex = 'a'\n",
        "[[rules]]\nid = \"github-token\"\ndescription = \"d\"\nkeywords = [\"ab\"]\nregex = 'a'\n",
        "[[rules]]\nid = \"x\"\ndescription = \"d\"\nnear = { rule = \"nope\", lines = 3 }\nregex = 'a'\n",
        "[[rules]]\nid = \"x\"\ndescription = \"d\"\nkeywords = [\"ab\"]\nregex = 'a'\nmin_entropy = 9.0\n",
        "[[rules]]\nid = \"x\"\ndescription = \"d\"\nkeywords = [\"ab\"]\nregex = 'a'\ncheck = \"nope\"\n",
    ] {
        let parsed = Config::parse(bad).and_then(Scanner::new);
        assert!(parsed.is_err(), "accepted: {bad}");
    }
}

/// Many keyword hits on one long line, and regex-hostile content: the scan
/// finishes and finds what is there (throughput is measured by the
/// benchmark, not timed here).
#[test]
fn hostile_inputs() {
    let t = corpus::github_token();
    let mut line = "password=secret_token_key ".repeat(40_000);
    line.insert_str(line.len() / 2, &format!(" {t} "));
    let found = scan(&line);
    assert_eq!(found, vec![("github-token".to_string(), 1)]);
    // Unterminated private key blocks, one per line.
    let blocks = "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n".repeat(20_000);
    assert_eq!(scan(&blocks), vec![]);
    // Invalid UTF-8 around a token.
    let mut bytes = vec![0xff, 0xfe, b' '];
    bytes.extend_from_slice(t.as_bytes());
    bytes.extend_from_slice(&[b' ', 0xc3]);
    let s = Scanner::new(Config::default()).unwrap();
    assert_eq!(s.scan("f", &bytes).len(), 1);
}
