//! `.env` files: parsing, variable expansion and writing. Pure; no I/O.
//!
//! The parser follows python-dotenv (1.x) statement for statement, so a file
//! means here what it means to the tool most `.env` files are written for:
//!
//! - `KEY=value`, with an optional `export ` prefix and spaces around `=`;
//!   a key is any run of characters other than `=`, `#` and whitespace, or
//!   `'quoted'`.
//! - Unquoted values end at the end of the line; ` #` (whitespace, then `#`)
//!   starts a comment; trailing whitespace is dropped.
//! - `'single'` and `"double"` quoted values may span lines. In double
//!   quotes, `\\ \' \" \a \b \f \n \r \t \v` are escapes; in single quotes
//!   only `\\` and `\'`. Other backslashes stay as they are.
//! - `KEY=` is the empty string; a bare `KEY` (no `=`) has no value.
//! - Full-line comments, blank lines; a later duplicate key wins.
//! - `${NAME}` and `${NAME:-default}` expand to an earlier value in the file,
//!   else the environment, else the default, else the empty string (a
//!   variable that is set but empty stays empty). There is no `$NAME` form
//!   and no escape for `$`.
//! - A statement that does not parse is skipped up to the end of its line
//!   and reported with its line number ([`Parsed::errors`]).
//! - `\r\n` and `\r` line breaks read as `\n`, as Python's text mode reads
//!   them (so a raw CR never ends up in a multi-line value).
//!
//! **One deliberate difference:** single-quoted values are never expanded.
//! python-dotenv expands `${...}` inside single quotes too; dotenvx, the
//! shell and Docker Compose do not, and a single-quoted value is the only way
//! to write a literal `${` in a file. The differential tests check that this
//! is the only difference (`tests/python_dotenv.rs`).
//!
//! Where dotenvx reads a file differently and coffer follows python-dotenv:
//! dotenvx also expands unbraced `$NAME` and runs `$(command)`
//! substitutions (coffer never runs commands from a file), keeps the
//! backslash of `\'` in single quotes, and only knows the `\n` and `\r`
//! escapes in double quotes.
//!
//! [`write`] quotes what needs quoting so that reading back what it wrote
//! gives every value exactly.

#![forbid(unsafe_code)]

use std::collections::HashMap;

/// How a value was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quote {
    /// Unquoted.
    None,
    /// In single quotes (never expanded).
    Single,
    /// In double quotes.
    Double,
}

/// One `KEY=value` statement, before expansion.
#[derive(Clone, PartialEq, Eq)]
pub struct Binding {
    /// The key.
    pub key: String,
    /// The value after escapes, or `None` for a bare `KEY` line.
    pub value: Option<String>,
    /// How the value was quoted.
    pub quote: Quote,
    /// The line the statement starts on, from 1.
    pub line: usize,
}

// By hand: values are secrets.
impl std::fmt::Debug for Binding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Binding")
            .field("key", &self.key)
            .field("value", &self.value.as_ref().map(|_| "[redacted]"))
            .field("quote", &self.quote)
            .field("line", &self.line)
            .finish()
    }
}

/// A statement that could not be parsed (it was skipped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The line the statement starts on, from 1.
    pub line: usize,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: cannot parse this statement", self.line)
    }
}

/// A parsed file: its statements in order, and those that did not parse.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    /// The statements, in file order (duplicates included).
    pub bindings: Vec<Binding>,
    /// Statements skipped because they do not parse.
    pub errors: Vec<ParseError>,
}

impl Parsed {
    /// The values after expansion, in order of first appearance, later
    /// duplicates winning. `env` answers for names the file does not
    /// define (usually the process environment).
    pub fn resolve(&self, env: &dyn Fn(&str) -> Option<String>) -> Vec<(String, Option<String>)> {
        resolve(&self.bindings, env)
    }
}

