//! The tag query parser, both forms (logfmt and Jaeger's JSON), and evaluation of what parses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline::traces::model::TagValue;
use sightline::traces::tagquery;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let tags = vec![
        ("http.status_code".to_string(), TagValue::I64(503)),
        ("user".to_string(), TagValue::Str("alice".into())),
        ("ratio".to_string(), TagValue::F64(0.5)),
    ];
    if let Ok(filters) = tagquery::parse(text) {
        let _ = tagquery::matches(&filters, &tags);
    }
    if let Ok(filters) = tagquery::parse_json(text) {
        let _ = tagquery::matches(&filters, &tags);
    }
    let _ = tagquery::parse_colon_pair(text);
});
