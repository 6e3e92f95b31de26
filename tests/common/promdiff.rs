//! Identical data in Sightline and in a real Prometheus 2.42, for the differential PromQL test
//! and the query benchmark: a deterministic generator of scrape-like series, OpenMetrics text
//! that `promtool tsdb create-blocks-from openmetrics` backfills into Prometheus, and the same
//! samples appended to Sightline's store through its append seam.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Sorted label pairs, `__name__` included.
pub type LabelPairs = Vec<(String, String)>;

/// A data set: series with time-ordered samples (ms, value).
pub struct Dataset {
    pub series: Vec<(LabelPairs, Vec<(i64, f64)>)>,
    pub start: i64,
    pub end: i64,
}

/// xorshift64*: deterministic and dependency-free.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in [0, 1).
    pub fn f(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn labels(name: &str, pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    v.push(("__name__".into(), name.into()));
    v.sort();
    v
}

/// Timestamps every `interval` ms from `start` for `n` scrapes, each with up to 400 ms of
/// jitter (still in order), as real scrapes have.
fn times(rng: &mut Rng, start: i64, interval: i64, n: usize) -> Vec<i64> {
    (0..n)
        .map(|i| start + i as i64 * interval + rng.below(400) as i64)
        .collect()
}

/// The differential test's data: counters with resets, gauges with NaN and extreme values,
/// classic histograms, a flaky series with gaps, odd label values. 15 s scrapes for 3 hours.
pub fn generate_mixed(seed: u64) -> Dataset {
    let mut rng = Rng::new(seed);
    let start = 1_700_000_000_000;
    let interval = 15_000;
    let n = 720;
    let end = start + n as i64 * interval;
    let mut series = Vec::new();
    let jobs = ["api", "db"];
    let instances = ["i0", "i1", "i2"];
    for job in jobs {
        for inst in instances {
            for code in ["200", "500"] {
                let mut v = 0.0;
                let ts = times(&mut rng, start, interval, n);
                let samples = ts
                    .into_iter()
                    .map(|t| {
                        if rng.f() < 0.004 {
                            v = rng.below(3) as f64; // counter reset
                        } else {
                            v += rng.below(if code == "200" { 50 } else { 5 }) as f64;
                        }
                        (t, v)
                    })
                    .collect();
                series.push((
                    labels(
                        "demo_requests_total",
                        &[("job", job), ("instance", inst), ("code", code)],
                    ),
                    samples,
                ));
            }
            // A gauge random walk, negative at times.
            let mut g = 20.0 + rng.f() * 10.0;
            let ts = times(&mut rng, start, interval, n);
            let samples = ts
                .into_iter()
                .map(|t| {
                    g += (rng.f() - 0.5) * 4.0;
                    (t, (g * 1000.0).round() / 1000.0)
                })
                .collect();
            series.push((
                labels(
                    "demo_temperature_celsius",
                    &[("job", job), ("instance", inst)],
                ),
                samples,
            ));
            // A classic histogram with cumulative buckets, _sum and _count.
            let bounds = ["0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"];
            let mut counts = [0.0f64; 7];
            let mut sum = 0.0;
            let mut rows: Vec<Vec<(i64, f64)>> = vec![Vec::new(); 9];
            for t in times(&mut rng, start, interval, n) {
                for _ in 0..rng.below(20) {
                    let x = rng.f().powi(3) * 3.0;
                    sum += x;
                    for (i, b) in bounds.iter().enumerate() {
                        let b: f64 = if *b == "+Inf" {
                            f64::INFINITY
                        } else {
                            b.parse().unwrap()
                        };
                        if x <= b {
                            counts[i] += 1.0;
                        }
                    }
                }
                for i in 0..7 {
                    rows[i].push((t, counts[i]));
                }
                rows[7].push((t, (sum * 1e6).round() / 1e6));
                rows[8].push((t, counts[6]));
            }
            for (i, b) in bounds.iter().enumerate() {
                series.push((
                    labels(
                        "demo_latency_seconds_bucket",
                        &[("job", job), ("instance", inst), ("le", b)],
                    ),
                    std::mem::take(&mut rows[i]),
                ));
            }
            series.push((
                labels(
                    "demo_latency_seconds_sum",
                    &[("job", job), ("instance", inst)],
                ),
                std::mem::take(&mut rows[7]),
            ));
            series.push((
                labels(
                    "demo_latency_seconds_count",
                    &[("job", job), ("instance", inst)],
                ),
                std::mem::take(&mut rows[8]),
            ));
        }
    }
    // Gaps: a third of scrapes missing, and a 20-minute outage in the middle.
    for inst in instances {
        let mut v = 0.0;
        let mut samples = Vec::new();
        for (i, t) in times(&mut rng, start, interval, n).into_iter().enumerate() {
            if (300..380).contains(&i) || rng.f() < 0.33 {
                continue;
            }
            v += 1.0 + rng.below(3) as f64;
            samples.push((t, v));
        }
        series.push((labels("demo_flaky_total", &[("instance", inst)]), samples));
    }
    // NaN now and then, extreme magnitudes, and label values JSON must escape.
    let samples = times(&mut rng, start, interval, n)
        .into_iter()
        .map(|t| {
            (
                t,
                if rng.f() < 0.05 {
                    f64::NAN
                } else {
                    rng.f() * 100.0
                },
            )
        })
        .collect();
    series.push((
        labels("demo_sometimes_nan", &[("path", "/a<b>&\"q\"")]),
        samples,
    ));
    let samples = times(&mut rng, start, interval, n)
        .into_iter()
        .map(|t| (t, rng.f() * 1e-7))
        .collect();
    series.push((labels("demo_tiny", &[]), samples));
    let samples = times(&mut rng, start, interval, n)
        .into_iter()
        .map(|t| (t, rng.f() * 1e22))
        .collect();
    series.push((labels("demo_huge", &[]), samples));
    Dataset { series, start, end }
}

/// The benchmark's data over `n` scrapes every `interval` ms: `n_series` counters
/// `bench_requests_total{job, instance}` (ten jobs), a gauge `bench_cpu_usage` for every
/// tenth of them, and a classic histogram `bench_latency_seconds_bucket` (eight buckets) for
/// every fortieth.
pub fn generate_bench(seed: u64, n_series: usize, n: usize, interval: i64) -> Dataset {
    let mut rng = Rng::new(seed);
    let start = 1_700_000_000_000;
    let mut series = Vec::with_capacity(n_series + n_series / 10 + n_series / 5);
    for s in 0..n_series {
        let job = format!("job{}", s % 10);
        let inst = format!("host{s}");
        let mut v = 0.0;
        let samples = times(&mut rng, start, interval, n)
            .into_iter()
            .map(|t| {
                v += rng.below(100) as f64;
                (t, v)
            })
            .collect();
        series.push((
            labels(
                "bench_requests_total",
                &[("job", &job), ("instance", &inst)],
            ),
            samples,
        ));
        if s % 10 == 0 {
            let mut g = 50.0;
            let samples = times(&mut rng, start, interval, n)
                .into_iter()
                .map(|t| {
                    g += rng.f() - 0.5;
                    (t, (g * 100.0).round() / 100.0)
                })
                .collect();
            series.push((
                labels("bench_cpu_usage", &[("job", &job), ("instance", &inst)]),
                samples,
            ));
        }
        if s % 40 == 0 {
            let bounds = ["0.01", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"];
            let mut counts = [0.0f64; 8];
            let mut rows: Vec<Vec<(i64, f64)>> = vec![Vec::new(); 8];
            for t in times(&mut rng, start, interval, n) {
                for _ in 0..rng.below(30) {
                    let x = rng.f().powi(3) * 3.0;
                    for (i, b) in bounds.iter().enumerate() {
                        if *b == "+Inf" || x <= b.parse::<f64>().unwrap() {
                            counts[i] += 1.0;
                        }
                    }
                }
                for i in 0..8 {
                    rows[i].push((t, counts[i]));
                }
            }
            for (i, b) in bounds.iter().enumerate() {
                series.push((
                    labels(
                        "bench_latency_seconds_bucket",
                        &[("job", &job), ("instance", &inst), ("le", b)],
                    ),
                    std::mem::take(&mut rows[i]),
                ));
            }
        }
    }
    Dataset {
        series,
        start,
        end: start + n as i64 * interval,
    }
}

fn om_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn om_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v:?}")
    }
}

