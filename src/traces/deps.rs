//! Service dependencies, found at ingest: a span whose parent belongs to another service is one
//! call `parent service -> child service`, counted in the minute of the child's start (Jaeger's
//! rule: same-service parents are not edges). Parents and children may arrive in any order and in
//! different batches, so recent spans and children still waiting for their parent are kept in
//! memory, each bounded; what falls out of those maps (or is lost in a restart) is not counted.
//!
//! Memory: a span is remembered as a 64-bit hash of (trace id, span id) mapped to an interned
//! service number, 13 bytes a bucket; each map holds at most [`GENERATION`] entries (below
//! hashbrown's resize to 2^20 buckets), two generations each: about 14 MB in all when full, which
//! is several seconds of history at full ingest speed and minutes at ordinary rates.

use std::collections::HashMap;
use std::sync::Arc;

/// Entries per generation of each map; two generations are kept.
pub const GENERATION: usize = 450_000;

/// Two-generation bounded map: inserts go to `young`; when it fills, it becomes `old`.
struct Generational<V> {
    young: HashMap<u64, V>,
    old: HashMap<u64, V>,
}

impl<V> Generational<V> {
    fn new() -> Self {
        Generational {
            young: HashMap::new(),
            old: HashMap::new(),
        }
    }

    fn insert(&mut self, k: u64, v: V) {
        if self.young.len() >= GENERATION {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(k, v);
    }

    fn get(&self, k: &u64) -> Option<&V> {
        self.young.get(k).or_else(|| self.old.get(k))
    }

    fn remove(&mut self, k: &u64) -> Option<V> {
        self.young.remove(k).or_else(|| self.old.remove(k))
    }
}

/// Calls found in one batch: `(minute, parent, child) -> calls`.
pub type Edges = HashMap<(i64, Arc<str>, Arc<str>), u64>;

/// A 64-bit key for (trace, span); collisions are rare enough to ignore for call counting.
fn key(trace: u128, span: u64) -> u64 {
    let x = (trace as u64)
        ^ ((trace >> 64) as u64).rotate_left(29)
        ^ span.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^ (x >> 31)
}

pub struct DependencyTracker {
    services: Vec<Arc<str>>,
    service_ids: HashMap<Arc<str>, u32>,
    seen: Generational<u32>,
    /// Children whose parent has not been seen: `key(trace, parent) -> [(child service, minute)]`.
    orphans: Generational<Vec<(u32, i64)>>,
}

impl Default for DependencyTracker {
    fn default() -> Self {
        DependencyTracker {
            services: Vec::new(),
            service_ids: HashMap::new(),
            seen: Generational::new(),
            orphans: Generational::new(),
        }
    }
}

impl DependencyTracker {
    fn intern(&mut self, service: &Arc<str>) -> u32 {
        if let Some(id) = self.service_ids.get(service) {
            return *id;
        }
        let id = self.services.len() as u32;
        self.services.push(service.clone());
        self.service_ids.insert(service.clone(), id);
        id
    }

    /// Records one span and adds any calls it completes to `edges`.
    pub fn observe(
        &mut self,
        trace: u128,
        span: u64,
        parent: Option<u64>,
        service: &Arc<str>,
        start_ns: u64,
        edges: &mut Edges,
    ) {
        let minute = (start_ns / 60_000_000_000) as i64;
        let me = self.intern(service);
        let my_key = key(trace, span);
        if let Some(waiting) = self.orphans.remove(&my_key) {
            for (child, child_minute) in waiting {
                if child != me {
                    let c = self.services[child as usize].clone();
                    *edges.entry((child_minute, service.clone(), c)).or_default() += 1;
                }
            }
        }
        self.seen.insert(my_key, me);
        if let Some(parent) = parent {
            let parent_key = key(trace, parent);
            match self.seen.get(&parent_key) {
                Some(&p) => {
                    if p != me {
                        let p = self.services[p as usize].clone();
                        *edges.entry((minute, p, service.clone())).or_default() += 1;
                    }
                }
                None => {
                    let mut list = self.orphans.remove(&parent_key).unwrap_or_default();
                    list.push((me, minute));
                    self.orphans.insert(parent_key, list);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_in_any_order_and_not_within_a_service() {
        let mut t = DependencyTracker::default();
        let mut edges = Edges::new();
        let fe: Arc<str> = "frontend".into();
        let be: Arc<str> = "backend".into();
        // child before parent
        t.observe(1, 2, Some(1), &be, 0, &mut edges);
        t.observe(1, 1, None, &fe, 0, &mut edges);
        // parent before child
        t.observe(2, 1, None, &fe, 0, &mut edges);
        t.observe(2, 2, Some(1), &be, 0, &mut edges);
        // same service: no edge
        t.observe(2, 3, Some(2), &be, 0, &mut edges);
        assert_eq!(edges.len(), 1);
        assert_eq!(edges[&(0, fe.clone(), be.clone())], 2);
    }

    #[test]
    fn bounded_by_generations() {
        let mut t = DependencyTracker::default();
        let mut edges = Edges::new();
        let svc: Arc<str> = "s".into();
        for i in 0..(3 * GENERATION as u64) {
            t.observe(i as u128, 1, Some(2), &svc, 0, &mut edges);
        }
        assert!(t.seen.young.len() + t.seen.old.len() <= 2 * GENERATION);
        assert!(t.orphans.young.len() + t.orphans.old.len() <= 2 * GENERATION);
    }
}
