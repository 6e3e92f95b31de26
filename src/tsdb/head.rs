//! The head: every series that has had samples since the last block was cut, its label set
//! interned as symbol ids, its recent samples in compressed chunks (an open Gorilla chunk held in
//! the series that takes appends, sealed chunks re-coded by [`super::codec`] in the chunk
//! [`Arena`] beside the label ids), its out-of-order samples, and its latest exemplar; plus the series index (label hash -> id, inverted postings). The head does not
//! log or persist anything: the WAL (`wal.rs`) and blocks (`block.rs`) do, driven by `mod.rs`.

use std::collections::HashMap;

use super::arena::Arena;
use super::codec;
pub use super::head_series::{Exemplar, MAX_SEALED_SAMPLES, MemSeries, Symbols, sort_dedup};
use super::head_series::{Sealed, Slots};
use super::labels::{Label, Labels, MatchOp, Matcher};
use super::xor::XorChunk;

/// Prometheus's staleness marker: a NaN with this exact bit pattern.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

pub fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// What happened to one appended sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    /// Stored (and to be logged).
    Appended,
    /// The same timestamp and value as a stored sample: nothing to store, but still acknowledged
    /// (and logged, so a retried export is durable even if its first attempt's log write failed).
    Duplicate,
    /// Same timestamp, different value: refused, as Prometheus does.
    Conflict,
    /// Older than the out-of-order window allows.
    TooOld,
    /// The head's chunk memory ([`Arena`], 16 GiB) is full.
    Full,
}

pub struct Head {
    pub syms: Symbols,
    series: Slots,
    /// Every series' sealed chunks.
    arena: Arena,
    by_hash: HashMap<u64, u32>,
    /// Label-set hashes shared by more than one series (rare).
    collisions: HashMap<u64, Vec<u32>>,
    /// Senders' keys for series (see [`super::Batch`]); entries go with their series.
    by_key: HashMap<u128, u32>,
    postings: HashMap<u32, HashMap<u32, Vec<u32>>>,
    live: usize,
    /// In-order samples must be at or after this (the end of the last cut block).
    pub min_valid_t: i64,
    /// The newest sample timestamp seen.
    pub max_t: i64,
    /// The oldest in-order sample time (kept up to date on append, recomputed on truncation).
    min_t_cache: Option<i64>,
    ooo_window_ms: i64,
    /// Metric metadata: name -> (type, help, unit), as last reported.
    pub metadata: HashMap<String, Metadata>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Metadata {
    #[serde(rename = "type")]
    pub kind: String,
    pub help: String,
    pub unit: String,
}

impl Head {
    pub fn new(ooo_window_ms: i64) -> Head {
        Head {
            syms: Symbols::default(),
            series: Slots::default(),
            arena: Arena::default(),
            by_hash: HashMap::new(),
            collisions: HashMap::new(),
            by_key: HashMap::new(),
            postings: HashMap::new(),
            live: 0,
            min_valid_t: i64::MIN,
            max_t: i64::MIN,
            min_t_cache: None,
            ooo_window_ms,
            metadata: HashMap::new(),
        }
    }

    pub fn num_series(&self) -> usize {
        self.live
    }

    pub fn next_id(&self) -> u32 {
        self.series.len() as u32
    }

    fn same_labels(&self, id: u32, l: &Labels) -> bool {
        let Some(s) = self.series.get(id as usize).and_then(|s| s.as_ref()) else {
            return false;
        };
        s.sealed.start as usize == l.len() * 8
            && l.iter()
                .zip(s.sealed.label_ids(&self.arena))
                .all(|(lab, (n, v))| self.syms.str(n) == lab.name && self.syms.str(v) == lab.value)
    }

    /// Remembers a sender's key for series `id`.
    pub fn register_key(&mut self, key: u128, id: u32) {
        self.by_key.insert(key, id);
    }

    /// The series a sender's key names, if the head still has it.
    pub fn by_key(&self, key: u128) -> Option<u32> {
        self.by_key.get(&key).copied()
    }

