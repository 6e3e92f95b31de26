//! Human units in configuration and query parameters: sizes ("20MiB") and durations ("7d",
//! "1h30m", "250ms", "1.5s", Go's `time.ParseDuration` forms including "us" and "µs").

use std::time::Duration;

/// Parses a byte size: a plain count, or a number with B, KB, MB, GB, TB (powers of 1000) or
/// KiB, MiB, GiB, TiB (powers of 1024). Case-insensitive for the unit.
pub fn parse_size(text: &str) -> Option<u64> {
    let bytes = parse_size_f64(text)?;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return None;
    }
    Some(bytes as u64)
}

/// A byte size as go-humanize's `ParseBytes` reads one (and LogQL with it): a number and an
/// optional unit, B, K(B) ... E(B) in powers of 1000, Ki(B) ... Ei(B) in powers of 1024.
pub fn parse_size_f64(text: &str) -> Option<f64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().ok()?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "tb" | "t" => 1e12,
        "pb" | "p" => 1e15,
        "eb" | "e" => 1e18,
        "kib" | "ki" => 1024.0,
        "mib" | "mi" => 1024f64.powi(2),
        "gib" | "gi" => 1024f64.powi(3),
        "tib" | "ti" => 1024f64.powi(4),
        "pib" | "pi" => 1024f64.powi(5),
        "eib" | "ei" => 1024f64.powi(6),
        _ => return None,
    };
    Some(value * mult)
}

/// Parses a duration made of one or more `<number><unit>` parts: ns, us, µs, ms, s, m, h, d, w.
/// A leading sign is refused (durations here are never negative).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_end == 0 {
            return None;
        }
        let value: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = &rest[unit_end..];
        let nanos_per: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "d" => 86400e9,
            "w" => 7.0 * 86400e9,
            _ => return None,
        };
        total += value * nanos_per;
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return None;
    }
    Some(Duration::from_nanos(total as u64))
}

/// Parses a Prometheus duration (`1h30m`, `5m`, `100ms`); units must go from largest to smallest.
pub fn parse_prom_duration(s: &str) -> Option<i64> {
    if s == "0" {
        return Some(0);
    }
    if s.is_empty() {
        return None;
    }
    let b = s.as_bytes();
    let mut i = 0;
    let mut total: i64 = 0;
    let mut last_rank = usize::MAX;
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return None;
        }
        let n: i64 = s[start..i].parse().ok()?;
        let ustart = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let (rank, mult) = match &s[ustart..i] {
            "y" => (0, 365 * 86_400_000),
            "w" => (1, 7 * 86_400_000),
            "d" => (2, 86_400_000),
            "h" => (3, 3_600_000),
            "m" => (4, 60_000),
            "s" => (5, 1000),
            "ms" => (6, 1),
            _ => return None,
        };
        if last_rank != usize::MAX && rank <= last_rank {
            return None;
        }
        last_rank = rank;
        total = total.checked_add(n.checked_mul(mult)?)?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let cases: &[(&str, Option<u64>)] = &[
            ("4096", Some(4096)),
            ("20MiB", Some(20 << 20)),
            ("10GiB", Some(10 << 30)),
            ("1.5KB", Some(1500)),
            ("2 gb", Some(2_000_000_000)),
            ("", None),
            ("MiB", None),
            ("5 parsecs", None),
            ("-1", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_size(input), *want, "{input}");
        }
    }

    #[test]
    fn durations() {
        let cases: &[(&str, Option<u64>)] = &[
            ("7d", Some(7 * 86400 * 1_000_000_000)),
            ("1h30m", Some(5400 * 1_000_000_000)),
            ("250ms", Some(250_000_000)),
            ("1.5s", Some(1_500_000_000)),
            ("100us", Some(100_000)),
            ("100µs", Some(100_000)),
            ("0", Some(0)),
            ("", None),
            ("5", None),
            ("-1s", None),
            ("1x", None),
            ("s", None),
        ];
        for (input, want) in cases {
            assert_eq!(
                parse_duration(input).map(|d| d.as_nanos() as u64),
                *want,
                "{input}"
            );
        }
    }
}
