//! Warnings and infos a query produces next to its result, as Prometheus words them.
//!
//! Each annotation remembers the span of the expression it is about; the text shown to users
//! ends with that position as `line:column` in the query string. Annotations with the same
//! text (without the position) are reported once, at the first position seen.

use crate::ast::Span;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Warning,
    Info,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotation {
    pub kind: Kind,
    /// The text without the `PromQL warning: ` prefix and without the position.
    pub message: String,
    pub span: Span,
}

impl Annotation {
    /// The full text, e.g. `PromQL info: ignored histogram in max aggregation (1:5)`.
    pub fn render(&self, query: &str) -> String {
        let prefix = match self.kind {
            Kind::Warning => "PromQL warning",
            Kind::Info => "PromQL info",
        };
        format!(
            "{prefix}: {} ({})",
            self.message,
            position(query, self.span.start)
        )
    }
}

/// Prometheus's `StartPosInput`: 1-based line and byte column of `pos` in `query`.
fn position(query: &str, pos: usize) -> String {
    if query.is_empty() {
        return "unknown position".into();
    }
    if pos > query.len() {
        return "invalid position".into();
    }
    let before = &query.as_bytes()[..pos];
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let col = match before.iter().rposition(|&b| b == b'\n') {
        Some(nl) => pos - nl,
        None => pos + 1,
    };
    format!("{line}:{col}")
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Annotations(Vec<Annotation>);

impl Annotations {
    pub fn warn(&mut self, message: impl Into<String>, span: Span) {
        self.add(Kind::Warning, message.into(), span);
    }

    pub fn info(&mut self, message: impl Into<String>, span: Span) {
        self.add(Kind::Info, message.into(), span);
    }

    fn add(&mut self, kind: Kind, message: String, span: Span) {
        if !self
            .0
            .iter()
            .any(|a| a.kind == kind && a.message == message)
        {
            self.0.push(Annotation {
                kind,
                message,
                span,
            });
        }
    }

    pub fn extend(&mut self, other: Annotations) {
        for a in other.0 {
            self.add(a.kind, a.message, a.span);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Annotation> {
        self.0.iter()
    }

    /// Rendered warnings and infos, in the order they were first raised.
    pub fn render(&self, query: &str) -> (Vec<String>, Vec<String>) {
        let pick = |k: Kind| {
            self.0
                .iter()
                .filter(|a| a.kind == k)
                .map(|a| a.render(query))
                .collect()
        };
        (pick(Kind::Warning), pick(Kind::Info))
    }
}

/// Go's `%q` of a metric name.
fn quoted(name: &str) -> String {
    argus_model::gofmt::quote(name)
}

/// `for metric name "x"`, or nothing for an empty name (`maybeAddMetricName`).
fn for_metric(name: &str) -> String {
    if name.is_empty() {
        String::new()
    } else {
        format!(" for metric name {}", quoted(name))
    }
}

// The messages, worded as Prometheus's `util/annotations` package words them.

pub fn start_time_overlap(metric: &str) -> String {
    format!(
        "sample has start time that overlaps with previous sample timestamp for metric {}",
        quoted(metric)
    )
}

pub fn mixed_floats_histograms(metric: &str) -> String {
    format!(
        "encountered a mix of histograms and floats for metric name {}",
        quoted(metric)
    )
}

pub fn mixed_floats_histograms_agg() -> String {
    "encountered a mix of histograms and floats for aggregation".into()
}

pub fn mixed_classic_native(metric: &str) -> String {
    format!(
        "vector contains a mix of classic and native histograms{}",
        for_metric(metric)
    )
}

pub fn not_counter(metric: &str) -> String {
    format!(
        "this native histogram metric is not a counter: {}",
        quoted(metric)
    )
}

pub fn not_gauge(metric: &str) -> String {
    format!(
        "this native histogram metric is not a gauge: {}",
        quoted(metric)
    )
}

pub fn mixed_exponential_custom(metric: &str) -> String {
    format!(
        "vector contains a mix of histograms with exponential and custom buckets schemas for metric name {}",
        quoted(metric)
    )
}

pub fn incompatible_types(lhs: &str, op: &str, rhs: &str) -> String {
    format!(
        "incompatible sample types encountered for binary operator {}: {lhs} {op} {rhs}",
        quoted(op)
    )
}

pub fn incompatible_bucket_layout(op: &str) -> String {
    format!("incompatible bucket layout encountered for binary operator {op}")
}

pub fn histogram_ignored_in_aggregation(agg: &str) -> String {
    format!("ignored histogram in {agg} aggregation")
}

pub fn histogram_ignored_in_mixed_range(metric: &str) -> String {
    format!(
        "ignored histograms in a range containing both floats and histograms for metric name {}",
        quoted(metric)
    )
}

pub fn quantile_nan_result(metric: &str) -> String {
    format!(
        "input to histogram_quantile has NaN observations, result is NaN{}",
        for_metric(metric)
    )
}

pub fn quantile_nan_skew(metric: &str) -> String {
    format!(
        "input to histogram_quantile has NaN observations, result is skewed higher{}",
        for_metric(metric)
    )
}

pub fn fraction_nans(metric: &str) -> String {
    format!(
        "input to histogram_fraction has NaN observations, which are excluded from all fractions{}",
        for_metric(metric)
    )
}

/// `operation` is `addition`, `subtraction` or `aggregation`.
pub fn counter_reset_collision(operation: &str) -> String {
    format!("conflicting counter resets during histogram {operation}")
}

pub fn custom_buckets_reconciled(operation: &str) -> String {
    format!("mismatched custom buckets were reconciled during {operation}")
}

pub fn invalid_quantile(q: f64) -> String {
    format!(
        "quantile value should be between 0 and 1, got {}",
        argus_model::gofmt::format_g(q)
    )
}

pub fn invalid_ratio(r: f64, to: f64) -> String {
    format!(
        "ratio value should be between -1 and 1, got {}, capping to {}",
        argus_model::gofmt::format_g(r),
        argus_model::gofmt::format_g(to)
    )
}

pub fn bad_bucket_label(metric: &str, le: &str) -> String {
    format!(
        "bucket label \"le\" is missing or has a malformed value of {}{}",
        quoted(le),
        for_metric(metric)
    )
}

pub fn forced_monotonicity(metric: &str) -> String {
    format!(
        "input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile){}",
        for_metric(metric)
    )
}

pub fn possible_non_counter(metric: &str) -> String {
    format!(
        "metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {}",
        quoted(metric)
    )
}

pub fn sort_in_range_query() -> String {
    "sort is ineffective for range queries since results are always ordered by labels".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_line_and_byte_column() {
        assert_eq!(position("sum(x)", 4), "1:5");
        assert_eq!(position("a +\n  b", 6), "2:3");
        let mut a = Annotations::default();
        a.info(
            histogram_ignored_in_aggregation("max"),
            Span { start: 4, end: 5 },
        );
        a.info(
            histogram_ignored_in_aggregation("max"),
            Span { start: 9, end: 9 },
        );
        let (w, i) = a.render("max(some_metric)");
        assert!(w.is_empty());
        assert_eq!(
            i,
            vec!["PromQL info: ignored histogram in max aggregation (1:5)"]
        );
    }
}
