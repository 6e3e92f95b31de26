//! What the built-in host and GPU samplers cost (issue 5), at a 1 s interval: CPU time the
//! sampler threads report (`sightline_sampler_cpu_seconds_total`, measured with
//! CLOCK_THREAD_CPUTIME_ID around each round, storing included) over wall time. Beside it, as
//! a peer, Debian's `prometheus-node-exporter` 1.5 scraped once a second for the same time
//! (its process CPU time from /proc/<pid>/stat). The GPU sampler runs against the stub NVML
//! library from the tests (no GPU here), so its figure is Sightline's own work per round, not
//! the driver's.
//!
//! `cargo bench --bench samplers -- [--seconds 60]`

mod common;
use common::{Sightline, arg};

use std::time::{Duration, Instant};

fn counters(port: u16) -> (f64, f64, f64, f64) {
    let text = reqwest::blocking::get(format!("http://127.0.0.1:{port}/metrics"))
        .unwrap()
        .text()
        .unwrap();
    let get = |k: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    (
        get("sightline_sampler_cpu_seconds_total{sampler=\"host\"}"),
        get("sightline_sampler_rounds_total{sampler=\"host\"}"),
        get("sightline_sampler_cpu_seconds_total{sampler=\"gpu\"}"),
        get("sightline_sampler_rounds_total{sampler=\"gpu\"}"),
    )
}

/// utime + stime of a process, in seconds.
fn proc_cpu(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / hz
}

fn main() {
    let seconds = arg("--seconds", 60);
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("libnvidia-ml-stub.so");
    let st = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&lib)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/nvml_stub/nvml_stub.c"
        ))
        .status()
        .expect("cc");
    assert!(st.success());
    let lib_s = lib.to_str().unwrap();
    let sl = Sightline::spawn(
        &dir.path().join("data"),
        &[
            ("SIGHTLINE_LOG_LEVEL", "error"),
            ("SIGHTLINE_HOST_ENABLED", "true"),
            ("SIGHTLINE_GPU_ENABLED", "true"),
            ("SIGHTLINE_HOST_INTERVAL", "1s"),
            ("SIGHTLINE_GPU_INTERVAL", "1s"),
            ("SIGHTLINE_GPU_LIBRARY", lib_s),
        ],
    );
    let port = sl.http;
    let ne_port = common::free_port();
    let mut ne = std::process::Command::new("prometheus-node-exporter")
        .arg(format!("--web.listen-address=127.0.0.1:{ne_port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok();
    std::thread::sleep(Duration::from_secs(3));
    let (h0, hr0, g0, gr0) = counters(port);
    let ne_cpu0 = ne.as_ref().map(|c| proc_cpu(c.id()));
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(seconds) {
        if ne.is_some() {
            let _ = reqwest::blocking::get(format!("http://127.0.0.1:{ne_port}/metrics"))
                .and_then(|r| r.bytes());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let wall = t0.elapsed().as_secs_f64();
    let (h1, hr1, g1, gr1) = counters(port);
    let ne_cpu1 = ne.as_ref().map(|c| proc_cpu(c.id()));
    drop(sl);
    if let Some(c) = ne.as_mut() {
        let _ = c.kill();
        let _ = c.wait();
    }
    let pct = |cpu: f64| 100.0 * cpu / wall;
    println!("over {wall:.1} s at a 1 s interval:");
    println!(
        "  host sampler: {:.3}% of one core ({} rounds, {:.2} ms CPU per round)",
        pct(h1 - h0),
        hr1 - hr0,
        1000.0 * (h1 - h0) / (hr1 - hr0).max(1.0)
    );
    println!(
        "  GPU sampler (stub NVML, 2 GPUs): {:.3}% of one core ({} rounds, {:.2} ms CPU per round)",
        pct(g1 - g0),
        gr1 - gr0,
        1000.0 * (g1 - g0) / (gr1 - gr0).max(1.0)
    );
    println!(
        "  together: {:.3}% of one core (target: under 0.5%)",
        pct(h1 - h0 + g1 - g0)
    );
    if let (Some(a), Some(b)) = (ne_cpu0, ne_cpu1) {
        println!(
            "  peer: prometheus-node-exporter 1.5 scraped every second: {:.3}% of one core",
            pct(b - a)
        );
    }
}
