//! The web UI at `/ui/`: server-rendered pages (askama templates in `ui/`), static files embedded
//! from `assets/` (rust-embed; uPlot under `assets/vendor/`), and a little plain JavaScript
//! (`assets/app.js`) for charts, the trace waterfall and the time-range picker.
//!
//! Everything shown comes from whoever can send OTLP, so it is untrusted: templates escape all
//! output (askama's default), the scripts only ever set `textContent` and attributes, and every
//! response carries a Content-Security-Policy without `unsafe-inline` (no inline script or style
//! anywhere). Every link, form and asset URL carries `base_path`; every view's state is in its
//! URL. This module owns presentation only: the data comes from the trace store, the metrics
//! store through PromQL, and the counters of [`crate::telemetry`].

mod assets;
mod map;
mod pages;
mod trace_data;

pub use pages::Range;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::routing::get;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::promql::Engine;
use crate::telemetry::Metrics;
use crate::traces::TraceStore;
use crate::tsdb::Tsdb;

/// The policy every UI response carries: only Sightline itself, no inline code.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The counters the pages show (the same ones `/metrics` reports).
#[derive(Clone)]
pub struct Counters {
    pub ingest: Arc<Metrics>,
    pub tsdb: Arc<crate::tsdb::TsdbCounters>,
    pub samplers: Arc<crate::samplers::SamplerCounters>,
    pub forward: Arc<crate::forward::ForwardCounters>,
}

/// What the pages read.
#[derive(Clone)]
pub struct UiState {
    pub store: TraceStore,
    pub tsdb: Tsdb,
    pub engine: Engine,
    pub metrics: Counters,
    pub base: String,
    pub started: Instant,
    /// `(setting, value)` pairs for the status page; never secrets.
    pub summary: Vec<(String, String)>,
    /// `(job, targets)` of the configured scrape jobs.
    pub scrape: Vec<(String, Vec<String>)>,
    pub gpu_enabled: bool,
    pub rates: Arc<pages::IngestRates>,
    /// Per signal (traces, metrics, logs): "local", "forward" or "both"; `None` when nothing
    /// is forwarded.
    pub forward_modes: Option<[&'static str; 3]>,
    /// `(name, path)` of each proxied route, for the navigation.
    pub apps: Vec<(String, String)>,
}

impl UiState {
    pub fn new(
        store: TraceStore,
        tsdb: Tsdb,
        engine: Engine,
        metrics: Counters,
        cfg: &crate::config::Config,
    ) -> UiState {
        let fwd = &cfg.forward;
        let forward_summary = if fwd.enabled() {
            format!(
                "{} ({}{}{})",
                fwd.endpoint,
                match fwd.protocol {
                    crate::forward::Protocol::Grpc => "grpc",
                    crate::forward::Protocol::HttpProtobuf => "http/protobuf",
                },
                if fwd.gzip { ", gzip" } else { "" },
                match &fwd.auth {
                    Some(crate::forward::Auth::Basic { .. }) => ", basic auth",
                    Some(crate::forward::Auth::Bearer(_)) => ", bearer token",
                    None => "",
                }
            )
        } else {
            "off".into()
        };
        let summary = vec![
            ("data_dir".into(), cfg.data_dir.display().to_string()),
            ("forward".into(), forward_summary),
            (
                "base_path".into(),
                if cfg.base_path.is_empty() {
                    "(none)".into()
                } else {
                    cfg.base_path.clone()
                },
            ),
            ("listen.http".into(), cfg.listen_http.to_string()),
            ("listen.otlp_grpc".into(), cfg.listen_otlp_grpc.to_string()),
            ("listen.otlp_http".into(), cfg.listen_otlp_http.to_string()),
            (
                "traces.retention".into(),
                format!("{} s", cfg.traces.retention.as_secs()),
            ),
            (
                "traces.max_size".into(),
                pages::bytes(cfg.traces.max_size_bytes as f64),
            ),
            (
                "metrics.retention".into(),
                format!("{} s", cfg.metrics.tsdb.retention.as_secs()),
            ),
            (
                "metrics.max_size".into(),
                pages::bytes(cfg.metrics.tsdb.max_size_bytes as f64),
            ),
            (
                "host sampler".into(),
                if cfg.host.enabled {
                    format!("every {} s", cfg.host.interval.as_secs_f64())
                } else {
                    "off".into()
                },
            ),
            (
                "gpu sampler".into(),
                if cfg.gpu.enabled {
                    format!("every {} s", cfg.gpu.interval.as_secs_f64())
                } else {
                    "off".into()
                },
            ),
            (
                "span metrics".into(),
                if cfg.spanmetrics.enabled {
                    format!("every {} s", cfg.spanmetrics.interval.as_secs_f64())
                } else {
                    "off".into()
                },
            ),
        ];
        UiState {
            store,
            tsdb,
            engine,
            metrics: metrics.clone(),
            base: cfg.base_path.clone(),
            started: Instant::now(),
            summary,
            scrape: cfg
                .scrape
                .iter()
                .map(|s| (s.job.clone(), s.targets.clone()))
                .collect(),
            gpu_enabled: cfg.gpu.enabled,
            rates: pages::IngestRates::start(metrics.ingest.clone()),
            apps: cfg
                .proxy
                .iter()
                .map(|r| (r.name.clone(), format!("{}{}/", cfg.base_path, r.path)))
                .collect(),
            forward_modes: cfg
                .forward
                .enabled()
                .then(|| cfg.forward.modes.map(|m| m.name())),
        }
    }
}

/// `/ui/...`: the pages, the data the trace view loads, and the embedded assets, with the
/// security headers on everything (the main listener gzips what clients accept gzipped).
pub fn router(state: UiState) -> Router {
    Router::new()
        .route("/ui/", get(pages::overview))
        .route("/ui/traces", get(pages::traces))
        .route("/ui/trace/{id}", get(pages::trace))
        .route("/ui/map", get(pages::service_map))
        .route("/ui/service/{name}", get(pages::service))
        .route("/ui/gpu", get(pages::gpu))
        .route("/ui/host", get(pages::host))
        .route("/ui/explore", get(pages::explore))
        .route("/ui/logs", get(pages::logs))
        .route("/ui/status", get(pages::status))
        .route("/ui/data/trace/{id}", get(trace_data::compact))
        .route("/ui/data/trace/{id}/span/{span}", get(trace_data::span))
        .route("/ui/assets/{*path}", get(assets::serve))
        .with_state(state)
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
}
