//! Exposition formats: streaming parsers for the Prometheus text format (0.0.4 and the quoted
//! UTF-8 names of 1.0.0) and OpenMetrics 1.0, plus content negotiation the way Prometheus 3
//! scrapes (`Accept` from `scrape_protocols`, `Content-Type` with `fallback_scrape_protocol`).
//!
//! Parsers walk a borrowed body once and hand out entries that point into it; label sets are
//! only built when a caller asks (the scrape loop asks once per new series). They never
//! panic and never allocate in proportion to anything but the body they are given.

pub mod error;
pub mod negotiate;
pub mod protobuf;
pub mod text;

pub use error::{ParseError, Result};
pub use negotiate::{MediaType, ScrapeProtocol, accept_header, media_type};
pub use protobuf::{HistogramOptions, ProtoParser};
pub use text::{Entry, Exemplar, Parser};

use argus_model::Labels;

/// A parser for whichever format a scrape answered in.
pub enum ScrapeParser<'a> {
    Text(Parser<'a>),
    Proto(ProtoParser<'a>),
}

impl<'a> ScrapeParser<'a> {
    pub fn new(body: &'a [u8], media: MediaType, histograms: HistogramOptions) -> Self {
        match media {
            MediaType::Protobuf => Self::Proto(ProtoParser::new(body, histograms)),
            _ => Self::Text(Parser::new(body, media)),
        }
    }

    /// The next entry, `None` at the end (or after an error).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Result<Entry<'_>>> {
        match self {
            Self::Text(p) => p.next(),
            Self::Proto(p) => p.next(),
        }
    }

    /// The exemplars of the current sample (OpenMetrics: at most one).
    pub fn exemplars(&self) -> Vec<Exemplar> {
        match self {
            Self::Text(p) => p.exemplar().cloned().into_iter().collect(),
            Self::Proto(p) => p.exemplars(),
        }
    }

    /// The label set of the current sample.
    pub fn labels(&self) -> Result<Labels> {
        match self {
            Self::Text(p) => p.labels(),
            Self::Proto(p) => p.labels(),
        }
    }
}

/// A metric family's type as metadata carries it (`# TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    StateSet,
    #[default]
    Unknown,
}

impl MetricType {
    /// The name the metadata API uses (`untyped` reads as `unknown`, as in Prometheus).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
            Self::GaugeHistogram => "gaugehistogram",
            Self::Summary => "summary",
            Self::Info => "info",
            Self::StateSet => "stateset",
            Self::Unknown => "unknown",
        }
    }
}
