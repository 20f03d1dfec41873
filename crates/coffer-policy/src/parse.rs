//! The policy-source lexer and parser.
//!
//! The lexer is pulled one token at a time by the parser, so the first problem in
//! reading order is the one reported (`path app/dev {` reports the missing quotes at
//! `app`, not the `/` after it). Positions are 1-based lines and columns, counting
//! Unicode characters.

use std::collections::HashMap;

use crate::pattern::{Pattern, PatternFault, quote, quote_char};
use crate::{Capabilities, Capability, PolicyError, Rule};

/// The largest policy source accepted, in bytes (64 KiB).
pub(crate) const MAX_SOURCE_BYTES: usize = 64 * 1024;
/// The most distinct path patterns one policy may have.
pub(crate) const MAX_RULES: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok<'a> {
    Ident(&'a str),
    /// A string's contents, without the quotes.
    Str(&'a str),
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    Equals,
    Comma,
    Eof,
}

#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    tok: Tok<'a>,
    line: usize,
    column: usize,
}

impl Token<'_> {
    fn error(&self, message: impl Into<String>) -> PolicyError {
        PolicyError {
            line: self.line,
            column: self.column,
            message: message.into(),
        }
    }

    /// How the token is named in "found ..." messages.
    fn describe(&self) -> String {
        match self.tok {
            // Like `quote`: a word shaped like a token is not repeated, and a
            // long one is cut.
            Tok::Ident(word) if crate::pattern::contains_credential(word) => {
                "a word (not shown: it contains what looks like a coffer token)".to_owned()
            }
            Tok::Ident(word) if word.chars().count() > 64 => {
                format!("`{}…`", word.chars().take(64).collect::<String>())
            }
            Tok::Ident(word) => format!("`{word}`"),
            Tok::Str(s) => format!("the string {}", quote(s)),
            Tok::LBrace => "`{`".to_owned(),
            Tok::RBrace => "`}`".to_owned(),
            Tok::LBracket => "`[`".to_owned(),
            Tok::RBracket => "`]`".to_owned(),
            Tok::Equals => "`=`".to_owned(),
            Tok::Comma => "`,`".to_owned(),
            Tok::Eof => "the end of the policy".to_owned(),
        }
    }
}

struct Lexer<'a> {
    src: &'a str,
    /// Byte offset of the next character.
    pos: usize,
    line: usize,
    column: usize,
}

impl<'a> Lexer<'a> {
    fn new(src: &'a str) -> Self {
        // Editors on some systems write a byte-order mark; it is not part of the text.
        let pos = if src.starts_with('\u{feff}') { 3 } else { 0 };
        Lexer {
            src,
            pos,
            line: 1,
            column: 1,
        }
    }

    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn peek_second(&self) -> Option<char> {
        self.src[self.pos..].chars().nth(1)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }

    fn error_here(&self, message: impl Into<String>) -> PolicyError {
        PolicyError {
            line: self.line,
            column: self.column,
            message: message.into(),
        }
    }

    /// Skips whitespace and `#` / `//` comments.
    fn skip_trivia(&mut self) {
        loop {
            match self.peek() {
                Some(' ' | '\t' | '\r' | '\n') => {
                    self.bump();
                }
                Some('#') => self.skip_line(),
                Some('/') if self.peek_second() == Some('/') => self.skip_line(),
                _ => return,
            }
        }
    }

    fn skip_line(&mut self) {
        while let Some(c) = self.peek() {
            if c == '\n' {
                return;
            }
            self.bump();
        }
    }

