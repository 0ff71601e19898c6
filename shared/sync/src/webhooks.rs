//! Webhooks: per-connection tokens, verification, de-duplication and the records they say
//! changed.
//!
//! - **Token.** When a connection of a provider that declares `capabilities.webhooks` becomes
//!   active, it gets an unguessable path token (256 random bits) for
//!   `POST /webhooks/{provider}/{token}`, and, when the provider verifies with
//!   [`WebhookVerification::HmacSignature`], a random signing secret stored in the secret store
//!   (`{workspace}/{provider}/webhook`). The provider may register the endpoint through its API
//!   ([`WebhookReceiver::subscribe`](hourbridge_provider_api::WebhookReceiver::subscribe)).
//!   Disconnecting unsubscribes and deletes token and secret.
//! - **Delivery.** [`Engine::receive_webhook`] finds the connection by token (every wrong
//!   token, provider or missing receiver is the same [`WebhookError::Unknown`]), verifies the
//!   signature when declared ([`WebhookError::BadSignature`]: nothing else runs), drops a
//!   delivery already seen (by the provider's delivery id or a SHA-256 of the body, remembered
//!   for [`DEDUP_DAYS`] days) and hands a new one to the provider's handler.
//! - **Decisions.** The handler answers which records changed
//!   ([`WebhookEvent`]s); each is stored as a [`PendingRefetch`] (one per record, so repeated
//!   changes coalesce). A sync kind that refreshes master data reads them with
//!   [`Engine::pending_refetches`], refetches (or removes) just those records, and marks each
//!   done with [`Engine::refetch_done`], which keeps an entry that changed again meanwhile.

use chrono::{DateTime, Duration, Utc};
use hourbridge_domain::{SecretValue, connection_secret_name};
use hourbridge_provider_api::{WebhookEndpoint, WebhookEvent, WebhookRequest, WebhookVerification};
use hourbridge_store::{
    Entity, EntityKind, GLOBAL_SCOPE, IndexKey, IndexSel, StoreError, WebhookDedup,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::connections::random_token;
use crate::{Engine, SyncError};

/// How long a delivery is remembered for de-duplication.
pub const DEDUP_DAYS: i64 = 7;

/// The connection a webhook path token belongs to (global scope, by token).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookToken {
    /// The unguessable path token.
    pub token: String,
    /// Workspace of the connection.
    pub workspace_id: String,
    /// Provider of the connection.
    pub provider: String,
    /// Name of the secret holding the signing key (HMAC-verified providers only).
    #[serde(default)]
    pub secret_name: Option<String>,
}

impl Entity for WebhookToken {
    const KIND: EntityKind = EntityKind("webhook_token");
    fn id(&self) -> String {
        self.token.clone()
    }
}

/// A connection's webhook, in its workspace (by provider), so disconnecting finds the token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectionWebhook {
    /// Provider of the connection.
    pub provider: String,
    /// The path token.
    pub token: String,
    /// Name of the signing secret, if any.
    pub secret_name: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl Entity for ConnectionWebhook {
    const KIND: EntityKind = EntityKind("connection_webhook");
    fn id(&self) -> String {
        self.provider.clone()
    }
}

/// A record a webhook said changed, waiting for a sync to refetch (or remove) it. One entry
/// per provider and record: a later delivery about the same record replaces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRefetch {
    /// Provider of the connection.
    pub provider: String,
    /// What changed.
    pub event: WebhookEvent,
    /// When the (latest) delivery about it arrived.
    pub received_at: DateTime<Utc>,
}

impl PendingRefetch {
    fn key(provider: &str, event: &WebhookEvent) -> String {
        let entity = serde_json::to_value(event.entity)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let plain = !event.remote_id.is_empty()
            && event.remote_id.len() <= 64
            && event
                .remote_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        let id = if plain {
            event.remote_id.clone()
        } else {
            hex(&Sha256::digest(event.remote_id.as_bytes()))
        };
        format!("{provider}.{entity}.{id}")
    }
}

impl Entity for PendingRefetch {
    const KIND: EntityKind = EntityKind("pending_refetch");
    fn id(&self) -> String {
        Self::key(&self.provider, &self.event)
    }
    fn index1(&self) -> Option<IndexKey> {
        Some(IndexKey {
            partition: self.provider.clone(),
            sort: self.id(),
        })
    }
}

/// Why a webhook delivery was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// No such token for this provider (or the provider takes no webhooks): one answer for
    /// every case, so tokens cannot be probed.
    #[error("unknown webhook")]
    Unknown,
    /// The signature does not verify; nothing was read or recorded.
    #[error("the webhook signature does not verify")]
    BadSignature,
    /// The provider's handler could not read the verified delivery.
    #[error("unreadable delivery: {0}")]
    Unreadable(String),
    /// Store or secret store failure.
    #[error(transparent)]
    Sync(#[from] SyncError),
}

