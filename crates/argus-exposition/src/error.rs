//! Parse errors. Messages follow Prometheus's text parsers, so a failed scrape reports the
//! same `lastError` a Prometheus user is used to.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct ParseError(pub String);

impl ParseError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

pub type Result<T, E = ParseError> = std::result::Result<T, E>;
