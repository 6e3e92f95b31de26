//! Configuration in two stages (ripgrep's lowargs/hiargs shape): [`raw::RawConfig`] is what a TOML
//! file, `SIGHTLINE_<SECTION>_<KEY>` environment variables and command-line flags can say, with a
//! default for every key; [`validate`] turns it into a typed [`Config`] or an error that names the
//! key and the expected form. This module owns parsing and precedence (defaults < file < environment
//! < flags); it does not open sockets or files other than the config file itself.

pub mod raw;
mod units;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use raw::RawConfig;
pub use units::{parse_duration, parse_size};

/// Every failure a user can cause while configuring Sightline; each names the key or file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("invalid value for `{key}`: {value:?} ({expected})")]
    Invalid {
        key: String,
        value: String,
        expected: String,
    },
}

/// Validated configuration, the only form the rest of the program sees.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    /// Empty, or a prefix such as "/observability" (leading slash, no trailing slash).
    pub base_path: String,
    pub listen_http: SocketAddr,
    pub listen_otlp_grpc: SocketAddr,
    pub listen_otlp_http: SocketAddr,
    pub ingest: IngestConfig,
    pub traces: TracesConfig,
    pub metrics: MetricsConfig,
    pub query: crate::promql::EngineConfig,
    pub host: HostConfig,
    pub gpu: GpuConfig,
    pub spanmetrics: crate::spanmetrics::SpanMetricsConfig,
    pub scrape: Vec<ScrapeConfig>,
    pub forward: crate::forward::ForwardConfig,
    pub trusted_proxies: Vec<crate::proxy::Cidr>,
    pub proxy: Vec<crate::proxy::ProxyRoute>,
    pub auth: crate::auth::AuthConfig,
    pub tls: Option<crate::tls::TlsConfig>,
    pub log_level: String,
    pub log_json: bool,
}

#[derive(Debug, Clone)]
pub struct IngestConfig {
    pub max_grpc_message_bytes: usize,
    pub max_http_body_bytes: usize,
    pub memory_budget_bytes: usize,
    pub max_attributes: usize,
    pub max_attribute_value_length: usize,
}

#[derive(Debug, Clone)]
pub struct TracesConfig {
    pub retention: Duration,
    pub max_size_bytes: u64,
    pub index_commit_interval: Duration,
    pub retention_check_interval: Duration,
    pub max_indexed_value_length: usize,
}

#[derive(Debug, Clone)]
pub struct MetricsConfig {
    pub tsdb: crate::tsdb::TsdbConfig,
    pub scope_labels: bool,
    pub delta_max_streams: usize,
    pub delta_stream_ttl: Duration,
}

#[derive(Debug, Clone)]
pub struct HostConfig {
    pub enabled: bool,
    pub interval: Duration,
    pub proc_path: PathBuf,
    pub sys_path: PathBuf,
    pub rootfs_path: PathBuf,
}

#[derive(Debug, Clone)]
pub struct GpuConfig {
    pub enabled: bool,
    pub interval: Duration,
    /// `None`: the driver's `libnvidia-ml.so.1`.
    pub library: Option<PathBuf>,
}

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

/// Values given on the command line; `None` leaves the lower layers in force.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub data_dir: Option<String>,
    pub base_path: Option<String>,
    pub http: Option<String>,
    pub otlp_grpc: Option<String>,
    pub otlp_http: Option<String>,
}

impl Config {
    /// Defaults only, with the data directory given: what tests and benchmarks start from.
    pub fn for_data_dir(dir: &Path) -> Config {
        let mut raw = RawConfig {
            data_dir: dir.display().to_string(),
            ..RawConfig::default()
        };
        raw.listen.http = "127.0.0.1:0".into();
        raw.listen.otlp_grpc = "127.0.0.1:0".into();
        raw.listen.otlp_http = "127.0.0.1:0".into();
        validate(&raw).expect("defaults are valid")
    }
}

