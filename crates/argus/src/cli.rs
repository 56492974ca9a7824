//! Command-line interface. Flag names and defaults mirror Prometheus's.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "argus",
    version,
    about = "Prometheus-compatible monitoring with high availability and horizontal scale built in.",
    long_about = "Argus runs the Prometheus server's job from the same prometheus.yml, the same flags \
                  and the same HTTP API, so existing configurations, dashboards and tools keep working."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server: storage, remote-write receiver and HTTP API (as `prometheus`).
    Server(Box<ServerArgs>),
    /// Tools (what promtool does).
    #[command(subcommand)]
    Tool(ToolCommand),
}

#[derive(Subcommand, Debug)]
pub enum ToolCommand {
    /// Check configuration files or exposition text (as `promtool check`).
    #[command(subcommand)]
    Check(CheckCommand),
    /// Run upstream PromQL test scripts (the promqltest format); prints each failing case and
    /// `N passed, M failed`, exits 1 if any case failed.
    PromqlTest {
        /// Script files (`*.test`).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum CheckCommand {
    /// Check that configuration files load (exit 1 if one does not).
    Config {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Lint the exposition text on stdin like promtool (exit 3 on problems).
    Metrics,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Logfmt,
    Json,
}

#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// Prometheus configuration file path.
    #[arg(long = "config.file", default_value = "prometheus.yml")]
    pub config_file: PathBuf,

    /// Address to listen on for UI, API, and telemetry.
    #[arg(long = "web.listen-address", default_value = "0.0.0.0:9090")]
    pub listen_address: String,

    /// Accept remote write requests on /api/v1/write.
    #[arg(long = "web.enable-remote-write-receiver")]
    pub enable_remote_write_receiver: bool,

    /// Regex for CORS origin. It is fully anchored. Example: 'https?://(domain1|domain2)\.com'
    #[arg(long = "web.cors.origin", default_value = ".*")]
    pub cors_origin: String,

    /// Enable shutdown and reload via HTTP request (/-/quit, /-/reload).
    #[arg(long = "web.enable-lifecycle")]
    pub enable_lifecycle: bool,

    /// Enable API endpoints for admin control actions (snapshot, delete_series, clean_tombstones).
    #[arg(long = "web.enable-admin-api")]
    pub enable_admin_api: bool,

    /// Base path for metrics storage.
    #[arg(long = "storage.tsdb.path", default_value = "data/")]
    pub tsdb_path: PathBuf,

    /// How long to retain samples in storage. Defaults to 15d when neither this nor
    /// --storage.tsdb.retention.size is set. Units: y, w, d, h, m, s, ms.
    #[arg(long = "storage.tsdb.retention.time")]
    pub retention_time: Option<String>,

    /// Maximum number of bytes that can be stored for blocks (B, KB, MB, GB, TB, PB, EB; base 1024).
    #[arg(long = "storage.tsdb.retention.size")]
    pub retention_size: Option<String>,

    /// Minimum duration of a data block before being persisted (the head block range).
    #[arg(
        long = "storage.tsdb.min-block-duration",
        default_value = "2h",
        hide = true
    )]
    pub min_block_duration: String,

    /// Maximum duration compacted blocks may span. Defaults to 10% of the retention period.
    #[arg(long = "storage.tsdb.max-block-duration", hide = true)]
    pub max_block_duration: Option<String>,

    /// How often the storage checks for compaction and retention work.
    #[arg(
        long = "storage.tsdb.compaction-check-interval",
        default_value = "1m",
        hide = true
    )]
    pub compaction_check_interval: String,

    /// The maximum lookback duration for retrieving metrics during expression evaluations.
    #[arg(long = "query.lookback-delta", default_value = "5m")]
    pub query_lookback_delta: String,

    /// Maximum time a query may take before being aborted.
    #[arg(long = "query.timeout", default_value = "2m")]
    pub query_timeout: String,

    /// Maximum number of queries executed concurrently.
    #[arg(long = "query.max-concurrency", default_value_t = 20)]
    pub query_max_concurrency: usize,

    /// Maximum number of samples a single query can load into memory.
    #[arg(long = "query.max-samples", default_value_t = 50_000_000)]
    pub query_max_samples: usize,

    /// Comma-separated feature names to enable (Prometheus's names; PromQL ones:
    /// promql-experimental-functions, promql-duration-expr, promql-extended-range-selectors,
    /// promql-binop-fill-modifiers, promql-delayed-name-removal). Others are accepted and have
    /// no effect yet.
    #[arg(long = "enable-feature", value_delimiter = ',')]
    pub enable_feature: Vec<String>,

    /// Only log messages with the given severity or above.
    #[arg(long = "log.level", value_enum, default_value = "info")]
    pub log_level: LogLevel,

    /// Output format of log messages.
    #[arg(long = "log.format", value_enum, default_value = "logfmt")]
    pub log_format: LogFormat,
}

impl ServerArgs {
    /// Flag values as `/api/v1/status/flags` reports them.
    pub fn flag_map(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            m.insert(k.to_string(), v);
        };
        put("config.file", self.config_file.display().to_string());
        put("web.listen-address", self.listen_address.clone());
        put(
            "web.enable-remote-write-receiver",
            self.enable_remote_write_receiver.to_string(),
        );
        put("web.enable-lifecycle", self.enable_lifecycle.to_string());
        put("web.cors.origin", self.cors_origin.clone());
        put("web.enable-admin-api", self.enable_admin_api.to_string());
        put("storage.tsdb.path", self.tsdb_path.display().to_string());
        put(
            "storage.tsdb.retention.time",
            self.retention_time.clone().unwrap_or_else(|| "0s".into()),
        );
        put(
            "storage.tsdb.retention.size",
            self.retention_size.clone().unwrap_or_else(|| "0B".into()),
        );
        put(
            "storage.tsdb.min-block-duration",
            self.min_block_duration.clone(),
        );
        put(
            "storage.tsdb.max-block-duration",
            self.max_block_duration.clone().unwrap_or_default(),
        );
        put("query.lookback-delta", self.query_lookback_delta.clone());
        put("query.max-samples", self.query_max_samples.to_string());
        put("query.timeout", self.query_timeout.clone());
        put("enable-feature", self.enable_feature.join(","));
        put(
            "query.max-concurrency",
            self.query_max_concurrency.to_string(),
        );
        put("log.level", format!("{:?}", self.log_level).to_lowercase());
        put(
            "log.format",
            format!("{:?}", self.log_format).to_lowercase(),
        );
        m
    }
}

/// Prometheus's byte sizes: `512MB`, `1GB`, `10TB` (base 1024), or plain bytes.
pub use argus_config::parse_bytes;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_bytes("512MB"), Ok(512 << 20));
        assert_eq!(parse_bytes("1024"), Ok(1024));
        assert!(parse_bytes("1XB").is_err());
        assert!(parse_bytes("MB").is_err());
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
