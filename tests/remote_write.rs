//! Remote write 1.0 from a real Prometheus 2.42 (issue 22): Prometheus scrapes itself, a real
//! node-exporter and Sightline every second and remote-writes everything to Sightline's
//! `/api/v1/write`, with an external label marking what came through remote write. Every raw
//! sample Prometheus stored for a window is in Sightline, identical (same series, timestamps and
//! values, compared through a range-vector instant query on both); then Sightline is killed
//! with `kill -9` and started again, and a window spanning the outage is still identical
//! (Prometheus resends from its WAL what was not acknowledged). Also the Prometheus 3 OTLP path,
//! a few bad bodies, and federation: a Prometheus 2.42 scraping Sightline's `/federate`.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

struct Prom {
    child: std::process::Child,
    port: u16,
}

impl Drop for Prom {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Raw samples of every series the selector picks in `(t - 10s, t]`, by label set.
fn raw(
    base: &str,
    selector: &str,
    t: f64,
    drop_label: Option<&str>,
) -> BTreeMap<String, Vec<(f64, String)>> {
    let v: Value = reqwest::blocking::Client::new()
        .post(format!("{base}/api/v1/query"))
        .form(&[
            ("query", format!("{selector}[10s]")),
            ("time", format!("{t:.3}")),
        ])
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["status"], "success", "{v}");
    let mut out = BTreeMap::new();
    for s in v["data"]["result"].as_array().unwrap() {
        let mut m: BTreeMap<String, String> = serde_json::from_value(s["metric"].clone()).unwrap();
        if let Some(d) = drop_label {
            m.remove(d);
        }
        let vals: Vec<(f64, String)> = s["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_f64().unwrap(), p[1].as_str().unwrap().to_string()))
            .collect();
        out.insert(format!("{m:?}"), vals);
    }
    out
}

fn compare(prom: &str, sl: &str, t: f64) {
    let p = raw(prom, r#"{job=~"prometheus|sightline|node"}"#, t, None);
    let s = raw(
        sl,
        r#"{job=~"prometheus|sightline|node",via="rw"}"#,
        t,
        Some("via"),
    );
    assert!(p.len() > 100, "too few series in Prometheus: {}", p.len());
    assert!(
        p.keys().filter(|k| k.contains("\"job\": \"node\"")).count() > 100,
        "too few node-exporter series in Prometheus"
    );
    let missing: Vec<&String> = p.keys().filter(|k| !s.contains_key(*k)).take(5).collect();
    assert!(
        missing.is_empty(),
        "{} of {} series missing in Sightline, e.g. {missing:?}",
        p.keys().filter(|k| !s.contains_key(*k)).count(),
        p.len()
    );
    for (k, pv) in &p {
        assert_eq!(
            &s[k], pv,
            "samples of {k} differ (left sightline, right prometheus)"
        );
    }
    assert_eq!(
        s.len(),
        p.len(),
        "Sightline holds series Prometheus does not"
    );
}

#[test]
fn prometheus_remote_write_lands_identically_and_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let ports = (
        common::free_port(),
        common::free_port(),
        common::free_port(),
    );
    let data = dir.path().join("sl");
    let spawn =
        || common::Child::spawn_at(&data, &[("SIGHTLINE_SPANMETRICS_ENABLED", "false")], ports);
    let sl = spawn();
    let sl_url = sl.api("");
    let port = common::free_port();
    let node_port = common::free_port();
    let _node = Prom {
        child: Command::new("prometheus-node-exporter")
            .arg(format!("--web.listen-address=127.0.0.1:{node_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus-node-exporter must be installed (apt-get install prometheus-node-exporter)"),
        port: node_port,
    };
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  external_labels: {{via: rw}}\nscrape_configs:\n  - job_name: prometheus\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n  - job_name: node\n    static_configs: [{{targets: ['127.0.0.1:{node_port}']}}]\n  - job_name: sightline\n    static_configs: [{{targets: ['127.0.0.1:{}']}}]\nremote_write:\n  - url: http://127.0.0.1:{}/api/v1/write\n    queue_config: {{batch_send_deadline: 500ms, max_samples_per_send: 2000, min_backoff: 100ms, max_backoff: 1s}}\n",
            ports.0, ports.0
        ),
    )
    .unwrap();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("prom").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus must be installed (apt-get install prometheus)");
    let prom = Prom { child, port };
    let prom_url = format!("http://127.0.0.1:{}", prom.port);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !reqwest::blocking::get(format!("{prom_url}/-/ready"))
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "prometheus did not start");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(14));
    // A window that ended 3 s ago: sent and acknowledged by now.
    compare(&prom_url, &sl_url, now_s() - 3.0);
    // kill -9 mid-stream; Prometheus retries; nothing it was told was written is lost.
    let killed = now_s();
    sl.kill9();
    std::thread::sleep(Duration::from_secs(3));
    let sl = spawn();
    std::thread::sleep(Duration::from_secs(10));
    compare(&prom_url, &sl.api(""), killed + 4.0);
    compare(&prom_url, &sl.api(""), now_s() - 3.0);
    // Prometheus counted no failed samples it gave up on.
    let m = reqwest::blocking::get(format!("{prom_url}/metrics"))
        .unwrap()
        .text()
        .unwrap();
    let failed: f64 = m
        .lines()
        .filter(|l| l.starts_with("prometheus_remote_storage_samples_failed_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(failed, 0.0, "samples Prometheus gave up on");
}

#[test]
fn bad_remote_write_bodies_get_clear_answers() {
    let dir = tempfile::tempdir().unwrap();
    let sl = common::Child::spawn(dir.path());
    let c = reqwest::blocking::Client::new();
    let send = |ct: &str, enc: Option<&str>, body: Vec<u8>| {
        let mut r = c
            .post(sl.api("/api/v1/write"))
            .header("Content-Type", ct)
            .body(body);
        if let Some(e) = enc {
            r = r.header("Content-Encoding", e);
        }
        let r = r.send().unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    let (code, msg) = send(
        "application/x-protobuf",
        Some("snappy"),
        b"\x10not snappy at all".to_vec(),
    );
    assert_eq!(code, 400, "{msg}");
    let (code, _) = send("application/json", Some("snappy"), vec![]);
    assert_eq!(code, 415);
    let (code, msg) = send(
        "application/x-protobuf;proto=io.prometheus.write.v3.Request",
        Some("snappy"),
        vec![],
    );
    assert_eq!(code, 415, "an unknown remote write message: {msg}");
    // A decompression bomb: 1 GiB declared, refused before inflating.
    let mut bomb = Vec::new();
    let mut n: u64 = 1 << 30;
    while n >= 0x80 {
        bomb.push((n as u8) | 0x80);
        n >>= 7;
    }
    bomb.push(n as u8);
    bomb.extend_from_slice(&[0u8; 64]);
    let (code, msg) = send("application/x-protobuf", Some("snappy"), bomb);
    assert_eq!(code, 413, "{msg}");
    // Label values that are not UTF-8: a 400 naming the protobuf error.
    use prost::Message as _;
    use sightline::ingest::remote_write::{Label, Sample, TimeSeries, WriteRequest};
    let series = |name: &str, i: u64| TimeSeries {
        labels: vec![
            Label {
                name: "__name__".into(),
                value: name.into(),
            },
            Label {
                name: "i".into(),
                value: i.to_string(),
            },
        ],
        samples: vec![Sample {
            value: 1.0,
            timestamp: 1_700_000_000_000,
        }],
        ..Default::default()
    };
    let mut raw = WriteRequest {
        timeseries: vec![series("utf8_probe_ZZ", 0)],
        metadata: vec![],
    }
    .encode_to_vec();
    let at = raw.windows(2).position(|w| w == b"ZZ").unwrap();
    raw[at] = 0xff;
    raw[at + 1] = 0xfe;
    let (code, msg) = send(
        "application/x-protobuf",
        Some("snappy"),
        snap::raw::Encoder::new().compress_vec(&raw).unwrap(),
    );
    assert_eq!(code, 400, "{msg}");
    assert!(msg.contains("protobuf"), "{msg}");
    // A million series in one request (about 36 MB inflated): refused whole with 413 from the
    // declared length, before inflating; nothing of it is stored.
    let million = WriteRequest {
        timeseries: (0..1_000_000)
            .map(|i| series("million_series", i))
            .collect(),
        metadata: vec![],
    }
    .encode_to_vec();
    let (code, msg) = send(
        "application/x-protobuf",
        Some("snappy"),
        snap::raw::Encoder::new().compress_vec(&million).unwrap(),
    );
    assert_eq!(code, 413, "{msg}");
    // A good request right after is stored.
    let ok = WriteRequest {
        timeseries: vec![series("after_bad_input", 7)],
        metadata: vec![],
    }
    .encode_to_vec();
    let (code, msg) = send(
        "application/x-protobuf",
        Some("snappy"),
        snap::raw::Encoder::new().compress_vec(&ok).unwrap(),
    );
    assert_eq!(code, 204, "{msg}");
    let v: Value = reqwest::blocking::get(
        sl.api("/api/v1/query?query=count({__name__=~\"million_series|after_bad_input|utf8_probe.*\"})&time=1700000000"),
    )
    .unwrap()
    .json()
    .unwrap();
    assert_eq!(v["data"]["result"][0]["value"][1], "1", "{v}");
    // Still healthy, and the Prometheus 3 OTLP path answers as OTLP/HTTP does.
    assert!(
        reqwest::blocking::get(sl.api("/healthz"))
            .unwrap()
            .status()
            .is_success()
    );
    let r = c
        .post(sl.otlp_http("/api/v1/otlp/v1/metrics"))
        .header("Content-Type", "application/json")
        .body(r#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},"scopeMetrics":[{"metrics":[{"name":"p3_gauge","gauge":{"dataPoints":[{"asDouble":2.5,"timeUnixNano":"1700000000000000000"}]}}]}]}]}"#)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = reqwest::blocking::get(sl.api("/api/v1/query?query=p3_gauge&time=1700000000"))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["data"]["result"][0]["value"][1], "2.5", "{v}");
}

/// Federation: a Prometheus 2.42 scraping Sightline's `/federate` (`honor_labels: true`) stores
/// the series Sightline holds for the matcher, with their latest values and timestamps; a series
/// whose latest sample is a stale marker is not federated.
#[test]
fn prometheus_federates_from_sightline() {
    use prost::Message as _;
    use sightline::ingest::remote_write::{Label, Sample, TimeSeries, WriteRequest};
    let dir = tempfile::tempdir().unwrap();
    let sl = common::Child::spawn(&dir.path().join("sl"));
    let now_ms = (now_s() * 1000.0) as i64;
    let lbl = |n: &str, v: &str| Label {
        name: n.into(),
        value: v.into(),
    };
    let mut ts: Vec<TimeSeries> = (0..50)
        .map(|i| TimeSeries {
            labels: vec![
                lbl("__name__", "fed_metric"),
                lbl("job", "loaded"),
                lbl("idx", &i.to_string()),
            ],
            samples: vec![
                Sample {
                    value: i as f64,
                    timestamp: now_ms - 10_000,
                },
                Sample {
                    value: i as f64 + 0.5,
                    timestamp: now_ms - 5_000,
                },
            ],
            exemplars: vec![],
            histograms: vec![],
        })
        .collect();
    // Prometheus's stale marker as the latest sample.
    ts.push(TimeSeries {
        labels: vec![
            lbl("__name__", "fed_metric"),
            lbl("job", "loaded"),
            lbl("idx", "gone"),
        ],
        samples: vec![
            Sample {
                value: 1.0,
                timestamp: now_ms - 10_000,
            },
            Sample {
                value: f64::from_bits(0x7ff0000000000002),
                timestamp: now_ms - 5_000,
            },
        ],
        exemplars: vec![],
        histograms: vec![],
    });
    // Another job, not asked for.
    ts.push(TimeSeries {
        labels: vec![lbl("__name__", "other_metric"), lbl("job", "other")],
        samples: vec![Sample {
            value: 7.0,
            timestamp: now_ms - 5_000,
        }],
        exemplars: vec![],
        histograms: vec![],
    });
    let body = snap::raw::Encoder::new()
        .compress_vec(
            &WriteRequest {
                timeseries: ts,
                metadata: vec![],
            }
            .encode_to_vec(),
        )
        .unwrap();
    let r = reqwest::blocking::Client::new()
        .post(sl.api("/api/v1/write"))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .body(body)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 204, "{}", r.text().unwrap());
    let text = reqwest::blocking::get(sl.api("/federate?match[]=%7Bjob%3D%22loaded%22%7D"))
        .unwrap()
        .text()
        .unwrap();
    assert!(text.starts_with("# TYPE fed_metric untyped\n"), "{text}");
    assert!(
        !text.contains("idx=\"gone\"") && !text.contains("other_metric"),
        "{text}"
    );
    let port = common::free_port();
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: federate\n    honor_labels: true\n    metrics_path: /federate\n    params:\n      'match[]': ['{{job=\"loaded\"}}']\n    static_configs: [{{targets: ['127.0.0.1:{}']}}]\n",
            sl.http
        ),
    )
    .unwrap();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("prom").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus must be installed (apt-get install prometheus)");
    let _prom = Prom { child, port };
    let prom_url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let got = loop {
        let v: Value = reqwest::blocking::Client::new()
            .post(format!("{prom_url}/api/v1/query"))
            .form(&[("query", "fed_metric[1m]")])
            .send()
            .ok()
            .and_then(|r| r.json().ok())
            .unwrap_or(Value::Null);
        let n = v["data"]["result"].as_array().map_or(0, |a| a.len());
        if n >= 50 {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus did not federate: {v}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let series = got["data"]["result"].as_array().unwrap();
    assert_eq!(series.len(), 50, "federated series");
    for s in series {
        let idx: f64 = s["metric"]["idx"].as_str().unwrap().parse().unwrap();
        assert_eq!(s["metric"]["job"], "loaded");
        assert_eq!(s["metric"]["__name__"], "fed_metric");
        // The latest sample, at Sightline's timestamp (honor_timestamps).
        let vals = s["values"].as_array().unwrap();
        assert_eq!(vals.len(), 1, "{s}");
        assert_eq!(vals[0][1], format!("{}", idx + 0.5));
        assert_eq!(
            (vals[0][0].as_f64().unwrap() * 1000.0).round() as i64,
            now_ms - 5_000
        );
    }
}

/// Remote write 2.0 from a sender built on the official proto definitions
/// (prompb/io/prometheus/write/v2/types.proto): symbols, label references, samples, metadata and
/// a created timestamp; the `*-Written` headers; the series and the counter's zero sample at its
/// created time in the store; a native histogram and an exemplar; a reference past the symbol
/// table is a 400; what was acknowledged survives kill -9.
#[test]
fn remote_write_2_0() {
    use prost::Message as _;
    use sightline::ingest::native_histogram::{BucketSpan, Count, Histogram};
    use sightline::ingest::remote_write::{
        ExemplarV2, MetadataV2, RequestV2, SampleV2, TimeSeriesV2,
    };
    let dir = tempfile::tempdir().unwrap();
    let sl = common::Child::spawn(dir.path());
    let t = (now_s() * 1000.0) as i64 - 60_000;
    let req = RequestV2 {
        symbols: [
            "",
            "__name__",
            "rw2_requests_total",
            "job",
            "api",
            "Requests served.",
            "code",
            "200",
            "rw2_latency_seconds",
            "trace_id",
            "4bf92f3577b34da6a3ce929d0e0e4736",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        timeseries: vec![
            TimeSeriesV2 {
                labels_refs: vec![1, 2, 3, 4, 6, 7],
                samples: vec![
                    SampleV2 {
                        value: 10.0,
                        timestamp: t,
                        start_timestamp: 0,
                    },
                    SampleV2 {
                        value: 12.0,
                        timestamp: t + 15_000,
                        start_timestamp: 0,
                    },
                ],
                histograms: vec![],
                exemplars: vec![ExemplarV2 {
                    labels_refs: vec![9, 10],
                    value: 12.0,
                    timestamp: t + 15_000,
                }],
                metadata: Some(MetadataV2 {
                    kind: 1,
                    help_ref: 5,
                    unit_ref: 0,
                }),
                created_timestamp: t - 30_000,
            },
            TimeSeriesV2 {
                // A native histogram (schema 1: base sqrt 2): 3 observations in (1, 1.414], 1 in
                // (2, 2.83], stored as classic buckets at those bounds.
                labels_refs: vec![1, 8, 3, 4],
                histograms: vec![Histogram {
                    count: Some(Count::Int(4)),
                    sum: 5.5,
                    schema: 1,
                    zero_threshold: 1e-128,
                    positive_spans: vec![
                        BucketSpan {
                            offset: 1,
                            length: 1,
                        },
                        BucketSpan {
                            offset: 1,
                            length: 1,
                        },
                    ],
                    positive_deltas: vec![3, -2],
                    timestamp: t,
                    ..Default::default()
                }],
                ..Default::default()
            },
        ],
    };
    let post = |req: &RequestV2| {
        reqwest::blocking::Client::new()
            .post(sl.api("/api/v1/write"))
            .header(
                "Content-Type",
                "application/x-protobuf;proto=io.prometheus.write.v2.Request",
            )
            .header("Content-Encoding", "snappy")
            .header("X-Prometheus-Remote-Write-Version", "2.0.0")
            .body(
                snap::raw::Encoder::new()
                    .compress_vec(&req.encode_to_vec())
                    .unwrap(),
            )
            .send()
            .unwrap()
    };
    let r = post(&req);
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(
        r.headers()["x-prometheus-remote-write-samples-written"],
        "2"
    );
    assert_eq!(
        r.headers()["x-prometheus-remote-write-exemplars-written"],
        "1"
    );
    assert_eq!(
        r.headers()["x-prometheus-remote-write-histograms-written"],
        "1"
    );
    // The native histogram as classic buckets: histogram_quantile works on it.
    let v: Value = reqwest::blocking::Client::new()
        .post(sl.api("/api/v1/query"))
        .form(&[
            ("query", "rw2_latency_seconds_bucket".to_string()),
            ("time", format!("{:.3}", t as f64 / 1000.0)),
        ])
        .send()
        .unwrap()
        .json()
        .unwrap();
    let mut buckets: Vec<(String, String)> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["metric"]["le"].as_str().unwrap().to_string(),
                s["value"][1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    buckets.sort();
    assert_eq!(
        buckets,
        [
            ("+Inf".to_string(), "4".to_string()),
            ("1.4142135623730951".to_string(), "3".to_string()),
            ("1e-128".to_string(), "0".to_string()),
            ("2.8284271247461903".to_string(), "4".to_string()),
        ],
        "{v}"
    );
    let ex: Value = reqwest::blocking::get(sl.api(&format!(
        "/api/v1/query_exemplars?query=rw2_requests_total&start={}&end={}",
        t / 1000 - 60,
        t / 1000 + 60
    )))
    .unwrap()
    .json()
    .unwrap();
    assert_eq!(
        ex["data"][0]["exemplars"][0]["labels"]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736",
        "{ex}"
    );
    let v: Value = reqwest::blocking::Client::new()
        .post(sl.api("/api/v1/query"))
        .form(&[
            ("query", "rw2_requests_total[2m]".to_string()),
            ("time", format!("{:.3}", (t + 20_000) as f64 / 1000.0)),
        ])
        .send()
        .unwrap()
        .json()
        .unwrap();
    let s = &v["data"]["result"][0];
    assert_eq!(s["metric"]["job"], "api");
    assert_eq!(s["metric"]["code"], "200");
    let vals: Vec<&str> = s["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_str().unwrap())
        .collect();
    assert_eq!(
        vals,
        ["0", "10", "12"],
        "the created timestamp's zero sample, then the samples"
    );
    let meta: Value = reqwest::blocking::get(sl.api("/api/v1/metadata?metric=rw2_requests_total"))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(meta["data"]["rw2_requests_total"][0]["type"], "counter");
    assert_eq!(
        meta["data"]["rw2_requests_total"][0]["help"],
        "Requests served."
    );
    let mut bad = req.clone();
    bad.timeseries[0].labels_refs = vec![1, 42];
    let r = post(&bad);
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().unwrap().contains("out of range"));
    // What was acknowledged survives kill -9: the samples, the created-time zero sample and the
    // histogram's classic series are there after a restart.
    let before = query_raw(&sl.api(""), t);
    sl.kill9();
    let sl = common::Child::spawn(dir.path());
    assert_eq!(query_raw(&sl.api(""), t), before);
    assert!(
        before.contains("\"0\"") && before.contains("\"12\"") && before.contains("+Inf"),
        "{before}"
    );
}

/// The 2.0 test's series (samples and histogram buckets) as one comparable string.
fn query_raw(base: &str, t: i64) -> String {
    let v: Value = reqwest::blocking::Client::new()
        .post(format!("{base}/api/v1/query"))
        .form(&[
            (
                "query",
                "{__name__=~\"rw2_requests_total|rw2_latency_seconds_.*\"}[2m]".to_string(),
            ),
            ("time", format!("{:.3}", (t + 20_000) as f64 / 1000.0)),
        ])
        .send()
        .unwrap()
        .json()
        .unwrap();
    let mut rows: Vec<String> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| format!("{} {}", s["metric"], s["values"]))
        .collect();
    rows.sort();
    rows.join("\n")
}
