use super::*;
use crate::parse;

/// In-memory store for tests.
struct Mem(Vec<(Labels, Vec<(i64, f64)>)>);

impl Queryable for Mem {
    fn select(&self, mint: i64, maxt: i64, matchers: &[Matcher]) -> Vec<(Labels, Vec<(i64, f64)>)> {
        self.0
            .iter()
            .filter(|(l, _)| {
                matchers
                    .iter()
                    .all(|m| m.matches(l.get(&m.name).unwrap_or("")))
            })
            .map(|(l, p)| {
                (
                    l.clone(),
                    p.iter()
                        .copied()
                        .filter(|x| x.0 >= mint && x.0 <= maxt)
                        .collect(),
                )
            })
            .filter(|(_, p): &(Labels, Vec<(i64, f64)>)| !p.is_empty())
            .collect()
    }
}

const M: i64 = 60_000;

/// `metric{labels} start+step x n` every `interval`.
fn series(
    labels: &[(&str, &str)],
    interval: i64,
    start: f64,
    step: f64,
    n: usize,
) -> (Labels, Vec<(i64, f64)>) {
    (
        Labels::from_pairs(labels),
        (0..=n)
            .map(|i| (i as i64 * interval, start + step * i as f64))
            .collect(),
    )
}

fn data() -> Mem {
    Mem(vec![
        series(
            &[
                ("__name__", "http_requests"),
                ("job", "api"),
                ("path", "/foo"),
            ],
            5 * M,
            0.0,
            10.0,
            10,
        ),
        series(
            &[
                ("__name__", "http_requests"),
                ("job", "api"),
                ("path", "/bar"),
            ],
            5 * M,
            0.0,
            20.0,
            10,
        ),
        series(
            &[
                ("__name__", "http_requests"),
                ("job", "web"),
                ("path", "/foo"),
            ],
            5 * M,
            0.0,
            30.0,
            10,
        ),
        series(
            &[("__name__", "limit"), ("job", "api")],
            5 * M,
            100.0,
            0.0,
            10,
        ),
    ])
}

