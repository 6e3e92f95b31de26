//! Memory for the head's sealed chunks: one region per series in 1 MiB pages written as a log,
//! instead of one heap allocation per series.
//!
//! A series' sealed chunks grow by a few bytes at every seal. With one allocation each, glibc
//! kept about 140 bytes per series in holes left by regrown buffers, plus a header on each (see
//! `BENCHMARKS.md`). Here a region that grows is copied to the end of the log and its old copy
//! is dead; pages are used oldest first, so when series grow at a similar pace the oldest page
//! empties by itself and is freed. Regions that do not move (series that stopped, or grow
//! slowly) are moved by cleaning: while the dead regions in the pages come to more than 1/64 of
//! the live ones (plus a page), the oldest page's live regions are copied to the end and the
//! page is freed. Regions larger than [`LARGE`] get a page of their own.
//!
//! A region is `[owner u32][capacity u32][data...]`, capacity a multiple of 4; the owner (a
//! series id) is how cleaning tells the head where a region went; a dead region's owner is
//! [`DEAD`]. An address is the page index (14 bits) and the offset in 4-byte units (18 bits):
//! 16 GiB of sealed chunks at most, past which [`Arena::alloc`] refuses.

use std::collections::VecDeque;

pub type Addr = u32;
/// No region.
pub const NO_ADDR: Addr = u32::MAX;

const PAGE_BITS: u32 = 20;
/// Bytes in a log page.
pub const PAGE: usize = 1 << PAGE_BITS;
const OFF_BITS: u32 = PAGE_BITS - 2;
/// Page indices usable (the last one is left out so that no address is [`NO_ADDR`]).
const MAX_PAGES: usize = (1 << (32 - OFF_BITS)) - 1;
const HDR: usize = 8;
/// The owner of a dead region.
pub const DEAD: u32 = u32::MAX;
/// Log pages may hold dead regions of 1/SLACK of their live ones (plus a page) before cleaning.
pub const SLACK: usize = 64;
/// Regions with more data than this get a page of their own.
pub const LARGE: usize = PAGE / 8;

struct Page {
    buf: Box<[u8]>,
    /// Bytes handed out from the start (log pages); the whole buffer for a large region's page.
    used: usize,
    /// Bytes of live regions, headers included.
    live: usize,
    /// A large region's own page (not in the log).
    large: bool,
}

#[derive(Default)]
pub struct Arena {
    /// By index; `None` for an index not in use.
    pages: Vec<Option<Page>>,
    free_idx: Vec<u32>,
    /// Log pages, oldest first; the last one takes new regions.
    log: VecDeque<u32>,
    /// Live bytes in log pages.
    live_log: usize,
    /// Bytes of dead regions in log pages (what cleaning can win back; a page's unused tail is
    /// not counted).
    dead: usize,
    /// Bytes of large regions' pages.
    large: usize,
    /// Regions moved by cleaning, ever.
    pub moved: u64,
}

fn split(a: Addr) -> (usize, usize) {
    (
        (a >> OFF_BITS) as usize,
        ((a & ((1 << OFF_BITS) - 1)) as usize) * 4,
    )
}

fn addr(page: usize, off: usize) -> Addr {
    ((page as u32) << OFF_BITS) | (off / 4) as u32
}

fn round4(n: usize) -> usize {
    n.div_ceil(4) * 4
}

fn get_u32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |x| u32::from_le_bytes(x.try_into().unwrap_or_default()))
}

impl Arena {
    /// Bytes held (pages allocated, used or not).
    pub fn bytes(&self) -> usize {
        self.log.len() * PAGE + self.large
    }

    /// Bytes of live regions (headers included).
    pub fn live_bytes(&self) -> usize {
        self.live_log + self.large
    }

    fn header(&self, a: Addr) -> Option<(usize, usize, u32, usize)> {
        let (p, off) = split(a);
        let page = self.pages.get(p)?.as_ref()?;
        let owner = get_u32(&page.buf, off);
        let cap = get_u32(&page.buf, off + 4) as usize;
        Some((p, off, owner, cap))
    }

