//! Recursive descent over the tokens: `or` binds loosest, then `and`, then `not`, then one condition.

use chrono::{DateTime, NaiveDate, NaiveDateTime};

use super::lexer::{tokenize, Spanned, Token};
use super::{
    Cmp, Expr, Field, FieldKind, Pattern, QueryError, SortKey, TimeValue, Value, BUILT_IN_FIELDS, QUERY_MAX_BYTES,
    QUERY_MAX_DEPTH, QUERY_MAX_IN_VALUES,
};
use crate::model::RunState;

/// Parses a query. An empty (or all-whitespace) query is `None`: it matches every run.
pub fn parse(text: &str) -> Result<Option<Expr>, QueryError> {
    if text.len() > QUERY_MAX_BYTES {
        return Err(QueryError::new(0, format!("the query is {} bytes; the limit is {QUERY_MAX_BYTES}", text.len())));
    }
    let tokens = tokenize(text)?;
    if tokens.len() == 1 {
        return Ok(None);
    }
    let mut parser = Parser { tokens, next: 0, depth: 0 };
    let expr = parser.or()?;
    let trailing = parser.peek();
    if trailing.token != Token::End {
        return Err(QueryError::new(
            trailing.position,
            format!("expected `and`, `or` or the end of the query, found {}", trailing.token.describe()),
        ));
    }
    Ok(Some(expr))
}

/// The most keys one sort order may have.
pub const ORDER_MAX_KEYS: usize = 8;

/// Parses a sort order: fields separated by commas, each optionally prefixed by `-` (descending) or `+`, e.g.
/// `-summary.val/acc,config.lr`. An empty text is an empty order (the store's default).
pub fn parse_order(text: &str) -> Result<Vec<SortKey>, QueryError> {
    if text.len() > QUERY_MAX_BYTES {
        return Err(QueryError::new(0, format!("the order is {} bytes; the limit is {QUERY_MAX_BYTES}", text.len())));
    }
    let chars: Vec<char> = text.chars().collect();
    let mut pieces = Vec::new();
    let (mut start, mut quote) = (0, None);
    for (i, c) in chars.iter().enumerate() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(*c),
            (Some(q), c) if *c == q => quote = None,
            (None, ',') => {
                pieces.push((start, i));
                start = i + 1;
            }
            _ => {}
        }
    }
    pieces.push((start, chars.len()));
    if pieces.len() == 1 && chars.iter().all(|c| c.is_whitespace()) {
        return Ok(Vec::new());
    }
    let mut keys = Vec::new();
    for (start, end) in pieces {
        if keys.len() == ORDER_MAX_KEYS {
            return Err(QueryError::new(start, format!("more than {ORDER_MAX_KEYS} sort keys")));
        }
        let mut begin = start;
        while begin < end && chars[begin].is_whitespace() {
            begin += 1;
        }
        let descending = chars.get(begin) == Some(&'-');
        if begin < end && matches!(chars[begin], '-' | '+') {
            begin += 1;
        }
        let piece: String = chars[begin..end].iter().collect();
        let mut tokens = tokenize(&piece).map_err(|e| QueryError::new(e.position + begin, e.message))?;
        for token in &mut tokens {
            token.position += begin;
        }
        let mut parser = Parser { tokens, next: 0, depth: 0 };
        if parser.peek().token == Token::End {
            return Err(parser.error_here("a field to sort by"));
        }
        let position = parser.peek().position;
        let field = parser.field()?;
        if parser.peek().token != Token::End {
            return Err(parser.error_here("`,` or the end of the order"));
        }
        if matches!(field, Field::Tags | Field::Runtime) {
            return Err(QueryError::new(position, format!("runs cannot be sorted by {field}")));
        }
        keys.push(SortKey { field, descending });
    }
    Ok(keys)
}

/// Parses one field name (`config.lr`, `summary."odd key"`, `group`).
pub fn parse_field(text: &str) -> Result<Field, QueryError> {
    let tokens = tokenize(text)?;
    let mut parser = Parser { tokens, next: 0, depth: 0 };
    let field = parser.field()?;
    if parser.peek().token != Token::End {
        return Err(parser.error_here("the end of the field name"));
    }
    Ok(field)
}

