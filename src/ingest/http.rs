//! OTLP/HTTP: `POST /v1/traces`, `/v1/metrics`, `/v1/logs` with protobuf or JSON bodies,
//! optionally gzip-compressed. The body cap applies to the compressed bytes and again to the
//! inflated bytes, checked while inflating (a gzip bomb stops at the cap, in milliseconds).
//! Answers in the request's content type; errors carry a `google.rpc.Status` body.

use std::io::Read;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http_body_util::BodyExt;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{ExportError, Ingest};
use crate::error::ErrorCode;
use crate::telemetry::Transport;

pub const PROTOBUF: &str = "application/x-protobuf";
pub const JSON: &str = "application/json";

/// `google.rpc.Status`, the error body OTLP/HTTP prescribes.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Format {
    Protobuf,
    Json,
}

impl Format {
    fn content_type(self) -> &'static str {
        match self {
            Format::Protobuf => PROTOBUF,
            Format::Json => JSON,
        }
    }
}

pub fn router(ingest: Arc<Ingest>) -> Router {
    Router::new()
        .route("/v1/traces", post(traces))
        .route("/v1/metrics", post(metrics))
        .route("/v1/logs", post(logs))
        .with_state(ingest)
}

async fn traces(State(ingest): State<Arc<Ingest>>, headers: HeaderMap, body: Body) -> Response {
    handle::<ExportTraceServiceRequest, _, _, _>(ingest, headers, body, |i, r| async move {
        i.export_traces(r, Transport::Http).await
    })
    .await
}

pub(super) async fn metrics(
    State(ingest): State<Arc<Ingest>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle::<ExportMetricsServiceRequest, _, _, _>(ingest, headers, body, |i, r| async move {
        i.export_metrics(r, Transport::Http).await
    })
    .await
}

async fn logs(State(ingest): State<Arc<Ingest>>, headers: HeaderMap, body: Body) -> Response {
    handle::<ExportLogsServiceRequest, _, _, _>(ingest, headers, body, |i, r| async move {
        i.export_logs(r, Transport::Http).await
    })
    .await
}

async fn handle<Req, Resp, F, Fut>(
    ingest: Arc<Ingest>,
    headers: HeaderMap,
    body: Body,
    export: F,
) -> Response
where
    Req: Message + Default + DeserializeOwned + Send + 'static,
    Resp: Message + Serialize,
    F: FnOnce(Arc<Ingest>, Req) -> Fut,
    Fut: std::future::Future<Output = Result<Resp, ExportError>>,
{
    if let Err(e) = ingest.authorize(&headers) {
        return error_response(
            content_format(&headers).unwrap_or(Format::Json),
            e.code,
            e.message,
        );
    }
    let format = match content_format(&headers) {
        Some(f) => f,
        None => {
            let got = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none");
            return refuse(
                &ingest,
                Format::Json,
                ErrorCode::UnsupportedMediaType,
                format!(
                    "unsupported content type {got:?}: use application/x-protobuf or application/json"
                ),
            );
        }
    };
    let gzip = match headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("") | Some("identity") => false,
        Some("gzip") | Some("x-gzip") => true,
        Some(other) => {
            return refuse(
                &ingest,
                format,
                ErrorCode::UnsupportedMediaType,
                format!("unsupported content encoding {other:?}: use gzip or none"),
            );
        }
    };
    let cap = ingest.max_http_body_bytes;
    let raw = match read_limited(body, cap).await {
        Ok(b) => b,
        Err(e) => return refuse(&ingest, format, e.code, e.message),
    };
    let decoded = tokio::task::spawn_blocking(move || -> Result<Req, ExportError> {
        let bytes = if gzip {
            inflate(&raw, cap)?
        } else {
            raw.to_vec()
        };
        decode(format, &bytes)
    })
    .await;
    let req = match decoded {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return refuse(&ingest, format, e.code, e.message),
        Err(e) => {
            tracing::error!(error = %e, "decode task failed");
            return refuse(
                &ingest,
                format,
                ErrorCode::Internal,
                "internal error".into(),
            );
        }
    };
    match export(ingest.clone(), req).await {
        Ok(resp) => encode(format, StatusCode::OK, &resp),
        Err(e) => error_response(format, e.code, e.message),
    }
}

fn content_format(headers: &HeaderMap) -> Option<Format> {
    let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = ct.split(';').next()?.trim().to_ascii_lowercase();
    match essence.as_str() {
        PROTOBUF | "application/protobuf" => Some(Format::Protobuf),
        JSON => Some(Format::Json),
        _ => None,
    }
}

