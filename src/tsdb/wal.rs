//! The write-ahead log: numbered segment files of checksummed records (series definitions,
//! samples, exemplars, metadata, block-cut markers), appended and fsynced by the writer thread
//! before an export is acknowledged (group commit: one fsync for every export waiting at that
//! moment). On start the checkpoint and the segments are replayed; a torn or corrupt tail is cut
//! off and everything before it is kept. Byte layout in `FORMAT.md`. This module knows bytes and
//! files; what the records mean to the head is `mod.rs`'s business.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::codec::{get_uvarint, put_uvarint, put_varint, unzigzag};
use super::head::{Exemplar, Metadata};
use super::labels::{Label, Labels};

pub const SEGMENT_MAGIC: &[u8; 4] = b"SLWL";
pub const SEGMENT_VERSION: u8 = 1;
const HEADER_LEN: usize = 8;
/// The largest record a reader accepts; writers split batches well below this.
pub const MAX_RECORD: usize = 64 << 20;

pub const REC_SERIES: u8 = 1;
pub const REC_SAMPLES: u8 = 2;
pub const REC_EXEMPLARS: u8 = 3;
pub const REC_CUT: u8 = 4;
pub const REC_METADATA: u8 = 5;

#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Series(Vec<(u32, Labels)>),
    Samples(Vec<(u32, i64, f64)>),
    Exemplars(Vec<(u32, Exemplar)>),
    /// A block of everything before `cut_t` (and every out-of-order sample) was started as block
    /// number `block`; if that block exists, replay drops what it holds from the head.
    Cut {
        cut_t: i64,
        block: u64,
    },
    Metadata(Vec<(String, Metadata)>),
}

/// Appends one framed record: `len u32 LE | crc32 u32 LE (of type and payload) | type | payload`.
pub fn frame(out: &mut Vec<u8>, typ: u8, payload: &[u8]) {
    let mut h = crc32fast::Hasher::new();
    h.update(&[typ]);
    h.update(payload);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&h.finalize().to_le_bytes());
    out.push(typ);
    out.extend_from_slice(payload);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_uvarint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

pub fn encode_series(out: &mut Vec<u8>, series: &[(u32, &Labels)]) {
    let mut p = Vec::with_capacity(series.len() * 64);
    for (id, l) in series {
        put_uvarint(&mut p, *id as u64);
        put_uvarint(&mut p, l.len() as u64);
        for lab in l.iter() {
            put_str(&mut p, &lab.name);
            put_str(&mut p, &lab.value);
        }
    }
    frame(out, REC_SERIES, &p);
}

/// Samples record; `scratch` is reused between calls to avoid allocating.
pub fn encode_samples(out: &mut Vec<u8>, scratch: &mut Vec<u8>, samples: &[(u32, i64, f64)]) {
    scratch.clear();
    put_uvarint(scratch, samples.len() as u64);
    let base = samples.first().map_or(0, |s| s.1);
    put_varint(scratch, base);
    for &(id, t, v) in samples {
        put_uvarint(scratch, id as u64);
        put_varint(scratch, t.wrapping_sub(base));
        scratch.extend_from_slice(&v.to_bits().to_le_bytes());
    }
    frame(out, REC_SAMPLES, scratch);
}

pub fn encode_exemplars(out: &mut Vec<u8>, ex: &[(u32, Exemplar)]) {
    let mut p = Vec::with_capacity(ex.len() * 48);
    for (id, e) in ex {
        put_uvarint(&mut p, *id as u64);
        put_varint(&mut p, e.t);
        p.extend_from_slice(&e.value.to_bits().to_le_bytes());
        p.extend_from_slice(&e.trace_id);
        p.extend_from_slice(&e.span_id);
    }
    frame(out, REC_EXEMPLARS, &p);
}

pub fn encode_cut(out: &mut Vec<u8>, cut_t: i64, block: u64) {
    let mut p = Vec::new();
    put_varint(&mut p, cut_t);
    put_uvarint(&mut p, block);
    frame(out, REC_CUT, &p);
}

pub fn encode_metadata(out: &mut Vec<u8>, md: &[(String, Metadata)]) {
    let mut p = Vec::new();
    for (name, m) in md {
        put_str(&mut p, name);
        put_str(&mut p, &m.kind);
        put_str(&mut p, &m.help);
        put_str(&mut p, &m.unit);
    }
    frame(out, REC_METADATA, &p);
}

