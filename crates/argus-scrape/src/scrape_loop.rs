//! One target's scrape loop: fetch on a fixed phase of the interval, parse, relabel, append
//! through one TSDB appender (committed whole or not at all), write stale markers for series
//! that went away, and report `up`, `scrape_duration_seconds`, `scrape_samples_scraped`,
//! `scrape_samples_post_metric_relabeling` and `scrape_series_added`.
//!
//! The series cache maps the raw bytes of a series as the target writes it to the stored
//! series, so a known series costs a hash lookup: labels are only built, relabeled and
//! checked against the limits the first time a series shows up.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use argus_exposition::{Entry, MediaType, MetricType, ScrapeParser};
use argus_model::{Labels, stale_nan};
use argus_tsdb::Db;
use argus_tsdb::head::MemSeries;
use parking_lot::Mutex;

use crate::metrics::ScrapeMetrics;
use crate::relabel::process_builder;
use crate::target::{Health, ScrapeSettings, Target};

/// HELP/TYPE/UNIT a target exposed for one metric family.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    pub metric_type: MetricType,
    pub help: String,
    pub unit: String,
    /// The scrape attempt that last wrote it: the first HELP/TYPE/UNIT line of a family in
    /// a scrape clears what an earlier scrape left.
    iter: u32,
}

/// Overwrites `field` with `value`, reusing its allocation.
fn assign(field: &mut String, value: &str) {
    if field != value {
        field.clear();
        field.push_str(value);
    }
}

/// 16 bytes, so that a map slot with its key is 32 (the cache is per scraped series).
struct CacheEntry {
    series: Arc<MemSeries>,
    /// The scrape iteration that last saw the series (compared for equality only, so
    /// wrapping is harmless).
    last_iter: u32,
    /// False for a sample with its own timestamp (no staleness unless tracked).
    track: bool,
    /// Part of the last successful scrape (owed a stale marker if it goes away).
    good: bool,
}

/// Hasher for keys that are already 128-bit hashes (as two `u64`s: a `u128` key would be
/// 16-byte aligned and pad every slot).
#[derive(Default)]
struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for (i, b) in bytes.iter().take(8).enumerate() {
            self.0 ^= u64::from(*b) << (8 * i);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 ^= v;
    }
}

/// The 128-bit xxh3 of a series' raw bytes, split in two.
type Key = (u64, u64);

fn cache_key(series: &[u8]) -> Key {
    let h = xxhash_rust::xxh3::xxh3_128(series);
    ((h >> 64) as u64, h as u64)
}

type KeyMap<V> = HashMap<Key, V, std::hash::BuildHasherDefault<KeyHasher>>;

/// What survives between scrapes of one target (and across a reload of its config).
#[derive(Default)]
pub struct LoopState {
    /// Keyed by the 128-bit xxh3 of the series' raw bytes (a collision is as likely as
    /// two random UUIDs matching), so the cache holds no copy of the text.
    series: KeyMap<CacheEntry>,
    /// Series that metric relabeling drops, so they are not relabeled again.
    dropped: KeyMap<u32>,
    iter: u32,
    /// The series of [`REPORT_NAMES`], once the first report created them.
    report: [Option<Arc<MemSeries>>; 5],
    pub metadata: HashMap<String, Metadata>,
}

/// The synthetic series written after every scrape, in the order of [`LoopState::report`]'s
/// values.
const REPORT_NAMES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

/// Counts of one scrape, as reported in the synthetic series.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AppendStats {
    pub scraped: u64,
    pub post_relabel: u64,
    pub series_added: u64,
}

/// Prometheus's `mutateSampleLabels`: target labels added (or, with `honor_labels`, only
/// where the sample lacks them; otherwise clashing sample labels move to `exported_*`), then
/// metric relabeling.
pub fn mutate_sample_labels(
    sample: &Labels,
    target: &Target,
    settings: &ScrapeSettings,
) -> Option<Labels> {
    let mut builder = sample.to_builder();
    if settings.honor_labels {
        for (name, value) in target.public_labels() {
            if sample.get(name).is_none() {
                builder.set(name, value);
            }
        }
    } else {
        let mut conflicts: Vec<(&str, &str)> = Vec::new();
        for (name, value) in target.public_labels() {
            if let Some(existing) = sample.get(name) {
                conflicts.push((name, existing));
            }
            builder.set(name, value);
        }
        conflicts.sort_by_key(|(name, _)| name.len());
        for (name, value) in conflicts {
            let mut new_name = name.to_string();
            loop {
                new_name = format!("exported_{new_name}");
                if builder.get(&new_name).is_none() {
                    builder.set(&new_name, value);
                    break;
                }
            }
        }
    }
    process_builder(&mut builder, &settings.metric_relabel).then(|| builder.build())
}

