//! Self-metrics of the storage engine under Prometheus's own names, so that existing
//! Prometheus dashboards and alerts work against Argus.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::Db;

/// Reads the database's counters at scrape time.
pub struct TsdbCollector(pub Arc<Db>);

impl std::fmt::Debug for TsdbCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TsdbCollector")
    }
}

fn load(v: &AtomicU64) -> u64 {
    v.load(Ordering::Relaxed)
}

fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    ConstCounter::new(v).encode(m)
}

fn typed_counter(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    let labels = vec![("type".to_string(), "float".to_string())];
    ConstCounter::new(v).encode(m.encode_family(&labels)?)
}

fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, v: f64) -> std::fmt::Result {
    let m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(v).encode(m)
}

impl Collector for TsdbCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let db = &self.0;
        let head = &db.head;
        let hs = &head.stats;
        let ds = &db.stats;
        gauge(
            &mut enc,
            "prometheus_tsdb_head_series",
            "Total number of series in the head block.",
            head.num_series() as f64,
        )?;
        let ex = &db.exemplars;
        let (stored, series_with) = ex.stats();
        counter(
            &mut enc,
            "prometheus_tsdb_exemplar_exemplars_appended",
            "Total number of appended exemplars.",
            load(&ex.appended),
        )?;
        gauge(
            &mut enc,
            "prometheus_tsdb_exemplar_exemplars_in_storage",
            "Number of exemplars currently in circular storage.",
            stored as f64,
        )?;
        gauge(
            &mut enc,
            "prometheus_tsdb_exemplar_series_with_exemplars_in_storage",
            "Number of series with exemplars currently in circular storage.",
            series_with as f64,
        )?;
        gauge(
            &mut enc,
            "prometheus_tsdb_exemplar_last_exemplars_timestamp_seconds",
            "Timestamp of the newest exemplar in the circular storage, in seconds.",
            load(&ex.last_ts) as f64 / 1000.0,
        )?;
        gauge(
            &mut enc,
            "prometheus_tsdb_exemplar_max_exemplars",
            "Total number of exemplars the exemplar storage can store, resizeable.",
            ex.capacity() as f64,
        )?;
        counter(
            &mut enc,
            "prometheus_tsdb_exemplar_out_of_order_exemplars",
            "Total number of out of order exemplar ingestion failed attempts.",
            load(&ex.out_of_order),
        )?;
        typed_counter(
            &mut enc,
            "prometheus_tsdb_head_samples_appended",
            "Total number of appended samples.",
            load(&hs.samples_appended),
        )?;
        counter(
            &mut enc,
            "prometheus_tsdb_head_series_created",
            "Total number of series created in the head",
            load(&hs.series_created),
        )?;
        counter(
            &mut enc,
            "prometheus_tsdb_head_series_removed",
            "Total number of series removed in the head",
            load(&hs.series_removed),
        )?;
        counter(
            &mut enc,
            "prometheus_tsdb_head_truncations",
            "Total number of head truncations attempted.",
            load(&ds.head_truncations),
        )?;
        let (min, max) = (head.min_time(), head.max_time());
        gauge(
            &mut enc,
            "prometheus_tsdb_head_min_time",
            "Minimum time bound of the head block.",
            if min == i64::MAX {
                f64::from(0)
            } else {
                min as f64
            },
        )?;
        gauge(
            &mut enc,
            "prometheus_tsdb_head_max_time",
            "Maximum timestamp of the head block.",
            if max == i64::MIN {
                f64::from(0)
            } else {
                max as f64
            },
        )?;
        typed_counter(
            &mut enc,
            "prometheus_tsdb_out_of_order_samples",
            "Total number of out of order samples ingestion failed attempts due to out of order being disabled.",
            load(&hs.out_of_order_rejected),
        )?;
        typed_counter(
            &mut enc,
            "prometheus_tsdb_out_of_bound_samples",
            "Total number of out of bound samples ingestion failed attempts with out of order support disabled.",
            load(&hs.out_of_bounds_rejected),
        )?;
        typed_counter(
            &mut enc,
            "prometheus_tsdb_too_old_samples",
            "Total number of out of order samples ingestion failed attempts with out of support enabled, but sample outside of time window.",
            load(&hs.too_old_rejected),
        )?;
        typed_counter(
            &mut enc,
            "prometheus_tsdb_head_out_of_order_samples_appended",
            "Total number of appended out of order samples.",
            load(&hs.ooo_samples_appended),
        )?;
        counter(
            &mut enc,
            "prometheus_tsdb_wal_corruptions",
            "Total number of WAL corruptions.",
            load(&ds.wal_corruptions),
        )?;
        counter(
            &mut enc,
            "prometheus_tsdb_compactions",
            "Total number of compactions that were executed for the partition.",
            load(&ds.compactions),
        )?;
        counter(
            &mut enc,
            "prometheus_tsdb_compactions_failed",
            "Total number of compactions that failed for the partition.",
            load(&ds.compactions_failed),
        )?;
        counter(
            &mut enc,
            "prometheus_tsdb_checkpoint_creations",
            "Total number of checkpoint creations attempted.",
            load(&ds.checkpoints),
        )?;
        counter(
            &mut enc,
            "prometheus_tsdb_time_retentions",
            "The number of times that blocks were deleted because the maximum time limit was exceeded.",
            load(&ds.time_retentions),
        )?;
        counter(
            &mut enc,
            "prometheus_tsdb_size_retentions",
            "The number of times that blocks were deleted because the maximum number of bytes was exceeded.",
            load(&ds.size_retentions),
        )?;
        counter(
            &mut enc,
            "prometheus_tsdb_reloads",
            "Number of times the database reloaded block data from disk.",
            load(&ds.reloads),
        )?;
        let blocks = db.blocks();
        gauge(
            &mut enc,
            "prometheus_tsdb_blocks_loaded",
            "Number of currently loaded data blocks",
            blocks.len() as f64,
        )?;
        let (block_bytes, wal_bytes) = db.disk_usage();
        gauge(
            &mut enc,
            "prometheus_tsdb_storage_blocks_bytes",
            "The number of bytes that are currently used for local storage by all blocks.",
            block_bytes as f64,
        )?;
        gauge(
            &mut enc,
            "prometheus_tsdb_wal_storage_size_bytes",
            "Size of the write log directory.",
            wal_bytes as f64,
        )?;
        gauge(
            &mut enc,
            "prometheus_tsdb_retention_limit_bytes",
            "Max number of bytes to be retained in the tsdb blocks, configured 0 means disabled",
            db.options().retention_bytes as f64,
        )?;
        gauge(
            &mut enc,
            "prometheus_tsdb_lowest_timestamp",
            "Lowest timestamp value stored in the database. The unit is decided by the library consumer.",
            db.lowest_timestamp().unwrap_or(0) as f64,
        )?;
        Ok(())
    }
}
