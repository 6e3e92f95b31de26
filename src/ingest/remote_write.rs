//! Prometheus remote write 1.0 in: `POST /api/v1/write` with a snappy-compressed protobuf
//! `prometheus.WriteRequest` (samples and metadata), as Prometheus agents, Grafana Alloy,
//! vmagent, Telegraf and the Collector's `prometheusremotewrite` exporter send it. The body is
//! capped before decompression and its declared decompressed length checked against the same
//! cap before inflating; samples go through the metrics store's append path and are durable when
//! the answer (204) is sent. Samples the store refuses (out of order, duplicates, too old) are
//! answered 400 with the reason after the rest of the request is stored, so senders do not retry
//! forever; backpressure is 429/503 with `Retry-After`. Ingest keys apply as for OTLP.
//!
//! Remote write 2.0 (`Content-Type: application/x-protobuf;proto=io.prometheus.write.v2.Request`):
//! the symbol table, label references, samples, metadata (type, help and unit references) and
//! created timestamps (a zero sample at the created time of a counter, as Prometheus's
//! `created-timestamp-zero-ingestion` does), answered with the
//! `X-Prometheus-Remote-Write-{Samples,Histograms,Exemplars}-Written` headers.
//!
//! Also `POST /api/v1/otlp/v1/metrics`, Prometheus 3's OTLP path, as an alias of OTLP/HTTP
//! metrics. Native histograms (1.0 and 2.0) are stored as classic histograms at their own bucket
//! boundaries (`ingest::native_histogram`); one that cannot be (a schema out of range, spans
//! that do not match the counts) is answered 400 with the reason after the rest is stored.
//! Exemplars with a `trace_id` label are kept (the store keeps trace-linked exemplars only).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::Ingest;
use super::native_histogram::{Histogram, exemplar, to_classic};
use super::series_key::{Domain, KeyHasher};
use crate::base::Signal;
use crate::error::{ErrorCode, ExportError};

