//! The writer thread: appends waiting batches to the head, frames WAL records and group-commits
//! them (one fsync for every batch waiting) before the batches are acknowledged, and starts a
//! cut when the head spans 1.5 block ranges.

use super::*;

/// Most samples applied under one head lock before the WAL write.
pub(super) const GROUP_SAMPLES: usize = 500_000;
pub(super) const MAX_RECORD_SAMPLES: usize = 1 << 20;

pub(super) fn writer_loop(inner: Arc<Inner>, mut wal: Wal, rx: mpsc::Receiver<Cmd>) {
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
                    Cmd::Append(mut batch, reply) => {
                        logged_samples.clear();
                        let r = apply(
                            &inner,
                            &mut head,
                            &mut batch,
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

pub(super) fn cmd_samples(c: &Cmd) -> usize {
    match c {
        Cmd::Append(b, _) => (b.samples.len() + b.keyed.len()).max(1),
        Cmd::CutBefore(..) => 1,
    }
}

/// Counts an append's outcome; true when the sample is in the head (appended, or there
/// already) and so goes to the WAL.
fn counted(r: &mut AppendResult, o: AppendOutcome) -> bool {
    match o {
        AppendOutcome::Appended => r.appended += 1,
        AppendOutcome::Duplicate => r.duplicates += 1,
        AppendOutcome::Conflict => {
            r.conflicts += 1;
            return false;
        }
        AppendOutcome::TooOld => {
            r.too_old += 1;
            return false;
        }
        AppendOutcome::Full => {
            r.head_full += 1;
            return false;
        }
    }
    true
}

/// Marks series `id` as logged; true when it was not yet (its series record goes to the WAL).
fn first_logged(head: &mut Head, id: u32, newly_logged: &mut Vec<u32>) -> bool {
    match head.series_mut(id) {
        Some(s) if !s.logged => {
            s.logged = true;
            newly_logged.push(id);
            true
        }
        _ => false,
    }
}

/// Applies a batch to the head. Afterwards `batch.keyed` holds only the samples whose key the
/// head did not know.
pub(super) fn apply(
    inner: &Inner,
    head: &mut Head,
    batch: &mut Batch,
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
        if !counted(&mut r, head.append(id, t, v)) {
            continue;
        }
        if first_logged(head, id, newly_logged) {
            series_rec.push((id, &batch.series[i as usize]));
        }
        logged.push((id, t, v));
    }
    // Keys the sender gave its series: later batches may name them by key alone.
    for &(i, key) in &batch.series_keys {
        if let Some(Ok(id)) = ids.get(i as usize) {
            head.register_key(key, *id);
        }
    }
    // Samples named by key; unknown keys go back to the sender.
    let mut keyed_series: Vec<(u32, Labels)> = Vec::new();
    let mut unknown: Vec<(u128, i64, f64)> = Vec::new();
    for &(key, t, v) in &batch.keyed {
        let Some(id) = head.by_key(key) else {
            r.unknown_keys += 1;
            unknown.push((key, t, v));
            continue;
        };
        if !counted(&mut r, head.append(id, t, v)) {
            continue;
        }
        if first_logged(head, id, newly_logged)
            && let Some(l) = head.labels_of(id)
        {
            keyed_series.push((id, l));
        }
        logged.push((id, t, v));
    }
    series_rec.extend(keyed_series.iter().map(|(id, l)| (*id, l)));
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
    batch.keyed = unknown;
    r
}

/// Step one of a cut, on the writer thread: fence the head at `cut_t`, take the out-of-order
/// samples, rotate the WAL with a cut marker, and hand the block to the maintenance thread.
pub(super) fn start_cut(
    inner: &Inner,
    wal: &mut Wal,
    cut_t: i64,
    done: Option<mpsc::Sender<()>>,
) -> bool {
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

pub(super) fn restore_ooo(inner: &Inner, ooo: HashMap<u32, Vec<(i64, f64)>>) {
    let mut head = inner.head.write();
    for (id, samples) in ooo {
        for (t, v) in samples {
            head.append(id, t, v);
        }
    }
}
