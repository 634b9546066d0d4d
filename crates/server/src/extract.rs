//! Input parsing that answers with problem+json instead of axum's plain-text rejections.

use crate::error::ApiError;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

/// Parses a JSON body; any failure is a 422 that says what is wrong.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError::validation("the request needs a JSON body"));
    }
    let text = std::str::from_utf8(body).map_err(|_| ApiError::validation("the body is not valid UTF-8"))?;
    serde_json::from_str(text).map_err(|e| ApiError::validation(format!("invalid JSON body: {e}")))
}

/// Path parameters, with problem+json on failure.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e| ApiError::validation(format!("invalid path: {e}")))
    }
}

/// The raw query string's pairs, decoded.
pub fn query_pairs(parts_query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(parts_query.unwrap_or("").as_bytes()).into_owned().collect()
}

/// For PATCH bodies: absent → `None`, `null` → `Some(None)`, value → `Some(Some(v))`.
pub fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Rejects strings longer than `max` characters.
pub fn check_len(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.chars().count() > max {
        return Err(ApiError::validation(format!("{field} must be at most {max} characters")));
    }
    Ok(())
}

/// Rejects identifiers that are not 32 lower-case hex characters, as a 404:
/// nothing with that id can exist.
pub fn check_id(value: &str, what: &'static str) -> Result<(), ApiError> {
    if codegate_domain::ids::is_valid_id(value) {
        Ok(())
    } else {
        Err(ApiError::NotFound { what })
    }
}

/// A request body buffered within the configured JSON limit (413 beyond it).
pub struct Body(pub bytes::Bytes);

impl axum::extract::FromRequest<crate::state::AppState> for Body {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &crate::state::AppState) -> Result<Self, ApiError> {
        let limit = state.config.max_body_bytes;
        read_body(req.into_body(), limit).await.map(Body)
    }
}

/// `page` (≥ 1, default 1) and `page_size` (1–100, default 20) of a paginated listing.
pub fn paging(pairs: &[(String, String)]) -> Result<(u32, u32), ApiError> {
    let mut page = 1;
    let mut page_size = 20;
    for (k, v) in pairs {
        match k.as_str() {
            "page" => {
                page = v
                    .parse()
                    .ok()
                    .filter(|p| (1..=10_000_000).contains(p))
                    .ok_or_else(|| ApiError::validation("page must be an integer from 1 to 10000000"))?
            }
            "page_size" => {
                page_size = v
                    .parse()
                    .ok()
                    .filter(|s| (1..=100).contains(s))
                    .ok_or_else(|| ApiError::validation("page_size must be an integer from 1 to 100"))?
            }
            _ => {}
        }
    }
    Ok((page, page_size))
}

/// The value of a query parameter, if present and not empty.
pub fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, v)| k == name && !v.is_empty()).map(|(_, v)| v.as_str())
}

/// Buffers a body of at most `limit` bytes: 413 beyond it, 400 when it cannot be read.
pub async fn read_body(body: axum::body::Body, limit: usize) -> Result<bytes::Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source())
            .any(|e| e.is::<http_body_util::LengthLimitError>());
        if too_large {
            ApiError::PayloadTooLarge { limit }
        } else {
            ApiError::BadRequest { detail: format!("the request body could not be read: {e}") }
        }
    })
}
