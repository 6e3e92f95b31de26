//! Jaeger's Monitor tab (Service Performance Monitoring): `/api/metrics/calls`, `latencies`,
//! `errors` and `minstep`, answered from the span metrics (`crate::spanmetrics`) with the PromQL
//! Jaeger's Prometheus metrics reader sends, over Tempo's label names (`service`, `span_name`),
//! and rendered as Jaeger's `MetricFamily` in protobuf JSON with Jaeger's label names
//! (`service_name`, `operation`). Latencies are in milliseconds, as Jaeger's UI shows them.

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::edge::ApiError;
use crate::base::params::Params;
use crate::promql::{QueryService, QueryValue};

pub fn router(service: QueryService) -> Router {
    Router::new()
        .route("/api/metrics/calls", get(calls))
        .route("/api/metrics/latencies", get(latencies))
        .route("/api/metrics/errors", get(errors))
        .route("/api/metrics/minstep", get(minstep))
        .with_state(service)
}

/// The parameters every metrics query takes, with Jaeger's defaults.
#[derive(Debug)]
pub struct Base {
    services: Vec<String>,
    group_by_operation: bool,
    span_kinds: Vec<&'static str>,
    end_ms: i64,
    lookback_ms: i64,
    step_ms: i64,
    rate_ms: i64,
}

pub fn parse_base(p: &Params) -> Result<Base, String> {
    let services: Vec<String> = p.all("service").map(str::to_string).collect();
    if services.is_empty() {
        return Err(
            "unable to parse param 'service': please provide at least one service name".into(),
        );
    }
    let group_by_operation = match p.get("groupByOperation") {
        None => false,
        Some(v) => parse_go_bool(v).ok_or_else(|| {
            format!("unable to parse param 'groupByOperation': {v:?} is not a boolean")
        })?,
    };
    let mut span_kinds = Vec::new();
    for k in p.all("spanKind") {
        span_kinds.push(match k {
            "unspecified" => "SPAN_KIND_UNSPECIFIED",
            "internal" => "SPAN_KIND_INTERNAL",
            "server" => "SPAN_KIND_SERVER",
            "client" => "SPAN_KIND_CLIENT",
            "producer" => "SPAN_KIND_PRODUCER",
            "consumer" => "SPAN_KIND_CONSUMER",
            other => {
                return Err(format!(
                    "unable to parse param 'spanKind': unsupported span kind: '{other}'"
                ));
            }
        });
    }
    if span_kinds.is_empty() {
        span_kinds.push("SPAN_KIND_SERVER");
    }
    let int = |key: &str, default: i64| -> Result<i64, String> {
        match p.get(key) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse::<i64>()
                .map_err(|_| format!("unable to parse param '{key}': {v:?} is not an integer")),
        }
    };
    let now = crate::base::clock::now_us() as i64 / 1000;
    let b = Base {
        services,
        group_by_operation,
        span_kinds,
        end_ms: int("endTs", now)?,
        lookback_ms: int("lookback", 3_600_000)?,
        step_ms: int("step", 5_000)?,
        rate_ms: int("ratePer", 600_000)?,
    };
    if b.lookback_ms <= 0 || b.step_ms <= 0 || b.rate_ms <= 0 {
        return Err("lookback, step and ratePer must be positive (milliseconds)".into());
    }
    if b.lookback_ms / b.step_ms >= crate::promql::MAX_POINTS_PER_SERIES {
        return Err(format!(
            "lookback/step gives more than {} points per series: use a larger step",
            crate::promql::MAX_POINTS_PER_SERIES
        ));
    }
    Ok(b)
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

impl Base {
    /// The selector's matchers, without braces; `extra` is added (e.g. the error status).
    fn matchers(&self, extra: &str) -> String {
        let services: Vec<String> = self.services.iter().map(|s| regex::escape(s)).collect();
        let mut m = format!(
            "service=~{}, span_kind=~{}",
            crate::base::gofmt::quote(&services.join("|"), crate::base::gofmt::QuoteStyle::Go),
            crate::base::gofmt::quote(
                &self.span_kinds.join("|"),
                crate::base::gofmt::QuoteStyle::Go
            )
        );
        if !extra.is_empty() {
            m.push_str(", ");
            m.push_str(extra);
        }
        m
    }

