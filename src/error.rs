//! The one place where failures become status codes: every module's error maps to an
//! [`ErrorCode`], and only [`ErrorCode::http_status`] and [`ErrorCode::grpc_code`] decide what a
//! client sees (quickwit's `quickwit-proto/src/error.rs` shape). Internal details are logged, not
//! sent.

use axum::http::StatusCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The client's data or parameters are wrong; retrying the same request will not help.
    BadRequest,
    NotFound,
    /// No or wrong credentials (auth is on).
    Unauthenticated,
    /// The (decompressed) request is larger than the configured cap.
    PayloadTooLarge,
    /// A Content-Type or Content-Encoding Sightline does not speak.
    UnsupportedMediaType,
    /// Over the memory budget: retry after a pause.
    Overloaded,
    /// A store cannot take writes right now (disk full, shutting down): retry later.
    Unavailable,
    /// A bug or an unexpected I/O failure on our side.
    Internal,
}

impl ErrorCode {
    pub fn http_status(self) -> StatusCode {
        match self {
            ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::Overloaded => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn grpc_code(self) -> tonic::Code {
        match self {
            ErrorCode::BadRequest => tonic::Code::InvalidArgument,
            ErrorCode::NotFound => tonic::Code::NotFound,
            ErrorCode::Unauthenticated => tonic::Code::Unauthenticated,
            ErrorCode::PayloadTooLarge => tonic::Code::ResourceExhausted,
            ErrorCode::UnsupportedMediaType => tonic::Code::InvalidArgument,
            ErrorCode::Overloaded | ErrorCode::Unavailable => tonic::Code::Unavailable,
            ErrorCode::Internal => tonic::Code::Internal,
        }
    }

    /// Whether a client should retry, and so whether to send `Retry-After` / `RetryInfo`.
    pub fn retryable(self) -> bool {
        matches!(self, ErrorCode::Overloaded | ErrorCode::Unavailable)
    }
}

/// A whole request refused (an export, a write to a queue); mapped to a status by [`ErrorCode`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ExportError {
    pub code: ErrorCode,
    pub message: String,
}

impl ExportError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ExportError {
            code,
            message: message.into(),
        }
    }
}
