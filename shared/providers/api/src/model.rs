use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use hourbridge_domain::SecretValue;

use crate::ProviderError;
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
    /// Deleted in the provider: only providers that declare a deletion feed
    /// (`WorkLogsIn::deletion_feed`) list deleted entries; the others are reconciled.
    #[serde(default)]
    pub deleted: bool,
    /// Remote task, for providers that register time on tasks (TimeLog): the same id the
    /// provider's [`TaskSink`](crate::TaskSink) returned for the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
}

/// A user of the provider, as offered for linking to a host person
/// ([`Directory::list_users`](crate::Directory::list_users)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteUser {
    /// Remote id (what [`OutboundTime::remote_person_id`] and change feeds carry).
    pub id: String,
    /// Short handle some providers show and key writes by (TimeLog initials), if any.
    pub initials: Option<String>,
    /// Name.
    pub name: String,
    /// E-mail as the provider stores it (compare trimmed and case-insensitively).
    pub email: Option<String>,
    /// Whether the user is active (terminated employees are listed, marked inactive).
    pub active: bool,
}

/// A host task to be written to a provider ([`TaskSink`](crate::TaskSink)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundTask {
    /// Remote project it belongs to.
    pub remote_project_id: String,
    /// Name.
    pub name: String,
    /// Active; an inactive (or deleted) host task is set inactive remotely, never deleted.
    pub active: bool,
}

/// The span of change time a [`TimeChangeFeed`](crate::TimeChangeFeed) read covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeWindow {
    /// Changes made at or after this instant.
    pub since: DateTime<Utc>,
    /// Changes made before this instant.
    pub until: DateTime<Utc>,
}

/// Host time to be written to a provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundTime {
    /// Remote project (or to-do) it belongs to.
    pub remote_project_id: String,
    /// Remote task, if any.
    pub remote_task_id: Option<String>,
    /// Remote person to register it for; empty when no remote person matches (the provider
    /// then registers it under the connecting user, and the run reports the person).
    pub remote_person_id: String,
    /// Which day.
    pub date: NaiveDate,
    /// How long.
    pub minutes: u32,
    /// Free text.
    pub note: String,
}

/// A change of time seen in a provider that syncs both ways, in the order the provider made
/// them (a record may appear several times in one read; the last one is its state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeChange {
    /// Created or edited: the record as it is after the change; `updated_at` is when the
    /// change was made (what the conflict rule compares).
    Upserted(RemoteWorkLog),
    /// Deleted.
    Deleted {
        /// Remote id.
        id: String,
        /// When it was deleted, when the provider says.
        at: Option<DateTime<Utc>>,
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
    /// E-mail (people), as the provider stores it; compared trimmed and case-insensitively.
    #[serde(default)]
    pub email: Option<String>,
    /// Inactive or closed in the provider but still there (a Tripletex customer with
    /// `isInactive`, a project with `isClosed`): the host shows it inactive. Adapters that set
    /// it also set `deleted`, which the engine reads as "deactivate"; `inactive` alone tells
    /// such a record apart from one that is gone.
    #[serde(default)]
    pub inactive: bool,
    /// The provider's revision of the record (Tripletex `version`), when it has one: a webhook
    /// may skip versions, so a lower one than already applied is stale.
    #[serde(default)]
    pub version: Option<u64>,
    /// The provider's human-facing number (Tripletex project `number`, customer
    /// `customerNumber`), for matching and display.
    #[serde(default)]
    pub number: Option<String>,
}

/// One record a webhook says changed: what a later sync should refetch (or, when `deleted`,
/// remove) instead of refetching the whole connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WebhookEvent {
    /// Kind of record that changed.
    pub entity: MasterEntity,
    /// Its remote id.
    pub remote_id: String,
    /// Whether it was deleted.
    pub deleted: bool,
    /// The record's parent in the provider (a to-do's project), when the delivery names it:
    /// some providers can only fetch a record through its parent.
    #[serde(default)]
    pub parent_id: Option<String>,
}

