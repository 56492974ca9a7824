//! Heap bytes per scraped series, split into head (series, labels, index, chunks) and the
//! scrape cache: scrapes synthetic targets shaped like `../shared/bench`'s scrapesrv
//! (6 labels per series after target labels, mixed metrics and a 12-bucket histogram)
//! through the real scrape path into a real TSDB, eight scrapes 15s apart, counting live
//! heap bytes with a counting allocator.
//!
//! `cargo run --release -p argus-scrape --example scrape_memory -- [targets] [series]`

#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicIsize, Ordering};

use argus_exposition::MediaType;
use argus_scrape::metrics::ScrapeMetrics;
use argus_scrape::scrape_loop::LoopState;
use argus_scrape::target::{ScrapeSettings, Target, discovered_labels, populate_labels};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded to the system allocator with the caller's layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Resident set size in bytes (Linux).
fn rss() -> isize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: isize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// One target's body: 10 metric families with an `id` label and two target-level labels,
/// plus a classic histogram, `series` lines in all.
fn body(target: u64, series: u64, step: u64) -> String {
    let mut out = String::new();
    let l0 = target % 10;
    let l1 = (target * 7) % 10;
    let hist = 14u64.min(series);
    for j in 0..series - hist {
        let m = j % 10;
        out.push_str(&format!(
            "bench_metric_{m}{{id=\"{j}\",l0=\"v{l0}\",l1=\"v{l1}\"}} {}\n",
            j * 3 + step * 11
        ));
    }
    for b in 0..hist.saturating_sub(2) {
        out.push_str(&format!(
            "bench_request_duration_seconds_bucket{{le=\"{}\",l0=\"v{l0}\",l1=\"v{l1}\"}} {}\n",
            0.005 * 2f64.powi(b as i32),
            step * 10 + b
        ));
    }
    out.push_str(&format!(
        "bench_request_duration_seconds_sum{{l0=\"v{l0}\",l1=\"v{l1}\"}} {}\n",
        step * 3
    ));
    out.push_str(&format!(
        "bench_request_duration_seconds_count{{l0=\"v{l0}\",l1=\"v{l1}\"}} {}\n",
        step * 12
    ));
    out
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let targets = args.first().copied().unwrap_or(200);
    let series = args.get(1).copied().unwrap_or(1000);
    let yaml = "scrape_configs:\n- job_name: bench_job0\n";
    let config = argus_config::parse_str(yaml, "t.yml").unwrap();
    let settings = ScrapeSettings::new(&config.scrape_configs[0], &config.global).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = argus_tsdb::Db::open(dir.path(), argus_tsdb::Options::default()).unwrap();
    let metrics = ScrapeMetrics::default();
    let mut loops: Vec<(Target, LoopState)> = (0..targets)
        .map(|t| {
            let discovered = discovered_labels(
                &settings,
                &BTreeMap::from([(
                    "__address__".to_string(),
                    format!("127.0.0.1:{}", 20000 + t),
                )]),
                &BTreeMap::new(),
            )
            .build();
            let labels = populate_labels(&settings, &discovered).unwrap().unwrap();
            (
                Target::new(labels, discovered, &settings),
                LoopState::default(),
            )
        })
        .collect();
    let base = live();
    let base_rss = rss();
    let t0 = 1_700_000_000_000i64;
    let mut after_first = 0;
    for step in 0..8u64 {
        for (i, (target, state)) in loops.iter_mut().enumerate() {
            let text = body(i as u64, series, step);
            state
                .append_scrape(
                    &db,
                    target,
                    &settings,
                    &metrics,
                    text.as_bytes(),
                    MediaType::PromText,
                    t0 + step as i64 * 15_000,
                )
                .unwrap();
        }
        if step == 0 {
            after_first = live() - base;
        }
    }
    let total = live() - base;
    let total_rss = rss() - base_rss;
    let n = (targets * series) as f64;
    for (_, state) in loops.iter_mut() {
        *state = LoopState::default();
    }
    let without_cache = live() - base;
    println!("series: {}", targets * series);
    println!(
        "after the first scrape: {:.0} B/series",
        after_first as f64 / n
    );
    println!(
        "after eight scrapes:    {:.0} B/series (resident: {:.0} B/series)",
        total as f64 / n,
        total_rss as f64 / n
    );
    println!(
        "  scrape caches:        {:.0} B/series",
        (total - without_cache) as f64 / n
    );
    println!(
        "  TSDB (head, WAL buffers, index): {:.0} B/series",
        without_cache as f64 / n
    );
    println!(
        "sizes: MemSeries {} B (SeriesData {} B, open XorChunk {} B)",
        std::mem::size_of::<argus_tsdb::head::MemSeries>(),
        std::mem::size_of::<argus_tsdb::head::SeriesData>(),
        std::mem::size_of::<argus_tsdb::chunk::XorChunk>()
    );
    drop(db);
}
