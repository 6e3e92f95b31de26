//! The pieces `prometheus.yml` sections share, as Prometheus 2.42 reads them: durations, target
//! groups, relabel rule lists, and prometheus/common 0.39's HTTP client config (credentials,
//! TLS) with its checks. `config` (global, scrape_configs) and `other_sections` (the sections
//! Sightline does not run) both build on these.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::relabel::{RawRule, Rule};
use crate::base::units::parse_prom_duration;
use crate::tsdb::labels::valid_label_name;

/// A target group as discovery produces it: addresses plus labels shared by all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetGroup {
    pub targets: Vec<String>,
    pub labels: BTreeMap<String, String>,
    /// Where it came from (a file, a URL, `static`), for replacing a source's groups.
    pub source: String,
}

/// prometheus/common's `HTTPClientConfig`, the parts Sightline uses.
#[derive(Debug, Clone, Default)]
pub struct HttpClient {
    pub basic_auth: Option<BasicAuth>,
    pub authorization: Option<Authorization>,
    pub tls: TlsConfig,
    pub follow_redirects: bool,
    /// Set when `oauth2` or `proxy_url` is configured: not built, scrapes fail saying so.
    pub unsupported: Option<String>,
}

#[derive(Debug, Clone)]
pub struct BasicAuth {
    pub username: String,
    pub password: String,
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Authorization {
    pub kind: String,
    pub credentials: String,
    pub credentials_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Default)]
pub struct TlsConfig {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub server_name: Option<String>,
    pub insecure_skip_verify: bool,
}

/// Service discovery kinds Prometheus 2.42 knows besides static, file and HTTP.
pub const OTHER_SD: &[&str] = &[
    "azure_sd_configs",
    "consul_sd_configs",
    "digitalocean_sd_configs",
    "docker_sd_configs",
    "dockerswarm_sd_configs",
    "dns_sd_configs",
    "ec2_sd_configs",
    "eureka_sd_configs",
    "gce_sd_configs",
    "hetzner_sd_configs",
    "ionos_sd_configs",
    "kubernetes_sd_configs",
    "kuma_sd_configs",
    "lightsail_sd_configs",
    "linode_sd_configs",
    "marathon_sd_configs",
    "nerve_sd_configs",
    "nomad_sd_configs",
    "openstack_sd_configs",
    "ovhcloud_sd_configs",
    "puppetdb_sd_configs",
    "scaleway_sd_configs",
    "serverset_sd_configs",
    "triton_sd_configs",
    "uyuni_sd_configs",
    "vultr_sd_configs",
];

