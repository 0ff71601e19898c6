//! The `workspace-api` Lambda: the host-data routes (people, customers, projects, tasks,
//! assignments, work logs) behind API Gateway's JWT authorizer.

use axum::Router;
use hourbridge_runtime::{AppContext, HttpFunction};

/// This function's part of the route table.
pub const FUNCTION: HttpFunction = HttpFunction::WorkspaceApi;

/// The handler (what `main.rs` runs): this function's routes only (the host-data routes, `/health` and `/openapi.json`), with the
/// authorizer-claims layer; every other path answers 404 in the error shape.
pub fn app(ctx: &AppContext) -> Router {
    hourbridge_runtime::http_app(ctx, FUNCTION)
}
