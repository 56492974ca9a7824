//! HTTP client settings shared by scrape configs, remote write/read, Alertmanager and HTTP SD
//! (Prometheus's `common/config.HTTPClientConfig`).

use serde::{Deserialize, Serialize, Serializer};

/// A secret value: kept for use, printed as `<secret>`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<secret>")
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    #[serde(default)]
    pub username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_version: Option<String>,
}

impl TlsConfig {
    /// Prometheus's `TLSConfig.Validate`, plus the version names.
    pub fn validate(&self) -> Result<(), String> {
        let tls = self;
        let set = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.is_empty());
        let key_inline = tls.key.as_ref().is_some_and(|k| !k.0.is_empty());
        if set(&tls.ca) && set(&tls.ca_file) {
            return Err("at most one of ca and ca_file must be configured".into());
        }
        if set(&tls.cert) && set(&tls.cert_file) {
            return Err("at most one of cert and cert_file must be configured".into());
        }
        if key_inline && set(&tls.key_file) {
            return Err("at most one of key and key_file must be configured".into());
        }
        let using_cert = set(&tls.cert) || set(&tls.cert_file);
        let using_key = key_inline || set(&tls.key_file);
        if using_cert && !using_key {
            return Err(
                "exactly one of key or key_file must be configured when a client certificate is configured"
                    .into(),
            );
        }
        if using_key && !using_cert {
            return Err(
                "exactly one of cert or cert_file must be configured when a client key is configured"
                    .into(),
            );
        }
        for v in [&tls.min_version, &tls.max_version].into_iter().flatten() {
            Self::version_rank(v)?;
        }
        Ok(())
    }

    /// Go's TLS version names in order (TLS10 = 0 … TLS13 = 3).
    pub fn version_rank(name: &str) -> Result<u8, String> {
        match name {
            "TLS10" => Ok(0),
            "TLS11" => Ok(1),
            "TLS12" => Ok(2),
            "TLS13" => Ok(3),
            _ => Err(format!("unknown TLS version: {name}")),
        }
    }
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpClientConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<Authorization>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_config: Option<TlsConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_proxy: Option<String>,
    #[serde(default)]
    pub proxy_from_environment: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_connect_header: Option<serde_json::Value>,
    #[serde(default = "default_true")]
    pub follow_redirects: bool,
    #[serde(default = "default_true")]
    pub enable_http2: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_headers: Option<serde_json::Value>,
}

impl Default for HttpClientConfig {
    fn default() -> Self {
        Self {
            basic_auth: None,
            authorization: None,
            oauth2: None,
            bearer_token: None,
            bearer_token_file: None,
            tls_config: None,
            proxy_url: None,
            no_proxy: None,
            proxy_from_environment: false,
            proxy_connect_header: None,
            follow_redirects: true,
            enable_http2: true,
            http_headers: None,
        }
    }
}

impl HttpClientConfig {
    /// Prometheus's `HTTPClientConfig.Validate`.
    pub fn validate(&self) -> Result<(), String> {
        if self.bearer_token.is_some() && self.bearer_token_file.is_some() {
            return Err(
                "at most one of bearer_token & bearer_token_file must be configured".into(),
            );
        }
        let bearer = self.bearer_token.is_some() || self.bearer_token_file.is_some();
        let auth_kinds = [self.basic_auth.is_some(), self.oauth2.is_some(), bearer]
            .iter()
            .filter(|x| **x)
            .count();
        if auth_kinds > 1 {
            return Err(
                "at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured"
                    .into(),
            );
        }
        if let Some(auth) = &self.authorization {
            if bearer {
                return Err(
                    "authorization is not compatible with bearer_token & bearer_token_file".into(),
                );
            }
            if self.basic_auth.is_some() || self.oauth2.is_some() {
                return Err(
                    "at most one of basic_auth, oauth2 & authorization must be configured".into(),
                );
            }
            if auth.credentials.is_some() && auth.credentials_file.is_some() {
                return Err("at most one of authorization credentials & credentials_file must be configured".into());
            }
            if auth
                .kind
                .as_deref()
                .is_some_and(|k| k.eq_ignore_ascii_case("basic"))
            {
                return Err(
                    r#"authorization type cannot be set to "basic", use "basic_auth" instead"#
                        .into(),
                );
            }
        }
        if let Some(b) = &self.basic_auth {
            if b.username.is_empty() == b.username_file.is_none() && !b.username.is_empty() {
                return Err(
                    "at most one of basic_auth username & username_file must be configured".into(),
                );
            }
            if b.password.is_some() && b.password_file.is_some() {
                return Err(
                    "at most one of basic_auth password & password_file must be configured".into(),
                );
            }
        }
        if let Some(tls) = &self.tls_config {
            tls.validate()?;
        }
        if self.proxy_from_environment && (self.proxy_url.is_some() || self.no_proxy.is_some()) {
            return Err("if proxy_from_environment is configured, proxy_url and no_proxy must not be configured".into());
        }
        if self.no_proxy.is_some() && self.proxy_url.is_none() {
            return Err("if no_proxy is configured, proxy_url must also be configured".into());
        }
        Ok(())
    }
}