struct Rd<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Rd<'a> {
    fn done(&self) -> bool {
        self.pos >= self.b.len()
    }
    fn uv(&mut self) -> Option<u64> {
        let (v, n) = get_uvarint(self.b.get(self.pos..)?)?;
        self.pos += n;
        Some(v)
    }
    fn iv(&mut self) -> Option<i64> {
        self.uv().map(unzigzag)
    }
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn u64le(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.bytes(8)?.try_into().ok()?))
    }
    fn string(&mut self) -> Option<String> {
        let n = self.uv()? as usize;
        String::from_utf8(self.bytes(n)?.to_vec()).ok()
    }
    fn id(&mut self) -> Option<u32> {
        u32::try_from(self.uv()?).ok()
    }
}

/// Decodes one record's payload; `None` if it is malformed.
pub fn decode_record(typ: u8, p: &[u8]) -> Option<Record> {
    let mut r = Rd { b: p, pos: 0 };
    Some(match typ {
        REC_SERIES => {
            let mut v = Vec::new();
            while !r.done() {
                let id = r.id()?;
                let n = r.uv()? as usize;
                if n > p.len() {
                    return None;
                }
                let mut pairs = Vec::with_capacity(n);
                for _ in 0..n {
                    let name = r.string()?;
                    let value = r.string()?;
                    pairs.push(Label { name, value });
                }
                if !pairs.windows(2).all(|w| w[0].name < w[1].name)
                    || pairs.iter().any(|l| l.value.is_empty())
                {
                    return None;
                }
                v.push((id, Labels::from_sorted(pairs)));
            }
            Record::Series(v)
        }
        REC_SAMPLES => {
            let n = r.uv()? as usize;
            if n > p.len() / 10 + 1 {
                return None;
            }
            let base = r.iv()?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                let id = r.id()?;
                let t = base.wrapping_add(r.iv()?);
                v.push((id, t, f64::from_bits(r.u64le()?)));
            }
            if !r.done() {
                return None;
            }
            Record::Samples(v)
        }
        REC_EXEMPLARS => {
            let mut v = Vec::new();
            while !r.done() {
                let id = r.id()?;
                let t = r.iv()?;
                let value = f64::from_bits(r.u64le()?);
                let trace_id = r.bytes(16)?.try_into().ok()?;
                let span_id = r.bytes(8)?.try_into().ok()?;
                v.push((
                    id,
                    Exemplar {
                        trace_id,
                        span_id,
                        value,
                        t,
                    },
                ));
            }
            Record::Exemplars(v)
        }
        REC_CUT => {
            let cut_t = r.iv()?;
            let block = r.uv()?;
            Record::Cut { cut_t, block }
        }
        REC_METADATA => {
            let mut v = Vec::new();
            while !r.done() {
                let name = r.string()?;
                let kind = r.string()?;
                let help = r.string()?;
                let unit = r.string()?;
                v.push((name, Metadata { kind, help, unit }));
            }
            Record::Metadata(v)
        }
        _ => return None,
    })
}

/// What reading one segment found.
#[derive(Debug, Default)]
pub struct SegmentRead {
    pub records: Vec<Record>,
    /// Bytes of the segment that hold whole, valid records (including the header).
    pub valid_len: usize,
    /// Why reading stopped early, if it did.
    pub corruption: Option<String>,
}

/// Reads a whole segment's bytes; stops at the first torn or corrupt record. Never panics.
pub fn read_segment(b: &[u8]) -> SegmentRead {
    let mut out = SegmentRead::default();
    if b.len() < HEADER_LEN || &b[..4] != SEGMENT_MAGIC {
        out.corruption = Some("missing or wrong segment header".into());
        return out;
    }
    if b[4] != SEGMENT_VERSION {
        out.corruption = Some(format!("unknown segment version {}", b[4]));
        return out;
    }
    let mut pos = HEADER_LEN;
    out.valid_len = pos;
    while pos < b.len() {
        let Some(h) = b.get(pos..pos + 9) else {
            out.corruption = Some(format!("torn record header at byte {pos}"));
            break;
        };
        let len = u32::from_le_bytes(h[0..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(h[4..8].try_into().expect("4 bytes"));
        let typ = h[8];
        if len > MAX_RECORD {
            out.corruption = Some(format!("record length {len} at byte {pos} is impossible"));
            break;
        }
        let Some(payload) = b.get(pos + 9..pos + 9 + len) else {
            out.corruption = Some(format!("torn record at byte {pos}"));
            break;
        };
        let mut hs = crc32fast::Hasher::new();
        hs.update(&[typ]);
        hs.update(payload);
        if hs.finalize() != crc {
            out.corruption = Some(format!("checksum mismatch at byte {pos}"));
            break;
        }
        match decode_record(typ, payload) {
            Some(r) => out.records.push(r),
            None => {
                out.corruption = Some(format!("undecodable record of type {typ} at byte {pos}"));
                break;
            }
        }
        pos += 9 + len;
        out.valid_len = pos;
    }
    out
}

fn segment_name(n: u32) -> String {
    format!("{n:08}")
}

fn checkpoint_name(n: u32) -> String {
    format!("checkpoint.{n:08}")
}

/// The open log: the current segment and what is known about the older ones.
pub struct Wal {
    dir: PathBuf,
    seg: u32,
    file: File,
    offset: u64,
    segment_size: u64,
    /// Newest sample time in each segment, to know which segments a block has made redundant.
    seg_max_t: BTreeMap<u32, i64>,
    broken: bool,
}

/// What replay found: the records in order, and what repairs were made.
pub struct Replay {
    pub records: Vec<Record>,
    pub repairs: Vec<String>,
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn new_segment(dir: &Path, n: u32) -> io::Result<File> {
    let path = dir.join(segment_name(n));
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)?;
    let mut h = Vec::with_capacity(HEADER_LEN);
    h.extend_from_slice(SEGMENT_MAGIC);
    h.extend_from_slice(&[SEGMENT_VERSION, 0, 0, 0]);
    f.write_all(&h)?;
    f.sync_all()?;
    sync_dir(dir)?;
    Ok(f)
}

fn max_sample_t(records: &[Record]) -> i64 {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Samples(s) => s.iter().map(|x| x.1).max(),
            _ => None,
        })
        .max()
        .unwrap_or(i64::MIN)
}

