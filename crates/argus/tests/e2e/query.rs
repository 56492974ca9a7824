//! The query API on the real binary: JSON exactly as Prometheus writes it, errors with
//! Prometheus's errorType and status.

use super::harness::*;

fn raw(argus: &Argus, path: &str) -> (u16, String) {
    let r = client().get(argus.url(path)).send().unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

/// `reqs_total` for instances `a` and `b` (job `j`) every 15s for 10 minutes from `base`:
/// `a` counts up by 1 a sample, `b` by 2.
pub(super) fn two_counters(base: i64) -> Vec<TimeSeries> {
    ["a", "b"]
        .iter()
        .enumerate()
        .map(|(k, inst)| {
            let samples: Vec<(i64, f64)> = (0..=40)
                .map(|i| (base + i * 15_000, (i * (k as i64 + 1)) as f64))
                .collect();
            series(
                &[("__name__", "reqs_total"), ("instance", inst), ("job", "j")],
                &samples,
            )
        })
        .collect()
}

#[test]
fn instant_and_range_queries_answer_like_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let argus = ArgusBuilder::new(&dir.path().join("data")).start();
    // Two counters sampled every 15s for 10 minutes, at fixed times.
    let base = 1_700_000_000_000i64;
    let ts = two_counters(base);
    assert_eq!(argus.write(&WriteRequest { timeseries: ts }).status(), 204);
    let t = (base + 600_000) / 1000;

    let (status, body) = raw(&argus, &format!("/api/v1/query?query=reqs_total&time={t}"));
    assert_eq!(status, 200);
    assert_eq!(
        body,
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"reqs_total","instance":"a","job":"j"},"value":[1700000600,"40"]},{"metric":{"__name__":"reqs_total","instance":"b","job":"j"},"value":[1700000600,"80"]}]}}"#
    );
    let (_, body) = raw(
        &argus,
        &format!(
            "/api/v1/query?query={}&time={t}",
            urlencode("sum by (job) (rate(reqs_total[5m]))")
        ),
    );
    assert_eq!(
        body,
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"job":"j"},"value":[1700000600,"0.2"]}]}}"#
    );
    let (_, body) = raw(
        &argus,
        &format!("/api/v1/query?query={}&time={t}", urlencode("1/3")),
    );
    assert_eq!(
        body,
        r#"{"status":"success","data":{"resultType":"scalar","result":[1700000600,"0.3333333333333333"]}}"#
    );

    let (status, body) = raw(
        &argus,
        &format!(
            "/api/v1/query_range?query={}&start={}&end={t}&step=300",
            urlencode("reqs_total{instance=\"a\"} * 2"),
            t - 600
        ),
    );
    assert_eq!(status, 200);
    assert_eq!(
        body,
        r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"instance":"a","job":"j"},"values":[[1700000000,"0"],[1700000300,"40"],[1700000600,"80"]]}]}}"#
    );

    // A query over its timeout stops with Prometheus's timeout error.
    let (status, body) = raw(
        &argus,
        &format!(
            "/api/v1/query_range?query={}&start={}&end={t}&step=0.06&timeout=1ms",
            urlencode("sum(rate(reqs_total[5m])) * count(reqs_total)"),
            t - 600
        ),
    );
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"errorType\":\"timeout\""), "{body}");

    // The endpoints Grafana calls next to queries.
    assert_eq!(
        raw(&argus, "/api/v1/metadata").1,
        r#"{"status":"success","data":{}}"#
    );
    assert_eq!(
        raw(
            &argus,
            &format!(
                "/api/v1/query_exemplars?query=reqs_total&start={}&end={t}",
                t - 60
            )
        )
        .1,
        r#"{"status":"success","data":[]}"#
    );
    let info = argus.get_json("/api/v1/status/runtimeinfo");
    assert_eq!(info["data"]["storageRetention"], "15d");
    assert_eq!(info["data"]["corruptionCount"], 0);

    // Errors.
    let (status, body) = raw(&argus, "/api/v1/query?query=sum(");
    assert_eq!(status, 400);
    assert_eq!(
        body,
        r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:5: parse error: unclosed left parenthesis"}"#
    );
    let (status, body) = raw(
        &argus,
        &format!("/api/v1/query_range?query=x&start={t}&end={t}&step=0"),
    );
    assert_eq!(status, 400);
    assert_eq!(
        body,
        r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer"}"#
    );
    let (status, body) = raw(
        &argus,
        &format!("/api/v1/query_range?query=x&start=0&end={t}&step=1"),
    );
    assert_eq!(status, 400);
    assert!(
        body.contains("exceeded maximum resolution of 11,000 points"),
        "{body}"
    );
    // Warnings come back next to the data, with the position in the query.
    let (status, body) = raw(
        &argus,
        &format!(
            "/api/v1/query?query={}&time={t}",
            urlencode("quantile(2, reqs_total)")
        ),
    );
    assert_eq!(status, 200);
    assert!(
        body.ends_with(r#","warnings":["PromQL warning: quantile value should be between 0 and 1, got 2 (1:10)"]}"#),
        "{body}"
    );
    assert!(!body.contains("infos"), "{body}");
    // `stats` adds timings and the samples read to `data`.
    let (status, body) = raw(
        &argus,
        &format!("/api/v1/query?query=reqs_total&time={t}&stats=all"),
    );
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let stats = &v["data"]["stats"];
    assert_eq!(stats["samples"]["totalQueryableSamples"], 2, "{body}");
    for key in [
        "evalTotalTime",
        "resultSortTime",
        "queryPreparationTime",
        "innerEvalTime",
        "execQueueTime",
        "execTotalTime",
    ] {
        assert!(stats["timings"][key].as_f64().is_some(), "{key}: {body}");
    }
    let (_, body) = raw(
        &argus,
        &format!(
            "/api/v1/query_range?query=reqs_total&start={}&end={t}&step=60&stats=1",
            t - 600
        ),
    );
    assert!(
        body.contains(r#""stats":{"timings":{"evalTotalTime":"#),
        "{body}"
    );
    let (_, body) = raw(&argus, &format!("/api/v1/query?query=reqs_total&time={t}"));
    assert!(!body.contains("stats"), "{body}");
}

/// `prometheus_http_requests_total` and the latency and size histograms count what each
/// route served, by Prometheus's handler names, and leave out what no route matched.
#[test]
fn http_requests_are_counted_by_handler_and_code() {
    let dir = tempfile::tempdir().unwrap();
    let argus = ArgusBuilder::new(&dir.path().join("data")).start();
    let scrape = || raw(&argus, "/metrics").1;
    let value = |text: &str, series: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map(|v| v.parse().unwrap())
    };
    let before = scrape();
    let q = r#"prometheus_http_requests_total{code="200",handler="/api/v1/query"}"#;
    assert_eq!(value(&before, q), Some(0.0), "{before}");
    assert_eq!(
        value(
            &before,
            r#"prometheus_http_requests_total{code="200",handler="/api/v1/write"}"#
        ),
        Some(0.0)
    );
    for _ in 0..3 {
        assert_eq!(raw(&argus, "/api/v1/query?query=1").0, 200);
    }
    assert_eq!(raw(&argus, "/api/v1/query?query=sum(").0, 400);
    for _ in 0..2 {
        assert_eq!(raw(&argus, "/api/v1/label/job/values").0, 200);
    }
    assert_eq!(raw(&argus, "/-/healthy").0, 200);
    assert_eq!(raw(&argus, "/api/v1/nope").0, 404);
    assert_eq!(raw(&argus, "/nope").0, 404);

    let after = scrape();
    for (series, want) in [
        (q, 3.0),
        (
            r#"prometheus_http_requests_total{code="400",handler="/api/v1/query"}"#,
            1.0,
        ),
        (
            r#"prometheus_http_requests_total{code="200",handler="/api/v1/label/:name/values"}"#,
            2.0,
        ),
        (
            r#"prometheus_http_requests_total{code="200",handler="/-/healthy"}"#,
            1.0,
        ),
        // The first scrape was counted once it was answered.
        (
            r#"prometheus_http_requests_total{code="200",handler="/metrics"}"#,
            1.0,
        ),
        (
            r#"prometheus_http_request_duration_seconds_count{handler="/api/v1/query"}"#,
            4.0,
        ),
        (
            r#"prometheus_http_request_duration_seconds_bucket{le="0.1",handler="/api/v1/query"}"#,
            4.0,
        ),
        (
            r#"prometheus_http_response_size_bytes_sum{handler="/-/healthy"}"#,
            "Prometheus Server is Healthy.\n".len() as f64,
        ),
    ] {
        assert_eq!(value(&after, series), Some(want), "{series} in\n{after}");
    }
    assert!(!after.contains("nope"), "{after}");
}

