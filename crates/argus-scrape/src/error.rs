//! Errors of discovery, relabeling and scraping.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    /// A configuration the scrape layer cannot use (bad regex, bad interval).
    #[error("{0}")]
    Config(String),
    /// A discovery source that could not be read.
    #[error("{0}")]
    Discovery(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
