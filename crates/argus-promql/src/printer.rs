//! Printing expressions back to PromQL: the canonical one-line form (Prometheus's `String()`,
//! used by the @-invariance check and `parse_query`) and the pretty form of
//! `/api/v1/format_query` (split and indented once a node is wider than 100 characters).
//! Duration expressions print as written (`[26m + 4m]`, parentheses where they were given),
//! as Prometheus prints them.

use std::fmt::Write;

use argus_model::{Duration, Matcher, gofmt};

use crate::ast::*;

/// Nodes wider than this are split over several lines by [`pretty`].
const MAX_LINE: usize = 100;

/// Prometheus's canonical one-line form.
pub fn canonical(expr: &Expr) -> String {
    let mut out = String::new();
    write_expr(&mut out, expr);
    out
}

/// Prometheus's `Prettify`: the canonical form, split over lines and indented by two spaces
/// per level for nodes longer than 100 characters.
pub fn pretty(expr: &Expr) -> String {
    let mut out = String::new();
    pretty_into(&mut out, expr, 0);
    out
}

fn indent(out: &mut String, level: usize) {
    for _ in 0..level {
        out.push_str("  ");
    }
}

/// Appends `expr` pretty-printed at `level`. Each node is measured by printing it flat only
/// until it passes [`MAX_LINE`], and everything is written into one buffer, so a deep query
/// costs no more than its output.
fn pretty_into(out: &mut String, expr: &Expr, level: usize) {
    let mut flat = String::new();
    write_expr_upto(&mut flat, expr, MAX_LINE);
    let split = flat.len() > MAX_LINE;
    match expr {
        Expr::Aggregate {
            op,
            param,
            expr: inner,
            grouping,
            without,
            ..
        } if split => {
            indent(out, level);
            write_agg_op(out, *op, grouping, *without);
            out.push_str("(\n");
            if let Some(p) = param {
                pretty_into(out, p, level + 1);
                out.push_str(",\n");
            }
            pretty_into(out, inner, level + 1);
            out.push('\n');
            indent(out, level);
            out.push(')');
        }
        Expr::Binary {
            op,
            lhs,
            rhs,
            matching,
            return_bool,
            ..
        } if split => {
            pretty_into(out, lhs, level + 1);
            out.push('\n');
            indent(out, level);
            out.push_str(op.as_str());
            if *return_bool {
                out.push_str(" bool");
            }
            write_matching(out, matching.as_ref());
            out.push('\n');
            pretty_into(out, rhs, level + 1);
        }
        Expr::Call { func, args, .. } if split => {
            indent(out, level);
            out.push_str(func.name);
            out.push_str("(\n");
            for (i, a) in args.iter().enumerate() {
                if i > 0 {
                    out.push_str(",\n");
                }
                pretty_into(out, a, level + 1);
            }
            out.push('\n');
            indent(out, level);
            out.push(')');
        }
        Expr::Paren { expr, .. } if split => {
            indent(out, level);
            out.push_str("(\n");
            pretty_into(out, expr, level + 1);
            out.push('\n');
            indent(out, level);
            out.push(')');
        }
        // As upstream: a subquery indents only through its inner expression.
        Expr::Subquery { expr: inner, .. } if split => {
            pretty_into(out, inner, level);
            write_subquery_suffix(out, expr);
        }
        Expr::Subquery { .. } => out.push_str(&flat),
        Expr::Unary { negate, expr, .. } => {
            indent(out, level);
            out.push(if *negate { '-' } else { '+' });
            // The operand follows the sign on its line, without its indentation.
            let at = out.len();
            pretty_into(out, expr, level);
            let blank = out[at..].len() - out[at..].trim_start().len();
            out.drain(at..at + blank);
            let kept = out.trim_end().len();
            out.truncate(kept);
        }
        _ => {
            indent(out, level);
            out.push_str(&flat);
        }
    }
}

fn write_labels(out: &mut String, names: &[String]) {
    for (i, n) in names.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        if argus_model::labels::is_valid_label_name(n) {
            out.push_str(n);
        } else {
            out.push_str(&gofmt::quote(n));
        }
    }
}

