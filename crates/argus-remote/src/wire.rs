//! Zero-copy decoding of a remote-write 1.0 `WriteRequest` (the ingestion hot path).
//!
//! `prompb::WriteRequest` (prost) allocates two `String`s per label of every series; this
//! reader borrows label names and values from the decompressed buffer and keeps all series'
//! labels and samples in two flat vectors. It accepts exactly what the prost types accept
//! (differential-tested below): unknown fields are skipped, strings must be UTF-8.

use std::ops::Range;

#[derive(Debug, Default)]
pub struct WireRequest<'a> {
    pub labels: Vec<(&'a str, &'a str)>,
    pub samples: Vec<(i64, f64)>,
    /// Encoded `Histogram` messages (decoded at ingestion, see [`crate::histogram`]).
    pub histograms: Vec<&'a [u8]>,
    /// Encoded `Exemplar` messages (decoded at ingestion, see [`decode_exemplar`]).
    pub exemplars: Vec<&'a [u8]>,
    pub series: Vec<WireSeries>,
}

#[derive(Debug, Clone)]
pub struct WireSeries {
    pub labels: Range<usize>,
    pub samples: Range<usize>,
    pub histograms: Range<usize>,
    pub exemplars: Range<usize>,
}

impl<'a> WireRequest<'a> {
    pub fn series_labels(&self, s: &WireSeries) -> &[(&'a str, &'a str)] {
        &self.labels[s.labels.clone()]
    }

    pub fn series_samples(&self, s: &WireSeries) -> &[(i64, f64)] {
        &self.samples[s.samples.clone()]
    }

    pub fn series_histograms(&self, s: &WireSeries) -> &[&'a [u8]] {
        &self.histograms[s.histograms.clone()]
    }

    pub fn series_exemplars(&self, s: &WireSeries) -> &[&'a [u8]] {
        &self.exemplars[s.exemplars.clone()]
    }
}

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

pub(crate) type R<T> = Result<T, String>;

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub(crate) fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub(crate) fn varint(&mut self) -> R<u64> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or("buffer underflow")?;
            self.pos += 1;
            if shift == 63 && b > 1 {
                return Err("invalid varint".into());
            }
            v |= ((b & 0x7f) as u64) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err("invalid varint".into())
    }

    pub(crate) fn fixed64(&mut self) -> R<u64> {
        let bytes = self
            .buf
            .get(self.pos..self.pos + 8)
            .ok_or("buffer underflow")?;
        self.pos += 8;
        let mut a = [0u8; 8];
        a.copy_from_slice(bytes);
        Ok(u64::from_le_bytes(a))
    }

    pub(crate) fn bytes(&mut self) -> R<&'a [u8]> {
        let len = self.varint()? as usize;
        let end = self.pos.checked_add(len).ok_or("buffer underflow")?;
        let b = self.buf.get(self.pos..end).ok_or("buffer underflow")?;
        self.pos = end;
        Ok(b)
    }

    /// (field number, wire type)
    pub(crate) fn key(&mut self) -> R<(u64, u8)> {
        let k = self.varint()?;
        let field = k >> 3;
        if field == 0 {
            return Err("invalid field number 0".into());
        }
        Ok((field, (k & 7) as u8))
    }

    pub(crate) fn zigzag(&mut self) -> R<i64> {
        let u = self.varint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    pub(crate) fn double(&mut self) -> R<f64> {
        self.fixed64().map(f64::from_bits)
    }

    /// A repeated scalar: packed (length-delimited) or one element of wire type `single`.
    pub(crate) fn repeated<T>(
        &mut self,
        wire_type: u8,
        single: u8,
        mut one: impl FnMut(&mut Reader<'a>) -> R<T>,
        out: &mut Vec<T>,
    ) -> R<()> {
        if wire_type == 2 {
            let mut packed = Reader::new(self.bytes()?);
            while !packed.done() {
                out.push(one(&mut packed)?);
            }
            Ok(())
        } else if wire_type == single {
            out.push(one(self)?);
            Ok(())
        } else {
            Err(format!(
                "invalid wire type {wire_type} for a repeated field"
            ))
        }
    }

    pub(crate) fn skip(&mut self, wire_type: u8) -> R<()> {
        match wire_type {
            0 => self.varint().map(|_| ()),
            1 => self.fixed64().map(|_| ()),
            2 => self.bytes().map(|_| ()),
            5 => {
                self.buf
                    .get(self.pos..self.pos + 4)
                    .ok_or("buffer underflow")?;
                self.pos += 4;
                Ok(())
            }
            w => Err(format!("unsupported wire type {w}")),
        }
    }
}

fn expect_type(field: &str, got: u8, want: u8) -> R<()> {
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "invalid wire type for {field}: {got} (expected {want})"
        ))
    }
}