/// Loads the configuration: defaults, then `file` (if any), then `SIGHTLINE_*` variables from
/// `env`, then `flags`. Returns the config and warnings worth logging once logging is up.
pub fn load(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    flags: &Overrides,
) -> Result<(Config, Vec<String>), ConfigError> {
    let mut tree = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            // Typed first, for errors that point at the line and name the section.
            toml::from_str::<RawConfig>(&text).map_err(|e| ConfigError::Parse {
                path: path.to_path_buf(),
                message: e.to_string().trim().to_string(),
            })?;
            text.parse::<toml::Table>()
                .map_err(|e| ConfigError::Parse {
                    path: path.to_path_buf(),
                    message: e.to_string().trim().to_string(),
                })?
        }
        None => toml::Table::new(),
    };
    let warnings = apply_env(&mut tree, env)?;
    apply_flags(&mut tree, flags);
    let raw: RawConfig = toml::Value::Table(tree)
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::Parse {
            path: file
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("<environment>")),
            message: e.message().to_string(),
        })?;
    Ok((validate(&raw)?, warnings))
}

/// `(section, key)` for every known key, section empty for top-level keys, with its default value.
fn known_keys() -> Vec<(String, String, toml::Value)> {
    let defaults = toml::Value::try_from(RawConfig::default()).expect("defaults serialize");
    let mut out = Vec::new();
    if let toml::Value::Table(top) = defaults {
        for (k, v) in top {
            match v {
                toml::Value::Table(section) => {
                    for (k2, v2) in section {
                        out.push((k.clone(), k2, v2));
                    }
                }
                // Arrays of tables (`[[scrape]]`) are set in the file only.
                toml::Value::Array(_) => {}
                other => out.push((String::new(), k, other)),
            }
        }
    }
    out
}

fn env_name(section: &str, key: &str) -> String {
    if section.is_empty() {
        format!("SIGHTLINE_{}", key.to_ascii_uppercase())
    } else {
        format!(
            "SIGHTLINE_{}_{}",
            section.to_ascii_uppercase(),
            key.to_ascii_uppercase()
        )
    }
}

fn apply_env(
    tree: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<String>, ConfigError> {
    let keys = known_keys();
    let mut warnings = Vec::new();
    let env: Vec<(String, String)> = env.into_iter().collect();
    // The seed stack's variables for forwarding (an OTLP/HTTP endpoint with basic auth); the
    // SIGHTLINE_FORWARD_* variables, applied after, win.
    for (var, value) in &env {
        let key = match var.as_str() {
            "OTEL_COLLECTOR_OTLP_HTTP_ENDPOINT" => "endpoint",
            "OTEL_COLLECTOR_OTLP_USERNAME" => "username",
            "OTEL_COLLECTOR_OTLP_PASSWORD" => "password",
            _ => continue,
        };
        if value.trim().is_empty() {
            continue;
        }
        set_key(
            tree,
            "forward",
            key,
            toml::Value::String(value.trim().to_string()),
        );
        if key == "endpoint" {
            set_key(
                tree,
                "forward",
                "protocol",
                toml::Value::String("http/protobuf".into()),
            );
        }
    }
    for (var, value) in env {
        if !var.starts_with("SIGHTLINE_") || var == "SIGHTLINE_CONFIG" {
            continue;
        }
        let Some((section, key, default)) = keys.iter().find(|(s, k, _)| env_name(s, k) == var)
        else {
            warnings.push(format!("ignoring {var}: no config key has that name"));
            continue;
        };
        let typed = match default {
            toml::Value::Integer(_) => {
                toml::Value::Integer(value.trim().parse().map_err(|_| ConfigError::Env {
                    var: var.clone(),
                    message: format!("expected a whole number, got {value:?}"),
                })?)
            }
            toml::Value::Boolean(_) => {
                toml::Value::Boolean(value.trim().parse().map_err(|_| ConfigError::Env {
                    var: var.clone(),
                    message: format!("expected true or false, got {value:?}"),
                })?)
            }
            // Lists of secrets and hashes (argon2 hashes hold commas): separated by whitespace.
            toml::Value::Array(_) if section == "auth" => toml::Value::Array(
                value
                    .split_whitespace()
                    .map(|x| toml::Value::String(x.to_string()))
                    .collect(),
            ),
            // Lists of numbers (bucket bounds): comma-separated.
            toml::Value::Array(_) => toml::Value::Array(
                value
                    .split(',')
                    .map(|x| {
                        x.trim()
                            .parse::<f64>()
                            .map(toml::Value::Float)
                            .map_err(|_| ConfigError::Env {
                                var: var.clone(),
                                message: format!(
                                    "expected numbers separated by commas, got {value:?}"
                                ),
                            })
                    })
                    .collect::<Result<_, _>>()?,
            ),
            _ => toml::Value::String(value),
        };
        set_key(tree, section, key, typed);
    }
    Ok(warnings)
}

fn set_key(tree: &mut toml::Table, section: &str, key: &str, value: toml::Value) {
    if section.is_empty() {
        tree.insert(key.to_string(), value);
        return;
    }
    let entry = tree
        .entry(section.to_string())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(t) = entry {
        t.insert(key.to_string(), value);
    }
}

fn apply_flags(tree: &mut toml::Table, flags: &Overrides) {
    let pairs = [
        ("", "data_dir", &flags.data_dir),
        ("", "base_path", &flags.base_path),
        ("listen", "http", &flags.http),
        ("listen", "otlp_grpc", &flags.otlp_grpc),
        ("listen", "otlp_http", &flags.otlp_http),
    ];
    for (section, key, value) in pairs {
        if let Some(v) = value {
            set_key(tree, section, key, toml::Value::String(v.clone()));
        }
    }
}

fn invalid(key: &str, value: impl std::fmt::Display, expected: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        value: value.to_string(),
        expected: expected.to_string(),
    }
}