/// Parses a file's text. Line breaks `\r\n` and `\r` are read as `\n`
/// first, as python-dotenv reads files (Python's text mode).
pub fn parse(text: &str) -> Parsed {
    let normalized;
    let text = if text.contains('\r') {
        normalized = text.replace("\r\n", "\n").replace('\r', "\n");
        normalized.as_str()
    } else {
        text
    };
    let mut reader = Reader { text, pos: 0 };
    let mut parsed = Parsed::default();
    while reader.has_next() {
        let start = reader.pos;
        match parse_binding(&mut reader) {
            Ok(None) => {}
            Ok(Some((key, value, quote))) => parsed.bindings.push(Binding {
                key,
                value,
                quote,
                line: line_of(text, start),
            }),
            Err(Failed) => {
                reader.rest_of_line();
                parsed.errors.push(ParseError {
                    line: line_of(text, start),
                });
            }
        }
    }
    parsed
}

/// The line of the first non-blank character at or after `pos`.
fn line_of(text: &str, pos: usize) -> usize {
    let skipped = text[pos..]
        .char_indices()
        .find(|&(_, c)| !py_space(c))
        .map_or(text.len(), |(i, _)| pos + i);
    1 + text[..skipped]
        .char_indices()
        .filter(|&(i, c)| c == '\n' || (c == '\r' && !text[i + 1..].starts_with('\n')))
        .count()
}

/// Expands `${...}` in each value (see the crate docs), in order; later
/// duplicates replace earlier ones but keep their first position.
pub fn resolve(
    bindings: &[Binding],
    env: &dyn Fn(&str) -> Option<String>,
) -> Vec<(String, Option<String>)> {
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for b in bindings {
        let value = b.value.as_ref().map(|v| {
            if b.quote == Quote::Single {
                v.clone()
            } else {
                expand(v, &|name| match index.get(name) {
                    Some(&i) => Some(out[i].1.clone().unwrap_or_default()),
                    // No environment has a variable without a name.
                    None if name.is_empty() => None,
                    None => env(name),
                })
            }
        });
        match index.get(&b.key) {
            Some(&i) => out[i].1 = value,
            None => {
                index.insert(b.key.clone(), out.len());
                out.push((b.key.clone(), value));
            }
        }
    }
    out
}

