//! Query evaluation.
//!
//! Every selector's data is loaded once per query (the union of the time ranges all steps
//! need), then the expression is evaluated step by step. Features that are parsed but not
//! evaluated yet fail with an `unsupported` error instead of producing an answer.

use std::collections::HashMap;

use argus_model::{FloatHistogram, Labels, Matcher, is_stale_nan};

use crate::annotations::{self as anno, Annotations};
use crate::ast::*;

/// A histogram sample value, shared between steps without copying.
pub type Hist = std::sync::Arc<FloatHistogram>;

pub(crate) type Xxh3Build = xxhash_rust::xxh3::Xxh3DefaultBuilder;

/// Maps keyed by label sets hash with xxh3 (SipHash showed up at ~8% of range queries).
pub type LabelsMap<V> = HashMap<Labels, V, Xxh3Build>;
pub type LabelsSet = std::collections::HashSet<Labels, Xxh3Build>;

/// Prometheus's default lookback delta.
pub const DEFAULT_LOOKBACK_MS: i64 = 5 * 60 * 1000;

/// Where the engine reads series from.
pub trait Queryable {
    /// Series matching all matchers with their samples in `[mint, maxt]`, sorted by time.
    fn select(&self, mint: i64, maxt: i64, matchers: &[Matcher]) -> Vec<(Labels, Vec<(i64, f64)>)>;

    /// Like [`Self::select`], keeping only each series' newest sample in `[mint, maxt]` —
    /// all an instant vector selector evaluated at one time reads. Stores that can answer
    /// without decoding whole chunks override it.
    fn select_last(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Vec<(Labels, Vec<(i64, f64)>)> {
        let mut series = self.select(mint, maxt, matchers);
        for (_, points) in &mut series {
            if points.len() > 1 {
                points.drain(..points.len() - 1);
            }
        }
        series
    }

    /// Histogram samples of the matching series in `[mint, maxt]`, sorted by time. A series
    /// may have both float and histogram samples (never at the same timestamp).
    fn select_histograms(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Vec<(Labels, Vec<(i64, Hist)>)> {
        let _ = (mint, maxt, matchers);
        Vec::new()
    }

    /// One selector's read: every matching series with its float samples in `[mint, maxt]`
    /// (only the newest one when `newest_only`) and its histogram samples there. Stores that
    /// find both in one pass over the series override it.
    fn select_series(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
        newest_only: bool,
    ) -> Selection {
        select_apart(self, mint, maxt, matchers, newest_only)
    }

    /// Hands each matching series' float samples in `[mint, maxt]` (sorted by time) to
    /// `visit`, one series at a time, with whether the series also has histogram samples
    /// there; stops when `visit` breaks. Series come in label order when `ordered`;
    /// otherwise in any order the store finds cheaper (see [`Self::visit_newest`]). Stores
    /// that can read one series at a time override it; this one selects them all first, in
    /// label order.
    fn visit_floats(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
        ordered: bool,
        visit: &mut dyn FnMut(&Labels, &[(i64, f64)], bool) -> std::ops::ControlFlow<()>,
    ) {
        let _ = ordered;
        let Selection { series, hists } = self.select_series(mint, maxt, matchers, false);
        let mut scratch = Vec::new();
        for (i, (labels, points)) in series.iter().enumerate() {
            let has_hists = hists.get(i).is_some_and(|h| !h.is_empty());
            if visit(labels, points.read(&mut scratch), has_hists).is_break() {
                return;
            }
        }
    }

    /// `visit` with each matching series' newest float sample in `[mint, maxt]` (`None`
    /// when it has none there), one series at a time, with whether it also has histogram
    /// samples there; stops when `visit` breaks. Series come in label order when `ordered`;
    /// otherwise the store may hand them over in any order (for aggregations whose answer
    /// cannot depend on it), which spares sorting them. Stores that know a series' newest
    /// sample without decoding its chunks override it; this one reads them, in label order.
    fn visit_newest(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
        ordered: bool,
        visit: &mut dyn FnMut(&Labels, Option<(i64, f64)>, bool) -> std::ops::ControlFlow<()>,
    ) {
        self.visit_floats(
            mint,
            maxt,
            matchers,
            ordered,
            &mut |labels, points, hists| visit(labels, points.last().copied(), hists),
        );
    }

    /// Start timestamps of the matching series' samples in `[mint, maxt]`: `(sample time,
    /// start time)` for the samples that have one, sorted by sample time. Stores that keep
    /// none answer nothing, and queries then compute as without them.
    fn select_start_timestamps(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Vec<(Labels, Vec<(i64, i64)>)> {
        let _ = (mint, maxt, matchers);
        Vec::new()
    }
}

/// [`Queryable::select_series`] from separate float and histogram reads.
fn select_apart<Q: Queryable + ?Sized>(
    q: &Q,
    mint: i64,
    maxt: i64,
    matchers: &[Matcher],
    newest_only: bool,
) -> Selection {
    let mut series = if newest_only {
        q.select_last(mint, maxt, matchers)
    } else {
        q.select(mint, maxt, matchers)
    };
    let hists = q.select_histograms(mint, maxt, matchers);
    let hists = align_histograms(&mut series, hists);
    let series = series.into_iter().map(|(l, p)| (l, p.into())).collect();
    Selection { series, hists }
}

/// A TSDB series' float chunks in a query's time range, decoded on use. Only the chunk and
/// tombstone lists are kept (a query holds one of these per selected series).
struct ChunkPoints {
    chunks: Vec<argus_tsdb::series::ChunkMeta>,
    deleted: Vec<argus_tsdb::series::Interval>,
    mint: i64,
    maxt: i64,
}

impl ChunkPoints {
    fn float_chunks(&self) -> argus_tsdb::series::FloatChunks<'_> {
        argus_tsdb::series::FloatChunks {
            chunks: &self.chunks,
            deleted: &self.deleted,
        }
    }
}

impl EncodedPoints for ChunkPoints {
    fn decode_into(&self, out: &mut Vec<(i64, f64)>) {
        self.float_chunks().samples_into(self.mint, self.maxt, out);
    }
    fn estimate(&self) -> usize {
        self.float_chunks().estimate_samples(self.mint, self.maxt)
    }
}

/// Float samples a store hands out still encoded: decoded when a query reads them.
pub trait EncodedPoints: Send + Sync {
    /// Replaces `out`'s contents with the samples, sorted by time.
    fn decode_into(&self, out: &mut Vec<(i64, f64)>);
    /// About how many samples that is (from chunk headers; for the sample limit and stats).
    fn estimate(&self) -> usize;
}

/// One selected series' float samples, sorted by time. Samples a store handed out encoded
/// stay encoded until read. The series-at-a-time evaluator walks each series once and
/// decodes it into a reused buffer ([`Points::read`]); the instant operators decode into a
/// reused buffer on a series' first read and keep the decoded samples from its second read
/// on ([`Points::get`]), so an instant query holds compressed chunks rather than every
/// decoded sample at once, while step-by-step evaluation decodes each series at most twice.
#[derive(Default)]
pub struct Points {
    decoded: std::sync::OnceLock<Vec<(i64, f64)>>,
    encoded: Option<Box<dyn EncodedPoints>>,
    /// Read once already through [`Points::get`].
    read_before: std::sync::atomic::AtomicBool,
}

impl Points {
    pub fn encoded(e: Box<dyn EncodedPoints>) -> Self {
        Self {
            decoded: std::sync::OnceLock::new(),
            encoded: Some(e),
            read_before: Default::default(),
        }
    }

    /// The samples: decoded into `scratch` (not kept) on the first call, decoded and kept
    /// from the second call on.
    pub fn get<'a>(&'a self, scratch: &'a mut Vec<(i64, f64)>) -> &'a [(i64, f64)] {
        if self.decoded.get().is_none()
            && !self
                .read_before
                .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            return self.read(scratch);
        }
        self
    }

    /// The number of samples: exact once decoded, otherwise the store's estimate.
    pub fn count(&self) -> usize {
        match (self.decoded.get(), &self.encoded) {
            (Some(d), _) => d.len(),
            (None, Some(e)) => e.estimate(),
            (None, None) => 0,
        }
    }

    /// The samples, decoding them into `scratch` (not kept) when they are not decoded yet.
    pub fn read<'a>(&'a self, scratch: &'a mut Vec<(i64, f64)>) -> &'a [(i64, f64)] {
        if let Some(d) = self.decoded.get() {
            return d;
        }
        match &self.encoded {
            Some(e) => {
                e.decode_into(scratch);
                scratch
            }
            None => &[],
        }
    }
}

impl From<Vec<(i64, f64)>> for Points {
    fn from(v: Vec<(i64, f64)>) -> Self {
        Self {
            decoded: std::sync::OnceLock::from(v),
            encoded: None,
            read_before: Default::default(),
        }
    }
}

impl std::ops::Deref for Points {
    type Target = [(i64, f64)];
    fn deref(&self) -> &[(i64, f64)] {
        self.decoded.get_or_init(|| {
            let mut v = Vec::new();
            if let Some(e) = &self.encoded {
                e.decode_into(&mut v);
            }
            v
        })
    }
}

impl std::fmt::Debug for Points {
    /// Shows decoded samples; does not decode encoded ones.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.decoded.get() {
            Some(d) => f.debug_list().entries(d).finish(),
            None => write!(f, "<encoded, about {} samples>", self.count()),
        }
    }
}

/// What [`Queryable::select_series`] returns.
#[derive(Debug, Default)]
pub struct Selection {
    /// Matching series sorted by labels, with their float samples sorted by time.
    pub series: Vec<(Labels, Points)>,
    /// Empty when no series has histogram samples in range; otherwise the histogram
    /// samples of `series[i]` at `hists[i]`.
    pub hists: Vec<Vec<(i64, Hist)>>,
}

impl Queryable for argus_tsdb::Db {
    fn select_series(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
        newest_only: bool,
    ) -> Selection {
        if newest_only {
            // The head answers most series' newest sample without reading chunks.
            return select_apart(self, mint, maxt, matchers, newest_only);
        }
        // One pass: each series' histogram samples now, its float chunks kept encoded.
        let selected = self.querier(mint, maxt).select(matchers);
        let mut hists = Vec::new();
        let any_hists = selected.iter().any(|s| !s.hists.is_empty());
        let series = selected
            .into_iter()
            .map(|s| {
                if any_hists {
                    hists.push(if s.hists.is_empty() {
                        Vec::new()
                    } else {
                        s.histograms(mint, maxt)
                    });
                }
                let points = ChunkPoints {
                    chunks: s.chunks,
                    deleted: s.deleted,
                    mint,
                    maxt,
                };
                (s.labels, Points::encoded(Box::new(points)))
            })
            .collect();
        Selection { series, hists }
    }

