//! The span and log store: SQLite (`traces.db`) is the source of truth, Tantivy (`index/`) makes
//! it searchable, and the service map comes from dependency counts kept at ingest.
//!
//! Owns: the writer thread (group commit, retention), the indexer thread (timer commits, catch-up
//! on start), reads (traces by id, searches, services, operations, dependencies, logs). Does not
//! own: decoding OTLP (that is `ingest`), shaping answers for a protocol (that is `api`), or
//! knowing who listens to commits: a [`CommitObserver`] is told about each committed group of
//! spans (`app.rs` registers span metrics). `params.rs` parses search parameters for the API and
//! the UI alike.

pub mod chunk;
pub mod db;
pub mod deps;
mod handoff;
pub mod index;
pub mod logscan;
pub mod model;
pub mod params;
pub mod tagquery;
pub mod wire;
pub mod writer;

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};
use prost::Message as _;
use tokio::sync::oneshot;

use crate::config::TracesConfig;
use crate::error::ErrorCode;
use crate::telemetry::Metrics;
use index::{DocBuilder, Pending, SearchIndex};
pub use index::{LEVEL_NAMES, LEVELS, LogSearch, TraceSearch, level_class};
pub use writer::{AfterCommit, CommitObserver, FilePosition};
use writer::{RetentionPolicy, WriteOp, Writer};

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("disk full: the trace store cannot take writes until space is freed")]
    DiskFull,
    #[error("trace store unavailable: {0}")]
    Unavailable(String),
    #[error("trace store read failed: {0}")]
    Read(String),
    #[error("{0}")]
    BadQuery(String),
}

impl StoreError {
    fn from_sqlite(e: rusqlite::Error) -> StoreError {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => StoreError::DiskFull,
            _ => StoreError::Unavailable(e.to_string()),
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            StoreError::DiskFull | StoreError::Unavailable(_) => ErrorCode::Unavailable,
            StoreError::Read(_) => ErrorCode::Internal,
            StoreError::BadQuery(_) => ErrorCode::BadRequest,
        }
    }
}

impl From<index::IndexError> for StoreError {
    fn from(e: index::IndexError) -> Self {
        match e {
            index::IndexError::BadQuery(m) => StoreError::BadQuery(m),
            other => StoreError::Read(other.to_string()),
        }
    }
}

/// Work for the indexer thread besides new chunks, which it reads from SQLite itself.
pub enum IndexOp {
    /// Chunks retention deleted from SQLite.
    Delete(Vec<i64>),
}

/// Chunks stored but not yet searchable past which exports are refused with a retryable error:
/// the index must stay close behind the store. 512 chunks is about four seconds of exports of
/// 512 spans at 60,000 spans/s, room for a commit and a merge to pass without refusing anyone
/// (at 128, one slow commit at that rate refused exports; issue 25). Trace-by-id sees chunks
/// not yet indexed all along.
pub const MAX_INDEX_LAG_CHUNKS: usize = 512;

