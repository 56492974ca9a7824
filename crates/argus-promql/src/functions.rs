//! PromQL functions. Those not implemented yet return `EvalError::Unsupported`.

use argus_model::Labels;

use crate::aggregate::{Mean, kahan_inc, quantile};
use crate::annotations::{self as anno, Annotations};
use crate::ast::{Expr, Span};
use crate::engine::{EvalError, Hist, Result, Sample, Series, Value};

/// Go's `math.Max`: +Inf if either is +Inf (even with a NaN), else NaN if either is NaN;
/// of two zeros, +0 unless both are -0.
fn go_max(a: f64, b: f64) -> f64 {
    if a == f64::INFINITY || b == f64::INFINITY {
        f64::INFINITY
    } else if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_negative() { b } else { a }
    } else {
        a.max(b)
    }
}

/// Go's `math.Min`: -Inf if either is -Inf (even with a NaN), else NaN if either is NaN;
/// of two zeros, -0 if either is.
fn go_min(a: f64, b: f64) -> f64 {
    if a == f64::NEG_INFINITY || b == f64::NEG_INFINITY {
        f64::NEG_INFINITY
    } else if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_negative() { a } else { b }
    } else {
        a.min(b)
    }
}

/// Prometheus's hint that `rate`/`increase` runs over something that may not be a counter:
/// a float series whose name lacks a counter suffix.
pub fn check_counter_name(labels: &Labels, annos: &mut Annotations, span: Span) {
    let name = labels.metric_name();
    if !name.is_empty()
        && !["_total", "_sum", "_count", "_bucket"]
            .iter()
            .any(|s| name.ends_with(s))
    {
        annos.info(anno::possible_non_counter(name), span);
    }
}

/// One series per metric name, for [`check_counter_name`] over series read in any order:
/// in name order, the order label-ordered input meets the names in.
#[derive(Default)]
pub struct CounterNames(std::collections::BTreeMap<String, Labels>);

impl CounterNames {
    pub fn note(&mut self, labels: &Labels) {
        let name = labels.metric_name();
        if !self.0.contains_key(name) {
            self.0.insert(name.to_string(), labels.clone());
        }
    }

    /// One series of each name, in name order.
    pub fn into_series(self) -> impl Iterator<Item = Labels> {
        self.0.into_values()
    }
}

/// Functions whose result keeps the input's labels as they are (including a name marked for
/// removal); every other function marks the names of its result for removal (see
/// [`Sample::drop_name`]).
fn keeps_name(name: &str) -> bool {
    matches!(
        name,
        "last_over_time"
            | "first_over_time"
            | "sort"
            | "sort_desc"
            | "sort_by_label"
            | "sort_by_label_desc"
            | "label_replace"
            | "label_join"
            | "absent"
            | "absent_over_time"
    )
}

fn scalar(v: &Value) -> Result<f64> {
    match v {
        Value::Scalar { v, .. } => Ok(*v),
        _ => Err(EvalError::Execution("expected a scalar argument".into())),
    }
}

fn string(v: &Value) -> Result<&str> {
    match v {
        Value::String { v, .. } => Ok(v),
        _ => Err(EvalError::Execution("expected a string argument".into())),
    }
}

fn vector(v: Value) -> Result<Vec<Sample>> {
    match v {
        Value::Vector(v) => Ok(v),
        _ => Err(EvalError::Execution(
            "expected an instant vector argument".into(),
        )),
    }
}

fn matrix(v: Value) -> Result<Vec<Series>> {
    match v {
        Value::Matrix(m) => Ok(m),
        _ => Err(EvalError::Execution(
            "expected a range vector argument".into(),
        )),
    }
}

/// The range of a matrix argument (`x[5m]` or a subquery), in milliseconds.
fn range_of(arg: &Expr) -> i64 {
    match arg {
        Expr::Matrix { range_ms, .. } => *range_ms,
        Expr::Subquery { range_ms, .. } => *range_ms,
        Expr::Paren { expr, .. } => range_of(expr),
        _ => 0,
    }
}

/// Where the range of a matrix argument ends: the evaluation time moved by `@` and `offset`.
fn range_end_of(arg: &Expr, t: i64, start: i64, end: i64) -> i64 {
    let at = |a: &Option<crate::ast::AtModifier>| crate::ast::at_time(*a, t, start, end);
    match arg {
        Expr::Matrix { selector, .. } => at(&selector.at) - selector.offset_ms,
        Expr::Subquery {
            offset_ms, at: a, ..
        } => at(a) - offset_ms,
        Expr::Paren { expr, .. } => range_end_of(expr, t, start, end),
        _ => t,
    }
}

/// A float function applied to every float sample; histogram samples are left out.
fn map_vector(v: Value, f: impl Fn(f64) -> f64) -> Result<Value> {
    Ok(Value::Vector(
        vector(v)?
            .into_iter()
            .filter(|s| s.h.is_none())
            .map(|s| Sample::float(s.labels, s.t, f(s.v)))
            .collect(),
    ))
}

/// A histogram function applied to every histogram sample; float samples are left out.
fn map_histograms(v: Value, f: impl Fn(&argus_model::FloatHistogram) -> f64) -> Result<Value> {
    Ok(Value::Vector(
        vector(v)?
            .into_iter()
            .filter_map(|s| {
                let h = s.h.as_ref()?;
                Some(Sample::float(s.labels.clone(), s.t, f(h)))
            })
            .collect(),
    ))
}

/// Range functions of one matrix argument that the engine evaluates directly on slices of
/// stored samples (no per-step copies).
const DIRECT_RANGE: [&str; 12] = [
    "rate",
    "increase",
    "delta",
    "irate",
    "idelta",
    "sum_over_time",
    "count_over_time",
    "last_over_time",
    "present_over_time",
    "min_over_time",
    "max_over_time",
    "avg_over_time",
];

pub fn is_direct_range(name: &str) -> bool {
    DIRECT_RANGE.contains(&name)
}

