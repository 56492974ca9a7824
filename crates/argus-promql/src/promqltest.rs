//! Runner for the upstream PromQL test scripts (`../shared/promql-tests`, format described in
//! its INDEX.md): `load`, `clear`, `eval instant|range` with `expect fail|ordered|string|range
//! vector`, scalar and series expectations, compared with upstream's float tolerance.
//!
//! Every instant eval also runs the automatic checks of INDEX.md §11: the @-invariance
//! variants (printed with the canonical printer and parsed again) and the range-mode
//! cross-check.
//!
//! Native-histogram literals, `load_with_nhcb` and the annotation expectations
//! (`expect warn|info|no_warn|no_info`) are supported. Not yet: start-timestamp lines.

use std::collections::BTreeMap;

use argus_model::{FloatHistogram, Labels, Matcher, is_stale_nan, stale_nan};

use crate::annotations::Annotations;
use crate::engine::{Engine, EngineOptions, Hist, Queryable, Value};
use crate::lexer::{Tok, lex};

mod hist;

/// In-memory storage for the scripts.
#[derive(Default)]
pub struct MemStore {
    series: BTreeMap<Labels, Vec<(i64, f64)>>,
    /// Histogram samples as loaded (with the literals' counter-reset hints)…
    raw_hists: BTreeMap<Labels, Vec<(i64, FloatHistogram)>>,
    /// …and as storage hands them back (hints as a chunked store sets them).
    hists: BTreeMap<Labels, Vec<(i64, Hist)>>,
    /// Series that could not be loaded (invalid NHCB conversions), with the reason: an eval
    /// that selects one of them is unsupported.
    skipped: Vec<(Labels, String)>,
    /// `(sample time, start time)` of samples given a start timestamp (`@st` lines).
    starts: BTreeMap<Labels, Vec<(i64, i64)>>,
}

