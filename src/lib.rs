//! # Sightline
//!
//! One process that replaces an OpenTelemetry Collector + Jaeger (and, as the other pieces land,
//! Prometheus, Grafana, node-exporter, dcgm-exporter and Caddy) for teams running GPU services.
//!
//! # Layout
//!
//! - [`config`]: TOML file, `SIGHTLINE_*` variables and flags -> a validated [`config::Config`].
//! - [`app`]: wiring; binds the listeners, composes the routers, owns shutdown.
//! - [`ingest`]: OTLP front doors. `ingest::grpc` (tonic) and `ingest::http` (axum) decode to
//!   the same `Export*ServiceRequest` and call one export function per signal.
//! - [`traces`]: the span and log store. SQLite (`traces.db`) holds zstd-compressed chunks of
//!   OTLP data; Tantivy (`index/`) makes them searchable; dependency counts feed the service map.
//! - [`tsdb`]: the metrics store: series index and head in memory, WAL, immutable blocks with
//!   compaction and retention, and the narrow read seam [`tsdb::Queryable`] (`select`, label
//!   names, label values). Formats in `src/tsdb/FORMAT.md`.
//! - [`samplers`]: metrics Sightline gathers itself: the host (node-exporter names), the GPUs
//!   through NVML (dcgm-exporter names), and scraping of Prometheus exposition endpoints.
//! - [`spanmetrics`]: metrics derived from stored spans (Tempo's span metrics and service graph)
//!   and the process map that attributes GPU use to services.
//! - [`promql`]: the PromQL parser and evaluator over [`tsdb::Queryable`].
//! - [`api`]: query APIs: Jaeger-compatible (`/api/traces` ..., and the Monitor tab's
//!   `/api/metrics/*`), GPU use beside a trace, log search (`/api/logs`), and the Prometheus API
//!   (`/api/v1/query`, `query_range`, series, labels, metadata, exemplars, raw export).
//! - [`telemetry`]: Sightline's own metrics at `/metrics`.
//! - [`error`]: the one mapping from error kinds to HTTP and gRPC status codes.
//!
//! - [`ui`]: the web UI at `/ui/` (askama templates in `ui/`, embedded files from `assets/`).
//! - [`forward`]: forwarding upstream over OTLP (`[forward]`): a queue on disk per signal,
//!   written before the export is acknowledged, drained by one sender per signal with retries.
//!
//! - [`proxy`]: the main listener's front door (request-target checks, one path normalisation,
//!   auth) and the sub-path reverse proxy (`[[proxy]]`).
//! - [`auth`]: users, API tokens, browser sessions with CSRF, OTLP ingest keys.
//!
//! - [`tls`]: TLS on the listeners (rustls), the certificate read again on SIGHUP.

//!
//! # One span's path
//!
//! 1. An SDK posts `ExportTraceServiceRequest` to `:4318/v1/traces` (or gRPC `:4317`).
//! 2. `ingest::http` checks content type and size, inflates gzip with a cap, decodes on a
//!    blocking thread, and calls `Ingest::export_traces`.
//! 3. `export_traces` drops invalid spans (partial success), applies attribute limits, reserves
//!    memory from the budget and sends the batch to the writer thread.
//! 4. The writer (`traces::writer`) groups everything waiting into one SQLite transaction: chunks
//!    of up to 1024 spans, new operations, dependency counts; it commits (WAL, fsync), registers the
//!    chunks as pending for lookups by trace id, and only then acknowledges the export.
//! 5. The indexer thread adds one Tantivy document per span and commits at least every second,
//!    recording the highest chunk id it covers; on restart it catches up from SQLite.
//! 6. `GET /api/traces/{id}` asks the index (plus pending chunks) which chunks hold the trace,
//!    decodes them, and `api::jaeger` renders Jaeger's JSON.
//!
//! # One sample's path
//!
//! 1. An SDK posts `ExportMetricsServiceRequest` to `/v1/metrics` (or gRPC), or a `[[scrape]]`
//!    task (`samplers::scrape`) fetches and parses an exposition.
//! 2. `ingest::metrics::Converter` turns each data point into Prometheus series (names and labels
//!    by the compatibility rules, delta to cumulative) in a `tsdb::Batch`.
//! 3. `Tsdb::append` hands the batch to the writer thread, which finds or creates each series in
//!    the head (`tsdb::head`), appends the samples (in order, out of order within the window, or
//!    rejected), frames WAL records and, once per group of waiting batches, writes and fsyncs the
//!    WAL (`tsdb::wal`); then the export is acknowledged.
//! 4. When the head spans 1.5 block ranges the writer fences it and the maintenance thread
//!    writes a block (`tsdb::block`), truncates the head, checkpoints the WAL, compacts and
//!    applies retention.
//! 5. `GET /api/v1/series` (or the PromQL engine) calls `Queryable::select`, which merges
//!    the blocks and the head and returns each series' samples in the range.

pub mod api;
pub mod app;
pub mod auth;
pub mod base;
pub mod config;
pub mod error;
pub mod forward;
pub mod ingest;
pub mod promql;
pub mod proxy;
pub mod samplers;
pub mod spanmetrics;
pub mod telemetry;
pub mod tls;
pub mod traces;
pub mod tsdb;
pub mod ui;
