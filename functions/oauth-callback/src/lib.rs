//! The `oauth-callback` Lambda: `GET /oauth/{provider}/callback`, the provider's redirect after
//! consent. API Gateway routes it without the JWT authorizer; the single-use state identifies the
//! workspace and the admin who started the flow.

use axum::Router;
use hourbridge_runtime::{AppContext, HttpFunction};

/// This function's part of the route table.
pub const FUNCTION: HttpFunction = HttpFunction::OAuthCallback;

/// The handler (what `main.rs` runs): this function's routes only (`GET /oauth/{provider}/callback`), with the
/// authorizer-claims layer; every other path answers 404 in the error shape.
pub fn app(ctx: &AppContext) -> Router {
    hourbridge_runtime::http_app(ctx, FUNCTION)
}
