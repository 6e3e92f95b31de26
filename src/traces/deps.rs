//! Service dependencies, found at ingest: a span whose parent belongs to another service is one
//! call `parent service -> child service`, counted in the minute of the child's start (Jaeger's
//! rule: same-service parents are not edges). Parents and children may arrive in any order and in
//! different batches, so recent spans and children still waiting for their parent are kept in
//! memory, each bounded; what falls out of those maps (or is lost in a restart) is not counted.

use std::collections::HashMap;
use std::sync::Arc;

/// Entries per generation of each map; two generations are kept.
const GENERATION: usize = 500_000;

type SpanKey = (u128, u64);

/// Two-generation bounded map: inserts go to `young`; when it fills, it becomes `old`.
struct Generational<V> {
    young: HashMap<SpanKey, V>,
    old: HashMap<SpanKey, V>,
}

impl<V> Generational<V> {
    fn new() -> Self {
        Generational {
            young: HashMap::new(),
            old: HashMap::new(),
        }
    }

    fn insert(&mut self, k: SpanKey, v: V) {
        if self.young.len() >= GENERATION {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(k, v);
    }

    fn get(&self, k: &SpanKey) -> Option<&V> {
        self.young.get(k).or_else(|| self.old.get(k))
    }

    fn remove(&mut self, k: &SpanKey) -> Option<V> {
        self.young.remove(k).or_else(|| self.old.remove(k))
    }
}

/// Calls found in one batch: `(minute, parent, child) -> calls`.
pub type Edges = HashMap<(i64, Arc<str>, Arc<str>), u64>;

pub struct DependencyTracker {
    seen: Generational<Arc<str>>,
    /// Children whose parent has not been seen: `(trace, parent span) -> [(child service, minute)]`.
    orphans: Generational<Vec<(Arc<str>, i64)>>,
}

impl Default for DependencyTracker {
    fn default() -> Self {
        DependencyTracker {
            seen: Generational::new(),
            orphans: Generational::new(),
        }
    }
}

impl DependencyTracker {
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
        if let Some(waiting) = self.orphans.remove(&(trace, span)) {
            for (child, child_minute) in waiting {
                if *child != **service {
                    *edges
                        .entry((child_minute, service.clone(), child))
                        .or_default() += 1;
                }
            }
        }
        self.seen.insert((trace, span), service.clone());
        if let Some(parent) = parent {
            match self.seen.get(&(trace, parent)) {
                Some(p) => {
                    if **p != **service {
                        *edges
                            .entry((minute, p.clone(), service.clone()))
                            .or_default() += 1;
                    }
                }
                None => {
                    let key = (trace, parent);
                    let mut list = self.orphans.remove(&key).unwrap_or_default();
                    list.push((service.clone(), minute));
                    self.orphans.insert(key, list);
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
}
