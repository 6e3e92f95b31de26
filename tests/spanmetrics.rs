//! Span metrics, service-graph metrics, Jaeger's Monitor endpoints and GPU-to-trace correlation
//! (issue 10), fed by the `opentelemetry-otlp` crate as a real client. Span times are set
//! explicitly, so every derived figure is known exactly and checked through PromQL: counts,
//! `rate()` at the last write (where Prometheus's extrapolation adds nothing, because each series
//! starts with a zero), and `histogram_quantile` over the known buckets. The GPU part loads the
//! stub NVML library with a scripted utilisation and checks the per-span GPU figures and the GPU
//! seconds and energy attributed to a service by its `process.pid`.

mod common;

use common::sdk::{self, Otlp};

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use common::{Server, get_json};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{
    Span as _, SpanKind, Status, TraceContextExt, Tracer, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde_json::Value;

fn provider(endpoint: &str, service: &str, extra: Vec<KeyValue>) -> SdkTracerProvider {
    sdk::tracer_provider(
        sdk::span_exporter(Otlp::Grpc, endpoint),
        Resource::builder()
            .with_service_name(service.to_string())
            .with_attributes(extra)
            .build(),
    )
}

async fn query_at(base: &str, q: &str, t: Option<f64>) -> Vec<Value> {
    let mut url = format!("{base}/api/v1/query?query={}", urlencode(q));
    if let Some(t) = t {
        url.push_str(&format!("&time={t}"));
    }
    let (status, v) = get_json(&url).await;
    assert_eq!(status, 200, "{q}: {v}");
    v["data"]["result"].as_array().unwrap().clone()
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn scalar(base: &str, q: &str, t: Option<f64>) -> f64 {
    let r = query_at(base, q, t).await;
    assert_eq!(r.len(), 1, "{q}: {r:?}");
    r[0]["value"][1].as_str().unwrap().parse().unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

/// One checkout: frontend server span -> frontend client span -> backend server span (5 ms or
/// 50 ms, an error when asked), which queries a database it names but that is not traced.
fn checkout(
    fe: &SdkTracerProvider,
    be: &SdkTracerProvider,
    t0: SystemTime,
    slow: bool,
    fail: bool,
) {
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let propagator = TraceContextPropagator::new();
    let fe_t = fe.tracer("shop");
    let root = fe_t
        .span_builder("GET /checkout")
        .with_kind(SpanKind::Server)
        .with_start_time(t0)
        .start(&fe_t);
    let root_cx = Context::current_with_span(root);
    let call = fe_t
        .span_builder("POST backend")
        .with_kind(SpanKind::Client)
        .with_start_time(ms(1))
        .start_with_context(&fe_t, &root_cx);
    let call_cx = root_cx.with_span(call);
    let mut carrier = HashMap::new();
    propagator.inject_context(&call_cx, &mut carrier);
    let parent = propagator.extract(&carrier);
    let be_t = be.tracer("payments");
    let dur = if slow { 50 } else { 5 };
    let mut handler = be_t
        .span_builder("POST /charge")
        .with_kind(SpanKind::Server)
        .with_start_time(ms(2))
        .start_with_context(&be_t, &parent);
    if fail {
        handler.set_status(Status::error("card declined"));
    }
    let handler_cx = parent.with_span(handler);
    let mut db = be_t
        .span_builder("SELECT accounts")
        .with_kind(SpanKind::Client)
        .with_start_time(ms(3))
        .with_attributes([KeyValue::new("db.system", "postgresql")])
        .start_with_context(&be_t, &handler_cx);
    db.end_with_timestamp(ms(4));
    handler_cx.span().end_with_timestamp(ms(2 + dur));
    call_cx.span().end_with_timestamp(ms(61));
    root_cx.span().end_with_timestamp(ms(100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn span_metrics_service_graph_and_jaeger_monitor() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(dir, |c| {
        c.spanmetrics.interval = Duration::from_millis(300);
        c.spanmetrics.graph_wait = Duration::from_secs(1);
    })
    .await;
    let base = server.api("");
    let fe = provider(&server.otlp_grpc(), "frontend", vec![]);
    let be = provider(&server.otlp_grpc(), "backend", vec![]);
    let t0 = SystemTime::now() - Duration::from_secs(5);
    for i in 0..20u64 {
        checkout(
            &fe,
            &be,
            t0 + Duration::from_millis(200 * i),
            i >= 10,
            i % 5 == 0,
        );
    }
    fe.force_flush().unwrap();
    be.force_flush().unwrap();

    // Wait for the derived series, including the database edge that needs the pairing wait.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let db = query_at(
            &base,
            "traces_service_graph_request_total{server=\"postgresql\"}",
            None,
        )
        .await;
        let calls = query_at(&base, "sum(traces_spanmetrics_calls_total)", None).await;
        if db.len() == 1
            && db[0]["value"][1] == "20"
            && calls.len() == 1
            && calls[0]["value"][1] == "80"
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "derived metrics incomplete: {db:?} {calls:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Span metrics: Tempo's names and labels, exact counts.
    let charge = "service=\"backend\",span_name=\"POST /charge\",span_kind=\"SPAN_KIND_SERVER\"";
    let err =
        format!("traces_spanmetrics_calls_total{{{charge},status_code=\"STATUS_CODE_ERROR\"}}");
    assert_eq!(scalar(&base, &err, None).await, 4.0);
    let unset =
        format!("traces_spanmetrics_calls_total{{{charge},status_code=\"STATUS_CODE_UNSET\"}}");
    assert_eq!(scalar(&base, &unset, None).await, 16.0);
    let kinds = query_at(
        &base,
        "count by (span_kind) (traces_spanmetrics_calls_total)",
        None,
    )
    .await;
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    // histogram_quantile over the documented buckets: ten spans of 5 ms (le 0.008), ten of
    // 50 ms (le 0.064): the 25th percentile is 0.004 + 0.004 * 5/10, the 75th 0.032 + 0.032 * 5/10.
    let hq = |q: f64| {
        format!(
            "histogram_quantile({q}, sum by (le) (traces_spanmetrics_latency_bucket{{{charge}}}))"
        )
    };
    assert!(close(scalar(&base, &hq(0.25), None).await, 0.006));
    assert!(close(scalar(&base, &hq(0.75), None).await, 0.048));
    let sum = format!("sum(traces_spanmetrics_latency_sum{{{charge}}})");
    assert!(close(
        scalar(&base, &sum, None).await,
        10.0 * 0.005 + 10.0 * 0.05
    ));
    let buckets = query_at(
        &base,
        &format!("traces_spanmetrics_latency_bucket{{{charge},status_code=\"STATUS_CODE_UNSET\"}}"),
        None,
    )
    .await;
    assert_eq!(buckets.len(), 15, "14 bounds and +Inf");

    // rate() at the time of the last write: each series starts with a zero, so Prometheus's
    // extrapolation adds nothing and rate * window is the count exactly.
    let t_last = scalar(&base, &format!("timestamp({err})"), None).await;
    let r = scalar(&base, &format!("rate({err}[10m]) * 600"), Some(t_last)).await;
    assert!(close(r, 4.0), "rate*600 = {r}");

    // Service graph: pairs, failures, both sides' latency, and the virtual nodes.
    let edge = "client=\"frontend\",server=\"backend\"";
    assert_eq!(
        scalar(
            &base,
            &format!("traces_service_graph_request_total{{{edge}}}"),
            None
        )
        .await,
        20.0
    );
    assert_eq!(
        scalar(
            &base,
            &format!("traces_service_graph_request_failed_total{{{edge}}}"),
            None
        )
        .await,
        4.0
    );
    assert!(close(
        scalar(
            &base,
            &format!("traces_service_graph_request_server_seconds_sum{{{edge}}}"),
            None
        )
        .await,
        0.55
    ));
    assert!(close(
        scalar(
            &base,
            &format!("traces_service_graph_request_client_seconds_sum{{{edge}}}"),
            None
        )
        .await,
        20.0 * 0.060
    ));
    assert_eq!(
        scalar(
            &base,
            &format!("traces_service_graph_request_server_seconds_count{{{edge}}}"),
            None
        )
        .await,
        20.0
    );
    assert_eq!(
        scalar(&base, "traces_service_graph_request_total{client=\"user\",server=\"frontend\",connection_type=\"virtual_node\"}", None).await,
        20.0
    );
    assert_eq!(
        scalar(&base, "traces_service_graph_request_total{client=\"backend\",server=\"postgresql\",connection_type=\"database\"}", None).await,
        20.0
    );
    let edges = query_at(&base, "traces_service_graph_request_total", None).await;
    assert_eq!(edges.len(), 3, "{edges:?}");
    // Their metadata is served like any family's.
    let (_, md) = get_json(&format!(
        "{base}/api/v1/metadata?metric=traces_spanmetrics_latency"
    ))
    .await;
    assert_eq!(
        md["data"]["traces_spanmetrics_latency"][0]["type"],
        "histogram"
    );

    // Jaeger's Monitor endpoints answer what the series say.
    let end_ms = (t_last * 1000.0).round() as i64;
    let spm = |path: &str, extra: &str| {
        format!(
            "{base}/api/metrics/{path}?service=backend&endTs={end_ms}&lookback=60000&step=1000&ratePer=600000{extra}"
        )
    };
    let last_point = |v: &Value| -> f64 {
        let pts = v["metrics"][0]["metricPoints"].as_array().unwrap();
        pts.last().unwrap()["gaugeValue"]["doubleValue"]
            .as_f64()
            .unwrap()
    };
    let (status, calls) = get_json(&spm("calls", "")).await;
    assert_eq!(status, 200, "{calls}");
    assert_eq!(calls["name"], "service_call_rate");
    assert_eq!(calls["type"], "GAUGE");
    assert_eq!(
        calls["metrics"][0]["labels"],
        serde_json::json!([{"name": "service_name", "value": "backend"}])
    );
    // Points only where rate() has two samples: the series began a moment before the end.
    let pts = calls["metrics"][0]["metricPoints"].as_array().unwrap();
    assert!(!pts.is_empty() && pts.len() <= 61, "{calls}");
    let ts = pts.last().unwrap()["timestamp"].as_str().unwrap();
    assert!(ts.ends_with('Z') && ts.len() >= 20, "RFC 3339 UTC: {ts}");
    let promql = scalar(
        &base,
        "sum(rate(traces_spanmetrics_calls_total{service=~\"backend\",span_kind=~\"SPAN_KIND_SERVER\"}[10m])) by (service)",
        Some(t_last),
    )
    .await;
    assert!(
        close(last_point(&calls), promql) && close(promql, 20.0 / 600.0),
        "{calls}"
    );
    let (_, errors) = get_json(&spm("errors", "")).await;
    assert_eq!(errors["name"], "service_error_rate");
    assert!(close(last_point(&errors), 0.2), "{errors}");
    let (_, lat) = get_json(&spm("latencies", "&quantile=0.75")).await;
    assert_eq!(lat["name"], "service_latencies");
    assert!(close(last_point(&lat), 48.0), "milliseconds: {lat}");
    let (_, by_op) = get_json(&spm("calls", "&groupByOperation=true")).await;
    assert_eq!(by_op["name"], "service_operation_call_rate");
    let labels = by_op["metrics"][0]["labels"].as_array().unwrap();
    assert!(labels.contains(&serde_json::json!({"name": "operation", "value": "POST /charge"})));
    // The frontend has calls and no errors: its error rate is zero, not missing.
    let (_, fe_err) =
        get_json(&spm("errors", "").replace("service=backend", "service=frontend")).await;
    assert_eq!(last_point(&fe_err), 0.0, "{fe_err}");
    let (_, step) = get_json(&format!("{base}/api/metrics/minstep")).await;
    assert_eq!(step["data"], 1);
    let (status, bad) = get_json(&format!("{base}/api/metrics/calls?spanKind=server")).await;
    assert_eq!(status, 400, "{bad}");

    fe.shutdown().unwrap();
    be.shutdown().unwrap();
    server.stop().await;
}

/// Waits until GPU 0's latest utilisation sample is `want`.
async fn wait_util(base: &str, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = query_at(base, "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\"}", None).await;
        if r.len() == 1 && r[0]["value"][1].as_str().unwrap().parse::<f64>().unwrap() == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "GPU utilisation never became {want}: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpu_use_beside_the_trace_and_per_service() {
    let dir = tempfile::tempdir().unwrap();
    let lib = common::nvml_stub(dir.path());
    let util_file = dir.path().join("util");
    std::fs::write(&util_file, "20").unwrap();
    let sl = common::Child::spawn_with(
        &dir.path().join("data"),
        &[
            ("SIGHTLINE_GPU_ENABLED", "true"),
            ("SIGHTLINE_GPU_LIBRARY", lib.to_str().unwrap()),
            ("SIGHTLINE_GPU_INTERVAL", "1s"),
            ("NVML_STUB_UTIL_FILE", util_file.to_str().unwrap()),
        ],
    );
    let base = sl.api("");
    wait_util(&base, 20.0).await;
    let r = query_at(&base, "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\"}", None).await;
    let host = r[0]["metric"]["Hostname"].as_str().unwrap().to_string();
    // The stub reports the process that loaded it (Sightline) as GPU 0's busy process: spans
    // from a service that says it is that process.
    let pid = sl.child.id() as i64;
    let trainer = provider(
        &format!("http://127.0.0.1:{}", sl.otlp_grpc),
        "trainer",
        vec![
            KeyValue::new("host.name", host.clone()),
            KeyValue::new("process.pid", pid),
        ],
    );
    let tracer = trainer.tracer("train");
    let root = tracer
        .span_builder("epoch")
        .with_start_time(SystemTime::now())
        .start(&tracer);
    let cx = Context::current_with_span(root);
    let a_start = SystemTime::now();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    tracer
        .span_builder("forward (light)")
        .with_start_time(a_start)
        .start_with_context(&tracer, &cx)
        .end_with_timestamp(SystemTime::now());
    std::fs::write(&util_file, "90").unwrap();
    wait_util(&base, 90.0).await;
    let b_start = SystemTime::now();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    tracer
        .span_builder("backward (heavy)")
        .with_start_time(b_start)
        .start_with_context(&tracer, &cx)
        .end_with_timestamp(SystemTime::now());
    let trace_id = cx.span().span_context().trace_id().to_string();
    cx.span().end_with_timestamp(SystemTime::now());
    trainer.force_flush().unwrap();

    let (status, g) = get_json(&format!("{base}/api/traces/{trace_id}/gpu")).await;
    assert_eq!(status, 200, "{g}");
    assert_eq!(g["hosts"], serde_json::json!([host]));
    let gpus = g["gpus"].as_array().unwrap();
    // Both GPUs of the host, and GPU 1's two MIG instances (their memory).
    assert_eq!(gpus.len(), 4, "{g}");
    assert_eq!(gpus[3]["migInstance"], "7", "{g}");
    let util = gpus[0]["series"]["utilization"].as_array().unwrap();
    assert!(util.len() >= 5, "{g}");
    assert!(
        gpus[0]["series"]["powerWatts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p[1] == 312.5)
    );
    let span = |name_start: SystemTime| {
        let ms = name_start
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as f64
            / 1e6;
        g["spans"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| (s["start"].as_f64().unwrap() - ms).abs() < 0.01)
            .unwrap()
            .clone()
    };
    let gpu0 = |s: &Value| -> f64 {
        s["gpus"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["gpu"] == "0")
            .unwrap()["meanUtilization"]
            .as_f64()
            .unwrap()
    };
    let a = span(a_start);
    let b = span(b_start);
    assert_eq!(gpu0(&a), 20.0, "{a}");
    assert_eq!(gpu0(&b), 90.0, "{b}");
    let root_mean = g["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(gpu0)
        .fold(f64::NAN, |m, v| if v > 20.0 && v < 90.0 { v } else { m });
    assert!(
        root_mean > 20.0 && root_mean < 90.0,
        "the root spans both phases: {g}"
    );
    // The stub's XID 79 and power-cap throttling happened within the padded window.
    let events = g["events"].as_array().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "xid" && e["detail"] == "79"),
        "{g}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "throttle" && e["detail"] == "sw_power_cap"),
        "{g}"
    );

    // GPU time and energy attributed to the service by its pid: between two rounds, SM
    // utilisation (75 %) times the seconds between them, and the power (312.5 W, all of it: the
    // process is the GPU's only busy one) times the seconds.
    let deadline = Instant::now() + Duration::from_secs(20);
    let secs_q = "sightline_gpu_service_seconds_total{service=\"trainer\",gpu=\"0\"}[1m]";
    let samples = loop {
        let r = query_at(&base, secs_q, None).await;
        if r.len() == 1 && r[0]["values"].as_array().unwrap().len() >= 3 {
            break r[0]["values"].as_array().unwrap().clone();
        }
        assert!(
            Instant::now() < deadline,
            "no GPU seconds for the service: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let pairs = |v: &[Value]| -> Vec<(f64, f64)> {
        v.iter()
            .map(|p| {
                (
                    p[0].as_f64().unwrap(),
                    p[1].as_str().unwrap().parse().unwrap(),
                )
            })
            .collect()
    };
    let s = pairs(&samples);
    for w in s.windows(2) {
        // Timestamps are whole milliseconds; the JSON's float seconds are not exact.
        let dt = ((w[1].0 - w[0].0) * 1000.0).round() / 1000.0;
        let dv = w[1].1 - w[0].1;
        assert!((dv - 0.75 * dt).abs() < 1e-6, "{dv} GPU seconds in {dt} s");
    }
    let energy = query_at(
        &base,
        "sightline_gpu_service_energy_joules_total{service=\"trainer\",gpu=\"0\"}[1m]",
        None,
    )
    .await;
    let e = pairs(energy[0]["values"].as_array().unwrap());
    assert!(e.len() >= 3);
    for w in e.windows(2) {
        // Timestamps are whole milliseconds; the JSON's float seconds are not exact.
        let dt = ((w[1].0 - w[0].0) * 1000.0).round() / 1000.0;
        let dv = w[1].1 - w[0].1;
        assert!((dv - 312.5 * dt).abs() < 1e-6, "{dv} J in {dt} s");
    }
    trainer.shutdown().unwrap();
}
