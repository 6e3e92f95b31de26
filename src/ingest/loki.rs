//! Loki's push API in: `POST /loki/api/v1/push` with a snappy-compressed
//! protobuf `logproto.PushRequest` (streams, entries, structured metadata) or JSON
//! (`{"streams":[{"stream":{...},"values":[["<ns>","line",{metadata}]]}]}`, or the legacy
//! `{"streams":[{"labels":"{...}","entries":[{"ts":"<RFC 3339>","line":"..."}]}]}`; gzip allowed), as
//! Promtail, Grafana Alloy, Fluent Bit and the Python Loki handlers send it. Each stream becomes
//! one OTLP resource (its labels as resource attributes; `service_name`, else the first of Loki's
//! `discover_service_name` labels, as `service.name`), each entry one log record (structured metadata as attributes; `trace_id` /
//! `span_id` metadata as the record's ids; `level` / `detected_level` as severity), stored
//! through the same path as OTLP logs, so they are durable when the answer (204) is sent and
//! searchable as any log. Loki's validation answers, per stream, without failing the rest: a bad
//! label set, a line over 256 KiB, an entry older than a week or more than 10 minutes in the
//! future are answered 400 with Loki's wording after the rest is stored. Ingest keys apply.
//!
//! Loki's query API is `api::loki`, LogQL `logql`, file collection `logfiles`.

use crate::traces::model::string_kv as kv;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;

use super::Ingest;
use super::remote_write::{snappy_capped, text};
use crate::error::{ErrorCode, ExportError};
use crate::telemetry::Transport;

/// Loki's default `max_line_size`.
pub const MAX_LINE_BYTES: usize = 256 << 10;
/// Loki's default `reject_old_samples_max_age`.
const MAX_AGE_NS: i64 = 7 * 86_400 * 1_000_000_000;
/// Loki's default `creation_grace_period`.
const GRACE_NS: i64 = 10 * 60 * 1_000_000_000;

#[derive(Clone, PartialEq, prost::Message)]
pub struct PushRequest {
    #[prost(message, repeated, tag = "1")]
    pub streams: Vec<StreamAdapter>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamAdapter {
    #[prost(string, tag = "1")]
    pub labels: String,
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<EntryAdapter>,
    #[prost(uint64, tag = "3")]
    pub hash: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct EntryAdapter {
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<Timestamp>,
    #[prost(string, tag = "2")]
    pub line: String,
    #[prost(message, repeated, tag = "3")]
    pub structured_metadata: Vec<LabelPairAdapter>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelPairAdapter {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// One entry, whichever encoding it came in.
pub struct Entry {
    pub ts_ns: i64,
    pub line: String,
    pub metadata: Vec<(String, String)>,
}

/// One stream: its label set as written and its entries.
pub struct Stream {
    pub labels: String,
    pub parsed: Result<Vec<(String, String)>, String>,
    pub entries: Vec<Entry>,
}

/// Parses a stream's label set as Loki writes it: `{name="value", ...}` with Go string escapes.
pub fn parse_labels(s: &str) -> Result<Vec<(String, String)>, String> {
    let t = s.trim();
    let inner = t
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .ok_or_else(|| "expected {name=\"value\", ...}".to_string())?;
    let mut out: Vec<(String, String)> = Vec::new();
    let mut rest = inner.trim_start();
    while !rest.is_empty() {
        let name_end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let name = &rest[..name_end];
        if !crate::tsdb::labels::valid_label_name(name) {
            return Err(format!("invalid label name {name:?}"));
        }
        rest = rest[name_end..].trim_start();
        rest = rest
            .strip_prefix('=')
            .ok_or_else(|| format!("expected = after {name}"))?
            .trim_start();
        rest = rest
            .strip_prefix('"')
            .ok_or_else(|| format!("expected a quoted value for {name}"))?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            let Some((i, c)) = chars.next() else {
                return Err(format!("unterminated value for {name}"));
            };
            match c {
                '"' => break i,
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, 't')) => value.push('\t'),
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    _ => return Err(format!("bad escape in the value of {name}")),
                },
                c => value.push(c),
            }
        };
        rest = rest[end + 1..].trim_start();
        if out.iter().any(|(n, _)| n == name) {
            return Err(format!("duplicate label name {name:?}"));
        }
        out.push((name.to_string(), value));
        if let Some(r) = rest.strip_prefix(',') {
            rest = r.trim_start();
        } else if !rest.is_empty() {
            return Err(format!(
                "unexpected {:?}",
                rest.chars().next().unwrap_or(' ')
            ));
        }
    }
    out.retain(|(_, v)| !v.is_empty());
    if out.is_empty() {
        return Err("at least one label pair is required per stream".into());
    }
    Ok(out)
}

