//! Interop with the real Prometheus 2.42 (Debian package `prometheus`, installed by
//! `scripts/test.sh`): it scrapes itself and remote-writes to argus; argus must end up with
//! exactly the metric names that Prometheus itself stores.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::harness::*;

fn prometheus_binary() -> String {
    binary("prometheus", "prometheus")
}

/// A process the test started, stopped by its PID.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        signal(&self.0, libc::SIGTERM);
        wait_exit(&mut self.0);
    }
}

type Sets = (BTreeSet<String>, BTreeSet<String>);

/// Waits until `fetch` returns (argus's set, Prometheus's set) equal and holding at least
/// `min` entries; past `timeout` it fails naming what is only on one side, with argus's log.
fn wait_same(
    argus: &Argus,
    timeout: Duration,
    what: &str,
    min: usize,
    mut fetch: impl FnMut() -> Option<Sets>,
) {
    let mut last: Sets = (BTreeSet::new(), BTreeSet::new());
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for(timeout, what, || {
            let (a, p) = fetch()?;
            let same = a == p && a.len() >= min;
            last = (a, p);
            same.then_some(())
        })
    }));
    if outcome.is_err() {
        let (a, p) = &last;
        panic!(
            "{what}: sets differ\nonly in prometheus: {:#?}\nonly in argus: {:#?}\nargus log:\n{}",
            p.difference(a).collect::<Vec<_>>(),
            a.difference(p).collect::<Vec<_>>(),
            argus.log_text()
        );
    }
}

fn names(url: &str) -> Option<BTreeSet<String>> {
    let v: serde_json::Value = client().get(url).send().ok()?.json().ok()?;
    Some(
        v["data"]
            .as_array()?
            .iter()
            .filter_map(|n| n.as_str().map(str::to_string))
            .collect(),
    )
}

#[test]
fn prometheus_remote_write_delivers_every_metric_name() {
    let dir = tempfile::tempdir().unwrap();
    let argus = ArgusBuilder::new(&dir.path().join("argus")).start();
    let prom_port = free_port();
    let _prom = start_prometheus(
        dir.path(),
        &format!(
            "global:\n  scrape_interval: 1s\n\
             scrape_configs:\n  - job_name: prometheus\n    static_configs:\n      - targets: ['127.0.0.1:{prom_port}']\n\
             remote_write:\n  - url: {}\n    queue_config:\n      batch_send_deadline: 1s\n      min_backoff: 100ms\n      max_backoff: 1s\n",
            argus.url("/api/v1/write")
        ),
        prom_port,
        &[],
    );
    let prom_names = format!("http://127.0.0.1:{prom_port}/api/v1/label/__name__/values");
    let argus_names = argus.url("/api/v1/label/__name__/values");
    // Let Prometheus scrape itself a few times so that its set of names settles.
    wait_for(
        Duration::from_secs(60),
        "Prometheus to store its own metrics",
        || names(&prom_names).filter(|n| n.len() > 100 && n.contains("up")),
    );
    wait_same(
        &argus,
        Duration::from_secs(90),
        "argus to hold the same metric names",
        1,
        || Some((names(&argus_names)?, names(&prom_names)?)),
    );
    // And the series labels carry over too: Prometheus's `up` series for its own job.
    let up = argus.series("up", None);
    assert_eq!(up.len(), 1);
    assert_eq!(up[0]["job"], "prometheus");
    assert_eq!(up[0]["instance"], format!("127.0.0.1:{prom_port}"));
}

fn binary(name: &str, package: &str) -> String {
    Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| {
            panic!("this interop test needs {name}: apt-get install {package} (scripts/test.sh does this)")
        })
}

fn spawn_peer(bin: &str, args: &[String], log: &std::path::Path) -> Peer {
    let log = std::fs::File::create(log).unwrap();
    Peer(
        Command::new(bin)
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {bin}: {e}")),
    )
}

