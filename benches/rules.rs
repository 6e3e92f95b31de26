//! Rule evaluation cost, side by side with a real Prometheus 2.42 in one run on the same data
//! (issue 20): 1,000 recording rules and 500 alerting rules of dashboard-style expressions (rates
//! summed by label, ratios, quantiles of histograms, threshold alerts with `for`) in 10 groups at
//! a 15 s interval, over 2,000 counter series (plus gauges and histograms) scraped every 15 s
//! for the last hour. Prometheus reads them from backfilled blocks, Sightline from its store;
//! both evaluate the same rule file at the same time. Reported: each process's CPU time per
//! evaluation round of all groups (from /proc/<pid>/stat over the measured window, idle work
//! included on both sides), the ratio, and the rounds each missed.
//!
//! `cargo bench --bench rules` (needs `prometheus` and `promtool`). Options: `--series N` (2000),
//! `--seconds N` (120, the measured window after a 40 s warm-up).

#[path = "../tests/common/promdiff.rs"]
mod promdiff;

mod common;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use common::{Sightline, arg, free_port};
use promdiff::{Prometheus, generate_bench, load_sightline, post};

const GROUPS: usize = 10;

/// 100 recording and 50 alerting rules per group.
fn rule_file() -> String {
    let mut s = String::from("groups:\n");
    for g in 0..GROUPS {
        let _ = write!(s, "  - name: bench{g}\n    interval: 15s\n    rules:\n");
        for i in 0..100 {
            let job = format!("job{}", (g * 100 + i) % 10);
            let expr = match i % 5 {
                0 => format!("sum by (job) (rate(bench_requests_total{{job=\"{job}\"}}[5m]))"),
                1 => format!("sum by (instance) (rate(bench_requests_total{{job=\"{job}\"}}[1m]))"),
                2 => format!(
                    "histogram_quantile(0.{}, sum by (le, job) (rate(bench_latency_seconds_bucket{{job=\"{job}\"}}[5m])))",
                    5 + i % 5
                ),
                3 => format!("avg by (job) (bench_cpu_usage{{job=\"{job}\"}})"),
                _ => format!(
                    "sum(rate(bench_requests_total{{job=\"{job}\"}}[5m])) / sum(rate(bench_requests_total[5m]))"
                ),
            };
            let _ = write!(
                s,
                "      - record: bench:g{g}:r{i}\n        expr: {}\n",
                serde_json::to_string(&expr).unwrap()
            );
        }
        for i in 0..50 {
            let job = format!("job{}", (g * 50 + i) % 10);
            let expr = match i % 3 {
                0 => format!(
                    "sum by (instance) (rate(bench_requests_total{{job=\"{job}\"}}[5m])) > {}",
                    1 + i % 7
                ),
                1 => format!(
                    "avg by (job) (bench_cpu_usage{{job=\"{job}\"}}) > {}",
                    40 + i
                ),
                _ => format!(
                    "histogram_quantile(0.99, sum by (le) (rate(bench_latency_seconds_bucket{{job=\"{job}\"}}[5m]))) > 0.{}",
                    i % 9 + 1
                ),
            };
            let _ = write!(
                s,
                "      - alert: BenchG{g}A{i}\n        expr: {}\n        for: 1m\n        labels:\n          severity: warning\n        annotations:\n          summary: \"{{{{ $labels.instance }}}} at {{{{ $value | humanize }}}}\"\n",
                serde_json::to_string(&expr).unwrap()
            );
        }
    }
    s
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// The sum of one metric's samples on a `/metrics` page.
fn metric_sum(page: &str, name: &str) -> f64 {
    page.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn main() {
    let n_series = arg("--series", 2000) as usize;
    let seconds = arg("--seconds", 120);
    let interval = 15_000;
    let scrapes = 240;
    let mut data = generate_bench(1, n_series, scrapes, interval);
    // Move the hour to end 30 s ago: the rules run now, over the last minutes of data.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let delta = now - 30_000 - data.end;
    for (_, s) in &mut data.series {
        for p in s.iter_mut() {
            p.0 += delta;
        }
    }
    data.start += delta;
    data.end += delta;
    let samples: usize = data.series.iter().map(|s| s.1.len()).sum();
    println!("data: {} series, {samples} samples", data.series.len());
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("bench.rules.yml");
    std::fs::write(&rules, rule_file()).unwrap();
    let rules_path = rules.display().to_string();
    load_sightline(&data, &dir.path().join("sl"));
    let prom = Prometheus::start_with(
        &data,
        &format!(
            "global:\n  scrape_interval: 1h\n  evaluation_interval: 15s\nrule_files:\n  - {rules_path}\n"
        ),
        &[],
    );
    let sl = Sightline::spawn(
        &dir.path().join("sl"),
        &[
            ("SIGHTLINE_RULES_FILES", rules_path.as_str()),
            ("SIGHTLINE_RULES_BUILTIN", "false"),
            ("SIGHTLINE_SPANMETRICS_ENABLED", "false"),
        ],
    );
    let prom_pid = prom.pid();
    let sl_pid = sl.child.id();
    println!("warming up 40 s (both load the rules and evaluate a few rounds)");
    std::thread::sleep(Duration::from_secs(40));
    let pm = |u: &str| reqwest::blocking::get(u).unwrap().text().unwrap();
    let (p_url, s_url) = (
        format!("{}/metrics", prom.url()),
        format!("http://127.0.0.1:{}/metrics", sl.http),
    );
    let (p0, s0) = (pm(&p_url), pm(&s_url));
    let (pc0, sc0) = (cpu_seconds(prom_pid), cpu_seconds(sl_pid));
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let (pc1, sc1) = (cpu_seconds(prom_pid), cpu_seconds(sl_pid));
    let wall = t0.elapsed().as_secs_f64();
    let (p1, s1) = (pm(&p_url), pm(&s_url));
    let rounds = |a: &str, b: &str, name: &str| metric_sum(b, name) - metric_sum(a, name);
    let p_iter = rounds(&p0, &p1, "prometheus_rule_group_iterations_total");
    let s_iter = rounds(&s0, &s1, "sightline_rule_group_iterations_total");
    let p_missed = metric_sum(&p1, "prometheus_rule_group_iterations_missed_total");
    let s_missed = metric_sum(&s1, "sightline_rule_group_iterations_missed_total");
    let p_fail = metric_sum(&p1, "prometheus_rule_evaluation_failures_total");
    let s_fail = metric_sum(&s1, "sightline_rule_evaluation_failures_total");
    // Both answer the same for a recorded series (a check that the work is the same).
    let q = [("query", "count({__name__=~\"bench:.+\"})".to_string())];
    let pa = post(&format!("{}/api/v1/query", prom.url()), &q);
    let sa = post(&format!("http://127.0.0.1:{}/api/v1/query", sl.http), &q);
    let pc = (pc1 - pc0) / (p_iter / GROUPS as f64);
    let sc = (sc1 - sc0) / (s_iter / GROUPS as f64);
    println!("window {wall:.0} s; 1,500 rules in {GROUPS} groups every 15 s");
    println!(
        "prometheus 2.42: {:.0} group evaluations, CPU {:.3} s per round of all groups, {p_missed} missed, {p_fail} failed rule evaluations, recorded series {}",
        p_iter, pc, pa["data"]["result"][0]["value"][1]
    );
    println!(
        "sightline:       {:.0} group evaluations, CPU {:.3} s per round of all groups, {s_missed} missed, {s_fail} failed rule evaluations, recorded series {}",
        s_iter, sc, sa["data"]["result"][0]["value"][1]
    );
    println!(
        "sightline / prometheus CPU per round: {:.2} (target at most 0.5)",
        sc / pc
    );
}
