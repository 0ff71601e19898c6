//! A provider that syncs daily at a local time: `sync_at` is validated on connect, and the
//! scheduler tick enqueues the connection at that local time in the workspace's zone, across a
//! daylight-saving change (driven by the engine's clock, never by sleeping).

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{Duration, TimeZone, Utc};
use common::{fields, world};
use hourbridge_domain::{Clock as _, RecordId, Role, Workspace};
use hourbridge_provider_api::{
    AccountInfo, AuthKind, CredentialCheckError, CredentialField, Provider, ProviderDescriptor,
    ProviderError, ProviderSession, Schedule,
};
use hourbridge_sync::{FieldProblem, SyncError, SyncSettings};

const FIELDS: &[CredentialField] = &[
    CredentialField {
        name: "token",
        label: "Token",
        secret: true,
        required: true,
    },
    CredentialField {
        name: "sync_at",
        label: "Synchronize at",
        secret: false,
        required: true,
    },
];

struct Daily(ProviderDescriptor);

fn account() -> AccountInfo {
    AccountInfo {
        account_id: "a".into(),
        account_name: "A".into(),
        other_accounts: vec![],
        identity: None,
    }
}

#[async_trait]
impl Provider for Daily {
    fn descriptor(&self) -> &ProviderDescriptor {
        &self.0
    }
    async fn check_credentials(&self, _: &ProviderSession) -> Result<AccountInfo, ProviderError> {
        Ok(account())
    }
    async fn validate_credentials(
        &self,
        _: &ProviderSession,
    ) -> Result<AccountInfo, CredentialCheckError> {
        Ok(account())
    }
}

fn provider() -> Arc<dyn Provider> {
    Arc::new(Daily(ProviderDescriptor {
        id: "daily",
        display_name: "Daily",
        auth: AuthKind::CredentialSet { fields: FIELDS },
        install_role: Role::Owner,
        requires_add_on: false,
        rate_limit: None,
        schedule: Schedule::DailyAtLocalTime,
        capabilities: Default::default(),
    }))
}

async fn oslo_workspace(w: &common::World) {
    w.engine
        .store
        .put(
            "acme",
            &Workspace {
                id: "acme".into(),
                name: "Acme".into(),
                time_zone: "Europe/Oslo".into(),
                owner_id: RecordId::parse("olga").unwrap(),
                created_at: Utc::now(),
                addons: Default::default(),
            },
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn sync_at_must_be_a_quarter_hour() {
    let w = world(vec![provider()], SyncSettings::default());
    oslo_workspace(&w).await;
    let olga = RecordId::parse("olga").unwrap();
    for bad in ["18:31", "7:30", "24:00", "noon"] {
        let err = w
            .engine
            .connect(
                "acme",
                &olga,
                "daily",
                fields(&[("token", "t"), ("sync_at", bad)]),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(
                &err,
                SyncError::InvalidFields { problem: FieldProblem::InvalidSyncAt, fields, .. }
                    if fields == &["sync_at"]
            ),
            "{bad}: {err:?}"
        );
    }
}

#[tokio::test]
async fn the_tick_runs_the_connection_at_its_local_time_across_a_dst_change() {
    let w = world(vec![provider()], SyncSettings::default());
    oslo_workspace(&w).await;
    let olga = RecordId::parse("olga").unwrap();
    // The world's clock starts on 2026-03-02 09:00 UTC, in winter (CET, UTC+1).
    let conn = w
        .engine
        .connect(
            "acme",
            &olga,
            "daily",
            fields(&[("token", "t"), ("sync_at", "18:30")]),
        )
        .await
        .expect("connect");
    let utc = |d: u32, h: u32, m: u32| Utc.with_ymd_and_hms(2026, 3, d, h, m, 0).unwrap();
    assert_eq!(conn.next_run_at, Some(utc(2, 17, 30)));

    let mut runs = Vec::new();
    // Walk the clock to just before each due instant, then just past it, through 2026-03-30;
    // Norway moves to summer time (CEST, UTC+2) on 2026-03-29.
    while runs.len() < 29 {
        let (c, _) = w.engine.connection("acme", "daily").await.unwrap().unwrap();
        let due = c.next_run_at.expect("scheduled");
        let before = due - Duration::minutes(1) - w.clock.now();
        w.clock.advance(before);
        let early = hourbridge_sync::schedule::tick(&w.engine, 100)
            .await
            .unwrap();
        assert_eq!(early.enqueued, 0, "nothing is due a minute before {due}");
        w.clock.advance(Duration::minutes(2));
        let on_time = hourbridge_sync::schedule::tick(&w.engine, 100)
            .await
            .unwrap();
        assert_eq!(on_time.enqueued, 1, "due at {due}");
        runs.push(due);
    }
    assert_eq!(runs[0], utc(2, 17, 30));
    assert_eq!(runs[26], utc(28, 17, 30), "the last winter day: 18:30 CET");
    assert_eq!(
        runs[27],
        utc(29, 16, 30),
        "the first summer day: 18:30 CEST"
    );
    assert_eq!(runs[28], utc(30, 16, 30));
}
