//! The query list of the public PromQL compliance tester
//! (`../shared/compliance/promql-test-queries.yml`) with its `{{.placeholder}}`s expanded the
//! way the tester expands them. Used by the parser, printer and differential tests.

/// Every query with each placeholder replaced by each of its values (the cross product), and
/// whether the tester expects it to fail.
pub fn queries(yaml: &str) -> Vec<(String, bool)> {
    templates(yaml)
        .into_iter()
        .flat_map(|(q, fail)| expand(&q).into_iter().map(move |e| (e, fail)))
        .collect()
}

/// The queries as written, placeholders left in, with their `should_fail` flag.
pub fn templates(yaml: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut lines = yaml.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(rest) = line.trim_start().strip_prefix("- query: ") else {
            continue;
        };
        let should_fail = lines
            .peek()
            .is_some_and(|l| l.contains("should_fail: true"));
        let mut q = rest.trim().to_string();
        if (q.starts_with('\'') && q.ends_with('\'')) || (q.starts_with('"') && q.ends_with('"')) {
            q = q[1..q.len() - 1].replace("''", "'");
        }
        out.push((q, should_fail));
    }
    out
}

/// The query once per combination of placeholder values; the first uses each first value.
pub fn expand(query: &str) -> Vec<String> {
    let values: &[(&str, &[&str])] = &[
        ("{{.arithBinOp}}", &["+", "-", "*", "/", "%", "^"]),
        ("{{.binOp}}", &["+", "/", "==", ">", "and", "or", "unless"]),
        ("{{.clampFunc}}", &["clamp_min", "clamp_max"]),
        ("{{.compBinOp}}", &["==", "!=", "<", ">", "<=", ">="]),
        (
            "{{.dateFunc}}",
            &[
                "day_of_month",
                "day_of_week",
                "days_in_month",
                "hour",
                "minute",
                "month",
                "year",
            ],
        ),
        ("{{.extrapolatedRateFunc}}", &["delta", "rate", "increase"]),
        ("{{.instantRateFunc}}", &["idelta", "irate"]),
        ("{{.offset}}", &["1m", "5m", "10m"]),
        (
            "{{.quantile}}",
            &["-0.5", "0.1", "0.5", "0.75", "0.95", "0.9999", "1", "1.5"],
        ),
        ("{{.range}}", &["1m", "5m", "15m"]),
        (
            "{{.simpleAggrOp}}",
            &["sum", "avg", "max", "min", "count", "stddev", "stdvar"],
        ),
        (
            "{{.simpleMathFunc}}",
            &[
                "abs", "ceil", "floor", "exp", "sqrt", "ln", "log2", "log10", "round",
            ],
        ),
        (
            "{{.simpleTimeAggrOp}}",
            &[
                "sum", "avg", "max", "min", "count", "stddev", "stdvar", "last", "present",
            ],
        ),
        ("{{.topBottomOp}}", &["topk", "bottomk"]),
    ];
    let mut out = vec![query.to_string()];
    for (k, vs) in values {
        if out[0].contains(k) {
            out = out
                .iter()
                .flat_map(|q| vs.iter().map(move |v| q.replace(k, v)))
                .collect();
        }
    }
    out
}
