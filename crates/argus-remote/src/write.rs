//! The remote-write 1.0 receiver, answering as Prometheus does: 204 when everything was
//! stored; 400 with a message for a malformed body or rejected samples (not worth retrying);
//! 500 for storage failures (worth retrying).

use argus_tsdb::Db;

use crate::wire;

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

/// Checks headers and size caps, and decompresses the snappy block body.
pub fn decompress_write_request(
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    body: &[u8],
    limits: WriteLimits,
) -> Result<Vec<u8>, WriteError> {
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
    snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| WriteError::BadRequest(format!("snappy: {e}")))
}

fn show(pairs: &[(&str, &str)]) -> String {
    let shown: Vec<String> = pairs.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
    format!("{{{}}}", shown.join(", "))
}

/// Checks a series' labels the way Prometheus does and returns them sorted, without empty
/// values. Borrows when the sender already sent them sorted (the usual case).
fn check_labels<'a, 'b>(
    wire: &'b [(&'a str, &'a str)],
) -> Result<std::borrow::Cow<'b, [(&'a str, &'a str)]>, String> {
    use std::borrow::Cow;
    let clean = wire.iter().all(|(_, v)| !v.is_empty()) && wire.windows(2).all(|w| w[0].0 < w[1].0);
    let pairs: Cow<'b, [(&'a str, &'a str)]> = if clean {
        Cow::Borrowed(wire)
    } else {
        let mut v: Vec<(&str, &str)> = wire
            .iter()
            .copied()
            .filter(|(_, v)| !v.is_empty())
            .collect();
        v.sort_by(|a, b| a.0.cmp(b.0));
        Cow::Owned(v)
    };
    if pairs.is_empty() {
        return Err(format!(
            "invalid labels for series: {}: empty label set",
            show(wire)
        ));
    }
    for w in pairs.windows(2) {
        if w[0].0 == w[1].0 {
            return Err(format!(
                "invalid labels for series, labels {}, duplicated label {}",
                show(wire),
                w[0].0
            ));
        }
    }
    for (name, value) in pairs.iter() {
        let ok = if *name == argus_model::labels::METRIC_NAME {
            argus_model::labels::is_valid_metric_name(value)
        } else {
            argus_model::labels::is_valid_label_name(name)
        };
        if !ok {
            return Err(format!(
                "invalid metric name or label names: {}",
                show(wire)
            ));
        }
    }
    Ok(pairs)
}

