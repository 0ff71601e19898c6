//! The `webhooks` Lambda: `POST /webhooks/{provider}/{token}`, routed by API Gateway without the
//! JWT authorizer; the per-connection path token and the provider's signature authenticate it.

use axum::Router;
use hourbridge_runtime::AppContext;

/// The handler: the API router with the authorizer-claims layer.
pub fn app(ctx: &AppContext) -> Router {
    hourbridge_runtime::http_app(ctx)
}
