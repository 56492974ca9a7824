//! Native-histogram literals of the test scripts (INDEX.md §5), their comparison rule
//! (§10), the counter-reset hints storage gives back, and `load_with_nhcb` (§3).

use std::collections::BTreeMap;
use std::sync::Arc;

use argus_model::histogram::CUSTOM_BUCKETS_SCHEMA;
use argus_model::{CounterResetHint, FloatHistogram, Labels, is_stale_nan};

use super::{Slots, Val, close, parse_float};

/// Splits a series line's items at whitespace, keeping `{{ … }}` literals (which contain
/// spaces) together with what directly follows them (`x3`, `+{{…}}x3`).
pub(super) fn items(rest: &str) -> Result<Vec<&str>, String> {
    let bytes = rest.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
            if rest[i..].starts_with("{{") {
                let close = rest[i..]
                    .find("}}")
                    .ok_or_else(|| format!("unclosed histogram literal in {rest:?}"))?;
                i += close + 2;
            } else {
                i += 1;
            }
        }
        out.push(&rest[start..i]);
    }
    Ok(out)
}

/// Parses one `{{…}}` literal (without the braces); returns the histogram and whether its
/// counter-reset hint was given.
pub(super) fn literal(body: &str) -> Result<(FloatHistogram, bool), String> {
    let mut h = FloatHistogram::default();
    let mut hint_given = false;
    let (mut buckets, mut offset, mut n_buckets, mut n_offset) =
        (Vec::new(), 0i32, Vec::new(), 0i32);
    let mut custom: Option<Vec<f64>> = None;
    let mut seen: Vec<String> = Vec::new();
    let mut rest = body.trim();
    let float = |s: &str| parse_float(s).ok_or_else(|| format!("bad number {s:?} in histogram"));
    let int = |s: &str| {
        s.parse::<i32>()
            .map_err(|_| format!("bad integer {s:?} in histogram"))
    };
    let list = |s: &str| -> Result<Vec<f64>, String> { s.split_whitespace().map(float).collect() };
    while !rest.is_empty() {
        let colon = rest
            .find(':')
            .ok_or_else(|| format!("expected key:value in histogram {body:?}"))?;
        let key = rest[..colon].trim().to_ascii_lowercase();
        if seen.contains(&key) {
            return Err(format!("duplicate key {key:?} in histogram"));
        }
        seen.push(key.clone());
        let after = &rest[colon + 1..];
        let (value, next) = if let Some(inner) = after.strip_prefix('[') {
            let end = inner
                .find(']')
                .ok_or_else(|| format!("unclosed list in histogram {body:?}"))?;
            (&inner[..end], &inner[end + 1..])
        } else {
            let end = after.find(char::is_whitespace).unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        match key.as_str() {
            "schema" => h.schema = int(value)?,
            "sum" => h.sum = float(value)?,
            "count" => h.count = float(value)?,
            "z_bucket" => h.zero_count = float(value)?,
            "z_bucket_w" => h.zero_threshold = float(value)?,
            "buckets" => buckets = list(value)?,
            "offset" => offset = int(value)?,
            "n_buckets" => n_buckets = list(value)?,
            "n_offset" => n_offset = int(value)?,
            "custom_values" => custom = Some(list(value)?),
            "counter_reset_hint" => {
                hint_given = true;
                h.hint = match value {
                    "unknown" => CounterResetHint::Unknown,
                    "reset" => CounterResetHint::Reset,
                    "not_reset" => CounterResetHint::NotReset,
                    "gauge" => CounterResetHint::Gauge,
                    other => return Err(format!("bad counter_reset_hint {other:?}")),
                }
            }
            other => return Err(format!("unknown histogram key {other:?}")),
        }
        rest = next.trim_start();
    }
    h.positive = (offset..).zip(buckets).collect();
    h.negative = (n_offset..).zip(n_buckets).collect();
    if let Some(cv) = custom {
        h.custom_values = cv.into();
    }
    Ok((h, hint_given))
}

/// Expands a histogram item: `{{A}}`, `{{A}}xN`, `{{A}}+{{B}}xN`, `{{A}}-{{B}}xN`.
pub(super) fn item(item: &str, out: &mut Slots) -> Result<(), String> {
    let body_end = item.find("}}").ok_or("unclosed histogram literal")?;
    let (base, base_hint) = literal(&item[2..body_end])?;
    let tail = &item[body_end + 2..];
    if tail.is_empty() {
        out.push(Some(Val::H(Box::new(base), base_hint)));
        return Ok(());
    }
    let times = |s: &str| -> Result<usize, String> {
        s.strip_prefix('x')
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("bad repetition in {item:?}"))
    };
    if let Some(sign) = tail.chars().next().filter(|c| *c == '+' || *c == '-') {
        let inc_text = &tail[1..];
        let inc_end = inc_text
            .strip_prefix("{{")
            .and_then(|t| t.find("}}"))
            .ok_or_else(|| format!("bad increment in {item:?}"))?;
        let (inc, inc_hint) = literal(&inc_text[2..inc_end + 2])?;
        let n = times(&inc_text[inc_end + 4..])?;
        let mut h = base;
        for _ in 0..=n {
            out.push(Some(Val::H(Box::new(h.clone()), inc_hint)));
            let step = if sign == '+' {
                h.add(&inc)
            } else {
                h.sub(&inc)
            };
            step.map_err(|_| format!("incompatible histograms in {item:?}"))?;
        }
        return Ok(());
    }
    let n = times(tail)?;
    for _ in 0..=n {
        out.push(Some(Val::H(Box::new(base.clone()), base_hint)));
    }
    Ok(())
}

