//! The chunk decoder that reads SQLite blobs back, and the in-place reader of span chunks the
//! indexer and trace fetches use (a damaged database must not crash reads or indexing).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline::traces::{chunk, wire};

/// Everything the indexer and a trace fetch read of each span.
fn walk(traces_data: &[u8]) {
    let _ = wire::for_each_span(traces_data, |place, span| -> Result<(), wire::WireError> {
        let _ = wire::trace_id(span)?;
        if let Some(scope) = place.scope {
            let _ = wire::scope_name_version(scope)?;
        }
        let s = wire::SpanRef::parse(span)?;
        s.attributes(|_, v| {
            if let wire::AnyRef::Nested(raw) = v {
                let _ = wire::AnyRef::nested_json(raw);
            }
        })
    });
}

fuzz_target!(|data: &[u8]| {
    let _ = chunk::decode_spans(data);
    let _ = chunk::decode_logs(data);
    if let Ok(raw) = chunk::inflate_spans(data) {
        walk(&raw);
    }
    walk(data);
});
