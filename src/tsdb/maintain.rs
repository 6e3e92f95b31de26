//! The maintenance thread: writes cut blocks, truncates the head and checkpoints the WAL,
//! compacts small blocks into larger ones, and applies retention by age and size.

use super::append::restore_ooo;
use super::*;

pub(super) fn maintenance_loop(inner: Arc<Inner>, rx: mpsc::Receiver<Job>) {
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

pub(super) fn write_cut_block(
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
pub(super) fn maintain(inner: &Inner) {
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

pub(super) fn plan_compaction(inner: &Inner) -> Option<Vec<Arc<Block>>> {
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

pub(super) fn compact(inner: &Inner, group: &[Arc<Block>]) -> Result<(), TsdbError> {
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

pub(super) fn apply_retention(inner: &Inner) {
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