/// A direct range function's value for one series' points in the window (`None`: no
/// output). Only for names [`is_direct_range`] accepts.
pub fn direct_range_value(name: &str, p: &[(i64, f64)], range: i64, range_end: i64) -> Option<f64> {
    match name {
        "rate" => extrapolated(p, &[], range, range_end, true, true),
        "increase" => extrapolated(p, &[], range, range_end, true, false),
        "delta" => extrapolated(p, &[], range, range_end, false, false),
        "irate" => instant_delta(p, &[], true),
        "idelta" => instant_delta(p, &[], false),
        "sum_over_time" => Some(kahan_sum(p)),
        "count_over_time" => Some(p.len() as f64),
        "last_over_time" => p.last().map(|x| x.1),
        "present_over_time" => Some(1.0),
        "min_over_time" => p
            .iter()
            .map(|x| x.1)
            .reduce(|a, b| if b < a || a.is_nan() { b } else { a }),
        "max_over_time" => p
            .iter()
            .map(|x| x.1)
            .reduce(|a, b| if b > a || a.is_nan() { b } else { a }),
        "avg_over_time" => {
            let mut mean = Mean::new(p.first()?.1);
            for &(_, v) in &p[1..] {
                mean.add(v);
            }
            Some(mean.value())
        }
        _ => None,
    }
}

/// How often the value changes between consecutive samples (NaN to NaN is no change).
pub fn changes(p: &[(i64, f64)]) -> f64 {
    p.windows(2)
        .filter(|w| w[0].1 != w[1].1 && !(w[0].1.is_nan() && w[1].1.is_nan()))
        .count() as f64
}

/// How often the value drops between consecutive samples (counter resets).
pub fn resets(p: &[(i64, f64)], starts: &[i64]) -> f64 {
    (1..p.len()).filter(|&i| reset_at(p, starts, i)).count() as f64
}

/// Whether a counter was reset between samples `i - 1` and `i`: its value dropped, or the
/// start timestamps (aligned with the samples; empty when there are none) say so.
pub fn reset_at(p: &[(i64, f64)], starts: &[i64], i: usize) -> bool {
    p[i].1 < p[i - 1].1
        || (starts.len() > i && start_reset(starts[i - 1], p[i - 1].0, starts[i], p[i].0))
}

/// Whether a direct range function keeps the metric name (only `last_over_time`).
pub fn direct_keeps_name(name: &str) -> bool {
    name == "last_over_time"
}

/// Applies `f` to every series of a matrix; series for which it returns `None` are dropped.
fn over_time(v: Value, t: i64, f: impl Fn(&[(i64, f64)]) -> Option<f64>) -> Result<Value> {
    let mut out = Vec::new();
    for s in matrix(v)? {
        if let Some(v) = f(&s.points) {
            out.push(Sample::float(s.labels, t, v).marked(s.drop_name));
        }
    }
    Ok(Value::Vector(out))
}

/// Whether a start timestamp says the counter was reset between the previous sample and the
/// current one (upstream's `isStartTimestampReset`). 0 is an unknown start.
pub(crate) fn start_reset(prev_st: i64, prev_t: i64, st: i64, t: i64) -> bool {
    // Unknown, invalid (after the sample) or OTel's "unknown start" (equal to the sample).
    if st == 0 || st >= t || st < prev_t {
        return false;
    }
    if st > prev_t {
        return true;
    }
    // The start is the previous sample's time: a delta sample (a reset), unless the previous
    // sample's own start was unknown (a cumulative series whose start is not known) or
    // invalid.
    prev_st <= prev_t && prev_st != 0 && prev_st != prev_t
}

/// A start timestamp pointing before the previous sample, other than the previous sample's
/// own start: the two samples' intervals overlap.
pub(crate) fn start_overlaps(prev_st: i64, prev_t: i64, st: i64) -> bool {
    st != 0 && st < prev_t && st != prev_st
}

/// `rate`, `increase`, `irate` and `resets` over series that carry start timestamps: a start
/// timestamp after the previous sample is a counter reset, and a first sample whose start
/// lies inside the range stands for an increase from zero at that start (no extrapolation to
/// the left). Float samples only (histogram series go through [`range_with_histograms`]).
fn with_start_timestamps(
    name: &str,
    values: Vec<Value>,
    (range, range_end): (i64, i64),
    t: i64,
    span: Span,
    annos: &mut Annotations,
) -> Value {
    let mut out = Vec::new();
    for s in values
        .into_iter()
        .next()
        .map(|v| matrix(v).unwrap_or_default())
        .unwrap_or_default()
    {
        if s.points.is_empty() {
            continue;
        }
        let sts: Vec<i64> = s.points.iter().map(|p| s.start_of(p.0)).collect();
        let p = &s.points;
        let v = match name {
            "resets" => Some(resets(p, &sts)),
            "irate" => instant_delta(p, &sts, true),
            _ => {
                if (1..p.len()).any(|i| start_overlaps(sts[i - 1], p[i - 1].0, sts[i])) {
                    annos.warn(anno::start_time_overlap(s.labels.metric_name()), span);
                }
                extrapolated(p, &sts, range, range_end, true, name == "rate")
            }
        };
        if let Some(v) = v {
            out.push(Sample::float(s.labels, t, v).marked(s.drop_name));
        }
    }
    Value::Vector(out)
}

/// When the first sample's start time `first_st` lies inside the window `(range_end - range,
/// range_end]` before the sample (at sample times `times`): the factor to apply to the
/// window's increase, counted from zero at that start. It replaces extrapolation to the
/// left; with one sample there is no spacing to extrapolate to the right by either.
pub(crate) fn from_start_factor(
    first_st: i64,
    mut times: impl ExactSizeIterator<Item = i64>,
    (range, range_end): (i64, i64),
    is_rate: bool,
) -> Option<f64> {
    let n = times.len();
    let first_t = times.next()?;
    let last_t = times.last().unwrap_or(first_t);
    if first_st == 0 || first_st <= range_end - range || first_st >= first_t {
        return None;
    }
    let sampled = (last_t - first_st) as f64 / 1000.0;
    let avg = if n > 1 {
        (last_t - first_t) as f64 / 1000.0 / (n - 1) as f64
    } else {
        0.0
    };
    let mut to_end = (range_end - last_t) as f64 / 1000.0;
    if to_end >= avg * 1.1 {
        to_end = avg / 2.0;
    }
    let mut factor = if sampled != 0.0 {
        (sampled + to_end) / sampled
    } else {
        1.0
    };
    if is_rate {
        factor /= range as f64 / 1000.0;
    }
    Some(factor)
}

/// Prometheus's `extrapolatedRate` for `rate`, `increase` and `delta`. `starts` are the
/// samples' start timestamps (empty when there are none): for counters a start after the
/// previous sample is a reset, and a first sample's start inside the range stands for an
/// increase from zero there (then one sample is enough).
fn extrapolated(
    points: &[(i64, f64)],
    starts: &[i64],
    range_ms: i64,
    t: i64,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    extrapolated_with(points, starts, range_ms, t, is_counter, is_rate, true)
}

