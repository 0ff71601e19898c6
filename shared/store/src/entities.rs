use chrono::{DateTime, Utc};
use hourbridge_domain::{
    Assignment, Connection, Customer, HostKind, OutboundMapping, Person, PersonLink, Project,
    ProjectLink, ProviderId, RemoteMapping, SyncRun, Task, WorkLog, Workspace,
    validate::normalize_email,
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::IndexKey;

/// Names of the record kinds, so backends and key-design docs agree on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntityKind(pub &'static str);

/// A domain type the store can hold: its kind, id and the index keys it is found by.
pub trait Entity: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Record kind; part of every key.
    const KIND: EntityKind;
    /// Id within scope and kind.
    fn id(&self) -> String;
    /// First index key, if the kind is listed by one.
    fn index1(&self) -> Option<IndexKey> {
        None
    }
    /// Second index key.
    fn index2(&self) -> Option<IndexKey> {
        None
    }
    /// When the record expires (TTL), if ever.
    fn expires_at(&self) -> Option<DateTime<Utc>> {
        None
    }
}

fn key(partition: impl Into<String>, sort: impl Into<String>) -> Option<IndexKey> {
    Some(IndexKey {
        partition: partition.into(),
        sort: sort.into(),
    })
}

fn opt_date(d: Option<chrono::NaiveDate>) -> String {
    d.map(|d| d.to_string()).unwrap_or_default()
}

impl Entity for Workspace {
    const KIND: EntityKind = EntityKind("workspace");
    fn id(&self) -> String {
        self.id.clone()
    }
}

/// People are found by normalised e-mail (index 1), which is how providers' users are matched.
impl Entity for Person {
    const KIND: EntityKind = EntityKind("person");
    fn id(&self) -> String {
        self.id.to_string()
    }
    fn index1(&self) -> Option<IndexKey> {
        key(normalize_email(&self.email), self.id.as_str())
    }
}

impl Entity for Customer {
    const KIND: EntityKind = EntityKind("customer");
    fn id(&self) -> String {
        self.id.to_string()
    }
}

/// Projects are listed by parent (index 1, `""` for top level) and by customer (index 2).
impl Entity for Project {
    const KIND: EntityKind = EntityKind("project");
    fn id(&self) -> String {
        self.id.to_string()
    }
    fn index1(&self) -> Option<IndexKey> {
        key(
            self.parent_id.as_ref().map(|p| p.as_str()).unwrap_or(""),
            self.id.as_str(),
        )
    }
    fn index2(&self) -> Option<IndexKey> {
        self.customer_id
            .as_ref()
            .and_then(|c| key(c.as_str(), self.id.as_str()))
    }
}

/// Tasks are listed by project (index 1).
impl Entity for Task {
    const KIND: EntityKind = EntityKind("task");
    fn id(&self) -> String {
        self.id.to_string()
    }
    fn index1(&self) -> Option<IndexKey> {
        key(self.project_id.as_str(), self.id.as_str())
    }
}

/// Assignments are listed by project (index 1) and by person (index 2), by start date.
impl Entity for Assignment {
    const KIND: EntityKind = EntityKind("assignment");
    fn id(&self) -> String {
        self.id.to_string()
    }
    fn index1(&self) -> Option<IndexKey> {
        key(self.project_id.as_str(), opt_date(self.start_date))
    }
    fn index2(&self) -> Option<IndexKey> {
        key(self.person_id.as_str(), opt_date(self.start_date))
    }
}

/// Work logs are listed by project (index 1) and by person (index 2), by date, so a date
/// window of one project or person is one range query.
impl Entity for WorkLog {
    const KIND: EntityKind = EntityKind("work_log");
    fn id(&self) -> String {
        self.id.to_string()
    }
    fn index1(&self) -> Option<IndexKey> {
        key(self.project_id.as_str(), self.date.to_string())
    }
    fn index2(&self) -> Option<IndexKey> {
        key(self.person_id.as_str(), self.date.to_string())
    }
}

/// One connection per provider and workspace: the provider id is the record id.
impl Entity for Connection {
    const KIND: EntityKind = EntityKind("connection");
    fn id(&self) -> String {
        self.provider.to_string()
    }
}

