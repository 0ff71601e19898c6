//! Hubstaff API v2 emulation: the account server (OAuth) under `/hubstaff/account` and the API
//! under `/hubstaff/api/v2`.

mod api;
mod seed;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::Seed;
use crate::common::{Common, MicrosTs, RateLimiter, bump, common_control_methods, lock};
use crate::oauth::OAuth;

pub(crate) use api::router;

/// Id of the demo Hubstaff organization.
pub(crate) const ORGANIZATION_ID: u64 = 7001;
/// Demo OAuth client id for Hubstaff.
pub(crate) const DEMO_CLIENT_ID: &str = "demo-hubstaff-client";
/// Demo OAuth client secret for Hubstaff.
pub(crate) const DEMO_CLIENT_SECRET: &str = "demo-hubstaff-secret";

/// Daily-activity ids start above 2^32: Hubstaff ids are int64 even where its schema says int32.
const FIRST_DAILY_ID: u64 = 5_000_000_001;

#[derive(Debug, Clone, Serialize)]
struct User {
    id: u64,
    name: String,
    first_name: String,
    last_name: String,
    /// Optional in Hubstaff's schema: the key is left out, not sent as null.
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    time_zone: &'static str,
    ip_address: &'static str,
    status: &'static str,
    created_at: MicrosTs,
    updated_at: MicrosTs,
}

#[derive(Debug, Clone, Serialize)]
struct Member {
    user_id: u64,
    membership_role: &'static str,
    membership_status: &'static str,
    effective_role: &'static str,
    trackable: &'static str,
    pay_rate: &'static str,
    bill_rate: &'static str,
    currency: &'static str,
    pay_period: &'static str,
    created_at: MicrosTs,
    updated_at: MicrosTs,
    removed_at: Option<MicrosTs>,
    last_client_activity: Option<MicrosTs>,
    metadata: serde_json::Map<String, serde_json::Value>,
    view_only: bool,
}

#[derive(Debug, Clone, Serialize)]
struct Project {
    id: u64,
    name: String,
    description: Option<String>,
    status: String,
    #[serde(rename = "type")]
    kind: &'static str,
    client_id: Option<u64>,
    billable: bool,
    metadata: serde_json::Map<String, serde_json::Value>,
    created_at: MicrosTs,
    updated_at: MicrosTs,
}

/// One (user, project, task, date) total. Only `tracked` is stored; the input counters are
/// derived from it in fixed proportions.
#[derive(Debug, Clone)]
struct Daily {
    id: u64,
    date: NaiveDate,
    user_id: u64,
    project_id: u64,
    task_id: Option<u64>,
    tracked: u32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

type DailyKey = (u64, u64, Option<u64>, NaiveDate);

/// Everything the Hubstaff emulation knows.
#[derive(Debug)]
pub(crate) struct HubstaffState {
    common: Common,
    org_name: String,
    org_created_at: DateTime<Utc>,
    users: BTreeMap<u64, User>,
    /// By user id; a member's page position is its user id.
    members: BTreeMap<u64, Member>,
    projects: BTreeMap<u64, Project>,
    dailies: BTreeMap<u64, Daily>,
    daily_index: HashMap<DailyKey, u64>,
    next_user: u64,
    next_project: u64,
    next_daily: u64,
}

impl HubstaffState {
    fn new(seed: Seed) -> Self {
        let mut s = HubstaffState {
            common: Common::new(
                OAuth::new(Duration::from_secs(24 * 3600), true),
                RateLimiter::new(1000, Duration::from_secs(3600)),
            ),
            org_name: "Acme Hubstaff".into(),
            org_created_at: Utc::now() - chrono::Duration::days(700),
            users: BTreeMap::new(),
            members: BTreeMap::new(),
            projects: BTreeMap::new(),
            dailies: BTreeMap::new(),
            daily_index: HashMap::new(),
            next_user: 1_900_001,
            next_project: 2_650_001,
            next_daily: FIRST_DAILY_ID,
        };
        if seed == Seed::Demo {
            seed::demo(&mut s);
        }
        s
    }