/// `rate(points[range])` (`is_rate`) or `increase(points[range])` at `t`, for float samples
/// without start timestamps and without a counter reset (the caller knows there is none:
/// sliding windows count a series' resets as they pass them), so the samples are not
/// scanned for resets.
pub fn counter_window_without_resets(
    points: &[(i64, f64)],
    range_ms: i64,
    t: i64,
    is_rate: bool,
) -> Option<f64> {
    extrapolated_with(points, &[], range_ms, t, true, is_rate, false)
}

/// [`extrapolated`], scanning a counter's samples for resets only when `scan_resets`.
fn extrapolated_with(
    points: &[(i64, f64)],
    starts: &[i64],
    range_ms: i64,
    t: i64,
    is_counter: bool,
    is_rate: bool,
    scan_resets: bool,
) -> Option<f64> {
    let range_start = t - range_ms;
    let range_end = t;
    let (first_t, first_v) = *points.first()?;
    let (last_t, last_v) = points[points.len() - 1];
    let mut result = last_v - first_v;
    if is_counter {
        if scan_resets {
            for i in (1..points.len()).filter(|&i| reset_at(points, starts, i)) {
                result += points[i - 1].1;
            }
        }
        if let Some(&first_st) = starts.first() {
            let times = points.iter().map(|p| p.0);
            if let Some(factor) = from_start_factor(first_st, times, (range_ms, t), is_rate) {
                return Some((result + first_v) * factor);
            }
        }
    }
    if points.len() < 2 {
        return None;
    }
    let window = Window {
        first: (first_t, first_v),
        last_t,
        samples: points.len(),
        range_start,
        range_end,
    };
    result *= window.factor(result, range_ms, is_counter, is_rate);
    Some(result)
}

/// Where a range's samples sit in its window, for extrapolation.
pub struct Window {
    /// Time and value (for histograms: count) of the first sample.
    pub first: (i64, f64),
    pub last_t: i64,
    pub samples: usize,
    pub range_start: i64,
    pub range_end: i64,
}

impl Window {
    /// Prometheus's extrapolation factor for a change of `result` over the window.
    pub fn factor(&self, result: f64, range_ms: i64, is_counter: bool, is_rate: bool) -> f64 {
        let (first_t, first_v) = self.first;
        let mut duration_to_start = (first_t - self.range_start) as f64 / 1000.0;
        let mut duration_to_end = (self.range_end - self.last_t) as f64 / 1000.0;
        let sampled = (self.last_t - first_t) as f64 / 1000.0;
        let avg_between = sampled / (self.samples - 1) as f64;
        // Extrapolate to a boundary only if a sample sits within 110% of the average spacing
        // of it; otherwise by half the average spacing (Prometheus 3).
        let threshold = avg_between * 1.1;
        if duration_to_start >= threshold {
            duration_to_start = avg_between / 2.0;
        }
        if is_counter {
            // A counter never goes below zero: do not extrapolate past its zero point.
            let to_zero = if result > 0.0 && first_v >= 0.0 {
                sampled * (first_v / result)
            } else {
                duration_to_start
            };
            if to_zero < duration_to_start {
                duration_to_start = to_zero;
            }
        }
        if duration_to_end >= threshold {
            duration_to_end = avg_between / 2.0;
        }
        let extrapolate_to = sampled + duration_to_start + duration_to_end;
        // Prometheus 3's operation order: one factor, then a single multiplication.
        let mut factor = extrapolate_to / sampled;
        if is_rate {
            factor /= range_ms as f64 / 1000.0;
        }
        factor
    }
}

fn instant_delta(points: &[(i64, f64)], starts: &[i64], is_rate: bool) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let n = points.len() - 1;
    let (lt, lv) = points[n];
    let (pt, pv) = points[n - 1];
    let mut result = if is_rate && reset_at(points, starts, n) {
        lv
    } else {
        lv - pv
    };
    let interval = lt - pt;
    if interval == 0 {
        return None;
    }
    if is_rate {
        result /= interval as f64 / 1000.0;
    }
    Some(result)
}

/// Least-squares slope and intercept at `intercept_t` (seconds), as Prometheus's
/// `linearRegression`.
fn linear_regression(points: &[(i64, f64)], intercept_t: i64) -> (f64, f64) {
    let n = points.len() as f64;
    let (mut sum_x, mut cx, mut sum_y, mut cy, mut sum_xy, mut cxy, mut sum_x2, mut cx2) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let const_y = points.iter().all(|p| p.1 == points[0].1);
    if const_y {
        return (0.0, points[0].1);
    }
    for &(t, v) in points {
        let x = (t - intercept_t) as f64 / 1000.0;
        (sum_x, cx) = kahan_inc(x, sum_x, cx);
        (sum_y, cy) = kahan_inc(v, sum_y, cy);
        (sum_xy, cxy) = kahan_inc(x * v, sum_xy, cxy);
        (sum_x2, cx2) = kahan_inc(x * x, sum_x2, cx2);
    }
    let (sum_x, sum_y, sum_xy, sum_x2) = (sum_x + cx, sum_y + cy, sum_xy + cxy, sum_x2 + cx2);
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    let intercept = sum_y / n - slope * sum_x / n;
    (slope, intercept)
}

fn kahan_sum(points: &[(i64, f64)]) -> f64 {
    let (mut sum, mut c) = (0.0, 0.0);
    for &(_, v) in points {
        (sum, c) = kahan_inc(v, sum, c);
    }
    if sum.is_infinite() { sum } else { sum + c }
}

fn variance(points: &[(i64, f64)]) -> f64 {
    let (mut count, mut mean, mut m2) = (0.0, 0.0, 0.0);
    for &(_, v) in points {
        count += 1.0;
        let delta = v - mean;
        mean += delta / count;
        m2 += delta * (v - mean);
    }
    m2 / count
}

/// Civil date-time parts of a Unix time in seconds (UTC). The seconds are cut toward zero,
/// as Go's `int64(v)` cuts them (`-0.5` is 1970-01-01 00:00, not a second before).
fn date_parts(secs: f64) -> (i64, i64, i64, i64, i64, i64) {
    let s = secs as i64;
    let days = s.div_euclid(86400);
    let rem = s.rem_euclid(86400);
    let (y, m, d) = argus_model::time::civil_from_days(days);
    let weekday = (days + 4).rem_euclid(7); // 1970-01-01 was a Thursday
    (y, m, d, rem / 3600, rem % 3600 / 60, weekday)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    let next = if m == 12 {
        argus_model::time::days_from_civil(y + 1, 1, 1)
    } else {
        argus_model::time::days_from_civil(y, m + 1, 1)
    };
    next - argus_model::time::days_from_civil(y, m, 1)
}

