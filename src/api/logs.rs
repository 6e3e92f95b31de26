//! Log search over HTTP: `GET /api/logs` with `service`, `q` (full text over bodies: words,
//! "phrases", AND/OR), `severity` (minimum, a name or number), `traceID`, `tags` (the tag query
//! language of `traces::tagquery`), `start`/`end` (µs) and `limit`. Newest first.

use axum::Json;
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::ApiState;
use crate::base::params::Params;
use crate::traces::model;
use crate::traces::{LogSearch, tagquery};

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/logs", get(search))
        .with_state(state)
}

fn bad(msg: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"data": null, "total": 0, "errors": [{"code": 400, "msg": msg.into()}]})),
    )
        .into_response()
}

/// OTLP severity numbers where each named range starts.
fn severity(text: &str) -> Option<u64> {
    if let Ok(n) = text.parse::<u64>() {
        return (n <= 24).then_some(n);
    }
    Some(match text.to_ascii_lowercase().as_str() {
        "trace" => 1,
        "debug" => 5,
        "info" => 9,
        "warn" | "warning" => 13,
        "error" => 17,
        "fatal" => 21,
        _ => return None,
    })
}

pub fn parse(p: &Params) -> Result<LogSearch, String> {
    let mut tags = Vec::new();
    for t in p.all("tags") {
        let parsed = if t.trim_start().starts_with('{') {
            tagquery::parse_json(t)
        } else {
            tagquery::parse(t)
        };
        tags.extend(parsed.map_err(|e| e.to_string())?);
    }
    let min_severity = match p.get("severity") {
        None => None,
        Some(s) => Some(severity(s).ok_or_else(|| {
            format!("unknown severity {s:?}: use trace, debug, info, warn, error, fatal or 1-24")
        })?),
    };
    let trace_id = match p.get("traceID") {
        None => None,
        Some(t) => {
            Some(model::parse_trace_id(t).ok_or_else(|| format!("malformed trace id {t:?}"))?)
        }
    };
    Ok(LogSearch {
        service: p.get("service").map(str::to_string),
        text: p.get("q").map(str::to_string),
        min_severity,
        trace_id,
        tags,
        start_us: p.u64("start")?,
        end_us: p.u64("end")?,
        limit: p
            .u64("limit")?
            .map_or(100, |n| (n as usize).clamp(1, 10_000)),
    })
}

async fn search(State(s): State<ApiState>, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.as_deref());
    let search = match parse(&p) {
        Ok(s) => s,
        Err(m) => return bad(m),
    };
    match s.store.find_logs(search).await {
        Ok(logs) => {
            let data: Vec<Value> = logs
                .iter()
                .map(|l| {
                    let r = &l.record;
                    let attrs: serde_json::Map<String, Value> = r
                        .attributes
                        .iter()
                        .map(|kv| (kv.key.clone(), kv.value.as_ref().map_or(Value::Null, model::any_to_json)))
                        .collect();
                    let resource: serde_json::Map<String, Value> = l
                        .resource
                        .as_ref()
                        .as_ref()
                        .map(|res| {
                            res.attributes
                                .iter()
                                .map(|kv| (kv.key.clone(), kv.value.as_ref().map_or(Value::Null, model::any_to_json)))
                                .collect()
                        })
                        .unwrap_or_default();
                    json!({
                        "timestamp": r.time_unix_nano / 1000,
                        "observedTimestamp": r.observed_time_unix_nano / 1000,
                        "service": model::service_name(l.resource.as_ref().as_ref()),
                        "severityNumber": r.severity_number,
                        "severityText": r.severity_text,
                        "body": r.body.as_ref().map_or(Value::Null, model::any_to_json),
                        "traceID": if r.trace_id.is_empty() { Value::Null } else { Value::String(hex::encode(&r.trace_id)) },
                        "spanID": if r.span_id.is_empty() { Value::Null } else { Value::String(hex::encode(&r.span_id)) },
                        "attributes": attrs,
                        "resource": resource,
                        "scope": l.scope.as_ref().as_ref().map(|s| json!({"name": s.name, "version": s.version})),
                    })
                })
                .collect();
            let n = data.len();
            Json(json!({"data": data, "total": n, "errors": null})).into_response()
        }
        Err(e) => {
            let status = e.code().http_status();
            if status.is_server_error() {
                tracing::error!(error = %e, "log search failed");
                return (status, Json(json!({"data": null, "total": 0, "errors": [{"code": status.as_u16(), "msg": "internal error"}]}))).into_response();
            }
            bad(e.to_string())
        }
    }
}
