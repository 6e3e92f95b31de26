//! `alertmanager.yml` text: YAML, every check, matchers, time intervals; and matcher lists as
//! the API's `filter` parameters take them. Neither may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = sightline::alertmanager::config::load(s, std::path::Path::new(""));
    if let Ok(ms) = sightline::alertmanager::matcher::parse_matchers(s) {
        let text = sightline::alertmanager::matcher::matchers_text(&ms);
        // What prints parses back to the same matchers.
        let again = sightline::alertmanager::matcher::parse_matchers(&text).expect("printed matchers parse");
        assert_eq!(sightline::alertmanager::matcher::matchers_text(&again), text);
    }
});