fn date_fn(values: Vec<Value>, t: i64, f: impl Fn(f64) -> f64) -> Result<Value> {
    if values.is_empty() {
        return Ok(Value::Vector(vec![Sample::float(
            Labels::empty(),
            t,
            f(t as f64 / 1000.0),
        )]));
    }
    let arg = values
        .into_iter()
        .next()
        .unwrap_or(Value::Vector(Vec::new()));
    map_vector(arg, f)
}

pub fn call(
    name: &str,
    values: Vec<Value>,
    args: &[Expr],
    time: (i64, i64, i64),
    annos: &mut Annotations,
) -> Result<Value> {
    Ok(match call_inner(name, values, args, time, annos)? {
        Value::Vector(vec) if !keeps_name(name) => {
            Value::Vector(vec.into_iter().map(Sample::name_dropped).collect())
        }
        other => other,
    })
}

fn call_inner(
    name: &str,
    values: Vec<Value>,
    args: &[Expr],
    (t, start, end): (i64, i64, i64),
    annos: &mut Annotations,
) -> Result<Value> {
    // A range function over series holding histogram samples.
    if name != "absent_over_time"
        && let Some(mi) = values.iter().position(|v| matches!(v, Value::Matrix(_)))
        && matches!(&values[mi], Value::Matrix(m) if m.iter().any(|s| !s.hists.is_empty()))
    {
        return range_with_histograms(name, values, mi, args, (t, start, end), annos);
    }
    if matches!(name, "rate" | "increase" | "irate" | "resets")
        && let Some(Value::Matrix(m)) = values.first()
        && m.iter().any(|s| !s.starts.is_empty())
        && let Some(arg) = args.first()
    {
        let window = (range_of(arg), range_end_of(arg, t, start, end));
        return Ok(with_start_timestamps(
            name,
            values,
            window,
            t,
            arg.span(),
            annos,
        ));
    }
    let mut values = values.into_iter();
    let mut next = || {
        values
            .next()
            .ok_or_else(|| EvalError::Execution(format!("missing argument to {name}")))
    };
    let range = args.first().map(range_of).unwrap_or(0);
    let range_end = args.first().map_or(t, |a| range_end_of(a, t, start, end));
    match name {
        "time" => Ok(Value::Scalar {
            t,
            v: t as f64 / 1000.0,
        }),
        "min_of" | "max_of" => {
            let (a, b) = (scalar(&next()?)?, scalar(&next()?)?);
            // Go's math.Min/Max: NaN wins.
            let v = if a.is_nan() || b.is_nan() {
                f64::NAN
            } else if name == "min_of" {
                a.min(b)
            } else {
                a.max(b)
            };
            Ok(Value::Scalar { t, v })
        }
        "pi" => Ok(Value::Scalar {
            t,
            v: std::f64::consts::PI,
        }),
        "vector" => {
            let v = scalar(&next()?)?;
            Ok(Value::Vector(vec![Sample::float(Labels::empty(), t, v)]))
        }
        "scalar" => {
            let vec = vector(next()?)?;
            let mut floats = vec.iter().filter(|s| s.h.is_none());
            let v = match (floats.next(), floats.next()) {
                (Some(s), None) => s.v,
                _ => f64::NAN,
            };
            Ok(Value::Scalar { t, v })
        }
        "histogram_count" => map_histograms(next()?, |h| h.count),
        "histogram_sum" => map_histograms(next()?, |h| h.sum),
        "histogram_avg" => map_histograms(next()?, |h| h.sum / h.count),
        "histogram_stdvar" => map_histograms(next()?, crate::histfn::variance),
        "histogram_stddev" => map_histograms(next()?, |h| crate::histfn::variance(h).sqrt()),
        name if is_direct_range(name) => over_time(next()?, t, |p| {
            direct_range_value(name, p, range, range_end)
        }),
        "deriv" => over_time(next()?, t, |p| {
            (p.len() >= 2).then(|| linear_regression(p, p[0].0).0)
        }),
        "predict_linear" => {
            let m = next()?;
            let d = scalar(&next()?)?;
            over_time(m, t, |p| {
                (p.len() >= 2).then(|| {
                    // Predicted from the evaluation time, even under `@` (as upstream).
                    let (slope, intercept) = linear_regression(p, t);
                    slope * d + intercept
                })
            })
        }
        "changes" => over_time(next()?, t, |p| Some(changes(p))),
        "resets" => over_time(next()?, t, |p| Some(resets(p, &[]))),
        "stdvar_over_time" => over_time(next()?, t, |p| Some(variance(p))),
        "stddev_over_time" => over_time(next()?, t, |p| Some(variance(p).sqrt())),
        "quantile_over_time" => {
            let q = scalar(&next()?)?;
            let m = next()?;
            if !(0.0..=1.0).contains(&q) && matches!(&m, Value::Matrix(m) if !m.is_empty()) {
                annos.warn(anno::invalid_quantile(q), args[0].span());
            }
            over_time(m, t, |p| {
                let mut vals: Vec<f64> = p.iter().map(|x| x.1).collect();
                Some(quantile(q, &mut vals))
            })
        }
        "abs" => map_vector(next()?, f64::abs),
        "ceil" => map_vector(next()?, f64::ceil),
        "floor" => map_vector(next()?, f64::floor),
        "exp" => map_vector(next()?, f64::exp),
        "sqrt" => map_vector(next()?, f64::sqrt),
        "ln" => map_vector(next()?, f64::ln),
        "log2" => map_vector(next()?, f64::log2),
        "log10" => map_vector(next()?, f64::log10),
        "sgn" => map_vector(next()?, |v| {
            if v > 0.0 {
                1.0
            } else if v < 0.0 {
                -1.0
            } else {
                v
            }
        }),
        "sin" => map_vector(next()?, f64::sin),
        "cos" => map_vector(next()?, f64::cos),
        "tan" => map_vector(next()?, f64::tan),
        "asin" => map_vector(next()?, f64::asin),
        "acos" => map_vector(next()?, f64::acos),
        "atan" => map_vector(next()?, f64::atan),
        "sinh" => map_vector(next()?, f64::sinh),
        "cosh" => map_vector(next()?, f64::cosh),
        "tanh" => map_vector(next()?, f64::tanh),
        "asinh" => map_vector(next()?, f64::asinh),
        "acosh" => map_vector(next()?, f64::acosh),
        "atanh" => map_vector(next()?, f64::atanh),
        "deg" => map_vector(next()?, |v| v * 180.0 / std::f64::consts::PI),
        "rad" => map_vector(next()?, |v| v * std::f64::consts::PI / 180.0),
        "round" => {
            let v = next()?;
            let to = match next() {
                Ok(s) => scalar(&s)?,
                Err(_) => 1.0,
            };
            // Prometheus: round half up to the nearest multiple of `to`.
            let inv = 1.0 / to;
            map_vector(v, move |x| (x * inv + 0.5).floor() / inv)
        }
        "clamp" => {
            let v = next()?;
            let (lo, hi) = (scalar(&next()?)?, scalar(&next()?)?);
            if lo > hi {
                return Ok(Value::Vector(Vec::new()));
            }
            map_vector(v, move |x| go_max(lo, go_min(hi, x)))
        }
        "clamp_min" => {
            let v = next()?;
            let lo = scalar(&next()?)?;
            map_vector(v, move |x| go_max(lo, x))
        }
        "clamp_max" => {
            let v = next()?;
            let hi = scalar(&next()?)?;
            map_vector(v, move |x| go_min(hi, x))
        }
        // Evaluated by the engine, which knows the selector's start timestamps; anything
        // reaching here is an expression, which carries none.
        "start_timestamp" => Ok(Value::Vector(Vec::new())),
        "timestamp" => {
            // Samples of a plain selector carry their own timestamp (see Ctx::eval).
            map_times(next()?)
        }
        "absent" | "absent_over_time" => {
            let present = match next()? {
                Value::Vector(v) => !v.is_empty(),
                Value::Matrix(m) => !m.is_empty(),
                _ => false,
            };
            if present {
                return Ok(Value::Vector(Vec::new()));
            }
            Ok(Value::Vector(vec![Sample::float(
                absent_labels(args.first()),
                t,
                1.0,
            )]))
        }
        "first_over_time" => over_time(next()?, t, |p| p.first().map(|x| x.1)),
        "ts_of_first_over_time" => {
            over_time(next()?, t, |p| p.first().map(|x| x.0 as f64 / 1000.0))
        }
        "ts_of_last_over_time" => over_time(next()?, t, |p| p.last().map(|x| x.0 as f64 / 1000.0)),
        "ts_of_max_over_time" => over_time(next()?, t, |p| {
            // The last of equal maxima, as upstream; NaN only when everything is NaN.
            let mut best: Option<(i64, f64)> = None;
            for &(ts, v) in p {
                if best.is_none_or(|(_, b)| v >= b || b.is_nan()) {
                    best = Some((ts, v));
                }
            }
            best.map(|(ts, _)| ts as f64 / 1000.0)
        }),
        "ts_of_min_over_time" => over_time(next()?, t, |p| {
            let mut best: Option<(i64, f64)> = None;
            for &(ts, v) in p {
                if best.is_none_or(|(_, b)| v <= b || b.is_nan()) {
                    best = Some((ts, v));
                }
            }
            best.map(|(ts, _)| ts as f64 / 1000.0)
        }),
        "mad_over_time" => over_time(next()?, t, |p| {
            if p.iter().any(|x| x.1.is_nan()) {
                return Some(f64::NAN);
            }
            let mut vals: Vec<f64> = p.iter().map(|x| x.1).collect();
            let median = quantile(0.5, &mut vals);
            let mut dev: Vec<f64> = vals.iter().map(|v| (v - median).abs()).collect();
            Some(quantile(0.5, &mut dev))
        }),
        "double_exponential_smoothing" => {
            let m = next()?;
            let sf = scalar(&next()?)?;
            let tf = scalar(&next()?)?;
            if sf <= 0.0 || sf >= 1.0 {
                return Err(EvalError::Execution(format!(
                    "invalid smoothing factor. Expected: 0 < sf < 1, got: {}",
                    go_f(sf)
                )));
            }
            if tf <= 0.0 || tf >= 1.0 {
                return Err(EvalError::Execution(format!(
                    "invalid trend factor. Expected: 0 < tf < 1, got: {}",
                    go_f(tf)
                )));
            }
            over_time(m, t, |p| {
                if p.len() < 2 {
                    return None;
                }
                let (mut s0, mut s1) = (0.0, p[0].1);
                let mut b = p[1].1 - p[0].1;
                for (i, &(_, v)) in p.iter().enumerate().skip(1) {
                    let x = sf * v;
                    if i > 1 {
                        b = tf * (s1 - s0) + (1.0 - tf) * b;
                    }
                    let y = (1.0 - sf) * (s1 + b);
                    s0 = s1;
                    s1 = x + y;
                }
                Some(s1)
            })
        }
        "histogram_quantile" => {
            let q = scalar(&next()?)?;
            if !(0.0..=1.0).contains(&q) {
                annos.warn(anno::invalid_quantile(q), args[0].span());
            }
            let vec = vector(next()?)?;
            let out = histogram_quantiles(q, vec, annos, args[1].span());
            Ok(Value::Vector(
                out.into_iter()
                    .map(|(l, v)| Sample::float(l, t, v))
                    .collect(),
            ))
        }
        "histogram_quantiles" => {
            let vec = vector(next()?)?;
            let label = string(&next()?)?.to_string();
            let mut out = Vec::new();
            for (k, q) in values.enumerate() {
                let q = scalar(&q)?;
                let q_span = args.get(k + 2).map_or(args[0].span(), |a| a.span());
                if !(0.0..=1.0).contains(&q) {
                    annos.warn(anno::invalid_quantile(q), q_span);
                }
                let mut q_text = argus_model::gofmt::format_f(q);
                if q.is_finite() && !q_text.contains('.') {
                    q_text.push_str(".0");
                }
                for (l, v) in histogram_quantiles(q, vec.clone(), annos, args[0].span()) {
                    let mut b = l.to_builder();
                    b.set(&label, &q_text);
                    out.push(Sample::float(b.build(), t, v));
                }
            }
            Ok(Value::Vector(out))
        }
        "histogram_fraction" => {
            let lower = scalar(&next()?)?;
            let upper = scalar(&next()?)?;
            let vec = vector(next()?)?;
            let out = both_histograms(vec, annos, args[2].span(), |native, annos| match native {
                Native::Native(metric, h) => {
                    crate::histfn::fraction(lower, upper, h, metric, args[2].span(), annos)
                }
                Native::Classic(_, buckets) => bucket_fraction(lower, upper, buckets),
            });
            Ok(Value::Vector(
                out.into_iter()
                    .map(|(l, v)| Sample::float(l, t, v))
                    .collect(),
            ))
        }
        "sort_by_label" | "sort_by_label_desc" => {
            let mut vec = vector(next()?)?;
            let mut names = Vec::new();
            while let Ok(v) = next() {
                names.push(string(&v)?.to_string());
            }
            let desc = name == "sort_by_label_desc";
            vec.sort_by(|a, b| {
                for l in &names {
                    let (x, y) = (a.labels.get(l).unwrap_or(""), b.labels.get(l).unwrap_or(""));
                    if x == y {
                        continue;
                    }
                    let less = natsort_less(x, y);
                    return if less != desc {
                        std::cmp::Ordering::Less
                    } else {
                        std::cmp::Ordering::Greater
                    };
                }
                let o = a.labels.cmp(&b.labels);
                if desc { o.reverse() } else { o }
            });
            Ok(Value::Vector(vec))
        }
        "sort" | "sort_desc" => {
            let mut vec = vector(next()?)?;
            vec.retain(|s| s.h.is_none());
            // NaN sorts last in both directions.
            vec.sort_by(|a, b| match (a.v.is_nan(), b.v.is_nan()) {
                (true, true) => std::cmp::Ordering::Equal,
                (true, false) => std::cmp::Ordering::Greater,
                (false, true) => std::cmp::Ordering::Less,
                _ if name == "sort" => a.v.total_cmp(&b.v),
                _ => b.v.total_cmp(&a.v),
            });
            Ok(Value::Vector(vec))
        }
        "label_replace" => {
            let vec = vector(next()?)?;
            let dst = string(&next()?)?.to_string();
            let repl = string(&next()?)?.to_string();
            let src = string(&next()?)?.to_string();
            let re_text = string(&next()?)?.to_string();
            let re = argus_model::regex_go::compile_wrapped(&re_text).map_err(|_| {
                EvalError::Execution(format!(
                    "invalid regular expression in label_replace(): {re_text}"
                ))
            })?;
            if !argus_model::labels::is_valid_label_name(&dst) {
                return Err(EvalError::Execution(format!(
                    "invalid destination label name in label_replace(): {dst}"
                )));
            }
            Ok(Value::Vector(
                vec.into_iter()
                    .map(|s| {
                        let value = s.labels.get(&src).unwrap_or("").to_string();
                        match re.captures(&value) {
                            Some(caps) => {
                                let mut out = String::new();
                                argus_model::regex_go::expand(&caps, &repl, &mut out);
                                let mut b = s.labels.to_builder();
                                b.set(&dst, &out);
                                Sample {
                                    labels: b.build(),
                                    // A name written here is the result's own.
                                    drop_name: s.drop_name
                                        && dst != argus_model::labels::METRIC_NAME,
                                    ..s
                                }
                            }
                            None => s,
                        }
                    })
                    .collect(),
            ))
        }
        "label_join" => {
            let vec = vector(next()?)?;
            let dst = string(&next()?)?.to_string();
            let sep = string(&next()?)?.to_string();
            let mut srcs = Vec::new();
            while let Ok(v) = next() {
                srcs.push(string(&v)?.to_string());
            }
            if !argus_model::labels::is_valid_label_name(&dst) {
                return Err(EvalError::Execution(format!(
                    "invalid destination label name in label_join(): {dst}"
                )));
            }
            Ok(Value::Vector(
                vec.into_iter()
                    .map(|s| {
                        let joined: Vec<&str> =
                            srcs.iter().map(|l| s.labels.get(l).unwrap_or("")).collect();
                        let mut b = s.labels.to_builder();
                        b.set(&dst, &joined.join(&sep));
                        Sample {
                            labels: b.build(),
                            drop_name: s.drop_name && dst != argus_model::labels::METRIC_NAME,
                            ..s
                        }
                    })
                    .collect(),
            ))
        }
        "minute" => date_fn(values_rest(next), t, |s| date_parts(s).4 as f64),
        "hour" => date_fn(values_rest(next), t, |s| date_parts(s).3 as f64),
        "day_of_month" => date_fn(values_rest(next), t, |s| date_parts(s).2 as f64),
        "day_of_week" => date_fn(values_rest(next), t, |s| date_parts(s).5 as f64),
        "day_of_year" => date_fn(values_rest(next), t, |s| {
            let (y, m, d, ..) = date_parts(s);
            (argus_model::time::days_from_civil(y, m, d)
                - argus_model::time::days_from_civil(y, 1, 1)
                + 1) as f64
        }),
        "month" => date_fn(values_rest(next), t, |s| date_parts(s).1 as f64),
        "year" => date_fn(values_rest(next), t, |s| date_parts(s).0 as f64),
        "days_in_month" => date_fn(values_rest(next), t, |s| {
            let (y, m, ..) = date_parts(s);
            days_in_month(y, m) as f64
        }),
        other => Err(EvalError::Unsupported(format!("function {other}()"))),
    }
}

