use async_trait::async_trait;

use crate::{
    AccountInfo, DateWindow, MasterEntity, OutboundTime, ProviderDescriptor, ProviderError,
    ProviderSession, RemotePage, RemotePerson, RemoteProject, RemoteRecord, RemoteWorkLog,
    TimeChange, WebhookEvent, WebhookRequest,
};
use hourbridge_domain::SecretValue;

/// A provider adapter. Offers one trait object per declared capability.
#[async_trait]
pub trait Provider: Send + Sync {
    /// The provider's descriptor.
    fn descriptor(&self) -> &ProviderDescriptor;

    /// Checks the connection's credentials and says which account they reach.
    async fn check_credentials(
        &self,
        session: &ProviderSession,
    ) -> Result<AccountInfo, ProviderError>;

    /// The OAuth endpoints actually in use (`authorize`, `token`): the descriptor's, or the
    /// configured overrides that point at a sandbox. `None` for providers without OAuth.
    fn oauth_urls(&self) -> Option<(String, String)> {
        None
    }

    /// Work logs in (capability `work_logs_in`).
    fn work_logs(&self) -> Option<&dyn WorkLogSource> {
        None
    }
    /// Time out (capabilities `time_out`, `time_two_way`).
    fn time_sink(&self) -> Option<&dyn TimeSink> {
        None
    }
    /// Remote time changes (capability `time_two_way`).
    fn time_changes(&self) -> Option<&dyn TimeChangeFeed> {
        None
    }
    /// Master data in (capability `master_data_in`).
    fn master_data(&self) -> Option<&dyn MasterDataSource> {
        None
    }
    /// Tasks out (capability `tasks_out`).
    fn task_sink(&self) -> Option<&dyn TaskSink> {
        None
    }
    /// Webhooks (capability `webhooks`).
    fn webhooks(&self) -> Option<&dyn WebhookReceiver> {
        None
    }
}

/// Pulls work logs page by page; every call is one provider request, so the caller can
/// checkpoint after each.
#[async_trait]
pub trait WorkLogSource: Send + Sync {
    /// Remote projects matching `query`, for the link picker.
    async fn list_projects(
        &self,
        session: &ProviderSession,
        query: Option<&str>,
        page: Option<String>,
    ) -> Result<RemotePage<RemoteProject>, ProviderError>;

    /// Remote people, for matching by e-mail.
    async fn list_people(
        &self,
        session: &ProviderSession,
        page: Option<String>,
    ) -> Result<RemotePage<RemotePerson>, ProviderError>;

    /// Work logs of `project_id` in `window`.
    async fn list_work_logs(
        &self,
        session: &ProviderSession,
        project_id: &str,
        window: DateWindow,
        page: Option<String>,
    ) -> Result<RemotePage<RemoteWorkLog>, ProviderError>;
}

/// Writes host time to the provider. Every create carries an idempotency key derived from the
/// host record, so a retry after a crash finds the earlier write instead of duplicating it.
#[async_trait]
pub trait TimeSink: Send + Sync {
    /// Creates an entry; returns its remote id.
    async fn create(
        &self,
        session: &ProviderSession,
        time: &OutboundTime,
        idempotency_key: &str,
    ) -> Result<String, ProviderError>;
    /// Replaces an entry.
    async fn update(
        &self,
        session: &ProviderSession,
        remote_id: &str,
        time: &OutboundTime,
    ) -> Result<(), ProviderError>;
    /// Deletes an entry; a missing entry is not an error.
    async fn delete(&self, session: &ProviderSession, remote_id: &str)
    -> Result<(), ProviderError>;
}

/// Reads time changes since a provider cursor (two-way providers).
#[async_trait]
pub trait TimeChangeFeed: Send + Sync {
    /// Changes after `cursor` (`None`: from the beginning of the link).
    async fn changes_since(
        &self,
        session: &ProviderSession,
        cursor: Option<String>,
    ) -> Result<RemotePage<TimeChange>, ProviderError>;
}

/// Pulls master data.
#[async_trait]
pub trait MasterDataSource: Send + Sync {
    /// Records of `entity`, changed since `since` when the provider supports it.
    async fn list(
        &self,
        session: &ProviderSession,
        entity: MasterEntity,
        since: Option<chrono::DateTime<chrono::Utc>>,
        page: Option<String>,
    ) -> Result<RemotePage<RemoteRecord>, ProviderError>;
}

/// Pushes host tasks.
#[async_trait]
pub trait TaskSink: Send + Sync {
    /// Creates or updates a task under `remote_project_id`; returns its remote id.
    async fn upsert_task(
        &self,
        session: &ProviderSession,
        remote_project_id: &str,
        remote_task_id: Option<&str>,
        name: &str,
    ) -> Result<String, ProviderError>;
    /// Allocates a remote user to a remote task.
    async fn allocate(
        &self,
        session: &ProviderSession,
        remote_task_id: &str,
        remote_person_id: &str,
    ) -> Result<(), ProviderError>;
}

/// Verifies and decodes webhook deliveries.
pub trait WebhookReceiver: Send + Sync {
    /// Checks the delivery's authenticity with the connection's webhook secret.
    fn verify(&self, request: &WebhookRequest, secret: &SecretValue) -> Result<(), ProviderError>;
    /// Decodes a verified delivery.
    fn decode(&self, request: &WebhookRequest) -> Result<Vec<WebhookEvent>, ProviderError>;
}

/// Checks that a provider offers exactly the traits its descriptor declares, and that the
/// descriptor is coherent. The registry's tests run it on every provider.
pub fn check_provider(p: &dyn Provider) -> Result<(), String> {
    let d = p.descriptor();
    let c = &d.capabilities;
    let mut problems = Vec::new();
    let mut expect = |declared: bool, offered: bool, what: &str| {
        if declared != offered {
            problems.push(format!(
                "{what}: declared {declared} but trait object {}",
                if offered { "offered" } else { "missing" }
            ));
        }
    };
    expect(
        c.work_logs_in.is_some(),
        p.work_logs().is_some(),
        "work_logs_in",
    );
    expect(
        c.time_out || c.time_two_way,
        p.time_sink().is_some(),
        "time_out/time_two_way",
    );
    expect(c.time_two_way, p.time_changes().is_some(), "time_two_way");
    expect(
        c.master_data_in.is_some(),
        p.master_data().is_some(),
        "master_data_in",
    );
    expect(c.tasks_out, p.task_sink().is_some(), "tasks_out");
    expect(c.webhooks.is_some(), p.webhooks().is_some(), "webhooks");
    if hourbridge_domain::ProviderId::parse(d.id).is_err() {
        problems.push(format!("id {:?} is not a valid provider id", d.id));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}: {}", d.id, problems.join("; ")))
    }
}

/// A request budget shared by everything that uses the same provider token, account or
/// application, across processes. The sync engine implements it over the store; adapters call
/// [`RateBudget::acquire`] before every request.
#[async_trait]
pub trait RateBudget: Send + Sync {
    /// Waits until one more request under `key` fits `limit`. Fails with
    /// [`ProviderErrorKind::RateLimited`](crate::ProviderErrorKind::RateLimited) and a
    /// `retry_after` when the wait would be longer than the caller should block.
    async fn acquire(&self, key: &str, limit: &crate::RateLimit) -> Result<(), ProviderError>;
}

/// A budget that never waits, for tests and tools that talk to sandboxes.
#[derive(Debug, Default, Clone, Copy)]
pub struct Unlimited;

#[async_trait]
impl RateBudget for Unlimited {
    async fn acquire(&self, _: &str, _: &crate::RateLimit) -> Result<(), ProviderError> {
        Ok(())
    }
}
