//! A bit reader over an RBSP (emulation prevention bytes removed), for SPS and SEI fields.

/// The RBSP of a NAL unit's payload: every `00 00 03` loses its `03`.
pub fn unescape_rbsp(nal: &[u8]) -> Vec<u8> {
    let mut rbsp = Vec::with_capacity(nal.len());
    let mut zeros = 0usize;
    for &byte in nal {
        if zeros >= 2 && byte == 3 {
            zeros = 0;
            continue;
        }
        if byte == 0 {
            zeros += 1;
        } else {
            zeros = 0;
        }
        rbsp.push(byte);
    }
    rbsp
}

/// Reads bits most significant first; every read past the end is `None`.
pub struct BitReader<'a> {
    bytes: &'a [u8],
    position_bits: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        BitReader {
            bytes,
            position_bits: 0,
        }
    }

    pub fn bit(&mut self) -> Option<u32> {
        let byte = *self.bytes.get(self.position_bits / 8)?;
        let bit = (byte >> (7 - (self.position_bits % 8))) & 1;
        self.position_bits += 1;
        Some(u32::from(bit))
    }

    pub fn bits(&mut self, count: u32) -> Option<u32> {
        if count > 32 {
            return None;
        }
        let mut value = 0u64;
        for _ in 0..count {
            value = (value << 1) | u64::from(self.bit()?);
        }
        u32::try_from(value).ok()
    }

    pub fn flag(&mut self) -> Option<bool> {
        Some(self.bit()? == 1)
    }

    /// Unsigned Exp-Golomb (`ue(v)`), at most 32 leading zeros.
    pub fn unsigned_golomb(&mut self) -> Option<u32> {
        let mut leading_zeros = 0u32;
        while self.bit()? == 0 {
            leading_zeros += 1;
            if leading_zeros > 31 {
                return None;
            }
        }
        let suffix = self.bits(leading_zeros)?;
        let value = (1u64 << leading_zeros) - 1 + u64::from(suffix);
        u32::try_from(value).ok()
    }

    /// Signed Exp-Golomb (`se(v)`).
    pub fn signed_golomb(&mut self) -> Option<i64> {
        let code = i64::from(self.unsigned_golomb()?);
        Some(if code % 2 == 1 {
            (code + 1) / 2
        } else {
            -(code / 2)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golomb_codes_and_escapes() {
        // 1 -> 0; 010 -> 1; 011 -> 2; 00100 -> 3
        let bytes = [0b1010_0110, 0b0100_0000];
        let mut reader = BitReader::new(&bytes);
        assert_eq!(reader.unsigned_golomb(), Some(0));
        assert_eq!(reader.unsigned_golomb(), Some(1));
        assert_eq!(reader.unsigned_golomb(), Some(2));
        assert_eq!(reader.unsigned_golomb(), Some(3));
        assert_eq!(unescape_rbsp(&[0, 0, 3, 1, 0, 0, 3]), vec![0, 0, 1, 0, 0]);
        let mut empty = BitReader::new(&[]);
        assert_eq!(empty.unsigned_golomb(), None);
        let zeros = [0u8; 8];
        assert_eq!(BitReader::new(&zeros).unsigned_golomb(), None);
    }
}
