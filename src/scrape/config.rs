//! `prometheus.yml` as Prometheus 2.42 reads it, for the parts Sightline runs: `global`
//! (intervals, external labels) and `scrape_configs` (jobs with their HTTP client settings,
//! service discovery, relabeling and limits). Unknown keys are refused as Prometheus's strict
//! YAML refuses them; `alerting`, `storage`, `tracing`, `remote_write` and `remote_read` are
//! accepted and ignored (each named once by [`PromConfig::ignored`]); `rule_files` are listed
//! for `sightline check config`. Service discovery other than static, file and HTTP is accepted
//! and reported as not built (see [`Job::unsupported_sd`]); `oauth2` the same.
//!
//! Defaults and checks follow Prometheus's `config.go`, `relabel.go`, the HTTP client config of
//! prometheus/common 0.39 and the file and HTTP discovery configs.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::relabel::{RawRule, Rule};
pub use super::yaml::{
    Authorization, BasicAuth, HttpClient, RawGroup, TargetGroup, TlsConfig, group,
};
use super::yaml::{OTHER_SD, RawHttp, duration, http_client, join, rules};
use crate::tsdb::labels::valid_label_name;

/// Largest `prometheus.yml` read.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// The sections of `prometheus.yml` Sightline reads.
#[derive(Debug, Clone)]
pub struct PromConfig {
    pub global: Global,
    pub jobs: Vec<Job>,
    /// `rule_files` patterns, resolved against the file's folder.
    pub rule_files: Vec<String>,
    /// Top-level sections present but not run by Sightline.
    pub ignored: Vec<&'static str>,
}

#[derive(Debug, Clone)]
pub struct Global {
    pub scrape_interval_ms: i64,
    pub scrape_timeout_ms: i64,
    pub evaluation_interval_ms: i64,
    pub external_labels: BTreeMap<String, String>,
}

/// One `scrape_configs` entry, defaults filled in.
#[derive(Debug, Clone)]
pub struct Job {
    pub name: String,
    pub honor_labels: bool,
    pub honor_timestamps: bool,
    pub params: BTreeMap<String, Vec<String>>,
    pub interval_ms: i64,
    pub timeout_ms: i64,
    pub metrics_path: String,
    pub scheme: String,
    /// 0: no limit.
    pub body_size_limit: u64,
    pub sample_limit: u64,
    pub target_limit: u64,
    pub label_limit: u64,
    pub label_name_length_limit: u64,
    pub label_value_length_limit: u64,
    pub http: HttpClient,
    pub static_configs: Vec<TargetGroup>,
    pub file_sd: Vec<FileSd>,
    pub http_sd: Vec<HttpSd>,
    /// Discovery kinds configured but not built (`kubernetes_sd_configs`, ...).
    pub unsupported_sd: Vec<String>,
    pub relabel: Vec<Rule>,
    pub metric_relabel: Vec<Rule>,
}

#[derive(Debug, Clone)]
pub struct FileSd {
    /// Patterns resolved against the config file's folder; `*` only in the last part.
    pub files: Vec<String>,
    pub refresh_interval_ms: i64,
}

#[derive(Debug, Clone)]
pub struct HttpSd {
    pub url: String,
    pub refresh_interval_ms: i64,
    pub http: HttpClient,
}

