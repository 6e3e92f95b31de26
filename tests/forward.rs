//! Forwarding upstream (issue 9): a second Sightline as the upstream, compared item by item with
//! what the first received; fault-injecting upstreams (OTLP/HTTP on a raw socket, gRPC on tonic)
//! that answer 503 with Retry-After, 429, 502/504, 400, 413, 500, partial success, hang, close
//! the connection or send a huge body, each checked for exactly the retry behaviour the OTLP
//! specification gives.

mod common;

use common::sdk::{self, Otlp};

use std::collections::VecDeque;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime};

use common::{Server, build, export, get_json, post_proto};
use opentelemetry::KeyValue;
use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::{
    Span as _, SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _,
};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_sdk::Resource;
use parking_lot::Mutex;
use prost::Message;
use serde_json::Value;
use sightline::config::{Config, Overrides};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `[forward]` as the real loader builds it from `SIGHTLINE_FORWARD_*` variables, with quick
/// retries for tests.
fn forward(extra: &[(&str, &str)]) -> sightline::forward::ForwardConfig {
    let mut env: Vec<(String, String)> = [
        ("SIGHTLINE_FORWARD_RETRY_INITIAL_INTERVAL", "50ms"),
        ("SIGHTLINE_FORWARD_RETRY_MAX_INTERVAL", "200ms"),
        ("SIGHTLINE_FORWARD_BATCH_TIMEOUT", "0"),
        ("SIGHTLINE_FORWARD_TIMEOUT", "2s"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let (cfg, warnings) = sightline::config::load(None, env, &Overrides::default()).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    cfg.forward
}

async fn start_forwarding(f: sightline::forward::ForwardConfig) -> Server {
    Server::start_in(tempfile::tempdir().unwrap(), move |c: &mut Config| {
        c.forward = f;
    })
    .await
}

/// One value of Sightline's own `/metrics`.
async fn own_metric(server: &Server, series: &str) -> f64 {
    let text = reqwest::get(server.api("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in /metrics"))
}

async fn counters(server: &Server) -> [f64; 4] {
    let mut out = [0.0; 4];
    for (i, what) in ["sent", "failed", "retried", "dropped"].iter().enumerate() {
        out[i] = own_metric(
            server,
            &format!("sightline_forward_{what}_total{{signal=\"traces\"}}"),
        )
        .await;
    }
    out
}

// ------------------------------------------------------------------ a real upstream

fn sdk_traffic(a_http: String) -> Vec<String> {
    let res = Resource::builder()
        .with_service_name("checkout")
        .with_attribute(KeyValue::new("service.instance.id", "pod-3"))
        .with_attribute(KeyValue::new("deployment.environment", "test"))
        .build();
    // Traces.
    let exporter = sdk::span_exporter(Otlp::HttpProto, format!("{a_http}/v1/traces"));
    let tp = sdk::tracer_provider(exporter, res.clone());
    let tracer = tp.tracer("shop");
    let mut ids = Vec::new();
    for i in 0..12 {
        let mut root = tracer
            .span_builder(format!("POST /cart/{}", i % 3))
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("http.request.method", "POST"),
                KeyValue::new("order.items", i as i64),
            ])
            .start(&tracer);
        root.add_event("validated", vec![KeyValue::new("ok", true)]);
        ids.push(root.span_context().trace_id().to_string());
        let cx = opentelemetry::Context::current_with_span(root);
        for j in 0..3 {
            let mut child = tracer
                .span_builder(format!("db.query {j}"))
                .with_kind(SpanKind::Client)
                .with_attributes([KeyValue::new("db.system", "postgresql")])
                .start_with_context(&tracer, &cx);
            if i % 5 == 0 && j == 2 {
                child.set_status(Status::error("deadlock"));
            }
            child.end();
        }
        cx.span().end();
    }
    tp.force_flush().unwrap();
    tp.shutdown().unwrap();
    // Metrics.
    let exporter = sdk::metric_exporter(Otlp::HttpProto, format!("{a_http}/v1/metrics"));
    let mp = sdk::meter_provider(exporter, res.clone());
    let meter = mp.meter("shop");
    let c = meter.u64_counter("orders.placed").build();
    c.add(3, &[KeyValue::new("region", "eu")]);
    c.add(4, &[KeyValue::new("region", "us")]);
    let h = meter
        .f64_histogram("checkout.duration")
        .with_unit("s")
        .with_boundaries(vec![0.1, 0.5, 1.0])
        .build();
    for v in [0.05, 0.3, 0.7, 2.0] {
        h.record(v, &[]);
    }
    meter
        .f64_gauge("gpu.memory.used")
        .with_unit("By")
        .build()
        .record(1.5e9, &[KeyValue::new("gpu", "0")]);
    mp.force_flush().unwrap();
    mp.shutdown().unwrap();
    // Logs.
    let exporter = opentelemetry_otlp::LogExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(format!("{a_http}/v1/logs"))
        .build()
        .unwrap();
    let lp = opentelemetry_sdk::logs::SdkLoggerProvider::builder()
        .with_resource(res)
        .with_batch_exporter(exporter)
        .build();
    let logger = lp.logger("shop");
    for k in 0..7 {
        let mut r = logger.create_log_record();
        r.set_body(format!("payment {k} declined by issuer").into());
        r.set_severity_number(if k % 2 == 0 {
            Severity::Warn
        } else {
            Severity::Error
        });
        r.set_severity_text(if k % 2 == 0 { "WARN" } else { "ERROR" });
        r.set_timestamp(SystemTime::now());
        r.add_attribute("card.brand", "visa");
        logger.emit(r);
    }
    lp.force_flush().unwrap();
    lp.shutdown().unwrap();
    ids
}

