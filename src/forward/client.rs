//! The upstream: one OTLP export per batch over OTLP/HTTP protobuf (reqwest) or gRPC (tonic),
//! classified the way the OTLP specification and the Collector's exporterhelper do: delivered
//! (perhaps with a partial success whose rejected items are not retried), retryable (HTTP 429,
//! 502, 503, 504, connection failures and timeouts; gRPC UNAVAILABLE, CANCELLED,
//! DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, DATA_LOSS, and RESOURCE_EXHAUSTED only with
//! `RetryInfo`), with the upstream's `Retry-After` or `RetryInfo` delay when it gives one; or
//! failed for good (every other answer, 400 and 413 included). Response bodies are read up to
//! [`MAX_RESPONSE_BYTES`] and no further.

use std::io::Write;
use std::time::{Duration, SystemTime};

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};
use tonic::transport::Channel;
use tonic_types::StatusExt;

use super::{Auth, ForwardConfig, Protocol};

/// The most of an upstream's answer that is read (the rest is never read).
pub const MAX_RESPONSE_BYTES: usize = 4 << 20;

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Accepted; `rejected` items were refused by a partial success (not retried).
    Delivered { rejected: u64, message: String },
    /// Try again, after `after` if the upstream said how long.
    Retry {
        why: String,
        after: Option<Duration>,
    },
    /// The upstream refused the data for good.
    Fail { why: String },
}

pub struct Upstream {
    inner: Inner,
    /// Credentials and header values, cut out of any text an upstream sends back (a hostile or
    /// careless upstream may echo the request's headers into its error message, which is logged).
    secrets: Vec<String>,
}

enum Inner {
    Http {
        client: reqwest::Client,
        urls: [String; 3],
        headers: reqwest::header::HeaderMap,
        gzip: bool,
    },
    Grpc {
        channel: Channel,
        metadata: Vec<(AsciiMetadataKey, AsciiMetadataValue)>,
        gzip: bool,
    },
}

fn auth_value(auth: &Auth) -> String {
    use base64::Engine;
    match auth {
        Auth::Basic { username, password } => format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
        ),
        Auth::Bearer(token) => format!("Bearer {token}"),
    }
}

