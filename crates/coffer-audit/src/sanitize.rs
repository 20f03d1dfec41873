//! What the writer does to every serialized record before it is linked into
//! the chain: masks anything shaped like a token or an invitation code, and
//! escapes characters that break lines or reorder text on a terminal.
//!
//! Both work on the record's JSON bytes, so every field is covered (paths,
//! URL paths, names, messages, alert subjects) without listing them, and
//! both run before the line is linked, so the chain covers the bytes as
//! written and verifies as before.
//!
//! **Masked**: `cft_`, `cfi_` or `cfs_` (an app-role secret id), in either case, each of its characters as
//! it is or encoded the ways a reader may decode it back (percent-encoded,
//! once or more: `%63ft_`, `cft%5F`, `%2563ft_`; or a `\u0063` escape held
//! in a field's text), followed by one or more base62 characters
//! (`0-9A-Za-z`, each also as it is or encoded): the whole body is replaced
//! by `<masked>`, whatever its length and whether or not its checksum is
//! valid, running on across invisible characters and percent-encoded
//! non-ASCII bytes between its characters (which a reader may drop). A
//! token cut short, or with one character changed, is still most of a
//! credential (the checksum only catches typos; a near-miss can be
//! completed by guessing), and checking a checksum costs a hash per match.
//! The price is that a name that merely looks like a token (`cft_notes`,
//! `CFT_notes`) is masked too; such a name is not worth a raw token in the
//! log. A token body with no prefix at all cannot be told from any other
//! text and is not masked.
//!
//! **Escaped** (as `\uXXXX` JSON escapes, which read back as the same
//! character), before masking so that masking sees the bytes as written:
//! DEL and the C1 controls (U+007F to U+009F, U+0085 among them), the line
//! and paragraph separators (U+2028, U+2029), the directional marks,
//! embeddings, overrides and isolates (U+061C, U+200E, U+200F, U+202A to
//! U+202E, U+2066 to U+2069), and the invisible formatting characters: the
//! zero-width ones (U+200B to U+200D), word joiner and invisible operators
//! (U+2060 to U+2064), the deprecated format characters (U+206A to
//! U+206F), soft hyphen (U+00AD), the combining grapheme joiner (U+034F),
//! Mongolian variation selectors and vowel separator (U+180B to U+180F),
//! Hangul and Khmer fillers (U+115F, U+1160, U+17B4, U+17B5, U+3164,
//! U+FFA0), variation selectors (U+FE00 to U+FE0F, U+E0100 to U+E01EF),
//! interlinear annotation (U+FFF9 to U+FFFB), tag characters (U+E0000 to
//! U+E007F) and U+FEFF. JSON encoding already escapes C0 controls.
//! Line-based readers (JavaScript's, some log shippers) end a line at
//! U+2028; a terminal showing a U+202E reverses what follows; an invisible
//! character makes two different names look the same.
//!
//! Cost on the hot path: vectorised searches for `%` and `\`, for each `_`
//! (a record without `%` or `\` can hold a token only as a literal
//! `cft_`/`cfi_` before an underscore), and for any byte at or above 0x7F;
//! the full search runs only when one of them finds something, and nothing
//! is allocated unless something is masked or escaped.

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