    fn visit_floats(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
        ordered: bool,
        visit: &mut dyn FnMut(&Labels, &[(i64, f64)], bool) -> std::ops::ControlFlow<()>,
    ) {
        let mut samples = Vec::new();
        for s in self.querier(mint, maxt).select_iter(matchers, ordered) {
            s.samples_into(mint, maxt, &mut samples);
            if visit(&s.labels, &samples, !s.hists.is_empty()).is_break() {
                return;
            }
        }
    }

    fn visit_newest(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
        ordered: bool,
        visit: &mut dyn FnMut(&Labels, Option<(i64, f64)>, bool) -> std::ops::ControlFlow<()>,
    ) {
        let querier = self.querier(mint, maxt);
        for (labels, last, hists) in querier.select_last_iter(matchers, ordered) {
            let last = last.map(|s| (s.timestamp_ms, s.value));
            if visit(&labels, last, hists).is_break() {
                return;
            }
        }
    }

    fn select(&self, mint: i64, maxt: i64, matchers: &[Matcher]) -> Vec<(Labels, Vec<(i64, f64)>)> {
        self.querier(mint, maxt)
            .select(matchers)
            .into_iter()
            .map(|s| {
                let mut samples = Vec::new();
                s.samples_into(mint, maxt, &mut samples);
                (s.labels, samples)
            })
            .collect()
    }

    fn select_histograms(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Vec<(Labels, Vec<(i64, Hist)>)> {
        argus_tsdb::Db::select_histograms(self, mint, maxt, matchers)
    }

    fn select_last(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Vec<(Labels, Vec<(i64, f64)>)> {
        self.querier(mint, maxt)
            .select_last(matchers)
            .into_iter()
            .map(|(labels, last)| (labels, vec![(last.timestamp_ms, last.value)]))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    #[error("{0}")]
    Execution(String),
    #[error("not supported yet: {0}")]
    Unsupported(String),
    #[error("query processing would load too many samples into memory in query execution")]
    TooManySamples,
    #[error("query timed out in expression evaluation")]
    Timeout,
    #[error("query was canceled in expression evaluation")]
    Canceled,
}

pub type Result<T, E = EvalError> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    pub t: i64,
    pub v: f64,
    /// Set for a histogram sample (`v` is then meaningless).
    pub h: Option<Hist>,
    /// The metric name (with `__type__` and `__unit__`) is to be removed. Operators only mark
    /// it; without delayed name removal every node's result is settled at once (see
    /// [`Ctx::eval`]), with it the query's result is settled at the end.
    pub drop_name: bool,
}

impl Sample {
    pub fn float(labels: Labels, t: i64, v: f64) -> Self {
        Self {
            labels,
            t,
            v,
            h: None,
            drop_name: false,
        }
    }

    pub fn histogram(labels: Labels, t: i64, h: Hist) -> Self {
        Self {
            labels,
            t,
            v: 0.0,
            h: Some(h),
            drop_name: false,
        }
    }

    /// The same sample with its name marked for removal.
    pub fn name_dropped(self) -> Self {
        self.marked(true)
    }

    /// The same sample with the mark `drop_name` (typically the input's, carried over).
    pub fn marked(self, drop_name: bool) -> Self {
        Self { drop_name, ..self }
    }

    /// Removes the name now if it is marked for removal.
    fn settle(&mut self) {
        settle(&mut self.labels, &mut self.drop_name);
    }
}

/// Removes the name from `labels` now if `marked`, and clears the mark.
pub(super) fn settle(labels: &mut Labels, marked: &mut bool) {
    if *marked {
        *labels = drop_name(labels);
        *marked = false;
    }
}

/// The start time recorded for the sample at `t` in `starts` (0: unknown).
fn start_at(starts: &[(i64, i64)], t: i64) -> i64 {
    starts
        .binary_search_by_key(&t, |p| p.0)
        .map_or(0, |i| starts[i].1)
}

/// The entries of a time-sorted list timed in `(after, upto]`.
fn timed_within<T>(list: &[(i64, T)], after: i64, upto: i64) -> &[(i64, T)] {
    let lo = list.partition_point(|p| p.0 <= after);
    let hi = list.partition_point(|p| p.0 <= upto);
    &list[lo..hi.max(lo)]
}

#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub points: Vec<(i64, f64)>,
    /// Histogram samples, by time (a series may mix them with float samples).
    pub hists: Vec<(i64, Hist)>,
    /// As [`Sample::drop_name`].
    pub drop_name: bool,
    /// `(sample time, start time)` of the samples that have a start timestamp, by time. Only
    /// range selectors over stores that keep them fill it; subqueries and other expressions
    /// leave it empty (as upstream, they cut the propagation of start timestamps).
    pub starts: Vec<(i64, i64)>,
}

impl Series {
    pub fn floats(labels: Labels, points: Vec<(i64, f64)>) -> Self {
        Self {
            labels,
            points,
            hists: Vec::new(),
            drop_name: false,
            starts: Vec::new(),
        }
    }

    /// The start timestamp of the sample at `t` (0: unknown).
    pub fn start_of(&self, t: i64) -> i64 {
        start_at(&self.starts, t)
    }

    /// Whether the start timestamps say the counter was reset between its samples at
    /// `prev_t` and `t`.
    pub fn started_between(&self, prev_t: i64, t: i64) -> bool {
        crate::functions::start_reset(self.start_of(prev_t), prev_t, self.start_of(t), t)
    }

    /// Removes the name now if it is marked for removal.
    fn settle(&mut self) {
        settle(&mut self.labels, &mut self.drop_name);
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar { t: i64, v: f64 },
    String { t: i64, v: String },
    Vector(Vec<Sample>),
    Matrix(Vec<Series>),
}

#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub lookback_ms: i64,
    /// `--query.max-samples`.
    pub max_samples: usize,
    /// Evaluation stops with `EvalError::Timeout` after this instant.
    pub deadline: Option<std::time::Instant>,
    /// Set by the caller when the client has gone away; evaluation stops with `Canceled`.
    pub canceled: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// `--enable-feature=promql-delayed-name-removal`: operators that drop the metric name
    /// only mark it, and it is removed from the query's result at the end — so
    /// `label_replace(rate(x[5m]), "__name__", …)` can still read or keep it, and
    /// `sum by (__name__)` groups by it.
    pub delayed_name_removal: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            lookback_ms: DEFAULT_LOOKBACK_MS,
            max_samples: 50_000_000,
            deadline: None,
            canceled: None,
            delayed_name_removal: false,
        }
    }
}

pub struct Engine {
    pub opts: EngineOptions,
    /// Figures of the last evaluation (for the API's `stats` parameter).
    stats: std::sync::Mutex<QueryStats>,
}

/// What an evaluation read and how long its parts took.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct QueryStats {
    /// Samples read from storage.
    pub samples: usize,
    /// Reading the selectors' data.
    pub prepare: std::time::Duration,
    /// Evaluating the expression on it.
    pub eval: std::time::Duration,
}

/// Loaded data per selector (keyed by the selector's span, unique within a query).
type Loaded = HashMap<(usize, usize), Vec<(Labels, Points)>>;

/// Histogram samples per selector, aligned by index with the selector's [`Loaded`] series.
type LoadedHists = HashMap<(usize, usize), Vec<Vec<(i64, Hist)>>>;

/// Start timestamps per selector (see [`Queryable::select_start_timestamps`]), aligned by
/// index with the selector's [`Loaded`] series; only selectors the store had some for.
type LoadedStarts = HashMap<(usize, usize), Vec<Vec<(i64, i64)>>>;

/// Per-series values of an instant query's `name(selector[range])` computed while reading
/// (see [`Engine::stream_direct`]), keyed by the selector's span; in label order.
type LoadedDirect = HashMap<(usize, usize), Vec<(Labels, f64)>>;

/// Aggregations of an instant query computed while reading (see
/// [`Engine::stream_aggregate`]), keyed by the aggregation's span.
type LoadedAggregates = HashMap<(usize, usize), FusedAggregate>;

/// An aggregation computed while the store handed over its input one series at a time.
struct FusedAggregate {
    /// Each group's labels and value, groups in order of first appearance (the order the
    /// aggregation would have made of the same input).
    groups: Vec<(Labels, f64)>,
    /// For `rate`/`increase`: the first input series of each metric name, whose name the
    /// counter-name check reads at evaluation.
    counter_checks: Vec<Labels>,
}

/// How [`Engine::stream_aggregate`] went.
enum Fused {
    /// Computed and stored.
    Done,
    /// Not a shape it computes, or a series would need the input's own checks (several
    /// metric names whose removal could collide): the input is read as usual.
    Declined,
    /// A series holds histogram samples: the selector has to be read whole.
    Histograms,
}

/// Range selectors of a range query left unread at load: `(mint, maxt)` of each, keyed by
/// the selector's span. The series-at-a-time evaluator reads them from the store one
/// series at a time (see [`range_streamable`]).
type Deferred = HashMap<(usize, usize), (i64, i64)>;

/// Where [`Engine::load`] puts what it reads.
struct LoadTarget<'x> {
    floats: &'x mut Loaded,
    /// Range selectors to leave unread (see [`range_streamable`]), and where they go.
    defer: &'x std::collections::HashSet<(usize, usize)>,
    deferred: &'x mut Deferred,
    direct: &'x mut LoadedDirect,
    aggregates: &'x mut LoadedAggregates,
    /// An instant query: range functions straight over a selector may be computed as the
    /// store hands over each series instead of after selecting them all.
    stream: bool,
    hists: &'x mut LoadedHists,
    starts: &'x mut LoadedStarts,
    /// Selectors read the way Prometheus reads for `histogram_count|sum|avg` (see
    /// [`stats_decoded`]).
    stats: &'x std::collections::HashSet<(usize, usize)>,
}

/// Selectors whose histograms only feed `histogram_count`, `histogram_sum` or
/// `histogram_avg`. Prometheus reads those through an iterator that skips the buckets and
/// detects counter resets as it goes, so their samples carry "reset"/"not reset" hints
/// (which aggregations can then find conflicting). Binary operators start afresh; subqueries
/// and the bucket-reading functions read normally.
fn stats_decoded(expr: &Expr) -> std::collections::HashSet<(usize, usize)> {
    fn walk(e: &Expr, under: bool, out: &mut std::collections::HashSet<(usize, usize)>) {
        match e {
            Expr::Vector(sel) | Expr::Matrix { selector: sel, .. } => {
                if under {
                    out.insert((sel.span.start, sel.span.end));
                }
            }
            Expr::Call { func, args, .. } => {
                let under = match func.name {
                    "histogram_count" | "histogram_sum" | "histogram_avg" => true,
                    "histogram_quantile" | "histogram_quantiles" | "histogram_fraction" => false,
                    _ => under,
                };
                args.iter().for_each(|a| walk(a, under, out));
            }
            Expr::Binary { lhs, rhs, .. } => {
                walk(lhs, false, out);
                walk(rhs, false, out);
            }
            Expr::Subquery { expr, .. } => walk(expr, false, out),
            other => other
                .children()
                .into_iter()
                .for_each(|c| walk(c, under, out)),
        }
    }
    let mut out = std::collections::HashSet::new();
    walk(expr, false, &mut out);
    out
}