/// The real Prometheus on `port` with `config_text` and `flags`, its data and log in `dir`.
fn start_prometheus(dir: &std::path::Path, config_text: &str, port: u16, flags: &[&str]) -> Peer {
    let config = dir.join("prometheus.yml");
    write_file(&config, config_text);
    let mut args = vec![
        format!("--config.file={}", config.display()),
        format!("--storage.tsdb.path={}", dir.join("prom-data").display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
    ];
    args.extend(flags.iter().map(|f| f.to_string()));
    spawn_peer(&prometheus_binary(), &args, &dir.join("prometheus.log"))
}

/// Argus and the real Prometheus on the same config and extra flags: (argus, Prometheus,
/// Prometheus's URL).
fn start_both(dir: &std::path::Path, config_text: &str, flags: &[&str]) -> (Argus, Peer, String) {
    let mut argus = ArgusBuilder::new(&dir.join("argus")).config(config_text);
    for flag in flags {
        argus = argus.flag(flag);
    }
    let argus = argus.start();
    let port = free_port();
    let prom = start_prometheus(dir, config_text, port, flags);
    (argus, prom, format!("http://127.0.0.1:{port}"))
}

/// The series an instant query for `{job="JOB"}` returns, as sorted label strings, with
/// `le` and `quantile` values spelled one way (Prometheus 3, and argus, write `1.0` where
/// 2.42 keeps the exporter's `1`).
fn current_series(base: &str, job: &str) -> Option<BTreeSet<String>> {
    let url = format!(
        "{base}/api/v1/query?query={}",
        urlencode(&format!("{{job=\"{job}\"}}"))
    );
    let v: serde_json::Value = client().get(url).send().ok()?.json().ok()?;
    let mut out = BTreeSet::new();
    for r in v["data"]["result"].as_array()? {
        let mut labels: Vec<String> = r["metric"]
            .as_object()?
            .iter()
            .map(|(k, v)| {
                let v = v.as_str().unwrap_or("");
                let v = match (k.as_str(), v.parse::<f64>()) {
                    ("le" | "quantile", Ok(f)) => format!("{f:?}"),
                    _ => v.to_string(),
                };
                format!("{k}={v:?}")
            })
            .collect();
        labels.sort();
        out.insert(labels.join(","));
    }
    Some(out)
}

/// Argus and Prometheus 2.42 scrape the same real exporters (node_exporter, pushgateway,
/// blackbox_exporter probing node_exporter) at the same time, from the same
/// `scrape_configs`; both must hold the same series.
#[test]
fn argus_and_prometheus_scrape_the_same_series_from_real_exporters() {
    let dir = tempfile::tempdir().unwrap();
    let node_port = free_port();
    let push_port = free_port();
    let blackbox_port = free_port();
    let _node = spawn_peer(
        &binary("prometheus-node-exporter", "prometheus-node-exporter"),
        &[format!("--web.listen-address=127.0.0.1:{node_port}")],
        &dir.path().join("node.log"),
    );
    let _push = spawn_peer(
        &binary("prometheus-pushgateway", "prometheus-pushgateway"),
        &[
            format!("--web.listen-address=127.0.0.1:{push_port}"),
            format!(
                "--persistence.file={}",
                dir.path().join("push.data").display()
            ),
        ],
        &dir.path().join("push.log"),
    );
    let blackbox_config = dir.path().join("blackbox.yml");
    write_file(
        &blackbox_config,
        "modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n",
    );
    let _blackbox = spawn_peer(
        &binary(
            "prometheus-blackbox-exporter",
            "prometheus-blackbox-exporter",
        ),
        &[
            format!("--web.listen-address=127.0.0.1:{blackbox_port}"),
            format!("--config.file={}", blackbox_config.display()),
        ],
        &dir.path().join("blackbox.log"),
    );
    // Something pushed, so the pushgateway exposes pushed groups too.
    wait_for(Duration::from_secs(30), "pushgateway", || {
        client()
            .post(format!(
                "http://127.0.0.1:{push_port}/metrics/job/batch/instance/worker1"
            ))
            .body(
                "# TYPE batch_last_success_seconds gauge\nbatch_last_success_seconds 1700000000\n",
            )
            .send()
            .ok()
            .filter(|r| r.status().is_success())
    });
    let jobs = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
         scrape_configs:\n\
         \x20 - job_name: node\n    static_configs:\n      - targets: ['127.0.0.1:{node_port}']\n\
         \x20 - job_name: pushgateway\n    honor_labels: true\n    static_configs:\n      - targets: ['127.0.0.1:{push_port}']\n\
         \x20 - job_name: blackbox\n    metrics_path: /probe\n    params:\n      module: [http_2xx]\n\
         \x20   static_configs:\n      - targets: ['127.0.0.1:{node_port}']\n\
         \x20   relabel_configs:\n\
         \x20     - source_labels: [__address__]\n        target_label: __param_target\n        replacement: http://${{1}}/metrics\n\
         \x20     - source_labels: [__param_target]\n        target_label: instance\n\
         \x20     - target_label: __address__\n        replacement: 127.0.0.1:{blackbox_port}\n"
    );
    let (argus, _prom, prom) = start_both(dir.path(), &jobs, &[]);
    let argus_base = argus.url("");
    for job in ["node", "pushgateway", "batch", "blackbox"] {
        // Series that come and go with timing (a collector that was slow once) settle within
        // a few scrapes; compare until both agree or the deadline passes.
        wait_same(
            &argus,
            Duration::from_secs(60),
            &format!("job {job}: the same series"),
            1,
            || {
                Some((
                    current_series(&argus_base, job)?,
                    current_series(&prom, job)?,
                ))
            },
        );
    }
    // Both see the probe succeed.
    let v = argus.get_json(&format!(
        "/api/v1/query?query={}",
        urlencode("probe_success{job=\"blackbox\"}")
    ));
    assert_eq!(v["data"]["result"][0]["value"][1], "1", "{v}");
}

