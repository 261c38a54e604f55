//! Canonical text for an [`Expr`]: parsing it gives the same expression back.

use std::fmt::{self, Display, Formatter};

use chrono::{SecondsFormat, TimeZone, Utc};

use super::lexer::is_bare_key_char;
use super::{Expr, Pattern, TimeValue, Value};

/// A config or summary key, bare when that reads back the same, quoted otherwise.
pub(super) struct KeyPath<'a>(pub &'a str);

impl Display for KeyPath<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if self.0.chars().all(is_bare_key_char) {
            f.write_str(self.0)
        } else {
            Quoted(self.0).fmt(f)
        }
    }
}

struct Quoted<'a>(&'a str);

impl Display for Quoted<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '\t' => f.write_str("\\t")?,
                '\r' => f.write_str("\\r")?,
                c => write!(f, "{c}")?,
            }
        }
        f.write_str("\"")
    }
}

/// Milliseconds in the largest unit that holds them exactly.
struct Millis(i64);

impl Display for Millis {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        // Weeks parse but are not printed: `-14d` reads better than `-2w`.
        const UNITS: [(i64, &str); 4] = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "m"), (1_000, "s")];
        let ms = self.0;
        match UNITS.iter().find(|(size, _)| ms != 0 && ms % size == 0) {
            Some((size, unit)) => write!(f, "{}{unit}", ms / size),
            None => write!(f, "{ms}ms"),
        }
    }
}

impl Display for Value {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Value::Number(n) => write!(f, "{n}"),
            Value::String(s) => Quoted(s).fmt(f),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Null => f.write_str("null"),
            Value::Time(TimeValue::Relative(ms)) => {
                // A leading sign keeps `+7d` a relative time rather than a bare word.
                if *ms >= 0 {
                    f.write_str("+")?;
                }
                Millis(*ms).fmt(f)
            }
            Value::Time(TimeValue::Absolute(ms)) => match Utc.timestamp_millis_opt(*ms).single() {
                Some(time) => Quoted(&time.to_rfc3339_opts(SecondsFormat::Millis, true)).fmt(f),
                None => write!(f, "\"{ms}\""),
            },
            Value::Duration(ms) => Millis(*ms).fmt(f),
            Value::State(state) => f.write_str(state.as_str()),
        }
    }
}

impl Display for Pattern {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Glob(glob) => Quoted(glob).fmt(f),
            Pattern::Regex(regex) => {
                f.write_str("/")?;
                f.write_str(&regex.replace('/', "\\/"))?;
                f.write_str("/")
            }
        }
    }
}

/// An operand of `and`/`or`/`not`, in parentheses when it is itself a list (so nesting survives a round trip).
struct Operand<'a>(&'a Expr);

impl Display for Operand<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self.0 {
            Expr::And(_) | Expr::Or(_) => write!(f, "({})", self.0),
            other => other.fmt(f),
        }
    }
}

impl Display for Expr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let not = |negated: bool| if negated { "not " } else { "" };
        match self {
            Expr::And(operands) | Expr::Or(operands) => {
                let joiner = if matches!(self, Expr::And(_)) { " and " } else { " or " };
                for (i, operand) in operands.iter().enumerate() {
                    if i > 0 {
                        f.write_str(joiner)?;
                    }
                    Operand(operand).fmt(f)?;
                }
                Ok(())
            }
            Expr::Not(inner) => write!(f, "not {}", Operand(inner)),
            Expr::Compare { field, op, value } => write!(f, "{field} {} {value}", op.as_str()),
            Expr::In { field, values, negated } => {
                write!(f, "{field} {}in (", not(*negated))?;
                for (i, value) in values.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    value.fmt(f)?;
                }
                f.write_str(")")
            }
            Expr::Contains { field, value, negated } => {
                write!(f, "{field} {}contains {}", not(*negated), Quoted(value))
            }
            Expr::Matches { field, pattern, negated } => {
                write!(f, "{field} {} {pattern}", if *negated { "!~" } else { "~" })
            }
            Expr::Exists { field, negated } => write!(f, "{field} {}", if *negated { "missing" } else { "exists" }),
        }
    }
}
