//! The add-on gate over HTTP, through a test provider that requires an add-on (not shipped):
//! only a service token (the host product's billing backend) manages add-ons and it may do
//! nothing else but read; every call of the provider without its add-on answers 403
//! `addon_not_enabled`; removing it stops the schedule and webhooks and fails the status,
//! keeping the data.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use axum::http::{Method, StatusCode};
use hourbridge_api::{AppState, Authenticator};
use hourbridge_domain::{Clock, Role, SecretValue, SystemClock};
use hourbridge_provider_api::{
    AccountInfo, AuthKind, Capabilities, CredentialField, MasterEntity, Provider,
    ProviderDescriptor, ProviderError, ProviderErrorKind, ProviderSession, Registry, Schedule,
    WebhookDelivery, WebhookEvent, WebhookReceiver, WebhookRequest, WebhookVerification,
};
use hourbridge_sync::Engine;
use serde_json::{Value, json};

use common::{
    MemorySecrets, authenticator, code, delivery_request, engine, issue, json_request,
    memory_store, send, sign,
};

/// A credential set requiring its add-on, with signed webhooks
/// (`x-signature: {secret}:{body length}`).
struct Gated {
    d: ProviderDescriptor,
    handled: AtomicUsize,
    calls: AtomicUsize,
}

#[async_trait]
impl Provider for Gated {
    fn descriptor(&self) -> &ProviderDescriptor {
        &self.d
    }
    async fn check_credentials(&self, _: &ProviderSession) -> Result<AccountInfo, ProviderError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(AccountInfo {
            account_id: "1".into(),
            account_name: "Acme AS".into(),
            other_accounts: vec![],
            identity: None,
        })
    }
    fn webhooks(&self) -> Option<&dyn WebhookReceiver> {
        Some(self)
    }
}

#[async_trait]
impl WebhookReceiver for Gated {
    fn verify(&self, r: &WebhookRequest, secret: &SecretValue) -> Result<(), ProviderError> {
        if r.headers.get("x-signature") == Some(&sign(secret.expose(), &r.body)) {
            Ok(())
        } else {
            Err(ProviderError::new(
                "gated",
                ProviderErrorKind::ReauthRequired,
                "bad signature",
            ))
        }
    }
    fn delivery_id(&self, r: &WebhookRequest) -> Option<String> {
        r.headers.get("x-delivery").cloned()
    }
    fn handle(&self, _: &WebhookRequest) -> Result<WebhookDelivery, ProviderError> {
        self.handled.fetch_add(1, Ordering::SeqCst);
        Ok(WebhookDelivery {
            events: vec![WebhookEvent {
                entity: MasterEntity::Customer,
                remote_id: "c-1".into(),
                deleted: false,
                parent_id: None,
            }],
        })
    }
}

struct World {
    app: axum::Router,
    auth: Arc<Authenticator>,
    engine: Engine,
    secrets: Arc<MemorySecrets>,
    provider: Arc<Gated>,
}

const ADDON_FIELDS: &[CredentialField] = &[CredentialField {
    name: "password",
    label: "Password",
    secret: true,
    required: true,
}];

async fn world() -> World {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = memory_store(clock.clone());
    let provider = Arc::new(Gated {
        d: ProviderDescriptor {
            id: "gated",
            display_name: "Gated",
            auth: AuthKind::CredentialSet {
                fields: ADDON_FIELDS,
            },
            install_role: Role::Admin,
            requires_add_on: true,
            rate_limit: None,
            schedule: Schedule::Every(StdDuration::from_secs(3600)),
            capabilities: Capabilities {
                webhooks: Some(WebhookVerification::HmacSignature),
                ..Capabilities::default()
            },
        },
        handled: AtomicUsize::new(0),
        calls: AtomicUsize::new(0),
    });
    let mut registry = Registry::new();
    registry.register(provider.clone()).unwrap();
    let secrets = Arc::new(MemorySecrets::default());
    let engine = engine(store.clone(), registry, secrets.clone(), clock);
    let auth = Arc::new(authenticator());
    let app = hourbridge_api::router(AppState {
        store,
        auth: auth.clone(),
        engine: engine.clone(),
    });
    let w = World {
        app,
        auth,
        engine,
        secrets,
        provider,
    };
    let (st, b) = w
        .call(
            "owner",
            Method::POST,
            "/v1/workspaces",
            Some(json!({"name": "Acme", "owner": {"name": "Olga", "email": "olga@acme.test"}})),
        )
        .await;
    assert!(st.is_success(), "{st} {b}");
    w
}

