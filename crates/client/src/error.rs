//! Typed errors: server answers mirror RFC 9457 problem+json (`status`,
//! `code`, `detail`); everything else is a transport or decoding fault.

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;
use serde_json::Value;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with a 4xx/5xx problem.
    #[error("{detail} ({code})")]
    Api { status: u16, code: String, detail: String },
    /// 429: wait `retry_after` seconds (when the server said) before trying again.
    #[error("{detail} (RATE_LIMITED)")]
    RateLimited { retry_after: Option<u64>, detail: String },
    /// The server could not be reached or the connection broke; the cause
    /// chain (`source()`) has the details.
    #[error("{}", transport_summary(.0))]
    Transport(#[from] reqwest::Error),
    /// The server answered 2xx with a body this client does not understand.
    #[error("unexpected answer from the server: {0}")]
    Decode(String),
    /// Reading or writing a local file or stream failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The request cannot be made as asked (bad base URL, unsupported combination).
    #[error("{0}")]
    Usage(String),
}

impl Error {
    /// The HTTP status of a server answer, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            Error::RateLimited { .. } => Some(429),
            _ => None,
        }
    }

    /// The machine-readable problem code (`INVALID_SIGNATURE`, `NOT_FOUND`, …).
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            Error::RateLimited { .. } => Some("RATE_LIMITED"),
            _ => None,
        }
    }

    /// Builds the error for a failed answer from its status, headers and body.
    pub(crate) fn from_answer(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Error {
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        let field = |name: &str| parsed.as_ref().and_then(|v| v.get(name));
        let detail = match field("detail") {
            Some(Value::String(s)) => s.clone(),
            // FastAPI-style validation lists and other shapes: keep them readable.
            Some(other) if !other.is_null() => other.to_string(),
            _ => field("title")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| {
                    let text = String::from_utf8_lossy(body).trim().to_owned();
                    (!text.is_empty() && text.len() <= 200).then_some(text)
                })
                .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned()),
        };
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Error::RateLimited { retry_after: retry_after(headers), detail };
        }
        let code = field("code")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("HTTP_{}", status.as_u16()));
        Error::Api { status: status.as_u16(), code, detail }
    }
}

fn transport_summary(e: &reqwest::Error) -> &'static str {
    if e.is_connect() {
        "cannot reach the server"
    } else if e.is_timeout() {
        "the server did not answer in time"
    } else {
        "the HTTP exchange with the server failed"
    }
}

/// `Retry-After` in seconds (the HTTP-date form is not used by CodeGate).
fn retry_after(headers: &HeaderMap) -> Option<u64> {
    headers.get(RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn reads_problem_json() {
        let body = br#"{"type":"about:blank","title":"Unauthorized","status":401,"detail":"bad signature","code":"INVALID_SIGNATURE"}"#;
        let e = Error::from_answer(StatusCode::UNAUTHORIZED, &HeaderMap::new(), body);
        assert_eq!(e.to_string(), "bad signature (INVALID_SIGNATURE)");
        assert_eq!(e.status(), Some(401));
        assert_eq!(e.code(), Some("INVALID_SIGNATURE"));
    }

    #[test]
    fn rate_limit_keeps_retry_after() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        let e = Error::from_answer(StatusCode::TOO_MANY_REQUESTS, &h, b"{\"detail\":\"slow\"}");
        assert!(matches!(e, Error::RateLimited { retry_after: Some(7), .. }));
    }

    #[test]
    fn non_json_bodies_still_explain() {
        let e = Error::from_answer(StatusCode::BAD_GATEWAY, &HeaderMap::new(), b"");
        assert_eq!(e.to_string(), "Bad Gateway (HTTP_502)");
    }
}
