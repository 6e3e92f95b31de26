//! `[logs]`: log files collected from disk (`[[logs.files]]`), checked into what the collector
//! (`crate::logfiles`) runs.

use std::time::Duration;

use super::check::*;
use super::{ConfigError, raw};

#[derive(Debug, Clone)]
pub struct LogsConfig {
    pub poll_interval: Duration,
    pub read_budget: usize,
    pub max_line_size: usize,
    pub files: Vec<LogFilesConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Raw,
    Json,
    Logfmt,
    /// Kubernetes' CRI log format: `<time> <stream> <P|F> <line>`.
    Cri,
    /// Docker's json-file driver: `{"log":"...\n","stream":"stdout","time":"..."}`.
    Docker,
}

#[derive(Debug, Clone)]
pub struct Multiline {
    pub start: regex::Regex,
    pub flush_timeout: Duration,
    pub max_lines: usize,
}

#[derive(Debug, Clone)]
pub struct LogFilesConfig {
    pub include: Vec<String>,
    pub exclude: Vec<glob::Pattern>,
    pub format: LogFormat,
    pub labels: Vec<(String, String)>,
    pub multiline: Option<Multiline>,
}

pub(super) fn logs_config(r: &raw::RawLogs) -> Result<LogsConfig, ConfigError> {
    let mut files = Vec::new();
    for (i, f) in r.files.iter().enumerate() {
        let key = |k: &str| format!("logs.files[{i}].{k}");
        if f.include.is_empty() {
            return Err(invalid(
                &key("include"),
                "[]",
                "give at least one glob pattern, e.g. [\"/var/log/pods/*/*/*.log\"]",
            ));
        }
        for p in &f.include {
            glob::Pattern::new(p).map_err(|e| invalid(&key("include"), p, &e.to_string()))?;
        }
        let exclude = f
            .exclude
            .iter()
            .map(|p| glob::Pattern::new(p).map_err(|e| invalid(&key("exclude"), p, &e.to_string())))
            .collect::<Result<_, _>>()?;
        let format = match f.format.as_str() {
            "" | "raw" => LogFormat::Raw,
            "json" => LogFormat::Json,
            "logfmt" => LogFormat::Logfmt,
            "cri" => LogFormat::Cri,
            "docker" => LogFormat::Docker,
            other => {
                return Err(invalid(
                    &key("format"),
                    other,
                    "expected raw, json, logfmt, cri or docker",
                ));
            }
        };
        for k in f.labels.keys() {
            if !valid_label_name(k) {
                return Err(invalid(
                    &key("labels"),
                    k,
                    "a label name is letters, digits and _, not starting with a digit",
                ));
            }
        }
        let multiline = match &f.multiline {
            None => None,
            Some(m) => Some(Multiline {
                start: crate::base::regex::compile_bounded(&m.start)
                    .map_err(|e| invalid(&key("multiline.start"), &m.start, &e))?,
                flush_timeout: nonzero_duration(&key("multiline.flush_timeout"), &m.flush_timeout)?,
                max_lines: positive(&key("multiline.max_lines"), m.max_lines)? as usize,
            }),
        };
        if f.multiline.as_ref().is_some_and(|m| m.start.is_empty()) {
            return Err(invalid(
                &key("multiline.start"),
                "",
                "give the regular expression a record's first line matches, e.g. '^\\d{4}-'",
            ));
        }
        files.push(LogFilesConfig {
            include: f.include.clone(),
            exclude,
            format,
            labels: f
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            multiline,
        });
    }
    Ok(LogsConfig {
        poll_interval: nonzero_duration("logs.poll_interval", &r.poll_interval)?,
        read_budget: (size("logs.read_budget", &r.read_budget)? as usize).max(4096),
        max_line_size: (size("logs.max_line_size", &r.max_line_size)? as usize).max(256),
        files,
    })
}