    /// The region's data (its full capacity); empty for [`NO_ADDR`].
    pub fn data(&self, a: Addr) -> &[u8] {
        let Some((p, off, _, cap)) = self.header(a) else {
            return &[];
        };
        self.pages[p]
            .as_ref()
            .and_then(|pg| pg.buf.get(off + HDR..off + HDR + cap))
            .unwrap_or_default()
    }

    pub fn data_mut(&mut self, a: Addr) -> &mut [u8] {
        let Some((p, off, _, cap)) = self.header(a) else {
            return &mut [];
        };
        self.pages[p]
            .as_mut()
            .and_then(|pg| pg.buf.get_mut(off + HDR..off + HDR + cap))
            .unwrap_or_default()
    }

    fn new_index(&mut self, page: Page) -> Option<usize> {
        if let Some(i) = self.free_idx.pop() {
            self.pages[i as usize] = Some(page);
            return Some(i as usize);
        }
        if self.pages.len() >= MAX_PAGES {
            return None;
        }
        self.pages.push(Some(page));
        Some(self.pages.len() - 1)
    }

    fn drop_page(&mut self, p: usize) {
        self.pages[p] = None;
        self.free_idx.push(p as u32);
    }

    /// A region of at least `len` data bytes for `owner`, zeroed; `None` when the arena is full
    /// (16 GiB).
    pub fn alloc(&mut self, owner: u32, len: usize) -> Option<Addr> {
        let cap = round4(len);
        let size = HDR + cap;
        let (p, off) = if cap > LARGE {
            let p = self.new_index(Page {
                buf: vec![0; size].into_boxed_slice(),
                used: size,
                live: size,
                large: true,
            })?;
            self.large += size;
            (p, 0)
        } else {
            let cur = self.log.back().map(|&p| p as usize);
            let room = cur
                .and_then(|p| self.pages[p].as_ref())
                .is_some_and(|pg| pg.used + size <= PAGE);
            let p = match cur {
                Some(p) if room => p,
                _ => {
                    let p = self.new_index(Page {
                        buf: vec![0; PAGE].into_boxed_slice(),
                        used: 0,
                        live: 0,
                        large: false,
                    })?;
                    self.log.push_back(p as u32);
                    p
                }
            };
            let pg = self.pages[p].as_mut()?;
            let off = pg.used;
            pg.used += size;
            pg.live += size;
            self.live_log += size;
            pg.buf[off + HDR..off + size].fill(0);
            (p, off)
        };
        let pg = self.pages[p].as_mut()?;
        pg.buf[off..off + 4].copy_from_slice(&owner.to_le_bytes());
        pg.buf[off + 4..off + 8].copy_from_slice(&(cap as u32).to_le_bytes());
        Some(addr(p, off))
    }

    /// Frees a region (nothing for [`NO_ADDR`]); a page left with no live region is freed.
    pub fn free(&mut self, a: Addr) {
        let Some((p, off, owner, cap)) = self.header(a) else {
            return;
        };
        if owner == DEAD {
            return;
        }
        let size = HDR + cap;
        let current = self.log.back() == Some(&(p as u32));
        let Some(pg) = self.pages[p].as_mut() else {
            return;
        };
        pg.buf[off..off + 4].copy_from_slice(&DEAD.to_le_bytes());
        pg.live -= size;
        let empty = pg.live == 0;
        if pg.large {
            self.large -= size;
            self.drop_page(p);
            return;
        }
        self.live_log -= size;
        self.dead += size;
        if empty {
            // Every region in the page is dead now.
            self.dead -= pg.used;
            pg.used = 0;
            if !current {
                self.log.retain(|&x| x as usize != p);
                self.drop_page(p);
            }
        }
    }

