//! What the writer does to every serialized record before it is linked into
//! the chain: masks anything shaped like a token or an invitation code, and
//! escapes characters that break lines or reorder text on a terminal.
//!
//! Both work on the record's JSON bytes, so every field is covered (paths,
//! URL paths, names, messages, alert subjects) without listing them, and
//! both run before the line is linked, so the chain covers the bytes as
//! written and verifies as before.
//!
//! **Masked**: `cft_` or `cfi_` (or the same with the underscore
//! percent-encoded, `%5F`, as it can arrive in a URL path), followed by one
//! or more base62 characters (`0-9A-Za-z`): the whole run is replaced by
//! `<masked>`, whatever its length and whether or not its checksum is valid.
//! A token cut short, or with one character changed, is still most of a
//! credential (the checksum only catches typos; a near-miss can be
//! completed by guessing), and checking a checksum costs a hash per match.
//! The price is that a name that merely looks like a token (`cft_notes`) is
//! masked too; such a name is not worth a raw token in the log.
//!
//! **Escaped** (as `\uXXXX` JSON escapes, which read back as the same
//! character): DEL and the C1 controls (U+007F to U+009F, U+0085 among
//! them), the line and paragraph separators (U+2028, U+2029), the
//! directional marks, embeddings, overrides and isolates (U+061C, U+200E,
//! U+200F, U+202A to U+202E, U+2066 to U+2069), the zero-width characters
//! (U+200B to U+200D) and U+FEFF. JSON encoding already escapes C0 controls.
//! Line-based readers (JavaScript's, some log shippers) end a line at
//! U+2028; a terminal showing a U+202E reverses what follows.
//!
//! Cost on the hot path: one pass over the bytes looking for `c` (and one
//! for bytes at or above 0x7F, which ASCII-only records, nearly all of
//! them, end at); nothing is allocated unless something is found.

/// What [`clean`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cleaned {
    /// Token-shaped strings were masked: the record's fields changed.
    pub masked: bool,
    /// Characters were escaped: the bytes changed, the fields did not.
    pub escaped: bool,
}

/// What a token's body is replaced with.
pub const MASK: &str = "<masked>";

/// Masks and escapes `json`, a serialized record, in place.
pub fn clean(json: &mut Vec<u8>) -> Cleaned {
    let masked = mask_tokens(json);
    let escaped = escape_unsafe(json);
    Cleaned { masked, escaped }
}

/// Where the first token-shaped prefix at or after `from` ends (the index of
/// its body's first byte), with where it starts.
fn next_prefix(h: &[u8], mut from: usize) -> Option<(usize, usize)> {
    while from + 4 <= h.len() {
        let p = from + h[from..].iter().position(|&b| b == b'c')?;
        let rest = &h[p + 1..];
        if rest.len() >= 3 && rest[0] == b'f' && (rest[1] == b't' || rest[1] == b'i') {
            if rest[2] == b'_' {
                return Some((p, p + 4));
            }
            if rest.len() >= 5
                && rest[2] == b'%'
                && rest[3] == b'5'
                && matches!(rest[4], b'F' | b'f')
            {
                return Some((p, p + 6));
            }
        }
        from = p + 1;
    }
    None
}

/// Masks every token-shaped run (see the module's documentation); whether
/// anything was.
pub fn mask_tokens(json: &mut Vec<u8>) -> bool {
    let Some(first) = first_token(json, 0) else {
        return false;
    };
    let mut out = Vec::with_capacity(json.len());
    let mut copied = 0;
    let mut next = Some(first);
    while let Some((body, end)) = next {
        out.extend_from_slice(&json[copied..body]);
        out.extend_from_slice(MASK.as_bytes());
        copied = end;
        next = first_token(json, end);
    }
    out.extend_from_slice(&json[copied..]);
    *json = out;
    true
}

/// The body (start, end) of the first token-shaped string at or after
/// `from`: a prefix followed by at least one base62 character.
fn first_token(h: &[u8], mut from: usize) -> Option<(usize, usize)> {
    loop {
        let (start, body) = next_prefix(h, from)?;
        let end = body
            + h[body..]
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric())
                .count();
        if end > body {
            return Some((body, end));
        }
        from = start + 1;
    }
}

/// The escape for the character starting at `b[0]`, and its length in
/// bytes, if it is one to escape. `b` is valid UTF-8 (serialized JSON).
fn unsafe_char(b: &[u8]) -> Option<(u32, usize)> {
    match b {
        [0x7f, ..] => Some((0x7f, 1)),
        [0xc2, c @ 0x80..=0x9f, ..] => Some((u32::from(*c), 2)),
        [0xd8, 0x9c, ..] => Some((0x061c, 2)),
        [0xe2, 0x80, c @ (0x8b..=0x8f | 0xa8..=0xae), ..] => {
            Some((0x2000 + u32::from(c - 0x80), 3))
        }
        [0xe2, 0x81, c @ 0xa6..=0xa9, ..] => Some((0x2040 + u32::from(c - 0x80), 3)),
        [0xef, 0xbb, 0xbf, ..] => Some((0xfeff, 3)),
        _ => None,
    }
}

