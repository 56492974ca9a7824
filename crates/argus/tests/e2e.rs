#![allow(clippy::unwrap_used)]

//! End-to-end tests: the real `argus` binary on loopback, driven over HTTP, and the real
//! Debian Prometheus as an interop peer. One test binary, several modules.

mod e2e {
    mod api_snapshots;
    mod differential;
    pub mod harness;
    mod interop;
    mod query;
    mod scrape;
    mod storage;
}
