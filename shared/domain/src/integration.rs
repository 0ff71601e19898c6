//! Integration records: connections to providers, links between host and remote records,
//! sync runs and remote-id mappings. Secrets are never stored here: a connection holds only the
//! *name* of its secret in the secret store.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::{ProviderId, RecordId};

/// Lifecycle of a workspace's connection to one provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ConnectionState {
    /// Client credentials saved; the OAuth authorization has not completed yet.
    PendingAuthorization,
    /// Credentials configured but not yet validated/activated (credential-set providers).
    PendingActivation,
    /// A session-token provider's token is saved; "Test API" has not passed yet.
    PendingTest,
    /// "Test API" passed; an admin confirms the activation before anything runs.
    Tested,
    /// Authorized, but the login reaches several accounts: one must be chosen
    /// (`POST /v1/connections/{provider}/account`) before anything is imported.
    PendingAccountChoice,
    /// Working.
    Active,
    /// The provider rejected our credentials; an admin must authorize again.
    ReauthRequired,
}

/// A workspace's connection to one provider (at most one per provider).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Connection {
    /// The provider.
    pub provider: ProviderId,
    /// Lifecycle state.
    pub state: ConnectionState,
    /// Name of the secret holding credentials and tokens; never the secret itself.
    pub secret_name: Option<String>,
    /// Non-secret, provider-specific settings (account id, "synchronize at", ...).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub settings: serde_json::Value,
    /// The person who connected it.
    pub connected_by: RecordId,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// When the scheduler should run it next.
    pub next_run_at: Option<DateTime<Utc>>,
    /// The most recent run, for status display.
    pub last_run_id: Option<RecordId>,
}

/// A host project linked to records of one provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProjectLink {
    /// The host project.
    pub project_id: RecordId,
    /// The provider.
    pub provider: ProviderId,
    /// Remote project ids, as strings.
    pub remote_project_ids: Vec<String>,
    /// Pull records from this day on.
    pub sync_from: Option<NaiveDate>,
    /// Only people already assigned to the project get their logs synced.
    pub prevent_new_assignments: bool,
    /// Created assignments span the person's first to last synced log.
    pub trim_assignments: bool,
    /// The most recent run for this link.
    pub last_run_id: Option<RecordId>,
    /// Provider users whose logs could not be matched to a host person by e-mail.
    #[serde(default)]
    pub missing_people: Vec<MissingPerson>,
}

/// A provider user with work logs but no host person of the same e-mail: "add them as
/// Manager or Employee with this email" and their logs sync on the next run.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MissingPerson {
    /// Name in the provider.
    pub name: String,
    /// E-mail in the provider; `null` when the provider has none for this user.
    pub email: Option<String>,
}

/// A host person linked to a user of one provider (set by hand or suggested by e-mail).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PersonLink {
    /// The host person.
    pub person_id: RecordId,
    /// The provider.
    pub provider: ProviderId,
    /// The user's id in the provider.
    pub remote_person_id: String,
}

/// State of a sync run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum RunState {
    /// Waiting for a worker.
    Queued,
    /// A worker holds it.
    Running,
    /// Finished without a run-level error (record problems may still be listed).
    Succeeded,
    /// Stopped by a run-level error.
    Failed,
}

/// What a run did, per outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunCounts {
    /// Records created in the target.
    pub created: u64,
    /// Records changed in the target.
    pub updated: u64,
    /// Records deleted in the target.
    pub deleted: u64,
    /// Records seen that needed no write.
    pub unchanged: u64,
    /// Records not synced (see problems).
    pub skipped: u64,
}

/// Why a run failed, typed so the UI can offer the right action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum FailureReason {
    /// The provider rejected the credentials: authorize again.
    ReauthRequired,
    /// The credentials lack a permission.
    Forbidden,
    /// The provider account is cancelled or expired: connect an active account. Not retried.
    AccountInactive,
    /// The provider kept failing or limiting us; the run will be retried.
    ProviderUnavailable,
    /// The provider answered something we could not read.
    InvalidResponse,
    /// Our configuration is wrong (e.g. a linked remote project no longer exists).
    Configuration,
    /// The workspace does not have the provider's add-on (it was removed): nothing syncs
    /// until the host product's billing backend enables it again.
    AddonNotEnabled,
    /// Anything else.
    Internal,
}

/// A problem with one record that did not stop the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecordProblem {
    /// Remote or host id of the record.
    pub record: String,
    /// Machine-readable code, e.g. `person_not_found`.
    pub code: String,
    /// Explanation fit for an end user.
    pub message: String,
}

/// One execution of a sync for a connection (optionally scoped to one project link).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SyncRun {
    /// Run id.
    pub id: RecordId,
    /// The connection's provider.
    pub provider: ProviderId,
    /// The project link it is limited to, if any.
    pub project_id: Option<RecordId>,
    /// State.
    pub state: RunState,
    /// Counts so far: work logs pulled or pushed.
    pub counts: RunCounts,
    /// Master data imported so far (projects, tasks, assignments), for providers that are
    /// the master of those records.
    #[serde(default)]
    pub imported: RunCounts,
    /// Host tasks pushed to the provider (tasks out), counted apart from the work logs.
    #[serde(default)]
    pub tasks_pushed: RunCounts,
    /// Per-record problems.
    pub problems: Vec<RecordProblem>,
    /// Run-level failure.
    pub failure: Option<FailureReason>,
    /// Message for the run-level failure.
    pub failure_message: Option<String>,
    /// Queued at.
    pub created_at: DateTime<Utc>,
    /// Started at.
    pub started_at: Option<DateTime<Utc>>,
    /// Finished at.
    pub finished_at: Option<DateTime<Utc>>,
    /// Where a resumed run continues (opaque to everyone but the sync engine).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub checkpoint: Option<serde_json::Value>,
}

/// Maps a remote record to the host record made from it, with a fingerprint of the remote
/// content so an unchanged record costs no write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteMapping {
    /// The provider.
    pub provider: ProviderId,
    /// Kind of record (`work_log`, `project`, ...).
    pub entity: String,
    /// Id in the provider.
    pub remote_id: String,
    /// Id in the host.
    pub local_id: RecordId,
    /// Hash of the remote content last applied.
    pub fingerprint: String,
}
