//! The router and its handlers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use argus_model::Matcher;
use argus_model::time::{MAX_TIME_MS, MIN_TIME_MS};
use argus_tsdb::Db;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::api::{ApiError, ApiResult, success};
use crate::http_metrics::{HttpMetrics, instrument};
use crate::params::Params;

#[derive(Debug, Clone, Serialize)]
pub struct BuildInfo {
    pub version: String,
    pub revision: String,
    pub branch: String,
    #[serde(rename = "buildUser")]
    pub build_user: String,
    #[serde(rename = "buildDate")]
    pub build_date: String,
    #[serde(rename = "goVersion")]
    pub go_version: String,
}

/// What the lifecycle endpoints ask of the process.
pub trait Lifecycle: Send + Sync + 'static {
    /// Re-reads the configuration; on error the old one stays.
    fn reload(&self) -> Result<(), String>;
    /// Starts a graceful shutdown.
    fn quit(&self);
    /// The configuration in effect, as YAML with secrets hidden.
    fn config_yaml(&self) -> String;
    /// Whether the last reload succeeded, and when the configuration in effect was loaded
    /// (Unix milliseconds).
    fn reload_status(&self) -> (bool, i64);
}

/// Where a query's evaluation takes its memory from. The process entering it (the binary
/// owns the allocator) binds the calling thread to a heap kept for queries, so memory one
/// query frees is there for the next instead of scattered over the ingest threads' heaps.
pub trait QueryMemory: Send + Sync {
    /// Binds the calling thread; dropping the returned guard (on the same thread) undoes it.
    fn enter(&self) -> Box<dyn std::any::Any>;
}

pub struct AppState {
    pub db: Arc<Db>,
    pub ready: Arc<AtomicBool>,
    pub flags: BTreeMap<String, String>,
    pub build: BuildInfo,
    pub enable_lifecycle: bool,
    /// `--web.cors.origin`: the origins the API answers browsers from.
    pub cors_origin: CorsOrigin,
    pub enable_admin: bool,
    pub enable_remote_write: bool,
    pub write_limits: argus_remote::WriteLimits,
    pub registry: Registry,
    pub lifecycle: Arc<dyn Lifecycle>,
    pub engine: argus_promql::EngineOptions,
    /// Experimental PromQL enabled with `--enable-feature`.
    pub promql_features: argus_promql::Features,
    /// Process start (Unix milliseconds) and reload bookkeeping, for runtimeinfo.
    pub start_time_ms: i64,
    pub retention: String,
    /// `--query.timeout`.
    pub query_timeout_ms: i64,
    /// `--query.max-concurrency` permits.
    pub query_slots: Arc<tokio::sync::Semaphore>,
    /// Targets, their status and scraped metadata.
    pub scrape: Arc<argus_scrape::ScrapeManager>,
    /// The heap queries evaluate in; `None` leaves them on the thread's own.
    pub query_memory: Option<Arc<dyn QueryMemory>>,
}

type Shared = Arc<AppState>;

