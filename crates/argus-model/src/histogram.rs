//! Native histograms as PromQL computes with them: float counts, exponential bucket schemas
//! −4…8 and custom buckets (schema −53).
//!
//! Buckets are kept as sorted sparse `(index, count)` lists rather than Prometheus's
//! span/bucket pairs: the two describe the same layout (a span boundary is just a gap in the
//! indexes), and arithmetic on sorted lists is a merge. Semantics follow Prometheus's
//! `FloatHistogram` (schema reduction on addition, zero-bucket reconciliation, counter-reset
//! detection, custom-bound intersection).

use std::sync::Arc;

/// The schema number of histograms with custom bucket boundaries (NHCB).
pub const CUSTOM_BUCKETS_SCHEMA: i32 = -53;

/// What a histogram sample says about a counter reset since the previous sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CounterResetHint {
    #[default]
    Unknown,
    Reset,
    NotReset,
    /// A gauge histogram: counts may go down without a reset.
    Gauge,
}

/// Bucket indexes laid out by spans: the first offset is the first index, later ones are
/// gaps after the previous span.
pub fn span_indexes(spans: &[(i64, u64)], buckets: usize) -> Result<Vec<i32>, String> {
    let total: u64 = spans.iter().map(|s| s.1).sum();
    if total != buckets as u64 {
        return Err(format!(
            "spans need {total} buckets, have {buckets} buckets"
        ));
    }
    let mut out = Vec::with_capacity(buckets);
    let mut idx = 0i64;
    for &(offset, length) in spans {
        idx = idx.checked_add(offset).ok_or("span offset out of range")?;
        for _ in 0..length {
            out.push(i32::try_from(idx).map_err(|_| "bucket index out of range")?);
            idx += 1;
        }
    }
    Ok(out)
}

/// Buckets laid out by spans (see [`span_indexes`]) with their counts, as `(index, count)`.
pub fn lay_out(spans: &[(i64, u64)], counts: Vec<f64>) -> Result<Vec<(i32, f64)>, String> {
    let idx = span_indexes(spans, counts.len())?;
    Ok(idx.into_iter().zip(counts).collect())
}

/// Absolute counts from integer buckets written as deltas from the previous bucket.
pub fn deltas_to_counts(deltas: &[i64]) -> Vec<f64> {
    let mut acc = 0i64;
    deltas
        .iter()
        .map(|d| {
            acc = acc.wrapping_add(*d);
            acc as f64
        })
        .collect()
}

/// A native histogram with float counts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FloatHistogram {
    pub hint: CounterResetHint,
    pub schema: i32,
    pub zero_threshold: f64,
    pub zero_count: f64,
    pub count: f64,
    pub sum: f64,
    /// Positive buckets as `(index, count)`, ascending and unique by index.
    pub positive: Vec<(i32, f64)>,
    /// Negative buckets as `(index, count)`; index `i` mirrors positive bucket `i`.
    pub negative: Vec<(i32, f64)>,
    /// Upper bounds of the custom buckets (schema −53), without the implicit `+Inf`; empty
    /// for exponential schemas.
    pub custom_values: Arc<[f64]>,
}

/// One bucket with its boundaries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub lower: f64,
    pub upper: f64,
    pub lower_inclusive: bool,
    pub upper_inclusive: bool,
    pub count: f64,
}

impl std::fmt::Display for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::gofmt::format_g as g;
        write!(
            f,
            "{}{},{}{}:{}",
            if self.lower_inclusive { '[' } else { '(' },
            g(self.lower),
            g(self.upper),
            if self.upper_inclusive { ']' } else { ')' },
            g(self.count)
        )
    }
}

/// Adding an exponential-schema histogram to a custom-bucket one (or the reverse).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncompatibleSchemas;

/// Side facts of an addition or subtraction that PromQL reports as annotations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Combined {
    /// One side said "counter reset", the other "no counter reset".
    pub counter_reset_collision: bool,
    /// Custom-bucket histograms with different bounds were mapped onto the bounds both share.
    pub custom_bounds_reconciled: bool,
}

/// `x · 2^exp` (Go's `math.Ldexp`) without overflowing the intermediate power.
fn ldexp(x: f64, exp: i32) -> f64 {
    let half = exp / 2;
    x * 2f64.powi(half) * 2f64.powi(exp - half)
}

/// The upper bound of bucket `idx` in exponential schema `schema` (Prometheus's
/// `getBoundExponential`).
pub fn exponential_bound(idx: i32, schema: i32) -> f64 {
    // Computed in wide integers so that no index or (invalid) schema can overflow a shift.
    let idx = idx as i64;
    let exp = if schema < 0 {
        let shift = (-(schema as i64)).min(62) as u32;
        let exp = (idx as i128) << shift;
        if exp >= 1024 {
            return f64::MAX;
        }
        if exp < -1100 {
            return 0.0;
        }
        return ldexp(1.0, exp as i32);
    } else {
        schema.min(62) as u32
    };
    let per_power = 1i64 << exp;
    let frac_idx = idx.rem_euclid(per_power);
    let frac = if exp <= 8 {
        crate::histogram_bounds::SCHEMA_8_FRACTIONS[(frac_idx << (8 - exp)) as usize]
    } else {
        2f64.powf(frac_idx as f64 / per_power as f64) / 2.0
    };
    let e = idx.div_euclid(per_power) + 1;
    if frac == 0.5 && e == 1025 {
        return f64::MAX;
    }
    ldexp(frac, e.clamp(-2200, 2200) as i32)
}