/// Expands `${NAME}` and `${NAME:-default}` in `value`. `lookup` gives a
/// variable's value if it is set (set and empty is `Some("")`).
pub fn expand(value: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find("${") {
        match variable(&rest[at + 2..]) {
            Some((name, default, len)) => {
                out.push_str(&rest[..at]);
                match lookup(name) {
                    Some(v) => out.push_str(&v),
                    None => out.push_str(default.unwrap_or("")),
                }
                rest = &rest[at + 2 + len..];
            }
            None => {
                out.push_str(&rest[..at + 1]);
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// After `${`: `name[:-default]}`. Returns the name, the default and the
/// length consumed (through `}`).
fn variable(s: &str) -> Option<(&str, Option<&str>, usize)> {
    let name_end = s.find(['}', ':']).unwrap_or(s.len());
    let name = &s[..name_end];
    let after = &s[name_end..];
    if after.starts_with('}') {
        return Some((name, None, name_end + 1));
    }
    let default = after.strip_prefix(":-")?;
    let end = default.find('}')?;
    Some((name, Some(&default[..end]), name_end + 2 + end + 1))
}

/// Whether `key` is a portable environment variable name
/// (`[A-Za-z_][A-Za-z0-9_]*`).
pub fn is_portable_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Why [`write`] refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteError {
    /// The key that cannot be written.
    pub key: String,
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} is not a valid variable name (letters, digits and _, not starting with a digit)",
            self.key
        )
    }
}

impl std::error::Error for WriteError {}

/// Writes `KEY=value` lines that [`parse`] and [`resolve`] read back to
/// exactly these values. Keys must be portable names ([`is_portable_key`]).
///
/// Plain values are written bare; values with spaces, `#`, quotes or
/// other special characters in single quotes when that needs no escape;
/// the rest in double quotes with escapes. A value holding `${` always goes
/// in double quotes with each `${` written `${:-$}{`: python-dotenv expands
/// single-quoted values too, and the empty name is never set, so every
/// reader that expands yields `$` and one that does not never sees a `${`
/// it could take for a variable. A final backslash is written `${:-\\}` in
/// double quotes: before a closing quote it would read as an escaped quote.
pub fn write<'a>(
    entries: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<String, WriteError> {
    let mut out = String::new();
    for (key, value) in entries {
        if !is_portable_key(key) {
            return Err(WriteError {
                key: key.to_string(),
            });
        }
        out.push_str(key);
        out.push('=');
        out.push_str(&quote(value));
        out.push('\n');
    }
    Ok(out)
}

/// A value as it should appear after `KEY=`.
pub fn quote(value: &str) -> String {
    let bare = |c: char| c.is_ascii_alphanumeric() || "_-.,/:@+%^~=".contains(c);
    if value.chars().all(bare) {
        return value.to_string();
    }
    let plain = |c: char| !c.is_control() && c != '\'' && c != '\\' && c != '\u{85}';
    // Single quotes hold any character but a carriage return (read as a
    // line break), escaping only `\` and `'`.
    // A backslash just before the closing quote reads as an escaped quote
    // (python-dotenv's pattern), so a value that ends with one goes in
    // double quotes with that backslash written as `${:-\\}` (see below).
    let trailing_backslash = value.ends_with('\\');
    if !trailing_backslash && !value.contains("${") && value.chars().all(plain) {
        let mut s = String::with_capacity(value.len() + 2);
        s.push('\'');
        for c in value.chars() {
            if c == '\\' || c == '\'' {
                s.push('\\');
            }
            s.push(c);
        }
        s.push('\'');
        return s;
    }
    let mut s = String::with_capacity(value.len() + 2);
    s.push('"');
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        // There is no escape for `$`: `${:-$}` (the empty name is never
        // set, so its default) is how a `${` survives expansion.
        if c == '$' && chars.peek() == Some(&'{') {
            s.push_str("${:-$}");
            continue;
        }
        if c == '\\' && trailing_backslash && chars.peek().is_none() {
            s.push_str("${:-\\\\}");
            continue;
        }
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            '\x07' => s.push_str("\\a"),
            '\x08' => s.push_str("\\b"),
            '\x0b' => s.push_str("\\v"),
            '\x0c' => s.push_str("\\f"),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

// ---- the parser ------------------------------------------------------------------

/// A statement failed to parse.
struct Failed;

struct Reader<'a> {
    text: &'a str,
    pos: usize,
}

/// Python's `\s` (str.isspace): Unicode whitespace, plus the four
/// separator controls.
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// `[^\S\r\n]`: whitespace other than a line break.
fn hspace(c: char) -> bool {
    py_space(c) && c != '\r' && c != '\n'
}

impl Reader<'_> {
    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }

    fn has_next(&self) -> bool {
        self.pos < self.text.len()
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    /// Skips characters while `f` holds; returns how many bytes.
    fn skip_while(&mut self, f: impl Fn(char) -> bool) -> usize {
        let n = self
            .rest()
            .char_indices()
            .find(|&(_, c)| !f(c))
            .map_or(self.rest().len(), |(i, _)| i);
        self.pos += n;
        n
    }

    /// `[^\r\n]*(?:\r|\n|\r\n)?` (sic: a lone `\r` is taken first).
    fn rest_of_line(&mut self) {
        self.skip_while(|c| c != '\r' && c != '\n');
        if self.rest().starts_with('\r') || self.rest().starts_with('\n') {
            self.pos += 1;
        }
    }

    /// `(?:export[^\S\r\n]+)?`
    fn export(&mut self) {
        if let Some(after) = self.rest().strip_prefix("export")
            && after.chars().next().is_some_and(hspace)
        {
            self.pos += "export".len();
            self.skip_while(hspace);
        }
    }

    /// `'...'` or `"..."` with `\q` allowed inside: `(?:\\q|[^q])*` then
    /// `q`, with the backtracking of a regular-expression engine (if no
    /// closing quote follows, the last `\q` taken is read as `\` and the
    /// closing quote). Returns the raw content.
    fn quoted(&mut self, q: char) -> Result<String, Failed> {
        let body = &self.rest()[1..];
        let mut i = 0;
        let mut last_escaped_quote = None;
        let bytes = body.as_bytes();
        let close = loop {
            if i >= body.len() {
                break last_escaped_quote.ok_or(Failed)?;
            }
            if bytes[i] == b'\\' && body[i + 1..].starts_with(q) {
                last_escaped_quote = Some(i + 1);
                i += 2;
            } else if body[i..].starts_with(q) {
                break i;
            } else {
                i += body[i..].chars().next().map_or(1, char::len_utf8);
            }
        };
        let content = body[..close].to_string();
        self.pos += 1 + close + 1;
        Ok(content)
    }

    /// `(?:[^\S\r\n]*#[^\r\n]*)?`
    fn comment(&mut self) {
        let save = self.pos;
        self.skip_while(hspace);
        if self.rest().starts_with('#') {
            self.skip_while(|c| c != '\r' && c != '\n');
        } else {
            self.pos = save;
        }
    }

    /// `[^\S\r\n]*(?:\r\n|\n|\r|$)`
    fn end_of_line(&mut self) -> Result<(), Failed> {
        self.skip_while(hspace);
        if self.rest().starts_with("\r\n") {
            self.pos += 2;
        } else if self.rest().starts_with('\n') || self.rest().starts_with('\r') {
            self.pos += 1;
        } else if self.has_next() {
            return Err(Failed);
        }
        Ok(())
    }
}