/// One stored span with the resource and scope it came with.
#[derive(Debug, Clone)]
pub struct StoredSpan {
    pub resource: Arc<Option<Resource>>,
    pub scope: Arc<Option<InstrumentationScope>>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct StoredLog {
    pub resource: Arc<Option<Resource>>,
    pub scope: Arc<Option<InstrumentationScope>>,
    pub record: LogRecord,
}

struct Inner {
    writer_tx: parking_lot::Mutex<Option<Sender<WriteOp>>>,
    reads: db::ReadPool,
    index: Arc<SearchIndex>,
    pending: Arc<Pending>,
}

/// The handle the rest of the program holds; cheap to clone.
#[derive(Clone)]
pub struct TraceStore {
    inner: Arc<Inner>,
}

/// Threads to join at shutdown, after the last [`TraceStore`] handle stopped writing.
pub struct StoreThreads {
    writer: std::thread::JoinHandle<()>,
    indexer: std::thread::JoinHandle<()>,
}

impl StoreThreads {
    pub fn join(self) {
        let _ = self.writer.join();
        let _ = self.indexer.join();
    }
}

impl TraceStore {
    /// Opens (or creates) the stores under `data_dir`, brings the index up to date with SQLite,
    /// and starts the writer and indexer threads.
    pub fn open(
        data_dir: &std::path::Path,
        cfg: &TracesConfig,
        metrics: Arc<Metrics>,
        observer: Option<Arc<dyn CommitObserver>>,
    ) -> anyhow::Result<(TraceStore, StoreThreads)> {
        std::fs::create_dir_all(data_dir)?;
        let db_path = data_dir.join("traces.db");
        let index_path = data_dir.join("index");
        let conn = db::open_writer(&db_path)?;
        let (search, mut index_writer) = SearchIndex::open(&index_path)?;
        let search = Arc::new(search);
        let builder = DocBuilder {
            fields: search.fields(),
            max_value_len: cfg.max_indexed_value_length,
            resources: Default::default(),
        };
        let pending = Arc::new(Pending::default());
        let watermark = catch_up(&conn, &search, &mut index_writer, &builder, &pending)?;
        let mut known_ops = writer::OpSet::default();
        {
            let mut stmt = conn.prepare("SELECT service, name, kind FROM operations")?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                known_ops.insert(&r.get::<_, String>(0)?, &r.get::<_, String>(1)?, r.get(2)?);
            }
        }
        let (writer_tx, writer_rx) = std::sync::mpsc::channel();
        // Only retention's deletions travel here; new chunks are read from SQLite by the indexer
        // (or taken decoded from the hand-off).
        let (index_tx, index_rx) = std::sync::mpsc::channel();
        let handoff = Arc::new(handoff::Handoff::default());
        let writer = Writer {
            conn,
            rx: writer_rx,
            index_tx,
            pending: pending.clone(),
            handoff: handoff.clone(),
            metrics: metrics.clone(),
            retention: RetentionPolicy {
                max_age: cfg.retention,
                max_bytes: cfg.max_size_bytes,
                every: cfg.retention_check_interval,
                db_path: db_path.clone(),
                index_path: index_path.clone(),
            },
            deps: Default::default(),
            known_ops,
            index: search.clone(),
            observer,
        };
        let inner = Arc::new(Inner {
            writer_tx: parking_lot::Mutex::new(Some(writer_tx)),
            reads: db::ReadPool::new(db_path),
            index: search,
            pending: pending.clone(),
        });
        let writer = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run())?;
        let idx_inner = inner.clone();
        let interval = cfg.index_commit_interval;
        let index_conn = db::open_reader(&idx_inner.reads_path())?;
        let indexer = std::thread::Builder::new()
            .name("store-indexer".into())
            .spawn(move || {
                run_indexer(
                    index_conn,
                    &idx_inner.index,
                    index_writer,
                    builder,
                    &handoff,
                    index_rx,
                    &idx_inner.pending,
                    watermark,
                    interval,
                    &metrics,
                )
            })?;
        Ok((TraceStore { inner }, StoreThreads { writer, indexer }))
    }

    /// Stops accepting writes; the writer drains what it has and the threads finish.
    pub fn close(&self) {
        self.inner.writer_tx.lock().take();
    }

    async fn submit(
        &self,
        op: WriteOp,
        rx: oneshot::Receiver<Result<(), StoreError>>,
    ) -> Result<(), StoreError> {
        {
            let guard = self.inner.writer_tx.lock();
            let tx = guard
                .as_ref()
                .ok_or_else(|| StoreError::Unavailable("shutting down".into()))?;
            tx.send(op)
                .map_err(|_| StoreError::Unavailable("writer stopped".into()))?;
        }
        rx.await
            .map_err(|_| StoreError::Unavailable("writer stopped".into()))?
    }

    /// Stores spans; returns once they are durable.
    pub async fn append_spans(&self, data: Vec<ResourceSpans>) -> Result<(), StoreError> {
        let (ack, rx) = oneshot::channel();
        self.submit(WriteOp::Spans { data, ack }, rx).await
    }

    /// Stores log records; returns once they are durable.
    pub async fn append_logs(&self, data: Vec<ResourceLogs>) -> Result<(), StoreError> {
        let (ack, rx) = oneshot::channel();
        self.submit(
            WriteOp::Logs {
                data,
                positions: Vec::new(),
                ack,
            },
            rx,
        )
        .await
    }

    /// Stores log records read from files together with the files' new read positions, in one
    /// transaction: after a crash either both are there or neither.
    pub async fn append_logs_at(
        &self,
        data: Vec<ResourceLogs>,
        positions: Vec<FilePosition>,
    ) -> Result<(), StoreError> {
        let (ack, rx) = oneshot::channel();
        self.submit(
            WriteOp::Logs {
                data,
                positions,
                ack,
            },
            rx,
        )
        .await
    }

    /// Every stored file read position.
    pub async fn file_positions(&self) -> Result<Vec<FilePosition>, StoreError> {
        self.blocking(|inner| {
            inner
                .reads
                .with(|conn| {
                    let mut stmt = conn
                        .prepare("SELECT file_id, path, fingerprint, offset FROM file_positions")?;
                    let rows = stmt
                        .query_map([], |r| {
                            Ok(FilePosition {
                                file_id: r.get(0)?,
                                path: r.get(1)?,
                                fingerprint: r.get(2)?,
                                offset: r.get::<_, i64>(3)? as u64,
                            })
                        })?
                        .collect::<rusqlite::Result<Vec<_>>>()?;
                    Ok(rows)
                })
                .map_err(read_err)
        })
        .await
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| StoreError::Read(e.to_string()))?
    }

    pub async fn services(&self) -> Result<Vec<String>, StoreError> {
        self.blocking(|inner| {
            inner
                .reads
                .with(|c| {
                    let mut stmt = c.prepare_cached(
                        "SELECT DISTINCT service FROM operations ORDER BY service",
                    )?;
                    stmt.query_map([], |r| r.get(0))?.collect()
                })
                .map_err(read_err)
        })
        .await
    }

    /// `(name, kind)` of every operation of `service`, optionally of one kind.
    pub async fn operations(
        &self,
        service: String,
        kind: Option<i32>,
    ) -> Result<Vec<(String, i32)>, StoreError> {
        self.blocking(move |inner| {
            inner
                .reads
                .with(|c| {
                    let mut stmt = c.prepare_cached(
                        "SELECT name, kind FROM operations WHERE service = ?1 AND (?2 IS NULL OR kind = ?2) ORDER BY name, kind",
                    )?;
                    stmt.query_map(rusqlite::params![service, kind], |r| Ok((r.get(0)?, r.get(1)?)))?
                        .collect()
                })
                .map_err(read_err)
        })
        .await
    }

    /// Every stored span of a trace, in storage order; empty if the trace is unknown.
    pub async fn trace(&self, id: [u8; 16]) -> Result<Vec<StoredSpan>, StoreError> {
        self.blocking(move |inner| inner.trace(&id)).await
    }

    /// Whole traces for a search, newest first.
    pub async fn find_traces(
        &self,
        search: TraceSearch,
    ) -> Result<Vec<Vec<StoredSpan>>, StoreError> {
        self.blocking(move |inner| {
            let ids = inner.index.search_traces(&search)?;
            Ok(inner
                .traces(&ids)?
                .into_iter()
                .filter(|spans| !spans.is_empty())
                .collect())
        })
        .await
    }

    /// `(parent, child, calls)` for calls whose child span started in `[start_ns, end_ns]`.
    pub async fn dependencies(
        &self,
        start_ns: u64,
        end_ns: u64,
    ) -> Result<Vec<(String, String, u64)>, StoreError> {
        self.blocking(move |inner| {
            inner
                .reads
                .with(|c| {
                    let mut stmt = c.prepare_cached(
                        "SELECT parent, child, SUM(calls) FROM dependency_calls
                         WHERE minute >= ?1 AND minute <= ?2 GROUP BY parent, child ORDER BY parent, child",
                    )?;
                    stmt.query_map(
                        [(start_ns / 60_000_000_000) as i64, (end_ns / 60_000_000_000) as i64],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64)),
                    )?
                    .collect()
                })
                .map_err(read_err)
        })
        .await
    }

    pub async fn find_logs(&self, search: LogSearch) -> Result<Vec<StoredLog>, StoreError> {
        self.blocking(move |inner| {
            let hits = inner.index.search_logs(&search)?;
            let mut chunks: Vec<i64> = hits.iter().map(|(c, _)| *c).collect();
            chunks.sort_unstable();
            chunks.dedup();
            let mut decoded = std::collections::HashMap::new();
            for (id, blob) in inner.load_chunks(&chunks)? {
                let data =
                    chunk::decode_logs(&blob).map_err(|e| StoreError::Read(e.to_string()))?;
                let mut flat = Vec::new();
                for rl in data.resource_logs {
                    let resource = Arc::new(rl.resource);
                    for sl in rl.scope_logs {
                        let scope = Arc::new(sl.scope);
                        for record in sl.log_records {
                            flat.push(StoredLog {
                                resource: resource.clone(),
                                scope: scope.clone(),
                                record,
                            });
                        }
                    }
                }
                decoded.insert(id, flat);
            }
            Ok(hits
                .into_iter()
                .filter_map(|(c, ord)| decoded.get(&c).and_then(|v| v.get(ord as usize)).cloned())
                .collect())
        })
        .await
    }

    /// Log records matching `search` per time bucket (`buckets` of `step_us` from `start_us`) and
    /// severity class ([`LEVEL_NAMES`]), counted in the index: the Logs page's volume histogram.
    pub async fn log_volume(
        &self,
        search: LogSearch,
        start_us: u64,
        step_us: u64,
        buckets: usize,
    ) -> Result<Vec<[u64; LEVELS]>, StoreError> {
        self.blocking(move |inner| {
            Ok(inner
                .index
                .log_volume(&search, start_us, step_us, buckets)?)
        })
        .await
    }

    /// The newest log chunk id (0 when none): live tail reads what comes after it.
    pub async fn last_log_chunk(&self) -> Result<i64, StoreError> {
        self.blocking(|inner| {
            inner
                .reads
                .with(|conn| {
                    conn.query_row(
                        "SELECT COALESCE(MAX(id), 0) FROM chunks WHERE signal = 2",
                        [],
                        |r| r.get(0),
                    )
                })
                .map_err(read_err)
        })
        .await
    }

    /// Runs a LogQL log query over only the chunks with `after < id <= through` (live tail).
    pub async fn logql_chunks(
        &self,
        q: crate::logql::Query,
        limits: crate::logql::Limits,
        after: i64,
        through: i64,
    ) -> Result<(crate::logql::Answer, crate::logql::Stats), crate::logql::QueryError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            inner
                .reads
                .with(|conn| {
                    Ok(crate::logql::eval::run(
                        &q,
                        &logscan::LogScan {
                            conn,
                            ids: Some((after, through)),
                        },
                        &limits,
                    ))
                })
                .map_err(|e| crate::logql::QueryError::Store(e.to_string()))?
        })
        .await
        .map_err(|e| crate::logql::QueryError::Store(e.to_string()))?
    }

    /// Runs `f` over the stored logs as a LogQL source (on a blocking thread): Logs
    /// Drilldown's detected labels and fields read this way.
    pub async fn read_logs<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn crate::logql::LogSource) -> T + Send + 'static,
    ) -> Result<T, StoreError> {
        self.blocking(move |inner| {
            inner
                .reads
                .with(|conn| Ok(f(&logscan::LogScan { conn, ids: None })))
                .map_err(read_err)
        })
        .await
    }

    /// Runs a LogQL query over the stored logs (on a blocking thread).
    pub async fn logql(
        &self,
        q: crate::logql::Query,
        limits: crate::logql::Limits,
    ) -> Result<(crate::logql::Answer, crate::logql::Stats), crate::logql::QueryError> {
        self.logql_chunks(q, limits, i64::MIN, i64::MAX).await
    }

    /// Visits the stored log entries in `[start_ns, end_ns)` of the streams `matchers` select
    /// (on a blocking thread): Loki's `/labels`, `/series` and index statistics read this way.
    pub async fn log_entries<T: Send + 'static>(
        &self,
        start_ns: i64,
        end_ns: i64,
        matchers: Vec<crate::logql::Matcher>,
        init: T,
        mut visit: impl FnMut(&mut T, &crate::logql::Labels, &crate::logql::Entry<'_>) + Send + 'static,
    ) -> Result<T, StoreError> {
        use crate::logql::LogSource as _;
        self.blocking(move |inner| {
            let mut acc = init;
            inner
                .reads
                .with(|conn| {
                    Ok(logscan::LogScan { conn, ids: None }.scan(
                        start_ns,
                        end_ns,
                        &matchers,
                        &mut |l, e| {
                            visit(&mut acc, l, e);
                            true
                        },
                    ))
                })
                .map_err(read_err)?
                .map_err(StoreError::Read)?;
            Ok(acc)
        })
        .await
    }

    /// Whether the stores are open and taking writes.
    pub fn ready(&self) -> bool {
        self.inner.writer_tx.lock().is_some()
    }

    /// Stored chunks not yet searchable.
    pub fn index_lag_chunks(&self) -> usize {
        self.inner.pending.len()
    }
}