/// The index a bucket of `from` falls into in the coarser schema `to`.
fn target_index(idx: i32, from: i32, to: i32) -> i32 {
    let shift = (from as i64 - to as i64).clamp(0, 62);
    (((idx as i64 - 1) >> shift) + 1) as i32
}

/// Buckets of a finer schema merged into a coarser one.
fn reduce(buckets: &[(i32, f64)], from: i32, to: i32) -> Vec<(i32, f64)> {
    if from == to {
        return buckets.to_vec();
    }
    let mut out: Vec<(i32, f64)> = Vec::with_capacity(buckets.len());
    for &(idx, c) in buckets {
        let t = target_index(idx, from, to);
        match out.last_mut() {
            Some(last) if last.0 == t => last.1 += c,
            _ => out.push((t, c)),
        }
    }
    out
}

/// `a + sign·b` bucket by bucket; buckets of `b` whose index `skip` rejects are left out.
fn merge(
    a: &[(i32, f64)],
    b: &[(i32, f64)],
    sign: f64,
    skip: impl Fn(i32) -> bool,
) -> Vec<(i32, f64)> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if j < b.len() && skip(b[j].0) {
            j += 1;
            continue;
        }
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x.0 == y.0 => {
                out.push((x.0, x.1 + sign * y.1));
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x.0 < y.0 => {
                out.push(*x);
                i += 1;
            }
            (Some(x), None) => {
                out.push(*x);
                i += 1;
            }
            (_, Some(y)) => {
                out.push((y.0, sign * y.1));
                j += 1;
            }
            (None, None) => break,
        }
    }
    out
}

fn bounds_match(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

fn bits_match(a: &[(i32, f64)], b: &[(i32, f64)]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.0 == y.0 && x.1.to_bits() == y.1.to_bits())
}

impl FloatHistogram {
    pub fn uses_custom_buckets(&self) -> bool {
        self.schema == CUSTOM_BUCKETS_SCHEMA
    }

    /// Bounds of positive bucket `idx`: `(lower, upper]`.
    pub fn positive_bounds(&self, idx: i32) -> (f64, f64) {
        if self.uses_custom_buckets() {
            let cv = &self.custom_values;
            let lower = if idx <= 0 {
                f64::NEG_INFINITY
            } else {
                cv.get(idx as usize - 1).copied().unwrap_or(f64::INFINITY)
            };
            let upper = if idx < 0 {
                f64::NEG_INFINITY
            } else {
                cv.get(idx as usize).copied().unwrap_or(f64::INFINITY)
            };
            (lower, upper)
        } else {
            (
                exponential_bound(idx.saturating_sub(1), self.schema),
                exponential_bound(idx, self.schema),
            )
        }
    }

    fn positive_bucket(&self, idx: i32, count: f64) -> Bucket {
        let (lower, upper) = self.positive_bounds(idx);
        Bucket {
            lower,
            upper,
            lower_inclusive: false,
            upper_inclusive: true,
            count,
        }
    }

    fn negative_bucket(&self, idx: i32, count: f64) -> Bucket {
        let (lower, upper) = self.positive_bounds(idx);
        Bucket {
            lower: -upper,
            upper: -lower,
            lower_inclusive: true,
            upper_inclusive: false,
            count,
        }
    }

    fn zero_bucket(&self) -> Bucket {
        Bucket {
            lower: -self.zero_threshold,
            upper: self.zero_threshold,
            lower_inclusive: true,
            upper_inclusive: true,
            count: self.zero_count,
        }
    }

    /// Every bucket from the lowest to the highest: negative buckets, the zero bucket (when
    /// populated) and positive buckets. Buckets overlapping the zero bucket are cut at its
    /// threshold.
    pub fn buckets(&self) -> Vec<Bucket> {
        let zt = self.zero_threshold;
        let mut out = Vec::with_capacity(self.positive.len() + self.negative.len() + 1);
        for &(idx, c) in self.negative.iter().rev() {
            let mut b = self.negative_bucket(idx, c);
            if b.upper < 0.0 && b.upper > -zt {
                b.upper = -zt;
            }
            out.push(b);
        }
        if self.zero_count > 0.0 {
            out.push(self.zero_bucket());
        }
        for &(idx, c) in &self.positive {
            let mut b = self.positive_bucket(idx, c);
            if b.lower > 0.0 && b.lower < zt {
                b.lower = zt;
            }
            out.push(b);
        }
        out
    }

