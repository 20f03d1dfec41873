//! Password hashing for human users, and the policy passwords must meet.
//!
//! Passwords are hashed with Argon2id at OWASP's current minimum recommendation
//! (19 MiB of memory, 2 passes, 1 lane), a fresh 16-byte salt from the operating
//! system's CSPRNG and a 32-byte output. The result is a PHC string such as
//! `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`, which records the algorithm
//! and parameters next to the salt and hash. Verification therefore uses whatever
//! parameters a stored hash was made with, and [`needs_rehash`] tells callers when
//! to replace an old hash after a successful login.
//!
//! [`verify_dummy`] exists so that a login for an unknown user costs the same as
//! one for a known user; without it, response times reveal which accounts exist.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::random;

/// Longest password accepted, in bytes. Argon2 itself accepts far more, but no
/// human types this much and a bound keeps request handling predictable.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Shortest password accepted, in characters (Unicode scalar values).
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Argon2 memory cost in KiB (19 MiB), OWASP's minimum for Argon2id.
const M_COST_KIB: u32 = 19_456;
/// Argon2 time cost (number of passes).
const T_COST: u32 = 2;
/// Argon2 parallelism (number of lanes).
const P_COST: u32 = 1;
/// Length of the derived hash in bytes.
const OUTPUT_LEN: usize = 32;
/// Length of the random salt in bytes.
const SALT_LEN: usize = 16;

/// The password that the dummy hash is made from. It need not be secret: whatever
/// [`verify_dummy`] computes, it returns `false`.
const DUMMY_PASSWORD: &str = "coffer dummy password for timing equalisation";

/// Why a password was refused or could not be hashed.
///
/// No variant carries or prints the password, or any part of it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// Fewer than [`MIN_PASSWORD_CHARS`] characters.
    #[error("password is too short: use at least {min} characters")]
    TooShort {
        /// The minimum number of characters.
        min: usize,
    },
    /// More than [`MAX_PASSWORD_BYTES`] bytes.
    #[error("password is too long: use at most {max} bytes")]
    TooLong {
        /// The maximum number of bytes.
        max: usize,
    },
    /// Nothing but whitespace.
    #[error("password must not consist only of whitespace")]
    OnlyWhitespace,
    /// Contains a control character (such as a newline, tab or NUL), which is
    /// almost always a paste or encoding accident and cannot be typed reliably.
    #[error("password must not contain control characters")]
    ControlCharacter,
    /// Argon2 failed. This does not happen with the fixed parameters used here;
    /// the detail is deliberately left out.
    #[error("password hashing failed")]
    Hash,
}

/// The Argon2id instance with the current parameters.
fn hasher() -> Argon2<'static> {
    // The constants are within Argon2's limits, which a test checks; `expect`
    // cannot fire at run time.
    let params = Params::new(M_COST_KIB, T_COST, P_COST, Some(OUTPUT_LEN))
        .expect("constant Argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Checks that `password` meets the password policy: at least
/// [`MIN_PASSWORD_CHARS`] characters, at most [`MAX_PASSWORD_BYTES`] bytes, not
/// only whitespace, and no control characters.
///
/// # Errors
///
/// Returns the first rule the password breaks. The error never quotes the
/// password.
pub fn check_password_policy(password: &str) -> Result<(), PasswordError> {
    // Checked first so that the character scans below are bounded.
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::TooLong {
            max: MAX_PASSWORD_BYTES,
        });
    }
    if password.chars().any(char::is_control) {
        return Err(PasswordError::ControlCharacter);
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(PasswordError::TooShort {
            min: MIN_PASSWORD_CHARS,
        });
    }
    if password.chars().all(char::is_whitespace) {
        return Err(PasswordError::OnlyWhitespace);
    }
    Ok(())
}

/// Hashes `password` with Argon2id and a fresh random salt, returning a PHC
/// string. The string holds the parameters, salt and hash, nothing else.
///
/// The password must meet [`check_password_policy`], so that no code path can
/// store a password that the policy forbids.
///
/// # Errors
///
/// Returns the policy error if the password breaks the policy, or
/// [`PasswordError::Hash`] if Argon2 fails.
///
/// # Panics
///
/// Panics if the operating system cannot supply randomness.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    check_password_policy(password)?;
    hash_unchecked(password)
}

/// Hashes without the policy check; used for the dummy hash as well.
fn hash_unchecked(password: &str) -> Result<String, PasswordError> {
    let salt =
        SaltString::encode_b64(&random::bytes::<SALT_LEN>()).map_err(|_| PasswordError::Hash)?;
    let hash = hasher()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|_| PasswordError::Hash)?;
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC string `phc`.
///
/// The parameters recorded in `phc` are used, whatever they are, since the string
/// was produced by this module (perhaps with older parameters; see
/// [`needs_rehash`]). The hash comparison is constant-time. A malformed `phc` or
/// a password longer than [`MAX_PASSWORD_BYTES`] gives `false`; the latter
/// returns early, which reveals only the length of the caller's own input.
#[must_use]
pub fn verify_password(password: &str, phc: &str) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    // `verify_password` takes algorithm, version and parameters from `hash`; the
    // instance's own parameters are not used.
    hasher().verify_password(password.as_bytes(), &hash).is_ok()
}

