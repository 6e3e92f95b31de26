//! Grafana dashboards without Grafana (issue 23), in headless Chromium: Node Exporter Full and
//! NVIDIA's DCGM dashboard as published (`tests/dashboards/`), imported through the UI and
//! provisioned from a folder, drawn against Sightline holding its own samplers' data (host; GPUs
//! on the stub NVML library) and a real node-exporter it scrapes. A real Prometheus 2.42 scrapes
//! the same exporter (and Sightline's GPU series through `/federate`), and every panel whose
//! queries have data there must show data here. `tests/ui/dashboards_test.py` drives the
//! browser; screenshots land in `target/ui-screenshots/`. Needs `prometheus`,
//! `prometheus-node-exporter`, Chromium and Playwright (`scripts/test` installs them).

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "port {port} never opened");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn grafana_dashboards_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/dashboards");
    let ne_port = common::free_port();
    let _ne = common::spawn_proc(
        "prometheus-node-exporter",
        &[format!("--web.listen-address=127.0.0.1:{ne_port}")],
    );
    wait_port(ne_port);
    let exporter = format!("127.0.0.1:{ne_port}");

    // Sightline: its samplers, the exporter scraped as job "node", the DCGM dashboard
    // provisioned from a folder.
    let prov = dir.path().join("provisioned");
    std::fs::create_dir_all(&prov).unwrap();
    std::fs::copy(
        fixtures.join("dcgm-exporter-dashboard.json"),
        prov.join("dcgm.json"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "scrape_configs:\n  - job_name: node\n    scrape_interval: 1s\n    static_configs:\n      - targets: ['{exporter}']\n"
        ),
    )
    .unwrap();
    let toml = dir.path().join("sightline.toml");
    std::fs::write(
        &toml,
        "[scrape]\nprometheus_config = \"prometheus.yml\"\n[dashboards]\ndirs = [\"provisioned\"]\n",
    )
    .unwrap();
    let lib = common::nvml_stub(dir.path());
    let sl = common::Child::spawn_with(
        &dir.path().join("data"),
        &[
            ("SIGHTLINE_CONFIG", toml.to_str().unwrap()),
            ("SIGHTLINE_GPU_ENABLED", "true"),
            ("SIGHTLINE_GPU_LIBRARY", lib.to_str().unwrap()),
            ("SIGHTLINE_GPU_INTERVAL", "1s"),
            ("SIGHTLINE_HOST_ENABLED", "true"),
            ("SIGHTLINE_HOST_INTERVAL", "1s"),
        ],
    );

    // Prometheus 2.42: the same exporter, and Sightline's GPU series through federation.
    let prom_port = common::free_port();
    let prom_cfg = dir.path().join("prom.yml");
    std::fs::write(
        &prom_cfg,
        format!(
            "scrape_configs:\n  - job_name: node\n    scrape_interval: 1s\n    static_configs:\n      - targets: ['{exporter}']\n  - job_name: federate\n    scrape_interval: 1s\n    honor_labels: true\n    metrics_path: /federate\n    params:\n      'match[]': ['{{job=\"dcgm\"}}']\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            sl.http
        ),
    )
    .unwrap();
    let _prom = common::spawn_proc(
        "prometheus",
        &[
            format!("--config.file={}", prom_cfg.display()),
            format!("--storage.tsdb.path={}", dir.path().join("prom").display()),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
        ],
    );
    wait_port(prom_port);
    // Enough scrapes for rate() over `$__rate_interval` (at least 60 s of 1 s scrapes is not
    // needed: two samples in the window are).
    std::thread::sleep(Duration::from_secs(20));

    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let status = std::process::Command::new("python3")
        .arg(format!(
            "{}/tests/ui/dashboards_test.py",
            env!("CARGO_MANIFEST_DIR")
        ))
        .args(["--ui", &sl.api("")])
        .args(["--prom", &format!("http://127.0.0.1:{prom_port}")])
        .args(["--exporter", &exporter])
        .args(["--fixtures", fixtures.to_str().unwrap()])
        .args(["--shots", shots.to_str().unwrap()])
        .args(["--provision", prov.to_str().unwrap()])
        .status()
        .expect("python3 with Playwright must be installed (scripts/test installs it)");
    assert!(status.success(), "dashboard browser test failed");

    // Uploads were acknowledged: they survive kill -9.
    let data = dir.path().join("data");
    sl.kill9();
    let again = common::Child::spawn_with(&data, &[("SIGHTLINE_CONFIG", toml.to_str().unwrap())]);
    let list = reqwest::blocking::get(again.api("/ui/dashboards"))
        .unwrap()
        .text()
        .unwrap();
    for title in [
        "Node Exporter Full",
        "DCGM (grafana.com export)",
        "Every panel type",
        "500 panels",
    ] {
        assert!(list.contains(title), "{title} lost after kill -9");
    }
    assert!(
        !list.contains("Grafana 4 rows"),
        "a deleted dashboard came back"
    );
}
