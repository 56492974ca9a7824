//! `tls_config` against a real TLS server on loopback (rustls, one thread, HTTP/1.1): CA
//! files, `server_name`, `insecure_skip_verify`, client certificates, ALPN offers for
//! `enable_http2`, CA rotation without a reload, and Go's error wording.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use argus_config::http::{HttpClientConfig, Secret, TlsConfig};
use argus_scrape::manager::build_client;
use argus_scrape::scrape_loop::describe_error;
use parking_lot::Mutex;
use rcgen::{BasicConstraints, Certificate, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

struct Ca {
    cert: Certificate,
    key: KeyPair,
}

impl Ca {
    fn new() -> Self {
        let key = KeyPair::generate().unwrap();
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("argus test CA {n}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// A certificate for `names` signed by this CA: (cert PEM, key PEM).
    fn issue(&self, names: &[&str]) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn pem(&self) -> String {
        self.cert.pem()
    }
}

/// A TLS server answering every connection with one metric over HTTP/1.1; it records the
/// ALPN protocols each client offered.
struct Server {
    port: u16,
    offers: Arc<Mutex<Vec<Vec<String>>>>,
    /// The TLS version each answered connection negotiated.
    versions: Arc<Mutex<Vec<rustls::ProtocolVersion>>>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Server {
    fn start(cert_pem: &str, key_pem: &str, client_ca: Option<&Ca>) -> Server {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .unwrap();
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                roots.add(ca.cert.der().clone()).unwrap();
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider(),
                )
                .build()
                .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let config = Arc::new(builder.with_single_cert(chain, key).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let offers = Arc::new(Mutex::new(Vec::new()));
        let versions = Arc::new(Mutex::new(Vec::new()));
        let (seen, negotiated) = (offers.clone(), versions.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                let mut acceptor = rustls::server::Acceptor::default();
                let accepted = loop {
                    if acceptor.read_tls(&mut stream).unwrap_or(0) == 0 {
                        break None;
                    }
                    match acceptor.accept() {
                        Ok(Some(accepted)) => break Some(accepted),
                        Ok(None) => continue,
                        Err(_) => break None,
                    }
                };
                let Some(accepted) = accepted else { continue };
                let offered = accepted
                    .client_hello()
                    .alpn()
                    .map(|protocols| {
                        protocols
                            .map(|p| String::from_utf8_lossy(p).into_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                seen.lock().push(offered);
                let Ok(conn) = accepted.into_connection(config.clone()) else {
                    continue;
                };
                let mut tls = rustls::StreamOwned::new(conn, stream);
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                if request.is_empty() {
                    continue;
                }
                if let Some(v) = tls.conn.protocol_version() {
                    negotiated.lock().push(v);
                }
                let body = "tls_metric 1\n";
                let _ = write!(
                    tls,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.flush();
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
        });
        Server {
            port,
            offers,
            versions,
        }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/metrics", self.port)
    }

    fn last_offer(&self) -> Vec<String> {
        self.offers.lock().last().cloned().unwrap_or_default()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Fetches the URL with a client for `http`: the body, or the error as a scrape reports it.
fn get(http: &HttpClientConfig, url: &str) -> Result<String, String> {
    let client = build_client(http)?;
    fetch_with(&client, url)
}

fn fetch_with(client: &reqwest::Client, url: &str) -> Result<String, String> {
    runtime().block_on(async {
        let response = client
            .get(url)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| describe_error(url, &e))?;
        response.text().await.map_err(|e| describe_error(url, &e))
    })
}

fn with_tls(tls: TlsConfig) -> HttpClientConfig {
    HttpClientConfig {
        tls_config: Some(tls),
        ..HttpClientConfig::default()
    }
}

fn write(path: &Path, text: &str) -> String {
    std::fs::write(path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn ca_file_and_server_name_verify_the_target() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let (cert, key) = ca.issue(&["argus-test.example"]);
    let server = Server::start(&cert, &key, None);
    let ca_file = write(&dir.path().join("ca.pem"), &ca.pem());

    // Without a CA the system roots do not know ours: Go's wording.
    let unknown = with_tls(TlsConfig {
        server_name: Some("argus-test.example".into()),
        ..TlsConfig::default()
    });
    let err = get(&unknown, &server.url()).unwrap_err();
    assert_eq!(
        err,
        format!(
            "Get {:?}: tls: failed to verify certificate: x509: certificate signed by unknown authority",
            server.url()
        )
    );

    // The CA is known but the certificate does not name 127.0.0.1.
    let only_ca = with_tls(TlsConfig {
        ca_file: Some(ca_file.clone()),
        ..TlsConfig::default()
    });
    let err = get(&only_ca, &server.url()).unwrap_err();
    assert!(
        err.ends_with(
            "tls: failed to verify certificate: x509: cannot validate certificate for 127.0.0.1 because it doesn't contain any IP SANs"
        ),
        "{err}"
    );

    // server_name: verified against the name the certificate carries.
    let named = with_tls(TlsConfig {
        ca_file: Some(ca_file.clone()),
        server_name: Some("argus-test.example".into()),
        ..TlsConfig::default()
    });
    assert_eq!(get(&named, &server.url()).unwrap(), "tls_metric 1\n");

    // A wrong server_name names both sides, as Go does.
    let wrong = with_tls(TlsConfig {
        ca_file: Some(ca_file.clone()),
        server_name: Some("other.example".into()),
        ..TlsConfig::default()
    });
    let err = get(&wrong, &server.url()).unwrap_err();
    assert!(
        err.ends_with("x509: certificate is valid for argus-test.example, not other.example"),
        "{err}"
    );

    // Inline CA text works the same as the file.
    let inline = with_tls(TlsConfig {
        ca: Some(ca.pem()),
        server_name: Some("argus-test.example".into()),
        ..TlsConfig::default()
    });
    assert_eq!(get(&inline, &server.url()).unwrap(), "tls_metric 1\n");

    // insecure_skip_verify accepts the certificate without a CA.
    let skip = with_tls(TlsConfig {
        insecure_skip_verify: true,
        ..TlsConfig::default()
    });
    assert_eq!(get(&skip, &server.url()).unwrap(), "tls_metric 1\n");
}

#[test]
fn enable_http2_decides_the_alpn_offer() {
    let ca = Ca::new();
    let (cert, key) = ca.issue(&["127.0.0.1"]);
    let server = Server::start(&cert, &key, None);
    let mut http = with_tls(TlsConfig {
        ca: Some(ca.pem()),
        ..TlsConfig::default()
    });
    assert_eq!(get(&http, &server.url()).unwrap(), "tls_metric 1\n");
    assert_eq!(server.last_offer(), ["h2", "http/1.1"]);
    http.enable_http2 = false;
    assert_eq!(get(&http, &server.url()).unwrap(), "tls_metric 1\n");
    assert_eq!(server.last_offer(), ["http/1.1"]);
}

#[test]
fn client_certificates_are_sent_and_reloaded_when_rotated() {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = Ca::new();
    let client_ca = Ca::new();
    let (cert, key) = server_ca.issue(&["127.0.0.1"]);
    let server = Server::start(&cert, &key, Some(&client_ca));
    let ca_file = write(&dir.path().join("ca.pem"), &server_ca.pem());

    let without = with_tls(TlsConfig {
        ca_file: Some(ca_file.clone()),
        ..TlsConfig::default()
    });
    assert!(get(&without, &server.url()).is_err());

    // A client certificate from a CA the server does not trust is refused…
    let stranger = Ca::new();
    let (bad_cert, bad_key) = stranger.issue(&["client"]);
    let cert_file = write(&dir.path().join("client.pem"), &bad_cert);
    let key_file = write(&dir.path().join("client.key"), &bad_key);
    let http = with_tls(TlsConfig {
        ca_file: Some(ca_file.clone()),
        cert_file: Some(cert_file.clone()),
        key_file: Some(key_file.clone()),
        ..TlsConfig::default()
    });
    let client = build_client(&http).unwrap();
    assert!(fetch_with(&client, &server.url()).is_err());

    // …and after the files are replaced the same client presents the new one.
    let (good_cert, good_key) = client_ca.issue(&["client"]);
    replace(&dir.path().join("client.pem"), &good_cert);
    replace(&dir.path().join("client.key"), &good_key);
    assert_eq!(
        fetch_with(&client, &server.url()).unwrap(),
        "tls_metric 1\n"
    );

    // Inline cert and key.
    let inline = with_tls(TlsConfig {
        ca_file: Some(ca_file),
        cert: Some(good_cert),
        key: Some(Secret(good_key)),
        ..TlsConfig::default()
    });
    assert_eq!(get(&inline, &server.url()).unwrap(), "tls_metric 1\n");
}

/// Rewrites a file with a modification time clearly after the previous one.
fn replace(path: &Path, text: &str) {
    let before = std::fs::metadata(path).unwrap().modified().unwrap();
    std::fs::write(path, text).unwrap();
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(before.max(SystemTime::now()) + Duration::from_secs(2))
        .unwrap();
}

#[test]
fn a_rotated_ca_file_is_picked_up_without_a_new_client() {
    let dir = tempfile::tempdir().unwrap();
    let old_ca = Ca::new();
    let new_ca = Ca::new();
    let (cert, key) = new_ca.issue(&["127.0.0.1"]);
    let server = Server::start(&cert, &key, None);
    let ca_path = dir.path().join("ca.pem");
    let ca_file = write(&ca_path, &old_ca.pem());
    let client = build_client(&with_tls(TlsConfig {
        ca_file: Some(ca_file),
        ..TlsConfig::default()
    }))
    .unwrap();
    let err = fetch_with(&client, &server.url()).unwrap_err();
    assert!(
        err.contains("certificate signed by unknown authority"),
        "{err}"
    );
    replace(&ca_path, &new_ca.pem());
    assert_eq!(
        fetch_with(&client, &server.url()).unwrap(),
        "tls_metric 1\n"
    );
    // A CA file that turns into garbage keeps the last good roots.
    replace(&ca_path, "not a certificate");
    assert_eq!(
        fetch_with(&client, &server.url()).unwrap(),
        "tls_metric 1\n"
    );
}

#[test]
fn bad_tls_settings_are_refused_with_their_reason() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let missing = missing.to_str().unwrap();
    let cases: Vec<(TlsConfig, String)> = vec![
        (
            TlsConfig {
                ca_file: Some(missing.into()),
                ..TlsConfig::default()
            },
            format!("unable to load specified CA cert {missing}: {missing}: No such file or directory (os error 2)"),
        ),
        (
            TlsConfig {
                ca: Some("garbage".into()),
                ..TlsConfig::default()
            },
            "unable to use specified CA cert <inline>".into(),
        ),
        (
            TlsConfig {
                cert_file: Some(missing.into()),
                key_file: Some(missing.into()),
                ..TlsConfig::default()
            },
            format!("unable to use specified client cert ({missing}) & key ({missing}): {missing}: No such file or directory (os error 2)"),
        ),
        (
            TlsConfig {
                cert_file: Some(missing.into()),
                ..TlsConfig::default()
            },
            "exactly one of key or key_file must be configured when a client certificate is configured".into(),
        ),
        (
            TlsConfig {
                min_version: Some("TLS14".into()),
                ..TlsConfig::default()
            },
            "unknown TLS version: TLS14".into(),
        ),
        (
            TlsConfig {
                max_version: Some("TLS11".into()),
                ..TlsConfig::default()
            },
            "tls_config: max_version TLS11 is not supported (argus speaks TLS 1.2 and 1.3)".into(),
        ),
        (
            TlsConfig {
                min_version: Some("TLS13".into()),
                max_version: Some("TLS12".into()),
                ..TlsConfig::default()
            },
            "tls_config: max_version TLS12 is lower than min_version TLS13".into(),
        ),
    ];
    for (tls, want) in cases {
        let err = build_client(&with_tls(tls)).unwrap_err();
        assert_eq!(err, want);
    }
}

#[test]
fn tls_versions_are_honoured() {
    use rustls::ProtocolVersion::{TLSv1_2, TLSv1_3};
    let ca = Ca::new();
    let (cert, key) = ca.issue(&["127.0.0.1"]);
    let server = Server::start(&cert, &key, None);
    // The server speaks both; the client's range decides (a minimum below 1.2 means 1.2).
    for (min, max, want) in [
        ("TLS10", "TLS12", TLSv1_2),
        ("TLS13", "TLS13", TLSv1_3),
        ("TLS12", "TLS13", TLSv1_3),
        ("TLS12", "TLS12", TLSv1_2),
    ] {
        let http = with_tls(TlsConfig {
            ca: Some(ca.pem()),
            min_version: Some(min.into()),
            max_version: Some(max.into()),
            ..TlsConfig::default()
        });
        assert_eq!(
            get(&http, &server.url()).unwrap(),
            "tls_metric 1\n",
            "{min}..{max}"
        );
        assert_eq!(server.versions.lock().last(), Some(&want), "{min}..{max}");
    }
}
