//! Immutable on-disk blocks: a directory per time range holding `meta.json`, `chunks` (the
//! samples, coded by [`super::codec`]) and `index` (symbols, series with their chunk references,
//! postings). Written whole into a temporary directory and renamed into place; read through
//! memory maps with every offset bounds-checked, so a damaged file is an error, never a crash.
//! Byte layout in `FORMAT.md`.

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use serde::{Deserialize, Serialize};

use super::codec::{self, get_uvarint, put_uvarint, put_varint, unzigzag};
use super::labels::{Label, Labels, MatchOp, Matcher};

pub const INDEX_MAGIC: &[u8; 4] = b"SLIX";
pub const CHUNKS_MAGIC: &[u8; 4] = b"SLCH";
pub const FORMAT_VERSION: u8 = 1;
/// Samples per persisted chunk at most.
pub const MAX_CHUNK_SAMPLES: usize = 4096;
const TOC_LEN: usize = 5 * 8 + 4;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BlockMeta {
    pub version: u32,
    /// Sequence number, unique in this store, also the directory name.
    pub seq: u64,
    #[serde(rename = "minTime")]
    pub min_t: i64,
    #[serde(rename = "maxTime")]
    pub max_t: i64,
    pub stats: BlockStats,
    /// 1 for blocks cut from the head, +1 for each compaction.
    pub level: u32,
    /// The blocks this one replaced (itself for a cut block).
    pub sources: Vec<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct BlockStats {
    #[serde(rename = "numSamples")]
    pub samples: u64,
    #[serde(rename = "numSeries")]
    pub series: u64,
    #[serde(rename = "numChunks")]
    pub chunks: u64,
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("block {dir}: {source}")]
    Io { dir: PathBuf, source: io::Error },
    #[error("block {dir}: corrupt: {why}")]
    Corrupt { dir: PathBuf, why: String },
}

pub fn block_dir_name(seq: u64) -> String {
    format!("{seq:010}")
}

