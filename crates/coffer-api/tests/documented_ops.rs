//! The documentation's list of audit operation names (in the book's audit
//! chapter) is a promise to whoever filters the log: it must name every
//! operation the route table records, and nothing the table does not have
//! (beyond the scheduler's alerts).

use std::path::{Path, PathBuf};

use coffer_api::routes::{ALL, UNMATCHED};

/// The README and every chapter of the book under `docs/src`.
fn documents() -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = vec![root.join("README.md")];
    let book = root.join("docs/src");
    let entries =
        std::fs::read_dir(&book).unwrap_or_else(|e| panic!("cannot read {}: {e}", book.display()));
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "md") {
            files.push(path);
        }
    }
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", f.display()));
            (f, text)
        })
        .collect()
}

/// The paragraphs that start with `heading`: the audit chapter's, and
/// those of chapters that document operations of their own (sharing, app
/// roles, machine identities).
fn paragraphs(heading: &str) -> Vec<String> {
    let docs = documents();
    let found: Vec<String> = docs
        .iter()
        .filter(|(_, t)| t.contains(heading))
        .map(|(_, text)| {
            let rest = &text[text.find(heading).unwrap()..];
            let end = rest.find("\n\n").unwrap_or(rest.len());
            rest[..end].to_string()
        })
        .collect();
    assert!(
        !found.is_empty(),
        "README.md or a chapter under docs/src should hold {heading:?}"
    );
    found
}

/// The operations the documentation lists.
fn listed() -> Vec<String> {
    paragraphs("Operations (`op`):")
        .iter()
        .flat_map(|p| {
            p.split('`')
                .skip(1)
                .step_by(2)
                .filter(|w| *w != "op")
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn docs_name_every_audited_operation_of_the_table() {
    let listed = listed();
    let mut missing: Vec<&str> = ALL
        .iter()
        .filter(|r| r.op.audited)
        .map(|r| r.op.name)
        .chain([UNMATCHED.name])
        .filter(|name| !listed.iter().any(|l| l == name))
        .collect();
    missing.sort_unstable();
    missing.dedup();
    assert!(
        missing.is_empty(),
        "the documentation does not list {missing:?}"
    );
}

#[test]
fn docs_name_no_operation_the_table_lacks() {
    // The scheduler's alerts and the sweep's records of expired share
    // links are records of the server's own, not a route's.
    let own = ["lifecycle.scheduler", "share.expire"];
    let unknown: Vec<String> = listed()
        .into_iter()
        .filter(|l| !own.contains(&l.as_str()))
        .filter(|l| l != UNMATCHED.name && !ALL.iter().any(|r| r.op.name == l))
        .collect();
    assert!(
        unknown.is_empty(),
        "the documentation lists {unknown:?}, which no route records"
    );
}

/// The documentation's paragraph of the Vault API's operations.
fn listed_vault() -> Vec<String> {
    paragraphs("Operations of the Vault-compatible API")
        .iter()
        .flat_map(|p| {
            p.split('`')
                .skip(1)
                .step_by(2)
                .filter(|w| w.starts_with("vault."))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn docs_name_every_audited_operation_of_the_vault_table_and_no_other() {
    use coffer_api::vault_routes;
    let listed = listed_vault();
    let mut names: Vec<&str> = vault_routes::ALL
        .iter()
        .filter(|r| r.op.audited)
        .map(|r| r.op.name)
        .chain([vault_routes::UNMATCHED.name])
        .collect();
    names.sort_unstable();
    names.dedup();
    let mut listed_sorted: Vec<&str> = listed.iter().map(String::as_str).collect();
    listed_sorted.sort_unstable();
    assert_eq!(listed_sorted, names);
}
