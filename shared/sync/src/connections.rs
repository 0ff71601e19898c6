//! Installing a provider in a workspace and keeping its credentials usable, dispatched on the
//! provider's declared [`AuthKind`]:
//!
//! | auth kind | connect body | after connect | renewal |
//! |---|---|---|---|
//! | OAuth 2, customer-supplied client | `client_id`, `client_secret` (+ OAuth settings) | `pending_authorization` until the callback | refresh token, single-flight |
//! | OAuth 2, platform client ([`OAuthClient::Platform`]) | the OAuth settings only; client id from [`SyncSettings::platform_clients`](crate::SyncSettings), secret from the secret store | `pending_authorization` until the callback | refresh token, single-flight |
//! | session token ([`AuthKind::SessionToken`]) | the declared fields | `active` once [`Provider::create_session`] and [`Provider::validate_credentials`] accept them | a new session shortly before expiry and once after a 401, single-flight |
//! | credential set ([`AuthKind::CredentialSet`]) | the declared fields | `active` once [`Provider::validate_credentials`] accepts them | none: a 401 means the connection needs new credentials |
//!
//! The connect body is validated against the declared fields (unknown, missing or too long
//! fields are [`SyncError::InvalidFields`]); a failed credential check is
//! [`SyncError::InvalidCredentials`], [`SyncError::Unreachable`] or
//! [`SyncError::MissingEntitlement`], and stores nothing. Secret fields, tokens and sessions
//! live in one secret per connection; the [`Connection`] record holds only the secret's name and
//! the non-secret settings (the non-secret connect fields by name, the chosen account).
//!
//! Sessions are cached per process ([`SessionCache`]): a run reads the connection and its secret
//! once, and the cache entry is dropped after a 401, a refresh, a re-install, an account choice
//! and a disconnect.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use hourbridge_domain::{
    Connection, ConnectionState, ProjectLink, ProviderId, RecordId, SecretValue,
    connection_secret_name,
};
use hourbridge_provider_api::{
    ACCESS_TOKEN, AccountInfo, AuthKind, ClientCredentials, CredentialCheckError, CredentialField,
    Endpoints, OAuth2Spec, OAuthClient, Provider, ProviderError, ProviderErrorKind,
    ProviderSession, SESSION_TOKEN, TokenSet,
};
use hourbridge_store::{GLOBAL_SCOPE, IndexSel, OAuthState, StoreError};
use serde::{Deserialize, Serialize};

use crate::{Engine, FieldProblem, SyncError};

/// How long an OAuth `state` stays valid.
pub const STATE_TTL_MINUTES: i64 = 10;
/// Refresh an access token (or renew a session) this long before it expires.
const REFRESH_SKEW_SECONDS: i64 = 120;
/// Longest a cached session is used without reading the connection again, even when its token
/// lives longer: bounds how long another process's disconnect or re-install goes unnoticed, and
/// covers a whole Lambda run (15 minutes at most).
pub const SESSION_CACHE_MAX_AGE_SECONDS: i64 = 900;
/// The connection setting holding the remote account's display name.
pub const REMOTE_ACCOUNT_NAME: &str = "remote_account_name";

/// The remote account's display name of a connection's settings (`remote_account_name`, or the
/// `account_name` older connections stored).
pub fn remote_account_name(settings: &serde_json::Value) -> Option<&serde_json::Value> {
    settings
        .get(REMOTE_ACCOUNT_NAME)
        .or_else(|| settings.get("account_name"))
}

/// Longest value of one connect field.
pub const MAX_FIELD_CHARS: usize = 2000;

/// What the secret of a connection holds (as JSON).
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct ConnectionSecret {
    /// OAuth client id (customer-supplied clients only; empty otherwise).
    #[serde(default)]
    pub client_id: String,
    /// OAuth client secret (customer-supplied clients only; empty otherwise).
    #[serde(default)]
    pub client_secret: String,
    /// Current access token (OAuth) or session token (session-token providers).
    pub access_token: Option<String>,
    /// Current refresh token.
    pub refresh_token: Option<String>,
    /// When the access token or session expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// Secret connect fields of session-token and credential-set providers, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
}

impl std::fmt::Debug for ConnectionSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionSecret")
            .field("client_id", &self.client_id)
            .field("expires_at", &self.expires_at)
            .field("fields", &self.fields.keys().collect::<Vec<_>>())
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

