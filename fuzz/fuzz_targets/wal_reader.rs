//! The metrics WAL reader: segment framing, checksums and every record type (a damaged log must
//! be cut, never crash the replay).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline::tsdb::wal;

fuzz_target!(|data: &[u8]| {
    // As a whole segment (with a valid header in front, so records are reached) ...
    let mut seg = wal::SEGMENT_MAGIC.to_vec();
    seg.extend_from_slice(&[wal::SEGMENT_VERSION, 0, 0, 0]);
    seg.extend_from_slice(data);
    let r = wal::read_segment(&seg);
    assert!(r.valid_len <= seg.len());
    let _ = wal::read_segment(data);
    // ... and as a bare record payload of each type.
    if let Some((&typ, payload)) = data.split_first() {
        let _ = wal::decode_record(typ % 8, payload);
    }
});