/// `format_query`, `parse_query` and `status/config` (secrets hidden), GET and POST.
#[test]
fn format_parse_query_and_config_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let argus = ArgusBuilder::new(&dir.path().join("data"))
        .config(
            "global:\n  scrape_interval: 15s\nremote_write:\n  - url: http://127.0.0.1:1/w\n    basic_auth:\n      username: u\n      password: hunter2\n",
        )
        .start();
    let (status, body) = raw(
        &argus,
        &format!(
            "/api/v1/format_query?query={}",
            urlencode("sum(rate(x{b='1',a=\"2\"}[5m])) by (job)")
        ),
    );
    assert_eq!(status, 200);
    assert_eq!(
        body,
        r#"{"status":"success","data":"sum by (job) (rate(x{a=\"2\",b=\"1\"}[5m]))"}"#
    );
    let r = client()
        .post(argus.url("/api/v1/format_query"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("query={}", urlencode("a   +   on(b)   c")))
        .send()
        .unwrap();
    assert_eq!(
        r.text().unwrap(),
        r#"{"status":"success","data":"a + on (b) c"}"#
    );
    let (status, body) = raw(&argus, "/api/v1/format_query?query=sum(");
    assert_eq!(status, 400);
    assert_eq!(
        body,
        r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:5: parse error: unclosed left parenthesis"}"#
    );

    let (status, body) = raw(
        &argus,
        &format!("/api/v1/parse_query?query={}", urlencode("-x")),
    );
    assert_eq!(status, 200);
    assert_eq!(
        body,
        concat!(
            r#"{"status":"success","data":{"expr":{"matchers":[{"name":"__name__","type":"=","value":"x"}],"#,
            r#""name":"x","offset":0,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"},"op":"-","type":"unaryExpr"}}"#
        )
    );

    let yaml = argus.get_json("/api/v1/status/config")["data"]["yaml"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(yaml.contains("url: http://127.0.0.1:1/w"), "{yaml}");
    assert!(
        yaml.contains("password: <secret>") && !yaml.contains("hunter2"),
        "{yaml}"
    );
}

/// Experimental PromQL is refused with Prometheus's message until `--enable-feature` turns
/// it on; unknown feature names are accepted with a logged warning.
#[test]
fn experimental_promql_needs_enable_feature() {
    let q = format!(
        "/api/v1/query?query={}&time=100",
        urlencode("mad_over_time(up[5m])")
    );
    let dir = tempfile::tempdir().unwrap();
    let plain = ArgusBuilder::new(&dir.path().join("data")).start();
    let (status, body) = raw(&plain, &q);
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains(r#"1:1: parse error: function \"mad_over_time\" is not enabled"#),
        "{body}"
    );
    drop(plain);
    let dir = tempfile::tempdir().unwrap();
    let enabled = ArgusBuilder::new(&dir.path().join("data"))
        .flag("--enable-feature=no-such-feature,promql-experimental-functions,promql-duration-expr")
        .start();
    let (status, body) = raw(&enabled, &q);
    assert_eq!(status, 200, "{body}");
    // A duration that depends on the query is checked as Prometheus prepares the query: an
    // instant query's step is 0, a range query's is not.
    let step_range = urlencode("max_over_time(up[step()])");
    let (status, body) = raw(
        &enabled,
        &format!("/api/v1/query?query={step_range}&time=100"),
    );
    assert_eq!(
        (status, body.as_str()),
        (
            400,
            r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 17:23: duration must be greater than 0"}"#
        )
    );
    // A division by zero there is named at the division.
    let divided = urlencode("up offset (1m / step())");
    assert_eq!(
        raw(&enabled, &format!("/api/v1/query?query={divided}&time=100")),
        (
            400,
            r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 11:22: division by zero"}"#
                .to_string()
        )
    );
    let (status, body) = raw(
        &enabled,
        &format!("/api/v1/query_range?query={step_range}&start=0&end=100&step=10"),
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        enabled
            .log_text()
            .contains("Unknown option for --enable-feature"),
        "{}",
        enabled.log_text()
    );
}

/// `--enable-feature=promql-delayed-name-removal` keeps the name readable until the query's
/// end: `label_replace` can copy it out of `rate(...)`'s result. Without the flag the name is
/// already gone (Prometheus's default).
#[test]
fn delayed_name_removal_needs_enable_feature() {
    let base = 1_700_000_000_000i64;
    let t = (base + 600_000) / 1000;
    let q = format!(
        "/api/v1/query?query={}&time={t}",
        urlencode(r#"label_replace(rate(reqs_total[5m]), "from", "$1", "__name__", "(.+)")"#)
    );
    let answer = |flags: &[&str]| {
        let dir = tempfile::tempdir().unwrap();
        let mut b = ArgusBuilder::new(&dir.path().join("data"));
        for f in flags {
            b = b.flag(f);
        }
        let argus = b.start();
        let write = WriteRequest {
            timeseries: two_counters(base),
        };
        assert_eq!(argus.write(&write).status(), 204);
        raw(&argus, &q)
    };
    assert_eq!(
        answer(&[]),
        (
            200,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"instance":"a","job":"j"},"value":[1700000600,"0.06666666666666667"]},{"metric":{"instance":"b","job":"j"},"value":[1700000600,"0.13333333333333333"]}]}}"#.to_string()
        )
    );
    assert_eq!(
        answer(&["--enable-feature=promql-delayed-name-removal"]),
        (
            200,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"from":"reqs_total","instance":"a","job":"j"},"value":[1700000600,"0.06666666666666667"]},{"metric":{"from":"reqs_total","instance":"b","job":"j"},"value":[1700000600,"0.13333333333333333"]}]}}"#.to_string()
        )
    );
}

