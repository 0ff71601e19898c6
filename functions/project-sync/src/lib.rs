//! The `project-sync` Lambda: project integration settings, preview, reset-and-sync and clear
//! data (`/v1/projects/{id}/integrations/...`).

use axum::Router;
use hourbridge_runtime::AppContext;

/// The handler: the API router with the authorizer-claims layer.
pub fn app(ctx: &AppContext) -> Router {
    hourbridge_runtime::http_app(ctx)
}
