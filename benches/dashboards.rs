//! The Dashboards page's speed (issue 23): Node Exporter Full with every row expanded, over
//! 24 hours of 15-second data for one host, in headless Chromium. The host's series are those of
//! a real node-exporter (Debian's, scraped once for its series and values), extended into 24 h
//! of history (counters rising, gauges wandering) and appended to Sightline's store; the
//! dashboard is imported through the JSON import endpoint; `benches/dashboard_page.py` opens it
//! in a fresh browser each run (1600x1000), expands every row, and reports the time from navigation to the last panel drawn and the bytes transferred.
//!
//! `cargo bench --bench dashboards` (needs `prometheus-node-exporter`, Chromium and Playwright;
//! `scripts/test` installs them). Options: `--runs N` (5).

#[path = "../tests/common/promdiff.rs"]
mod promdiff;

#[path = "../tests/common/dashspec.rs"]
mod dashspec;

mod common;

use std::time::{Duration, Instant};

use common::{Rng, Sightline, arg, free_port};

fn main() {
    let runs = arg("--runs", 5);
    let dir = tempfile::tempdir().unwrap();
    let ne_port = free_port();
    let mut ne = std::process::Command::new("prometheus-node-exporter")
        .arg(format!("--web.listen-address=127.0.0.1:{ne_port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect(
            "prometheus-node-exporter must be installed (apt-get install prometheus-node-exporter)",
        );
    let url = format!("http://127.0.0.1:{ne_port}/metrics");
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        if let Ok(r) = reqwest::blocking::get(&url)
            && let Ok(t) = r.text()
        {
            break t;
        }
        assert!(Instant::now() < deadline, "node-exporter did not answer");
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = ne.kill();
    let _ = ne.wait();
    let parsed =
        sightline::scrape::exposition::parse(&text, sightline::scrape::exposition::Format::Text)
            .expect("node-exporter's exposition parses");
    let instance = "bench-host:9100";

    // 24 h of 15 s samples ending now.
    let step = 15_000i64;
    let end = sightline::base::clock::now_ms() / step * step;
    let start = end - 24 * 3_600_000;
    let n = ((end - start) / step + 1) as usize;
    let mut rng = Rng(0x5eed);
    let mut series = Vec::new();
    for s in &parsed.samples {
        let name = s.labels[0].1.clone();
        let family = ["_bucket", "_count", "_sum", "_total"]
            .iter()
            .find_map(|suf| name.strip_suffix(suf))
            .unwrap_or(&name);
        let counter = name.ends_with("_total")
            || name.ends_with("_bucket")
            || name.ends_with("_count")
            || name.ends_with("_sum")
            || parsed.meta.get(family).is_some_and(|m| m.kind == "counter");
        let mut labels: Vec<(String, String)> = s.labels.clone();
        labels[0] = ("__name__".into(), name.clone());
        labels.push(("instance".into(), instance.into()));
        labels.push(("job".into(), "node".into()));
        labels.sort();
        let v0 = if s.value.is_finite() { s.value } else { 0.0 };
        let mut samples = Vec::with_capacity(n);
        let mut v = if counter { v0 / 2.0 } else { v0 };
        let inc = (v0.abs() / 2.0 / n as f64).max(0.001);
        for i in 0..n {
            let t = start + i as i64 * step;
            let x = if counter {
                v += inc * (0.5 + rng.f());
                v
            } else if name.ends_with("_info") || v0 == 0.0 {
                v0
            } else {
                v0 * (1.0 + 0.05 * ((i as f64) / 240.0).sin() + 0.01 * (rng.f() - 0.5))
            };
            samples.push((t, x));
        }
        series.push((labels, samples));
    }
    let n_series = series.len();
    let data = promdiff::Dataset { series, start, end };
    let t0 = Instant::now();
    promdiff::load_sightline(&data, &dir.path().join("data"));
    eprintln!(
        "loaded {n_series} node-exporter series x {n} samples ({:.1} M) in {:.1} s",
        (n_series * n) as f64 / 1e6,
        t0.elapsed().as_secs_f64()
    );
    drop(data);

    let sl = Sightline::spawn(&dir.path().join("data"), &[]);
    let base = format!("http://127.0.0.1:{}", sl.http);
    let nef = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/dashboards/node-exporter-full.json"),
    )
    .unwrap();
    let r = reqwest::blocking::Client::new()
        .post(format!("{base}/ui/dashboards/import"))
        .header("content-type", "application/json")
        .body(nef)
        .send()
        .unwrap();
    assert!(r.status().is_success(), "import: {}", r.text().unwrap());
    let nodename = parsed
        .samples
        .iter()
        .find(|s| s.labels[0].1 == "node_uname_info")
        .and_then(|s| s.labels.iter().find(|(k, _)| k == "nodename"))
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let page = format!(
        "{base}/ui/dashboards/rYdddlPWk?var-job=node&var-nodename={}&var-node={instance}&from=now-24h&to=now&refresh=",
        form_urlencoded::byte_serialize(nodename.as_bytes()).collect::<String>()
    );
    let status = std::process::Command::new("python3")
        .arg(format!(
            "{}/benches/dashboard_page.py",
            env!("CARGO_MANIFEST_DIR")
        ))
        .args(["--url", &page, "--runs", &runs.to_string()])
        .status()
        .expect("python3 with Playwright must be installed");
    assert!(status.success(), "the page benchmark failed");

    // The server's share: every panel query of the page, one after another, over HTTP.
    let html = reqwest::blocking::get(&page).unwrap().text().unwrap();
    let client = reqwest::blocking::Client::new();
    let queries: Vec<serde_json::Value> = dashspec::specs(&html)
        .iter()
        .flat_map(|spec| spec["targets"].as_array().cloned().unwrap_or_default())
        .collect();
    let mut times = Vec::new();
    let mut bytes = 0usize;
    for _ in 0..3 {
        let t0 = Instant::now();
        bytes = 0;
        for t in &queries {
            let s = |k: &str| format!("{}", t[k].as_f64().unwrap_or(0.0) / 1000.0);
            let r = if t["instant"].as_bool() == Some(true) {
                client
                    .get(format!("{base}/api/v1/query"))
                    .query(&[
                        ("query", t["expr"].as_str().unwrap().to_string()),
                        ("time", s("time")),
                    ])
                    .send()
            } else {
                client
                    .get(format!("{base}/api/v1/query_range"))
                    .query(&[
                        ("query", t["expr"].as_str().unwrap().to_string()),
                        ("start", s("start")),
                        ("end", s("end")),
                        ("step", s("step")),
                    ])
                    .send()
            };
            bytes += r.unwrap().bytes().unwrap().len();
        }
        times.push(t0.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    eprintln!(
        "server alone: the page's {} queries one after another in {:.2} s (median of 3), {:.1} MiB of JSON before gzip",
        queries.len(),
        times[1],
        bytes as f64 / (1 << 20) as f64
    );
}
