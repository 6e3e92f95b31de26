//! Log file collection (`[[logs.files]]`): files matched by globs are read as they grow, lines
//! unwrapped from their runtime format (`format.rs`), joined (CRI/Docker partial lines, then
//! multiline records), labelled (static labels, `filename`, and `namespace`/`pod`/`container`
//! from Kubernetes' `/var/log/pods/<namespace>_<pod>_<uid>/<container>/<n>.log` paths) and
//! stored as OTLP log records in the log store, where LogQL and the log search read them.
//!
//! Exactly once across `kill -9`: each round's records are stored in one transaction together
//! with every file's new read position (`TraceStore::append_logs_at`). A position is the first
//! byte not yet in a stored record (a partial line or an open multiline record keeps it at that
//! record's start), so a restart re-reads from there and neither loses nor repeats a line.
//!
//! A file is known by device and inode, checked against a fingerprint of its first bytes (so a
//! reused inode starts over). Rotation by rename keeps the inode: the file is followed under its
//! new name (include patterns such as `*.log*` see it) and the new file starts at 0. Rotation by
//! copy-truncate: a new file whose first bytes repeat a known file's fingerprint (64 bytes at
//! least) is that file's copy and continues from its position, and the original waits until it
//! is truncated, then starts over. A file deleted while read is read to its end through the open
//! handle. Each file gets a read budget per round, so a burst in one cannot starve the rest; a
//! line longer than `max_line_size` keeps its first bytes only; memory per file is bounded by
//! the budget and the line limit. A new file larger than the log store's size limit is read
//! from its tail, with a warning.

pub mod format;

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs};
use tokio_util::sync::CancellationToken;

use crate::config::{LogFilesConfig, LogFormat, LogsConfig};
use crate::traces::{FilePosition, TraceStore};

/// Bytes of a file's beginning that identify it.
const FP_LEN: usize = 1024;
/// A copy is recognised by at least this many leading bytes.
const MIN_COPY_FP: usize = 64;
/// A partial (CRI `P`) line with no continuation for this long is stored as it is.
const PARTIAL_FLUSH: Duration = Duration::from_secs(5);
/// A vanished file read to its end is forgotten after this long.
const FORGET_AFTER: Duration = Duration::from_secs(5);
/// The original of a copy waits this long for its truncation before it is read again.
const SUPERSEDED_FOR: Duration = Duration::from_secs(30);
/// Records stored per round at most (the rest wait for the next round).
const MAX_ROUND_BYTES: usize = 8 << 20;

type FileKey = (u64, u64);

fn file_id(k: FileKey) -> String {
    format!("{}:{}", k.0, k.1)
}

/// One line's worth of text on its way to a record.
struct Pending {
    /// Offset of its first byte in the file.
    start: u64,
    ts_ns: Option<i64>,
    stream: Option<String>,
    text: String,
    lines: usize,
    last: Instant,
}

struct Tracked {
    source: usize,
    path: PathBuf,
    file: File,
    fingerprint: Vec<u8>,
    /// Next byte to read.
    read_off: u64,
    /// Bytes read without their newline yet (the line starts at `read_off - line_len`).
    line: Vec<u8>,
    line_len: u64,
    partial: Option<Pending>,
    multi: Option<Pending>,
    /// Position (and fingerprint) stored with the last committed round.
    committed: u64,
    committed_fp: Vec<u8>,
    missing_since: Option<Instant>,
    superseded_until: Option<Instant>,
    idle_since: Instant,
}

impl Tracked {
    /// The first byte not in an emitted record.
    fn safe_offset(&self) -> u64 {
        let mut s = self.read_off - self.line_len;
        if let Some(p) = &self.partial {
            s = s.min(p.start);
        }
        if let Some(m) = &self.multi {
            s = s.min(m.start);
        }
        s
    }

    fn reset_to(&mut self, off: u64) {
        self.read_off = off;
        self.line.clear();
        self.line_len = 0;
        self.partial = None;
        self.multi = None;
    }
}