/// The range selectors of a range query that only the series-at-a-time evaluator's range
/// functions read (`name(selector[range])` reached through nodes it evaluates itself,
/// bridges, or evaluates on a subquery's grid, not through a node evaluated step by step):
/// those can be read from the store one series at a time instead of selected up front.
/// Mirrors the dispatch of `Ctx::eval_range_node` and `Ctx::subquery_function`.
fn range_streamable(e: &Expr, out: &mut std::collections::HashSet<(usize, usize)>) {
    match e {
        Expr::Call { func, args, .. }
            if args.len() == 1 && crate::functions::is_direct_range(func.name) =>
        {
            match &args[0] {
                Expr::Matrix { selector, .. } if !selector.anchored && !selector.smoothed => {
                    out.insert((selector.span.start, selector.span.end));
                }
                // `subquery_function` evaluates the inner expression here (or, where it
                // would go step by step, asks for a restart).
                Expr::Subquery {
                    expr: inner,
                    at: None,
                    ..
                } => range_streamable(inner, out),
                _ => {}
            }
        }
        // Evaluated step by step: what they read comes from loaded data.
        Expr::Call { func, args, .. }
            if args.iter().any(|a| a.value_type() == ValueType::Matrix)
                || matches!(func.name, "timestamp" | "start_timestamp" | "info") => {}
        Expr::Subquery { .. } => {}
        _ => e
            .children()
            .into_iter()
            .for_each(|c| range_streamable(c, out)),
    }
}

/// [`range_streamable`] for an instant query: the selectors of the subqueries it evaluates
/// once (not inside another subquery), whose inner expressions run in the series-at-a-time
/// evaluator.
fn instant_streamable(e: &Expr, out: &mut std::collections::HashSet<(usize, usize)>) {
    match e {
        Expr::Subquery { expr, .. } => range_streamable(expr, out),
        _ => e
            .children()
            .into_iter()
            .for_each(|c| instant_streamable(c, out)),
    }
}

/// Counter-reset hints as the bucket-skipping reader sets them: each counter histogram
/// after the first says whether it reset against the one before.
fn stats_hints(points: &mut [(i64, Hist)]) {
    use argus_model::CounterResetHint;
    for i in 1..points.len() {
        if points[i].1.hint == CounterResetHint::Gauge {
            continue;
        }
        let mut h = (*points[i].1).clone();
        h.hint = CounterResetHint::Unknown;
        h.hint = if h.detect_reset(&points[i - 1].1) {
            CounterResetHint::Reset
        } else {
            CounterResetHint::NotReset
        };
        points[i].1 = Hist::new(h);
    }
}

struct Ctx<'a> {
    /// When evaluation (after loading) started.
    began_eval: std::time::Instant,
    engine: &'a Engine,
    /// The store, for lookups that depend on evaluated values (`info()`).
    store: &'a dyn Queryable,
    data: Loaded,
    ddata: LoadedDirect,
    adata: LoadedAggregates,
    /// Range selectors read one series at a time as they are evaluated.
    deferred: Deferred,
    /// Samples read so far, against `--query.max-samples`.
    loaded: std::cell::Cell<usize>,
    /// Set when evaluation must start again without reading series one at a time: a
    /// deferred selector turned out to hold histograms or several metric names, or was
    /// reached by a reader of loaded data ([`Ctx::unloaded`]).
    restart: std::cell::Cell<bool>,
    hdata: LoadedHists,
    /// Start timestamps; a query that loaded any is evaluated step by step, and range
    /// functions that use them (`rate`, `increase`, `irate`, `resets`) take them into account.
    sdata: LoadedStarts,
    /// Warnings and infos raised so far.
    annos: Annotations,
    /// Raised where the context is only borrowed (smoothed selectors, sliding range
    /// functions); merged into `annos` as evaluation goes on and at the end.
    shared_annos: std::cell::RefCell<Annotations>,
    start: i64,
    end: i64,
    /// Default subquery step (the query step, or 1m for instant queries).
    interval: i64,
    /// The query's step (0 for instant queries), for `step()`.
    query_step: i64,
}

impl Engine {
    pub fn new(opts: EngineOptions) -> Self {
        Self {
            opts,
            stats: Default::default(),
        }
    }

