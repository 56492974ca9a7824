//! Range queries evaluated a series at a time over all steps.
//!
//! Every node yields its value at every step of a grid at once ([`RVal`]). Selectors walk
//! each series' samples once with moving pointers; range functions over a selector or a
//! subquery slide a window along the series; the simple aggregations (`sum avg count min max
//! group stddev stdvar`) fold each input series into per-step accumulators of its group, and
//! over a selector or range function they stream the input without materializing it.
//!
//! Every other node is *bridged*: its children are evaluated here, and the per-step operator
//! of the instant engine (`binary::eval`, `aggregate::eval`, functions) runs on each step's
//! slice of them — so its semantics are the instant engine's by construction. Nodes whose
//! arguments are range vectors this module does not build (and `timestamp`, which reads
//! sample times) are evaluated step by step by the instant engine.

use argus_model::{Labels, is_stale_nan};

use super::{Ctx, EvalError, LabelsMap, Result, Sample, Series, Value, drop_name, without_stale};
use crate::aggregate::Running;
use crate::ast::{AggOp, AtModifier, Expr, ValueType, VectorSelector};
use crate::functions::{direct_keeps_name, direct_range_value, is_direct_range};

/// Evaluation times `start + i * step` for `i < n`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Grid {
    pub start: i64,
    pub step: i64,
    pub n: usize,
}

impl Grid {
    pub fn t(&self, i: usize) -> i64 {
        self.start + i as i64 * self.step
    }
}

/// One series' value at each step of a grid (`None`: no sample at that step).
#[derive(Debug, Clone)]
pub(super) struct StepSeries {
    pub labels: Labels,
    pub vals: Vec<Option<f64>>,
    /// As [`Sample::drop_name`].
    pub drop_name: bool,
}

/// Called with each series of a node streamed without being materialized: its labels,
/// whether its name is marked for removal, its value at each step.
type SeriesSink<'f> = dyn FnMut(&Labels, bool, &[Option<f64>]) -> Result<()> + 'f;

/// A node's value at every step of a grid.
#[derive(Debug)]
pub(super) enum RVal {
    Scalar(Vec<f64>),
    /// Label sets may repeat (as intermediate instant vectors may hold duplicates at one
    /// step); two entries with equal labels never both have a value at the same step.
    Vector(Vec<StepSeries>),
    String(String),
}

/// Collects per-step values into series, keeping duplicates of one step apart.
struct Assembler {
    n: usize,
    /// Most series × steps cells this may hold (`--query.max-samples`).
    budget: usize,
    index: LabelsMap<Vec<usize>>,
    series: Vec<StepSeries>,
    scalar: Option<Vec<f64>>,
    string: Option<String>,
}

impl Assembler {
    fn new(n: usize, budget: usize) -> Self {
        Self {
            n,
            budget,
            index: LabelsMap::default(),
            series: Vec::new(),
            scalar: None,
            string: None,
        }
    }

    fn push(&mut self, i: usize, value: Value) -> Result<()> {
        match value {
            Value::Scalar { v, .. } => {
                self.scalar.get_or_insert_with(|| vec![f64::NAN; self.n])[i] = v;
            }
            Value::String { v, .. } => self.string = Some(v),
            Value::Vector(samples) => {
                for s in samples {
                    self.put(i, s.labels, s.drop_name, s.v)?;
                }
            }
            Value::Matrix(_) => {
                return Err(EvalError::Execution(
                    "unexpected range vector in range evaluation".into(),
                ));
            }
        }
        Ok(())
    }

    fn put(&mut self, i: usize, labels: Labels, drop_name: bool, v: f64) -> Result<()> {
        let slots = self.index.entry(labels.clone()).or_default();
        if let Some(&k) = slots
            .iter()
            .find(|&&k| self.series[k].drop_name == drop_name && self.series[k].vals[i].is_none())
        {
            self.series[k].vals[i] = Some(v);
            return Ok(());
        }
        within_budget(self.series.len() + 1, self.n, self.budget)?;
        let mut vals = vec![None; self.n];
        vals[i] = Some(v);
        slots.push(self.series.len());
        self.series.push(StepSeries {
            labels,
            vals,
            drop_name,
        });
        Ok(())
    }

