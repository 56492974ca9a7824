//! `argus server`: open storage, serve the API, run background compaction, handle reload and
//! shutdown signals.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration as StdDuration;

use anyhow::{Context, anyhow};
use argus_config::Config;
use argus_model::Duration;
use argus_tsdb::Db;
use argus_web::{AppState, BuildInfo, Lifecycle};
use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use tokio::sync::Notify;
use tracing::{error, info, warn};

use crate::cli::{LogFormat, LogLevel, ServerArgs, parse_bytes};

pub fn run(args: ServerArgs) -> ExitCode {
    init_logging(args.log_level, args.log_format);
    match serve(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(level: LogLevel, format: LogFormat) {
    let level = match level {
        LogLevel::Debug => tracing::Level::DEBUG,
        LogLevel::Info => tracing::Level::INFO,
        LogLevel::Warn => tracing::Level::WARN,
        LogLevel::Error => tracing::Level::ERROR,
    };
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Logfmt => builder.init(),
    }
}

fn duration_flag(name: &str, value: &str) -> anyhow::Result<Duration> {
    Duration::parse(value).map_err(|_| anyhow!("invalid duration {value:?} for --{name}"))
}

/// Reload bookkeeping exposed as Prometheus's `prometheus_config_*` metrics.
#[derive(Debug, Default)]
struct ReloadStatus {
    successful: AtomicBool,
    success_timestamp: AtomicI64,
}

#[derive(Debug)]
struct ServerCollector(Arc<ReloadStatus>, Arc<AtomicBool>);

impl Collector for ServerCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let g = |enc: &mut DescriptorEncoder, name: &str, help: &str, v: f64| -> std::fmt::Result {
            let m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(v).encode(m)
        };
        g(
            &mut enc,
            "prometheus_config_last_reload_successful",
            "Whether the last configuration reload attempt was successful.",
            f64::from(u8::from(self.0.successful.load(Ordering::Relaxed))),
        )?;
        g(
            &mut enc,
            "prometheus_config_last_reload_success_timestamp_seconds",
            "Timestamp of the last successful configuration reload.",
            self.0.success_timestamp.load(Ordering::Relaxed) as f64,
        )?;
        g(
            &mut enc,
            "prometheus_ready",
            "Whether Prometheus startup was fully completed and the server is ready for normal operation.",
            f64::from(u8::from(self.1.load(Ordering::Relaxed))),
        )?;
        let mut m = enc.encode_descriptor("prometheus_build_info", "A metric with a constant '1' value labeled by version, revision, branch, goversion from which prometheus was built, and the goos and goarch for the build.", None, MetricType::Gauge)?;
        let labels = vec![
            ("branch".to_string(), String::new()),
            ("goversion".to_string(), String::new()),
            ("revision".to_string(), String::new()),
            ("version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
        ];
        ConstGauge::new(1.0).encode(m.encode_family(&labels)?)
    }
}

struct Process {
    config_file: PathBuf,
    config: Mutex<Config>,
    db: Arc<Db>,
    reload_status: Arc<ReloadStatus>,
    shutdown: Arc<Notify>,
    scrape: Arc<argus_scrape::ScrapeManager>,
    native_histograms: bool,
}

impl Process {
    /// Applies a configuration: scrape pools first (the part that can refuse it), then the
    /// out-of-order window.
    fn apply(&self, config: &Config) -> Result<(), String> {
        // `--enable-feature=native-histograms` makes scraping native histograms the default,
        // as in Prometheus; `scrape_native_histograms` in the file decides when set.
        if self.native_histograms && config.global.scrape_native_histograms.is_none() {
            let mut config = config.clone();
            config.global.scrape_native_histograms = Some(true);
            self.scrape.apply_config(&config)?;
        } else {
            self.scrape.apply_config(config)?;
        }
        self.db
            .head
            .set_ooo_window_ms(config.storage.tsdb.out_of_order_time_window.as_millis());
        for feature in config.unsupported() {
            warn!(
                feature,
                "configured but not supported by this version of argus; ignored"
            );
        }
        Ok(())
    }
}

