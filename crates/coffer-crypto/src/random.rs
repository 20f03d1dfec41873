//! Randomness from the operating system's CSPRNG.
//!
//! Every random value in Coffer (keys, nonces, Shamir coefficients, tokens) comes
//! from here, so there is exactly one place to audit. We use the OS generator via
//! `getrandom` rather than a user-space PRNG because a user-space generator can be
//! duplicated by `fork` or snapshotting, and it would be one more thing to seed
//! correctly.

use rand_core::{OsRng, RngCore};

/// Fills `buf` with bytes from the operating system's CSPRNG.
///
/// # Panics
///
/// Panics if the operating system cannot supply randomness. Continuing without
/// randomness would silently produce predictable keys and nonces, so failing loudly
/// is the only safe option.
pub fn fill(buf: &mut [u8]) {
    if let Err(err) = OsRng.try_fill_bytes(buf) {
        panic!("operating system random number generator failed: {err}");
    }
}

/// Returns `N` bytes from the operating system's CSPRNG.
///
/// The array is returned by value, so it is copied on the stack; use [`fill`] on
/// a zeroizing buffer for secret material that must not linger in memory.
///
/// # Panics
///
/// Panics if the operating system cannot supply randomness (see [`fill`]).
#[must_use]
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    fill(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_produces_different_outputs() {
        // Two 32-byte draws colliding has probability 2^-256, so equality means
        // the generator is broken (for example, returning zeros).
        let a: [u8; 32] = bytes();
        let b: [u8; 32] = bytes();
        assert_ne!(a, b);
        assert_ne!(a, [0u8; 32]);
    }

    #[test]
    fn fill_covers_the_whole_buffer() {
        // A 4 KiB buffer that still contains a run of 64 zero bytes after filling
        // would be astronomically unlikely; it would indicate a partial fill.
        let mut buf = vec![0u8; 4096];
        fill(&mut buf);
        assert!(!buf.windows(64).any(|w| w.iter().all(|&b| b == 0)));
    }

    #[test]
    fn zero_length_is_fine() {
        let empty: [u8; 0] = bytes();
        assert!(empty.is_empty());
        fill(&mut []);
    }
}
