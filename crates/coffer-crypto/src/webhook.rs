//! Signatures on webhook deliveries, so a receiver can tell an alert that
//! coffer sent from one anybody could POST, and a fresh one from a replay.
//!
//! The header value is `t=SECONDS,v1=HEX`: `SECONDS` is the Unix time of
//! the attempt, and `HEX` the HMAC-SHA256, under a key shared with the
//! receiver, of `SECONDS`, a `.`, and the body's exact bytes. A receiver
//! recomputes it, compares in constant time, and refuses a time too far
//! from its own clock. Several `v1=` entries are accepted while a key is
//! being replaced (any one that matches will do).

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::SecretBytes;

/// The shortest key accepted, in bytes: that of the hash.
pub const MIN_KEY_LEN: usize = 32;

/// How far from the receiver's clock a signature's time may be, by default.
pub const DEFAULT_TOLERANCE_SECS: u64 = 300;

/// A webhook signing key, shared with the receivers.
pub struct WebhookKey(SecretBytes);

/// Why a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The header is not `t=SECONDS,v1=HEX[,v1=HEX...]`.
    #[error("the signature is not of the form t=SECONDS,v1=HEX")]
    Malformed,
    /// No `v1` matches this key and body.
    #[error("the signature does not match the body under this key")]
    Mismatch,
    /// Signed longer ago than the tolerance allows (a replay, or a clock off).
    #[error("the signature is {age} s old, more than the {tolerance} s allowed")]
    TooOld {
        /// Seconds since it was signed.
        age: u64,
        /// Seconds allowed.
        tolerance: u64,
    },
    /// Signed later than the receiver's clock plus the tolerance.
    #[error(
        "the signature is dated {ahead} s ahead of this clock, more than the {tolerance} s allowed"
    )]
    InFuture {
        /// Seconds ahead.
        ahead: u64,
        /// Seconds allowed.
        tolerance: u64,
    },
}

/// A key shorter than [`MIN_KEY_LEN`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a webhook signing key needs at least {MIN_KEY_LEN} bytes; this one has {0}")]
pub struct ShortKey(pub usize);

impl WebhookKey {
    /// A key from its bytes (say, the contents of a file made with
    /// `openssl rand -hex 32`).
    pub fn new(bytes: Vec<u8>) -> Result<Self, ShortKey> {
        if bytes.len() < MIN_KEY_LEN {
            return Err(ShortKey(bytes.len()));
        }
        Ok(Self(SecretBytes::new(bytes)))
    }

