//! Configuration in two stages (ripgrep's lowargs/hiargs shape): [`raw::RawConfig`] is what a TOML
//! file, `SIGHTLINE_<SECTION>_<KEY>` environment variables and command-line flags can say, with a
//! default for every key; [`validate`] turns it into a typed [`Config`] or an error that names the
//! key and the expected form. This module owns parsing and precedence (defaults < file < environment
//! < flags); it does not open sockets or files other than the config file itself.

mod auth;
mod check;
mod forward;
mod load;
mod logs;
mod proxy;
mod query;
pub mod raw;
mod rules;
mod scrape;
mod spanmetrics;
mod tls;
mod tsdb;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use auth::AuthConfig;
pub use forward::{ForwardAuth, ForwardConfig, ForwardMode, ForwardProtocol};
pub use load::{Overrides, load};
pub use logs::{LogFilesConfig, LogFormat, LogsConfig, Multiline};
pub use proxy::{Cidr, ProxyRoute};
pub use query::EngineConfig;
pub use raw::RawConfig;
pub use raw::{default_graph_buckets, default_latency_buckets};
pub use rules::{AlertingConfig, AlertmanagerTarget, NotifyConfig, RulesConfig};
pub use scrape::ScrapeConfig;
pub use spanmetrics::SpanMetricsConfig;
pub use tls::TlsConfig;
pub use tsdb::{MetricsConfig, TsdbConfig};

pub use crate::base::units::{parse_duration, parse_size};
use check::*;

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
    pub query: EngineConfig,
    pub host: HostConfig,
    pub gpu: GpuConfig,
    pub spanmetrics: SpanMetricsConfig,
    pub logs: LogsConfig,
    pub scrape: Vec<ScrapeConfig>,
    /// `[scrape] prometheus_config`: a `prometheus.yml` whose `global` and `scrape_configs` run
    /// (relative to the config file's folder).
    pub scrape_prometheus_config: Option<PathBuf>,
    pub forward: ForwardConfig,
    pub trusted_proxies: Vec<Cidr>,
    pub proxy: Vec<ProxyRoute>,
    pub auth: AuthConfig,
    pub tls: Option<TlsConfig>,
    pub rules: RulesConfig,
    pub alerting: AlertingConfig,
    pub notify: NotifyConfig,
    /// `[dashboards] dirs`: folders of provisioned Grafana dashboards.
    pub dashboard_dirs: Vec<PathBuf>,
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
        metrics: tsdb::metrics_config(&raw.metrics)?,
        query: EngineConfig {
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
        spanmetrics: spanmetrics::spanmetrics_config(&raw.spanmetrics)?,
        logs: logs::logs_config(&raw.logs)?,
        scrape_prometheus_config: (!raw.scrape.prometheus_config.is_empty())
            .then(|| PathBuf::from(&raw.scrape.prometheus_config)),
        scrape: raw
            .scrape
            .jobs
            .iter()
            .enumerate()
            .map(|(i, s)| scrape::scrape_config(i, s))
            .collect::<Result<_, _>>()?,
        forward: forward::forward_config(&raw.forward)?,
        trusted_proxies: raw
            .trusted_proxies
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| {
                Cidr::parse(t).ok_or_else(|| {
                    invalid(
                        "trusted_proxies",
                        t,
                        "expected addresses or CIDR blocks separated by commas, e.g. 10.0.0.0/8, 127.0.0.1",
                    )
                })
            })
            .collect::<Result<_, _>>()?,
        proxy: proxy::proxy_routes(&raw.proxy)?,
        auth: auth::auth_config(&raw.auth)?,
        tls: tls::tls_config(&raw.tls)?,
        rules: rules::rules_config(&raw.rules)?,
        alerting: rules::alerting_config(&raw.alerting)?,
        notify: rules::notify_config(&raw.notify)?,
        dashboard_dirs: raw
            .dashboards
            .dirs
            .iter()
            .filter(|d| !d.trim().is_empty())
            .map(PathBuf::from)
            .collect(),
        log_level: raw.log.level.clone(),
        log_json,
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
        for (section, key, _) in load::known_keys() {
            let line = format!("{key} =");
            assert!(
                text.contains(&line),
                "config.example.toml does not document {section}.{key}"
            );
        }
    }
}
