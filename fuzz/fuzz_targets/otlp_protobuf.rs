//! OTLP/HTTP protobuf bodies (optionally gzip) through the same decode path the server uses,
//! then through the Jaeger rendering of every decoded span. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use sightline::ingest::http::{Format, decode_body};

const CAP: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    let gzip = selector & 1 == 1;
    match selector >> 1 & 3 {
        0 => {
            if let Ok(req) = decode_body::<ExportTraceServiceRequest>(Format::Protobuf, gzip, body, CAP) {
                sightline_fuzz_render(req);
            }
        }
        1 => {
            let _ = decode_body::<ExportLogsServiceRequest>(Format::Protobuf, gzip, body, CAP);
        }
        _ => {
            let _ = decode_body::<ExportMetricsServiceRequest>(Format::Protobuf, gzip, body, CAP);
        }
    }
});

fn sightline_fuzz_render(req: ExportTraceServiceRequest) {
    use std::sync::Arc;
    let mut spans = Vec::new();
    for rs in req.resource_spans {
        let resource = Arc::new(rs.resource);
        for ss in rs.scope_spans {
            let scope = Arc::new(ss.scope);
            for span in ss.spans {
                spans.push(sightline::traces::StoredSpan { resource: resource.clone(), scope: scope.clone(), span });
            }
        }
    }
    let _ = serde_json::to_string(&sightline::api::jaeger::to_jaeger(&[1; 16], &spans));
}
