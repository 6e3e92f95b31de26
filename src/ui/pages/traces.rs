//! Trace search: the form, the result list and its duration chart.

use super::*;

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
        match crate::traces::params::trace_search(&Params::parse(Some(&qs))) {
            Err(e) => t.error = e,
            Ok(mut search) => {
                search.limit = search.limit.clamp(1, 1500);
                match st.store.find_traces(search).await {
                    Err(e) => t.error = e.to_string(),
                    Ok(found) => {
                        let mut points = Vec::new();
                        for spans in found {
                            let row = trace_row(&spans);
                            let (start, end) = bounds(&spans);
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

/// A trace's first start and last end (ns; 0 when it has no spans).
fn bounds(spans: &[crate::traces::StoredSpan]) -> (u64, u64) {
    let start = spans.iter().map(|s| s.span.start_time_unix_nano).min();
    let end = spans.iter().map(|s| s.span.end_time_unix_nano).max();
    (start.unwrap_or(0), end.unwrap_or(0))
}

pub(super) fn trace_row(spans: &[crate::traces::StoredSpan]) -> TraceRow {
    let (start, end) = bounds(spans);
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
