//! `/api/v1/query` and `/api/v1/query_range`, answering with Prometheus's JSON: values as Go
//! formats floats (`"1e-07"`, `"+Inf"`, `"NaN"`), timestamps as seconds, results sorted.

use argus_model::Labels;
use argus_model::gofmt::{api_float, format_f};
use argus_promql::engine::Series;
use argus_promql::{Engine, EngineOptions, EvalError, Value};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::api::{ApiError, ErrorType};
use crate::params::Params;

/// Prometheus refuses range queries with more points than this per series.
const MAX_POINTS: i64 = 11_000;

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
}

fn labels_json(labels: &Labels) -> String {
    serde_json::to_string(labels).unwrap_or_else(|_| "{}".to_string())
}

fn point(t: i64, v: &str) -> String {
    format!("[{},{}]", format_f(t as f64 / 1000.0), json_str(v))
}

/// A native histogram as Prometheus's API writes it: count, sum and every populated bucket
/// as `[boundary rule, lower, upper, count]` (rule 0: `(a,b]`, 1: `[a,b)`, 2: `(a,b)`,
/// 3: `[a,b]`).
fn histogram_json(h: &argus_model::FloatHistogram) -> String {
    let mut out = format!(
        "{{\"count\":{},\"sum\":{}",
        json_str(&api_float(h.count)),
        json_str(&api_float(h.sum))
    );
    let buckets: Vec<String> = h
        .buckets()
        .into_iter()
        .filter(|b| b.count != 0.0)
        .map(|b| {
            let rule = match (b.lower_inclusive, b.upper_inclusive) {
                (true, true) => 3,
                (true, false) => 1,
                (false, true) => 0,
                (false, false) => 2,
            };
            format!(
                "[{rule},{},{},{}]",
                json_str(&api_float(b.lower)),
                json_str(&api_float(b.upper)),
                json_str(&api_float(b.count))
            )
        })
        .collect();
    if !buckets.is_empty() {
        out.push_str(&format!(",\"buckets\":[{}]", buckets.join(",")));
    }
    out.push('}');
    out
}

fn hist_point(t: i64, h: &argus_model::FloatHistogram) -> String {
    format!("[{},{}]", format_f(t as f64 / 1000.0), histogram_json(h))
}

/// The `data` of `/api/v1/query_exemplars`: per series its labels and exemplars (labels,
/// value as a string, timestamp in seconds).
pub fn exemplars_json(found: &[(Labels, Vec<argus_tsdb::exemplars::Exemplar>)]) -> String {
    let series: Vec<String> = found
        .iter()
        .map(|(labels, exemplars)| {
            let list: Vec<String> = exemplars
                .iter()
                .map(|e| {
                    format!(
                        "{{\"labels\":{},\"value\":{},\"timestamp\":{}}}",
                        labels_json(&e.labels),
                        json_str(&api_float(e.value)),
                        format_f(e.ts as f64 / 1000.0)
                    )
                })
                .collect();
            format!(
                "{{\"seriesLabels\":{},\"exemplars\":[{}]}}",
                labels_json(labels),
                list.join(",")
            )
        })
        .collect();
    format!("[{}]", series.join(","))
}

/// The `data` object of a query response.
pub fn result_json(value: &Value) -> String {
    match value {
        // Prometheus's `Scalar.MarshalJSON` writes `strconv.FormatFloat(v, 'f', -1, 64)`:
        // never an exponent (`0.0000001`), unlike sample values.
        Value::Scalar { t, v } => format!(
            "{{\"resultType\":\"scalar\",\"result\":{}}}",
            point(*t, &argus_model::gofmt::format_f(*v))
        ),
        Value::String { t, v } => {
            format!("{{\"resultType\":\"string\",\"result\":{}}}", point(*t, v))
        }
        Value::Vector(samples) => {
            let items: Vec<String> = samples
                .iter()
                .map(|s| match &s.h {
                    Some(h) => format!(
                        "{{\"metric\":{},\"histogram\":{}}}",
                        labels_json(&s.labels),
                        hist_point(s.t, h)
                    ),
                    None => format!(
                        "{{\"metric\":{},\"value\":{}}}",
                        labels_json(&s.labels),
                        point(s.t, &api_float(s.v))
                    ),
                })
                .collect();
            format!(
                "{{\"resultType\":\"vector\",\"result\":[{}]}}",
                items.join(",")
            )
        }
        Value::Matrix(series) => matrix_json(series),
    }
}

