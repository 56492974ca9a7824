//! Runner for the upstream PromQL test scripts (`../shared/promql-tests`, format described in
//! its INDEX.md): `load`, `clear`, `eval instant|range` with `expect fail|ordered|string|range
//! vector`, scalar and series expectations, compared with upstream's float tolerance.
//!
//! Every instant eval also runs the automatic checks of INDEX.md §11: the @-invariance
//! variants (printed with the canonical printer and parsed again) and the range-mode
//! cross-check.
//!
//! Not yet: native-histogram literals (`{{…}}`), `load_with_nhcb`, start-timestamp lines,
//! annotation checks (`expect warn|info` fail, `no_warn|no_info` pass trivially).

use std::collections::BTreeMap;

use argus_model::{Labels, Matcher, is_stale_nan, stale_nan};

use crate::engine::{Engine, EngineOptions, Queryable, Value};
use crate::lexer::{Tok, lex};

/// In-memory storage for the scripts.
#[derive(Default)]
pub struct MemStore {
    series: BTreeMap<Labels, Vec<(i64, f64)>>,
    /// Series that could not be loaded (native histograms, NHCB conversions, start
    /// timestamps), with the reason: an eval that selects one of them is unsupported.
    skipped: Vec<(Labels, String)>,
}

impl Queryable for MemStore {
    fn select(&self, mint: i64, maxt: i64, matchers: &[Matcher]) -> Vec<(Labels, Vec<(i64, f64)>)> {
        self.series
            .iter()
            .filter(|(l, _)| {
                matchers
                    .iter()
                    .all(|m| m.matches(l.get(&m.name).unwrap_or("")))
            })
            .filter_map(|(l, p)| {
                let lo = p.partition_point(|x| x.0 < mint);
                let hi = p.partition_point(|x| x.0 <= maxt);
                (lo < hi).then(|| (l.clone(), p[lo..hi].to_vec()))
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CaseResult {
    pub line: usize,
    pub query: String,
    /// `None` when the case passed.
    pub failure: Option<String>,
}

/// One value slot of a series line: `None` is `_`.
type Slots = Vec<Option<f64>>;

fn parse_time(s: &str) -> Result<i64, String> {
    if s == "0" {
        return Ok(0);
    }
    argus_model::Duration::parse(s)
        .map(|d| d.as_millis())
        .map_err(|_| format!("invalid time {s:?}"))
}

/// Parses `metric{labels}`; returns the label set and the rest of the line.
fn parse_metric(line: &str) -> Result<(Labels, &str), String> {
    let line = line.trim();
    let brace = line.find('{');
    let first_space = line.find(char::is_whitespace).unwrap_or(line.len());
    let (metric_end, has_braces) = match brace {
        Some(b) if b <= first_space => {
            // Find the closing brace outside quotes.
            let bytes = line.as_bytes();
            let mut i = b + 1;
            let mut quote: Option<u8> = None;
            while i < bytes.len() {
                let c = bytes[i];
                match quote {
                    Some(q) if c == b'\\' && q != b'`' => i += 1,
                    Some(q) if c == q => quote = None,
                    Some(_) => {}
                    None if c == b'"' || c == b'\'' || c == b'`' => quote = Some(c),
                    None if c == b'}' => break,
                    None => {}
                }
                i += 1;
            }
            if i >= bytes.len() {
                return Err(format!("unclosed label set in {line:?}"));
            }
            (i + 1, true)
        }
        _ => (first_space, false),
    };
    let metric = &line[..metric_end];
    let rest = &line[metric_end..];
    let mut pairs: Vec<(String, String)> = Vec::new();
    let name_end = if has_braces {
        metric.find('{').unwrap_or(0)
    } else {
        metric.len()
    };
    let name = &metric[..name_end];
    if !name.is_empty() {
        pairs.push(("__name__".into(), name.to_string()));
    }
    if has_braces {
        let tokens = lex(&metric[name_end..]).map_err(|e| format!("{}: {}", metric, e.message))?;
        let mut i = 1; // skip '{'
        while i < tokens.len() {
            match &tokens[i].tok {
                Tok::RBrace | Tok::Eof => break,
                Tok::Comma => i += 1,
                Tok::Ident(n) | Tok::Str(n) => {
                    if tokens.get(i + 1).map(|t| &t.tok) == Some(&Tok::Assign) {
                        let Some(Tok::Str(v)) = tokens.get(i + 2).map(|t| &t.tok) else {
                            return Err(format!("bad label value in {metric:?}"));
                        };
                        pairs.push((n.clone(), v.clone()));
                        i += 3;
                    } else {
                        pairs.push(("__name__".into(), n.clone()));
                        i += 1;
                    }
                }
                other => return Err(format!("unexpected {other} in {metric:?}")),
            }
        }
    }
    Ok((Labels::from_pairs(&pairs), rest))
}

fn parse_float(s: &str) -> Option<f64> {
    let lower = s.to_ascii_lowercase();
    match lower.trim_start_matches(['+', '-']) {
        "inf" | "nan" => {}
        _ if lower.contains("inf") || lower.contains("nan") => return None,
        _ => {}
    }
    s.parse::<f64>().ok()
}

/// Expands the value items of a series line.
fn parse_items(rest: &str) -> Result<Slots, String> {
    let mut out = Vec::new();
    for item in rest.split_whitespace() {
        if item.contains("{{") {
            return Err("native histogram literals are not supported yet".into());
        }
        if item == "_" {
            out.push(None);
            continue;
        }
        if let Some(n) = item.strip_prefix("_x") {
            let n: usize = n.parse().map_err(|_| format!("bad item {item:?}"))?;
            out.extend(std::iter::repeat_n(None, n));
            continue;
        }
        if item == "stale" {
            out.push(Some(stale_nan()));
            continue;
        }
        let (base, times) = match item.rfind('x') {
            Some(pos)
                if item[pos + 1..].chars().all(|c| c.is_ascii_digit()) && pos + 1 < item.len() =>
            {
                (
                    &item[..pos],
                    Some(
                        item[pos + 1..]
                            .parse::<usize>()
                            .map_err(|_| format!("bad item {item:?}"))?,
                    ),
                )
            }
            _ => (item, None),
        };
        // `a+d` / `a-d`: the sign not at the start and not after an exponent marker.
        let bytes = base.as_bytes();
        let split = (1..bytes.len()).find(|&i| {
            (bytes[i] == b'+' || bytes[i] == b'-') && !matches!(bytes[i - 1], b'e' | b'E')
        });
        match (split, times) {
            (Some(i), Some(n)) => {
                let mut a =
                    parse_float(&base[..i]).ok_or_else(|| format!("bad value in {item:?}"))?;
                let d = parse_float(&base[i..]).ok_or_else(|| format!("bad delta in {item:?}"))?;
                for _ in 0..=n {
                    out.push(Some(a));
                    a += d;
                }
            }
            (None, Some(n)) => {
                let a = parse_float(base).ok_or_else(|| format!("bad value in {item:?}"))?;
                out.extend(std::iter::repeat_n(Some(a), n + 1));
            }
            (None, None) => out.push(Some(
                parse_float(base).ok_or_else(|| format!("bad value {item:?}"))?,
            )),
            (Some(_), None) => return Err(format!("bad item {item:?}")),
        }
    }
    Ok(out)
}

enum EvalKind {
    Instant { at: i64 },
    Range { start: i64, end: i64, step: i64 },
}

struct Eval {
    line: usize,
    query: String,
    kind: EvalKind,
    fail: Option<Option<(bool, String)>>, // Some(None): any error; Some(Some((is_regex, text)))
    ordered: bool,
    expect_warn: bool,
    expect_info: bool,
    string: Option<String>,
    range_vector: Option<(i64, i64, i64)>,
    scalar: Option<f64>,
    series: Vec<(Labels, Slots)>,
    unsupported: Option<String>,
}

fn close(a: f64, b: f64) -> bool {
    if is_stale_nan(a) || is_stale_nan(b) {
        return is_stale_nan(a) && is_stale_nan(b);
    }
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let sum = a.abs() + b.abs();
    if a == 0.0 || b == 0.0 || sum < f64::MIN_POSITIVE {
        return (a - b).abs() < 1e-6 * f64::MIN_POSITIVE;
    }
    (a - b).abs() / sum.min(f64::MAX) < 1e-6
}

/// Runs one script; returns one result per `eval`.
pub fn run_script(text: &str) -> Result<Vec<CaseResult>, String> {
    let lines: Vec<String> = text
        .split('\n')
        .map(|l| {
            let t = l.trim();
            if t.starts_with('#') {
                String::new()
            } else {
                t.to_string()
            }
        })
        .collect();
    let mut store = MemStore::default();
    let engine = Engine::new(EngineOptions {
        max_samples: 10_000,
        ..EngineOptions::default()
    });
    let mut results = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = &lines[i];
        if line.is_empty() {
            i += 1;
            continue;
        }
        let first = line
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        if first == "clear" {
            store = MemStore::default();
            i += 1;
        } else if first.starts_with("load") {
            let interval = parse_time(line.split_whitespace().nth(1).unwrap_or(""))?;
            let nhcb = first == "load_with_nhcb";
            i += 1;
            let mut block: BTreeMap<Labels, Slots> = BTreeMap::new();
            while i < lines.len() && !lines[i].is_empty() {
                let l = &lines[i];
                let st_line = l
                    .split_whitespace()
                    .next()
                    .is_some_and(|t| t.ends_with("@st"));
                let text = if st_line {
                    l.replacen("@st", "", 1)
                } else {
                    l.clone()
                };
                match parse_metric(&text) {
                    Ok((labels, rest)) => {
                        if st_line {
                            store
                                .skipped
                                .push((labels, "start timestamps are not supported yet".into()));
                        } else {
                            match parse_items(rest) {
                                Ok(slots) => {
                                    block.insert(labels, slots);
                                }
                                Err(e) => store.skipped.push((labels, e)),
                            }
                        }
                    }
                    Err(e) => return Err(format!("line {}: {e}", i + 1)),
                }
                i += 1;
            }
            if nhcb {
                // The converted histograms are stored under the base name, without `le`.
                for labels in block.keys() {
                    let name = labels.metric_name();
                    let base = ["_bucket", "_count", "_sum"]
                        .iter()
                        .find_map(|s| name.strip_suffix(s));
                    if let Some(base) = base {
                        let mut b = labels.to_builder();
                        b.set("__name__", base);
                        b.delete("le");
                        store
                            .skipped
                            .push((b.build(), "load_with_nhcb is not supported yet".into()));
                    }
                }
            }
            for (labels, slots) in block {
                let points = store.series.entry(labels).or_default();
                for (k, v) in slots.into_iter().enumerate() {
                    if let Some(v) = v {
                        points.push((k as i64 * interval, v));
                    }
                }
                points.sort_by_key(|p| p.0);
                points.dedup_by_key(|p| p.0);
            }
        } else if first.starts_with("eval") {
            let (ev, next) = parse_eval(&lines, i)?;
            i = next;
            let unsupported_load = crate::parse(&ev.query).ok().and_then(|expr| {
                let mut selectors = Vec::new();
                collect_selectors(&expr, &mut selectors);
                store.skipped.iter().find_map(|(labels, why)| {
                    selectors
                        .iter()
                        .any(|ms| {
                            ms.iter()
                                .all(|m| m.matches(labels.get(&m.name).unwrap_or("")))
                        })
                        .then(|| why.clone())
                })
            });
            let failure = run_eval(&engine, &store, &ev, unsupported_load);
            results.push(CaseResult {
                line: ev.line,
                query: ev.query.clone(),
                failure,
            });
        } else {
            return Err(format!("line {}: unknown command {line:?}", i + 1));
        }
    }
    Ok(results)
}

/// The matchers of every selector in an expression.
fn collect_selectors<'a>(expr: &'a crate::ast::Expr, out: &mut Vec<&'a [Matcher]>) {
    use crate::ast::Expr;
    match expr {
        Expr::Vector(v) => out.push(&v.matchers),
        Expr::Matrix { selector, .. } => out.push(&selector.matchers),
        other => other
            .children()
            .into_iter()
            .for_each(|c| collect_selectors(c, out)),
    }
}

fn parse_eval(lines: &[String], start: usize) -> Result<(Eval, usize), String> {
    let header = &lines[start];
    let lineno = start + 1;
    let words: Vec<&str> = header.split_whitespace().collect();
    let variant = words[0];
    let (kind, query) = match words.get(1) {
        Some(&"instant") => {
            if words.get(2) != Some(&"at") {
                return Err(format!("line {lineno}: expected 'at'"));
            }
            let at = parse_time(words.get(3).unwrap_or(&""))?;
            (EvalKind::Instant { at }, rest_after(header, 4))
        }
        Some(&"range") => {
            let start_t = parse_time(words.get(3).unwrap_or(&""))?;
            let end_t = parse_time(words.get(5).unwrap_or(&""))?;
            let step = parse_time(words.get(7).unwrap_or(&""))?;
            (
                EvalKind::Range {
                    start: start_t,
                    end: end_t,
                    step,
                },
                rest_after(header, 8),
            )
        }
        _ => return Err(format!("line {lineno}: bad eval header {header:?}")),
    };
    let mut ev = Eval {
        line: lineno,
        query,
        kind,
        fail: (variant == "eval_fail").then_some(None),
        ordered: variant == "eval_ordered",
        expect_warn: variant == "eval_warn",
        expect_info: variant == "eval_info",
        string: None,
        range_vector: None,
        scalar: None,
        series: Vec::new(),
        unsupported: None,
    };
    let mut i = start + 1;
    while i < lines.len() && !lines[i].is_empty() {
        let l = &lines[i];
        i += 1;
        if let Some(rest) = l.strip_prefix("expect ") {
            let rest = rest.trim();
            if let Some(r) = rest.strip_prefix("range vector from ") {
                let w: Vec<&str> = r.split_whitespace().collect();
                ev.range_vector = Some((
                    parse_time(w.first().unwrap_or(&""))?,
                    parse_time(w.get(2).unwrap_or(&""))?,
                    parse_time(w.get(4).unwrap_or(&""))?,
                ));
                continue;
            }
            if let Some(s) = rest.strip_prefix("string ") {
                let s = s.trim();
                ev.string = Some(
                    s.get(1..s.len().saturating_sub(1))
                        .unwrap_or("")
                        .replace("\\\"", "\""),
                );
                continue;
            }
            let (kind, tail) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            let tail = tail.trim();
            let text = if let Some(m) = tail.strip_prefix("msg:") {
                Some((false, m.trim().to_string()))
            } else {
                tail.strip_prefix("regex:")
                    .map(|r| (true, r.trim().to_string()))
            };
            match kind {
                "fail" => ev.fail = Some(text),
                "ordered" => ev.ordered = true,
                "warn" => ev.expect_warn = true,
                "info" => ev.expect_info = true,
                "no_warn" | "no_info" => {}
                other => return Err(format!("line {}: unknown expectation {other:?}", i)),
            }
            continue;
        }
        if let Some(v) = parse_float(l).or_else(|| parse_go_int(l)) {
            ev.scalar = Some(v);
            break;
        }
        match parse_metric(l).and_then(|(labels, rest)| parse_items(rest).map(|s| (labels, s))) {
            Ok(s) => ev.series.push(s),
            Err(e) => ev.unsupported = Some(e),
        }
    }
    // Skip to the end of the block (a scalar line ends it early).
    while i < lines.len() && !lines[i].is_empty() {
        i += 1;
    }
    Ok((ev, i))
}

fn parse_go_int(s: &str) -> Option<f64> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let v = if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()?
    } else if let Some(o) = body.strip_prefix("0o").or_else(|| body.strip_prefix("0O")) {
        i64::from_str_radix(o, 8).ok()?
    } else {
        return None;
    };
    Some(if neg { -(v as f64) } else { v as f64 })
}

