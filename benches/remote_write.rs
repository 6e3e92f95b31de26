//! Metrics at high cardinality (issues 22 and 25), side by side with Prometheus 2.42's receiver
//! (`--web.enable-remote-write-receiver`) in one run: 200,000 series by default, shaped as 200
//! targets (each one OTLP resource: `service.name` -> `job`, `service.instance.id` -> `instance`,
//! and 14 more resource attributes as real SDKs send, which go to `target_info`) exporting 20
//! metric names x 50 point-attribute sets (`shard`, `region`), one sample per series per round.
//! The same series go three ways, each pre-encoded, 10,000 samples per request, round after
//! round (a round's requests all answered before the next starts, so no sample is out of
//! order): remote write 1.0 into Prometheus, remote write into Sightline, and OTLP/HTTP
//! protobuf into Sightline. Reported per leg: samples per second acknowledged (wall), CPU
//! seconds of the server process per million samples (utime + stime from /proc), samples per
//! CPU-second, the server's RSS at the end, and the ratios to Prometheus. Refused requests are
//! counted and must be zero.
//!
//! `cargo bench --bench remote_write` (needs `prometheus`). Options: `--series N` (200000, a
//! multiple of 1,000), `--rounds N` (10), `--per-request N` (10000), `--concurrency N` (2).

mod common;

use std::time::{Duration, Instant};

use common::{Sightline, arg, free_port};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message as _;
use sightline::ingest::remote_write::{Label, Sample, TimeSeries, WriteRequest};

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

/// Series per target: 20 metric names x 50 point-attribute sets.
const PER_TARGET: usize = 1000;

/// Series `i`: (target, metric name, shard).
fn series_of(i: usize) -> (usize, usize, usize) {
    (i / PER_TARGET, (i % PER_TARGET) % 20, (i % PER_TARGET) / 20)
}

fn region(target: usize, shard: usize) -> String {
    format!("r{}", (target + shard) % 7)
}

fn kv(k: &str, v: String) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v)),
        }),
        ..Default::default()
    }
}

/// Remote write: rounds of snappy-compressed requests of `per` series.
fn payloads(series: usize, rounds: usize, per: usize, start_ms: i64) -> Vec<Vec<Vec<u8>>> {
    let labels: Vec<Vec<Label>> = (0..series)
        .map(|i| {
            let (t, m, k) = series_of(i);
            let l = |n: &str, v: String| Label {
                name: n.into(),
                value: v,
            };
            vec![
                l("__name__", format!("bench_metric_{m}")),
                l("instance", format!("target-{t}:9100")),
                l("job", format!("job-{t}")),
                l("region", region(t, k)),
                l("shard", format!("s{k}")),
            ]
        })
        .collect();
    (0..rounds)
        .map(|r| {
            let t = start_ms + r as i64 * 15_000;
            labels
                .chunks(per)
                .map(|chunk| {
                    let req = WriteRequest {
                        timeseries: chunk
                            .iter()
                            .enumerate()
                            .map(|(k, l)| TimeSeries {
                                labels: l.clone(),
                                samples: vec![Sample {
                                    value: (r * 31 + k) as f64,
                                    timestamp: t,
                                }],
                                histograms: vec![],
                                exemplars: vec![],
                            })
                            .collect(),
                        metadata: vec![],
                    };
                    snap::raw::Encoder::new()
                        .compress_vec(&req.encode_to_vec())
                        .unwrap()
                })
                .collect()
        })
        .collect()
}

