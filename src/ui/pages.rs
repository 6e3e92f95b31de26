//! The page handlers: each reads what it shows (trace store, PromQL over the metrics store, own
//! counters), formats it into plain strings, and renders its template. Charts are `div`s that name
//! a PromQL query; `assets/app.js` draws them from `/api/v1/query_range`.

use crate::base::clock::now_ms;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::UiState;
use crate::base::Signal;
use crate::base::params::Params;
use crate::promql::QueryValue;
use crate::telemetry::{Metrics, Transport};
use crate::traces::model;
use crate::tsdb::Labels;

/// Time ranges the picker offers, with their length in seconds.
const RANGES: [(&str, i64); 9] = [
    ("5m", 300),
    ("15m", 900),
    ("1h", 3600),
    ("3h", 10_800),
    ("6h", 21_600),
    ("12h", 43_200),
    ("24h", 86_400),
    ("2d", 172_800),
    ("7d", 604_800),
];
const REFRESHES: [&str; 5] = ["off", "5s", "10s", "30s", "1m"];

/// Bumped with the assets so browsers fetch new copies.
pub const ASSET_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The selected time range: its length and end (now unless the URL fixes `end`, in ms).
pub struct Range {
    pub key: String,
    pub secs: i64,
    pub end_ms: i64,
    pub fixed_end: bool,
    pub refresh: String,
}

impl Range {
    pub fn from(p: &Params) -> Range {
        let (key, secs) = p
            .get("range")
            .and_then(|r| RANGES.iter().find(|(k, _)| *k == r))
            .copied()
            .unwrap_or(("1h", 3600));
        // An end between 1970 and 2100 (ms); anything else means "now".
        let end = p
            .get("end")
            .and_then(|e| e.parse::<i64>().ok())
            .filter(|e| (0..=4_102_444_800_000).contains(e));
        let refresh = p
            .get("refresh")
            .filter(|r| REFRESHES.contains(r))
            .unwrap_or("off");
        Range {
            key: key.into(),
            secs,
            end_ms: end.unwrap_or_else(now_ms),
            fixed_end: end.is_some(),
            refresh: refresh.into(),
        }
    }

    pub fn start_ms(&self) -> i64 {
        self.end_ms.saturating_sub(self.secs * 1000)
    }

    /// The range's part of a URL's query string.
    pub fn qs(&self) -> String {
        let mut q = format!("range={}", self.key);
        if self.fixed_end {
            q.push_str(&format!("&end={}", self.end_ms));
        }
        if self.refresh != "off" {
            q.push_str(&format!("&refresh={}", self.refresh));
        }
        q
    }
}

/// What the layout (`ui/base.html`) needs.
pub struct Page {
    pub base: String,
    pub title: String,
    pub active: &'static str,
    pub qs: String,
    pub range: String,
    pub ranges: Vec<(String, bool)>,
    pub refreshes: Vec<(String, bool)>,
    pub refresh: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub fixed_end: bool,
    pub v: &'static str,
    /// Proxied routes: (name, href).
    pub apps: Vec<(String, String)>,
    /// The signed-in session's CSRF token (for the sign-out form); empty without a session.
    pub csrf: String,
}

impl Page {
    fn new(st: &UiState, r: &Range, title: impl Into<String>, active: &'static str) -> Page {
        Page {
            base: st.base.clone(),
            title: title.into(),
            active,
            qs: r.qs(),
            range: r.key.clone(),
            ranges: RANGES
                .iter()
                .map(|(k, _)| (k.to_string(), *k == r.key))
                .collect(),
            refreshes: REFRESHES
                .iter()
                .map(|k| (k.to_string(), *k == r.refresh))
                .collect(),
            refresh: r.refresh.clone(),
            start_ms: r.start_ms(),
            end_ms: r.end_ms,
            fixed_end: r.fixed_end,
            v: ASSET_VERSION,
            apps: st.apps.clone(),
            csrf: crate::auth::current_csrf(),
        }
    }
}

fn render(t: impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "page template failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered; see the server log",
            )
                .into_response()
        }
    }
}

/// An instant PromQL query at `t` (ms); a failing query logs and shows nothing.
async fn instant(st: &UiState, q: String, t: i64) -> Vec<(Labels, f64)> {
    let expr = match crate::promql::parse(&q) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(query = %q, error = %e, "UI query does not parse");
            return Vec::new();
        }
    };
    let _slot = st.engine.acquire().await;
    let (db, engine) = (st.tsdb.clone(), st.engine.clone());
    match tokio::task::spawn_blocking(move || engine.instant(&db, &expr, t, None)).await {
        Ok(Ok(QueryValue::Vector(_, v))) => v,
        Ok(Ok(QueryValue::Scalar(_, s))) => vec![(Labels::default(), s)],
        Ok(Ok(_)) => Vec::new(),
        Ok(Err(e)) => {
            tracing::warn!(query = %q, error = %e, "UI query failed");
            Vec::new()
        }
        Err(e) => {
            tracing::error!(error = %e, "UI query task failed");
            Vec::new()
        }
    }
}

/// Values by one label.
async fn by_label(st: &UiState, q: String, t: i64, label: &str) -> BTreeMap<String, f64> {
    instant(st, q, t)
        .await
        .into_iter()
        .map(|(l, v)| (l.get(label).unwrap_or_default().to_string(), v))
        .collect()
}

