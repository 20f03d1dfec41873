//! API tokens and their accessors.
//!
//! A token looks like `cft_` + 43 base62 characters + a 6-character base62
//! checksum, 53 characters in all:
//!
//! * The `cft_` prefix makes leaked tokens easy to recognise in logs, repositories
//!   and secret scanners.
//! * The 43 body characters are each uniform over 62 symbols, giving
//!   43 · log2(62) ≈ 256.03 bits of entropy.
//! * The checksum is the first 4 bytes of SHA-256(`cft_` + body) as a big-endian
//!   u32, written as exactly 6 base62 digits (62^6 > 2^32), left-padded with `0`.
//!   It lets scanners and the server reject random strings that merely look like
//!   tokens without any lookup, while a typo slips through with probability 2^-32.
//!
//! The base62 alphabet is `0-9`, `A-Z`, `a-z` in ASCII order, so digit value 0 is
//! `'0'`.
//!
//! An invitation code (`cfi_` + body + checksum) is built the same way, with the
//! checksum taken over `cfi_` + body, so scanners recognise a leaked invitation
//! too, and a token is never mistaken for an invitation or the other way round.
//!
//! An app-role secret id (`cfs_` + body + checksum) is built the same way
//! again, with its own prefix, so a leaked one is found by scanners and is
//! never taken for a token or an invitation.
//!
//! An accessor (`acc_` + 24 base62 characters) is a public handle for a token,
//! used to list and revoke tokens without knowing them; it is not a secret.

use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};
use zeroize::Zeroizing;

use crate::random;
use crate::secret::SecretString;

/// Prefix of every API token.
pub const TOKEN_PREFIX: &str = "cft_";
/// Prefix of every invitation code.
pub const INVITE_PREFIX: &str = "cfi_";
/// Prefix of every app-role secret id.
pub const SECRET_ID_PREFIX: &str = "cfs_";
/// Prefix of every token accessor.
pub const ACCESSOR_PREFIX: &str = "acc_";
/// Number of random base62 characters in a token body.
pub const TOKEN_BODY_LEN: usize = 43;
/// Number of base62 characters in a token checksum.
pub const TOKEN_CHECKSUM_LEN: usize = 6;
/// Total length of a token in bytes (all characters are ASCII).
pub const TOKEN_LEN: usize = TOKEN_PREFIX.len() + TOKEN_BODY_LEN + TOKEN_CHECKSUM_LEN;
/// Total length of an invitation code in bytes (all characters are ASCII).
pub const INVITE_LEN: usize = INVITE_PREFIX.len() + TOKEN_BODY_LEN + TOKEN_CHECKSUM_LEN;
/// Number of random base62 characters in an accessor.
pub const ACCESSOR_BODY_LEN: usize = 24;
/// Total length of an accessor in bytes.
pub const ACCESSOR_LEN: usize = ACCESSOR_PREFIX.len() + ACCESSOR_BODY_LEN;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Largest multiple of 62 that fits in a byte; random bytes at or above it are
/// discarded so that `byte % 62` is exactly uniform.
const REJECTION_LIMIT: u8 = 248;

const _: () = assert!(REJECTION_LIMIT as usize == 62 * 4);

/// Appends `count` uniformly random base62 characters to `out`.
///
/// Each accepted byte is below 248 = 4 · 62, so every residue mod 62 has exactly
/// four preimages and is equally likely. About 3% of bytes are rejected, so we
/// draw in batches and refill as needed. The batch buffer is zeroized because its
/// bytes determine the token.
fn push_base62(out: &mut String, count: usize) {
    let mut batch = Zeroizing::new([0u8; 64]);
    let mut produced = 0;
    while produced < count {
        random::fill(&mut *batch);
        for &byte in batch.iter() {
            if produced == count {
                break;
            }
            if byte < REJECTION_LIMIT {
                out.push(char::from(ALPHABET[usize::from(byte % 62)]));
                produced += 1;
            }
        }
    }
}

/// The 6-character checksum of `prefix_and_body`, as described in the module docs.
fn checksum(prefix_and_body: &[u8]) -> [u8; TOKEN_CHECKSUM_LEN] {
    let digest = Sha256::digest(prefix_and_body);
    let mut value = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    let mut out = [b'0'; TOKEN_CHECKSUM_LEN];
    // Fill from the least significant digit; unused leading digits stay '0'.
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    out
}

