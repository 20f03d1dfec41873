//! The .env parser never panics, and what the writer writes reads back
//! exactly: for every set of portable keys and values, `write` then
//! `parse` + `resolve` gives the same values, with no parse errors.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Input {
    /// Arbitrary file text.
    Parse(String),
    /// Entries to write and read back.
    RoundTrip(Vec<(String, String)>),
}

fuzz_target!(|input: Input| match input {
    Input::Parse(text) => {
        let parsed = coffer_dotenv::parse(&text);
        for b in &parsed.bindings {
            assert!(b.line >= 1, "lines count from 1");
        }
        // Expansion is bounded: a few lines can't make it allocate without limit.
        let _ = parsed.resolve_within(&|_| None, 1 << 20);
    }
    Input::RoundTrip(entries) => {
        // One value per key: later duplicates would win on reading.
        let mut seen = std::collections::HashSet::new();
        let entries: Vec<(String, String)> = entries
            .into_iter()
            .filter(|(k, _)| seen.insert(k.clone()))
            .collect();
        let refs = entries.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        let Ok(text) = coffer_dotenv::write(refs) else {
            // Refused: every refusal must be justified by the rules.
            assert!(entries.iter().any(|(k, v)| {
                !coffer_dotenv::is_portable_key(k) || !coffer_dotenv::portable_value(v)
            }));
            return;
        };
        let parsed = coffer_dotenv::parse(&text);
        assert!(
            parsed.errors.is_empty(),
            "the writer wrote a line the parser refuses"
        );
        let resolved = parsed.resolve(&|_| None);
        assert_eq!(
            resolved.len(),
            entries.len(),
            "a written entry was lost or split"
        );
        for ((key, value), (rkey, rvalue)) in entries.iter().zip(&resolved) {
            assert_eq!(key, rkey);
            assert!(
                rvalue.as_deref() == Some(value.as_str()),
                "value of {key:?} changed on reading"
            );
        }
    }
});
