//! Raw configuration: exactly what the TOML file, the environment and the flags can say, with a
//! default for every key and unknown keys refused. Validation into [`super::Config`] happens in
//! `super::validate`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub data_dir: String,
    pub base_path: String,
    pub listen: RawListen,
    pub ingest: RawIngest,
    pub traces: RawTraces,
    pub metrics: RawMetrics,
    pub query: RawQuery,
    pub host: RawHost,
    pub gpu: RawGpu,
    pub spanmetrics: RawSpanMetrics,
    pub logs: RawLogs,
    pub scrape: RawScrapeSection,
    pub forward: RawForward,
    /// Addresses or CIDR blocks ("10.0.0.0/8, 127.0.0.1") whose X-Forwarded-* headers are
    /// believed; from anyone else they are replaced.
    pub trusted_proxies: String,
    pub proxy: Vec<RawProxy>,
    pub auth: RawAuth,
    pub tls: RawTls,
    pub log: RawLog,
    pub rules: RawRules,
    pub alerting: RawAlerting,
    pub notify: RawNotify,
    pub dashboards: RawDashboards,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawListen {
    pub http: String,
    pub otlp_grpc: String,
    pub otlp_http: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawIngest {
    /// Largest gRPC message accepted (decoded), a size like "4MiB" or a byte count.
    pub max_grpc_message_size: SizeOrString,
    /// Largest OTLP/HTTP body accepted after decompression.
    pub max_http_body_size: SizeOrString,
    /// Accepted-but-not-yet-stored data past which OTLP answers 429/UNAVAILABLE.
    pub memory_budget: SizeOrString,
    /// Attributes kept per span, log record, event or link; the rest are dropped and counted.
    pub max_attributes: u64,
    /// Longest string or bytes attribute value kept; longer values are truncated.
    pub max_attribute_value_length: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawTraces {
    /// Spans and logs older than this are deleted ("7d", "12h").
    pub retention: String,
    /// Oldest data goes first once the database passes this size.
    pub max_size: SizeOrString,
    /// How often the search index is committed (at most this far behind the store).
    pub index_commit_interval: String,
    /// How often retention looks for data to delete.
    pub retention_check_interval: String,
    /// Attribute values longer than this are stored but not indexed for search.
    pub max_indexed_value_length: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawMetrics {
    /// Samples older than this (behind the newest sample) are deleted with their block.
    pub retention: String,
    /// Past this size (blocks + WAL) the oldest blocks are deleted; 0 means no size limit.
    pub max_size: SizeOrString,
    /// Time range of a block cut from the head.
    pub block_duration: String,
    /// How far behind the newest sample a sample may arrive and still be stored.
    pub out_of_order_window: String,
    /// Active series past which new series are refused.
    pub max_series: u64,
    /// WAL segment size before a new segment is started.
    pub wal_segment_size: SizeOrString,
    /// How often compaction and retention run.
    pub maintenance_interval: String,
    /// Add `otel_scope_name` / `otel_scope_version` labels to OTLP metrics.
    pub scope_labels: bool,
    /// Delta streams converted to cumulative at most at once.
    pub delta_max_streams: u64,
    /// A delta stream without points for this long is forgotten (its next point starts over).
    pub delta_stream_ttl: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawQuery {
    /// How far back an instant selector looks for the newest sample (Prometheus's
    /// `--query.lookback-delta`).
    pub lookback_delta: String,
    /// Longest a PromQL query may run; a request's `timeout` parameter can only shorten it.
    pub timeout: String,
    /// Samples a query may load and produce before it is stopped.
    pub max_samples: u64,
    /// Queries evaluated at once; more wait for a slot.
    pub max_concurrency: u64,
}

impl Default for RawQuery {
    fn default() -> Self {
        Self {
            lookback_delta: "5m".into(),
            timeout: "30s".into(),
            max_samples: 50_000_000,
            max_concurrency: 20,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawHost {
    /// Sample this machine under node-exporter's names (`job="node"`).
    pub enabled: bool,
    pub interval: String,
    /// Where the host's /proc, /sys and / are (in a container: the read-only mounts).
    pub proc_path: String,
    pub sys_path: String,
    pub rootfs_path: String,
}

impl Default for RawHost {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: "5s".into(),
            proc_path: "/proc".into(),
            sys_path: "/sys".into(),
            rootfs_path: "/".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawGpu {
    /// Sample NVIDIA GPUs through NVML under dcgm-exporter's names (`job="dcgm"`).
    pub enabled: bool,
    pub interval: String,
    /// The NVML library to load; empty means the driver's `libnvidia-ml.so.1`.
    pub library: String,
}

impl Default for RawGpu {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: "5s".into(),
            library: String::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawSpanMetrics {
    /// Derive Tempo's span metrics and service-graph metrics from incoming spans.
    pub enabled: bool,
    /// How often the derived counters are written to the metrics store.
    pub interval: String,
    /// Label sets at most (span metrics and service-graph edges together).
    pub max_series: u64,
    pub latency_buckets: Vec<f64>,
    pub service_graph_buckets: Vec<f64>,
    pub service_graph_wait: String,
    pub service_graph_max_items: u64,
}

impl Default for RawSpanMetrics {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: "15s".into(),
            max_series: 10_000,
            latency_buckets: default_latency_buckets(),
            service_graph_buckets: default_graph_buckets(),
            service_graph_wait: "10s".into(),
            service_graph_max_items: 100_000,
        }
    }
}

/// `[logs]`: log files collected from disk (`[[logs.files]]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawLogs {
    /// How often files are checked for new lines and new files when all are caught up.
    pub poll_interval: String,
    /// Bytes read from one file per round, so one busy file cannot starve the others.
    pub read_budget: SizeOrString,
    /// Longer lines are cut to this size (the rest of the line is dropped and counted).
    pub max_line_size: SizeOrString,
    pub files: Vec<RawLogFiles>,
}

impl Default for RawLogs {
    fn default() -> Self {
        Self {
            poll_interval: "250ms".into(),
            read_budget: SizeOrString::Text("256KiB".into()),
            max_line_size: SizeOrString::Text("256KiB".into()),
            files: Vec::new(),
        }
    }
}

/// One `[[logs.files]]` source.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RawLogFiles {
    /// Glob patterns of files to read (`/var/log/pods/*/*/*.log`).
    pub include: Vec<String>,
    /// Glob patterns of files to leave alone (`*.gz`).
    pub exclude: Vec<String>,
    /// `raw` (default), `json`, `logfmt`, `cri` or `docker`.
    pub format: String,
    /// Static labels added to every line's stream.
    pub labels: std::collections::BTreeMap<String, String>,
    pub multiline: Option<RawMultiline>,
}

/// Joining lines into one record: a line matching `start` begins a record, the others are
/// appended to it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawMultiline {
    pub start: String,
    /// A record with no new line for this long is stored.
    pub flush_timeout: String,
    /// Lines in one record at most.
    pub max_lines: u64,
}

impl Default for RawMultiline {
    fn default() -> Self {
        Self {
            start: String::new(),
            flush_timeout: "3s".into(),
            max_lines: 500,
        }
    }
}

/// `[forward]`: send what arrives on to an OTLP upstream (Grafana Cloud, Tempo, Mimir, another
/// Sightline) through a queue on disk.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawForward {
    /// Base URL: `http(s)://host[:port][/path]`. OTLP/HTTP appends `/v1/traces` etc.; gRPC uses
    /// the scheme, host and port. Empty: nothing is forwarded.
    pub endpoint: String,
    /// "http/protobuf" (default) or "grpc".
    pub protocol: String,
    /// Full URLs for one signal, used as they are (OTLP/HTTP only).
    pub traces_endpoint: String,
    pub metrics_endpoint: String,
    pub logs_endpoint: String,
    /// Per signal: "local", "forward" or "both". Empty: "both" when an endpoint is set, else
    /// "local".
    pub traces: String,
    pub metrics: String,
    pub logs: String,
    /// Extra request headers: a table, or "k1=v1,k2=v2" (the OTEL_EXPORTER_OTLP_HEADERS form).
    pub headers: HeadersOrString,
    pub username: String,
    pub password: String,
    pub bearer_token: String,
    /// "gzip" (default) or "none".
    pub compression: String,
    /// PEM file of CA certificates trusted besides the system's roots.
    pub ca_file: String,
    /// One request's time limit.
    pub timeout: String,
    /// Bytes on disk the queue may hold (all signals together); past it the oldest go.
    pub queue_max_size: SizeOrString,
    /// Largest request sent upstream (uncompressed protobuf).
    pub max_batch_size: SizeOrString,
    /// How long a small batch waits for more before it is sent.
    pub batch_timeout: String,
    pub retry_initial_interval: String,
    pub retry_max_interval: String,
}

/// Headers as a TOML table or as one "k=v,k=v" string (what an environment variable can hold).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum HeadersOrString {
    Text(String),
    Table(std::collections::BTreeMap<String, String>),
}

impl Default for RawForward {
    fn default() -> Self {
        Self {
            endpoint: String::new(),
            protocol: "http/protobuf".into(),
            traces_endpoint: String::new(),
            metrics_endpoint: String::new(),
            logs_endpoint: String::new(),
            traces: String::new(),
            metrics: String::new(),
            logs: String::new(),
            headers: HeadersOrString::Text(String::new()),
            username: String::new(),
            password: String::new(),
            bearer_token: String::new(),
            compression: "gzip".into(),
            ca_file: String::new(),
            timeout: "10s".into(),
            queue_max_size: SizeOrString::Text("1GiB".into()),
            max_batch_size: SizeOrString::Text("2MiB".into()),
            batch_timeout: "200ms".into(),
            retry_initial_interval: "1s".into(),
            retry_max_interval: "30s".into(),
        }
    }
}

/// `[auth]`: off by default.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawAuth {
    pub enabled: bool,
    /// "name:hash" each; argon2 PHC strings (`sightline hash-password`) or bcrypt hashes.
    pub users: Vec<String>,
    /// Bearer tokens for API clients (Grafana data sources, promtool).
    pub tokens: Vec<String>,
    /// Keys OTLP senders present (Bearer or x-api-key); they cannot read.
    pub ingest_keys: Vec<String>,
    pub require_ingest_key: bool,
    pub protect_metrics: bool,
    pub session_ttl: String,
    /// Header proxied routes receive with the signed-in user's name, e.g. "X-WEBAUTH-USER".
    pub trusted_header: String,
}

impl Default for RawAuth {
    fn default() -> Self {
        Self {
            enabled: false,
            users: Vec::new(),
            tokens: Vec::new(),
            ingest_keys: Vec::new(),
            require_ingest_key: true,
            protect_metrics: true,
            session_ttl: "12h".into(),
            trusted_header: String::new(),
        }
    }
}

/// `[tls]`: one certificate for the listeners, read again on SIGHUP.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawTls {
    /// PEM: the server certificate first, then its intermediates.
    pub cert_file: String,
    /// PEM: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
    /// Which listeners serve TLS: "all", or some of "http, otlp_grpc, otlp_http".
    pub listeners: String,
}