/// `program args < stdin`: its exit code, stdout and stderr.
fn run(program: &str, args: &[&str], stdin: &[u8]) -> (Option<i32>, String, String) {
    use std::io::Write as _;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// argus's own `/metrics` is the Prometheus text format unless OpenMetrics is asked for, as
/// Prometheus's is, and `promtool check metrics` finds nothing to say about it.
#[test]
fn own_metrics_pass_promtool_check_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let argus = ArgusBuilder::new(&dir.path().join("data")).start();
    let r = client()
        .get(argus.url("/api/v1/query?query=up"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = client().get(argus.url("/metrics")).send().unwrap();
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let body = r.text().unwrap();
    assert!(
        body.contains("# TYPE prometheus_http_requests_total counter\n") && !body.contains("# EOF"),
        "{body}"
    );
    let promtool = binary("promtool", "prometheus");
    assert_eq!(
        run(&promtool, &["check", "metrics"], body.as_bytes()),
        (Some(0), String::new(), String::new()),
        "{body}"
    );
    let r = client()
        .get(argus.url("/metrics"))
        .header(
            "Accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )
        .send()
        .unwrap();
    assert_eq!(
        r.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(r.text().unwrap().ends_with("# EOF\n"));
}

/// `argus tool check metrics` says what `promtool check metrics` says about real
/// node_exporter output (and exits the same way), and `check config` agrees with
/// `promtool check config` on a good and a bad file.
#[test]
fn tool_check_agrees_with_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _node = spawn_peer(
        &binary("prometheus-node-exporter", "prometheus-node-exporter"),
        &[format!("--web.listen-address=127.0.0.1:{port}")],
        &dir.path().join("node.log"),
    );
    let body = wait_for(Duration::from_secs(30), "node_exporter", || {
        client()
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .ok()?
            .text()
            .ok()
    });
    let promtool = binary("promtool", "prometheus");
    let argus = env!("CARGO_BIN_EXE_argus");
    let theirs = run(&promtool, &["check", "metrics"], body.as_bytes());
    let ours = run(argus, &["tool", "check", "metrics"], body.as_bytes());
    assert_eq!(ours, theirs);
    assert_eq!(ours.0, Some(3), "node_exporter has lint findings: {ours:?}");
    let good = dir.path().join("good.yml");
    write_file(
        &good,
        "scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: ['a:1']\n",
    );
    let bad = dir.path().join("bad.yml");
    write_file(
        &bad,
        "scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: ['http://a']\n",
    );
    for (file, code) in [(&good, 0), (&bad, 1)] {
        let path = file.to_str().unwrap();
        let theirs = run(&promtool, &["check", "config", path], b"");
        let ours = run(argus, &["tool", "check", "config", path], b"");
        assert_eq!(theirs.0, Some(code));
        assert_eq!(ours.0, theirs.0, "{ours:?} vs {theirs:?}");
        if code == 0 {
            assert_eq!(ours.1, theirs.1);
        } else {
            assert!(
                ours.1.contains("\"http://a\" is not a valid hostname"),
                "{ours:?}"
            );
        }
    }
}

/// A CA and certificates for the TLS tests: (CA PEM, server cert PEM, server key PEM, client
/// cert PEM, client key PEM); the server certificate names only `argus-test.example`.
fn tls_material() -> [String; 5] {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "argus interop CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = params.self_signed(&ca_key).unwrap();
    let issue = |name: &str| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server_cert, server_key) = issue("argus-test.example");
    let (client_cert, client_key) = issue("argus-client");
    [ca.pem(), server_cert, server_key, client_cert, client_key]
}

/// The `lastError` and `health` of a job's one target in `/api/v1/targets`.
fn target_state(base: &str, job: &str) -> Option<(String, String)> {
    let v: serde_json::Value = client()
        .get(format!("{base}/api/v1/targets"))
        .send()
        .ok()?
        .json()
        .ok()?;
    let t = v["data"]["activeTargets"]
        .as_array()?
        .iter()
        .find(|t| t["labels"]["job"] == job)?;
    let health = t["health"].as_str()?.to_string();
    (health != "unknown").then(|| (health, t["lastError"].as_str().unwrap_or("").to_string()))
}

/// node_exporter serving HTTPS and demanding a client certificate (its `--web.config.file`):
/// argus scrapes it with `ca_file`, `cert_file`/`key_file` and `server_name` and stores the
/// same series as Prometheus 2.42 with the same config; a job without the CA and
/// `server_name` fails on both with the same certificate error; the client speaks HTTP/2 to it unless `enable_http2`
/// is false.
#[test]
fn argus_scrapes_a_tls_exporter_like_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let [ca, cert, key, client_cert, client_key] = tls_material();
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        write_file(&path, text);
        path.display().to_string()
    };
    let ca_file = file("ca.pem", &ca);
    let web_config = file(
        "web.yml",
        &format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {ca_file}\n",
            file("server.pem", &cert),
            file("server.key", &key)
        ),
    );
    let client_cert_file = file("client.pem", &client_cert);
    let client_key_file = file("client.key", &client_key);
    let node_port = free_port();
    let _node = spawn_peer(
        &binary("prometheus-node-exporter", "prometheus-node-exporter"),
        &[
            format!("--web.listen-address=127.0.0.1:{node_port}"),
            format!("--web.config.file={web_config}"),
        ],
        &dir.path().join("node.log"),
    );
    let tls = format!(
        "    scheme: https\n    tls_config:\n      ca_file: {ca_file}\n      cert_file: {client_cert_file}\n      key_file: {client_key_file}\n      server_name: argus-test.example\n"
    );
    let jobs = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
         scrape_configs:\n\
         \x20 - job_name: node_tls\n{tls}    static_configs:\n      - targets: ['127.0.0.1:{node_port}']\n\
         \x20 - job_name: node_no_ca\n    scheme: https\n    static_configs:\n      - targets: ['127.0.0.1:{node_port}']\n"
    );
    let (argus, _prom, prom) = start_both(dir.path(), &jobs, &[]);
    let argus_base = argus.url("");

    wait_same(
        &argus,
        Duration::from_secs(60),
        "the same series over TLS",
        100,
        || {
            Some((
                current_series(&argus_base, "node_tls")?,
                current_series(&prom, "node_tls")?,
            ))
        },
    );
    let (health, error) = target_state(&argus_base, "node_tls").unwrap();
    assert_eq!((health.as_str(), error.as_str()), ("up", ""));

    // Without the CA both fail on the certificate. Go 1.20 put "tls: failed to verify
    // certificate: " in front of x509 errors; argus words it as current Prometheus does,
    // the Debian 2.42 may predate that.
    let (ours, theirs) = wait_for(Duration::from_secs(30), "both scraped node_no_ca", || {
        Some((
            target_state(&argus_base, "node_no_ca")?,
            target_state(&prom, "node_no_ca")?,
        ))
    });
    let url = format!("https://127.0.0.1:{node_port}/metrics");
    assert_eq!(ours.0, "down");
    assert_eq!(
        ours.1,
        format!(
            "Get {url:?}: tls: failed to verify certificate: x509: cannot validate certificate for 127.0.0.1 because it doesn't contain any IP SANs"
        )
    );
    assert_eq!(theirs.0, "down");
    assert_eq!(
        ours.1.replace("tls: failed to verify certificate: ", ""),
        theirs.1.replace("tls: failed to verify certificate: ", ""),
    );

    // HTTP/2 is negotiated through ALPN, and only when enabled.
    let http_version = |enable_http2: bool| {
        let http = argus_config::http::HttpClientConfig {
            enable_http2,
            tls_config: Some(argus_config::http::TlsConfig {
                ca_file: Some(ca_file.clone()),
                cert_file: Some(client_cert_file.clone()),
                key_file: Some(client_key_file.clone()),
                server_name: Some("argus-test.example".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let client = argus_scrape::manager::build_client(&http).unwrap();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async { client.get(&url).send().await.map(|r| r.version()) })
            .unwrap()
    };
    assert_eq!(http_version(true), reqwest::Version::HTTP_2);
    assert_eq!(http_version(false), reqwest::Version::HTTP_11);
}

/// A config scraping `address` every second as job `job`.
fn one_job(job: &str, address: &str) -> String {
    format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
         scrape_configs:\n  - job_name: {job}\n    static_configs:\n      - targets: ['{address}']\n"
    )
}

/// The protobuf families the native-histogram interop test serves: a counter, a summary and
/// histograms carrying both a classic and a native representation (integer and float
/// counts, two label sets).
fn protobuf_families() -> Vec<u8> {
    use argus_exposition::protobuf::dto::*;
    use prost::Message as _;
    let pair = |n: &str, v: &str| LabelPair {
        name: n.into(),
        value: v.into(),
    };
    let family = |name: &str, kind: MetricType, metric: Vec<Metric>| MetricFamily {
        name: name.into(),
        help: format!("{name} help"),
        r#type: kind as i32,
        metric,
        unit: String::new(),
    };
    let native = |path: &str, scale: u64| Metric {
        label: vec![pair("path", path)],
        histogram: Some(Histogram {
            sample_count: 14 * scale,
            sample_sum: 12.5 * scale as f64,
            bucket: vec![
                Bucket {
                    cumulative_count: 4 * scale,
                    upper_bound: 1.0,
                    ..Default::default()
                },
                Bucket {
                    cumulative_count: 9 * scale,
                    upper_bound: 2.5,
                    ..Default::default()
                },
            ],
            schema: 1,
            zero_threshold: 0.001,
            zero_count: scale,
            positive_span: vec![
                BucketSpan {
                    offset: -1,
                    length: 2,
                },
                BucketSpan {
                    offset: 1,
                    length: 1,
                },
            ],
            positive_delta: vec![3 * scale as i64, 2 * scale as i64, -(scale as i64)],
            negative_span: vec![BucketSpan {
                offset: 0,
                length: 1,
            }],
            negative_delta: vec![scale as i64],
            ..Default::default()
        }),
        ..Default::default()
    };
    let float_native = Metric {
        label: vec![pair("path", "/float")],
        histogram: Some(Histogram {
            sample_count_float: 3.5,
            sample_sum: 7.25,
            schema: 0,
            zero_threshold: 0.5,
            zero_count_float: 0.5,
            positive_span: vec![BucketSpan {
                offset: 0,
                length: 2,
            }],
            positive_count: vec![1.0, 2.0],
            ..Default::default()
        }),
        ..Default::default()
    };
    let families = [
        family(
            "jobs_total",
            MetricType::Counter,
            vec![Metric {
                label: vec![pair("kind", "batch")],
                counter: Some(Counter {
                    value: 42.0,
                    ..Default::default()
                }),
                ..Default::default()
            }],
        ),
        family(
            "rpc_seconds",
            MetricType::Summary,
            vec![Metric {
                summary: Some(Summary {
                    sample_count: 7,
                    sample_sum: 3.5,
                    quantile: vec![
                        Quantile {
                            quantile: 0.5,
                            value: 0.25,
                        },
                        Quantile {
                            quantile: 0.99,
                            value: 1.5,
                        },
                    ],
                    created_timestamp: None,
                }),
                ..Default::default()
            }],
        ),
        family(
            "latency_seconds",
            MetricType::Histogram,
            vec![native("/a", 1), native("/b", 3), float_native],
        ),
    ];
    let mut out = Vec::new();
    for f in &families {
        f.encode_length_delimited(&mut out).unwrap();
    }
    out
}

/// Query results keyed by their label sets, each with its value or histogram (timestamps
/// left out: the two servers scrape at different moments).
fn results_without_time(base: &str, query: &str) -> Option<BTreeSet<String>> {
    let url = format!("{base}/api/v1/query?query={}", urlencode(query));
    let v: serde_json::Value = client().get(url).send().ok()?.json().ok()?;
    let mut out = BTreeSet::new();
    for r in v["data"]["result"].as_array()? {
        let point = if r["histogram"].is_null() {
            r["value"][1].clone()
        } else {
            r["histogram"][1].clone()
        };
        out.insert(format!("{} {point}", r["metric"]));
    }
    Some(out)
}

/// With `--enable-feature=native-histograms` both argus and Prometheus 2.42 ask a target for
/// the protobuf format first; from the same protobuf body (counter, summary, histograms with
/// classic and native parts) they must store the same series and answer histogram queries
/// the same. Stopping the target makes the native histograms go stale in argus.
#[test]
fn native_histograms_over_protobuf_match_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let mut exporter = Exporter::start("text_fallback_only 1\n");
    exporter.set_protobuf(protobuf_families());
    let jobs = one_job("proto", &exporter.address());
    let (argus, _prom, prom) =
        start_both(dir.path(), &jobs, &["--enable-feature=native-histograms"]);
    let argus_base = argus.url("");
    wait_same(
        &argus,
        Duration::from_secs(60),
        "the same series from protobuf",
        10,
        || {
            Some((
                current_series(&argus_base, "proto")?,
                current_series(&prom, "proto")?,
            ))
        },
    );
    let series = current_series(&argus_base, "proto").unwrap();
    assert!(
        series
            .iter()
            .any(|s| s.contains(r#"__name__="latency_seconds""#))
            && !series.iter().any(|s| s.contains("latency_seconds_bucket"))
            && !series.iter().any(|s| s.contains("text_fallback_only")),
        "native histograms from protobuf expected: {series:#?}"
    );
    // Not compared: histogram_quantile, which Prometheus 3 interpolates exponentially
    // within exponential buckets where 2.42 interpolates linearly (the upstream PromQL test
    // scripts hold argus to the 3.x results).
    for query in [
        "latency_seconds",
        "rpc_seconds",
        "jobs_total",
        "histogram_count(latency_seconds)",
        "histogram_sum(latency_seconds)",
        "histogram_fraction(0, 2, latency_seconds)",
        "sum(latency_seconds)",
    ] {
        wait_same(&argus, Duration::from_secs(30), query, 1, || {
            Some((
                results_without_time(&argus_base, query)?,
                results_without_time(&prom, query)?,
            ))
        });
    }
    exporter.stop();
    wait_for(
        Duration::from_secs(30),
        "the histograms to go stale",
        || results_without_time(&argus_base, "latency_seconds").filter(BTreeSet::is_empty),
    );
}

/// node_exporter answers argus in the protobuf format (`scrape_protocols: [PrometheusProto]`)
/// and Prometheus 2.42 in the text format: both must hold the same series (summaries and
/// classic histograms read from protobuf included).
#[test]
fn node_exporter_over_protobuf_matches_prometheus_over_text() {
    let dir = tempfile::tempdir().unwrap();
    let node_port = free_port();
    let _node = spawn_peer(
        &binary("prometheus-node-exporter", "prometheus-node-exporter"),
        &[format!("--web.listen-address=127.0.0.1:{node_port}")],
        &dir.path().join("node.log"),
    );
    let config = |protocols: &str| {
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: node\n{protocols}    static_configs:\n      - targets: ['127.0.0.1:{node_port}']\n"
        )
    };
    let argus = ArgusBuilder::new(&dir.path().join("argus"))
        .config(&config("    scrape_protocols: [PrometheusProto]\n"))
        .start();
    let prom_port = free_port();
    let _prom = start_prometheus(dir.path(), &config(""), prom_port, &[]);
    let prom = format!("http://127.0.0.1:{prom_port}");
    let argus_base = argus.url("");
    // The exporter does answer argus's Accept header in protobuf.
    let accept =
        argus_exposition::accept_header(&[argus_exposition::ScrapeProtocol::PrometheusProto]);
    let answer = client()
        .get(format!("http://127.0.0.1:{node_port}/metrics"))
        .header("Accept", accept)
        .send()
        .unwrap();
    let content_type = answer.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("application/vnd.google.protobuf"),
        "{content_type}"
    );
    wait_same(
        &argus,
        Duration::from_secs(60),
        "node series over protobuf",
        100,
        || {
            Some((
                current_series(&argus_base, "node")?,
                current_series(&prom, "node")?,
            ))
        },
    );
    // A summary from protobuf: quantiles, _sum and _count.
    let series = current_series(&argus_base, "node").unwrap();
    for name in ["go_gc_duration_seconds", "go_gc_duration_seconds_count"] {
        assert!(
            series
                .iter()
                .any(|s| s.starts_with(&format!("__name__={name:?}"))),
            "{name} missing"
        );
    }
}

