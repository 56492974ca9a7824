//! `/api/v1/targets`, `/api/v1/scrape_pools`, `/api/v1/targets/metadata` and
//! `/api/v1/metadata`, from the scrape manager, in Prometheus's JSON shapes.

use std::collections::BTreeMap;

use argus_model::Matcher;
use argus_scrape::ScrapeManager;
use argus_scrape::target::Health;
use serde::Serialize;
use serde_json::{Value, json};

use crate::api::ApiError;
use crate::params::Params;

fn last_scrape_time(ms: i64) -> String {
    if ms == 0 {
        "0001-01-01T00:00:00Z".to_string()
    } else {
        argus_model::time::format_rfc3339_millis(ms)
    }
}

/// One active target, fields in Prometheus's order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActiveTarget {
    discovered_labels: argus_model::Labels,
    labels: argus_model::Labels,
    scrape_pool: String,
    scrape_url: String,
    global_url: String,
    last_error: String,
    last_scrape: String,
    last_scrape_duration: f64,
    health: &'static str,
    scrape_interval: String,
    scrape_timeout: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DroppedTarget {
    discovered_labels: argus_model::Labels,
    scrape_pool: String,
}

/// `/api/v1/targets` data, keys in Prometheus's order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetsData {
    active_targets: Vec<ActiveTarget>,
    dropped_targets: Vec<DroppedTarget>,
    dropped_target_counts: BTreeMap<String, u64>,
}

/// `/api/v1/targets` data.
pub fn targets(manager: &ScrapeManager, p: &Params) -> TargetsData {
    let state = p.get("state").unwrap_or("").to_ascii_lowercase();
    let pool = p.get("scrapePool").filter(|s| !s.is_empty());
    let show_active = matches!(state.as_str(), "" | "any" | "active");
    let show_dropped = matches!(state.as_str(), "" | "any" | "dropped");
    let mut active = Vec::new();
    if show_active {
        for view in manager.active_targets() {
            if pool.is_some_and(|p| p != view.pool) {
                continue;
            }
            let t = &view.target;
            let status = t.status.lock().clone();
            let entry = ActiveTarget {
                discovered_labels: t.discovered_labels.clone(),
                labels: t.public_label_set(),
                scrape_pool: view.pool.clone(),
                scrape_url: t.url.clone(),
                global_url: t.url.clone(),
                last_error: status.last_error,
                last_scrape: last_scrape_time(status.last_scrape_ms),
                last_scrape_duration: status.last_scrape_duration_s,
                health: match status.health {
                    Health::Up => "up",
                    Health::Down => "down",
                    Health::Unknown => "unknown",
                },
                scrape_interval: t.interval.to_string(),
                scrape_timeout: t.timeout.to_string(),
            };
            active.push(entry);
        }
    }
    let mut dropped = Vec::new();
    let mut dropped_counts: BTreeMap<String, u64> = BTreeMap::new();
    for (job, d) in manager.dropped_targets() {
        if pool.is_some_and(|p| p != job) {
            continue;
        }
        *dropped_counts.entry(job.clone()).or_default() += 1;
        if show_dropped {
            dropped.push(DroppedTarget {
                discovered_labels: d.discovered_labels.clone(),
                scrape_pool: job.clone(),
            });
        }
    }
    for job in manager.scrape_pools() {
        if pool.is_none_or(|p| p == job) {
            dropped_counts.entry(job).or_default();
        }
    }
    TargetsData {
        active_targets: active,
        dropped_targets: dropped,
        dropped_target_counts: dropped_counts,
    }
}

pub fn scrape_pools(manager: &ScrapeManager) -> Value {
    json!({ "scrapePools": manager.scrape_pools() })
}

fn target_matchers(p: &Params) -> Result<Vec<Matcher>, ApiError> {
    match p.get("match_target") {
        None | Some("") => Ok(Vec::new()),
        Some(s) => argus_promql::parser::parse_metric_selector(s)
            .map_err(|e| ApiError::bad_data(format!("invalid parameter \"match_target\": {e}"))),
    }
}

fn optional_limit(p: &Params, key: &str) -> Result<Option<usize>, ApiError> {
    match p.get(key) {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse::<i64>()
            .map(|n| usize::try_from(n).ok())
            .map_err(|_| ApiError::bad_data(format!("{key} must be a number"))),
    }
}

#[derive(Serialize, PartialEq, Eq, Clone)]
struct MetadataEntry {
    #[serde(rename = "type")]
    metric_type: &'static str,
    help: String,
    unit: String,
}

/// One `/api/v1/targets/metadata` entry, fields in Prometheus's order; `metric` is left out
/// when the request named it.
#[derive(Serialize)]
pub struct TargetMetadata {
    target: argus_model::Labels,
    #[serde(skip_serializing_if = "Option::is_none")]
    metric: Option<String>,
    #[serde(rename = "type")]
    metric_type: &'static str,
    help: String,
    unit: String,
}

/// `/api/v1/targets/metadata` data.
pub fn targets_metadata(
    manager: &ScrapeManager,
    p: &Params,
) -> Result<Vec<TargetMetadata>, ApiError> {
    let matchers = target_matchers(p)?;
    let metric = p.get("metric").filter(|m| !m.is_empty());
    let limit = optional_limit(p, "limit")?;
    let mut out = Vec::new();
    for (target, metadata) in manager.target_metadata() {
        let labels = target.public_label_set();
        if !matchers
            .iter()
            .all(|m| m.matches(labels.get(&m.name).unwrap_or("")))
        {
            continue;
        }
        let mut names: Vec<&String> = metadata.keys().collect();
        names.sort();
        for name in names {
            if metric.is_some_and(|m| m != name) {
                continue;
            }
            let md = &metadata[name];
            out.push(TargetMetadata {
                target: labels.clone(),
                metric: metric.is_none().then(|| name.clone()),
                metric_type: md.metric_type.as_str(),
                help: md.help.clone(),
                unit: md.unit.clone(),
            });
        }
    }
    if let Some(limit) = limit {
        out.truncate(limit);
    }
    Ok(out)
}

/// `/api/v1/metadata` data: each metric's distinct metadata across targets.
pub fn metadata(manager: &ScrapeManager, p: &Params) -> Result<Value, ApiError> {
    let metric = p.get("metric").filter(|m| !m.is_empty());
    let limit = optional_limit(p, "limit")?;
    let per_metric = optional_limit(p, "limit_per_metric")?;
    let mut all: BTreeMap<String, Vec<MetadataEntry>> = BTreeMap::new();
    for (_, metadata) in manager.target_metadata() {
        for (name, md) in metadata {
            if metric.is_some_and(|m| m != name) {
                continue;
            }
            let entry = MetadataEntry {
                metric_type: md.metric_type.as_str(),
                help: md.help,
                unit: md.unit,
            };
            let list = all.entry(name).or_default();
            if !list.contains(&entry) {
                list.push(entry);
            }
        }
    }
    let mut out = serde_json::Map::new();
    for (name, mut entries) in all {
        if limit.is_some_and(|l| out.len() >= l) {
            break;
        }
        if let Some(n) = per_metric {
            entries.truncate(n);
        }
        out.insert(name, serde_json::to_value(entries).unwrap_or(Value::Null));
    }
    Ok(Value::Object(out))
}
