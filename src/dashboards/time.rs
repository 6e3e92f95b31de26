//! Grafana's notion of time: relative times (`now-6h`, `now/d`, `now-1d/d`), absolute ones (epoch
//! milliseconds, ISO dates), and the query interval Grafana derives from a time range and a
//! panel's resolution (`$__interval`, `$__rate_interval`). All calendar arithmetic is in UTC: the
//! server cannot know the browser's zone, so `now/d` is the UTC day.

use crate::base::clock::{civil, days_from_civil};

const SEC: i64 = 1000;
const MIN: i64 = 60 * SEC;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;
const WEEK: i64 = 7 * DAY;

/// The Prometheus data source's default scrape interval, the floor of every query step.
pub const DEFAULT_SCRAPE_MS: i64 = 15 * SEC;

/// A time as Grafana reads `from`/`to`: `now` with `+N<unit>`, `-N<unit>` and `/<unit>` steps,
/// epoch milliseconds, or an ISO 8601 date. `round_up` rounds `/unit` to the unit's last
/// millisecond (Grafana does so for `to`). `None` for anything else.
pub fn parse(text: &str, now_ms: i64, round_up: bool) -> Option<i64> {
    let t = text.trim();
    if t.is_empty() || t.len() > 64 {
        return None;
    }
    if let Some(rest) = t.strip_prefix("now") {
        return date_math(rest, now_ms, round_up);
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse::<i64>().ok().filter(|v| *v <= 4_102_444_800_000);
    }
    iso(t)
}

/// `YYYY-MM-DD`, `YYYY-MM-DD HH:MM:SS` or RFC 3339 (UTC unless it says otherwise).
fn iso(t: &str) -> Option<i64> {
    if let Some(ns) = crate::base::clock::parse_rfc3339_ns(t) {
        return Some(ns / 1_000_000);
    }
    let with_zone = match t.len() {
        10 => format!("{t}T00:00:00Z"),
        19 => format!("{t}Z"),
        _ => return None,
    };
    crate::base::clock::parse_rfc3339_ns(&with_zone).map(|ns| ns / 1_000_000)
}

fn date_math(mut rest: &str, now_ms: i64, round_up: bool) -> Option<i64> {
    let mut t = now_ms;
    while !rest.is_empty() {
        let op = rest.as_bytes()[0];
        // Only ASCII operators go on: slicing after anything else could split a character.
        if !matches!(op, b'/' | b'+' | b'-') {
            return None;
        }
        rest = &rest[1..];
        match op {
            b'/' => {
                let (unit, tail) = unit_prefix(rest)?;
                t = round(t, unit, round_up);
                rest = tail;
            }
            b'+' | b'-' => {
                let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
                let n: i64 = if digits == 0 {
                    1
                } else {
                    rest[..digits].parse().ok()?
                };
                if n > 1_000_000 {
                    return None;
                }
                let (unit, tail) = unit_prefix(&rest[digits..])?;
                t = add(t, if op == b'-' { -n } else { n }, unit)?;
                rest = tail;
            }
            _ => return None,
        }
    }
    Some(t)
}

fn unit_prefix(s: &str) -> Option<(u8, &str)> {
    let u = *s.as_bytes().first()?;
    matches!(u, b's' | b'm' | b'h' | b'd' | b'w' | b'M' | b'y' | b'Q').then(|| (u, &s[1..]))
}

fn add(t: i64, n: i64, unit: u8) -> Option<i64> {
    let fixed = match unit {
        b's' => SEC,
        b'm' => MIN,
        b'h' => HOUR,
        b'd' => DAY,
        b'w' => WEEK,
        b'M' => return Some(add_months(t, n)),
        b'Q' => return Some(add_months(t, n * 3)),
        b'y' => return Some(add_months(t, n * 12)),
        _ => return None,
    };
    t.checked_add(n.checked_mul(fixed)?)
}

/// Calendar months later (earlier for negative `n`), the day clamped to the month's length.
fn add_months(t: i64, n: i64) -> i64 {
    let (y, m, d, _) = civil(t.div_euclid(SEC));
    let in_day = t.rem_euclid(DAY);
    let (y2, m2) = (
        y + (m as i64 - 1 + n).div_euclid(12),
        (m as i64 - 1 + n).rem_euclid(12) + 1,
    );
    let len = days_from_civil(y2, m2 + 1, 1) - days_from_civil(y2, m2, 1);
    days_from_civil(y2, m2, (d as i64).min(len)) * DAY + in_day
}

