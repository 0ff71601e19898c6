//! Who is calling. Every `/v1` call carries `Authorization: Bearer <JWT>` with the claims `sub`
//! (person id), `ws` (workspace id) and `role`. Locally the API verifies HS256 itself; behind
//! API Gateway the JWT authorizer has verified the token and the Lambda glue hands the claims
//! over as [`TrustedClaims`].
//!
//! A token whose `role` is `service` ([`SERVICE_ROLE`]) is the host product's billing backend,
//! not a person: [`CallerKind::Service`]. It reads what a member reads and manages add-ons
//! ([`Service`]); every other write refuses it with 403 `forbidden` before any handler runs,
//! and [`Caller::require`] never admits it.

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use hourbridge_domain::{RecordId, Role, SERVICE_ROLE, SecretValue, Workspace, WorkspaceId};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::{ApiError, AppState};

/// The verified identity of a caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The person (`sub`).
    pub person_id: RecordId,
    /// The workspace (`ws`).
    pub workspace_id: WorkspaceId,
    /// The role (`role`); [`Role::Member`] for a service token, which reads as a member does
    /// (see [`CallerKind`]).
    pub role: Role,
    /// A person or the billing backend's service token.
    pub kind: CallerKind,
}

/// Who holds the token: a person with a [`Role`], or the host product's billing backend.
/// Service is not a role in the order of person roles: neither above nor below any of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallerKind {
    /// A person of the workspace, with [`Caller::role`].
    Person,
    /// The billing backend (`role` claim `service`): reads, and manages add-ons; nothing else.
    Service,
}

impl Caller {
    /// 403 unless the caller is a person whose role is at least `role` (a service token never
    /// passes: it is no person role).
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.kind == CallerKind::Service {
            return Err(service_forbidden());
        }
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this action needs the {role} role or above; you are {}",
                self.role
            )))
        }
    }

    /// The store scope of the caller's workspace.
    pub fn scope(&self) -> &str {
        self.workspace_id.as_str()
    }
}

/// Claims as they appear in a token or an authorizer context, not yet validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawClaims {
    /// Person id.
    pub sub: String,
    /// Workspace id.
    pub ws: String,
    /// Role name.
    pub role: String,
}

/// Claims already verified by a trusted layer (API Gateway's JWT authorizer), inserted as a
/// request extension by the Lambda glue. Clients cannot set extensions, so this cannot be
/// forged from outside; it is only honoured in [`Authenticator::Gateway`] mode.
#[derive(Debug, Clone)]
pub struct TrustedClaims(pub RawClaims);

#[derive(Serialize, Deserialize)]
struct JwtClaims {
    sub: String,
    ws: String,
    role: String,
    exp: i64,
    iat: i64,
}

/// How the API authenticates callers.
pub enum Authenticator {
    /// Verify `Authorization: Bearer` tokens signed with HS256 and this secret (local server).
    Hs256 {
        /// Verification key.
        decoding: DecodingKey,
        /// Signing key, for `hourbridge token`.
        encoding: EncodingKey,
    },
    /// Trust claims an API Gateway JWT authorizer verified ([`TrustedClaims`]).
    Gateway,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Hs256 { .. } => f.write_str("Authenticator::Hs256([REDACTED])"),
            Self::Gateway => f.write_str("Authenticator::Gateway"),
        }
    }
}