/// An `le` label value as Go's `strconv.ParseFloat` reads it (`+Inf`, `1e3`, …).
fn parse_le(s: &str) -> Option<f64> {
    let lower = s.to_ascii_lowercase();
    let v = match lower.trim_start_matches(['+', '-']) {
        "inf" | "infinity" => {
            if lower.starts_with('-') {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            }
        }
        _ => s.parse::<f64>().ok()?,
    };
    (!v.is_nan()).then_some(v)
}

/// Prometheus's `almost.Equal`.
fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < f64::MIN_POSITIVE {
        return diff < epsilon * f64::MIN_POSITIVE;
    }
    diff / abs_sum.min(f64::MAX) < epsilon
}

/// `histogram_quantile(q, vec)` for every native and classic histogram in `vec`; `span` is
/// the vector argument's.
fn histogram_quantiles(
    q: f64,
    vec: Vec<Sample>,
    annos: &mut Annotations,
    span: Span,
) -> Vec<(Labels, f64)> {
    both_histograms(vec, annos, span, |native, annos| match native {
        Native::Native(metric, h) => crate::histfn::quantile(q, h, metric, span, annos),
        Native::Classic(metric, buckets) => {
            let (v, forced) = bucket_quantile(q, buckets);
            if forced {
                annos.info(anno::forced_monotonicity(metric), span);
            }
            v
        }
    })
}

