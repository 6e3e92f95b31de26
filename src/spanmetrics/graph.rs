//! The service graph: a call between two services is a parent span in one service with a child
//! span in another, which is how a client span (kind CLIENT or PRODUCER) and the server span it
//! caused (SERVER or CONSUMER) are related; the same rule pairs spans of other kinds across
//! services when instrumentation did not set kinds (the fallback the issue asks for). The two
//! halves may arrive in any order and in different batches: each span waits up to `graph_wait`
//! for its partner, in a store bounded by `graph_max_items` (oldest given up first).
//!
//! Virtual nodes, as Tempo draws them: a root SERVER/CONSUMER span is called by `user`; a
//! CLIENT/PRODUCER span that found no server child by the end of its wait and names its peer
//! (`peer.service`, `db.name`, `db.system`) calls that peer (`connection_type="virtual_node"` or
//! `"database"`). A producer/consumer pair is `connection_type="messaging_system"`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use super::{Derived, Hist, OVERFLOW, SpanMetricsConfig, SpanMetricsCounters, SpanObs};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct EdgeKey {
    client: Arc<str>,
    server: Arc<str>,
    connection: &'static str,
}

struct Edge {
    total: u64,
    failed: u64,
    server: Hist,
    client: Hist,
    written: bool,
}

/// A span that may still be the parent of a span in another service.
struct Parent {
    service: Arc<str>,
    kind: i32,
    secs: f64,
    failed: bool,
    peer: Option<(String, bool)>,
    paired: bool,
}

/// A span whose parent has not arrived yet.
struct Child {
    service: Arc<str>,
    kind: i32,
    secs: f64,
    failed: bool,
}

enum Slot {
    Parent,
    Children,
}

pub struct ServiceGraph {
    bounds: Vec<f64>,
    wait: Duration,
    max_items: usize,
    parents: HashMap<(u128, u64), Parent>,
    children: HashMap<(u128, u64), Vec<Child>>,
    order: VecDeque<(Instant, (u128, u64), Slot)>,
    edges: HashMap<EdgeKey, Edge>,
}

fn is_client(kind: i32) -> bool {
    matches!(kind, 3 | 4)
}

fn is_server(kind: i32) -> bool {
    matches!(kind, 2 | 5)
}

impl ServiceGraph {
    pub fn new(cfg: &SpanMetricsConfig) -> ServiceGraph {
        ServiceGraph {
            bounds: cfg.graph_buckets.clone(),
            wait: cfg.graph_wait,
            max_items: cfg.graph_max_items.max(1),
            parents: HashMap::new(),
            children: HashMap::new(),
            order: VecDeque::new(),
            edges: HashMap::new(),
        }
    }

    pub fn edge_count(&self) -> usize {
        self.edges.len()
    }

    #[allow(clippy::too_many_arguments)]
    fn edge(
        &mut self,
        client: Arc<str>,
        server: Arc<str>,
        connection: &'static str,
        client_secs: Option<f64>,
        server_secs: Option<f64>,
        failed: bool,
        room: usize,
        counters: &SpanMetricsCounters,
    ) {
        let mut key = EdgeKey {
            client,
            server,
            connection,
        };
        if !self.edges.contains_key(&key) && self.edges.len() >= room {
            counters.overflow_spans.fetch_add(1, Relaxed);
            let o: Arc<str> = OVERFLOW.into();
            key = EdgeKey {
                client: o.clone(),
                server: o,
                connection: "",
            };
        }
        let bounds = &self.bounds;
        let e = self.edges.entry(key).or_insert_with(|| Edge {
            total: 0,
            failed: 0,
            server: Hist::new(bounds),
            client: Hist::new(bounds),
            written: false,
        });
        e.total += 1;
        if failed {
            e.failed += 1;
        }
        if let Some(s) = server_secs {
            e.server.observe(bounds, s);
        }
        if let Some(c) = client_secs {
            e.client.observe(bounds, c);
        }
        counters.edges.fetch_add(1, Relaxed);
    }

