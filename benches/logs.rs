//! Logs (issue 24): Loki push ingest with durable acknowledgement, LogQL latency over what was
//! pushed, disk bytes per line, and file collection with durable positions.
//!
//! 1. Push: `--lines N` (1,000,000) logfmt lines over the last hour in 20 streams (`app=a0..a19`,
//!    3 levels), one in 1,000 holding `needle`, as snappy protobuf `PushRequest`s of
//!    `--per-request` (1,000) lines sent over `--concurrency` (4) connections. Reported: lines
//!    and MB (of line text) per second acknowledged, server CPU seconds per million lines.
//! 2. LogQL, each the median of 3 runs: a selective filter (`{app="a7"} |= "needle"`, the hour,
//!    limit 1000) and `sum by (level) (count_over_time({app=~"a.+"}[1m]))` over the hour at a
//!    60 s step.
//! 3. Disk: the data directory's bytes per stored line.
//! 4. Files: a fresh server reads `--file-lines` (500,000) pre-written raw lines through
//!    `[[logs.files]]`; reported: lines per second and per server CPU-second until all are
//!    stored (positions committed with each batch).
//!
//! `cargo bench --bench logs`.

mod common;

use std::io::Write as _;
use std::time::{Duration, Instant};

use common::{Sightline, arg, dir_size};
use prost::Message as _;
use sightline::ingest::loki::{EntryAdapter, PushRequest, StreamAdapter, Timestamp};

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

const LEVELS: [&str; 3] = ["info", "warn", "error"];

fn line(i: usize, rng: &mut common::Rng) -> String {
    let needle = if i % 1000 == 7 { " needle" } else { "" };
    format!(
        "ts={i} level={} method=GET path=/api/v1/items/{} status={} duration={}ms user=u{}{needle}",
        LEVELS[rng.below(3) as usize],
        rng.below(10_000),
        [200, 200, 200, 404, 500][rng.below(5) as usize],
        rng.below(900) + 1,
        rng.below(5000)
    )
}

fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn timed(url: &str) -> (f64, serde_json::Value) {
    let mut times = Vec::new();
    let mut last = serde_json::Value::Null;
    for _ in 0..3 {
        let t = Instant::now();
        let r = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(600))
            .build()
            .unwrap()
            .get(url)
            .send()
            .unwrap();
        assert!(r.status().is_success(), "{url}: {}", r.text().unwrap());
        last = r.json().unwrap();
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    (times[1], last)
}