/// A record ready to store.
struct Rec {
    ts_ns: i64,
    stream: Option<String>,
    text: String,
}

/// What one round read: records per file, and the positions to store with them.
#[derive(Default)]
pub struct Batch {
    pub data: Vec<ResourceLogs>,
    pub positions: Vec<FilePosition>,
    pub lines: usize,
    /// Some file had more to read than its budget.
    pub busy: bool,
}

pub struct Collector {
    cfg: LogsConfig,
    /// The log store's size limit: a new file larger than this is read from its tail.
    max_store_bytes: u64,
    files: HashMap<FileKey, Tracked>,
    /// Positions stored before this start, by file id.
    stored: HashMap<String, FilePosition>,
}

/// Labels from a Kubernetes log path: `/var/log/pods/<ns>_<pod>_<uid>/<container>/<n>.log` or
/// `/var/log/containers/<pod>_<ns>_<container>-<id>.log`.
pub fn path_labels(path: &Path) -> Vec<(String, String)> {
    let parts: Vec<&str> = path.iter().filter_map(|p| p.to_str()).collect();
    for (i, p) in parts.iter().enumerate() {
        if *p == "pods" && i + 3 < parts.len() {
            let mut it = parts[i + 1].splitn(3, '_');
            if let (Some(ns), Some(pod), Some(_uid)) = (it.next(), it.next(), it.next()) {
                return vec![
                    ("container".into(), parts[i + 2].to_string()),
                    ("namespace".into(), ns.to_string()),
                    ("pod".into(), pod.to_string()),
                ];
            }
        }
        if *p == "containers" && i + 2 == parts.len() {
            let stem = parts[i + 1].trim_end_matches(".log");
            let mut it = stem.splitn(3, '_');
            if let (Some(pod), Some(ns), Some(rest)) = (it.next(), it.next(), it.next()) {
                let container = rest.rsplit_once('-').map_or(rest, |(c, _)| c);
                return vec![
                    ("container".into(), container.to_string()),
                    ("namespace".into(), ns.to_string()),
                    ("pod".into(), pod.to_string()),
                ];
            }
        }
    }
    Vec::new()
}

impl Collector {
    pub fn new(cfg: LogsConfig, max_store_bytes: u64, stored: Vec<FilePosition>) -> Collector {
        Collector {
            cfg,
            max_store_bytes,
            files: HashMap::new(),
            stored: stored.into_iter().map(|p| (p.file_id.clone(), p)).collect(),
        }
    }

    fn read_fingerprint(file: &File, size: u64) -> Vec<u8> {
        let n = (size as usize).min(FP_LEN);
        let mut buf = vec![0u8; n];
        let mut got = 0;
        while got < n {
            match file.read_at(&mut buf[got..], got as u64) {
                Ok(0) | Err(_) => break,
                Ok(k) => got += k,
            }
        }
        buf.truncate(got);
        buf
    }