    /// Drops empty buckets (Prometheus's `Compact(0)`).
    pub fn compact(&mut self) -> &mut Self {
        self.positive.retain(|b| b.1 != 0.0);
        self.negative.retain(|b| b.1 != 0.0);
        self
    }

    /// Multiplies every count and the sum; a negative factor makes it a gauge.
    pub fn mul(&mut self, factor: f64) -> &mut Self {
        self.zero_count *= factor;
        self.count *= factor;
        self.sum *= factor;
        self.positive.iter_mut().for_each(|b| b.1 *= factor);
        self.negative.iter_mut().for_each(|b| b.1 *= factor);
        if factor < 0.0 {
            self.hint = CounterResetHint::Gauge;
        }
        self
    }

    /// Divides every count and the sum; division by zero removes all buckets.
    pub fn div(&mut self, divisor: f64) -> &mut Self {
        self.zero_count /= divisor;
        self.count /= divisor;
        self.sum /= divisor;
        if divisor == 0.0 {
            self.positive.clear();
            self.negative.clear();
            return self;
        }
        self.positive.iter_mut().for_each(|b| b.1 /= divisor);
        self.negative.iter_mut().for_each(|b| b.1 /= divisor);
        if divisor < 0.0 {
            self.hint = CounterResetHint::Gauge;
        }
        self
    }

    /// The same histogram in the coarser exponential schema `target`.
    pub fn reduce_resolution(&mut self, target: i32) {
        if self.uses_custom_buckets() || target >= self.schema {
            return;
        }
        self.positive = reduce(&self.positive, self.schema, target);
        self.negative = reduce(&self.negative, self.schema, target);
        self.schema = target;
    }

    /// `self += other`.
    pub fn add(&mut self, other: &FloatHistogram) -> Result<Combined, IncompatibleSchemas> {
        self.combine(other, 1.0)
    }

    /// `self -= other`. The counter-reset hint follows the addition rules; the `-` operator
    /// sets it to gauge afterwards.
    pub fn sub(&mut self, other: &FloatHistogram) -> Result<Combined, IncompatibleSchemas> {
        self.combine(other, -1.0)
    }

    fn combine(
        &mut self,
        other: &FloatHistogram,
        sign: f64,
    ) -> Result<Combined, IncompatibleSchemas> {
        if self.uses_custom_buckets() != other.uses_custom_buckets() {
            return Err(IncompatibleSchemas);
        }
        let mut out = Combined {
            counter_reset_collision: self.adjust_counter_reset(other),
            custom_bounds_reconciled: false,
        };
        if !self.uses_custom_buckets() {
            let other_zero = self.reconcile_zero_buckets(other);
            self.zero_count += sign * other_zero;
        }
        self.count += sign * other.count;
        self.sum += sign * other.sum;
        if self.uses_custom_buckets() {
            if bounds_match(&self.custom_values, &other.custom_values) {
                self.positive = merge(&self.positive, &other.positive, sign, |_| false);
            } else {
                out.custom_bounds_reconciled = true;
                let shared: Arc<[f64]> =
                    intersect_bounds(&self.custom_values, &other.custom_values).into();
                let mut theirs = other.clone();
                theirs.remap_custom(&shared);
                self.remap_custom(&shared);
                self.positive = merge(&self.positive, &theirs.positive, sign, |_| false);
                self.positive.retain(|b| b.1 != 0.0);
            }
            return Ok(out);
        }
        let (mut op, mut on) = (
            std::borrow::Cow::Borrowed(&other.positive),
            std::borrow::Cow::Borrowed(&other.negative),
        );
        if other.schema < self.schema {
            self.reduce_resolution(other.schema);
        } else if other.schema > self.schema {
            op = std::borrow::Cow::Owned(reduce(&other.positive, other.schema, self.schema));
            on = std::borrow::Cow::Owned(reduce(&other.negative, other.schema, self.schema));
        }
        // Buckets of `other` inside the (reconciled) zero bucket are already in its count.
        let (schema, zt) = (self.schema, self.zero_threshold);
        let inside = |idx: i32| exponential_bound(idx, schema) <= zt;
        self.positive = merge(&self.positive, &op, sign, inside);
        self.negative = merge(&self.negative, &on, sign, inside);
        Ok(out)
    }

    /// Prometheus's `adjustCounterReset`: true on a direct reset/not-reset collision.
    fn adjust_counter_reset(&mut self, other: &FloatHistogram) -> bool {
        use CounterResetHint::*;
        match (self.hint, other.hint) {
            (a, b) if a == b => false,
            (Gauge, _) => false,
            (_, Gauge) => {
                self.hint = Gauge;
                false
            }
            (Unknown, _) => false,
            (_, Unknown) => {
                self.hint = Unknown;
                false
            }
            _ => {
                self.hint = Unknown;
                true
            }
        }
    }

