//! Webhooks through a test provider (not shipped): a token on connect, HMAC verification,
//! de-duplication, the handler's decisions recorded as pending refetches, removal on
//! disconnect.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use common::{fields, world};
use hourbridge_domain::{RecordId, Role, SecretValue};
use hourbridge_provider_api::{
    AccountInfo, AuthKind, Capabilities, CredentialField, MasterEntity, Provider,
    ProviderDescriptor, ProviderError, ProviderErrorKind, ProviderSession, Schedule,
    WebhookDelivery, WebhookEndpoint, WebhookEvent, WebhookReceiver, WebhookRequest,
    WebhookVerification,
};
use hourbridge_sync::SyncSettings;
use hourbridge_sync::webhooks::{WebhookError, WebhookReceipt};
use sha2::{Digest, Sha256};

const FIELDS: &[CredentialField] = &[CredentialField {
    name: "api_key",
    label: "API key",
    secret: true,
    required: true,
}];

/// Signs with `x-signature: hex(sha256(secret || body))` (a stand-in for a real HMAC), names
/// deliveries with `x-delivery`, and sends `{"entity": "project", "id": "42", "deleted": false}`.
struct Hooks {
    d: ProviderDescriptor,
    handled: AtomicUsize,
    subscribed: std::sync::Mutex<Vec<WebhookEndpoint>>,
    unsubscribed: AtomicUsize,
}

