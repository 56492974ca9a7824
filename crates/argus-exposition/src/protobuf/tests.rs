use super::dto::*;
use super::*;

fn pair(name: &str, value: &str) -> LabelPair {
    LabelPair {
        name: name.into(),
        value: value.into(),
    }
}

fn body(families: &[MetricFamily]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in families {
        f.encode_length_delimited(&mut out).unwrap();
    }
    out
}

fn family(name: &str, kind: dto::MetricType, metric: Vec<Metric>) -> MetricFamily {
    MetricFamily {
        name: name.into(),
        help: format!("help of {name}"),
        r#type: kind as i32,
        metric,
        unit: String::new(),
    }
}

/// Every entry as text: `HELP name text`, `TYPE name type`, `UNIT name unit`, or the
/// sample's label set, value and timestamp (`H{…}` for histograms).
fn entries(body: &[u8], options: HistogramOptions) -> Result<Vec<String>> {
    let mut parser = ProtoParser::new(body, options);
    let mut out = Vec::new();
    while let Some(entry) = parser.next() {
        let line = match entry? {
            Entry::Help { name, help } => format!("HELP {name} {help}"),
            Entry::Type { name, metric_type } => format!("TYPE {name} {}", metric_type.as_str()),
            Entry::Unit { name, unit } => format!("UNIT {name} {unit}"),
            Entry::Series {
                value,
                timestamp_ms,
                ..
            } => format!("{} {value} {timestamp_ms:?}", parser.labels()?),
            Entry::Histogram {
                histogram,
                timestamp_ms,
                ..
            } => format!("{} {histogram} {timestamp_ms:?}", parser.labels()?),
        };
        out.push(line);
    }
    Ok(out)
}

fn counter(value: f64, labels: Vec<LabelPair>, timestamp_ms: i64) -> Metric {
    Metric {
        label: labels,
        counter: Some(Counter {
            value,
            ..Default::default()
        }),
        timestamp_ms,
        ..Default::default()
    }
}

#[test]
fn simple_families_read_like_text() {
    let mut with_unit = family(
        "request_seconds_total",
        dto::MetricType::Counter,
        vec![counter(3.5, vec![pair("path", "/a")], 0)],
    );
    with_unit.unit = "seconds".into();
    let b = body(&[
        family(
            "requests_total",
            dto::MetricType::Counter,
            vec![
                counter(1.0, vec![pair("code", "200")], 0),
                counter(
                    2.0,
                    vec![pair("code", "500"), pair("empty", "")],
                    1_700_000_000_000,
                ),
            ],
        ),
        family("no_metrics", dto::MetricType::Gauge, vec![]),
        family(
            "temperature",
            dto::MetricType::Gauge,
            vec![Metric {
                gauge: Some(Gauge { value: -1.5 }),
                ..Default::default()
            }],
        ),
        family(
            "mystery",
            dto::MetricType::Untyped,
            vec![Metric {
                untyped: Some(Untyped {
                    value: f64::INFINITY,
                }),
                ..Default::default()
            }],
        ),
        with_unit,
    ]);
    let got = entries(&b, HistogramOptions::default()).unwrap();
    assert_eq!(
        got,
        [
            "HELP requests_total help of requests_total",
            "TYPE requests_total counter",
            r#"{__name__="requests_total", code="200"} 1 None"#,
            r#"{__name__="requests_total", code="500"} 2 Some(1700000000000)"#,
            "HELP temperature help of temperature",
            "TYPE temperature gauge",
            r#"{__name__="temperature"} -1.5 None"#,
            "HELP mystery help of mystery",
            "TYPE mystery unknown",
            r#"{__name__="mystery"} inf None"#,
            "HELP request_seconds_total help of request_seconds_total",
            "UNIT request_seconds_total seconds",
            "TYPE request_seconds_total counter",
            r#"{__name__="request_seconds_total", path="/a"} 3.5 None"#,
        ]
    );
}