#[derive(Debug, Default, Deserialize)]
pub struct RawHttp {
    pub(super) basic_auth: Option<RawBasicAuth>,
    pub(super) authorization: Option<RawAuthorization>,
    pub(super) oauth2: Option<serde_norway::Value>,
    bearer_token: Option<String>,
    bearer_token_file: Option<String>,
    tls_config: Option<RawTls>,
    proxy_url: Option<String>,
    proxy_connect_header: Option<serde_norway::Value>,
    follow_redirects: Option<bool>,
    enable_http2: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBasicAuth {
    username: Option<String>,
    password: Option<String>,
    password_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuthorization {
    #[serde(rename = "type")]
    kind: Option<String>,
    credentials: Option<String>,
    credentials_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    ca: Option<String>,
    cert: Option<String>,
    key: Option<String>,
    ca_file: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    server_name: Option<String>,
    insecure_skip_verify: Option<bool>,
    min_version: Option<String>,
    max_version: Option<String>,
}

/// A target group in YAML or JSON (`static_configs`, file and HTTP discovery).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    #[serde(default)]
    pub targets: Option<Vec<String>>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
}

pub fn duration(text: &Option<String>) -> Result<i64, String> {
    match text {
        None => Ok(0),
        Some(t) if t.is_empty() => Err("empty duration string".into()),
        Some(t) => {
            parse_prom_duration(t).ok_or_else(|| format!("not a valid duration string: {t:?}"))
        }
    }
}

pub fn join(dir: &Path, p: &str) -> PathBuf {
    let path = Path::new(p);
    if path.is_absolute() || p.is_empty() {
        path.to_path_buf()
    } else {
        dir.join(path)
    }
}

/// Checks an HTTP client config of a section Sightline does not run.
pub fn check_http_client(h: RawHttp, dir: &Path) -> Result<(), String> {
    http_client(h, dir).map(|_| ())
}

pub fn http_client(h: RawHttp, dir: &Path) -> Result<HttpClient, String> {
    let path = |p: &Option<String>| p.as_deref().filter(|s| !s.is_empty()).map(|s| join(dir, s));
    let bearer = h.bearer_token.clone().unwrap_or_default();
    let bearer_file = h.bearer_token_file.clone().unwrap_or_default();
    if !bearer.is_empty() && !bearer_file.is_empty() {
        return Err("at most one of bearer_token & bearer_token_file must be configured".into());
    }
    if (h.basic_auth.is_some() || h.oauth2.is_some())
        && (!bearer.is_empty() || !bearer_file.is_empty())
    {
        return Err(
            "at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured"
                .into(),
        );
    }
    let basic_auth = match &h.basic_auth {
        None => None,
        Some(b) => {
            let password = b.password.clone().unwrap_or_default();
            if !password.is_empty() && b.password_file.as_deref().is_some_and(|f| !f.is_empty()) {
                return Err(
                    "at most one of basic_auth password & password_file must be configured".into(),
                );
            }
            Some(BasicAuth {
                username: b.username.clone().unwrap_or_default(),
                password,
                password_file: path(&b.password_file),
            })
        }
    };
    let authorization = match &h.authorization {
        Some(a) => {
            if !bearer.is_empty() || !bearer_file.is_empty() {
                return Err(
                    "authorization is not compatible with bearer_token & bearer_token_file".into(),
                );
            }
            let credentials = a.credentials.clone().unwrap_or_default();
            if !credentials.is_empty()
                && a.credentials_file.as_deref().is_some_and(|f| !f.is_empty())
            {
                return Err(
                    "at most one of authorization credentials & credentials_file must be configured"
                        .into(),
                );
            }
            let mut kind = a.kind.clone().unwrap_or_default().trim().to_string();
            if kind.is_empty() {
                kind = "Bearer".into();
            }
            if kind.eq_ignore_ascii_case("basic") {
                return Err(
                    "authorization type cannot be set to \"basic\", use \"basic_auth\" instead"
                        .into(),
                );
            }
            if h.basic_auth.is_some() || h.oauth2.is_some() {
                return Err(
                    "at most one of basic_auth, oauth2 & authorization must be configured".into(),
                );
            }
            Some(Authorization {
                kind,
                credentials,
                credentials_file: path(&a.credentials_file),
            })
        }
        None if !bearer.is_empty() => Some(Authorization {
            kind: "Bearer".into(),
            credentials: bearer,
            credentials_file: None,
        }),
        None if !bearer_file.is_empty() => Some(Authorization {
            kind: "Bearer".into(),
            credentials: String::new(),
            credentials_file: path(&h.bearer_token_file),
        }),
        None => None,
    };
    if let Some(o) = &h.oauth2 {
        let get = |k: &str| {
            o.get(k)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        if h.basic_auth.is_some() {
            return Err("at most one of oauth2 & basic_auth must be configured".into());
        }
        if get("client_id").is_empty() {
            return Err("oauth2 client_id must be configured".into());
        }
        if get("token_url").is_empty() {
            return Err("oauth2 token_url must be configured".into());
        }
    }
    let tls = match h.tls_config {
        None => TlsConfig::default(),
        Some(t) => {
            for v in [&t.min_version, &t.max_version].into_iter().flatten() {
                if !matches!(v.as_str(), "TLS10" | "TLS11" | "TLS12" | "TLS13") {
                    return Err(format!("unknown TLS version: {v}"));
                }
            }
            if t.ca.is_some() || t.cert.is_some() || t.key.is_some() {
                // Inline PEM: accepted by Prometheus; Sightline reads files only.
                return Err(
                    "tls_config: inline ca, cert and key are not supported by Sightline; use ca_file, cert_file and key_file"
                        .into(),
                );
            }
            TlsConfig {
                ca_file: path(&t.ca_file),
                cert_file: path(&t.cert_file),
                key_file: path(&t.key_file),
                server_name: t.server_name.filter(|s| !s.is_empty()),
                insecure_skip_verify: t.insecure_skip_verify.unwrap_or(false),
            }
        }
    };
    let _ = (h.enable_http2, h.proxy_connect_header);
    let unsupported = if h.oauth2.is_some() {
        Some("oauth2 is not supported by Sightline".to_string())
    } else if h.proxy_url.as_deref().is_some_and(|p| !p.is_empty()) {
        Some("proxy_url is not supported by Sightline".to_string())
    } else {
        None
    };
    Ok(HttpClient {
        basic_auth,
        authorization,
        tls,
        follow_redirects: h.follow_redirects.unwrap_or(true),
        unsupported,
    })
}

/// Checks a group's labels as Prometheus's `model.LabelSet` does.
pub fn group(raw: RawGroup, source: String) -> Result<TargetGroup, String> {
    let labels = raw.labels.unwrap_or_default();
    for n in labels.keys() {
        if !valid_label_name(n) {
            return Err(format!("{n:?} is not a valid label name"));
        }
    }
    Ok(TargetGroup {
        targets: raw.targets.unwrap_or_default(),
        labels,
        source,
    })
}

pub fn rules(raw: Option<Vec<Option<RawRule>>>, what: &str) -> Result<Vec<Rule>, String> {
    let mut out = Vec::new();
    for r in raw.unwrap_or_default() {
        let Some(r) = r else {
            return Err(format!(
                "empty or null {what} relabeling rule in scrape config"
            ));
        };
        out.push(r.build()?);
    }
    Ok(out)
}
