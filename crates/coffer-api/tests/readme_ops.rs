//! The README's list of audit operation names is a promise to whoever
//! filters the log: it must name every operation the route table records,
//! and nothing the table does not have (beyond the scheduler's alerts).

use coffer_api::routes::{ALL, UNMATCHED};

/// The paragraph of README.md that lists the operations, and the same
/// paragraph of the chapters that document operations of their own.
fn listed() -> Vec<String> {
    [
        include_str!("../../../README.md"),
        include_str!("../../../docs/src/app-roles.md"),
    ]
    .iter()
    .flat_map(|doc| {
        let start = doc
            .find("Operations (`op`):")
            .expect("the document lists its audit operations under \"Operations (`op`):\"");
        let rest = &doc[start..];
        let end = rest.find("\n\n").unwrap_or(rest.len());
        rest[..end]
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|w| *w != "op")
            .map(str::to_string)
            .collect::<Vec<_>>()
    })
    .collect()
}

#[test]
fn readme_names_every_audited_operation_of_the_table() {
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
    assert!(missing.is_empty(), "README.md does not list {missing:?}");
}

#[test]
fn readme_names_no_operation_the_table_lacks() {
    // The scheduler's alerts are records of the server's own, not a route's.
    let own = ["lifecycle.scheduler"];
    let unknown: Vec<String> = listed()
        .into_iter()
        .filter(|l| !own.contains(&l.as_str()))
        .filter(|l| l != UNMATCHED.name && !ALL.iter().any(|r| r.op.name == l))
        .collect();
    assert!(
        unknown.is_empty(),
        "README.md lists {unknown:?}, which no route records"
    );
}

/// The README's paragraph of the Vault API's operations.
fn listed_vault() -> Vec<String> {
    let readme = include_str!("../../../README.md");
    let start = readme
        .find("Operations of the Vault-compatible API")
        .expect("README.md lists the Vault API's audit operations");
    let rest = &readme[start..];
    let end = rest.find("\n\n").unwrap_or(rest.len());
    rest[..end]
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|w| w.starts_with("vault."))
        .map(str::to_string)
        .collect()
}

#[test]
fn readme_names_every_audited_operation_of_the_vault_table_and_no_other() {
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
