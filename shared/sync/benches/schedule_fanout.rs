//! Benchmark: a scheduler tick over N scheduled connections of which D are due. The tick reads
//! the schedule index only up to "now", so its time should follow D, not N.
//!
//! `cargo bench -p hourbridge-sync --bench schedule_fanout`

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use hourbridge_domain::{
    Connection, ConnectionState, ManualClock, ProviderId, RecordId, SecretError, SecretStore,
    SecretValue,
};
use hourbridge_provider_api::Unlimited;
use hourbridge_provider_http::{HttpConfig, ProviderEnv};
use hourbridge_store::{GLOBAL_SCOPE, Store};
use hourbridge_store_sqlite::SqliteBackend;
use hourbridge_sync::schedule::{ScheduleEntry, tick};
use hourbridge_sync::{Engine, JobQueue, SyncError, SyncJob, SyncSettings};

#[derive(Debug)]
struct NoSecrets;

#[async_trait]
impl SecretStore for NoSecrets {
    async fn put(&self, _: &str, _: &SecretValue) -> Result<(), SecretError> {
        Ok(())
    }
    async fn get(&self, _: &str) -> Result<Option<SecretValue>, SecretError> {
        Ok(None)
    }
    async fn delete(&self, _: &str) -> Result<(), SecretError> {
        Ok(())
    }
}

struct Count(std::sync::atomic::AtomicUsize);

#[async_trait]
impl JobQueue for Count {
    async fn enqueue(&self, _: &SyncJob, _: Duration) -> Result<(), SyncError> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

async fn run(total: usize, due: usize) -> (Duration, usize) {
    let dir = tempfile::tempdir().expect("tmp");
    let now = Utc::now();
    let clock = Arc::new(ManualClock::new(now));
    let backend =
        Arc::new(SqliteBackend::open(&dir.path().join("s.db"), clock.clone()).expect("sqlite"));
    let store = Store::new(backend, clock.clone());
    let queue = Arc::new(Count(std::sync::atomic::AtomicUsize::new(0)));
    let engine = Engine {
        store: store.clone(),
        secrets: Arc::new(NoSecrets),
        providers: Arc::new(
            hourbridge_provider_registry::builtin(&ProviderEnv {
                lookup: Arc::new(|_| None),
                http: HttpConfig::default(),
                budget: Arc::new(Unlimited),
                cache: Arc::new(hourbridge_provider_api::NoCache),
            })
            .expect("registry"),
        ),
        oauth: Arc::new(hourbridge_provider_http::oauth::HttpOAuth::new("bench").expect("oauth")),
        queue: queue.clone(),
        events: Arc::new(hourbridge_sync::runs::LogEvents),
        clock: clock.clone(),
        settings: SyncSettings::default(),
        sessions: Default::default(),
    };
    // One workspace per connection, as in production; `due` of them are past due, the rest are
    // spread over the next 24 hours.
    let harvest = ProviderId::parse("harvest").unwrap();
    let mut entries = Vec::with_capacity(total);
    for i in 0..total {
        let ws = format!("ws-{i:06}");
        let conn = Connection {
            provider: harvest.clone(),
            state: ConnectionState::Active,
            secret_name: None,
            settings: serde_json::json!({}),
            connected_by: RecordId::parse("p").unwrap(),
            created_at: now,
            updated_at: now,
            next_run_at: None,
            last_run_id: None,
        };
        store.put_batch(&ws, &[(conn, 1)]).await.unwrap();
        let at = if i < due {
            now - chrono::Duration::seconds(1 + i as i64)
        } else {
            now + chrono::Duration::seconds((i as i64 * 86_400) / total as i64 + 1)
        };
        entries.push((
            ScheduleEntry {
                workspace_id: ws,
                provider: "harvest".into(),
                next_run_at: at,
            },
            1,
        ));
    }
    for chunk in entries.chunks(5000) {
        store.put_batch(GLOBAL_SCOPE, chunk).await.unwrap();
    }
    let started = Instant::now();
    let mut enqueued = 0;
    loop {
        let r = tick(&engine, 1000).await.expect("tick");
        enqueued += r.enqueued;
        if r.enqueued == 0 {
            break;
        }
    }
    (started.elapsed(), enqueued)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    println!("schedule_fanout: time of the ticks that enqueue every due connection");
    for (total, due) in [
        (1_000, 100),
        (100_000, 100),
        (1_000, 1_000),
        (100_000, 1_000),
        (100_000, 10_000),
    ] {
        let (took, enqueued) = run(total, due).await;
        assert_eq!(enqueued, due);
        println!(
            "  {total:>7} scheduled, {due:>6} due: {:>8.1} ms ({:.1} µs per due connection)",
            took.as_secs_f64() * 1000.0,
            took.as_secs_f64() * 1e6 / due as f64
        );
    }
}
