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
//!
//! Files by verb (Prometheus's `tsdb/head_append.go`, `head_read.go` shape): this file holds the
//! handle ([`Tsdb`]), the seam and batch types and what the threads share; `open.rs` opens and
//! recovers, `append.rs` is the writer thread, `read.rs` the reads, `maintain.rs` the
//! maintenance thread (blocks, compaction, retention), `counters.rs` the `/metrics` counters.

mod append;
pub mod arena;
pub mod block;
pub mod codec;
mod counters;
pub mod head;
mod head_series;
pub mod labels;
mod maintain;
pub mod mem;
mod open;
mod read;
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
use block::{Block, BlockError, BlockMeta};
pub use counters::TsdbCounters;
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
///
/// A sender that sees the same series again and again (an OTLP target exporting every few
/// seconds) can give a series a key of its own, a 128-bit hash of whatever identifies the series
/// on its side, in `series_keys`; the head remembers it, and later batches name the series by
/// that key alone in `keyed`, with no label set to build, hash or compare. A key the head does
/// not know (never given, or its series dropped since) is not an error: its samples come back
/// in the returned batch's `keyed` (see [`Tsdb::append_returning`]) for the sender to send
/// again with labels.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    pub series: Vec<Labels>,
    /// (index into `series`, timestamp in ms, value)
    pub samples: Vec<(u32, i64, f64)>,
    pub exemplars: Vec<(u32, Exemplar)>,
    pub metadata: Vec<(String, Metadata)>,
    /// (index into `series`, the sender's key for that series)
    pub series_keys: Vec<(u32, u128)>,
    /// Samples of series named by key: (key, timestamp in ms, value).
    pub keyed: Vec<(u128, i64, f64)>,
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

    /// No sample to append.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty() && self.keyed.is_empty()
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
    /// Keyed samples whose key the head does not know: not stored, not rejected; they come
    /// back to the sender (see [`Batch`]).
    pub unknown_keys: u64,
}

impl AppendResult {
    /// Both results' counts added up; `unknown_keys` is the second's (the first's were resent).
    pub fn plus(&self, o: &AppendResult) -> AppendResult {
        AppendResult {
            appended: self.appended + o.appended,
            duplicates: self.duplicates + o.duplicates,
            conflicts: self.conflicts + o.conflicts,
            too_old: self.too_old + o.too_old,
            series_limit: self.series_limit + o.series_limit,
            invalid: self.invalid + o.invalid,
            head_full: self.head_full + o.head_full,
            unknown_keys: o.unknown_keys,
        }
    }

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
    /// [`Self::append`] for threads outside the async runtime.
    pub fn append_blocking(&self, batch: Batch) -> Result<AppendResult, TsdbError> {
        Ok(self.append_returning_blocking(batch)?.0)
    }

    /// [`Self::append_returning`] for threads outside the async runtime.
    pub fn append_returning_blocking(
        &self,
        batch: Batch,
    ) -> Result<(AppendResult, Batch), TsdbError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Cmd::Append(batch, tx))?;
        let (r, batch) = rx
            .blocking_recv()
            .map_err(|_| TsdbError::Unavailable("the store is shutting down".into()))?;
        Ok((r?, batch))
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
    fn series_named_by_a_senders_key() {
        let dir = tempfile::tempdir().unwrap();
        let (db, th) = open(dir.path());
        let mut b = batch(2, 0, 1);
        b.series_keys = vec![(0, 7), (1, 8)];
        assert_eq!(db.append_blocking(b).unwrap().appended, 2);
        let b = Batch {
            keyed: vec![(7, 15_000, 1.5), (8, 15_000, 2.5), (9, 15_000, 3.5)],
            ..Default::default()
        };
        let (r, back) = db.append_returning_blocking(b).unwrap();
        assert_eq!((r.appended, r.unknown_keys, r.rejected()), (2, 1, 0));
        assert_eq!(
            back.keyed,
            vec![(9, 15_000, 3.5)],
            "the unknown key comes back"
        );
        let got = |db: &Tsdb| -> Vec<(i64, f64)> {
            let s: Vec<Series> = db
                .select(0, i64::MAX, &[Matcher::eq("s", "0")])
                .unwrap()
                .collect();
            s[0].samples.clone()
        };
        assert_eq!(got(&db), vec![(0, 0.0), (15_000, 1.5)]);
        db.close();
        th.join();
        // The keyed samples are in the WAL like any other.
        let (db, th) = open(dir.path());
        assert_eq!(got(&db), vec![(0, 0.0), (15_000, 1.5)]);
        // Keys live with the process: after a restart every key is unknown again.
        let b = Batch {
            keyed: vec![(7, 30_000, 4.0)],
            ..Default::default()
        };
        let (r, back) = db.append_returning_blocking(b).unwrap();
        assert_eq!((r.appended, back.keyed.len()), (0, 1));
        db.close();
        th.join();
    }

    #[test]
    fn a_key_goes_with_its_series() {
        let mut h = Head::new(0);
        let l = Labels::from_pairs([("__name__", "m")]);
        let id = h.next_id();
        assert!(h.create(id, &l, l.hash64(), true));
        h.register_key(5, id);
        assert_eq!(h.by_key(5), Some(id));
        assert_eq!(h.append(id, 1000, 1.0), AppendOutcome::Appended);
        h.truncate(2000);
        assert!(!h.exists(id), "the emptied series is dropped");
        assert_eq!(h.by_key(5), None, "and its key with it");
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
