//! Compiles a runs query ([`trackstack_domain::query::Expr`]) into a parameterized SQL condition for the
//! relational metadata backends. Keys and values are always bound parameters; the only text spliced into SQL
//! comes from this module (column names, operators, placeholders).
//!
//! The condition is over a `runs` row aliased `r`, with config and summary values in the typed side table
//! `run_fields (run_id, project, field, kind, num, txt)` (`field` is `config.<key>` or `summary.<key>`, `kind`
//! is [`trackstack_domain::query::FieldValue::kind_code`], numbers and booleans in `num`, strings in `txt`) and
//! tags in `run_tags (run_id, tag)`. Semantics follow `trackstack_domain::query::RunView::matches`: a condition
//! on a value a run lacks is false, so every condition is two-valued and `not` is plain `NOT`.

use trackstack_domain::model::{
    ColumnStats, JsonMap, ProjectField, RunCursor, RunGroup, RunGroups, RunListQuery, SortValue,
};
use trackstack_domain::query::{
    config_value, flatten_config, kind_name, summary_value, Cmp, Expr, Field, FieldValue, Pattern, Value,
};

/// A bound parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlParam {
    Text(String),
    Real(f64),
    Int(i64),
}

/// Where SQL dialects differ.
pub trait SqlDialect {
    /// The placeholder of the `index`-th parameter (1-based).
    fn placeholder(&self, index: usize) -> String;
    /// A condition: `text` matches the regular expression `pattern` (both SQL expressions).
    fn regex_match(&self, text: &str, pattern: &str) -> String;
    /// A condition: `text` matches `pattern`, a glob translated by [`SqlDialect::glob_pattern`].
    fn glob_match(&self, text: &str, pattern: &str) -> String;
    /// Translates a query glob (`*`, `?`, everything else literal) into the pattern `glob_match` takes.
    fn glob_pattern(&self, glob: &str) -> String;
    /// An expression: `text` with ASCII letters lowercased (and nothing else changed).
    fn ascii_lower(&self, text: &str) -> String;
    /// An expression: the position of `needle` in `haystack` (0 when absent).
    fn position(&self, haystack: &str, needle: &str) -> String;
    /// How a text column is compared bytewise (`COLLATE "C"` where the default collation is not).
    fn bytewise(&self, column: &str) -> String {
        column.to_owned()
    }
}

/// A compiled condition and its parameters, in placeholder order.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledFilter {
    pub sql: String,
    pub params: Vec<SqlParam>,
}

/// Compiles `expr` for runs of `project`; `now_ms` resolves relative times and the runtime of running runs.
/// Parameters are numbered from `first_param` (1-based), so the condition can join a larger statement.
pub fn compile_filter(
    expr: &Expr,
    project: &str,
    now_ms: i64,
    first_param: usize,
    dialect: &dyn SqlDialect,
) -> CompiledFilter {
    let mut compiler = Compiler { dialect, params: Vec::new(), first_param, project: project.to_owned(), now_ms };
    let sql = compiler.expr(expr);
    CompiledFilter { sql, params: compiler.params }
}

