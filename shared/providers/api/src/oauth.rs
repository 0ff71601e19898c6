//! The OAuth 2.0 port: the types of the authorization-code flow and the trait that runs it
//! (implemented over HTTP in `hourbridge-provider-http`), so the sync engine can drive OAuth
//! without an HTTP crate.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hourbridge_domain::SecretValue;

use crate::{OAuth2Spec, ProviderError};

/// Where a provider's OAuth endpoints are, and where it sends the browser back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Authorization endpoint.
    pub authorize_url: String,
    /// Token endpoint.
    pub token_url: String,
    /// Our callback (`HOURBRIDGE_PUBLIC_URL/oauth/{provider}/callback`).
    pub redirect_url: String,
}

/// The OAuth client the customer registered (or ours).
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    /// Client id.
    pub id: String,
    /// Client secret.
    pub secret: SecretValue,
}

/// Tokens from the token endpoint.
#[derive(Debug, Clone)]
pub struct TokenSet {
    /// Bearer token.
    pub access_token: SecretValue,
    /// Refresh token, when the provider issued one.
    pub refresh_token: Option<SecretValue>,
    /// When the access token expires, when the provider said.
    pub expires_at: Option<DateTime<Utc>>,
}

/// The start of an authorization: the URL to send the admin to, and the PKCE verifier to keep
/// (with the state) until the callback.
#[derive(Debug, Clone)]
pub struct Authorization {
    /// Where the admin's browser goes.
    pub url: String,
    /// PKCE verifier, when the provider uses PKCE.
    pub pkce_verifier: Option<SecretValue>,
}

/// Runs the OAuth 2.0 authorization-code flow for a provider.
#[async_trait]
pub trait OAuthFlow: Send + Sync {
    /// Builds the authorization URL for `state`.
    fn authorize(
        &self,
        provider: &'static str,
        spec: &OAuth2Spec,
        endpoints: &Endpoints,
        client: &ClientCredentials,
        state: &str,
    ) -> Result<Authorization, ProviderError>;

    /// Exchanges an authorization code for tokens.
    #[allow(clippy::too_many_arguments)]
    async fn exchange_code(
        &self,
        provider: &'static str,
        spec: &OAuth2Spec,
        endpoints: &Endpoints,
        client: &ClientCredentials,
        code: &str,
        pkce_verifier: Option<&SecretValue>,
        now: DateTime<Utc>,
    ) -> Result<TokenSet, ProviderError>;

    /// Uses a refresh token. When the provider rotates refresh tokens the answer carries the new
    /// one, which the caller must store before it uses the new access token.
    async fn refresh(
        &self,
        provider: &'static str,
        spec: &OAuth2Spec,
        endpoints: &Endpoints,
        client: &ClientCredentials,
        refresh_token: &SecretValue,
        now: DateTime<Utc>,
    ) -> Result<TokenSet, ProviderError>;
}
