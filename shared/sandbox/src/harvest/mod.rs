//! Harvest API v2 emulation: Harvest ID (OAuth, accounts) under `/harvest/id` and the data API
//! under `/harvest/api/v2`.

mod api;
mod seed;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::Seed;
use crate::common::{
    Common, RateLimiter, SecondsTs, bump, common_control_methods, lock, random_string,
};
use crate::oauth::OAuth;

pub(crate) use api::router;

/// Id of the demo Harvest account.
pub(crate) const DEMO_ACCOUNT_ID: u64 = 1_000_001;
/// Demo OAuth client id for Harvest.
pub(crate) const DEMO_CLIENT_ID: &str = "demo-harvest-client";
/// Demo OAuth client secret for Harvest.
pub(crate) const DEMO_CLIENT_SECRET: &str = "demo-harvest-secret";

/// Time-entry ids start above 2^32 so a client that truncates ids to 32 bits fails loudly.
const FIRST_ENTRY_ID: u64 = 2_400_000_000_000;

/// A time entry to create through [`HarvestControl::add_time_entry`].
#[derive(Debug, Clone, PartialEq)]
pub struct NewHarvestEntry {
    /// Project the time is on (from [`HarvestControl::add_project`]).
    pub project_id: u64,
    /// Who logged it (from [`HarvestControl::add_user`]).
    pub user_id: u64,
    /// The day the work belongs to.
    pub spent_date: NaiveDate,
    /// Decimal hours (`hours` and `hours_without_timer`).
    pub hours: f64,
    /// Notes; `None` is sent as `null`.
    pub notes: Option<String>,
    /// Whether the entry is a running timer (`is_running`, `timer_started_at` set).
    pub is_running: bool,
}

#[derive(Debug, Clone, Serialize)]
struct User {
    id: u64,
    first_name: String,
    last_name: String,
    email: String,
    telephone: &'static str,
    timezone: &'static str,
    weekly_capacity: u32,
    has_access_to_all_future_projects: bool,
    is_contractor: bool,
    is_active: bool,
    roles: Vec<&'static str>,
    access_roles: Vec<&'static str>,
    avatar_url: &'static str,
    default_hourly_rate: Option<f64>,
    cost_rate: Option<f64>,
    created_at: SecondsTs,
    updated_at: SecondsTs,
    /// "First Last", kept so serializing 100,000 entries does not format names each time.
    #[serde(skip)]
    name: String,
}

#[derive(Debug, Clone)]
struct Client {
    id: u64,
    name: String,
    currency: &'static str,
}