/// Writes a block of `series` (sorted by labels) into `parent/<seq>`; `samples_of(i)` gives the
/// samples of `series[i]` (sorted, deduplicated). Series without samples are left out. Returns
/// `None` if no series had samples (no block is written).
pub fn write_block(
    parent: &Path,
    seq: u64,
    level: u32,
    sources: Vec<u64>,
    series: &[Labels],
    mut samples_of: impl FnMut(usize) -> Vec<(i64, f64)>,
) -> io::Result<Option<BlockMeta>> {
    let final_dir = parent.join(block_dir_name(seq));
    let tmp = parent.join(format!("{}.tmp", block_dir_name(seq)));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp)?;
    let result = (|| -> io::Result<Option<BlockMeta>> {
        let mut chunks = BufWriter::with_capacity(1 << 20, File::create(tmp.join("chunks"))?);
        chunks.write_all(CHUNKS_MAGIC)?;
        chunks.write_all(&[FORMAT_VERSION, 0, 0, 0])?;
        let mut chunk_off = 8u64;

        // Symbols first: every string of every label set, sorted.
        let mut set: BTreeSet<&str> = BTreeSet::new();
        for l in series {
            for lab in l.iter() {
                set.insert(&lab.name);
                set.insert(&lab.value);
            }
        }
        let symbols: Vec<&str> = set.into_iter().collect();
        let sym_id: HashMap<&str, u32> = symbols
            .iter()
            .enumerate()
            .map(|(i, s)| (*s, i as u32))
            .collect();

        let mut series_data = Vec::new();
        let mut series_offs: Vec<u32> = Vec::new();
        let mut postings: HashMap<(u32, u32), Vec<u32>> = HashMap::new();
        let mut stats = BlockStats::default();
        let (mut min_t, mut max_t) = (i64::MAX, i64::MIN);
        for (i, l) in series.iter().enumerate() {
            let samples = samples_of(i);
            if samples.is_empty() {
                continue;
            }
            let ord = series_offs.len() as u32;
            series_offs.push(series_data.len() as u32);
            put_uvarint(&mut series_data, l.len() as u64);
            for lab in l.iter() {
                let (n, v) = (sym_id[lab.name.as_str()], sym_id[lab.value.as_str()]);
                put_uvarint(&mut series_data, n as u64);
                put_uvarint(&mut series_data, v as u64);
                postings.entry((n, v)).or_default().push(ord);
            }
            let parts: Vec<&[(i64, f64)]> = samples.chunks(MAX_CHUNK_SAMPLES).collect();
            put_uvarint(&mut series_data, parts.len() as u64);
            for part in parts {
                let data = codec::encode(part);
                let (a, b) = (part[0].0, part[part.len() - 1].0);
                put_varint(&mut series_data, a);
                put_uvarint(&mut series_data, (b - a) as u64);
                put_uvarint(&mut series_data, chunk_off);
                put_uvarint(&mut series_data, data.len() as u64);
                chunks.write_all(&data)?;
                chunks.write_all(&crc32fast::hash(&data).to_le_bytes())?;
                chunk_off += data.len() as u64 + 4;
                stats.chunks += 1;
                min_t = min_t.min(a);
                max_t = max_t.max(b);
            }
            stats.samples += samples.len() as u64;
            stats.series += 1;
        }
        chunks.flush()?;
        chunks.get_ref().sync_all()?;
        drop(chunks);
        if stats.series == 0 {
            return Ok(None);
        }

        let mut ix = Vec::with_capacity(series_data.len() + symbols.len() * 16);
        ix.extend_from_slice(INDEX_MAGIC);
        ix.extend_from_slice(&[FORMAT_VERSION, 0, 0, 0]);
        let sym_off = ix.len() as u64;
        ix.extend_from_slice(&(symbols.len() as u32).to_le_bytes());
        let mut strings = Vec::new();
        for s in &symbols {
            ix.extend_from_slice(&(strings.len() as u32).to_le_bytes());
            put_uvarint(&mut strings, s.len() as u64);
            strings.extend_from_slice(s.as_bytes());
        }
        ix.extend_from_slice(&strings);
        let series_off = ix.len() as u64;
        ix.extend_from_slice(&(series_offs.len() as u32).to_le_bytes());
        for o in &series_offs {
            ix.extend_from_slice(&o.to_le_bytes());
        }
        ix.extend_from_slice(&series_data);
        let mut entries: Vec<((u32, u32), Vec<u32>)> = postings.into_iter().collect();
        entries.sort_unstable_by_key(|e| e.0);
        let mut pdata = Vec::new();
        let table_off = ix.len() as u64;
        ix.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        for ((n, v), ords) in &entries {
            ix.extend_from_slice(&n.to_le_bytes());
            ix.extend_from_slice(&v.to_le_bytes());
            ix.extend_from_slice(&(pdata.len() as u32).to_le_bytes());
            ix.extend_from_slice(&(ords.len() as u32).to_le_bytes());
            let mut prev = 0u32;
            for &o in ords {
                put_uvarint(&mut pdata, (o - prev) as u64);
                prev = o;
            }
        }
        let pdata_off = ix.len() as u64;
        ix.extend_from_slice(&pdata);
        let end = ix.len() as u64;
        let mut toc = Vec::with_capacity(TOC_LEN);
        for v in [sym_off, series_off, table_off, pdata_off, end] {
            toc.extend_from_slice(&v.to_le_bytes());
        }
        let crc = crc32fast::hash(&toc);
        toc.extend_from_slice(&crc.to_le_bytes());
        ix.extend_from_slice(&toc);
        let mut f = File::create(tmp.join("index"))?;
        f.write_all(&ix)?;
        f.sync_all()?;

        stats.bytes = chunk_off + ix.len() as u64;
        let meta = BlockMeta {
            version: FORMAT_VERSION as u32,
            seq,
            min_t,
            max_t,
            stats,
            level,
            sources,
        };
        let mut f = File::create(tmp.join("meta.json"))?;
        f.write_all(&serde_json::to_vec_pretty(&meta).map_err(io::Error::other)?)?;
        f.sync_all()?;
        File::open(&tmp)?.sync_all()?;
        Ok(Some(meta))
    })();
    match result {
        Ok(Some(meta)) => {
            fs::rename(&tmp, &final_dir)?;
            File::open(parent)?.sync_all()?;
            Ok(Some(meta))
        }
        other => {
            let _ = fs::remove_dir_all(&tmp);
            other
        }
    }
}

/// A label set with samples.
pub type SeriesSamples = (Labels, Vec<(i64, f64)>);

/// A chunk reference inside a block.
#[derive(Debug, Clone, Copy)]
pub struct ChunkRef {
    pub min_t: i64,
    pub max_t: i64,
    off: u64,
    len: u64,
}

