//! OTLP front doors. gRPC (`grpc.rs`) and HTTP (`http.rs`) decode to the same
//! `Export*ServiceRequest` and call one export function per signal here, which walks
//! resource -> scope -> item with plain loops, drops what is invalid (counted as rejected, with a
//! partial-success message), applies the attribute limits, reserves memory from the budget and
//! waits until the store has made the data durable.

pub mod budget;
pub mod grpc;
mod histogram;
pub mod http;
pub mod limits;
pub mod loki;
pub mod metrics;
pub mod naming;
pub mod native_histogram;
pub mod remote_write;
pub mod series_key;

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

use crate::base::Signal;
use crate::config::IngestConfig;
use crate::error::ErrorCode;
pub use crate::error::ExportError;
use crate::telemetry::{Metrics, Transport};
use crate::traces::{TraceStore, model};

/// What both transports share.
pub struct Ingest {
    pub store: TraceStore,
    pub tsdb: crate::tsdb::Tsdb,
    pub converter: Arc<metrics::Converter>,
    pub budget: budget::Budget,
    pub limits: limits::Limits,
    pub metrics: Arc<Metrics>,
    pub max_http_body_bytes: usize,
    pub max_grpc_message_bytes: usize,
    /// Set when some signal is forwarded upstream.
    pub forwarder: Option<Arc<crate::forward::Forwarder>>,
    /// Set when auth is on: OTLP needs an ingest key.
    pub auth: Option<Arc<crate::auth::Auth>>,
    /// Remote write series sent with labels (see `series_key`).
    pub rw_keys: Arc<series_key::KnownKeys>,
}

impl Ingest {
    pub fn new(
        store: TraceStore,
        tsdb: crate::tsdb::Tsdb,
        cfg: &IngestConfig,
        mcfg: &crate::config::MetricsConfig,
        metrics: Arc<Metrics>,
    ) -> Ingest {
        Ingest {
            store,
            tsdb,
            converter: Arc::new(metrics::Converter::new(
                mcfg.delta_max_streams,
                mcfg.delta_stream_ttl,
                mcfg.scope_labels,
            )),
            budget: budget::Budget::new(cfg.memory_budget_bytes, metrics.clone()),
            limits: limits::Limits {
                max_attributes: cfg.max_attributes,
                max_value_len: cfg.max_attribute_value_length,
            },
            metrics,
            max_http_body_bytes: cfg.max_http_body_bytes,
            max_grpc_message_bytes: cfg.max_grpc_message_bytes,
            forwarder: None,
            auth: None,
            rw_keys: Arc::default(),
        }
    }

    /// Refuses a sender without a valid ingest key (when auth requires one).
    pub fn authorize(&self, headers: &axum::http::HeaderMap) -> Result<(), ExportError> {
        match &self.auth {
            Some(a) if !a.ingest_allowed(headers) => {
                self.metrics.refused_requests.fetch_add(1, Relaxed);
                Err(ExportError::new(
                    ErrorCode::Unauthenticated,
                    "an OTLP ingest key is required: Authorization: Bearer <key> or x-api-key: <key>",
                ))
            }
            _ => Ok(()),
        }
    }

    /// Where this signal's data goes: (kept locally, the forwarder if it is forwarded).
    fn route(&self, signal: Signal) -> (bool, Option<&crate::forward::Forwarder>) {
        match &self.forwarder {
            None => (true, None),
            Some(f) => {
                let m = f.mode(signal);
                (m.keeps_locally(), m.forwards().then_some(&**f))
            }
        }
    }

