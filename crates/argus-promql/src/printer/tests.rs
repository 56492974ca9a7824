use super::*;
use crate::parse;

fn canon(q: &str) -> String {
    canonical(&parse(q).unwrap_or_else(|e| panic!("{q}: {e}")))
}

/// Expected strings follow Prometheus 3's `Expr.String()`.
#[test]
fn canonical_forms() {
    let cases = [
        (
            r#"sum by() (task:errors:rate10s{job="s"})"#,
            r#"sum(task:errors:rate10s{job="s"})"#,
        ),
        (
            r#"sum by(code) (task:errors:rate10s{job="s"})"#,
            r#"sum by (code) (task:errors:rate10s{job="s"})"#,
        ),
        (r#"sum(x) by (code)"#, r#"sum by (code) (x)"#),
        (r#"sum without() (x)"#, r#"sum without () (x)"#),
        (
            r#"sum without(instance, "a.b") (x)"#,
            r#"sum without (instance, "a.b") (x)"#,
        ),
        (r#"topk(5, x)"#, r#"topk(5, x)"#),
        (r#"count_values("value", x)"#, r#"count_values("value", x)"#),
        ("a - on() c", "a - on () c"),
        (
            "a - on(b) group_left(x, y) c",
            "a - on (b) group_left (x, y) c",
        ),
        ("a - on(b) group_left c", "a - on (b) group_left () c"),
        ("a - ignoring(b) c", "a - ignoring (b) c"),
        ("a - ignoring() c", "a - c"),
        ("a and on(b) c", "a and on (b) c"),
        ("a or c", "a or c"),
        ("up > bool 0", "up > bool 0"),
        ("a offset 1m", "a offset 1m"),
        ("a offset -7m", "a offset -7m"),
        ("a offset 90m", "a offset 1h30m"),
        (r#"a{c="d"}[5m] offset 1m"#, r#"a{c="d"}[5m] offset 1m"#),
        ("a[1h:5m] offset 1m", "a[1h:5m] offset 1m"),
        ("a[1h:] @ 10", "a[1h:] @ 10.000"),
        (r#"{__name__="a"}"#, r#"{__name__="a"}"#),
        (r#"a{z="1", b!~"c"}"#, r#"a{b!~"c",z="1"}"#),
        (r#"{"a.b", c="\n"}"#, r#"{__name__="a.b",c="\n"}"#),
        ("a @ 10", "a @ 10.000"),
        ("a[1m] @ 10.5 offset 1m", "a[1m] @ 10.500 offset 1m"),
        ("a @ start()", "a @ start()"),
        ("a[1m] @ end()", "a[1m] @ end()"),
        ("-a", "-a"),
        ("-1", "-1"),
        ("1e3 + 0x10", "1000 + 16"),
        ("Inf", "+Inf"),
        ("-(1 + 2)", "-(1 + 2)"),
        ("rate(a[5m])", "rate(a[5m])"),
        (
            r#"label_replace(a, "b", "$1", "c", "(.*)")"#,
            r#"label_replace(a, "b", "$1", "c", "(.*)")"#,
        ),
        ("a + fill(0) b", "a + fill (0) b"),
        (
            "a + fill_left(1) fill_right(2) b",
            "a + fill_left (1) fill_right (2) b",
        ),
        ("a[step()]", "a[step()]"),
        (
            "rate(a[5m] anchored @ 10 offset 1m)",
            "rate(a[5m] anchored @ 10.000 offset 1m)",
        ),
        ("a offset 1m smoothed", "a smoothed offset 1m"),
        ("a @ 5 smoothed", "a @ 5.000 smoothed"),
        ("a offset (step() * 2)", "a offset (step() * 2)"),
        // Duration expressions print as written (constant or not), as upstream.
        ("a[26m+4m]", "a[26m + 4m]"),
        ("a[5m * 2]", "a[5m * 2]"),
        ("a[(1m+2m)*3]", "a[(1m + 2m) * 3]"),
        ("a[1h:(5m+1m)] offset (2m)", "a[1h:(5m + 1m)] offset (2m)"),
        ("a[min_of(step()+1,1h)]", "a[min_of(step() + 1, 1h)]"),
        ("a offset -(1m*2)", "a offset -(1m * 2)"),
        ("a[300]", "a[5m]"),
    ];
    for (q, want) in cases {
        assert_eq!(canon(q), want, "{q}");
        // The canonical form parses back to itself.
        assert_eq!(canon(want), want, "{want}");
    }
}

#[test]
fn pretty_splits_long_nodes() {
    let short = "sum by (job) (rate(a[5m]))";
    assert_eq!(pretty(&parse(short).unwrap()), short);

    let q = "sum by (job) (rate(http_requests_total{job=\"api-server\",handler=\"/api/v1/query\"}[5m])) / on (job) group_left () sum by (job) (rate(http_requests_total[5m]))";
    // As upstream: the operator of a split binary expression sits at the node's own level.
    let want = "  sum by (job) (rate(http_requests_total{handler=\"/api/v1/query\",job=\"api-server\"}[5m]))
/ on (job) group_left ()
  sum by (job) (rate(http_requests_total[5m]))";
    assert_eq!(pretty(&parse(q).unwrap()), want);

    let q = "histogram_quantile(0.9, sum by (le, job) (rate(http_request_duration_seconds_bucket{job=\"api-server\"}[5m])))";
    let want = "histogram_quantile(
  0.9,
  sum by (le, job) (rate(http_request_duration_seconds_bucket{job=\"api-server\"}[5m]))
)";
    assert_eq!(pretty(&parse(q).unwrap()), want);

    let q = "topk(10, sum without (instance, pod, container, namespace) (rate(container_cpu_usage_seconds_total[5m])))";
    let want = "topk(
  10,
  sum without (instance, pod, container, namespace) (rate(container_cpu_usage_seconds_total[5m]))
)";
    assert_eq!(pretty(&parse(q).unwrap()), want);
}

/// Every compliance-tester query prints to a form that parses back to the same tree.
#[test]
fn canonical_round_trips_compliance_queries() {
    let mut printed_count = 0;
    for (q, _) in crate::compliance::queries(&crate::parser::tests::compliance_file()) {
        // Some placeholder values make queries Prometheus refuses too (the parser test checks
        // the intended ones parse).
        let Ok(e) = parse(&q) else { continue };
        printed_count += 1;
        let printed = canonical(&e);
        let again = parse(&printed).unwrap_or_else(|err| panic!("{q} -> {printed}: {err}"));
        assert_eq!(canonical(&again), printed, "{q}");
        let p = pretty(&e);
        let again = parse(&p).unwrap_or_else(|err| panic!("{q} -> {p}: {err}"));
        assert_eq!(canonical(&again), printed, "{q}");
    }
    assert!(printed_count > 350, "only {printed_count} queries printed");
}
