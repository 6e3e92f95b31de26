//! Prometheus remote write 1.0 bodies: snappy (length checked before inflating), protobuf,
//! conversion to a store batch; nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = sightline::ingest::remote_write::decode(data, 1 << 20) {
        let _ = sightline::ingest::remote_write::to_batch(&req);
    }
});
