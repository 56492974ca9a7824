//! What a query gets back for one series: its labels and the chunks that overlap the query
//! range, from wherever they live (head memory, a block's mmapped chunk file, out-of-order
//! buffers). Samples are decoded only when asked for, merged across sources by timestamp.

use std::sync::Arc;

use argus_model::{Labels, Sample};

use crate::chunk::XorIter;

#[derive(Clone)]
pub enum ChunkData {
    /// An XOR chunk of the head: in its memory-mapped chunk files, or copied (the open
    /// chunk, chunks not yet written out).
    Xor(crate::head_chunks::ChunkBytes),
    /// A tagged chunk (`chunk::scaled`) inside a block's memory-mapped chunk file.
    Block(Arc<memmap2::Mmap>, usize, usize),
    /// Plain samples (out-of-order buffer), sorted by time.
    Samples(Arc<[(i64, f64)]>),
}

impl ChunkData {
    /// The number of samples, when known without decoding (0 otherwise).
    fn len_hint(&self) -> usize {
        match self {
            ChunkData::Xor(bytes) => XorIter::new(bytes).len_hint(),
            ChunkData::Block(map, start, end) => map
                .get(*start..*end)
                .map_or(0, crate::chunk::scaled::block_chunk_len),
            ChunkData::Samples(samples) => samples.len(),
        }
    }

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
    /// The value at `max_time` when known without decoding (the head's open chunk).
    pub last_value: Option<f64>,
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
    /// Native-histogram chunks (blocks) and samples (head), kept apart from the float
    /// chunks so that float reads never look at them.
    pub hists: Vec<HistChunk>,
}

/// Native-histogram samples of one series from one source.
#[derive(Clone)]
pub enum HistChunk {
    /// A histogram chunk (`chunk::hist`) in a block's memory-mapped chunk file.
    Block {
        min_time: i64,
        max_time: i64,
        map: Arc<memmap2::Mmap>,
        start: usize,
        end: usize,
    },
    /// Samples held by the head, sorted by time.
    Samples(Arc<[crate::head::HistSample]>),
}

impl HistChunk {
    fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        match self {
            HistChunk::Block {
                min_time, max_time, ..
            } => *max_time >= mint && *min_time <= maxt,
            HistChunk::Samples(s) => {
                s.first().is_some_and(|f| f.0 <= maxt) && s.last().is_some_and(|l| l.0 >= mint)
            }
        }
    }
}

/// A series' float chunks and tombstones, borrowed: what reading its float samples needs
/// (a holder of many series' chunks can keep just these two lists per series).
#[derive(Clone, Copy)]
pub struct FloatChunks<'a> {
    pub chunks: &'a [ChunkMeta],
    pub deleted: &'a [Interval],
}

impl FloatChunks<'_> {
    /// [`SeriesChunks::samples_into`].
    pub fn samples_into(self, mint: i64, maxt: i64, out: &mut Vec<(i64, f64)>) {
        out.clear();
        out.reserve(self.estimate_samples(mint, maxt));
        let mut sorted = true;
        for chunk in self.chunks {
            if chunk.max_time < mint || chunk.min_time > maxt {
                continue;
            }
            chunk.data.for_each(|t, v| {
                if t < mint || t > maxt || self.deleted.iter().any(|d| d.contains(t)) {
                    return;
                }
                if let Some(last) = out.last()
                    && last.0 >= t
                {
                    sorted = false;
                }
                out.push((t, v));
            });
        }
        if !sorted {
            // Overlapping sources (out-of-order data, overlapping blocks): the first source
            // listed wins for a timestamp, so sort stably and keep the first.
            out.sort_by_key(|s| s.0);
            out.dedup_by_key(|s| s.0);
        }
    }

    /// About how many samples `[mint, maxt]` holds, taking each chunk's samples as evenly
    /// spaced (to size the output once instead of growing it).
    pub fn estimate_samples(self, mint: i64, maxt: i64) -> usize {
        self.chunks
            .iter()
            .filter(|c| c.max_time >= mint && c.min_time <= maxt)
            .map(|c| {
                let n = c.data.len_hint();
                let span = (c.max_time - c.min_time).max(1) as f64;
                let inside = (maxt.min(c.max_time) - mint.max(c.min_time)).max(0) as f64;
                ((n as f64 * inside / span) as usize + 1).min(n)
            })
            .sum()
    }
}

