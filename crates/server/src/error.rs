//! The one error type of the HTTP layer, and its mapping to RFC 9457
//! `application/problem+json`. Every 4xx/5xx answer is built here.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use codegate_storage::StoreError;
use serde_json::{json, Value};

#[derive(Debug)]
pub enum ApiError {
    /// 400: the request itself is broken (e.g. its body cannot be read).
    BadRequest { detail: String },
    /// 401: no usable credential. `code` says which check failed.
    Unauthorized { code: &'static str, detail: String },
    /// 403: the credential is valid but may not do this.
    Forbidden { code: &'static str, detail: String },
    /// 404: `what` names the missing resource.
    NotFound { what: &'static str },
    /// 422: the input is malformed or breaks a rule.
    Validation { detail: String },
    /// 409: the change conflicts with what exists.
    Conflict { code: &'static str, detail: String },
    /// 402: a project quota is used up.
    QuotaExhausted { detail: String },
    /// 413: the body is larger than `limit` bytes.
    PayloadTooLarge { limit: usize },
    /// 429: the rate limit `policy` is used up; retry in `retry_after` seconds.
    RateLimited { code: &'static str, policy: &'static str, retry_after: u64 },
    /// 503: the database cannot be reached right now.
    Unavailable { detail: String },
    /// 500: a real fault. The detail is logged, never sent.
    Internal { detail: String },
}

impl ApiError {
    pub fn unauthorized(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::Unauthorized { code, detail: detail.into() }
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        ApiError::Forbidden { code: "FORBIDDEN", detail: detail.into() }
    }
    pub fn validation(detail: impl Into<String>) -> Self {
        ApiError::Validation { detail: detail.into() }
    }
    pub fn internal(detail: impl Into<String>) -> Self {
        ApiError::Internal { detail: detail.into() }
    }

    fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            ApiError::BadRequest { detail } => (StatusCode::BAD_REQUEST, "BAD_REQUEST", detail.clone()),
            ApiError::Unauthorized { code, detail } => (StatusCode::UNAUTHORIZED, code, detail.clone()),
            ApiError::Forbidden { code, detail } => (StatusCode::FORBIDDEN, code, detail.clone()),
            ApiError::NotFound { what } => (StatusCode::NOT_FOUND, "NOT_FOUND", format!("{what} not found")),
            ApiError::Validation { detail } => (StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED", detail.clone()),
            ApiError::Conflict { code, detail } => (StatusCode::CONFLICT, code, detail.clone()),
            ApiError::QuotaExhausted { detail } => (StatusCode::PAYMENT_REQUIRED, "QUOTA_EXHAUSTED", detail.clone()),
            ApiError::PayloadTooLarge { limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
                format!("request body is larger than {limit} bytes"),
            ),
            ApiError::RateLimited { code, policy, retry_after } => (
                StatusCode::TOO_MANY_REQUESTS,
                code,
                format!("too many requests (rate limit '{policy}'); retry in {retry_after} s"),
            ),
            ApiError::Unavailable { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "SERVICE_UNAVAILABLE",
                "the database is unavailable; retry shortly".to_owned(),
            ),
            ApiError::Internal { .. } => {
                (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", "an internal error occurred".to_owned())
            }
        }
    }
}

/// A problem+json answer; also used by layers that answer before any handler runs.
pub fn problem(status: StatusCode, code: &str, detail: &str, extra: Option<Value>) -> Response {
    let mut body = json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
        "code": code,
    });
    if let (Some(Value::Object(extra)), Some(obj)) = (extra, body.as_object_mut()) {
        obj.extend(extra);
    }
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal { detail } => tracing::error!(%detail, "internal error"),
            ApiError::Unavailable { detail } => tracing::warn!(%detail, "database unavailable"),
            _ => {}
        }
        let (status, code, detail) = self.parts();
        let extra = match &self {
            ApiError::RateLimited { policy, retry_after, .. } => {
                Some(json!({"policy": policy, "category": policy, "retry_after": retry_after}))
            }
            _ => None,
        };
        let mut response = problem(status, code, &detail, extra);
        if let ApiError::RateLimited { retry_after, .. } = &self {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => ApiError::Conflict {
                code: "CONFLICT",
                detail: match what {
                    "project_name" => "a project with this name already exists".to_owned(),
                    "username" => "a user with this name already exists".to_owned(),
                    other => format!("this {other} already exists"),
                },
            },
            StoreError::Unavailable(detail) => ApiError::Unavailable { detail },
            StoreError::Internal(detail) => ApiError::Internal { detail },
        }
    }
}
