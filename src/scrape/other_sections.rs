//! The `prometheus.yml` sections Sightline does not run (`alerting`, `remote_write`,
//! `remote_read`, `storage`, `tracing`), read strictly and checked as Prometheus 2.42 checks
//! them, so that a file Prometheus refuses is refused here too (`sightline check config`, and at
//! start). Nothing here is used beyond the check.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::relabel::RawRule;
use super::yaml::{OTHER_SD, RawGroup, RawHttp, RawTls, check_http_client, duration, group, rules};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlerting {
    alert_relabel_configs: Option<Vec<Option<RawRule>>>,
    alertmanagers: Option<Vec<Option<RawAlertmanager>>>,
}

#[derive(Debug, Default, Deserialize)]
struct RawAlertmanager {
    scheme: Option<String>,
    path_prefix: Option<String>,
    timeout: Option<String>,
    api_version: Option<String>,
    relabel_configs: Option<Vec<Option<RawRule>>>,
    static_configs: Option<Vec<Option<RawGroup>>>,
    file_sd_configs: Option<serde_norway::Value>,
    http_sd_configs: Option<serde_norway::Value>,
    #[serde(flatten)]
    http: RawHttp,
    #[serde(flatten)]
    rest: BTreeMap<String, serde_norway::Value>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct RawRemoteWrite {
    url: Option<String>,
    remote_timeout: Option<String>,
    headers: Option<BTreeMap<String, String>>,
    write_relabel_configs: Option<Vec<Option<RawRule>>>,
    name: Option<String>,
    send_exemplars: Option<bool>,
    send_native_histograms: Option<bool>,
    queue_config: Option<RawQueue>,
    metadata_config: Option<RawMetadataConfig>,
    sigv4: Option<serde_norway::Value>,
    #[serde(flatten)]
    http: RawHttp,
    #[serde(flatten)]
    rest: BTreeMap<String, serde_norway::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQueue {
    capacity: Option<i64>,
    max_shards: Option<i64>,
    min_shards: Option<i64>,
    max_samples_per_send: Option<i64>,
    batch_send_deadline: Option<String>,
    min_backoff: Option<String>,
    max_backoff: Option<String>,
    retry_on_http_429: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetadataConfig {
    send: Option<bool>,
    send_interval: Option<String>,
    max_samples_per_send: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct RawRemoteRead {
    url: Option<String>,
    remote_timeout: Option<String>,
    headers: Option<BTreeMap<String, String>>,
    read_recent: Option<bool>,
    name: Option<String>,
    required_matchers: Option<BTreeMap<String, String>>,
    filter_external_labels: Option<bool>,
    #[serde(flatten)]
    http: RawHttp,
    #[serde(flatten)]
    rest: BTreeMap<String, serde_norway::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStorage {
    tsdb: Option<RawTsdb>,
    exemplars: Option<RawExemplars>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTsdb {
    out_of_order_time_window: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExemplars {
    max_exemplars: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTracing {
    client_type: Option<String>,
    endpoint: Option<String>,
    sampling_fraction: Option<f64>,
    insecure: Option<bool>,
    tls_config: Option<RawTls>,
    headers: Option<BTreeMap<String, String>>,
    compression: Option<String>,
    timeout: Option<String>,
}

/// Headers Prometheus will not let a remote write or read config set.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-encoding",
    "content-length",
    "content-type",
    "user-agent",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "www-authenticate",
    "accept-encoding",
    "x-prometheus-remote-write-version",
    "x-prometheus-remote-read-version",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
];

fn headers(h: &Option<BTreeMap<String, String>>) -> Result<(), String> {
    for k in h.iter().flat_map(|m| m.keys()) {
        if RESERVED_HEADERS.contains(&k.to_ascii_lowercase().as_str()) {
            return Err(format!("{k} is a reserved header. It must not be changed"));
        }
    }
    Ok(())
}

/// Remote write and read names must be unique where given (Prometheus's wording says "job name").
fn unique_name(names: &mut Vec<String>, name: Option<String>, kind: &str) -> Result<(), String> {
    if let Some(n) = name.filter(|n| !n.is_empty()) {
        if names.contains(&n) {
            return Err(format!(
                "found multiple remote {kind} configs with job name {n:?}"
            ));
        }
        names.push(n);
    }
    Ok(())
}

fn no_rest(rest: &BTreeMap<String, serde_norway::Value>, ty: &str) -> Result<(), String> {
    match rest.keys().next() {
        Some(k) => Err(format!("field {k} not found in type {ty}")),
        None => Ok(()),
    }
}

pub(super) fn alerting(a: RawAlerting, dir: &Path) -> Result<(), String> {
    rules(a.alert_relabel_configs, "alert")?;
    for am in a.alertmanagers.unwrap_or_default() {
        let Some(am) = am else {
            return Err("empty or null alertmanager config".into());
        };
        for k in am.rest.keys() {
            if !OTHER_SD.contains(&k.as_str()) {
                return Err(format!(
                    "field {k} not found in type config.AlertmanagerConfig"
                ));
            }
        }
        let _ = (
            &am.scheme,
            &am.path_prefix,
            &am.file_sd_configs,
            &am.http_sd_configs,
        );
        duration(&am.timeout)?;
        if let Some(v) = &am.api_version
            && v != "v1"
            && v != "v2"
        {
            return Err(format!(
                "expected Alertmanager api version to be one of [v1 v2] but got {v}"
            ));
        }
        check_http_client(am.http, dir)?;
        let relabel = am.relabel_configs.unwrap_or_default();
        if relabel.iter().any(Option::is_none) {
            return Err("empty or null Alertmanager target relabeling rule".into());
        }
        let no_relabel = relabel.is_empty();
        rules(Some(relabel), "alertmanager")?;
        for g in am.static_configs.unwrap_or_default() {
            let g = group(g.unwrap_or_default(), String::new())?;
            if no_relabel && let Some(t) = g.targets.iter().find(|t| t.contains('/')) {
                return Err(format!("{t:?} is not a valid hostname"));
            }
        }
    }
    Ok(())
}

pub(super) fn remote_write(list: Vec<Option<RawRemoteWrite>>, dir: &Path) -> Result<(), String> {
    let mut names = Vec::new();
    for rw in list {
        let Some(rw) = rw else {
            return Err("empty or null remote write config section".into());
        };
        no_rest(&rw.rest, "config.RemoteWriteConfig")?;
        if rw.url.as_deref().is_none_or(str::is_empty) {
            return Err("url for remote_write is empty".into());
        }
        duration(&rw.remote_timeout)?;
        if let Some(q) = &rw.queue_config {
            for d in [&q.batch_send_deadline, &q.min_backoff, &q.max_backoff] {
                duration(d)?;
            }
            let _ = (
                q.capacity,
                q.max_shards,
                q.min_shards,
                q.max_samples_per_send,
                q.retry_on_http_429,
            );
        }
        if let Some(m) = &rw.metadata_config {
            duration(&m.send_interval)?;
            let _ = (m.send, m.max_samples_per_send);
        }
        let _ = (rw.send_exemplars, rw.send_native_histograms);
        let relabel = rw.write_relabel_configs.unwrap_or_default();
        if relabel.iter().any(Option::is_none) {
            return Err("empty or null relabeling rule in remote write config".into());
        }
        rules(Some(relabel), "remote write")?;
        headers(&rw.headers)?;
        let auth = rw.http.basic_auth.is_some()
            || rw.http.authorization.is_some()
            || rw.http.oauth2.is_some();
        check_http_client(rw.http, dir)?;
        if auth && rw.sigv4.is_some() {
            return Err(
                "at most one of basic_auth, authorization, oauth2, & sigv4 must be configured"
                    .into(),
            );
        }
        unique_name(&mut names, rw.name, "write")?;
    }
    Ok(())
}

pub(super) fn remote_read(list: Vec<Option<RawRemoteRead>>, dir: &Path) -> Result<(), String> {
    let mut names = Vec::new();
    for rr in list {
        let Some(rr) = rr else {
            return Err("empty or null remote read config section".into());
        };
        no_rest(&rr.rest, "config.RemoteReadConfig")?;
        if rr.url.as_deref().is_none_or(str::is_empty) {
            return Err("url for remote_read is empty".into());
        }
        duration(&rr.remote_timeout)?;
        headers(&rr.headers)?;
        for k in rr.required_matchers.iter().flat_map(|m| m.keys()) {
            if !crate::tsdb::labels::valid_label_name(k) {
                return Err(format!("{k:?} is not a valid label name"));
            }
        }
        let _ = (rr.read_recent, rr.filter_external_labels);
        check_http_client(rr.http, dir)?;
        unique_name(&mut names, rr.name, "read")?;
    }
    Ok(())
}

pub(super) fn storage(s: RawStorage) -> Result<(), String> {
    if let Some(t) = &s.tsdb {
        duration(&t.out_of_order_time_window)?;
    }
    if let Some(e) = &s.exemplars {
        let _ = e.max_exemplars;
    }
    Ok(())
}

pub(super) fn tracing(t: RawTracing) -> Result<(), String> {
    if let Some(c) = &t.client_type
        && c != "grpc"
        && c != "http"
    {
        return Err(format!(
            "expected tracing client type to be to be either grpc or http, but got {c}"
        ));
    }
    if t.endpoint.as_deref().is_none_or(str::is_empty) {
        return Err("tracing endpoint must be set".into());
    }
    if let Some(c) = t.compression.as_deref().filter(|c| !c.is_empty())
        && c != "gzip"
    {
        return Err(format!(
            "invalid compression type {c} provided, valid options: gzip"
        ));
    }
    duration(&t.timeout)?;
    let _ = (t.sampling_fraction, t.insecure, t.tls_config, t.headers);
    Ok(())
}