/// A protobuf push as streams.
pub fn from_proto(req: PushRequest) -> Vec<Stream> {
    req.streams
        .into_iter()
        .map(|s| Stream {
            parsed: parse_labels(&s.labels),
            labels: s.labels,
            entries: s
                .entries
                .into_iter()
                .map(|e| Entry {
                    ts_ns: e
                        .timestamp
                        .map(|t| {
                            t.seconds
                                .saturating_mul(1_000_000_000)
                                .saturating_add(i64::from(t.nanos))
                        })
                        .unwrap_or(0),
                    line: e.line,
                    metadata: e
                        .structured_metadata
                        .into_iter()
                        .map(|p| (p.name, p.value))
                        .collect(),
                })
                .collect(),
        })
        .collect()
}

/// A JSON push as streams; a malformed body is one error for the whole request, as in Loki.
pub fn from_json(body: &[u8]) -> Result<Vec<Stream>, String> {
    #[derive(serde::Deserialize)]
    struct Body {
        streams: Vec<JsonStream>,
    }
    struct JsonStreamV1 {
        stream: std::collections::BTreeMap<String, String>,
        values: Vec<Vec<serde_json::Value>>,
    }
    /// Loki's v1 shape, or the legacy one `/api/prom/push` took (`labels` as text, `entries`
    /// with RFC 3339 `ts`), which `python-logging-loki`'s default emitter still sends.
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum JsonStream {
        V1 {
            stream: std::collections::BTreeMap<String, String>,
            values: Vec<Vec<serde_json::Value>>,
        },
        Legacy {
            labels: String,
            entries: Vec<LegacyEntry>,
        },
    }
    #[derive(serde::Deserialize)]
    struct LegacyEntry {
        #[serde(alias = "timestamp")]
        ts: String,
        line: String,
    }
    let b: Body = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for s in b.streams {
        let (stream, values) = match s {
            JsonStream::V1 { stream, values } => (stream, values),
            JsonStream::Legacy { labels, entries } => {
                let mut es = Vec::with_capacity(entries.len());
                for e in entries {
                    let ts_ns = crate::base::clock::parse_rfc3339_ns(&e.ts)
                        .ok_or_else(|| format!("entry timestamp {:?} is not RFC 3339", e.ts))?;
                    es.push(Entry {
                        ts_ns,
                        line: e.line,
                        metadata: Vec::new(),
                    });
                }
                out.push(Stream {
                    parsed: parse_labels(&labels),
                    labels,
                    entries: es,
                });
                continue;
            }
        };
        let s = JsonStreamV1 { stream, values };
        let labels = format!(
            "{{{}}}",
            s.stream
                .iter()
                .map(|(k, v)| format!("{k}={v:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut parsed: Result<Vec<(String, String)>, String> = Ok(Vec::new());
        for k in s.stream.keys() {
            if !crate::tsdb::labels::valid_label_name(k) {
                parsed = Err(format!("invalid label name {k:?}"));
            }
        }
        if parsed.is_ok() {
            let v: Vec<(String, String)> = s
                .stream
                .into_iter()
                .filter(|(_, v)| !v.is_empty())
                .collect();
            parsed = if v.is_empty() {
                Err("at least one label pair is required per stream".into())
            } else {
                Ok(v)
            };
        }
        let mut entries = Vec::new();
        for v in s.values {
            let ts = v
                .first()
                .and_then(|t| t.as_str())
                .and_then(|t| t.parse::<i64>().ok())
                .ok_or("each value must start with a timestamp in nanoseconds as a string")?;
            let line = v
                .get(1)
                .and_then(|l| l.as_str())
                .ok_or("each value must hold the log line as a string")?
                .to_string();
            let metadata = match v.get(2) {
                Some(serde_json::Value::Object(m)) => m
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect(),
                _ => Vec::new(),
            };
            entries.push(Entry {
                ts_ns: ts,
                line,
                metadata,
            });
        }
        out.push(Stream {
            labels,
            parsed,
            entries,
        });
    }
    Ok(out)
}

/// The streams as an OTLP logs request, and Loki's refusals (one line per refused entry or stream).
pub fn to_otlp(streams: Vec<Stream>, now_ns: i64) -> (ExportLogsServiceRequest, Vec<String>, u64) {
    let mut req = ExportLogsServiceRequest::default();
    let mut errors = Vec::new();
    let mut refused = 0u64;
    for s in streams {
        let labels = match s.parsed {
            Ok(l) => l,
            Err(e) => {
                refused += s.entries.len() as u64;
                errors.push(format!("error parsing labels {}: {e}", s.labels));
                continue;
            }
        };
        let get = |k: &str| labels.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let stream_level = get("level").or(get("detected_level")).map(str::to_string);
        let mut records = Vec::with_capacity(s.entries.len());
        for e in s.entries {
            if e.line.len() > MAX_LINE_BYTES {
                refused += 1;
                errors.push(format!(
                    "Max entry size '{MAX_LINE_BYTES}' bytes exceeded for stream '{}' while adding an entry with length '{}' bytes",
                    s.labels,
                    e.line.len()
                ));
                continue;
            }
            if e.ts_ns < now_ns - MAX_AGE_NS {
                refused += 1;
                errors.push(format!(
                    "entry for stream '{}' has timestamp too old: {}, oldest acceptable timestamp is: {}",
                    s.labels,
                    crate::base::clock::go_time_text(e.ts_ns, 'T', "Z"),
                    crate::base::clock::go_time_text(now_ns - MAX_AGE_NS, 'T', "Z")
                ));
                continue;
            }
            if e.ts_ns > now_ns + GRACE_NS {
                refused += 1;
                errors.push(format!(
                    "entry for stream '{}' has timestamp too new: {}",
                    s.labels,
                    crate::base::clock::go_time_text(e.ts_ns, 'T', "Z")
                ));
                continue;
            }
            let mut rec = LogRecord {
                time_unix_nano: e.ts_ns as u64,
                observed_time_unix_nano: now_ns as u64,
                body: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(e.line)),
                }),
                ..Default::default()
            };
            let mut level = stream_level.clone();
            for (k, v) in e.metadata {
                match k.as_str() {
                    "trace_id" | "traceID" | "traceid" => {
                        if let Ok(b) = hex::decode(&v)
                            && b.len() == 16
                        {
                            rec.trace_id = b;
                        }
                    }
                    "span_id" | "spanID" | "spanid" => {
                        if let Ok(b) = hex::decode(&v)
                            && b.len() == 8
                        {
                            rec.span_id = b;
                        }
                    }
                    "level" | "detected_level" => level = Some(v.clone()),
                    _ => {}
                }
                rec.attributes.push(kv(&k, &v));
            }
            if let Some(l) = level {
                let (n, text) = crate::traces::logscan::severity(&l);
                rec.severity_number = n;
                rec.severity_text = text;
            }
            records.push(rec);
        }
        if records.is_empty() {
            continue;
        }
        req.resource_logs
            .push(crate::traces::logscan::stream_resource_logs(
                &labels, records,
            ));
    }
    (req, errors, refused)
}

