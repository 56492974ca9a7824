//! The head: the in-memory, writable part of the database.
//!
//! Each series keeps closed XOR chunks (≤ 120 samples, never crossing a block-range boundary,
//! so compaction can hand whole chunks to a block), one open chunk, and — only when
//! out-of-order ingestion is on and used — a sorted buffer of out-of-order samples. An inverted
//! index (label name → value → sorted series refs) serves matcher lookups.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use argus_model::{Labels, Matcher};
use parking_lot::{Mutex, RwLock};

use crate::chunk::{SAMPLES_PER_CHUNK, XorChunk};
use crate::error::{Error, Result};
use crate::head_chunks::{ChunkLoc, HeadChunkStore};
use crate::postings::{IndexLookup, select_postings};
use crate::series::{ChunkData, ChunkMeta, SeriesChunks};

#[derive(Debug, Clone, Copy)]
pub struct HeadOptions {
    /// Block range; head chunks never cross a multiple of it.
    pub chunk_range_ms: i64,
    /// Out-of-order window (`storage.tsdb.out_of_order_time_window`); 0 disables it.
    pub ooo_window_ms: i64,
}

/// A full chunk, kept in the head chunk store. 24 bytes: the head holds several per series.
pub struct ClosedChunk {
    pub min_time: i64,
    /// `max_time - min_time`; chunks never span more than the block range (≤ 31d).
    span: u32,
    pub loc: ChunkLoc,
}

impl ClosedChunk {
    fn new(min_time: i64, max_time: i64, loc: ChunkLoc) -> Self {
        let span = u32::try_from(max_time.saturating_sub(min_time).max(0)).unwrap_or(u32::MAX);
        Self {
            min_time,
            span,
            loc,
        }
    }

    pub fn max_time(&self) -> i64 {
        self.min_time.saturating_add(self.span as i64)
    }

    /// The chunk's bytes for a query (see [`HeadChunkStore::read`]); `None` (logged) if the
    /// spill file cannot be read.
    pub fn bytes(&self, store: &HeadChunkStore) -> Option<crate::head_chunks::ChunkBytes> {
        logged(store.read(self.loc))
    }

    /// The chunk's bytes copied out (see [`HeadChunkStore::read_copied`]), for passes over
    /// the whole head.
    pub fn bytes_copied(&self, store: &HeadChunkStore) -> Option<crate::head_chunks::ChunkBytes> {
        logged(store.read_copied(self.loc))
    }
}

/// A chunk read's bytes, or `None` with the error logged.
fn logged(read: Result<crate::head_chunks::ChunkBytes>) -> Option<crate::head_chunks::ChunkBytes> {
    match read {
        Ok(b) => Some(b),
        Err(e) => {
            tracing::error!(error = %e, "reading a head chunk failed; its samples are missing from this read");
            None
        }
    }
}

pub struct SeriesData {
    pub closed: Vec<ClosedChunk>,
    pub open: Option<XorChunk>,
    /// The open chunk must be cut before a sample at or after this time.
    open_boundary: i64,
    /// Time and value bits of the newest in-order sample.
    /// (`i64::MIN`: none yet; a sentinel rather than an `Option`, which would add 8 bytes
    /// to every series.)
    newest_t: i64,
    last_value: u64,
    /// Out-of-order samples, sorted by time, one per timestamp.
    pub ooo: OooSamples,
    /// Native-histogram samples, sorted by time, one per timestamp (kept as they are, not
    /// chunk-encoded). Boxed: most series never have any, and this struct is per series.
    #[allow(clippy::box_collection)] // one pointer instead of a 24-byte Vec per series
    hist_samples: Option<Box<Vec<HistSample>>>,
}

/// Out-of-order samples of a series: one pointer while there are none (the usual case;
/// this lives in every series).
#[derive(Debug, Default)]
#[allow(clippy::box_collection)] // one pointer instead of a 24-byte Vec per series
pub struct OooSamples(Option<Box<Vec<(i64, f64)>>>);

impl std::ops::Deref for OooSamples {
    type Target = [(i64, f64)];
    fn deref(&self) -> &Self::Target {
        self.0.as_deref().map_or(&[], Vec::as_slice)
    }
}

impl OooSamples {
    pub fn insert(&mut self, i: usize, sample: (i64, f64)) {
        self.0
            .get_or_insert_with(Default::default)
            .insert(i, sample);
    }

    pub fn retain(&mut self, keep: impl FnMut(&(i64, f64)) -> bool) {
        if let Some(v) = &mut self.0 {
            v.retain(keep);
            if v.is_empty() {
                self.0 = None;
            }
        }
    }

    /// Removes and returns the first `n` samples.
    pub fn take_first(&mut self, n: usize) -> Vec<(i64, f64)> {
        let Some(v) = &mut self.0 else {
            return Vec::new();
        };
        let taken = v.drain(..n.min(v.len())).collect();
        if v.is_empty() {
            self.0 = None;
        }
        taken
    }

    pub fn capacity(&self) -> usize {
        self.0.as_ref().map_or(0, |v| v.capacity())
    }
}

