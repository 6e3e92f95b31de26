//! Bad input gets the documented error and loses nothing else: malformed protobuf and JSON, wrong
//! content type and encoding, a gzip bomb, an oversized gRPC message, 100,000-level nesting, and
//! a flood past the memory budget. After each, a valid export still succeeds.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut};
use common::build::{request, span, trace_id};
use common::{Child, Server, post_proto};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use sightline::ingest::http::RpcStatus;

async fn post(
    url: &str,
    content_type: &str,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", content_type);
    if let Some(e) = encoding {
        req = req.header("content-encoding", e);
    }
    req.body(body).send().await.unwrap()
}

fn valid(n: u64) -> ExportTraceServiceRequest {
    request(
        "svc",
        vec![span(
            &trace_id(n, 77),
            1,
            None,
            "ok",
            common::build::now_ns(),
            1000,
        )],
    )
}

async fn still_serving(url: &str, n: u64) {
    assert_eq!(
        post_proto(url, &valid(n)).await,
        200,
        "server stopped serving after bad input"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_and_content_types() {
    let server = Server::start().await;
    let url = server.otlp_http("/v1/traces");

    let r = post(
        &url,
        "application/x-protobuf",
        None,
        vec![0xff, 0xff, 0xff, 0x0f, 0x01],
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["content-type"], "application/x-protobuf");
    let status = RpcStatus::decode(r.bytes().await.unwrap()).unwrap();
    assert_eq!(status.code, tonic::Code::InvalidArgument as i32);
    assert!(
        status.message.contains("invalid OTLP protobuf"),
        "{}",
        status.message
    );
    still_serving(&url, 1).await;

    let r = post(
        &url,
        "application/json",
        None,
        b"{\"resourceSpans\": [".to_vec(),
    )
    .await;
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["code"], 3);
    assert!(
        v["message"].as_str().unwrap().contains("invalid OTLP JSON"),
        "{v}"
    );
    still_serving(&url, 2).await;

    let r = post(
        &url,
        "application/json",
        None,
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}"#.to_vec(),
    )
    .await;
    assert_eq!(r.status(), 400, "a bad hex id is undecodable JSON");

    let r = post(&url, "text/plain", None, b"hello".to_vec()).await;
    assert_eq!(r.status(), 415);
    let r = post(
        &url,
        "application/x-protobuf",
        Some("br"),
        valid(3).encode_to_vec(),
    )
    .await;
    assert_eq!(r.status(), 415);
    let r = post(
        &url,
        "application/x-protobuf",
        Some("gzip"),
        b"not gzip at all".to_vec(),
    )
    .await;
    assert_eq!(r.status(), 400);

    // Over the cap without compression: 413 without reading it all.
    let r = post(&url, "application/x-protobuf", None, vec![0u8; 21 << 20]).await;
    assert_eq!(r.status(), 413);

    // Gzip accepted, and the JSON answer comes in JSON.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&valid(4).encode_to_vec()).unwrap();
    let r = post(
        &url,
        "application/x-protobuf",
        Some("gzip"),
        gz.finish().unwrap(),
    )
    .await;
    assert_eq!(r.status(), 200);

    // Spans with invalid ids are rejected one by one; the rest are kept (partial success).
    let mut req = valid(5);
    req.resource_spans[0].scope_spans[0]
        .spans
        .push(span(&[0; 16], 2, None, "bad", 1, 1));
    let r = post(
        &url,
        "application/json",
        None,
        serde_json::to_vec(&req).unwrap(),
    )
    .await;
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        v["partialSuccess"]["rejectedSpans"].as_i64().or_else(|| {
            v["partialSuccess"]["rejectedSpans"]
                .as_str()
                .and_then(|s| s.parse().ok())
        }),
        Some(1),
        "{v}"
    );
    let (status, got) =
        common::get_json(&server.api(&format!("/api/traces/{}", hex::encode(trace_id(5, 77)))))
            .await;
    assert_eq!(status, 200);
    assert_eq!(got["data"][0]["spans"].as_array().unwrap().len(), 1);
    server.stop().await;
}

/// Builds `ExportTraceServiceRequest` bytes with one attribute nested `depth` levels deep, without
/// ever holding the nested value as a Rust structure.
fn nested_protobuf(depth: usize) -> Vec<u8> {
    fn varint(mut n: usize, out: &mut Vec<u8>) {
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }
    fn vlen(n: usize) -> usize {
        let mut v = Vec::new();
        varint(n, &mut v);
        v.len()
    }
    // any_len[i]: encoded length of the AnyValue at nesting level i (0 = innermost "x").
    let mut any_len = vec![3usize];
    let mut arr_len = Vec::new();
    for i in 0..depth {
        let a = 1 + vlen(any_len[i]) + any_len[i];
        arr_len.push(a);
        any_len.push(1 + vlen(a) + a);
    }
    let mut value = Vec::with_capacity(any_len[depth]);
    for i in (0..depth).rev() {
        value.push(0x2a); // AnyValue.array_value
        varint(arr_len[i], &mut value);
        value.push(0x0a); // ArrayValue.values
        varint(any_len[i], &mut value);
    }
    value.extend_from_slice(&[0x0a, 0x01, b'x']);
    let field = |tag: u8, payload: &[u8]| {
        let mut v = vec![tag];
        varint(payload.len(), &mut v);
        v.extend_from_slice(payload);
        v
    };
    let mut kv = field(0x0a, b"k");
    kv.extend(field(0x12, &value));
    let mut sp = field(0x0a, &trace_id(9, 9));
    sp.extend(field(0x12, &common::build::span_id(1)));
    sp.extend(field(0x2a, b"deep"));
    sp.extend(field(0x4a, &kv));
    field(0x0a, &field(0x12, &field(0x12, &sp)))
}

