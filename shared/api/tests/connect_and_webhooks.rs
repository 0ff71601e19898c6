//! The connect body and webhook route over HTTP, through test providers defined here (not
//! shipped): declared fields validated with typed errors, secret fields never returned, install
//! errors mapped to their statuses, and webhook deliveries verified (401) and deduplicated.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use hourbridge_api::AppState;
use hourbridge_domain::{Clock, Role, SecretValue, SystemClock};
use hourbridge_provider_api::{
    AccountInfo, AuthKind, Capabilities, CredentialCheckError, CredentialField, MasterEntity,
    Provider, ProviderDescriptor, ProviderError, ProviderErrorKind, ProviderSession, Registry,
    Schedule, WebhookDelivery, WebhookEvent, WebhookReceiver, WebhookRequest, WebhookVerification,
};
use hourbridge_sync::Engine;
use serde_json::{Value, json};
use tower::ServiceExt;

use common::{
    MemorySecrets, authenticator, delivery_request, engine, issue, json_request, memory_store,
    send, sign,
};

const FIELDS: &[CredentialField] = &[
    CredentialField {
        name: "domain",
        label: "Domain",
        secret: false,
        required: true,
    },
    CredentialField {
        name: "password",
        label: "Password",
        secret: true,
        required: true,
    },
];

/// A credential set (password `right`; domain `down` is unreachable, `basic` lacks the API
/// add-on) with signed webhooks: `x-signature: {secret}:{body length}`.
struct TestProvider {
    d: ProviderDescriptor,
    handled: AtomicUsize,
}

#[async_trait]
impl Provider for TestProvider {
    fn descriptor(&self) -> &ProviderDescriptor {
        &self.d
    }
    async fn check_credentials(&self, _: &ProviderSession) -> Result<AccountInfo, ProviderError> {
        Ok(AccountInfo {
            account_id: "1".into(),
            account_name: "Acme".into(),
            other_accounts: vec![],
            identity: None,
        })
    }
    async fn validate_credentials(
        &self,
        s: &ProviderSession,
    ) -> Result<AccountInfo, CredentialCheckError> {
        match (
            s.settings["domain"].as_str(),
            s.secrets.get("password").map(SecretValue::expose),
        ) {
            (Some("down"), _) => Err(CredentialCheckError::Unreachable {
                message: "could not reach the site".into(),
            }),
            (Some("basic"), _) => Err(CredentialCheckError::MissingEntitlement {
                message: "the API add-on is not enabled".into(),
            }),
            (_, Some("right")) => self
                .check_credentials(s)
                .await
                .map_err(CredentialCheckError::Other),
            _ => Err(CredentialCheckError::Invalid {
                fields: vec!["password".into()],
                message: "wrong password".into(),
            }),
        }
    }
    fn webhooks(&self) -> Option<&dyn WebhookReceiver> {
        Some(self)
    }
}

/// Stands in for a real HMAC: only whoever knows the secret can produce it.
#[async_trait]
impl WebhookReceiver for TestProvider {
    fn verify(&self, r: &WebhookRequest, secret: &SecretValue) -> Result<(), ProviderError> {
        if r.headers.get("x-signature") == Some(&sign(secret.expose(), &r.body)) {
            Ok(())
        } else {
            Err(ProviderError::new(
                "testy",
                ProviderErrorKind::ReauthRequired,
                "bad signature",
            ))
        }
    }
    fn delivery_id(&self, r: &WebhookRequest) -> Option<String> {
        r.headers.get("x-delivery").cloned()
    }
    fn handle(&self, r: &WebhookRequest) -> Result<WebhookDelivery, ProviderError> {
        self.handled.fetch_add(1, Ordering::SeqCst);
        let v: Value = serde_json::from_slice(&r.body).unwrap_or_default();
        Ok(WebhookDelivery {
            events: vec![WebhookEvent {
                entity: MasterEntity::Customer,
                remote_id: v["id"].as_str().unwrap_or_default().into(),
                deleted: false,
                parent_id: None,
            }],
        })
    }
}