#[test]
fn summaries_give_count_sum_and_quantiles() {
    let b = body(&[family(
        "rpc_seconds",
        dto::MetricType::Summary,
        vec![
            Metric {
                label: vec![pair("service", "a")],
                summary: Some(Summary {
                    sample_count: 10,
                    sample_sum: 4.25,
                    quantile: vec![
                        Quantile {
                            quantile: 0.5,
                            value: 0.3,
                        },
                        Quantile {
                            quantile: 1.0,
                            value: 0.9,
                        },
                    ],
                    created_timestamp: None,
                }),
                ..Default::default()
            },
            Metric {
                summary: Some(Summary {
                    sample_count: 1,
                    sample_sum: 2.0,
                    ..Default::default()
                }),
                ..Default::default()
            },
        ],
    )]);
    let got = entries(&b, HistogramOptions::default()).unwrap();
    assert_eq!(
        got[2..],
        [
            r#"{__name__="rpc_seconds_count", service="a"} 10 None"#,
            r#"{__name__="rpc_seconds_sum", service="a"} 4.25 None"#,
            r#"{__name__="rpc_seconds", quantile="0.5", service="a"} 0.3 None"#,
            r#"{__name__="rpc_seconds", quantile="1.0", service="a"} 0.9 None"#,
            r#"{__name__="rpc_seconds_count"} 1 None"#,
            r#"{__name__="rpc_seconds_sum"} 2 None"#,
        ]
    );
}

fn bucket(upper_bound: f64, cumulative_count: u64) -> Bucket {
    Bucket {
        cumulative_count,
        upper_bound,
        ..Default::default()
    }
}

/// A histogram with both representations: classic buckets 0.5 and 1 (no `+Inf`), and
/// native schema 0 buckets 1 and 2 with counts 2 and 1 (deltas 2, -1), zero bucket 1.
fn both_kinds() -> Histogram {
    Histogram {
        sample_count: 4,
        sample_sum: 3.5,
        bucket: vec![bucket(0.5, 1), bucket(1.0, 3)],
        schema: 0,
        zero_threshold: 0.001,
        zero_count: 1,
        positive_span: vec![BucketSpan {
            offset: 1,
            length: 2,
        }],
        positive_delta: vec![2, -1],
        ..Default::default()
    }
}

#[test]
fn classic_histograms_add_the_inf_bucket_and_stop_at_it() {
    let mut with_inf = both_kinds();
    with_inf.bucket.push(bucket(f64::INFINITY, 4));
    with_inf.bucket.push(bucket(7.0, 9)); // after +Inf: never read, as in Prometheus
    let b = body(&[family(
        "latency",
        dto::MetricType::Histogram,
        vec![
            Metric {
                histogram: Some(Histogram {
                    positive_span: vec![],
                    positive_delta: vec![],
                    zero_threshold: 0.0,
                    zero_count: 0,
                    ..both_kinds()
                }),
                ..Default::default()
            },
            Metric {
                label: vec![pair("x", "y")],
                histogram: Some(Histogram {
                    positive_span: vec![],
                    positive_delta: vec![],
                    zero_threshold: 0.0,
                    zero_count: 0,
                    ..with_inf
                }),
                ..Default::default()
            },
        ],
    )]);
    let got = entries(&b, HistogramOptions::default()).unwrap();
    assert_eq!(
        got[2..],
        [
            r#"{__name__="latency_count"} 4 None"#,
            r#"{__name__="latency_sum"} 3.5 None"#,
            r#"{__name__="latency_bucket", le="0.5"} 1 None"#,
            r#"{__name__="latency_bucket", le="1.0"} 3 None"#,
            r#"{__name__="latency_bucket", le="+Inf"} 4 None"#,
            r#"{__name__="latency_count", x="y"} 4 None"#,
            r#"{__name__="latency_sum", x="y"} 3.5 None"#,
            r#"{__name__="latency_bucket", le="0.5", x="y"} 1 None"#,
            r#"{__name__="latency_bucket", le="1.0", x="y"} 3 None"#,
            r#"{__name__="latency_bucket", le="+Inf", x="y"} 4 None"#,
        ]
    );
}

#[test]
fn native_histograms_follow_the_options() {
    let b = body(&[family(
        "latency",
        dto::MetricType::Histogram,
        vec![Metric {
            histogram: Some(both_kinds()),
            timestamp_ms: 1234,
            ..Default::default()
        }],
    )]);
    let native =
        r#"{__name__="latency"} {count:4, sum:3.5, [-0.001,0.001]:1, (1,2]:2, (2,4]:1} Some(1234)"#;
    let classic = [
        r#"{__name__="latency_count"} 4 Some(1234)"#,
        r#"{__name__="latency_sum"} 3.5 Some(1234)"#,
        r#"{__name__="latency_bucket", le="0.5"} 1 Some(1234)"#,
        r#"{__name__="latency_bucket", le="1.0"} 3 Some(1234)"#,
        r#"{__name__="latency_bucket", le="+Inf"} 4 Some(1234)"#,
    ];
    // Not scraping native histograms: the classic series only.
    let got = entries(&b, HistogramOptions::default()).unwrap();
    assert_eq!(got[2..], classic);
    // Native only.
    let options = HistogramOptions {
        native: true,
        keep_classic: false,
    };
    let got = entries(&b, options).unwrap();
    assert_eq!(got[2..], [native]);
    // Both.
    let options = HistogramOptions {
        native: true,
        keep_classic: true,
    };
    let got = entries(&b, options).unwrap();
    assert_eq!(got[2], native);
    assert_eq!(got[3..], classic);
}