    fn finish(self, ty: ValueType) -> RVal {
        match (self.scalar, self.string) {
            (Some(v), _) => RVal::Scalar(v),
            (None, Some(s)) => RVal::String(s),
            (None, None) if ty == ValueType::Scalar => RVal::Scalar(vec![f64::NAN; self.n]),
            (None, None) => RVal::Vector(self.series),
        }
    }
}

/// Series whose labels became equal when their names were removed may stand side by side
/// only where they do not both have a value at one step (Prometheus merges those); a step
/// where they do is the "same labelset" error.
fn check_step_duplicates(series: &[StepSeries]) -> Result<()> {
    let mut by_labels: LabelsMap<Vec<usize>> = LabelsMap::default();
    for (k, s) in series.iter().enumerate() {
        by_labels.entry(s.labels.clone()).or_default().push(k);
    }
    for same in by_labels.values().filter(|v| v.len() > 1) {
        let steps = series[same[0]].vals.len();
        for i in 0..steps {
            if same
                .iter()
                .filter(|&&k| series[k].vals[i].is_some())
                .count()
                > 1
            {
                return Err(super::same_labelset());
            }
        }
    }
    Ok(())
}

/// Values are kept densely (one slot per step), so `series × steps` is what a node holds in
/// memory; it is bounded by `--query.max-samples` like the samples Prometheus holds.
fn within_budget(series: usize, steps: usize, budget: usize) -> Result<()> {
    if series.saturating_mul(steps) > budget {
        return Err(EvalError::TooManySamples);
    }
    Ok(())
}

impl RVal {
    /// The value at step `i`, as the instant engine passes it between operators.
    fn at(&self, i: usize, t: i64) -> Value {
        match self {
            RVal::Scalar(v) => Value::Scalar { t, v: v[i] },
            RVal::String(s) => Value::String { t, v: s.clone() },
            RVal::Vector(series) => Value::Vector(
                series
                    .iter()
                    .filter_map(|s| {
                        s.vals[i].map(|v| Sample::float(s.labels.clone(), t, v).marked(s.drop_name))
                    })
                    .collect(),
            ),
        }
    }
}

/// `name(points[window])` at every step: windows `(ts_i - range, ts_i]` with
/// `ts_i = grid.t(i) - offset` (or one fixed `ts` for every step under `@`).
fn slide(
    name: &str,
    points: &[(i64, f64)],
    range: i64,
    fixed: Option<i64>,
    offset: i64,
    grid: &Grid,
    vals: &mut [Option<f64>],
) -> bool {
    let value = |window: &[(i64, f64)], ts: i64| {
        if window.is_empty() {
            None
        } else {
            direct_range_value(name, window, range, ts)
        }
    };
    let mut any = false;
    if let Some(ts) = fixed {
        let lo = points.partition_point(|p| p.0 <= ts - range);
        let hi = points.partition_point(|p| p.0 <= ts);
        let v = value(&points[lo..hi.max(lo)], ts);
        vals.iter_mut().for_each(|x| *x = v);
        return v.is_some();
    }
    // A counter's windows overlap: count its resets as the window's edges move over them
    // (`resets_to_hi`: resets at samples 1..=hi-1; `resets_to_lo`: at 1..=lo), so a window
    // without any, samples lo+1..hi-1, skips looking for them.
    let counter = matches!(name, "rate" | "increase");
    let reset = |i: usize| counter && i > 0 && crate::functions::reset_at(points, &[], i);
    let (mut resets_to_hi, mut resets_to_lo) = (0usize, 0usize);
    let (mut lo, mut hi) = (0, 0);
    for (i, slot) in vals.iter_mut().enumerate() {
        let ts = grid.t(i) - offset;
        while hi < points.len() && points[hi].0 <= ts {
            resets_to_hi += usize::from(reset(hi));
            hi += 1;
        }
        while lo < points.len() && points[lo].0 <= ts - range {
            lo += 1;
            resets_to_lo += usize::from(lo < points.len() && reset(lo));
        }
        *slot = if counter && hi > lo + 1 && resets_to_hi == resets_to_lo {
            let window = &points[lo..hi];
            crate::functions::counter_window_without_resets(window, range, ts, name == "rate")
        } else {
            value(&points[lo..hi.max(lo)], ts)
        };
        any |= slot.is_some();
    }
    any
}