pub fn router(mut state: AppState) -> Router {
    // Each route with the methods Prometheus registers for it (see `methods`).
    let api: Vec<(&str, MethodRouter<Shared>)> = vec![
        ("/write", methods(post(remote_write), &["POST"])),
        ("/query", methods(get(query).post(query), &["GET", "POST"])),
        (
            "/query_range",
            methods(get(query_range).post(query_range), &["GET", "POST"]),
        ),
        (
            "/series",
            methods(
                get(series).post(series).delete(drop_series),
                &["DELETE", "GET", "POST"],
            ),
        ),
        (
            "/labels",
            methods(get(labels).post(labels), &["GET", "POST"]),
        ),
        ("/label/{name}/values", methods(get(label_values), &["GET"])),
        ("/status/buildinfo", methods(get(buildinfo), &["GET"])),
        ("/status/flags", methods(get(flags), &["GET"])),
        ("/status/tsdb", methods(get(tsdb_status), &["GET"])),
        ("/status/runtimeinfo", methods(get(runtimeinfo), &["GET"])),
        ("/status/config", methods(get(status_config), &["GET"])),
        (
            "/format_query",
            methods(get(format_query).post(format_query), &["GET", "POST"]),
        ),
        (
            "/parse_query",
            methods(get(parse_query).post(parse_query), &["GET", "POST"]),
        ),
        ("/metadata", methods(get(metadata), &["GET"])),
        ("/targets", methods(get(targets), &["GET"])),
        (
            "/targets/metadata",
            methods(get(targets_metadata), &["GET"]),
        ),
        ("/scrape_pools", methods(get(scrape_pools), &["GET"])),
        (
            "/query_exemplars",
            methods(get(query_exemplars).post(query_exemplars), &["GET", "POST"]),
        ),
        (
            "/admin/tsdb/snapshot",
            methods(post(snapshot).put(snapshot), &["POST", "PUT"]),
        ),
        (
            "/admin/tsdb/delete_series",
            methods(post(delete_series).put(delete_series), &["POST", "PUT"]),
        ),
        (
            "/admin/tsdb/clean_tombstones",
            methods(
                post(clean_tombstones).put(clean_tombstones),
                &["POST", "PUT"],
            ),
        ),
    ];
    let top: Vec<(&str, MethodRouter<Shared>)> = vec![
        (
            "/-/healthy",
            methods(get(healthy).head(healthy), &["GET", "HEAD"]),
        ),
        (
            "/-/ready",
            methods(get(ready).head(ready), &["GET", "HEAD"]),
        ),
        (
            "/-/reload",
            methods(
                get(reload).post(reload).put(reload),
                &["GET", "POST", "PUT"],
            ),
        ),
        (
            "/-/quit",
            methods(get(quit).post(quit).put(quit), &["GET", "POST", "PUT"]),
        ),
        ("/metrics", methods(get(metrics), &["GET"])),
    ];
    let patterns: Vec<String> = top
        .iter()
        .map(|(p, _)| p.to_string())
        .chain(api.iter().map(|(p, _)| format!("{API_V1}{p}")))
        .collect();
    let http = HttpMetrics::register(&mut state.registry, patterns.iter().map(String::as_str));
    let state = Arc::new(state);
    // Each route goes to the router as one service (see `methods`).
    let add = |r: Router<Shared>, (path, m): (&str, MethodRouter<Shared>)| {
        r.route(
            path,
            axum::routing::any_service(m.with_state(state.clone())),
        )
    };
    let cors = state.cors_origin.clone();
    let api = api
        .into_iter()
        .fold(Router::new(), add)
        .fallback(api_not_found)
        .layer(axum::middleware::from_fn_with_state(cors, cors_layer));
    top.into_iter()
        .fold(Router::new(), add)
        .nest(API_V1, api)
        .route_layer(axum::middleware::from_fn_with_state(http, instrument))
        .fallback(api_not_found)
        .with_state(state)
}

/// `--web.cors.origin`, fully anchored as Prometheus anchors it (`^(?s:RE)$`).
#[derive(Clone, Debug)]
pub struct CorsOrigin {
    regex: regex::Regex,
    /// The default `.*`, answered with `Access-Control-Allow-Origin: *`.
    any: bool,
}

impl CorsOrigin {
    pub fn new(pattern: &str) -> Result<Self, argus_model::Error> {
        Ok(Self {
            regex: argus_model::regex_go::compile_wrapped(pattern)?,
            any: pattern == ".*",
        })
    }
}

