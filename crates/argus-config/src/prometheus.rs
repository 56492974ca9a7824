//! `prometheus.yml`.
//!
//! Parsed strictly: every struct refuses unknown keys, so a typo is an error with its line and
//! column instead of a silently ignored setting. Service-discovery mechanisms that Argus does
//! not run yet are still accepted (as opaque YAML) and listed by [`Config::unsupported`], so
//! that a real configuration loads and the operator is told what is not active.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use argus_model::{Duration, Labels};
use serde::{Deserialize, Serialize};

use crate::http::HttpClientConfig;
use crate::relabel::RelabelConfig;
use crate::{Error, Result};

/// Settings of features argus does not run yet, kept as parsed YAML. Printed (for
/// `/api/v1/status/config`) with every secret-like value replaced by `<secret>`, as
/// Prometheus prints its secret fields.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct Opaque(pub serde_json::Value);

/// Keys whose values Prometheus declares as secrets somewhere in its configuration.
const SECRET_KEYS: [&str; 12] = [
    "password",
    "bearer_token",
    "credentials",
    "key",
    "client_secret",
    "secret_key",
    "token",
    "api_key",
    "auth_token",
    "secret",
    "application_credential_secret",
    "private_key",
];

fn masked(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if SECRET_KEYS.contains(&k.as_str()) && v.is_string() {
                        Value::String("<secret>".into())
                    } else {
                        masked(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(masked).collect()),
        other => other.clone(),
    }
}

impl Serialize for Opaque {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        masked(&self.0).serialize(s)
    }
}

