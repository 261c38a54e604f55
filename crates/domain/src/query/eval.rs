//! What a query means, evaluated over one run in memory. Storage backends compile queries to SQL instead; this
//! is the reference their results are tested against (and what live streams filter new runs with).

use std::collections::HashMap;

use serde_json::Value as Json;

use super::{Cmp, Expr, Field, Pattern, Value};
use crate::float;
use crate::model::{JsonMap, Run};

/// A config or summary value as queries see it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldValue<'a> {
    Null,
    Bool(bool),
    /// NaN and ±infinity included (summary metrics may be non-finite).
    Number(f64),
    String(&'a str),
    /// A list: no `=`, `<`, `in`, `contains` or `~` matches it; the negated forms (`!=`, `not in`, …) do.
    List,
}

impl FieldValue<'_> {
    /// A stable code per variant, as the relational backends store it next to the value.
    pub fn kind_code(&self) -> i64 {
        match self {
            FieldValue::Null => 0,
            FieldValue::Bool(_) => 1,
            FieldValue::Number(_) => 2,
            FieldValue::String(_) => 3,
            FieldValue::List => 4,
        }
    }

    /// The value as the relational stores hold it: (number or boolean as 0/1, NaN as `None`; string, or a
    /// list as its JSON text).
    pub fn stored(&self, raw: &Json) -> (Option<f64>, Option<String>) {
        match *self {
            FieldValue::Null => (None, None),
            FieldValue::Bool(b) => (Some(b as u8 as f64), None),
            FieldValue::Number(n) => ((!n.is_nan()).then_some(n), None),
            FieldValue::String(s) => (None, Some(s.to_owned())),
            FieldValue::List => (None, Some(raw.to_string())),
        }
    }

    /// The name column discovery reports for the variant.
    pub fn kind_name(&self) -> &'static str {
        kind_name(self.kind_code())
    }
}

/// The name of a value kind code (see [`FieldValue::kind_code`]).
pub fn kind_name(code: i64) -> &'static str {
    match code {
        0 => "null",
        1 => "bool",
        2 => "number",
        3 => "string",
        _ => "list",
    }
}

/// The value of a config leaf.
pub fn config_value(value: &Json) -> FieldValue<'_> {
    match value {
        Json::Null => FieldValue::Null,
        Json::Bool(b) => FieldValue::Bool(*b),
        Json::Number(n) => FieldValue::Number(n.as_f64().unwrap_or(f64::NAN)),
        Json::String(s) => FieldValue::String(s),
        Json::Array(_) | Json::Object(_) => FieldValue::List,
    }
}

/// The value of a summary entry: as config, except that `"NaN"`, `"Infinity"` and `"-Infinity"` are the numbers
/// they encode (that is how non-finite metric values travel in JSON).
pub fn summary_value(value: &Json) -> FieldValue<'_> {
    match float::from_json(value) {
        Some(number) => FieldValue::Number(number),
        None => config_value(value),
    }
}

/// Every leaf of a config, keyed by its path: nested objects join keys with `.`; an empty object has no leaf.
pub fn flatten_config(config: &JsonMap) -> Vec<(String, &Json)> {
    fn walk<'a>(prefix: &str, map: &'a JsonMap, out: &mut Vec<(String, &'a Json)>) {
        for (key, value) in map {
            let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
            match value {
                Json::Object(inner) => walk(&path, inner, out),
                leaf => out.push((path, leaf)),
            }
        }
    }
    let mut out = Vec::new();
    walk("", config, &mut out);
    out
}

/// Matches `*` (any run) and `?` (one character); everything else literally.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let (pattern, text): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // Iterative matching with one backtrack point for the last `*`: linear in practice, never exponential.
    let (mut p, mut t, mut star, mut resume) = (0, 0, None, 0);
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || (pattern[p] != '*' && pattern[p] == text[t])) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some(p);
            resume = t;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            resume += 1;
            t = resume;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

/// Substring match ignoring ASCII case (as the SQL backends do).
pub fn contains_ignoring_ascii_case(haystack: &str, needle: &str) -> bool {
    haystack.to_ascii_lowercase().contains(&needle.to_ascii_lowercase())
}

/// One run, prepared for evaluating queries against it.
pub struct RunView<'a> {
    run: &'a Run,
    config: HashMap<String, FieldValue<'a>>,
    summary: HashMap<&'a str, FieldValue<'a>>,
    now_ms: i64,
}

