//! The host dashboard.

use super::*;

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