/// The start of `t`'s unit (its last millisecond with `up`); weeks start on Monday (ISO).
fn round(t: i64, unit: u8, up: bool) -> i64 {
    let (y, m, _, _) = civil(t.div_euclid(SEC));
    let start = match unit {
        b's' => t - t.rem_euclid(SEC),
        b'm' => t - t.rem_euclid(MIN),
        b'h' => t - t.rem_euclid(HOUR),
        b'd' => t - t.rem_euclid(DAY),
        // 1970-01-01 was a Thursday: day 4 after a Monday.
        b'w' => {
            let days = t.div_euclid(DAY);
            (days - (days + 3).rem_euclid(7)) * DAY
        }
        b'M' => days_from_civil(y, m as i64, 1) * DAY,
        b'Q' => days_from_civil(y, (m as i64 - 1) / 3 * 3 + 1, 1) * DAY,
        _ => days_from_civil(y, 1, 1) * DAY,
    };
    if !up {
        return start;
    }
    let next = match unit {
        b'M' => add_months(start, 1),
        b'Q' => add_months(start, 3),
        b'y' => add_months(start, 12),
        _ => add(start, 1, unit).unwrap_or(start),
    };
    next - 1
}

/// Grafana's ladder of "nice" intervals (`rangeutil.roundInterval`): the interval a raw
/// `range / resolution` rounds to.
pub fn round_interval(ms: i64) -> i64 {
    const LADDER: [(i64, i64); 29] = [
        (10, 1),
        (15, 10),
        (35, 20),
        (75, 50),
        (150, 100),
        (350, 200),
        (750, 500),
        (1_500, SEC),
        (3_500, 2 * SEC),
        (7_500, 5 * SEC),
        (12_500, 10 * SEC),
        (17_500, 15 * SEC),
        (25_000, 20 * SEC),
        (45_000, 30 * SEC),
        (90_000, MIN),
        (210_000, 2 * MIN),
        (450_000, 5 * MIN),
        (750_000, 10 * MIN),
        (1_050_000, 15 * MIN),
        (1_500_000, 20 * MIN),
        (2_700_000, 30 * MIN),
        (5_400_000, HOUR),
        (9_000_000, 2 * HOUR),
        (16_200_000, 3 * HOUR),
        (32_400_000, 6 * HOUR),
        (DAY, 12 * HOUR),
        (WEEK, DAY),
        (3 * WEEK, WEEK),
        (6 * WEEK, 30 * DAY),
    ];
    LADDER
        .iter()
        .find(|(below, _)| ms < *below)
        .map(|(_, v)| *v)
        .unwrap_or(365 * DAY)
}

/// An interval as Grafana writes `$__interval` (`kbn.secondsToHms`): the largest whole unit.
pub fn format_interval(ms: i64) -> String {
    let s = ms / SEC;
    for (unit, len) in [("y", 31_536_000), ("d", 86_400), ("h", 3_600), ("m", 60)] {
        if s >= len {
            return format!("{}{unit}", s / len);
        }
    }
    if s >= 1 {
        return format!("{s}s");
    }
    format!("{}ms", ms.max(1))
}

/// A Grafana interval string (`15s`, `1m`, `>=30s`, `500ms`, `2`): milliseconds.
pub fn parse_interval(text: &str) -> Option<i64> {
    let t = text
        .trim()
        .trim_start_matches(">=")
        .trim_start_matches('>')
        .trim();
    if t.is_empty() {
        return None;
    }
    if let Ok(n) = t.parse::<f64>() {
        return (n.is_finite() && n > 0.0).then_some((n * 1000.0) as i64);
    }
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    let n: i64 = t[..digits].parse().ok()?;
    let unit = match &t[digits..] {
        "ms" => 1,
        "s" => SEC,
        "m" => MIN,
        "h" => HOUR,
        "d" => DAY,
        "w" => WEEK,
        "M" => 30 * DAY,
        "y" => 365 * DAY,
        _ => return None,
    };
    n.checked_mul(unit).filter(|v| *v > 0)
}

