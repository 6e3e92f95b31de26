//! The Rust OpenTelemetry SDK as the client tests set it up: span and metric exporters over OTLP
//! gRPC, HTTP protobuf or HTTP JSON, and providers with a batch span processor or a periodic
//! metric reader around them.

use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::SdkTracerProvider;

#[derive(Debug, Clone, Copy)]
pub enum Otlp {
    Grpc,
    HttpProto,
    HttpJson,
}

/// A span exporter to `endpoint` (the gRPC address, or the full `/v1/traces` URL).
pub fn span_exporter(t: Otlp, endpoint: impl Into<String>) -> opentelemetry_otlp::SpanExporter {
    let b = opentelemetry_otlp::SpanExporter::builder();
    match t {
        Otlp::Grpc => b.with_tonic().with_endpoint(endpoint).build(),
        Otlp::HttpProto => b
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(endpoint)
            .build(),
        Otlp::HttpJson => b
            .with_http()
            .with_protocol(Protocol::HttpJson)
            .with_endpoint(endpoint)
            .build(),
    }
    .unwrap()
}

/// A metric exporter to `endpoint` (the gRPC address, or the full `/v1/metrics` URL).
pub fn metric_exporter(t: Otlp, endpoint: impl Into<String>) -> opentelemetry_otlp::MetricExporter {
    let b = opentelemetry_otlp::MetricExporter::builder();
    match t {
        Otlp::Grpc => b.with_tonic().with_endpoint(endpoint).build(),
        Otlp::HttpProto => b
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(endpoint)
            .build(),
        Otlp::HttpJson => b
            .with_http()
            .with_protocol(Protocol::HttpJson)
            .with_endpoint(endpoint)
            .build(),
    }
    .unwrap()
}

/// A tracer provider that batches spans to `exporter`.
pub fn tracer_provider(
    exporter: opentelemetry_otlp::SpanExporter,
    resource: Resource,
) -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_resource(resource)
        .with_batch_exporter(exporter)
        .build()
}

/// A meter provider that exports to `exporter` on the SDK's periodic reader.
pub fn meter_provider(
    exporter: opentelemetry_otlp::MetricExporter,
    resource: Resource,
) -> SdkMeterProvider {
    SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter).build())
        .with_resource(resource)
        .build()
}