/// A histogram `histogram_quantile`/`histogram_fraction` works on, with its metric name.
enum Native<'a> {
    Native(&'a str, &'a argus_model::FloatHistogram),
    Classic(&'a str, &'a mut [(f64, f64)]),
}

/// Applies `f` to every native histogram and every classic histogram (`le` bucket groups)
/// in `vec` (Prometheus's `resetHistograms`): float samples without a valid `le` are
/// reported and left out; a native histogram with the labels of a classic group drops both.
fn both_histograms(
    vec: Vec<Sample>,
    annos: &mut Annotations,
    span: Span,
    mut f: impl FnMut(Native<'_>, &mut Annotations) -> f64,
) -> Vec<(Labels, f64)> {
    let mut natives = Vec::new();
    let mut groups: Vec<(Labels, Vec<(f64, f64)>)> = Vec::new();
    let mut index: crate::engine::LabelsMap<usize> = Default::default();
    for smp in vec {
        if smp.h.is_some() {
            natives.push(smp);
            continue;
        }
        let le_text = smp.labels.get("le").unwrap_or("");
        let Some(le) = parse_le(le_text) else {
            annos.warn(
                anno::bad_bucket_label(smp.labels.metric_name(), le_text),
                span,
            );
            continue;
        };
        let mut b = smp.labels.to_builder();
        b.delete("le");
        let key = b.build();
        let i = *index.entry(key.clone()).or_insert_with(|| {
            groups.push((key.clone(), Vec::new()));
            groups.len() - 1
        });
        groups[i].1.push((le, smp.v));
    }
    let mut out = Vec::new();
    for smp in &natives {
        if let Some(&i) = index.get(&smp.labels)
            && !groups[i].1.is_empty()
        {
            annos.warn(anno::mixed_classic_native(smp.labels.metric_name()), span);
            groups[i].1.clear();
            continue;
        }
        if let Some(h) = &smp.h {
            let v = f(Native::Native(smp.labels.metric_name(), h), annos);
            out.push((smp.labels.clone(), v));
        }
    }
    for (key, mut buckets) in groups {
        if buckets.is_empty() {
            continue;
        }
        let v = f(Native::Classic(key.metric_name(), &mut buckets), annos);
        out.push((key, v));
    }
    out
}

/// A range function over a matrix some of whose series hold histogram samples: float-only
/// series take the float path, the others are computed here.
fn range_with_histograms(
    name: &str,
    mut values: Vec<Value>,
    mi: usize,
    args: &[Expr],
    time: (i64, i64, i64),
    annos: &mut Annotations,
) -> Result<Value> {
    let t = time.0;
    let Value::Matrix(m) = std::mem::replace(&mut values[mi], Value::Matrix(Vec::new())) else {
        return Err(EvalError::Execution(
            "expected a range vector argument".into(),
        ));
    };
    let (plain, with_h): (Vec<Series>, Vec<Series>) =
        m.into_iter().partition(|s| s.hists.is_empty());
    let arg_span = args.get(mi).map_or(Span { start: 0, end: 0 }, |a| a.span());
    let range = args.get(mi).map(range_of).unwrap_or(0);
    let range_end = args
        .get(mi)
        .map_or(t, |a| range_end_of(a, t, time.1, time.2));
    let floats_only = |series: Vec<Series>, annos: &mut Annotations| -> Result<Vec<Sample>> {
        let mut v = values.clone();
        v[mi] = Value::Matrix(series);
        vector(call(name, v, args, time, annos)?)
    };
    let mut out = if plain.is_empty() {
        Vec::new()
    } else {
        floats_only(plain, annos)?
    };
    for s in with_h {
        let metric = s.labels.metric_name().to_string();
        let labels = s.labels.clone();
        let has_floats = !s.points.is_empty();
        let flagged = |sample: Sample| sample.marked(s.drop_name);
        let float = |v: f64| Some(flagged(Sample::float(labels.clone(), t, v)));
        let hist = |h: argus_model::FloatHistogram| {
            Some(flagged(Sample::histogram(labels.clone(), t, Hist::new(h))))
        };
        let sample = match name {
            "rate" | "increase" | "delta" => {
                if has_floats {
                    annos.warn(anno::mixed_floats_histograms(&metric), arg_span);
                    None
                } else {
                    let starts: Vec<i64> = s.hists.iter().map(|p| s.start_of(p.0)).collect();
                    crate::histfn::extrapolated_rate(
                        &s.hists,
                        &starts,
                        range,
                        range_end,
                        name != "delta",
                        name == "rate",
                        &metric,
                        arg_span,
                        annos,
                    )
                    .and_then(hist)
                }
            }
            "irate" | "idelta" => {
                match crate::histfn::instant_value(&s, name == "irate", &metric, arg_span, annos) {
                    Some(Ok(v)) => float(v),
                    Some(Err(h)) => hist(h),
                    None => None,
                }
            }
            "sum_over_time" | "avg_over_time" => {
                if has_floats {
                    annos.warn(anno::mixed_floats_histograms(&metric), arg_span);
                    None
                } else {
                    crate::histfn::sum_or_avg(
                        &s.hists,
                        name == "avg_over_time",
                        &metric,
                        arg_span,
                        annos,
                    )
                    .and_then(hist)
                }
            }
            "count_over_time" => float((s.points.len() + s.hists.len()) as f64),
            "present_over_time" => float(1.0),
            "last_over_time" | "first_over_time" => {
                let last = name == "last_over_time";
                let (f, h) = if last {
                    (s.points.last(), s.hists.last())
                } else {
                    (s.points.first(), s.hists.first())
                };
                match (f, h) {
                    (Some(f), Some(h)) if (f.0 > h.0) == last => float(f.1),
                    (_, Some(h)) => {
                        Some(flagged(Sample::histogram(labels.clone(), t, h.1.clone())))
                    }
                    (Some(f), None) => float(f.1),
                    (None, None) => None,
                }
            }
            "ts_of_first_over_time" => {
                let ts = s.points.first().map_or(i64::MAX, |p| p.0);
                float(ts.min(s.hists[0].0) as f64 / 1000.0)
            }
            "ts_of_last_over_time" => {
                let ts = s.points.last().map_or(i64::MIN, |p| p.0);
                float(ts.max(s.hists[s.hists.len() - 1].0) as f64 / 1000.0)
            }
            "changes" | "resets" => float(crate::histfn::changes_or_resets(&s, name == "resets")),
            "deriv" | "predict_linear" | "double_exponential_smoothing" => {
                if s.points.len() == 1 {
                    annos.info(anno::histogram_ignored_in_mixed_range(&metric), arg_span);
                }
                if s.points.len() < 2 {
                    None
                } else {
                    annos.info(anno::histogram_ignored_in_mixed_range(&metric), arg_span);
                    floats_only(vec![Series::floats(s.labels.clone(), s.points)], annos)?
                        .into_iter()
                        .next()
                }
            }
            _ => {
                // Float-only functions (min/max/quantile/stddev/… over time): histograms
                // are ignored, with a note when floats are there to compute from.
                if has_floats {
                    annos.info(anno::histogram_ignored_in_mixed_range(&metric), arg_span);
                    floats_only(vec![Series::floats(s.labels.clone(), s.points)], annos)?
                        .into_iter()
                        .next()
                } else {
                    None
                }
            }
        };
        out.extend(sample);
    }
    Ok(Value::Vector(out))
}

/// Sorts buckets by upper bound and merges those sharing one; `None` unless the last
/// bound is `+Inf`.
fn coalesced(buckets: &mut [(f64, f64)]) -> Option<Vec<(f64, f64)>> {
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return None;
    }
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for &(ub, c) in buckets.iter() {
        match merged.last_mut() {
            Some(last) if last.0 == ub => last.1 += c,
            _ => merged.push((ub, c)),
        }
    }
    Some(merged)
}