impl Wal {
    /// Opens the log in `dir`, replays the newest checkpoint and every segment after it, cuts a
    /// corrupt tail (and, as Prometheus does, drops segments after a corrupt one), and starts a
    /// fresh segment for new writes.
    pub fn open(dir: &Path, segment_size: u64) -> io::Result<(Wal, Replay)> {
        fs::create_dir_all(dir)?;
        let mut segs: Vec<u32> = Vec::new();
        let mut checkpoints: Vec<u32> = Vec::new();
        for e in fs::read_dir(dir)? {
            let name = e?.file_name().to_string_lossy().to_string();
            if let Some(n) = name.strip_prefix("checkpoint.") {
                if let Ok(n) = n.parse() {
                    checkpoints.push(n);
                }
            } else if let Ok(n) = name.parse() {
                segs.push(n);
            } else if name.ends_with(".tmp") {
                let _ = fs::remove_file(dir.join(&name));
            }
        }
        segs.sort_unstable();
        checkpoints.sort_unstable();
        let mut replay = Replay {
            records: Vec::new(),
            repairs: Vec::new(),
        };
        let cp = checkpoints.last().copied();
        if let Some(c) = cp {
            let bytes = fs::read(dir.join(checkpoint_name(c)))?;
            let r = read_segment(&bytes);
            if let Some(why) = r.corruption {
                // Checkpoints are written whole and renamed into place, so this is damage.
                replay.repairs.push(format!("checkpoint {c}: {why}"));
            }
            replay.records.extend(r.records);
            for old in &checkpoints[..checkpoints.len() - 1] {
                let _ = fs::remove_file(dir.join(checkpoint_name(*old)));
            }
        }
        let mut seg_max_t = BTreeMap::new();
        let mut broken_at: Option<usize> = None;
        for (i, &n) in segs.iter().enumerate() {
            let path = dir.join(segment_name(n));
            let bytes = fs::read(&path)?;
            let r = read_segment(&bytes);
            seg_max_t.insert(n, max_sample_t(&r.records));
            replay.records.extend(r.records);
            if let Some(why) = r.corruption {
                let f = OpenOptions::new().write(true).open(&path)?;
                if r.valid_len < HEADER_LEN {
                    drop(f);
                    fs::remove_file(&path)?;
                    seg_max_t.remove(&n);
                } else {
                    f.set_len(r.valid_len as u64)?;
                    f.sync_all()?;
                }
                replay
                    .repairs
                    .push(format!("segment {n}: {why}; cut to {} bytes", r.valid_len));
                broken_at = Some(i);
                break;
            }
        }
        if let Some(i) = broken_at {
            for &n in &segs[i + 1..] {
                replay.repairs.push(format!(
                    "segment {n}: dropped, it follows a corrupt segment"
                ));
                let _ = fs::remove_file(dir.join(segment_name(n)));
            }
        }
        let next = segs.last().copied().unwrap_or(0).max(cp.unwrap_or(0)) + 1;
        let file = new_segment(dir, next)?;
        Ok((
            Wal {
                dir: dir.to_path_buf(),
                seg: next,
                file,
                offset: HEADER_LEN as u64,
                segment_size,
                seg_max_t,
                broken: false,
            },
            replay,
        ))
    }

