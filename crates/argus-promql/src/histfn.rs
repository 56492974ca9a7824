//! PromQL functions over native-histogram samples: `histogram_*` on instant vectors, range
//! functions over series holding histograms (`rate`, `sum_over_time`, `changes`, …), with
//! the annotations Prometheus raises for mixed or mismatched inputs.

use argus_model::{CounterResetHint, FloatHistogram};

use crate::aggregate::kahan_inc;
use crate::annotations::{self as anno, Annotations};
use crate::ast::Span;
use crate::engine::{Hist, Series};
use crate::functions::{start_overlaps, start_reset};

/// `h += other` (or `-=`), reporting mismatched layouts: `false` (with a warning) when an
/// exponential and a custom-bucket histogram meet.
fn combine(
    h: &mut FloatHistogram,
    other: &FloatHistogram,
    subtract: bool,
    metric: &str,
    span: Span,
    annos: &mut Annotations,
) -> bool {
    let (result, what) = if subtract {
        (h.sub(other), "subtraction")
    } else {
        (h.add(other), "addition")
    };
    match result {
        Err(_) => {
            annos.warn(anno::mixed_exponential_custom(metric), span);
            false
        }
        Ok(c) => {
            if c.custom_bounds_reconciled {
                annos.info(anno::custom_buckets_reconciled(what), span);
            }
            true
        }
    }
}

/// Prometheus's `histogramRate`: `last - first` with counter resets added back, in the
/// coarsest schema of the range. `None` (with a warning) when the samples cannot be
/// combined.
fn histogram_rate(
    points: &[(i64, Hist)],
    starts: &[i64],
    is_counter: bool,
    metric: &str,
    span: Span,
    annos: &mut Annotations,
) -> Option<FloatHistogram> {
    let last = &points[points.len() - 1].1;
    let mut prev: std::borrow::Cow<'_, FloatHistogram> = std::borrow::Cow::Borrowed(&*points[0].1);
    let gauge = CounterResetHint::Gauge;
    if is_counter && (prev.hint == gauge || last.hint == gauge) {
        annos.warn(anno::not_counter(metric), span);
    }
    // A reset (by start time or by the counts) between samples `i - 1` and `i`.
    let reset = |i: usize, prev: &FloatHistogram| {
        (starts.len() > i && start_reset(starts[i - 1], points[i - 1].0, starts[i], points[i].0))
            || points[i].1.detect_reset(prev)
    };
    // A reset between the first two samples makes the first one irrelevant: start from an
    // empty histogram with the second one's layout.
    if is_counter && points.len() > 1 && reset(1, &prev) {
        prev = std::borrow::Cow::Owned(FloatHistogram {
            schema: points[1].1.schema,
            custom_values: points[1].1.custom_values.clone(),
            ..Default::default()
        });
    }
    let custom = prev.uses_custom_buckets();
    if last.uses_custom_buckets() != custom {
        annos.warn(anno::mixed_exponential_custom(metric), span);
        return None;
    }
    let mut min_schema = last.schema.min(prev.schema);
    for (_, curr) in &points[1..points.len() - 1] {
        if !is_counter {
            continue;
        }
        if curr.hint == gauge {
            annos.warn(anno::not_counter(metric), span);
        }
        min_schema = min_schema.min(curr.schema);
        if curr.uses_custom_buckets() != custom {
            annos.warn(anno::mixed_exponential_custom(metric), span);
            return None;
        }
    }
    let mut h = (**last).clone();
    if !h.uses_custom_buckets() && min_schema < h.schema {
        h.reduce_resolution(min_schema);
        h.hint = CounterResetHint::Unknown;
    }
    if !combine(&mut h, &prev, true, metric, span, annos) {
        return None;
    }
    if is_counter {
        let mut prev: &FloatHistogram = &prev;
        let mut overlap = false;
        for (i, (_, curr)) in points.iter().enumerate().skip(1) {
            if !overlap
                && starts.len() > i
                && start_overlaps(starts[i - 1], points[i - 1].0, starts[i])
            {
                annos.warn(anno::start_time_overlap(metric), span);
                overlap = true;
            }
            if reset(i, prev) && !combine(&mut h, prev, false, metric, span, annos) {
                return None;
            }
            prev = curr;
        }
    } else if points[0].1.hint != gauge || last.hint != gauge {
        annos.warn(anno::not_gauge(metric), span);
    }
    h.hint = CounterResetHint::Gauge;
    h.compact();
    Some(h)
}

