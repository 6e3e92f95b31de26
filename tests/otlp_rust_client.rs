//! The `opentelemetry-otlp` crate as a real client, over gRPC, HTTP/protobuf and HTTP/JSON: three
//! services with W3C context propagation between them; every span the SDK emitted must come back
//! through the Jaeger API exactly, searches must find exactly the right traces, and the service
//! map must show exactly the cross-service edges.

mod common;

use common::sdk::{self, Otlp};

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use common::{Server, data_len, get_json, trace_ids, wait_json};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{
    Span as _, SpanKind, Status, TraceContextExt, Tracer, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde_json::Value;

#[derive(Clone, Copy, Debug)]
enum Transport {
    Grpc,
    HttpProto,
    HttpJson,
}

fn provider(
    server: &Server,
    service: &str,
    t: Transport,
    memory: &InMemorySpanExporter,
) -> SdkTracerProvider {
    let exporter = match t {
        Transport::Grpc => sdk::span_exporter(Otlp::Grpc, server.otlp_grpc()),
        Transport::HttpProto => sdk::span_exporter(Otlp::HttpProto, server.otlp_http("/v1/traces")),
        Transport::HttpJson => sdk::span_exporter(Otlp::HttpJson, server.otlp_http("/v1/traces")),
    };
    SdkTracerProvider::builder()
        .with_resource(
            Resource::builder()
                .with_service_name(service.to_string())
                .with_attribute(KeyValue::new("deployment.environment", "test"))
                .build(),
        )
        .with_batch_exporter(exporter)
        .with_simple_exporter(memory.clone())
        .build()
}

/// One request through frontend -> backend -> db; `slow` makes the backend span 300 ms long,
/// `fail` marks it as an error.
fn request(
    fe: &SdkTracerProvider,
    be: &SdkTracerProvider,
    db: &SdkTracerProvider,
    route: &str,
    slow: bool,
    fail: bool,
) {
    let propagator = TraceContextPropagator::new();
    let t0 = SystemTime::now();
    let fe_tracer = fe.tracer("checkout-frontend");
    let root = fe_tracer
        .span_builder(format!("GET {route}"))
        .with_kind(SpanKind::Server)
        .with_start_time(t0)
        .with_attributes([
            KeyValue::new("http.route", route.to_string()),
            KeyValue::new("http.status_code", if fail { 500i64 } else { 200 }),
        ])
        .start(&fe_tracer);
    let root_cx = Context::current_with_span(root);
    let mut call = fe_tracer
        .span_builder("call backend")
        .with_kind(SpanKind::Client)
        .with_start_time(t0 + Duration::from_millis(1))
        .start_with_context(&fe_tracer, &root_cx);
    call.add_event("sent", vec![KeyValue::new("bytes", 42i64)]);
    let call_cx = root_cx.with_span(call);
    let mut carrier = HashMap::new();
    propagator.inject_context(&call_cx, &mut carrier);

    // --- the backend, in "another process": only the carrier crosses over ---
    let parent_cx = propagator.extract(&carrier);
    let be_tracer = be.tracer("checkout-backend");
    let be_dur = if slow { 300 } else { 20 };
    let mut handler = be_tracer
        .span_builder("POST /charge")
        .with_kind(SpanKind::Server)
        .with_start_time(t0 + Duration::from_millis(2))
        .with_attributes([
            KeyValue::new("payment.amount", 12.5f64),
            KeyValue::new("payment.currency", "EUR"),
            KeyValue::new("retry", false),
        ])
        .start_with_context(&be_tracer, &parent_cx);
    if fail {
        handler.set_status(Status::error("card declined"));
    }
    let handler_cx = parent_cx.with_span(handler);
    let mut carrier2 = HashMap::new();
    propagator.inject_context(&handler_cx, &mut carrier2);

    // --- the database client library, reporting as its own service ---
    let db_cx = propagator.extract(&carrier2);
    let db_tracer = db.tracer("sql");
    let mut q = db_tracer
        .span_builder("SELECT accounts")
        .with_kind(SpanKind::Client)
        .with_start_time(t0 + Duration::from_millis(3))
        .with_attributes([KeyValue::new("db.system", "postgresql")])
        .start_with_context(&db_tracer, &db_cx);
    q.end_with_timestamp(t0 + Duration::from_millis(5));

    handler_cx
        .span()
        .end_with_timestamp(t0 + Duration::from_millis(2 + be_dur));
    call_cx
        .span()
        .end_with_timestamp(t0 + Duration::from_millis(3 + be_dur));
    root_cx
        .span()
        .end_with_timestamp(t0 + Duration::from_millis(4 + be_dur));
}

fn micros(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

fn tag<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["key"] == key)
        .map(|t| &t["value"])
}

