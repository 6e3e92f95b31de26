//! The writer thread: owns the one SQLite write connection and commits in groups. Every export
//! waiting when a commit starts rides in it (group commit); each export is answered only after
//! the transaction holding it is durable (WAL fsync), so an acknowledged span or log record
//! survives `kill -9`. After the commit it registers the new chunks as pending, so they can be
//! fetched by trace id at once; the indexer picks them up from SQLite on its own, so a slow index
//! commit never delays an acknowledgement. Retention also runs here, between groups, so no second
//! connection competes for the write lock.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::logs::v1::{LogsData, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, TracesData};
use prost::Message as _;
use rusqlite::{Connection, params};
use tokio::sync::oneshot;

use super::chunk;
use super::deps::{DependencyTracker, Edges};
use super::index::Pending;
use super::{IndexOp, StoreError, model};
use crate::telemetry::Metrics;

/// Spans or log records per chunk: big enough to compress well, small enough that fetching one
/// trace decodes little.
pub const CHUNK_ITEMS: usize = 1024;
/// Exports merged into one transaction at most.
const MAX_GROUP: usize = 256;

pub enum WriteOp {
    Spans {
        data: Vec<ResourceSpans>,
        ack: oneshot::Sender<Result<(), StoreError>>,
    },
    Logs {
        data: Vec<ResourceLogs>,
        /// Read positions of collected files, committed with these records.
        positions: Vec<FilePosition>,
        ack: oneshot::Sender<Result<(), StoreError>>,
    },
}

/// How far a collected log file has been read and stored (`file_positions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePosition {
    /// `device:inode`.
    pub file_id: String,
    pub path: String,
    pub fingerprint: Vec<u8>,
    pub offset: u64,
}

pub struct RetentionPolicy {
    pub max_age: Duration,
    pub max_bytes: u64,
    pub every: Duration,
    pub db_path: std::path::PathBuf,
    pub index_path: std::path::PathBuf,
}

/// Every (service, span name, kind) already in the `operations` table, looked up with borrowed
/// strings so the per-span check allocates nothing.
#[derive(Default)]
pub struct OpSet(std::collections::HashMap<String, std::collections::HashMap<String, Vec<i32>>>);

impl OpSet {
    fn contains(&self, service: &str, name: &str, kind: i32) -> bool {
        self.0
            .get(service)
            .and_then(|names| names.get(name))
            .is_some_and(|kinds| kinds.contains(&kind))
    }

    /// Adds; returns false if it was there already.
    pub fn insert(&mut self, service: &str, name: &str, kind: i32) -> bool {
        if self.contains(service, name, kind) {
            return false;
        }
        self.0
            .entry(service.to_string())
            .or_default()
            .entry(name.to_string())
            .or_default()
            .push(kind);
        true
    }

    fn remove(&mut self, service: &str, name: &str, kind: i32) {
        if let Some(kinds) = self.0.get_mut(service).and_then(|n| n.get_mut(name)) {
            kinds.retain(|k| *k != kind);
        }
    }
}

pub struct Writer {
    pub conn: Connection,
    pub rx: Receiver<WriteOp>,
    pub index_tx: Sender<IndexOp>,
    pub pending: Arc<Pending>,
    /// Committed chunks handed to the indexer (spans encoded, records decoded).
    pub handoff: Arc<super::handoff::Handoff>,
    pub metrics: Arc<Metrics>,
    pub retention: RetentionPolicy,
    pub deps: DependencyTracker,
    pub known_ops: OpSet,
    /// Read only to count the live share of the index's bytes for size retention.
    pub index: Arc<super::index::SearchIndex>,
    /// Told about every committed group of spans (span metrics, when on).
    pub observer: Option<Arc<dyn CommitObserver>>,
}

/// Something told about the spans the store commits (span metrics is the one in use), so the
/// store need not know who listens.
pub trait CommitObserver: Send + Sync {
    /// Sees a group's spans before they are written (the write consumes them) and returns what
    /// to run once the group is committed; it is dropped unrun when the commit fails.
    fn before_commit(&self, spans: &[ResourceSpans]) -> Option<AfterCommit>;
}

/// Work an observer runs after a successful commit.
pub type AfterCommit = Box<dyn FnOnce() + Send>;

/// A chunk ready to insert.
struct NewChunk {
    signal: chunk::Signal,
    min_time: u64,
    max_time: u64,
    items: usize,
    blob: Vec<u8>,
    traces: HashSet<[u8; 16]>,
    handed: super::handoff::Handed,
}

