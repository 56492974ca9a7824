//! Configuration errors.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("read config file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// YAML syntax or type error, already carrying line, column and the offending key.
    #[error("parsing YAML file {path}: {message}")]
    Yaml { path: String, message: String },
    /// A semantic check failed after parsing.
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