    /// The id of a series with exactly these labels.
    pub fn lookup(&self, l: &Labels, hash: u64) -> Option<u32> {
        if let Some(&id) = self.by_hash.get(&hash)
            && self.same_labels(id, l)
        {
            return Some(id);
        }
        self.collisions
            .get(&hash)?
            .iter()
            .copied()
            .find(|&id| self.same_labels(id, l))
    }

    /// Adds a series under `id` (a fresh id from [`Self::next_id`], or the WAL's id on replay);
    /// false (nothing added) when the chunk arena is full or there are more than
    /// [`super::labels::MAX_LABELS`] labels.
    #[must_use]
    pub fn create(&mut self, id: u32, l: &Labels, hash: u64, logged: bool) -> bool {
        if l.len() > super::labels::MAX_LABELS {
            return false;
        }
        let mut syms = Vec::with_capacity(l.len() * 2);
        for lab in l.iter() {
            syms.push(self.syms.intern(&lab.name));
            syms.push(self.syms.intern(&lab.value));
        }
        let Some(sealed) = Sealed::new(&mut self.arena, id, &syms) else {
            return false;
        };
        for pair in syms.chunks_exact(2) {
            let p = self
                .postings
                .entry(pair[0])
                .or_default()
                .entry(pair[1])
                .or_default();
            if p.last().is_none_or(|&last| last < id) {
                p.push(id);
            } else if let Err(pos) = p.binary_search(&id) {
                p.insert(pos, id);
            }
        }
        if self.series.len() <= id as usize {
            self.series.grow_to(id as usize + 1);
        }
        let slot = self.series.slot_mut(id as usize);
        match slot {
            Some(old) => old.sealed.free(&mut self.arena),
            None => self.live += 1,
        }
        *slot = Some(MemSeries {
            sealed,
            sealed_max_t: i64::MIN,
            open: XorChunk::new(),
            extra: None,
            logged,
        });
        match self.by_hash.get(&hash) {
            Some(&other) if other != id => self.collisions.entry(hash).or_default().push(id),
            _ => {
                self.by_hash.insert(hash, id);
            }
        }
        true
    }

    pub fn exists(&self, id: u32) -> bool {
        self.series.get(id as usize).is_some_and(|s| s.is_some())
    }

    pub fn series_mut(&mut self, id: u32) -> Option<&mut MemSeries> {
        self.series.get_mut(id as usize)?.as_mut()
    }

    pub fn labels_of(&self, id: u32) -> Option<Labels> {
        let s = self.series.get(id as usize)?.as_ref()?;
        Some(self.labels_from_syms(s))
    }

    fn labels_from_syms(&self, s: &MemSeries) -> Labels {
        Labels::from_sorted(
            s.sealed
                .label_ids(&self.arena)
                .map(|(n, v)| Label {
                    name: self.syms.str(n).to_string(),
                    value: self.syms.str(v).to_string(),
                })
                .collect(),
        )
    }

    /// Appends one sample to series `id`.
    pub fn append(&mut self, id: u32, t: i64, v: f64) -> AppendOutcome {
        let min_valid = self.min_valid_t;
        let ooo_floor = self.max_t.saturating_sub(self.ooo_window_ms);
        let Some(s) = self.series.get_mut(id as usize).and_then(|s| s.as_mut()) else {
            return AppendOutcome::TooOld;
        };
        match s.last_t() {
            Some(last) if t == last => {
                return if s.open.last_value().map(f64::to_bits) == Some(v.to_bits())
                    || s.open.is_empty()
                {
                    // A sealed chunk's last value is not at hand cheaply: equal timestamps after a
                    // seal are rare and treated as duplicates.
                    AppendOutcome::Duplicate
                } else {
                    AppendOutcome::Conflict
                };
            }
            Some(last) if t < last => {}
            _ if t >= min_valid => {
                if !s.push(&mut self.arena, id, t, v) {
                    return AppendOutcome::Full;
                }
                if t > self.max_t {
                    self.max_t = t;
                }
                if self.min_t_cache.is_none_or(|m| t < m) {
                    self.min_t_cache = Some(t);
                }
                self.clean_arena();
                return AppendOutcome::Appended;
            }
            _ => {}
        }
        // Out of order.
        if t < ooo_floor || self.ooo_window_ms == 0 && t < min_valid {
            return AppendOutcome::TooOld;
        }
        let ooo = &mut s.extra.get_or_insert_with(Default::default).ooo;
        if let Some(&(_, old)) = ooo.iter().find(|x| x.0 == t) {
            return if old.to_bits() == v.to_bits() {
                AppendOutcome::Duplicate
            } else {
                AppendOutcome::Conflict
            };
        }
        ooo.push((t, v));
        AppendOutcome::Appended
    }

