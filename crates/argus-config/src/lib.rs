//! Typed, strict configuration files: `prometheus.yml` today (rule files and
//! `alertmanager.yml` as their issues land). Unknown keys are errors naming the key, line and
//! column; defaults are Prometheus's; secrets print as `<secret>`.
//!
//! This crate only parses and validates: it never opens sockets or watches files.

pub mod error;
pub mod http;
pub mod prometheus;
pub mod relabel;

pub use error::{Error, Result};
pub use prometheus::{Config, load_file, parse_str};
