//! The vocabulary every other Argus crate speaks: label sets, label matchers (with Go RE2
//! regex semantics translated to Rust), samples and stale markers, Prometheus durations and
//! timestamps, and Go-compatible float formatting.
//!
//! This crate depends on nothing of ours and must never do I/O.

pub mod duration;
pub mod error;
pub mod gofmt;
pub mod histogram;
mod histogram_bounds;
pub mod labels;
pub mod matcher;
pub mod regex_go;
pub mod sample;
pub mod time;

pub use duration::Duration;
pub use error::{Error, Result};
pub use histogram::{CounterResetHint, FloatHistogram};
pub use labels::{Label, LabelRef, Labels, LabelsBuilder};
pub use matcher::{MatchOp, Matcher};
pub use sample::{STALE_NAN_BITS, Sample, is_stale_nan, stale_nan};