impl SeriesChunks {
    /// Histogram samples with `mint <= t <= maxt`, sorted, one per timestamp (the first
    /// source listed wins), tombstones applied.
    pub fn histograms(&self, mint: i64, maxt: i64) -> Vec<crate::head::HistSample> {
        let mut out: Vec<crate::head::HistSample> = Vec::new();
        let keep = |t: i64| t >= mint && t <= maxt && !self.deleted.iter().any(|d| d.contains(t));
        for chunk in self.hists.iter().filter(|c| c.overlaps(mint, maxt)) {
            match chunk {
                HistChunk::Block {
                    map, start, end, ..
                } => {
                    if let Some(bytes) = map.get(*start..*end) {
                        crate::chunk::hist::decode(bytes, |t, h| {
                            if keep(t) {
                                out.push((t, Arc::new(h)));
                            }
                        });
                    }
                }
                HistChunk::Samples(s) => out.extend(s.iter().filter(|p| keep(p.0)).cloned()),
            }
        }
        out.sort_by_key(|p| p.0);
        out.dedup_by_key(|p| p.0);
        out
    }

    /// Samples with `mint <= t <= maxt`, sorted, one per timestamp, tombstones applied.
    pub fn samples(&self, mint: i64, maxt: i64) -> Vec<Sample> {
        let mut out = Vec::new();
        self.samples_into(mint, maxt, &mut out);
        out.into_iter().map(|(t, v)| Sample::new(t, v)).collect()
    }

    /// [`Self::samples`] as `(time, value)` pairs, into `out` (cleared first), so that a
    /// reader walking many series can reuse one buffer.
    pub fn samples_into(&self, mint: i64, maxt: i64, out: &mut Vec<(i64, f64)>) {
        self.floats().samples_into(mint, maxt, out);
    }