/// A native-histogram sample.
pub type HistSample = (i64, Arc<argus_model::FloatHistogram>);

impl Default for SeriesData {
    fn default() -> Self {
        Self {
            closed: Vec::new(),
            open: None,
            open_boundary: 0,
            newest_t: i64::MIN,
            last_value: 0,
            ooo: OooSamples::default(),
            hist_samples: None,
        }
    }
}

impl SeriesData {
    /// Time of the newest in-order sample.
    pub fn max_time(&self) -> Option<i64> {
        (self.newest_t != i64::MIN).then_some(self.newest_t)
    }

    pub fn is_empty(&self) -> bool {
        self.closed.is_empty()
            && self.open.is_none()
            && self.ooo.is_empty()
            && self.hists().is_empty()
    }

    /// Stores a histogram sample; a different sample at the same time is refused.
    fn insert_histogram(&mut self, t: i64, h: Arc<argus_model::FloatHistogram>) -> Result<()> {
        let hists = self.hist_samples.get_or_insert_with(Default::default);
        if hists.last().is_none_or(|l| l.0 < t) {
            hists.push((t, h));
            return Ok(());
        }
        match hists.binary_search_by_key(&t, |s| s.0) {
            Ok(i) if hists[i].1.equals(&h) => Ok(()),
            Ok(_) => Err(Error::DuplicateSampleForTimestamp),
            Err(i) => {
                hists.insert(i, (t, h));
                Ok(())
            }
        }
    }

    /// The histogram samples, by time.
    pub fn hists(&self) -> &[HistSample] {
        self.hist_samples.as_deref().map_or(&[], Vec::as_slice)
    }

    /// Keeps the histogram samples for which `keep` holds.
    fn retain_hists(&mut self, keep: impl Fn(&HistSample) -> bool) {
        if let Some(h) = &mut self.hist_samples {
            h.retain(keep);
            if h.is_empty() {
                self.hist_samples = None;
            }
        }
    }

    /// Histogram samples in `[mint, maxt]`.
    pub fn histograms_in(
        &self,
        mint: i64,
        maxt: i64,
    ) -> &[(i64, Arc<argus_model::FloatHistogram>)] {
        let hists = self.hists();
        let lo = hists.partition_point(|s| s.0 < mint);
        let hi = hists.partition_point(|s| s.0 <= maxt);
        &hists[lo..hi.max(lo)]
    }

    pub fn min_time(&self) -> Option<i64> {
        let in_order = self
            .closed
            .first()
            .map(|c| c.min_time)
            .or_else(|| self.open.as_ref().map(|c| c.min_time()));
        let ooo = self.ooo.first().map(|s| s.0);
        let hist = self.hists().first().map(|s| s.0);
        [in_order, ooo, hist].into_iter().flatten().min()
    }

    fn append_in_order(&mut self, t: i64, v: f64, chunk_range: i64, store: &HeadChunkStore) {
        let must_cut = match &self.open {
            Some(open) => open.num_samples() >= SAMPLES_PER_CHUNK || t >= self.open_boundary,
            None => true,
        };
        if must_cut {
            self.close_open(store);
            self.open = Some(XorChunk::new());
            self.open_boundary = (t.div_euclid(chunk_range) + 1).saturating_mul(chunk_range);
        }
        if let Some(open) = &mut self.open {
            open.append(t, v);
        }
        self.newest_t = t;
        self.last_value = v.to_bits();
    }

    fn close_open(&mut self, store: &HeadChunkStore) {
        if let Some(open) = self.open.take() {
            let loc = store.write(open.bytes(), open.max_time());
            self.closed
                .push(ClosedChunk::new(open.min_time(), open.max_time(), loc));
        }
    }

    /// Restores a full chunk (checkpoint replay) without decoding it. Refuses (false) when
    /// the chunk does not start after the series' newest sample.
    fn restore_closed(
        &mut self,
        bytes: &[u8],
        meta: crate::wal::ChunkRecordMeta,
        store: &HeadChunkStore,
    ) -> bool {
        if bytes.len() < 2 || meta.max_time < meta.min_time {
            return false;
        }
        if self.max_time().is_some_and(|m| meta.min_time <= m) {
            return false;
        }
        self.close_open(store);
        let loc = store.write(bytes, meta.max_time);
        self.closed
            .push(ClosedChunk::new(meta.min_time, meta.max_time, loc));
        self.newest_t = meta.max_time;
        self.last_value = meta.last_value_bits;
        true
    }

    fn insert_ooo(&mut self, t: i64, v: f64) -> Result<()> {
        match self.ooo.binary_search_by_key(&t, |s| s.0) {
            Ok(i) if self.ooo[i].1.to_bits() == v.to_bits() => Ok(()),
            Ok(_) => Err(Error::DuplicateSampleForTimestamp),
            Err(i) => {
                self.ooo.insert(i, (t, v));
                Ok(())
            }
        }
    }

