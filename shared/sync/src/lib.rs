//! The sync engine of Hourbridge.
//!
//! It talks only to ports — the [`Store`](hourbridge_store::Store), the
//! [`SecretStore`](hourbridge_domain::SecretStore), provider traits from the registry, the
//! [`OAuthFlow`](hourbridge_provider_api::OAuthFlow), a [`JobQueue`] and the clock — so the same
//! code runs inside Lambda functions and inside `hourbridge serve`, and tests drive it against
//! SQLite and sandbox providers.
//!
//! - [`connections`]: connect a provider by its auth kind (customer or platform OAuth,
//!   session token, credential set), OAuth authorize and callback, account choice, disconnect;
//!   tokens and sessions renewed single-flight and cached per process.
//! - [`addons`]: the add-on gate of providers that require one (enable, remove, check).
//! - [`budget`]: request budgets shared across processes through the store.
//! - [`kinds`]: the sync kinds a run is made of, chosen from the provider's declared
//!   capabilities, all with one shape (open a pass, step page by page, checkpoint, reconcile);
//!   [`worklogs`] is the work-logs-in kind.
//! - [`runs`]: sync runs, jobs, the worker loop with leases, checkpoints and deadlines.
//! - [`schedule`]: when connections are due and the tick that fans them out.
//! - [`outbound`]: crash-safe mappings for writes to providers (pending mark, idempotency key).
//! - [`webhooks`]: per-connection webhook tokens, verified and deduplicated deliveries, and the
//!   records they name waiting for a refetch.

pub mod addons;
pub mod budget;
pub mod connections;
mod error;
pub mod kinds;
pub mod outbound;
pub mod response_cache;
pub mod runs;
pub mod schedule;
pub mod webhooks;

pub use kinds::work_logs_in as worklogs;

use std::sync::Arc;

use hourbridge_domain::{Clock, SecretStore};
use hourbridge_provider_api::{OAuthFlow, Registry};
use hourbridge_store::Store;

pub use error::{FieldProblem, SyncError};
pub use runs::{JobQueue, RunScope, SyncJob};

/// Settings of the engine, from configuration.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// Public base URL; OAuth redirect URLs are `{public_url}/oauth/{provider}/callback`.
    pub public_url: String,
    /// Where the OAuth callback sends the browser afterwards (`None`: answer 200).
    pub app_url: Option<String>,
    /// How long a worker holds a connection's lease before it must renew it.
    pub lease_ttl: chrono::Duration,
    /// Stop this long before the deadline, checkpoint and re-queue.
    pub deadline_margin: chrono::Duration,
    /// Hourbridge's own OAuth clients, by provider id, for providers whose descriptor says
    /// [`OAuthClient::Platform`](hourbridge_provider_api::OAuthClient::Platform).
    pub platform_clients: std::collections::BTreeMap<String, PlatformClient>,
}

/// Hourbridge's own OAuth client for one provider: the id from configuration and the name of
/// the secret (in the secret store) that holds its client secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformClient {
    /// OAuth client id.
    pub client_id: String,
    /// Name of the secret holding the client secret (the value is the secret itself).
    pub secret_name: String,
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            public_url: "http://127.0.0.1:8080".into(),
            app_url: None,
            lease_ttl: chrono::Duration::minutes(2),
            deadline_margin: chrono::Duration::seconds(20),
            platform_clients: Default::default(),
        }
    }
}

/// Everything the engine needs, built once per process.
#[derive(Clone)]
pub struct Engine {
    /// The store.
    pub store: Store,
    /// Credentials and tokens.
    pub secrets: Arc<dyn SecretStore>,
    /// Providers.
    pub providers: Arc<Registry>,
    /// OAuth flows.
    pub oauth: Arc<dyn OAuthFlow>,
    /// Where jobs go.
    pub queue: Arc<dyn JobQueue>,
    /// Where outbound events (sync succeeded/failed, re-authorization needed) go.
    pub events: Arc<dyn runs::EventSink>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Settings.
    pub settings: SyncSettings,
    /// Provider sessions of this process, so a run reads a connection's secret once
    /// ([`connections::SessionCache`]); start with `Default::default()`.
    pub sessions: connections::SessionCache,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("providers", &self.providers)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}
