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

/// Builds an exporter from `builder` for transport `t` to `endpoint` (the OTLP crate's span and
/// metric builders share no trait, hence a macro).
macro_rules! exporter {
    ($builder:expr, $t:expr, $endpoint:expr) => {{
        let b = $builder;
        match $t {
            Otlp::Grpc => b.with_tonic().with_endpoint($endpoint).build(),
            Otlp::HttpProto => b
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint($endpoint)
                .build(),
            Otlp::HttpJson => b
                .with_http()
                .with_protocol(Protocol::HttpJson)
                .with_endpoint($endpoint)
                .build(),
        }
        .unwrap()
    }};
}

/// A span exporter to `endpoint` (the gRPC address, or the full `/v1/traces` URL).
pub fn span_exporter(t: Otlp, endpoint: impl Into<String>) -> opentelemetry_otlp::SpanExporter {
    exporter!(opentelemetry_otlp::SpanExporter::builder(), t, endpoint)
}

/// A metric exporter to `endpoint` (the gRPC address, or the full `/v1/metrics` URL).
pub fn metric_exporter(t: Otlp, endpoint: impl Into<String>) -> opentelemetry_otlp::MetricExporter {
    exporter!(opentelemetry_otlp::MetricExporter::builder(), t, endpoint)
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
