//! One service: its operations, charts and recent logs.

use super::overview::{SERVER_KINDS, red, red_row};
use super::traces::{TraceRow, trace_row};
use super::*;

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
    /// The line's labels as `k="v", ...` (LogQL results); empty for the simple search.
    pub labels: String,
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

pub(super) fn log_rows(logs: &[crate::traces::StoredLog]) -> Vec<LogRow> {
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
            labels: String::new(),
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