/// A remote-write `Histogram` message: integer counts 1, 2, 1 in schema-0 buckets 0–2,
/// count 4, sum 5, at `t` milliseconds.
pub(super) fn histogram_message(t: i64) -> Vec<u8> {
    let mut m = vec![0x08, 0x04, 0x19];
    m.extend_from_slice(&5.0f64.to_le_bytes());
    // positive span (offset 0, length 3), then the deltas 1, +1, -1 packed
    m.extend_from_slice(&[
        0x5a, 0x04, 0x08, 0x00, 0x10, 0x03, 0x62, 0x03, 0x02, 0x02, 0x01, 0x78,
    ]);
    let mut t = t as u64;
    while t >= 0x80 {
        m.push((t as u8) | 0x80);
        t >>= 7;
    }
    m.push(t as u8);
    m
}

/// Native histograms sent by remote write are stored, answered in Prometheus's JSON, usable
/// by histogram functions, and still there after a restart.
#[test]
fn native_histograms_from_remote_write() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let t = 1_700_000_000_000i64;
    let argus = ArgusBuilder::new(&data).start();
    let mut ts = series(&[("__name__", "latency"), ("job", "j")], &[]);
    ts.histograms = vec![histogram_message(t), histogram_message(t + 15_000)];
    let resp = argus.write(&WriteRequest {
        timeseries: vec![ts],
    });
    assert_eq!(resp.status(), 204, "{}", resp.text().unwrap_or_default());
    let expected = r#""histogram":[1700000015,{"count":"4","sum":"5","buckets":[[0,"0.5","1","1"],[0,"1","2","2"],[0,"2","4","1"]]}]"#;
    let check = |argus: &Argus| {
        let (status, body) = raw(
            argus,
            &format!("/api/v1/query?query=latency&time={}", (t + 15_000) / 1000),
        );
        assert_eq!(status, 200, "{body}");
        assert!(body.contains(expected), "{body}");
        let (_, body) = raw(
            argus,
            &format!(
                "/api/v1/query?query={}&time={}",
                urlencode("histogram_quantile(0.5, latency)"),
                (t + 15_000) / 1000
            ),
        );
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let q: f64 = v["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{body}"));
        assert!((q - std::f64::consts::SQRT_2).abs() < 1e-12, "{body}");
    };
    check(&argus);
    argus.stop();
    let argus = ArgusBuilder::new(&data).start();
    check(&argus);
    // An invalid histogram is refused with the reason, like Prometheus.
    let mut bad = series(&[("__name__", "latency"), ("job", "j")], &[]);
    bad.histograms = vec![vec![0x20, 0x12]];
    let resp = argus.write(&WriteRequest {
        timeseries: vec![bad],
    });
    assert_eq!(resp.status(), 400);
    assert!(resp.text().unwrap().contains("invalid schema"));
}