    /// The zero count this histogram would have with the larger threshold `t`, and the
    /// threshold actually needed (moved up to a bucket boundary when `t` falls inside a
    /// populated bucket).
    fn zero_count_for_larger_threshold(&self, mut t: f64) -> (f64, f64) {
        if t == self.zero_threshold {
            return (self.zero_count, t);
        }
        // The count of the buckets (by magnitude) below `t`; `t` moves up to the upper bound
        // of a populated bucket it falls inside, and the second value says whether it did.
        let merge = |buckets: &[(i32, f64)], t: &mut f64| -> (f64, bool) {
            let mut count = 0.0;
            for &(idx, c) in buckets {
                let (lower, upper) = self.positive_bounds(idx);
                if lower >= *t {
                    break;
                }
                count += c;
                if upper > *t {
                    if c != 0.0 {
                        *t = upper;
                        return (count, true);
                    }
                    break;
                }
            }
            (count, false)
        };
        loop {
            // A move on the positive side only changes what the negative side sees; a move
            // on the negative side means counting the positive side again.
            let (positive, _) = merge(&self.positive, &mut t);
            let (negative, moved) = merge(&self.negative, &mut t);
            if !moved {
                return (self.zero_count + positive + negative, t);
            }
        }
    }

    /// Widens the zero buckets of `self` and (virtually) `other` to a common threshold;
    /// returns the zero count `other` has at that threshold.
    fn reconcile_zero_buckets(&mut self, other: &FloatHistogram) -> f64 {
        let mut other_count = other.zero_count;
        let mut other_t = other.zero_threshold;
        // Each round moves a threshold up to a bucket boundary; NaN thresholds (invalid
        // input) never settle, so the rounds are capped.
        for _ in 0..256 {
            if other_t == self.zero_threshold || other_t.is_nan() || self.zero_threshold.is_nan() {
                break;
            }
            if self.zero_threshold > other_t {
                (other_count, other_t) = other.zero_count_for_larger_threshold(self.zero_threshold);
            }
            if other_t > self.zero_threshold {
                (self.zero_count, self.zero_threshold) =
                    self.zero_count_for_larger_threshold(other_t);
                let zt = self.zero_threshold;
                let schema = self.schema;
                let outside =
                    |b: &(i32, f64)| exponential_bound(b.0.saturating_sub(1), schema) >= zt;
                self.positive.retain(outside);
                self.negative.retain(outside);
            }
        }
        other_count
    }

    /// True when going from `prev` to `self` must have involved a counter reset (Prometheus's
    /// `DetectReset`).
    pub fn detect_reset(&self, prev: &FloatHistogram) -> bool {
        match self.hint {
            CounterResetHint::Reset => return true,
            CounterResetHint::NotReset => return false,
            _ => {}
        }
        if self.count < prev.count {
            return true;
        }
        if self.uses_custom_buckets() {
            if !prev.uses_custom_buckets() {
                return true;
            }
            if !bounds_match(&self.custom_values, &prev.custom_values) {
                return self.reset_with_mismatched_bounds(prev);
            }
        }
        if self.schema > prev.schema {
            return true;
        }
        if self.zero_threshold < prev.zero_threshold {
            return true;
        }
        let (prev_zero, t) = prev.zero_count_for_larger_threshold(self.zero_threshold);
        if t != self.zero_threshold {
            return true;
        }
        if self.zero_count < prev_zero {
            return true;
        }
        let custom = self.uses_custom_buckets();
        let (schema, zt) = (self.schema, self.zero_threshold);
        let above = |idx: i32| custom || exponential_bound(idx, schema) > zt;
        let side_reset = |curr: &[(i32, f64)], prev_side: &[(i32, f64)]| {
            let prev_side = reduce(prev_side, prev.schema, schema);
            let curr: Vec<&(i32, f64)> = curr.iter().filter(|b| above(b.0)).collect();
            let mut j = 0;
            for &(idx, pc) in prev_side.iter().filter(|b| above(b.0)) {
                while j < curr.len() && curr[j].0 < idx {
                    j += 1;
                }
                match curr.get(j) {
                    Some(c) if c.0 == idx => {
                        if c.1 < pc {
                            return true;
                        }
                    }
                    _ => {
                        if pc != 0.0 {
                            return true;
                        }
                    }
                }
            }
            false
        };
        side_reset(&self.positive, &prev.positive) || side_reset(&self.negative, &prev.negative)
    }

