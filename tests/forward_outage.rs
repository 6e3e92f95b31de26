//! The upstream is down for a while under steady load and the forwarding Sightline is killed
//! with SIGKILL twice meanwhile; once the upstream is back, everything that was acknowledged to
//! the senders arrives (issue 9). Duplicates are allowed (a batch delivered just before a kill
//! whose cursor was not yet saved is sent again); they are counted and printed.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use common::{Child, build, free_port};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::AnyValue;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use parking_lot::Mutex;
use prost::Message;

#[derive(Default)]
struct Acked {
    traces: Vec<String>,
    logs: Vec<String>,
}

fn logs_request(bodies: &[String]) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![build::kv("service.name", build::s("outage"))],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: bodies
                    .iter()
                    .map(|b| LogRecord {
                        time_unix_nano: build::now_ns(),
                        severity_number: 13,
                        body: Some(AnyValue {
                            value: Some(build::s(b)),
                        }),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Posts until `stop`: one trace of 5 spans per request, and every fourth request two log
/// records; remembers what was acknowledged (200).
fn load(url: Arc<Mutex<String>>, stop: Arc<AtomicBool>, acked: Arc<Mutex<Acked>>) {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let post = |path: &str, body: Vec<u8>| {
        let base = url.lock().clone();
        client
            .post(format!("{base}{path}"))
            .header("content-type", "application/x-protobuf")
            .body(body)
            .send()
            .is_ok_and(|r| r.status() == 200)
    };
    let mut k = 0u64;
    while !stop.load(Relaxed) {
        k += 1;
        let t = build::trace_id(k, 0x07);
        let now = build::now_ns();
        let spans = (0..5)
            .map(|i| build::span(&t, i + 1, (i > 0).then_some(1), "step", now, 1_000_000))
            .collect();
        let req = build::request("outage", spans);
        if post("/v1/traces", req.encode_to_vec()) {
            acked.lock().traces.push(hex::encode(&t));
        } else {
            std::thread::sleep(Duration::from_millis(20));
        }
        if k.is_multiple_of(4) {
            let bodies = vec![format!("outage log {k} a"), format!("outage log {k} b")];
            if post("/v1/logs", logs_request(&bodies).encode_to_vec()) {
                acked.lock().logs.extend(bodies);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn everything_acknowledged_arrives_after_an_outage_and_two_kills() {
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let b_ports = (free_port(), free_port(), free_port());
    let endpoint = format!("http://127.0.0.1:{}", b_ports.1);
    let env = [
        ("SIGHTLINE_FORWARD_ENDPOINT", endpoint.as_str()),
        ("SIGHTLINE_FORWARD_TRACES", "both"),
        ("SIGHTLINE_FORWARD_METRICS", "local"),
        ("SIGHTLINE_FORWARD_LOGS", "forward"),
        ("SIGHTLINE_FORWARD_RETRY_INITIAL_INTERVAL", "100ms"),
        ("SIGHTLINE_FORWARD_RETRY_MAX_INTERVAL", "500ms"),
        ("SIGHTLINE_FORWARD_BATCH_TIMEOUT", "50ms"),
    ];
    let mut a = Child::spawn_with(a_dir.path(), &env);
    let url = Arc::new(Mutex::new(a.otlp_http("")));
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Acked::default()));
    let sender = {
        let (u, s, ac) = (url.clone(), stop.clone(), acked.clone());
        std::thread::spawn(move || load(u, s, ac))
    };
    // The upstream is down all along; the forwarder is killed twice under load.
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(1500));
        let retried = reqwest::blocking::get(a.api("/metrics"))
            .unwrap()
            .text()
            .unwrap();
        assert!(
            retried.lines().any(|l| l
                .starts_with("sightline_forward_retried_total{signal=\"traces\"}")
                && !l.ends_with(" 0")),
            "the forwarder tried and is retrying"
        );
        a.kill9();
        a = Child::spawn_with(a_dir.path(), &env);
        *url.lock() = a.otlp_http("");
    }
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Relaxed);
    sender.join().unwrap();
    let acked = std::mem::take(&mut *acked.lock());
    assert!(
        acked.traces.len() > 100,
        "steady load: {} traces acknowledged",
        acked.traces.len()
    );
    assert!(acked.logs.len() > 40);

    // The upstream comes back.
    let b = Child::spawn_at(b_dir.path(), &[], b_ports);
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut duplicates = 0usize;
    for id in &acked.traces {
        let v = loop {
            let v: serde_json::Value = reqwest::blocking::get(b.api(&format!("/api/traces/{id}")))
                .unwrap()
                .json()
                .unwrap();
            if common::data_len(&v) == 1 {
                break v;
            }
            assert!(
                Instant::now() < deadline,
                "trace {id} never arrived upstream"
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        let spans = v["data"][0]["spans"].as_array().unwrap();
        let distinct: BTreeSet<&str> = spans
            .iter()
            .map(|s| s["spanID"].as_str().unwrap())
            .collect();
        assert_eq!(distinct.len(), 5, "trace {id}: all five spans");
        duplicates += spans.len() - 5;
    }
    let want: BTreeSet<&String> = acked.logs.iter().collect();
    let got: BTreeMap<String, usize> = loop {
        let v: serde_json::Value =
            reqwest::blocking::get(b.api("/api/logs?service=outage&limit=100000"))
                .unwrap()
                .json()
                .unwrap();
        let mut got = BTreeMap::new();
        for l in v["data"].as_array().unwrap() {
            *got.entry(l["body"].as_str().unwrap().to_string())
                .or_insert(0) += 1;
        }
        if want.iter().all(|w| got.contains_key(*w)) {
            break got;
        }
        assert!(
            Instant::now() < deadline,
            "acknowledged logs missing upstream"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let log_dups: usize = got.values().map(|n| n - 1).sum();
    println!(
        "{} traces ({} spans) and {} log records acknowledged during the outage; all arrived; duplicates: {duplicates} spans, {log_dups} log records",
        acked.traces.len(),
        acked.traces.len() * 5,
        acked.logs.len()
    );
    // The forwarder's queue is empty again.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = reqwest::blocking::get(a.api("/metrics"))
            .unwrap()
            .text()
            .unwrap();
        if m.contains("sightline_forward_queue_items{signal=\"traces\"} 0")
            && m.contains("sightline_forward_queue_items{signal=\"logs\"} 0")
        {
            break;
        }
        assert!(Instant::now() < deadline, "queue not drained: {m}");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(b);
}

/// The forward queue on a full disk: exports that cannot be queued get 503 (nothing is
/// acknowledged that is not on disk); once the upstream is back, delivery deletes the delivered
/// segment, which frees the space, and exports are taken again.
#[test]
fn a_full_disk_refuses_forwarded_exports_until_delivery_frees_it() {
    let fs = common::SmallTmpfs::mount("6m");
    std::fs::write(fs.path.join("filler"), vec![1u8; 2 << 20]).unwrap();
    let data = fs.path.join("data");
    let b_dir = tempfile::tempdir().unwrap();
    let b_ports = (free_port(), free_port(), free_port());
    let endpoint = format!("http://127.0.0.1:{}", b_ports.1);
    let a = Child::spawn_with(
        &data,
        &[
            ("SIGHTLINE_FORWARD_ENDPOINT", endpoint.as_str()),
            ("SIGHTLINE_FORWARD_TRACES", "forward"),
            ("SIGHTLINE_FORWARD_METRICS", "local"),
            ("SIGHTLINE_FORWARD_LOGS", "local"),
            ("SIGHTLINE_FORWARD_RETRY_INITIAL_INTERVAL", "100ms"),
            ("SIGHTLINE_FORWARD_RETRY_MAX_INTERVAL", "300ms"),
        ],
    );
    let client = reqwest::blocking::Client::new();
    let post = |k: u64, n: u64| {
        let t = build::trace_id(k, 0x51);
        let spans = build::bulky_spans(
            &t,
            "fill",
            n,
            |_| build::now_ns(),
            "noise",
            |i| k * 104729 + i * 7,
            8,
        );
        let r = client
            .post(a.otlp_http("/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .body(build::request("full", spans).encode_to_vec())
            .send()
            .unwrap();
        r.status().as_u16()
    };
    let (acked, refused) = common::fill_disk(&a.otlp_http("/v1/traces"), 0x51, 1000);
    assert_eq!(refused, 503, "a full forward queue refuses with 503");
    let acked: Vec<String> = acked
        .into_iter()
        .map(|k| hex::encode(build::trace_id(k, 0x51)))
        .collect();
    // Still full: refused, not acknowledged.
    assert_eq!(post(5000, 200), 503);
    // The upstream comes back: everything acknowledged arrives, the delivered segment goes, and
    // new exports are taken again.
    let b = Child::spawn_at(b_dir.path(), &[], b_ports);
    let deadline = Instant::now() + Duration::from_secs(60);
    for id in &acked {
        loop {
            let v: serde_json::Value = reqwest::blocking::get(b.api(&format!("/api/traces/{id}")))
                .unwrap()
                .json()
                .unwrap();
            if common::data_len(&v) == 1 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "trace {id} never arrived upstream"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let mut recovered = false;
    for k in 0..100u64 {
        if post(6000 + k, 5) == 200 {
            recovered = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        recovered,
        "exports are taken again once delivery freed the space"
    );
    println!(
        "{} exports acknowledged before the disk filled; all delivered; taken again after",
        acked.len()
    );
}