/// `data` of `/api/v1/query_exemplars` for `query` over all time.
fn exemplars(base: &str, query: &str) -> Option<serde_json::Value> {
    let url = format!(
        "{base}/api/v1/query_exemplars?query={}&start=0&end=4000000000",
        urlencode(query)
    );
    let v: serde_json::Value = client().get(url).send().ok()?.json().ok()?;
    (v["status"] == "success").then(|| v["data"].clone())
}

/// With `--enable-feature=exemplar-storage` argus and Prometheus 2.42 scrape the same
/// OpenMetrics exemplars and `/api/v1/query_exemplars` answers the same for plain, bucket
/// and combined queries; repeated scrapes add no duplicates, a newer exemplar is added.
#[test]
fn exemplars_from_openmetrics_match_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let body = |newest: &str| {
        format!(
            "# TYPE requests counter\n\
             requests_total{{path=\"/a\"}} 10 # {{trace_id=\"abc\"}} 1.5 1700000000.123\n\
             requests_total{{path=\"/b\"}} 20 # {{trace_id=\"def\",span=\"x\"}} 2 {newest}\n\
             # TYPE latency histogram\n\
             latency_bucket{{le=\"0.5\"}} 3 # {{trace_id=\"h1\"}} 0.25 1700000002.5\n\
             latency_bucket{{le=\"+Inf\"}} 5\n\
             latency_count 5\n\
             latency_sum 2.0\n\
             # EOF\n"
        )
    };
    let exporter = Exporter::start("");
    exporter.set_openmetrics(&body("1700000001"));
    let jobs = one_job("om", &exporter.address());
    let (argus, _prom, prom) =
        start_both(dir.path(), &jobs, &["--enable-feature=exemplar-storage"]);
    let argus_base = argus.url("");
    for query in [
        "requests_total",
        "latency_bucket",
        "sum(rate(requests_total[5m])) / on() latency_bucket{le=\"0.5\"}",
    ] {
        let (ours, theirs) = wait_for(Duration::from_secs(30), query, || {
            let ours = exemplars(&argus_base, query)?;
            let theirs = exemplars(&prom, query)?;
            (ours.as_array().is_some_and(|a| !a.is_empty()) && ours == theirs)
                .then_some((ours, theirs))
        });
        assert_eq!(ours, theirs);
    }
    let all = exemplars(&argus_base, "{job=\"om\"}").unwrap();
    assert_eq!(all.as_array().unwrap().len(), 3, "{all}");
    // Scraped again and again: still one exemplar per series.
    std::thread::sleep(Duration::from_secs(2));
    let count = |v: &serde_json::Value| -> usize {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s["exemplars"].as_array().unwrap().len())
            .sum()
    };
    assert_eq!(count(&exemplars(&argus_base, "{job=\"om\"}").unwrap()), 3);
    // A newer exemplar for /b is added after the old one.
    exporter.set_openmetrics(&body("1700000005"));
    let b = wait_for(Duration::from_secs(30), "the newer exemplar", || {
        exemplars(&argus_base, "requests_total{path=\"/b\"}").filter(|v| count(v) == 2)
    });
    assert_eq!(b[0]["exemplars"][1]["timestamp"], 1700000005.0);
    assert_eq!(
        argus.metric("prometheus_tsdb_exemplar_exemplars_in_storage"),
        Some(4.0)
    );
    // No selector: no data, which both answer with 204 and an empty body.
    let no_selector = |base: &str| {
        let r = client()
            .get(format!(
                "{base}/api/v1/query_exemplars?query={}",
                urlencode("1 + 1")
            ))
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    assert_eq!(no_selector(&argus_base), (204, String::new()));
    assert_eq!(no_selector(&argus_base), no_selector(&prom));
}

