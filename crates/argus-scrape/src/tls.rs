//! `tls_config` for HTTP clients (scrapes and HTTP SD): rustls with ring, system roots unless
//! a CA is configured, client certificates, `server_name`, `insecure_skip_verify`,
//! `min_version`/`max_version`, ALPN for `enable_http2`.
//!
//! As in Prometheus, CA and client certificate files are re-read when they change (checked at
//! each handshake by modification time), so rotated certificates are picked up without a
//! reload.

use std::sync::Arc;
use std::time::SystemTime;

use argus_config::http::{HttpClientConfig, TlsConfig};
use parking_lot::Mutex;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

/// The TLS client configuration for an HTTP client config (an empty `tls_config` when none
/// is set: system roots, default versions).
pub fn client_config(http: &HttpClientConfig) -> Result<rustls::ClientConfig, String> {
    let tls = http.tls_config.clone().unwrap_or_default();
    tls.validate()?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions = versions(&tls)?;
    let verifier = Arc::new(Verifier::new(&tls, provider.clone())?);
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match client_cert(&tls) {
        Some(source) => {
            let resolver = ClientCert::new(source, provider)?;
            builder.with_client_cert_resolver(Arc::new(resolver))
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = if http.enable_http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(config)
}

/// The protocol versions between `min_version` and `max_version`. rustls speaks TLS 1.2 and
/// 1.3 only, so a minimum below 1.2 means 1.2 (Go's client default minimum is 1.2 as well);
/// a maximum below 1.2 cannot be honoured and is refused.
fn versions(tls: &TlsConfig) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
    let min = tls
        .min_version
        .as_deref()
        .map_or(Ok(2), TlsConfig::version_rank)?;
    let max = tls
        .max_version
        .as_deref()
        .map_or(Ok(3), TlsConfig::version_rank)?;
    if max < 2 {
        return Err(format!(
            "tls_config: max_version {} is not supported (argus speaks TLS 1.2 and 1.3)",
            tls.max_version.as_deref().unwrap_or_default()
        ));
    }
    if min > max {
        return Err(format!(
            "tls_config: max_version {} is lower than min_version {}",
            tls.max_version.as_deref().unwrap_or_default(),
            tls.min_version.as_deref().unwrap_or_default()
        ));
    }
    let mut out = Vec::new();
    if min <= 2 && max >= 2 {
        out.push(&rustls::version::TLS12);
    }
    if max >= 3 {
        out.push(&rustls::version::TLS13);
    }
    Ok(out)
}

/// Inline PEM text or a file to read it from.
#[derive(Clone)]
enum Pem {
    Inline(String),
    File(String),
}

impl Pem {
    fn of(inline: Option<&str>, file: Option<&str>) -> Option<Pem> {
        match (inline, file) {
            (Some(text), _) if !text.is_empty() => Some(Pem::Inline(text.to_string())),
            (_, Some(path)) if !path.is_empty() => Some(Pem::File(path.to_string())),
            _ => None,
        }
    }

    /// The file's modification time (None for inline text or an unreadable file).
    fn stamp(&self) -> Option<SystemTime> {
        match self {
            Pem::Inline(_) => None,
            Pem::File(path) => std::fs::metadata(path).and_then(|m| m.modified()).ok(),
        }
    }

    fn read(&self) -> Result<Vec<u8>, String> {
        match self {
            Pem::Inline(text) => Ok(text.as_bytes().to_vec()),
            Pem::File(path) => std::fs::read(path).map_err(|e| format!("{path}: {e}")),
        }
    }

    fn describe(&self) -> &str {
        match self {
            Pem::Inline(_) => "<inline>",
            Pem::File(path) => path,
        }
    }
}

/// The root store for a configured CA (Prometheus: "unable to use specified CA cert").
fn load_roots(ca: &Pem) -> Result<Arc<RootCertStore>, String> {
    let unusable =
        |detail: String| format!("unable to use specified CA cert {}{detail}", ca.describe());
    let bytes = ca
        .read()
        .map_err(|e| format!("unable to load specified CA cert {}: {e}", ca.describe()))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&bytes) {
        let cert = cert.map_err(|e| unusable(format!(": {e}")))?;
        roots.add(cert).map_err(|e| unusable(format!(": {e}")))?;
    }
    if roots.is_empty() {
        return Err(unusable(String::new()));
    }
    Ok(Arc::new(roots))
}

