//! The scrape manager: one pool per `scrape_configs` job, each with its discoverers, its
//! targets and one loop per target. `apply_config` is the reload: unchanged jobs are left
//! alone (their targets keep scraping without a gap), changed jobs hand their loops' state
//! (series cache, staleness tracking) to new loops, removed jobs and targets get stale
//! markers. Nothing here holds a lock across an `.await`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration as StdDuration;

use argus_config::Config;
use argus_config::http::HttpClientConfig;
use argus_tsdb::Db;
use parking_lot::Mutex;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::discovery::{Discoverer, FileDiscoverer, HttpDiscoverer, StaticDiscoverer};
use crate::metrics::ScrapeMetrics;
use crate::scrape_loop::{LoopState, Metadata, Stop, scrape_once, write_end_of_run_staleness};
use crate::target::{
    DroppedTarget, ScrapeSettings, Target, TargetGroup, discovered_labels, populate_labels,
};

/// A stopped loop's state and target, handed to the loop that replaces it.
type Carried = (Arc<Mutex<LoopState>>, Arc<Target>);

struct LoopHandle {
    target: Arc<Target>,
    state: Arc<Mutex<LoopState>>,
    stop: watch::Sender<Option<Stop>>,
    forced_error: Arc<Mutex<Option<String>>>,
    task: JoinHandle<()>,
}

/// One job's targets and loops.
pub struct Pool {
    job: String,
    settings: Mutex<Arc<ScrapeSettings>>,
    client: Mutex<reqwest::Client>,
    loops: Mutex<HashMap<u64, LoopHandle>>,
    dropped: Mutex<Vec<DroppedTarget>>,
    groups: Mutex<BTreeMap<usize, Vec<TargetGroup>>>,
    discovery_stop: Mutex<watch::Sender<bool>>,
}

/// Everything the scrape layer runs.
pub struct ScrapeManager {
    db: Arc<Db>,
    runtime: Handle,
    pub metrics: Arc<ScrapeMetrics>,
    pub file_sd_read_errors: Arc<AtomicU64>,
    seed: u64,
    pools: Mutex<BTreeMap<String, Arc<Pool>>>,
    shutdown: watch::Sender<bool>,
    retiring: Mutex<Vec<JoinHandle<()>>>,
}

/// A target as the targets API shows it.
pub struct TargetView {
    pub pool: String,
    pub target: Arc<Target>,
}

/// Whether two scrape configs discover the same way (discovery then keeps running).
fn same_discovery(
    a: &argus_config::prometheus::ScrapeConfig,
    b: &argus_config::prometheus::ScrapeConfig,
) -> bool {
    a.static_configs == b.static_configs
        && a.file_sd_configs == b.file_sd_configs
        && a.http_sd_configs == b.http_sd_configs
        && a.dns_sd_configs == b.dns_sd_configs
}

/// A `reqwest` client for a scrape config's HTTP settings.
pub fn build_client(http: &HttpClientConfig) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .redirect(if http.follow_redirects {
            reqwest::redirect::Policy::limited(10)
        } else {
            reqwest::redirect::Policy::none()
        })
        .user_agent(concat!("Prometheus/argus-", env!("CARGO_PKG_VERSION")))
        .pool_idle_timeout(StdDuration::from_secs(90))
        .use_preconfigured_tls(crate::tls::client_config(http)?);
    if !http.enable_http2 {
        builder = builder.http1_only();
    }
    builder = match &http.proxy_url {
        Some(proxy) => builder.proxy(
            reqwest::Proxy::all(proxy).map_err(|e| format!("invalid proxy_url {proxy:?}: {e}"))?,
        ),
        None if http.proxy_from_environment => builder,
        None => builder.no_proxy(),
    };
    builder.build().map_err(|e| e.to_string())
}

/// Every job's settings and HTTP client, or the first job's error: what a reload refuses
/// and what `argus tool check config` reports.
pub fn prepare_jobs(
    config: &Config,
) -> Result<Vec<(Arc<ScrapeSettings>, reqwest::Client)>, String> {
    config
        .scrape_configs
        .iter()
        .map(|sc| {
            let settings = ScrapeSettings::new(sc, &config.global).map_err(|e| e.to_string())?;
            Ok((Arc::new(settings), build_client(&sc.http)?))
        })
        .collect()
}

impl ScrapeManager {
    /// `seed` spreads scrape phases (Prometheus hashes external labels and host name).
    pub fn new(db: Arc<Db>, runtime: Handle, seed: u64) -> Arc<Self> {
        Arc::new(Self {
            db,
            runtime,
            metrics: Arc::new(ScrapeMetrics::default()),
            file_sd_read_errors: Arc::new(AtomicU64::new(0)),
            seed,
            pools: Mutex::new(BTreeMap::new()),
            shutdown: watch::channel(false).0,
            retiring: Mutex::new(Vec::new()),
        })
    }

