//! Aggregation operators with Prometheus's numerics (Kahan–Neumaier sums, Welford variance,
//! its quantile interpolation, NaN handling in min/max).

use argus_model::Labels;

use crate::annotations::{self as anno, Annotations};
use crate::ast::{AggOp, Span};
use crate::engine::{EvalError, Hist, Result, Sample, Value, group_labels};

/// Where an aggregation's annotations point: the whole expression, its parameter and the
/// aggregated expression.
#[derive(Debug, Clone, Copy)]
pub struct Spans {
    pub whole: Span,
    pub param: Span,
    pub inner: Span,
}

pub use argus_model::histogram::kahan_inc;

/// The order label-ordered input gives groups (order of first appearance), kept while the
/// input comes in any order: each group's smallest input by labels, where label-ordered
/// input would have started it. Reads that take series unsorted put their groups back in
/// that order with [`Self::restore`]. Without a grouping (one group) it keeps nothing.
pub(crate) struct FirstSeen {
    grouped: bool,
    firsts: Vec<Labels>,
}

impl FirstSeen {
    pub fn new(grouping: &[String], without: bool) -> Self {
        Self {
            grouped: without || !grouping.is_empty(),
            firsts: Vec::new(),
        }
    }

    /// `labels` went to group `g` (groups numbered in order of first appearance).
    pub fn saw(&mut self, g: usize, labels: &Labels) {
        if !self.grouped {
            return;
        }
        match self.firsts.get_mut(g) {
            Some(first) if labels < &*first => *first = labels.clone(),
            Some(_) => {}
            None => self.firsts.push(labels.clone()),
        }
    }

    /// `groups` (one per group, in order of first appearance) in label-ordered input's order.
    pub fn restore<T>(self, groups: Vec<T>) -> Vec<T> {
        if !self.grouped {
            return groups;
        }
        let mut by_first: Vec<(Labels, T)> = self.firsts.into_iter().zip(groups).collect();
        by_first.sort_by(|a, b| a.0.cmp(&b.0));
        by_first.into_iter().map(|(_, g)| g).collect()
    }
}

/// Finds each sample's group by a hash of its grouping labels, so a group's label set is
/// built once instead of once per input series. Groups are numbered in order of first
/// appearance.
pub(crate) struct Grouper<'g> {
    grouping: &'g [String],
    without: bool,
    /// First group with a hash; further groups with the same hash chain through `next`.
    by_hash: std::collections::HashMap<u64, usize, crate::engine::Xxh3Build>,
    next: Vec<Option<usize>>,
    /// Each group's labels.
    pub keys: Vec<Labels>,
}

impl<'g> Grouper<'g> {
    pub fn new(grouping: &'g [String], without: bool) -> Self {
        Self {
            grouping,
            without,
            by_hash: Default::default(),
            next: Vec::new(),
            keys: Vec::new(),
        }
    }

    fn keeps(&self, name: &str) -> bool {
        let listed = self.grouping.iter().any(|g| g == name);
        if self.without {
            !listed && !crate::engine::is_name_label(name)
        } else {
            listed
        }
    }

