//! Generated secret values: random bytes from the operating system's CSPRNG
//! written in one of five alphabets.
//!
//! A [`Spec`] says what to generate and is written `FORMAT[:N]`:
//!
//! | format    | `N` is                     | default | output |
//! |-----------|----------------------------|---------|--------|
//! | `base64`  | bytes of randomness        | 32      | standard alphabet, padded |
//! | `hex`     | bytes of randomness        | 32      | lowercase |
//! | `urlsafe` | bytes of randomness        | 32      | URL-safe base64, unpadded |
//! | `alnum`   | bytes of randomness        | 32      | `[A-Za-z0-9]`, as many characters as carry that many bits |
//! | `words`   | words                      | 10      | EFF large wordlist, joined by `-` |
//!
//! Every character and word is drawn uniformly (rejection sampling, never a
//! biased modulo), so [`Spec::bits`] is the exact entropy of the output: a
//! strength policy can judge a generated value by its spec, without guessing.

use base64::Engine as _;
use zeroize::Zeroizing;

use crate::random;
use crate::secret::SecretString;

/// Fewest bytes of randomness a spec may ask for.
pub const MIN_BYTES: u32 = 8;
/// Most bytes of randomness a spec may ask for.
pub const MAX_BYTES: u32 = 1024;
/// Fewest words of a passphrase.
pub const MIN_WORDS: u32 = 4;
/// Most words of a passphrase.
pub const MAX_WORDS: u32 = 64;
/// Bytes of randomness when a spec names none.
pub const DEFAULT_BYTES: u32 = 32;
/// Words of a passphrase when a spec names none (129 bits).
pub const DEFAULT_WORDS: u32 = 10;

const ALNUM: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// The alphabet a value is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Standard base64 with padding.
    Base64,
    /// Lowercase hexadecimal.
    Hex,
    /// URL-safe base64 without padding.
    UrlSafe,
    /// Letters and digits.
    Alnum,
    /// A passphrase of words from the EFF large wordlist.
    Words,
}

impl Format {
    /// Every format, in the order they are documented.
    pub const ALL: [Format; 5] = [
        Format::Base64,
        Format::Hex,
        Format::UrlSafe,
        Format::Alnum,
        Format::Words,
    ];

    /// The format's name in a spec.
    pub fn name(self) -> &'static str {
        match self {
            Format::Base64 => "base64",
            Format::Hex => "hex",
            Format::UrlSafe => "urlsafe",
            Format::Alnum => "alnum",
            Format::Words => "words",
        }
    }

    /// Parses a format name.
    pub fn parse(s: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == s)
    }
}

/// Why a spec was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SpecError(String);

/// What to generate: a format and a size (bytes of randomness, or words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Spec {
    format: Format,
    size: u32,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            format: Format::Base64,
            size: DEFAULT_BYTES,
        }
    }
}

impl Spec {
    /// A spec with the format's default size.
    pub fn of(format: Format) -> Spec {
        Spec {
            format,
            size: if format == Format::Words {
                DEFAULT_WORDS
            } else {
                DEFAULT_BYTES
            },
        }
    }

    /// A spec of `size` bytes of randomness (words, for [`Format::Words`]),
    /// checked against the limits.
    pub fn new(format: Format, size: u32) -> Result<Spec, SpecError> {
        let (min, max, unit) = if format == Format::Words {
            (MIN_WORDS, MAX_WORDS, "words")
        } else {
            (MIN_BYTES, MAX_BYTES, "bytes")
        };
        if !(min..=max).contains(&size) {
            return Err(SpecError(format!(
                "{} takes {min} to {max} {unit}, not {size}",
                format.name()
            )));
        }
        Ok(Spec { format, size })
    }

