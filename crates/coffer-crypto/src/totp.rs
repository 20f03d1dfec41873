//! Time-based one-time passwords (RFC 6238) for human logins.
//!
//! Codes use the parameters every authenticator app supports: HMAC-SHA-1, six
//! digits and a 30-second time step. The HOTP computation itself comes from the
//! `totp-rs` crate; this module owns the secret, the verification window and
//! the `otpauth://` enrollment URI.
//!
//! [`TotpSecret::verify_at`] accepts the code of the current step and of one step
//! either side, to allow for clock drift and typing time, and returns the step
//! that matched. Callers store that step and refuse any later code whose step is
//! not greater, so each code can be used only once (RFC 6238 section 5.2).

use std::fmt;

use subtle::{Choice, ConditionallySelectable, ConstantTimeEq, CtOption};
use totp_rs::{Algorithm, TOTP};
use zeroize::Zeroizing;

use crate::random;
use crate::secret::SecretString;

/// Number of digits in a code.
pub const DIGITS: usize = 6;
/// Length of a time step in seconds.
pub const STEP_SECONDS: u64 = 30;
/// Length of a freshly generated secret in bytes (160 bits, as RFC 4226
/// recommends).
pub const SECRET_LEN: usize = 20;
/// Shortest secret accepted by [`TotpSecret::from_bytes`] (128 bits, RFC 4226's
/// minimum).
pub const MIN_SECRET_LEN: usize = 16;
/// Longest secret accepted by [`TotpSecret::from_bytes`].
pub const MAX_SECRET_LEN: usize = 64;

/// Why a TOTP secret could not be built. Never includes secret bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TotpError {
    /// The secret is shorter than [`MIN_SECRET_LEN`] or longer than
    /// [`MAX_SECRET_LEN`] bytes.
    #[error("TOTP secret must be between {min} and {max} bytes long")]
    InvalidLength {
        /// The minimum length in bytes.
        min: usize,
        /// The maximum length in bytes.
        max: usize,
    },
}

/// The shared secret of one user's authenticator. Zeroized on drop; its `Debug`
/// output is redacted.
pub struct TotpSecret(Zeroizing<Vec<u8>>);

impl TotpSecret {
    /// Generates a fresh 20-byte secret from the operating system's CSPRNG.
    ///
    /// # Panics
    ///
    /// Panics if the operating system cannot supply randomness.
    #[must_use]
    pub fn generate() -> TotpSecret {
        let mut bytes = Zeroizing::new(vec![0u8; SECRET_LEN]);
        random::fill(&mut bytes);
        TotpSecret(bytes)
    }

