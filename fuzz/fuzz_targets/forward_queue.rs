//! The forwarder's untrusted or damageable bytes: a forward-queue segment as found on disk
//! (scanned, then opened and drained through the real recovery path), and an upstream's answer
//! (partial success in protobuf or JSON, error text, `Retry-After`). None may panic, and a
//! recovered queue only ever yields whole, checksummed records.
#![no_main]

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use libfuzzer_sys::fuzz_target;
use sightline::forward::{ForwardCounters, client, queue};

fuzz_target!(|data: &[u8]| {
    let signal = data.first().map_or(0, |b| (b % 3) as usize);
    // An upstream's answer.
    let _ = client::partial_success(signal, data, false);
    let _ = client::partial_success(signal, data, true);
    let _ = client::error_text(data, signal == 1, signal == 2);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = client::parse_retry_after(s);
    }
    // A segment: the fuzz input after a valid header.
    let mut seg = Vec::with_capacity(data.len() + 8);
    seg.extend_from_slice(queue::SEGMENT_MAGIC);
    seg.extend_from_slice(&[queue::SEGMENT_VERSION, signal as u8, 0, 0]);
    seg.extend_from_slice(data);
    let (valid, items, _) = queue::scan(&seg, queue::HEADER_LEN + 12);
    assert!(valid as usize <= seg.len() && valid >= queue::HEADER_LEN);
    let dir = tempfile::tempdir().unwrap();
    let qdir = dir.path().join("q");
    std::fs::create_dir_all(&qdir).unwrap();
    std::fs::write(qdir.join("0000000000000001.seg"), &seg).unwrap();
    let counters = Arc::new(ForwardCounters::default());
    let (q, _) = queue::Queue::open(qdir, signal, Arc::new(AtomicU64::new(0)), counters).unwrap();
    assert_eq!(q.pending_items(), items);
    let mut got = 0;
    while let Ok(Some(b)) = q.peek(1 << 16) {
        got += b.items;
        q.ack(&b);
    }
    assert_eq!(got, items);
});
