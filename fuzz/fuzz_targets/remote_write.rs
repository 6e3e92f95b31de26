//! Prometheus remote write bodies: snappy (length checked before inflating), protobuf (1.0
//! `WriteRequest` and 2.0 `Request`), conversion to a store batch including native histograms
//! to classic buckets and exemplars; also the raw bytes as one unframed protobuf message of each
//! kind, so the fuzzer reaches the converters without having to learn snappy; nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use sightline::ingest::remote_write::{
    Keys, RequestV2, WriteRequest, decode, decode_as, to_batch, to_batch_keyed, v2_to_batch,
};

/// The 1.0 conversions: by labels, by key the way the server sends a series the second time, and
/// the resend of those keys.
fn convert(req: &WriteRequest) {
    let _ = to_batch(req);
    let mut known = std::collections::HashSet::new();
    let _ = to_batch_keyed(req, Keys::Known(&mut known));
    let _ = to_batch_keyed(req, Keys::Known(&mut known));
    let _ = to_batch_keyed(req, Keys::Resend(&known));
}

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = decode(data, 1 << 20) {
        convert(&req);
    }
    if let Ok(req) = decode_as::<RequestV2>(data, 1 << 20) {
        let _ = v2_to_batch(&req);
    }
    if let Ok(req) = WriteRequest::decode(data) {
        convert(&req);
    }
    if let Ok(req) = RequestV2::decode(data) {
        let _ = v2_to_batch(&req);
    }
});
