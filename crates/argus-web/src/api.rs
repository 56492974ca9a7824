//! Prometheus API v1 envelopes and error classes.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorType {
    BadData,
    Execution,
    Timeout,
    Canceled,
    Internal,
    Unavailable,
    NotFound,
}

impl ErrorType {
    /// The HTTP status Prometheus sends for each error class.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorType::BadData => StatusCode::BAD_REQUEST,
            ErrorType::Execution => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorType::Timeout | ErrorType::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorType::Canceled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
            ErrorType::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorType::NotFound => StatusCode::NOT_FOUND,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub kind: ErrorType,
    pub message: String,
}

impl ApiError {
    pub fn bad_data(message: String) -> Self {
        Self {
            kind: ErrorType::BadData,
            message,
        }
    }
    pub fn internal(message: String) -> Self {
        Self {
            kind: ErrorType::Internal,
            message,
        }
    }
    pub fn unavailable(message: String) -> Self {
        Self {
            kind: ErrorType::Unavailable,
            message,
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    status: &'static str,
    #[serde(rename = "errorType")]
    error_type: ErrorType,
    error: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            status: "error",
            error_type: self.kind,
            error: &self.message,
        };
        json_response(self.kind.status(), &body)
    }
}

#[derive(Serialize)]
struct SuccessBody<'a, T: Serialize> {
    status: &'static str,
    data: &'a T,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    warnings: &'a [String],
}

/// `{"status":"success","data":…}` (plus `warnings` when there are any).
pub fn success<T: Serialize>(data: &T, warnings: &[String]) -> Response {
    json_response(
        StatusCode::OK,
        &SuccessBody {
            status: "success",
            data,
            warnings,
        },
    )
}

pub fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            bytes,
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("error encoding response: {e}"),
        )
            .into_response(),
    }
}

pub type ApiResult = Result<Response, ApiError>;
