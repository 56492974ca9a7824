//! Remote-write and remote-read wire protocols. Today: the remote-write 1.0 receiver
//! (snappy-compressed protobuf `WriteRequest` → the TSDB appender).
//!
//! Every size is checked before anything is allocated for it, and a request is applied
//! whole or not at all: nothing half-applied from a malformed or rejected payload.

pub mod histogram;
pub mod prompb;
pub mod wire;
pub mod write;

pub use write::{WriteError, WriteLimits, WriteOutcome, decompress_write_request, ingest};
