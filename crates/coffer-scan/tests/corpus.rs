//! The scanner against a freshly generated labelled corpus: every positive
//! found by the rule that names it, no negative reported.

use coffer_scan::{Config, Scanner, corpus};

#[test]
fn labelled_corpus_is_classified_exactly() {
    let scanner = Scanner::new(Config::default()).unwrap();
    let mut failures = Vec::new();
    for s in corpus::generate(20) {
        let found = scanner.scan(&s.file_name, s.content.as_bytes());
        match s.expect {
            Some(rule) => {
                if !found.iter().any(|f| f.rule == rule) {
                    failures.push(format!("missed {} ({rule}): {:?}", s.case, found));
                }
            }
            None => {
                if !found.is_empty() {
                    failures.push(format!(
                        "false positive {} ({}): {:?}",
                        s.case, s.kind, found
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_builtin_rule_has_a_positive_in_the_corpus_or_is_listed() {
    // Rules the corpus does not generate yet are listed here on purpose.
    let untested = [
        "coffer-invite",
        "coffer-secret-id",
        "aws-secret-access-key",
        "azure-sas-key",
        "stripe-webhook-secret",
        "discord-bot-token",
        "google-oauth-client-secret",
        "pypi-token",
        "digitalocean-token",
        "telegram-bot-token",
        "age-secret-key",
        "postman-api-key",
        "linear-api-key",
        "databricks-token",
    ];
    let scanner = Scanner::new(Config::default()).unwrap();
    let corpus = corpus::generate(1);
    for r in scanner.rules() {
        let covered = corpus.iter().any(|s| s.expect == Some(r.id.as_str()));
        assert!(
            covered || untested.contains(&r.id.as_str()),
            "rule {} has no corpus case",
            r.id
        );
    }
}
