//! Sightline's own metrics, served at `/metrics` in the Prometheus text format: items received,
//! accepted and rejected per signal and transport, store commit latency, bytes waiting in memory,
//! database size. Plain atomics; no registry crate is needed for a fixed set of series.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

pub const SIGNALS: [&str; 3] = ["traces", "metrics", "logs"];
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
    /// The metrics store's counters and gauges.
    pub tsdb: std::sync::Arc<crate::tsdb::TsdbCounters>,
    /// The host and GPU samplers' costs.
    pub samplers: std::sync::Arc<crate::samplers::SamplerCounters>,
    /// Span metrics and service graph.
    pub spanmetrics: std::sync::Arc<crate::spanmetrics::SpanMetricsCounters>,
    /// Forwarding upstream (rendered only when something is forwarded).
    pub forward: std::sync::Arc<crate::forward::ForwardCounters>,
    pub forwarding: std::sync::atomic::AtomicBool,
    /// Certificate reloads on SIGHUP (rendered only when a listener serves TLS).
    pub tls_reloads: std::sync::Arc<crate::tls::Reloads>,
    pub tls: std::sync::atomic::AtomicBool,
}

#[derive(Debug, Clone, Copy)]
pub enum Signal {
    Traces = 0,
    Metrics = 1,
    Logs = 2,
}

#[derive(Debug, Clone, Copy)]
pub enum Transport {
    Grpc = 0,
    Http = 1,
}

impl Metrics {
    pub fn items(&self, signal: Signal, transport: Transport) -> &Counters {
        &self.items[signal as usize * 2 + transport as usize]
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

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
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
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (s, signal) in SIGNALS.iter().enumerate() {
                for (t, transport) in TRANSPORTS.iter().enumerate() {
                    let c = &self.items[s * 2 + t];
                    let v = [&c.received, &c.accepted, &c.rejected][pick].load(Relaxed);
                    let _ = writeln!(
                        out,
                        "{name}{{signal=\"{signal}\",transport=\"{transport}\"}} {v}"
                    );
                }
            }
        }
        let name = "sightline_store_commit_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time to commit one group of batches to the trace store\n# TYPE {name} histogram"
        );
        for (i, bound) in COMMIT_BUCKETS.iter().enumerate() {
            let v = self.commit_buckets[i].load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {v}");
        }
        let count = self.commit_count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.commit_sum_micros.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {count}");
        for (name, kind, help, v) in [
            (
                "sightline_otlp_refused_requests_total",
                "counter",
                "OTLP requests refused whole (undecodable, too large, overloaded)",
                &self.refused_requests,
            ),
            (
                "sightline_ingest_queue_bytes",
                "gauge",
                "Bytes accepted but not yet stored (counted against the memory budget)",
                &self.queue_bytes,
            ),
            (
                "sightline_store_database_bytes",
                "gauge",
                "Size of traces.db and its WAL on disk",
                &self.database_bytes,
            ),
            (
                "sightline_store_index_bytes",
                "gauge",
                "Size of the search index on disk",
                &self.index_bytes,
            ),
            (
                "sightline_store_index_lag_chunks",
                "gauge",
                "Stored chunks not yet searchable",
                &self.index_lag_chunks,
            ),
            (
                "sightline_store_retention_deleted_chunks_total",
                "counter",
                "Chunks deleted by retention",
                &self.retention_deleted_chunks,
            ),
            (
                "sightline_ingest_truncated_values_total",
                "counter",
                "Attribute values truncated to the configured length",
                &self.truncated_values,
            ),
            (
                "sightline_ingest_dropped_attributes_total",
                "counter",
                "Attributes dropped past the configured count",
                &self.dropped_attributes,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                v.load(Relaxed)
            );
        }
        self.tsdb.render(&mut out);
        self.samplers.render(&mut out);
        self.spanmetrics.render(&mut out);
        if self.forwarding.load(Relaxed) {
            self.forward.render(&mut out);
        }
        if self.tls.load(Relaxed) {
            let name = "sightline_tls_certificate_reloads_total";
            let _ = writeln!(
                out,
                "# HELP {name} TLS certificate reloads on SIGHUP, by result (a failed one keeps the previous certificate)\n# TYPE {name} counter\n{name}{{result=\"ok\"}} {}\n{name}{{result=\"failed\"}} {}",
                self.tls_reloads.ok.load(Relaxed),
                self.tls_reloads.failed.load(Relaxed)
            );
        }
        out
    }
}
