//! Float chunks in Prometheus's XOR layout (Gorilla encoding):
//!
//! ```text
//! ┌──────────────┬──────────────┬───────────────┬────────────────┬─────────────────────────┐
//! │ n: u16 (BE)  │ t0: varint   │ v0: 64 bits   │ Δt1: uvarint   │ v1: xor │ (dod, xor)…   │
//! └──────────────┴──────────────┴───────────────┴────────────────┴─────────────────────────┘
//! ```
//! Timestamps are milliseconds; from the third sample on, the delta of deltas goes into buckets
//! of 0 / 14 / 17 / 20 / 64 bits. Values are XORed with the previous one and stored as
//! leading-zeros / meaningful-bits windows. Arithmetic on timestamps wraps, so any i64
//! sequence (even huge or negative ones) round-trips. Values round-trip bit-exactly, stale
//! markers included.

use crate::bstream::{BitReader, BitWriter};

pub mod hist;
pub mod scaled;

/// Writes a delta-of-delta in Prometheus's buckets (0 / 14 / 17 / 20 / 64 bits).
pub(crate) fn write_dod(stream: &mut BitWriter, dod: i64) {
    match dod {
        0 => stream.write_bit(false),
        d if (-8191..=8192).contains(&d) => {
            stream.write_bits(0b10, 2);
            stream.write_bits(d as u64, 14);
        }
        d if (-65535..=65536).contains(&d) => {
            stream.write_bits(0b110, 3);
            stream.write_bits(d as u64, 17);
        }
        d if (-524_287..=524_288).contains(&d) => {
            stream.write_bits(0b1110, 4);
            stream.write_bits(d as u64, 20);
        }
        d => {
            stream.write_bits(0b1111, 4);
            stream.write_bits(d as u64, 64);
        }
    }
}

/// Reads what [`write_dod`] wrote.
///
/// The bucket prefix and a 14/17/20-bit value are taken from one peeked window (this runs
/// for every sample of every query).
#[inline]
pub(crate) fn read_dod(reader: &mut BitReader<'_>) -> Option<i64> {
    let w = reader.peek();
    // Leading ones of the prefix, at most 4.
    let (bits, value) = match (!w).leading_zeros() {
        0 => (1, 0),
        1 => (16, sign_extend((w >> 48) & 0x3fff, 14)),
        2 => (20, sign_extend((w >> 44) & 0x1_ffff, 17)),
        3 => (24, sign_extend((w >> 40) & 0xf_ffff, 20)),
        _ => {
            reader.skip(4)?;
            return Some(reader.read_bits(64)? as i64);
        }
    };
    reader.skip(bits)?;
    Some(value)
}

/// A chunk is cut after this many samples (as Prometheus does).
pub const SAMPLES_PER_CHUNK: usize = 120;

/// Appends samples to an XOR chunk. Timestamps must be strictly increasing.
#[derive(Clone)]
pub struct XorChunk {
    stream: BitWriter,
    num_samples: u16,
    t: i64,
    t_delta: i64,
    v: u64,
    leading: u8,
    trailing: u8,
}

impl Default for XorChunk {
    fn default() -> Self {
        Self::new()
    }
}

impl XorChunk {
    pub fn new() -> Self {
        let mut stream = BitWriter::with_capacity(64);
        stream.write_bits(0, 16);
        Self {
            stream,
            num_samples: 0,
            t: 0,
            t_delta: 0,
            v: 0,
            leading: 0xff,
            trailing: 0,
        }
    }

    pub fn num_samples(&self) -> usize {
        self.num_samples as usize
    }

    /// The first sample's time, read back from the stream (it is the varint right after
    /// the 16-bit header): not kept as a field, which would cost 8 bytes in every series.
    pub fn min_time(&self) -> i64 {
        if self.num_samples == 0 {
            return 0;
        }
        let mut r = BitReader::new(&self.stream.bytes()[2..]);
        r.read_varint().unwrap_or(0)
    }

    pub fn max_time(&self) -> i64 {
        self.t
    }

