//! `cargo bench -p argus-promql`: the side-by-side harness's query shapes (`../shared/bench`
//! queries plus a subquery) against a real on-disk database: 10,000 counter series and 1,000
//! classic histograms of 12 buckets, one hour at 15 s (5.3M samples) in the head.
//! Reports per-query latency; `docs/benchmarks.md` has the side-by-side ratios. Also a
//! 500-value regex alternation (parse included), the shape Grafana's multi-value variables
//! send.

use argus_model::Labels;
use argus_promql::{Engine, EngineOptions, parse};
use argus_tsdb::{Db, Options};
use criterion::{Criterion, criterion_group, criterion_main};

const TARGETS: usize = 1_000;
const SERIES_PER_TARGET: usize = 10;
const STEP_MS: i64 = 15_000;
const POINTS: i64 = 240;
const LES: [&str; 12] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
];

fn load(db: &Db) {
    let mut series: Vec<(Labels, f64)> = Vec::new();
    for t in 0..TARGETS {
        let instance = format!("target-{t:06}");
        let job = format!("job-{}", t % 10);
        for m in 0..SERIES_PER_TARGET {
            let name = format!("bench_metric_{m}");
            series.push((
                Labels::from_pairs(&[
                    ("__name__", name.as_str()),
                    ("instance", instance.as_str()),
                    ("job", job.as_str()),
                ]),
                1.0 + (t % 7) as f64,
            ));
        }
        for (b, le) in LES.iter().enumerate() {
            series.push((
                Labels::from_pairs(&[
                    ("__name__", "bench_request_duration_seconds_bucket"),
                    ("instance", instance.as_str()),
                    ("job", job.as_str()),
                    ("le", le),
                ]),
                (b + 1) as f64,
            ));
        }
    }
    for i in 0..POINTS {
        let mut app = db.appender();
        for (k, (labels, rate)) in series.iter().enumerate() {
            // Counters with a little per-series jitter so values differ.
            let v = (i as f64) * rate + (k % 3) as f64 * 0.25 * i as f64;
            app.append(labels, i * STEP_MS, v).expect("append");
        }
        app.commit().expect("commit");
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path(), Options::default()).expect("open");
    load(&db);
    let end = (POINTS - 1) * STEP_MS;
    let engine = Engine::new(EngineOptions::default());
    let instant = [
        ("sum_rate_by_job", "sum by (job) (rate(bench_metric_0[5m]))"),
        (
            "hist_quantile_p99",
            "histogram_quantile(0.99, sum by (le) (rate(bench_request_duration_seconds_bucket[5m])))",
        ),
        ("topk10", "topk(10, bench_metric_1)"),
        ("regex_count", "count(bench_metric_2{instance=~\".*7\"})"),
        ("point_lookup", "bench_metric_3{instance=\"target-000000\"}"),
        (
            "subquery_max_rate",
            "max_over_time(sum by (job) (rate(bench_metric_0[5m]))[30m:1m])",
        ),
    ];
    let mut group = c.benchmark_group("instant");
    group.sample_size(20);
    for (name, q) in instant {
        let expr = parse(q).expect("query parses");
        group.bench_function(name, |b| {
            b.iter(|| engine.instant(&db, &expr, end).expect("query runs"))
        });
    }
    group.finish();
    // A Grafana multi-value variable: 500 instances, regex-escaped, in one matcher. Parsed
    // every time, since building the matcher is part of the cost.
    let hosts: Vec<String> = (0..TARGETS)
        .step_by(2)
        .map(|t| format!("target\\\\-{t:06}"))
        .collect();
    let q = format!("count(bench_metric_2{{instance=~\"{}\"}})", hosts.join("|"));
    let mut group = c.benchmark_group("instant");
    group.sample_size(20);
    group.bench_function("alternation_500_parse_and_run", |b| {
        b.iter(|| {
            let expr = parse(&q).expect("query parses");
            engine.instant(&db, &expr, end).expect("query runs")
        })
    });
    group.finish();
    let range = [
        (
            "range1h_sum_rate",
            "sum by (job) (rate(bench_metric_0[5m]))",
            15_000,
        ),
        (
            "range1h_hist_p90",
            "histogram_quantile(0.9, sum by (le, job) (rate(bench_request_duration_seconds_bucket[5m])))",
            60_000,
        ),
        (
            "range1h_subquery_max_rate",
            "max_over_time(sum by (job) (rate(bench_metric_0[5m]))[30m:1m])",
            60_000,
        ),
    ];
    let mut group = c.benchmark_group("range");
    group.sample_size(10);
    for (name, q, step) in range {
        let expr = parse(q).expect("query parses");
        group.bench_function(name, |b| {
            b.iter(|| {
                engine
                    .range(&db, &expr, end - 3_600_000 + STEP_MS, end, step)
                    .expect("query runs")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