pub fn matrix_json(series: &[Series]) -> String {
    let items: Vec<String> = series
        .iter()
        .map(|s| {
            let mut out = format!("{{\"metric\":{}", labels_json(&s.labels));
            if !s.points.is_empty() || s.hists.is_empty() {
                let points: Vec<String> = s
                    .points
                    .iter()
                    .map(|(t, v)| point(*t, &api_float(*v)))
                    .collect();
                out.push_str(&format!(",\"values\":[{}]", points.join(",")));
            }
            if !s.hists.is_empty() {
                let hists: Vec<String> = s.hists.iter().map(|(t, h)| hist_point(*t, h)).collect();
                out.push_str(&format!(",\"histograms\":[{}]", hists.join(",")));
            }
            out.push('}');
            out
        })
        .collect();
    format!(
        "{{\"resultType\":\"matrix\",\"result\":[{}]}}",
        items.join(",")
    )
}

/// With the `stats` parameter set, the query's figures added to the `data` object as
/// Prometheus writes them: timings in seconds and the samples read.
pub fn with_stats(
    data: String,
    p: &Params,
    (queued, stats): (std::time::Duration, argus_promql::QueryStats),
    began: std::time::Instant,
) -> String {
    if p.get("stats").is_none_or(str::is_empty) || !data.ends_with('}') {
        return data;
    }
    let secs = |d: std::time::Duration| format_f(d.as_secs_f64());
    let stats = format!(
        "\"stats\":{{\"timings\":{{\"evalTotalTime\":{},\"resultSortTime\":0,\"queryPreparationTime\":{},\"innerEvalTime\":{},\"execQueueTime\":{},\"execTotalTime\":{}}},\"samples\":{{\"totalQueryableSamples\":{},\"peakSamples\":{}}}}}",
        secs(stats.prepare + stats.eval),
        secs(stats.prepare),
        secs(stats.eval),
        secs(queued),
        secs(began.elapsed()),
        stats.samples,
        stats.samples,
    );
    format!("{},{stats}}}", &data[..data.len() - 1])
}

pub fn success_raw(data: &str) -> Response {
    success_annotated(data, &Default::default(), "", false)
}

