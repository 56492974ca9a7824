//! Collecting data the way Prometheus does: service discovery yields target groups, target
//! relabeling turns them into targets, one scrape loop per target fetches and parses its
//! exposition and appends the samples (with metric relabeling, limits and staleness) to the
//! TSDB through its appender.
//!
//! Must never block a tokio worker on disk or hold a lock across an `.await`, and must never
//! half-ingest a scrape: a scrape either lands whole or (on a parse error or a limit) not at
//! all, followed by stale markers for what the target exposed before.

pub mod discovery;
pub mod error;
pub mod manager;
pub mod metrics;
pub mod relabel;
pub mod scrape_loop;
pub mod target;
pub mod tls;

pub use error::{Error, Result};
pub use manager::ScrapeManager;
