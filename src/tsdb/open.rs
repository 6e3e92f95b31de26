//! Opening the store: the blocks on disk, WAL replay into the head (with torn tails cut and
//! counted), then the writer and maintenance threads.

use super::append::writer_loop;
use super::maintain::maintenance_loop;
use super::*;

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
        Ok(self.append_returning(batch).await?.0)
    }

    /// [`Self::append`], giving the batch back with `keyed` holding only the samples whose key
    /// the head did not know (to be sent again with their labels).
    pub async fn append_returning(&self, batch: Batch) -> Result<(AppendResult, Batch), TsdbError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Cmd::Append(batch, tx))?;
        let (r, batch) = rx
            .await
            .map_err(|_| TsdbError::Unavailable("the store is shutting down".into()))?;
        Ok((r?, batch))
    }
}

pub(super) fn load_blocks(dir: &Path) -> Result<Vec<Block>, TsdbError> {
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