#[derive(Debug, Clone)]
struct Project {
    id: u64,
    name: String,
    code: String,
    client_id: u64,
    is_active: bool,
    starts_on: Option<NaiveDate>,
    ends_on: Option<NaiveDate>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// `external_reference` of a time entry (Harvest's `{id, group_id, account_id, permalink}`;
/// `service` and `service_icon_url` are derived when it is shown).
#[derive(Debug, Clone, Default, PartialEq)]
struct ExternalReference {
    id: String,
    group_id: Option<String>,
    account_id: Option<String>,
    permalink: Option<String>,
}

/// What only entries written through the public API carry; boxed so the entries of the
/// 100,000-entry benchmark stay small.
#[derive(Debug, Clone, Default, PartialEq)]
struct EntryExtra {
    /// `"HH:MM"` (the demo account's 24 h clock).
    started_time: Option<String>,
    ended_time: Option<String>,
    external_reference: Option<ExternalReference>,
}

/// A change to one entry; `None` leaves a field as it is, `Some(None)` clears a nullable one.
/// Both the control handle and `PATCH /v2/time_entries/{id}` apply changes through
/// [`HarvestState::patch_entry`]; validating ids is the caller's job.
#[derive(Debug, Clone, Default)]
struct EntryPatch {
    project_id: Option<u64>,
    task_id: Option<u64>,
    spent_date: Option<NaiveDate>,
    hours: Option<f64>,
    notes: Option<Option<String>>,
    is_running: Option<bool>,
    started_time: Option<Option<String>>,
    ended_time: Option<Option<String>>,
    external_reference: Option<Option<ExternalReference>>,
}

/// One time entry; small on purpose (the benchmark holds 100,000 of them).
#[derive(Debug, Clone)]
struct Entry {
    id: u64,
    spent_date: NaiveDate,
    user_id: u64,
    project_id: u64,
    task_id: u64,
    hours: f64,
    notes: Option<String>,
    is_running: bool,
    is_locked: bool,
    timer_started_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    extra: Option<Box<EntryExtra>>,
}

#[derive(Debug, Clone)]
struct Account {
    id: u64,
    name: String,
    product: &'static str,
}

/// Everything the Harvest emulation knows.
#[derive(Debug)]
pub(crate) struct HarvestState {
    common: Common,
    accounts: Vec<Account>,
    /// The account holding the data below; other Harvest accounts answer empty lists.
    data_account: u64,
    users: BTreeMap<u64, User>,
    clients: BTreeMap<u64, Client>,
    projects: BTreeMap<u64, Project>,
    /// Task names by id.
    tasks: BTreeMap<u64, &'static str>,
    /// Tasks archived through [`HarvestControl::set_task_active`].
    archived_tasks: BTreeSet<u64>,
    /// Sorted lazily (spent_date desc, id desc) when `entries_sorted` is false.
    entries: Vec<Entry>,
    entries_sorted: bool,
    next_user: u64,
    next_client: u64,
    next_project: u64,
    next_entry: u64,
}

impl HarvestState {
    fn new(seed: Seed) -> Self {
        let mut s = HarvestState {
            common: Common::new(
                OAuth::new(Duration::from_secs(14 * 24 * 3600), false),
                RateLimiter::new(100, Duration::from_secs(15)),
            ),
            accounts: vec![
                Account {
                    id: DEMO_ACCOUNT_ID,
                    name: "Acme Harvest".into(),
                    product: "harvest",
                },
                Account {
                    id: DEMO_ACCOUNT_ID + 1,
                    name: "Acme Forecast".into(),
                    product: "forecast",
                },
            ],
            data_account: DEMO_ACCOUNT_ID,
            users: BTreeMap::new(),
            clients: BTreeMap::new(),
            projects: BTreeMap::new(),
            tasks: BTreeMap::new(),
            archived_tasks: BTreeSet::new(),
            entries: Vec::new(),
            entries_sorted: true,
            next_user: 4_100_001,
            next_client: 9_800_001,
            next_project: 40_100_001,
            next_entry: FIRST_ENTRY_ID,
        };
        // Tasks are account configuration, not data: every account has a few.
        for (i, name) in ["Development", "Design", "Project Management"]
            .into_iter()
            .enumerate()
        {
            let id = 21_500_001 + i as u64;
            s.tasks.insert(id, name);
        }
        if seed == Seed::Demo {
            seed::demo(&mut s);
        }
        s
    }

    fn insert_user(
        &mut self,
        first: &str,
        last: &str,
        email: &str,
        created_at: DateTime<Utc>,
    ) -> u64 {
        let id = self.next_user;
        self.next_user += 1;
        let admin = self.users.is_empty();
        self.users.insert(
            id,
            User {
                id,
                first_name: first.to_owned(),
                last_name: last.to_owned(),
                email: email.to_owned(),
                telephone: "",
                timezone: "Berlin",
                weekly_capacity: 126_000,
                has_access_to_all_future_projects: admin,
                is_contractor: false,
                is_active: true,
                roles: vec![],
                // The first user is the one who authorizes the OAuth app, so give them the role
                // that sees everything (as the reference recommends requiring).
                access_roles: vec![if admin { "administrator" } else { "member" }],
                avatar_url: "https://d3s3969qhosaug.cloudfront.net/v2/user.png",
                default_hourly_rate: Some(100.0),
                cost_rate: Some(50.0),
                created_at: SecondsTs(created_at),
                updated_at: SecondsTs(created_at),
                name: format!("{first} {last}"),
            },
        );
        id
    }

    fn client_by_name(&mut self, name: &str) -> u64 {
        if let Some(c) = self.clients.values().find(|c| c.name == name) {
            return c.id;
        }
        let id = self.next_client;
        self.next_client += 1;
        self.clients.insert(
            id,
            Client {
                id,
                name: name.to_owned(),
                currency: "EUR",
            },
        );
        id
    }

    fn insert_project(
        &mut self,
        name: &str,
        client_name: &str,
        is_active: bool,
        created_at: DateTime<Utc>,
    ) -> u64 {
        let client_id = self.client_by_name(client_name);
        let id = self.next_project;
        self.next_project += 1;
        let code = name
            .split_whitespace()
            .filter_map(|w| w.chars().next())
            .collect::<String>()
            .to_uppercase();
        self.projects.insert(
            id,
            Project {
                id,
                name: name.to_owned(),
                code,
                client_id,
                is_active,
                starts_on: None,
                ends_on: None,
                created_at,
                updated_at: created_at,
            },
        );
        id
    }

