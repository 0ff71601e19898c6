//! Host records: what the host product owns (workspaces, people, customers, projects, tasks,
//! assignments, work logs).

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::{DomainError, ProviderId, RecordId};

/// A workspace: one customer of the host product (the tenant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Workspace {
    /// Same as the `ws` claim of its tokens.
    pub id: String,
    /// Display name.
    pub name: String,
    /// IANA time zone used for "synchronize at" local times.
    pub time_zone: String,
    /// The person who bootstrapped the workspace.
    pub owner_id: RecordId,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Enabled add-ons, by provider id: set by the host product's billing backend (a
    /// [`SERVICE_ROLE`] token), never by people. A provider whose descriptor says
    /// `requires_add_on` works only while its id is here.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub addons: BTreeSet<String>,
}

/// The `role` claim of a service token (the host product's billing backend): not a person's
/// role and not ordered with them; it may read what a member may read and manage add-ons,
/// nothing else.
pub const SERVICE_ROLE: &str = "service";

/// Parses an IANA time-zone name such as `Europe/Oslo`.
pub fn parse_time_zone(tz: &str) -> Result<chrono_tz::Tz, DomainError> {
    tz.parse::<chrono_tz::Tz>()
        .map_err(|_| DomainError::new("time_zone", "invalid_time_zone", "is not an IANA time zone"))
}

/// Roles, ordered: an owner may do all an admin may, an admin all a manager may, a manager all
/// a member may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Role {
    /// Any person of the workspace.
    Member,
    /// Manages projects and their integration settings.
    Manager,
    /// Manages people and installs integrations.
    Admin,
    /// Owns the workspace.
    Owner,
}

impl Role {
    /// Parses `owner`, `admin`, `manager` or `member`.
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s {
            "owner" => Ok(Self::Owner),
            "admin" => Ok(Self::Admin),
            "manager" => Ok(Self::Manager),
            "member" => Ok(Self::Member),
            _ => Err(DomainError::new(
                "role",
                "invalid_role",
                "must be one of owner, admin, manager, member",
            )),
        }
    }

    /// The role's name as used in tokens and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Manager => "manager",
            Self::Member => "member",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who owns a record's fields: the host (`local`) or a provider that is its master
/// (e.g. `basecamp`, `tripletex`). Provider-managed records are read-only in the host.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum ManagedBy {
    /// Created and edited in the host.
    #[default]
    Local,
    /// Mirrored from a provider; edits through the host API are refused.
    Provider(ProviderId),
}

impl ManagedBy {
    /// Whether the host may edit the record.
    pub fn is_local(&self) -> bool {
        matches!(self, Self::Local)
    }
}

impl Serialize for ManagedBy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Local => s.serialize_str("local"),
            Self::Provider(p) => s.serialize_str(p.as_str()),
        }
    }
}

impl<'de> Deserialize<'de> for ManagedBy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == "local" {
            Ok(Self::Local)
        } else {
            ProviderId::parse(s)
                .map(Self::Provider)
                .map_err(serde::de::Error::custom)
        }
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for ManagedBy {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "`local`, or the id of the provider that is the record's master",
            ))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for ManagedBy {}

/// A person of a workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Person {
    /// Record id; for the owner, the `sub` of the bootstrap token.
    pub id: RecordId,
    /// Display name.
    pub name: String,
    /// E-mail as entered (trimmed); compared case-insensitively.
    pub email: String,
    /// Role in the workspace.
    pub role: Role,
}

/// A customer (client) of the workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Customer {
    /// Record id.
    pub id: RecordId,
    /// Display name; two customers may share it.
    pub name: String,
    /// Organisation number, which tells same-named customers apart.
    pub organization_number: Option<String>,
    /// Who may edit it.
    #[serde(default)]
    pub managed_by: ManagedBy,
    /// `false` when inactive in the provider it is imported from (kept, not deleted).
    #[serde(default = "yes")]
    pub active: bool,
}

