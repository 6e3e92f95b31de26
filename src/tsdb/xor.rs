//! The head's open chunk: Gorilla-style compression (delta-of-delta timestamps, XOR'd values) in
//! a bit stream that takes one sample at a time in O(1). Sealed head chunks and persisted blocks
//! use [`super::codec`] instead, which compresses better but needs the whole chunk at once.

/// Where Gorilla bits go: a growing vector ([`BitWriter`]) or a fixed buffer ([`SliceWriter`]).
pub trait BitSink {
    /// Appends the low `n` bits of `v` (n <= 64), most significant first.
    fn write_bits(&mut self, v: u64, n: u8);

    fn write_bit(&mut self, b: bool) {
        self.write_bits(b as u64, 1);
    }
}

/// Appends bits to a byte vector, most significant bit first.
#[derive(Debug, Clone, Default)]
pub struct BitWriter {
    pub buf: Vec<u8>,
    /// Bits used in the last byte (0 means the last byte is full or there is none).
    used: u8,
}

impl BitSink for BitWriter {
    fn write_bits(&mut self, v: u64, n: u8) {
        if n == 0 {
            return;
        }
        // Left-align the n bits in a u128 behind the bits already used in the last byte.
        let v = if n == 64 { v } else { v & ((1u64 << n) - 1) };
        let used = self.used as u32;
        let total = used + n as u32;
        let mut acc: u128 = (v as u128) << (128 - n as u32 - used);
        if used > 0 {
            let last = self.buf.pop().expect("used > 0 means a partial byte");
            acc |= (last as u128) << 120;
        }
        let bytes = total.div_ceil(8) as usize;
        let be = acc.to_be_bytes();
        self.buf.extend_from_slice(&be[..bytes]);
        self.used = (total % 8) as u8;
    }
}

impl BitWriter {
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

/// Writes bits into a fixed buffer from bit `pos` on. Bits that would not fit are not written
/// and set `overflow`; bits after `pos` are overwritten (not ORed), so a caller that drops a
/// failed write by keeping its old position loses nothing.
pub struct SliceWriter<'a> {
    buf: &'a mut [u8],
    pub pos: usize,
    pub overflow: bool,
}

impl<'a> SliceWriter<'a> {
    pub fn new(buf: &'a mut [u8], pos: usize) -> Self {
        SliceWriter {
            buf,
            pos,
            overflow: false,
        }
    }
}

impl BitSink for SliceWriter<'_> {
    fn write_bits(&mut self, v: u64, n: u8) {
        if n == 0 || self.overflow {
            return;
        }
        if self.pos + n as usize > self.buf.len() * 8 {
            self.overflow = true;
            return;
        }
        let v = if n == 64 { v } else { v & ((1u64 << n) - 1) };
        let (byte, off) = (self.pos / 8, (self.pos % 8) as u32);
        // The first byte's bits before `off`, then the n bits, left-aligned in a u128.
        let kept = self.buf[byte] & !(0xffu8 >> off);
        let acc = ((kept as u128) << 120) | ((v as u128) << (128 - n as u32 - off));
        let bytes = (off + n as u32).div_ceil(8) as usize;
        self.buf[byte..byte + bytes].copy_from_slice(&acc.to_be_bytes()[..bytes]);
        self.pos += n as usize;
    }
}

/// Reads bits written by [`BitWriter`]; every read is bounds-checked.
pub struct BitReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        BitReader { buf, pos: 0 }
    }

    pub fn read_bits(&mut self, n: u8) -> Option<u64> {
        if n == 0 {
            return Some(0);
        }
        if self.pos + n as usize > self.buf.len() * 8 {
            return None;
        }
        let mut v = 0u64;
        let mut left = n;
        while left > 0 {
            let byte = self.buf[self.pos / 8];
            let off = (self.pos % 8) as u8;
            let avail = 8 - off;
            let take = avail.min(left);
            let bits = (byte >> (avail - take)) & (((1u16 << take) - 1) as u8);
            v = if take == 64 {
                bits as u64
            } else {
                (v << take) | bits as u64
            };
            self.pos += take as usize;
            left -= take;
        }
        Some(v)
    }

    pub fn read_bit(&mut self) -> Option<bool> {
        self.read_bits(1).map(|b| b == 1)
    }

    /// Bytes consumed so far, counting a partly read byte as consumed.
    pub fn bytes_consumed(&self) -> usize {
        self.pos.div_ceil(8)
    }
}

