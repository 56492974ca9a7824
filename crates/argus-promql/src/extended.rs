//! The extended range selector modifiers `anchored` and `smoothed` (Prometheus 3's
//! `promql-extended-range-selectors`).
//!
//! An `anchored` range `[r]` at `t` also sees samples up to one lookback delta before
//! `t - r`, so it starts at the last sample at or before the range start; a `smoothed` range
//! also sees samples up to one lookback delta after `t`, and its boundary values are
//! interpolated linearly between the neighbouring samples. Only `rate`, `increase`, `delta`
//! (both) and `changes`, `resets` (`anchored`) accept them; a bare range selector returns
//! its samples trimmed to the range with a synthetic point at each boundary.

use crate::engine::{EvalError, Result};

/// Functions that accept each modifier, in Prometheus's error-message order.
const ANCHORED_FUNCTIONS: [&str; 5] = ["changes", "delta", "increase", "rate", "resets"];
const SMOOTHED_FUNCTIONS: [&str; 3] = ["delta", "increase", "rate"];

/// Refuses a function that cannot take an `anchored`/`smoothed` argument.
pub fn check_function(name: &str, anchored: bool, smoothed: bool) -> Result<()> {
    let (modifier, allowed): (&str, &[&str]) = if anchored {
        ("anchored", &ANCHORED_FUNCTIONS)
    } else if smoothed {
        ("smoothed", &SMOOTHED_FUNCTIONS)
    } else {
        return Ok(());
    };
    if allowed.contains(&name) {
        return Ok(());
    }
    Err(EvalError::Execution(format!(
        "{modifier} modifier can only be used with: {} - not with {name}",
        allowed.join(", ")
    )))
}

/// Linear interpolation between two samples at `t`. For counters a reset between them means
/// the counter restarted from 0 after the first one, so the line runs from 0 to the second.
fn interpolate(p1: (i64, f64), p2: (i64, f64), t: i64, is_counter: bool) -> f64 {
    let (mut y1, y2) = (p1.1, p2.1);
    if is_counter && y2 < y1 {
        y1 = 0.0;
    }
    y1 + (y2 - y1) * (t - p1.0) as f64 / (p2.0 - p1.0) as f64
}

/// Counter resets strictly between the boundary values.
fn reset_correction(left: f64, right: f64, inner: &[(i64, f64)]) -> f64 {
    let mut correction = 0.0;
    let mut prev = left;
    for &(_, v) in inner {
        if v < prev {
            correction += prev;
        }
        prev = v;
    }
    if right < prev {
        correction += prev;
    }
    correction
}

/// Index of the last sample at or before `start` among all but the last sample (0 if none).
fn first_index(f: &[(i64, f64)], start: i64) -> usize {
    let last = f.len() - 1;
    f[..last]
        .partition_point(|p| p.0 <= start)
        .saturating_sub(1)
}

/// The values at a range's two boundaries and the samples strictly between them.
struct Bounds<'a> {
    left: f64,
    right: f64,
    inner: &'a [(i64, f64)],
}

/// Boundary values of `(start, end]` from the extended selection `f`: the anchoring sample
/// (or, smoothed, the interpolation at `start`) and the last sample (or the interpolation at
/// `end`). `None` when no sample lies after `start`.
fn bounds(
    f: &[(i64, f64)],
    start: i64,
    end: i64,
    smoothed: bool,
    is_counter: bool,
) -> Option<Bounds<'_>> {
    let mut last = f.len().checked_sub(1)?;
    let mut first = first_index(f, start);
    if smoothed {
        last = f[..last].partition_point(|p| p.0 < end);
    }
    if f[last].0 <= start {
        return None;
    }
    let left = if smoothed && f[first].0 < start {
        interpolate(f[first], f[first + 1], start, is_counter)
    } else {
        f[first].1
    };
    let right = if smoothed && last > 0 && f[last].0 > end {
        interpolate(f[last - 1], f[last], end, is_counter)
    } else {
        f[last].1
    };
    if f[first].0 <= start {
        first += 1;
    }
    let end_inner = if f[last].0 >= end { last } else { last + 1 };
    Some(Bounds {
        left,
        right,
        inner: f.get(first..end_inner.max(first)).unwrap_or(&[]),
    })
}