fn instant(q: &str, t: i64) -> Vec<(String, f64)> {
    let engine = Engine::new(EngineOptions::default());
    let expr = parse(q).unwrap();
    match engine.instant(&data(), &expr, t).unwrap() {
        Value::Vector(v) => {
            let mut out: Vec<(String, f64)> =
                v.into_iter().map(|s| (s.labels.to_string(), s.v)).collect();
            out.sort_by(|a, b| a.0.cmp(&b.0));
            out
        }
        Value::Scalar { v, .. } => vec![("scalar".into(), v)],
        other => panic!("{other:?}"),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[test]
fn selectors_lookback_offset_and_staleness() {
    assert_eq!(
        instant("http_requests{path=\"/foo\", job=\"api\"}", 50 * M),
        vec![(
            r#"{__name__="http_requests", job="api", path="/foo"}"#.into(),
            100.0
        )]
    );
    // 4m after the last sample still within the 5m lookback, 6m after it not.
    assert_eq!(instant("limit", 54 * M).len(), 1);
    assert!(instant("limit", 56 * M).is_empty());
    assert_eq!(instant("limit offset 10m", 60 * M)[0].1, 100.0);
    // `@ 25` is 25 s: the sample at 0 is inside the lookback.
    assert_eq!(
        instant("http_requests{path=\"/bar\"} @ 25", 50 * M)[0].1,
        0.0
    );
    assert!(instant("http_requests{path=\"/bar\"} @ -301", 50 * M).is_empty());
    assert_eq!(
        instant("http_requests{path=\"/bar\"} @ 300", 50 * M)[0].1,
        20.0
    );
    let stale = Mem(vec![(
        Labels::from_pairs(&[("__name__", "s")]),
        vec![(0, 1.0), (M, argus_model::stale_nan())],
    )]);
    let engine = Engine::new(EngineOptions::default());
    let Value::Vector(v) = engine.instant(&stale, &parse("s").unwrap(), 2 * M).unwrap() else {
        panic!()
    };
    assert!(v.is_empty(), "stale marker must hide the series");
}

#[test]
fn rate_increase_irate_match_prometheus() {
    // Values from Prometheus's extrapolation rules (see functions.test).
    let inc = instant(
        "increase(http_requests{path=\"/foo\",job=\"api\"}[50m])",
        50 * M,
    );
    assert_eq!(inc, vec![(r#"{job="api", path="/foo"}"#.into(), 100.0)]);
    let rate = instant(
        "rate(http_requests{path=\"/foo\",job=\"api\"}[50m])",
        50 * M,
    );
    assert!(close(rate[0].1, 100.0 / 3000.0), "{rate:?}");
    let irate = instant("irate(http_requests{path=\"/bar\"}[50m])", 50 * M);
    assert!(close(irate[0].1, 20.0 / 300.0));
    let delta = instant("delta(limit[50m])", 50 * M);
    assert_eq!(delta[0].1, 0.0);
    assert_eq!(instant("count_over_time(limit[50m])", 50 * M)[0].1, 10.0);
    assert_eq!(
        instant("max_over_time(http_requests{job=\"web\"}[50m])", 50 * M)[0].1,
        300.0
    );
}

#[test]
fn aggregations_and_binary_operators() {
    assert_eq!(
        instant("sum by (job) (http_requests)", 50 * M),
        vec![
            (r#"{job="api"}"#.into(), 300.0),
            (r#"{job="web"}"#.into(), 300.0),
        ]
    );
    assert_eq!(
        instant("count without (path) (http_requests)", 50 * M),
        vec![
            (r#"{job="api"}"#.into(), 2.0),
            (r#"{job="web"}"#.into(), 1.0),
        ]
    );
    assert_eq!(instant("topk(1, http_requests)", 50 * M)[0].1, 300.0);
    assert_eq!(instant("quantile(0.5, http_requests)", 50 * M)[0].1, 200.0);
    assert_eq!(instant("avg(http_requests)", 50 * M)[0].1, 200.0);
    assert!(close(
        instant("stddev(http_requests)", 50 * M)[0].1,
        (20000.0f64 / 3.0).sqrt()
    ));
    // Vector/scalar: name dropped for arithmetic, kept by a filtering comparison.
    assert_eq!(
        instant("limit * 2", 50 * M),
        vec![(r#"{job="api"}"#.into(), 200.0)]
    );
    assert_eq!(instant("http_requests > 150", 50 * M).len(), 2);
    assert_eq!(
        instant("http_requests > bool 150", 50 * M)
            .iter()
            .filter(|s| s.1 == 1.0)
            .count(),
        2
    );
    // Vector matching.
    assert_eq!(
        instant("http_requests / on(job) group_left limit", 50 * M),
        vec![
            (r#"{job="api", path="/bar"}"#.into(), 2.0),
            (r#"{job="api", path="/foo"}"#.into(), 1.0),
        ]
    );
    assert_eq!(instant("http_requests and on(job) limit", 50 * M).len(), 2);
    assert_eq!(
        instant("http_requests unless on(job) limit", 50 * M).len(),
        1
    );
    assert_eq!(instant("1 + 2 * 3", 0), vec![("scalar".into(), 7.0)]);
    let engine = Engine::new(EngineOptions::default());
    let err = engine
        .instant(
            &data(),
            &parse("http_requests + on(job) limit").unwrap_or_else(|e| panic!("{e}")),
            50 * M,
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("many-to-one matching must be explicit"),
        "{err}"
    );
}

#[test]
fn range_query_and_subquery() {
    let engine = Engine::new(EngineOptions::default());
    let expr = parse("sum(http_requests)").unwrap();
    let series = engine.range(&data(), &expr, 0, 50 * M, 10 * M).unwrap();
    assert_eq!(series.len(), 1);
    assert_eq!(
        series[0].points,
        vec![
            (0, 0.0),
            (10 * M, 120.0),
            (20 * M, 240.0),
            (30 * M, 360.0),
            (40 * M, 480.0),
            (50 * M, 600.0)
        ]
    );
    let sub = instant("max_over_time(sum(http_requests)[30m:10m])", 50 * M);
    assert_eq!(sub[0].1, 600.0);
    // Without info series, info() leaves its input unchanged.
    let Value::Vector(v) = engine
        .instant(&data(), &parse("info(limit)").unwrap(), 0)
        .unwrap()
    else {
        panic!("vector expected")
    };
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].labels.metric_name(), "limit");
}

#[test]
fn sample_limit_is_enforced() {
    let engine = Engine::new(EngineOptions {
        max_samples: 5,
        ..EngineOptions::default()
    });
    let err = engine
        .instant(&data(), &parse("http_requests[1h]").unwrap(), 50 * M)
        .unwrap_err();
    assert_eq!(err, EvalError::TooManySamples);
}

#[test]
fn deadline_and_cancellation_stop_evaluation() {
    let past = Engine::new(EngineOptions {
        deadline: Some(std::time::Instant::now() - std::time::Duration::from_millis(1)),
        ..EngineOptions::default()
    });
    let expr = parse("sum(http_requests)").unwrap();
    assert_eq!(
        past.range(&data(), &expr, 0, 50 * M, M).unwrap_err(),
        EvalError::Timeout
    );
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let canceled = Engine::new(EngineOptions {
        canceled: Some(flag),
        ..EngineOptions::default()
    });
    assert_eq!(
        canceled.instant(&data(), &expr, 0).unwrap_err(),
        EvalError::Canceled
    );
}

/// A store that raises the query's cancel flag as it hands over its first series, and
/// counts the series it handed over.
struct CancelsWhileRead {
    mem: Mem,
    flag: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handed: std::cell::Cell<usize>,
}

impl Queryable for CancelsWhileRead {
    fn select(&self, mint: i64, maxt: i64, matchers: &[Matcher]) -> Vec<(Labels, Vec<(i64, f64)>)> {
        self.mem.select(mint, maxt, matchers)
    }
    fn visit_floats(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
        ordered: bool,
        visit: &mut dyn FnMut(&Labels, &[(i64, f64)], bool) -> std::ops::ControlFlow<()>,
    ) {
        self.mem
            .visit_floats(mint, maxt, matchers, ordered, &mut |l, p, h| {
                self.handed.set(self.handed.get() + 1);
                let flow = visit(l, p, h);
                self.flag.store(true, std::sync::atomic::Ordering::Relaxed);
                flow
            })
    }
}

#[test]
fn cancellation_stops_reads_that_compute_while_visiting() {
    let n = 10 * VISITS_PER_CHECK;
    let mem = Mem((0..n)
        .map(|i| {
            let i = i.to_string();
            series(&[("__name__", "x"), ("i", &i)], 15_000, 0.0, 1.0, 40)
        })
        .collect());
    for query in ["rate(x[5m])", "sum(rate(x[5m]))", "count(x)"] {
        let expr = parse(query).unwrap();
        let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let store = CancelsWhileRead {
            mem: Mem(mem.0.clone()),
            flag: flag.clone(),
            handed: Default::default(),
        };
        // Not canceled: the read goes through every series (the shape is read while visiting).
        let whole = Engine::new(EngineOptions::default()).instant(&store, &expr, 10 * M);
        assert!(whole.is_ok(), "{query}: {whole:?}");
        assert_eq!(store.handed.get(), n, "{query}");
        flag.store(false, std::sync::atomic::Ordering::Relaxed);
        store.handed.set(0);
        let engine = Engine::new(EngineOptions {
            canceled: Some(flag.clone()),
            ..EngineOptions::default()
        });
        assert_eq!(
            engine.instant(&store, &expr, 10 * M).unwrap_err(),
            EvalError::Canceled,
            "{query}"
        );
        // Stopped at the next look, not after the whole read.
        assert_eq!(store.handed.get(), VISITS_PER_CHECK + 1, "{query}");
    }
}

/// Same answer, bit for bit (NaN = NaN), or the same error.
fn same_outcome(a: &Result<Vec<Series>>, b: &Result<Vec<Series>>) -> bool {
    match (a, b) {
        (Err(x), Err(y)) => x == y,
        (Ok(x), Ok(y)) => {
            x.len() == y.len()
                && x.iter().zip(y).all(|(p, q)| {
                    p.labels == q.labels
                        && p.points.len() == q.points.len()
                        && p.points.iter().zip(&q.points).all(|(u, v)| {
                            u.0 == v.0
                                && (u.1.to_bits() == v.1.to_bits()
                                    || (u.1.is_nan() && v.1.is_nan()))
                        })
                })
        }
        _ => false,
    }
}

/// The series-at-a-time range evaluation answers exactly as the instant engine stepped over
/// the range, for every compliance-tester query (all placeholder values), on aligned,
/// unaligned and single-step ranges, and for subqueries with and without `@`.
#[test]
fn range_evaluation_matches_stepwise_reference() {
    let start = 1_700_000_000_000i64;
    let store = Mem(crate::compliance::demo_data(start, start + 3 * 3_600_000));
    let engines = [false, true].map(|delayed_name_removal| {
        Engine::new(EngineOptions {
            delayed_name_removal,
            ..EngineOptions::default()
        })
    });
    let mut queries: Vec<String> =
        crate::compliance::queries(&crate::parser::tests::compliance_file())
            .into_iter()
            .map(|(q, _)| q)
            .collect();
    queries.extend(
        [
            "max_over_time(rate(demo_cpu_usage_seconds_total[1m])[10m:1m])",
            "avg_over_time(sum by (instance) (demo_memory_usage_bytes)[7m:45s] offset 2m)",
            "last_over_time(demo_memory_usage_bytes[5m:] @ end())",
            "sum_over_time(demo_num_cpus[2h:1m])",
            "rate(demo_cpu_usage_seconds_total[1m] @ start())",
            "topk(2, sum by (mode) (rate(demo_cpu_usage_seconds_total[5m])))",
            "sum(rate({__name__=~\"demo_cpu_usage_seconds_total|demo_disk_usage_bytes\"}[5m])) by (instance)",
            "rate({__name__=~\"demo_cpu_usage_seconds_total|demo_disk_usage_bytes\", mode=~\"|idle\"}[5m])",
            "label_replace(demo_num_cpus, \"instance\", \"x\", \"\", \"\")",
            "count(demo_intermittent_metric) + on() group_left vector(1)",
            "-demo_num_cpus * -1 > bool 2",
            "timestamp(demo_intermittent_metric)",
            "stddev by (mode) (irate(demo_cpu_usage_seconds_total[1m]))",
            "sum by (instance) (rate(demo_cpu_usage_seconds_total[1m] anchored))",
            "increase(demo_cpu_usage_seconds_total[2m] smoothed offset 1m)",
            "changes(demo_intermittent_metric[3m] anchored)",
            "demo_memory_usage_bytes smoothed",
            "sum by (__name__) (rate({__name__=~\"demo_cpu_usage_seconds_total|demo_disk_usage_bytes\"}[5m]))",
            "label_replace(rate(demo_cpu_usage_seconds_total[5m]), \"n\", \"$1\", \"__name__\", \"(.*)\")",
            "label_join(-demo_num_cpus, \"__name__\", \"_\", \"__name__\", \"instance\")",
            "last_over_time(abs(demo_num_cpus)[10m:]) or demo_num_cpus offset 1h",
            "-{__name__=~\"demo_num_cpus|demo_disk_total_bytes\"} or demo_num_cpus",
        ]
        .map(String::from),
    );
    let ranges = [
        (start + 3_600_000, start + 7_200_000, 60_000),
        (start + 1_800_000, start + 5_400_000, 37_000),
        (start + 6_000_000, start + 6_000_000, 15_000),
        (start - 600_000, start + 900_000, 300_000),
        (start + 900_000, start - 900_000, 60_000),
    ];
    let mut compared = 0;
    for q in &queries {
        let Ok(expr) = parse(q) else { continue };
        for (engine, &(s, e, step)) in engines
            .iter()
            .flat_map(|e| ranges.iter().map(move |r| (e, r)))
        {
            let fast = engine.range(&store, &expr, s, e, step);
            let slow = engine.range_stepwise(&store, &expr, s, e, step);
            assert!(
                same_outcome(&fast, &slow),
                "{q} over [{s}, {e}] step {step} (delayed name removal: {}):\nseries-at-a-time: {fast:?}\nstepwise: {slow:?}",
                engine.opts.delayed_name_removal
            );
            compared += 1;
        }
    }
    assert!(compared > 3000, "only {compared} comparisons");
}

/// Dense per-step storage is bounded by `max_samples`: a subquery whose step grid would not
/// fit falls back to per-step evaluation and still answers (sparse data) when its samples
/// fit, and a range query whose result cannot fit fails with the sample-limit error instead
/// of allocating.
#[test]
fn dense_evaluation_respects_the_sample_limit() {
    // 40 series, one sample each, spread over a day.
    let series: Vec<(Labels, Vec<(i64, f64)>)> = (0..40)
        .map(|i| {
            let l = Labels::from_pairs(&[("__name__", "sparse"), ("i", &i.to_string())]);
            (l, vec![(1_000 + i * 2_000_000, i as f64)])
        })
        .collect();
    let store = Mem(series);
    let engine = Engine::new(EngineOptions {
        max_samples: 20_000,
        ..EngineOptions::default()
    });
    // 86,400 one-second steps × 40 series would be 3.4M dense cells; the subquery holds
    // 12,000 samples (each sample seen for 300 steps).
    let expr = parse("count_over_time(sparse[1d:1s])").unwrap();
    let Value::Vector(v) = engine.instant(&store, &expr, 86_400_000).unwrap() else {
        panic!("vector expected")
    };
    assert_eq!(v.len(), 40);
    // Each sample stays visible for the 5m lookback: 300 one-second steps.
    assert!(v.iter().all(|s| s.v == 300.0), "{v:?}");
    let expr = parse("max_over_time(sparse[1d:1s])").unwrap();
    let fast = engine
        .range(&store, &expr, 86_000_000, 86_400_000, 100_000)
        .unwrap();
    let slow = engine
        .range_stepwise(&store, &expr, 86_000_000, 86_400_000, 100_000)
        .unwrap();
    assert_eq!(fast, slow);
    // 40 series × 11,000 steps cannot be held under a 20,000-sample limit.
    let expr = parse("sparse").unwrap();
    assert_eq!(
        engine.range(&store, &expr, 0, 11_000_000, 1_000),
        Err(EvalError::TooManySamples)
    );
    // Nor can the subquery's 12,000 samples under a limit of 10,000: evaluated step by
    // step, it stops at the limit, as Prometheus counts a subquery's samples.
    let tight = Engine::new(EngineOptions {
        max_samples: 10_000,
        ..EngineOptions::default()
    });
    let expr = parse("count_over_time(sparse[1d:1s])").unwrap();
    assert_eq!(
        tight.instant(&store, &expr, 86_400_000),
        Err(EvalError::TooManySamples)
    );
    // A subquery of more steps than the limit over an expression present at every step
    // fails instead of growing (here 1e11 steps: it used to take all memory).
    let expr = parse("max_over_time(vector(1)[1y:1ms])").unwrap();
    assert_eq!(
        tight.instant(&store, &expr, 86_400_000),
        Err(EvalError::TooManySamples)
    );
}

/// Both engines say when `rate` runs over a metric whose name is not a counter's, once.
#[test]
fn rate_over_a_non_counter_name_raises_an_info() {
    let engine = Engine::new(EngineOptions::default());
    let q = parse("sum(rate(limit[10m])) + rate(limit[5m])").unwrap();
    let (_, annos) = engine.instant_annotated(&data(), &q, 50 * M).unwrap();
    let (_, infos) = annos.render("sum(rate(limit[10m])) + rate(limit[5m])");
    assert_eq!(
        infos,
        vec![
            "PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"limit\" (1:10)"
        ]
    );
    let (_, annos) = engine
        .range_annotated(&data(), &q, 40 * M, 50 * M, M)
        .unwrap();
    assert_eq!(
        annos.render("sum(rate(limit[10m])) + rate(limit[5m])").1,
        infos
    );
    let (_, annos) = engine
        .range_annotated(
            &data(),
            &parse("delta(limit[10m])").unwrap(),
            40 * M,
            50 * M,
            M,
        )
        .unwrap();
    assert!(annos.is_empty());
}

/// Without delayed name removal (Prometheus's default) a name is gone as soon as an operator
/// drops it; with it the name stays readable until the end of the query.
#[test]
fn delayed_name_removal_keeps_names_until_the_end() {
    let store = Mem(vec![
        series(&[("__name__", "a_total"), ("env", "1")], M, 0.0, 1.0, 10),
        series(&[("__name__", "b_total"), ("env", "1")], M, 0.0, 3.0, 10),
    ]);
    let run = |delayed: bool, q: &str| -> Result<Vec<(String, f64)>> {
        let engine = Engine::new(EngineOptions {
            delayed_name_removal: delayed,
            ..EngineOptions::default()
        });
        let expr = parse(q).unwrap();
        let t = 10 * M;
        let instant = match engine.instant(&store, &expr, t)? {
            Value::Vector(v) => v,
            other => panic!("{other:?}"),
        };
        // The range query's answer at `t` is the instant answer.
        let range = engine.range(&store, &expr, t - M, t, M)?;
        let mut out: Vec<(String, f64)> = instant
            .iter()
            .map(|s| (s.labels.to_string(), s.v))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        let at_t: Vec<(String, f64)> = range
            .iter()
            .filter_map(|s| {
                s.points
                    .iter()
                    .find(|p| p.0 == t)
                    .map(|p| (s.labels.to_string(), p.1))
            })
            .collect();
        assert_eq!(out, at_t, "{q} (delayed: {delayed})");
        assert!(instant.iter().all(|s| !s.drop_name));
        Ok(out)
    };
    let rates = r#"rate({env="1"}[5m])"#;
    let q = format!(r#"label_replace({rates}, "__name__", "rate_$1", "__name__", "(.+)")"#);
    assert!(
        run(false, &q).is_err(),
        "eager: both rates are {{env=\"1\"}}"
    );
    assert_eq!(
        run(true, &q).unwrap(),
        vec![
            (
                r#"{__name__="rate_a_total", env="1"}"#.to_string(),
                1.0 / 60.0
            ),
            (
                r#"{__name__="rate_b_total", env="1"}"#.to_string(),
                3.0 / 60.0
            ),
        ]
    );
    // Grouping by the name: eager fails at the rates, whose names are gone; delayed keeps
    // the groups apart and fails at the end when both lose their names.
    let q = format!("sum by (__name__) ({rates})");
    assert_eq!(run(false, &q).unwrap_err(), same_labelset());
    assert_eq!(run(true, &q).unwrap_err(), same_labelset());
    // Eager removal refuses a function's or operator's result in which removing the names
    // made two series equal, also under an aggregation (Prometheus 2.42's `promtool test
    // rules` fails each of these with this message); delayed removal lets the aggregation
    // take them.
    for q in [
        r#"rate({env="1"}[5m])"#,
        r#"sum(rate({env="1"}[5m]))"#,
        r#"sum(abs({env="1"}))"#,
        r#"sum({env="1"} * 2)"#,
        r#"sum(-{env="1"})"#,
        r#"count(-{env="1"} > -1000)"#,
    ] {
        let eager = Engine::new(EngineOptions::default());
        assert_eq!(
            eager
                .instant(&store, &parse(q).unwrap(), 10 * M)
                .unwrap_err(),
            same_labelset(),
            "instant {q}"
        );
        assert_eq!(
            eager
                .range(&store, &parse(q).unwrap(), 5 * M, 10 * M, M)
                .unwrap_err(),
            same_labelset(),
            "range {q}"
        );
        // Delayed: the aggregations take the series apart; a bare result still fails.
        assert_eq!(run(true, q).is_ok(), !q.starts_with("rate"), "delayed {q}");
    }
    assert_eq!(
        run(true, r#"sum(rate({env="1"}[5m]))"#).unwrap(),
        vec![("{}".to_string(), 4.0 / 60.0)]
    );
    // Two selectors joined by `or` never put both series in one function's result.
    assert_eq!(
        run(false, "sum(rate(a_total[5m]) or rate(b_total[5m]))").unwrap(),
        vec![("{}".to_string(), 1.0 / 60.0)]
    );
    // A name kept by a comparison, dropped by `bool`, restored by label_join.
    assert_eq!(
        run(true, "a_total > 5").unwrap(),
        vec![(r#"{__name__="a_total", env="1"}"#.to_string(), 10.0)]
    );
    assert_eq!(
        run(true, "a_total > bool 5").unwrap(),
        vec![(r#"{env="1"}"#.to_string(), 1.0)]
    );
    assert_eq!(
        run(
            true,
            r#"label_join(-a_total, "__name__", "_", "__name__", "env")"#
        )
        .unwrap(),
        vec![(r#"{__name__="a_total_1", env="1"}"#.to_string(), -10.0)]
    );
    assert_eq!(
        run(true, "rate(a_total[5m]) > 0").unwrap(),
        vec![(r#"{env="1"}"#.to_string(), 1.0 / 60.0)]
    );
}

/// The TSDB hands range reads out still encoded; the series-at-a-time evaluator decodes each
/// series into a reused buffer and step-by-step nodes decode and keep them. Both must answer
/// what the same data answers from plain in-memory samples.
#[test]
fn encoded_tsdb_reads_match_decoded_samples() {
    let start = 1_700_000_000_000i64;
    let end = start + 2 * 3_600_000;
    let data = crate::compliance::demo_data(start, end);
    let dir = tempfile::tempdir().unwrap();
    let db = argus_tsdb::Db::open(dir.path(), argus_tsdb::Options::default()).unwrap();
    let mut app = db.appender();
    for (labels, points) in &data {
        for &(t, v) in points {
            app.append(labels, t, v).unwrap();
        }
    }
    app.commit().unwrap();
    let mem = Mem(data);
    let engine = Engine::new(EngineOptions::default());
    for q in [
        "demo_memory_usage_bytes",
        "rate(demo_cpu_usage_seconds_total[5m])",
        "sum by (mode) (rate(demo_cpu_usage_seconds_total[5m]))",
        "abs(deriv(demo_disk_usage_bytes[10m]))",
        "max_over_time(sum by (instance) (rate(demo_cpu_usage_seconds_total[1m]))[10m:1m])",
    ] {
        let expr = parse(q).unwrap();
        let want = engine
            .range(&mem, &expr, start + 600_000, end, 60_000)
            .unwrap();
        assert!(!want.is_empty(), "{q}");
        let got = engine
            .range(&db, &expr, start + 600_000, end, 60_000)
            .unwrap();
        assert_eq!(got, want, "{q}");
        let stepwise = engine
            .range_stepwise(&db, &expr, start + 600_000, end, 60_000)
            .unwrap();
        assert_eq!(stepwise, want, "stepwise {q}");
        // Instant vectors are unordered; the in-memory store lists series as generated.
        let sorted = |v: Value| match v {
            Value::Vector(mut v) => {
                v.sort_by(|a, b| a.labels.cmp(&b.labels));
                v
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(
            sorted(engine.instant(&db, &expr, end).unwrap()),
            sorted(engine.instant(&mem, &expr, end).unwrap()),
            "instant {q}"
        );
    }
}

/// Encoded points that count how often they are decoded.
struct CountingPoints {
    samples: Vec<(i64, f64)>,
    decodes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl EncodedPoints for CountingPoints {
    fn decode_into(&self, out: &mut Vec<(i64, f64)>) {
        self.decodes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        out.clear();
        out.extend_from_slice(&self.samples);
    }
    fn estimate(&self) -> usize {
        self.samples.len() + 1
    }
}

/// `Points::get` decodes into the caller's buffer on the first read (keeping nothing), and
/// decodes for good on the second, after which reads decode nothing.
#[test]
fn points_get_keeps_decoded_samples_from_the_second_read() {
    let samples = vec![(1, 1.0), (2, 2.0), (3, f64::NAN)];
    let decodes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let points = Points::encoded(Box::new(CountingPoints {
        samples: samples.clone(),
        decodes: decodes.clone(),
    }));
    let decoded = || decodes.load(std::sync::atomic::Ordering::Relaxed);
    let same = |got: &[(i64, f64)]| {
        got.len() == samples.len()
            && got
                .iter()
                .zip(&samples)
                .all(|(a, b)| a.0 == b.0 && a.1.to_bits() == b.1.to_bits())
    };
    let mut scratch = Vec::new();
    assert!(same(points.get(&mut scratch)));
    assert_eq!(decoded(), 1);
    // Nothing kept: the count is still the estimate.
    assert_eq!(points.count(), samples.len() + 1);
    let mut other = Vec::new();
    assert!(same(points.get(&mut other)));
    assert_eq!(decoded(), 2);
    assert!(
        other.is_empty(),
        "the second read decodes into the points themselves"
    );
    assert_eq!(points.count(), samples.len());
    assert!(same(points.get(&mut scratch)));
    assert!(same(&points));
    assert_eq!(decoded(), 2);
}

/// A store that passes reads through to a TSDB and counts how they were made.
struct Watched<'a> {
    db: &'a argus_tsdb::Db,
    /// `select_series` calls for whole ranges (not newest-sample reads).
    selected: std::cell::Cell<usize>,
    visited: std::cell::Cell<usize>,
}

impl<'a> Watched<'a> {
    fn new(db: &'a argus_tsdb::Db) -> Self {
        Self {
            db,
            selected: Default::default(),
            visited: Default::default(),
        }
    }
}

impl Queryable for Watched<'_> {
    fn select(&self, mint: i64, maxt: i64, matchers: &[Matcher]) -> Vec<(Labels, Vec<(i64, f64)>)> {
        self.db.select(mint, maxt, matchers)
    }
    fn select_series(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
        newest_only: bool,
    ) -> Selection {
        if !newest_only {
            self.selected.set(self.selected.get() + 1);
        }
        self.db.select_series(mint, maxt, matchers, newest_only)
    }
    fn visit_floats(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
        ordered: bool,
        visit: &mut dyn FnMut(&Labels, &[(i64, f64)], bool) -> std::ops::ControlFlow<()>,
    ) {
        self.visited.set(self.visited.get() + 1);
        self.db.visit_floats(mint, maxt, matchers, ordered, visit)
    }
    fn visit_newest(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
        ordered: bool,
        visit: &mut dyn FnMut(&Labels, Option<(i64, f64)>, bool) -> std::ops::ControlFlow<()>,
    ) {
        self.visited.set(self.visited.get() + 1);
        self.db.visit_newest(mint, maxt, matchers, ordered, visit)
    }
}

fn tsdb_with(data: &[(Labels, Vec<(i64, f64)>)]) -> (tempfile::TempDir, argus_tsdb::Db) {
    tsdb_with_options(data, argus_tsdb::Options::default())
}

fn tsdb_with_options(
    data: &[(Labels, Vec<(i64, f64)>)],
    options: argus_tsdb::Options,
) -> (tempfile::TempDir, argus_tsdb::Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = argus_tsdb::Db::open(dir.path(), options).unwrap();
    let mut app = db.appender();
    for (labels, points) in data {
        for &(t, v) in points {
            app.append(labels, t, v).unwrap();
        }
    }
    app.commit().unwrap();
    (dir, db)
}

/// The compliance demo data over two hours, in a TSDB and in the in-memory store, with the
/// range's start and end.
fn demo_stores() -> (tempfile::TempDir, argus_tsdb::Db, Mem, i64, i64) {
    let start = 1_700_000_000_000i64;
    let end = start + 2 * 3_600_000;
    let data = crate::compliance::demo_data(start, end);
    let (dir, db) = tsdb_with(&data);
    (dir, db, Mem(data), start, end)
}

/// A range function straight over a selector is computed while the TSDB hands over one
/// series at a time (holding one value per series, not every series' chunks) — in instant
/// queries, in their (not nested) subqueries, and in range queries where only the
/// series-at-a-time evaluator reads it — with the answers of the in-memory store; other
/// shapes select as before.
#[test]
fn instant_range_functions_read_the_tsdb_series_by_series() {
    let (_dir, db, mem, start, end) = demo_stores();
    let engine = Engine::new(EngineOptions::default());
    let at = (start + 3_600_000) / 1000;
    // The query, whether an instant query reads series by series, whether a range query does.
    let queries: [(&str, bool, bool); 10] = [
        ("rate(demo_cpu_usage_seconds_total[5m])", true, true),
        (
            "sum by (mode) (rate(demo_cpu_usage_seconds_total[5m]))",
            true,
            true,
        ),
        (
            "increase(demo_cpu_usage_seconds_total[5m] offset 10m)",
            true,
            true,
        ),
        (
            &format!("count_over_time(demo_memory_usage_bytes[10m] @ {at})"),
            true,
            true,
        ),
        (
            "max_over_time(demo_disk_usage_bytes[1h]) - min_over_time(demo_disk_usage_bytes[1h])",
            true,
            true,
        ),
        ("irate(demo_cpu_usage_seconds_total[2m]) > 0", true, true),
        ("deriv(demo_disk_usage_bytes[10m])", false, false),
        (
            "max_over_time(rate(demo_cpu_usage_seconds_total[1m])[10m:1m])",
            true,
            true,
        ),
        (
            "max_over_time(sum by (instance) (rate(demo_cpu_usage_seconds_total[1m]))[10m:1m])",
            true,
            true,
        ),
        (
            "avg_over_time(max_over_time(rate(demo_cpu_usage_seconds_total[1m])[5m:1m])[10m:2m])",
            true,
            true,
        ),
    ];
    for (q, streams, range_streams) in queries {
        let expr = parse(q).unwrap();
        let store = Watched::new(&db);
        let mut got = match engine.instant(&store, &expr, end).unwrap() {
            Value::Vector(v) => v,
            other => panic!("{q}: {other:?}"),
        };
        let Value::Vector(mut want) = engine.instant(&mem, &expr, end).unwrap() else {
            panic!("{q}")
        };
        assert!(!want.is_empty(), "{q}");
        got.sort_by(|a, b| a.labels.cmp(&b.labels));
        want.sort_by(|a, b| a.labels.cmp(&b.labels));
        assert_eq!(got, want, "{q}");
        assert_eq!(store.visited.get() > 0, streams, "{q}");
        assert_eq!(store.selected.get() == 0, streams, "{q}");
        // A range query over the same expression reads the same selectors series by series
        // (in the series-at-a-time evaluator).
        let store = Watched::new(&db);
        let got = engine
            .range(&store, &expr, end - 600_000, end, 60_000)
            .unwrap();
        let want = engine
            .range(&mem, &expr, end - 600_000, end, 60_000)
            .unwrap();
        assert!(!want.is_empty(), "range {q}");
        assert_eq!(got, want, "range {q}");
        assert_eq!(store.visited.get() > 0, range_streams, "range {q}");
        assert_eq!(store.selected.get() == 0, range_streams, "range {q}");
    }
}

/// Whether an instant query computed the aggregation at the top of `expr` while reading.
fn fused(engine: &Engine, store: &dyn Queryable, expr: &Expr, t: i64) -> bool {
    let ctx = engine.context(store, expr, t, t, 60_000, 0, true).unwrap();
    let span = expr.span();
    ctx.adata.contains_key(&(span.start, span.end))
}

/// An instant query evaluated with every selector loaded first: the reference for what
/// reading series by series computes.
fn loaded_first(
    engine: &Engine,
    store: &dyn Queryable,
    expr: &Expr,
    t: i64,
) -> (Value, Annotations) {
    let mut ctx = engine.context(store, expr, t, t, 60_000, 0, false).unwrap();
    assert!(ctx.adata.is_empty() && ctx.ddata.is_empty() && ctx.deferred.is_empty());
    let v = ctx.eval(expr, t).and_then(settled).unwrap();
    (v, ctx.into_annotations())
}

/// `got` and `want` hold the same series in the same order at the same times, with values
/// equal but for rounding: both NaN, or within a relative 1e-12 (so 0 and -0 are equal).
fn assert_close(got: &[Sample], want: &[Sample], q: &str) {
    let key = |v: &[Sample]| -> Vec<(Labels, i64)> {
        v.iter().map(|s| (s.labels.clone(), s.t)).collect()
    };
    assert_eq!(key(got), key(want), "{q}");
    for (g, w) in got.iter().zip(want) {
        let close = (g.v.is_nan() && w.v.is_nan())
            || g.v == w.v
            || (g.v - w.v).abs() <= 1e-12 * g.v.abs().max(w.v.abs());
        assert!(close, "{q}: {g:?} against {w:?}");
    }
}

/// `sum|avg|count|min|max|group|stddev|stdvar` straight over a selector, or over a direct
/// range function of one, are computed while the TSDB hands over one series at a time in
/// instant queries (holding a value per group, not per series), with the answers and
/// annotations of the in-memory store; other shapes are read as before.
#[test]
fn instant_aggregations_are_computed_while_reading() {
    let (_dir, db, mem, start, end) = demo_stores();
    let engine = Engine::new(EngineOptions::default());
    let at = (start + 3_600_000) / 1000;
    let cpu = "demo_cpu_usage_seconds_total";
    let queries: Vec<(String, bool)> = vec![
        (format!("sum by (mode) (rate({cpu}[5m]))"), true),
        (format!("count({cpu})"), true),
        (format!(r#"count({cpu}{{instance=~".*1.*"}})"#), true),
        ("avg without (instance) (demo_memory_usage_bytes offset 7m)".into(), true),
        (format!("min by (type) (demo_memory_usage_bytes @ {at})"), true),
        ("max by (instance) (max_over_time(demo_disk_usage_bytes[10m]))".into(), true),
        (format!("stddev(irate({cpu}[2m]))"), true),
        (format!("stdvar by (instance) (increase({cpu}[10m]))"), true),
        (format!("group by (job) (last_over_time({cpu}[1m]))"), true),
        // One count or group of everything reads the head's series in any order.
        ("group(demo_memory_usage_bytes)".into(), true),
        (
            r#"count({__name__=~"demo_memory_usage_bytes|demo_cpu_usage_seconds_total"})"#.into(),
            true,
        ),
        // Not a counter name: the same info annotation.
        ("sum(rate(demo_memory_usage_bytes[5m]))".into(), true),
        ("sum without (type) (count_over_time(demo_memory_usage_bytes[10m]))".into(), true),
        // Several metric names whose removal cannot collide (each has its own labels):
        // read as before, which checks them.
        (
            r#"sum(rate({__name__=~"demo_memory_usage_bytes|demo_cpu_usage_seconds_total"}[5m]))"#
                .into(),
            false,
        ),
        // Without the function the names stay: computed while reading.
        (
            r#"count by (job) ({__name__=~"demo_memory_usage_bytes|demo_cpu_usage_seconds_total"})"#
                .into(),
            true,
        ),
        (format!("sum by (__name__) (rate({cpu}[5m]))"), false),
        (format!("topk(2, {cpu})"), true),
        ("bottomk by (instance) (1, demo_memory_usage_bytes)".into(), true),
        // Only a number as `k`, only straight over a selector.
        (format!("topk(scalar(count({cpu})), {cpu})"), false),
        (format!("topk(2, rate({cpu}[5m]))"), false),
        (format!("quantile(0.5, rate({cpu}[5m]))"), false),
        ("sum(deriv(demo_disk_usage_bytes[10m]))".into(), false),
    ];
    for (q, fuses) in queries {
        let expr = parse(&q).unwrap();
        let store = Watched::new(&db);
        let (got, got_annos) = engine.instant_annotated(&store, &expr, end).unwrap();
        if fuses {
            assert_eq!(store.selected.get(), 0, "{q}");
            assert_eq!(store.visited.get(), 1, "{q}");
        }
        // The groups in the same order as the loaded path's (which reads the TSDB in label
        // order); values equal but for rounding, as the head hands its series over
        // unsorted.
        let (want, want_annos) = loaded_first(&engine, &db, &expr, end);
        let (Value::Vector(got), Value::Vector(want)) = (got, want) else {
            panic!("{q}")
        };
        assert!(!want.is_empty(), "{q}");
        assert_close(&got, &want, &q);
        assert_eq!(got_annos, want_annos, "{q}");
        assert_eq!(fused(&engine, &db, &expr, end), fuses, "{q}");
        // The in-memory store (which selects first) takes the same path.
        assert_eq!(fused(&engine, &mem, &expr, end), fuses, "{q}");
        // That store lists series as generated, not in label order: aggregations computed
        // while reading put their groups in label-ordered input's order, so the groups are
        // compared sorted.
        let sorted = |v: Value| match v {
            Value::Vector(mut v) => {
                v.sort_by(|a, b| a.labels.cmp(&b.labels));
                v
            }
            other => panic!("{other:?}"),
        };
        let (from_mem, _) = engine.instant_annotated(&mem, &expr, end).unwrap();
        let loaded = loaded_first(&engine, &mem, &expr, end).0;
        assert_eq!(sorted(from_mem), sorted(loaded), "{q}");
    }
    // The not-a-counter annotation is there at all.
    let expr = parse("sum(rate(demo_memory_usage_bytes[5m]))").unwrap();
    let (_, annos) = engine.instant_annotated(&db, &expr, end).unwrap();
    assert_ne!(annos, Annotations::default());

    // With 30m blocks cut, the newest samples come from blocks and head merged, at times
    // inside a block, across a block edge and in the head.
    let (_blocks_dir, blocks) = tsdb_with_options(
        &mem.0,
        argus_tsdb::Options {
            block_range_ms: 30 * 60_000,
            ..argus_tsdb::Options::default()
        },
    );
    assert!(blocks.compact().unwrap());
    for t in [start + 20 * 60_000, start + 60 * 60_000 + 2_000, end] {
        for q in [
            format!("count({cpu})"),
            format!("group({cpu})"),
            format!("sum by (mode) ({cpu})"),
            "max without (instance) (demo_memory_usage_bytes offset 7m)".into(),
        ] {
            let expr = parse(&q).unwrap();
            let store = Watched::new(&blocks);
            let (got, _) = engine.instant_annotated(&store, &expr, t).unwrap();
            assert_eq!((store.selected.get(), store.visited.get()), (0, 1), "{q}");
            let (want, _) = loaded_first(&engine, &blocks, &expr, t);
            assert_eq!(got, want, "{q} at {t}");
            let Value::Vector(got) = got else {
                panic!("{q}")
            };
            assert!(!got.is_empty(), "{q} at {t}");
            // The in-memory store knows nothing of blocks (its series come in another order,
            // which sums could round differently; counts and maxima cannot).
            if !q.starts_with("sum") {
                let Ok(Value::Vector(mut mine)) = engine.instant(&mem, &expr, t) else {
                    panic!("{q}")
                };
                let mut got = got;
                got.sort_by(|a, b| a.labels.cmp(&b.labels));
                mine.sort_by(|a, b| a.labels.cmp(&b.labels));
                assert_eq!(got, mine, "{q} at {t}");
            }
        }
    }
}

/// A TSDB with 40 samples 15 s apart of each `(name, k, slope)` counter (`slope * i`) and of
/// a native histogram `h_total{k="3"}`.
fn counters_and_histograms(counters: &[(&str, &str, f64)]) -> (tempfile::TempDir, argus_tsdb::Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = argus_tsdb::Db::open(dir.path(), argus_tsdb::Options::default()).unwrap();
    let l = |name: &str, k: &str| Labels::from_pairs(&[("__name__", name), ("k", k)]);
    for i in 0..40i64 {
        let mut app = db.appender();
        let t = i * 15_000;
        for &(name, k, slope) in counters {
            app.append(&l(name, k), t, slope * i as f64).unwrap();
        }
        let h = argus_model::FloatHistogram {
            count: i as f64,
            sum: i as f64,
            zero_count: i as f64,
            ..Default::default()
        };
        app.append_histogram_to(db.head.get_or_create(&l("h_total", "3")), t, h)
            .unwrap();
        app.commit().unwrap();
    }
    (dir, db)
}

/// Aggregations computed while reading: names whose removal collides are refused as
/// before (and taken as they are with delayed name removal), histograms are read whole
/// with one read, and the sample limit holds.
#[test]
fn instant_aggregations_while_reading_keep_the_input_checks() {
    let (_dir, db) = counters_and_histograms(&[("a_total", "1", 1.0), ("b_total", "1", 3.0)]);
    let t = 39 * 15_000;
    let eager = Engine::new(EngineOptions::default());
    let colliding = parse(r#"sum(rate({__name__=~"a_total|b_total"}[1m]))"#).unwrap();
    assert_eq!(eager.instant(&db, &colliding, t), Err(same_labelset()));
    assert!(!fused(&eager, &db, &colliding, t));
    let delayed = Engine::new(EngineOptions {
        delayed_name_removal: true,
        ..Default::default()
    });
    assert!(fused(&delayed, &db, &colliding, t));
    let Ok(Value::Vector(v)) = delayed.instant(&db, &colliding, t) else {
        panic!("delayed name removal sums both")
    };
    assert_eq!(v.len(), 1);
    assert!((v[0].v - 4.0 / 15.0).abs() < 1e-9, "{}", v[0].v);
    // Histograms: one visit that stops there, then the selector is read whole.
    // (`selected` counts whole-range reads; an instant selector reads newest samples.)
    for (q, groups, selected) in [
        (
            r#"sum by (k) (rate({__name__=~"h_total|a_total"}[1m]))"#,
            2,
            1,
        ),
        (r#"count({__name__=~"h_total|a_total"})"#, 1, 0),
    ] {
        let expr = parse(q).unwrap();
        let store = Watched::new(&db);
        let got = eager.instant(&store, &expr, t).unwrap();
        assert_eq!(store.visited.get(), 1, "{q}");
        assert_eq!(store.selected.get(), selected, "{q}");
        assert!(!fused(&eager, &db, &expr, t), "{q}");
        let (want, _) = loaded_first(&eager, &db, &expr, t);
        let Value::Vector(mut got) = got else {
            panic!("{q}")
        };
        got.sort_by(|a, b| a.labels.cmp(&b.labels));
        assert_eq!(got.len(), groups, "{q}");
        assert_eq!(Value::Vector(got), want, "{q}");
    }
    // `topk` stops at the histograms too, and the loaded path says it left them out.
    let expr = parse(r#"topk(5, {__name__=~"h_total|a_total"})"#).unwrap();
    let store = Watched::new(&db);
    let (got, annos) = eager.instant_annotated(&store, &expr, t).unwrap();
    assert_eq!((store.visited.get(), store.selected.get()), (1, 0));
    assert!(!fused(&eager, &db, &expr, t));
    let (want, want_annos) = loaded_first(&eager, &db, &expr, t);
    assert_eq!(got, want);
    assert_eq!(annos, want_annos);
    assert_ne!(annos, Annotations::default());
    // The limit: 5 samples of a series in [t - 1m, t]; an instant selector reads one each.
    let limited = |max_samples, q: &str| {
        Engine::new(EngineOptions {
            max_samples,
            ..Default::default()
        })
        .instant(&db, &parse(q).unwrap(), t)
    };
    assert_eq!(
        limited(4, "sum(rate(b_total[1m]))"),
        Err(EvalError::TooManySamples)
    );
    assert!(limited(5, "sum(rate(b_total[1m]))").is_ok());
    assert_eq!(
        limited(1, r#"count({k="1"})"#),
        Err(EvalError::TooManySamples)
    );
    assert!(limited(2, r#"count({k="1"})"#).is_ok());
    assert_eq!(
        limited(1, r#"topk(1, {k="1"})"#),
        Err(EvalError::TooManySamples)
    );
    assert!(limited(2, r#"topk(1, {k="1"})"#).is_ok());
}

/// `topk`/`bottomk` over a selector, computed while reading, answer as the loaded path does
/// and in its order: by value with NaN last, ties in label order, groups in order of first
/// appearance; also with `k` out of range or fractional, with `offset`, and with a stale
/// series left out. The series are created in reverse label order, so one group of
/// everything (read in the head's order, unsorted) has to break ties by labels itself, and
/// counts and groups by labels (read unsorted) have to put their groups back in order.
#[test]
fn topk_while_reading_keeps_the_loaded_order() {
    let start = 1_700_000_000_000i64;
    let data: Vec<(Labels, Vec<(i64, f64)>)> = (0..12)
        .rev()
        .map(|i| {
            let job = if i % 2 == 0 { "a" } else { "b" };
            let labels =
                Labels::from_pairs(&[("__name__", "x"), ("i", &format!("{i:02}")), ("job", job)]);
            let v = match i {
                3 | 10 => f64::NAN,
                5 => f64::INFINITY,
                7 => -0.0,
                8 => 0.0,
                _ => f64::from(i % 3),
            };
            // Series 11 stops early: not in the lookback window at the end.
            let n = if i == 11 { 2 } else { 40 };
            (labels, (0..n).map(|k| (start + k * 15_000, v)).collect())
        })
        .collect();
    let (_dir, db) = tsdb_with(&data);
    let t = start + 39 * 15_000;
    let engine = Engine::new(EngineOptions::default());
    let key = |v: Value| -> Vec<(String, u64)> {
        let Value::Vector(v) = v else { panic!("{v:?}") };
        v.into_iter()
            .map(|s| (s.labels.to_string(), s.v.to_bits()))
            .collect()
    };
    for q in [
        "topk(3, x)",
        "bottomk(3, x)",
        "topk(11, x)",
        "bottomk(12, x)",
        "topk by (job) (2, x)",
        "bottomk without (i) (4, x)",
        "topk(0, x)",
        "topk(-2, x)",
        "topk(9e18, x)",
        "bottomk(2.7, x)",
        "topk(4, x offset 1m)",
        "topk by (job) (1, x @ 1700000300)",
        // The other aggregations read unsorted too; groups come out as label-ordered
        // input makes them (and these small whole numbers add up alike in any order).
        "count by (job) (x)",
        "group without (i) (x)",
        "count by (i) (x)",
        "count without (job) (x offset 1m)",
        "count(x)",
        "sum by (job) (x)",
        "sum without (job) (x)",
        "min by (job) (x)",
        "max without (i) (x)",
        "avg by (i) (x)",
        "stddev without (i) (x offset 1m)",
        "sum by (job) (rate(x[5m]))",
        "max by (i) (max_over_time(x[2m]))",
        "avg without (job) (last_over_time(x[1m]))",
    ] {
        let expr = parse(q).unwrap();
        assert!(fused(&engine, &db, &expr, t), "{q}");
        let (got, annos) = engine.instant_annotated(&db, &expr, t).unwrap();
        let (want, want_annos) = loaded_first(&engine, &db, &expr, t);
        // Which series `topk`, `count` and `group` pick, and what they answer, cannot
        // depend on the order read; the others' values can, in rounding and a zero's sign.
        if ["topk", "bottomk", "count", "group"]
            .iter()
            .any(|op| q.starts_with(op))
        {
            assert_eq!(key(got), key(want), "{q}");
        } else {
            let (Value::Vector(got), Value::Vector(want)) = (got, want) else {
                panic!("{q}")
            };
            assert_close(&got, &want, q);
        }
        assert_eq!(annos, want_annos, "{q}");
    }
    // Ties keep label order: after +Inf (05) and 2 (02), the first of the 1s (01, 04).
    let Ok(Value::Vector(v)) = engine.instant(&db, &parse("topk(3, x)").unwrap(), t) else {
        panic!("topk")
    };
    let names: Vec<String> = v
        .iter()
        .map(|s| s.labels.get("i").unwrap_or_default().to_string())
        .collect();
    assert_eq!(names, ["05", "02", "01"]);
}

/// Reading series by series still refuses a query over `--query.max-samples`.
#[test]
fn streamed_instant_reads_count_against_the_sample_limit() {
    let labels = |i: usize| Labels::from_pairs(&[("__name__", "c"), ("i", &i.to_string())]);
    // 4 series with a sample every 15s: 20 in a 5m window each.
    let data: Vec<_> = (0..4)
        .map(|i| (labels(i), (0..40).map(|k| (k * 15_000, k as f64)).collect()))
        .collect();
    let (_dir, db) = tsdb_with(&data);
    let expr = parse("sum(rate(c[5m]))").unwrap();
    let t = 39 * 15_000;
    let limited = |max_samples| {
        Engine::new(EngineOptions {
            max_samples,
            ..Default::default()
        })
        .instant(&db, &expr, t)
    };
    assert_eq!(limited(50), Err(EvalError::TooManySamples));
    let Ok(Value::Vector(v)) = limited(100) else {
        panic!("under the limit")
    };
    assert_eq!(v.len(), 1);
    assert!((v[0].v - 4.0 / 15.0).abs() < 1e-9, "{}", v[0].v);
}

/// A selector whose series have native-histogram samples in the window is read whole, so
/// range functions see the histograms too.
#[test]
fn streamed_instant_reads_fall_back_for_histograms() {
    let dir = tempfile::tempdir().unwrap();
    let db = argus_tsdb::Db::open(dir.path(), argus_tsdb::Options::default()).unwrap();
    let floats = Labels::from_pairs(&[("__name__", "m"), ("k", "f")]);
    let hists = Labels::from_pairs(&[("__name__", "m"), ("k", "h")]);
    let float_points: Vec<(i64, f64)> = (0..20i64).map(|i| (i * 15_000, i as f64)).collect();
    for i in 0..20i64 {
        let mut app = db.appender();
        app.append(&floats, i * 15_000, i as f64).unwrap();
        let h = argus_model::FloatHistogram {
            count: i as f64,
            sum: i as f64,
            zero_count: i as f64,
            ..Default::default()
        };
        app.append_histogram_to(db.head.get_or_create(&hists), i * 15_000, h)
            .unwrap();
        app.commit().unwrap();
    }
    let store = Watched::new(&db);
    let expr = parse("rate(m[5m])").unwrap();
    let Value::Vector(v) = Engine::new(EngineOptions::default())
        .instant(&store, &expr, 19 * 15_000)
        .unwrap()
    else {
        panic!("vector")
    };
    assert_eq!(store.visited.get(), 1);
    assert_eq!(store.selected.get(), 1);
    assert_eq!(v.len(), 2, "{v:?}");
    let Value::Vector(want) = Engine::new(EngineOptions::default())
        .instant(&Mem(vec![(floats, float_points)]), &expr, 19 * 15_000)
        .unwrap()
    else {
        panic!("vector")
    };
    assert_eq!(want.len(), 1);
    assert!(v.iter().any(|s| s.h.is_none() && s.v == want[0].v), "{v:?}");
    assert!(v.iter().any(|s| s.h.is_some()), "{v:?}");
}

/// Range queries that read series one at a time start again without it when a selector
/// turns out to hold histograms or several metric names whose removal could collide, and
/// answer what the step-by-step reference answers; the sample limit still holds.
#[test]
fn range_queries_read_series_by_series_or_start_again() {
    let (_dir, db) = counters_and_histograms(&[
        ("a_total", "1", 1.0),
        ("b_total", "2", 2.0),
        ("b_total", "1", 3.0),
    ]);
    let engine = Engine::new(EngineOptions::default());
    let (start, end, step) = (300_000, 585_000, 15_000);
    let check = |q: &str, visits: bool| {
        let expr = parse(q).unwrap();
        let store = Watched::new(&db);
        let got = engine.range(&store, &expr, start, end, step);
        let want = engine.range_stepwise(&db, &expr, start, end, step);
        assert_eq!(got, want, "{q}");
        assert_eq!(store.visited.get() > 0, visits, "{q}");
        got
    };
    // One metric name: read series by series.
    let one = check("sum(rate(b_total[1m]))", true).unwrap();
    assert_eq!(one.len(), 1);
    // Two names whose removal collides: refused, as without streaming.
    assert_eq!(
        check(r#"rate({__name__=~"a_total|b_total"}[1m])"#, true),
        Err(same_labelset())
    );
    // Two names that do not collide: answered after starting again.
    let two = check(r#"rate({__name__=~"a_total|b_total", k="2"}[1m])"#, true).unwrap();
    assert_eq!(two.len(), 1);
    // Histograms: answered step by step.
    let hists = check(r#"rate({__name__=~"h_total|a_total"}[1m])"#, true).unwrap();
    assert!(hists.iter().any(|s| !s.hists.is_empty()), "{hists:?}");
    // Range queries over subqueries too.
    check("max_over_time(sum(rate(b_total[1m]))[2m:15s])", true).unwrap();
    let sub_hists = check(
        r#"max_over_time(rate({__name__=~"h_total|a_total"}[1m])[2m:15s])"#,
        true,
    );
    assert!(sub_hists.is_ok(), "{sub_hists:?}");
    // Instant subqueries read series by series too, and start again the same way.
    for q in [
        "max_over_time(sum(rate(b_total[1m]))[2m:15s])",
        r#"max_over_time(rate({__name__=~"a_total|b_total", k="2"}[1m])[2m:15s])"#,
        r#"max_over_time(rate({__name__=~"a_total|b_total"}[1m])[2m:15s])"#,
        r#"last_over_time(rate({__name__=~"h_total|a_total"}[1m])[2m:15s])"#,
    ] {
        let expr = parse(q).unwrap();
        let store = Watched::new(&db);
        let got = engine.instant(&store, &expr, end);
        assert!(store.visited.get() > 0, "{q}");
        // The reference: one step of the step-by-step range evaluation, which loads all.
        let want = engine.range_stepwise(&db, &expr, end, end, step);
        let shown = |v: Vec<(String, String)>| {
            let mut v = v;
            v.sort();
            v
        };
        match (got, want) {
            (Ok(Value::Vector(got)), Ok(want)) => {
                assert!(!want.is_empty(), "{q}");
                let got = got
                    .iter()
                    .map(|s| (s.labels.to_string(), format!("{:?}/{:?}", s.v, s.h)))
                    .collect();
                let want = want
                    .iter()
                    .map(|s| {
                        let v = s.points.first().map_or(0.0, |p| p.1);
                        let h = s.hists.first().map(|p| p.1.clone());
                        (s.labels.to_string(), format!("{v:?}/{h:?}"))
                    })
                    .collect();
                assert_eq!(shown(got), shown(want), "{q}");
            }
            (Err(got), Err(want)) => assert_eq!(got, want, "{q}"),
            other => panic!("{q}: {other:?}"),
        }
    }
    // The limit still holds when series are read one at a time (the 2 series' 24
    // samples each in [start - 1m, end] are over 40).
    let limited = Engine::new(EngineOptions {
        max_samples: 40,
        ..Default::default()
    });
    assert_eq!(
        limited.range(
            &db,
            &parse("sum(rate(b_total[1m]))").unwrap(),
            start,
            end,
            step
        ),
        Err(EvalError::TooManySamples)
    );
}

/// Range queries' aggregations over a range function read the head's series unsorted (here
/// created in reverse label order) and put their groups back in the order label-ordered
/// input makes them: `topk` breaks ties by input order, so it still picks the smallest
/// series, and every answer is the step-by-step reference's but for rounding.
#[test]
fn range_aggregations_read_unsorted_keep_the_group_order() {
    let data: Vec<(Labels, Vec<(i64, f64)>)> = (0..12)
        .rev()
        .map(|i| {
            let job = if i % 2 == 0 { "a" } else { "b" };
            let labels = Labels::from_pairs(&[
                ("__name__", "x_total"),
                ("i", &format!("{i:02}")),
                ("job", job),
            ]);
            // The same counter in every series (so their rates tie), with a reset in two.
            let points = (0..60)
                .map(|k| {
                    let v = if i % 5 == 1 && k >= 30 { k - 30 } else { k };
                    (k * 15_000, f64::from(v as i32) * 1.5)
                })
                .collect();
            (labels, points)
        })
        .collect();
    let (_dir, db) = tsdb_with(&data);
    let engine = Engine::new(EngineOptions::default());
    let (start, end, step) = (300_000, 885_000, 15_000);
    for q in [
        "topk(1, sum by (i) (rate(x_total[5m])))",
        "bottomk by (job) (1, max by (i, job) (increase(x_total[2m])))",
        "sum by (job) (rate(x_total[5m]))",
        "avg without (i) (rate(x_total[1m]))",
        "min by (i) (delta(x_total[3m]))",
        "stddev without (job) (rate(x_total[5m]))",
    ] {
        let expr = parse(q).unwrap();
        let store = Watched::new(&db);
        let got = engine.range(&store, &expr, start, end, step).unwrap();
        assert!(store.visited.get() > 0, "{q}");
        let want = engine.range_stepwise(&db, &expr, start, end, step).unwrap();
        assert!(!want.is_empty(), "{q}");
        let key = |s: &[Series]| -> Vec<(Labels, Vec<i64>)> {
            s.iter()
                .map(|s| (s.labels.clone(), s.points.iter().map(|p| p.0).collect()))
                .collect()
        };
        assert_eq!(key(&got), key(&want), "{q}");
        for (g, w) in got.iter().zip(&want) {
            for (a, b) in g.points.iter().zip(&w.points) {
                assert!(close(a.1, b.1), "{q}: {a:?} against {b:?}");
            }
        }
    }
    // The ties go to the smallest series, as label-ordered input breaks them.
    let expr = parse("topk(1, sum by (i) (rate(x_total[5m])))").unwrap();
    let got = engine.range(&db, &expr, start, end, step).unwrap();
    let picked: Vec<&str> = got.iter().filter_map(|s| s.labels.get("i")).collect();
    assert!(picked.contains(&"00"), "{got:?}");
    assert!(!picked.contains(&"11"), "{got:?}");
}

/// Counts too large for an int64 are refused as Prometheus refuses them (`rangeEvalAgg`), by
/// the streaming and the loaded paths alike.
#[test]
fn topk_counts_beyond_int64_are_refused() {
    let l = Labels::from_pairs(&[("__name__", "m"), ("i", "1")]);
    let store = Mem(vec![(l, vec![(1_000, 1.0)])]);
    let engine = Engine::new(EngineOptions::default());
    for (q, want) in [
        ("topk(1e300, m)", "Scalar value 1e+300 overflows int64"),
        ("bottomk(Inf, m)", "Scalar value +Inf overflows int64"),
        (
            "topk(scalar(vector(1e19)), m)",
            "Scalar value 1e+19 overflows int64",
        ),
        ("limitk(9.3e18, m)", "Scalar value 9.3e+18 overflows int64"),
    ] {
        let expr = parse(q).unwrap();
        assert_eq!(
            engine.instant(&store, &expr, 2_000),
            Err(EvalError::Execution(want.into())),
            "{q}"
        );
    }
    // The largest count a float holds below 2^63 is still one.
    let expr = parse("count(topk(9223372036854774000, m))").unwrap();
    assert!(engine.instant(&store, &expr, 2_000).is_ok());
}

/// Many-to-one matches must make results with different labels; pairs a comparison drops
/// make none (answers taken from the Debian Prometheus). One-to-one matches count before
/// the comparison, as upstream's operators.test asks (2.42 counted after it).
#[test]
fn vector_matching_counts_results() {
    let store = Mem(Vec::new());
    let engine = Engine::new(EngineOptions::default());
    let two = r#"(label_replace(vector(1), "x", "1", "", "") or label_replace(vector(2), "x", "2", "", ""))"#;
    let run = |q: String| engine.instant(&store, &parse(&q).unwrap(), 100_000);
    assert_eq!(
        run(format!("{two} == on() vector(1)")),
        Err(EvalError::Execution("multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into()))
    );
    assert_eq!(
        run(format!("{two} == bool on() vector(1)")),
        Err(EvalError::Execution("multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into()))
    );
    // group_left(x) takes `x` from the right, which has none: both results are `{}`.
    assert_eq!(
        run(format!("{two} * on() group_left(x) vector(1)")),
        Err(EvalError::Execution(
            "multiple matches for labels: grouping labels must ensure unique matches".into()
        ))
    );
    let Ok(Value::Vector(v)) = run(format!("{two} > on() group_left(x) vector(1)")) else {
        panic!("one result expected")
    };
    assert_eq!(
        (v.len(), v[0].labels.to_string(), v[0].v),
        (1, "{}".into(), 2.0)
    );
}

/// `clamp`, `clamp_min` and `clamp_max` are Go's `math.Max`/`math.Min`: infinities win over
/// NaN, and zeros keep Go's signs (answers taken from the Debian Prometheus).
#[test]
fn clamps_follow_go_min_and_max() {
    let store = Mem(Vec::new());
    let engine = Engine::new(EngineOptions::default());
    for (q, want) in [
        ("clamp_max(vector(NaN), -Inf)", f64::NEG_INFINITY),
        ("clamp_min(vector(NaN), Inf)", f64::INFINITY),
        ("clamp(vector(NaN), -Inf, Inf)", f64::NAN),
        ("clamp(vector(-0), 0, 0)", 0.0),
        ("clamp(vector(0), -0, -0)", -0.0),
        ("clamp_min(vector(-0), 0)", 0.0),
        ("clamp_max(vector(0), -0)", -0.0),
        ("clamp_min(vector(Inf), NaN)", f64::INFINITY),
        ("clamp_max(vector(-Inf), NaN)", f64::NEG_INFINITY),
        ("clamp(vector(1), NaN, 2)", f64::NAN),
    ] {
        let Ok(Value::Vector(v)) = engine.instant(&store, &parse(q).unwrap(), 100_000) else {
            panic!("{q}")
        };
        let got = v[0].v;
        assert!(
            got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
            "{q}: {got:?}"
        );
    }
}

/// Date functions cut fractional seconds toward zero, as Go's `int64(v)` does (answers
/// taken from the Debian Prometheus).
#[test]
fn date_functions_cut_seconds_toward_zero() {
    let store = Mem(Vec::new());
    let engine = Engine::new(EngineOptions::default());
    for (q, want) in [
        ("year(vector(-0.5))", 1970.0),
        ("month(vector(-0.5))", 1.0),
        ("day_of_month(vector(-0.5))", 1.0),
        ("day_of_week(vector(-0.5))", 4.0),
        ("day_of_year(vector(-0.5))", 1.0),
        ("hour(vector(-0.5))", 0.0),
        ("minute(vector(-0.5))", 0.0),
        ("minute(vector(-1.5))", 59.0),
        ("year(vector(253402300800))", 10000.0),
    ] {
        let Ok(Value::Vector(v)) = engine.instant(&store, &parse(q).unwrap(), 100_000) else {
            panic!("{q}")
        };
        assert_eq!(v[0].v, want, "{q}");
    }
}
