//! `sightline test rules` input: series notation values and metric names.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = sightline::rules::unittest::parse_values(s);
        let _ = sightline::rules::unittest::parse_metric(s);
    }
});