    /// Applies a configuration: checks every job first, then starts, changes and stops
    /// pools. On an error nothing changes.
    pub fn apply_config(self: &Arc<Self>, config: &Config) -> Result<(), String> {
        let settings = prepare_jobs(config)?;
        let mut pools = self.pools.lock();
        let wanted: Vec<String> = settings.iter().map(|(s, _)| s.job_name.clone()).collect();
        let removed: Vec<String> = pools
            .keys()
            .filter(|job| !wanted.contains(job))
            .cloned()
            .collect();
        for job in removed {
            if let Some(pool) = pools.remove(&job) {
                self.stop_pool(&pool, Stop::Removed);
                self.metrics.targets.lock().remove(&job);
            }
        }
        for (settings, client) in settings {
            let job = settings.job_name.clone();
            match pools.get(&job).cloned() {
                Some(pool) => {
                    let (unchanged, rediscover) = {
                        let old = pool.settings.lock();
                        (
                            old.same_as(&settings),
                            !same_discovery(&old.source, &settings.source),
                        )
                    };
                    if unchanged {
                        continue;
                    }
                    self.metrics.reloads_total.fetch_add(1, Ordering::Relaxed);
                    *pool.settings.lock() = settings.clone();
                    *pool.client.lock() = client;
                    // Loops restart with the new settings and keep their state.
                    let handed: Vec<(u64, LoopHandle)> = pool.loops.lock().drain().collect();
                    let mut carried = HashMap::new();
                    for (hash, handle) in handed {
                        let _ = handle.stop.send(Some(Stop::Handover));
                        self.retiring.lock().push(handle.task);
                        carried.insert(hash, (handle.state, handle.target));
                    }
                    if rediscover {
                        let _ = pool.discovery_stop.lock().send(true);
                        pool.groups.lock().clear();
                        self.start_discovery(&pool);
                    }
                    self.sync_pool(&pool, carried);
                }
                None => {
                    self.metrics
                        .scrape_pools_total
                        .fetch_add(1, Ordering::Relaxed);
                    let pool = Arc::new(Pool {
                        job: job.clone(),
                        settings: Mutex::new(settings),
                        client: Mutex::new(client),
                        loops: Mutex::new(HashMap::new()),
                        dropped: Mutex::new(Vec::new()),
                        groups: Mutex::new(BTreeMap::new()),
                        discovery_stop: Mutex::new(watch::channel(false).0),
                    });
                    pools.insert(job, pool.clone());
                    self.start_discovery(&pool);
                }
            }
        }
        Ok(())
    }

    fn start_discovery(self: &Arc<Self>, pool: &Arc<Pool>) {
        let settings = pool.settings.lock().clone();
        let sc = &settings.source;
        let (stop_tx, stop_rx) = watch::channel(false);
        *pool.discovery_stop.lock() = stop_tx;
        let (tx, mut rx) = mpsc::channel::<(usize, Vec<TargetGroup>)>(16);
        let mut discoverers: Vec<Box<dyn Discoverer>> = Vec::new();
        if !sc.static_configs.is_empty() {
            discoverers.push(Box::new(StaticDiscoverer(sc.static_configs.clone())));
        }
        for file in &sc.file_sd_configs {
            discoverers.push(Box::new(FileDiscoverer {
                config: file.clone(),
                read_errors: self.file_sd_read_errors.clone(),
            }));
        }
        for http in &sc.http_sd_configs {
            match build_client(&http.http) {
                Ok(client) => discoverers.push(Box::new(HttpDiscoverer {
                    config: http.clone(),
                    client,
                })),
                Err(e) => tracing::error!(job = %pool.job, error = %e, "http_sd_configs"),
            }
        }
        if !sc.dns_sd_configs.is_empty() {
            let nameservers = crate::discovery::dns::system_nameservers();
            for dns in &sc.dns_sd_configs {
                discoverers.push(Box::new(crate::discovery::dns::DnsDiscoverer {
                    config: dns.clone(),
                    nameservers: nameservers.clone(),
                }));
            }
        }
        if discoverers.is_empty() {
            self.sync_pool(pool, HashMap::new());
        }
        for (provider, d) in discoverers.into_iter().enumerate() {
            self.runtime
                .spawn(d.run(provider, tx.clone(), stop_rx.clone()));
        }
        drop(tx);
        let manager = Arc::downgrade(self);
        let pool = Arc::downgrade(pool);
        self.runtime.spawn(async move {
            while let Some((provider, groups)) = rx.recv().await {
                let (Some(manager), Some(pool)) = (manager.upgrade(), pool.upgrade()) else {
                    return;
                };
                pool.groups.lock().insert(provider, groups);
                // Take whatever else arrived meanwhile before syncing once.
                while let Ok((provider, groups)) = rx.try_recv() {
                    pool.groups.lock().insert(provider, groups);
                }
                manager.sync_pool(&pool, HashMap::new());
            }
        });
    }

