//! Footprint benchmark (issue 7), not a test: `cargo bench --bench footprint -- [--gb N]
//! [--runs N] [--data-dir DIR]`.
//!
//! Reports the release binary's size; the time from starting the process to the first OTLP
//! export it acknowledges, with an empty data directory and with one holding `--gb` GiB of spans
//! (filled first, or reused from `--data-dir`); and the resident memory after 10 s idle with the
//! default configuration (samplers on). Prometheus 2.42 from Debian is measured side by side in
//! the same run where it is installed: time from start to `/-/ready`, and idle RSS.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

mod common;
use common::{Rng, arg, dir_size, free_port};

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

/// A batch of `n` spans in traces of 10, with a few attributes each.
fn batch(rng: &mut Rng, n: usize) -> Vec<u8> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut spans = Vec::with_capacity(n);
    let mut trace = [0u8; 16];
    for i in 0..n {
        if i % 10 == 0 {
            trace = (rng.next() as u128 | ((rng.next() as u128) << 64)).to_be_bytes();
        }
        let start = now - rng.below(60_000_000_000);
        spans.push(Span {
            trace_id: trace.to_vec(),
            span_id: (rng.next() | 1).to_be_bytes().to_vec(),
            name: format!("GET /api/items/{}", rng.below(50)),
            kind: 2,
            start_time_unix_nano: start,
            end_time_unix_nano: start + rng.below(200_000_000),
            attributes: vec![
                kv("http.method", "GET"),
                kv("http.route", "/api/items/{id}"),
                kv("user.id", &rng.below(100_000).to_string()),
                kv(
                    "region",
                    ["eu-west-1", "us-east-1", "ap-south-1"][rng.below(3) as usize],
                ),
            ],
            ..Default::default()
        });
    }
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", &format!("svc-{}", rng.below(8)))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// POSTs an OTLP/HTTP protobuf body; true on a 200.
fn post(port: u16, body: &[u8]) -> bool {
    let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = c.set_nodelay(true);
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if c.write_all(head.as_bytes())
        .and_then(|_| c.write_all(body))
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(c.read(&mut buf), Ok(n) if n >= 12 && &buf[9..12] == b"200")
}

