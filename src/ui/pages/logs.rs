//! Log search: the simple search (words, severity, service, attributes), or a LogQL log query
//! (`logql=`) run over the page's time range, newest first, with each line's labels and a link
//! to its trace when it carries a `trace_id`. Above the lines, the volume histogram by level
//! (counted in the search index for the simple search, by the LogQL engine for LogQL); below
//! the form, live tail of a LogQL query (the page script reads `/loki/api/v1/tail`). A trace's
//! logs (`traceID=`) and a service page's logs run on the LogQL path too.

use super::*;
use crate::traces::{LEVEL_NAMES, LEVELS, level_class};

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
    /// The volume histogram for the page script (JSON: `start`, `step` in s, `levels`).
    pub volume: String,
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
            labels: String::new(),
            trace: if l.record.trace_id.is_empty() {
                String::new()
            } else {
                hex::encode(&l.record.trace_id)
            },
        })
        .collect()
}

/// Lines a LogQL search shows at most.
const LOGQL_LINES: usize = 500;
/// Bars of the volume histogram at most.
const VOLUME_BARS: i64 = 60;

/// A time window in ns, `[start, end)`.
#[derive(Clone, Copy)]
pub(super) struct Window {
    pub start: i64,
    pub end: i64,
}

impl Window {
    pub(super) fn of(r: &Range) -> Window {
        Window {
            start: r.start_ms().max(0) * 1_000_000,
            end: r.end_ms.max(0) * 1_000_000 + 1,
        }
    }
}

/// Runs a LogQL query with the default limits; errors as their text.
async fn run(st: &UiState, q: crate::logql::Query) -> Result<crate::logql::Answer, String> {
    let (answer, _) = st
        .store
        .logql(q, crate::logql::Limits::default())
        .await
        .map_err(|e| e.to_string())?;
    Ok(answer)
}

/// Rows (and their label text) of a LogQL log query over `w`, newest first, at most `limit`.
pub(super) async fn logql_rows(
    st: &UiState,
    text: &str,
    w: Window,
    limit: usize,
) -> Result<Vec<LogRow>, String> {
    let expr = crate::logql::parse(text).map_err(|e| e.to_string())?;
    if !matches!(expr, crate::logql::Expr::Log(_)) {
        return Err(
            "this page shows log lines; run metric queries through /loki/api/v1/query_range or Grafana"
                .into(),
        );
    }
    let q = crate::logql::Query {
        expr,
        start: w.start,
        end: w.end,
        step: 0,
        instant: false,
        limit,
        forward: false,
    };
    let crate::logql::Answer::Streams(streams) = run(st, q).await? else {
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
        let trace = get("trace_id");
        let trace = if trace.len() == 32 {
            trace
        } else {
            String::new()
        };
        for (ts, line) in &s.entries {
            all.push((
                *ts,
                LogRow {
                    time: iso_ms(ts / 1_000_000),
                    severity: level.clone(),
                    service: get("service_name"),
                    body: line.clone(),
                    trace: trace.clone(),
                    labels: text.join(", "),
                },
            ));
        }
    }
    all.sort_by_key(|e| std::cmp::Reverse(e.0));
    Ok(all.into_iter().map(|(_, r)| r).collect())
}

/// The histogram's buckets over `w`: (start in s, step in s, count).
fn buckets(w: Window) -> (i64, i64, i64) {
    let start = w.start / 1_000_000_000;
    let secs = ((w.end - w.start) / 1_000_000_000).max(1);
    let step = ((secs + VOLUME_BARS - 1) / VOLUME_BARS).max(1);
    (start, step, (secs + step - 1) / step)
}

/// The histogram as the page script reads it: levels with no line are left out.
fn volume_json(start: i64, step: i64, counts: &[[u64; LEVELS]]) -> String {
    let levels: Vec<(&str, Vec<u64>)> = (0..LEVELS)
        .filter(|l| counts.iter().any(|c| c[*l] > 0))
        .map(|l| (LEVEL_NAMES[l], counts.iter().map(|c| c[l]).collect()))
        .collect();
    serde_json::json!({"start": start, "step": step, "levels": levels}).to_string()
}

