//! Remote-write `Histogram` messages (native histograms) into [`FloatHistogram`]s.
//!
//! ```text
//! Histogram { count_int=1 | count_float=2; sum=3; schema=4 (sint32); zero_threshold=5;
//!             zero_count_int=6 | zero_count_float=7; negative_spans=8; negative_deltas=9
//!             (sint64, packed); negative_counts=10 (double, packed); positive_spans=11;
//!             positive_deltas=12; positive_counts=13; reset_hint=14; timestamp=15;
//!             custom_values=16 (double, packed) }
//! BucketSpan { offset=1 (sint32); length=2 }
//! ```
//! Integer histograms carry bucket counts as deltas from the previous bucket, float ones as
//! absolute counts. A histogram Prometheus would refuse (bad schema, spans that do not
//! match the buckets, negative counts, bad custom bounds) is refused with the reason.

use argus_model::histogram;
use argus_model::{CounterResetHint, FloatHistogram};

type R<T> = Result<T, String>;

use crate::wire::Reader;

/// One side's spans, as (offset, length).
fn span(bytes: &[u8]) -> R<(i64, u64)> {
    let mut r = Reader::new(bytes);
    let (mut offset, mut length) = (0i64, 0u64);
    while !r.done() {
        match r.key()? {
            (1, 0) => offset = r.zigzag()?,
            (2, 0) => length = r.varint()?,
            (_, w) => r.skip(w)?,
        }
    }
    Ok((offset, length))
}