struct World {
    app: axum::Router,
    token: String,
    engine: Engine,
    secrets: Arc<MemorySecrets>,
    provider: Arc<TestProvider>,
}

async fn world() -> World {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = memory_store(clock.clone());
    let provider = Arc::new(TestProvider {
        d: ProviderDescriptor {
            id: "testy",
            display_name: "Testy",
            auth: AuthKind::CredentialSet { fields: FIELDS },
            install_role: Role::Admin,
            requires_add_on: false,
            rate_limit: None,
            schedule: Schedule::Every(StdDuration::from_secs(86_400)),
            capabilities: Capabilities {
                webhooks: Some(WebhookVerification::HmacSignature),
                ..Capabilities::default()
            },
        },
        handled: AtomicUsize::new(0),
    });
    let mut registry = Registry::new();
    registry.register(provider.clone()).unwrap();
    let secrets = Arc::new(MemorySecrets::default());
    let engine = engine(store.clone(), registry, secrets.clone(), clock);
    let auth = authenticator();
    let token = issue(&auth, "olga", "owner");
    let app = hourbridge_api::router(AppState {
        store,
        auth: Arc::new(auth),
        engine: engine.clone(),
    });
    let w = World {
        app,
        token,
        engine,
        secrets,
        provider,
    };
    let (st, b) = w
        .call(
            Method::POST,
            "/v1/workspaces",
            Some(json!({"name": "Acme", "time_zone": "Europe/Oslo", "owner": {"name": "Olga", "email": "olga@acme.test"}})),
            &[],
        )
        .await;
    assert!(st.is_success(), "{st} {b}");
    w
}

impl World {
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        send(
            &self.app,
            json_request(method, path, &self.token, body, headers),
        )
        .await
    }

    async fn deliver(&self, token: &str, delivery: &str, body: &str, sig: &str) -> StatusCode {
        send(
            &self.app,
            delivery_request("testy", token, delivery, body, sig),
        )
        .await
        .0
    }
}