impl Writer {
    pub fn run(mut self) {
        let mut last_retention = Instant::now() - self.retention.every;
        loop {
            let first = match self.rx.recv_timeout(Duration::from_secs(1)) {
                Ok(op) => op,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if last_retention.elapsed() >= self.retention.every {
                        self.enforce_retention();
                        last_retention = Instant::now();
                    }
                    continue;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            };
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match self.rx.try_recv() {
                    Ok(op) => group.push(op),
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            self.commit_group(group);
            if last_retention.elapsed() >= self.retention.every {
                self.enforce_retention();
                last_retention = Instant::now();
            }
        }
        tracing::info!("trace store writer stopped");
    }

    fn commit_group(&mut self, group: Vec<WriteOp>) {
        let started = Instant::now();
        let mut spans = Vec::new();
        let mut logs = Vec::new();
        let mut positions = Vec::new();
        let mut acks = Vec::with_capacity(group.len());
        for op in group {
            match op {
                WriteOp::Spans { data, ack } => {
                    spans.extend(data);
                    acks.push(ack);
                }
                WriteOp::Logs {
                    data,
                    positions: p,
                    ack,
                } => {
                    logs.extend(data);
                    positions.extend(p);
                    acks.push(ack);
                }
            }
        }
        let after_commit = self.observer.as_ref().and_then(|o| o.before_commit(&spans));
        let mut edges = Edges::new();
        let mut new_ops = Vec::new();
        let mut chunks = Vec::new();
        for part in split_spans(spans, CHUNK_ITEMS) {
            chunks.push(self.span_chunk(part, &mut edges, &mut new_ops));
        }
        for part in split_logs(logs, CHUNK_ITEMS) {
            chunks.push(log_chunk(part));
        }
        let result = self.write(&mut chunks, &edges, &new_ops, &positions);
        match result {
            Ok(ids) => {
                for (id, c) in ids.into_iter().zip(chunks) {
                    self.pending.add(id, Arc::new(c.traces));
                    self.handoff.offer(id, c.handed, c.items);
                }
                self.metrics.observe_commit(started.elapsed().as_secs_f64());
                if let Some(deliver) = after_commit {
                    deliver();
                }
                for ack in acks {
                    let _ = ack.send(Ok(()));
                }
            }
            Err(e) => {
                // Not stored: forget them so the next batch that has them inserts them.
                for (service, name, kind) in &new_ops {
                    self.known_ops.remove(service, name, *kind);
                }
                let err = StoreError::from_sqlite(e);
                tracing::error!(error = %err, "trace store commit failed");
                for ack in acks {
                    let _ = ack.send(Err(err.clone()));
                }
            }
        }
    }

    fn span_chunk(
        &mut self,
        resource_spans: Vec<ResourceSpans>,
        edges: &mut Edges,
        new_ops: &mut Vec<(String, String, i32)>,
    ) -> NewChunk {
        let mut min_time = u64::MAX;
        let mut max_time = 0;
        let mut items = 0;
        let mut traces = HashSet::new();
        for rs in &resource_spans {
            let service: Arc<str> = model::service_name(rs.resource.as_ref()).into();
            for ss in &rs.scope_spans {
                for span in &ss.spans {
                    items += 1;
                    let start = or_now(span.start_time_unix_nano);
                    min_time = min_time.min(start);
                    max_time = max_time.max(span.end_time_unix_nano.max(start));
                    let Some(tid) = model::trace_id(&span.trace_id) else {
                        continue;
                    };
                    traces.insert(tid);
                    if self.known_ops.insert(&service, &span.name, span.kind) {
                        new_ops.push((service.to_string(), span.name.clone(), span.kind));
                    }
                    if let Some(sid) = model::span_id(&span.span_id) {
                        let parent = model::span_id(&span.parent_span_id).map(u64::from_be_bytes);
                        self.deps.observe(
                            u128::from_be_bytes(tid),
                            u64::from_be_bytes(sid),
                            parent,
                            &service,
                            span.start_time_unix_nano,
                            edges,
                        );
                    }
                }
            }
        }
        let raw = TracesData { resource_spans }.encode_to_vec();
        let blob = chunk::encode_spans_raw(&raw);
        NewChunk {
            signal: chunk::Signal::Spans,
            min_time: if items == 0 { 0 } else { min_time },
            max_time,
            items,
            blob,
            traces,
            handed: super::handoff::Handed::Spans(raw),
        }
    }

    fn write(
        &mut self,
        chunks: &mut [NewChunk],
        edges: &Edges,
        new_ops: &[(String, String, i32)],
        positions: &[FilePosition],
    ) -> rusqlite::Result<Vec<i64>> {
        let tx = self.conn.transaction()?;
        let mut ids = Vec::with_capacity(chunks.len());
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO chunks (signal, min_time, max_time, items, data) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for c in chunks.iter() {
                insert.execute(params![
                    c.signal as i64,
                    c.min_time as i64,
                    c.max_time as i64,
                    c.items as i64,
                    c.blob
                ])?;
                ids.push(tx.last_insert_rowid());
            }
            let mut op = tx.prepare_cached(
                "INSERT OR IGNORE INTO operations (service, name, kind) VALUES (?1, ?2, ?3)",
            )?;
            for (service, name, kind) in new_ops {
                op.execute(params![service, name, kind])?;
            }
            let mut dep = tx.prepare_cached(
                "INSERT INTO dependency_calls (minute, parent, child, calls) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (minute, parent, child) DO UPDATE SET calls = calls + excluded.calls",
            )?;
            for ((minute, parent, child), calls) in edges {
                dep.execute(params![minute, &**parent, &**child, *calls as i64])?;
            }
            if !positions.is_empty() {
                let mut pos = tx.prepare_cached(
                    "INSERT INTO file_positions (file_id, path, fingerprint, offset, updated)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (file_id) DO UPDATE SET path = excluded.path,
                        fingerprint = excluded.fingerprint, offset = excluded.offset,
                        updated = excluded.updated",
                )?;
                let now = crate::base::clock::now_ns() as i64;
                for p in positions {
                    pos.execute(params![
                        p.file_id,
                        p.path,
                        p.fingerprint,
                        p.offset as i64,
                        now
                    ])?;
                }
            }
        }
        tx.commit()?;
        Ok(ids)
    }

