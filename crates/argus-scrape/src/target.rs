//! Targets: what discovery found, turned into scrape targets by Prometheus's rules
//! (`PopulateLabels`): discovered labels plus job/interval/timeout/path/scheme/params
//! defaults, target relabeling, `__meta_*` removed, `instance` defaulted to the address.

use std::collections::BTreeMap;
use std::sync::Arc;

use argus_config::prometheus::{GlobalConfig, ScrapeConfig};
use argus_exposition::ScrapeProtocol;
use argus_model::{Duration, Labels, LabelsBuilder};
use parking_lot::Mutex;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::relabel::{Relabel, process_builder};

pub const ADDRESS_LABEL: &str = "__address__";
pub const SCHEME_LABEL: &str = "__scheme__";
pub const METRICS_PATH_LABEL: &str = "__metrics_path__";
pub const SCRAPE_INTERVAL_LABEL: &str = "__scrape_interval__";
pub const SCRAPE_TIMEOUT_LABEL: &str = "__scrape_timeout__";
pub const PARAM_LABEL_PREFIX: &str = "__param_";
pub const META_LABEL_PREFIX: &str = "__meta_";

/// A group of targets from one discovery source, sharing `labels`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetGroup {
    /// Unique within its discoverer (a file name and index, a URL, …).
    pub source: String,
    pub targets: Vec<BTreeMap<String, String>>,
    pub labels: BTreeMap<String, String>,
}

/// A scrape config resolved against the global section, with its relabel rules compiled.
#[derive(Debug)]
pub struct ScrapeSettings {
    pub job_name: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub metrics_path: String,
    pub scheme: String,
    pub params: BTreeMap<String, Vec<String>>,
    pub honor_labels: bool,
    pub honor_timestamps: bool,
    pub track_timestamps_staleness: bool,
    pub sample_limit: u64,
    pub target_limit: u64,
    pub label_limit: u64,
    pub label_name_length_limit: u64,
    pub label_value_length_limit: u64,
    pub body_size_limit: u64,
    pub keep_dropped_targets: u64,
    pub enable_compression: bool,
    pub accept: String,
    pub fallback_protocol: Option<ScrapeProtocol>,
    pub histograms: argus_exposition::HistogramOptions,
    pub relabel: Vec<Relabel>,
    pub metric_relabel: Vec<Relabel>,
    /// The config it came from, to tell whether a reload changed it.
    pub source: ScrapeConfig,
}

impl ScrapeSettings {
    pub fn new(config: &ScrapeConfig, global: &GlobalConfig) -> Result<Self> {
        let job = &config.job_name;
        let protocols = |names: &[String]| -> Result<Vec<ScrapeProtocol>> {
            names
                .iter()
                .map(|n| {
                    ScrapeProtocol::parse(n).ok_or_else(|| {
                        Error::Config(format!("unknown scrape protocol {n:?} (job {job:?})"))
                    })
                })
                .collect()
        };
        let histograms = argus_exposition::HistogramOptions {
            native: config
                .scrape_native_histograms
                .or(global.scrape_native_histograms)
                .unwrap_or(false),
            keep_classic: config
                .always_scrape_classic_histograms
                .or(config.scrape_classic_histograms)
                .or(global.always_scrape_classic_histograms)
                .unwrap_or(false),
        };
        let protocols = match config
            .scrape_protocols
            .as_ref()
            .or(global.scrape_protocols.as_ref())
        {
            Some(names) => protocols(names)?,
            None if histograms.native => ScrapeProtocol::PROTO_FIRST.to_vec(),
            None => ScrapeProtocol::DEFAULT.to_vec(),
        };
        let fallback_protocol = match &config.fallback_scrape_protocol {
            Some(name) => Some(ScrapeProtocol::parse(name).ok_or_else(|| {
                Error::Config(format!(
                    "unknown fallback_scrape_protocol {name:?} (job {job:?})"
                ))
            })?),
            None => None,
        };
        let body_size_limit = match config
            .body_size_limit
            .as_ref()
            .or(global.body_size_limit.as_ref())
        {
            Some(s) => argus_config::parse_bytes(s)
                .map_err(|e| Error::Config(format!("body_size_limit: {e} (job {job:?})")))?,
            None => 0,
        };
        Ok(Self {
            job_name: job.clone(),
            interval: config.scrape_interval.unwrap_or(global.scrape_interval),
            timeout: config.scrape_timeout.unwrap_or(global.scrape_timeout),
            metrics_path: config.metrics_path.clone(),
            scheme: config.scheme.clone(),
            params: config.params.clone(),
            honor_labels: config.honor_labels,
            honor_timestamps: config.honor_timestamps,
            track_timestamps_staleness: config.track_timestamps_staleness,
            sample_limit: config.sample_limit.unwrap_or(global.sample_limit),
            target_limit: config.target_limit.unwrap_or(global.target_limit),
            label_limit: config.label_limit.unwrap_or(global.label_limit),
            label_name_length_limit: config
                .label_name_length_limit
                .unwrap_or(global.label_name_length_limit),
            label_value_length_limit: config
                .label_value_length_limit
                .unwrap_or(global.label_value_length_limit),
            body_size_limit,
            keep_dropped_targets: config
                .keep_dropped_targets
                .unwrap_or(global.keep_dropped_targets),
            enable_compression: config.enable_compression,
            accept: argus_exposition::accept_header(&protocols),
            fallback_protocol,
            histograms,
            relabel: Relabel::compile_all(&config.relabel_configs)?,
            metric_relabel: Relabel::compile_all(&config.metric_relabel_configs)?,
            source: config.clone(),
        })
    }
}

