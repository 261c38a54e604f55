//! Splits query text into tokens, each with the character position it starts at.

use super::QueryError;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Token {
    /// A bare word: a field name, a keyword (`and`, `in`, …) or an unquoted value (`finished`, `tag-07`).
    Word(String),
    /// `config.<key>` or `summary.<key>`.
    KeyField {
        summary: bool,
        key: String,
    },
    /// A number as written, with its value.
    Number(f64),
    /// A number with a time unit (`7d`, `-90m`, `1.5h`), in milliseconds.
    Duration(i64),
    String(String),
    Regex(String),
    Cmp(super::Cmp),
    /// `~`, or `!~` when `negated`.
    Tilde {
        negated: bool,
    },
    LParen,
    RParen,
    Comma,
    End,
}

impl Token {
    /// How the token is named in "expected …, found …" messages.
    pub(super) fn describe(&self) -> String {
        match self {
            Token::Word(word) => format!("`{word}`"),
            Token::KeyField { summary, key } => {
                format!("`{}.{key}`", if *summary { "summary" } else { "config" })
            }
            Token::Number(n) => format!("the number {n}"),
            Token::Duration(_) => "a duration".to_owned(),
            Token::String(_) => "a string".to_owned(),
            Token::Regex(_) => "a regular expression".to_owned(),
            Token::Cmp(op) => format!("`{}`", op.as_str()),
            Token::Tilde { negated } => if *negated { "`!~`" } else { "`~`" }.to_owned(),
            Token::LParen => "`(`".to_owned(),
            Token::RParen => "`)`".to_owned(),
            Token::Comma => "`,`".to_owned(),
            Token::End => "the end of the query".to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Spanned {
    pub token: Token,
    /// Character offset of the token's first character.
    pub position: usize,
    /// The token's text as written (for values used as strings, e.g. `name = 42`).
    pub text: String,
}

fn is_word_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Characters of an unquoted key path after `config.` / `summary.`; `.` separates nested keys.
pub(super) fn is_bare_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '/' | '.')
}

/// Milliseconds per time unit suffix.
fn unit_millis(unit: &str) -> Option<f64> {
    Some(match unit {
        "ms" => 1.0,
        "s" => 1_000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        "w" => 604_800_000.0,
        _ => return None,
    })
}

pub(super) fn tokenize(text: &str) -> Result<Vec<Spanned>, QueryError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let token = match c {
            '(' => {
                i += 1;
                Token::LParen
            }
            ')' => {
                i += 1;
                Token::RParen
            }
            ',' => {
                i += 1;
                Token::Comma
            }
            '~' => {
                i += 1;
                Token::Tilde { negated: false }
            }
            '=' => {
                i += if chars.get(i + 1) == Some(&'=') { 2 } else { 1 };
                Token::Cmp(super::Cmp::Eq)
            }
            '!' => match chars.get(i + 1) {
                Some('=') => {
                    i += 2;
                    Token::Cmp(super::Cmp::Ne)
                }
                Some('~') => {
                    i += 2;
                    Token::Tilde { negated: true }
                }
                _ => return Err(QueryError::new(start, "expected `!=` or `!~` after `!`")),
            },
            '<' => match chars.get(i + 1) {
                Some('=') => {
                    i += 2;
                    Token::Cmp(super::Cmp::Le)
                }
                Some('>') => {
                    i += 2;
                    Token::Cmp(super::Cmp::Ne)
                }
                _ => {
                    i += 1;
                    Token::Cmp(super::Cmp::Lt)
                }
            },
            '>' => {
                if chars.get(i + 1) == Some(&'=') {
                    i += 2;
                    Token::Cmp(super::Cmp::Ge)
                } else {
                    i += 1;
                    Token::Cmp(super::Cmp::Gt)
                }
            }
            '"' | '\'' => {
                let (value, next) = quoted(&chars, i)?;
                i = next;
                Token::String(value)
            }
            '/' => {
                let (value, next) = regex(&chars, i)?;
                i = next;
                Token::Regex(value)
            }
            c if c.is_ascii_digit()
                || ((c == '-' || c == '+' || c == '.')
                    && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit() || *d == '.')) =>
            {
                let (token, next) = number(&chars, i)?;
                i = next;
                token
            }
            c if is_word_start(c) => {
                while i < chars.len() && is_word_char(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if (word == "config" || word == "summary") && chars.get(i) == Some(&'.') {
                    let (key, next) = key_path(&chars, i + 1)?;
                    i = next;
                    Token::KeyField { summary: word == "summary", key }
                } else {
                    // A bare value may go on with `-`, `.` and `/`: `tag-07`, `v1.2`, `a/b`.
                    while i < chars.len() && (is_word_char(chars[i]) || matches!(chars[i], '-' | '.' | '/')) {
                        i += 1;
                    }
                    Token::Word(chars[start..i].iter().collect())
                }
            }
            other => return Err(QueryError::new(start, format!("unexpected character `{other}`"))),
        };
        tokens.push(Spanned { token, position: start, text: chars[start..i].iter().collect() });
    }
    tokens.push(Spanned { token: Token::End, position: chars.len(), text: String::new() });
    Ok(tokens)
}

