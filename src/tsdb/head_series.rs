//! The head's per-series storage: series slots in pages held in place, interned label strings,
//! and one series' samples (the open Gorilla chunk inside the series, sealed chunks and label ids
//! in the [`Arena`], out-of-order samples and the exemplar boxed together for the few that have
//! them). `head.rs` holds the index over them and the append and read paths.

use std::collections::HashMap;
use std::sync::Arc;

use super::arena::{Addr, Arena, NO_ADDR};
use super::codec;
use super::xor::XorChunk;

/// Sealed chunks are merged with the one before when that one holds no more samples (10 + 11 ->
/// 21 ...) up to this many samples, so a series holds few chunks and each sample is re-coded only
/// a few times. The open (Gorilla) chunk is sealed into the denser codec when its fixed buffer is
/// full ([`super::xor::OPEN_BYTES`]).
pub const MAX_SEALED_SAMPLES: usize = 512;

/// The latest exemplar of a series: what a chart links to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exemplar {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub value: f64,
    pub t: i64,
}

/// The head's series by id, in pages of [`Slots::PAGE`] held in place: no allocation and no
/// pointer per series, and growth never moves the series already there. Ids are not reused, so a
/// page whose series are all gone is freed ([`Slots::free_empty_pages`]): churn costs nothing once
/// a page's series have all ended.
#[derive(Default)]
pub(super) struct Slots {
    pub(super) pages: Vec<Box<[Option<MemSeries>]>>,
    pub(super) len: usize,
}

impl Slots {
    pub(super) const PAGE: usize = 1024;

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Slots allocated (used or not).
    pub(super) fn capacity(&self) -> usize {
        self.pages.iter().map(|p| p.len()).sum()
    }

    pub(super) fn get(&self, i: usize) -> Option<&Option<MemSeries>> {
        if i >= self.len {
            return None;
        }
        self.pages.get(i / Self::PAGE)?.get(i % Self::PAGE)
    }

    pub(super) fn get_mut(&mut self, i: usize) -> Option<&mut Option<MemSeries>> {
        if i >= self.len {
            return None;
        }
        self.pages.get_mut(i / Self::PAGE)?.get_mut(i % Self::PAGE)
    }

    /// Grows to `n` slots (never shrinks); new slots are empty.
    pub(super) fn grow_to(&mut self, n: usize) {
        while self.pages.len() * Self::PAGE < n {
            self.pages.push(Self::empty_page());
        }
        self.len = self.len.max(n);
    }

    pub(super) fn empty_page() -> Box<[Option<MemSeries>]> {
        (0..Self::PAGE).map(|_| None).collect()
    }

    /// Slot `i` (below [`Self::len`]), its page allocated again if it was freed.
    pub(super) fn slot_mut(&mut self, i: usize) -> &mut Option<MemSeries> {
        let page = &mut self.pages[i / Self::PAGE];
        if page.is_empty() {
            *page = Self::empty_page();
        }
        &mut page[i % Self::PAGE]
    }

    /// Frees every page that holds no series (a freed page is an empty slice).
    pub(super) fn free_empty_pages(&mut self) {
        for p in &mut self.pages {
            if !p.is_empty() && p.iter().all(|s| s.is_none()) {
                *p = Box::default();
            }
        }
    }

    /// Every slot in id order (a freed page's slots as empty ones).
    pub(super) fn iter(&self) -> impl Iterator<Item = &Option<MemSeries>> {
        static NONE: Option<MemSeries> = None;
        self.pages
            .iter()
            .flat_map(|p| {
                p.iter()
                    .chain(std::iter::repeat_n(&NONE, Self::PAGE - p.len()))
            })
            .take(self.len)
    }

    /// (id, slot) of every slot in an allocated page.
    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = (usize, &mut Option<MemSeries>)> {
        let len = self.len;
        self.pages
            .iter_mut()
            .enumerate()
            .flat_map(|(pi, p)| {
                p.iter_mut()
                    .enumerate()
                    .map(move |(j, s)| (pi * Self::PAGE + j, s))
            })
            .take_while(move |(i, _)| *i < len)
    }
}

/// What few series hold, boxed together (see [`MemSeries`]).
#[derive(Default)]
pub(super) struct Extra {
    /// Out-of-order samples, waiting for the next block.
    pub(super) ooo: Vec<(i64, f64)>,
    pub(super) exemplar: Option<Exemplar>,
}

/// Interned strings, ids dense from 0.
#[derive(Default)]
pub struct Symbols {
    pub(super) ids: HashMap<Arc<str>, u32>,
    pub(super) strs: Vec<Arc<str>>,
}

impl Symbols {
    pub fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let a: Arc<str> = Arc::from(s);
        let id = self.strs.len() as u32;
        self.strs.push(a.clone());
        self.ids.insert(a, id);
        id
    }

    pub fn get(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
    }

    pub fn str(&self, id: u32) -> &str {
        &self.strs[id as usize]
    }

    pub fn len(&self) -> usize {
        self.strs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.strs.is_empty()
    }
}