    fn next_token(&mut self) -> Result<Token<'a>, PolicyError> {
        self.skip_trivia();
        let (line, column) = (self.line, self.column);
        let token = |tok| Token { tok, line, column };
        let Some(c) = self.peek() else {
            return Ok(token(Tok::Eof));
        };
        let single = match c {
            '{' => Some(Tok::LBrace),
            '}' => Some(Tok::RBrace),
            '[' => Some(Tok::LBracket),
            ']' => Some(Tok::RBracket),
            '=' => Some(Tok::Equals),
            ',' => Some(Tok::Comma),
            _ => None,
        };
        if let Some(tok) = single {
            self.bump();
            return Ok(token(tok));
        }
        if c == '"' {
            return self.string().map(token);
        }
        if is_ident_char(c) {
            let start = self.pos;
            while self.peek().is_some_and(is_ident_char) {
                self.bump();
            }
            return Ok(token(Tok::Ident(&self.src[start..self.pos])));
        }
        if c == '/' && self.peek_second() == Some('*') {
            return Err(self.error_here(
                "block comments (`/* */`) are not supported; use `#` or `//` comments",
            ));
        }
        Err(self.error_here(format!("unexpected character {}", quote_char(c))))
    }

    /// Reads a string whose opening quote is the next character.
    fn string(&mut self) -> Result<Tok<'a>, PolicyError> {
        let (line, column) = (self.line, self.column);
        self.bump();
        let start = self.pos;
        loop {
            match self.peek() {
                None | Some('\n') => {
                    return Err(PolicyError {
                        line,
                        column,
                        message: "unterminated string: a string must end with `\"` on the line where it starts"
                            .to_owned(),
                    });
                }
                Some('"') => {
                    let contents = &self.src[start..self.pos];
                    self.bump();
                    return Ok(Tok::Str(contents));
                }
                Some('\\') => {
                    return Err(self.error_here(
                        "backslash in a string: escapes are not supported, and no pattern or capability needs one",
                    ));
                }
                Some(c) if c.is_control() => {
                    return Err(self.error_here(format!(
                        "control character U+{:04X} is not allowed in a string",
                        u32::from(c)
                    )));
                }
                Some(_) => {
                    self.bump();
                }
            }
        }
    }
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Parses a whole policy into its rules, merging blocks with the same pattern.
pub(crate) fn parse_rules(source: &str, stored: bool) -> Result<Vec<Rule>, PolicyError> {
    let mut rules: Vec<Rule> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    parse_blocks(
        source,
        |pattern_source| Pattern::parse_located(pattern_source, !stored),
        parse_capability,
        |pattern: Pattern, names: Vec<Capability>, at| {
            let capabilities: Capabilities = names.into_iter().collect();
            if let Some(&existing) = index.get(pattern.as_str()) {
                let rule = &mut rules[existing];
                rule.capabilities = rule.capabilities.union(capabilities);
            } else {
                if rules.len() == MAX_RULES {
                    return Err(at.error(format!(
                        "too many rules: a policy may have at most {MAX_RULES} distinct path patterns"
                    )));
                }
                index.insert(pattern.as_str().to_owned(), rules.len());
                rules.push(Rule {
                    pattern,
                    capabilities,
                });
            }
            Ok(())
        },
    )?;
    Ok(rules)
}

/// Where a block starts: the line and column of its `path` keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockStart {
    pub(crate) line: usize,
    pub(crate) column: usize,
}

impl BlockStart {
    pub(crate) fn error(&self, message: impl Into<String>) -> PolicyError {
        PolicyError {
            line: self.line,
            column: self.column,
            message: message.into(),
        }
    }
}

