//! What the trace view loads: a compact form of the whole trace for the waterfall (one small
//! array per span, so a 10,000-span trace stays well inside the page budget), and one span's
//! full details when it is clicked.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::UiState;
use crate::traces::model;

fn error(status: StatusCode, msg: &str) -> Response {
    (status, axum::Json(json!({"error": msg}))).into_response()
}

fn kvs(list: &[opentelemetry_proto::tonic::common::v1::KeyValue]) -> Value {
    Value::Array(
        list.iter()
            .map(|kv| {
                json!([
                    kv.key,
                    kv.value
                        .as_ref()
                        .map(model::any_to_text)
                        .unwrap_or_default()
                ])
            })
            .collect(),
    )
}

/// `{traceID, start (µs), services: [..], hosts: [..], spans: [[spanID, parent index or -1,
/// service index, name, start offset µs, duration µs, error 0/1, kind], ...]}`, spans by start.
pub async fn compact(State(st): State<UiState>, Path(id): Path<String>) -> Response {
    let Some(tid) = model::parse_trace_id(&id) else {
        return error(StatusCode::BAD_REQUEST, "malformed trace id");
    };
    let mut spans = match st.store.trace(tid).await {
        Ok(s) if s.is_empty() => return error(StatusCode::NOT_FOUND, "trace not found"),
        Ok(s) => s,
        Err(e) => return error(e.code().http_status(), &e.to_string()),
    };
    spans.sort_by_key(|s| (s.span.start_time_unix_nano, s.span.span_id.clone()));
    // One copy of each span id (a client may resend).
    spans.dedup_by(|a, b| a.span.span_id == b.span.span_id);
    let start = spans
        .iter()
        .map(|s| s.span.start_time_unix_nano)
        .min()
        .unwrap_or(0);
    let index: std::collections::HashMap<&[u8], usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.span.span_id.as_slice(), i))
        .collect();
    let mut services: Vec<String> = Vec::new();
    let mut hosts: Vec<String> = Vec::new();
    let rows: Vec<Value> = spans
        .iter()
        .map(|s| {
            let svc = model::service_name(s.resource.as_ref().as_ref());
            let si = match services.iter().position(|x| *x == svc) {
                Some(i) => i,
                None => {
                    services.push(svc);
                    services.len() - 1
                }
            };
            if let Some(h) = s.resource.as_ref().as_ref().and_then(|r| {
                r.attributes
                    .iter()
                    .find(|kv| kv.key == "host.name")
                    .and_then(|kv| kv.value.as_ref())
                    .map(model::any_to_text)
            }) && !hosts.contains(&h)
            {
                hosts.push(h);
            }
            let parent = index
                .get(s.span.parent_span_id.as_slice())
                .map_or(-1, |i| *i as i64);
            json!([
                hex::encode(&s.span.span_id),
                parent,
                si,
                s.span.name,
                (s.span.start_time_unix_nano - start) / 1000,
                s.span
                    .end_time_unix_nano
                    .saturating_sub(s.span.start_time_unix_nano)
                    / 1000,
                u8::from(model::is_error(&s.span)),
                model::kind_name(s.span.kind).unwrap_or("unspecified"),
            ])
        })
        .collect();
    axum::Json(json!({
        "traceID": hex::encode(tid),
        "start": start / 1000,
        "services": services,
        "hosts": hosts,
        "spans": rows,
    }))
    .into_response()
}

/// One span's attributes, events, links, resource, scope and status.
pub async fn span(State(st): State<UiState>, Path((id, sid)): Path<(String, String)>) -> Response {
    let (Some(tid), Ok(sid)) = (model::parse_trace_id(&id), hex::decode(&sid)) else {
        return error(StatusCode::BAD_REQUEST, "malformed trace or span id");
    };
    let spans = match st.store.trace(tid).await {
        Ok(s) => s,
        Err(e) => return error(e.code().http_status(), &e.to_string()),
    };
    let Some(s) = spans.iter().find(|s| s.span.span_id == sid) else {
        return error(StatusCode::NOT_FOUND, "span not found");
    };
    let sp = &s.span;
    let status = sp.status.as_ref();
    axum::Json(json!({
        "spanID": hex::encode(&sp.span_id),
        "parentSpanID": hex::encode(&sp.parent_span_id),
        "name": sp.name,
        "service": model::service_name(s.resource.as_ref().as_ref()),
        "kind": model::kind_name(sp.kind).unwrap_or("unspecified"),
        "start": sp.start_time_unix_nano / 1000,
        "duration": sp.end_time_unix_nano.saturating_sub(sp.start_time_unix_nano) / 1000,
        "status": {
            "code": match status.map_or(0, |s| s.code) { 1 => "ok", 2 => "error", _ => "unset" },
            "message": status.map(|s| s.message.clone()).unwrap_or_default(),
        },
        "attributes": kvs(&sp.attributes),
        "events": sp.events.iter().map(|e| json!({
            "offset": e.time_unix_nano.saturating_sub(sp.start_time_unix_nano) / 1000,
            "name": e.name,
            "attributes": kvs(&e.attributes),
        })).collect::<Vec<_>>(),
        "links": sp.links.iter().map(|l| json!({
            "traceID": hex::encode(&l.trace_id),
            "spanID": hex::encode(&l.span_id),
            "attributes": kvs(&l.attributes),
        })).collect::<Vec<_>>(),
        "resource": s.resource.as_ref().as_ref().map_or(json!([]), |r| kvs(&r.attributes)),
        "scope": s.scope.as_ref().as_ref().map(|sc| json!({"name": sc.name, "version": sc.version})),
    }))
    .into_response()
}
