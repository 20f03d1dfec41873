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

    /// [`Parsed::resolve`], refusing a file whose values grow by more than
    /// `allowance` bytes in all through expansion: `B=${A}${A}...`,
    /// `C=${B}${B}...` grows exponentially, and a file of a few lines would
    /// otherwise exhaust memory. The error names the line where the
    /// allowance ran out.
    pub fn resolve_within(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
        allowance: usize,
    ) -> Result<Vec<(String, Option<String>)>, TooLarge> {
        let raw: usize = self
            .bindings
            .iter()
            .filter_map(|b| b.value.as_ref().map(String::len))
            .sum();
        resolve_limited(&self.bindings, env, raw.saturating_add(allowance))
    }
}

/// How much expansion may add to a file's values (see
/// [`Parsed::resolve_within`]): far more than any environment holds (Linux
/// takes 2 MiB of arguments and environment in all).
pub const EXPANSION_ALLOWANCE: usize = 16 << 20;

/// Expansion made a file's values too large ([`Parsed::resolve_within`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLarge {
    /// The line of the statement whose expansion went over.
    pub line: usize,
}

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {}: expanding ${{...}} makes the values larger than {} MiB",
            self.line,
            EXPANSION_ALLOWANCE >> 20
        )
    }
}

impl std::error::Error for TooLarge {}

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
    resolve_limited(bindings, env, usize::MAX).expect("no limit")
}

/// [`resolve`], stopping once the values produced add up to more than
/// `limit` bytes.
fn resolve_limited(
    bindings: &[Binding],
    env: &dyn Fn(&str) -> Option<String>,
    limit: usize,
) -> Result<Vec<(String, Option<String>)>, TooLarge> {
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut total = 0usize;
    for b in bindings {
        let budget = limit - total;
        let value = match b.value.as_ref() {
            None => None,
            Some(v) if b.quote == Quote::Single => Some(v.clone()),
            Some(v) => Some(
                expand_within(
                    v,
                    &|name| match index.get(name) {
                        Some(&i) => Some(out[i].1.clone().unwrap_or_default()),
                        // No environment has a variable without a name.
                        None if name.is_empty() => None,
                        None => env(name),
                    },
                    budget,
                )
                .ok_or(TooLarge { line: b.line })?,
            ),
        };
        let len = value.as_ref().map_or(0, String::len);
        if len > budget {
            return Err(TooLarge { line: b.line });
        }
        total += len;
        match index.get(&b.key) {
            Some(&i) => out[i].1 = value,
            None => {
                index.insert(b.key.clone(), out.len());
                out.push((b.key.clone(), value));
            }
        }
    }
    Ok(out)
}

/// Expands `${NAME}` and `${NAME:-default}` in `value`. `lookup` gives a
/// variable's value if it is set (set and empty is `Some("")`).
pub fn expand(value: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    expand_within(value, lookup, usize::MAX).expect("no limit")
}

/// [`expand`], or `None` as soon as the result is longer than `max` bytes.
fn expand_within(
    value: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    max: usize,
) -> Option<String> {
    let mut out = String::with_capacity(value.len().min(max));
    let mut rest = value;
    while let Some(at) = rest.find("${") {
        if out.len() > max {
            return None;
        }
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
    (out.len() <= max).then_some(out)
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
    /// Whether it is the value (not the key) that cannot be written
    /// safely ([`portable_value`]).
    pub value: bool,
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.value {
            write!(
                f,
                "the value of {:?} cannot be written so that every dotenv reader reads it as written: \
                 it needs double quotes, where dotenvx expands `$NAME` and `${{...}}`",
                self.key
            )
        } else {
            write!(
                f,
                "{:?} is not a valid variable name (letters, digits and _, not starting with a digit)",
                self.key
            )
        }
    }
}

impl std::error::Error for WriteError {}

