//! One service: its operations, charts and recent logs.

use super::logs::{LogRow, Window, logql_rows};
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

#[derive(Template)]
#[template(path = "service.html")]
pub struct ServiceView {
    pub page: Page,
    pub name: String,
    pub ops: Vec<OpRow>,
    pub errors: Vec<TraceRow>,
    pub logs: Vec<LogRow>,
    /// The LogQL of the service's logs (the link to the Logs page).
    pub logql: String,
    pub charts: Vec<Chart>,
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
    // The service's newest lines through the Logs page's LogQL path.
    let logql = format!("{{service_name={}}}", lit(&name));
    let logs = logql_rows(&st, &logql, Window::of(&r), 20)
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
        logs,
        logql,
    })
}
