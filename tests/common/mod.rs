//! Helpers shared by the integration tests: an in-process server on ephemeral ports, a spawned
//! `sightline` binary for crash tests, and polling for the (at most one second behind) index.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use serde_json::Value;
use sightline::app::Running;
use sightline::config::Config;

pub struct Server {
    pub running: Option<Running>,
    pub dir: tempfile::TempDir,
}

impl Server {
    pub async fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, |_| {}).await
    }

    pub async fn start_in(dir: tempfile::TempDir, tweak: impl FnOnce(&mut Config)) -> Server {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("sightline=info")
            .with_test_writer()
            .try_init();
        let mut cfg = Config::for_data_dir(dir.path());
        cfg.traces.index_commit_interval = Duration::from_millis(200);
        // The built-in samplers write "now" into the store, which moves retention's clock;
        // tests that want them turn them back on.
        cfg.host.enabled = false;
        cfg.gpu.enabled = false;
        tweak(&mut cfg);
        let running = sightline::app::start(cfg).await.unwrap();
        Server {
            running: Some(running),
            dir,
        }
    }

    fn r(&self) -> &Running {
        self.running.as_ref().unwrap()
    }

    pub fn api(&self, path: &str) -> String {
        format!("http://{}{}", self.r().http, path)
    }

    pub fn otlp_http(&self, path: &str) -> String {
        format!("http://{}{}", self.r().otlp_http, path)
    }

    pub fn otlp_grpc(&self) -> String {
        format!("http://{}", self.r().otlp_grpc)
    }

    pub async fn stop(mut self) -> tempfile::TempDir {
        self.running.take().unwrap().stop().await.unwrap();
        self.dir
    }
}

pub async fn get_json(url: &str) -> (u16, Value) {
    let resp = reqwest::get(url).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap();
    let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body}"));
    (status, v)
}

