//! The `workspace-api` Lambda: the host-data routes (people, customers, projects, tasks,
//! assignments, work logs) behind API Gateway's JWT authorizer.

use axum::Router;
use hourbridge_runtime::AppContext;

/// The handler: the API router with the authorizer-claims layer.
pub fn app(ctx: &AppContext) -> Router {
    hourbridge_runtime::http_app(ctx)
}
