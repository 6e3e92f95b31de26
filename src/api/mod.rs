//! Query APIs on the main listener: the Jaeger-compatible trace API (`jaeger.rs`) and its
//! Monitor-tab metrics (`spm.rs`), Sightline's log search (`logs.rs`), GPU use beside a trace
//! (`gpu.rs`), and the Prometheus API (`prom.rs` for series, labels and metadata, `query.rs` for
//! PromQL, `rules.rs` for rules, alerts and reload, `alertmanager.rs` for Alertmanager's API v2, `prom_params.rs` for the parameters both take), and Loki's query API over LogQL (`loki.rs`), and the dashboard part of Grafana's HTTP API
//! (`grafana.rs`). Each protocol has its own router;
//! every failure becomes an answer in `edge.rs`, the one place that knows Prometheus's and
//! Jaeger's error envelopes and their status codes. PromQL runs through
//! [`crate::promql::QueryService`].

pub mod alertmanager;
pub mod edge;
pub mod federate;
pub mod gpu;
pub mod grafana;
pub mod jaeger;
pub mod logs;
pub mod loki;
pub mod prom;
mod prom_params;
pub mod query;
pub mod rules;
pub mod spm;
pub mod targets;

use crate::traces::TraceStore;

/// What the query routers read from.
#[derive(Clone)]
pub struct ApiState {
    pub store: TraceStore,
}