fn main() {
    let lines = arg("--lines", 1_000_000) as usize;
    let per = arg("--per-request", 1000) as usize;
    let concurrency = arg("--concurrency", 4) as usize;
    let file_lines = arg("--file-lines", 500_000) as usize;
    let mut rng = common::Rng(0x5eed);
    let end = now_ns() - 60_000_000_000;
    let start = end - 3_600_000_000_000;
    let step = (end - start) / lines as i64;
    // Payloads: each request holds `per` consecutive lines, grouped by stream.
    let t0 = Instant::now();
    let mut text_bytes = 0usize;
    let payloads: Vec<Vec<u8>> = (0..lines.div_ceil(per))
        .map(|r| {
            let mut streams: Vec<StreamAdapter> = (0..20)
                .map(|a| StreamAdapter {
                    labels: format!("{{app=\"a{a}\", env=\"bench\"}}"),
                    entries: Vec::new(),
                    hash: 0,
                })
                .collect();
            for i in r * per..((r + 1) * per).min(lines) {
                let l = line(i, &mut rng);
                text_bytes += l.len();
                let ts = start + i as i64 * step;
                streams[i % 20].entries.push(EntryAdapter {
                    timestamp: Some(Timestamp {
                        seconds: ts / 1_000_000_000,
                        nanos: (ts % 1_000_000_000) as i32,
                    }),
                    line: l,
                    structured_metadata: vec![],
                });
            }
            let req = PushRequest { streams };
            snap::raw::Encoder::new()
                .compress_vec(&req.encode_to_vec())
                .unwrap()
        })
        .collect();
    println!(
        "payloads: {lines} lines ({:.1} MB of text) in {} requests, built in {:.1} s",
        text_bytes as f64 / 1e6,
        payloads.len(),
        t0.elapsed().as_secs_f64()
    );

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("push");
    let sl = Sightline::spawn(&data, &[]);
    let pid = sl.child.id();
    let url = format!("http://127.0.0.1:{}/loki/api/v1/push", sl.http);
    let cpu0 = cpu_seconds(pid);
    let t = Instant::now();
    let chunks: Vec<Vec<Vec<u8>>> = {
        let mut c: Vec<Vec<Vec<u8>>> = (0..concurrency).map(|_| Vec::new()).collect();
        for (i, p) in payloads.into_iter().enumerate() {
            c[i % concurrency].push(p);
        }
        c
    };
    let refused = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for mine in &chunks {
            let url = url.clone();
            let refused = &refused;
            s.spawn(move || {
                let c = reqwest::blocking::Client::new();
                for p in mine {
                    // As a Loki client does: a 429 is retried after its Retry-After.
                    loop {
                        let r = c
                            .post(&url)
                            .header("Content-Type", "application/x-protobuf")
                            .body(p.clone())
                            .send()
                            .unwrap();
                        if r.status().as_u16() == 429 {
                            refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let wait = r
                                .headers()
                                .get("Retry-After")
                                .and_then(|v| v.to_str().ok())
                                .and_then(|v| v.parse::<u64>().ok())
                                .unwrap_or(1);
                            std::thread::sleep(Duration::from_secs(wait));
                            continue;
                        }
                        assert_eq!(r.status().as_u16(), 204, "{:?}", r.text());
                        break;
                    }
                }
            });
        }
    });
    let secs = t.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu0;
    println!(
        "push: {:.0} lines/s, {:.1} MB/s of text acknowledged (durable), {:.2} server CPU-s per million lines ({:.0} lines per CPU-second); {} requests answered 429 and retried",
        lines as f64 / secs,
        text_bytes as f64 / 1e6 / secs,
        cpu / (lines as f64 / 1e6),
        lines as f64 / cpu,
        refused.into_inner()
    );
    let base = format!("http://127.0.0.1:{}", sl.http);
    let (s_sel, v) = timed(&format!(
        "{base}/loki/api/v1/query_range?query={}&start={start}&end={}&limit=1000",
        encode(r#"{app="a7"} |= "needle""#),
        end + 1
    ));
    let found: usize = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["values"].as_array().unwrap().len())
        .sum();
    println!(
        "logql selective filter over {lines} lines: {:.3} s (median of 3), {found} lines found",
        s_sel
    );
    let (s_agg, v) = timed(&format!(
        "{base}/loki/api/v1/query_range?query={}&start={start}&end={end}&step=60",
        encode(r#"sum by (level) (count_over_time({app=~"a.+"}[1m]))"#)
    ));
    let total: f64 = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["values"].as_array().unwrap().clone())
        .map(|p| p[1].as_str().unwrap().parse::<f64>().unwrap())
        .sum();
    println!(
        "logql sum by (level) (count_over_time([1m])) over the hour, 60 s step: {:.3} s (median of 3), {total} lines counted",
        s_agg
    );
    drop(sl);
    println!(
        "disk: {:.1} bytes per line ({:.1} MB for {lines} lines)",
        dir_size(&data) as f64 / lines as f64,
        dir_size(&data) as f64 / 1e6
    );

    // File collection.
    let logs = dir.path().join("files");
    std::fs::create_dir_all(&logs).unwrap();
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(logs.join("app.log")).unwrap());
        for i in 0..file_lines {
            writeln!(f, "{}", line(i, &mut rng)).unwrap();
        }
    }
    let cfg = dir.path().join("files.toml");
    std::fs::write(
        &cfg,
        format!(
            "[logs]\nread_budget = \"1MiB\"\n[[logs.files]]\ninclude = [\"{}/*.log\"]\nlabels = {{ job = \"bench\" }}\n",
            logs.display()
        ),
    )
    .unwrap();
    let t = Instant::now();
    let sl = Sightline::spawn(
        &dir.path().join("fdata"),
        &[("SIGHTLINE_CONFIG", cfg.to_str().unwrap())],
    );
    let pid = sl.child.id();
    let stats = format!(
        "http://127.0.0.1:{}/loki/api/v1/index/stats?query={}&start=0",
        sl.http,
        encode(r#"{job="bench"}"#)
    );
    loop {
        let v: serde_json::Value = reqwest::blocking::get(&stats).unwrap().json().unwrap();
        if v["entries"].as_u64().unwrap_or(0) >= file_lines as u64 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(1800),
            "file collection stalled: {v}"
        );
        // Each count scans the stored lines; look seldom so it weighs little in the CPU figure.
        std::thread::sleep(Duration::from_secs(2));
    }
    let secs = t.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid);
    println!(
        "files: {file_lines} lines stored in {secs:.1} s (including start-up; checked every 2 s, and each check's scan counts in the CPU): {:.0} lines/s, {:.0} lines per server CPU-second",
        file_lines as f64 / secs,
        file_lines as f64 / cpu
    );
}
