//! The `opentelemetry-otlp` crate's metrics exporter as a real client, over gRPC and
//! HTTP/protobuf: a counter, an up-down counter, a histogram in milliseconds and a gauge in
//! degrees Celsius land as exactly the series the Prometheus compatibility rules give (issue 3).

mod common;

use common::sdk::{self, Otlp};

use common::{Server, export, labels};
use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::Resource;

fn record(endpoint: String, grpc: bool, service: &str) {
    let t = if grpc { Otlp::Grpc } else { Otlp::HttpProto };
    let provider = sdk::meter_provider(
        sdk::metric_exporter(t, endpoint),
        Resource::builder()
            .with_service_name(service.to_string())
            .with_attribute(KeyValue::new("service.instance.id", "i-7"))
            .build(),
    );
    let meter = provider.meter("rust-client");
    let c = meter.u64_counter("gpu.jobs").with_unit("{job}").build();
    c.add(2, &[KeyValue::new("queue", "a")]);
    c.add(5, &[KeyValue::new("queue", "a")]);
    let u = meter.i64_up_down_counter("inflight").build();
    u.add(4, &[]);
    u.add(-1, &[]);
    let h = meter
        .f64_histogram("kernel.latency")
        .with_unit("ms")
        .with_boundaries(vec![1.0, 10.0, 100.0])
        .build();
    for v in [0.5, 5.0, 50.0, 500.0] {
        h.record(v, &[KeyValue::new("kernel", "gemm")]);
    }
    let g = meter.f64_gauge("gpu.temperature").with_unit("Cel").build();
    g.record(71.5, &[KeyValue::new("gpu", "0")]);
    provider.force_flush().unwrap();
    provider.shutdown().unwrap();
}

async fn check(server: &Server, service: &str) {
    let got = export(&server.api(""), &format!("{{job=\"{service}\"}}")).await;
    let base = [
        ("job", service),
        ("instance", "i-7"),
        ("otel_scope_name", "rust-client"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut v: Vec<(&str, &str)> = base.to_vec();
        v.extend_from_slice(extra);
        labels(&v)
    };
    let want: Vec<(Vec<(String, String)>, f64)> = vec![
        (with(&[("__name__", "gpu_jobs_total"), ("queue", "a")]), 7.0),
        (with(&[("__name__", "inflight")]), 3.0),
        (
            with(&[("__name__", "gpu_temperature_celsius"), ("gpu", "0")]),
            71.5,
        ),
        (
            with(&[
                ("__name__", "kernel_latency_milliseconds_bucket"),
                ("kernel", "gemm"),
                ("le", "1"),
            ]),
            1.0,
        ),
        (
            with(&[
                ("__name__", "kernel_latency_milliseconds_bucket"),
                ("kernel", "gemm"),
                ("le", "10"),
            ]),
            2.0,
        ),
        (
            with(&[
                ("__name__", "kernel_latency_milliseconds_bucket"),
                ("kernel", "gemm"),
                ("le", "100"),
            ]),
            3.0,
        ),
        (
            with(&[
                ("__name__", "kernel_latency_milliseconds_bucket"),
                ("kernel", "gemm"),
                ("le", "+Inf"),
            ]),
            4.0,
        ),
        (
            with(&[
                ("__name__", "kernel_latency_milliseconds_count"),
                ("kernel", "gemm"),
            ]),
            4.0,
        ),
        (
            with(&[
                ("__name__", "kernel_latency_milliseconds_sum"),
                ("kernel", "gemm"),
            ]),
            555.5,
        ),
    ];
    for (l, v) in &want {
        let Some((_, vals)) = got.get(l) else {
            panic!(
                "{service}: missing {l:?}; stored: {:#?}",
                got.keys().collect::<Vec<_>>()
            );
        };
        assert_eq!(vals.last().copied(), Some(*v), "{l:?}");
    }
    // target_info carries the SDK's other resource attributes, and nothing else is stored.
    let info: Vec<_> = got
        .keys()
        .filter(|l| l.iter().any(|(k, v)| k == "__name__" && v == "target_info"))
        .collect();
    assert_eq!(info.len(), 1, "{info:?}");
    assert!(info[0].contains(&("telemetry_sdk_language".into(), "rust".into())));
    assert_eq!(
        got.len(),
        want.len() + 1,
        "{:#?}",
        got.keys().collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_client_metrics_grpc_and_http() {
    let server = Server::start().await;
    let grpc = server.otlp_grpc();
    let http = server.otlp_http("/v1/metrics");
    tokio::task::spawn_blocking(move || {
        record(http, false, "rust-http");
    })
    .await
    .unwrap();
    // The tonic exporter needs a runtime: run it on this one.
    {
        let grpc = grpc.clone();
        tokio::task::spawn_blocking(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                tokio::task::spawn_blocking(move || record(grpc, true, "rust-grpc"))
                    .await
                    .unwrap()
            });
        })
        .await
        .unwrap();
    }
    check(&server, "rust-http").await;
    check(&server, "rust-grpc").await;
    server.stop().await;
}