impl World {
    fn token(&self, role: &str) -> String {
        let sub = if role == "service" { "billing" } else { "olga" };
        issue(&self.auth, sub, role)
    }

    async fn call(
        &self,
        role: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        send(
            &self.app,
            json_request(method, path, &self.token(role), body, &[]),
        )
        .await
    }

    async fn deliver(
        &self,
        token: &str,
        delivery: &str,
        body: &str,
        sig: &str,
    ) -> (StatusCode, Value) {
        send(
            &self.app,
            delivery_request("gated", token, delivery, body, sig),
        )
        .await
    }
}

#[tokio::test]
async fn only_a_service_token_manages_add_ons_and_it_only_reads_otherwise() {
    let w = world().await;
    let (st, b) = w.call("service", Method::GET, "/v1/workspace", None).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["add_ons"], json!([]));
    for role in ["owner", "admin", "manager", "member"] {
        for method in [Method::PUT, Method::DELETE] {
            let (st, b) = w
                .call(role, method.clone(), "/v1/workspace/addons/gated", None)
                .await;
            assert_eq!(st, StatusCode::FORBIDDEN, "{role} {method}: {b}");
            assert_eq!(code(&b), "forbidden");
        }
    }
    let (st, b) = w
        .call("service", Method::PUT, "/v1/workspace/addons/gated", None)
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["add_ons"], json!(["gated"]));
    let (st, _) = w
        .call("service", Method::PUT, "/v1/workspace/addons/gated", None)
        .await;
    assert_eq!(st, StatusCode::OK, "idempotent");
    let (_, b) = w.call("member", Method::GET, "/v1/workspace", None).await;
    assert_eq!(
        b["add_ons"],
        json!(["gated"]),
        "GET /v1/workspace shows them"
    );
    let (st, b) = w
        .call("service", Method::PUT, "/v1/workspace/addons/nope", None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(code(&b), "unknown_addon");
    for _ in 0..2 {
        let (st, b) = w
            .call(
                "service",
                Method::DELETE,
                "/v1/workspace/addons/gated",
                None,
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{b}");
        assert_eq!(b["add_ons"], json!([]));
    }

    // Reads a member may do.
    for path in [
        "/v1/projects",
        "/v1/people",
        "/v1/customers",
        "/v1/connections",
    ] {
        let (st, b) = w.call("service", Method::GET, path, None).await;
        assert_eq!(st, StatusCode::OK, "{path}: {b}");
    }

    // Every other write of the API, as documented, refuses a service token.
    let doc = serde_json::to_value(hourbridge_api::openapi()).unwrap();
    let mut writes = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        if path.starts_with("/webhooks/") || path.starts_with("/oauth/") {
            continue;
        }
        for method in ["post", "put", "patch", "delete"] {
            if item.get(method).is_none() || path.starts_with("/v1/workspace/addons/") {
                continue;
            }
            let concrete = path
                .split('/')
                .map(|s| if s.starts_with('{') { "x" } else { s })
                .collect::<Vec<_>>()
                .join("/");
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let (st, b) = w
                .call("service", m, &concrete, Some(json!({"name": "X"})))
                .await;
            assert_eq!(st, StatusCode::FORBIDDEN, "{method} {path}: {b}");
            assert_eq!(code(&b), "forbidden", "{method} {path}");
            writes += 1;
        }
    }
    assert!(writes > 15, "only {writes} write routes found");
    let (_, list) = w.call("owner", Method::GET, "/v1/projects", None).await;
    assert_eq!(list["items"], json!([]), "nothing was written");
}

