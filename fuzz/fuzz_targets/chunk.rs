//! The chunk decoder that reads SQLite blobs back (a damaged database must not crash reads).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline::traces::chunk;

fuzz_target!(|data: &[u8]| {
    let _ = chunk::decode_spans(data);
    let _ = chunk::decode_logs(data);
});
