//! The one place where the query APIs turn failures into answers. [`ApiError`] says what went
//! wrong, from a handler's own parameter checks or from a domain error (PromQL evaluation, the
//! metrics store, the trace store); [`ApiError::prometheus`] writes Prometheus's envelope with its
//! `errorType` and status code (as `web/api/v1/api.go` maps them: `bad_data` 400, `not_found`
//! 404, `execution` 422, `timeout` and `unavailable` 503, `internal` 500), and
//! [`ApiError::jaeger`] writes Jaeger's (`{data, total, limit, offset, errors: [{code, msg}]}`)
//! with the same status codes. A store's failure is logged here with its detail and answered
//! with a message that names only what failed. The success envelopes live here too.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::base::gofmt::{QuoteStyle, quote};
use crate::error::ErrorCode;
use crate::promql::EvalError;
use crate::traces::StoreError;
use crate::tsdb::TsdbError;

/// Why a query API request failed.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// The client's parameters are wrong; the message says which and how.
    BadData(String),
    NotFound(String),
    /// The query ran and failed on its own terms (a bad regex at run time, too many samples).
    Execution(String),
    Timeout(String),
    /// A store or the query machinery failed: `what` is shown ("the metrics store"), `detail`
    /// only logged. `code` decides between 503 (retry later) and 500.
    Failed {
        code: ErrorCode,
        what: &'static str,
        detail: String,
    },
}

impl ApiError {
    pub fn bad_data(msg: impl Into<String>) -> ApiError {
        ApiError::BadData(msg.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadData(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Execution(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Failed { code, .. } => match code {
                ErrorCode::Unavailable | ErrorCode::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    /// Prometheus's `errorType`.
    pub fn error_type(&self) -> &'static str {
        match self {
            ApiError::BadData(_) => "bad_data",
            ApiError::NotFound(_) => "not_found",
            ApiError::Execution(_) => "execution",
            ApiError::Timeout(_) => "timeout",
            ApiError::Failed { .. } if self.status() == StatusCode::SERVICE_UNAVAILABLE => {
                "unavailable"
            }
            ApiError::Failed { .. } => "internal",
        }
    }

    /// What the client is told; a failure's detail is logged (once, here) instead.
    fn public_message(&self) -> String {
        match self {
            ApiError::BadData(m)
            | ApiError::NotFound(m)
            | ApiError::Execution(m)
            | ApiError::Timeout(m) => m.clone(),
            ApiError::Failed { what, detail, .. } => {
                tracing::error!(what, error = %detail, "query api request failed");
                format!("{what} could not answer; see the server log")
            }
        }
    }

    /// Prometheus's error envelope, keys in Prometheus's order, strings escaped as Go does.
    pub fn prometheus(self) -> Response {
        let body = format!(
            "{{\"status\":\"error\",\"errorType\":{},\"error\":{}}}",
            quote(self.error_type(), QuoteStyle::Json),
            quote(&self.public_message(), QuoteStyle::Json)
        );
        (
            self.status(),
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }

    /// Jaeger's error envelope.
    pub fn jaeger(self) -> Response {
        let status = self.status();
        let body = json!({
            "data": null, "total": 0, "limit": 0, "offset": 0,
            "errors": [{"code": status.as_u16(), "msg": self.public_message()}],
        });
        (status, Json(body)).into_response()
    }
}

impl From<EvalError> for ApiError {
    fn from(e: EvalError) -> ApiError {
        match e {
            EvalError::Timeout(_) => ApiError::Timeout(e.to_string()),
            EvalError::TooManySamples | EvalError::Execution(_) => {
                ApiError::Execution(e.to_string())
            }
            EvalError::Storage(s) => s.into(),
            EvalError::Internal(detail) => ApiError::Failed {
                code: ErrorCode::Internal,
                what: "the query",
                detail,
            },
        }
    }
}

impl From<TsdbError> for ApiError {
    fn from(e: TsdbError) -> ApiError {
        ApiError::Failed {
            code: e.code(),
            what: "the metrics store",
            detail: e.to_string(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::BadQuery(m) => ApiError::BadData(m),
            other => ApiError::Failed {
                code: other.code(),
                what: "the trace store",
                detail: other.to_string(),
            },
        }
    }
}

/// A task on the blocking pool that did not finish (a bug): logged, answered 500.
impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> ApiError {
        ApiError::Failed {
            code: ErrorCode::Internal,
            what: "the request",
            detail: e.to_string(),
        }
    }
}

/// Prometheus's success envelope around `data`, already JSON.
pub fn prometheus_success_raw(data: &str) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{{\"status\":\"success\",\"data\":{data}}}"),
    )
        .into_response()
}

/// Prometheus's success envelope around `data`.
pub fn prometheus_success(data: Value) -> Response {
    prometheus_success_raw(&data.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(r: Response) -> (u16, Value) {
        let status = r.status().as_u16();
        let b = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        (status, serde_json::from_slice(&b).unwrap())
    }

    #[tokio::test]
    async fn every_kind_maps_to_prometheus_status_and_error_type() {
        let cases = [
            (ApiError::bad_data("x"), 400, "bad_data"),
            (ApiError::NotFound("x".into()), 404, "not_found"),
            (ApiError::Execution("x".into()), 422, "execution"),
            (ApiError::Timeout("x".into()), 503, "timeout"),
            (
                TsdbError::Unavailable("disk".into()).into(),
                503,
                "unavailable",
            ),
            (
                EvalError::Internal("panicked".into()).into(),
                500,
                "internal",
            ),
        ];
        for (e, code, kind) in cases {
            let (s, v) = body(e.prometheus()).await;
            assert_eq!(
                (s, v["status"].as_str(), v["errorType"].as_str()),
                (code, Some("error"), Some(kind))
            );
        }
    }

    #[tokio::test]
    async fn failures_show_what_failed_not_the_detail() {
        let e: ApiError =
            StoreError::Read("sqlite: database disk image is malformed /x/y".into()).into();
        let (s, v) = body(e.jaeger()).await;
        assert_eq!(s, 500);
        let msg = v["errors"][0]["msg"].as_str().unwrap();
        assert!(
            msg.contains("the trace store") && !msg.contains("/x/y"),
            "{msg}"
        );
        assert_eq!(v["errors"][0]["code"], 500);
        assert_eq!(v["data"], Value::Null);
    }
}
