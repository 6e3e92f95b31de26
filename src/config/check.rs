//! Checks shared by every section's validation: each turns a raw value into a typed one or a
//! [`ConfigError::Invalid`] that names the key and the expected form.

use std::net::SocketAddr;
use std::time::Duration;

use super::{ConfigError, parse_duration, parse_size, raw};

pub(super) fn invalid(key: &str, value: impl std::fmt::Display, expected: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        value: value.to_string(),
        expected: expected.to_string(),
    }
}

pub(super) fn addr(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value
        .parse()
        .map_err(|_| invalid(key, value, "expected host:port, e.g. 0.0.0.0:8080"))
}

pub(super) fn size(key: &str, value: &raw::SizeOrString) -> Result<u64, ConfigError> {
    match value {
        raw::SizeOrString::Bytes(n) => Ok(*n),
        raw::SizeOrString::Text(t) => parse_size(t)
            .ok_or_else(|| invalid(key, t, "expected a size such as 20MiB, 10GB or 4096")),
    }
}

pub(super) fn duration(key: &str, value: &str) -> Result<Duration, ConfigError> {
    parse_duration(value).ok_or_else(|| {
        invalid(
            key,
            value,
            "expected a duration such as 7d, 12h, 30m, 1s, 500ms",
        )
    })
}

pub(super) fn positive(key: &str, n: u64) -> Result<u64, ConfigError> {
    if n == 0 {
        Err(invalid(key, n, "expected a number greater than zero"))
    } else {
        Ok(n)
    }
}

pub(super) fn nonzero_duration(key: &str, value: &str) -> Result<Duration, ConfigError> {
    let d = duration(key, value)?;
    if d.is_zero() {
        return Err(invalid(key, value, "expected a duration greater than zero"));
    }
    Ok(d)
}

pub(super) fn buckets(key: &str, b: &[f64]) -> Result<Vec<f64>, ConfigError> {
    let text = format!("{b:?}");
    if b.is_empty() || b.len() > 64 {
        return Err(invalid(key, &text, "expected 1 to 64 bucket bounds"));
    }
    if b.iter().any(|x| !x.is_finite()) || b.windows(2).any(|w| w[0] >= w[1]) {
        return Err(invalid(
            key,
            &text,
            "expected finite bounds in increasing order",
        ));
    }
    Ok(b.to_vec())
}

pub(super) fn normalise_base_path(value: &str) -> Result<String, ConfigError> {
    let trimmed = value.trim().trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    let ok = trimmed.starts_with('/')
        && !trimmed.contains("//")
        && trimmed
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/-_.~".contains(c));
    if !ok {
        return Err(invalid(
            "base_path",
            value,
            "expected a URL path such as /observability",
        ));
    }
    Ok(trimmed.to_string())
}

/// Prometheus's label name rule: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub(super) fn valid_label_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}