// ---------------------------------------------------------------------------------------------
// Raw YAML shapes.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    global: Option<RawGlobal>,
    #[serde(default)]
    scrape_configs: Option<Vec<Option<RawJob>>>,
    #[serde(default)]
    rule_files: Option<Vec<String>>,
    #[serde(default)]
    alerting: Option<super::other_sections::RawAlerting>,
    #[serde(default)]
    storage: Option<super::other_sections::RawStorage>,
    #[serde(default)]
    tracing: Option<super::other_sections::RawTracing>,
    #[serde(default)]
    remote_write: Option<Vec<Option<super::other_sections::RawRemoteWrite>>>,
    #[serde(default)]
    remote_read: Option<Vec<Option<super::other_sections::RawRemoteRead>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGlobal {
    scrape_interval: Option<String>,
    scrape_timeout: Option<String>,
    evaluation_interval: Option<String>,
    query_log_file: Option<String>,
    external_labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
struct RawJob {
    job_name: Option<String>,
    honor_labels: Option<bool>,
    honor_timestamps: Option<bool>,
    params: Option<BTreeMap<String, Vec<String>>>,
    scrape_interval: Option<String>,
    scrape_timeout: Option<String>,
    metrics_path: Option<String>,
    scheme: Option<String>,
    body_size_limit: Option<serde_norway::Value>,
    sample_limit: Option<u64>,
    target_limit: Option<u64>,
    label_limit: Option<u64>,
    label_name_length_limit: Option<u64>,
    label_value_length_limit: Option<u64>,
    static_configs: Option<Vec<Option<RawGroup>>>,
    file_sd_configs: Option<Vec<Option<RawFileSd>>>,
    http_sd_configs: Option<Vec<Option<RawHttpSd>>>,
    relabel_configs: Option<Vec<Option<RawRule>>>,
    metric_relabel_configs: Option<Vec<Option<RawRule>>>,
    #[serde(flatten)]
    http: RawHttp,
    /// Everything else: other discovery kinds, or a mistake.
    #[serde(flatten)]
    rest: BTreeMap<String, serde_norway::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFileSd {
    files: Option<Vec<String>>,
    refresh_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawHttpSd {
    url: Option<String>,
    refresh_interval: Option<String>,
    #[serde(flatten)]
    http: RawHttp,
    #[serde(flatten)]
    rest: BTreeMap<String, serde_norway::Value>,
}

// ---------------------------------------------------------------------------------------------

/// Reads and checks `prometheus.yml`; relative paths in it resolve against its folder.
pub fn load_file(path: &Path) -> Result<PromConfig, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!(
            "{}: larger than {MAX_FILE_BYTES} bytes",
            path.display()
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    parse(&text, dir).map_err(|e| format!("parsing YAML file {}: {e}", path.display()))
}

/// Parses `prometheus.yml` text.
pub fn parse(text: &str, dir: &Path) -> Result<PromConfig, String> {
    let raw: RawConfig = if text.trim().is_empty() {
        RawConfig::default()
    } else {
        serde_norway::from_str::<Option<RawConfig>>(text)
            .map_err(|e| e.to_string())?
            .unwrap_or_default()
    };
    let global = global(raw.global.unwrap_or_default())?;
    let mut ignored = Vec::new();
    for (name, present) in [
        ("alerting", raw.alerting.is_some()),
        ("storage", raw.storage.is_some()),
        ("tracing", raw.tracing.is_some()),
        ("remote_write", raw.remote_write.is_some()),
        ("remote_read", raw.remote_read.is_some()),
    ] {
        if present {
            ignored.push(name);
        }
    }
    use super::other_sections as other;
    if let Some(a) = raw.alerting {
        other::alerting(a, dir)?;
    }
    if let Some(s) = raw.storage {
        other::storage(s)?;
    }
    if let Some(t) = raw.tracing {
        other::tracing(t)?;
    }
    other::remote_write(raw.remote_write.unwrap_or_default(), dir)?;
    other::remote_read(raw.remote_read.unwrap_or_default(), dir)?;
    let mut rule_files = Vec::new();
    for rf in raw.rule_files.unwrap_or_default() {
        let star = rf.find('*');
        if star.is_some_and(|i| rf[i + 1..].contains(['*', '/'])) {
            return Err(format!("invalid rule file path {rf:?}"));
        }
        rule_files.push(join(dir, &rf).to_string_lossy().into_owned());
    }
    let mut jobs: Vec<Job> = Vec::new();
    for j in raw.scrape_configs.unwrap_or_default() {
        let Some(j) = j else {
            return Err("empty or null scrape config section".into());
        };
        let job = job(j, &global, dir)?;
        if jobs.iter().any(|o| o.name == job.name) {
            return Err(format!(
                "found multiple scrape configs with job name {:?}",
                job.name
            ));
        }
        jobs.push(job);
    }
    Ok(PromConfig {
        global,
        jobs,
        rule_files,
        ignored,
    })
}

fn global(g: RawGlobal) -> Result<Global, String> {
    let labels = g.external_labels.unwrap_or_default();
    for n in labels.keys() {
        if !valid_label_name(n) {
            return Err(format!("{n:?} is not a valid label name"));
        }
    }
    let _ = g.query_log_file;
    let mut interval = duration(&g.scrape_interval)?;
    let mut timeout = duration(&g.scrape_timeout)?;
    let mut eval = duration(&g.evaluation_interval)?;
    if interval == 0 {
        interval = 60_000;
    }
    if timeout > interval {
        return Err("global scrape timeout greater than scrape interval".into());
    }
    if timeout == 0 {
        timeout = 10_000.min(interval);
    }
    if eval == 0 {
        eval = 60_000;
    }
    Ok(Global {
        scrape_interval_ms: interval,
        scrape_timeout_ms: timeout,
        evaluation_interval_ms: eval,
        external_labels: labels.into_iter().filter(|(_, v)| !v.is_empty()).collect(),
    })
}

/// `units.Base2Bytes`: a number with B, KB/KiB, MB/MiB, GB/GiB, TB/TiB, PB/PiB (all powers of
/// 1024), or 0.
fn base2_bytes(v: &serde_norway::Value) -> Result<u64, String> {
    let text = match v {
        serde_norway::Value::String(s) => s.clone(),
        serde_norway::Value::Number(n) => n.to_string(),
        _ => return Err("body_size_limit: expected a size such as \"10MB\"".into()),
    };
    let t = text.trim();
    if t == "0" {
        return Ok(0);
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("units: invalid size {text:?}"))?;
    let shift = match unit {
        "B" => 0,
        "KB" | "KiB" => 10,
        "MB" | "MiB" => 20,
        "GB" | "GiB" => 30,
        "TB" | "TiB" => 40,
        "PB" | "PiB" => 50,
        "" => return Err(format!("units: missing unit in {text:?}")),
        _ => return Err(format!("units: unknown unit {unit:?} in {text:?}")),
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("units: {text:?} is too large"))
}

fn job(j: RawJob, g: &Global, dir: &Path) -> Result<Job, String> {
    let name = j.job_name.clone().unwrap_or_default();
    for key in j.rest.keys() {
        if !OTHER_SD.contains(&key.as_str()) {
            return Err(format!("field {key} not found in type config.ScrapeConfig"));
        }
    }
    let unsupported_sd: Vec<String> = j.rest.keys().cloned().collect();
    let relabel = rules(j.relabel_configs, "target")?;
    let metric_relabel = rules(j.metric_relabel_configs, "metric")?;
    let mut static_configs = Vec::new();
    for (i, sc) in j.static_configs.unwrap_or_default().into_iter().enumerate() {
        // A null entry is an empty group in Prometheus.
        static_configs.push(group(sc.unwrap_or_default(), i.to_string())?);
    }
    let mut file_sd = Vec::new();
    for f in j.file_sd_configs.unwrap_or_default() {
        let f = f.unwrap_or_default();
        let files = f.files.unwrap_or_default();
        if files.is_empty() {
            return Err("file service discovery config must contain at least one path name".into());
        }
        let mut resolved = Vec::new();
        for name in &files {
            if !file_sd_name_ok(name) {
                return Err(format!(
                    "path name {name:?} is not valid for file discovery"
                ));
            }
            resolved.push(join(dir, name).to_string_lossy().into_owned());
        }
        let mut refresh = duration(&f.refresh_interval)?;
        if f.refresh_interval.is_none() {
            refresh = 300_000;
        }
        file_sd.push(FileSd {
            files: resolved,
            refresh_interval_ms: refresh,
        });
    }
    let mut http_sd = Vec::new();
    for h in j.http_sd_configs.unwrap_or_default() {
        let h = h.unwrap_or_default();
        if let Some(key) = h.rest.keys().next() {
            return Err(format!("field {key} not found in type http.SDConfig"));
        }
        let url = h.url.clone().unwrap_or_default();
        if url.is_empty() {
            return Err("URL is missing".into());
        }
        let parsed = reqwest::Url::parse(&url).map_err(|e| format!("parse {url:?}: {e}"))?;
        if parsed.scheme() != "http" && parsed.scheme() != "https" {
            return Err("URL scheme must be 'http' or 'https'".into());
        }
        if parsed.host_str().unwrap_or("").is_empty() {
            return Err("host is missing in URL".into());
        }
        let mut refresh = duration(&h.refresh_interval)?;
        if h.refresh_interval.is_none() {
            refresh = 60_000;
        }
        http_sd.push(HttpSd {
            url,
            refresh_interval_ms: refresh,
            http: http_client(h.http, dir)?,
        });
    }
    if name.is_empty() {
        return Err("job_name is empty".into());
    }
    let http = http_client(j.http, dir)?;
    if relabel.is_empty() {
        for g in &static_configs {
            for t in &g.targets {
                if t.contains('/') {
                    return Err(format!("{t:?} is not a valid hostname"));
                }
            }
        }
    }
    let mut interval = duration(&j.scrape_interval)?;
    let mut timeout = duration(&j.scrape_timeout)?;
    if interval == 0 {
        interval = g.scrape_interval_ms;
    }
    if timeout > interval {
        return Err(format!(
            "scrape timeout greater than scrape interval for scrape config with job name {name:?}"
        ));
    }
    if timeout == 0 {
        timeout = if g.scrape_timeout_ms > interval {
            interval
        } else {
            g.scrape_timeout_ms
        };
    }
    let body_size_limit = match &j.body_size_limit {
        None => 0,
        Some(v) => base2_bytes(v)?,
    };
    let metrics_path = match j.metrics_path {
        Some(p) if !p.is_empty() => p,
        _ => "/metrics".into(),
    };
    let scheme = match j.scheme {
        Some(s) if !s.is_empty() => s,
        _ => "http".into(),
    };
    Ok(Job {
        name,
        honor_labels: j.honor_labels.unwrap_or(false),
        honor_timestamps: j.honor_timestamps.unwrap_or(true),
        params: j.params.unwrap_or_default(),
        interval_ms: interval,
        timeout_ms: timeout,
        metrics_path,
        scheme,
        body_size_limit,
        sample_limit: j.sample_limit.unwrap_or(0),
        target_limit: j.target_limit.unwrap_or(0),
        label_limit: j.label_limit.unwrap_or(0),
        label_name_length_limit: j.label_name_length_limit.unwrap_or(0),
        label_value_length_limit: j.label_value_length_limit.unwrap_or(0),
        http,
        static_configs,
        file_sd,
        http_sd,
        unsupported_sd,
        relabel,
        metric_relabel,
    })
}

/// `^[^*]*(\*[^/]*)?\.(json|yml|yaml|JSON|YML|YAML)$`
fn file_sd_name_ok(name: &str) -> bool {
    let ext_ok = ["json", "yml", "yaml", "JSON", "YML", "YAML"]
        .iter()
        .any(|e| name.len() > e.len() + 1 && name.ends_with(&format!(".{e}")));
    let star_ok = match name.find('*') {
        None => true,
        Some(i) => !name[i + 1..].contains(['*', '/']),
    };
    ext_ok && star_ok
}

impl Job {
    /// A job from the TOML short form (`[[scrape]]`): static targets, Prometheus's defaults.
    pub fn from_short(s: &crate::config::ScrapeConfig) -> Job {
        Job {
            name: s.job.clone(),
            honor_labels: s.honor_labels,
            honor_timestamps: true,
            params: BTreeMap::new(),
            interval_ms: s.interval.as_millis() as i64,
            timeout_ms: s.timeout.as_millis() as i64,
            metrics_path: s.path.clone(),
            scheme: s.scheme.clone(),
            body_size_limit: 0,
            sample_limit: 0,
            target_limit: 0,
            label_limit: 0,
            label_name_length_limit: 0,
            label_value_length_limit: 0,
            http: HttpClient {
                follow_redirects: true,
                ..Default::default()
            },
            static_configs: vec![TargetGroup {
                targets: s.targets.clone(),
                labels: BTreeMap::new(),
                source: "0".into(),
            }],
            file_sd: Vec::new(),
            http_sd: Vec::new(),
            unsupported_sd: Vec::new(),
            relabel: Vec::new(),
            metric_relabel: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_as_prometheus() {
        let c = parse(
            "global:\n  scrape_interval: 5s\nscrape_configs:\n- job_name: a\n  static_configs: [{targets: ['h:1']}]\n- job_name: b\n  scrape_interval: 1m\n  bearer_token: t\n",
            Path::new("/etc"),
        )
        .unwrap();
        assert_eq!(c.global.scrape_timeout_ms, 5_000);
        assert_eq!(c.jobs[0].interval_ms, 5_000);
        assert_eq!(c.jobs[0].timeout_ms, 5_000);
        assert_eq!(c.jobs[1].timeout_ms, 5_000);
        assert!(c.jobs[0].honor_timestamps);
        assert_eq!(
            c.jobs[1].http.authorization.as_ref().unwrap().kind,
            "Bearer"
        );
    }

    #[test]
    fn refuses_what_prometheus_refuses() {
        for bad in [
            "bogus: 1",
            "global: {scrape_timeout: 2m}",
            "scrape_configs: [{job_name: a}, {job_name: a}]",
            "scrape_configs: [{job_name: ''}]",
            "scrape_configs: [{job_name: a, scrape_interval: 5s, scrape_timeout: 6s}]",
            "scrape_configs: [{job_name: a, unknown_thing: 1}]",
            "scrape_configs: [{job_name: a, static_configs: [{targets: ['a/b']}]}]",
            "scrape_configs: [{job_name: a, file_sd_configs: [{files: ['x.txt']}]}]",
            "scrape_configs: [{job_name: a, http_sd_configs: [{url: 'ftp://x'}]}]",
            "scrape_configs: [{job_name: a, bearer_token: x, bearer_token_file: y}]",
            "scrape_configs: [{job_name: a, authorization: {type: Basic, credentials: x}}]",
            "scrape_configs: [{job_name: a, body_size_limit: 10}]",
            "scrape_configs: [{job_name: a, relabel_configs: [{action: keep, regex: '('}]}]",
            "scrape_configs: [null]",
        ] {
            assert!(parse(bad, Path::new("/")).is_err(), "{bad} accepted");
        }
        assert!(
            parse(
                "scrape_configs: [{job_name: a, kubernetes_sd_configs: [{role: pod}], body_size_limit: 10MB}]",
                Path::new("/")
            )
            .is_ok()
        );
    }
}