/// Prometheus's `httputil.SetCORS` on every API answer to a request with an `Origin`, and
/// its `OPTIONS /api/v1/*path` route: 204 for a browser's preflight.
async fn cors_layer(
    State(cors): State<CorsOrigin>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut response = if request.method() == Method::OPTIONS {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(request).await
    };
    if let Some(origin) = origin {
        let h = response.headers_mut();
        for (name, value) in [
            (
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                "Accept, Authorization, Content-Type, Origin",
            ),
            (header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, OPTIONS"),
            (header::ACCESS_CONTROL_EXPOSE_HEADERS, "Date"),
            (header::VARY, "Origin"),
        ] {
            h.insert(name, header::HeaderValue::from_static(value));
        }
        if cors.any {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                header::HeaderValue::from_static("*"),
            );
        } else if cors.regex.is_match(&origin)
            && let Ok(v) = header::HeaderValue::from_str(&origin)
        {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        }
    }
    response
}

/// Where the HTTP API v1 is served.
const API_V1: &str = "/api/v1";

async fn healthy() -> &'static str {
    "Prometheus Server is Healthy.\n"
}

async fn ready(State(s): State<Shared>) -> Response {
    if s.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "Prometheus Server is Ready.\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response()
    }
}

async fn reload(State(s): State<Shared>, method: Method) -> Response {
    if method != Method::POST && method != Method::PUT {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            "Only POST or PUT requests allowed",
        )
            .into_response();
    }
    if !s.enable_lifecycle {
        return (StatusCode::FORBIDDEN, "Lifecycle API is not enabled.").into_response();
    }
    let lifecycle = s.lifecycle.clone();
    match tokio::task::spawn_blocking(move || lifecycle.reload()).await {
        Ok(Ok(())) => StatusCode::OK.into_response(),
        Ok(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {e}\n"),
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {e}\n"),
        )
            .into_response(),
    }
}

async fn quit(State(s): State<Shared>, method: Method) -> Response {
    if method != Method::POST && method != Method::PUT {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            "Only POST or PUT requests allowed",
        )
            .into_response();
    }
    if !s.enable_lifecycle {
        return (StatusCode::FORBIDDEN, "Lifecycle API is not enabled.").into_response();
    }
    s.lifecycle.quit();
    (StatusCode::OK, "Requesting termination... Goodbye!").into_response()
}

async fn metrics(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let openmetrics = crate::exposition::wants_openmetrics(accept);
    let state = s.clone();
    // Encoding (and rewriting in the text format) runs off the async workers.
    let encoded = tokio::task::spawn_blocking(move || {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &state.registry)?;
        // Families the metrics library cannot express go before the end marker.
        let summary = state.scrape.metrics.interval_summary();
        if let Some(body) = out.strip_suffix("# EOF\n") {
            out = format!("{body}{summary}# EOF\n");
        }
        Ok::<_, std::fmt::Error>(if openmetrics {
            (crate::exposition::OPENMETRICS_CONTENT_TYPE, out)
        } else {
            (
                crate::exposition::TEXT_CONTENT_TYPE,
                crate::exposition::openmetrics_to_text(&out),
            )
        })
    })
    .await;
    match encoded {
        Ok(Ok((content_type, body))) => {
            ([(header::CONTENT_TYPE, content_type)], body).into_response()
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "error encoding metrics").into_response(),
    }
}

async fn api_not_found() -> Response {
    go_http_error(StatusCode::NOT_FOUND, "404 page not found\n")
}

/// An answer as Go's `http.Error` writes it.
fn go_http_error(status: StatusCode, text: &'static str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        text,
    )
        .into_response()
}

