//! The PromQL endpoints of the Prometheus HTTP API: `/api/v1/query`, `/api/v1/query_range`,
//! `/api/v1/format_query`, `/api/v1/query_exemplars`, plus `/api/v1/status/buildinfo`. Answers are
//! written byte for byte as Prometheus writes them: timestamps as seconds with up to three
//! decimals, sample values as strings in Go's shortest form, Go's JSON string escaping.

use std::fmt::Write as _;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use super::edge::{ApiError, prometheus_success_raw};
use super::prom_params::{labels_json, params, parse_time};
use crate::base::clock::now_ms;
use crate::base::gofmt::{FloatStyle, QuoteStyle, float, quote};
use crate::base::params::Params;
use crate::promql::{self, EvalError, Expr, QueryService, QueryValue, ValueType};
use crate::tsdb::{Labels, Matcher};

pub fn router(service: QueryService) -> Router {
    Router::new()
        .route("/api/v1/query", get(query).post(query))
        .route("/api/v1/query_range", get(query_range).post(query_range))
        .route("/api/v1/format_query", get(format_query).post(format_query))
        .route("/api/v1/query_exemplars", get(exemplars).post(exemplars))
        .route("/api/v1/status/buildinfo", get(buildinfo))
        .with_state(service)
}

/// A Prometheus duration parameter: float seconds or a duration string.
fn parse_duration_param(s: &str) -> Option<i64> {
    if let Ok(f) = s.parse::<f64>() {
        let ms = (f * 1000.0).round();
        return (f.is_finite() && ms.abs() < 9.2e18).then_some(ms as i64);
    }
    promql::parse_duration(s)
}

fn time_param(p: &Params, key: &str) -> Result<Option<i64>, String> {
    match p.get(key) {
        None => Ok(None),
        Some(v) => parse_time(v).map(Some).ok_or_else(|| {
            format!("invalid parameter \"{key}\": cannot parse {v:?} to a valid timestamp")
        }),
    }
}

fn timeout_param(p: &Params) -> Result<Option<Duration>, String> {
    match p.get("timeout") {
        None => Ok(None),
        Some(v) => match parse_duration_param(v) {
            Some(ms) if ms > 0 => Ok(Some(Duration::from_millis(ms as u64))),
            _ => Err(format!(
                "invalid parameter \"timeout\": cannot parse {v:?} to a valid duration"
            )),
        },
    }
}

fn parse_query(p: &Params) -> Result<Expr, String> {
    let Some(q) = p.get("query") else {
        return Err(
            "invalid parameter \"query\": 1:1: parse error: no expression found in input".into(),
        );
    };
    promql::parse(q).map_err(|e| format!("invalid parameter \"query\": {e}"))
}

async fn query(
    State(svc): State<QueryService>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = params(q, &headers, &body);
    let args = || -> Result<_, String> {
        let expr = parse_query(&p)?;
        let t = time_param(&p, "time")?.unwrap_or_else(now_ms);
        Ok((expr, t, timeout_param(&p)?))
    };
    match args() {
        Ok((expr, t, timeout)) => answer(svc.instant(expr, t, timeout).await),
        Err(e) => ApiError::BadData(e).prometheus(),
    }
}

/// A required time parameter (`start`, `end`).
fn required_time(p: &Params, key: &str) -> Result<i64, String> {
    time_param(p, key)?.ok_or_else(|| {
        format!("invalid parameter \"{key}\": cannot parse \"\" to a valid timestamp")
    })
}

/// `query`, `start`, `end`, `step` and `timeout` of a range query, checked as Prometheus does.
fn range_args(p: &Params) -> Result<(Expr, i64, i64, i64, Option<Duration>), String> {
    let expr = parse_query(p)?;
    let start = required_time(p, "start")?;
    let end = required_time(p, "end")?;
    if end < start {
        return Err(
            "invalid parameter \"end\": end timestamp must not be before start time".into(),
        );
    }
    let raw = p.get("step").unwrap_or("");
    let step = parse_duration_param(raw).ok_or_else(|| {
        format!("invalid parameter \"step\": cannot parse {raw:?} to a valid duration")
    })?;
    if step <= 0 {
        return Err(
            "zero or negative query resolution step widths are not accepted. Try a positive integer"
                .into(),
        );
    }
    if (end - start) / step > promql::MAX_POINTS_PER_SERIES {
        return Err("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)".into());
    }
    let t = expr.value_type();
    if t != ValueType::Scalar && t != ValueType::Vector {
        return Err(format!(
            "invalid parameter \"query\": invalid expression type {:?} for range query, must be Scalar or instant Vector",
            t.name()
        ));
    }
    Ok((expr, start, end, step, timeout_param(p)?))
}

