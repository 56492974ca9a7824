//! Immutable blocks: one directory per time range.
//!
//! ```text
//! <ULID>/
//!   meta.json        Prometheus's meta layout (ulid, minTime, maxTime [exclusive], stats, compaction)
//!   index            symbols, series (labels as symbol ids + chunk refs), postings, label table
//!   chunks/000001    tagged chunks back to back (XOR or scaled integers, see chunk::scaled)
//!   tombstones       deleted ranges per series (optional)
//! ```
//! The index ends with a fixed footer of section offsets, a CRC32C over everything before it
//! and a magic number; a block whose index fails the check is refused, never half-read. Both
//! files are read through read-only memory maps; postings and series entries are decoded on
//! demand, only the symbol and label tables are held in memory.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use argus_model::{Labels, Matcher};
use memmap2::Mmap;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::chunk::SAMPLES_PER_CHUNK;
use crate::chunk::scaled::encode_block_chunk;
use crate::encoding::{Decoder, put_uvarint, put_varint};
use crate::error::{Error, IoContext, Result};
use crate::postings::{IndexLookup, select_postings};
use crate::series::{ChunkData, ChunkMeta, HistChunk, Interval, SeriesChunks};

/// Format 2: chunks carry an encoding tag (see `chunk::scaled`).
const INDEX_MAGIC: &[u8; 8] = b"ARGUSIX2";
const FOOTER_MAGIC: &[u8; 4] = b"ARGI";
const FOOTER_LEN: usize = 6 * 8 + 4 + 4;
const TOMBSTONE_MAGIC: &[u8; 4] = b"ARGT";
pub const CHUNKS_FILE: &str = "chunks/000001";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct BlockStats {
    #[serde(rename = "numSamples")]
    pub num_samples: u64,
    #[serde(rename = "numSeries")]
    pub num_series: u64,
    #[serde(rename = "numChunks")]
    pub num_chunks: u64,
    #[serde(rename = "numTombstones", default, skip_serializing_if = "is_zero")]
    pub num_tombstones: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct BlockCompaction {
    pub level: u32,
    pub sources: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BlockMeta {
    pub ulid: String,
    #[serde(rename = "minTime")]
    pub min_time: i64,
    /// Exclusive, as in Prometheus.
    #[serde(rename = "maxTime")]
    pub max_time: i64,
    pub stats: BlockStats,
    pub compaction: BlockCompaction,
    pub version: u32,
}

/// A new ULID (48-bit millisecond time + 80 random bits, Crockford base32).
pub fn new_ulid() -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let ms = argus_model::time::now_ms().max(0) as u128 & ((1u128 << 48) - 1);
    let random: u128 = rand::random::<u128>() & ((1u128 << 80) - 1);
    let value = (ms << 80) | random;
    (0..26)
        .rev()
        .map(|i| ALPHABET[((value >> (i * 5)) & 31) as usize] as char)
        .collect()
}

/// One series to write into a block: float samples and native-histogram samples, each
/// sorted by time.
pub type BlockSeries = (Labels, Vec<(i64, f64)>, Vec<crate::head::HistSample>);

/// Writes a block from series sorted by labels, each with samples sorted by time and
/// within `[min_time, max_time)`. Returns `None` when there is nothing to write.
pub fn write_block(
    parent: &Path,
    min_time: i64,
    max_time: i64,
    level: u32,
    sources: Vec<String>,
    series: impl Iterator<Item = BlockSeries>,
) -> Result<Option<BlockMeta>> {
    let ulid = new_ulid();
    let tmp = parent.join(format!("{ulid}.tmp"));
    fs::create_dir_all(tmp.join("chunks")).ctx(|| format!("create {}", tmp.display()))?;
    let chunks_path = tmp.join(CHUNKS_FILE);
    let mut chunks_out = BufWriter::new(
        File::create(&chunks_path).ctx(|| format!("create {}", chunks_path.display()))?,
    );
    let mut chunk_offset = 0u64;
    let mut stats = BlockStats::default();
    // Per series: labels and (mint, maxt, offset, len) per chunk.
    let mut entries: Vec<(Labels, Vec<(i64, i64, u64, u64)>)> = Vec::new();
    for (labels, samples, hists) in series {
        if samples.is_empty() && hists.is_empty() {
            continue;
        }
        let mut metas = Vec::new();
        let mut bytes = Vec::new();
        // Writes the encoded chunk in `bytes` spanning `[min_time, max_time]`.
        let mut put = |bytes: &[u8], min_time: i64, max_time: i64| -> Result<()> {
            chunks_out
                .write_all(bytes)
                .ctx(|| format!("write {}", chunks_path.display()))?;
            metas.push((min_time, max_time, chunk_offset, bytes.len() as u64));
            chunk_offset += bytes.len() as u64;
            stats.num_chunks += 1;
            Ok(())
        };
        for group in samples.chunks(SAMPLES_PER_CHUNK) {
            bytes.clear();
            encode_block_chunk(group, &mut bytes);
            put(&bytes, group[0].0, group[group.len() - 1].0)?;
        }
        for group in hists.chunks(SAMPLES_PER_CHUNK) {
            bytes.clear();
            let refs: Vec<(i64, &argus_model::FloatHistogram)> =
                group.iter().map(|(t, h)| (*t, &**h)).collect();
            crate::chunk::hist::encode(&refs, &mut bytes);
            put(&bytes, group[0].0, group[group.len() - 1].0)?;
        }
        stats.num_samples += (samples.len() + hists.len()) as u64;
        stats.num_series += 1;
        entries.push((labels, metas));
    }
    if entries.is_empty() {
        drop(chunks_out);
        fs::remove_dir_all(&tmp).ctx(|| format!("remove {}", tmp.display()))?;
        return Ok(None);
    }
    let chunks_file = chunks_out
        .into_inner()
        .map_err(|e| e.into_error())
        .ctx(|| format!("flush {}", chunks_path.display()))?;
    chunks_file
        .sync_all()
        .ctx(|| format!("sync {}", chunks_path.display()))?;

    let index = encode_index(&entries);
    let index_path = tmp.join("index");
    write_synced(&index_path, &index)?;

    let meta = BlockMeta {
        ulid: ulid.clone(),
        min_time,
        max_time,
        stats,
        compaction: BlockCompaction {
            level,
            sources: if sources.is_empty() {
                vec![ulid.clone()]
            } else {
                sources
            },
        },
        version: 1,
    };
    let meta_json = serde_json::to_vec_pretty(&meta)
        .map_err(|e| Error::Invalid(format!("encode meta.json: {e}")))?;
    write_synced(&tmp.join("meta.json"), &meta_json)?;
    crate::fsutil::sync_dir(&tmp.join("chunks"))?;
    crate::fsutil::sync_dir(&tmp)?;
    let dest = parent.join(&ulid);
    fs::rename(&tmp, &dest).ctx(|| format!("rename {} to {}", tmp.display(), dest.display()))?;
    crate::fsutil::sync_dir(parent)?;
    Ok(Some(meta))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = File::create(path).ctx(|| format!("create {}", path.display()))?;
    f.write_all(bytes)
        .ctx(|| format!("write {}", path.display()))?;
    f.sync_all().ctx(|| format!("sync {}", path.display()))
}

fn encode_index(entries: &[(Labels, Vec<(i64, i64, u64, u64)>)]) -> Vec<u8> {
    let mut symbols: BTreeSet<&str> = BTreeSet::new();
    for (labels, _) in entries {
        for l in labels.iter() {
            symbols.insert(l.name);
            symbols.insert(l.value);
        }
    }
    let symbol_ids: HashMap<&str, u64> = symbols
        .iter()
        .enumerate()
        .map(|(i, s)| (*s, i as u64))
        .collect();
    let mut out = Vec::with_capacity(entries.len() * 64);
    out.extend_from_slice(INDEX_MAGIC);

    let series_off = out.len() as u64;
    let mut offsets = Vec::with_capacity(entries.len());
    let mut postings: BTreeMap<(&str, &str), Vec<u64>> = BTreeMap::new();
    for (id, (labels, chunks)) in entries.iter().enumerate() {
        offsets.push(out.len() as u64);
        put_uvarint(&mut out, labels.len() as u64);
        for l in labels.iter() {
            put_uvarint(&mut out, symbol_ids[l.name]);
            put_uvarint(&mut out, symbol_ids[l.value]);
            postings
                .entry((l.name, l.value))
                .or_default()
                .push(id as u64);
        }
        put_uvarint(&mut out, chunks.len() as u64);
        for &(mint, maxt, offset, len) in chunks {
            put_varint(&mut out, mint);
            put_uvarint(&mut out, maxt.wrapping_sub(mint) as u64);
            put_uvarint(&mut out, offset);
            put_uvarint(&mut out, len);
        }
    }

    let symbols_off = out.len() as u64;
    put_uvarint(&mut out, symbols.len() as u64);
    for s in &symbols {
        crate::encoding::put_str(&mut out, s);
    }

    let postings_off = out.len() as u64;
    let mut table: BTreeMap<&str, Vec<(&str, u64, u64)>> = BTreeMap::new();
    for ((name, value), ids) in &postings {
        let start = out.len() as u64 - postings_off;
        let mut prev = 0u64;
        for &id in ids {
            put_uvarint(&mut out, id - prev);
            prev = id;
        }
        table
            .entry(name)
            .or_default()
            .push((value, start, ids.len() as u64));
    }

    let labels_off = out.len() as u64;
    put_uvarint(&mut out, table.len() as u64);
    for (name, values) in &table {
        put_uvarint(&mut out, symbol_ids[name]);
        put_uvarint(&mut out, values.len() as u64);
        for (value, start, count) in values {
            put_uvarint(&mut out, symbol_ids[value]);
            put_uvarint(&mut out, *start);
            put_uvarint(&mut out, *count);
        }
    }

    let offsets_off = out.len() as u64;
    for o in &offsets {
        out.extend_from_slice(&o.to_le_bytes());
    }
    for v in [
        series_off,
        symbols_off,
        labels_off,
        postings_off,
        offsets_off,
        entries.len() as u64,
    ] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(FOOTER_MAGIC);
    out
}

struct LabelEntry {
    value: u32,
    postings_start: u64,
    postings_count: u64,
}

pub struct Block {
    pub dir: PathBuf,
    pub meta: BlockMeta,
    index: Mmap,
    chunks: Arc<Mmap>,
    symbols: Vec<Box<str>>,
    /// Label name → its values (sorted) with postings locations.
    labels: HashMap<Box<str>, Vec<LabelEntry>>,
    postings_off: usize,
    offsets_off: usize,
    num_series: usize,
    tombstones: RwLock<BTreeMap<u64, Vec<Interval>>>,
}

fn corrupt(dir: &Path, reason: &str) -> Error {
    Error::Corrupt {
        what: format!("block {}", dir.display()),
        reason: reason.to_string(),
    }
}

fn map_file(path: &Path) -> Result<Mmap> {
    let file = File::open(path).ctx(|| format!("open {}", path.display()))?;
    map_readonly(&file).ctx(|| format!("map {}", path.display()))
}

/// CRC32C of the first `len` bytes of a file, read in 1 MiB pieces.
fn file_crc32c(path: &Path, len: usize) -> Result<u32> {
    use std::io::Read;
    let mut file = File::open(path).ctx(|| format!("open {}", path.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut crc = 0u32;
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len());
        file.read_exact(&mut buf[..n])
            .ctx(|| format!("read {}", path.display()))?;
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        left -= n;
    }
    Ok(crc)
}

#[allow(unsafe_code)]
fn map_readonly(file: &File) -> std::io::Result<Mmap> {
    // SAFETY: block files are written to a temporary directory, fsynced and renamed into
    // place; nothing writes to them afterwards (deletion only unlinks).
    unsafe { Mmap::map(file) }
}

impl Block {
    pub fn open(dir: &Path) -> Result<Self> {
        let meta_path = dir.join("meta.json");
        let meta_bytes = fs::read(&meta_path).ctx(|| format!("read {}", meta_path.display()))?;
        let meta: BlockMeta = serde_json::from_slice(&meta_bytes)
            .map_err(|e| corrupt(dir, &format!("meta.json: {e}")))?;
        let index = map_file(&dir.join("index"))?;
        let chunks = Arc::new(map_file(&dir.join(CHUNKS_FILE))?);
        if index.len() < INDEX_MAGIC.len() + FOOTER_LEN || &index[..8] != INDEX_MAGIC {
            return Err(corrupt(dir, "index too short or bad magic"));
        }
        let footer = &index[index.len() - FOOTER_LEN..];
        if &footer[FOOTER_LEN - 4..] != FOOTER_MAGIC {
            return Err(corrupt(dir, "index footer magic"));
        }
        let body_end = index.len() - 8;
        let crc = u32::from_le_bytes([footer[48], footer[49], footer[50], footer[51]]);
        // Checked by reading the file, not through the map, so that verifying does not leave
        // every index page resident in this process.
        if file_crc32c(&dir.join("index"), body_end)? != crc {
            return Err(corrupt(dir, "index checksum mismatch"));
        }
        let read_u64 = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&footer[i * 8..i * 8 + 8]);
            u64::from_le_bytes(a) as usize
        };
        let (symbols_off, labels_off, postings_off, offsets_off, num_series) = (
            read_u64(1),
            read_u64(2),
            read_u64(3),
            read_u64(4),
            read_u64(5),
        );
        let footer_start = index.len() - FOOTER_LEN;
        if symbols_off > footer_start
            || labels_off > footer_start
            || offsets_off.checked_add(num_series * 8) != Some(footer_start)
        {
            return Err(corrupt(dir, "index section offsets"));
        }
        let mut d = Decoder::new(&index[symbols_off..postings_off.min(footer_start)]);
        let bad = |e: crate::encoding::DecodeError| corrupt(dir, e.0);
        let n = d.len().map_err(bad)?;
        let mut symbols = Vec::with_capacity(n);
        for _ in 0..n {
            symbols.push(Box::<str>::from(d.str().map_err(bad)?));
        }
        let mut d = Decoder::new(&index[labels_off..offsets_off]);
        let names = d.len().map_err(bad)?;
        let mut labels = HashMap::with_capacity(names);
        let sym = |i: u64| -> Result<Box<str>> {
            symbols
                .get(i as usize)
                .cloned()
                .ok_or_else(|| corrupt(dir, "symbol reference out of range"))
        };
        for _ in 0..names {
            let name = sym(d.uvarint().map_err(bad)?)?;
            let count = d.len().map_err(bad)?;
            let mut values = Vec::with_capacity(count);
            for _ in 0..count {
                let value = d.uvarint().map_err(bad)?;
                if value as usize >= symbols.len() {
                    return Err(corrupt(dir, "symbol reference out of range"));
                }
                values.push(LabelEntry {
                    value: value as u32,
                    postings_start: d.uvarint().map_err(bad)?,
                    postings_count: d.uvarint().map_err(bad)?,
                });
            }
            labels.insert(name, values);
        }
        let tombstones = read_tombstones(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            meta,
            index,
            chunks,
            symbols,
            labels,
            postings_off,
            offsets_off,
            num_series,
            tombstones: RwLock::new(tombstones),
        })
    }

    pub fn ulid(&self) -> &str {
        &self.meta.ulid
    }

    pub fn size_bytes(&self) -> u64 {
        crate::fsutil::dir_size(&self.dir)
    }

    pub fn num_series(&self) -> usize {
        self.num_series
    }

    /// A decoder at series `id`'s entry.
    fn series_decoder(&self, id: u64) -> Option<Decoder<'_>> {
        let at = self
            .offsets_off
            .checked_add((id as usize).checked_mul(8)?)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(self.index.get(at..at.checked_add(8)?)?);
        let offset = u64::from_le_bytes(a) as usize;
        Some(Decoder::new(self.index.get(offset..self.offsets_off)?))
    }

    /// A series entry's labels (the decoder at the entry's start), as symbol references.
    fn series_label_refs(&self, d: &mut Decoder<'_>) -> Option<Vec<(&str, &str)>> {
        let n = d.len().ok()?;
        let mut labels = Vec::with_capacity(n);
        for _ in 0..n {
            let name = self.symbols.get(d.uvarint().ok()? as usize)?;
            let value = self.symbols.get(d.uvarint().ok()? as usize)?;
            labels.push((&**name, &**value));
        }
        Some(labels)
    }

    /// Decodes series `id`: its labels and chunk metas.
    fn series_entry(&self, id: u64) -> Option<(Labels, Vec<ChunkMeta>, Vec<HistChunk>)> {
        let mut d = self.series_decoder(id)?;
        let labels = self.series_label_refs(&mut d)?;
        let nchunks = d.len().ok()?;
        let mut chunks = Vec::with_capacity(nchunks);
        let mut hists = Vec::new();
        for _ in 0..nchunks {
            let mint = d.varint().ok()?;
            let maxt = mint.wrapping_add(d.uvarint().ok()? as i64);
            let start = d.uvarint().ok()? as usize;
            let end = start.checked_add(d.uvarint().ok()? as usize)?;
            if end > self.chunks.len() {
                return None;
            }
            if self.chunks.get(start) == Some(&crate::chunk::hist::TAG_HISTOGRAM) {
                hists.push(HistChunk::Block {
                    min_time: mint,
                    max_time: maxt,
                    map: self.chunks.clone(),
                    start,
                    end,
                });
                continue;
            }
            chunks.push(ChunkMeta {
                min_time: mint,
                max_time: maxt,
                data: ChunkData::Block(self.chunks.clone(), start, end),
                last_value: None,
            });
        }
        Some((Labels::from_sorted_refs(&labels)?, chunks, hists))
    }

    /// Matching series with chunks overlapping `[mint, maxt]`, sorted by labels.
    pub fn select(&self, mint: i64, maxt: i64, matchers: &[Matcher]) -> Vec<SeriesChunks> {
        self.select_iter(mint, maxt, matchers).collect()
    }

    /// [`Self::select`], each series read from the index when the iterator reaches it.
    pub fn select_iter(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> impl Iterator<Item = SeriesChunks> + '_ {
        let tombstones = self.tombstones.read().clone();
        select_postings(self, matchers)
            .into_iter()
            .filter_map(move |id| {
                let (labels, mut chunks, mut hists) = self.series_entry(id)?;
                chunks.retain(|c| c.max_time >= mint && c.min_time <= maxt);
                hists.retain(|c| match c {
                    HistChunk::Block {
                        min_time, max_time, ..
                    } => *max_time >= mint && *min_time <= maxt,
                    HistChunk::Samples(_) => true,
                });
                (!chunks.is_empty() || !hists.is_empty()).then(|| SeriesChunks {
                    labels,
                    chunks,
                    hists,
                    deleted: tombstones.get(&id).cloned().unwrap_or_default(),
                })
            })
    }

    /// Every series with all its samples (for compaction), tombstones applied.
    pub fn all_series(&self) -> impl Iterator<Item = SeriesChunks> + '_ {
        let tombstones = self.tombstones.read().clone();
        (0..self.num_series as u64).filter_map(move |id| {
            let (labels, chunks, hists) = self.series_entry(id)?;
            Some(SeriesChunks {
                labels,
                chunks,
                hists,
                deleted: tombstones.get(&id).cloned().unwrap_or_default(),
            })
        })
    }

    pub fn label_names(&self) -> Vec<String> {
        self.labels.keys().map(|k| k.to_string()).collect()
    }

    /// Adds tombstones for matching series over `[mint, maxt]`; returns how many series.
    pub fn delete(&self, mint: i64, maxt: i64, matchers: &[Matcher]) -> Result<usize> {
        if maxt < self.meta.min_time || mint >= self.meta.max_time {
            return Ok(0);
        }
        let ids = select_postings(self, matchers);
        if ids.is_empty() {
            return Ok(0);
        }
        let mut tombstones = self.tombstones.write();
        for &id in &ids {
            tombstones
                .entry(id)
                .or_default()
                .push(Interval { mint, maxt });
        }
        write_tombstones(&self.dir, &tombstones)?;
        Ok(ids.len())
    }

    pub fn has_tombstones(&self) -> bool {
        !self.tombstones.read().is_empty()
    }
}

