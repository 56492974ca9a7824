//! `cargo bench -p argus-tsdb`: append throughput on one core with 1M active series, and
//! select latency (point lookup, regex over many series) on the same database.

use std::time::{Duration, Instant};

use argus_model::{Labels, MatchOp, Matcher};
use argus_tsdb::{Db, Options};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const SERIES: usize = 1_000_000;
const BATCH: usize = 10_000;

fn labels(i: usize) -> Labels {
    let target = format!("target-{:06}", i / 100);
    let metric = format!("bench_metric_{}", i % 10);
    let id = (i % 100).to_string();
    Labels::from_pairs(&[
        ("__name__", metric.as_str()),
        ("instance", target.as_str()),
        ("job", "bench"),
        ("id", id.as_str()),
        ("region", "eu-west-1"),
        ("env", "prod"),
    ])
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path(), Options::default()).expect("open");
    let all: Vec<Labels> = (0..SERIES).map(labels).collect();
    // Create every series with one sample first, so the benchmark measures steady-state
    // appends to existing series (the remote-write / scrape hot path).
    for chunk in all.chunks(BATCH) {
        let mut app = db.appender();
        for l in chunk {
            app.append(l, 0, 0.0).expect("append");
        }
        app.commit().expect("commit");
    }

    let mut group = c.benchmark_group("append");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.measurement_time(Duration::from_secs(10));
    let mut cursor = 0usize;
    let mut round = 1i64;
    group.bench_function(BenchmarkId::new("commit_10k_samples", "1M_series"), |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let mut app = db.appender();
                for l in &all[cursor..cursor + BATCH] {
                    app.append(l, round * 15_000, round as f64).expect("append");
                }
                app.commit().expect("commit");
                cursor += BATCH;
                if cursor >= SERIES {
                    cursor = 0;
                    round += 1;
                }
            }
            start.elapsed()
        })
    });
    group.finish();

    let mut group = c.benchmark_group("select");
    let point = [
        Matcher::new(MatchOp::Equal, "instance", "target-004242").expect("m"),
        Matcher::new(MatchOp::Equal, "__name__", "bench_metric_3").expect("m"),
    ];
    group.bench_function("point_lookup_1M_series", |b| {
        b.iter(|| {
            let q = db.querier(i64::MIN, i64::MAX);
            let s = q.select(&point);
            assert_eq!(s.len(), 10);
            s.iter()
                .map(|x| x.samples(i64::MIN, i64::MAX).len())
                .sum::<usize>()
        })
    });
    let regex = [
        Matcher::new(MatchOp::RegexMatch, "instance", "target-00(0|1).*").expect("m"),
        Matcher::new(MatchOp::Equal, "__name__", "bench_metric_1").expect("m"),
    ];
    group.bench_function("regex_20k_of_1M_series", |b| {
        b.iter(|| {
            let q = db.querier(i64::MIN, i64::MAX);
            let s = q.select(&regex);
            assert_eq!(s.len(), 20_000);
            s.iter()
                .map(|x| x.samples(i64::MIN, i64::MAX).len())
                .sum::<usize>()
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = bench
}
criterion_main!(benches);
