//! Ingest and query benchmark (not a test): `cargo bench --bench ingest -- [--seconds N]
//! [--concurrency N] [--spans N] [--queries N] [--rate SPANS_PER_S]`; `-- --spanmetrics-ratio`
//! and `-- --forward-ratio` compare local ingest with span metrics (or forwarding upstream) on and off.
//!
//! Starts Sightline on a temp directory (or `--data-dir DIR`, kept for query-only reruns) and
//! posts OTLP/HTTP protobuf exports of 512 spans in production shape (issue 25): fresh trace and
//! span ids in every export (written over pre-built exports, so the generator stays cheap), 10-20 attributes per span, 16 resource attributes, traces of 16
//! spans across 8 services, from `--concurrency` (4) connections for `--seconds` (60); a refused
//! export (429) is followed by a wait of its `Retry-After`, as OTLP exporters do. Each request is
//! answered only after its spans are committed (durable acknowledgement). The server is the
//! `sightline` release binary in its own process (the generator shares the machine's cores).
//! Reports the mean and the per-second rate of acknowledged spans (min, p10, median, max, and
//! every second), refusals, acknowledgement latency percentiles, bytes per span on disk (SQLite
//! and index, after a clean shutdown), and the server's peak RSS. Then, with the store at
//! `--spans` spans (ingesting more if the timed run did not reach it), measures trace-by-id and
//! tag-search latency.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span::Event};
use prost::Message;

mod common;
use common::{Rng, Sightline, arg, dir_size};

/// The `sightline` binary in its own process, so its memory is measured alone.
struct Server {
    proc: Sightline,
    http: String,
    otlp_http: String,
}

impl Server {
    fn start(dir: &std::path::Path) -> Server {
        Self::start_with(dir, &[])
    }

    fn start_with(dir: &std::path::Path, env: &[(&str, &str)]) -> Server {
        let proc = Sightline::spawn(dir, env);
        Server {
            http: format!("127.0.0.1:{}", proc.http),
            otlp_http: format!("127.0.0.1:{}", proc.otlp_http),
            proc,
        }
    }

    fn peak_rss_mb(&self) -> f64 {
        vm_hwm_mb(&format!("/proc/{}/status", self.proc.child.id()))
    }

    /// Samples anonymous (heap) and file-backed (mmap'd index, page cache) RSS every 250 ms;
    /// returns the handle whose result is the peaks in MB.
    fn watch_rss(
        &self,
    ) -> (
        Arc<std::sync::atomic::AtomicBool>,
        std::thread::JoinHandle<(f64, f64)>,
    ) {
        let path = format!("/proc/{}/status", self.proc.child.id());
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let (mut anon, mut file) = (0f64, 0f64);
            while !flag.load(Ordering::Relaxed) {
                if let Ok(text) = std::fs::read_to_string(&path) {
                    let kb = |key: &str| {
                        text.lines()
                            .find(|l| l.starts_with(key))
                            .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
                            .unwrap_or(0.0)
                    };
                    anon = anon.max(kb("RssAnon:") / 1024.0);
                    file = file.max(kb("RssFile:") / 1024.0);
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            (anon, file)
        });
        (stop, handle)
    }

    /// SIGTERM, then wait: the server commits everything before it exits.
    fn stop(mut self) {
        std::process::Command::new("kill")
            .args(["-TERM", &self.proc.child.id().to_string()])
            .status()
            .unwrap();
        let status = self.proc.child.wait().unwrap();
        assert!(status.success(), "sightline exited with {status:?}");
    }
}

const BATCH: usize = 512;
const TRACE_LEN: usize = 16;
const SERVICES: [&str; 8] = [
    "frontend",
    "cart",
    "checkout",
    "payment",
    "inventory",
    "search",
    "recommender",
    "gpu-worker",
];
const ROUTES: [&str; 12] = [
    "/api/cart",
    "/api/checkout",
    "/api/products/{id}",
    "/api/search",
    "/api/recommend",
    "/api/orders/{id}",
    "/api/payment/charge",
    "/api/inventory/reserve",
    "/healthz",
    "/api/users/{id}",
    "/api/infer",
    "/api/embed",
];

