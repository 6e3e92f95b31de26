//! Loki's query API on the main listener, as Grafana's Loki data source and `logcli` call it:
//! `/loki/api/v1/query_range`, `/query`, `/labels` (and `/label`), `/label/{name}/values`,
//! `/series`, `/index/stats`, `/index/volume`, `/index/volume_range`, `/status/buildinfo`.
//! Parameters are read as `pkg/loghttp` reads them (times as RFC 3339, float seconds, or
//! integers of up to 10 digits as seconds and longer as nanoseconds; `since`; `step` as float
//! seconds or a duration, by default `max(floor((end - start) / 250 s), 1 s)`; `limit` 100;
//! `direction` backward). Answers use Loki's shapes: `streams` with nanosecond string
//! timestamps, `matrix`/`vector`/`scalar` with float seconds and values in Go's `'f'` form, a
//! `stats.summary`; failures are plain text with Loki's status codes (400 for a bad query or a
//! limit, 504 for a timeout, 500 for the store). LogQL itself lives in [`crate::logql`].
//!
//! `/loki/api/v1/tail` is a WebSocket: the entries since `start` (up to `limit`), then every
//! second what the store committed since (by commit order, so late timestamps are not missed),
//! as Loki's `{"streams": [...], "dropped_entries": null}` frames.
//!
//! `detected_labels`, `detected_fields` and `detected_field/{name}/values` answer Grafana's Logs
//! Drilldown as Loki's query frontend does (see `logql::detected`).
//!
//! Not built here yet: the `categorize-labels` encoding flag (structured metadata and parsed labels are returned as
//! stream labels, as Loki does without that flag).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::prom_params::params;
use crate::base::clock::now_ns;
use crate::base::gofmt::{FloatStyle, QuoteStyle, float, quote};
use crate::base::params::Params;
use crate::logql::{self, Answer, Labels, Limits, Matcher, Query, QueryError, Stats};
use crate::traces::TraceStore;

const NS: i64 = 1_000_000_000;
const DEFAULT_LIMIT: usize = 100;
const DEFAULT_SINCE_NS: i64 = 3600 * NS;
const DEFAULT_VOLUME_LIMIT: usize = 100;
/// Distinct names a volume answer may gather before it is refused (Loki's `volume_max_series`).
const VOLUME_MAX_SERIES: usize = 1000;

#[derive(Clone)]
struct LokiApi {
    store: TraceStore,
    limits: Limits,
}

pub fn router(store: TraceStore) -> Router {
    let api = LokiApi {
        store,
        limits: Limits::default(),
    };
    Router::new()
        .route(
            "/loki/api/v1/query_range",
            get(query_range).post(query_range),
        )
        .route("/loki/api/v1/query", get(query).post(query))
        .route("/loki/api/v1/labels", get(labels).post(labels))
        .route("/loki/api/v1/label", get(labels).post(labels))
        .route(
            "/loki/api/v1/label/{name}/values",
            get(label_values).post(label_values),
        )
        .route("/loki/api/v1/series", get(series).post(series))
        .route(
            "/loki/api/v1/index/stats",
            get(index_stats).post(index_stats),
        )
        .route("/loki/api/v1/index/volume", get(volume).post(volume))
        .route(
            "/loki/api/v1/index/volume_range",
            get(volume_range).post(volume_range),
        )
        .route("/loki/api/v1/status/buildinfo", get(buildinfo))
        .route("/loki/api/v1/tail", get(tail))
        .route("/loki/api/v1/detected_labels", get(detected_labels))
        .route("/loki/api/v1/detected_fields", get(detected_fields))
        .route(
            "/loki/api/v1/detected_field/{name}/values",
            get(detected_field_values),
        )
        .with_state(api)
}

/// A failed request, answered as Loki answers: plain text and a status code.
#[derive(Debug)]
struct LokiError(StatusCode, String);

impl LokiError {
    fn bad(msg: impl Into<String>) -> LokiError {
        LokiError(StatusCode::BAD_REQUEST, msg.into())
    }
}

impl From<QueryError> for LokiError {
    fn from(e: QueryError) -> LokiError {
        match e {
            QueryError::Parse(_) | QueryError::Bad(_) | QueryError::Limit(_) => {
                LokiError::bad(e.to_string())
            }
            QueryError::Timeout(m) => LokiError(StatusCode::GATEWAY_TIMEOUT, m),
            QueryError::Store(m) => {
                tracing::error!(error = %m, "loki query failed in the store");
                LokiError(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the log store could not answer; see the server log".into(),
                )
            }
        }
    }
}

impl From<crate::traces::StoreError> for LokiError {
    fn from(e: crate::traces::StoreError) -> LokiError {
        QueryError::Store(e.to_string()).into()
    }
}

