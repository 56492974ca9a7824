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

/// The `data` object of a query response.
pub fn result_json(value: &Value) -> String {
    match value {
        Value::Scalar { t, v } => format!(
            "{{\"resultType\":\"scalar\",\"result\":{}}}",
            point(*t, &api_float(*v))
        ),
        Value::String { t, v } => {
            format!("{{\"resultType\":\"string\",\"result\":{}}}", point(*t, v))
        }
        Value::Vector(samples) => {
            let items: Vec<String> = samples
                .iter()
                .map(|s| {
                    format!(
                        "{{\"metric\":{},\"value\":{}}}",
                        labels_json(&s.labels),
                        point(s.t, &api_float(s.v))
                    )
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
            let points: Vec<String> = s
                .points
                .iter()
                .map(|(t, v)| point(*t, &api_float(*v)))
                .collect();
            format!(
                "{{\"metric\":{},\"values\":[{}]}}",
                labels_json(&s.labels),
                points.join(",")
            )
        })
        .collect();
    format!(
        "{{\"resultType\":\"matrix\",\"result\":[{}]}}",
        items.join(",")
    )
}

pub fn success_raw(data: &str) -> Response {
    (
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        format!("{{\"status\":\"success\",\"data\":{data}}}"),
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

/// Prometheus's `parseDuration` for API parameters: float seconds or a duration string.
pub fn duration_param(p: &Params, key: &str) -> Result<Option<i64>, ApiError> {
    let Some(v) = p.get(key).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if let Ok(secs) = v.parse::<f64>() {
        let ms = secs * 1000.0;
        if !ms.is_finite() || ms.abs() > i64::MAX as f64 / 2.0 {
            return Err(ApiError::bad_data(format!(
                "invalid parameter \"{key}\": cannot parse \"{v}\" to a valid duration. It overflows int64"
            )));
        }
        return Ok(Some(ms.round() as i64));
    }
    argus_model::Duration::parse(v)
        .map(|d| Some(d.as_millis()))
        .map_err(|_| {
            ApiError::bad_data(format!(
                "invalid parameter \"{key}\": cannot parse \"{v}\" to a valid duration"
            ))
        })
}

/// The engine for one request: `lookback_delta`, and a deadline from the `timeout`
/// parameter capped by `--query.timeout`. Returns the cancel guard to hold in the handler.
pub fn engine_for(
    p: &Params,
    base: &EngineOptions,
    max_timeout_ms: i64,
) -> Result<(Engine, CancelOnDrop), ApiError> {
    let mut opts = base.clone();
    if let Some(lookback) = duration_param(p, "lookback_delta")? {
        opts.lookback_ms = lookback;
    }
    let timeout = match duration_param(p, "timeout")? {
        Some(t) if t > 0 => t.min(max_timeout_ms),
        _ => max_timeout_ms,
    };
    opts.deadline =
        Some(std::time::Instant::now() + std::time::Duration::from_millis(timeout.max(0) as u64));
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    opts.canceled = Some(flag.clone());
    Ok((Engine::new(opts), CancelOnDrop(flag)))
}

pub fn parse_query(p: &Params) -> Result<argus_promql::Expr, ApiError> {
    let q = p.get("query").unwrap_or("");
    argus_promql::parse(q)
        .map_err(|e| ApiError::bad_data(format!("invalid parameter \"query\": {e}")))
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
    let step = match duration_param(p, "step")? {
        Some(s) => s,
        None => {
            let v = p.get("step").unwrap_or("");
            return Err(ApiError::bad_data(format!(
                "invalid parameter \"step\": cannot parse \"{v}\" to a valid duration"
            )));
        }
    };
    if step <= 0 {
        return Err(ApiError::bad_data("zero or negative query resolution step widths are not accepted. Try a positive integer".into()));
    }
    if (end - start) / step > MAX_POINTS {
        return Err(ApiError::bad_data("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)".into()));
    }
    Ok((start, end, step))
}

#[cfg(test)]
mod tests {
    use super::*;
    use argus_promql::engine::Sample;

    #[test]
    fn json_like_prometheus() {
        let v = Value::Vector(vec![Sample {
            labels: Labels::from_pairs(&[("a", "b")]),
            t: 1_435_781_451_781,
            v: 1e-7,
        }]);
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
            result_json(&Value::String {
                t: 0,
                v: "x\"y".into()
            }),
            r#"{"resultType":"string","result":[0,"x\"y"]}"#
        );
        let m = vec![Series {
            labels: Labels::empty(),
            points: vec![(0, f64::NAN), (15_000, 2.5)],
        }];
        assert_eq!(
            matrix_json(&m),
            r#"{"resultType":"matrix","result":[{"metric":{},"values":[[0,"NaN"],[15,"2.5"]]}]}"#
        );
    }
}
