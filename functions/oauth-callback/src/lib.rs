//! The `oauth-callback` Lambda: `GET /oauth/{provider}/callback`, the provider's redirect after
//! consent. API Gateway routes it without the JWT authorizer; the single-use state identifies the
//! workspace and the admin who started the flow.

use axum::Router;
use hourbridge_runtime::AppContext;

/// The handler: the API router with the authorizer-claims layer.
pub fn app(ctx: &AppContext) -> Router {
    hourbridge_runtime::http_app(ctx)
}
