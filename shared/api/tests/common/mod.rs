//! The in-process world of the API tests: in-memory secrets, no OAuth, a discarding job queue,
//! an engine over an in-memory SQLite store, tokens for workspace `acme`, and requests sent
//! through the router with their JSON answer read back.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use chrono::{DateTime, Duration, Utc};
use hourbridge_api::{Authenticator, RawClaims};
use hourbridge_domain::{Clock, SecretError, SecretStore, SecretValue};
use hourbridge_provider_api::{
    Authorization, ClientCredentials, Endpoints, OAuth2Spec, OAuthFlow, ProviderError,
    ProviderErrorKind, Registry, TokenSet,
};
use hourbridge_store::Store;
use hourbridge_store_sqlite::SqliteBackend;
use hourbridge_sync::{Engine, JobQueue, SyncError, SyncJob, SyncSettings};
use serde_json::Value;
use tower::ServiceExt;

/// The workspace every test world creates.
pub const WS: &str = "acme";

#[derive(Debug, Default)]
pub struct MemorySecrets(pub Mutex<BTreeMap<String, String>>);

#[async_trait]
impl SecretStore for MemorySecrets {
    async fn put(&self, name: &str, value: &SecretValue) -> Result<(), SecretError> {
        self.0
            .lock()
            .unwrap()
            .insert(name.into(), value.expose().into());
        Ok(())
    }
    async fn get(&self, name: &str) -> Result<Option<SecretValue>, SecretError> {
        Ok(self.0.lock().unwrap().get(name).map(SecretValue::new))
    }
    async fn delete(&self, name: &str) -> Result<(), SecretError> {
        self.0.lock().unwrap().remove(name);
        Ok(())
    }
}

pub struct NoOAuth;

#[async_trait]
impl OAuthFlow for NoOAuth {
    fn authorize(
        &self,
        p: &'static str,
        _: &OAuth2Spec,
        _: &Endpoints,
        _: &ClientCredentials,
        _: &str,
    ) -> Result<Authorization, ProviderError> {
        Err(ProviderError::new(p, ProviderErrorKind::Unsupported, "no"))
    }
    async fn exchange_code(
        &self,
        p: &'static str,
        _: &OAuth2Spec,
        _: &Endpoints,
        _: &ClientCredentials,
        _: &str,
        _: Option<&SecretValue>,
        _: DateTime<Utc>,
    ) -> Result<TokenSet, ProviderError> {
        Err(ProviderError::new(p, ProviderErrorKind::Unsupported, "no"))
    }
    async fn refresh(
        &self,
        p: &'static str,
        _: &OAuth2Spec,
        _: &Endpoints,
        _: &ClientCredentials,
        _: &SecretValue,
        _: DateTime<Utc>,
    ) -> Result<TokenSet, ProviderError> {
        Err(ProviderError::new(p, ProviderErrorKind::Unsupported, "no"))
    }
}

pub struct Discard;

#[async_trait]
impl JobQueue for Discard {
    async fn enqueue(&self, _: &SyncJob, _: StdDuration) -> Result<(), SyncError> {
        Ok(())
    }
}

/// A store over a fresh in-memory SQLite database.
pub fn memory_store(clock: Arc<dyn Clock>) -> Store {
    Store::new(
        Arc::new(SqliteBackend::in_memory(clock.clone()).unwrap()),
        clock,
    )
}

/// An engine over `store` with `registry`'s providers, `secrets`, no OAuth and a discarding
/// queue, with default settings.
pub fn engine(
    store: Store,
    registry: Registry,
    secrets: Arc<MemorySecrets>,
    clock: Arc<dyn Clock>,
) -> Engine {
    Engine {
        store,
        secrets,
        providers: Arc::new(registry),
        oauth: Arc::new(NoOAuth),
        queue: Arc::new(Discard),
        events: Arc::new(hourbridge_sync::runs::LogEvents),
        clock,
        settings: SyncSettings::default(),
        sessions: Default::default(),
    }
}

/// The authenticator of the test worlds (HS256, a fixed test key).
pub fn authenticator() -> Authenticator {
    Authenticator::hs256(&SecretValue::new("test-key-test-key-test-key-32byt"))
}

/// A token of `sub` as `role` in workspace [`WS`], valid for an hour.
pub fn issue(auth: &Authenticator, sub: &str, role: &str) -> String {
    let now = Utc::now();
    auth.issue(
        &RawClaims {
            sub: sub.into(),
            ws: WS.into(),
            role: role.into(),
        },
        now,
        now + Duration::hours(1),
    )
    .unwrap()
}

/// A JSON request with `bearer` as its token and `headers` added.
pub fn json_request(
    method: Method,
    path: &str,
    bearer: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> Request<Body> {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {bearer}"))
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(Body::from(body.map(|b| b.to_string()).unwrap_or_default()))
        .unwrap()
}

/// A signed webhook delivery to `provider`'s route with the connection's `token`
/// (`x-delivery` and `x-signature` headers).
pub fn delivery_request(
    provider: &str,
    token: &str,
    delivery: &str,
    body: &str,
    sig: &str,
) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri(format!("/webhooks/{provider}/{token}"))
        .header("content-type", "application/json")
        .header("x-delivery", delivery)
        .header("x-signature", sig)
        .body(Body::from(body.to_owned()))
        .unwrap()
}

/// `req` through `app`: the status and the JSON body (`Null` when there is none).
pub async fn send(app: &axum::Router, req: Request<Body>) -> (StatusCode, Value) {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// The error code of an error answer.
pub fn code(b: &Value) -> &str {
    b["error"]["code"].as_str().unwrap_or_default()
}

/// The test providers' webhook signature: `{secret}:{body length}`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    format!("{secret}:{}", body.len())
}
