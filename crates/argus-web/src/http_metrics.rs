//! The HTTP server's self-monitoring under Prometheus's names: requests by handler and status
//! code (`prometheus_http_requests_total`), their latencies
//! (`prometheus_http_request_duration_seconds`) and response sizes
//! (`prometheus_http_response_size_bytes`), each labelled with the route pattern that
//! served the request (`/api/v1/query`, `/api/v1/label/:name/values`), as dashboards for
//! Prometheus query them.

use std::sync::Arc;
use std::time::Instant;

use axum::body::HttpBody;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label pairs of one series.
type Labels = Vec<(String, String)>;

/// Prometheus's latency buckets for these handlers, in seconds.
const DURATION_BUCKETS: [f64; 9] = [0.1, 0.2, 0.4, 1.0, 3.0, 8.0, 20.0, 60.0, 120.0];

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// 100 B to 1 GB, a factor of ten apart (Prometheus's buckets).
fn size_histogram() -> Histogram {
    Histogram::new(exponential_buckets(100.0, 10.0, 8))
}

#[derive(Debug)]
pub struct HttpMetrics {
    requests: Family<Labels, Counter>,
    duration: Family<Labels, Histogram, fn() -> Histogram>,
    size: Family<Labels, Histogram, fn() -> Histogram>,
    /// Each route pattern's handler label and series, so that counting a request builds
    /// no label sets.
    routes: std::sync::RwLock<std::collections::HashMap<String, Arc<Route>>>,
}

/// One route's series.
#[derive(Debug)]
struct Route {
    handler: String,
    ok: Counter,
    /// Latency and size, created on the first request (as Prometheus's appear).
    histograms: std::sync::OnceLock<(Histogram, Histogram)>,
}

impl HttpMetrics {
    /// Registers the three families in `registry`, with the routes `patterns` (axum's
    /// route patterns) known from the start. Like Prometheus, every handler's count of
    /// successful requests is there from the start, at 0, so that `rate()` over it sees
    /// the first requests.
    pub fn register<'a>(
        registry: &mut Registry,
        patterns: impl IntoIterator<Item = &'a str>,
    ) -> Arc<Self> {
        let m = Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
            size: Family::new_with_constructor(size_histogram),
            routes: Default::default(),
        };
        for p in patterns {
            m.route(p);
        }
        // The library adds `_total` to counters' names and a full stop to the help texts.
        registry.register(
            "prometheus_http_requests",
            "Counter of HTTP requests",
            m.requests.clone(),
        );
        registry.register(
            "prometheus_http_request_duration_seconds",
            "Histogram of latencies for HTTP requests",
            m.duration.clone(),
        );
        registry.register(
            "prometheus_http_response_size_bytes",
            "Histogram of response size for HTTP requests",
            m.size.clone(),
        );
        Arc::new(m)
    }

    /// The series of the route `pattern`, created on first use.
    fn route(&self, pattern: &str) -> Arc<Route> {
        let known = self
            .routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(pattern)
            .cloned();
        if let Some(route) = known {
            return route;
        }
        let handler = handler_label(pattern);
        let ok = self
            .requests
            .get_or_create(&code_and_handler(200, &handler))
            .clone();
        self.routes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(pattern.to_string())
            .or_insert_with(|| {
                Arc::new(Route {
                    handler,
                    ok,
                    histograms: Default::default(),
                })
            })
            .clone()
    }

    fn observe(&self, pattern: &str, code: u16, seconds: f64, bytes: u64) {
        let route = self.route(pattern);
        if code == 200 {
            route.ok.inc();
        } else {
            self.requests
                .get_or_create(&code_and_handler(code, &route.handler))
                .inc();
        }
        let (duration, size) = route.histograms.get_or_init(|| {
            let h = vec![("handler".to_string(), route.handler.clone())];
            (
                self.duration.get_or_create(&h).clone(),
                self.size.get_or_create(&h).clone(),
            )
        });
        duration.observe(seconds);
        size.observe(bytes as f64);
    }
}

fn code_and_handler(code: u16, handler: &str) -> Labels {
    vec![
        ("code".to_string(), code.to_string()),
        ("handler".to_string(), handler.to_string()),
    ]
}

/// A route pattern as Prometheus's router names it: `{name}` → `:name`, `{*rest}` → `*rest`.
pub fn handler_label(pattern: &str) -> String {
    pattern
        .split('/')
        .map(
            |seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(p) if p.starts_with('*') => p.to_string(),
                Some(p) => format!(":{p}"),
                None => seg.to_string(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

/// Middleware counting every request a route served (requests no route matched are not
/// counted, as in Prometheus). The size is the response body's length where it is known
/// before sending, which it is for every handler here.
pub async fn instrument(State(m): State<Arc<HttpMetrics>>, req: Request, next: Next) -> Response {
    let pattern = req.extensions().get::<MatchedPath>().cloned();
    let began = Instant::now();
    let resp = next.run(req).await;
    if let Some(pattern) = pattern {
        let hint = resp.body().size_hint();
        let bytes = hint.exact().unwrap_or(hint.lower());
        m.observe(
            pattern.as_str(),
            resp.status().as_u16(),
            began.elapsed().as_secs_f64(),
            bytes,
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_patterns_are_named_as_prometheus_names_them() {
        assert_eq!(handler_label("/api/v1/query"), "/api/v1/query");
        assert_eq!(
            handler_label("/api/v1/label/{name}/values"),
            "/api/v1/label/:name/values"
        );
        assert_eq!(handler_label("/static/{*filepath}"), "/static/*filepath");
        assert_eq!(handler_label("/"), "/");
    }

    #[test]
    fn exposition_counts_by_code_and_handler() {
        let mut registry = Registry::default();
        let m = HttpMetrics::register(&mut registry, ["/api/v1/query", "/-/healthy"]);
        m.observe("/api/v1/query", 400, 0.15, 120);
        m.observe("/api/v1/query", 400, 0.05, 90);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        for line in [
            "# HELP prometheus_http_requests Counter of HTTP requests.",
            "# TYPE prometheus_http_requests counter",
            "prometheus_http_requests_total{code=\"200\",handler=\"/api/v1/query\"} 0",
            "prometheus_http_requests_total{code=\"200\",handler=\"/-/healthy\"} 0",
            "prometheus_http_requests_total{code=\"400\",handler=\"/api/v1/query\"} 2",
            "prometheus_http_request_duration_seconds_bucket{le=\"0.1\",handler=\"/api/v1/query\"} 1",
            "prometheus_http_request_duration_seconds_bucket{le=\"0.2\",handler=\"/api/v1/query\"} 2",
            "prometheus_http_request_duration_seconds_count{handler=\"/api/v1/query\"} 2",
            "prometheus_http_response_size_bytes_bucket{le=\"100.0\",handler=\"/api/v1/query\"} 1",
            "prometheus_http_response_size_bytes_bucket{le=\"1000.0\",handler=\"/api/v1/query\"} 2",
            "prometheus_http_response_size_bytes_sum{handler=\"/api/v1/query\"} 210.0",
        ] {
            assert!(out.lines().any(|l| l == line), "no {line:?} in\n{out}");
        }
    }
}
