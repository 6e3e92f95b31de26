//! Chunks handed from the writer to the indexer (issue 25): the writer has each chunk's spans
//! encoded (before compressing them) and its log records decoded, so the indexer takes them
//! from here instead of reading the chunk back from SQLite and inflating it. Best effort and
//! bounded by memory: a chunk not found here (the indexer ran ahead of the hand-off, the map was
//! full, a restart) is read from SQLite as before, which stays the source of truth.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::logs::v1::LogsData;
use parking_lot::Mutex;

/// Bytes held at most: past it, chunks go through SQLite (inflating one costs a fraction of a
/// millisecond; the spans are read in place either way). About 50 chunks of 512 spans of the
/// production shape (600 bytes each encoded), so a commit's pause does not push chunks out.
const MAX_BYTES: usize = 16 << 20;
/// What a decoded log record is counted as (with its attributes it takes a few KiB).
const LOG_RECORD_BYTES: usize = 2048;

/// A chunk's content: spans as the protobuf encoding of their `TracesData`, records decoded.
pub enum Handed {
    Spans(Vec<u8>),
    Logs(LogsData),
}

impl Handed {
    /// The bytes it is counted as, given the number of spans or records.
    pub fn weight(&self, items: usize) -> usize {
        match self {
            Handed::Spans(raw) => raw.len(),
            Handed::Logs(_) => items * LOG_RECORD_BYTES,
        }
    }
}

#[derive(Default)]
pub struct Handoff(Mutex<Held>);

#[derive(Default)]
struct Held {
    chunks: BTreeMap<i64, (Handed, usize)>,
    bytes: usize,
}

impl Handoff {
    /// Offers a committed chunk of `items` spans or records; dropped when it would not fit.
    pub fn offer(&self, id: i64, d: Handed, items: usize) {
        let weight = d.weight(items);
        let mut m = self.0.lock();
        if m.bytes + weight <= MAX_BYTES {
            m.bytes += weight;
            m.chunks.insert(id, (d, weight));
        }
    }

    /// Takes chunk `id` if it is here, and forgets every older one (the indexer goes in id
    /// order, so those are done or will be read from SQLite).
    pub fn take(&self, id: i64) -> Option<Handed> {
        let mut m = self.0.lock();
        let found = m.chunks.remove(&id);
        let mut freed = found.as_ref().map_or(0, |f| f.1);
        while let Some(entry) = m.chunks.first_entry() {
            if *entry.key() >= id {
                break;
            }
            freed += entry.remove().1;
        }
        m.bytes -= freed;
        found.map(|f| f.0)
    }

    pub fn len(&self) -> usize {
        self.0.lock().chunks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_in_order() {
        let h = Handoff::default();
        let per = MAX_BYTES / 48;
        for id in 1..=100 {
            h.offer(id, Handed::Spans(vec![0; per]), 0);
        }
        assert_eq!(h.len(), 48, "full: the rest go through SQLite");
        assert!(h.take(3).is_some());
        assert_eq!(h.len(), 45, "1 and 2 forgotten with 3 taken");
        h.offer(101, Handed::Spans(vec![0; 3 * per]), 0);
        assert_eq!(h.len(), 46, "room again");
        assert!(h.take(2).is_none());
        assert!(h.take(1000).is_none());
        assert!(h.is_empty());
    }
}
