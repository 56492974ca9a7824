//! Binary operators: scalar/scalar, vector/scalar and vector/vector with `on`/`ignoring`,
//! `group_left`/`group_right`, `bool` and the set operators, following Prometheus's
//! `VectorBinop` / `VectorscalarBinop` rules for values and result labels.

use argus_model::labels::METRIC_NAME;
use argus_model::{Labels, LabelsBuilder};

use crate::ast::{BinOp, Cardinality, VectorMatching};
use crate::engine::{EvalError, Result, Sample, Value};

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
    }
}

fn drops_name(op: BinOp) -> bool {
    !op.is_comparison() && !op.is_set()
}

fn without_name(labels: &Labels) -> Labels {
    crate::engine::drop_name(labels)
}

pub fn eval(
    op: BinOp,
    l: Value,
    r: Value,
    matching: Option<&VectorMatching>,
    return_bool: bool,
    t: i64,
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
        (Value::Vector(vec), Value::Scalar { v: s, .. }) => {
            Ok(Value::Vector(vector_scalar(op, vec, s, false, return_bool)))
        }
        (Value::Scalar { v: s, .. }, Value::Vector(vec)) => {
            Ok(Value::Vector(vector_scalar(op, vec, s, true, return_bool)))
        }
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
                _ => vector_vector(op, lv, rv, m, return_bool).map(Value::Vector),
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
) -> Vec<Sample> {
    let mut out = Vec::with_capacity(vec.len());
    for sample in vec {
        let (lv, rv) = if swap { (s, sample.v) } else { (sample.v, s) };
        let (mut v, keep) = elem(op, lv, rv);
        // The vector element's value is kept even when the scalar is on the left.
        if op.is_comparison() && swap {
            v = rv;
        }
        if let Some(v) = outcome(v, keep, return_bool) {
            let labels = if drops_name(op) || return_bool {
                without_name(&sample.labels)
            } else {
                sample.labels
            };
            out.push(Sample {
                labels,
                t: sample.t,
                v,
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
) -> Result<Vec<Sample>> {
    // For group_right the "one" side is the left: swap and swap back for the operation.
    let one_to_many = m.card == Cardinality::OneToMany;
    let (many, one) = if one_to_many { (rhs, lhs) } else { (lhs, rhs) };
    let mut one_by_sig: crate::engine::LabelsMap<&Sample> = Default::default();
    let mut dup: crate::engine::LabelsMap<Vec<&Sample>> = Default::default();
    for s in &one {
        let sig = signature(&s.labels, m);
        if let Some(prev) = one_by_sig.insert(sig.clone(), s) {
            dup.entry(sig).or_insert_with(|| vec![prev]).push(s);
        }
    }
    if let Some((sig, samples)) = dup.into_iter().next() {
        let side = if one_to_many { "left" } else { "right" };
        return Err(EvalError::Execution(format!(
            "found duplicate series for the match group {sig} on the {side} hand-side of the operation: {};many-to-many matching not allowed: matching labels must be unique on one side",
            show_series(&samples)
        )));
    }
    let mut out = Vec::new();
    let mut matched_one: crate::engine::LabelsMap<usize> = Default::default();
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
                    filler = Sample {
                        labels: Labels::empty(),
                        t: s.t,
                        v,
                    };
                    &filler
                }
                None => continue,
            },
        };
        if m.card == Cardinality::OneToOne {
            let n = matched_one.entry(sig.clone()).or_default();
            *n += 1;
            if *n > 1 {
                return Err(EvalError::Execution("multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".to_string()));
            }
        }
        let (lv, rv) = if one_to_many {
            (other.v, s.v)
        } else {
            (s.v, other.v)
        };
        let (v, keep) = elem(op, lv, rv);
        let Some(v) = outcome(v, keep, return_bool) else {
            continue;
        };
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
        if return_bool {
            for n in [METRIC_NAME, "__type__", "__unit__"] {
                b.delete(n);
            }
        }
        out.push(Sample {
            labels: b.build(),
            t: s.t,
            v,
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
            let (lv, rv) = if one_to_many {
                (o.v, fill)
            } else {
                (fill, o.v)
            };
            let (v, keep) = elem(op, lv, rv);
            let Some(v) = outcome(v, keep, return_bool) else {
                continue;
            };
            // No sample on the missing side to take labels from: the matching signature of
            // the present one (name dropped; on/ignoring applied).
            out.push(Sample {
                labels: signature(&o.labels, m),
                t: o.t,
                v,
            });
        }
    }
    Ok(out)
}