    fn group_by(&self, le: bool) -> String {
        let mut g = vec!["service"];
        if self.group_by_operation {
            g.push("span_name");
        }
        if le {
            g.push("le");
        }
        g.join(",")
    }

    fn name(&self, base: &str, help: &str) -> (String, String) {
        if self.group_by_operation {
            (
                base.replacen("service", "service_operation", 1),
                format!("{help} & operation"),
            )
        } else {
            (base.to_string(), help.to_string())
        }
    }
}

/// RFC 3339 in UTC with the fraction protobuf JSON writes (none, or 3 digits for ms).
fn timestamp(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let frac = ms.rem_euclid(1000);
    let (y, mo, d, sod) = crate::base::clock::civil(secs);
    let base = format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    );
    if frac == 0 {
        format!("{base}Z")
    } else {
        format!("{base}.{frac:03}Z")
    }
}

/// protobuf JSON writes non-finite doubles as strings.
fn double(v: f64) -> Value {
    if v.is_nan() {
        json!("NaN")
    } else if v == f64::INFINITY {
        json!("Infinity")
    } else if v == f64::NEG_INFINITY {
        json!("-Infinity")
    } else {
        json!(v)
    }
}

fn family(name: &str, help: &str, m: &[crate::tsdb::Series], zero: bool) -> Value {
    let metrics: Vec<Value> = m
        .iter()
        .map(|s| {
            let labels: Vec<Value> = s
                .labels
                .iter()
                .map(|l| {
                    let n = match l.name.as_str() {
                        "service" => "service_name",
                        "span_name" => "operation",
                        other => other,
                    };
                    json!({"name": n, "value": l.value})
                })
                .collect();
            let points: Vec<Value> = s
                .samples
                .iter()
                .map(|(t, v)| {
                    json!({"gaugeValue": {"doubleValue": double(if zero { 0.0 } else { *v })}, "timestamp": timestamp(*t)})
                })
                .collect();
            json!({"labels": labels, "metricPoints": points})
        })
        .collect();
    json!({"name": name, "type": "GAUGE", "help": help, "metrics": metrics})
}

/// Runs one of the Monitor tab's queries through the shared query service; failures are
/// answered in Jaeger's envelope by the one error edge.
async fn range(
    svc: &QueryService,
    b: &Base,
    q: String,
) -> Result<Vec<crate::tsdb::Series>, Response> {
    let expr = crate::promql::parse(&q).map_err(|e| {
        ApiError::Failed {
            code: crate::error::ErrorCode::Internal,
            what: "the span metrics query",
            detail: format!("{q}: {e}"),
        }
        .jaeger()
    })?;
    let (start, end, step) = (b.end_ms.saturating_sub(b.lookback_ms), b.end_ms, b.step_ms);
    match svc.range(expr, start, end, step, None).await {
        Ok(QueryValue::Matrix(m)) => Ok(m),
        Ok(_) => Ok(Vec::new()),
        Err(e) => Err(ApiError::from(e).jaeger()),
    }
}

/// The PromQL of `/api/metrics/calls` for these parameters.
pub fn calls_query(b: &Base) -> String {
    format!(
        "sum(rate(traces_spanmetrics_calls_total{{{}}}[{}ms])) by ({})",
        b.matchers(""),
        b.rate_ms,
        b.group_by(false)
    )
}

async fn calls(State(st): State<QueryService>, RawQuery(q): RawQuery) -> Response {
    let b = match parse_base(&Params::parse(q.as_deref())) {
        Ok(b) => b,
        Err(e) => return ApiError::BadData(e).jaeger(),
    };
    let (name, help) = b.name("service_call_rate", "calls/sec, grouped by service");
    match range(&st, &b, calls_query(&b)).await {
        Ok(m) => axum::Json(family(&name, &help, &m, false)).into_response(),
        Err(r) => r,
    }
}

