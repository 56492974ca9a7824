//! The database: head + WAL + blocks behind one appender and one querier, with the
//! background work (head compaction, out-of-order flush, block compaction, retention, WAL
//! checkpoints), snapshots and deletion.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use argus_model::{Labels, Matcher};
use parking_lot::{Mutex, RwLock};
use tracing::{info, warn};

use crate::block::{self, Block, BlockMeta};
use crate::error::{Error, IoContext, Result};
use crate::exemplars::{Exemplar, ExemplarError, ExemplarStorage};
use crate::head::{Head, HeadOptions, MemSeries};
use crate::series::{SeriesChunks, merge_series};
use crate::wal::{self, Record, RefSample, Tombstone, Wal};

pub const DEFAULT_BLOCK_RANGE_MS: i64 = 2 * 3600 * 1000;

#[derive(Debug, Clone)]
pub struct Options {
    /// Blocks older than this (relative to the newest data) are deleted; 0 = keep.
    pub retention_ms: i64,
    /// Oldest blocks are deleted while the data exceeds this many bytes; 0 = no limit.
    pub retention_bytes: u64,
    /// `--storage.tsdb.min-block-duration`: head block range.
    pub block_range_ms: i64,
    /// Largest block compaction may produce (`--storage.tsdb.max-block-duration`).
    pub max_block_range_ms: i64,
    pub ooo_window_ms: i64,
    pub wal_segment_size: u64,
    /// Size of the exemplar buffer; 0 stores no exemplars.
    pub max_exemplars: usize,
}

impl Default for Options {
    fn default() -> Self {
        let retention_ms = 15 * 24 * 3600 * 1000;
        Self {
            retention_ms,
            retention_bytes: 0,
            block_range_ms: DEFAULT_BLOCK_RANGE_MS,
            max_block_range_ms: default_max_block_range(retention_ms),
            ooo_window_ms: 0,
            wal_segment_size: wal::DEFAULT_SEGMENT_SIZE,
            max_exemplars: 0,
        }
    }
}

/// Prometheus: 10% of retention, at most 31 days.
pub fn default_max_block_range(retention_ms: i64) -> i64 {
    let cap = 31 * 24 * 3600 * 1000;
    if retention_ms <= 0 {
        cap
    } else {
        (retention_ms / 10).min(cap)
    }
}

#[derive(Default)]
pub struct DbStats {
    pub wal_corruptions: AtomicU64,
    pub compactions: AtomicU64,
    pub compactions_failed: AtomicU64,
    pub head_truncations: AtomicU64,
    pub checkpoints: AtomicU64,
    pub time_retentions: AtomicU64,
    pub size_retentions: AtomicU64,
    pub replay_unknown_refs: AtomicU64,
    pub reloads: AtomicU64,
}

pub struct Db {
    dir: PathBuf,
    opts: Options,
    pub head: Head,
    wal: Mutex<Wal>,
    blocks: RwLock<Vec<Arc<Block>>>,
    /// Serializes compaction, retention, snapshots and deletion (block-set changes).
    maintenance: Mutex<()>,
    /// Set by commits when the head has grown compactable; the compaction thread waits on it.
    compaction_wanted: (Mutex<bool>, parking_lot::Condvar),
    pub stats: DbStats,
    pub exemplars: ExemplarStorage,
    _lock: File,
}

impl Db {
    /// Opens (or creates) a data directory: locks it, loads blocks, replays the WAL.
    pub fn open(dir: &Path, opts: Options) -> Result<Self> {
        fs::create_dir_all(dir).ctx(|| format!("create data directory {}", dir.display()))?;
        let lock_path = dir.join("lock");
        let lock = File::create(&lock_path).ctx(|| format!("create {}", lock_path.display()))?;
        lock.try_lock().map_err(|e| Error::Locked {
            dir: dir.display().to_string(),
            reason: e.to_string(),
        })?;
        cleanup_tmp(dir)?;
        let blocks = load_blocks(dir)?;
        let head = Head::new(
            HeadOptions {
                chunk_range_ms: opts.block_range_ms,
                ooo_window_ms: opts.ooo_window_ms,
            },
            crate::head_chunks::HeadChunkStore::open(&dir.join("chunks_head"))?,
        );
        let blocks_max = blocks.iter().map(|b| b.meta.max_time).max();
        if let Some(t) = blocks_max {
            head.set_min_valid_time(t);
        }
        let stats = DbStats::default();
        let wal_dir = dir.join("wal");
        let started = std::time::Instant::now();
        let replay_floor = if opts.ooo_window_ms > 0 {
            i64::MIN
        } else {
            blocks_max.unwrap_or(i64::MIN)
        };
        let exemplars = ExemplarStorage::new(opts.max_exemplars);
        let report = wal::replay(&wal_dir, |record| {
            replay_record(&head, &exemplars, &stats, record, replay_floor);
        })?;
        for c in &report.corruptions {
            stats.wal_corruptions.fetch_add(1, Ordering::Relaxed);
            warn!(
                segment = %c.segment.display(),
                offset = c.offset,
                reason = %c.reason,
                dropped_bytes = c.dropped_bytes,
                dropped_segments = ?c.dropped_segments,
                "WAL corruption repaired: everything after the damage was dropped"
            );
        }
        info!(
            records = report.records,
            series = head.num_series(),
            blocks = blocks.len(),
            duration = ?started.elapsed(),
            "WAL replay completed"
        );
        let wal = Wal::open(&wal_dir, opts.wal_segment_size)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            opts,
            head,
            wal: Mutex::new(wal),
            blocks: RwLock::new(blocks),
            maintenance: Mutex::new(()),
            compaction_wanted: (Mutex::new(false), parking_lot::Condvar::new()),
            stats,
            exemplars,
            _lock: lock,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// Native-histogram samples in `[mint, maxt]` of the matching series (head and
    /// blocks), sorted by labels.
    pub fn select_histograms(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Vec<(Labels, Vec<crate::head::HistSample>)> {
        self.querier(mint, maxt)
            .select_histograms(matchers)
            .into_iter()
            .filter_map(|s| {
                let points = s.histograms(mint, maxt);
                (!points.is_empty()).then_some((s.labels, points))
            })
            .collect()
    }

    pub fn appender(&self) -> Appender<'_> {
        Appender {
            db: self,
            samples: Vec::new(),
            histograms: Vec::new(),
            pending: crate::head::U64Map::default(),
            pending_hist: crate::head::U64Map::default(),
            exemplars: Vec::new(),
            pending_exemplar: crate::head::U64Map::default(),
        }
    }

    pub fn blocks(&self) -> Vec<Arc<Block>> {
        self.blocks.read().clone()
    }

    /// A querier over `[mint, maxt]` (inclusive, milliseconds).
    pub fn querier(&self, mint: i64, maxt: i64) -> Querier<'_> {
        let blocks = self
            .blocks
            .read()
            .iter()
            .filter(|b| b.meta.max_time > mint && b.meta.min_time <= maxt)
            .cloned()
            .collect();
        Querier {
            db: self,
            blocks,
            mint,
            maxt,
        }
    }

