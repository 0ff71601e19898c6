//! The `connections` Lambda: install, authorize, status, account choice, remote projects,
//! "synchronize now", disconnect, runs (`/v1/connections/...`, `/v1/runs/...`).

use axum::Router;
use hourbridge_runtime::AppContext;

/// The handler: the API router with the authorizer-claims layer.
pub fn app(ctx: &AppContext) -> Router {
    hourbridge_runtime::http_app(ctx)
}