impl From<StoreError> for WebhookError {
    fn from(e: StoreError) -> Self {
        Self::Sync(e.into())
    }
}

/// What happened to an accepted delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookReceipt {
    /// New: the handler ran and this many records wait for a refetch.
    Accepted {
        /// Records recorded as [`PendingRefetch`].
        records: usize,
    },
    /// Seen before: ignored.
    Duplicate,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Engine {
    /// Where deliveries for a webhook token go.
    pub fn webhook_url(&self, provider: &str, token: &str) -> String {
        format!(
            "{}/webhooks/{provider}/{token}",
            self.settings.public_url.trim_end_matches('/')
        )
    }

    /// The webhook of a connection, if it has one.
    pub async fn connection_webhook(
        &self,
        ws: &str,
        provider: &str,
    ) -> Result<Option<ConnectionWebhook>, SyncError> {
        Ok(self
            .store
            .get::<ConnectionWebhook>(ws, provider)
            .await?
            .map(|(w, _)| w))
    }

    /// Gives an active connection its webhook token (and signing secret) when its provider
    /// declares webhooks, keeping an existing one (a re-authorization keeps the URL), and asks
    /// the provider to subscribe; a failed subscription is logged, not fatal (the nightly sync
    /// still reconciles).
    pub(crate) async fn enable_webhooks(&self, ws: &str, provider: &str) -> Result<(), SyncError> {
        let p = self.provider(provider)?.clone();
        let Some(method) = p.descriptor().capabilities.webhooks else {
            return Ok(());
        };
        if p.webhooks().is_none() {
            return Ok(());
        }
        let hook = match self.connection_webhook(ws, provider).await? {
            Some(h) => h,
            None => {
                let token = random_token();
                let secret_name = match method {
                    WebhookVerification::HmacSignature => {
                        let name = format!("{}/webhook", connection_secret_name(ws, provider));
                        self.secrets
                            .put(&name, &SecretValue::new(random_token()))
                            .await?;
                        Some(name)
                    }
                    WebhookVerification::PathToken => None,
                };
                self.store
                    .insert(
                        GLOBAL_SCOPE,
                        &WebhookToken {
                            token: token.clone(),
                            workspace_id: ws.to_owned(),
                            provider: provider.to_owned(),
                            secret_name: secret_name.clone(),
                        },
                    )
                    .await?;
                let hook = ConnectionWebhook {
                    provider: provider.to_owned(),
                    token,
                    secret_name,
                    created_at: self.clock.now(),
                };
                self.store.put(ws, &hook).await?;
                hook
            }
        };
        let endpoint = self.endpoint(provider, &hook).await?;
        let subscribed = self
            .call(ws, provider, |s| {
                let p = p.clone();
                let endpoint = endpoint.clone();
                async move {
                    match p.webhooks() {
                        Some(r) => r.subscribe(&s, &endpoint).await,
                        None => Ok(()),
                    }
                }
            })
            .await;
        if let Err(e) = subscribed {
            tracing::warn!(ws, provider, error = %e, "webhook subscription failed");
        }
        Ok(())
    }

    async fn endpoint(
        &self,
        provider: &str,
        hook: &ConnectionWebhook,
    ) -> Result<WebhookEndpoint, SyncError> {
        let signing_secret = match &hook.secret_name {
            Some(name) => self.secrets.get(name).await?,
            None => None,
        };
        Ok(WebhookEndpoint {
            url: self.webhook_url(provider, &hook.token),
            signing_secret,
        })
    }

    /// Removes a connection's webhook: unsubscribes (best effort, while the credentials still
    /// exist), deletes token, signing secret and the records waiting for a refetch.
    pub(crate) async fn disable_webhooks(&self, ws: &str, provider: &str) -> Result<(), SyncError> {
        if let Some(hook) = self.connection_webhook(ws, provider).await? {
            if let Ok(p) = self.provider(provider)
                && let Some(r) = p.webhooks()
            {
                let endpoint = self.endpoint(provider, &hook).await?;
                let done = match self.session(ws, provider).await {
                    Ok(s) => r.unsubscribe(&s, &endpoint).await.map_err(SyncError::from),
                    Err(e) => Err(e),
                };
                if let Err(e) = done {
                    tracing::warn!(ws, provider, error = %e, "webhook unsubscribe failed");
                }
            }
            self.store
                .delete::<WebhookToken>(GLOBAL_SCOPE, &hook.token)
                .await?;
            if let Some(name) = &hook.secret_name {
                self.secrets.delete(name).await?;
            }
            self.store.delete::<ConnectionWebhook>(ws, provider).await?;
        }
        let pending = self.pending_refetches(ws, provider).await?;
        let ids: Vec<String> = pending.iter().map(Entity::id).collect();
        if !ids.is_empty() {
            self.store.delete_batch::<PendingRefetch>(ws, &ids).await?;
        }
        Ok(())
    }

    /// Receives one delivery for `POST /webhooks/{provider}/{token}`: verifies it as the
    /// provider declares, ignores one seen before, and records what the provider's handler says
    /// changed (see the module documentation).
    pub async fn receive_webhook(
        &self,
        provider: &str,
        token: &str,
        request: &WebhookRequest,
    ) -> Result<WebhookReceipt, WebhookError> {
        if token.is_empty()
            || token.len() > 128
            || !token.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(WebhookError::Unknown);
        }
        let (hook, _) = self
            .store
            .get::<WebhookToken>(GLOBAL_SCOPE, token)
            .await?
            .ok_or(WebhookError::Unknown)?;
        if hook.provider != provider {
            return Err(WebhookError::Unknown);
        }
        let p = self
            .provider(provider)
            .map_err(|_| WebhookError::Unknown)?
            .clone();
        let method = p
            .descriptor()
            .capabilities
            .webhooks
            .ok_or(WebhookError::Unknown)?;
        let receiver = p.webhooks().ok_or(WebhookError::Unknown)?;
        if method == WebhookVerification::HmacSignature {
            let name = hook.secret_name.as_deref().ok_or(WebhookError::Unknown)?;
            let secret = self
                .secrets
                .get(name)
                .await
                .map_err(SyncError::from)?
                .ok_or(WebhookError::Unknown)?;
            receiver
                .verify(request, &secret)
                .map_err(|_| WebhookError::BadSignature)?;
        }
        let ws = hook.workspace_id.as_str();
        // Without the add-on nothing is recorded and the delivery is refused (403
        // `addon_not_enabled`), so the provider sees it failed; the first run after the add-on
        // is enabled again refetches what changed meanwhile.
        self.require_addon(ws, provider).await?;
        let key = match receiver.delivery_id(request) {
            Some(id) => format!("{provider}.id.{}", hex(&Sha256::digest(id.as_bytes()))),
            None => format!("{provider}.body.{}", hex(&Sha256::digest(&request.body))),
        };
        if self.store.get::<WebhookDedup>(ws, &key).await?.is_some() {
            return Ok(WebhookReceipt::Duplicate);
        }
        let delivery = receiver
            .handle(request)
            .map_err(|e| WebhookError::Unreadable(e.message))?;
        let now = self.clock.now();
        // Recorded before the delivery is marked seen: a crash in between makes the provider's
        // redelivery record the same (idempotent) entries again instead of losing them.
        for event in &delivery.events {
            let pending = PendingRefetch {
                provider: provider.to_owned(),
                event: event.clone(),
                received_at: now,
            };
            self.store.put(ws, &pending).await?;
        }
        let seen = WebhookDedup {
            key,
            expires_at: now + Duration::days(DEDUP_DAYS),
        };
        match self.store.insert(ws, &seen).await {
            Ok(_) => {}
            Err(StoreError::Conflict) => return Ok(WebhookReceipt::Duplicate),
            Err(e) => return Err(e.into()),
        }
        if !delivery.events.is_empty() {
            // One small run for the records named; a burst of deliveries coalesces onto the
            // run already queued for them.
            if let Err(e) = self
                .start_run(
                    ws,
                    provider,
                    crate::RunScope::Changes,
                    crate::runs::RunMode::Refetch,
                )
                .await
            {
                tracing::warn!(ws, provider, error = %e, "webhook refetch not queued; the next sync covers it");
            }
        }
        Ok(WebhookReceipt::Accepted {
            records: delivery.events.len(),
        })
    }

    /// Records webhooks said changed on the connection, waiting for a sync to refetch them.
    pub async fn pending_refetches(
        &self,
        ws: &str,
        provider: &str,
    ) -> Result<Vec<PendingRefetch>, SyncError> {
        Ok(self
            .store
            .list_all::<PendingRefetch>(self.store.query::<PendingRefetch>(
                ws,
                IndexSel::Index1(provider.to_owned()),
                1000,
            ))
            .await?)
    }

    /// Marks a pending refetch done; an entry that a newer delivery replaced meanwhile stays.
    /// Returns whether it was removed.
    pub async fn refetch_done(&self, ws: &str, done: &PendingRefetch) -> Result<bool, SyncError> {
        let id = done.id();
        match self.store.get::<PendingRefetch>(ws, &id).await? {
            Some((current, version)) if current.received_at == done.received_at => {
                match self
                    .store
                    .delete_at::<PendingRefetch>(ws, &id, version)
                    .await
                {
                    Ok(removed) => Ok(removed),
                    Err(StoreError::Conflict) => Ok(false),
                    Err(e) => Err(e.into()),
                }
            }
            _ => Ok(false),
        }
    }
}
