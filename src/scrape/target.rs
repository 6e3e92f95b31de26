//! From a discovered target to a scrape target, as Prometheus 2.42's `PopulateLabels` does it:
//! the job's defaults (`job`, `__scheme__`, `__metrics_path__`, `__scrape_interval__`,
//! `__scrape_timeout__`, `__param_*`) filled in where discovery left them empty, target
//! relabeling, a default port for the scheme, `__meta_*` removed, `instance` defaulting to the
//! address, and the checks that turn a bad target into an error. Also the scrape URL.

use super::config::{Job, TargetGroup};
use super::relabel::{LabelMap, process};
use crate::base::units::parse_prom_duration;
use crate::promql::ast::format_duration;
use crate::tsdb::Labels;

/// One target after relabeling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSpec {
    /// The labels before relabeling (what discovery gave plus the job's defaults).
    pub discovered: LabelMap,
    /// Every label after relabeling, `__address__` and the other `__` labels included.
    pub labels: LabelMap,
}

/// What became of one discovered target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Populated {
    Active(TargetSpec),
    /// Relabeling dropped it: its discovered labels.
    Dropped(LabelMap),
    /// A bad target (no address, a bad interval ...): logged, shown nowhere else.
    Failed(String),
}

/// Go's `net.SplitHostPort`, enough of it to know whether an address has a port.
fn split_host_port(s: &str) -> Option<(&str, &str)> {
    if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']')?;
        let host = &rest[..end];
        let after = &rest[end + 1..];
        let port = after.strip_prefix(':')?;
        if port.contains(':') || host.contains('[') {
            return None;
        }
        return Some((host, port));
    }
    let i = s.rfind(':')?;
    let (host, port) = (&s[..i], &s[i + 1..]);
    if host.contains(':') || host.contains('[') || host.contains(']') || port.contains(']') {
        return None;
    }
    Some((host, port))
}

/// The labels of one target of a group: the target's address over the group's labels.
pub fn discovered(group: &TargetGroup, address: &str) -> LabelMap {
    let mut l = LabelMap::new();
    for (k, v) in &group.labels {
        if !v.is_empty() {
            l.insert(k.clone(), v.clone());
        }
    }
    if !address.is_empty() {
        l.insert("__address__".into(), address.to_string());
    }
    l
}

pub fn populate(lset: LabelMap, job: &Job) -> Populated {
    let mut pre = lset;
    let defaults = [
        ("job", job.name.clone()),
        ("__scrape_interval__", format_duration(job.interval_ms)),
        ("__scrape_timeout__", format_duration(job.timeout_ms)),
        ("__metrics_path__", job.metrics_path.clone()),
        ("__scheme__", job.scheme.clone()),
    ];
    for (k, v) in defaults {
        if pre.get(k).is_none_or(|x| x.is_empty()) && !v.is_empty() {
            pre.insert(k.to_string(), v);
        }
    }
    for (k, v) in &job.params {
        if let Some(first) = v.first() {
            if first.is_empty() {
                pre.remove(&format!("__param_{k}"));
            } else {
                pre.insert(format!("__param_{k}"), first.clone());
            }
        }
    }
    let Some(mut l) = process(pre.clone(), &job.relabel) else {
        return Populated::Dropped(pre);
    };
    let Some(addr) = l.get("__address__").filter(|a| !a.is_empty()).cloned() else {
        return Populated::Failed("no address".into());
    };
    let scheme = l.get("__scheme__").cloned().unwrap_or_default();
    let mut addr = addr;
    if split_host_port(&addr).is_none() && split_host_port(&format!("{addr}:1234")).is_some() {
        match scheme.as_str() {
            "http" | "" => addr.push_str(":80"),
            "https" => addr.push_str(":443"),
            _ => return Populated::Failed(format!("invalid scheme: {:?}", job.scheme)),
        }
        l.insert("__address__".into(), addr.clone());
    }
    if addr.contains('/') {
        return Populated::Failed(format!("{addr:?} is not a valid hostname"));
    }
    let interval = l.get("__scrape_interval__").cloned().unwrap_or_default();
    let Some(iv) = parse_prom_duration(&interval) else {
        return Populated::Failed(format!(
            "error parsing scrape interval: not a valid duration string: {interval:?}"
        ));
    };
    if iv == 0 {
        return Populated::Failed("scrape interval cannot be 0".into());
    }
    let timeout = l.get("__scrape_timeout__").cloned().unwrap_or_default();
    let Some(to) = parse_prom_duration(&timeout) else {
        return Populated::Failed(format!(
            "error parsing scrape timeout: not a valid duration string: {timeout:?}"
        ));
    };
    if to == 0 {
        return Populated::Failed("scrape timeout cannot be 0".into());
    }
    if to > iv {
        return Populated::Failed(format!(
            "scrape timeout cannot be greater than scrape interval ({timeout:?} > {interval:?})"
        ));
    }
    l.retain(|k, _| !k.starts_with("__meta_"));
    if l.get("instance").is_none_or(|v| v.is_empty()) {
        l.insert("instance".into(), addr);
    }
    Populated::Active(TargetSpec {
        discovered: pre,
        labels: l,
    })
}