/// What a query is asked with besides its expression is read in Prometheus's order and
/// refused in its words (`limit`, `time`, `timeout`, `lookback_delta`, then the query;
/// for a range `start`, `end`, `step` come before the timeout), and `limit` cuts the answer
/// to its first series with Prometheus's warning.
#[test]
fn query_parameters_are_read_and_refused_as_prometheus_does() {
    let dir = tempfile::tempdir().unwrap();
    let argus = ArgusBuilder::new(&dir.path().join("data")).start();
    let base = 1_700_000_000_000i64;
    assert_eq!(
        argus
            .write(&WriteRequest {
                timeseries: two_counters(base)
            })
            .status(),
        204
    );
    let t = (base + 600_000) / 1000;

    let (status, body) = raw(
        &argus,
        &format!("/api/v1/query?query=reqs_total&time={t}&limit=1"),
    );
    assert_eq!(status, 200);
    assert_eq!(
        body,
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"reqs_total","instance":"a","job":"j"},"value":[1700000600,"40"]}]},"warnings":["results truncated due to limit"]}"#
    );
    let (_, body) = raw(
        &argus,
        &format!("/api/v1/query?query=reqs_total&time={t}&limit=2"),
    );
    assert!(!body.contains("warnings"), "{body}");
    let (_, body) = raw(
        &argus,
        &format!(
            "/api/v1/query_range?query=reqs_total&start={}&end={t}&step=300&limit=1",
            t - 300
        ),
    );
    assert_eq!(
        body,
        r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"reqs_total","instance":"a","job":"j"},"values":[[1700000300,"20"],[1700000600,"40"]]}]},"warnings":["results truncated due to limit"]}"#
    );
    // Exemplars of a query without a selector: no data, which Prometheus answers with 204.
    assert_eq!(
        raw(&argus, "/api/v1/query_exemplars?query=1"),
        (204, String::new())
    );
    // A path Prometheus does not serve is answered as Go's `http.NotFound` answers it.
    assert_eq!(
        raw(&argus, "/api/v2/query"),
        (404, "404 page not found\n".to_string())
    );
    // A lookup whose end is before its start is answered, empty.
    let (status, body) = raw(&argus, "/api/v1/series?match[]=reqs_total&start=10&end=1");
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"status":"success","data":[]}"#)
    );

    // A range query's parameters with some replaced (`""` as a value leaves it empty).
    let range = |more: &str| {
        let mut p: Vec<(String, String)> = vec![
            ("query".into(), "reqs_total".into()),
            ("start".into(), (t - 60).to_string()),
            ("end".into(), t.to_string()),
            ("step".into(), "15".into()),
        ];
        for kv in more.split('&').filter(|kv| !kv.is_empty()) {
            let (k, v) = kv.split_once('=').unwrap();
            match p.iter_mut().find(|(name, _)| name == k) {
                Some(entry) => entry.1 = v.to_string(),
                None => p.push((k.to_string(), v.to_string())),
            }
        }
        let q: Vec<String> = p.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("/api/v1/query_range?{}", q.join("&"))
    };
    let cases = [
        (
            "/api/v1/query?query=up&time=soon".to_string(),
            r#"invalid parameter "time": invalid time value for 'time': cannot parse "soon" to a valid timestamp"#,
        ),
        (
            "/api/v1/query?query=up&limit=abc".to_string(),
            r#"invalid parameter "limit": strconv.Atoi: parsing "abc": invalid syntax"#,
        ),
        (
            "/api/v1/query?query=up&limit=-1".to_string(),
            r#"invalid parameter "limit": limit must be non-negative"#,
        ),
        (
            "/api/v1/query?query=up&lookback_delta=abc".to_string(),
            r#"error parsing lookback delta duration: cannot parse "abc" to a valid duration"#,
        ),
        (
            "/api/v1/query?query=sum(&time=soon&timeout=x".to_string(),
            r#"invalid parameter "time": invalid time value for 'time': cannot parse "soon" to a valid timestamp"#,
        ),
        (
            "/api/v1/query?query=sum(&timeout=x&lookback_delta=y".to_string(),
            r#"invalid parameter "timeout": cannot parse "x" to a valid duration"#,
        ),
        (
            "/api/v1/query?query=sum(&lookback_delta=y".to_string(),
            r#"error parsing lookback delta duration: cannot parse "y" to a valid duration"#,
        ),
        (
            range("&step=0s&query=sum("),
            r#"invalid parameter "step": zero or negative query resolution step widths are not accepted. Try a positive integer"#,
        ),
        // Steps are Go durations: nanoseconds, checked before they are cut to milliseconds.
        (
            range("&start=0&end=10000000000&step=1e-9"),
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ),
        (
            range("&step=1e10"),
            r#"invalid parameter "step": cannot parse "1e10" to a valid duration. It overflows int64"#,
        ),
        (
            range("&step=NaN"),
            r#"invalid parameter "step": zero or negative query resolution step widths are not accepted. Try a positive integer"#,
        ),
        (
            range("&limit=x&start="),
            r#"invalid parameter "limit": strconv.Atoi: parsing "x": invalid syntax"#,
        ),
        (
            range("&timeout=x&query=sum("),
            r#"invalid parameter "timeout": cannot parse "x" to a valid duration"#,
        ),
        (
            "/api/v1/series?match[]=up{".to_string(),
            r#"invalid parameter "match[]": 1:4: parse error: unexpected end of input inside braces"#,
        ),
        (
            "/api/v1/series?match[]=%7Bjob%3D~%22.*%22%7D".to_string(),
            r#"invalid parameter "match[]": match[] must contain at least one non-empty matcher"#,
        ),
        (
            "/api/v1/series?match[]=up&start=yesterday".to_string(),
            r#"invalid parameter "start": invalid time value for 'start': cannot parse "yesterday" to a valid timestamp"#,
        ),
        (
            "/api/v1/series?match[]=up{&limit=some".to_string(),
            r#"invalid parameter "limit": strconv.Atoi: parsing "some": invalid syntax"#,
        ),
        (
            "/api/v1/labels?match[]=up{".to_string(),
            "1:4: parse error: unexpected end of input inside braces",
        ),
        (
            "/api/v1/label/job/values?match[]=%7B%7D".to_string(),
            "match[] must contain at least one non-empty matcher",
        ),
        (
            "/api/v1/labels?limit=some&start=x".to_string(),
            r#"invalid parameter "limit": strconv.Atoi: parsing "some": invalid syntax"#,
        ),
        (
            "/api/v1/metadata?limit=abc".to_string(),
            "limit must be a number",
        ),
    ];
    for (path, want) in cases {
        let (status, body) = raw(&argus, &path);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (status, v["errorType"].as_str(), v["error"].as_str()),
            (400, Some("bad_data"), Some(want)),
            "{path}"
        );
    }
    // Names and values come from the head only when the range reaches its samples.
    for path in [
        "/api/v1/label/job/values?start=4000000000",
        "/api/v1/label/job/values?end=1000",
        "/api/v1/labels?start=4000000000",
    ] {
        assert_eq!(
            raw(&argus, path),
            (200, r#"{"status":"success","data":[]}"#.to_string()),
            "{path}"
        );
    }
    assert_eq!(
        raw(&argus, &format!("/api/v1/label/job/values?start={t}")),
        (200, r#"{"status":"success","data":["j"]}"#.to_string())
    );
    // An encoded `/` makes a path no route serves, as Go's router reads it.
    assert_eq!(
        raw(&argus, "/api/v1/label/x%2Fy/values"),
        (404, "404 page not found\n".to_string())
    );
    // A timeout of 0 is a deadline already past (Go's context.WithTimeout), after the query
    // is read.
    assert_eq!(
        raw(&argus, "/api/v1/query?query=1&timeout=0"),
        (
            503,
            r#"{"status":"error","errorType":"timeout","error":"query timed out in query execution"}"#
                .to_string()
        )
    );
    assert_eq!(raw(&argus, "/api/v1/query?query=1%2B&timeout=-1").0, 400);
    // A step's fraction of a millisecond is cut off, as Prometheus's engine cuts it: 1.5ms
    // steps are 1ms steps.
    let (status, body) = raw(
        &argus,
        "/api/v1/query_range?query=vector(1)&start=0&end=0.003&step=0.0015",
    );
    assert_eq!(
        (status, body.as_str()),
        (
            200,
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[0,"1"],[0.001,"1"],[0.002,"1"],[0.003,"1"]]}]}}"#
        )
    );
    // Under a millisecond, after the query is read (Prometheus fails there dividing by 0).
    let (status, body) = raw(
        &argus,
        "/api/v1/query_range?query=vector(1)&start=0&end=1&step=0.0001",
    );
    assert_eq!(
        (status, body.as_str()),
        (
            422,
            r#"{"status":"error","errorType":"execution","error":"query resolution step widths under one millisecond are not supported"}"#
        )
    );
}