type Statement = (String, Option<String>, Quote);

/// One statement, or `None` for a comment or trailing whitespace.
fn parse_binding(r: &mut Reader<'_>) -> Result<Option<Statement>, Failed> {
    r.skip_while(py_space);
    if !r.has_next() {
        return Ok(None);
    }
    r.export();
    let key = match r.peek() {
        Some('#') => None,
        Some('\'') => {
            // `'([^']+)'`
            let body = &r.rest()[1..];
            let end = body.find('\'').filter(|&e| e > 0).ok_or(Failed)?;
            let key = body[..end].to_string();
            r.pos += end + 2;
            Some(key)
        }
        _ => {
            // `[^=\#\s]+`
            let start = r.pos;
            if r.skip_while(|c| c != '=' && c != '#' && !py_space(c)) == 0 {
                return Err(Failed);
            }
            Some(r.text[start..r.pos].to_string())
        }
    };
    r.skip_while(hspace);
    let (value, quote) = if r.peek() == Some('=') {
        r.pos += 1;
        r.skip_while(hspace);
        let (v, q) = parse_value(r)?;
        (Some(v), q)
    } else {
        (None, Quote::None)
    };
    r.comment();
    r.end_of_line()?;
    Ok(key.map(|k| (k, value, quote)))
}

fn parse_value(r: &mut Reader<'_>) -> Result<(String, Quote), Failed> {
    match r.peek() {
        Some('\'') => Ok((
            decode(&r.quoted('\'')?, |c| matches!(c, '\\' | '\'').then_some(c)),
            Quote::Single,
        )),
        Some('"') => Ok((decode(&r.quoted('"')?, double_escape), Quote::Double)),
        None | Some('\n' | '\r') => Ok((String::new(), Quote::None)),
        Some(_) => {
            let start = r.pos;
            r.skip_while(|c| c != '\r' && c != '\n');
            Ok((unquoted(&r.text[start..r.pos]), Quote::None))
        }
    }
}

/// `re.sub(r"\s+#.*", "", part).rstrip()`
fn unquoted(part: &str) -> String {
    let mut cut = part.len();
    for (i, c) in part.char_indices() {
        if py_space(c) {
            let run = part[i..]
                .char_indices()
                .find(|&(_, c)| !py_space(c))
                .map(|(j, c)| (i + j, c));
            if matches!(run, Some((_, '#'))) {
                cut = i;
                break;
            }
        }
    }
    part[..cut].trim_end_matches(py_space).to_string()
}

fn double_escape(c: char) -> Option<char> {
    Some(match c {
        '\\' | '\'' | '"' => c,
        'a' => '\x07',
        'b' => '\x08',
        'f' => '\x0c',
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        'v' => '\x0b',
        _ => return None,
    })
}

