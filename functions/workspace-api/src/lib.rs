//! The `workspace-api` Lambda: the host-data routes of the API behind API Gateway (HTTP API,
//! JWT authorizer). The authorizer has verified the token; [`app`] hands its claims to the API.

use axum::Router;
use hourbridge_runtime::{AppContext, gateway_claims};

/// The handler: the API router with the authorizer-claims layer.
pub fn app(ctx: &AppContext) -> Router {
    hourbridge_api::router(ctx.api_state()).layer(axum::middleware::from_fn(gateway_claims))
}
