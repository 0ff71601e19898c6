//! The HTTP API of Hourbridge: axum routers served by the Lambda functions (through
//! `lambda_http`), each only its own routes ([`HttpFunction`], [`function_router`]), and by the
//! local `hourbridge serve`, all routes at once ([`router`]).
//!
//! Handlers are thin: parse input into domain types, check the caller's role, call the store,
//! map the result. Errors always have the shape `{"error": {"code", "message"}}`
//! ([`ApiError`]); the OpenAPI document at `/openapi.json` is generated from the same handler
//! annotations the router is built from, so the two cannot drift apart.

mod auth;
mod error;
mod extract;
mod limits;
mod paging;
pub mod routes;

use std::sync::Arc;

use axum::Router;
use hourbridge_store::Store;
use utoipa::OpenApi as _;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use auth::{Authenticator, Caller, CallerKind, Member, RawClaims, Service, TrustedClaims};
pub use error::{
    ApiError, ApiResult, DEFAULT_RETRY_AFTER, ErrorBody, ErrorDetail, retry_after_seconds,
};
pub use extract::{
    Body, Day, IdPath, MAX_BODY_BYTES, MAX_HEADER_BYTES, MAX_HEADERS_BYTES, MAX_URI_BYTES,
    QueryParams, RawBody, Segments,
};
pub use limits::{head_limit_error, request_limits};
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

/// The HTTP Lambda functions. Each serves only its own routes, and this is the one route table:
/// `HttpFunction::compose` says which `routes::*` groups a function serves,
/// [`function_router`] builds a Lambda's router from it, [`router`] (the local server) serves
/// all of them, and the template test compares each function's API Gateway events with
/// [`function_openapi`] in both directions.
///
/// `/health` and `/openapi.json` are served by [`HttpFunction::WorkspaceApi`] only (and by the
/// local server): the template routes them there, and every other function answers 404 for
/// them like for any route that is not its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HttpFunction {
    /// Host data: workspaces, people, customers, projects, tasks, assignments, work logs; also
    /// `/health`, `/openapi.json` and the Integrations UI (`/connect`, `/connect/{asset}`).
    WorkspaceApi,
    /// Connections (`/v1/connections/...`), the providers offered (`/v1/providers`), runs
    /// (`/v1/runs/{id}`) and people's links to
    /// provider users (`/v1/people/{id}/integrations/{provider}`: they call the provider).
    Connections,
    /// The OAuth redirect (`/oauth/{provider}/callback`).
    OAuthCallback,
    /// Project integration links, preview, reset-and-sync, clear (`/v1/projects/{id}/integrations/...`).
    ProjectSync,
    /// Provider webhooks (`/webhooks/{provider}/{token}`).
    Webhooks,
}

impl HttpFunction {
    /// Every HTTP function.
    pub const ALL: [HttpFunction; 5] = [
        Self::WorkspaceApi,
        Self::Connections,
        Self::OAuthCallback,
        Self::ProjectSync,
        Self::Webhooks,
    ];

    /// The function's crate under `functions/` (also its binary and `CodeUri` in the template).
    pub fn crate_name(self) -> &'static str {
        match self {
            Self::WorkspaceApi => "workspace-api",
            Self::Connections => "connections",
            Self::OAuthCallback => "oauth-callback",
            Self::ProjectSync => "project-sync",
            Self::Webhooks => "webhooks",
        }
    }

    /// The function of crate `name`, if it is an HTTP function.
    pub fn from_crate_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.crate_name() == name)
    }

    /// Whether the function also serves `GET /openapi.json` (not an annotated handler, so not in
    /// [`function_openapi`]).
    pub fn serves_openapi_json(self) -> bool {
        self == Self::WorkspaceApi
    }

    /// Adds the function's routes to `r`: the route table.
    fn compose(self, r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
        match self {
            Self::WorkspaceApi => {
                let r = routes::health::routes(r);
                let r = routes::connect::routes(r);
                let r = routes::workspaces::routes(r);
                let r = routes::people::routes(r);
                let r = routes::customers::routes(r);
                let r = routes::projects::routes(r);
                routes::worklogs::routes(r)
            }
            Self::Connections => {
                let r = routes::integrations::connection_routes(r);
                let r = routes::providers::routes(r);
                routes::person_links::routes(r)
            }
            Self::OAuthCallback => routes::integrations::callback_routes(r),
            Self::ProjectSync => routes::integrations::project_routes(r),
            Self::Webhooks => routes::webhooks::routes(r),
        }
    }
}

fn parts(functions: &[HttpFunction]) -> (Router<AppState>, OpenApi) {
    let mut r = OpenApiRouter::with_openapi(ApiDoc::openapi());
    for f in functions {
        r = f.compose(r);
    }
    r.split_for_parts()
}

/// The OpenAPI document of the whole API (every function's routes).
pub fn openapi() -> OpenApi {
    parts(&HttpFunction::ALL).1
}

/// The OpenAPI document of the routes one function serves (its part of the route table).
pub fn function_openapi(function: HttpFunction) -> OpenApi {
    parts(&[function]).1
}

/// The router of the local server: every function's routes, and `/openapi.json`. Unknown paths
/// answer 404 and wrong methods 405, both in the error shape.
pub fn router(state: AppState) -> Router {
    finish(parts(&HttpFunction::ALL).0, true, state)
}

/// The router of one HTTP Lambda: only `function`'s routes; every other path (another
/// function's routes included) answers 404 in the error shape.
pub fn function_router(function: HttpFunction, state: AppState) -> Router {
    finish(parts(&[function]).0, function.serves_openapi_json(), state)
}

fn finish(router: Router<AppState>, openapi_json: bool, state: AppState) -> Router {
    let router = if openapi_json {
        // The whole API's document, wherever it is served.
        let doc = Arc::new(openapi());
        router.route(
            "/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        )
    } else {
        router
    };
    router
        .layer(axum::extract::DefaultBodyLimit::max(
            extract::MAX_BODY_BYTES,
        ))
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this path does not support that method",
            )
        })
        .with_state(state)
        // Last, so it wraps every route and both fallbacks: an oversize URI or header block is
        // refused before any handler, auth or extractor looks at it.
        .layer(axum::middleware::from_fn(limits::request_limits))
}