/// The text after the first `n` whitespace-separated words.
fn rest_after(s: &str, n: usize) -> String {
    let mut rest = s.trim_start();
    for _ in 0..n {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        rest = rest[end..].trim_start();
    }
    rest.to_string()
}

fn run_eval(
    engine: &Engine,
    store: &MemStore,
    ev: &Eval,
    unsupported_load: Option<String>,
) -> Option<String> {
    if let Some(u) = &ev.unsupported {
        return Some(format!("unsupported expectation: {u}"));
    }
    if let Some(u) = unsupported_load {
        return Some(format!("unsupported data: {u}"));
    }
    if ev.expect_warn || ev.expect_info {
        return Some("annotations (warn/info) are not produced yet".into());
    }
    let expr = match crate::parse(&ev.query) {
        Ok(e) => e,
        Err(e) => return Some(format!("parse error: {e}")),
    };
    match ev.kind {
        EvalKind::Range { start, end, step } => outcome(
            ev,
            engine
                .range(store, &expr, start, end, step)
                .map(Value::Matrix),
        ),
        EvalKind::Instant { at } => {
            let t = ev.range_vector.map_or(at, |(_, end, _)| end);
            if let Some(f) = run_instant(engine, store, ev, &expr, t) {
                return Some(f);
            }
            if at_invariance_skipped(&expr) {
                return None;
            }
            // INDEX.md §11.1: pin every selector and subquery with `@ t`, print, and run at
            // other times; the answer must not change.
            let text = crate::printer::canonical(&with_at(&expr, t));
            let pinned = match crate::parse(&text) {
                Ok(e) => e,
                Err(e) => return Some(format!("@-invariance: {text:?} does not parse: {e}")),
            };
            let times = if t == 0 {
                vec![-1000, 0, 1000]
            } else {
                vec![-10 * t, 0, t / 5, t, 10 * t]
            };
            times.into_iter().find_map(|t2| {
                run_instant(engine, store, ev, &pinned, t2)
                    .map(|f| format!("@-invariance ({text} at {t2}ms): {f}"))
            })
        }
    }
}

