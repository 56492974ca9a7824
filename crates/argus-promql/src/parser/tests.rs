use super::*;
use proptest::prelude::*;

fn show_err(q: &str) -> String {
    match parse(q) {
        Ok(e) => panic!("{q:?} parsed: {e:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn shapes() {
    let e = parse("sum by (job) (rate(http_requests_total{code=~\"5..\"}[5m] offset 1h))").unwrap();
    let Expr::Aggregate {
        op: AggOp::Sum,
        grouping,
        expr,
        ..
    } = e
    else {
        panic!()
    };
    assert_eq!(grouping, vec!["job"]);
    let Expr::Call { func, args, .. } = *expr else {
        panic!()
    };
    assert_eq!(func.name, "rate");
    let Expr::Matrix {
        selector, range_ms, ..
    } = &args[0]
    else {
        panic!()
    };
    assert_eq!((*range_ms, selector.offset_ms), (300_000, 3_600_000));
    assert_eq!(selector.matchers.len(), 2);

    // Precedence: 1 + 2 * 3 ^ 2 ^ 2; unary minus below ^.
    let Expr::Binary {
        op: BinOp::Add,
        rhs,
        ..
    } = parse("1 + 2 * 3 ^ 2 ^ 2").unwrap()
    else {
        panic!()
    };
    let Expr::Binary {
        op: BinOp::Mul,
        rhs,
        ..
    } = *rhs
    else {
        panic!()
    };
    let Expr::Binary {
        op: BinOp::Pow,
        rhs,
        ..
    } = *rhs
    else {
        panic!()
    };
    assert!(matches!(*rhs, Expr::Binary { op: BinOp::Pow, .. }));
    assert!(
        matches!(parse("-2 ^ 2").unwrap(), Expr::Unary { negate: true, .. })
            || matches!(parse("-2 ^ 2").unwrap(), Expr::Number { .. })
    );

    // Aggregation clause after the body, upper-case keywords.
    let Expr::Aggregate {
        grouping, without, ..
    } = parse("SUM(x) WITHOUT (a, b)").unwrap()
    else {
        panic!()
    };
    assert!(without);
    assert_eq!(grouping, vec!["a", "b"]);

    // Matching modifiers.
    let Expr::Binary {
        matching: Some(m),
        return_bool,
        ..
    } = parse("a > bool on(x) group_left(y) b").unwrap()
    else {
        panic!()
    };
    assert!(return_bool && m.on && m.card == Cardinality::ManyToOne);
    assert_eq!(
        (m.labels, m.include),
        (vec!["x".to_string()], vec!["y".to_string()])
    );

    // Subqueries, @, negative offsets.
    let Expr::Subquery {
        range_ms,
        step_ms,
        offset_ms,
        at,
        ..
    } = parse("rate(x[1m])[5m:30s] offset -1m @ 100").unwrap()
    else {
        panic!()
    };
    assert_eq!(
        (range_ms, step_ms, offset_ms, at),
        (
            300_000,
            Some(30_000),
            -60_000,
            Some(AtModifier::Timestamp(100_000))
        )
    );
    assert!(matches!(
        parse("x @ start()").unwrap(),
        Expr::Vector(VectorSelector {
            at: Some(AtModifier::Start),
            ..
        })
    ));
    assert!(matches!(
        parse("max_over_time(x[10m:])").unwrap(),
        Expr::Call { .. }
    ));
}

#[test]
fn errors_read_like_prometheus() {
    let cases = [
        ("sum(x) +", "1:9: parse error: unexpected end of input"),
        ("sum(", "1:5: parse error: unclosed left parenthesis"),
        (
            "foo{a=\"b\" by}",
            "1:11: parse error: unexpected identifier \"by\" in label matching, expected \",\" or \"}\"",
        ),
        (
            "sum by (a) (x) by (b)",
            "1:16: parse error: unexpected <by>",
        ),
        ("foo{", "unexpected end of input inside braces"),
        (
            "rate(x)",
            "expected type range vector in call to function \"rate\", got instant vector",
        ),
        ("nosuchfn(x)", "unknown function with name \"nosuchfn\""),
        (
            "x[5m] + 1",
            "binary expression must contain only scalar and instant vector types",
        ),
        (
            "1 > 2",
            "comparisons between scalars must use BOOL modifier",
        ),
        (
            "x + bool y",
            "bool modifier can only be used on comparison operators",
        ),
        (
            "{a=\"\"}",
            "vector selector must contain at least one non-empty matcher",
        ),
        (
            "topk(x)",
            "wrong number of arguments for aggregate expression provided, expected 2, got 1",
        ),
        (
            "x offset 1m offset 1m",
            "offset may not be set multiple times",
        ),
        ("(x)[5m]", "ranges only allowed for vector selectors"),
        (
            "x{a=~\"(\"}",
            "1:3: parse error: error parsing regexp: missing closing ): `(`",
        ),
        (
            "x{a!~\"a)\"}",
            "1:3: parse error: error parsing regexp: unexpected ): `a)`",
        ),
        (
            "x{a=~\"b[c\"}",
            "1:3: parse error: error parsing regexp: missing closing ]: `[c`",
        ),
        (
            "x{a=~\"a[]b\"}",
            "1:3: parse error: error parsing regexp: missing closing ]: `[]b`",
        ),
        (
            "x{a=~\"\\\\\"}",
            "1:3: parse error: error parsing regexp: trailing backslash at end of expression: ``",
        ),
        (
            "1 and 2",
            "set operator \"and\" not allowed in binary scalar expression",
        ),
        (
            "clamp(x, 1)",
            "expected 3 argument(s) in call to \"clamp\", got 2",
        ),
        (
            "a\n  + )",
            "2:6: parse error: unexpected right parenthesis ')'",
        ),
        (
            "a[5m] anchored smoothed",
            "anchored and smoothed modifiers cannot be used together",
        ),
        (
            "a[5m:1m] anchored",
            "anchored modifier is not supported for subqueries",
        ),
        ("(a) smoothed", "smoothed modifier not implemented"),
    ];
    for (q, want) in cases {
        let got = show_err(q);
        assert!(got.contains(want), "{q:?}: {got}");
    }
}

/// The compliance tester's queries, placeholders expanded (`../shared` beside the checkout).
pub(crate) fn compliance_file() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/compliance/promql-test-queries.yml"
    );
    std::fs::read_to_string(path).expect("../shared/compliance must sit beside the checkout")
}