    /// Parses `FORMAT[:N]`, such as `base64`, `hex:16` or `words:8`.
    pub fn parse(s: &str) -> Result<Spec, SpecError> {
        let (name, size) = match s.split_once(':') {
            Some((name, size)) => (name, Some(size)),
            None => (s, None),
        };
        let format = Format::parse(name).ok_or_else(|| {
            SpecError(format!(
                "unknown generator format {:?}; use one of base64, hex, urlsafe, alnum, words",
                shorten(name)
            ))
        })?;
        match size {
            None => Ok(Spec::of(format)),
            Some(n) => {
                let n: u32 = n.parse().map_err(|_| {
                    SpecError(format!(
                        "the size after {}: must be a whole number",
                        format.name()
                    ))
                })?;
                Spec::new(format, n)
            }
        }
    }

    /// The format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Bytes of randomness, or words for a passphrase.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The entropy of a value generated from this spec, in bits.
    pub fn bits(&self) -> f64 {
        match self.format {
            Format::Words => f64::from(self.size) * (WORDLIST_LEN as f64).log2(),
            Format::Alnum => f64::from(self.alnum_len()) * 62f64.log2(),
            _ => f64::from(self.size) * 8.0,
        }
    }

    /// Characters of an `alnum` value: enough that it carries at least
    /// `size` bytes of randomness.
    fn alnum_len(&self) -> u32 {
        (f64::from(self.size) * 8.0 / 62f64.log2()).ceil() as u32
    }

    /// Draws a value.
    pub fn generate(&self) -> SecretString {
        match self.format {
            Format::Base64 | Format::Hex | Format::UrlSafe => {
                let mut raw = Zeroizing::new(vec![0u8; self.size as usize]);
                random::fill(&mut raw);
                SecretString::new(match self.format {
                    Format::Base64 => base64::engine::general_purpose::STANDARD.encode(&*raw),
                    Format::UrlSafe => {
                        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&*raw)
                    }
                    _ => hex(&raw),
                })
            }
            Format::Alnum => {
                let mut out = String::with_capacity(self.alnum_len() as usize);
                for _ in 0..self.alnum_len() {
                    out.push(ALNUM[uniform(ALNUM.len() as u32) as usize] as char);
                }
                SecretString::new(out)
            }
            Format::Words => {
                let mut out = String::new();
                for i in 0..self.size {
                    if i > 0 {
                        out.push('-');
                    }
                    out.push_str(wordlist()[uniform(WORDLIST_LEN) as usize]);
                }
                SecretString::new(out)
            }
        }
    }
}

impl std::fmt::Display for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.format.name(), self.size)
    }
}

const WORDLIST_LEN: u32 = 7776;

/// The EFF large wordlist (7776 words, each chosen to be easy to type and
/// remember).
fn wordlist() -> &'static [&'static str] {
    let list = diceware_wordlists::Wordlist::EffLong.get_list();
    debug_assert_eq!(list.len(), WORDLIST_LEN as usize);
    list
}