    pub fn set_exemplar(&mut self, id: u32, e: Exemplar) {
        if let Some(s) = self.series_mut(id)
            && s.extra
                .as_ref()
                .and_then(|x| x.exemplar.as_ref())
                .is_none_or(|old| old.t <= e.t)
        {
            s.extra.get_or_insert_with(Default::default).exemplar = Some(e);
        }
    }

    /// Series ids matching every matcher (at least one matcher must not match the empty string
    /// for the result to be narrower than "all series").
    pub fn matching(&self, ms: &[Matcher]) -> Vec<u32> {
        let mut acc: Option<Vec<u32>> = None;
        let mut subtract: Vec<Vec<u32>> = Vec::new();
        for m in ms {
            let name = self.syms.get(&m.name);
            if m.matches_empty() {
                // Selects series without the label, minus those whose value fails.
                let Some(n) = name else { continue };
                let mut bad: Vec<u32> = Vec::new();
                for (pv, ids) in self.postings.get(&n).into_iter().flatten() {
                    if !m.matches(self.syms.str(*pv)) {
                        bad.extend_from_slice(ids);
                    }
                }
                bad.sort_unstable();
                subtract.push(bad);
                continue;
            }
            let Some(n) = name else { return Vec::new() };
            let mut ids: Vec<u32> = match m.op {
                MatchOp::Equal => match self.syms.get(&m.value) {
                    Some(v) => self
                        .postings
                        .get(&n)
                        .and_then(|p| p.get(&v))
                        .cloned()
                        .unwrap_or_default(),
                    None => Vec::new(),
                },
                _ => {
                    let mut u = Vec::new();
                    for (pv, ids) in self.postings.get(&n).into_iter().flatten() {
                        if m.matches(self.syms.str(*pv)) {
                            u.extend_from_slice(ids);
                        }
                    }
                    u.sort_unstable();
                    u.dedup();
                    u
                }
            };
            ids.sort_unstable();
            acc = Some(match acc {
                None => ids,
                Some(a) => intersect(&a, &ids),
            });
        }
        let mut out = match acc {
            Some(a) => a,
            None => (0..self.series.len() as u32)
                .filter(|&i| self.exists(i))
                .collect(),
        };
        for s in subtract {
            out.retain(|id| s.binary_search(id).is_err());
        }
        out
    }

    /// Labels and samples in `[mint, maxt]` of the given series; series with no such samples
    /// are left out.
    pub fn read(&self, ids: &[u32], mint: i64, maxt: i64) -> Vec<(Labels, Vec<(i64, f64)>)> {
        let mut out = Vec::new();
        for &id in ids {
            if let Some(s) = self.series.get(id as usize).and_then(|s| s.as_ref()) {
                let samples = s.samples(&self.arena, mint, maxt);
                if !samples.is_empty() {
                    out.push((self.labels_from_syms(s), samples));
                }
            }
        }
        out
    }

    /// Label sets of the given series that have samples in `[mint, maxt]` (cheap time check
    /// on chunk bounds).
    pub fn series_labels(&self, ids: &[u32], mint: i64, maxt: i64) -> Vec<Labels> {
        ids.iter()
            .filter_map(|&id| self.series.get(id as usize)?.as_ref())
            .filter(|s| s.overlaps(&self.arena, mint, maxt))
            .map(|s| self.labels_from_syms(s))
            .collect()
    }

