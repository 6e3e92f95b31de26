//! Jaeger API semantics beyond the SDK round trip: a 10,000-span trace comes back whole, unknown
//! traces are 404 with Jaeger's `errors` array, ids without leading zeros resolve, the extended tag
//! language works on search, bad parameters are 400s, and logs are searchable by text, severity,
//! trace id and attribute.

mod common;

use common::build::{i, kv, now_ns, request, s, span, trace_id};
use common::{Server, data_len, get_json, post_proto, trace_ids, wait_json};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::AnyValue;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_trace_and_errors() {
    let server = Server::start().await;
    let url = server.otlp_http("/v1/traces");
    let tid = trace_id(1, 10_000);
    let t0 = now_ns();
    // 10,000 spans in 20 exports of 500, each span a child of the previous one's batch root.
    for part in 0..20u64 {
        let spans = (0..500u64)
            .map(|k| {
                let id = part * 500 + k + 1;
                span(
                    &tid,
                    id,
                    (id > 1).then_some(1),
                    &format!("step-{}", id % 7),
                    t0 + id * 10,
                    1000,
                )
            })
            .collect();
        assert_eq!(post_proto(&url, &request("big", spans)).await, 200);
    }
    let (status, v) = get_json(&server.api(&format!("/api/traces/{}", hex::encode(&tid)))).await;
    assert_eq!(status, 200);
    let spans = v["data"][0]["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 10_000);
    let mut ids: Vec<&str> = spans
        .iter()
        .map(|s| s["spanID"].as_str().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 10_000);
    // After the index commit it is still whole (now found through the index, not pending).
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let (_, v) = get_json(&server.api(&format!("/api/traces/{}", hex::encode(&tid)))).await;
    assert_eq!(v["data"][0]["spans"].as_array().unwrap().len(), 10_000);

    let (status, v) = get_json(&server.api("/api/traces/00000000000000000000000000abcdef")).await;
    assert_eq!(status, 404);
    assert_eq!(v["errors"][0]["code"], 404);
    assert_eq!(v["data"], serde_json::Value::Null);
    let (status, v) = get_json(&server.api("/api/traces/not-hex")).await;
    assert_eq!(status, 400);
    assert!(
        v["errors"][0]["msg"]
            .as_str()
            .unwrap()
            .contains("malformed")
    );

    // A trace id with leading zeros, asked for without them.
    let short = {
        let mut t = [0u8; 16];
        t[15] = 0xab;
        t[14] = 0x0c;
        t.to_vec()
    };
    assert_eq!(
        post_proto(
            &url,
            &request("big", vec![span(&short, 1, None, "tiny", t0, 5)])
        )
        .await,
        200
    );
    let (status, v) = get_json(&server.api("/api/traces/cab")).await;
    assert_eq!(status, 200);
    assert_eq!(v["data"][0]["traceID"], "00000000000000000000000000000cab");

    for (q, why) in [
        ("/api/traces", "service is required"),
        ("/api/traces?service=big&minDuration=soon", "bad duration"),
        ("/api/traces?service=big&limit=x", "bad limit"),
        ("/api/traces?service=big&tags=a%3D~%28%28", "bad regex"),
        ("/api/traces?service=big&tags=%7Bx", "bad JSON tags"),
        ("/api/operations", "service is required"),
    ] {
        let (status, v) = get_json(&server.api(q)).await;
        assert_eq!(status, 400, "{why}: {v}");
        assert_eq!(v["errors"][0]["code"], 400, "{why}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_tag_queries() {
    let server = Server::start().await;
    let url = server.otlp_http("/v1/traces");
    let t0 = now_ns();
    let mut want = std::collections::HashMap::new();
    for n in 0..12u64 {
        let tid = trace_id(n, 555);
        let mut sp = span(&tid, 1, None, "GET /items", t0 + n, 1000);
        sp.attributes
            .push(kv("http.status_code", i(200 + (n as i64 % 4) * 100)));
        sp.attributes
            .push(kv("user", s(if n % 3 == 0 { "alice" } else { "bob" })));
        if n % 2 == 0 {
            sp.attributes.push(kv("cache.hit", s("yes")));
        }
        want.insert(n, hex::encode(&tid));
        // Traces 8 to 11 come from pods whose resources say where they run (resource
        // attributes are indexed once per resource, and match as the span's own would).
        let mut req = request("shop", vec![sp]);
        if n >= 8 {
            let res = req.resource_spans[0].resource.as_mut().unwrap();
            res.attributes.push(kv(
                "host.name",
                s(if n % 2 == 0 { "node-a" } else { "node-b" }),
            ));
            res.attributes.push(kv("k8s.pod.restarts", i(n as i64)));
        }
        assert_eq!(post_proto(&url, &req).await, 200);
    }
    let expect = |pred: &dyn Fn(u64) -> bool| {
        let mut v: Vec<String> = (0..12)
            .filter(|n| pred(*n))
            .map(|n| want[&n].clone())
            .collect();
        v.sort();
        v
    };
    let q = |tags: &str| {
        server.api(&format!(
            "/api/traces?service=shop&limit=100&tags={}",
            urlencode(tags)
        ))
    };
    wait_json(&q(""), |v| data_len(v) == 12).await;
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("http.status_code>=400", expect(&|n| n % 4 >= 2)),
        ("http.status_code<300", expect(&|n| n % 4 == 0)),
        ("http.status_code=300", expect(&|n| n % 4 == 1)),
        ("user=al*", expect(&|n| n % 3 == 0)),
        ("user=~b.b", expect(&|n| n % 3 != 0)),
        ("user!=alice", expect(&|n| n % 3 != 0)),
        ("cache.hit", expect(&|n| n % 2 == 0)),
        ("!cache.hit", expect(&|n| n % 2 == 1)),
        (
            "!cache.hit user=alice",
            expect(&|n| n % 2 == 1 && n % 3 == 0),
        ),
        (
            r#"{"user":"bob","http.status_code>":"400"}"#,
            expect(&|n| n % 3 != 0 && n % 4 >= 2),
        ),
        ("host.name=node-a", expect(&|n| n >= 8 && n % 2 == 0)),
        ("host.name", expect(&|n| n >= 8)),
        ("!host.name", expect(&|n| n < 8)),
        ("host.name!=node-a", expect(&|n| n < 8 || n % 2 == 1)),
        ("host.name=~node-.", expect(&|n| n >= 8)),
        (
            "host.name=node-b user=bob",
            expect(&|n| n >= 8 && n % 2 == 1 && n % 3 != 0),
        ),
        ("k8s.pod.restarts>=10", expect(&|n| n >= 10)),
        (
            "k8s.pod.restarts<10 !cache.hit",
            expect(&|n| (8..10).contains(&n) && n % 2 == 1),
        ),
    ];
    for (tags, ids) in cases {
        let v = get_json(&q(tags)).await.1;
        assert_eq!(trace_ids(&v), ids, "tags {tags}");
    }
    server.stop().await;
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_searchable() {
    let server = Server::start().await;
    let t0 = now_ns();
    let rec = |body: &str, sev: i32, tid: Option<Vec<u8>>, attr: Option<(&str, &str)>| LogRecord {
        time_unix_nano: t0,
        severity_number: sev,
        body: Some(AnyValue {
            value: Some(s(body)),
        }),
        trace_id: tid.unwrap_or_default(),
        attributes: attr.map(|(k, v)| vec![kv(k, s(v))]).unwrap_or_default(),
        ..Default::default()
    };
    let req = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kv("service.name", s("worker"))],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: vec![
                    rec(
                        "cuda out of memory while loading model",
                        17,
                        Some(trace_id(1, 1)),
                        Some(("gpu", "0")),
                    ),
                    rec(
                        "loaded model in 3.2s",
                        9,
                        Some(trace_id(2, 1)),
                        Some(("gpu", "1")),
                    ),
                    rec("retrying connection to redis", 13, None, None),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    assert_eq!(post_proto(&server.otlp_http("/v1/logs"), &req).await, 200);
    let all = wait_json(&server.api("/api/logs?service=worker"), |v| {
        data_len(v) == 3
    })
    .await;
    assert_eq!(all["data"][0]["service"], "worker");
    for (q, n) in [
        ("q=model", 2),
        ("q=%22out%20of%20memory%22", 1),
        ("severity=warn", 2),
        ("severity=error", 1),
        (
            &format!("traceID={}", hex::encode(trace_id(2, 1))) as &str,
            1,
        ),
        ("tags=gpu%3D0", 1),
        ("service=nobody", 0),
    ] {
        let v = get_json(&server.api(&format!("/api/logs?{q}"))).await.1;
        assert_eq!(data_len(&v), n, "{q}: {v}");
    }
    let (status, _) = get_json(&server.api("/api/logs?severity=loud")).await;
    assert_eq!(status, 400);
    server.stop().await;
}
