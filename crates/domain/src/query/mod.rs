//! The runs query language: `summary.val/acc > 0.9 and tags contains "baseline" and created_at > -7d`.
//!
//! [`parse`] turns text into an [`Expr`] or a [`QueryError`] that points at the offending position and says
//! what was expected. The grammar and semantics are documented in docs/query-language.md; each storage backend
//! compiles an [`Expr`] into parameterized SQL (values are never spliced into SQL text).
//! [`Expr`]'s `Display` prints canonical text that parses back to the same expression.

mod eval;
mod lexer;
mod parser;
mod print;
#[cfg(test)]
mod tests;

use std::fmt;

use crate::model::RunState;
use crate::Error;

pub use eval::{
    config_value, contains_ignoring_ascii_case, flatten_config, glob_matches, kind_name, summary_value, FieldValue,
    RunView,
};
pub use parser::{parse, parse_field, parse_order};

/// One key of a run order.
#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    pub field: Field,
    pub descending: bool,
}

/// The longest query text accepted, in bytes.
pub const QUERY_MAX_BYTES: usize = 16 * 1024;
/// How deeply parentheses and `not` may nest.
pub const QUERY_MAX_DEPTH: usize = 64;
/// Values in one `in (…)` list.
pub const QUERY_MAX_IN_VALUES: usize = 1_000;

/// What a query can name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// A (flattened) config key: nested objects join their keys with `.`.
    Config(String),
    /// A summary key: a metric key such as `val/acc`, or a key set explicitly.
    Summary(String),
    Id,
    Name,
    State,
    Tags,
    Group,
    JobType,
    Notes,
    CreatedAt,
    EndedAt,
    /// Seconds from start to end (or to now, for a running run).
    Runtime,
}

/// The built-in fields, as written in queries.
pub const BUILT_IN_FIELDS: &[(&str, Field)] = &[
    ("id", Field::Id),
    ("name", Field::Name),
    ("state", Field::State),
    ("tags", Field::Tags),
    ("group", Field::Group),
    ("job_type", Field::JobType),
    ("notes", Field::Notes),
    ("created_at", Field::CreatedAt),
    ("ended_at", Field::EndedAt),
    ("runtime", Field::Runtime),
];

impl Field {
    /// How values of this field are typed, which decides what a literal means and which operators apply.
    pub fn kind(&self) -> FieldKind {
        match self {
            Field::Config(_) | Field::Summary(_) => FieldKind::Dynamic,
            Field::Id | Field::Name | Field::Group | Field::JobType | Field::Notes => FieldKind::Text,
            Field::State => FieldKind::State,
            Field::Tags => FieldKind::Tags,
            Field::CreatedAt | Field::EndedAt => FieldKind::Time,
            Field::Runtime => FieldKind::Duration,
        }
    }

    /// True for the fields a run may lack (a missing key, no group, no end time).
    pub fn may_be_missing(&self) -> bool {
        matches!(self, Field::Config(_) | Field::Summary(_) | Field::Group | Field::JobType | Field::EndedAt)
    }
}

/// The type of a field's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// Config and summary values: numbers, strings, booleans or null, per run.
    Dynamic,
    Text,
    State,
    Tags,
    /// Compared with relative times (`-7d`) or dates (`"2026-01-31"`, RFC 3339).
    Time,
    /// Seconds; compared with numbers or durations (`90m`).
    Duration,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    pub fn as_str(self) -> &'static str {
        match self {
            Cmp::Eq => "=",
            Cmp::Ne => "!=",
            Cmp::Lt => "<",
            Cmp::Le => "<=",
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
        }
    }
}

/// A literal value, typed by the field it is compared with.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Number(f64),
    String(String),
    Bool(bool),
    Null,
    /// A point in time, milliseconds since the Unix epoch.
    Time(TimeValue),
    /// A span of time in milliseconds (`runtime > 90m`).
    Duration(i64),
    State(RunState),
}

/// A time literal: relative to when the query runs, or absolute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeValue {
    /// Now plus this many milliseconds (negative: in the past), e.g. `-7d`.
    Relative(i64),
    Absolute(i64),
}

impl TimeValue {
    /// Milliseconds since the epoch, given the time the query runs.
    pub fn resolve(self, now_ms: i64) -> i64 {
        match self {
            TimeValue::Relative(offset) => now_ms.saturating_add(offset),
            TimeValue::Absolute(ms) => ms,
        }
    }
}

/// How `~` matches strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// `*` any run of characters, `?` any one character, everything else literally; case-sensitive.
    Glob(String),
    /// A regular expression (found anywhere in the value unless anchored).
    Regex(String),
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Compare {
        field: Field,
        op: Cmp,
        value: Value,
    },
    /// Equal to any of the values (tags: has any of them); `negated`: `not in`.
    In {
        field: Field,
        values: Vec<Value>,
        negated: bool,
    },
    /// Tags: has the tag. Strings: contains the substring, ignoring ASCII case.
    Contains {
        field: Field,
        value: String,
        negated: bool,
    },
    Matches {
        field: Field,
        pattern: Pattern,
        negated: bool,
    },
    /// `exists` (negated: `missing`): the run has the key (config/summary), a value (group, job_type,
    /// ended_at) or any tag.
    Exists {
        field: Field,
        negated: bool,
    },
}

/// Where a query went wrong and what was expected there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at position {position}: {message}")]
pub struct QueryError {
    /// Character offset (0-based) into the query text.
    pub position: usize,
    pub message: String,
}

impl QueryError {
    pub(crate) fn new(position: usize, message: impl Into<String>) -> Self {
        Self { position, message: message.into() }
    }

    /// The public error for a query given in request field `field`.
    pub fn into_error(self, field: &str) -> Error {
        Error::invalid(field, self.to_string())
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Config(key) => write!(f, "config.{}", print::KeyPath(key)),
            Field::Summary(key) => write!(f, "summary.{}", print::KeyPath(key)),
            other => {
                let name = BUILT_IN_FIELDS.iter().find(|(_, field)| field == other).map(|(name, _)| *name);
                f.write_str(name.unwrap_or("?"))
            }
        }
    }
}