    /// The float chunks and tombstones, for reading float samples.
    pub fn floats(&self) -> FloatChunks<'_> {
        FloatChunks {
            chunks: &self.chunks,
            deleted: &self.deleted,
        }
    }

    /// The newest sample with `mint <= t <= maxt` — what an instant vector selector reads —
    /// decoding only what it must: a chunk that ends inside the range and knows its last
    /// value (the head's open chunk) needs no decoding. Agrees with the last element of
    /// [`Self::samples`], including which source wins on equal timestamps.
    pub fn last_sample(&self, mint: i64, maxt: i64) -> Option<Sample> {
        if !self.deleted.is_empty() {
            return self.samples(mint, maxt).pop();
        }
        // The newest candidate time per chunk; the earliest-listed chunk wins ties, as in
        // `samples` (stable sort, first kept).
        let mut best: Option<(i64, usize)> = None;
        let mut decoded: Option<(usize, Sample)> = None;
        for (i, chunk) in self.chunks.iter().enumerate() {
            if chunk.max_time < mint || chunk.min_time > maxt {
                continue;
            }
            let t = if chunk.max_time <= maxt {
                chunk.max_time
            } else {
                // The chunk runs past the range: find its newest sample inside it.
                let mut last = None;
                chunk.data.for_each(|t, v| {
                    if t >= mint && t <= maxt {
                        last = Some(Sample::new(t, v));
                    }
                });
                let Some(s) = last else { continue };
                if best.is_none_or(|(bt, _)| s.timestamp_ms > bt) {
                    decoded = Some((i, s));
                }
                s.timestamp_ms
            };
            if best.is_none_or(|(bt, _)| t > bt) {
                best = Some((t, i));
            }
        }
        let (t, i) = best?;
        if let Some((j, s)) = decoded
            && j == i
        {
            return Some(s);
        }
        let chunk = &self.chunks[i];
        if let Some(v) = chunk.last_value {
            return Some(Sample::new(t, v));
        }
        let mut last = None;
        chunk.data.for_each(|st, v| {
            if st == t {
                last = Some(Sample::new(st, v));
            }
        });
        last
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
    let total = sources.iter().map(Vec::len).sum();
    let mut iters: Vec<std::vec::IntoIter<SeriesChunks>> = sources
        .into_iter()
        .filter(|s| !s.is_empty())
        .map(Vec::into_iter)
        .collect();
    // Each source is sorted already: take the smallest of their next series each time (the
    // earliest source on equal labels, so its chunks come first).
    let mut heads: Vec<Option<SeriesChunks>> = iters.iter_mut().map(Iterator::next).collect();
    let mut out: Vec<SeriesChunks> = Vec::with_capacity(total);
    loop {
        let mut best: Option<(usize, &Labels)> = None;
        for (i, head) in heads.iter().enumerate() {
            if let Some(h) = head
                && best.is_none_or(|(_, b)| h.labels < *b)
            {
                best = Some((i, &h.labels));
            }
        }
        let Some((i, _)) = best else { break };
        let Some(series) = heads[i].take() else { break };
        heads[i] = iters[i].next();
        match out.last_mut() {
            Some(last) if last.labels == series.labels => {
                last.chunks.extend(series.chunks);
                last.deleted.extend(series.deleted);
                last.hists.extend(series.hists);
            }
            _ => out.push(series),
        }
    }
    for series in &mut out {
        series.chunks.sort_by_key(|c| c.min_time);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::XorChunk;
    use proptest::prelude::*;

    fn chunk(samples: &[(i64, f64)], xor: bool, known_last: bool) -> ChunkMeta {
        let data = if xor {
            let mut c = XorChunk::new();
            for &(t, v) in samples {
                c.append(t, v);
            }
            ChunkData::Xor(c.bytes().into())
        } else {
            ChunkData::Samples(samples.into())
        };
        ChunkMeta {
            min_time: samples[0].0,
            max_time: samples[samples.len() - 1].0,
            data,
            last_value: known_last.then(|| samples[samples.len() - 1].1),
        }
    }

    proptest! {
        /// Merging sorted sources equals concatenating them, sorting stably by labels and
        /// joining equal label sets in source order.
        #[test]
        fn merge_series_matches_sort_and_join(
            sources in proptest::collection::vec(
                proptest::collection::btree_set(("[ab]{1,2}", "[xy\\x00]{1,2}"), 0..12), 0..5),
        ) {
            let make = |src: usize| -> Vec<SeriesChunks> {
                let mut list: Vec<SeriesChunks> = sources[src]
                    .iter()
                    .map(|(n, v)| SeriesChunks {
                        labels: Labels::from_pairs(&[("m", n.as_str()), ("v", v.as_str())]),
                        // Same times in every source: only the order tells them apart.
                        chunks: vec![chunk(&[(0, src as f64)], false, false)],
                        deleted: Vec::new(),
                        hists: Vec::new(),
                    })
                    .collect();
                list.sort_by(|a, b| a.labels.cmp(&b.labels));
                list
            };
            let merged = merge_series((0..sources.len()).map(make).collect());
            let mut all: Vec<SeriesChunks> = (0..sources.len()).flat_map(make).collect();
            all.sort_by(|a, b| a.labels.cmp(&b.labels));
            let source = |c: &ChunkMeta| match &c.data {
                ChunkData::Samples(s) => s[0].1 as i64,
                _ => -1,
            };
            let mut want: Vec<(Labels, Vec<i64>)> = Vec::new();
            for s in all {
                let from = source(&s.chunks[0]);
                match want.last_mut() {
                    Some((l, srcs)) if *l == s.labels => srcs.push(from),
                    _ => want.push((s.labels, vec![from])),
                }
            }
            let got: Vec<(Labels, Vec<i64>)> = merged
                .into_iter()
                .map(|s| (s.labels, s.chunks.iter().map(source).collect()))
                .collect();
            prop_assert_eq!(got, want);
        }

        /// `last_sample` is the last element of `samples` for overlapping sources, equal
        /// timestamps across sources, known and unknown last values, and tombstones.
        #[test]
        fn last_sample_matches_full_decode(
            sources in proptest::collection::vec(
                (proptest::collection::btree_map(0i64..200, -5.0f64..5.0, 1..30), any::<bool>(), any::<bool>()),
                1..5),
            mint in 0i64..200, len in 0i64..200,
            deleted in proptest::option::of((0i64..200, 0i64..50)),
        ) {
            let mut chunks: Vec<ChunkMeta> = sources
                .iter()
                .map(|(m, xor, known)| {
                    let samples: Vec<(i64, f64)> = m.iter().map(|(t, v)| (*t, *v)).collect();
                    chunk(&samples, *xor, *known)
                })
                .collect();
            chunks.sort_by_key(|c| c.min_time);
            let series = SeriesChunks {
                labels: Labels::empty(),
                hists: Vec::new(),
                chunks,
                deleted: deleted
                    .map(|(a, l)| vec![Interval { mint: a, maxt: a + l }])
                    .unwrap_or_default(),
            };
            let maxt = mint + len;
            let want = series.samples(mint, maxt).pop();
            let got = series.last_sample(mint, maxt);
            prop_assert_eq!(
                got.map(|s| (s.timestamp_ms, s.value.to_bits())),
                want.map(|s| (s.timestamp_ms, s.value.to_bits()))
            );
        }
    }
}