/// A route as Prometheus's router (httprouter) serves it: the methods `served` (which must be
/// the ones `route` was given), `OPTIONS` answered 200 with the `Allow` list, and any other
/// method refused with `405 Method Not Allowed` and that list. `HEAD` is refused too unless
/// served: axum would answer it with the `GET` handler. `router` hands each route to the
/// router as one service, so that layers (CORS) see every method before it is dispatched and
/// answers they make themselves (the API's `OPTIONS` 204) carry no `Allow`, as Prometheus's
/// do not.
fn methods(route: MethodRouter<Shared>, served: &[&str]) -> MethodRouter<Shared> {
    let mut allow: Vec<&str> = served.iter().copied().chain(["OPTIONS"]).collect();
    allow.sort_unstable();
    let allow = header::HeaderValue::from_str(&allow.join(", ")).expect("method names are ASCII");
    let refuse = move |method: Method| {
        let allow = allow.clone();
        async move {
            let mut response = if method == Method::OPTIONS {
                StatusCode::OK.into_response()
            } else {
                go_http_error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n")
            };
            response.headers_mut().insert(header::ALLOW, allow);
            response
        }
    };
    let route = if served.contains(&"HEAD") {
        route
    } else {
        route.head(refuse.clone())
    };
    route.fallback(refuse)
}

/// `DELETE /api/v1/series`, which Prometheus registers and does not implement.
async fn drop_series() -> ApiResult {
    Err(ApiError::internal("not implemented".to_string()))
}

/// Runs blocking storage work off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("task failed: {e}")))
}

/// A form body's parameters, then the query string's, as Go's `Request.ParseForm` orders
/// them: a parameter given in both is the body's (`FormValue` takes the first).
fn params(query: Option<String>, headers: &HeaderMap, body: &Bytes) -> Params {
    let mut p = Params::default();
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    if is_form && let Ok(text) = std::str::from_utf8(body) {
        p.extend_from_urlencoded(text);
    }
    if let Some(q) = query {
        p.extend_from_urlencoded(&q);
    }
    p
}

/// `start` and `end` of a lookup; Prometheus does not refuse an end before the start here
/// (the answer is empty).
fn range(p: &Params) -> Result<(i64, i64), ApiError> {
    let start = p.time("start", MIN_TIME_MS)?;
    let end = p.time("end", MAX_TIME_MS)?;
    Ok((start, end))
}

/// `match[]` of the label endpoints, refused with Prometheus's bare message.
fn label_matchers(p: &Params) -> Result<Vec<Vec<Matcher>>, ApiError> {
    p.matcher_sets().map_err(ApiError::bad_data)
}

async fn series(
    State(s): State<Shared>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let p = params(q, &headers, &body);
    if p.get_all("match[]").is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided".into()));
    }
    let limit = p.limit()?;
    let (start, end) = range(&p)?;
    let sets = p.matchers()?;
    let db = s.db.clone();
    let mut all = blocking(move || {
        let q = db.querier(start, end);
        let mut out = BTreeSet::new();
        for set in &sets {
            out.extend(q.select(set).into_iter().map(|s| s.labels));
        }
        out.into_iter().collect::<Vec<_>>()
    })
    .await?;
    let mut warnings = Vec::new();
    if limit > 0 && all.len() > limit {
        all.truncate(limit);
        warnings.push("results truncated due to limit".to_string());
    }
    Ok(success(&all, &warnings))
}

async fn labels(
    State(s): State<Shared>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let p = params(q, &headers, &body);
    let limit = p.limit()?;
    let (start, end) = range(&p)?;
    let sets = label_matchers(&p)?;
    let db = s.db.clone();
    let names = blocking(move || {
        let q = db.querier(start, end);
        let mut names = BTreeSet::new();
        if sets.is_empty() {
            names.extend(q.label_names(&[]));
        }
        for set in &sets {
            names.extend(q.label_names(set));
        }
        names.into_iter().collect::<Vec<_>>()
    })
    .await?;
    Ok(limited(names, limit))
}

fn limited(mut values: Vec<String>, limit: usize) -> Response {
    let mut warnings = Vec::new();
    if limit > 0 && values.len() > limit {
        values.truncate(limit);
        warnings.push("results truncated due to limit".to_string());
    }
    success(&values, &warnings)
}

fn valid_label_name(name: &str) -> bool {
    !name.is_empty() && std::str::from_utf8(name.as_bytes()).is_ok()
}

