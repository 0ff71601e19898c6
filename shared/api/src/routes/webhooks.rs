//! `POST /webhooks/{provider}/{token}`: change notifications from providers. No bearer token:
//! the path token is unguessable and per connection, and the provider's signature is verified
//! before anything is read. Deliveries are de-duplicated; each new one queues a sync run.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::Duration;
use hourbridge_provider_api::WebhookRequest;
use hourbridge_store::{Entity, EntityKind, GLOBAL_SCOPE, StoreError, WebhookDedup};
use hourbridge_sync::RunScope;
use hourbridge_sync::runs::RunMode;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::{ApiError, ApiResult, AppState, ErrorBody};

/// How long a delivery id is remembered for de-duplication.
const DEDUP_DAYS: i64 = 7;

/// The connection a webhook path token belongs to (created when a webhook-capable provider is
/// connected).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookToken {
    /// The unguessable path token.
    pub token: String,
    /// Workspace of the connection.
    pub workspace_id: String,
    /// Provider of the connection.
    pub provider: String,
    /// Name of the secret holding the signing key.
    pub secret_name: String,
}

impl Entity for WebhookToken {
    const KIND: EntityKind = EntityKind("webhook_token");
    fn id(&self) -> String {
        self.token.clone()
    }
}

fn unknown() -> ApiError {
    // One answer for every way of being wrong, so tokens cannot be probed.
    ApiError::not_found("webhook")
}

/// Receives a provider webhook.
#[utoipa::path(post, path = "/webhooks/{provider}/{token}", tag = "webhooks", security(()),
    params(("provider" = String, Path), ("token" = String, Path)),
    request_body(content = String, description = "the provider's payload, verified as sent", content_type = "application/json"),
    responses((status = 202, description = "accepted"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn receive(
    State(s): State<AppState>,
    Path((provider, token)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<StatusCode> {
    if token.len() > 128 || !token.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(unknown());
    }
    let (hook, _) = s
        .engine
        .store
        .get::<WebhookToken>(GLOBAL_SCOPE, &token)
        .await?
        .ok_or_else(unknown)?;
    if hook.provider != provider {
        return Err(unknown());
    }
    let p = s.engine.provider(&provider).map_err(|_| unknown())?;
    let receiver = p.webhooks().ok_or_else(unknown)?;
    let request = WebhookRequest {
        headers: headers
            .iter()
            .filter_map(|(k, v)| {
                Some((k.as_str().to_ascii_lowercase(), v.to_str().ok()?.to_owned()))
            })
            .collect::<BTreeMap<_, _>>(),
        body: body.to_vec(),
    };
    let secret = s
        .engine
        .secrets
        .get(&hook.secret_name)
        .await
        .map_err(hourbridge_sync::SyncError::from)?
        .ok_or_else(unknown)?;
    receiver.verify(&request, &secret).map_err(|_| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
            "the webhook signature does not verify",
        )
    })?;
    let events = receiver
        .decode(&request)
        .map_err(hourbridge_sync::SyncError::from)?;
    let mut fresh = 0;
    for e in &events {
        let dedup = WebhookDedup {
            key: format!("{provider}.{}", e.delivery_id),
            expires_at: s.engine.clock.now() + Duration::days(DEDUP_DAYS),
        };
        match s.engine.store.insert(&hook.workspace_id, &dedup).await {
            Ok(_) => fresh += 1,
            Err(StoreError::Conflict) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if fresh > 0 {
        s.engine
            .start_run(
                &hook.workspace_id,
                &provider,
                RunScope::Connection,
                RunMode::Refetch,
            )
            .await?;
    }
    Ok(StatusCode::ACCEPTED)
}

pub(crate) fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(receive))
}