    /// Deletes whole chunks older than the age limit, then the oldest chunks while the stores are
    /// over the size limit, and gives the pages back to the file system.
    fn enforce_retention(&mut self) {
        let r = &self.retention;
        let db_bytes = super::db::disk_bytes(&r.db_path);
        let index_bytes = crate::base::files::dir_bytes(&r.index_path);
        // Deleted documents keep their bytes until Tantivy merges their segments; counting them
        // would make one pass over the limit delete everything. Count the live share only.
        let index_live_bytes = (index_bytes as f64 * self.index.live_fraction()) as u64;
        self.metrics
            .database_bytes
            .store(db_bytes, std::sync::atomic::Ordering::Relaxed);
        self.metrics
            .index_bytes
            .store(index_bytes, std::sync::atomic::Ordering::Relaxed);
        let now = crate::base::clock::now();
        let cutoff = now.saturating_sub(r.max_age).as_nanos() as i64;
        let total = db_bytes + index_live_bytes;
        let result = (|| -> rusqlite::Result<Vec<i64>> {
            let mut doomed: Vec<i64> = {
                let mut stmt = self
                    .conn
                    .prepare("SELECT id FROM chunks WHERE max_time < ?1 LIMIT 10000")?;
                stmt.query_map([cutoff], |row| row.get(0))?
                    .collect::<rusqlite::Result<_>>()?
            };
            if total > r.max_bytes {
                // Remove the share of items that brings the total under 90% of the limit.
                let (items, count): (i64, i64) = self.conn.query_row(
                    "SELECT COALESCE(SUM(items), 0), COUNT(*) FROM chunks",
                    [],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )?;
                let excess = total - r.max_bytes * 9 / 10;
                let target = (items as f64 * excess as f64 / total as f64).ceil() as i64;
                let mut stmt = self
                    .conn
                    .prepare("SELECT id, items FROM chunks ORDER BY min_time, id LIMIT ?1")?;
                let mut removed = 0i64;
                let rows = stmt.query_map([count], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
                })?;
                for row in rows {
                    let (id, n) = row?;
                    if removed >= target {
                        break;
                    }
                    removed += n;
                    doomed.push(id);
                }
            }
            doomed.sort_unstable();
            doomed.dedup();
            if doomed.is_empty() {
                // Pages freed earlier go back once no reader holds an old snapshot.
                let free: i64 = self
                    .conn
                    .pragma_query_value(None, "freelist_count", |r| r.get(0))?;
                if free > 0 {
                    self.conn.execute_batch(
                        "PRAGMA incremental_vacuum; PRAGMA wal_checkpoint(TRUNCATE);",
                    )?;
                }
                return Ok(doomed);
            }
            let tx = self.conn.transaction()?;
            {
                let mut del = tx.prepare_cached("DELETE FROM chunks WHERE id = ?1")?;
                for id in &doomed {
                    del.execute([id])?;
                }
                tx.execute(
                    "DELETE FROM dependency_calls WHERE minute < ?1",
                    [cutoff / 60_000_000_000],
                )?;
            }
            tx.commit()?;
            self.conn
                .execute_batch("PRAGMA incremental_vacuum; PRAGMA wal_checkpoint(TRUNCATE);")?;
            Ok(doomed)
        })();
        match result {
            Ok(doomed) if !doomed.is_empty() => {
                tracing::info!(chunks = doomed.len(), "retention deleted old data");
                self.metrics
                    .retention_deleted_chunks
                    .fetch_add(doomed.len() as u64, std::sync::atomic::Ordering::Relaxed);
                let _ = self.index_tx.send(IndexOp::Delete(doomed));
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention failed"),
        }
    }
}