impl Ctx<'_> {
    fn fixed_time(&self, at: Option<AtModifier>) -> Option<i64> {
        at.map(|a| a.time(self.start, self.end))
    }

    /// Calls `f` with every series of a selector and its value at each step (series without
    /// any value are skipped).
    fn each_selected(
        &self,
        sel: &VectorSelector,
        grid: &Grid,
        f: &mut SeriesSink<'_>,
    ) -> Result<()> {
        let Some(data) = self.data.get(&(sel.span.start, sel.span.end)) else {
            return Ok(());
        };
        let lookback = self.engine.opts.lookback_ms;
        let latest = |points: &[(i64, f64)], idx: usize, ts: i64| {
            if idx == 0 {
                return None;
            }
            let (pt, pv) = points[idx - 1];
            (pt > ts - lookback && !is_stale_nan(pv)).then_some(pv)
        };
        let mut vals = vec![None; grid.n];
        let mut scratch = Vec::new();
        for (k, (labels, points)) in data.iter().enumerate() {
            if k % 1024 == 1023 {
                self.check_limits()?;
            }
            let points = points.read(&mut scratch);
            let mut any = false;
            if let Some(at) = self.fixed_time(sel.at) {
                let ts = at - sel.offset_ms;
                let v = latest(points, points.partition_point(|p| p.0 <= ts), ts);
                vals.iter_mut().for_each(|x| *x = v);
                any = v.is_some();
            } else {
                let mut idx = 0;
                for (i, slot) in vals.iter_mut().enumerate() {
                    let ts = grid.t(i) - sel.offset_ms;
                    while idx < points.len() && points[idx].0 <= ts {
                        idx += 1;
                    }
                    *slot = latest(points, idx, ts);
                    any |= slot.is_some();
                }
            }
            if any {
                f(labels, false, &vals)?;
            }
        }
        Ok(())
    }

    /// Like [`Self::each_selected`] for `name(selector[range])`, with the output labels.
    /// A selector left unread at load is read in label order when `ordered`, otherwise in
    /// any order the store finds cheaper; the result says whether it was read unordered.
    fn each_ranged(
        &self,
        name: &str,
        sel: &VectorSelector,
        range: i64,
        grid: &Grid,
        ordered: bool,
        f: &mut SeriesSink<'_>,
    ) -> Result<bool> {
        let key = (sel.span.start, sel.span.end);
        if let Some(&window) = self.deferred.get(&key) {
            self.each_ranged_read(name, sel, range, grid, window, ordered, f)?;
            return Ok(!ordered);
        }
        let Some(data) = self.data.get(&key) else {
            return Ok(false);
        };
        let keep_name = direct_keeps_name(name);
        let fixed = self.fixed_time(sel.at).map(|t| t - sel.offset_ms);
        let mut vals = vec![None; grid.n];
        // Without delayed name removal, Prometheus refuses the function's result when
        // removing the names made two of its series equal.
        let mut seen = (!keep_name
            && !self.engine.opts.delayed_name_removal
            && super::names_may_collide(data.iter().map(|(l, _)| (l, true))))
        .then(super::LabelsSet::default);
        let mut scratch = Vec::new();
        for (k, (labels, points)) in data.iter().enumerate() {
            if k % 1024 == 1023 {
                self.check_limits()?;
            }
            let points = without_stale(points.read(&mut scratch));
            if slide(name, &points, range, fixed, sel.offset_ms, grid, &mut vals) {
                if matches!(name, "rate" | "increase") {
                    crate::functions::check_counter_name(
                        labels,
                        &mut self.shared_annos.borrow_mut(),
                        sel.span,
                    );
                }
                // The streamed series reach their consumer without passing a node's end,
                // where names are otherwise settled: settle here.
                if keep_name {
                    f(labels, false, &vals)?;
                } else if self.engine.opts.delayed_name_removal {
                    f(labels, true, &vals)?;
                } else {
                    let labels = drop_name(labels);
                    if let Some(seen) = &mut seen
                        && !seen.insert(labels.clone())
                    {
                        return Err(super::same_labelset());
                    }
                    f(&labels, false, &vals)?;
                }
            }
        }
        Ok(false)
    }

    /// [`Self::each_ranged`] for a selector left unread at load: the store hands over one
    /// series at a time, so the query never holds every series' samples or chunks. Asks
    /// for a restart without this (`Ctx::restart`) when a series has histogram samples or
    /// when, names being removed, a second metric name shows up (the names could collide,
    /// which the loaded path checks over all series up front).
    #[allow(clippy::too_many_arguments)]
    fn each_ranged_read(
        &self,
        name: &str,
        sel: &VectorSelector,
        range: i64,
        grid: &Grid,
        (mint, maxt): (i64, i64),
        ordered: bool,
        f: &mut SeriesSink<'_>,
    ) -> Result<()> {
        let keep_name = direct_keeps_name(name);
        let delayed = self.engine.opts.delayed_name_removal;
        let fixed = self.fixed_time(sel.at).map(|t| t - sel.offset_ms);
        let budget = self.engine.opts.max_samples;
        let mut vals = vec![None; grid.n];
        let mut first: Option<Labels> = None;
        let (mut read, mut visited) = (0usize, 0usize);
        let mut outcome = Ok(());
        let restart = || self.restart_unstreamed();
        // Raised after the read, so in name order whatever order the series came in.
        let mut counter_checks = crate::functions::CounterNames::default();
        let checks_counters = matches!(name, "rate" | "increase");
        self.store.visit_floats(
            mint,
            maxt,
            &sel.matchers,
            ordered,
            &mut |labels, points, hists| {
                use std::ops::ControlFlow::{Break, Continue};
                if let Err(e) = self.engine.check_visit(&mut visited) {
                    outcome = Err(e);
                    return Break(());
                }
                if hists {
                    outcome = restart();
                    return Break(());
                }
                read += points.len();
                if self.loaded.get() + read > budget {
                    outcome = Err(EvalError::TooManySamples);
                    return Break(());
                }
                if !keep_name && !delayed {
                    match &first {
                        None => first = Some(labels.clone()),
                        Some(f) if f.metric_name() != labels.metric_name() => {
                            outcome = restart();
                            return Break(());
                        }
                        Some(_) => {}
                    }
                }
                let points = without_stale(points);
                if !slide(name, &points, range, fixed, sel.offset_ms, grid, &mut vals) {
                    return Continue(());
                }
                if checks_counters {
                    counter_checks.note(labels);
                }
                let sent = if keep_name {
                    f(labels, false, &vals)
                } else if delayed {
                    f(labels, true, &vals)
                } else {
                    f(&drop_name(labels), false, &vals)
                };
                match sent {
                    Ok(()) => Continue(()),
                    Err(e) => {
                        outcome = Err(e);
                        Break(())
                    }
                }
            },
        );
        self.loaded.set(self.loaded.get() + read);
        self.engine.record(|s| s.samples += read);
        for labels in counter_checks.into_series() {
            let annos = &mut self.shared_annos.borrow_mut();
            crate::functions::check_counter_name(&labels, annos, sel.span);
        }
        outcome
    }

    /// Evaluates `expr` at every step of `grid`.
    pub(super) fn eval_range(&mut self, expr: &Expr, grid: &Grid) -> Result<RVal> {
        self.check_limits()?;
        // Every value here is held densely, one slot per step: a grid of more steps than
        // the sample limit cannot hold even a scalar (the caller may go step by step).
        within_budget(1, grid.n, self.engine.opts.max_samples)?;
        let mut value = self.eval_range_node(expr, grid)?;
        // Without delayed name removal, names marked for removal go at the node's end.
        if let RVal::Vector(series) = &mut value
            && !self.engine.opts.delayed_name_removal
        {
            let collide = super::names_may_collide(series.iter().map(|s| (&s.labels, s.drop_name)));
            for s in series.iter_mut() {
                super::settle(&mut s.labels, &mut s.drop_name);
            }
            if collide {
                check_step_duplicates(series)?;
            }
        }
        Ok(value)
    }

    fn eval_range_node(&mut self, expr: &Expr, grid: &Grid) -> Result<RVal> {
        match expr {
            Expr::Number { value, .. } => Ok(RVal::Scalar(vec![*value; grid.n])),
            Expr::String { value, .. } => Ok(RVal::String(value.clone())),
            Expr::Paren { expr, .. } => self.eval_range(expr, grid),
            Expr::Vector(sel) if sel.smoothed => self.step_by_step(expr, grid),
            Expr::Vector(sel) => {
                let mut out = Vec::new();
                let budget = self.engine.opts.max_samples;
                self.each_selected(sel, grid, &mut |labels, drop_name, vals| {
                    within_budget(out.len() + 1, grid.n, budget)?;
                    out.push(StepSeries {
                        labels: labels.clone(),
                        vals: vals.to_vec(),
                        drop_name,
                    });
                    Ok(())
                })?;
                Ok(RVal::Vector(out))
            }
            Expr::Unary { negate, expr, .. } => match self.eval_range(expr, grid)? {
                RVal::Scalar(v) if *negate => Ok(RVal::Scalar(v.into_iter().map(|x| -x).collect())),
                RVal::Vector(series) if *negate => Ok(RVal::Vector(
                    series
                        .into_iter()
                        .map(|s| StepSeries {
                            labels: s.labels,
                            vals: s.vals.into_iter().map(|v| v.map(|x| -x)).collect(),
                            drop_name: true,
                        })
                        .collect(),
                )),
                RVal::String(_) => Err(EvalError::Execution("unary on a non-numeric value".into())),
                other => Ok(other),
            },
            Expr::Call { func, args, .. } if args.len() == 1 && is_direct_range(func.name) => {
                match &args[0] {
                    Expr::Matrix { selector, .. } if selector.anchored || selector.smoothed => {
                        self.step_by_step(expr, grid)
                    }
                    Expr::Matrix {
                        selector, range_ms, ..
                    } => {
                        let mut out = Vec::new();
                        let budget = self.engine.opts.max_samples;
                        self.each_ranged(
                            func.name,
                            selector,
                            *range_ms,
                            grid,
                            true,
                            &mut |l, drop_name, v| {
                                within_budget(out.len() + 1, grid.n, budget)?;
                                out.push(StepSeries {
                                    labels: l.clone(),
                                    vals: v.to_vec(),
                                    drop_name,
                                });
                                Ok(())
                            },
                        )?;
                        Ok(RVal::Vector(out))
                    }
                    Expr::Subquery { .. } => self.subquery_function(func.name, &args[0], grid),
                    _ => self.step_by_step(expr, grid),
                }
            }
            Expr::Call { func, args, .. } => {
                let readable = args.iter().all(|a| a.value_type() != ValueType::Matrix);
                if !readable || matches!(func.name, "timestamp" | "start_timestamp" | "info") {
                    return self.step_by_step(expr, grid);
                }
                let mut children = Vec::with_capacity(args.len());
                for a in args {
                    children.push(self.eval_range(a, grid)?);
                }
                self.bridge(expr, grid, |ctx, i, t| {
                    let values = children.iter().map(|c| c.at(i, t)).collect();
                    ctx.apply_call(func.name, args, values, t)
                })
            }
            Expr::Binary {
                op,
                lhs,
                rhs,
                matching,
                return_bool,
                span,
            } => {
                let l = self.eval_range(lhs, grid)?;
                let r = self.eval_range(rhs, grid)?;
                self.bridge(expr, grid, |ctx, i, t| {
                    crate::binary::eval(
                        *op,
                        l.at(i, t),
                        r.at(i, t),
                        matching.as_ref(),
                        *return_bool,
                        t,
                        (&mut ctx.annos, *span),
                    )
                })
            }
            Expr::Aggregate {
                op,
                expr: inner,
                param: None,
                grouping,
                without,
                ..
            } if Running::new(*op, 0.0).is_some() => {
                self.simple_aggregate(*op, inner, grouping, *without, grid)
            }
            Expr::Aggregate {
                op,
                expr: inner,
                param,
                grouping,
                without,
                span,
            } => {
                let spans = crate::aggregate::Spans {
                    whole: *span,
                    param: param.as_ref().map_or(*span, |p| p.span()),
                    inner: inner.span(),
                };
                let p = match param {
                    Some(p) => Some(self.eval_range(p, grid)?),
                    None => None,
                };
                let v = self.eval_range(inner, grid)?;
                self.bridge(expr, grid, |ctx, i, t| {
                    let Value::Vector(vec) = v.at(i, t) else {
                        return Err(EvalError::Execution("aggregation over a non-vector".into()));
                    };
                    let p = p.as_ref().map(|p| p.at(i, t));
                    crate::aggregate::eval(
                        *op,
                        vec,
                        p,
                        grouping,
                        *without,
                        t,
                        (&mut ctx.annos, spans),
                    )
                })
            }
            Expr::Matrix { .. } | Expr::Subquery { .. } => self.step_by_step(expr, grid),
        }
    }

    /// Runs a per-step operator on each step and collects its answers.
    fn bridge(
        &mut self,
        expr: &Expr,
        grid: &Grid,
        mut op: impl FnMut(&mut Self, usize, i64) -> Result<Value>,
    ) -> Result<RVal> {
        let mut out = Assembler::new(grid.n, self.engine.opts.max_samples);
        for i in 0..grid.n {
            self.check_limits()?;
            let t = grid.t(i);
            let v = op(self, i, t)?;
            out.push(i, v)?;
        }
        Ok(out.finish(expr.value_type()))
    }

    /// The instant engine at every step.
    fn step_by_step(&mut self, expr: &Expr, grid: &Grid) -> Result<RVal> {
        self.bridge(expr, grid, |ctx, _, t| ctx.eval(expr, t))
    }

    /// `sum|avg|count|min|max|group|stddev|stdvar [by|without (...)] (inner)`: each input
    /// series is folded into its group's per-step accumulators as it is produced.
    fn simple_aggregate(
        &mut self,
        op: AggOp,
        inner: &Expr,
        grouping: &[String],
        without: bool,
        grid: &Grid,
    ) -> Result<RVal> {
        let mut grouper = crate::aggregate::Grouper::new(grouping, without);
        // Per group: whether an input's name was marked for removal (it matters when the
        // grouping keeps the name), its accumulators.
        let mut groups: Vec<(bool, Vec<Option<Running>>)> = Vec::new();
        // To put the groups back in label-ordered input's order after an unordered read.
        let mut first_seen = crate::aggregate::FirstSeen::new(grouping, without);
        let budget = self.engine.opts.max_samples;
        let mut fold = |labels: &Labels, drop_name: bool, vals: &[Option<f64>]| -> Result<()> {
            let g = grouper.group(labels);
            if g == groups.len() {
                within_budget(groups.len() + 1, grid.n, budget)?;
                groups.push((false, vec![None; grid.n]));
            }
            first_seen.saw(g, labels);
            groups[g].0 |= drop_name;
            let accs = &mut groups[g].1;
            for (acc, v) in accs.iter_mut().zip(vals) {
                if let Some(v) = *v {
                    match acc {
                        Some(a) => a.add(v),
                        None => *acc = Running::new(op, v),
                    }
                }
            }
            Ok(())
        };
        // Whether the input was read in any order (the store's cheapest, as for instant
        // queries; see `Engine::stream_aggregate`).
        let mut unordered = false;
        match strip_parens(inner) {
            Expr::Vector(sel) if !sel.smoothed => self.each_selected(sel, grid, &mut fold)?,
            Expr::Call { func, args, .. }
                if args.len() == 1
                    && is_direct_range(func.name)
                    && matches!(&args[0], Expr::Matrix { selector, .. }
                        if !selector.anchored && !selector.smoothed) =>
            {
                let Expr::Matrix {
                    selector, range_ms, ..
                } = &args[0]
                else {
                    return Err(EvalError::Execution("internal: matrix expected".into()));
                };
                let name = func.name;
                unordered = self.each_ranged(name, selector, *range_ms, grid, false, &mut fold)?;
            }
            other => match self.eval_range(other, grid)? {
                RVal::Vector(series) => {
                    for s in &series {
                        fold(&s.labels, s.drop_name, &s.vals)?;
                    }
                }
                _ => {
                    return Err(EvalError::Execution("aggregation over a non-vector".into()));
                }
            },
        }
        let mut out: Vec<StepSeries> = grouper
            .keys
            .into_iter()
            .zip(groups)
            .map(|(labels, (drop_name, accs))| StepSeries {
                labels,
                vals: accs.iter().map(|a| a.map(|a| a.value())).collect(),
                drop_name,
            })
            .collect();
        if unordered {
            out = first_seen.restore(out);
        }
        Ok(RVal::Vector(out))
    }

    /// `name(inner[range:step])` for a range function: the inner expression is evaluated
    /// once on the subquery's step grid covering every step's window, then windows slide
    /// over it. Falls back to per-step evaluation under `@` or when the steps' windows are
    /// far apart (the shared grid would hold mostly unused points).
    fn subquery_function(&mut self, name: &str, sub: &Expr, grid: &Grid) -> Result<RVal> {
        let Expr::Subquery {
            expr: inner,
            range_ms,
            step_ms,
            offset_ms,
            at,
            ..
        } = sub
        else {
            return Err(EvalError::Execution("internal: subquery expected".into()));
        };
        let call = Expr::Call {
            func: crate::parser::function(name)
                .ok_or_else(|| EvalError::Execution(format!("unknown function {name}")))?,
            args: vec![sub.clone()],
            span: sub.span(),
        };
        let sstep = step_ms.unwrap_or(self.interval).max(1);
        let (range, offset) = (*range_ms, *offset_ms);
        let first_base = grid.t(0) - offset;
        let last_base = grid.t(grid.n - 1) - offset;
        // Multiples of the subquery step in (first_base - range, last_base].
        let first = (first_base - range).div_euclid(sstep) * sstep + sstep;
        let last = last_base.div_euclid(sstep) * sstep;
        let per_window = (range / sstep + 1) as usize;
        // Step by step, the subquery would read its deferred selectors from the store at
        // every step: a query that left any starts again with everything loaded instead.
        let by_steps = |ctx: &mut Self| {
            if ctx.deferred.is_empty() {
                ctx.step_by_step(&call, grid)
            } else {
                ctx.restart_unstreamed()
            }
        };
        if at.is_some() || last < first {
            return by_steps(self);
        }
        let inner_n = ((last - first) / sstep + 1) as usize;
        if inner_n > grid.n.saturating_mul(per_window) {
            return by_steps(self);
        }
        let inner_grid = Grid {
            start: first,
            step: sstep,
            n: inner_n,
        };
        let series = match self.subquery_points(inner, &inner_grid) {
            // The shared grid would not fit densely: evaluate each step's window on its own.
            Err(EvalError::TooManySamples) => return by_steps(self),
            other => other?,
        };
        let keep_name = direct_keeps_name(name);
        let mut out = Vec::new();
        let mut vals = vec![None; grid.n];
        for s in series {
            if slide(name, &s.points, range, None, offset, grid, &mut vals) {
                within_budget(out.len() + 1, grid.n, self.engine.opts.max_samples)?;
                out.push(StepSeries {
                    labels: s.labels,
                    vals: vals.clone(),
                    drop_name: s.drop_name || !keep_name,
                });
            }
        }
        Ok(RVal::Vector(out))
    }
}

