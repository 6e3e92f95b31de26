//! The codec for sealed head chunks and persisted blocks, chosen by measurement (see
//! `BENCHMARKS.md`): timestamps as delta-of-delta, values as scaled decimal integers where every
//! value in the chunk is a short decimal (ALP's observation: most metrics are), coded as deltas or
//! deltas-of-deltas with frame-of-reference bit packing in 64-value mini-blocks; chunks with values
//! that are not short decimals (NaN, staleness markers, arbitrary floats) fall back to Gorilla XOR
//! for the values. Lossless to the bit. Byte layout in `FORMAT.md`.

use super::xor::{BitReader, BitSink, BitWriter, XorValues};

const TAG: u8 = 0x01;
const MINI: usize = 64;
/// The largest decimal exponent tried: values with more fractional digits use XOR.
const MAX_EXP: u32 = 12;
const POW10: [f64; 13] = [
    1.0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12,
];

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("corrupt chunk: {0}")]
pub struct CodecError(pub &'static str);

/// Encodes samples (timestamps strictly increasing) into a self-describing chunk.
pub fn encode(samples: &[(i64, f64)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + samples.len() * 2);
    out.push(TAG);
    put_uvarint(&mut out, samples.len() as u64);
    if samples.is_empty() {
        return out;
    }
    // Timestamps: deltas or deltas of deltas, whichever packs smaller (jittered scrapes pack
    // better as deltas, drifting ones as deltas of deltas).
    put_varint(&mut out, samples[0].0);
    if samples.len() > 1 {
        let d0 = samples[1].0.wrapping_sub(samples[0].0);
        put_varint(&mut out, d0);
        let deltas: Vec<i64> = samples[1..]
            .windows(2)
            .map(|w| w[1].0.wrapping_sub(w[0].0))
            .collect();
        let mut a = Vec::new();
        pack(&mut a, &deltas);
        let mut prev = d0;
        let dods: Vec<i64> = deltas
            .iter()
            .map(|&d| {
                let x = d.wrapping_sub(prev);
                prev = d;
                x
            })
            .collect();
        let mut b = Vec::new();
        pack(&mut b, &dods);
        if b.len() <= a.len() {
            out.push(0);
            out.extend_from_slice(&b);
        } else {
            out.push(1);
            out.extend_from_slice(&a);
        }
    }
    // Values.
    let first = samples[0].1.to_bits();
    if samples.iter().all(|s| s.1.to_bits() == first) {
        out.push(0);
        out.extend_from_slice(&first.to_le_bytes());
        return out;
    }
    if let Some((exp, ints)) = as_decimals(samples) {
        let mut deltas: Vec<i64> = ints.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect();
        // A common factor of the steps (page sizes, sector sizes) is divided out.
        let g = deltas
            .iter()
            .fold(0u64, |g, d| gcd(g, d.unsigned_abs()))
            .max(1);
        if g > 1 {
            for d in &mut deltas {
                *d /= g as i64;
            }
        }
        let mut a = Vec::new();
        pack(&mut a, &deltas);
        let mut b = Vec::new();
        if deltas.len() > 1 {
            let dods: Vec<i64> = deltas.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect();
            put_varint(&mut b, deltas[0]);
            pack(&mut b, &dods);
        }
        let use_dod = deltas.len() > 1 && b.len() < a.len();
        out.push(if use_dod { 2 } else { 1 });
        out.push(exp as u8);
        put_uvarint(&mut out, g);
        put_varint(&mut out, ints[0]);
        out.extend_from_slice(if use_dod { &b } else { &a });
        return out;
    }
    out.push(3);
    let mut w = BitWriter::default();
    w.write_bits(first, 64);
    let mut xv = XorValues::new(samples[0].1);
    for s in &samples[1..] {
        xv.write(&mut w, s.1);
    }
    out.extend_from_slice(&w.into_bytes());
    out
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The smallest decimal exponent at which every value is an exact integer (to the bit), and the
/// integers; `None` if there is none up to [`MAX_EXP`].
fn as_decimals(samples: &[(i64, f64)]) -> Option<(u32, Vec<i64>)> {
    'exp: for e in 0..=MAX_EXP {
        let p = POW10[e as usize];
        let mut ints = Vec::with_capacity(samples.len());
        for s in samples {
            let x = (s.1 * p).round();
            if !x.is_finite() || x.abs() > 9.007_199_254_740_992e15 {
                return None;
            }
            let i = x as i64;
            if (i as f64 / p).to_bits() != s.1.to_bits() {
                continue 'exp;
            }
            ints.push(i);
        }
        return Some((e, ints));
    }
    None
}

/// The sample count of a chunk written by [`encode`], from its header.
pub fn count(buf: &[u8]) -> usize {
    match buf.split_first() {
        Some((&TAG, rest)) => get_uvarint(rest).map_or(0, |(n, _)| n as usize),
        _ => 0,
    }
}

/// The first timestamp of a chunk written by [`encode`], from its header.
pub fn first_t(buf: &[u8]) -> Option<i64> {
    let rest = buf.strip_prefix(&[TAG])?;
    let (n, a) = get_uvarint(rest)?;
    if n == 0 {
        return None;
    }
    get_uvarint(&rest[a..]).map(|(t, _)| unzigzag(t))
}

/// Decodes a chunk written by [`encode`]; never panics on arbitrary bytes.
pub fn decode(buf: &[u8]) -> Result<Vec<(i64, f64)>, CodecError> {
    let mut out = Vec::new();
    decode_range_into(buf, i64::MIN, i64::MAX, &mut out)?;
    Ok(out)
}

/// Appends the samples of a chunk written by [`encode`] whose timestamps lie in `[mint, maxt]`
/// to `out`, allocating nothing else: timestamps are walked to the end of the range, values are
/// decoded only up to its last sample. On a corrupt chunk `out` is left as it was and the error
/// returned; never panics on arbitrary bytes.
pub fn decode_range_into(
    buf: &[u8],
    mint: i64,
    maxt: i64,
    out: &mut Vec<(i64, f64)>,
) -> Result<(), CodecError> {
    let base = out.len();
    let r = decode_range_inner(buf, mint, maxt, out);
    if r.is_err() {
        out.truncate(base);
    }
    r
}

fn decode_range_inner(
    buf: &[u8],
    mint: i64,
    maxt: i64,
    out: &mut Vec<(i64, f64)>,
) -> Result<(), CodecError> {
    let mut r = Cursor { buf, pos: 0 };
    if r.byte()? != TAG {
        return Err(CodecError("unknown chunk encoding"));
    }
    let n = r.uvarint()? as usize;
    // Every sample costs at least a bit somewhere; refuse counts the bytes cannot hold.
    if n > buf.len().saturating_mul(64) + 2 {
        return Err(CodecError("sample count larger than the chunk"));
    }
    if n == 0 {
        return Ok(());
    }
    let base = out.len();
    // Indices [lo, hi) of the samples in range; timestamps strictly increase.
    let mut lo = n;
    let mut hi = 0;
    let mut keep = |i: usize, t: i64, out: &mut Vec<(i64, f64)>| {
        if t >= mint && t <= maxt {
            if lo == n {
                lo = i;
            }
            hi = i + 1;
            out.push((t, 0.0));
        }
    };
    let t0 = r.varint()?;
    keep(0, t0, out);
    if n > 1 {
        let mut d = r.varint()?;
        let mut t = t0.wrapping_add(d);
        keep(1, t, out);
        let as_deltas = match r.byte()? {
            0 => false,
            1 => true,
            _ => return Err(CodecError("unknown timestamp encoding")),
        };
        let mut u = Unpacker::new(n - 2);
        for i in 2..n {
            let x = u.next(&mut r)?;
            d = if as_deltas { x } else { d.wrapping_add(x) };
            t = t.wrapping_add(d);
            keep(i, t, out);
        }
    }
    let kind = r.byte()?;
    if out.len() - base != hi.saturating_sub(lo) {
        return Err(CodecError("timestamps out of order"));
    }
    if hi == 0 {
        return Ok(());
    }
    let vals = &mut out[base..];
    let mut put = |i: usize, v: f64| {
        if i >= lo && i < hi {
            vals[i - lo].1 = v;
        }
    };
    match kind {
        0 => {
            let v = f64::from_bits(u64::from_le_bytes(r.take(8)?.try_into().expect("8 bytes")));
            vals.iter_mut().for_each(|s| s.1 = v);
        }
        1 | 2 => {
            let exp = r.byte()? as usize;
            if exp > MAX_EXP as usize {
                return Err(CodecError("decimal exponent out of range"));
            }
            let p = POW10[exp];
            let g = r.uvarint()? as i64;
            let mut x = r.varint()?;
            put(0, x as f64 / p);
            if kind == 1 {
                let mut u = Unpacker::new(n - 1);
                for i in 1..hi {
                    x = x.wrapping_add(u.next(&mut r)?.wrapping_mul(g));
                    put(i, x as f64 / p);
                }
            } else if n > 1 {
                let mut d = r.varint()?;
                x = x.wrapping_add(d.wrapping_mul(g));
                put(1, x as f64 / p);
                let mut u = Unpacker::new(n - 2);
                for i in 2..hi {
                    d = d.wrapping_add(u.next(&mut r)?);
                    x = x.wrapping_add(d.wrapping_mul(g));
                    put(i, x as f64 / p);
                }
            }
        }
        3 => {
            let mut br = BitReader::new(&buf[r.pos..]);
            let first = f64::from_bits(br.read_bits(64).ok_or(CodecError("short values"))?);
            let mut xv = XorValues::new(first);
            put(0, first);
            for i in 1..hi {
                put(i, xv.read(&mut br).ok_or(CodecError("short values"))?);
            }
        }
        _ => return Err(CodecError("unknown value encoding")),
    }
    Ok(())
}

/// Frame-of-reference bit packing in mini-blocks: per block a zigzag-varint minimum, a width
/// byte, then `len * width` bits, LSB first.
fn pack(out: &mut Vec<u8>, vals: &[i64]) {
    for block in vals.chunks(MINI) {
        let min = *block.iter().min().expect("chunks are non-empty");
        let max_off = block
            .iter()
            .map(|&v| (v as i128 - min as i128) as u64)
            .max()
            .unwrap_or(0);
        let width = 64 - max_off.leading_zeros() as u8;
        put_varint(out, min);
        out.push(width);
        if width == 0 {
            continue;
        }
        let mut acc: u128 = 0;
        let mut nbits = 0u32;
        for &v in block {
            let off = (v as i128 - min as i128) as u64;
            acc |= (off as u128) << nbits;
            nbits += width as u32;
            while nbits >= 8 {
                out.push(acc as u8);
                acc >>= 8;
                nbits -= 8;
            }
        }
        if nbits > 0 {
            out.push(acc as u8);
        }
    }
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn byte(&mut self) -> Result<u8, CodecError> {
        let b = *self.buf.get(self.pos).ok_or(CodecError("unexpected end"))?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(CodecError("unexpected end"))?;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or(CodecError("unexpected end"))?;
        self.pos = end;
        Ok(s)
    }

    fn uvarint(&mut self) -> Result<u64, CodecError> {
        let (v, n) = get_uvarint(&self.buf[self.pos..]).ok_or(CodecError("bad varint"))?;
        self.pos += n;
        Ok(v)
    }

    fn varint(&mut self) -> Result<i64, CodecError> {
        Ok(unzigzag(self.uvarint()?))
    }
}

/// Reads `n` values written by [`pack`], one at a time, without a buffer.
struct Unpacker<'a> {
    /// Values not yet started in a mini-block.
    left: usize,
    /// The current mini-block: values left in it, its minimum, width and bits.
    in_block: usize,
    min: i64,
    width: u32,
    bytes: &'a [u8],
    bitpos: usize,
}