    /// One span of `service`; `room` is how many edge series may exist before overflow.
    pub fn observe(
        &mut self,
        service: &Arc<str>,
        s: &SpanObs,
        now: Instant,
        room: usize,
        counters: &SpanMetricsCounters,
    ) {
        let me = (s.trace, s.span);
        let mut paired = false;
        // Children that arrived first.
        if let Some(waiting) = self.children.remove(&me) {
            for c in waiting {
                if c.service != *service {
                    paired = true;
                    let conn = connection(s.kind, c.kind);
                    self.edge(
                        service.clone(),
                        c.service,
                        conn,
                        Some(s.seconds()),
                        Some(c.secs),
                        s.failed() || c.failed,
                        room,
                        counters,
                    );
                }
            }
        }
        match s.parent {
            None if is_server(s.kind) => {
                self.edge(
                    "user".into(),
                    service.clone(),
                    "virtual_node",
                    None,
                    Some(s.seconds()),
                    s.failed(),
                    room,
                    counters,
                );
            }
            None => {}
            Some(p) => {
                let pk = (s.trace, p);
                match self.parents.get_mut(&pk) {
                    Some(parent) => {
                        if parent.service != *service {
                            parent.paired = true;
                            let (client, ps, pf, pkind) = (
                                parent.service.clone(),
                                parent.secs,
                                parent.failed,
                                parent.kind,
                            );
                            self.edge(
                                client,
                                service.clone(),
                                connection(pkind, s.kind),
                                Some(ps),
                                Some(s.seconds()),
                                pf || s.failed(),
                                room,
                                counters,
                            );
                        }
                    }
                    None => {
                        let list = self.children.entry(pk).or_default();
                        if list.is_empty() {
                            self.order.push_back((now + self.wait, pk, Slot::Children));
                        }
                        list.push(Child {
                            service: service.clone(),
                            kind: s.kind,
                            secs: s.seconds(),
                            failed: s.failed(),
                        });
                    }
                }
            }
        }
        self.parents.insert(
            me,
            Parent {
                service: service.clone(),
                kind: s.kind,
                secs: s.seconds(),
                failed: s.failed(),
                peer: s.peer.clone(),
                paired,
            },
        );
        self.order.push_back((now + self.wait, me, Slot::Parent));
        while self.order.len() > self.max_items {
            counters.evicted.fetch_add(1, Relaxed);
            self.expire_one(room, counters);
        }
    }

    /// Gives up on everything whose wait is over.
    pub fn expire(&mut self, now: Instant, counters: &SpanMetricsCounters) {
        while self.order.front().is_some_and(|(t, _, _)| *t <= now) {
            self.expire_one(usize::MAX, counters);
        }
    }

    fn expire_one(&mut self, room: usize, counters: &SpanMetricsCounters) {
        let Some((_, key, slot)) = self.order.pop_front() else {
            return;
        };
        match slot {
            Slot::Parent => {
                let Some(p) = self.parents.remove(&key) else {
                    return;
                };
                if p.paired || !is_client(p.kind) {
                    return;
                }
                match p.peer {
                    Some((peer, db)) => self.edge(
                        p.service,
                        peer.into(),
                        if db { "database" } else { "virtual_node" },
                        Some(p.secs),
                        None,
                        p.failed,
                        room,
                        counters,
                    ),
                    None => {
                        counters.unpaired.fetch_add(1, Relaxed);
                    }
                }
            }
            Slot::Children => {
                if let Some(list) = self.children.remove(&key) {
                    let n = list.iter().filter(|c| is_server(c.kind)).count();
                    counters.unpaired.fetch_add(n as u64, Relaxed);
                }
            }
        }
    }

    /// Cumulative samples of every edge; zeros for edges never written before.
    pub fn samples(&mut self, out: &mut Vec<Derived>, zeros: &mut Vec<Derived>) {
        for (k, e) in &mut self.edges {
            let mut labels = vec![
                ("client", k.client.to_string()),
                ("server", k.server.to_string()),
            ];
            if !k.connection.is_empty() {
                labels.push(("connection_type", k.connection.to_string()));
            }
            for (zero, list) in [(true, &mut *zeros), (false, &mut *out)] {
                if zero && e.written {
                    continue;
                }
                let v = |x: u64| if zero { 0.0 } else { x as f64 };
                list.push((
                    "traces_service_graph_request_total".into(),
                    labels.clone(),
                    v(e.total),
                ));
                list.push((
                    "traces_service_graph_request_failed_total".into(),
                    labels.clone(),
                    v(e.failed),
                ));
                e.server.write(
                    list,
                    "traces_service_graph_request_server_seconds",
                    &self.bounds,
                    &labels,
                    zero,
                );
                e.client.write(
                    list,
                    "traces_service_graph_request_client_seconds",
                    &self.bounds,
                    &labels,
                    zero,
                );
            }
            e.written = true;
        }
    }
}

