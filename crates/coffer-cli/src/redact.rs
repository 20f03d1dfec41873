//! Streaming redaction of secret values in a child's output (`coffer run
//! --redact`).
//!
//! Output arrives in arbitrary chunks, so a value can be split across two
//! writes. The redactor passes on everything that cannot be the start of a
//! value and holds back only the shortest tail that still could be: the
//! longest suffix of what it has seen that is a prefix of some value. That
//! tail waits for the next chunk (or the end of the stream), so a value is
//! replaced however it was split, and text that merely resembles the start
//! of a value is delayed by one write at most.

use zeroize::Zeroizing;

/// Values shorter than this are not redacted: replacing every occurrence
/// of a two-letter value would wreck the output and hide nothing.
pub const MIN_LEN: usize = 4;

/// Replaces values by `[REDACTED:NAME]` in a byte stream.
pub struct Redactor {
    /// (value, replacement), longest value first so that a value that
    /// contains another is replaced whole.
    values: Vec<(Zeroizing<Vec<u8>>, Vec<u8>)>,
    pending: Zeroizing<Vec<u8>>,
}

impl Redactor {
    /// A redactor for `(name, value)` pairs; values shorter than
    /// [`MIN_LEN`] bytes are left out (see [`Redactor::too_short`]).
    pub fn new<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Redactor {
        let mut values: Vec<(Zeroizing<Vec<u8>>, Vec<u8>)> = pairs
            .into_iter()
            .filter(|(_, v)| v.len() >= MIN_LEN)
            .map(|(n, v)| {
                (
                    Zeroizing::new(v.as_bytes().to_vec()),
                    format!("[REDACTED:{n}]").into_bytes(),
                )
            })
            .collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.0.len()));
        Redactor {
            values,
            pending: Zeroizing::new(Vec::new()),
        }
    }

    /// Names whose values are too short to redact.
    pub fn too_short<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<&'a str> {
        pairs
            .into_iter()
            .filter(|(_, v)| !v.is_empty() && v.len() < MIN_LEN)
            .map(|(n, _)| n)
            .collect()
    }

    /// Takes a chunk; returns what can be passed on now.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(chunk);
        let (out, consumed) = self.scan(false);
        self.pending.drain(..consumed);
        out
    }

    /// The end of the stream: returns the rest.
    pub fn finish(&mut self) -> Vec<u8> {
        let (out, _) = self.scan(true);
        self.pending.clear();
        out
    }

    /// Replaces whole values in `pending`; unless `last`, stops before a
    /// tail that could still become a value. Returns the output and how
    /// many bytes of `pending` it accounts for.
    fn scan(&self, last: bool) -> (Vec<u8>, usize) {
        let buf = &self.pending[..];
        let mut out = Vec::with_capacity(buf.len());
        let mut i = 0;
        'outer: while i < buf.len() {
            let rest = &buf[i..];
            for (value, replacement) in &self.values {
                if rest.starts_with(value) {
                    out.extend_from_slice(replacement);
                    i += value.len();
                    continue 'outer;
                }
            }
            if !last
                && self
                    .values
                    .iter()
                    .any(|(v, _)| v.len() > rest.len() && v.starts_with(rest))
            {
                // Could be the start of a value: wait for more.
                break;
            }
            out.push(buf[i]);
            i += 1;
        }
        (out, i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(values: &[(&str, &str)], chunks: &[&str]) -> String {
        let mut r = Redactor::new(values.iter().copied());
        let mut out = Vec::new();
        for c in chunks {
            out.extend(r.push(c.as_bytes()));
        }
        out.extend(r.finish());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn values_are_replaced_however_they_are_split() {
        let v = [("TOKEN", "s3cr3t-value"), ("DB", "hunter22")];
        let text = "token=s3cr3t-value db=hunter22 s3cr3t-val end";
        let want = "token=[REDACTED:TOKEN] db=[REDACTED:DB] s3cr3t-val end";
        assert_eq!(run(&v, &[text]), want);
        // Every split point, and one byte at a time.
        for cut in 0..=text.len() {
            assert_eq!(run(&v, &[&text[..cut], &text[cut..]]), want, "cut at {cut}");
        }
        let bytes: Vec<String> = text.chars().map(String::from).collect();
        let chunks: Vec<&str> = bytes.iter().map(String::as_str).collect();
        assert_eq!(run(&v, &chunks), want);
    }

    #[test]
    fn only_a_possible_start_is_held_back() {
        let mut r = Redactor::new([("K", "abcdef")]);
        assert_eq!(r.push(b"xyz abc"), b"xyz ");
        assert_eq!(r.push(b"dX"), b"abcdX");
        assert_eq!(r.push(b"ab"), b"");
        assert_eq!(r.finish(), b"ab");
    }

    #[test]
    fn longer_values_win_and_short_ones_are_left_alone() {
        let v = [("A", "pass"), ("B", "password1"), ("C", "xy")];
        assert_eq!(
            run(&v, &["password1 pass xy"]),
            "[REDACTED:B] [REDACTED:A] xy"
        );
        assert_eq!(Redactor::too_short(v.iter().copied()), ["C"]);
    }
}