impl MemStore {
    /// Recomputes the read-back histograms of one series after a load.
    fn settle(&mut self, labels: &Labels) {
        let Some(raw) = self.raw_hists.get(labels) else {
            return;
        };
        let floats = self.series.get(labels).map(Vec::as_slice).unwrap_or(&[]);
        let mut all: Vec<(i64, hist::Stored<'_>)> = floats
            .iter()
            .map(|&(t, _)| (t, hist::Stored::Float))
            .chain(raw.iter().map(|(t, h)| (*t, hist::Stored::Hist(h))))
            .collect();
        all.sort_by_key(|p| p.0);
        let read = hist::read_back_hints(&all)
            .into_iter()
            .map(|(t, h)| (t, Hist::new(h)))
            .collect();
        self.hists.insert(labels.clone(), read);
    }
}

fn selected(labels: &Labels, matchers: &[Matcher]) -> bool {
    matchers
        .iter()
        .all(|m| m.matches(labels.get(&m.name).unwrap_or("")))
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

    fn select_histograms(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Vec<(Labels, Vec<(i64, Hist)>)> {
        in_window(&self.hists, mint, maxt, matchers)
    }

    fn select_start_timestamps(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Vec<(Labels, Vec<(i64, i64)>)> {
        in_window(&self.starts, mint, maxt, matchers)
    }
}

/// The selected series' entries timed in `[mint, maxt]`.
fn in_window<T: Clone>(
    map: &BTreeMap<Labels, Vec<(i64, T)>>,
    mint: i64,
    maxt: i64,
    matchers: &[Matcher],
) -> Vec<(Labels, Vec<(i64, T)>)> {
    map.iter()
        .filter(|(l, _)| selected(l, matchers))
        .filter_map(|(l, p)| {
            let lo = p.partition_point(|x| x.0 < mint);
            let hi = p.partition_point(|x| x.0 <= maxt);
            (lo < hi).then(|| (l.clone(), p[lo..hi].to_vec()))
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq)]
pub struct CaseResult {
    pub line: usize,
    pub query: String,
    /// `None` when the case passed.
    pub failure: Option<String>,
}

/// A value of a series line: a float, or a histogram with whether its literal stated the
/// counter-reset hint.
#[derive(Debug, Clone, PartialEq)]
enum Val {
    F(f64),
    H(Box<FloatHistogram>, bool),
}

/// The value slots of a series line: `None` is `_`.
type Slots = Vec<Option<Val>>;

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
        let tokens = lex(&metric[name_end..]);
        if let Some(Tok::Error(m)) = tokens.last().map(|t| &t.tok) {
            return Err(format!("{metric}: {m}"));
        }
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
/// A signed duration offset of a start-timestamp line (`-30s`, `+1m`, `1ms`, `-0ms`, `0`).
fn parse_offset(s: &str) -> Result<i64, String> {
    let (sign, body) = match s.as_bytes().first() {
        Some(b'-') => (-1, &s[1..]),
        Some(b'+') => (1, &s[1..]),
        _ => (1, s),
    };
    Ok(sign * parse_time(body).map_err(|_| format!("bad start-timestamp offset {s:?}"))?)
}

/// `_` (one empty slot) or `_xN` (N empty slots): appended, and true.
fn empty_slots<T>(item: &str, out: &mut Vec<Option<T>>) -> Result<bool, String> {
    if item == "_" {
        out.push(None);
        return Ok(true);
    }
    let Some(n) = item.strip_prefix("_x") else {
        return Ok(false);
    };
    let n: usize = n.parse().map_err(|_| format!("bad item {item:?}"))?;
    out.extend(std::iter::repeat_with(|| None).take(n));
    Ok(true)
}

/// The slots of a start-timestamp line (INDEX.md §6): offsets from each sample's time.
fn parse_start_items(rest: &str) -> Result<Vec<Option<i64>>, String> {
    let mut out = Vec::new();
    for item in rest.split_whitespace() {
        if empty_slots(item, &mut out)? {
            continue;
        }
        let (base, times) = match item.rsplit_once('x') {
            Some((b, n)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => (
                b,
                Some(
                    n.parse::<usize>()
                        .map_err(|_| format!("bad item {item:?}"))?,
                ),
            ),
            _ => (item, None),
        };
        let split = (1..base.len()).find(|&i| matches!(base.as_bytes()[i], b'+' | b'-'));
        let (start, delta) = match split {
            Some(i) => (parse_offset(&base[..i])?, parse_offset(&base[i..])?),
            None => (parse_offset(base)?, 0),
        };
        if split.is_some() && times.is_none() {
            return Err(format!("bad start-timestamp item {item:?}"));
        }
        for k in 0..=times.unwrap_or(0) as i64 {
            out.push(Some(start + delta * k));
        }
    }
    Ok(out)
}

fn parse_items(rest: &str) -> Result<Slots, String> {
    let mut out = Vec::new();
    for item in hist::items(rest)? {
        if item.starts_with("{{") {
            hist::item(item, &mut out)?;
            continue;
        }
        if empty_slots(item, &mut out)? {
            continue;
        }
        if item == "stale" {
            out.push(Some(Val::F(stale_nan())));
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
                    out.push(Some(Val::F(a)));
                    a += d;
                }
            }
            (None, Some(n)) => {
                let a = parse_float(base).ok_or_else(|| format!("bad value in {item:?}"))?;
                out.extend(std::iter::repeat_n(Some(Val::F(a)), n + 1));
            }
            (None, None) => out.push(Some(Val::F(
                parse_float(base).ok_or_else(|| format!("bad value {item:?}"))?,
            ))),
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
    /// `expect warn` lines: `None` matches any warning, else `(is_regex, text)`.
    warns: Vec<Option<(bool, String)>>,
    infos: Vec<Option<(bool, String)>>,
    no_warn: bool,
    no_info: bool,
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
        // Upstream's test engine runs with delayed name removal (INDEX.md §12).
        delayed_name_removal: true,
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
            // Start-timestamp offsets waiting for their series line.
            let mut pending_starts: Option<(Labels, Vec<Option<i64>>)> = None;
            let mut starts: BTreeMap<Labels, Vec<Option<i64>>> = BTreeMap::new();
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
                let at = |e: String| format!("line {}: {e}", i + 1);
                match parse_metric(&text) {
                    Ok((labels, rest)) => {
                        if st_line {
                            if pending_starts.is_some() {
                                return Err(
                                    at("start timestamps without their series line".into()),
                                );
                            }
                            pending_starts = Some((labels, parse_start_items(rest).map_err(at)?));
                        } else {
                            match parse_items(rest) {
                                Ok(slots) => {
                                    if let Some((st_labels, offsets)) = pending_starts.take() {
                                        if st_labels != labels || offsets.len() != slots.len() {
                                            return Err(at(
                                                "start timestamps do not match the series line"
                                                    .into(),
                                            ));
                                        }
                                        starts.insert(labels.clone(), offsets);
                                    }
                                    block.insert(labels, slots);
                                }
                                Err(e) => store.skipped.push((labels, e)),
                            }
                        }
                    }
                    Err(e) => return Err(at(e)),
                }
                i += 1;
            }
            if pending_starts.is_some() {
                return Err(format!(
                    "line {i}: start timestamps without their series line"
                ));
            }
            let mut touched = Vec::new();
            if nhcb {
                // The converted histograms are stored under the base name, without `le`.
                let (converted, bad) = hist::convert_classic(&block, interval);
                store.skipped.extend(bad);
                for (labels, series) in converted {
                    store
                        .raw_hists
                        .entry(labels.clone())
                        .or_default()
                        .extend(series);
                    touched.push(labels);
                }
            }
            for (labels, slots) in block {
                let mut floats = Vec::new();
                let mut hists = Vec::new();
                let offsets = starts.remove(&labels).unwrap_or_default();
                for (k, v) in slots.into_iter().enumerate() {
                    let t = k as i64 * interval;
                    if v.is_some()
                        && let Some(Some(offset)) = offsets.get(k)
                    {
                        let st = store.starts.entry(labels.clone()).or_default();
                        st.push((t, t + offset));
                        st.sort_by_key(|p| p.0);
                        st.dedup_by_key(|p| p.0);
                    }
                    match v {
                        Some(Val::F(v)) => floats.push((t, v)),
                        Some(Val::H(h, _)) => hists.push((t, *h)),
                        None => {}
                    }
                }
                if !floats.is_empty() {
                    let points = store.series.entry(labels.clone()).or_default();
                    points.extend(floats);
                    points.sort_by_key(|p| p.0);
                    points.dedup_by_key(|p| p.0);
                }
                if !hists.is_empty() {
                    store
                        .raw_hists
                        .entry(labels.clone())
                        .or_default()
                        .extend(hists);
                }
                touched.push(labels);
            }
            for labels in touched {
                if let Some(h) = store.raw_hists.get_mut(&labels) {
                    h.sort_by_key(|p| p.0);
                }
                store.settle(&labels);
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
        warns: if variant == "eval_warn" {
            vec![None]
        } else {
            Vec::new()
        },
        infos: if variant == "eval_info" {
            vec![None]
        } else {
            Vec::new()
        },
        no_warn: false,
        no_info: false,
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
                "warn" => ev.warns.push(text),
                "info" => ev.infos.push(text),
                "no_warn" => ev.no_warn = true,
                "no_info" => ev.no_info = true,
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
    let expr = match crate::parse(&ev.query) {
        Ok(e) => e,
        Err(e) => return Some(format!("parse error: {e}")),
    };
    match ev.kind {
        EvalKind::Range { start, end, step } => outcome(
            ev,
            &ev.query,
            engine
                .range_annotated(store, &expr, start, end, step)
                .map(|(m, a)| (Value::Matrix(m), a)),
        ),
        EvalKind::Instant { at } => {
            let t = ev.range_vector.map_or(at, |(_, end, _)| end);
            if let Some(f) = run_instant(engine, store, ev, &expr, &ev.query, t) {
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
                run_instant(engine, store, ev, &pinned, &text, t2)
                    .map(|f| format!("@-invariance ({text} at {t2}ms): {f}"))
            })
        }
    }
}

/// Checks an evaluation's outcome against the expected result or failure, and its
/// annotations (rendered against `query`, the text as executed) against the expectations.
fn outcome(
    ev: &Eval,
    query: &str,
    result: crate::engine::Result<(Value, Annotations)>,
) -> Option<String> {
    let result = match result {
        Ok((value, annos)) => {
            if let Some(f) = check_annotations(ev, &annos, query) {
                return Some(f);
            }
            Ok(value)
        }
        Err(e) => Err(e),
    };
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
    query: &str,
    t: i64,
) -> Option<String> {
    let result = engine.instant_annotated(store, expr, t);
    let succeeded = result.is_ok();
    if let Some(f) = outcome(ev, query, result) {
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
    let hist_at_t = |s: &crate::engine::Series| {
        s.hists
            .iter()
            .find(|p| p.0 == t)
            .map(|p| crate::engine::Sample::histogram(s.labels.clone(), t, p.1.clone()))
    };
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
                    at_t(s)
                        .map(|v| crate::engine::Sample::float(s.labels.clone(), t, v))
                        .or_else(|| hist_at_t(s))
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
    use crate::ast::AtModifier;
    let calls_one = matches!(expr, Expr::Call { func, .. } if TIME_FUNCTIONS.contains(&func.name));
    // `@ start()` / `@ end()` move with the evaluation time too.
    let moving = |at: &Option<AtModifier>| matches!(at, Some(AtModifier::Start | AtModifier::End));
    let pinned_to_bounds = match expr {
        Expr::Vector(sel) | Expr::Matrix { selector: sel, .. } => moving(&sel.at),
        Expr::Subquery { at, .. } => moving(at),
        _ => false,
    };
    calls_one || pinned_to_bounds || expr.children().into_iter().any(at_invariance_skipped)
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
                match (slots.as_slice(), &s.h) {
                    ([Some(Val::F(w))], None) if close(*w, s.v) => {}
                    ([Some(Val::H(w, hint))], Some(h)) if hist::matches(w, *hint, h) => {}
                    ([Some(w)], _) => {
                        return Some(format!(
                            "{}: expected {}, got {}",
                            s.labels,
                            show(w),
                            show_sample(s.v, s.h.as_deref())
                        ));
                    }
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
                let at = |i: usize| start + i as i64 * step;
                let want_f: Vec<(i64, f64)> = slots
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| match v {
                        Some(Val::F(v)) => Some((at(i), *v)),
                        _ => None,
                    })
                    .collect();
                let want_h: Vec<(i64, &FloatHistogram, bool)> = slots
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| match v {
                        Some(Val::H(h, hint)) => Some((at(i), &**h, *hint)),
                        _ => None,
                    })
                    .collect();
                if want_f.len() != s.points.len()
                    || want_f
                        .iter()
                        .zip(&s.points)
                        .any(|(a, b)| a.0 != b.0 || !close(a.1, b.1))
                {
                    return Some(format!(
                        "{}: expected {want_f:?}, got {:?}",
                        s.labels, s.points
                    ));
                }
                if want_h.len() != s.hists.len()
                    || want_h
                        .iter()
                        .zip(&s.hists)
                        .any(|(a, b)| a.0 != b.0 || !hist::matches(a.1, a.2, &b.1))
                {
                    let got: Vec<String> =
                        s.hists.iter().map(|(t, h)| format!("{t}: {h}")).collect();
                    return Some(format!(
                        "{}: expected {} histograms, got {got:?}",
                        s.labels,
                        want_h.len()
                    ));
                }
            }
            None
        }
    }
}

fn show(v: &Val) -> String {
    match v {
        Val::F(f) => f.to_string(),
        Val::H(h, _) => format!("{h} (hint {:?})", h.hint),
    }
}

fn show_sample(v: f64, h: Option<&FloatHistogram>) -> String {
    match h {
        Some(h) => format!("{h} (hint {:?})", h.hint),
        None => v.to_string(),
    }
}

/// The annotation rules of INDEX.md §10.
fn check_annotations(ev: &Eval, annos: &Annotations, query: &str) -> Option<String> {
    let (warns, infos) = annos.render(query);
    for (kind, got, want, none) in [
        ("warn", &warns, &ev.warns, ev.no_warn),
        ("info", &infos, &ev.infos, ev.no_info),
    ] {
        if none && !got.is_empty() {
            return Some(format!("expected no {kind}, got {got:?}"));
        }
        let hit = |w: &Option<(bool, String)>, text: &str| match w {
            None => true,
            Some((false, msg)) => msg == text,
            Some((true, re)) => regex::Regex::new(re).is_ok_and(|r| r.is_match(text)),
        };
        for w in want {
            if !got.iter().any(|g| hit(w, g)) {
                return Some(format!("expected {kind} {w:?}, got {got:?}"));
            }
        }
        if !want.is_empty()
            && let Some(extra) = got.iter().find(|g| !want.iter().any(|w| hit(w, g)))
        {
            return Some(format!("unexpected {kind} {extra:?}"));
        }
    }
    None
}

#[cfg(test)]
mod tests;