pub fn bytes(v: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = v;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

fn num(v: Option<f64>, digits: usize, unit: &str) -> String {
    match v {
        // Small non-zero rates keep three significant digits instead of showing as 0.00.
        Some(v) if v.is_finite() && v != 0.0 && v.abs() < 0.1 && digits > 0 => {
            let d = (2 - v.abs().log10().floor() as i64).clamp(0, 12) as usize;
            format!("{v:.d$}{unit}")
        }
        Some(v) if v.is_finite() => format!("{v:.digits$}{unit}"),
        _ => "–".into(),
    }
}

fn seconds(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => {
            if v < 1.0 {
                format!("{:.1} ms", v * 1000.0)
            } else {
                format!("{v:.2} s")
            }
        }
        _ => "–".into(),
    }
}

fn duration_us(us: u64) -> String {
    seconds(Some(us as f64 / 1e6))
}

/// A PromQL string literal for a label value.
fn lit(s: &str) -> String {
    crate::base::gofmt::quote(s, crate::base::gofmt::QuoteStyle::Go)
}

fn url(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A chart the page script draws: PromQL queries (`$rate` becomes a window of a few steps) with
/// their legends ("" = the series' labels), and an optional query whose non-zero points are drawn
/// as event markers.
pub struct Chart {
    pub id: String,
    pub title: String,
    pub unit: String,
    pub series: String,
    pub markers: String,
}

pub fn chart(id: &str, title: &str, unit: &str, series: &[(&str, String)]) -> Chart {
    Chart {
        id: id.into(),
        title: title.into(),
        unit: unit.into(),
        series: serde_json::to_string(series).unwrap_or_else(|_| "[]".into()),
        markers: String::new(),
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
    fn rates(&self) -> Option<[f64; 4]> {
        let q = self.snaps.lock();
        let (a, b) = (q.front()?, q.back()?);
        let dt = b.0.duration_since(a.0).as_secs_f64();
        (dt > 0.0).then(|| std::array::from_fn(|i| (b.1[i] - a.1[i]) as f64 / dt))
    }
}

fn counts(m: &Metrics) -> [u64; 4] {
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

/// Accepted items per second (over about the last minute) and since start, per signal.
fn ingest_table(st: &UiState) -> Vec<(String, String)> {
    let rates = st.rates.rates();
    let c = counts(&st.metrics.ingest);
    ["Spans", "Metric points", "Log records", "Rejected items"]
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let r = rates.map_or("–".into(), |r| format!("{:.1}", r[i]));
            (n.to_string(), format!("{r} /s, {} since start", c[i]))
        })
        .collect()
}

/// The stores' sizes on disk and in memory.
fn storage_table(m: &super::Counters) -> Vec<(String, String)> {
    let b = |v: &std::sync::atomic::AtomicU64| bytes(v.load(Relaxed) as f64);
    vec![
        (
            "Spans and logs (SQLite)".into(),
            b(&m.ingest.database_bytes),
        ),
        ("Search index (Tantivy)".into(), b(&m.ingest.index_bytes)),
        ("Metrics head (memory)".into(), b(&m.tsdb.head_bytes)),
        (
            "Metrics blocks".into(),
            format!(
                "{} in {} blocks",
                b(&m.tsdb.block_bytes),
                m.tsdb.blocks.load(Relaxed)
            ),
        ),
        ("Metrics WAL".into(), b(&m.tsdb.wal_bytes)),
        (
            "Active series".into(),
            m.tsdb.head_series.load(Relaxed).to_string(),
        ),
    ]
}

// ---------------------------------------------------------------- overview

pub struct ServiceRow {
    pub name: String,
    pub rate: String,
    pub errors: String,
    pub error_high: bool,
    pub p50: String,
    pub p95: String,
    pub p99: String,
}

pub struct GpuRow {
    pub host: String,
    pub gpu: String,
    pub model: String,
    pub util: String,
    pub mem: String,
    pub temp: String,
    pub power: String,
}

#[derive(Template)]
#[template(path = "overview.html")]
pub struct Overview {
    pub page: Page,
    pub services: Vec<ServiceRow>,
    pub spans_known: bool,
    pub gpus: Vec<GpuRow>,
    pub gpu_note: String,
    pub host: Vec<(String, String)>,
    pub ingest: Vec<(String, String)>,
    pub storage: Vec<(String, String)>,
    pub charts: Vec<Chart>,
}

const SERVER_KINDS: &str = "span_kind=~\"SPAN_KIND_SERVER|SPAN_KIND_CONSUMER\"";

/// Request rate, error ratio and latency percentiles per service over the range, from the span
/// metrics (server and consumer spans: requests a service handled).
async fn red(st: &UiState, r: &Range, by: &str, filter: &str) -> Vec<(String, [Option<f64>; 5])> {
    let w = format!("{}s", r.secs);
    let sel = if filter.is_empty() {
        SERVER_KINDS.to_string()
    } else {
        format!("{SERVER_KINDS},{filter}")
    };
    let t = r.end_ms;
    let rate = by_label(
        st,
        format!("sum by ({by}) (rate(traces_spanmetrics_calls_total{{{sel}}}[{w}]))"),
        t,
        by,
    )
    .await;
    let err = by_label(
        st,
        format!("sum by ({by}) (rate(traces_spanmetrics_calls_total{{{sel},status_code=\"STATUS_CODE_ERROR\"}}[{w}])) / sum by ({by}) (rate(traces_spanmetrics_calls_total{{{sel}}}[{w}]))"),
        t,
        by,
    )
    .await;
    let mut q = Vec::new();
    for p in ["0.5", "0.95", "0.99"] {
        q.push(
            by_label(
                st,
                format!("histogram_quantile({p}, sum by ({by}, le) (rate(traces_spanmetrics_latency_bucket{{{sel}}}[{w}])))"),
                t,
                by,
            )
            .await,
        );
    }
    rate.iter()
        .map(|(k, v)| {
            (
                k.clone(),
                [
                    Some(*v),
                    Some(err.get(k).copied().unwrap_or(0.0)),
                    q[0].get(k).copied(),
                    q[1].get(k).copied(),
                    q[2].get(k).copied(),
                ],
            )
        })
        .collect()
}

fn red_row(name: String, v: Option<&[Option<f64>; 5]>) -> ServiceRow {
    let v = v.copied().unwrap_or([None; 5]);
    ServiceRow {
        name,
        rate: num(v[0], 2, "/s"),
        errors: num(v[1].map(|e| e * 100.0), 1, " %"),
        error_high: v[1].is_some_and(|e| e > 0.0),
        p50: seconds(v[2]),
        p95: seconds(v[3]),
        p99: seconds(v[4]),
    }
}

fn gpu_note(st: &UiState) -> String {
    if !st.gpu_enabled {
        "The GPU sampler is turned off ([gpu] enabled = false).".into()
    } else if st.metrics.samplers.gpu_up.load(Relaxed) == 0 {
        "No NVIDIA driver was found (libnvidia-ml.so.1 could not be loaded), so there is no GPU data. In a container, run with --gpus all and the NVIDIA container runtime.".into()
    } else {
        "NVML is loaded but no GPU samples are in this range yet.".into()
    }
}

async fn gpu_rows(st: &UiState, t: i64) -> Vec<GpuRow> {
    let key = |l: &Labels| {
        (
            l.get("Hostname").unwrap_or_default().to_string(),
            l.get("gpu").unwrap_or_default().to_string(),
        )
    };
    let mut rows: BTreeMap<(String, String), GpuRow> = BTreeMap::new();
    for (l, v) in instant(st, "DCGM_FI_DEV_GPU_UTIL{GPU_I_ID=\"\"}".into(), t).await {
        rows.insert(
            key(&l),
            GpuRow {
                host: l.get("Hostname").unwrap_or_default().into(),
                gpu: l.get("gpu").unwrap_or_default().into(),
                model: l.get("modelName").unwrap_or_default().into(),
                util: num(Some(v), 0, " %"),
                mem: "–".into(),
                temp: "–".into(),
                power: "–".into(),
            },
        );
    }
    let used = instant(st, "DCGM_FI_DEV_FB_USED{GPU_I_ID=\"\"}".into(), t).await;
    let free = instant(st, "DCGM_FI_DEV_FB_FREE{GPU_I_ID=\"\"}".into(), t).await;
    for (l, u) in used {
        if let Some(row) = rows.get_mut(&key(&l)) {
            let f = free.iter().find(|(fl, _)| key(fl) == key(&l)).map(|x| x.1);
            row.mem = match f {
                Some(f) => format!("{} / {}", bytes(u * 1048576.0), bytes((u + f) * 1048576.0)),
                None => bytes(u * 1048576.0),
            };
        }
    }
    for (l, v) in instant(st, "DCGM_FI_DEV_GPU_TEMP".into(), t).await {
        if let Some(row) = rows.get_mut(&key(&l)) {
            row.temp = num(Some(v), 0, " °C");
        }
    }
    for (l, v) in instant(st, "DCGM_FI_DEV_POWER_USAGE".into(), t).await {
        if let Some(row) = rows.get_mut(&key(&l)) {
            row.power = num(Some(v), 0, " W");
        }
    }
    rows.into_values().collect()
}

pub async fn overview(State(st): State<UiState>, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.as_deref());
    let r = Range::from(&p);
    let names = st.store.services().await.unwrap_or_default();
    let red = red(&st, &r, "service", "").await;
    let by: BTreeMap<String, [Option<f64>; 5]> = red.into_iter().collect();
    let mut all: Vec<String> = names;
    for k in by.keys() {
        if !all.contains(k) {
            all.push(k.clone());
        }
    }
    all.sort();
    let services = all
        .into_iter()
        .map(|n| {
            let v = by.get(&n);
            red_row(n, v)
        })
        .collect();
    let t = r.end_ms;
    let one = |v: Vec<(Labels, f64)>| v.first().map(|x| x.1);
    let host = vec![
        (
            "CPU busy".to_string(),
            num(one(instant(&st, "100 * (1 - avg(rate(node_cpu_seconds_total{mode=\"idle\"}[5m])))".into(), t).await), 1, " %"),
        ),
        ("Load (1m)".into(), num(one(instant(&st, "max(node_load1)".into(), t).await), 2, "")),
        (
            "Memory used".into(),
            num(one(instant(&st, "100 * (1 - sum(node_memory_MemAvailable_bytes) / sum(node_memory_MemTotal_bytes))".into(), t).await), 1, " %"),
        ),
        (
            "Root filesystem used".into(),
            num(one(instant(&st, "100 * (1 - max(node_filesystem_avail_bytes{mountpoint=\"/\"}) / max(node_filesystem_size_bytes{mountpoint=\"/\"}))".into(), t).await), 1, " %"),
        ),
    ];
    let (ingest, storage) = (ingest_table(&st), storage_table(&st.metrics));
    let gpus = gpu_rows(&st, t).await;
    render(Overview {
        charts: vec![chart(
            "chart-requests",
            "Requests per second by service",
            "/s",
            &[(
                "",
                format!(
                    "sum by (service) (rate(traces_spanmetrics_calls_total{{{SERVER_KINDS}}}[$rate]))"
                ),
            )],
        )],
        page: Page::new(&st, &r, "Overview", "overview"),
        spans_known: !by.is_empty(),
        services,
        gpu_note: gpu_note(&st),
        gpus,
        host,
        ingest,
        storage,
    })
}