    /// Bits of the newest value.
    pub fn last_value_bits(&self) -> u64 {
        self.v
    }

    pub fn append(&mut self, t: i64, value: f64) {
        let v = value.to_bits();
        match self.num_samples {
            0 => {
                self.stream.write_varint(t);
                self.stream.write_bits(v, 64);
            }
            1 => {
                let delta = t.wrapping_sub(self.t);
                self.stream.write_uvarint(delta as u64);
                self.write_xor(v);
                self.t_delta = delta;
            }
            _ => {
                let delta = t.wrapping_sub(self.t);
                write_dod(&mut self.stream, delta.wrapping_sub(self.t_delta));
                self.write_xor(v);
                self.t_delta = delta;
            }
        }
        self.t = t;
        self.v = v;
        self.num_samples += 1;
        self.stream.set_u16_at(0, self.num_samples);
    }

    fn write_xor(&mut self, v: u64) {
        let delta = v ^ self.v;
        if delta == 0 {
            self.stream.write_bit(false);
            return;
        }
        self.stream.write_bit(true);
        let leading = (delta.leading_zeros() as u8).min(31);
        let trailing = delta.trailing_zeros() as u8;
        if self.leading != 0xff && leading >= self.leading && trailing >= self.trailing {
            self.stream.write_bit(false);
            let sig = 64 - self.leading - self.trailing;
            self.stream.write_bits(delta >> self.trailing, sig as u32);
            return;
        }
        self.leading = leading;
        self.trailing = trailing;
        self.stream.write_bit(true);
        self.stream.write_bits(leading as u64, 5);
        let sig = 64 - leading - trailing;
        // 64 meaningful bits are written as 0 (they do not fit in 6 bits).
        self.stream.write_bits((sig as u64) & 0x3f, 6);
        self.stream.write_bits(delta >> trailing, sig as u32);
    }

    /// The encoded bytes.
    pub fn bytes(&self) -> &[u8] {
        self.stream.bytes()
    }

    pub fn iter(&self) -> XorIter<'_> {
        XorIter::new(self.bytes())
    }

    /// Heap bytes held (for memory accounting).
    pub fn heap_bytes(&self) -> usize {
        self.stream.capacity()
    }

    /// Drops spare capacity once the chunk is full.
    pub fn shrink(&mut self) {
        self.stream.shrink();
    }
}

/// Decodes an XOR chunk. Corrupt input ends iteration early (see [`XorIter::error`]).
pub struct XorIter<'a> {
    reader: BitReader<'a>,
    total: u16,
    read: u16,
    t: i64,
    t_delta: i64,
    v: u64,
    leading: u8,
    trailing: u8,
    failed: bool,
}

impl<'a> XorIter<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        let total = if bytes.len() >= 2 {
            u16::from_be_bytes([bytes[0], bytes[1]])
        } else {
            0
        };
        let failed = bytes.len() < 2;
        Self {
            reader: BitReader::new(bytes.get(2..).unwrap_or(&[])),
            total,
            read: 0,
            t: 0,
            t_delta: 0,
            v: 0,
            leading: 0,
            trailing: 0,
            failed,
        }
    }

    /// Number of samples the header announces.
    pub fn len_hint(&self) -> usize {
        self.total as usize
    }

    /// True when decoding stopped on malformed input.
    pub fn error(&self) -> bool {
        self.failed
    }

    fn next_inner(&mut self) -> Option<(i64, f64)> {
        match self.read {
            0 => {
                self.t = self.reader.read_varint()?;
                self.v = self.reader.read_bits(64)?;
            }
            1 => {
                self.t_delta = self.reader.read_uvarint()? as i64;
                self.t = self.t.wrapping_add(self.t_delta);
                self.read_xor()?;
            }
            _ => {
                let dod = read_dod(&mut self.reader)?;
                self.t_delta = self.t_delta.wrapping_add(dod);
                self.t = self.t.wrapping_add(self.t_delta);
                self.read_xor()?;
            }
        }
        self.read += 1;
        Some((self.t, f64::from_bits(self.v)))
    }

    #[inline]
    fn read_xor(&mut self) -> Option<()> {
        // Control bits (and a new window's 5 + 6 bits) from one peek.
        let w = self.reader.peek();
        if w >> 63 == 0 {
            self.reader.skip(1)?;
            return Some(());
        }
        if w >> 62 == 0b11 {
            self.reader.skip(13)?;
            self.leading = ((w >> 57) & 0x1f) as u8;
            let mut sig = ((w >> 51) & 0x3f) as u8;
            if sig == 0 {
                sig = 64;
            }
            if self.leading as u32 + sig as u32 > 64 {
                return None;
            }
            self.trailing = 64 - self.leading - sig;
        } else {
            self.reader.skip(2)?;
        }
        let sig = 64 - self.leading - self.trailing;
        let bits = self.reader.read_bits(sig as u32)?;
        self.v ^= bits << self.trailing;
        Some(())
    }
}