/// Prometheus's label limits, checked on new series.
fn check_label_limits(labels: &Labels, settings: &ScrapeSettings) -> Result<(), String> {
    // Go's `%.50s`: at most 50 characters.
    let short = |s: &str| -> String { s.chars().take(50).collect() };
    if settings.label_limit > 0 && labels.len() as u64 > settings.label_limit {
        return Err(format!(
            "label_limit exceeded (metric: {}, number of labels: {}, limit: {})",
            short(labels.metric_name()),
            labels.len(),
            settings.label_limit
        ));
    }
    if settings.label_name_length_limit == 0 && settings.label_value_length_limit == 0 {
        return Ok(());
    }
    for l in labels.iter() {
        if settings.label_name_length_limit > 0
            && l.name.len() as u64 > settings.label_name_length_limit
        {
            return Err(format!(
                "label_name_length_limit exceeded (metric: {}, label name: {}, length: {}, limit: {})",
                short(labels.metric_name()),
                short(l.name),
                l.name.len(),
                settings.label_name_length_limit
            ));
        }
        if settings.label_value_length_limit > 0
            && l.value.len() as u64 > settings.label_value_length_limit
        {
            return Err(format!(
                "label_value_length_limit exceeded (metric: {}, label name: {}, value: {}, length: {}, limit: {})",
                short(labels.metric_name()),
                short(l.name),
                argus_model::gofmt::quote(&short(l.value)),
                l.value.len(),
                settings.label_value_length_limit
            ));
        }
    }
    Ok(())
}

/// A scraped sample's value.
enum Value {
    Float(f64),
    Histogram(Box<argus_model::FloatHistogram>),
}

