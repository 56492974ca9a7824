//! Errors of the model crate.

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// A duration that does not parse, with Prometheus's message.
    #[error("{0}")]
    InvalidDuration(String),
    #[error("invalid regular expression {regex:?}: {reason}")]
    InvalidRegex { regex: String, reason: String },
    #[error("cannot parse {0:?} to a valid timestamp")]
    InvalidTimestamp(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