/// Every query of the public compliance tester parses (placeholders filled with their first
/// values; some other values, like `and` between scalars, are meant to be refused).
#[test]
fn compliance_queries_parse() {
    let mut failures = Vec::new();
    let queries: Vec<(String, bool)> = crate::compliance::templates(&compliance_file())
        .into_iter()
        .map(|(q, fail)| (crate::compliance::expand(&q).swap_remove(0), fail))
        .collect();
    for (q, should_fail) in &queries {
        // should_fail cases fail at evaluation, not parsing.
        if let Err(e) = parse(q)
            && !should_fail
        {
            failures.push(format!("{q}: {e}"));
        }
    }
    assert!(queries.len() > 100, "only {} queries found", queries.len());
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

proptest! {
    #[test]
    fn never_panics_on_bytes(s in "\\PC{0,40}") {
        let _ = parse(&s);
    }

    #[test]
    fn never_panics_on_mutated_queries(base in prop::sample::select(vec![
        "sum by (job) (rate(x{a=\"b\"}[5m]))", "a + on(b) group_left c", "x[5m:1m] offset -2m @ 3",
        "histogram_quantile(0.9, sum by (le) (rate(b[1m])))", "-x ^ 2 % 3 unless y",
    ]), at in 0usize..60, insert in "[\\[\\](){}@:,=~!\"'` a-z0-9+*/^%-]{0,3}") {
        let mut s = base.to_string();
        let at = (at % (s.len() + 1)).min(s.len());
        if s.is_char_boundary(at) {
            s.insert_str(at, &insert);
        }
        let _ = parse(&s);
        let cut = at.min(s.len());
        if s.is_char_boundary(cut) {
            let _ = parse(&s[..cut]);
        }
    }
}

/// Experimental syntax and functions are refused unless their feature is on, with
/// Prometheus's messages and positions.
#[test]
fn experimental_features_need_their_flags() {
    use crate::parser::{Features, parse_with};
    let off = |q: &str| parse_with(q, Features::NONE).unwrap_err().to_string();
    assert_eq!(
        off("mad_over_time(x[5m])"),
        "1:1: parse error: function \"mad_over_time\" is not enabled"
    );
    assert_eq!(
        off("sum(limitk(2, x))"),
        "1:5: parse error: limitk() is experimental and must be enabled with --enable-feature=promql-experimental-functions"
    );
    assert_eq!(
        off("rate(x[5m] anchored)"),
        "1:6: parse error: anchored modifier is experimental and not enabled"
    );
    assert_eq!(
        off("x smoothed"),
        "1:1: parse error: smoothed modifier is experimental and not enabled"
    );
    assert_eq!(
        off("rate(x[5m+1m])"),
        "1:8: parse error: experimental duration expression is not enabled"
    );
    assert_eq!(
        off("x offset step()"),
        "1:9: parse error: experimental duration expression is not enabled"
    );
    assert_eq!(
        off("a + fill(0) b"),
        "1:1: parse error: binop fill modifiers are experimental and not enabled"
    );
    // Plain durations, negative offsets and ordinary functions need nothing.
    for q in [
        "rate(x[5m])",
        "x offset -5m",
        "x[1h:5m] offset 1m",
        "sum(topk(2, x))",
    ] {
        parse_with(q, Features::NONE).unwrap();
    }
    let mut f = Features::NONE;
    assert!(f.enable("promql-experimental-functions"));
    assert!(!f.enable("exemplar-storage"));
    parse_with("mad_over_time(x[5m])", f).unwrap();
    for q in [
        "mad_over_time(x[5m])",
        "rate(x[5m+1m] anchored)",
        "a + fill(0) b",
    ] {
        parse_with(q, Features::ALL).unwrap();
    }
}

/// String escapes build bytes as Go does: `\x` and octal escapes are single bytes (two of
/// them can make one UTF-8 character), `\u` is a character; bytes that are not UTF-8 survive
/// and print back as `\x..`.
#[test]
fn string_escapes_are_go_bytes() {
    let value = |q: &str| match parse(q).unwrap() {
        Expr::String { value, .. } => value,
        other => panic!("{other:?}"),
    };
    assert_eq!(value(r#""\xc3\xa9""#), "é");
    assert_eq!(value(r#""\303\251""#), "é");
    assert_eq!(value(r#""\u00e9""#), "é");
    assert_eq!(value(r#"'\x41'"#), "A");
    assert_eq!(
        argus_model::gofmt::quote(&value(r#""a\xc5z""#)),
        r#""a\xc5z""#
    );
    assert!(parse(r#""\xc""#).is_err());
}

/// Durations that depend on the query keep their place for Prometheus's check as it
/// prepares the query; constant ones are checked while parsing.
#[test]
fn query_dependent_durations_are_checked_per_query() {
    let e = parse("foo[step()]").unwrap();
    assert_eq!(
        e.check_durations(0, 0),
        Err("4:10: duration must be greater than 0".to_string())
    );
    assert_eq!(e.check_durations(15_000, 60_000), Ok(()));
    let e = parse("max_over_time(foo[5m:step()-step()])").unwrap();
    assert_eq!(
        e.check_durations(15_000, 60_000),
        Err("21:34: duration must be greater than 0".to_string())
    );
    let e = parse("rate(foo[-step()])").unwrap();
    assert_eq!(
        e.check_durations(15_000, 0),
        Err("9:16: duration must be greater than 0".to_string())
    );
    // Printed as written.
    assert_eq!(
        crate::printer::canonical(&parse("foo[-step()]").unwrap()),
        "foo[-step()]"
    );
    assert!(parse("foo[0s]").is_err());
    assert!(parse("foo[-1]").is_err());
    // A constant expression is checked with the query, as Prometheus checks it.
    let e = parse("foo[0+-2^2]").unwrap();
    assert_eq!(
        e.check_durations(15_000, 60_000),
        Err("4:10: duration must be greater than 0".to_string())
    );
    assert_eq!(parse("foo[2m*15]").unwrap().check_durations(0, 0), Ok(()));
    // Division and modulo by zero, at the operation's place; offsets too (they may be
    // negative); a subquery's offset first, then its step, then its range.
    let cases = [
        ("foo[1m/step()]", 0, "4:13: division by zero"),
        ("foo[1m/(1-1)]", 15_000, "4:11: division by zero"),
        (
            "foo[5m + 1m % (step()-step())]",
            15_000,
            "9:28: modulo by zero",
        ),
        ("foo offset (1m/step())", 0, "12:21: division by zero"),
        ("foo[5m] offset -(1m/step())", 0, "17:26: division by zero"),
        (
            "max_over_time(foo[1m/step():1m] offset (2m/step()))",
            0,
            "40:49: division by zero",
        ),
        (
            "max_over_time(foo[step()/step():step()])",
            0,
            "32:38: duration must be greater than 0",
        ),
        (
            "foo[step()*2^1e3]",
            15_000,
            "4:16: duration is out of range",
        ),
    ];
    for (query, step_ms, want) in cases {
        let e = parse(query).unwrap();
        assert_eq!(
            e.check_durations(step_ms, 0),
            Err(want.to_string()),
            "{query}"
        );
    }
    assert_eq!(
        parse("foo offset -(step()/2)")
            .unwrap()
            .check_durations(15_000, 0),
        Ok(())
    );
}

/// `match[]` is read by Prometheus's selector grammar: what follows the selector, or stands
/// where one should be, is `unexpected` (checked against the Debian Prometheus).
#[test]
fn metric_selectors_are_read_by_the_selector_grammar() {
    let cases = [
        ("sum(m)", "1:4: parse error: unexpected \"(\""),
        ("m offset 5m", "1:3: parse error: unexpected <offset>"),
        ("m[5m]", "1:2: parse error: unexpected \"[\""),
        ("1", "1:1: parse error: unexpected number \"1\""),
        ("m + 1", "1:3: parse error: unexpected <op:+>"),
        ("  ", "1:3: parse error: unexpected end of input"),
        ("", "1:1: parse error: unexpected end of input"),
        (
            "m{",
            "1:3: parse error: unexpected end of input inside braces",
        ),
        (
            "m{a=\"b\"} x",
            "1:10: parse error: unexpected identifier \"x\"",
        ),
    ];
    for (input, want) in cases {
        let got = parse_metric_selector(input)
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert_eq!(got, want, "{input:?}");
    }
    let names = |input: &str| -> Vec<String> {
        parse_metric_selector(input)
            .unwrap()
            .iter()
            .map(|m| m.to_string())
            .collect()
    };
    assert_eq!(names("sum"), vec![r#"__name__="sum""#]);
    assert_eq!(
        names(r#"sum{a="b"}"#),
        vec![r#"a="b""#, r#"__name__="sum""#]
    );
    assert_eq!(names(r#"{a="b"}"#), vec![r#"a="b""#]);
    assert!(names(r#"m{a="b"}"#).contains(&r#"__name__="m""#.to_string()));
}

/// An aggregation's argument of the wrong type is reported at the argument, as Prometheus's
/// `expectType` reports it (checked against the Debian Prometheus).
#[test]
fn aggregation_argument_types_are_reported_at_the_argument() {
    assert_eq!(
        parse("count(m[1m])").unwrap_err().to_string(),
        "1:7: parse error: expected type instant vector in aggregation expression, got range vector"
    );
}

/// Keywords before `(` are not function names (checked against the Debian Prometheus).
#[test]
fn keywords_are_not_function_names() {
    for (input, want) in [
        ("atan2(m, 1)", "1:1: parse error: unexpected <op:atan2>"),
        ("and(m)", "1:4: parse error: unexpected \"(\""),
        ("offset(m)", "1:7: parse error: unexpected \"(\""),
        ("by(m)", "1:3: parse error: unexpected \"(\""),
    ] {
        assert_eq!(parse(input).unwrap_err().to_string(), want, "{input}");
    }
    assert!(parse("and").is_ok());
    assert!(parse("rate(m[1m])").is_ok());
}