async fn latencies(State(st): State<QueryService>, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.as_deref());
    let quantile = match p.get("quantile").map(|v| v.trim().parse::<f64>()) {
        Some(Ok(v)) => v,
        Some(Err(_)) | None => {
            return ApiError::bad_data(
                "unable to parse param 'quantile': expected a number such as 0.95",
            )
            .jaeger();
        }
    };
    let b = match parse_base(&p) {
        Ok(b) => b,
        Err(e) => return ApiError::BadData(e).jaeger(),
    };
    let (name, help) = b.name(
        "service_latencies",
        &format!("{quantile:.2}th quantile latency, grouped by service"),
    );
    // Seconds in the store, milliseconds in Jaeger's answer.
    let q = format!(
        "1000 * histogram_quantile({}, sum(rate(traces_spanmetrics_latency_bucket{{{}}}[{}ms])) by ({}))",
        crate::base::gofmt::float(quantile, crate::base::gofmt::FloatStyle::G),
        b.matchers(""),
        b.rate_ms,
        b.group_by(true)
    );
    match range(&st, &b, q).await {
        Ok(m) => axum::Json(family(&name, &help, &m, false)).into_response(),
        Err(r) => r,
    }
}

async fn errors(State(st): State<QueryService>, RawQuery(q): RawQuery) -> Response {
    let b = match parse_base(&Params::parse(q.as_deref())) {
        Ok(b) => b,
        Err(e) => return ApiError::BadData(e).jaeger(),
    };
    let (name, help) = b.name(
        "service_error_rate",
        "error rate, computed as a fraction of errors/sec over calls/sec, grouped by service",
    );
    let q = format!(
        "sum(rate(traces_spanmetrics_calls_total{{{}}}[{r}ms])) by ({g}) / sum(rate(traces_spanmetrics_calls_total{{{}}}[{r}ms])) by ({g})",
        b.matchers("status_code=\"STATUS_CODE_ERROR\""),
        b.matchers(""),
        r = b.rate_ms,
        g = b.group_by(false)
    );
    match range(&st, &b, q).await {
        Ok(m) if !m.is_empty() => axum::Json(family(&name, &help, &m, false)).into_response(),
        Ok(_) => {
            // No errors at all: where there are calls, the error rate is zero (as Jaeger answers).
            match range(&st, &b, calls_query(&b)).await {
                Ok(calls) => axum::Json(family(&name, &help, &calls, true)).into_response(),
                Err(r) => r,
            }
        }
        Err(r) => r,
    }
}

async fn minstep() -> Response {
    // The store keeps millisecond timestamps, as Jaeger's Prometheus reader assumes.
    axum::Json(json!({"data": 1, "total": 0, "limit": 0, "offset": 0, "errors": null}))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_as_protobuf_json() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(timestamp(1_622_711_526_000), "2021-06-03T09:12:06Z");
        assert_eq!(timestamp(1_622_711_526_250), "2021-06-03T09:12:06.250Z");
    }

    #[test]
    fn jaeger_parameters_and_defaults() {
        let b = parse_base(&Params::parse(Some("service=a&service=b.c&groupByOperation=true&spanKind=client&endTs=1000&lookback=600000"))).unwrap();
        assert_eq!(b.services, vec!["a", "b.c"]);
        assert!(b.group_by_operation);
        assert_eq!(b.span_kinds, vec!["SPAN_KIND_CLIENT"]);
        assert_eq!(
            (b.end_ms, b.lookback_ms, b.step_ms, b.rate_ms),
            (1000, 600_000, 5000, 600_000)
        );
        assert_eq!(
            calls_query(&b),
            "sum(rate(traces_spanmetrics_calls_total{service=~\"a|b\\\\.c\", span_kind=~\"SPAN_KIND_CLIENT\"}[600000ms])) by (service,span_name)"
        );
        assert!(parse_base(&Params::parse(Some("groupByOperation=true"))).is_err());
        assert!(parse_base(&Params::parse(Some("service=a&spanKind=sideways"))).is_err());
        assert!(parse_base(&Params::parse(Some("service=a&step=0"))).is_err());
        // Extreme numbers are answered, not overflowed.
        let x = parse_base(&Params::parse(Some("service=a&endTs=-9223372036854775808&lookback=9223372036854775807&step=9223372036854775807"))).unwrap();
        assert_eq!(x.end_ms.saturating_sub(x.lookback_ms), i64::MIN);
        let d = parse_base(&Params::parse(Some("service=a"))).unwrap();
        assert_eq!(d.span_kinds, vec!["SPAN_KIND_SERVER"]);
        assert_eq!(
            (d.lookback_ms, d.step_ms, d.rate_ms),
            (3_600_000, 5000, 600_000)
        );
    }
}