    /// Figures of the last evaluation.
    pub fn stats(&self) -> QueryStats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, f: impl FnOnce(&mut QueryStats)) {
        f(&mut self.stats.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Evaluates at one time (milliseconds).
    pub fn instant(&self, q: &dyn Queryable, expr: &Expr, t: i64) -> Result<Value> {
        self.instant_annotated(q, expr, t).map(|(v, _)| v)
    }

    /// [`Self::instant`] with the warnings and infos the evaluation raised.
    pub fn instant_annotated(
        &self,
        q: &dyn Queryable,
        expr: &Expr,
        t: i64,
    ) -> Result<(Value, Annotations)> {
        let resolved = expr.resolve_durations(0, 0);
        let expr = &resolved;
        // At most twice: reading subqueries' series one at a time, then, if that had to
        // stop, not.
        let mut stream = true;
        let (ctx, v) = loop {
            let mut ctx = self.context(q, expr, t, t, 60_000, 0, stream)?;
            let v = ctx.eval(expr, t);
            // Whatever the evaluation made of the request (an error some node may have
            // absorbed), the answer is not used.
            if ctx.restart.get() && stream {
                stream = false;
                continue;
            }
            break (ctx, v?);
        };
        let v = match settled(v)? {
            Value::Vector(mut vec) => {
                vec.iter_mut().for_each(|s| s.t = t);
                Value::Vector(vec)
            }
            other => other,
        };
        Ok((v, ctx.into_annotations()))
    }

    /// Evaluates at every step of `[start, end]`; the result is a matrix (or, for a scalar
    /// expression, a matrix with one unlabelled series), as the HTTP API returns it.
    pub fn range(
        &self,
        q: &dyn Queryable,
        expr: &Expr,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<Vec<Series>> {
        self.range_annotated(q, expr, start, end, step)
            .map(|(s, _)| s)
    }

    /// [`Self::range`] with the warnings and infos the evaluation raised.
    pub fn range_annotated(
        &self,
        q: &dyn Queryable,
        expr: &Expr,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<(Vec<Series>, Annotations)> {
        let resolved = check_range_query(expr, step)?.resolve_durations(step, end - start);
        if end < start {
            return Ok((Vec::new(), Annotations::default()));
        }
        let expr = &resolved;
        let grid = range::Grid {
            start,
            step,
            n: ((end - start) / step + 1) as usize,
        };
        // At most twice: reading series one at a time, then, if that had to stop, not.
        let mut stream = true;
        let (ctx, value) = loop {
            let mut ctx = self.context(q, expr, start, end, step, step, stream)?;
            warn_sorting(expr, &mut ctx.annos);
            if !ctx.hdata.is_empty() || !ctx.sdata.is_empty() {
                // Histogram samples and start timestamps take the step-by-step path.
                let series = ctx.stepwise(expr, start, end, step)?;
                return Ok((series, ctx.into_annotations()));
            }
            let value = ctx.eval_range(expr, &grid);
            if ctx.restart.get() && stream {
                stream = false;
                continue;
            }
            break (ctx, value);
        };
        let series = match value? {
            range::RVal::Scalar(v) => vec![range::StepSeries {
                labels: Labels::empty(),
                vals: v.into_iter().map(Some).collect(),
                drop_name: false,
            }],
            range::RVal::Vector(series) => series,
            range::RVal::String(_) => {
                return Err(EvalError::Execution(
                    "unexpected value type in range query".into(),
                ));
            }
        };
        // Series with equal labels (once marked names are removed) merge; two values at one
        // step are the instant engine's "same labelset" error at that step.
        let mut out: LabelsMap<Vec<(i64, f64)>> = Default::default();
        let mut total = 0usize;
        for mut s in series {
            settle(&mut s.labels, &mut s.drop_name);
            let points = out.entry(s.labels).or_default();
            let before = points.len();
            points.extend(
                s.vals
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| v.map(|v| (grid.t(i), v))),
            );
            total += points.len() - before;
            if before > 0 {
                points.sort_by_key(|p| p.0);
                if points.windows(2).any(|w| w[0].0 == w[1].0) {
                    return Err(same_labelset());
                }
            }
            if total > self.opts.max_samples {
                return Err(EvalError::TooManySamples);
            }
        }
        Ok((sorted_series(out), ctx.into_annotations()))
    }

    /// The range query evaluated step by step with the instant engine: the reference the
    /// series-at-a-time evaluation is tested against.
    pub fn range_stepwise(
        &self,
        q: &dyn Queryable,
        expr: &Expr,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<Vec<Series>> {
        let resolved = check_range_query(expr, step)?.resolve_durations(step, end - start);
        let expr = &resolved;
        let mut ctx = self.context(q, expr, start, end, step, step, false)?;
        ctx.stepwise(expr, start, end, step)
    }

    /// Loads what `expr` reads. With `stream`, an instant query computes range functions
    /// over selectors while reading, and a range query leaves the selectors only its range
    /// functions read to be read one series at a time.
    #[allow(clippy::too_many_arguments)]
    fn context<'a>(
        &'a self,
        q: &'a dyn Queryable,
        expr: &Expr,
        start: i64,
        end: i64,
        interval: i64,
        query_step: i64,
        stream: bool,
    ) -> Result<Ctx<'a>> {
        let began = std::time::Instant::now();
        let mut data = Loaded::new();
        let mut deferred = Deferred::new();
        let mut defer = std::collections::HashSet::new();
        match (stream, query_step > 0) {
            (true, true) => range_streamable(expr, &mut defer),
            (true, false) => instant_streamable(expr, &mut defer),
            (false, _) => {}
        }
        let mut ddata = LoadedDirect::new();
        let mut adata = LoadedAggregates::new();
        let mut hdata = LoadedHists::new();
        let mut sdata = LoadedStarts::new();
        let mut loaded = 0usize;
        self.load(
            q,
            (start, end),
            expr,
            start,
            end,
            interval,
            &mut LoadTarget {
                floats: &mut data,
                direct: &mut ddata,
                aggregates: &mut adata,
                stream: stream && query_step == 0 && start == end,
                defer: &defer,
                deferred: &mut deferred,
                hists: &mut hdata,
                starts: &mut sdata,
                stats: &stats_decoded(expr),
            },
            &mut loaded,
        )?;
        if !deferred.is_empty() && (!hdata.is_empty() || !sdata.is_empty()) {
            // Histogram samples and start timestamps take step-by-step paths, which read
            // loaded data.
            return self.context(q, expr, start, end, interval, query_step, false);
        }
        self.record(|s| {
            *s = QueryStats {
                samples: loaded,
                prepare: began.elapsed(),
                eval: Default::default(),
            }
        });
        Ok(Ctx {
            began_eval: std::time::Instant::now(),
            engine: self,
            store: q,
            data,
            ddata,
            adata,
            deferred,
            loaded: std::cell::Cell::new(loaded),
            restart: std::cell::Cell::new(false),
            hdata,
            sdata,
            annos: Annotations::default(),
            shared_annos: Default::default(),
            start,
            end,
            interval,
            query_step,
        })
    }

    /// Loads every selector's data for evaluation times `[start, end]`.
    #[allow(clippy::too_many_arguments)]
    fn load(
        &self,
        q: &dyn Queryable,
        query: (i64, i64),
        expr: &Expr,
        start: i64,
        end: i64,
        interval: i64,
        data: &mut LoadTarget<'_>,
        loaded: &mut usize,
    ) -> Result<()> {
        let mut put = |sel: &VectorSelector, range: i64, data: &mut LoadTarget<'_>| -> Result<()> {
            // With `@` every step reads the same instant; otherwise the whole query range.
            let (s, e) = match sel.at {
                Some(a) => (a.time(query.0, query.1), a.time(query.0, query.1)),
                None => (start, end),
            };
            let lookback = if range > 0 {
                range
            } else {
                self.opts.lookback_ms
            };
            // Extended selectors also see one lookback delta before the range (anchored,
            // smoothed) and after it (smoothed).
            let before = if range > 0 && (sel.anchored || sel.smoothed) {
                self.opts.lookback_ms
            } else {
                0
            };
            let after = if sel.smoothed {
                self.opts.lookback_ms
            } else {
                0
            };
            self.check_limits()?;
            let mint = s - sel.offset_ms - lookback - before;
            let maxt = e - sel.offset_ms + after;
            let key = (sel.span.start, sel.span.end);
            if data.defer.contains(&key)
                && q.select_start_timestamps(mint, maxt, &sel.matchers)
                    .is_empty()
            {
                data.deferred.insert(key, (mint, maxt));
                return Ok(());
            }
            // An instant selector read at a single time needs only each series' newest sample.
            let newest_only = range == 0 && s == e && !sel.smoothed;
            let Selection { series, mut hists } =
                q.select_series(mint, maxt, &sel.matchers, newest_only);
            *loaded += series.iter().map(|(_, p)| p.count()).sum::<usize>();
            if data.stats.contains(&key) {
                hists.iter_mut().for_each(|h| stats_hints(h));
            }
            if !hists.is_empty() {
                *loaded += hists.iter().map(Vec::len).sum::<usize>();
                data.hists.insert(key, hists);
            }
            if *loaded > self.opts.max_samples {
                return Err(EvalError::TooManySamples);
            }
            let starts = q.select_start_timestamps(mint, maxt, &sel.matchers);
            if !starts.is_empty() {
                let mut by_labels: LabelsMap<Vec<(i64, i64)>> = starts.into_iter().collect();
                let aligned = series
                    .iter()
                    .map(|(l, _)| by_labels.remove(l).unwrap_or_default())
                    .collect();
                data.starts.insert(key, aligned);
            }
            data.floats.insert(key, series);
            Ok(())
        };
        match expr {
            Expr::Vector(sel) => put(sel, 0, data),
            Expr::Matrix {
                selector, range_ms, ..
            } => put(selector, *range_ms, data),
            Expr::Subquery {
                expr: inner,
                range_ms,
                step_ms,
                offset_ms,
                at,
                ..
            } => {
                let (s, e) = match at {
                    Some(a) => (a.time(query.0, query.1), a.time(query.0, query.1)),
                    None => (start, end),
                };
                let step = step_ms.unwrap_or(interval);
                self.load(
                    q,
                    query,
                    inner,
                    s - offset_ms - range_ms,
                    e - offset_ms,
                    step,
                    data,
                    loaded,
                )
            }
            Expr::Number { .. } | Expr::String { .. } => Ok(()),
            Expr::Paren { expr, .. } | Expr::Unary { expr, .. } => {
                self.load(q, query, expr, start, end, interval, data, loaded)
            }
            Expr::Binary { lhs, rhs, .. } => {
                self.load(q, query, lhs, start, end, interval, data, loaded)?;
                self.load(q, query, rhs, start, end, interval, data, loaded)
            }
            Expr::Aggregate {
                op,
                expr: inner,
                param: None,
                grouping,
                without,
                span,
            } if data.stream && query == (start, end) && fusable(*op, grouping, *without) => {
                let agg = (*op, grouping.as_slice(), *without, *span);
                match self.stream_aggregate(q, agg, inner, start, data, loaded)? {
                    Fused::Done => Ok(()),
                    Fused::Declined => {
                        self.load(q, query, inner, start, end, interval, data, loaded)
                    }
                    // Straight to the selector: reading it series by series would stop at
                    // the same histograms.
                    Fused::Histograms => match &**inner {
                        Expr::Call { args, .. } => {
                            self.load(q, query, &args[0], start, end, interval, data, loaded)
                        }
                        other => self.load(q, query, other, start, end, interval, data, loaded),
                    },
                }
            }
            Expr::Aggregate {
                op,
                expr,
                param,
                grouping,
                without,
                span,
            } => {
                if let (
                    AggOp::Topk | AggOp::Bottomk,
                    Some(Expr::Number { value: k, .. }),
                    Expr::Vector(sel),
                ) = (op, param.as_deref(), &**expr)
                    && data.stream
                    && query == (start, end)
                    && !k.is_nan()
                {
                    let agg = (*op, *k, grouping.as_slice(), *without, *span);
                    if let Fused::Done = self.stream_topk(q, agg, sel, start, data, loaded)? {
                        return Ok(());
                    }
                }
                if let Some(p) = param {
                    self.load(q, query, p, start, end, interval, data, loaded)?;
                }
                self.load(q, query, expr, start, end, interval, data, loaded)
            }
            // `info()`'s second argument only describes the info series; they are looked up
            // when the base series are known.
            Expr::Call { func, args, .. } if func.name == "info" => match args.first() {
                Some(a) => self.load(q, query, a, start, end, interval, data, loaded),
                None => Ok(()),
            },
            Expr::Call { func, args, .. }
                if data.stream
                    && query == (start, end)
                    && args.len() == 1
                    && crate::functions::is_direct_range(func.name) =>
            {
                if let Expr::Matrix {
                    selector, range_ms, ..
                } = &args[0]
                    && !selector.anchored
                    && !selector.smoothed
                    && self.stream_direct(q, func.name, selector, *range_ms, start, data, loaded)?
                {
                    return Ok(());
                }
                self.load(q, query, &args[0], start, end, interval, data, loaded)
            }
            Expr::Call { args, .. } => {
                for a in args {
                    self.load(q, query, a, start, end, interval, data, loaded)?;
                }
                Ok(())
            }
        }
    }

    /// Stops a query once the deadline has passed or the client has gone away.
    fn check_limits(&self) -> Result<()> {
        if let Some(deadline) = self.opts.deadline
            && std::time::Instant::now() > deadline
        {
            return Err(EvalError::Timeout);
        }
        if self
            .opts
            .canceled
            .as_ref()
            .is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed))
        {
            return Err(EvalError::Canceled);
        }
        Ok(())
    }

    /// [`Self::check_limits`] while a store hands over series one at a time: every
    /// [`VISITS_PER_CHECK`] series, so that reading a million series stops within
    /// milliseconds of the deadline or the client's leaving.
    fn check_visit(&self, visited: &mut usize) -> Result<()> {
        *visited += 1;
        if *visited % VISITS_PER_CHECK == 1 {
            self.check_limits()
        } else {
            Ok(())
        }
    }

    /// An instant query's `op by|without (...) (selector)` or `op by|without (...)
    /// (name(selector[range]))` at `t` (`op` one [`fusable`] accepts, `name` a direct range
    /// function), computed while the store hands over one series at a time: the query holds
    /// one running value per group instead of a value per series. The store may hand the
    /// series over in any order (see below); the groups come out in the order label-ordered
    /// input gives. Declined where the input would need checks of its own (start timestamps; a
    /// second metric name whose removal could make two inputs equal) and stopped at
    /// histogram samples. Counts the samples read against `--query.max-samples`.
    fn stream_aggregate(
        &self,
        q: &dyn Queryable,
        (op, grouping, without, span): (AggOp, &[String], bool, Span),
        inner: &Expr,
        t: i64,
        data: &mut LoadTarget<'_>,
        loaded: &mut usize,
    ) -> Result<Fused> {
        let (sel, range, func) = match inner {
            Expr::Vector(sel) => (sel, 0, None),
            Expr::Call { func, args, .. }
                if args.len() == 1 && crate::functions::is_direct_range(func.name) =>
            {
                match &args[0] {
                    Expr::Matrix {
                        selector, range_ms, ..
                    } => (selector, *range_ms, Some(func.name)),
                    _ => return Ok(Fused::Declined),
                }
            }
            _ => return Ok(Fused::Declined),
        };
        let lookback = self.opts.lookback_ms;
        let back = if func.is_some() { range } else { lookback };
        let Some((mint, ts)) = visit_window(q, sel, back, t) else {
            return Ok(Fused::Declined);
        };
        // Without delayed name removal, a function's result whose names, once removed, make
        // two series equal is an error (see `eval_settling`); one metric name never can.
        let marks = !self.opts.delayed_name_removal
            && func.is_some_and(|f| !crate::functions::direct_keeps_name(f));
        let checks_counters = matches!(func, Some("rate" | "increase"));
        // The series are read in whatever order the store finds cheapest (for the head:
        // no sort by labels, and the series visited in the order they lie in memory), as
        // Prometheus's engine reads them. A count or a group cannot depend on that order;
        // the others can only in rounding (sums are compensated) and in the sign of a zero
        // `min`/`max` picks, as Prometheus's do. With several groups, each remembers its
        // smallest series by labels, where label-ordered input would have started it, and
        // the groups are put back in that order.
        let mut first_seen = crate::aggregate::FirstSeen::new(grouping, without);
        let budget = self.opts.max_samples.saturating_sub(*loaded);
        let mut grouper = crate::aggregate::Grouper::new(grouping, without);
        let mut accs: Vec<crate::aggregate::Running> = Vec::new();
        let mut names: Option<Labels> = None;
        let mut counter_checks = crate::functions::CounterNames::default();
        let (mut read, mut visited) = (0usize, 0usize);
        let mut stopped: Option<Result<Fused>> = None;
        // One series: its labels, whether it has histogram samples, its value (if any) and
        // how many samples were read for it.
        let mut take = |labels: &Labels, hists: bool, v: Option<f64>, n: usize| {
            use std::ops::ControlFlow::{Break, Continue};
            if let Some(stop) = self.visit_checks(&mut visited, &mut read, budget, hists, n) {
                stopped = Some(stop);
                return Break(());
            }
            let Some(v) = v else {
                return Continue(());
            };
            if marks {
                match &names {
                    None => names = Some(labels.retain(is_name_label)),
                    Some(first) if !labels.retained_eq(is_name_label, first) => {
                        stopped = Some(Ok(Fused::Declined));
                        return Break(());
                    }
                    Some(_) => {}
                }
            }
            if checks_counters {
                counter_checks.note(labels);
            }
            let g = grouper.group(labels);
            first_seen.saw(g, labels);
            match accs.get_mut(g) {
                Some(acc) => acc.add(v),
                None => match crate::aggregate::Running::new(op, v) {
                    Some(acc) => accs.push(acc),
                    None => {
                        stopped = Some(Ok(Fused::Declined));
                        return Break(());
                    }
                },
            }
            Continue(())
        };
        match func {
            Some(name) => q.visit_floats(mint, ts, &sel.matchers, false, &mut |l, points, h| {
                let v = if h {
                    None
                } else {
                    direct_window_value(name, points, range, ts)
                };
                take(l, h, v, points.len())
            }),
            // An instant selector reads each series' newest sample.
            None => q.visit_newest(mint, ts, &sel.matchers, false, &mut |labels, last, h| {
                let v = last.and_then(|p| fresh_value(p, ts, lookback));
                take(labels, h, v, usize::from(last.is_some()))
            }),
        }
        if let Some(stopped) = stopped {
            return stopped;
        }
        *loaded += read;
        let groups: Vec<(Labels, f64)> = grouper
            .keys
            .into_iter()
            .zip(accs.iter().map(crate::aggregate::Running::value))
            .collect();
        let groups = first_seen.restore(groups);
        data.aggregates.insert(
            (span.start, span.end),
            FusedAggregate {
                groups,
                counter_checks: counter_checks.into_series().collect(),
            },
        );
        Ok(Fused::Done)
    }

    /// What every series handed over to [`Self::stream_aggregate`], [`Self::stream_topk`]
    /// or [`Self::stream_direct`] passes first: the deadline and cancel checks
    /// ([`Self::check_visit`]), histogram samples (which need the selector read whole) and
    /// the sample limit, counting `n` more samples read out of `budget`. `Some` says how the
    /// read stops.
    fn visit_checks(
        &self,
        visited: &mut usize,
        read: &mut usize,
        budget: usize,
        hists: bool,
        n: usize,
    ) -> Option<Result<Fused>> {
        if let Err(e) = self.check_visit(visited) {
            return Some(Err(e));
        }
        if hists {
            return Some(Ok(Fused::Histograms));
        }
        *read += n;
        (*read > budget).then_some(Err(EvalError::TooManySamples))
    }

    /// An instant query's `topk(k, selector)` or `bottomk(k, selector)` (`k` a number,
    /// `by`/`without` allowed) at `t`, computed while the store hands over one series at a
    /// time: each group keeps its best `k` series so far, so the query holds `k` series per
    /// group instead of every series. The kept ones stay in the order the loaded path's
    /// stable sort of label-ordered input gives (value, NaN last, ties in label order), so
    /// the answer is the same; as ties are broken by labels, the series are read in any
    /// order (no sort), and the groups are put back in the order of their first appearance
    /// in label-ordered input ([`crate::aggregate::FirstSeen`]). Declined for start
    /// timestamps, stopped at histogram samples (whose info annotation the loaded path
    /// raises). Counts the samples read against `--query.max-samples`.
    fn stream_topk(
        &self,
        q: &dyn Queryable,
        (op, k, grouping, without, span): (AggOp, f64, &[String], bool, Span),
        sel: &VectorSelector,
        t: i64,
        data: &mut LoadTarget<'_>,
        loaded: &mut usize,
    ) -> Result<Fused> {
        let lookback = self.opts.lookback_ms;
        let Some((mint, ts)) = visit_window(q, sel, lookback, t) else {
            return Ok(Fused::Declined);
        };
        crate::aggregate::check_count(k)?;
        let k = crate::aggregate::topk_count(k);
        let budget = self.opts.max_samples.saturating_sub(*loaded);
        let mut grouper = crate::aggregate::Grouper::new(grouping, without);
        let mut kept: Vec<Vec<(f64, Labels)>> = Vec::new();
        let (mut read, mut visited) = (0usize, 0usize);
        let mut stopped: Option<Result<Fused>> = None;
        // Read in any order: ties are broken by labels, and the groups are put back in the
        // order label-ordered input makes.
        let mut first_seen = crate::aggregate::FirstSeen::new(grouping, without);
        q.visit_newest(
            mint,
            ts,
            &sel.matchers,
            false,
            &mut |labels, last, hists| {
                use std::ops::ControlFlow::{Break, Continue};
                let n = usize::from(last.is_some());
                if let Some(stop) = self.visit_checks(&mut visited, &mut read, budget, hists, n) {
                    stopped = Some(stop);
                    return Break(());
                }
                let Some(v) = last.and_then(|p| fresh_value(p, ts, lookback)) else {
                    return Continue(());
                };
                let g = grouper.group(labels);
                if g == kept.len() {
                    kept.push(Vec::new());
                }
                first_seen.saw(g, labels);
                let group = &mut kept[g];
                // After every kept series that comes before it.
                let at = group.partition_point(|(w, kept)| {
                    crate::aggregate::topk_order(op, *w, v)
                        .then_with(|| kept.cmp(labels))
                        .is_lt()
                });
                if at < k {
                    if group.len() == k {
                        group.pop();
                    }
                    group.insert(at, (v, labels.clone()));
                }
                Continue(())
            },
        );
        if let Some(stopped) = stopped {
            return stopped;
        }
        *loaded += read;
        let groups = first_seen
            .restore(kept)
            .into_iter()
            .flatten()
            .map(|(v, labels)| (labels, v))
            .collect();
        data.aggregates.insert(
            (span.start, span.end),
            FusedAggregate {
                groups,
                counter_checks: Vec::new(),
            },
        );
        Ok(Fused::Done)
    }

    /// An instant query's `name(selector[range])` at `t`, computed while the store hands
    /// over one series at a time, so that the query holds one value per series rather than
    /// every series' chunks. False (nothing stored) when a series has histogram samples or
    /// start timestamps there; the selector is then loaded as usual. Counts the samples
    /// read against `--query.max-samples`.
    #[allow(clippy::too_many_arguments)]
    fn stream_direct(
        &self,
        q: &dyn Queryable,
        name: &str,
        sel: &VectorSelector,
        range: i64,
        t: i64,
        data: &mut LoadTarget<'_>,
        loaded: &mut usize,
    ) -> Result<bool> {
        let Some((mint, maxt)) = visit_window(q, sel, range, t) else {
            return Ok(false);
        };
        let budget = self.opts.max_samples.saturating_sub(*loaded);
        let (mut values, mut read, mut visited) = (Vec::new(), 0usize, 0usize);
        // Why the visit stopped: `Some(Ok(false))` histograms, an error otherwise.
        let mut stopped: Option<Result<bool>> = None;
        // The values come out in the order read, which must be label order.
        q.visit_floats(
            mint,
            maxt,
            &sel.matchers,
            true,
            &mut |labels, points, hists| {
                let n = points.len();
                if let Some(stop) = self.visit_checks(&mut visited, &mut read, budget, hists, n) {
                    // The only way `visit_checks` stops without an error is histograms.
                    stopped = Some(stop.map(|_| false));
                    return std::ops::ControlFlow::Break(());
                }
                if let Some(v) = direct_window_value(name, points, range, maxt) {
                    values.push((labels.clone(), v));
                }
                std::ops::ControlFlow::Continue(())
            },
        );
        match stopped {
            Some(stopped) => stopped,
            None => {
                *loaded += read;
                data.direct.insert((sel.span.start, sel.span.end), values);
                Ok(true)
            }
        }
    }
}