/// Checks an evaluation's outcome against the expected result or failure.
fn outcome(ev: &Eval, result: crate::engine::Result<Value>) -> Option<String> {
    match (&ev.fail, result) {
        (Some(expected), Err(e)) => {
            let msg = e.to_string();
            match expected {
                None => None,
                Some((false, text)) if &msg == text => None,
                Some((true, re)) if regex::Regex::new(re).is_ok_and(|r| r.is_match(&msg)) => None,
                Some((_, text)) => Some(format!("expected error {text:?}, got {msg:?}")),
            }
        }
        (Some(_), Ok(_)) => Some("expected an error, query succeeded".into()),
        (None, Err(e)) => Some(format!("error: {e}")),
        (None, Ok(value)) => compare(ev, value),
    }
}

/// One instant run, followed by the range-mode cross-check of INDEX.md §11.3 when it
/// succeeded: the same query as a range query around `t` must give the same answer at `t`.
fn run_instant(
    engine: &Engine,
    store: &MemStore,
    ev: &Eval,
    expr: &crate::ast::Expr,
    t: i64,
) -> Option<String> {
    let result = engine.instant(store, expr, t);
    let succeeded = result.is_ok();
    if let Some(f) = outcome(ev, result) {
        return Some(f);
    }
    let text = crate::printer::canonical(expr);
    let range_mode = succeeded
        && ev.fail.is_none()
        && ev.range_vector.is_none()
        && ev.string.is_none()
        && !ev.ordered
        && !["start()", "end()", "range()", "step()"]
            .iter()
            .any(|f| ev.query.contains(f) || text.contains(f));
    if !range_mode {
        return None;
    }
    let series = match engine.range(store, expr, t - 60_000, t + 60_000, 60_000) {
        Ok(s) => s,
        Err(e) => return Some(format!("range mode at {t}ms: error: {e}")),
    };
    if series.windows(2).any(|w| w[0].labels > w[1].labels) {
        return Some(format!("range mode at {t}ms: matrix not sorted by labels"));
    }
    let at_t = |s: &crate::engine::Series| s.points.iter().find(|p| p.0 == t).map(|p| p.1);
    let value = if ev.scalar.is_some() {
        match series.as_slice() {
            [one] => match at_t(one) {
                Some(v) => Value::Scalar { t, v },
                None => return Some(format!("range mode at {t}ms: no point at {t}")),
            },
            _ => {
                return Some(format!(
                    "range mode at {t}ms: expected one series for a scalar, got {}",
                    series.len()
                ));
            }
        }
    } else {
        Value::Vector(
            series
                .iter()
                .filter_map(|s| {
                    at_t(s).map(|v| crate::engine::Sample {
                        labels: s.labels.clone(),
                        t,
                        v,
                    })
                })
                .collect(),
        )
    };
    compare(ev, value).map(|f| format!("range mode at {t}ms: {f}"))
}