impl LoopState {
    /// Parses `body` and appends it at `t_ms`; on any error nothing of it is stored.
    #[allow(clippy::too_many_arguments)]
    pub fn append_scrape(
        &mut self,
        db: &Db,
        target: &Target,
        settings: &ScrapeSettings,
        metrics: &ScrapeMetrics,
        body: &[u8],
        media: MediaType,
        t_ms: i64,
    ) -> Result<AppendStats, String> {
        self.iter = self.iter.wrapping_add(1);
        let mut stats = AppendStats::default();
        let mut parser = ScrapeParser::new(body, media, settings.histograms);
        let mut appender = db.appender();
        let (mut out_of_order, mut duplicate, mut out_of_bounds) = (0u64, 0u64, 0u64);
        while let Some(entry) = parser.next() {
            let entry = entry.map_err(|e| e.to_string())?;
            let (series_key, value, explicit_ts) = match entry {
                Entry::Series {
                    series,
                    value,
                    timestamp_ms,
                } => (series, Value::Float(value), timestamp_ms),
                Entry::Histogram {
                    series,
                    histogram,
                    timestamp_ms,
                } => (series, Value::Histogram(histogram), timestamp_ms),
                Entry::Help { name, help } => {
                    self.update_metadata(&name, |m| assign(&mut m.help, &help));
                    continue;
                }
                Entry::Type { name, metric_type } => {
                    self.update_metadata(&name, |m| m.metric_type = metric_type);
                    continue;
                }
                Entry::Unit { name, unit } => {
                    self.update_metadata(&name, |m| assign(&mut m.unit, &unit));
                    continue;
                }
            };
            stats.scraped += 1;
            let t = match explicit_ts {
                Some(ts) if settings.honor_timestamps => ts,
                _ => t_ms,
            };
            // Samples with their own timestamp get no stale markers unless tracked.
            let track = explicit_ts.is_none()
                || !settings.honor_timestamps
                || settings.track_timestamps_staleness;
            let key = cache_key(series_key);
            let series = match self.series.get_mut(&key) {
                Some(entry) if !entry.series.removed.load(Ordering::Relaxed) => {
                    entry.last_iter = self.iter;
                    entry.track = track;
                    entry.series.clone()
                }
                _ => {
                    if let Some(iter) = self.dropped.get_mut(&key) {
                        *iter = self.iter;
                        continue;
                    }
                    let parsed = parser.labels().map_err(|e| e.to_string())?;
                    let Some(labels) = mutate_sample_labels(&parsed, target, settings) else {
                        self.dropped.insert(key, self.iter);
                        continue;
                    };
                    if labels.metric_name().is_empty() {
                        return Err("missing metric name (__name__ label)".into());
                    }
                    check_label_limits(&labels, settings)?;
                    let series = db.head.get_or_create(&labels);
                    let good = match self.series.get(&key) {
                        Some(old) => old.good,
                        None => {
                            stats.series_added += 1;
                            false
                        }
                    };
                    self.series.insert(
                        key,
                        CacheEntry {
                            series: series.clone(),
                            last_iter: self.iter,
                            track,
                            good,
                        },
                    );
                    series
                }
            };
            stats.post_relabel += 1;
            if settings.sample_limit > 0 && stats.post_relabel > settings.sample_limit {
                metrics
                    .exceeded_sample_limit
                    .fetch_add(1, Ordering::Relaxed);
                return Err("sample limit exceeded".into());
            }
            if db.exemplars.enabled() {
                for e in parser.exemplars() {
                    // Refused ones (out of order, too long) cost nothing but the counter.
                    let _ = appender.append_exemplar(
                        series.clone(),
                        argus_tsdb::exemplars::Exemplar {
                            labels: e.labels,
                            value: e.value,
                            ts: e.timestamp_ms.unwrap_or(t),
                        },
                    );
                }
            }
            let appended = match value {
                Value::Float(v) => appender.append_to(series, t, v),
                Value::Histogram(h) => appender.append_histogram_to(series, t, *h),
            };
            match appended {
                Ok(()) => {}
                Err(argus_tsdb::Error::OutOfOrderSample) => out_of_order += 1,
                Err(argus_tsdb::Error::DuplicateSampleForTimestamp) => duplicate += 1,
                Err(argus_tsdb::Error::OutOfBounds | argus_tsdb::Error::TooOldSample) => {
                    out_of_bounds += 1
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        // Series of the previous scrape that are gone now: stale markers. Refused markers
        // (a newer sample exists) are expected and ignored.
        let iter = self.iter;
        for entry in self.series.values() {
            if entry.good && entry.track && entry.last_iter != iter {
                let _ = appender.append_to(entry.series.clone(), t_ms, stale_nan());
            }
        }
        appender.commit().map_err(|e| e.to_string())?;
        metrics
            .sample_out_of_order
            .fetch_add(out_of_order, Ordering::Relaxed);
        metrics
            .sample_duplicate_timestamp
            .fetch_add(duplicate, Ordering::Relaxed);
        metrics
            .sample_out_of_bounds
            .fetch_add(out_of_bounds, Ordering::Relaxed);
        self.series.retain(|_, e| {
            e.good = true;
            e.last_iter == iter
        });
        self.dropped.retain(|_, i| *i == iter);
        Ok(stats)
    }

    /// Applies one metadata line of the current scrape to the family's entry, without
    /// allocating for a family and text already known.
    fn update_metadata(&mut self, family: &str, set: impl FnOnce(&mut Metadata)) {
        let iter = self.iter;
        match self.metadata.get_mut(family) {
            Some(meta) => {
                if meta.iter != iter {
                    meta.iter = iter;
                    meta.metric_type = MetricType::Unknown;
                    meta.help.clear();
                    meta.unit.clear();
                }
                set(meta);
            }
            None => {
                let mut meta = Metadata {
                    iter,
                    ..Metadata::default()
                };
                set(&mut meta);
                self.metadata.insert(family.to_string(), meta);
            }
        }
    }

    /// Stale markers at `t_ms` for every series of the last successful scrape (a failed
    /// scrape, a target that went away, shutdown).
    pub fn mark_all_stale(&mut self, db: &Db, t_ms: i64) {
        let mut appender = db.appender();
        for entry in self.series.values().filter(|e| e.good && e.track) {
            let _ = appender.append_to(entry.series.clone(), t_ms, stale_nan());
        }
        if let Err(e) = appender.commit() {
            tracing::warn!(error = %e, "writing stale markers");
        }
        // Everything starts over: the next scrape re-parses its series.
        self.series.clear();
        self.dropped.clear();
    }

    /// Stale markers for everything the loop wrote, report series included (nothing when it
    /// never scraped).
    pub fn end_of_run(&mut self, db: &Db, target: &Target, t_ms: i64) {
        if self.report[0].is_none() {
            return;
        }
        self.mark_all_stale(db, t_ms);
        self.report(db, target, t_ms, None);
    }

    /// Appends the synthetic series of one scrape (or their stale markers).
    pub fn report(
        &mut self,
        db: &Db,
        target: &Target,
        t_ms: i64,
        outcome: Option<(bool, f64, AppendStats)>,
    ) {
        let values = match outcome {
            Some((up, duration, stats)) => [
                if up { 1.0 } else { 0.0 },
                duration,
                stats.scraped as f64,
                stats.post_relabel as f64,
                stats.series_added as f64,
            ],
            None => [stale_nan(); 5],
        };
        let mut appender = db.appender();
        for ((name, value), slot) in REPORT_NAMES.into_iter().zip(values).zip(&mut self.report) {
            let series = match slot {
                Some(s) if !s.removed.load(Ordering::Relaxed) => s.clone(),
                _ => {
                    let mut builder = target.public_label_set().to_builder();
                    builder.set(argus_model::labels::METRIC_NAME, name);
                    let series = db.head.get_or_create(&builder.build());
                    *slot = Some(series.clone());
                    series
                }
            };
            let _ = appender.append_to(series, t_ms, value);
        }
        if let Err(e) = appender.commit() {
            tracing::warn!(error = %e, "appending scrape report");
        }
    }
}

/// Why a loop stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The target went away: stale markers after the next would-be scrape.
    Removed,
    /// The server shuts down: stale markers now.
    Shutdown,
    /// Replaced by a loop with new settings that takes over the state: no stale markers.
    Handover,
}

/// The `Content-Type` of a 200 answer; any other status is an error, worded as Prometheus
/// words it.
pub fn ok_content_type(response: &reqwest::Response) -> Result<Option<String>, String> {
    let status = response.status();
    if status != reqwest::StatusCode::OK {
        return Err(format!("server returned HTTP status {status}"));
    }
    Ok(response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string))
}

/// A failed request's error as Go's HTTP client words it (`Get "…": dial tcp …: connect:
/// connection refused`, `… context deadline exceeded`, `… tls: failed to verify
/// certificate: x509: …`).
pub fn describe_error(url: &str, e: &reqwest::Error) -> String {
    if e.is_timeout() {
        format!("Get {url:?}: context deadline exceeded")
    } else {
        let mut source: &dyn std::error::Error = e;
        while let Some(inner) = source.source() {
            source = inner;
        }
        let host = url
            .split_once("://")
            .map_or(url, |(_, rest)| rest)
            .split('/')
            .next()
            .unwrap_or("");
        // Go's wording for the common network failures.
        let io_kind = source
            .downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind);
        match io_kind {
            Some(std::io::ErrorKind::ConnectionRefused) => {
                format!("Get {url:?}: dial tcp {host}: connect: connection refused")
            }
            Some(std::io::ErrorKind::ConnectionReset) => {
                format!("Get {url:?}: read tcp {host}: read: connection reset by peer")
            }
            _ => match crate::tls::go_error_text(source) {
                Some(text) => format!("Get {url:?}: {text}"),
                None => format!("Get {url:?}: {source}"),
            },
        }
    }
}

