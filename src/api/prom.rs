//! The Prometheus HTTP API endpoints that read the store through the [`Queryable`] seam without
//! PromQL: `/api/v1/series`, `/api/v1/labels`, `/api/v1/label/{name}/values`,
//! `/api/v1/metadata`, plus `/api/v1/export`,
//! raw samples as JSON lines (VictoriaMetrics's export shape) for backups and tests. Answers use
//! Prometheus's envelope `{status, data}` / `{status, errorType, error}`. The endpoints that
//! evaluate PromQL live in `query.rs`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::tsdb::{Matcher, Queryable, Tsdb, is_stale};

use super::selector;
use crate::base::params::Params;

pub fn router(db: Tsdb) -> Router {
    Router::new()
        .route("/api/v1/series", get(series).post(series))
        .route("/api/v1/labels", get(labels).post(labels))
        .route("/api/v1/label/{name}/values", get(label_values))
        .route("/api/v1/metadata", get(metadata))
        .route("/api/v1/export", get(export).post(export))
        .with_state(db)
}

/// Prometheus's error envelope, keys in Prometheus's order.
pub fn error(status: StatusCode, error_type: &str, msg: impl Into<String>) -> Response {
    let body = format!(
        "{{\"status\":\"error\",\"errorType\":{},\"error\":{}}}",
        crate::base::gofmt::quote(error_type, crate::base::gofmt::QuoteStyle::Json),
        crate::base::gofmt::quote(&msg.into(), crate::base::gofmt::QuoteStyle::Json)
    );
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn bad_data(msg: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, "bad_data", msg)
}

fn success(data: Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{{\"status\":\"success\",\"data\":{data}}}"),
    )
        .into_response()
}

fn internal(e: crate::tsdb::TsdbError) -> Response {
    tracing::error!(error = %e, "metrics query failed");
    error(
        e.code().http_status(),
        "internal",
        "the metrics store could not answer; see the server log",
    )
}

/// Query string plus, for form POSTs, the body's parameters.
pub(crate) fn params(q: Option<String>, headers: &HeaderMap, body: &Bytes) -> Params {
    let mut all = q.unwrap_or_default();
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if form && !body.is_empty() {
        if !all.is_empty() {
            all.push('&');
        }
        all.push_str(&String::from_utf8_lossy(body));
    }
    Params::parse(Some(&all))
}

/// A Prometheus time parameter: RFC 3339 or Unix seconds (fractional allowed), in ms.
pub fn parse_time(s: &str) -> Option<i64> {
    if let Ok(f) = s.trim().parse::<f64>() {
        if f.is_finite() {
            return Some((f * 1000.0).round() as i64);
        }
        return None;
    }
    parse_rfc3339(s.trim())
}

fn parse_rfc3339(s: &str) -> Option<i64> {
    // YYYY-MM-DDTHH:MM:SS(.fff)?(Z|±HH:MM)
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut i = 19;
    let mut frac_ms = 0i64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(|c| c.is_ascii_digit()) {
            i += 1;
        }
        let digits = &s[start..i];
        let padded = format!("{:0<3}", &digits[..digits.len().min(3)]);
        frac_ms = padded.parse().ok()?;
    }
    let offset_min = match b.get(i) {
        Some(b'Z') | Some(b'z') if i + 1 == b.len() => 0,
        Some(c @ (b'+' | b'-')) if i + 6 == b.len() => {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            let o = oh * 60 + om;
            if *c == b'+' { o } else { -o }
        }
        _ => return None,
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let (yy, mm) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * mm + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(((days * 86400 + h * 3600 + mi * 60 + sec - offset_min * 60) * 1000) + frac_ms)
}

/// `start`/`end` in ms, defaulting to all time.
fn range(p: &Params) -> Result<(i64, i64), String> {
    let get = |k: &str, dflt: i64| -> Result<i64, String> {
        match p.get(k) {
            None => Ok(dflt),
            Some(v) => parse_time(v).ok_or_else(|| {
                format!("invalid parameter \"{k}\": cannot parse {v:?} to a valid timestamp")
            }),
        }
    };
    let (start, end) = (get("start", i64::MIN / 2)?, get("end", i64::MAX / 2)?);
    if end < start {
        return Err("end timestamp must not be before start time".to_string());
    }
    Ok((start, end))
}

fn matchers(p: &Params, required: bool) -> Result<Vec<Vec<Matcher>>, String> {
    let sets: Vec<Vec<Matcher>> = p
        .all("match[]")
        .map(|s| selector::parse(s).map_err(|e| format!("invalid parameter \"match[]\": {e}")))
        .collect::<Result<_, _>>()?;
    if required && sets.is_empty() {
        return Err("no match[] parameter provided".to_string());
    }
    Ok(sets)
}

/// `start`/`end` and the `match[]` sets, as every selector endpoint takes them.
type RangeAndSets = (i64, i64, Vec<Vec<Matcher>>);

