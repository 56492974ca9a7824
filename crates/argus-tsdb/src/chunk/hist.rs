//! Block chunks of native-histogram samples (tag `3`): a sample count, then per sample the
//! time (delta from the previous one) and the histogram in the WAL's encoding
//! ([`crate::encoding::put_histogram`]). Not Prometheus's compact histogram chunk format:
//! simpler, and only argus reads its blocks.

use argus_model::FloatHistogram;

use crate::encoding::{Decoder, put_histogram, put_uvarint, put_varint};

pub const TAG_HISTOGRAM: u8 = 3;

/// Appends one tagged chunk holding `samples` (sorted by time) to `out`.
pub fn encode(samples: &[(i64, &FloatHistogram)], out: &mut Vec<u8>) {
    out.push(TAG_HISTOGRAM);
    put_uvarint(out, samples.len() as u64);
    let mut prev = 0i64;
    for &(t, h) in samples {
        put_varint(out, t.wrapping_sub(prev));
        prev = t;
        put_histogram(out, h);
    }
}

/// Calls `f` for every sample of a chunk written by [`encode`]; stops at the first malformed
/// byte (a corrupt chunk yields what came before it, never a panic).
pub fn decode(bytes: &[u8], mut f: impl FnMut(i64, FloatHistogram)) {
    let Some((&TAG_HISTOGRAM, rest)) = bytes.split_first() else {
        return;
    };
    let mut d = Decoder::new(rest);
    let Ok(n) = d.uvarint() else { return };
    let mut t = 0i64;
    for _ in 0..n {
        let Ok(delta) = d.varint() else { return };
        t = t.wrapping_add(delta);
        let Ok(h) = d.histogram() else { return };
        f(t, h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let hs: Vec<FloatHistogram> = (0..3)
            .map(|i| FloatHistogram {
                schema: i,
                count: i as f64,
                positive: vec![(i, 1.5), (i + 4, 2.0)],
                custom_values: vec![1.0, 2.0].into(),
                ..Default::default()
            })
            .collect();
        let samples: Vec<(i64, &FloatHistogram)> = hs
            .iter()
            .enumerate()
            .map(|(i, h)| (-5 + 7 * i as i64, h))
            .collect();
        let mut bytes = Vec::new();
        encode(&samples, &mut bytes);
        let mut back = Vec::new();
        decode(&bytes, |t, h| back.push((t, h)));
        assert_eq!(back.len(), 3);
        for ((t, h), (bt, bh)) in samples.iter().zip(&back) {
            assert_eq!(t, bt);
            assert!(h.equals(bh));
        }
        for cut in 0..bytes.len() {
            decode(&bytes[..cut], |_, _| {});
        }
    }
}