/// Polls `url` until `ok` holds for its JSON (the index commits on a timer), or panics after 10 s.
pub async fn wait_json(url: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, v) = get_json(url).await;
        if ok(&v) {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting on {url}; last answer: {v}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn data_len(v: &Value) -> usize {
    v["data"].as_array().map_or(0, Vec::len)
}

/// Trace ids in a Jaeger `/api/traces` answer, sorted.
pub fn trace_ids(v: &Value) -> Vec<String> {
    let mut ids: Vec<String> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["traceID"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

/// `toml` written to `dir/sightline.toml` and read through the real config loader.
pub fn load_toml(
    dir: &std::path::Path,
    toml: &str,
) -> Result<Config, sightline::config::ConfigError> {
    let file = dir.join("sightline.toml");
    std::fs::write(&file, toml).unwrap();
    sightline::config::load(
        Some(&file),
        Vec::new(),
        &sightline::config::Overrides::default(),
    )
    .map(|(c, _)| c)
}

/// A free loopback port (bound and released; good enough for tests on one machine).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `sightline` binary as a child process, for tests that kill it.
pub struct Child {
    pub child: std::process::Child,
    pub http: u16,
    pub otlp_http: u16,
    pub otlp_grpc: u16,
}

impl Child {
    pub fn spawn(data_dir: &std::path::Path) -> Child {
        Self::spawn_with(data_dir, &[])
    }

    /// Spawns with extra environment variables (they win over the test defaults).
    pub fn spawn_with(data_dir: &std::path::Path, env: &[(&str, &str)]) -> Child {
        Self::spawn_at(data_dir, env, (free_port(), free_port(), free_port()))
    }

    /// Spawns on the given (http, otlp_http, otlp_grpc) ports.
    pub fn spawn_at(
        data_dir: &std::path::Path,
        env: &[(&str, &str)],
        (http, otlp_http, otlp_grpc): (u16, u16, u16),
    ) -> Child {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_sightline"))
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--http")
            .arg(format!("127.0.0.1:{http}"))
            .arg("--otlp-http")
            .arg(format!("127.0.0.1:{otlp_http}"))
            .arg("--otlp-grpc")
            .arg(format!("127.0.0.1:{otlp_grpc}"))
            .env("SIGHTLINE_TRACES_INDEX_COMMIT_INTERVAL", "200ms")
            .env("SIGHTLINE_LOG_LEVEL", "warn")
            // Off unless a test turns them on: their samples at "now" would move retention's
            // clock past data loaded at fixed past times.
            .env("SIGHTLINE_HOST_ENABLED", "false")
            .env("SIGHTLINE_GPU_ENABLED", "false")
            // The built-in rules write at "now" on their own clock; tests that want rules say so.
            .env("SIGHTLINE_RULES_BUILTIN", "false")
            .envs(env.iter().copied())
            .spawn()
            .unwrap();
        let c = Child {
            child,
            http,
            otlp_http,
            otlp_grpc,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", http)).is_err() {
            assert!(Instant::now() < deadline, "sightline did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        c
    }

    pub fn api(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.http, path)
    }

    pub fn otlp_http(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.otlp_http, path)
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap(); // SIGKILL on Unix
        self.child.wait().unwrap();
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A helper process (node-exporter, Prometheus), killed on drop.
pub struct Proc(pub std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd` quietly; a missing binary fails the test with what to install.
pub fn spawn_proc(cmd: &str, args: &[String]) -> Proc {
    Proc(
        std::process::Command::new(cmd)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd} must be installed (scripts/test installs it): {e}")),
    )
}

pub mod dashspec;
pub mod promdiff;
pub mod sdk;

/// Builds the stub NVML library (`tests/nvml_stub/nvml_stub.c`) into `dir` with `cc`.
pub fn nvml_stub(dir: &std::path::Path) -> std::path::PathBuf {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nvml_stub/nvml_stub.c");
    let out = dir.join("libnvidia-ml-stub.so");
    let st = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("a C compiler (cc) is needed to build the NVML stub");
    assert!(st.success(), "building the NVML stub failed");
    out
}

pub mod build {
    //! Hand-built OTLP requests with known ids and times.
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    pub fn kv(k: &str, v: any_value::Value) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    pub fn s(v: &str) -> any_value::Value {
        any_value::Value::StringValue(v.into())
    }

    pub fn i(v: i64) -> any_value::Value {
        any_value::Value::IntValue(v)
    }

    pub fn now_ns() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    }

    pub fn trace_id(n: u64, salt: u64) -> Vec<u8> {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&(salt | 1 << 63).to_be_bytes());
        id[8..].copy_from_slice(&n.to_be_bytes());
        id.to_vec()
    }

    pub fn span_id(n: u64) -> Vec<u8> {
        (n | 1 << 62).to_be_bytes().to_vec()
    }

    pub fn span(
        trace: &[u8],
        id: u64,
        parent: Option<u64>,
        name: &str,
        start: u64,
        dur_ns: u64,
    ) -> Span {
        Span {
            trace_id: trace.to_vec(),
            span_id: span_id(id),
            parent_span_id: parent.map(span_id).unwrap_or_default(),
            name: name.into(),
            kind: 2,
            start_time_unix_nano: start,
            end_time_unix_nano: start + dur_ns,
            ..Default::default()
        }
    }

    /// `n` spans of `trace` named `name` (span `i` starts at `start(i)`, 10 ns long), each with an
    /// attribute `key` of hex text that does not compress (`noise(i)` cubed, repeated `repeat`
    /// times), so that a batch takes real room on disk: for retention and full-disk tests.
    pub fn bulky_spans(
        trace: &[u8],
        name: &str,
        n: u64,
        start: impl Fn(u64) -> u64,
        key: &str,
        noise: impl Fn(u64) -> u64,
        repeat: usize,
    ) -> Vec<Span> {
        (0..n)
            .map(|i| {
                let mut sp = span(trace, i + 1, None, name, start(i), 10);
                let text = format!("{:x}", noise(i).wrapping_pow(3)).repeat(repeat);
                sp.attributes.push(kv(key, s(&text)));
                sp
            })
            .collect()
    }

    pub fn request(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", s(service))],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }
}

/// Fills the disk under a server with trace exports of 200 bulky spans (trace `trace_id(k, salt)`
/// for batch `k`, from 0 up to `max`) posted to the OTLP/HTTP `url`, until one is refused.
/// Returns the acknowledged batch numbers and the refusal's status; a refusal must be 503 or 429
/// with `Retry-After`, anything else but 200 fails the test, and so does a disk that never fills.
/// Blocking (call it from `spawn_blocking` in async tests).
pub fn fill_disk(url: &str, salt: u64, max: u64) -> (Vec<u64>, u16) {
    let client = reqwest::blocking::Client::new();
    let mut acked = Vec::new();
    for k in 0..max {
        let t = build::trace_id(k, salt);
        let spans = build::bulky_spans(
            &t,
            "fill",
            200,
            |_| build::now_ns(),
            "noise",
            |i| k * 104729 + i * 7,
            8,
        );
        let r = client
            .post(url)
            .header("content-type", "application/x-protobuf")
            .body(prost::Message::encode_to_vec(&build::request(
                "full", spans,
            )))
            .send()
            .unwrap();
        match r.status().as_u16() {
            200 => acked.push(k),
            code @ (503 | 429) => {
                assert!(
                    r.headers().contains_key("retry-after"),
                    "{code} without Retry-After"
                );
                assert!(!acked.is_empty(), "the first export was refused");
                return (acked, code);
            }
            other => panic!("unexpected status {other} while filling the disk"),
        }
    }
    panic!("the disk never filled in {max} exports");
}

/// Posts a protobuf export and returns the status.
pub async fn post_proto(url: &str, req: &impl prost::Message) -> u16 {
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-protobuf")
        .body(req.encode_to_vec())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// `/api/v1/export` as (labels -> (timestamps, values)); values that JSON cannot carry come
/// back as NaN (staleness markers included).
pub async fn export(
    api: &str,
    selector: &str,
) -> std::collections::BTreeMap<Vec<(String, String)>, (Vec<i64>, Vec<f64>)> {
    let url = format!(
        "{api}/api/v1/export?{}",
        form_urlencoded::Serializer::new(String::new())
            .append_pair("match[]", selector)
            .finish()
    );
    let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
    let mut out = std::collections::BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap();
        let mut labels: Vec<(String, String)> = v["metric"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        labels.sort();
        let ts = v["timestamps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_i64().unwrap())
            .collect();
        let vals = v["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap_or(f64::NAN))
            .collect();
        out.insert(labels, (ts, vals));
    }
    out
}

/// A label set in the form [`export`] keys use.
pub fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    v.sort();
    v
}

/// A small tmpfs mounted under a temporary directory (needs root, as CI has), unmounted on drop.
pub struct SmallTmpfs {
    pub path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallTmpfs {
    pub fn mount(size: &str) -> SmallTmpfs {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("small");
        std::fs::create_dir(&path).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .unwrap();
        assert!(
            ok.success(),
            "this test needs root to mount a small tmpfs (CI runs as root)"
        );
        SmallTmpfs { path, _dir: dir }
    }
}

impl Drop for SmallTmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}
