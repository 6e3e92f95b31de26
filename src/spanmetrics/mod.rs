//! Metrics derived from spans as they are stored, under Tempo's metrics-generator names, so that
//! Grafana's APM table and service graph and Jaeger's Monitor tab work against Sightline's own
//! Prometheus API with no connector to wire up:
//!
//! - span metrics: `traces_spanmetrics_calls_total` and `traces_spanmetrics_latency_*` by
//!   `service`, `span_name`, `span_kind`, `status_code`;
//! - service-graph metrics (`graph.rs`): `traces_service_graph_request_total` and friends by
//!   `client`, `server` (and `connection_type` for virtual nodes);
//! - the process map: which service a process id or container id belongs to, from the resources
//!   of recent spans, which the GPU sampler uses to attribute GPU time and energy to services.
//!
//! [`SpanMetrics`] is the trace store's commit observer: it takes a compact observation of every
//! group of spans before the write ([`extract`]) and submits it once the commit succeeded
//! ([`SpanMetrics::submit`]); one thread aggregates them in memory and writes
//! the cumulative values to the metrics store every `interval`, with wall-clock timestamps, as
//! Tempo's generator does. A series' first write is preceded by a zero at the previous write's
//! time, so `rate()` and `increase()` count its first spans. Counters live in memory: a restart
//! starts them from zero again, which PromQL reads as a counter reset. What is not owned here:
//! storing spans (`traces`), the dependency counts of Jaeger's `/api/dependencies`
//! (`traces::deps`), and the GPU samples themselves (`samplers::gpu`).

pub mod graph;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;

use crate::base::clock::now_ms;
pub use crate::config::{SpanMetricsConfig, default_graph_buckets, default_latency_buckets};
use crate::telemetry::{Exposition, Kind, MetricSource};
use crate::traces::{AfterCommit, CommitObserver, model};
use crate::tsdb::{Batch, Labels, Metadata, Tsdb};

