//! PromQL query speed, side by side with a real Prometheus 2.42 on identical data in one run
//! (issue 4). Generates 2,000 counter series (plus gauges and histograms) scraped every 30 s
//! for ~17 hours, backfills them into Prometheus with promtool, appends them to Sightline's
//! store, starts both servers, checks that every query gets the same answer from both, then
//! times each query over HTTP (median of several runs, the servers taking turns).
//!
//! `cargo bench --bench promql` (needs `prometheus` and `promtool`: `apt-get install
//! prometheus`). Options: `--series N` (2000), `--runs N` (9). `--profile [--query Q]` runs
//! one query in-process in a loop instead (for `perf record`), without Prometheus or HTTP.

#[path = "../tests/common/promdiff.rs"]
mod promdiff;

mod common;

use std::time::{Duration, Instant};

use common::{Sightline, arg, free_port};
use promdiff::{Prometheus, compare, generate_bench, load_sightline, post};

/// Sightline on `dir`, ready to answer queries.
fn spawn_sightline(dir: &std::path::Path) -> Sightline {
    let s = Sightline::spawn(dir, &[]);
    let deadline = Instant::now() + Duration::from_secs(120);
    let ready = format!("http://127.0.0.1:{}/readyz", s.http);
    while !reqwest::blocking::get(&ready).is_ok_and(|r| r.status().is_success()) {
        assert!(Instant::now() < deadline, "sightline did not become ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    s
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let n_series = arg("--series", 2000) as usize;
    let runs = arg("--runs", 9) as usize;
    let interval = 30_000;
    let steps = 1000;
    let step_s = 60;
    // Enough scrapes to cover 1,000 one-minute steps plus the 1-hour windows before them.
    let scrapes = ((steps as i64 * step_s * 1000 + 3_900_000) / interval) as usize;
    let t = Instant::now();
    let data = generate_bench(1, n_series, scrapes, interval);
    let samples: usize = data.series.iter().map(|s| s.1.len()).sum();
    println!(
        "data: {} series, {samples} samples, generated in {:.1}s",
        data.series.len(),
        t.elapsed().as_secs_f64()
    );
    if std::env::args().any(|a| a == "--profile") {
        // In-process loop over one query, for `perf record` (no Prometheus, no HTTP).
        let dir = tempfile::tempdir().unwrap();
        load_sightline(&data, dir.path());
        let (db, _threads) = sightline::tsdb::Tsdb::open(
            &dir.path().join("tsdb"),
            Default::default(),
            Default::default(),
        )
        .unwrap();
        let engine = sightline::promql::Engine::new(Default::default());
        let end = data.start + 3_900_000 + steps as i64 * step_s * 1000;
        let start = end - (steps as i64 - 1) * step_s * 1000;
        let q = std::env::args()
            .skip_while(|a| a != "--query")
            .nth(1)
            .unwrap_or("sum by (job) (rate(bench_requests_total[5m]))".into());
        let e = sightline::promql::parse(&q).unwrap();
        let t = Instant::now();
        for _ in 0..runs {
            engine
                .range(&db, &e, start, end, step_s * 1000, None)
                .unwrap();
        }
        println!(
            "{q}: {:.1} ms per query",
            t.elapsed().as_secs_f64() * 1000.0 / runs as f64
        );
        return;
    }
    let t = Instant::now();
    let prom = Prometheus::start(&data);
    println!(
        "prometheus: backfilled and ready in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    load_sightline(&data, dir.path());
    let sl = spawn_sightline(dir.path());
    println!(
        "sightline: loaded and ready in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let (pu, su) = (prom.url(), format!("http://127.0.0.1:{}", sl.http));

    let end = data.start / 1000 + 3900 + steps as i64 * step_s;
    let start = end - (steps as i64 - 1) * step_s;
    let main_q = "sum by (job) (rate(bench_requests_total[5m]))";
    let corpus = [
        main_q,
        "sum(rate(bench_requests_total[5m]))",
        "topk(5, rate(bench_requests_total[5m]))",
        "sum by (job) (increase(bench_requests_total[1h]))",
        "rate(bench_requests_total{instance=\"host7\"}[5m])",
        "avg by (job) (bench_cpu_usage)",
        "max_over_time(bench_cpu_usage[10m])",
        "quantile(0.95, bench_cpu_usage)",
        "bench_cpu_usage > 50",
        "histogram_quantile(0.99, sum by (le) (rate(bench_latency_seconds_bucket[5m])))",
        "histogram_quantile(0.9, sum by (job, le) (rate(bench_latency_seconds_bucket[5m])))",
        "sum by (job) (rate(bench_requests_total[5m])) / on (job) group_left count by (job) (bench_cpu_usage)",
        "count(bench_requests_total)",
        "avg_over_time(bench_cpu_usage[30m:1m])",
    ];
    let form = |q: &str| {
        vec![
            ("query", q.to_string()),
            ("start", start.to_string()),
            ("end", end.to_string()),
            ("step", step_s.to_string()),
        ]
    };
    // Same answers first (also warms both servers' caches).
    for q in corpus {
        let p = post(&format!("{pu}/api/v1/query_range"), &form(q));
        let s = post(&format!("{su}/api/v1/query_range"), &form(q));
        assert_eq!(p["status"], "success", "{q}: {p}");
        if let Err(e) = compare(&p, &s) {
            panic!("{q}: answers differ: {e}");
        }
    }
    println!(
        "answers: all {} queries agree with prometheus",
        corpus.len()
    );
    println!(
        "\n{:<100} {:>10} {:>10} {:>7}",
        format!("range query, {steps} steps of {step_s}s"),
        "prom ms",
        "sightline",
        "ratio"
    );
    let (mut sum_p, mut sum_s, mut log_ratio) = (0.0, 0.0, 0.0);
    let client = reqwest::blocking::Client::new();
    let time = |url: &str, q: &str| {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form(q).iter().map(|(k, v)| (*k, v.as_str())))
            .finish();
        let t = Instant::now();
        let r = client
            .post(format!("{url}/api/v1/query_range"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .unwrap();
        assert!(r.status().is_success());
        let _ = r.bytes().unwrap();
        t.elapsed().as_secs_f64() * 1000.0
    };
    let mut main_ratio = 0.0;
    for q in corpus {
        let (mut tp, mut ts) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            tp.push(time(&pu, q));
            ts.push(time(&su, q));
        }
        let (mp, ms) = (median(tp), median(ts));
        sum_p += mp;
        sum_s += ms;
        log_ratio += (mp / ms).ln();
        if q == main_q {
            main_ratio = mp / ms;
        }
        println!("{q:<100} {mp:>10.1} {ms:>10.1} {:>6.2}x", mp / ms);
    }
    println!(
        "\nmain query ({main_q}): sightline {main_ratio:.2}x faster than prometheus\n\
         corpus: total {sum_p:.1} ms vs {sum_s:.1} ms = {:.2}x; geometric mean of ratios {:.2}x",
        sum_p / sum_s,
        (log_ratio / corpus.len() as f64).exp()
    );
}
