//! The GPU dashboard: per-GPU panels, processes, events.

use super::overview::gpu_note;
use super::*;

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
pub(super) fn new_events(name: &str, sel: &str, window: &str) -> String {
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