/// Prometheus 2.42 scrapes OpenMetrics exemplars and remote-writes them
/// (`send_exemplars: true`) to argus: argus's `/api/v1/query_exemplars` answers as
/// Prometheus's own does.
#[test]
fn remote_written_exemplars_match_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let exporter = Exporter::start("");
    exporter.set_openmetrics(
        "# TYPE jobs counter\n\
         jobs_total{kind=\"a\"} 3 # {trace_id=\"t-a\"} 1 1700000000.5\n\
         jobs_total{kind=\"b\"} 4 # {trace_id=\"t-b\",user=\"u\"} 2.5 1700000001\n\
         # EOF\n",
    );
    let argus = ArgusBuilder::new(&dir.path().join("argus"))
        .flag("--enable-feature=exemplar-storage")
        .start();
    let prom_port = free_port();
    let _prom = start_prometheus(
        dir.path(),
        &format!(
            "global:\n  scrape_interval: 1s\n\
             scrape_configs:\n  - job_name: om\n    static_configs:\n      - targets: ['{}']\n\
             remote_write:\n  - url: {}\n    send_exemplars: true\n    queue_config:\n      batch_send_deadline: 1s\n      min_backoff: 100ms\n      max_backoff: 1s\n",
            exporter.address(),
            argus.url("/api/v1/write")
        ),
        prom_port,
        &["--enable-feature=exemplar-storage"],
    );
    let prom = format!("http://127.0.0.1:{prom_port}");
    let argus_base = argus.url("");
    let (ours, theirs) = wait_for(Duration::from_secs(60), "the same exemplars", || {
        let ours = exemplars(&argus_base, "jobs_total")?;
        let theirs = exemplars(&prom, "jobs_total")?;
        (ours.as_array().is_some_and(|a| a.len() == 2) && ours == theirs).then_some((ours, theirs))
    });
    assert_eq!(ours, theirs);
}

