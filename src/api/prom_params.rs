//! What the Prometheus API's handlers share: request parameters (the query string and, for form
//! POSTs, the body; times as RFC 3339 or Unix seconds; `start`/`end`; `match[]` selectors parsed
//! by the PromQL parser) and label sets as JSON.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::edge::ApiError;

use crate::base::params::Params;
use crate::tsdb::Matcher;

/// Query string plus, for form POSTs, the body's parameters.
pub(super) fn params(q: Option<String>, headers: &HeaderMap, body: &Bytes) -> Params {
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

pub(super) fn parse_rfc3339(s: &str) -> Option<i64> {
    crate::base::clock::parse_rfc3339_ns(s).map(|ns| ns.div_euclid(1_000_000))
}

/// `start`/`end` in ms, defaulting to all time.
pub(super) fn range(p: &Params) -> Result<(i64, i64), String> {
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

pub(super) fn matchers(p: &Params, required: bool) -> Result<Vec<Vec<Matcher>>, String> {
    let sets: Vec<Vec<Matcher>> = p
        .all("match[]")
        .map(|s| {
            crate::promql::parse_selector(s)
                .map_err(|e| format!("invalid parameter \"match[]\": {e}"))
        })
        .collect::<Result<_, _>>()?;
    if required && sets.is_empty() {
        return Err("no match[] parameter provided".to_string());
    }
    Ok(sets)
}

/// `start`/`end` and the `match[]` sets, as every selector endpoint takes them.
pub(super) type RangeAndSets = (i64, i64, Vec<Vec<Matcher>>);

fn range_and_matchers(p: &Params, required: bool) -> Result<RangeAndSets, String> {
    let (start, end) = range(p)?;
    Ok((start, end, matchers(p, required)?))
}

pub(super) fn labels_json(l: &crate::tsdb::Labels) -> Value {
    Value::Object(
        l.iter()
            .map(|x| (x.name.clone(), Value::String(x.value.clone())))
            .collect(),
    )
}

/// `start`, `end` and the `match[]` sets of a selector endpoint's request (query string, or form
/// body for POST), parsed before the handler runs; a bad parameter is answered with
/// Prometheus's `bad_data`. `REQUIRED`: at least one `match[]` must be given.
pub(super) struct Selection<const REQUIRED: bool> {
    pub start: i64,
    pub end: i64,
    pub sets: Vec<Vec<Matcher>>,
}

impl<S: Send + Sync, const REQUIRED: bool> FromRequest<S> for Selection<REQUIRED> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        let query = req.uri().query().map(str::to_string);
        let headers = req.headers().clone();
        let body = Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let p = params(query, &headers, &body);
        let (start, end, sets) =
            range_and_matchers(&p, REQUIRED).map_err(|e| ApiError::BadData(e).prometheus())?;
        Ok(Selection { start, end, sets })
    }
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