    fn default_task(&self) -> u64 {
        self.tasks.keys().next().copied().unwrap_or(0)
    }

    fn insert_entry(&mut self, e: NewHarvestEntry, task_id: u64, created_at: DateTime<Utc>) -> u64 {
        assert!(
            self.users.contains_key(&e.user_id),
            "sandbox: unknown Harvest user {}",
            e.user_id
        );
        assert!(
            self.projects.contains_key(&e.project_id),
            "sandbox: unknown Harvest project {}",
            e.project_id
        );
        let id = self.next_entry;
        self.next_entry += 1;
        self.entries.push(Entry {
            id,
            spent_date: e.spent_date,
            user_id: e.user_id,
            project_id: e.project_id,
            task_id,
            hours: e.hours,
            notes: e.notes,
            is_running: e.is_running,
            is_locked: false,
            timer_started_at: e.is_running.then_some(created_at),
            created_at,
            updated_at: created_at,
            extra: None,
        });
        self.entries_sorted = false;
        id
    }

    fn entry_mut(&mut self, id: u64) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|e| e.id == id)
    }

    fn entry(&self, id: u64) -> Option<&Entry> {
        self.entries.iter().find(|e| e.id == id)
    }

    /// Applies `p` to entry `id` and bumps its `updated_at`. Starting a timer sets
    /// `timer_started_at`; stopping clears it. Answers whether the entry exists.
    fn patch_entry(&mut self, id: u64, p: EntryPatch) -> bool {
        let Some(e) = self.entries.iter_mut().find(|e| e.id == id) else {
            return false;
        };
        let resort = p.spent_date.is_some_and(|d| d != e.spent_date);
        if let Some(v) = p.project_id {
            e.project_id = v;
        }
        if let Some(v) = p.task_id {
            e.task_id = v;
        }
        if let Some(v) = p.spent_date {
            e.spent_date = v;
        }
        if let Some(v) = p.hours {
            e.hours = v;
        }
        if let Some(v) = p.notes {
            e.notes = v;
        }
        if let Some(running) = p.is_running {
            if running && !e.is_running {
                e.timer_started_at = Some(Utc::now());
            }
            if !running {
                e.timer_started_at = None;
            }
            e.is_running = running;
        }
        if p.started_time.is_some() || p.ended_time.is_some() || p.external_reference.is_some() {
            let x = e.extra.get_or_insert_with(Box::default);
            if let Some(v) = p.started_time {
                x.started_time = v;
            }
            if let Some(v) = p.ended_time {
                x.ended_time = v;
            }
            if let Some(v) = p.external_reference {
                x.external_reference = v;
            }
            if **x == EntryExtra::default() {
                e.extra = None;
            }
        }
        e.updated_at = bump(e.updated_at);
        self.entries_sorted &= !resort;
        true
    }

    /// Deletes an entry; like Harvest, nothing records the deletion. Answers whether it existed.
    fn remove_entry(&mut self, id: u64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.id != id);
        before != self.entries.len()
    }

    /// Entries in Harvest's list order: spent_date descending, then id descending.
    fn sorted_entries(&mut self) -> &[Entry] {
        if !self.entries_sorted {
            self.entries
                .sort_unstable_by_key(|e| std::cmp::Reverse((e.spent_date, e.id)));
            self.entries_sorted = true;
        }
        &self.entries
    }

    /// The user who authorized the OAuth app: the first administrator, else the first user.
    fn me(&self) -> Option<&User> {
        self.users
            .values()
            .find(|u| u.access_roles.contains(&"administrator"))
            .or_else(|| self.users.values().next())
    }
}

/// Handle to the Harvest emulation's state: add data, move the clock on tokens, queue faults.
/// Cheap to clone; all clones share one state.
#[derive(Clone)]
pub struct HarvestControl {
    inner: Arc<Mutex<HarvestState>>,
}

// The state can hold 100,000 entries; printing it all would drown any log.
impl std::fmt::Debug for HarvestControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HarvestControl").finish_non_exhaustive()
    }
}

impl HarvestControl {
    pub(crate) fn new(seed: Seed) -> Self {
        HarvestControl {
            inner: Arc::new(Mutex::new(HarvestState::new(seed))),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut HarvestState) -> R) -> R {
        f(&mut lock(&self.inner))
    }

    pub(crate) fn set_origin(&self, origin: &str) {
        self.with(|s| s.common.origin = origin.to_owned());
    }

