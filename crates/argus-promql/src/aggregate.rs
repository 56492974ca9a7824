//! Aggregation operators with Prometheus's numerics (Kahan–Neumaier sums, Welford variance,
//! its quantile interpolation, NaN handling in min/max).

use argus_model::Labels;

use crate::ast::AggOp;
use crate::engine::{EvalError, Result, Sample, Value, group_labels};

/// Prometheus's `kahanSumInc`.
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

/// Prometheus's mean: a Kahan sum, switching to an incremental mean once the sum would
/// overflow (so that `avg` of huge values or of ±Inf stays finite or keeps its sign).
#[derive(Debug, Clone, Copy)]
pub struct Mean {
    sum: f64,
    c: f64,
    mean: f64,
    count: f64,
    incremental: bool,
}

impl Mean {
    pub fn new(first: f64) -> Self {
        Self {
            sum: first,
            c: 0.0,
            mean: first,
            count: 1.0,
            incremental: false,
        }
    }

    pub fn add(&mut self, f: f64) {
        self.count += 1.0;
        if !self.incremental {
            let (t, c) = kahan_inc(f, self.sum, self.c);
            if !t.is_infinite() {
                self.sum = t;
                self.c = c;
                return;
            }
            self.incremental = true;
            self.mean = self.sum / (self.count - 1.0);
            self.c /= self.count - 1.0;
        }
        let q = (self.count - 1.0) / self.count;
        let (m, c) = kahan_inc(f / self.count, q * self.mean, q * self.c);
        self.mean = m;
        self.c = c;
    }

    pub fn value(&self) -> f64 {
        if self.incremental {
            self.mean + self.c
        } else {
            (self.sum + self.c) / self.count
        }
    }
}

/// Sorts floats as Go's `slices.Sort` does: NaN first, then ascending.
pub fn go_sort(values: &mut [f64]) {
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.total_cmp(b),
    });
}

/// Prometheus's `quantile` over unsorted values.
pub fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    go_sort(values);
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

fn scalar_param(op: AggOp, param: &Option<Value>) -> Result<f64> {
    match param {
        Some(Value::Scalar { v, .. }) => Ok(*v),
        _ => Err(EvalError::Execution(format!(
            "{} expects a scalar parameter",
            op.as_str()
        ))),
    }
}

