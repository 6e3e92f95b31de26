//! The wall clock in the units the stores use: milliseconds (metrics), microseconds (the Jaeger
//! API) and nanoseconds (spans and logs), all since the Unix epoch. A clock before 1970 reads 0.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    since_epoch().as_millis() as i64
}

/// Microseconds since the Unix epoch.
pub fn now_us() -> u64 {
    since_epoch().as_micros() as u64
}

/// Nanoseconds since the Unix epoch.
pub fn now_ns() -> u64 {
    since_epoch().as_nanos() as u64
}

/// Time since the Unix epoch as a [`Duration`].
pub fn now() -> Duration {
    since_epoch()
}

/// Civil date (year, month, day) and second of the day from Unix seconds (UTC).
pub fn civil(secs: i64) -> (i64, u32, u32, i64) {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d, sod)
}

/// A UTC time (ns) as Go writes `time.Time`: the date, `sep`, the time with the fraction's
/// trailing zeros trimmed, then `zone` (`'T'`, `"Z"` for RFC 3339 in JSON; `' '`,
/// `" +0000 UTC"` for `String()`).
pub fn go_time_text(ns: i64, sep: char, zone: &str) -> String {
    let (y, mo, d, sod) = civil(ns.div_euclid(1_000_000_000));
    let frac = ns.rem_euclid(1_000_000_000);
    let mut s = format!(
        "{y:04}-{mo:02}-{d:02}{sep}{:02}:{:02}:{:02}",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    );
    if frac != 0 {
        let f = format!("{frac:09}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    s.push_str(zone);
    s
}
