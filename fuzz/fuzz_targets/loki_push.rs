//! Loki push bodies: stream label sets, JSON pushes, protobuf `PushRequest`s, and their
//! conversion to OTLP logs with Loki's validation; nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use sightline::ingest::loki::{PushRequest, from_json, from_proto, parse_labels, to_otlp};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_labels(text);
    }
    if let Ok(streams) = from_json(data) {
        let _ = to_otlp(streams, 1_800_000_000_000_000_000);
    }
    if let Ok(req) = PushRequest::decode(data) {
        let _ = to_otlp(from_proto(req), 1_800_000_000_000_000_000);
    }
});