impl ScrapeSettings {
    /// True when `other` scrapes exactly like `self`: the same job config and the same
    /// values taken from the global section (a reload then leaves the pool alone).
    pub fn same_as(&self, other: &ScrapeSettings) -> bool {
        self.source == other.source
            && self.interval == other.interval
            && self.timeout == other.timeout
            && self.sample_limit == other.sample_limit
            && self.target_limit == other.target_limit
            && self.label_limit == other.label_limit
            && self.label_name_length_limit == other.label_name_length_limit
            && self.label_value_length_limit == other.label_value_length_limit
            && self.body_size_limit == other.body_size_limit
            && self.keep_dropped_targets == other.keep_dropped_targets
            && self.accept == other.accept
            && self.histograms == other.histograms
    }
}

/// The labels a target had before relabeling (Prometheus's `PopulateDiscoveredLabels`).
pub fn discovered_labels(
    settings: &ScrapeSettings,
    target: &BTreeMap<String, String>,
    group: &BTreeMap<String, String>,
) -> LabelsBuilder {
    let mut builder = LabelsBuilder::new();
    for (name, value) in group {
        builder.set(name, value);
    }
    for (name, value) in target {
        builder.set(name, value);
    }
    let interval = settings.interval.to_string();
    let timeout = settings.timeout.to_string();
    for (name, value) in [
        ("job", settings.job_name.as_str()),
        (SCRAPE_INTERVAL_LABEL, interval.as_str()),
        (SCRAPE_TIMEOUT_LABEL, timeout.as_str()),
        (METRICS_PATH_LABEL, settings.metrics_path.as_str()),
        (SCHEME_LABEL, settings.scheme.as_str()),
    ] {
        if builder.get(name).is_none() {
            builder.set(name, value);
        }
    }
    for (name, values) in &settings.params {
        let label = format!("{PARAM_LABEL_PREFIX}{name}");
        if let Some(first) = values.first()
            && builder.get(&label).is_none()
        {
            builder.set(&label, first);
        }
    }
    builder
}

/// Relabels discovered labels into a target's labels: `Ok(None)` when relabeling drops it,
/// an error when what is left cannot be scraped (Prometheus's messages).
pub fn populate_labels(
    settings: &ScrapeSettings,
    discovered: &Labels,
) -> std::result::Result<Option<Labels>, String> {
    let mut builder = discovered.to_builder();
    if !process_builder(&mut builder, &settings.relabel) {
        return Ok(None);
    }
    let Some(address) = builder.get(ADDRESS_LABEL).map(str::to_string) else {
        return Err("no address".into());
    };
    if address.contains('/') {
        return Err(format!("{address:?} is not a valid hostname"));
    }
    let interval = builder.get(SCRAPE_INTERVAL_LABEL).unwrap_or("").to_string();
    let interval_d =
        Duration::parse(&interval).map_err(|e| format!("error parsing scrape interval: {e}"))?;
    if interval_d.is_zero() {
        return Err("scrape interval cannot be 0".into());
    }
    let timeout = builder.get(SCRAPE_TIMEOUT_LABEL).unwrap_or("").to_string();
    let timeout_d =
        Duration::parse(&timeout).map_err(|e| format!("error parsing scrape timeout: {e}"))?;
    if timeout_d.is_zero() {
        return Err("scrape timeout cannot be 0".into());
    }
    if timeout_d > interval_d {
        return Err(format!(
            "scrape timeout cannot be greater than scrape interval ({timeout:?} > {interval:?})"
        ));
    }
    let meta: Vec<String> = builder
        .pairs()
        .filter(|(n, _)| n.starts_with(META_LABEL_PREFIX))
        .map(|(n, _)| n.to_string())
        .collect();
    for name in meta {
        builder.delete(&name);
    }
    if builder.get("instance").is_none() {
        builder.set("instance", &address);
    }
    Ok(Some(builder.build()))
}