pub fn router(ingest: Arc<Ingest>) -> Router {
    Router::new()
        .route("/loki/api/v1/push", post(push))
        .route("/api/prom/push", post(push))
        .with_state(ingest)
}

async fn push(
    axum::extract::State(ingest): axum::extract::State<Arc<Ingest>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(e) = ingest.authorize(&headers) {
        return text(StatusCode::UNAUTHORIZED, &e.message);
    }
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/x-protobuf")
        .to_ascii_lowercase();
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let cap = ingest.max_http_body_bytes;
    let raw = match super::http::read_limited(body, cap).await {
        Ok(b) => b,
        Err(e) => return text(e.code.http_status(), &e.message),
    };
    let decoded = tokio::task::spawn_blocking(move || -> Result<Vec<Stream>, ExportError> {
        let bad = |m: String| ExportError::new(ErrorCode::BadRequest, m);
        let plain: Vec<u8> = match encoding.as_str() {
            "gzip" | "x-gzip" => {
                use std::io::Read;
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(&raw[..])
                    .take(cap as u64 + 1)
                    .read_to_end(&mut out)
                    .map_err(|e| bad(format!("gzip: {e}")))?;
                if out.len() > cap {
                    return Err(ExportError::new(
                        ErrorCode::PayloadTooLarge,
                        format!("decompressed body larger than {cap} bytes"),
                    ));
                }
                out
            }
            "snappy" => snappy_capped(&raw, cap)?,
            "" | "identity" => raw.to_vec(),
            other => {
                return Err(ExportError::new(
                    ErrorCode::UnsupportedMediaType,
                    format!("unsupported Content-Encoding {other:?}"),
                ));
            }
        };
        if ct.starts_with("application/json") {
            from_json(&plain).map_err(|e| bad(format!("loghttp push: {e}")))
        } else if ct.starts_with("application/x-protobuf") || ct.is_empty() {
            // Protobuf bodies are snappy-compressed even without a Content-Encoding header.
            let plain = if encoding.is_empty() {
                snappy_capped(&plain, cap)?
            } else {
                plain
            };
            <PushRequest as prost::Message>::decode(plain.as_slice())
                .map(from_proto)
                .map_err(|e| bad(format!("protobuf: {e}")))
        } else {
            Err(ExportError::new(
                ErrorCode::UnsupportedMediaType,
                format!("unsupported Content-Type {ct:?}: use application/x-protobuf or application/json"),
            ))
        }
    })
    .await;
    let streams = match decoded {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return text(e.code.http_status(), &e.message),
        Err(_) => return text(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    };
    let now = crate::base::clock::now_ns() as i64;
    let (req, errors, _refused) = to_otlp(streams, now);
    if !req.resource_logs.is_empty()
        && let Err(e) = ingest.export_logs(req, Transport::Http).await
    {
        if e.code == ErrorCode::Internal {
            tracing::error!(message = %e.message, "loki push failed");
            return text(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        }
        return text(e.code.http_status(), &e.message);
    }
    if errors.is_empty() {
        StatusCode::NO_CONTENT.into_response()
    } else {
        text(StatusCode::BAD_REQUEST, &errors.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_sets_as_loki_reads_them() {
        assert_eq!(
            parse_labels(r#"{job="api", level="info", msg="a \"q\""}"#).unwrap(),
            vec![
                ("job".to_string(), "api".to_string()),
                ("level".to_string(), "info".to_string()),
                ("msg".to_string(), "a \"q\"".to_string())
            ]
        );
        for bad in [
            "job=\"a\"",
            "{}",
            "{1a=\"b\"}",
            "{a=b}",
            "{a=\"b\" c=\"d\"}",
            "{a=\"b\", a=\"c\"}",
        ] {
            assert!(parse_labels(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn streams_become_resources_and_refusals_are_per_entry() {
        let now = 1_800_000_000_000_000_000;
        let streams = from_json(format!(
            r#"{{"streams":[{{"stream":{{"service_name":"api","level":"warn"}},"values":[["{now}","hello",{{"trace_id":"0102030405060708090a0b0c0d0e0f10"}}],["1","ancient"]]}},{{"stream":{{"1bad":"x"}},"values":[["{now}","x"]]}}]}}"#
        ).as_bytes())
        .unwrap();
        let (req, errors, refused) = to_otlp(streams, now);
        assert_eq!(refused, 2);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("timestamp too old"));
        assert!(errors[1].starts_with("error parsing labels"));
        let rl = &req.resource_logs[0];
        let svc = rl
            .resource
            .as_ref()
            .unwrap()
            .attributes
            .iter()
            .find(|a| a.key == "service.name")
            .unwrap();
        assert_eq!(
            format!("{:?}", svc.value),
            format!(
                "{:?}",
                Some(AnyValue {
                    value: Some(any_value::Value::StringValue("api".into()))
                })
            )
        );
        let rec = &rl.scope_logs[0].log_records[0];
        assert_eq!(rec.trace_id.len(), 16);
        assert_eq!(rec.severity_number, 13);
    }
}
