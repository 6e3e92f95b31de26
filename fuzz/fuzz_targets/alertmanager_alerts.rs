//! `POST /api/v2/alerts` bodies: parsing, validation, and the alert model (fingerprints,
//! merging); nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let now = 1_800_000_000_000_000_000;
    if let Ok(alerts) = sightline::api::alertmanager::parse_alerts(data, 300_000_000_000, now) {
        for a in &alerts {
            let _ = sightline::alertmanager::validate_alert(a);
            let _ = a.fingerprint();
            let _ = a.merge(&alerts[0], now);
        }
    }
});