fn get_ok(port: u16, path: &str) -> bool {
    let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    if write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(c.read(&mut buf), Ok(n) if n >= 12 && &buf[9..12] == b"200")
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

struct Proc(std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        // SIGTERM first: Sightline drains and closes its stores, so the next start is clean.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sightline(dir: &std::path::Path, otlp: u16, samplers: bool) -> Proc {
    let on = if samplers { "true" } else { "false" };
    Proc(
        std::process::Command::new(env!("CARGO_BIN_EXE_sightline"))
            .arg("--data-dir")
            .arg(dir)
            .arg("--http")
            .arg(format!("127.0.0.1:{}", free_port()))
            .arg("--otlp-http")
            .arg(format!("127.0.0.1:{otlp}"))
            .arg("--otlp-grpc")
            .arg(format!("127.0.0.1:{}", free_port()))
            .env("SIGHTLINE_LOG_LEVEL", "warn")
            .env("SIGHTLINE_HOST_ENABLED", on)
            .env("SIGHTLINE_GPU_ENABLED", on)
            .spawn()
            .unwrap(),
    )
}

/// Milliseconds from spawning Sightline on `dir` to its first acknowledged OTLP export.
fn start_to_otlp(dir: &std::path::Path, probe: &[u8]) -> f64 {
    let otlp = free_port();
    let t0 = Instant::now();
    let p = sightline(dir, otlp, true);
    while !post(otlp, probe) {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "sightline did not start"
        );
        std::thread::sleep(Duration::from_micros(500));
    }
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    drop(p);
    ms
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let gib = arg("--gb", 1);
    let runs = arg("--runs", 5) as usize;
    let args: Vec<String> = std::env::args().collect();
    let keep = args
        .iter()
        .position(|a| a == "--data-dir")
        .and_then(|p| args.get(p + 1))
        .map(std::path::PathBuf::from);
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_sightline"));
    println!("# sightline footprint: {}", bin.display());
    println!("binary_bytes {}", std::fs::metadata(bin).unwrap().len());
    let stripped = std::env::temp_dir().join("sightline-stripped");
    if std::process::Command::new("strip")
        .arg("-o")
        .arg(&stripped)
        .arg(bin)
        .status()
        .is_ok_and(|s| s.success())
    {
        println!(
            "binary_bytes_stripped {}",
            std::fs::metadata(&stripped).unwrap().len()
        );
    }
    let mut rng = Rng(0x5eed_f00d);
    let probe = batch(&mut rng, 1);

    // Empty data directory, a fresh one each run.
    let empty: Vec<f64> = (0..runs)
        .map(|_| {
            let d = tempfile::tempdir().unwrap();
            start_to_otlp(d.path(), &probe)
        })
        .collect();
    println!(
        "start_to_otlp_ms_empty median {:.1} runs {:?}",
        median(empty.clone()),
        empty
            .iter()
            .map(|v| (v * 10.0).round() / 10.0)
            .collect::<Vec<_>>()
    );

    // Idle memory with the default configuration (samplers on).
    {
        let d = tempfile::tempdir().unwrap();
        let otlp = free_port();
        let p = sightline(d.path(), otlp, true);
        while !post(otlp, &probe) {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_secs(10));
        println!("idle_rss_mib {:.1}", rss_kib(p.0.id()) as f64 / 1024.0);
    }

    // A data directory holding `--gb` GiB of spans.
    let tmp = tempfile::tempdir().unwrap();
    let dir = keep.unwrap_or_else(|| tmp.path().to_path_buf());
    let target = gib << 30;
    // Filled in passes: a clean shutdown checkpoints and shrinks the write-ahead files, so the
    // size is checked again after each stop.
    while dir_size(&dir) < target {
        let otlp = free_port();
        let p = sightline(&dir, otlp, false);
        while !post(otlp, &probe) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let t0 = Instant::now();
        let port = otlp;
        let handles: Vec<_> = (0..3u64)
            .map(|k| {
                let dir = dir.clone();
                std::thread::spawn(move || {
                    let mut rng = Rng(0x1234_5678 + k);
                    while dir_size(&dir) < target + target / 4 {
                        for _ in 0..20 {
                            let b = batch(&mut rng, 2000);
                            while !post(port, &b) {
                                std::thread::sleep(Duration::from_millis(50));
                            }
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        drop(p);
        println!(
            "# filled {} to {:.2} GiB in {:.0} s",
            dir.display(),
            dir_size(&dir) as f64 / (1u64 << 30) as f64,
            t0.elapsed().as_secs_f64()
        );
    }
    let full: Vec<f64> = (0..runs).map(|_| start_to_otlp(&dir, &probe)).collect();
    println!(
        "start_to_otlp_ms_{:.1}gib median {:.1} runs {:?}",
        dir_size(&dir) as f64 / (1u64 << 30) as f64,
        median(full.clone()),
        full.iter()
            .map(|v| (v * 10.0).round() / 10.0)
            .collect::<Vec<_>>()
    );

    // Prometheus 2.42 side by side, where installed.
    if std::process::Command::new("prometheus")
        .arg("--version")
        .output()
        .is_ok()
    {
        let mut times = Vec::new();
        let mut rss = 0;
        for i in 0..runs {
            let d = tempfile::tempdir().unwrap();
            let cfg = d.path().join("prometheus.yml");
            std::fs::write(&cfg, "global:\n  scrape_interval: 15s\n").unwrap();
            let port = free_port();
            let t0 = Instant::now();
            let p = Proc(
                std::process::Command::new("prometheus")
                    .arg(format!("--config.file={}", cfg.display()))
                    .arg(format!(
                        "--storage.tsdb.path={}",
                        d.path().join("data").display()
                    ))
                    .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .unwrap(),
            );
            while !get_ok(port, "/-/ready") {
                assert!(
                    t0.elapsed() < Duration::from_secs(60),
                    "prometheus did not start"
                );
                std::thread::sleep(Duration::from_micros(500));
            }
            times.push(t0.elapsed().as_secs_f64() * 1000.0);
            if i == 0 {
                std::thread::sleep(Duration::from_secs(10));
                rss = rss_kib(p.0.id());
            }
        }
        println!(
            "prometheus_start_to_ready_ms_empty median {:.1} runs {:?}",
            median(times.clone()),
            times
                .iter()
                .map(|v| (v * 10.0).round() / 10.0)
                .collect::<Vec<_>>()
        );
        println!("prometheus_idle_rss_mib {:.1}", rss as f64 / 1024.0);
    }
}
