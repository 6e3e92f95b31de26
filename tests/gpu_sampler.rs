//! The GPU sampler's real loading and calling path without a GPU (issue 5): a stub NVML
//! library (`tests/nvml_stub/nvml_stub.c`, built here with `cc`) with two scripted GPUs,
//! processes, an XID event and an unsupported field is loaded by nvml-wrapper exactly as
//! `libnvidia-ml.so.1` would be; the stored series and labels are checked through PromQL.
//! Also: without any NVML library, Sightline starts, stays ready and says the sampler is off.

mod common;

use std::time::{Duration, Instant};

use serde_json::Value;

fn query(base: &str, q: &str) -> Vec<Value> {
    let v: Value = reqwest::blocking::Client::new()
        .post(format!("{base}/api/v1/query"))
        .form(&[("query", q)])
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["status"], "success", "{q}: {v}");
    v["data"]["result"].as_array().unwrap().clone()
}

fn value(r: &Value) -> f64 {
    r["value"][1].as_str().unwrap().parse().unwrap()
}

fn one(base: &str, q: &str) -> f64 {
    let r = query(base, q);
    assert_eq!(r.len(), 1, "{q}: {r:?}");
    value(&r[0])
}

#[test]
fn gpu_sampler_through_a_stub_nvml() {
    let dir = tempfile::tempdir().unwrap();
    let lib = common::nvml_stub(dir.path());
    let data = dir.path().join("data");
    let sl = common::Child::spawn_with(
        &data,
        &[
            ("SIGHTLINE_GPU_ENABLED", "true"),
            ("SIGHTLINE_GPU_LIBRARY", lib.to_str().unwrap()),
            ("SIGHTLINE_GPU_INTERVAL", "1s"),
        ],
    );
    let base = sl.api("");
    let deadline = Instant::now() + Duration::from_secs(30);
    while query(&base, "DCGM_FI_DEV_GPU_UTIL").len() < 2 {
        assert!(Instant::now() < deadline, "no GPU samples after 30 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    // dcgm-exporter's labels on every series.
    let util = query(&base, "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\"}");
    assert_eq!(util.len(), 1);
    let m = &util[0]["metric"];
    assert_eq!(m["job"], "dcgm");
    assert_eq!(m["UUID"], "GPU-11111111-2222-3333-4444-555555555555");
    assert_eq!(m["device"], "nvidia0");
    assert_eq!(m["modelName"], "NVIDIA H100 80GB HBM3");
    assert_eq!(m["pci_bus_id"], "00000000:01:00.0");
    assert_eq!(m["DCGM_FI_DRIVER_VERSION"], "550.54.15");
    assert!(!m["Hostname"].as_str().unwrap().is_empty());
    assert_eq!(value(&util[0]), 87.0);
    // Values in dcgm-exporter's units.
    for (q, want) in [
        ("DCGM_FI_DEV_MEM_COPY_UTIL{gpu=\"0\"}", 45.0),
        ("DCGM_FI_DEV_ENC_UTIL{gpu=\"0\"}", 12.0),
        ("DCGM_FI_DEV_DEC_UTIL{gpu=\"1\"}", 0.0),
        ("DCGM_FI_DEV_FB_TOTAL{gpu=\"0\"}", 81920.0),
        ("DCGM_FI_DEV_FB_USED{gpu=\"0\"}", 20480.0),
        ("DCGM_FI_DEV_FB_FREE{gpu=\"1\", GPU_I_ID=\"\"}", 39936.0),
        ("DCGM_FI_DEV_GPU_TEMP{gpu=\"1\"}", 38.0),
        ("DCGM_FI_DEV_POWER_USAGE{gpu=\"0\"}", 312.5),
        (
            "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{gpu=\"0\"}",
            123_456_789.0,
        ),
        ("DCGM_FI_DEV_SM_CLOCK{gpu=\"0\"}", 1980.0),
        ("DCGM_FI_DEV_MEM_CLOCK{gpu=\"1\"}", 6251.0),
        ("DCGM_FI_DEV_PCIE_TX_THROUGHPUT{gpu=\"0\"}", 1024.0),
        ("DCGM_FI_DEV_PCIE_RX_THROUGHPUT{gpu=\"0\"}", 2048.0),
        ("DCGM_FI_DEV_PCIE_REPLAY_COUNTER{gpu=\"0\"}", 3.0),
        ("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL{gpu=\"0\"}", 5.0),
        ("DCGM_FI_DEV_ECC_SBE_AGG_TOTAL{gpu=\"0\"}", 7.0),
        ("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL{gpu=\"0\"}", 0.0),
        ("DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS{gpu=\"0\"}", 1.0),
        ("DCGM_FI_DEV_CLOCK_THROTTLE_REASONS{gpu=\"0\"}", 4.0),
    ] {
        assert_eq!(one(&base, q), want, "{q}");
    }
    // MIG instances of GPU 1: framebuffer per instance, with GPU_I_ID and GPU_I_PROFILE.
    let mig = query(&base, "DCGM_FI_DEV_FB_USED{gpu=\"1\", GPU_I_ID!=\"\"}");
    assert_eq!(mig.len(), 2, "{mig:?}");
    let m7 = mig
        .iter()
        .find(|r| r["metric"]["GPU_I_ID"] == "7")
        .expect("instance 7");
    assert_eq!(m7["metric"]["GPU_I_PROFILE"], "1g.5gb");
    assert_eq!(value(m7), 1024.0);
    assert_eq!(one(&base, "DCGM_FI_DEV_FB_TOTAL{GPU_I_ID=\"13\"}"), 4864.0);
    // The parent GPU keeps its own series (without the instance labels).
    assert_eq!(
        one(&base, "DCGM_FI_DEV_FB_TOTAL{gpu=\"1\", GPU_I_ID=\"\"}"),
        40960.0
    );
    // Unsupported fields are skipped, not errors: no memory temperature on either GPU (the stub
    // lacks the entry point), no encoder utilisation on GPU 1 (NOT_SUPPORTED).
    assert!(query(&base, "DCGM_FI_DEV_MEMORY_TEMP").is_empty());
    assert!(query(&base, "DCGM_FI_DEV_ENC_UTIL{gpu=\"1\"}").is_empty());
    // The XID event: the last value as dcgm-exporter gives it, and a counter by XID.
    assert_eq!(one(&base, "DCGM_FI_DEV_XID_ERRORS{gpu=\"0\"}"), 79.0);
    assert_eq!(
        one(
            &base,
            "sightline_gpu_xid_errors_total{gpu=\"0\",xid=\"79\"}"
        ),
        1.0
    );
    assert_eq!(
        one(
            &base,
            "sightline_gpu_throttle_episodes_total{gpu=\"0\",reason=\"sw_power_cap\"}"
        ),
        1.0
    );
    // Per process: memory and utilisation with the executable name; GPU 1 has none.
    let pid = sl.child.id().to_string();
    let mem = query(&base, "sightline_gpu_process_memory_bytes");
    assert_eq!(mem.len(), 2, "{mem:?}");
    let me = mem
        .iter()
        .find(|r| r["metric"]["pid"] == pid.as_str())
        .expect("the sightline process itself");
    assert_eq!(me["metric"]["process"], "sightline");
    assert_eq!(me["metric"]["gpu"], "0");
    assert_eq!(
        me["metric"]["UUID"],
        "GPU-11111111-2222-3333-4444-555555555555"
    );
    assert_eq!(value(me), 4.0 * (1u64 << 30) as f64);
    let init = mem
        .iter()
        .find(|r| r["metric"]["pid"] == "1")
        .expect("pid 1");
    assert!(!init["metric"]["process"].as_str().unwrap_or("").is_empty());
    assert_eq!(
        one(
            &base,
            &format!("sightline_gpu_process_utilization_ratio{{pid=\"{pid}\"}}")
        ),
        0.75
    );
    // The XID error and the throttling are also log records, searchable beside the traces.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let logs: Value = reqwest::blocking::get(sl.api("/api/logs?service=sightline-gpu&q=XID"))
            .unwrap()
            .json()
            .unwrap();
        let text = logs.to_string();
        if text.contains("GPU 0 XID error 79") {
            assert!(
                text.contains("GPU-11111111-2222-3333-4444-555555555555"),
                "{text}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no XID log record: {text}");
        std::thread::sleep(Duration::from_millis(250));
    }
    // The sampler says it is up and what it costs.
    let metrics = reqwest::blocking::get(sl.api("/metrics"))
        .unwrap()
        .text()
        .unwrap();
    assert!(metrics.contains("sightline_gpu_sampler_up 1"), "{metrics}");
}

#[test]
fn no_driver_means_gpu_sampler_off_and_still_ready() {
    let dir = tempfile::tempdir().unwrap();
    let sl = common::Child::spawn_with(
        dir.path(),
        &[
            ("SIGHTLINE_GPU_ENABLED", "true"),
            ("SIGHTLINE_GPU_LIBRARY", "/nonexistent/libnvidia-ml.so.1"),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = reqwest::blocking::get(sl.api("/readyz")).unwrap();
        if r.status().is_success() {
            break;
        }
        assert!(Instant::now() < deadline, "never ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    let metrics = reqwest::blocking::get(sl.api("/metrics"))
        .unwrap()
        .text()
        .unwrap();
    assert!(metrics.contains("sightline_gpu_sampler_up 0"), "{metrics}");
    assert!(query(&sl.api(""), "{job=\"dcgm\"}").is_empty());
}
