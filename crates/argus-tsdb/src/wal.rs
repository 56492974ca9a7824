//! Write-ahead log.
//!
//! ```text
//! wal/
//!   checkpoint.00000007/00000000   ← head state as of the cut after segment 7
//!   00000008                       ← segments, ≤ 128 MiB each, appended in order
//!   00000009
//! ```
//! A segment is a sequence of frames `len: u32 LE | crc32c(payload): u32 LE | payload`. The
//! payload's first byte is the record type (series, samples, tombstones, chunk).
//!
//! Replay reads the newest checkpoint, then every later segment. The first frame that is
//! incomplete or fails its CRC ends the log: the segment is truncated there and any later
//! segments are removed, so the log is clean again; what was dropped is reported (and counted
//! by the caller in `prometheus_tsdb_wal_corruptions_total`). Replay never refuses to start.
//!
//! Durability: a commit's frames are written with one `write` call before the commit returns,
//! so they survive the process being killed; segments are fsynced when they are cut and on
//! shutdown.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use argus_model::Labels;

use crate::encoding::{DecodeError, DecodeResult, Decoder, put_labels, put_uvarint, put_varint};
use crate::error::{Error, IoContext, Result};

pub const DEFAULT_SEGMENT_SIZE: u64 = 128 << 20;
const FRAME_HEADER: usize = 8;
/// No single record may be larger than this; a bigger length is corruption.
const MAX_RECORD: usize = 256 << 20;

const TYPE_SERIES: u8 = 1;
const TYPE_SAMPLES: u8 = 2;
const TYPE_TOMBSTONES: u8 = 3;
const TYPE_CHUNK: u8 = 4;
const TYPE_HISTOGRAMS: u8 = 5;
const TYPE_EXEMPLARS: u8 = 6;