fn sign(secret: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(secret.as_bytes());
    h.update(body);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[async_trait]
impl Provider for Hooks {
    fn descriptor(&self) -> &ProviderDescriptor {
        &self.d
    }
    async fn check_credentials(&self, _: &ProviderSession) -> Result<AccountInfo, ProviderError> {
        Ok(AccountInfo {
            account_id: "1".into(),
            account_name: "A".into(),
            other_accounts: vec![],
            identity: None,
        })
    }
    fn webhooks(&self) -> Option<&dyn WebhookReceiver> {
        Some(self)
    }
}

#[async_trait]
impl WebhookReceiver for Hooks {
    fn verify(&self, r: &WebhookRequest, secret: &SecretValue) -> Result<(), ProviderError> {
        match r.headers.get("x-signature") {
            Some(sig) if *sig == sign(secret.expose(), &r.body) => Ok(()),
            _ => Err(ProviderError::new(
                "hooks",
                ProviderErrorKind::ReauthRequired,
                "bad signature",
            )),
        }
    }
    fn delivery_id(&self, r: &WebhookRequest) -> Option<String> {
        r.headers.get("x-delivery").cloned()
    }
    fn handle(&self, r: &WebhookRequest) -> Result<WebhookDelivery, ProviderError> {
        self.handled.fetch_add(1, Ordering::SeqCst);
        let v: serde_json::Value = serde_json::from_slice(&r.body).map_err(|_| {
            ProviderError::new("hooks", ProviderErrorKind::InvalidResponse, "not JSON")
        })?;
        Ok(WebhookDelivery {
            events: vec![WebhookEvent {
                entity: MasterEntity::Project,
                remote_id: v["id"].as_str().unwrap_or_default().to_owned(),
                deleted: v["deleted"].as_bool().unwrap_or(false),
                parent_id: None,
            }],
        })
    }
    async fn subscribe(
        &self,
        _: &ProviderSession,
        endpoint: &WebhookEndpoint,
    ) -> Result<(), ProviderError> {
        self.subscribed.lock().unwrap().push(endpoint.clone());
        Ok(())
    }
    async fn unsubscribe(
        &self,
        _: &ProviderSession,
        _: &WebhookEndpoint,
    ) -> Result<(), ProviderError> {
        self.unsubscribed.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn hooks(verification: WebhookVerification) -> Arc<Hooks> {
    Arc::new(Hooks {
        d: ProviderDescriptor {
            id: "hooks",
            display_name: "Hooks",
            auth: AuthKind::CredentialSet { fields: FIELDS },
            install_role: Role::Admin,
            requires_add_on: false,
            rate_limit: None,
            schedule: Schedule::Every(StdDuration::from_secs(86_400)),
            capabilities: Capabilities {
                webhooks: Some(verification),
                ..Capabilities::default()
            },
        },
        handled: AtomicUsize::new(0),
        subscribed: Default::default(),
        unsubscribed: AtomicUsize::new(0),
    })
}

fn request(delivery: &str, body: &str, signature: &str) -> WebhookRequest {
    WebhookRequest {
        headers: [
            ("x-delivery".to_owned(), delivery.to_owned()),
            ("x-signature".to_owned(), signature.to_owned()),
        ]
        .into_iter()
        .collect(),
        body: body.as_bytes().to_vec(),
    }
}

#[tokio::test]
async fn a_verified_delivery_reaches_the_handler_once_and_a_bad_signature_reaches_nothing() {
    let p = hooks(WebhookVerification::HmacSignature);
    let w = world(vec![p.clone()], SyncSettings::default());
    let olga = RecordId::parse("olga").unwrap();
    w.engine
        .connect("acme", &olga, "hooks", fields(&[("api_key", "k")]))
        .await
        .unwrap();
    let hook = w
        .engine
        .connection_webhook("acme", "hooks")
        .await
        .unwrap()
        .expect("a token on connect");
    assert_eq!(hook.token.len(), 64, "256 random bits");
    let secret = w
        .secrets
        .value(hook.secret_name.as_deref().unwrap())
        .expect("signing secret in the secret store");
    let subscribed = p.subscribed.lock().unwrap().clone();
    assert_eq!(subscribed.len(), 1);
    assert!(
        subscribed[0]
            .url
            .ends_with(&format!("/webhooks/hooks/{}", hook.token))
    );
    assert_eq!(
        subscribed[0]
            .signing_secret
            .as_ref()
            .map(|s| s.expose().to_owned()),
        Some(secret.clone())
    );

    let body = r#"{"id": "42", "deleted": false}"#;
    let good = request("d-1", body, &sign(&secret, body.as_bytes()));
    let got = w
        .engine
        .receive_webhook("hooks", &hook.token, &good)
        .await
        .unwrap();
    assert_eq!(got, WebhookReceipt::Accepted { records: 1 });
    let again = w
        .engine
        .receive_webhook("hooks", &hook.token, &good)
        .await
        .unwrap();
    assert_eq!(again, WebhookReceipt::Duplicate);
    assert_eq!(
        p.handled.load(Ordering::SeqCst),
        1,
        "the duplicate is ignored"
    );

    let forged = request("d-2", body, &sign("guess", body.as_bytes()));
    let err = w
        .engine
        .receive_webhook("hooks", &hook.token, &forged)
        .await
        .unwrap_err();
    assert!(matches!(err, WebhookError::BadSignature), "{err:?}");
    let err = w
        .engine
        .receive_webhook("hooks", &"0".repeat(64), &good)
        .await
        .unwrap_err();
    assert!(matches!(err, WebhookError::Unknown), "{err:?}");
    let err = w
        .engine
        .receive_webhook("other", &hook.token, &good)
        .await
        .unwrap_err();
    assert!(matches!(err, WebhookError::Unknown), "{err:?}");
    assert_eq!(
        p.handled.load(Ordering::SeqCst),
        1,
        "nothing else reached the handler"
    );

    // The handler's decision waits for a sync: one targeted record, not a full refetch.
    let pending = w.engine.pending_refetches("acme", "hooks").await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].event.remote_id, "42");
    assert_eq!(pending[0].event.entity, MasterEntity::Project);
    // A newer delivery about the same record replaces the entry, so finishing the older one
    // keeps it.
    w.clock.advance(chrono::Duration::seconds(5));
    let body2 = r#"{"id": "42", "deleted": true}"#;
    w.engine
        .receive_webhook(
            "hooks",
            &hook.token,
            &request("d-3", body2, &sign(&secret, body2.as_bytes())),
        )
        .await
        .unwrap();
    assert!(!w.engine.refetch_done("acme", &pending[0]).await.unwrap());
    let newer = w.engine.pending_refetches("acme", "hooks").await.unwrap();
    assert_eq!(newer.len(), 1);
    assert!(newer[0].event.deleted);
    assert!(w.engine.refetch_done("acme", &newer[0]).await.unwrap());
    assert!(
        w.engine
            .pending_refetches("acme", "hooks")
            .await
            .unwrap()
            .is_empty()
    );

    // Disconnect removes token and signing secret.
    assert!(w.engine.disconnect("acme", "hooks").await.unwrap());
    assert_eq!(p.unsubscribed.load(Ordering::SeqCst), 1);
    assert!(
        w.secrets
            .value(hook.secret_name.as_deref().unwrap())
            .is_none()
    );
    let err = w
        .engine
        .receive_webhook("hooks", &hook.token, &good)
        .await
        .unwrap_err();
    assert!(matches!(err, WebhookError::Unknown), "{err:?}");
}

#[tokio::test]
async fn path_token_deliveries_without_an_id_are_deduplicated_by_body() {
    let p = hooks(WebhookVerification::PathToken);
    let w = world(vec![p.clone()], SyncSettings::default());
    let olga = RecordId::parse("olga").unwrap();
    w.engine
        .connect("acme", &olga, "hooks", fields(&[("api_key", "k")]))
        .await
        .unwrap();
    let hook = w
        .engine
        .connection_webhook("acme", "hooks")
        .await
        .unwrap()
        .unwrap();
    assert!(hook.secret_name.is_none(), "the path token is the proof");
    let unsigned = |body: &str| WebhookRequest {
        headers: Default::default(),
        body: body.as_bytes().to_vec(),
    };
    let first = w
        .engine
        .receive_webhook("hooks", &hook.token, &unsigned(r#"{"id": "7"}"#))
        .await
        .unwrap();
    assert_eq!(first, WebhookReceipt::Accepted { records: 1 });
    let same = w
        .engine
        .receive_webhook("hooks", &hook.token, &unsigned(r#"{"id": "7"}"#))
        .await
        .unwrap();
    assert_eq!(same, WebhookReceipt::Duplicate);
    let other = w
        .engine
        .receive_webhook("hooks", &hook.token, &unsigned(r#"{"id": "8"}"#))
        .await
        .unwrap();
    assert_eq!(other, WebhookReceipt::Accepted { records: 1 });
    assert_eq!(p.handled.load(Ordering::SeqCst), 2);
    let err = w
        .engine
        .receive_webhook("hooks", &hook.token, &unsigned("not json"))
        .await
        .unwrap_err();
    assert!(matches!(err, WebhookError::Unreadable(_)), "{err:?}");
    // Re-connecting keeps the token (a provider subscription keeps working).
    w.engine
        .connect("acme", &olga, "hooks", fields(&[("api_key", "k2")]))
        .await
        .unwrap();
    let again = w
        .engine
        .connection_webhook("acme", "hooks")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.token, hook.token);
}
