//! The PromQL parser (`/api/v1/query` text is untrusted): no panic, no stack overflow on deep
//! nesting, and whatever parses prints to text that parses back to the same text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data)
        && let Ok(e) = sightline::promql::parse(s)
    {
        let printed = e.to_string();
        let again = sightline::promql::parse(&printed)
            .unwrap_or_else(|err| panic!("{s:?} printed as {printed:?}, which fails: {err}"));
        assert_eq!(again.to_string(), printed, "round trip of {s:?}");
    }
});
