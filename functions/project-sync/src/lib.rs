//! The `project-sync` Lambda: project integration settings, preview, reset-and-sync and clear
//! data (`/v1/projects/{id}/integrations/...`).

use axum::Router;
use hourbridge_runtime::{AppContext, HttpFunction};

/// This function's part of the route table.
pub const FUNCTION: HttpFunction = HttpFunction::ProjectSync;

/// The handler (what `main.rs` runs): this function's routes only (`/v1/projects/{id}/integrations/...`), with the
/// authorizer-claims layer; every other path answers 404 in the error shape.
pub fn app(ctx: &AppContext) -> Router {
    hourbridge_runtime::http_app(ctx, FUNCTION)
}
