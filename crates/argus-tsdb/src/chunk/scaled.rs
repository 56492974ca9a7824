//! Block chunk encodings. Every chunk in a block's chunk file starts with a tag byte:
//!
//! - `1` — Prometheus XOR (see [`super::XorChunk`]), for any values.
//! - `2` — scaled integers: used when every value is an exact decimal `n / 10^k` with
//!   `k ≤ 6` and `|n| < 2^53` (integer counters, gauges rounded to a few decimals — most real
//!   metrics). Layout after the tag:
//!
//! ```text
//! n: u16 BE | timestamps as in XOR (t0 varint, Δ uvarint, dod buckets) |
//! k: 3 bits | n0: zig-zag varint | min Δ: zig-zag varint | w: 7 bits | (Δi − min Δ): w bits each
//! ```
//! Decoding divides by the same power of ten; the encoder only picks this form after checking
//! that every value comes back bit-for-bit, so the round trip is exact (NaN, stale markers,
//! ±Inf and −0.0 always take the XOR form).

use crate::bstream::{BitReader, BitWriter};

use super::{XorChunk, XorIter};

pub const TAG_XOR: u8 = 1;
pub const TAG_SCALED: u8 = 2;
const POW10: [f64; 7] = [1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6];
const MAX_EXACT: f64 = 9_007_199_254_740_992.0; // 2^53

/// The smallest scale `k` at which every value is an exact integer, if any.
fn scale_for(samples: &[(i64, f64)]) -> Option<(u8, Vec<i64>)> {
    'k: for (k, &p) in POW10.iter().enumerate() {
        let mut ints = Vec::with_capacity(samples.len());
        for &(_, v) in samples {
            let n = (v * p).round();
            if !n.is_finite() || n.abs() >= MAX_EXACT {
                continue 'k;
            }
            // Check what the decoder will compute (this also rejects -0.0).
            let n = n as i64;
            if (n as f64 / p).to_bits() != v.to_bits() {
                continue 'k;
            }
            ints.push(n);
        }
        return Some((k as u8, ints));
    }
    None
}

fn bits_needed(v: u64) -> u32 {
    64 - v.leading_zeros()
}

/// Appends one tagged chunk holding `samples` (sorted by time, at most 65535) to `out`.
pub fn encode_block_chunk(samples: &[(i64, f64)], out: &mut Vec<u8>) {
    let Some((k, ints)) = scale_for(samples) else {
        let mut chunk = XorChunk::new();
        for &(t, v) in samples {
            chunk.append(t, v);
        }
        out.push(TAG_XOR);
        out.extend_from_slice(chunk.bytes());
        return;
    };
    let mut w = BitWriter::with_capacity(samples.len() * 2 + 16);
    w.write_bits(samples.len() as u64, 16);
    // Timestamps exactly as the XOR chunk writes them.
    let (mut prev_t, mut prev_delta) = (0i64, 0i64);
    for (i, &(t, _)) in samples.iter().enumerate() {
        match i {
            0 => w.write_varint(t),
            1 => {
                prev_delta = t.wrapping_sub(prev_t);
                w.write_uvarint(prev_delta as u64);
            }
            _ => {
                let delta = t.wrapping_sub(prev_t);
                super::write_dod(&mut w, delta.wrapping_sub(prev_delta));
                prev_delta = delta;
            }
        }
        prev_t = t;
    }
    w.write_bits(k as u64, 3);
    let first = ints.first().copied().unwrap_or(0);
    w.write_varint(first);
    let deltas: Vec<i64> = ints.windows(2).map(|p| p[1].wrapping_sub(p[0])).collect();
    let min = deltas.iter().copied().min().unwrap_or(0);
    let max = deltas.iter().copied().max().unwrap_or(0);
    let width = bits_needed(max.wrapping_sub(min) as u64);
    w.write_varint(min);
    w.write_bits(width as u64, 7);
    for d in deltas {
        w.write_bits(d.wrapping_sub(min) as u64, width);
    }
    out.push(TAG_SCALED);
    out.extend_from_slice(w.bytes());
}

/// Decodes a tagged chunk; malformed input yields fewer samples, never a panic.
pub fn decode_block_chunk(bytes: &[u8], mut f: impl FnMut(i64, f64)) {
    match bytes.split_first() {
        Some((&TAG_XOR, rest)) => XorIter::new(rest).for_each(|(t, v)| f(t, v)),
        Some((&TAG_SCALED, rest)) => {
            let _ = decode_scaled(rest, &mut f);
        }
        _ => {}
    }
}

/// The number of samples a block chunk announces (0 when it is malformed).
pub fn block_chunk_len(bytes: &[u8]) -> usize {
    match bytes.split_first() {
        Some((&TAG_XOR, rest)) => XorIter::new(rest).len_hint(),
        Some((&TAG_SCALED, rest)) => BitReader::new(rest).read_bits(16).unwrap_or(0) as usize,
        _ => 0,
    }
}

