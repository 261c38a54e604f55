use proptest::prelude::*;

use super::*;

fn parsed(text: &str) -> Expr {
    match parse(text) {
        Ok(Some(expr)) => expr,
        other => panic!("`{text}` should parse, got {other:?}"),
    }
}

fn error_of(text: &str) -> QueryError {
    match parse(text) {
        Err(error) => error,
        Ok(expr) => panic!("`{text}` should not parse, got {expr:?}"),
    }
}

fn summary(key: &str) -> Field {
    Field::Summary(key.into())
}

#[test]
fn an_empty_query_matches_everything() {
    assert_eq!(parse("").unwrap(), None);
    assert_eq!(parse("  \n\t").unwrap(), None);
}

#[test]
fn conditions_on_config_and_summary_keys() {
    assert_eq!(
        parsed("summary.val/acc > 0.9"),
        Expr::Compare { field: summary("val/acc"), op: Cmp::Gt, value: Value::Number(0.9) }
    );
    assert_eq!(
        parsed("config.optimizer.lr<=1e-3"),
        Expr::Compare { field: Field::Config("optimizer.lr".into()), op: Cmp::Le, value: Value::Number(0.001) }
    );
    assert_eq!(
        parsed(r#"config."odd key!".x = adam"#),
        Expr::Compare { field: Field::Config("odd key!.x".into()), op: Cmp::Eq, value: Value::String("adam".into()) }
    );
    assert_eq!(
        parsed("config.use_amp = TRUE and config.seed != null"),
        Expr::And(vec![
            Expr::Compare { field: Field::Config("use_amp".into()), op: Cmp::Eq, value: Value::Bool(true) },
            Expr::Compare { field: Field::Config("seed".into()), op: Cmp::Ne, value: Value::Null },
        ])
    );
}

#[test]
fn precedence_is_not_then_and_then_or() {
    let a = || Expr::Exists { field: Field::Config("a".into()), negated: false };
    let b = || Expr::Exists { field: Field::Config("b".into()), negated: true };
    let c = || Expr::Exists { field: Field::Group, negated: false };
    assert_eq!(
        parsed("config.a exists or config.b missing and not group exists"),
        Expr::Or(vec![a(), Expr::And(vec![b(), Expr::Not(Box::new(c()))])])
    );
    assert_eq!(
        parsed("(config.a exists or config.b missing) AND group exists"),
        Expr::And(vec![Expr::Or(vec![a(), b()]), c()])
    );
    assert_eq!(parsed("config.b not exists"), b());
}

#[test]
fn built_in_fields_take_typed_values() {
    assert_eq!(
        parsed("state in (running, 'crashed')"),
        Expr::In {
            field: Field::State,
            values: vec![Value::State(RunState::Running), Value::State(RunState::Crashed)],
            negated: false
        }
    );
    assert_eq!(
        parsed("created_at > -7d"),
        Expr::Compare {
            field: Field::CreatedAt,
            op: Cmp::Gt,
            value: Value::Time(TimeValue::Relative(-7 * 86_400_000))
        }
    );
    assert_eq!(
        parsed(r#"ended_at < "2026-01-31""#),
        Expr::Compare {
            field: Field::EndedAt,
            op: Cmp::Lt,
            value: Value::Time(TimeValue::Absolute(1_769_817_600_000))
        }
    );
    assert_eq!(
        parsed("runtime >= 1.5h and runtime < 7200"),
        Expr::And(vec![
            Expr::Compare { field: Field::Runtime, op: Cmp::Ge, value: Value::Duration(5_400_000) },
            Expr::Compare { field: Field::Runtime, op: Cmp::Lt, value: Value::Duration(7_200_000) },
        ])
    );
    assert_eq!(
        parsed(r#"tags contains baseline and tags not in ("bad", old)"#),
        Expr::And(vec![
            Expr::Contains { field: Field::Tags, value: "baseline".into(), negated: false },
            Expr::In {
                field: Field::Tags,
                values: vec![Value::String("bad".into()), Value::String("old".into())],
                negated: true
            },
        ])
    );
    assert_eq!(
        parsed(r#"name ~ "resnet-*" and name !~ /^tmp-\d+$/"#),
        Expr::And(vec![
            Expr::Matches { field: Field::Name, pattern: Pattern::Glob("resnet-*".into()), negated: false },
            Expr::Matches { field: Field::Name, pattern: Pattern::Regex(r"^tmp-\d+$".into()), negated: true },
        ])
    );
    assert_eq!(
        parsed("tags contains tag-07 and name = run-1.5/b"),
        Expr::And(vec![
            Expr::Contains { field: Field::Tags, value: "tag-07".into(), negated: false },
            Expr::Compare { field: Field::Name, op: Cmp::Eq, value: Value::String("run-1.5/b".into()) },
        ])
    );
    assert_eq!(
        parsed("name = 42"),
        Expr::Compare { field: Field::Name, op: Cmp::Eq, value: Value::String("42".into()) }
    );
}

#[test]
fn errors_point_at_the_problem_and_say_what_was_expected() {
    let cases: &[(&str, usize, &str)] = &[
        ("summary.acc >", 13, "expected a number, a string, true, false or null"),
        ("summary.acc > 0.9 and", 21, "expected a field"),
        ("lr > 0.1", 0, "did you mean config.lr or summary.lr?"),
        ("state = done", 8, "`done` is not a state"),
        ("state > running", 6, "state is compared with `=`, `!=` or `in (…)`"),
        ("tags = x", 5, "tags are compared with"),
        ("(config.a = 1", 13, "expected `)`"),
        ("config.a = 1)", 12, "expected `and`, `or` or the end of the query"),
        ("created_at > 7", 13, "expected a time"),
        ("created_at > \"yesterday\"", 13, "is not a time"),
        ("name ~ /(unclosed/", 7, "invalid regular expression"),
        ("name = \"open", 7, "unterminated string"),
        ("config. = 1", 7, "expected a key after `config.`"),
        ("summary.x = 1q", 13, "unknown unit `q`"),
        ("name exists", 0, "every run has name"),
        ("config.a in 1", 12, "expected `(`"),
        ("config.a = 1 @", 13, "unexpected character `@`"),
        ("config.a < null", 11, "null is compared with `=` or `!=` only"),
        ("group = null", 8, "use `group missing`"),
        ("name = null", 7, "every run has name; it is never null"),
        ("config.amp > true", 13, "true and false are compared with `=` or `!=` only"),
        ("summary.x = 1e999", 12, "out of range"),
        ("config.a foo 1", 9, "found `foo`"),
    ];
    for (text, position, message) in cases {
        let error = error_of(text);
        assert_eq!(error.position, *position, "{text}: {error}");
        assert!(error.message.contains(message), "{text}: `{}` should say `{message}`", error.message);
    }
}

#[test]
fn limits_on_size_depth_and_lists_are_errors() {
    let deep = format!("{}config.a = 1{}", "(".repeat(QUERY_MAX_DEPTH + 1), ")".repeat(QUERY_MAX_DEPTH + 1));
    assert!(error_of(&deep).message.contains("nested deeper"));
    let nots = format!("{}config.a exists", "not ".repeat(QUERY_MAX_DEPTH + 1));
    assert!(error_of(&nots).message.contains("nested deeper"));
    let long = format!("config.a in ({})", vec!["1"; QUERY_MAX_IN_VALUES + 1].join(","));
    assert!(error_of(&long).message.contains("more than"));
    let huge = "x".repeat(QUERY_MAX_BYTES + 1);
    assert!(error_of(&huge).message.contains("the limit is"));
}

#[test]
fn injection_attempts_are_values_or_errors_never_sql() {
    let value = "x'; DROP TABLE runs; --";
    let text = format!("name = \"{value}\"");
    assert_eq!(parsed(&text), Expr::Compare { field: Field::Name, op: Cmp::Eq, value: Value::String(value.into()) });
    assert!(parse("name = x; DROP TABLE runs").is_err());
    assert_eq!(
        parsed(r#"config."a' OR 1=1 --" = 1"#),
        Expr::Compare { field: Field::Config("a' OR 1=1 --".into()), op: Cmp::Eq, value: Value::Number(1.0) }
    );
}

#[test]
fn printing_is_canonical() {
    let text = r#"(summary.val/acc >= 0.9 or config."a b" missing) and not tags contains "x" and created_at > -7d"#;
    assert_eq!(parsed(text).to_string(), text);
    assert_eq!(parsed("runtime < 90m").to_string(), "runtime < 90m");
    assert_eq!(parsed("ended_at > +1d").to_string(), "ended_at > +1d");
    assert_eq!(parsed(r#"name ~ /a\/b/"#).to_string(), r#"name ~ /a\/b/"#);
}

#[test]
fn sort_orders_parse_with_directions_and_quoted_keys() {
    let order = parse_order(r#"-summary.val/acc, config."a,b" ,+name"#).unwrap();
    assert_eq!(
        order,
        [
            SortKey { field: summary("val/acc"), descending: true },
            SortKey { field: Field::Config("a,b".into()), descending: false },
            SortKey { field: Field::Name, descending: false },
        ]
    );
    assert_eq!(parse_order("").unwrap(), []);
    for (text, position, message) in [
        ("name,", 5, "expected a field to sort by"),
        ("-tags", 1, "runs cannot be sorted by tags"),
        ("name desc", 5, "expected `,` or the end of the order"),
        ("lr", 0, "unknown field `lr`"),
    ] {
        let error = parse_order(text).unwrap_err();
        assert_eq!(error.position, position, "{text}: {error}");
        assert!(error.message.contains(message), "{text}: {error}");
    }
}

// -- properties ---------------------------------------------------------------------------------------------

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9_./-]{0,10}",
        "[a-z]{1,3}/[a-z]{1,3}",
        // Anything printable, including quotes, spaces and backslashes.
        "\\PC{1,8}",
    ]
}

fn number() -> impl Strategy<Value = f64> {
    prop_oneof![any::<f64>().prop_filter("finite", |n| n.is_finite()), -1e6..1e6f64, Just(-0.0)]
}

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,12}"
}

fn millis() -> impl Strategy<Value = i64> {
    prop_oneof![-(1i64 << 50)..(1i64 << 50), (-1000i64..1000).prop_map(|d| d * 86_400_000)]
}

fn state() -> impl Strategy<Value = RunState> {
    prop_oneof![
        Just(RunState::Running),
        Just(RunState::Finished),
        Just(RunState::Failed),
        Just(RunState::Crashed),
        Just(RunState::Killed)
    ]
}

fn field() -> impl Strategy<Value = Field> {
    prop_oneof![
        key().prop_map(Field::Config),
        key().prop_map(Field::Summary),
        Just(Field::Id),
        Just(Field::Name),
        Just(Field::State),
        Just(Field::Tags),
        Just(Field::Group),
        Just(Field::JobType),
        Just(Field::Notes),
        Just(Field::CreatedAt),
        Just(Field::EndedAt),
        Just(Field::Runtime),
    ]
}

/// A value a field of `kind` accepts with `=`.
fn value_for(kind: FieldKind) -> BoxedStrategy<Value> {
    match kind {
        FieldKind::Dynamic => prop_oneof![
            number().prop_map(Value::Number),
            text().prop_map(Value::String),
            any::<bool>().prop_map(Value::Bool),
            Just(Value::Null),
        ]
        .boxed(),
        FieldKind::Text | FieldKind::Tags => text().prop_map(Value::String).boxed(),
        FieldKind::State => state().prop_map(Value::State).boxed(),
        FieldKind::Time => prop_oneof![
            millis().prop_map(|ms| Value::Time(TimeValue::Relative(ms))),
            (0i64..4_102_444_800_000).prop_map(|ms| Value::Time(TimeValue::Absolute(ms))),
        ]
        .boxed(),
        FieldKind::Duration => millis().prop_map(Value::Duration).boxed(),
    }
}

fn condition() -> impl Strategy<Value = Expr> {
    let cmp = prop_oneof![Just(Cmp::Eq), Just(Cmp::Ne), Just(Cmp::Lt), Just(Cmp::Le), Just(Cmp::Gt), Just(Cmp::Ge)];
    (field(), cmp, any::<bool>(), 0..5u8, text()).prop_flat_map(|(field, op, negated, shape, needle)| {
        let kind = field.kind();
        let field_for_list = field.clone();
        match (shape, kind) {
            (0, FieldKind::Tags) | (1, _) => prop::collection::vec(value_for(kind), 1..4)
                .prop_map(move |values| Expr::In { field: field_for_list.clone(), values, negated })
                .boxed(),
            (0, _) => {
                let op = if kind == FieldKind::State {
                    if negated {
                        Cmp::Ne
                    } else {
                        Cmp::Eq
                    }
                } else {
                    op
                };
                value_for(kind)
                    .prop_filter("null and booleans only with = and !=", move |v| {
                        !matches!(v, Value::Null | Value::Bool(_)) || matches!(op, Cmp::Eq | Cmp::Ne)
                    })
                    .prop_map(move |value| Expr::Compare { field: field.clone(), op, value })
                    .boxed()
            }
            (2, FieldKind::Tags | FieldKind::Text | FieldKind::Dynamic) => {
                Just(Expr::Contains { field, value: needle, negated }).boxed()
            }
            (3, FieldKind::Tags | FieldKind::Text | FieldKind::Dynamic) => {
                let glob = Just(Pattern::Glob(needle));
                let regex = Just(Pattern::Regex("^a/b.*[0-9]+$".into()));
                prop_oneof![glob, regex]
                    .prop_map(move |pattern| Expr::Matches { field: field.clone(), pattern, negated })
                    .boxed()
            }
            _ if field.may_be_missing() || kind == FieldKind::Tags => Just(Expr::Exists { field, negated }).boxed(),
            _ => Just(Expr::Exists { field: Field::Group, negated }).boxed(),
        }
    })
}

fn expr() -> impl Strategy<Value = Expr> {
    condition().prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::And),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::Or),
            inner.prop_map(|e| Expr::Not(Box::new(e))),
        ]
    })
}