/// Runs one verification of `password` against a fixed dummy hash made with the
/// current parameters, and returns `false`.
///
/// Call this when a login names a user that does not exist, so that the response
/// takes as long as for a user that does. The dummy hash is computed on first use
/// (one extra hash); call this once at start-up so that the first real request
/// does not pay for it.
#[must_use]
pub fn verify_dummy(password: &str) -> bool {
    let phc = dummy_hash();
    // `black_box` keeps the verification from being treated as dead code; its
    // result is deliberately ignored, even if someone guesses the dummy password.
    let _ = std::hint::black_box(verify_password(password, phc));
    false
}

/// The dummy hash, made once with the current parameters rather than stored as a
/// constant, so that its cost always matches that of real hashes.
fn dummy_hash() -> &'static str {
    static DUMMY_HASH: OnceLock<String> = OnceLock::new();
    DUMMY_HASH.get_or_init(|| {
        hash_unchecked(DUMMY_PASSWORD).expect("hashing with constant parameters succeeds")
    })
}

/// Whether the PHC string `phc` was made with parameters other than the current
/// ones (algorithm, version, memory, passes, lanes, salt or output length), so
/// that the caller should store a fresh [`hash_password`] of the password after
/// a successful [`verify_password`]. A malformed string also gives `true`.
#[must_use]
pub fn needs_rehash(phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return true;
    };
    let Ok(params) = Params::try_from(&hash) else {
        return true;
    };
    let salt_len = hash.salt.and_then(|salt| {
        let mut buf = [0u8; 64];
        salt.decode_b64(&mut buf).ok().map(<[u8]>::len)
    });
    let current = hash.algorithm == Algorithm::Argon2id.ident()
        && hash.version == Some(Version::V0x13.into())
        && params.m_cost() == M_COST_KIB
        && params.t_cost() == T_COST
        && params.p_cost() == P_COST
        && params.output_len() == Some(OUTPUT_LEN)
        && params.keyid().is_empty()
        && params.data().is_empty()
        && salt_len == Some(SALT_LEN);
    !current
}

#[cfg(test)]
mod tests {
    use super::*;

    // Argon2 at 19 MiB is slow in debug builds, so the tests hash only a handful
    // of times; hashes with other parameters use tiny memory costs.

    /// A PHC string for `password` made with arbitrary parameters.
    fn hash_with(password: &str, alg: Algorithm, params: Params, salt: &[u8]) -> String {
        let salt = SaltString::encode_b64(salt).unwrap();
        Argon2::new(alg, Version::V0x13, params)
            .hash_password(password.as_bytes(), &salt)
            .unwrap()
            .to_string()
    }

    #[test]
    fn constants_are_valid_argon2_parameters() {
        let params = hasher().params().clone();
        assert_eq!(params.m_cost(), 19_456);
        assert_eq!(params.t_cost(), 2);
        assert_eq!(params.p_cost(), 1);
        assert_eq!(params.output_len(), Some(32));
    }

    #[test]
    fn hash_verify_round_trip() {
        let password = "correct horse battery staple";
        let phc = hash_password(password).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(!phc.contains(password));
        assert!(!needs_rehash(&phc));

        let parsed = PasswordHash::new(&phc).unwrap();
        assert_eq!(parsed.hash.unwrap().len(), 32);

        assert!(verify_password(password, &phc));
        assert!(!verify_password("correct horse battery stapler", &phc));
        assert!(!verify_password("", &phc));

        // Same password, fresh salt: a different string.
        let again = hash_password(password).unwrap();
        assert_ne!(phc, again);
    }

    #[test]
    fn malformed_hashes_are_rejected_not_panicked_on() {
        let good = hash_with(
            "some password",
            Algorithm::Argon2id,
            Params::new(8, 1, 1, Some(32)).unwrap(),
            &[7; 16],
        );
        assert!(verify_password("some password", &good));
        let truncated = &good[..good.len() - 5];
        for bad in [
            "",
            "not a hash",
            "$argon2id$",
            "$argon2id$v=19$m=19456,t=2,p=1$",
            "$bcrypt$v=19$m=8,t=1,p=1$BwcHBwcHBwcHBwcHBwcHBw$AAAA",
            "$argon2id$v=19$m=8,t=1,p=1,x=3$BwcHBwcHBwcHBwcHBwcHBw$AAAAAAAAAAAAAAAAAAAAAA",
            truncated,
        ] {
            assert!(!verify_password("some password", bad), "{bad}");
            assert!(needs_rehash(bad), "{bad}");
        }
    }

