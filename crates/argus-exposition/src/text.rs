//! The Prometheus text format (0.0.4, with the quoted UTF-8 names of 1.0.0) and OpenMetrics
//! 1.0, in one hand-written scanner with a strict mode.
//!
//! The parser walks the body once. A series entry hands out the raw bytes of its name and
//! labels (`series`, a cache key: identical bytes mean an identical series, so a scrape loop
//! only builds a label set for series it has not seen) plus value and timestamp; the label
//! set itself is built on request by [`Parser::labels`].
//!
//! What differs between the two formats:
//!
//! | | text | OpenMetrics |
//! |---|---|---|
//! | separators | runs of spaces and tabs, also inside braces | exactly one space |
//! | comments | `#` lines other than HELP/TYPE are skipped | only HELP/TYPE/UNIT/EOF |
//! | timestamps | integer milliseconds | float seconds |
//! | end | end of body | `# EOF` line, nothing after it |
//! | exemplars | – | `# {labels} value [timestamp]` after a sample |

use std::borrow::Cow;

use argus_model::{Labels, LabelsBuilder};

use crate::MetricType;
use crate::error::{ParseError, Result};
use crate::negotiate::MediaType;

/// One entry of a body. Strings and bytes point into the body.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry<'a> {
    Help {
        name: Cow<'a, str>,
        help: Cow<'a, str>,
    },
    Type {
        name: Cow<'a, str>,
        metric_type: MetricType,
    },
    Unit {
        name: Cow<'a, str>,
        unit: Cow<'a, str>,
    },
    /// A float sample. `series` is the name-and-labels text exactly as written (text
    /// formats) or a key built from them (protobuf).
    Series {
        series: &'a [u8],
        value: f64,
        timestamp_ms: Option<i64>,
    },
    /// A native histogram sample (protobuf format only).
    Histogram {
        series: &'a [u8],
        histogram: Box<argus_model::FloatHistogram>,
        timestamp_ms: Option<i64>,
    },
}

/// An OpenMetrics exemplar attached to the current sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    pub labels: Labels,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

/// The most runes an exemplar's label names and values may hold together (OpenMetrics).
pub const EXEMPLAR_MAX_LABEL_RUNES: usize = 128;

/// A byte range of the body; `escaped` when it holds a backslash (so needs unescaping).
#[derive(Debug, Clone, Copy, Default)]
struct Span {
    start: usize,
    end: usize,
    escaped: bool,
}

/// Streaming parser over one body. Call [`Parser::next`] until it returns `None`; after an
/// error it returns `None`.
pub struct Parser<'a> {
    buf: &'a [u8],
    pos: usize,
    open_metrics: bool,
    done: bool,
    /// Start of the entry being parsed (for error messages).
    line_start: usize,
    name: Option<Span>,
    labels: Vec<(Span, Span)>,
    /// Type from the latest `# TYPE` line and the family it named.
    metric_type: MetricType,
    family: Option<Span>,
    exemplar: Option<Exemplar>,
}

fn is_metric_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b':'
}
fn is_metric_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}
fn is_label_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}
fn is_label_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Go's `%q` of bytes, close enough for error messages (invalid UTF-8 shown lossily).
fn q(bytes: &[u8]) -> String {
    argus_model::gofmt::quote(&String::from_utf8_lossy(bytes))
}

/// `strconv.ParseFloat` as Prometheus's parsers call it: Go's accepted spellings (`Inf`,
/// `+Inf`, `infinity`, `NaN` in any case; no sign on NaN), no hex floats or underscores
/// (Prometheus refuses `p`, `P` and `_`), and out-of-range values are errors.
pub fn parse_go_float(s: &str) -> std::result::Result<f64, String> {
    let syntax = || {
        format!(
            "strconv.ParseFloat: parsing {}: invalid syntax",
            q(s.as_bytes())
        )
    };
    let numeric = |b: u8| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-');
    if !s.is_empty() && s.bytes().all(numeric) {
        return match s.parse::<f64>() {
            Ok(v) if v.is_infinite() => Err(format!(
                "strconv.ParseFloat: parsing {}: value out of range",
                q(s.as_bytes())
            )),
            Ok(v) => Ok(v),
            Err(_) => Err(syntax()),
        };
    }
    if s.contains(['p', 'P', '_']) {
        return Err("unsupported character in float".into());
    }
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    if unsigned.eq_ignore_ascii_case("nan") {
        return if unsigned.len() == s.len() {
            Ok(f64::NAN)
        } else {
            Err(syntax())
        };
    }
    if unsigned.eq_ignore_ascii_case("inf") || unsigned.eq_ignore_ascii_case("infinity") {
        return Ok(if s.starts_with('-') {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    // Anything else with a letter other than an exponent is not a number, for Go as for Rust.
    Err(syntax())
}

/// `strconv.ParseInt(s, 10, 64)`.
fn parse_go_int(s: &str) -> std::result::Result<i64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "strconv.ParseInt: parsing {}: invalid syntax",
            q(s.as_bytes())
        ));
    }
    s.parse::<i64>().map_err(|_| {
        format!(
            "strconv.ParseInt: parsing {}: value out of range",
            q(s.as_bytes())
        )
    })
}

