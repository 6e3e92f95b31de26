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
            .authorize(&request.metadata().clone().into_headers())
            .map_err(status)?;
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
            .authorize(&request.metadata().clone().into_headers())
            .map_err(status)?;
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
            .authorize(&request.metadata().clone().into_headers())
            .map_err(status)?;
        self.0
            .export_logs(request.into_inner(), Transport::Grpc)
            .await
            .map(Response::new)
            .map_err(status)
    }
}

/// tonic answers a message over the size limit with `OUT_OF_RANGE` and undecodable protobuf with
/// `INTERNAL`; the gRPC spec and OTLP clients' retry logic expect `RESOURCE_EXHAUSTED` and
/// `INVALID_ARGUMENT` for those (neither is a server fault), so the status is rewritten on the
/// way out. Only statuses whose message tonic itself wrote are touched.
fn client_fault_statuses(
    mut resp: http::Response<tonic::body::Body>,
) -> http::Response<tonic::body::Body> {
    let status = resp
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok());
    let message = resp
        .headers()
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let fixed = match status {
        Some("11") if message.contains("too%20large") || message.contains("too large") => {
            Some(tonic::Code::ResourceExhausted)
        }
        Some("13")
            if message.contains("failed%20to%20decode%20Protobuf")
                || message.contains("failed to decode Protobuf") =>
        {
            Some(tonic::Code::InvalidArgument)
        }
        _ => None,
    };
    if let Some(code) = fixed {
        resp.headers_mut()
            .insert("grpc-status", http::HeaderValue::from(code as i32));
    }
    resp
}

/// Serves the three OTLP services on the connections from `incoming` (a TCP listener's, or TLS
/// connections with their handshake done) until `shutdown` resolves.
pub async fn serve<I, IO, IE>(
    ingest: Arc<Ingest>,
    incoming: I,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error>
where
    I: tokio_stream::Stream<Item = Result<IO, IE>>,
    IO: tokio::io::AsyncRead
        + tokio::io::AsyncWrite
        + tonic::transport::server::Connected
        + Unpin
        + Send
        + 'static,
    IE: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let limit = ingest.max_grpc_message_bytes;
    let svc = Otlp(ingest);
    tonic::transport::Server::builder()
        .layer(tower::util::MapResponseLayer::new(client_fault_statuses))
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
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}
