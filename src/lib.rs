//! # Sightline
//!
//! One process that replaces an OpenTelemetry Collector, Prometheus, Alertmanager, Jaeger,
//! node-exporter, dcgm-exporter, Caddy and (for its own pages) Grafana for teams running GPU
//! services, and draws the Grafana dashboards teams already have.
//!
//! # Layout
//!
//! - [`base`]: the bottom floor, no imports from the crate: the clock, Go-compatible number and
//!   string formatting, the one [`base::Signal`] type, HTML escaping, request-path
//!   normalisation, query-string parameters, units, directory sizes.
//! - [`error`]: the one mapping from error kinds to HTTP and gRPC status codes, and
//!   [`error::ExportError`] (a whole request refused).
//! - [`config`]: TOML file, `SIGHTLINE_*` variables and flags -> a validated [`config::Config`];
//!   it owns every section's validated type (one file per section).
//! - [`telemetry`]: the `/metrics` exposition writer, the [`telemetry::MetricSource`] trait each
//!   part implements for its counters, and the registry `app` composes.
//! - [`tsdb`]: the metrics store: series index and head in memory, WAL, immutable blocks with
//!   compaction and retention, and the narrow read seam [`tsdb::Queryable`] (`select`, label
//!   names, label values). Formats in `src/tsdb/FORMAT.md`.
//! - [`traces`]: the span and log store. SQLite (`traces.db`) holds zstd-compressed chunks of
//!   OTLP data; Tantivy (`index/`) makes them searchable; dependency counts feed the service map.
//!   Whoever wants committed spans registers a [`traces::CommitObserver`].
//! - [`forward`]: forwarding upstream over OTLP (`[forward]`): a queue on disk per signal,
//!   written before the export is acknowledged, drained by one sender per signal with retries.
//! - [`auth`]: users, API tokens, browser sessions with CSRF, OTLP ingest keys.
//! - [`tls`]: TLS on the listeners (rustls), the certificate read again on SIGHUP.
//! - [`template`]: Go's text/template as Prometheus's alert templates use it, bounded.
//! - [`notify`]: alerts to Alertmanagers (API v2), a bounded queue, batches, counters.
//! - [`alertmanager`]: the built-in Alertmanager (`[notify] config_file`): `alertmanager.yml`,
//!   routing, aggregation groups, inhibition, silences, time intervals, the notification log and
//!   receivers, its state durable in SQLite; `api::alertmanager` answers Alertmanager's API v2.
//! - [`promql`]: the PromQL lexer, parser and evaluator over [`tsdb::Queryable`], and the
//!   [`promql::QueryService`] every query goes through (admission, the blocking pool).
//! - [`rules`]: Prometheus rule files, group evaluation with Prometheus 2.42's semantics, alert
//!   state, the manager (slots, reload), `sightline check/test rules`.
//! - [`spanmetrics`]: metrics derived from committed spans (Tempo's span metrics and service
//!   graph) and the process map that attributes GPU use to services.
//! - [`ingest`]: OTLP front doors. `ingest::grpc` (tonic) and `ingest::http` (axum) decode to
//!   the same `Export*ServiceRequest` and call one export function per signal.
//! - [`proxy`]: the main listener's front door (request-target checks, one path normalisation,
//!   auth) and the sub-path reverse proxy (`[[proxy]]`).
//! - [`samplers`]: metrics Sightline gathers itself: the host (node-exporter names) and the GPUs
//!   through NVML (dcgm-exporter names).
//! - [`scrape`]: scraping Prometheus exposition endpoints as Prometheus does, from a real
//!   `prometheus.yml` (static, file and HTTP discovery, relabeling, limits, TLS and credentials)
//!   or the `[[scrape]]` short form; `sightline check config`; what `/api/v1/targets` shows.
//! - [`api`]: query APIs: Jaeger-compatible (`/api/traces` ..., and the Monitor tab's
//!   `/api/metrics/*`), GPU use beside a trace, log search (`/api/logs`), and the Prometheus API
//!   (`/api/v1/query`, `query_range`, series, labels, metadata, exemplars, raw export); every
//!   failure becomes an answer in `api::edge`.
//! - [`dashboards`]: Grafana dashboard JSON, uploaded (`<data_dir>/dashboards/`) or provisioned
//!   from `[dashboards] dirs`: template variables over the metrics store, Grafana's
//!   interpolation and intervals, and the per-panel specs the Dashboards page draws.
//! - [`ui`]: the web UI at `/ui/` (askama templates in `ui/`, embedded files from `assets/`), one
//!   file per page.
//! - [`app`]: wiring: opens the stores, composes `/metrics`, wires span metrics to the trace
//!   store, binds the listeners, composes the routers, owns shutdown. `main.rs` sits on top.
//!
//! # Layering
//!
//! A module imports only from its own floor or below, never from a floor above; there is no
//! import cycle between the files of `src/`. Inside a module, a file's children import from it
//! (`use super::*`), never the other way round.
//!
//! | floor | modules |
//! |---|---|
//! | 8 | `main.rs` |
//! | 7 | `app` |
//! | 6 | `ui` |
//! | 5 | `api`, `samplers`, `dashboards` |
//! | 4 | `ingest`, `promql`, `rules`, `spanmetrics`, `proxy`, `alertmanager`, `scrape` |
//! | 3 | `tsdb`, `traces`, `forward`, `auth`, `tls`, `notify` |
//! | 2 | `config`, `telemetry`, `template` |
//! | 1 | `base`, `error` |
//!
//! Two rules keep it so: a lower part that must tell a higher one something offers a seam and
//! `app` wires it (the trace store's `CommitObserver`, each part's `MetricSource`); and a value
//! both sides need lives in the lower module (`config` owns section types, `base` owns `Signal`).
//!
//! # One span's path
//!
//! 1. An SDK posts `ExportTraceServiceRequest` to `:4318/v1/traces` (or gRPC `:4317`).
//! 2. `ingest::http` checks content type and size, inflates gzip with a cap, decodes on a
//!    blocking thread, and calls `Ingest::export_traces`.
//! 3. `export_traces` drops invalid spans (partial success), applies attribute limits, reserves
//!    memory from the budget and sends the batch to the writer thread (and, when forwarding, to
//!    the forward queue on disk).
//! 4. The writer (`traces::writer`) groups everything waiting into one SQLite transaction: chunks
//!    of up to 1024 spans, new operations, dependency counts; it commits (WAL, fsync), registers the
//!    chunks as pending for lookups by trace id, tells its commit observer (span metrics), and only
//!    then acknowledges the export.
//! 5. The indexer thread adds one Tantivy document per span and commits at least every second,
//!    recording the highest chunk id it covers; on restart it catches up from SQLite.
//! 6. `GET /api/traces/{id}` asks the index (plus pending chunks) which chunks hold the trace,
//!    decodes them, and `api::jaeger` renders Jaeger's JSON.
//!
//! # One sample's path
//!
//! 1. An SDK posts `ExportMetricsServiceRequest` to `/v1/metrics` (or gRPC); a scrape target's loop
//!    (`scrape::scrape_loop`) parses an exposition; the host and GPU samplers read the kernel and
//!    NVML. Each builds a `tsdb::Batch`: OTLP through `ingest::metrics::Converter` (names and
//!    labels by the compatibility rules in `ingest::naming`, delta to cumulative), the others
//!    directly in Prometheus's names.
//! 2. `Tsdb::append` hands the batch to the writer thread (`tsdb::append`), which finds or
//!    creates each series in the head (`tsdb::head`), appends the samples (in order, out of order
//!    within the window, or rejected), frames WAL records and, once per group of waiting batches,
//!    writes and fsyncs the WAL (`tsdb::wal`); then the export is acknowledged.
//! 3. When the head spans 1.5 block ranges the writer fences it and the maintenance thread
//!    (`tsdb::maintain`) writes a block (`tsdb::block`), truncates the head, checkpoints the WAL,
//!    compacts and applies retention.
//! 4. `GET /api/v1/query_range` parses the PromQL, and `promql::QueryService` runs it on the
//!    blocking pool: the evaluator calls `Queryable::select` (`tsdb::read`), which merges the
//!    blocks and the head and returns each series' samples in the range.

pub mod alertmanager;
pub mod api;
pub mod app;
pub mod auth;
pub mod base;
pub mod config;
pub mod dashboards;
pub mod error;
pub mod forward;
pub mod ingest;
pub mod logfiles;
pub mod logql;
pub mod notify;
pub mod promql;
pub mod proxy;
pub mod rules;
pub mod samplers;
pub mod scrape;
pub mod spanmetrics;
pub mod telemetry;
pub mod template;
pub mod tls;
pub mod traces;
pub mod tsdb;
pub mod ui;