/// A whole runs listing: `SELECT {columns} FROM runs r … WHERE … ORDER BY … LIMIT limit + 1` (one extra row
/// tells whether another page follows), and its parameters. `columns` must name `runs` columns as `r.<name>`.
pub fn compile_list(
    query: &RunListQuery,
    columns: &str,
    dialect: &dyn SqlDialect,
) -> Result<CompiledFilter, crate::StoreError> {
    let mut compiler =
        Compiler { dialect, params: Vec::new(), first_param: 1, project: query.project.clone(), now_ms: 0 };
    let mut conditions = compiler.selection(query);
    let order = query.order_or_default();
    let mut joins = String::new();
    let mut components: Vec<SortComponent> = Vec::new();
    for (index, key) in order.iter().enumerate() {
        match field_column_key(&key.field) {
            Some(field) => {
                let field = compiler.text(&field);
                joins.push_str(&format!(
                    " LEFT JOIN run_fields s{index} ON s{index}.run_id = r.id AND s{index}.field = {field}"
                ));
                let descending = key.descending;
                components.push(SortComponent { expression: format!("s{index}.num"), descending, nullable: true });
                let expression = dialect.bytewise(&format!("s{index}.txt"));
                components.push(SortComponent { expression, descending, nullable: true });
            }
            None => {
                let (column, nullable) = builtin_column(&key.field);
                let column = match column {
                    BuiltIn::Text(column) => dialect.bytewise(column),
                    BuiltIn::Number(column) if !column.contains("{now}") => column.to_owned(),
                    BuiltIn::Number(_) => {
                        return Err(crate::StoreError::Invalid {
                            field: "sort".into(),
                            message: format!("runs cannot be sorted by {}", key.field),
                        })
                    }
                };
                let nullable = nullable.is_some();
                components.push(SortComponent { expression: column, descending: key.descending, nullable });
            }
        }
    }
    let id_descending = order.first().is_some_and(|key| key.descending);
    if let Some(cursor) = &query.after {
        conditions.push(compiler.after(&components, id_descending, cursor)?);
    }
    // Only nullable components sort their NULLs last explicitly: on a column that is never NULL the extra term
    // would keep the database from walking an index in order (e.g. `runs_by_created` for the default order).
    let mut order_by: Vec<String> = components
        .iter()
        .map(|c| {
            let direction = if c.descending { "DESC" } else { "ASC" };
            if c.nullable {
                format!("({} IS NULL), {} {direction}", c.expression, c.expression)
            } else {
                format!("{} {direction}", c.expression)
            }
        })
        .collect();
    order_by.push(format!("r.id {}", if id_descending { "DESC" } else { "ASC" }));
    let limit = compiler.bind(SqlParam::Int(query.limit as i64 + 1));
    let sql = format!(
        "SELECT {columns} FROM runs r{joins} WHERE {} ORDER BY {} LIMIT {limit}",
        conditions.join(" AND "),
        order_by.join(", ")
    );
    Ok(CompiledFilter { sql, params: compiler.params })
}

/// One column of a run order.
struct SortComponent {
    expression: String,
    descending: bool,
    /// Whether runs may lack a value here (those sort last, in either direction).
    nullable: bool,
}

/// One row per selected run for grouping: for each `group_by` field its `(kind, num, txt)` (as `run_fields`
/// holds them; a built-in text field as kind 3), then for each column its numeric value (`NULL` if not a number).
/// Read the rows into [`GroupRow`]s and fold them with [`aggregate_groups`].
pub fn compile_group_rows(
    query: &RunListQuery,
    group_by: &[Field],
    columns: &[Field],
    dialect: &dyn SqlDialect,
) -> Result<CompiledFilter, crate::StoreError> {
    let mut compiler =
        Compiler { dialect, params: Vec::new(), first_param: 1, project: query.project.clone(), now_ms: 0 };
    let mut joins = String::new();
    let mut selected = Vec::new();
    for (index, field) in group_by.iter().enumerate() {
        match field_column_key(field) {
            Some(key) => {
                let key = compiler.text(&key);
                joins.push_str(&format!(" LEFT JOIN run_fields g{index} ON g{index}.run_id = r.id AND g{index}.field = {key}"));
                selected.push(format!("CAST(g{index}.kind AS BIGINT), g{index}.num, g{index}.txt"));
            }
            None => match builtin_column(field).0 {
                BuiltIn::Text(column) => selected.push(format!(
                    "CAST(CASE WHEN {column} IS NULL THEN NULL ELSE 3 END AS BIGINT), CAST(NULL AS DOUBLE PRECISION), {column}"
                )),
                BuiltIn::Number(_) => {
                    return Err(crate::StoreError::Invalid {
                        field: "group_by".into(),
                        message: format!("runs cannot be grouped by {field}"),
                    })
                }
            },
        }
    }
    for (index, field) in columns.iter().enumerate() {
        let Some(key) = field_column_key(field) else {
            return Err(crate::StoreError::Invalid {
                field: "columns".into(),
                message: format!("{field} is not a config or summary field; statistics need numbers"),
            });
        };
        let key = compiler.text(&key);
        joins.push_str(&format!(
            " LEFT JOIN run_fields c{index} ON c{index}.run_id = r.id AND c{index}.field = {key} AND c{index}.kind = 2"
        ));
        selected.push(format!("c{index}.num"));
    }
    let conditions = compiler.selection(query);
    if selected.is_empty() {
        selected.push("1".into());
    }
    let sql = format!("SELECT {} FROM runs r{joins} WHERE {}", selected.join(", "), conditions.join(" AND "));
    Ok(CompiledFilter { sql, params: compiler.params })
}