impl IntoResponse for LokiError {
    fn into_response(self) -> Response {
        (
            self.0,
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            self.1,
        )
            .into_response()
    }
}

type Answered = Result<Response, LokiError>;

/// A request's parameters as Loki reads them: the query string and, for form POSTs, the body.
struct LokiParams(Params);

impl<S: Send + Sync> axum::extract::FromRequest<S> for LokiParams {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Response> {
        let query = req.uri().query().map(str::to_string);
        let headers = req.headers().clone();
        let body = Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(LokiParams(params(query, &headers, &body)))
    }
}

fn json_answer(body: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body,
    )
        .into_response()
}

fn respond(r: Answered) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}

// ---- parameters, as pkg/loghttp reads them ----

/// Loki's `parseTimestamp`: float seconds (when the text has a '.', rounded to ms), an
/// integer of up to 10 digits as seconds and longer as nanoseconds, or RFC 3339.
pub fn parse_loki_time(v: &str) -> Option<i64> {
    if v.contains('.')
        && let Ok(f) = v.parse::<f64>()
    {
        if !f.is_finite() || f.abs() > 9.2e9 {
            return None;
        }
        let (s, frac) = (f.trunc(), f.fract());
        let ms = (frac * 1000.0).round();
        return Some(s as i64 * NS + ms as i64 * 1_000_000);
    }
    match v.parse::<i64>() {
        Ok(n) if v.len() <= 10 => n.checked_mul(NS),
        Ok(n) => Some(n),
        Err(_) => crate::base::clock::parse_rfc3339_ns(v),
    }
}

/// `parseSecondsOrDuration`, in ns.
fn parse_seconds_or_duration(v: &str) -> Result<i64, String> {
    if let Ok(f) = v.parse::<f64>() {
        let ns = f * 1e9;
        if !ns.is_finite() || ns.abs() >= 9.2e18 {
            return Err(format!(
                "cannot parse {v:?} to a valid duration. It overflows int64"
            ));
        }
        return Ok(ns as i64);
    }
    crate::base::units::parse_prom_duration(v)
        .and_then(|ms| ms.checked_mul(1_000_000))
        .ok_or_else(|| format!("cannot parse {v:?} to a valid duration"))
}

fn time_or(p: &Params, key: &str, dflt: i64) -> Result<i64, LokiError> {
    match p.get(key).filter(|v| !v.is_empty()) {
        None => Ok(dflt),
        Some(v) => parse_loki_time(v).ok_or_else(|| {
            LokiError::bad(format!(
                "could not parse '{key}' parameter: cannot parse {v:?} as a timestamp"
            ))
        }),
    }
}

/// `start`/`end`/`since` as `determineBounds` reads them, in ns.
fn bounds(p: &Params) -> Result<(i64, i64), LokiError> {
    let now = now_ns() as i64;
    let since = match p.get("since").filter(|v| !v.is_empty()) {
        None => DEFAULT_SINCE_NS,
        Some(v) => crate::base::units::parse_prom_duration(v)
            .and_then(|ms| ms.checked_mul(1_000_000))
            .ok_or_else(|| {
                LokiError::bad(format!(
                    "could not parse 'since' parameter: not a valid duration string: {v:?}"
                ))
            })?,
    };
    let end = time_or(p, "end", now)?;
    let start = time_or(p, "start", end.min(now).saturating_sub(since))?;
    Ok((start, end))
}

fn limit(p: &Params, dflt: usize) -> Result<usize, LokiError> {
    match p.get("limit").filter(|v| !v.is_empty()) {
        None => Ok(dflt),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n <= 0 => Err(LokiError::bad("limit must be a positive value")),
            Ok(n) if n > u32::MAX as i64 => Err(LokiError::bad(format!(
                "limit value {n} is out of range [0, {}]",
                u32::MAX
            ))),
            Ok(n) => Ok(n as usize),
            Err(_) => Err(LokiError::bad(format!(
                "strconv.Atoi: parsing {v:?}: invalid syntax"
            ))),
        },
    }
}

fn forward(p: &Params) -> Result<bool, LokiError> {
    match p.get("direction").filter(|v| !v.is_empty()) {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("forward") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("backward") => Ok(false),
        Some(v) => Err(LokiError::bad(format!("invalid direction '{v}'"))),
    }
}

fn parse_query(p: &Params) -> Result<logql::Expr, LokiError> {
    let q = p.get("query").unwrap_or("");
    logql::parse(q).map_err(|e| LokiError::bad(e.to_string()))
}