/// A native-histogram sample of a series.
#[derive(Debug, Clone, PartialEq)]
pub struct RefHistogram {
    pub series_ref: u64,
    pub t: i64,
    pub h: argus_model::FloatHistogram,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RefSample {
    pub series_ref: u64,
    pub t: i64,
    pub v: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tombstone {
    pub series_ref: u64,
    pub mint: i64,
    pub maxt: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChunkRecordMeta {
    pub min_time: i64,
    pub max_time: i64,
    pub last_value_bits: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Series(Vec<(u64, Labels)>),
    Samples(Vec<RefSample>),
    Histograms(Vec<RefHistogram>),
    Tombstones(Vec<Tombstone>),
    /// Exemplars of series (with exemplar storage enabled).
    Exemplars(Vec<(u64, crate::exemplars::Exemplar)>),
    /// An encoded XOR chunk of one series (written by checkpoints), with its time range and
    /// last value so that replay can restore it without decoding.
    Chunk {
        series_ref: u64,
        meta: ChunkRecordMeta,
        bytes: Vec<u8>,
    },
}

impl Record {
    pub fn encode(&self, buf: &mut Vec<u8>) {
        match self {
            Record::Series(series) => encode_series(buf, series.iter().map(|(r, l)| (*r, l))),
            Record::Samples(samples) => encode_samples(buf, samples),
            Record::Histograms(samples) => {
                encode_histograms(buf, samples.iter().map(|s| (s.series_ref, s.t, &s.h)))
            }
            Record::Tombstones(tombstones) => {
                buf.push(TYPE_TOMBSTONES);
                put_uvarint(buf, tombstones.len() as u64);
                for t in tombstones {
                    put_uvarint(buf, t.series_ref);
                    put_varint(buf, t.mint);
                    put_varint(buf, t.maxt);
                }
            }
            Record::Chunk {
                series_ref,
                meta,
                bytes,
            } => encode_chunk(buf, *series_ref, *meta, bytes),
            Record::Exemplars(exemplars) => {
                encode_exemplars(buf, exemplars.iter().map(|(r, e)| (*r, e)))
            }
        }
    }

    pub fn decode(bytes: &[u8]) -> DecodeResult<Record> {
        let mut d = Decoder::new(bytes);
        let record = match d.u8()? {
            TYPE_SERIES => {
                let n = d.len()?;
                let mut series = Vec::with_capacity(n);
                for _ in 0..n {
                    let r = d.uvarint()?;
                    series.push((r, d.labels()?));
                }
                Record::Series(series)
            }
            TYPE_SAMPLES => {
                let n = d.len()?;
                let mut samples = Vec::with_capacity(n);
                let mut t = 0i64;
                for _ in 0..n {
                    let series_ref = d.uvarint()?;
                    t = t.wrapping_add(d.varint()?);
                    let v = f64::from_bits(d.u64_le()?);
                    samples.push(RefSample { series_ref, t, v });
                }
                Record::Samples(samples)
            }
            TYPE_HISTOGRAMS => {
                let n = d.len()?;
                let mut samples = Vec::with_capacity(n);
                let mut t = 0i64;
                for _ in 0..n {
                    let series_ref = d.uvarint()?;
                    t = t.wrapping_add(d.varint()?);
                    samples.push(RefHistogram {
                        series_ref,
                        t,
                        h: d.histogram()?,
                    });
                }
                Record::Histograms(samples)
            }
            TYPE_TOMBSTONES => {
                let n = d.len()?;
                let mut tombstones = Vec::with_capacity(n);
                for _ in 0..n {
                    tombstones.push(Tombstone {
                        series_ref: d.uvarint()?,
                        mint: d.varint()?,
                        maxt: d.varint()?,
                    });
                }
                Record::Tombstones(tombstones)
            }
            TYPE_CHUNK => {
                let series_ref = d.uvarint()?;
                let min_time = d.varint()?;
                let max_time = d.varint()?;
                let last_value_bits = d.u64_le()?;
                let n = d.len()?;
                Record::Chunk {
                    series_ref,
                    meta: ChunkRecordMeta {
                        min_time,
                        max_time,
                        last_value_bits,
                    },
                    bytes: d.bytes(n)?.to_vec(),
                }
            }
            TYPE_EXEMPLARS => {
                let n = d.len()?;
                let mut exemplars = Vec::with_capacity(n);
                for _ in 0..n {
                    let series_ref = d.uvarint()?;
                    let ts = d.varint()?;
                    let value = f64::from_bits(d.u64_le()?);
                    let labels = d.labels()?;
                    exemplars.push((series_ref, crate::exemplars::Exemplar { labels, value, ts }));
                }
                Record::Exemplars(exemplars)
            }
            _ => return Err(DecodeError("unknown record type")),
        };
        if !d.is_empty() {
            return Err(DecodeError("trailing bytes after record"));
        }
        Ok(record)
    }
}

pub fn encode_series<'a>(
    buf: &mut Vec<u8>,
    series: impl ExactSizeIterator<Item = (u64, &'a Labels)>,
) {
    buf.push(TYPE_SERIES);
    put_uvarint(buf, series.len() as u64);
    for (r, labels) in series {
        put_uvarint(buf, r);
        put_labels(buf, labels);
    }
}

/// A histogram-samples record from borrowed `(series ref, t, histogram)` (the appender and
/// checkpoints log the histograms they hold without copying them first).
pub fn encode_histograms<'a>(
    buf: &mut Vec<u8>,
    samples: impl ExactSizeIterator<Item = (u64, i64, &'a argus_model::FloatHistogram)>,
) {
    buf.push(TYPE_HISTOGRAMS);
    put_uvarint(buf, samples.len() as u64);
    let mut prev = 0i64;
    for (series_ref, t, h) in samples {
        put_uvarint(buf, series_ref);
        put_varint(buf, t.wrapping_sub(prev));
        prev = t;
        crate::encoding::put_histogram(buf, h);
    }
}

/// An exemplars record from borrowed `(series ref, exemplar)`.
pub fn encode_exemplars<'a>(
    buf: &mut Vec<u8>,
    exemplars: impl ExactSizeIterator<Item = (u64, &'a crate::exemplars::Exemplar)>,
) {
    buf.push(TYPE_EXEMPLARS);
    put_uvarint(buf, exemplars.len() as u64);
    for (series_ref, e) in exemplars {
        put_uvarint(buf, series_ref);
        put_varint(buf, e.ts);
        buf.extend_from_slice(&e.value.to_bits().to_le_bytes());
        put_labels(buf, &e.labels);
    }
}

pub fn encode_samples(buf: &mut Vec<u8>, samples: &[RefSample]) {
    buf.push(TYPE_SAMPLES);
    put_uvarint(buf, samples.len() as u64);
    let mut prev = 0i64;
    for s in samples {
        put_uvarint(buf, s.series_ref);
        put_varint(buf, s.t.wrapping_sub(prev));
        prev = s.t;
        buf.extend_from_slice(&s.v.to_bits().to_le_bytes());
    }
}

pub fn encode_chunk(buf: &mut Vec<u8>, series_ref: u64, meta: ChunkRecordMeta, bytes: &[u8]) {
    buf.push(TYPE_CHUNK);
    put_uvarint(buf, series_ref);
    put_varint(buf, meta.min_time);
    put_varint(buf, meta.max_time);
    buf.extend_from_slice(&meta.last_value_bits.to_le_bytes());
    put_uvarint(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

/// Appends a framed record (header + payload) to `out`.
pub fn frame(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

fn segment_name(index: u32) -> String {
    format!("{index:08}")
}

/// Segment indexes present in `dir`, ascending.
pub fn list_segments(dir: &Path) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    let entries = fs::read_dir(dir).ctx(|| format!("read WAL directory {}", dir.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.len() == 8
            && let Ok(i) = name.parse::<u32>()
        {
            out.push(i);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// The newest complete checkpoint: (its last covered segment, its directory).
pub fn last_checkpoint(dir: &Path) -> Result<Option<(u32, PathBuf)>> {
    let mut best: Option<(u32, PathBuf)> = None;
    let entries = fs::read_dir(dir).ctx(|| format!("read WAL directory {}", dir.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if let Some(rest) = name.strip_prefix("checkpoint.")
            && let Ok(i) = rest.parse::<u32>()
            && best.as_ref().is_none_or(|(b, _)| i > *b)
        {
            best = Some((i, entry.path()));
        }
    }
    Ok(best)
}

/// What a replay found wrong and repaired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corruption {
    pub segment: PathBuf,
    pub offset: u64,
    pub reason: String,
    /// Bytes cut from the damaged segment.
    pub dropped_bytes: u64,
    /// Later segments removed whole.
    pub dropped_segments: Vec<PathBuf>,
}

#[derive(Debug, Default)]
pub struct ReplayReport {
    pub records: u64,
    pub corruptions: Vec<Corruption>,
}

/// Replays checkpoint and segments in order, repairing a damaged tail.
pub fn replay(dir: &Path, mut on_record: impl FnMut(Record)) -> Result<ReplayReport> {
    fs::create_dir_all(dir).ctx(|| format!("create WAL directory {}", dir.display()))?;
    let mut report = ReplayReport::default();
    let mut after = None;
    if let Some((index, checkpoint_dir)) = last_checkpoint(dir)? {
        after = Some(index);
        for segment in list_segments(&checkpoint_dir)? {
            let path = checkpoint_dir.join(segment_name(segment));
            // Checkpoints are written whole and renamed into place; damage there loses only
            // what is damaged, the segments after it still replay.
            if let Some(c) = replay_segment(&path, &mut on_record, &mut report.records)? {
                report.corruptions.push(c);
            }
        }
    }
    let segments: Vec<u32> = list_segments(dir)?
        .into_iter()
        .filter(|s| after.is_none_or(|a| *s > a))
        .collect();
    for (i, &segment) in segments.iter().enumerate() {
        let path = dir.join(segment_name(segment));
        if let Some(mut corruption) = replay_segment(&path, &mut on_record, &mut report.records)? {
            for &later in &segments[i + 1..] {
                let later_path = dir.join(segment_name(later));
                fs::remove_file(&later_path)
                    .ctx(|| format!("remove WAL segment {}", later_path.display()))?;
                corruption.dropped_segments.push(later_path);
            }
            report.corruptions.push(corruption);
            break;
        }
    }
    Ok(report)
}

/// Replays one segment; on damage, truncates it at the last good frame.
fn replay_segment(
    path: &Path,
    on_record: &mut impl FnMut(Record),
    records: &mut u64,
) -> Result<Option<Corruption>> {
    let data = fs::read(path).ctx(|| format!("read WAL segment {}", path.display()))?;
    let mut offset = 0usize;
    let mut damage = None;
    while offset < data.len() {
        match read_frame(&data[offset..]) {
            Ok((payload, used)) => match Record::decode(payload) {
                Ok(record) => {
                    on_record(record);
                    *records += 1;
                    offset += used;
                }
                Err(DecodeError(reason)) => {
                    damage = Some(format!("undecodable record: {reason}"));
                    break;
                }
            },
            Err(reason) => {
                damage = Some(reason.to_string());
                break;
            }
        }
    }
    let Some(reason) = damage else {
        return Ok(None);
    };
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .ctx(|| format!("open WAL segment {} for repair", path.display()))?;
    file.set_len(offset as u64)
        .ctx(|| format!("truncate WAL segment {}", path.display()))?;
    file.sync_all()
        .ctx(|| format!("sync WAL segment {}", path.display()))?;
    Ok(Some(Corruption {
        segment: path.to_path_buf(),
        offset: offset as u64,
        reason,
        dropped_bytes: (data.len() - offset) as u64,
        dropped_segments: Vec::new(),
    }))
}

fn read_frame(data: &[u8]) -> std::result::Result<(&[u8], usize), &'static str> {
    if data.len() < FRAME_HEADER {
        return Err("torn frame header");
    }
    let len = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
    let crc = u32::from_le_bytes([data[4], data[5], data[6], data[7]]);
    if len == 0 || len > MAX_RECORD {
        return Err("invalid record length");
    }
    let payload = data
        .get(FRAME_HEADER..FRAME_HEADER + len)
        .ok_or("torn record")?;
    if crc32c::crc32c(payload) != crc {
        return Err("checksum mismatch");
    }
    Ok((payload, FRAME_HEADER + len))
}

/// The appending side of the log.
pub struct Wal {
    dir: PathBuf,
    segment_size: u64,
    file: File,
    segment: u32,
    written: u64,
    frames: Vec<u8>,
}

impl Wal {
    /// Opens for appending after [`replay`]: continues in a fresh segment after the last one.
    pub fn open(dir: &Path, segment_size: u64) -> Result<Self> {
        fs::create_dir_all(dir).ctx(|| format!("create WAL directory {}", dir.display()))?;
        let last_segment = list_segments(dir)?.last().copied();
        let last_checkpoint = last_checkpoint(dir)?.map(|(i, _)| i);
        let next = last_segment.max(last_checkpoint).map_or(0, |i| i + 1);
        let (file, segment) = create_segment(dir, next)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            segment_size,
            file,
            segment,
            written: 0,
            frames: Vec::new(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn segment(&self) -> u32 {
        self.segment
    }

    /// Writes records (already encoded payloads) in one `write`, cutting a new segment first
    /// if they would overflow the current one.
    pub fn log(&mut self, payloads: &[&[u8]]) -> Result<()> {
        self.frames.clear();
        for payload in payloads {
            frame(&mut self.frames, payload);
        }
        if self.written > 0 && self.written + self.frames.len() as u64 > self.segment_size {
            self.cut()?;
        }
        self.file
            .write_all(&self.frames)
            .ctx(|| format!("write WAL segment {}", self.segment))?;
        self.written += self.frames.len() as u64;
        Ok(())
    }

    /// Closes the current segment (fsynced) and starts the next; returns the closed index.
    pub fn cut(&mut self) -> Result<u32> {
        self.file
            .sync_all()
            .ctx(|| format!("sync WAL segment {}", self.segment))?;
        let closed = self.segment;
        let (file, segment) = create_segment(&self.dir, closed + 1)?;
        self.file = file;
        self.segment = segment;
        self.written = 0;
        Ok(closed)
    }

    pub fn sync(&mut self) -> Result<()> {
        self.file
            .sync_all()
            .ctx(|| format!("sync WAL segment {}", self.segment))
    }

    /// Total bytes of the WAL directory.
    pub fn size_bytes(&self) -> u64 {
        crate::fsutil::dir_size(&self.dir)
    }
}

fn create_segment(dir: &Path, index: u32) -> Result<(File, u32)> {
    let path = dir.join(segment_name(index));
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .ctx(|| format!("create WAL segment {}", path.display()))?;
    crate::fsutil::sync_dir(dir)?;
    Ok((file, index))
}

/// Writes a checkpoint covering every segment up to `upto`, record by record; `finish`
/// makes it visible and removes the segments and older checkpoints it replaces.
pub struct CheckpointWriter {
    dir: PathBuf,
    upto: u32,
    tmp_dir: PathBuf,
    file: File,
    index: u32,
    written: u64,
    buf: Vec<u8>,
}

impl CheckpointWriter {
    pub fn new(dir: &Path, upto: u32) -> Result<Self> {
        let tmp_dir = dir.join(format!("checkpoint.{upto:08}.tmp"));
        if tmp_dir.exists() {
            fs::remove_dir_all(&tmp_dir).ctx(|| format!("remove {}", tmp_dir.display()))?;
        }
        fs::create_dir_all(&tmp_dir).ctx(|| format!("create {}", tmp_dir.display()))?;
        let file = File::create(tmp_dir.join(segment_name(0)))
            .ctx(|| format!("create checkpoint segment in {}", tmp_dir.display()))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            upto,
            tmp_dir,
            file,
            index: 0,
            written: 0,
            buf: Vec::with_capacity(1 << 20),
        })
    }

    pub fn write(&mut self, payload: &[u8]) -> Result<()> {
        frame(&mut self.buf, payload);
        if self.buf.len() >= 1 << 20 {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.file
            .write_all(&self.buf)
            .ctx(|| "write checkpoint".to_string())?;
        self.written += self.buf.len() as u64;
        self.buf.clear();
        if self.written >= DEFAULT_SEGMENT_SIZE {
            self.file.sync_all().ctx(|| "sync checkpoint".to_string())?;
            self.index += 1;
            self.written = 0;
            self.file = File::create(self.tmp_dir.join(segment_name(self.index)))
                .ctx(|| "create checkpoint segment".to_string())?;
        }
        Ok(())
    }

    pub fn finish(mut self) -> Result<()> {
        self.flush()?;
        self.file.sync_all().ctx(|| "sync checkpoint".to_string())?;
        crate::fsutil::sync_dir(&self.tmp_dir)?;
        let dir = self.dir.clone();
        let upto = self.upto;
        let final_dir = dir.join(format!("checkpoint.{upto:08}"));
        if final_dir.exists() {
            fs::remove_dir_all(&final_dir).ctx(|| format!("remove {}", final_dir.display()))?;
        }
        fs::rename(&self.tmp_dir, &final_dir)
            .ctx(|| format!("rename {}", self.tmp_dir.display()))?;
        crate::fsutil::sync_dir(&dir)?;
        // Everything the checkpoint covers can go now.
        for segment in list_segments(&dir)? {
            if segment <= upto {
                let path = dir.join(segment_name(segment));
                fs::remove_file(&path).ctx(|| format!("remove {}", path.display()))?;
            }
        }
        let entries = fs::read_dir(&dir).ctx(|| format!("read {}", dir.display()))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if let Some(rest) = name.strip_prefix("checkpoint.")
                && rest.parse::<u32>().is_ok_and(|i| i < upto)
            {
                fs::remove_dir_all(entry.path()).ctx(|| format!("remove {name}"))?;
            }
        }
        Ok(())
    }
}

/// Writes a whole checkpoint from already-encoded payloads (see [`CheckpointWriter`]).
pub fn write_checkpoint<'a>(
    dir: &Path,
    upto: u32,
    payloads: impl Iterator<Item = &'a [u8]>,
) -> Result<()> {
    let mut writer = CheckpointWriter::new(dir, upto)?;
    for payload in payloads {
        writer.write(payload)?;
    }
    writer.finish()
}

impl From<DecodeError> for Error {
    fn from(e: DecodeError) -> Self {
        Error::Corrupt {
            what: "record".to_string(),
            reason: e.0.to_string(),
        }
    }
}

#[cfg(test)]
mod tests;
