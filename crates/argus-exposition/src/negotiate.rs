//! Content negotiation for scrapes, as Prometheus 3 does it: the `Accept` header lists the
//! configured `scrape_protocols` in order with falling weights, and the answer's
//! `Content-Type` picks the parser, falling back to `fallback_scrape_protocol` when the target
//! sends none or one we do not know.

use crate::error::{ParseError, Result};

/// One entry of `scrape_protocols` / `fallback_scrape_protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScrapeProtocol {
    PrometheusProto,
    OpenMetricsText0_0_1,
    OpenMetricsText1_0_0,
    PrometheusText0_0_4,
    PrometheusText1_0_0,
}

impl ScrapeProtocol {
    /// Prometheus's default when native histograms are not scraped.
    pub const DEFAULT: [ScrapeProtocol; 4] = [
        Self::OpenMetricsText1_0_0,
        Self::OpenMetricsText0_0_1,
        Self::PrometheusText1_0_0,
        Self::PrometheusText0_0_4,
    ];

    /// Prometheus's default when native histograms are scraped: protobuf first (the only
    /// format that carries them).
    pub const PROTO_FIRST: [ScrapeProtocol; 5] = [
        Self::PrometheusProto,
        Self::OpenMetricsText1_0_0,
        Self::OpenMetricsText0_0_1,
        Self::PrometheusText1_0_0,
        Self::PrometheusText0_0_4,
    ];

    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "PrometheusProto" => Self::PrometheusProto,
            "OpenMetricsText0.0.1" => Self::OpenMetricsText0_0_1,
            "OpenMetricsText1.0.0" => Self::OpenMetricsText1_0_0,
            "PrometheusText0.0.4" => Self::PrometheusText0_0_4,
            "PrometheusText1.0.0" => Self::PrometheusText1_0_0,
            _ => return None,
        })
    }

    fn header(self) -> &'static str {
        match self {
            Self::PrometheusProto => {
                "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"
            }
            Self::OpenMetricsText0_0_1 => "application/openmetrics-text;version=0.0.1",
            Self::OpenMetricsText1_0_0 => "application/openmetrics-text;version=1.0.0",
            Self::PrometheusText0_0_4 => "text/plain;version=0.0.4",
            Self::PrometheusText1_0_0 => "text/plain;version=1.0.0",
        }
    }

    fn media_type(self) -> MediaType {
        match self {
            Self::PrometheusProto => MediaType::Protobuf,
            Self::OpenMetricsText0_0_1 | Self::OpenMetricsText1_0_0 => MediaType::OpenMetrics,
            Self::PrometheusText0_0_4 | Self::PrometheusText1_0_0 => MediaType::PromText,
        }
    }
}

/// The `Accept` header for a scrape: each protocol with a falling `q`, then `*/*`. The 1.0.0
/// text formats announce that UTF-8 names may be sent unescaped.
pub fn accept_header(protocols: &[ScrapeProtocol]) -> String {
    // Prometheus starts at one more than the number of protocols it knows (5).
    let mut weight = 6usize;
    let mut parts = Vec::with_capacity(protocols.len() + 1);
    for protocol in protocols {
        let mut part = protocol.header().to_string();
        if matches!(
            protocol,
            ScrapeProtocol::PrometheusText1_0_0 | ScrapeProtocol::OpenMetricsText1_0_0
        ) {
            part.push_str(";escaping=allow-utf-8");
        }
        part.push_str(&format!(";q=0.{weight}"));
        parts.push(part);
        weight = weight.saturating_sub(1);
    }
    parts.push(format!("*/*;q=0.{weight}"));
    parts.join(",")
}

/// Which parser reads a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaType {
    PromText,
    OpenMetrics,
    Protobuf,
}