    common_control_methods!(
        "Harvest",
        "14 days",
        "100 requests per 15 s per access token"
    );

    /// Id of the Harvest account that holds the data (demo: 1000001). API calls with another
    /// Harvest account's id in `Harvest-Account-Id` see an empty account.
    pub fn account_id(&self) -> u64 {
        self.with(|s| s.data_account)
    }

    /// Replaces what `GET /harvest/id/api/v2/accounts` lists: `(id, name, product)` with
    /// product `"harvest"` or `"forecast"`. The first Harvest account becomes the data account.
    pub fn set_accounts(&self, accounts: Vec<(u64, String, &'static str)>) {
        self.with(|s| {
            s.accounts = accounts
                .into_iter()
                .map(|(id, name, product)| Account { id, name, product })
                .collect();
            if let Some(a) = s.accounts.iter().find(|a| a.product == "harvest") {
                s.data_account = a.id;
            }
        });
    }

    /// Adds an active user and answers their id. The first user added is the administrator
    /// who authorizes OAuth apps (`/users/me`).
    pub fn add_user(&self, first: &str, last: &str, email: &str) -> u64 {
        self.with(|s| s.insert_user(first, last, email, Utc::now()))
    }

    /// Archives (`false`) or restores a user. Answers whether the user exists.
    pub fn set_user_active(&self, user_id: u64, is_active: bool) -> bool {
        self.with(|s| {
            let Some(u) = s.users.get_mut(&user_id) else {
                return false;
            };
            u.is_active = is_active;
            u.updated_at = SecondsTs(bump(u.updated_at.0));
            true
        })
    }

    /// Adds a project for the client named `client_name` (created on first use) and answers
    /// its id. `is_active: false` is an archived project.
    pub fn add_project(&self, name: &str, client_name: &str, is_active: bool) -> u64 {
        self.with(|s| s.insert_project(name, client_name, is_active, Utc::now()))
    }

    /// Archives (`false`) or restores a project. Answers whether the project exists.
    pub fn set_project_active(&self, project_id: u64, is_active: bool) -> bool {
        self.with(|s| {
            let Some(p) = s.projects.get_mut(&project_id) else {
                return false;
            };
            p.is_active = is_active;
            p.updated_at = bump(p.updated_at);
            true
        })
    }

    /// Adds a time entry (task "Development") and answers its id; ids only grow and are
    /// above 2^32.
    ///
    /// # Panics
    /// If the user or project does not exist (a mistake in the test, not in the client).
    pub fn add_time_entry(&self, entry: NewHarvestEntry) -> u64 {
        self.with(|s| {
            let task = s.default_task();
            s.insert_entry(entry, task, Utc::now())
        })
    }

    /// Changes the given fields of an entry (`None` leaves a field as it is) and bumps its
    /// `updated_at`. Starting a timer sets `timer_started_at`; stopping clears it. Answers
    /// whether the entry exists.
    pub fn update_time_entry(
        &self,
        id: u64,
        hours: Option<f64>,
        notes: Option<String>,
        spent_date: Option<NaiveDate>,
        is_running: Option<bool>,
    ) -> bool {
        let patch = EntryPatch {
            hours,
            notes: notes.map(Some),
            spent_date,
            is_running,
            ..EntryPatch::default()
        };
        self.with(|s| s.patch_entry(id, patch))
    }

    /// Moves an entry to another project (it disappears from the old project's list) and
    /// bumps `updated_at`. Answers whether both exist.
    pub fn move_time_entry(&self, id: u64, project_id: u64) -> bool {
        self.with(|s| {
            s.projects.contains_key(&project_id)
                && s.patch_entry(
                    id,
                    EntryPatch {
                        project_id: Some(project_id),
                        ..EntryPatch::default()
                    },
                )
        })
    }

    /// Deletes an entry; like Harvest, nothing records the deletion. Answers whether it existed.
    pub fn delete_time_entry(&self, id: u64) -> bool {
        self.with(|s| s.remove_entry(id))
    }

    /// Locks (approves) or unlocks an entry and bumps `updated_at`. Answers whether it exists.
    pub fn set_time_entry_locked(&self, id: u64, locked: bool) -> bool {
        self.with(|s| {
            let Some(e) = s.entry_mut(id) else {
                return false;
            };
            e.is_locked = locked;
            e.updated_at = bump(e.updated_at);
            true
        })
    }

    /// Archives (`false`) or restores a task: entries on an archived task cannot be deleted
    /// through the API and no entry can be put on it. Answers whether the task exists.
    pub fn set_task_active(&self, task_id: u64, is_active: bool) -> bool {
        self.with(|s| {
            if !s.tasks.contains_key(&task_id) {
                return false;
            }
            if is_active {
                s.archived_tasks.remove(&task_id);
            } else {
                s.archived_tasks.insert(task_id);
            }
            true
        })
    }

    /// Id of the task named `name` (every account has "Development", "Design" and
    /// "Project Management").
    pub fn find_task(&self, name: &str) -> Option<u64> {
        self.with(|s| s.tasks.iter().find(|(_, n)| **n == name).map(|(id, _)| *id))
    }

    /// Replaces a user's `access_roles` (`"administrator"`, `"manager"`, `"member"`, …) and
    /// bumps their `updated_at`. The API acts as the first administrator, else the first user,
    /// and only administrators may delete closed entries or write other users' time. Answers
    /// whether the user exists.
    pub fn set_user_access_roles(&self, user_id: u64, access_roles: Vec<&'static str>) -> bool {
        self.with(|s| {
            let Some(u) = s.users.get_mut(&user_id) else {
                return false;
            };
            u.access_roles = access_roles;
            u.updated_at = SecondsTs(bump(u.updated_at.0));
            true
        })
    }

    /// Generates `count` stopped entries on `project_id`, round-robin over `user_ids`, spread
    /// over `days` days starting at `from` (0.25–8 h each, no notes). Answers the id range,
    /// which is contiguous and increasing. Made for the 100,000-entry benchmark.
    ///
    /// # Panics
    /// If `user_ids` is empty or names an unknown user, or the project does not exist.
    pub fn bulk_time_entries(
        &self,
        project_id: u64,
        user_ids: &[u64],
        count: usize,
        from: NaiveDate,
        days: u32,
    ) -> Range<u64> {
        assert!(
            !user_ids.is_empty(),
            "sandbox: bulk_time_entries needs at least one user"
        );
        self.with(|s| {
            assert!(
                s.projects.contains_key(&project_id),
                "sandbox: unknown Harvest project {project_id}"
            );
            for u in user_ids {
                assert!(s.users.contains_key(u), "sandbox: unknown Harvest user {u}");
            }
            let dates: Vec<NaiveDate> = (0..u64::from(days.max(1)))
                .map(|d| from + chrono::Days::new(d))
                .collect();
            let tasks: Vec<u64> = s.tasks.keys().copied().collect();
            let now = Utc::now();
            let first = s.next_entry;
            s.entries.reserve(count);
            for i in 0..count {
                s.entries.push(Entry {
                    id: first + i as u64,
                    // Ids ascend with the day, as in a real account where time is logged around
                    // the day it is spent.
                    spent_date: dates[i * dates.len() / count.max(1)],
                    user_id: user_ids[i % user_ids.len()],
                    project_id,
                    task_id: tasks.get(i % tasks.len().max(1)).copied().unwrap_or(0),
                    hours: 0.25 * (1 + i % 32) as f64,
                    notes: None,
                    is_running: false,
                    is_locked: false,
                    timer_started_at: None,
                    created_at: now,
                    updated_at: now,
                    extra: None,
                });
            }
            s.next_entry = first + count as u64;
            s.entries_sorted = false;
            first..s.next_entry
        })
    }

    /// Number of time entries in the data account.
    pub fn time_entry_count(&self) -> usize {
        self.with(|s| s.entries.len())
    }

    /// Id of the user whose email equals `email` (case-insensitive, trimmed).
    pub fn find_user(&self, email: &str) -> Option<u64> {
        let wanted = email.trim().to_lowercase();
        self.with(|s| {
            s.users
                .values()
                .find(|u| u.email.trim().to_lowercase() == wanted)
                .map(|u| u.id)
        })
    }

    /// Id of the project named `name`.
    pub fn find_project(&self, name: &str) -> Option<u64> {
        self.with(|s| s.projects.values().find(|p| p.name == name).map(|p| p.id))
    }

    /// Ids of the entries with `is_running: true`.
    pub fn running_time_entries(&self) -> Vec<u64> {
        self.with(|s| {
            s.entries
                .iter()
                .filter(|e| e.is_running)
                .map(|e| e.id)
                .collect()
        })
    }

    fn mint_access_token(account: u64) -> String {
        // Harvest tokens look like `<account>.at.<random>`; clients must treat them as opaque.
        format!("{account}.at.{}", random_string(43))
    }
}