impl Default for RawTls {
    fn default() -> Self {
        Self {
            cert_file: String::new(),
            key_file: String::new(),
            listeners: "all".into(),
        }
    }
}

/// One `[[proxy]]` route: a sub-path of the main listener served by another HTTP service.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawProxy {
    /// "/prometheus": this path and everything below it (under `base_path`).
    pub path: String,
    /// "http://127.0.0.1:9090" or "https://...", optionally with a path prefix on the upstream.
    pub upstream: String,
    /// Shown in the UI's navigation; default: the path.
    #[serde(default)]
    pub name: String,
    /// Remove `path` before forwarding (for apps that do not know they live under a sub-path).
    #[serde(default)]
    pub strip_prefix: bool,
    /// Send the client's Host header instead of the upstream's.
    #[serde(default)]
    pub preserve_host: bool,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: String,
    /// Until the upstream's response headers arrive.
    #[serde(default = "default_proxy_timeout")]
    pub timeout: String,
    /// For an https upstream: PEM file of CA certificates trusted besides the system's roots.
    #[serde(default)]
    pub ca_file: String,
}

fn default_connect_timeout() -> String {
    "5s".into()
}
fn default_proxy_timeout() -> String {
    "60s".into()
}

/// `scrape`: either the short form's `[[scrape]]` jobs, or a `[scrape]` table naming a
/// `prometheus.yml` (`prometheus_config`) with more short-form jobs under `[[scrape.jobs]]`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct RawScrapeSection {
    pub prometheus_config: String,
    pub jobs: Vec<RawScrape>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScrapeTable {
    #[serde(default)]
    prometheus_config: String,
    #[serde(default)]
    jobs: Vec<RawScrape>,
}