/// One run's values read back from [`compile_group_rows`]'s statement.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRow {
    /// `(kind, num, txt)` per grouped field.
    pub key: Vec<(Option<i64>, Option<f64>, Option<String>)>,
    /// The numeric value per column.
    pub values: Vec<Option<f64>>,
}

/// Folds per-run rows into groups with column statistics, in key order, keeping the first `limit` groups.
pub fn aggregate_groups(rows: Vec<GroupRow>, group_by: &[Field], columns: &[Field], limit: usize) -> RunGroups {
    use std::collections::BTreeMap;
    // Per group: run count and each column's values.
    let mut groups: BTreeMap<Vec<GroupKeyPart>, (u64, Vec<Vec<f64>>)> = BTreeMap::new();
    for row in rows {
        let key: Vec<GroupKeyPart> = row.key.into_iter().map(GroupKeyPart::from_stored).collect();
        let entry = groups.entry(key).or_insert_with(|| (0, vec![Vec::new(); columns.len()]));
        entry.0 += 1;
        for (values, value) in entry.1.iter_mut().zip(row.values) {
            values.extend(value);
        }
    }
    let truncated = groups.len() > limit;
    let groups = groups
        .into_iter()
        .take(limit)
        .map(|(key, (count, values))| RunGroup {
            key: key.into_iter().map(GroupKeyPart::into_json).collect(),
            count,
            columns: columns.iter().map(|c| c.to_string()).zip(values.into_iter().map(ColumnStats::of)).collect(),
        })
        .collect();
    RunGroups { group_by: group_by.iter().map(|f| f.to_string()).collect(), groups, truncated }
}

/// A grouped value, ordered numbers, strings, booleans, lists, then missing (and null).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum GroupKeyPart {
    Number(OrderedNumber),
    Text(String),
    Bool(bool),
    List(String),
    Missing,
}

/// A number with a total order (NaN never occurs: it is stored as a missing value; -0.0 is folded into 0.0).
#[derive(Debug, Clone, Copy, PartialEq)]
struct OrderedNumber(f64);

impl Eq for OrderedNumber {}

impl PartialOrd for OrderedNumber {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrderedNumber {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl GroupKeyPart {
    fn from_stored((kind, num, txt): (Option<i64>, Option<f64>, Option<String>)) -> GroupKeyPart {
        match (kind, num, txt) {
            (Some(1), Some(n), _) => GroupKeyPart::Bool(n != 0.0),
            // `+ 0.0` turns -0.0 into 0.0, so both land in one group.
            (Some(2), Some(n), _) => GroupKeyPart::Number(OrderedNumber(n + 0.0)),
            (Some(3), _, Some(t)) => GroupKeyPart::Text(t),
            (Some(4), _, Some(t)) => GroupKeyPart::List(t),
            _ => GroupKeyPart::Missing,
        }
    }

    fn into_json(self) -> serde_json::Value {
        match self {
            GroupKeyPart::Number(n) => trackstack_domain::float::to_json(n.0),
            GroupKeyPart::Text(t) => serde_json::Value::String(t),
            GroupKeyPart::Bool(b) => serde_json::Value::Bool(b),
            GroupKeyPart::List(t) => serde_json::from_str(&t).unwrap_or(serde_json::Value::String(t)),
            GroupKeyPart::Missing => serde_json::Value::Null,
        }
    }
}

/// Folds `(field, kind, runs)` rows, ordered by field, into one [`ProjectField`] per field.
pub fn fold_field_counts(rows: impl IntoIterator<Item = (String, i64, i64)>) -> Vec<ProjectField> {
    let mut fields: Vec<ProjectField> = Vec::new();
    for (field, kind, runs) in rows {
        let runs = runs.max(0) as u64;
        match fields.last_mut() {
            Some(last) if last.field == field => {
                last.runs += runs;
                *last.types.entry(kind_name(kind).to_owned()).or_default() += runs;
            }
            _ => fields.push(ProjectField {
                field,
                runs,
                types: [(kind_name(kind).to_owned(), runs)].into_iter().collect(),
            }),
        }
    }
    fields
}

/// The `run_fields.field` value of a config or summary field; `None` for built-ins.
pub fn field_column_key(field: &Field) -> Option<String> {
    match field {
        Field::Config(key) => Some(format!("config.{key}")),
        Field::Summary(key) => Some(format!("summary.{key}")),
        _ => None,
    }
}

/// One `run_fields` row: a config leaf or a summary value of a run, typed.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldRow {
    /// `config.<key>` or `summary.<key>`.
    pub field: String,
    pub kind: i64,
    /// Numbers (NaN as `None`) and booleans (0 or 1).
    pub num: Option<f64>,
    /// Strings, and lists as JSON text.
    pub txt: Option<String>,
}

impl FieldRow {
    fn new(field: String, value: FieldValue<'_>, raw: &serde_json::Value) -> FieldRow {
        let (num, txt) = value.stored(raw);
        FieldRow { field, kind: value.kind_code(), num, txt }
    }