pub fn eval(
    op: AggOp,
    vec: Vec<Sample>,
    param: Option<Value>,
    grouping: &[String],
    without: bool,
    t: i64,
) -> Result<Value> {
    match op {
        AggOp::Topk | AggOp::Bottomk => {
            let k = scalar_param(op, &param)?;
            if k.is_nan() {
                return Err(EvalError::Execution("Parameter value is NaN".into()));
            }
            let k = if k >= 1.0 { k.min(9.0e18) as usize } else { 0 };
            let mut groups: crate::engine::LabelsMap<Vec<Sample>> = Default::default();
            let mut order = Vec::new();
            for s in vec {
                let key = group_labels(&s.labels, grouping, without);
                let g = groups.entry(key.clone()).or_insert_with(|| {
                    order.push(key);
                    Vec::new()
                });
                g.push(s);
            }
            let mut out = Vec::new();
            for key in order {
                let Some(mut g) = groups.remove(&key) else {
                    continue;
                };
                // NaN sorts last for both directions, as in Prometheus.
                g.sort_by(|a, b| match (a.v.is_nan(), b.v.is_nan()) {
                    (true, true) => std::cmp::Ordering::Equal,
                    (true, false) => std::cmp::Ordering::Greater,
                    (false, true) => std::cmp::Ordering::Less,
                    _ if op == AggOp::Topk => b.v.total_cmp(&a.v),
                    _ => a.v.total_cmp(&b.v),
                });
                g.truncate(k);
                out.extend(g.into_iter().map(|s| Sample { t, ..s }));
            }
            Ok(Value::Vector(out))
        }
        AggOp::CountValues => {
            let Some(Value::String { v: label, .. }) = param else {
                return Err(EvalError::Execution(
                    "count_values expects a string parameter".into(),
                ));
            };
            if !argus_model::labels::is_valid_label_name(&label) {
                return Err(EvalError::Execution(format!(
                    "invalid label name {label:?}"
                )));
            }
            let mut counts: crate::engine::LabelsMap<f64> = Default::default();
            let mut order = Vec::new();
            for s in vec {
                let mut b = group_labels(&s.labels, grouping, without).to_builder();
                b.set(&label, &argus_model::gofmt::format_f(s.v));
                let key = b.build();
                let c = counts.entry(key.clone()).or_insert_with(|| {
                    order.push(key);
                    0.0
                });
                *c += 1.0;
            }
            Ok(Value::Vector(
                order
                    .into_iter()
                    .map(|labels| {
                        let v = counts[&labels];
                        Sample { labels, t, v }
                    })
                    .collect(),
            ))
        }
        AggOp::Limitk | AggOp::LimitRatio => {
            let p = scalar_param(op, &param)?;
            if p.is_nan() {
                return Err(EvalError::Execution(
                    if op == AggOp::Limitk {
                        "Parameter value is NaN"
                    } else {
                        "Ratio value is NaN"
                    }
                    .into(),
                ));
            }
            let mut counts: crate::engine::LabelsMap<usize> = Default::default();
            let mut out = Vec::new();
            for s in vec {
                let keep = if op == AggOp::Limitk {
                    // The first k of each group, in input order.
                    let k = if p >= 1.0 { p.min(9.0e18) as usize } else { 0 };
                    let n = counts
                        .entry(group_labels(&s.labels, grouping, without))
                        .or_default();
                    *n += 1;
                    *n <= k
                } else {
                    // Prometheus's hash-ratio sampling: a series is in when its label hash,
                    // scaled to [0, 1), is below the ratio (or, for a negative ratio, at or
                    // above 1 + ratio), so a series' membership is stable across steps.
                    let ratio = p.clamp(-1.0, 1.0);
                    let offset = labels_hash(&s.labels) as f64 / u64::MAX as f64;
                    (ratio >= 0.0 && offset < ratio) || (ratio < 0.0 && offset >= 1.0 + ratio)
                };
                if keep {
                    out.push(Sample { t, ..s });
                }
            }
            Ok(Value::Vector(out))
        }
        _ => {
            let q = if op == AggOp::Quantile {
                Some(scalar_param(op, &param)?)
            } else {
                None
            };
            struct Acc {
                sum: f64,
                c: f64,
                count: f64,
                min: f64,
                max: f64,
                mean: f64,
                m2: f64,
                avg: Mean,
                values: Vec<f64>,
            }
            let mut groups: crate::engine::LabelsMap<Acc> = Default::default();
            let mut order = Vec::new();
            for s in vec {
                let key = group_labels(&s.labels, grouping, without);
                let acc = groups.entry(key.clone()).or_insert_with(|| {
                    order.push(key);
                    Acc {
                        sum: 0.0,
                        c: 0.0,
                        count: 0.0,
                        min: s.v,
                        max: s.v,
                        mean: 0.0,
                        m2: 0.0,
                        avg: Mean::new(s.v),
                        values: Vec::new(),
                    }
                });
                if acc.count > 0.0 {
                    acc.avg.add(s.v);
                }
                let (sum, c) = kahan_inc(s.v, acc.sum, acc.c);
                acc.sum = sum;
                acc.c = c;
                acc.count += 1.0;
                if acc.min > s.v || acc.min.is_nan() {
                    acc.min = s.v;
                }
                if acc.max < s.v || acc.max.is_nan() {
                    acc.max = s.v;
                }
                let delta = s.v - acc.mean;
                acc.mean += delta / acc.count;
                acc.m2 += delta * (s.v - acc.mean);
                if q.is_some() {
                    acc.values.push(s.v);
                }
            }
            let mut out = Vec::with_capacity(order.len());
            for key in order {
                let Some(mut acc) = groups.remove(&key) else {
                    continue;
                };
                let v = match op {
                    AggOp::Sum => {
                        if acc.sum.is_infinite() {
                            acc.sum
                        } else {
                            acc.sum + acc.c
                        }
                    }
                    AggOp::Avg => acc.avg.value(),
                    AggOp::Count => acc.count,
                    AggOp::Min => acc.min,
                    AggOp::Max => acc.max,
                    AggOp::Group => 1.0,
                    AggOp::Stdvar => acc.m2 / acc.count,
                    AggOp::Stddev => (acc.m2 / acc.count).sqrt(),
                    AggOp::Quantile => quantile(q.unwrap_or(f64::NAN), &mut acc.values),
                    _ => unreachable_op(op)?,
                };
                out.push(Sample { labels: key, t, v });
            }
            Ok(Value::Vector(out))
        }
    }
}

/// Prometheus's `Labels.Hash()`: xxHash64 of `name 0xff value 0xff …`.
pub fn labels_hash(labels: &Labels) -> u64 {
    let mut bytes = Vec::with_capacity(128);
    for l in labels.iter() {
        bytes.extend_from_slice(l.name.as_bytes());
        bytes.push(0xff);
        bytes.extend_from_slice(l.value.as_bytes());
        bytes.push(0xff);
    }
    xxhash_rust::xxh64::xxh64(&bytes, 0)
}

fn unreachable_op(op: AggOp) -> Result<f64> {
    Err(EvalError::Unsupported(format!(
        "aggregation {}",
        op.as_str()
    )))
}