fn addr(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value
        .parse()
        .map_err(|_| invalid(key, value, "expected host:port, e.g. 0.0.0.0:8080"))
}

fn size(key: &str, value: &raw::SizeOrString) -> Result<u64, ConfigError> {
    match value {
        raw::SizeOrString::Bytes(n) => Ok(*n),
        raw::SizeOrString::Text(t) => parse_size(t)
            .ok_or_else(|| invalid(key, t, "expected a size such as 20MiB, 10GB or 4096")),
    }
}

fn duration(key: &str, value: &str) -> Result<Duration, ConfigError> {
    parse_duration(value).ok_or_else(|| {
        invalid(
            key,
            value,
            "expected a duration such as 7d, 12h, 30m, 1s, 500ms",
        )
    })
}

fn positive(key: &str, n: u64) -> Result<u64, ConfigError> {
    if n == 0 {
        Err(invalid(key, n, "expected a number greater than zero"))
    } else {
        Ok(n)
    }
}

/// Checks every value and produces the typed [`Config`].
pub fn validate(raw: &RawConfig) -> Result<Config, ConfigError> {
    let base_path = normalise_base_path(&raw.base_path)?;
    if raw.data_dir.trim().is_empty() {
        return Err(invalid(
            "data_dir",
            &raw.data_dir,
            "expected a directory path",
        ));
    }
    let log_json = match raw.log.format.as_str() {
        "text" => false,
        "json" => true,
        other => {
            return Err(invalid(
                "log.format",
                other,
                "expected \"text\" or \"json\"",
            ));
        }
    };
    if tracing_subscriber::EnvFilter::try_new(&raw.log.level).is_err() {
        return Err(invalid(
            "log.level",
            &raw.log.level,
            "expected a level (error, warn, info, debug, trace) or a tracing filter",
        ));
    }
    let to_usize = |key: &str, v: &raw::SizeOrString| -> Result<usize, ConfigError> {
        let n = positive(key, size(key, v)?)?;
        usize::try_from(n).map_err(|_| invalid(key, n, "too large for this machine"))
    };
    let interval = duration(
        "traces.index_commit_interval",
        &raw.traces.index_commit_interval,
    )?;
    if interval.is_zero() || interval > Duration::from_secs(60) {
        return Err(invalid(
            "traces.index_commit_interval",
            &raw.traces.index_commit_interval,
            "expected a duration between 1ms and 60s",
        ));
    }
    Ok(Config {
        data_dir: PathBuf::from(&raw.data_dir),
        base_path,
        listen_http: addr("listen.http", &raw.listen.http)?,
        listen_otlp_grpc: addr("listen.otlp_grpc", &raw.listen.otlp_grpc)?,
        listen_otlp_http: addr("listen.otlp_http", &raw.listen.otlp_http)?,
        ingest: IngestConfig {
            max_grpc_message_bytes: to_usize(
                "ingest.max_grpc_message_size",
                &raw.ingest.max_grpc_message_size,
            )?,
            max_http_body_bytes: to_usize(
                "ingest.max_http_body_size",
                &raw.ingest.max_http_body_size,
            )?,
            memory_budget_bytes: to_usize("ingest.memory_budget", &raw.ingest.memory_budget)?,
            max_attributes: positive("ingest.max_attributes", raw.ingest.max_attributes)? as usize,
            max_attribute_value_length: positive(
                "ingest.max_attribute_value_length",
                raw.ingest.max_attribute_value_length,
            )? as usize,
        },
        traces: TracesConfig {
            retention: duration("traces.retention", &raw.traces.retention)?,
            max_size_bytes: positive(
                "traces.max_size",
                size("traces.max_size", &raw.traces.max_size)?,
            )?,
            index_commit_interval: interval,
            retention_check_interval: {
                let d = duration(
                    "traces.retention_check_interval",
                    &raw.traces.retention_check_interval,
                )?;
                if d.is_zero() {
                    return Err(invalid(
                        "traces.retention_check_interval",
                        &raw.traces.retention_check_interval,
                        "expected a duration greater than zero",
                    ));
                }
                d
            },
            max_indexed_value_length: raw.traces.max_indexed_value_length as usize,
        },
        metrics: metrics_config(&raw.metrics)?,
        query: crate::promql::EngineConfig {
            lookback: nonzero_duration("query.lookback_delta", &raw.query.lookback_delta)?
                .as_millis() as i64,
            timeout: nonzero_duration("query.timeout", &raw.query.timeout)?,
            max_samples: positive("query.max_samples", raw.query.max_samples)? as usize,
            max_concurrency: positive("query.max_concurrency", raw.query.max_concurrency)? as usize,
        },
        host: HostConfig {
            enabled: raw.host.enabled,
            interval: nonzero_duration("host.interval", &raw.host.interval)?,
            proc_path: raw.host.proc_path.clone().into(),
            sys_path: raw.host.sys_path.clone().into(),
            rootfs_path: raw.host.rootfs_path.clone().into(),
        },
        gpu: GpuConfig {
            enabled: raw.gpu.enabled,
            interval: nonzero_duration("gpu.interval", &raw.gpu.interval)?,
            library: (!raw.gpu.library.is_empty()).then(|| raw.gpu.library.clone().into()),
        },
        spanmetrics: spanmetrics_config(&raw.spanmetrics)?,
        scrape: raw
            .scrape
            .iter()
            .enumerate()
            .map(|(i, s)| scrape_config(i, s))
            .collect::<Result<_, _>>()?,
        forward: forward_config(&raw.forward)?,
        trusted_proxies: raw
            .trusted_proxies
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| {
                crate::proxy::Cidr::parse(t).ok_or_else(|| {
                    invalid(
                        "trusted_proxies",
                        t,
                        "expected addresses or CIDR blocks separated by commas, e.g. 10.0.0.0/8, 127.0.0.1",
                    )
                })
            })
            .collect::<Result<_, _>>()?,
        proxy: proxy_routes(&raw.proxy)?,
        auth: auth_config(&raw.auth)?,
        tls: tls_config(&raw.tls)?,
        log_level: raw.log.level.clone(),
        log_json,
    })
}

