//! The OAuth 2.0 authorization-code flow, driven by a provider's [`OAuth2Spec`], on top of the
//! `oauth2` crate. Endpoint URLs are passed in (not read from the spec) so configuration can
//! point them at sandboxes.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hourbridge_domain::SecretValue;
use hourbridge_provider_api::{
    Authorization, ClientAuth, ClientCredentials, Endpoints, OAuth2Spec, OAuthFlow, ProviderError,
    ProviderErrorKind, TokenSet,
};
use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, Scope, TokenResponse, TokenUrl,
};

type Client = oauth2::Client<
    oauth2::basic::BasicErrorResponse,
    oauth2::basic::BasicTokenResponse,
    oauth2::basic::BasicTokenIntrospectionResponse,
    oauth2::StandardRevocableToken,
    oauth2::basic::BasicRevocationErrorResponse,
    oauth2::EndpointSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
>;

fn config_error(provider: &'static str, what: &str) -> ProviderError {
    ProviderError::new(
        provider,
        ProviderErrorKind::Rejected,
        format!("invalid OAuth configuration: {what}"),
    )
}

fn client(
    provider: &'static str,
    spec: &OAuth2Spec,
    ep: &Endpoints,
    creds: &ClientCredentials,
) -> Result<Client, ProviderError> {
    Ok(BasicClient::new(ClientId::new(creds.id.clone()))
        .set_client_secret(ClientSecret::new(creds.secret.expose().to_owned()))
        .set_auth_uri(
            AuthUrl::new(ep.authorize_url.clone())
                .map_err(|_| config_error(provider, "authorize URL"))?,
        )
        .set_token_uri(
            TokenUrl::new(ep.token_url.clone()).map_err(|_| config_error(provider, "token URL"))?,
        )
        .set_redirect_uri(
            RedirectUrl::new(ep.redirect_url.clone())
                .map_err(|_| config_error(provider, "redirect URL"))?,
        )
        .set_auth_type(match spec.client_auth {
            ClientAuth::BasicHeader => AuthType::BasicAuth,
            ClientAuth::RequestBody => AuthType::RequestBody,
        }))
}

/// Builds the authorization URL for `state`.
fn authorize(
    provider: &'static str,
    spec: &OAuth2Spec,
    ep: &Endpoints,
    creds: &ClientCredentials,
    state: &str,
) -> Result<Authorization, ProviderError> {
    let c = client(provider, spec, ep, creds)?;
    let state = state.to_owned();
    let mut req = c.authorize_url(move || CsrfToken::new(state));
    if !spec.scopes.is_empty() {
        req = req.add_scope(Scope::new(spec.scopes.join(spec.scope_separator)));
    }
    for (k, v) in spec.extra_authorize_params {
        req = req.add_extra_param(*k, *v);
    }
    if spec.scopes.contains(&"openid") {
        // OpenID Connect providers (Hubstaff) expect a nonce.
        req = req.add_extra_param("nonce", CsrfToken::new_random().secret().clone());
    }
    let mut verifier = None;
    if spec.pkce {
        let (challenge, v) = PkceCodeChallenge::new_random_sha256();
        req = req.set_pkce_challenge(challenge);
        verifier = Some(SecretValue::new(v.secret().clone()));
    }
    let (url, _) = req.url();
    Ok(Authorization {
        url: url.to_string(),
        pkce_verifier: verifier,
    })
}

fn map_token_error<RE: std::error::Error + 'static>(
    provider: &'static str,
    e: RequestTokenError<RE, oauth2::basic::BasicErrorResponse>,
) -> ProviderError {
    match e {
        RequestTokenError::ServerResponse(r) => {
            let kind = match r.error() {
                BasicErrorResponseType::InvalidGrant
                | BasicErrorResponseType::InvalidClient
                | BasicErrorResponseType::UnauthorizedClient => ProviderErrorKind::ReauthRequired,
                _ => ProviderErrorKind::Rejected,
            };
            ProviderError::new(
                provider,
                kind,
                format!("token endpoint refused: {}", r.error()),
            )
        }
        // Transport errors name the URL and parse errors quote the body: both go to the detail.
        RequestTokenError::Request(e) => ProviderError::new(
            provider,
            ProviderErrorKind::Transient,
            format!("could not reach the {provider} token endpoint"),
        )
        .with_detail(format!("token endpoint: {e}")),
        RequestTokenError::Parse(e, body) => ProviderError::new(
            provider,
            // A 5xx page or a proxy error is not JSON; only a 2xx we cannot read is a bad response.
            if body.is_empty() {
                ProviderErrorKind::Transient
            } else {
                ProviderErrorKind::InvalidResponse
            },
            format!("the {provider} token endpoint answered something unreadable"),
        )
        .with_detail(format!("token endpoint answer unreadable: {e}")),
        RequestTokenError::Other(m) => ProviderError::new(
            provider,
            ProviderErrorKind::InvalidResponse,
            format!("the {provider} token endpoint answered something unexpected"),
        )
        .with_detail(m),
    }
}

