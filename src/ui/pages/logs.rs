//! Log search: the simple search (words, severity, service, attributes), or a LogQL log query
//! (`logql=`) run over the page's time range, newest first, with each line's labels and a link
//! to its trace when it carries a `trace_id`.

use super::service::{LogRow, log_rows};
use super::*;

#[derive(Template)]
#[template(path = "logs.html")]
pub struct LogsView {
    pub page: Page,
    pub q: String,
    pub severities: Vec<(String, bool)>,
    pub services: Vec<(String, bool)>,
    pub tags: String,
    pub trace: String,
    pub logql: String,
    pub error: String,
    pub rows: Vec<LogRow>,
}

/// Lines a LogQL search shows at most.
const LOGQL_LINES: usize = 500;

/// Rows (and their label text) of a LogQL log query over the page's range.
async fn logql_rows(st: &UiState, text: &str, r: &Range) -> Result<Vec<LogRow>, String> {
    let expr = crate::logql::parse(text).map_err(|e| e.to_string())?;
    if !matches!(expr, crate::logql::Expr::Log(_)) {
        return Err(
            "this page shows log lines; run metric queries through /loki/api/v1/query_range or Grafana"
                .into(),
        );
    }
    let q = crate::logql::Query {
        expr,
        start: r.start_ms().max(0) * 1_000_000,
        end: r.end_ms.max(0) * 1_000_000 + 1,
        step: 0,
        instant: false,
        limit: LOGQL_LINES,
        forward: false,
    };
    let (answer, _) = st
        .store
        .logql(q, crate::logql::Limits::default())
        .await
        .map_err(|e| e.to_string())?;
    let crate::logql::Answer::Streams(streams) = answer else {
        return Ok(Vec::new());
    };
    let mut all: Vec<(i64, LogRow)> = Vec::new();
    for s in &streams {
        let get = |k: &str| {
            s.labels
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let level = [get("level"), get("detected_level"), get("severity_text")]
            .into_iter()
            .find(|v| !v.is_empty())
            .unwrap_or_default();
        let text: Vec<String> = s
            .labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect();
        for (ts, line) in &s.entries {
            let trace = get("trace_id");
            all.push((
                *ts,
                LogRow {
                    time: iso_ms(ts / 1_000_000),
                    severity: level.clone(),
                    service: get("service_name"),
                    body: line.clone(),
                    trace: if trace.len() == 32 {
                        trace
                    } else {
                        String::new()
                    },
                    labels: text.join(", "),
                },
            ));
        }
    }
    all.sort_by_key(|e| std::cmp::Reverse(e.0));
    Ok(all.into_iter().map(|(_, r)| r).collect())
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
    let logql = p.get("logql").unwrap_or("").trim().to_string();
    if !logql.is_empty() {
        match logql_rows(&st, &logql, &r).await {
            Ok(r) => rows = r,
            Err(e) => error = e,
        }
    } else {
        match crate::traces::params::log_search(&Params::parse(Some(&qs))) {
            Err(e) => error = e,
            Ok(search) => match st.store.find_logs(search).await {
                Ok(l) => rows = log_rows(&l),
                Err(e) => error = e.to_string(),
            },
        }
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
        logql,
        error,
        rows,
    })
}