fn d(s: &str) -> Duration {
    Duration::parse(s).unwrap_or_default()
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalConfig {
    #[serde(default = "GlobalConfig::default_scrape_interval")]
    pub scrape_interval: Duration,
    /// Unset (zero) means 10s, or the scrape interval when that is shorter.
    #[serde(default)]
    pub scrape_timeout: Duration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape_protocols: Option<Vec<String>>,
    #[serde(default = "GlobalConfig::default_evaluation_interval")]
    pub evaluation_interval: Duration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_query_offset: Option<Duration>,
    #[serde(default)]
    pub external_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_log_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape_failure_log_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_size_limit: Option<String>,
    #[serde(default)]
    pub sample_limit: u64,
    #[serde(default)]
    pub target_limit: u64,
    #[serde(default)]
    pub label_limit: u64,
    #[serde(default)]
    pub label_name_length_limit: u64,
    #[serde(default)]
    pub label_value_length_limit: u64,
    #[serde(default)]
    pub keep_dropped_targets: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_name_validation_scheme: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_name_escaping_scheme: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub always_scrape_classic_histograms: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub convert_classic_histograms_to_nhcb: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape_native_histograms: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_scrape_metrics: Option<bool>,
}

impl GlobalConfig {
    fn default_scrape_interval() -> Duration {
        d("1m")
    }
    fn default_evaluation_interval() -> Duration {
        d("1m")
    }

    /// External labels as a label set.
    pub fn external_labels(&self) -> Labels {
        let pairs: Vec<(&str, &str)> = self
            .external_labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        Labels::from_pairs(&pairs)
    }
}

impl Default for GlobalConfig {
    fn default() -> Self {
        serde_json::from_value(serde_json::json!({})).unwrap_or_else(|_| unreachable_default())
    }
}

/// Only reachable if the defaults above stop deserializing from `{}`, which a unit test pins.
fn unreachable_default() -> GlobalConfig {
    GlobalConfig {
        scrape_interval: d("1m"),
        scrape_timeout: d("0s"),
        scrape_protocols: None,
        evaluation_interval: d("1m"),
        rule_query_offset: None,
        external_labels: BTreeMap::new(),
        query_log_file: None,
        scrape_failure_log_file: None,
        body_size_limit: None,
        sample_limit: 0,
        target_limit: 0,
        label_limit: 0,
        label_name_length_limit: 0,
        label_value_length_limit: 0,
        keep_dropped_targets: 0,
        metric_name_validation_scheme: None,
        metric_name_escaping_scheme: None,
        always_scrape_classic_histograms: None,
        convert_classic_histograms_to_nhcb: None,
        scrape_native_histograms: None,
        extra_scrape_metrics: None,
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileSdConfig {
    pub files: Vec<String>,
    #[serde(default = "FileSdConfig::default_refresh")]
    pub refresh_interval: Duration,
}

impl FileSdConfig {
    fn default_refresh() -> Duration {
        d("5m")
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSdConfig {
    pub url: String,
    #[serde(default = "HttpSdConfig::default_refresh")]
    pub refresh_interval: Duration,
    #[serde(flatten)]
    pub http: HttpClientConfig,
}

impl HttpSdConfig {
    fn default_refresh() -> Duration {
        d("1m")
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DnsSdConfig {
    pub names: Vec<String>,
    #[serde(default = "DnsSdConfig::default_refresh")]
    pub refresh_interval: Duration,
    #[serde(default = "DnsSdConfig::default_type", rename = "type")]
    pub record_type: String,
    #[serde(default)]
    pub port: u16,
}

impl DnsSdConfig {
    fn default_refresh() -> Duration {
        d("30s")
    }
    fn default_type() -> String {
        "SRV".into()
    }
}

/// Service-discovery blocks that Argus parses but does not run yet.
pub const UNSUPPORTED_SD: &[&str] = &[
    "azure_sd_configs",
    "consul_sd_configs",
    "digitalocean_sd_configs",
    "docker_sd_configs",
    "dockerswarm_sd_configs",
    "ec2_sd_configs",
    "eureka_sd_configs",
    "gce_sd_configs",
    "hetzner_sd_configs",
    "ionos_sd_configs",
    "kubernetes_sd_configs",
    "kuma_sd_configs",
    "lightsail_sd_configs",
    "linode_sd_configs",
    "marathon_sd_configs",
    "nerve_sd_configs",
    "nomad_sd_configs",
    "oci_sd_configs",
    "openstack_sd_configs",
    "outscale_sd_configs",
    "ovhcloud_sd_configs",
    "puppetdb_sd_configs",
    "scaleway_sd_configs",
    "serverset_sd_configs",
    "stackit_sd_configs",
    "triton_sd_configs",
    "uyuni_sd_configs",
    "vultr_sd_configs",
];

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeConfig {
    pub job_name: String,
    #[serde(default)]
    pub honor_labels: bool,
    #[serde(default = "default_true")]
    pub honor_timestamps: bool,
    #[serde(default)]
    pub track_timestamps_staleness: bool,
    #[serde(default = "ScrapeConfig::default_scheme")]
    pub scheme: String,
    #[serde(default)]
    pub params: BTreeMap<String, Vec<String>>,
    /// Defaults to the global value (filled in by [`Config::finish`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape_interval: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape_timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape_protocols: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_scrape_protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape_classic_histograms: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub always_scrape_classic_histograms: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub convert_classic_histograms_to_nhcb: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape_native_histograms: Option<bool>,
    #[serde(default = "ScrapeConfig::default_metrics_path")]
    pub metrics_path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_size_limit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_limit: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_limit: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_limit: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_name_length_limit: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_value_length_limit: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native_histogram_bucket_limit: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native_histogram_min_bucket_factor: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_dropped_targets: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_name_validation_scheme: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_name_escaping_scheme: Option<String>,
    #[serde(default = "default_true")]
    pub enable_compression: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape_failure_log_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_scrape_metrics: Option<bool>,
    #[serde(default)]
    pub relabel_configs: Vec<RelabelConfig>,
    #[serde(default)]
    pub metric_relabel_configs: Vec<RelabelConfig>,
    #[serde(default)]
    pub static_configs: Vec<StaticConfig>,
    #[serde(default)]
    pub file_sd_configs: Vec<FileSdConfig>,
    #[serde(default)]
    pub http_sd_configs: Vec<HttpSdConfig>,
    #[serde(default)]
    pub dns_sd_configs: Vec<DnsSdConfig>,
    #[serde(flatten)]
    pub http: HttpClientConfig,
    // Discovery mechanisms accepted but not yet run (see UNSUPPORTED_SD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_sd_configs: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consul_sd_configs: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digitalocean_sd_configs: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_sd_configs: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerswarm_sd_configs: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ec2_sd_configs: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eureka_sd_configs: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gce_sd_configs: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hetzner_sd_configs: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ionos_sd_configs: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_sd_configs: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kuma_sd_configs: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lightsail_sd_configs: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linode_sd_configs: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marathon_sd_configs: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nerve_sd_configs: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nomad_sd_configs: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci_sd_configs: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openstack_sd_configs: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outscale_sd_configs: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ovhcloud_sd_configs: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub puppetdb_sd_configs: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaleway_sd_configs: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serverset_sd_configs: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stackit_sd_configs: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triton_sd_configs: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uyuni_sd_configs: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vultr_sd_configs: Option<Opaque>,
}

fn default_true() -> bool {
    true
}

impl ScrapeConfig {
    fn default_scheme() -> String {
        "http".into()
    }
    fn default_metrics_path() -> String {
        "/metrics".into()
    }

    /// Names of configured discovery blocks Argus does not run yet.
    pub fn unsupported_sd(&self) -> Vec<&'static str> {
        let present = [
            &self.azure_sd_configs,
            &self.consul_sd_configs,
            &self.digitalocean_sd_configs,
            &self.docker_sd_configs,
            &self.dockerswarm_sd_configs,
            &self.ec2_sd_configs,
            &self.eureka_sd_configs,
            &self.gce_sd_configs,
            &self.hetzner_sd_configs,
            &self.ionos_sd_configs,
            &self.kubernetes_sd_configs,
            &self.kuma_sd_configs,
            &self.lightsail_sd_configs,
            &self.linode_sd_configs,
            &self.marathon_sd_configs,
            &self.nerve_sd_configs,
            &self.nomad_sd_configs,
            &self.oci_sd_configs,
            &self.openstack_sd_configs,
            &self.outscale_sd_configs,
            &self.ovhcloud_sd_configs,
            &self.puppetdb_sd_configs,
            &self.scaleway_sd_configs,
            &self.serverset_sd_configs,
            &self.stackit_sd_configs,
            &self.triton_sd_configs,
            &self.uyuni_sd_configs,
            &self.vultr_sd_configs,
        ];
        UNSUPPORTED_SD
            .iter()
            .zip(present)
            .filter(|(_, v)| v.is_some())
            .map(|(name, _)| *name)
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    #[serde(default = "AlertmanagerConfig::default_scheme")]
    pub scheme: String,
    #[serde(default)]
    pub path_prefix: String,
    #[serde(default = "AlertmanagerConfig::default_timeout")]
    pub timeout: Duration,
    #[serde(default = "AlertmanagerConfig::default_api_version")]
    pub api_version: String,
    #[serde(default)]
    pub relabel_configs: Vec<RelabelConfig>,
    #[serde(default)]
    pub alert_relabel_configs: Vec<RelabelConfig>,
    #[serde(default)]
    pub static_configs: Vec<StaticConfig>,
    #[serde(default)]
    pub file_sd_configs: Vec<FileSdConfig>,
    #[serde(default)]
    pub http_sd_configs: Vec<HttpSdConfig>,
    #[serde(default)]
    pub dns_sd_configs: Vec<DnsSdConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigv4: Option<Opaque>,
    #[serde(flatten)]
    pub http: HttpClientConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_sd_configs: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consul_sd_configs: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ec2_sd_configs: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_sd_configs: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gce_sd_configs: Option<Opaque>,
}

impl AlertmanagerConfig {
    fn default_scheme() -> String {
        "http".into()
    }
    fn default_timeout() -> Duration {
        d("10s")
    }
    fn default_api_version() -> String {
        "v2".into()
    }
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlertingConfig {
    #[serde(default)]
    pub alert_relabel_configs: Vec<RelabelConfig>,
    #[serde(default)]
    pub alertmanagers: Vec<AlertmanagerConfig>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_shards: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_shards: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_samples_per_send: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_send_deadline: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_backoff: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_backoff: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_on_http_429: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_age_limit: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteWriteConfig {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_timeout: Option<Duration>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub write_relabel_configs: Vec<RelabelConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub send_exemplars: bool,
    #[serde(default)]
    pub send_native_histograms: bool,
    #[serde(default)]
    pub round_robin_dns: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protobuf_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_config: Option<QueueConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_config: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigv4: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azuread: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub google_iam: Option<Opaque>,
    #[serde(flatten)]
    pub http: HttpClientConfig,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteReadConfig {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_timeout: Option<Duration>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub read_recent: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub required_matchers: BTreeMap<String, String>,
    #[serde(default)]
    pub filter_external_labels: Option<bool>,
    #[serde(flatten)]
    pub http: HttpClientConfig,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TsdbConfig {
    #[serde(default)]
    pub out_of_order_time_window: Duration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_encoding: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_series_compaction_threshold: Option<Opaque>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    #[serde(default, deserialize_with = "null_default")]
    pub tsdb: TsdbConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exemplars: Option<Opaque>,
}

impl StorageConfig {
    /// `storage.exemplars.max_exemplars`: the exemplar buffer's size (Prometheus's default
    /// 100000; 0 or less stores none).
    pub fn max_exemplars(&self) -> usize {
        self.exemplars
            .as_ref()
            .and_then(|o| o.0.get("max_exemplars"))
            .and_then(serde_json::Value::as_i64)
            .unwrap_or(100_000)
            .max(0) as usize
    }
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default, deserialize_with = "null_default")]
    pub global: GlobalConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<Opaque>,
    #[serde(default)]
    pub rule_files: Vec<String>,
    #[serde(default)]
    pub scrape_config_files: Vec<String>,
    #[serde(default)]
    pub scrape_configs: Vec<ScrapeConfig>,
    #[serde(default, deserialize_with = "null_default")]
    pub alerting: AlertingConfig,
    #[serde(default)]
    pub remote_write: Vec<RemoteWriteConfig>,
    #[serde(default)]
    pub remote_read: Vec<RemoteReadConfig>,
    #[serde(default, deserialize_with = "null_default")]
    pub storage: StorageConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otlp: Option<Opaque>,
}

impl Config {
    /// The configuration in effect as YAML, defaults filled in and secrets shown as
    /// `<secret>` (`/api/v1/status/config`).
    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(self).unwrap_or_else(|e| format!("# cannot print config: {e}\n"))
    }

    /// Fills defaults that depend on other sections and runs Prometheus's semantic checks.
    fn finish(mut self) -> Result<Self, String> {
        let g = &mut self.global;
        if g.scrape_timeout.is_zero() {
            g.scrape_timeout = d("10s").min(g.scrape_interval);
        } else if g.scrape_timeout > g.scrape_interval {
            return Err("global scrape timeout greater than scrape interval".into());
        }
        let g = &self.global;
        for (name, value) in &g.external_labels {
            check_label_name(name).map_err(|e| format!("{e} in external_labels"))?;
            if value.is_empty() {
                return Err(format!("empty label value for external label {name:?}"));
            }
        }
        let mut jobs = HashSet::new();
        let global = self.global.clone();
        for sc in &mut self.scrape_configs {
            if sc.job_name.is_empty() {
                return Err("job_name is empty".into());
            }
            if !jobs.insert(sc.job_name.clone()) {
                return Err(format!(
                    "found multiple scrape configs with job name {:?}",
                    sc.job_name
                ));
            }
            let interval = *sc.scrape_interval.get_or_insert(global.scrape_interval);
            let timeout = *sc
                .scrape_timeout
                .get_or_insert(if global.scrape_timeout > interval {
                    interval
                } else {
                    global.scrape_timeout
                });
            if timeout > interval {
                return Err(format!(
                    "scrape timeout greater than scrape interval for scrape config with job name {:?}",
                    sc.job_name
                ));
            }
            if sc.scheme != "http" && sc.scheme != "https" {
                return Err(format!(
                    "invalid scheme {:?} for scrape config with job name {:?}",
                    sc.scheme, sc.job_name
                ));
            }
            sc.http
                .validate()
                .map_err(|e| format!("{e} (job {:?})", sc.job_name))?;
            for rc in sc.relabel_configs.iter().chain(&sc.metric_relabel_configs) {
                rc.validate()
                    .map_err(|e| format!("{e} (job {:?})", sc.job_name))?;
            }
            for st in &sc.static_configs {
                for t in &st.targets {
                    if t.contains('/') {
                        return Err(format!("{t:?} is not a valid hostname"));
                    }
                }
            }
        }
        for rw in &self.remote_write {
            check_url(&rw.url).map_err(|e| format!("remote_write: {e}"))?;
            rw.http.validate()?;
            for rc in &rw.write_relabel_configs {
                rc.validate()?;
            }
        }
        for rr in &self.remote_read {
            check_url(&rr.url).map_err(|e| format!("remote_read: {e}"))?;
            rr.http.validate()?;
        }
        for am in &self.alerting.alertmanagers {
            am.http.validate()?;
            for rc in am.relabel_configs.iter().chain(&am.alert_relabel_configs) {
                rc.validate()?;
            }
        }
        for rc in &self.alerting.alert_relabel_configs {
            rc.validate()?;
        }
        Ok(self)
    }

    /// Configured features this build does not run yet, for a start-up warning.
    pub fn unsupported(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sc in &self.scrape_configs {
            for sd in sc.unsupported_sd() {
                out.push(format!("{sd} in scrape config {:?}", sc.job_name));
            }
        }
        out
    }
}

fn check_label_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!("{name:?} is not a valid label name"))
    }
}

/// Prometheus only requires that the URL parses; an empty one is refused.
fn check_url(url: &str) -> Result<(), String> {
    if url.trim().is_empty() {
        return Err("url is empty".into());
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("invalid URL {url:?}"));
    }
    Ok(())
}

/// Treats an explicit YAML null like an absent key (`global:` with nothing under it).
pub(crate) fn null_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Parses a configuration from YAML text; `path` is used in messages.
pub fn parse_str(text: &str, path: &str) -> Result<Config> {
    let config: Config = serde_saphyr::from_str(text).map_err(|e| Error::Yaml {
        path: path.to_string(),
        message: first_line(&e.to_string()),
    })?;
    config.finish().map_err(|message| Error::Invalid {
        path: path.to_string(),
        message,
    })
}

/// Keeps serde-saphyr's headline (`line L column C: …`) and drops the source excerpt.
fn first_line(message: &str) -> String {
    message
        .lines()
        .next()
        .unwrap_or(message)
        .trim_start_matches("error: ")
        .to_string()
}

/// Reads and parses a configuration file.
pub fn load_file(path: &Path) -> Result<Config> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse_str(&text, &path.display().to_string())
}

#[cfg(test)]
mod tests;