impl<'de> Deserialize<'de> for RawScrapeSection {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let v = toml::Value::deserialize(d)?;
        match v {
            toml::Value::Array(_) => Ok(RawScrapeSection {
                prometheus_config: String::new(),
                jobs: v.try_into().map_err(D::Error::custom)?,
            }),
            toml::Value::Table(_) => {
                let t: RawScrapeTable = v.try_into().map_err(D::Error::custom)?;
                Ok(RawScrapeSection {
                    prometheus_config: t.prometheus_config,
                    jobs: t.jobs,
                })
            }
            _ => Err(D::Error::custom(
                "scrape: expected [[scrape]] jobs or a [scrape] table",
            )),
        }
    }
}

/// One `[[scrape]]` job: Prometheus exposition endpoints to pull from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawScrape {
    pub job: String,
    pub targets: Vec<String>,
    #[serde(default = "default_scrape_interval")]
    pub interval: String,
    #[serde(default = "default_scrape_timeout")]
    pub timeout: String,
    #[serde(default = "default_scrape_path")]
    pub path: String,
    #[serde(default = "default_scrape_scheme")]
    pub scheme: String,
    #[serde(default)]
    pub honor_labels: bool,
}

fn default_scrape_interval() -> String {
    "15s".into()
}
fn default_scrape_timeout() -> String {
    "10s".into()
}
fn default_scrape_path() -> String {
    "/metrics".into()
}
fn default_scrape_scheme() -> String {
    "http".into()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawLog {
    /// tracing filter, e.g. "info" or "sightline=debug,info".
    pub level: String,
    /// "text" or "json".
    pub format: String,
}

/// A size given either as a byte count or as a string with a unit ("20MiB", "10GB").
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum SizeOrString {
    Bytes(u64),
    Text(String),
}

impl Default for RawConfig {
    fn default() -> Self {
        Self {
            data_dir: "./sightline-data".into(),
            base_path: String::new(),
            listen: RawListen::default(),
            ingest: RawIngest::default(),
            traces: RawTraces::default(),
            metrics: RawMetrics::default(),
            query: RawQuery::default(),
            host: RawHost::default(),
            gpu: RawGpu::default(),
            spanmetrics: RawSpanMetrics::default(),
            logs: RawLogs::default(),
            scrape: RawScrapeSection::default(),
            forward: RawForward::default(),
            trusted_proxies: String::new(),
            proxy: Vec::new(),
            auth: RawAuth::default(),
            tls: RawTls::default(),
            log: RawLog::default(),
            rules: RawRules::default(),
            alerting: RawAlerting::default(),
            notify: RawNotify::default(),
            dashboards: RawDashboards::default(),
        }
    }
}

impl Default for RawListen {
    fn default() -> Self {
        Self {
            http: "0.0.0.0:8080".into(),
            otlp_grpc: "0.0.0.0:4317".into(),
            otlp_http: "0.0.0.0:4318".into(),
        }
    }
}

impl Default for RawIngest {
    fn default() -> Self {
        Self {
            max_grpc_message_size: SizeOrString::Text("4MiB".into()),
            max_http_body_size: SizeOrString::Text("20MiB".into()),
            memory_budget: SizeOrString::Text("256MiB".into()),
            max_attributes: 128,
            max_attribute_value_length: 16384,
        }
    }
}

impl Default for RawTraces {
    fn default() -> Self {
        Self {
            retention: "7d".into(),
            max_size: SizeOrString::Text("10GiB".into()),
            index_commit_interval: "1s".into(),
            retention_check_interval: "30s".into(),
            max_indexed_value_length: 256,
        }
    }
}

impl Default for RawMetrics {
    fn default() -> Self {
        Self {
            retention: "15d".into(),
            max_size: SizeOrString::Text("0".into()),
            block_duration: "2h".into(),
            out_of_order_window: "1h".into(),
            max_series: 1_000_000,
            wal_segment_size: SizeOrString::Text("64MiB".into()),
            maintenance_interval: "30s".into(),
            scope_labels: true,
            delta_max_streams: 100_000,
            delta_stream_ttl: "1h".into(),
        }
    }
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: "text".into(),
        }
    }
}

