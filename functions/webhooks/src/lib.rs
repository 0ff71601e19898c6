//! The `webhooks` Lambda: `POST /webhooks/{provider}/{token}`, routed by API Gateway without the
//! JWT authorizer; the per-connection path token and the provider's signature authenticate it.

use axum::Router;
use hourbridge_runtime::{AppContext, HttpFunction};

/// This function's part of the route table.
pub const FUNCTION: HttpFunction = HttpFunction::Webhooks;

/// The handler (what `main.rs` runs): this function's routes only (`POST /webhooks/{provider}/{token}`), with the
/// authorizer-claims layer; every other path answers 404 in the error shape.
pub fn app(ctx: &AppContext) -> Router {
    hourbridge_runtime::http_app(ctx, FUNCTION)
}