/// Browsers are answered as Prometheus answers them (`--web.cors.origin`, default `.*`):
/// CORS headers on API answers to a request with an `Origin`, 204 for a preflight `OPTIONS`,
/// and `Access-Control-Allow-Origin` only for a matching origin when the flag narrows it.
#[test]
fn cors_as_prometheus_sets_it() {
    let get = |argus: &Argus, method: reqwest::Method, origin: &str| {
        let r = client()
            .request(method, argus.url("/api/v1/query?query=1"))
            .header("Origin", origin)
            .send()
            .unwrap();
        let h = |name: &str| {
            r.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
        };
        (
            r.status().as_u16(),
            h("access-control-allow-origin"),
            h("access-control-allow-methods"),
            h("access-control-allow-headers"),
        )
    };
    let methods = Some("GET, POST, OPTIONS".to_string());
    let headers = Some("Accept, Authorization, Content-Type, Origin".to_string());
    let dir = tempfile::tempdir().unwrap();
    let argus = ArgusBuilder::new(&dir.path().join("data")).start();
    assert_eq!(
        get(&argus, reqwest::Method::GET, "https://any.example"),
        (200, Some("*".into()), methods.clone(), headers.clone())
    );
    assert_eq!(
        get(&argus, reqwest::Method::OPTIONS, "https://any.example"),
        (204, Some("*".into()), methods.clone(), headers.clone())
    );
    // Without an Origin, no CORS headers.
    let r = client()
        .get(argus.url("/api/v1/query?query=1"))
        .send()
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    drop(argus);

    let dir = tempfile::tempdir().unwrap();
    let argus = ArgusBuilder::new(&dir.path().join("data"))
        .flag(r"--web.cors.origin=https?://good\.example")
        .start();
    assert_eq!(
        get(&argus, reqwest::Method::GET, "https://good.example"),
        (
            200,
            Some("https://good.example".into()),
            methods.clone(),
            headers.clone()
        )
    );
    assert_eq!(
        get(&argus, reqwest::Method::GET, "https://good.example.evil"),
        (200, None, methods, headers)
    );
}