/// A quoted string starting at `start` (either quote); `\` escapes the quote, `\`, and `n`, `t`, `r`.
fn quoted(chars: &[char], start: usize) -> Result<(String, usize), QueryError> {
    let quote = chars[start];
    let mut value = String::new();
    let mut i = start + 1;
    loop {
        match chars.get(i) {
            None => return Err(QueryError::new(start, format!("unterminated string: expected a closing {quote}"))),
            Some(&c) if c == quote => return Ok((value, i + 1)),
            Some('\\') => {
                let escaped = match chars.get(i + 1) {
                    Some('n') => '\n',
                    Some('t') => '\t',
                    Some('r') => '\r',
                    Some(&c @ ('\\' | '"' | '\'')) => c,
                    Some(other) => {
                        return Err(QueryError::new(
                            i,
                            format!("unknown escape `\\{other}`: expected \\\\, \\\", \\', \\n, \\t or \\r"),
                        ))
                    }
                    None => return Err(QueryError::new(start, "unterminated string")),
                };
                value.push(escaped);
                i += 2;
            }
            Some(&c) => {
                value.push(c);
                i += 1;
            }
        }
    }
}

/// `/…/`: `\/` stands for `/`; every other backslash sequence is kept for the regex engine.
fn regex(chars: &[char], start: usize) -> Result<(String, usize), QueryError> {
    let mut value = String::new();
    let mut i = start + 1;
    loop {
        match chars.get(i) {
            None => return Err(QueryError::new(start, "unterminated regular expression: expected a closing /")),
            Some('/') => return Ok((value, i + 1)),
            Some('\\') if chars.get(i + 1) == Some(&'/') => {
                value.push('/');
                i += 2;
            }
            Some('\\') => {
                value.push('\\');
                if let Some(&next) = chars.get(i + 1) {
                    value.push(next);
                }
                i += 2;
            }
            Some(&c) => {
                value.push(c);
                i += 1;
            }
        }
    }
}

/// A number, or a duration when a time unit follows at once (`7d`, `-1.5h`).
fn number(chars: &[char], start: usize) -> Result<(Token, usize), QueryError> {
    let mut i = start;
    if matches!(chars[i], '-' | '+') {
        i += 1;
    }
    while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
        i += 1;
    }
    if i < chars.len() && matches!(chars[i], 'e' | 'E') {
        let mut j = i + 1;
        if j < chars.len() && matches!(chars[j], '-' | '+') {
            j += 1;
        }
        if j < chars.len() && chars[j].is_ascii_digit() {
            while j < chars.len() && chars[j].is_ascii_digit() {
                j += 1;
            }
            i = j;
        }
    }
    let literal: String = chars[start..i].iter().collect();
    let value: f64 = literal.parse().map_err(|_| QueryError::new(start, format!("`{literal}` is not a number")))?;
    if !value.is_finite() {
        return Err(QueryError::new(start, format!("`{literal}` is out of range for a number")));
    }
    let unit_end = (i..chars.len()).find(|&j| !chars[j].is_ascii_alphabetic()).unwrap_or(chars.len());
    if unit_end == i {
        return Ok((Token::Number(value), i));
    }
    let unit: String = chars[i..unit_end].iter().collect();
    let Some(millis) = unit_millis(&unit) else {
        return Err(QueryError::new(
            i,
            format!("unknown unit `{unit}` after `{literal}`: expected ms, s, m, h, d or w (or a space)"),
        ));
    };
    let total = value * millis;
    if total.abs() >= 9.2e18 {
        return Err(QueryError::new(start, format!("the duration `{literal}{unit}` is out of range")));
    }
    Ok((Token::Duration(total.round() as i64), unit_end))
}

/// The key after `config.` / `summary.`: bare characters and quoted segments, until anything else.
fn key_path(chars: &[char], start: usize) -> Result<(String, usize), QueryError> {
    let mut key = String::new();
    let mut i = start;
    loop {
        match chars.get(i) {
            Some('"' | '\'') => {
                let (segment, next) = quoted(chars, i)?;
                key.push_str(&segment);
                i = next;
            }
            Some(&c) if is_bare_key_char(c) => {
                key.push(c);
                i += 1;
            }
            _ => break,
        }
    }
    if key.is_empty() {
        let prefix: String = chars[..start].iter().rev().take_while(|c| is_word_char(**c) || **c == '.').collect();
        let prefix: String = prefix.chars().rev().collect();
        return Err(QueryError::new(start, format!("expected a key after `{prefix}` (quote it if it has spaces)")));
    }
    Ok((key, i))
}