    /// The rows of a config's leaves under the given top-level keys (all of them when `None`).
    pub fn config_rows(config: &JsonMap, top_keys: Option<&[&String]>) -> Vec<FieldRow> {
        let selected: JsonMap = match top_keys {
            None => config.clone(),
            Some(keys) => keys.iter().filter_map(|k| config.get(*k).map(|v| ((*k).clone(), v.clone()))).collect(),
        };
        flatten_config(&selected)
            .into_iter()
            .map(|(key, raw)| FieldRow::new(format!("config.{key}"), config_value(raw), raw))
            .collect()
    }

    /// The row of an explicitly set summary value.
    pub fn summary(key: &str, raw: &serde_json::Value) -> FieldRow {
        FieldRow::new(format!("summary.{key}"), summary_value(raw), raw)
    }

    /// The row of a summary value that follows a metric.
    pub fn metric(key: &str, value: f64) -> FieldRow {
        FieldRow::new(format!("summary.{key}"), FieldValue::Number(value), &serde_json::Value::Null)
    }
}

/// The `run_fields.field` bounds that select config key `top_key` and every key nested under it:
/// `field = exact OR (field > nested_after AND field < nested_before)`.
pub fn config_key_range(top_key: &str) -> (String, String, String) {
    // `/` sorts right after `.`, so `config.k.` < every nested key < `config.k/`.
    (format!("config.{top_key}"), format!("config.{top_key}."), format!("config.{top_key}/"))
}

struct Compiler<'a> {
    dialect: &'a dyn SqlDialect,
    params: Vec<SqlParam>,
    first_param: usize,
    project: String,
    now_ms: i64,
}

fn sql_op(op: Cmp) -> &'static str {
    match op {
        Cmp::Eq => "=",
        Cmp::Ne => "<>",
        Cmp::Lt => "<",
        Cmp::Le => "<=",
        Cmp::Gt => ">",
        Cmp::Ge => ">=",
    }
}