    /// Takes a copy of a stored secret.
    ///
    /// # Errors
    ///
    /// Returns [`TotpError::InvalidLength`] unless `bytes` is 16 to 64 bytes long.
    pub fn from_bytes(bytes: &[u8]) -> Result<TotpSecret, TotpError> {
        if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&bytes.len()) {
            return Err(TotpError::InvalidLength {
                min: MIN_SECRET_LEN,
                max: MAX_SECRET_LEN,
            });
        }
        Ok(TotpSecret(Zeroizing::new(bytes.to_vec())))
    }

    /// Gives read access to the raw secret, for sealing it before storage. Keep
    /// the borrow short.
    #[must_use]
    pub fn expose_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The secret in RFC 4648 base32 without padding, the form authenticator apps
    /// accept for manual entry.
    #[must_use]
    pub fn to_base32(&self) -> SecretString {
        SecretString::new(self.totp().get_secret_base32())
    }

    /// The enrollment URI that authenticator apps read from a QR code:
    /// `otpauth://totp/ISSUER:ACCOUNT?secret=...&issuer=ISSUER&algorithm=SHA1&digits=6&period=30`,
    /// with `ISSUER` and `ACCOUNT` percent-encoded (every byte other than ASCII
    /// letters, digits and `-._~`, so a `:` in either becomes `%3A`). `issuer`
    /// should be non-empty; apps show it as the service name.
    ///
    /// Returned as a secret because it contains the secret.
    #[must_use]
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> SecretString {
        let issuer = percent_encode(issuer);
        let account = percent_encode(account);
        let secret = Zeroizing::new(self.totp().get_secret_base32());
        let parts = [
            "otpauth://totp/",
            &issuer,
            ":",
            &account,
            "?secret=",
            &secret,
            "&issuer=",
            &issuer,
            "&algorithm=SHA1&digits=6&period=30",
        ];
        // Exact capacity: the URI is never reallocated, so no stray copy of the
        // secret is left in freed memory.
        let mut uri = String::with_capacity(parts.iter().map(|p| p.len()).sum());
        for part in parts {
            uri.push_str(part);
        }
        SecretString::new(uri)
    }

    /// The code for unix time `t` seconds (for tests and enrollment displays).
    #[must_use]
    pub fn code_at(&self, t: u64) -> String {
        self.totp().generate(t)
    }

    /// Checks `code` against the time steps `t/30 - 1`, `t/30` and `t/30 + 1` and
    /// returns the step that matched (the latest, should several match).
    ///
    /// `code` must be exactly six ASCII digits; anything else gives `None` at
    /// once. The comparisons are constant-time and all three steps are always
    /// computed, so the time taken does not depend on which step, if any,
    /// matched. Callers must refuse a returned step that is not greater than the
    /// last step used for this secret: each code is valid only once.
    #[must_use]
    pub fn verify_at(&self, code: &str, t: u64) -> Option<u64> {
        if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let totp = self.totp();
        let current = t / STEP_SECONDS;
        let mut matched = Choice::from(0);
        let mut step_found = 0u64;
        // Steps outside u64 (before step 0, or past the end of time) are skipped;
        // whether they exist depends only on the public time `t`.
        let candidates = [
            current.checked_sub(1),
            Some(current),
            current.checked_add(1),
        ];
        for step in candidates.into_iter().flatten() {
            let Some(time) = step.checked_mul(STEP_SECONDS) else {
                continue;
            };
            let expected = Zeroizing::new(totp.generate(time));
            let hit = expected.as_bytes().ct_eq(code.as_bytes());
            step_found = u64::conditional_select(&step_found, &step, hit);
            matched |= hit;
        }
        CtOption::new(step_found, matched).into()
    }

    /// A `totp-rs` generator for this secret. Its copy of the secret is zeroized
    /// when it is dropped (the crate's `zeroize` feature).
    fn totp(&self) -> TOTP {
        // `new_unchecked` skips totp-rs's own length checks; `from_bytes` already
        // enforces ours. The skew field is unused: `verify_at` applies the window.
        TOTP::new_unchecked(
            Algorithm::SHA1,
            DIGITS,
            1,
            STEP_SECONDS,
            self.0.as_slice().to_vec(),
        )
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret([REDACTED])")
    }
}

