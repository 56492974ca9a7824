//! Service discovery: each mechanism is a [`Discoverer`] that sends the complete set of
//! target groups it currently sees whenever that set changes. Built in: `static_configs`,
//! `file_sd_configs` (JSON or YAML, watched by modification time and re-read every
//! `refresh_interval`), `http_sd_configs`, `dns_sd_configs` (`dns.rs`). More mechanisms plug
//! in through the same trait.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::{Duration as StdDuration, SystemTime};

use argus_config::prometheus::{FileSdConfig, HttpSdConfig, StaticConfig};
use serde::Deserialize;
use tokio::sync::{mpsc, watch};

use crate::target::{ADDRESS_LABEL, TargetGroup};

pub mod dns;

/// Where a discoverer sends its current groups: `(provider index, groups)`.
pub type Updates = mpsc::Sender<(usize, Vec<TargetGroup>)>;

pub type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A source of target groups. `run` sends the full current set on every change and returns
/// when `stop` turns true.
pub trait Discoverer: Send + 'static {
    fn run(
        self: Box<Self>,
        provider: usize,
        updates: Updates,
        stop: watch::Receiver<bool>,
    ) -> BoxFuture;
}

/// `static_configs`: one group per entry, sent once.
pub struct StaticDiscoverer(pub Vec<StaticConfig>);

pub fn static_groups(configs: &[StaticConfig]) -> Vec<TargetGroup> {
    configs
        .iter()
        .enumerate()
        .map(|(i, c)| TargetGroup {
            source: i.to_string(),
            targets: c
                .targets
                .iter()
                .map(|t| BTreeMap::from([(ADDRESS_LABEL.to_string(), t.clone())]))
                .collect(),
            labels: c.labels.clone(),
        })
        .collect()
}

impl Discoverer for StaticDiscoverer {
    fn run(
        self: Box<Self>,
        provider: usize,
        updates: Updates,
        _stop: watch::Receiver<bool>,
    ) -> BoxFuture {
        Box::pin(async move {
            let _ = updates.send((provider, static_groups(&self.0))).await;
        })
    }
}

/// The file and HTTP SD wire format: `[{"targets": [...], "labels": {...}}]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupDoc {
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

/// Parses a list of groups, checking what Prometheus checks.
fn parse_groups(
    docs: Vec<GroupDoc>,
    source_prefix: &str,
    extra: &[(&str, &str)],
) -> Result<Vec<TargetGroup>, String> {
    let mut out = Vec::with_capacity(docs.len());
    for (i, doc) in docs.into_iter().enumerate() {
        let mut labels = doc.labels.unwrap_or_default();
        if labels.keys().any(String::is_empty) {
            return Err("\"\" is not a valid label name".into());
        }
        for (name, value) in extra {
            labels.insert(name.to_string(), value.to_string());
        }
        let mut targets = Vec::with_capacity(doc.targets.len());
        for t in doc.targets {
            if t.contains('/') {
                return Err(format!("{t:?} is not a valid hostname"));
            }
            targets.push(BTreeMap::from([(ADDRESS_LABEL.to_string(), t)]));
        }
        out.push(TargetGroup {
            source: format!("{source_prefix}:{i}"),
            targets,
            labels,
        });
    }
    Ok(out)
}

/// Reads one file SD file (format by extension, as Prometheus decides).
pub fn read_sd_file(path: &Path) -> Result<Vec<TargetGroup>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let docs: Vec<GroupDoc> = match ext {
        "json" => serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?,
        "yml" | "yaml" => {
            if text.trim().is_empty() {
                Vec::new()
            } else {
                serde_saphyr::from_str(&text).map_err(|e| {
                    format!(
                        "{}: {}",
                        path.display(),
                        e.to_string().lines().next().unwrap_or("")
                    )
                })?
            }
        }
        other => {
            return Err(format!(
                "retrieval of target groups from {} failed: unknown file extension {other:?}",
                path.display()
            ));
        }
    };
    let display = path.display().to_string();
    parse_groups(docs, &display, &[("__meta_filepath", &display)])
}

/// Files matching a pattern whose last component may hold `*` and `?`.
pub fn expand_pattern(pattern: &str) -> Vec<PathBuf> {
    let path = Path::new(pattern);
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Vec::new();
    };
    if !name.contains(['*', '?']) {
        return if path.exists() {
            vec![path.to_path_buf()]
        } else {
            Vec::new()
        };
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_str().is_some_and(|n| glob_match(name, n)))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