fn write_matching(out: &mut String, matching: Option<&VectorMatching>) {
    let Some(vm) = matching else { return };
    let grouped = matches!(vm.card, Cardinality::ManyToOne | Cardinality::OneToMany);
    if !vm.labels.is_empty() || vm.on || grouped {
        out.push_str(if vm.on { " on (" } else { " ignoring (" });
        write_labels(out, &vm.labels);
        out.push(')');
    }
    if grouped {
        out.push_str(if vm.card == Cardinality::ManyToOne {
            " group_left ("
        } else {
            " group_right ("
        });
        write_labels(out, &vm.include);
        out.push(')');
    }
    match (vm.fill_left, vm.fill_right) {
        (None, None) => {}
        (Some(l), Some(r)) if l.to_bits() == r.to_bits() => {
            let _ = write!(out, " fill ({})", gofmt::format_g(l));
        }
        (l, r) => {
            if let Some(l) = l {
                let _ = write!(out, " fill_left ({})", gofmt::format_g(l));
            }
            if let Some(r) = r {
                let _ = write!(out, " fill_right ({})", gofmt::format_g(r));
            }
        }
    }
}

fn matcher_string(m: &Matcher) -> String {
    let name = if argus_model::labels::is_valid_label_name(&m.name) {
        m.name.clone()
    } else {
        gofmt::quote(&m.name)
    };
    format!("{name}{}{}", m.op.as_str(), gofmt::quote(&m.value))
}

fn write_duration(out: &mut String, ms: i64) {
    let _ = write!(out, "{}", Duration::from_millis(ms));
}

fn write_dur_expr(out: &mut String, e: &DurExpr) {
    match e {
        DurExpr::Lit(secs) => {
            let ms = secs * 1000.0;
            if ms.fract() == 0.0 && ms.abs() < 9e15 {
                write_duration(out, ms as i64);
            } else {
                out.push_str(&gofmt::format_f(*secs));
            }
        }
        DurExpr::Num(v) => out.push_str(&gofmt::format_f(*v)),
        DurExpr::Spanned(_, inner) => write_dur_expr(out, inner),
        DurExpr::Paren(inner) => {
            out.push('(');
            write_dur_expr(out, inner);
            out.push(')');
        }
        DurExpr::Step => out.push_str("step()"),
        DurExpr::Range => out.push_str("range()"),
        DurExpr::Neg(inner) => {
            out.push('-');
            write_dur_expr(out, inner);
        }
        DurExpr::MinOf(a, b) | DurExpr::MaxOf(a, b) => {
            out.push_str(if matches!(e, DurExpr::MinOf(..)) {
                "min_of("
            } else {
                "max_of("
            });
            write_dur_expr(out, a);
            out.push_str(", ");
            write_dur_expr(out, b);
            out.push(')');
        }
        DurExpr::Bin(op, a, b) => {
            write_dur_expr(out, a);
            let _ = write!(out, " {} ", op.as_str());
            write_dur_expr(out, b);
        }
    }
}

fn write_offset(out: &mut String, ms: i64, expr: Option<&DurExpr>) {
    match expr {
        Some(e) => {
            out.push_str(" offset ");
            write_dur_expr(out, e);
        }
        None if ms > 0 => {
            out.push_str(" offset ");
            write_duration(out, ms);
        }
        None if ms < 0 => {
            out.push_str(" offset -");
            write_duration(out, -ms);
        }
        None => {}
    }
}

fn write_at(out: &mut String, at: Option<AtModifier>) {
    match at {
        Some(AtModifier::Timestamp(ms)) => {
            let _ = write!(out, " @ {:.3}", ms as f64 / 1000.0);
        }
        Some(AtModifier::Start) => out.push_str(" @ start()"),
        Some(AtModifier::End) => out.push_str(" @ end()"),
        None => {}
    }
}

fn write_extended(out: &mut String, sel: &VectorSelector) {
    if sel.anchored {
        out.push_str(" anchored");
    } else if sel.smoothed {
        out.push_str(" smoothed");
    }
}

/// The selector without `@`/offset.
fn write_selector_body(out: &mut String, sel: &VectorSelector) {
    let name = sel.name.as_deref().unwrap_or("");
    let mut parts: Vec<String> = sel
        .matchers
        .iter()
        .filter(|m| {
            !(m.name == argus_model::labels::METRIC_NAME
                && m.op == argus_model::MatchOp::Equal
                && m.value == name
                && !m.value.is_empty())
        })
        .map(matcher_string)
        .collect();
    out.push_str(name);
    if !parts.is_empty() {
        parts.sort();
        out.push('{');
        out.push_str(&parts.join(","));
        out.push('}');
    }
}