#[tokio::test]
async fn connect_errors_are_typed_and_store_nothing() {
    let w = world().await;
    let cases = [
        (
            json!({"domain": "acme", "password": "wrong"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_credentials",
            json!(["password"]),
        ),
        (
            json!({"domain": "down", "password": "right"}),
            StatusCode::BAD_GATEWAY,
            "unreachable",
            Value::Null,
        ),
        (
            json!({"domain": "basic", "password": "right"}),
            StatusCode::FORBIDDEN,
            "missing_entitlement",
            Value::Null,
        ),
        (
            json!({"domain": "acme"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "required",
            json!(["password"]),
        ),
        (
            json!({"domain": "acme", "password": "right", "pin": "1"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_field",
            json!(["pin"]),
        ),
        (
            json!({"domain": "acme", "password": 7}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            json!(["password"]),
        ),
    ];
    for (body, status, code, fields) in cases {
        let (st, b) = w
            .call(
                Method::PUT,
                "/v1/connections/testy",
                Some(body.clone()),
                &[],
            )
            .await;
        assert_eq!(
            (st, b["error"]["code"].as_str(), &b["error"]["fields"]),
            (status, Some(code), &fields),
            "{body} -> {b}"
        );
    }
    assert!(w.secrets.0.lock().unwrap().is_empty());
    let (st, _) = w
        .call(Method::GET, "/v1/connections/testy", None, &[])
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_connection_shows_its_non_secret_fields_only_and_its_webhook_verifies_deliveries() {
    let w = world().await;
    let (st, b) = w
        .call(
            Method::PUT,
            "/v1/connections/testy",
            Some(json!({"domain": "acme.example", "password": "right"})),
            &[],
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["state"], "active");
    assert_eq!(b["fields"], json!({"domain": "acme.example"}));
    let (_, list) = w.call(Method::GET, "/v1/connections", None, &[]).await;
    assert_eq!(
        list["items"][0]["fields"],
        json!({"domain": "acme.example"})
    );
    assert!(!list.to_string().contains("right"));

    let hook = w
        .engine
        .connection_webhook("acme", "testy")
        .await
        .unwrap()
        .expect("webhook token on connect");
    let secret = w
        .secrets
        .0
        .lock()
        .unwrap()
        .get(hook.secret_name.as_deref().unwrap())
        .cloned()
        .unwrap();
    assert_eq!(
        b["webhook_url"].as_str(),
        Some(w.engine.webhook_url("testy", &hook.token).as_str()),
        "the admin sees where to point the provider"
    );
    let body = r#"{"id": "c-9"}"#;
    let st = w.deliver(&hook.token, "d-1", body, "forged").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(
        w.provider.handled.load(Ordering::SeqCst),
        0,
        "nothing reached the handler"
    );
    let good = sign(&secret, body.as_bytes());
    assert_eq!(
        w.deliver(&hook.token, "d-1", body, &good).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        w.deliver(&hook.token, "d-1", body, &good).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        w.provider.handled.load(Ordering::SeqCst),
        1,
        "duplicate ignored"
    );
    assert_eq!(
        w.deliver(&"f".repeat(64), "d-2", body, &good).await,
        StatusCode::NOT_FOUND
    );
    let pending = w.engine.pending_refetches("acme", "testy").await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].event.remote_id, "c-9");

    let (st, _) = w
        .call(Method::DELETE, "/v1/connections/testy", None, &[])
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert_eq!(
        w.deliver(&hook.token, "d-3", body, &good).await,
        StatusCode::NOT_FOUND
    );
    assert!(
        w.secrets.0.lock().unwrap().is_empty(),
        "credentials and signing secret deleted"
    );
}

#[tokio::test]
async fn providers_list_their_auth_kind_and_declared_fields() {
    let w = world().await;
    let (st, b) = w.call(Method::GET, "/v1/providers", None, &[]).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["next_cursor"], Value::Null);
    let p = &b["items"][0];
    assert_eq!(p["id"], "testy");
    assert_eq!(p["display_name"], "Testy");
    assert_eq!(p["auth_kind"], "credential_set");
    assert_eq!(p["install_role"], "admin");
    assert_eq!(p["can_install"], true);
    assert_eq!(p["redirect_url"], Value::Null);
    assert_eq!(p["webhooks"], true);
    assert_eq!(p["schedule"], "every");
    assert_eq!(p["every_seconds"], 86_400);
    assert_eq!(
        p["fields"],
        json!([
            {"name": "domain", "label": "Domain", "secret": false, "required": true},
            {"name": "password", "label": "Password", "secret": true, "required": true},
        ])
    );
    // Without a token: 401, like every /v1 route.
    let req = Request::builder()
        .uri("/v1/providers")
        .body(Body::empty())
        .unwrap();
    let res = w.app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_connect_ui_is_served_without_a_token_with_strict_headers() {
    let w = world().await;
    for (path, kind) in [
        ("/connect", "text/html"),
        ("/connect/app.js", "text/javascript"),
        ("/connect/app.css", "text/css"),
    ] {
        let req = Request::builder().uri(path).body(Body::empty()).unwrap();
        let res = w.app.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let h = res.headers();
        assert!(
            h["content-type"].to_str().unwrap().starts_with(kind),
            "{path}"
        );
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h["x-content-type-options"], "nosniff");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));
    }
    let req = Request::builder()
        .uri("/connect/nope.js")
        .body(Body::empty())
        .unwrap();
    let res = w.app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // Only the workspace API function serves it.
    let f = hourbridge_api::function_openapi(hourbridge_api::HttpFunction::WorkspaceApi);
    assert!(f.paths.paths.contains_key("/connect"));
    let f = hourbridge_api::function_openapi(hourbridge_api::HttpFunction::Connections);
    assert!(f.paths.paths.contains_key("/v1/providers"));
}