    pub fn exemplar(&self, id: u32) -> Option<Exemplar> {
        self.series
            .get(id as usize)?
            .as_ref()?
            .extra
            .as_ref()?
            .exemplar
    }

    /// The oldest in-order sample time in the head.
    pub fn min_t(&self) -> Option<i64> {
        self.min_t_cache
    }

    fn scan_min_t(&self) -> Option<i64> {
        self.series
            .iter()
            .flatten()
            .filter_map(|s| s.sealed.min_t(&self.arena).or_else(|| s.open.first_t()))
            .min()
    }

    /// Every live series id, sorted by label set.
    pub fn ids_by_labels(&self) -> Vec<(Labels, u32)> {
        let mut v: Vec<(Labels, u32)> = self
            .series
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((self.labels_from_syms(s.as_ref()?), i as u32)))
            .collect();
        v.sort();
        v
    }

    /// In-order samples of `id` before `before`, for writing a block.
    pub fn in_order_before(&self, id: u32, before: i64) -> Vec<(i64, f64)> {
        let Some(s) = self.series.get(id as usize).and_then(|s| s.as_ref()) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (_, c) in s.sealed.chunks(&self.arena) {
            if codec::first_t(c).is_some_and(|f| f < before) {
                let _ = codec::decode_range_into(c, i64::MIN, before.saturating_sub(1), &mut out);
            }
        }
        if s.open.first_t().is_some_and(|f| f < before) {
            out.extend(s.open.samples().into_iter().filter(|s| s.0 < before));
        }
        out
    }

    /// Takes every series' out-of-order samples (they go into the next block).
    pub fn take_ooo(&mut self) -> HashMap<u32, Vec<(i64, f64)>> {
        let mut out = HashMap::new();
        for (i, s) in self.series.iter_mut() {
            if let Some(s) = s
                && let Some(x) = &mut s.extra
                && !x.ooo.is_empty()
            {
                let mut o = std::mem::take(&mut x.ooo);
                if x.exemplar.is_none() {
                    s.extra = None;
                }
                sort_dedup(&mut o);
                out.insert(i as u32, o);
            }
        }
        out
    }

    /// Drops in-order samples before `before` (they are in a block now) and series left empty
    /// that have not been written to since; rebuilds the index and symbols when series went.
    pub fn truncate(&mut self, before: i64) {
        self.truncate_inner(before, true);
    }

    /// Drops in-order samples before `before` but keeps every series, empty or not: WAL replay
    /// needs the series that records further on refer to by id.
    pub fn truncate_samples(&mut self, before: i64) {
        self.truncate_inner(before, false);
    }

    fn truncate_inner(&mut self, before: i64, gc: bool) {
        let mut removed = false;
        let arena = &mut self.arena;
        for (id, slot) in self.series.iter_mut() {
            let Some(s) = slot else { continue };
            let id = id as u32;
            if s.sealed.min_t(arena).is_some_and(|m| m < before) {
                let keep: Vec<_> = s
                    .sealed
                    .all(arena)
                    .into_iter()
                    .filter(|x| x.0 >= before)
                    .collect();
                // Written back over the old chunks (the region shrinks if it has to move).
                s.sealed.len = s.sealed.start as u32;
                for part in keep.chunks(MAX_SEALED_SAMPLES) {
                    let len = s.sealed.len as usize;
                    s.sealed.write(arena, id, len, part);
                }
                if keep.is_empty() {
                    // Only the label ids are left: a region of their size.
                    let len = s.sealed.len as usize;
                    if let Some(at) = arena.resize(s.sealed.at, id, len, len) {
                        s.sealed.at = at;
                    }
                }
            }
            if s.open.first_t().is_some_and(|f| f < before) {
                let keep = std::mem::take(&mut s.open).samples();
                for (t, v) in keep.into_iter().filter(|x| x.0 >= before) {
                    s.push(arena, id, t, v);
                }
            }
            if gc && s.is_empty() && s.last_t().is_none() {
                s.sealed.free(arena);
                *slot = None;
                self.live -= 1;
                removed = true;
            }
        }
        if removed {
            self.series.free_empty_pages();
            self.rebuild_index();
            let series = &self.series;
            self.by_key
                .retain(|_, id| series.get(*id as usize).is_some_and(|s| s.is_some()));
        }
        self.clean_arena();
        self.min_t_cache = self.scan_min_t();
    }