impl IndexLookup for Block {
    fn label_values(&self, name: &str) -> Vec<String> {
        self.labels
            .get(name)
            .map(|values| {
                values
                    .iter()
                    .filter_map(|e| self.symbols.get(e.value as usize))
                    .map(|s| s.to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn postings(&self, name: &str, value: &str) -> std::borrow::Cow<'_, [u64]> {
        std::borrow::Cow::Owned(self.decode_postings(name, value))
    }

    fn all_postings(&self) -> Vec<u64> {
        (0..self.num_series as u64).collect()
    }

    fn postings_len(&self, name: &str, value: &str) -> usize {
        self.label_entry(name, value)
            .map_or(0, |e| e.postings_count as usize)
    }

    fn series_matches(&self, id: u64, matchers: &[Matcher]) -> Option<bool> {
        let labels = self.series_label_refs(&mut self.series_decoder(id)?)?;
        Some(matchers.iter().all(|m| {
            let v = labels.iter().find(|l| *l.0 == *m.name).map_or("", |l| l.1);
            m.matches(v)
        }))
    }
}

impl Block {
    /// The label table's entry of `name="value"`.
    fn label_entry(&self, name: &str, value: &str) -> Option<&LabelEntry> {
        let values = self.labels.get(name)?;
        // Values are stored sorted by string, and symbol ids follow string order.
        let pos = values
            .binary_search_by(|e| {
                self.symbols
                    .get(e.value as usize)
                    .map_or(std::cmp::Ordering::Less, |s| (**s).cmp(value))
            })
            .ok()?;
        values.get(pos)
    }

    /// The decoded ids of `name="value"`.
    fn decode_postings(&self, name: &str, value: &str) -> Vec<u64> {
        let Some(entry) = self.label_entry(name, value) else {
            return Vec::new();
        };
        let start = self.postings_off + entry.postings_start as usize;
        let Some(bytes) = self.index.get(start..self.offsets_off) else {
            return Vec::new();
        };
        let mut d = Decoder::new(bytes);
        let mut out = Vec::with_capacity(entry.postings_count as usize);
        let mut id = 0u64;
        for _ in 0..entry.postings_count {
            let Ok(delta) = d.uvarint() else { break };
            id += delta;
            out.push(id);
        }
        out
    }
}

fn read_tombstones(dir: &Path) -> Result<BTreeMap<u64, Vec<Interval>>> {
    let path = dir.join("tombstones");
    let mut out: BTreeMap<u64, Vec<Interval>> = BTreeMap::new();
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).ctx(|| format!("read {}", path.display())),
    };
    if bytes.len() < 8 || &bytes[..4] != TOMBSTONE_MAGIC {
        return Err(corrupt(dir, "tombstones magic"));
    }
    let body = &bytes[..bytes.len() - 4];
    let tail = &bytes[bytes.len() - 4..];
    if crc32c::crc32c(body) != u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) {
        return Err(corrupt(dir, "tombstones checksum mismatch"));
    }
    let mut d = Decoder::new(&body[4..]);
    let bad = |e: crate::encoding::DecodeError| corrupt(dir, e.0);
    let n = d.len().map_err(bad)?;
    for _ in 0..n {
        let id = d.uvarint().map_err(bad)?;
        let mint = d.varint().map_err(bad)?;
        let maxt = d.varint().map_err(bad)?;
        out.entry(id).or_default().push(Interval { mint, maxt });
    }
    Ok(out)
}

fn write_tombstones(dir: &Path, tombstones: &BTreeMap<u64, Vec<Interval>>) -> Result<()> {
    let mut buf = TOMBSTONE_MAGIC.to_vec();
    let total: usize = tombstones.values().map(Vec::len).sum();
    put_uvarint(&mut buf, total as u64);
    for (id, intervals) in tombstones {
        for i in intervals {
            put_uvarint(&mut buf, *id);
            put_varint(&mut buf, i.mint);
            put_varint(&mut buf, i.maxt);
        }
    }
    let crc = crc32c::crc32c(&buf);
    buf.extend_from_slice(&crc.to_le_bytes());
    let tmp = dir.join("tombstones.tmp");
    write_synced(&tmp, &buf)?;
    fs::rename(&tmp, dir.join("tombstones")).ctx(|| format!("rename {}", tmp.display()))?;
    crate::fsutil::sync_dir(dir)
}

#[cfg(test)]
mod tests;