/// Tempo's defaults: 2 ms doubling to 16.384 s for span latency, 0.1 s doubling to 12.8 s for
/// the service graph.
pub fn default_latency_buckets() -> Vec<f64> {
    (0..14).map(|i| 0.002 * f64::from(1u32 << i)).collect()
}

pub fn default_graph_buckets() -> Vec<f64> {
    (0..8).map(|i| 0.1 * f64::from(1u32 << i)).collect()
}

/// `[rules]`: Prometheus rule files (recording and alerting rules).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawRules {
    /// Rule files or globs, relative to the config file ("rules/*.yml").
    pub files: Vec<String>,
    /// Default interval of a group that sets none (Prometheus's `evaluation_interval`).
    pub evaluation_interval: String,
    /// Evaluate the shipped GPU, host and Sightline rules.
    pub builtin: bool,
    /// Groups not evaluated, by name (built-in or from files), e.g. "sightline-gpu".
    pub disabled_groups: Vec<String>,
    /// Prometheus's `--rules.alert.for-outage-tolerance`.
    pub for_outage_tolerance: String,
    /// Prometheus's `--rules.alert.for-grace-period`.
    pub for_grace_period: String,
    /// Prometheus's `--rules.alert.resend-delay`.
    pub resend_delay: String,
    /// Longest a rule's query may run.
    pub query_timeout: String,
}

