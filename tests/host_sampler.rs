//! The built-in host sampler beside the real `prometheus-node-exporter` 1.5 from Debian, on the
//! same machine at the same moment (issue 5): `MemTotal` and filesystem sizes equal, boot time
//! and uname equal, CPU seconds and network bytes within a few percent. The test prints which
//! metric families node-exporter has that Sightline lacks. Needs `apt-get install
//! prometheus-node-exporter` (`scripts/test` installs it); a missing binary fails the test.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::Value;
use sightline::scrape::exposition::{Format, parse};

type Series = BTreeMap<(String, Vec<(String, String)>), f64>;

struct Proc(std::process::Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn key(
    name: &str,
    labels: impl Iterator<Item = (String, String)>,
) -> (String, Vec<(String, String)>) {
    let mut l: Vec<(String, String)> = labels
        // An empty label is an absent label once stored, as in Prometheus.
        .filter(|(k, v)| k != "__name__" && k != "job" && k != "instance" && !v.is_empty())
        .collect();
    l.sort();
    (name.to_string(), l)
}

fn node_exporter(port: u16) -> Series {
    let text = reqwest::blocking::get(format!("http://127.0.0.1:{port}/metrics"))
        .unwrap()
        .text()
        .unwrap();
    let p = parse(&text, Format::Text).unwrap();
    p.samples
        .into_iter()
        .map(|s| {
            let name = s.labels[0].1.clone();
            (key(&name, s.labels.into_iter()), s.value)
        })
        .collect()
}

fn sightline(base: &str) -> Series {
    let v: Value = reqwest::blocking::Client::new()
        .post(format!("{base}/api/v1/query"))
        .form(&[("query", "{job=\"node\"}")])
        .send()
        .unwrap()
        .json()
        .unwrap();
    v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let m: BTreeMap<String, String> = serde_json::from_value(r["metric"].clone()).unwrap();
            let name = m["__name__"].clone();
            let val: f64 = r["value"][1].as_str().unwrap().parse().unwrap();
            (key(&name, m.into_iter()), val)
        })
        .collect()
}

fn get<'a>(s: &'a Series, name: &str, labels: &[(&str, &str)]) -> Option<&'a f64> {
    s.iter()
        .find(|((n, l), _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.iter().any(|(a, b)| a == k && b == v))
        })
        .map(|(_, v)| v)
}

fn sum(s: &Series, name: &str, label: (&str, &str)) -> f64 {
    s.iter()
        .filter(|((n, l), _)| n == name && l.iter().any(|(a, b)| a == label.0 && b == label.1))
        .map(|(_, v)| v)
        .sum()
}

fn near(a: f64, b: f64, rel: f64, abs: f64) -> bool {
    (a - b).abs() <= abs.max(rel * a.abs().max(b.abs()))
}