/// Provider sessions of one process, by workspace and provider. An entry lives until shortly
/// before its token expires, and at most [`SESSION_CACHE_MAX_AGE_SECONDS`]; the engine drops it
/// after a 401, a refresh, a re-install, an account choice and a disconnect.
#[derive(Clone, Default)]
pub struct SessionCache {
    entries: Arc<Mutex<HashMap<(String, String), CachedSession>>>,
}

#[derive(Clone)]
struct CachedSession {
    session: ProviderSession,
    until: DateTime<Utc>,
}

/// Above this many entries, expired ones are swept on insert.
const SESSION_CACHE_SWEEP_AT: usize = 1024;

impl std::fmt::Debug for SessionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCache")
            .field("entries", &self.len())
            .finish()
    }
}

impl SessionCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), CachedSession>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, ws: &str, provider: &str, now: DateTime<Utc>) -> Option<ProviderSession> {
        let key = (ws.to_owned(), provider.to_owned());
        let mut entries = self.lock();
        match entries.get(&key) {
            Some(c) if c.until > now => Some(c.session.clone()),
            Some(_) => {
                entries.remove(&key);
                None
            }
            None => None,
        }
    }

    fn put(&self, ws: &str, provider: &str, session: ProviderSession, until: DateTime<Utc>) {
        let mut entries = self.lock();
        if entries.len() >= SESSION_CACHE_SWEEP_AT {
            let now = Utc::now();
            entries.retain(|_, c| c.until > now);
        }
        entries.insert(
            (ws.to_owned(), provider.to_owned()),
            CachedSession { session, until },
        );
    }

    /// Forgets the session of one connection; the next call reads it again.
    pub fn invalidate(&self, ws: &str, provider: &str) {
        self.lock().remove(&(ws.to_owned(), provider.to_owned()));
    }

    /// Number of cached sessions.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub(crate) fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The token a session carries (OAuth access token or provider session), for telling whether
/// someone renewed it meanwhile.
fn session_token(s: &ProviderSession) -> Option<&str> {
    s.secrets
        .get(ACCESS_TOKEN)
        .or_else(|| s.secrets.get(SESSION_TOKEN))
        .map(SecretValue::expose)
}

fn fields_error(problem: FieldProblem, fields: Vec<String>, what: &str) -> SyncError {
    SyncError::InvalidFields {
        message: format!("{what}: {}", fields.join(", ")),
        problem,
        fields,
    }
}

/// Secret values by name, and non-secret settings.
type CheckedFields = (
    BTreeMap<String, String>,
    serde_json::Map<String, serde_json::Value>,
);

/// Checks a connect body against the declared fields: splits it into secret values (by name)
/// and non-secret settings (trimmed, empty optional fields dropped).
fn check_fields(
    declared: &[CredentialField],
    mut input: BTreeMap<String, SecretValue>,
) -> Result<CheckedFields, SyncError> {
    let unknown: Vec<String> = input
        .keys()
        .filter(|k| !declared.iter().any(|f| f.name == k.as_str()))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        let expected: Vec<&str> = declared.iter().map(|f| f.name).collect();
        return Err(fields_error(
            FieldProblem::Unknown,
            unknown,
            &format!("unknown fields (expected {})", expected.join(", ")),
        ));
    }
    let (mut secrets, mut settings) = (BTreeMap::new(), serde_json::Map::new());
    let (mut missing, mut too_long) = (Vec::new(), Vec::new());
    for f in declared {
        let value = input
            .remove(f.name)
            .map(|v| v.expose().trim().to_owned())
            .unwrap_or_default();
        if value.is_empty() {
            if f.required {
                missing.push(f.name.to_owned());
            }
            continue;
        }
        if value.chars().count() > MAX_FIELD_CHARS {
            too_long.push(f.name.to_owned());
            continue;
        }
        if f.secret {
            secrets.insert(f.name.to_owned(), value);
        } else {
            settings.insert(f.name.to_owned(), serde_json::Value::String(value));
        }
    }
    if !missing.is_empty() {
        return Err(fields_error(FieldProblem::Missing, missing, "required"));
    }
    if !too_long.is_empty() {
        return Err(fields_error(
            FieldProblem::TooLong,
            too_long,
            &format!("longer than {MAX_FIELD_CHARS} characters"),
        ));
    }
    Ok((secrets, settings))
}

