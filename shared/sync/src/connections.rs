//! Installing a provider in a workspace and keeping its credentials usable.
//!
//! Credentials (client id and secret, tokens) live in one secret per connection; the
//! [`Connection`] record holds only the secret's name and non-secret settings. Access tokens
//! are refreshed before they expire and after a 401, by one process at a time (a store lease),
//! and a rotated refresh token is saved before the new access token is used.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use hourbridge_domain::{
    Connection, ConnectionState, ProjectLink, ProviderId, RecordId, SecretValue,
    connection_secret_name,
};
use hourbridge_provider_api::{
    AccountInfo, AuthKind, ClientCredentials, Endpoints, OAuth2Spec, Provider, ProviderError,
    ProviderErrorKind, ProviderSession, TokenSet,
};
use hourbridge_store::{GLOBAL_SCOPE, IndexSel, OAuthState, StoreError};
use serde::{Deserialize, Serialize};

use crate::{Engine, SyncError};

/// How long an OAuth `state` stays valid.
pub const STATE_TTL_MINUTES: i64 = 10;
/// Refresh an access token this long before it expires.
const REFRESH_SKEW_SECONDS: i64 = 120;

/// What the secret of a connection holds (as JSON).
#[derive(Clone, Serialize, Deserialize)]
pub struct ConnectionSecret {
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret.
    pub client_secret: String,
    /// Current access token.
    pub access_token: Option<String>,
    /// Current refresh token.
    pub refresh_token: Option<String>,
    /// When the access token expires.
    pub expires_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for ConnectionSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionSecret")
            .field("client_id", &self.client_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl ConnectionSecret {
    fn to_value(&self) -> SecretValue {
        SecretValue::new(serde_json::to_string(self).unwrap_or_default())
    }

    fn from_value(v: &SecretValue) -> Result<Self, SyncError> {
        serde_json::from_str(v.expose())
            .map_err(|_| SyncError::InvalidState("stored credentials are unreadable".into()))
    }

    fn with_tokens(mut self, t: &TokenSet) -> Self {
        self.access_token = Some(t.access_token.expose().to_owned());
        if let Some(r) = &t.refresh_token {
            self.refresh_token = Some(r.expose().to_owned());
        }
        self.expires_at = t.expires_at;
        self
    }
}

/// Outcome of the OAuth callback.
#[derive(Debug, Clone)]
pub struct Authorized {
    /// Workspace that connected.
    pub workspace_id: String,
    /// The connection, now active.
    pub connection: Connection,
}

fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Engine {
    /// The provider with this id.
    pub fn provider(&self, id: &str) -> Result<&Arc<dyn Provider>, SyncError> {
        self.providers
            .get(id)
            .ok_or_else(|| SyncError::UnknownProvider(id.to_owned()))
    }

    /// The redirect URL the admin registers in the provider.
    pub fn redirect_url(&self, provider: &str) -> String {
        format!(
            "{}/oauth/{provider}/callback",
            self.settings.public_url.trim_end_matches('/')
        )
    }

    fn oauth_spec<'a>(&self, p: &'a Arc<dyn Provider>) -> Result<&'a OAuth2Spec, SyncError> {
        match &p.descriptor().auth {
            AuthKind::OAuth2(spec) => Ok(spec),
            _ => Err(SyncError::InvalidState(format!(
                "{} does not use OAuth",
                p.descriptor().id
            ))),
        }
    }

    fn endpoints(&self, p: &Arc<dyn Provider>, spec: &OAuth2Spec) -> Endpoints {
        let (authorize_url, token_url) = p
            .oauth_urls()
            .unwrap_or_else(|| (spec.authorize_url.to_owned(), spec.token_url.to_owned()));
        Endpoints {
            authorize_url,
            token_url,
            redirect_url: self.redirect_url(p.descriptor().id),
        }
    }

    /// The connection of `ws` to `provider`, with its version.
    pub async fn connection(
        &self,
        ws: &str,
        provider: &str,
    ) -> Result<Option<(Connection, u64)>, SyncError> {
        Ok(self.store.get::<Connection>(ws, provider).await?)
    }

    async fn secret(&self, conn: &Connection) -> Result<ConnectionSecret, SyncError> {
        let name = conn
            .secret_name
            .as_deref()
            .ok_or_else(|| SyncError::InvalidState("the connection has no credentials".into()))?;
        let value = self.secrets.get(name).await?.ok_or_else(|| {
            SyncError::InvalidState("the connection's credentials are gone; connect again".into())
        })?;
        ConnectionSecret::from_value(&value)
    }