/// Checks one SDK span against its Jaeger rendering.
fn check_span(sdk: &SpanData, trace: &Value) {
    let span_id = sdk.span_context.span_id().to_string();
    let got = trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["spanID"] == span_id.as_str())
        .unwrap_or_else(|| panic!("span {span_id} ({}) missing", sdk.name));
    assert_eq!(got["traceID"], sdk.span_context.trace_id().to_string());
    assert_eq!(got["operationName"], sdk.name.as_ref());
    assert_eq!(got["startTime"], micros(sdk.start_time));
    assert_eq!(
        got["duration"],
        sdk.end_time
            .duration_since(sdk.start_time)
            .unwrap()
            .as_micros() as u64
    );
    let refs = got["references"].as_array().unwrap();
    if sdk.parent_span_id == opentelemetry::trace::SpanId::INVALID {
        assert!(refs.is_empty(), "{got}");
    } else {
        assert_eq!(refs[0]["refType"], "CHILD_OF");
        assert_eq!(refs[0]["spanID"], sdk.parent_span_id.to_string());
    }
    for kv in &sdk.attributes {
        let want: Value = match &kv.value {
            opentelemetry::Value::I64(i) => (*i).into(),
            opentelemetry::Value::F64(f) => (*f).into(),
            opentelemetry::Value::Bool(b) => (*b).into(),
            other => other.to_string().into(),
        };
        assert_eq!(
            tag(got, kv.key.as_str()),
            Some(&want),
            "attribute {} of {}",
            kv.key,
            sdk.name
        );
    }
    let kind = match sdk.span_kind {
        SpanKind::Server => "server",
        SpanKind::Client => "client",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
        SpanKind::Internal => "internal",
    };
    assert_eq!(tag(got, "span.kind"), Some(&Value::from(kind)));
    match &sdk.status {
        Status::Error { description } => {
            assert_eq!(tag(got, "error"), Some(&Value::Bool(true)));
            assert_eq!(tag(got, "otel.status_code"), Some(&Value::from("ERROR")));
            assert_eq!(
                tag(got, "otel.status_description"),
                Some(&Value::from(description.as_ref()))
            );
        }
        _ => assert_eq!(tag(got, "error"), None),
    }
    let logs = got["logs"].as_array().unwrap();
    assert_eq!(logs.len(), sdk.events.len());
    for (ev, log) in sdk.events.iter().zip(logs) {
        assert_eq!(log["timestamp"], micros(ev.timestamp));
        assert_eq!(log["fields"][0]["value"], ev.name.as_ref());
    }
    let process = &trace["processes"][got["processID"].as_str().unwrap()];
    assert!(process["serviceName"].is_string());
}

