//! Loki's push API (issue 24, first part): JSON, gzip JSON and snappy protobuf pushes as Promtail
//! and Alloy send them land in the log store and are found by the log search with their stream
//! labels, structured metadata, severity and trace id; a stream with a bad label set and an entry
//! too old get Loki's 400 wording while the rest of the request is stored; what was acknowledged
//! survives kill -9.

mod common;

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;
use serde_json::Value;
use sightline::ingest::loki::{
    EntryAdapter, LabelPairAdapter, PushRequest, StreamAdapter, Timestamp,
};

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

fn logs(base: &str, service: &str) -> Vec<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let v: Value =
            reqwest::blocking::get(format!("{base}/api/logs?service={service}&limit=100"))
                .unwrap()
                .json()
                .unwrap();
        let d = v["data"].as_array().cloned().unwrap_or_default();
        if !d.is_empty() || std::time::Instant::now() > deadline {
            return d;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn loki_pushes_land_in_the_log_store() {
    let dir = tempfile::tempdir().unwrap();
    let sl = common::Child::spawn(dir.path());
    let c = reqwest::blocking::Client::new();
    let t = now_ns();
    // JSON, as the Python handlers and `curl` send it; one stream with a bad label name and one
    // entry from 2001 are refused with Loki's words, the rest stored.
    let json = format!(
        r#"{{"streams":[
            {{"stream":{{"service_name":"checkout","level":"error","env":"prod"}},
              "values":[["{t}","payment failed order=42",{{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","user":"u1"}}],
                        ["1000000000000000000","from 2001"]]}},
            {{"stream":{{"bad-name":"x"}},"values":[["{t}","never stored"]]}}
        ]}}"#
    );
    let r = c
        .post(sl.api("/loki/api/v1/push"))
        .header("Content-Type", "application/json")
        .body(json)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let msg = r.text().unwrap();
    assert!(msg.contains("has timestamp too old"), "{msg}");
    assert!(msg.contains("error parsing labels"), "{msg}");
    // gzip JSON on the OTLP HTTP listener.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(
        format!(r#"{{"streams":[{{"stream":{{"job":"batch"}},"values":[["{}","nightly job done"]]}}]}}"#, t + 1).as_bytes(),
    )
    .unwrap();
    let r = c
        .post(sl.otlp_http("/loki/api/v1/push"))
        .header("Content-Type", "application/json")
        .header("Content-Encoding", "gzip")
        .body(gz.finish().unwrap())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    // Snappy protobuf, as Promtail and Alloy send it (no Content-Encoding header).
    let push = PushRequest {
        streams: vec![StreamAdapter {
            labels: r#"{service_name="checkout", level="info"}"#.into(),
            entries: (0..3)
                .map(|i| EntryAdapter {
                    timestamp: Some(Timestamp {
                        seconds: (t + 10 + i) / 1_000_000_000,
                        nanos: ((t + 10 + i) % 1_000_000_000) as i32,
                    }),
                    line: format!("request {i} served"),
                    structured_metadata: vec![LabelPairAdapter {
                        name: "pod".into(),
                        value: format!("web-{i}"),
                    }],
                })
                .collect(),
            hash: 0,
        }],
    };
    let r = c
        .post(sl.api("/loki/api/v1/push"))
        .header("Content-Type", "application/x-protobuf")
        .body(
            snap::raw::Encoder::new()
                .compress_vec(&push.encode_to_vec())
                .unwrap(),
        )
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 204, "{:?}", r.text());
    // Not snappy: a clear 400.
    let r = c
        .post(sl.api("/loki/api/v1/push"))
        .header("Content-Type", "application/x-protobuf")
        .body(b"\x10garbage".to_vec())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    // A line over Loki's 256 KiB entry limit: refused with Loki's words, its stream's other
    // entry stored.
    let long = "x".repeat(300 << 10);
    let json = format!(
        r#"{{"streams":[{{"stream":{{"service_name":"longline","level":"info"}},
            "values":[["{}","{long}"],["{}","after the long line"]]}}]}}"#,
        t + 20,
        t + 21
    );
    let r = c
        .post(sl.api("/loki/api/v1/push"))
        .header("Content-Type", "application/json")
        .body(json)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let msg = r.text().unwrap();
    assert!(
        msg.contains("Max entry size '262144' bytes exceeded"),
        "{msg}"
    );
    let kept = logs(&sl.api(""), "longline");
    assert_eq!(
        kept.len(),
        1,
        "the stream's other entry is stored: {kept:?}"
    );
    assert_eq!(kept[0]["body"], "after the long line");
    // A 100 MB line is a body past the request cap: 413 before it is read whole.
    let huge = format!(
        r#"{{"streams":[{{"stream":{{"job":"huge"}},"values":[["{t}","{}"]]}}]}}"#,
        "y".repeat(100 << 20)
    );
    let r = c
        .post(sl.api("/loki/api/v1/push"))
        .header("Content-Type", "application/json")
        .body(huge)
        .send();
    // The server may answer and close before taking the whole body.
    if let Ok(r) = r {
        assert_eq!(r.status().as_u16(), 413);
    }
    // A snappy block that declares 4 GiB: 413 from its header, nothing inflated.
    let mut bomb = vec![0xff, 0xff, 0xff, 0xff, 0x0f];
    bomb.extend_from_slice(&[0u8; 64]);
    let r = c
        .post(sl.api("/loki/api/v1/push"))
        .header("Content-Type", "application/x-protobuf")
        .body(bomb)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 413, "{:?}", r.text());

    let check = |base: &str| {
        let got = logs(base, "checkout");
        let bodies: Vec<&str> = got.iter().map(|l| l["body"].as_str().unwrap()).collect();
        assert_eq!(got.len(), 4, "{bodies:?}");
        let failed = got
            .iter()
            .find(|l| l["body"] == "payment failed order=42")
            .unwrap();
        assert_eq!(failed["traceID"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(failed["severityText"], "error");
        assert_eq!(failed["resource"]["env"], "prod");
        assert_eq!(failed["attributes"]["user"], "u1");
        let served = got
            .iter()
            .find(|l| l["body"] == "request 2 served")
            .unwrap();
        assert_eq!(served["attributes"]["pod"], "web-2");
        assert_eq!(served["severityNumber"], 9);
        let batch = logs(base, "batch");
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0]["body"], "nightly job done");
    };
    check(&sl.api(""));
    // Acknowledged pushes survive kill -9.
    sl.kill9();
    let sl = common::Child::spawn(dir.path());
    check(&sl.api(""));
}