/// A success envelope with the query's warnings and infos (positions rendered against the
/// query text), each list left out when empty, as Prometheus does; `truncated` adds
/// Prometheus's warning for a result cut to the request's `limit`.
pub fn success_annotated(
    data: &str,
    annos: &argus_promql::annotations::Annotations,
    query: &str,
    truncated: bool,
) -> Response {
    let (mut warnings, infos) = annos.render(query);
    if truncated {
        warnings.push("results truncated due to limit".to_string());
    }
    let list = |items: &[String]| {
        items
            .iter()
            .map(|w| json_str(w))
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut body = format!("{{\"status\":\"success\",\"data\":{data}");
    if !warnings.is_empty() {
        body.push_str(&format!(",\"warnings\":[{}]", list(&warnings)));
    }
    if !infos.is_empty() {
        body.push_str(&format!(",\"infos\":[{}]", list(&infos)));
    }
    body.push('}');
    (
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

pub fn eval_error(e: EvalError) -> ApiError {
    let kind = match e {
        EvalError::Timeout => ErrorType::Timeout,
        EvalError::Canceled => ErrorType::Canceled,
        _ => ErrorType::Execution,
    };
    ApiError {
        kind,
        message: e.to_string(),
    }
}

/// Sets the query's cancel flag when dropped: if the client goes away, axum drops the
/// handler future, and the evaluation on the blocking thread stops at its next step.
pub struct CancelOnDrop(pub std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Prometheus's `parseDuration` for API parameters: float seconds or a duration string, as
/// a Go `time.Duration` (nanoseconds, a float's fraction cut off); the error is its message
/// (`cannot parse "x" to a valid duration`).
fn parse_api_duration_ns(v: &str) -> Result<i64, String> {
    let quoted = argus_model::gofmt::quote(v);
    if let Ok(secs) = v.parse::<f64>() {
        let ns = secs * 1e9;
        if ns > i64::MAX as f64 || ns < i64::MIN as f64 {
            return Err(format!(
                "cannot parse {quoted} to a valid duration. It overflows int64"
            ));
        }
        // Go's conversion of NaN to an integer gives the smallest int64 on amd64.
        return Ok(if ns.is_nan() { i64::MIN } else { ns as i64 });
    }
    argus_model::Duration::parse(v)
        .map(|d| d.as_millis().saturating_mul(1_000_000))
        .map_err(|_| format!("cannot parse {quoted} to a valid duration"))
}

/// [`parse_api_duration_ns`] in milliseconds, as Prometheus's engine takes durations
/// (`durationMilliseconds`: the rest cut off).
fn parse_api_duration(v: &str) -> Result<i64, String> {
    parse_api_duration_ns(v).map(|ns| ns / 1_000_000)
}

/// A duration parameter in nanoseconds (missing or empty: `None`), refused as `invalid
/// parameter "key": …`.
fn duration_param_ns(p: &Params, key: &str) -> Result<Option<i64>, ApiError> {
    p.get(key)
        .filter(|v| !v.is_empty())
        .map(|v| {
            parse_api_duration_ns(v)
                .map_err(|e| ApiError::bad_data(format!("invalid parameter \"{key}\": {e}")))
        })
        .transpose()
}

/// A duration parameter in milliseconds (missing or empty: `None`).
pub fn duration_param(p: &Params, key: &str) -> Result<Option<i64>, ApiError> {
    Ok(duration_param_ns(p, key)?.map(|ns| ns / 1_000_000))
}

/// The engine for one request: `lookback_delta`, and a deadline from the `timeout`
/// parameter capped by `--query.timeout`. Returns the cancel guard to hold in the handler.
pub fn engine_for(
    p: &Params,
    base: &EngineOptions,
    max_timeout_ms: i64,
) -> Result<(Engine, CancelOnDrop), ApiError> {
    let mut opts = base.clone();
    // Read in Prometheus's order, so a request wrong in two ways is told of the same one.
    // As Go's `context.WithTimeout`: 0 or less is a deadline already past.
    let timeout = match duration_param(p, "timeout")? {
        Some(t) => t.min(max_timeout_ms),
        None => max_timeout_ms,
    };
    // Prometheus words this one without the parameter's name.
    if let Some(v) = p.get("lookback_delta").filter(|v| !v.is_empty()) {
        opts.lookback_ms = parse_api_duration(v).map_err(|e| {
            ApiError::bad_data(format!("error parsing lookback delta duration: {e}"))
        })?;
    }
    opts.deadline =
        Some(std::time::Instant::now() + std::time::Duration::from_millis(timeout.max(0) as u64));
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    opts.canceled = Some(flag.clone());
    Ok((Engine::new(opts), CancelOnDrop(flag)))
}

pub fn parse_query(
    p: &Params,
    features: argus_promql::Features,
) -> Result<argus_promql::Expr, ApiError> {
    let q = p.get("query").unwrap_or("");
    argus_promql::parse_with(q, features)
        .map_err(|e| ApiError::bad_data(format!("invalid parameter \"query\": {e}")))
}

/// Prometheus's check of durations that depend on the query (`foo[step()]` in an instant
/// query, where the step is 0), refused as it refuses them when preparing the query.
pub fn check_durations(
    expr: &argus_promql::Expr,
    step_ms: i64,
    range_ms: i64,
) -> Result<(), ApiError> {
    expr.check_durations(step_ms, range_ms)
        .map_err(|e| ApiError::bad_data(format!("invalid parameter \"query\": {e}")))
}

/// A range query's step under one millisecond: Prometheus's engine fails on it at
/// evaluation (with "integer divide by zero"), after reading the query.
pub fn sub_millisecond_step(step_ms: i64) -> Result<(), ApiError> {
    if step_ms == 0 {
        return Err(ApiError {
            kind: ErrorType::Execution,
            message: "query resolution step widths under one millisecond are not supported".into(),
        });
    }
    Ok(())
}

/// Checks `start`, `end`, `step` of a range query; returns them in milliseconds.
pub fn range_params(p: &Params) -> Result<(i64, i64, i64), ApiError> {
    let time = |key: &str| -> Result<i64, ApiError> {
        let v = p.get(key).unwrap_or("");
        argus_model::time::parse_api_time(v).map_err(|_| {
            ApiError::bad_data(format!(
                "invalid parameter \"{key}\": cannot parse \"{v}\" to a valid timestamp"
            ))
        })
    };
    let start = time("start")?;
    let end = time("end")?;
    if end < start {
        return Err(ApiError::bad_data(
            "invalid parameter \"end\": end timestamp must not be before start time".into(),
        ));
    }
    let step = match duration_param_ns(p, "step")? {
        Some(s) => s,
        None => {
            let v = p.get("step").unwrap_or("");
            return Err(ApiError::bad_data(format!(
                "invalid parameter \"step\": cannot parse \"{v}\" to a valid duration"
            )));
        }
    };
    if step <= 0 {
        return Err(ApiError::bad_data("invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer".into()));
    }
    // In nanoseconds, as Go's `end.Sub(start)` (which stops at the largest duration).
    if (end - start).saturating_mul(1_000_000) / step > MAX_POINTS {
        return Err(ApiError::bad_data("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)".into()));
    }
    // Prometheus's engine steps in whole milliseconds, the rest cut off (0 for a step under
    // one millisecond, which `sub_millisecond_step` refuses once the query is read).
    Ok((start, end, step / 1_000_000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use argus_promql::engine::Sample;

    #[test]
    fn json_like_prometheus() {
        let v = Value::Vector(vec![Sample::float(
            Labels::from_pairs(&[("a", "b")]),
            1_435_781_451_781,
            1e-7,
        )]);
        assert_eq!(
            result_json(&v),
            r#"{"resultType":"vector","result":[{"metric":{"a":"b"},"value":[1435781451.781,"1e-07"]}]}"#
        );
        assert_eq!(
            result_json(&Value::Scalar {
                t: 1000,
                v: f64::INFINITY
            }),
            r#"{"resultType":"scalar","result":[1,"+Inf"]}"#
        );
        assert_eq!(
            result_json(&Value::Scalar { t: 1000, v: 1e-7 }),
            r#"{"resultType":"scalar","result":[1,"0.0000001"]}"#
        );
        assert_eq!(
            result_json(&Value::Scalar {
                t: 1000,
                v: 2f64.powi(70)
            }),
            r#"{"resultType":"scalar","result":[1,"1180591620717411300000"]}"#
        );
        assert_eq!(
            result_json(&Value::String {
                t: 0,
                v: "x\"y".into()
            }),
            r#"{"resultType":"string","result":[0,"x\"y"]}"#
        );
        let m = vec![Series::floats(
            Labels::empty(),
            vec![(0, f64::NAN), (15_000, 2.5)],
        )];
        assert_eq!(
            matrix_json(&m),
            r#"{"resultType":"matrix","result":[{"metric":{},"values":[[0,"NaN"],[15,"2.5"]]}]}"#
        );
    }

    #[test]
    fn histograms_like_prometheus() {
        let h = std::sync::Arc::new(argus_model::FloatHistogram {
            count: 5.0,
            sum: 5.0,
            zero_threshold: 0.001,
            zero_count: 1.0,
            positive: vec![(0, 1.0), (1, 2.0), (2, 0.0), (3, 1.0)],
            ..Default::default()
        });
        let v = Value::Vector(vec![Sample::histogram(Labels::empty(), 1_000, h.clone())]);
        assert_eq!(
            result_json(&v),
            r#"{"resultType":"vector","result":[{"metric":{},"histogram":[1,{"count":"5","sum":"5","buckets":[[3,"-0.001","0.001","1"],[0,"0.5","1","1"],[0,"1","2","2"],[0,"4","8","1"]]}]}]}"#
        );
        let mut s = Series::floats(Labels::empty(), Vec::new());
        s.hists.push((
            0,
            std::sync::Arc::new(argus_model::FloatHistogram::default()),
        ));
        assert_eq!(
            matrix_json(&[s]),
            r#"{"resultType":"matrix","result":[{"metric":{},"histograms":[[0,{"count":"0","sum":"0"}]]}]}"#
        );
    }
}