    fn insert_user(&mut self, name: &str, email: Option<&str>, at: DateTime<Utc>) -> u64 {
        let id = self.next_user;
        self.next_user += 1;
        let (first, last) = name.trim().split_once(' ').unwrap_or((name.trim(), ""));
        // The first member owns the organization and is the one who authorizes OAuth apps.
        let owner = self.members.is_empty();
        self.users.insert(
            id,
            User {
                id,
                name: name.to_owned(),
                first_name: first.to_owned(),
                last_name: last.trim().to_owned(),
                email: email.map(str::to_owned),
                time_zone: "Europe/Oslo",
                ip_address: "198.51.100.7",
                status: "active",
                created_at: MicrosTs(at),
                updated_at: MicrosTs(at),
            },
        );
        self.members.insert(
            id,
            Member {
                user_id: id,
                membership_role: if owner { "owner" } else { "user" },
                membership_status: "active",
                effective_role: if owner {
                    "organization_owner"
                } else {
                    "project_user"
                },
                trackable: "true",
                pay_rate: "0.0",
                bill_rate: "0.0",
                currency: "EUR",
                pay_period: "none",
                created_at: MicrosTs(at),
                updated_at: MicrosTs(at),
                removed_at: None,
                last_client_activity: Some(MicrosTs(at)),
                metadata: serde_json::Map::new(),
                view_only: false,
            },
        );
        id
    }

    fn insert_project(&mut self, name: &str, status: &str, at: DateTime<Utc>) -> u64 {
        let id = self.next_project;
        self.next_project += 1;
        self.projects.insert(
            id,
            Project {
                id,
                name: name.to_owned(),
                description: None,
                status: status.to_owned(),
                kind: "project",
                client_id: None,
                billable: true,
                metadata: serde_json::Map::new(),
                created_at: MicrosTs(at),
                updated_at: MicrosTs(at),
            },
        );
        id
    }

    fn remove_member(&mut self, user_id: u64, at: DateTime<Utc>) -> bool {
        let Some(m) = self.members.get_mut(&user_id) else {
            return false;
        };
        m.membership_status = "removed";
        m.effective_role = "unassigned";
        m.trackable = "false";
        m.removed_at = Some(MicrosTs(at));
        m.updated_at = MicrosTs(bump(m.updated_at.0).max(at));
        true
    }

    fn set_daily(&mut self, key: DailyKey, tracked: u32, at: DateTime<Utc>) -> Option<u64> {
        let (user_id, project_id, task_id, date) = key;
        assert!(
            self.users.contains_key(&user_id),
            "sandbox: unknown Hubstaff user {user_id}"
        );
        assert!(
            self.projects.contains_key(&project_id),
            "sandbox: unknown Hubstaff project {project_id}"
        );
        if tracked == 0 {
            if let Some(id) = self.daily_index.remove(&key) {
                self.dailies.remove(&id);
            }
            return None;
        }
        if let Some(row) = self
            .daily_index
            .get(&key)
            .and_then(|id| self.dailies.get_mut(id))
        {
            row.tracked = tracked;
            row.updated_at = bump(row.updated_at).max(at);
            return Some(row.id);
        }
        let id = self.next_daily;
        self.next_daily += 1;
        self.dailies.insert(
            id,
            Daily {
                id,
                date,
                user_id,
                project_id,
                task_id,
                tracked,
                created_at: at,
                updated_at: at,
            },
        );
        self.daily_index.insert(key, id);
        Some(id)
    }

    /// The user who authorized the OAuth app: the owner, else the first member.
    fn me(&self) -> Option<&User> {
        self.members
            .values()
            .find(|m| m.membership_role == "owner")
            .or_else(|| self.members.values().next())
            .and_then(|m| self.users.get(&m.user_id))
    }
}

/// Handle to the Hubstaff emulation's state: add data, move the clock on tokens, queue faults.
/// Cheap to clone; all clones share one state.
#[derive(Clone)]
pub struct HubstaffControl {
    inner: Arc<Mutex<HubstaffState>>,
}

// The state can hold 100,000 entries; printing it all would drown any log.
impl std::fmt::Debug for HubstaffControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubstaffControl").finish_non_exhaustive()
    }
}