/// `rate`/`increase`/`delta` of a series holding only histograms (Prometheus's
/// `extrapolatedRate` histogram branch).
#[allow(clippy::too_many_arguments)]
pub fn extrapolated_rate(
    points: &[(i64, Hist)],
    starts: &[i64],
    range_ms: i64,
    range_end: i64,
    is_counter: bool,
    is_rate: bool,
    metric: &str,
    span: Span,
    annos: &mut Annotations,
) -> Option<FloatHistogram> {
    let h = if points.len() > 1 {
        Some(histogram_rate(
            points, starts, is_counter, metric, span, annos,
        )?)
    } else {
        None
    };
    let first_st = starts.first().copied().unwrap_or(0);
    let times = points.iter().map(|p| p.0);
    if is_counter
        && let Some(factor) =
            crate::functions::from_start_factor(first_st, times, (range_ms, range_end), is_rate)
    {
        // The counter rose from zero at the first sample's start (as for floats).
        let mut h = match h {
            None => (*points[0].1).clone(),
            Some(mut h) => {
                if !combine(&mut h, &points[0].1, false, metric, span, annos) {
                    return None;
                }
                h
            }
        };
        let hint = h.hint;
        h.mul(factor);
        h.hint = hint;
        return Some(h);
    }
    let mut h = h?;
    let window = crate::functions::Window {
        first: (points[0].0, points[0].1.count),
        last_t: points[points.len() - 1].0,
        samples: points.len(),
        range_start: range_end - range_ms,
        range_end,
    };
    let factor = window.factor(h.count, range_ms, is_counter, is_rate);
    let hint = h.hint;
    h.mul(factor);
    h.hint = hint;
    Some(h)
}

/// A float or histogram sample in time order.
#[derive(Clone)]
enum Point<'a> {
    F(f64),
    H(&'a Hist),
}

