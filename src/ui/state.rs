//! What the pages read: the trace store, the query service, the counters and a summary of the
//! configuration, built once at start.

use std::sync::Arc;
use std::time::Instant;

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use super::format::bytes;
use crate::base::Signal;
use crate::promql::QueryService;
use crate::telemetry::Metrics;
use crate::telemetry::Transport;
use crate::traces::TraceStore;

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
    /// PromQL over the metrics store, the same path the APIs use.
    pub query: QueryService,
    pub metrics: Counters,
    pub base: String,
    pub started: Instant,
    /// `(setting, value)` pairs for the status page; never secrets.
    pub summary: Vec<(String, String)>,
    pub gpu_enabled: bool,
    pub rates: Arc<IngestRates>,
    /// Per signal (traces, metrics, logs): "local", "forward" or "both"; `None` when nothing
    /// is forwarded.
    pub forward_modes: Option<[&'static str; 3]>,
    /// `(name, path)` of each proxied route, for the navigation.
    pub apps: Vec<(String, String)>,
    /// The rule manager (the Alerts page and the rule API); `None` in tests that run without.
    pub rules: Option<Arc<crate::rules::Manager>>,
    /// The built-in Alertmanager, when `[notify] config_file` is set.
    pub alertmanager: Option<Arc<crate::alertmanager::Alertmanager>>,
    /// `[alerting] external_labels` (federation adds them, as Prometheus does).
    pub external_labels: std::collections::BTreeMap<String, String>,
    /// The scrape pools (the Targets page and `/api/v1/targets`); empty without scrape jobs.
    pub targets: crate::scrape::ScrapeManager,
    /// Grafana dashboards (uploaded and provisioned); `None` in tests that run without.
    pub dashboards: Option<crate::dashboards::DashboardStore>,
}

impl UiState {
    pub fn new(
        store: TraceStore,
        query: QueryService,
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
                bytes(cfg.traces.max_size_bytes as f64),
            ),
            (
                "metrics.retention".into(),
                format!("{} s", cfg.metrics.tsdb.retention.as_secs()),
            ),
            (
                "metrics.max_size".into(),
                bytes(cfg.metrics.tsdb.max_size_bytes as f64),
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
            query,
            metrics: metrics.clone(),
            base: cfg.base_path.clone(),
            started: Instant::now(),
            summary,
            gpu_enabled: cfg.gpu.enabled,
            rules: None,
            alertmanager: None,
            external_labels: cfg.alerting.external_labels.clone(),
            targets: Default::default(),
            dashboards: None,
            rates: IngestRates::start(metrics.ingest.clone()),
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

/// Accepted items per second per signal over about the last minute, from the ingest counters.
pub struct IngestRates {
    snaps: parking_lot::Mutex<VecDeque<(Instant, [u64; 4])>>,
}

impl IngestRates {
    pub fn start(metrics: Arc<Metrics>) -> Arc<IngestRates> {
        let r = Arc::new(IngestRates {
            snaps: parking_lot::Mutex::new(VecDeque::new()),
        });
        let weak = Arc::downgrade(&r);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(5));
                loop {
                    tick.tick().await;
                    let Some(r) = weak.upgrade() else { break };
                    let snap = counts(&metrics);
                    let mut q = r.snaps.lock();
                    q.push_back((Instant::now(), snap));
                    while q.len() > 13 {
                        q.pop_front();
                    }
                }
            });
        }
        r
    }

    /// Items/s for traces, metrics, logs, and rejected items/s; `None` before two snapshots.
    pub(crate) fn rates(&self) -> Option<[f64; 4]> {
        let q = self.snaps.lock();
        let (a, b) = (q.front()?, q.back()?);
        let dt = b.0.duration_since(a.0).as_secs_f64();
        (dt > 0.0).then(|| std::array::from_fn(|i| (b.1[i] - a.1[i]) as f64 / dt))
    }
}

pub(crate) fn counts(m: &Metrics) -> [u64; 4] {
    let mut out = [0u64; 4];
    for (i, s) in Signal::ALL.into_iter().enumerate() {
        for t in [Transport::Grpc, Transport::Http] {
            let c = m.items(s, t);
            out[i] += c.accepted.load(Relaxed);
            out[3] += c.rejected.load(Relaxed);
        }
    }
    out
}