impl HubstaffControl {
    pub(crate) fn new(seed: Seed) -> Self {
        HubstaffControl {
            inner: Arc::new(Mutex::new(HubstaffState::new(seed))),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut HubstaffState) -> R) -> R {
        f(&mut lock(&self.inner))
    }

    pub(crate) fn set_origin(&self, origin: &str) {
        self.with(|s| s.common.origin = origin.to_owned());
    }

    common_control_methods!(
        "Hubstaff",
        "24 h",
        "1000 requests per hour per OAuth client id"
    );

    /// Id of the one organization (7001, "Acme Hubstaff").
    pub fn organization_id(&self) -> u64 {
        ORGANIZATION_ID
    }

    /// Adds a user who is an active member of the organization and answers the user id.
    /// `email: None` leaves the `email` key out of the user object. The first user added is
    /// the organization owner who authorizes OAuth apps.
    pub fn add_user(&self, name: &str, email: Option<&str>) -> u64 {
        self.with(|s| s.insert_user(name, email, Utc::now()))
    }

    /// Marks a member removed (`membership_status: "removed"`, `removed_at` set); they are then
    /// listed only with `include_removed=true`. Answers whether the member exists.
    pub fn remove_member(&self, user_id: u64) -> bool {
        self.with(|s| s.remove_member(user_id, Utc::now()))
    }

    /// Adds a project with `status` (`"active"` or `"archived"`) and answers its id.
    pub fn add_project(&self, name: &str, status: &str) -> u64 {
        self.with(|s| s.insert_project(name, status, Utc::now()))
    }

    /// Changes a project's status and bumps its `updated_at`. Answers whether it exists.
    pub fn set_project_status(&self, project_id: u64, status: &str) -> bool {
        self.with(|s| {
            let Some(p) = s.projects.get_mut(&project_id) else {
                return false;
            };
            p.status = status.to_owned();
            p.updated_at = MicrosTs(bump(p.updated_at.0));
            true
        })
    }

    /// Upserts the daily-activity row for (user, project, task, date) with `tracked_seconds`
    /// and answers its id; `0` deletes the row (answering `None`), which is how this sandbox
    /// models a deleted day. Updating bumps `updated_at`.
    ///
    /// # Panics
    /// If the user or project does not exist (a mistake in the test, not in the client).
    pub fn set_daily(
        &self,
        user_id: u64,
        project_id: u64,
        task_id: Option<u64>,
        date: NaiveDate,
        tracked_seconds: u32,
    ) -> Option<u64> {
        self.with(|s| {
            s.set_daily(
                (user_id, project_id, task_id, date),
                tracked_seconds,
                Utc::now(),
            )
        })
    }

    /// Number of daily-activity rows.
    pub fn daily_count(&self) -> usize {
        self.with(|s| s.dailies.len())
    }

    /// Id of the user whose email equals `email` (case-insensitive, trimmed).
    pub fn find_user(&self, email: &str) -> Option<u64> {
        let wanted = email.trim().to_lowercase();
        self.with(|s| {
            s.users
                .values()
                .find(|u| {
                    u.email
                        .as_deref()
                        .is_some_and(|e| e.trim().to_lowercase() == wanted)
                })
                .map(|u| u.id)
        })
    }

    /// Id of the user named `name` (exact match).
    pub fn find_user_by_name(&self, name: &str) -> Option<u64> {
        self.with(|s| s.users.values().find(|u| u.name == name).map(|u| u.id))
    }

    /// Id of the project named `name`.
    pub fn find_project(&self, name: &str) -> Option<u64> {
        self.with(|s| s.projects.values().find(|p| p.name == name).map(|p| p.id))
    }
}
