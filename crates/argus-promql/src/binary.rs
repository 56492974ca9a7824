//! Binary operators: scalar/scalar, vector/scalar and vector/vector with `on`/`ignoring`,
//! `group_left`/`group_right`, `bool` and the set operators, following Prometheus's
//! `VectorBinop` / `VectorscalarBinop` rules for values and result labels.

use argus_model::labels::METRIC_NAME;
use argus_model::{Labels, LabelsBuilder};

use crate::annotations::{self as anno, Annotations};
use crate::ast::{BinOp, Cardinality, Span, VectorMatching};
use crate::engine::{EvalError, Hist, Result, Sample, Value};

/// Where a binary expression's annotations go and the span they point at.
type Notes<'a> = (&'a mut Annotations, Span);

/// `lhs op rhs` for float or histogram operands (Prometheus's `vectorElemBinop`): the
/// value, the histogram value and whether to keep the element. `None` when the combination
/// has no result; the reason is recorded as an annotation.
fn elem_any(
    op: BinOp,
    (lv, lh): (f64, Option<&Hist>),
    (rv, rh): (f64, Option<&Hist>),
    notes: &mut Notes<'_>,
) -> Option<(f64, Option<Hist>, bool)> {
    let scaled = |h: &Hist, f: &dyn Fn(&mut argus_model::FloatHistogram)| {
        let mut h = (**h).clone();
        f(&mut h);
        h.compact();
        Some(Hist::new(h))
    };
    let mut incompatible = |l: &str, r: &str| {
        notes
            .0
            .info(anno::incompatible_types(l, op.as_str(), r), notes.1);
        None
    };
    let trim = matches!(op, BinOp::TrimUpper | BinOp::TrimLower);
    match (lh, rh) {
        (None, None) if trim => incompatible("float", "float"),
        (None, None) => {
            let (v, keep) = elem(op, lv, rv);
            Some((v, None, keep))
        }
        (None, Some(h)) => match op {
            BinOp::Mul => Some((0.0, scaled(h, &|h| _ = h.mul(lv)), true)),
            _ => incompatible("float", "histogram"),
        },
        (Some(h), None) => match op {
            BinOp::Mul => Some((0.0, scaled(h, &|h| _ = h.mul(rv)), true)),
            BinOp::Div => Some((0.0, scaled(h, &|h| _ = h.div(rv)), true)),
            BinOp::TrimUpper | BinOp::TrimLower => Some((
                0.0,
                Some(Hist::new(crate::histfn::trim(
                    h,
                    rv,
                    op == BinOp::TrimUpper,
                ))),
                true,
            )),
            _ => incompatible("histogram", "float"),
        },
        (Some(a), Some(b)) => match op {
            BinOp::Add | BinOp::Sub => {
                let mut res = (**a).clone();
                let (combined, what) = if op == BinOp::Add {
                    (res.add(b), "addition")
                } else {
                    (res.sub(b), "subtraction")
                };
                let Ok(c) = combined else {
                    notes
                        .0
                        .warn(anno::incompatible_bucket_layout(op.as_str()), notes.1);
                    return None;
                };
                if c.counter_reset_collision {
                    notes.0.warn(anno::counter_reset_collision(what), notes.1);
                }
                if c.custom_bounds_reconciled {
                    notes.0.info(anno::custom_buckets_reconciled(what), notes.1);
                }
                if op == BinOp::Sub {
                    res.hint = argus_model::CounterResetHint::Gauge;
                }
                res.compact();
                Some((0.0, Some(Hist::new(res)), true))
            }
            BinOp::Eql | BinOp::Neq => {
                let equal = compacted(a).equals(&compacted(b));
                Some((0.0, Some(a.clone()), equal == (op == BinOp::Eql)))
            }
            _ => incompatible("histogram", "histogram"),
        },
    }
}

fn compacted(h: &Hist) -> argus_model::FloatHistogram {
    let mut h = (**h).clone();
    h.compact();
    h
}

/// `lhs op rhs` on floats: (value, keep) — comparisons keep the left value when true.
/// What a vector element becomes after a comparison's verdict: with `bool` it is kept as
/// 1 or 0; otherwise it is kept with `v` only when the comparison held.
fn outcome(v: f64, keep: bool, return_bool: bool) -> Option<f64> {
    if return_bool {
        Some(if keep { 1.0 } else { 0.0 })
    } else {
        keep.then_some(v)
    }
}

fn elem(op: BinOp, l: f64, r: f64) -> (f64, bool) {
    match op {
        BinOp::Add => (l + r, true),
        BinOp::Sub => (l - r, true),
        BinOp::Mul => (l * r, true),
        BinOp::Div => (l / r, true),
        BinOp::Mod => (l % r, true),
        BinOp::Pow => (l.powf(r), true),
        BinOp::Atan2 => (l.atan2(r), true),
        BinOp::Eql => (l, l == r),
        BinOp::Neq => (l, l != r),
        BinOp::Gtr => (l, l > r),
        BinOp::Lss => (l, l < r),
        BinOp::Gte => (l, l >= r),
        BinOp::Lte => (l, l <= r),
        BinOp::And | BinOp::Or | BinOp::Unless => (l, true),
        BinOp::TrimUpper | BinOp::TrimLower => (l, false),
    }
}