fn log_chunk(resource_logs: Vec<ResourceLogs>) -> NewChunk {
    let mut min_time = u64::MAX;
    let mut max_time = 0;
    let mut items = 0;
    for rl in &resource_logs {
        for sl in &rl.scope_logs {
            for rec in &sl.log_records {
                items += 1;
                let t = or_now(if rec.time_unix_nano != 0 {
                    rec.time_unix_nano
                } else {
                    rec.observed_time_unix_nano
                });
                min_time = min_time.min(t);
                max_time = max_time.max(t);
            }
        }
    }
    let data = LogsData { resource_logs };
    NewChunk {
        signal: chunk::Signal::Logs,
        min_time: if items == 0 { 0 } else { min_time },
        max_time,
        items,
        blob: chunk::encode_logs(&data),
        traces: HashSet::new(),
        handed: super::handoff::Handed::Logs(data),
    }
}

/// A missing (zero) timestamp counts as now for a chunk's time range, so retention by age does
/// not delete data from a client that left times unset the moment it arrives.
fn or_now(t: u64) -> u64 {
    if t != 0 {
        return t;
    }
    crate::base::clock::now_ns()
}

/// Splits resource spans into parts of at most `max` spans, keeping resource and scope with
/// each piece.
pub fn split_spans(input: Vec<ResourceSpans>, max: usize) -> Vec<Vec<ResourceSpans>> {
    let mut parts: Vec<Vec<ResourceSpans>> = Vec::new();
    let mut current: Vec<ResourceSpans> = Vec::new();
    let mut count = 0;
    for rs in input {
        let mut rs_out = ResourceSpans {
            resource: rs.resource.clone(),
            schema_url: rs.schema_url.clone(),
            scope_spans: Vec::new(),
        };
        for ss in rs.scope_spans {
            let mut spans = ss.spans.into_iter().peekable();
            while spans.peek().is_some() {
                let room = max - count;
                let taken: Vec<_> = spans.by_ref().take(room).collect();
                count += taken.len();
                rs_out.scope_spans.push(ScopeSpans {
                    scope: ss.scope.clone(),
                    schema_url: ss.schema_url.clone(),
                    spans: taken,
                });
                if count == max {
                    let fresh = ResourceSpans {
                        resource: rs_out.resource.clone(),
                        schema_url: rs_out.schema_url.clone(),
                        scope_spans: Vec::new(),
                    };
                    current.push(std::mem::replace(&mut rs_out, fresh));
                    parts.push(std::mem::take(&mut current));
                    count = 0;
                }
            }
        }
        if !rs_out.scope_spans.is_empty() {
            current.push(rs_out);
        }
    }
    if !current.is_empty() {
        parts.push(current);
    }
    parts
}

/// The same split for log records.
pub fn split_logs(input: Vec<ResourceLogs>, max: usize) -> Vec<Vec<ResourceLogs>> {
    let mut parts: Vec<Vec<ResourceLogs>> = Vec::new();
    let mut current: Vec<ResourceLogs> = Vec::new();
    let mut count = 0;
    for rl in input {
        let mut rl_out = ResourceLogs {
            resource: rl.resource.clone(),
            schema_url: rl.schema_url.clone(),
            scope_logs: Vec::new(),
        };
        for sl in rl.scope_logs {
            let mut recs = sl.log_records.into_iter().peekable();
            while recs.peek().is_some() {
                let room = max - count;
                let taken: Vec<_> = recs.by_ref().take(room).collect();
                count += taken.len();
                rl_out.scope_logs.push(ScopeLogs {
                    scope: sl.scope.clone(),
                    schema_url: sl.schema_url.clone(),
                    log_records: taken,
                });
                if count == max {
                    let fresh = ResourceLogs {
                        resource: rl_out.resource.clone(),
                        schema_url: rl_out.schema_url.clone(),
                        scope_logs: Vec::new(),
                    };
                    current.push(std::mem::replace(&mut rl_out, fresh));
                    parts.push(std::mem::take(&mut current));
                    count = 0;
                }
            }
        }
        if !rl_out.scope_logs.is_empty() {
            current.push(rl_out);
        }
    }
    if !current.is_empty() {
        parts.push(current);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::Span;

    #[test]
    fn split_keeps_every_span_and_caps_parts() {
        let rs = |n: usize| ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: (0..n)
                    .map(|i| Span {
                        name: i.to_string(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let parts = split_spans(vec![rs(2500), rs(10), rs(0)], 1024);
        let sizes: Vec<usize> = parts
            .iter()
            .map(|p| {
                p.iter()
                    .flat_map(|r| &r.scope_spans)
                    .map(|s| s.spans.len())
                    .sum()
            })
            .collect();
        assert_eq!(sizes, vec![1024, 1024, 462]);
    }
}