    /// Cleans the arena's oldest pages while it holds too many dead regions: at most four pages
    /// a call, so no append waits for more than a few MiB of copying.
    fn clean_arena(&mut self) {
        let series = &mut self.series;
        for _ in 0..4 {
            if !self.arena.needs_cleaning() {
                break;
            }
            let cleaned = self.arena.clean_oldest(|owner, at| {
                if let Some(Some(s)) = series.get_mut(owner as usize) {
                    s.sealed.at = at;
                }
            });
            if !cleaned {
                break;
            }
        }
    }

    fn rebuild_index(&mut self) {
        let mut syms = Symbols::default();
        let mut postings: HashMap<u32, HashMap<u32, Vec<u32>>> = HashMap::new();
        let mut by_hash = HashMap::new();
        let mut collisions: HashMap<u64, Vec<u32>> = HashMap::new();
        let old = std::mem::take(&mut self.syms);
        let arena = &mut self.arena;
        for (i, slot) in self.series.iter_mut() {
            let Some(s) = slot else { continue };
            let mut pairs = Vec::with_capacity(s.sealed.start as usize / 8);
            let mut ids = Vec::with_capacity(s.sealed.start as usize / 4);
            for (n, v) in s.sealed.label_ids(arena) {
                let (n, v) = (old.str(n), old.str(v));
                pairs.push(Label {
                    name: n.to_string(),
                    value: v.to_string(),
                });
                let (n, v) = (syms.intern(n), syms.intern(v));
                ids.extend([n, v]);
                postings
                    .entry(n)
                    .or_default()
                    .entry(v)
                    .or_default()
                    .push(i as u32);
            }
            s.sealed.set_label_ids(arena, &ids);
            let h = Labels::from_sorted(pairs).hash64();
            if let std::collections::hash_map::Entry::Vacant(e) = by_hash.entry(h) {
                e.insert(i as u32);
            } else {
                collisions.entry(h).or_default().push(i as u32);
            }
        }
        self.syms = syms;
        self.postings = postings;
        self.by_hash = by_hash;
        self.collisions = collisions;
    }

    /// Approximate heap bytes held by the head (series, chunks, index), for `/metrics`.
    pub fn approx_bytes(&self) -> usize {
        let series: usize = self.series.iter().flatten().map(|s| s.heap_bytes()).sum();
        series
            + self.arena.bytes()
            + self.series.capacity() * std::mem::size_of::<Option<MemSeries>>()
            + self.by_hash.capacity() * 16
            + self.by_key.capacity() * 32
            + self
                .postings
                .values()
                .flat_map(|m| m.values())
                .map(|p| p.capacity() * 4 + 40)
                .sum::<usize>()
            + self.syms.strs.iter().map(|s| s.len() + 48).sum::<usize>()
    }

    /// Every live series' id, labels and samples (for the WAL checkpoint and tests).
    pub fn each_series(&self) -> impl Iterator<Item = (u32, Labels)> + '_ {
        self.series
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((i as u32, self.labels_from_syms(s.as_ref()?))))
    }
}

