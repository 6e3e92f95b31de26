//! The embedded time-series store. A sample's path: [`Tsdb::append`] hands a [`Batch`] to the
//! writer thread, which resolves each label set to a series id in the [`head::Head`] (creating
//! series up to the limit), applies the samples (in order into the open chunk, out of order into
//! the series' out-of-order buffer within the window, duplicates as Prometheus does), frames them
//! as WAL records and, once for every batch waiting at that moment, writes and fsyncs the WAL
//! (`wal.rs`) before the batches are acknowledged. When the head spans 1.5 block ranges the
//! writer starts a cut: in-order samples before the boundary and every out-of-order sample go
//! into an immutable block (`block.rs`) written by the maintenance thread, which then truncates
//! the head, checkpoints the WAL, compacts small blocks into larger ones and applies retention.
//! Reads go through the narrow [`Queryable`] seam (`select`, label names, label values), merging
//! the head and the blocks. This module does not know OTLP or PromQL.

pub mod arena;
pub mod block;
pub mod codec;
pub mod head;
pub mod labels;
pub mod mem;
pub mod wal;
pub mod xor;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

pub use crate::config::TsdbConfig;
use crate::error::ErrorCode;
use crate::telemetry::{Exposition, Kind, MetricSource};
use block::{Block, BlockError, BlockMeta};
use head::{AppendOutcome, Head};
pub use head::{Exemplar, Metadata, STALE_NAN_BITS, is_stale};
pub use labels::{Label, Labels, MatchOp, Matcher};
use wal::{Record, Wal};

#[derive(Debug, thiserror::Error)]
pub enum TsdbError {
    #[error("metrics store cannot take writes: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Block(#[from] BlockError),
    #[error("metrics store i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl TsdbError {
    pub fn code(&self) -> ErrorCode {
        match self {
            TsdbError::Unavailable(_) => ErrorCode::Unavailable,
            _ => ErrorCode::Internal,
        }
    }
}

/// Samples to append, with their series given once each.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    pub series: Vec<Labels>,
    /// (index into `series`, timestamp in ms, value)
    pub samples: Vec<(u32, i64, f64)>,
    pub exemplars: Vec<(u32, Exemplar)>,
    pub metadata: Vec<(String, Metadata)>,
}

impl Batch {
    /// Adds a series (or finds the one just added with the same labels) and returns its index.
    pub fn series_index(&mut self, l: Labels) -> u32 {
        if let Some(last) = self.series.last()
            && *last == l
        {
            return self.series.len() as u32 - 1;
        }
        self.series.push(l);
        self.series.len() as u32 - 1
    }

    pub fn push(&mut self, l: Labels, t: i64, v: f64) {
        let i = self.series_index(l);
        self.samples.push((i, t, v));
    }
}

/// What happened to a batch's samples.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    pub appended: u64,
    pub duplicates: u64,
    pub conflicts: u64,
    pub too_old: u64,
    pub series_limit: u64,
    pub invalid: u64,
    /// Refused because the head's chunk memory is full.
    pub head_full: u64,
}

impl AppendResult {
    pub fn rejected(&self) -> u64 {
        self.conflicts + self.too_old + self.series_limit + self.invalid + self.head_full
    }

    /// A one-line reason for the rejected samples, for partial-success messages.
    pub fn message(&self) -> String {
        let mut parts = Vec::new();
        if self.head_full > 0 {
            parts.push(format!(
                "{} samples refused: the head's chunk memory (16 GiB) is full",
                self.head_full
            ));
        }
        if self.series_limit > 0 {
            parts.push(format!(
                "{} samples refused: the active series limit is reached",
                self.series_limit
            ));
        }
        if self.conflicts > 0 {
            parts.push(format!(
                "{} samples refused: a different value is stored for the same timestamp",
                self.conflicts
            ));
        }
        if self.too_old > 0 {
            parts.push(format!(
                "{} samples refused: older than the out-of-order window",
                self.too_old
            ));
        }
        if self.invalid > 0 {
            parts.push(format!(
                "{} samples refused: invalid metric or label name",
                self.invalid
            ));
        }
        parts.join("; ")
    }
}

/// A series and its samples in the selected range, sorted by time.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub samples: Vec<(i64, f64)>,
}

pub type SeriesIter = Box<dyn Iterator<Item = Series> + Send>;

