//! Token, invitation and accessor checks never panic, accept only the
//! documented shape, and a generated token with one character changed is
//! refused (the checksum catches it).
#![no_main]

use coffer_crypto::token;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let base62 = |t: &str| t.bytes().all(|b| b.is_ascii_alphanumeric());
    if token::is_well_formed(s) {
        assert_eq!(s.len(), token::TOKEN_LEN);
        assert!(s.starts_with(token::TOKEN_PREFIX) && base62(&s[4..]));
    }
    if token::is_well_formed_invite(s) {
        assert_eq!(s.len(), token::INVITE_LEN);
        assert!(s.starts_with(token::INVITE_PREFIX) && base62(&s[4..]));
    }
    if token::is_accessor_well_formed(s) {
        assert_eq!(s.len(), token::ACCESSOR_LEN);
        assert!(s.starts_with(token::ACCESSOR_PREFIX) && base62(&s[4..]));
    }
    // A fresh token with one body or checksum character replaced by the
    // input's first byte (when that differs) must fail its checksum, unless
    // the change happens to keep it (2^-32).
    if let Some((&first, rest)) = data.split_first() {
        if first.is_ascii_alphanumeric() {
            let t = token::generate_token();
            let mut bytes = t.expose_secret().as_bytes().to_vec();
            let at = 4 + usize::from(rest.first().copied().unwrap_or(0)) % (bytes.len() - 4);
            if bytes[at] != first {
                bytes[at] = first;
                let changed = String::from_utf8(bytes).unwrap();
                assert!(!token::is_well_formed(&changed) || rest.len() > usize::MAX - 1);
            }
        }
    }
});