    /// Chunks overlapping `[mint, maxt]`.
    pub fn chunks_in(&self, mint: i64, maxt: i64, store: &HeadChunkStore) -> Vec<ChunkMeta> {
        let closed = self
            .closed
            .iter()
            .filter(|c| c.max_time() >= mint && c.min_time <= maxt)
            .count();
        let has_open = self
            .open
            .as_ref()
            .is_some_and(|o| o.max_time() >= mint && o.min_time() <= maxt);
        let has_ooo = self.ooo.iter().any(|(t, _)| *t >= mint && *t <= maxt);
        // Exactly sized: a query holds one of these per selected series.
        let mut out = Vec::with_capacity(closed + usize::from(has_open) + usize::from(has_ooo));
        for c in &self.closed {
            if c.max_time() >= mint
                && c.min_time <= maxt
                && let Some(bytes) = c.bytes(store)
            {
                out.push(ChunkMeta {
                    min_time: c.min_time,
                    max_time: c.max_time(),
                    data: ChunkData::Xor(bytes),
                    last_value: None,
                });
            }
        }
        if let Some(open) = &self.open
            && open.max_time() >= mint
            && open.min_time() <= maxt
        {
            out.push(ChunkMeta {
                min_time: open.min_time(),
                max_time: open.max_time(),
                data: ChunkData::Xor(open.bytes().into()),
                last_value: Some(f64::from_bits(open.last_value_bits())),
            });
        }
        let ooo: Vec<(i64, f64)> = self
            .ooo
            .iter()
            .filter(|(t, _)| *t >= mint && *t <= maxt)
            .copied()
            .collect();
        if let (Some(first), Some(last)) = (ooo.first(), ooo.last()) {
            let last_value = Some(last.1);
            out.push(ChunkMeta {
                min_time: first.0,
                max_time: last.0,
                data: ChunkData::Samples(ooo.into()),
                last_value,
            });
        }
        out
    }

    /// Samples in `[from, before)`, merged in time order (for writing a block).
    pub fn samples_before(
        &self,
        from: i64,
        before: i64,
        store: &HeadChunkStore,
    ) -> Vec<(i64, f64)> {
        self.samples_in(from, before, store, true)
    }

    /// Like [`Self::samples_before`], optionally without the out-of-order buffer.
    pub fn samples_in(
        &self,
        from: i64,
        before: i64,
        store: &HeadChunkStore,
        include_ooo: bool,
    ) -> Vec<(i64, f64)> {
        let mut out: Vec<(i64, f64)> = Vec::new();
        for c in &self.closed {
            if c.max_time() >= from
                && c.min_time < before
                && let Some(bytes) = c.bytes_copied(store)
            {
                out.extend(
                    crate::chunk::XorIter::new(&bytes).filter(|s| s.0 >= from && s.0 < before),
                );
            }
        }
        if let Some(open) = &self.open {
            out.extend(open.iter().filter(|s| s.0 >= from && s.0 < before));
        }
        let ooo = self.ooo.iter().filter(|s| s.0 >= from && s.0 < before);
        let had_ooo = include_ooo && self.ooo.iter().any(|s| s.0 >= from && s.0 < before);
        if had_ooo {
            out.extend(ooo);
            out.sort_by_key(|s| s.0);
            out.dedup_by_key(|s| s.0);
        }
        out
    }

    /// Drops data older than `before` (already persisted in a block).
    fn truncate_before(&mut self, before: i64) {
        self.closed.retain(|c| c.max_time() >= before);
        if self.open.as_ref().is_some_and(|o| o.max_time() < before) {
            self.open = None;
        }
        self.ooo.retain(|s| s.0 >= before);
        self.retain_hists(|s| s.0 >= before);
    }

    /// The newest sample in `[mint, maxt]` when it can be told without decoding: `Some(None)`
    /// when the series has nothing there, `None` when chunks must be read (a range in the
    /// past). Out-of-order samples are always older than the newest in-order one.
    pub fn newest_in(&self, mint: i64, maxt: i64) -> Option<Option<(i64, f64)>> {
        let t = self.max_time()?;
        let held = match &self.open {
            Some(o) => o.max_time() == t,
            None => self.closed.last().is_some_and(|c| c.max_time() == t),
        };
        if !held || t > maxt {
            return None;
        }
        Some((t >= mint).then(|| (t, f64::from_bits(self.last_value))))
    }

    /// Removes samples inside `[mint, maxt]`, re-encoding the affected chunks.
    fn delete_range(&mut self, mint: i64, maxt: i64, chunk_range: i64, store: &HeadChunkStore) {
        let overlaps = self
            .closed
            .iter()
            .any(|c| c.max_time() >= mint && c.min_time <= maxt)
            || self
                .open
                .as_ref()
                .is_some_and(|o| o.max_time() >= mint && o.min_time() <= maxt);
        self.ooo.retain(|s| s.0 < mint || s.0 > maxt);
        self.retain_hists(|s| s.0 < mint || s.0 > maxt);
        if !overlaps {
            return;
        }
        let kept: Vec<(i64, f64)> = self
            .samples_before(i64::MIN, i64::MAX, store)
            .into_iter()
            .filter(|s| self.ooo.binary_search_by_key(&s.0, |o| o.0).is_err())
            .filter(|s| s.0 < mint || s.0 > maxt)
            .collect();
        let ooo = std::mem::take(&mut self.ooo);
        let hists = self.hist_samples.take();
        *self = SeriesData::default();
        for (t, v) in kept {
            self.append_in_order(t, v, chunk_range, store);
        }
        self.ooo = ooo;
        self.hist_samples = hists;
    }

