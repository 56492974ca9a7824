//! The scrape layer's self-monitoring, under Prometheus's metric names.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// How many observed intervals per configured interval feed the quantiles.
const INTERVAL_WINDOW: usize = 512;
const QUANTILES: [f64; 5] = [0.01, 0.05, 0.5, 0.9, 0.99];

#[derive(Debug, Default)]
pub struct ScrapeMetrics {
    pub sample_out_of_order: AtomicU64,
    pub sample_duplicate_timestamp: AtomicU64,
    pub sample_out_of_bounds: AtomicU64,
    pub exceeded_sample_limit: AtomicU64,
    pub exceeded_body_size_limit: AtomicU64,
    pub scrape_pools_total: AtomicU64,
    pub reloads_total: AtomicU64,
    /// Observed time between scrapes, per configured interval (`interval` label).
    intervals: Mutex<BTreeMap<String, IntervalSummary>>,
    /// Targets per job: discovered (`prometheus_sd_discovered_targets`) and active.
    pub targets: Mutex<BTreeMap<String, (u64, u64)>>,
}

#[derive(Debug, Default)]
struct IntervalSummary {
    recent: VecDeque<f64>,
    sum: f64,
    count: u64,
}

impl ScrapeMetrics {
    pub fn observe_interval(&self, configured: &str, seconds: f64) {
        let mut intervals = self.intervals.lock();
        if !intervals.contains_key(configured) {
            intervals.insert(configured.to_string(), IntervalSummary::default());
        }
        let Some(s) = intervals.get_mut(configured) else {
            return;
        };
        if s.recent.len() == INTERVAL_WINDOW {
            s.recent.pop_front();
        }
        s.recent.push_back(seconds);
        s.sum += seconds;
        s.count += 1;
    }
}

impl ScrapeMetrics {
    /// `prometheus_target_interval_length_seconds` as the OpenMetrics summary Prometheus
    /// exposes (quantiles over the recent intervals, sum and count over all time), written by
    /// hand: the metrics library has no summary type. Empty before the first scrape.
    pub fn interval_summary(&self) -> String {
        use std::fmt::Write as _;
        let g = argus_model::gofmt::format_g;
        let intervals = self.intervals.lock();
        if intervals.is_empty() {
            return String::new();
        }
        let name = "prometheus_target_interval_length_seconds";
        let mut out =
            format!("# HELP {name} Actual intervals between scrapes.\n# TYPE {name} summary\n");
        for (interval, stats) in intervals.iter() {
            let mut sorted: Vec<f64> = stats.recent.iter().copied().collect();
            sorted.sort_by(f64::total_cmp);
            let interval = argus_model::gofmt::quote(interval);
            for q in QUANTILES {
                let _ = writeln!(
                    out,
                    "{name}{{interval={interval},quantile=\"{q}\"}} {}",
                    g(quantile(&sorted, q))
                );
            }
            let _ = writeln!(out, "{name}_sum{{interval={interval}}} {}", g(stats.sum));
            let _ = writeln!(out, "{name}_count{{interval={interval}}} {}", stats.count);
        }
        out
    }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Registers [`ScrapeMetrics`] with a `prometheus-client` registry.
#[derive(Debug)]
pub struct ScrapeCollector(pub std::sync::Arc<ScrapeMetrics>);

impl Collector for ScrapeCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = &self.0;
        let counters = [
            (
                "prometheus_target_scrapes_sample_out_of_order",
                "Total number of samples rejected due to not being out of the expected order.",
                &m.sample_out_of_order,
            ),
            (
                "prometheus_target_scrapes_sample_duplicate_timestamp",
                "Total number of samples rejected due to duplicate timestamps but different values.",
                &m.sample_duplicate_timestamp,
            ),
            (
                "prometheus_target_scrapes_sample_out_of_bounds",
                "Total number of samples rejected due to timestamp falling outside of the time bounds.",
                &m.sample_out_of_bounds,
            ),
            (
                "prometheus_target_scrapes_exceeded_sample_limit",
                "Total number of scrapes that hit the sample limit and were rejected.",
                &m.exceeded_sample_limit,
            ),
            (
                "prometheus_target_scrapes_exceeded_body_size_limit",
                "Total number of scrapes that hit the body size limit",
                &m.exceeded_body_size_limit,
            ),
            (
                "prometheus_target_scrape_pools",
                "Total number of scrape pool creation attempts.",
                &m.scrape_pools_total,
            ),
            (
                "prometheus_target_scrape_pool_reloads",
                "Total number of scrape pool reloads.",
                &m.reloads_total,
            ),
        ];
        for (name, help, value) in counters {
            let e = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(value.load(Ordering::Relaxed)).encode(e)?;
        }
        let targets = m.targets.lock().clone();
        let mut e = enc.encode_descriptor(
            "prometheus_sd_discovered_targets",
            "Current number of discovered targets.",
            None,
            MetricType::Gauge,
        )?;
        for (job, (discovered, _)) in &targets {
            let labels = [("config", job.as_str()), ("name", "scrape")];
            ConstGauge::new(*discovered as i64).encode(e.encode_family(&labels)?)?;
        }
        let mut e = enc.encode_descriptor(
            "prometheus_target_scrape_pool_targets",
            "Current number of targets in this scrape pool.",
            None,
            MetricType::Gauge,
        )?;
        for (job, (_, active)) in &targets {
            let labels = [("scrape_job", job.as_str())];
            ConstGauge::new(*active as i64).encode(e.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