/// Generates `prefix` + random body + checksum, the construction shared by
/// tokens and invitation codes.
fn generate_checksummed(prefix: &str) -> SecretString {
    let len = prefix.len() + TOKEN_BODY_LEN + TOKEN_CHECKSUM_LEN;
    // Exact capacity: the value is built in place and never reallocated, so no
    // stray copy of it is left in freed memory.
    let mut value = String::with_capacity(len);
    value.push_str(prefix);
    push_base62(&mut value, TOKEN_BODY_LEN);
    for &c in &checksum(value.as_bytes()) {
        value.push(char::from(c));
    }
    debug_assert_eq!(value.len(), len);
    SecretString::new(value)
}

/// Whether `s` is `prefix` followed by a base62 body and a matching base62
/// checksum, with exactly the right length.
///
/// Past the length and the prefix (the same for every token), the time taken
/// does not depend on the characters: no branch on which class each one is
/// in, and the checksum is computed for any body and compared in constant
/// time. A check that stopped at the first character outside base62, or at
/// the first wrong checksum character, ran at a speed the token's content
/// set (through the branch predictor as much as the early exit), which the
/// dudect tests in `bench/timing` measured (|t| 8 to 19).
fn is_checksummed(prefix: &str, s: &str) -> bool {
    if s.len() != prefix.len() + TOKEN_BODY_LEN + TOKEN_CHECKSUM_LEN || !s.starts_with(prefix) {
        return false;
    }
    let bytes = s.as_bytes();
    let rest = &bytes[prefix.len()..];
    let mut base62 = 1u8;
    for &b in rest {
        // Arithmetic, not `matches!`: each comparison becomes a flag, not a jump.
        let digit = u8::from(b.wrapping_sub(b'0') < 10);
        let letter = u8::from((b | 0x20).wrapping_sub(b'a') < 26);
        base62 &= digit | letter;
    }
    let (prefix_and_body, sum) = bytes.split_at(prefix.len() + TOKEN_BODY_LEN);
    let matches = checksum(prefix_and_body)[..].ct_eq(sum);
    bool::from(Choice::from(base62) & matches)
}

/// Generates a fresh API token.
///
/// # Panics
///
/// Panics if the operating system cannot supply randomness.
#[must_use]
pub fn generate_token() -> SecretString {
    generate_checksummed(TOKEN_PREFIX)
}

/// Whether `token` has exactly the token format: prefix, 53 bytes, base62 body and
/// checksum, and a matching checksum.
///
/// This is a cheap syntactic filter, not authentication: a well-formed token still
/// has to be looked up by its hash.
#[must_use]
pub fn is_well_formed(token: &str) -> bool {
    is_checksummed(TOKEN_PREFIX, token)
}

/// Generates a fresh invitation code: `cfi_` + 43 random base62 characters + a
/// 6-character checksum, 53 characters in all.
///
/// # Panics
///
/// Panics if the operating system cannot supply randomness.
#[must_use]
pub fn generate_invite_code() -> SecretString {
    generate_checksummed(INVITE_PREFIX)
}

/// Whether `s` has exactly the invitation-code format, including a matching
/// checksum. Like [`is_well_formed`], a syntactic filter only: the code still has
/// to be looked up, and checked for expiry and prior use.
#[must_use]
pub fn is_well_formed_invite(s: &str) -> bool {
    is_checksummed(INVITE_PREFIX, s)
}

/// Generates a fresh app-role secret id: `cfs_` + 43 random base62
/// characters + a 6-character checksum, 53 characters in all.
///
/// # Panics
///
/// Panics if the operating system cannot supply randomness.
#[must_use]
pub fn generate_secret_id() -> SecretString {
    generate_checksummed(SECRET_ID_PREFIX)
}

/// Whether `s` has exactly the secret-id format, including a matching
/// checksum. A syntactic filter only, like [`is_well_formed`].
#[must_use]
pub fn is_well_formed_secret_id(s: &str) -> bool {
    is_checksummed(SECRET_ID_PREFIX, s)
}

/// Generates a fresh public handle: `prefix` + 24 random base62 characters,
/// the accessor construction under another prefix (app-role ids, secret-id
/// accessors). Not secret, but not guessable either.
///
/// # Panics
///
/// Panics if the operating system cannot supply randomness.
#[must_use]
pub fn generate_handle(prefix: &str) -> String {
    let mut handle = String::with_capacity(prefix.len() + ACCESSOR_BODY_LEN);
    handle.push_str(prefix);
    push_base62(&mut handle, ACCESSOR_BODY_LEN);
    handle
}