    /// Where a newly seen file starts: its stored position, a copied file's position, the tail
    /// of a file too large to keep, or 0. `None`: not yet (an empty file, or a copy still being
    /// written); it is looked at again next round.
    fn start_offset(&mut self, key: FileKey, path: &Path, fp: &[u8], size: u64) -> Option<u64> {
        if let Some(p) = self.stored.get(&file_id(key))
            && fp.starts_with(&p.fingerprint)
        {
            return Some(p.offset.min(size));
        }
        if size == 0 {
            return None;
        }
        let known = self
            .files
            .iter()
            .filter(|(k, _)| **k != key)
            .map(|(_, t)| t.fingerprint.as_slice())
            .chain(
                self.stored
                    .values()
                    .filter(|p| p.file_id != file_id(key))
                    .map(|p| p.fingerprint.as_slice()),
            )
            .filter(|f| f.len() >= MIN_COPY_FP);
        // The beginning of a known file, still being copied.
        let copying = known
            .clone()
            .any(|f| fp.len() < f.len() && f.starts_with(fp));
        if copying {
            return None;
        }
        // A copy of a known file (copy-truncate): continue from the original's position, and
        // let the original wait for its truncation.
        let mut copied: Option<u64> = None;
        for (k, t) in self.files.iter_mut() {
            if *k != key && t.fingerprint.len() >= MIN_COPY_FP && fp.starts_with(&t.fingerprint) {
                let off = t.safe_offset();
                copied = Some(copied.map_or(off, |c: u64| c.max(off)));
                t.reset_to(off);
                t.superseded_until = Some(Instant::now() + SUPERSEDED_FOR);
            }
        }
        for p in self.stored.values() {
            if p.file_id != file_id(key)
                && p.fingerprint.len() >= MIN_COPY_FP
                && fp.starts_with(&p.fingerprint)
            {
                copied = Some(copied.map_or(p.offset, |c: u64| c.max(p.offset)));
            }
        }
        if let Some(off) = copied {
            if off > size {
                // The copy has not caught up with what was read of the original yet.
                return None;
            }
            tracing::info!(path = %path.display(), offset = off, "log file is a copy of one being read; continuing from its position");
            return Some(off);
        }
        if size > self.max_store_bytes {
            tracing::warn!(
                path = %path.display(),
                size,
                limit = self.max_store_bytes,
                "log file is larger than the log store's size limit; reading only its tail"
            );
            return Some(size - self.max_store_bytes);
        }
        Some(0)
    }

    /// Finds new and renamed files.
    fn discover(&mut self) {
        let now = Instant::now();
        let mut seen: std::collections::HashSet<FileKey> = std::collections::HashSet::new();
        for (si, src) in self.cfg.files.clone().iter().enumerate() {
            for pat in &src.include {
                let Ok(paths) = glob::glob(pat) else { continue };
                for path in paths.flatten() {
                    if src.exclude.iter().any(|e| e.matches_path(&path)) {
                        continue;
                    }
                    let Ok(md) = std::fs::metadata(&path) else {
                        continue;
                    };
                    if !md.is_file() {
                        continue;
                    }
                    let key = (md.dev(), md.ino());
                    if !seen.insert(key) {
                        continue;
                    }
                    if let Some(t) = self.files.get_mut(&key) {
                        t.path = path;
                        t.missing_since = None;
                        continue;
                    }
                    let Ok(file) = File::open(&path) else {
                        continue;
                    };
                    let fp = Self::read_fingerprint(&file, md.len());
                    let Some(off) = self.start_offset(key, &path, &fp, md.len()) else {
                        continue;
                    };
                    tracing::debug!(path = %path.display(), offset = off, "following log file");
                    self.files.insert(
                        key,
                        Tracked {
                            source: si,
                            path,
                            file,
                            fingerprint: fp.clone(),
                            read_off: off,
                            line: Vec::new(),
                            line_len: 0,
                            partial: None,
                            multi: None,
                            committed: off,
                            committed_fp: fp,
                            missing_since: None,
                            superseded_until: None,
                            idle_since: now,
                        },
                    );
                }
            }
        }
        for (k, t) in self.files.iter_mut() {
            if !seen.contains(k) && t.missing_since.is_none() {
                t.missing_since = Some(now);
            }
        }
    }

