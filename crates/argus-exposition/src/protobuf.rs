//! The protobuf exposition format (`application/vnd.google.protobuf;
//! proto=io.prometheus.client.MetricFamily; encoding=delimited`): varint-length-delimited
//! `MetricFamily` messages, read one family at a time and handed out as the same entries the
//! text parsers produce, the way Prometheus's `ProtobufParser` does:
//!
//! - a family's HELP, UNIT (when set) and TYPE, then its metrics; families without metrics
//!   are skipped;
//! - counters, gauges and untyped metrics: one sample each;
//! - summaries: `_count`, `_sum`, then one `quantile` sample per quantile;
//! - histograms: a native histogram sample when the message carries one (spans, a zero
//!   threshold or a zero count) and native histograms are scraped, followed by the classic
//!   series when those are kept too; otherwise the classic series `_count`, `_sum` and
//!   `_bucket` per bucket, up to the first `+Inf` bucket, adding `+Inf` when missing.
//!
//! A sample's series key is its name and label pairs in the order sent, separated by bytes
//! that cannot occur in UTF-8; labels are built only on request.

pub mod dto;

use std::borrow::Cow;

use argus_model::histogram::{deltas_to_counts, lay_out};
use argus_model::{CounterResetHint, FloatHistogram, Labels};
use prost::Message;

use crate::MetricType;
use crate::error::{ParseError, Result};
use crate::text::{Entry, Exemplar, format_openmetrics_float, sorted_labels};

/// What to make of histograms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistogramOptions {
    /// Native histograms become histogram samples (`scrape_native_histograms`); otherwise
    /// only their classic series are read.
    pub native: bool,
    /// With `native`, also the classic series of a histogram that has both
    /// (`always_scrape_classic_histograms`).
    pub keep_classic: bool,
}

/// Where the parser stands: the entry it returned last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Nothing of the current family returned yet (or no family).
    Start,
    Help,
    Unit,
    Type,
    /// The one sample of a counter, gauge or untyped metric.
    Plain,
    Native,
    Count,
    Sum,
    Quantile(usize),
    /// A classic bucket; the index one past the last bucket is the added `+Inf`.
    Bucket(usize),
}

/// Streaming parser over one protobuf body.
pub struct ProtoParser<'a> {
    body: &'a [u8],
    pos: usize,
    options: HistogramOptions,
    family: dto::MetricFamily,
    metric_type: dto::MetricType,
    metric: usize,
    step: Step,
    key: Vec<u8>,
    /// The native histogram of the current step, decoded when the step was reached.
    native: Option<Box<FloatHistogram>>,
    done: bool,
}

const SEP: u8 = 0xff;
const PAIR: u8 = 0xfe;

fn is_native(h: &dto::Histogram) -> bool {
    !h.positive_span.is_empty()
        || !h.negative_span.is_empty()
        || h.zero_threshold > 0.0
        || h.zero_count > 0
        || h.zero_count_float > 0.0
}

impl<'a> ProtoParser<'a> {
    pub fn new(body: &'a [u8], options: HistogramOptions) -> Self {
        Self {
            body,
            pos: 0,
            options,
            family: dto::MetricFamily::default(),
            metric_type: dto::MetricType::Untyped,
            metric: 0,
            step: Step::Start,
            key: Vec::new(),
            native: None,
            done: false,
        }
    }

    /// The next entry, `None` at the end (or after an error).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Result<Entry<'_>>> {
        if self.done {
            return None;
        }
        match self.advance() {
            Ok(true) => Some(Ok(self.entry())),
            Ok(false) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }

    /// Decodes the next non-empty family; false at the end of the body.
    fn next_family(&mut self) -> Result<bool> {
        loop {
            let rest = &self.body[self.pos..];
            if rest.is_empty() {
                return Ok(false);
            }
            let mut cursor = rest;
            let len = prost::decode_length_delimiter(&mut cursor)
                .map_err(|_| ParseError::new("protobufparse: invalid varint encountered"))?;
            let varint_len = rest.len() - cursor.len();
            if varint_len > 5 {
                return Err(ParseError::new("protobufparse: invalid varint encountered"));
            }
            let total = varint_len + len;
            if total > rest.len() {
                return Err(ParseError::new(format!(
                    "insufficient length of buffer, expected at least {total} bytes, got {} bytes",
                    rest.len()
                )));
            }
            self.family = dto::MetricFamily::decode(&rest[varint_len..total])
                .map_err(|e| ParseError::new(format!("unmarshal MetricFamily: {e}")))?;
            self.pos += total;
            if !self.family.metric.is_empty() {
                self.check_family()?;
                self.metric = 0;
                return Ok(true);
            }
        }
    }