fn kv(k: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}
fn s(v: impl Into<String>) -> any_value::Value {
    any_value::Value::StringValue(v.into())
}
fn i(v: i64) -> any_value::Value {
    any_value::Value::IntValue(v)
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// An encoded export and where its ids are: sent again and again with fresh trace and span
/// ids written over the old ones, so producing an export costs a copy and a few thousand byte
/// writes instead of building and encoding 512 spans (the generator stays a small share of the
/// machine, as an external load generator would).
struct Template {
    body: Vec<u8>,
    /// Offsets of each trace id's 16 bytes.
    traces: Vec<Vec<usize>>,
    /// Offsets of each span id's 8 bytes (as its own id and as its children's parent id).
    spans: Vec<Vec<usize>>,
}

impl Template {
    fn new(rng: &mut Rng) -> Template {
        let (body, tids, sids) = batch_with_ids(rng);
        let mut traces = vec![Vec::new(); tids.len()];
        let mut spans = vec![Vec::new(); sids.len()];
        let by_trace: std::collections::HashMap<[u8; 8], usize> = tids
            .iter()
            .enumerate()
            .map(|(i, t)| (t[..8].try_into().unwrap(), i))
            .collect();
        let by_span: std::collections::HashMap<[u8; 8], usize> = sids
            .iter()
            .enumerate()
            .map(|(i, s)| (s.to_be_bytes(), i))
            .collect();
        for at in 0..body.len().saturating_sub(8) {
            let w: [u8; 8] = body[at..at + 8].try_into().unwrap();
            if let Some(&i) = by_trace.get(&w)
                && body.get(at..at + 16) == Some(&tids[i][..])
            {
                traces[i].push(at);
            } else if let Some(&i) = by_span.get(&w) {
                spans[i].push(at);
            }
        }
        assert!(
            traces.iter().all(|o| o.len() == TRACE_LEN),
            "every span carries its trace id"
        );
        Template {
            body,
            traces,
            spans,
        }
    }

    /// A copy with fresh ids; returns it and its first trace id.
    fn fresh(&self, rng: &mut Rng) -> (Vec<u8>, [u8; 16]) {
        let mut body = self.body.clone();
        let mut first = [0u8; 16];
        for (k, offsets) in self.traces.iter().enumerate() {
            let mut tid = [0u8; 16];
            tid[..8].copy_from_slice(&rng.next().to_be_bytes());
            tid[8..].copy_from_slice(&rng.next().to_be_bytes());
            if k == 0 {
                first = tid;
            }
            for &at in offsets {
                body[at..at + 16].copy_from_slice(&tid);
            }
        }
        for offsets in &self.spans {
            let sid = (rng.next() | 1).to_be_bytes();
            for &at in offsets {
                body[at..at + 8].copy_from_slice(&sid);
            }
        }
        (body, first)
    }
}

/// One export of `BATCH` spans in `BATCH / TRACE_LEN` traces, with every trace id and span id in
/// it.
fn batch_with_ids(rng: &mut Rng) -> (Vec<u8>, Vec<[u8; 16]>, Vec<u64>) {
    let t0 = now_ns();
    let mut by_service: Vec<Vec<Span>> = vec![Vec::new(); SERVICES.len()];
    let mut all_tids = Vec::new();
    let mut all_sids = Vec::new();
    for _ in 0..BATCH / TRACE_LEN {
        let mut tid = [0u8; 16];
        tid[..8].copy_from_slice(&rng.next().to_be_bytes());
        tid[8..].copy_from_slice(&rng.next().to_be_bytes());
        all_tids.push(tid);
        let mut ids = Vec::with_capacity(TRACE_LEN);
        for k in 0..TRACE_LEN {
            let sid = rng.next() | 1;
            ids.push(sid);
            all_sids.push(sid);
            let parent = if k == 0 { None } else { Some(ids[(k - 1) / 2]) };
            let svc = if k == 0 {
                0
            } else {
                rng.below(SERVICES.len() as u64) as usize
            };
            let route = ROUTES[rng.below(ROUTES.len() as u64) as usize];
            let status = [200, 200, 200, 200, 201, 204, 404, 500][rng.below(8) as usize];
            let start = t0 + (k as u64) * 1_000_000;
            let dur = 200_000 + rng.below(50_000_000);
            let mut attrs = vec![
                kv(
                    "http.request.method",
                    s(["GET", "POST", "PUT", "DELETE"][rng.below(4) as usize]),
                ),
                kv("http.route", s(route)),
                kv(
                    "url.path",
                    s(route.replace("{id}", &rng.below(100_000).to_string())),
                ),
                kv("http.response.status_code", i(status)),
                kv(
                    "server.address",
                    s(format!("{}.svc.cluster.local", SERVICES[svc])),
                ),
                kv("server.port", i(8080)),
                kv("network.protocol.version", s("1.1")),
                kv(
                    "client.address",
                    s(format!("10.0.{}.{}", rng.below(8), rng.below(255))),
                ),
                kv(
                    "user_agent.original",
                    s("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0"),
                ),
                kv("customer.id", s(format!("cust-{}", rng.below(50_000)))),
                kv(
                    "tenant",
                    s(["acme", "globex", "initech", "umbrella"][rng.below(4) as usize]),
                ),
            ];
            let extra = rng.below(10);
            for e in 0..extra {
                attrs.push(kv(
                    &format!("app.attr_{e}"),
                    s(format!("value-{}", rng.below(1000))),
                ));
            }
            if svc == 4 {
                attrs.push(kv("db.system", s("postgresql")));
                attrs.push(kv(
                    "db.statement",
                    s("SELECT id, sku, qty FROM inventory WHERE sku = $1 FOR UPDATE"),
                ));
            }
            let mut span = Span {
                trace_id: tid.to_vec(),
                span_id: sid.to_be_bytes().to_vec(),
                parent_span_id: parent.map(|p| p.to_be_bytes().to_vec()).unwrap_or_default(),
                name: format!("{} {}", if k == 0 { "GET" } else { "POST" }, route),
                kind: if k % 2 == 0 { 2 } else { 3 },
                start_time_unix_nano: start,
                end_time_unix_nano: start + dur,
                attributes: attrs,
                ..Default::default()
            };
            if status >= 500 {
                span.status = Some(Status {
                    code: 2,
                    message: "upstream failed".into(),
                });
                span.events.push(Event {
                    time_unix_nano: start + dur / 2,
                    name: "exception".into(),
                    attributes: vec![
                        kv("exception.type", s("TimeoutError")),
                        kv("exception.message", s("deadline exceeded after 30s")),
                    ],
                    ..Default::default()
                });
            }
            by_service[svc].push(span);
        }
    }
    let req = ExportTraceServiceRequest {
        resource_spans: by_service
            .into_iter()
            .enumerate()
            .filter(|(_, v)| !v.is_empty())
            .map(|(svc, spans)| ResourceSpans {
                resource: Some(Resource {
                    // 16 resource attributes, as an SDK with the Kubernetes and cloud
                    // detectors sends them.
                    attributes: vec![
                        kv("service.name", s(SERVICES[svc])),
                        kv("service.namespace", s("shop")),
                        kv("service.version", s("1.4.2")),
                        kv(
                            "service.instance.id",
                            s(format!("{}-7d9f8b-x{svc}", SERVICES[svc])),
                        ),
                        kv("host.name", s(format!("node-{}", svc % 3))),
                        kv("host.arch", s("amd64")),
                        kv("os.type", s("linux")),
                        kv("k8s.namespace.name", s("shop-prod")),
                        kv(
                            "k8s.pod.name",
                            s(format!("{}-7d9f8b-x{}", SERVICES[svc], svc)),
                        ),
                        kv("k8s.node.name", s(format!("node-{}", svc % 3))),
                        kv("k8s.deployment.name", s(SERVICES[svc])),
                        kv("cloud.provider", s("gcp")),
                        kv("cloud.region", s("europe-west4")),
                        kv("deployment.environment", s("production")),
                        kv("telemetry.sdk.language", s("python")),
                        kv("telemetry.sdk.version", s("1.45.2")),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    };
    (req.encode_to_vec(), all_tids, all_sids)
}

fn vm_hwm_mb(path: &str) -> f64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

struct Load {
    spans: AtomicU64,
    refused: AtomicU64,
    samples: parking_lot::Mutex<Vec<[u8; 16]>>,
    latencies: parking_lot::Mutex<Vec<f64>>,
    /// Spans acknowledged in each second since `started`.
    per_second: parking_lot::Mutex<Vec<u64>>,
    /// Refusals by reason (the answer's text up to the first digit, so counts do not split it).
    reasons: parking_lot::Mutex<std::collections::BTreeMap<String, u64>>,
    started: Instant,
}

impl Load {
    fn new() -> Arc<Load> {
        Arc::new(Load {
            spans: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            samples: Default::default(),
            latencies: Default::default(),
            per_second: Default::default(),
            reasons: Default::default(),
            started: Instant::now(),
        })
    }

    fn acknowledged(&self, n: u64) {
        self.spans.fetch_add(n, Ordering::Relaxed);
        let sec = self.started.elapsed().as_secs() as usize;
        let mut v = self.per_second.lock();
        if v.len() <= sec {
            v.resize(sec + 1, 0);
        }
        v[sec] += n;
    }
}

/// `Retry-After` in seconds (an OTLP exporter waits that long), 1 s when absent or unreadable.
fn retry_after(r: &reqwest::Response) -> Duration {
    let secs = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .unwrap_or(1.0);
    Duration::from_secs_f64(secs.min(30.0))
}

/// Sends exports from `concurrency` connections until `deadline` or `span_target`; with a
/// `rate` (spans/s over all connections), export `k` is not sent before `k * 512 / rate`
/// seconds from the start (an offered load, as from many services), otherwise as fast as the
/// answers come.
async fn drive(
    url: String,
    concurrency: u64,
    deadline: Option<Instant>,
    span_target: u64,
    load: Arc<Load>,
    seed: u64,
    rate: Option<f64>,
) {
    let issued = Arc::new(AtomicU64::new(0));
    let paced_from = Instant::now();
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    // 16 distinct exports per connection (attribute values, services and routes vary), each
    // sent with fresh ids.
    let mut rng = Rng(0x5EED ^ seed);
    let templates: Arc<Vec<Template>> = Arc::new(
        (0..16 * concurrency)
            .map(|_| Template::new(&mut rng))
            .collect(),
    );
    for c in 0..concurrency {
        let (client, url, load) = (client.clone(), url.clone(), load.clone());
        let templates = templates.clone();
        let issued = issued.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (seed * 1000 + c + 1));
            let mut n = c as usize;
            loop {
                if deadline.is_some_and(|d| Instant::now() >= d)
                    || load.spans.load(Ordering::Relaxed) >= span_target
                {
                    break;
                }
                if let Some(rate) = rate {
                    let k = issued.fetch_add(1, Ordering::Relaxed);
                    let due = paced_from + Duration::from_secs_f64(k as f64 * BATCH as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                n = (n + concurrency as usize) % templates.len();
                let (body, sample) = templates[n].fresh(&mut rng);
                let t = Instant::now();
                let r = client
                    .post(&url)
                    .header("content-type", "application/x-protobuf")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let status = r.status();
                let wait = retry_after(&r);
                let body = r.bytes().await.unwrap_or_default();
                if status != 200 {
                    // OTLP/HTTP protobuf answers a refusal with a `google.rpc.Status`.
                    let text = sightline::forward::client::error_text(&body, false, false);
                    let reason: String = text
                        .chars()
                        .filter(|c| c.is_ascii_graphic() || *c == ' ')
                        .take_while(|c| !c.is_ascii_digit())
                        .collect();
                    *load
                        .reasons
                        .lock()
                        .entry(format!("{status} {}", reason.trim()))
                        .or_default() += 1;
                    // Refused (429 or 503): wait as the server asks, then send the next
                    // export (an exporter would resend this one; the load is the same).
                    load.refused.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(wait).await;
                    continue;
                }
                load.latencies
                    .lock()
                    .push(t.elapsed().as_secs_f64() * 1000.0);
                load.acknowledged(BATCH as u64);
                let mut samples = load.samples.lock();
                if samples.len() < 100_000 {
                    samples.push(sample);
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let seconds = arg("--seconds", 60);
    let concurrency = arg("--concurrency", 4);
    let query_spans = arg("--spans", 1_000_000);
    let queries = arg("--queries", 200);
    // An offered rate in spans/s for the timed run (0: as fast as answers come).
    let rate = Some(arg("--rate", 0) as f64).filter(|r| *r > 0.0);
    let tmp = tempfile::tempdir().unwrap();
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--spanmetrics-ratio") {
        spanmetrics_ratio(seconds, concurrency).await;
        return;
    }
    if args.iter().any(|a| a == "--forward-ratio") {
        forward_ratio(seconds, concurrency, args.iter().any(|a| a == "--sink")).await;
        return;
    }
    let keep = args
        .iter()
        .position(|a| a == "--data-dir")
        .and_then(|p| args.get(p + 1))
        .map(std::path::PathBuf::from);
    let dir_path = keep.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let samples_file = dir_path.join("bench-samples.txt");
    if let Some(samples) = std::fs::read_to_string(&samples_file)
        .ok()
        .filter(|_| keep.is_some())
    {
        // A kept store from an earlier run: measure queries only.
        let ids: Vec<[u8; 16]> = samples
            .lines()
            .filter_map(|l| {
                let mut id = [0u8; 16];
                (l.len() == 32).then(|| {
                    for (k, b) in id.iter_mut().enumerate() {
                        *b = u8::from_str_radix(&l[2 * k..2 * k + 2], 16).unwrap();
                    }
                    id
                })
            })
            .collect();
        let stored = std::fs::read_to_string(dir_path.join("bench-spans.txt"))
            .unwrap_or_default()
            .trim()
            .parse()
            .unwrap_or(0);
        println!("# reusing {} ({stored} spans stored)", dir_path.display());
        queries_phase(&dir_path, ids, stored, queries).await;
        return;
    }
    let server = Server::start(&dir_path);
    let (watch_stop, watch) = server.watch_rss();
    let url = format!("http://{}/v1/traces", server.otlp_http);
    println!(
        "# sightline ingest benchmark: {seconds}s, {concurrency} clients, batches of {BATCH} spans, {}",
        rate.map_or("as fast as answered".to_string(), |r| format!(
            "offered {r:.0} spans/s"
        ))
    );

    let load = Load::new();
    let started = Instant::now();
    drive(
        url.clone(),
        concurrency,
        Some(started + Duration::from_secs(seconds)),
        u64::MAX,
        load.clone(),
        1,
        rate,
    )
    .await;
    let elapsed = started.elapsed().as_secs_f64();
    let spans = load.spans.load(Ordering::Relaxed);
    let mut lat = load.latencies.lock().clone();
    lat.sort_by(f64::total_cmp);
    println!("ingest_spans_per_second {:.0}", spans as f64 / elapsed);
    println!("ingest_spans_total {spans}");
    println!(
        "refused_requests_429 {} (each followed by a wait of its Retry-After)",
        load.refused.load(Ordering::Relaxed)
    );
    for (reason, n) in load.reasons.lock().iter() {
        println!("refused_because {n} x {reason}");
    }
    // The per-second rate: the steady state, not only the mean (the last, partial second left
    // out).
    let mut per_second = load.per_second.lock().clone();
    per_second.truncate(seconds as usize);
    let mut sorted = per_second.iter().map(|&n| n as f64).collect::<Vec<f64>>();
    sorted.sort_by(f64::total_cmp);
    println!(
        "spans_per_second_each_second min {:.0} p10 {:.0} median {:.0} max {:.0}",
        pct(&sorted, 0.0),
        pct(&sorted, 0.1),
        pct(&sorted, 0.5),
        pct(&sorted, 1.0)
    );
    println!(
        "spans_per_second_series {}",
        per_second
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "ack_latency_ms p50 {:.1} p99 {:.1} max {:.1}",
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        pct(&lat, 1.0)
    );
    println!("peak_rss_mb_server {:.0}", server.peak_rss_mb());

    // Reach the query size if needed (not timed).
    if spans < query_spans {
        println!("# ingesting up to {query_spans} spans for the query measurements ...");
        drive(
            url.clone(),
            concurrency,
            None,
            query_spans,
            load.clone(),
            2,
            None,
        )
        .await;
    }
    let stored = load.spans.load(Ordering::Relaxed);
    println!("peak_rss_mb_server_after_fill {:.0}", server.peak_rss_mb());
    watch_stop.store(true, Ordering::Relaxed);
    let (anon, file) = watch.join().unwrap();
    println!(
        "peak_rss_mb_server_sampled anon {anon:.0} file {file:.0} (file = mmap'd index and other file pages)"
    );
    server.stop();
    let db = std::fs::metadata(dir_path.join("traces.db"))
        .map(|m| m.len())
        .unwrap_or(0);
    let index = dir_size(&dir_path.join("index"));
    println!("stored_spans {stored}");
    println!(
        "disk_bytes_per_span {:.1} (sqlite {:.1} + index {:.1})",
        (db + index) as f64 / stored as f64,
        db as f64 / stored as f64,
        index as f64 / stored as f64
    );

    let samples = load.samples.lock().clone();
    if keep.is_some() {
        let text: String = samples.iter().map(|id| hex_id(id) + "\n").collect();
        std::fs::write(&samples_file, text).unwrap();
        std::fs::write(dir_path.join("bench-spans.txt"), stored.to_string()).unwrap();
    }
    queries_phase(&dir_path, samples, stored, queries).await;
}

/// Trace-by-id and tag-search latency against the reopened store, as after a restart.
async fn queries_phase(dir: &std::path::Path, samples: Vec<[u8; 16]>, stored: u64, queries: u64) {
    let server = Server::start(dir);
    let api = format!("http://{}", server.http);
    let client = reqwest::Client::new();
    let mut rng = Rng(42);
    let mut by_id = Vec::new();
    for _ in 0..queries {
        let id = samples[rng.below(samples.len() as u64) as usize];
        let t = Instant::now();
        let r = client
            .get(format!("{api}/api/traces/{}", hex_id(&id)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body = r.bytes().await.unwrap();
        by_id.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(body.len() > 100);
    }
    by_id.sort_by(f64::total_cmp);
    println!(
        "trace_by_id_ms p50 {:.1} p99 {:.1} (n={queries}, {stored} spans stored)",
        pct(&by_id, 0.5),
        pct(&by_id, 0.99)
    );
    let searches = [
        "service=checkout&tags=http.response.status_code%3D500&limit=20",
        "service=payment&tags=tenant%3Dacme%20http.request.method%3DPOST&limit=20",
        "service=frontend&minDuration=40ms&limit=20",
        "service=inventory&tags=customer.id%3Dcust-123&limit=20",
        "service=search&tags=http.response.status_code%3E%3D404&limit=20",
    ];
    let mut tag = Vec::new();
    for k in 0..queries {
        let q = searches[k as usize % searches.len()];
        let t = Instant::now();
        let r = client
            .get(format!("{api}/api/traces?{q}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let _ = r.bytes().await.unwrap();
        tag.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    tag.sort_by(f64::total_cmp);
    println!(
        "tag_search_ms p50 {:.1} p99 {:.1} (n={queries}, limit 20, whole traces returned)",
        pct(&tag, 0.5),
        pct(&tag, 0.99)
    );
    println!("peak_rss_mb_server_queries {:.0}", server.peak_rss_mb());
    server.stop();
}

fn hex_id(id: &[u8; 16]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// Span ingest with span metrics (and the service graph) on and off, alternating on/off twice on
/// fresh data directories, `seconds` each: the cost of deriving them, as a throughput ratio.
async fn spanmetrics_ratio(seconds: u64, concurrency: u64) {
    println!("# span metrics overhead: {seconds}s per run, {concurrency} clients, on/off/on/off");
    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for (i, on) in [true, false, true, false].into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start_with(
            dir.path(),
            &[(
                "SIGHTLINE_SPANMETRICS_ENABLED",
                if on { "true" } else { "false" },
            )],
        );
        let load = Load::new();
        let started = Instant::now();
        drive(
            format!("http://{}/v1/traces", server.otlp_http),
            concurrency,
            Some(started + Duration::from_secs(seconds)),
            u64::MAX,
            load.clone(),
            1,
            None,
        )
        .await;
        let rate = load.spans.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
        if on {
            let m = reqwest::get(format!("http://{}/metrics", server.http))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let counted = m
                .lines()
                .find(|l| l.starts_with("sightline_spanmetrics_spans_total "))
                .unwrap_or("")
                .to_string();
            let dropped = m
                .lines()
                .find(|l| l.starts_with("sightline_spanmetrics_dropped_spans_total "))
                .unwrap_or("")
                .to_string();
            println!("run {i} spanmetrics on: {rate:.0} spans/s ({counted}; {dropped})");
        } else {
            println!("run {i} spanmetrics off: {rate:.0} spans/s");
        }
        rates[usize::from(!on)].push(rate);
        drop(server);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (on, off) = (mean(&rates[0]), mean(&rates[1]));
    println!("spanmetrics_on_spans_per_second {on:.0}");
    println!("spanmetrics_off_spans_per_second {off:.0}");
    println!("spanmetrics_throughput_ratio {:.3}", on / off);
}

/// One value from a Prometheus text exposition.
async fn scrape_value(http: &str, series: &str) -> f64 {
    let m = reqwest::get(format!("http://{http}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    m.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Local ingest with traces forwarded (kept and forwarded, "both") to a second Sightline
/// binary, against local ingest alone; and how fast the forwarded spans reach the upstream.
async fn forward_ratio(seconds: u64, concurrency: u64, sink: bool) {
    println!(
        "# forwarding cost: {seconds}s per run, {concurrency} clients, forward on/off/on/off; upstream: {}",
        if sink {
            "a sink that reads each request and answers 200 (in the benchmark's process)"
        } else {
            "a second sightline storing everything"
        }
    );
    let up_dir = tempfile::tempdir().unwrap();
    let (upstream, endpoint) = if sink {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(|body: axum::body::Bytes| async move {
                std::hint::black_box(body.len());
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }),
        );
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        (None, format!("http://{addr}"))
    } else {
        let up = Server::start(up_dir.path());
        let e = format!("http://{}", up.otlp_http);
        (Some(up), e)
    };
    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut forwarded = Vec::new();
    for (i, on) in [true, false, true, false].into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let env: Vec<(&str, &str)> = if on {
            vec![
                ("SIGHTLINE_FORWARD_ENDPOINT", endpoint.as_str()),
                ("SIGHTLINE_FORWARD_TRACES", "both"),
                ("SIGHTLINE_FORWARD_METRICS", "local"),
                ("SIGHTLINE_FORWARD_LOGS", "local"),
            ]
        } else {
            Vec::new()
        };
        let server = Server::start_with(dir.path(), &env);
        let load = Load::new();
        let started = Instant::now();
        drive(
            format!("http://{}/v1/traces", server.otlp_http),
            concurrency,
            Some(started + Duration::from_secs(seconds)),
            u64::MAX,
            load.clone(),
            7 + i as u64,
            None,
        )
        .await;
        let acked = load.spans.load(Ordering::Relaxed);
        let rate = acked as f64 / started.elapsed().as_secs_f64();
        if on {
            // Until everything acknowledged has been delivered.
            let sent_series = "sightline_forward_sent_total{signal=\"traces\"}";
            loop {
                let sent = scrape_value(&server.http, sent_series).await;
                if sent >= acked as f64 || started.elapsed() > Duration::from_secs(seconds * 10) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let took = started.elapsed().as_secs_f64();
            let sent = scrape_value(&server.http, sent_series).await;
            let retried = scrape_value(
                &server.http,
                "sightline_forward_retried_total{signal=\"traces\"}",
            )
            .await;
            let fwd = sent / took;
            println!(
                "run {i} forward on: local {rate:.0} spans/s acknowledged; {sent:.0} spans delivered upstream in {took:.1} s = {fwd:.0} spans/s (retried {retried:.0})"
            );
            forwarded.push(fwd);
        } else {
            println!("run {i} forward off: local {rate:.0} spans/s acknowledged");
        }
        rates[usize::from(!on)].push(rate);
        drop(server);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (on, off) = (mean(&rates[0]), mean(&rates[1]));
    println!("forward_on_local_spans_per_second {on:.0}");
    println!("forward_off_local_spans_per_second {off:.0}");
    println!("forward_local_throughput_ratio {:.3}", on / off);
    println!("forward_delivered_spans_per_second {:.0}", mean(&forwarded));
    if let Some(up) = upstream {
        println!(
            "upstream_accepted_spans {}",
            scrape_value(
                &up.http,
                "sightline_otlp_accepted_items_total{signal=\"traces\",transport=\"http\"}"
            )
            .await
        );
    }
}