    /// Counter-reset detection between custom-bucket histograms with different bounds:
    /// cumulative counts are compared at every bound both share.
    fn reset_with_mismatched_bounds(&self, prev: &FloatHistogram) -> bool {
        let uppers = |h: &FloatHistogram| -> Vec<(f64, f64)> {
            h.positive
                .iter()
                .map(|&(idx, c)| (h.positive_bounds(idx).1, c))
                .collect()
        };
        let (curr, old) = (uppers(self), uppers(prev));
        let (cb, pb) = (&self.custom_values, &prev.custom_values);
        let (mut i, mut j) = (0usize, 0usize);
        let (mut ci, mut pi) = (0usize, 0usize);
        while i <= cb.len() && j <= pb.len() {
            let c = cb.get(i).copied().unwrap_or(f64::INFINITY);
            let p = pb.get(j).copied().unwrap_or(f64::INFINITY);
            if c == p {
                let mut csum = 0.0;
                while ci < curr.len() && curr[ci].0 <= c {
                    csum += curr[ci].1;
                    ci += 1;
                }
                let mut psum = 0.0;
                while pi < old.len() && old[pi].0 <= c {
                    psum += old[pi].1;
                    pi += 1;
                }
                if csum < psum {
                    return true;
                }
                i += 1;
                j += 1;
            } else if c < p {
                i += 1;
            } else {
                j += 1;
            }
        }
        false
    }

    /// `self += other` with Kahan–Neumaier compensation: `comp` collects, field by field,
    /// the low-order bits the additions lose (it follows `self`'s layout). The compensated
    /// value is [`Self::compensated`].
    pub fn kahan_add(
        &mut self,
        other: &FloatHistogram,
        comp: &mut FloatHistogram,
    ) -> Result<Combined, IncompatibleSchemas> {
        if self.uses_custom_buckets() != other.uses_custom_buckets() {
            return Err(IncompatibleSchemas);
        }
        let mut out = Combined {
            counter_reset_collision: self.adjust_counter_reset(other),
            custom_bounds_reconciled: false,
        };
        let mut o = std::borrow::Cow::Borrowed(other);
        if self.uses_custom_buckets() {
            comp.schema = CUSTOM_BUCKETS_SCHEMA;
            if !bounds_match(&self.custom_values, &other.custom_values) {
                out.custom_bounds_reconciled = true;
                let shared: Arc<[f64]> =
                    intersect_bounds(&self.custom_values, &other.custom_values).into();
                self.remap_custom(&shared);
                comp.remap_custom(&shared);
                o.to_mut().remap_custom(&shared);
            }
            comp.custom_values = self.custom_values.clone();
        } else {
            let schema = self.schema.min(other.schema);
            for h in [&mut *self, &mut *comp, o.to_mut()] {
                h.reduce_resolution(schema);
            }
            comp.schema = schema;
            // A zero threshold wide enough for both, not cutting a populated bucket.
            let mut t = self.zero_threshold.max(other.zero_threshold);
            for _ in 0..256 {
                let t1 = self.zero_count_for_larger_threshold(t).1;
                let t2 = o.zero_count_for_larger_threshold(t1).1;
                if (t1 == t && t2 == t) || t.is_nan() {
                    break;
                }
                t = t2.max(t1);
            }
            for h in [&mut *self, &mut *comp, o.to_mut()] {
                h.fold_into_zero(t);
            }
        }
        let k = |a: &mut f64, c: &mut f64, inc: f64| (*a, *c) = kahan_inc(inc, *a, *c);
        k(&mut self.count, &mut comp.count, o.count);
        k(&mut self.sum, &mut comp.sum, o.sum);
        k(&mut self.zero_count, &mut comp.zero_count, o.zero_count);
        kahan_buckets(&mut self.positive, &mut comp.positive, &o.positive);
        kahan_buckets(&mut self.negative, &mut comp.negative, &o.negative);
        Ok(out)
    }

    /// An all-zero histogram with this one's layout: the starting compensation for
    /// [`Self::kahan_add`].
    pub fn zeroed_like(&self) -> FloatHistogram {
        FloatHistogram {
            schema: self.schema,
            zero_threshold: self.zero_threshold,
            custom_values: self.custom_values.clone(),
            ..Default::default()
        }
    }

    /// `self + comp`, field by field (the result of a compensated summation).
    pub fn compensated(&self, comp: &FloatHistogram) -> FloatHistogram {
        let mut out = self.clone();
        out.count += comp.count;
        out.sum += comp.sum;
        out.zero_count += comp.zero_count;
        out.positive = merge(&out.positive, &comp.positive, 1.0, |_| false);
        out.negative = merge(&out.negative, &comp.negative, 1.0, |_| false);
        out
    }

    /// Custom buckets mapped onto the bounds `shared` (a subset of this histogram's).
    fn remap_custom(&mut self, shared: &Arc<[f64]>) {
        let mut target = vec![0.0; shared.len() + 1];
        map_custom(
            &self.positive,
            &self.custom_values,
            shared,
            1.0,
            &mut target,
        );
        self.positive = target
            .into_iter()
            .enumerate()
            .map(|(i, c)| (i as i32, c))
            .collect();
        self.custom_values = shared.clone();
    }

    /// Widens the zero bucket to threshold `t`, moving the buckets below it into it.
    fn fold_into_zero(&mut self, t: f64) {
        if t <= self.zero_threshold {
            return;
        }
        let schema = self.schema;
        let mut folded = 0.0;
        for side in [&mut self.positive, &mut self.negative] {
            side.retain(|&(idx, c)| {
                let inside = exponential_bound(idx.saturating_sub(1), schema) < t;
                if inside {
                    folded += c;
                }
                !inside
            });
        }
        self.zero_count += folded;
        self.zero_threshold = t;
    }