/// Fetches a target's exposition: `(body, content type)`, or the error as Prometheus words
/// it.
pub async fn fetch(
    client: &reqwest::Client,
    target: &Target,
    settings: &ScrapeSettings,
    metrics: &ScrapeMetrics,
) -> Result<(Vec<u8>, Option<String>), String> {
    let timeout = target.timeout.as_std();
    let url = &target.url;
    let request = client
        .get(url)
        .header(reqwest::header::ACCEPT, &settings.accept)
        .header(
            "X-Prometheus-Scrape-Timeout-Seconds",
            argus_model::gofmt::format_g(target.timeout.as_secs_f64()),
        )
        .timeout(timeout);
    let request = match auth_header(&settings.source.http).await? {
        Some(value) => request.header(reqwest::header::AUTHORIZATION, value),
        None => request,
    };
    let request = if settings.enable_compression {
        request
    } else {
        request.header(reqwest::header::ACCEPT_ENCODING, "identity")
    };
    let describe = |e: &reqwest::Error| describe_error(url, e);
    let mut response = request.send().await.map_err(|e| describe(&e))?;
    let content_type = ok_content_type(&response)?;
    let limit = settings.body_size_limit;
    // Sized once from Content-Length (capped: the header is the target's claim, not a fact).
    let expected =
        response
            .content_length()
            .unwrap_or(0)
            .min(if limit > 0 { limit } else { 64 << 20 });
    let mut body = Vec::with_capacity(expected as usize);
    while let Some(chunk) = response.chunk().await.map_err(|e| describe(&e))? {
        if limit > 0 && (body.len() + chunk.len()) as u64 > limit {
            metrics
                .exceeded_body_size_limit
                .fetch_add(1, Ordering::Relaxed);
            return Err("body size limit exceeded".into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, content_type))
}

/// A credentials file's content, read off the async workers.
async fn read_secret(path: &str) -> Result<String, String> {
    tokio::fs::read_to_string(path)
        .await
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("unable to read {path}: {e}"))
}

