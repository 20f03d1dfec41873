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
    ///
    /// Each value is looked for without surrounding whitespace (which is
    /// left in the output), and also in the forms a program is likely to
    /// print it in ([`forms`]): with `\n` and `\r\n` line breaks, line by
    /// line, JSON-escaped, and, for a JSON object of string fields, field
    /// by field (`[REDACTED:NAME.field]`).
    pub fn new<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Redactor {
        let mut values: Vec<(Zeroizing<Vec<u8>>, Vec<u8>)> = Vec::new();
        for (name, value) in pairs {
            for (label, form) in forms(name, value) {
                // Whitespace around a value hides nothing: replacing the
                // value without it keeps the output's line breaks.
                let form = form.trim();
                if form.len() >= MIN_LEN && !values.iter().any(|(v, _)| v[..] == *form.as_bytes()) {
                    values.push((
                        Zeroizing::new(form.as_bytes().to_vec()),
                        format!("[REDACTED:{label}]").into_bytes(),
                    ));
                }
            }
        }
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
            // Values are matched trimmed: `abc\n` is as short as `abc`.
            .filter(|(_, v)| !v.trim().is_empty() && v.trim().len() < MIN_LEN)
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
            // Could be the start of a value longer than what has arrived:
            // wait for more, even if a shorter value already matches (it
            // may be a prefix of the longer one, such as a line of it).
            if !last
                && self
                    .values
                    .iter()
                    .any(|(v, _)| v.len() > rest.len() && v.starts_with(rest))
            {
                break;
            }
            let Some((value, replacement)) = self.values.iter().find(|(v, _)| rest.starts_with(v))
            else {
                out.push(buf[i]);
                i += 1;
                continue;
            };
            // A value that starts inside this one and ends after it
            // (`abcd1234` then `1234wxyz`): replaced too, or its tail would
            // pass in clear. Each one that extends the run is named.
            let mut labels = vec![replacement];
            let mut end = i + value.len();
            let mut j = i + 1;
            while j < end {
                let tail = &buf[j..];
                let longer = |v: &Zeroizing<Vec<u8>>| j + v.len() > end;
                if let Some((v, r)) = self
                    .values
                    .iter()
                    .find(|(v, _)| longer(v) && tail.starts_with(v))
                {
                    labels.push(r);
                    end = j + v.len();
                } else if !last
                    && self
                        .values
                        .iter()
                        .any(|(v, _)| longer(v) && v.len() > tail.len() && v.starts_with(tail))
                {
                    // Could still become one: wait for more.
                    break 'outer;
                }
                j += 1;
            }
            for r in labels {
                out.extend_from_slice(r);
            }
            i = end;
        }
        (out, i)
    }
}

/// The forms of one value to look for, each with its label: the value,
/// and the forms a program prints it in.
fn forms(name: &str, value: &str) -> Vec<(String, Zeroizing<String>)> {
    let mut out: Vec<(String, Zeroizing<String>)> = Vec::new();
    let mut add = |label: &str, form: &str| {
        out.push((label.to_string(), Zeroizing::new(form.to_string())));
    };
    let one = |add: &mut dyn FnMut(&str, &str), label: &str, v: &str| {
        add(label, v);
        add(label, v.trim_end_matches(['\r', '\n']));
        add(label, v.trim());
        if v.contains('\n') {
            let lf = Zeroizing::new(v.replace("\r\n", "\n"));
            add(label, &lf);
            add(label, &Zeroizing::new(lf.replace('\n', "\r\n")));
            for line in lf.split('\n') {
                add(label, line.trim());
            }
        }
        if let Ok(json) = serde_json::to_string(v).map(Zeroizing::new) {
            add(label, &json[1..json.len() - 1]);
            // As Python's json.dumps writes it by default (ensure_ascii):
            // every non-ASCII character as `\uXXXX`.
            if !v.is_ascii() {
                add(label, &ascii_json(&json[1..json.len() - 1]));
            }
        }
        // Percent-encoded, as a password is put in a URL
        // (`postgres://app:p%40ss@db`).
        let encoded = percent_encode(v);
        if *encoded != *v {
            add(label, &encoded);
        }
    };
    one(&mut add, name, value);
    // A JSON object of string fields (how a fields value is injected):
    // each field on its own too.
    if value.trim_start().starts_with('{')
        && let Ok(fields) =
            serde_json::from_str::<std::collections::BTreeMap<String, String>>(value)
    {
        for (field, v) in &fields {
            one(&mut add, &format!("{name}.{field}"), v);
        }
        let mut fields = fields;
        for v in fields.values_mut() {
            zeroize::Zeroize::zeroize(v);
        }
    }
    out
}

/// `s` with every non-ASCII character written `\uXXXX` (lowercase hex,
/// UTF-16 surrogate pairs beyond the BMP), as Python's `json.dumps` does.
fn ascii_json(s: &str) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(s.len() * 2));
    for c in s.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