/// Whether `s` is `prefix` followed by exactly 24 base62 characters.
#[must_use]
pub fn is_handle_well_formed(prefix: &str, s: &str) -> bool {
    s.len() == prefix.len() + ACCESSOR_BODY_LEN
        && s.starts_with(prefix)
        && s.as_bytes()[prefix.len()..]
            .iter()
            .all(u8::is_ascii_alphanumeric)
}

/// Generates a fresh token accessor: `acc_` + 24 base62 characters. Not secret.
///
/// # Panics
///
/// Panics if the operating system cannot supply randomness.
#[must_use]
pub fn generate_accessor() -> String {
    let mut accessor = String::with_capacity(ACCESSOR_LEN);
    accessor.push_str(ACCESSOR_PREFIX);
    push_base62(&mut accessor, ACCESSOR_BODY_LEN);
    accessor
}

/// Whether `s` has the accessor format: `acc_` followed by exactly 24 base62
/// characters. Accessors carry no checksum.
#[must_use]
pub fn is_accessor_well_formed(s: &str) -> bool {
    s.len() == ACCESSOR_LEN
        && s.starts_with(ACCESSOR_PREFIX)
        && s.as_bytes()[ACCESSOR_PREFIX.len()..]
            .iter()
            .all(u8::is_ascii_alphanumeric)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    /// A token with a fixed body and the correct checksum, so tests that mutate it
    /// are fully deterministic.
    fn fixed_token(body: &str) -> String {
        assert_eq!(body.len(), TOKEN_BODY_LEN);
        let mut t = format!("{TOKEN_PREFIX}{body}");
        t.push_str(std::str::from_utf8(&checksum(t.as_bytes())).unwrap());
        t
    }

    fn fixed_tokens() -> Vec<String> {
        vec![
            fixed_token(&"0".repeat(43)),
            fixed_token(&"z".repeat(43)),
            fixed_token("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefg"),
        ]
    }

    #[test]
    fn secret_ids_are_checksummed_and_distinct_from_tokens() {
        for _ in 0..50 {
            let id = generate_secret_id();
            let s = id.expose_secret();
            assert_eq!(s.len(), 53);
            assert!(is_well_formed_secret_id(s), "{s}");
            assert!(!is_well_formed(s) && !is_well_formed_invite(s));
            let as_token = s.replacen(SECRET_ID_PREFIX, TOKEN_PREFIX, 1);
            assert!(!is_well_formed(&as_token), "{as_token}");
        }
        let h = generate_handle("rid_");
        assert!(is_handle_well_formed("rid_", &h));
        assert!(!is_handle_well_formed("sia_", &h));
        assert!(!is_handle_well_formed("rid_", &format!("{h}x")));
    }

    #[test]
    fn alphabet_is_ascii_alphanumeric_in_order() {
        assert!(ALPHABET.iter().all(u8::is_ascii_alphanumeric));
        assert!(ALPHABET.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(TOKEN_LEN, 53);
    }

    #[test]
    fn checksum_known_answers() {
        // Computed independently (Python hashlib) so that the format is pinned for
        // other implementations such as secret scanners. The second case has a
        // checksum value below 62^5 and so exercises the '0' left padding.
        let expected = [
            "cft_00000000000000000000000000000000000000000004ZwCYw",
            "cft_zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz03vjig",
            "cft_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefg20PVzJ",
        ];
        for (token, want) in fixed_tokens().iter().zip(expected) {
            assert_eq!(token, want);
            assert!(is_well_formed(want));
        }
    }

    #[test]
    fn generated_tokens_are_well_formed() {
        for _ in 0..200 {
            let token = generate_token();
            let t = token.expose_secret();
            assert_eq!(t.len(), 53);
            assert!(t.starts_with("cft_"));
            assert!(is_well_formed(t), "{t}");
        }
        for t in fixed_tokens() {
            assert!(is_well_formed(&t));
        }
    }

    #[test]
    fn any_single_character_change_is_rejected() {
        let replacements: Vec<char> = ALPHABET
            .iter()
            .map(|&b| char::from(b))
            .chain(['_', '-', ' ', '\0', 'é', '\n'])
            .collect();
        // Fixed tokens make this deterministic; the generated one adds coverage at a
        // 53·66·2^-32 ≈ 1e-6 risk of a checksum collision.
        let mut tokens = fixed_tokens();
        tokens.push(generate_token().expose_secret().to_owned());
        for token in tokens {
            let chars: Vec<char> = token.chars().collect();
            for pos in 0..chars.len() {
                for &r in &replacements {
                    if r == chars[pos] {
                        continue;
                    }
                    let mut changed = chars.clone();
                    changed[pos] = r;
                    let changed: String = changed.into_iter().collect();
                    assert!(!is_well_formed(&changed), "{changed:?}");
                }
            }
        }
    }

    #[test]
    fn truncation_extension_and_case_are_rejected() {
        for token in fixed_tokens() {
            for len in 0..token.len() {
                assert!(!is_well_formed(&token[..len]));
                assert!(!is_well_formed(&token[token.len() - len..]));
            }
            for extra in ["0", " ", "\n"] {
                assert!(!is_well_formed(&format!("{token}{extra}")));
                assert!(!is_well_formed(&format!("{extra}{token}")));
            }
            assert!(!is_well_formed(&token.replacen("cft_", "CFT_", 1)));
            assert!(!is_well_formed(&token.replacen("cft_", "acc_", 1)));
        }
    }

    #[test]
    fn swapped_adjacent_characters_are_rejected() {
        for token in fixed_tokens().into_iter().skip(2) {
            let bytes = token.as_bytes();
            for i in TOKEN_PREFIX.len()..bytes.len() - 1 {
                if bytes[i] == bytes[i + 1] {
                    continue;
                }
                let mut swapped = bytes.to_vec();
                swapped.swap(i, i + 1);
                assert!(!is_well_formed(std::str::from_utf8(&swapped).unwrap()));
            }
        }
    }

    #[test]
    fn thousand_tokens_are_distinct() {
        let tokens: HashSet<String> = (0..1000)
            .map(|_| generate_token().expose_secret().to_owned())
            .collect();
        assert_eq!(tokens.len(), 1000);
    }

    #[test]
    fn base62_output_covers_alphabet() {
        // 62 symbols over 6000 draws: each is expected ~97 times, so a missing
        // symbol means the mapping is broken.
        let mut s = String::new();
        push_base62(&mut s, 6000);
        assert_eq!(s.len(), 6000);
        let seen: HashSet<char> = s.chars().collect();
        assert_eq!(seen.len(), 62);
    }

    #[test]
    fn accessor_format() {
        let mut seen = HashSet::new();
        for _ in 0..200 {
            let a = generate_accessor();
            assert_eq!(a.len(), 28);
            assert!(a.starts_with("acc_"));
            assert!(a[4..].bytes().all(|b| b.is_ascii_alphanumeric()));
            assert!(is_accessor_well_formed(&a));
            assert!(!is_well_formed(&a));
            assert!(seen.insert(a));
        }
        for bad in [
            "",
            "acc_",
            "acc_123",
            "cft_000000000000000000000000",
            "acc_00000000000000000000000_",
        ] {
            assert!(!is_accessor_well_formed(bad), "{bad}");
        }
        assert!(is_accessor_well_formed("acc_000000000000000000000000"));
    }

    /// An invitation code with a fixed body and the correct checksum.
    fn fixed_invite(body: &str) -> String {
        assert_eq!(body.len(), TOKEN_BODY_LEN);
        let mut c = format!("{INVITE_PREFIX}{body}");
        c.push_str(std::str::from_utf8(&checksum(c.as_bytes())).unwrap());
        c
    }

    #[test]
    fn invite_checksum_known_answers() {
        // Computed independently (Python hashlib), like the token answers above.
        let cases = [
            (
                "0".repeat(43),
                "cfi_00000000000000000000000000000000000000000004eOCD3",
            ),
            (
                "z".repeat(43),
                "cfi_zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz1Ijzcd",
            ),
            (
                "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefg".to_owned(),
                "cfi_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefg3XGc8l",
            ),
        ];
        for (body, want) in cases {
            assert_eq!(fixed_invite(&body), want);
            assert!(is_well_formed_invite(want));
            assert!(!is_well_formed(want));
        }
    }

    #[test]
    fn invite_round_trip() {
        let mut seen = HashSet::new();
        for _ in 0..200 {
            let code = generate_invite_code();
            let c = code.expose_secret();
            assert_eq!(c.len(), INVITE_LEN);
            assert_eq!(INVITE_LEN, 53);
            assert!(c.starts_with("cfi_"));
            assert!(is_well_formed_invite(c), "{c}");
            assert!(seen.insert(c.to_owned()));
        }
    }

    #[test]
    fn invite_with_wrong_prefix_or_checksum_is_rejected() {
        for code in [
            fixed_invite(&"0".repeat(43)),
            generate_invite_code().expose_secret().to_owned(),
        ] {
            for prefix in ["cft_", "CFI_", "cfx_", "acc_", "cfi-"] {
                assert!(!is_well_formed_invite(&code.replacen("cfi_", prefix, 1)));
            }
            // Change the last checksum character to every other symbol.
            let (head, last) = code.split_at(code.len() - 1);
            for &b in ALPHABET {
                let c = char::from(b);
                if last.starts_with(c) {
                    continue;
                }
                assert!(!is_well_formed_invite(&format!("{head}{c}")));
            }
            // Change one body character.
            let mut body_changed = code.clone().into_bytes();
            body_changed[10] = if body_changed[10] == b'a' { b'b' } else { b'a' };
            assert!(!is_well_formed_invite(
                std::str::from_utf8(&body_changed).unwrap()
            ));
            for len in 0..code.len() {
                assert!(!is_well_formed_invite(&code[..len]));
            }
            assert!(!is_well_formed_invite(&format!("{code}0")));
        }
    }

    #[test]
    fn tokens_and_invites_are_not_interchangeable() {
        for _ in 0..50 {
            let token = generate_token();
            let invite = generate_invite_code();
            assert!(is_well_formed(token.expose_secret()));
            assert!(!is_well_formed_invite(token.expose_secret()));
            assert!(is_well_formed_invite(invite.expose_secret()));
            assert!(!is_well_formed(invite.expose_secret()));
            // Swapping only the prefix does not help: the checksum covers it.
            let relabelled = token.expose_secret().replacen("cft_", "cfi_", 1);
            assert!(!is_well_formed_invite(&relabelled));
            let relabelled = invite.expose_secret().replacen("cfi_", "cft_", 1);
            assert!(!is_well_formed(&relabelled));
        }
        for t in fixed_tokens() {
            assert!(!is_well_formed_invite(&t));
            assert!(!is_well_formed_invite(&t.replacen("cft_", "cfi_", 1)));
        }
    }

    /// The check as it was written before it was made constant-time: the
    /// reference the property below compares with.
    fn plain_check(prefix: &str, s: &str) -> bool {
        if s.len() != prefix.len() + TOKEN_BODY_LEN + TOKEN_CHECKSUM_LEN || !s.starts_with(prefix) {
            return false;
        }
        if !s.as_bytes()[prefix.len()..]
            .iter()
            .all(u8::is_ascii_alphanumeric)
        {
            return false;
        }
        let (prefix_and_body, sum) = s.split_at(prefix.len() + TOKEN_BODY_LEN);
        checksum(prefix_and_body.as_bytes()) == sum.as_bytes()
    }

    proptest! {
        #[test]
        fn prop_arbitrary_strings_never_panic(s in ".{0,60}") {
            // A random string passing would need the 2^-32 checksum to match.
            let _ = is_well_formed(&s);
            let _ = is_accessor_well_formed(&s);
            let _ = is_well_formed_invite(&s);
        }

        /// The constant-time check accepts exactly what the plain one
        /// (early exits, `matches!`, `==`) did: any one byte of a valid
        /// token replaced by any byte (non-ASCII and the characters next
        /// to each base62 range included), for all three checksummed kinds.
        #[test]
        fn prop_constant_time_check_agrees_with_the_plain_one(
            kind in 0usize..3,
            at in 0usize..53,
            byte in prop_oneof![any::<u8>(), Just(b'/'), Just(b':'), Just(b'@'), Just(b'['),
                                Just(b'`'), Just(b'{'), Just(0x80u8), Just(0xffu8)],
        ) {
            let prefix = [TOKEN_PREFIX, INVITE_PREFIX, SECRET_ID_PREFIX][kind];
            let valid = generate_checksummed(prefix).expose_secret().to_owned();
            let mut bytes = valid.clone().into_bytes();
            bytes[at] = byte;
            // A two-byte character in place of two bytes keeps the length.
            let mut wide = valid.clone().into_bytes();
            let two = at.min(51);
            wide[two..two + 2].copy_from_slice("é".as_bytes());
            let candidates = [
                valid,
                String::from_utf8_lossy(&bytes).into_owned(),
                String::from_utf8(wide).expect("valid UTF-8"),
            ];
            for s in candidates {
                prop_assert_eq!(is_checksummed(prefix, &s), plain_check(prefix, &s), "{:?}", s);
            }
        }

        #[test]
        fn prop_random_bodies_with_wrong_checksum_rejected(body in "[0-9A-Za-z]{43}", sum in "[0-9A-Za-z]{6}") {
            let token = format!("cft_{body}{sum}");
            let good = checksum(&token.as_bytes()[..47]);
            prop_assert_eq!(is_well_formed(&token), good == sum.as_bytes());
            prop_assert!(is_well_formed(&fixed_token(&body)));
        }
    }
}
