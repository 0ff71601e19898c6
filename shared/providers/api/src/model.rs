use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use hourbridge_domain::SecretValue;
use serde::{Deserialize, Serialize};

/// What an adapter gets to talk to one connection: its secret material and settings.
#[derive(Debug, Clone)]
pub struct ProviderSession {
    /// Workspace the connection belongs to.
    pub workspace_id: String,
    /// Credentials or tokens, by field name (`access_token`, `password`, ...).
    pub secrets: BTreeMap<String, SecretValue>,
    /// Non-secret settings. The engine always sets `account_id` (the remote account or
    /// organisation the connection syncs, as chosen after authorization) and `client_id` (the
    /// OAuth client, for per-application budgets); adapters read those names.
    pub settings: serde_json::Value,
}

/// An inclusive range of days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DateWindow {
    /// First day.
    pub from: NaiveDate,
    /// Last day.
    pub to: NaiveDate,
}

/// One page from a provider, with the opaque token for the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemotePage<T> {
    /// Items on this page.
    pub items: Vec<T>,
    /// Token for the next page; `None` on the last.
    pub next: Option<String>,
}

/// A project in the provider, as offered for linking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteProject {
    /// Remote id (string whatever the provider uses).
    pub id: String,
    /// Name.
    pub name: String,
    /// Client/customer name, if any.
    pub customer_name: Option<String>,
    /// Whether it is archived in the provider.
    pub archived: bool,
    /// Parent remote project, for providers with project hierarchies.
    pub parent_id: Option<String>,
}

/// A user of the provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemotePerson {
    /// Remote id.
    pub id: String,
    /// Name.
    pub name: String,
    /// E-mail, when the provider exposes one (some members have none).
    pub email: Option<String>,
}

/// A work log in the provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteWorkLog {
    /// Remote id.
    pub id: String,
    /// Remote project.
    pub project_id: String,
    /// Who.
    pub person: RemotePerson,
    /// Which day (in the provider's notion of the day).
    pub date: NaiveDate,
    /// How long.
    pub minutes: u32,
    /// Free text.
    pub note: String,
    /// Still running (a timer): not synced until stopped.
    pub running: bool,
    /// Last change in the provider, when known.
    pub updated_at: Option<DateTime<Utc>>,
}

/// Host time to be written to a provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundTime {
    /// Remote project (or to-do) it belongs to.
    pub remote_project_id: String,
    /// Remote task, if any.
    pub remote_task_id: Option<String>,
    /// Remote person to register it for.
    pub remote_person_id: String,
    /// Which day.
    pub date: NaiveDate,
    /// How long.
    pub minutes: u32,
    /// Free text.
    pub note: String,
}

/// A change of time seen in a provider that syncs both ways.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeChange {
    /// Created or edited.
    Upserted(RemoteWorkLog),
    /// Deleted.
    Deleted {
        /// Remote id.
        id: String,
    },
}

/// Kinds of master data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MasterEntity {
    /// Customers.
    Customer,
    /// Projects.
    Project,
    /// Tasks.
    Task,
    /// People.
    Person,
}

/// A master-data record from a provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteRecord {
    /// Kind.
    pub entity: MasterEntity,
    /// Remote id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Parent (project of a task, parent project) remote id.
    pub parent_id: Option<String>,
    /// Customer remote id (projects).
    pub customer_id: Option<String>,
    /// Organisation number (customers).
    pub organization_number: Option<String>,
    /// First day (projects).
    pub start_date: Option<NaiveDate>,
    /// Last day (projects).
    pub end_date: Option<NaiveDate>,
    /// Deleted or closed in the provider.
    pub deleted: bool,
}

/// A verified, decoded webhook delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    /// Provider's delivery id, for de-duplication.
    pub delivery_id: String,
    /// Kind of record that changed.
    pub entity: MasterEntity,
    /// Its remote id.
    pub remote_id: String,
    /// Whether it was deleted.
    pub deleted: bool,
}

/// An incoming webhook request, transport-neutral.
#[derive(Debug, Clone)]
pub struct WebhookRequest {
    /// Headers, names lower-cased.
    pub headers: BTreeMap<String, String>,
    /// Raw body.
    pub body: Vec<u8>,
}

/// What a successful credential check learned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountInfo {
    /// Remote account id.
    pub account_id: String,
    /// Remote account name.
    pub account_name: String,
    /// Other accounts the credentials can reach, for the admin to choose from.
    pub other_accounts: Vec<(String, String)>,
}