/// A uniform draw from `0..n` (`n` at most 65536), by rejection sampling.
fn uniform(n: u32) -> u32 {
    debug_assert!(n > 0 && n <= 1 << 16);
    // The largest multiple of n that fits in 16 bits: draws at or above it
    // are thrown away, so every residue is equally likely.
    let limit = (1u32 << 16) - (1u32 << 16) % n;
    loop {
        let b = random::bytes::<2>();
        let x = u32::from(u16::from_le_bytes(b));
        if x < limit {
            return x % n;
        }
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// At most 32 characters of user input, for an error message.
fn shorten(s: &str) -> String {
    s.chars().take(32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn each_format_has_its_length_and_alphabet() {
        type Alphabet = fn(char) -> bool;
        let cases: &[(&str, usize, Alphabet)] = &[
            ("base64", 44, |c| {
                c.is_ascii_alphanumeric() || "+/=".contains(c)
            }),
            ("base64:16", 24, |c| {
                c.is_ascii_alphanumeric() || "+/=".contains(c)
            }),
            ("hex", 64, |c| {
                c.is_ascii_digit() || ('a'..='f').contains(&c)
            }),
            ("hex:8", 16, |c| {
                c.is_ascii_digit() || ('a'..='f').contains(&c)
            }),
            ("urlsafe", 43, |c| {
                c.is_ascii_alphanumeric() || "-_".contains(c)
            }),
            ("alnum", 43, |c| c.is_ascii_alphanumeric()),
            ("alnum:16", 22, |c| c.is_ascii_alphanumeric()),
        ];
        for (spec, len, ok) in cases {
            let spec = Spec::parse(spec).unwrap();
            for _ in 0..50 {
                let v = spec.generate();
                assert_eq!(v.expose_secret().len(), *len, "{spec}");
                assert!(v.expose_secret().chars().all(ok), "{spec}");
            }
        }
    }

    #[test]
    fn passphrases_are_words_from_the_list() {
        let words: HashSet<&str> = wordlist().iter().copied().collect();
        assert_eq!(words.len(), WORDLIST_LEN as usize);
        // Four words of the list have a hyphen of their own (drop-down,
        // felt-tip, t-shirt, yo-yo), so a passphrase is checked by finding
        // a way to read it as exactly `size` words of the list.
        fn readings(parts: &[&str], words: &HashSet<&str>, n: usize) -> bool {
            if parts.is_empty() || n == 0 {
                return parts.is_empty() && n == 0;
            }
            (1..=parts.len().min(2)).any(|take| {
                words.contains(parts[..take].join("-").as_str())
                    && readings(&parts[take..], words, n - 1)
            })
        }
        for spec in ["words", "words:4", "words:12"] {
            let spec = Spec::parse(spec).unwrap();
            for _ in 0..200 {
                let v = spec.generate();
                let parts: Vec<&str> = v.expose_secret().split('-').collect();
                assert!(
                    readings(&parts, &words, spec.size() as usize),
                    "{spec}: not {} words of the list",
                    spec.size()
                );
            }
        }
        assert!(Spec::parse("words").unwrap().bits() >= 128.0);
    }

    #[test]
    fn no_repeats_across_many_draws() {
        for format in Format::ALL {
            let spec = Spec::new(format, if format == Format::Words { 4 } else { 8 }).unwrap();
            let draws: HashSet<String> = (0..2000)
                .map(|_| spec.generate().expose_secret().to_string())
                .collect();
            assert_eq!(draws.len(), 2000, "{spec}");
        }
    }

    #[test]
    fn every_symbol_turns_up() {
        // 62 symbols over ~8600 draws: a missing one would mean a broken draw.
        let mut seen = HashSet::new();
        for _ in 0..200 {
            seen.extend(Spec::of(Format::Alnum).generate().expose_secret().chars());
        }
        assert_eq!(seen.len(), 62);
    }

    #[test]
    fn bits_are_exact() {
        assert_eq!(Spec::parse("hex:16").unwrap().bits(), 128.0);
        assert_eq!(Spec::parse("base64").unwrap().bits(), 256.0);
        assert!(Spec::parse("alnum:16").unwrap().bits() >= 128.0);
        let w = Spec::parse("words:6").unwrap().bits();
        assert!((77.0..78.0).contains(&w), "{w}");
    }

    #[test]
    fn bad_specs_say_why() {
        for (spec, needle) in [
            ("base32", "unknown generator format"),
            ("hex:4", "8 to 1024 bytes"),
            ("hex:99999", "8 to 1024 bytes"),
            ("words:2", "4 to 64 words"),
            ("alnum:x", "whole number"),
            ("base64:", "whole number"),
            ("", "unknown generator format"),
        ] {
            let e = Spec::parse(spec).unwrap_err().to_string();
            assert!(e.contains(needle), "{spec}: {e}");
        }
    }

    #[test]
    fn specs_print_as_they_parse() {
        for s in ["base64:32", "hex:16", "urlsafe:64", "alnum:20", "words:7"] {
            assert_eq!(Spec::parse(s).unwrap().to_string(), s);
        }
    }
}
