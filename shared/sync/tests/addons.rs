//! The add-on gate, through a test provider that requires one (not shipped): nothing of it
//! works without the add-on, removing it stops the schedule and fails the status as
//! `addon_not_enabled` without deleting anything, enabling it again re-schedules.

mod common;

use std::sync::Arc;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use chrono::{Duration, Utc};
use common::{fields, world};
use hourbridge_domain::{
    ConnectionState, FailureReason, RecordId, Role, RunState, SyncRun, Workspace,
};
use hourbridge_provider_api::{
    AccountInfo, AuthKind, CredentialField, Provider, ProviderDescriptor, ProviderError,
    ProviderSession, Schedule,
};
use hourbridge_store::GLOBAL_SCOPE;
use hourbridge_sync::runs::{Outcome, RunMode};
use hourbridge_sync::schedule::ScheduleEntry;
use hourbridge_sync::{Engine, RunScope, SyncError, SyncJob, SyncSettings};

const FIELDS: &[CredentialField] = &[CredentialField {
    name: "token",
    label: "API token",
    secret: true,
    required: true,
}];

struct Gated(ProviderDescriptor);

#[async_trait]
impl Provider for Gated {
    fn descriptor(&self) -> &ProviderDescriptor {
        &self.0
    }
    async fn check_credentials(&self, _: &ProviderSession) -> Result<AccountInfo, ProviderError> {
        Ok(AccountInfo {
            account_id: "1".into(),
            account_name: "Acme AS".into(),
            other_accounts: vec![],
            identity: None,
        })
    }
}

fn provider(id: &'static str, display_name: &'static str, requires_add_on: bool) -> Arc<Gated> {
    Arc::new(Gated(ProviderDescriptor {
        id,
        display_name,
        auth: AuthKind::CredentialSet { fields: FIELDS },
        install_role: Role::Admin,
        requires_add_on,
        rate_limit: None,
        schedule: Schedule::Every(StdDuration::from_secs(3600)),
        capabilities: Default::default(),
    }))
}

async fn setup() -> common::World {
    let w = world(
        vec![
            provider("gated", "Gated", true),
            provider("plain", "Plain", false),
        ],
        SyncSettings::default(),
    );
    w.engine
        .store
        .insert(
            "acme",
            &Workspace {
                id: "acme".into(),
                name: "Acme".into(),
                time_zone: "UTC".into(),
                owner_id: RecordId::parse("olga").unwrap(),
                created_at: Utc::now(),
                addons: Default::default(),
            },
        )
        .await
        .unwrap();
    w
}

fn olga() -> RecordId {
    RecordId::parse("olga").unwrap()
}

async fn scheduled(e: &Engine) -> bool {
    e.store
        .get::<ScheduleEntry>(GLOBAL_SCOPE, "acme.gated")
        .await
        .unwrap()
        .is_some()
}

async fn last_run(e: &Engine) -> SyncRun {
    let (c, _) = e.connection("acme", "gated").await.unwrap().unwrap();
    e.run("acme", c.last_run_id.unwrap().as_str())
        .await
        .unwrap()
        .unwrap()
}

fn is_addon_error(e: &SyncError) -> bool {
    matches!(e, SyncError::AddonNotEnabled { provider, .. } if provider == "gated")
}