/// Decodes a decompressed `WriteRequest` and stores it atomically: either every sample is
/// committed or none is. This blocks (it writes the WAL): call it from a blocking thread.
pub fn ingest(db: &Db, raw: &[u8]) -> Result<WriteOutcome, WriteError> {
    let request = wire::decode(raw)
        .map_err(|e| WriteError::BadRequest(format!("invalid protobuf WriteRequest: {e}")))?;
    let mut outcome = WriteOutcome::default();
    // Validate every series before touching storage, so a bad label set changes nothing.
    // Histograms are decoded and validated up front too.
    let mut prepared = Vec::with_capacity(request.series.len());
    for ws in &request.series {
        let pairs = check_labels(request.series_labels(ws)).map_err(WriteError::BadRequest)?;
        let mut hists = Vec::with_capacity(ws.histograms.len());
        for bytes in request.series_histograms(ws) {
            hists.push(crate::histogram::decode(bytes).map_err(|e| {
                WriteError::BadRequest(format!(
                    "invalid native histogram for series {}: {e}",
                    show(&pairs)
                ))
            })?);
        }
        prepared.push((pairs, hists));
    }
    let mut appender = db.appender();
    for (ws, (pairs, hists)) in request.series.iter().zip(prepared) {
        let samples = request.series_samples(ws);
        let exemplars = request.series_exemplars(ws);
        if samples.is_empty() && hists.is_empty() && exemplars.is_empty() {
            continue;
        }
        let series = db.head.get_or_create_pairs(&pairs);
        // A refused sample refuses the request (the appender is dropped uncommitted).
        let refused = |e: argus_tsdb::Error, t: i64| {
            let message = format!("{e} for series {} at timestamp {t}", series.labels);
            if e.is_bad_data() {
                WriteError::BadRequest(message)
            } else {
                WriteError::Internal(message)
            }
        };
        for (t, h) in hists {
            appender
                .append_histogram_to(series.clone(), t, h)
                .map_err(|e| refused(e, t))?;
            outcome.samples += 1;
        }
        for &(t, v) in samples {
            appender
                .append_to(series.clone(), t, v)
                .map_err(|e| refused(e, t))?;
            outcome.samples += 1;
        }
        // As in Prometheus, exemplars never fail a request: a malformed, too long or out of
        // order one is skipped (out-of-order ones are counted by the storage).
        if db.exemplars.enabled() {
            for bytes in exemplars {
                let Ok((labels, value, ts)) = wire::decode_exemplar(bytes) else {
                    continue;
                };
                let labels = argus_model::Labels::from_pairs(&labels);
                let _ = appender.append_exemplar(
                    series.clone(),
                    argus_tsdb::exemplars::Exemplar { labels, value, ts },
                );
            }
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
    use crate::prompb::{Label as WireLabel, Sample, TimeSeries, WriteRequest};
    use argus_model::{MatchOp, Matcher};
    use proptest::prelude::*;
    use prost::Message;

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

    /// Native histograms are stored and read back; an invalid one refuses the whole request.
    #[test]
    fn histograms_into_storage() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), argus_tsdb::Options::default()).unwrap();
        let mut with_hist = series("latency", &[]);
        with_hist.histograms = vec![
            crate::histogram::tests::integer_histogram(1000),
            crate::histogram::tests::integer_histogram(2000),
        ];
        let req = WriteRequest {
            timeseries: vec![with_hist, series("up", &[(1000, 1.0)])],
            metadata: vec![],
        };
        let outcome = ingest(&db, &req.encode_to_vec()).unwrap();
        assert_eq!((outcome.series, outcome.samples), (2, 3));
        let m = [Matcher::new(MatchOp::Equal, "__name__", "latency").unwrap()];
        let got = db.select_histograms(i64::MIN, i64::MAX, &m);
        assert_eq!(got.len(), 1);
        let times: Vec<i64> = got[0].1.iter().map(|p| p.0).collect();
        assert_eq!(times, vec![1000, 2000]);
        assert_eq!(got[0].1[0].1.count, 5.0);

        let mut bad = series("bad_latency", &[]);
        bad.histograms = vec![vec![0x20, 0x12]]; // schema 9
        let req = WriteRequest {
            timeseries: vec![series("up", &[(3000, 1.0)]), bad],
            metadata: vec![],
        };
        let err = ingest(&db, &req.encode_to_vec()).unwrap_err();
        assert!(
            matches!(&err, WriteError::BadRequest(m) if m.contains("invalid schema")),
            "{err:?}"
        );
        assert_eq!(
            count(&db, "up"),
            1,
            "nothing of a refused request is stored"
        );
    }

    /// Exemplars are stored with exemplar storage on; bad or out-of-order ones are skipped
    /// without failing the request.
    #[test]
    fn exemplars_into_storage() {
        let dir = tempfile::tempdir().unwrap();
        let opts = argus_tsdb::Options {
            max_exemplars: 8,
            ..Default::default()
        };
        let db = Db::open(dir.path(), opts).unwrap();
        let exemplar = |trace: &str, value: f64, timestamp: i64| crate::prompb::Exemplar {
            labels: vec![WireLabel {
                name: "trace_id".into(),
                value: trace.into(),
            }],
            value,
            timestamp,
        };
        let mut with = series("requests_total", &[(1000, 1.0), (2000, 2.0)]);
        with.exemplars = vec![
            exemplar("a", 0.5, 1000),
            exemplar("b", 0.7, 2000),
            exemplar("late", 0.1, 1500),
        ];
        let req = WriteRequest {
            timeseries: vec![with],
            metadata: vec![],
        };
        let outcome = ingest(&db, &req.encode_to_vec()).unwrap();
        assert_eq!(outcome.samples, 2);
        let m = vec![Matcher::new(MatchOp::Equal, "__name__", "requests_total").unwrap()];
        let got = db.exemplars.select(i64::MIN, i64::MAX, &[m]);
        assert_eq!(got.len(), 1);
        let traces: Vec<(String, i64)> = got[0]
            .1
            .iter()
            .map(|e| (e.labels.get("trace_id").unwrap().to_string(), e.ts))
            .collect();
        assert_eq!(traces, [("a".to_string(), 1000), ("b".to_string(), 2000)]);
        assert_eq!(
            db.exemplars
                .out_of_order
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
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
        let raw = decompress_write_request(
            Some("application/x-protobuf"),
            Some("snappy"),
            &body,
            WriteLimits::default(),
        )
        .unwrap();
        assert_eq!(WriteRequest::decode(raw.as_slice()).unwrap(), req);
        let outcome = ingest(&db, &raw).unwrap();
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
            }
            .encode_to_vec(),
        )
        .unwrap();
        let req = WriteRequest {
            timeseries: vec![series("b", &[(1000, 1.0)]), series("a", &[(4000, 1.0)])],
            metadata: vec![],
        };
        let err = ingest(&db, &req.encode_to_vec()).unwrap_err();
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
            }
            .encode_to_vec(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("duplicated label job"), "{err}");
        let bad = series("1bad", &[(1, 1.0)]);
        let err = ingest(
            &db,
            &WriteRequest {
                timeseries: vec![bad],
                metadata: vec![],
            }
            .encode_to_vec(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("invalid metric name"), "{err}");

        let limits = WriteLimits::default();
        let err = decompress_write_request(None, None, b"not snappy at all", limits).unwrap_err();
        assert_eq!(err.status(), 400);
        let err = ingest(&db, &[0xff, 0xff, 0xff]).unwrap_err();
        assert!(err.to_string().contains("invalid protobuf"), "{err}");
        // A body announcing a huge decompressed size is refused before allocating.
        let mut huge = Vec::new();
        let mut n: u64 = 1 << 40;
        while n >= 0x80 {
            huge.push((n as u8) | 0x80);
            n >>= 7;
        }
        huge.push(n as u8);
        let err = decompress_write_request(None, None, &huge, limits).unwrap_err();
        assert_eq!(err.status(), 400);
        let err = decompress_write_request(
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
            let _ = decompress_write_request(None, None, &body, WriteLimits::default());
            let dir = tempfile::tempdir().unwrap();
            let db = Db::open(dir.path(), argus_tsdb::Options::default()).unwrap();
            let _ = ingest(&db, &body);
        }
    }
}
