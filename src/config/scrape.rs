//! `[[scrape]]`: the short form of scrape jobs (Prometheus exposition endpoints).

use std::time::Duration;

use super::check::*;
use super::{ConfigError, raw};

#[derive(Debug, Clone)]
pub struct ScrapeConfig {
    pub job: String,
    /// `host:port` each.
    pub targets: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub path: String,
    pub scheme: String,
    pub honor_labels: bool,
}

pub(super) fn scrape_config(i: usize, s: &raw::RawScrape) -> Result<ScrapeConfig, ConfigError> {
    let key = |k: &str| format!("scrape[{i}].{k}");
    if s.job.trim().is_empty() {
        return Err(invalid(&key("job"), &s.job, "expected a job name"));
    }
    if s.targets.is_empty() {
        return Err(invalid(
            &key("targets"),
            "[]",
            "expected at least one \"host:port\"",
        ));
    }
    for t in &s.targets {
        let ok = t
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
            && !t.contains('/');
        if !ok {
            return Err(invalid(
                &key("targets"),
                t,
                "expected \"host:port\", such as \"localhost:9100\"",
            ));
        }
    }
    if s.scheme != "http" && s.scheme != "https" {
        return Err(invalid(
            &key("scheme"),
            &s.scheme,
            "expected \"http\" or \"https\"",
        ));
    }
    if !s.path.starts_with('/') {
        return Err(invalid(
            &key("path"),
            &s.path,
            "expected a path starting with /",
        ));
    }
    let interval = nonzero_duration(&key("interval"), &s.interval)?;
    let timeout = nonzero_duration(&key("timeout"), &s.timeout)?;
    Ok(ScrapeConfig {
        job: s.job.clone(),
        targets: s.targets.clone(),
        interval,
        timeout: timeout.min(interval),
        path: s.path.clone(),
        scheme: s.scheme.clone(),
        honor_labels: s.honor_labels,
    })
}