/// A damaged chunk met while reading a trace back.
struct ReadError(String);

impl From<wire::WireError> for ReadError {
    fn from(e: wire::WireError) -> Self {
        ReadError(e.to_string())
    }
}

impl From<prost::DecodeError> for ReadError {
    fn from(e: prost::DecodeError) -> Self {
        ReadError(format!("chunk protobuf decode failed: {e}"))
    }
}

fn read_err(e: rusqlite::Error) -> StoreError {
    StoreError::Read(e.to_string())
}

impl Inner {
    fn reads_path(&self) -> PathBuf {
        self.reads.path().to_path_buf()
    }

    fn load_chunks(&self, ids: &[i64]) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        self.reads
            .with(|c| {
                let mut stmt = c.prepare_cached("SELECT data FROM chunks WHERE id = ?1")?;
                let mut out = Vec::with_capacity(ids.len());
                for id in ids {
                    if let Some(blob) = stmt
                        .query_row([id], |r| r.get::<_, Vec<u8>>(0))
                        .map(Some)
                        .or_else(|e| match e {
                        rusqlite::Error::QueryReturnedNoRows => Ok(None),
                        e => Err(e),
                    })? {
                        out.push((*id, blob));
                    }
                }
                Ok(out)
            })
            .map_err(read_err)
    }

    fn trace(&self, id: &[u8; 16]) -> Result<Vec<StoredSpan>, StoreError> {
        Ok(self.traces(&[*id])?.pop().unwrap_or_default())
    }

    /// The stored spans of each trace in `ids` (same order; empty where unknown). Each chunk
    /// is read and decoded once, however many of the traces it holds.
    fn traces(&self, ids: &[[u8; 16]]) -> Result<Vec<Vec<StoredSpan>>, StoreError> {
        let mut chunks = Vec::new();
        for id in ids {
            chunks.extend(self.index.chunks_for_trace(id)?);
            chunks.extend(self.pending.chunks_with(id));
        }
        chunks.sort_unstable();
        chunks.dedup();
        let slot: std::collections::HashMap<&[u8], usize> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_slice(), i))
            .collect();
        let mut out: Vec<Vec<StoredSpan>> = vec![Vec::new(); ids.len()];
        let mut seen: Vec<HashSet<Vec<u8>>> = vec![HashSet::new(); ids.len()];
        for (_, blob) in self.load_chunks(&chunks)? {
            let raw = chunk::inflate_spans(&blob).map_err(|e| StoreError::Read(e.to_string()))?;
            // Only the spans of the wanted traces are decoded (issue 25: a chunk holds 512
            // spans of many traces), with their resource and scope decoded once per chunk.
            let mut resources: HashMap<usize, Arc<Option<Resource>>> = HashMap::new();
            let mut scopes: HashMap<usize, Arc<Option<InstrumentationScope>>> = HashMap::new();
            wire::for_each_span(&raw, |place, raw_span| -> Result<(), ReadError> {
                let Some(&i) = slot.get(wire::trace_id(raw_span)?) else {
                    return Ok(());
                };
                let span = Span::decode(raw_span)?;
                // A retried export may store a span twice; show it once.
                if !seen[i].insert(span.span_id.clone()) {
                    return Ok(());
                }
                let resource = match resources.entry(place.resource_ord) {
                    Entry::Occupied(e) => e.get().clone(),
                    Entry::Vacant(e) => e
                        .insert(Arc::new(place.resource.map(Resource::decode).transpose()?))
                        .clone(),
                };
                let scope = match scopes.entry(place.scope_ord) {
                    Entry::Occupied(e) => e.get().clone(),
                    Entry::Vacant(e) => e
                        .insert(Arc::new(
                            place.scope.map(InstrumentationScope::decode).transpose()?,
                        ))
                        .clone(),
                };
                out[i].push(StoredSpan {
                    resource,
                    scope,
                    span,
                });
                Ok(())
            })
            .map_err(|e| StoreError::Read(e.0))?;
        }
        Ok(out)
    }
}