impl Lifecycle for Process {
    fn reload(&self) -> Result<(), String> {
        let loaded = argus_config::load_file(&self.config_file).map_err(|e| e.to_string());
        match loaded.and_then(|new| self.apply(&new).map(|()| new)) {
            Ok(new) => {
                *self.config.lock() = new;
                self.reload_status.successful.store(true, Ordering::Relaxed);
                self.reload_status
                    .success_timestamp
                    .store(argus_model::time::now_ms() / 1000, Ordering::Relaxed);
                info!(filename = %self.config_file.display(), "completed loading of configuration file");
                Ok(())
            }
            Err(e) => {
                self.reload_status
                    .successful
                    .store(false, Ordering::Relaxed);
                error!(error = %e, "error reloading config; keeping the previous configuration");
                Err(e)
            }
        }
    }

    fn quit(&self) {
        self.shutdown.notify_one();
    }

    fn config_yaml(&self) -> String {
        self.config.lock().to_yaml()
    }

    fn reload_status(&self) -> (bool, i64) {
        (
            self.reload_status.successful.load(Ordering::Relaxed),
            self.reload_status.success_timestamp.load(Ordering::Relaxed) * 1000,
        )
    }
}

fn serve(args: ServerArgs) -> anyhow::Result<()> {
    let config = argus_config::load_file(&args.config_file).with_context(|| {
        format!(
            "error loading config from {:?}",
            args.config_file.display().to_string()
        )
    })?;
    info!(filename = %args.config_file.display(), "completed loading of configuration file");

    let retention_ms = match (&args.retention_time, &args.retention_size) {
        (Some(t), _) => duration_flag("storage.tsdb.retention.time", t)?.as_millis(),
        (None, Some(_)) => 0,
        (None, None) => Duration::parse("15d").map(|d| d.as_millis()).unwrap_or(0),
    };
    let retention_bytes = match &args.retention_size {
        Some(s) => parse_bytes(s).map_err(|e| anyhow!("--storage.tsdb.retention.size: {e}"))?,
        None => 0,
    };
    let block_range = duration_flag("storage.tsdb.min-block-duration", &args.min_block_duration)?;
    let max_block = match &args.max_block_duration {
        Some(v) => duration_flag("storage.tsdb.max-block-duration", v)?.as_millis(),
        None => argus_tsdb::db::default_max_block_range(retention_ms),
    };
    let compaction_every = duration_flag(
        "storage.tsdb.compaction-check-interval",
        &args.compaction_check_interval,
    )?;
    // Head chunks never span more than this, and chunk references store the span in 32 bits.
    if block_range.is_zero() || block_range > Duration::from_millis(31 * 24 * 3600 * 1000) {
        return Err(anyhow!(
            "--storage.tsdb.min-block-duration must be between 1ms and 31d, got {block_range}"
        ));
    }
    let opts = argus_tsdb::Options {
        retention_ms,
        retention_bytes,
        block_range_ms: block_range.as_millis(),
        max_block_range_ms: max_block.max(block_range.as_millis()),
        ooo_window_ms: config.storage.tsdb.out_of_order_time_window.as_millis(),
        // As Prometheus: exemplars are kept only with the feature flag.
        max_exemplars: if args
            .enable_feature
            .iter()
            .any(|f| f.trim() == "exemplar-storage")
        {
            config.storage.max_exemplars()
        } else {
            0
        },
        ..Default::default()
    };
    info!(path = %args.tsdb_path.display(), retention = %Duration::from_millis(retention_ms), "opening storage");
    let db = Arc::new(
        Db::open(&args.tsdb_path, opts)
            .with_context(|| format!("opening storage at {}", args.tsdb_path.display()))?,
    );
    info!("TSDB started");

    let ready = Arc::new(AtomicBool::new(false));
    let reload_status = Arc::new(ReloadStatus {
        successful: AtomicBool::new(true),
        success_timestamp: AtomicI64::new(argus_model::time::now_ms() / 1000),
    });
    let shutdown = Arc::new(Notify::new());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Handlers parse queries; the blocking pool evaluates them (see STACK_SIZE).
        .thread_stack_size(argus_promql::parser::STACK_SIZE)
        .build()
        .context("starting async runtime")?;
    let scrape = argus_scrape::ScrapeManager::new(
        db.clone(),
        runtime.handle().clone(),
        offset_seed(&config),
    );
    let process = Arc::new(Process {
        config_file: args.config_file.clone(),
        config: Mutex::new(config.clone()),
        db: db.clone(),
        reload_status: reload_status.clone(),
        shutdown: shutdown.clone(),
        scrape: scrape.clone(),
        native_histograms: args
            .enable_feature
            .iter()
            .any(|f| f.trim() == "native-histograms"),
    });
    process
        .apply(&config)
        .map_err(|e| anyhow!("error applying config: {e}"))?;

    let mut registry = Registry::default();
    registry.register_collector(Box::new(argus_tsdb::metrics::TsdbCollector(db.clone())));
    registry.register_collector(Box::new(argus_web::process::ProcessCollector {
        start_time_seconds: argus_model::time::now_ms() as f64 / 1000.0,
    }));
    registry.register_collector(Box::new(ServerCollector(reload_status, ready.clone())));
    registry.register_collector(Box::new(argus_scrape::metrics::ScrapeCollector(
        scrape.metrics.clone(),
    )));

    let write_limits = argus_remote::WriteLimits::default();
    let features = promql_features(&args.enable_feature);
    let state = AppState {
        db: db.clone(),
        ready: ready.clone(),
        flags: args.flag_map(),
        build: BuildInfo {
            version: env!("CARGO_PKG_VERSION").to_string(),
            revision: option_env!("ARGUS_REVISION")
                .unwrap_or("unknown")
                .to_string(),
            branch: "main".to_string(),
            build_user: "argus".to_string(),
            build_date: "unknown".to_string(),
            go_version: "none (argus is written in Rust)".to_string(),
        },
        enable_lifecycle: args.enable_lifecycle,
        cors_origin: argus_web::CorsOrigin::new(&args.cors_origin)
            .with_context(|| format!("--web.cors.origin {:?}", args.cors_origin))?,
        enable_admin: args.enable_admin_api,
        enable_remote_write: args.enable_remote_write_receiver,
        write_limits,
        registry,
        lifecycle: process.clone(),
        start_time_ms: argus_model::time::now_ms(),
        retention: match (&args.retention_time, &args.retention_size) {
            (Some(t), Some(sz)) => format!("{t} or {sz}"),
            (Some(t), None) => t.clone(),
            (None, Some(sz)) => sz.clone(),
            (None, None) => "15d".to_string(),
        },
        query_timeout_ms: duration_flag("query.timeout", &args.query_timeout)?.as_millis(),
        query_slots: std::sync::Arc::new(tokio::sync::Semaphore::new(
            args.query_max_concurrency.max(1),
        )),
        engine: argus_promql::EngineOptions {
            lookback_ms: duration_flag("query.lookback-delta", &args.query_lookback_delta)?
                .as_millis(),
            max_samples: args.query_max_samples,
            deadline: None,
            canceled: None,
            delayed_name_removal: features.delayed_name_removal,
        },
        promql_features: features,
        scrape: scrape.clone(),
        query_memory: crate::alloc::QueryArenas::create()
            .map(|a| Arc::new(a) as Arc<dyn argus_web::QueryMemory>),
    };
    let app = argus_web::router(state).layer(axum::extract::DefaultBodyLimit::max(
        write_limits.max_body_bytes,
    ));

    // Background compaction on its own thread: it does long, blocking disk work.
    let stop_compaction = Arc::new(AtomicBool::new(false));
    let compaction = {
        let db = db.clone();
        let stop = stop_compaction.clone();
        let every = compaction_every.as_std().max(StdDuration::from_millis(100));
        std::thread::Builder::new()
            .name("compaction".into())
            .spawn(move || compaction_loop(&db, &stop, every))
            .context("starting compaction thread")?
    };

    let served = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&args.listen_address)
            .await
            .with_context(|| format!("listening on {}", args.listen_address))?;
        info!(address = %args.listen_address, "listening");
        ready.store(true, Ordering::Relaxed);
        info!("server is ready to receive web requests");
        tokio::spawn(signals(process.clone()));
        // The accept loop runs on a worker thread rather than this one, so a connection's
        // task starts on the thread that accepted it instead of waking another.
        let serving = tokio::spawn(async move {
            axum::serve(argus_web::lenient::LenientListener(listener), app)
                .with_graceful_shutdown(async move { shutdown.notified().await })
                .await
        });
        serving
            .await
            .context("the HTTP server task failed")?
            .context("serving HTTP")
    });
    info!("stopping");
    ready.store(false, Ordering::Relaxed);
    runtime.block_on(scrape.shutdown());
    info!("scrape manager stopped");
    stop_compaction.store(true, Ordering::Relaxed);
    let _ = compaction.join();
    if let Err(e) = db.close() {
        error!(error = %e, "closing storage");
    }
    info!("see you next time!");
    served
}

