//! Closed head chunks spilled to disk, so the head keeps only open chunks in memory (the same
//! idea as Prometheus's memory-mapped head chunks).
//!
//! ```text
//! chunks_head/000001  000002 …   append-only files of chunk bytes, cut at 128 MiB
//! ```
//! A closed chunk is addressed by (file, offset, length). Writes go through a small in-memory
//! buffer; reads come from that buffer or, once written, straight from the file's read-only
//! memory map (no copy, no system call; `pread` only if the file could not be mapped). The
//! files are a cache of what the WAL and checkpoints already hold: they are cleared at
//! start-up and rebuilt by WAL replay, and a file is deleted once every chunk in it is older
//! than the head.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::{Mmap, MmapOptions};
use parking_lot::Mutex;

use crate::error::{IoContext, Result};

const FILE_SIZE: u64 = 128 << 20;
const BUFFER: usize = 1 << 20;

/// Where a closed chunk lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLoc {
    pub file: u32,
    pub offset: u32,
    pub len: u32,
}

/// A closed chunk's bytes: a range of a memory-mapped chunk file, or a copy.
#[derive(Clone)]
pub enum ChunkBytes {
    Mapped(Arc<Mmap>, usize, usize),
    Owned(Arc<[u8]>),
}

impl std::ops::Deref for ChunkBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            // Never out of range for a location this store handed out; empty rather than a
            // panic if it were.
            ChunkBytes::Mapped(map, start, end) => map.get(*start..*end).unwrap_or(&[]),
            ChunkBytes::Owned(bytes) => bytes,
        }
    }
}

impl From<Vec<u8>> for ChunkBytes {
    fn from(bytes: Vec<u8>) -> Self {
        ChunkBytes::Owned(bytes.into())
    }
}

impl From<&[u8]> for ChunkBytes {
    fn from(bytes: &[u8]) -> Self {
        ChunkBytes::Owned(bytes.into())
    }
}

struct FileEntry {
    file: Arc<File>,
    /// The file's whole size range, read only below what was flushed. `None` if mapping
    /// failed (reads then use `pread`).
    map: Option<Arc<Mmap>>,
    /// Newest sample time of any chunk in the file.
    max_time: i64,
}

struct Inner {
    files: BTreeMap<u32, FileEntry>,
    /// Chunks that could not be written (I/O error), kept in memory instead: file 0,
    /// offset = index here. Freed by `truncate_before` like files.
    overflow: Vec<Option<(i64, Box<[u8]>)>>,
    current: u32,
    /// Bytes of the current file already on disk.
    flushed: u64,
    /// Bytes written after `flushed`, not yet on disk.
    buffer: Vec<u8>,
}

pub struct HeadChunkStore {
    dir: PathBuf,
    /// Where files are cut (`FILE_SIZE`; smaller in tests).
    file_size: u64,
    inner: Mutex<Inner>,
}

fn file_path(dir: &Path, index: u32) -> PathBuf {
    dir.join(format!("{index:06}"))
}

/// Creates (truncating) chunk file `index` and maps its first `size` bytes for reading.
fn open_file(dir: &Path, index: u32, size: u64) -> Result<FileEntry> {
    let path = file_path(dir, index);
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .ctx(|| format!("create head chunk file {}", path.display()))?;
    let map = match map_for_reading(&file, size) {
        Ok(map) => Some(Arc::new(map)),
        Err(e) => {
            tracing::warn!(error = %e, file = %path.display(), "mapping a head chunk file failed; reading it with pread");
            None
        }
    };
    Ok(FileEntry {
        file: file.into(),
        map,
        max_time: i64::MIN,
    })
}

#[allow(unsafe_code)]
fn map_for_reading(file: &File, size: u64) -> std::io::Result<Mmap> {
    // SAFETY: a read-only shared map of a file this process created in its locked data
    // directory. It spans the file's maximum size, but is read only below the flushed
    // length: bytes already written with `pwrite` (visible through the page cache) and never
    // written again, since files are append-only, never truncated while open, and deleted
    // whole (unlinking keeps a mapped file's pages valid).
    unsafe { MmapOptions::new().len(size as usize).map(file) }
}

