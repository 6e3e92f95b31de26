//! The series-selector parser (PromQL's, selector alone) behind `match[]` (Prometheus API parameters are untrusted).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = sightline::promql::parse_selector(s);
    }
});