async fn label_values(
    State(s): State<Shared>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // Go's router matches the decoded path: an encoded `/` in the name makes another path,
    // which no route serves.
    if name.contains('/') {
        return Ok(api_not_found().await);
    }
    let p = params(q, &headers, &Bytes::new());
    if !valid_label_name(&name) {
        return Err(ApiError::bad_data(format!("invalid label name: {name:?}")));
    }
    let limit = p.limit()?;
    let (start, end) = range(&p)?;
    let sets = label_matchers(&p)?;
    let db = s.db.clone();
    let values = blocking(move || {
        let q = db.querier(start, end);
        let mut values = BTreeSet::new();
        if sets.is_empty() {
            values.extend(q.label_values(&name, &[]));
        }
        for set in &sets {
            values.extend(q.label_values(&name, set));
        }
        values.into_iter().collect::<Vec<_>>()
    })
    .await?;
    Ok(limited(values, limit).into_response())
}

async fn buildinfo(State(s): State<Shared>) -> ApiResult {
    Ok(success(&s.build, &[]))
}

async fn flags(State(s): State<Shared>) -> ApiResult {
    Ok(success(&s.flags, &[]))
}

#[derive(Serialize)]
struct HeadStats {
    #[serde(rename = "numSeries")]
    num_series: u64,
    #[serde(rename = "numLabelPairs")]
    num_label_pairs: u64,
    #[serde(rename = "chunkCount")]
    chunk_count: u64,
    #[serde(rename = "minTime")]
    min_time: i64,
    #[serde(rename = "maxTime")]
    max_time: i64,
}

#[derive(Serialize)]
struct Stat {
    name: String,
    value: u64,
}

#[derive(Serialize)]
struct TsdbStatus {
    #[serde(rename = "headStats")]
    head_stats: HeadStats,
    #[serde(rename = "seriesCountByMetricName")]
    series_count_by_metric_name: Vec<Stat>,
    #[serde(rename = "labelValueCountByLabelName")]
    label_value_count_by_label_name: Vec<Stat>,
    #[serde(rename = "memoryInBytesByLabelName")]
    memory_in_bytes_by_label_name: Vec<Stat>,
    #[serde(rename = "seriesCountByLabelValuePair")]
    series_count_by_label_value_pair: Vec<Stat>,
}

fn top(mut items: Vec<(String, u64)>, limit: usize) -> Vec<Stat> {
    items.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    items.truncate(limit);
    items
        .into_iter()
        .map(|(name, value)| Stat { name, value })
        .collect()
}

async fn tsdb_status(State(s): State<Shared>, RawQuery(q): RawQuery) -> ApiResult {
    let p = params(q, &HeaderMap::new(), &Bytes::new());
    let limit = match p.limit()? {
        0 => 10,
        n => n,
    };
    let db = s.db.clone();
    let status = blocking(move || {
        let head = &db.head;
        let (names, pairs) = head.postings_stats();
        let mut by_metric = Vec::new();
        let mut memory: BTreeMap<String, u64> = BTreeMap::new();
        let mut chunks = 0u64;
        for series in head.all_series() {
            let data = series.data.lock();
            chunks += data.closed.len() as u64 + u64::from(data.open.is_some());
            drop(data);
            for l in series.labels.iter() {
                *memory.entry(l.name.to_string()).or_default() += l.value.len() as u64;
            }
        }
        for (pair, count) in &pairs {
            if let Some(metric) = pair.strip_prefix("__name__=") {
                by_metric.push((metric.to_string(), *count));
            }
        }
        let (min, max) = (head.min_time(), head.max_time());
        let empty = min == i64::MAX;
        TsdbStatus {
            head_stats: HeadStats {
                num_series: head.num_series() as u64,
                num_label_pairs: pairs.len() as u64,
                chunk_count: chunks,
                min_time: if empty { 0 } else { min },
                max_time: if empty { 0 } else { max },
            },
            series_count_by_metric_name: top(by_metric, limit),
            label_value_count_by_label_name: top(names, limit),
            memory_in_bytes_by_label_name: top(memory.into_iter().collect(), limit),
            series_count_by_label_value_pair: top(pairs, limit),
        }
    })
    .await?;
    Ok(success(&status, &[]))
}