/// A project; at most two levels (a project may have a parent that has none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Project {
    /// Record id.
    pub id: RecordId,
    /// Display name.
    pub name: String,
    /// Parent project (first level) when this is a second-level project.
    pub parent_id: Option<RecordId>,
    /// The customer it is for.
    pub customer_id: Option<RecordId>,
    /// First day.
    pub start_date: Option<NaiveDate>,
    /// Last day.
    pub end_date: Option<NaiveDate>,
    /// Who may edit it.
    #[serde(default)]
    pub managed_by: ManagedBy,
    /// `false` when closed, archived or trashed in the provider it is imported from: nothing
    /// is pushed to it any more, and it is kept (with its work logs) rather than deleted.
    #[serde(default = "yes")]
    pub active: bool,
}

fn yes() -> bool {
    true
}

/// A task of a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Task {
    /// Record id.
    pub id: RecordId,
    /// The project it belongs to.
    pub project_id: RecordId,
    /// Display name.
    pub name: String,
    /// Who may edit it.
    #[serde(default)]
    pub managed_by: ManagedBy,
    /// People assigned to the task (host person ids); a provider with tasks out allocates the
    /// linked ones to the remote task.
    #[serde(default)]
    pub assignee_ids: Vec<RecordId>,
    /// Whether time may still be logged on it; inactive tasks are kept (their logs refer to
    /// them) and pushed out as inactive.
    #[serde(default = "yes")]
    pub active: bool,
}

/// A person assigned to a project for a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Assignment {
    /// Record id.
    pub id: RecordId,
    /// Who.
    pub person_id: RecordId,
    /// On what.
    pub project_id: RecordId,
    /// From (inclusive); open when absent.
    pub start_date: Option<NaiveDate>,
    /// To (inclusive); open when absent.
    pub end_date: Option<NaiveDate>,
    /// Who may edit it: assignments imported from a provider's project members are read-only.
    #[serde(default)]
    pub managed_by: ManagedBy,
}

/// Where a synced work log came from. Synced work logs are read-only in the host.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkLogSource {
    /// The provider it was pulled from.
    pub provider: ProviderId,
    /// Its id in that provider (always a string, whatever the provider uses).
    pub remote_id: String,
}

/// Time a person spent on a project on one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkLog {
    /// Record id.
    pub id: RecordId,
    /// Who worked.
    pub person_id: RecordId,
    /// On which project.
    pub project_id: RecordId,
    /// On which task, if any.
    pub task_id: Option<RecordId>,
    /// Which day.
    pub date: NaiveDate,
    /// How long.
    pub minutes: u32,
    /// Free text.
    pub note: String,
    /// `null` for host-made logs; the provider and remote id for synced ones.
    pub source: Option<WorkLogSource>,
    /// Last change made in the host (API writes set it; what a two-way provider's conflict
    /// rule compares with the remote change time). `null` for logs written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
}

/// Checks that `start..=end` is a real period when both ends are given.
pub fn check_period(start: Option<NaiveDate>, end: Option<NaiveDate>) -> Result<(), DomainError> {
    match (start, end) {
        (Some(s), Some(e)) if e < s => Err(DomainError::new(
            "end_date",
            "invalid_range",
            "end_date must not be before start_date",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_owner_admin_manager_member() {
        assert!(Role::Owner > Role::Admin);
        assert!(Role::Admin > Role::Manager);
        assert!(Role::Manager > Role::Member);
    }

    #[test]
    fn managed_by_round_trips_as_a_string() {
        let m = ManagedBy::Provider(ProviderId::parse("tripletex").unwrap());
        assert_eq!(serde_json::to_string(&m).unwrap(), "\"tripletex\"");
        assert_eq!(
            serde_json::from_str::<ManagedBy>("\"local\"").unwrap(),
            ManagedBy::Local
        );
    }

    #[test]
    fn period_end_before_start_is_rejected() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok();
        assert!(check_period(d("2026-01-02"), d("2026-01-01")).is_err());
        assert!(check_period(d("2026-01-01"), d("2026-01-01")).is_ok());
        assert!(check_period(None, d("2026-01-01")).is_ok());
    }

    #[test]
    fn time_zone_must_be_iana() {
        assert!(parse_time_zone("Europe/Oslo").is_ok());
        assert!(parse_time_zone("Mars/Olympus").is_err());
    }
}