impl Ctx<'_> {
    /// A subquery's samples: `inner` evaluated on the subquery's step grid, one series per
    /// label set (first-seen order) with its points in time order.
    pub(super) fn subquery_points(&mut self, inner: &Expr, grid: &Grid) -> Result<Vec<Series>> {
        if grid.n == 0 {
            return Ok(Vec::new());
        }
        let series = match self.eval_range(inner, grid)? {
            RVal::Vector(s) => s,
            RVal::Scalar(v) => vec![StepSeries {
                labels: Labels::empty(),
                vals: v.into_iter().map(Some).collect(),
                drop_name: false,
            }],
            RVal::String(_) => {
                return Err(EvalError::Execution("subquery over a non-vector".into()));
            }
        };
        // Series with equal labels (duplicates at different steps) form one subquery series.
        let mut index: LabelsMap<usize> = LabelsMap::default();
        let mut out: Vec<Series> = Vec::new();
        for s in series {
            let k = *index.entry(s.labels.clone()).or_insert_with(|| {
                out.push(Series::floats(s.labels.clone(), Vec::new()));
                out.len() - 1
            });
            out[k].drop_name |= s.drop_name;
            let points = &mut out[k].points;
            let merged = !points.is_empty();
            points.extend(
                s.vals
                    .iter()
                    .enumerate()
                    .filter_map(|(j, v)| v.map(|v| (grid.t(j), v))),
            );
            if merged {
                points.sort_by_key(|p| p.0);
            }
        }
        Ok(out)
    }
}