fn drops_name(op: BinOp) -> bool {
    !op.is_comparison() && !op.is_set() && !matches!(op, BinOp::TrimUpper | BinOp::TrimLower)
}

/// The labels without the metric name itself (its `__type__` and `__unit__` stay until the
/// name is settled, see [`Sample::drop_name`]).
fn without_name(labels: &Labels) -> Labels {
    if labels.get(METRIC_NAME).is_none() {
        return labels.clone();
    }
    let mut b = labels.to_builder();
    b.delete(METRIC_NAME);
    b.build()
}

pub fn eval(
    op: BinOp,
    l: Value,
    r: Value,
    matching: Option<&VectorMatching>,
    return_bool: bool,
    t: i64,
    mut notes: Notes<'_>,
) -> Result<Value> {
    match (l, r) {
        (Value::Scalar { v: lv, .. }, Value::Scalar { v: rv, .. }) => {
            let (v, keep) = elem(op, lv, rv);
            let v = if op.is_comparison() {
                if keep { 1.0 } else { 0.0 }
            } else {
                v
            };
            Ok(Value::Scalar { t, v })
        }
        (Value::Vector(vec), Value::Scalar { v: s, .. }) => Ok(Value::Vector(vector_scalar(
            op,
            vec,
            s,
            false,
            return_bool,
            &mut notes,
        ))),
        (Value::Scalar { v: s, .. }, Value::Vector(vec)) => Ok(Value::Vector(vector_scalar(
            op,
            vec,
            s,
            true,
            return_bool,
            &mut notes,
        ))),
        (Value::Vector(lv), Value::Vector(rv)) => {
            let default = VectorMatching {
                card: if op.is_set() {
                    Cardinality::ManyToMany
                } else {
                    Cardinality::OneToOne
                },
                on: false,
                labels: Vec::new(),
                include: Vec::new(),
                fill_left: None,
                fill_right: None,
            };
            let m = matching.unwrap_or(&default);
            match op {
                BinOp::And | BinOp::Or | BinOp::Unless => Ok(Value::Vector(set_op(op, lv, rv, m))),
                _ => vector_vector(op, lv, rv, m, return_bool, &mut notes).map(Value::Vector),
            }
        }
        _ => Err(EvalError::Execution(
            "binary expression on unsupported value types".into(),
        )),
    }
}

fn vector_scalar(
    op: BinOp,
    vec: Vec<Sample>,
    s: f64,
    swap: bool,
    return_bool: bool,
    notes: &mut Notes<'_>,
) -> Vec<Sample> {
    let mut out = Vec::with_capacity(vec.len());
    for sample in vec {
        let me = (sample.v, sample.h.as_ref());
        let (l, r) = if swap {
            ((s, None), me)
        } else {
            (me, (s, None))
        };
        let Some((mut v, mut h, keep)) = elem_any(op, l, r, notes) else {
            continue;
        };
        // The vector element's value is kept even when the scalar is on the left.
        if op.is_comparison() && swap {
            v = r.0;
            h = r.1.cloned();
        }
        if return_bool {
            h = None;
        }
        if let Some(v) = outcome(v, keep, return_bool) {
            out.push(Sample {
                labels: sample.labels,
                t: sample.t,
                v,
                h,
                drop_name: sample.drop_name || drops_name(op) || return_bool,
            });
        }
    }
    out
}

/// The matching signature of a sample's labels.
fn signature(labels: &Labels, m: &VectorMatching) -> Labels {
    if m.on {
        let mut b = LabelsBuilder::new();
        for name in &m.labels {
            if let Some(v) = labels.get(name) {
                b.set(name, v);
            }
        }
        b.build()
    } else {
        let mut b = without_name(labels).to_builder();
        for name in &m.labels {
            b.delete(name);
        }
        b.build()
    }
}

fn set_op(op: BinOp, lhs: Vec<Sample>, rhs: Vec<Sample>, m: &VectorMatching) -> Vec<Sample> {
    match op {
        BinOp::And => {
            let right: crate::engine::LabelsSet =
                rhs.iter().map(|s| signature(&s.labels, m)).collect();
            lhs.into_iter()
                .filter(|s| right.contains(&signature(&s.labels, m)))
                .collect()
        }
        BinOp::Unless => {
            let right: crate::engine::LabelsSet =
                rhs.iter().map(|s| signature(&s.labels, m)).collect();
            lhs.into_iter()
                .filter(|s| !right.contains(&signature(&s.labels, m)))
                .collect()
        }
        _ => {
            let left: crate::engine::LabelsSet =
                lhs.iter().map(|s| signature(&s.labels, m)).collect();
            let mut out = lhs;
            out.extend(
                rhs.into_iter()
                    .filter(|s| !left.contains(&signature(&s.labels, m))),
            );
            out
        }
    }
}

fn show_series(samples: &[&Sample]) -> String {
    let mut shown: Vec<String> = samples.iter().map(|s| s.labels.to_string()).collect();
    shown.sort();
    format!("[{}]", shown.join(", "))
}