fn glob_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|i| go(&p[1..], &n[i..])),
            Some('?') => !n.is_empty() && go(&p[1..], &n[1..]),
            Some(c) => n.first() == Some(c) && go(&p[1..], &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

/// A discoverer's end of the updates channel: sends its full set of groups only when it
/// changed since the last send.
pub struct Outbox {
    provider: usize,
    updates: Updates,
    last: Option<Vec<TargetGroup>>,
}

impl Outbox {
    pub fn new(provider: usize, updates: Updates) -> Self {
        Self {
            provider,
            updates,
            last: None,
        }
    }

    /// False when the manager is gone (the discoverer should return).
    pub async fn send_if_changed(&mut self, groups: Vec<TargetGroup>) -> bool {
        if self.last.as_ref() == Some(&groups) {
            return true;
        }
        if self
            .updates
            .send((self.provider, groups.clone()))
            .await
            .is_err()
        {
            return false;
        }
        self.last = Some(groups);
        true
    }
}

/// A configured `refresh_interval`, at least a second.
fn refresh_period(interval: argus_model::Duration) -> StdDuration {
    interval.as_std().max(StdDuration::from_secs(1))
}

/// Waits `wait`; true when the discoverer was told to stop meanwhile (or before).
async fn stopped_within(wait: StdDuration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(wait) => {}
        changed = stop.changed() => if changed.is_err() { return true; },
    }
    *stop.borrow()
}