    /// Writes framed records and makes them durable. On failure the segment is cut back to where
    /// it was, so a later successful write never follows a torn record.
    pub fn write(&mut self, buf: &[u8], max_t: i64) -> io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        if self.offset > self.segment_size || self.broken {
            self.rotate()?;
            self.broken = false;
        }
        match self.file.write_all(buf).and_then(|_| self.file.sync_data()) {
            Ok(()) => {
                self.offset += buf.len() as u64;
                let m = self.seg_max_t.entry(self.seg).or_insert(i64::MIN);
                *m = (*m).max(max_t);
                Ok(())
            }
            Err(e) => {
                use std::io::Seek;
                let cut = self
                    .file
                    .set_len(self.offset)
                    .and_then(|_| self.file.seek(io::SeekFrom::Start(self.offset)));
                if cut.is_err() {
                    // The segment's end is unknown: the next write starts a new segment.
                    self.broken = true;
                }
                Err(e)
            }
        }
    }

    /// Closes the current segment and starts the next; returns the closed segment's number.
    pub fn rotate(&mut self) -> io::Result<u32> {
        let closed = self.seg;
        let file = new_segment(&self.dir, closed + 1)?;
        self.file = file;
        self.seg = closed + 1;
        self.offset = HEADER_LEN as u64;
        Ok(closed)
    }

    pub fn current_segment(&self) -> u32 {
        self.seg
    }

    /// The segments up to `upto` whose every sample is older than `before`.
    pub fn redundant_segments(&self, upto: u32, before: i64) -> Vec<u32> {
        self.seg_max_t
            .range(..=upto)
            .filter(|(_, t)| **t < before)
            .map(|(n, _)| *n)
            .collect()
    }

    pub fn forget_segments(&mut self, segs: &[u32]) {
        for s in segs {
            self.seg_max_t.remove(s);
        }
    }
}

/// Writes `records` (framed) as checkpoint `n` (atomically, via a temporary file), then removes
/// older checkpoints and the given segments. Runs off the writer thread.
pub fn write_checkpoint(
    dir: &Path,
    n: u32,
    records: &[u8],
    drop_segments: &[u32],
) -> io::Result<()> {
    let tmp = dir.join(format!("{}.tmp", checkpoint_name(n)));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(SEGMENT_MAGIC)?;
        f.write_all(&[SEGMENT_VERSION, 0, 0, 0])?;
        f.write_all(records)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, dir.join(checkpoint_name(n)))?;
    sync_dir(dir)?;
    for e in fs::read_dir(dir)?.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(c) = name
            .strip_prefix("checkpoint.")
            .and_then(|c| c.parse::<u32>().ok())
            && c < n
        {
            let _ = fs::remove_file(e.path());
        }
    }
    for s in drop_segments {
        let _ = fs::remove_file(dir.join(segment_name(*s)));
    }
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_records() -> Vec<u8> {
        let mut b = Vec::new();
        let l = Labels::from_pairs([("__name__", "up"), ("job", "a")]);
        encode_series(&mut b, &[(7, &l)]);
        let mut scratch = Vec::new();
        encode_samples(&mut b, &mut scratch, &[(7, 1000, 1.0), (7, 2000, f64::NAN)]);
        encode_cut(&mut b, 5000, 3);
        b
    }

    #[test]
    fn round_trip_and_torn_tails() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, r) = Wal::open(dir.path(), 1 << 20).unwrap();
        assert!(r.records.is_empty());
        let recs = sample_records();
        w.write(&recs, 2000).unwrap();
        w.write(&recs, 2000).unwrap();
        let seg = dir.path().join(segment_name(w.current_segment()));
        drop(w);
        // Tear the second copy.
        let len = fs::metadata(&seg).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(len - 5)
            .unwrap();
        let (w, r) = Wal::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(
            r.records.len(),
            5,
            "first copy whole, second cut after two records"
        );
        assert_eq!(r.repairs.len(), 1);
        drop(w);
        // Flip a byte in the first record: everything from it on is cut, nothing panics.
        let mut b = fs::read(&seg).unwrap();
        b[HEADER_LEN + 12] ^= 0xff;
        fs::write(&seg, &b).unwrap();
        let (_w, r) = Wal::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(r.records.len(), 0);
        // The cut segment, and the empty segment opened after it, which follows it.
        assert_eq!(r.repairs.len(), 2);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let recs = sample_records();
        let mut seg = SEGMENT_MAGIC.to_vec();
        seg.extend_from_slice(&[1, 0, 0, 0]);
        seg.extend_from_slice(&recs);
        for i in 0..seg.len() {
            for x in [0u8, 0xff, 0x80] {
                let mut b = seg.clone();
                b[i] = x;
                let _ = read_segment(&b);
                let _ = read_segment(&b[..i]);
            }
        }
        for typ in 0..8 {
            let _ = decode_record(typ, &recs);
        }
    }
}
