//! The audit log verifier never panics on a hostile log: arbitrary bytes,
//! records that parse but lie, lines that are huge or not UTF-8. It must
//! never call a log it did not write intact unless every record in it is
//! one linked without the key (written while sealed, and counted apart so
//! that `coffer audit verify` says so): a keyed link needs the audit key.
//! And it reads lines only as far as the chain needs, so it must say
//! exactly what the verifier that parses each line into a full record says.
#![no_main]

use std::io::Cursor;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn key() -> &'static coffer_crypto::AuditKey {
    static KEY: OnceLock<coffer_crypto::AuditKey> = OnceLock::new();
    KEY.get_or_init(|| coffer_crypto::Keyring::generate(0).audit_key())
}

fuzz_target!(|data: &[u8]| {
    let report = coffer_audit::chain::verify(Cursor::new(data), key(), None).unwrap();
    let reference = coffer_audit::chain::verify_reference(Cursor::new(data), key(), None).unwrap();
    assert_eq!(report, reference, "the fast path and the full parse disagree");
    if report.ok() {
        assert_eq!(
            report.records, report.unkeyed,
            "a keyed record verified under a key it was not written with"
        );
    }
    let _ = report.problem.as_ref().map(|p| p.reason.len());
    let chains = coffer_audit::chain::verify_stream(Cursor::new(data), key()).unwrap();
    for chain in &chains {
        let _ = chain.closed;
    }
    for line in data.split(|&b| b == b'\n') {
        if let Ok(mut record) = serde_json::from_slice::<coffer_audit::Record>(line) {
            // Either record format: what version 2 leaves out is put back,
            // and a record encodes again without failing.
            record.expand();
            let _ = record.values_served();
            let _ = record.actor_key();
            let _ = record.encode().unwrap();
        }
    }
});
