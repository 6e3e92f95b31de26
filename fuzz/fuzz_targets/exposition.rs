//! The Prometheus text 0.0.4 / OpenMetrics parser that reads scraped bodies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline::scrape::exposition::{Format, parse};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse(text, Format::Text);
        let _ = parse(text, Format::OpenMetrics);
    }
});