impl<'a> Unpacker<'a> {
    fn new(n: usize) -> Self {
        Unpacker {
            left: n,
            in_block: 0,
            min: 0,
            width: 0,
            bytes: &[],
            bitpos: 0,
        }
    }

    fn next(&mut self, r: &mut Cursor<'a>) -> Result<i64, CodecError> {
        if self.in_block == 0 {
            if self.left == 0 {
                return Err(CodecError("more values read than packed"));
            }
            let len = self.left.min(MINI);
            self.min = r.varint()?;
            self.width = r.byte()? as u32;
            if self.width > 64 {
                return Err(CodecError("bit width over 64"));
            }
            self.bytes = r.take((len * self.width as usize).div_ceil(8))?;
            self.bitpos = 0;
            self.in_block = len;
            self.left -= len;
        }
        self.in_block -= 1;
        let w = self.width;
        if w == 0 {
            return Ok(self.min);
        }
        let byte = self.bitpos >> 3;
        let shift = (self.bitpos & 7) as u32;
        self.bitpos += w as usize;
        let off = if w <= 56 {
            // One unaligned little-endian word load per value.
            let word = match self.bytes.get(byte..byte + 8) {
                Some(x) => u64::from_le_bytes(x.try_into().expect("8 bytes")),
                None => {
                    let mut x = [0u8; 8];
                    let tail = &self.bytes[byte.min(self.bytes.len())..];
                    x[..tail.len()].copy_from_slice(tail);
                    u64::from_le_bytes(x)
                }
            };
            (word >> shift) & ((1u64 << w) - 1)
        } else {
            let mut x = [0u8; 16];
            let tail = &self.bytes[byte.min(self.bytes.len())..];
            let k = tail.len().min(16);
            x[..k].copy_from_slice(&tail[..k]);
            let mask = if w == 64 { u64::MAX } else { (1u64 << w) - 1 };
            ((u128::from_le_bytes(x) >> shift) as u64) & mask
        };
        Ok((self.min as i128 + off as i128) as i64)
    }
}

