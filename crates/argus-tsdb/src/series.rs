//! What a query gets back for one series: its labels and the chunks that overlap the query
//! range, from wherever they live (head memory, a block's mmapped chunk file, out-of-order
//! buffers). Samples are decoded only when asked for, merged across sources by timestamp.

use std::sync::Arc;

use argus_model::{Labels, Sample};

use crate::chunk::XorIter;

#[derive(Clone)]
pub enum ChunkData {
    /// An XOR chunk owned by the head (or copied from its open chunk).
    Xor(Arc<[u8]>),
    /// A tagged chunk (`chunk::scaled`) inside a block's memory-mapped chunk file.
    Block(Arc<memmap2::Mmap>, usize, usize),
    /// Plain samples (out-of-order buffer), sorted by time.
    Samples(Arc<[(i64, f64)]>),
}

impl ChunkData {
    fn for_each(&self, mut f: impl FnMut(i64, f64)) {
        match self {
            ChunkData::Xor(bytes) => XorIter::new(bytes).for_each(|(t, v)| f(t, v)),
            ChunkData::Block(map, start, end) => {
                if let Some(bytes) = map.get(*start..*end) {
                    crate::chunk::scaled::decode_block_chunk(bytes, f);
                }
            }
            ChunkData::Samples(samples) => samples.iter().for_each(|&(t, v)| f(t, v)),
        }
    }
}

#[derive(Clone)]
pub struct ChunkMeta {
    pub min_time: i64,
    pub max_time: i64,
    pub data: ChunkData,
}

/// A deleted time range (inclusive on both ends, as Prometheus's tombstones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub mint: i64,
    pub maxt: i64,
}

impl Interval {
    pub fn contains(&self, t: i64) -> bool {
        self.mint <= t && t <= self.maxt
    }
}

#[derive(Clone)]
pub struct SeriesChunks {
    pub labels: Labels,
    pub chunks: Vec<ChunkMeta>,
    pub deleted: Vec<Interval>,
}

impl SeriesChunks {
    /// Samples with `mint <= t <= maxt`, sorted, one per timestamp, tombstones applied.
    pub fn samples(&self, mint: i64, maxt: i64) -> Vec<Sample> {
        let mut out: Vec<Sample> = Vec::new();
        let mut sorted = true;
        for chunk in &self.chunks {
            if chunk.max_time < mint || chunk.min_time > maxt {
                continue;
            }
            chunk.data.for_each(|t, v| {
                if t < mint || t > maxt || self.deleted.iter().any(|d| d.contains(t)) {
                    return;
                }
                if let Some(last) = out.last()
                    && last.timestamp_ms >= t
                {
                    sorted = false;
                }
                out.push(Sample::new(t, v));
            });
        }
        if !sorted {
            // Overlapping sources (out-of-order data, overlapping blocks): the first source
            // listed wins for a timestamp, so sort stably and keep the first.
            out.sort_by_key(|s| s.timestamp_ms);
            out.dedup_by_key(|s| s.timestamp_ms);
        }
        out
    }

    /// True when some chunk overlaps `[mint, maxt]`.
    pub fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        self.chunks
            .iter()
            .any(|c| c.max_time >= mint && c.min_time <= maxt)
    }
}

/// Merges per-source results (each sorted by labels) into one list sorted by labels, joining
/// the chunks of equal label sets.
pub fn merge_series(sources: Vec<Vec<SeriesChunks>>) -> Vec<SeriesChunks> {
    let mut all: Vec<SeriesChunks> = sources.into_iter().flatten().collect();
    all.sort_by(|a, b| a.labels.cmp(&b.labels));
    let mut out: Vec<SeriesChunks> = Vec::with_capacity(all.len());
    for series in all {
        match out.last_mut() {
            Some(last) if last.labels == series.labels => {
                last.chunks.extend(series.chunks);
                last.deleted.extend(series.deleted);
            }
            _ => out.push(series),
        }
    }
    for series in &mut out {
        series.chunks.sort_by_key(|c| c.min_time);
    }
    out
}