/// How many series a store hands over between two looks at the query's deadline and the
/// client's cancel.
const VISITS_PER_CHECK: usize = 64;

/// Aggregations [`Engine::stream_aggregate`] computes: those that keep one running value
/// per group and group without the metric name (so the input's marked names need not be
/// removed to find a series' group).
fn fusable(op: AggOp, grouping: &[String], without: bool) -> bool {
    crate::aggregate::Running::new(op, 0.0).is_some()
        && crate::aggregate::ignores_name_marks(op, grouping, without)
}

/// Where an instant query's read that computes while visiting looks for `sel` at `t`: the
/// start of its window, `back` before its time, and its time (`t` after `@` and `offset`).
/// `None` when the selector has to be read as usual: `anchored`/`smoothed`, or start
/// timestamps in the window (which the usual read checks).
fn visit_window(q: &dyn Queryable, sel: &VectorSelector, back: i64, t: i64) -> Option<(i64, i64)> {
    if sel.anchored || sel.smoothed {
        return None;
    }
    let ts = crate::ast::at_time(sel.at, t, t, t) - sel.offset_ms;
    let mint = ts - back;
    q.select_start_timestamps(mint, ts, &sel.matchers)
        .is_empty()
        .then_some((mint, ts))
}

/// An instant selector's value at `ts` from a series' newest float sample at or before
/// `ts`: its value, unless it is a stale marker or not after `ts - lookback`.
fn fresh_value((pt, v): (i64, f64), ts: i64, lookback: i64) -> Option<f64> {
    (!is_stale_nan(v) && pt > ts - lookback).then_some(v)
}

/// The newest of `points` (sorted by time) at or before `ts`.
fn newest_at<T: Clone>(points: &[(i64, T)], ts: i64) -> Option<(i64, T)> {
    let idx = points.partition_point(|p| p.0 <= ts);
    points.get(idx.checked_sub(1)?).cloned()
}

/// Sorting functions do nothing in a range query (results are ordered by labels): say so.
fn warn_sorting(expr: &Expr, annos: &mut Annotations) {
    if let Expr::Call { func, span, .. } = expr
        && matches!(
            func.name,
            "sort" | "sort_desc" | "sort_by_label" | "sort_by_label_desc"
        )
    {
        annos.warn(anno::sort_in_range_query(), *span);
    }
    for c in expr.children() {
        warn_sorting(c, annos);
    }
}

