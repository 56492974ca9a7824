//! `info(v, {selector})`: enriches each series of `v` with the data labels of the info
//! series (`target_info` unless the selector names others) that share its identifying
//! labels (`instance`, `job`), as of the time the series was read.

use argus_model::labels::METRIC_NAME;
use argus_model::{Labels, MatchOp, Matcher, is_stale_nan};

use crate::ast::{Expr, at_time};
use crate::engine::{EvalError, Queryable, Result, Sample};

/// The labels that tie an info series to the series it describes.
const IDENTIFYING: [&str; 2] = ["instance", "job"];

/// The time a base expression's samples describe at evaluation time `t`: `@` and `offset`
/// of its selectors and subqueries move it, following the expression's first operand.
pub fn reference_time(expr: &Expr, t: i64, start: i64, end: i64) -> i64 {
    match expr {
        Expr::Vector(sel) | Expr::Matrix { selector: sel, .. } => {
            at_time(sel.at, t, start, end) - sel.offset_ms
        }
        Expr::Subquery {
            expr,
            offset_ms,
            at,
            ..
        } => reference_time(expr, at_time(*at, t, start, end) - offset_ms, start, end),
        Expr::Paren { expr, .. } | Expr::Unary { expr, .. } => reference_time(expr, t, start, end),
        Expr::Binary { lhs, .. } => reference_time(lhs, t, start, end),
        Expr::Aggregate { expr, .. } => reference_time(expr, t, start, end),
        Expr::Call { args, .. } => args
            .iter()
            .find(|a| !matches!(a, Expr::Number { .. } | Expr::String { .. }))
            .map_or(t, |a| reference_time(a, t, start, end)),
        Expr::Number { .. } | Expr::String { .. } => t,
    }
}

/// The info series selector: the given matchers, `__name__="target_info"` when none names
/// a metric, and only `*_info` metrics when the name matchers all exclude.
fn info_matchers(selector: Option<&Expr>) -> Vec<Matcher> {
    let mut matchers = match selector {
        Some(Expr::Vector(sel)) => sel.matchers.clone(),
        _ => Vec::new(),
    };
    let names: Vec<&Matcher> = matchers.iter().filter(|m| m.name == METRIC_NAME).collect();
    let positive = names
        .iter()
        .any(|m| matches!(m.op, MatchOp::Equal | MatchOp::RegexMatch));
    if names.is_empty() {
        matchers.push(Matcher::new(MatchOp::Equal, METRIC_NAME, "target_info").expect("valid"));
    } else if !positive {
        matchers.push(Matcher::new(MatchOp::RegexMatch, METRIC_NAME, ".+_info").expect("valid"));
    }
    matchers
}

/// Enriches `base` (evaluated at a step whose samples describe time `reference`).
pub fn enrich(
    store: &dyn Queryable,
    base: Vec<Sample>,
    selector: Option<&Expr>,
    reference: i64,
    lookback: i64,
) -> Result<Vec<Sample>> {
    let matchers = info_matchers(selector);
    let name_matchers: Vec<&Matcher> = matchers.iter().filter(|m| m.name == METRIC_NAME).collect();
    let data_matchers: Vec<&Matcher> = matchers.iter().filter(|m| m.name != METRIC_NAME).collect();
    let keeps_unmatched = data_matchers.iter().all(|m| m.matches(""));
    let mint = reference - lookback + 1;
    if let Some((labels, _)) = store
        .select_histograms(mint, reference, &matchers)
        .into_iter()
        .find(|(_, p)| !p.is_empty())
    {
        return Err(EvalError::Execution(format!(
            "this should be an info metric, with float samples: {labels}"
        )));
    }
    // The newest live sample of each info series in the lookback window.
    let infos: Vec<(Labels, i64)> = store
        .select(mint, reference, &matchers)
        .into_iter()
        .filter_map(|(labels, points)| {
            let &(ts, v) = points.last()?;
            (!is_stale_nan(v)).then_some((labels, ts))
        })
        .collect();
    let mut out = Vec::with_capacity(base.len());
    for mut s in base {
        // Info series themselves pass through.
        let name = s.labels.get(METRIC_NAME).unwrap_or("");
        if !name.is_empty() && name_matchers.iter().all(|m| m.matches(name)) {
            out.push(s);
            continue;
        }
        let same_identity = |info: &Labels| {
            IDENTIFYING
                .iter()
                .all(|l| info.get(l).unwrap_or("") == s.labels.get(l).unwrap_or(""))
        };
        // Per info metric, the series with the newest sample.
        let mut chosen: Vec<(&str, &Labels, i64)> = Vec::new();
        for (labels, ts) in infos.iter().filter(|(l, _)| same_identity(l)) {
            let metric = labels.metric_name();
            match chosen.iter_mut().find(|c| c.0 == metric) {
                Some(c) if *ts > c.2 => *c = (metric, labels, *ts),
                Some(_) => {}
                None => chosen.push((metric, labels, *ts)),
            }
        }
        if chosen.is_empty() {
            if keeps_unmatched {
                out.push(s);
            }
            continue;
        }
        let mut added: Vec<(String, String)> = Vec::new();
        for (_, info, _) in &chosen {
            for l in info.iter() {
                let wanted = if data_matchers.is_empty() {
                    l.name != METRIC_NAME && !IDENTIFYING.contains(&l.name)
                } else {
                    data_matchers.iter().any(|m| m.name == l.name)
                };
                if !wanted || l.value.is_empty() || s.labels.get(l.name).is_some() {
                    continue;
                }
                match added.iter().find(|a| a.0 == l.name) {
                    Some(a) if a.1 != l.value => {
                        return Err(EvalError::Execution(format!(
                            "conflicting label: {:?} has values {:?} and {:?}",
                            l.name, a.1, l.value
                        )));
                    }
                    Some(_) => {}
                    None => added.push((l.name.to_string(), l.value.to_string())),
                }
            }
        }
        let mut b = s.labels.to_builder();
        for (n, v) in &added {
            b.set(n, v);
        }
        s.labels = b.build();
        out.push(s);
    }
    Ok(out)
}