    /// Gives region `a` (or a new one for [`NO_ADDR`]) room for `len` data bytes, keeping its
    /// first `keep` bytes: in place when it has the room (and would stay at least half used), or
    /// it is the newest region of the newest page and the page has it; otherwise in a new
    /// region, the old one freed. `None`
    /// (and `a` unchanged) when the arena is full.
    pub fn resize(&mut self, a: Addr, owner: u32, len: usize, keep: usize) -> Option<Addr> {
        if let Some((p, off, _, cap)) = self.header(a) {
            // Shrinking keeps the region unless it would be less than half used (a truncated
            // series moves to a region of its new size).
            if len <= cap && (len >= cap / 2 || cap <= 64) {
                return Some(a);
            }
            let newest = self.log.back() == Some(&(p as u32));
            let grow = round4(len).saturating_sub(cap);
            if let Some(pg) = self.pages[p].as_mut()
                && newest
                && grow > 0
                && off + HDR + cap == pg.used
                && round4(len) <= LARGE
                && pg.used + grow <= PAGE
            {
                pg.buf[pg.used..pg.used + grow].fill(0);
                pg.used += grow;
                pg.live += grow;
                self.live_log += grow;
                let new_cap = (cap + grow) as u32;
                pg.buf[off + 4..off + 8].copy_from_slice(&new_cap.to_le_bytes());
                return Some(a);
            }
        }
        let b = self.alloc(owner, len)?;
        self.copy(a, b, keep.min(len));
        self.free(a);
        Some(b)
    }

    /// Copies the first `n` data bytes (at most what both hold) of region `a` into region `b`,
    /// without a temporary buffer.
    fn copy(&mut self, a: Addr, b: Addr, n: usize) {
        let (Some((pa, oa, _, ca)), Some((pb, ob, _, cb))) = (self.header(a), self.header(b))
        else {
            return;
        };
        let n = n.min(ca).min(cb);
        let (from, to) = (oa + HDR, ob + HDR);
        if pa == pb {
            if let Some(pg) = self.pages[pa].as_mut() {
                pg.buf.copy_within(from..from + n, to);
            }
            return;
        }
        let (lo, hi) = self.pages.split_at_mut(pa.max(pb));
        let (src, dst) = if pa < pb {
            (&lo[pa], &mut hi[0])
        } else {
            (&hi[0], &mut lo[pb])
        };
        if let (Some(src), Some(dst)) = (src.as_ref(), dst.as_mut()) {
            dst.buf[to..to + n].copy_from_slice(&src.buf[from..from + n]);
        }
    }

    /// Whether the log pages' dead regions come to more than 1/[`SLACK`] of the live ones plus
    /// a page.
    pub fn needs_cleaning(&self) -> bool {
        self.log.len() > 2 && self.dead > self.live_log / SLACK + PAGE
    }