impl HeadChunkStore {
    /// Opens `dir`, discarding whatever an earlier process left there.
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_sized(dir, FILE_SIZE)
    }

    fn open_sized(dir: &Path, file_size: u64) -> Result<Self> {
        if dir.exists() {
            fs::remove_dir_all(dir).ctx(|| format!("clear {}", dir.display()))?;
        }
        fs::create_dir_all(dir).ctx(|| format!("create {}", dir.display()))?;
        let mut files = BTreeMap::new();
        files.insert(1, open_file(dir, 1, file_size)?);
        Ok(Self {
            dir: dir.to_path_buf(),
            file_size,
            inner: Mutex::new(Inner {
                files,
                overflow: Vec::new(),
                current: 1,
                flushed: 0,
                buffer: Vec::with_capacity(BUFFER),
            }),
        })
    }

    /// Stores chunk bytes; `max_time` is the chunk's newest sample time. Never loses the
    /// chunk: if the file cannot be written it is kept in memory (and the error logged).
    pub fn write(&self, bytes: &[u8], max_time: i64) -> ChunkLoc {
        let mut inner = self.inner.lock();
        match Self::write_locked(&self.dir, self.file_size, &mut inner, bytes, max_time) {
            Ok(loc) => loc,
            Err(e) => {
                tracing::error!(error = %e, "spilling a head chunk failed; keeping it in memory");
                inner.overflow.push(Some((max_time, bytes.into())));
                ChunkLoc {
                    file: 0,
                    offset: (inner.overflow.len() - 1) as u32,
                    len: bytes.len() as u32,
                }
            }
        }
    }

    fn write_locked(
        dir: &Path,
        file_size: u64,
        inner: &mut Inner,
        bytes: &[u8],
        max_time: i64,
    ) -> Result<ChunkLoc> {
        if inner.flushed + (inner.buffer.len() + bytes.len()) as u64 > file_size {
            Self::flush_locked(inner)?;
            let next = inner.current + 1;
            inner.files.insert(next, open_file(dir, next, file_size)?);
            inner.current = next;
            inner.flushed = 0;
        }
        let loc = ChunkLoc {
            file: inner.current,
            offset: (inner.flushed + inner.buffer.len() as u64) as u32,
            len: bytes.len() as u32,
        };
        inner.buffer.extend_from_slice(bytes);
        let current = inner.current;
        if let Some(entry) = inner.files.get_mut(&current) {
            entry.max_time = entry.max_time.max(max_time);
        }
        if inner.buffer.len() >= BUFFER {
            Self::flush_locked(inner)?;
        }
        Ok(loc)
    }

    fn flush_locked(inner: &mut Inner) -> Result<()> {
        if inner.buffer.is_empty() {
            return Ok(());
        }
        let current = inner.current;
        let flushed = inner.flushed;
        let entry = inner
            .files
            .get(&current)
            .ok_or_else(|| crate::Error::Invalid("head chunk file missing".into()))?;
        entry
            .file
            .write_all_at(&inner.buffer, flushed)
            .ctx(|| format!("write head chunk file {current}"))?;
        inner.flushed += inner.buffer.len() as u64;
        inner.buffer.clear();
        Ok(())
    }

    /// Reads a chunk back for a query: borrowed from the file's map when it is on disk. A
    /// location from another process or a deleted file is an error.
    pub fn read(&self, loc: ChunkLoc) -> Result<ChunkBytes> {
        self.read_as(loc, true)
    }

    /// Reads a chunk back as a copy, with `pread` when it is on disk: for whole-head passes
    /// (compaction, checkpoints), whose reads through the map would make every chunk file's
    /// pages part of the process's resident memory.
    pub fn read_copied(&self, loc: ChunkLoc) -> Result<ChunkBytes> {
        self.read_as(loc, false)
    }

    fn read_as(&self, loc: ChunkLoc, mapped: bool) -> Result<ChunkBytes> {
        let inner = self.inner.lock();
        let start = loc.offset as u64;
        let end = start + loc.len as u64;
        if loc.file == 0 {
            return inner
                .overflow
                .get(loc.offset as usize)
                .and_then(|e| e.as_ref())
                .map(|(_, b)| ChunkBytes::from(&b[..]))
                .ok_or_else(|| crate::Error::Invalid(format!("head chunk {loc:?} is gone")));
        }
        if loc.file == inner.current && end > inner.flushed {
            let from = start
                .checked_sub(inner.flushed)
                .ok_or_else(|| crate::Error::Invalid(format!("head chunk {loc:?} out of range")))?
                as usize;
            return inner
                .buffer
                .get(from..from + loc.len as usize)
                .map(ChunkBytes::from)
                .ok_or_else(|| crate::Error::Invalid(format!("head chunk {loc:?} out of range")));
        }
        let entry = inner.files.get(&loc.file).ok_or_else(|| {
            crate::Error::Invalid(format!("head chunk file {} is gone", loc.file))
        })?;
        if let Some(map) = entry.map.as_ref().filter(|_| mapped) {
            // Everything below `end` is on disk: an older file is complete, and in the
            // current one `end <= flushed`.
            return Ok(ChunkBytes::Mapped(
                map.clone(),
                start as usize,
                end as usize,
            ));
        }
        let file = entry.file.clone();
        drop(inner);
        let mut out = vec![0u8; loc.len as usize];
        file.read_exact_at(&mut out, start)
            .ctx(|| format!("read head chunk {loc:?}"))?;
        Ok(out.into())
    }

    /// Deletes files whose chunks are all older than `before` (never the current file).
    pub fn truncate_before(&self, before: i64) -> Result<()> {
        let mut inner = self.inner.lock();
        let current = inner.current;
        let doomed: Vec<u32> = inner
            .files
            .iter()
            .filter(|(i, e)| **i != current && e.max_time < before)
            .map(|(i, _)| *i)
            .collect();
        for entry in inner.overflow.iter_mut() {
            if entry
                .as_ref()
                .is_some_and(|(max_time, _)| *max_time < before)
            {
                *entry = None;
            }
        }
        for i in doomed {
            inner.files.remove(&i);
            let path = file_path(&self.dir, i);
            fs::remove_file(&path).ctx(|| format!("remove {}", path.display()))?;
        }
        Ok(())
    }

    /// Total bytes held on disk and in the buffer.
    pub fn size_bytes(&self) -> u64 {
        let inner = self.inner.lock();
        let files: u64 = inner
            .files
            .values()
            .map(|e| e.file.metadata().map(|m| m.len()).unwrap_or(0))
            .sum();
        files + inner.buffer.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_read_across_buffer_files_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let store = HeadChunkStore::open(&dir.path().join("chunks_head")).unwrap();
        let mut locs = Vec::new();
        for i in 0..3000u32 {
            let bytes: Vec<u8> = (0..(i % 700)).map(|b| (b ^ i) as u8).collect();
            locs.push((store.write(&bytes, i as i64), bytes));
        }
        for (loc, bytes) in &locs {
            assert_eq!(&store.read(*loc).unwrap()[..], &bytes[..]);
        }
        store.truncate_before(i64::MAX).unwrap();
        // The current file stays readable.
        let (loc, bytes) = locs.last().unwrap();
        assert_eq!(&store.read(*loc).unwrap()[..], &bytes[..]);
    }
    /// Small files: chunks written before a cut are read from the older file's map, later
    /// ones from the current file's map or its buffer, and bytes read before the older file
    /// was deleted stay valid.
    #[test]
    fn mapped_reads_across_file_cuts_and_deletion() {
        let dir = tempfile::tempdir().unwrap();
        let store = HeadChunkStore::open_sized(&dir.path().join("chunks_head"), 4 << 20).unwrap();
        let mut locs = Vec::new();
        for i in 0..20_000u32 {
            let bytes: Vec<u8> = (0..(100 + i % 500)).map(|b| ((b * 7) ^ i) as u8).collect();
            locs.push((store.write(&bytes, i as i64), bytes));
        }
        let files: std::collections::BTreeSet<u32> = locs.iter().map(|(l, _)| l.file).collect();
        assert!(files.len() >= 2, "{files:?}");
        let mut mapped = 0;
        let mut held = Vec::new();
        for (loc, bytes) in &locs {
            let got = store.read(*loc).unwrap();
            assert_eq!(&got[..], &bytes[..], "{loc:?}");
            if matches!(got, ChunkBytes::Mapped(..)) {
                mapped += 1;
            }
            let copied = store.read_copied(*loc).unwrap();
            assert!(matches!(copied, ChunkBytes::Owned(_)));
            assert_eq!(&copied[..], &bytes[..], "{loc:?}");
            if loc.file == 1 {
                held.push((got, bytes));
            }
        }
        // Only the current file's unflushed tail comes from the buffer.
        assert!(mapped > locs.len() * 3 / 4, "{mapped} of {}", locs.len());
        store.truncate_before(i64::MAX).unwrap();
        assert!(!file_path(&dir.path().join("chunks_head"), 1).exists());
        assert!(store.read(locs[0].0).is_err());
        for (got, bytes) in held {
            assert_eq!(&got[..], &bytes[..]);
        }
    }
}
