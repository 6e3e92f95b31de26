//! Log search.

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
    match crate::traces::params::log_search(&Params::parse(Some(&qs))) {
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