    /// Reads every file once (within its budget) and returns what to store.
    pub fn round(&mut self) -> Batch {
        self.discover();
        let now = Instant::now();
        let mut batch = Batch::default();
        let mut bytes = 0usize;
        let keys: Vec<FileKey> = self.files.keys().copied().collect();
        let mut forget = Vec::new();
        for key in keys {
            if bytes >= MAX_ROUND_BYTES {
                batch.busy = true;
                break;
            }
            let budget = self.cfg.read_budget;
            let max_line = self.cfg.max_line_size;
            let Some(t) = self.files.get_mut(&key) else {
                continue;
            };
            let src = &self.cfg.files[t.source];
            let mut recs: Vec<Rec> = Vec::new();
            let size = t.file.metadata().map(|m| m.len()).unwrap_or(0);
            // A changed beginning means the file was truncated and written again since the
            // last round (copy-truncate faster than the poll).
            let fp_now = if size > 0 {
                Self::read_fingerprint(&t.file, size)
            } else {
                Vec::new()
            };
            if size < t.read_off || !fp_now.starts_with(&t.fingerprint) {
                // Truncated (copy-truncate, or `> file`): start over. What it held is kept as
                // a retired position, so its copy, found later (even after a restart), continues
                // from where this file was.
                tracing::info!(path = %t.path.display(), "log file truncated; reading it from the start");
                if t.fingerprint.len() >= MIN_COPY_FP {
                    let old = FilePosition {
                        file_id: format!("{}#old", file_id(key)),
                        path: t.path.display().to_string(),
                        fingerprint: std::mem::take(&mut t.fingerprint),
                        offset: t.safe_offset(),
                    };
                    self.stored.insert(old.file_id.clone(), old.clone());
                    batch.positions.push(old);
                }
                t.superseded_until = None;
                t.reset_to(0);
                t.fingerprint.clear();
            }
            if t.superseded_until.is_some_and(|u| now < u) {
                continue;
            }
            t.superseded_until = None;
            t.fingerprint = fp_now;
            let mut got = 0usize;
            if size > t.read_off {
                let want = ((size - t.read_off) as usize).min(budget);
                let mut buf = vec![0u8; want];
                if t.file.seek(SeekFrom::Start(t.read_off)).is_ok() {
                    while got < want {
                        match t.file.read(&mut buf[got..]) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => got += n,
                        }
                    }
                }
                buf.truncate(got);
                if size - t.read_off > got as u64 {
                    batch.busy = true;
                }
                let mut pos = t.read_off;
                for chunk in buf.split_inclusive(|b| *b == b'\n') {
                    let complete = chunk.last() == Some(&b'\n');
                    let body = if complete {
                        &chunk[..chunk.len() - 1]
                    } else {
                        chunk
                    };
                    let room = max_line.saturating_sub(t.line.len());
                    t.line.extend_from_slice(&body[..body.len().min(room)]);
                    t.line_len += chunk.len() as u64;
                    pos += chunk.len() as u64;
                    if complete {
                        let start = pos - t.line_len;
                        let raw = std::mem::take(&mut t.line);
                        t.line_len = 0;
                        let mut text = String::from_utf8_lossy(&raw).into_owned();
                        if text.ends_with('\r') {
                            text.pop();
                        }
                        physical_line(t, src, start, pos, text, max_line, &mut recs);
                    }
                }
                t.read_off = pos;
            }
            if got > 0 {
                t.idle_since = now;
            }
            // Timeouts: partial lines and open multiline records that nothing continued.
            if let Some(p) = &t.partial
                && now.duration_since(p.last) >= PARTIAL_FLUSH
            {
                let p = t.partial.take().unwrap();
                logical_line(t, src, p, max_line, &mut recs);
            }
            if let (Some(m), Some(ml)) = (&t.multi, &src.multiline)
                && now.duration_since(m.last) >= ml.flush_timeout
            {
                let m = t.multi.take().unwrap();
                recs.push(record_of(m, src.format));
            }
            // A vanished file read to its end is forgotten (its last records stored first).
            let gone = t
                .missing_since
                .is_some_and(|m| now.duration_since(m) >= FORGET_AFTER)
                && got == 0
                && now.duration_since(t.idle_since) >= FORGET_AFTER;
            if gone {
                if let Some(p) = t.partial.take() {
                    logical_line(t, src, p, max_line, &mut recs);
                }
                if let Some(m) = t.multi.take() {
                    recs.push(record_of(m, src.format));
                }
                forget.push(key);
            }
            let safe = t.safe_offset();
            if !recs.is_empty() || safe != t.committed {
                batch.lines += recs.len();
                bytes += recs.iter().map(|r| r.text.len()).sum::<usize>();
                batch.data.extend(resource_logs(&t.path, src, recs));
                batch.positions.push(FilePosition {
                    file_id: file_id(key),
                    path: t.path.display().to_string(),
                    fingerprint: t.fingerprint.clone(),
                    offset: safe,
                });
            }
        }
        for k in forget {
            self.files.remove(&k);
        }
        batch
    }

    /// The round's batch is stored: its positions are now the committed ones.
    pub fn committed(&mut self, positions: &[FilePosition]) {
        for p in positions {
            for (k, t) in self.files.iter_mut() {
                if file_id(*k) == p.file_id {
                    t.committed = p.offset;
                    t.committed_fp = p.fingerprint.clone();
                }
            }
            self.stored.insert(p.file_id.clone(), p.clone());
        }
    }

    /// The round's batch could not be stored: every file goes back to its committed position.
    pub fn rewind(&mut self) {
        for t in self.files.values_mut() {
            let c = t.committed;
            t.reset_to(c);
            t.fingerprint = t.committed_fp.clone();
        }
    }
}