/// What a field holds for one run: nothing, or one of these.
enum Held<'a> {
    Missing,
    Dynamic(FieldValue<'a>),
    Text(&'a str),
    Number(f64),
}

impl<'a> RunView<'a> {
    pub fn new(run: &'a Run, now_ms: i64) -> Self {
        let config = flatten_config(&run.config).into_iter().map(|(k, v)| (k, config_value(v))).collect();
        let summary = run.summary.iter().map(|(k, v)| (k.as_str(), summary_value(v))).collect();
        Self { run, config, summary, now_ms }
    }

    /// Whether the run satisfies `expr`.
    pub fn matches(&self, expr: &Expr) -> bool {
        match expr {
            Expr::And(operands) => operands.iter().all(|e| self.matches(e)),
            Expr::Or(operands) => operands.iter().any(|e| self.matches(e)),
            Expr::Not(inner) => !self.matches(inner),
            Expr::Compare { field: Field::Tags, .. } => false,
            Expr::Compare { field, op, value } => self.compare(field, *op, value),
            Expr::In { field: Field::Tags, values, negated } => {
                let any = values.iter().any(|v| matches!(v, Value::String(tag) if self.run.tags.contains(tag)));
                any != *negated
            }
            Expr::In { field, values, negated } => {
                if matches!(self.held(field), Held::Missing) {
                    return false;
                }
                values.iter().any(|v| self.compare(field, Cmp::Eq, v)) != *negated
            }
            Expr::Contains { field: Field::Tags, value, negated } => self.run.tags.contains(value) != *negated,
            Expr::Contains { field, value, negated } => match self.held(field) {
                Held::Missing => false,
                Held::Text(text) | Held::Dynamic(FieldValue::String(text)) => {
                    contains_ignoring_ascii_case(text, value) != *negated
                }
                _ => *negated,
            },
            Expr::Matches { field: Field::Tags, pattern, negated } => {
                self.run.tags.iter().any(|tag| pattern_matches(pattern, tag)) != *negated
            }
            Expr::Matches { field, pattern, negated } => match self.held(field) {
                Held::Missing => false,
                Held::Text(text) | Held::Dynamic(FieldValue::String(text)) => {
                    pattern_matches(pattern, text) != *negated
                }
                _ => *negated,
            },
            Expr::Exists { field: Field::Tags, negated } => self.run.tags.is_empty() == *negated,
            Expr::Exists { field, negated } => matches!(self.held(field), Held::Missing) == *negated,
        }
    }

    fn held(&self, field: &Field) -> Held<'a> {
        let run = self.run;
        let text = |value: &'a Option<String>| value.as_deref().map_or(Held::Missing, Held::Text);
        match field {
            Field::Config(key) => self.config.get(key.as_str()).map_or(Held::Missing, |v| Held::Dynamic(*v)),
            Field::Summary(key) => self.summary.get(key.as_str()).map_or(Held::Missing, |v| Held::Dynamic(*v)),
            Field::Id => Held::Text(&run.id),
            Field::Name => Held::Text(&run.name),
            Field::Notes => Held::Text(&run.notes),
            Field::State => Held::Text(run.state.as_str()),
            Field::Group => text(&run.group),
            Field::JobType => text(&run.job_type),
            Field::Tags => Held::Missing,
            Field::CreatedAt => Held::Number(run.created_at.timestamp_millis() as f64),
            Field::EndedAt => run.ended_at.map_or(Held::Missing, |t| Held::Number(t.timestamp_millis() as f64)),
            Field::Runtime => {
                let end = run.ended_at.map_or(self.now_ms, |t| t.timestamp_millis());
                Held::Number((end - run.started_at.timestamp_millis()) as f64)
            }
        }
    }

    fn compare(&self, field: &Field, op: Cmp, value: &Value) -> bool {
        let held = self.held(field);
        match (held, value) {
            (Held::Missing, _) => false,
            (Held::Dynamic(FieldValue::Null), Value::Null) => op == Cmp::Eq,
            (Held::Dynamic(_), Value::Null) => op == Cmp::Ne,
            (Held::Dynamic(FieldValue::Number(a)), Value::Number(b)) => compare_numbers(a, op, *b),
            // The parser only allows `=` and `!=` with booleans.
            (Held::Dynamic(FieldValue::Bool(a)), Value::Bool(b)) => compare_ordered(a.cmp(b), op),
            (Held::Dynamic(FieldValue::String(a)) | Held::Text(a), Value::String(b)) => {
                compare_ordered(a.cmp(b.as_str()), op)
            }
            (Held::Text(a), Value::State(state)) => compare_ordered(a.cmp(state.as_str()), op),
            (Held::Number(a), Value::Time(time)) => compare_numbers(a, op, time.resolve(self.now_ms) as f64),
            (Held::Number(a), Value::Duration(ms)) => compare_numbers(a, op, *ms as f64),
            // A value of another type: only `!=` holds.
            _ => op == Cmp::Ne,
        }
    }
}

fn pattern_matches(pattern: &Pattern, text: &str) -> bool {
    match pattern {
        Pattern::Glob(glob) => glob_matches(glob, text),
        Pattern::Regex(regex) => regex::Regex::new(regex).is_ok_and(|r| r.is_match(text)),
    }
}

/// NaN equals nothing and is ordered with nothing: only `!=` holds.
fn compare_numbers(a: f64, op: Cmp, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return op == Cmp::Ne;
    }
    compare_ordered(a.partial_cmp(&b).expect("not NaN"), op)
}

fn compare_ordered(ordering: std::cmp::Ordering, op: Cmp) -> bool {
    use std::cmp::Ordering::*;
    match op {
        Cmp::Eq => ordering == Equal,
        Cmp::Ne => ordering != Equal,
        Cmp::Lt => ordering == Less,
        Cmp::Le => ordering != Greater,
        Cmp::Gt => ordering == Greater,
        Cmp::Ge => ordering != Less,
    }
}