fn connection(client_kind: i32, server_kind: i32) -> &'static str {
    if client_kind == 4 && server_kind == 5 {
        "messaging_system"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{cfg, span};
    use super::*;

    fn edge<'a>(g: &'a ServiceGraph, c: &str, s: &str) -> Option<&'a Edge> {
        g.edges
            .iter()
            .find(|(k, _)| &*k.client == c && &*k.server == s)
            .map(|(_, e)| e)
    }

    #[test]
    fn pairs_in_either_order_and_not_within_a_service() {
        let counters = SpanMetricsCounters::default();
        let mut g = ServiceGraph::new(&cfg());
        let now = Instant::now();
        let (fe, be): (Arc<str>, Arc<str>) = ("frontend".into(), "backend".into());
        // trace 1: client span first, then the server span
        g.observe(
            &fe,
            &span("GET /", 2, 0, 500, 1, 1, None),
            now,
            100,
            &counters,
        );
        g.observe(
            &fe,
            &span("call", 3, 0, 300, 1, 2, Some(1)),
            now,
            100,
            &counters,
        );
        g.observe(
            &be,
            &span("handle", 2, 2, 250, 1, 3, Some(2)),
            now,
            100,
            &counters,
        );
        // trace 2: server span first
        g.observe(
            &be,
            &span("handle", 2, 0, 150, 2, 3, Some(2)),
            now,
            100,
            &counters,
        );
        g.observe(
            &fe,
            &span("call", 3, 0, 200, 2, 2, Some(1)),
            now,
            100,
            &counters,
        );
        let e = edge(&g, "frontend", "backend").expect("edge");
        assert_eq!((e.total, e.failed), (2, 1));
        assert_eq!(e.server.count, 2);
        assert!((e.server.sum - 0.4).abs() < 1e-9);
        assert!((e.client.sum - 0.5).abs() < 1e-9);
        // the root server span is called by "user"
        assert_eq!(edge(&g, "user", "frontend").unwrap().total, 1);
        assert!(edge(&g, "frontend", "frontend").is_none());
    }

    #[test]
    fn virtual_peer_after_the_wait_and_unpaired_counted() {
        let counters = SpanMetricsCounters::default();
        let mut g = ServiceGraph::new(&cfg());
        let now = Instant::now();
        let api: Arc<str> = "api".into();
        let mut db = span("SELECT", 3, 0, 20, 5, 9, None);
        db.peer = Some(("orders".into(), true));
        g.observe(&api, &db, now, 100, &counters);
        g.observe(
            &api,
            &span("GET", 3, 0, 20, 6, 9, None),
            now,
            100,
            &counters,
        );
        g.expire(now + Duration::from_secs(5), &counters);
        assert!(edge(&g, "api", "orders").is_none());
        g.expire(now + Duration::from_secs(11), &counters);
        let e = edge(&g, "api", "orders").unwrap();
        assert_eq!(e.total, 1);
        assert_eq!(e.client.count, 1);
        assert_eq!(e.server.count, 0);
        assert_eq!(counters.unpaired.load(Relaxed), 1);
        assert!(g.parents.is_empty() && g.order.is_empty());
    }

    #[test]
    fn bounded_store_gives_up_the_oldest() {
        let counters = SpanMetricsCounters::default();
        let mut c = cfg();
        c.graph_max_items = 10;
        let mut g = ServiceGraph::new(&c);
        let now = Instant::now();
        let s: Arc<str> = "s".into();
        for i in 0..100u128 {
            g.observe(&s, &span("x", 1, 0, 1, i, 1, Some(7)), now, 100, &counters);
        }
        assert!(g.order.len() <= 10);
        assert!(g.parents.len() <= 10 && g.children.len() <= 10);
        assert!(counters.evicted.load(Relaxed) >= 180);
    }
}