/// Replaces `\c` by `escape(c)` where that is `Some`, left to right.
fn decode(s: &str, escape: impl Fn(char) -> Option<char>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\'
            && let Some(&next) = chars.peek()
            && let Some(e) = escape(next)
        {
            out.push(e);
            chars.next();
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str) -> Vec<(String, Option<String>)> {
        parse(text).resolve(&|_| None)
    }

    fn check(text: &str, expect: &[(&str, Option<&str>)]) {
        let got = values(text);
        let want: Vec<(String, Option<String>)> = expect
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect();
        assert_eq!(got, want, "parsing {text:?}");
    }

    #[test]
    fn statements() {
        check(
            "A=1\nB = 2 \nexport C=3\n",
            &[("A", Some("1")), ("B", Some("2")), ("C", Some("3"))],
        );
        check("A=\nB\n", &[("A", Some("")), ("B", None)]);
        check(
            "# c\n\n  A=x # c\nB=y#z\n",
            &[("A", Some("x")), ("B", Some("y#z"))],
        );
        check(
            "A='a b' # c\nB=\"c\\nd\"\n",
            &[("A", Some("a b")), ("B", Some("c\nd"))],
        );
        check("A=\"l1\nl2\"\n", &[("A", Some("l1\nl2"))]);
        check("A='x\\'y\\\\z\\n'", &[("A", Some("x'y\\z\\n"))]);
        check("A=1\nA=2\n", &[("A", Some("2"))]);
        check("'k k'=v", &[("k k", Some("v"))]);
        check("export=1", &[("export", Some("1"))]);
        check("A=\"a\\\"", &[("A", Some("a\\"))]);
    }

    #[test]
    fn bad_statements_are_skipped_with_their_line() {
        let p = parse("A=1\nB=\"x\" junk\nC=3\n=4\n");
        let keys: Vec<&str> = p.bindings.iter().map(|b| b.key.as_str()).collect();
        assert_eq!(keys, ["A", "C"]);
        assert_eq!(p.errors, [ParseError { line: 2 }, ParseError { line: 4 }]);
        // An unclosed quote spoils its own line only.
        let p = parse("A=\"never closed\nB=2\n");
        assert_eq!(p.bindings.len(), 1);
        assert_eq!(p.bindings[0].key, "B");
        assert_eq!(p.errors, [ParseError { line: 1 }]);
    }

    #[test]
    fn expansion() {
        let env = |n: &str| (n == "HOME").then(|| "/home/x".to_string());
        let p = parse("A=1\nB=${A}-${HOME}-${NOPE:-d}-${NOPE}\nC='${A}'\nD=\"${B}\"\nE=${A\n");
        let v = p.resolve(&env);
        assert_eq!(v[1].1.as_deref(), Some("1-/home/x-d-"));
        assert_eq!(v[2].1.as_deref(), Some("${A}"));
        assert_eq!(v[3].1.as_deref(), Some("1-/home/x-d-"));
        assert_eq!(v[4].1.as_deref(), Some("${A"));
        // Set but empty stays empty; a bare key counts as set and empty.
        let v = parse("E=\nN\nX=${E:-d}${N:-d}").resolve(&|_| None);
        assert_eq!(v[2].1.as_deref(), Some(""));
    }

    #[test]
    fn written_values_read_back() {
        let cases = [
            "",
            "plain",
            "with space",
            "quote ' single",
            "quote \" double",
            "back\\slash",
            "multi\nline\r\n",
            "tab\tand # hash",
            "${NOT_EXPANDED} and 'q'",
            "$HOME",
            "=",
            "#",
            " lead",
            "trail ",
            "unicode é ☃",
            "\u{85}next line",
            "'",
            "\"",
            "\\",
            "${",
        ];
        for v in cases {
            let text = write([("K", v)]).unwrap();
            let back = parse(&text).resolve(&|_| Some("EXPANDED".into()));
            assert_eq!(back, [("K".to_string(), Some(v.to_string()))], "{text:?}");
        }
        assert!(write([("1BAD", "x")]).is_err());
        assert!(write([("A-B", "x")]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn write_then_read_is_the_identity(values in proptest::collection::vec("(?s).*", 1..8)) {
            let keys: Vec<String> = (0..values.len()).map(|i| format!("K{i}")).collect();
            let text = write(keys.iter().map(String::as_str).zip(values.iter().map(String::as_str))).unwrap();
            let parsed = parse(&text);
            proptest::prop_assert!(parsed.errors.is_empty());
            let back = parsed.resolve(&|_| Some("X".into()));
            let want: Vec<(String, Option<String>)> =
                keys.into_iter().zip(values.into_iter().map(Some)).collect();
            proptest::prop_assert_eq!(back, want);
        }

        #[test]
        fn parsing_never_panics(text in "(?s).*") {
            let _ = parse(&text).resolve(&|_| None);
        }
    }
}