    /// Brings a pool's loops in line with its discovered groups.
    fn sync_pool(&self, pool: &Arc<Pool>, mut carried: HashMap<u64, Carried>) {
        let settings = pool.settings.lock().clone();
        let client = pool.client.lock().clone();
        let groups = pool.groups.lock().clone();
        // Deduplicated by target hash, in discovery order.
        let mut wanted: Vec<(u64, Target)> = Vec::new();
        let mut wanted_hashes: HashSet<u64> = HashSet::new();
        let mut dropped = Vec::new();
        let mut discovered_count = 0u64;
        for group in groups.values().flatten() {
            for target in &group.targets {
                discovered_count += 1;
                let discovered = discovered_labels(&settings, target, &group.labels).build();
                match populate_labels(&settings, &discovered) {
                    Ok(Some(labels)) => {
                        let t = Target::new(labels, discovered, &settings);
                        let hash = t.hash();
                        if wanted_hashes.insert(hash) {
                            wanted.push((hash, t));
                        }
                    }
                    Ok(None) => dropped.push(DroppedTarget {
                        discovered_labels: discovered,
                    }),
                    Err(e) => {
                        tracing::warn!(job = %pool.job, error = %e, labels = %discovered, "creating target failed")
                    }
                }
            }
        }
        if settings.keep_dropped_targets > 0 {
            dropped.truncate(settings.keep_dropped_targets as usize);
        }
        *pool.dropped.lock() = dropped;
        let forced = (settings.target_limit > 0 && wanted.len() as u64 > settings.target_limit)
            .then(|| {
                format!(
                    "target_limit exceeded (number of targets: {}, limit: {})",
                    wanted.len(),
                    settings.target_limit
                )
            });
        let mut loops = pool.loops.lock();
        let gone: Vec<u64> = loops
            .keys()
            .filter(|h| !wanted_hashes.contains(h))
            .copied()
            .collect();
        for hash in gone {
            if let Some(handle) = loops.remove(&hash) {
                let _ = handle.stop.send(Some(Stop::Removed));
                self.retiring.lock().push(handle.task);
            }
        }
        for (hash, target) in wanted {
            if loops.contains_key(&hash) {
                continue;
            }
            let state = carried.remove(&hash).map(|(s, _)| s).unwrap_or_default();
            loops.insert(
                hash,
                self.spawn_loop(Arc::new(target), state, settings.clone(), client.clone()),
            );
        }
        for handle in loops.values() {
            *handle.forced_error.lock() = forced.clone();
        }
        drop(loops);
        // Targets that a changed config no longer produces: what they scraped goes stale.
        if !carried.is_empty() {
            let db = self.db.clone();
            let states: Vec<Carried> = carried.into_values().collect();
            self.runtime.spawn_blocking(move || {
                let now = argus_model::time::now_ms();
                for (state, target) in states {
                    state.lock().end_of_run(&db, &target, now);
                }
            });
        }
        let loops = pool.loops.lock();
        self.metrics
            .targets
            .lock()
            .insert(pool.job.clone(), (discovered_count, loops.len() as u64));
        self.retiring.lock().retain(|t| !t.is_finished());
    }

    fn spawn_loop(
        &self,
        target: Arc<Target>,
        state: Arc<Mutex<LoopState>>,
        settings: Arc<ScrapeSettings>,
        client: reqwest::Client,
    ) -> LoopHandle {
        let (stop_tx, stop_rx) = watch::channel(None);
        let forced_error = Arc::new(Mutex::new(None));
        let ctx = LoopCtx {
            db: self.db.clone(),
            client,
            target: target.clone(),
            settings,
            state: state.clone(),
            metrics: self.metrics.clone(),
            forced_error: forced_error.clone(),
            seed: self.seed,
        };
        let task = self
            .runtime
            .spawn(run_loop(ctx, stop_rx, self.shutdown.subscribe()));
        LoopHandle {
            target,
            state,
            stop: stop_tx,
            forced_error,
            task,
        }
    }

    fn stop_pool(&self, pool: &Pool, reason: Stop) {
        let _ = pool.discovery_stop.lock().send(true);
        for (_, handle) in pool.loops.lock().drain() {
            let _ = handle.stop.send(Some(reason));
            self.retiring.lock().push(handle.task);
        }
    }

    /// Stops every loop, writing stale markers for everything scraped, and waits (bounded)
    /// for them to finish.
    pub async fn shutdown(&self) {
        let _ = self.shutdown.send(true);
        let pools: Vec<Arc<Pool>> = self.pools.lock().values().cloned().collect();
        for pool in pools {
            self.stop_pool(&pool, Stop::Shutdown);
        }
        let tasks: Vec<JoinHandle<()>> = std::mem::take(&mut *self.retiring.lock());
        let all = futures_join(tasks);
        if tokio::time::timeout(StdDuration::from_secs(10), all)
            .await
            .is_err()
        {
            tracing::warn!("scrape loops did not stop within 10s");
        }
    }

