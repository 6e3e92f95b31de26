//! Decoded chunks handed from the writer to the indexer (issue 25): the writer has each chunk's
//! spans or records decoded already, so the indexer takes them from here instead of reading the
//! chunk back from SQLite, inflating and decoding it again. Best effort and bounded: a chunk
//! not found here (the indexer ran ahead of the hand-off, the map was full, a restart) is read
//! from SQLite as before, which stays the source of truth.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::logs::v1::LogsData;
use opentelemetry_proto::tonic::trace::v1::TracesData;
use parking_lot::Mutex;

/// Chunks held at most (each a few hundred KiB decoded): past it, chunks go through SQLite.
const MAX_CHUNKS: usize = 48;

/// A chunk's content, decoded.
pub enum Decoded {
    Spans(TracesData),
    Logs(LogsData),
}

#[derive(Default)]
pub struct Handoff(Mutex<BTreeMap<i64, Decoded>>);

impl Handoff {
    /// Offers a committed chunk; dropped when the map is full.
    pub fn offer(&self, id: i64, d: Decoded) {
        let mut m = self.0.lock();
        if m.len() < MAX_CHUNKS {
            m.insert(id, d);
        }
    }

    /// Takes chunk `id` if it is here, and forgets every older one (the indexer goes in id
    /// order, so those are done or will be read from SQLite).
    pub fn take(&self, id: i64) -> Option<Decoded> {
        let mut m = self.0.lock();
        let d = m.remove(&id);
        while let Some((&first, _)) = m.first_key_value() {
            if first >= id {
                break;
            }
            m.pop_first();
        }
        d
    }

    pub fn len(&self) -> usize {
        self.0.lock().len()
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
        for id in 1..=100 {
            h.offer(id, Decoded::Spans(TracesData::default()));
        }
        assert_eq!(h.len(), MAX_CHUNKS, "full: the rest go through SQLite");
        assert!(h.take(3).is_some());
        assert_eq!(h.len(), MAX_CHUNKS - 3, "1 and 2 forgotten with 3 taken");
        assert!(h.take(2).is_none());
        assert!(h.take(1000).is_none());
        assert!(h.is_empty());
    }
}