    /// The group of `labels`, added as a new group when first seen.
    pub fn group(&mut self, labels: &Labels) -> usize {
        if !self.without && self.grouping.is_empty() {
            // `sum(x)`: one group.
            if self.keys.is_empty() {
                self.keys.push(Labels::empty());
            }
            return 0;
        }
        let hash = labels.retained_hash(|n| self.keeps(n));
        let mut at = self.by_hash.get(&hash).copied();
        let mut last = None;
        while let Some(g) = at {
            if labels.retained_eq(|n| self.keeps(n), &self.keys[g]) {
                return g;
            }
            last = Some(g);
            at = self.next[g];
        }
        let g = self.keys.len();
        self.keys
            .push(group_labels(labels, self.grouping, self.without));
        self.next.push(None);
        match last {
            Some(prev) => self.next[prev] = Some(g),
            None => {
                self.by_hash.insert(hash, g);
            }
        }
        g
    }
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

/// Whether the aggregation's answer is the same whether or not its inputs' names marked for
/// removal were removed first: its groups leave the name out, and it neither makes labels
/// from its inputs' (`count_values`) nor hashes them (`limit_ratio`).
pub(crate) fn ignores_name_marks(op: AggOp, grouping: &[String], without: bool) -> bool {
    let groups_by_name = !without && grouping.iter().any(|g| crate::engine::is_name_label(g));
    !groups_by_name && !matches!(op, AggOp::CountValues | AggOp::LimitRatio)
}

pub fn eval(
    op: AggOp,
    vec: Vec<Sample>,
    param: Option<Value>,
    grouping: &[String],
    without: bool,
    t: i64,
    notes: (&mut Annotations, Spans),
) -> Result<Value> {
    // A group that keeps the name (`by (__name__)`) has it removed in the end when any of its
    // inputs had it marked for removal. (`topk` and the like return their inputs as they are;
    // `count_values` marks nothing, as upstream.)
    let keeps_name = !without && grouping.iter().any(|g| crate::engine::is_name_label(g));
    let marked: Option<crate::engine::LabelsSet> = (keeps_name
        && !matches!(
            op,
            AggOp::Topk | AggOp::Bottomk | AggOp::Limitk | AggOp::LimitRatio | AggOp::CountValues
        )
        && vec.iter().any(|s| s.drop_name))
    .then(|| {
        vec.iter()
            .filter(|s| s.drop_name)
            .map(|s| group_labels(&s.labels, grouping, without))
            .collect()
    });
    let value = eval_groups(op, vec, param, grouping, without, t, notes)?;
    Ok(match (value, marked) {
        (Value::Vector(out), Some(marked)) => Value::Vector(
            out.into_iter()
                .map(|s| {
                    if marked.contains(&s.labels) {
                        s.name_dropped()
                    } else {
                        s
                    }
                })
                .collect(),
        ),
        (value, _) => value,
    })
}

/// `topk`/`bottomk`'s `k` (not NaN) as a count of series: below 1 keeps none.
/// Prometheus's error for a `topk`/`bottomk`/`limitk` count too large for an int64 (its
/// bound is the largest int64 a float holds exactly below 2^63).
pub(crate) fn check_count(k: f64) -> Result<()> {
    if k >= 9_223_372_036_854_774_784.0 {
        return Err(EvalError::Execution(format!(
            "Scalar value {} overflows int64",
            argus_model::gofmt::format_g(k)
        )));
    }
    Ok(())
}

pub(crate) fn topk_count(k: f64) -> usize {
    if k >= 1.0 { k.min(9.0e18) as usize } else { 0 }
}

/// How `a` and `b` are ordered in `topk`'s (`op` Topk) or `bottomk`'s output: by value,
/// largest or smallest first, NaN last in both, as in Prometheus.
pub(crate) fn topk_order(op: AggOp, a: f64, b: f64) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ if op == AggOp::Topk => b.total_cmp(&a),
        _ => a.total_cmp(&b),
    }
}