/// Queries whose answer depends on the evaluation time by design (INDEX.md §11.1).
fn at_invariance_skipped(expr: &crate::ast::Expr) -> bool {
    use crate::ast::Expr;
    const TIME_FUNCTIONS: [&str; 15] = [
        "days_in_month",
        "day_of_month",
        "day_of_week",
        "day_of_year",
        "hour",
        "minute",
        "month",
        "year",
        "end",
        "start",
        "range",
        "step",
        "predict_linear",
        "time",
        "timestamp",
    ];
    let calls_one = matches!(expr, Expr::Call { func, .. } if TIME_FUNCTIONS.contains(&func.name));
    calls_one || expr.children().into_iter().any(at_invariance_skipped)
}

/// Gives every selector and subquery without `@` the modifier `@ t` (not descending into
/// subqueries, which carry the `@` for their inside).
fn with_at(expr: &crate::ast::Expr, t: i64) -> crate::ast::Expr {
    use crate::ast::{AtModifier, Expr};
    let mut e = expr.clone();
    fn walk(e: &mut Expr, t: i64) {
        match e {
            Expr::Vector(sel) | Expr::Matrix { selector: sel, .. } => {
                sel.at.get_or_insert(AtModifier::Timestamp(t));
            }
            Expr::Subquery { at, .. } => {
                at.get_or_insert(AtModifier::Timestamp(t));
            }
            Expr::Paren { expr, .. } | Expr::Unary { expr, .. } => walk(expr, t),
            Expr::Binary { lhs, rhs, .. } => {
                walk(lhs, t);
                walk(rhs, t);
            }
            Expr::Aggregate { expr, param, .. } => {
                walk(expr, t);
                if let Some(p) = param {
                    walk(p, t);
                }
            }
            Expr::Call { args, .. } => args.iter_mut().for_each(|a| walk(a, t)),
            Expr::Number { .. } | Expr::String { .. } => {}
        }
    }
    walk(&mut e, t);
    e
}