fn tls_config(r: &raw::RawTls) -> Result<Option<crate::tls::TlsConfig>, ConfigError> {
    let (cert, key) = (r.cert_file.trim(), r.key_file.trim());
    match (cert.is_empty(), key.is_empty()) {
        (true, true) => return Ok(None),
        (false, false) => {}
        (true, false) => {
            return Err(invalid(
                "tls.cert_file",
                "",
                "a PEM certificate file (tls.key_file is set, so TLS needs both)",
            ));
        }
        (false, true) => {
            return Err(invalid(
                "tls.key_file",
                "",
                "a PEM private key file (tls.cert_file is set, so TLS needs both)",
            ));
        }
    }
    let mut c = crate::tls::TlsConfig {
        cert_file: cert.into(),
        key_file: key.into(),
        http: false,
        otlp_grpc: false,
        otlp_http: false,
    };
    for l in r
        .listeners
        .split(',')
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        match l {
            "all" => (c.http, c.otlp_grpc, c.otlp_http) = (true, true, true),
            "http" => c.http = true,
            "otlp_grpc" => c.otlp_grpc = true,
            "otlp_http" => c.otlp_http = true,
            _ => {
                return Err(invalid(
                    "tls.listeners",
                    l,
                    "\"all\" or listener names separated by commas: http, otlp_grpc, otlp_http",
                ));
            }
        }
    }
    if !(c.http || c.otlp_grpc || c.otlp_http) {
        return Err(invalid(
            "tls.listeners",
            &r.listeners,
            "at least one listener (\"all\", http, otlp_grpc, otlp_http) when cert_file is set",
        ));
    }
    Ok(Some(c))
}