/// How the last scrape of a target went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Unknown,
    Up,
    Down,
}

/// What the targets API shows about a target's last scrape.
#[derive(Debug, Clone)]
pub struct TargetStatus {
    pub health: Health,
    pub last_error: String,
    /// Start of the last scrape, Unix milliseconds (0 = never).
    pub last_scrape_ms: i64,
    pub last_scrape_duration_s: f64,
}

/// A target to scrape.
#[derive(Debug)]
pub struct Target {
    /// Labels after relabeling, including the `__` ones that steer the scrape.
    pub labels: Labels,
    pub discovered_labels: Labels,
    pub interval: Duration,
    pub timeout: Duration,
    pub url: String,
    pub status: Mutex<TargetStatus>,
}

impl Target {
    pub fn new(labels: Labels, discovered_labels: Labels, settings: &ScrapeSettings) -> Self {
        let duration_of = |name: &str, default: Duration| {
            labels
                .get(name)
                .and_then(|v| Duration::parse(v).ok())
                .unwrap_or(default)
        };
        Self {
            interval: duration_of(SCRAPE_INTERVAL_LABEL, settings.interval),
            timeout: duration_of(SCRAPE_TIMEOUT_LABEL, settings.timeout),
            url: scrape_url(&labels, &settings.params),
            labels,
            discovered_labels,
            status: Mutex::new(TargetStatus {
                health: Health::Unknown,
                last_error: String::new(),
                last_scrape_ms: 0,
                last_scrape_duration_s: 0.0,
            }),
        }
    }

    /// The labels the target adds to its samples: every label not starting with `__`.
    pub fn public_labels(&self) -> impl Iterator<Item = (&str, &str)> {
        self.labels
            .iter()
            .filter(|l| !l.name.starts_with("__"))
            .map(|l| (l.name, l.value))
    }

    /// [`Self::public_labels`] as a label set.
    pub fn public_label_set(&self) -> Labels {
        let pairs: Vec<(&str, &str)> = self.public_labels().collect();
        Labels::from_sorted_refs(&pairs).unwrap_or_default()
    }

    /// Identity within a pool: labels and URL (Prometheus's `Target.hash`).
    pub fn hash(&self) -> u64 {
        let mut h = xxhash_rust::xxh64::Xxh64::new(0);
        for l in self.labels.iter() {
            h.update(l.name.as_bytes());
            h.update(&[0xff]);
            h.update(l.value.as_bytes());
            h.update(&[0xff]);
        }
        h.update(self.url.as_bytes());
        h.digest()
    }

    /// Where in each interval this target is scraped: spread by its hash, pinned to absolute
    /// time so that every restart and every replica with the same seed picks the same phase.
    pub fn offset_ms(&self, now_ms: i64, seed: u64) -> i64 {
        let interval = self.interval.as_millis().max(1);
        let base = interval - now_ms.rem_euclid(interval);
        let offset = ((self.hash() ^ seed) % interval as u64) as i64;
        let next = base + offset;
        if next > interval {
            next - interval
        } else {
            next
        }
    }
}

/// `scheme://address/path?params`, the `__param_*` labels overriding the first value of a
/// configured parameter (Prometheus's `Target.URL`).
pub fn scrape_url(labels: &Labels, config_params: &BTreeMap<String, Vec<String>>) -> String {
    let mut params = config_params.clone();
    for l in labels.iter() {
        if let Some(key) = l.name.strip_prefix(PARAM_LABEL_PREFIX) {
            match params.get_mut(key) {
                Some(values) if !values.is_empty() => values[0] = l.value.to_string(),
                _ => {
                    params.insert(key.to_string(), vec![l.value.to_string()]);
                }
            }
        }
    }
    let mut url = format!(
        "{}://{}{}",
        labels.get(SCHEME_LABEL).unwrap_or("http"),
        labels.get(ADDRESS_LABEL).unwrap_or(""),
        labels.get(METRICS_PATH_LABEL).unwrap_or("")
    );
    let mut first = true;
    for (key, values) in &params {
        for value in values {
            url.push(if first { '?' } else { '&' });
            first = false;
            url.push_str(&query_escape(key));
            url.push('=');
            url.push_str(&query_escape(value));
        }
    }
    url
}

/// Go's `url.QueryEscape`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A target relabeling dropped (kept for the targets API, up to `keep_dropped_targets`).
#[derive(Debug, Clone)]
pub struct DroppedTarget {
    pub discovered_labels: Labels,
}