    /// Prometheus's checks on a family's name, type and unit.
    fn check_family(&mut self) -> Result<()> {
        let name = &self.family.name;
        if name.is_empty() {
            return Err(ParseError::new(format!("invalid metric name: {name}")));
        }
        self.metric_type = dto::MetricType::try_from(self.family.r#type).map_err(|_| {
            ParseError::new(format!(
                "unknown metric type for metric {}: {}",
                argus_model::gofmt::quote(name),
                self.family.r#type
            ))
        })?;
        let unit = &self.family.unit;
        if !unit.is_empty() {
            let counter_total =
                self.metric_type == dto::MetricType::Counter && name.ends_with("_total");
            let base = if counter_total {
                &name[..name.len() - "_total".len()]
            } else {
                name.as_str()
            };
            let suffix_ok = base
                .strip_suffix(unit.as_str())
                .is_some_and(|head| head.ends_with('_'));
            if !suffix_ok {
                let what = if counter_total { "counter" } else { "metric" };
                return Err(ParseError::new(format!(
                    "unit {} not a suffix of {what} {}",
                    argus_model::gofmt::quote(unit),
                    argus_model::gofmt::quote(name)
                )));
            }
        }
        Ok(())
    }

    fn current(&self) -> &dto::Metric {
        &self.family.metric[self.metric]
    }

    fn histogram(&self) -> Option<&dto::Histogram> {
        self.current().histogram.as_ref()
    }

    /// The first step for the metric at `self.metric`.
    fn first_step(&self) -> Step {
        match self.metric_type {
            dto::MetricType::Counter | dto::MetricType::Gauge | dto::MetricType::Untyped => {
                Step::Plain
            }
            dto::MetricType::Summary => Step::Count,
            dto::MetricType::Histogram | dto::MetricType::GaugeHistogram => {
                if self.options.native && self.histogram().is_some_and(is_native) {
                    Step::Native
                } else {
                    Step::Count
                }
            }
        }
    }

    /// The step after `step` within the current metric, None when the metric is done.
    fn next_in_metric(&self, step: Step) -> Option<Step> {
        let summary = self.metric_type == dto::MetricType::Summary;
        let quantiles = self
            .current()
            .summary
            .as_ref()
            .map_or(0, |s| s.quantile.len());
        let buckets = self.histogram().map_or(&[][..], |h| &h.bucket[..]);
        match step {
            Step::Native => {
                (self.options.keep_classic && !buckets.is_empty()).then_some(Step::Count)
            }
            Step::Count => Some(Step::Sum),
            Step::Sum if summary => (quantiles > 0).then_some(Step::Quantile(0)),
            Step::Sum => Some(Step::Bucket(0)),
            Step::Quantile(i) => (i + 1 < quantiles).then_some(Step::Quantile(i + 1)),
            Step::Bucket(i) => {
                let last = i >= buckets.len() || buckets[i].upper_bound == f64::INFINITY;
                (!last).then_some(Step::Bucket(i + 1))
            }
            _ => None,
        }
    }

    /// Moves to the next entry; false at the end of the body.
    fn advance(&mut self) -> Result<bool> {
        self.step = match self.step {
            Step::Start => {
                if !self.next_family()? {
                    return Ok(false);
                }
                Step::Help
            }
            Step::Help if !self.family.unit.is_empty() => Step::Unit,
            Step::Help | Step::Unit => Step::Type,
            Step::Type => self.first_step(),
            step => match self.next_in_metric(step) {
                Some(next) => next,
                None if self.metric + 1 < self.family.metric.len() => {
                    self.metric += 1;
                    self.first_step()
                }
                None => {
                    self.step = Step::Start;
                    return self.advance();
                }
            },
        };
        if !matches!(self.step, Step::Help | Step::Unit | Step::Type) {
            self.build_key()?;
        }
        if self.step == Step::Native {
            self.native = Some(Box::new(self.native_histogram()?));
        }
        Ok(true)
    }

    /// The metric name of the current sample (with the suffix its step adds).
    fn sample_name(&self) -> Cow<'_, str> {
        let name = self.family.name.as_str();
        let suffix = match self.step {
            Step::Count => "_count",
            Step::Sum => "_sum",
            Step::Bucket(_) => "_bucket",
            _ => return Cow::Borrowed(name),
        };
        Cow::Owned(format!("{name}{suffix}"))
    }

    /// The `quantile` or `le` label the current step adds.
    fn magic_label(&self) -> Option<(&'static str, String)> {
        match self.step {
            Step::Quantile(i) => {
                let q = self.current().summary.as_ref()?.quantile.get(i)?.quantile;
                Some(("quantile", format_openmetrics_float(q)))
            }
            Step::Bucket(i) => {
                let bound = self
                    .histogram()
                    .and_then(|h| h.bucket.get(i))
                    .map_or(f64::INFINITY, |b| b.upper_bound);
                Some(("le", format_openmetrics_float(bound)))
            }
            _ => None,
        }
    }

    fn build_key(&mut self) -> Result<()> {
        let mut key = std::mem::take(&mut self.key);
        key.clear();
        key.extend_from_slice(self.sample_name().as_bytes());
        for pair in &self.current().label {
            if pair.name.is_empty() {
                return Err(ParseError::new(format!(
                    "invalid label name: {}",
                    pair.name
                )));
            }
            key.push(SEP);
            key.extend_from_slice(pair.name.as_bytes());
            key.push(PAIR);
            key.extend_from_slice(pair.value.as_bytes());
        }
        if let Some((name, value)) = self.magic_label() {
            key.push(SEP);
            key.extend_from_slice(name.as_bytes());
            key.push(PAIR);
            key.extend_from_slice(value.as_bytes());
        }
        self.key = key;
        Ok(())
    }

    fn timestamp(&self) -> Option<i64> {
        // As Prometheus: 0 means "no timestamp" (proto3 cannot tell unset from zero).
        Some(self.current().timestamp_ms).filter(|t| *t != 0)
    }

    /// The float value of the current sample.
    fn value(&self) -> f64 {
        let m = self.current();
        let either = |float: f64, int: u64| if float != 0.0 { float } else { int as f64 };
        let summary = self.metric_type == dto::MetricType::Summary;
        let (s, h) = (m.summary.as_ref(), m.histogram.as_ref());
        match self.step {
            Step::Plain => match self.metric_type {
                dto::MetricType::Counter => m.counter.as_ref().map_or(0.0, |c| c.value),
                dto::MetricType::Gauge => m.gauge.as_ref().map_or(0.0, |g| g.value),
                _ => m.untyped.as_ref().map_or(0.0, |u| u.value),
            },
            Step::Count if summary => s.map_or(0.0, |s| s.sample_count as f64),
            Step::Count => h.map_or(0.0, |h| either(h.sample_count_float, h.sample_count)),
            Step::Sum if summary => s.map_or(0.0, |s| s.sample_sum),
            Step::Sum => h.map_or(0.0, |h| h.sample_sum),
            Step::Quantile(i) => s.and_then(|s| s.quantile.get(i)).map_or(0.0, |q| q.value),
            Step::Bucket(i) => match h {
                Some(h) => match h.bucket.get(i) {
                    Some(b) => either(b.cumulative_count_float, b.cumulative_count),
                    None => either(h.sample_count_float, h.sample_count),
                },
                None => 0.0,
            },
            _ => 0.0,
        }
    }

    /// The native histogram of the current metric, checked as Prometheus checks one it
    /// ingests.
    fn native_histogram(&self) -> Result<FloatHistogram> {
        let none = dto::Histogram::default();
        let h = self.histogram().unwrap_or(&none);
        let float = h.sample_count_float > 0.0 || h.zero_count_float > 0.0;
        let spans = |spans: &[dto::BucketSpan]| -> Vec<(i64, u64)> {
            spans
                .iter()
                .map(|s| (i64::from(s.offset), u64::from(s.length)))
                .collect()
        };
        let side = |s: &[dto::BucketSpan], deltas: &[i64], counts: &[f64]| {
            let values = if float {
                counts.to_vec()
            } else {
                deltas_to_counts(deltas)
            };
            lay_out(&spans(s), values)
        };
        let fail = |e: String| {
            ParseError::new(format!(
                "invalid native histogram for {}: {e}",
                argus_model::gofmt::quote(&self.family.name)
            ))
        };
        let mut out = FloatHistogram {
            hint: if self.metric_type == dto::MetricType::GaugeHistogram {
                CounterResetHint::Gauge
            } else {
                CounterResetHint::Unknown
            },
            schema: h.schema,
            zero_threshold: h.zero_threshold,
            zero_count: if float {
                h.zero_count_float
            } else {
                h.zero_count as f64
            },
            count: if float {
                h.sample_count_float
            } else {
                h.sample_count as f64
            },
            sum: h.sample_sum,
            positive: side(&h.positive_span, &h.positive_delta, &h.positive_count)
                .map_err(|e| fail(format!("positive side: {e}")))?,
            negative: side(&h.negative_span, &h.negative_delta, &h.negative_count)
                .map_err(|e| fail(format!("negative side: {e}")))?,
            custom_values: Default::default(),
        };
        out.validate().map_err(fail)?;
        if !float {
            out.check_integer_count().map_err(fail)?;
        }
        out.compact();
        Ok(out)
    }

    fn entry(&mut self) -> Entry<'_> {
        let timestamp_ms = self.timestamp();
        let family = &self.family;
        match self.step {
            Step::Help => Entry::Help {
                name: Cow::Borrowed(&family.name),
                help: Cow::Borrowed(&family.help),
            },
            Step::Unit => Entry::Unit {
                name: Cow::Borrowed(&family.name),
                unit: Cow::Borrowed(&family.unit),
            },
            Step::Type => Entry::Type {
                name: Cow::Borrowed(&family.name),
                metric_type: match self.metric_type {
                    dto::MetricType::Counter => MetricType::Counter,
                    dto::MetricType::Gauge => MetricType::Gauge,
                    dto::MetricType::Summary => MetricType::Summary,
                    dto::MetricType::Histogram => MetricType::Histogram,
                    dto::MetricType::GaugeHistogram => MetricType::GaugeHistogram,
                    dto::MetricType::Untyped => MetricType::Unknown,
                },
            },
            Step::Native => Entry::Histogram {
                series: &self.key,
                histogram: self.native.take().unwrap_or_default(),
                timestamp_ms,
            },
            _ => Entry::Series {
                series: &self.key,
                value: self.value(),
                timestamp_ms: self.timestamp(),
            },
        }
    }

    /// The exemplars of the current sample, oldest first: a counter's, a classic bucket's,
    /// or a native histogram's (those need a timestamp, as in Prometheus).
    pub fn exemplars(&self) -> Vec<Exemplar> {
        let convert = |e: &dto::Exemplar| -> Option<Exemplar> {
            let pairs = e
                .label
                .iter()
                .map(|p| {
                    (
                        Cow::Borrowed(p.name.as_str()),
                        Cow::Borrowed(p.value.as_str()),
                    )
                })
                .collect();
            Some(Exemplar {
                labels: sorted_labels(pairs).ok()?,
                value: e.value,
                timestamp_ms: e
                    .timestamp
                    .map(|t| t.seconds.saturating_mul(1000) + i64::from(t.nanos / 1_000_000)),
            })
        };
        let m = self.current();
        let mut out: Vec<Exemplar> = match self.step {
            Step::Plain => m
                .counter
                .as_ref()
                .and_then(|c| c.exemplar.as_ref())
                .and_then(convert)
                .into_iter()
                .collect(),
            Step::Bucket(i) => self
                .histogram()
                .and_then(|h| h.bucket.get(i))
                .and_then(|b| b.exemplar.as_ref())
                .and_then(convert)
                .into_iter()
                .collect(),
            Step::Native => {
                let h = self.histogram();
                let listed = h.map_or(&[][..], |h| &h.exemplars[..]);
                let from_buckets = h
                    .into_iter()
                    .flat_map(|h| h.bucket.iter())
                    .filter_map(|b| b.exemplar.as_ref());
                let source: Vec<&dto::Exemplar> = if listed.is_empty() {
                    from_buckets.collect()
                } else {
                    listed.iter().collect()
                };
                source
                    .into_iter()
                    .filter_map(convert)
                    .filter(|e| e.timestamp_ms.is_some())
                    .collect()
            }
            _ => Vec::new(),
        };
        out.sort_by_key(|e| e.timestamp_ms);
        out
    }

    /// The label set of the current sample: `__name__` (with its suffix), the metric's
    /// labels and the `quantile`/`le` label, sorted. Fails on a repeated label name.
    pub fn labels(&self) -> Result<Labels> {
        let mut pairs: Vec<(Cow<'_, str>, Cow<'_, str>)> =
            Vec::with_capacity(self.current().label.len() + 2);
        pairs.push((
            Cow::Borrowed(argus_model::labels::METRIC_NAME),
            self.sample_name(),
        ));
        for pair in &self.current().label {
            pairs.push((Cow::Borrowed(&pair.name), Cow::Borrowed(&pair.value)));
        }
        if let Some((name, value)) = self.magic_label() {
            pairs.push((Cow::Borrowed(name), Cow::Owned(value)));
        }
        sorted_labels(pairs)
    }
}

#[cfg(test)]
mod tests;