// ---------------------------------------------------------------- trace search

pub struct TraceRow {
    pub id: String,
    pub root: String,
    pub start: String,
    pub spans: usize,
    pub services: String,
    pub duration: String,
    pub errors: usize,
}

#[derive(Template)]
#[template(path = "traces.html")]
pub struct Traces {
    pub page: Page,
    pub services: Vec<(String, bool)>,
    pub operations: Vec<(String, bool)>,
    pub tags: String,
    pub min_duration: String,
    pub max_duration: String,
    pub limit: String,
    pub searched: bool,
    pub error: String,
    pub rows: Vec<TraceRow>,
    /// `[[start_ms, duration_ms, id, errors], ...]` for the scatter plot.
    pub points: String,
}

pub fn iso_ms(ms: i64) -> String {
    let (y, mo, d, sod) = crate::base::clock::civil(ms.div_euclid(1000));
    format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02}.{:03}",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60,
        ms.rem_euclid(1000)
    )
}

pub async fn traces(State(st): State<UiState>, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.as_deref());
    let r = Range::from(&p);
    let service = p.get("service").unwrap_or("").to_string();
    let operation = p.get("operation").unwrap_or("").to_string();
    let names = st.store.services().await.unwrap_or_default();
    let ops = if service.is_empty() {
        Vec::new()
    } else {
        let mut o: Vec<String> = st
            .store
            .operations(service.clone(), None)
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        o.dedup();
        o
    };
    let mut t = Traces {
        page: Page::new(&st, &r, "Traces", "traces"),
        services: names.iter().map(|n| (n.clone(), *n == service)).collect(),
        operations: ops.iter().map(|n| (n.clone(), *n == operation)).collect(),
        tags: p.get("tags").unwrap_or("").into(),
        min_duration: p.get("minDuration").unwrap_or("").into(),
        max_duration: p.get("maxDuration").unwrap_or("").into(),
        limit: p.get("limit").unwrap_or("20").into(),
        searched: false,
        error: String::new(),
        rows: Vec::new(),
        points: "[]".into(),
    };
    // Search when a service is chosen (as Jaeger's UI does) or tags are given.
    if !service.is_empty() || !t.tags.is_empty() {
        t.searched = true;
        let mut pairs: Vec<(String, String)> = Vec::new();
        for k in [
            "service",
            "operation",
            "tags",
            "minDuration",
            "maxDuration",
            "limit",
        ] {
            if let Some(v) = p.get(k) {
                pairs.push((k.into(), v.into()));
            }
        }
        pairs.push(("start".into(), (r.start_ms() * 1000).to_string()));
        pairs.push(("end".into(), (r.end_ms * 1000).to_string()));
        let qs: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        match crate::api::jaeger::parse_search(&Params::parse(Some(&qs))) {
            Err(e) => t.error = e,
            Ok(mut search) => {
                search.limit = search.limit.clamp(1, 1500);
                match st.store.find_traces(search).await {
                    Err(e) => t.error = e.to_string(),
                    Ok(found) => {
                        let mut points = Vec::new();
                        for spans in found {
                            let row = trace_row(&spans);
                            let start = spans
                                .iter()
                                .map(|s| s.span.start_time_unix_nano)
                                .min()
                                .unwrap_or(0);
                            let end = spans
                                .iter()
                                .map(|s| s.span.end_time_unix_nano)
                                .max()
                                .unwrap_or(0);
                            points.push(serde_json::json!([
                                start / 1_000_000,
                                end.saturating_sub(start) as f64 / 1e6,
                                row.id,
                                row.errors
                            ]));
                            t.rows.push(row);
                        }
                        t.points = serde_json::Value::Array(points).to_string();
                    }
                }
            }
        }
    }
    render(t)
}