/// The read seam the query engine and the APIs use. Times are milliseconds, inclusive.
pub trait Queryable: Send + Sync {
    /// Series matching every matcher with samples in `[mint, maxt]`, sorted by label set.
    fn select(&self, mint: i64, maxt: i64, matchers: &[Matcher]) -> Result<SeriesIter, TsdbError>;
    /// Label names of the matching series (all series if `matchers` is empty), sorted.
    fn label_names(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Result<Vec<String>, TsdbError>;
    /// Values of label `name` among the matching series, sorted.
    fn label_values(
        &self,
        name: &str,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Result<Vec<String>, TsdbError>;
}

/// Counters for `/metrics`.
#[derive(Default)]
pub struct TsdbCounters {
    pub samples_appended: AtomicU64,
    pub samples_duplicate: AtomicU64,
    pub rejected_conflict: AtomicU64,
    pub rejected_too_old: AtomicU64,
    pub rejected_series_limit: AtomicU64,
    pub rejected_invalid: AtomicU64,
    pub rejected_head_full: AtomicU64,
    pub series_created: AtomicU64,
    pub wal_fsyncs: AtomicU64,
    pub wal_write_failures: AtomicU64,
    pub wal_repairs: AtomicU64,
    pub blocks_cut: AtomicU64,
    pub compactions: AtomicU64,
    pub block_failures: AtomicU64,
    pub retention_deleted_blocks: AtomicU64,
    pub head_series: AtomicU64,
    pub head_bytes: AtomicU64,
    pub blocks: AtomicU64,
    pub block_bytes: AtomicU64,
    pub wal_bytes: AtomicU64,
}

impl MetricSource for TsdbCounters {
    fn write_metrics(&self, out: &mut Exposition) {
        for (name, kind, help, v) in [
            (
                "sightline_tsdb_samples_appended_total",
                Kind::Counter,
                "Samples stored in the metrics store",
                &self.samples_appended,
            ),
            (
                "sightline_tsdb_samples_duplicate_total",
                Kind::Counter,
                "Samples identical to a stored one (acknowledged, stored once)",
                &self.samples_duplicate,
            ),
        ] {
            out.single(name, kind, help, v);
        }
        let name = "sightline_tsdb_samples_rejected_total";
        out.family(name, Kind::Counter, "Samples refused by the metrics store");
        for (reason, v) in [
            ("duplicate_timestamp", &self.rejected_conflict),
            ("too_old", &self.rejected_too_old),
            ("series_limit", &self.rejected_series_limit),
            ("invalid", &self.rejected_invalid),
            ("head_full", &self.rejected_head_full),
        ] {
            out.sample(name, &[("reason", reason)], v);
        }
        for (name, kind, help, v) in [
            (
                "sightline_tsdb_series_created_total",
                Kind::Counter,
                "Series created in the head",
                &self.series_created,
            ),
            (
                "sightline_tsdb_wal_fsyncs_total",
                Kind::Counter,
                "WAL group commits",
                &self.wal_fsyncs,
            ),
            (
                "sightline_tsdb_wal_write_failures_total",
                Kind::Counter,
                "WAL writes that failed (the export was refused with 503)",
                &self.wal_write_failures,
            ),
            (
                "sightline_tsdb_wal_repairs_total",
                Kind::Counter,
                "Torn or corrupt WAL tails cut off at start",
                &self.wal_repairs,
            ),
            (
                "sightline_tsdb_blocks_cut_total",
                Kind::Counter,
                "Blocks cut from the head",
                &self.blocks_cut,
            ),
            (
                "sightline_tsdb_compactions_total",
                Kind::Counter,
                "Block compactions",
                &self.compactions,
            ),
            (
                "sightline_tsdb_block_write_failures_total",
                Kind::Counter,
                "Block writes that failed (retried later)",
                &self.block_failures,
            ),
            (
                "sightline_tsdb_retention_deleted_blocks_total",
                Kind::Counter,
                "Blocks deleted by retention",
                &self.retention_deleted_blocks,
            ),
            (
                "sightline_tsdb_head_series",
                Kind::Gauge,
                "Series in the head",
                &self.head_series,
            ),
            (
                "sightline_tsdb_head_bytes",
                Kind::Gauge,
                "Approximate memory held by the head",
                &self.head_bytes,
            ),
            (
                "sightline_tsdb_blocks",
                Kind::Gauge,
                "Persisted blocks",
                &self.blocks,
            ),
            (
                "sightline_tsdb_block_bytes",
                Kind::Gauge,
                "Bytes of persisted blocks",
                &self.block_bytes,
            ),
            (
                "sightline_tsdb_wal_bytes",
                Kind::Gauge,
                "Bytes of WAL on disk",
                &self.wal_bytes,
            ),
        ] {
            out.single(name, kind, help, v);
        }
    }
}

type Reply = tokio::sync::oneshot::Sender<(Result<AppendResult, TsdbError>, Batch)>;

enum Cmd {
    /// The batch comes back with the answer, so the caller's thread, not the writer, frees it.
    Append(Batch, Reply),
    /// Cut everything in the head before `t` now (tests, benchmarks, shutdown flush).
    CutBefore(i64, std::sync::mpsc::Sender<()>),
}

enum Job {
    Cut {
        seq: u64,
        cut_t: i64,
        ooo: HashMap<u32, Vec<(i64, f64)>>,
        checkpoint_seg: u32,
        checkpoint: Vec<u8>,
        drop_segments: Vec<u32>,
        done: Option<std::sync::mpsc::Sender<()>>,
    },
    Maintain(std::sync::mpsc::Sender<()>),
}

struct Inner {
    dir: PathBuf,
    cfg: TsdbConfig,
    head: RwLock<Head>,
    blocks: RwLock<Vec<Arc<Block>>>,
    next_seq: AtomicU64,
    cutting: AtomicBool,
    writable: AtomicBool,
    counters: Arc<TsdbCounters>,
    tx: Mutex<Option<mpsc::SyncSender<Cmd>>>,
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
}

/// The store handle; cheap to clone.
#[derive(Clone)]
pub struct Tsdb {
    inner: Arc<Inner>,
}

/// The store's threads; join after [`Tsdb::close`].
pub struct TsdbThreads(Vec<std::thread::JoinHandle<()>>);

impl TsdbThreads {
    pub fn join(self) {
        for t in self.0 {
            let _ = t.join();
        }
    }
}

fn blocks_dir(dir: &Path) -> PathBuf {
    dir.join("blocks")
}

impl Tsdb {
    /// Opens (or creates) the store in `dir`: loads the blocks, replays the WAL into the head,
    /// and starts the writer and maintenance threads.
    pub fn open(
        dir: &Path,
        cfg: TsdbConfig,
        counters: Arc<TsdbCounters>,
    ) -> Result<(Tsdb, TsdbThreads), TsdbError> {
        std::fs::create_dir_all(blocks_dir(dir))?;
        let blocks = load_blocks(&blocks_dir(dir))?;
        let max_seq = blocks.iter().map(|b| b.meta.seq).max().unwrap_or(0);
        let (wal, replay) = Wal::open(&dir.join("wal"), cfg.wal_segment_bytes)?;
        for r in &replay.repairs {
            tracing::warn!(repair = %r, "wal repaired");
        }
        counters
            .wal_repairs
            .fetch_add(replay.repairs.len() as u64, Relaxed);
        let mut head = Head::new(cfg.out_of_order_window.as_millis() as i64);
        let existing: std::collections::HashSet<u64> = blocks
            .iter()
            .flat_map(|b| b.meta.sources.iter().copied())
            .collect();
        let mut max_cut_seq = 0;
        let (mut nseries, mut nsamples) = (0usize, 0usize);
        for rec in replay.records {
            match rec {
                Record::Series(v) => {
                    for (id, l) in v {
                        if head.exists(id) {
                            continue;
                        }
                        if head.create(id, &l, l.hash64(), true) {
                            nseries += 1;
                        } else {
                            tracing::warn!(series = %l, "wal replay: series not restored (the head is full or it has too many labels)");
                        }
                    }
                }
                Record::Samples(v) => {
                    for (id, t, val) in v {
                        head.append(id, t, val);
                        nsamples += 1;
                    }
                }
                Record::Exemplars(v) => {
                    for (id, e) in v {
                        head.set_exemplar(id, e);
                    }
                }
                Record::Metadata(v) => head.metadata.extend(v),
                Record::Cut { cut_t, block } => {
                    max_cut_seq = max_cut_seq.max(block);
                    if existing.contains(&block) {
                        head.take_ooo();
                        // Series stay: records later in the log still refer to them.
                        head.truncate_samples(cut_t);
                        head.min_valid_t = head.min_valid_t.max(cut_t);
                    }
                }
            }
        }
        // Now drop the series the log left without samples (all of theirs are in blocks).
        head.truncate(i64::MIN);
        if let Some(m) = blocks.iter().map(|b| b.meta.max_t).max() {
            // Nothing in-order may land inside a persisted block's range again.
            head.min_valid_t = head.min_valid_t.max(m + 1);
        }
        tracing::info!(
            series = head.num_series(),
            replayed_series = nseries,
            replayed_samples = nsamples,
            blocks = blocks.len(),
            "metrics store open"
        );
        counters.blocks.store(blocks.len() as u64, Relaxed);
        let (tx, rx) = mpsc::sync_channel(1024);
        let (jtx, jrx) = mpsc::channel();
        let inner = Arc::new(Inner {
            dir: dir.to_path_buf(),
            cfg,
            head: RwLock::new(head),
            blocks: RwLock::new(blocks.into_iter().map(Arc::new).collect()),
            next_seq: AtomicU64::new(max_seq.max(max_cut_seq) + 1),
            cutting: AtomicBool::new(false),
            writable: AtomicBool::new(true),
            counters,
            tx: Mutex::new(Some(tx)),
            jobs: Mutex::new(Some(jtx)),
        });
        let i1 = inner.clone();
        let w = std::thread::Builder::new()
            .name("tsdb-writer".into())
            .spawn(move || writer_loop(i1, wal, rx))?;
        let i2 = inner.clone();
        let m = std::thread::Builder::new()
            .name("tsdb-maintain".into())
            .spawn(move || maintenance_loop(i2, jrx))?;
        let db = Tsdb { inner };
        db.refresh_gauges();
        Ok((db, TsdbThreads(vec![w, m])))
    }

    /// Appends a batch; resolves once the accepted samples are durable in the WAL.
    pub async fn append(&self, batch: Batch) -> Result<AppendResult, TsdbError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Cmd::Append(batch, tx))?;
        rx.await
            .map_err(|_| TsdbError::Unavailable("the store is shutting down".into()))?
            .0
    }