/// Timestamp delta-of-delta: `0` for 0; `10` + 7 bits for scrape jitter (-63..=64); `110` + 14
/// bits; `1110` + 20 bits; else `1111` + 64 bits.
fn write_dod(w: &mut impl BitSink, dod: i64) {
    match dod {
        0 => w.write_bit(false),
        -63..=64 => {
            w.write_bits(0b10, 2);
            w.write_bits((dod as u64) & ((1 << 7) - 1), 7);
        }
        -8191..=8192 => {
            w.write_bits(0b110, 3);
            w.write_bits((dod as u64) & ((1 << 14) - 1), 14);
        }
        -524287..=524288 => {
            w.write_bits(0b1110, 4);
            w.write_bits((dod as u64) & ((1 << 20) - 1), 20);
        }
        _ => {
            w.write_bits(0b1111, 4);
            w.write_bits(dod as u64, 64);
        }
    }
}

fn read_dod(r: &mut BitReader) -> Option<i64> {
    let mut prefix = 0;
    for _ in 0..4 {
        if !r.read_bit()? {
            break;
        }
        prefix += 1;
    }
    let sz = match prefix {
        0 => return Some(0),
        1 => 7,
        2 => 14,
        3 => 20,
        _ => 64,
    };
    let bits = r.read_bits(sz)?;
    if sz == 64 {
        return Some(bits as i64);
    }
    // Sign-extend, with the range's top value (e.g. 64) written as its negative twin.
    let mut v = bits as i64;
    if v > (1 << (sz - 1)) {
        v -= 1 << sz;
    }
    Some(v)
}

/// XOR-compresses a value against the previous one, keeping the leading/trailing window.
pub struct XorValues {
    prev: u64,
    leading: u8,
    trailing: u8,
}

impl XorValues {
    pub fn new(first: f64) -> Self {
        XorValues {
            prev: first.to_bits(),
            leading: 0xff,
            trailing: 0,
        }
    }

    pub fn write(&mut self, w: &mut impl BitSink, v: f64) {
        let bits = v.to_bits();
        let x = bits ^ self.prev;
        self.prev = bits;
        if x == 0 {
            w.write_bit(false);
            return;
        }
        w.write_bit(true);
        let mut leading = x.leading_zeros() as u8;
        let trailing = x.trailing_zeros() as u8;
        if leading >= 32 {
            leading = 31;
        }
        if self.leading != 0xff && leading >= self.leading && trailing >= self.trailing {
            w.write_bit(false);
            let sig = 64 - self.leading - self.trailing;
            w.write_bits(x >> self.trailing, sig);
        } else {
            self.leading = leading;
            self.trailing = trailing;
            w.write_bit(true);
            w.write_bits(leading as u64, 5);
            let sig = 64 - leading - trailing;
            // 64 significant bits are written as 0 in the 6-bit field.
            w.write_bits((sig % 64) as u64, 6);
            w.write_bits(x >> trailing, sig);
        }
    }

    pub fn read(&mut self, r: &mut BitReader) -> Option<f64> {
        if !r.read_bit()? {
            return Some(f64::from_bits(self.prev));
        }
        if r.read_bit()? {
            self.leading = r.read_bits(5)? as u8;
            let mut sig = r.read_bits(6)? as u8;
            if sig == 0 {
                sig = 64;
            }
            if self.leading as u16 + sig as u16 > 64 {
                return None;
            }
            self.trailing = 64 - self.leading - sig;
        } else if self.leading == 0xff {
            return None;
        }
        let sig = 64 - self.leading - self.trailing;
        let x = r.read_bits(sig)? << self.trailing;
        self.prev ^= x;
        Some(f64::from_bits(self.prev))
    }
}