fn trace_row(spans: &[crate::traces::StoredSpan]) -> TraceRow {
    let start = spans
        .iter()
        .map(|s| s.span.start_time_unix_nano)
        .min()
        .unwrap_or(0);
    let end = spans
        .iter()
        .map(|s| s.span.end_time_unix_nano)
        .max()
        .unwrap_or(0);
    let ids: std::collections::HashSet<&[u8]> =
        spans.iter().map(|s| s.span.span_id.as_slice()).collect();
    let root = spans
        .iter()
        .filter(|s| {
            s.span.parent_span_id.is_empty() || !ids.contains(s.span.parent_span_id.as_slice())
        })
        .min_by_key(|s| s.span.start_time_unix_nano)
        .or(spans.first());
    let mut services: Vec<String> = spans
        .iter()
        .map(|s| model::service_name(s.resource.as_ref().as_ref()))
        .collect();
    services.sort();
    services.dedup();
    TraceRow {
        id: spans
            .first()
            .map(|s| hex::encode(&s.span.trace_id))
            .unwrap_or_default(),
        root: root
            .map(|s| {
                format!(
                    "{}: {}",
                    model::service_name(s.resource.as_ref().as_ref()),
                    s.span.name
                )
            })
            .unwrap_or_default(),
        start: iso_ms((start / 1_000_000) as i64),
        spans: spans.len(),
        services: services.join(", "),
        duration: duration_us(end.saturating_sub(start) / 1000),
        errors: spans.iter().filter(|s| model::is_error(&s.span)).count(),
    }
}

// ---------------------------------------------------------------- trace view

#[derive(Template)]
#[template(path = "trace.html")]
pub struct TraceView {
    pub page: Page,
    pub id: String,
}

pub async fn trace(
    State(st): State<UiState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let p = Params::parse(q.as_deref());
    let r = Range::from(&p);
    let Some(tid) = model::parse_trace_id(&id) else {
        return (StatusCode::BAD_REQUEST, "malformed trace id").into_response();
    };
    render(TraceView {
        page: Page::new(&st, &r, format!("Trace {}", hex::encode(tid)), "traces"),
        id: hex::encode(tid),
    })
}

// ---------------------------------------------------------------- service map