impl Upstream {
    pub fn new(cfg: &ForwardConfig) -> anyhow::Result<Upstream> {
        use anyhow::Context;
        let ca = match &cfg.ca_file {
            Some(p) => Some(
                std::fs::read(p)
                    .with_context(|| format!("forward.ca_file: cannot read {}", p.display()))?,
            ),
            None => None,
        };
        let inner = match cfg.protocol {
            Protocol::HttpProtobuf => {
                let mut headers = reqwest::header::HeaderMap::new();
                for (k, v) in &cfg.headers {
                    let mut value = reqwest::header::HeaderValue::from_str(v)
                        .context("forward.headers: invalid header value")?;
                    value.set_sensitive(true);
                    headers.insert(
                        reqwest::header::HeaderName::from_bytes(k.as_bytes())
                            .context("forward.headers: invalid header name")?,
                        value,
                    );
                }
                if let Some(a) = &cfg.auth {
                    let mut value = reqwest::header::HeaderValue::from_str(&auth_value(a))
                        .context("forward credentials: not valid in a header")?;
                    value.set_sensitive(true);
                    headers.insert(reqwest::header::AUTHORIZATION, value);
                }
                let mut b = reqwest::Client::builder()
                    .timeout(cfg.timeout)
                    .connect_timeout(cfg.timeout)
                    .redirect(reqwest::redirect::Policy::none())
                    .user_agent(concat!("sightline/", env!("CARGO_PKG_VERSION")));
                if let Some(pem) = &ca {
                    for cert in reqwest::Certificate::from_pem_bundle(pem)
                        .context("forward.ca_file: not PEM certificates")?
                    {
                        b = b.add_root_certificate(cert);
                    }
                }
                Inner::Http {
                    client: b
                        .build()
                        .context("cannot build the forwarding HTTP client")?,
                    urls: cfg.urls.clone(),
                    headers,
                    gzip: cfg.gzip,
                }
            }
            Protocol::Grpc => {
                let mut ep = tonic::transport::Endpoint::from_shared(cfg.endpoint.clone())
                    .context("forward.endpoint: not a valid URI")?
                    .timeout(cfg.timeout)
                    .connect_timeout(cfg.timeout)
                    .user_agent(concat!("sightline/", env!("CARGO_PKG_VERSION")))
                    .context("user agent")?;
                if cfg.endpoint.starts_with("https://") {
                    let mut tls = tonic::transport::ClientTlsConfig::new().with_native_roots();
                    if let Some(pem) = &ca {
                        tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(pem));
                    }
                    ep = ep.tls_config(tls).context("forward: TLS configuration")?;
                }
                let mut metadata = Vec::new();
                for (k, v) in &cfg.headers {
                    metadata.push((
                        AsciiMetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())
                            .context("forward.headers: invalid gRPC metadata key")?,
                        AsciiMetadataValue::try_from(v.as_str())
                            .context("forward.headers: invalid gRPC metadata value")?,
                    ));
                }
                if let Some(a) = &cfg.auth {
                    metadata.push((
                        AsciiMetadataKey::from_static("authorization"),
                        AsciiMetadataValue::try_from(auth_value(a))
                            .context("forward credentials: not valid in metadata")?,
                    ));
                }
                Inner::Grpc {
                    channel: ep.connect_lazy(),
                    metadata,
                    gzip: cfg.gzip,
                }
            }
        };
        let mut secrets: Vec<String> = cfg.headers.iter().map(|(_, v)| v.clone()).collect();
        if let Some(a) = &cfg.auth {
            let full = auth_value(a);
            if let Some((_, b64)) = full.split_once(' ') {
                secrets.push(b64.to_string());
            }
            match a {
                Auth::Basic { username, password } => {
                    secrets.push(username.clone());
                    secrets.push(password.clone());
                }
                Auth::Bearer(t) => secrets.push(t.clone()),
            }
        }
        // Longest first, so a secret containing another is cut whole; very short values would
        // garble messages more than they protect.
        secrets.retain(|s| s.len() >= 3);
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Ok(Upstream { inner, secrets })
    }

    fn redact(&self, mut text: String) -> String {
        for s in &self.secrets {
            if text.contains(s.as_str()) {
                text = text.replace(s.as_str(), "[redacted]");
            }
        }
        text
    }

    /// Sends one batch (an encoded export request of `signal`'s type).
    pub async fn send(&self, signal: usize, body: Vec<u8>) -> Outcome {
        match self.send_raw(signal, body).await {
            Outcome::Delivered { rejected, message } => Outcome::Delivered {
                rejected,
                message: self.redact(message),
            },
            Outcome::Retry { why, after } => Outcome::Retry {
                why: self.redact(why),
                after,
            },
            Outcome::Fail { why } => Outcome::Fail {
                why: self.redact(why),
            },
        }
    }

    async fn send_raw(&self, signal: usize, body: Vec<u8>) -> Outcome {
        match &self.inner {
            Inner::Http {
                client,
                urls,
                headers,
                gzip,
            } => send_http(client, &urls[signal], headers, *gzip, signal, body).await,
            Inner::Grpc {
                channel,
                metadata,
                gzip,
            } => send_grpc(channel.clone(), metadata, *gzip, signal, body).await,
        }
    }
}