/// The interval a query gets: `range / resolution` rounded on Grafana's ladder, raised to the
/// lower limit (the panel's or query's min interval, else the scrape interval).
pub fn calculate_interval(range_ms: i64, resolution: i64, low_limit_ms: i64) -> i64 {
    round_interval(range_ms / resolution.max(1)).max(low_limit_ms.max(1))
}

/// `$__rate_interval`: `max($__interval + scrape interval, 4 * scrape interval)`.
pub fn rate_interval(interval_ms: i64, scrape_ms: i64) -> i64 {
    (interval_ms + scrape_ms).max(4 * scrape_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2024-03-15 13:45:30.250 UTC, a Friday.
    const NOW: i64 = 1_710_510_330_250;

    #[test]
    fn relative_times() {
        let day0 = 1_710_460_800_000; // 2024-03-15 00:00 UTC
        let cases: &[(&str, bool, i64)] = &[
            ("now", false, NOW),
            ("now-6h", false, NOW - 6 * HOUR),
            ("now-15m", false, NOW - 15 * MIN),
            ("now+1d", false, NOW + DAY),
            ("now/d", false, day0),
            ("now/d", true, day0 + DAY - 1),
            ("now-1d/d", false, day0 - DAY),
            ("now-1d/d", true, day0 - 1),
            ("now/w", false, day0 - 4 * DAY),
            ("now/M", false, 1_709_251_200_000), // 2024-03-01
            ("now/y", false, 1_704_067_200_000), // 2024-01-01
            ("now-1M", false, NOW - 29 * DAY),   // February 2024 has 29 days
            ("now/h", false, day0 + 13 * HOUR),
            ("1700000000000", false, 1_700_000_000_000),
            ("2024-01-01", false, 1_704_067_200_000),
            ("2024-01-01 06:00:00", false, 1_704_088_800_000),
            ("2024-01-01T06:00:00.000Z", false, 1_704_088_800_000),
        ];
        for (text, up, want) in cases {
            assert_eq!(parse(text, NOW, *up), Some(*want), "{text} (round up {up})");
        }
        // The fuzz target found the first: a multi-byte character where an operator goes.
        for bad in [
            "now€",
            "now-6h€",
            "now-€",
            "now/€",
            "",
            "yesterday",
            "now-",
            "now-6x",
            "now//d",
            "now-99999999999d",
            "now*2",
        ] {
            assert_eq!(parse(bad, NOW, false), None, "{bad}");
        }
        // Month arithmetic clamps the day: 31 March minus a month is 29 February.
        let mar31 = days_from_civil(2024, 3, 31) * DAY;
        assert_eq!(add_months(mar31, -1), days_from_civil(2024, 2, 29) * DAY);
    }

    #[test]
    fn intervals_as_grafana_computes_them() {
        // Grafana's table: 6 h over 1,000 px = 21.6 s -> 20 s; 24 h over 100 points -> 864 s
        // -> 15 m; 5 m over 1,500 px = 200 ms -> 200 ms, raised to the 15 s scrape interval.
        assert_eq!(calculate_interval(6 * HOUR, 1000, 1), 20 * SEC);
        assert_eq!(calculate_interval(DAY, 100, DEFAULT_SCRAPE_MS), 15 * MIN);
        assert_eq!(
            calculate_interval(5 * MIN, 1500, DEFAULT_SCRAPE_MS),
            15 * SEC
        );
        assert_eq!(round_interval(9), 1);
        assert_eq!(round_interval(100_000), 2 * MIN);
        assert_eq!(round_interval(1_000_000_000_000), 365 * DAY);
        assert_eq!(format_interval(15 * SEC), "15s");
        assert_eq!(format_interval(2 * MIN), "2m");
        assert_eq!(format_interval(90 * SEC), "1m");
        assert_eq!(format_interval(12 * HOUR), "12h");
        assert_eq!(format_interval(200), "200ms");
        assert_eq!(rate_interval(15 * SEC, 15 * SEC), MIN);
        assert_eq!(rate_interval(5 * MIN, 15 * SEC), 5 * MIN + 15 * SEC);
        assert_eq!(parse_interval(">=30s"), Some(30 * SEC));
        assert_eq!(parse_interval("2"), Some(2 * SEC));
        assert_eq!(parse_interval("1h"), Some(HOUR));
        assert_eq!(parse_interval("$__interval"), None);
    }
}