/// The comparison rule of INDEX.md §10 for an expected and an actual histogram.
pub(super) fn matches(want: &FloatHistogram, hint_given: bool, got: &FloatHistogram) -> bool {
    let (mut w, mut g) = (want.clone(), got.clone());
    w.compact();
    g.compact();
    let buckets_close = |a: &[(i32, f64)], b: &[(i32, f64)]| {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.0 == y.0 && close(x.1, y.1))
    };
    w.schema == g.schema
        && w.zero_threshold == g.zero_threshold
        && close(w.count, g.count)
        && close(w.sum, g.sum)
        && close(w.zero_count, g.zero_count)
        && buckets_close(&w.positive, &g.positive)
        && buckets_close(&w.negative, &g.negative)
        && (w.schema != CUSTOM_BUCKETS_SCHEMA || w.custom_values == g.custom_values)
        && (!hint_given || w.hint == g.hint)
}

/// A sample of a stored series, in time order.
pub(super) enum Stored<'a> {
    Float,
    Hist(&'a FloatHistogram),
}

/// The counter-reset hints a chunked store hands back: gauge histograms say gauge; a counter
/// histogram that starts a chunk (the series' first, one after a float or a gauge, one with
/// a new schema, zero threshold or custom bounds, or a counter reset) says unknown; all
/// others say "not reset".
pub(super) fn read_back_hints(samples: &[(i64, Stored<'_>)]) -> Vec<(i64, FloatHistogram)> {
    let mut out = Vec::new();
    let mut prev: Option<&FloatHistogram> = None;
    for (t, s) in samples {
        let h = match s {
            Stored::Float => {
                prev = None;
                continue;
            }
            Stored::Hist(h) => *h,
        };
        let mut read = h.clone();
        read.hint = if h.hint == CounterResetHint::Gauge {
            CounterResetHint::Gauge
        } else {
            let starts_chunk = match prev {
                None => true,
                Some(p) => {
                    let mut unhinted = h.clone();
                    unhinted.hint = CounterResetHint::Unknown;
                    p.hint == CounterResetHint::Gauge
                        || p.schema != h.schema
                        || p.zero_threshold != h.zero_threshold
                        || p.custom_values != h.custom_values
                        || h.hint == CounterResetHint::Reset
                        || unhinted.detect_reset(p)
                }
            };
            if starts_chunk {
                CounterResetHint::Unknown
            } else {
                CounterResetHint::NotReset
            }
        };
        prev = Some(h);
        out.push((*t, read));
    }
    out
}

/// Converted series, and the groups that could not be converted with the reason.
pub(super) type Converted = (
    Vec<(Labels, Vec<(i64, FloatHistogram)>)>,
    Vec<(Labels, String)>,
);

/// `load_with_nhcb`: custom-bucket histograms built from the classic `_bucket`/`_count`/
/// `_sum` series of a block, under the base name. Groups that do not form a valid
/// histogram are reported by label set.
pub(super) fn convert_classic(block: &BTreeMap<Labels, Slots>, interval: i64) -> Converted {
    #[derive(Default)]
    struct At {
        buckets: Vec<(f64, f64)>,
        count: Option<f64>,
        sum: Option<f64>,
    }
    let mut groups: BTreeMap<Labels, BTreeMap<i64, At>> = BTreeMap::new();
    for (labels, slots) in block {
        let name = labels.metric_name();
        let (base, kind) = if let Some(b) = name.strip_suffix("_bucket") {
            (b, 0)
        } else if let Some(b) = name.strip_suffix("_count") {
            (b, 1)
        } else if let Some(b) = name.strip_suffix("_sum") {
            (b, 2)
        } else {
            continue;
        };
        let le = if kind == 0 {
            match labels.get("le").and_then(parse_float) {
                Some(le) if !le.is_nan() => Some(le),
                _ => continue,
            }
        } else {
            None
        };
        let mut b = labels.to_builder();
        b.set("__name__", base);
        b.delete("le");
        let at = groups.entry(b.build()).or_default();
        for (i, slot) in slots.iter().enumerate() {
            let Some(Val::F(v)) = slot else {
                continue;
            };
            if is_stale_nan(*v) {
                continue;
            }
            let e = at.entry(i as i64 * interval).or_default();
            match le {
                Some(le) => {
                    if !e.buckets.iter().any(|b| b.0 == le) {
                        e.buckets.push((le, *v));
                    }
                }
                None if kind == 1 => e.count = Some(*v),
                None => e.sum = Some(*v),
            }
        }
    }
    let mut out = Vec::new();
    let mut bad = Vec::new();
    'group: for (labels, times) in groups {
        let mut series = Vec::new();
        for (t, mut at) in times {
            if at.buckets.is_empty() {
                continue;
            }
            at.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            if at.buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
                // No +Inf bucket: it holds the count (from `_count`, else the highest bucket).
                let highest = at.buckets[at.buckets.len() - 1].1;
                at.buckets
                    .push((f64::INFINITY, at.count.unwrap_or(highest)));
            }
            let total = at.buckets[at.buckets.len() - 1].1;
            let count = at.count.unwrap_or(total);
            let mut prev = 0.0;
            let mut positive = Vec::new();
            for (i, &(_, cum)) in at.buckets.iter().enumerate() {
                let c = cum - prev;
                if c < 0.0 {
                    bad.push((labels.clone(), "classic buckets are not cumulative".into()));
                    continue 'group;
                }
                positive.push((i as i32, c));
                prev = cum;
            }
            if count != total {
                bad.push((labels.clone(), "count differs from the +Inf bucket".into()));
                continue 'group;
            }
            let bounds: Vec<f64> = at.buckets[..at.buckets.len() - 1]
                .iter()
                .map(|b| b.0)
                .collect();
            series.push((
                t,
                FloatHistogram {
                    schema: CUSTOM_BUCKETS_SCHEMA,
                    count,
                    sum: at.sum.unwrap_or(0.0),
                    positive,
                    custom_values: Arc::from(bounds),
                    ..Default::default()
                },
            ));
        }
        if !series.is_empty() {
            out.push((labels, series));
        }
    }
    (out, bad)
}