/// Percent-encodes every byte of `s` except RFC 3986 unreserved characters
/// (ASCII letters, digits, `-`, `.`, `_`, `~`), with upper-case hex digits.
fn percent_encode(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SHA-1 secret of RFC 6238 Appendix B.
    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(b"12345678901234567890").unwrap()
    }

    #[test]
    fn rfc6238_sha1_vectors() {
        // The last six digits of the RFC's eight-digit codes.
        let cases = [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
            (20_000_000_000, "353130"),
        ];
        let secret = rfc_secret();
        for (t, want) in cases {
            assert_eq!(secret.code_at(t), want, "t={t}");
            assert_eq!(secret.verify_at(want, t), Some(t / 30), "t={t}");
        }
    }

    #[test]
    fn window_is_one_step_either_side() {
        let secret = rfc_secret();
        for t in [1_111_111_109u64, 1_234_567_890, 2_000_000_000] {
            let step = t / 30;
            for offset in -3i64..=3 {
                let other = step.checked_add_signed(offset).unwrap();
                let code = secret.code_at(other * 30);
                let want = (offset.abs() <= 1).then_some(other);
                assert_eq!(secret.verify_at(&code, t), want, "t={t} offset={offset}");
            }
            // Any second within the step behaves the same.
            let code = secret.code_at(t);
            assert_eq!(secret.verify_at(&code, step * 30), Some(step));
            assert_eq!(secret.verify_at(&code, step * 30 + 29), Some(step));
            assert_eq!(secret.verify_at(&code, (step + 2) * 30), None);
            assert_eq!(secret.verify_at(&code, (step - 2) * 30 + 29), None);
        }
    }

    #[test]
    fn edges_of_time_do_not_panic() {
        let secret = rfc_secret();
        let code = secret.code_at(0);
        assert_eq!(secret.verify_at(&code, 0), Some(0));
        assert_eq!(secret.verify_at(&code, 59), Some(0));
        assert_eq!(secret.verify_at(&code, 60), None);
        assert_eq!(secret.verify_at(&secret.code_at(30), 0), Some(1));
        let _ = secret.verify_at("000000", u64::MAX);
        let _ = secret.verify_at("000000", u64::MAX - 30);
    }

    #[test]
    fn malformed_codes_are_rejected() {
        let secret = rfc_secret();
        assert_eq!(secret.code_at(59), "287082");
        for bad in [
            "",
            "12345",
            "1234567",
            "12a456",
            " 12345",
            "12345 ",
            "287082 ",
            " 287082",
            "2870820",
            "28708",
            "+87082",
            "-87082",
            "２８７０８２",
            "287 82",
            "287\n82",
        ] {
            assert_eq!(secret.verify_at(bad, 59), None, "{bad:?}");
        }
        assert_eq!(secret.verify_at("287082", 59), Some(1));
    }

    #[test]
    fn secret_lengths() {
        for len in [0, 1, 15, 65, 100] {
            let err = TotpSecret::from_bytes(&vec![7; len]).unwrap_err();
            assert!(matches!(err, TotpError::InvalidLength { min: 16, max: 64 }));
        }
        for len in [16, 20, 32, 64] {
            let secret = TotpSecret::from_bytes(&vec![7; len]).unwrap();
            assert_eq!(secret.expose_bytes(), vec![7; len].as_slice());
            assert_eq!(secret.code_at(59).len(), 6);
        }
        let a = TotpSecret::generate();
        let b = TotpSecret::generate();
        assert_eq!(a.expose_bytes().len(), SECRET_LEN);
        assert_ne!(a.expose_bytes(), b.expose_bytes());
    }

    #[test]
    fn base32_is_rfc4648_without_padding() {
        assert_eq!(
            rfc_secret().to_base32().expose_secret(),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
        // 16 bytes would need "======" padding; apps expect none.
        let sixteen = TotpSecret::from_bytes(&[0xff; 16]).unwrap();
        assert_eq!(
            sixteen.to_base32().expose_secret(),
            "77777777777777777777777774"
        );
        let generated = TotpSecret::generate().to_base32();
        assert_eq!(generated.len(), 32);
        assert!(
            generated
                .expose_secret()
                .bytes()
                .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
        );
    }

    #[test]
    fn otpauth_uri_encodes_issuer_and_account() {
        let uri = rfc_secret().otpauth_uri("Acme Co", "alice smith@example.com:ops");
        assert_eq!(
            uri.expose_secret(),
            "otpauth://totp/Acme%20Co:alice%20smith%40example.com%3Aops\
             ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Acme%20Co\
             &algorithm=SHA1&digits=6&period=30"
        );
        let uri = rfc_secret().otpauth_uri("Coffer", "bob-1_x.y~z");
        assert_eq!(
            uri.expose_secret(),
            "otpauth://totp/Coffer:bob-1_x.y~z?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=Coffer&algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn percent_encoding() {
        let cases = [
            ("", ""),
            ("AZaz09-._~", "AZaz09-._~"),
            (" ", "%20"),
            (
                "a:b@c/d?e&f=g#h%i+j",
                "a%3Ab%40c%2Fd%3Fe%26f%3Dg%23h%25i%2Bj",
            ),
            ("é", "%C3%A9"),
            ("\n\u{7f}", "%0A%7F"),
        ];
        for (input, want) in cases {
            assert_eq!(percent_encode(input), want, "{input:?}");
        }
    }

    #[test]
    fn debug_is_redacted() {
        let secret = rfc_secret();
        let shown = format!("{secret:?} {secret:#?}");
        assert_eq!(shown, "TotpSecret([REDACTED]) TotpSecret([REDACTED])");
        assert!(!format!("{:?}", secret.to_base32()).contains("GEZDG"));
        assert!(!format!("{:?}", secret.otpauth_uri("a", "b")).contains("GEZDG"));
    }
}
