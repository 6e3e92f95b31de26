//! `[metrics]`: the metrics store's settings and how the OTLP converter labels series.

use std::time::Duration;

use super::check::*;
use super::{ConfigError, raw};

#[derive(Debug, Clone)]
pub struct MetricsConfig {
    pub tsdb: TsdbConfig,
    pub scope_labels: bool,
    pub delta_max_streams: usize,
    pub delta_stream_ttl: Duration,
}

/// Settings of the store (validated from `[metrics]`).
#[derive(Debug, Clone)]
pub struct TsdbConfig {
    pub retention: Duration,
    /// 0: no size limit.
    pub max_size_bytes: u64,
    pub block_duration: Duration,
    pub out_of_order_window: Duration,
    pub max_series: usize,
    pub wal_segment_bytes: u64,
    /// How often the maintenance thread compacts and applies retention.
    pub maintenance_interval: Duration,
}
impl Default for TsdbConfig {
    fn default() -> Self {
        TsdbConfig {
            retention: Duration::from_secs(15 * 86400),
            max_size_bytes: 0,
            block_duration: Duration::from_secs(2 * 3600),
            out_of_order_window: Duration::from_secs(3600),
            max_series: 1_000_000,
            wal_segment_bytes: 64 << 20,
            maintenance_interval: Duration::from_secs(30),
        }
    }
}

pub(super) fn metrics_config(m: &raw::RawMetrics) -> Result<MetricsConfig, ConfigError> {
    let block = nonzero_duration("metrics.block_duration", &m.block_duration)?;
    if block.as_millis() % 60_000 != 0 {
        return Err(invalid(
            "metrics.block_duration",
            &m.block_duration,
            "expected whole minutes, such as \"2h\"",
        ));
    }
    Ok(MetricsConfig {
        tsdb: TsdbConfig {
            retention: nonzero_duration("metrics.retention", &m.retention)?,
            max_size_bytes: size("metrics.max_size", &m.max_size)?,
            block_duration: block,
            out_of_order_window: duration("metrics.out_of_order_window", &m.out_of_order_window)?,
            max_series: positive("metrics.max_series", m.max_series)? as usize,
            wal_segment_bytes: positive(
                "metrics.wal_segment_size",
                size("metrics.wal_segment_size", &m.wal_segment_size)?,
            )?,
            maintenance_interval: nonzero_duration(
                "metrics.maintenance_interval",
                &m.maintenance_interval,
            )?,
        },
        scope_labels: m.scope_labels,
        delta_max_streams: positive("metrics.delta_max_streams", m.delta_max_streams)? as usize,
        delta_stream_ttl: nonzero_duration("metrics.delta_stream_ttl", &m.delta_stream_ttl)?,
    })
}