    /// Saves the admin's OAuth client for `provider` (creating or resetting the connection to
    /// `pending_authorization`).
    pub async fn install(
        &self,
        ws: &str,
        person: &RecordId,
        provider: &str,
        client_id: &str,
        client_secret: SecretValue,
    ) -> Result<Connection, SyncError> {
        let p = self.provider(provider)?;
        self.oauth_spec(p)?;
        let name = connection_secret_name(ws, provider);
        let secret = ConnectionSecret {
            client_id: client_id.to_owned(),
            client_secret: client_secret.expose().to_owned(),
            access_token: None,
            refresh_token: None,
            expires_at: None,
        };
        self.secrets.put(&name, &secret.to_value()).await?;
        let now = self.clock.now();
        let existing = self.connection(ws, provider).await?;
        let conn = Connection {
            provider: ProviderId::parse(provider).map_err(|e| SyncError::Invalid(e.to_string()))?,
            state: ConnectionState::PendingAuthorization,
            secret_name: Some(name),
            settings: serde_json::json!({ "client_id": client_id }),
            connected_by: person.clone(),
            created_at: existing.as_ref().map_or(now, |(c, _)| c.created_at),
            updated_at: now,
            next_run_at: None,
            last_run_id: existing.as_ref().and_then(|(c, _)| c.last_run_id.clone()),
        };
        self.store.put(ws, &conn).await?;
        crate::schedule::unschedule(self, ws, provider).await?;
        Ok(conn)
    }

    /// Starts the OAuth flow: a single-use, 10-minute state bound to workspace and caller.
    pub async fn authorize(
        &self,
        ws: &str,
        person: &RecordId,
        provider: &str,
    ) -> Result<String, SyncError> {
        let p = self.provider(provider)?;
        let spec = self.oauth_spec(p)?;
        let (conn, _) = self
            .connection(ws, provider)
            .await?
            .ok_or_else(|| SyncError::NotConnected(provider.into()))?;
        let secret = self.secret(&conn).await?;
        let creds = ClientCredentials {
            id: secret.client_id,
            secret: SecretValue::new(secret.client_secret),
        };
        let state = random_token();
        let auth = self.oauth.authorize(
            p.descriptor().id,
            spec,
            &self.endpoints(p, spec),
            &creds,
            &state,
        )?;
        let record = OAuthState {
            state,
            workspace_id: ws.to_owned(),
            person_id: person.to_string(),
            provider: provider.to_owned(),
            pkce_verifier: auth.pkce_verifier.map(|v| v.expose().to_owned()),
            expires_at: self.clock.now() + Duration::minutes(STATE_TTL_MINUTES),
        };
        self.store.insert(GLOBAL_SCOPE, &record).await?;
        Ok(auth.url)
    }

    /// Completes the OAuth flow from the provider's redirect: consumes the state, exchanges the
    /// code, stores the tokens, learns the account and activates the connection.
    pub async fn complete_authorization(
        &self,
        provider: &str,
        code: &str,
        state: &str,
    ) -> Result<Authorized, SyncError> {
        let p = self.provider(provider)?;
        let spec = self.oauth_spec(p)?;
        let pending = self
            .store
            .take::<OAuthState>(GLOBAL_SCOPE, state)
            .await?
            .ok_or_else(|| {
                SyncError::Invalid(
                    "unknown, used or expired authorization state; start again".into(),
                )
            })?;
        if pending.provider != provider {
            return Err(SyncError::Invalid(
                "the authorization state belongs to another provider".into(),
            ));
        }
        let ws = pending.workspace_id.clone();
        let (mut conn, _) = self
            .connection(&ws, provider)
            .await?
            .ok_or_else(|| SyncError::NotConnected(provider.into()))?;
        let secret = self.secret(&conn).await?;
        let creds = ClientCredentials {
            id: secret.client_id.clone(),
            secret: SecretValue::new(secret.client_secret.clone()),
        };
        let verifier = pending.pkce_verifier.map(SecretValue::new);
        let tokens = self
            .oauth
            .exchange_code(
                p.descriptor().id,
                spec,
                &self.endpoints(p, spec),
                &creds,
                code,
                verifier.as_ref(),
                self.clock.now(),
            )
            .await?;
        let secret = secret.with_tokens(&tokens);
        self.secrets
            .put(
                conn.secret_name.as_deref().unwrap_or_default(),
                &secret.to_value(),
            )
            .await?;
        let session = self.session_from(&ws, &conn, &secret);
        let account = p.check_credentials(&session).await?;
        apply_account(&mut conn, &account, None);
        conn.state = ConnectionState::Active;
        conn.connected_by =
            RecordId::parse(pending.person_id).map_err(|e| SyncError::Invalid(e.to_string()))?;
        conn.updated_at = self.clock.now();
        conn.next_run_at = Some(crate::schedule::schedule(self, &ws, provider).await?);
        self.store.put(&ws, &conn).await?;
        Ok(Authorized {
            workspace_id: ws,
            connection: conn,
        })
    }