/// The parser for a scrape answer's `Content-Type`. `Ok((media, Some(warning)))` when the
/// fallback protocol was used; an error when there is nothing to fall back to.
pub fn media_type(
    content_type: Option<&str>,
    fallback: Option<ScrapeProtocol>,
) -> Result<(MediaType, Option<String>)> {
    // The fallback protocol with the warning naming it, or the error when there is none.
    let fall_back = |why: String, without: String| match fallback {
        Some(f) => Ok((
            f.media_type(),
            Some(format!(
                "{why}, using fallback_scrape_protocol {:?}",
                protocol_name(f)
            )),
        )),
        None => Err(ParseError::new(without)),
    };
    let Some(content_type) = content_type.filter(|c| !c.is_empty()) else {
        return fall_back(
            "non-compliant scrape target sending blank Content-Type".into(),
            "non-compliant scrape target sending blank Content-Type and no fallback_scrape_protocol specified for target".into(),
        );
    };
    let Some(mime) = parse_mime(content_type) else {
        return fall_back(
            format!("could not parse received Content-Type {content_type:?}"),
            format!(
                "cannot parse Content-Type {content_type:?} and no fallback_scrape_protocol for target"
            ),
        );
    };
    match mime.as_str() {
        "application/openmetrics-text" => Ok((MediaType::OpenMetrics, None)),
        "application/vnd.google.protobuf" => Ok((MediaType::Protobuf, None)),
        "text/plain" => Ok((MediaType::PromText, None)),
        _ => fall_back(
            format!("received unsupported Content-Type {content_type:?}"),
            format!(
                "received unsupported Content-Type {content_type:?} and no fallback_scrape_protocol specified for target"
            ),
        ),
    }
}

fn protocol_name(p: ScrapeProtocol) -> &'static str {
    match p {
        ScrapeProtocol::PrometheusProto => "PrometheusProto",
        ScrapeProtocol::OpenMetricsText0_0_1 => "OpenMetricsText0.0.1",
        ScrapeProtocol::OpenMetricsText1_0_0 => "OpenMetricsText1.0.0",
        ScrapeProtocol::PrometheusText0_0_4 => "PrometheusText0.0.4",
        ScrapeProtocol::PrometheusText1_0_0 => "PrometheusText1.0.0",
    }
}

/// The lowercased `type/subtype` of a media type, or `None` when it is not one (what Go's
/// `mime.ParseMediaType` refuses: no slash, empty or non-token parts, a broken parameter).
fn parse_mime(s: &str) -> Option<String> {
    let mut parts = s.split(';');
    let main = parts.next()?.trim();
    let (ty, sub) = main.split_once('/')?;
    let token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&b))
    };
    if !token(ty) || !token(sub) {
        return None;
    }
    for param in parts {
        let param = param.trim();
        if param.is_empty() {
            continue;
        }
        let (key, value) = param.split_once('=')?;
        let value = value.trim();
        let quoted = value.len() >= 2 && value.starts_with('"') && value.ends_with('"');
        if !token(key.trim()) || !(quoted || token(value)) {
            return None;
        }
    }
    Some(main.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_accept_header_matches_prometheus_3() {
        assert_eq!(
            accept_header(&ScrapeProtocol::DEFAULT),
            "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,\
             application/openmetrics-text;version=0.0.1;q=0.5,\
             text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,\
             text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
        );
        assert_eq!(
            accept_header(&[ScrapeProtocol::PrometheusText0_0_4]),
            "text/plain;version=0.0.4;q=0.6,*/*;q=0.5"
        );
    }

    #[test]
    fn content_type_picks_the_parser() {
        let m = |ct, fb| media_type(ct, fb).map(|(m, w)| (m, w.is_some()));
        assert_eq!(
            m(Some("text/plain; version=0.0.4; charset=utf-8"), None),
            Ok((MediaType::PromText, false))
        );
        assert_eq!(
            m(
                Some("application/openmetrics-text; version=1.0.0; charset=utf-8"),
                None
            ),
            Ok((MediaType::OpenMetrics, false))
        );
        assert_eq!(
            m(Some("Text/Plain"), None),
            Ok((MediaType::PromText, false))
        );
        let blank = media_type(None, None).unwrap_err().to_string();
        assert_eq!(
            blank,
            "non-compliant scrape target sending blank Content-Type and no fallback_scrape_protocol specified for target"
        );
        assert_eq!(
            m(Some(""), Some(ScrapeProtocol::PrometheusText0_0_4)),
            Ok((MediaType::PromText, true))
        );
        assert!(
            media_type(Some("text/html"), None)
                .unwrap_err()
                .to_string()
                .contains("received unsupported Content-Type \"text/html\"")
        );
        assert!(
            media_type(Some("garbage"), None)
                .unwrap_err()
                .to_string()
                .contains("cannot parse Content-Type \"garbage\"")
        );
        assert_eq!(
            m(
                Some("text/html"),
                Some(ScrapeProtocol::OpenMetricsText1_0_0)
            ),
            Ok((MediaType::OpenMetrics, true))
        );
    }
}