/// Escapes the characters listed in the module's documentation; whether
/// any was.
pub fn escape_unsafe(json: &mut Vec<u8>) -> bool {
    let Some(first) = json.iter().position(|&b| b >= 0x7f) else {
        return false;
    };
    if !json[first..]
        .iter()
        .enumerate()
        .any(|(i, &b)| b >= 0x7f && unsafe_char(&json[first + i..]).is_some())
    {
        return false;
    }
    let mut out = Vec::with_capacity(json.len() + 16);
    out.extend_from_slice(&json[..first]);
    let mut i = first;
    while i < json.len() {
        if json[i] >= 0x7f
            && let Some((c, len)) = unsafe_char(&json[i..])
        {
            out.extend_from_slice(format!("\\u{c:04x}").as_bytes());
            i += len;
            continue;
        }
        out.push(json[i]);
        i += 1;
    }
    *json = out;
    true
}

/// Whether `c` is a character [`escape_unsafe`] escapes, or a C0 control:
/// one that must never reach a terminal or a line-based reader raw.
pub fn is_unsafe_char(c: char) -> bool {
    let mut buf = [0u8; 4];
    c.is_control() || unsafe_char(c.encode_utf8(&mut buf).as_bytes()).is_some()
}

/// `s` with every character [`is_unsafe_char`] names shown as `\u{XXXX}`
/// (and a backslash doubled, so that the text `\u{202E}` cannot pass for
/// an escape): for terminals, tables and server log lines. Borrowed when
/// there is nothing to show.
pub fn visible(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(|c| c == '\\' || is_unsafe_char(c)) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else if is_unsafe_char(c) {
            out.push_str(&format!("\\u{{{:04X}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A URL (a webhook's) as logs, errors and status output show it: the scheme,
/// host and port, then `/…`, whatever followed (a path, a query, a
/// fragment); any `user:password@` is left out. The path of a Slack-style
/// URL is its secret, so it is never shown.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(a webhook URL)".into();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let scheme: String = scheme
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        .collect();
    let host: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']' | '_'))
        .collect();
    format!("{scheme}://{host}/…")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cleaned(s: &str) -> String {
        let mut v = s.as_bytes().to_vec();
        clean(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn token_shapes_are_masked_wherever_they_are() {
        let token = format!("cft_{}{}", "A1b2".repeat(10), "xyz123456");
        let cases = [
            (token.clone(), "cft_<masked>".to_string()),
            (format!("a/{token}/b"), "a/cft_<masked>/b".into()),
            ("LEAKcft_abc-def".to_string(), "LEAKcft_<masked>-def".into()),
            ("cfi_Zz9".into(), "cfi_<masked>".into()),
            (
                "cft%5Fabc cfi%5fX".into(),
                "cft%5F<masked> cfi%5f<masked>".into(),
            ),
            (
                "cft_ cfx_abc cft-abc CFT_abc".into(),
                "cft_ cfx_abc cft-abc CFT_abc".into(),
            ),
            ("cfcft_ab".into(), "cfcft_<masked>".into()),
            ("cft_a cft_b".into(), "cft_<masked> cft_<masked>".into()),
            ("ends with cft".into(), "ends with cft".into()),
        ];
        for (input, want) in cases {
            assert_eq!(cleaned(&input), want, "{input}");
        }
    }

    #[test]
    fn urls_are_shown_to_the_host_only() {
        for (url, shown) in [
            (
                "https://hooks.slack.com/services/T000/B000/XXXXSECRET",
                "https://hooks.slack.com/…",
            ),
            (
                "http://user:p%40ss@alerts.example:8443/in?token=abc#frag",
                "http://alerts.example:8443/…",
            ),
            ("https://[::1]:9000", "https://[::1]:9000/…"),
            ("https://h?k=v", "https://h/…"),
            ("not a url secret", "(a webhook URL)"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn visible_shows_what_a_terminal_would_hide() {
        assert_eq!(visible("app/prod/KEY"), "app/prod/KEY");
        assert_eq!(
            visible("a\u{202e}b\u{2028}c\u{1b}[31m\u{85}d\\u{202E}é"),
            "a\\u{202E}b\\u{2028}c\\u{001B}[31m\\u{0085}d\\\\u{202E}é"
        );
    }

    #[test]
    fn line_and_direction_characters_are_escaped() {
        let r = crate::Record {
            path: Some(
                "a\u{2028}b\u{2029}c\u{202e}d\u{85}e\u{7f}f\u{61c}g\u{200e}h\u{2066}i\u{feff}j\u{9f}é€😀"
                    .into(),
            ),
            ..crate::Record::default()
        };
        let mut json = serde_json::to_vec(&r).unwrap();
        let c = clean(&mut json);
        assert!(c.escaped && !c.masked);
        let s = String::from_utf8(json.clone()).unwrap();
        assert!(
            s.contains(
                r"a\u2028b\u2029c\u202ed\u0085e\u007ff\u061cg\u200eh\u2066i\ufeffj\u009fé€😀"
            ),
            "{s}"
        );
        assert!(s.chars().all(|c| !is_unsafe_char(c)), "{s}");
        let back: crate::Record = serde_json::from_slice(&json).unwrap();
        assert_eq!(back, r, "the escapes read back as the characters");
        // Nothing to do: nothing changes.
        let mut plain = b"{\"path\":\"caf\xc3\xa9\"}".to_vec();
        assert_eq!(clean(&mut plain), Cleaned::default());
    }
}