    pub fn heap_bytes(&self) -> usize {
        self.closed
            .iter()
            .map(|_| std::mem::size_of::<ClosedChunk>())
            .sum::<usize>()
            + self.open.as_ref().map_or(0, |o| o.heap_bytes())
            + self.ooo.capacity() * 16
            + self
                .hists()
                .iter()
                .map(|(_, h)| 96 + (h.positive.len() + h.negative.len()) * 16)
                .sum::<usize>()
    }
}

pub struct MemSeries {
    pub series_ref: u64,
    pub labels: Labels,
    pub data: Mutex<SeriesData>,
    /// Whether the series record is in the WAL yet.
    pub logged: AtomicBool,
    /// Set when garbage collection took the series out of the index: holders of the `Arc`
    /// (scrape caches) must look the labels up again instead of appending to it.
    pub removed: AtomicBool,
}

/// Hasher for keys that are already well-mixed 64-bit values (label-set hashes, refs).
#[derive(Default, Clone, Copy)]
pub struct U64Hasher(u64);

impl std::hash::Hasher for U64Hasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, v: u64) {
        // Refs are sequential: spread them (Fibonacci hashing); label hashes pass through it
        // unharmed.
        self.0 = v.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

pub type U64Map<V> = HashMap<u64, V, std::hash::BuildHasherDefault<U64Hasher>>;

/// Hash of a label set given as sorted (name, value) pairs; equal to the hash of the
/// [`Labels`] built from them. Lets a writer find an existing series without allocating.
pub fn labels_hash<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for (name, value) in pairs {
        h.update(name.as_bytes());
        h.update(&[0xff]);
        h.update(value.as_bytes());
        h.update(&[0xfe]);
    }
    h.digest()
}

fn labels_hash_of(labels: &Labels) -> u64 {
    labels_hash(labels.iter().map(|l| (l.name, l.value)))
}