/// The parameters of a range query, checked as `ParseRangeQuery` checks them.
fn range_query(p: &Params) -> Result<Query, LokiError> {
    let expr = parse_query(p)?;
    let (start, end) = bounds(p)?;
    if end < start {
        return Err(LokiError::bad(
            "end timestamp must not be before or equal to start time",
        ));
    }
    let limit = limit(p, DEFAULT_LIMIT)?;
    let forward = forward(p)?;
    let step = range_query_step(p, start, end)?;
    if let Some(v) = p.get("interval").filter(|v| !v.is_empty()) {
        // Accepted and checked as Loki does; entries are not thinned by it here.
        if parse_seconds_or_duration(v).map_err(LokiError::bad)? < 0 {
            return Err(LokiError::bad("interval must be >= 0"));
        }
    }
    Ok(Query {
        expr,
        start,
        end,
        step,
        instant: false,
        limit,
        forward,
    })
}

fn instant_query(p: &Params) -> Result<Query, LokiError> {
    let expr = parse_query(p)?;
    let limit = limit(p, DEFAULT_LIMIT)?;
    let t = time_or(p, "time", now_ns() as i64)?;
    let forward = forward(p)?;
    Ok(Query {
        expr,
        start: t,
        end: t,
        step: 0,
        instant: true,
        limit,
        forward,
    })
}

/// An optional stream selector (`query` or `match[]`); `{}` and none select every stream.
fn optional_selector(v: Option<&str>) -> Result<Vec<Matcher>, LokiError> {
    match v {
        None => Ok(Vec::new()),
        Some(s) if s.trim().is_empty() || s.replace(' ', "") == "{}" => Ok(Vec::new()),
        Some(s) => logql::parse_selector(s).map_err(|e| LokiError::bad(e.to_string())),
    }
}

// ---- answers ----

fn write_labels(o: &mut String, l: &Labels) {
    o.push('{');
    for (i, (k, v)) in l.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        o.push_str(&quote(k, QuoteStyle::Json));
        o.push(':');
        o.push_str(&quote(v, QuoteStyle::Json));
    }
    o.push('}');
}

/// A sample's time as Loki writes it: float seconds (ms precision, no trailing zeros).
fn write_seconds(o: &mut String, ns: i64) {
    let ms = ns.div_euclid(1_000_000);
    let (s, frac) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    if ms < 0 && frac != 0 {
        let _ = write!(o, "-{}", -(s + 1));
        let f = format!("{:03}", 1000 - frac);
        let _ = write!(o, ".{}", f.trim_end_matches('0'));
        return;
    }
    let _ = write!(o, "{s}");
    if frac != 0 {
        let f = format!("{frac:03}");
        let _ = write!(o, ".{}", f.trim_end_matches('0'));
    }
}

fn write_point(o: &mut String, ns: i64, v: f64) {
    o.push('[');
    write_seconds(o, ns);
    o.push_str(",\"");
    o.push_str(&float(v, FloatStyle::F));
    o.push_str("\"]");
}

/// `[{"stream": {...}, "values": [["<ns>", "<line>"], ...]}, ...]`.
fn write_streams(o: &mut String, streams: &[logql::eval::StreamOut]) {
    o.push('[');
    for (i, s) in streams.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        o.push_str("{\"stream\":");
        write_labels(o, &s.labels);
        o.push_str(",\"values\":[");
        for (j, (ts, line)) in s.entries.iter().enumerate() {
            if j > 0 {
                o.push(',');
            }
            let _ = write!(o, "[\"{ts}\",{}]", quote(line, QuoteStyle::Json));
        }
        o.push_str("]}");
    }
    o.push(']');
}

fn result_json(a: &Answer, o: &mut String) {
    match a {
        Answer::Streams(streams) => {
            o.push_str("\"resultType\":\"streams\",\"result\":");
            write_streams(o, streams);
        }
        Answer::Vector(t, samples) => {
            o.push_str("\"resultType\":\"vector\",\"result\":[");
            for (i, (l, v)) in samples.iter().enumerate() {
                if i > 0 {
                    o.push(',');
                }
                o.push_str("{\"metric\":");
                write_labels(o, l);
                o.push_str(",\"value\":");
                write_point(o, *t, *v);
                o.push('}');
            }
            o.push(']');
        }
        Answer::Matrix(series) => {
            o.push_str("\"resultType\":\"matrix\",\"result\":[");
            for (i, (l, points)) in series.iter().enumerate() {
                if i > 0 {
                    o.push(',');
                }
                o.push_str("{\"metric\":");
                write_labels(o, l);
                o.push_str(",\"values\":[");
                for (j, (t, v)) in points.iter().enumerate() {
                    if j > 0 {
                        o.push(',');
                    }
                    write_point(o, *t, *v);
                }
                o.push_str("]}");
            }
            o.push(']');
        }
        Answer::Scalar(t, v) => {
            o.push_str("\"resultType\":\"scalar\",\"result\":");
            write_point(o, *t, *v);
        }
    }
}

