//! Stored log records as Loki sees them: each record's stream labels and structured metadata,
//! and the [`LogSource`] that LogQL reads through.
//!
//! Stream labels: resource attributes whose keys have no dot (Loki pushes store their labels
//! that way) and the resource attributes Loki 3 indexes by default for OTLP (`service.name` ->
//! `service_name`, `k8s.pod.name` -> `k8s_pod_name`, ...). Structured metadata: the other
//! resource attributes and the record's attributes (dots and other characters that cannot be in
//! a label name become `_`), `trace_id`, `span_id`, `severity_text`, `severity_number`, and
//! `detected_level` where the stream has no `level` label, as Loki 3 stores OTLP logs.

use std::collections::HashMap;

use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::chunk;
use super::model;
use crate::logql::{Entry, Labels, LogSource, Matcher};

/// Resource attributes Loki 3 turns into stream labels for OTLP logs
/// (`distributor.otlp_config.default_resource_attributes_as_index_labels`).
pub const OTLP_INDEX_LABELS: &[&str] = &[
    "cloud.availability_zone",
    "cloud.region",
    "container.name",
    "deployment.environment",
    "deployment.environment.name",
    "k8s.cluster.name",
    "k8s.container.name",
    "k8s.cronjob.name",
    "k8s.daemonset.name",
    "k8s.deployment.name",
    "k8s.job.name",
    "k8s.namespace.name",
    "k8s.pod.name",
    "k8s.replicaset.name",
    "k8s.statefulset.name",
    "service.instance.id",
    "service.name",
    "service.namespace",
];

/// Labels Loki 3 takes `service_name` from, in order, when a stream has none
/// (`limits_config.discover_service_name`'s default).
pub const DISCOVER_SERVICE_NAME: &[&str] = &[
    "service",
    "app",
    "application",
    "app_name",
    "name",
    "app_kubernetes_io_name",
    "container",
    "container_name",
    "k8s_container_name",
    "component",
    "workload",
    "job",
    "k8s_job_name",
];

/// OTLP severity numbers for Loki's level names.
pub fn severity(level: &str) -> (i32, String) {
    let n = match level.to_ascii_lowercase().as_str() {
        "trace" => 1,
        "debug" | "dbug" => 5,
        "info" | "information" | "informational" => 9,
        "warn" | "warning" => 13,
        "error" | "err" | "eror" => 17,
        "critical" | "fatal" | "crit" | "emerg" | "alert" => 21,
        _ => 0,
    };
    (n, level.to_string())
}

