//! Differential test against the real Prometheus 2.42 (Debian package `prometheus`): both
//! receive the same synthetic data over remote write; every query of
//! `../shared/compliance/promql-test-queries.yml` (placeholders expanded) runs as an instant
//! and a range query on both, and the results are compared (relative tolerance 1e-6,
//! NaN = NaN). Differences that come from 2.42 → 3.x semantic changes, or from features not
//! built yet, are listed in `differential_expected.txt` with the reason; any other
//! difference fails the test, and so does a listed query that now agrees.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::harness::*;

struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        signal(&self.0, libc::SIGTERM);
        wait_exit(&mut self.0);
    }
}

fn prometheus_binary() -> String {
    Command::new("sh")
        .args(["-c", "command -v prometheus"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| panic!("the differential test needs the real Prometheus: apt-get install prometheus (scripts/test.sh does this)"))
}

fn demo_data(start: i64, end: i64) -> Vec<TimeSeries> {
    argus_promql::compliance::demo_data(start, end)
        .into_iter()
        .map(|(labels, samples)| TimeSeries {
            labels: labels
                .iter()
                .map(|l| Label {
                    name: l.name.to_string(),
                    value: l.value.to_string(),
                })
                .collect(),
            samples: samples
                .into_iter()
                .map(|(timestamp, value)| Sample { value, timestamp })
                .collect(),
            histograms: Vec::new(),
        })
        .collect()
}

/// Writes all series in time order, in chunks of `window` ms, to one server.
fn load(url: &str, series: &[TimeSeries], start: i64, end: i64) {
    let c = client();
    let mut from = start;
    while from <= end {
        let to = from + 10 * 60_000;
        let ts: Vec<TimeSeries> = series
            .iter()
            .map(|s| TimeSeries {
                labels: s.labels.clone(),
                samples: s
                    .samples
                    .iter()
                    .filter(|x| x.timestamp >= from && x.timestamp < to)
                    .copied()
                    .collect(),
                histograms: Vec::new(),
            })
            .filter(|s| !s.samples.is_empty())
            .collect();
        let r = c
            .post(url)
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(encode(&WriteRequest { timeseries: ts }))
            .send()
            .expect("remote write");
        assert!(
            r.status().is_success(),
            "{url}: {} {}",
            r.status(),
            r.text().unwrap_or_default()
        );
        from = to;
    }
}

fn queries() -> Vec<(String, bool)> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/compliance/promql-test-queries.yml"
    );
    let text =
        std::fs::read_to_string(path).expect("../shared/compliance must sit beside the checkout");
    argus_promql::compliance::queries(&text)
}

/// A query result reduced to comparable form: label set → points, or an error marker.
fn fetch(
    base: &str,
    path: &str,
    params: &[(&str, String)],
) -> Result<BTreeMap<String, Vec<(String, f64)>>, String> {
    let c = client();
    let r = c
        .get(format!("{base}{path}"))
        .query(params)
        .send()
        .map_err(|e| e.to_string())?;
    let v: serde_json::Value = r.json().map_err(|e| e.to_string())?;
    if v["status"] != "success" {
        return Err(v["errorType"].as_str().unwrap_or("error").to_string());
    }
    let data = &v["data"];
    let mut out = BTreeMap::new();
    let num = |x: &serde_json::Value| -> f64 {
        match x.as_str().unwrap_or("NaN") {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            s => s.parse().unwrap_or(f64::NAN),
        }
    };
    match data["resultType"].as_str() {
        Some("scalar") | Some("string") => {
            out.insert(
                "scalar".into(),
                vec![(data["result"][0].to_string(), num(&data["result"][1]))],
            );
        }
        _ => {
            for s in data["result"].as_array().cloned().unwrap_or_default() {
                let key = s["metric"].to_string();
                let points: Vec<(String, f64)> = if let Some(vals) = s["values"].as_array() {
                    vals.iter()
                        .map(|p| (p[0].to_string(), num(&p[1])))
                        .collect()
                } else {
                    vec![(s["value"][0].to_string(), num(&s["value"][1]))]
                };
                out.insert(key, points);
            }
        }
    }
    Ok(out)
}

fn same(
    a: &BTreeMap<String, Vec<(String, f64)>>,
    b: &BTreeMap<String, Vec<(String, f64)>>,
) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|((ka, pa), (kb, pb))| {
            ka == kb
                && pa.len() == pb.len()
                && pa.iter().zip(pb).all(|((ta, va), (tb, vb))| {
                    ta == tb
                        && ((va.is_nan() && vb.is_nan())
                            || va == vb
                            || (va - vb).abs() <= 1e-6 * va.abs().max(vb.abs()))
                })
        })
}