fn nested_json(depth: usize) -> Vec<u8> {
    let mut s = String::from(
        r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"deep","attributes":[{"key":"k","value":"#,
    );
    s.push_str(&r#"{"arrayValue":{"values":["#.repeat(depth));
    s.push_str(r#"{"stringValue":"x"}"#);
    s.push_str(&"]}}".repeat(depth));
    s.push_str("}]}]}]}]}");
    s.into_bytes()
}

#[derive(Clone, Default)]
struct Raw;
struct RawCodec;

impl tonic::codec::Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

/// Sends raw bytes as a TraceService/Export call.
async fn grpc_raw(endpoint: &str, body: Vec<u8>) -> Result<Vec<u8>, tonic::Status> {
    let channel = tonic::transport::Channel::from_shared(endpoint.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    );
    grpc.unary(tonic::Request::new(body), path, Raw)
        .await
        .map(|r| r.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_nesting_and_grpc_limits() {
    let server = Server::start().await;
    let url = server.otlp_http("/v1/traces");

    let deep = nested_protobuf(100_000);
    let r = post(&url, "application/x-protobuf", None, deep.clone()).await;
    assert_eq!(r.status(), 400);
    let status = RpcStatus::decode(r.bytes().await.unwrap()).unwrap();
    assert!(
        status.message.contains("recursion limit"),
        "{}",
        status.message
    );
    still_serving(&url, 10).await;

    let r = post(&url, "application/json", None, nested_json(100_000)).await;
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(
        v["message"].as_str().unwrap().contains("recursion limit"),
        "{v}"
    );
    still_serving(&url, 11).await;

    // gRPC: the same nesting is INVALID_ARGUMENT; garbage too; over 4 MiB is RESOURCE_EXHAUSTED.
    let err = grpc_raw(&server.otlp_grpc(), deep).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    let err = grpc_raw(&server.otlp_grpc(), vec![0xff; 64])
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    let mut big = valid(12);
    big.resource_spans[0].scope_spans[0].spans[0].name = "x".repeat(5 << 20);
    let err = grpc_raw(&server.otlp_grpc(), big.encode_to_vec())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
    let ok = grpc_raw(&server.otlp_grpc(), valid(13).encode_to_vec())
        .await
        .unwrap();
    let resp =
        opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse::decode(
            ok.as_slice(),
        )
        .unwrap();
    assert_eq!(resp.partial_success, None);
    let (status, _) =
        common::get_json(&server.api(&format!("/api/traces/{}", hex::encode(trace_id(13, 77)))))
            .await;
    assert_eq!(status, 200, "gRPC export after bad input was not stored");
    server.stop().await;
}

fn vm_hwm_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_bomb_is_413_fast_with_bounded_memory() {
    // 10 GiB of zeros as 160 gzip members of 64 MiB each: about 10 MiB on the wire.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![0u8; 64 << 20]).unwrap();
    let member = gz.finish().unwrap();
    let bomb: Vec<u8> = member
        .iter()
        .copied()
        .cycle()
        .take(member.len() * 160)
        .collect();
    assert!(bomb.len() < 20 << 20, "bomb is {} bytes", bomb.len());

    let dir = tempfile::tempdir().unwrap();
    let child = Child::spawn(dir.path());
    let pid = child.child.id();
    let before = vm_hwm_kb(pid);
    let started = Instant::now();
    let r = post(
        &child.otlp_http("/v1/traces"),
        "application/x-protobuf",
        Some("gzip"),
        bomb,
    )
    .await;
    let elapsed = started.elapsed();
    assert_eq!(r.status(), 413);
    let status = RpcStatus::decode(r.bytes().await.unwrap()).unwrap();
    assert!(
        status.message.contains("decompressed"),
        "{}",
        status.message
    );
    let after = vm_hwm_kb(pid);
    eprintln!("gzip bomb: 413 after {elapsed:?}; peak RSS {before} kB -> {after} kB");
    // Correctness bounds, not performance targets: the bomb must never be inflated whole.
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    assert!(after < 256 * 1024, "peak RSS {after} kB");
    still_serving(&child.otlp_http("/v1/traces"), 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_memory_budget_is_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(dir, |c| c.ingest.memory_budget_bytes = 64 * 1024).await;
    let url = server.otlp_http("/v1/traces");
    let body = {
        let t = trace_id(30, 30);
        let spans = (0..2000)
            .map(|i| span(&t, i + 1, None, "load", common::build::now_ns(), 10))
            .collect();
        request("load", spans).encode_to_vec()
    };
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .header("content-type", "application/x-protobuf")
                .body(body)
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_string()),
            )
        }));
    }
    let mut ok = 0;
    let mut throttled = 0;
    for t in tasks {
        match t.await.unwrap() {
            (200, _) => ok += 1,
            (429, Some(after)) => {
                assert_eq!(after, "1");
                throttled += 1
            }
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert!(ok >= 1 && throttled >= 1, "ok {ok}, throttled {throttled}");
    still_serving(&url, 31).await;

    // gRPC: UNAVAILABLE with a RetryInfo detail.
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (endpoint, body) = (server.otlp_grpc(), body.clone());
        tasks.push(tokio::spawn(async move { grpc_raw(&endpoint, body).await }));
    }
    let (mut ok, mut throttled) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                use tonic_types::StatusExt;
                let retry = status.get_details_retry_info().expect("RetryInfo detail");
                assert_eq!(retry.retry_delay, Some(Duration::from_secs(1)));
                throttled += 1;
            }
        }
    }
    assert!(
        ok >= 1 && throttled >= 1,
        "grpc: ok {ok}, throttled {throttled}"
    );
    server.stop().await;
}