/// Where a connection's webhooks are delivered, for providers that subscribe through their API
/// ([`WebhookReceiver::subscribe`](crate::WebhookReceiver::subscribe)).
#[derive(Debug, Clone)]
pub struct WebhookEndpoint {
    /// `HOURBRIDGE_PUBLIC_URL/webhooks/{provider}/{token}`; the token is unguessable.
    pub url: String,
    /// The per-connection signing secret, for providers that verify with
    /// [`WebhookVerification::HmacSignature`](crate::WebhookVerification::HmacSignature).
    pub signing_secret: Option<SecretValue>,
}

/// An expiring session created from long-lived credentials
/// ([`Provider::create_session`](crate::Provider::create_session)).
#[derive(Debug, Clone)]
pub struct SessionGrant {
    /// The session token; calls get it as the [`SESSION_TOKEN`] secret.
    pub token: SecretValue,
    /// When it stops working; the engine renews it shortly before.
    pub expires_at: DateTime<Utc>,
}

/// Name of the OAuth access token in [`ProviderSession::secrets`].
pub const ACCESS_TOKEN: &str = "access_token";
/// Name of a session-token provider's current session in [`ProviderSession::secrets`].
pub const SESSION_TOKEN: &str = "session_token";

/// Why credentials entered on connect were not accepted
/// ([`Provider::validate_credentials`](crate::Provider::validate_credentials)).
#[derive(Debug, Clone)]
pub enum CredentialCheckError {
    /// The provider rejected them; `fields` names the fields at fault (every secret field when
    /// the provider cannot tell which).
    Invalid {
        /// Connect fields at fault.
        fields: Vec<String>,
        /// Explanation fit for the admin; never contains a secret.
        message: String,
    },
    /// The provider could not be reached (down, timing out, rate limiting); nothing is wrong
    /// with the credentials as far as we know.
    Unreachable {
        /// Explanation fit for the admin.
        message: String,
    },
    /// The credentials work but lack a permission, package or add-on the integration needs.
    MissingEntitlement {
        /// Explanation fit for the admin (what is missing).
        message: String,
    },
    /// The address part of the credentials (a site's domain) names no reachable site: no such
    /// host, or a host that is not the provider. `fields` names the address fields.
    UnreachableDomain {
        /// Connect fields at fault.
        fields: Vec<String>,
        /// Explanation fit for the admin.
        message: String,
    },
    /// Anything else (unreadable answer, a bug).
    Other(ProviderError),
}

impl CredentialCheckError {
    /// Classifies a provider failure seen while checking credentials: rejected credentials
    /// blame `secret_fields`, a missing permission is a missing entitlement, transient failures
    /// and rate limits are "unreachable".
    pub fn from_provider(e: ProviderError, secret_fields: &[&str]) -> Self {
        use crate::ProviderErrorKind as K;
        match e.kind {
            K::ReauthRequired => Self::Invalid {
                fields: secret_fields.iter().map(|f| (*f).to_owned()).collect(),
                message: format!("{} rejected these credentials", e.provider),
            },
            K::Forbidden => Self::MissingEntitlement { message: e.message },
            K::Transient | K::RateLimited => Self::Unreachable {
                message: format!("{} could not be reached; try again shortly", e.provider),
            },
            _ => Self::Other(e),
        }
    }
}

impl std::fmt::Display for CredentialCheckError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Invalid { message, .. }
            | Self::Unreachable { message }
            | Self::MissingEntitlement { message }
            | Self::UnreachableDomain { message, .. } => f.write_str(message),
            Self::Other(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for CredentialCheckError {}

/// What a provider's webhook handler made of a verified delivery
/// ([`WebhookReceiver::handle`](crate::WebhookReceiver::handle)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookDelivery {
    /// The records to refetch or remove.
    pub events: Vec<WebhookEvent>,
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
    /// Who the credentials act as (remote user id and name), when the provider says: what
    /// "Test API" shows next to the account.
    #[serde(default)]
    pub identity: Option<(String, String)>,
}