/// An open block.
pub struct Block {
    pub dir: PathBuf,
    pub meta: BlockMeta,
    index: Mmap,
    chunks: Mmap,
    sym_count: usize,
    sym_table: usize,
    sym_strings: usize,
    series_count: usize,
    series_table: usize,
    series_data: usize,
    /// (name sym, value sym, offset into postings data, count), sorted.
    postings: Vec<(u32, u32, u32, u32)>,
    pdata: usize,
    pdata_end: usize,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

impl Block {
    pub fn open(dir: &Path) -> Result<Block, BlockError> {
        let io_err = |source| BlockError::Io {
            dir: dir.to_path_buf(),
            source,
        };
        let corrupt = |why: &str| BlockError::Corrupt {
            dir: dir.to_path_buf(),
            why: why.to_string(),
        };
        let meta: BlockMeta =
            serde_json::from_slice(&fs::read(dir.join("meta.json")).map_err(io_err)?)
                .map_err(|e| corrupt(&format!("meta.json: {e}")))?;
        let map = |name: &str| -> Result<Mmap, BlockError> {
            let f = File::open(dir.join(name)).map_err(io_err)?;
            // SAFETY: block files are written whole, fsynced and renamed into place before they
            // are opened, and never modified afterwards; deletion keeps existing maps valid.
            unsafe { Mmap::map(&f) }.map_err(io_err)
        };
        let index = map("index")?;
        let chunks = map("chunks")?;
        if index.len() < 8 + TOC_LEN || &index[..4] != INDEX_MAGIC || index[4] != FORMAT_VERSION {
            return Err(corrupt("index header"));
        }
        if chunks.len() < 8 || &chunks[..4] != CHUNKS_MAGIC || chunks[4] != FORMAT_VERSION {
            return Err(corrupt("chunks header"));
        }
        let toc_at = index.len() - TOC_LEN;
        let toc = &index[toc_at..];
        if crc32fast::hash(&toc[..40]) != u32_at(toc, 40).unwrap_or(0) {
            return Err(corrupt("index table of contents checksum"));
        }
        let offs: Vec<usize> = (0..5)
            .map(|i| u64_at(toc, i * 8).unwrap_or(u64::MAX) as usize)
            .collect();
        if !offs.windows(2).all(|w| w[0] <= w[1]) || offs[4] != toc_at {
            return Err(corrupt("index section offsets"));
        }
        let (sym_off, series_off, table_off, pdata_off) = (offs[0], offs[1], offs[2], offs[3]);
        let sym_count = u32_at(&index, sym_off).ok_or_else(|| corrupt("symbols"))? as usize;
        let series_count = u32_at(&index, series_off).ok_or_else(|| corrupt("series"))? as usize;
        let n_post = u32_at(&index, table_off).ok_or_else(|| corrupt("postings"))? as usize;
        if sym_off + 4 + sym_count * 4 > series_off
            || series_off + 4 + series_count * 4 > table_off
            || table_off + 4 + n_post * 16 > pdata_off
        {
            return Err(corrupt("section sizes"));
        }
        let mut postings = Vec::with_capacity(n_post);
        for i in 0..n_post {
            let at = table_off + 4 + i * 16;
            let g = |k: usize| u32_at(&index, at + k * 4).unwrap_or(0);
            postings.push((g(0), g(1), g(2), g(3)));
        }
        Ok(Block {
            dir: dir.to_path_buf(),
            meta,
            sym_count,
            sym_table: sym_off + 4,
            sym_strings: sym_off + 4 + sym_count * 4,
            series_count,
            series_table: series_off + 4,
            series_data: series_off + 4 + series_count * 4,
            postings,
            pdata: pdata_off,
            pdata_end: toc_at,
            index,
            chunks,
        })
    }

    fn corrupt(&self, why: &str) -> BlockError {
        BlockError::Corrupt {
            dir: self.dir.clone(),
            why: why.to_string(),
        }
    }

    pub fn symbol(&self, id: u32) -> Option<&str> {
        if id as usize >= self.sym_count {
            return None;
        }
        let off = u32_at(&self.index, self.sym_table + id as usize * 4)? as usize;
        let at = self.sym_strings.checked_add(off)?;
        let (len, n) = get_uvarint(self.index.get(at..)?)?;
        let start = at.checked_add(n)?;
        let s = self
            .index
            .get(start..start.checked_add(usize::try_from(len).ok()?)?)?;
        std::str::from_utf8(s).ok()
    }