/// An OTLP resource for a Loki-style stream: its labels as attributes, and `service.name` from
/// `service_name`, else the first of [`DISCOVER_SERVICE_NAME`], else `unknown_service`, as Loki
/// 3 discovers it. Loki pushes and collected files both store their lines this way.
pub fn stream_resource_logs(labels: &[(String, String)], records: Vec<LogRecord>) -> ResourceLogs {
    let get = |k: &str| labels.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let service = get("service_name")
        .or_else(|| DISCOVER_SERVICE_NAME.iter().find_map(|k| get(k)))
        .unwrap_or("unknown_service");
    let mut attributes: Vec<_> = labels.iter().map(|(k, v)| model::string_kv(k, v)).collect();
    attributes.push(model::string_kv("service.name", service));
    ResourceLogs {
        resource: Some(Resource {
            attributes,
            ..Default::default()
        }),
        scope_logs: vec![ScopeLogs {
            log_records: records,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A resource's stream labels (sorted) and the attributes left for structured metadata.
pub fn stream_of(resource: Option<&Resource>) -> (Labels, Labels) {
    let mut labels: Labels = Vec::new();
    let mut meta: Labels = Vec::new();
    if let Some(r) = resource {
        for kv in &r.attributes {
            let Some(v) = kv.value.as_ref() else { continue };
            let text = model::any_to_text(v);
            if text.is_empty() {
                continue;
            }
            let name = crate::logql::pipeline::sanitize(&kv.key);
            if name.is_empty() {
                continue;
            }
            if !kv.key.contains('.') || OTLP_INDEX_LABELS.contains(&kv.key.as_str()) {
                labels.push((name, text));
            } else {
                meta.push((name, text));
            }
        }
    }
    labels.sort();
    labels.dedup_by(|a, b| a.0 == b.0);
    if labels.is_empty() {
        labels.push(("service_name".into(), "unknown_service".into()));
    }
    (labels, meta)
}

fn detected_level(rec: &LogRecord) -> Option<&'static str> {
    let by_text = match rec.severity_text.to_ascii_lowercase().as_str() {
        "trace" => Some("trace"),
        "debug" | "dbug" => Some("debug"),
        "info" | "information" | "informational" | "notice" => Some("info"),
        "warn" | "warning" => Some("warn"),
        "error" | "err" | "eror" => Some("error"),
        "critical" | "crit" | "fatal" | "emerg" | "alert" | "panic" => Some("critical"),
        _ => None,
    };
    by_text.or(match rec.severity_number {
        1..=4 => Some("trace"),
        5..=8 => Some("debug"),
        9..=12 => Some("info"),
        13..=16 => Some("warn"),
        17..=20 => Some("error"),
        21..=24 => Some("critical"),
        _ => None,
    })
}

/// A record's structured metadata.
pub fn metadata_of(rec: &LogRecord, resource_meta: &Labels, stream: &Labels) -> Labels {
    let mut out: Labels = resource_meta.clone();
    for kv in &rec.attributes {
        let Some(v) = kv.value.as_ref() else { continue };
        let name = crate::logql::pipeline::sanitize(&kv.key);
        if name.is_empty() {
            continue;
        }
        out.push((name, model::any_to_text(v)));
    }
    if !rec.trace_id.is_empty() && !out.iter().any(|(k, _)| k == "trace_id") {
        out.push(("trace_id".into(), hex::encode(&rec.trace_id)));
    }
    if !rec.span_id.is_empty() && !out.iter().any(|(k, _)| k == "span_id") {
        out.push(("span_id".into(), hex::encode(&rec.span_id)));
    }
    let has = |out: &Labels, k: &str| {
        out.iter().any(|(n, _)| n == k) || stream.iter().any(|(n, _)| n == k)
    };
    if !rec.severity_text.is_empty() && !has(&out, "severity_text") && !has(&out, "level") {
        out.push(("severity_text".into(), rec.severity_text.clone()));
    }
    if rec.severity_number != 0 && !has(&out, "level") {
        out.push(("severity_number".into(), rec.severity_number.to_string()));
    }
    if !has(&out, "level")
        && !has(&out, "detected_level")
        && let Some(l) = detected_level(rec)
    {
        out.push(("detected_level".into(), l.into()));
    }
    out
}

/// The record's line: its body as text.
pub fn line_of(rec: &LogRecord) -> String {
    rec.body
        .as_ref()
        .map(model::any_to_text)
        .unwrap_or_default()
}

/// Reads log chunks from SQLite for LogQL.
pub struct LogScan<'a> {
    pub conn: &'a rusqlite::Connection,
    /// Only chunks with `lo < id <= hi` (live tail: what was committed since the last look).
    pub ids: Option<(i64, i64)>,
}

impl LogSource for LogScan<'_> {
    fn scan(
        &self,
        start_ns: i64,
        end_ns: i64,
        matchers: &[Matcher],
        visit: &mut dyn FnMut(&Labels, &Entry<'_>) -> bool,
    ) -> Result<(), String> {
        let (lo, hi) = self.ids.unwrap_or((i64::MIN, i64::MAX));
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, min_time, data FROM chunks WHERE signal = 2 AND max_time >= ?1 AND min_time < ?2
                 AND id > ?3 AND id <= ?4 ORDER BY id",
            )
            .map_err(|e| e.to_string())?;
        let mut rows = stmt
            .query([start_ns, end_ns, lo, hi])
            .map_err(|e| e.to_string())?;
        // Stream label sets repeat across chunks; build each once.
        let mut streams: HashMap<Vec<u8>, Option<(Labels, Labels)>> = HashMap::new();
        while let Some(row) = rows.next().map_err(|e| e.to_string())? {
            let id: i64 = row.get(0).map_err(|e| e.to_string())?;
            let min_time: i64 = row.get(1).map_err(|e| e.to_string())?;
            let blob: Vec<u8> = row.get(2).map_err(|e| e.to_string())?;
            let data = match chunk::decode_logs(&blob) {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(chunk = id, error = %e, "unreadable log chunk skipped");
                    continue;
                }
            };
            for rl in &data.resource_logs {
                let key = rl
                    .resource
                    .as_ref()
                    .map(prost::Message::encode_to_vec)
                    .unwrap_or_default();
                let entry = streams.entry(key).or_insert_with(|| {
                    let (labels, meta) = stream_of(rl.resource.as_ref());
                    let get = |n: &str| {
                        labels
                            .iter()
                            .find(|(k, _)| k == n)
                            .map_or("", |(_, v)| v.as_str())
                    };
                    matchers
                        .iter()
                        .all(|m| m.matches(get(&m.name)))
                        .then_some((labels, meta))
                });
                let Some((labels, meta)) = entry.as_ref() else {
                    continue;
                };
                for sl in &rl.scope_logs {
                    for rec in &sl.log_records {
                        let ts = [rec.time_unix_nano, rec.observed_time_unix_nano]
                            .into_iter()
                            .find(|t| *t != 0)
                            .map_or(min_time, |t| t as i64);
                        if ts < start_ns || ts >= end_ns {
                            continue;
                        }
                        let md = metadata_of(rec, meta, labels);
                        let line = line_of(rec);
                        let e = Entry {
                            ts,
                            line: &line,
                            metadata: &md,
                        };
                        if !visit(labels, &e) {
                            return Ok(());
                        }
                    }
                }
            }
            if streams.len() > 100_000 {
                streams.clear();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::traces::model::string_kv as kv;

    #[test]
    fn otlp_resources_map_as_loki_3_does() {
        let r = Resource {
            attributes: vec![
                kv("service.name", "checkout"),
                kv("k8s.pod.name", "p-1"),
                kv("host.name", "h1"),
                kv("telemetry.sdk.language", "python"),
            ],
            ..Default::default()
        };
        let (labels, meta) = stream_of(Some(&r));
        assert_eq!(
            labels,
            vec![
                ("k8s_pod_name".to_string(), "p-1".to_string()),
                ("service_name".to_string(), "checkout".to_string())
            ]
        );
        assert_eq!(
            meta,
            vec![
                ("host_name".to_string(), "h1".to_string()),
                ("telemetry_sdk_language".to_string(), "python".to_string())
            ]
        );
        let rec = LogRecord {
            severity_text: "WARNING".into(),
            trace_id: vec![1; 16],
            attributes: vec![kv("http.status", "500")],
            ..Default::default()
        };
        let md = metadata_of(&rec, &meta, &labels);
        assert!(md.contains(&("http_status".into(), "500".into())));
        assert!(md.contains(&("trace_id".into(), "01".repeat(16))));
        assert!(md.contains(&("detected_level".into(), "warn".into())));
    }

    #[test]
    fn loki_pushed_streams_keep_their_labels() {
        let r = Resource {
            attributes: vec![
                kv("job", "varlogs"),
                kv("level", "info"),
                kv("service.name", "varlogs"),
            ],
            ..Default::default()
        };
        let (labels, meta) = stream_of(Some(&r));
        assert_eq!(
            labels,
            vec![
                ("job".to_string(), "varlogs".to_string()),
                ("level".to_string(), "info".to_string()),
                ("service_name".to_string(), "varlogs".to_string())
            ]
        );
        assert!(meta.is_empty());
    }
}
