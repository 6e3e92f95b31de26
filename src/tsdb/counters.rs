//! `/metrics` counters and gauges of the metrics store (`sightline_tsdb_*`).

use std::sync::atomic::AtomicU64;

use crate::telemetry::{Exposition, Kind, MetricSource};

/// Counters for `/metrics`.
#[derive(Default)]
pub struct TsdbCounters {
    pub samples_appended: AtomicU64,
    pub samples_duplicate: AtomicU64,
    pub rejected_conflict: AtomicU64,
    pub rejected_too_old: AtomicU64,
    pub rejected_series_limit: AtomicU64,
    pub rejected_invalid: AtomicU64,
    pub rejected_head_full: AtomicU64,
    pub series_created: AtomicU64,
    pub wal_fsyncs: AtomicU64,
    pub wal_write_failures: AtomicU64,
    pub wal_repairs: AtomicU64,
    pub blocks_cut: AtomicU64,
    pub compactions: AtomicU64,
    pub block_failures: AtomicU64,
    pub retention_deleted_blocks: AtomicU64,
    pub head_series: AtomicU64,
    pub head_bytes: AtomicU64,
    pub blocks: AtomicU64,
    pub block_bytes: AtomicU64,
    pub wal_bytes: AtomicU64,
}

impl MetricSource for TsdbCounters {
    fn write_metrics(&self, out: &mut Exposition) {
        for (name, kind, help, v) in [
            (
                "sightline_tsdb_samples_appended_total",
                Kind::Counter,
                "Samples stored in the metrics store",
                &self.samples_appended,
            ),
            (
                "sightline_tsdb_samples_duplicate_total",
                Kind::Counter,
                "Samples identical to a stored one (acknowledged, stored once)",
                &self.samples_duplicate,
            ),
        ] {
            out.single(name, kind, help, v);
        }
        let name = "sightline_tsdb_samples_rejected_total";
        out.family(name, Kind::Counter, "Samples refused by the metrics store");
        for (reason, v) in [
            ("duplicate_timestamp", &self.rejected_conflict),
            ("too_old", &self.rejected_too_old),
            ("series_limit", &self.rejected_series_limit),
            ("invalid", &self.rejected_invalid),
            ("head_full", &self.rejected_head_full),
        ] {
            out.sample(name, &[("reason", reason)], v);
        }
        for (name, kind, help, v) in [
            (
                "sightline_tsdb_series_created_total",
                Kind::Counter,
                "Series created in the head",
                &self.series_created,
            ),
            (
                "sightline_tsdb_wal_fsyncs_total",
                Kind::Counter,
                "WAL group commits",
                &self.wal_fsyncs,
            ),
            (
                "sightline_tsdb_wal_write_failures_total",
                Kind::Counter,
                "WAL writes that failed (the export was refused with 503)",
                &self.wal_write_failures,
            ),
            (
                "sightline_tsdb_wal_repairs_total",
                Kind::Counter,
                "Torn or corrupt WAL tails cut off at start",
                &self.wal_repairs,
            ),
            (
                "sightline_tsdb_blocks_cut_total",
                Kind::Counter,
                "Blocks cut from the head",
                &self.blocks_cut,
            ),
            (
                "sightline_tsdb_compactions_total",
                Kind::Counter,
                "Block compactions",
                &self.compactions,
            ),
            (
                "sightline_tsdb_block_write_failures_total",
                Kind::Counter,
                "Block writes that failed (retried later)",
                &self.block_failures,
            ),
            (
                "sightline_tsdb_retention_deleted_blocks_total",
                Kind::Counter,
                "Blocks deleted by retention",
                &self.retention_deleted_blocks,
            ),
            (
                "sightline_tsdb_head_series",
                Kind::Gauge,
                "Series in the head",
                &self.head_series,
            ),
            (
                "sightline_tsdb_head_bytes",
                Kind::Gauge,
                "Approximate memory held by the head",
                &self.head_bytes,
            ),
            (
                "sightline_tsdb_blocks",
                Kind::Gauge,
                "Persisted blocks",
                &self.blocks,
            ),
            (
                "sightline_tsdb_block_bytes",
                Kind::Gauge,
                "Bytes of persisted blocks",
                &self.block_bytes,
            ),
            (
                "sightline_tsdb_wal_bytes",
                Kind::Gauge,
                "Bytes of WAL on disk",
                &self.wal_bytes,
            ),
        ] {
            out.single(name, kind, help, v);
        }
    }
}