fn secret_field_names(p: &dyn Provider) -> Vec<&'static str> {
    p.descriptor()
        .auth
        .connect_fields()
        .into_iter()
        .filter(|f| f.secret)
        .map(|f| f.name)
        .collect()
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
        p.descriptor().auth.oauth2().ok_or_else(|| {
            SyncError::InvalidState(format!(
                "{} does not use OAuth; connect it with its credentials",
                p.descriptor().id
            ))
        })
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

    /// The OAuth client of a connection: the customer's (from the connection's secret) or
    /// Hourbridge's own (id from configuration, secret from the secret store).
    async fn client_credentials(
        &self,
        provider: &str,
        spec: &OAuth2Spec,
        secret: &ConnectionSecret,
    ) -> Result<ClientCredentials, SyncError> {
        match spec.client {
            OAuthClient::CustomerSupplied => Ok(ClientCredentials {
                id: secret.client_id.clone(),
                secret: SecretValue::new(secret.client_secret.clone()),
            }),
            OAuthClient::Platform => {
                let pc = self.platform_client(provider)?;
                let value = self.secrets.get(&pc.secret_name).await?.ok_or_else(|| {
                    SyncError::InvalidState(format!(
                        "the OAuth client secret of {provider} is missing from the secret store \
                         on this deployment"
                    ))
                })?;
                Ok(ClientCredentials {
                    id: pc.client_id.clone(),
                    secret: value,
                })
            }
        }
    }

    fn platform_client(&self, provider: &str) -> Result<&crate::PlatformClient, SyncError> {
        self.settings.platform_clients.get(provider).ok_or_else(|| {
            SyncError::InvalidState(format!(
                "{provider} is not configured on this deployment (no platform OAuth client)"
            ))
        })
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

    /// Saves the admin's OAuth client for a customer-supplied OAuth provider: the same as
    /// [`Engine::connect`] with the fields `client_id` and `client_secret`.
    pub async fn install(
        &self,
        ws: &str,
        person: &RecordId,
        provider: &str,
        client_id: &str,
        client_secret: SecretValue,
    ) -> Result<Connection, SyncError> {
        let fields = BTreeMap::from([
            ("client_id".to_owned(), SecretValue::new(client_id)),
            ("client_secret".to_owned(), client_secret),
        ]);
        self.connect(ws, person, provider, fields).await
    }

    /// Connects `provider` with the fields the admin entered (the descriptor's
    /// [`AuthKind::connect_fields`]), creating or replacing the connection.
    ///
    /// OAuth providers end in `pending_authorization` (continue with [`Engine::authorize`]);
    /// session-token and credential-set providers are checked with the provider first and end
    /// `active`, scheduled, with their webhook token when they declare webhooks. Nothing is
    /// stored when the fields or the credentials are refused.
    pub async fn connect(
        &self,
        ws: &str,
        person: &RecordId,
        provider: &str,
        fields: BTreeMap<String, SecretValue>,
    ) -> Result<Connection, SyncError> {
        let p = self.provider(provider)?.clone();
        self.require_addon(ws, provider).await?;
        let provider_id =
            ProviderId::parse(provider).map_err(|e| SyncError::Invalid(e.to_string()))?;
        let auth = &p.descriptor().auth;
        let (mut secret_fields, settings) = check_fields(&auth.connect_fields(), fields)?;
        let daily = p.descriptor().schedule == hourbridge_provider_api::Schedule::DailyAtLocalTime;
        if daily
            && let Some(v) = settings.get(crate::schedule::SYNC_AT)
            && v.as_str()
                .and_then(crate::schedule::parse_sync_at)
                .is_none()
        {
            return Err(fields_error(
                FieldProblem::InvalidSyncAt,
                vec![crate::schedule::SYNC_AT.to_owned()],
                "a quarter hour HH:MM (minutes 00, 15, 30 or 45)",
            ));
        }
        let now = self.clock.now();
        // "Change the settings" of an active OAuth connection: nothing secret was entered, so
        // the tokens stay; the settings are merged and the schedule moves.
        if matches!(auth, AuthKind::OAuth2(_))
            && secret_fields.is_empty()
            && let Some((mut conn, v)) = self.connection(ws, provider).await?
            && conn.state == ConnectionState::Active
        {
            if let serde_json::Value::Object(current) = &mut conn.settings {
                current.extend(settings);
            } else {
                conn.settings = serde_json::Value::Object(settings);
            }
            conn.updated_at = now;
            self.store.update(ws, &conn, v).await?;
            let next = crate::schedule::schedule(self, ws, provider).await?;
            conn.next_run_at = Some(next);
            if let Some((mut stored, v)) = self.connection(ws, provider).await? {
                stored.next_run_at = Some(next);
                self.store.update(ws, &stored, v).await?;
            }
            return Ok(conn);
        }
        let credentials = |secrets: &BTreeMap<String, String>| ProviderSession {
            workspace_id: ws.to_owned(),
            secrets: secrets
                .iter()
                .map(|(k, v)| (k.clone(), SecretValue::new(v.clone())))
                .collect(),
            settings: serde_json::Value::Object(settings.clone()),
        };
        let (secret, account) = match auth {
            AuthKind::OAuth2(spec) => {
                let mut secret = ConnectionSecret::default();
                match spec.client {
                    OAuthClient::CustomerSupplied => {
                        secret.client_id = settings
                            .get("client_id")
                            .and_then(|v| v.as_str())
                            .unwrap_or_default()
                            .to_owned();
                        secret.client_secret =
                            secret_fields.remove("client_secret").unwrap_or_default();
                    }
                    OAuthClient::Platform => {
                        self.platform_client(provider)?;
                    }
                }
                (secret, None)
            }
            // Saved untested: "Test API" ([`Engine::test_connection`]) checks the token and an
            // admin confirms the activation ([`Engine::confirm_connection`]).
            AuthKind::SessionToken { .. } => {
                let secret = ConnectionSecret {
                    fields: secret_fields,
                    ..ConnectionSecret::default()
                };
                (secret, None)
            }
            AuthKind::CredentialSet { .. } => {
                let account = p.validate_credentials(&credentials(&secret_fields)).await?;
                let secret = ConnectionSecret {
                    fields: secret_fields,
                    ..ConnectionSecret::default()
                };
                (secret, Some(account))
            }
        };
        // Everything was checked: only now is anything written.
        let name = connection_secret_name(ws, provider);
        self.sessions.invalidate(ws, provider);
        self.secrets.put(&name, &secret.to_value()).await?;
        let existing = self.connection(ws, provider).await?;
        let waiting = match auth {
            AuthKind::SessionToken { .. } => ConnectionState::PendingTest,
            _ => ConnectionState::PendingAuthorization,
        };
        let mut conn = Connection {
            provider: provider_id,
            state: waiting,
            secret_name: Some(name),
            settings: serde_json::Value::Object(settings),
            connected_by: person.clone(),
            created_at: existing.as_ref().map_or(now, |(c, _)| c.created_at),
            updated_at: now,
            next_run_at: None,
            last_run_id: existing.as_ref().and_then(|(c, _)| c.last_run_id.clone()),
        };
        match account {
            Some(account) => {
                apply_account(&mut conn, &account, None);
                conn.state = ConnectionState::Active;
            }
            None => crate::schedule::unschedule(self, ws, provider).await?,
        }
        self.store.put(ws, &conn).await?;
        if conn.state == ConnectionState::Active {
            // Scheduled after the connection is stored: a daily-at-local-time schedule reads
            // the stored `sync_at`.
            conn.next_run_at = Some(crate::schedule::schedule(self, ws, provider).await?);
            self.store.put(ws, &conn).await?;
            self.enable_webhooks(ws, provider).await?;
        }
        self.sessions.invalidate(ws, provider);
        Ok(conn)
    }

    /// "Test API" of a session-token provider: exchanges the saved credentials for a session,
    /// checks it with the provider and keeps it. The connection becomes `tested` (an active one
    /// stays active). Refused credentials store nothing new and answer
    /// [`SyncError::InvalidCredentials`] (or a missing entitlement / unreachable provider).
    pub async fn test_connection(
        &self,
        ws: &str,
        provider: &str,
    ) -> Result<(Connection, AccountInfo), SyncError> {
        let p = self.provider(provider)?.clone();
        self.require_addon(ws, provider).await?;
        let AuthKind::SessionToken {
            session_lifetime, ..
        } = &p.descriptor().auth
        else {
            return Err(SyncError::InvalidState(format!(
                "{provider} is not tested this way; it connects with its own flow"
            )));
        };
        let (mut conn, version) = self
            .connection(ws, provider)
            .await?
            .ok_or_else(|| SyncError::NotConnected(provider.into()))?;
        let secret = self.secret(&conn).await?;
        let creds = ProviderSession {
            workspace_id: ws.to_owned(),
            secrets: secret
                .fields
                .iter()
                .map(|(k, v)| (k.clone(), SecretValue::new(v.clone())))
                .collect(),
            settings: if conn.settings.is_object() {
                conn.settings.clone()
            } else {
                serde_json::json!({})
            },
        };
        let now = self.clock.now();
        let until =
            now + Duration::from_std(*session_lifetime).unwrap_or_else(|_| Duration::hours(1));
        let grant = p
            .create_session(&creds, until)
            .await
            .map_err(|e| CredentialCheckError::from_provider(e, &secret_field_names(&*p)))?;
        let session = ProviderSession {
            secrets: BTreeMap::from([(SESSION_TOKEN.to_owned(), grant.token.clone())]),
            ..creds
        };
        let account = p.validate_credentials(&session).await?;
        let secret = ConnectionSecret {
            access_token: Some(grant.token.expose().to_owned()),
            expires_at: Some(grant.expires_at),
            ..secret
        };
        if let Some(name) = &conn.secret_name {
            self.secrets.put(name, &secret.to_value()).await?;
        }
        self.sessions.invalidate(ws, provider);
        apply_account(&mut conn, &account, None);
        if conn.state != ConnectionState::Active {
            conn.state = ConnectionState::Tested;
        }
        conn.updated_at = now;
        self.store.update(ws, &conn, version).await?;
        Ok((conn, account))
    }

    /// Confirms the activation of a tested session-token connection: it becomes `active`, is
    /// scheduled and subscribes its webhooks. Before a passing "Test API" it answers
    /// [`SyncError::TestRequired`].
    pub async fn confirm_connection(
        &self,
        ws: &str,
        provider: &str,
    ) -> Result<Connection, SyncError> {
        self.require_addon(ws, provider).await?;
        let (mut conn, version) = self
            .connection(ws, provider)
            .await?
            .ok_or_else(|| SyncError::NotConnected(provider.into()))?;
        match conn.state {
            ConnectionState::Tested => {}
            ConnectionState::Active => return Ok(conn),
            _ => return Err(SyncError::TestRequired(provider.into())),
        }
        conn.state = ConnectionState::Active;
        conn.updated_at = self.clock.now();
        self.store.update(ws, &conn, version).await?;
        let next = crate::schedule::schedule(self, ws, provider).await?;
        if let Some((mut stored, v)) = self.connection(ws, provider).await? {
            stored.next_run_at = Some(next);
            self.store.update(ws, &stored, v).await?;
            conn = stored;
        }
        self.enable_webhooks(ws, provider).await?;
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
        self.require_addon(ws, provider).await?;
        let (conn, _) = self
            .connection(ws, provider)
            .await?
            .ok_or_else(|| SyncError::NotConnected(provider.into()))?;
        let secret = self.secret(&conn).await?;
        let creds = self.client_credentials(provider, spec, &secret).await?;
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
    /// code, stores the tokens, learns the account and activates the connection (with its
    /// webhook token, when the provider declares webhooks).
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
        self.require_addon(&ws, provider).await?;
        let (mut conn, _) = self
            .connection(&ws, provider)
            .await?
            .ok_or_else(|| SyncError::NotConnected(provider.into()))?;
        let secret = self.secret(&conn).await?;
        let creds = self.client_credentials(provider, spec, &secret).await?;
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
            .await
            .map_err(|e| match e.kind {
                // The provider refused this code (expired, used, foreign): that says nothing
                // about stored credentials, so the connection keeps its state.
                ProviderErrorKind::ReauthRequired
                | ProviderErrorKind::Rejected
                | ProviderErrorKind::Forbidden
                | ProviderErrorKind::NotFound => {
                    tracing::info!(provider, detail = ?e.detail, "authorization code refused");
                    SyncError::AuthorizationFailed(format!(
                        "{} refused the authorization (the code expired, was already used or belongs to another app); authorize again",
                        p.descriptor().display_name
                    ))
                }
                _ => SyncError::Provider(e),
            })?;
        let secret = secret.with_tokens(&tokens);
        self.sessions.invalidate(&ws, provider);
        self.secrets
            .put(
                conn.secret_name.as_deref().unwrap_or_default(),
                &secret.to_value(),
            )
            .await?;
        let session = self.session_from(&ws, p.as_ref(), &conn, &secret);
        let account = p.check_credentials(&session).await?;
        apply_account(&mut conn, &account, None);
        conn.connected_by =
            RecordId::parse(pending.person_id).map_err(|e| SyncError::Invalid(e.to_string()))?;
        conn.updated_at = self.clock.now();
        // A provider whose data is imported wholesale must not start on an account nobody
        // chose: with several, the owner picks one first.
        let imports = p.descriptor().capabilities.master_data_in.is_some();
        if imports && !account.other_accounts.is_empty() {
            conn.state = ConnectionState::PendingAccountChoice;
            conn.next_run_at = None;
            self.store.put(&ws, &conn).await?;
            crate::schedule::unschedule(self, &ws, provider).await?;
        } else {
            conn.state = ConnectionState::Active;
            self.store.put(&ws, &conn).await?;
            conn.next_run_at = Some(crate::schedule::schedule(self, &ws, provider).await?);
            self.store.put(&ws, &conn).await?;
            self.enable_webhooks(&ws, provider).await?;
            self.first_import(&ws, provider).await;
        }
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
        self.require_addon(ws, provider).await?;
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
        let chosen_now = conn.state == ConnectionState::PendingAccountChoice;
        if chosen_now {
            conn.state = ConnectionState::Active;
        }
        self.store.update(ws, &conn, version).await?;
        self.sessions.invalidate(ws, provider);
        if chosen_now {
            let next = crate::schedule::schedule(self, ws, provider).await?;
            if let Some((mut stored, v)) = self.connection(ws, provider).await? {
                stored.next_run_at = Some(next);
                self.store.update(ws, &stored, v).await?;
                conn = stored;
            }
            self.enable_webhooks(ws, provider).await?;
            self.first_import(ws, provider).await;
        }
        Ok(conn)
    }

    /// Queues the first import of a provider that imports master data, as soon as its account
    /// is known (a failure to queue is logged: the schedule and "Synchronize now" still work).
    async fn first_import(&self, ws: &str, provider: &str) {
        let imports = self
            .provider(provider)
            .is_ok_and(|p| p.descriptor().capabilities.master_data_in.is_some());
        if !imports {
            return;
        }
        if let Err(e) = self
            .start_run(
                ws,
                provider,
                crate::RunScope::Connection,
                crate::runs::RunMode::Refetch,
            )
            .await
        {
            tracing::warn!(ws, provider, error = %e, "first import not queued");
        }
    }

    /// Disconnects: removes the webhook subscription and token, revokes what the provider lets
    /// us revoke ([`Provider::revoke`]), and deletes the credentials, the schedule, the project
    /// links' settings and the connection. Synced work logs stay.
    pub async fn disconnect(&self, ws: &str, provider: &str) -> Result<bool, SyncError> {
        let Some((conn, _)) = self.connection(ws, provider).await? else {
            return Ok(false);
        };
        crate::schedule::unschedule(self, ws, provider).await?;
        self.disable_webhooks(ws, provider).await?;
        // Imported records stay, and become the host's to edit.
        let released = crate::kinds::master_data_in::release(self, ws, provider).await?;
        if released > 0 {
            tracing::info!(
                ws,
                provider,
                released,
                "imported records handed back to the host"
            );
        }
        if matches!(
            conn.state,
            ConnectionState::Active | ConnectionState::PendingAccountChoice
        ) && let Ok(p) = self.provider(provider)
        {
            // The stored session as it is: no renewal just to revoke it.
            let revoked = match self.secret(&conn).await {
                Ok(secret) => {
                    let s = self.session_from(ws, p.as_ref(), &conn, &secret);
                    p.revoke(&s).await.map_err(SyncError::from)
                }
                Err(e) => Err(e),
            };
            if let Err(e) = revoked {
                tracing::warn!(ws, provider, error = %e, "revoking credentials on disconnect failed");
            }
        }
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
        self.sessions.invalidate(ws, provider);
        Ok(true)
    }

    /// The session adapters get: the token (or the secret fields of a credential set) and the
    /// non-secret settings, plus `client_id` for OAuth (per-application budgets).
    fn session_from(
        &self,
        ws: &str,
        p: &dyn Provider,
        conn: &Connection,
        secret: &ConnectionSecret,
    ) -> ProviderSession {
        let mut secrets = BTreeMap::new();
        let mut settings = conn.settings.clone();
        if !settings.is_object() {
            settings = serde_json::json!({});
        }
        match &p.descriptor().auth {
            AuthKind::OAuth2(spec) => {
                if let Some(t) = &secret.access_token {
                    secrets.insert(ACCESS_TOKEN.to_owned(), SecretValue::new(t.clone()));
                }
                let client_id = match spec.client {
                    OAuthClient::CustomerSupplied => Some(secret.client_id.clone()),
                    OAuthClient::Platform => self
                        .settings
                        .platform_clients
                        .get(p.descriptor().id)
                        .map(|c| c.client_id.clone()),
                };
                if let Some(id) = client_id {
                    settings["client_id"] = serde_json::Value::String(id);
                }
            }
            AuthKind::SessionToken { .. } => {
                if let Some(t) = &secret.access_token {
                    secrets.insert(SESSION_TOKEN.to_owned(), SecretValue::new(t.clone()));
                }
            }
            AuthKind::CredentialSet { .. } => {
                for (k, v) in &secret.fields {
                    secrets.insert(k.clone(), SecretValue::new(v.clone()));
                }
            }
        }
        ProviderSession {
            workspace_id: ws.to_owned(),
            secrets,
            settings,
        }
    }

    /// A session with an access token (or provider session) valid for at least two more
    /// minutes: from this process's cache when it has one, otherwise read from the connection
    /// and its secret (renewed first when it is about to expire) and cached.
    pub async fn session(&self, ws: &str, provider: &str) -> Result<ProviderSession, SyncError> {
        if let Some(s) = self.sessions.get(ws, provider, self.clock.now()) {
            return Ok(s);
        }
        self.load_session(ws, provider, None).await
    }

    /// Reads the connection and its secret, renews the token when it is missing or expiring
    /// or when `failed` (the session a provider just answered 401 to) still carries the stored
    /// token, and caches the result.
    async fn load_session(
        &self,
        ws: &str,
        provider: &str,
        failed: Option<&ProviderSession>,
    ) -> Result<ProviderSession, SyncError> {
        let p = self.provider(provider)?.clone();
        let (conn, _) = self
            .connection(ws, provider)
            .await?
            .ok_or_else(|| SyncError::NotConnected(provider.into()))?;
        if conn.state == ConnectionState::PendingAuthorization {
            return Err(SyncError::InvalidState(format!(
                "{provider} is not authorized yet"
            )));
        }
        let mut secret = self.secret(&conn).await?;
        let renewable = !matches!(p.descriptor().auth, AuthKind::CredentialSet { .. });
        let stale = match failed {
            Some(f) => session_token(f) == secret.access_token.as_deref() || !renewable,
            None => false,
        };
        if stale || (renewable && (secret.access_token.is_none() || self.expiring(&secret))) {
            let token = secret.access_token.clone();
            secret = self
                .refresh_single_flight(ws, provider, &conn, token.as_deref())
                .await?;
        }
        let session = self.session_from(ws, p.as_ref(), &conn, &secret);
        let now = self.clock.now();
        let mut until = now + Duration::seconds(SESSION_CACHE_MAX_AGE_SECONDS);
        if renewable && let Some(exp) = secret.expires_at {
            until = until.min(exp - Duration::seconds(REFRESH_SKEW_SECONDS));
        }
        self.sessions.put(ws, provider, session.clone(), until);
        Ok(session)
    }

    fn expiring(&self, s: &ConnectionSecret) -> bool {
        s.expires_at
            .is_some_and(|t| t <= self.clock.now() + Duration::seconds(REFRESH_SKEW_SECONDS))
    }

    /// Renews under a lease so that only one process uses the (possibly rotating) refresh
    /// token or creates a session; a process that waited re-reads and takes what the winner
    /// saved.
    async fn refresh_single_flight(
        &self,
        ws: &str,
        provider: &str,
        conn: &Connection,
        stale_access: Option<&str>,
    ) -> Result<ConnectionSecret, SyncError> {
        let p = self.provider(provider)?.clone();
        self.sessions.invalidate(ws, provider);
        if let AuthKind::CredentialSet { .. } = p.descriptor().auth {
            // Nothing to renew: the provider refused the stored credentials themselves.
            self.mark_reauth_required(ws, provider).await?;
            return Err(SyncError::Provider(ProviderError::new(
                p.descriptor().id,
                ProviderErrorKind::ReauthRequired,
                "the stored credentials were rejected; connect again",
            )));
        }
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
            let updated = self.renew(&p, ws, conn, secret).await?;
            // Saved before anyone uses the new token: with rotating refresh tokens the old one
            // is already dead, and losing the new one would force a re-authorization.
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

    /// One renewal by auth kind: an OAuth refresh, or a new provider session.
    async fn renew(
        &self,
        p: &Arc<dyn Provider>,
        ws: &str,
        conn: &Connection,
        secret: ConnectionSecret,
    ) -> Result<ConnectionSecret, SyncError> {
        let id = p.descriptor().id;
        match &p.descriptor().auth {
            AuthKind::OAuth2(spec) => {
                let refresh_token = secret.refresh_token.clone().ok_or_else(|| {
                    SyncError::Provider(ProviderError::new(
                        id,
                        ProviderErrorKind::ReauthRequired,
                        "no refresh token",
                    ))
                })?;
                let creds = self.client_credentials(id, spec, &secret).await?;
                let tokens = self
                    .oauth
                    .refresh(
                        id,
                        spec,
                        &self.endpoints(p, spec),
                        &creds,
                        &SecretValue::new(refresh_token),
                        self.clock.now(),
                    )
                    .await?;
                Ok(secret.with_tokens(&tokens))
            }
            AuthKind::SessionToken {
                session_lifetime, ..
            } => {
                let mut settings = conn.settings.clone();
                if !settings.is_object() {
                    settings = serde_json::json!({});
                }
                let creds = ProviderSession {
                    workspace_id: ws.to_owned(),
                    secrets: secret
                        .fields
                        .iter()
                        .map(|(k, v)| (k.clone(), SecretValue::new(v.clone())))
                        .collect(),
                    settings,
                };
                let until = self.clock.now()
                    + Duration::from_std(*session_lifetime).unwrap_or_else(|_| Duration::hours(1));
                let grant = p.create_session(&creds, until).await?;
                Ok(ConnectionSecret {
                    access_token: Some(grant.token.expose().to_owned()),
                    expires_at: Some(grant.expires_at),
                    ..secret
                })
            }
            AuthKind::CredentialSet { .. } => Ok(secret),
        }
    }

    async fn mark_reauth_required(&self, ws: &str, provider: &str) -> Result<(), SyncError> {
        self.sessions.invalidate(ws, provider);
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

    /// Runs one provider call with a session (cached per process, see [`Engine::session`]);
    /// after a 401 it drops the cached session, renews once (single flight) and retries, and a
    /// second 401 marks the connection as needing re-authorization.
    pub async fn call<T, F, Fut>(&self, ws: &str, provider: &str, f: F) -> Result<T, SyncError>
    where
        F: Fn(ProviderSession) -> Fut,
        Fut: std::future::Future<Output = Result<T, ProviderError>>,
    {
        // No call to a provider that needs an add-on the workspace lacks (a run in progress
        // when the add-on is removed stops at its next call).
        self.require_addon(ws, provider).await?;
        let session = self.session(ws, provider).await?;
        match f(session.clone()).await {
            Err(e) if e.kind == ProviderErrorKind::ReauthRequired => {
                self.sessions.invalidate(ws, provider);
                let session = self.load_session(ws, provider, Some(&session)).await?;
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
    // Not `account_name`: that is a connect field of its own for some providers (TimeLog's
    // site path segment); readers fall back to it for connections stored before the rename.
    s[REMOTE_ACCOUNT_NAME] = serde_json::Value::String(account.account_name.clone());
    s["accounts"] = serde_json::Value::Array(
        account
            .other_accounts
            .iter()
            .map(|(id, name)| serde_json::json!({"id": id, "name": name}))
            .collect(),
    );
}