    /// Chooses which of the login's accounts the connection syncs.
    pub async fn select_account(
        &self,
        ws: &str,
        provider: &str,
        account_id: &str,
    ) -> Result<Connection, SyncError> {
        let p = self.provider(provider)?;
        let (mut conn, version) = self
            .connection(ws, provider)
            .await?
            .ok_or_else(|| SyncError::NotConnected(provider.into()))?;
        let account = self
            .call(ws, provider, |s| {
                let p = p.clone();
                let mut s = s;
                s.settings["account_id"] = serde_json::Value::String(account_id.to_owned());
                async move { p.check_credentials(&s).await }
            })
            .await?;
        if account.account_id != account_id {
            return Err(SyncError::Invalid(format!(
                "account {account_id} is not reachable with this login"
            )));
        }
        apply_account(&mut conn, &account, Some(account_id));
        conn.updated_at = self.clock.now();
        self.store.update(ws, &conn, version).await?;
        Ok(conn)
    }

    /// Disconnects: deletes the credentials, the schedule, the project links' settings and the
    /// connection. Synced work logs stay.
    pub async fn disconnect(&self, ws: &str, provider: &str) -> Result<bool, SyncError> {
        let Some((conn, _)) = self.connection(ws, provider).await? else {
            return Ok(false);
        };
        crate::schedule::unschedule(self, ws, provider).await?;
        let links = self
            .store
            .list_all::<ProjectLink>(self.store.query::<ProjectLink>(
                ws,
                IndexSel::Index1(provider.to_owned()),
                1000,
            ))
            .await?;
        for l in links {
            self.store
                .delete::<ProjectLink>(ws, &hourbridge_store::Entity::id(&l))
                .await?;
        }
        if let Some(name) = &conn.secret_name {
            self.secrets.delete(name).await?;
        }
        self.store.delete::<Connection>(ws, provider).await?;
        Ok(true)
    }

    fn session_from(
        &self,
        ws: &str,
        conn: &Connection,
        secret: &ConnectionSecret,
    ) -> ProviderSession {
        let mut secrets = BTreeMap::new();
        if let Some(t) = &secret.access_token {
            secrets.insert("access_token".to_owned(), SecretValue::new(t.clone()));
        }
        let mut settings = conn.settings.clone();
        if !settings.is_object() {
            settings = serde_json::json!({});
        }
        settings["client_id"] = serde_json::Value::String(secret.client_id.clone());
        ProviderSession {
            workspace_id: ws.to_owned(),
            secrets,
            settings,
        }
    }

    /// A session with an access token valid for at least two more minutes.
    pub async fn session(&self, ws: &str, provider: &str) -> Result<ProviderSession, SyncError> {
        self.session_inner(ws, provider, false).await
    }

    async fn session_inner(
        &self,
        ws: &str,
        provider: &str,
        force_refresh: bool,
    ) -> Result<ProviderSession, SyncError> {
        let (conn, _) = self
            .connection(ws, provider)
            .await?
            .ok_or_else(|| SyncError::NotConnected(provider.into()))?;
        if conn.state == ConnectionState::PendingAuthorization {
            return Err(SyncError::InvalidState(format!(
                "{provider} is not authorized yet"
            )));
        }
        let secret = self.secret(&conn).await?;
        let token = secret.access_token.clone();
        if !force_refresh && token.is_some() && !self.expiring(&secret) {
            return Ok(self.session_from(ws, &conn, &secret));
        }
        let refreshed = self
            .refresh_single_flight(ws, provider, &conn, token.as_deref())
            .await?;
        Ok(self.session_from(ws, &conn, &refreshed))
    }