/// `s` percent-encoded: every byte but the unreserved characters of RFC
/// 3986 as `%XX` (uppercase hex).
fn percent_encode(s: &str) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(s.len() * 3));
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
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
        // A short value with a line break is as short, and warned about.
        let v = [("D", "abc\n"), ("E", "abcd\n")];
        assert_eq!(Redactor::too_short(v.iter().copied()), ["D"]);
        assert_eq!(run(&v, &["abc abcd"]), "abc [REDACTED:E]");
    }

    /// Every split of `text` in two, and one byte at a time, gives `want`.
    fn every_split(values: &[(&str, &str)], text: &str, want: &str) {
        assert_eq!(run(values, &[text]), want);
        for cut in (0..=text.len()).filter(|c| text.is_char_boundary(*c)) {
            assert_eq!(
                run(values, &[&text[..cut], &text[cut..]]),
                want,
                "cut at {cut}"
            );
        }
        let bytes: Vec<String> = text.chars().map(String::from).collect();
        let chunks: Vec<&str> = bytes.iter().map(String::as_str).collect();
        assert_eq!(run(values, &chunks), want);
    }

    #[test]
    fn redaction_matches_value_without_trailing_newline() {
        let v = [("KEY", "s3cr3t-value\n")];
        every_split(&v, "k=s3cr3t-value;", "k=[REDACTED:KEY];");
        let v = [("KEY", "s3cr3t-value\r\n")];
        every_split(&v, "k=s3cr3t-value;", "k=[REDACTED:KEY];");
        // Surrounding whitespace, too.
        let v = [("KEY", "  s3cr3t-value \t")];
        every_split(&v, "k=s3cr3t-value;", "k=[REDACTED:KEY];");
    }

    #[test]
    fn redaction_masks_line_breaks_in_either_form_and_each_line() {
        let v = [("PEM", "line-one-abc\nline-two-def\n")];
        every_split(
            &v,
            "a line-one-abc\r\nline-two-def\r\n b",
            "a [REDACTED:PEM]\r\n b",
        );
        every_split(&v, "x line-two-def y", "x [REDACTED:PEM] y");
        let v = [("PEM", "line-one-abc\r\nline-two-def")];
        every_split(&v, "a line-one-abc\nline-two-def b", "a [REDACTED:PEM] b");
        // JSON-escaped, as a structured log writes it.
        every_split(
            &v,
            r#"{"v":"line-one-abc\r\nline-two-def"}"#,
            r#"{"v":"[REDACTED:PEM]"}"#,
        );
    }

    #[test]
    fn redaction_masks_each_json_field() {
        let v = [("DB", r#"{"password":"hunter2-pw","user":"appuser"}"#)];
        every_split(
            &v,
            "user=appuser pw=hunter2-pw all={\"password\":\"hunter2-pw\",\"user\":\"appuser\"}",
            "user=[REDACTED:DB.user] pw=[REDACTED:DB.password] all=[REDACTED:DB]",
        );
    }

    #[test]
    fn redaction_overlapping_values_leave_no_tail() {
        // One value's end is the next one's start: the first found must not
        // let the rest of the second through.
        let v = [("A", "abcd1234"), ("B", "1234wxyz5678")];
        every_split(&v, "<abcd1234wxyz5678>", "<[REDACTED:A][REDACTED:B]>");
        every_split(&v, "<abcd1234wx>", "<[REDACTED:A]wx>");
        every_split(&v, "<abcd1234>", "<[REDACTED:A]>");
        // A chain of three.
        let v = [("A", "abcd1234"), ("B", "1234wxyz"), ("C", "wxyz-tail")];
        every_split(
            &v,
            "abcd1234wxyz-tail.",
            "[REDACTED:A][REDACTED:B][REDACTED:C].",
        );
        // Contained in the first: nothing more to do.
        let v = [("A", "abcd1234"), ("B", "cd12")];
        every_split(&v, "abcd1234 cd12", "[REDACTED:A] [REDACTED:B]");
    }

    #[test]
    fn redaction_matches_ascii_escaped_json_and_percent_encoded_forms() {
        let v = [("PW", "p@ss wörd/\u{1F511}")];
        // Python's json.dumps (ensure_ascii), and a URL's userinfo.
        every_split(
            &v,
            r#"{"pw": "p@ss w\u00f6rd/\ud83d\udd11"} postgres://app:p%40ss%20w%C3%B6rd%2F%F0%9F%94%91@db"#,
            r#"{"pw": "[REDACTED:PW]"} postgres://app:[REDACTED:PW]@db"#,
        );
    }

    #[test]
    fn short_values_and_forms_are_left_alone() {
        // Under MIN_LEN bytes, whole or trimmed: not redacted (and named
        // by too_short when the whole value is).
        let v = [("A", "ab\n"), ("B", r#"{"f":"xy"}"#)];
        assert_eq!(run(&v, &["ab xy"]), "ab xy");
        assert_eq!(Redactor::too_short(v.iter().copied()), ["A"]);
    }
}