/// `prometheus.WriteRequest` (prompb/remote.proto), the fields Sightline reads.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    #[prost(message, repeated, tag = "3")]
    pub exemplars: Vec<ExemplarV1>,
    /// Native histograms, stored as classic ones (`ingest::native_histogram`).
    #[prost(message, repeated, tag = "4")]
    pub histograms: Vec<Histogram>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ExemplarV1 {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(double, tag = "2")]
    pub value: f64,
    #[prost(int64, tag = "3")]
    pub timestamp: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ExemplarV2 {
    #[prost(uint32, repeated, tag = "1")]
    pub labels_refs: Vec<u32>,
    #[prost(double, tag = "2")]
    pub value: f64,
    #[prost(int64, tag = "3")]
    pub timestamp: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricMetadata {
    #[prost(int32, tag = "1")]
    pub kind: i32,
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    #[prost(string, tag = "4")]
    pub help: String,
    #[prost(string, tag = "5")]
    pub unit: String,
}

/// `io.prometheus.write.v2.Request` (prompb/io/prometheus/write/v2/types.proto).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RequestV2 {
    #[prost(string, repeated, tag = "4")]
    pub symbols: Vec<String>,
    #[prost(message, repeated, tag = "5")]
    pub timeseries: Vec<TimeSeriesV2>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeriesV2 {
    #[prost(uint32, repeated, tag = "1")]
    pub labels_refs: Vec<u32>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<SampleV2>,
    #[prost(message, repeated, tag = "3")]
    pub histograms: Vec<Histogram>,
    #[prost(message, repeated, tag = "4")]
    pub exemplars: Vec<ExemplarV2>,
    #[prost(message, optional, tag = "5")]
    pub metadata: Option<MetadataV2>,
    /// The 2.0 spec's created timestamp (later moved to each sample's `start_timestamp`).
    #[prost(int64, tag = "6")]
    pub created_timestamp: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SampleV2 {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
    #[prost(int64, tag = "3")]
    pub start_timestamp: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MetadataV2 {
    #[prost(int32, tag = "1")]
    pub kind: i32,
    #[prost(uint32, tag = "3")]
    pub help_ref: u32,
    #[prost(uint32, tag = "4")]
    pub unit_ref: u32,
}

/// What a request held, for the `*-Written` headers and the answer.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Written {
    pub samples: u64,
    pub histograms: u64,
    pub exemplars: u64,
    /// Native histogram samples that could not be stored, and why (the first reason).
    pub refused_histograms: u64,
    pub refused_why: String,
}

/// Adds one series' native histograms (as classic series) and exemplars to the batch.
fn add_histograms_and_exemplars<'a>(
    batch: &mut crate::tsdb::Batch,
    w: &mut Written,
    series: &crate::tsdb::Labels,
    histograms: &[Histogram],
    exemplars: impl Iterator<Item = (Vec<(&'a str, &'a str)>, f64, i64)>,
    idx: Option<u32>,
) {
    for h in histograms {
        match to_classic(series, h) {
            Ok(out) => {
                for (l, v) in out {
                    batch.push(l, h.timestamp, v);
                }
                w.histograms += 1;
            }
            Err(e) => {
                if w.refused_why.is_empty() {
                    w.refused_why = format!("native histogram of {series} refused: {e}");
                }
                w.refused_histograms += 1;
            }
        }
    }
    if let Some(i) = idx {
        for (labels, value, t) in exemplars {
            if let Some(e) = exemplar(labels, value, t) {
                batch.exemplars.push((i, e));
                w.exemplars += 1;
            }
        }
    }
}

/// A 2.0 request as a store batch: labels resolved through the symbol table (a reference out
/// of range is a 400), created timestamps of counters as zero samples.
pub fn v2_to_batch(req: &RequestV2) -> Result<(crate::tsdb::Batch, Written), ExportError> {
    let bad = |m: String| ExportError::new(ErrorCode::BadRequest, m);
    if req.symbols.first().is_some_and(|s| !s.is_empty()) {
        return Err(bad("symbols[0] must be the empty string".into()));
    }
    let sym = |r: u32| -> Result<&str, ExportError> {
        req.symbols
            .get(r as usize)
            .map(String::as_str)
            .ok_or_else(|| {
                bad(format!(
                    "symbol reference {r} out of range ({} symbols)",
                    req.symbols.len()
                ))
            })
    };
    let mut batch = crate::tsdb::Batch::default();
    let mut w = Written::default();
    for ts in &req.timeseries {
        if ts.labels_refs.len() % 2 != 0 {
            return Err(bad(
                "labels_refs must hold name and value references in pairs".into(),
            ));
        }
        let mut pairs = Vec::with_capacity(ts.labels_refs.len() / 2);
        for p in ts.labels_refs.chunks(2) {
            pairs.push((sym(p[0])?, sym(p[1])?));
        }
        let name = pairs
            .iter()
            .find(|(n, _)| *n == "__name__")
            .map(|(_, v)| v.to_string());
        if let (Some(m), Some(name)) = (&ts.metadata, &name) {
            let (help, unit) = (sym(m.help_ref)?, sym(m.unit_ref)?);
            if m.kind != 0 || !help.is_empty() || !unit.is_empty() {
                batch.metadata.push((
                    name.clone(),
                    crate::tsdb::Metadata {
                        kind: metric_type(m.kind).to_string(),
                        help: help.to_string(),
                        unit: unit.to_string(),
                    },
                ));
            }
        }
        let series = crate::tsdb::Labels::from_pairs(pairs);
        let mut ex = Vec::with_capacity(ts.exemplars.len());
        for e in &ts.exemplars {
            let mut l = Vec::with_capacity(e.labels_refs.len() / 2);
            for p in e.labels_refs.chunks(2) {
                if p.len() == 2 {
                    l.push((sym(p[0])?, sym(p[1])?));
                }
            }
            ex.push((l, e.value, e.timestamp));
        }
        if ts.samples.is_empty() {
            add_histograms_and_exemplars(
                &mut batch,
                &mut w,
                &series,
                &ts.histograms,
                ex.into_iter(),
                None,
            );
            continue;
        }
        let counter = ts.metadata.as_ref().is_some_and(|m| m.kind == 1);
        // The label set moves into the batch; a copy only where histograms or exemplars need it.
        let idx = if ts.histograms.is_empty() && ex.is_empty() {
            batch.series_index(series)
        } else {
            let idx = batch.series_index(series.clone());
            add_histograms_and_exemplars(
                &mut batch,
                &mut w,
                &series,
                &ts.histograms,
                ex.into_iter(),
                Some(idx),
            );
            idx
        };
        let mut last_ct = 0;
        for s in &ts.samples {
            let ct = if s.start_timestamp != 0 {
                s.start_timestamp
            } else {
                ts.created_timestamp
            };
            if counter && ct > 0 && ct < s.timestamp && ct != last_ct {
                batch.samples.push((idx, ct, 0.0));
                last_ct = ct;
            }
            batch.samples.push((idx, s.timestamp, s.value));
            w.samples += 1;
        }
    }
    Ok((batch, w))
}

/// prompb's `MetricMetadata.MetricType` names, as the metadata API writes them.
fn metric_type(k: i32) -> &'static str {
    match k {
        1 => "counter",
        2 => "gauge",
        3 => "histogram",
        4 => "gaugehistogram",
        5 => "summary",
        6 => "info",
        7 => "stateset",
        _ => "unknown",
    }
}