/// A series' label ids and sealed chunks in one [`Arena`] region: the (name, value) symbol ids
/// as little-endian u32s sorted by name, then the chunks oldest first,
/// `[uvarint len][codec chunk]...`.
#[derive(Clone, Copy)]
pub(super) struct Sealed {
    pub(super) at: Addr,
    /// Bytes used in the region.
    pub(super) len: u32,
    /// Where the chunks start (the label ids' bytes).
    pub(super) start: u16,
}

impl Sealed {
    /// A region holding `ids`; `None` when the arena is full or there are too many ids.
    pub(super) fn new(arena: &mut Arena, owner: u32, ids: &[u32]) -> Option<Sealed> {
        let start = u16::try_from(ids.len() * 4).ok()?;
        let at = arena.alloc(owner, start as usize)?;
        for (d, id) in arena.data_mut(at).chunks_exact_mut(4).zip(ids) {
            d.copy_from_slice(&id.to_le_bytes());
        }
        Some(Sealed {
            at,
            len: start as u32,
            start,
        })
    }

    /// (name, value) symbol ids.
    pub(super) fn label_ids<'a>(
        &self,
        arena: &'a Arena,
    ) -> impl Iterator<Item = (u32, u32)> + use<'a> {
        let b = arena
            .data(self.at)
            .get(..self.start as usize)
            .unwrap_or_default();
        b.chunks_exact(8).map(|p| {
            let id = |x: &[u8]| u32::from_le_bytes(x.try_into().unwrap_or_default());
            (id(&p[..4]), id(&p[4..]))
        })
    }

    pub(super) fn set_label_ids(&self, arena: &mut Arena, ids: &[u32]) {
        let b = arena.data_mut(self.at);
        for (d, id) in b[..self.start as usize].chunks_exact_mut(4).zip(ids) {
            d.copy_from_slice(&id.to_le_bytes());
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len <= self.start as u32
    }

    pub(super) fn bytes<'a>(&self, arena: &'a Arena) -> &'a [u8] {
        arena
            .data(self.at)
            .get(..self.len as usize)
            .unwrap_or_default()
    }

    /// (offset of the length prefix, chunk bytes) of each chunk.
    pub(super) fn chunks<'a>(
        &self,
        arena: &'a Arena,
    ) -> impl Iterator<Item = (usize, &'a [u8])> + use<'a> {
        let bytes = self.bytes(arena);
        let mut pos = self.start as usize;
        std::iter::from_fn(move || {
            let start = pos;
            let (len, n) = codec::get_uvarint(bytes.get(pos..)?)?;
            let data = bytes.get(pos + n..pos + n + len as usize)?;
            pos += n + len as usize;
            Some((start, data))
        })
    }

    pub(super) fn min_t(&self, arena: &Arena) -> Option<i64> {
        self.chunks(arena)
            .next()
            .and_then(|(_, d)| codec::first_t(d))
    }

    /// Keeps the first `keep` bytes and writes `samples` as a chunk after them; false (nothing
    /// changed) when the arena is full.
    pub(super) fn write(
        &mut self,
        arena: &mut Arena,
        owner: u32,
        keep: usize,
        samples: &[(i64, f64)],
    ) -> bool {
        let data = codec::encode(samples);
        let mut prefix = Vec::with_capacity(3);
        codec::put_uvarint(&mut prefix, data.len() as u64);
        let need = keep + prefix.len() + data.len();
        let Some(at) = arena.resize(self.at, owner, need, keep) else {
            return false;
        };
        let buf = arena.data_mut(at);
        buf[keep..keep + prefix.len()].copy_from_slice(&prefix);
        buf[keep + prefix.len()..need].copy_from_slice(&data);
        self.at = at;
        self.len = need as u32;
        true
    }

    pub(super) fn all(&self, arena: &Arena) -> Vec<(i64, f64)> {
        let mut out = Vec::new();
        for (_, d) in self.chunks(arena) {
            let _ = codec::decode_range_into(d, i64::MIN, i64::MAX, &mut out);
        }
        out
    }

    pub(super) fn free(&mut self, arena: &mut Arena) {
        arena.free(self.at);
        (self.at, self.len, self.start) = (NO_ADDR, 0, 0);
    }
}

/// A head series. Its sealed chunks live in the head's [`Arena`]; the open chunk is held in place.
pub struct MemSeries {
    /// Label ids and sealed chunks.
    pub(super) sealed: Sealed,
    /// Newest timestamp in the sealed chunks (`i64::MIN` when there are none).
    pub(super) sealed_max_t: i64,
    pub(super) open: XorChunk,
    /// Out-of-order samples and the exemplar, which most series never have: 8 bytes when absent.
    pub(super) extra: Option<Box<Extra>>,
    /// Whether the WAL holds this series' record (so samples for it can be replayed).
    pub logged: bool,
}