struct Parser {
    tokens: Vec<Spanned>,
    next: usize,
    depth: usize,
}

fn is_keyword(token: &Token, keyword: &str) -> bool {
    matches!(token, Token::Word(word) if word.eq_ignore_ascii_case(keyword))
}

const STATES: &str = "running, finished, failed, crashed or killed";

impl Parser {
    fn peek(&self) -> &Spanned {
        &self.tokens[self.next]
    }

    fn advance(&mut self) -> Spanned {
        let token = self.tokens[self.next].clone();
        if token.token != Token::End {
            self.next += 1;
        }
        token
    }

    fn eat_keyword(&mut self, keyword: &str) -> bool {
        if is_keyword(&self.peek().token, keyword) {
            self.next += 1;
            true
        } else {
            false
        }
    }

    fn error_here(&self, expected: &str) -> QueryError {
        let found = self.peek();
        QueryError::new(found.position, format!("expected {expected}, found {}", found.token.describe()))
    }

    fn nest(&mut self) -> Result<(), QueryError> {
        self.depth += 1;
        if self.depth > QUERY_MAX_DEPTH {
            return Err(QueryError::new(self.peek().position, format!("nested deeper than {QUERY_MAX_DEPTH} levels")));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, QueryError> {
        let mut operands = vec![self.and()?];
        while self.eat_keyword("or") {
            operands.push(self.and()?);
        }
        Ok(if operands.len() == 1 { operands.pop().expect("one operand") } else { Expr::Or(operands) })
    }

    fn and(&mut self) -> Result<Expr, QueryError> {
        let mut operands = vec![self.not()?];
        while self.eat_keyword("and") {
            operands.push(self.not()?);
        }
        Ok(if operands.len() == 1 { operands.pop().expect("one operand") } else { Expr::And(operands) })
    }

    fn not(&mut self) -> Result<Expr, QueryError> {
        if self.eat_keyword("not") {
            self.nest()?;
            let inner = self.not()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        if self.peek().token == Token::LParen {
            self.advance();
            self.nest()?;
            let inner = self.or()?;
            self.depth -= 1;
            if self.peek().token != Token::RParen {
                return Err(self.error_here("`)`, `and` or `or`"));
            }
            self.advance();
            return Ok(inner);
        }
        self.condition()
    }

    fn field(&mut self) -> Result<Field, QueryError> {
        let spanned = self.advance();
        match spanned.token {
            Token::KeyField { summary: true, key } => Ok(Field::Summary(key)),
            Token::KeyField { summary: false, key } => Ok(Field::Config(key)),
            Token::Word(word) => {
                if let Some((_, field)) = BUILT_IN_FIELDS.iter().find(|(name, _)| *name == word) {
                    return Ok(field.clone());
                }
                let hint = if word == "config" || word == "summary" {
                    format!("`{word}` needs a key: `{word}.<key>`")
                } else {
                    format!(
                        "unknown field `{word}`: expected config.<key>, summary.<key> or one of {} \
                         (did you mean config.{word} or summary.{word}?)",
                        BUILT_IN_FIELDS.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(", ")
                    )
                };
                Err(QueryError::new(spanned.position, hint))
            }
            other => Err(QueryError::new(
                spanned.position,
                format!(
                    "expected a field (config.<key>, summary.<key>, name, state, tags, …), found {}",
                    other.describe()
                ),
            )),
        }
    }

    fn condition(&mut self) -> Result<Expr, QueryError> {
        let field_position = self.peek().position;
        let field = self.field()?;
        let kind = field.kind();
        let operator = self.peek().clone();
        match &operator.token {
            Token::Cmp(op) => {
                let op = *op;
                self.advance();
                match (kind, op) {
                    (FieldKind::Tags, _) => {
                        return Err(QueryError::new(
                            operator.position,
                            "tags are compared with `contains`, `in (…)`, `~` or `exists`",
                        ))
                    }
                    (FieldKind::State, Cmp::Lt | Cmp::Le | Cmp::Gt | Cmp::Ge) => {
                        return Err(QueryError::new(operator.position, "state is compared with `=`, `!=` or `in (…)`"))
                    }
                    _ => {}
                }
                let value = self.value(&field, op)?;
                Ok(Expr::Compare { field, op, value })
            }
            Token::Tilde { negated } => {
                let negated = *negated;
                self.advance();
                if matches!(kind, FieldKind::Time | FieldKind::Duration | FieldKind::State) {
                    return Err(QueryError::new(operator.position, format!("`~` matches strings; {field} is not one")));
                }
                let pattern = self.pattern()?;
                Ok(Expr::Matches { field, pattern, negated })
            }
            Token::Word(word) => {
                let word = word.to_ascii_lowercase();
                self.advance();
                let (negated, word) = if word == "not" {
                    let next = self.advance();
                    match &next.token {
                        Token::Word(w) if ["in", "contains", "exists"].contains(&w.to_ascii_lowercase().as_str()) => {
                            (true, w.to_ascii_lowercase())
                        }
                        other => {
                            return Err(QueryError::new(
                                next.position,
                                format!(
                                    "expected `in`, `contains` or `exists` after `not`, found {}",
                                    other.describe()
                                ),
                            ))
                        }
                    }
                } else {
                    (false, word)
                };
                match word.as_str() {
                    "in" => self.in_list(field, negated),
                    "contains" => {
                        if !matches!(kind, FieldKind::Tags | FieldKind::Text | FieldKind::Dynamic) {
                            return Err(QueryError::new(
                                operator.position,
                                format!("`contains` applies to tags and strings; {field} is neither"),
                            ));
                        }
                        let value = self.text_value("a string to look for")?;
                        Ok(Expr::Contains { field, value, negated })
                    }
                    "exists" | "missing" => {
                        if !(field.may_be_missing() || kind == FieldKind::Tags) {
                            return Err(QueryError::new(field_position, format!("every run has {field}")));
                        }
                        Ok(Expr::Exists { field, negated: negated != (word == "missing") })
                    }
                    _ => Err(QueryError::new(
                        operator.position,
                        format!(
                            "expected an operator after {field} (=, !=, <, <=, >, >=, in, not in, contains, ~, \
                             exists, missing), found `{word}`"
                        ),
                    )),
                }
            }
            _ => Err(self.error_here(&format!(
                "an operator after {field} (=, !=, <, <=, >, >=, in, not in, contains, ~, exists, missing)"
            ))),
        }
    }

    fn in_list(&mut self, field: Field, negated: bool) -> Result<Expr, QueryError> {
        if self.peek().token != Token::LParen {
            return Err(self.error_here("`(` to start the list of values"));
        }
        self.advance();
        let mut values = Vec::new();
        loop {
            if values.len() == QUERY_MAX_IN_VALUES {
                return Err(QueryError::new(
                    self.peek().position,
                    format!("more than {QUERY_MAX_IN_VALUES} values in one list"),
                ));
            }
            let value = if field.kind() == FieldKind::Tags {
                Value::String(self.text_value("a tag")?)
            } else {
                self.value(&field, Cmp::Eq)?
            };
            values.push(value);
            match self.advance() {
                Spanned { token: Token::Comma, .. } => continue,
                Spanned { token: Token::RParen, .. } => break,
                other => {
                    return Err(QueryError::new(
                        other.position,
                        format!("expected `,` or `)` in the list, found {}", other.token.describe()),
                    ))
                }
            }
        }
        Ok(Expr::In { field, values, negated })
    }

    /// A string, or a bare word or number taken as its text.
    fn text_value(&mut self, expected: &str) -> Result<String, QueryError> {
        let next = self.advance();
        match next.token {
            Token::String(text) => Ok(text),
            Token::Word(_) | Token::Number(_) | Token::Duration(_) => Ok(next.text),
            other => Err(QueryError::new(next.position, format!("expected {expected}, found {}", other.describe()))),
        }
    }

    fn pattern(&mut self) -> Result<Pattern, QueryError> {
        let next = self.advance();
        match next.token {
            Token::String(glob) => Ok(Pattern::Glob(glob)),
            Token::Regex(regex) => {
                if let Err(error) = regex_syntax::Parser::new().parse(&regex) {
                    return Err(QueryError::new(
                        next.position,
                        format!("invalid regular expression: {}", first_line(&error.to_string())),
                    ));
                }
                Ok(Pattern::Regex(regex))
            }
            other => Err(QueryError::new(
                next.position,
                format!(
                    "expected a glob in quotes (\"resnet-*\") or a /regular expression/, found {}",
                    other.describe()
                ),
            )),
        }
    }

    /// A literal typed by the field it is compared with.
    fn value(&mut self, field: &Field, op: Cmp) -> Result<Value, QueryError> {
        let next = self.advance();
        let position = next.position;
        let expected = |what: &str, found: &Token| {
            QueryError::new(position, format!("expected {what} to compare {field} with, found {}", found.describe()))
        };
        match field.kind() {
            FieldKind::Dynamic => match next.token {
                Token::Number(n) => Ok(Value::Number(n)),
                Token::String(s) => Ok(Value::String(s)),
                Token::Word(w) if w.eq_ignore_ascii_case("true") || w.eq_ignore_ascii_case("false") => {
                    if matches!(op, Cmp::Eq | Cmp::Ne) {
                        Ok(Value::Bool(w.eq_ignore_ascii_case("true")))
                    } else {
                        Err(QueryError::new(position, "true and false are compared with `=` or `!=` only"))
                    }
                }
                Token::Word(w) if w.eq_ignore_ascii_case("null") => {
                    if matches!(op, Cmp::Eq | Cmp::Ne) {
                        Ok(Value::Null)
                    } else {
                        Err(QueryError::new(position, "null is compared with `=` or `!=` only"))
                    }
                }
                Token::Word(_) | Token::Duration(_) => Ok(Value::String(next.text)),
                other => Err(expected("a number, a string, true, false or null", &other)),
            },
            FieldKind::Text => match next.token {
                Token::String(s) => Ok(Value::String(s)),
                Token::Word(w) if w.eq_ignore_ascii_case("null") => Err(QueryError::new(
                    position,
                    if field.may_be_missing() {
                        format!("use `{field} missing` to find runs without {field}")
                    } else {
                        format!("every run has {field}; it is never null")
                    },
                )),
                Token::Word(_) | Token::Number(_) | Token::Duration(_) => Ok(Value::String(next.text)),
                other => Err(expected("a string", &other)),
            },
            FieldKind::State => {
                let text = match next.token {
                    Token::String(s) => s,
                    Token::Word(w) => w,
                    other => return Err(expected(&format!("a state ({STATES})"), &other)),
                };
                text.to_ascii_lowercase()
                    .parse::<RunState>()
                    .map(Value::State)
                    .map_err(|_| QueryError::new(position, format!("`{text}` is not a state: expected {STATES}")))
            }
            FieldKind::Time => match next.token {
                Token::Duration(ms) => Ok(Value::Time(TimeValue::Relative(ms))),
                Token::String(s) => parse_time(&s).map(|ms| Value::Time(TimeValue::Absolute(ms))).ok_or_else(|| {
                    QueryError::new(
                        position,
                        format!("`{s}` is not a time: expected a date like \"2026-01-31\" or RFC 3339"),
                    )
                }),
                other => Err(expected("a time (-7d, \"2026-01-31\", \"2026-01-31T12:00:00Z\")", &other)),
            },
            FieldKind::Duration => match next.token {
                Token::Duration(ms) => Ok(Value::Duration(ms)),
                Token::Number(seconds) if (seconds * 1000.0).abs() < 9.2e18 => {
                    Ok(Value::Duration((seconds * 1000.0).round() as i64))
                }
                other => Err(expected("a duration (90m, 2h, or seconds)", &other)),
            },
            FieldKind::Tags => Err(expected("a tag", &next.token)),
        }
    }
}

fn first_line(text: &str) -> &str {
    text.lines().rev().find(|line| line.starts_with("error:")).unwrap_or_else(|| text.lines().next().unwrap_or(text))
}

/// Milliseconds since the epoch for `2026-01-31` (UTC midnight), `2026-01-31T12:00:00` (UTC) or RFC 3339.
pub(super) fn parse_time(text: &str) -> Option<i64> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.timestamp_millis());
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"] {
        if let Ok(time) = NaiveDateTime::parse_from_str(text, format) {
            return Some(time.and_utc().timestamp_millis());
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_millis())
}