    /// [`Self::append`] for threads outside the async runtime.
    pub fn append_blocking(&self, batch: Batch) -> Result<AppendResult, TsdbError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Cmd::Append(batch, tx))?;
        rx.blocking_recv()
            .map_err(|_| TsdbError::Unavailable("the store is shutting down".into()))?
            .0
    }

    fn send(&self, c: Cmd) -> Result<(), TsdbError> {
        let tx = self.inner.tx.lock().clone();
        match tx {
            Some(tx) => tx
                .send(c)
                .map_err(|_| TsdbError::Unavailable("the store is shutting down".into())),
            None => Err(TsdbError::Unavailable("the store is shutting down".into())),
        }
    }

    /// Cuts a block of everything before `t` and waits for it (and the WAL checkpoint).
    pub fn cut_before_blocking(&self, t: i64) -> Result<(), TsdbError> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.send(Cmd::CutBefore(t, tx))?;
        rx.recv()
            .map_err(|_| TsdbError::Unavailable("the store is shutting down".into()))
    }

    /// Runs compaction and retention now and waits for them.
    pub fn maintain_blocking(&self) {
        let (tx, rx) = std::sync::mpsc::channel();
        let jobs = self.inner.jobs.lock().clone();
        if let Some(j) = jobs
            && j.send(Job::Maintain(tx)).is_ok()
        {
            let _ = rx.recv();
        }
    }

    /// Stops taking writes; the threads finish what is queued and exit.
    pub fn close(&self) {
        self.inner.tx.lock().take();
    }

    /// Whether the last WAL write succeeded.
    pub fn ready(&self) -> bool {
        self.inner.writable.load(Relaxed)
    }

    pub fn num_series(&self) -> usize {
        self.inner.head.read().num_series()
    }

    pub fn blocks(&self) -> Vec<BlockMeta> {
        self.inner
            .blocks
            .read()
            .iter()
            .map(|b| b.meta.clone())
            .collect()
    }

    /// The latest exemplar of each matching series with one in `[mint, maxt]`.
    pub fn exemplars(&self, mint: i64, maxt: i64, ms: &[Matcher]) -> Vec<(Labels, Exemplar)> {
        let h = self.inner.head.read();
        h.matching(ms)
            .into_iter()
            .filter_map(|id| {
                let e = h.exemplar(id)?;
                (e.t >= mint && e.t <= maxt).then(|| (h.labels_of(id).unwrap_or_default(), e))
            })
            .collect()
    }

    /// Metric metadata as last reported, by metric name.
    pub fn metadata(&self) -> BTreeMap<String, Metadata> {
        self.inner
            .head
            .read()
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Approximate bytes held by the head.
    pub fn head_bytes(&self) -> usize {
        self.inner.head.read().approx_bytes()
    }

    fn refresh_gauges(&self) {
        refresh_gauges(&self.inner);
    }

    fn overlapping_blocks(&self, mint: i64, maxt: i64) -> Vec<Arc<Block>> {
        self.inner
            .blocks
            .read()
            .iter()
            .filter(|b| b.overlaps(mint, maxt))
            .cloned()
            .collect()
    }

    fn matching_labels(
        &self,
        mint: i64,
        maxt: i64,
        ms: &[Matcher],
    ) -> Result<Vec<Labels>, TsdbError> {
        let mut out = Vec::new();
        for b in self.overlapping_blocks(mint, maxt) {
            out.extend(b.series_labels(&b.matching(ms), mint, maxt)?);
        }
        let h = self.inner.head.read();
        out.extend(h.series_labels(&h.matching(ms), mint, maxt));
        Ok(out)
    }
}