/// Decodes and validates one `Histogram` message: its timestamp and value.
pub fn decode(bytes: &[u8]) -> R<(i64, FloatHistogram)> {
    let mut r = Reader::new(bytes);
    let mut h = FloatHistogram::default();
    let (mut count_int, mut count_float) = (None, None);
    let (mut zero_int, mut zero_float) = (None, None);
    let mut spans: [Vec<(i64, u64)>; 2] = Default::default();
    let mut deltas: [Vec<i64>; 2] = Default::default();
    let mut counts: [Vec<f64>; 2] = Default::default();
    let mut custom = Vec::new();
    let mut timestamp = 0i64;
    while !r.done() {
        let (field, wt) = r.key()?;
        let side = usize::from(field >= 11);
        match (field, wt) {
            (1, 0) => count_int = Some(r.varint()?),
            (2, 1) => count_float = Some(r.double()?),
            (3, 1) => h.sum = r.double()?,
            (4, 0) => h.schema = i32::try_from(r.zigzag()?).map_err(|_| "schema out of range")?,
            (5, 1) => h.zero_threshold = r.double()?,
            (6, 0) => zero_int = Some(r.varint()?),
            (7, 1) => zero_float = Some(r.double()?),
            (8 | 11, 2) => spans[side].push(span(r.bytes()?)?),
            (9 | 12, w) => r.repeated(w, 0, Reader::zigzag, &mut deltas[side])?,
            (10 | 13, w) => r.repeated(w, 1, Reader::double, &mut counts[side])?,
            (14, 0) => {
                h.hint = match r.varint()? {
                    1 => CounterResetHint::Reset,
                    2 => CounterResetHint::NotReset,
                    3 => CounterResetHint::Gauge,
                    _ => CounterResetHint::Unknown,
                }
            }
            (15, 0) => timestamp = r.varint()? as i64,
            (16, w) => r.repeated(w, 1, Reader::double, &mut custom)?,
            (1..=16, w) => {
                return Err(format!("invalid wire type {w} for histogram field {field}"));
            }
            (_, w) => r.skip(w)?,
        }
    }
    let float = count_float.is_some() || counts.iter().any(|c| !c.is_empty());
    if float && deltas.iter().any(|d| !d.is_empty()) {
        return Err("histogram mixes integer and float buckets".into());
    }
    h.count = count_float.unwrap_or(count_int.unwrap_or(0) as f64);
    h.zero_count = zero_float.unwrap_or(zero_int.unwrap_or(0) as f64);
    let [negative, positive] = [0, 1].map(|side| -> R<Vec<(i32, f64)>> {
        let values: Vec<f64> = if float {
            counts[side].clone()
        } else {
            histogram::deltas_to_counts(&deltas[side])
        };
        histogram::lay_out(&spans[side], values)
    });
    h.negative = negative?;
    h.positive = positive?;
    h.custom_values = custom.into();
    h.validate()?;
    if !float {
        h.check_integer_count()?;
    }
    Ok((timestamp, h))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A protobuf encoder for the test messages.
    #[derive(Default)]
    pub struct Enc(pub Vec<u8>);

    impl Enc {
        fn varint(&mut self, mut v: u64) {
            while v >= 0x80 {
                self.0.push((v as u8) | 0x80);
                v >>= 7;
            }
            self.0.push(v as u8);
        }
        fn key(&mut self, field: u64, wt: u64) {
            self.varint(field << 3 | wt);
        }
        pub fn uint(&mut self, field: u64, v: u64) -> &mut Self {
            self.key(field, 0);
            self.varint(v);
            self
        }
        pub fn sint(&mut self, field: u64, v: i64) -> &mut Self {
            self.uint(field, ((v << 1) ^ (v >> 63)) as u64)
        }
        pub fn double(&mut self, field: u64, v: f64) -> &mut Self {
            self.key(field, 1);
            self.0.extend_from_slice(&v.to_le_bytes());
            self
        }
        pub fn bytes(&mut self, field: u64, b: &[u8]) -> &mut Self {
            self.key(field, 2);
            self.varint(b.len() as u64);
            self.0.extend_from_slice(b);
            self
        }
        pub fn span(&mut self, field: u64, offset: i64, length: u64) -> &mut Self {
            let mut s = Enc::default();
            s.sint(1, offset).uint(2, length);
            self.bytes(field, &s.0)
        }
        pub fn packed_sint(&mut self, field: u64, vs: &[i64]) -> &mut Self {
            let mut p = Enc::default();
            for &v in vs {
                p.varint(((v << 1) ^ (v >> 63)) as u64);
            }
            self.bytes(field, &p.0)
        }
        pub fn packed_double(&mut self, field: u64, vs: &[f64]) -> &mut Self {
            let mut p = Vec::new();
            for v in vs {
                p.extend_from_slice(&v.to_le_bytes());
            }
            self.bytes(field, &p)
        }
    }

    /// An integer histogram as client libraries send it: count 5, sum 9, schema 0, buckets
    /// at indexes -1, 0 and 3 with counts 1, 3, 1 (deltas 1, 2, -2).
    pub fn integer_histogram(timestamp: i64) -> Vec<u8> {
        let mut e = Enc::default();
        e.uint(1, 5)
            .double(3, 9.0)
            .sint(4, 0)
            .double(5, 0.001)
            .uint(6, 0)
            .span(11, -1, 2)
            .span(11, 2, 1)
            .packed_sint(12, &[1, 2, -2])
            .uint(14, 2)
            .uint(15, timestamp as u64);
        e.0
    }

    #[test]
    fn integer_and_float_histograms() {
        let (t, h) = decode(&integer_histogram(1234)).unwrap();
        assert_eq!(t, 1234);
        assert_eq!(h.positive, vec![(-1, 1.0), (0, 3.0), (3, 1.0)]);
        assert_eq!((h.count, h.sum, h.zero_threshold), (5.0, 9.0, 0.001));
        assert_eq!(h.hint, CounterResetHint::NotReset);

        let mut e = Enc::default();
        e.double(2, 2.5)
            .sint(4, histogram::CUSTOM_BUCKETS_SCHEMA as i64)
            .span(11, 0, 2)
            .packed_double(13, &[0.5, 2.0])
            .packed_double(16, &[1.0, 5.0])
            .uint(14, 3);
        let (_, h) = decode(&e.0).unwrap();
        assert_eq!(h.positive, vec![(0, 0.5), (1, 2.0)]);
        assert_eq!(&*h.custom_values, &[1.0, 5.0]);
        assert_eq!(h.hint, CounterResetHint::Gauge);
    }

    #[test]
    fn invalid_histograms_are_refused_with_a_reason() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                {
                    let mut e = Enc::default();
                    e.sint(4, 9);
                    e.0
                },
                "invalid schema",
            ),
            (
                {
                    let mut e = Enc::default();
                    e.span(11, 0, 3).packed_sint(12, &[1]);
                    e.0
                },
                "spans need 3 buckets",
            ),
            (
                {
                    let mut e = Enc::default();
                    e.span(11, 0, 2).packed_sint(12, &[1, -2]);
                    e.0
                },
                "negative",
            ),
            (
                {
                    let mut e = Enc::default();
                    e.sint(4, -53).packed_double(16, &[5.0, 1.0]);
                    e.0
                },
                "increasing",
            ),
            (
                {
                    let mut e = Enc::default();
                    e.span(11, 0, 1)
                        .packed_sint(12, &[1])
                        .packed_double(13, &[1.0]);
                    e.0
                },
                "mixes",
            ),
            (vec![0x08], "underflow"),
        ];
        for (bytes, want) in cases {
            let err = decode(&bytes).unwrap_err();
            assert!(err.contains(want), "{err} does not say {want}");
        }
    }

    proptest::proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
        }
    }
}