    /// Lowest timestamp held (blocks or head), if any.
    pub fn lowest_timestamp(&self) -> Option<i64> {
        let blocks_min = self.blocks.read().iter().map(|b| b.meta.min_time).min();
        let head_min = self.head.min_time();
        let head_min = (head_min != i64::MAX).then_some(head_min);
        match (blocks_min, head_min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Bytes on disk of blocks, and of the WAL.
    pub fn disk_usage(&self) -> (u64, u64) {
        let blocks = self.blocks.read().iter().map(|b| b.size_bytes()).sum();
        (blocks, crate::fsutil::dir_size(&self.dir.join("wal")))
    }

    /// Shutdown: writes a checkpoint of the head (so the next start restores chunks instead
    /// of replaying every sample, like Prometheus's memory snapshot on shutdown) and fsyncs
    /// the WAL. Call it after appends have stopped.
    pub fn close(&self) -> Result<()> {
        let _guard = self.maintenance.lock();
        if self.head.num_series() > 0 {
            self.checkpoint()?;
        }
        self.wal.lock().sync()
    }

    /// True when the head spans more than 1.5 block ranges (Prometheus's trigger).
    pub fn head_compactable(&self) -> bool {
        let start = self.head.min_time().max(self.head.min_valid_time());
        let max = self.head.max_time();
        start != i64::MAX && max != i64::MIN && max - start > self.opts.block_range_ms / 2 * 3
    }

    /// Waits until a commit made the head compactable, or `timeout`. True when signalled.
    pub fn wait_for_compaction_signal(&self, timeout: std::time::Duration) -> bool {
        let (lock, cond) = &self.compaction_wanted;
        let mut wanted = lock.lock();
        if !*wanted {
            cond.wait_for(&mut wanted, timeout);
        }
        std::mem::take(&mut *wanted)
    }

    fn signal_compaction(&self) {
        let (lock, cond) = &self.compaction_wanted;
        let mut wanted = lock.lock();
        if !*wanted {
            *wanted = true;
            cond.notify_one();
        }
    }

    /// One round of background work. Returns true if anything changed.
    pub fn compact(&self) -> Result<bool> {
        let _guard = self.maintenance.lock();
        let result = self.compact_locked();
        if result.is_err() {
            self.stats
                .compactions_failed
                .fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    fn compact_locked(&self) -> Result<bool> {
        let mut changed = false;
        let mut truncated = false;
        let range = self.opts.block_range_ms;
        loop {
            let start = self.head.min_time().max(self.head.min_valid_time());
            let head_max = self.head.max_time();
            if start == i64::MAX || head_max == i64::MIN || head_max - start <= range / 2 * 3 {
                break;
            }
            let mint = start.div_euclid(range) * range;
            let maxt = mint + range;
            // Stop in-order appends below maxt before reading the data out.
            self.head.set_min_valid_time(maxt);
            self.write_head_block(mint, maxt)?;
            self.head.truncate(maxt);
            self.stats.head_truncations.fetch_add(1, Ordering::Relaxed);
            changed = true;
            truncated = true;
        }
        if self.flush_out_of_order()? {
            changed = true;
            truncated = true;
        }
        if truncated {
            self.checkpoint()?;
        }
        while self.compact_blocks()? {
            changed = true;
        }
        if self.apply_retention()? {
            changed = true;
        }
        Ok(changed)
    }

    fn write_head_block(&self, mint: i64, maxt: i64) -> Result<()> {
        let mut series: Vec<Arc<MemSeries>> = self.head.all_series();
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        let store = &self.head.chunks;
        let iter = series.into_iter().map(|s| {
            // In-order data only: out-of-order samples go through `flush_out_of_order`.
            let data = s.data.lock();
            let samples = data.samples_in(mint, maxt, store, false);
            // `maxt` is exclusive here.
            let hists = data.histograms_in(mint, maxt - 1).to_vec();
            (s.labels.clone(), samples, hists)
        });
        if let Some(meta) = block::write_block(&self.dir, mint, maxt, 1, Vec::new(), iter)? {
            self.add_block(&meta)?;
        }
        Ok(())
    }

    /// Moves out-of-order samples older than the head's valid range into blocks.
    fn flush_out_of_order(&self) -> Result<bool> {
        let floor = self.head.min_valid_time();
        if floor == i64::MIN {
            return Ok(false);
        }
        let range = self.opts.block_range_ms;
        let mut by_range: std::collections::BTreeMap<i64, Vec<(Labels, Vec<(i64, f64)>)>> =
            Default::default();
        let mut taken: Vec<(Arc<MemSeries>, Vec<(i64, f64)>)> = Vec::new();
        for s in self.head.all_series() {
            let mut data = s.data.lock();
            let split = data.ooo.partition_point(|x| x.0 < floor);
            if split == 0 {
                continue;
            }
            let old: Vec<(i64, f64)> = data.ooo.take_first(split);
            drop(data);
            taken.push((s.clone(), old.clone()));
            for group in old.chunk_by(|a, b| a.0.div_euclid(range) == b.0.div_euclid(range)) {
                let key = group[0].0.div_euclid(range) * range;
                by_range
                    .entry(key)
                    .or_default()
                    .push((s.labels.clone(), group.to_vec()));
            }
        }
        if taken.is_empty() {
            return Ok(false);
        }
        for (mint, mut series) in by_range {
            series.sort_by(|a, b| a.0.cmp(&b.0));
            let written = block::write_block(
                &self.dir,
                mint,
                mint + range,
                1,
                Vec::new(),
                series.into_iter().map(|(l, s)| (l, s, Vec::new())),
            );
            match written {
                Ok(Some(meta)) => self.add_block(&meta)?,
                Ok(None) => {}
                Err(e) => {
                    // Put the samples back so that nothing is lost; retried next round.
                    for (s, old) in &taken {
                        let mut data = s.data.lock();
                        for &(t, v) in old {
                            if let Err(i) = data.ooo.binary_search_by_key(&t, |x| x.0) {
                                data.ooo.insert(i, (t, v));
                            }
                        }
                    }
                    return Err(e);
                }
            }
        }
        self.head.truncate(floor);
        Ok(true)
    }

    fn add_block(&self, meta: &BlockMeta) -> Result<()> {
        let block = Block::open(&self.dir.join(&meta.ulid))?;
        let mut blocks = self.blocks.write();
        blocks.push(Arc::new(block));
        blocks.sort_by_key(|b| (b.meta.min_time, b.meta.max_time));
        self.stats.compactions.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Writes a WAL checkpoint of the head and drops the segments it covers. Streams: at
    /// most one batch of series is encoded in memory at a time.
    fn checkpoint(&self) -> Result<()> {
        let closed = self.wal.lock().cut()?;
        let mut writer = wal::CheckpointWriter::new(&self.dir.join("wal"), closed)?;
        let series = self.head.all_series();
        let store = &self.head.chunks;
        let mut buf = Vec::new();
        for batch in series.chunks(1000) {
            buf.clear();
            wal::encode_series(&mut buf, batch.iter().map(|s| (s.series_ref, &s.labels)));
            writer.write(&buf)?;
            for s in batch {
                let data = s.data.lock();
                let n_closed = data.closed.len();
                for (i, c) in data.closed.iter().enumerate() {
                    if let Some(bytes) = c.bytes_copied(store) {
                        // Only the newest chunk's last value matters on restore (duplicate
                        // detection); decode for it only when there is no open chunk.
                        let last_value_bits = if i + 1 == n_closed && data.open.is_none() {
                            crate::chunk::XorIter::new(&bytes)
                                .last()
                                .map_or(0, |(_, v)| v.to_bits())
                        } else {
                            0
                        };
                        let meta = wal::ChunkRecordMeta {
                            min_time: c.min_time,
                            max_time: c.max_time(),
                            last_value_bits,
                        };
                        buf.clear();
                        wal::encode_chunk(&mut buf, s.series_ref, meta, &bytes);
                        writer.write(&buf)?;
                    }
                }
                if let Some(open) = &data.open {
                    let meta = wal::ChunkRecordMeta {
                        min_time: open.min_time(),
                        max_time: open.max_time(),
                        last_value_bits: open.last_value_bits(),
                    };
                    buf.clear();
                    wal::encode_chunk(&mut buf, s.series_ref, meta, open.bytes());
                    writer.write(&buf)?;
                }
                if !data.hists().is_empty() {
                    buf.clear();
                    wal::encode_histograms(
                        &mut buf,
                        data.hists().iter().map(|(t, h)| (s.series_ref, *t, &**h)),
                    );
                    writer.write(&buf)?;
                }
                let exemplars = self.exemplars.series_exemplars(s.series_ref);
                if !exemplars.is_empty() {
                    buf.clear();
                    wal::encode_exemplars(&mut buf, exemplars.iter().map(|e| (s.series_ref, e)));
                    writer.write(&buf)?;
                }
                if !data.ooo.is_empty() {
                    let samples: Vec<RefSample> = data
                        .ooo
                        .iter()
                        .map(|&(t, v)| RefSample {
                            series_ref: s.series_ref,
                            t,
                            v,
                        })
                        .collect();
                    buf.clear();
                    wal::encode_samples(&mut buf, &samples);
                    writer.write(&buf)?;
                }
            }
        }
        writer.finish()?;
        self.stats.checkpoints.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Merges overlapping blocks, or blocks that fill a larger aligned range. One merge per call.
    fn compact_blocks(&self) -> Result<bool> {
        let blocks = self.blocks();
        if blocks.len() < 2 {
            return Ok(false);
        }
        // Overlaps first (out-of-order blocks, backfill): merge each overlapping group.
        let mut group: Vec<Arc<Block>> = Vec::new();
        let mut group_max = i64::MIN;
        for b in &blocks {
            if !group.is_empty() && b.meta.min_time < group_max {
                group.push(b.clone());
                group_max = group_max.max(b.meta.max_time);
                continue;
            }
            if group.len() > 1 {
                break;
            }
            group = vec![b.clone()];
            group_max = b.meta.max_time;
        }
        if group.len() > 1 {
            self.merge_blocks(&group)?;
            return Ok(true);
        }
        let newest_max = blocks
            .iter()
            .map(|b| b.meta.max_time)
            .max()
            .unwrap_or(i64::MIN);
        let mut range = self.opts.block_range_ms * 3;
        let mut ranges = Vec::new();
        while range <= self.opts.max_block_range_ms {
            ranges.push(range);
            range *= 3;
        }
        for &range in ranges.iter().rev() {
            let mut windows: std::collections::BTreeMap<i64, Vec<Arc<Block>>> = Default::default();
            for b in &blocks {
                let start = b.meta.min_time.div_euclid(range) * range;
                if b.meta.max_time <= start + range {
                    windows.entry(start).or_default().push(b.clone());
                }
            }
            for (start, members) in windows {
                if members.len() > 1 && start + range <= newest_max {
                    self.merge_blocks(&members)?;
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Replaces `sources` with one block holding their merged data.
    fn merge_blocks(&self, sources: &[Arc<Block>]) -> Result<()> {
        let mint = sources.iter().map(|b| b.meta.min_time).min().unwrap_or(0);
        let maxt = sources.iter().map(|b| b.meta.max_time).max().unwrap_or(0);
        let level = sources
            .iter()
            .map(|b| b.meta.compaction.level)
            .max()
            .unwrap_or(0)
            + 1;
        let mut ulids: BTreeSet<String> = BTreeSet::new();
        for b in sources {
            ulids.extend(b.meta.compaction.sources.iter().cloned());
        }
        let merged = MergedSeries::new(sources.iter().map(|b| b.all_series()).collect());
        let iter = merged.map(|s| {
            let samples = s.samples(i64::MIN, i64::MAX);
            let hists = s.histograms(i64::MIN, i64::MAX);
            (
                s.labels,
                samples
                    .into_iter()
                    .map(|x| (x.timestamp_ms, x.value))
                    .collect(),
                hists,
            )
        });
        let meta = block::write_block(
            &self.dir,
            mint,
            maxt,
            level,
            ulids.into_iter().collect(),
            iter,
        )?;
        let new_block = match meta {
            Some(meta) => Some(Arc::new(Block::open(&self.dir.join(&meta.ulid))?)),
            None => None,
        };
        {
            let mut blocks = self.blocks.write();
            blocks.retain(|b| !sources.iter().any(|s| s.ulid() == b.ulid()));
            if let Some(b) = new_block {
                blocks.push(b);
            }
            blocks.sort_by_key(|b| (b.meta.min_time, b.meta.max_time));
        }
        for b in sources {
            remove_block_dir(&b.dir)?;
        }
        self.stats.compactions.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Deletes blocks beyond the time or size retention. Returns true if any went.
    fn apply_retention(&self) -> Result<bool> {
        let blocks = self.blocks();
        let mut doomed: Vec<Arc<Block>> = Vec::new();
        if self.opts.retention_ms > 0 {
            let newest = blocks
                .iter()
                .map(|b| b.meta.max_time)
                .chain((self.head.max_time() != i64::MIN).then_some(self.head.max_time()))
                .max();
            if let Some(newest) = newest {
                for b in &blocks {
                    if newest - b.meta.max_time >= self.opts.retention_ms {
                        doomed.push(b.clone());
                        self.stats.time_retentions.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        if self.opts.retention_bytes > 0 {
            let wal_bytes = crate::fsutil::dir_size(&self.dir.join("wal"));
            let mut total: u64 = wal_bytes
                + blocks
                    .iter()
                    .filter(|b| !doomed.iter().any(|d| d.ulid() == b.ulid()))
                    .map(|b| b.size_bytes())
                    .sum::<u64>();
            for b in &blocks {
                if total <= self.opts.retention_bytes {
                    break;
                }
                if doomed.iter().any(|d| d.ulid() == b.ulid()) {
                    continue;
                }
                total = total.saturating_sub(b.size_bytes());
                doomed.push(b.clone());
                self.stats.size_retentions.fetch_add(1, Ordering::Relaxed);
            }
        }
        if doomed.is_empty() {
            return Ok(false);
        }
        self.blocks
            .write()
            .retain(|b| !doomed.iter().any(|d| d.ulid() == b.ulid()));
        for b in &doomed {
            info!(
                block = b.ulid(),
                min_time = b.meta.min_time,
                max_time = b.meta.max_time,
                "deleting block beyond retention"
            );
            remove_block_dir(&b.dir)?;
        }
        Ok(true)
    }

    /// Writes a consistent snapshot under `<data>/snapshots/<name>` and returns the name.
    /// Blocks are hard-linked; unless `skip_head`, the head is written as a block too.
    pub fn snapshot(&self, skip_head: bool) -> Result<String> {
        let _guard = self.maintenance.lock();
        let now = argus_model::time::now_ms();
        // Prometheus's layout: 20060102T150405Z-<16 hex digits>.
        let stamp: String = argus_model::time::format_rfc3339_millis(now / 1000 * 1000)
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        let name = format!("{stamp}-{:016x}", rand::random::<u64>());
        let dest = self.dir.join("snapshots").join(&name);
        fs::create_dir_all(&dest).ctx(|| format!("create {}", dest.display()))?;
        for b in self.blocks() {
            crate::fsutil::hard_link_tree(&b.dir, &dest.join(b.ulid()))?;
        }
        if !skip_head {
            let mut series = self.head.all_series();
            series.sort_by(|a, b| a.labels.cmp(&b.labels));
            let mint = self.head.min_time();
            let maxt = self.head.max_time();
            if mint != i64::MAX && maxt != i64::MIN {
                let store = &self.head.chunks;
                let iter = series.into_iter().map(|s| {
                    let data = s.data.lock();
                    let samples = data.samples_before(i64::MIN, i64::MAX, store);
                    (s.labels.clone(), samples, data.hists().to_vec())
                });
                block::write_block(&dest, mint, maxt + 1, 1, Vec::new(), iter)?;
            }
        }
        crate::fsutil::sync_dir(&dest)?;
        Ok(name)
    }

    /// Deletes samples in `[mint, maxt]` of matching series (head now, blocks by tombstone).
    pub fn delete_series(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<()> {
        let _guard = self.maintenance.lock();
        for b in self.blocks() {
            b.delete(mint, maxt, matchers)?;
        }
        let series = self.head.select_refs(matchers);
        if series.is_empty() {
            return Ok(());
        }
        let tombstones: Vec<Tombstone> = series
            .iter()
            .map(|s| Tombstone {
                series_ref: s.series_ref,
                mint,
                maxt,
            })
            .collect();
        let mut buf = Vec::new();
        Record::Tombstones(tombstones).encode(&mut buf);
        let mut wal = self.wal.lock();
        wal.log(&[&buf])?;
        self.head.delete(&series, mint, maxt);
        Ok(())
    }

    /// Rewrites blocks that carry tombstones without the deleted data.
    pub fn clean_tombstones(&self) -> Result<()> {
        let _guard = self.maintenance.lock();
        for b in self.blocks() {
            if b.has_tombstones() {
                self.merge_blocks(std::slice::from_ref(&b))?;
            }
        }
        Ok(())
    }
}

fn replay_record(
    head: &Head,
    exemplars: &ExemplarStorage,
    stats: &DbStats,
    record: Record,
    floor: i64,
) {
    let mut unknown = 0u64;
    match record {
        Record::Series(series) => {
            for (r, labels) in series {
                head.create_with_ref(r, labels);
            }
        }
        Record::Samples(samples) => {
            let mut last: Option<Arc<MemSeries>> = None;
            for s in samples {
                if s.t < floor {
                    continue;
                }
                if last.as_ref().is_none_or(|l| l.series_ref != s.series_ref) {
                    last = head.get_by_ref(s.series_ref);
                }
                match &last {
                    Some(series) => head.append_unchecked(series, s.t, s.v),
                    None => unknown += 1,
                }
            }
        }
        Record::Chunk {
            series_ref,
            meta,
            bytes,
        } => match head.get_by_ref(series_ref) {
            Some(series) => {
                if meta.min_time >= floor {
                    head.restore_chunk(&series, meta, &bytes);
                } else {
                    for (t, v) in crate::chunk::XorIter::new(&bytes) {
                        if t >= floor {
                            head.append_unchecked(&series, t, v);
                        }
                    }
                }
            }
            None => unknown += 1,
        },
        Record::Histograms(samples) => {
            for s in samples {
                if s.t < floor {
                    continue;
                }
                match head.get_by_ref(s.series_ref) {
                    Some(series) => head.append_histogram_unchecked(&series, s.t, Arc::new(s.h)),
                    None => unknown += 1,
                }
            }
        }
        Record::Tombstones(tombstones) => {
            for t in tombstones {
                if let Some(series) = head.get_by_ref(t.series_ref) {
                    head.delete(&[series], t.mint, t.maxt);
                }
            }
        }
        // Out-of-order ones are dropped, as at append time.
        Record::Exemplars(list) if exemplars.enabled() => {
            for (series_ref, e) in list {
                if let Some(series) = head.get_by_ref(series_ref)
                    && exemplars.validate(series_ref, &e, None).is_ok()
                {
                    exemplars.add(series_ref, &series.labels, e);
                }
            }
        }
        Record::Exemplars(_) => {}
    }
    if unknown > 0 {
        stats
            .replay_unknown_refs
            .fetch_add(unknown, Ordering::Relaxed);
    }
}

fn cleanup_tmp(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir)
        .ctx(|| format!("read {}", dir.display()))?
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.ends_with(".tmp") || name.ends_with(".deleting") {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
    Ok(())
}

fn load_blocks(dir: &Path) -> Result<Vec<Arc<Block>>> {
    let mut blocks = Vec::new();
    for entry in fs::read_dir(dir)
        .ctx(|| format!("read {}", dir.display()))?
        .flatten()
    {
        let path = entry.path();
        if !path.join("meta.json").is_file() {
            continue;
        }
        match Block::open(&path) {
            Ok(b) => blocks.push(Arc::new(b)),
            Err(e) => {
                // Prometheus refuses to start on a corrupt block; we keep serving the rest and
                // say loudly which block was left out.
                warn!(block = %path.display(), error = %e, "skipping unreadable block");
            }
        }
    }
    blocks.sort_by_key(|b| (b.meta.min_time, b.meta.max_time));
    Ok(blocks)
}

fn remove_block_dir(dir: &Path) -> Result<()> {
    // Rename first so that a crash mid-delete never leaves a half block that looks whole.
    let doomed = dir.with_extension("deleting");
    fs::rename(dir, &doomed).ctx(|| format!("rename {}", dir.display()))?;
    fs::remove_dir_all(&doomed).ctx(|| format!("remove {}", doomed.display()))
}

/// K-way merge of label-sorted series streams, joining equal label sets.
pub struct MergedSeries<'a> {
    sources: Vec<std::iter::Peekable<Box<dyn Iterator<Item = SeriesChunks> + 'a>>>,
}

impl<'a> MergedSeries<'a> {
    pub fn new<I: Iterator<Item = SeriesChunks> + 'a>(sources: Vec<I>) -> Self {
        Self {
            sources: sources
                .into_iter()
                .map(|s| (Box::new(s) as Box<dyn Iterator<Item = SeriesChunks> + 'a>).peekable())
                .collect(),
        }
    }
}

impl Iterator for MergedSeries<'_> {
    type Item = SeriesChunks;

    fn next(&mut self) -> Option<SeriesChunks> {
        let smallest = self
            .sources
            .iter_mut()
            .filter_map(|s| s.peek().map(|x| x.labels.clone()))
            .min()?;
        let mut parts = Vec::new();
        for s in &mut self.sources {
            if s.peek().is_some_and(|x| x.labels == smallest) {
                parts.extend(s.next().map(|x| vec![x]));
            }
        }
        merge_series(parts).into_iter().next()
    }
}

/// Reads head and blocks over one time range.
pub struct Querier<'a> {
    db: &'a Db,
    blocks: Vec<Arc<Block>>,
    pub mint: i64,
    pub maxt: i64,
}

impl Querier<'_> {
    /// Matching series with data in range, sorted by labels, sources merged.
    pub fn select(&self, matchers: &[Matcher]) -> Vec<SeriesChunks> {
        let head = self.db.head.select(self.mint, self.maxt, matchers);
        self.with_blocks(matchers, head)
    }

    /// [`Self::select`] one series at a time: each source (blocks, head) reads a series
    /// when the merge reaches it, so no list of every series' chunks is built. In label
    /// order when `ordered`; otherwise, when only the head is in range, in the order the
    /// head holds them (blocks and head are merged in label order either way).
    pub fn select_iter(
        &self,
        matchers: &[Matcher],
        ordered: bool,
    ) -> Box<dyn Iterator<Item = SeriesChunks> + '_> {
        if self.blocks.is_empty() {
            return Box::new(
                self.db
                    .head
                    .select_iter(self.mint, self.maxt, matchers, ordered),
            );
        }
        let head = self
            .db
            .head
            .select_iter(self.mint, self.maxt, matchers, true);
        let mut sources: Vec<Box<dyn Iterator<Item = SeriesChunks> + '_>> = self
            .blocks
            .iter()
            .map(|b| {
                Box::new(b.select_iter(self.mint, self.maxt, matchers))
                    as Box<dyn Iterator<Item = SeriesChunks> + '_>
            })
            .collect();
        sources.push(Box::new(head));
        Box::new(MergedSeries::new(sources))
    }

    /// The blocks' matching series merged with the head's.
    fn with_blocks(&self, matchers: &[Matcher], head: Vec<SeriesChunks>) -> Vec<SeriesChunks> {
        let mut sources: Vec<Vec<SeriesChunks>> = self
            .blocks
            .iter()
            .map(|b| b.select(self.mint, self.maxt, matchers))
            .collect();
        sources.push(head);
        merge_series(sources)
    }

    /// Matching series with histogram samples in range, sorted by labels, with only their
    /// histogram chunks (float chunks may be left out).
    pub fn select_histograms(&self, matchers: &[Matcher]) -> Vec<SeriesChunks> {
        let head = self
            .db
            .head
            .select_histograms(self.mint, self.maxt, matchers);
        self.with_blocks(matchers, head)
            .into_iter()
            .filter(|s| !s.hists.is_empty())
            .collect()
    }

    /// Each matching series' newest sample in range, sorted by labels (instant selectors).
    /// With only the head in range this skips chunk reads for most series; with blocks, the
    /// series are read one at a time, so that only the answer is held, not every series'
    /// chunk list.
    pub fn select_last(&self, matchers: &[Matcher]) -> Vec<(Labels, argus_model::Sample)> {
        if self.blocks.is_empty() {
            return self.db.head.select_last(self.mint, self.maxt, matchers);
        }
        self.select_last_iter(matchers, true)
            .filter_map(|(labels, last, _)| Some((labels, last?)))
            .collect()
    }

    /// [`Self::select_last`] one series at a time, each with whether it has histogram
    /// samples in range, and series without a float sample there too (`None`). In label
    /// order when `ordered`; otherwise, when only the head is in range, in the order the
    /// head holds them (blocks and head are merged in label order either way).
    pub fn select_last_iter(
        &self,
        matchers: &[Matcher],
        ordered: bool,
    ) -> Box<dyn Iterator<Item = (Labels, Option<argus_model::Sample>, bool)> + '_> {
        if self.blocks.is_empty() {
            return Box::new(
                self.db
                    .head
                    .select_last_iter(self.mint, self.maxt, matchers, ordered),
            );
        }
        Box::new(self.select_iter(matchers, true).map(|s| {
            let last = s.last_sample(self.mint, self.maxt);
            let hists = !s.hists.is_empty();
            (s.labels, last, hists)
        }))
    }

    /// Whether the head holds samples in range (`OverlapsClosedInterval`): Prometheus asks
    /// the head for names and values only then.
    fn head_in_range(&self) -> bool {
        let head = &self.db.head;
        head.min_time() <= self.maxt && self.mint <= head.max_time()
    }

    /// Label names, of matching series when matchers are given.
    pub fn label_names(&self, matchers: &[Matcher]) -> Vec<String> {
        let mut names: BTreeSet<String> = BTreeSet::new();
        if matchers.is_empty() {
            for b in &self.blocks {
                names.extend(b.label_names());
            }
            if self.head_in_range() {
                names.extend(self.db.head.label_names());
            }
        } else {
            for s in self.select(matchers) {
                names.extend(s.labels.iter().map(|l| l.name.to_string()));
            }
        }
        names.into_iter().collect()
    }

    /// Values of `name`, of matching series when matchers are given.
    pub fn label_values(&self, name: &str, matchers: &[Matcher]) -> Vec<String> {
        use crate::postings::IndexLookup;
        let mut values: BTreeSet<String> = BTreeSet::new();
        if matchers.is_empty() {
            for b in &self.blocks {
                values.extend(b.label_values(name));
            }
            if self.head_in_range() {
                values.extend(self.db.head.label_values(name));
            }
        } else {
            for s in self.select(matchers) {
                values.extend(s.labels.get(name).map(str::to_string));
            }
        }
        values.into_iter().collect()
    }
}

/// Collects samples and commits them atomically: all of them reach the WAL and the head, or
/// (on the first rejected sample, or rollback) none.
pub struct Appender<'a> {
    db: &'a Db,
    samples: Vec<(Arc<MemSeries>, i64, f64)>,
    histograms: Vec<(Arc<MemSeries>, i64, Arc<argus_model::FloatHistogram>)>,
    /// Newest pending (time, value bits) per series ref.
    pending: crate::head::U64Map<(i64, u64)>,
    /// Newest pending histogram time per series ref.
    pending_hist: crate::head::U64Map<i64>,
    exemplars: Vec<(Arc<MemSeries>, Exemplar)>,
    /// Index in `exemplars` of the newest queued exemplar per series ref.
    pending_exemplar: crate::head::U64Map<usize>,
}

impl Appender<'_> {
    /// Queues a sample; fails with Prometheus's error if it cannot be stored.
    pub fn append(&mut self, labels: &Labels, t: i64, v: f64) -> Result<()> {
        let series = self.db.head.get_or_create(labels);
        self.append_to(series, t, v)
    }

    /// Queues a sample for a series found with [`Head::get_or_create_pairs`].
    pub fn append_to(&mut self, series: Arc<MemSeries>, t: i64, v: f64) -> Result<()> {
        let pending = self.pending.get(&series.series_ref).copied();
        let fit = {
            let data = series.data.lock();
            self.db.head.fit(&data, pending, t, v)
        };
        let stats = &self.db.head.stats;
        match fit {
            Ok(crate::head::Fit::Duplicate) => Ok(()),
            Ok(fit) => {
                if fit == crate::head::Fit::InOrder {
                    self.pending.insert(series.series_ref, (t, v.to_bits()));
                }
                self.samples.push((series, t, v));
                Ok(())
            }
            Err(e) => {
                let counter = match e {
                    Error::OutOfOrderSample => &stats.out_of_order_rejected,
                    Error::OutOfBounds => &stats.out_of_bounds_rejected,
                    Error::TooOldSample => &stats.too_old_rejected,
                    _ => &stats.duplicate_rejected,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Queues a native-histogram sample. In order per series, or within the out-of-order
    /// window; a different histogram at a time that already has one is refused.
    pub fn append_histogram_to(
        &mut self,
        series: Arc<MemSeries>,
        t: i64,
        h: argus_model::FloatHistogram,
    ) -> Result<()> {
        let head = &self.db.head;
        if t < head.min_valid_time() {
            head.stats
                .out_of_bounds_rejected
                .fetch_add(1, Ordering::Relaxed);
            return Err(Error::OutOfBounds);
        }
        let newest = {
            let data = series.data.lock();
            if let Ok(i) = data.hists().binary_search_by_key(&t, |s| s.0) {
                if data.hists()[i].1.equals(&h) {
                    return Ok(());
                }
                head.stats
                    .duplicate_rejected
                    .fetch_add(1, Ordering::Relaxed);
                return Err(Error::DuplicateSampleForTimestamp);
            }
            data.hists().last().map(|s| s.0)
        };
        let pending = self.pending_hist.get(&series.series_ref).copied();
        let newest = newest.max(pending);
        if let Some(n) = newest
            && t <= n
            && t <= n - head.ooo_window_ms()
        {
            head.stats
                .out_of_order_rejected
                .fetch_add(1, Ordering::Relaxed);
            return Err(Error::OutOfOrderSample);
        }
        let newest_pending = self.pending_hist.entry(series.series_ref).or_insert(t);
        *newest_pending = (*newest_pending).max(t);
        self.histograms.push((series, t, Arc::new(h)));
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.samples.len() + self.histograms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty() && self.histograms.is_empty() && self.exemplars.is_empty()
    }

    /// Queues an exemplar of a series (nothing when exemplar storage is off). A duplicate of
    /// the series' newest exemplar is accepted and dropped; an out-of-order one is refused
    /// and counted.
    pub fn append_exemplar(
        &mut self,
        series: Arc<MemSeries>,
        e: Exemplar,
    ) -> std::result::Result<(), ExemplarError> {
        let storage = &self.db.exemplars;
        if !storage.enabled() {
            return Ok(());
        }
        let pending = self
            .pending_exemplar
            .get(&series.series_ref)
            .map(|&i| &self.exemplars[i].1);
        match storage.validate(series.series_ref, &e, pending) {
            Ok(()) => {
                // Validation keeps a series' queued exemplars in time order, so the last
                // one queued is its newest.
                self.pending_exemplar
                    .insert(series.series_ref, self.exemplars.len());
                self.exemplars.push((series, e));
                Ok(())
            }
            Err(ExemplarError::Duplicate) => Ok(()),
            Err(err) => {
                if err == ExemplarError::OutOfOrder {
                    storage.out_of_order.fetch_add(1, Ordering::Relaxed);
                }
                Err(err)
            }
        }
    }

    /// Logs the samples (and any series not yet logged) to the WAL, then adds them to the head.
    pub fn commit(self) -> Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        let mut wal = self.db.wal.lock();
        let new_series: Vec<&Arc<MemSeries>> = {
            let mut seen = std::collections::HashSet::new();
            self.samples
                .iter()
                .map(|(s, _, _)| s)
                .chain(self.histograms.iter().map(|(s, _, _)| s))
                .chain(self.exemplars.iter().map(|(s, _)| s))
                .filter(|s| !s.logged.load(Ordering::Relaxed) && seen.insert(s.series_ref))
                .collect()
        };
        let mut series_buf = Vec::new();
        if !new_series.is_empty() {
            wal::encode_series(
                &mut series_buf,
                new_series.iter().map(|s| (s.series_ref, &s.labels)),
            );
        }
        let refs: Vec<RefSample> = self
            .samples
            .iter()
            .map(|(s, t, v)| RefSample {
                series_ref: s.series_ref,
                t: *t,
                v: *v,
            })
            .collect();
        let mut samples_buf = Vec::with_capacity(refs.len() * 12);
        if !refs.is_empty() {
            wal::encode_samples(&mut samples_buf, &refs);
        }
        let mut hist_buf = Vec::new();
        if !self.histograms.is_empty() {
            wal::encode_histograms(
                &mut hist_buf,
                self.histograms
                    .iter()
                    .map(|(s, t, h)| (s.series_ref, *t, &**h)),
            );
        }
        let mut exemplar_buf = Vec::new();
        if !self.exemplars.is_empty() {
            wal::encode_exemplars(
                &mut exemplar_buf,
                self.exemplars.iter().map(|(s, e)| (s.series_ref, e)),
            );
        }
        let parts: Vec<&[u8]> = [&series_buf, &samples_buf, &hist_buf, &exemplar_buf]
            .into_iter()
            .filter(|b| !b.is_empty())
            .map(|b| b.as_slice())
            .collect();
        wal.log(&parts)?;
        for s in new_series {
            s.logged.store(true, Ordering::Relaxed);
        }
        // Applied while the WAL lock is held, so a checkpoint never misses a logged sample.
        // Bounds were checked at append time; here only ordering decides where a sample
        // goes, so nothing that reached the WAL is dropped.
        for (series, t, v) in &self.samples {
            self.db.head.append_unchecked(series, *t, *v);
        }
        for (series, t, h) in &self.histograms {
            self.db
                .head
                .append_histogram_unchecked(series, *t, h.clone());
        }
        for (series, e) in self.exemplars {
            self.db.exemplars.add(series.series_ref, &series.labels, e);
        }
        drop(wal);
        if self.db.head_compactable() {
            self.db.signal_compaction();
        }
        Ok(())
    }

    pub fn rollback(self) {}
}

#[cfg(test)]
mod tests;