/// OpenMetrics text with every series' samples together and timestamps in seconds.
pub fn write_openmetrics(d: &Dataset, path: &Path) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    // Families must be contiguous: group series by name.
    let mut order: Vec<usize> = (0..d.series.len()).collect();
    let name = |i: usize| {
        d.series[i]
            .0
            .iter()
            .find(|(k, _)| k == "__name__")
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    order.sort_by_key(|&i| name(i));
    for i in order {
        let (labels, samples) = &d.series[i];
        let mut desc = name(i);
        let rest: Vec<String> = labels
            .iter()
            .filter(|(k, _)| k != "__name__")
            .map(|(k, v)| format!("{k}=\"{}\"", om_escape(v)))
            .collect();
        if !rest.is_empty() {
            desc = format!("{desc}{{{}}}", rest.join(","));
        }
        for (t, v) in samples {
            writeln!(f, "{desc} {} {}.{:03}", om_value(*v), t / 1000, t % 1000).unwrap();
        }
    }
    writeln!(f, "# EOF").unwrap();
}

/// A running Prometheus 2.42 over backfilled blocks.
pub struct Prometheus {
    child: std::process::Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Backfills `d` with promtool and starts Prometheus on it.
    pub fn start(d: &Dataset) -> Prometheus {
        Prometheus::start_with(d, "global:\n  scrape_interval: 1h\n", &[])
    }