#[test]
fn compliance_queries_agree_with_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let argus = ArgusBuilder::new(&dir.path().join("argus")).start();
    let prom_port = free_port();
    let config = dir.path().join("prometheus.yml");
    write_file(&config, "global:\n  scrape_interval: 15s\n");
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let _prom = Prometheus(
        Command::new(prometheus_binary())
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("prom").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .arg("--web.enable-remote-write-receiver")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus"),
    );
    let prom = format!("http://127.0.0.1:{prom_port}");
    wait_for(Duration::from_secs(60), "Prometheus ready", || {
        client()
            .get(format!("{prom}/-/ready"))
            .send()
            .ok()
            .filter(|r| r.status() == 200)
    });

    // One hour of data ending 10 minutes ago, on a 5s grid.
    let end = (now_ms() - 600_000) / 60_000 * 60_000;
    let start = end - 3_600_000;
    let data = demo_data(start, end);
    load(&argus.url("/api/v1/write"), &data, start, end);
    load(&format!("{prom}/api/v1/write"), &data, start, end);

    // Evaluate off the sample grid (2.5s after a sample), so that 3.x's left-open ranges and
    // 2.42's closed ones select the same samples.
    let t = (end - 2_500) as f64 / 1000.0;
    let expected: BTreeMap<String, String> = include_str!("differential_expected.txt")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            l.split_once(" # ")
                .map(|(q, why)| (q.trim().to_string(), why.to_string()))
        })
        .collect();
    let (mut agree, mut total) = (0, 0);
    let mut unexpected = Vec::new();
    let mut now_agree = BTreeSet::new();
    for (q, _should_fail) in queries() {
        for range in [false, true] {
            total += 1;
            let (path, params): (&str, Vec<(&str, String)>) = if range {
                (
                    "/api/v1/query_range",
                    vec![
                        ("query", q.clone()),
                        ("start", format!("{}", t - 600.0)),
                        ("end", format!("{t}")),
                        ("step", "60".into()),
                    ],
                )
            } else {
                (
                    "/api/v1/query",
                    vec![("query", q.clone()), ("time", format!("{t}"))],
                )
            };
            let a = fetch(&argus.url(""), path, &params);
            let p = fetch(&prom, path, &params);
            let ok = match (&a, &p) {
                (Ok(x), Ok(y)) => same(x, y),
                (Err(_), Err(_)) => true,
                _ => false,
            };
            let key = format!("{} {q}", if range { "range" } else { "instant" });
            match (ok, expected.contains_key(&key)) {
                (true, false) => agree += 1,
                (true, true) => {
                    now_agree.insert(key);
                }
                (false, true) => {}
                (false, false) => {
                    unexpected.push(format!("{key}\n    argus: {a:?}\n    prometheus: {p:?}"))
                }
            }
        }
    }
    // promtool, the real client, gets the same answers from both (output lines compared
    // as sets: series order within an instant vector is unspecified).
    let promtool = |server: &str, args: &[String]| -> Vec<String> {
        let out = Command::new("promtool")
            .arg("query")
            .arg(&args[0])
            .arg(server)
            .args(&args[1..])
            .output()
            .expect("promtool (from the Debian prometheus package)");
        assert!(
            out.status.success(),
            "promtool {args:?} against {server}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        lines.sort();
        lines
    };
    let calls: Vec<Vec<String>> = vec![
        vec![
            "instant".into(),
            "sum by (instance) (demo_num_cpus)".into(),
            format!("--time={t}"),
        ],
        vec![
            "range".into(),
            "rate(demo_cpu_usage_seconds_total{mode=\"idle\"}[5m])".into(),
            format!("--start={}", t - 600.0),
            format!("--end={t}"),
            "--step=60s".into(),
        ],
        vec!["series".into(), "--match=demo_num_cpus".into()],
        vec!["labels".into(), "instance".into()],
    ];
    for call in &calls {
        let a = promtool(&argus.url(""), call);
        let p = promtool(&prom, call);
        assert!(!a.is_empty(), "promtool {call:?} printed nothing");
        // `<value> @[<time>]` lines compare numerically (Prometheus 3 and 2.42 order the
        // floating-point operations of rate() differently: last-digit differences).
        let parse = |l: &String| -> (String, Option<f64>) {
            match l.split_once(" @[") {
                Some((v, ts)) => (ts.to_string(), v.parse().ok()),
                None => (l.clone(), None),
            }
        };
        let mut pa: Vec<_> = a.iter().map(parse).collect();
        let mut pp: Vec<_> = p.iter().map(parse).collect();
        let by_key = |x: &(String, Option<f64>), y: &(String, Option<f64>)| {
            x.0.cmp(&y.0)
                .then(x.1.unwrap_or(0.0).total_cmp(&y.1.unwrap_or(0.0)))
        };
        pa.sort_by(by_key);
        pp.sort_by(by_key);
        let same = pa.len() == pp.len()
            && pa.iter().zip(&pp).all(|(x, y)| {
                x.0 == y.0
                    && match (x.1, y.1) {
                        (Some(u), Some(v)) => (u - v).abs() <= 1e-12 * u.abs().max(v.abs()),
                        (None, None) => true,
                        _ => false,
                    }
            });
        assert!(
            same,
            "promtool {call:?} differs:\nargus: {a:?}\nprometheus: {p:?}"
        );
    }

    eprintln!(
        "differential vs Prometheus 2.42: {agree} of {total} query runs agree, {} listed differences",
        expected.len()
    );
    for u in &unexpected {
        eprintln!("DIFF {}", u.lines().next().unwrap_or(""));
    }
    assert!(
        unexpected.is_empty(),
        "{} unexpected differences:\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );
    assert!(
        now_agree.is_empty(),
        "now agreeing, remove from differential_expected.txt: {now_agree:?}"
    );
}
