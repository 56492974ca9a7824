//! Errors of the model crate.

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// A duration that does not parse, with Prometheus's message.
    #[error("{0}")]
    InvalidDuration(String),
    /// A regex that does not compile: `reason` is Go's error (`error parsing regexp: …`) for
    /// what Go refuses, or names the pattern when Rust's engine refuses it (size limits).
    #[error("{reason}")]
    InvalidRegex { regex: String, reason: String },
    #[error("cannot parse {0:?} to a valid timestamp")]
    InvalidTimestamp(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