    pub async fn export_traces(
        &self,
        mut req: ExportTraceServiceRequest,
        transport: Transport,
    ) -> Result<ExportTraceServiceResponse, ExportError> {
        let counters = self.metrics.items(Signal::Traces, transport);
        let mut received = 0u64;
        let mut rejected = 0u64;
        let mut reasons = Reasons::default();
        for rs in &mut req.resource_spans {
            if let Some(r) = &mut rs.resource {
                self.limits.apply(
                    &mut r.attributes,
                    &mut r.dropped_attributes_count,
                    &self.metrics,
                );
            }
            for ss in &mut rs.scope_spans {
                received += ss.spans.len() as u64;
                ss.spans.retain_mut(|span| {
                    if model::trace_id(&span.trace_id).is_none() {
                        reasons.note("trace_id must be 16 bytes, not all zero");
                        return false;
                    }
                    if model::span_id(&span.span_id).is_none() {
                        reasons.note("span_id must be 8 bytes, not all zero");
                        return false;
                    }
                    if !span.parent_span_id.is_empty() && span.parent_span_id.len() != 8 {
                        reasons.note("parent_span_id must be empty or 8 bytes");
                        return false;
                    }
                    self.limits.apply_span(span, &self.metrics);
                    true
                });
            }
            rs.scope_spans.retain(|ss| !ss.spans.is_empty());
        }
        req.resource_spans.retain(|rs| !rs.scope_spans.is_empty());
        let kept: u64 = req
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .map(|ss| ss.spans.len() as u64)
            .sum();
        rejected += received - kept;
        counters.received.fetch_add(received, Relaxed);
        counters.rejected.fetch_add(rejected, Relaxed);
        if kept > 0 {
            let (local, fwd) = self.route(Signal::Traces);
            if local {
                self.check_index_lag()?;
            }
            let _permit = self.budget.reserve(req.encoded_len())?;
            // Encoded before the spans move into the store; stored and queued for the upstream
            // at once, acknowledged when both are durable.
            let payload = fwd.map(|_| req.encode_to_vec());
            let stored = async {
                if local {
                    self.store
                        .append_spans(req.resource_spans)
                        .await
                        .map_err(|e| store_error(e, &self.metrics))
                } else {
                    Ok(())
                }
            };
            let (q, st) = tokio::join!(enqueue(fwd, Signal::Traces, payload, kept), stored);
            q?;
            st?;
            counters.accepted.fetch_add(kept, Relaxed);
        }
        Ok(ExportTraceServiceResponse {
            partial_success: (rejected > 0).then(|| ExportTracePartialSuccess {
                rejected_spans: rejected as i64,
                error_message: reasons.message(),
            }),
        })
    }

    pub async fn export_logs(
        &self,
        mut req: ExportLogsServiceRequest,
        transport: Transport,
    ) -> Result<ExportLogsServiceResponse, ExportError> {
        let counters = self.metrics.items(Signal::Logs, transport);
        let mut received = 0u64;
        let mut reasons = Reasons::default();
        for rl in &mut req.resource_logs {
            if let Some(r) = &mut rl.resource {
                self.limits.apply(
                    &mut r.attributes,
                    &mut r.dropped_attributes_count,
                    &self.metrics,
                );
            }
            for sl in &mut rl.scope_logs {
                received += sl.log_records.len() as u64;
                sl.log_records.retain_mut(|rec| {
                    if !rec.trace_id.is_empty() && rec.trace_id.len() != 16 {
                        reasons.note("trace_id must be empty or 16 bytes");
                        return false;
                    }
                    if !rec.span_id.is_empty() && rec.span_id.len() != 8 {
                        reasons.note("span_id must be empty or 8 bytes");
                        return false;
                    }
                    self.limits.apply_log(rec, &self.metrics);
                    true
                });
            }
            rl.scope_logs.retain(|sl| !sl.log_records.is_empty());
        }
        req.resource_logs.retain(|rl| !rl.scope_logs.is_empty());
        let kept: u64 = req
            .resource_logs
            .iter()
            .flat_map(|rl| &rl.scope_logs)
            .map(|sl| sl.log_records.len() as u64)
            .sum();
        let rejected = received - kept;
        counters.received.fetch_add(received, Relaxed);
        counters.rejected.fetch_add(rejected, Relaxed);
        if kept > 0 {
            let (local, fwd) = self.route(Signal::Logs);
            if local {
                self.check_index_lag()?;
            }
            let _permit = self.budget.reserve(req.encoded_len())?;
            let payload = fwd.map(|_| req.encode_to_vec());
            let stored = async {
                if local {
                    self.store
                        .append_logs(req.resource_logs)
                        .await
                        .map_err(|e| store_error(e, &self.metrics))
                } else {
                    Ok(())
                }
            };
            let (q, st) = tokio::join!(enqueue(fwd, Signal::Logs, payload, kept), stored);
            q?;
            st?;
            counters.accepted.fetch_add(kept, Relaxed);
        }
        Ok(ExportLogsServiceResponse {
            partial_success: (rejected > 0).then(|| ExportLogsPartialSuccess {
                rejected_log_records: rejected as i64,
                error_message: reasons.message(),
            }),
        })
    }

    /// Refuses (retryably) while the search index is far behind the store, so a flood cannot
    /// leave what was acknowledged unsearchable for long.
    fn check_index_lag(&self) -> Result<(), ExportError> {
        let lag = self.store.index_lag_chunks();
        if lag > crate::traces::MAX_INDEX_LAG_CHUNKS {
            self.metrics.refused_requests.fetch_add(1, Relaxed);
            return Err(ExportError::new(
                ErrorCode::Overloaded,
                format!("search index is {lag} chunks behind the store: retry later"),
            ));
        }
        Ok(())
    }