/// Writes `KEY=value` lines that [`parse`] and [`resolve`] (and
/// python-dotenv) read back to exactly these values, and that no reader
/// expands or runs anything from. Keys must be portable names
/// ([`is_portable_key`]) and values portable ([`portable_value`]).
///
/// Plain values are written bare; values with spaces, `#`, quotes, `$` or
/// other special characters in single quotes when that reads the same
/// everywhere; the rest in double quotes with escapes (see [`quote`]).
pub fn write<'a>(
    entries: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<String, WriteError> {
    let mut out = String::new();
    for (key, value) in entries {
        if !is_portable_key(key) {
            return Err(WriteError {
                key: key.to_string(),
                value: false,
            });
        }
        if !portable_value(value) {
            return Err(WriteError {
                key: key.to_string(),
                value: true,
            });
        }
        out.push_str(key);
        out.push('=');
        out.push_str(&quote(value));
        out.push('\n');
    }
    Ok(out)
}

/// Whether `value` goes in single quotes: no character that needs an
/// escape (controls, NEL), no `${` (python-dotenv expands it even there),
/// and no backslash before `\\`, `'` or the end (python-dotenv reads those
/// as escapes, dotenvx does not). A `'` is written `\'`, which both read
/// as `'`. Neither python-dotenv nor dotenvx expands `$NAME` or runs
/// `$(...)` in single quotes.
fn single_quotable(value: &str) -> bool {
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_control() || c == '\u{85}' {
            return false;
        }
        if c == '$' && chars.peek() == Some(&'{') {
            return false;
        }
        if c == '\\' && matches!(chars.peek(), None | Some('\\' | '\'')) {
            return false;
        }
    }
    true
}

/// Whether [`write`] can write `value` so that python-dotenv and dotenvx
/// read it without expanding or running anything. In double quotes
/// (needed for line breaks and other controls, `${`, or a backslash
/// before `\\`, `'` or the end) dotenvx expands `$NAME` and `${...}`
/// however they are written (it expands its own expansions again), so a
/// double-quoted value may not hold a `$` before a letter, `_` or `{`.
/// (`$(` is written `${:-$}(`: dotenvx runs `$(...)` before it expands,
/// so it never sees one.)
pub fn portable_value(value: &str) -> bool {
    if value.chars().all(bare) || single_quotable(value) {
        return true;
    }
    let bytes = value.as_bytes();
    !bytes
        .windows(2)
        .any(|w| w[0] == b'$' && (w[1].is_ascii_alphabetic() || w[1] == b'_' || w[1] == b'{'))
}

fn bare(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_-.,/:@+%^~=".contains(c)
}

