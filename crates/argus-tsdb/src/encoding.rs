//! Byte-level helpers shared by the WAL, index and tombstone codecs: Go-style varints and a
//! bounds-checked decoder that reports malformed input instead of panicking.

use argus_model::Labels;

pub fn put_uvarint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

pub fn put_varint(buf: &mut Vec<u8>, v: i64) {
    put_uvarint(buf, ((v << 1) ^ (v >> 63)) as u64);
}

pub fn put_str(buf: &mut Vec<u8>, s: &str) {
    put_uvarint(buf, s.len() as u64);
    buf.extend_from_slice(s.as_bytes());
}

pub fn put_labels(buf: &mut Vec<u8>, labels: &Labels) {
    put_uvarint(buf, labels.len() as u64);
    for label in labels.iter() {
        put_str(buf, label.name);
        put_str(buf, label.value);
    }
}

/// A native histogram: hint, schema, zero threshold and count, count, sum, the bucket lists
/// (index deltas and values) and the custom bounds. Floats are stored as their bits.
pub fn put_histogram(buf: &mut Vec<u8>, h: &argus_model::FloatHistogram) {
    use argus_model::CounterResetHint::*;
    buf.push(match h.hint {
        Unknown => 0,
        Reset => 1,
        NotReset => 2,
        Gauge => 3,
    });
    put_varint(buf, h.schema as i64);
    for f in [h.zero_threshold, h.zero_count, h.count, h.sum] {
        buf.extend_from_slice(&f.to_bits().to_le_bytes());
    }
    for side in [&h.positive, &h.negative] {
        put_uvarint(buf, side.len() as u64);
        let mut prev = 0i64;
        for &(idx, c) in side.iter() {
            put_varint(buf, idx as i64 - prev);
            prev = idx as i64;
            buf.extend_from_slice(&c.to_bits().to_le_bytes());
        }
    }
    put_uvarint(buf, h.custom_values.len() as u64);
    for v in h.custom_values.iter() {
        buf.extend_from_slice(&v.to_bits().to_le_bytes());
    }
}

/// A cursor over bytes whose every read is checked.
pub struct Decoder<'a> {
    bytes: &'a [u8],
    pos: usize,
}

/// Malformed input, with a short reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub &'static str);

pub type DecodeResult<T> = std::result::Result<T, DecodeError>;

impl<'a> Decoder<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub fn u8(&mut self) -> DecodeResult<u8> {
        let b = *self
            .bytes
            .get(self.pos)
            .ok_or(DecodeError("unexpected end"))?;
        self.pos += 1;
        Ok(b)
    }

    pub fn bytes(&mut self, n: usize) -> DecodeResult<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(DecodeError("length overflow"))?;
        let slice = self
            .bytes
            .get(self.pos..end)
            .ok_or(DecodeError("unexpected end"))?;
        self.pos = end;
        Ok(slice)
    }

    pub fn u64_le(&mut self) -> DecodeResult<u64> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    pub fn uvarint(&mut self) -> DecodeResult<u64> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let byte = self.u8()?;
            if shift == 63 && byte > 1 {
                return Err(DecodeError("varint overflows 64 bits"));
            }
            value |= ((byte & 0x7f) as u64) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(DecodeError("varint too long"))
    }

    pub fn varint(&mut self) -> DecodeResult<i64> {
        let u = self.uvarint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    /// A length that must fit in what is left (so a corrupt length cannot make us allocate).
    pub fn len(&mut self) -> DecodeResult<usize> {
        let n = self.uvarint()?;
        if n > self.remaining() as u64 {
            return Err(DecodeError("length exceeds input"));
        }
        Ok(n as usize)
    }

    pub fn str(&mut self) -> DecodeResult<&'a str> {
        let n = self.len()?;
        std::str::from_utf8(self.bytes(n)?).map_err(|_| DecodeError("invalid utf-8"))
    }

    /// A histogram written by [`put_histogram`].
    pub fn histogram(&mut self) -> DecodeResult<argus_model::FloatHistogram> {
        use argus_model::CounterResetHint::*;
        let hint = match self.u8()? {
            0 => Unknown,
            1 => Reset,
            2 => NotReset,
            3 => Gauge,
            _ => return Err(DecodeError("unknown counter reset hint")),
        };
        let schema =
            i32::try_from(self.varint()?).map_err(|_| DecodeError("schema out of range"))?;
        let mut f = || self.u64_le().map(f64::from_bits);
        let (zero_threshold, zero_count, count, sum) = (f()?, f()?, f()?, f()?);
        let mut sides = [Vec::new(), Vec::new()];
        for side in &mut sides {
            // Each bucket takes at least 9 bytes, which bounds what a corrupt count allocates.
            let n = self.uvarint()?;
            if n > (self.remaining() / 9) as u64 {
                return Err(DecodeError("bucket count exceeds input"));
            }
            let mut idx = 0i64;
            for _ in 0..n {
                idx = idx.wrapping_add(self.varint()?);
                let i = i32::try_from(idx).map_err(|_| DecodeError("bucket index out of range"))?;
                side.push((i, f64::from_bits(self.u64_le()?)));
            }
        }
        let n = self.uvarint()?;
        if n > (self.remaining() / 8) as u64 {
            return Err(DecodeError("custom bound count exceeds input"));
        }
        let mut custom = Vec::with_capacity(n as usize);
        for _ in 0..n {
            custom.push(f64::from_bits(self.u64_le()?));
        }
        let [positive, negative] = sides;
        Ok(argus_model::FloatHistogram {
            hint,
            schema,
            zero_threshold,
            zero_count,
            count,
            sum,
            positive,
            negative,
            custom_values: custom.into(),
        })
    }

    pub fn labels(&mut self) -> DecodeResult<Labels> {
        let n = self.len()?;
        let mut labels: Vec<(&str, &str)> = Vec::with_capacity(n);
        for _ in 0..n {
            let name = self.str()?;
            let value = self.str()?;
            labels.push((name, value));
        }
        Labels::from_sorted_refs(&labels).ok_or(DecodeError("labels not sorted or empty value"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varints_round_trip(values in proptest::collection::vec(any::<i64>(), 0..50)) {
            let mut buf = Vec::new();
            for &v in &values {
                put_varint(&mut buf, v);
                put_uvarint(&mut buf, v as u64);
            }
            let mut d = Decoder::new(&buf);
            for &v in &values {
                prop_assert_eq!(d.varint().unwrap(), v);
                prop_assert_eq!(d.uvarint().unwrap(), v as u64);
            }
            prop_assert!(d.is_empty());
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut d = Decoder::new(&bytes);
            let _ = d.labels();
            let _ = d.str();
        }
    }
}
