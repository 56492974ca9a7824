use super::*;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/promql-tests");

fn floats(items: &str) -> Vec<Option<f64>> {
    parse_items(items)
        .unwrap()
        .into_iter()
        .map(|v| match v {
            Some(Val::F(f)) => Some(f),
            None => None,
            Some(Val::H(..)) => panic!("histogram in {items:?}"),
        })
        .collect()
}

#[test]
fn series_notation() {
    assert_eq!(
        floats("0+10x3"),
        vec![Some(0.0), Some(10.0), Some(20.0), Some(30.0)]
    );
    assert_eq!(
        floats("1x2 _x2 _ -2-1x1"),
        vec![
            Some(1.0),
            Some(1.0),
            Some(1.0),
            None,
            None,
            None,
            Some(-2.0),
            Some(-3.0)
        ]
    );
    assert!(is_stale_nan(floats("stale")[0].unwrap()));
    assert!(floats("1e3+1e-1x1")[1].unwrap() == 1000.1);
    let (l, rest) = parse_metric(r#"http_requests{job="a", instance='b'} 1 2"#).unwrap();
    assert_eq!(
        l.to_string(),
        r#"{__name__="http_requests", instance="b", job="a"}"#
    );
    assert_eq!(rest.trim(), "1 2");
    let (l, _) = parse_metric("{} 1").unwrap();
    assert!(l.is_empty());
}

#[test]
fn a_small_script_runs() {
    let script = "load 5m\n  m{a=\"1\"} 0+10x10\n  m{a=\"2\"} 0+20x10\n\neval instant at 50m sum(m)\n  {} 300\n\neval instant at 50m m{a=\"1\"}\n  m{a=\"1\"} 999\n\neval range from 0 to 10m step 5m m{a=\"2\"}\n  m{a=\"2\"} 0 20 40\n\neval instant at 0m 1 + 1\n  2\n\neval instant at 0m nosuch(\n  expect fail\n";
    let results = run_script(script).unwrap();
    let failed: Vec<usize> = results
        .iter()
        .filter(|r| r.failure.is_some())
        .map(|r| r.line)
        .collect();
    // The second eval expects a wrong value; the last one does not even parse (upstream treats
    // that as a broken file; here it is a failing case).
    assert_eq!(failed, vec![8, 17], "{results:?}");
}

/// Every upstream script, against the list of cases known not to pass yet. The list may only
/// shrink: a listed case that passes, or an unlisted case that fails, fails this test.
#[test]
fn upstream_scripts_against_known_failures() {
    let known: std::collections::BTreeSet<String> = include_str!("known_failures.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .collect();
    let mut entries: Vec<_> = std::fs::read_dir(DIR)
        .expect("../shared/promql-tests must sit beside the checkout")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    entries.sort();
    assert_eq!(entries.len(), 21);
    let (mut passed, mut total) = (0, 0);
    let mut new_failures = Vec::new();
    let mut now_passing = Vec::new();
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let results = run_script(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        for r in results {
            total += 1;
            let key = format!("{name}:{}", r.line);
            match (&r.failure, known.contains(&key)) {
                (None, false) => passed += 1,
                (None, true) => now_passing.push(key),
                (Some(f), false) => new_failures.push(format!("{key} {} -- {f}", r.query)),
                (Some(_), true) => {}
            }
        }
    }
    eprintln!(
        "upstream PromQL scripts: {passed} passed, {} failed",
        total - passed
    );
    assert_eq!(total, 2214, "every eval must be counted");
    assert!(
        new_failures.is_empty(),
        "{} cases fail that are not in known_failures.txt:\n{}",
        new_failures.len(),
        new_failures.join("\n")
    );
    assert!(
        now_passing.is_empty(),
        "now passing, remove from known_failures.txt: {now_passing:?}"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
    /// Random histogram series (any schema, odd bucket layouts, NaN/Inf counts, mixed with
    /// floats) through every histogram-aware function and operator: evaluation may fail
    /// with an error but never panics.
    #[test]
    fn histogram_queries_never_panic(
        samples in proptest::collection::vec(
            (
                proptest::prop_oneof![-6i32..10, proptest::strategy::Just(-53), proptest::strategy::Just(30)],
                proptest::prop_oneof![0.0..50.0f64, proptest::strategy::Just(f64::NAN)],
                proptest::collection::vec(0.0..10.0f64, 0..5),
                -5i32..5,
                proptest::collection::vec(0.0..10.0f64, 0..3),
                proptest::prop_oneof![proptest::strategy::Just(0.0), 0.0..2.0f64],
                0u8..5,
            ),
            1..6,
        )
    ) {
        let hints = ["", " counter_reset_hint:gauge", " counter_reset_hint:reset", " counter_reset_hint:not_reset", ""];
        let items: Vec<String> = samples
            .iter()
            .map(|(schema, count, buckets, offset, neg, zt, hint)| {
                if *hint == 4 {
                    return format!("{count}");
                }
                let list = |v: &Vec<f64>| v.iter().map(|b| b.to_string()).collect::<Vec<_>>().join(" ");
                let custom = if *schema == -53 { " custom_values:[1 2 4]".to_string() } else { String::new() };
                let negative = if *schema == -53 { String::new() } else { format!(" n_buckets:[{}] z_bucket_w:{zt} z_bucket:1", list(neg)) };
                format!(
                    "{{{{schema:{schema} count:{count} sum:{count} buckets:[{}] offset:{offset}{custom}{negative}{}}}}}",
                    list(buckets),
                    hints[*hint as usize]
                )
            })
            .collect();
        let queries = [
            "h", "-h", "h * 2", "h / 0", "h + h", "h - h", "h == h", "h > 1", "h </ 1.5", "h >/ -0.5",
            "sum(h)", "avg(h)", "count(h)", "max(h)", "topk(1, h)", "quantile(0.5, h)",
            "histogram_quantile(0.9, h)", "histogram_quantile(NaN, h)", "histogram_fraction(0, 2, h)",
            "histogram_count(h)", "histogram_stddev(h)", "histogram_avg(h)",
            "rate(h[10m])", "increase(h[10m])", "delta(h[10m])", "irate(h[10m])", "idelta(h[10m])",
            "sum_over_time(h[10m])", "avg_over_time(h[10m])", "resets(h[10m])", "changes(h[10m])",
            "last_over_time(h[10m])", "max_over_time(h[10m])", "deriv(h[10m])",
            "rate(h[10m] anchored)", "increase(h[10m] smoothed)", "h smoothed", "changes(h[10m] anchored)",
            "rate(h[10m:1m])", "histogram_quantiles(h, \"q\", 0.1, 0.9)", "count_values(\"v\", h)",
        ];
        let mut script = format!("load 1m\n  h {}\n", items.join(" "));
        for q in queries {
            script.push_str(&format!("\neval instant at 5m {q}\n  expect fail\n\neval range from 0 to 6m step 1m {q}\n  expect fail\n"));
        }
        // Failures are expected (every case says `expect fail`); panics are not.
        let results = run_script(&script).unwrap_or_else(|e| panic!("{e}\n{script}"));
        proptest::prop_assert_eq!(results.len(), 2 * queries.len());
    }
}

/// A many-to-many error names the first two series found with one signature, sorted, as
/// Prometheus does, however many more share it.
#[test]
fn many_to_many_errors_name_two_series() {
    let script = "load 5m\n  dup{l=\"c\"} 1\n  dup{l=\"a\"} 2\n  dup{l=\"b\"} 3\n  one 4\n\n\
eval instant at 0m one > on() dup\n  expect fail msg: found duplicate series for the match group {} on the right hand-side of the operation: [{__name__=\"dup\", l=\"a\"}, {__name__=\"dup\", l=\"b\"}];many-to-many matching not allowed: matching labels must be unique on one side\n\n\
eval instant at 0m dup < on() group_right one\n  expect fail msg: found duplicate series for the match group {} on the left hand-side of the operation: [{__name__=\"dup\", l=\"a\"}, {__name__=\"dup\", l=\"b\"}];many-to-many matching not allowed: matching labels must be unique on one side\n";
    let results = run_script(script).unwrap();
    assert_eq!(results.len(), 2);
    assert!(results.iter().all(|r| r.failure.is_none()), "{results:?}");
}