/// `rate`/`increase`/`delta` over an anchored or smoothed range `(start, end]`; `f` holds
/// the non-stale samples the extended selection sees, in time order.
pub fn rate(
    f: &[(i64, f64)],
    start: i64,
    end: i64,
    range_ms: i64,
    smoothed: bool,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    // Nothing to say when all samples lie after the range either.
    if f.first().is_some_and(|p| p.0 > end) {
        return None;
    }
    let b = bounds(f, start, end, smoothed, is_counter)?;
    let mut result = b.right - b.left;
    if is_counter {
        // The boundary values already account for resets at the edges.
        result += reset_correction(b.left, b.right, b.inner);
    }
    if is_rate {
        result /= range_ms as f64 / 1000.0;
    }
    Some(result)
}

/// The samples `changes`/`resets` count over for an anchored range: from the last sample at
/// or before the range start. `None` when no sample lies inside the range.
pub fn anchored_samples(f: &[(i64, f64)], start: i64) -> Option<&[(i64, f64)]> {
    if f.last().is_none_or(|p| p.0 <= start) {
        return None;
    }
    Some(&f[first_index(f, start)..])
}

/// A bare anchored or smoothed range selector's samples: trimmed to `(start, end]` with a
/// point exactly at `start` (the anchoring sample's value, or the interpolation) and one at
/// `end`. Empty when no sample lies after `start`.
pub fn boundary_points(f: &[(i64, f64)], start: i64, end: i64, smoothed: bool) -> Vec<(i64, f64)> {
    let Some(b) = bounds(f, start, end, smoothed, false) else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(b.inner.len() + 2);
    out.push((start, b.left));
    out.extend_from_slice(b.inner);
    out.push((end, b.right));
    out
}