/// The `Authorization` header for a scrape config's credentials (files are read on every
/// request, as Prometheus does, so rotated secrets are picked up).
pub async fn auth_header(
    http: &argus_config::http::HttpClientConfig,
) -> Result<Option<String>, String> {
    if let Some(basic) = &http.basic_auth {
        let user = match &basic.username_file {
            Some(f) => read_secret(f).await?,
            None => basic.username.clone(),
        };
        let password = match (&basic.password, &basic.password_file) {
            (Some(p), _) => p.0.clone(),
            (None, Some(f)) => read_secret(f).await?,
            (None, None) => String::new(),
        };
        return Ok(Some(format!(
            "Basic {}",
            base64(format!("{user}:{password}").as_bytes())
        )));
    }
    if let Some(auth) = &http.authorization {
        let kind = auth.kind.clone().unwrap_or_else(|| "Bearer".into());
        let credentials = match (&auth.credentials, &auth.credentials_file) {
            (Some(c), _) => c.0.clone(),
            (None, Some(f)) => read_secret(f).await?,
            (None, None) => String::new(),
        };
        return Ok(Some(format!("{kind} {credentials}")));
    }
    match (&http.bearer_token, &http.bearer_token_file) {
        (Some(t), _) => Ok(Some(format!("Bearer {}", t.0))),
        (None, Some(f)) => Ok(Some(format!("Bearer {}", read_secret(f).await?))),
        (None, None) => Ok(None),
    }
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Runs one scrape and records its outcome (samples, report, target status).
pub async fn scrape_once(
    db: &Arc<Db>,
    client: &reqwest::Client,
    target: &Arc<Target>,
    settings: &Arc<ScrapeSettings>,
    state: &Arc<Mutex<LoopState>>,
    metrics: &Arc<ScrapeMetrics>,
    forced_error: Option<String>,
) {
    let start = Instant::now();
    let t_ms = argus_model::time::now_ms();
    let fetched = match forced_error {
        Some(e) => Err(e),
        None => fetch(client, target, settings, metrics).await,
    };
    let (db2, target2, settings2, state2, metrics2) = (
        db.clone(),
        target.clone(),
        settings.clone(),
        state.clone(),
        metrics.clone(),
    );
    let outcome = tokio::task::spawn_blocking(move || {
        let mut state = state2.lock();
        let result = fetched.and_then(|(body, content_type)| {
            let (media, warning) =
                argus_exposition::media_type(content_type.as_deref(), settings2.fallback_protocol)
                    .map_err(|e| e.to_string())?;
            if let Some(warning) = warning {
                tracing::debug!(target = %target2.url, warning, "scrape content type");
            }
            state.append_scrape(&db2, &target2, &settings2, &metrics2, &body, media, t_ms)
        });
        let duration = start.elapsed().as_secs_f64();
        let (up, stats, error) = match result {
            Ok(stats) => (true, stats, String::new()),
            Err(e) => {
                // Nothing of the failed scrape was stored; what the target exposed before
                // is now stale.
                state.mark_all_stale(&db2, t_ms);
                (false, AppendStats::default(), e)
            }
        };
        state.report(&db2, &target2, t_ms, Some((up, duration, stats)));
        (up, duration, error)
    })
    .await;
    let (up, duration, error) = match outcome {
        Ok(o) => o,
        Err(e) => (false, start.elapsed().as_secs_f64(), e.to_string()),
    };
    let mut status = target.status.lock();
    status.health = if up { Health::Up } else { Health::Down };
    status.last_error = error;
    status.last_scrape_ms = t_ms;
    status.last_scrape_duration_s = duration;
}

/// Writes stale markers for everything a loop wrote, report series included.
pub async fn write_end_of_run_staleness(
    db: &Arc<Db>,
    target: &Arc<Target>,
    state: &Arc<Mutex<LoopState>>,
    t_ms: i64,
) {
    let (db, target, state) = (db.clone(), target.clone(), state.clone());
    let _ = tokio::task::spawn_blocking(move || state.lock().end_of_run(&db, &target, t_ms)).await;
}

#[cfg(test)]
mod tests;