    /// True when a count, the sum or a bucket is infinite.
    pub fn has_infinity(&self) -> bool {
        self.count.is_infinite()
            || self.sum.is_infinite()
            || self.zero_count.is_infinite()
            || self
                .positive
                .iter()
                .chain(&self.negative)
                .any(|b| b.1.is_infinite())
    }

    /// Exact equality of layout and values (bit patterns), ignoring the counter-reset hint —
    /// Prometheus's `Equals`.
    pub fn equals(&self, other: &FloatHistogram) -> bool {
        self.schema == other.schema
            && self.count.to_bits() == other.count.to_bits()
            && self.sum.to_bits() == other.sum.to_bits()
            && (!self.uses_custom_buckets()
                || bounds_match(&self.custom_values, &other.custom_values))
            && self.zero_threshold == other.zero_threshold
            && self.zero_count.to_bits() == other.zero_count.to_bits()
            && bits_match(&self.negative, &other.negative)
            && bits_match(&self.positive, &other.positive)
    }
}

/// Prometheus's `String()` form, e.g. `{count:4, sum:5, [-1,-0.5):1, (0.5,1]:2}`.
impl FloatHistogram {
    /// Prometheus's checks on an ingested histogram.
    /// Prometheus's count check for histograms that came with integer counts: the buckets
    /// must add up to the count exactly, or to at most the count when the sum is NaN (NaN
    /// observations fall in no bucket). Float histograms are not checked (rounding).
    pub fn check_integer_count(&self) -> Result<(), String> {
        let in_buckets: f64 = self.zero_count
            + self.positive.iter().map(|b| b.1).sum::<f64>()
            + self.negative.iter().map(|b| b.1).sum::<f64>();
        let (found, count) = (in_buckets as u64, self.count as u64);
        if self.sum.is_nan() {
            if found > count {
                return Err(format!(
                    "{found} observations found in buckets, but the Count field is {count}: histogram's observation count should be at least the number of observations found in the buckets"
                ));
            }
        } else if found != count {
            return Err(format!(
                "{found} observations found in buckets, but the Count field is {count}: histogram's observation count should equal the number of observations found in the buckets (in absence of NaN)"
            ));
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), String> {
        let h = self;
        let custom = h.schema == CUSTOM_BUCKETS_SCHEMA;
        if !custom && !(-4..=8).contains(&h.schema) {
            return Err(format!(
                "histogram has an invalid schema, which must be between -4 and 8 or -53 (custom buckets): {}",
                h.schema
            ));
        }
        let negative_count = |c: f64| c < 0.0;
        if h.positive
            .iter()
            .chain(&h.negative)
            .any(|b| negative_count(b.1))
            || negative_count(h.zero_count)
            || negative_count(h.count)
        {
            return Err("histogram has a bucket whose observation count is negative".into());
        }
        if custom {
            if !h.negative.is_empty() || h.zero_count != 0.0 || h.zero_threshold != 0.0 {
                return Err(
                    "histogram with custom buckets must not have negative buckets or a zero bucket"
                        .into(),
                );
            }
            let cv = &h.custom_values;
            if cv.iter().any(|v| !v.is_finite()) || cv.windows(2).any(|w| w[0] >= w[1]) {
                return Err("custom buckets: custom bounds must be finite and increasing".into());
            }
            if h.positive
                .iter()
                .any(|b| b.0 < 0 || b.0 as usize > cv.len())
            {
                return Err("custom buckets: a bucket index is outside the custom bounds".into());
            }
        } else if !h.custom_values.is_empty() {
            return Err("histogram with exponential schema must not have custom bounds".into());
        }
        if h.zero_threshold.is_nan() || h.zero_threshold < 0.0 {
            return Err("histogram has an invalid zero threshold".into());
        }
        Ok(())
    }
}

impl std::fmt::Display for FloatHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::gofmt::format_g as g;
        write!(f, "{{count:{}, sum:{}", g(self.count), g(self.sum))?;
        for &(idx, c) in self.negative.iter().rev() {
            if c != 0.0 {
                write!(f, ", {}", self.negative_bucket(idx, c))?;
            }
        }
        if self.zero_count != 0.0 {
            write!(f, ", {}", self.zero_bucket())?;
        }
        for &(idx, c) in &self.positive {
            if c != 0.0 {
                write!(f, ", {}", self.positive_bucket(idx, c))?;
            }
        }
        write!(f, "}}")
    }
}