pub fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub fn put_varint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, ((v << 1) ^ (v >> 63)) as u64);
}

pub fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// Reads a uvarint; `None` if it is cut short or longer than 10 bytes.
pub fn get_uvarint(buf: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &b) in buf.iter().enumerate().take(10) {
        v |= ((b & 0x7f) as u64) << (7 * i);
        if b < 0x80 {
            return Some((v, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(s: &[(i64, f64)]) -> usize {
        let b = encode(s);
        let d = decode(&b).unwrap();
        assert_eq!(d.len(), s.len());
        for (x, y) in d.iter().zip(s) {
            assert_eq!(x.0, y.0);
            assert_eq!(x.1.to_bits(), y.1.to_bits(), "{} vs {}", x.1, y.1);
        }
        b.len()
    }

    #[test]
    fn kinds_round_trip() {
        let ts = |i: i64| 1_700_000_000_000 + i * 15_000;
        // Constant.
        let c: Vec<_> = (0..120).map(|i| (ts(i), 42.0)).collect();
        assert!(round_trip(&c) < 32);
        // Counter with two decimals.
        let mut v = 1000.0f64;
        let ctr: Vec<_> = (0..120)
            .map(|i| {
                v = ((v * 100.0).round() + (i % 7) as f64 * 3.0 + 11.0) / 100.0;
                (ts(i), v)
            })
            .collect();
        assert!(round_trip(&ctr) < 120);
        // Arbitrary floats, NaN and staleness markers fall back to XOR.
        let f: Vec<_> = (0..100)
            .map(|i| (ts(i) + i % 3, (i as f64).sin()))
            .chain([
                (ts(200), f64::NAN),
                (ts(201), f64::from_bits(0x7ff0000000000002)),
            ])
            .collect();
        round_trip(&f);
        round_trip(&[(5, -0.0), (6, 0.0)]);
        round_trip(&[(5, 1e15), (6, -1e15), (7, 9e15)]);
        round_trip(&[(i64::MIN, 1.0), (i64::MAX, 2.5)]);
        round_trip(&[]);
        round_trip(&[(1, 0.1)]);
        // Page-sized steps: the common factor is divided out.
        let pages: Vec<_> = (0..120)
            .map(|i| (ts(i), (1_000_000 + (i * 7 % 13)) as f64 * 4096.0))
            .collect();
        assert!(round_trip(&pages) < 120, "{}", round_trip(&pages));
        round_trip(&[(1, i64::MAX as f64), (2, i64::MIN as f64), (3, 0.0)]);
    }

    #[test]
    fn range_decode_equals_decode_then_filter() {
        let ts = |i: i64| 1_700_000_000_000 + i * 15_000 + (i * 7919) % 13;
        let mut v = 10.0f64;
        let kinds: Vec<Vec<(i64, f64)>> = vec![
            (0..300).map(|i| (ts(i), 3.0)).collect(),
            (0..300)
                .map(|i| {
                    v += (i % 5) as f64 * 0.25;
                    (ts(i), v)
                })
                .collect(),
            (0..300).map(|i| (ts(i), (i * i) as f64)).collect(),
            (0..300).map(|i| (ts(i), (i as f64).sin())).collect(),
            vec![(ts(0), 1.0)],
        ];
        for samples in &kinds {
            let c = encode(samples);
            let all = decode(&c).unwrap();
            let (first, last) = (samples[0].0, samples[samples.len() - 1].0);
            for (mint, maxt) in [
                (i64::MIN, i64::MAX),
                (first, last),
                (first - 1, first),
                (last, last + 1),
                (ts(10), ts(30)),
                (ts(10) + 1, ts(30) - 1),
                (ts(299), ts(400)),
                (ts(-10), ts(-1)),
                (ts(400), ts(500)),
                (ts(50), ts(40)),
            ] {
                let mut got = vec![(1, 1.0)];
                decode_range_into(&c, mint, maxt, &mut got).unwrap();
                let want: Vec<_> = std::iter::once((1, 1.0))
                    .chain(all.iter().copied().filter(|s| s.0 >= mint && s.0 <= maxt))
                    .collect();
                assert_eq!(got.len(), want.len(), "[{mint}, {maxt}]");
                for (a, b) in got.iter().zip(&want) {
                    assert_eq!((a.0, a.1.to_bits()), (b.0, b.1.to_bits()));
                }
            }
        }
        // A corrupt chunk leaves the output as it was.
        let c = encode(&kinds[1]);
        let mut out = vec![(1, 1.0)];
        assert!(decode_range_into(&c[..c.len() / 2], i64::MIN, i64::MAX, &mut out).is_err());
        assert_eq!(out, vec![(1, 1.0)]);
    }

    #[test]
    fn garbage_is_an_error() {
        let good = encode(&[(1, 1.5), (2, 2.5), (3, 7.25)]);
        for cut in 0..good.len() {
            let _ = decode(&good[..cut]);
        }
        assert!(decode(&[TAG, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
        assert!(decode(&[9]).is_err());
    }
}