/// Shared handle to a target.
pub type TargetRef = Arc<Target>;

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(yaml: &str) -> ScrapeSettings {
        let config = argus_config::parse_str(yaml, "test.yml").expect("config parses");
        ScrapeSettings::new(&config.scrape_configs[0], &config.global).expect("settings")
    }

    fn group(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn populate_fills_defaults_and_relabels() {
        let s = settings(
            "global: {scrape_interval: 30s}\nscrape_configs:\n- job_name: node\n  params: {module: [http_2xx, x]}\n  relabel_configs:\n  - source_labels: [__meta_zone]\n    target_label: zone\n",
        );
        let discovered = discovered_labels(
            &s,
            &group(&[("__address__", "10.0.0.1:9100"), ("__meta_zone", "eu")]),
            &group(&[("env", "prod"), ("__address__", "ignored")]),
        )
        .build();
        assert_eq!(discovered.get("__scrape_interval__"), Some("30s"));
        assert_eq!(discovered.get("__scrape_timeout__"), Some("10s"));
        assert_eq!(discovered.get("__param_module"), Some("http_2xx"));
        assert_eq!(discovered.get("__address__"), Some("10.0.0.1:9100"));
        let labels = populate_labels(&s, &discovered).unwrap().unwrap();
        assert_eq!(labels.get("zone"), Some("eu"));
        assert_eq!(labels.get("__meta_zone"), None);
        assert_eq!(labels.get("instance"), Some("10.0.0.1:9100"));
        assert_eq!(labels.get("job"), Some("node"));
        let target = Target::new(labels, discovered, &s);
        assert_eq!(
            target.url,
            "http://10.0.0.1:9100/metrics?module=http_2xx&module=x"
        );
        let public: Vec<_> = target.public_labels().map(|(n, _)| n).collect();
        assert_eq!(public, vec!["env", "instance", "job", "zone"]);
    }

    #[test]
    fn populate_errors_and_drops() {
        let s = settings(
            "scrape_configs:\n- job_name: j\n  relabel_configs:\n  - source_labels: [drop]\n    regex: yes\n    action: drop\n",
        );
        let d = |pairs: &[(&str, &str)]| discovered_labels(&s, &group(pairs), &group(&[])).build();
        assert_eq!(populate_labels(&s, &d(&[])), Err("no address".into()));
        assert_eq!(
            populate_labels(&s, &d(&[("__address__", "a/b")])),
            Err("\"a/b\" is not a valid hostname".into())
        );
        assert_eq!(
            populate_labels(&s, &d(&[("__address__", "a:1"), ("drop", "yes")])),
            Ok(None)
        );
        assert_eq!(
            populate_labels(
                &s,
                &d(&[("__address__", "a:1"), ("__scrape_timeout__", "2m")])
            ),
            Err("scrape timeout cannot be greater than scrape interval (\"2m\" > \"1m\")".into())
        );
        assert!(
            populate_labels(
                &s,
                &d(&[("__address__", "a:1"), ("__scrape_interval__", "x")])
            )
            .unwrap_err()
            .starts_with("error parsing scrape interval")
        );
    }

    #[test]
    fn param_labels_override_config_params_and_are_escaped() {
        let labels = Labels::from_pairs(&[
            ("__address__", "h:1"),
            ("__scheme__", "https"),
            ("__metrics_path__", "/probe"),
            ("__param_target", "http://x y/?a=b"),
        ]);
        let mut params = BTreeMap::new();
        params.insert("target".to_string(), vec!["old".to_string()]);
        assert_eq!(
            scrape_url(&labels, &params),
            "https://h:1/probe?target=http%3A%2F%2Fx+y%2F%3Fa%3Db"
        );
    }

    #[test]
    fn offsets_are_deterministic_and_within_the_interval() {
        let s = settings("scrape_configs:\n- job_name: j\n");
        let mk = |addr: &str| {
            let d = discovered_labels(&s, &group(&[("__address__", addr)]), &group(&[])).build();
            Target::new(populate_labels(&s, &d).unwrap().unwrap(), d, &s)
        };
        let a = mk("a:1");
        let b = mk("b:1");
        let now = 1_700_000_000_123;
        assert_eq!(a.offset_ms(now, 7), mk("a:1").offset_ms(now, 7));
        for t in [&a, &b] {
            let o = t.offset_ms(now, 7);
            assert!((0..=60_000).contains(&o), "{o}");
            // Pinned to absolute time: the phase within the interval does not move.
            assert_eq!(
                (now + o) % 60_000,
                (now + 5_000 + t.offset_ms(now + 5_000, 7)) % 60_000
            );
        }
        assert_ne!(a.offset_ms(now, 7), b.offset_ms(now, 7));
    }
}
