//! What Sightline acknowledges survives `kill -9`: N batches are acknowledged, the process is
//! killed without warning, restarted on the same data directory, and every acknowledged span must
//! come back by trace id and by search (the index catches up from SQLite on start).

mod common;

use common::build::{kv, now_ns, request, s, span, trace_id};
use common::{Child, data_len, get_json, wait_json};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

const BATCHES: u64 = 40;
const SPANS_PER_BATCH: u64 = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_spans_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    // No index commit can happen before the kill: searchability after restart must come from
    // the catch-up from SQLite.
    let child = Child::spawn_with(
        dir.path(),
        &[("SIGHTLINE_TRACES_INDEX_COMMIT_INTERVAL", "60s")],
    );
    let client = reqwest::Client::new();
    let t0 = now_ns();
    // Batches go in concurrently (so several share a group commit) and the kill comes right after
    // the last acknowledgement, before the index's timer commit.
    let mut tasks = Vec::new();
    for b in 0..BATCHES {
        let url = child.otlp_http("/v1/traces");
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let tid = trace_id(b, 4242);
            let mut spans: Vec<_> = (0..SPANS_PER_BATCH)
                .map(|i| {
                    let mut sp = span(
                        &tid,
                        i + 1,
                        (i > 0).then_some(1),
                        &format!("op-{}", i % 5),
                        t0 + i * 1000,
                        5_000,
                    );
                    sp.attributes.push(kv("batch", s(&b.to_string())));
                    sp
                })
                .collect();
            spans[0].name = "root".into();
            let body = request("durable", spans).encode_to_vec();
            let r = client
                .post(url)
                .header("content-type", "application/x-protobuf")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // A log record too.
    let logs = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kv("service.name", s("durable"))],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    time_unix_nano: t0,
                    severity_number: 17,
                    severity_text: "ERROR".into(),
                    body: Some(opentelemetry_proto::tonic::common::v1::AnyValue {
                        value: Some(s("disk quota exceeded on volume seven")),
                    }),
                    trace_id: trace_id(0, 4242),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let r = client
        .post(child.otlp_http("/v1/logs"))
        .header("content-type", "application/x-protobuf")
        .body(logs.encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    child.kill9();

    let child = Child::spawn(dir.path());
    for b in 0..BATCHES {
        let tid = hex::encode(trace_id(b, 4242));
        let (status, v) = get_json(&child.api(&format!("/api/traces/{tid}"))).await;
        assert_eq!(status, 200, "batch {b} lost after kill -9: {v}");
        assert_eq!(
            v["data"][0]["spans"].as_array().unwrap().len() as u64,
            SPANS_PER_BATCH
        );
    }
    // Searchable after restart: every trace by service, and one by its tag.
    let all = wait_json(
        &child.api(&format!(
            "/api/traces?service=durable&limit={}",
            BATCHES * 2
        )),
        |v| data_len(v) as u64 == BATCHES,
    )
    .await;
    assert_eq!(data_len(&all) as u64, BATCHES);
    let one = get_json(&child.api("/api/traces?service=durable&tags=batch%3D7"))
        .await
        .1;
    assert_eq!(
        common::trace_ids(&one),
        vec![hex::encode(trace_id(7, 4242))]
    );
    let logs = get_json(&child.api("/api/logs?service=durable&q=quota%20seven&severity=error"))
        .await
        .1;
    assert_eq!(data_len(&logs), 1, "{logs}");
    assert_eq!(logs["data"][0]["traceID"], hex::encode(trace_id(0, 4242)));
}
