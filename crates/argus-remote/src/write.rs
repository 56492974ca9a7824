//! The remote-write 1.0 receiver, answering as Prometheus does: 204 when everything was
//! stored; 400 with a message for a malformed body or rejected samples (not worth retrying);
//! 500 for storage failures (worth retrying).

use argus_model::{Label, Labels};
use argus_tsdb::Db;
use prost::Message;

use crate::prompb::WriteRequest;

#[derive(Debug, Clone, Copy)]
pub struct WriteLimits {
    /// Largest compressed body accepted.
    pub max_body_bytes: usize,
    /// Largest decompressed payload accepted (checked from the snappy header first).
    pub max_decompressed_bytes: usize,
}

impl Default for WriteLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 32 << 20,
            max_decompressed_bytes: 256 << 20,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The request cannot be processed as sent (HTTP 400).
    #[error("{0}")]
    BadRequest(String),
    /// Content type this receiver does not speak (HTTP 415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Storage failed (HTTP 500): the sender should retry.
    #[error("{0}")]
    Internal(String),
}

impl WriteError {
    pub fn status(&self) -> u16 {
        match self {
            WriteError::BadRequest(_) => 400,
            WriteError::UnsupportedMediaType(_) => 415,
            WriteError::Internal(_) => 500,
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriteOutcome {
    pub series: usize,
    pub samples: usize,
}

/// Checks headers and decodes a snappy block + protobuf body.
pub fn decode_write_request(
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    body: &[u8],
    limits: WriteLimits,
) -> Result<WriteRequest, WriteError> {
    if let Some(ct) = content_type {
        let ct = ct.to_ascii_lowercase();
        let media = ct.split(';').next().unwrap_or("").trim();
        if media != "application/x-protobuf" && !media.is_empty() {
            return Err(WriteError::UnsupportedMediaType(format!(
                "unsupported content type {ct:?}: expected application/x-protobuf"
            )));
        }
        if let Some(proto) = ct
            .split(';')
            .skip(1)
            .filter_map(|p| p.trim().strip_prefix("proto="))
            .next()
            && proto != "prometheus.writerequest"
        {
            return Err(WriteError::UnsupportedMediaType(format!(
                "unsupported remote write protobuf message {proto:?}: only remote write 1.0 (prometheus.WriteRequest) is accepted"
            )));
        }
    }
    if let Some(enc) = content_encoding
        && !enc.eq_ignore_ascii_case("snappy")
    {
        return Err(WriteError::UnsupportedMediaType(format!(
            "unsupported content encoding {enc:?}: expected snappy"
        )));
    }
    if body.len() > limits.max_body_bytes {
        return Err(WriteError::BadRequest(format!(
            "request body of {} bytes exceeds the limit of {} bytes",
            body.len(),
            limits.max_body_bytes
        )));
    }
    let len = snap::raw::decompress_len(body)
        .map_err(|e| WriteError::BadRequest(format!("snappy: {e}")))?;
    if len > limits.max_decompressed_bytes {
        return Err(WriteError::BadRequest(format!(
            "decompressed request of {len} bytes exceeds the limit of {} bytes",
            limits.max_decompressed_bytes
        )));
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| WriteError::BadRequest(format!("snappy: {e}")))?;
    WriteRequest::decode(raw.as_slice())
        .map_err(|e| WriteError::BadRequest(format!("invalid protobuf WriteRequest: {e}")))
}

fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Builds a label set from the wire form, refusing what Prometheus refuses.
fn to_labels(wire: &[crate::prompb::Label]) -> Result<Labels, String> {
    let mut labels: Vec<Label> = wire
        .iter()
        .filter(|l| !l.value.is_empty())
        .map(|l| Label::new(l.name.as_str(), l.value.as_str()))
        .collect();
    labels.sort();
    let show = || {
        let pairs: Vec<String> = wire
            .iter()
            .map(|l| format!("{}={:?}", l.name, l.value))
            .collect();
        format!("{{{}}}", pairs.join(", "))
    };
    if labels.is_empty() {
        return Err(format!(
            "invalid labels for series: {}: empty label set",
            show()
        ));
    }
    for pair in labels.windows(2) {
        if pair[0].name == pair[1].name {
            return Err(format!(
                "invalid labels for series, labels {}, duplicated label {}",
                show(),
                pair[0].name
            ));
        }
    }
    for l in &labels {
        let ok = if &*l.name == argus_model::labels::METRIC_NAME {
            valid_metric_name(&l.value)
        } else {
            valid_label_name(&l.name)
        };
        if !ok {
            return Err(format!("invalid metric name or label names: {}", show()));
        }
    }
    Labels::from_sorted(labels).ok_or_else(|| format!("invalid labels for series: {}", show()))
}

/// Stores a decoded request atomically: either every sample is committed or none is.
/// This blocks (it writes the WAL): call it from a blocking thread.
pub fn ingest(db: &Db, request: &WriteRequest) -> Result<WriteOutcome, WriteError> {
    let mut outcome = WriteOutcome::default();
    // Validate every series before touching storage, so a bad label set changes nothing.
    let mut prepared = Vec::with_capacity(request.timeseries.len());
    for ts in &request.timeseries {
        let labels = to_labels(&ts.labels).map_err(WriteError::BadRequest)?;
        if !ts.histograms.is_empty() {
            return Err(WriteError::BadRequest(format!(
                "native histogram samples are not supported yet (series {labels})"
            )));
        }
        prepared.push(labels);
    }
    let mut appender = db.appender();
    for (ts, labels) in request.timeseries.iter().zip(&prepared) {
        for s in &ts.samples {
            if let Err(e) = appender.append(labels, s.timestamp, s.value) {
                let message = format!("{e} for series {labels} at timestamp {}", s.timestamp);
                appender.rollback();
                return Err(if e.is_bad_data() {
                    WriteError::BadRequest(message)
                } else {
                    WriteError::Internal(message)
                });
            }
            outcome.samples += 1;
        }
        outcome.series += 1;
    }
    appender
        .commit()
        .map_err(|e| WriteError::Internal(format!("commit: {e}")))?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompb::{Label as WireLabel, Sample, TimeSeries};
    use argus_model::{MatchOp, Matcher};
    use proptest::prelude::*;

    fn series(name: &str, samples: &[(i64, f64)]) -> TimeSeries {
        TimeSeries {
            labels: vec![
                WireLabel {
                    name: "job".into(),
                    value: "j".into(),
                },
                WireLabel {
                    name: "__name__".into(),
                    value: name.into(),
                },
            ],
            samples: samples
                .iter()
                .map(|&(timestamp, value)| Sample { value, timestamp })
                .collect(),
            ..Default::default()
        }
    }

    fn encode(req: &WriteRequest) -> Vec<u8> {
        snap::raw::Encoder::new()
            .compress_vec(&req.encode_to_vec())
            .unwrap()
    }

    fn count(db: &Db, name: &str) -> usize {
        let m = [Matcher::new(MatchOp::Equal, "__name__", name).unwrap()];
        db.querier(i64::MIN, i64::MAX)
            .select(&m)
            .iter()
            .map(|s| s.samples(i64::MIN, i64::MAX).len())
            .sum()
    }

    #[test]
    fn round_trip_into_storage() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), argus_tsdb::Options::default()).unwrap();
        let req = WriteRequest {
            timeseries: vec![
                series("a", &[(1000, 1.0), (2000, 2.0)]),
                series("b", &[(1000, 5.0)]),
            ],
            metadata: vec![],
        };
        let body = encode(&req);
        let decoded = decode_write_request(
            Some("application/x-protobuf"),
            Some("snappy"),
            &body,
            WriteLimits::default(),
        )
        .unwrap();
        assert_eq!(decoded, req);
        let outcome = ingest(&db, &decoded).unwrap();
        assert_eq!(
            outcome,
            WriteOutcome {
                series: 2,
                samples: 3
            }
        );
        assert_eq!(count(&db, "a"), 2);
    }

