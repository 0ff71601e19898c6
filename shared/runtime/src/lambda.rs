//! Glue between Lambda events and the API.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use hourbridge_api::{RawClaims, TrustedClaims};
use lambda_http::request::RequestContext;

/// Middleware for HTTP Lambdas: copies the claims that API Gateway's JWT authorizer verified
/// (`requestContext.authorizer.jwt.claims`) into [`TrustedClaims`], which the API trusts in
/// gateway mode. Requests without an authorizer context get none and answer 401.
pub async fn gateway_claims(mut req: Request, next: Next) -> Response {
    let claims = match req.extensions().get::<RequestContext>() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx
            .authorizer
            .as_ref()
            .and_then(|a| a.jwt.as_ref())
            .map(|jwt| &jwt.claims)
            .and_then(|c| {
                Some(RawClaims {
                    sub: c.get("sub")?.clone(),
                    ws: c.get("ws")?.clone(),
                    role: c.get("role")?.clone(),
                })
            }),
        _ => None,
    };
    if let Some(c) = claims {
        req.extensions_mut().insert(TrustedClaims(c));
    }
    next.run(req).await
}
