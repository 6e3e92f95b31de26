//! Series keys (issue 25): a front door that sees the same series again and again names each
//! by a 128-bit hash of how the series arrives (an OTLP target's identity and the point's
//! attributes; a remote write series' labels as sent), computed without allocating. The first
//! time a key is sent it goes with the series' labels ([`crate::tsdb::Batch::series_keys`]);
//! after that the key alone ([`crate::tsdb::Batch::keyed`]). [`KnownKeys`] remembers which keys
//! were sent with labels; keys the store does not know come back and are forgotten here, so
//! their series go with labels again.

use std::collections::HashSet;

use parking_lot::{Mutex, MutexGuard};
use xxhash_rust::xxh3::Xxh3;

/// Keys remembered at most; past it the set starts over (every series goes once more with its
/// labels).
const MAX_KNOWN_KEYS: usize = 2_000_000;

/// Where a key was made: the same bytes from two front doors must not make the same key.
#[derive(Clone, Copy)]
pub enum Domain {
    Otlp = 1,
    RemoteWrite = 2,
}

/// A key hash under way.
pub struct KeyHasher(Xxh3);

impl KeyHasher {
    pub fn new(domain: Domain) -> KeyHasher {
        let mut h = Xxh3::new();
        h.update(&[domain as u8]);
        KeyHasher(h)
    }

    /// One length-prefixed field.
    pub fn field(&mut self, bytes: &[u8]) {
        self.0.update(&(bytes.len() as u32).to_le_bytes());
        self.0.update(bytes);
    }

    /// Raw bytes (fixed-size values, type tags).
    pub fn raw(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub fn finish(&self) -> u128 {
        self.0.digest128()
    }
}

/// Keys sent with labels, which the store has most likely registered.
#[derive(Default)]
pub struct KnownKeys(Mutex<HashSet<u128>>);

impl KnownKeys {
    /// The set, for a whole conversion; emptied first when it is full.
    pub fn lock(&self) -> MutexGuard<'_, HashSet<u128>> {
        let mut g = self.0.lock();
        if g.len() >= MAX_KNOWN_KEYS {
            g.clear();
        }
        g
    }

    /// Forgets keys the store did not know.
    pub fn forget(&self, keys: &HashSet<u128>) {
        self.0.lock().retain(|k| !keys.contains(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_delimited_and_domains_apart() {
        let key = |d: Domain, parts: &[&str]| {
            let mut h = KeyHasher::new(d);
            for p in parts {
                h.field(p.as_bytes());
            }
            h.finish()
        };
        assert_eq!(
            key(Domain::Otlp, &["a", "b"]),
            key(Domain::Otlp, &["a", "b"])
        );
        assert_ne!(
            key(Domain::Otlp, &["ab", ""]),
            key(Domain::Otlp, &["a", "b"])
        );
        assert_ne!(
            key(Domain::Otlp, &["a", "b"]),
            key(Domain::RemoteWrite, &["a", "b"])
        );
    }

    #[test]
    fn forgotten_keys_are_gone() {
        let k = KnownKeys::default();
        k.lock().extend([1u128, 2, 3]);
        k.forget(&[2u128].into());
        assert_eq!(*k.lock(), [1u128, 3].into());
    }
}
