//! Parse throughput on one core: a node_exporter-sized body (~1,300 samples in ~150 families
//! with HELP/TYPE, histograms and summaries) and a 10k-series body, in both text formats.
//! Criterion reports MB/s (`bytes` groups) and samples/s (`samples` groups). Each iteration
//! parses every entry and builds the label set of every sample, as a scrape of new series
//! does (`series_only` skips label building, as a scrape of known series does).

use std::fmt::Write;
use std::hint::black_box;

use argus_exposition::{Entry, MediaType, Parser};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn node_exporter_like() -> String {
    let mut body = String::new();
    for family in 0..150 {
        let name = format!("node_subsystem{family}_metric_total");
        writeln!(
            body,
            "# HELP {name} Help text for family {family}, like node_exporter writes it."
        )
        .ok();
        match family % 10 {
            0 => {
                writeln!(body, "# TYPE {name} histogram").ok();
                for le in [
                    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf",
                ] {
                    writeln!(
                        body,
                        "{name}_bucket{{handler=\"/metrics\",le=\"{le}\"}} 1234"
                    )
                    .ok();
                }
                writeln!(body, "{name}_sum{{handler=\"/metrics\"}} 12.5").ok();
                writeln!(body, "{name}_count{{handler=\"/metrics\"}} 1234").ok();
            }
            1 => {
                writeln!(body, "# TYPE {name} summary").ok();
                for q in ["0", "0.25", "0.5", "0.75", "1"] {
                    writeln!(body, "{name}{{quantile=\"{q}\"}} 3.1e-05").ok();
                }
                writeln!(body, "{name}_sum 0.0123").ok();
                writeln!(body, "{name}_count 77").ok();
            }
            _ => {
                writeln!(body, "# TYPE {name} counter").ok();
                for cpu in 0..8 {
                    writeln!(
                        body,
                        "{name}{{cpu=\"{cpu}\",mode=\"idle\"}} {}.37",
                        123456 + cpu
                    )
                    .ok();
                }
            }
        }
    }
    body
}

fn ten_k_series() -> String {
    let mut body =
        String::from("# HELP app_requests_total Requests.\n# TYPE app_requests_total counter\n");
    for i in 0..10_000 {
        writeln!(
            body,
            "app_requests_total{{instance=\"host-{}:9100\",job=\"app\",method=\"GET\",path=\"/api/v1/item/{i}\",status=\"200\"}} {}",
            i % 50,
            i * 17
        )
        .ok();
    }
    body
}

fn as_openmetrics(text: &str) -> String {
    format!("{}# EOF\n", text.replace("_total_bucket", "_bucket"))
}

fn parse(body: &[u8], media: MediaType, build_labels: bool) -> usize {
    let mut parser = Parser::new(body, media);
    let mut samples = 0;
    while let Some(entry) = parser.next() {
        if let Ok(Entry::Series { value, .. }) = entry {
            samples += 1;
            black_box(value);
            if build_labels {
                black_box(parser.labels().ok());
            }
        }
    }
    samples
}

fn bench(c: &mut Criterion) {
    let bodies = [
        ("node_exporter", node_exporter_like()),
        ("10k_series", ten_k_series()),
    ];
    for (name, text) in &bodies {
        let open_metrics = as_openmetrics(text);
        for (format, media, body) in [
            ("text", MediaType::PromText, text.as_str()),
            ("openmetrics", MediaType::OpenMetrics, open_metrics.as_str()),
        ] {
            let samples = parse(body.as_bytes(), media, true);
            assert!(samples > 1000, "{name} {format}: {samples} samples");
            let mut group = c.benchmark_group(format!("bytes/{name}/{format}"));
            group.throughput(Throughput::Bytes(body.len() as u64));
            group.bench_function("with_labels", |b| {
                b.iter(|| parse(body.as_bytes(), media, true))
            });
            group.bench_function("series_only", |b| {
                b.iter(|| parse(body.as_bytes(), media, false))
            });
            group.finish();
            let mut group = c.benchmark_group(format!("samples/{name}/{format}"));
            group.throughput(Throughput::Elements(samples as u64));
            group.bench_function("with_labels", |b| {
                b.iter(|| parse(body.as_bytes(), media, true))
            });
            group.finish();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
