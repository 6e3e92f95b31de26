//! The status page: settings, ingest, storage, forwarding, scrape targets.

use super::rates::{ingest_table, storage_table};
use super::*;

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

pub(super) fn forward_rows(st: &UiState) -> Vec<ForwardRow> {
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
    let targets = st
        .targets
        .snapshot()
        .active
        .into_iter()
        .map(|t| {
            let h = if t.health.health.is_empty() {
                "unknown"
            } else {
                t.health.health
            };
            (t.pool, t.url, h.to_string(), t.health.last_error)
        })
        .collect();
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