fn utf8(b: &[u8]) -> R<&str> {
    std::str::from_utf8(b).map_err(|_| "invalid string value: data is not UTF-8 encoded".into())
}

/// Decodes a `WriteRequest` protobuf message.
pub fn decode(buf: &[u8]) -> R<WireRequest<'_>> {
    let mut out = WireRequest::default();
    let mut r = Reader::new(buf);
    while !r.done() {
        let (field, wt) = r.key()?;
        if field == 1 {
            expect_type("WriteRequest.timeseries", wt, 2)?;
            let body = r.bytes()?;
            decode_series(body, &mut out)?;
        } else {
            r.skip(wt)?;
        }
    }
    Ok(out)
}

/// One `Label { name = 1; value = 2 }` message.
fn decode_label(bytes: &[u8]) -> R<(&str, &str)> {
    let mut lr = Reader::new(bytes);
    let (mut name, mut value) = ("", "");
    while !lr.done() {
        let (f, w) = lr.key()?;
        match f {
            1 => {
                expect_type("Label.name", w, 2)?;
                name = utf8(lr.bytes()?)?;
            }
            2 => {
                expect_type("Label.value", w, 2)?;
                value = utf8(lr.bytes()?)?;
            }
            _ => lr.skip(w)?,
        }
    }
    Ok((name, value))
}

/// One `Exemplar { repeated Label labels = 1; double value = 2; int64 timestamp = 3 }`:
/// (labels, value, timestamp).
pub fn decode_exemplar(bytes: &[u8]) -> R<(Vec<(&str, &str)>, f64, i64)> {
    let mut r = Reader::new(bytes);
    let (mut labels, mut value, mut timestamp) = (Vec::new(), 0f64, 0i64);
    while !r.done() {
        let (f, w) = r.key()?;
        match f {
            1 => {
                expect_type("Exemplar.labels", w, 2)?;
                labels.push(decode_label(r.bytes()?)?);
            }
            2 => {
                expect_type("Exemplar.value", w, 1)?;
                value = f64::from_bits(r.fixed64()?);
            }
            3 => {
                expect_type("Exemplar.timestamp", w, 0)?;
                timestamp = r.varint()? as i64;
            }
            _ => r.skip(w)?,
        }
    }
    Ok((labels, value, timestamp))
}