impl Queryable for Tsdb {
    fn select(&self, mint: i64, maxt: i64, ms: &[Matcher]) -> Result<SeriesIter, TsdbError> {
        let mut map: BTreeMap<Labels, (Vec<(i64, f64)>, bool)> = BTreeMap::new();
        // Parts append in time order when blocks do not overlap; only out-of-order parts make
        // the merge sort.
        let mut add = |l: Labels, s: Vec<(i64, f64)>| {
            let e = map.entry(l).or_default();
            if e.0.is_empty() {
                e.0 = s;
            } else if let (Some(last), Some(first)) = (e.0.last(), s.first()) {
                if first.0 <= last.0 {
                    e.1 = true;
                }
                e.0.extend(s);
            }
        };
        let mut blocks = self.overlapping_blocks(mint, maxt);
        blocks.sort_by_key(|b| b.meta.min_t);
        for b in blocks {
            for (l, s) in b.read(&b.matching(ms), mint, maxt)? {
                add(l, s);
            }
        }
        let from_head = {
            let h = self.inner.head.read();
            h.read(&h.matching(ms), mint, maxt)
        };
        for (l, s) in from_head {
            add(l, s);
        }
        Ok(Box::new(map.into_iter().map(
            |(labels, (mut samples, unordered))| {
                if unordered {
                    head::sort_dedup(&mut samples);
                }
                Series { labels, samples }
            },
        )))
    }

    fn label_names(&self, mint: i64, maxt: i64, ms: &[Matcher]) -> Result<Vec<String>, TsdbError> {
        let mut set = std::collections::BTreeSet::new();
        for l in self.matching_labels(mint, maxt, ms)? {
            for lab in l.iter() {
                if !set.contains(&lab.name) {
                    set.insert(lab.name.clone());
                }
            }
        }
        Ok(set.into_iter().collect())
    }

    fn label_values(
        &self,
        name: &str,
        mint: i64,
        maxt: i64,
        ms: &[Matcher],
    ) -> Result<Vec<String>, TsdbError> {
        let mut set = std::collections::BTreeSet::new();
        for l in self.matching_labels(mint, maxt, ms)? {
            if let Some(v) = l.get(name)
                && !set.contains(v)
            {
                set.insert(v.to_string());
            }
        }
        Ok(set.into_iter().collect())
    }
}

fn load_blocks(dir: &Path) -> Result<Vec<Block>, TsdbError> {
    let mut blocks = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().to_string();
        if name.ends_with(".tmp") {
            let _ = std::fs::remove_dir_all(e.path());
            continue;
        }
        if !e.file_type()?.is_dir() {
            continue;
        }
        match Block::open(&e.path()) {
            Ok(b) => blocks.push(b),
            Err(err) => tracing::error!(error = %err, "skipping unreadable block"),
        }
    }
    // A crash mid-compaction leaves the parts next to the whole: the parts go.
    let replaced: std::collections::HashSet<u64> = blocks
        .iter()
        .flat_map(|b| {
            b.meta
                .sources
                .iter()
                .copied()
                .filter(move |s| *s != b.meta.seq)
        })
        .collect();
    blocks.retain(|b| {
        if replaced.contains(&b.meta.seq) {
            tracing::info!(
                seq = b.meta.seq,
                "removing a block that a compacted block replaced"
            );
            let _ = std::fs::remove_dir_all(&b.dir);
            false
        } else {
            true
        }
    });
    blocks.sort_by_key(|b| (b.meta.min_t, b.meta.seq));
    Ok(blocks)
}

fn refresh_gauges(inner: &Inner) {
    let c = &inner.counters;
    {
        let h = inner.head.read();
        c.head_series.store(h.num_series() as u64, Relaxed);
    }
    let blocks = inner.blocks.read();
    c.blocks.store(blocks.len() as u64, Relaxed);
    c.block_bytes
        .store(blocks.iter().map(|b| b.meta.stats.bytes).sum(), Relaxed);
}

/// Most samples applied under one head lock before the WAL write.
const GROUP_SAMPLES: usize = 500_000;
const MAX_RECORD_SAMPLES: usize = 1 << 20;

