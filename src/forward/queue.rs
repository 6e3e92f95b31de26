//! The forward queue on disk, one per signal under `data_dir/forward-queue/<signal>/`: numbered
//! segment files of CRC-checked records, each record one validated OTLP export request as
//! protobuf. One writer thread appends for all three signals and fsyncs before an export is
//! acknowledged (group commit: one fsync per file for everything waiting at that moment). Each
//! signal's sender reads from its cursor, which is persisted after every delivered batch; a crash
//! between delivery and the cursor write re-sends that batch (a duplicate upstream, never a loss).
//! The bytes of all segment files together are bounded; past the bound whole segments go, oldest
//! first from the largest queue, and their undelivered items are counted as dropped.
//!
//! Byte layout (`src/tsdb/FORMAT.md` documents it with the other formats):
//! segment `<id:016x>.seg` = `"SLFQ" | version u8 (1) | signal u8 | 0u16` then records
//! `len u32 LE | crc32 u32 LE (of items and payload) | items u32 LE | payload (len bytes)`;
//! `cursor` = `segment u64 LE | offset u64 LE | crc32 u32 LE (of the 16 bytes before)`.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use parking_lot::Mutex;

use super::ForwardCounters;

pub const SEGMENT_MAGIC: &[u8; 4] = b"SLFQ";
pub const SEGMENT_VERSION: u8 = 1;
pub const HEADER_LEN: u64 = 8;
pub const RECORD_HEADER: usize = 12;
/// The largest payload a reader accepts (larger lengths are corruption).
pub const MAX_RECORD: usize = 256 << 20;

struct Segment {
    id: u64,
    file: Arc<File>,
    /// Bytes written and synced, header included.
    len: u64,
    items: u64,
    /// No more appends (the writer moved on to a newer segment).
    sealed: bool,
}

struct State {
    segments: VecDeque<Segment>,
    /// Next unsent byte: (segment id, offset). Before the first segment when it is older.
    cursor_seg: u64,
    cursor_off: u64,
    /// Items of the cursor's segment already delivered.
    consumed: u64,
}

/// One signal's queue: what the writer publishes and the sender reads.
pub struct Queue {
    pub signal: usize,
    dir: PathBuf,
    state: Mutex<State>,
    /// Wakes the sender when records are published.
    pub ready: tokio::sync::Notify,
    /// Bytes of all queues' segment files (shared).
    total: Arc<AtomicU64>,
    counters: Arc<ForwardCounters>,
}

/// A run of records read for sending: their payloads concatenated (a valid export request of
/// the signal's type, since protobuf concatenates repeated fields), and where it ends.
pub struct Batch {
    pub body: Vec<u8>,
    pub items: u64,
    pub records: usize,
    seg: u64,
    end: u64,
}

fn seg_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016x}.seg"))
}

/// Frames one record onto `out`.
pub fn frame(out: &mut Vec<u8>, items: u32, payload: &[u8]) {
    let mut h = crc32fast::Hasher::new();
    h.update(&items.to_le_bytes());
    h.update(payload);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&h.finalize().to_le_bytes());
    out.extend_from_slice(&items.to_le_bytes());
    out.extend_from_slice(payload);
}

/// A parsed record: its item count, payload and framed length.
pub type Parsed<'a> = (u32, &'a [u8], usize);

/// Parses the record at the start of `buf`: `Ok(Some((items, payload, total length)))`,
/// `Ok(None)` when `buf` holds only part of it, `Err` when it is corrupt. Never panics (the
/// fuzz target `forward_queue` calls it on arbitrary bytes).
pub fn parse_record(buf: &[u8]) -> Result<Option<Parsed<'_>>, &'static str> {
    if buf.len() < RECORD_HEADER {
        return Ok(None);
    }
    let len = u32::from_le_bytes(buf[0..4].try_into().unwrap_or_default()) as usize;
    let crc = u32::from_le_bytes(buf[4..8].try_into().unwrap_or_default());
    let items = u32::from_le_bytes(buf[8..12].try_into().unwrap_or_default());
    if len > MAX_RECORD {
        return Err("record length past the limit");
    }
    let total = RECORD_HEADER + len;
    if buf.len() < total {
        return Ok(None);
    }
    let payload = &buf[RECORD_HEADER..total];
    let mut h = crc32fast::Hasher::new();
    h.update(&buf[8..12]);
    h.update(payload);
    if h.finalize() != crc {
        return Err("checksum mismatch");
    }
    Ok(Some((items, payload, total)))
}

