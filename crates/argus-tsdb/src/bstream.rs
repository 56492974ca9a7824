//! Bit-level writer and reader (most significant bit first), plus Go-compatible varints.

#[derive(Clone, Default)]
pub struct BitWriter {
    bytes: Vec<u8>,
    /// Bits still free in the last byte (0 when a new byte is needed).
    free: u8,
}

impl BitWriter {
    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(bytes),
            free: 0,
        }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn capacity(&self) -> usize {
        self.bytes.capacity()
    }

    pub fn shrink(&mut self) {
        self.bytes.shrink_to_fit();
    }

    /// Adds a zero byte, growing in 64-byte steps instead of doubling: head chunks stay
    /// allocated for their whole life, so slack costs memory on every series.
    fn push_byte(&mut self) {
        if self.bytes.len() == self.bytes.capacity() {
            self.bytes.reserve_exact(64);
        }
        self.bytes.push(0);
    }

    pub fn write_bit(&mut self, bit: bool) {
        if self.free == 0 {
            self.push_byte();
            self.free = 8;
        }
        if bit {
            let last = self.bytes.len() - 1;
            self.bytes[last] |= 1 << (self.free - 1);
        }
        self.free -= 1;
    }

    /// Writes the low `n` bits of `value`, most significant first.
    pub fn write_bits(&mut self, value: u64, n: u32) {
        let mut remaining = n;
        while remaining > 0 {
            if self.free == 0 {
                self.push_byte();
                self.free = 8;
            }
            let take = remaining.min(self.free as u32);
            let shift = remaining - take;
            let chunk = ((value >> shift) & ((1u64 << take) - 1)) as u8;
            let last = self.bytes.len() - 1;
            self.bytes[last] |= chunk << (self.free as u32 - take);
            self.free -= take as u8;
            remaining -= take;
        }
    }

    pub fn write_byte(&mut self, byte: u8) {
        self.write_bits(byte as u64, 8);
    }

    /// Go's `binary.PutUvarint`, bit-aligned.
    pub fn write_uvarint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.write_byte((v as u8) | 0x80);
            v >>= 7;
        }
        self.write_byte(v as u8);
    }

    /// Go's `binary.PutVarint` (zig-zag).
    pub fn write_varint(&mut self, v: i64) {
        self.write_uvarint(((v << 1) ^ (v >> 63)) as u64);
    }

    /// Overwrites two bytes at a byte offset (the chunk header).
    pub fn set_u16_at(&mut self, offset: usize, v: u16) {
        self.bytes[offset..offset + 2].copy_from_slice(&v.to_be_bytes());
    }
}

pub struct BitReader<'a> {
    bytes: &'a [u8],
    /// Position in bits.
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    /// The next bits, most significant first, without consuming them: at least 57 of them
    /// are real when that many remain (see [`Self::remaining`]); past the end they read 0.
    #[inline]
    pub fn peek(&self) -> u64 {
        let byte = self.pos >> 3;
        let window = match self.bytes.get(byte..byte + 8) {
            Some(w) => u64::from_be_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]),
            None => {
                let mut buf = [0u8; 8];
                let rest = self.bytes.get(byte..).unwrap_or(&[]);
                buf[..rest.len()].copy_from_slice(rest);
                u64::from_be_bytes(buf)
            }
        };
        window << (self.pos & 7)
    }

    /// Bits left to read.
    #[inline]
    pub fn remaining(&self) -> usize {
        (self.bytes.len() * 8).saturating_sub(self.pos)
    }

    /// Consumes `n` bits that [`Self::peek`] showed; `None` (nothing consumed) when fewer
    /// remain.
    #[inline]
    pub fn skip(&mut self, n: usize) -> Option<()> {
        if n > self.remaining() {
            return None;
        }
        self.pos += n;
        Some(())
    }

    /// One bit (the decoders peek instead; kept for reference decoders in tests).
    #[cfg(test)]
    pub fn read_bit(&mut self) -> Option<bool> {
        let byte = *self.bytes.get(self.pos >> 3)?;
        let bit = byte & (0x80 >> (self.pos & 7)) != 0;
        self.pos += 1;
        Some(bit)
    }

    /// The next `n` bits (at most 64), most significant first. Reads a 64-bit big-endian
    /// window instead of looping over bytes: this is the innermost loop of every query.
    #[inline]
    pub fn read_bits(&mut self, n: u32) -> Option<u64> {
        if self.pos + n as usize > self.bytes.len() * 8 {
            return None;
        }
        if n == 0 {
            return Some(0);
        }
        if n > 56 {
            return self.read_wide(n);
        }
        let byte = self.pos >> 3;
        let window = match self.bytes.get(byte..byte + 8) {
            Some(w) => u64::from_be_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]),
            None => {
                let mut buf = [0u8; 8];
                let rest = &self.bytes[byte..];
                buf[..rest.len()].copy_from_slice(rest);
                u64::from_be_bytes(buf)
            }
        };
        // n <= 56 and the offset <= 7, so the shifts stay below 64.
        let value = (window << (self.pos & 7)) >> (64 - n);
        self.pos += n as usize;
        Some(value)
    }

    /// More than 56 bits: two reads (kept out of line so `read_bits` inlines).
    #[cold]
    #[inline(never)]
    fn read_wide(&mut self, n: u32) -> Option<u64> {
        let hi = self.read_bits(n - 32)?;
        let lo = self.read_bits(32)?;
        Some((hi << 32) | lo)
    }

    pub fn read_uvarint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let byte = self.read_bits(8)? as u8;
            if shift == 63 && byte > 1 {
                return None;
            }
            value |= ((byte & 0x7f) as u64) << shift;
            if byte < 0x80 {
                return Some(value);
            }
        }
        None
    }

    pub fn read_varint(&mut self) -> Option<i64> {
        let u = self.read_uvarint()?;
        Some(((u >> 1) as i64) ^ -((u & 1) as i64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn bits_round_trip(items in proptest::collection::vec((any::<u64>(), 1u32..=64), 0..100),
                           ints in proptest::collection::vec(any::<i64>(), 0..20)) {
            let mut w = BitWriter::default();
            for &(v, n) in &items {
                w.write_bits(v, n);
            }
            for &i in &ints {
                w.write_varint(i);
            }
            let mut r = BitReader::new(w.bytes());
            for &(v, n) in &items {
                let mask = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
                prop_assert_eq!(r.read_bits(n), Some(v & mask));
            }
            for &i in &ints {
                prop_assert_eq!(r.read_varint(), Some(i));
            }
        }

        /// The windowed reader agrees with reading bit by bit, up to and past the end.
        #[test]
        fn read_bits_matches_bitwise_reference(bytes in proptest::collection::vec(any::<u8>(), 0..40),
                                                reads in proptest::collection::vec(0u32..=64, 0..30)) {
            let mut fast = BitReader::new(&bytes);
            let mut pos = 0usize;
            for n in reads {
                let want = (pos + n as usize <= bytes.len() * 8).then(|| {
                    (0..n as usize).fold(0u64, |acc, k| {
                        let p = pos + k;
                        (acc << 1) | ((bytes[p / 8] >> (7 - p % 8)) & 1) as u64
                    })
                });
                prop_assert_eq!(fast.read_bits(n), want);
                if want.is_some() {
                    pos += n as usize;
                }
            }
        }
    }
}