fn writer_loop(inner: Arc<Inner>, mut wal: Wal, rx: mpsc::Receiver<Cmd>) {
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut scratch = Vec::new();
    let mut logged_samples: Vec<(u32, i64, f64)> = Vec::new();
    let block_ms = inner.cfg.block_duration.as_millis().max(1) as i64;
    let mut retry_cut_after = std::time::Instant::now();
    loop {
        let Ok(first) = rx.recv() else { break };
        let mut cmds = vec![first];
        let mut n: usize = cmds.iter().map(cmd_samples).sum();
        while n < GROUP_SAMPLES {
            match rx.try_recv() {
                Ok(c) => {
                    n += cmd_samples(&c);
                    cmds.push(c);
                }
                Err(_) => break,
            }
        }
        buf.clear();
        let mut replies = Vec::new();
        let mut cuts = Vec::new();
        let mut newly_logged: Vec<u32> = Vec::new();
        let mut max_t = i64::MIN;
        {
            let mut head = inner.head.write();
            for c in cmds {
                match c {
                    Cmd::Append(batch, reply) => {
                        logged_samples.clear();
                        let r = apply(
                            &inner,
                            &mut head,
                            &batch,
                            &mut buf,
                            &mut logged_samples,
                            &mut newly_logged,
                        );
                        for chunk in logged_samples.chunks(MAX_RECORD_SAMPLES) {
                            wal::encode_samples(&mut buf, &mut scratch, chunk);
                        }
                        if let Some(m) = logged_samples.iter().map(|s| s.1).max() {
                            max_t = max_t.max(m);
                        }
                        replies.push((reply, r, batch));
                    }
                    Cmd::CutBefore(t, done) => cuts.push((t, done)),
                }
            }
        }
        let res = wal.write(&buf, max_t);
        let c = &inner.counters;
        match res {
            Ok(()) => {
                if !buf.is_empty() {
                    c.wal_fsyncs.fetch_add(1, Relaxed);
                }
                inner.writable.store(true, Relaxed);
                for (reply, r, batch) in replies {
                    c.samples_appended.fetch_add(r.appended, Relaxed);
                    c.samples_duplicate.fetch_add(r.duplicates, Relaxed);
                    c.rejected_conflict.fetch_add(r.conflicts, Relaxed);
                    c.rejected_too_old.fetch_add(r.too_old, Relaxed);
                    c.rejected_series_limit.fetch_add(r.series_limit, Relaxed);
                    c.rejected_invalid.fetch_add(r.invalid, Relaxed);
                    c.rejected_head_full.fetch_add(r.head_full, Relaxed);
                    let _ = reply.send((Ok(r), batch));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "wal write failed; refusing the exports that were waiting");
                c.wal_write_failures.fetch_add(1, Relaxed);
                inner.writable.store(false, Relaxed);
                {
                    let mut head = inner.head.write();
                    for id in &newly_logged {
                        if let Some(s) = head.series_mut(*id) {
                            s.logged = false;
                        }
                    }
                }
                for (reply, _, batch) in replies {
                    let _ = reply.send((
                        Err(TsdbError::Unavailable(format!(
                            "the write-ahead log cannot be written ({e}); retry later"
                        ))),
                        batch,
                    ));
                }
            }
        }
        for (t, done) in cuts {
            start_cut(&inner, &mut wal, t, Some(done));
        }
        // A cut is due when the head spans one and a half block ranges.
        if !inner.cutting.load(Relaxed) && std::time::Instant::now() >= retry_cut_after {
            let due = {
                let h = inner.head.read();
                match h.min_t() {
                    Some(min) if h.max_t.saturating_sub(min) > block_ms * 3 / 2 => {
                        Some((min.div_euclid(block_ms) + 1) * block_ms)
                    }
                    _ => None,
                }
            };
            if let Some(cut_t) = due
                && !start_cut(&inner, &mut wal, cut_t, None)
            {
                retry_cut_after = std::time::Instant::now() + Duration::from_secs(30);
            }
        }
    }
    // Closing: let the maintenance thread finish its queue and stop.
    inner.jobs.lock().take();
}

fn cmd_samples(c: &Cmd) -> usize {
    match c {
        Cmd::Append(b, _) => b.samples.len().max(1),
        Cmd::CutBefore(..) => 1,
    }
}

fn apply(
    inner: &Inner,
    head: &mut Head,
    batch: &Batch,
    buf: &mut Vec<u8>,
    logged: &mut Vec<(u32, i64, f64)>,
    newly_logged: &mut Vec<u32>,
) -> AppendResult {
    let mut r = AppendResult::default();
    let mut ids: Vec<Result<u32, u8>> = Vec::with_capacity(batch.series.len());
    let mut series_rec: Vec<(u32, &Labels)> = Vec::new();
    for l in &batch.series {
        let h = l.hash64();
        let id = match head.lookup(l, h) {
            Some(id) => Ok(id),
            None if l.validate().is_err() => Err(0),
            None if head.num_series() >= inner.cfg.max_series => Err(1),
            None => {
                let id = head.next_id();
                if head.create(id, l, h, false) {
                    inner.counters.series_created.fetch_add(1, Relaxed);
                    Ok(id)
                } else {
                    Err(2)
                }
            }
        };
        ids.push(id);
    }
    for &(i, t, v) in &batch.samples {
        let Some(id) = ids.get(i as usize) else {
            r.invalid += 1;
            continue;
        };
        let id = match id {
            Ok(id) => *id,
            Err(0) => {
                r.invalid += 1;
                continue;
            }
            Err(2) => {
                r.head_full += 1;
                continue;
            }
            Err(_) => {
                r.series_limit += 1;
                continue;
            }
        };
        match head.append(id, t, v) {
            AppendOutcome::Appended => r.appended += 1,
            AppendOutcome::Duplicate => r.duplicates += 1,
            AppendOutcome::Conflict => {
                r.conflicts += 1;
                continue;
            }
            AppendOutcome::TooOld => {
                r.too_old += 1;
                continue;
            }
            AppendOutcome::Full => {
                r.head_full += 1;
                continue;
            }
        }
        if let Some(s) = head.series_mut(id)
            && !s.logged
        {
            s.logged = true;
            newly_logged.push(id);
            series_rec.push((id, &batch.series[i as usize]));
        }
        logged.push((id, t, v));
    }
    if !batch.metadata.is_empty() {
        let changed: Vec<(String, Metadata)> = batch
            .metadata
            .iter()
            .filter(|(n, m)| head.metadata.get(n) != Some(m))
            .cloned()
            .collect();
        if !changed.is_empty() {
            wal::encode_metadata(buf, &changed);
            head.metadata.extend(changed);
        }
    }
    if !series_rec.is_empty() {
        wal::encode_series(buf, &series_rec);
    }
    if !batch.exemplars.is_empty() {
        let ex: Vec<(u32, Exemplar)> = batch
            .exemplars
            .iter()
            .filter_map(|(i, e)| Some((*ids.get(*i as usize)?.as_ref().ok()?, *e)))
            .filter(|(id, _)| head.series_mut(*id).is_some_and(|s| s.logged))
            .collect();
        for (id, e) in &ex {
            head.set_exemplar(*id, *e);
        }
        if !ex.is_empty() {
            wal::encode_exemplars(buf, &ex);
        }
    }
    r
}

