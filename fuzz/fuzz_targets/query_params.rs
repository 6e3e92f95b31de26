//! Query strings of the query APIs and the UI (untrusted): the Jaeger search, log search and
//! Jaeger Monitor parameter parsers and the UI's time range never panic, and the PromQL the
//! Monitor endpoints build from any accepted parameters (service names regex-escaped and quoted)
//! always parses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline::base::params::Params;

fuzz_target!(|data: &[u8]| {
    let Ok(q) = std::str::from_utf8(data) else {
        return;
    };
    let p = Params::parse(Some(q));
    let _ = sightline::traces::params::trace_search(&p);
    let _ = sightline::traces::params::log_search(&p);
    let r = sightline::ui::Range::from(&p);
    assert!(r.start_ms() <= r.end_ms);
    if let Ok(b) = sightline::api::spm::parse_base(&p) {
        let promql = sightline::api::spm::calls_query(&b);
        sightline::promql::parse(&promql)
            .unwrap_or_else(|e| panic!("{q:?} built {promql:?}, which fails: {e}"));
    }
});
