//! The deliberate limits on a request's head (URI, headers), enforced before routing, and the
//! errors that answer them, in the error shape also where the HTTP layer refuses a request
//! before the router runs.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::extract::{MAX_HEADER_BYTES, MAX_HEADERS_BYTES, MAX_URI_BYTES};
use crate::{ApiError, ErrorBody, ErrorDetail};

fn uri_too_long() -> (StatusCode, &'static str, String) {
    (
        StatusCode::URI_TOO_LONG,
        "uri_too_long",
        format!(
            "the request URI (path and query) is over the limit of {} KiB",
            MAX_URI_BYTES >> 10
        ),
    )
}

fn headers_too_large() -> (StatusCode, &'static str, String) {
    (
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "headers_too_large",
        format!(
            "the request headers are over the limit of {} KiB in all ({} KiB for one header)",
            MAX_HEADERS_BYTES >> 10,
            MAX_HEADER_BYTES >> 10
        ),
    )
}

/// Middleware: a URI over [`MAX_URI_BYTES`] answers 414 `uri_too_long`; header lines over
/// [`MAX_HEADERS_BYTES`] in all, or one over [`MAX_HEADER_BYTES`], answer 431
/// `headers_too_large`. Part of every router ([`crate::router`], [`crate::function_router`]).
pub async fn request_limits(req: Request, next: Next) -> Response {
    let uri_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if uri_len > MAX_URI_BYTES {
        let (status, code, message) = uri_too_long();
        return ApiError::new(status, code, message).into_response();
    }
    let mut total = 0usize;
    for (name, value) in req.headers() {
        // `name: value\r\n`
        let line = name.as_str().len() + value.len() + 4;
        total += line;
        if line > MAX_HEADER_BYTES || total > MAX_HEADERS_BYTES {
            let (status, code, message) = headers_too_large();
            return ApiError::new(status, code, message).into_response();
        }
    }
    next.run(req).await
}

/// The JSON error body for a request the HTTP layer refused by its head before the router ran:
/// 414 is `uri_too_long`, 431 `headers_too_large`, as [`request_limits`] answers them; any other
/// status is `None`. For servers that rewrite the HTTP layer's empty automatic answers.
pub fn head_limit_error(status: StatusCode) -> Option<Vec<u8>> {
    let (_, code, message) = match status {
        StatusCode::URI_TOO_LONG => uri_too_long(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => headers_too_large(),
        _ => return None,
    };
    let body = ErrorBody {
        error: ErrorDetail {
            code: code.to_owned(),
            message,
            fields: Vec::new(),
        },
    };
    serde_json::to_vec(&body).ok()
}