/// Masks and escapes `json`, a serialized record, in place. Escaping comes
/// first, so that masking sees the bytes as they are written: an escape
/// such as `\u009c` can put a `c` in front of what follows.
pub fn clean(json: &mut Vec<u8>) -> Cleaned {
    let escaped = escape_unsafe(json);
    let masked = mask_tokens(json);
    Cleaned { masked, escaped }
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn hex_pair(h: &[u8], at: usize) -> Option<u8> {
    Some(hex_val(*h.get(at)?)? << 4 | hex_val(*h.get(at + 1)?)?)
}

/// The character one "unit" at `at` stands for, and the unit's length: a
/// byte as it is, a percent-encoding (`%63`, or `%2563` and so on, encoded
/// again), or a JSON `\u` escape. A reader that decodes URLs or JSON once
/// more turns each back into the character. `None` for a non-ASCII
/// character (or an escape of one).
fn unit(h: &[u8], at: usize) -> Option<(u32, usize)> {
    match *h.get(at)? {
        b'%' => {
            let mut j = at + 1;
            while h.get(j..j + 2) == Some(b"25") && hex_pair(h, j + 2).is_some() {
                j += 2;
            }
            hex_pair(h, j).map(|c| (u32::from(c), j + 2 - at))
        }
        b'\\' => {
            // `\u0063` (a backslash escaped, then `u0063`) is a field
            // holding the text `\u0063`, which reads as `c` once more.
            let mut j = at + 1;
            while h.get(j) == Some(&b'\\') {
                j += 1;
            }
            if h.get(j) != Some(&b'u') {
                return Some((u32::from(b'\\'), 1));
            }
            let mut c = 0u32;
            for k in 1..5 {
                match h.get(j + k).copied().and_then(hex_val) {
                    Some(v) => c = c << 4 | u32::from(v),
                    None => return Some((u32::from(b'\\'), 1)),
                }
            }
            Some((c, j + 5 - at))
        }
        b if b < 0x80 => Some((u32::from(b), 1)),
        _ => None,
    }
}

/// Whether the character a unit stands for is one that a reader may drop
/// or not see inside a token (escaped by [`escape_unsafe`]): a token's body
/// runs on across it.
fn invisible_unit(c: u32) -> bool {
    char::from_u32(c).is_some_and(|c| !c.is_ascii() && is_unsafe_char(c))
        || (0xd800..=0xdfff).contains(&c)
}

/// Where a token-shaped prefix (`cft_`, `cfi_` or `cfs_`, in either case, each
/// character as it is or encoded, see [`unit`]) starting at `p` ends.
fn prefix_at(h: &[u8], p: usize) -> Option<usize> {
    let mut at = p;
    for want in [&[b'c'][..], b"f", b"tis", b"_"] {
        let (c, len) = unit(h, at)?;
        let c = u8::try_from(c).ok()?;
        if !want.contains(&c.to_ascii_lowercase()) {
            return None;
        }
        at += len;
    }
    Some(at)
}

/// Where a token's body starting at `body` ends: base62 characters, as
/// they are or encoded, and any invisible character between them.
fn body_end(h: &[u8], body: usize) -> usize {
    let mut at = body;
    let mut end = body;
    while let Some((c, len)) = unit(h, at) {
        if u8::try_from(c).is_ok_and(|c| c.is_ascii_alphanumeric()) {
            at += len;
            end = at;
        } else if (h[at] == b'\\' && invisible_unit(c)) || (h[at] == b'%' && c >= 0x80) {
            // An invisible character, escaped, or a percent-encoded byte of
            // a non-ASCII one, between the body's characters.
            at += len;
        } else {
            break;
        }
    }
    end
}

/// Masks every token-shaped run (see the module's documentation); whether
/// anything was.
pub fn mask_tokens(json: &mut Vec<u8>) -> bool {
    if !may_hold_token(json) {
        return false;
    }
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

/// A quick test that rules out nearly every record before the full
/// search: with no `%` and no `\` in it, every unit is a literal byte, so
/// a token-shaped string needs a literal `_` after `cft` or `cfi` (in either
/// case) and before a base62 character. Records hold few underscores, and
/// the searches are vectorised; the full search stops at every `c`.
fn may_hold_token(h: &[u8]) -> bool {
    if memchr::memchr2(b'%', b'\\', h).is_some() {
        return true;
    }
    memchr::memchr_iter(b'_', h).any(|u| {
        u >= 3
            && h.get(u + 1).is_some_and(u8::is_ascii_alphanumeric)
            && (h[u - 3..u].eq_ignore_ascii_case(b"cft")
                || h[u - 3..u].eq_ignore_ascii_case(b"cfi")
                || h[u - 3..u].eq_ignore_ascii_case(b"cfs"))
    })
}

/// The body (start, end) of the first token-shaped string at or after
/// `from`: a prefix followed by at least one base62 character.
fn first_token(h: &[u8], mut from: usize) -> Option<(usize, usize)> {
    while from < h.len() {
        let p = from
            + h[from..]
                .iter()
                .position(|&b| matches!(b, b'c' | b'C' | b'%' | b'\\'))?;
        if let Some(body) = prefix_at(h, p) {
            let end = body_end(h, body);
            if end > body {
                return Some((body, end));
            }
        }
        from = p + 1;
    }
    None
}

/// Whether `c` is escaped in records and shown visibly on terminals: DEL
/// and the C1 controls, line and paragraph separators, direction marks,
/// embeddings, overrides and isolates, and the invisible formatting
/// characters (zero-width, word joiner and invisible operators, the
/// deprecated format characters, soft hyphen, fillers, variation
/// selectors, interlinear annotation, tag characters, U+FEFF).
fn escaped_char(c: char) -> bool {
    matches!(
        c,
        '\u{7f}'..='\u{9f}'
            | '\u{ad}'
            | '\u{34f}'
            | '\u{61c}'
            | '\u{115f}'
            | '\u{1160}'
            | '\u{17b4}'
            | '\u{17b5}'
            | '\u{180b}'..='\u{180f}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206f}'
            | '\u{3164}'
            | '\u{fe00}'..='\u{fe0f}'
            | '\u{feff}'
            | '\u{ffa0}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{e0000}'..='\u{e007f}'
            | '\u{e0100}'..='\u{e01ef}'
    )
}

/// Escapes the characters listed in the module's documentation; whether
/// any was.
pub fn escape_unsafe(json: &mut Vec<u8>) -> bool {
    // Nearly every record is ASCII without DEL: two vectorised checks.
    if json.is_ascii() && memchr::memchr(0x7f, json).is_none() {
        return false;
    }
    let Some(first) = json.iter().position(|&b| b >= 0x7f) else {
        return false;
    };
    let Ok(text) = std::str::from_utf8(&json[first..]) else {
        return false;
    };
    if !text.chars().any(escaped_char) {
        return false;
    }
    let mut out = Vec::with_capacity(json.len() + 16);
    out.extend_from_slice(&json[..first]);
    for c in text.chars() {
        if escaped_char(c) {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.extend_from_slice(format!("\\u{u:04x}").as_bytes());
            }
        } else {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    *json = out;
    true
}

/// Whether `c` is a character [`escape_unsafe`] escapes, or a C0 control:
/// one that must never reach a terminal or a line-based reader raw.
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control() || escaped_char(c)
}

/// `s` with every character [`is_unsafe_char`] names shown as `\u{XXXX}`
/// (and a backslash doubled, so that the text `\u{202E}` cannot pass for
/// an escape), and token shapes masked: for terminals, tables and server
/// log lines. Borrowed when there is nothing to show.
pub fn visible(s: &str) -> std::borrow::Cow<'_, str> {
    let shown = shown_raw(s);
    // A token shape (in a log written before masking covered its form, or
    // one a file holds that no server wrote) is not shown either.
    if first_token(shown.as_bytes(), 0).is_none() {
        return shown;
    }
    let mut bytes = shown.into_owned().into_bytes();
    mask_tokens(&mut bytes);
    std::borrow::Cow::Owned(String::from_utf8(bytes).unwrap_or_default())
}

fn shown_raw(s: &str) -> std::borrow::Cow<'_, str> {
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

    #[test]
    fn the_quick_test_never_rules_out_what_the_full_search_finds() {
        // Every string over an alphabet dense in prefix characters, up to
        // a length that holds a prefix and a body, drawn by a fixed LCG.
        const ALPHABET: &[u8] = b"cCfFtTiI_a0%5\\u\" .";
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut found = 0;
        for _ in 0..200_000 {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
            let len = (state >> 59) as usize + 1;
            let h: Vec<u8> = (0..len)
                .map(|k| {
                    let x = state.rotate_left(k as u32 * 7) >> 58;
                    ALPHABET[x as usize % ALPHABET.len()]
                })
                .collect();
            if first_token(&h, 0).is_some() {
                found += 1;
                assert!(may_hold_token(&h), "{:?}", String::from_utf8_lossy(&h));
            }
        }
        assert!(found > 100, "only {found} token shapes drawn");
        assert!(!may_hold_token(
            br#"{"op":"secret.read","path":"app/c/cf_x","accessor":"acc_Ab"}"#
        ));
        assert!(may_hold_token(b"x CfT_a"));
        assert!(may_hold_token(b"%63ft_a"));
    }

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
            ("cfs_Zz9".into(), "cfs_<masked>".into()),
            (
                "cft%5Fabc cfi%5fX".into(),
                "cft%5F<masked> cfi%5f<masked>".into(),
            ),
            (
                "cft_ cfx_abc cft-abc cft%2Dabc".into(),
                "cft_ cfx_abc cft-abc cft%2Dabc".into(),
            ),
            ("cfcft_ab".into(), "cfcft_<masked>".into()),
            ("cft_a cft_b".into(), "cft_<masked> cft_<masked>".into()),
            ("ends with cft".into(), "ends with cft".into()),
        ];
        for (input, want) in cases {
            assert_eq!(cleaned(&input), want, "{input}");
        }
    }

    /// The neighbours of the masking hole: a token whose prefix or body is
    /// percent-encoded (once or twice), JSON-escaped, in upper case, or
    /// broken by an invisible character, as a URL path can carry it: each
    /// decodes back into a raw token for a reader, so each is masked whole.
    #[test]
    fn masking_hole_encoded_and_uppercase_prefixes_are_masked() {
        let body = "IxNhPPvM0mgXcFWYtgtnQXYMNw2RrhC5JUDnZOaHqtj1RV530";
        let tail = &body[8..];
        for (input, want) in [
            (format!("a/%63ft_{body}"), "a/%63ft_<masked>".to_string()),
            (format!("a/%43FT_{body}"), "a/%43FT_<masked>".into()),
            (format!("a/cf%74_{body}/b"), "a/cf%74_<masked>/b".into()),
            (format!("a/CFT_{body}"), "a/CFT_<masked>".into()),
            (format!("a/Cfi_{body}"), "a/Cfi_<masked>".into()),
            (
                format!("a/%2563ft%255F{body}"),
                "a/%2563ft%255F<masked>".into(),
            ),
            (format!("cft_Ix%4EhPP%2576{tail}"), "cft_<masked>".into()),
            (format!(r"x\u0063ft_{body}"), r"x\\u0063ft_<masked>".into()),
            (format!(r"cft\u005f{body}"), r"cft\\u005f<masked>".into()),
            (format!("cft_IxNh\u{200b}{tail}"), "cft_<masked>".into()),
            (format!("cft_IxNh%E2%80%8B{tail}"), "cft_<masked>".into()),
            (format!("\u{9c}ft_{body}"), r"\u009cft_<masked>".into()),
            // Not token-shaped: left alone.
            (
                "cft%2Dabc cft%5F%2D %zz".into(),
                "cft%2Dabc cft%5F%2D %zz".into(),
            ),
        ] {
            let r = crate::Record {
                path: Some(input.clone()),
                ..crate::Record::default()
            };
            let mut json = serde_json::to_vec(&r).unwrap();
            clean(&mut json);
            let s = String::from_utf8(json).unwrap();
            assert!(s.contains(&format!("\"path\":\"{want}\"")), "{input}: {s}");
            let back: crate::Record = serde_json::from_str(&s).unwrap();
            assert!(!back.path.unwrap().contains(&body[10..30]), "{input}");
        }
    }

    /// The neighbours of the escaping hole: invisible formatting characters
    /// (word joiner, invisible operators, deprecated format characters,
    /// soft hyphen, variation selectors, tag characters) are escaped in
    /// records and shown visibly, like the zero-width ones already were: a
    /// name that differs from another only by them must not look the same.
    #[test]
    fn escaping_hole_invisible_format_characters_are_escaped() {
        let hidden = [
            '\u{ad}',
            '\u{34f}',
            '\u{180e}',
            '\u{2060}',
            '\u{2064}',
            '\u{206a}',
            '\u{206f}',
            '\u{fe0f}',
            '\u{fff9}',
            '\u{e0001}',
            '\u{e0041}',
            '\u{e007f}',
            '\u{e0100}',
        ];
        for c in hidden {
            let r = crate::Record {
                path: Some(format!("app/{c}KEY")),
                ..crate::Record::default()
            };
            let mut json = serde_json::to_vec(&r).unwrap();
            assert!(clean(&mut json).escaped, "U+{:04X}", u32::from(c));
            let s = String::from_utf8(json).unwrap();
            assert!(s.is_ascii(), "{s}");
            let back: crate::Record = serde_json::from_str(&s).unwrap();
            assert_eq!(back, r);
            assert!(
                visible(&format!("{c}")).starts_with("\\u{"),
                "U+{:04X}",
                u32::from(c)
            );
        }
        // Visible characters beyond the BMP are written as they are.
        let mut plain = "{\"path\":\"😀é\"}".as_bytes().to_vec();
        assert_eq!(clean(&mut plain), Cleaned::default());
    }

    /// The masking hole on display: a log written before a form was masked
    /// (or a file no server wrote) shown in a table shows no token.
    #[test]
    fn masking_hole_tables_show_no_token_shape() {
        let body = "IxNhPPvM0mgXcFWYtgtnQXYMNw2RrhC5JUDnZOaHqtj1RV530";
        for s in [
            format!("app/%63ft_{body}"),
            format!("app/CFT_{body}"),
            format!("app/cft_{body}\u{202e}"),
        ] {
            let shown = visible(&s);
            assert!(!shown.contains(&body[8..30]), "{s}: {shown}");
        }
        assert_eq!(visible("app/prod/KEY"), "app/prod/KEY");
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