/// A Jaeger trace with its spans in a fixed order.
fn normalised(mut v: Value) -> Value {
    let t = &mut v["data"][0];
    if let Some(spans) = t["spans"].as_array_mut() {
        spans.sort_by_key(|s| s["spanID"].as_str().unwrap_or("").to_string());
    }
    t.clone()
}

async fn logs(server: &Server) -> Value {
    let (_, v) = get_json(&server.api("/api/logs?service=checkout&limit=100")).await;
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sightline_holds_what_the_first_received() {
    let upstream = Server::start().await;
    // Traces and metrics kept and forwarded; logs forwarded only.
    let a = start_forwarding(forward(&[
        ("SIGHTLINE_FORWARD_ENDPOINT", &upstream.otlp_http("")),
        ("SIGHTLINE_FORWARD_LOGS", "forward"),
        ("SIGHTLINE_FORWARD_USERNAME", "instance-1"),
        ("SIGHTLINE_FORWARD_PASSWORD", "s3cret-pa55"),
    ]))
    .await;
    let a_http = a.otlp_http("");
    let ids = tokio::task::spawn_blocking(move || sdk_traffic(a_http))
        .await
        .unwrap();
    assert_eq!(ids.len(), 12);

    // Traces: each, span by span, the same on both (the upstream's copy came through the queue).
    for id in &ids {
        let url_a = a.api(&format!("/api/traces/{id}"));
        let url_b = upstream.api(&format!("/api/traces/{id}"));
        let ta = common::wait_json(&url_a, |v| common::data_len(v) == 1).await;
        let tb = common::wait_json(&url_b, |v| {
            common::data_len(v) == 1
                && v["data"][0]["spans"]
                    .as_array()
                    .is_some_and(|s| s.len() == 4)
        })
        .await;
        assert_eq!(ta["data"][0]["spans"].as_array().unwrap().len(), 4);
        assert_eq!(
            normalised(ta),
            normalised(tb),
            "trace {id} differs upstream"
        );
    }

    // Metrics: every series with every sample (same names, labels, timestamps and values).
    let sel = "{job=\"checkout\"}";
    let deadline = Instant::now() + Duration::from_secs(15);
    let (ma, mb) = loop {
        let ma = export(&a.api(""), sel).await;
        let mb = export(&upstream.api(""), sel).await;
        if (!ma.is_empty() && ma == mb) || Instant::now() > deadline {
            break (ma, mb);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        ma.len() >= 9,
        "expected counter, histogram and gauge series: {ma:?}"
    );
    assert_eq!(ma, mb, "metrics differ upstream");
    let ti_a = export(&a.api(""), "target_info{job=\"checkout\"}").await;
    let ti_b = export(&upstream.api(""), "target_info{job=\"checkout\"}").await;
    assert_eq!(ti_a.len(), 1);
    assert_eq!(ti_a, ti_b);
    let placed = mb
        .iter()
        .find(|(l, _)| l.contains(&("region".into(), "us".into())))
        .expect("orders_placed_total{region=us}");
    assert!(
        placed
            .0
            .contains(&("__name__".into(), "orders_placed_total".into()))
    );
    // Cumulative: every export (flush, then shutdown) carries the same total.
    assert!(
        !placed.1.1.is_empty() && placed.1.1.iter().all(|v| *v == 4.0),
        "{placed:?}"
    );

    // Logs: forwarded only, so the first holds none and the second all seven.
    let deadline = Instant::now() + Duration::from_secs(15);
    let lb = loop {
        let v = logs(&upstream).await;
        if common::data_len(&v) == 7 || Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(common::data_len(&lb), 7, "{lb}");
    assert_eq!(common::data_len(&logs(&a).await), 0);
    let mut bodies: Vec<&str> = lb["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["body"].as_str().unwrap())
        .collect();
    bodies.sort();
    assert_eq!(bodies[0], "payment 0 declined by issuer");

    // Counted, and no credential anywhere it could be read.
    let sent_spans = own_metric(&a, "sightline_forward_sent_total{signal=\"traces\"}").await;
    assert_eq!(sent_spans, 48.0);
    assert_eq!(
        own_metric(&a, "sightline_forward_sent_total{signal=\"logs\"}").await,
        7.0
    );
    assert_eq!(
        own_metric(&a, "sightline_forward_failed_total{signal=\"metrics\"}").await,
        0.0
    );
    let metrics_text = reqwest::get(a.api("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let status_page = reqwest::get(a.api("/ui/status"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for text in [&metrics_text, &status_page] {
        assert!(!text.contains("s3cret-pa55"));
        assert!(
            !text.contains("aW5zdGFuY2UtMTpzM2NyZXQtcGE1NQ"),
            "base64 of the credentials"
        );
    }
    assert!(status_page.contains("Forwarding upstream"));
    assert!(status_page.contains("basic auth"));
    a.stop().await;
    upstream.stop().await;
}

// ------------------------------------------------------------------ a fault-injecting HTTP upstream

#[derive(Clone, Debug)]
enum Reply {
    Ok,
    Partial(i64),
    Status(u16, Option<&'static str>),
    Hang,
    Close,
    /// A status with a 1 GiB body, written until the client stops reading.
    Huge(u16),
    /// 401 echoing the request's credentials (decoded too) in its message.
    EchoAuth,
}

struct Seen {
    at: Instant,
    spans: usize,
    headers: Vec<(String, String)>,
}

#[derive(Clone)]
struct Stub {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
    huge_written: Arc<AtomicU64>,
}

impl Stub {
    async fn start(script: Vec<Reply>) -> Stub {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stub = Stub {
            url: format!("http://{}", l.local_addr().unwrap()),
            seen: Default::default(),
            script: Arc::new(Mutex::new(script.into())),
            huge_written: Default::default(),
        };
        let s = stub.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = l.accept().await {
                tokio::spawn(s.clone().conn(sock));
            }
        });
        stub
    }

    /// The same upstream over TLS with the given server configuration.
    async fn start_tls(script: Vec<Reply>, tls: tokio_rustls::TlsAcceptor) -> Stub {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stub = Stub {
            url: format!("https://localhost:{}", l.local_addr().unwrap().port()),
            seen: Default::default(),
            script: Arc::new(Mutex::new(script.into())),
            huge_written: Default::default(),
        };
        let s = stub.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = l.accept().await {
                let (s, tls) = (s.clone(), tls.clone());
                tokio::spawn(async move {
                    if let Ok(t) = tls.accept(sock).await {
                        s.conn(t).await;
                    }
                });
            }
        });
        stub
    }

    async fn conn<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(self, mut sock: S) {
        let mut buf = Vec::new();
        loop {
            // Request head.
            let head_end = loop {
                if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break p + 4;
                }
                let mut chunk = [0u8; 8192];
                match sock.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            };
            let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
            let headers: Vec<(String, String)> = head
                .lines()
                .skip(1)
                .filter_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    Some((k.trim().to_ascii_lowercase(), v.trim().to_string()))
                })
                .collect();
            let len: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .map_or(0, |(_, v)| v.parse().unwrap());
            while buf.len() < head_end + len {
                let mut chunk = vec![0u8; 65536];
                match sock.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let mut body = buf[head_end..head_end + len].to_vec();
            buf.drain(..head_end + len);
            if headers
                .iter()
                .any(|(k, v)| k == "content-encoding" && v == "gzip")
            {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(body.as_slice())
                    .read_to_end(&mut out)
                    .unwrap();
                body = out;
            }
            let req = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
            let spans = req
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len())
                .sum();
            self.seen.lock().push(Seen {
                at: Instant::now(),
                spans,
                headers,
            });
            let reply = self.script.lock().pop_front().unwrap_or(Reply::Ok);
            let ok = |resp: ExportTraceServiceResponse| {
                let b = resp.encode_to_vec();
                let mut out = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: {}\r\n\r\n",
                    b.len()
                )
                .into_bytes();
                out.extend_from_slice(&b);
                out
            };
            let out = match reply {
                Reply::Ok => ok(ExportTraceServiceResponse::default()),
                Reply::Partial(n) => ok(ExportTraceServiceResponse {
                    partial_success: Some(ExportTracePartialSuccess {
                        rejected_spans: n,
                        error_message: "span name too long".into(),
                    }),
                }),
                Reply::Status(code, retry_after) => format!(
                    "HTTP/1.1 {code} Whatever\r\ncontent-type: text/plain\r\ncontent-length: 4\r\n{}\r\nnope",
                    retry_after.map_or(String::new(), |r| format!("retry-after: {r}\r\n"))
                )
                .into_bytes(),
                Reply::Hang => {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    return;
                }
                Reply::Close => return,
                Reply::EchoAuth => {
                    use base64::Engine;
                    let auth = self.seen.lock().last().unwrap().headers.iter()
                        .find(|(k, _)| k == "authorization").map(|(_, v)| v.clone()).unwrap_or_default();
                    let decoded = auth.strip_prefix("Basic ").and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                        .map(|b| String::from_utf8_lossy(&b).to_string()).unwrap_or_default();
                    let body = format!("bad credentials: {auth} ({decoded}) tenant={}",
                        self.seen.lock().last().unwrap().headers.iter().find(|(k, _)| k == "x-api-key").map(|(_, v)| v.clone()).unwrap_or_default());
                    format!("HTTP/1.1 401 Unauthorized\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{body}", body.len()).into_bytes()
                }
                Reply::Huge(code) => {
                    let head = format!(
                        "HTTP/1.1 {code} Big\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n",
                        1u64 << 30
                    );
                    if sock.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let chunk = vec![b'x'; 65536];
                    for _ in 0..(1 << 14) {
                        match tokio::time::timeout(Duration::from_secs(2), sock.write_all(&chunk))
                            .await
                        {
                            Ok(Ok(())) => {
                                self.huge_written.fetch_add(chunk.len() as u64, Relaxed);
                            }
                            _ => return,
                        }
                    }
                    return;
                }
            };
            if sock.write_all(&out).await.is_err() {
                return;
            }
        }
    }

    fn count(&self) -> usize {
        self.seen.lock().len()
    }

    async fn wait_for(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.count() < n {
            assert!(
                Instant::now() < deadline,
                "upstream saw {} of {n} requests",
                self.count()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn gaps(&self) -> Vec<f64> {
        let s = self.seen.lock();
        s.windows(2)
            .map(|w| (w[1].at - w[0].at).as_secs_f64())
            .collect()
    }
}

/// One export of `n` spans to `a`, acknowledged (so it is in the queue on disk).
async fn send(a: &Server, n: u64, salt: u64) {
    let t = build::trace_id(salt, 0xf0);
    let now = build::now_ns();
    let spans = (0..n)
        .map(|i| build::span(&t, i + 1, None, "work", now, 1_000_000))
        .collect();
    let code = post_proto(&a.otlp_http("/v1/traces"), &build::request("svc", spans)).await;
    assert_eq!(code, 200);
}

async fn forwarding_to(stub: &Stub, extra: &[(&str, &str)]) -> Server {
    let mut env = vec![
        ("SIGHTLINE_FORWARD_ENDPOINT", stub.url.as_str()),
        ("SIGHTLINE_FORWARD_TRACES", "forward"),
        ("SIGHTLINE_FORWARD_METRICS", "local"),
        ("SIGHTLINE_FORWARD_LOGS", "local"),
    ];
    env.extend_from_slice(extra);
    start_forwarding(forward(&env)).await
}

/// Waits until `a`'s counters settle on `want` ([sent, failed, retried, dropped]).
async fn wait_counters(a: &Server, want: [f64; 4]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = counters(a).await;
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "counters {got:?}, expected {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_503_with_retry_after_is_retried_after_that_long() {
    let stub = Stub::start(vec![Reply::Status(503, Some("1")), Reply::Ok]).await;
    let a = forwarding_to(
        &stub,
        &[
            ("SIGHTLINE_FORWARD_BEARER_TOKEN", "tok-123"),
            ("SIGHTLINE_FORWARD_HEADERS", "X-Scope-OrgID=tenant-7"),
        ],
    )
    .await;
    send(&a, 10, 1).await;
    stub.wait_for(2).await;
    wait_counters(&a, [10.0, 0.0, 10.0, 0.0]).await;
    let gap = stub.gaps()[0];
    // The backoff alone would be 25-75 ms.
    assert!(gap >= 0.95, "retried after {gap} s despite Retry-After: 1");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stub.count(), 2, "delivered once, then nothing more");
    // Each attempt carries the whole batch, compressed, with its credentials.
    let (spans, h): (Vec<usize>, _) = {
        let seen = stub.seen.lock();
        (
            seen.iter().map(|s| s.spans).collect(),
            seen[1].headers.clone(),
        )
    };
    assert_eq!(spans, [10, 10]);
    let get = |k: &str| h.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("content-encoding"), Some("gzip"));
    assert_eq!(get("content-type"), Some("application/x-protobuf"));
    assert_eq!(get("authorization"), Some("Bearer tok-123"), "{h:?}");
    assert_eq!(get("x-scope-orgid"), Some("tenant-7"));
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_429_502_504_are_retried_with_backoff() {
    let stub = Stub::start(vec![
        Reply::Status(429, None),
        Reply::Status(502, None),
        Reply::Status(504, None),
        Reply::Ok,
    ])
    .await;
    let a = forwarding_to(&stub, &[]).await;
    send(&a, 6, 2).await;
    stub.wait_for(4).await;
    wait_counters(&a, [6.0, 0.0, 18.0, 0.0]).await;
    for g in stub.gaps() {
        assert!((0.02..0.9).contains(&g), "backoff gap {g}");
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(stub.count(), 4);
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_400_413_500_and_partial_success_are_not_retried() {
    let stub = Stub::start(vec![
        Reply::Status(400, None),
        Reply::Status(413, None),
        Reply::Status(500, Some("1")),
        Reply::Partial(3),
        Reply::Ok,
    ])
    .await;
    let a = forwarding_to(&stub, &[]).await;
    // One export at a time, so each is its own request.
    for (k, want) in [
        (1usize, [0.0, 5.0]),
        (2, [0.0, 10.0]),
        (3, [0.0, 15.0]),
        (4, [2.0, 18.0]),
        (5, [7.0, 18.0]),
    ] {
        send(&a, 5, 10 + k as u64).await;
        stub.wait_for(k).await;
        wait_counters(&a, [want[0], want[1], 0.0, 0.0]).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stub.count(), 5, "nothing was retried");
    let page = reqwest::get(a.api("/ui/status"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("partial success: 3 rejected: span name too long"),
        "last error shown"
    );
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_or_closing_upstream_is_retried() {
    let stub = Stub::start(vec![Reply::Hang, Reply::Close, Reply::Ok]).await;
    let a = forwarding_to(&stub, &[("SIGHTLINE_FORWARD_TIMEOUT", "500ms")]).await;
    send(&a, 4, 3).await;
    stub.wait_for(3).await;
    wait_counters(&a, [4.0, 0.0, 8.0, 0.0]).await;
    let gaps = stub.gaps();
    assert!(
        gaps[0] >= 0.45,
        "the hung attempt timed out after {} s",
        gaps[0]
    );
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_answer_is_read_only_up_to_the_cap() {
    let stub = Stub::start(vec![Reply::Huge(200), Reply::Huge(503), Reply::Ok]).await;
    let a = forwarding_to(&stub, &[]).await;
    send(&a, 3, 4).await;
    stub.wait_for(1).await;
    wait_counters(&a, [3.0, 0.0, 0.0, 0.0]).await;
    send(&a, 2, 5).await;
    stub.wait_for(3).await;
    wait_counters(&a, [5.0, 0.0, 2.0, 0.0]).await;
    // Two 1 GiB answers: each read to 4 MiB, then the connection dropped (what the stub could
    // push into socket buffers besides is a few MiB).
    let written = stub.huge_written.load(Relaxed);
    assert!(
        written < 48 << 20,
        "{written} bytes of the huge answers were taken"
    );
    a.stop().await;
}

// ------------------------------------------------------------------ a fault-injecting gRPC upstream

type GrpcReply = Result<i64, tonic::Status>;

#[derive(Clone)]
struct GrpcStub {
    seen: Arc<Mutex<Vec<(Instant, usize, tonic::metadata::MetadataMap)>>>,
    script: Arc<Mutex<VecDeque<GrpcReply>>>,
}

#[tonic::async_trait]
impl TraceService for GrpcStub {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let md = request.metadata().clone();
        let spans = request
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.seen.lock().push((Instant::now(), spans, md));
        match self.script.lock().pop_front().unwrap_or(Ok(0)) {
            Ok(0) => Ok(tonic::Response::new(ExportTraceServiceResponse::default())),
            Ok(n) => Ok(tonic::Response::new(ExportTraceServiceResponse {
                partial_success: Some(ExportTracePartialSuccess {
                    rejected_spans: n,
                    error_message: "too old".into(),
                }),
            })),
            Err(s) => Err(s),
        }
    }
}

fn retry_info(code: tonic::Code, delay: Duration) -> tonic::Status {
    use tonic_types::{ErrorDetails, StatusExt};
    tonic::Status::with_error_details(code, "busy", ErrorDetails::with_retry_info(Some(delay)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_retry_info_and_codes() {
    let stub = GrpcStub {
        seen: Default::default(),
        script: Arc::new(Mutex::new(
            vec![
                Err(retry_info(tonic::Code::Unavailable, Duration::from_secs(1))),
                Ok(0),
                Err(tonic::Status::resource_exhausted(
                    "no RetryInfo: do not retry",
                )),
                Err(retry_info(
                    tonic::Code::ResourceExhausted,
                    Duration::from_millis(300),
                )),
                Ok(2),
                Err(tonic::Status::invalid_argument("bad")),
            ]
            .into(),
        )),
    };
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let svc = TraceServiceServer::new(stub.clone())
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(l)),
    );
    let endpoint = format!("http://{addr}");
    let a = start_forwarding(forward(&[
        ("SIGHTLINE_FORWARD_ENDPOINT", &endpoint),
        ("SIGHTLINE_FORWARD_PROTOCOL", "grpc"),
        ("SIGHTLINE_FORWARD_TRACES", "both"),
        ("SIGHTLINE_FORWARD_METRICS", "local"),
        ("SIGHTLINE_FORWARD_LOGS", "local"),
        ("SIGHTLINE_FORWARD_USERNAME", "u"),
        ("SIGHTLINE_FORWARD_PASSWORD", "p"),
        ("SIGHTLINE_FORWARD_HEADERS", "X-Scope-OrgID=tenant-9"),
    ]))
    .await;
    let wait = |n: usize| {
        let stub = stub.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            while stub.seen.lock().len() < n {
                assert!(
                    Instant::now() < deadline,
                    "gRPC upstream saw fewer than {n}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    // UNAVAILABLE with RetryInfo 1 s: retried after it.
    send(&a, 4, 20).await;
    wait(2).await;
    wait_counters(&a, [4.0, 0.0, 4.0, 0.0]).await;
    {
        let seen = stub.seen.lock();
        let gap = (seen[1].0 - seen[0].0).as_secs_f64();
        assert!(gap >= 0.95, "RetryInfo honoured: {gap}");
        let md = &seen[1].2;
        assert_eq!(md.get("authorization").unwrap(), "Basic dTpw");
        assert_eq!(md.get("x-scope-orgid").unwrap(), "tenant-9");
        assert_eq!(md.get("grpc-encoding").unwrap(), "gzip");
        assert_eq!(seen[1].1, 4);
    }
    // RESOURCE_EXHAUSTED without RetryInfo: given up.
    send(&a, 3, 21).await;
    wait(3).await;
    wait_counters(&a, [4.0, 3.0, 4.0, 0.0]).await;
    // RESOURCE_EXHAUSTED with RetryInfo: retried; then a partial success of 2.
    send(&a, 5, 22).await;
    wait(5).await;
    wait_counters(&a, [7.0, 5.0, 9.0, 0.0]).await;
    // INVALID_ARGUMENT: not retried.
    send(&a, 1, 23).await;
    wait(6).await;
    wait_counters(&a, [7.0, 6.0, 9.0, 0.0]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stub.seen.lock().len(), 6);
    // "both": kept locally as well.
    let (_, v) = get_json(&a.api("/api/services")).await;
    assert!(
        v["data"].as_array().unwrap().iter().any(|s| s == "svc"),
        "{v}"
    );
    a.stop().await;
}

#[test]
fn forward_configuration_is_checked() {
    let load = |env: &[(&str, &str)]| {
        sightline::config::load(
            None,
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
            &Overrides::default(),
        )
        .map(|(c, _)| c.forward)
    };
    // Nothing configured: everything local.
    let f = load(&[]).unwrap();
    assert!(!f.enabled());
    // The seed's variables: OTLP/HTTP with basic auth, every signal kept and forwarded.
    let f = load(&[
        (
            "OTEL_COLLECTOR_OTLP_HTTP_ENDPOINT",
            "https://otlp.example.net/otlp",
        ),
        ("OTEL_COLLECTOR_OTLP_USERNAME", "12345"),
        ("OTEL_COLLECTOR_OTLP_PASSWORD", "glc_secret"),
    ])
    .unwrap();
    assert!(f.enabled());
    assert_eq!(f.urls[0], "https://otlp.example.net/otlp/v1/traces");
    assert_eq!(f.urls[2], "https://otlp.example.net/otlp/v1/logs");
    assert!(f.modes.iter().all(|m| *m == sightline::forward::Mode::Both));
    let shown = format!("{f:?}");
    assert!(
        !shown.contains("glc_secret") && !shown.contains("12345"),
        "{shown}"
    );
    // SIGHTLINE_ variables win over the seed's.
    let f = load(&[
        (
            "OTEL_COLLECTOR_OTLP_HTTP_ENDPOINT",
            "https://a.example/otlp",
        ),
        ("SIGHTLINE_FORWARD_ENDPOINT", "https://b.example/otlp"),
    ])
    .unwrap();
    assert_eq!(f.urls[1], "https://b.example/otlp/v1/metrics");
    // Errors that name the key.
    for (env, key) in [
        (
            vec![("SIGHTLINE_FORWARD_ENDPOINT", "https://u:p@x.example")],
            "forward.endpoint",
        ),
        (
            vec![("SIGHTLINE_FORWARD_ENDPOINT", "ftp://x.example")],
            "forward.endpoint",
        ),
        (vec![("SIGHTLINE_FORWARD_TRACES", "both")], "forward.traces"),
        (
            vec![
                ("SIGHTLINE_FORWARD_ENDPOINT", "http://x:4317"),
                ("SIGHTLINE_FORWARD_PROTOCOL", "thrift"),
            ],
            "forward.protocol",
        ),
        (
            vec![("SIGHTLINE_FORWARD_HEADERS", "novalue")],
            "forward.headers",
        ),
        (
            vec![("SIGHTLINE_FORWARD_QUEUE_MAX_SIZE", "10KiB")],
            "forward.queue_max_size",
        ),
    ] {
        let err = load(&env).unwrap_err().to_string();
        assert!(err.contains(key), "{env:?}: {err}");
        assert!(!err.contains("u:p@"), "credentials echoed: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_an_upstream_echoes_back_are_never_shown() {
    let stub = Stub::start(vec![Reply::EchoAuth]).await;
    let a = forwarding_to(
        &stub,
        &[
            ("SIGHTLINE_FORWARD_USERNAME", "inst-4242"),
            ("SIGHTLINE_FORWARD_PASSWORD", "glc_topsecret"),
            ("SIGHTLINE_FORWARD_HEADERS", "x-api-key=key-abcdef"),
        ],
    )
    .await;
    send(&a, 2, 30).await;
    stub.wait_for(1).await;
    wait_counters(&a, [0.0, 2.0, 0.0, 0.0]).await;
    let page = reqwest::get(a.api("/ui/status"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let metrics = reqwest::get(a.api("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(
            "HTTP 401: bad credentials: Basic [redacted] ([redacted]:[redacted]) tenant=[redacted]"
        ),
        "the error is shown, redacted"
    );
    for secret in [
        "glc_topsecret",
        "inst-4242",
        "key-abcdef",
        "aW5zdC00MjQyOmdsY190b3BzZWNyZXQ",
    ] {
        assert!(
            !page.contains(secret) && !metrics.contains(secret),
            "{secret} shown"
        );
    }
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_upstream_is_trusted_through_the_given_ca() {
    use tokio_rustls::rustls;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "sightline test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .unwrap();
    let stub = Stub::start_tls(vec![], tokio_rustls::TlsAcceptor::from(Arc::new(server))).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    // Trusted through forward.ca_file: delivered.
    let a = forwarding_to(
        &stub,
        &[("SIGHTLINE_FORWARD_CA_FILE", ca_file.to_str().unwrap())],
    )
    .await;
    send(&a, 3, 40).await;
    stub.wait_for(1).await;
    wait_counters(&a, [3.0, 0.0, 0.0, 0.0]).await;
    a.stop().await;
    // Without it the system roots do not know this CA: nothing is sent, and it is retried (the
    // certificate may be fixed upstream), never given up.
    let b = forwarding_to(&stub, &[]).await;
    send(&b, 2, 41).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while counters(&b).await[2] < 4.0 {
        assert!(Instant::now() < deadline, "no retries without the CA");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let c = counters(&b).await;
    assert_eq!((c[0], c[1]), (0.0, 0.0));
    assert_eq!(
        stub.count(),
        1,
        "the untrusted connection never carried a request"
    );
    let page = reqwest::get(b.api("/ui/status"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.to_lowercase().contains("certificate"),
        "the last error names the certificate problem"
    );
    b.stop().await;
}