/// Sends `requests` on one connection as raw bytes and returns the raw answer.
fn raw_exchange(argus: &Argus, requests: &[u8]) -> String {
    use std::io::{Read, Write};
    let address = argus.url("").trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    stream.write_all(requests).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// Go's HTTP server takes raw `"`, `<`, `>`, `` ` `` and `#` in a request target, and clients
/// send them (`curl -g '…/api/v1/query?query=up{job="x"}'`); argus answers such requests as it
/// answers the encoded ones, also after a request with a body on the same connection.
#[test]
fn raw_quotes_in_request_targets_are_taken_as_go_takes_them() {
    let dir = tempfile::tempdir().unwrap();
    let argus = ArgusBuilder::new(&dir.path().join("data")).start();
    let query = r#"label_replace(vector(1), "x", "<`>", "", "") # a comment"#;
    let encoded = raw(
        &argus,
        &format!("/api/v1/query?time=100&query={}", urlencode(query)),
    );
    assert_eq!(encoded.0, 200, "{}", encoded.1);
    let body = "query=vector(2)&time=100";
    let exchange = format!(
        "POST /api/v1/query HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}\
         GET /api/v1/query?time=100&query={} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        body.len(),
        query.replace(' ', "%20")
    );
    let answer = raw_exchange(&argus, exchange.as_bytes());
    let answers: Vec<&str> = answer.split("HTTP/1.1 ").skip(1).collect();
    assert_eq!(answers.len(), 2, "{answer}");
    assert!(
        answers[0].starts_with("200 ") && answers[0].contains(r#""2""#),
        "{answer}"
    );
    assert!(answers[1].starts_with("200 "), "{answer}");
    assert!(
        answers[1].ends_with(&encoded.1),
        "{answer}\nwant {}",
        encoded.1
    );
}

/// A parameter given both in a POST form body and in the URL is the body's, as Go's
/// `FormValue` reads it (checked against the Debian Prometheus); `match[]` takes both.
#[test]
fn form_body_parameters_come_before_the_query_string() {
    let dir = tempfile::tempdir().unwrap();
    let argus = ArgusBuilder::new(&dir.path().join("data")).start();
    let post = |path: &str, body: &str| {
        let r = client()
            .post(argus.url(path))
            .header(
                "Content-Type",
                "Application/X-WWW-Form-Urlencoded; charset=utf-8",
            )
            .body(body.to_string())
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    assert_eq!(
        post("/api/v1/query?query=vector(1)&time=100", "query=vector(2)"),
        (
            200,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[100,"2"]}]}}"#
                .to_string()
        )
    );
    let (status, body) = post(
        "/api/v1/series?match[]=up&start=0&end=1",
        "match[]=nothing_here&start=0&end=1",
    );
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"status":"success","data":[]}"#)
    );
}