fn eval_groups(
    op: AggOp,
    mut vec: Vec<Sample>,
    param: Option<Value>,
    grouping: &[String],
    without: bool,
    t: i64,
    (annos, spans): (&mut Annotations, Spans),
) -> Result<Value> {
    match op {
        AggOp::Topk | AggOp::Bottomk => {
            let k = scalar_param(op, &param)?;
            if k.is_nan() {
                return Err(EvalError::Execution("Parameter value is NaN".into()));
            }
            if vec.iter().any(|s| s.h.is_some()) {
                annos.info(
                    anno::histogram_ignored_in_aggregation(op.as_str()),
                    spans.whole,
                );
                vec.retain(|s| s.h.is_none());
            }
            check_count(k)?;
            let k = topk_count(k);
            let mut grouper = Grouper::new(grouping, without);
            let mut groups: Vec<Vec<Sample>> = Vec::new();
            for s in vec {
                let g = grouper.group(&s.labels);
                if g == groups.len() {
                    groups.push(Vec::new());
                }
                groups[g].push(s);
            }
            let mut out = Vec::new();
            for mut g in groups {
                g.sort_by(|a, b| topk_order(op, a.v, b.v));
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
                    "invalid label name {}",
                    argus_model::gofmt::quote(&label)
                )));
            }
            let mut counts: crate::engine::LabelsMap<f64> = Default::default();
            let mut order = Vec::new();
            for s in vec {
                let mut b = group_labels(&s.labels, grouping, without).to_builder();
                let value = match &s.h {
                    Some(h) => h.to_string(),
                    None => argus_model::gofmt::format_f(s.v),
                };
                b.set(&label, &value);
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
                        Sample::float(labels, t, v)
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
            if op == AggOp::Limitk {
                check_count(p)?;
            }
            if op == AggOp::LimitRatio && !(-1.0..=1.0).contains(&p) {
                annos.warn(anno::invalid_ratio(p, p.clamp(-1.0, 1.0)), spans.param);
            }
            let mut grouper = Grouper::new(grouping, without);
            let mut counts: Vec<usize> = Vec::new();
            let mut out = Vec::new();
            for s in vec {
                let keep = if op == AggOp::Limitk {
                    // The first k of each group, in input order.
                    let k = if p >= 1.0 { p.min(9.0e18) as usize } else { 0 };
                    let g = grouper.group(&s.labels);
                    if g == counts.len() {
                        counts.push(0);
                    }
                    counts[g] += 1;
                    counts[g] <= k
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
        AggOp::Quantile => {
            let q = scalar_param(op, &param)?;
            if !(0.0..=1.0).contains(&q) {
                annos.warn(anno::invalid_quantile(q), spans.param);
            }
            if vec.iter().any(|s| s.h.is_some()) {
                annos.info(
                    anno::histogram_ignored_in_aggregation("quantile"),
                    spans.inner,
                );
                vec.retain(|s| s.h.is_none());
            }
            let mut grouper = Grouper::new(grouping, without);
            let mut values: Vec<Vec<f64>> = Vec::new();
            for s in vec {
                let g = grouper.group(&s.labels);
                if g == values.len() {
                    values.push(Vec::new());
                }
                values[g].push(s.v);
            }
            let out = grouper
                .keys
                .into_iter()
                .zip(values)
                .map(|(key, mut values)| Sample::float(key, t, quantile(q, &mut values)))
                .collect();
            Ok(Value::Vector(out))
        }
        _ if vec.iter().any(|s| s.h.is_some()) => {
            with_histograms(op, vec, grouping, without, t, annos, spans.inner)
        }
        _ => {
            let mut grouper = Grouper::new(grouping, without);
            let mut accs: Vec<Running> = Vec::new();
            for s in vec {
                let g = grouper.group(&s.labels);
                match accs.get_mut(g) {
                    Some(acc) => acc.add(s.v),
                    None => accs.push(Running::new(op, s.v).ok_or_else(|| unsupported(op))?),
                }
            }
            let out = grouper
                .keys
                .into_iter()
                .zip(accs)
                .map(|(key, acc)| Sample::float(key, t, acc.value()))
                .collect();
            Ok(Value::Vector(out))
        }
    }
}

/// A group of `sum`/`avg` over histograms: Prometheus adds them up (for `avg`, as an
/// incremental mean); a group mixing floats and histograms has no result.
#[derive(Default)]
struct HistGroup {
    sum: Option<crate::histfn::HistAcc>,
    count: f64,
    has_float: bool,
    has_hist: bool,
    incompatible: bool,
    reset_seen: bool,
    not_reset_seen: bool,
    reconciled: bool,
}

impl HistGroup {
    fn track(&mut self, h: &argus_model::FloatHistogram) {
        match h.hint {
            argus_model::CounterResetHint::Reset => self.reset_seen = true,
            argus_model::CounterResetHint::NotReset => self.not_reset_seen = true,
            _ => {}
        }
    }
}

/// `sum avg count group min max stddev stdvar` over a vector holding histogram samples.
fn with_histograms(
    op: AggOp,
    vec: Vec<Sample>,
    grouping: &[String],
    without: bool,
    t: i64,
    annos: &mut Annotations,
    inner: Span,
) -> Result<Value> {
    let mut out = Vec::new();
    match op {
        AggOp::Sum | AggOp::Avg => {
            let mut groups: crate::engine::LabelsMap<(HistGroup, Option<Running>)> =
                Default::default();
            let mut order = Vec::new();
            for s in vec {
                let key = group_labels(&s.labels, grouping, without);
                let (g, floats) = groups.entry(key.clone()).or_insert_with(|| {
                    order.push(key);
                    Default::default()
                });
                g.count += 1.0;
                match s.h {
                    None => {
                        g.has_float = true;
                        match floats {
                            Some(acc) => acc.add(s.v),
                            None => *floats = Running::new(op, s.v),
                        }
                    }
                    Some(h) => {
                        g.track(&h);
                        g.has_hist = true;
                        if g.incompatible || g.has_float {
                            continue;
                        }
                        let metric = s.labels.metric_name().to_string();
                        let Some(acc) = g.sum.as_mut() else {
                            g.sum = Some(crate::histfn::HistAcc::new(&h, op == AggOp::Avg));
                            continue;
                        };
                        match acc.add(&h) {
                            Ok(c) => g.reconciled |= c.custom_bounds_reconciled,
                            Err(_) => {
                                annos.warn(anno::mixed_exponential_custom(&metric), inner);
                                g.incompatible = true;
                            }
                        }
                    }
                }
            }
            for key in order {
                let Some((g, floats)) = groups.remove(&key) else {
                    continue;
                };
                if g.has_float && g.has_hist {
                    annos.warn(anno::mixed_floats_histograms_agg(), inner);
                    continue;
                }
                if g.reset_seen && g.not_reset_seen {
                    annos.warn(anno::counter_reset_collision("aggregation"), inner);
                }
                if g.reconciled {
                    annos.info(anno::custom_buckets_reconciled("aggregation"), inner);
                }
                if g.incompatible {
                    continue;
                }
                match (g.sum, floats) {
                    (Some(acc), _) => {
                        out.push(Sample::histogram(key, t, Hist::new(acc.value())));
                    }
                    (None, Some(acc)) => out.push(Sample::float(key, t, acc.value())),
                    (None, None) => {}
                }
            }
        }
        _ => {
            // The other aggregations count histograms (`count`, `group`) or ignore them.
            let counts_histograms = matches!(op, AggOp::Count | AggOp::Group);
            let mut floats = Vec::with_capacity(vec.len());
            for mut s in vec {
                if s.h.take().is_some() && !counts_histograms {
                    annos.info(anno::histogram_ignored_in_aggregation(op.as_str()), inner);
                    continue;
                }
                floats.push(s);
            }
            let spans = Spans {
                whole: inner,
                param: inner,
                inner,
            };
            return eval(op, floats, None, grouping, without, t, (annos, spans));
        }
    }
    Ok(Value::Vector(out))
}

/// One group's running value for the aggregations that need no parameter and no sorting
/// (`sum avg count min max group stddev stdvar`), with Prometheus's numerics.
#[derive(Debug, Clone, Copy)]
pub enum Running {
    Sum {
        sum: f64,
        c: f64,
    },
    Count(f64),
    Min(f64),
    Max(f64),
    Avg(Mean),
    Var {
        count: f64,
        mean: f64,
        m2: f64,
        sqrt: bool,
    },
    Group,
}

impl Running {
    /// The state after the group's first value; `None` for other operators.
    pub fn new(op: AggOp, first: f64) -> Option<Running> {
        let mut acc = match op {
            AggOp::Sum => Running::Sum { sum: 0.0, c: 0.0 },
            AggOp::Count => Running::Count(0.0),
            AggOp::Min => return Some(Running::Min(first)),
            AggOp::Max => return Some(Running::Max(first)),
            AggOp::Avg => return Some(Running::Avg(Mean::new(first))),
            AggOp::Stddev | AggOp::Stdvar => Running::Var {
                count: 0.0,
                mean: 0.0,
                m2: 0.0,
                sqrt: op == AggOp::Stddev,
            },
            AggOp::Group => return Some(Running::Group),
            _ => return None,
        };
        acc.add(first);
        Some(acc)
    }

    pub fn add(&mut self, v: f64) {
        match self {
            Running::Sum { sum, c } => (*sum, *c) = kahan_inc(v, *sum, *c),
            Running::Count(n) => *n += 1.0,
            Running::Min(m) => {
                if *m > v || m.is_nan() {
                    *m = v;
                }
            }
            Running::Max(m) => {
                if *m < v || m.is_nan() {
                    *m = v;
                }
            }
            Running::Avg(mean) => mean.add(v),
            Running::Var {
                count, mean, m2, ..
            } => {
                *count += 1.0;
                let delta = v - *mean;
                *mean += delta / *count;
                *m2 += delta * (v - *mean);
            }
            Running::Group => {}
        }
    }

    pub fn value(&self) -> f64 {
        match *self {
            Running::Sum { sum, c } => {
                if sum.is_infinite() {
                    sum
                } else {
                    sum + c
                }
            }
            Running::Count(n) => n,
            Running::Min(m) | Running::Max(m) => m,
            Running::Avg(mean) => mean.value(),
            Running::Var {
                count, m2, sqrt, ..
            } => {
                if sqrt {
                    (m2 / count).sqrt()
                } else {
                    m2 / count
                }
            }
            Running::Group => 1.0,
        }
    }
}

fn unsupported(op: AggOp) -> EvalError {
    EvalError::Unsupported(format!("aggregation {}", op.as_str()))
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