/// Prometheus's `FormatOpenMetricsFloat`: Go's shortest `'g'` spelling, with `.0` added to
/// integers (`1` → `1.0`), `+Inf`, `-Inf`, `NaN`.
pub fn format_openmetrics_float(v: f64) -> String {
    let s = argus_model::gofmt::format_g(v);
    if v.is_finite() && !s.contains(['e', '.']) {
        s + ".0"
    } else {
        s
    }
}

/// Undoes the escapes of a label value or quoted name (`\"`, `\\`, `\n`; any other backslash
/// stays as written, as in Prometheus).
fn unescape(s: &str, help_only: bool) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if !help_only => out.push('"'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

impl<'a> Parser<'a> {
    pub fn new(buf: &'a [u8], media: MediaType) -> Self {
        Self {
            buf,
            pos: 0,
            open_metrics: media == MediaType::OpenMetrics,
            done: false,
            line_start: 0,
            name: None,
            labels: Vec::new(),
            metric_type: MetricType::Unknown,
            family: None,
            exemplar: None,
        }
    }

    fn cur(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    fn str_of(&self, span: Span) -> Result<Cow<'a, str>> {
        let bytes = &self.buf[span.start..span.end];
        let s = std::str::from_utf8(bytes)
            .map_err(|_| ParseError::new(format!("invalid UTF-8 label value: {}", q(bytes))))?;
        Ok(if span.escaped {
            Cow::Owned(unescape(s, false))
        } else {
            Cow::Borrowed(s)
        })
    }

    /// The error Prometheus's parsers write for an unexpected token at `self.pos`.
    fn unexpected(&self, expected: &str) -> ParseError {
        let (token, kind) = match self.cur() {
            None => (&self.buf[self.buf.len()..], "EOF"),
            Some(b'\n') => (&self.buf[self.pos..self.pos + 1], "LINEBREAK"),
            Some(_) => {
                let end = self.buf[self.pos..]
                    .iter()
                    .position(|&c| matches!(c, b' ' | b'\t' | b'\n'))
                    .map_or(self.buf.len(), |n| self.pos + n.max(1));
                (&self.buf[self.pos..end], "INVALID")
            }
        };
        let end = (self.pos + 1).min(self.buf.len());
        ParseError::new(format!(
            "{expected}, got {} ({}) while parsing: {}",
            q(token),
            q(kind.as_bytes()),
            q(&self.buf[self.line_start..end])
        ))
    }

    fn while_parsing(&self, message: String) -> ParseError {
        ParseError::new(format!(
            "{message} while parsing: {}",
            q(&self.buf[self.line_start..self.pos.min(self.buf.len())])
        ))
    }

    /// Text format: skips spaces and tabs. OpenMetrics has no optional whitespace.
    fn skip_ws(&mut self) {
        if !self.open_metrics {
            while matches!(self.cur(), Some(b' ' | b'\t')) {
                self.pos += 1;
            }
        }
    }

    /// A required separator: one space in OpenMetrics, any run of blanks in text.
    fn separator(&mut self) -> bool {
        if self.open_metrics {
            if self.cur() == Some(b' ') {
                self.pos += 1;
                return true;
            }
            return false;
        }
        let start = self.pos;
        self.skip_ws();
        self.pos > start
    }

    /// The run of bytes from `self.pos` that satisfy `accept`.
    fn take_while(&mut self, accept: fn(u8) -> bool) -> Span {
        let start = self.pos;
        while self.cur().is_some_and(accept) {
            self.pos += 1;
        }
        Span {
            start,
            end: self.pos,
            escaped: false,
        }
    }

    /// A quoted string starting at `self.pos` (on the opening quote); returns its inside.
    fn quoted(&mut self, allow_newline: bool) -> Option<Span> {
        let start = self.pos + 1;
        let mut i = start;
        let mut escaped = false;
        while i < self.buf.len() {
            match self.buf[i] {
                b'\\' => {
                    escaped = true;
                    i += 2;
                }
                b'"' => {
                    self.pos = i + 1;
                    return Some(Span {
                        start,
                        end: i,
                        escaped,
                    });
                }
                b'\n' if !allow_newline => return None,
                _ => i += 1,
            }
        }
        None
    }

    /// The next entry, `None` at the end (or after an error).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Result<Entry<'a>>> {
        if self.done {
            return None;
        }
        let entry = self.next_entry();
        match entry {
            Ok(Some(entry)) => Some(Ok(entry)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }

    fn next_entry(&mut self) -> Result<Option<Entry<'a>>> {
        loop {
            self.line_start = self.pos;
            self.skip_ws();
            match self.cur() {
                None => {
                    return if self.open_metrics {
                        Err(ParseError::new("data does not end with # EOF"))
                    } else {
                        Ok(None)
                    };
                }
                Some(b'\n') => {
                    self.pos += 1;
                    continue;
                }
                Some(b'#') => {
                    if let Some(entry) = self.comment()? {
                        return Ok(Some(entry));
                    }
                    if self.done {
                        // `# EOF`.
                        return Ok(None);
                    }
                }
                Some(c) if c == b'{' || is_metric_start(c) => return self.series().map(Some),
                Some(_) => return Err(self.unexpected("expected a valid start token")),
            }
        }
    }

    /// A `#` line: metadata entry, a skipped comment (`None`), or `# EOF`.
    fn comment(&mut self) -> Result<Option<Entry<'a>>> {
        self.pos += 1;
        let after_hash = self.pos;
        let blank = |c: Option<u8>, om: bool| match c {
            Some(b' ') => true,
            Some(b'\t') => !om,
            _ => false,
        };
        if blank(self.cur(), self.open_metrics) {
            if self.open_metrics {
                self.pos += 1;
            } else {
                self.skip_ws();
            }
            let rest = &self.buf[self.pos..];
            let keyword = |word: &[u8]| {
                rest.starts_with(word) && blank(rest.get(word.len()).copied(), self.open_metrics)
            };
            let kind = if keyword(b"HELP") {
                Some(0)
            } else if keyword(b"TYPE") {
                Some(1)
            } else if self.open_metrics && keyword(b"UNIT") {
                Some(2)
            } else {
                None
            };
            if let Some(kind) = kind {
                self.pos += 4;
                self.separator();
                return self.metadata(kind).map(Some);
            }
            if self.open_metrics && rest.starts_with(b"EOF") {
                let after = &rest[3..];
                let after = after.strip_prefix(b"\n").unwrap_or(after);
                if !after.is_empty() {
                    return Err(ParseError::new("unexpected data after # EOF"));
                }
                self.pos = self.buf.len();
                self.done = true;
                return Ok(None);
            }
        }
        if self.open_metrics {
            self.pos = after_hash - 1;
            return Err(self.unexpected("expected a valid start token"));
        }
        // A plain comment: skipped up to the end of its line.
        match self.buf[self.pos..].iter().position(|&c| c == b'\n') {
            Some(n) => self.pos += n + 1,
            None => self.pos = self.buf.len(),
        }
        Ok(None)
    }

    /// `HELP`/`TYPE`/`UNIT` (kind 0/1/2): name, one blank, text to the end of the line.
    fn metadata(&mut self, kind: u8) -> Result<Entry<'a>> {
        let keyword = ["HELP", "TYPE", "UNIT"][usize::from(kind)];
        let name = match self.cur() {
            Some(b'"') => self
                .quoted(false)
                .ok_or_else(|| self.unexpected(&format!("expected metric name after {keyword}")))?,
            Some(c) if is_metric_start(c) => self.take_while(is_metric_char),
            _ => return Err(self.unexpected(&format!("expected metric name after {keyword}"))),
        };
        let text_start = match self.cur() {
            Some(b' ') => self.pos + 1,
            Some(b'\t') if !self.open_metrics => self.pos + 1,
            Some(b'\n') | None if !self.open_metrics => self.pos,
            _ => return Err(ParseError::new(format!("expected text in {keyword}"))),
        };
        let text_end = self.buf[text_start..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(self.buf.len(), |n| text_start + n);
        self.pos = (text_end + 1).min(self.buf.len());
        let text = std::str::from_utf8(&self.buf[text_start..text_end]).map_err(|_| {
            ParseError::new(format!(
                "help text {} is not a valid utf8 string",
                q(&self.buf[text_start..text_end])
            ))
        })?;
        let name_str = self.str_of(name)?;
        if name_str.is_empty() {
            return Err(ParseError::new("metric name must not be empty"));
        }
        match kind {
            0 => {
                let help = if text.contains('\\') {
                    Cow::Owned(unescape(text, !self.open_metrics))
                } else {
                    Cow::Borrowed(text)
                };
                Ok(Entry::Help {
                    name: name_str,
                    help,
                })
            }
            1 => {
                let metric_type = match text {
                    "counter" => MetricType::Counter,
                    "gauge" => MetricType::Gauge,
                    "histogram" => MetricType::Histogram,
                    "summary" => MetricType::Summary,
                    "untyped" if !self.open_metrics => MetricType::Unknown,
                    "gaugehistogram" if self.open_metrics => MetricType::GaugeHistogram,
                    "info" if self.open_metrics => MetricType::Info,
                    "stateset" if self.open_metrics => MetricType::StateSet,
                    "unknown" if self.open_metrics => MetricType::Unknown,
                    other => {
                        return Err(ParseError::new(format!(
                            "invalid metric type {}",
                            q(other.as_bytes())
                        )));
                    }
                };
                self.metric_type = metric_type;
                self.family = Some(name);
                Ok(Entry::Type {
                    name: name_str,
                    metric_type,
                })
            }
            _ => {
                if !text.is_empty() {
                    let suffixed = name_str.len() > text.len()
                        && name_str.ends_with(text)
                        && name_str.as_bytes()[name_str.len() - text.len() - 1] == b'_';
                    if !suffixed {
                        return Err(ParseError::new(format!(
                            "unit {} not a suffix of metric {}",
                            q(text.as_bytes()),
                            q(name_str.as_bytes())
                        )));
                    }
                }
                Ok(Entry::Unit {
                    name: name_str,
                    unit: Cow::Borrowed(text),
                })
            }
        }
    }

    /// A sample line: name and/or braces, value, optional timestamp, optional exemplar.
    fn series(&mut self) -> Result<Entry<'a>> {
        let start = self.pos;
        self.name = None;
        self.labels.clear();
        self.exemplar = None;
        if self.cur().is_some_and(is_metric_start) {
            self.name = Some(self.take_while(is_metric_char));
            self.skip_ws();
        }
        if self.cur() == Some(b'{') {
            self.pos += 1;
            self.label_pairs(false)?;
        }
        let series_end = self.pos;
        if self.name.is_none() {
            return Err(ParseError::new(format!(
                "metric name not set while parsing: {}",
                q(&self.buf[self.line_start..self.pos])
            )));
        }
        let value = self.value("expected value after metric")?;
        let mut timestamp_ms = None;
        if !self.end_of_sample("expected timestamp or new record")? {
            timestamp_ms = Some(self.timestamp()?);
            if !self.end_of_sample("expected next entry after timestamp")? {
                return Err(self.unexpected("expected next entry after timestamp"));
            }
        }
        Ok(Entry::Series {
            series: &self.buf[start..series_end],
            value,
            timestamp_ms,
        })
    }

    /// After a value or timestamp: a separator, then the end of the sample line (newline,
    /// end of a text body, or an OpenMetrics exemplar), consumed. False when another token
    /// follows the separator; `expected` words the error for anything else.
    fn end_of_sample(&mut self, expected: &str) -> Result<bool> {
        let had_blank = self.separator();
        match self.cur() {
            None if !self.open_metrics => Ok(true),
            None => Err(ParseError::new("data does not end with # EOF")),
            Some(b'\n') if !self.open_metrics || !had_blank => {
                self.pos += 1;
                Ok(true)
            }
            Some(b'#') if self.open_metrics && had_blank => {
                self.exemplar_comment()?;
                Ok(true)
            }
            Some(_) if had_blank => Ok(false),
            _ => Err(self.unexpected(expected)),
        }
    }

    /// The pairs inside braces (after `{`), up to and including `}`.
    fn label_pairs(&mut self, exemplar: bool) -> Result<()> {
        loop {
            self.skip_ws();
            let (name, quoted) = match self.cur() {
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'"') => match self.quoted(!self.open_metrics) {
                    Some(span) => (span, true),
                    None => return Err(self.unexpected("expected label name")),
                },
                Some(c) if is_label_start(c) => (self.take_while(is_label_char), false),
                _ => return Err(self.unexpected("expected label name")),
            };
            self.skip_ws();
            if quoted && matches!(self.cur(), Some(b',' | b'}')) {
                if exemplar {
                    return Err(self.unexpected("expected label name"));
                }
                if self.name.is_some() {
                    return Err(ParseError::new(format!(
                        "metric name already set while parsing: {}",
                        q(&self.buf[self.line_start..self.pos])
                    )));
                }
                self.name = Some(name);
                if self.cur() == Some(b',') {
                    self.pos += 1;
                }
                continue;
            }
            if self.cur() != Some(b'=') {
                return Err(self.unexpected("expected equal"));
            }
            self.pos += 1;
            self.skip_ws();
            if self.cur() != Some(b'"') {
                return Err(self.unexpected("expected label value"));
            }
            let value = self
                .quoted(!self.open_metrics)
                .ok_or_else(|| self.unexpected("expected label value"))?;
            let raw = &self.buf[value.start..value.end];
            if std::str::from_utf8(raw).is_err() {
                return Err(ParseError::new(format!(
                    "invalid UTF-8 label value: {}",
                    q(&self.buf[value.start - 1..value.end + 1])
                )));
            }
            if std::str::from_utf8(&self.buf[name.start..name.end]).is_err() {
                return Err(ParseError::new(format!(
                    "invalid UTF-8 label name: {}",
                    q(&self.buf[name.start..name.end])
                )));
            }
            self.labels.push((name, value));
            self.skip_ws();
            match self.cur() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {}
                _ if self.open_metrics => {
                    return Err(self.unexpected("expected comma or brace close"));
                }
                _ => {}
            }
        }
    }

    /// The value token after the series (or exemplar labels).
    fn value(&mut self, expected: &str) -> Result<f64> {
        let had_blank = self.separator();
        if self.open_metrics && !had_blank {
            return Err(self.unexpected(expected));
        }
        let start = self.pos;
        while let Some(c) = self.cur() {
            let stop = if self.open_metrics {
                matches!(c, b' ' | b'\n')
            } else {
                matches!(c, b' ' | b'\t' | b'\n' | b'{')
            };
            if stop {
                break;
            }
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.unexpected(expected));
        }
        let token = std::str::from_utf8(&self.buf[start..self.pos]).unwrap_or("\u{fffd}");
        let value = parse_go_float(token).map_err(|e| self.while_parsing(e))?;
        Ok(if value.is_nan() { f64::NAN } else { value })
    }

    /// A timestamp token: integer milliseconds (text) or float seconds (OpenMetrics).
    fn timestamp(&mut self) -> Result<i64> {
        let start = self.pos;
        while self
            .cur()
            .is_some_and(|c| !matches!(c, b' ' | b'\n') && (self.open_metrics || c != b'\t'))
        {
            self.pos += 1;
        }
        let token = std::str::from_utf8(&self.buf[start..self.pos]).unwrap_or("\u{fffd}");
        if self.open_metrics {
            let seconds = parse_go_float(token).map_err(|e| self.while_parsing(e))?;
            if !seconds.is_finite() {
                return Err(ParseError::new(format!(
                    "invalid timestamp {}",
                    argus_model::gofmt::format_f(seconds)
                )));
            }
            Ok((seconds * 1000.0) as i64)
        } else {
            parse_go_int(token).map_err(|e| self.while_parsing(e))
        }
    }

    /// OpenMetrics ` # {labels} value [timestamp]` after a sample, through the line end.
    fn exemplar_comment(&mut self) -> Result<()> {
        if !self.buf[self.pos..].starts_with(b"# {") {
            return Err(self.unexpected("expected timestamp or comment"));
        }
        self.pos += 3;
        let (saved_name, saved_len) = (self.name, self.labels.len());
        self.label_pairs(true)?;
        let pairs = self.labels.split_off(saved_len);
        self.name = saved_name;
        let mut builder = LabelsBuilder::new();
        let mut runes = 0;
        for (name, value) in &pairs {
            let name = self.str_of(*name)?;
            let value = self.str_of(*value)?;
            runes += name.chars().count() + value.chars().count();
            builder.set(&name, &value);
        }
        if runes > EXEMPLAR_MAX_LABEL_RUNES {
            return Err(ParseError::new(format!(
                "exemplar labels have {runes} runes, exceeding the limit of {EXEMPLAR_MAX_LABEL_RUNES}"
            )));
        }
        let value = self.value("expected value after exemplar labels")?;
        let mut timestamp_ms = None;
        match self.cur() {
            Some(b'\n') => self.pos += 1,
            None => return Err(ParseError::new("data does not end with # EOF")),
            Some(b' ') => {
                self.pos += 1;
                timestamp_ms = Some(self.timestamp()?);
                match self.cur() {
                    Some(b'\n') => self.pos += 1,
                    None => return Err(ParseError::new("data does not end with # EOF")),
                    _ => {
                        return Err(self.unexpected("expected next entry after exemplar timestamp"));
                    }
                }
            }
            _ => return Err(self.unexpected("expected timestamp or comment")),
        }
        self.exemplar = Some(Exemplar {
            labels: builder.build(),
            value,
            timestamp_ms,
        });
        Ok(())
    }

    /// The exemplar of the current sample, if it carried one.
    pub fn exemplar(&self) -> Option<&Exemplar> {
        self.exemplar.as_ref()
    }

    /// The type from the latest `# TYPE` line (`Unknown` before any).
    pub fn metric_type(&self) -> MetricType {
        self.metric_type
    }

    /// The current sample's metric name.
    pub fn metric_name(&self) -> Result<Cow<'a, str>> {
        match self.name {
            Some(span) => self.str_of(span),
            None => Ok(Cow::Borrowed("")),
        }
    }

    /// True when the current sample belongs to the family of the latest `# TYPE` line (its
    /// name, or the name plus a suffix the type allows).
    pub fn in_typed_family(&self) -> bool {
        let (Some(family), Some(name)) = (self.family, self.name) else {
            return false;
        };
        let family = &self.buf[family.start..family.end];
        let name = &self.buf[name.start..name.end];
        let Some(suffix) = name.strip_prefix(family) else {
            return false;
        };
        let allowed: &[&[u8]] = match self.metric_type {
            MetricType::Counter => &[b"", b"_total", b"_created"],
            MetricType::Histogram | MetricType::GaugeHistogram => &[
                b"",
                b"_bucket",
                b"_count",
                b"_sum",
                b"_created",
                b"_gcount",
                b"_gsum",
            ],
            MetricType::Summary => &[b"", b"_count", b"_sum", b"_created"],
            MetricType::Info => &[b"", b"_info"],
            _ => &[b""],
        };
        allowed.contains(&suffix)
    }

    /// The label set of the current sample: `__name__` plus its labels, sorted, with `le` of
    /// histograms and `quantile` of summaries spelled as OpenMetrics floats (Prometheus 3).
    /// Fails on a repeated label name or an empty metric name.
    pub fn labels(&self) -> Result<Labels> {
        let name = self.metric_name()?;
        if name.is_empty() {
            return Err(ParseError::new("metric name must not be empty"));
        }
        let mut pairs: Vec<(Cow<'a, str>, Cow<'a, str>)> =
            Vec::with_capacity(self.labels.len() + 1);
        pairs.push((Cow::Borrowed(argus_model::labels::METRIC_NAME), name));
        for (label_name, label_value) in &self.labels {
            let label_name = self.str_of(*label_name)?;
            let mut label_value = self.str_of(*label_value)?;
            let normalise = match self.metric_type {
                MetricType::Summary => label_name == "quantile",
                MetricType::Histogram => label_name == "le",
                _ => false,
            };
            if normalise && let Ok(v) = parse_go_float(&label_value) {
                label_value = Cow::Owned(format_openmetrics_float(v));
            }
            pairs.push((label_name, label_value));
        }
        sorted_labels(pairs)
    }
}

/// A label set from `(name, value)` pairs in any order: sorted, empty values dropped; a
/// repeated name is Prometheus's "not unique" error.
pub(crate) fn sorted_labels(mut pairs: Vec<(Cow<'_, str>, Cow<'_, str>)>) -> Result<Labels> {
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(w) = pairs.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(ParseError::new(format!(
            "label name {} is not unique: invalid sample",
            q(w[0].0.as_bytes())
        )));
    }
    let refs: Vec<(&str, &str)> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(n, v)| (n.as_ref(), v.as_ref()))
        .collect();
    Labels::from_sorted_refs(&refs).ok_or_else(|| ParseError::new("invalid label set"))
}

#[cfg(test)]
mod tests;