/// Step one of a cut, on the writer thread: fence the head at `cut_t`, take the out-of-order
/// samples, rotate the WAL with a cut marker, and hand the block to the maintenance thread.
fn start_cut(inner: &Inner, wal: &mut Wal, cut_t: i64, done: Option<mpsc::Sender<()>>) -> bool {
    let seq = inner.next_seq.fetch_add(1, Relaxed);
    let (ooo, checkpoint) = {
        let mut head = inner.head.write();
        head.min_valid_t = head.min_valid_t.max(cut_t);
        let ooo = head.take_ooo();
        let mut cp = Vec::new();
        let series: Vec<(u32, Labels)> = head.each_series().collect();
        for part in series.chunks(50_000) {
            let refs: Vec<(u32, &Labels)> = part.iter().map(|(i, l)| (*i, l)).collect();
            wal::encode_series(&mut cp, &refs);
        }
        let md: Vec<(String, Metadata)> = head
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !md.is_empty() {
            wal::encode_metadata(&mut cp, &md);
        }
        wal::encode_cut(&mut cp, cut_t, seq);
        (ooo, cp)
    };
    let closed = match wal.rotate() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "wal rotation for a block cut failed");
            restore_ooo(inner, ooo);
            if let Some(d) = done {
                let _ = d.send(());
            }
            return false;
        }
    };
    let mut marker = Vec::new();
    wal::encode_cut(&mut marker, cut_t, seq);
    if let Err(e) = wal.write(&marker, i64::MIN) {
        tracing::error!(error = %e, "writing the block cut marker failed");
    }
    let drop_segments = wal.redundant_segments(closed, cut_t);
    wal.forget_segments(&drop_segments);
    inner.cutting.store(true, Relaxed);
    let job = Job::Cut {
        seq,
        cut_t,
        ooo,
        checkpoint_seg: closed,
        checkpoint,
        drop_segments,
        done,
    };
    let jobs = inner.jobs.lock().clone();
    match jobs {
        Some(j) => j.send(job).is_ok(),
        None => false,
    }
}

fn restore_ooo(inner: &Inner, ooo: HashMap<u32, Vec<(i64, f64)>>) {
    let mut head = inner.head.write();
    for (id, samples) in ooo {
        for (t, v) in samples {
            head.append(id, t, v);
        }
    }
}

