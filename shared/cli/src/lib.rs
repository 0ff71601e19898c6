//! The local Hourbridge binary's library: serving the API on an embedded store and issuing
//! tokens, callable from tests without spawning a process.

pub mod demo;
mod head_limits;

use std::future::Future;

use chrono::Duration;
use hourbridge_api::RawClaims;
use hourbridge_domain::{RecordId, Role, WorkspaceId};
use hourbridge_runtime::AppContext;
use tokio::net::TcpListener;

/// Why a token could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// A claim is not valid.
    #[error("{0}")]
    InvalidClaim(String),
    /// The context does not sign tokens (gateway auth mode).
    #[error("tokens are issued by your identity provider when HOURBRIDGE_AUTH=gateway")]
    NotSigning,
}

/// Signs a token for `person` in `workspace` with `role`, valid for `ttl`.
pub fn issue_token(
    ctx: &AppContext,
    workspace: &str,
    person: &str,
    role: &str,
    ttl: Duration,
) -> Result<String, TokenError> {
    WorkspaceId::parse(workspace)
        .map_err(|e| TokenError::InvalidClaim(format!("--workspace {e}")))?;
    RecordId::parse(person).map_err(|e| TokenError::InvalidClaim(format!("--person {e}")))?;
    // `service` is the host product's billing backend (reads, manages add-ons), not a person.
    if role != hourbridge_domain::SERVICE_ROLE {
        Role::parse(role).map_err(|e| {
            TokenError::InvalidClaim(format!("--role {e} (or service, for the billing backend)"))
        })?;
    }
    let claims = RawClaims {
        sub: person.to_owned(),
        ws: workspace.to_owned(),
        role: role.to_owned(),
    };
    let now = ctx.clock.now();
    ctx.auth
        .issue(&claims, now, now + ttl)
        .ok_or(TokenError::NotSigning)
}

/// Serves the API on `listener` until `shutdown` completes, then finishes in-flight requests.
pub async fn serve(
    ctx: &AppContext,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = hourbridge_api::router(ctx.api_state())
        .layer(tower::ServiceBuilder::new().layer(axum::middleware::from_fn(log_request)));
    // Connections that answer hyper's own refusals of a request head (URI, headers beyond what
    // it parses) in the JSON error shape too; below those sizes the router's limits answer.
    axum::serve(head_limits::Listener(listener), app.into_make_service())
        .with_graceful_shutdown(shutdown)
        .await
}

async fn log_request(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let started = std::time::Instant::now();
    let res = next.run(req).await;
    tracing::info!(%method, %path, status = res.status().as_u16(), ms = started.elapsed().as_millis() as u64, "request");
    res
}
