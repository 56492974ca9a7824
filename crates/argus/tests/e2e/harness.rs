//! Starts the real binary with random loopback ports and temp dirs; remote-write helper;
//! polling with deadlines. Every process a test starts is stopped by its PID.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use prost::Message;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .expect("http client")
}

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub struct Argus {
    pub child: Child,
    pub port: u16,
    pub config: PathBuf,
    pub log: PathBuf,
}

pub struct ArgusBuilder {
    data: PathBuf,
    config_text: String,
    extra: Vec<String>,
}

impl ArgusBuilder {
    pub fn new(data: &Path) -> Self {
        Self {
            data: data.to_path_buf(),
            config_text: "global:\n  scrape_interval: 15s\n".to_string(),
            extra: vec![
                "--web.enable-remote-write-receiver".into(),
                "--web.enable-admin-api".into(),
                "--web.enable-lifecycle".into(),
            ],
        }
    }

    pub fn config(mut self, text: &str) -> Self {
        self.config_text = text.to_string();
        self
    }

    /// Drops the default enable-flags (remote write, admin, lifecycle).
    pub fn without_flags(mut self) -> Self {
        self.extra.clear();
        self
    }

    pub fn flag(mut self, flag: &str) -> Self {
        self.extra.push(flag.to_string());
        self
    }

    /// Starts the server and waits until `/-/ready` answers 200.
    pub fn start(self) -> Argus {
        let argus = self.spawn();
        argus.wait_ready();
        argus
    }

    /// Starts the server without waiting.
    pub fn spawn(self) -> Argus {
        std::fs::create_dir_all(&self.data).unwrap();
        let config = self.data.with_extension("yml");
        std::fs::write(&config, &self.config_text).unwrap();
        let log = self.data.with_extension("log");
        let port = free_port();
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_argus"))
            .arg("server")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", self.data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start argus");
        Argus {
            child,
            port,
            config,
            log,
        }
    }
}

impl Argus {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn wait_ready(&self) {
        let c = client();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = c.get(self.url("/-/ready")).send()
                && r.status() == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "argus not ready; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let r = client().get(self.url(path)).send().expect("GET");
        r.json().expect("JSON body")
    }

    /// `/api/v1/series` for a selector (and optional range) → label sets as JSON objects.
    pub fn series(&self, selector: &str, range: Option<(i64, i64)>) -> Vec<serde_json::Value> {
        let mut url = format!("/api/v1/series?match[]={}", urlencode(selector));
        if let Some((s, e)) = range {
            url.push_str(&format!(
                "&start={}&end={}",
                s as f64 / 1000.0,
                e as f64 / 1000.0
            ));
        }
        let v = self.get_json(&url);
        assert_eq!(v["status"], "success", "{v}");
        v["data"].as_array().cloned().unwrap_or_default()
    }

    /// Value of an unlabelled (or first) sample of `name` on `/metrics`.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let text = client()
            .get(self.url("/metrics"))
            .send()
            .ok()?
            .text()
            .ok()?;
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    pub fn write(&self, req: &WriteRequest) -> reqwest::blocking::Response {
        client()
            .post(self.url("/api/v1/write"))
            .header("Content-Type", "application/x-protobuf")
            .header("Content-Encoding", "snappy")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(encode(req))
            .send()
            .expect("remote write")
    }

    /// SIGTERM and wait (graceful shutdown).
    pub fn stop(mut self) {
        signal(&self.child, libc::SIGTERM);
        wait_exit(&mut self.child);
    }

    /// SIGKILL and wait.
    pub fn kill9(mut self) {
        signal(&self.child, libc::SIGKILL);
        wait_exit(&mut self.child);
    }
}

impl Drop for Argus {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[allow(unsafe_code)]
pub fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on the PID of a child this test started and has not reaped.
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

pub fn wait_exit(child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("process {} did not exit within 30s", child.id());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// Remote-write 1.0 messages, encoded with prost the way any sender does.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    /// Encoded `Histogram` messages (native histograms).
    #[prost(bytes = "vec", repeated, tag = "4")]
    pub histograms: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

pub fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
    TimeSeries {
        labels: labels
            .iter()
            .map(|(n, v)| Label {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect(),
        samples: samples
            .iter()
            .map(|&(timestamp, value)| Sample { value, timestamp })
            .collect(),
        histograms: Vec::new(),
    }
}

pub fn encode(req: &WriteRequest) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .expect("snappy")
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

pub fn write_file(path: &Path, text: &str) {
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// A scrape target served from the test: answers every request with the current body
/// (Prometheus text format) until dropped or stopped; with a protobuf body set, clients
/// whose `Accept` names the protobuf format get that instead, as client_golang negotiates.
pub struct Exporter {
    pub port: u16,
    pub body: std::sync::Arc<std::sync::Mutex<String>>,
    pub protobuf: std::sync::Arc<std::sync::Mutex<Option<Vec<u8>>>>,
    /// Content type of the text body.
    pub text_type: std::sync::Arc<std::sync::Mutex<String>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Exporter {
    pub fn start(body: &str) -> Self {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let body = std::sync::Arc::new(std::sync::Mutex::new(body.to_string()));
        let protobuf = std::sync::Arc::new(std::sync::Mutex::new(None::<Vec<u8>>));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let text_type = std::sync::Arc::new(std::sync::Mutex::new(
            "text/plain; version=0.0.4".to_string(),
        ));
        let (b, p, s, tt) = (
            body.clone(),
            protobuf.clone(),
            stop.clone(),
            text_type.clone(),
        );
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let wants_protobuf = String::from_utf8_lossy(&request).lines().any(|l| {
                    l.to_ascii_lowercase().starts_with("accept:")
                        && l.contains("application/vnd.google.protobuf")
                });
                let (content_type, payload) = match &*p.lock().unwrap() {
                    Some(bytes) if wants_protobuf => (
                        "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited".to_string(),
                        bytes.clone(),
                    ),
                    _ => (
                        tt.lock().unwrap().clone(),
                        b.lock().unwrap().clone().into_bytes(),
                    ),
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    payload.len()
                );
                let _ = stream.write_all(&payload);
            }
        });
        Self {
            port,
            body,
            protobuf,
            text_type,
            stop,
            thread: Some(thread),
        }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn set_body(&self, text: &str) {
        *self.body.lock().unwrap() = text.to_string();
    }

    /// Serves `text` as OpenMetrics.
    pub fn set_openmetrics(&self, text: &str) {
        *self.text_type.lock().unwrap() =
            "application/openmetrics-text; version=1.0.0; charset=utf-8".to_string();
        self.set_body(text);
    }

    /// The body for clients that ask for the protobuf format.
    pub fn set_protobuf(&self, bytes: Vec<u8>) {
        *self.protobuf.lock().unwrap() = Some(bytes);
    }

    /// Stops answering: the port is closed when this returns.
    pub fn stop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `/api/v1/query` at `time` (now when `None`): the result vector.
pub fn instant(argus: &Argus, query: &str) -> Vec<serde_json::Value> {
    let v = argus.get_json(&format!("/api/v1/query?query={}", urlencode(query)));
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}