/// Reads `path "PATTERN" { capabilities = [...] }` blocks, in order, handing
/// each pattern string to `pattern` and each capability name to
/// `capability` as it is read (so the first problem in reading order is the
/// one reported), and each whole block to `block`. Both the coffer language
/// and the Vault translation (`crate::vault`) parse with it, so they share
/// one lexer and its refusals.
pub(crate) fn parse_blocks<P, C>(
    source: &str,
    mut pattern: impl FnMut(&str) -> Result<P, PatternFault>,
    mut capability: impl FnMut(&str) -> Result<C, String>,
    mut block: impl FnMut(P, Vec<C>, BlockStart) -> Result<(), PolicyError>,
) -> Result<(), PolicyError>
where
    P: PatternText,
{
    if source.len() > MAX_SOURCE_BYTES {
        return Err(PolicyError {
            line: 1,
            column: 1,
            message: format!(
                "policy is {} bytes; the limit is {MAX_SOURCE_BYTES} bytes (64 KiB)",
                source.len()
            ),
        });
    }
    let mut lexer = Lexer::new(source);
    loop {
        let keyword = lexer.next_token()?;
        match keyword.tok {
            Tok::Eof => return Ok(()),
            Tok::Ident("path") => {}
            Tok::Ident(other) => {
                return Err(keyword.error(format!(
                    "unknown keyword {}; a policy contains only `path \"PATTERN\" {{ capabilities = [...] }}` blocks",
                    quote(other)
                )));
            }
            _ => {
                return Err(keyword.error(format!("expected `path`, found {}", keyword.describe())));
            }
        }

        let pattern_token = lexer.next_token()?;
        let Tok::Str(pattern_source) = pattern_token.tok else {
            return Err(pattern_token.error(format!(
                "expected a quoted pattern after `path` (like `path \"app/dev/*\"`), found {}",
                pattern_token.describe()
            )));
        };
        let pattern = pattern(pattern_source).map_err(|fault| PolicyError {
            line: pattern_token.line,
            // The string is on one line and has no escapes, so its characters map one
            // to one onto the source; `+ 1` skips the opening quote.
            column: pattern_token.column + 1 + pattern_source[..fault.offset].chars().count(),
            message: fault.message,
        })?;

        let open = lexer.next_token()?;
        if open.tok != Tok::LBrace {
            return Err(open.error(format!(
                "expected `{{` after the pattern {}, found {}",
                quote(pattern.text()),
                open.describe()
            )));
        }

        let mut capabilities: Option<Vec<C>> = None;
        loop {
            let key = lexer.next_token()?;
            match key.tok {
                Tok::RBrace => break,
                Tok::Ident("capabilities") => {
                    if capabilities.is_some() {
                        return Err(key.error("`capabilities` is set twice in this block"));
                    }
                    let equals = lexer.next_token()?;
                    if equals.tok != Tok::Equals {
                        return Err(equals.error(format!(
                            "expected `=` after `capabilities`, found {}",
                            equals.describe()
                        )));
                    }
                    capabilities = Some(parse_list(&mut lexer, &mut capability)?);
                }
                Tok::Ident(other) => {
                    return Err(key.error(format!(
                        "unknown key {} in a path block; only `capabilities` is supported",
                        quote(other)
                    )));
                }
                Tok::Eof => {
                    return Err(key.error(format!(
                        "missing `}}` to close the block for {} opened at line {}, column {}",
                        quote(pattern.text()),
                        open.line,
                        open.column
                    )));
                }
                _ => {
                    return Err(key.error(format!(
                        "expected `capabilities` or `}}`, found {}",
                        key.describe()
                    )));
                }
            }
        }
        let Some(capabilities) = capabilities else {
            return Err(keyword.error(format!(
                "the block for {} has no `capabilities = [...]`",
                quote(pattern.text())
            )));
        };
        block(
            pattern,
            capabilities,
            BlockStart {
                line: keyword.line,
                column: keyword.column,
            },
        )?;
    }
}

/// The text a parsed pattern is named by in messages.
pub(crate) trait PatternText {
    fn text(&self) -> &str;
}

impl PatternText for Pattern {
    fn text(&self) -> &str {
        self.as_str()
    }
}

/// Parses `[ "cap", ... ]` (a trailing comma is allowed; empty is an error).
fn parse_list<C>(
    lexer: &mut Lexer<'_>,
    capability: &mut impl FnMut(&str) -> Result<C, String>,
) -> Result<Vec<C>, PolicyError> {
    let open = lexer.next_token()?;
    if open.tok != Tok::LBracket {
        return Err(open.error(format!(
            "expected `[` after `capabilities =`, found {}",
            open.describe()
        )));
    }
    let mut set = Vec::new();
    loop {
        let item = lexer.next_token()?;
        match item.tok {
            Tok::RBracket => break,
            Tok::Str(name) => {
                set.push(capability(name).map_err(|message| item.error(message))?);
            }
            Tok::Ident(_) => {
                // `describe`, not the word itself: it may be a token.
                return Err(item.error(format!(
                    "expected a quoted capability name (like \"read\"), found {}",
                    item.describe()
                )));
            }
            _ => {
                return Err(item.error(format!(
                    "expected a quoted capability name or `]`, found {}",
                    item.describe()
                )));
            }
        }
        let separator = lexer.next_token()?;
        match separator.tok {
            Tok::Comma => {}
            Tok::RBracket => break,
            _ => {
                return Err(separator.error(format!(
                    "expected `,` or `]` after a capability, found {}",
                    separator.describe()
                )));
            }
        }
    }
    if set.is_empty() {
        return Err(open.error(
            "empty capabilities list; name at least one capability (use [\"deny\"] to forbid access)",
        ));
    }
    Ok(set)
}

fn parse_capability(name: &str) -> Result<Capability, String> {
    if let Some(c) = Capability::parse(name) {
        return Ok(c);
    }
    let valid: Vec<&str> = Capability::ALL.iter().map(|c| c.name()).collect();
    let hint = match name.to_ascii_lowercase() {
        lower if Capability::parse(&lower).is_some() => {
            format!(" (capability names are lowercase: {lower:?})")
        }
        _ => String::new(),
    };
    Err(format!(
        "unknown capability {}; expected one of {}{hint}",
        quote(name),
        valid.join(", ")
    ))
}