/// Loki's `stats` object: the summary Grafana's query inspector reads, and the totals.
fn stats_json(s: &Stats) -> Value {
    let secs = s.exec_ns as f64 / 1e9;
    let per_sec = |n: u64| {
        if secs > 0.0 {
            (n as f64 / secs) as u64
        } else {
            0
        }
    };
    json!({
        "summary": {
            "bytesProcessedPerSecond": per_sec(s.bytes_scanned),
            "linesProcessedPerSecond": per_sec(s.lines_scanned),
            "totalBytesProcessed": s.bytes_scanned,
            "totalLinesProcessed": s.lines_scanned,
            "totalEntriesReturned": s.entries_returned,
            "execTime": secs,
            "queueTime": 0,
            "subqueries": 0,
            "splits": 0,
            "shards": 0,
            "totalPostFilterLines": s.lines_scanned,
            "totalStructuredMetadataBytesProcessed": 0,
        },
        "querier": {"store": {"totalChunksRef": 0, "totalChunksDownloaded": 0, "chunksDownloadTime": 0}},
        "ingester": {"totalReached": 0, "totalChunksMatched": 0, "totalBatches": 0, "totalLinesSent": 0},
    })
}

fn query_answer(a: &Answer, stats: &Stats) -> Response {
    let mut o = String::with_capacity(1024);
    o.push_str("{\"status\":\"success\",\"data\":{");
    result_json(a, &mut o);
    o.push_str(",\"stats\":");
    o.push_str(&stats_json(stats).to_string());
    o.push_str("}}");
    let mut r = json_answer(o);
    for w in &stats.warnings {
        if let Ok(v) = w.parse() {
            r.headers_mut().append("X-Loki-Warning", v);
        }
    }
    r
}

// ---- handlers ----

async fn run(api: &LokiApi, q: Query) -> Answered {
    let (a, stats) = api.store.logql(q, api.limits.clone()).await?;
    Ok(query_answer(&a, &stats))
}

async fn query_range(State(api): State<LokiApi>, LokiParams(p): LokiParams) -> Response {
    respond(async { run(&api, range_query(&p)?).await }.await)
}

async fn query(State(api): State<LokiApi>, LokiParams(p): LokiParams) -> Response {
    respond(async { run(&api, instant_query(&p)?).await }.await)
}

fn names_answer(names: impl IntoIterator<Item = String>) -> Response {
    json_answer(
        json!({"status": "success", "data": names.into_iter().collect::<Vec<_>>()}).to_string(),
    )
}

/// The distinct strings `pick` takes from the stream label sets that `query` selects in the
/// request's range, as `{status, data}`: `/labels` and `/label/{name}/values`.
async fn distinct(
    api: &LokiApi,
    p: &Params,
    pick: impl Fn(&Labels, &mut BTreeSet<String>) + Send + 'static,
) -> Answered {
    let (start, end) = bounds(p)?;
    let ms = optional_selector(p.get("query"))?;
    let found = api
        .store
        .log_entries(start, end, ms, BTreeSet::new(), move |acc, l, _| {
            pick(l, acc)
        })
        .await?;
    Ok(names_answer(found))
}

async fn labels(State(api): State<LokiApi>, LokiParams(p): LokiParams) -> Response {
    respond(
        distinct(&api, &p, |l, acc| {
            for (k, _) in l {
                if !acc.contains(k) {
                    acc.insert(k.clone());
                }
            }
        })
        .await,
    )
}

async fn label_values(
    State(api): State<LokiApi>,
    Path(name): Path<String>,
    LokiParams(p): LokiParams,
) -> Response {
    respond(
        distinct(&api, &p, move |l, acc| {
            if let Some((_, v)) = l.iter().find(|(k, _)| *k == name)
                && !acc.contains(v)
            {
                acc.insert(v.clone());
            }
        })
        .await,
    )
}

/// The `match[]` (or `match`) selector groups of a `/series` request; none, or one `{}`,
/// selects every stream.
fn match_groups(p: &Params) -> Result<Vec<Vec<Matcher>>, LokiError> {
    let groups: BTreeSet<&str> = p.all("match[]").chain(p.all("match")).collect();
    if groups.len() == 1 && groups.iter().all(|g| g.replace(' ', "") == "{}") {
        return Ok(Vec::new());
    }
    groups
        .into_iter()
        .map(|g| logql::parse_selector(g).map_err(|e| LokiError::bad(e.to_string())))
        .collect()
}