/// Prometheus's `BucketFraction`: the estimated share of observations between `lower` and
/// `upper` in a classic histogram, interpolating linearly inside buckets. The lowest
/// bucket starts at 0 when its upper bound is positive, else at -Inf.
fn bucket_fraction(lower: f64, upper: f64, buckets: &mut [(f64, f64)]) -> f64 {
    let Some(buckets) = coalesced(buckets) else {
        return f64::NAN;
    };
    let count = buckets[buckets.len() - 1].1;
    if count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let (mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    let mut lower_bound = if buckets[0].0 <= 0.0 {
        f64::NEG_INFINITY
    } else {
        0.0
    };
    for (i, &(upper_bound, cum)) in buckets.iter().enumerate() {
        if i > 0 {
            lower_bound = buckets[i - 1].0;
        }
        let interpolate = |v: f64| {
            if lower_bound == f64::NEG_INFINITY {
                cum
            } else {
                rank + (cum - rank) * (v - lower_bound) / (upper_bound - lower_bound)
            }
        };
        if !lower_set && lower_bound >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && lower_bound >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && lower_bound < lower && upper_bound > lower {
            lower_rank = interpolate(lower);
            lower_set = true;
        }
        if !upper_set && lower_bound < upper && upper_bound > upper {
            upper_rank = interpolate(upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank = cum;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    (upper_rank - lower_rank) / count
}

/// Prometheus's `BucketQuantile`: the value and whether the buckets had to be forced to be
/// monotonic.
fn bucket_quantile(q: f64, buckets: &mut [(f64, f64)]) -> (f64, bool) {
    if q.is_nan() {
        return (f64::NAN, false);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, false);
    }
    if q > 1.0 {
        return (f64::INFINITY, false);
    }
    let Some(mut merged) = coalesced(buckets) else {
        return (f64::NAN, false);
    };
    // Ignore tiny floating-point differences and force monotonicity.
    let mut forced = false;
    let mut prev = merged[0].1;
    for b in merged.iter_mut().skip(1) {
        let curr = b.1;
        if curr == prev {
            continue;
        }
        if almost_equal(prev, curr, 1e-12) {
            b.1 = prev;
            continue;
        }
        if curr < prev {
            forced = true;
            b.1 = prev;
            continue;
        }
        prev = curr;
    }
    (bucket_quantile_of(q, merged), forced)
}

fn bucket_quantile_of(q: f64, merged: Vec<(f64, f64)>) -> f64 {
    if merged.len() < 2 {
        return f64::NAN;
    }
    let observations = merged[merged.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let n = merged.len();
    let b = merged[..n - 1].partition_point(|x| x.1 < rank);
    if b == n - 1 {
        return merged[n - 2].0;
    }
    if b == 0 && merged[0].0 <= 0.0 {
        return merged[0].0;
    }
    let bucket_end = merged[b].0;
    let mut count = merged[b].1;
    let mut bucket_start = 0.0;
    if b > 0 {
        bucket_start = merged[b - 1].0;
        count -= merged[b - 1].1;
        rank -= merged[b - 1].1;
    }
    bucket_start + (bucket_end - bucket_start) * (rank / count)
}

/// Splits into runs of digits and non-digits.
fn chunks(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = s.as_bytes();
    for i in 1..=bytes.len() {
        if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
            out.push(&s[start..i]);
            start = i;
        }
    }
    out
}

/// The natural-order "less" that Prometheus uses for `sort_by_label` (facette/natsort):
/// digit runs compare as integers, other runs as strings.
fn natsort_less(a: &str, b: &str) -> bool {
    let (ca, cb) = (chunks(a), chunks(b));
    for (i, x) in ca.iter().enumerate() {
        let Some(y) = cb.get(i) else { return false };
        let last_a = i == ca.len() - 1;
        let last_b = i == cb.len() - 1;
        match (x.parse::<i64>(), y.parse::<i64>()) {
            (Ok(p), Ok(q)) if p != q => return p < q,
            (Ok(_), Ok(_)) => {}
            _ if x != y => return x < y,
            _ => {}
        }
        if last_a {
            return true;
        }
        if last_b {
            return false;
        }
    }
    false
}

/// Go's `%f`.
fn go_f(v: f64) -> String {
    format!("{v:.6}")
}

/// `timestamp()`: the samples' own timestamps in seconds, name dropped.
fn map_times(v: Value) -> Result<Value> {
    Ok(Value::Vector(
        vector(v)?
            .into_iter()
            .map(|s| Sample::float(s.labels, s.t, s.t as f64 / 1000.0))
            .collect(),
    ))
}

/// Labels of `absent(...)`'s output: the equality matchers of its selector (not the name),
/// unless a label is matched twice.
fn absent_labels(arg: Option<&Expr>) -> Labels {
    use argus_model::MatchOp;
    let matchers = match arg {
        Some(Expr::Vector(v)) => &v.matchers,
        Some(Expr::Matrix { selector, .. }) => &selector.matchers,
        _ => return Labels::empty(),
    };
    let mut b = argus_model::LabelsBuilder::new();
    let mut seen: Vec<&str> = Vec::new();
    let mut twice: Vec<&str> = Vec::new();
    for m in matchers {
        if seen.contains(&m.name.as_str()) {
            twice.push(&m.name);
        }
        seen.push(&m.name);
        if m.op == MatchOp::Equal && m.name != argus_model::labels::METRIC_NAME {
            b.set(&m.name, &m.value);
        }
    }
    for n in twice {
        b.delete(n);
    }
    b.build()
}

fn values_rest(mut next: impl FnMut() -> Result<Value>) -> Vec<Value> {
    next().map(|v| vec![v]).unwrap_or_default()
}
