//! Sightline's own metrics at `/metrics`, in the Prometheus text format 0.0.4.
//!
//! This module owns three things: [`Exposition`], a writer of metric families (`# HELP`,
//! `# TYPE`, samples, histograms); [`MetricSource`], the trait each part implements for its own
//! counters (the metrics store, samplers, span metrics, forwarding, TLS); and [`Registry`], the
//! list of sources `app.rs` composes into one page. It also owns the counters of the OTLP front
//! doors and the trace store ([`Metrics`]), which both write. It imports nothing of the crate but
//! [`crate::base`], so every part can report without a cycle.
//!
//! The `prometheus-client` crate was considered for the writer and not taken: it writes
//! OpenMetrics (`# EOF`, its own `_total` and unit rules), wants its own metric types where ours
//! are plain atomics shared with the UI, and today's page must stay byte for byte as it is.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::base::Signal;

/// A metric family's type, as `# TYPE` writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A sample value: integers are written exactly, floats as Rust's shortest decimal.
pub trait SampleValue {
    fn write_to(&self, out: &mut String);
}

impl SampleValue for u64 {
    fn write_to(&self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl SampleValue for f64 {
    fn write_to(&self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl SampleValue for &AtomicU64 {
    fn write_to(&self, out: &mut String) {
        self.load(Relaxed).write_to(out)
    }
}

/// The text of one `/metrics` page, family by family.
#[derive(Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    pub fn new() -> Exposition {
        Exposition {
            out: String::with_capacity(8192),
        }
    }

    /// Starts a family: its `# HELP` and `# TYPE` lines.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) -> &mut Self {
        let _ = writeln!(
            self.out,
            "# HELP {name} {help}\n# TYPE {name} {}",
            kind.as_str()
        );
        self
    }

    /// One sample line; label values are written as given (ours need no escaping).
    pub fn sample(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        value: impl SampleValue,
    ) -> &mut Self {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{v}\"");
            }
            self.out.push('}');
        }
        self.out.push(' ');
        value.write_to(&mut self.out);
        self.out.push('\n');
        self
    }

    /// A family with one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: impl SampleValue) {
        self.family(name, kind, help).sample(name, &[], value);
    }

    /// A family with one sample per signal, labelled `signal`.
    pub fn per_signal(&mut self, name: &str, kind: Kind, help: &str, values: &[AtomicU64; 3]) {
        self.family(name, kind, help);
        for s in Signal::ALL {
            self.sample(name, &[("signal", s.name())], &values[s.index()]);
        }
    }

    /// A histogram family without labels: `bounds` and the cumulative `counts` at each bound,
    /// then `+Inf` (= `count`), `_sum` and `_count`.
    pub fn histogram(
        &mut self,
        name: &str,
        help: &str,
        bounds: &[f64],
        counts: &[u64],
        sum: f64,
        count: u64,
    ) {
        self.family(name, Kind::Histogram, help);
        for (bound, n) in bounds.iter().zip(counts) {
            let _ = writeln!(self.out, "{name}_bucket{{le=\"{bound}\"}} {n}");
        }
        let _ = writeln!(self.out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(self.out, "{name}_sum {sum}\n{name}_count {count}");
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// A part of Sightline that reports its own counters on `/metrics`.
pub trait MetricSource: Send + Sync {
    fn write_metrics(&self, out: &mut Exposition);
}

/// The sources of one `/metrics` page, written in the order they were added.
#[derive(Clone, Default)]
pub struct Registry {
    sources: Vec<Arc<dyn MetricSource>>,
}

impl Registry {
    pub fn add(&mut self, source: Arc<dyn MetricSource>) {
        self.sources.push(source);
    }

    /// The whole page.
    pub fn render(&self) -> String {
        let mut out = Exposition::new();
        for s in &self.sources {
            s.write_metrics(&mut out);
        }
        out.finish()
    }
}

pub const TRANSPORTS: [&str; 2] = ["grpc", "http"];

/// Upper bounds, in seconds, of the commit latency histogram.
const COMMIT_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

#[derive(Default)]
pub struct Counters {
    pub received: AtomicU64,
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
}

/// The counters of the OTLP front doors and the trace store.
#[derive(Default)]
pub struct Metrics {
    /// Indexed by `signal * 2 + transport`.
    items: [Counters; 6],
    /// HTTP/gRPC requests refused before export (bad data, too large, overloaded).
    pub refused_requests: AtomicU64,
    commit_buckets: [AtomicU64; COMMIT_BUCKETS.len()],
    commit_count: AtomicU64,
    commit_sum_micros: AtomicU64,
    pub queue_bytes: AtomicU64,
    pub database_bytes: AtomicU64,
    pub index_bytes: AtomicU64,
    pub index_lag_chunks: AtomicU64,
    pub retention_deleted_chunks: AtomicU64,
    pub truncated_values: AtomicU64,
    pub dropped_attributes: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
pub enum Transport {
    Grpc = 0,
    Http = 1,
}

impl Metrics {
    pub fn items(&self, signal: Signal, transport: Transport) -> &Counters {
        &self.items[signal.index() * 2 + transport as usize]
    }

    pub fn observe_commit(&self, seconds: f64) {
        for (i, bound) in COMMIT_BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                self.commit_buckets[i].fetch_add(1, Relaxed);
            }
        }
        self.commit_count.fetch_add(1, Relaxed);
        self.commit_sum_micros
            .fetch_add((seconds * 1e6) as u64, Relaxed);
    }
}

impl MetricSource for Metrics {
    fn write_metrics(&self, out: &mut Exposition) {
        for (name, help, pick) in [
            (
                "sightline_otlp_received_items_total",
                "OTLP items (spans, data points, log records) received",
                0,
            ),
            (
                "sightline_otlp_accepted_items_total",
                "OTLP items stored and acknowledged",
                1,
            ),
            (
                "sightline_otlp_rejected_items_total",
                "OTLP items rejected (reported as partial success)",
                2,
            ),
        ] {
            out.family(name, Kind::Counter, help);
            for signal in Signal::ALL {
                for (t, transport) in TRANSPORTS.iter().enumerate() {
                    let c = &self.items[signal.index() * 2 + t];
                    let v = [&c.received, &c.accepted, &c.rejected][pick];
                    out.sample(
                        name,
                        &[("signal", signal.name()), ("transport", transport)],
                        v,
                    );
                }
            }
        }
        let counts: Vec<u64> = self
            .commit_buckets
            .iter()
            .map(|b| b.load(Relaxed))
            .collect();
        out.histogram(
            "sightline_store_commit_duration_seconds",
            "Time to commit one group of batches to the trace store",
            &COMMIT_BUCKETS,
            &counts,
            self.commit_sum_micros.load(Relaxed) as f64 / 1e6,
            self.commit_count.load(Relaxed),
        );
        for (name, kind, help, v) in [
            (
                "sightline_otlp_refused_requests_total",
                Kind::Counter,
                "OTLP requests refused whole (undecodable, too large, overloaded)",
                &self.refused_requests,
            ),
            (
                "sightline_ingest_queue_bytes",
                Kind::Gauge,
                "Bytes accepted but not yet stored (counted against the memory budget)",
                &self.queue_bytes,
            ),
            (
                "sightline_store_database_bytes",
                Kind::Gauge,
                "Size of traces.db and its WAL on disk",
                &self.database_bytes,
            ),
            (
                "sightline_store_index_bytes",
                Kind::Gauge,
                "Size of the search index on disk",
                &self.index_bytes,
            ),
            (
                "sightline_store_index_lag_chunks",
                Kind::Gauge,
                "Stored chunks not yet searchable",
                &self.index_lag_chunks,
            ),
            (
                "sightline_store_retention_deleted_chunks_total",
                Kind::Counter,
                "Chunks deleted by retention",
                &self.retention_deleted_chunks,
            ),
            (
                "sightline_ingest_truncated_values_total",
                Kind::Counter,
                "Attribute values truncated to the configured length",
                &self.truncated_values,
            ),
            (
                "sightline_ingest_dropped_attributes_total",
                Kind::Counter,
                "Attributes dropped past the configured count",
                &self.dropped_attributes,
            ),
        ] {
            out.single(name, kind, help, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_samples_and_histograms_are_written_as_prometheus_reads_them() {
        let mut e = Exposition::new();
        e.single("a_total", Kind::Counter, "A thing", 3u64);
        e.family("b", Kind::Gauge, "B by x")
            .sample("b", &[("x", "1"), ("y", "z")], 0.5f64);
        e.histogram("h", "H", &[0.1, 1.0], &[1, 2], 0.75, 3);
        assert_eq!(
            e.finish(),
            "# HELP a_total A thing\n# TYPE a_total counter\na_total 3\n\
             # HELP b B by x\n# TYPE b gauge\nb{x=\"1\",y=\"z\"} 0.5\n\
             # HELP h H\n# TYPE h histogram\nh_bucket{le=\"0.1\"} 1\nh_bucket{le=\"1\"} 2\n\
             h_bucket{le=\"+Inf\"} 3\nh_sum 0.75\nh_count 3\n"
        );
    }

    #[test]
    fn registry_writes_sources_in_order() {
        struct One(&'static str);
        impl MetricSource for One {
            fn write_metrics(&self, out: &mut Exposition) {
                out.single(self.0, Kind::Gauge, "g", 1u64);
            }
        }
        let mut r = Registry::default();
        r.add(Arc::new(One("first")));
        r.add(Arc::new(One("second")));
        let page = r.render();
        assert!(page.find("first 1").unwrap() < page.find("second 1").unwrap());
    }
}