async fn series(State(api): State<LokiApi>, LokiParams(p): LokiParams) -> Response {
    respond(
        async {
            let (start, end) = bounds(&p)?;
            let groups = match_groups(&p)?;
            let groups = if groups.is_empty() {
                vec![Vec::new()]
            } else {
                groups
            };
            let mut all: BTreeSet<Labels> = BTreeSet::new();
            for ms in groups {
                let found = api
                    .store
                    .log_entries(
                        start,
                        end,
                        ms,
                        BTreeSet::new(),
                        |acc: &mut BTreeSet<Labels>, l, _| {
                            if !acc.contains(l) {
                                acc.insert(l.clone());
                            }
                        },
                    )
                    .await?;
                all.extend(found);
            }
            let data: Vec<Value> = all
                .iter()
                .map(|l| Value::Object(l.iter().map(|(k, v)| (k.clone(), json!(v))).collect()))
                .collect();
            Ok(json_answer(
                json!({"status": "success", "data": data}).to_string(),
            ))
        }
        .await,
    )
}

/// Per stream: entries and bytes (of the line) in the range.
type StreamTotals = HashMap<Labels, (u64, u64)>;

async fn stream_totals(
    api: &LokiApi,
    start: i64,
    end: i64,
    ms: Vec<Matcher>,
) -> Result<StreamTotals, LokiError> {
    Ok(api
        .store
        .log_entries(start, end, ms, StreamTotals::new(), |acc, l, e| {
            let bytes = e.line.len() as u64;
            match acc.get_mut(l) {
                Some(t) => {
                    t.0 += 1;
                    t.1 += bytes;
                }
                None => {
                    acc.insert(l.clone(), (1, bytes));
                }
            }
        })
        .await?)
}

/// `/index/stats`: `{streams, chunks, bytes, entries}` for a selector (Loki counts chunks of
/// its own store; here each stream's entries in the range count as one chunk per stream).
async fn index_stats(State(api): State<LokiApi>, LokiParams(p): LokiParams) -> Response {
    respond(
        async {
            let (start, end) = bounds(&p)?;
            let ms = optional_selector(p.get("query"))?;
            let totals = stream_totals(&api, start, end, ms).await?;
            let (entries, bytes) = totals
                .values()
                .fold((0u64, 0u64), |a, t| (a.0 + t.0, a.1 + t.1));
            Ok(json_answer(
                json!({"streams": totals.len(), "chunks": totals.len(), "bytes": bytes, "entries": entries})
                    .to_string(),
            ))
        }
        .await,
    )
}

struct VolumeParams {
    start: i64,
    end: i64,
    matchers: Vec<Matcher>,
    /// Selector was `{}` (every stream, every label).
    include_all: bool,
    limit: usize,
    targets: Vec<String>,
    by_series: bool,
}

