//! Snapshots (insta) of the HTTP API's answers, byte for byte with their status codes: one
//! per endpoint and result type, and one per error class. Data is written at fixed times, so
//! every answer is deterministic; a changed answer fails until its snapshot is reviewed
//! (`cargo insta review`, or `INSTA_UPDATE=always` to rewrite).

use super::harness::*;
use super::query::{histogram_message, two_counters};

/// `status` and body of a request, as one snapshot text.
fn answer(request: reqwest::blocking::RequestBuilder) -> String {
    let r = request.send().unwrap();
    let status = r.status().as_u16();
    let content_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    format!("{status} {content_type}\n{}", r.text().unwrap())
}

#[test]
fn api_answers_match_their_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let argus = ArgusBuilder::new(&dir.path().join("data"))
        .flag("--query.lookback-delta=5m")
        .start();
    let base = 1_700_000_000_000i64;
    let mut timeseries = two_counters(base);
    timeseries.push(series(
        &[("__name__", "temperature"), ("room", "lab")],
        &(0..=40)
            .map(|i| (base + i * 15_000, 20.0 + (i % 7) as f64 / 4.0))
            .collect::<Vec<_>>(),
    ));
    let mut hist = series(&[("__name__", "latency"), ("job", "j")], &[]);
    hist.histograms = vec![
        histogram_message(base + 585_000),
        histogram_message(base + 600_000),
    ];
    timeseries.push(hist);
    assert_eq!(argus.write(&WriteRequest { timeseries }).status(), 204);
    let t = (base + 600_000) / 1000;
    let get = |path: &str| answer(client().get(argus.url(path)));
    let query = |q: &str| get(&format!("/api/v1/query?query={}&time={t}", urlencode(q)));

    let cases: Vec<(&str, String)> = vec![
        ("query_vector", query("reqs_total")),
        ("query_scalar", query("1/3")),
        ("query_string", query("\"hello\"")),
        ("query_matrix", query("reqs_total{instance=\"a\"}[1m]")),
        ("query_histogram", query("latency")),
        (
            "query_histogram_functions",
            query("histogram_count(latency) + histogram_sum(latency)"),
        ),
        ("query_info_annotation", query("rate(temperature[5m])")),
        ("query_warning_annotation", query("quantile(2, reqs_total)")),
        (
            "query_special_floats",
            query(
                "reqs_total{instance=\"a\"} / 0 \
                 or label_replace(-reqs_total{instance=\"a\"} / 0, \"sign\", \"-\", \"\", \"\") \
                 or label_replace(vector(0/0), \"v\", \"nan\", \"\", \"\") \
                 or label_replace(vector(1e-7), \"v\", \"tiny\", \"\", \"\") \
                 or label_replace(vector(123456789012345678), \"v\", \"big\", \"\", \"\")",
            ),
        ),
        (
            "query_range",
            get(&format!(
                "/api/v1/query_range?query={}&start={}&end={t}&step=150",
                urlencode("sum by (job) (rate(reqs_total[2m]))"),
                t - 600
            )),
        ),
        (
            "query_post_form",
            answer(
                client()
                    .post(argus.url("/api/v1/query"))
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(format!("query={}&time={t}", urlencode("count(reqs_total)"))),
            ),
        ),
        (
            "series",
            get(&format!(
                "/api/v1/series?match[]={}",
                urlencode("{job=\"j\"}")
            )),
        ),
        ("labels", get("/api/v1/labels")),
        ("label_values", get("/api/v1/label/instance/values")),
        (
            "format_query",
            get(&format!(
                "/api/v1/format_query?query={}",
                urlencode("sum(rate(x{b='1',a=\"2\"}[5m]))by(job)")
            )),
        ),
        (
            "parse_query",
            get(&format!(
                "/api/v1/parse_query?query={}",
                urlencode("rate(x[5m]) * 2")
            )),
        ),
        (
            "query_exemplars_without_storage",
            get(&format!(
                "/api/v1/query_exemplars?query=reqs_total&start={}&end={t}",
                t - 600
            )),
        ),
        ("metadata_empty", get("/api/v1/metadata")),
        ("targets_empty", get("/api/v1/targets")),
        // Error classes.
        ("error_bad_data_parse", query("sum(")),
        (
            "error_bad_data_parameter",
            get("/api/v1/query?query=up&time=yesterday"),
        ),
        (
            "error_bad_data_range_step",
            get(&format!(
                "/api/v1/query_range?query=up&start={t}&end={}&step=0",
                t + 60
            )),
        ),
        (
            "error_execution",
            query("label_replace(reqs_total, \"instance\", \"x\", \"\", \"\")"),
        ),
        (
            "error_timeout",
            get(&format!(
                "/api/v1/query_range?query={}&start={}&end={t}&step=0.06&timeout=1ms",
                urlencode("sum(rate(reqs_total[5m])) * count(reqs_total)"),
                t - 600
            )),
        ),
        (
            "error_exemplars_range",
            get("/api/v1/query_exemplars?query=up&start=10&end=5"),
        ),
        ("error_not_found", get("/api/v1/nothing_here")),
    ];
    for (name, text) in cases {
        insta::assert_snapshot!(name, text);
    }
}
