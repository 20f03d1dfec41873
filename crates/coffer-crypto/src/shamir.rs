//! Shamir secret sharing over GF(2^8), used to split the unseal key among operators.
//!
//! Each byte of the secret is the constant term of its own random polynomial of
//! degree `threshold - 1` over GF(2^8); share `x` holds the values of all those
//! polynomials at `x`. Any `threshold` shares determine the polynomials and hence
//! the secret by Lagrange interpolation at zero, while fewer shares are consistent
//! with every possible secret and reveal nothing about it.
//!
//! The field is GF(2^8) with the AES reduction polynomial x^8 + x^4 + x^3 + x + 1
//! (0x11b). Arithmetic is written to run in constant time: multiplication is
//! shift-and-add driven by bit masks rather than branches, and there are no
//! log/exp tables, because table lookups indexed by secret bytes leak those bytes
//! through the cache. Inversion is a^254 computed by a fixed sequence of squarings
//! and multiplications.
//!
//! Shares carry no integrity protection. Combining the wrong shares, or too few,
//! silently yields a wrong secret; that is inherent to Shamir's scheme. Coffer
//! detects it because the reconstructed unseal key then fails to open the wrapped
//! root key.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use crate::aead::CryptoError;
use crate::random;
use crate::secret::{SecretBytes, SecretString};

/// Multiplies two elements of GF(2^8) modulo 0x11b in constant time.
///
/// Each of the eight rounds conditionally adds `a` to the product and
/// conditionally reduces `a` after doubling it; both conditions are turned into
/// all-ones/all-zeros masks so the instruction sequence never depends on the data.
fn gf_mul(a: u8, b: u8) -> u8 {
    let mut a = a;
    let mut b = b;
    let mut product = 0u8;
    for _ in 0..8 {
        // 0xff when the low bit of b is set, 0x00 otherwise.
        let add_mask = (b & 1).wrapping_neg();
        product ^= a & add_mask;
        // 0xff when doubling a overflows x^7, so the x^8 term must be reduced.
        let reduce_mask = (a >> 7).wrapping_neg();
        a = (a << 1) ^ (0x1b & reduce_mask);
        b >>= 1;
    }
    product
}

/// Inverts an element of GF(2^8) as a^254 (since a^255 = 1 for a != 0).
///
/// 254 = 2 + 4 + 8 + 16 + 32 + 64 + 128, so seven squarings each followed by one
/// multiplication compute it with a sequence that does not depend on `a`. Zero maps
/// to zero, which callers never rely on.
fn gf_inv(a: u8) -> u8 {
    let mut power = a; // a^(2^k)
    let mut result = 1u8;
    for _ in 0..7 {
        power = gf_mul(power, power);
        result = gf_mul(result, power);
    }
    result
}

/// One share of a split secret: the point `(x, y)` of every byte's polynomial.
///
/// `x` is in `1..=255` (never 0, which would be the secret itself). `y` has the
/// secret's length and is zeroized on drop.
#[derive(Clone)]
pub struct Share {
    x: u8,
    y: Zeroizing<Vec<u8>>,
}

impl Share {
    /// The share's x coordinate, which is public and identifies the share.
    #[must_use]
    pub fn x(&self) -> u8 {
        self.x
    }

    /// Encodes as standard base64 (with padding) of `[x] ++ y`, for handing to an
    /// operator.
    #[must_use]
    pub fn encode(&self) -> SecretString {
        // Exact capacity so that building the buffer never reallocates and leaves a
        // stray copy of the share behind.
        let mut raw = Zeroizing::new(Vec::with_capacity(1 + self.y.len()));
        raw.push(self.x);
        raw.extend_from_slice(&self.y);
        SecretString::new(STANDARD.encode(&*raw))
    }

    /// Parses a share produced by [`Share::encode`], ignoring surrounding
    /// whitespace (operators paste shares from files and terminals).
    ///
    /// # Errors
    ///
    /// [`CryptoError::Malformed`] for invalid or non-canonical base64, a zero x
    /// coordinate, or an empty y.
    pub fn decode(s: &str) -> Result<Share, CryptoError> {
        let s = s.trim();
        // Reserve the decoder's worst case so it never reallocates a buffer that
        // holds share bytes.
        let mut raw = Zeroizing::new(Vec::with_capacity(base64::decoded_len_estimate(s.len())));
        STANDARD
            .decode_vec(s, &mut raw)
            .map_err(|_| CryptoError::Malformed)?;
        match raw.split_first() {
            Some((&x, y)) if x != 0 && !y.is_empty() => Ok(Share {
                x,
                y: Zeroizing::new(y.to_vec()),
            }),
            _ => Err(CryptoError::Malformed),
        }
    }
}