/// Bytes of an open chunk's bit stream. The open chunk is held in place in each head series
/// (no allocation, no allocator slack): 16 bytes for the first sample, then about 3-5 bytes per
/// sample of typical metrics, so it is sealed every 8-12 samples. 51 makes the chunk 80 bytes.
pub const OPEN_BYTES: usize = 51;

/// An append-only Gorilla chunk in a fixed buffer: [`XorChunk::append`] refuses a sample that
/// does not fit, and the caller seals the chunk and starts a new one.
#[derive(Debug, Clone)]
pub struct XorChunk {
    buf: [u8; OPEN_BYTES],
    /// Bits used in `buf`.
    bits: u16,
    count: u8,
    leading: u8,
    trailing: u8,
    last_t: i64,
    last_delta: i64,
    prev: u64,
}

impl XorChunk {
    pub fn new() -> Self {
        XorChunk {
            buf: [0; OPEN_BYTES],
            bits: 0,
            count: 0,
            leading: 0xff,
            trailing: 0,
            last_t: 0,
            last_delta: 0,
            prev: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The first timestamp: the stream's first 64 bits.
    pub fn first_t(&self) -> Option<i64> {
        if self.count == 0 {
            return None;
        }
        Some(i64::from_be_bytes(self.buf.get(..8)?.try_into().ok()?))
    }

    pub fn last_t(&self) -> Option<i64> {
        (self.count > 0).then_some(self.last_t)
    }

    pub fn last_value(&self) -> Option<f64> {
        (self.count > 0).then_some(f64::from_bits(self.prev))
    }

    pub fn bytes(&self) -> &[u8] {
        &self.buf[..(self.bits as usize).div_ceil(8)]
    }

    /// Appends a sample if it fits (the first one always does); the caller keeps timestamps
    /// strictly increasing. On `false` nothing changed.
    #[must_use]
    pub fn append(&mut self, t: i64, v: f64) -> bool {
        if self.count == u8::MAX {
            return false;
        }
        let mut w = SliceWriter::new(&mut self.buf, self.bits as usize);
        let mut xv = XorValues {
            prev: self.prev,
            leading: self.leading,
            trailing: self.trailing,
        };
        let delta = t.wrapping_sub(self.last_t);
        if self.count == 0 {
            w.write_bits(t as u64, 64);
            w.write_bits(v.to_bits(), 64);
            xv = XorValues::new(v);
        } else {
            write_dod(&mut w, delta.wrapping_sub(self.last_delta));
            xv.write(&mut w, v);
        }
        if w.overflow {
            return false;
        }
        self.bits = w.pos as u16;
        if self.count > 0 {
            self.last_delta = delta;
        }
        (self.prev, self.leading, self.trailing) = (xv.prev, xv.leading, xv.trailing);
        self.last_t = t;
        self.count += 1;
        true
    }

    pub fn samples(&self) -> Vec<(i64, f64)> {
        decode_xor_samples(self.bytes(), self.count as usize).unwrap_or_default()
    }
}

impl Default for XorChunk {
    fn default() -> Self {
        Self::new()
    }
}

/// Decodes `n` samples from a chunk's bit stream; `None` on a short or malformed stream.
pub fn decode_xor_samples(buf: &[u8], n: usize) -> Option<Vec<(i64, f64)>> {
    let mut out = Vec::with_capacity(n.min(buf.len() * 8));
    if n == 0 {
        return Some(out);
    }
    let mut r = BitReader::new(buf);
    let mut t = r.read_bits(64)? as i64;
    let v0 = f64::from_bits(r.read_bits(64)?);
    out.push((t, v0));
    let mut xv = XorValues::new(v0);
    let mut delta = 0i64;
    for _ in 1..n {
        delta = delta.wrapping_add(read_dod(&mut r)?);
        t = t.wrapping_add(delta);
        out.push((t, xv.read(&mut r)?));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Appends to open chunks as the head does (a new chunk when one is full) and returns the
    /// chunks' decoded samples.
    fn through_chunks(samples: &[(i64, f64)]) -> (Vec<(i64, f64)>, usize) {
        let (mut out, mut chunks) = (Vec::new(), 1);
        let mut c = XorChunk::new();
        for &(t, v) in samples {
            if !c.append(t, v) {
                let before = (c.bytes().to_vec(), c.len());
                // A refused sample leaves the chunk as it was, and refuses again.
                assert!(!c.append(t, v));
                assert_eq!((c.bytes().to_vec(), c.len()), before);
                out.extend(c.samples());
                c = XorChunk::new();
                chunks += 1;
                assert!(c.append(t, v), "a first sample always fits");
            }
        }
        out.extend(c.samples());
        (out, chunks)
    }

    fn assert_same(got: &[(i64, f64)], want: &[(i64, f64)]) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert_eq!(g.0, w.0);
            assert_eq!(g.1.to_bits(), w.1.to_bits());
        }
    }

    #[test]
    fn round_trips_awkward_samples() {
        let mut want = Vec::new();
        let vals = [
            1.0,
            1.0,
            -0.0,
            f64::NAN,
            f64::INFINITY,
            1e300,
            3.25,
            f64::from_bits(0x7ff0000000000002),
            0.1,
            0.1 + 0.2,
            -5.0,
        ];
        let mut t = 1_700_000_000_000i64;
        for i in 0..60 {
            t += [15_000, 15_001, 1, 9_000_000, 14_999, 1 << 40][i % 6];
            want.push((t, vals[i % vals.len()]));
        }
        want.push((i64::MAX, 2.0));
        let (got, chunks) = through_chunks(&want);
        assert_same(&got, &want);
        assert!(chunks > 3, "awkward samples fill chunks quickly: {chunks}");
        // A truncated stream decodes to an error, not a panic.
        let mut c = XorChunk::new();
        for &(t, v) in &want[..4] {
            assert!(c.append(t, v));
        }
        assert!(decode_xor_samples(&c.bytes()[..c.bytes().len() / 2], c.len()).is_none());
    }

    #[test]
    fn typical_samples_fill_a_chunk() {
        // A counter scraped every 15 s with jitter: several samples per chunk, bits reused.
        let mut want = Vec::new();
        let (mut t, mut v) = (1_790_000_000_000i64, 1e6);
        for i in 0..1000i64 {
            t += 15_000 + (i * 7919 % 41) - 20;
            v += (i * 104_729 % 997) as f64;
            want.push((t, v));
        }
        let (got, chunks) = through_chunks(&want);
        assert_same(&got, &want);
        let per_chunk = want.len() as f64 / chunks as f64;
        assert!(
            (5.0..40.0).contains(&per_chunk),
            "{per_chunk} samples per chunk"
        );
        // Unchanged values at a steady interval: 2 bits a sample, up to the count limit.
        let mut c = XorChunk::new();
        let mut n = 0;
        while c.append(1000 + n * 15_000, 7.0) {
            n += 1;
        }
        // 128 bits for the first sample, 25 for the second (its delta is a delta-of-delta of 15,000).
        assert_eq!(n as usize, 2 + ((OPEN_BYTES - 16) * 8 - 25) / 2);
        assert_eq!(c.samples().len(), n as usize);
    }

    #[test]
    fn dod_boundaries() {
        for dod in [
            0i64,
            1,
            -1,
            8192,
            -8191,
            8193,
            65536,
            -65535,
            524288,
            -524287,
            524289,
            i64::MIN,
            i64::MAX,
        ] {
            let mut w = BitWriter::default();
            write_dod(&mut w, dod);
            let b = w.into_bytes();
            assert_eq!(read_dod(&mut BitReader::new(&b)), Some(dod), "{dod}");
        }
    }
}