/// Kahan–Neumaier step (Prometheus's `kahanSumInc`): returns the new sum and compensation.
pub fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Compensated bucket-wise addition of `inc` into `sum`/`comp` (sorted sparse lists).
fn kahan_buckets(sum: &mut Vec<(i32, f64)>, comp: &mut Vec<(i32, f64)>, inc: &[(i32, f64)]) {
    let mut all: std::collections::BTreeMap<i32, (f64, f64)> = std::collections::BTreeMap::new();
    for &(i, v) in sum.iter() {
        all.entry(i).or_default().0 = v;
    }
    for &(i, v) in comp.iter() {
        all.entry(i).or_default().1 = v;
    }
    for &(i, v) in inc {
        let e = all.entry(i).or_default();
        *e = kahan_inc(v, e.0, e.1);
    }
    *sum = all.iter().map(|(&i, &(s, _))| (i, s)).collect();
    *comp = all.iter().map(|(&i, &(_, c))| (i, c)).collect();
}

/// The bounds two custom-bucket layouts share.
fn intersect_bounds(a: &[f64], b: &[f64]) -> Vec<f64> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            out.push(a[i]);
            i += 1;
            j += 1;
        } else if a[i] < b[j] {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// Adds `sign ×` custom buckets laid out on `bounds` into `target` (laid out on `shared`,
/// plus the `+Inf` bucket): each bucket goes to the first shared bound at or above its own.
fn map_custom(
    buckets: &[(i32, f64)],
    bounds: &[f64],
    shared: &[f64],
    sign: f64,
    target: &mut [f64],
) {
    for &(idx, c) in buckets {
        let t = usize::try_from(idx)
            .ok()
            .and_then(|i| bounds.get(i))
            .and_then(|&upper| shared.iter().position(|&s| s >= upper))
            .unwrap_or(shared.len());
        target[t] += sign * c;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exp(schema: i32, count: f64, positive: &[(i32, f64)]) -> FloatHistogram {
        FloatHistogram {
            schema,
            count,
            sum: count,
            positive: positive.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn bounds_are_prometheus_tabulated_values() {
        // Prometheus's table, not 2^(i/n): these differ from powf in the last digit, and
        // query results show them (checked against Prometheus 2.42 in the interop tests).
        assert_eq!(exponential_bound(-1, 1), 0.7071067811865475);
        // Not √2 (1.4142135623730951): twice the tabulated 1/√2.
        #[allow(clippy::approx_constant)]
        let sqrt2_tabulated = 1.414213562373095;
        assert_eq!(exponential_bound(1, 1), sqrt2_tabulated);
        assert_eq!(exponential_bound(-1, 2), 0.8408964152537144);
        assert_eq!(exponential_bound(-255, 8), 0.5013556375251013);
        assert_eq!(exponential_bound(-1, 8), 0.9972960560854698);
        assert_eq!(exponential_bound(3, 3), 1.2968395546510096);
    }

    #[test]
    fn bounds_of_exponential_schemas() {
        assert_eq!(exponential_bound(0, 0), 1.0);
        assert_eq!(exponential_bound(1, 0), 2.0);
        assert_eq!(exponential_bound(-1, 0), 0.5);
        assert!((exponential_bound(1, 1) - std::f64::consts::SQRT_2).abs() < 1e-15);
        assert_eq!(exponential_bound(1, -1), 4.0);
        assert_eq!(exponential_bound(1024, 0), f64::MAX);
    }

    #[test]
    fn addition_reduces_to_the_coarser_schema() {
        // Schema 1 buckets 1..=4 are (1,√2], (√2,2], (2,2√2], (2√2,4]; in schema 0 they
        // become (1,2] and (2,4].
        let mut a = exp(1, 4.0, &[(1, 1.0), (2, 1.0), (3, 1.0), (4, 1.0)]);
        let b = exp(0, 2.0, &[(1, 1.0), (2, 1.0)]);
        a.add(&b).unwrap();
        assert_eq!(a.schema, 0);
        assert_eq!(a.positive, vec![(1, 3.0), (2, 3.0)]);
        assert_eq!(a.count, 6.0);
    }

    #[test]
    fn zero_buckets_are_reconciled_to_the_wider_threshold() {
        let mut a = exp(0, 2.0, &[(0, 1.0), (2, 1.0)]); // (0.5,1] and (2,4]
        let b = FloatHistogram {
            zero_threshold: 1.0,
            zero_count: 3.0,
            count: 3.0,
            ..Default::default()
        };
        a.add(&b).unwrap();
        assert_eq!(a.zero_threshold, 1.0);
        assert_eq!(a.zero_count, 4.0);
        assert_eq!(a.positive, vec![(2, 1.0)]);
    }

    #[test]
    fn custom_bounds_are_intersected() {
        let cv = |v: &[f64]| -> Arc<[f64]> { v.to_vec().into() };
        let mut a = FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 3.0,
            custom_values: cv(&[1.0, 2.0, 5.0]),
            positive: vec![(0, 1.0), (1, 1.0), (2, 1.0)],
            ..Default::default()
        };
        let b = FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 2.0,
            custom_values: cv(&[2.0, 10.0]),
            positive: vec![(0, 1.0), (2, 1.0)],
            ..Default::default()
        };
        let info = a.add(&b).unwrap();
        assert!(info.custom_bounds_reconciled);
        assert_eq!(&*a.custom_values, &[2.0]);
        assert_eq!(a.positive, vec![(0, 3.0), (1, 2.0)]);
        assert_eq!(a.add(&exp(0, 1.0, &[])), Err(IncompatibleSchemas));
    }

    #[test]
    fn reset_detection() {
        let prev = exp(0, 3.0, &[(1, 2.0), (2, 1.0)]);
        assert!(!exp(0, 4.0, &[(1, 2.0), (2, 2.0)]).detect_reset(&prev));
        assert!(exp(0, 4.0, &[(1, 1.0), (2, 3.0)]).detect_reset(&prev));
        // A populated bucket disappearing is a reset.
        assert!(exp(0, 4.0, &[(1, 4.0)]).detect_reset(&prev));
        // A finer schema only comes with a reset; a coarser one is compared merged.
        assert!(exp(1, 4.0, &[]).detect_reset(&prev));
        assert!(!exp(-1, 3.0, &[(1, 3.0)]).detect_reset(&prev));
        let mut hinted = exp(0, 0.0, &[]);
        hinted.hint = CounterResetHint::NotReset;
        assert!(!hinted.detect_reset(&prev));
    }

    /// Histograms as untrusted input may carry: any schema, indexes near the integer limits,
    /// NaN and infinite counts.
    pub(crate) fn arbitrary() -> impl proptest::strategy::Strategy<Value = FloatHistogram> {
        use proptest::prelude::*;
        let count = prop_oneof![
            -10.0..1e6f64,
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(0.0)
        ];
        let buckets = || {
            proptest::collection::btree_map(
                prop_oneof![-60i32..60, Just(i32::MIN), Just(i32::MAX)],
                count.clone(),
                0..8,
            )
            .prop_map(|m| m.into_iter().collect::<Vec<_>>())
        };
        let custom = proptest::collection::btree_set(-1000i32..1000, 0..5)
            .prop_map(|s| s.into_iter().map(|v| v as f64).collect::<Vec<f64>>());
        (
            prop_oneof![-6i32..10, Just(CUSTOM_BUCKETS_SCHEMA), Just(40), Just(-70)],
            prop_oneof![Just(0.0), 0.0..3.0f64, Just(f64::NAN), Just(f64::INFINITY)],
            count.clone(),
            count.clone(),
            buckets(),
            buckets(),
            custom,
            0u8..4,
        )
            .prop_map(|(schema, zt, zc, c, pos, neg, cv, hint)| {
                let custom = schema == CUSTOM_BUCKETS_SCHEMA;
                FloatHistogram {
                    hint: [
                        CounterResetHint::Unknown,
                        CounterResetHint::Reset,
                        CounterResetHint::NotReset,
                        CounterResetHint::Gauge,
                    ][hint as usize],
                    schema,
                    zero_threshold: if custom { 0.0 } else { zt },
                    zero_count: if custom { 0.0 } else { zc },
                    count: c,
                    sum: c,
                    positive: pos,
                    negative: if custom { Vec::new() } else { neg },
                    custom_values: if custom { cv.into() } else { Arc::from([]) },
                }
            })
    }

    proptest::proptest! {
        /// No combination of histograms makes the arithmetic panic.
        #[test]
        fn operations_never_panic(a in arbitrary(), b in arbitrary(), f in -3.0..3.0f64) {
            let _ = a.to_string();
            let _ = a.buckets();
            let _ = a.detect_reset(&b);
            let _ = a.equals(&b);
            let mut x = a.clone();
            let _ = x.add(&b);
            let mut x = a.clone();
            let _ = x.sub(&b);
            let mut x = a.clone();
            let mut comp = x.zeroed_like();
            let _ = x.kahan_add(&b, &mut comp);
            let _ = x.compensated(&comp);
            let mut x = a.clone();
            x.mul(f).div(f).compact();
            x.reduce_resolution(-4);
        }
    }

    #[test]
    fn bounds_of_extreme_indexes_and_schemas() {
        for schema in [-70, -4, 0, 8, 40, 100] {
            for idx in [i32::MIN, -1, 0, 1, i32::MAX] {
                let b = exponential_bound(idx, schema);
                assert!(b >= 0.0, "{idx} {schema}: {b}");
            }
        }
        assert_eq!(target_index(i32::MIN, 8, -4), target_index(i32::MIN, 8, -4));
    }

    #[test]
    fn string_form_lists_populated_buckets_in_order() {
        let h = FloatHistogram {
            count: 4.0,
            sum: 5.0,
            zero_threshold: 0.001,
            zero_count: 1.0,
            negative: vec![(0, 1.0)],
            positive: vec![(0, 0.0), (1, 2.0)],
            ..Default::default()
        };
        assert_eq!(
            h.to_string(),
            "{count:4, sum:5, [-1,-0.5):1, [-0.001,0.001]:1, (1,2]:2}"
        );
    }
}