    fn mac(&self, time: u64, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(self.0.expose_secret()) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts keys of any length"),
        };
        mac.update(time.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// The header value for `body` sent at Unix time `time`.
    #[must_use]
    pub fn sign(&self, time: u64, body: &[u8]) -> String {
        let tag = self.mac(time, body).finalize().into_bytes();
        format!("t={time},v1={}", crate::generate::hex(&tag))
    }

    /// Checks `header` against `body` at Unix time `now`; on success, the
    /// time it was signed.
    pub fn verify(
        &self,
        header: &str,
        body: &[u8],
        now: u64,
        tolerance: u64,
    ) -> Result<u64, SignatureError> {
        let mut time = None;
        let mut tags = Vec::new();
        for part in header.trim().split(',') {
            match part.trim().split_once('=') {
                Some(("t", t)) if time.is_none() => {
                    time = Some(
                        t.parse::<u64>()
                            .ok()
                            .filter(|_| t.bytes().all(|b| b.is_ascii_digit()))
                            .ok_or(SignatureError::Malformed)?,
                    );
                }
                Some(("v1", hex)) => tags.push(unhex(hex).ok_or(SignatureError::Malformed)?),
                // Other schemes are skipped, so a later one can be added.
                Some((k, _)) if k != "t" && !k.is_empty() => {}
                _ => return Err(SignatureError::Malformed),
            }
        }
        let (Some(time), false) = (time, tags.is_empty()) else {
            return Err(SignatureError::Malformed);
        };
        // Every tag is checked, in constant time each, whichever matches.
        let matched = tags.iter().fold(false, |m, tag| {
            self.mac(time, body).verify_slice(tag).is_ok() | m
        });
        if !matched {
            return Err(SignatureError::Mismatch);
        }
        if now > time && now - time > tolerance {
            return Err(SignatureError::TooOld {
                age: now - time,
                tolerance,
            });
        }
        if time > now && time - now > tolerance {
            return Err(SignatureError::InFuture {
                ahead: time - now,
                tolerance,
            });
        }
        Ok(time)
    }
}

impl std::fmt::Debug for WebhookKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookKey([REDACTED])")
    }
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    let s = s.as_bytes();
    if s.len() != 64 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 32];
    for (i, pair) in s.chunks(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> WebhookKey {
        WebhookKey::new(vec![byte; 32]).unwrap()
    }

    #[test]
    fn a_signature_verifies_and_nothing_else_does() {
        let k = key(7);
        let body = br#"{"type":"alert"}"#;
        let sig = k.sign(1_700_000_000, body);
        assert!(sig.starts_with("t=1700000000,v1="), "{sig}");
        assert_eq!(sig.len(), "t=1700000000,v1=".len() + 64);
        assert_eq!(k.verify(&sig, body, 1_700_000_010, 300), Ok(1_700_000_000));
        // Another body, key or time.
        assert_eq!(
            k.verify(&sig, br#"{"type":"alerT"}"#, 1_700_000_010, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            key(8).verify(&sig, body, 1_700_000_010, 300),
            Err(SignatureError::Mismatch)
        );
        let moved = sig.replace("t=1700000000", "t=1700000100");
        assert_eq!(
            k.verify(&moved, body, 1_700_000_010, 300),
            Err(SignatureError::Mismatch)
        );
        // Every flipped hex digit of the tag fails.
        for i in "t=1700000000,v1=".len()..sig.len() {
            let mut b = sig.clone().into_bytes();
            b[i] = if b[i] == b'0' { b'1' } else { b'0' };
            let bad = String::from_utf8(b).unwrap();
            assert_eq!(
                k.verify(&bad, body, 1_700_000_010, 300),
                Err(SignatureError::Mismatch),
                "{bad}"
            );
        }
    }

    #[test]
    fn old_and_future_signatures_are_refused() {
        let k = key(1);
        let sig = k.sign(1_000, b"x");
        assert_eq!(k.verify(&sig, b"x", 1_300, 300), Ok(1_000));
        assert_eq!(
            k.verify(&sig, b"x", 1_301, 300),
            Err(SignatureError::TooOld {
                age: 301,
                tolerance: 300
            })
        );
        assert_eq!(k.verify(&sig, b"x", 700, 300), Ok(1_000));
        assert_eq!(
            k.verify(&sig, b"x", 699, 300),
            Err(SignatureError::InFuture {
                ahead: 301,
                tolerance: 300
            })
        );
    }

    #[test]
    fn any_of_several_tags_may_match_while_keys_change() {
        let (old, new) = (key(1), key(2));
        let a = old.sign(50, b"body");
        let b = new.sign(50, b"body");
        let both = format!("{a},{}", b.split_once(',').unwrap().1);
        assert_eq!(new.verify(&both, b"body", 50, 0), Ok(50));
        assert_eq!(old.verify(&both, b"body", 50, 0), Ok(50));
        assert_eq!(
            key(3).verify(&both, b"body", 50, 0),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn malformed_headers_are_named_as_such() {
        let k = key(1);
        let good = k.sign(5, b"b");
        let tag = good.split_once("v1=").unwrap().1;
        for bad in [
            "",
            "t=5",
            &format!("v1={tag}"),
            &format!("t=x5,v1={tag}"),
            &format!("t=+5,v1={tag}"),
            &format!("t=5,v1={}", &tag[1..]),
            &format!("t=5,v1={tag}zz"),
            &format!("t=5,t=6,v1={tag}"),
            &format!("t=5;v1={tag}"),
            &format!("t=5,,v1={tag}"),
        ] {
            assert_eq!(
                k.verify(bad, b"b", 5, 300),
                Err(SignatureError::Malformed),
                "{bad:?}"
            );
        }
        // An unknown scheme beside v1 is skipped.
        assert_eq!(k.verify(&format!("{good},v2=abc"), b"b", 5, 300), Ok(5));
    }

    #[test]
    fn short_keys_are_refused() {
        assert_eq!(WebhookKey::new(vec![0; 31]).unwrap_err(), ShortKey(31));
        assert!(format!("{:?}", key(9)).contains("REDACTED"));
    }
}