impl Default for RawRules {
    fn default() -> Self {
        Self {
            files: Vec::new(),
            evaluation_interval: "1m".into(),
            builtin: true,
            disabled_groups: Vec::new(),
            for_outage_tolerance: "1h".into(),
            for_grace_period: "10m".into(),
            resend_delay: "1m".into(),
            query_timeout: "2m".into(),
        }
    }
}

/// `[alerting]`: where alerts go, as Prometheus's `alerting:` section and `external_labels`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawAlerting {
    /// Alertmanager base URLs; `http://user:pass@host:9093/prefix` gives basic auth and a path
    /// prefix. Alerts go to `<url>/api/v2/alerts`.
    pub alertmanagers: Vec<String>,
    /// Sent as `Authorization: Bearer ...` to every Alertmanager.
    pub bearer_token: String,
    pub bearer_token_file: String,
    /// CA bundle (PEM) trusted for https Alertmanagers, beside the system's roots.
    pub ca_file: String,
    pub timeout: String,
    /// Alerts waiting to be sent, at most; the oldest are dropped past it.
    pub queue_capacity: u64,
    /// Added to every alert sent (and `$externalLabels` in templates).
    pub external_labels: std::collections::BTreeMap<String, String>,
    /// This instance's URL as users reach it (`generatorURL`, `$externalURL`); empty:
    /// `http://<hostname>:<port><base_path>`.
    pub external_url: String,
}

impl Default for RawAlerting {
    fn default() -> Self {
        Self {
            alertmanagers: Vec::new(),
            bearer_token: String::new(),
            bearer_token_file: String::new(),
            ca_file: String::new(),
            timeout: "10s".into(),
            queue_capacity: 10_000,
            external_labels: Default::default(),
            external_url: String::new(),
        }
    }
}

/// `[notify]`: the built-in Alertmanager.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RawNotify {
    /// An `alertmanager.yml` (relative to this file); set, the built-in Alertmanager runs and
    /// Sightline's own alerts go to it (and to `[alerting] alertmanagers`, if any).
    pub config_file: String,
    /// The Alertmanager's URL as users reach it (`.ExternalURL` in notifications); empty:
    /// Sightline's external URL + `/alertmanager`.
    pub external_url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RawDashboards {
    /// Folders of Grafana dashboard JSON files (relative to this file), read at start and again
    /// whenever a file in them changes, like Grafana's file provisioning.
    pub dirs: Vec<String>,
}