    #[test]
    fn rejected_sample_rolls_back_the_whole_request() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), argus_tsdb::Options::default()).unwrap();
        ingest(
            &db,
            &WriteRequest {
                timeseries: vec![series("a", &[(5000, 1.0)])],
                metadata: vec![],
            },
        )
        .unwrap();
        let req = WriteRequest {
            timeseries: vec![series("b", &[(1000, 1.0)]), series("a", &[(4000, 1.0)])],
            metadata: vec![],
        };
        let err = ingest(&db, &req).unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(err.to_string().contains("out of order sample"), "{err}");
        assert_eq!(count(&db, "b"), 0);
        assert_eq!(count(&db, "a"), 1);
    }

    #[test]
    fn bad_labels_and_bodies_are_400s() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), argus_tsdb::Options::default()).unwrap();
        let mut dup = series("a", &[(1, 1.0)]);
        dup.labels.push(WireLabel {
            name: "job".into(),
            value: "k".into(),
        });
        let err = ingest(
            &db,
            &WriteRequest {
                timeseries: vec![dup],
                metadata: vec![],
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("duplicated label job"), "{err}");
        let bad = series("1bad", &[(1, 1.0)]);
        let err = ingest(
            &db,
            &WriteRequest {
                timeseries: vec![bad],
                metadata: vec![],
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("invalid metric name"), "{err}");

        let limits = WriteLimits::default();
        let err = decode_write_request(None, None, b"not snappy at all", limits).unwrap_err();
        assert_eq!(err.status(), 400);
        let garbage = snap::raw::Encoder::new()
            .compress_vec(&[0xff, 0xff, 0xff])
            .unwrap();
        let err = decode_write_request(None, None, &garbage, limits).unwrap_err();
        assert!(err.to_string().contains("invalid protobuf"), "{err}");
        // A body announcing a huge decompressed size is refused before allocating.
        let mut huge = Vec::new();
        let mut n: u64 = 1 << 40;
        while n >= 0x80 {
            huge.push((n as u8) | 0x80);
            n >>= 7;
        }
        huge.push(n as u8);
        let err = decode_write_request(None, None, &huge, limits).unwrap_err();
        assert_eq!(err.status(), 400);
        let err = decode_write_request(
            Some("application/x-protobuf;proto=io.prometheus.write.v2.Request"),
            None,
            &encode(&WriteRequest::default()),
            limits,
        )
        .unwrap_err();
        assert_eq!(err.status(), 415);
    }

    proptest! {
        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_write_request(None, None, &body, WriteLimits::default());
            let compressed = snap::raw::Encoder::new().compress_vec(&body).unwrap();
            let _ = decode_write_request(None, None, &compressed, WriteLimits::default());
        }
    }
}