async fn query_range(
    State(svc): State<QueryService>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = params(q, &headers, &body);
    match range_args(&p) {
        Ok((expr, start, end, step, timeout)) => {
            answer(svc.range(expr, start, end, step, timeout).await)
        }
        Err(e) => ApiError::BadData(e).prometheus(),
    }
}

async fn format_query(RawQuery(q): RawQuery, headers: HeaderMap, body: Bytes) -> Response {
    let p = params(q, &headers, &body);
    match parse_query(&p) {
        Ok(e) => prometheus_success_raw(&quote(&e.to_string(), QuoteStyle::Json)),
        Err(e) => ApiError::BadData(e).prometheus(),
    }
}

async fn buildinfo() -> Response {
    // Grafana reads `version` to decide which Prometheus features to use: this is the
    // Prometheus API level Sightline answers like. `revision` says what really runs.
    prometheus_success_raw(
        &json!({
            "version": "2.42.0",
            "revision": format!("sightline-{}", env!("CARGO_PKG_VERSION")),
            "branch": "sightline",
            "buildUser": "sightline",
            "buildDate": "",
            "goVersion": "none (Sightline is written in Rust)",
        })
        .to_string(),
    )
}

/// Every vector selector in an expression, for the exemplar endpoint.
fn selectors(e: &Expr, out: &mut Vec<Vec<Matcher>>) {
    match e {
        Expr::Number(_) | Expr::Str(_) => {}
        Expr::Paren(x) | Expr::Unary { expr: x, .. } | Expr::Subquery { expr: x, .. } => {
            selectors(x, out)
        }
        Expr::Binary { lhs, rhs, .. } => {
            selectors(lhs, out);
            selectors(rhs, out);
        }
        Expr::Aggregate { param, expr, .. } => {
            if let Some(p) = param {
                selectors(p, out);
            }
            selectors(expr, out);
        }
        Expr::Call { args, .. } => args.iter().for_each(|a| selectors(a, out)),
        Expr::Selector(vs) | Expr::Matrix { vs, .. } => out.push(vs.matchers.clone()),
    }
}