#[derive(Template)]
#[template(path = "map.html")]
pub struct MapView {
    pub page: Page,
    pub map: super::map::Layout,
}

pub async fn service_map(State(st): State<UiState>, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.as_deref());
    let r = Range::from(&p);
    let deps = st
        .store
        .dependencies(
            (r.start_ms().max(0) as u64) * 1_000_000,
            (r.end_ms.max(0) as u64) * 1_000_000,
        )
        .await
        .unwrap_or_default();
    let w = format!("{}s", r.secs);
    let t = r.end_ms;
    let pair = |l: &Labels| {
        (
            l.get("client").unwrap_or_default().to_string(),
            l.get("server").unwrap_or_default().to_string(),
        )
    };
    let collect = |v: Vec<(Labels, f64)>| -> BTreeMap<(String, String), f64> {
        v.into_iter().map(|(l, x)| (pair(&l), x)).collect()
    };
    let rate = collect(
        instant(
            &st,
            format!("sum by (client, server) (rate(traces_service_graph_request_total[{w}]))"),
            t,
        )
        .await,
    );
    let failed = collect(instant(&st, format!("sum by (client, server) (rate(traces_service_graph_request_failed_total[{w}])) / sum by (client, server) (rate(traces_service_graph_request_total[{w}]))"), t).await);
    let p95 = collect(instant(&st, format!("histogram_quantile(0.95, sum by (client, server, le) (rate(traces_service_graph_request_server_seconds_bucket[{w}])))"), t).await);
    let edges: Vec<super::map::Edge> = deps
        .into_iter()
        .map(|(parent, child, calls)| {
            let k = (parent.clone(), child.clone());
            let label = format!(
                "{} calls · {}/s|{} errors · p95 {}",
                calls,
                num(rate.get(&k).copied(), 2, ""),
                num(failed.get(&k).map(|x| x * 100.0), 1, " %"),
                seconds(p95.get(&k).copied())
            );
            super::map::Edge {
                from: parent,
                to: child,
                label,
                error: failed.get(&k).is_some_and(|x| *x > 0.0),
            }
        })
        .collect();
    let qs = r.qs();
    let map = super::map::layout(edges, |name| {
        format!("{}/ui/service/{}?{}", st.base, url(name), qs)
    });
    render(MapView {
        page: Page::new(&st, &r, "Service map", "map"),
        map,
    })
}

// ---------------------------------------------------------------- service page

pub struct OpRow {
    pub name: String,
    pub rate: String,
    pub errors: String,
    pub p50: String,
    pub p95: String,
    pub p99: String,
}

pub struct LogRow {
    pub time: String,
    pub severity: String,
    pub service: String,
    pub body: String,
    pub trace: String,
}

#[derive(Template)]
#[template(path = "service.html")]
pub struct ServiceView {
    pub page: Page,
    pub name: String,
    pub ops: Vec<OpRow>,
    pub errors: Vec<TraceRow>,
    pub logs: Vec<LogRow>,
    pub charts: Vec<Chart>,
}

fn log_rows(logs: &[crate::traces::StoredLog]) -> Vec<LogRow> {
    logs.iter()
        .map(|l| LogRow {
            time: iso_ms(
                (l.record
                    .time_unix_nano
                    .max(l.record.observed_time_unix_nano)
                    / 1_000_000) as i64,
            ),
            severity: if l.record.severity_text.is_empty() {
                l.record.severity_number.to_string()
            } else {
                l.record.severity_text.clone()
            },
            service: model::service_name(l.resource.as_ref().as_ref()),
            body: l
                .record
                .body
                .as_ref()
                .map(model::any_to_text)
                .unwrap_or_default(),
            trace: if l.record.trace_id.is_empty() {
                String::new()
            } else {
                hex::encode(&l.record.trace_id)
            },
        })
        .collect()
}

pub async fn service(
    State(st): State<UiState>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let p = Params::parse(q.as_deref());
    let r = Range::from(&p);
    let filter = format!("service={}", lit(&name));
    let red = red(&st, &r, "span_name", &filter).await;
    let ops = red
        .into_iter()
        .map(|(n, v)| {
            let row = red_row(n, Some(&v));
            OpRow {
                name: row.name,
                rate: row.rate,
                errors: row.errors,
                p50: row.p50,
                p95: row.p95,
                p99: row.p99,
            }
        })
        .collect();
    let search = crate::traces::TraceSearch {
        service: Some(name.clone()),
        tags: crate::traces::tagquery::parse("error=true").unwrap_or_default(),
        start_us: Some((r.start_ms().max(0) as u64) * 1000),
        end_us: Some((r.end_ms.max(0) as u64) * 1000),
        limit: 10,
        ..Default::default()
    };
    let errors = st
        .store
        .find_traces(search)
        .await
        .unwrap_or_default()
        .iter()
        .map(|s| trace_row(s))
        .collect();
    let logs = st
        .store
        .find_logs(crate::traces::LogSearch {
            service: Some(name.clone()),
            start_us: Some((r.start_ms().max(0) as u64) * 1000),
            end_us: Some((r.end_ms.max(0) as u64) * 1000),
            limit: 20,
            ..Default::default()
        })
        .await
        .unwrap_or_default();
    let sel = format!("{filter},{SERVER_KINDS}");
    let q = |p: &str| {
        format!(
            "histogram_quantile({p}, sum by (le) (rate(traces_spanmetrics_latency_bucket{{{sel}}}[$rate])))"
        )
    };
    let charts = vec![
        chart(
            "chart-rate",
            "Requests per second",
            "/s",
            &[(
                "requests",
                format!("sum(rate(traces_spanmetrics_calls_total{{{sel}}}[$rate]))"),
            )],
        ),
        chart(
            "chart-errors",
            "Error ratio",
            "%",
            &[(
                "errors",
                format!(
                    "100 * sum(rate(traces_spanmetrics_calls_total{{{sel},status_code=\"STATUS_CODE_ERROR\"}}[$rate])) / sum(rate(traces_spanmetrics_calls_total{{{sel}}}[$rate]))"
                ),
            )],
        ),
        chart(
            "chart-latency",
            "Latency",
            "s",
            &[("p50", q("0.5")), ("p95", q("0.95")), ("p99", q("0.99"))],
        ),
    ];
    render(ServiceView {
        charts,
        page: Page::new(&st, &r, format!("Service {name}"), "overview"),
        name,
        ops,
        errors,
        logs: log_rows(&logs),
    })
}