fn decode_scaled(bytes: &[u8], f: &mut impl FnMut(i64, f64)) -> Option<()> {
    let mut r = BitReader::new(bytes);
    let n = r.read_bits(16)? as usize;
    let mut ts = Vec::with_capacity(n);
    let (mut t, mut delta) = (0i64, 0i64);
    for i in 0..n {
        match i {
            0 => t = r.read_varint()?,
            1 => {
                delta = r.read_uvarint()? as i64;
                t = t.wrapping_add(delta);
            }
            _ => {
                delta = delta.wrapping_add(super::read_dod(&mut r)?);
                t = t.wrapping_add(delta);
            }
        }
        ts.push(t);
    }
    let k = r.read_bits(3)? as usize;
    let p = *POW10.get(k)?;
    let mut value = r.read_varint()?;
    let min = r.read_varint()?;
    let width = r.read_bits(7)? as u32;
    if width > 64 {
        return None;
    }
    // Decode everything first, so a truncated chunk yields nothing rather than a prefix
    // whose values would be wrong.
    let mut values = Vec::with_capacity(n);
    for i in 0..n {
        if i > 0 {
            let d = if width == 0 { 0 } else { r.read_bits(width)? };
            value = value.wrapping_add((d as i64).wrapping_add(min));
        }
        values.push(value);
    }
    for (t, v) in ts.into_iter().zip(values) {
        f(t, v as f64 / p);
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use argus_model::stale_nan;
    use proptest::prelude::*;

    fn round_trip(samples: &[(i64, f64)]) -> usize {
        let mut out = Vec::new();
        encode_block_chunk(samples, &mut out);
        let mut got = Vec::new();
        decode_block_chunk(&out, |t, v| got.push((t, v.to_bits())));
        assert_eq!(block_chunk_len(&out), samples.len());
        let want: Vec<(i64, u64)> = samples.iter().map(|(t, v)| (*t, v.to_bits())).collect();
        assert_eq!(got, want);
        out.len()
    }

    #[test]
    fn counters_and_decimal_gauges_take_the_scaled_form_and_are_smaller() {
        let counter: Vec<(i64, f64)> = (0..120)
            .map(|i| (i * 15_000, (1000 + i * 37 + i % 5) as f64))
            .collect();
        let gauge: Vec<(i64, f64)> = (0..120)
            .map(|i| {
                (
                    i * 15_000,
                    ((i as f64 * 0.3).sin() * 5000.0).round() / 100.0,
                )
            })
            .collect();
        for samples in [&counter, &gauge] {
            let mut out = Vec::new();
            encode_block_chunk(samples, &mut out);
            assert_eq!(out[0], TAG_SCALED);
            let mut xor = XorChunk::new();
            for &(t, v) in samples.iter() {
                xor.append(t, v);
            }
            let scaled = round_trip(samples);
            assert!(
                scaled * 2 < xor.bytes().len(),
                "{scaled} vs xor {}",
                xor.bytes().len()
            );
        }
    }

    #[test]
    fn special_values_fall_back_to_xor() {
        for special in [f64::NAN, stale_nan(), f64::INFINITY, -0.0, 1e300, 0.1234567] {
            let samples = [(1, 1.0), (2, special), (3, 2.0)];
            let mut out = Vec::new();
            encode_block_chunk(&samples, &mut out);
            assert_eq!(out[0], TAG_XOR, "{special}");
            round_trip(&samples);
        }
    }

    #[test]
    fn garbage_never_panics() {
        for len in 0..64 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 2) as u8).collect();
            decode_block_chunk(&bytes, |_, _| {});
            let mut tagged = vec![TAG_SCALED];
            tagged.extend_from_slice(&bytes);
            decode_block_chunk(&tagged, |_, _| {});
        }
    }

    fn values() -> impl Strategy<Value = f64> {
        prop_oneof![
            (-1_000_000i64..1_000_000).prop_map(|v| v as f64),
            (-1_000_000i64..1_000_000).prop_map(|v| v as f64 / 100.0),
            any::<f64>(),
            Just(stale_nan()),
        ]
    }

    proptest! {
        #[test]
        fn block_chunks_round_trip(
            start in any::<i64>(),
            steps in proptest::collection::vec(1i64..100_000, 0..200),
            vals in proptest::collection::vec(values(), 201),
            all_integers in any::<bool>(),
        ) {
            let mut t = start;
            let mut samples = vec![];
            for (i, step) in std::iter::once(0).chain(steps).enumerate() {
                t = t.wrapping_add(step);
                let v = if all_integers { (vals[i].abs() % 1e9).floor() } else { vals[i] };
                samples.push((t, v));
            }
            round_trip(&samples);
        }
    }
}