/// Puts histogram samples next to the float samples of the same series: afterwards
/// `series` holds every series (sorted by labels) and the result holds each one's histograms
/// at the same index.
/// Joins a separate histogram read to the float series (adding series that have only
/// histograms, keeping the label order): the histograms of `series[i]` at `[i]`, or nothing
/// when there are none.
fn align_histograms(
    series: &mut Vec<(Labels, Vec<(i64, f64)>)>,
    hists: Vec<(Labels, Vec<(i64, Hist)>)>,
) -> Vec<Vec<(i64, Hist)>> {
    if hists.is_empty() {
        return Vec::new();
    }
    let mut by_labels: LabelsMap<Vec<(i64, Hist)>> = hists.into_iter().collect();
    for (labels, _) in series.iter() {
        by_labels.entry(labels.clone()).or_default();
    }
    let known: LabelsSet = series.iter().map(|(l, _)| l.clone()).collect();
    for labels in by_labels.keys() {
        if !known.contains(labels) {
            series.push((labels.clone(), Vec::new()));
        }
    }
    series.sort_by(|a, b| a.0.cmp(&b.0));
    series
        .iter()
        .map(|(l, _)| by_labels.remove(l).unwrap_or_default())
        .collect()
}

/// A positive step and an expression a range query can return (scalar or instant vector).
fn check_range_query(expr: &Expr, step: i64) -> Result<&Expr> {
    if step <= 0 {
        return Err(EvalError::Execution(
            "zero or negative query resolution step widths are not accepted".into(),
        ));
    }
    match expr.value_type() {
        ValueType::Scalar | ValueType::Vector => Ok(expr),
        t => Err(EvalError::Execution(format!(
            "invalid expression type {:?} for range query, must be Scalar or instant Vector",
            t.name()
        ))),
    }
}

/// `name(selector[range])` at `ts` from one series' samples (sorted by time): over those in
/// the left-open window `(ts - range, ts]`, stale markers left out; `None` when there is
/// no output.
fn direct_window_value(name: &str, points: &[(i64, f64)], range: i64, ts: i64) -> Option<f64> {
    let lo = points.partition_point(|p| p.0 <= ts - range);
    let hi = points.partition_point(|p| p.0 <= ts);
    let pts = without_stale(&points[lo..hi.max(lo)]);
    if pts.is_empty() {
        return None;
    }
    crate::functions::direct_range_value(name, &pts, range, ts)
}

/// Samples of one series, without stale markers, for range windows.
fn without_stale(points: &[(i64, f64)]) -> std::borrow::Cow<'_, [(i64, f64)]> {
    if points.iter().any(|p| is_stale_nan(p.1)) {
        points
            .iter()
            .copied()
            .filter(|p| !is_stale_nan(p.1))
            .collect()
    } else {
        std::borrow::Cow::Borrowed(points)
    }
}

/// A range query's or subquery's series in Prometheus's result order (by labels).
fn sorted_series(points: impl IntoIterator<Item = (Labels, Vec<(i64, f64)>)>) -> Vec<Series> {
    let mut series: Vec<Series> = points
        .into_iter()
        .map(|(labels, points)| Series::floats(labels, points))
        .collect();
    series.sort_by(|a, b| a.labels.cmp(&b.labels));
    series
}

fn check_duplicates<'a>(labels: impl ExactSizeIterator<Item = &'a Labels>) -> Result<()> {
    let mut seen = std::collections::HashSet::with_capacity(labels.len());
    for l in labels {
        if !seen.insert(l) {
            return Err(same_labelset());
        }
    }
    Ok(())
}

/// Prometheus's error for a vector holding two series with the same labels.
pub(crate) fn same_labelset() -> EvalError {
    EvalError::Execution("vector cannot contain metrics with the same labelset".into())
}

/// Whether removing the marked names (`__name__`, `__type__`, `__unit__`) could make two of
/// these series equal: when the marked ones do not all carry the same name labels, or
/// marked and unmarked series mix. A selector of one metric never can, and is answered
/// with one comparison per series.
pub(crate) fn names_may_collide<'a>(series: impl Iterator<Item = (&'a Labels, bool)>) -> bool {
    let mut first: Option<Labels> = None;
    let (mut marked, mut unmarked) = (false, false);
    for (labels, mark) in series {
        if !mark {
            unmarked = true;
        } else {
            marked = true;
            match &first {
                None => first = Some(labels.retain(is_name_label)),
                Some(names) if !labels.retained_eq(is_name_label, names) => return true,
                Some(_) => {}
            }
        }
        if marked && unmarked {
            return true;
        }
    }
    false
}

/// A query's result: names marked for removal removed, and no two series left with the same
/// labels.
fn settled(v: Value) -> Result<Value> {
    Ok(match v {
        Value::Vector(vec) => Value::Vector(settled_vector(vec)?),
        Value::Matrix(mut m) => {
            m.iter_mut().for_each(Series::settle);
            check_duplicates(m.iter().map(|s| &s.labels))?;
            Value::Matrix(m)
        }
        other => other,
    })
}

fn settled_vector(mut vec: Vec<Sample>) -> Result<Vec<Sample>> {
    vec.iter_mut().for_each(Sample::settle);
    check_duplicates(vec.iter().map(|s| &s.labels))?;
    Ok(vec)
}

/// Drops the metric name — and with it `__type__` and `__unit__`, which describe it.
pub fn drop_name(labels: &Labels) -> Labels {
    labels.retain(|n| !is_name_label(n))
}

/// The metric name and the labels derived from it (`__type__`, `__unit__`), which every
/// operator that changes a sample's meaning removes together.
pub(crate) fn is_name_label(name: &str) -> bool {
    matches!(
        name,
        argus_model::labels::METRIC_NAME | "__type__" | "__unit__"
    )
}