    fn expiring(&self, s: &ConnectionSecret) -> bool {
        s.expires_at
            .is_some_and(|t| t <= self.clock.now() + Duration::seconds(REFRESH_SKEW_SECONDS))
    }

    /// Refreshes under a lease so that only one process uses the (possibly rotating) refresh
    /// token; a process that waited re-reads and takes the token the winner saved.
    async fn refresh_single_flight(
        &self,
        ws: &str,
        provider: &str,
        conn: &Connection,
        stale_access: Option<&str>,
    ) -> Result<ConnectionSecret, SyncError> {
        let p = self.provider(provider)?;
        let spec = self.oauth_spec(p)?;
        let lease_name = format!("token:{provider}");
        let owner = random_token();
        let mut lease = None;
        for _ in 0..200 {
            if let Some(l) = self
                .store
                .acquire_lease(ws, &lease_name, &owner, Duration::seconds(30))
                .await?
            {
                lease = Some(l);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let lease = lease.ok_or(SyncError::Busy)?;
        let result = async {
            let secret = self.secret(conn).await?;
            let rotated_meanwhile = secret.access_token.as_deref() != stale_access;
            if rotated_meanwhile && secret.access_token.is_some() && !self.expiring(&secret) {
                return Ok(secret);
            }
            let refresh_token = secret.refresh_token.clone().ok_or_else(|| {
                SyncError::Provider(ProviderError::new(
                    p.descriptor().id,
                    ProviderErrorKind::ReauthRequired,
                    "no refresh token",
                ))
            })?;
            let creds = ClientCredentials {
                id: secret.client_id.clone(),
                secret: SecretValue::new(secret.client_secret.clone()),
            };
            let tokens = self
                .oauth
                .refresh(
                    p.descriptor().id,
                    spec,
                    &self.endpoints(p, spec),
                    &creds,
                    &SecretValue::new(refresh_token),
                    self.clock.now(),
                )
                .await?;
            let updated = secret.with_tokens(&tokens);
            // Saved before anyone uses the new access token: with rotating refresh tokens the old
            // one is already dead, and losing the new one would force a re-authorization.
            self.secrets
                .put(
                    conn.secret_name.as_deref().unwrap_or_default(),
                    &updated.to_value(),
                )
                .await?;
            Ok(updated)
        }
        .await;
        self.store.release_lease(&lease).await?;
        if let Err(SyncError::Provider(e)) = &result
            && e.needs_reauth()
        {
            self.mark_reauth_required(ws, provider).await?;
        }
        result
    }

    async fn mark_reauth_required(&self, ws: &str, provider: &str) -> Result<(), SyncError> {
        if let Some((mut c, v)) = self.connection(ws, provider).await? {
            c.state = ConnectionState::ReauthRequired;
            c.updated_at = self.clock.now();
            match self.store.update(ws, &c, v).await {
                Ok(_) | Err(StoreError::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Runs one provider call with a fresh session; after a 401 it refreshes once (single
    /// flight) and retries, and a second 401 marks the connection as needing re-authorization.
    pub async fn call<T, F, Fut>(&self, ws: &str, provider: &str, f: F) -> Result<T, SyncError>
    where
        F: Fn(ProviderSession) -> Fut,
        Fut: std::future::Future<Output = Result<T, ProviderError>>,
    {
        let session = self.session(ws, provider).await?;
        match f(session).await {
            Err(e) if e.kind == ProviderErrorKind::ReauthRequired => {
                let session = self.session_inner(ws, provider, true).await?;
                match f(session).await {
                    Err(e) if e.needs_reauth() => {
                        self.mark_reauth_required(ws, provider).await?;
                        Err(e.into())
                    }
                    other => other.map_err(Into::into),
                }
            }
            other => other.map_err(Into::into),
        }
    }
}

fn apply_account(conn: &mut Connection, account: &AccountInfo, chosen: Option<&str>) {
    if !conn.settings.is_object() {
        conn.settings = serde_json::json!({});
    }
    let s = &mut conn.settings;
    s["account_id"] = serde_json::Value::String(chosen.unwrap_or(&account.account_id).to_owned());
    s["account_name"] = serde_json::Value::String(account.account_name.clone());
    s["accounts"] = serde_json::Value::Array(
        account
            .other_accounts
            .iter()
            .map(|(id, name)| serde_json::json!({"id": id, "name": name}))
            .collect(),
    );
}
