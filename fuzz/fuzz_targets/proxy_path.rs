//! The proxy's path normaliser on arbitrary request paths (untrusted): never panics; what it
//! returns is absolute, free of `.`/`..` segments and empty segments, canonical (normalising it
//! again changes nothing), and in strict mode (proxied routes) free of encoded separators and
//! encoded dots, so an upstream that decodes it once more sees the same path. A path it places
//! under a route prefix stays under that prefix after any further normalisation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline::base::urlpath::{normalise, under};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    for strict in [false, true] {
        let Ok(n) = normalise(s, strict) else {
            continue;
        };
        assert!(n.starts_with('/'), "{s:?} -> {n:?}");
        assert_eq!(normalise(&n, strict).as_deref(), Ok(n.as_str()), "not idempotent: {s:?}");
        assert!(!n.contains("//"), "{s:?} -> {n:?}");
        for seg in n.split('/').skip(1) {
            assert!(seg != "." && seg != "..", "{s:?} -> {n:?}");
        }
        let lower = n.to_ascii_lowercase();
        assert!(!lower.contains("%2e") && !n.contains('\\'), "{s:?} -> {n:?}");
        if strict {
            assert!(!lower.contains("%2f") && !lower.contains("%5c"), "{s:?} -> {n:?}");
            // Decoding once more (what a careless upstream does) keeps it under its prefix.
            if under(&n, "/app") {
                let once: Vec<u8> = sightline::base::urlpath::decode(&n).unwrap_or_default();
                let once = String::from_utf8_lossy(&once);
                if let Ok(again) = normalise(&once, false) {
                    assert!(under(&again, "/app"), "{s:?} -> {n:?} -> {again:?}");
                }
            }
        }
    }
});