fn strip_parens(e: &Expr) -> &Expr {
    match e {
        Expr::Paren { expr, .. } => strip_parens(expr),
        other => other,
    }
}

#[cfg(test)]
mod slide_tests {
    use super::{Grid, slide};
    use proptest::prelude::*;

    /// Counters with resets, repeated values and NaN; sample times with gaps.
    fn series() -> impl Strategy<Value = Vec<(i64, f64)>> {
        prop::collection::vec((1i64..40_000, 0u8..10, 0.0f64..50.0), 0..60).prop_map(|steps| {
            let (mut t, mut v) = (0i64, 0.0f64);
            steps
                .into_iter()
                .map(|(dt, kind, x)| {
                    t += dt;
                    v = match kind {
                        0 => x / 10.0, // a reset
                        1 => f64::NAN, // not a number
                        2 => v,        // unchanged
                        _ => v + x,    // growth
                    };
                    (t, v)
                })
                .collect()
        })
    }

    proptest! {
        /// Sliding `rate`/`increase` windows (which skip looking for resets where the
        /// series' reset count says there are none) answer bit for bit what each window
        /// computed on its own answers.
        #[test]
        fn sliding_counter_windows_match_each_window(
            points in series(),
            range in 1i64..200_000,
            step in 1i64..60_000,
            n in 1usize..80,
            offset in -30_000i64..30_000,
        ) {
            let grid = Grid { start: 0, step, n };
            for name in ["rate", "increase", "delta"] {
                let mut vals = vec![None; n];
                let any = slide(name, &points, range, None, offset, &grid, &mut vals);
                let want: Vec<Option<f64>> = (0..n)
                    .map(|i| {
                        let ts = grid.t(i) - offset;
                        let lo = points.partition_point(|p| p.0 <= ts - range);
                        let hi = points.partition_point(|p| p.0 <= ts).max(lo);
                        let window = &points[lo..hi];
                        if window.is_empty() {
                            None
                        } else {
                            crate::functions::direct_range_value(name, window, range, ts)
                        }
                    })
                    .collect();
                let bits = |v: &[Option<f64>]| -> Vec<Option<u64>> {
                    v.iter().map(|x| x.map(f64::to_bits)).collect()
                };
                prop_assert_eq!(bits(&vals), bits(&want), "{}", name);
                prop_assert_eq!(any, want.iter().any(Option::is_some));
            }
        }
    }
}