async fn send_http(
    client: &reqwest::Client,
    url: &str,
    headers: &reqwest::header::HeaderMap,
    gzip: bool,
    signal: usize,
    body: Vec<u8>,
) -> Outcome {
    let body = if gzip {
        match tokio::task::spawn_blocking(move || {
            let mut e = flate2::write::GzEncoder::new(
                Vec::with_capacity(body.len() / 4),
                flate2::Compression::fast(),
            );
            e.write_all(&body).and_then(|_| e.finish())
        })
        .await
        {
            Ok(Ok(b)) => b,
            _ => {
                return Outcome::Fail {
                    why: "cannot compress the batch".into(),
                };
            }
        }
    } else {
        body
    };
    let mut req = client
        .post(url)
        .headers(headers.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf");
    if gzip {
        req = req.header(reqwest::header::CONTENT_ENCODING, "gzip");
    }
    let mut resp = match req.body(body).send().await {
        Ok(r) => r,
        Err(e) => {
            return Outcome::Retry {
                why: describe_reqwest(e),
                after: None,
            };
        }
    };
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let json = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim_start().starts_with("application/json"));
    // Read at most MAX_RESPONSE_BYTES; a larger answer is cut there (and its connection closed).
    let mut bytes = Vec::new();
    let mut cut = false;
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                let room = MAX_RESPONSE_BYTES - bytes.len();
                if c.len() > room {
                    bytes.extend_from_slice(&c[..room]);
                    cut = true;
                    break;
                }
                bytes.extend_from_slice(&c);
            }
            Ok(None) => break,
            Err(e) => {
                if status.is_success() {
                    // The upstream said yes; only its answer's body was lost.
                    break;
                }
                return Outcome::Retry {
                    why: format!(
                        "HTTP {status}, then the body failed: {}",
                        describe_reqwest(e)
                    ),
                    after: retry_after,
                };
            }
        }
    }
    drop(resp);
    if status.is_success() {
        if cut {
            return Outcome::Delivered {
                rejected: 0,
                message: format!(
                    "answer larger than {MAX_RESPONSE_BYTES} bytes was not read past that"
                ),
            };
        }
        let (rejected, message) = partial_success(signal, &bytes, json);
        return Outcome::Delivered { rejected, message };
    }
    let why = format!(
        "HTTP {}: {}",
        status.as_u16(),
        error_text(&bytes, json, cut)
    );
    match status.as_u16() {
        429 | 502 | 503 | 504 => Outcome::Retry {
            why,
            after: retry_after,
        },
        _ => Outcome::Fail { why },
    }
}

/// The `message` of a `google.rpc.Status` body, or the start of a text body.
pub fn error_text(bytes: &[u8], json: bool, cut: bool) -> String {
    #[derive(Clone, PartialEq, prost::Message)]
    struct RpcStatus {
        #[prost(int32, tag = "1")]
        code: i32,
        #[prost(string, tag = "2")]
        message: String,
    }
    // Text bodies often decode as protobuf (of unknown fields): only a message counts.
    let text = if !json
        && let Ok(s) = RpcStatus::decode(bytes)
        && !s.message.is_empty()
    {
        s.message
    } else if json
        && let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes)
        && let Some(m) = v.get("message").and_then(|m| m.as_str())
    {
        m.to_string()
    } else {
        String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into_owned()
    };
    let mut text: String = text.chars().filter(|c| !c.is_control()).take(300).collect();
    if cut {
        text.push_str(" (answer cut at 4 MiB)");
    }
    if text.is_empty() {
        "no message".into()
    } else {
        text
    }
}

/// Rejected items and message of an export response (protobuf or JSON); zero when it has none
/// or cannot be read.
pub fn partial_success(signal: usize, bytes: &[u8], json: bool) -> (u64, String) {
    fn get<M: Message + Default + serde::de::DeserializeOwned>(
        bytes: &[u8],
        json: bool,
    ) -> Option<M> {
        if json {
            serde_json::from_slice(bytes).ok()
        } else {
            M::decode(bytes).ok()
        }
    }
    let (n, m) = match signal {
        0 => get::<ExportTraceServiceResponse>(bytes, json)
            .and_then(|r| r.partial_success)
            .map(|p| (p.rejected_spans, p.error_message)),
        1 => get::<ExportMetricsServiceResponse>(bytes, json)
            .and_then(|r| r.partial_success)
            .map(|p| (p.rejected_data_points, p.error_message)),
        _ => get::<ExportLogsServiceResponse>(bytes, json)
            .and_then(|r| r.partial_success)
            .map(|p| (p.rejected_log_records, p.error_message)),
    }
    .unwrap_or((0, String::new()));
    (n.max(0) as u64, m.chars().take(300).collect())
}