/// What `label_replace` answers for `pattern` on a label holding `input`: the status, the error
/// if any, and whether the pattern matched (the label `m` set).
fn regex_answer(base: &str, pattern: &str, input: &str) -> Option<serde_json::Value> {
    let quote = |s: &str| serde_json::to_string(s).unwrap();
    let query = format!(
        "label_replace(label_replace(vector(1), \"x\", {}, \"\", \"\"), \"m\", \"yes\", \"x\", {})",
        quote(input),
        quote(pattern)
    );
    let url = format!("{base}/api/v1/query?time=100&query={}", urlencode(&query));
    let v: serde_json::Value = client().get(url).send().ok()?.json().ok()?;
    Some(serde_json::json!({
        "status": v["status"],
        "error": v["error"],
        "matched": v["data"]["result"][0]["metric"]["m"] == "yes",
    }))
}

/// Regexes are Go's everywhere in Prometheus, and argus runs them on Rust's engine after
/// reading them by Go's rules (`argus_model::regex_go`). The real Prometheus's `label_replace`
/// decides here, pattern by pattern, what matches and what is refused; argus must agree. The
/// patterns are where the two syntaxes part ways. No input holds a newline: `.` matches one in
/// Prometheus 3 (and argus) but not in 2.42's `label_replace`.
#[test]
fn regexes_match_what_go_matches() {
    let dir = tempfile::tempdir().unwrap();
    let (argus, _prom, prom) = start_both(dir.path(), "global:\n  scrape_interval: 1h\n", &[]);
    wait_for(
        Duration::from_secs(60),
        "Prometheus to answer queries",
        || regex_answer(&prom, "a", "a").filter(|a| a["status"] == "success"),
    );
    let cases: &[(&str, &[&str])] = &[
        ("a{", &["a{", "a"]),
        ("foo{bar}", &["foo{bar}"]),
        ("x{,2}", &["x{,2}", "xx", ""]),
        ("x{01}", &["x{01}", "x"]),
        ("a{2}", &["aa", "a"]),
        ("a{1,2}", &["aaa", "aa"]),
        ("a{2,}", &["aaaa", "a"]),
        (r"\d+", &["123", "١٢٣"]),
        (r"\w+", &["héllo", "hello_1"]),
        (r"\s", &["\u{a0}", "\t", "\u{b}"]),
        (r"\bfoo\b", &["foo"]),
        (r"\Qa.b\E", &["a.b", "axb"]),
        (r"[\d]+", &["42", "x"]),
        (r"[^\d]", &["x", "5"]),
        (r"[\D]", &["5", "x"]),
        ("[[:alpha:]]+", &["abc", "a1"]),
        ("[[:^alpha:]]", &["1", "a"]),
        ("[[:word:]]+", &["a_1", "a-1"]),
        ("[a&&b]", &["&", "a"]),
        ("[a~~b]", &["~"]),
        ("[--/]", &[".", "-"]),
        ("[a[b]", &["[", "b"]),
        ("[]a]", &["]", "a"]),
        ("[^]a]", &["]", "b"]),
        ("[a-]", &["-", "b"]),
        ("(?i)FOO", &["foo", "FoO"]),
        ("a(?i)b", &["aB", "AB"]),
        ("(?i:a)b", &["AB", "Ab"]),
        ("((?i)a)b", &["AB", "Ab"]),
        ("(?i)[a-c]", &["B", "d"]),
        ("(?i)[^a]", &["A", "b"]),
        ("(?U)a+", &["aa"]),
        ("a*(?i)*", &["aaa", ""]),
        ("a+(?i)?", &["", "a"]),
        (r"\012", &["\n"]),
        (r"\0", &["\0"]),
        (r"\08", &["\u{0}8"]),
        (r"\x41\x{42}", &["AB"]),
        (r"\_", &["_"]),
        (r"\pL+", &["héllo", "h1"]),
        (r"\p{Greek}", &["α", "a"]),
        (r"\P{Greek}", &["α", "a"]),
        (r"[\p{Lu}\d]+", &["A1", "a1"]),
        ("(?P<x>a)(?P<x>b)", &["ab"]),
        ("(?P<1a>x)", &["x"]),
        ("^*a", &["a"]),
        ("(?m)^a$", &["a"]),
        ("a|", &["", "a", "b"]),
        ("()", &[""]),
        ("a)|(b", &["a", "ab", "b", "c"]),
        // Refused by Go.
        ("(", &["x"]),
        ("a**", &["x"]),
        ("x{1001}", &["x"]),
        ("(x{100}){11}", &["x"]),
        ("x{2,1}", &["x"]),
        (r"\C", &["x"]),
        (r"\1", &["x"]),
        (r"\e", &["x"]),
        (r"\Z", &["x"]),
        (r"\x{zz}", &["x"]),
        (r"[\b]", &["x"]),
        ("[z-a]", &["x"]),
        ("[a--b]", &["x"]),
        ("[[:foo:]]", &["x"]),
        (r"\p{Foo}", &["x"]),
        ("(?P<>a)", &["x"]),
        ("(?P=n)", &["x"]),
        ("(?x)a", &["x"]),
        ("(?!a)", &["x"]),
        ("*", &["x"]),
        ("{2}", &["x"]),
    ];
    let mut differ = Vec::new();
    let mut compare = |pattern: &str, input: &str| {
        let ours = regex_answer(&argus.url(""), pattern, input).expect("argus answers");
        let go = regex_answer(&prom, pattern, input).expect("Prometheus answers");
        if ours != go {
            let shown: String = pattern.chars().take(60).collect();
            differ.push(format!(
                "{shown:?} on {input:?}: argus {ours}, Prometheus {go}"
            ));
        }
        go["status"] == "success"
    };
    for (pattern, inputs) in cases {
        for input in *inputs {
            compare(pattern, input);
        }
    }
    // Go's limit on the height of a pattern's tree, at its edge: each shape `n` levels deep
    // is taken and `n + 1` refused ("expression nests too deeply"), as Prometheus decides.
    let nested = |open: &str, inner: &str, close: &str, n: usize| {
        format!("{}{inner}{}", open.repeat(n), close.repeat(n))
    };
    let deep = [
        ("(", "a", ")", 998, "a"),
        ("(", "ab", ")", 998, "ab"),
        ("(?:", "a", ")*", 998, "aa"),
        ("(", "a", ")*", 499, "a"),
        ("(x", "", ")", 499, "xx"),
        ("(ab*", "", ")", 498, "ab"),
        ("((?:ab)*", "", ")", 499, "abab"),
        ("(a|", "b", ")", 499, "b"),
        ("((?i)a", "b", ")", 499, "AB"),
        ("(z|", "a", ")", 499, "z"),
    ];
    for (open, inner, close, n, input) in deep {
        let taken = nested(open, inner, close, n);
        let refused = nested(open, inner, close, n + 1);
        assert!(compare(&taken, input), "{taken:.60} is taken");
        assert!(!compare(&refused, input), "{refused:.60} is refused");
    }
    // Groups that make no node in Go's tree nest without limit.
    for pattern in [
        nested("(?:", "a", ")", 3000),
        nested("(?:z|", "a", ")", 3000),
    ] {
        assert!(compare(&pattern, "a"), "{pattern:.60} is taken");
    }
    assert!(differ.is_empty(), "{}", differ.join("\n"));
}