    /// Moves the oldest log page's live regions to the newest page and frees it, telling `moved`
    /// each (owner, new address). False when there is nothing to clean or no room to move to.
    pub fn clean_oldest(&mut self, mut moved: impl FnMut(u32, Addr)) -> bool {
        if self.log.len() < 2 {
            return false;
        }
        let Some(&p) = self.log.front() else {
            return false;
        };
        let p = p as usize;
        let used = self.pages[p].as_ref().map_or(0, |pg| pg.used);
        let mut off = 0;
        // Freeing the page's last live region frees the page (and ends the walk).
        while off + HDR <= used && self.pages[p].as_ref().is_some_and(|pg| pg.live > 0) {
            let a = addr(p, off);
            let Some((_, _, owner, cap)) = self.header(a) else {
                return false;
            };
            if owner != DEAD {
                let Some(b) = self.alloc(owner, cap) else {
                    return false;
                };
                self.copy(a, b, cap);
                self.free(a);
                self.moved += 1;
                moved(owner, b);
            }
            off += HDR + cap;
        }
        // A page that held only dead regions is freed here.
        if self.log.front() == Some(&(p as u32))
            && self.pages[p].as_ref().is_some_and(|pg| pg.live == 0)
        {
            self.dead -= self.pages[p].as_ref().map_or(0, |pg| pg.used);
            self.log.pop_front();
            self.drop_page(p);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(a: &mut Arena, at: Addr, from: usize, to: usize, owner: u32) {
        for (i, b) in a.data_mut(at)[from..to].iter_mut().enumerate() {
            *b = (owner as usize * 31 + from + i) as u8;
        }
    }

    fn check(a: &Arena, at: Addr, len: usize, owner: u32) {
        let d = &a.data(at)[..len];
        for (i, b) in d.iter().enumerate() {
            assert_eq!(
                *b,
                (owner as usize * 31 + i) as u8,
                "owner {owner} byte {i}"
            );
        }
    }

    #[test]
    fn regions_grow_move_and_keep_their_bytes() {
        let mut a = Arena::default();
        let n = 20_000u32;
        let mut regions: Vec<(Addr, usize)> = vec![(NO_ADDR, 0); n as usize];
        let mut x = 88_172_645_463_325_252u64;
        for round in 0..60 {
            for o in 0..n {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // A third stop growing after round 10; one in 500 gets large.
                if o % 3 == 0 && round > 10 {
                    continue;
                }
                let (at, len) = regions[o as usize];
                let grow = if o % 500 == 7 && round == 30 {
                    LARGE
                } else {
                    1 + (x % 30) as usize
                };
                let b = a.resize(at, o, len + grow, len).unwrap();
                fill(&mut a, b, len, len + grow, o);
                regions[o as usize] = (b, len + grow);
                while a.needs_cleaning() {
                    assert!(a.clean_oldest(|owner, to| regions[owner as usize].0 = to));
                }
            }
        }
        for (o, &(at, len)) in regions.iter().enumerate() {
            check(&a, at, len, o as u32);
        }
        let live = a.live_bytes();
        assert!(
            a.bytes() <= live + live / 32 + 3 * PAGE,
            "{} for {live}",
            a.bytes()
        );
        assert!(a.large > 0);
        // Freeing everything frees every page but the newest.
        for &(at, _) in &regions {
            a.free(at);
        }
        assert_eq!(a.live_bytes(), 0);
        assert!(a.bytes() <= PAGE, "{}", a.bytes());
        // Freeing twice, or nothing, is harmless.
        a.free(regions[1].0);
        a.free(NO_ADDR);
        assert_eq!(a.data(NO_ADDR), &[] as &[u8]);
    }

    #[test]
    fn unused_page_tails_are_not_cleaned_for() {
        // Eight regions of 124 KiB leave 3 % of each page unused, more than the cleaning
        // threshold: that is not dead space, so there is nothing to clean (and cleaning could
        // not win it back).
        let mut a = Arena::default();
        let v: Vec<Addr> = (0..80).map(|o| a.alloc(o, LARGE - 4096).unwrap()).collect();
        assert!(a.bytes() > a.live_bytes() + a.live_bytes() / 40);
        assert!(!a.needs_cleaning());
        // Freeing every other one makes dead space; cleaning wins it back and ends.
        for at in v.iter().step_by(2) {
            a.free(*at);
        }
        assert!(a.needs_cleaning());
        let mut rounds = 0;
        while a.needs_cleaning() {
            assert!(a.clean_oldest(|_, _| {}));
            rounds += 1;
            assert!(rounds < 20);
        }
        assert!(a.bytes() < a.live_bytes() * 3 / 2);
    }

    #[test]
    fn shrinking_or_equal_sizes_stay_in_place() {
        let mut a = Arena::default();
        let r = a.alloc(1, 10).unwrap();
        assert_eq!(a.data(r).len(), 12, "capacity is a multiple of 4");
        assert_eq!(a.resize(r, 1, 12, 12), Some(r));
        assert_eq!(a.resize(r, 1, 3, 3), Some(r));
        // The newest region grows in place.
        let g = a.resize(r, 1, 40, 12).unwrap();
        assert_eq!(g, r);
        let other = a.alloc(2, 4).unwrap();
        // Not the newest any more: it moves.
        let m = a.resize(r, 1, 60, 40).unwrap();
        assert_ne!(m, r);
        assert_eq!(a.live_bytes(), (8 + 60) + (8 + 4));
        a.free(other);
        a.free(m);
        assert_eq!(a.live_bytes(), 0);
    }
}
