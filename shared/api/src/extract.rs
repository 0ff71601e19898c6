//! Extractors that turn every malformed input into a coded 4xx instead of axum's plain-text
//! rejections.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use chrono::NaiveDate;
use hourbridge_domain::RecordId;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::ApiError;

/// The largest request body the API takes (webhook deliveries included): 1 MiB. Larger bodies
/// answer 413 `payload_too_large`.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// The longest request URI (path and query, as sent) the API takes: 8 KiB. Longer ones answer
/// 414 `uri_too_long`, also when the HTTP layer refuses them before the API sees them.
pub const MAX_URI_BYTES: usize = 8 << 10;

/// The most request header bytes the API takes, all header lines (`name: value` and line end)
/// counted: 32 KiB. More answer 431 `headers_too_large`, also when the HTTP layer refuses them
/// before the API sees them (more than it buffers, or more than 100 headers).
pub const MAX_HEADERS_BYTES: usize = 32 << 10;

/// The longest single request header line the API takes: 16 KiB. Longer answers 431
/// `headers_too_large`.
pub const MAX_HEADER_BYTES: usize = 16 << 10;

fn payload_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!(
            "the request body is over the limit of {} MiB",
            MAX_BODY_BYTES >> 20
        ),
    )
}

/// A JSON body. Syntax errors are 400 `malformed_json`; well-formed JSON of the wrong shape
/// (unknown field, wrong type, bad date) is 422 `invalid_body`; a missing JSON content type is
/// 415 `unsupported_media_type`.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(JsonRejection::JsonSyntaxError(e)) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("body is not valid JSON: {}", e.body_text()),
            )),
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                e.body_text(),
            )),
            Err(JsonRejection::BytesRejection(e))
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(payload_too_large())
            }
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as application/json",
            )),
            Err(e) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                e.body_text(),
            )),
        }
    }
}

/// A raw body (webhook deliveries, verified byte for byte); over [`MAX_BODY_BYTES`] it is 413
/// `payload_too_large`.
pub struct RawBody(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::body::Bytes::from_request(req, state).await {
            Ok(b) if b.len() > MAX_BODY_BYTES => Err(payload_too_large()),
            Ok(b) => Ok(Self(b)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(payload_too_large()),
            Err(e) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                e.body_text(),
            )),
        }
    }
}

/// Path segments; a segment that is not valid (e.g. not UTF-8) is 400 `invalid_path`.
pub struct Segments<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Segments<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Self(p.0))
            .map_err(|e: PathRejection| {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_path", e.body_text())
            })
    }
}

/// A query string; anything that does not parse is 400 `invalid_query`.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|e: QueryRejection| ApiError::bad_query(e.body_text()))
    }
}

/// A record id from the path. An id that cannot exist answers 404, like any unknown id.
pub struct IdPath(pub RecordId);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|e: PathRejection| {
                    ApiError::new(StatusCode::BAD_REQUEST, "invalid_path", e.body_text())
                })?;
        RecordId::parse(raw)
            .map(Self)
            .map_err(|_| ApiError::not_found("record"))
    }
}

/// A calendar day written strictly as `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Day(pub NaiveDate);

impl Day {
    /// Parses `YYYY-MM-DD` (exactly: no shorter month or day, no time part).
    pub fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        let shape = b.len() == 10
            && b[4] == b'-'
            && b[7] == b'-'
            && b.iter()
                .enumerate()
                .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
        if !shape {
            return None;
        }
        NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().map(Self)
    }
}

impl<'de> Deserialize<'de> for Day {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!("{s:?} is not a date in YYYY-MM-DD form"))
        })
    }
}

/// For PATCH bodies: tells "absent" (`None`) from "set to null" (`Some(None)`).
pub fn double_option<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_must_be_strict_iso_dates() {
        assert!(Day::parse("2026-02-28").is_some());
        assert!(Day::parse("2026-2-28").is_none());
        assert!(Day::parse("2026-02-30").is_none());
        assert!(Day::parse("2026-02-28T00:00").is_none());
        assert!(Day::parse("+202-02-28").is_none());
    }
}