/// `file_sd_configs`: re-reads when a file's modification time or the set of files changes
/// (checked every second) and every `refresh_interval`. A file that fails to read or parse
/// keeps its previous groups, as in Prometheus.
pub struct FileDiscoverer {
    pub config: FileSdConfig,
    pub read_errors: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Discoverer for FileDiscoverer {
    fn run(
        self: Box<Self>,
        provider: usize,
        updates: Updates,
        mut stop: watch::Receiver<bool>,
    ) -> BoxFuture {
        Box::pin(async move {
            let refresh = refresh_period(self.config.refresh_interval);
            let mut outbox = Outbox::new(provider, updates);
            let mut last_groups: BTreeMap<PathBuf, Vec<TargetGroup>> = BTreeMap::new();
            let mut last_stamp: Option<Vec<(PathBuf, Option<SystemTime>)>> = None;
            let mut last_full = tokio::time::Instant::now();
            loop {
                let patterns = self.config.files.clone();
                let stamps = tokio::task::spawn_blocking(move || {
                    let mut stamps: Vec<(PathBuf, Option<SystemTime>)> = patterns
                        .iter()
                        .flat_map(|p| expand_pattern(p))
                        .map(|p| {
                            let m = std::fs::metadata(&p).and_then(|m| m.modified()).ok();
                            (p, m)
                        })
                        .collect();
                    stamps.sort();
                    stamps.dedup();
                    stamps
                })
                .await
                .unwrap_or_default();
                let due = last_full.elapsed() >= refresh;
                if last_stamp.as_ref() != Some(&stamps) || due {
                    last_full = tokio::time::Instant::now();
                    let files: Vec<PathBuf> = stamps.iter().map(|(p, _)| p.clone()).collect();
                    let read = tokio::task::spawn_blocking(move || {
                        files
                            .into_iter()
                            .map(|f| {
                                let groups = read_sd_file(&f);
                                (f, groups)
                            })
                            .collect::<Vec<_>>()
                    })
                    .await
                    .unwrap_or_default();
                    let mut groups_by_file = BTreeMap::new();
                    for (file, result) in read {
                        match result {
                            Ok(groups) => {
                                groups_by_file.insert(file, groups);
                            }
                            Err(e) => {
                                self.read_errors
                                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                tracing::error!(error = %e, "error reading file SD file");
                                if let Some(previous) = last_groups.get(&file) {
                                    groups_by_file.insert(file, previous.clone());
                                }
                            }
                        }
                    }
                    let all: Vec<TargetGroup> =
                        groups_by_file.values().flatten().cloned().collect();
                    last_groups = groups_by_file;
                    last_stamp = Some(stamps);
                    if !outbox.send_if_changed(all).await {
                        return;
                    }
                }
                if stopped_within(StdDuration::from_secs(1), &mut stop).await {
                    return;
                }
            }
        })
    }
}

/// `http_sd_configs`: GETs the URL every `refresh_interval`; a failed refresh keeps the
/// previous groups.
pub struct HttpDiscoverer {
    pub config: HttpSdConfig,
    pub client: reqwest::Client,
}

impl HttpDiscoverer {
    async fn fetch(&self) -> Result<Vec<TargetGroup>, String> {
        let url = &self.config.url;
        let request = self
            .client
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(StdDuration::from_secs(30));
        // The same credentials handling as scrapes (files re-read on every request).
        let request = match crate::scrape_loop::auth_header(&self.config.http).await? {
            Some(value) => request.header(reqwest::header::AUTHORIZATION, value),
            None => request,
        };
        let response = request
            .send()
            .await
            .map_err(|e| crate::scrape_loop::describe_error(url, &e))?;
        let content_type = crate::scrape_loop::ok_content_type(&response)?.unwrap_or_default();
        if !content_type
            .split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        {
            return Err(format!("unsupported content type {content_type:?}"));
        }
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        let docs: Vec<GroupDoc> = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        parse_groups(docs, url, &[("__meta_url", url)])
    }
}

impl Discoverer for HttpDiscoverer {
    fn run(
        self: Box<Self>,
        provider: usize,
        updates: Updates,
        mut stop: watch::Receiver<bool>,
    ) -> BoxFuture {
        Box::pin(async move {
            let refresh = refresh_period(self.config.refresh_interval);
            let mut outbox = Outbox::new(provider, updates);
            loop {
                match self.fetch().await {
                    Ok(groups) => {
                        if !outbox.send_if_changed(groups).await {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::error!(url = %self.config.url, error = %e, "HTTP SD refresh failed")
                    }
                }
                if stopped_within(refresh, &mut stop).await {
                    return;
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_sd_reads_json_and_yaml_and_refuses_junk() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("a.json");
        std::fs::write(
            &json,
            r#"[{"targets": ["h1:1", "h2:2"], "labels": {"env": "prod"}}, {"targets": ["h3:3"]}]"#,
        )
        .unwrap();
        let groups = read_sd_file(&json).unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].targets.len(), 2);
        assert_eq!(
            groups[0].labels.get("env").map(String::as_str),
            Some("prod")
        );
        assert_eq!(
            groups[1].labels.get("__meta_filepath").map(String::as_str),
            Some(json.to_str().unwrap())
        );
        let yaml = dir.path().join("b.yml");
        std::fs::write(&yaml, "- targets: ['h4:4']\n  labels:\n    team: x\n").unwrap();
        assert_eq!(
            read_sd_file(&yaml).unwrap()[0].targets[0]["__address__"],
            "h4:4"
        );
        std::fs::write(&yaml, "- targets: ['bad/host']\n").unwrap();
        assert!(
            read_sd_file(&yaml)
                .unwrap_err()
                .contains("not a valid hostname")
        );
        std::fs::write(&yaml, "- targts: ['h']\n").unwrap();
        assert!(read_sd_file(&yaml).is_err());
        let txt = dir.path().join("c.txt");
        std::fs::write(&txt, "[]").unwrap();
        assert!(
            read_sd_file(&txt)
                .unwrap_err()
                .contains("unknown file extension")
        );
        let mut found = expand_pattern(&format!("{}/*.json", dir.path().display()));
        found.extend(expand_pattern(&format!("{}/?.yml", dir.path().display())));
        assert_eq!(found, vec![json, yaml]);
    }

    /// A one-request-at-a-time HTTP server on loopback answering every request with the
    /// status and body `answer` gives for the request's `Authorization` header.
    fn http_server(answer: fn(Option<&str>) -> (u16, String)) -> String {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let _ = stream.set_read_timeout(Some(StdDuration::from_secs(5)));
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request).to_string();
                let auth = text.lines().find_map(|l| {
                    l.strip_prefix("authorization: ")
                        .or_else(|| l.strip_prefix("Authorization: "))
                });
                let (status, body) = answer(auth);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        format!("http://{address}/sd")
    }

    /// HTTP SD sends the configured credentials, as scrapes do, and reports failures in
    /// Go's words.
    #[test]
    fn http_sd_sends_credentials_and_reads_groups() {
        let url = http_server(|auth| match auth {
            // "user:secret"
            Some("Basic dXNlcjpzZWNyZXQ=") => (
                200,
                r#"[{"targets": ["h1:1"], "labels": {"env": "prod"}}]"#.to_string(),
            ),
            _ => (401, "[]".to_string()),
        });
        let discoverer = |url: &str, extra: &str| {
            let yaml = format!(
                "scrape_configs:\n  - job_name: a\n    http_sd_configs:\n      - url: {url}\n{extra}"
            );
            let config = argus_config::parse_str(&yaml, "t.yml").unwrap();
            let config = config.scrape_configs[0].http_sd_configs[0].clone();
            HttpDiscoverer {
                client: crate::manager::build_client(&config.http).unwrap(),
                config,
            }
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let with_auth = discoverer(
            &url,
            "        basic_auth:\n          username: user\n          password: secret\n",
        );
        let groups = runtime.block_on(with_auth.fetch()).unwrap();
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].targets[0]["__address__"], "h1:1");
        assert_eq!(
            groups[0].labels.get("__meta_url").map(String::as_str),
            Some(url.as_str())
        );
        let without = discoverer(&url, "");
        assert_eq!(
            runtime.block_on(without.fetch()).unwrap_err(),
            "server returned HTTP status 401 Unauthorized"
        );
        let nobody = discoverer("http://127.0.0.1:1/sd", "");
        assert_eq!(
            runtime.block_on(nobody.fetch()).unwrap_err(),
            "Get \"http://127.0.0.1:1/sd\": dial tcp 127.0.0.1:1: connect: connection refused"
        );
    }

    #[test]
    fn globs() {
        assert!(glob_match("*.json", "a.json"));
        assert!(glob_match("t?.yml", "t1.yml"));
        assert!(!glob_match("*.json", "a.yml"));
        assert!(glob_match("*", ""));
    }
}