impl fmt::Debug for Share {
    /// Shows the public x coordinate only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Share")
            .field("x", &self.x)
            .field("y", &format_args!("[REDACTED]"))
            .finish()
    }
}

/// Splits `secret` into `shares` shares, any `threshold` of which reconstruct it.
///
/// Shares get x coordinates `1..=shares`. With `threshold == 1` every share
/// contains the secret itself, which is allowed for single-operator setups.
///
/// # Errors
///
/// [`CryptoError::ShamirParams`] unless `secret` is non-empty and
/// `1 <= threshold <= shares`.
///
/// # Panics
///
/// Panics if the operating system cannot supply randomness.
pub fn split(secret: &[u8], shares: u8, threshold: u8) -> Result<Vec<Share>, CryptoError> {
    if secret.is_empty() {
        return Err(CryptoError::ShamirParams("secret is empty"));
    }
    if threshold == 0 {
        return Err(CryptoError::ShamirParams("threshold must be at least 1"));
    }
    if shares < threshold {
        return Err(CryptoError::ShamirParams(
            "threshold must not exceed the number of shares",
        ));
    }
    let len = secret.len();
    let degree = usize::from(threshold) - 1;

    // coefficients[(k - 1) * len + i] is the coefficient of x^k in byte i's
    // polynomial. They are uniformly random, including the top one: rejecting a
    // zero top coefficient would mean branching on secret-dependent randomness,
    // and a zero there only lowers the degree of that one byte's polynomial, which
    // is still information-theoretically hiding with fewer than `threshold` shares.
    let mut coefficients = Zeroizing::new(vec![0u8; degree * len]);
    random::fill(&mut coefficients);

    let mut out = Vec::with_capacity(usize::from(shares));
    for x in 1..=shares {
        let mut y = Zeroizing::new(vec![0u8; len]);
        for (i, (y_byte, &secret_byte)) in y.iter_mut().zip(secret).enumerate() {
            // Horner's rule from the highest coefficient down to the secret.
            let mut acc = 0u8;
            for k in (0..degree).rev() {
                acc = gf_mul(acc, x) ^ coefficients[k * len + i];
            }
            *y_byte = gf_mul(acc, x) ^ secret_byte;
        }
        out.push(Share { x, y });
    }
    Ok(out)
}

