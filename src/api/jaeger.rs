//! The Jaeger query API, as Jaeger's query service answers the Jaeger UI and Grafana's Jaeger data
//! source: `/api/services`, `/api/services/{service}/operations`, `/api/operations`, `/api/traces`,
//! `/api/traces/{id}`, `/api/dependencies`. OTLP is mapped the way Jaeger maps it: span kind ->
//! `span.kind`, error status -> `error=true` with `otel.status_code`/`otel.status_description`,
//! events -> logs, parent -> `CHILD_OF`, links -> `FOLLOWS_FROM`, resource -> process.
//! Trace ids are printed as 32 hex digits; ids without leading zeros are accepted too.

use std::collections::BTreeMap;

use axum::Json;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use serde_json::Value;

use super::ApiState;
use super::edge::ApiError;
use crate::base::clock::now_us;
use crate::base::params::Params;
use crate::traces::StoredSpan;
use crate::traces::model::{self, TagValue};
use crate::traces::params::trace_search;

const DEFAULT_DEPENDENCY_LOOKBACK_MS: u64 = 24 * 3600 * 1000;

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/services", get(services))
        .route(
            "/api/services/{service}/operations",
            get(service_operations),
        )
        .route("/api/operations", get(operations))
        .route("/api/traces", get(find_traces))
        .route("/api/traces/{id}", get(get_trace))
        .route("/api/dependencies", get(dependencies))
        .with_state(state)
}

#[derive(Serialize)]
struct Envelope<T> {
    data: T,
    total: usize,
    limit: usize,
    offset: usize,
    /// Always `null` on success; failures are written by [`super::edge::ApiError::jaeger`].
    errors: Option<Value>,
}

/// Jaeger's query service fills `total` for services and operations only; traces and
/// dependencies answer 0 there, and so does Sightline.
fn ok<T: Serialize>(data: T, total: usize) -> Response {
    Json(Envelope {
        data,
        total,
        limit: 0,
        offset: 0,
        errors: None,
    })
    .into_response()
}

async fn services(State(s): State<ApiState>) -> Response {
    match s.store.services().await {
        Ok(v) => {
            let n = v.len();
            ok(v, n)
        }
        Err(e) => ApiError::from(e).jaeger(),
    }
}