/// The samples of a series merged in time order.
fn merged(s: &Series) -> Vec<(i64, Point<'_>)> {
    let mut out: Vec<(i64, Point<'_>)> = s
        .points
        .iter()
        .map(|&(t, v)| (t, Point::F(v)))
        .chain(s.hists.iter().map(|(t, h)| (*t, Point::H(h))))
        .collect();
    out.sort_by_key(|p| p.0);
    out
}

/// `irate`/`idelta` over the last two samples of a series with histograms. `Ok(None)`: no
/// result; a float result as `Err(f)`-free `Left`.
pub fn instant_value(
    s: &Series,
    is_rate: bool,
    metric: &str,
    span: Span,
    annos: &mut Annotations,
) -> Option<Result<f64, FloatHistogram>> {
    let all = merged(s);
    if all.len() < 2 {
        return None;
    }
    let (t0, p0) = &all[all.len() - 2];
    let (t1, p1) = &all[all.len() - 1];
    let interval = t1 - t0;
    if interval == 0 {
        return None;
    }
    let per_second = interval as f64 / 1000.0;
    match (p0, p1) {
        (Point::F(a), Point::F(b)) => {
            let reset = b < a || s.started_between(*t0, *t1);
            let mut v = if is_rate && reset { *b } else { b - a };
            if is_rate {
                v /= per_second;
            }
            Some(Ok(v))
        }
        (Point::H(a), Point::H(b)) => {
            let gauge = CounterResetHint::Gauge;
            if is_rate && (a.hint == gauge || b.hint == gauge) {
                annos.warn(anno::not_counter(metric), span);
            }
            if !is_rate && (a.hint != gauge || b.hint != gauge) {
                annos.warn(anno::not_gauge(metric), span);
            }
            let mut h: FloatHistogram = (***b).clone();
            let reset = s.started_between(*t0, *t1) || b.detect_reset(a);
            if (!is_rate || !reset) && !combine(&mut h, a, true, metric, span, annos) {
                return None;
            }
            h.hint = gauge;
            h.compact();
            if is_rate {
                h.div(per_second);
            }
            Some(Err(h))
        }
        _ => {
            annos.warn(anno::mixed_floats_histograms(metric), span);
            None
        }
    }
}

/// `changes` (or `resets`) over a series with histograms, from sample `first` on.
pub fn changes_or_resets(s: &Series, resets: bool) -> f64 {
    let all = merged(s);
    let mut n = 0usize;
    for w in all.windows(2) {
        let started = resets && s.started_between(w[0].0, w[1].0);
        let changed = started
            || match (&w[0].1, &w[1].1) {
                (Point::F(a), Point::F(b)) => {
                    if resets {
                        b < a
                    } else {
                        a != b && !(a.is_nan() && b.is_nan())
                    }
                }
                (Point::H(a), Point::H(b)) => {
                    if resets {
                        b.detect_reset(a)
                    } else {
                        !b.equals(a)
                    }
                }
                _ => true,
            };
        n += changed as usize;
    }
    n as f64
}

/// A compensated running sum or mean of histograms, with Prometheus's numerics: Kahan
/// summation field by field; a mean switches to incremental updates once the sum overflows.
pub struct HistAcc {
    sum: FloatHistogram,
    comp: FloatHistogram,
    n: f64,
    mean: bool,
    incremental: bool,
}

impl HistAcc {
    pub fn new(first: &FloatHistogram, mean: bool) -> Self {
        Self {
            comp: first.zeroed_like(),
            sum: first.clone(),
            n: 1.0,
            mean,
            incremental: false,
        }
    }

    pub fn add(
        &mut self,
        h: &FloatHistogram,
    ) -> Result<argus_model::histogram::Combined, argus_model::histogram::IncompatibleSchemas> {
        self.n += 1.0;
        if !self.mean {
            return self.sum.kahan_add(h, &mut self.comp);
        }
        if !self.incremental {
            let (mut sum, mut comp) = (self.sum.clone(), self.comp.clone());
            let combined = sum.kahan_add(h, &mut comp)?;
            if !sum.has_infinity() {
                (self.sum, self.comp) = (sum, comp);
                return Ok(combined);
            }
            self.incremental = true;
            self.sum.div(self.n - 1.0);
            self.comp.div(self.n - 1.0);
        }
        let q = (self.n - 1.0) / self.n;
        self.sum.mul(q);
        self.comp.mul(q);
        let mut part = h.clone();
        part.div(self.n);
        self.sum.kahan_add(&part, &mut self.comp)
    }

    pub fn value(&self) -> FloatHistogram {
        let mut out = self.sum.compensated(&self.comp);
        if self.mean && !self.incremental {
            let hint = out.hint;
            out.div(self.n);
            out.hint = hint;
        }
        out.compact();
        out
    }
}

/// `sum_over_time` or `avg_over_time` of histogram samples.
pub fn sum_or_avg(
    points: &[(i64, Hist)],
    avg: bool,
    metric: &str,
    span: Span,
    annos: &mut Annotations,
) -> Option<FloatHistogram> {
    let (mut reset, mut not_reset, mut reconciled) = (false, false, false);
    let mut track = |h: &FloatHistogram| match h.hint {
        CounterResetHint::Reset => reset = true,
        CounterResetHint::NotReset => not_reset = true,
        _ => {}
    };
    track(&points[0].1);
    let mut acc = HistAcc::new(&points[0].1, avg);
    for (_, h) in &points[1..] {
        track(h);
        match acc.add(h) {
            Ok(c) => reconciled |= c.custom_bounds_reconciled,
            Err(_) => {
                annos.warn(anno::mixed_exponential_custom(metric), span);
                return None;
            }
        }
    }
    if reset && not_reset {
        annos.warn(anno::counter_reset_collision("aggregation"), span);
    }
    if reconciled {
        annos.info(anno::custom_buckets_reconciled("aggregation"), span);
    }
    Some(acc.value())
}

/// `histogram_stddev`/`histogram_stdvar`: the variance of observations, placing each
/// bucket's observations at its (geometric, for exponential buckets) midpoint.
pub fn variance(h: &FloatHistogram) -> f64 {
    let mean = h.sum / h.count;
    let (mut var, mut c) = (0.0, 0.0);
    for b in h.buckets() {
        if b.count == 0.0 {
            continue;
        }
        let val = if h.uses_custom_buckets() {
            (b.upper + b.lower) / 2.0
        } else if b.lower <= 0.0 && b.upper >= 0.0 {
            0.0
        } else {
            let v = (b.upper * b.lower).sqrt();
            if b.upper < 0.0 { -v } else { v }
        };
        let delta = val - mean;
        (var, c) = kahan_inc(b.count * delta * delta, var, c);
    }
    (var + c) / h.count
}

/// Prometheus's `HistogramQuantile` for a native histogram.
pub fn quantile(
    q: f64,
    h: &FloatHistogram,
    metric: &str,
    span: Span,
    annos: &mut Annotations,
) -> f64 {
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    if h.count == 0.0 || q.is_nan() {
        return f64::NAN;
    }
    let mut buckets = h.buckets();
    // NaN observations count without landing in a bucket: they need the forward walk.
    let forward = h.sum.is_nan() || q < 0.5;
    let mut rank = if forward {
        q * h.count
    } else {
        buckets.reverse();
        (1.0 - q) * h.count
    };
    let mut count = 0.0;
    let mut at = None;
    for (i, b) in buckets.iter().enumerate() {
        at = Some(i);
        if b.count == 0.0 {
            continue;
        }
        count += b.count;
        if count >= rank {
            break;
        }
    }
    // Without buckets Prometheus goes on with an empty one at zero.
    let empty = argus_model::histogram::Bucket {
        lower: 0.0,
        upper: 0.0,
        lower_inclusive: false,
        upper_inclusive: false,
        count: 0.0,
    };
    let mut bucket = at.map_or(empty, |i| buckets[i]);
    let rest = at.map_or(0, |i| i + 1);
    let no_negative = h.negative.is_empty();
    let no_positive = h.positive.is_empty();
    if !h.uses_custom_buckets() && bucket.lower < 0.0 && bucket.upper > 0.0 {
        if no_negative && !no_positive {
            bucket.lower = 0.0;
        } else if no_positive && !no_negative {
            bucket.upper = 0.0;
        }
    } else if h.uses_custom_buckets() {
        if bucket.lower == f64::NEG_INFINITY {
            if bucket.upper <= 0.0 {
                return bucket.upper;
            }
            bucket.lower = 0.0;
        } else if bucket.upper == f64::INFINITY {
            return bucket.lower;
        }
    }
    if count > h.count {
        count = h.count;
    }
    if count < rank {
        if h.sum.is_nan() {
            annos.info(anno::quantile_nan_result(metric), span);
            return f64::NAN;
        }
        return bucket.upper;
    }
    if forward {
        rank -= count - bucket.count;
    } else {
        rank = count - rank;
    }
    if h.sum.is_nan() {
        let total: f64 = count + buckets[rest..].iter().map(|b| b.count).sum::<f64>();
        if total < h.count {
            annos.info(anno::quantile_nan_skew(metric), span);
        }
    }
    let fraction = rank / bucket.count;
    if h.uses_custom_buckets() || (bucket.lower <= 0.0 && bucket.upper >= 0.0) {
        return bucket.lower + (bucket.upper - bucket.lower) * fraction;
    }
    let log_lower = bucket.lower.abs().log2();
    let log_upper = bucket.upper.abs().log2();
    if bucket.lower > 0.0 {
        return (log_lower + (log_upper - log_lower) * fraction).exp2();
    }
    -((log_upper + (log_lower - log_upper) * (1.0 - fraction)).exp2())
}

/// Prometheus's `HistogramFraction` for a native histogram.
pub fn fraction(
    lower: f64,
    upper: f64,
    h: &FloatHistogram,
    metric: &str,
    span: Span,
    annos: &mut Annotations,
) -> f64 {
    if h.count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let buckets = h.buckets();
    let (mut count, mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    let no_negative = h.negative.is_empty();
    let no_positive = h.positive.is_empty();
    let mut consumed = 0;
    for b in &buckets {
        consumed += 1;
        let mut b = *b;
        count += b.count;
        let mut zero_bucket = false;
        if b.lower <= 0.0 && b.upper >= 0.0 {
            zero_bucket = true;
            if no_negative && !no_positive {
                b.lower = 0.0;
            } else if no_positive && !no_negative {
                b.upper = 0.0;
            }
        }
        let linear = |v: f64| {
            if b.lower == f64::NEG_INFINITY {
                return b.count;
            }
            rank + b.count * (v - b.lower) / (b.upper - b.lower)
        };
        let exponential = |v: f64| {
            let log_lower = b.lower.abs().log2();
            let log_upper = b.upper.abs().log2();
            let log_v = v.abs().log2();
            let f = if v > 0.0 {
                (log_v - log_lower) / (log_upper - log_lower)
            } else {
                1.0 - ((log_v - log_upper) / (log_lower - log_upper))
            };
            rank + b.count * f
        };
        let interpolate = |v: f64| {
            if h.uses_custom_buckets() || zero_bucket {
                linear(v)
            } else {
                exponential(v)
            }
        };
        if !lower_set && b.lower >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && b.lower >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && b.lower < lower && b.upper > lower {
            lower_rank = interpolate(lower);
            lower_set = true;
        }
        if !upper_set && b.lower < upper && b.upper > upper {
            upper_rank = interpolate(upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank += b.count;
    }
    if h.sum.is_nan() {
        count += buckets[consumed..].iter().map(|b| b.count).sum::<f64>();
        if count < h.count {
            annos.info(anno::fraction_nans(metric), span);
        }
    } else {
        count = h.count;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    (upper_rank - lower_rank) / h.count
}

/// The share of a bucket `[l, u]` that a trim at `x` keeps (`below`: `</`, keep what is
/// below `x`; else `>/`) and the midpoint of the kept part. `log` interpolates on a
/// logarithmic scale (exponential buckets), otherwise linearly.
fn keep_share(l: f64, u: f64, x: f64, below: bool, log: bool) -> (f64, f64) {
    let mid = |a: f64, b: f64| {
        if log {
            let m = (a * b).sqrt();
            if b <= 0.0 { -m } else { m }
        } else {
            (a + b) / 2.0
        }
    };
    // The share of [l, u] below x, for l < x < u.
    let share_below = || {
        if !log {
            return (x - l) / (u - l);
        }
        let (ll, lu, lx) = (l.abs().log2(), u.abs().log2(), x.abs().log2());
        if x > 0.0 {
            (lx - ll) / (lu - ll)
        } else {
            1.0 - (lx - lu) / (ll - lu)
        }
    };
    match (below, x) {
        (true, x) if x >= u => (1.0, mid(l, u)),
        (true, x) if x <= l => (0.0, 0.0),
        (true, x) => (share_below(), mid(l, x)),
        (false, x) if x <= l => (1.0, mid(l, u)),
        (false, x) if x >= u => (0.0, 0.0),
        (false, x) => (1.0 - share_below(), mid(x, u)),
    }
}

/// [`keep_share`] for a custom bucket, whose first bucket starts at −Inf and whose last
/// ends at +Inf. A first bucket with a positive upper bound counts as starting at 0.
fn custom_share(l: f64, u: f64, x: f64, below: bool) -> (f64, f64) {
    let (ninf, pinf) = (f64::NEG_INFINITY, f64::INFINITY);
    match (l == ninf, u == pinf) {
        (false, false) => keep_share(l, u, x, below, false),
        // One bucket for everything: only an infinite cut keeps it.
        (true, true) => {
            let keep = if below { x == pinf } else { x == ninf };
            (if keep { 1.0 } else { 0.0 }, 0.0)
        }
        (true, false) if u > 0.0 => {
            if !below && x == ninf {
                (1.0, u / 2.0)
            } else if !below && x < 0.0 {
                (0.0, 0.0)
            } else {
                keep_share(0.0, u, x, below, false)
            }
        }
        (true, false) => match (below, x) {
            (true, x) if x >= u => (1.0, u),
            (true, x) if x == ninf => (0.0, 0.0),
            (true, x) => (1.0, x),
            (false, x) if x == ninf => (1.0, u),
            (false, _) => (0.0, 0.0),
        },
        (false, true) => match (below, x) {
            (true, x) if x == pinf => (1.0, l),
            (true, _) => (0.0, 0.0),
            (false, x) if x <= l => (1.0, l),
            (false, x) if x == pinf => (0.0, 0.0),
            (false, x) => (1.0, x),
        },
    }
}

/// The trim operators: `h </ x` keeps the observations below `x`, `h >/ x` those above,
/// interpolating inside the bucket `x` falls in. When anything is cut, count and sum are
/// recomputed from the kept buckets (each bucket's observations at its midpoint); a trim that
/// cuts nothing returns the histogram unchanged.
pub fn trim(h: &FloatHistogram, x: f64, below: bool) -> FloatHistogram {
    let mut out = h.clone();
    let (mut count, mut sum, mut changed) = (0.0, 0.0, false);
    let mut apply = |c: &mut f64, (share, mid): (f64, f64)| {
        if *c != 0.0 && share != 1.0 {
            changed = true;
        }
        *c *= share;
        count += *c;
        if *c != 0.0 {
            sum += *c * mid;
        }
    };
    let custom = h.uses_custom_buckets();
    let zt = h.zero_threshold;
    if !custom && h.zero_count != 0.0 {
        let (no_neg, no_pos) = (h.negative.is_empty(), h.positive.is_empty());
        let (l, u) = if no_neg && !no_pos {
            (0.0, zt)
        } else if no_pos && !no_neg {
            (-zt, 0.0)
        } else {
            (-zt, zt)
        };
        apply(&mut out.zero_count, keep_share(l, u, x, below, false));
    }
    for (idx, c) in out.positive.iter_mut() {
        let (l, u) = h.positive_bounds(*idx);
        let share = if custom {
            custom_share(l, u, x, below)
        } else {
            keep_share(l.max(zt), u, x, below, true)
        };
        apply(c, share);
    }
    for (idx, c) in out.negative.iter_mut() {
        let (l, u) = h.positive_bounds(*idx);
        apply(c, keep_share(-u, -(l.max(zt)), x, below, true));
    }
    if !changed {
        return h.clone();
    }
    out.count = count;
    out.sum = sum;
    out
}