/// The system's trusted roots (whatever of them loads), read once per process as Go's
/// `SystemCertPool` is: every job's client and every reload share them.
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: std::sync::OnceLock<Arc<RootCertStore>> = std::sync::OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut roots = RootCertStore::empty();
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            Arc::new(roots)
        })
        .clone()
}

fn webpki(
    roots: Arc<RootCertStore>,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, String> {
    WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|e| e.to_string())
}

/// Verifies server certificates against the configured CA (re-read when its file changes)
/// or the system roots, under `server_name` when set; accepts any certificate with
/// `insecure_skip_verify` (handshake signatures are still checked).
struct Verifier {
    ca: Option<Pem>,
    server_name: Option<ServerName<'static>>,
    skip: bool,
    provider: Arc<CryptoProvider>,
    current: Mutex<(Option<SystemTime>, Arc<WebPkiServerVerifier>)>,
}

/// Shows the CA's file name only (inline certificates never reach logs).
impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ca = self.ca.as_ref().map_or("<system roots>", Pem::describe);
        write!(f, "Verifier({ca})")
    }
}

impl Verifier {
    fn new(tls: &TlsConfig, provider: Arc<CryptoProvider>) -> Result<Self, String> {
        let ca = Pem::of(tls.ca.as_deref(), tls.ca_file.as_deref());
        let roots = match &ca {
            Some(ca) => load_roots(ca)?,
            None => system_roots(),
        };
        let server_name = match tls.server_name.as_deref().filter(|s| !s.is_empty()) {
            Some(name) => Some(
                ServerName::try_from(name.to_string())
                    .map_err(|e| format!("invalid tls_config server_name {name:?}: {e}"))?,
            ),
            None => None,
        };
        let stamp = ca.as_ref().and_then(Pem::stamp);
        let verifier = webpki(roots, &provider)?;
        Ok(Self {
            ca,
            server_name,
            skip: tls.insecure_skip_verify,
            provider,
            current: Mutex::new((stamp, verifier)),
        })
    }