/// Interprets the low `bits` bits of `v` as a two's-complement number, the way Prometheus
/// decodes its dod buckets (values above 2^(bits-1) are negative).
fn sign_extend(v: u64, bits: u32) -> i64 {
    if v > (1 << (bits - 1)) {
        v as i64 - (1i64 << bits)
    } else {
        v as i64
    }
}

impl Iterator for XorIter<'_> {
    type Item = (i64, f64);

    fn next(&mut self) -> Option<(i64, f64)> {
        if self.failed || self.read >= self.total {
            return None;
        }
        let sample = self.next_inner();
        if sample.is_none() {
            self.failed = true;
        }
        sample
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argus_model::stale_nan;
    use proptest::prelude::*;

    fn round_trip(samples: &[(i64, f64)]) {
        let mut chunk = XorChunk::new();
        for &(t, v) in samples {
            chunk.append(t, v);
        }
        let mut iter = chunk.iter();
        let decoded: Vec<(i64, f64)> = iter.by_ref().collect();
        assert!(!iter.error());
        assert_eq!(decoded.len(), samples.len());
        for (a, b) in decoded.iter().zip(samples) {
            assert_eq!(a.0, b.0);
            assert_eq!(a.1.to_bits(), b.1.to_bits());
        }
    }

    #[test]
    fn special_values() {
        round_trip(&[
            (1000, 1.0),
            (2000, f64::NAN),
            (3000, stale_nan()),
            (4000, f64::INFINITY),
            (5000, f64::NEG_INFINITY),
            (6000, -0.0),
            (7000, f64::MIN_POSITIVE),
            (8000, f64::MAX),
        ]);
    }

    #[test]
    fn matches_prometheus_layout_for_first_samples() {
        // Prometheus: header 0x0001, then varint(1000) = 0xd0 0x0f, then the float bits.
        let mut chunk = XorChunk::new();
        chunk.append(1000, 1.0);
        let mut expected = vec![0x00, 0x01, 0xd0, 0x0f];
        expected.extend_from_slice(&1.0f64.to_bits().to_be_bytes());
        assert_eq!(chunk.bytes(), expected.as_slice());
    }

    #[test]
    fn truncated_input_stops_cleanly() {
        let mut chunk = XorChunk::new();
        for i in 0..50 {
            chunk.append(i * 15_000 + (i % 3), i as f64 * 1.7);
        }
        let bytes = chunk.bytes();
        for cut in 0..bytes.len() {
            let count = XorIter::new(&bytes[..cut]).count();
            assert!(count <= 50);
        }
    }

    fn timestamps() -> impl Strategy<Value = Vec<i64>> {
        (
            any::<i64>(),
            proptest::collection::vec(
                prop_oneof![
                    Just(15_000i64),
                    0i64..100,
                    1i64..1_000_000_000,
                    1i64..i64::MAX / 256,
                ],
                0..200,
            ),
        )
            .prop_map(|(start, deltas)| {
                let mut t = start;
                let mut out = vec![t];
                for d in deltas {
                    t = t.wrapping_add(d.max(1));
                    out.push(t);
                }
                out
            })
    }

    fn values() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>(),
            Just(f64::NAN),
            Just(stale_nan()),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            (0i64..1000).prop_map(|v| v as f64),
        ]
    }

    /// A plain bit-at-a-time decoder of the same layout, to check the windowed one against.
    fn reference_decode(bytes: &[u8]) -> (Vec<(i64, u64)>, bool) {
        fn bits(r: &mut BitReader<'_>, n: u32) -> Option<u64> {
            (0..n).try_fold(0u64, |acc, _| Some((acc << 1) | r.read_bit()? as u64))
        }
        let mut out = Vec::new();
        if bytes.len() < 2 {
            return (out, true);
        }
        let total = u16::from_be_bytes([bytes[0], bytes[1]]);
        let mut r = BitReader::new(&bytes[2..]);
        let (mut t, mut delta, mut v, mut leading, mut trailing) = (0i64, 0i64, 0u64, 0u32, 0u32);
        let mut step = |i: u16, r: &mut BitReader<'_>| -> Option<(i64, u64)> {
            if i == 0 {
                t = r.read_varint()?;
                v = bits(r, 64)?;
                return Some((t, v));
            }
            if i == 1 {
                delta = r.read_uvarint()? as i64;
            } else {
                let mut prefix = 0;
                while prefix < 4 && r.read_bit()? {
                    prefix += 1;
                }
                let dod = match prefix {
                    0 => 0,
                    1 => sign_extend(bits(r, 14)?, 14),
                    2 => sign_extend(bits(r, 17)?, 17),
                    3 => sign_extend(bits(r, 20)?, 20),
                    _ => bits(r, 64)? as i64,
                };
                delta = delta.wrapping_add(dod);
            }
            t = t.wrapping_add(delta);
            if r.read_bit()? {
                if r.read_bit()? {
                    leading = bits(r, 5)? as u32;
                    let sig = match bits(r, 6)? as u32 {
                        0 => 64,
                        s => s,
                    };
                    if leading + sig > 64 {
                        return None;
                    }
                    trailing = 64 - leading - sig;
                }
                let sig = 64 - leading - trailing;
                v ^= bits(r, sig)? << trailing;
            }
            Some((t, v))
        };
        for i in 0..total {
            match step(i, &mut r) {
                Some(sample) => out.push(sample),
                None => return (out, true),
            }
        }
        (out, false)
    }

    proptest! {
        #[test]
        fn xor_round_trip(ts in timestamps(), vs in proptest::collection::vec(values(), 201)) {
            let samples: Vec<(i64, f64)> = ts.into_iter().zip(vs).collect();
            round_trip(&samples);
        }

        /// On any bytes — valid chunks, cut short or altered, or noise — the decoder returns
        /// what a bit-at-a-time decoder returns and fails where it fails.
        #[test]
        fn decoder_matches_bitwise_reference(ts in timestamps(),
                                             vs in proptest::collection::vec(values(), 201),
                                             cut in 0usize..2000,
                                             flips in proptest::collection::vec((0usize..2000, 0u8..8), 0..3),
                                             noise in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut chunk = XorChunk::new();
            for (&t, &v) in ts.iter().zip(&vs) {
                chunk.append(t, v);
            }
            let mut bytes = chunk.bytes().to_vec();
            bytes.truncate(cut.max(2));
            for (at, bit) in flips {
                if let Some(b) = bytes.get_mut(at) {
                    *b ^= 1 << bit;
                }
            }
            for input in [bytes.as_slice(), noise.as_slice()] {
                let mut iter = XorIter::new(input);
                let got: Vec<(i64, u64)> = iter.by_ref().map(|(t, v)| (t, v.to_bits())).collect();
                let (want, failed) = reference_decode(input);
                prop_assert_eq!(got, want);
                prop_assert_eq!(iter.error(), failed);
            }
        }
    }
}