/// A value as it should appear after `KEY=` (see [`write`]; a value that
/// is not [`portable_value`] is written so that python-dotenv reads it
/// back, dotenvx expanding it).
///
/// In double quotes a `$` before `{` or `(` is written `${:-$}`: the empty
/// name is never set, so its default `$` is what an expanding reader
/// produces, and a reader that runs `$(...)` (dotenvx) does so before it
/// expands. A final backslash is written `${:-\\}` in double quotes:
/// before a closing quote it would read as an escaped quote.
pub fn quote(value: &str) -> String {
    if value.chars().all(bare) {
        return value.to_string();
    }
    if single_quotable(value) {
        let mut s = String::with_capacity(value.len() + 2);
        s.push('\'');
        for c in value.chars() {
            if c == '\'' {
                s.push('\\');
            }
            s.push(c);
        }
        s.push('\'');
        return s;
    }
    let trailing_backslash = value.ends_with('\\');
    let mut s = String::with_capacity(value.len() + 2);
    s.push('"');
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        // There is no escape for `$`: `${:-$}` (the empty name is never
        // set, so its default) is how a `${` or `$(` survives.
        if c == '$' && matches!(chars.peek(), Some('{' | '(')) {
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
            "$HOME",
            "it's $(touch pwned) `id` $HOME",
            "a\\b",
            "multi\n$(touch pwned) $1 $",
            "=",
            "#",
            " lead",
            "trail ",
            "unicode é ☃",
            "\u{85}next line",
            "'",
            "\"",
            "\\",
        ];
        for v in cases {
            let text = write([("K", v)]).unwrap();
            let back = parse(&text).resolve(&|_| Some("EXPANDED".into()));
            assert_eq!(back, [("K".to_string(), Some(v.to_string()))], "{text:?}");
        }
        assert!(write([("1BAD", "x")]).is_err());
        assert!(write([("A-B", "x")]).is_err());
    }

    /// What dotenvx would run or expand in a line `write` wrote: a `$(`,
    /// or a `$` before a letter, `_` or `{`, outside single quotes (the
    /// `${:-$}` and `${:-\\}` forms excepted: dotenvx runs commands before
    /// it expands, and those expand to no name).
    fn dotenvx_would_act_on(line: &str) -> bool {
        let value = &line[line.find('=').unwrap() + 1..];
        if value.starts_with('\'') {
            return false;
        }
        let cleaned = value.replace("${:-$}", "").replace("${:-\\\\}", "");
        let b = cleaned.as_bytes();
        b.windows(2)
            .any(|w| w[0] == b'$' && (w[1].is_ascii_alphabetic() || b"_{(".contains(&w[1])))
    }

    #[test]
    fn dotenv_export_value_injection_into_dotenvx() {
        // A value a colleague wrote runs a command in a dotenvx reader if
        // it is written where dotenvx evaluates: outside single quotes.
        for v in [
            "it's $(touch pwned)",
            "x\n$(touch pwned)",
            "$HOME'",
            "a\\ $(id)",
            "`id`'",
            "tab\t$(id)",
        ] {
            let text = write([("K", v)]).unwrap();
            assert!(!dotenvx_would_act_on(text.trim_end()), "{text:?}");
            let back = parse(&text).resolve(&|_| Some("EXPANDED".into()));
            assert_eq!(back, [("K".to_string(), Some(v.to_string()))], "{text:?}");
        }
        // Values that need double quotes and hold `$NAME` or `${`: no form
        // reads the same in python-dotenv and dotenvx without expanding.
        for v in [
            "${HOME}",
            "${",
            "x\n$HOME",
            "a\\\\ $HOME",
            "ends\\",
            "${NOT_EXPANDED} and 'q'",
        ] {
            if portable_value(v) {
                let text = write([("K", v)]).unwrap();
                assert!(!dotenvx_would_act_on(text.trim_end()), "{text:?}");
            } else {
                let e = write([("K", v)]).unwrap_err();
                assert!(e.value, "{v:?}");
                assert!(
                    v.len() < 4 || !e.to_string().contains(v),
                    "the message names no value"
                );
            }
        }
        assert!(portable_value("ends\\"));
        assert!(!portable_value("${HOME}"));
        assert!(!portable_value("x\n$HOME"));
    }

    #[test]
    fn dotenv_expansion_bomb_is_refused() {
        // Five short lines: a hundred copies of a hundred copies of ...
        let mut text = format!("A={}\n", "x".repeat(100));
        let mut prev = 'A';
        for name in ['B', 'C', 'D', 'E'] {
            text.push_str(&format!("{name}={}\n", format!("${{{prev}}}").repeat(100)));
            prev = name;
        }
        let parsed = parse(&text);
        assert_eq!(
            parsed.resolve_within(&|_| None, 1 << 20),
            Err(TooLarge { line: 4 })
        );
        // From the environment, too.
        let big = "y".repeat(1 << 20);
        let parsed = parse("A=${BIG}${BIG}");
        assert!(
            parsed
                .resolve_within(&|_| Some(big.clone()), 1 << 20)
                .is_err()
        );
        // Within the allowance: as resolve.
        // (6 + 8 bytes written, 6 + 12 produced.)
        let parsed = parse("A=abcdef\nB=${A}${A}");
        assert_eq!(
            parsed.resolve_within(&|_| None, 4).unwrap(),
            parsed.resolve(&|_| None)
        );
        assert_eq!(
            parsed.resolve_within(&|_| None, 3),
            Err(TooLarge { line: 2 })
        );
    }

    proptest::proptest! {
        #[test]
        fn write_then_read_is_the_identity(values in proptest::collection::vec("(?s).*", 1..8)) {
            let values: Vec<String> = values.into_iter().filter(|v| portable_value(v)).collect();
            let keys: Vec<String> = (0..values.len()).map(|i| format!("K{i}")).collect();
            let text = write(keys.iter().map(String::as_str).zip(values.iter().map(String::as_str))).unwrap();
            let parsed = parse(&text);
            proptest::prop_assert!(parsed.errors.is_empty());
            for line in text.lines().filter(|l| l.starts_with('K')) {
                proptest::prop_assert!(!dotenvx_would_act_on(line), "{line:?}");
            }
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