fn service_forbidden() -> ApiError {
    ApiError::forbidden(
        "a service token may only read and manage add-ons (PUT/DELETE /v1/workspace/addons/{addon})",
    )
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

impl Authenticator {
    /// HS256 with a shared secret.
    pub fn hs256(secret: &SecretValue) -> Self {
        Self::Hs256 {
            decoding: DecodingKey::from_secret(secret.expose().as_bytes()),
            encoding: EncodingKey::from_secret(secret.expose().as_bytes()),
        }
    }

    /// Signs a token for `claims`, valid until `expires_at` (HS256 mode only).
    pub fn issue(
        &self,
        claims: &RawClaims,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Option<String> {
        let Self::Hs256 { encoding, .. } = self else {
            return None;
        };
        let jwt = JwtClaims {
            sub: claims.sub.clone(),
            ws: claims.ws.clone(),
            role: claims.role.clone(),
            exp: expires_at.timestamp(),
            iat: now.timestamp(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &jwt, encoding).ok()
    }

    /// Authenticates a request's parts for an ordinary route: a service token may only read
    /// (`GET`/`HEAD`), any other method answers 403 `forbidden`.
    pub fn authenticate(&self, parts: &Parts) -> Result<Caller, ApiError> {
        let caller = self.authenticate_any(parts)?;
        if caller.kind == CallerKind::Service
            && !matches!(parts.method, http::Method::GET | http::Method::HEAD)
        {
            return Err(service_forbidden());
        }
        Ok(caller)
    }

    /// Authenticates a request's parts whatever the method (the add-on routes, which check
    /// for [`CallerKind::Service`] themselves).
    fn authenticate_any(&self, parts: &Parts) -> Result<Caller, ApiError> {
        let raw = match self {
            Self::Gateway => parts
                .extensions
                .get::<TrustedClaims>()
                .map(|t| t.0.clone())
                .ok_or_else(|| {
                    unauthorized("no verified claims from the API Gateway authorizer")
                })?,
            Self::Hs256 { decoding, .. } => {
                let header = parts
                    .headers
                    .get(http::header::AUTHORIZATION)
                    .ok_or_else(|| unauthorized("missing Authorization: Bearer <token>"))?;
                let token = header
                    .to_str()
                    .ok()
                    .and_then(|h| h.strip_prefix("Bearer "))
                    .ok_or_else(|| unauthorized("Authorization must be 'Bearer <token>'"))?;
                let mut v = Validation::new(Algorithm::HS256);
                v.set_required_spec_claims(&["exp", "sub"]);
                let data = jsonwebtoken::decode::<JwtClaims>(token.trim(), decoding, &v)
                    .map_err(|_| unauthorized("token is invalid or expired"))?;
                RawClaims {
                    sub: data.claims.sub,
                    ws: data.claims.ws,
                    role: data.claims.role,
                }
            }
        };
        let (role, kind) = if raw.role == SERVICE_ROLE {
            (Role::Member, CallerKind::Service)
        } else {
            let role = Role::parse(&raw.role)
                .map_err(|_| unauthorized("claim 'role' is not a known role"))?;
            (role, CallerKind::Person)
        };
        Ok(Caller {
            person_id: RecordId::parse(raw.sub)
                .map_err(|_| unauthorized("claim 'sub' is not a valid id"))?,
            workspace_id: WorkspaceId::parse(raw.ws)
                .map_err(|_| unauthorized("claim 'ws' is not a valid workspace id"))?,
            role,
            kind,
        })
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        state.auth.authenticate(parts)
    }
}

/// A caller whose workspace exists: every `/v1` route but the bootstrap uses this.
#[derive(Debug, Clone)]
pub struct Member(pub Caller);

impl FromRequestParts<AppState> for Member {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = state.auth.authenticate(parts)?;
        existing_workspace(state, &caller).await?;
        Ok(Self(caller))
    }
}

async fn existing_workspace(state: &AppState, caller: &Caller) -> Result<(), ApiError> {
    let ws = state
        .store
        .get::<Workspace>(caller.scope(), caller.scope())
        .await?;
    if ws.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "workspace_not_found",
            "this workspace does not exist yet; bootstrap it with POST /v1/workspaces",
        ));
    }
    Ok(())
}

/// A service token (the host product's billing backend) of an existing workspace, whatever
/// the method: the add-on routes. People, owners included, answer 403 `forbidden`.
#[derive(Debug, Clone)]
pub struct Service(pub Caller);

impl FromRequestParts<AppState> for Service {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = state.auth.authenticate_any(parts)?;
        if caller.kind != CallerKind::Service {
            return Err(ApiError::forbidden(
                "add-ons are set by the host product's billing backend with a service token, \
                 not by people",
            ));
        }
        existing_workspace(state, &caller).await?;
        Ok(Self(caller))
    }
}
