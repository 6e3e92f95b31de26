//! Search parameters as the Jaeger API, the log search API and the UI take them from a query
//! string: Jaeger's trace search (`service`, `operation`, `tags`, `minDuration`, `start`, ...)
//! and log search (`service`, `q`, `severity`, `traceID`, `tags`, ...). Lives with the store,
//! below the handlers, so the API and the UI parse the same way without importing each other.

use crate::base::clock::now_us;
use crate::base::params::Params;

use super::model;
use super::tagquery;
use super::{LogSearch, TraceSearch};

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 10_000;

/// Parses the search parameters; errors are Jaeger-style messages for a 400.
pub fn trace_search(p: &Params) -> Result<TraceSearch, String> {
    let mut tags = Vec::new();
    for t in p.all("tags") {
        let parsed = if t.trim_start().starts_with('{') {
            tagquery::parse_json(t)
        } else {
            tagquery::parse(t)
        };
        tags.extend(parsed.map_err(|e| e.to_string())?);
    }
    for t in p.all("tag") {
        tags.push(tagquery::parse_colon_pair(t).map_err(|e| e.to_string())?);
    }
    let end_us = p.u64("end")?;
    let mut start_us = p.u64("start")?;
    if start_us.is_none()
        && let Some(lb) = p.get("lookback").filter(|l| *l != "custom")
    {
        let lb = crate::config::parse_duration(lb)
            .ok_or_else(|| format!("unable to parse param 'lookback': {lb:?}"))?;
        start_us = Some(
            end_us
                .unwrap_or_else(now_us)
                .saturating_sub(lb.as_micros() as u64),
        );
    }
    let limit = match p.u64("limit")? {
        None | Some(0) => DEFAULT_LIMIT,
        Some(n) => (n as usize).min(MAX_LIMIT),
    };
    let min = p.duration_ns("minDuration")?;
    let max = p.duration_ns("maxDuration")?;
    if let (Some(a), Some(b)) = (min, max)
        && b < a
    {
        return Err("'maxDuration' should be greater than 'minDuration'".into());
    }
    if let (Some(a), Some(b)) = (start_us, end_us)
        && b < a
    {
        return Err("'end' should be greater than 'start'".into());
    }
    let span_kind = match p.get("spanKind") {
        None => None,
        Some(k) => {
            Some(model::kind_from_name(k).ok_or_else(|| format!("unsupported spanKind {k:?}"))?)
        }
    };
    Ok(TraceSearch {
        service: p.get("service").map(str::to_string),
        operation: p.get("operation").map(str::to_string),
        span_kind,
        tags,
        start_us,
        end_us,
        min_duration_ns: min,
        max_duration_ns: max,
        limit,
    })
}

/// OTLP severity numbers where each named range starts.
fn severity(text: &str) -> Option<u64> {
    if let Ok(n) = text.parse::<u64>() {
        return (n <= 24).then_some(n);
    }
    Some(match text.to_ascii_lowercase().as_str() {
        "trace" => 1,
        "debug" => 5,
        "info" => 9,
        "warn" | "warning" => 13,
        "error" => 17,
        "fatal" => 21,
        _ => return None,
    })
}

pub fn log_search(p: &Params) -> Result<LogSearch, String> {
    let mut tags = Vec::new();
    for t in p.all("tags") {
        let parsed = if t.trim_start().starts_with('{') {
            tagquery::parse_json(t)
        } else {
            tagquery::parse(t)
        };
        tags.extend(parsed.map_err(|e| e.to_string())?);
    }
    let min_severity = match p.get("severity") {
        None => None,
        Some(s) => Some(severity(s).ok_or_else(|| {
            format!("unknown severity {s:?}: use trace, debug, info, warn, error, fatal or 1-24")
        })?),
    };
    let trace_id = match p.get("traceID") {
        None => None,
        Some(t) => {
            Some(model::parse_trace_id(t).ok_or_else(|| format!("malformed trace id {t:?}"))?)
        }
    };
    Ok(LogSearch {
        service: p.get("service").map(str::to_string),
        text: p.get("q").map(str::to_string),
        min_severity,
        trace_id,
        tags,
        start_us: p.u64("start")?,
        end_us: p.u64("end")?,
        limit: p
            .u64("limit")?
            .map_or(100, |n| (n as usize).clamp(1, 10_000)),
    })
}