/// Scans a whole segment's bytes: the valid length (header included) and the item count before
/// the first bad or partial record, plus the item count before `upto` (when it is a record
/// boundary; `None` otherwise).
pub fn scan(bytes: &[u8], upto: u64) -> (u64, u64, Option<u64>) {
    let mut pos = HEADER_LEN as usize;
    let mut items = 0u64;
    let mut at_upto = (upto == HEADER_LEN).then_some(0);
    while pos < bytes.len() {
        match parse_record(&bytes[pos..]) {
            Ok(Some((n, _, total))) => {
                pos += total;
                items += n as u64;
                if pos as u64 == upto {
                    at_upto = Some(items);
                }
            }
            _ => break,
        }
    }
    (pos as u64, items, at_upto)
}

fn read_cursor(dir: &Path) -> Option<(u64, u64)> {
    let b = fs::read(dir.join("cursor")).ok()?;
    if b.len() != 20 {
        return None;
    }
    let crc = u32::from_le_bytes(b[16..20].try_into().ok()?);
    if crc32fast::hash(&b[..16]) != crc {
        return None;
    }
    Some((
        u64::from_le_bytes(b[0..8].try_into().ok()?),
        u64::from_le_bytes(b[8..16].try_into().ok()?),
    ))
}

fn write_cursor(dir: &Path, seg: u64, off: u64) -> io::Result<()> {
    let mut b = Vec::with_capacity(20);
    b.extend_from_slice(&seg.to_le_bytes());
    b.extend_from_slice(&off.to_le_bytes());
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    let tmp = dir.join("cursor.tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(&b)?;
    f.sync_data()?;
    fs::rename(&tmp, dir.join("cursor"))
}

impl Queue {
    /// Opens (or creates) one signal's queue directory, checks every segment, cuts a torn or
    /// corrupt tail (counted in `queue_repairs`) and restores the cursor.
    pub fn open(
        dir: PathBuf,
        signal: usize,
        total: Arc<AtomicU64>,
        counters: Arc<ForwardCounters>,
    ) -> io::Result<(Queue, u64)> {
        fs::create_dir_all(&dir)?;
        let mut ids: Vec<u64> = fs::read_dir(&dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                u64::from_str_radix(name.strip_suffix(".seg")?, 16).ok()
            })
            .collect();
        ids.sort_unstable();
        let (mut cseg, mut coff) = read_cursor(&dir).unwrap_or((0, HEADER_LEN));
        let mut segments = VecDeque::new();
        let mut consumed = 0;
        let mut next_id = 1;
        for id in ids {
            next_id = next_id.max(id + 1);
            let path = seg_path(&dir, id);
            if id < cseg {
                fs::remove_file(&path)?;
                continue;
            }
            let bytes = fs::read(&path)?;
            let good_header = bytes.len() >= HEADER_LEN as usize
                && &bytes[0..4] == SEGMENT_MAGIC
                && bytes[4] == SEGMENT_VERSION
                && bytes[5] as usize == signal;
            if !good_header {
                tracing::warn!(path = %path.display(), "forward queue: segment without a valid header removed");
                counters.queue_repairs.fetch_add(1, Relaxed);
                fs::remove_file(&path)?;
                continue;
            }
            let upto = if id == cseg { coff } else { u64::MAX };
            let (valid, items, before) = scan(&bytes, upto);
            let file = OpenOptions::new().read(true).write(true).open(&path)?;
            if valid < bytes.len() as u64 {
                tracing::warn!(
                    path = %path.display(),
                    kept = valid,
                    cut = bytes.len() as u64 - valid,
                    "forward queue: torn or corrupt tail cut"
                );
                counters.queue_repairs.fetch_add(1, Relaxed);
                file.set_len(valid)?;
                file.sync_all()?;
            }
            if id == cseg {
                match before {
                    Some(n) => consumed = n,
                    // Not a record boundary (the tail it pointed into was cut): re-send the segment.
                    None => {
                        coff = HEADER_LEN;
                        consumed = 0;
                    }
                }
            }
            total.fetch_add(valid, Relaxed);
            segments.push_back(Segment {
                id,
                file: Arc::new(file),
                len: valid,
                items,
                sealed: true,
            });
        }
        match segments.front() {
            Some(s) if s.id != cseg => {
                cseg = s.id;
                coff = HEADER_LEN;
                consumed = 0;
            }
            None => {
                cseg = next_id;
                coff = HEADER_LEN;
                consumed = 0;
            }
            _ => {}
        }
        let q = Queue {
            signal,
            dir,
            state: Mutex::new(State {
                segments,
                cursor_seg: cseg,
                cursor_off: coff,
                consumed,
            }),
            ready: tokio::sync::Notify::new(),
            total,
            counters,
        };
        q.publish_gauge();
        Ok((q, next_id))
    }

    fn publish_gauge(&self) {
        let st = self.state.lock();
        let bytes: u64 = st.segments.iter().map(|s| s.len).sum();
        let pending: u64 = st
            .segments
            .iter()
            .map(|s| s.items)
            .sum::<u64>()
            .saturating_sub(st.consumed);
        drop(st);
        self.counters.queue_bytes[self.signal].store(bytes, Relaxed);
        self.counters.queue_items[self.signal].store(pending, Relaxed);
    }

    /// Bytes of this queue's segment files.
    pub fn bytes(&self) -> u64 {
        self.state.lock().segments.iter().map(|s| s.len).sum()
    }

    /// Items waiting to be delivered.
    pub fn pending_items(&self) -> u64 {
        let st = self.state.lock();
        st.segments
            .iter()
            .map(|s| s.items)
            .sum::<u64>()
            .saturating_sub(st.consumed)
    }

    /// The next run of records from the cursor, at most `max_bytes` of payload (one record
    /// always, however large), all from one segment; `None` when everything is delivered.
    pub fn peek(&self, max_bytes: usize) -> io::Result<Option<Batch>> {
        loop {
            let (seg, file, start, avail) = {
                let mut guard = self.state.lock();
                let st = &mut *guard;
                loop {
                    let Some(front) = st.segments.front() else {
                        return Ok(None);
                    };
                    if front.id != st.cursor_seg {
                        // The cursor's segment was dropped: go on from the oldest kept.
                        st.cursor_seg = front.id;
                        st.cursor_off = HEADER_LEN;
                        st.consumed = 0;
                    }
                    if st.cursor_off < front.len {
                        break;
                    }
                    if !front.sealed {
                        return Ok(None);
                    }
                    self.remove_front(st);
                }
                let front = st.segments.front().expect("checked above");
                (
                    front.id,
                    front.file.clone(),
                    st.cursor_off,
                    front.len - st.cursor_off,
                )
            };
            let want = avail.min(max_bytes.max(64 << 10) as u64 + RECORD_HEADER as u64);
            let mut buf = vec![0u8; want as usize];
            file.read_exact_at(&mut buf, start)?;
            let mut out = Vec::with_capacity(buf.len());
            let (mut pos, mut items, mut records) = (0usize, 0u64, 0usize);
            loop {
                match parse_record(&buf[pos..]) {
                    Ok(Some((n, payload, total))) => {
                        if records > 0 && out.len() + payload.len() > max_bytes {
                            break;
                        }
                        out.extend_from_slice(payload);
                        items += n as u64;
                        records += 1;
                        pos += total;
                    }
                    Ok(None) if records == 0 => {
                        // One record larger than what was read: read exactly it.
                        let len = u32::from_le_bytes(buf[0..4].try_into().unwrap_or_default());
                        let need = RECORD_HEADER as u64 + len as u64;
                        if need > avail {
                            return Err(self.corrupt(seg, start, "record runs past the segment"));
                        }
                        buf = vec![0u8; need as usize];
                        file.read_exact_at(&mut buf, start)?;
                        continue;
                    }
                    Ok(None) => break,
                    Err(why) => {
                        if records > 0 {
                            break;
                        }
                        return Err(self.corrupt(seg, start, why));
                    }
                }
            }
            if records == 0 {
                continue;
            }
            return Ok(Some(Batch {
                body: out,
                items,
                records,
                seg,
                end: start + pos as u64,
            }));
        }
    }

    /// A record that was good when written reads back bad (the disk changed under us): the rest
    /// of that segment is given up, counted as dropped.
    fn corrupt(&self, seg: u64, at: u64, why: &str) -> io::Error {
        tracing::error!(
            signal = crate::base::Signal::ALL[self.signal].name(),
            segment = seg,
            offset = at,
            why,
            "forward queue: unreadable record; rest of the segment dropped"
        );
        self.counters.queue_repairs.fetch_add(1, Relaxed);
        let mut guard = self.state.lock();
        let st = &mut *guard;
        if let Some(front) = st.segments.front_mut()
            && front.id == seg
        {
            let lost = front.items.saturating_sub(st.consumed);
            self.counters.dropped[self.signal].fetch_add(lost, Relaxed);
            front.sealed = true;
            self.remove_front(st);
        }
        drop(guard);
        self.publish_gauge();
        io::Error::other(format!("unreadable forward queue record: {why}"))
    }

    /// Marks a batch delivered (or given up): moves the cursor past it and persists it.
    pub fn ack(&self, batch: &Batch) {
        let (seg, off) = {
            let mut st = self.state.lock();
            if st.cursor_seg != batch.seg || st.cursor_off > batch.end {
                // Dropped for space while it was being sent.
                return;
            }
            st.cursor_off = batch.end;
            st.consumed += batch.items;
            if let Some(front) = st.segments.front()
                && front.id == batch.seg
                && front.sealed
                && st.cursor_off >= front.len
            {
                self.remove_front(&mut st);
            }
            (st.cursor_seg, st.cursor_off)
        };
        if let Err(e) = write_cursor(&self.dir, seg, off) {
            tracing::warn!(error = %e, "forward queue: cannot persist the cursor (a restart re-sends)");
        }
        self.publish_gauge();
    }

    /// Removes the oldest segment (the caller holds the lock and has dealt with its items).
    fn remove_front(&self, st: &mut State) {
        if let Some(old) = st.segments.pop_front() {
            self.total.fetch_sub(old.len, Relaxed);
            if let Err(e) = fs::remove_file(seg_path(&self.dir, old.id)) {
                tracing::warn!(error = %e, "forward queue: cannot remove a delivered segment");
            }
            match st.segments.front() {
                Some(next) => st.cursor_seg = next.id,
                None => st.cursor_seg = old.id + 1,
            }
            st.cursor_off = HEADER_LEN;
            st.consumed = 0;
        }
    }

    /// Drops the oldest sealed segment for space; its undelivered items are counted. Returns
    /// false when there is none.
    fn drop_oldest(&self) -> bool {
        let mut st = self.state.lock();
        let Some(front) = st.segments.front() else {
            return false;
        };
        if !front.sealed {
            return false;
        }
        let lost = if front.id == st.cursor_seg {
            front.items.saturating_sub(st.consumed)
        } else {
            front.items
        };
        self.counters.dropped[self.signal].fetch_add(lost, Relaxed);
        self.remove_front(&mut st);
        drop(st);
        self.publish_gauge();
        true
    }
}

