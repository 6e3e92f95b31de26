//! `[forward]`: forwarding upstream over OTLP, per signal.

use std::path::PathBuf;
use std::time::Duration;

use super::check::*;
use super::{ConfigError, raw};
use crate::base::Signal;

/// What happens to one signal's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardMode {
    Local,
    Forward,
    Both,
}

impl ForwardMode {
    pub fn keeps_locally(self) -> bool {
        self != ForwardMode::Forward
    }
    pub fn forwards(self) -> bool {
        self != ForwardMode::Local
    }
    pub fn name(self) -> &'static str {
        match self {
            ForwardMode::Local => "local",
            ForwardMode::Forward => "forward",
            ForwardMode::Both => "both",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardProtocol {
    HttpProtobuf,
    Grpc,
}

#[derive(Clone, PartialEq)]
pub enum ForwardAuth {
    Basic { username: String, password: String },
    Bearer(String),
}

/// Validated `[forward]`.
#[derive(Clone)]
pub struct ForwardConfig {
    /// The base endpoint as configured (credentials are never part of it).
    pub endpoint: String,
    pub protocol: ForwardProtocol,
    /// OTLP/HTTP: the full URL per signal (traces, metrics, logs).
    pub urls: [String; 3],
    pub modes: [ForwardMode; 3],
    pub headers: Vec<(String, String)>,
    pub auth: Option<ForwardAuth>,
    pub gzip: bool,
    pub ca_file: Option<PathBuf>,
    pub timeout: Duration,
    pub queue_max_bytes: u64,
    pub max_batch_bytes: usize,
    pub batch_timeout: Duration,
    pub retry_initial: Duration,
    pub retry_max: Duration,
}

impl ForwardConfig {
    /// Nothing forwarded: every signal local.
    pub fn local_only() -> ForwardConfig {
        ForwardConfig {
            endpoint: String::new(),
            protocol: ForwardProtocol::HttpProtobuf,
            urls: Default::default(),
            modes: [ForwardMode::Local; 3],
            headers: Vec::new(),
            auth: None,
            gzip: true,
            ca_file: None,
            timeout: Duration::from_secs(10),
            queue_max_bytes: 1 << 30,
            max_batch_bytes: 2 << 20,
            batch_timeout: Duration::from_millis(200),
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(30),
        }
    }

    pub fn enabled(&self) -> bool {
        self.modes.iter().any(|m| m.forwards())
    }
}

/// Credentials and header values are never printed.
impl std::fmt::Debug for ForwardConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardConfig")
            .field("endpoint", &self.endpoint)
            .field("protocol", &self.protocol)
            .field("modes", &self.modes)
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field(
                "auth",
                &self.auth.as_ref().map(|a| match a {
                    ForwardAuth::Basic { .. } => "basic",
                    ForwardAuth::Bearer(_) => "bearer",
                }),
            )
            .field("gzip", &self.gzip)
            .field("queue_max_bytes", &self.queue_max_bytes)
            .finish_non_exhaustive()
    }
}

pub(super) fn forward_config(r: &raw::RawForward) -> Result<ForwardConfig, ConfigError> {
    let protocol = match r.protocol.trim() {
        "http/protobuf" | "http" | "" => ForwardProtocol::HttpProtobuf,
        "grpc" => ForwardProtocol::Grpc,
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
    let mut modes = [ForwardMode::Local; 3];
    for s in 0..3 {
        let key = format!("forward.{}_endpoint", Signal::ALL[s].name());
        if !specific[s].trim().is_empty() {
            if protocol == ForwardProtocol::Grpc {
                return Err(invalid(
                    &key,
                    specific[s],
                    "per-signal endpoints are for http/protobuf; gRPC uses forward.endpoint",
                ));
            }
            urls[s] = check_url(&key, specific[s])?;
        } else if !endpoint.is_empty() && protocol == ForwardProtocol::HttpProtobuf {
            urls[s] = format!(
                "{}/v1/{}",
                endpoint.trim_end_matches('/'),
                Signal::ALL[s].name()
            );
        }
        let mode_key = format!("forward.{}", Signal::ALL[s].name());
        let has_target = match protocol {
            ForwardProtocol::HttpProtobuf => !urls[s].is_empty(),
            ForwardProtocol::Grpc => !endpoint.is_empty(),
        };
        let given = [&r.traces, &r.metrics, &r.logs][s].trim();
        modes[s] = match given {
            "" if has_target => ForwardMode::Both,
            "" | "local" => ForwardMode::Local,
            "forward" => ForwardMode::Forward,
            "both" => ForwardMode::Both,
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
        Some(ForwardAuth::Bearer(r.bearer_token.clone()))
    } else if !r.username.is_empty() || !r.password.is_empty() {
        Some(ForwardAuth::Basic {
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