fn compare(ev: &Eval, value: Value) -> Option<String> {
    match value {
        Value::Scalar { v, .. } => match ev.scalar {
            Some(want) if close(want, v) => None,
            Some(want) => Some(format!("scalar: expected {want}, got {v}")),
            None => Some(format!("got scalar {v}, expected series")),
        },
        Value::String { v, .. } => match &ev.string {
            Some(want) if *want == v => None,
            other => Some(format!("string: expected {other:?}, got {v:?}")),
        },
        Value::Vector(samples) => {
            if ev.scalar.is_some() {
                return Some("expected a scalar, got a vector".into());
            }
            if samples.len() != ev.series.len() {
                return Some(format!(
                    "expected {} series, got {}",
                    ev.series.len(),
                    samples.len()
                ));
            }
            for (i, s) in samples.iter().enumerate() {
                let want = if ev.ordered {
                    ev.series.get(i).filter(|(l, _)| *l == s.labels)
                } else {
                    ev.series.iter().find(|(l, _)| *l == s.labels)
                };
                let Some((_, slots)) = want else {
                    return Some(format!("unexpected series {}", s.labels));
                };
                match slots.as_slice() {
                    [Some(w)] if close(*w, s.v) => {}
                    [Some(w)] => return Some(format!("{}: expected {w}, got {}", s.labels, s.v)),
                    _ => return Some(format!("{}: expected one value", s.labels)),
                }
            }
            None
        }
        Value::Matrix(series) => {
            let (start, step) = match (&ev.kind, ev.range_vector) {
                (_, Some((s, _, st))) => (s, st),
                (EvalKind::Range { start, step, .. }, None) => (*start, *step),
                _ => return Some("unexpected range vector".into()),
            };
            if series.windows(2).any(|w| w[0].labels > w[1].labels) {
                return Some("matrix not sorted by labels".into());
            }
            if series.len() != ev.series.len() {
                return Some(format!(
                    "expected {} series, got {}",
                    ev.series.len(),
                    series.len()
                ));
            }
            for s in &series {
                let Some((_, slots)) = ev.series.iter().find(|(l, _)| *l == s.labels) else {
                    return Some(format!("unexpected series {}", s.labels));
                };
                let want: Vec<(i64, f64)> = slots
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| v.map(|v| (start + i as i64 * step, v)))
                    .collect();
                if want.len() != s.points.len()
                    || want
                        .iter()
                        .zip(&s.points)
                        .any(|(a, b)| a.0 != b.0 || !close(a.1, b.1))
                {
                    return Some(format!(
                        "{}: expected {want:?}, got {:?}",
                        s.labels, s.points
                    ));
                }
            }
            None
        }
    }
}

#[cfg(test)]
mod tests;