/// One append waiting for the writer.
pub struct Append {
    pub signal: usize,
    pub payload: Vec<u8>,
    pub items: u32,
    pub done: tokio::sync::oneshot::Sender<Result<(), String>>,
}

/// The writer thread's side: the open (unsealed) segment of each queue.
pub struct Writer {
    pub queues: Arc<[Queue; 3]>,
    active: [Option<(u64, File)>; 3],
    next_id: [u64; 3],
    max_bytes: u64,
    segment_bytes: u64,
}

impl Writer {
    pub fn new(queues: Arc<[Queue; 3]>, next_id: [u64; 3], max_bytes: u64) -> Writer {
        Writer {
            queues,
            active: [None, None, None],
            next_id,
            max_bytes,
            // Small enough that dropping one segment frees little of the bound.
            segment_bytes: (max_bytes / 16).clamp(64 << 10, 64 << 20),
        }
    }

    /// Runs until every sender of `rx` is gone.
    pub fn run(mut self, rx: std::sync::mpsc::Receiver<Append>) {
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            let mut bytes = batch[0].payload.len();
            while bytes < (64 << 20) {
                match rx.try_recv() {
                    Ok(a) => {
                        bytes += a.payload.len();
                        batch.push(a);
                    }
                    Err(_) => break,
                }
            }
            let result = self.write(&batch).map_err(|e| e.to_string());
            if let Err(e) = &result {
                tracing::error!(error = %e, "forward queue: write failed");
            }
            for a in batch {
                let _ = a.done.send(result.clone());
            }
        }
    }

    fn write(&mut self, batch: &[Append]) -> io::Result<()> {
        let mut bufs: [Vec<u8>; 3] = Default::default();
        let mut items = [0u64; 3];
        for a in batch {
            frame(&mut bufs[a.signal], a.items, &a.payload);
            items[a.signal] += a.items as u64;
        }
        for s in 0..3 {
            if bufs[s].is_empty() {
                continue;
            }
            self.make_room(bufs[s].len() as u64);
            let needs_new = match &self.active[s] {
                None => true,
                Some((id, _)) => {
                    let st = self.queues[s].state.lock();
                    st.segments
                        .back()
                        .is_none_or(|b| b.id != *id || b.len >= self.segment_bytes)
                }
            };
            if needs_new {
                self.roll(s)?;
            }
            let (_, file) = self.active[s].as_mut().expect("rolled above");
            let written = file.write_all(&bufs[s]).and_then(|_| file.sync_data());
            if let Err(e) = written {
                // Disk full or an I/O error: cut what part of the write landed, and start a new
                // segment next time, so the published length is always the end of whole records.
                let published = {
                    let st = self.queues[s].state.lock();
                    st.segments.back().map_or(HEADER_LEN, |b| b.len)
                };
                let _ = file.set_len(published);
                self.active[s] = None;
                if let Some(back) = self.queues[s].state.lock().segments.back_mut() {
                    back.sealed = true;
                }
                self.queues[s].ready.notify_one();
                return Err(e);
            }
            let q = &self.queues[s];
            {
                let mut st = q.state.lock();
                if let Some(back) = st.segments.back_mut() {
                    back.len += bufs[s].len() as u64;
                    back.items += items[s];
                }
            }
            q.total.fetch_add(bufs[s].len() as u64, Relaxed);
            q.publish_gauge();
            q.ready.notify_one();
        }
        Ok(())
    }

    /// Seals the signal's open segment and starts a new one.
    fn roll(&mut self, s: usize) -> io::Result<()> {
        let q = &self.queues[s];
        // Sealed first: even if the new file cannot be made (disk full), the old one can now be
        // delivered and deleted, which is what frees the space.
        self.active[s] = None;
        if let Some(back) = q.state.lock().segments.back_mut() {
            back.sealed = true;
        }
        q.ready.notify_one();
        let id = self.next_id[s];
        self.next_id[s] += 1;
        let path = seg_path(&q.dir, id);
        let create = || -> io::Result<File> {
            let mut f = OpenOptions::new()
                .create_new(true)
                .append(true)
                .read(true)
                .open(&path)?;
            let mut header = [0u8; HEADER_LEN as usize];
            header[..4].copy_from_slice(SEGMENT_MAGIC);
            header[4] = SEGMENT_VERSION;
            header[5] = s as u8;
            f.write_all(&header)?;
            f.sync_data()?;
            // The new name must survive a crash too.
            File::open(&q.dir)?.sync_all()?;
            Ok(f)
        };
        let f = match create() {
            Ok(f) => f,
            Err(e) => {
                let _ = fs::remove_file(&path);
                return Err(e);
            }
        };
        let reader = Arc::new(File::open(&path)?);
        {
            let mut st = q.state.lock();
            if st.segments.is_empty() {
                st.cursor_seg = id;
                st.cursor_off = HEADER_LEN;
                st.consumed = 0;
            }
            st.segments.push_back(Segment {
                id,
                file: reader,
                len: HEADER_LEN,
                items: 0,
                sealed: false,
            });
        }
        q.total.fetch_add(HEADER_LEN, Relaxed);
        self.active[s] = Some((id, f));
        // A sender waiting at the end of the sealed segment can now move on.
        q.ready.notify_one();
        Ok(())
    }

    /// Drops the oldest segments (from the largest queue first) until `need` more bytes fit.
    fn make_room(&mut self, need: u64) {
        let total = self.queues[0].total.clone();
        while total.load(Relaxed) + need > self.max_bytes {
            let mut order: Vec<usize> = (0..3).collect();
            order.sort_by_key(|&s| std::cmp::Reverse(self.queues[s].bytes()));
            let mut freed = false;
            for s in order {
                if self.queues[s].drop_oldest() {
                    freed = true;
                    break;
                }
                // Only the open segment left: seal it so it can go.
                let has_data = {
                    let st = self.queues[s].state.lock();
                    st.segments.back().is_some_and(|b| b.len > HEADER_LEN)
                };
                if has_data && self.roll(s).is_ok() && self.queues[s].drop_oldest() {
                    freed = true;
                    break;
                }
            }
            if !freed {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(
        dir: &Path,
        total: &Arc<AtomicU64>,
        c: &Arc<ForwardCounters>,
    ) -> ([Queue; 3], [u64; 3]) {
        let mk = |s: usize| {
            Queue::open(
                dir.join(crate::base::Signal::ALL[s].name()),
                s,
                total.clone(),
                c.clone(),
            )
            .unwrap()
        };
        let ((q0, n0), (q1, n1), (q2, n2)) = (mk(0), mk(1), mk(2));
        ([q0, q1, q2], [n0, n1, n2])
    }

    /// Appends through a writer thread, as ingest does, and returns when all are on disk.
    fn append(queues: &Arc<[Queue; 3]>, next: [u64; 3], max: u64, items: &[(usize, Vec<u8>, u32)]) {
        let (tx, rx) = std::sync::mpsc::channel();
        let w = Writer::new(queues.clone(), next, max);
        let h = std::thread::spawn(move || w.run(rx));
        let mut waits = Vec::new();
        for (s, p, n) in items {
            let (done, wait) = tokio::sync::oneshot::channel();
            tx.send(Append {
                signal: *s,
                payload: p.clone(),
                items: *n,
                done,
            })
            .unwrap();
            waits.push(wait);
        }
        drop(tx);
        h.join().unwrap();
        for w in waits {
            w.blocking_recv().unwrap().unwrap();
        }
    }

    fn drain(q: &Queue, max: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(b) = q.peek(max).unwrap() {
            out.extend_from_slice(&b.body);
            q.ack(&b);
        }
        out
    }

    #[test]
    fn records_survive_a_restart_and_the_cursor_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let (total, c) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(ForwardCounters::default()),
        );
        let (qs, next) = open(dir.path(), &total, &c);
        let qs = Arc::new(qs);
        let recs: Vec<(usize, Vec<u8>, u32)> = (0..50u8)
            .map(|i| ((i % 2) as usize * 2, vec![i; 100 + i as usize], 3))
            .collect();
        append(&qs, next, 1 << 30, &recs);
        // Deliver some of the traces, then "crash" (drop without anything else).
        let b = qs[0].peek(1000).unwrap().unwrap();
        assert_eq!(b.records, 9, "batches stop at the byte limit");
        assert_eq!(b.items, 27);
        qs[0].ack(&b);
        drop(qs);
        let (qs, _) = open(dir.path(), &total, &c);
        assert_eq!(qs[0].pending_items(), (25 - 9) * 3);
        let rest = drain(&qs[0], 1 << 20);
        let want: Vec<u8> = recs
            .iter()
            .filter(|r| r.0 == 0)
            .skip(9)
            .flat_map(|r| r.1.clone())
            .collect();
        assert_eq!(rest, want);
        let logs = drain(&qs[2], 1 << 20);
        assert_eq!(
            logs.len(),
            recs.iter()
                .filter(|r| r.0 == 2)
                .map(|r| r.1.len())
                .sum::<usize>()
        );
        assert_eq!(qs[1].peek(100).unwrap().map(|b| b.items), None);
        assert_eq!(c.queue_repairs.load(Relaxed), 0);
    }

    #[test]
    fn a_torn_or_corrupt_tail_is_cut_and_what_came_before_kept() {
        for damage in ["truncate", "flip"] {
            let dir = tempfile::tempdir().unwrap();
            let (total, c) = (
                Arc::new(AtomicU64::new(0)),
                Arc::new(ForwardCounters::default()),
            );
            let (qs, next) = open(dir.path(), &total, &c);
            let qs = Arc::new(qs);
            let recs: Vec<(usize, Vec<u8>, u32)> =
                (0..10u8).map(|i| (0, vec![i; 1000], 1)).collect();
            append(&qs, next, 1 << 30, &recs);
            drop(qs);
            let seg = fs::read_dir(dir.path().join("traces"))
                .unwrap()
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "seg"))
                .unwrap();
            let len = fs::metadata(&seg).unwrap().len();
            match damage {
                "truncate" => {
                    OpenOptions::new()
                        .write(true)
                        .open(&seg)
                        .unwrap()
                        .set_len(len - 500)
                        .unwrap();
                }
                _ => {
                    let mut b = fs::read(&seg).unwrap();
                    let at = b.len() - 300;
                    b[at] ^= 0xff;
                    fs::write(&seg, b).unwrap();
                }
            }
            let (qs, _) = open(dir.path(), &total, &c);
            assert_eq!(c.queue_repairs.load(Relaxed), 1, "{damage}");
            let got = drain(&qs[0], 1 << 20);
            let want: Vec<u8> = recs[..9].iter().flat_map(|r| r.1.clone()).collect();
            assert_eq!(
                got, want,
                "{damage}: the nine whole records before the damage"
            );
        }
    }

    #[test]
    fn past_the_bound_the_oldest_go_and_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let (total, c) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(ForwardCounters::default()),
        );
        let (qs, next) = open(dir.path(), &total, &c);
        let qs = Arc::new(qs);
        let max = 1 << 20;
        // 4 MiB of 10 KiB records into a 1 MiB queue, one export at a time.
        let (tx, rx) = std::sync::mpsc::channel();
        let w = Writer::new(qs.clone(), next, max);
        let h = std::thread::spawn(move || w.run(rx));
        for i in 0..400u32 {
            let (done, wait) = tokio::sync::oneshot::channel();
            tx.send(Append {
                signal: 0,
                payload: vec![(i % 251) as u8; 10 << 10],
                items: 2,
                done,
            })
            .unwrap();
            wait.blocking_recv().unwrap().unwrap();
            assert!(total.load(Relaxed) <= max, "bound kept after record {i}");
        }
        drop(tx);
        h.join().unwrap();
        let dropped = c.dropped[0].load(Relaxed);
        let pending = qs[0].pending_items();
        assert_eq!(
            dropped + pending,
            800,
            "every item delivered-able or counted as dropped"
        );
        assert!(
            dropped >= 800 - 2 * 103,
            "at most 1 MiB kept: {dropped} dropped"
        );
        // What is left is the newest, in order.
        let body = drain(&qs[0], 1 << 22);
        let last = *body.last().unwrap();
        assert_eq!(last, (399 % 251) as u8);
        assert_eq!(c.queue_items[0].load(Relaxed), 0);
    }

    #[test]
    fn the_record_parser_refuses_garbage() {
        let mut b = Vec::new();
        frame(&mut b, 7, b"hello");
        assert_eq!(parse_record(&b).unwrap(), Some((7, &b"hello"[..], 17)));
        assert_eq!(parse_record(&b[..10]).unwrap(), None);
        let mut bad = b.clone();
        bad[13] ^= 1;
        assert!(parse_record(&bad).is_err());
        let huge = [0xffu8; 12];
        assert!(parse_record(&huge).is_err());
    }
}