/// One line of the file (newline removed): unwrap the runtime format, join partial lines.
fn physical_line(
    t: &mut Tracked,
    src: &LogFilesConfig,
    start: u64,
    _end: u64,
    text: String,
    max_line: usize,
    recs: &mut Vec<Rec>,
) {
    let now = Instant::now();
    let unwrapped = match src.format {
        LogFormat::Cri => format::cri(&text).map(|u| {
            (
                u.ts_ns,
                u.stream.map(str::to_string),
                u.partial,
                u.content.into_owned(),
            )
        }),
        LogFormat::Docker => format::docker(&text).map(|u| {
            (
                u.ts_ns,
                u.stream.map(str::to_string),
                u.partial,
                u.content.into_owned(),
            )
        }),
        _ => None,
    };
    let (ts_ns, stream, partial, content) = unwrapped.unwrap_or((None, None, false, text));
    let piece = Pending {
        start,
        ts_ns,
        stream,
        text: content,
        lines: 1,
        last: now,
    };
    let whole = match t.partial.take() {
        Some(mut p) => {
            let room = max_line.saturating_sub(p.text.len());
            let cut = floor_char(&piece.text, room);
            p.text.push_str(&piece.text[..cut]);
            p.last = now;
            p
        }
        None => piece,
    };
    if partial {
        t.partial = Some(whole);
    } else {
        logical_line(t, src, whole, max_line, recs);
    }
}

fn floor_char(s: &str, n: usize) -> usize {
    let mut n = n.min(s.len());
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    n
}

/// A whole line: joined into a multiline record, or a record of its own.
fn logical_line(
    t: &mut Tracked,
    src: &LogFilesConfig,
    line: Pending,
    max_line: usize,
    recs: &mut Vec<Rec>,
) {
    let Some(ml) = &src.multiline else {
        recs.push(record_of(line, src.format));
        return;
    };
    if ml.start.is_match(&line.text) {
        if let Some(m) = t.multi.replace(line) {
            recs.push(record_of(m, src.format));
        }
    } else if let Some(m) = t.multi.as_mut() {
        let room = max_line.saturating_sub(m.text.len() + 1);
        if room > 0 {
            m.text.push('\n');
            let cut = floor_char(&line.text, room);
            m.text.push_str(&line.text[..cut]);
        }
        m.lines += 1;
        m.last = line.last;
        if m.lines >= ml.max_lines {
            let m = t.multi.take().unwrap();
            recs.push(record_of(m, src.format));
        }
    } else {
        recs.push(record_of(line, src.format));
    }
}

fn record_of(p: Pending, fmt: LogFormat) -> Rec {
    let ts = p.ts_ns.or_else(|| match fmt {
        LogFormat::Json | LogFormat::Logfmt => format::fields(&p.text).ts_ns,
        _ => None,
    });
    Rec {
        ts_ns: ts.unwrap_or_else(|| crate::base::clock::now_ns() as i64),
        stream: p.stream,
        text: p.text,
    }
}

