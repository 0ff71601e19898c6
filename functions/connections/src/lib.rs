//! The `connections` Lambda: install, authorize, status, account choice, remote projects,
//! "synchronize now", disconnect, runs (`/v1/connections/...`, `/v1/runs/...`).

use axum::Router;
use hourbridge_runtime::{AppContext, HttpFunction};

/// This function's part of the route table.
pub const FUNCTION: HttpFunction = HttpFunction::Connections;

/// The handler (what `main.rs` runs): this function's routes only (`/v1/connections/...` and `/v1/runs/{id}`), with the
/// authorizer-claims layer; every other path answers 404 in the error shape.
pub fn app(ctx: &AppContext) -> Router {
    hourbridge_runtime::http_app(ctx, FUNCTION)
}