/// Project links are keyed `project.provider` and listed by provider (index 1).
impl Entity for ProjectLink {
    const KIND: EntityKind = EntityKind("project_link");
    fn id(&self) -> String {
        format!("{}.{}", self.project_id, self.provider)
    }
    fn index1(&self) -> Option<IndexKey> {
        key(self.provider.as_str(), self.project_id.as_str())
    }
}

/// Person links are keyed `person.provider` and found by remote user (index 1).
impl Entity for PersonLink {
    const KIND: EntityKind = EntityKind("person_link");
    fn id(&self) -> String {
        format!("{}.{}", self.person_id, self.provider)
    }
    fn index1(&self) -> Option<IndexKey> {
        key(
            format!("{}.{}", self.provider, self.remote_person_id),
            self.person_id.as_str(),
        )
    }
}

/// Runs are listed per provider (index 1) by creation time.
impl Entity for SyncRun {
    const KIND: EntityKind = EntityKind("sync_run");
    fn id(&self) -> String {
        self.id.to_string()
    }
    fn index1(&self) -> Option<IndexKey> {
        key(self.provider.as_str(), self.created_at.to_rfc3339())
    }
}

/// Mappings are keyed `provider.entity.remote_id` and found by local id (index 1).
impl Entity for RemoteMapping {
    const KIND: EntityKind = EntityKind("remote_mapping");
    fn id(&self) -> String {
        format!("{}.{}.{}", self.provider, self.entity, self.remote_id)
    }
    fn index1(&self) -> Option<IndexKey> {
        key(
            format!("{}.{}", self.provider, self.entity),
            self.local_id.as_str(),
        )
    }
}

/// The record id of the outbound mapping of `host_id` (of `kind`) to `provider`:
/// `provider.kind.host_id`.
pub fn outbound_mapping_id(provider: &ProviderId, kind: HostKind, host_id: &str) -> String {
    format!("{provider}.{}.{host_id}", kind.as_str())
}

/// Outbound mappings are keyed `provider.host_kind.host_id`; those with a pending push are
/// found by provider, oldest first (index 1, sparse), and those with a remote id by
/// `provider.host_kind.remote_id` (index 2), which is how a remote change finds its host record.
impl Entity for OutboundMapping {
    const KIND: EntityKind = EntityKind("outbound_mapping");
    fn id(&self) -> String {
        outbound_mapping_id(&self.provider, self.host_kind, self.host_id.as_str())
    }
    fn index1(&self) -> Option<IndexKey> {
        self.pending.as_ref().and_then(|p| {
            key(
                format!("{}.pending", self.provider),
                format!(
                    "{}.{}",
                    p.started_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                    self.host_id
                ),
            )
        })
    }
    fn index2(&self) -> Option<IndexKey> {
        self.remote_id.as_ref().and_then(|r| {
            key(
                format!("{}.{}.{r}", self.provider, self.host_kind.as_str()),
                self.host_id.as_str(),
            )
        })
    }
}

/// A pending OAuth authorization: single-use, bound to workspace and caller, expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthState {
    /// The random `state` parameter.
    pub state: String,
    /// Workspace that started the flow.
    pub workspace_id: String,
    /// Person who started it.
    pub person_id: String,
    /// Provider being authorized.
    pub provider: String,
    /// PKCE verifier, where the provider supports PKCE.
    pub pkce_verifier: Option<String>,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
}

impl Entity for OAuthState {
    const KIND: EntityKind = EntityKind("oauth_state");
    fn id(&self) -> String {
        self.state.clone()
    }
    fn expires_at(&self) -> Option<DateTime<Utc>> {
        Some(self.expires_at)
    }
}

/// A seen webhook delivery, kept until `expires_at` so a redelivery is recognised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookDedup {
    /// Provider-given delivery id or a hash of the payload.
    pub key: String,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
}

impl Entity for WebhookDedup {
    const KIND: EntityKind = EntityKind("webhook_dedup");
    fn id(&self) -> String {
        self.key.clone()
    }
    fn expires_at(&self) -> Option<DateTime<Utc>> {
        Some(self.expires_at)
    }
}