/// The records of one file as OTLP: one resource per output stream (stdout/stderr).
fn resource_logs(path: &Path, src: &LogFilesConfig, recs: Vec<Rec>) -> Vec<ResourceLogs> {
    if recs.is_empty() {
        return Vec::new();
    }
    let mut labels: Vec<(String, String)> = src.labels.clone();
    for (k, v) in path_labels(path) {
        if !labels.iter().any(|(n, _)| *n == k) {
            labels.push((k, v));
        }
    }
    labels.push(("filename".into(), path.display().to_string()));
    let observed = crate::base::clock::now_ns();
    let mut by_stream: Vec<(Option<String>, Vec<LogRecord>)> = Vec::new();
    for r in recs {
        let f = format::fields(&r.text);
        let (sev, sev_text) = f
            .level
            .as_deref()
            .map(crate::traces::logscan::severity)
            .unwrap_or((0, String::new()));
        let rec = LogRecord {
            time_unix_nano: r.ts_ns.max(0) as u64,
            observed_time_unix_nano: observed,
            severity_number: sev,
            severity_text: sev_text,
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(r.text)),
            }),
            trace_id: f.trace_id.map(|t| t.to_vec()).unwrap_or_default(),
            span_id: f.span_id.map(|s| s.to_vec()).unwrap_or_default(),
            ..Default::default()
        };
        match by_stream.iter_mut().find(|(s, _)| *s == r.stream) {
            Some((_, v)) => v.push(rec),
            None => by_stream.push((r.stream, vec![rec])),
        }
    }
    by_stream
        .into_iter()
        .map(|(stream, records)| {
            let mut labels = labels.clone();
            if let Some(s) = stream {
                labels.push(("stream".into(), s));
            }
            crate::traces::logscan::stream_resource_logs(&labels, records)
        })
        .collect()
}

/// Runs the collector until `shutdown`: a round on a blocking thread, then its batch stored
/// with its positions; idle rounds wait `poll_interval`.
pub async fn run(
    cfg: LogsConfig,
    store: TraceStore,
    max_store_bytes: u64,
    shutdown: CancellationToken,
) {
    if cfg.files.is_empty() {
        return;
    }
    let stored = loop {
        match store.file_positions().await {
            Ok(p) => break p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read log file positions yet; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.cancelled() => return,
                }
            }
        }
    };
    let poll = cfg.poll_interval;
    let mut c = Collector::new(cfg, max_store_bytes, stored);
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        let (back, batch) = match tokio::task::spawn_blocking(move || {
            let b = c.round();
            (c, b)
        })
        .await
        {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(error = %e, "log file collector failed");
                return;
            }
        };
        c = back;
        let busy = batch.busy;
        if !batch.positions.is_empty() {
            let positions = batch.positions.clone();
            match store.append_logs_at(batch.data, batch.positions).await {
                Ok(()) => c.committed(&positions),
                Err(e) => {
                    tracing::warn!(error = %e, "storing collected log lines failed; will read them again");
                    c.rewind();
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = shutdown.cancelled() => return,
                    }
                    continue;
                }
            }
        }
        if !busy {
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_paths() {
        assert_eq!(
            path_labels(Path::new(
                "/var/log/pods/prod_web-7d9f_0a1b2c3d-1111/nginx/0.log"
            )),
            vec![
                ("container".to_string(), "nginx".to_string()),
                ("namespace".to_string(), "prod".to_string()),
                ("pod".to_string(), "web-7d9f".to_string()),
            ]
        );
        assert_eq!(
            path_labels(Path::new(
                "/var/log/containers/web-7d9f_prod_nginx-0123456789abcdef.log"
            )),
            vec![
                ("container".to_string(), "nginx".to_string()),
                ("namespace".to_string(), "prod".to_string()),
                ("pod".to_string(), "web-7d9f".to_string()),
            ]
        );
        assert!(path_labels(Path::new("/var/log/syslog")).is_empty());
    }
}