    /// The verifier for the CA as it is now (a changed file is loaded again; a file that
    /// became unreadable or invalid keeps the previous roots).
    fn current(&self) -> Arc<WebPkiServerVerifier> {
        let mut current = self.current.lock();
        if let Some(ca) = &self.ca {
            let stamp = ca.stamp();
            if stamp != current.0 {
                match load_roots(ca).and_then(|roots| webpki(roots, &self.provider)) {
                    Ok(verifier) => *current = (stamp, verifier),
                    Err(e) => tracing::warn!(error = %e, "keeping the previous CA certificates"),
                }
            }
        }
        current.1.clone()
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.skip {
            return Ok(ServerCertVerified::assertion());
        }
        let name = self.server_name.as_ref().unwrap_or(server_name);
        // Go checks the name before the chain; so do we, so that errors read the same.
        let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_name(&parsed, name)?;
        self.current()
            .verify_server_cert(end_entity, intermediates, name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn client_cert(tls: &TlsConfig) -> Option<(Pem, Pem)> {
    let cert = Pem::of(tls.cert.as_deref(), tls.cert_file.as_deref())?;
    let key = Pem::of(
        tls.key.as_ref().map(|k| k.0.as_str()),
        tls.key_file.as_deref(),
    )?;
    Some((cert, key))
}

/// The client certificate, loaded again when either file changes.
struct ClientCert {
    cert: Pem,
    key: Pem,
    provider: Arc<CryptoProvider>,
    current: Mutex<(Stamps, Arc<CertifiedKey>)>,
}

type Stamps = (Option<SystemTime>, Option<SystemTime>);

impl std::fmt::Debug for ClientCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClientCert({})", self.cert.describe())
    }
}

impl ClientCert {
    fn new((cert, key): (Pem, Pem), provider: Arc<CryptoProvider>) -> Result<Self, String> {
        let stamps = (cert.stamp(), key.stamp());
        let loaded = load_pair(&cert, &key, &provider)?;
        Ok(Self {
            cert,
            key,
            provider,
            current: Mutex::new((stamps, loaded)),
        })
    }
}

/// Prometheus: "unable to use specified client cert (…) & key (…): …".
fn load_pair(
    cert: &Pem,
    key: &Pem,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, String> {
    let fail = |e: String| {
        format!(
            "unable to use specified client cert ({}) & key ({}): {e}",
            cert.describe(),
            key.describe()
        )
    };
    let cert_bytes = cert.read().map_err(fail)?;
    let chain = CertificateDer::pem_slice_iter(&cert_bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(e.to_string()))?;
    if chain.is_empty() {
        return Err(fail("no certificate found".into()));
    }
    let key_bytes = key.read().map_err(fail)?;
    let key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| fail(e.to_string()))?;
    CertifiedKey::from_der(chain, key, provider)
        .map(Arc::new)
        .map_err(|e| fail(e.to_string()))
}

impl ResolvesClientCert for ClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        let mut current = self.current.lock();
        let stamps = (self.cert.stamp(), self.key.stamp());
        if stamps != current.0 {
            match load_pair(&self.cert, &self.key, &self.provider) {
                Ok(loaded) => *current = (stamps, loaded),
                Err(e) => tracing::warn!(error = %e, "keeping the previous client certificate"),
            }
        }
        Some(current.1.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Go's wording for a TLS failure (`tls: failed to verify certificate: x509: …`), or None
/// when the error is not one rustls reports.
pub fn go_error_text(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    use rustls::CertificateError as C;
    // io::Error hides its payload from `source()` (and may wrap another io::Error); look
    // inside.
    let mut error: &(dyn std::error::Error + 'static) = error;
    while let Some(inner) = error
        .downcast_ref::<std::io::Error>()
        .and_then(std::io::Error::get_ref)
    {
        error = inner;
    }
    let tls = error.downcast_ref::<rustls::Error>()?;
    let x509 = match tls {
        rustls::Error::InvalidCertificate(cert) => match cert {
            C::UnknownIssuer => "certificate signed by unknown authority".to_string(),
            C::NotValidForName => "certificate is not valid for the requested name".to_string(),
            C::NotValidForNameContext {
                expected,
                presented,
            } => {
                let ip = match expected {
                    ServerName::IpAddress(ip) => Some(std::net::IpAddr::from(*ip)),
                    _ => None,
                };
                let expected = match ip {
                    Some(ip) => ip.to_string(),
                    None => expected.to_str().into_owned(),
                };
                // rustls presents names as `DnsName("…")` / `IpAddress(…)`; Go lists the
                // names of the kind it looked for.
                let names: Vec<&str> = presented
                    .iter()
                    .filter_map(|p| match ip {
                        Some(_) => p.strip_prefix("IpAddress(")?.strip_suffix(')'),
                        None => p.strip_prefix("DnsName(\"")?.strip_suffix("\")"),
                    })
                    .collect();
                if ip.is_some() && names.is_empty() {
                    format!(
                        "cannot validate certificate for {expected} because it doesn't contain any IP SANs"
                    )
                } else if names.is_empty() {
                    format!(
                        "certificate is not valid for any names, but wanted to match {expected}"
                    )
                } else {
                    format!(
                        "certificate is valid for {}, not {expected}",
                        names.join(", ")
                    )
                }
            }
            C::Expired
            | C::ExpiredContext { .. }
            | C::NotValidYet
            | C::NotValidYetContext { .. } => {
                "certificate has expired or is not yet valid".to_string()
            }
            other => format!("{other:?}"),
        },
        other => return Some(format!("remote error: tls: {other}")),
    };
    Some(format!("tls: failed to verify certificate: x509: {x509}"))
}