async fn round_trip(t: Transport) {
    let server = Server::start().await;
    let memory = InMemorySpanExporter::default();
    let fe = provider(&server, "frontend", t, &memory);
    let be = provider(&server, "backend", t, &memory);
    let db = provider(&server, "postgres", t, &memory);
    let started = micros(SystemTime::now());
    // 6 requests: 2 slow, 1 failing; routes /a and /b.
    let plan = [
        ("/a", false, false),
        ("/a", true, false),
        ("/b", false, true),
        ("/b", false, false),
        ("/a", true, false),
        ("/b", false, false),
    ];
    for (route, slow, fail) in plan {
        request(&fe, &be, &db, route, slow, fail);
    }
    for p in [&fe, &be, &db] {
        p.force_flush().unwrap();
    }
    let spans = memory.get_finished_spans().unwrap();
    assert_eq!(spans.len(), 6 * 4);
    let mut by_trace: HashMap<String, Vec<SpanData>> = HashMap::new();
    for s in spans {
        by_trace
            .entry(s.span_context.trace_id().to_string())
            .or_default()
            .push(s);
    }
    assert_eq!(by_trace.len(), 6);
    // Every span, exactly, by trace id (available as soon as the export was acknowledged).
    for (tid, sdk_spans) in &by_trace {
        let (status, v) = get_json(&server.api(&format!("/api/traces/{tid}"))).await;
        assert_eq!(status, 200, "{t:?}: {v}");
        let trace = &v["data"][0];
        assert_eq!(trace["spans"].as_array().unwrap().len(), sdk_spans.len());
        for s in sdk_spans {
            check_span(s, trace);
        }
        let services: std::collections::BTreeSet<&str> = trace["processes"]
            .as_object()
            .unwrap()
            .values()
            .map(|p| p["serviceName"].as_str().unwrap())
            .collect();
        assert_eq!(
            services,
            ["backend", "frontend", "postgres"].into_iter().collect()
        );
    }
    let root_of = |pred: &dyn Fn(&SpanData) -> bool| -> Vec<String> {
        let mut ids: Vec<String> = by_trace
            .iter()
            .filter(|(_, spans)| spans.iter().any(pred))
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    };
    let end = micros(SystemTime::now()) + 1_000_000;
    let q = |extra: &str| server.api(&format!("/api/traces?start={started}&end={end}&{extra}"));
    // By service: all six.
    // Each service's exporter sends on its own, so their spans may land in different index
    // commits: wait until all three are searchable.
    for svc in ["backend", "postgres"] {
        wait_json(&q(&format!("service={svc}")), |v| data_len(v) == 6).await;
    }
    let all = wait_json(&q("service=frontend"), |v| data_len(v) == 6).await;
    assert_eq!(trace_ids(&all), root_of(&|_| true));
    // By operation.
    let a = get_json(&q("service=frontend&operation=GET%20%2Fa"))
        .await
        .1;
    assert_eq!(trace_ids(&a), root_of(&|s| s.name == "GET /a"));
    // By tag, Jaeger's JSON form: the failing trace only.
    let err = get_json(&q("service=backend&tags=%7B%22error%22%3A%22true%22%7D"))
        .await
        .1;
    assert_eq!(
        trace_ids(&err),
        root_of(&|s| matches!(s.status, Status::Error { .. }))
    );
    assert_eq!(data_len(&err), 1);
    // Numeric comparison beyond Jaeger: http.status_code>=500 on the frontend.
    let five = get_json(&q("service=frontend&tags=http.status_code%3E%3D500"))
        .await
        .1;
    assert_eq!(trace_ids(&five), trace_ids(&err));
    // Duration: the two slow traces have a 300 ms backend span.
    let slow = get_json(&q("service=backend&minDuration=250ms")).await.1;
    assert_eq!(
        trace_ids(&slow),
        root_of(&|s| s.name == "POST /charge"
            && s.end_time.duration_since(s.start_time).unwrap() >= Duration::from_millis(250))
    );
    assert_eq!(data_len(&slow), 2);
    let fast = get_json(&q(
        "service=backend&operation=POST%20%2Fcharge&maxDuration=100ms",
    ))
    .await
    .1;
    assert_eq!(data_len(&fast), 4);
    // Limit.
    let two = get_json(&q("service=frontend&limit=2")).await.1;
    assert_eq!(data_len(&two), 2);
    // Service map: exactly the cross-service edges, one call per request each.
    let deps = get_json(&server.api(&format!(
        "/api/dependencies?endTs={}&lookback=3600000",
        end / 1000
    )))
    .await
    .1;
    let mut edges: Vec<(String, String, u64)> = deps["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["parent"].as_str().unwrap().into(),
                d["child"].as_str().unwrap().into(),
                d["callCount"].as_u64().unwrap(),
            )
        })
        .collect();
    edges.sort();
    assert_eq!(
        edges,
        vec![
            ("backend".into(), "postgres".into(), 6),
            ("frontend".into(), "backend".into(), 6)
        ]
    );
    // Services and operations.
    let services = get_json(&server.api("/api/services")).await.1;
    assert_eq!(
        services["data"],
        serde_json::json!(["backend", "frontend", "postgres"])
    );
    let ops = get_json(&server.api("/api/operations?service=frontend&spanKind=server"))
        .await
        .1;
    assert_eq!(
        ops["data"],
        serde_json::json!([{"name": "GET /a", "spanKind": "server"}, {"name": "GET /b", "spanKind": "server"}])
    );
    for p in [fe, be, db] {
        p.shutdown().unwrap();
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opentelemetry_otlp_grpc() {
    round_trip(Transport::Grpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opentelemetry_otlp_http_protobuf() {
    round_trip(Transport::HttpProto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opentelemetry_otlp_http_json() {
    round_trip(Transport::HttpJson).await;
}