fn describe_reqwest(e: reqwest::Error) -> String {
    // Without the URL: errors go to logs and the status page.
    let e = e.without_url();
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut s = kind.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s.chars().take(300).collect()
}

/// `Retry-After`: delta-seconds or an HTTP date (RFC 9110 10.2.3).
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

async fn send_grpc(
    channel: Channel,
    metadata: &[(AsciiMetadataKey, AsciiMetadataValue)],
    gzip: bool,
    signal: usize,
    body: Vec<u8>,
) -> Outcome {
    fn request<T>(
        msg: T,
        metadata: &[(AsciiMetadataKey, AsciiMetadataValue)],
    ) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        for (k, v) in metadata {
            r.metadata_mut().insert(k.clone(), v.clone());
        }
        r
    }
    let bad = |e: prost::DecodeError| Outcome::Fail {
        why: format!("queued batch does not decode: {e}"),
    };
    let result: Result<(i64, String), tonic::Status> = match signal {
        0 => {
            let msg = match ExportTraceServiceRequest::decode(body.as_slice()) {
                Ok(m) => m,
                Err(e) => return bad(e),
            };
            let mut c =
                TraceServiceClient::new(channel).max_decoding_message_size(MAX_RESPONSE_BYTES);
            if gzip {
                c = c.send_compressed(CompressionEncoding::Gzip);
            }
            c = c.accept_compressed(CompressionEncoding::Gzip);
            c.export(request(msg, metadata)).await.map(|r| {
                r.into_inner()
                    .partial_success
                    .map(|p| (p.rejected_spans, p.error_message))
                    .unwrap_or_default()
            })
        }
        1 => {
            let msg = match ExportMetricsServiceRequest::decode(body.as_slice()) {
                Ok(m) => m,
                Err(e) => return bad(e),
            };
            let mut c =
                MetricsServiceClient::new(channel).max_decoding_message_size(MAX_RESPONSE_BYTES);
            if gzip {
                c = c.send_compressed(CompressionEncoding::Gzip);
            }
            c = c.accept_compressed(CompressionEncoding::Gzip);
            c.export(request(msg, metadata)).await.map(|r| {
                r.into_inner()
                    .partial_success
                    .map(|p| (p.rejected_data_points, p.error_message))
                    .unwrap_or_default()
            })
        }
        _ => {
            let msg = match ExportLogsServiceRequest::decode(body.as_slice()) {
                Ok(m) => m,
                Err(e) => return bad(e),
            };
            let mut c =
                LogsServiceClient::new(channel).max_decoding_message_size(MAX_RESPONSE_BYTES);
            if gzip {
                c = c.send_compressed(CompressionEncoding::Gzip);
            }
            c = c.accept_compressed(CompressionEncoding::Gzip);
            c.export(request(msg, metadata)).await.map(|r| {
                r.into_inner()
                    .partial_success
                    .map(|p| (p.rejected_log_records, p.error_message))
                    .unwrap_or_default()
            })
        }
    };
    match result {
        Ok((rejected, message)) => Outcome::Delivered {
            rejected: rejected.max(0) as u64,
            message: message.chars().take(300).collect(),
        },
        Err(status) => classify_grpc(&status),
    }
}

/// The OTLP specification's retryable gRPC codes; RESOURCE_EXHAUSTED only when the server sent
/// `RetryInfo` (it then expects a retry); the `RetryInfo` delay is honoured whenever it is given.
pub fn classify_grpc(status: &tonic::Status) -> Outcome {
    use tonic::Code;
    let after = status.get_details_retry_info().and_then(|r| r.retry_delay);
    let msg: String = status.message().chars().take(300).collect();
    let why = format!("gRPC {:?}: {msg}", status.code());
    let retry = match status.code() {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => true,
        Code::ResourceExhausted => after.is_some(),
        _ => false,
    };
    if retry {
        Outcome::Retry { why, after }
    } else {
        Outcome::Fail { why }
    }
}