#[test]
fn float_and_gauge_native_histograms() {
    let h = Histogram {
        sample_count_float: 2.5,
        sample_sum: -1.0,
        schema: 1,
        negative_span: vec![BucketSpan {
            offset: 0,
            length: 1,
        }],
        negative_count: vec![1.5],
        positive_span: vec![BucketSpan {
            offset: -1,
            length: 2,
        }],
        positive_count: vec![0.0, 1.0],
        ..Default::default()
    };
    let b = body(&[family(
        "level",
        dto::MetricType::GaugeHistogram,
        vec![Metric {
            histogram: Some(h),
            ..Default::default()
        }],
    )]);
    let mut parser = ProtoParser::new(
        &b,
        HistogramOptions {
            native: true,
            keep_classic: false,
        },
    );
    let mut found = None;
    while let Some(entry) = parser.next() {
        if let Entry::Histogram { histogram, .. } = entry.unwrap() {
            found = Some(histogram);
        }
    }
    let h = found.expect("a histogram entry");
    assert_eq!(h.hint, CounterResetHint::Gauge);
    assert_eq!(h.schema, 1);
    assert_eq!(h.count, 2.5);
    assert_eq!(h.negative, [(0, 1.5)]);
    // The empty bucket is compacted away, as Prometheus's Compact(0) does.
    assert_eq!(h.positive, [(0, 1.0)]);
}

#[test]
fn broken_bodies_fail_with_prometheus_errors() {
    let good = body(&[family(
        "a_total",
        dto::MetricType::Counter,
        vec![counter(1.0, vec![], 0)],
    )]);
    let err = |b: &[u8], options: HistogramOptions| entries(b, options).unwrap_err().to_string();
    let plain = HistogramOptions::default();
    assert_eq!(
        err(&good[..good.len() - 1], plain),
        format!(
            "insufficient length of buffer, expected at least {} bytes, got {} bytes",
            good.len(),
            good.len() - 1
        )
    );
    assert_eq!(
        err(&[0xff; 12], plain),
        "protobufparse: invalid varint encountered"
    );
    let mut bad_unit = family(
        "a_total",
        dto::MetricType::Counter,
        vec![counter(1.0, vec![], 0)],
    );
    bad_unit.unit = "seconds".into();
    assert_eq!(
        err(&body(&[bad_unit]), plain),
        r#"unit "seconds" not a suffix of counter "a_total""#
    );
    let mut bad_type = family("a", dto::MetricType::Gauge, vec![counter(1.0, vec![], 0)]);
    bad_type.r#type = 9;
    assert_eq!(
        err(&body(&[bad_type]), plain),
        r#"unknown metric type for metric "a": 9"#
    );
    let dup = family(
        "a",
        dto::MetricType::Counter,
        vec![counter(1.0, vec![pair("x", "1"), pair("x", "2")], 0)],
    );
    assert_eq!(
        err(&body(&[dup]), plain),
        r#"label name "x" is not unique: invalid sample"#
    );
    let empty_name = family(
        "a",
        dto::MetricType::Counter,
        vec![counter(1.0, vec![pair("", "1")], 0)],
    );
    assert_eq!(err(&body(&[empty_name]), plain), "invalid label name: ");
    let mut spans = both_kinds();
    spans.positive_delta.push(1);
    let bad_native = family(
        "h",
        dto::MetricType::Histogram,
        vec![Metric {
            histogram: Some(spans),
            ..Default::default()
        }],
    );
    let native = HistogramOptions {
        native: true,
        keep_classic: false,
    };
    assert_eq!(
        err(&body(&[bad_native]), native),
        r#"invalid native histogram for "h": positive side: spans need 2 buckets, have 3 buckets"#
    );
    let mut count = both_kinds();
    count.sample_count = 5;
    let bad_count = family(
        "h",
        dto::MetricType::Histogram,
        vec![Metric {
            histogram: Some(count),
            ..Default::default()
        }],
    );
    assert_eq!(
        err(&body(&[bad_count]), native),
        r#"invalid native histogram for "h": 4 observations found in buckets, but the Count field is 5: histogram's observation count should equal the number of observations found in the buckets (in absence of NaN)"#
    );
}