    /// Active targets, by pool.
    pub fn active_targets(&self) -> Vec<TargetView> {
        let pools: Vec<Arc<Pool>> = self.pools.lock().values().cloned().collect();
        let mut out = Vec::new();
        for pool in pools {
            let mut targets: Vec<Arc<Target>> = pool
                .loops
                .lock()
                .values()
                .map(|h| h.target.clone())
                .collect();
            targets.sort_by(|a, b| a.labels.cmp(&b.labels));
            for target in targets {
                out.push(TargetView {
                    pool: pool.job.clone(),
                    target,
                });
            }
        }
        out
    }

    /// Targets relabeling dropped, by pool.
    pub fn dropped_targets(&self) -> Vec<(String, DroppedTarget)> {
        let pools: Vec<Arc<Pool>> = self.pools.lock().values().cloned().collect();
        pools
            .iter()
            .flat_map(|p| {
                p.dropped
                    .lock()
                    .iter()
                    .map(|d| (p.job.clone(), d.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    pub fn scrape_pools(&self) -> Vec<String> {
        self.pools.lock().keys().cloned().collect()
    }

    /// Metadata per active target: `(target, family → metadata)`.
    pub fn target_metadata(&self) -> Vec<(Arc<Target>, HashMap<String, Metadata>)> {
        let pools: Vec<Arc<Pool>> = self.pools.lock().values().cloned().collect();
        let mut out = Vec::new();
        for pool in pools {
            for handle in pool.loops.lock().values() {
                out.push((handle.target.clone(), handle.state.lock().metadata.clone()));
            }
        }
        out
    }
}

async fn futures_join(tasks: Vec<JoinHandle<()>>) {
    for task in tasks {
        let _ = task.await;
    }
}

struct LoopCtx {
    db: Arc<Db>,
    client: reqwest::Client,
    target: Arc<Target>,
    settings: Arc<ScrapeSettings>,
    state: Arc<Mutex<LoopState>>,
    metrics: Arc<ScrapeMetrics>,
    forced_error: Arc<Mutex<Option<String>>>,
    seed: u64,
}

async fn run_loop(
    ctx: LoopCtx,
    mut stop: watch::Receiver<Option<Stop>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let interval = ctx
        .target
        .interval
        .as_std()
        .max(StdDuration::from_millis(1));
    let interval_label = ctx.target.interval.to_string();
    let offset = ctx
        .target
        .offset_ms(argus_model::time::now_ms(), ctx.seed)
        .max(0) as u64;
    let first = tokio::time::Instant::now() + StdDuration::from_millis(offset);
    let mut ticker = tokio::time::interval_at(first, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last: Option<tokio::time::Instant> = None;
    let reason = loop {
        tokio::select! {
            _ = ticker.tick() => {}
            changed = stop.changed() => {
                break if changed.is_err() { Stop::Removed } else { stop.borrow().unwrap_or(Stop::Removed) };
            }
            _ = shutdown.changed() => break Stop::Shutdown,
        }
        if let Some(reason) = *stop.borrow() {
            break reason;
        }
        let now = tokio::time::Instant::now();
        if let Some(last) = last {
            ctx.metrics
                .observe_interval(&interval_label, (now - last).as_secs_f64());
        }
        last = Some(now);
        let forced = ctx.forced_error.lock().clone();
        scrape_once(
            &ctx.db,
            &ctx.client,
            &ctx.target,
            &ctx.settings,
            &ctx.state,
            &ctx.metrics,
            forced,
        )
        .await;
    };
    if last.is_none() {
        return;
    }
    match reason {
        Stop::Handover => {}
        Stop::Shutdown => {
            write_end_of_run_staleness(
                &ctx.db,
                &ctx.target,
                &ctx.state,
                argus_model::time::now_ms(),
            )
            .await;
        }
        Stop::Removed => {
            // The target may come back (a flapping discovery): wait until just over two
            // would-be scrapes; if it was recreated meanwhile, the markers are out of order
            // and ignored. Shutdown cuts the wait short.
            let mut stale_at = argus_model::time::now_ms();
            let waited = async {
                ticker.tick().await;
                stale_at = argus_model::time::now_ms();
                ticker.tick().await;
                tokio::time::sleep(interval / 10).await;
            };
            tokio::select! {
                _ = waited => {}
                _ = shutdown.changed() => {}
            }
            write_end_of_run_staleness(&ctx.db, &ctx.target, &ctx.state, stale_at).await;
        }
    }
}