impl Compiler<'_> {
    fn bind(&mut self, param: SqlParam) -> String {
        self.params.push(param);
        self.dialect.placeholder(self.first_param + self.params.len() - 1)
    }

    fn text(&mut self, text: &str) -> String {
        self.bind(SqlParam::Text(text.to_owned()))
    }

    fn expr(&mut self, expr: &Expr) -> String {
        match expr {
            Expr::And(operands) | Expr::Or(operands) => {
                let joiner = if matches!(expr, Expr::And(_)) { " AND " } else { " OR " };
                let parts: Vec<String> = operands.iter().map(|e| self.expr(e)).collect();
                format!("({})", parts.join(joiner))
            }
            Expr::Not(inner) => format!("(NOT {})", self.expr(inner)),
            Expr::Compare { field, op, value } => self.compare(field, *op, value),
            Expr::In { field, values, negated } => self.in_list(field, values, *negated),
            Expr::Contains { field, value, negated } => self.contains(field, value, *negated),
            Expr::Matches { field, pattern, negated } => self.matches(field, pattern, *negated),
            Expr::Exists { field, negated } => self.exists(field, *negated),
        }
    }

    /// `r.id IN (runs of this project with `condition` on the field's row)`.
    fn with_field_row(&mut self, field: &Field, condition: impl FnOnce(&mut Self) -> String) -> String {
        let key = field_column_key(field).expect("a config or summary field");
        let project = self.text(&self.project.clone());
        let key = self.text(&key);
        let condition = condition(self);
        format!(
            "r.id IN (SELECT f.run_id FROM run_fields f WHERE f.project = {project} AND f.field = {key}{condition})"
        )
    }

    /// A condition on one `run_fields` row `f`: it holds `value` compared by `op` (same type only).
    fn typed_row_condition(&mut self, op: Cmp, value: &Value) -> String {
        let op_sql = sql_op(op);
        match value {
            // NaN is stored as NULL; `IS NOT NULL` keeps the condition two-valued, so `NOT` of it holds for NaN.
            Value::Number(n) => {
                format!("f.kind = 2 AND f.num IS NOT NULL AND f.num {op_sql} {}", self.bind(SqlParam::Real(*n)))
            }
            Value::Bool(b) => format!("f.kind = 1 AND f.num {op_sql} {}", self.bind(SqlParam::Real(*b as u8 as f64))),
            Value::String(s) => {
                format!("f.kind = 3 AND {} {op_sql} {}", self.dialect.bytewise("f.txt"), self.text(s))
            }
            // Only dynamic fields reach here; null, times, durations and states do not (see `compare`).
            _ => "1 = 0".to_owned(),
        }
    }

    fn compare(&mut self, field: &Field, op: Cmp, value: &Value) -> String {
        match field {
            Field::Config(_) | Field::Summary(_) => match (value, op) {
                (Value::Null, Cmp::Eq) => self.with_field_row(field, |_| " AND f.kind = 0".to_owned()),
                (Value::Null, _) => self.with_field_row(field, |_| " AND f.kind <> 0".to_owned()),
                // `!=`: has the key, and it is not that value of that type.
                (_, Cmp::Ne) => self.with_field_row(field, |c| {
                    let equal = c.typed_row_condition(Cmp::Eq, value);
                    format!(" AND NOT ({equal})")
                }),
                _ => self.with_field_row(field, |c| format!(" AND {}", c.typed_row_condition(op, value))),
            },
            Field::Tags => "1 = 0".to_owned(),
            _ => {
                let (column, nullable) = builtin_column(field);
                let column = match column {
                    BuiltIn::Text(column) => self.dialect.bytewise(column),
                    BuiltIn::Number(expression) if expression.contains("{now}") => {
                        let now = self.bind(SqlParam::Int(self.now_ms));
                        expression.replace("{now}", &now)
                    }
                    BuiltIn::Number(expression) => expression.to_owned(),
                };
                let param = match value {
                    Value::String(s) => self.text(s),
                    Value::State(state) => self.text(state.as_str()),
                    Value::Time(time) => self.bind(SqlParam::Int(time.resolve(self.now_ms))),
                    Value::Duration(ms) => self.bind(SqlParam::Int(*ms)),
                    Value::Number(n) => self.bind(SqlParam::Real(*n)),
                    Value::Bool(_) | Value::Null => return "1 = 0".to_owned(),
                };
                let condition = format!("{column} {} {param}", sql_op(op));
                match nullable {
                    Some(column) => format!("({column} IS NOT NULL AND {condition})"),
                    None => format!("({condition})"),
                }
            }
        }
    }

    fn in_list(&mut self, field: &Field, values: &[Value], negated: bool) -> String {
        match field {
            Field::Tags => {
                let tags: Vec<String> = values
                    .iter()
                    .filter_map(|v| if let Value::String(t) = v { Some(t.clone()) } else { None })
                    .collect();
                let placeholders: Vec<String> = tags.iter().map(|t| self.text(t)).collect();
                let not = if negated { "NOT " } else { "" };
                format!("r.id {not}IN (SELECT t.run_id FROM run_tags t WHERE t.tag IN ({}))", placeholders.join(", "))
            }
            Field::Config(_) | Field::Summary(_) => self.with_field_row(field, |c| {
                let any: Vec<String> = values
                    .iter()
                    .map(|v| match v {
                        Value::Null => "f.kind = 0".to_owned(),
                        v => format!("({})", c.typed_row_condition(Cmp::Eq, v)),
                    })
                    .collect();
                let any = any.join(" OR ");
                if negated {
                    format!(" AND NOT ({any})")
                } else {
                    format!(" AND ({any})")
                }
            }),
            _ => {
                let any: Vec<String> = values.iter().map(|v| self.compare(field, Cmp::Eq, v)).collect();
                let any = format!("({})", any.join(" OR "));
                if negated {
                    let exists = self.exists_builtin(field);
                    format!("({exists} AND NOT {any})")
                } else {
                    any
                }
            }
        }
    }

    fn contains(&mut self, field: &Field, needle: &str, negated: bool) -> String {
        match field {
            Field::Tags => {
                let tag = self.text(needle);
                let not = if negated { "NOT " } else { "" };
                format!("r.id {not}IN (SELECT t.run_id FROM run_tags t WHERE t.tag = {tag})")
            }
            Field::Config(_) | Field::Summary(_) => self.with_field_row(field, |c| {
                let found = c.substring("f.txt", needle);
                let string_containing = format!("f.kind = 3 AND {found}");
                if negated {
                    format!(" AND NOT ({string_containing})")
                } else {
                    format!(" AND {string_containing}")
                }
            }),
            _ => {
                let BuiltIn::Text(column) = builtin_column(field).0 else { return "1 = 0".to_owned() };
                let found = self.substring(column, needle);
                let exists = self.exists_builtin(field);
                if negated {
                    format!("({exists} AND NOT ({found}))")
                } else {
                    format!("({exists} AND {found})")
                }
            }
        }
    }

    /// The conditions of a listing's filters (not its cursor).
    fn selection(&mut self, query: &RunListQuery) -> Vec<String> {
        let project = self.text(&query.project);
        let mut conditions = vec![format!("r.project = {project}")];
        if let Some(state) = query.state {
            conditions.push(format!("r.state = {}", self.text(state.as_str())));
        }
        if let Some(tag) = &query.tag {
            let tag = self.text(tag);
            conditions.push(format!("EXISTS (SELECT 1 FROM run_tags t WHERE t.run_id = r.id AND t.tag = {tag})"));
        }
        if let Some(needle) = &query.name_contains {
            conditions.push(self.substring("r.name", needle));
        }
        if let Some(filter) = &query.filter {
            self.now_ms = filter.now_ms;
            conditions.push(self.expr(&filter.expr));
        }
        conditions
    }

    /// The keyset condition "comes after `cursor`" in the order `components` (missing values last in either
    /// direction), with the run id as the final tie-breaker.
    fn after(
        &mut self,
        components: &[SortComponent],
        id_descending: bool,
        cursor: &RunCursor,
    ) -> Result<String, crate::StoreError> {
        if cursor.values.len() != components.len() {
            return Err(crate::StoreError::Invalid {
                field: "cursor".into(),
                message: "the cursor belongs to another sort order".into(),
            });
        }
        let id = self.text(&cursor.id);
        let mut condition = format!("r.id {} {id}", if id_descending { "<" } else { ">" });
        for (component, value) in components.iter().zip(&cursor.values).rev() {
            let expression = &component.expression;
            condition = match value {
                None => format!("({expression} IS NULL AND {condition})"),
                Some(value) => {
                    let value = self.bind(match value {
                        SortValue::Int(n) => SqlParam::Int(*n),
                        SortValue::Real(n) => SqlParam::Real(*n),
                        SortValue::Text(t) => SqlParam::Text(t.clone()),
                    });
                    let op = if component.descending { "<" } else { ">" };
                    let ahead = format!("{expression} {op} {value} OR ({expression} = {value} AND {condition})");
                    if component.nullable {
                        format!("({expression} IS NULL OR {ahead})")
                    } else {
                        format!("({ahead})")
                    }
                }
            };
        }
        Ok(condition)
    }

    fn substring(&mut self, column: &str, needle: &str) -> String {
        let needle = self.text(needle);
        let (haystack, needle) = (self.dialect.ascii_lower(column), self.dialect.ascii_lower(&needle));
        format!("{} > 0", self.dialect.position(&haystack, &needle))
    }

    fn pattern_condition(&mut self, column: &str, pattern: &Pattern) -> String {
        match pattern {
            Pattern::Glob(glob) => {
                let translated = self.dialect.glob_pattern(glob);
                let param = self.text(&translated);
                self.dialect.glob_match(column, &param)
            }
            Pattern::Regex(regex) => {
                let param = self.text(regex);
                self.dialect.regex_match(column, &param)
            }
        }
    }

    fn matches(&mut self, field: &Field, pattern: &Pattern, negated: bool) -> String {
        match field {
            Field::Tags => {
                let condition = self.pattern_condition("t.tag", pattern);
                let not = if negated { "NOT " } else { "" };
                format!("r.id {not}IN (SELECT t.run_id FROM run_tags t WHERE {condition})")
            }
            Field::Config(_) | Field::Summary(_) => self.with_field_row(field, |c| {
                let condition = c.pattern_condition("f.txt", pattern);
                let matching = format!("f.kind = 3 AND {condition}");
                if negated {
                    format!(" AND NOT ({matching})")
                } else {
                    format!(" AND {matching}")
                }
            }),
            _ => {
                let BuiltIn::Text(column) = builtin_column(field).0 else { return "1 = 0".to_owned() };
                let condition = self.pattern_condition(column, pattern);
                let exists = self.exists_builtin(field);
                if negated {
                    format!("({exists} AND NOT ({condition}))")
                } else {
                    format!("({exists} AND {condition})")
                }
            }
        }
    }

    fn exists(&mut self, field: &Field, negated: bool) -> String {
        let exists = match field {
            Field::Tags => "EXISTS (SELECT 1 FROM run_tags t WHERE t.run_id = r.id)".to_owned(),
            Field::Config(_) | Field::Summary(_) => self.with_field_row(field, |_| String::new()),
            _ => self.exists_builtin(field),
        };
        if negated {
            format!("(NOT {exists})")
        } else {
            exists
        }
    }

    fn exists_builtin(&mut self, field: &Field) -> String {
        match builtin_column(field).1 {
            Some(column) => format!("({column} IS NOT NULL)"),
            None => "(1 = 1)".to_owned(),
        }
    }
}