fn maintenance_loop(inner: Arc<Inner>, rx: mpsc::Receiver<Job>) {
    loop {
        match rx.recv_timeout(inner.cfg.maintenance_interval) {
            Ok(Job::Cut {
                seq,
                cut_t,
                ooo,
                checkpoint_seg,
                checkpoint,
                drop_segments,
                done,
            }) => {
                match write_cut_block(&inner, seq, cut_t, &ooo) {
                    Ok(()) => {
                        inner.head.write().truncate(cut_t);
                        if let Err(e) = wal::write_checkpoint(
                            &inner.dir.join("wal"),
                            checkpoint_seg,
                            &checkpoint,
                            &drop_segments,
                        ) {
                            tracing::error!(error = %e, "wal checkpoint failed");
                        }
                        inner.counters.blocks_cut.fetch_add(1, Relaxed);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "writing a block failed; the head keeps the samples");
                        inner.counters.block_failures.fetch_add(1, Relaxed);
                        restore_ooo(&inner, ooo);
                    }
                }
                inner.cutting.store(false, Relaxed);
                maintain(&inner);
                if let Some(d) = done {
                    let _ = d.send(());
                }
            }
            Ok(Job::Maintain(done)) => {
                maintain(&inner);
                let _ = done.send(());
            }
            Err(mpsc::RecvTimeoutError::Timeout) => maintain(&inner),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
}

fn write_cut_block(
    inner: &Inner,
    seq: u64,
    cut_t: i64,
    ooo: &HashMap<u32, Vec<(i64, f64)>>,
) -> Result<(), TsdbError> {
    let order = inner.head.read().ids_by_labels();
    let labels: Vec<Labels> = order.iter().map(|(l, _)| l.clone()).collect();
    let meta = block::write_block(&blocks_dir(&inner.dir), seq, 1, vec![seq], &labels, |i| {
        let id = order[i].1;
        let mut s = inner.head.read().in_order_before(id, cut_t);
        if let Some(o) = ooo.get(&id) {
            s.extend_from_slice(o);
            head::sort_dedup(&mut s);
        }
        s
    })?;
    if let Some(meta) = meta {
        let b = Block::open(&blocks_dir(&inner.dir).join(block::block_dir_name(meta.seq)))?;
        tracing::info!(
            seq,
            min_t = meta.min_t,
            max_t = meta.max_t,
            series = meta.stats.series,
            samples = meta.stats.samples,
            "block cut"
        );
        let mut blocks = inner.blocks.write();
        blocks.push(Arc::new(b));
        blocks.sort_by_key(|b| (b.meta.min_t, b.meta.seq));
    }
    Ok(())
}

/// Compaction (overlapping blocks first, then aligned windows of 3x, 9x, 27x the block range),
/// then retention by age and by size.
fn maintain(inner: &Inner) {
    loop {
        let plan = plan_compaction(inner);
        let Some(group) = plan else { break };
        if let Err(e) = compact(inner, &group) {
            tracing::error!(error = %e, "compaction failed");
            inner.counters.block_failures.fetch_add(1, Relaxed);
            break;
        }
    }
    apply_retention(inner);
    inner.counters.wal_bytes.store(
        crate::base::files::dir_bytes(&inner.dir.join("wal")),
        Relaxed,
    );
    inner
        .counters
        .head_bytes
        .store(inner.head.read().approx_bytes() as u64, Relaxed);
    refresh_gauges(inner);
}

fn plan_compaction(inner: &Inner) -> Option<Vec<Arc<Block>>> {
    let blocks = inner.blocks.read().clone();
    if blocks.len() < 2 {
        return None;
    }
    // Overlaps first (out-of-order blocks, or a crash between cut and truncation).
    let mut sorted = blocks.clone();
    sorted.sort_by_key(|b| b.meta.min_t);
    let mut group: Vec<Arc<Block>> = Vec::new();
    let mut group_max = i64::MIN;
    for b in &sorted {
        if !group.is_empty() && b.meta.min_t <= group_max {
            group.push(b.clone());
            group_max = group_max.max(b.meta.max_t);
        } else {
            if group.len() > 1 {
                return Some(group);
            }
            group = vec![b.clone()];
            group_max = b.meta.max_t;
        }
    }
    if group.len() > 1 {
        return Some(group);
    }
    let r = inner.cfg.block_duration.as_millis().max(1) as i64;
    let max_range = (inner.cfg.retention.as_millis() as i64 / 10).max(r);
    let fence = inner.head.read().min_valid_t;
    let mut range = r * 3;
    while range <= max_range {
        let mut windows: BTreeMap<i64, Vec<Arc<Block>>> = BTreeMap::new();
        for b in &sorted {
            let w = b.meta.min_t.div_euclid(range);
            if b.meta.max_t < (w + 1) * range && b.meta.max_t - b.meta.min_t < range {
                windows.entry(w).or_default().push(b.clone());
            }
        }
        for (w, g) in windows {
            if g.len() > 1 && (w + 1) * range <= fence {
                return Some(g);
            }
        }
        range *= 3;
    }
    None
}

fn compact(inner: &Inner, group: &[Arc<Block>]) -> Result<(), TsdbError> {
    let mut all: BTreeMap<Labels, Vec<(usize, u32)>> = BTreeMap::new();
    for (bi, b) in group.iter().enumerate() {
        for ord in 0..b.num_series() {
            let (l, _) = b.series(ord)?;
            all.entry(l).or_default().push((bi, ord));
        }
    }
    let labels: Vec<Labels> = all.keys().cloned().collect();
    let parts: Vec<Vec<(usize, u32)>> = all.into_values().collect();
    let seq = inner.next_seq.fetch_add(1, Relaxed);
    let level = group.iter().map(|b| b.meta.level).max().unwrap_or(1) + 1;
    let mut sources: Vec<u64> = group.iter().flat_map(|b| b.meta.sources.clone()).collect();
    sources.extend(group.iter().map(|b| b.meta.seq));
    sources.sort_unstable();
    sources.dedup();
    let mut err = None;
    let meta = block::write_block(&blocks_dir(&inner.dir), seq, level, sources, &labels, |i| {
        let mut s = Vec::new();
        for &(bi, ord) in &parts[i] {
            match group[bi].all_samples(ord) {
                Ok((_, x)) => s.extend(x),
                Err(e) => err = Some(e),
            }
        }
        if parts[i].len() > 1 {
            head::sort_dedup(&mut s);
        }
        s
    })?;
    if let Some(e) = err {
        let _ = std::fs::remove_dir_all(blocks_dir(&inner.dir).join(block::block_dir_name(seq)));
        return Err(e.into());
    }
    let new = match meta {
        Some(m) => Some(Arc::new(Block::open(
            &blocks_dir(&inner.dir).join(block::block_dir_name(m.seq)),
        )?)),
        None => None,
    };
    {
        let mut blocks = inner.blocks.write();
        blocks.retain(|b| !group.iter().any(|g| g.meta.seq == b.meta.seq));
        if let Some(n) = new {
            tracing::info!(
                seq = n.meta.seq,
                level,
                parts = group.len(),
                "blocks compacted"
            );
            blocks.push(n);
        }
        blocks.sort_by_key(|b| (b.meta.min_t, b.meta.seq));
    }
    for b in group {
        let _ = std::fs::remove_dir_all(&b.dir);
    }
    inner.counters.compactions.fetch_add(1, Relaxed);
    Ok(())
}

fn apply_retention(inner: &Inner) {
    let newest = {
        let h = inner.head.read();
        let b = inner.blocks.read().iter().map(|b| b.meta.max_t).max();
        b.unwrap_or(i64::MIN).max(h.max_t)
    };
    if newest == i64::MIN {
        return;
    }
    let floor = newest.saturating_sub(inner.cfg.retention.as_millis() as i64);
    let mut doomed: Vec<Arc<Block>> = Vec::new();
    {
        let mut blocks = inner.blocks.write();
        blocks.retain(|b| {
            if b.meta.max_t < floor {
                doomed.push(b.clone());
                false
            } else {
                true
            }
        });
        if inner.cfg.max_size_bytes > 0 {
            let wal = crate::base::files::dir_bytes(&inner.dir.join("wal"));
            let mut total: u64 = wal + blocks.iter().map(|b| b.meta.stats.bytes).sum::<u64>();
            while total > inner.cfg.max_size_bytes && !blocks.is_empty() {
                let b = blocks.remove(0);
                total -= b.meta.stats.bytes;
                doomed.push(b);
            }
        }
    }
    for b in &doomed {
        tracing::info!(
            seq = b.meta.seq,
            max_t = b.meta.max_t,
            "retention deleted a block"
        );
        let _ = std::fs::remove_dir_all(&b.dir);
    }
    inner
        .counters
        .retention_deleted_blocks
        .fetch_add(doomed.len() as u64, Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path) -> (Tsdb, TsdbThreads) {
        Tsdb::open(
            dir,
            TsdbConfig::default(),
            Arc::new(TsdbCounters::default()),
        )
        .unwrap()
    }

    fn batch(n_series: usize, t0: i64, n: usize) -> Batch {
        let mut b = Batch::default();
        for s in 0..n_series {
            let l = Labels::from_pairs([("__name__", "m".to_string()), ("s", s.to_string())]);
            let i = b.series_index(l);
            for k in 0..n {
                b.samples
                    .push((i, t0 + k as i64 * 15_000, (s * 1000 + k) as f64));
            }
        }
        b
    }

    #[test]
    fn append_reopen_cut_compact() {
        let dir = tempfile::tempdir().unwrap();
        let (db, th) = open(dir.path());
        let r = db.append_blocking(batch(10, 0, 100)).unwrap();
        assert_eq!(r.appended, 1000);
        db.close();
        th.join();
        // WAL replay.
        let (db, th) = open(dir.path());
        let all: Vec<Series> = db
            .select(0, i64::MAX, &[Matcher::eq("__name__", "m")])
            .unwrap()
            .collect();
        assert_eq!(all.len(), 10);
        assert!(all.iter().all(|s| s.samples.len() == 100));
        // Cut a block, then everything is still there, once.
        db.cut_before_blocking(750_000).unwrap();
        assert_eq!(db.blocks().len(), 1);
        let all: Vec<Series> = db
            .select(0, i64::MAX, &[Matcher::eq("s", "3")])
            .unwrap()
            .collect();
        assert_eq!(all[0].samples.len(), 100);
        // Out-of-order into the cut range makes an overlapping block, which compaction merges.
        let mut b = Batch::default();
        b.push(
            Labels::from_pairs([("__name__", "m"), ("s", "3")]),
            7_500,
            0.5,
        );
        assert_eq!(db.append_blocking(b).unwrap().appended, 1);
        db.cut_before_blocking(750_000).unwrap();
        db.maintain_blocking();
        assert_eq!(db.blocks().len(), 1, "{:?}", db.blocks());
        db.close();
        th.join();
        let (db, th) = open(dir.path());
        let all: Vec<Series> = db
            .select(0, i64::MAX, &[Matcher::eq("s", "3")])
            .unwrap()
            .collect();
        assert_eq!(all[0].samples.len(), 101);
        assert_eq!(all[0].samples[1], (7_500, 0.5));
        assert_eq!(db.label_values("s", 0, i64::MAX, &[]).unwrap().len(), 10);
        assert_eq!(
            db.label_names(0, i64::MAX, &[]).unwrap(),
            vec!["__name__", "s"]
        );
        db.close();
        th.join();
    }

    #[test]
    fn series_limit_and_invalid_names() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = TsdbConfig {
            max_series: 5,
            ..TsdbConfig::default()
        };
        let (db, th) = Tsdb::open(dir.path(), cfg, Arc::new(TsdbCounters::default())).unwrap();
        let r = db.append_blocking(batch(8, 0, 2)).unwrap();
        assert_eq!((r.appended, r.series_limit), (10, 6));
        let mut b = Batch::default();
        b.push(Labels::from_pairs([("__name__", "1bad")]), 1, 1.0);
        assert_eq!(db.append_blocking(b).unwrap().invalid, 1);
        db.close();
        th.join();
    }

    #[test]
    fn blocks_are_cut_on_schedule_and_retention_deletes_old_ones() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = TsdbConfig {
            retention: Duration::from_secs(4 * 3600),
            ..TsdbConfig::default()
        };
        let (db, th) = Tsdb::open(dir.path(), cfg, Arc::new(TsdbCounters::default())).unwrap();
        // 12 hours of one series, one sample a minute, in order, one export per sample.
        let hour = 3_600_000i64;
        for m in 0..(12 * 60) {
            let mut b = Batch::default();
            b.push(
                Labels::from_pairs([("__name__", "r")]),
                m * 60_000,
                m as f64,
            );
            assert_eq!(db.append_blocking(b).unwrap().appended, 1);
        }
        db.maintain_blocking();
        let blocks = db.blocks();
        assert!(!blocks.is_empty(), "cuts happened on their own");
        // Cut blocks are 2 h aligned; retention dropped those wholly older than newest - 4 h.
        let newest = 12 * hour - 60_000;
        assert!(
            blocks.iter().all(|b| b.max_t >= newest - 4 * hour),
            "{blocks:?}"
        );
        let all: Vec<Series> = db
            .select(0, i64::MAX, &[Matcher::eq("__name__", "r")])
            .unwrap()
            .collect();
        let first = all[0].samples[0].0;
        assert!(
            first >= 6 * hour && first <= 8 * hour,
            "oldest kept sample at {first}"
        );
        // Everything after the oldest kept sample is there exactly once.
        assert!(all[0].samples.windows(2).all(|w| w[1].0 - w[0].0 == 60_000));
        assert_eq!(all[0].samples.last().unwrap().0, newest);
        db.close();
        th.join();
    }
}