fn token_set(t: &oauth2::basic::BasicTokenResponse, now: DateTime<Utc>) -> TokenSet {
    TokenSet {
        access_token: SecretValue::new(t.access_token().secret().clone()),
        refresh_token: t
            .refresh_token()
            .map(|r| SecretValue::new(r.secret().clone())),
        expires_at: t
            .expires_in()
            .and_then(|d| chrono::Duration::from_std(d).ok())
            .map(|d| now + d),
    }
}

#[allow(clippy::too_many_arguments)]
async fn exchange_code(
    http: &reqwest::Client,
    provider: &'static str,
    spec: &OAuth2Spec,
    ep: &Endpoints,
    creds: &ClientCredentials,
    code: &str,
    pkce_verifier: Option<&SecretValue>,
    now: DateTime<Utc>,
) -> Result<TokenSet, ProviderError> {
    let c = client(provider, spec, ep, creds)?;
    let mut req = c.exchange_code(AuthorizationCode::new(code.to_owned()));
    if let Some(v) = pkce_verifier {
        req = req.set_pkce_verifier(PkceCodeVerifier::new(v.expose().to_owned()));
    }
    let t = req
        .request_async(http)
        .await
        .map_err(|e| map_token_error(provider, e))?;
    Ok(token_set(&t, now))
}

async fn refresh(
    http: &reqwest::Client,
    provider: &'static str,
    spec: &OAuth2Spec,
    ep: &Endpoints,
    creds: &ClientCredentials,
    refresh_token: &SecretValue,
    now: DateTime<Utc>,
) -> Result<TokenSet, ProviderError> {
    let c = client(provider, spec, ep, creds)?;
    let rt = RefreshToken::new(refresh_token.expose().to_owned());
    let t = c
        .exchange_refresh_token(&rt)
        .request_async(http)
        .await
        .map_err(|e| map_token_error(provider, e))?;
    let mut set = token_set(&t, now);
    if set.refresh_token.is_none() && !spec.refresh_token_rotates {
        // Non-rotating providers may omit it: the old one stays valid.
        set.refresh_token = Some(refresh_token.clone());
    }
    if set.refresh_token.is_none() {
        return Err(ProviderError::new(
            provider,
            ProviderErrorKind::InvalidResponse,
            "refresh answer lacks the rotated refresh token",
        ));
    }
    Ok(set)
}

/// [`OAuthFlow`] over HTTP with the `oauth2` crate. Redirects are not followed.
#[derive(Debug, Clone)]
pub struct HttpOAuth {
    client: reqwest::Client,
}

impl HttpOAuth {
    /// A flow with its own HTTP client.
    pub fn new(user_agent: &str) -> Result<Self, ProviderError> {
        let client = reqwest::Client::builder()
            .user_agent(user_agent)
            .timeout(std::time::Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ProviderError::new("oauth", ProviderErrorKind::Rejected, e.to_string()))?;
        Ok(Self { client })
    }
}

#[async_trait]
impl OAuthFlow for HttpOAuth {
    fn authorize(
        &self,
        provider: &'static str,
        spec: &OAuth2Spec,
        endpoints: &Endpoints,
        client: &ClientCredentials,
        state: &str,
    ) -> Result<Authorization, ProviderError> {
        authorize(provider, spec, endpoints, client, state)
    }

    async fn exchange_code(
        &self,
        provider: &'static str,
        spec: &OAuth2Spec,
        endpoints: &Endpoints,
        client: &ClientCredentials,
        code: &str,
        pkce_verifier: Option<&SecretValue>,
        now: DateTime<Utc>,
    ) -> Result<TokenSet, ProviderError> {
        exchange_code(
            &self.client,
            provider,
            spec,
            endpoints,
            client,
            code,
            pkce_verifier,
            now,
        )
        .await
    }

    async fn refresh(
        &self,
        provider: &'static str,
        spec: &OAuth2Spec,
        endpoints: &Endpoints,
        client: &ClientCredentials,
        refresh_token: &SecretValue,
        now: DateTime<Utc>,
    ) -> Result<TokenSet, ProviderError> {
        refresh(
            &self.client,
            provider,
            spec,
            endpoints,
            client,
            refresh_token,
            now,
        )
        .await
    }
}
