//! An engine over an in-memory SQLite store, a counting in-memory secret store, a fake OAuth
//! flow and a manual clock, with whatever test providers a test registers.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Duration, TimeZone, Utc};
use hourbridge_domain::{Clock, ManualClock, SecretError, SecretStore, SecretValue};
use hourbridge_provider_api::{
    Authorization, ClientCredentials, Endpoints, OAuth2Spec, OAuthFlow, Provider, ProviderError,
    Registry, TokenSet,
};
use hourbridge_store::Store;
use hourbridge_store_sqlite::SqliteBackend;
use hourbridge_sync::runs::LogEvents;
use hourbridge_sync::{Engine, JobQueue, SyncError, SyncJob, SyncSettings};

/// Secrets in memory, counting reads.
#[derive(Debug, Default)]
pub struct CountingSecrets {
    pub values: Mutex<BTreeMap<String, String>>,
    pub reads: AtomicUsize,
}

impl CountingSecrets {
    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }
    pub fn reset(&self) {
        self.reads.store(0, Ordering::SeqCst);
    }
    pub fn names(&self) -> Vec<String> {
        self.values.lock().unwrap().keys().cloned().collect()
    }
    pub fn value(&self, name: &str) -> Option<String> {
        self.values.lock().unwrap().get(name).cloned()
    }
}

#[async_trait]
impl SecretStore for CountingSecrets {
    async fn put(&self, name: &str, value: &SecretValue) -> Result<(), SecretError> {
        self.values
            .lock()
            .unwrap()
            .insert(name.to_owned(), value.expose().to_owned());
        Ok(())
    }
    async fn get(&self, name: &str) -> Result<Option<SecretValue>, SecretError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        Ok(self.values.lock().unwrap().get(name).map(SecretValue::new))
    }
    async fn delete(&self, name: &str) -> Result<(), SecretError> {
        self.values.lock().unwrap().remove(name);
        Ok(())
    }
}

/// Which client an OAuth step used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientUse {
    pub step: &'static str,
    pub client_id: String,
    pub client_secret: String,
}

/// An OAuth flow that answers from memory: the authorization URL carries the state, codes
/// always exchange, every refresh issues `access-{n}` valid for an hour.
#[derive(Debug)]
pub struct FakeOAuth {
    pub clock: Arc<ManualClock>,
    pub uses: Mutex<Vec<ClientUse>>,
    pub refreshes: AtomicUsize,
}

impl FakeOAuth {
    fn record(&self, step: &'static str, client: &ClientCredentials) {
        self.uses.lock().unwrap().push(ClientUse {
            step,
            client_id: client.id.clone(),
            client_secret: client.secret.expose().to_owned(),
        });
    }
    fn tokens(&self, n: usize, now: DateTime<Utc>) -> TokenSet {
        TokenSet {
            access_token: SecretValue::new(format!("access-{n}")),
            refresh_token: Some(SecretValue::new(format!("refresh-{n}"))),
            expires_at: Some(now + Duration::hours(1)),
        }
    }
}

#[async_trait]
impl OAuthFlow for FakeOAuth {
    fn authorize(
        &self,
        _: &'static str,
        _: &OAuth2Spec,
        endpoints: &Endpoints,
        client: &ClientCredentials,
        state: &str,
    ) -> Result<Authorization, ProviderError> {
        self.record("authorize", client);
        Ok(Authorization {
            url: format!(
                "{}?client_id={}&state={state}",
                endpoints.authorize_url, client.id
            ),
            pkce_verifier: None,
        })
    }
    async fn exchange_code(
        &self,
        _: &'static str,
        _: &OAuth2Spec,
        _: &Endpoints,
        client: &ClientCredentials,
        _: &str,
        _: Option<&SecretValue>,
        now: DateTime<Utc>,
    ) -> Result<TokenSet, ProviderError> {
        self.record("exchange", client);
        Ok(self.tokens(0, now))
    }
    async fn refresh(
        &self,
        _: &'static str,
        _: &OAuth2Spec,
        _: &Endpoints,
        client: &ClientCredentials,
        _: &SecretValue,
        now: DateTime<Utc>,
    ) -> Result<TokenSet, ProviderError> {
        self.record("refresh", client);
        let n = self.refreshes.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(self.tokens(n, now))
    }
}

pub struct Discard;

#[async_trait]
impl JobQueue for Discard {
    async fn enqueue(&self, _: &SyncJob, _: std::time::Duration) -> Result<(), SyncError> {
        Ok(())
    }
}

pub struct World {
    pub engine: Engine,
    pub secrets: Arc<CountingSecrets>,
    pub oauth: Arc<FakeOAuth>,
    pub clock: Arc<ManualClock>,
}

pub fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
}

pub fn world(providers: Vec<Arc<dyn Provider>>, settings: SyncSettings) -> World {
    let clock = Arc::new(ManualClock::new(start()));
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let backend = Arc::new(SqliteBackend::in_memory(dyn_clock.clone()).expect("sqlite"));
    let mut registry = Registry::new();
    for p in providers {
        registry.register(p).expect("coherent test provider");
    }
    let secrets = Arc::new(CountingSecrets::default());
    let oauth = Arc::new(FakeOAuth {
        clock: clock.clone(),
        uses: Mutex::new(Vec::new()),
        refreshes: AtomicUsize::new(0),
    });
    let engine = Engine {
        store: Store::new(backend, dyn_clock.clone()),
        secrets: secrets.clone(),
        providers: Arc::new(registry),
        oauth: oauth.clone(),
        queue: Arc::new(Discard),
        events: Arc::new(LogEvents),
        clock: dyn_clock,
        settings,
        sessions: Default::default(),
    };
    World {
        engine,
        secrets,
        oauth,
        clock,
    }
}

/// Connect fields from pairs.
pub fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, SecretValue> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), SecretValue::new(*v)))
        .collect()
}