/// Equality that treats two NaN-free numbers bit for bit, so `-0.0` must survive printing.
fn same(a: &Expr, b: &Expr) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn printed_queries_parse_back_to_the_same_expression(expr in expr()) {
        let text = expr.to_string();
        let back = parse(&text).map_err(|e| TestCaseError::fail(format!("`{text}`: {e}")))?;
        let back = back.ok_or_else(|| TestCaseError::fail(format!("`{text}` parsed to nothing")))?;
        prop_assert!(same(&back, &expr), "`{}`\n{:?}\n!=\n{:?}", text, back, expr);
    }

    #[test]
    fn random_text_never_panics_and_errors_point_inside_it(text in "\\PC{0,60}") {
        if let Err(error) = parse(&text) {
            prop_assert!(error.position <= text.chars().count(), "{error} for `{text}`");
        }
    }

    #[test]
    fn mangled_queries_never_panic(expr in expr(), cut in any::<prop::sample::Index>(), junk in "[()\"'/~!<>=, a-z0-9.-]{0,3}") {
        let text = expr.to_string();
        let chars: Vec<char> = text.chars().collect();
        let at = cut.index(chars.len() + 1);
        let mangled: String = chars[..at].iter().copied().chain(junk.chars()).chain(chars[at..].iter().copied()).collect();
        if let Err(error) = parse(&mangled) {
            prop_assert!(error.position <= mangled.chars().count());
        }
    }
}