#[tokio::test]
async fn without_the_add_on_nothing_of_the_provider_works_and_others_are_untouched() {
    let w = setup().await;
    let e = &w.engine;
    let err = e
        .connect("acme", &olga(), "gated", fields(&[("token", "t")]))
        .await
        .unwrap_err();
    assert!(is_addon_error(&err), "{err:?}");
    assert!(
        err.to_string()
            .contains("the Gated add-on is not enabled for this workspace"),
        "{err}"
    );
    assert_eq!(err.reason(), FailureReason::AddonNotEnabled);
    assert!(e.connection("acme", "gated").await.unwrap().is_none());
    assert!(w.secrets.names().is_empty(), "nothing stored");
    let err = e
        .start_run("acme", "gated", RunScope::Connection, RunMode::Refetch)
        .await
        .unwrap_err();
    assert!(is_addon_error(&err), "{err:?}");
    let err = e.select_account("acme", "gated", "1").await.unwrap_err();
    assert!(is_addon_error(&err), "{err:?}");
    // A provider without requires_add_on needs none.
    e.connect("acme", &olga(), "plain", fields(&[("token", "t")]))
        .await
        .unwrap();
    e.require_addon("acme", "plain").await.unwrap();
    // Add-ons are providers that require one.
    assert!(matches!(
        e.enable_addon("acme", "plain").await,
        Err(SyncError::UnknownAddon(_))
    ));
    assert!(matches!(
        e.enable_addon("acme", "nope").await,
        Err(SyncError::UnknownAddon(_))
    ));
    assert!(e.is_addon("gated"));
}

#[tokio::test]
async fn removing_the_add_on_stops_the_schedule_and_fails_the_status_keeping_everything() {
    let w = setup().await;
    let e = &w.engine;
    let ws = e.enable_addon("acme", "gated").await.unwrap();
    assert!(ws.addons.contains("gated"));
    // Idempotent.
    e.enable_addon("acme", "gated").await.unwrap();
    let conn = e
        .connect("acme", &olga(), "gated", fields(&[("token", "t")]))
        .await
        .unwrap();
    assert_eq!(conn.state, ConnectionState::Active);
    assert!(scheduled(e).await);
    let queued = e
        .start_run("acme", "gated", RunScope::Connection, RunMode::Refetch)
        .await
        .unwrap();
    let secrets_before = w.secrets.names();
    assert!(!secrets_before.is_empty());

    let ws = e.remove_addon("acme", "gated").await.unwrap();
    assert!(ws.addons.is_empty());
    assert!(!scheduled(e).await, "off the schedule");
    let (conn, _) = e
        .connection("acme", "gated")
        .await
        .unwrap()
        .expect("the connection stays");
    assert_eq!(conn.state, ConnectionState::Active);
    assert_eq!(conn.next_run_at, None);
    let failed = last_run(e).await;
    assert_eq!(failed.state, RunState::Failed);
    assert_eq!(failed.failure, Some(FailureReason::AddonNotEnabled));
    assert!(
        failed
            .failure_message
            .as_deref()
            .unwrap()
            .contains("billing settings")
    );
    assert_eq!(w.secrets.names(), secrets_before, "credentials kept");
    // Removing it again records nothing more.
    e.remove_addon("acme", "gated").await.unwrap();
    assert_eq!(last_run(e).await.id, failed.id);

    // A run queued before the removal fails as addon_not_enabled when a worker picks it up.
    let job = SyncJob {
        workspace_id: "acme".into(),
        provider: "gated".into(),
        run_id: queued.id.to_string(),
    };
    let outcome = e.execute(&job, None).await.unwrap();
    assert!(matches!(outcome, Outcome::Finished(RunState::Failed)));
    let run = e.run("acme", queued.id.as_str()).await.unwrap().unwrap();
    assert_eq!(run.failure, Some(FailureReason::AddonNotEnabled));

    // A schedule entry left behind (e.g. a crash mid-removal) is not run by the tick: it
    // leaves the schedule.
    hourbridge_sync::schedule::schedule(e, "acme", "gated")
        .await
        .unwrap();
    w.clock.advance(Duration::hours(2));
    let report = hourbridge_sync::schedule::tick(e, 100).await.unwrap();
    assert_eq!(report.enqueued, 0);
    assert!(!scheduled(e).await);

    // Enabling it again puts the active connection back on its schedule.
    e.enable_addon("acme", "gated").await.unwrap();
    assert!(scheduled(e).await);
    let (conn, _) = e.connection("acme", "gated").await.unwrap().unwrap();
    assert!(conn.next_run_at.is_some());
    e.start_run("acme", "gated", RunScope::Connection, RunMode::Refetch)
        .await
        .unwrap();
}