/// A `GET` longer than hyper takes (64 KiB) is answered as Go's server answers it (up to
/// 1 MiB of headers): as the same query.
#[test]
fn long_get_requests_are_answered() {
    let dir = tempfile::tempdir().unwrap();
    let argus = ArgusBuilder::new(&dir.path().join("data")).start();
    let query: Vec<String> = (0..2500)
        .map(|i| format!("label_replace(vector({i}), \"i\", \"{i}\", \"\", \"\")"))
        .collect();
    let query = format!("count({})", query.join(" or "));
    let path = format!("/api/v1/query?time=100&query={}", urlencode(&query));
    assert!(path.len() > 100_000);
    let answer = raw_exchange(
        &argus,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    let want = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[100,"2500"]}]}}"#;
    let head: String = answer.chars().take(300).collect();
    assert!(
        answer.starts_with("HTTP/1.1 200 ") && answer.ends_with(want),
        "{head}"
    );
}

/// Queries as deep as argus evaluates are answered; deeper ones are refused with a parse
/// error (Prometheus, whose Go stacks grow, has no limit), and the server stays up.
#[test]
fn deep_queries_are_answered_or_refused_without_harm() {
    let dir = tempfile::tempdir().unwrap();
    let argus = ArgusBuilder::new(&dir.path().join("data")).start();
    let post = |query: &str| {
        let r = client()
            .post(argus.url("/api/v1/query"))
            .form(&[("query", query), ("time", "100")])
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    // 3000 levels: 2998 aggregations around `vector(7)` (the call and its number).
    let nested = |k: usize| format!("{}vector(7){}", "sum(".repeat(k), ")".repeat(k));
    assert_eq!(
        post(&nested(2998)),
        (
            200,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[100,"7"]}]}}"#
                .to_string()
        )
    );
    let chain = vec!["vector(1)"; 2999].join(" + ");
    let (status, body) = post(&chain);
    assert_eq!(
        (status, body.as_str()),
        (
            200,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[100,"2999"]}]}}"#
        )
    );
    for query in [nested(2999), vec!["vector(1)"; 3000].join(" + ")] {
        let (status, body) = post(&query);
        assert_eq!(status, 400, "{body}");
        assert!(
            body.starts_with(r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:"#)
                && body.ends_with(r#": parse error: expression nests deeper than 3000 levels, which argus does not evaluate"}"#),
            "{body}"
        );
    }
    // The other endpoints that read a query walk it too.
    for endpoint in ["format_query", "parse_query"] {
        let r = client()
            .post(argus.url(&format!("/api/v1/{endpoint}")))
            .form(&[("query", nested(2998))])
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{endpoint}");
        assert!(r.text().unwrap().contains("vector"), "{endpoint}");
    }
    let r = client()
        .post(argus.url("/api/v1/query_range"))
        .form(&[
            ("query", chain.as_str()),
            ("start", "0"),
            ("end", "100"),
            ("step", "10"),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(raw(&argus, "/-/healthy").0, 200);
}

/// Bytes that are not UTF-8 inside a string are refused as Prometheus's lexer refuses them,
/// at the string (answers taken from the Debian Prometheus); elsewhere they are an
/// unexpected character, as there.
#[test]
fn bytes_that_are_not_utf8_in_strings_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let argus = ArgusBuilder::new(&dir.path().join("data")).start();
    for (query, want) in [
        (
            "m%7Bx%3D%22%ff%22%7D",
            "1:5: parse error: invalid UTF-8 rune",
        ),
        ("%22%ff%22", "1:1: parse error: invalid UTF-8 rune"),
        (
            "label_replace(m,%22a%ff%22,%22b%22,%22x%22,%22.*%22)",
            "1:17: parse error: invalid UTF-8 rune",
        ),
        ("%60a%e2%82%60", "1:1: parse error: invalid UTF-8 rune"),
        (
            "sum%20by%20(%ff)%20(m)",
            "1:9: parse error: unexpected character: '\u{FFFD}'",
        ),
    ] {
        let (status, body) = raw(&argus, &format!("/api/v1/query?query={query}&time=1"));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (status, v["error"].as_str()),
            (
                400,
                Some(format!("invalid parameter \"query\": {want}").as_str())
            ),
            "{query}"
        );
    }
}