fn vector_vector(
    op: BinOp,
    lhs: Vec<Sample>,
    rhs: Vec<Sample>,
    m: &VectorMatching,
    return_bool: bool,
    notes: &mut Notes<'_>,
) -> Result<Vec<Sample>> {
    // For group_right the "one" side is the left: swap and swap back for the operation.
    let one_to_many = m.card == Cardinality::OneToMany;
    let (many, one) = if one_to_many { (rhs, lhs) } else { (lhs, rhs) };
    let mut one_by_sig: crate::engine::LabelsMap<&Sample> = Default::default();
    for s in &one {
        let sig = signature(&s.labels, m);
        if let Some(prev) = one_by_sig.insert(sig.clone(), s) {
            // The first two series found with one signature, sorted, as Prometheus names them.
            let side = if one_to_many { "left" } else { "right" };
            return Err(EvalError::Execution(format!(
                "found duplicate series for the match group {sig} on the {side} hand-side of the operation: {};many-to-many matching not allowed: matching labels must be unique on one side",
                show_series(&[prev, s])
            )));
        }
    }
    let mut out = Vec::new();
    // Per matching signature: whether a pair was matched (one-to-one, counted before a
    // comparison filters it, as upstream's operators.test asks), or the labels of the
    // results made (many-to-one).
    let mut matched_one: crate::engine::LabelsSet = Default::default();
    let mut made: crate::engine::LabelsMap<crate::engine::LabelsSet> = Default::default();
    // The value used for a missing sample on the "one" side and on the "many" side. As
    // upstream, group_right swaps the operands first, so fill_right always fills the "one"
    // side and fill_left the "many" side.
    let (fill_one, fill_many) = (m.fill_right, m.fill_left);
    for s in &many {
        let sig = signature(&s.labels, m);
        let filler;
        let other = match one_by_sig.get(&sig) {
            Some(o) => *o,
            None => match fill_one {
                Some(v) => {
                    filler = Sample::float(Labels::empty(), s.t, v);
                    &filler
                }
                None => continue,
            },
        };
        if m.card == Cardinality::OneToOne && !matched_one.insert(sig.clone()) {
            return Err(EvalError::Execution("multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".to_string()));
        }
        let (mine, theirs) = ((s.v, s.h.as_ref()), (other.v, other.h.as_ref()));
        let (l, r) = if one_to_many {
            (theirs, mine)
        } else {
            (mine, theirs)
        };
        let Some((v, h, keep)) = elem_any(op, l, r, notes) else {
            continue;
        };
        let Some(v) = outcome(v, keep, return_bool) else {
            continue;
        };
        let h = if return_bool { None } else { h };
        let mut b = if drops_name(op) {
            without_name(&s.labels).to_builder()
        } else {
            s.labels.to_builder()
        };
        if m.card == Cardinality::OneToOne {
            if m.on {
                let mut kept = LabelsBuilder::new();
                for name in &m.labels {
                    if let Some(val) = b.get(name) {
                        let val = val.to_string();
                        kept.set(name, &val);
                    }
                }
                b = kept;
            } else {
                for name in &m.labels {
                    b.delete(name);
                }
            }
        }
        for name in &m.include {
            match other.labels.get(name) {
                Some(val) => {
                    b.set(name, val);
                }
                None => {
                    b.delete(name);
                }
            }
        }
        let labels = b.build();
        // Many-to-one: the results' labels must differ (pairs a comparison drops make none).
        if m.card != Cardinality::OneToOne {
            // `bool` drops the name before this check, as Prometheus does.
            let key = if return_bool {
                without_name(&labels)
            } else {
                labels.clone()
            };
            if !made.entry(sig).or_default().insert(key) {
                return Err(EvalError::Execution(
                    "multiple matches for labels: grouping labels must ensure unique matches"
                        .to_string(),
                ));
            }
        }
        out.push(Sample {
            labels,
            t: s.t,
            v,
            h,
            drop_name: s.drop_name || drops_name(op) || return_bool,
        });
    }
    // "One"-side samples nothing matched: filled on the "many" side if asked to.
    if let Some(fill) = fill_many {
        let matched: crate::engine::LabelsSet =
            many.iter().map(|s| signature(&s.labels, m)).collect();
        for o in one
            .iter()
            .filter(|o| !matched.contains(&signature(&o.labels, m)))
        {
            let (mine, theirs) = ((o.v, o.h.as_ref()), (fill, None));
            let (l, r) = if one_to_many {
                (mine, theirs)
            } else {
                (theirs, mine)
            };
            let Some((v, h, keep)) = elem_any(op, l, r, notes) else {
                continue;
            };
            let Some(v) = outcome(v, keep, return_bool) else {
                continue;
            };
            // No sample on the missing side to take labels from: the matching signature of
            // the present one (name dropped; on/ignoring applied).
            out.push(Sample {
                labels: signature(&o.labels, m),
                t: o.t,
                v,
                h: if return_bool { None } else { h },
                drop_name: o.drop_name || drops_name(op) || return_bool,
            });
        }
    }
    Ok(out)
}