/// Indexes chunks SQLite has past `after`, in id order, until none is left or `until` passes;
/// returns the id of the last chunk indexed (or `after`).
fn index_new_chunks(
    conn: &rusqlite::Connection,
    writer: &tantivy::IndexWriter,
    builder: &DocBuilder,
    handoff: &handoff::Handoff,
    mut after: i64,
    until: Option<Instant>,
) -> anyhow::Result<i64> {
    use rusqlite::OptionalExtension as _;
    let mut ids =
        conn.prepare_cached("SELECT id, signal FROM chunks WHERE id > ?1 ORDER BY id LIMIT 16")?;
    let mut blob_of = conn.prepare_cached("SELECT data FROM chunks WHERE id = ?1")?;
    loop {
        let rows: Vec<(i64, i64)> = ids
            .query_map([after], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        if rows.is_empty() {
            return Ok(after);
        }
        for (id, signal) in rows {
            // The writer's copy (spans encoded, records decoded) when it is still there; SQLite
            // otherwise.
            match handoff.take(id) {
                Some(handoff::Handed::Spans(raw)) => {
                    if let Err(e) = builder.add_spans(writer, id, &raw)? {
                        tracing::error!(chunk = id, error = %e, "damaged span chunk not fully indexed");
                    }
                    after = id;
                    continue;
                }
                Some(handoff::Handed::Logs(d)) => {
                    builder.add_logs(writer, id, &d)?;
                    after = id;
                    continue;
                }
                None => {}
            }
            let blob: Option<Vec<u8>> = blob_of.query_row([id], |r| r.get(0)).optional()?;
            let Some(blob) = blob else {
                // Deleted by retention since the id was read.
                after = id;
                continue;
            };
            match chunk::Signal::from_i64(signal) {
                Some(chunk::Signal::Spans) => match chunk::inflate_spans(&blob) {
                    Ok(raw) => {
                        if let Err(e) = builder.add_spans(writer, id, &raw)? {
                            tracing::error!(chunk = id, error = %e, "damaged span chunk not fully indexed");
                        }
                    }
                    Err(e) => {
                        tracing::error!(chunk = id, error = %e, "unreadable span chunk not indexed")
                    }
                },
                Some(chunk::Signal::Logs) => match chunk::decode_logs(&blob) {
                    Ok(d) => builder.add_logs(writer, id, &d)?,
                    Err(e) => {
                        tracing::error!(chunk = id, error = %e, "unreadable log chunk not indexed")
                    }
                },
                None => tracing::error!(chunk = id, signal, "chunk of unknown signal not indexed"),
            }
            after = id;
        }
        if until.is_some_and(|u| Instant::now() >= u) {
            return Ok(after);
        }
    }
}

/// Brings the index up to date with SQLite before anything is served; returns the watermark.
fn catch_up(
    conn: &rusqlite::Connection,
    search: &SearchIndex,
    writer: &mut tantivy::IndexWriter,
    builder: &DocBuilder,
    pending: &Pending,
) -> anyhow::Result<i64> {
    let started = Instant::now();
    let from = search.watermark();
    let watermark = index_new_chunks(
        conn,
        writer,
        builder,
        &handoff::Handoff::default(),
        from,
        None,
    )?;
    // Retention may have deleted chunks the index still lists (a crash between the two).
    let min_id: Option<i64> = conn.query_row("SELECT MIN(id) FROM chunks", [], |r| r.get(0))?;
    if let Some(min_id) = min_id {
        let q = tantivy::query::RangeQuery::new(
            std::ops::Bound::Unbounded,
            std::ops::Bound::Excluded(tantivy::Term::from_field_u64(
                search.fields_chunk(),
                min_id as u64,
            )),
        );
        writer.delete_query(Box::new(q))?;
    }
    search.commit(writer, watermark, pending)?;
    if watermark > from {
        tracing::info!(
            chunks = watermark - from,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "search index caught up with the store"
        );
    }
    Ok(watermark)
}

/// The indexer thread: tails SQLite for new chunks, applies retention's deletions, and commits
/// at most `interval` apart. Ends (after a last commit) when the writer has stopped.
///
/// Any indexing failure (a full disk kills Tantivy's writer for good) drops the writer and what
/// it held; a fresh writer is opened as soon as one can be, and indexing resumes from the last
/// committed watermark. SQLite still has every chunk, so nothing stays unsearchable.
#[allow(clippy::too_many_arguments)]
fn run_indexer(
    conn: rusqlite::Connection,
    search: &SearchIndex,
    writer: tantivy::IndexWriter,
    builder: DocBuilder,
    handoff: &handoff::Handoff,
    rx: Receiver<IndexOp>,
    pending: &Pending,
    mut watermark: i64,
    interval: Duration,
    metrics: &Metrics,
) {
    let poll = interval.min(Duration::from_millis(50));
    let mut writer = Some(writer);
    let mut dirty = false;
    let mut last_commit = Instant::now();
    let mut last_reopen_try = Instant::now();
    loop {
        let stop = match rx.recv_timeout(poll) {
            Ok(IndexOp::Delete(chunks)) => {
                if let Some(w) = &writer {
                    for c in chunks {
                        builder.delete_chunk(w, c);
                    }
                    dirty = true;
                }
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        if writer.is_none() && (stop || last_reopen_try.elapsed() >= Duration::from_secs(1)) {
            last_reopen_try = Instant::now();
            match search.new_writer() {
                Ok(w) => {
                    watermark = search.watermark();
                    tracing::info!(
                        watermark,
                        "search index writer reopened; re-indexing from the last commit"
                    );
                    writer = Some(w);
                }
                Err(e) => tracing::warn!(error = %e, "search index writer cannot reopen yet"),
            }
        }
        let mut failed = false;
        if let Some(w) = &mut writer {
            let until = (!stop).then(|| last_commit + interval);
            match index_new_chunks(&conn, w, &builder, handoff, watermark, until) {
                Ok(next) => {
                    dirty |= next != watermark;
                    watermark = next;
                }
                Err(e) => {
                    tracing::error!(error = %e, "indexing new chunks failed");
                    failed = true;
                }
            }
            if !failed && dirty && (stop || last_commit.elapsed() >= interval) {
                match search.commit(w, watermark, pending) {
                    Ok(()) => dirty = false,
                    Err(e) => {
                        tracing::error!(error = %e, "search index commit failed");
                        failed = true;
                    }
                }
                last_commit = Instant::now();
            } else if last_commit.elapsed() >= interval {
                last_commit = Instant::now();
            }
        }
        if failed {
            // Dropping the writer releases its lock; the next pass opens a new one. Resource
            // documents it held uncommitted are gone with it: index them again when met.
            writer = None;
            builder.resources.lock().clear();
            dirty = false;
            last_reopen_try = Instant::now();
        }
        metrics
            .index_lag_chunks
            .store(pending.len() as u64, std::sync::atomic::Ordering::Relaxed);
        if stop {
            break;
        }
    }
    if let Some(w) = writer
        && let Err(e) = w.wait_merging_threads()
    {
        tracing::warn!(error = %e, "search index merge did not finish");
    }
    tracing::info!("search indexer stopped");
}