fn buckets(key: &str, b: &[f64]) -> Result<Vec<f64>, ConfigError> {
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

fn spanmetrics_config(
    r: &raw::RawSpanMetrics,
) -> Result<crate::spanmetrics::SpanMetricsConfig, ConfigError> {
    Ok(crate::spanmetrics::SpanMetricsConfig {
        enabled: r.enabled,
        interval: nonzero_duration("spanmetrics.interval", &r.interval)?,
        max_series: positive("spanmetrics.max_series", r.max_series)? as usize,
        latency_buckets: buckets("spanmetrics.latency_buckets", &r.latency_buckets)?,
        graph_buckets: buckets(
            "spanmetrics.service_graph_buckets",
            &r.service_graph_buckets,
        )?,
        graph_wait: nonzero_duration("spanmetrics.service_graph_wait", &r.service_graph_wait)?,
        graph_max_items: positive(
            "spanmetrics.service_graph_max_items",
            r.service_graph_max_items,
        )? as usize,
    })
}

fn nonzero_duration(key: &str, value: &str) -> Result<Duration, ConfigError> {
    let d = duration(key, value)?;
    if d.is_zero() {
        return Err(invalid(key, value, "expected a duration greater than zero"));
    }
    Ok(d)
}

fn metrics_config(m: &raw::RawMetrics) -> Result<MetricsConfig, ConfigError> {
    let block = nonzero_duration("metrics.block_duration", &m.block_duration)?;
    if block.as_millis() % 60_000 != 0 {
        return Err(invalid(
            "metrics.block_duration",
            &m.block_duration,
            "expected whole minutes, such as \"2h\"",
        ));
    }
    Ok(MetricsConfig {
        tsdb: crate::tsdb::TsdbConfig {
            retention: nonzero_duration("metrics.retention", &m.retention)?,
            max_size_bytes: size("metrics.max_size", &m.max_size)?,
            block_duration: block,
            out_of_order_window: duration("metrics.out_of_order_window", &m.out_of_order_window)?,
            max_series: positive("metrics.max_series", m.max_series)? as usize,
            wal_segment_bytes: positive(
                "metrics.wal_segment_size",
                size("metrics.wal_segment_size", &m.wal_segment_size)?,
            )?,
            maintenance_interval: nonzero_duration(
                "metrics.maintenance_interval",
                &m.maintenance_interval,
            )?,
        },
        scope_labels: m.scope_labels,
        delta_max_streams: positive("metrics.delta_max_streams", m.delta_max_streams)? as usize,
        delta_stream_ttl: nonzero_duration("metrics.delta_stream_ttl", &m.delta_stream_ttl)?,
    })
}

fn scrape_config(i: usize, s: &raw::RawScrape) -> Result<ScrapeConfig, ConfigError> {
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
    if s.scheme != "http" {
        return Err(invalid(
            &key("scheme"),
            &s.scheme,
            "only \"http\" is supported: scraping over TLS is not built yet",
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

fn normalise_base_path(value: &str) -> Result<String, ConfigError> {
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

fn auth_config(r: &raw::RawAuth) -> Result<crate::auth::AuthConfig, ConfigError> {
    let mut users = Vec::new();
    for u in &r.users {
        let Some((name, hash)) = u.split_once(':') else {
            return Err(invalid(
                "auth.users",
                "(not shown)",
                "expected name:hash entries",
            ));
        };
        if name.is_empty() || !(hash.starts_with("$argon2") || hash.starts_with("$2")) {
            return Err(invalid(
                "auth.users",
                name,
                "expected name:hash with an argon2 ($argon2id$...) or bcrypt ($2b$...) hash; make one with `sightline hash-password`",
            ));
        }
        users.push((name.to_string(), hash.to_string()));
    }
    if r.enabled && users.is_empty() && r.tokens.is_empty() {
        return Err(invalid(
            "auth.enabled",
            "true",
            "expected at least one of auth.users or auth.tokens",
        ));
    }
    if r.enabled && r.require_ingest_key && r.ingest_keys.is_empty() {
        return Err(invalid(
            "auth.ingest_keys",
            "(empty)",
            "expected at least one OTLP ingest key while auth is on (or auth.require_ingest_key = false to leave ingest open)",
        ));
    }
    let trusted = r.trusted_header.trim();
    if !trusted.is_empty() && axum::http::HeaderName::from_bytes(trusted.as_bytes()).is_err() {
        return Err(invalid(
            "auth.trusted_header",
            trusted,
            "expected a header name",
        ));
    }
    Ok(crate::auth::AuthConfig {
        enabled: r.enabled,
        users,
        tokens: r.tokens.iter().filter(|t| !t.is_empty()).cloned().collect(),
        ingest_keys: r
            .ingest_keys
            .iter()
            .filter(|t| !t.is_empty())
            .cloned()
            .collect(),
        require_ingest_key: r.require_ingest_key,
        protect_metrics: r.protect_metrics,
        session_ttl: nonzero_duration("auth.session_ttl", &r.session_ttl)?,
        trusted_header: (!trusted.is_empty()).then(|| trusted.to_ascii_lowercase()),
    })
}

fn proxy_routes(raw: &[raw::RawProxy]) -> Result<Vec<crate::proxy::ProxyRoute>, ConfigError> {
    let mut out: Vec<crate::proxy::ProxyRoute> = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let key = |k: &str| format!("proxy[{i}].{k}");
        let path = crate::proxy::path::normalise(r.path.trim(), true)
            .map_err(|e| invalid(&key("path"), &r.path, e.message()))?;
        let path = path.trim_end_matches('/').to_string();
        if path.is_empty() {
            return Err(invalid(
                &key("path"),
                &r.path,
                "expected a sub-path such as /prometheus, not /",
            ));
        }
        let ours = ["/ui", "/api", "/v1", "/metrics", "/healthz", "/readyz"];
        if ours
            .iter()
            .any(|o| crate::proxy::path::under(&path, o) || crate::proxy::path::under(o, &path))
        {
            return Err(invalid(
                &key("path"),
                &r.path,
                "expected a path that does not cover or sit under Sightline's own routes (/ui, /api, /v1, /metrics, /healthz, /readyz)",
            ));
        }
        if let Some(other) = out.iter().find(|o| {
            crate::proxy::path::under(&path, &o.path) || crate::proxy::path::under(&o.path, &path)
        }) {
            return Err(invalid(
                &key("path"),
                &r.path,
                &format!("expected a path apart from the route at {}", other.path),
            ));
        }
        let url = reqwest::Url::parse(r.upstream.trim()).map_err(|_| {
            invalid(
                &key("upstream"),
                &r.upstream,
                "expected a URL such as http://127.0.0.1:9090",
            )
        })?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(invalid(
                &key("upstream"),
                &r.upstream,
                "expected an http:// or https:// URL",
            ));
        }
        let ca_file = r.ca_file.trim();
        if !ca_file.is_empty() && url.scheme() != "https" {
            return Err(invalid(
                &key("ca_file"),
                ca_file,
                "nothing: ca_file is for https upstreams",
            ));
        }
        let Some(host) = url.host_str() else {
            return Err(invalid(
                &key("upstream"),
                &r.upstream,
                "expected a URL with a host",
            ));
        };
        if url.query().is_some() || !url.username().is_empty() {
            return Err(invalid(
                &key("upstream"),
                &r.upstream,
                "expected scheme://host:port[/path] only",
            ));
        }
        let authority = match url.port() {
            Some(p) => format!(
                "{}:{p}",
                if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host.to_string()
                }
            ),
            None => host.to_string(),
        };
        let upstream_path = url.path().trim_end_matches('/').to_string();
        out.push(crate::proxy::ProxyRoute {
            name: if r.name.trim().is_empty() {
                path.trim_start_matches('/').to_string()
            } else {
                r.name.trim().to_string()
            },
            path,
            scheme: url.scheme().into(),
            ca_file: (!ca_file.is_empty()).then(|| ca_file.into()),
            authority,
            upstream_path,
            strip_prefix: r.strip_prefix,
            preserve_host: r.preserve_host,
            connect_timeout: nonzero_duration(&key("connect_timeout"), &r.connect_timeout)?,
            timeout: nonzero_duration(&key("timeout"), &r.timeout)?,
        });
    }
    Ok(out)
}

fn forward_config(r: &raw::RawForward) -> Result<crate::forward::ForwardConfig, ConfigError> {
    use crate::forward::{Auth, ForwardConfig, Mode, Protocol, SIGNAL_NAMES};
    let protocol = match r.protocol.trim() {
        "http/protobuf" | "http" | "" => Protocol::HttpProtobuf,
        "grpc" => Protocol::Grpc,
        other => {
            return Err(invalid(
                "forward.protocol",
                other,
                "expected \"http/protobuf\" or \"grpc\"",
            ));
        }
    };
    let check_url = |key: &str, v: &str| -> Result<String, ConfigError> {
        let v = v.trim();
        let url = reqwest::Url::parse(v).map_err(|_| {
            invalid(
                key,
                v,
                "expected a URL such as https://otlp.example.com/otlp",
            )
        })?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(invalid(
                key,
                url.scheme(),
                "expected an http:// or https:// URL",
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            // Printed as it is in logs and on the status page: credentials go elsewhere.
            return Err(invalid(
                key,
                "(a URL with credentials)",
                "expected a URL without user:password; use forward.username and forward.password",
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid(key, v, "expected a URL with a host"));
        }
        Ok(v.to_string())
    };
    let endpoint = if r.endpoint.trim().is_empty() {
        String::new()
    } else {
        check_url("forward.endpoint", &r.endpoint)?
    };
    let specific = [&r.traces_endpoint, &r.metrics_endpoint, &r.logs_endpoint];
    let mut urls: [String; 3] = Default::default();
    let mut modes = [Mode::Local; 3];
    for s in 0..3 {
        let key = format!("forward.{}_endpoint", SIGNAL_NAMES[s]);
        if !specific[s].trim().is_empty() {
            if protocol == Protocol::Grpc {
                return Err(invalid(
                    &key,
                    specific[s],
                    "per-signal endpoints are for http/protobuf; gRPC uses forward.endpoint",
                ));
            }
            urls[s] = check_url(&key, specific[s])?;
        } else if !endpoint.is_empty() && protocol == Protocol::HttpProtobuf {
            urls[s] = format!("{}/v1/{}", endpoint.trim_end_matches('/'), SIGNAL_NAMES[s]);
        }
        let mode_key = format!("forward.{}", SIGNAL_NAMES[s]);
        let has_target = match protocol {
            Protocol::HttpProtobuf => !urls[s].is_empty(),
            Protocol::Grpc => !endpoint.is_empty(),
        };
        let given = [&r.traces, &r.metrics, &r.logs][s].trim();
        modes[s] = match given {
            "" if has_target => Mode::Both,
            "" | "local" => Mode::Local,
            "forward" => Mode::Forward,
            "both" => Mode::Both,
            other => {
                return Err(invalid(
                    &mode_key,
                    other,
                    "expected \"local\", \"forward\" or \"both\"",
                ));
            }
        };
        if modes[s].forwards() && !has_target {
            return Err(invalid(
                &mode_key,
                given,
                "forwarding needs forward.endpoint (or a per-signal endpoint)",
            ));
        }
    }
    let headers = match &r.headers {
        raw::HeadersOrString::Table(t) => t.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        raw::HeadersOrString::Text(t) => {
            let mut out = Vec::new();
            for part in t.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let Some((k, v)) = part.split_once('=') else {
                    return Err(invalid(
                        "forward.headers",
                        "(not shown)",
                        "expected key=value pairs separated by commas",
                    ));
                };
                out.push((k.trim().to_string(), v.trim().to_string()));
            }
            out
        }
    };
    for (k, v) in &headers {
        let ok_name = !k.is_empty()
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !ok_name {
            return Err(invalid(
                "forward.headers",
                k,
                "expected header names of letters, digits, - _ .",
            ));
        }
        if v.bytes().any(|b| b.is_ascii_control() || !b.is_ascii()) {
            return Err(invalid(
                "forward.headers",
                format!("{k}=(not shown)"),
                "expected printable ASCII header values",
            ));
        }
    }
    let auth = if !r.bearer_token.is_empty() {
        if !r.username.is_empty() {
            return Err(invalid(
                "forward.bearer_token",
                "(not shown)",
                "expected either a bearer token or a username/password, not both",
            ));
        }
        Some(Auth::Bearer(r.bearer_token.clone()))
    } else if !r.username.is_empty() || !r.password.is_empty() {
        Some(Auth::Basic {
            username: r.username.clone(),
            password: r.password.clone(),
        })
    } else {
        None
    };
    let gzip = match r.compression.trim() {
        "gzip" => true,
        "none" | "" => false,
        other => {
            return Err(invalid(
                "forward.compression",
                other,
                "expected \"gzip\" or \"none\"",
            ));
        }
    };
    let queue_max_bytes = positive(
        "forward.queue_max_size",
        size("forward.queue_max_size", &r.queue_max_size)?,
    )?;
    if queue_max_bytes < (1 << 20) {
        return Err(invalid(
            "forward.queue_max_size",
            queue_max_bytes,
            "expected at least 1MiB",
        ));
    }
    let max_batch = positive(
        "forward.max_batch_size",
        size("forward.max_batch_size", &r.max_batch_size)?,
    )?;
    Ok(ForwardConfig {
        endpoint,
        protocol,
        urls,
        modes,
        headers,
        auth,
        gzip,
        ca_file: (!r.ca_file.trim().is_empty()).then(|| PathBuf::from(r.ca_file.trim())),
        timeout: nonzero_duration("forward.timeout", &r.timeout)?,
        queue_max_bytes,
        max_batch_bytes: max_batch.min(256 << 20) as usize,
        batch_timeout: duration("forward.batch_timeout", &r.batch_timeout)?,
        retry_initial: nonzero_duration(
            "forward.retry_initial_interval",
            &r.retry_initial_interval,
        )?,
        retry_max: nonzero_duration("forward.retry_max_interval", &r.retry_max_interval)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(toml_text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, toml_text).unwrap();
        let env = env.iter().map(|(a, b)| (a.to_string(), b.to_string()));
        load(Some(&path), env, &Overrides::default()).map(|(c, _)| c)
    }

    #[test]
    fn defaults_need_no_file() {
        let (c, w) = load(None, Vec::new(), &Overrides::default()).unwrap();
        assert!(w.is_empty());
        assert_eq!(c.listen_http.port(), 8080);
        assert_eq!(c.listen_otlp_grpc.port(), 4317);
        assert_eq!(c.listen_otlp_http.port(), 4318);
        assert_eq!(c.data_dir, PathBuf::from("./sightline-data"));
        assert_eq!(c.ingest.max_http_body_bytes, 20 << 20);
        assert_eq!(c.ingest.max_grpc_message_bytes, 4 << 20);
        assert_eq!(c.traces.retention, Duration::from_secs(7 * 86400));
    }

    #[test]
    fn precedence_file_env_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "data_dir = \"/a\"\n[listen]\nhttp = \"127.0.0.1:1\"\n",
        )
        .unwrap();
        let env = vec![
            (
                "SIGHTLINE_LISTEN_HTTP".to_string(),
                "127.0.0.1:2".to_string(),
            ),
            (
                "SIGHTLINE_INGEST_MAX_ATTRIBUTES".to_string(),
                "7".to_string(),
            ),
        ];
        let flags = Overrides {
            data_dir: Some("/b".into()),
            ..Default::default()
        };
        let (c, _) = load(Some(&path), env, &flags).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/b"));
        assert_eq!(c.listen_http.port(), 2);
        assert_eq!(c.ingest.max_attributes, 7);
    }

    /// Config cases as files: `tests/config/*.good.toml` load, `*.bad.toml` fail with the text in
    /// their first line (`# error: ...`).
    #[test]
    fn config_testdata() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/config");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let text = std::fs::read_to_string(&path).unwrap();
            if name.ends_with(".good.toml") {
                load_str(&text, &[]).unwrap_or_else(|e| panic!("{name}: {e}"));
                seen += 1;
            } else if name.ends_with(".bad.toml") {
                let want = text
                    .lines()
                    .next()
                    .and_then(|l| l.strip_prefix("# error: "))
                    .unwrap_or_else(|| panic!("{name}: first line must be `# error: ...`"));
                let err = load_str(&text, &[]).expect_err(&name).to_string();
                assert!(err.contains(want), "{name}: error {err:?} lacks {want:?}");
                seen += 1;
            }
        }
        assert!(seen >= 4, "expected config cases in {}", dir.display());
    }

    #[test]
    fn env_errors_name_the_variable() {
        let err = load_str("", &[("SIGHTLINE_INGEST_MAX_ATTRIBUTES", "many")]).unwrap_err();
        assert!(
            err.to_string().contains("SIGHTLINE_INGEST_MAX_ATTRIBUTES"),
            "{err}"
        );
    }

    #[test]
    fn example_config_is_valid_and_complete() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let parsed: RawConfig = toml::from_str(&text).unwrap();
        validate(&parsed).unwrap();
        for (section, key, _) in known_keys() {
            let line = format!("{key} =");
            assert!(
                text.contains(&line),
                "config.example.toml does not document {section}.{key}"
            );
        }
    }
}