/// Lines per bucket and level of a LogQL log query: `count_over_time` of the query grouped by
/// `level` and `detected_level`, each bucket read at its end.
async fn logql_volume(st: &UiState, text: &str, w: Window) -> Result<String, String> {
    let (start, step, n) = buckets(w);
    let metric = format!("sum by (level, detected_level) (count_over_time({text} [{step}s]))");
    let expr = crate::logql::parse(&metric).map_err(|e| e.to_string())?;
    let ns = 1_000_000_000;
    let q = crate::logql::Query {
        expr,
        start: (start + step) * ns,
        end: (start + n * step) * ns,
        step: step * ns,
        instant: false,
        limit: 0,
        forward: false,
    };
    let mut counts = vec![[0u64; LEVELS]; n as usize];
    if let crate::logql::Answer::Matrix(series) = run(st, q).await? {
        for (labels, points) in series {
            let level = labels
                .iter()
                .find(|(k, v)| (k == "level" || k == "detected_level") && !v.is_empty())
                .map(|(_, v)| crate::traces::logscan::severity(v).0)
                .unwrap_or(0);
            let class = level_class(level.max(0) as u64);
            for (t, v) in points {
                let i = (t / ns - start) / step - 1;
                if let Some(c) = usize::try_from(i).ok().and_then(|i| counts.get_mut(i)) {
                    c[class] += v.max(0.0) as u64;
                }
            }
        }
    }
    Ok(volume_json(start, step, &counts))
}

/// The LogQL of a trace's logs, and the window it is read over: the trace's spans with five
/// minutes either side, or the page's range when the store holds no span of it.
async fn trace_logql(st: &UiState, id: &str, r: &Range) -> (String, Window) {
    let query = format!(
        "{{service_name=~\".+\"}} | trace_id=\"{}\"",
        id.to_ascii_lowercase()
    );
    let spans = match model::parse_trace_id(id) {
        Some(tid) => st.store.trace(tid).await.unwrap_or_default(),
        None => Vec::new(),
    };
    let first = spans.iter().map(|s| s.span.start_time_unix_nano).min();
    let last = spans.iter().map(|s| s.span.end_time_unix_nano).max();
    let w = match (first, last) {
        (Some(a), Some(b)) => {
            let margin = 300 * 1_000_000_000;
            Window {
                start: (a as i64).saturating_sub(margin),
                end: (b as i64).saturating_add(margin),
            }
        }
        _ => Window::of(r),
    };
    (query, w)
}

pub async fn logs(State(st): State<UiState>, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.as_deref());
    let r = Range::from(&p);
    let service = p.get("service").unwrap_or("").to_string();
    let severity = p.get("severity").unwrap_or("").to_string();
    let trace = p.get("traceID").unwrap_or("").trim().to_string();
    let mut error = String::new();
    let mut rows = Vec::new();
    let mut volume = String::new();
    let mut logql = p.get("logql").unwrap_or("").trim().to_string();
    let mut w = Window::of(&r);
    if logql.is_empty() && !trace.is_empty() {
        if model::parse_trace_id(&trace).is_none() {
            error = "traceID: malformed trace id".into();
        } else {
            (logql, w) = trace_logql(&st, &trace, &r).await;
        }
    }
    if !logql.is_empty() {
        match logql_rows(&st, &logql, w, LOGQL_LINES).await {
            Ok(found) => {
                rows = found;
                volume = logql_volume(&st, &logql, w).await.unwrap_or_default();
            }
            Err(e) => error = e,
        }
    } else if error.is_empty() {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for k in ["q", "severity", "service", "tags", "limit"] {
            if let Some(v) = p.get(k) {
                pairs.push((k.into(), v.into()));
            }
        }
        pairs.push(("start".into(), (w.start / 1000).to_string()));
        pairs.push(("end".into(), (w.end / 1000).to_string()));
        let qs: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        match crate::traces::params::log_search(&Params::parse(Some(&qs))) {
            Err(e) => error = e,
            Ok(search) => {
                let (start, step, n) = buckets(w);
                let counts = st
                    .store
                    .log_volume(
                        search.clone(),
                        (start.max(0) as u64) * 1_000_000,
                        (step as u64) * 1_000_000,
                        n as usize,
                    )
                    .await;
                if let Ok(c) = counts {
                    volume = volume_json(start, step, &c);
                }
                match st.store.find_logs(search).await {
                    Ok(l) => rows = log_rows(&l),
                    Err(e) => error = e.to_string(),
                }
            }
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
        trace,
        logql,
        error,
        rows,
        volume,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_the_window() {
        let s = 1_000_000_000;
        let (start, step, n) = buckets(Window {
            start: 3600 * s,
            end: 7200 * s + 1,
        });
        assert_eq!((start, step, n), (3600, 60, 60));
        let (_, step, n) = buckets(Window {
            start: 0,
            end: 30 * s,
        });
        assert_eq!((step, n), (1, 30));
    }

    #[test]
    fn volume_lists_levels_with_lines() {
        let mut c = vec![[0u64; LEVELS]; 3];
        c[0][level_class(9)] = 2;
        c[2][level_class(17)] = 1;
        let v: serde_json::Value = serde_json::from_str(&volume_json(10, 5, &c)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"start": 10, "step": 5,
                "levels": [["info", [2, 0, 0]], ["error", [0, 0, 1]]]})
        );
    }
}
