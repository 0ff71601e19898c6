//! `POST /webhooks/{provider}/{token}`: change notifications from providers. No bearer token:
//! the path token is unguessable and per connection, and the provider's signature (when it
//! declares one) is verified before anything is read. Deliveries are de-duplicated; a new one
//! is handed to the provider's handler and the records it names wait for the next sync
//! (see [`hourbridge_sync::webhooks`]).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hourbridge_provider_api::WebhookRequest;
use hourbridge_sync::webhooks::WebhookError;
pub use hourbridge_sync::webhooks::WebhookToken;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::extract::{RawBody, Segments};
use crate::{ApiError, ApiResult, AppState, ErrorBody};

fn unknown() -> ApiError {
    // One answer for every way of being wrong, so tokens cannot be probed.
    ApiError::not_found("webhook")
}

/// Receives a provider webhook: 202 for a new or a repeated delivery alike (providers retry
/// anything else), 401 `invalid_signature` when the signature does not verify, 404 for an
/// unknown token.
#[utoipa::path(post, path = "/webhooks/{provider}/{token}", tag = "webhooks", security(()),
    params(("provider" = String, Path), ("token" = String, Path)),
    request_body(content = String, description = "the provider's payload, verified as sent", content_type = "application/json"),
    responses((status = 202, description = "accepted (new or duplicate)"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn receive(
    State(s): State<AppState>,
    Segments((provider, token)): Segments<(String, String)>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<StatusCode> {
    let request = WebhookRequest {
        headers: headers
            .iter()
            .filter_map(|(k, v)| {
                Some((k.as_str().to_ascii_lowercase(), v.to_str().ok()?.to_owned()))
            })
            .collect::<BTreeMap<_, _>>(),
        body: body.to_vec(),
    };
    match s.engine.receive_webhook(&provider, &token, &request).await {
        Ok(_) => Ok(StatusCode::ACCEPTED),
        Err(WebhookError::Unknown) => Err(unknown()),
        Err(WebhookError::BadSignature) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
            "the webhook signature does not verify",
        )),
        Err(WebhookError::Unreadable(m)) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_delivery",
            format!("the delivery could not be read: {m}"),
        )),
        Err(WebhookError::Sync(e)) => Err(e.into()),
    }
}

pub(crate) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(receive))
}
