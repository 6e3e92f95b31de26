//! `[rules]` and `[alerting]`: rule files and how they are evaluated; where alerts are sent.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::check::*;
use super::{ConfigError, raw};

/// Validated `[rules]`.
#[derive(Debug, Clone)]
pub struct RulesConfig {
    /// Patterns as configured.
    pub files: Vec<String>,
    /// What relative patterns are relative to: the config file's directory ("" without one).
    pub base_dir: PathBuf,
    pub evaluation_interval: Duration,
    pub builtin: bool,
    pub disabled_groups: Vec<String>,
    pub for_outage_tolerance: Duration,
    pub for_grace_period: Duration,
    pub resend_delay: Duration,
    pub query_timeout: Duration,
}

/// One Alertmanager to send to.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertmanagerTarget {
    /// `scheme://host:port/prefix/api/v2/alerts`, without credentials.
    pub url: String,
    /// As shown in counters (`alertmanager` label): the same URL.
    pub basic_auth: Option<(String, String)>,
}

/// Validated `[alerting]`.
#[derive(Debug, Clone)]
pub struct AlertingConfig {
    pub alertmanagers: Vec<AlertmanagerTarget>,
    pub bearer_token: Option<String>,
    pub bearer_token_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub timeout: Duration,
    pub queue_capacity: usize,
    pub external_labels: BTreeMap<String, String>,
    /// Empty: derived from the listener at start.
    pub external_url: String,
}

pub(super) fn rules_config(r: &raw::RawRules) -> Result<RulesConfig, ConfigError> {
    Ok(RulesConfig {
        files: r.files.clone(),
        base_dir: PathBuf::new(),
        evaluation_interval: nonzero_duration("rules.evaluation_interval", &r.evaluation_interval)?,
        builtin: r.builtin,
        disabled_groups: r.disabled_groups.clone(),
        for_outage_tolerance: duration("rules.for_outage_tolerance", &r.for_outage_tolerance)?,
        for_grace_period: duration("rules.for_grace_period", &r.for_grace_period)?,
        resend_delay: duration("rules.resend_delay", &r.resend_delay)?,
        query_timeout: nonzero_duration("rules.query_timeout", &r.query_timeout)?,
    })
}

pub(super) fn alerting_config(r: &raw::RawAlerting) -> Result<AlertingConfig, ConfigError> {
    let mut alertmanagers = Vec::new();
    for u in &r.alertmanagers {
        alertmanagers.push(alertmanager(u)?);
    }
    for (k, v) in &r.external_labels {
        if !valid_label_name(k) || k.starts_with("__") {
            return Err(invalid(
                "alerting.external_labels",
                k,
                "expected a label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)",
            ));
        }
        if v.is_empty() {
            return Err(invalid(
                &format!("alerting.external_labels.{k}"),
                v,
                "expected a non-empty value",
            ));
        }
    }
    let eu = r.external_url.trim();
    if !(eu.is_empty() || eu.starts_with("http://") || eu.starts_with("https://")) {
        return Err(invalid(
            "alerting.external_url",
            eu,
            "expected an http:// or https:// URL",
        ));
    }
    let opt = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
    Ok(AlertingConfig {
        alertmanagers,
        bearer_token: opt(&r.bearer_token),
        bearer_token_file: opt(&r.bearer_token_file).map(PathBuf::from),
        ca_file: opt(&r.ca_file).map(PathBuf::from),
        timeout: nonzero_duration("alerting.timeout", &r.timeout)?,
        queue_capacity: positive("alerting.queue_capacity", r.queue_capacity)? as usize,
        external_labels: r.external_labels.clone(),
        external_url: eu.trim_end_matches('/').to_string(),
    })
}

/// `http(s)://[user:pass@]host[:port][/prefix]` -> the v2 alerts URL and credentials.
fn alertmanager(u: &str) -> Result<AlertmanagerTarget, ConfigError> {
    let bad = || {
        invalid(
            "alerting.alertmanagers",
            u,
            "expected http(s)://[user:password@]host:port[/path-prefix]",
        )
    };
    let (scheme, rest) = u.trim().split_once("://").ok_or_else(bad)?;
    if scheme != "http" && scheme != "https" {
        return Err(bad());
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (cred, host) = match authority.rsplit_once('@') {
        Some((c, h)) => (Some(c), h),
        None => (None, authority),
    };
    if host.is_empty() || host.contains(['?', '#', ' ']) || path.contains(['?', '#']) {
        return Err(bad());
    }
    let basic_auth = match cred {
        Some(c) => {
            let (user, pass) = c.split_once(':').unwrap_or((c, ""));
            Some((user.to_string(), pass.to_string()))
        }
        None => None,
    };
    let prefix = path.trim_end_matches('/');
    Ok(AlertmanagerTarget {
        url: format!("{scheme}://{host}{prefix}/api/v2/alerts"),
        basic_auth,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alertmanager_urls() {
        let a = alertmanager("http://am:9093").unwrap();
        assert_eq!(a.url, "http://am:9093/api/v2/alerts");
        assert_eq!(a.basic_auth, None);
        let a = alertmanager("https://u:p@am.example/prefix/").unwrap();
        assert_eq!(a.url, "https://am.example/prefix/api/v2/alerts");
        assert_eq!(a.basic_auth, Some(("u".into(), "p".into())));
        assert!(alertmanager("am:9093").is_err());
        assert!(alertmanager("ftp://am").is_err());
    }
}

/// Validated `[notify]`.
#[derive(Debug, Clone, Default)]
pub struct NotifyConfig {
    /// The `alertmanager.yml` (relative paths resolved against the config file's directory at
    /// load); `None`: no built-in Alertmanager.
    pub config_file: Option<PathBuf>,
    pub external_url: String,
}

pub(super) fn notify_config(r: &raw::RawNotify) -> Result<NotifyConfig, ConfigError> {
    let eu = r.external_url.trim();
    if !(eu.is_empty() || eu.starts_with("http://") || eu.starts_with("https://")) {
        return Err(invalid(
            "notify.external_url",
            eu,
            "expected an http:// or https:// URL",
        ));
    }
    let f = r.config_file.trim();
    Ok(NotifyConfig {
        config_file: (!f.is_empty()).then(|| PathBuf::from(f)),
        external_url: eu.trim_end_matches('/').to_string(),
    })
}