enum BuiltIn {
    Text(&'static str),
    /// An expression in milliseconds; `{now}` stands for the query time's placeholder.
    Number(&'static str),
}

/// The column (or expression) of a built-in field, and the column that is NULL when the run lacks a value.
fn builtin_column(field: &Field) -> (BuiltIn, Option<&'static str>) {
    match field {
        Field::Id => (BuiltIn::Text("r.id"), None),
        Field::Name => (BuiltIn::Text("r.name"), None),
        Field::Notes => (BuiltIn::Text("r.notes"), None),
        Field::State => (BuiltIn::Text("r.state"), None),
        Field::Group => (BuiltIn::Text("r.run_group"), Some("r.run_group")),
        Field::JobType => (BuiltIn::Text("r.job_type"), Some("r.job_type")),
        Field::CreatedAt => (BuiltIn::Number("r.created_at"), None),
        Field::EndedAt => (BuiltIn::Number("r.ended_at"), Some("r.ended_at")),
        Field::Runtime => (BuiltIn::Number("(coalesce(r.ended_at, {now}) - r.started_at)"), None),
        Field::Config(_) | Field::Summary(_) | Field::Tags => unreachable!("not a built-in column"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trackstack_domain::query::parse;

    struct Numbered;

    impl SqlDialect for Numbered {
        fn placeholder(&self, index: usize) -> String {
            format!("${index}")
        }
        fn regex_match(&self, text: &str, pattern: &str) -> String {
            format!("{text} ~ {pattern}")
        }
        fn glob_match(&self, text: &str, pattern: &str) -> String {
            format!("{text} LIKE {pattern}")
        }
        fn glob_pattern(&self, glob: &str) -> String {
            glob.replace('*', "%")
        }
        fn ascii_lower(&self, text: &str) -> String {
            format!("lower({text})")
        }
        fn position(&self, haystack: &str, needle: &str) -> String {
            format!("strpos({haystack}, {needle})")
        }
    }

    fn compile(query: &str) -> CompiledFilter {
        compile_filter(&parse(query).unwrap().unwrap(), "p", 1_000, 3, &Numbered)
    }

    #[test]
    fn values_and_keys_are_parameters_never_sql_text() {
        let hostile = "x'); DROP TABLE runs; --";
        let compiled = compile(&format!(r#"config."{hostile}" = "{hostile}" or name = "{hostile}""#));
        assert!(!compiled.sql.contains("DROP"), "{}", compiled.sql);
        assert_eq!(
            compiled.params,
            [
                SqlParam::Text("p".into()),
                SqlParam::Text(format!("config.{hostile}")),
                SqlParam::Text(hostile.into()),
                SqlParam::Text(hostile.into()),
            ]
        );
        assert!(compiled.sql.contains("$3") && compiled.sql.contains("$6") && !compiled.sql.contains("$7"));
    }

    #[test]
    fn relative_times_resolve_against_the_query_time() {
        let compiled = compile("created_at > -1s and runtime < 2s");
        assert_eq!(compiled.params, [SqlParam::Int(0), SqlParam::Int(1_000), SqlParam::Int(2_000)]);
    }
}