/// Every target of the groups, in order.
pub fn from_groups<'a>(
    groups: impl IntoIterator<Item = &'a TargetGroup>,
    job: &Job,
) -> Vec<Populated> {
    let mut out = Vec::new();
    for g in groups {
        for t in &g.targets {
            out.push(populate(discovered(g, t), job));
        }
    }
    out
}

/// Go's `url.QueryEscape`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl TargetSpec {
    fn get(&self, k: &str) -> &str {
        self.labels.get(k).map(String::as_str).unwrap_or("")
    }

    /// The labels every sample of this target carries: those not starting with `__`.
    pub fn public_labels(&self) -> Labels {
        Labels::from_pairs(
            self.labels
                .iter()
                .filter(|(k, _)| !k.starts_with("__"))
                .map(|(k, v)| (k.clone(), v.clone())),
        )
    }

    pub fn interval_ms(&self) -> i64 {
        parse_prom_duration(self.get("__scrape_interval__")).unwrap_or(60_000)
    }

    pub fn timeout_ms(&self) -> i64 {
        parse_prom_duration(self.get("__scrape_timeout__")).unwrap_or(10_000)
    }

    /// The scrape URL as Prometheus writes it: the job's `params`, overridden by `__param_*`
    /// labels, as a sorted query string.
    pub fn url(&self, job: &Job) -> String {
        let mut params = job.params.clone();
        for (k, v) in &self.labels {
            if let Some(name) = k.strip_prefix("__param_") {
                let e = params.entry(name.to_string()).or_default();
                if e.is_empty() {
                    e.push(v.clone());
                } else {
                    e[0] = v.clone();
                }
            }
        }
        let mut query = String::new();
        for (k, vs) in &params {
            for v in vs {
                if !query.is_empty() {
                    query.push('&');
                }
                query.push_str(&query_escape(k));
                query.push('=');
                query.push_str(&query_escape(v));
            }
        }
        let path = self.get("__metrics_path__");
        let mut url = format!("{}://{}", self.get("__scheme__"), self.get("__address__"));
        if !path.is_empty() && !path.starts_with('/') {
            url.push('/');
        }
        url.push_str(path);
        if !query.is_empty() {
            url.push('?');
            url.push_str(&query);
        }
        url
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrape::config::parse;
    use std::path::Path;

    #[test]
    fn populate_as_prometheus() {
        let c = parse(
            "scrape_configs:\n- job_name: j\n  scrape_interval: 15s\n  params: {module: [http_2xx]}\n  relabel_configs:\n  - {source_labels: [__address__], regex: 'drop.*', action: drop}\n  - {source_labels: [__meta_x], target_label: x}\n",
            Path::new("/"),
        )
        .unwrap();
        let job = &c.jobs[0];
        let g = TargetGroup {
            targets: vec![
                "a".into(),
                "b:9100".into(),
                "drop-me:1".into(),
                "[::1]:9".into(),
            ],
            labels: [("__meta_x".to_string(), "m".to_string())].into(),
            source: "0".into(),
        };
        let out = from_groups([&g], job);
        let Populated::Active(a) = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(a.labels.get("instance").unwrap(), "a:80");
        assert_eq!(a.labels.get("x").unwrap(), "m");
        assert!(!a.labels.contains_key("__meta_x"));
        assert_eq!(a.discovered.get("__scrape_interval__").unwrap(), "15s");
        assert_eq!(a.url(job), "http://a:80/metrics?module=http_2xx");
        assert_eq!(
            a.public_labels().to_string(),
            "{instance=\"a:80\", job=\"j\", x=\"m\"}"
        );
        assert!(matches!(&out[2], Populated::Dropped(_)));
        let Populated::Active(v6) = &out[3] else {
            panic!()
        };
        assert_eq!(v6.labels.get("instance").unwrap(), "[::1]:9");
    }
}
