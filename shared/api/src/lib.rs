//! The HTTP API of Hourbridge: one axum [`Router`] served by the Lambda functions (through
//! `lambda_http`) and by the local `hourbridge serve`.
//!
//! Handlers are thin: parse input into domain types, check the caller's role, call the store,
//! map the result. Errors always have the shape `{"error": {"code", "message"}}`
//! ([`ApiError`]); the OpenAPI document at `/openapi.json` is generated from the same handler
//! annotations the router is built from, so the two cannot drift apart.

mod auth;
mod error;
mod extract;
mod paging;
pub mod routes;

use std::sync::Arc;

use axum::Router;
use hourbridge_store::Store;
use utoipa::OpenApi as _;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use auth::{Authenticator, Caller, Member, RawClaims, TrustedClaims};
pub use error::{ApiError, ApiResult, ErrorBody, ErrorDetail};
pub use extract::{Body, Day, IdPath, QueryParams};
pub use paging::{List, MAX_LIMIT};
pub use routes::webhooks::WebhookToken;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The store.
    pub store: Store,
    /// How callers are authenticated.
    pub auth: Arc<Authenticator>,
    /// The sync engine (connections, runs).
    pub engine: hourbridge_sync::Engine,
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Hourbridge API",
        description = "Host data and integrations of Hourbridge. Every /v1 call needs `Authorization: Bearer <JWT>` with claims `sub`, `ws`, `role`."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(ErrorBody))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

fn parts() -> (Router<AppState>, OpenApi) {
    let r = OpenApiRouter::with_openapi(ApiDoc::openapi());
    let r = routes::health::routes(r);
    let r = routes::workspaces::routes(r);
    let r = routes::people::routes(r);
    let r = routes::customers::routes(r);
    let r = routes::projects::routes(r);
    let r = routes::worklogs::routes(r);
    let r = routes::integrations::routes(r);
    let r = routes::webhooks::routes(r);
    r.split_for_parts()
}

/// The OpenAPI document of the API.
pub fn openapi() -> OpenApi {
    parts().1
}

/// The API router with its state; also serves `/openapi.json`. Unknown paths answer 404 and
/// wrong methods 405, both in the error shape.
pub fn router(state: AppState) -> Router {
    let (router, doc) = parts();
    let doc = Arc::new(doc);
    router
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        )
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this path does not support that method",
            )
        })
        .with_state(state)
}
