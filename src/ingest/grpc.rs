//! OTLP/gRPC (tonic): TraceService, MetricsService, LogsService on one server, gzip accepted and
//! offered, messages over the configured size refused with `RESOURCE_EXHAUSTED`. Each method hands
//! the decoded request to the shared export path in `super`.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::{ExportError, Ingest};
use crate::telemetry::Transport;

#[derive(Clone)]
pub struct Otlp(pub Arc<Ingest>);

fn status(e: ExportError) -> Status {
    if e.code.retryable() {
        Status::with_error_details(
            e.code.grpc_code(),
            e.message,
            ErrorDetails::with_retry_info(Some(Duration::from_secs(1))),
        )
    } else if e.code == crate::error::ErrorCode::Internal {
        tracing::error!(message = %e.message, "otlp/grpc export failed");
        Status::internal("internal error")
    } else {
        Status::new(e.code.grpc_code(), e.message)
    }
}

#[tonic::async_trait]
impl TraceService for Otlp {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        self.0
            .export_traces(request.into_inner(), Transport::Grpc)
            .await
            .map(Response::new)
            .map_err(status)
    }
}

#[tonic::async_trait]
impl MetricsService for Otlp {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        self.0
            .export_metrics(request.into_inner(), Transport::Grpc)
            .await
            .map(Response::new)
            .map_err(status)
    }
}

#[tonic::async_trait]
impl LogsService for Otlp {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        self.0
            .export_logs(request.into_inner(), Transport::Grpc)
            .await
            .map(Response::new)
            .map_err(status)
    }
}

/// tonic reports an oversized message as `OUT_OF_RANGE`; the gRPC spec (and OTLP clients' retry
/// logic) expect `RESOURCE_EXHAUSTED`, so the status is rewritten on the way out.
fn resource_exhausted_for_oversize(
    mut resp: http::Response<tonic::body::Body>,
) -> http::Response<tonic::body::Body> {
    let oversize = resp.headers().get("grpc-status").is_some_and(|v| v == "11")
        && resp
            .headers()
            .get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|m| m.contains("too%20large") || m.contains("too large"));
    if oversize {
        resp.headers_mut().insert(
            "grpc-status",
            http::HeaderValue::from(tonic::Code::ResourceExhausted as i32),
        );
    }
    resp
}

/// Serves the three OTLP services on `listener` until `shutdown` resolves.
pub async fn serve(
    ingest: Arc<Ingest>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let limit = ingest.max_grpc_message_bytes;
    let svc = Otlp(ingest);
    tonic::transport::Server::builder()
        .layer(tower::util::MapResponseLayer::new(
            resource_exhausted_for_oversize,
        ))
        .add_service(
            TraceServiceServer::new(svc.clone())
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(limit),
        )
        .add_service(
            MetricsServiceServer::new(svc.clone())
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(limit),
        )
        .add_service(
            LogsServiceServer::new(svc)
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(limit),
        )
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener),
            shutdown,
        )
        .await
}
