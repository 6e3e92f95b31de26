//! The overview page: RED metrics per service, GPUs, ingest and storage.

use super::rates::{ingest_table, storage_table};
use super::*;

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

pub(super) const SERVER_KINDS: &str = "span_kind=~\"SPAN_KIND_SERVER|SPAN_KIND_CONSUMER\"";

/// Request rate, error ratio and latency percentiles per service over the range, from the span
/// metrics (server and consumer spans: requests a service handled).
pub(super) async fn red(
    st: &UiState,
    r: &Range,
    by: &str,
    filter: &str,
) -> Vec<(String, [Option<f64>; 5])> {
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

pub(super) fn red_row(name: String, v: Option<&[Option<f64>; 5]>) -> ServiceRow {
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

pub(super) fn gpu_note(st: &UiState) -> String {
    if !st.gpu_enabled {
        "The GPU sampler is turned off ([gpu] enabled = false).".into()
    } else if st.metrics.samplers.gpu_up.load(Relaxed) == 0 {
        "No NVIDIA driver was found (libnvidia-ml.so.1 could not be loaded), so there is no GPU data. In a container, run with --gpus all and the NVIDIA container runtime.".into()
    } else {
        "NVML is loaded but no GPU samples are in this range yet.".into()
    }
}

pub(super) async fn gpu_rows(st: &UiState, t: i64) -> Vec<GpuRow> {
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
