//! The web UI in a real browser (issue 6): `tests/ui/browser_test.py` feeds Sightline with the
//! Python OpenTelemetry SDK and drives Debian's headless Chromium through Playwright over every
//! page, once at the root and once under `base_path = "/obs"`. The GPU sampler runs on the stub
//! NVML library and the host sampler on this machine, so the dashboards have data. Screenshots
//! and the timing/size report land in `target/ui-screenshots/`. A `prometheus.yml` gives the
//! Targets page an up, a down and a dropped target.

mod common;

use std::path::PathBuf;

fn run(label: &str, base_path: &str) {
    let dir = tempfile::tempdir().unwrap();
    let lib = common::nvml_stub(dir.path());
    let mut env = vec![
        ("SIGHTLINE_GPU_ENABLED", "true"),
        ("SIGHTLINE_GPU_LIBRARY", lib.to_str().unwrap()),
        ("SIGHTLINE_GPU_INTERVAL", "1s"),
        ("SIGHTLINE_HOST_ENABLED", "true"),
        ("SIGHTLINE_HOST_INTERVAL", "1s"),
        ("SIGHTLINE_SPANMETRICS_INTERVAL", "1s"),
        ("SIGHTLINE_SPANMETRICS_SERVICE_GRAPH_WAIT", "1s"),
    ];
    if !base_path.is_empty() {
        env.push(("SIGHTLINE_BASE_PATH", base_path));
    }
    // Scrape targets for the Targets page: Sightline itself (up), a closed port (down), one
    // dropped by relabeling; a label value that is an HTML payload.
    let ports = (
        common::free_port(),
        common::free_port(),
        common::free_port(),
    );
    let prom_yml = dir.path().join("prometheus.yml");
    std::fs::write(
        &prom_yml,
        format!(
            "scrape_configs:\n  - job_name: self\n    scrape_interval: 1s\n    metrics_path: {base_path}/metrics\n    static_configs:\n      - targets: ['127.0.0.1:{}', '127.0.0.1:1', '127.0.0.1:2']\n        labels: {{note: '{}'}}\n    relabel_configs:\n      - {{source_labels: [__address__], regex: '.*:2', action: drop}}\n",
            ports.0,
            r#"<img src=x onerror="window.__xss.push('label')">"#.replace('\'', "''")
        ),
    )
    .unwrap();
    let toml = dir.path().join("sightline.toml");
    std::fs::write(&toml, "[scrape]\nprometheus_config = \"prometheus.yml\"\n").unwrap();
    env.push(("SIGHTLINE_CONFIG", toml.to_str().unwrap()));
    let sl = common::Child::spawn_at(&dir.path().join("data"), &env, ports);
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
    std::fs::create_dir_all(&out).unwrap();
    let script = format!("{}/tests/ui/browser_test.py", env!("CARGO_MANIFEST_DIR"));
    let status = std::process::Command::new("python3")
        .arg(&script)
        .args(["--ui", &sl.api(base_path)])
        .args(["--grpc", &format!("127.0.0.1:{}", sl.otlp_grpc)])
        .args(["--otlp-http", &sl.otlp_http("")])
        .args(["--pid", &sl.child.id().to_string()])
        .args(["--shots", out.to_str().unwrap()])
        .args([
            "--report",
            out.join(format!("report-{label}.json")).to_str().unwrap(),
        ])
        .args(["--label", label])
        .status()
        .expect("python3 with Playwright must be installed (scripts/test installs it)");
    assert!(status.success(), "browser test {label} failed");
}

#[test]
fn ui_in_chromium_at_the_root() {
    run("root", "");
}

#[test]
fn ui_in_chromium_under_a_base_path() {
    run("obs", "/obs");
}
