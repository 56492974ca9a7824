//! The query list of the public PromQL compliance tester
//! (`../shared/compliance/promql-test-queries.yml`) with its `{{.placeholder}}`s expanded the
//! way the tester expands them. Used by the parser, printer and differential tests.

use argus_model::Labels;

const STEP_MS: i64 = 5_000;
const INSTANCES: [&str; 3] = [
    "demo.promlabs.com:10000",
    "demo.promlabs.com:10001",
    "demo.promlabs.com:10002",
];

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

/// Deterministic pseudo-random in [0, 1).
fn unit(a: u64, b: u64) -> f64 {
    let mut x = a.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ b.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 31;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 29;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// The series shapes of PromLabs' demo service (which the compliance queries are written
/// for), every 5s over `[start, end]`, deterministic.
pub fn demo_data(start: i64, end: i64) -> Vec<(Labels, Vec<(i64, f64)>)> {
    let mut out = Vec::new();
    let steps: Vec<i64> = (0..)
        .map(|i| start + i * STEP_MS)
        .take_while(|t| *t <= end)
        .collect();
    for (k, inst) in INSTANCES.iter().enumerate() {
        let k = k as u64;
        let base = |name: &str, extra: &[(&str, &str)]| {
            let mut l: Vec<(String, String)> = vec![
                ("__name__".into(), name.into()),
                ("instance".into(), inst.to_string()),
                ("job".into(), "demo".into()),
            ];
            l.extend(extra.iter().map(|(a, b)| (a.to_string(), b.to_string())));
            l
        };
        let mk = |labels: Vec<(String, String)>, samples: Vec<(i64, f64)>| {
            let pairs: Vec<(&str, &str)> = labels
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect();
            (Labels::from_pairs(&pairs), samples)
        };
        for (j, ty) in ["free", "buffers", "cached", "used"].iter().enumerate() {
            let samples = steps
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    (
                        *t,
                        (1e9 * (j as f64 + 1.0)
                            + 1e8 * (i as f64 / 40.0).sin()
                            + 1e6 * unit(k, i as u64))
                        .round(),
                    )
                })
                .collect();
            out.push(mk(
                base("demo_memory_usage_bytes", &[("type", ty)]),
                samples,
            ));
        }
        out.push(mk(
            base("demo_num_cpus", &[]),
            steps
                .iter()
                .map(|t| (*t, [4.0, 8.0, 2.0][k as usize]))
                .collect(),
        ));
        for (j, mode) in ["idle", "user", "system"].iter().enumerate() {
            let mut v = 0.0;
            let samples = steps
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    // A counter reset in the middle for one series.
                    if k == 1 && j == 2 && i == steps.len() / 2 {
                        v = 0.0;
                    }
                    v += (j as f64 + 1.0) * 0.5 + unit(k * 10 + j as u64, i as u64);
                    (*t, (v * 1000.0).round() / 1000.0)
                })
                .collect();
            out.push(mk(
                base("demo_cpu_usage_seconds_total", &[("mode", mode)]),
                samples,
            ));
        }
        out.push(mk(
            base("demo_disk_usage_bytes", &[]),
            steps
                .iter()
                .enumerate()
                .map(|(i, t)| (*t, 5e10 + 1e6 * i as f64 + 1e4 * unit(k, i as u64 + 7)))
                .collect(),
        ));
        out.push(mk(
            base("demo_batch_last_success_timestamp_seconds", &[]),
            steps
                .iter()
                .map(|t| (*t, ((t / 1000) / 300 * 300) as f64))
                .collect(),
        ));
        // Present for 10 minutes out of every 20, ended by a stale marker.
        let mut inter = Vec::new();
        for (i, t) in steps.iter().enumerate() {
            if (i / 120) % 2 == 0 {
                inter.push((*t, i as f64));
            } else if i % 120 == 0 {
                inter.push((*t, f64::from_bits(argus_model::STALE_NAN_BITS)));
            }
        }
        out.push(mk(base("demo_intermittent_metric", &[]), inter));
        let les = [
            "0.0002", "0.001", "0.0025", "0.01", "0.025", "0.1", "0.25", "1", "2.5", "10", "+Inf",
        ];
        for method in ["GET", "POST"] {
            let mut counts = vec![0.0; les.len()];
            let mut bucket_samples: Vec<Vec<(i64, f64)>> = vec![Vec::new(); les.len()];
            let mut count_samples = Vec::new();
            let mut sum_samples = Vec::new();
            let mut sum = 0.0;
            for (i, t) in steps.iter().enumerate() {
                for n in 0..5u64 {
                    let obs = 0.0001 * (1.0 / (unit(k + n, i as u64) + 0.0001));
                    sum += obs;
                    for (b, le) in les.iter().enumerate() {
                        let bound: f64 = if *le == "+Inf" {
                            f64::INFINITY
                        } else {
                            le.parse().unwrap_or(f64::INFINITY)
                        };
                        if obs <= bound {
                            counts[b] += 1.0;
                        }
                    }
                }
                for b in 0..les.len() {
                    bucket_samples[b].push((*t, counts[b]));
                }
                count_samples.push((*t, counts[les.len() - 1]));
                sum_samples.push((*t, (sum * 1e6).round() / 1e6));
            }
            let extra = [("method", method), ("path", "/api/foo"), ("status", "200")];
            for (b, le) in les.iter().enumerate() {
                let mut labels = extra.to_vec();
                labels.push(("le", le));
                out.push(mk(
                    base("demo_api_request_duration_seconds_bucket", &labels),
                    bucket_samples[b].clone(),
                ));
            }
            out.push(mk(
                base("demo_api_request_duration_seconds_count", &extra),
                count_samples,
            ));
            out.push(mk(
                base("demo_api_request_duration_seconds_sum", &extra),
                sum_samples,
            ));
        }
    }
    out
}
