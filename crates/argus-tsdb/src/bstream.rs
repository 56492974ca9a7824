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

    pub fn read_bit(&mut self) -> Option<bool> {
        let byte = *self.bytes.get(self.pos / 8)?;
        let bit = byte & (0x80 >> (self.pos % 8)) != 0;
        self.pos += 1;
        Some(bit)
    }

    pub fn read_bits(&mut self, n: u32) -> Option<u64> {
        if self.pos + n as usize > self.bytes.len() * 8 {
            return None;
        }
        let mut value = 0u64;
        let mut remaining = n;
        while remaining > 0 {
            let byte = self.bytes[self.pos / 8];
            let offset = (self.pos % 8) as u32;
            let available = 8 - offset;
            let take = remaining.min(available);
            let bits = (byte as u32 >> (available - take)) & ((1u32 << take) - 1);
            value = if take == 64 {
                bits as u64
            } else {
                (value << take) | bits as u64
            };
            self.pos += take as usize;
            remaining -= take;
        }
        Some(value)
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
    }
}