#[test]
fn host_sampler_agrees_with_node_exporter() {
    let port = common::free_port();
    let _ne = Proc(
        std::process::Command::new("prometheus-node-exporter")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("prometheus-node-exporter must be installed (apt-get install prometheus-node-exporter)"),
    );
    let dir = tempfile::tempdir().unwrap();
    let sl = common::Child::spawn_with(
        dir.path(),
        &[
            ("SIGHTLINE_HOST_ENABLED", "true"),
            ("SIGHTLINE_HOST_INTERVAL", "1s"),
        ],
    );
    let base = sl.api("");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ok_ne = reqwest::blocking::get(format!("http://127.0.0.1:{port}/metrics")).is_ok();
        let ok_sl = !sightline(&base).is_empty();
        if ok_ne && ok_sl {
            break;
        }
        assert!(Instant::now() < deadline, "no host samples after 30 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Read both at (nearly) the same moment: right after a fresh Sightline round.
    std::thread::sleep(Duration::from_millis(1100));
    let s = sightline(&base);
    let n = node_exporter(port);

    let mem = |x: &Series| *get(x, "node_memory_MemTotal_bytes", &[]).expect("MemTotal");
    assert_eq!(mem(&s), mem(&n), "MemTotal");
    assert_eq!(
        get(&s, "node_boot_time_seconds", &[]),
        get(&n, "node_boot_time_seconds", &[]),
        "boot time"
    );
    // Filesystem sizes: every mountpoint node-exporter reports, with the same device and type.
    let mut compared_fs = 0;
    for ((name, labels), v) in &n {
        if name != "node_filesystem_size_bytes" {
            continue;
        }
        let l: Vec<(&str, &str)> = labels
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let mine =
            get(&s, name, &l).unwrap_or_else(|| panic!("Sightline lacks filesystem {labels:?}"));
        assert_eq!(mine, v, "size of {labels:?}");
        compared_fs += 1;
    }
    assert!(compared_fs >= 1, "node-exporter reported no filesystems");
    // uname: the labels dashboards find their host by.
    let uname = |x: &Series| {
        x.keys()
            .find(|(n, _)| n == "node_uname_info")
            .map(|(_, l)| l.clone())
            .expect("node_uname_info")
    };
    assert_eq!(uname(&s), uname(&n));
    // CPU seconds per mode, summed over CPUs: within 3% (or the 1 s between the two reads).
    let ncpu = n
        .keys()
        .filter(|(name, l)| {
            name == "node_cpu_seconds_total" && l.iter().any(|(k, v)| k == "mode" && v == "idle")
        })
        .count() as f64;
    for mode in ["user", "system", "idle", "iowait", "softirq"] {
        let (a, b) = (
            sum(&s, "node_cpu_seconds_total", ("mode", mode)),
            sum(&n, "node_cpu_seconds_total", ("mode", mode)),
        );
        assert!(
            near(a, b, 0.03, 1.5 * ncpu),
            "cpu {mode}: sightline {a}, node-exporter {b}"
        );
    }
    // Network bytes per device: within 5% (or 2 MB of traffic between the reads).
    let mut compared_net = 0;
    for dir in ["receive", "transmit"] {
        let name = format!("node_network_{dir}_bytes_total");
        for ((nm, labels), v) in &n {
            if *nm != name {
                continue;
            }
            let dev = labels
                .iter()
                .find(|(k, _)| k == "device")
                .map(|(_, d)| d.as_str())
                .unwrap();
            let mine = *get(&s, &name, &[("device", dev)])
                .unwrap_or_else(|| panic!("Sightline lacks {name} for {dev}"));
            assert!(
                near(mine, *v, 0.05, 2e6),
                "{name}{{device={dev}}}: sightline {mine}, node-exporter {v}"
            );
            compared_net += 1;
        }
    }
    assert!(compared_net >= 2);
    // Interface attributes from /sys/class/net: the same values for what does not move.
    for name in [
        "node_network_up",
        "node_network_mtu_bytes",
        "node_network_iface_id",
    ] {
        for ((nm, labels), v) in &n {
            if nm == name {
                let l: Vec<(&str, &str)> = labels
                    .iter()
                    .map(|(a, b)| (a.as_str(), b.as_str()))
                    .collect();
                assert_eq!(get(&s, name, &l), Some(v), "{name} {labels:?}");
            }
        }
    }
    let info = |x: &Series| {
        x.keys()
            .filter(|(n, _)| n == "node_network_info")
            .cloned()
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(info(&s), info(&n), "node_network_info label sets");

    let fam = |x: &Series| x.keys().map(|(n, _)| n.clone()).collect::<BTreeSet<_>>();
    let (fs, fnx) = (fam(&s), fam(&n));
    let lacking: Vec<&String> = fnx.difference(&fs).collect();
    let extra: Vec<&String> = fs.difference(&fnx).collect();
    println!(
        "node-exporter families: {}, Sightline's: {}; node-exporter has and Sightline lacks ({}): {lacking:?}; Sightline has and node-exporter lacks: {extra:?}",
        fnx.len(),
        fs.len(),
        lacking.len()
    );
    // The families the issue and Node Exporter Full's main panels need are all there.
    for f in [
        "node_cpu_seconds_total",
        "node_load1",
        "node_load5",
        "node_load15",
        "node_memory_MemTotal_bytes",
        "node_memory_MemAvailable_bytes",
        "node_memory_MemFree_bytes",
        "node_memory_Cached_bytes",
        "node_memory_Buffers_bytes",
        "node_memory_SwapTotal_bytes",
        "node_memory_SwapFree_bytes",
        "node_filesystem_size_bytes",
        "node_filesystem_avail_bytes",
        "node_filesystem_free_bytes",
        "node_disk_read_bytes_total",
        "node_disk_written_bytes_total",
        "node_disk_io_time_seconds_total",
        "node_network_receive_bytes_total",
        "node_network_transmit_bytes_total",
        "node_network_receive_packets_total",
        "node_network_transmit_packets_total",
        "node_network_receive_errs_total",
        "node_network_transmit_errs_total",
        "node_network_receive_drop_total",
        "node_network_transmit_drop_total",
        "node_boot_time_seconds",
        "node_time_seconds",
        "node_uname_info",
        "node_os_info",
        "node_procs_running",
        "node_context_switches_total",
        "node_intr_total",
        "node_vmstat_pgpgin",
        "node_filefd_allocated",
        "node_netstat_Tcp_CurrEstab",
        "node_sockstat_TCP_inuse",
        "node_network_up",
        "node_network_info",
        "node_network_mtu_bytes",
    ] {
        assert!(fs.contains(f), "Sightline lacks {f}");
        if !f.starts_with("node_disk") {
            assert!(
                fnx.contains(f),
                "node-exporter lacks {f}: the list is wrong"
            );
        }
    }
}