    /// As [`Prometheus::start`], with this `prometheus.yml` and extra flags.
    pub fn start_with(d: &Dataset, config: &str, flags: &[String]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let om = dir.path().join("data.om");
        write_openmetrics(d, &om);
        let data = dir.path().join("data");
        let out = Command::new("promtool")
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            .arg(&om)
            .arg(&data)
            .stdout(Stdio::null())
            .output()
            .unwrap_or_else(|e| {
                panic!("promtool must be installed (apt-get install prometheus): {e}")
            });
        assert!(
            out.status.success(),
            "promtool backfill failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cfg = dir.path().join("prometheus.yml");
        std::fs::write(&cfg, config).unwrap();
        let port = super::free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--storage.tsdb.retention.time=100y")
            .arg("--query.max-samples=50000000")
            .args(flags)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("prometheus must be installed (apt-get install prometheus): {e}")
            });
        let p = Prometheus {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = format!("http://127.0.0.1:{port}/-/ready");
        loop {
            if reqwest::blocking::get(&url).is_ok_and(|r| r.status().is_success()) {
                break;
            }
            assert!(Instant::now() < deadline, "prometheus did not become ready");
            std::thread::sleep(Duration::from_millis(200));
        }
        p
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// Appends `d` to a Sightline store in `data_dir/tsdb` through the append seam, in time
/// order across series (as live ingestion would), and closes the store.
pub fn load_sightline(d: &Dataset, data_dir: &Path) {
    use sightline::tsdb::{Batch, Labels, Tsdb, TsdbConfig, TsdbCounters};
    let (db, threads) = Tsdb::open(
        &data_dir.join("tsdb"),
        TsdbConfig::default(),
        std::sync::Arc::new(TsdbCounters::default()),
    )
    .unwrap();
    let labels: Vec<Labels> = d
        .series
        .iter()
        .map(|(l, _)| Labels::from_pairs(l.iter().map(|(a, b)| (a.as_str(), b.as_str()))))
        .collect();
    let mut pos = vec![0usize; d.series.len()];
    let window = 10 * 60_000;
    let mut t = d.start;
    while t <= d.end + window {
        let mut batch = Batch {
            series: labels.clone(),
            ..Default::default()
        };
        for (i, (_, s)) in d.series.iter().enumerate() {
            while pos[i] < s.len() && s[pos[i]].0 < t + window {
                batch.samples.push((i as u32, s[pos[i]].0, s[pos[i]].1));
                pos[i] += 1;
            }
        }
        if !batch.samples.is_empty() {
            let n = batch.samples.len() as u64;
            let r = db.append_blocking(batch).unwrap();
            assert_eq!(r.appended, n, "not every sample was stored: {r:?}");
        }
        t += window;
    }
    // Cut blocks as the running server would, so queries read blocks as well as the head.
    db.maintain_blocking();
    db.close();
    threads.join();
}

pub fn post(url: &str, form: &[(&str, String)]) -> Value {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
        .finish();
    let r = reqwest::blocking::Client::new()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .unwrap();
    r.json().unwrap()
}

fn num(v: &Value) -> f64 {
    match v.as_str().unwrap() {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        s => s.parse().unwrap(),
    }
}

pub fn close(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

fn point(p: &Value) -> (f64, f64) {
    (p[0].as_f64().unwrap(), num(&p[1]))
}

/// Compares two API answers; `Err` says how they differ.
pub fn compare(p: &Value, s: &Value) -> Result<(), String> {
    if p["status"] != s["status"] {
        return Err(format!("status: prometheus {p}, sightline {s}"));
    }
    if p["status"] == "error" {
        return if p["errorType"] == s["errorType"] {
            Ok(())
        } else {
            Err(format!("errorType: prometheus {p}, sightline {s}"))
        };
    }
    let (pd, sd) = (&p["data"], &s["data"]);
    if pd["resultType"] != sd["resultType"] {
        return Err(format!(
            "resultType: {} vs {}",
            pd["resultType"], sd["resultType"]
        ));
    }
    match pd["resultType"].as_str().unwrap() {
        "scalar" | "string" => {
            let (a, b) = (point(&pd["result"]), point(&sd["result"]));
            if a.0 != b.0 || !close(a.1, b.1) {
                return Err(format!("{a:?} vs {b:?}"));
            }
        }
        kind => {
            let by_labels = |d: &Value| -> BTreeMap<String, Value> {
                d["result"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| (x["metric"].to_string(), x.clone()))
                    .collect()
            };
            let (a, b) = (by_labels(pd), by_labels(sd));
            if a.keys().ne(b.keys()) {
                return Err(format!(
                    "series differ: prometheus {:?}, sightline {:?}",
                    a.keys().collect::<Vec<_>>(),
                    b.keys().collect::<Vec<_>>()
                ));
            }
            for (k, x) in &a {
                let y = &b[k];
                type Points = Vec<(f64, f64)>;
                let (xs, ys): (Points, Points) = if kind == "vector" {
                    (vec![point(&x["value"])], vec![point(&y["value"])])
                } else {
                    (
                        x["values"].as_array().unwrap().iter().map(point).collect(),
                        y["values"].as_array().unwrap().iter().map(point).collect(),
                    )
                };
                if xs.len() != ys.len()
                    || xs
                        .iter()
                        .zip(&ys)
                        .any(|(u, v)| u.0 != v.0 || !close(u.1, v.1))
                {
                    let first = xs
                        .iter()
                        .zip(&ys)
                        .find(|(u, v)| u.0 != v.0 || !close(u.1, v.1));
                    return Err(format!(
                        "{k}: {} vs {} points, first difference {first:?}",
                        xs.len(),
                        ys.len()
                    ));
                }
            }
        }
    }
    Ok(())
}