    fn find_symbol(&self, s: &str) -> Option<u32> {
        let (mut lo, mut hi) = (0usize, self.sym_count);
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.symbol(mid as u32)?.cmp(s) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid as u32),
            }
        }
        None
    }

    /// Labels and chunk references of series `ord`.
    pub fn series(&self, ord: u32) -> Result<(Labels, Vec<ChunkRef>), BlockError> {
        let bad = || self.corrupt("series entry");
        if ord as usize >= self.series_count {
            return Err(bad());
        }
        let off = u32_at(&self.index, self.series_table + ord as usize * 4).ok_or_else(bad)?;
        let mut pos = self.series_data + off as usize;
        let b: &[u8] = &self.index;
        let mut uv = || -> Result<u64, BlockError> {
            let (v, n) = get_uvarint(b.get(pos..).ok_or_else(bad)?).ok_or_else(bad)?;
            pos += n;
            Ok(v)
        };
        let npairs = uv()? as usize;
        if npairs > 1024 {
            return Err(bad());
        }
        let mut labels = Vec::with_capacity(npairs);
        for _ in 0..npairs {
            let n = uv()? as u32;
            let v = uv()? as u32;
            labels.push(Label {
                name: self.symbol(n).ok_or_else(bad)?.to_string(),
                value: self.symbol(v).ok_or_else(bad)?.to_string(),
            });
        }
        if !labels.windows(2).all(|w| w[0].name < w[1].name) {
            return Err(bad());
        }
        let nchunks = uv()? as usize;
        if nchunks > self.chunks.len() {
            return Err(bad());
        }
        let mut refs = Vec::with_capacity(nchunks);
        for _ in 0..nchunks {
            let min_t = unzigzag(uv()?);
            let max_t = min_t.wrapping_add(uv()? as i64);
            let off = uv()?;
            let len = uv()?;
            refs.push(ChunkRef {
                min_t,
                max_t,
                off,
                len,
            });
        }
        Ok((Labels::from_sorted(labels), refs))
    }

    pub fn chunk(&self, r: &ChunkRef) -> Result<Vec<(i64, f64)>, BlockError> {
        let mut out = Vec::new();
        self.chunk_range_into(r, i64::MIN, i64::MAX, &mut out)?;
        Ok(out)
    }

    /// Appends the samples of one chunk in `[mint, maxt]` to `out`, checksum checked.
    fn chunk_range_into(
        &self,
        r: &ChunkRef,
        mint: i64,
        maxt: i64,
        out: &mut Vec<(i64, f64)>,
    ) -> Result<(), BlockError> {
        let bad = || self.corrupt("chunk reference out of range");
        let start = r.off as usize;
        let end = start.checked_add(r.len as usize).ok_or_else(bad)?;
        let data = self.chunks.get(start..end).ok_or_else(bad)?;
        let crc = u32_at(&self.chunks, end).ok_or_else(bad)?;
        if crc32fast::hash(data) != crc {
            return Err(self.corrupt("chunk checksum mismatch"));
        }
        codec::decode_range_into(data, mint, maxt, out).map_err(|e| self.corrupt(&e.to_string()))
    }

    fn postings_list(&self, e: &(u32, u32, u32, u32)) -> Vec<u32> {
        let mut out = Vec::with_capacity(e.3 as usize);
        let mut pos = self.pdata + e.2 as usize;
        let mut prev = 0u32;
        for _ in 0..e.3 {
            let Some(b) = self.index.get(pos..self.pdata_end) else {
                break;
            };
            let Some((d, n)) = get_uvarint(b) else { break };
            pos += n;
            prev = prev.wrapping_add(d as u32);
            out.push(prev);
        }
        out
    }

    fn entries_for_name(&self, n: u32) -> &[(u32, u32, u32, u32)] {
        let lo = self.postings.partition_point(|e| e.0 < n);
        let hi = self.postings.partition_point(|e| e.0 <= n);
        &self.postings[lo..hi]
    }

    /// Series ordinals matching every matcher, ascending.
    pub fn matching(&self, ms: &[Matcher]) -> Vec<u32> {
        let mut acc: Option<Vec<u32>> = None;
        let mut subtract: Vec<Vec<u32>> = Vec::new();
        for m in ms {
            let name = self.find_symbol(&m.name);
            if m.matches_empty() {
                let Some(n) = name else { continue };
                let mut bad = Vec::new();
                for e in self.entries_for_name(n) {
                    if !m.matches(self.symbol(e.1).unwrap_or("")) {
                        bad.extend(self.postings_list(e));
                    }
                }
                bad.sort_unstable();
                subtract.push(bad);
                continue;
            }
            let Some(n) = name else { return Vec::new() };
            let mut ids = Vec::new();
            if m.op == MatchOp::Equal {
                if let Some(v) = self.find_symbol(&m.value)
                    && let Ok(i) = self.postings.binary_search_by(|e| (e.0, e.1).cmp(&(n, v)))
                {
                    ids = self.postings_list(&self.postings[i]);
                }
            } else {
                for e in self.entries_for_name(n) {
                    if m.matches(self.symbol(e.1).unwrap_or("")) {
                        ids.extend(self.postings_list(e));
                    }
                }
                ids.sort_unstable();
                ids.dedup();
            }
            acc = Some(match acc {
                None => ids,
                Some(a) => a
                    .into_iter()
                    .filter(|x| ids.binary_search(x).is_ok())
                    .collect(),
            });
        }
        let mut out = acc.unwrap_or_else(|| (0..self.series_count as u32).collect());
        for s in subtract {
            out.retain(|x| s.binary_search(x).is_err());
        }
        out
    }

    /// Labels and samples in `[mint, maxt]` of the given series.
    pub fn read(
        &self,
        ords: &[u32],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<SeriesSamples>, BlockError> {
        let mut out = Vec::new();
        for &o in ords {
            let (l, refs) = self.series(o)?;
            let mut samples = Vec::new();
            for r in refs.iter().filter(|r| r.max_t >= mint && r.min_t <= maxt) {
                self.chunk_range_into(r, mint, maxt, &mut samples)?;
            }
            if !samples.is_empty() {
                out.push((l, samples));
            }
        }
        Ok(out)
    }

    /// Every sample of series `ord` (for compaction).
    pub fn all_samples(&self, ord: u32) -> Result<(Labels, Vec<(i64, f64)>), BlockError> {
        let (l, refs) = self.series(ord)?;
        let mut samples = Vec::new();
        for r in &refs {
            self.chunk_range_into(r, i64::MIN, i64::MAX, &mut samples)?;
        }
        Ok((l, samples))
    }

    pub fn num_series(&self) -> u32 {
        self.series_count as u32
    }

    /// Label sets of the given series with a chunk overlapping `[mint, maxt]`.
    pub fn series_labels(
        &self,
        ords: &[u32],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<Labels>, BlockError> {
        let mut out = Vec::new();
        for &o in ords {
            let (l, refs) = self.series(o)?;
            if refs.iter().any(|r| r.max_t >= mint && r.min_t <= maxt) {
                out.push(l);
            }
        }
        Ok(out)
    }

    pub fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        self.meta.max_t >= mint && self.meta.min_t <= maxt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_open_select() {
        let dir = tempfile::tempdir().unwrap();
        let series: Vec<Labels> = (0..50)
            .map(|i| {
                Labels::from_pairs([
                    ("__name__", if i % 2 == 0 { "a" } else { "b" }),
                    ("i", &*i.to_string()),
                ])
            })
            .collect();
        let mut sorted = series.clone();
        sorted.sort();
        let meta = write_block(dir.path(), 1, 1, vec![1], &sorted, |i| {
            (0..5000)
                .map(|t| (t * 1000, (t + i as i64) as f64))
                .collect()
        })
        .unwrap()
        .unwrap();
        assert_eq!(meta.stats.samples, 250_000);
        let b = Block::open(&dir.path().join(block_dir_name(1))).unwrap();
        let ords = b.matching(&[Matcher::eq("__name__", "a")]);
        assert_eq!(ords.len(), 25);
        let got = b.read(&ords, 10_000, 19_000).unwrap();
        assert_eq!(got.len(), 25);
        assert!(
            got.iter()
                .all(|(l, s)| l.metric_name() == Some("a") && s.len() == 10)
        );
        let re = Matcher::new(MatchOp::Regex, "i", "1.").unwrap();
        assert_eq!(b.matching(&[re]).len(), 10);
        let ne = Matcher::new(MatchOp::NotEqual, "__name__", "a").unwrap();
        assert_eq!(b.matching(&[ne]).len(), 25);
    }

    #[test]
    fn damaged_index_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let l = vec![Labels::from_pairs([("__name__", "a")])];
        write_block(dir.path(), 2, 1, vec![2], &l, |_| vec![(1, 1.0), (2, 2.0)]).unwrap();
        let d = dir.path().join(block_dir_name(2));
        let ix = d.join("index");
        let good = fs::read(&ix).unwrap();
        for i in 0..good.len() {
            let mut b = good.clone();
            b[i] ^= 0x5a;
            fs::write(&ix, &b).unwrap();
            if let Ok(blk) = Block::open(&d) {
                let ords = blk.matching(&[Matcher::eq("__name__", "a")]);
                let _ = blk.read(&ords, 0, 10);
            }
        }
    }
}