/// Spreads scrape phases like Prometheus (external labels and host name), so replicas with
/// different external labels do not scrape a target at the same instant.
fn offset_seed(config: &Config) -> u64 {
    let mut h = xxhash_rust::xxh64::Xxh64::new(0);
    for (name, value) in &config.global.external_labels {
        h.update(name.as_bytes());
        h.update(&[0xff]);
        h.update(value.as_bytes());
        h.update(&[0xff]);
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    h.update(host.trim().as_bytes());
    h.digest()
}

/// Runs compaction when a commit signals a compactable head, and at least every `every`
/// (retention and block merges also need time to pass, not only appends).
fn compaction_loop(db: &Db, stop: &AtomicBool, every: StdDuration) {
    let tick = StdDuration::from_millis(100).min(every);
    let mut last = std::time::Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let signalled = db.wait_for_compaction_signal(tick);
        if !signalled && last.elapsed() < every {
            continue;
        }
        last = std::time::Instant::now();
        match db.compact() {
            Ok(true) => {
                if !crate::alloc::release_free_memory() {
                    tracing::debug!("the allocator did not purge freed memory");
                }
            }
            Ok(false) => {}
            Err(e) => error!(error = %e, "compaction failed"),
        }
    }
}

async fn signals(process: Arc<Process>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut hup), Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        error!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = hup.recv() => {
                let p = process.clone();
                let _ = tokio::task::spawn_blocking(move || p.reload()).await;
            }
            _ = term.recv() => {
                warn!("received SIGTERM, exiting gracefully...");
                process.quit();
            }
            _ = int.recv() => {
                warn!("received SIGINT, exiting gracefully...");
                process.quit();
            }
        }
    }
}

/// The PromQL features `--enable-feature` turns on. Other names Prometheus knows are
/// accepted (they change nothing here yet); unknown ones are logged, as Prometheus does.
fn promql_features(names: &[String]) -> argus_promql::Features {
    const OTHER_KNOWN: [&str; 13] = [
        "exemplar-storage",
        "memory-snapshot-on-shutdown",
        "extra-scrape-metrics",
        "auto-gomaxprocs",
        "auto-gomemlimit",
        "created-timestamp-zero-ingestion",
        "concurrent-rule-eval",
        "native-histograms",
        "delayed-compaction",
        "old-ui",
        "metadata-wal-records",
        "type-and-unit-labels",
        "otlp-deltatocumulative",
    ];
    let mut features = argus_promql::Features::NONE;
    for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        if features.enable(name) {
            tracing::info!(feature = name, "experimental PromQL feature enabled");
        } else if !OTHER_KNOWN.contains(&name) {
            tracing::warn!(option = name, "Unknown option for --enable-feature");
        }
    }
    features
}