async fn exemplars(
    State(svc): State<QueryService>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = params(q, &headers, &body);
    let expr = match parse_query(&p) {
        Ok(e) => e,
        Err(e) => return ApiError::BadData(e).prometheus(),
    };
    let start = match time_param(&p, "start") {
        Ok(t) => t.unwrap_or(i64::MIN / 2),
        Err(e) => return ApiError::BadData(e).prometheus(),
    };
    let end = match time_param(&p, "end") {
        Ok(t) => t.unwrap_or(i64::MAX / 2),
        Err(e) => return ApiError::BadData(e).prometheus(),
    };
    if end < start {
        return ApiError::bad_data(
            "invalid parameter \"end\": end timestamp must not be before start time",
        )
        .prometheus();
    }
    let mut sets = Vec::new();
    selectors(&expr, &mut sets);
    let mut seen = std::collections::BTreeMap::new();
    for ms in &sets {
        for (l, e) in svc.db().exemplars(start, end, ms) {
            seen.entry(l).or_insert_with(Vec::new).push(e);
        }
    }
    let data: Vec<Value> = seen
        .into_iter()
        .map(|(l, mut ex)| {
            ex.sort_by_key(|e| e.t);
            ex.dedup_by_key(|e| e.t);
            json!({
                "seriesLabels": labels_json(&l),
                "exemplars": ex.iter().map(|e| json!({
                    "labels": {"trace_id": hex::encode(e.trace_id), "span_id": hex::encode(e.span_id)},
                    "value": float(e.value, FloatStyle::Json),
                    "timestamp": e.t as f64 / 1000.0,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    prometheus_success_raw(&Value::Array(data).to_string())
}

/// A query's answer in Prometheus's envelope; failures through the one error edge.
fn answer(r: Result<QueryValue, EvalError>) -> Response {
    match r {
        Ok(v) => prometheus_success_raw(&result_json(&v)),
        Err(e) => ApiError::from(e).prometheus(),
    }
}

/// Milliseconds as Prometheus writes timestamps: seconds, and `.ddd` when not whole.
fn write_ts(o: &mut String, t: i64) {
    let mut t = t;
    if t < 0 {
        o.push('-');
        t = -t;
    }
    let _ = write!(o, "{}", t / 1000);
    let frac = t % 1000;
    if frac != 0 {
        o.push('.');
        o.push((b'0' + (frac / 100) as u8) as char);
        o.push((b'0' + (frac / 10 % 10) as u8) as char);
        o.push((b'0' + (frac % 10) as u8) as char);
    }
}

fn write_point(o: &mut String, t: i64, v: &str) {
    o.push('[');
    write_ts(o, t);
    o.push_str(",\"");
    o.push_str(v);
    o.push_str("\"]");
}

/// `write_point` for a sample value, formatted straight into the buffer (the common case
/// needs no intermediate string).
fn write_sample(o: &mut String, t: i64, v: f64) {
    let a = v.abs();
    if v.is_finite() && (a == 0.0 || (1e-6..1e21).contains(&a)) {
        o.push('[');
        write_ts(o, t);
        let _ = write!(o, ",\"{v}\"]");
    } else {
        write_point(o, t, &float(v, FloatStyle::Json));
    }
}

fn write_labels(o: &mut String, l: &Labels) {
    o.push('{');
    for (i, x) in l.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        o.push_str(&quote(&x.name, QuoteStyle::Json));
        o.push(':');
        o.push_str(&quote(&x.value, QuoteStyle::Json));
    }
    o.push('}');
}

/// The `data` object of a query answer.
pub fn result_json(v: &QueryValue) -> String {
    let mut o = String::with_capacity(256);
    match v {
        QueryValue::Scalar(t, x) => {
            // Prometheus writes scalars with 'f' formatting, never in exponent form.
            o.push_str("{\"resultType\":\"scalar\",\"result\":");
            let v = float(*x, FloatStyle::F);
            write_point(&mut o, *t, &v);
        }
        QueryValue::Str(t, s) => {
            o.push_str("{\"resultType\":\"string\",\"result\":[");
            write_ts(&mut o, *t);
            o.push(',');
            o.push_str(&quote(s, QuoteStyle::Json));
            o.push(']');
        }
        QueryValue::Vector(t, samples) => {
            o.push_str("{\"resultType\":\"vector\",\"result\":[");
            for (i, (l, x)) in samples.iter().enumerate() {
                if i > 0 {
                    o.push(',');
                }
                o.push_str("{\"metric\":");
                write_labels(&mut o, l);
                o.push_str(",\"value\":");
                write_sample(&mut o, *t, *x);
                o.push('}');
            }
            o.push(']');
        }
        QueryValue::Matrix(m) => {
            o.push_str("{\"resultType\":\"matrix\",\"result\":[");
            for (i, s) in m.iter().enumerate() {
                if i > 0 {
                    o.push(',');
                }
                o.push_str("{\"metric\":");
                write_labels(&mut o, &s.labels);
                o.push_str(",\"values\":[");
                for (j, (t, x)) in s.samples.iter().enumerate() {
                    if j > 0 {
                        o.push(',');
                    }
                    write_sample(&mut o, *t, *x);
                }
                o.push_str("]}");
            }
            o.push(']');
        }
    }
    o.push('}');
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_times_are_written_like_prometheus() {
        assert_eq!(float(1.0, FloatStyle::Json), "1");
        assert_eq!(float(0.1, FloatStyle::Json), "0.1");
        assert_eq!(float(1e21, FloatStyle::Json), "1e+21");
        assert_eq!(float(1e20, FloatStyle::Json), "100000000000000000000");
        assert_eq!(float(1.5e-7, FloatStyle::Json), "1.5e-07");
        assert_eq!(float(0.000001, FloatStyle::Json), "0.000001");
        assert_eq!(float(f64::NEG_INFINITY, FloatStyle::Json), "-Inf");
        let mut o = String::new();
        write_ts(&mut o, 1_435_781_451_780);
        assert_eq!(o, "1435781451.780");
        o.clear();
        write_ts(&mut o, 1_000);
        assert_eq!(o, "1");
        o.clear();
        write_ts(&mut o, 5);
        assert_eq!(o, "0.005");
        assert_eq!(
            quote("a<b>&\"\n", QuoteStyle::Json),
            "\"a\\u003cb\\u003e\\u0026\\\"\\n\""
        );
    }
}
