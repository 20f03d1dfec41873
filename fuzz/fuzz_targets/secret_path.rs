//! Path validation never panics, accepts only the documented alphabet and
//! shape, and is idempotent: a canonical path parses to itself.
#![no_main]

use coffer_core::path::{ListPrefix, SecretPath};
use libfuzzer_sys::fuzz_target;

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_-.@:=,~".contains(c)
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(path) = SecretPath::parse(input) {
        let s = path.as_str();
        assert!(!s.is_empty() && !s.starts_with('/') && !s.ends_with('/'));
        assert!(s.len() <= coffer_core::path::MAX_PATH_LEN);
        for seg in s.split('/') {
            assert!(
                !seg.is_empty() && seg != "." && seg != "..",
                "bad segment in {s:?}"
            );
            assert!(
                seg.chars().all(allowed),
                "character outside the alphabet in {s:?}"
            );
        }
        assert_eq!(SecretPath::parse(s).unwrap().as_str(), s);
        assert!(path.name().len() <= s.len());
    }
    if let Ok(prefix) = ListPrefix::parse(input) {
        let s = prefix.as_str();
        assert!(s.chars().all(|c| allowed(c) || c == '/'), "{s:?}");
        assert!(!s.contains("//"));
        assert_eq!(ListPrefix::parse(s).unwrap().as_str(), s);
    }
});