// ---------------------------------------------------------------- GPU dashboard

pub struct GpuPanel {
    pub host: String,
    pub gpu: String,
    pub model: String,
    pub uuid: String,
    pub charts: Vec<Chart>,
}

pub struct ProcRow {
    pub gpu: String,
    pub pid: String,
    pub process: String,
    pub container: String,
    pub memory: String,
    pub util: String,
}

#[derive(Template)]
#[template(path = "gpu.html")]
pub struct GpuView {
    pub page: Page,
    pub panels: Vec<GpuPanel>,
    pub note: String,
    pub events: Vec<(String, String, String, String)>,
    pub procs: Vec<ProcRow>,
    pub services: Vec<(String, String, String, String)>,
}

/// How much an event counter grew over `window`, counting a series that first appeared inside
/// the window from zero (an XID's counter is born at 1; `increase()` would miss it).
fn new_events(name: &str, sel: &str, window: &str) -> String {
    let x = format!("{name}{{{sel}}}");
    format!("({x} - (({x} offset {window}) * 1 or {x} * 0))")
}

pub async fn gpu(State(st): State<UiState>, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.as_deref());
    let r = Range::from(&p);
    let t = r.end_ms;
    let w = format!("{}s", r.secs);
    let mut panels: Vec<GpuPanel> = instant(
        &st,
        format!("last_over_time(DCGM_FI_DEV_GPU_UTIL{{GPU_I_ID=\"\"}}[{w}])"),
        t,
    )
    .await
    .into_iter()
    .map(|(l, _)| {
        let (h, g) = (
            l.get("Hostname").unwrap_or_default(),
            l.get("gpu").unwrap_or_default(),
        );
        let sel = format!("Hostname={},gpu={},GPU_I_ID=\"\"", lit(h), lit(g));
        let m = |name: &str| format!("{name}{{{sel}}}");
        let mut util = chart(
            &format!("gpu{g}-util"),
            "Utilisation",
            "%",
            &[
                ("GPU", m("DCGM_FI_DEV_GPU_UTIL")),
                ("memory copy", m("DCGM_FI_DEV_MEM_COPY_UTIL")),
            ],
        );
        util.markers = format!(
            "{} or {}",
            new_events("sightline_gpu_xid_errors_total", &sel, "$step"),
            new_events("sightline_gpu_throttle_episodes_total", &sel, "$step")
        );
        GpuPanel {
            host: h.into(),
            gpu: g.into(),
            model: l.get("modelName").unwrap_or_default().into(),
            uuid: l.get("UUID").unwrap_or_default().into(),
            charts: vec![
                util,
                chart(
                    &format!("gpu{g}-mem"),
                    "Memory",
                    "MiB",
                    &[
                        ("used", m("DCGM_FI_DEV_FB_USED")),
                        (
                            "total",
                            format!(
                                "{} + {}",
                                m("DCGM_FI_DEV_FB_USED"),
                                m("DCGM_FI_DEV_FB_FREE")
                            ),
                        ),
                    ],
                ),
                chart(
                    &format!("gpu{g}-temp"),
                    "Temperature",
                    "°C",
                    &[
                        ("GPU", m("DCGM_FI_DEV_GPU_TEMP")),
                        ("memory", m("DCGM_FI_DEV_MEMORY_TEMP")),
                    ],
                ),
                chart(
                    &format!("gpu{g}-power"),
                    "Power",
                    "W",
                    &[("power", m("DCGM_FI_DEV_POWER_USAGE"))],
                ),
                chart(
                    &format!("gpu{g}-clocks"),
                    "Clocks",
                    "MHz",
                    &[
                        ("SM", m("DCGM_FI_DEV_SM_CLOCK")),
                        ("memory", m("DCGM_FI_DEV_MEM_CLOCK")),
                    ],
                ),
                chart(
                    &format!("gpu{g}-pcie"),
                    "PCIe throughput",
                    "KB/s",
                    &[
                        ("tx", m("DCGM_FI_DEV_PCIE_TX_THROUGHPUT")),
                        ("rx", m("DCGM_FI_DEV_PCIE_RX_THROUGHPUT")),
                    ],
                ),
            ],
        }
    })
    .collect();
    panels.sort_by(|a, b| (&a.host, &a.gpu).cmp(&(&b.host, &b.gpu)));
    let mut events = Vec::new();
    for (name, label, kind) in [
        ("sightline_gpu_xid_errors_total", "xid", "XID error"),
        (
            "sightline_gpu_throttle_episodes_total",
            "reason",
            "throttled",
        ),
    ] {
        for (l, v) in instant(&st, format!("{} > 0", new_events(name, "", &w)), t).await {
            events.push((
                format!(
                    "{} GPU {}",
                    l.get("Hostname").unwrap_or_default(),
                    l.get("gpu").unwrap_or_default()
                ),
                kind.to_string(),
                l.get(label).unwrap_or_default().to_string(),
                format!("{v:.0}"),
            ));
        }
    }
    let util = instant(&st, "sightline_gpu_process_utilization_ratio".into(), t).await;
    let procs = instant(&st, "sightline_gpu_process_memory_bytes".into(), t)
        .await
        .into_iter()
        .map(|(l, v)| {
            let u = util
                .iter()
                .find(|(ul, _)| ul.get("pid") == l.get("pid") && ul.get("gpu") == l.get("gpu"))
                .map(|x| x.1 * 100.0);
            ProcRow {
                gpu: l.get("gpu").unwrap_or_default().into(),
                pid: l.get("pid").unwrap_or_default().into(),
                process: l.get("process").unwrap_or_default().into(),
                container: l
                    .get("container_id")
                    .unwrap_or_default()
                    .chars()
                    .take(12)
                    .collect(),
                memory: bytes(v),
                util: num(u, 0, " %"),
            }
        })
        .collect();
    let secs = instant(
        &st,
        format!("increase(sightline_gpu_service_seconds_total[{w}])"),
        t,
    )
    .await;
    let joules = instant(
        &st,
        format!("increase(sightline_gpu_service_energy_joules_total[{w}])"),
        t,
    )
    .await;
    let services = secs
        .iter()
        .map(|(l, v)| {
            let j = joules
                .iter()
                .find(|(jl, _)| {
                    jl.get("service") == l.get("service") && jl.get("gpu") == l.get("gpu")
                })
                .map(|x| x.1);
            (
                l.get("service").unwrap_or_default().to_string(),
                l.get("gpu").unwrap_or_default().to_string(),
                format!("{v:.1} s"),
                num(j.map(|j| j / 3600.0), 2, " Wh"),
            )
        })
        .collect();
    render(GpuView {
        page: Page::new(&st, &r, "GPUs", "gpu"),
        note: gpu_note(&st),
        panels,
        events,
        procs,
        services,
    })
}