    #[test]
    fn stored_hashes_with_other_parameters_verify_and_need_rehash() {
        let cases = [
            (
                Algorithm::Argon2id,
                Params::new(8, 1, 1, Some(32)).unwrap(),
                16,
            ),
            (
                Algorithm::Argon2id,
                Params::new(16, 2, 1, Some(32)).unwrap(),
                16,
            ),
            (
                Algorithm::Argon2id,
                Params::new(16, 1, 2, Some(32)).unwrap(),
                16,
            ),
            (
                Algorithm::Argon2id,
                Params::new(8, 1, 1, Some(16)).unwrap(),
                16,
            ),
            (
                Algorithm::Argon2i,
                Params::new(8, 1, 1, Some(32)).unwrap(),
                16,
            ),
            (
                Algorithm::Argon2id,
                Params::new(8, 1, 1, Some(32)).unwrap(),
                8,
            ),
        ];
        for (alg, params, salt_len) in cases {
            let phc = hash_with("old password", alg, params, &vec![1; salt_len]);
            assert!(verify_password("old password", &phc), "{phc}");
            assert!(!verify_password("old passwort", &phc), "{phc}");
            assert!(needs_rehash(&phc), "{phc}");
        }
    }

    #[test]
    fn needs_rehash_is_false_for_current_parameters_without_hashing() {
        // A string with the current parameters and lengths, assembled by hand so
        // that this test does not pay for a 19 MiB hash.
        let salt = SaltString::encode_b64(&[3; 16]).unwrap();
        let phc = format!(
            "$argon2id$v=19$m=19456,t=2,p=1${}$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            salt.as_str()
        );
        assert!(!needs_rehash(&phc), "{phc}");
        assert!(needs_rehash(&phc.replace("t=2", "t=3")));
        assert!(needs_rehash(&phc.replace("m=19456", "m=19457")));
        assert!(needs_rehash(&phc.replace("v=19", "v=16")));
        assert!(needs_rehash(&phc.replace("argon2id", "argon2d")));
    }

    #[test]
    fn dummy_verification_is_always_false() {
        assert!(!verify_dummy("correct horse battery staple"));
        assert!(!verify_dummy(DUMMY_PASSWORD));
        // The dummy really is a hash of the dummy password with the current
        // parameters, so a dummy verification does the same work as a real one.
        assert!(!needs_rehash(dummy_hash()));
        assert!(verify_password(DUMMY_PASSWORD, dummy_hash()));
        assert!(std::ptr::eq(dummy_hash(), dummy_hash()), "computed once");
    }

    #[test]
    fn policy() {
        type E = PasswordError;
        let ok = [
            "correct horse",
            "abcdefghijkl",
            "ünïcödé pässwörd",
            "🔑🔑🔑🔑🔑🔑🔑🔑🔑🔑🔑🔑",
            "  leading and trailing spaces  ",
        ];
        for p in ok {
            assert!(check_password_policy(p).is_ok(), "{p}");
        }
        assert!(check_password_policy(&"a".repeat(MAX_PASSWORD_BYTES)).is_ok());

        let check = |p: &str, want: fn(&E) -> bool| {
            let err = check_password_policy(p).unwrap_err();
            assert!(want(&err), "{p:?}: {err:?}");
            // The message never quotes the password.
            if !p.is_empty() && !p.trim().is_empty() {
                assert!(!err.to_string().contains(p.trim()), "{p:?}: {err}");
            }
            assert!(hash_password(p).is_err());
        };
        check("", |e| matches!(e, E::TooShort { min: 12 }));
        check("abcdefghijk", |e| matches!(e, E::TooShort { .. }));
        check("🔑🔑🔑🔑🔑🔑🔑🔑🔑🔑🔑", |e| {
            matches!(e, E::TooShort { .. })
        });
        check(&"a".repeat(MAX_PASSWORD_BYTES + 1), |e| {
            matches!(e, E::TooLong { max: 1024 })
        });
        check(&"é".repeat(600), |e| matches!(e, E::TooLong { .. }));
        check(&" ".repeat(12), |e| matches!(e, E::OnlyWhitespace));
        check("\u{3000}\u{2003}          ", |e| {
            matches!(e, E::OnlyWhitespace)
        });
        for control in ["\n", "\t", "\0", "\u{7f}", "\u{85}", "\r"] {
            check(&format!("abcdefghijkl{control}"), |e| {
                matches!(e, E::ControlCharacter)
            });
        }
    }

    #[test]
    fn verify_refuses_oversized_passwords() {
        let phc = hash_with(
            "x",
            Algorithm::Argon2id,
            Params::new(8, 1, 1, Some(32)).unwrap(),
            &[9; 16],
        );
        assert!(verify_password("x", &phc));
        assert!(!verify_password(&"x".repeat(MAX_PASSWORD_BYTES + 1), &phc));
    }
}