/// How a server answers `method` on `path`: the status, and for refusals (404, 405) and
/// `OPTIONS` also the `Allow`, `Content-Type` and `X-Content-Type-Options` headers and the body.
fn method_answer(base: &str, method: &str, path: &str) -> String {
    let response = client()
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{base}{path}"),
        )
        .send()
        .unwrap_or_else(|e| panic!("{method} {base}{path}: {e}"));
    let status = response.status().as_u16();
    if ![404, 405].contains(&status) && method != "OPTIONS" {
        return status.to_string();
    }
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let headers = ["allow", "content-type", "x-content-type-options"].map(header);
    format!("{status} {headers:?} {:?}", response.text().unwrap())
}

/// Methods a path does not serve are refused as Prometheus's router refuses them (405 with
/// `Allow`, `HEAD` included unless served), and `OPTIONS` is answered as it answers it.
#[test]
fn http_methods_are_answered_as_prometheus_answers() {
    let dir = tempfile::tempdir().unwrap();
    let config = "global:\n  scrape_interval: 1h\n";
    // Both with the write receiver, admin API and lifecycle enabled (the harness's defaults).
    let argus = ArgusBuilder::new(&dir.path().join("argus"))
        .config(config)
        .start();
    let port = free_port();
    let flags = [
        "--web.enable-remote-write-receiver",
        "--web.enable-admin-api",
        "--web.enable-lifecycle",
    ];
    let _prom = start_prometheus(dir.path(), config, port, &flags);
    let prom = format!("http://127.0.0.1:{port}");
    wait_for(Duration::from_secs(60), "Prometheus to be ready", || {
        client()
            .get(format!("{prom}/-/ready"))
            .send()
            .ok()
            .filter(|r| r.status().is_success())
    });
    let paths = [
        "/-/healthy",
        "/-/ready",
        "/-/reload",
        "/metrics",
        "/api/v1/query?query=1",
        "/api/v1/query_range?query=1&start=0&end=60&step=15",
        "/api/v1/series?match[]=up",
        "/api/v1/labels",
        "/api/v1/label/job/values",
        "/api/v1/status/buildinfo",
        "/api/v1/status/config",
        "/api/v1/format_query?query=1",
        "/api/v1/admin/tsdb/snapshot",
        "/api/v1/write",
        "/api/v1/nope",
        "/nope",
    ];
    let mut differ = Vec::new();
    for path in paths {
        for method in ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            let ours = method_answer(&argus.url(""), method, path);
            let theirs = method_answer(&prom, method, path);
            if ours != theirs {
                differ.push(format!(
                    "{method} {path}: argus {ours}, Prometheus {theirs}"
                ));
            }
        }
    }
    assert!(differ.is_empty(), "{}", differ.join("\n"));
}