// ---------------------------------------------------------------- host dashboard

#[derive(Template)]
#[template(path = "host.html")]
pub struct HostView {
    pub page: Page,
    pub has_data: bool,
    pub charts: Vec<Chart>,
    pub filesystems: Vec<(String, String, String, String, String)>,
}

pub async fn host(State(st): State<UiState>, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.as_deref());
    let r = Range::from(&p);
    let t = r.end_ms;
    let size = instant(&st, "node_filesystem_size_bytes{job=\"node\"}".into(), t).await;
    let avail = instant(&st, "node_filesystem_avail_bytes{job=\"node\"}".into(), t).await;
    let filesystems = size
        .iter()
        .map(|(l, s)| {
            let a = avail
                .iter()
                .find(|(al, _)| {
                    al.get("mountpoint") == l.get("mountpoint")
                        && al.get("device") == l.get("device")
                })
                .map(|x| x.1);
            (
                l.get("mountpoint").unwrap_or_default().to_string(),
                l.get("device").unwrap_or_default().to_string(),
                l.get("fstype").unwrap_or_default().to_string(),
                bytes(*s),
                num(a.map(|a| 100.0 * (1.0 - a / s)), 1, " %"),
            )
        })
        .collect();
    let has_data = !instant(&st, "node_load1".into(), t).await.is_empty();
    let charts = vec![
        chart("host-cpu", "CPU by mode (cores)", "", &[("", "sum by (mode) (rate(node_cpu_seconds_total{job=\"node\",mode!=\"idle\"}[$rate]))".into())]),
        chart("host-load", "Load", "", &[("1m", "max(node_load1)".into()), ("5m", "max(node_load5)".into()), ("15m", "max(node_load15)".into())]),
        chart("host-memory", "Memory", "B", &[("used", "sum(node_memory_MemTotal_bytes - node_memory_MemAvailable_bytes)".into()), ("total", "sum(node_memory_MemTotal_bytes)".into())]),
        chart("host-disk", "Disk I/O", "B/s", &[("read", "sum(rate(node_disk_read_bytes_total[$rate]))".into()), ("written", "sum(rate(node_disk_written_bytes_total[$rate]))".into())]),
        chart("host-net", "Network by interface", "B/s", &[("", "sum by (device) (rate(node_network_receive_bytes_total{device!=\"lo\"}[$rate]) + rate(node_network_transmit_bytes_total{device!=\"lo\"}[$rate]))".into())]),
        chart("host-fs", "Filesystem use", "%", &[("", "100 * (1 - node_filesystem_avail_bytes{job=\"node\"} / node_filesystem_size_bytes{job=\"node\"})".into())]),
    ];
    render(HostView {
        charts,
        page: Page::new(&st, &r, "Host", "host"),
        has_data,
        filesystems,
    })
}

// ---------------------------------------------------------------- metrics explorer

#[derive(Template)]
#[template(path = "explore.html")]
pub struct ExploreView {
    pub page: Page,
    pub query: String,
    pub view: String,
    pub error: String,
    pub rows: Vec<(String, String)>,
    pub charts: Vec<Chart>,
}

pub async fn explore(State(st): State<UiState>, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.as_deref());
    let r = Range::from(&p);
    let query = p.get("q").unwrap_or("").to_string();
    let view = if p.get("view") == Some("table") {
        "table"
    } else {
        "graph"
    }
    .to_string();
    let mut error = String::new();
    let mut rows = Vec::new();
    if !query.is_empty() {
        match crate::promql::parse(&query) {
            Err(e) => error = e.to_string(),
            Ok(_) if view == "table" => {
                for (l, v) in instant(&st, query.clone(), r.end_ms).await {
                    rows.push((
                        labels_text(&l),
                        crate::base::gofmt::float(v, crate::base::gofmt::FloatStyle::F),
                    ));
                }
            }
            Ok(_) => {}
        }
    }
    render(ExploreView {
        charts: vec![chart("explore-chart", &query, "", &[("", query.clone())])],
        page: Page::new(&st, &r, "Explore metrics", "explore"),
        query,
        view,
        error,
        rows,
    })
}