fn volume_params(p: &Params) -> Result<VolumeParams, LokiError> {
    let limit = match p.get("limit") {
        Some("0") => DEFAULT_VOLUME_LIMIT,
        _ => limit(p, DEFAULT_VOLUME_LIMIT)?,
    };
    let by_series = match p.get("aggregateBy").filter(|v| !v.is_empty()) {
        None | Some("series") => true,
        Some("labels") => false,
        Some(_) => return Err(LokiError::bad("invalid aggregation option")),
    };
    let (start, end) = bounds(p)?;
    if end < start {
        return Err(LokiError::bad(
            "end timestamp must not be before or equal to start time",
        ));
    }
    let raw = p.get("query").unwrap_or("{}");
    let include_all = raw.replace(' ', "") == "{}";
    let mut matchers = optional_selector(Some(raw))?;
    let targets: Vec<String> = p
        .get("targetLabels")
        .map(|t| {
            t.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    // As Loki's `PrepareLabelsAndMatchers`: a target label the selector does not name must be
    // present (`=~".+"`).
    for t in &targets {
        if !matchers.iter().any(|m| m.name == *t) {
            matchers.push(Matcher::new(t, logql::ast::MatchOp::Re, ".+").map_err(LokiError::bad)?);
        }
    }
    Ok(VolumeParams {
        start,
        end,
        matchers,
        include_all: include_all && targets.is_empty(),
        limit,
        targets,
        by_series,
    })
}

/// Loki's volume aggregation of one time bucket: by series (the labels the selector or the
/// targets name, or all of them for `{}`), or by label name. Largest first, then by name.
fn volumes(
    v: &VolumeParams,
    totals: &StreamTotals,
) -> Result<Vec<(String, Labels, u64)>, LokiError> {
    let keep: BTreeSet<&str> = if v.targets.is_empty() {
        v.matchers.iter().map(|m| m.name.as_str()).collect()
    } else {
        v.targets.iter().map(String::as_str).collect()
    };
    let mut acc: BTreeMap<String, (Labels, u64)> = BTreeMap::new();
    for (labels, (_, bytes)) in totals {
        if v.by_series {
            let l: Labels = labels
                .iter()
                .filter(|(k, _)| v.include_all || keep.contains(k.as_str()))
                .cloned()
                .collect();
            let mut name = String::new();
            write_prom_labels(&mut name, &l);
            acc.entry(name).or_insert((l, 0)).1 += bytes;
        } else {
            for (k, _) in labels {
                if v.targets.is_empty() || keep.contains(k.as_str()) {
                    acc.entry(k.clone())
                        .or_insert_with(|| (vec![(k.clone(), String::new())], 0))
                        .1 += bytes;
                }
            }
        }
        if acc.len() > VOLUME_MAX_SERIES {
            return Err(LokiError::bad(format!(
                "the query hit the max number of series limit (limit: {VOLUME_MAX_SERIES} series)"
            )));
        }
    }
    let mut out: Vec<(String, Labels, u64)> =
        acc.into_iter().map(|(n, (l, b))| (n, l, b)).collect();
    out.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
    out.truncate(v.limit);
    Ok(out)
}

/// `{a="x", b="y"}`, the series name Loki keys volumes by.
fn write_prom_labels(o: &mut String, l: &Labels) {
    o.push('{');
    for (i, (k, v)) in l.iter().enumerate() {
        if i > 0 {
            o.push_str(", ");
        }
        let _ = write!(o, "{k}={}", quote(v, QuoteStyle::Go));
    }
    o.push('}');
}

/// `/index/volume`: bytes per series (or label) over the whole range, as a vector at `end`.
async fn volume(State(api): State<LokiApi>, LokiParams(p): LokiParams) -> Response {
    respond(
        async {
            let v = volume_params(&p)?;
            let totals = stream_totals(&api, v.start, v.end, v.matchers.clone()).await?;
            let vols = volumes(&v, &totals)?;
            let samples = vols.into_iter().map(|(_, l, b)| (l, b as f64)).collect();
            let a = Answer::Vector(v.end, samples);
            let mut o = String::from("{\"status\":\"success\",\"data\":{");
            result_json(&a, &mut o);
            o.push_str("}}");
            Ok(json_answer(o))
        }
        .await,
    )
}

/// `/index/volume_range`: the same per `step` bucket, each written at its bucket's end.
async fn volume_range(State(api): State<LokiApi>, LokiParams(p): LokiParams) -> Response {
    respond(
        async {
            let v = volume_params(&p)?;
            let rq = range_query_step(&p, v.start, v.end)?;
            let mut series: BTreeMap<String, (Labels, Vec<(i64, f64)>)> = BTreeMap::new();
            let mut b_start = v.start;
            while b_start < v.end || (b_start == v.start && v.start == v.end) {
                let b_end = (b_start + rq).min(v.end);
                let totals =
                    stream_totals(&api, b_start, b_end.max(b_start + 1), v.matchers.clone())
                        .await?;
                for (name, l, bytes) in volumes(&v, &totals)? {
                    series
                        .entry(name)
                        .or_insert((l, Vec::new()))
                        .1
                        .push((b_end, bytes as f64));
                }
                b_start = b_end;
                if b_end == v.end {
                    break;
                }
            }
            let mut out: Vec<NamedSeries> =
                series.into_iter().map(|(n, (l, s))| (n, l, s)).collect();
            out.sort_by(|a, b| {
                let (x, y) = (a.2[0].1, b.2[0].1);
                y.partial_cmp(&x)
                    .unwrap_or(std::cmp::Ordering::Equal)
                    .then_with(|| a.0.cmp(&b.0))
            });
            let a = Answer::Matrix(out.into_iter().map(|(_, l, s)| (l, s)).collect());
            let mut o = String::from("{\"status\":\"success\",\"data\":{");
            result_json(&a, &mut o);
            o.push_str("}}");
            Ok(json_answer(o))
        }
        .await,
    )
}

/// A volume series: its name, labels and points.
type NamedSeries = (String, Labels, Vec<(i64, f64)>);

/// The `step` of a range (or volume range) request, checked as `ParseRangeQuery` checks it.
fn range_query_step(p: &Params, start: i64, end: i64) -> Result<i64, LokiError> {
    let step = match p.get("step").filter(|v| !v.is_empty()) {
        None => ((end - start) / NS / 250).max(1) * NS,
        Some(v) => parse_seconds_or_duration(v).map_err(LokiError::bad)?,
    };
    if step <= 0 {
        return Err(LokiError::bad(
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (end - start) / step > 11_000 {
        return Err(LokiError::bad(
            "exceeded maximum resolution of 11,000 points per time series. Try increasing the value of the step parameter",
        ));
    }
    Ok(step)
}

/// Loki's live tail: `query` (a log query), `start` (default an hour ago), `limit` (default
/// 100, for the first frame), `delay_for` (accepted, at most 5 s).
async fn tail(
    State(api): State<LokiApi>,
    RawQuery(q): RawQuery,
    ws: axum::extract::ws::WebSocketUpgrade,
) -> Response {
    let p = Params::parse(q.as_deref());
    let prepared = (|| -> Result<Query, LokiError> {
        let expr = parse_query(&p)?;
        if !matches!(expr, logql::Expr::Log(_)) {
            return Err(LokiError::bad("tail is only supported for log queries"));
        }
        let limit = limit(&p, DEFAULT_LIMIT)?;
        if let Some(d) = p.get("delay_for").filter(|v| !v.is_empty()) {
            match d.parse::<u32>() {
                Ok(d) if d <= 5 => {}
                Ok(_) => return Err(LokiError::bad("delay_for can't be greater than 5")),
                Err(_) => {
                    return Err(LokiError::bad(format!(
                        "strconv.Atoi: parsing {d:?}: invalid syntax"
                    )));
                }
            }
        }
        let now = now_ns() as i64;
        let start = time_or(&p, "start", now - DEFAULT_SINCE_NS)?;
        Ok(Query {
            expr,
            start,
            end: now,
            step: 0,
            instant: false,
            limit,
            forward: true,
        })
    })();
    let first = match prepared {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    ws.on_upgrade(move |socket| tail_loop(api, socket, first))
}

async fn tail_loop(api: LokiApi, mut socket: axum::extract::ws::WebSocket, first: Query) {
    use axum::extract::ws::Message;
    let frame = |streams: &[logql::eval::StreamOut]| {
        let mut o = String::from("{\"streams\":");
        write_streams(&mut o, streams);
        o.push_str(",\"dropped_entries\":null}");
        o
    };
    let Ok(mut last) = api.store.last_log_chunk().await else {
        return;
    };
    let mut q = first;
    // The history first: `limit` entries from `start`, oldest first.
    if let Ok((Answer::Streams(s), _)) = api
        .store
        .logql_chunks(q.clone(), api.limits.clone(), i64::MIN, last)
        .await
        && !s.is_empty()
        && socket.send(Message::Text(frame(&s).into())).await.is_err()
    {
        return;
    }
    // Live: whatever is committed from now on, whatever its timestamp (as Loki's tailers see
    // pushes as they arrive).
    q.start = i64::MIN / 2;
    q.end = i64::MAX / 2;
    q.limit = api.limits.max_entries;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            m = socket.recv() => match m {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => continue,
            },
        }
        let Ok(now) = api.store.last_log_chunk().await else {
            return;
        };
        if now <= last {
            continue;
        }
        match api
            .store
            .logql_chunks(q.clone(), api.limits.clone(), last, now)
            .await
        {
            Ok((Answer::Streams(s), _)) => {
                if !s.is_empty() && socket.send(Message::Text(frame(&s).into())).await.is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => {
                let _ = socket
                    .send(Message::Close(Some(axum::extract::ws::CloseFrame {
                        code: 1011,
                        reason: e.to_string().chars().take(120).collect::<String>().into(),
                    })))
                    .await;
                return;
            }
        }
        last = now;
    }
}

async fn detected_labels(State(api): State<LokiApi>, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.as_deref());
    respond(
        async {
            let (start, end) = bounds(&p)?;
            let ms = optional_selector(p.get("query"))?;
            let got = api
                .store
                .read_logs(move |src| logql::detected::detected_labels(src, start, end, &ms))
                .await??;
            let labels: Vec<Value> = got
                .iter()
                .map(|d| json!({"label": d.label, "cardinality": d.cardinality}))
                .collect();
            Ok(json_answer(json!({"detectedLabels": labels}).to_string()))
        }
        .await,
    )
}

/// The fields of the newest `line_limit` lines of `query` (a log query), at most `limit`.
async fn fields_of(
    api: &LokiApi,
    p: &Params,
) -> Result<(Vec<logql::detected::DetectedField>, usize), LokiError> {
    let (start, end) = bounds(p)?;
    let expr = parse_query(p)?;
    let logql::Expr::Log(q) = expr else {
        return Err(LokiError::bad("detected fields need a log query"));
    };
    let num = |k: &str| -> Result<usize, LokiError> {
        match p.get(k).filter(|v| !v.is_empty()) {
            None => Ok(1000),
            Some(v) => match v.parse::<i64>() {
                Ok(n) if n > 0 => Ok((n as usize).min(api.limits.max_entries)),
                Ok(_) => Err(LokiError::bad("limit must be a positive value")),
                Err(_) => Err(LokiError::bad(format!(
                    "strconv.Atoi: parsing {v:?}: invalid syntax"
                ))),
            },
        }
    };
    let (lines, limit) = (
        num("line_limit")?,
        num("limit").or_else(|_| num("field_limit"))?,
    );
    let fields = api
        .store
        .read_logs(move |src| logql::detected::detected_fields(src, &q, start, end, lines, limit))
        .await??;
    Ok((fields, limit))
}

async fn detected_fields(State(api): State<LokiApi>, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.as_deref());
    respond(
        async {
            let (fields, limit) = fields_of(&api, &p).await?;
            let out: Vec<Value> = fields
                .iter()
                .map(|f| {
                    json!({
                        "label": f.label,
                        "type": f.kind,
                        "cardinality": f.values.len(),
                        "parsers": if f.parsers.is_empty() { Value::Null } else { json!(f.parsers) },
                    })
                })
                .collect();
            let mut body = json!({"fields": out});
            if !fields.is_empty() {
                body["limit"] = json!(limit);
            }
            Ok(json_answer(body.to_string()))
        }
        .await,
    )
}

async fn detected_field_values(
    State(api): State<LokiApi>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let p = Params::parse(q.as_deref());
    respond(
        async {
            let (fields, limit) = fields_of(&api, &p).await?;
            let values: Vec<&String> = fields
                .iter()
                .find(|f| f.label == name)
                .map(|f| f.values.iter().take(limit).collect())
                .unwrap_or_default();
            let mut body = json!({"values": values});
            if !values.is_empty() {
                body["limit"] = json!(limit);
            }
            Ok(json_answer(body.to_string()))
        }
        .await,
    )
}

async fn buildinfo() -> Response {
    json_answer(
        json!({
            "version": "3.0.0",
            "revision": env!("CARGO_PKG_VERSION"),
            "branch": "sightline",
            "buildUser": "sightline",
            "buildDate": "",
            "goVersion": "",
        })
        .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_as_loki_reads_them() {
        assert_eq!(parse_loki_time("1700000000"), Some(1_700_000_000 * NS));
        assert_eq!(
            parse_loki_time("1700000000.25"),
            Some(1_700_000_000 * NS + 250_000_000)
        );
        // More than 10 digits: nanoseconds.
        assert_eq!(
            parse_loki_time("1700000000123456789"),
            Some(1_700_000_000_123_456_789)
        );
        assert_eq!(
            parse_loki_time("2023-11-14T22:13:20.5Z"),
            Some(1_700_000_000 * NS + 500_000_000)
        );
        assert_eq!(parse_loki_time("yesterday"), None);
        assert_eq!(parse_seconds_or_duration("15"), Ok(15 * NS));
        assert_eq!(parse_seconds_or_duration("1m"), Ok(60 * NS));
        assert_eq!(parse_seconds_or_duration("0.5"), Ok(NS / 2));
        assert!(parse_seconds_or_duration("soon").is_err());
    }

    #[test]
    fn range_defaults_and_checks() {
        let p = Params::parse(Some("query=%7Ba%3D%22b%22%7D&start=1000&end=2000"));
        let q = range_query(&p).unwrap();
        assert_eq!(
            (q.start, q.end, q.limit, q.forward),
            (1000 * NS, 2000 * NS, 100, false)
        );
        // floor(1000 s / 250) = 4 s.
        assert_eq!(q.step, 4 * NS);
        let p = Params::parse(Some("query=%7Ba%3D%22b%22%7D&start=2000&end=1000"));
        assert_eq!(
            range_query(&p).unwrap_err().1,
            "end timestamp must not be before or equal to start time"
        );
        let p = Params::parse(Some("query=%7Ba%3D%22b%22%7D&start=0&end=100000&step=1"));
        assert!(range_query(&p).unwrap_err().1.contains("11,000 points"));
        let p = Params::parse(Some("query=%7Ba%3D%22b%22%7D&limit=0"));
        assert_eq!(
            range_query(&p).unwrap_err().1,
            "limit must be a positive value"
        );
        let p = Params::parse(Some("query=%7Ba%3D%22b%22%7D&direction=sideways"));
        assert_eq!(
            range_query(&p).unwrap_err().1,
            "invalid direction 'sideways'"
        );
        let p = Params::parse(Some("query=%7Ba%3D%22b%22%7D&direction=FORWARD"));
        assert!(range_query(&p).unwrap().forward);
    }

    #[test]
    fn samples_are_written_as_loki_writes_them() {
        let mut o = String::new();
        write_point(&mut o, 1_700_000_000_500_000_000, 0.1);
        assert_eq!(o, "[1700000000.5,\"0.1\"]");
        o.clear();
        write_point(&mut o, 1_700_000_000 * NS, 1e21);
        assert_eq!(o, "[1700000000,\"1000000000000000000000\"]");
        let mut o = String::new();
        write_prom_labels(
            &mut o,
            &vec![("a".into(), "x\"y".into()), ("b".into(), "z".into())],
        );
        assert_eq!(o, "{a=\"x\\\"y\", b=\"z\"}");
    }
}
