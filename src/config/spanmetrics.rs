//! `[spanmetrics]`: span metrics and the service graph derived from stored spans.

use std::time::Duration;

use super::check::*;
use super::{ConfigError, raw};

#[derive(Debug, Clone)]
pub struct SpanMetricsConfig {
    pub enabled: bool,
    /// How often the cumulative values are written to the metrics store.
    pub interval: Duration,
    /// Label sets across span metrics and service-graph edges; past it, new ones go to one
    /// `__overflow__` series each.
    pub max_series: usize,
    /// Upper bounds (seconds) of `traces_spanmetrics_latency_bucket`.
    pub latency_buckets: Vec<f64>,
    /// Upper bounds (seconds) of the service-graph `*_seconds_bucket` series.
    pub graph_buckets: Vec<f64>,
    /// How long a span waits for the other half of its call.
    pub graph_wait: Duration,
    /// Spans waiting for a partner, at most; the oldest is given up first.
    pub graph_max_items: usize,
}

pub(super) fn spanmetrics_config(
    r: &raw::RawSpanMetrics,
) -> Result<SpanMetricsConfig, ConfigError> {
    Ok(SpanMetricsConfig {
        enabled: r.enabled,
        interval: nonzero_duration("spanmetrics.interval", &r.interval)?,
        max_series: positive("spanmetrics.max_series", r.max_series)? as usize,
        latency_buckets: buckets("spanmetrics.latency_buckets", &r.latency_buckets)?,
        graph_buckets: buckets(
            "spanmetrics.service_graph_buckets",
            &r.service_graph_buckets,
        )?,
        graph_wait: nonzero_duration("spanmetrics.service_graph_wait", &r.service_graph_wait)?,
        graph_max_items: positive(
            "spanmetrics.service_graph_max_items",
            r.service_graph_max_items,
        )? as usize,
    })
}