/// Reconstructs a secret from shares by Lagrange interpolation at x = 0.
///
/// Passing more shares than the threshold is fine. Passing fewer, or shares from
/// different splits, returns a wrong secret without an error (see module docs).
///
/// # Errors
///
/// [`CryptoError::Shares`] if `shares` is empty, two shares have the same x, or
/// the shares have different lengths.
pub fn combine(shares: &[Share]) -> Result<SecretBytes, CryptoError> {
    let first = shares
        .first()
        .ok_or(CryptoError::Shares("no shares given"))?;
    let len = first.y.len();
    let mut seen = [false; 256];
    for share in shares {
        if share.y.len() != len {
            return Err(CryptoError::Shares("shares have different lengths"));
        }
        let slot = &mut seen[usize::from(share.x)];
        if *slot {
            return Err(CryptoError::Shares("duplicate share"));
        }
        *slot = true;
    }

    let mut secret = Zeroizing::new(vec![0u8; len]);
    for (i, share_i) in shares.iter().enumerate() {
        // Lagrange basis polynomial for share i evaluated at 0:
        //   prod_{j != i} x_j / (x_j - x_i),
        // where subtraction in GF(2^8) is XOR. The x coordinates are distinct and
        // non-zero, so the denominator is never zero.
        let mut numerator = 1u8;
        let mut denominator = 1u8;
        for (j, share_j) in shares.iter().enumerate() {
            if i != j {
                numerator = gf_mul(numerator, share_j.x);
                denominator = gf_mul(denominator, share_j.x ^ share_i.x);
            }
        }
        let basis = gf_mul(numerator, gf_inv(denominator));
        for (out, &y) in secret.iter_mut().zip(share_i.y.iter()) {
            *out ^= gf_mul(y, basis);
        }
    }
    Ok(SecretBytes::new(std::mem::take(&mut *secret)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Textbook multiplication with data-dependent branches, as a reference.
    fn slow_mul(mut a: u8, mut b: u8) -> u8 {
        let mut p = 0u8;
        while b != 0 {
            if b & 1 == 1 {
                p ^= a;
            }
            let carry = a & 0x80 != 0;
            a <<= 1;
            if carry {
                a ^= 0x1b;
            }
            b >>= 1;
        }
        p
    }

    /// All subsets of `0..n` as index lists, smallest first.
    fn subsets(n: usize) -> Vec<Vec<usize>> {
        (0u32..(1 << n))
            .map(|mask| (0..n).filter(|i| mask & (1 << i) != 0).collect())
            .collect()
    }

    fn pick(shares: &[Share], indices: &[usize]) -> Vec<Share> {
        indices.iter().map(|&i| shares[i].clone()).collect()
    }

    #[test]
    fn gf_mul_matches_reference_for_all_pairs() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                assert_eq!(gf_mul(a, b), slow_mul(a, b), "{a:#x} * {b:#x}");
            }
        }
    }

    #[test]
    fn gf_known_products() {
        // FIPS-197 section 4.2 examples and the classic inverse pair 0x53/0xca.
        for (a, b, product) in [(0x57, 0x83, 0xc1), (0x57, 0x13, 0xfe), (0x53, 0xca, 0x01)] {
            assert_eq!(gf_mul(a, b), product);
        }
        assert_eq!(gf_inv(0x53), 0xca);
        assert_eq!(gf_inv(1), 1);
        assert_eq!(gf_inv(0), 0);
    }

    #[test]
    fn gf_inverse_for_all_nonzero() {
        for a in 1..=255u8 {
            assert_eq!(gf_mul(a, gf_inv(a)), 1, "{a:#x}");
        }
    }

    #[test]
    fn every_subset_reconstructs_iff_at_least_threshold() {
        for n in 1..=5u8 {
            for t in 1..=n {
                let secret: [u8; 32] = random::bytes();
                let shares = split(&secret, n, t).unwrap();
                let xs: Vec<u8> = shares.iter().map(Share::x).collect();
                assert_eq!(xs, (1..=n).collect::<Vec<_>>());
                for indices in subsets(usize::from(n)).into_iter().skip(1) {
                    let mut chosen = pick(&shares, &indices);
                    let recovered = combine(&chosen).unwrap();
                    if indices.len() >= usize::from(t) {
                        assert_eq!(recovered.expose_secret(), secret, "n={n} t={t} {indices:?}");
                        // Order of shares must not matter.
                        chosen.reverse();
                        assert_eq!(combine(&chosen).unwrap().expose_secret(), secret);
                    } else {
                        // Fewer than t shares give a (uniformly) wrong answer; equal
                        // by chance with probability 2^-256.
                        assert_ne!(recovered.expose_secret(), secret, "n={n} t={t} {indices:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn threshold_one_shares_carry_the_secret() {
        let secret = b"single operator";
        for share in split(secret, 3, 1).unwrap() {
            assert_eq!(&share.y[..], secret);
            assert_eq!(combine(&[share]).unwrap().expose_secret(), secret);
        }
    }

    #[test]
    fn maximum_share_count() {
        let secret = b"k";
        let shares = split(secret, 255, 255).unwrap();
        assert_eq!(shares.last().unwrap().x(), 255);
        assert_eq!(combine(&shares).unwrap().expose_secret(), secret);
    }

    #[test]
    fn invalid_parameters_rejected() {
        for (secret, n, t) in [
            (&b""[..], 3u8, 2u8),
            (b"s", 3, 0),
            (b"s", 0, 0),
            (b"s", 0, 1),
            (b"s", 2, 3),
            (b"s", 1, 255),
        ] {
            assert!(
                matches!(split(secret, n, t), Err(CryptoError::ShamirParams(_))),
                "n={n} t={t} len={}",
                secret.len()
            );
        }
    }

    #[test]
    fn combine_rejects_bad_share_sets() {
        let a = split(b"secret-a", 3, 2).unwrap();
        let b = split(b"longer secret-b", 3, 2).unwrap();
        let cases: Vec<(&str, Vec<Share>)> = vec![
            ("empty", Vec::new()),
            ("duplicate", vec![a[0].clone(), a[0].clone()]),
            (
                "duplicate x across splits",
                vec![a[1].clone(), a[2].clone(), a[1].clone()],
            ),
            ("length mismatch", vec![a[0].clone(), b[1].clone()]),
        ];
        for (name, shares) in cases {
            assert!(
                matches!(combine(&shares), Err(CryptoError::Shares(_))),
                "{name}"
            );
        }
    }

    #[test]
    fn shares_from_different_splits_give_wrong_secret() {
        // Documented limitation: no error, just a wrong answer.
        let a = split(&[1u8; 32], 2, 2).unwrap();
        let b = split(&[1u8; 32], 2, 2).unwrap();
        let mixed = combine(&[a[0].clone(), b[1].clone()]).unwrap();
        assert_ne!(mixed.expose_secret(), &[1u8; 32]);
    }

    #[test]
    fn encode_known_value_and_round_trip() {
        let share = Share {
            x: 1,
            y: Zeroizing::new(vec![2, 3]),
        };
        assert_eq!(share.encode().expose_secret(), "AQID");
        for share in split(&random::bytes::<32>(), 5, 3).unwrap() {
            let encoded = share.encode();
            for text in [
                encoded.expose_secret().to_owned(),
                format!("  {}\n", encoded.expose_secret()),
                format!("\t{}\r\n", encoded.expose_secret()),
            ] {
                let decoded = Share::decode(&text).unwrap();
                assert_eq!(decoded.x(), share.x());
                assert_eq!(decoded.y, share.y);
            }
        }
    }

    #[test]
    fn decode_rejects_garbage() {
        for bad in [
            "",
            "   ",
            "!!!!",
            "AAID",      // x = 0
            "AA==",      // x = 0 and no y
            "AQ==",      // x = 1 but empty y
            "AQI",       // missing padding
            "AQI=X",     // data after padding
            "AQ I=",     // inner whitespace
            "AQJ=",      // non-zero trailing bits (non-canonical)
            "-_-_",      // URL-safe alphabet
            "AQID\0",    // embedded NUL
            "QUJDRA===", // excess padding
        ] {
            assert_eq!(
                Share::decode(bad).unwrap_err(),
                CryptoError::Malformed,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn debug_hides_y() {
        let share = Share {
            x: 7,
            y: Zeroizing::new(vec![0xAB; 4]),
        };
        assert_eq!(format!("{share:?}"), "Share { x: 7, y: [REDACTED] }");
    }

    proptest! {
        #[test]
        fn prop_gf_commutative(a in any::<u8>(), b in any::<u8>()) {
            prop_assert_eq!(gf_mul(a, b), gf_mul(b, a));
        }

        #[test]
        fn prop_gf_associative(a in any::<u8>(), b in any::<u8>(), c in any::<u8>()) {
            prop_assert_eq!(gf_mul(gf_mul(a, b), c), gf_mul(a, gf_mul(b, c)));
        }

        #[test]
        fn prop_gf_distributive(a in any::<u8>(), b in any::<u8>(), c in any::<u8>()) {
            prop_assert_eq!(gf_mul(a, b ^ c), gf_mul(a, b) ^ gf_mul(a, c));
        }

        #[test]
        fn prop_gf_identity_and_inverse(a in 1u8..=255) {
            prop_assert_eq!(gf_mul(a, 1), a);
            prop_assert_eq!(gf_mul(a, 0), 0);
            prop_assert_eq!(gf_mul(a, gf_inv(a)), 1);
            prop_assert_eq!(gf_inv(gf_inv(a)), a);
        }

        #[test]
        fn prop_split_combine(secret in proptest::collection::vec(any::<u8>(), 1..64),
                              (n, t) in (1u8..=10).prop_flat_map(|n| (Just(n), 1..=n))) {
            let shares = split(&secret, n, t).unwrap();
            let t = usize::from(t);
            prop_assert_eq!(combine(&shares[..t]).unwrap().expose_secret().to_vec(), secret.clone());
            prop_assert_eq!(combine(&shares[shares.len() - t..]).unwrap().expose_secret().to_vec(), secret.clone());
            let decoded: Vec<Share> = shares.iter()
                .map(|s| Share::decode(s.encode().expose_secret()).unwrap())
                .collect();
            prop_assert_eq!(combine(&decoded).unwrap().expose_secret().to_vec(), secret);
        }

        #[test]
        fn prop_decode_never_panics(s in ".{0,80}") {
            if let Ok(share) = Share::decode(&s) {
                prop_assert!(share.x() != 0);
                prop_assert!(!share.y.is_empty());
            }
        }
    }
}