pub fn router(ingest: Arc<Ingest>) -> Router {
    Router::new()
        .route("/api/v1/write", post(write))
        .route("/api/v1/otlp/v1/metrics", post(super::http::metrics))
        .with_state(ingest)
}

/// A plain-text answer; `Retry-After: 1` on 429 and 503.
pub(super) fn text(code: StatusCode, msg: &str) -> Response {
    let mut r = (code, format!("{msg}\n")).into_response();
    if matches!(
        code,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    ) {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}

fn refuse(ingest: &Ingest, e: ExportError) -> Response {
    ingest.metrics.refused_requests.fetch_add(1, Relaxed);
    if e.code == ErrorCode::Internal {
        tracing::error!(message = %e.message, "remote write failed");
        return text(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
    }
    text(e.code.http_status(), &e.message)
}

/// Decompresses and decodes a remote write 1.0 body; the decompressed size may not pass `cap`.
pub fn decode(raw: &[u8], cap: usize) -> Result<WriteRequest, ExportError> {
    decode_as(raw, cap)
}

/// The same for any message (2.0's `Request`).
pub fn decode_as<M: prost::Message + Default>(raw: &[u8], cap: usize) -> Result<M, ExportError> {
    let plain = snappy_capped(raw, cap)?;
    M::decode(plain.as_slice())
        .map_err(|e| ExportError::new(ErrorCode::BadRequest, format!("protobuf: {e}")))
}

/// Inflates a snappy block whose declared length may not pass `cap` (checked before inflating).
pub(super) fn snappy_capped(raw: &[u8], cap: usize) -> Result<Vec<u8>, ExportError> {
    let bad = |m: String| ExportError::new(ErrorCode::BadRequest, m);
    let len = snap::raw::decompress_len(raw).map_err(|e| bad(format!("snappy: {e}")))?;
    if len > cap {
        return Err(ExportError::new(
            ErrorCode::PayloadTooLarge,
            format!("decompressed body of {len} bytes is larger than the limit of {cap} bytes"),
        ));
    }
    snap::raw::Decoder::new()
        .decompress_vec(raw)
        .map_err(|e| bad(format!("snappy: {e}")))
}

/// A remote write series' key: its labels as sent (see [`super::series_key`]).
fn series_key(labels: &[Label]) -> u128 {
    let mut h = KeyHasher::new(Domain::RemoteWrite);
    for l in labels {
        h.field(l.name.as_bytes());
        h.field(l.value.as_bytes());
    }
    h.finish()
}

/// How [`to_batch_keyed`] names series.
pub enum Keys<'a> {
    /// Plain series (samples only) the store knows by key go by key; the rest by labels.
    Known(&'a mut HashSet<u128>),
    /// Only the plain series whose key is in the set, by labels and key; nothing else.
    Resend(&'a HashSet<u128>),
}

/// The store's batch for a 1.0 request and what it holds, naming known series by key.
pub fn to_batch_keyed(req: &WriteRequest, mut keys: Keys) -> (crate::tsdb::Batch, Written) {
    let mut batch = crate::tsdb::Batch::default();
    let mut w = Written::default();
    let resend = matches!(keys, Keys::Resend(_));
    for ts in &req.timeseries {
        if !ts.samples.is_empty() && ts.histograms.is_empty() && ts.exemplars.is_empty() {
            let key = series_key(&ts.labels);
            match &mut keys {
                Keys::Resend(only) if !only.contains(&key) => continue,
                Keys::Known(known) if known.contains(&key) => {
                    for s in &ts.samples {
                        batch.keyed.push((key, s.timestamp, s.value));
                    }
                    w.samples += ts.samples.len() as u64;
                    continue;
                }
                Keys::Known(known) => {
                    known.insert(key);
                }
                Keys::Resend(_) => {}
            }
            let labels = crate::tsdb::Labels::from_pairs(
                ts.labels
                    .iter()
                    .map(|l| (l.name.as_str(), l.value.as_str())),
            );
            let idx = batch.series_index(labels);
            batch.series_keys.push((idx, key));
            for s in &ts.samples {
                batch.samples.push((idx, s.timestamp, s.value));
            }
            w.samples += ts.samples.len() as u64;
            continue;
        }
        if resend {
            continue;
        }
        add_series(&mut batch, &mut w, ts);
    }
    if !resend {
        add_metadata(&mut batch, req);
    }
    (batch, w)
}

/// The store's batch for a 1.0 request and what it holds, every series by its labels.
pub fn to_batch(req: &WriteRequest) -> (crate::tsdb::Batch, Written) {
    let mut batch = crate::tsdb::Batch::default();
    let mut w = Written::default();
    for ts in &req.timeseries {
        add_series(&mut batch, &mut w, ts);
    }
    add_metadata(&mut batch, req);
    (batch, w)
}

/// One series of a 1.0 request by its labels: samples, histograms, exemplars.
fn add_series(batch: &mut crate::tsdb::Batch, w: &mut Written, ts: &TimeSeries) {
    let labels = crate::tsdb::Labels::from_pairs(
        ts.labels
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str())),
    );
    let ex = ts.exemplars.iter().map(|e| {
        (
            e.labels
                .iter()
                .map(|l| (l.name.as_str(), l.value.as_str()))
                .collect::<Vec<_>>(),
            e.value,
            e.timestamp,
        )
    });
    let extra = !ts.histograms.is_empty() || !ts.exemplars.is_empty();
    if ts.samples.is_empty() {
        if extra {
            add_histograms_and_exemplars(batch, w, &labels, &ts.histograms, ex, None);
        }
        return;
    }
    // The label set moves into the batch; a copy only where histograms or exemplars need it.
    let (idx, kept) = if extra {
        (batch.series_index(labels.clone()), Some(labels))
    } else {
        (batch.series_index(labels), None)
    };
    for s in &ts.samples {
        batch.samples.push((idx, s.timestamp, s.value));
        w.samples += 1;
    }
    if let Some(labels) = kept {
        add_histograms_and_exemplars(batch, w, &labels, &ts.histograms, ex, Some(idx));
    }
}

fn add_metadata(batch: &mut crate::tsdb::Batch, req: &WriteRequest) {
    for m in &req.metadata {
        if m.metric_family_name.is_empty() {
            continue;
        }
        batch.metadata.push((
            m.metric_family_name.clone(),
            crate::tsdb::Metadata {
                kind: metric_type(m.kind).to_string(),
                help: m.help.clone(),
                unit: m.unit.clone(),
            },
        ));
    }
}

/// Appends; series the store did not know by key go again with their labels.
async fn append_resending(
    ingest: &Arc<Ingest>,
    batch: crate::tsdb::Batch,
    request: Option<WriteRequest>,
) -> Result<crate::tsdb::AppendResult, ExportError> {
    let stored = |e: crate::tsdb::TsdbError| ExportError::new(e.code(), e.to_string());
    let (r, back) = ingest.tsdb.append_returning(batch).await.map_err(stored)?;
    let Some(req) = request.filter(|_| !back.keyed.is_empty()) else {
        return Ok(r);
    };
    let unknown: HashSet<u128> = back.keyed.iter().map(|k| k.0).collect();
    ingest.rw_keys.forget(&unknown);
    let again = tokio::task::spawn_blocking(move || to_batch_keyed(&req, Keys::Resend(&unknown)).0)
        .await
        .map_err(|_| ExportError::new(ErrorCode::Internal, "decode task failed"))?;
    let r2 = ingest.tsdb.append(again).await.map_err(stored)?;
    Ok(r.plus(&r2))
}

async fn write(
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
    let v2 = match ct
        .split(';')
        .skip(1)
        .find_map(|p| p.trim().strip_prefix("proto="))
    {
        None | Some("prometheus.writerequest") => false,
        Some("io.prometheus.write.v2.request") => true,
        Some(other) => {
            return refuse(
                &ingest,
                ExportError::new(
                    ErrorCode::UnsupportedMediaType,
                    format!(
                        "unsupported remote write message {other:?}: use prometheus.WriteRequest (1.0) or io.prometheus.write.v2.Request (2.0)"
                    ),
                ),
            );
        }
    };
    if !ct.starts_with("application/x-protobuf") {
        return refuse(
            &ingest,
            ExportError::new(
                ErrorCode::UnsupportedMediaType,
                format!("unsupported content type {ct:?}: use application/x-protobuf"),
            ),
        );
    }
    match headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("snappy") => {}
        Some(other) => {
            return refuse(
                &ingest,
                ExportError::new(
                    ErrorCode::UnsupportedMediaType,
                    format!("unsupported content encoding {other:?}: use snappy"),
                ),
            );
        }
    }
    let cap = ingest.max_http_body_bytes;
    let raw = match super::http::read_limited(body, cap).await {
        Ok(b) => b,
        Err(e) => return refuse(&ingest, e),
    };
    let keys = ingest.rw_keys.clone();
    let decoded = tokio::task::spawn_blocking(move || {
        if v2 {
            let req: RequestV2 = decode_as(&raw, cap)?;
            let (batch, w) = v2_to_batch(&req)?;
            Ok((batch, w, None))
        } else {
            let req = decode(&raw, cap)?;
            let (batch, w) = to_batch_keyed(&req, Keys::Known(&mut keys.lock()));
            Ok((batch, w, Some(req)))
        }
    })
    .await;
    let (batch, written, request) = match decoded {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => return refuse(&ingest, e),
        Err(_) => {
            return refuse(
                &ingest,
                ExportError::new(ErrorCode::Internal, "decode task failed"),
            );
        }
    };
    let counters = ingest
        .metrics
        .items(Signal::Metrics, super::Transport::Http);
    // Samples and native histogram samples; a histogram's classic series count as one.
    let n = written.samples + written.histograms;
    let skipped = written.refused_histograms;
    counters.received.fetch_add(n + skipped, Relaxed);
    let _permit = match ingest
        .budget
        .reserve((batch.samples.len() + batch.keyed.len()).saturating_mul(64))
    {
        Ok(p) => p,
        Err(e) => return refuse(&ingest, e),
    };
    let result = if batch.is_empty() && batch.metadata.is_empty() {
        None
    } else {
        match append_resending(&ingest, batch, request).await {
            Ok(r) => Some(r),
            Err(e) => return refuse(&ingest, e),
        }
    };
    let rejected = result.as_ref().map_or(0, |r| r.rejected()).min(n) + skipped;
    counters.rejected.fetch_add(rejected, Relaxed);
    counters
        .accepted
        .fetch_add((n + skipped).saturating_sub(rejected), Relaxed);
    let mut resp = match &result {
        Some(r) if r.rejected() > 0 => text(StatusCode::BAD_REQUEST, &r.message()),
        _ if skipped > 0 => text(
            StatusCode::BAD_REQUEST,
            &format!(
                "{skipped} native histogram samples refused; first: {}",
                written.refused_why
            ),
        ),
        _ => StatusCode::NO_CONTENT.into_response(),
    };
    if v2 {
        let refused = result.as_ref().map_or(0, |r| r.rejected());
        let stored = written.samples.saturating_sub(refused.min(written.samples));
        for (h, v) in [
            ("x-prometheus-remote-write-samples-written", stored),
            (
                "x-prometheus-remote-write-histograms-written",
                written.histograms,
            ),
            (
                "x-prometheus-remote-write-exemplars-written",
                written.exemplars,
            ),
        ] {
            if let Ok(v) = HeaderValue::from_str(&v.to_string()) {
                resp.headers_mut().insert(h, v);
            }
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    fn body(req: &WriteRequest) -> Vec<u8> {
        snap::raw::Encoder::new()
            .compress_vec(&req.encode_to_vec())
            .unwrap()
    }

    #[test]
    fn known_series_go_by_key() {
        let label = |name: &str, value: &str| Label {
            name: name.into(),
            value: value.into(),
        };
        let series = |job: &str, v: f64, exemplar: bool| TimeSeries {
            labels: vec![label("__name__", "up"), label("job", job)],
            samples: vec![Sample {
                value: v,
                timestamp: 1000 * v as i64,
            }],
            exemplars: if exemplar {
                vec![ExemplarV1 {
                    labels: vec![label("trace_id", "0102030405060708090a0b0c0d0e0f10")],
                    value: v,
                    timestamp: 1000 * v as i64,
                }]
            } else {
                vec![]
            },
            histograms: vec![],
        };
        let req = |v: f64| WriteRequest {
            timeseries: vec![
                series("a", v, false),
                series("b", v, false),
                series("c", v, true),
            ],
            metadata: vec![],
        };
        let mut known = HashSet::new();
        let (b1, w1) = to_batch_keyed(&req(1.0), Keys::Known(&mut known));
        assert_eq!(
            (b1.series.len(), b1.series_keys.len(), b1.keyed.len()),
            (3, 2, 0)
        );
        assert_eq!(w1.samples, 3);
        let (b2, w2) = to_batch_keyed(&req(2.0), Keys::Known(&mut known));
        assert_eq!(w2.samples, 3);
        let keys: Vec<u128> = b1.series_keys.iter().map(|k| k.1).collect();
        assert_eq!(
            b2.keyed,
            vec![(keys[0], 2000, 2.0), (keys[1], 2000, 2.0)],
            "plain series by key"
        );
        assert_eq!(b2.series.len(), 1, "the one with an exemplar by labels");
        assert_eq!(b2.exemplars.len(), 1);
        // Only the unknown one again, with labels and key.
        let unknown: HashSet<u128> = [keys[1]].into();
        let (b3, _) = to_batch_keyed(&req(2.0), Keys::Resend(&unknown));
        assert_eq!(b3.series.len(), 1);
        assert_eq!(b3.series[0].get("job"), Some("b"));
        assert_eq!(b3.series_keys, vec![(0, keys[1])]);
        assert_eq!(b3.samples, vec![(0, 2000, 2.0)]);
        assert!(b3.exemplars.is_empty() && b3.keyed.is_empty());
        // The same labels in another order are another key (and still the same series).
        let mut swapped = series("a", 3.0, false);
        swapped.labels.reverse();
        let (b4, _) = to_batch_keyed(
            &WriteRequest {
                timeseries: vec![swapped],
                metadata: vec![],
            },
            Keys::Known(&mut known),
        );
        assert_eq!(b4.series[0], b1.series[0]);
        assert_ne!(b4.series_keys[0].1, keys[0]);
    }

    #[test]
    fn decodes_samples_and_metadata_and_refuses_bombs() {
        let req = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![
                    Label {
                        name: "__name__".into(),
                        value: "up".into(),
                    },
                    Label {
                        name: "job".into(),
                        value: "node".into(),
                    },
                ],
                samples: vec![
                    Sample {
                        value: 1.0,
                        timestamp: 1000,
                    },
                    Sample {
                        value: 0.0,
                        timestamp: 2000,
                    },
                ],
                exemplars: vec![ExemplarV1 {
                    labels: vec![Label {
                        name: "trace_id".into(),
                        value: "0102030405060708090a0b0c0d0e0f10".into(),
                    }],
                    value: 1.0,
                    timestamp: 1000,
                }],
                histograms: vec![Histogram {
                    count: Some(super::super::native_histogram::Count::Int(2)),
                    sum: 3.0,
                    schema: 0,
                    positive_spans: vec![super::super::native_histogram::BucketSpan {
                        offset: 1,
                        length: 1,
                    }],
                    positive_deltas: vec![2],
                    timestamp: 1000,
                    ..Default::default()
                }],
            }],
            metadata: vec![MetricMetadata {
                kind: 2,
                metric_family_name: "up".into(),
                help: "h".into(),
                unit: String::new(),
            }],
        };
        let got = decode(&body(&req), 1 << 20).unwrap();
        assert_eq!(got, req);
        let (batch, w) = to_batch(&got);
        // up, then up_bucket{le=0,2,+Inf}, up_count, up_sum from the native histogram.
        assert_eq!(
            (batch.series.len(), w.samples, w.histograms, w.exemplars),
            (6, 2, 1, 1)
        );
        assert_eq!(w.refused_histograms, 0);
        assert_eq!(batch.metadata[0].1.kind, "gauge");
        // A body that inflates past the cap is refused before inflating.
        let big = snap::raw::Encoder::new()
            .compress_vec(&vec![0u8; 4 << 20])
            .unwrap();
        assert_eq!(
            decode(&big, 1 << 20).unwrap_err().code,
            ErrorCode::PayloadTooLarge
        );
        assert_eq!(
            decode(b"\x20\xffgarbage", 1 << 20).unwrap_err().code,
            ErrorCode::BadRequest
        );
        let mut truncated = body(&req);
        truncated.truncate(truncated.len() - 3);
        assert!(decode(&truncated, 1 << 20).is_err());
    }

    #[test]
    fn v2_resolves_symbols_and_created_timestamps() {
        let req = RequestV2 {
            symbols: vec![
                "".into(),
                "__name__".into(),
                "reqs_total".into(),
                "job".into(),
                "api".into(),
                "Requests.".into(),
            ],
            timeseries: vec![TimeSeriesV2 {
                labels_refs: vec![1, 2, 3, 4],
                samples: vec![SampleV2 {
                    value: 5.0,
                    timestamp: 2000,
                    start_timestamp: 0,
                }],
                histograms: vec![],
                exemplars: vec![],
                metadata: Some(MetadataV2 {
                    kind: 1,
                    help_ref: 5,
                    unit_ref: 0,
                }),
                created_timestamp: 1000,
            }],
        };
        let (b, w) = v2_to_batch(&req).unwrap();
        assert_eq!(w.samples, 1);
        assert_eq!(b.series[0].get("job"), Some("api"));
        // The counter's created timestamp becomes a zero sample before the first.
        assert_eq!(b.samples, vec![(0, 1000, 0.0), (0, 2000, 5.0)]);
        assert_eq!(b.metadata[0].1.help, "Requests.");
        let mut bad = req.clone();
        bad.timeseries[0].labels_refs = vec![1, 99];
        assert_eq!(v2_to_batch(&bad).unwrap_err().code, ErrorCode::BadRequest);
    }
}