/// One derived sample before it becomes a store series: name, labels, value.
pub type Derived = (String, Vec<(&'static str, String)>, f64);

/// The label value that stands for every series past the cardinality limit.
pub const OVERFLOW: &str = "__overflow__";

/// Batches waiting for the aggregator; past this the writer does not wait, it counts the spans
/// as dropped from the derived metrics (they are stored all the same).
const QUEUE_BATCHES: usize = 1024;

/// One span, as much as the derived metrics need.
#[derive(Debug, Clone)]
pub struct SpanObs {
    pub name: String,
    pub kind: i32,
    /// OTLP status code: 0 unset, 1 ok, 2 error.
    pub status: i32,
    pub start_ns: u64,
    pub end_ns: u64,
    pub trace: u128,
    pub span: u64,
    pub parent: Option<u64>,
    /// The uninstrumented peer a client span names (`peer.service`, else `db.name` or
    /// `db.system`), and whether it is a database.
    pub peer: Option<(String, bool)>,
}

impl SpanObs {
    pub fn seconds(&self) -> f64 {
        self.end_ns.saturating_sub(self.start_ns) as f64 / 1e9
    }
    pub fn failed(&self) -> bool {
        self.status == 2
    }
}

/// The spans of one resource, with what identifies the process that sent them.
#[derive(Debug, Clone)]
pub struct ResourceObs {
    pub service: Arc<str>,
    pub host: Option<String>,
    pub pid: Option<u32>,
    pub container: Option<String>,
    pub spans: Vec<SpanObs>,
}

fn str_attr(v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> Option<String> {
    match v.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// What the derived metrics need from a batch of (already validated) spans.
pub fn extract(data: &[ResourceSpans]) -> Vec<ResourceObs> {
    let mut out = Vec::with_capacity(data.len());
    for rs in data {
        let mut r = ResourceObs {
            service: model::service_name(rs.resource.as_ref()).into(),
            host: None,
            pid: None,
            container: None,
            spans: Vec::new(),
        };
        for kv in rs.resource.iter().flat_map(|r| &r.attributes) {
            match kv.key.as_str() {
                "host.name" => r.host = str_attr(&kv.value),
                "container.id" => r.container = str_attr(&kv.value),
                "process.pid" => {
                    r.pid = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                        Some(any_value::Value::IntValue(i)) => u32::try_from(*i).ok(),
                        Some(any_value::Value::StringValue(s)) => s.trim().parse().ok(),
                        _ => None,
                    }
                }
                _ => {}
            }
        }
        for ss in &rs.scope_spans {
            for span in &ss.spans {
                let (Some(t), Some(s)) = (
                    model::trace_id(&span.trace_id),
                    model::span_id(&span.span_id),
                ) else {
                    continue;
                };
                let mut peer = None;
                if matches!(span.kind, 3 | 4) {
                    let attr = |k: &str| {
                        span.attributes
                            .iter()
                            .find(|kv| kv.key == k)
                            .and_then(|kv| str_attr(&kv.value))
                    };
                    peer = attr("peer.service")
                        .map(|p| (p, false))
                        .or_else(|| attr("db.name").map(|p| (p, true)))
                        .or_else(|| attr("db.system").map(|p| (p, true)));
                }
                r.spans.push(SpanObs {
                    name: span.name.clone(),
                    kind: span.kind,
                    status: span.status.as_ref().map_or(0, |s| s.code),
                    start_ns: span.start_time_unix_nano,
                    end_ns: span.end_time_unix_nano,
                    trace: u128::from_be_bytes(t),
                    span: u64::from_be_bytes(s),
                    parent: model::span_id(&span.parent_span_id).map(u64::from_be_bytes),
                    peer,
                });
            }
        }
        if !r.spans.is_empty() {
            out.push(r);
        }
    }
    out
}

/// OTLP span kind as the label value Tempo and the Collector write.
pub fn kind_label(kind: i32) -> &'static str {
    match kind {
        1 => "SPAN_KIND_INTERNAL",
        2 => "SPAN_KIND_SERVER",
        3 => "SPAN_KIND_CLIENT",
        4 => "SPAN_KIND_PRODUCER",
        5 => "SPAN_KIND_CONSUMER",
        _ => "SPAN_KIND_UNSPECIFIED",
    }
}

pub fn status_label(code: i32) -> &'static str {
    match code {
        1 => "STATUS_CODE_OK",
        2 => "STATUS_CODE_ERROR",
        _ => "STATUS_CODE_UNSET",
    }
}

/// A classic histogram: counts per bucket (not cumulative; the last is `+Inf`), sum, count.
#[derive(Debug, Clone)]
pub struct Hist {
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Hist {
    fn new(bounds: &[f64]) -> Hist {
        Hist {
            buckets: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, bounds: &[f64], v: f64) {
        // `le` is inclusive: the first bound >= v.
        let i = bounds.partition_point(|b| *b < v);
        self.buckets[i] += 1;
        self.sum += v;
        self.count += 1;
    }

    /// `_bucket` (cumulative, with `le`), `_sum` and `_count` samples.
    fn write(
        &self,
        out: &mut Vec<Derived>,
        base: &str,
        bounds: &[f64],
        labels: &[(&'static str, String)],
        zero: bool,
    ) {
        let mut acc = 0u64;
        for (i, n) in self.buckets.iter().enumerate() {
            acc += n;
            let le = match bounds.get(i) {
                Some(b) => crate::base::gofmt::float(*b, crate::base::gofmt::FloatStyle::G),
                None => "+Inf".to_string(),
            };
            let mut l = labels.to_vec();
            l.push(("le", le));
            out.push((
                format!("{base}_bucket"),
                l,
                if zero { 0.0 } else { acc as f64 },
            ));
        }
        out.push((
            format!("{base}_sum"),
            labels.to_vec(),
            if zero { 0.0 } else { self.sum },
        ));
        out.push((
            format!("{base}_count"),
            labels.to_vec(),
            if zero { 0.0 } else { self.count as f64 },
        ));
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CallKey {
    service: Arc<str>,
    name: Arc<str>,
    kind: &'static str,
    status: &'static str,
}

struct CallSeries {
    calls: u64,
    latency: Hist,
    written: bool,
}

/// Counters for `/metrics`.
#[derive(Default)]
pub struct SpanMetricsCounters {
    pub spans: AtomicU64,
    pub dropped_spans: AtomicU64,
    pub overflow_spans: AtomicU64,
    pub series: AtomicU64,
    pub edges: AtomicU64,
    pub unpaired: AtomicU64,
    pub evicted: AtomicU64,
    pub flushes: AtomicU64,
}

impl MetricSource for SpanMetricsCounters {
    fn write_metrics(&self, out: &mut Exposition) {
        for (name, kind, help, v) in [
            (
                "sightline_spanmetrics_spans_total",
                Kind::Counter,
                "Spans counted by the span and service-graph metrics",
                &self.spans,
            ),
            (
                "sightline_spanmetrics_dropped_spans_total",
                Kind::Counter,
                "Stored spans left out of the derived metrics because the aggregator was behind",
                &self.dropped_spans,
            ),
            (
                "sightline_spanmetrics_overflow_spans_total",
                Kind::Counter,
                "Spans counted in the __overflow__ series because the series limit was reached",
                &self.overflow_spans,
            ),
            (
                "sightline_spanmetrics_series",
                Kind::Gauge,
                "Label sets held by the span and service-graph metrics",
                &self.series,
            ),
            (
                "sightline_servicegraph_edges_total",
                Kind::Counter,
                "Calls found between services (client and server halves paired)",
                &self.edges,
            ),
            (
                "sightline_servicegraph_unpaired_total",
                Kind::Counter,
                "Spans whose partner did not arrive within the wait",
                &self.unpaired,
            ),
            (
                "sightline_servicegraph_evicted_total",
                Kind::Counter,
                "Waiting spans given up early because the pairing store was full",
                &self.evicted,
            ),
            (
                "sightline_spanmetrics_writes_total",
                Kind::Counter,
                "Writes of the derived metrics to the metrics store",
                &self.flushes,
            ),
        ] {
            out.single(name, kind, help, v);
        }
    }
}

/// Which service a process belongs to, from the resources of recent spans: by container id, and
/// by process id for spans from this host (or that do not say their host).
#[derive(Default)]
pub struct ProcessMap {
    inner: parking_lot::Mutex<ProcessMapInner>,
}

#[derive(Default)]
struct ProcessMapInner {
    pids: HashMap<u32, (Arc<str>, Option<String>, Instant)>,
    containers: HashMap<String, (Arc<str>, Instant)>,
}

/// Entries older than this are forgotten when the maps grow past [`PROCESS_MAP_MAX`].
const PROCESS_MAP_TTL: Duration = Duration::from_secs(3600);
const PROCESS_MAP_MAX: usize = 10_000;

impl ProcessMap {
    pub fn note(&self, r: &ResourceObs) {
        if r.pid.is_none() && r.container.is_none() {
            return;
        }
        let now = Instant::now();
        let mut m = self.inner.lock();
        if let Some(pid) = r.pid {
            if m.pids.len() >= PROCESS_MAP_MAX && !m.pids.contains_key(&pid) {
                m.pids
                    .retain(|_, v| now.duration_since(v.2) < PROCESS_MAP_TTL);
            }
            if m.pids.len() < PROCESS_MAP_MAX || m.pids.contains_key(&pid) {
                m.pids.insert(pid, (r.service.clone(), r.host.clone(), now));
            }
        }
        if let Some(c) = &r.container {
            if m.containers.len() >= PROCESS_MAP_MAX && !m.containers.contains_key(c) {
                m.containers
                    .retain(|_, v| now.duration_since(v.1) < PROCESS_MAP_TTL);
            }
            if m.containers.len() < PROCESS_MAP_MAX || m.containers.contains_key(c) {
                m.containers.insert(c.clone(), (r.service.clone(), now));
            }
        }
    }

    /// The service of a process on this host (`host` is this host's name): its container first,
    /// then its pid if the spans came from this host or did not name one.
    pub fn service(&self, pid: u32, container: Option<&str>, host: &str) -> Option<Arc<str>> {
        let m = self.inner.lock();
        if let Some(c) = container
            && let Some((s, _)) = m.containers.get(c)
        {
            return Some(s.clone());
        }
        match m.pids.get(&pid) {
            Some((s, h, _)) if h.as_deref().is_none_or(|h| h == host) => Some(s.clone()),
            _ => None,
        }
    }
}

enum Msg {
    Spans(Vec<ResourceObs>),
    Stop,
}

/// The handle the trace store (as its commit observer) and the GPU sampler hold; cheap to clone.
#[derive(Clone)]
pub struct SpanMetrics {
    tx: SyncSender<Msg>,
    pub processes: Arc<ProcessMap>,
    pub counters: Arc<SpanMetricsCounters>,
}

impl SpanMetrics {
    /// Starts the aggregator thread.
    pub fn start(
        cfg: SpanMetricsConfig,
        tsdb: Tsdb,
        counters: Arc<SpanMetricsCounters>,
    ) -> std::io::Result<(SpanMetrics, std::thread::JoinHandle<()>)> {
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE_BATCHES);
        let processes = Arc::new(ProcessMap::default());
        let agg = Aggregator::new(cfg, counters.clone(), processes.clone());
        let j = std::thread::Builder::new()
            .name("spanmetrics".into())
            .spawn(move || agg.run(rx, tsdb))?;
        Ok((
            SpanMetrics {
                tx,
                processes,
                counters,
            },
            j,
        ))
    }

    /// Hands over the observations of a committed batch; never blocks.
    pub fn submit(&self, obs: Vec<ResourceObs>) {
        if obs.is_empty() {
            return;
        }
        let n: usize = obs.iter().map(|r| r.spans.len()).sum();
        match self.tx.try_send(Msg::Spans(obs)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.counters.dropped_spans.fetch_add(n as u64, Relaxed);
            }
        }
    }

    /// Asks the thread to write what it has and stop (after the trace store's writer stopped).
    pub fn stop(&self) {
        let _ = self.tx.send(Msg::Stop);
    }
}

/// Span metrics listen to the trace store's commits: what they need is taken from the spans
/// before the write consumes them and handed to the aggregator once the commit succeeded.
impl CommitObserver for SpanMetrics {
    fn before_commit(&self, spans: &[ResourceSpans]) -> Option<AfterCommit> {
        let obs = extract(spans);
        let me = self.clone();
        Some(Box::new(move || me.submit(obs)))
    }
}

/// The aggregator: span metrics, the service graph and the process map.
pub struct Aggregator {
    cfg: SpanMetricsConfig,
    counters: Arc<SpanMetricsCounters>,
    processes: Arc<ProcessMap>,
    calls: HashMap<CallKey, CallSeries>,
    names: HashMap<String, Arc<str>>,
    graph: graph::ServiceGraph,
    last_write: Option<i64>,
    metadata_sent: bool,
}

impl Aggregator {
    pub fn new(
        cfg: SpanMetricsConfig,
        counters: Arc<SpanMetricsCounters>,
        processes: Arc<ProcessMap>,
    ) -> Aggregator {
        let graph = graph::ServiceGraph::new(&cfg);
        Aggregator {
            cfg,
            counters,
            processes,
            calls: HashMap::new(),
            names: HashMap::new(),
            graph,
            last_write: None,
            metadata_sent: false,
        }
    }

    fn run(mut self, rx: Receiver<Msg>, tsdb: Tsdb) {
        let mut next = Instant::now() + self.cfg.interval;
        loop {
            let wait = next.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(Msg::Spans(obs)) => self.observe(&obs, Instant::now()),
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {}
            }
            if Instant::now() >= next {
                self.write(&tsdb, Instant::now(), now_ms());
                next += self.cfg.interval;
                if next < Instant::now() {
                    next = Instant::now() + self.cfg.interval;
                }
            }
        }
        // Whatever is still queued, then one last write.
        while let Ok(Msg::Spans(obs)) = rx.try_recv() {
            self.observe(&obs, Instant::now());
        }
        self.write(&tsdb, Instant::now(), now_ms());
        tracing::info!("span metrics stopped");
    }

    fn write(&mut self, tsdb: &Tsdb, now: Instant, t: i64) {
        self.graph.expire(now, &self.counters);
        let batch = self.batch(t);
        if batch.samples.is_empty() {
            return;
        }
        self.counters.flushes.fetch_add(1, Relaxed);
        if let Err(e) = tsdb.append_blocking(batch) {
            tracing::warn!(error = %e, "span metrics not stored");
        }
    }

    fn intern(&mut self, name: &str) -> Arc<str> {
        if let Some(a) = self.names.get(name) {
            return a.clone();
        }
        let a: Arc<str> = name.into();
        self.names.insert(name.to_string(), a.clone());
        a
    }

    fn series_count(&self) -> usize {
        self.calls.len() + self.graph.edge_count()
    }

    /// Counts one batch of spans.
    pub fn observe(&mut self, obs: &[ResourceObs], now: Instant) {
        for r in obs {
            self.processes.note(r);
            for s in &r.spans {
                self.counters.spans.fetch_add(1, Relaxed);
                // Past the series limit a name never seen is not interned: the name cache stays
                // bounded by the admitted series.
                let full = self.series_count() >= self.cfg.max_series;
                let name = match self.names.get(s.name.as_str()) {
                    Some(a) => a.clone(),
                    None if full => OVERFLOW.into(),
                    None => self.intern(&s.name),
                };
                let mut key = CallKey {
                    service: r.service.clone(),
                    name,
                    kind: kind_label(s.kind),
                    status: status_label(s.status),
                };
                if !self.calls.contains_key(&key) && full {
                    self.counters.overflow_spans.fetch_add(1, Relaxed);
                    let o: Arc<str> = OVERFLOW.into();
                    key = CallKey {
                        service: o.clone(),
                        name: o,
                        kind: OVERFLOW,
                        status: OVERFLOW,
                    };
                }
                let bounds = &self.cfg.latency_buckets;
                let e = self.calls.entry(key).or_insert_with(|| CallSeries {
                    calls: 0,
                    latency: Hist::new(bounds),
                    written: false,
                });
                e.calls += 1;
                e.latency.observe(bounds, s.seconds());
                let room = self.cfg.max_series.saturating_sub(self.calls.len());
                self.graph.observe(&r.service, s, now, room, &self.counters);
            }
        }
        self.counters
            .series
            .store(self.series_count() as u64, Relaxed);
    }

    /// Every series' cumulative value at `t`; new series get a zero at the previous write first.
    pub fn batch(&mut self, t: i64) -> Batch {
        let prev = self
            .last_write
            .unwrap_or(t - self.cfg.interval.as_millis() as i64)
            .min(t - 1);
        self.last_write = Some(t);
        let mut samples: Vec<Derived> = Vec::new();
        let mut zeros: Vec<Derived> = Vec::new();
        for (k, s) in &mut self.calls {
            let labels = vec![
                ("service", k.service.to_string()),
                ("span_name", k.name.to_string()),
                ("span_kind", k.kind.to_string()),
                ("status_code", k.status.to_string()),
            ];
            let lb = &self.cfg.latency_buckets;
            if !s.written {
                zeros.push(("traces_spanmetrics_calls_total".into(), labels.clone(), 0.0));
                s.latency
                    .write(&mut zeros, "traces_spanmetrics_latency", lb, &labels, true);
                s.written = true;
            }
            samples.push((
                "traces_spanmetrics_calls_total".into(),
                labels.clone(),
                s.calls as f64,
            ));
            s.latency.write(
                &mut samples,
                "traces_spanmetrics_latency",
                lb,
                &labels,
                false,
            );
        }
        self.graph.samples(&mut samples, &mut zeros);
        let mut b = Batch::default();
        for (list, at) in [(zeros, prev), (samples, t)] {
            for (name, labels, v) in list {
                let l = Labels::from_pairs(
                    labels
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .chain([("__name__".to_string(), name)]),
                );
                b.push(l, at, v);
            }
        }
        // Metadata goes with the first batch that has samples (an empty batch is not written).
        if !self.metadata_sent && !b.samples.is_empty() {
            let md = |kind: &str, help: &str| Metadata {
                kind: kind.into(),
                help: help.into(),
                unit: String::new(),
            };
            b.metadata = vec![
                (
                    "traces_spanmetrics_calls".into(),
                    md(
                        "counter",
                        "Spans by service, name, kind and status (derived by Sightline).",
                    ),
                ),
                (
                    "traces_spanmetrics_latency".into(),
                    md(
                        "histogram",
                        "Span duration in seconds (derived by Sightline).",
                    ),
                ),
                (
                    "traces_service_graph_request".into(),
                    md("counter", "Requests between two services."),
                ),
                (
                    "traces_service_graph_request_failed".into(),
                    md("counter", "Failed requests between two services."),
                ),
                (
                    "traces_service_graph_request_server_seconds".into(),
                    md("histogram", "Request time seen by the server, in seconds."),
                ),
                (
                    "traces_service_graph_request_client_seconds".into(),
                    md("histogram", "Request time seen by the client, in seconds."),
                ),
            ];
            self.metadata_sent = true;
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn cfg() -> SpanMetricsConfig {
        SpanMetricsConfig {
            enabled: true,
            interval: Duration::from_secs(15),
            max_series: 100,
            latency_buckets: default_latency_buckets(),
            graph_buckets: default_graph_buckets(),
            graph_wait: Duration::from_secs(10),
            graph_max_items: 1000,
        }
    }

    pub(crate) fn span(
        name: &str,
        kind: i32,
        status: i32,
        ms: u64,
        trace: u128,
        id: u64,
        parent: Option<u64>,
    ) -> SpanObs {
        SpanObs {
            name: name.into(),
            kind,
            status,
            start_ns: 1_000_000_000,
            end_ns: 1_000_000_000 + ms * 1_000_000,
            trace,
            span: id,
            parent,
            peer: None,
        }
    }

    fn res(service: &str, spans: Vec<SpanObs>) -> ResourceObs {
        ResourceObs {
            service: service.into(),
            host: None,
            pid: None,
            container: None,
            spans,
        }
    }

    fn value(b: &Batch, name: &str, want: &[(&str, &str)], t: i64) -> Option<f64> {
        b.samples.iter().find_map(|(i, ts, v)| {
            let l = &b.series[*i as usize];
            (*ts == t
                && l.metric_name() == Some(name)
                && want.iter().all(|(k, v)| l.get(k) == Some(*v)))
            .then_some(*v)
        })
    }

    #[test]
    fn buckets_are_tempos() {
        let b = default_latency_buckets();
        assert_eq!(b.len(), 14);
        assert_eq!(b[0], 0.002);
        assert_eq!(b[13], 16.384);
        assert_eq!(
            default_graph_buckets(),
            vec![0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8]
        );
    }

    #[test]
    fn calls_latency_and_a_zero_first() {
        let mut a = Aggregator::new(cfg(), Default::default(), Default::default());
        let now = Instant::now();
        a.observe(
            &[res(
                "api",
                vec![
                    span("GET /", 2, 0, 3, 1, 1, None),
                    span("GET /", 2, 0, 4, 2, 1, None),
                    span("GET /", 2, 2, 1000, 3, 1, None),
                ],
            )],
            now,
        );
        let b = a.batch(100_000);
        let ok = [
            ("service", "api"),
            ("span_name", "GET /"),
            ("span_kind", "SPAN_KIND_SERVER"),
            ("status_code", "STATUS_CODE_UNSET"),
        ];
        assert_eq!(
            value(&b, "traces_spanmetrics_calls_total", &ok, 100_000),
            Some(2.0)
        );
        assert_eq!(
            value(&b, "traces_spanmetrics_calls_total", &ok, 85_000),
            Some(0.0)
        );
        let mut le = ok.to_vec();
        le.push(("le", "0.004"));
        assert_eq!(
            value(&b, "traces_spanmetrics_latency_bucket", &le, 100_000),
            Some(2.0)
        );
        le.pop();
        le.push(("le", "0.002"));
        assert_eq!(
            value(&b, "traces_spanmetrics_latency_bucket", &le, 100_000),
            Some(0.0)
        );
        le.pop();
        le.push(("le", "+Inf"));
        assert_eq!(
            value(&b, "traces_spanmetrics_latency_bucket", &le, 100_000),
            Some(2.0)
        );
        let err = [("service", "api"), ("status_code", "STATUS_CODE_ERROR")];
        assert_eq!(
            value(&b, "traces_spanmetrics_latency_sum", &err, 100_000),
            Some(1.0)
        );
        assert_eq!(
            value(&b, "traces_spanmetrics_latency_count", &err, 100_000),
            Some(1.0)
        );
        assert_eq!(b.metadata.len(), 6);
        // The next write has no zeros and no metadata.
        let b = a.batch(115_000);
        assert!(b.samples.iter().all(|s| s.1 == 115_000));
        assert!(b.metadata.is_empty());
    }

    #[test]
    fn metadata_waits_for_the_first_write_with_samples() {
        let mut a = Aggregator::new(cfg(), Default::default(), Default::default());
        assert!(a.batch(1000).metadata.is_empty());
        a.observe(
            &[res("api", vec![span("x", 2, 0, 1, 1, 1, None)])],
            Instant::now(),
        );
        assert_eq!(a.batch(2000).metadata.len(), 6);
    }

    #[test]
    fn overflow_past_the_series_limit() {
        let mut c = cfg();
        c.max_series = 2;
        let counters: Arc<SpanMetricsCounters> = Default::default();
        let mut a = Aggregator::new(c, counters.clone(), Default::default());
        let spans = (0..5)
            .map(|i| span(&format!("op{i}"), 1, 0, 1, i as u128 + 1, 1, None))
            .collect();
        a.observe(&[res("s", spans)], Instant::now());
        let b = a.batch(1000);
        let o = [("service", OVERFLOW), ("span_name", OVERFLOW)];
        assert_eq!(
            value(&b, "traces_spanmetrics_calls_total", &o, 1000),
            Some(3.0)
        );
        assert_eq!(counters.overflow_spans.load(Relaxed), 3);
        assert!(a.names.len() <= 2, "names past the limit are not kept");
    }

    #[test]
    fn process_map_by_container_then_pid_on_this_host() {
        let m = ProcessMap::default();
        let mut r = res("trainer", vec![]);
        r.pid = Some(42);
        r.host = Some("gpu-1".into());
        m.note(&r);
        let mut r2 = res("infer", vec![]);
        r2.container = Some("abc".into());
        r2.pid = Some(7);
        m.note(&r2);
        assert_eq!(m.service(42, None, "gpu-1").as_deref(), Some("trainer"));
        assert_eq!(m.service(42, None, "gpu-2"), None);
        assert_eq!(
            m.service(99, Some("abc"), "gpu-2").as_deref(),
            Some("infer")
        );
        assert_eq!(m.service(7, None, "anywhere").as_deref(), Some("infer"));
    }
}