fn intersect(a: &[u32], b: &[u32]) -> Vec<u32> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab(name: &str, job: &str) -> Labels {
        Labels::from_pairs([("__name__", name), ("job", job)])
    }

    /// Series that end free their page; ids stay stable and the survivors are found by id.
    #[test]
    fn a_series_is_small() {
        // The open chunk is held in place (80 bytes); what a series costs besides its sealed
        // chunks and label ids. BENCHMARKS.md's memory figures depend on it.
        assert_eq!(std::mem::size_of::<XorChunk>(), 80);
        assert_eq!(std::mem::size_of::<Option<MemSeries>>(), 112);
    }

    #[test]
    fn samples_survive_sealing_merging_and_arena_cleaning() {
        // 3,000 series: a third stop early (their regions are left behind in old pages and must
        // be moved by cleaning), the rest grow at different paces; every sample reads back.
        let mut h = Head::new(3_600_000);
        let n = 3000u32;
        let mut want: Vec<Vec<(i64, f64)>> = vec![Vec::new(); n as usize];
        for i in 0..n {
            let l = Labels::from_pairs([("__name__", "m"), ("i", &i.to_string())]);
            assert!(h.create(i, &l, l.hash64(), true));
        }
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..600i64 {
            for i in 0..n {
                let stopped = i % 3 == 0 && round > 100;
                let every = 1 + (i % 4) as i64;
                if stopped || round % every != 0 {
                    continue;
                }
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let t = 1_000_000 + round * 15_000 + (x % 40) as i64;
                let v = match i % 4 {
                    0 => (x % 1000) as f64 / 8.0,
                    1 => round as f64 * 3.0,
                    // Arbitrary floats: the codec's XOR fallback, several bytes a sample.
                    _ => (x >> 11) as f64 / (1u64 << 53) as f64,
                };
                assert_eq!(h.append(i, t, v), AppendOutcome::Appended);
                want[i as usize].push((t, v));
            }
        }
        assert!(
            h.arena.bytes() > 3 * crate::tsdb::arena::PAGE,
            "{}",
            h.arena.bytes()
        );
        assert!(
            h.arena.moved > 100,
            "cleaning moved {} regions",
            h.arena.moved
        );
        let live = h.arena.live_bytes();
        assert!(
            h.arena.bytes()
                <= live + live / crate::tsdb::arena::SLACK + 3 * crate::tsdb::arena::PAGE,
            "{} held for {live} live",
            h.arena.bytes()
        );
        let ids: Vec<u32> = (0..n).collect();
        let got = h.read(&ids, i64::MIN, i64::MAX);
        assert_eq!(got.len(), n as usize);
        for (labels, samples) in got {
            let i: usize = labels.get("i").unwrap().parse().unwrap();
            assert_eq!(samples, want[i], "series {i}");
        }
        // Truncation rewrites the regions; what is left still reads back.
        let cut = 1_000_000 + 300 * 15_000;
        let live_before = h.arena.live_bytes();
        h.truncate(cut);
        // Regions shrink with what they hold, and emptied pages go.
        assert!(h.arena.live_bytes() < live_before * 7 / 10);
        let live = h.arena.live_bytes();
        assert!(
            h.arena.bytes()
                <= live + live / crate::tsdb::arena::SLACK + 3 * crate::tsdb::arena::PAGE
        );
        for (labels, samples) in h.read(&ids, i64::MIN, i64::MAX) {
            let i: usize = labels.get("i").unwrap().parse().unwrap();
            let w: Vec<_> = want[i].iter().copied().filter(|s| s.0 >= cut).collect();
            assert_eq!(samples, w, "series {i}");
        }
        assert_eq!(h.num_series(), 2000, "series with nothing left are gone");
    }

    #[test]
    fn churned_pages_are_freed_and_ids_stay() {
        let mut h = Head::new(0);
        let n = Slots::PAGE * 3 + 10;
        for i in 0..n {
            let l = lab("m", &format!("j{i}"));
            let id = h.next_id();
            assert_eq!(id as usize, i);
            assert!(h.create(id, &l, l.hash64(), true));
            // Series in the second page and the last one stay; the others stop at t = 1000.
            let t = if i / Slots::PAGE == 1 || i == n - 1 {
                5000
            } else {
                1000
            };
            h.append(id, t, i as f64);
        }
        let before = h.series.capacity();
        h.truncate(2000);
        assert_eq!(h.num_series(), Slots::PAGE + 1);
        // The first and third pages went; the second and the (partly used) fourth stay.
        assert_eq!(h.series.capacity(), before - 2 * Slots::PAGE);
        for i in [Slots::PAGE, 2 * Slots::PAGE - 1, n - 1] {
            let l = lab("m", &format!("j{i}"));
            assert_eq!(h.lookup(&l, l.hash64()), Some(i as u32), "series {i}");
            assert_eq!(
                h.read(&[i as u32], 0, i64::MAX)[0].1,
                vec![(5000, i as f64)]
            );
        }
        assert_eq!(h.lookup(&lab("m", "j0"), lab("m", "j0").hash64()), None);
        assert_eq!(h.each_series().count(), Slots::PAGE + 1);
        assert!(
            h.each_series()
                .all(|(id, l)| l == lab("m", &format!("j{id}")))
        );
        // New series take new ids; a freed page is allocated again only if an id in it returns.
        let l = lab("m", "new");
        let id = h.next_id();
        assert_eq!(id as usize, n);
        assert!(h.create(id, &l, l.hash64(), true));
        assert_eq!(h.lookup(&l, l.hash64()), Some(id));
        assert!(h.create(5, &lab("m", "again"), lab("m", "again").hash64(), true));
        assert_eq!(h.series.capacity(), before - Slots::PAGE);
        assert!(h.exists(5) && !h.exists(6));
    }

    #[test]
    fn append_read_and_rules() {
        let mut h = Head::new(3_600_000);
        let l = lab("up", "a");
        let id = h.next_id();
        assert!(h.create(id, &l, l.hash64(), true));
        assert_eq!(h.lookup(&l, l.hash64()), Some(id));
        for i in 0..300 {
            assert_eq!(
                h.append(id, 1000 + i * 15_000, i as f64),
                AppendOutcome::Appended
            );
        }
        let last = 1000 + 299 * 15_000;
        assert_eq!(h.append(id, last, 299.0), AppendOutcome::Duplicate);
        assert_eq!(h.append(id, last, 1.0), AppendOutcome::Conflict);
        // Out of order within the window.
        assert_eq!(h.append(id, last - 7_500, 7.5), AppendOutcome::Appended);
        assert_eq!(h.append(id, last - 7_500, 7.5), AppendOutcome::Duplicate);
        assert_eq!(h.append(id, last - 4_000_000, 1.0), AppendOutcome::TooOld);
        let got = h.read(&[id], 0, i64::MAX);
        assert_eq!(got[0].1.len(), 301);
        assert!(got[0].1.windows(2).all(|w| w[0].0 < w[1].0));
        // Truncation drops what a block took.
        h.take_ooo();
        h.truncate(1000 + 150 * 15_000);
        let got = h.read(&[id], 0, i64::MAX);
        assert_eq!(got[0].1.len(), 150);
        assert_eq!(got[0].1[0].0, 1000 + 150 * 15_000);
    }

    #[test]
    fn matchers_on_postings() {
        let mut h = Head::new(0);
        for (n, j) in [("up", "a"), ("up", "b"), ("x", "a")] {
            let l = lab(n, j);
            let id = h.next_id();
            assert!(h.create(id, &l, l.hash64(), true));
        }
        let m = |op, n: &str, v: &str| Matcher::new(op, n, v).unwrap();
        assert_eq!(
            h.matching(&[m(MatchOp::Equal, "__name__", "up")]),
            vec![0, 1]
        );
        assert_eq!(
            h.matching(&[
                m(MatchOp::Equal, "__name__", "up"),
                m(MatchOp::NotEqual, "job", "a")
            ]),
            vec![1]
        );
        assert_eq!(
            h.matching(&[m(MatchOp::Regex, "job", "a|b")]),
            vec![0, 1, 2]
        );
        assert_eq!(h.matching(&[m(MatchOp::NotRegex, "job", "a")]), vec![1]);
        assert_eq!(h.matching(&[m(MatchOp::Equal, "env", "")]), vec![0, 1, 2]);
        assert!(h.matching(&[m(MatchOp::Equal, "env", "x")]).is_empty());
    }
}