/// Spreads sequential series refs over the table (Fibonacci hashing).
fn ref_hash(series_ref: u64) -> u64 {
    series_ref.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// The head's series index. Both series tables hold only the `Arc` (8 bytes a slot; the
/// hash is recomputed when a table grows), since every series pays for a slot in each.
#[derive(Default)]
struct HeadIndex {
    /// Series by ref.
    by_ref: hashbrown::HashTable<Arc<MemSeries>>,
    /// Series by label-set hash (colliding hashes simply share a probe sequence).
    by_hash: hashbrown::HashTable<Arc<MemSeries>>,
    postings: HashMap<Box<str>, HashMap<Box<str>, Vec<u64>>>,
}

impl HeadIndex {
    fn find(&self, hash: u64, eq: impl Fn(&Labels) -> bool) -> Option<&Arc<MemSeries>> {
        self.by_hash.find(hash, |s| eq(&s.labels))
    }

    fn insert_hashed(&mut self, hash: u64, series: Arc<MemSeries>) {
        self.by_hash
            .insert_unique(hash, series, |s| labels_hash_of(&s.labels));
    }

    fn remove_hashed(&mut self, hash: u64, series_ref: u64) {
        if let Ok(entry) = self
            .by_hash
            .find_entry(hash, |s| s.series_ref == series_ref)
        {
            entry.remove();
        }
    }

    fn get_ref(&self, series_ref: u64) -> Option<&Arc<MemSeries>> {
        self.by_ref
            .find(ref_hash(series_ref), |s| s.series_ref == series_ref)
    }

    fn insert_ref(&mut self, series: Arc<MemSeries>) {
        self.by_ref
            .insert_unique(ref_hash(series.series_ref), series, |s| {
                ref_hash(s.series_ref)
            });
    }

    fn remove_ref(&mut self, series_ref: u64) {
        if let Ok(entry) = self
            .by_ref
            .find_entry(ref_hash(series_ref), |s| s.series_ref == series_ref)
        {
            entry.remove();
        }
    }

    fn add_postings(&mut self, series: &MemSeries) {
        for label in series.labels.iter() {
            if !self.postings.contains_key(label.name) {
                self.postings.insert(label.name.into(), HashMap::new());
            }
            let Some(values) = self.postings.get_mut(label.name) else {
                continue;
            };
            if !values.contains_key(label.value) {
                values.insert(label.value.into(), Vec::new());
            }
            let Some(list) = values.get_mut(label.value) else {
                continue;
            };
            // Refs grow monotonically except during replay; keep the list sorted.
            match list.last() {
                Some(&last) if last > series.series_ref => {
                    if let Err(i) = list.binary_search(&series.series_ref) {
                        list.insert(i, series.series_ref);
                    }
                }
                _ => list.push(series.series_ref),
            }
        }
    }

    fn remove_postings(&mut self, series: &MemSeries) {
        for label in series.labels.iter() {
            if let Some(values) = self.postings.get_mut(label.name) {
                if let Some(list) = values.get_mut(label.value) {
                    if let Ok(i) = list.binary_search(&series.series_ref) {
                        list.remove(i);
                    }
                    if list.is_empty() {
                        values.remove(label.value);
                    }
                }
                if values.is_empty() {
                    self.postings.remove(label.name);
                }
            }
        }
    }
}

impl IndexLookup for HeadIndex {
    fn label_values(&self, name: &str) -> Vec<String> {
        self.postings
            .get(name)
            .map(|v| v.keys().map(|k| k.to_string()).collect())
            .unwrap_or_default()
    }

    fn label_values_where(&self, name: &str, keep: &dyn Fn(&str) -> bool) -> Vec<String> {
        self.postings
            .get(name)
            .map(|v| {
                v.keys()
                    .filter(|k| keep(k))
                    .map(|k| k.to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn postings(&self, name: &str, value: &str) -> std::borrow::Cow<'_, [u64]> {
        match self.postings.get(name).and_then(|v| v.get(value)) {
            Some(list) => std::borrow::Cow::Borrowed(list),
            None => std::borrow::Cow::Owned(Vec::new()),
        }
    }

    fn all_postings(&self) -> Vec<u64> {
        let mut all: Vec<u64> = self.by_ref.iter().map(|s| s.series_ref).collect();
        all.sort_unstable();
        all
    }
}

/// Head-wide counters and gauges read by the metrics collector.
#[derive(Default)]
pub struct HeadStats {
    pub samples_appended: AtomicU64,
    pub ooo_samples_appended: AtomicU64,
    pub out_of_order_rejected: AtomicU64,
    pub out_of_bounds_rejected: AtomicU64,
    pub too_old_rejected: AtomicU64,
    pub duplicate_rejected: AtomicU64,
    pub series_created: AtomicU64,
    pub series_removed: AtomicU64,
}

pub struct Head {
    pub opts: HeadOptions,
    /// Out-of-order window, changeable on config reload.
    ooo_window_ms: AtomicI64,
    index: RwLock<HeadIndex>,
    next_ref: AtomicU64,
    /// Samples before this time belong to blocks: appending them is out of bounds.
    min_valid_time: AtomicI64,
    min_time: AtomicI64,
    max_time: AtomicI64,
    pub stats: HeadStats,
    /// Closed chunks live here, not in memory.
    pub chunks: HeadChunkStore,
}

/// How a sample fits a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    InOrder,
    OutOfOrder,
    /// Same timestamp and value as the newest sample: accepted and ignored.
    Duplicate,
}

impl Head {
    pub fn new(opts: HeadOptions, chunks: HeadChunkStore) -> Self {
        Self {
            chunks,
            opts,
            ooo_window_ms: AtomicI64::new(opts.ooo_window_ms),
            index: RwLock::new(HeadIndex::default()),
            next_ref: AtomicU64::new(1),
            min_valid_time: AtomicI64::new(i64::MIN),
            min_time: AtomicI64::new(i64::MAX),
            max_time: AtomicI64::new(i64::MIN),
            stats: HeadStats::default(),
        }
    }

    pub fn ooo_window_ms(&self) -> i64 {
        self.ooo_window_ms.load(Ordering::Relaxed)
    }

    /// Applies a new `out_of_order_time_window` (config reload).
    pub fn set_ooo_window_ms(&self, window: i64) {
        self.ooo_window_ms.store(window.max(0), Ordering::Relaxed);
    }

    pub fn num_series(&self) -> usize {
        self.index.read().by_ref.len()
    }

    pub fn min_time(&self) -> i64 {
        self.min_time.load(Ordering::Relaxed)
    }

    pub fn max_time(&self) -> i64 {
        self.max_time.load(Ordering::Relaxed)
    }

    pub fn min_valid_time(&self) -> i64 {
        self.min_valid_time.load(Ordering::Relaxed)
    }

    pub fn set_min_valid_time(&self, t: i64) {
        self.min_valid_time.fetch_max(t, Ordering::Relaxed);
    }

    pub fn get(&self, labels: &Labels) -> Option<Arc<MemSeries>> {
        self.index
            .read()
            .find(labels_hash_of(labels), |l| l == labels)
            .cloned()
    }

    /// The series for sorted, valid (name, value) pairs, created if needed — without
    /// allocating when it exists (the ingestion hot path).
    pub fn get_or_create_pairs(&self, pairs: &[(&str, &str)]) -> Arc<MemSeries> {
        let hash = labels_hash(pairs.iter().copied());
        let same = |l: &Labels| {
            l.len() == pairs.len()
                && l.iter()
                    .zip(pairs)
                    .all(|(a, (n, v))| a.name == *n && a.value == *v)
        };
        if let Some(series) = self.index.read().find(hash, same) {
            return series.clone();
        }
        self.get_or_create(&Labels::from_pairs(pairs))
    }

    pub fn get_by_ref(&self, series_ref: u64) -> Option<Arc<MemSeries>> {
        self.index.read().get_ref(series_ref).cloned()
    }

    /// The series for `labels`, created if needed.
    pub fn get_or_create(&self, labels: &Labels) -> Arc<MemSeries> {
        if let Some(series) = self.get(labels) {
            return series;
        }
        let mut index = self.index.write();
        if let Some(series) = index.find(labels_hash_of(labels), |l| l == labels) {
            return series.clone();
        }
        let series_ref = self.next_ref.fetch_add(1, Ordering::Relaxed);
        self.insert_locked(&mut index, series_ref, labels.clone(), false)
    }

    /// Recreates a series with a known ref (WAL replay).
    pub fn create_with_ref(&self, series_ref: u64, labels: Labels) -> Arc<MemSeries> {
        let mut index = self.index.write();
        if let Some(existing) = index.find(labels_hash_of(&labels), |l| *l == labels) {
            return existing.clone();
        }
        self.next_ref.fetch_max(series_ref + 1, Ordering::Relaxed);
        self.insert_locked(&mut index, series_ref, labels, true)
    }

    fn insert_locked(
        &self,
        index: &mut HeadIndex,
        series_ref: u64,
        labels: Labels,
        logged: bool,
    ) -> Arc<MemSeries> {
        let series = Arc::new(MemSeries {
            series_ref,
            labels: labels.clone(),
            data: Mutex::new(SeriesData::default()),
            logged: AtomicBool::new(logged),
            removed: AtomicBool::new(false),
        });
        index.insert_ref(series.clone());
        index.insert_hashed(labels_hash_of(&labels), series.clone());
        index.add_postings(&series);
        self.stats.series_created.fetch_add(1, Ordering::Relaxed);
        series
    }

    /// Where sample `(t, v)` fits, given the newest pending (uncommitted) time of the series.
    pub fn fit(
        &self,
        data: &SeriesData,
        pending: Option<(i64, u64)>,
        t: i64,
        v: f64,
    ) -> Result<Fit> {
        let (newest, newest_bits) = match (data.max_time(), pending) {
            (Some(m), Some((p, bits))) if p >= m => (Some(p), bits),
            (None, Some((p, bits))) => (Some(p), bits),
            (m, _) => (m, data.last_value),
        };
        let min_valid = self.appendable_min_valid_time();
        if t >= min_valid {
            match newest {
                None => return Ok(Fit::InOrder),
                Some(n) if t > n => return Ok(Fit::InOrder),
                Some(n) if t == n => {
                    return if newest_bits == v.to_bits() {
                        Ok(Fit::Duplicate)
                    } else {
                        Err(Error::DuplicateSampleForTimestamp)
                    };
                }
                Some(_) => {}
            }
        }
        let window = self.ooo_window_ms();
        if window > 0 {
            let head_max = self.max_time();
            if head_max == i64::MIN || t >= head_max.saturating_sub(window) {
                return Ok(Fit::OutOfOrder);
            }
            return Err(Error::TooOldSample);
        }
        if t < min_valid {
            return Err(Error::OutOfBounds);
        }
        Err(Error::OutOfOrderSample)
    }

    /// Prometheus accepts in-order samples down to max(minValidTime, maxt − range/2).
    fn appendable_min_valid_time(&self) -> i64 {
        let max = self.max_time();
        let half = if max == i64::MIN {
            i64::MIN
        } else {
            max.saturating_sub(self.opts.chunk_range_ms / 2)
        };
        self.min_valid_time().max(half)
    }

    /// Adds a validated sample to a locked series.
    pub fn apply(&self, data: &mut SeriesData, t: i64, v: f64, fit: Fit) -> Result<()> {
        match fit {
            Fit::Duplicate => return Ok(()),
            Fit::InOrder => data.append_in_order(t, v, self.opts.chunk_range_ms, &self.chunks),
            Fit::OutOfOrder => {
                data.insert_ooo(t, v)?;
                self.stats
                    .ooo_samples_appended
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        self.stats.samples_appended.fetch_add(1, Ordering::Relaxed);
        self.min_time.fetch_min(t, Ordering::Relaxed);
        self.max_time.fetch_max(t, Ordering::Relaxed);
        Ok(())
    }

    /// Validates and appends in one step (WAL replay, tests).
    pub fn append_now(&self, series: &MemSeries, t: i64, v: f64) -> Result<()> {
        let mut data = series.data.lock();
        let fit = self.fit(&data, None, t, v)?;
        self.apply(&mut data, t, v, fit)
    }

    /// Appends a sample that was already accepted (commit, WAL replay): bounds are not
    /// enforced, only ordering decides between the in-order chunk and the out-of-order buffer.
    pub fn append_unchecked(&self, series: &MemSeries, t: i64, v: f64) {
        let mut data = series.data.lock();
        let fit = match data.max_time() {
            None => Fit::InOrder,
            Some(m) if t > m => Fit::InOrder,
            Some(m) if t == m => Fit::Duplicate,
            Some(_) => Fit::OutOfOrder,
        };
        if fit == Fit::OutOfOrder && data.insert_ooo(t, v).is_err() {
            return;
        }
        if fit == Fit::InOrder {
            data.append_in_order(t, v, self.opts.chunk_range_ms, &self.chunks);
        }
        if fit != Fit::Duplicate {
            self.stats.samples_appended.fetch_add(1, Ordering::Relaxed);
            self.min_time.fetch_min(t, Ordering::Relaxed);
            self.max_time.fetch_max(t, Ordering::Relaxed);
        }
    }

    /// Stores a histogram sample that was already accepted (commit, WAL replay).
    pub fn append_histogram_unchecked(
        &self,
        series: &MemSeries,
        t: i64,
        h: Arc<argus_model::FloatHistogram>,
    ) {
        if series.data.lock().insert_histogram(t, h).is_ok() {
            self.stats.samples_appended.fetch_add(1, Ordering::Relaxed);
            self.min_time.fetch_min(t, Ordering::Relaxed);
            self.max_time.fetch_max(t, Ordering::Relaxed);
        }
    }

    /// Series refs matching the matchers.
    pub fn select_refs(&self, matchers: &[Matcher]) -> Vec<Arc<MemSeries>> {
        let index = self.index.read();
        select_postings(&*index, matchers)
            .into_iter()
            .filter_map(|r| index.get_ref(r).cloned())
            .collect()
    }

    /// [`Self::select_refs`], sorted by labels when `ordered`, else in reference order.
    fn select_refs_in_order(&self, matchers: &[Matcher], ordered: bool) -> Vec<Arc<MemSeries>> {
        let mut refs = self.select_refs(matchers);
        if ordered {
            argus_model::labels::sort_by_labels(&mut refs, |s| &s.labels);
        }
        refs
    }

    /// Matching series with their chunks overlapping `[mint, maxt]`, sorted by labels.
    pub fn select(&self, mint: i64, maxt: i64, matchers: &[Matcher]) -> Vec<SeriesChunks> {
        self.select_parts(mint, maxt, matchers, true)
    }

    /// Like [`Self::select`] but only series with histogram samples in range, without their
    /// float chunks (which would be copied and dropped unread).
    pub fn select_histograms(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Vec<SeriesChunks> {
        self.select_parts(mint, maxt, matchers, false)
    }

    fn select_parts(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
        floats: bool,
    ) -> Vec<SeriesChunks> {
        let refs = self.select_refs(matchers);
        let mut out: Vec<SeriesChunks> = Vec::with_capacity(if floats { refs.len() } else { 0 });
        out.extend(
            refs.into_iter()
                .filter_map(|s| self.series_chunks(&s, mint, maxt, floats)),
        );
        argus_model::labels::sort_by_labels(&mut out, |s| &s.labels);
        out
    }

    /// [`Self::select`] one series at a time (each series' chunks are read when the
    /// iterator reaches it), so that a reader that reduces each series as it comes never
    /// holds every series' chunks at once. In label order when `ordered`, else in series
    /// reference order (no sort, and the series are visited roughly where they lie in
    /// memory).
    pub fn select_iter(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
        ordered: bool,
    ) -> impl Iterator<Item = SeriesChunks> + '_ {
        self.select_refs_in_order(matchers, ordered)
            .into_iter()
            .filter_map(move |s| self.series_chunks(&s, mint, maxt, true))
    }

    /// One series' chunks (float ones only when `floats`) and histogram samples in range;
    /// `None` when it has neither.
    fn series_chunks(
        &self,
        s: &MemSeries,
        mint: i64,
        maxt: i64,
        floats: bool,
    ) -> Option<SeriesChunks> {
        let data = s.data.lock();
        let chunks = if floats {
            data.chunks_in(mint, maxt, &self.chunks)
        } else {
            Vec::new()
        };
        let in_range = data.histograms_in(mint, maxt);
        let hists = if in_range.is_empty() {
            Vec::new()
        } else {
            vec![crate::series::HistChunk::Samples(in_range.into())]
        };
        drop(data);
        (!chunks.is_empty() || !hists.is_empty()).then(|| SeriesChunks {
            labels: s.labels.clone(),
            chunks,
            hists,
            deleted: Vec::new(),
        })
    }

    /// Each matching series' newest sample in `[mint, maxt]`, sorted by labels: what an
    /// instant selector reads. Most series answer from their newest-sample bookkeeping
    /// without touching chunks; the others decode the chunks they need.
    pub fn select_last(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Vec<(Labels, argus_model::Sample)> {
        let mut out: Vec<(Labels, argus_model::Sample)> = self
            .select_refs(matchers)
            .into_iter()
            .filter_map(|s| Some((s.labels.clone(), self.newest(&s, mint, maxt).0?)))
            .collect();
        argus_model::labels::sort_by_labels(&mut out, |(l, _)| l);
        out
    }

    /// [`Self::select_last`] one series at a time, each with whether it has histogram
    /// samples in range, and series without a float sample there too (`None`). In label
    /// order when `ordered`, else in series reference order (no sort).
    pub fn select_last_iter(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
        ordered: bool,
    ) -> impl Iterator<Item = (Labels, Option<argus_model::Sample>, bool)> + '_ {
        let refs = self.select_refs_in_order(matchers, ordered);
        refs.into_iter().map(move |s| {
            let (last, hists) = self.newest(&s, mint, maxt);
            (s.labels.clone(), last, hists)
        })
    }

    /// One series' newest float sample in `[mint, maxt]` (from its bookkeeping when that
    /// can tell, else from the chunks it needs), and whether it has histogram samples there.
    fn newest(&self, s: &MemSeries, mint: i64, maxt: i64) -> (Option<argus_model::Sample>, bool) {
        let data = s.data.lock();
        let hists = !data.histograms_in(mint, maxt).is_empty();
        let last = match data.newest_in(mint, maxt) {
            Some(answer) => answer.map(|(t, v)| argus_model::Sample::new(t, v)),
            None => {
                // Decode after releasing the series, so appends are not held up.
                let chunks = data.chunks_in(mint, maxt, &self.chunks);
                drop(data);
                SeriesChunks {
                    labels: Labels::empty(),
                    chunks,
                    hists: Vec::new(),
                    deleted: Vec::new(),
                }
                .last_sample(mint, maxt)
            }
        };
        (last, hists)
    }

    /// Every series (for checkpoints, compaction and stats).
    pub fn all_series(&self) -> Vec<Arc<MemSeries>> {
        let index = self.index.read();
        let mut all: Vec<Arc<MemSeries>> = index.by_ref.iter().cloned().collect();
        all.sort_by_key(|s| s.series_ref);
        all
    }

    /// Label names present in the head.
    pub fn label_names(&self) -> Vec<String> {
        self.index
            .read()
            .postings
            .keys()
            .map(|k| k.to_string())
            .collect()
    }

    pub fn label_values(&self, name: &str) -> Vec<String> {
        self.index.read().label_values(name)
    }

    /// (name, number of values) and (name=value, series count) for TSDB status.
    pub fn postings_stats(&self) -> (Vec<(String, u64)>, Vec<(String, u64)>) {
        let index = self.index.read();
        let names = index
            .postings
            .iter()
            .map(|(n, v)| (n.to_string(), v.len() as u64))
            .collect();
        let pairs = index
            .postings
            .iter()
            .flat_map(|(n, vs)| {
                vs.iter()
                    .map(move |(v, l)| (format!("{n}={v}"), l.len() as u64))
            })
            .collect();
        (names, pairs)
    }

    /// Drops data before `before` (now in blocks) and removes series left empty.
    pub fn truncate(&self, before: i64) {
        self.set_min_valid_time(before);
        let mut emptied = Vec::new();
        let mut new_min = i64::MAX;
        for series in self.all_series() {
            let mut data = series.data.lock();
            data.truncate_before(before);
            match data.min_time() {
                Some(t) => new_min = new_min.min(t),
                None => emptied.push(series.clone()),
            }
        }
        self.min_time.store(new_min, Ordering::Relaxed);
        self.gc(emptied);
        if let Err(e) = self.chunks.truncate_before(before) {
            tracing::warn!(error = %e, "removing old head chunk files");
        }
    }

    /// Restores a checkpointed chunk; falls back to appending its samples one by one when it
    /// overlaps what the series already holds.
    pub fn restore_chunk(
        &self,
        series: &MemSeries,
        meta: crate::wal::ChunkRecordMeta,
        bytes: &[u8],
    ) {
        let mut data = series.data.lock();
        if data.restore_closed(bytes, meta, &self.chunks) {
            self.stats.samples_appended.fetch_add(
                crate::chunk::XorIter::new(bytes).len_hint() as u64,
                Ordering::Relaxed,
            );
            self.min_time.fetch_min(meta.min_time, Ordering::Relaxed);
            self.max_time.fetch_max(meta.max_time, Ordering::Relaxed);
            return;
        }
        drop(data);
        for (t, v) in crate::chunk::XorIter::new(bytes) {
            self.append_unchecked(series, t, v);
        }
    }

    fn gc(&self, candidates: Vec<Arc<MemSeries>>) {
        if candidates.is_empty() {
            return;
        }
        let mut index = self.index.write();
        for series in candidates {
            // Re-check under the index lock: an appender may have added data meanwhile.
            if !series.data.lock().is_empty() {
                continue;
            }
            series.removed.store(true, Ordering::Relaxed);
            index.remove_ref(series.series_ref);
            index.remove_hashed(labels_hash_of(&series.labels), series.series_ref);
            index.remove_postings(&series);
            self.stats.series_removed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Deletes samples in `[mint, maxt]` from the matching series.
    pub fn delete(&self, series: &[Arc<MemSeries>], mint: i64, maxt: i64) {
        let mut emptied = Vec::new();
        for s in series {
            let mut data = s.data.lock();
            data.delete_range(mint, maxt, self.opts.chunk_range_ms, &self.chunks);
            if data.is_empty() {
                emptied.push(s.clone());
            }
        }
        self.gc(emptied);
    }

    /// Approximate heap bytes of the head (index and chunks).
    pub fn heap_bytes(&self) -> usize {
        self.all_series()
            .iter()
            .map(|s| s.labels.heap_bytes() + s.data.lock().heap_bytes() + 160)
            .sum()
    }
}

#[cfg(test)]
mod tests;