#[tokio::test]
async fn without_the_add_on_every_call_of_the_provider_answers_addon_not_enabled() {
    let w = world().await;
    let connect = json!({"password": "right"});
    let (st, b) = w
        .call(
            "owner",
            Method::PUT,
            "/v1/connections/gated",
            Some(connect.clone()),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{b}");
    assert_eq!(code(&b), "addon_not_enabled");
    let message = b["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("the Gated add-on is not enabled for this workspace")
            && message.contains("billing settings"),
        "{message}"
    );
    assert!(w.secrets.0.lock().unwrap().is_empty(), "nothing stored");
    assert_eq!(
        w.provider.calls.load(Ordering::SeqCst),
        0,
        "no provider call"
    );

    w.call("service", Method::PUT, "/v1/workspace/addons/gated", None)
        .await;
    let (st, b) = w
        .call("owner", Method::PUT, "/v1/connections/gated", Some(connect))
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["state"], "active");
    assert!(b["next_run_at"].is_string());
    let (_, project) = w
        .call(
            "owner",
            Method::POST,
            "/v1/projects",
            Some(json!({"name": "P"})),
        )
        .await;
    let pid = project["id"].as_str().unwrap().to_owned();
    let hook = w
        .engine
        .connection_webhook("acme", "gated")
        .await
        .unwrap()
        .expect("webhook token");
    let secret = w
        .secrets
        .0
        .lock()
        .unwrap()
        .get(hook.secret_name.as_deref().unwrap())
        .cloned()
        .unwrap();

    let (st, b) = w
        .call(
            "service",
            Method::DELETE,
            "/v1/workspace/addons/gated",
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let (st, b) = w
        .call("owner", Method::GET, "/v1/connections/gated", None)
        .await;
    assert_eq!(st, StatusCode::OK, "the connection stays: {b}");
    assert_eq!(b["state"], "active");
    assert_eq!(b["status"]["kind"], "failed", "{b}");
    assert_eq!(b["status"]["reason"], "addon_not_enabled", "{b}");
    assert!(b["next_run_at"].is_null(), "off the schedule: {b}");
    assert!(
        w.engine
            .store
            .get::<hourbridge_sync::schedule::ScheduleEntry>(
                hourbridge_store::GLOBAL_SCOPE,
                "acme.gated"
            )
            .await
            .unwrap()
            .is_none()
    );
    assert!(!w.secrets.0.lock().unwrap().is_empty(), "credentials kept");

    let cases: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::PUT,
            "/v1/connections/gated".into(),
            Some(json!({"password": "right"})),
        ),
        (Method::POST, "/v1/connections/gated/sync".into(), None),
        (Method::POST, "/v1/connections/gated/test".into(), None),
        (Method::POST, "/v1/connections/gated/confirm".into(), None),
        (
            Method::POST,
            "/v1/connections/gated/review/x".into(),
            Some(json!({"action": "ignore"})),
        ),
        (
            Method::GET,
            "/v1/connections/gated/remote-projects".into(),
            None,
        ),
        (
            Method::PUT,
            format!("/v1/projects/{pid}/integrations/gated"),
            Some(json!({"remote_project_ids": ["r1"], "sync_from": "2026-01-01"})),
        ),
        (
            Method::POST,
            format!("/v1/projects/{pid}/integrations/gated/clear"),
            None,
        ),
    ];
    for (method, path, body) in cases {
        let (st, b) = w.call("owner", method.clone(), &path, body).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{method} {path}: {b}");
        assert_eq!(code(&b), "addon_not_enabled", "{method} {path}: {b}");
    }
    let calls = w.provider.calls.load(Ordering::SeqCst);

    // Webhooks are refused and record nothing (the provider sees the delivery failed; the
    // next run after re-enabling refetches).
    let body = r#"{"id": "c-1"}"#;
    let (st, b) = w
        .deliver(&hook.token, "d-1", body, &sign(&secret, body.as_bytes()))
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{b}");
    assert_eq!(code(&b), "addon_not_enabled");
    assert_eq!(w.provider.handled.load(Ordering::SeqCst), 0);
    assert!(
        w.engine
            .pending_refetches("acme", "gated")
            .await
            .unwrap()
            .is_empty()
    );
    // A forged delivery still answers 401, so the add-on state cannot be probed unsigned.
    let (st, _) = w.deliver(&hook.token, "d-2", body, "forged").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(
        w.provider.calls.load(Ordering::SeqCst),
        calls,
        "no provider call"
    );

    // Enabling it again: scheduled again, webhooks and runs work.
    w.call("service", Method::PUT, "/v1/workspace/addons/gated", None)
        .await;
    let (_, b) = w
        .call("owner", Method::GET, "/v1/connections/gated", None)
        .await;
    assert!(b["next_run_at"].is_string(), "back on the schedule: {b}");
    let (st, b) = w
        .deliver(&hook.token, "d-3", body, &sign(&secret, body.as_bytes()))
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{b}");
    let (st, b) = w
        .call("owner", Method::POST, "/v1/connections/gated/sync", None)
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{b}");
}