async fn service_operations(State(s): State<ApiState>, Path(service): Path<String>) -> Response {
    match s.store.operations(service, None).await {
        Ok(ops) => {
            let mut names: Vec<String> = ops.into_iter().map(|(n, _)| n).collect();
            names.dedup();
            let n = names.len();
            ok(names, n)
        }
        Err(e) => ApiError::from(e).jaeger(),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Operation {
    name: String,
    span_kind: &'static str,
}

async fn operations(State(s): State<ApiState>, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.as_deref());
    let Some(service) = p.get("service") else {
        return ApiError::bad_data("parameter 'service' is required").jaeger();
    };
    let kind = match p.get("spanKind") {
        None => None,
        Some(k) => match model::kind_from_name(k) {
            Some(k) => Some(k),
            None => {
                return ApiError::bad_data(format!(
                    "unsupported spanKind {k:?}: use server, client, producer, consumer or internal"
                ))
                .jaeger();
            }
        },
    };
    match s.store.operations(service.to_string(), kind).await {
        Ok(ops) => {
            let data: Vec<Operation> = ops
                .into_iter()
                .map(|(name, kind)| Operation {
                    name,
                    span_kind: model::kind_name(kind).unwrap_or(""),
                })
                .collect();
            let n = data.len();
            ok(data, n)
        }
        Err(e) => ApiError::from(e).jaeger(),
    }
}

async fn get_trace(State(s): State<ApiState>, Path(id): Path<String>) -> Response {
    let Some(tid) = model::parse_trace_id(&id) else {
        return ApiError::bad_data(format!(
            "malformed trace id {id:?}: expected up to 32 hex digits"
        ))
        .jaeger();
    };
    match s.store.trace(tid).await {
        Ok(spans) if spans.is_empty() => ApiError::NotFound("trace not found".into()).jaeger(),
        Ok(spans) => ok(vec![to_jaeger(&tid, &spans)], 0),
        Err(e) => ApiError::from(e).jaeger(),
    }
}

async fn find_traces(State(s): State<ApiState>, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.as_deref());
    let ids: Vec<&str> = p.all("traceID").collect();
    if !ids.is_empty() {
        let mut out = Vec::new();
        for id in ids {
            let Some(tid) = model::parse_trace_id(id) else {
                return ApiError::bad_data(format!("malformed trace id {id:?}")).jaeger();
            };
            match s.store.trace(tid).await {
                Ok(spans) if !spans.is_empty() => out.push(to_jaeger(&tid, &spans)),
                Ok(_) => {}
                Err(e) => return ApiError::from(e).jaeger(),
            }
        }
        return ok(out, 0);
    }
    let search = match trace_search(&p) {
        Ok(s) => s,
        Err(msg) => return ApiError::bad_data(msg).jaeger(),
    };
    if search.service.is_none() {
        return ApiError::bad_data("parameter 'service' is required").jaeger();
    }
    match s.store.find_traces(search).await {
        Ok(traces) => {
            let data: Vec<JTrace> = traces
                .iter()
                .filter_map(|spans| {
                    let tid = model::trace_id(&spans.first()?.span.trace_id)?;
                    Some(to_jaeger(&tid, spans))
                })
                .collect();
            ok(data, 0)
        }
        Err(e) => ApiError::from(e).jaeger(),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Dependency {
    parent: String,
    child: String,
    call_count: u64,
}

async fn dependencies(State(s): State<ApiState>, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.as_deref());
    let (end_ms, lookback_ms) = match (p.u64("endTs"), p.u64("lookback")) {
        (Ok(e), Ok(l)) => (
            e.unwrap_or(now_us() / 1000),
            l.unwrap_or(DEFAULT_DEPENDENCY_LOOKBACK_MS),
        ),
        (Err(m), _) | (_, Err(m)) => return ApiError::bad_data(m).jaeger(),
    };
    let end_ns = end_ms.saturating_mul(1_000_000);
    let start_ns = end_ms.saturating_sub(lookback_ms).saturating_mul(1_000_000);
    match s.store.dependencies(start_ns, end_ns).await {
        Ok(edges) => {
            let data: Vec<Dependency> = edges
                .into_iter()
                .map(|(parent, child, call_count)| Dependency {
                    parent,
                    child,
                    call_count,
                })
                .collect();
            ok(data, 0)
        }
        Err(e) => ApiError::from(e).jaeger(),
    }
}

// ---- OTLP -> Jaeger model ----

#[derive(Serialize, Debug)]
pub struct JTrace {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    pub spans: Vec<JSpan>,
    pub processes: BTreeMap<String, JProcess>,
    pub warnings: Option<Vec<String>>,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct JSpan {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    #[serde(rename = "spanID")]
    pub span_id: String,
    pub operation_name: String,
    pub references: Vec<JRef>,
    pub start_time: u64,
    pub duration: u64,
    pub tags: Vec<JTag>,
    pub logs: Vec<JLog>,
    #[serde(rename = "processID")]
    pub process_id: String,
    pub warnings: Option<Vec<String>>,
    pub flags: u32,
}

#[derive(Serialize, Debug)]
pub struct JRef {
    #[serde(rename = "refType")]
    pub ref_type: &'static str,
    #[serde(rename = "traceID")]
    pub trace_id: String,
    #[serde(rename = "spanID")]
    pub span_id: String,
}

#[derive(Serialize, Debug, PartialEq)]
pub struct JTag {
    pub key: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub value: Value,
}

#[derive(Serialize, Debug)]
pub struct JLog {
    pub timestamp: u64,
    pub fields: Vec<JTag>,
}

#[derive(Serialize, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JProcess {
    pub service_name: String,
    pub tags: Vec<JTag>,
}

fn jtag(key: String, v: TagValue) -> JTag {
    let kind = v.jaeger_type();
    let value = match v {
        TagValue::Str(s) => Value::String(s),
        TagValue::Bool(b) => Value::Bool(b),
        TagValue::I64(i) => Value::from(i),
        TagValue::F64(f) => serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(f.to_string())),
        TagValue::Bytes(b) => Value::String(base64_encode(&b)),
    };
    JTag { key, kind, value }
}

fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Converts the stored spans of one trace to Jaeger's JSON model.
pub fn to_jaeger(trace: &[u8; 16], spans: &[StoredSpan]) -> JTrace {
    let mut processes: BTreeMap<String, JProcess> = BTreeMap::new();
    let mut process_ids: Vec<(
        *const Option<opentelemetry_proto::tonic::resource::v1::Resource>,
        String,
    )> = Vec::new();
    let mut out = Vec::with_capacity(spans.len());
    for s in spans {
        let ptr = std::sync::Arc::as_ptr(&s.resource);
        let pid = match process_ids.iter().find(|(p, _)| *p == ptr) {
            Some((_, id)) => id.clone(),
            None => {
                let process = JProcess {
                    service_name: model::service_name(s.resource.as_ref().as_ref()),
                    tags: model::process_tags(s.resource.as_ref().as_ref())
                        .into_iter()
                        .map(|(k, v)| jtag(k, v))
                        .collect(),
                };
                // Equal resources from different chunks share one process id.
                let id = match processes.iter().find(|(_, p)| **p == process) {
                    Some((id, _)) => id.clone(),
                    None => {
                        let id = format!("p{}", processes.len() + 1);
                        processes.insert(id.clone(), process);
                        id
                    }
                };
                process_ids.push((ptr, id.clone()));
                id
            }
        };
        let span = &s.span;
        let trace_hex = hex::encode(trace);
        let mut references = Vec::new();
        if !span.parent_span_id.is_empty() {
            references.push(JRef {
                ref_type: "CHILD_OF",
                trace_id: trace_hex.clone(),
                span_id: hex::encode(&span.parent_span_id),
            });
        }
        for link in &span.links {
            references.push(JRef {
                ref_type: "FOLLOWS_FROM",
                trace_id: hex::encode(&link.trace_id),
                span_id: hex::encode(&link.span_id),
            });
        }
        let logs = span
            .events
            .iter()
            .map(|ev| {
                let mut fields = vec![JTag {
                    key: "event".into(),
                    kind: "string",
                    value: Value::String(ev.name.clone()),
                }];
                fields
                    .extend(model::attributes(&ev.attributes).map(|(k, v)| jtag(k.to_string(), v)));
                JLog {
                    timestamp: ev.time_unix_nano / 1000,
                    fields,
                }
            })
            .collect();
        out.push(JSpan {
            trace_id: trace_hex,
            span_id: hex::encode(&span.span_id),
            operation_name: span.name.clone(),
            references,
            start_time: span.start_time_unix_nano / 1000,
            duration: span
                .end_time_unix_nano
                .saturating_sub(span.start_time_unix_nano)
                / 1000,
            tags: model::span_tags(s.scope.as_ref().as_ref(), span)
                .into_iter()
                .map(|(k, v)| jtag(k, v))
                .collect(),
            logs,
            process_id: pid,
            warnings: None,
            flags: span.flags & 0xff,
        });
    }
    JTrace {
        trace_id: hex::encode(trace),
        spans: out,
        processes,
        warnings: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, want) in cases {
            assert_eq!(base64_encode(input.as_bytes()), want);
        }
    }

    #[test]
    fn search_params() {
        let p = Params::parse(Some(
            "service=fe&operation=GET%20%2F&tags=%7B%22error%22%3A%22true%22%7D&minDuration=1.5ms&maxDuration=2s&limit=5&start=10&end=20",
        ));
        let s = trace_search(&p).unwrap();
        assert_eq!(s.service.as_deref(), Some("fe"));
        assert_eq!(s.operation.as_deref(), Some("GET /"));
        assert_eq!(s.tags.len(), 1);
        assert_eq!(s.min_duration_ns, Some(1_500_000));
        assert_eq!(s.max_duration_ns, Some(2_000_000_000));
        assert_eq!(s.limit, 5);
        assert_eq!((s.start_us, s.end_us), (Some(10), Some(20)));
        let bad = [
            "minDuration=fast",
            "limit=-1",
            "start=20&end=10",
            "minDuration=2s&maxDuration=1s",
            "tags=%7Bbroken",
        ];
        for q in bad {
            assert!(trace_search(&Params::parse(Some(q))).is_err(), "{q}");
        }
    }
}
