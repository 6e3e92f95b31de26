//! Decoded chunks handed from the writer to the indexer (issue 25): the writer has each chunk's
//! spans or records decoded already, so the indexer takes them from here instead of reading the
//! chunk back from SQLite, inflating and decoding it again. Best effort and bounded: a chunk
//! not found here (the indexer ran ahead of the hand-off, the map was full, a restart) is read
//! from SQLite as before, which stays the source of truth.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::logs::v1::LogsData;
use opentelemetry_proto::tonic::trace::v1::TracesData;
use parking_lot::Mutex;

/// Spans and records held at most (decoded, a span with its attributes takes a few KiB): past
/// it, chunks go through SQLite.
const MAX_ITEMS: usize = 12_288;

/// A chunk's content, decoded.
pub enum Decoded {
    Spans(TracesData),
    Logs(LogsData),
}

#[derive(Default)]
pub struct Handoff(Mutex<Held>);

#[derive(Default)]
struct Held {
    chunks: BTreeMap<i64, (Decoded, usize)>,
    items: usize,
}

impl Handoff {
    /// Offers a committed chunk of `items` spans or records; dropped when it would not fit.
    pub fn offer(&self, id: i64, d: Decoded, items: usize) {
        let mut m = self.0.lock();
        if m.items + items <= MAX_ITEMS {
            m.items += items;
            m.chunks.insert(id, (d, items));
        }
    }

    /// Takes chunk `id` if it is here, and forgets every older one (the indexer goes in id
    /// order, so those are done or will be read from SQLite).
    pub fn take(&self, id: i64) -> Option<Decoded> {
        let mut m = self.0.lock();
        let found = m.chunks.remove(&id);
        let mut freed = found.as_ref().map_or(0, |f| f.1);
        while let Some(entry) = m.chunks.first_entry() {
            if *entry.key() >= id {
                break;
            }
            freed += entry.remove().1;
        }
        m.items -= freed;
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
        let per = MAX_ITEMS / 48;
        for id in 1..=100 {
            h.offer(id, Decoded::Spans(TracesData::default()), per);
        }
        assert_eq!(h.len(), 48, "full: the rest go through SQLite");
        assert!(h.take(3).is_some());
        assert_eq!(h.len(), 45, "1 and 2 forgotten with 3 taken");
        h.offer(101, Decoded::Spans(TracesData::default()), 3 * per);
        assert_eq!(h.len(), 46, "room again");
        assert!(h.take(2).is_none());
        assert!(h.take(1000).is_none());
        assert!(h.is_empty());
    }
}
