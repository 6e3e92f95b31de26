//! Log search over HTTP: `GET /api/logs` with `service`, `q` (full text over bodies: words,
//! "phrases", AND/OR), `severity` (minimum, a name or number), `traceID`, `tags` (the tag query
//! language of `traces::tagquery`), `start`/`end` (µs) and `limit`. Newest first.

use axum::Json;
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::ApiState;
use super::edge::ApiError;
use crate::base::params::Params;
use crate::traces::model;
use crate::traces::params::log_search;

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/logs", get(search))
        .with_state(state)
}

async fn search(State(s): State<ApiState>, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.as_deref());
    let search = match log_search(&p) {
        Ok(s) => s,
        Err(m) => return ApiError::BadData(m).jaeger(),
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
        Err(e) => ApiError::from(e).jaeger(),
    }
}
