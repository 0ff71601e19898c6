//! Set-up the sync benches share: an engine over a given store and providers, with secrets in
//! memory and jobs executed by the bench itself.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hourbridge_domain::Clock;
use hourbridge_provider_api::Registry;
use hourbridge_store::Store;
use hourbridge_sync::{Engine, JobQueue, SyncError, SyncJob, SyncSettings};
use hourbridge_testkit::bench::MemorySecrets;

/// Jobs are executed by the benchmark itself.
struct Discard;

#[async_trait]
impl JobQueue for Discard {
    async fn enqueue(&self, _: &SyncJob, _: Duration) -> Result<(), SyncError> {
        Ok(())
    }
}

/// The engine as the benches run it: `store` and `providers`, secrets in memory, real OAuth
/// client, no job queue, run events logged, default settings.
pub fn engine(store: Store, providers: Registry, clock: Arc<dyn Clock>) -> Engine {
    Engine {
        store,
        secrets: Arc::new(MemorySecrets::default()),
        providers: Arc::new(providers),
        oauth: Arc::new(hourbridge_provider_http::oauth::HttpOAuth::new("bench").expect("oauth")),
        queue: Arc::new(Discard),
        events: Arc::new(hourbridge_sync::runs::LogEvents),
        clock,
        settings: SyncSettings::default(),
        sessions: Default::default(),
    }
}