#[test]
fn series_keys_tell_series_apart() {
    let b = body(&[family(
        "a",
        dto::MetricType::Counter,
        vec![
            counter(1.0, vec![pair("x", "1y")], 0),
            counter(1.0, vec![pair("x1", "y")], 0),
        ],
    )]);
    let mut parser = ProtoParser::new(&b, HistogramOptions::default());
    let mut keys = Vec::new();
    while let Some(entry) = parser.next() {
        if let Entry::Series { series, .. } = entry.unwrap() {
            keys.push(series.to_vec());
        }
    }
    assert_eq!(keys.len(), 2);
    assert_ne!(keys[0], keys[1]);
}

proptest::proptest! {
    #[test]
    fn random_bodies_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
        for native in [false, true] {
            let options = HistogramOptions { native, keep_classic: native };
            let _ = entries(&bytes, options);
        }
    }

    #[test]
    fn mutated_bodies_never_panic(flips in proptest::collection::vec((0usize..400, proptest::num::u8::ANY), 1..8)) {
        let mut b = body(&[
            family("latency", dto::MetricType::Histogram, vec![Metric {
                histogram: Some(both_kinds()),
                ..Default::default()
            }]),
            family("a_total", dto::MetricType::Counter, vec![counter(1.0, vec![pair("k", "v")], 5)]),
        ]);
        for (at, byte) in flips {
            let len = b.len();
            b[at % len] = byte;
        }
        for native in [false, true] {
            let options = HistogramOptions { native, keep_classic: native };
            let _ = entries(&b, options);
        }
    }
}

#[test]
fn exemplars_of_counters_buckets_and_native_histograms() {
    let ex = |trace: &str, value: f64, seconds: Option<i64>| dto::Exemplar {
        label: vec![pair("trace_id", trace)],
        value,
        timestamp: seconds.map(|s| Timestamp {
            seconds: s,
            nanos: 5_000_000,
        }),
    };
    let mut hist = both_kinds();
    hist.bucket[1].exemplar = Some(ex("b1", 0.7, None));
    hist.exemplars = vec![
        ex("n2", 1.5, Some(20)),
        ex("n0", 0.1, None),
        ex("n1", 1.2, Some(10)),
    ];
    let b = body(&[
        family(
            "a_total",
            dto::MetricType::Counter,
            vec![Metric {
                counter: Some(Counter {
                    value: 1.0,
                    exemplar: Some(ex("c", 1.0, Some(5))),
                    created_timestamp: None,
                }),
                ..Default::default()
            }],
        ),
        family(
            "h",
            dto::MetricType::Histogram,
            vec![Metric {
                histogram: Some(hist),
                ..Default::default()
            }],
        ),
    ]);
    let collect = |options: HistogramOptions| {
        let mut parser = ProtoParser::new(&b, options);
        let mut out = Vec::new();
        while let Some(entry) = parser.next() {
            if matches!(
                entry.unwrap(),
                Entry::Series { .. } | Entry::Histogram { .. }
            ) {
                for e in parser.exemplars() {
                    out.push(format!(
                        "{} {} {} {:?}",
                        parser.labels().unwrap(),
                        e.labels,
                        e.value,
                        e.timestamp_ms
                    ));
                }
            }
        }
        out
    };
    // Classic: the counter's and the bucket's (no timestamp needed).
    assert_eq!(
        collect(HistogramOptions::default()),
        [
            r#"{__name__="a_total"} {trace_id="c"} 1 Some(5005)"#,
            r#"{__name__="h_bucket", le="1.0"} {trace_id="b1"} 0.7 None"#,
        ]
    );
    // Native: the listed ones with a timestamp, oldest first.
    let native = HistogramOptions {
        native: true,
        keep_classic: false,
    };
    assert_eq!(
        collect(native)[1..],
        [
            r#"{__name__="h"} {trace_id="n1"} 1.2 Some(10005)"#,
            r#"{__name__="h"} {trace_id="n2"} 1.5 Some(20005)"#,
        ]
    );
}
