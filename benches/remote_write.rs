//! Remote write in, side by side with Prometheus 2.42's receiver (`--web.enable-remote-write-
//! receiver`) in one run (issue 22): the same pre-encoded remote write 1.0 payloads (10,000
//! samples per request, one sample per series per round, 200,000 series by default: 20 metric
//! names x 10,000 label sets over 200 jobs) sent to each in turn over the same number of
//! connections, round after round (a round's requests all answered before the next starts, so
//! no sample is out of order). Reported per server: samples per second acknowledged (wall), CPU
//! seconds of the server process per million samples (utime + stime from /proc), and the
//! ratio of samples per CPU-second. Refused samples are counted and must be zero.
//!
//! `cargo bench --bench remote_write` (needs `prometheus`). Options: `--series N` (200000),
//! `--rounds N` (10), `--per-request N` (10000), `--concurrency N` (2).

mod common;

use std::time::{Duration, Instant};

use common::{Sightline, arg, free_port};
use prost::Message as _;
use sightline::ingest::remote_write::{Label, Sample, TimeSeries, WriteRequest};

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

/// Rounds of snappy-compressed requests.
fn payloads(series: usize, rounds: usize, per: usize, start_ms: i64) -> Vec<Vec<Vec<u8>>> {
    let labels: Vec<Vec<Label>> = (0..series)
        .map(|i| {
            let l = |n: &str, v: String| Label {
                name: n.into(),
                value: v,
            };
            vec![
                l("__name__", format!("rw_bench_metric_{}", i % 20)),
                l("instance", format!("host-{}:9100", (i / 20) % 10_000)),
                l("job", format!("job-{}", i % 200)),
                l("region", format!("r{}", i % 7)),
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

/// Sends every round to `url`; (wall seconds, refused requests).
fn send(url: &str, rounds: &[Vec<Vec<u8>>], concurrency: usize) -> (f64, usize) {
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
                            let r = client
                                .post(url)
                                .header("Content-Type", "application/x-protobuf")
                                .header("Content-Encoding", "snappy")
                                .header("X-Prometheus-Remote-Write-Version", "0.1.0")
                                .body(body.clone())
                                .send()
                                .unwrap();
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
    let data = payloads(series, rounds, per, start);
    let total = (series * rounds) as f64;
    let bytes: usize = data.iter().flatten().map(Vec::len).sum();
    println!(
        "payloads: {series} series x {rounds} rounds = {total} samples in {} requests of {per}, {:.1} MB snappy, built in {:.1} s",
        data.iter().map(Vec::len).sum::<usize>(),
        bytes as f64 / 1e6,
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
    for (name, url, pid) in [
        (
            "prometheus 2.42",
            format!("http://127.0.0.1:{port}/api/v1/write"),
            prom.id(),
        ),
        (
            "sightline",
            format!("http://127.0.0.1:{}/api/v1/write", sl.http),
            sl.child.id(),
        ),
    ] {
        let c0 = cpu_seconds(pid);
        let (wall, refused) = send(&url, &data, concurrency);
        let cpu = cpu_seconds(pid) - c0;
        println!(
            "{name:16} {:>10.0} samples/s acknowledged, {:.3} CPU s per million samples, {:>10.0} samples per CPU-second, {refused} requests refused",
            total / wall,
            cpu / (total / 1e6),
            total / cpu
        );
        rows.push((total / wall, total / cpu));
    }
    println!(
        "sightline / prometheus: {:.2}x samples per second, {:.2}x samples per CPU-second (target at least 3x)",
        rows[1].0 / rows[0].0,
        rows[1].1 / rows[0].1
    );
    let _ = prom.kill();
    let _ = prom.wait();
}
