//! Small filesystem helpers: directory fsync, sizes, hard-link copies.

use std::fs::{self, File};
use std::path::Path;

use crate::error::{IoContext, Result};

/// fsyncs a directory so that entries created or renamed in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .ctx(|| format!("sync directory {}", dir.display()))
}

/// Total size of the regular files below `dir` (0 when it does not exist).
pub fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Recreates `from` under `to` with every file hard-linked (files are immutable once written).
pub fn hard_link_tree(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to).ctx(|| format!("create {}", to.display()))?;
    for entry in fs::read_dir(from).ctx(|| format!("read {}", from.display()))? {
        let entry = entry.ctx(|| format!("read {}", from.display()))?;
        let target = to.join(entry.file_name());
        let meta = entry
            .metadata()
            .ctx(|| format!("stat {}", entry.path().display()))?;
        if meta.is_dir() {
            hard_link_tree(&entry.path(), &target)?;
        } else {
            fs::hard_link(entry.path(), &target)
                .ctx(|| format!("link {} to {}", entry.path().display(), target.display()))?;
        }
    }
    sync_dir(to)
}