fn range_and_matchers(p: &Params, required: bool) -> Result<RangeAndSets, String> {
    let (start, end) = range(p)?;
    Ok((start, end, matchers(p, required)?))
}

pub(crate) fn labels_json(l: &crate::tsdb::Labels) -> Value {
    Value::Object(
        l.iter()
            .map(|x| (x.name.clone(), Value::String(x.value.clone())))
            .collect(),
    )
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("query task panicked")
}

async fn series(
    State(db): State<Tsdb>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = params(q, &headers, &body);
    let (start, end, sets) = match range_and_matchers(&p, true) {
        Ok(r) => r,
        Err(e) => return bad_data(e),
    };
    blocking(move || {
        let mut seen = std::collections::BTreeSet::new();
        for ms in &sets {
            match db.select(start, end, ms) {
                Ok(it) => seen.extend(it.map(|s| s.labels)),
                Err(e) => return internal(e),
            }
        }
        success(Value::Array(seen.iter().map(labels_json).collect()))
    })
    .await
}

/// The union of `f` over every `match[]` set (or over all series when there is none).
fn union_over(
    sets: Vec<Vec<Matcher>>,
    f: impl Fn(&[Matcher]) -> Result<Vec<String>, crate::tsdb::TsdbError>,
) -> Response {
    let sets = if sets.is_empty() {
        vec![Vec::new()]
    } else {
        sets
    };
    let mut all = std::collections::BTreeSet::new();
    for ms in &sets {
        match f(ms) {
            Ok(v) => all.extend(v),
            Err(e) => return internal(e),
        }
    }
    success(json!(all))
}

async fn labels(
    State(db): State<Tsdb>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = params(q, &headers, &body);
    let (start, end, sets) = match range_and_matchers(&p, false) {
        Ok(r) => r,
        Err(e) => return bad_data(e),
    };
    blocking(move || union_over(sets, |ms| db.label_names(start, end, ms))).await
}

async fn label_values(
    State(db): State<Tsdb>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let p = Params::parse(q.as_deref());
    if !crate::tsdb::labels::valid_label_name(&name) {
        return bad_data(format!("invalid label name: {name:?}"));
    }
    let (start, end, sets) = match range_and_matchers(&p, false) {
        Ok(r) => r,
        Err(e) => return bad_data(e),
    };
    blocking(move || union_over(sets, |ms| db.label_values(&name, start, end, ms))).await
}

async fn metadata(State(db): State<Tsdb>, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.as_deref());
    let only = p.get("metric").map(str::to_string);
    let limit = p
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let md = db.metadata();
    let mut out = serde_json::Map::new();
    for (name, m) in md {
        if only.as_ref().is_some_and(|o| *o != name) {
            continue;
        }
        if limit.is_some_and(|l| out.len() >= l) {
            break;
        }
        out.insert(name, json!([m]));
    }
    success(Value::Object(out))
}

/// JSON lines: `{"metric":{...},"values":[...],"timestamps":[...]}`; values that JSON cannot
/// carry are strings: `"NaN"`, `"+Inf"`, `"-Inf"`, and `"stale"` for staleness markers.
async fn export(
    State(db): State<Tsdb>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = params(q, &headers, &body);
    let (start, end, sets) = match range_and_matchers(&p, true) {
        Ok(r) => r,
        Err(e) => return bad_data(e),
    };
    blocking(move || {
        let mut out = String::new();
        let mut done = std::collections::BTreeSet::new();
        for ms in &sets {
            let it = match db.select(start, end, ms) {
                Ok(it) => it,
                Err(e) => return internal(e),
            };
            for s in it {
                if !done.insert(s.labels.clone()) {
                    continue;
                }
                let values: Vec<Value> = s
                    .samples
                    .iter()
                    .map(|(_, v)| {
                        if is_stale(*v) {
                            json!("stale")
                        } else if v.is_finite() {
                            json!(v)
                        } else {
                            json!(crate::base::gofmt::float(
                                *v,
                                crate::base::gofmt::FloatStyle::Label
                            ))
                        }
                    })
                    .collect();
                let ts: Vec<i64> = s.samples.iter().map(|x| x.0).collect();
                out.push_str(
                    &json!({"metric": labels_json(&s.labels), "values": values, "timestamps": ts})
                        .to_string(),
                );
                out.push('\n');
            }
        }
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/stream+json")],
            out,
        )
            .into_response()
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("1700000000"), Some(1_700_000_000_000));
        assert_eq!(parse_time("1700000000.5"), Some(1_700_000_000_500));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Some(1_700_000_000_000));
        assert_eq!(
            parse_time("2023-11-14T22:13:20.25Z"),
            Some(1_700_000_000_250)
        );
        assert_eq!(
            parse_time("2023-11-15T00:13:20+02:00"),
            Some(1_700_000_000_000)
        );
        assert_eq!(parse_time("yesterday"), None);
    }
}