/// OTLP: the same series and values as [`payloads`], as `ExportMetricsServiceRequest`s of `per`
/// points, one `ResourceMetrics` per target with 16 resource attributes, one gauge per name.
fn otlp_payloads(series: usize, rounds: usize, per: usize, start_ms: i64) -> Vec<Vec<Vec<u8>>> {
    let resource = |t: usize| Resource {
        attributes: vec![
            kv("service.name", format!("job-{t}")),
            kv("service.instance.id", format!("target-{t}:9100")),
            kv("service.version", "2.14.1".into()),
            kv("host.name", format!("node-{}", t % 40)),
            kv("host.arch", "amd64".into()),
            kv("os.type", "linux".into()),
            kv("k8s.namespace.name", format!("team-{}", t % 12)),
            kv("k8s.pod.name", format!("job-{t}-7d9f8b-x2k4p")),
            kv("k8s.node.name", format!("node-{}", t % 40)),
            kv("k8s.deployment.name", format!("job-{t}")),
            kv("cloud.provider", "gcp".into()),
            kv("cloud.region", "europe-west4".into()),
            kv("deployment.environment", "production".into()),
            kv("telemetry.sdk.name", "opentelemetry".into()),
            kv("telemetry.sdk.language", "go".into()),
            kv("telemetry.sdk.version", "1.28.0".into()),
        ],
        ..Default::default()
    };
    (0..rounds)
        .map(|r| {
            let ts = (start_ms + r as i64 * 15_000) as u64 * 1_000_000;
            (0..series)
                .collect::<Vec<usize>>()
                .chunks(per)
                .map(|chunk| {
                    // Points of this request grouped by target, then by metric name.
                    let mut by_target: Vec<(usize, Vec<Vec<NumberDataPoint>>)> = Vec::new();
                    for (k, &i) in chunk.iter().enumerate() {
                        let (t, m, sh) = series_of(i);
                        if by_target.last().is_none_or(|(last, _)| *last != t) {
                            by_target.push((t, vec![Vec::new(); 20]));
                        }
                        let point = NumberDataPoint {
                            attributes: vec![
                                kv("shard", format!("s{sh}")),
                                kv("region", region(t, sh)),
                            ],
                            time_unix_nano: ts,
                            value: Some(number_data_point::Value::AsDouble((r * 31 + k) as f64)),
                            ..Default::default()
                        };
                        by_target.last_mut().unwrap().1[m].push(point);
                    }
                    let req = ExportMetricsServiceRequest {
                        resource_metrics: by_target
                            .into_iter()
                            .map(|(t, names)| ResourceMetrics {
                                resource: Some(resource(t)),
                                scope_metrics: vec![ScopeMetrics {
                                    metrics: names
                                        .into_iter()
                                        .enumerate()
                                        .filter(|(_, p)| !p.is_empty())
                                        .map(|(m, data_points)| Metric {
                                            name: format!("bench_metric_{m}"),
                                            data: Some(metric::Data::Gauge(Gauge { data_points })),
                                            ..Default::default()
                                        })
                                        .collect(),
                                    ..Default::default()
                                }],
                                ..Default::default()
                            })
                            .collect(),
                    };
                    req.encode_to_vec()
                })
                .collect()
        })
        .collect()
}

fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