    /// Metrics: converted to Prometheus series (`metrics.rs`) and appended to the metrics store,
    /// durable in its WAL before the answer; forwarded as received where `[forward]` says so.
    /// Points the converter or the store refuse are reported as partial success.
    pub async fn export_metrics(
        &self,
        req: ExportMetricsServiceRequest,
        transport: Transport,
    ) -> Result<ExportMetricsServiceResponse, ExportError> {
        let counters = self.metrics.items(Signal::Metrics, transport);
        let (local, fwd) = self.route(Signal::Metrics);
        if !local {
            // Forwarded only: queued as received, not converted.
            let points = crate::forward::count_metric_points(&req);
            counters.received.fetch_add(points, Relaxed);
            if points > 0 {
                let _permit = self.budget.reserve(req.encoded_len())?;
                enqueue(fwd, Signal::Metrics, Some(req.encode_to_vec()), points).await?;
                counters.accepted.fetch_add(points, Relaxed);
            }
            return Ok(ExportMetricsServiceResponse {
                partial_success: None,
            });
        }
        let _permit = self.budget.reserve(req.encoded_len().saturating_mul(4))?;
        // Forwarded as received (OTLP, not the converted series), queued while it is stored.
        let forwarded = fwd.map(|f| {
            (
                f,
                req.encode_to_vec(),
                crate::forward::count_metric_points(&req),
            )
        });
        let conv = self.converter.clone();
        let req = std::sync::Arc::new(req);
        let export = req.clone();
        // Conversion of a large export takes milliseconds: keep it off the async workers.
        let (batch, converted) = tokio::task::spawn_blocking(move || {
            let mut batch = crate::tsdb::Batch::default();
            let c = conv.convert_keyed(&export, &mut batch);
            (batch, c)
        })
        .await
        .map_err(|e| ExportError::new(ErrorCode::Internal, format!("conversion failed: {e}")))?;
        counters.received.fetch_add(converted.points, Relaxed);
        let mut rejected = converted.rejected;
        let mut reasons: Vec<String> = converted.reasons.iter().map(|r| r.to_string()).collect();
        let queued = async {
            match forwarded {
                Some((f, payload, points)) if points > 0 => {
                    f.enqueue(Signal::Metrics, payload, points).await
                }
                _ => Ok(()),
            }
        };
        let refused = |e: crate::tsdb::TsdbError| {
            self.metrics.refused_requests.fetch_add(1, Relaxed);
            ExportError::new(e.code(), e.to_string())
        };
        let stored = async {
            if batch.is_empty() {
                return Ok(None);
            }
            let (mut r, back) = self.tsdb.append_returning(batch).await.map_err(refused)?;
            if !back.keyed.is_empty() {
                // Series the store no longer knows by key (dropped since, or never created):
                // those points again, with their labels.
                let unknown: std::collections::HashSet<u128> =
                    back.keyed.iter().map(|k| k.0).collect();
                let (conv, req) = (self.converter.clone(), req.clone());
                let again = tokio::task::spawn_blocking(move || {
                    let mut b = crate::tsdb::Batch::default();
                    conv.resend(&req, &unknown, &mut b);
                    b
                })
                .await
                .map_err(|e| {
                    ExportError::new(ErrorCode::Internal, format!("conversion failed: {e}"))
                })?;
                let r2 = self.tsdb.append(again).await.map_err(refused)?;
                r = r.plus(&r2);
            }
            Ok(Some(r))
        };
        let (q, st) = tokio::join!(queued, stored);
        q?;
        if let Some(r) = st?
            && r.rejected() > 0
        {
            // Counted in samples: a histogram point is several samples.
            rejected += r.rejected();
            reasons.push(r.message());
        }
        let rejected = rejected.min(converted.points);
        counters.rejected.fetch_add(rejected, Relaxed);
        counters
            .accepted
            .fetch_add(converted.points - rejected, Relaxed);
        Ok(ExportMetricsServiceResponse {
            partial_success: (rejected > 0).then(|| ExportMetricsPartialSuccess {
                rejected_data_points: rejected as i64,
                error_message: reasons.join("; "),
            }),
        })
    }
}

/// Queues `payload` for the upstream when the signal is forwarded.
async fn enqueue(
    fwd: Option<&crate::forward::Forwarder>,
    signal: Signal,
    payload: Option<Vec<u8>>,
    items: u64,
) -> Result<(), ExportError> {
    match (fwd, payload) {
        (Some(f), Some(p)) => f.enqueue(signal, p, items).await,
        _ => Ok(()),
    }
}

fn store_error(e: crate::traces::StoreError, metrics: &Metrics) -> ExportError {
    metrics.refused_requests.fetch_add(1, Relaxed);
    ExportError::new(e.code(), e.to_string())
}

/// Distinct reasons for rejected items, for the partial-success message.
#[derive(Default)]
struct Reasons(Vec<&'static str>);

impl Reasons {
    fn note(&mut self, why: &'static str) {
        if !self.0.contains(&why) {
            self.0.push(why);
        }
    }

    fn message(&self) -> String {
        self.0.join("; ")
    }
}
