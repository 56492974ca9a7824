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

/// A byte size as Prometheus flags and `body_size_limit` spell it (`512MB`, `1GB`, `1024`;
/// units are powers of 1024).
pub fn parse_bytes(s: &str) -> std::result::Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("invalid size {s:?}"))?;
    let mult: u64 = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "KB" | "KIB" => 1 << 10,
        "MB" | "MIB" => 1 << 20,
        "GB" | "GIB" => 1 << 30,
        "TB" | "TIB" => 1 << 40,
        "PB" | "PIB" => 1 << 50,
        "EB" | "EIB" => 1 << 60,
        _ => return Err(format!("invalid size {s:?}: unknown unit {unit:?}")),
    };
    number
        .checked_mul(mult)
        .ok_or_else(|| format!("invalid size {s:?}: too large"))
}