/// A smoothed instant selector's value at `t` from the non-stale samples within one lookback
/// delta on either side: the sample at `t`, else the interpolation between its neighbours,
/// else the one neighbour there is.
pub fn smoothed_value(f: &[(i64, f64)], t: i64) -> Option<f64> {
    let idx = f.partition_point(|p| p.0 <= t);
    let prev = idx.checked_sub(1).map(|i| f[i]);
    let next = f.get(idx).copied();
    match (prev, next) {
        (Some(p), _) if p.0 == t => Some(p.1),
        (Some(p), Some(n)) => Some(interpolate(p, n, t, false)),
        (Some(p), None) => Some(p.1),
        (None, Some(n)) => Some(n.1),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn error_messages_name_the_allowed_functions() {
        assert_eq!(
            check_function("deriv", true, false)
                .unwrap_err()
                .to_string(),
            "anchored modifier can only be used with: changes, delta, increase, rate, resets - not with deriv"
        );
        assert_eq!(
            check_function("resets", false, true)
                .unwrap_err()
                .to_string(),
            "smoothed modifier can only be used with: delta, increase, rate - not with resets"
        );
        assert!(check_function("rate", true, false).is_ok());
        assert!(check_function("max_over_time", false, false).is_ok());
    }

    proptest! {
        /// No input makes the boundary arithmetic index out of range.
        #[test]
        fn never_panics(ts in proptest::collection::btree_set(-50i64..50, 0..8),
                        start in -60i64..60, len in 0i64..60, smoothed in any::<bool>()) {
            let f: Vec<(i64, f64)> = ts.into_iter().map(|t| (t, (t % 7) as f64)).collect();
            let end = start + len;
            let _ = rate(&f, start, end, len.max(1), smoothed, true, true);
            let _ = rate(&f, start, end, len.max(1), smoothed, false, false);
            let _ = anchored_samples(&f, start);
            let _ = boundary_points(&f, start, end, smoothed);
            let _ = smoothed_value(&f, start);
        }
    }
}

/// Histogram counterparts of the float functions above.
pub mod hist {
    use argus_model::{CounterResetHint, FloatHistogram};

    use crate::annotations::{self as anno, Annotations};
    use crate::ast::Span;
    use crate::engine::Hist;

    /// Where a warning goes: the metric name, the argument's span and the collection.
    pub struct Notes<'a> {
        pub metric: &'a str,
        pub span: Span,
        pub annos: &'a mut Annotations,
    }

    impl Notes<'_> {
        fn mixed(&mut self) -> Option<FloatHistogram> {
            self.annos
                .warn(anno::mixed_exponential_custom(self.metric), self.span);
            None
        }
    }

    /// `a - b` (or `a + b`), `None` with a warning when the schemas do not mix.
    fn combine(
        a: &FloatHistogram,
        b: &FloatHistogram,
        add: bool,
        notes: &mut Notes<'_>,
    ) -> Option<FloatHistogram> {
        let mut out = a.clone();
        let r = if add { out.add(b) } else { out.sub(b) };
        match r {
            Ok(_) => Some(out),
            Err(_) => notes.mixed(),
        }
    }

    /// The histogram at `t` between two samples. Across a counter reset the counter is taken
    /// to restart from zero, so the second sample is scaled.
    fn interpolate(
        p1: &(i64, Hist),
        p2: &(i64, Hist),
        t: i64,
        is_counter: bool,
        notes: &mut Notes<'_>,
    ) -> Option<FloatHistogram> {
        let frac = (t - p1.0) as f64 / (p2.0 - p1.0) as f64;
        if is_counter && p2.1.detect_reset(&p1.1) {
            let mut h = (*p2.1).clone();
            h.mul(frac);
            return Some(h);
        }
        let mut d = combine(&p2.1, &p1.1, false, notes)?;
        d.mul(frac);
        let mut out = combine(&p1.1, &d, true, notes)?;
        out.hint = p2.1.hint;
        Some(out)
    }

    /// `rate`/`increase`/`delta` over an anchored or smoothed range of histograms.
    #[allow(clippy::too_many_arguments)]
    pub fn rate(
        f: &[(i64, Hist)],
        start: i64,
        end: i64,
        range_ms: i64,
        smoothed: bool,
        is_counter: bool,
        is_rate: bool,
        notes: &mut Notes<'_>,
    ) -> Option<FloatHistogram> {
        if f.first().is_none_or(|p| p.0 > end) {
            return None;
        }
        let mut last = f.len() - 1;
        let first = f[..last]
            .partition_point(|p| p.0 <= start)
            .saturating_sub(1);
        if smoothed {
            last = f[..last].partition_point(|p| p.0 < end);
        }
        if f[last].0 <= start {
            return None;
        }
        let used = &f[first..=last];
        let custom = used[0].1.uses_custom_buckets();
        if used.iter().any(|p| p.1.uses_custom_buckets() != custom) {
            return notes.mixed();
        }
        let gauge = CounterResetHint::Gauge;
        if is_counter && used.iter().any(|p| p.1.hint == gauge) {
            notes
                .annos
                .warn(anno::not_counter(notes.metric), notes.span);
        }
        if !is_counter && (f[first].1.hint != gauge || f[last].1.hint != gauge) {
            notes.annos.warn(anno::not_gauge(notes.metric), notes.span);
        }
        let left_interpolated = smoothed && f[first].0 < start;
        let right_interpolated = smoothed && last > 0 && f[last].0 > end;
        let left = if left_interpolated {
            interpolate(&f[first], &f[first + 1], start, is_counter, notes)?
        } else {
            (*f[first].1).clone()
        };
        let right = if right_interpolated {
            interpolate(&f[last - 1], &f[last], end, is_counter, notes)?
        } else {
            (*f[last].1).clone()
        };
        let mut result = combine(&right, &left, false, notes)?;
        if is_counter {
            // Resets strictly inside the range; an interpolated boundary already accounts
            // for a reset between it and its neighbour.
            let a = if f[first].0 <= start {
                first + 1
            } else {
                first
            };
            let b = if f[last].0 >= end { last } else { last + 1 };
            let mut prev: Option<&FloatHistogram> =
                (!left_interpolated && a > first).then_some(&left);
            for (_, h) in f.get(a..b.max(a)).unwrap_or(&[]) {
                if let Some(p) = prev
                    && h.detect_reset(p)
                {
                    result = combine(&result, p, true, notes)?;
                }
                prev = Some(h);
            }
            if b <= last
                && let Some(p) = prev
                && right.detect_reset(p)
            {
                result = combine(&result, p, true, notes)?;
            }
        }
        if is_rate {
            result.div(range_ms as f64 / 1000.0);
        }
        result.hint = gauge;
        result.compact();
        Some(result)
    }

    /// A smoothed instant selector's histogram at `t` (see [`super::smoothed_value`]).
    pub fn smoothed_value(
        f: &[(i64, Hist)],
        t: i64,
        notes: &mut Notes<'_>,
    ) -> Option<FloatHistogram> {
        let idx = f.partition_point(|p| p.0 <= t);
        let prev = idx.checked_sub(1).map(|i| &f[i]);
        let next = f.get(idx);
        match (prev, next) {
            (Some(p), _) if p.0 == t => Some((*p.1).clone()),
            (Some(p), Some(n)) => {
                if p.1.uses_custom_buckets() != n.1.uses_custom_buckets() {
                    return notes.mixed();
                }
                let is_counter = n.1.hint != CounterResetHint::Gauge;
                interpolate(p, n, t, is_counter, notes)
            }
            (Some(p), None) => Some((*p.1).clone()),
            (None, Some(n)) => Some((*n.1).clone()),
            (None, None) => None,
        }
    }
}