fn decode_series<'a>(buf: &'a [u8], out: &mut WireRequest<'a>) -> R<()> {
    let labels_start = out.labels.len();
    let samples_start = out.samples.len();
    let histograms_start = out.histograms.len();
    let exemplars_start = out.exemplars.len();
    let mut r = Reader::new(buf);
    while !r.done() {
        let (field, wt) = r.key()?;
        match field {
            1 => {
                expect_type("TimeSeries.labels", wt, 2)?;
                out.labels.push(decode_label(r.bytes()?)?);
            }
            2 => {
                expect_type("TimeSeries.samples", wt, 2)?;
                let mut sr = Reader::new(r.bytes()?);
                let (mut value, mut timestamp) = (0f64, 0i64);
                while !sr.done() {
                    let (f, w) = sr.key()?;
                    match f {
                        1 => {
                            expect_type("Sample.value", w, 1)?;
                            value = f64::from_bits(sr.fixed64()?);
                        }
                        2 => {
                            expect_type("Sample.timestamp", w, 0)?;
                            timestamp = sr.varint()? as i64;
                        }
                        _ => sr.skip(w)?,
                    }
                }
                out.samples.push((timestamp, value));
            }
            4 => {
                expect_type("TimeSeries.histograms", wt, 2)?;
                out.histograms.push(r.bytes()?);
            }
            3 => {
                expect_type("TimeSeries.exemplars", wt, 2)?;
                out.exemplars.push(r.bytes()?);
            }
            _ => r.skip(wt)?,
        }
    }
    out.series.push(WireSeries {
        labels: labels_start..out.labels.len(),
        samples: samples_start..out.samples.len(),
        histograms: histograms_start..out.histograms.len(),
        exemplars: exemplars_start..out.exemplars.len(),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompb::{Exemplar, Label, Sample, TimeSeries, WriteRequest};
    use proptest::prelude::*;
    use prost::Message;

    fn req_strategy() -> impl Strategy<Value = WriteRequest> {
        let label = ("[a-z_]{0,6}", "\\PC{0,6}").prop_map(|(name, value)| Label { name, value });
        let sample =
            (any::<i64>(), any::<f64>()).prop_map(|(timestamp, value)| Sample { value, timestamp });
        let exemplar = (
            proptest::collection::vec(label.clone(), 0..3),
            any::<f64>(),
            any::<i64>(),
        )
            .prop_map(|(labels, value, timestamp)| Exemplar {
                labels,
                value,
                timestamp,
            });
        let series = (
            proptest::collection::vec(label, 0..5),
            proptest::collection::vec(sample, 0..5),
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..4), 0..2),
            proptest::collection::vec(exemplar, 0..3),
        )
            .prop_map(|(labels, samples, histograms, exemplars)| TimeSeries {
                labels,
                samples,
                exemplars,
                histograms,
            });
        proptest::collection::vec(series, 0..5).prop_map(|timeseries| WriteRequest {
            timeseries,
            metadata: vec![],
        })
    }

    proptest! {
        #[test]
        fn agrees_with_prost(req in req_strategy()) {
            let bytes = req.encode_to_vec();
            // Compare with what prost decodes (proto3 drops -0.0 on encoding, for instance).
            let req = WriteRequest::decode(bytes.as_slice()).unwrap();
            let wire = decode(&bytes).unwrap();
            prop_assert_eq!(wire.series.len(), req.timeseries.len());
            for (ws, ts) in wire.series.iter().zip(&req.timeseries) {
                let labels: Vec<(String, String)> = wire.series_labels(ws).iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
                let want: Vec<(String, String)> = ts.labels.iter().map(|l| (l.name.clone(), l.value.clone())).collect();
                prop_assert_eq!(labels, want);
                let samples: Vec<(i64, u64)> = wire.series_samples(ws).iter().map(|(t, v)| (*t, v.to_bits())).collect();
                let want: Vec<(i64, u64)> = ts.samples.iter().map(|s| (s.timestamp, s.value.to_bits())).collect();
                prop_assert_eq!(samples, want);
                let hists: Vec<Vec<u8>> = wire.series_histograms(ws).iter().map(|h| h.to_vec()).collect();
                prop_assert_eq!(&hists, &ts.histograms);
                let exemplars: Vec<(Vec<(String, String)>, u64, i64)> = wire
                    .series_exemplars(ws)
                    .iter()
                    .map(|b| {
                        let (labels, v, t) = decode_exemplar(b).unwrap();
                        let labels = labels.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
                        (labels, v.to_bits(), t)
                    })
                    .collect();
                let want: Vec<(Vec<(String, String)>, u64, i64)> = ts
                    .exemplars
                    .iter()
                    .map(|e| {
                        let labels = e.labels.iter().map(|l| (l.name.clone(), l.value.clone())).collect();
                        (labels, e.value.to_bits(), e.timestamp)
                    })
                    .collect();
                prop_assert_eq!(exemplars, want);
            }
        }

        #[test]
        fn accepts_what_prost_accepts(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let ours = decode(&bytes).is_ok();
            let theirs = WriteRequest::decode(bytes.as_slice()).is_ok();
            // We skip metadata and exemplars without validating them, so prost may refuse a
            // body we take; but we never refuse what prost accepts.
            if theirs {
                prop_assert!(ours);
            }
        }
    }
}
