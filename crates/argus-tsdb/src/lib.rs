//! The Argus storage engine: an in-memory head backed by a write-ahead log, immutable
//! memory-mapped blocks, compaction, retention, snapshots and deletion — Prometheus's TSDB
//! model, with its own on-disk encodings.
//!
//! It must never lose a sample it acknowledged (everything committed is in the WAL first),
//! never panic on damaged files (a torn WAL tail is cut off and reported), and never block
//! an async runtime: every call here is synchronous and meant for blocking threads.

pub mod block;
mod bstream;
pub mod chunk;
pub mod db;
mod encoding;
pub mod error;
pub mod exemplars;
pub mod fsutil;
pub mod head;
pub mod head_chunks;
pub mod metrics;
pub mod postings;
pub mod series;
pub mod wal;

pub use db::{Appender, Db, Options, Querier};
pub use error::{Error, Result};
pub use series::SeriesChunks;
