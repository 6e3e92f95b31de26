//! OTLP/JSON bodies through the server's decode path. Must never panic or overflow the stack.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use sightline::ingest::http::{Format, decode_body};

const CAP: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    match selector % 3 {
        0 => {
            let _ = decode_body::<ExportTraceServiceRequest>(Format::Json, false, body, CAP);
        }
        1 => {
            let _ = decode_body::<ExportLogsServiceRequest>(Format::Json, false, body, CAP);
        }
        _ => {
            let _ = decode_body::<ExportMetricsServiceRequest>(Format::Json, false, body, CAP);
        }
    }
});
