//! Errors of the storage engine. Append errors carry Prometheus's exact messages, because
//! clients (remote-write senders) match on them.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("out of order sample")]
    OutOfOrderSample,
    #[error("out of bounds")]
    OutOfBounds,
    #[error("duplicate sample for timestamp")]
    DuplicateSampleForTimestamp,
    #[error("too old sample")]
    TooOldSample,
    #[error("invalid series labels {labels}: {reason}")]
    InvalidLabels { labels: String, reason: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("corrupt {what}: {reason}")]
    Corrupt { what: String, reason: String },
    #[error("data directory {dir} is locked by another process ({reason})")]
    Locked { dir: String, reason: String },
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// True for the errors Prometheus answers with 400 on remote write (bad data, not
    /// something worth retrying).
    pub fn is_bad_data(&self) -> bool {
        matches!(
            self,
            Error::OutOfOrderSample
                | Error::OutOfBounds
                | Error::DuplicateSampleForTimestamp
                | Error::TooOldSample
                | Error::InvalidLabels { .. }
        )
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches a description (usually the path) to an I/O error.
pub trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: context(),
            source,
        })
    }
}