fn admin_enabled(s: &AppState) -> Result<(), ApiError> {
    if s.enable_admin {
        Ok(())
    } else {
        Err(ApiError::unavailable("admin APIs disabled".into()))
    }
}

#[derive(Serialize)]
struct SnapshotName {
    name: String,
}

async fn snapshot(
    State(s): State<Shared>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    admin_enabled(&s)?;
    let p = params(q, &headers, &body);
    let skip_head = match p.get("skip_head") {
        None | Some("") => false,
        Some(v) => parse_go_bool(v).ok_or_else(|| {
            ApiError::bad_data(format!("unable to parse boolean 'skip_head' argument: strconv.ParseBool: parsing \"{v}\": invalid syntax"))
        })?,
    };
    let db = s.db.clone();
    let name = blocking(move || db.snapshot(skip_head))
        .await?
        .map_err(|e| ApiError::internal(format!("create snapshot: {e}")))?;
    Ok(success(&SnapshotName { name }, &[]))
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

async fn delete_series(
    State(s): State<Shared>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    admin_enabled(&s)?;
    let p = params(q, &headers, &body);
    let sets: Vec<Vec<Matcher>> = p.matchers()?;
    if sets.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided".into()));
    }
    let (start, end) = range(&p)?;
    let db = s.db.clone();
    blocking(move || {
        for set in &sets {
            db.delete_series(set, start, end)?;
        }
        Ok::<_, argus_tsdb::Error>(())
    })
    .await?
    .map_err(|e| ApiError::internal(format!("delete series: {e}")))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn clean_tombstones(State(s): State<Shared>) -> Result<Response, ApiError> {
    admin_enabled(&s)?;
    let db = s.db.clone();
    blocking(move || db.clean_tombstones())
        .await?
        .map_err(|e| ApiError::internal(format!("clean tombstones: {e}")))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn remote_write(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if !s.enable_remote_write {
        return (
            StatusCode::NOT_FOUND,
            "remote write receiver needs to be enabled with --web.enable-remote-write-receiver\n",
        )
            .into_response();
    }
    let header_str = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = header_str(header::CONTENT_TYPE);
    let content_encoding = header_str(header::CONTENT_ENCODING);
    let limits = s.write_limits;
    let db = s.db.clone();
    let result = tokio::task::spawn_blocking(move || {
        let raw = argus_remote::decompress_write_request(
            content_type.as_deref(),
            content_encoding.as_deref(),
            &body,
            limits,
        )?;
        argus_remote::ingest(&db, &raw)
    })
    .await;
    match result {
        Ok(Ok(_)) => StatusCode::NO_CONTENT.into_response(),
        Ok(Err(e)) => {
            if e.status() == 500 {
                tracing::error!(error = %e, "error appending remote write");
            } else {
                tracing::debug!(error = %e, "remote write rejected");
            }
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            (status, format!("{e}\n")).into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

/// Runs one query on a blocking thread under the concurrency limit, with the request's
/// timeout and cancel-on-disconnect guard (`engine_for`, built before the query is parsed, as
/// Prometheus reads the parameters in that order).
async fn run_query<T: Send + 'static>(
    s: &AppState,
    (engine, _cancel): (argus_promql::Engine, crate::query::CancelOnDrop),
    eval: impl FnOnce(&argus_promql::Engine, &Db) -> Result<T, argus_promql::EvalError> + Send + 'static,
) -> Result<T, ApiError> {
    // A deadline already past (a `timeout` of 0 or less) stops the query before it runs; one
    // that passes while it waits for a slot, in the queue, as Prometheus words them.
    let deadline = engine.opts.deadline;
    let passed = |d: Option<std::time::Instant>| d.is_some_and(|d| std::time::Instant::now() >= d);
    let expired_on_arrival = passed(deadline);
    let _slot = s
        .query_slots
        .acquire()
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    if passed(deadline) {
        let place = if expired_on_arrival {
            "query execution"
        } else {
            "query queue"
        };
        return Err(ApiError {
            kind: crate::api::ErrorType::Timeout,
            message: format!("query timed out in {place}"),
        });
    }
    let db = s.db.clone();
    let memory = s.query_memory.clone();
    blocking(move || {
        let _bound = memory.as_ref().map(|m| m.enter());
        eval(&engine, &db)
    })
    .await?
    .map_err(crate::query::eval_error)
}

async fn query(
    State(s): State<Shared>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let p = params(q, &headers, &body);
    let limit = p.limit()?;
    let t = p.time("time", argus_model::time::now_ms())?;
    let engine = crate::query::engine_for(&p, &s.engine, s.query_timeout_ms)?;
    let expr = crate::query::parse_query(&p, s.promql_features)?;
    crate::query::check_durations(&expr, 0, 0)?;
    let began = std::time::Instant::now();
    let ((mut value, annos), figures) = run_query(&s, engine, move |engine, db| {
        let queued = began.elapsed();
        engine
            .instant_annotated(db, &expr, t)
            .map(|r| (r, (queued, engine.stats())))
    })
    .await?;
    let truncated = match &mut value {
        argus_promql::Value::Vector(v) => truncate(v, limit),
        argus_promql::Value::Matrix(m) => truncate(m, limit),
        _ => false,
    };
    let data = crate::query::with_stats(crate::query::result_json(&value), &p, figures, began);
    Ok(crate::query::success_annotated(
        &data,
        &annos,
        p.get("query").unwrap_or(""),
        truncated,
    ))
}

/// Keeps the first `limit` items (0: all); true if any were dropped.
fn truncate<T>(items: &mut Vec<T>, limit: usize) -> bool {
    let cut = limit > 0 && items.len() > limit;
    if cut {
        items.truncate(limit);
    }
    cut
}

async fn query_range(
    State(s): State<Shared>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let p = params(q, &headers, &body);
    let limit = p.limit()?;
    let (start, end, step) = crate::query::range_params(&p)?;
    let engine = crate::query::engine_for(&p, &s.engine, s.query_timeout_ms)?;
    let expr = crate::query::parse_query(&p, s.promql_features)?;
    crate::query::sub_millisecond_step(step)?;
    crate::query::check_durations(&expr, step, end - start)?;
    let began = std::time::Instant::now();
    let ((mut series, annos), figures) = run_query(&s, engine, move |engine, db| {
        let queued = began.elapsed();
        engine
            .range_annotated(db, &expr, start, end, step)
            .map(|r| (r, (queued, engine.stats())))
    })
    .await?;
    let truncated = truncate(&mut series, limit);
    let data = crate::query::with_stats(crate::query::matrix_json(&series), &p, figures, began);
    Ok(crate::query::success_annotated(
        &data,
        &annos,
        p.get("query").unwrap_or(""),
        truncated,
    ))
}

#[derive(Serialize)]
struct RuntimeInfo {
    #[serde(rename = "startTime")]
    start_time: String,
    #[serde(rename = "CWD")]
    cwd: String,
    #[serde(rename = "reloadConfigSuccess")]
    reload_config_success: bool,
    #[serde(rename = "lastConfigTime")]
    last_config_time: String,
    #[serde(rename = "corruptionCount")]
    corruption_count: u64,
    #[serde(rename = "goroutineCount")]
    goroutine_count: u64,
    #[serde(rename = "GOMAXPROCS")]
    gomaxprocs: usize,
    #[serde(rename = "GOMEMLIMIT")]
    gomemlimit: i64,
    #[serde(rename = "GOGC")]
    gogc: String,
    #[serde(rename = "GODEBUG")]
    godebug: String,
    #[serde(rename = "storageRetention")]
    storage_retention: String,
}

async fn runtimeinfo(State(s): State<Shared>) -> ApiResult {
    let (reload_ok, loaded_ms) = s.lifecycle.reload_status();
    let info = RuntimeInfo {
        start_time: argus_model::time::format_rfc3339_millis(s.start_time_ms),
        cwd: std::env::current_dir()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        reload_config_success: reload_ok,
        last_config_time: argus_model::time::format_rfc3339_millis(loaded_ms),
        corruption_count: s.db.stats.wal_corruptions.load(Ordering::Relaxed),
        goroutine_count: 0,
        gomaxprocs: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        gomemlimit: i64::MAX,
        gogc: String::new(),
        godebug: String::new(),
        storage_retention: s.retention.clone(),
    };
    Ok(success(&info, &[]))
}

/// `/api/v1/status/config`: the configuration in effect.
async fn status_config(State(s): State<Shared>) -> ApiResult {
    Ok(success(
        &serde_json::json!({ "yaml": s.lifecycle.config_yaml() }),
        &[],
    ))
}

/// `/api/v1/format_query`: the query in Prometheus's pretty-printed form.
async fn format_query(
    State(s): State<Shared>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let p = params(q, &headers, &body);
    let features = s.promql_features;
    // A long query takes a while to print (each level is printed flat to measure it).
    blocking(move || {
        let expr = crate::query::parse_query(&p, features)?;
        Ok(success(&argus_promql::printer::pretty(&expr), &[]))
    })
    .await?
}

/// `/api/v1/parse_query`: the syntax tree as JSON (for the UI's tree view).
async fn parse_query(
    State(s): State<Shared>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let p = params(q, &headers, &body);
    let features = s.promql_features;
    blocking(move || {
        let expr = crate::query::parse_query(&p, features)?;
        Ok(success(&crate::ast_json::translate(&expr), &[]))
    })
    .await?
}

/// Metric metadata from the HELP/TYPE/UNIT lines of the active targets' last scrapes.
async fn metadata(State(s): State<Shared>, RawQuery(q): RawQuery) -> ApiResult {
    let p = params(q, &HeaderMap::new(), &Bytes::new());
    Ok(success(&crate::targets::metadata(&s.scrape, &p)?, &[]))
}

async fn targets(State(s): State<Shared>, RawQuery(q): RawQuery) -> ApiResult {
    let p = params(q, &HeaderMap::new(), &Bytes::new());
    Ok(success(&crate::targets::targets(&s.scrape, &p), &[]))
}

async fn targets_metadata(State(s): State<Shared>, RawQuery(q): RawQuery) -> ApiResult {
    let p = params(q, &HeaderMap::new(), &Bytes::new());
    Ok(success(
        &crate::targets::targets_metadata(&s.scrape, &p)?,
        &[],
    ))
}

async fn scrape_pools(State(s): State<Shared>) -> ApiResult {
    Ok(success(&crate::targets::scrape_pools(&s.scrape), &[]))
}

/// Exemplars are not stored yet: an empty list, as Prometheus answers when it has none.
async fn query_exemplars(
    State(s): State<Shared>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let p = params(q, &headers, &body);
    let start = p.time("start", MIN_TIME_MS)?;
    let end = p.time("end", MAX_TIME_MS)?;
    if end < start {
        return Err(ApiError::bad_data(
            "end timestamp must not be before start timestamp".into(),
        ));
    }
    let query = p.get("query").unwrap_or("");
    let expr = argus_promql::parse_with(query, s.promql_features)
        .map_err(|e| ApiError::bad_data(e.to_string()))?;
    let sets = expr.selector_matchers();
    if sets.is_empty() {
        // Prometheus's handler returns no data here, which its API answers with 204.
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let db = s.db.clone();
    let found = blocking(move || db.exemplars.select(start, end, &sets)).await?;
    Ok(crate::query::success_raw(&crate::query::exemplars_json(
        &found,
    )))
}