/// Reads at most `cap` bytes of body. A larger body is a 413; its remainder is read and
/// discarded (up to 4 x `cap`) so the client, still sending, receives the 413 instead of a reset
/// connection. Memory stays at `cap`.
pub async fn read_limited(body: Body, cap: usize) -> Result<Bytes, ExportError> {
    let mut body = body;
    let mut buf = bytes::BytesMut::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ExportError::new(
                ErrorCode::BadRequest,
                format!("cannot read request body: {e}"),
            )
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total = total.saturating_add(data.len());
        if total <= cap {
            buf.extend_from_slice(&data);
        } else {
            buf = bytes::BytesMut::new();
            if total > cap.saturating_mul(4) {
                break;
            }
        }
    }
    if total > cap {
        return Err(ExportError::new(ErrorCode::PayloadTooLarge, too_large(cap)));
    }
    Ok(buf.freeze())
}

fn too_large(cap: usize) -> String {
    format!("request body is larger than the {cap}-byte limit (ingest.max_http_body_size)")
}

/// Inflates gzip, stopping as soon as the output would pass `cap`.
pub fn inflate(compressed: &[u8], cap: usize) -> Result<Vec<u8>, ExportError> {
    let mut out = Vec::with_capacity((compressed.len() * 4).min(cap));
    flate2::read::MultiGzDecoder::new(compressed)
        .take(cap as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| ExportError::new(ErrorCode::BadRequest, format!("invalid gzip body: {e}")))?;
    if out.len() > cap {
        return Err(ExportError::new(
            ErrorCode::PayloadTooLarge,
            format!("decompressed {}", too_large(cap)),
        ));
    }
    Ok(out)
}

/// The whole untrusted-bytes path of an OTLP/HTTP body: inflate (capped) if gzip, then decode.
/// Never panics; every failure is a 400 or 413 [`ExportError`] (the fuzz targets call this).
pub fn decode_body<Req: Message + Default + DeserializeOwned>(
    format: Format,
    gzip: bool,
    body: &[u8],
    cap: usize,
) -> Result<Req, ExportError> {
    if body.len() > cap {
        return Err(ExportError::new(ErrorCode::PayloadTooLarge, too_large(cap)));
    }
    if gzip {
        decode(format, &inflate(body, cap)?)
    } else {
        decode(format, body)
    }
}

fn decode<Req: Message + Default + DeserializeOwned>(
    format: Format,
    bytes: &[u8],
) -> Result<Req, ExportError> {
    match format {
        Format::Protobuf => Req::decode(bytes).map_err(|e| {
            ExportError::new(ErrorCode::BadRequest, format!("invalid OTLP protobuf: {e}"))
        }),
        Format::Json => decode_json(bytes),
    }
}

/// OTLP/JSON: hex ids, enums as integers, 64-bit integers as strings or numbers, unknown fields
/// ignored (opentelemetry-proto's serde rules). serde_json's recursion limit (128) bounds nesting.
pub fn decode_json<Req: DeserializeOwned>(bytes: &[u8]) -> Result<Req, ExportError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ExportError::new(ErrorCode::BadRequest, format!("invalid OTLP JSON: {e}")))
}

fn encode<M: Message + Serialize>(format: Format, status: StatusCode, msg: &M) -> Response {
    let body = match format {
        Format::Protobuf => msg.encode_to_vec(),
        // Absent fields are left out (`{}` for full success), as protobuf's JSON mapping prints.
        Format::Json => match serde_json::to_value(msg) {
            Ok(serde_json::Value::Object(mut m)) => {
                m.retain(|_, v| !v.is_null());
                serde_json::to_vec(&m).unwrap_or_else(|_| b"{}".to_vec())
            }
            _ => b"{}".to_vec(),
        },
    };
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        )],
        body,
    )
        .into_response()
}

fn refuse(ingest: &Ingest, format: Format, code: ErrorCode, message: String) -> Response {
    ingest
        .metrics
        .refused_requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    error_response(format, code, message)
}

fn error_response(format: Format, code: ErrorCode, message: String) -> Response {
    if code == ErrorCode::Internal {
        tracing::error!(%message, "otlp/http export failed");
    }
    let status = RpcStatus {
        code: code.grpc_code() as i32,
        message: if code == ErrorCode::Internal {
            "internal error".into()
        } else {
            message
        },
    };
    let mut resp = encode(format, code.http_status(), &status);
    if code.retryable() {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn inflate_stops_at_the_cap() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&vec![0u8; 8 << 20]).unwrap();
        let bomb = enc.finish().unwrap();
        let err = inflate(&bomb, 1 << 20).unwrap_err();
        assert_eq!(err.code, ErrorCode::PayloadTooLarge);
        assert_eq!(inflate(&bomb, 8 << 20).unwrap().len(), 8 << 20);
        assert_eq!(
            inflate(b"not gzip", 100).unwrap_err().code,
            ErrorCode::BadRequest
        );
    }
}