/// Sends every round to `url` (remote write, or OTLP when `otlp`); (wall seconds, refused
/// requests).
fn send(url: &str, rounds: &[Vec<Vec<u8>>], concurrency: usize, otlp: bool) -> (f64, usize) {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let started = Instant::now();
    let mut refused = 0;
    for round in rounds {
        let chunks: Vec<&[Vec<u8>]> = round.chunks(round.len().div_ceil(concurrency)).collect();
        let results: Vec<usize> = std::thread::scope(|s| {
            let hs: Vec<_> = chunks
                .iter()
                .map(|part| {
                    let client = client.clone();
                    s.spawn(move || {
                        let mut bad = 0;
                        for body in part.iter() {
                            let mut req = client
                                .post(url)
                                .header("Content-Type", "application/x-protobuf");
                            if !otlp {
                                req = req
                                    .header("Content-Encoding", "snappy")
                                    .header("X-Prometheus-Remote-Write-Version", "0.1.0");
                            }
                            let r = req.body(body.clone()).send().unwrap();
                            if !r.status().is_success() {
                                bad += 1;
                            }
                        }
                        bad
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        refused += results.iter().sum::<usize>();
    }
    (started.elapsed().as_secs_f64(), refused)
}

fn main() {
    let series = arg("--series", 200_000) as usize;
    let rounds = arg("--rounds", 10) as usize;
    let per = arg("--per-request", 10_000) as usize;
    let concurrency = arg("--concurrency", 2) as usize;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let start = now - rounds as i64 * 15_000;
    let t0 = Instant::now();
    assert!(
        series.is_multiple_of(PER_TARGET),
        "--series must be a multiple of 1000"
    );
    let data = payloads(series, rounds, per, start);
    let otlp = otlp_payloads(series, rounds, per, start);
    let total = (series * rounds) as f64;
    let bytes: usize = data.iter().flatten().map(Vec::len).sum();
    println!(
        "payloads: {series} series ({} targets) x {rounds} rounds = {total} samples in {} requests of {per}; remote write {:.1} MB snappy, OTLP {:.1} MB; built in {:.1} s",
        series / PER_TARGET,
        data.iter().map(Vec::len).sum::<usize>(),
        bytes as f64 / 1e6,
        otlp.iter().flatten().map(Vec::len).sum::<usize>() as f64 / 1e6,
        t0.elapsed().as_secs_f64()
    );
    let dir = tempfile::tempdir().unwrap();
    // Prometheus 2.42 with its receiver on.
    let port = free_port();
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(&cfg, "global:\n  scrape_interval: 1h\n").unwrap();
    let mut prom = std::process::Command::new("prometheus")
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("prom").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--web.enable-remote-write-receiver")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("prometheus must be installed (apt-get install prometheus)");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !reqwest::blocking::get(format!("http://127.0.0.1:{port}/-/ready"))
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "prometheus did not start");
        std::thread::sleep(Duration::from_millis(200));
    }
    let sl = Sightline::spawn(
        &dir.path().join("sl"),
        &[
            ("SIGHTLINE_RULES_BUILTIN", "false"),
            ("SIGHTLINE_SPANMETRICS_ENABLED", "false"),
        ],
    );
    std::thread::sleep(Duration::from_secs(2));
    let mut rows = Vec::new();
    let legs = [
        (
            "prometheus 2.42, remote write",
            format!("http://127.0.0.1:{port}/api/v1/write"),
            prom.id(),
            &data,
            false,
        ),
        (
            "sightline, remote write",
            format!("http://127.0.0.1:{}/api/v1/write", sl.http),
            sl.child.id(),
            &data,
            false,
        ),
    ];
    for (name, url, pid, payload, is_otlp) in legs {
        let c0 = cpu_seconds(pid);
        let (wall, refused) = send(&url, payload, concurrency, is_otlp);
        let cpu = cpu_seconds(pid) - c0;
        let rss = rss_mb(pid);
        println!(
            "{name:32} {:>10.0} samples/s acknowledged, {:.3} CPU s per million samples, {:>10.0} samples per CPU-second, RSS {rss:.0} MB, {refused} requests refused",
            total / wall,
            cpu / (total / 1e6),
            total / cpu
        );
        rows.push((name, total / wall, total / cpu, rss));
    }
    // OTLP into a fresh Sightline, so its RSS and CPU are the OTLP path's alone.
    drop(sl);
    let sl = Sightline::spawn(
        &dir.path().join("sl-otlp"),
        &[
            ("SIGHTLINE_RULES_BUILTIN", "false"),
            ("SIGHTLINE_SPANMETRICS_ENABLED", "false"),
        ],
    );
    std::thread::sleep(Duration::from_secs(2));
    let pid = sl.child.id();
    let c0 = cpu_seconds(pid);
    let (wall, refused) = send(
        &format!("http://127.0.0.1:{}/v1/metrics", sl.otlp_http),
        &otlp,
        concurrency,
        true,
    );
    let cpu = cpu_seconds(pid) - c0;
    let rss = rss_mb(pid);
    println!(
        "{:32} {:>10.0} samples/s acknowledged, {:.3} CPU s per million samples, {:>10.0} samples per CPU-second, RSS {rss:.0} MB, {refused} requests refused",
        "sightline, OTLP/HTTP",
        total / wall,
        cpu / (total / 1e6),
        total / cpu
    );
    rows.push(("sightline, OTLP/HTTP", total / wall, total / cpu, rss));
    for r in &rows[1..] {
        println!(
            "{} / prometheus: {:.2}x samples per second, {:.2}x samples per CPU-second (target at least 3x), RSS {:.2}x (target at most 0.3x)",
            r.0,
            r.1 / rows[0].1,
            r.2 / rows[0].2,
            r.3 / rows[0].3
        );
    }
    let _ = prom.kill();
    let _ = prom.wait();
}