fn write_subquery_suffix(out: &mut String, expr: &Expr) {
    let Expr::Subquery {
        range_ms,
        step_ms,
        offset_ms,
        at,
        dur_exprs,
        ..
    } = expr
    else {
        return;
    };
    let exprs = dur_exprs.as_deref();
    out.push('[');
    match exprs.and_then(|d| d[0].as_ref()) {
        Some(e) => write_dur_expr(out, e),
        None => write_duration(out, *range_ms),
    }
    out.push(':');
    match (exprs.and_then(|d| d[1].as_ref()), step_ms) {
        (Some(e), _) => write_dur_expr(out, e),
        (None, Some(s)) if *s != 0 => write_duration(out, *s),
        _ => {}
    }
    out.push(']');
    write_at(out, *at);
    write_offset(out, *offset_ms, exprs.and_then(|d| d[2].as_ref()));
}

fn write_expr(out: &mut String, expr: &Expr) {
    write_expr_upto(out, expr, usize::MAX);
}

/// Writes `expr` flat into `out`, stopping at the next node once `out` is longer than
/// `limit`.
fn write_expr_upto(out: &mut String, expr: &Expr, limit: usize) {
    if out.len() > limit {
        return;
    }
    match expr {
        Expr::Number { value, .. } => out.push_str(&gofmt::format_f(*value)),
        Expr::String { value, .. } => out.push_str(&gofmt::quote(value)),
        Expr::Vector(sel) => {
            write_selector_body(out, sel);
            write_at(out, sel.at);
            write_extended(out, sel);
            write_offset(out, sel.offset_ms, sel.offset_expr.as_ref());
        }
        Expr::Matrix {
            selector,
            range_ms,
            range_expr,
            ..
        } => {
            write_selector_body(out, selector);
            out.push('[');
            match range_expr {
                Some(e) => write_dur_expr(out, e),
                None => write_duration(out, *range_ms),
            }
            out.push(']');
            write_extended(out, selector);
            write_at(out, selector.at);
            write_offset(out, selector.offset_ms, selector.offset_expr.as_ref());
        }
        Expr::Subquery { expr: inner, .. } => {
            write_expr_upto(out, inner, limit);
            write_subquery_suffix(out, expr);
        }
        Expr::Paren { expr, .. } => {
            out.push('(');
            write_expr_upto(out, expr, limit);
            out.push(')');
        }
        Expr::Unary { negate, expr, .. } => {
            out.push(if *negate { '-' } else { '+' });
            write_expr_upto(out, expr, limit);
        }
        Expr::Binary {
            op,
            lhs,
            rhs,
            matching,
            return_bool,
            ..
        } => {
            write_expr_upto(out, lhs, limit);
            out.push(' ');
            out.push_str(op.as_str());
            if *return_bool {
                out.push_str(" bool");
            }
            write_matching(out, matching.as_ref());
            out.push(' ');
            write_expr_upto(out, rhs, limit);
        }
        Expr::Aggregate {
            op,
            expr,
            param,
            grouping,
            without,
            ..
        } => {
            write_agg_op(out, *op, grouping, *without);
            out.push('(');
            if let Some(p) = param {
                write_expr_upto(out, p, limit);
                out.push_str(", ");
            }
            write_expr_upto(out, expr, limit);
            out.push(')');
        }
        Expr::Call { func, args, .. } => {
            out.push_str(func.name);
            out.push('(');
            for (i, a) in args.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_expr_upto(out, a, limit);
            }
            out.push(')');
        }
    }
}

/// `sum`, `sum by (a, b) `, `sum without () `.
fn write_agg_op(out: &mut String, op: AggOp, grouping: &[String], without: bool) {
    out.push_str(op.as_str());
    if without {
        out.push_str(" without (");
        write_labels(out, grouping);
        out.push_str(") ");
    } else if !grouping.is_empty() {
        out.push_str(" by (");
        write_labels(out, grouping);
        out.push_str(") ");
    }
}

#[cfg(test)]
mod tests;