impl Ctx<'_> {
    /// Everything raised during the evaluation (and the evaluation's time recorded).
    fn into_annotations(self) -> Annotations {
        let took = self.began_eval.elapsed();
        self.engine.record(|s| s.eval = took);
        let mut annos = self.annos;
        annos.extend(self.shared_annos.into_inner());
        annos
    }

    /// Asks the query to start again with every selector loaded (see `Ctx::restart`).
    fn restart_unstreamed<T>(&self) -> Result<T> {
        self.restart.set(true);
        Err(EvalError::Execution(
            "internal: query restarted without streaming".into(),
        ))
    }

    /// Whether `key` is a selector left to be read one series at a time, which a reader of
    /// loaded data cannot see: if so, the query is asked to start again with it loaded.
    fn unloaded(&self, key: (usize, usize)) -> bool {
        let deferred = self.deferred.contains_key(&key);
        if deferred {
            self.restart.set(true);
        }
        deferred
    }

    /// Stops evaluation once the deadline has passed or the client has gone away.
    fn check_limits(&self) -> Result<()> {
        self.engine.check_limits()
    }

    fn eval(&mut self, expr: &Expr, t: i64) -> Result<Value> {
        let settle = !self.engine.opts.delayed_name_removal;
        self.eval_settling(expr, t, settle)
    }

    /// [`Self::eval`], settling marked names in the result only when `settle` (a consumer
    /// whose answer does not depend on them takes the marks as they are).
    fn eval_settling(&mut self, expr: &Expr, t: i64, settle: bool) -> Result<Value> {
        self.check_limits()?;
        let value = self.eval_inner(expr, t)?;
        // Only a plain selector (for `timestamp()`) keeps sample times; everything else is at
        // the evaluation time.
        let mut inner = expr;
        while let Expr::Paren { expr, .. } = inner {
            inner = expr;
        }
        let keeps_time = matches!(inner, Expr::Vector(_));
        let eager = settle;
        Ok(match value {
            Value::Vector(mut v) => {
                // Without delayed name removal, Prometheus refuses a function's or
                // operator's result in which removing the names made two series equal —
                // also where the consumer (an aggregation) would not care.
                let collide = !self.engine.opts.delayed_name_removal
                    && matches!(
                        inner,
                        Expr::Call { .. } | Expr::Binary { .. } | Expr::Unary { .. }
                    )
                    && names_may_collide(v.iter().map(|s| (&s.labels, s.drop_name)));
                for s in &mut v {
                    if !keeps_time {
                        s.t = t;
                    }
                    if eager {
                        s.settle();
                    }
                }
                if collide {
                    if eager {
                        check_duplicates(v.iter().map(|s| &s.labels))?;
                    } else {
                        let settled: Vec<Labels> = v
                            .iter()
                            .map(|s| {
                                if s.drop_name {
                                    drop_name(&s.labels)
                                } else {
                                    s.labels.clone()
                                }
                            })
                            .collect();
                        check_duplicates(settled.iter())?;
                    }
                }
                Value::Vector(v)
            }
            Value::Matrix(mut m) if eager => {
                m.iter_mut().for_each(Series::settle);
                Value::Matrix(m)
            }
            other => other,
        })
    }

    fn eval_inner(&mut self, expr: &Expr, t: i64) -> Result<Value> {
        match expr {
            Expr::Number { value, .. } => Ok(Value::Scalar { t, v: *value }),
            Expr::String { value, .. } => Ok(Value::String {
                t,
                v: value.clone(),
            }),
            Expr::Paren { expr, .. } => self.eval(expr, t),
            Expr::Vector(sel) => {
                let v = self.vector(sel, t);
                let raised = std::mem::take(&mut *self.shared_annos.borrow_mut());
                self.annos.extend(raised);
                Ok(Value::Vector(v))
            }
            Expr::Matrix {
                selector, range_ms, ..
            } if selector.anchored || selector.smoothed => {
                let ts = self.at_time(selector.at, t) - selector.offset_ms;
                let mut series = self.matrix(selector, *range_ms, t);
                for s in &mut series {
                    s.points = crate::extended::boundary_points(
                        &s.points,
                        ts - range_ms,
                        ts,
                        selector.smoothed,
                    );
                }
                series.retain(|s| !s.points.is_empty());
                Ok(Value::Matrix(series))
            }
            Expr::Matrix {
                selector, range_ms, ..
            } => Ok(Value::Matrix(self.matrix(selector, *range_ms, t))),
            Expr::Subquery {
                expr: inner,
                range_ms,
                step_ms,
                offset_ms,
                at,
                ..
            } => {
                let base = self.at_time(*at, t) - offset_ms;
                let step = step_ms.unwrap_or(self.interval).max(1);
                // Steps are aligned to multiples of the step, in (base - range, base].
                let first = (base - range_ms).div_euclid(step) * step + step;
                // The inner expression runs series-at-a-time over the subquery's steps.
                let grid = range::Grid {
                    start: first,
                    step,
                    n: if first > base {
                        0
                    } else {
                        ((base - first) / step + 1) as usize
                    },
                };
                if !self.hdata.is_empty() || !self.sdata.is_empty() {
                    return Ok(Value::Matrix(self.subquery_stepwise(inner, &grid)?));
                }
                match self.subquery_points(inner, &grid) {
                    // Step by step, a nested subquery would read its selectors from the
                    // store at every step: start again with everything loaded instead.
                    Err(EvalError::TooManySamples) if !self.deferred.is_empty() => {
                        self.restart_unstreamed()
                    }
                    Err(EvalError::TooManySamples) => {
                        Ok(Value::Matrix(self.subquery_stepwise(inner, &grid)?))
                    }
                    other => {
                        let mut series = other?;
                        series.sort_by(|a, b| a.labels.cmp(&b.labels));
                        Ok(Value::Matrix(series))
                    }
                }
            }
            Expr::Unary { negate, expr, .. } => match self.eval(expr, t)? {
                Value::Scalar { t, v } => Ok(Value::Scalar {
                    t,
                    v: if *negate { -v } else { v },
                }),
                Value::Vector(vec) => Ok(Value::Vector(
                    vec.into_iter()
                        .map(|s| Sample {
                            labels: s.labels,
                            drop_name: s.drop_name || *negate,
                            t: s.t,
                            v: if *negate { -s.v } else { s.v },
                            h: match s.h {
                                Some(h) if *negate => {
                                    let mut h = (*h).clone();
                                    h.mul(-1.0);
                                    Some(Hist::new(h))
                                }
                                h => h,
                            },
                        })
                        .collect(),
                )),
                _ => Err(EvalError::Execution("unary on a non-numeric value".into())),
            },
            Expr::Binary {
                op,
                lhs,
                rhs,
                matching,
                return_bool,
                span,
            } => {
                let l = self.eval(lhs, t)?;
                let r = self.eval(rhs, t)?;
                crate::binary::eval(
                    *op,
                    l,
                    r,
                    matching.as_ref(),
                    *return_bool,
                    t,
                    (&mut self.annos, *span),
                )
            }
            Expr::Aggregate {
                op,
                expr,
                param,
                grouping,
                without,
                span,
            } => {
                // Computed while reading (see `Engine::stream_aggregate`).
                if let Some(fused) = self.adata.get(&(span.start, span.end)) {
                    if let Expr::Call { args, .. } = &**expr {
                        for labels in &fused.counter_checks {
                            crate::functions::check_counter_name(
                                labels,
                                &mut self.annos,
                                args[0].span(),
                            );
                        }
                    }
                    return Ok(Value::Vector(
                        fused
                            .groups
                            .iter()
                            .map(|(labels, v)| Sample::float(labels.clone(), t, *v))
                            .collect(),
                    ));
                }
                let param_span = param.as_ref().map_or(*span, |p| p.span());
                let param = match param {
                    Some(p) => Some(self.eval(p, t)?),
                    None => None,
                };
                // Most aggregations group without the name and make new samples (or, like
                // `topk`, return inputs whose marks this node settles), so their input's
                // names need not be removed first: that would copy every input label set.
                let settle = !self.engine.opts.delayed_name_removal
                    && !crate::aggregate::ignores_name_marks(*op, grouping, *without);
                let Value::Vector(vec) = self.eval_settling(expr, t, settle)? else {
                    return Err(EvalError::Execution("aggregation over a non-vector".into()));
                };
                let spans = crate::aggregate::Spans {
                    whole: *span,
                    param: param_span,
                    inner: expr.span(),
                };
                crate::aggregate::eval(
                    *op,
                    vec,
                    param,
                    grouping,
                    *without,
                    t,
                    (&mut self.annos, spans),
                )
            }
            // `anchored` / `smoothed` ranges, for the functions that accept them.
            Expr::Call { func, args, .. } if args.iter().any(is_extended_matrix) => {
                for a in args.iter() {
                    if let Expr::Matrix { selector, .. } = a {
                        crate::extended::check_function(
                            func.name,
                            selector.anchored,
                            selector.smoothed,
                        )?;
                    }
                }
                let [
                    Expr::Matrix {
                        selector, range_ms, ..
                    },
                ] = args.as_slice()
                else {
                    return Err(EvalError::Execution(format!(
                        "unexpected arguments to {}",
                        func.name
                    )));
                };
                Ok(Value::Vector(self.extended_call(
                    func.name,
                    selector,
                    *range_ms,
                    t,
                    args[0].span(),
                )))
            }
            Expr::Call { func, args, .. } if func.name == "start_timestamp" => {
                Ok(Value::Vector(self.start_timestamps(&args[0], t)))
            }
            Expr::Call { func, args, .. } if func.name == "info" => {
                let Value::Vector(base) = self.eval(&args[0], t)? else {
                    return Err(EvalError::Execution(
                        "info() expects an instant vector".into(),
                    ));
                };
                let reference = crate::info::reference_time(&args[0], t, self.start, self.end);
                let lookback = self.engine.opts.lookback_ms;
                crate::info::enrich(self.store, base, args.get(1), reference, lookback)
                    .map(Value::Vector)
            }
            // Fast path: a range function straight over a matrix selector works on slices of
            // the loaded samples instead of building a matrix per step.
            Expr::Call { func, args, .. }
                if args.len() == 1
                    && matches!(args[0], Expr::Matrix { .. })
                    && crate::functions::is_direct_range(func.name)
                    && !self.reads_more_than_floats(&args[0]) =>
            {
                let Expr::Matrix {
                    selector, range_ms, ..
                } = &args[0]
                else {
                    return Err(EvalError::Execution(
                        "internal: matrix argument expected".into(),
                    ));
                };
                Ok(Value::Vector(self.direct_range(
                    func.name,
                    selector,
                    *range_ms,
                    t,
                    args[0].span(),
                )))
            }
            Expr::Call { func, args, .. } => {
                let mut values = Vec::with_capacity(args.len());
                for a in args {
                    values.push(self.eval(a, t)?);
                }
                self.apply_call(func.name, args, values, t)
            }
        }
    }

    /// A subquery's samples computed one step at a time (when its grid is too large to hold
    /// densely): only the samples present are kept, at most `--query.max-samples` of them.
    fn subquery_stepwise(&mut self, inner: &Expr, grid: &range::Grid) -> Result<Vec<Series>> {
        let mut index: LabelsMap<usize> = LabelsMap::default();
        let mut out: Vec<Series> = Vec::new();
        let mut total = 0usize;
        for i in 0..grid.n {
            let ts = grid.t(i);
            let samples = match self.eval(inner, ts)? {
                Value::Vector(vec) => vec,
                Value::Scalar { v, .. } => vec![Sample::float(Labels::empty(), ts, v)],
                _ => return Err(EvalError::Execution("subquery over a non-vector".into())),
            };
            total += samples.len();
            if total > self.engine.opts.max_samples {
                return Err(EvalError::TooManySamples);
            }
            for s in samples {
                let k = *index.entry(s.labels.clone()).or_insert_with(|| {
                    out.push(Series::floats(s.labels.clone(), Vec::new()));
                    out.len() - 1
                });
                out[k].drop_name |= s.drop_name;
                match s.h {
                    // A subquery's samples are not consecutive stored samples: their
                    // counter-reset hints no longer apply (gauges stay gauges).
                    Some(h)
                        if matches!(
                            h.hint,
                            argus_model::CounterResetHint::Reset
                                | argus_model::CounterResetHint::NotReset
                        ) =>
                    {
                        let mut h = (*h).clone();
                        h.hint = argus_model::CounterResetHint::Unknown;
                        out[k].hists.push((ts, Hist::new(h)));
                    }
                    Some(h) => out[k].hists.push((ts, h)),
                    None => out[k].points.push((ts, s.v)),
                }
            }
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    /// A function applied to its evaluated arguments at time `t`.
    fn apply_call(
        &mut self,
        name: &str,
        args: &[Expr],
        values: Vec<Value>,
        t: i64,
    ) -> Result<Value> {
        let seconds = |ms: i64| Value::Scalar {
            t,
            v: ms as f64 / 1000.0,
        };
        match name {
            "start" => Ok(seconds(self.start)),
            "end" => Ok(seconds(self.end)),
            "step" => Ok(seconds(self.query_step)),
            "range" => Ok(seconds(self.end - self.start)),
            _ => crate::functions::call(
                name,
                values,
                args,
                (t, self.start, self.end),
                &mut self.annos,
            ),
        }
    }

    fn at_time(&self, at: Option<AtModifier>, t: i64) -> i64 {
        crate::ast::at_time(at, t, self.start, self.end)
    }

    /// `start_timestamp(arg)`: the start time (in seconds; 0 when unknown) of each sample an
    /// instant selector picks. Nothing for other expressions (start timestamps do not survive
    /// them) or when the store keeps no start timestamps, as upstream.
    fn start_timestamps(&self, arg: &Expr, t: i64) -> Vec<Sample> {
        let mut arg = arg;
        while let Expr::Paren { expr, .. } = arg {
            arg = expr;
        }
        let Expr::Vector(sel) = arg else {
            return Vec::new();
        };
        let key = (sel.span.start, sel.span.end);
        let (Some(series), Some(starts)) = (self.data.get(&key), self.sdata.get(&key)) else {
            return Vec::new();
        };
        let index: LabelsMap<usize> = series
            .iter()
            .enumerate()
            .map(|(k, (l, _))| (l.clone(), k))
            .collect();
        self.vector(sel, t)
            .into_iter()
            .map(|s| {
                let st = index
                    .get(&s.labels)
                    .map_or(0, |&k| start_at(&starts[k], s.t));
                Sample::float(s.labels, t, st as f64 / 1000.0).name_dropped()
            })
            .collect()
    }

    /// `name(selector[range])` for every series, computed on slices of the loaded samples.
    fn direct_range(
        &mut self,
        name: &str,
        sel: &VectorSelector,
        range: i64,
        t: i64,
        arg_span: Span,
    ) -> Vec<Sample> {
        let ts = self.at_time(sel.at, t) - sel.offset_ms;
        let keep_name = crate::functions::direct_keeps_name(name);
        let key = (sel.span.start, sel.span.end);
        if self.unloaded(key) {
            return Vec::new();
        }
        // Computed while reading (an instant query), or from the loaded samples.
        let values: Box<dyn Iterator<Item = (&Labels, f64)> + '_> = match self.ddata.get(&key) {
            Some(values) => Box::new(values.iter().map(|(labels, v)| (labels, *v))),
            None => match self.data.get(&key) {
                Some(series) => {
                    let mut scratch = Vec::new();
                    Box::new(series.iter().filter_map(move |(labels, points)| {
                        direct_window_value(name, points.get(&mut scratch), range, ts)
                            .map(|v| (labels, v))
                    }))
                }
                None => return Vec::new(),
            },
        };
        let mut out = Vec::with_capacity(values.size_hint().1.unwrap_or(0));
        // The counter-name check once per metric name (inputs are sorted, so by name).
        let mut checked: Option<&str> = None;
        for (labels, v) in values {
            if matches!(name, "rate" | "increase") && checked != Some(labels.metric_name()) {
                crate::functions::check_counter_name(labels, &mut self.annos, arg_span);
                checked = Some(labels.metric_name());
            }
            let sample = Sample::float(labels.clone(), t, v);
            out.push(if keep_name {
                sample
            } else {
                sample.name_dropped()
            });
        }
        out
    }

    /// `rate|increase|delta|changes|resets(selector[range] anchored|smoothed)` at `t`.
    fn extended_call(
        &mut self,
        name: &str,
        sel: &VectorSelector,
        range: i64,
        t: i64,
        span: Span,
    ) -> Vec<Sample> {
        let ts = self.at_time(sel.at, t) - sel.offset_ms;
        let start = ts - range;
        let mut out = Vec::new();
        for s in self.matrix(sel, range, t) {
            if !s.hists.is_empty() {
                if let Some(sample) =
                    self.extended_histograms(name, &s, start, ts, range, sel, span)
                {
                    out.push(Sample { t, ..sample }.name_dropped());
                }
                continue;
            }
            let p = &s.points;
            let v = match name {
                "rate" => crate::extended::rate(p, start, ts, range, sel.smoothed, true, true),
                "increase" => crate::extended::rate(p, start, ts, range, sel.smoothed, true, false),
                "delta" => crate::extended::rate(p, start, ts, range, sel.smoothed, false, false),
                "changes" => {
                    crate::extended::anchored_samples(p, start).map(crate::functions::changes)
                }
                "resets" => crate::extended::anchored_samples(p, start)
                    .map(|p| crate::functions::resets(p, &[])),
                _ => None,
            };
            if let Some(v) = v {
                out.push(Sample::float(s.labels.clone(), t, v).name_dropped());
            }
        }
        out
    }

    /// [`Self::extended_call`] for a series holding histogram samples.
    #[allow(clippy::too_many_arguments)]
    fn extended_histograms(
        &mut self,
        name: &str,
        s: &Series,
        start: i64,
        end: i64,
        range: i64,
        sel: &VectorSelector,
        span: Span,
    ) -> Option<Sample> {
        let labels = s.labels.clone();
        let metric = s.labels.metric_name();
        if matches!(name, "changes" | "resets") {
            // Count over the merged samples from the anchor (the last at or before start).
            let anchor = s
                .points
                .iter()
                .map(|p| p.0)
                .chain(s.hists.iter().map(|p| p.0))
                .filter(|&ts| ts <= start)
                .max()
                .unwrap_or(i64::MIN);
            let newest = s
                .points
                .iter()
                .map(|p| p.0)
                .chain(s.hists.iter().map(|p| p.0))
                .max()?;
            if newest <= start {
                return None;
            }
            let window = Series {
                labels: s.labels.clone(),
                points: s.points.iter().filter(|p| p.0 >= anchor).copied().collect(),
                hists: s.hists.iter().filter(|p| p.0 >= anchor).cloned().collect(),
                drop_name: false,
                starts: Vec::new(),
            };
            let v = crate::histfn::changes_or_resets(&window, name == "resets");
            return Some(Sample::float(labels, end, v));
        }
        let mut notes = crate::extended::hist::Notes {
            metric,
            span,
            annos: &mut self.annos,
        };
        if !s.points.is_empty() {
            notes
                .annos
                .warn(anno::mixed_floats_histograms(metric), span);
            return None;
        }
        let h = crate::extended::hist::rate(
            &s.hists,
            start,
            end,
            range,
            sel.smoothed,
            name != "delta",
            name == "rate",
            &mut notes,
        )?;
        Some(Sample::histogram(labels, end, Hist::new(h)))
    }

    /// The newest non-stale sample in `(t' - lookback, t']` of every series (for a smoothed
    /// selector: the value interpolated at `t'` from the samples within a lookback delta).
    fn vector(&self, sel: &VectorSelector, t: i64) -> Vec<Sample> {
        let ts = self.at_time(sel.at, t) - sel.offset_ms;
        let lookback = self.engine.opts.lookback_ms;
        let Some(series) = self.data.get(&(sel.span.start, sel.span.end)) else {
            return Vec::new();
        };
        if sel.smoothed {
            let mut out = Vec::new();
            let hists = self.hdata.get(&(sel.span.start, sel.span.end));
            let mut scratch = Vec::new();
            for (k, (labels, points)) in series.iter().enumerate() {
                let points = points.get(&mut scratch);
                let lo = points.partition_point(|p| p.0 <= ts - lookback);
                let hi = points.partition_point(|p| p.0 <= ts + lookback);
                let window = without_stale(&points[lo..hi.max(lo)]);
                let hwindow: Vec<(i64, Hist)> = hists.map_or(Vec::new(), |h| {
                    h[k].iter()
                        .filter(|p| p.0 > ts - lookback && p.0 <= ts + lookback)
                        .filter(|p| !is_stale_nan(p.1.sum))
                        .cloned()
                        .collect()
                });
                if !hwindow.is_empty() {
                    let metric = labels.metric_name();
                    let mut annos = std::mem::take(&mut *self.shared_annos.borrow_mut());
                    if !window.is_empty() {
                        annos.warn(anno::mixed_floats_histograms(metric), sel.span);
                    } else {
                        let mut notes = crate::extended::hist::Notes {
                            metric,
                            span: sel.span,
                            annos: &mut annos,
                        };
                        if let Some(h) =
                            crate::extended::hist::smoothed_value(&hwindow, ts, &mut notes)
                        {
                            out.push(Sample::histogram(labels.clone(), ts, Hist::new(h)));
                        }
                    }
                    *self.shared_annos.borrow_mut() = annos;
                    continue;
                }
                if let Some(v) = crate::extended::smoothed_value(&window, ts) {
                    out.push(Sample::float(labels.clone(), ts, v));
                }
            }
            return out;
        }
        let hists = self.hdata.get(&(sel.span.start, sel.span.end));
        let mut out = Vec::new();
        let mut scratch = Vec::new();
        for (k, (labels, points)) in series.iter().enumerate() {
            let points = points.get(&mut scratch);
            let float = newest_at(points, ts);
            let hist = hists.and_then(|h| newest_at(&h[k], ts));
            // The sample's own time: `timestamp()` reads it; everything else is moved to the
            // evaluation time (see `eval`).
            let newest = match (float, hist) {
                (f, Some((ht, h))) if f.is_none_or(|f| f.0 < ht) => {
                    (!is_stale_nan(h.sum)).then(|| Sample::histogram(labels.clone(), ht, h))
                }
                (Some((pt, pv)), _) => {
                    (!is_stale_nan(pv)).then(|| Sample::float(labels.clone(), pt, pv))
                }
                _ => None,
            };
            out.extend(newest.filter(|s| s.t > ts - lookback));
        }
        out
    }

    /// Non-stale samples in `(t' - range, t']` of every series.
    fn matrix(&self, sel: &VectorSelector, range: i64, t: i64) -> Vec<Series> {
        let ts = self.at_time(sel.at, t) - sel.offset_ms;
        let key = (sel.span.start, sel.span.end);
        if self.unloaded(key) {
            return Vec::new();
        }
        let Some(series) = self.data.get(&key) else {
            return Vec::new();
        };
        let lookback = self.engine.opts.lookback_ms;
        let before = if sel.anchored || sel.smoothed {
            lookback
        } else {
            0
        };
        let after = if sel.smoothed { lookback } else { 0 };
        let hists = self.hdata.get(&(sel.span.start, sel.span.end));
        let starts = self.sdata.get(&(sel.span.start, sel.span.end));
        let mut out = Vec::new();
        let (after_t, upto) = (ts - range - before, ts + after);
        let mut scratch = Vec::new();
        for (k, (labels, points)) in series.iter().enumerate() {
            let points = points.get(&mut scratch);
            let pts = without_stale(timed_within(points, after_t, upto)).into_owned();
            let hs: Vec<(i64, Hist)> = hists.map_or(Vec::new(), |h| {
                timed_within(&h[k], after_t, upto)
                    .iter()
                    .filter(|p| !is_stale_nan(p.1.sum))
                    .cloned()
                    .collect()
            });
            if !pts.is_empty() || !hs.is_empty() {
                out.push(Series {
                    labels: labels.clone(),
                    points: pts,
                    hists: hs,
                    drop_name: false,
                    starts: starts.map_or(Vec::new(), |st| {
                        timed_within(&st[k], after_t, upto).to_vec()
                    }),
                });
            }
        }
        out
    }

    /// True when the selector under `e` (a matrix selector) loaded histogram samples or
    /// start timestamps (which the slice-based fast paths do not read).
    fn reads_more_than_floats(&self, e: &Expr) -> bool {
        match e {
            Expr::Matrix { selector, .. } | Expr::Vector(selector) => {
                let key = (selector.span.start, selector.span.end);
                self.hdata.contains_key(&key) || self.sdata.contains_key(&key)
            }
            _ => false,
        }
    }

    /// A range query evaluated one step at a time with the instant operators.
    fn stepwise(&mut self, expr: &Expr, start: i64, end: i64, step: i64) -> Result<Vec<Series>> {
        let mut out: LabelsMap<Series> = Default::default();
        let mut total = 0usize;
        let mut t = start;
        while t <= end {
            match self.eval(expr, t)? {
                Value::Scalar { v, .. } => {
                    out.entry(Labels::empty())
                        .or_insert_with(|| Series::floats(Labels::empty(), Vec::new()))
                        .points
                        .push((t, v));
                    total += 1;
                }
                Value::Vector(vec) => {
                    let vec = settled_vector(vec)?;
                    total += vec.len();
                    for s in vec {
                        let e = out
                            .entry(s.labels.clone())
                            .or_insert_with(|| Series::floats(s.labels, Vec::new()));
                        match s.h {
                            Some(h) => e.hists.push((t, h)),
                            None => e.points.push((t, s.v)),
                        }
                    }
                }
                _ => {
                    return Err(EvalError::Execution(
                        "unexpected value type in range query".into(),
                    ));
                }
            }
            if total > self.engine.opts.max_samples {
                return Err(EvalError::TooManySamples);
            }
            t += step;
        }
        let mut series: Vec<Series> = out.into_values().collect();
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(series)
    }
}

/// A range selector with the `anchored` or `smoothed` modifier.
fn is_extended_matrix(e: &Expr) -> bool {
    matches!(e, Expr::Matrix { selector, .. } if selector.anchored || selector.smoothed)
}

/// Builds the output labels of a grouping (`by` keeps only the listed labels, `without`
/// removes them and the metric name).
pub fn group_labels(labels: &Labels, grouping: &[String], without: bool) -> Labels {
    if without {
        labels.retain(|n| !is_name_label(n) && !grouping.iter().any(|g| g == n))
    } else if grouping.is_empty() {
        // `sum(x)`, `count(x)`: one group, nothing to look up.
        Labels::empty()
    } else {
        labels.retain(|n| grouping.iter().any(|g| g == n))
    }
}

mod range;

#[cfg(test)]
mod tests;
