//! HTTP surface of `argus server`: lifecycle endpoints, `/metrics`, the remote-write receiver
//! and the Prometheus HTTP API v1 (storage endpoints today), with response envelopes and
//! error JSON as Prometheus writes them.
//!
//! Handlers never block the async runtime: storage calls run on blocking threads.

pub mod api;
pub mod ast_json;
pub mod exposition;
pub mod http_metrics;
pub mod lenient;
pub mod params;
pub mod process;
pub mod query;
pub mod server;
pub mod targets;

pub use server::{AppState, BuildInfo, CorsOrigin, Lifecycle, QueryMemory, router};
