//! Query-string parsing shared by the query APIs and the UI: repeated keys kept in order, times in
//! microseconds, Go-style durations.

use super::units::parse_duration;

/// Decoded `key=value` pairs of a query string, repeated keys kept.
#[derive(Clone)]
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(raw: Option<&str>) -> Params {
        Params(
            form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The last non-empty value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Whether `key` is present at all, empty or not (`refresh=` means "off").
    pub fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    pub fn all(&self, key: &str) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(move |(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    pub fn u64(&self, key: &str) -> Result<Option<u64>, String> {
        self.get(key)
            .map(|v| {
                v.trim().parse::<u64>().map_err(|_| {
                    format!("unable to parse param '{key}': {v:?} is not a non-negative integer")
                })
            })
            .transpose()
    }

    /// A Go duration (`1.5s`, `100ms`, `2m30s`, `500us`) in nanoseconds.
    pub fn duration_ns(&self, key: &str) -> Result<Option<u64>, String> {
        self.get(key)
            .map(|v| {
                parse_duration(v)
                    .map(|d| d.as_nanos().min(u64::MAX as u128) as u64)
                    .ok_or_else(|| format!("unable to parse param '{key}': {v:?} is not a duration such as 100ms, 1.5s, 2m"))
            })
            .transpose()
    }
}