fn labels_text(l: &Labels) -> String {
    let name = l.metric_name().unwrap_or_default();
    let rest: Vec<String> = l
        .iter()
        .filter(|x| x.name != "__name__")
        .map(|x| format!("{}={}", x.name, lit(&x.value)))
        .collect();
    format!("{name}{{{}}}", rest.join(", "))
}

// ---------------------------------------------------------------- logs

#[derive(Template)]
#[template(path = "logs.html")]
pub struct LogsView {
    pub page: Page,
    pub q: String,
    pub severities: Vec<(String, bool)>,
    pub services: Vec<(String, bool)>,
    pub tags: String,
    pub trace: String,
    pub error: String,
    pub rows: Vec<LogRow>,
}

pub async fn logs(State(st): State<UiState>, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.as_deref());
    let r = Range::from(&p);
    let service = p.get("service").unwrap_or("").to_string();
    let severity = p.get("severity").unwrap_or("").to_string();
    let mut pairs: Vec<(String, String)> = Vec::new();
    for k in ["q", "severity", "service", "tags", "traceID", "limit"] {
        if let Some(v) = p.get(k) {
            pairs.push((k.into(), v.into()));
        }
    }
    // A trace's logs: whenever they were written; otherwise the range.
    if p.get("traceID").is_none() {
        pairs.push(("start".into(), (r.start_ms().max(0) * 1000).to_string()));
        pairs.push(("end".into(), (r.end_ms.max(0) * 1000).to_string()));
    }
    let qs: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let mut error = String::new();
    let mut rows = Vec::new();
    match crate::api::logs::parse(&Params::parse(Some(&qs))) {
        Err(e) => error = e,
        Ok(search) => match st.store.find_logs(search).await {
            Ok(l) => rows = log_rows(&l),
            Err(e) => error = e.to_string(),
        },
    }
    let names = st.store.services().await.unwrap_or_default();
    render(LogsView {
        page: Page::new(&st, &r, "Logs", "logs"),
        q: p.get("q").unwrap_or("").into(),
        severities: ["", "debug", "info", "warn", "error", "fatal"]
            .iter()
            .map(|s| (s.to_string(), *s == severity))
            .collect(),
        services: names.iter().map(|n| (n.clone(), *n == service)).collect(),
        tags: p.get("tags").unwrap_or("").into(),
        trace: p.get("traceID").unwrap_or("").into(),
        error,
        rows,
    })
}

// ---------------------------------------------------------------- status

#[derive(Template)]
#[template(path = "status.html")]
pub struct StatusView {
    pub page: Page,
    pub version: String,
    pub uptime: String,
    pub summary: Vec<(String, String)>,
    pub storage: Vec<(String, String)>,
    pub ingest: Vec<(String, String)>,
    pub targets: Vec<(String, String, String, String)>,
    pub forward: Vec<ForwardRow>,
}

/// One signal's forwarding state on the status page.
pub struct ForwardRow {
    pub signal: &'static str,
    pub mode: &'static str,
    pub queued: String,
    pub sent: u64,
    pub failed: u64,
    pub retried: u64,
    pub dropped: u64,
    pub last_success: String,
    pub last_error: String,
}

fn forward_rows(st: &UiState) -> Vec<ForwardRow> {
    use std::sync::atomic::Ordering::Relaxed;
    let Some(modes) = st.forward_modes else {
        return Vec::new();
    };
    let c = &st.metrics.forward;
    let when = |ms: u64| {
        if ms == 0 {
            "never".to_string()
        } else {
            let ago = now_ms().saturating_sub(ms as i64) / 1000;
            format!("{ago} s ago")
        }
    };
    (0..3)
        .map(|s| ForwardRow {
            signal: Signal::ALL[s].name(),
            mode: modes[s],
            queued: format!(
                "{} items, {}",
                c.queue_items[s].load(Relaxed),
                bytes(c.queue_bytes[s].load(Relaxed) as f64)
            ),
            sent: c.sent[s].load(Relaxed),
            failed: c.failed[s].load(Relaxed),
            retried: c.retried[s].load(Relaxed),
            dropped: c.dropped[s].load(Relaxed),
            last_success: when(c.last_success_ms[s].load(Relaxed)),
            last_error: match &*c.last_error[s].lock() {
                Some((ms, e)) => format!("{}: {e}", when(*ms)),
                None => "none".into(),
            },
        })
        .collect()
}

pub async fn status(State(st): State<UiState>, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.as_deref());
    let r = Range::from(&p);
    let up = st.started.elapsed().as_secs();
    let (ingest, storage) = (ingest_table(&st), storage_table(&st.metrics));
    let ups = instant(&st, "up".into(), now_ms()).await;
    let mut targets = Vec::new();
    for (job, list) in &st.scrape {
        for tgt in list {
            let u = ups
                .iter()
                .find(|(l, _)| {
                    l.get("job") == Some(job.as_str()) && l.get("instance") == Some(tgt.as_str())
                })
                .map(|x| x.1);
            targets.push((
                job.clone(),
                tgt.clone(),
                match u {
                    Some(1.0) => "up".into(),
                    Some(_) => "down".into(),
                    None => "not scraped yet".into(),
                },
                String::new(),
            ));
        }
    }
    render(StatusView {
        page: Page::new(&st, &r, "Status", "status"),
        version: env!("CARGO_PKG_VERSION").into(),
        uptime: format!("{}h {}m {}s", up / 3600, (up % 3600) / 60, up % 60),
        summary: st.summary.clone(),
        storage,
        ingest,
        targets,
        forward: forward_rows(&st),
    })
}