impl MemSeries {
    pub(super) fn ooo(&self) -> &[(i64, f64)] {
        self.extra.as_ref().map_or(&[], |e| &e.ooo)
    }

    pub(super) fn last_t(&self) -> Option<i64> {
        self.open
            .last_t()
            .or_else(|| (!self.sealed.is_empty()).then_some(self.sealed_max_t))
    }

    pub(super) fn is_empty(&self) -> bool {
        self.open.is_empty() && self.sealed.is_empty() && self.ooo().is_empty()
    }

    /// Appends an in-order sample, sealing the open chunk first when it is full; false (nothing
    /// changed) when the sealed chunks' arena is full.
    pub(super) fn push(&mut self, arena: &mut Arena, owner: u32, t: i64, v: f64) -> bool {
        if self.open.append(t, v) {
            return true;
        }
        if !self.seal(arena, owner) {
            return false;
        }
        let fits = self.open.append(t, v);
        debug_assert!(fits, "an empty open chunk takes any sample");
        fits
    }

    /// Seals the open chunk. Binary merging: while the previous sealed chunk holds no more
    /// samples than the new one, it is folded in.
    pub(super) fn seal(&mut self, arena: &mut Arena, owner: u32) -> bool {
        let mut samples = self.open.samples();
        let Some(&(last, _)) = samples.last() else {
            return true;
        };
        let mut keep = self.sealed.len as usize;
        let starts: Vec<(usize, &[u8])> = self.sealed.chunks(arena).collect();
        for &(start, prev) in starts.iter().rev() {
            let n = codec::count(prev);
            if n > samples.len() || n + samples.len() > MAX_SEALED_SAMPLES {
                break;
            }
            let Ok(mut merged) = codec::decode(prev) else {
                break;
            };
            merged.extend_from_slice(&samples);
            samples = merged;
            keep = start;
        }
        if !self.sealed.write(arena, owner, keep, &samples) {
            return false;
        }
        self.sealed_max_t = self.sealed_max_t.max(last);
        self.open = XorChunk::new();
        true
    }

    /// In-order samples in `[mint, maxt]`, then out-of-order ones, merged and deduplicated.
    pub(super) fn samples(&self, arena: &Arena, mint: i64, maxt: i64) -> Vec<(i64, f64)> {
        let mut out = Vec::new();
        if !self.sealed.is_empty() && self.sealed_max_t >= mint {
            // A chunk ends before the next one starts: one whose successor starts at or before
            // `mint` holds nothing in range and is not decoded.
            let mut chunks = self.sealed.chunks(arena).peekable();
            while let Some((_, c)) = chunks.next() {
                let Some(first) = codec::first_t(c) else {
                    continue;
                };
                if first > maxt {
                    break;
                }
                if chunks
                    .peek()
                    .and_then(|(_, next)| codec::first_t(next))
                    .is_some_and(|f| f <= mint)
                {
                    continue;
                }
                // A corrupt chunk contributes nothing (the arena is in memory; never seen).
                let _ = codec::decode_range_into(c, mint, maxt, &mut out);
            }
        }
        if self
            .open
            .first_t()
            .is_some_and(|f| f <= maxt && self.open.last_t().unwrap_or(f) >= mint)
        {
            out.extend(
                self.open
                    .samples()
                    .into_iter()
                    .filter(|s| s.0 >= mint && s.0 <= maxt),
            );
        }
        let ooo = self.ooo();
        if !ooo.is_empty() {
            let before = out.len();
            out.extend(ooo.iter().copied().filter(|s| s.0 >= mint && s.0 <= maxt));
            if out.len() > before {
                sort_dedup(&mut out);
            }
        }
        out
    }

    /// Heap bytes outside the series' slot and the arena.
    pub(super) fn heap_bytes(&self) -> usize {
        self.extra
            .as_ref()
            .map_or(0, |e| std::mem::size_of::<Extra>() + e.ooo.capacity() * 16)
    }

    pub(super) fn overlaps(&self, arena: &Arena, mint: i64, maxt: i64) -> bool {
        let first = self.sealed.min_t(arena).or_else(|| self.open.first_t());
        let last = self.last_t();
        let in_order = matches!((first, last), (Some(f), Some(l)) if f <= maxt && l >= mint);
        in_order || self.ooo().iter().any(|s| s.0 >= mint && s.0 <= maxt)
    }
}

/// Sorts by timestamp and keeps the first sample of each timestamp (in-order data comes first).
pub fn sort_dedup(v: &mut Vec<(i64, f64)>) {
    v.sort_by_key(|s| s.0);
    v.dedup_by_key(|s| s.0);
}
