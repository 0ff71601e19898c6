//! Basecamp 4 (`bc3`) emulation: Launchpad (OAuth, `authorization.json`) under
//! `/basecamp/launchpad` and the per-account API under `/basecamp/api/{account_id}/`.
//!
//! Facts follow `basecamp-tripletex-timelog.md` §2. Choices where the reference is silent or
//! says UNCONFIRMED (each made so that a client relying on the wrong guess fails loudly):
//! * Launchpad takes the client credentials as parameters (body or query); HTTP Basic is
//!   refused with 401 `invalid_client`. `grant_type=authorization_code|refresh_token` and the
//!   legacy `type=web_server|refresh` are both accepted. Refresh tokens do not rotate.
//! * 401 bodies are the plain text `HTTP Token: Access denied.`; other errors are
//!   `{"error": "..."}`.
//! * Timesheet entries report `hours` as a decimal string rounded to hundredths with at least
//!   one decimal (`"2.0"`, `"2.75"`, `"0.33"` for 20 minutes). Input accepts `"1.5"` and
//!   `"1:30"`; zero, negative, more than 24 hours or more than 6 decimals answer 422.
//! * Creating an entry on a project whose `timesheet_enabled` is false answers **403**
//!   `{"error": "Timesheet is not enabled for this project"}`; a `person_id` that is not a
//!   non-client member of the project answers **422**.
//! * A project's timesheet recording (the parent of project-level entries) is discoverable only
//!   through existing project-level entries, as the reference says.
//! * Webhook `payload_url` must be `https`, except `http` to a loopback host (the sandbox cannot
//!   serve TLS); deliveries are one attempt each, and 10 failed deliveries in a row deactivate
//!   the webhook.
//! * The budget is 50 requests per 10 s per account (the reference's "per IP" would make every
//!   test share one budget).

mod api;
mod deliver;
mod seed;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Serialize, Serializer};

use crate::Seed;
use crate::common::{Common, RateLimiter, bump, common_control_methods, lock, random_string};
use crate::oauth::OAuth;

pub(crate) use api::router;

/// Demo OAuth client id (Hourbridge's platform app in the sandbox).
pub(crate) const DEMO_CLIENT_ID: &str = "demo-basecamp-client";
/// Demo OAuth client secret.
pub(crate) const DEMO_CLIENT_SECRET: &str = "demo-basecamp-secret";
/// The demo's main `bc3` account (also the only account of the empty seed).
pub(crate) const DEMO_ACCOUNT_ID: u64 = 4_410_022;
/// The demo's second `bc3` account.
pub(crate) const DEMO_SECOND_ACCOUNT_ID: u64 = 4_410_023;

/// Recording ids start above 2^32 so a client that truncates ids to 32 bits fails loudly.
const FIRST_RECORDING_ID: u64 = 7_300_000_000;

/// Status of a Basecamp recording (projects, lists, to-dos, entries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BasecampStatus {
    /// Visible.
    Active,
    /// Archived.
    Archived,
    /// In the trash.
    Trashed,
}

impl BasecampStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Archived => "archived",
            Self::Trashed => "trashed",
        }
    }

    pub(crate) fn parse(v: &str) -> Option<Self> {
        match v {
            "active" => Some(Self::Active),
            "archived" => Some(Self::Archived),
            "trashed" => Some(Self::Trashed),
            _ => None,
        }
    }
}

/// Basecamp's timestamp format: milliseconds, `Z`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MillisTs(pub DateTime<Utc>);

impl Serialize for MillisTs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0.format("%Y-%m-%dT%H:%M:%S%.3fZ"))
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Account {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) product: &'static str,
    pub(crate) active: bool,
    pub(crate) timesheet: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Person {
    pub(crate) id: u64,
    pub(crate) account: u64,
    pub(crate) name: String,
    pub(crate) email: String,
    pub(crate) client: bool,
    pub(crate) admin: bool,
    pub(crate) owner: bool,
    pub(crate) created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub(crate) struct Project {
    pub(crate) id: u64,
    pub(crate) account: u64,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) status: BasecampStatus,
    pub(crate) timesheet_enabled: bool,
    pub(crate) todoset_id: u64,
    /// The project's timesheet recording (parent of project-level entries).
    pub(crate) timesheet_id: u64,
    pub(crate) people: Vec<u64>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub(crate) struct Todolist {
    pub(crate) id: u64,
    pub(crate) project: u64,
    /// The list this one is a group of; `None` for a top-level list.
    pub(crate) group_of: Option<u64>,
    pub(crate) name: String,
    pub(crate) status: BasecampStatus,
    pub(crate) position: u32,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub(crate) struct Todo {
    pub(crate) id: u64,
    pub(crate) project: u64,
    pub(crate) list: u64,
    pub(crate) title: String,
    pub(crate) description: String,
    pub(crate) completed: bool,
    pub(crate) status: BasecampStatus,
    pub(crate) assignees: Vec<u64>,
    pub(crate) due_on: Option<NaiveDate>,
    pub(crate) position: u32,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) id: u64,
    pub(crate) project: u64,
    /// The recording the time is on: a to-do or the project's timesheet.
    pub(crate) recording: u64,
    pub(crate) person: u64,
    pub(crate) creator: u64,
    pub(crate) date: NaiveDate,
    /// Exact duration in seconds (`"1:30"` and `"1.5"` are both 5400).
    pub(crate) seconds: u64,
    pub(crate) description: String,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub(crate) struct Webhook {
    pub(crate) id: u64,
    pub(crate) project: u64,
    pub(crate) payload_url: String,
    pub(crate) types: Vec<String>,
    pub(crate) active: bool,
    pub(crate) failures_in_a_row: u32,
    pub(crate) deliveries: Vec<WebhookDelivery>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
}

/// One delivery attempt of a webhook event, as a test sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    /// Event id (`id` of the payload).
    pub event_id: u64,
    /// `kind` of the payload, e.g. `todo_completed`.
    pub kind: String,
    /// The recording the event is about.
    pub recording_id: u64,
    /// HTTP status the payload URL answered; `None` when it could not be reached.
    pub status: Option<u16>,
}

/// A registered webhook, as a test sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxWebhook {
    /// Webhook id.
    pub id: u64,
    /// Project (bucket) it belongs to.
    pub project_id: u64,
    /// Where events are POSTed.
    pub payload_url: String,
    /// Subscribed types (empty: all).
    pub types: Vec<String>,
    /// Whether it still delivers.
    pub active: bool,
}

/// A timesheet entry, as a test sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxTimesheetEntry {
    /// Entry id.
    pub id: u64,
    /// Project (bucket) id.
    pub project_id: u64,
    /// The recording it is on (a to-do, or the project's timesheet).
    pub recording_id: u64,
    /// Whom the time is for.
    pub person_id: u64,
    /// Who created it (the token's identity in that account).
    pub creator_id: u64,
    /// Day.
    pub date: NaiveDate,
    /// Exact duration in seconds.
    pub seconds: u64,
    /// `hours` exactly as the API reports it.
    pub hours: String,
    /// Description.
    pub description: String,
}

/// Everything the Basecamp emulation knows.
#[derive(Debug)]
pub(crate) struct BasecampState {
    pub(crate) common: Common,
    pub(crate) accounts: BTreeMap<u64, Account>,
    /// Launchpad identity of whoever authorizes (`identity` of `authorization.json`).
    pub(crate) identity: (u64, String, String, String),
    pub(crate) people: BTreeMap<u64, Person>,
    pub(crate) projects: BTreeMap<u64, Project>,
    pub(crate) lists: BTreeMap<u64, Todolist>,
    pub(crate) todos: BTreeMap<u64, Todo>,
    pub(crate) entries: BTreeMap<u64, Entry>,
    pub(crate) webhooks: BTreeMap<u64, Webhook>,
    /// Successful timesheet writes (create, update, delete) through the API.
    pub(crate) timesheet_writes: u64,
    /// GETs answered `304 Not Modified` (a matching `If-None-Match`).
    pub(crate) not_modified: u64,
    /// Writes still to be applied and then answered with this status instead of their own.
    pub(crate) lose_answers: (u32, u16),
    next_id: u64,
    next_small_id: u64,
}

impl BasecampState {
    fn new(seed: Seed) -> Self {
        let mut s = BasecampState {
            common: Common::new(
                OAuth::new(Duration::from_secs(14 * 24 * 3600), false),
                RateLimiter::new(50, Duration::from_secs(10)),
            ),
            accounts: BTreeMap::new(),
            identity: (
                9_000_001,
                "Ingrid".into(),
                "Solberg".into(),
                "ingrid@nordlys.example".into(),
            ),
            people: BTreeMap::new(),
            projects: BTreeMap::new(),
            lists: BTreeMap::new(),
            todos: BTreeMap::new(),
            entries: BTreeMap::new(),
            webhooks: BTreeMap::new(),
            timesheet_writes: 0,
            not_modified: 0,
            lose_answers: (0, 502),
            next_id: FIRST_RECORDING_ID,
            next_small_id: 51_200_001,
        };
        s.insert_account(DEMO_ACCOUNT_ID, "Nordlys Digital", "bc3");
        if seed == Seed::Demo {
            seed::demo(&mut s);
        }
        s
    }

    pub(crate) fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn next_person_id(&mut self) -> u64 {
        self.next_small_id += 1;
        self.next_small_id
    }

    pub(crate) fn insert_account(&mut self, id: u64, name: &str, product: &'static str) {
        self.accounts.insert(
            id,
            Account {
                id,
                name: name.to_owned(),
                product,
                active: true,
                timesheet: true,
            },
        );
    }

    pub(crate) fn insert_person(
        &mut self,
        account: u64,
        name: &str,
        email: &str,
        client: bool,
    ) -> u64 {
        let id = self.next_person_id();
        let first = !self.people.values().any(|p| p.account == account);
        self.people.insert(
            id,
            Person {
                id,
                account,
                name: name.to_owned(),
                email: email.to_owned(),
                client,
                admin: first,
                owner: first,
                created_at: Utc::now(),
            },
        );
        id
    }

    pub(crate) fn insert_project(&mut self, account: u64, name: &str) -> u64 {
        let id = self.next_id();
        let todoset_id = self.next_id();
        let timesheet_id = self.next_id();
        let now = Utc::now();
        // The authorizing user (the account's first person) is on every project they create.
        let me: Vec<u64> = self.me(account).into_iter().collect();
        self.projects.insert(
            id,
            Project {
                id,
                account,
                name: name.to_owned(),
                description: String::new(),
                status: BasecampStatus::Active,
                timesheet_enabled: true,
                todoset_id,
                timesheet_id,
                people: me,
                created_at: now,
                updated_at: now,
            },
        );
        id
    }

    pub(crate) fn insert_list(&mut self, project: u64, group_of: Option<u64>, name: &str) -> u64 {
        let id = self.next_id();
        let now = Utc::now();
        let position = self
            .lists
            .values()
            .filter(|l| l.project == project && l.group_of == group_of)
            .count() as u32
            + 1;
        self.lists.insert(
            id,
            Todolist {
                id,
                project,
                group_of,
                name: name.to_owned(),
                status: BasecampStatus::Active,
                position,
                created_at: now,
                updated_at: now,
            },
        );
        id
    }

    pub(crate) fn insert_todo(&mut self, list: u64, title: &str) -> u64 {
        let project = self.lists[&list].project;
        let id = self.next_id();
        let now = Utc::now();
        let position = self.todos.values().filter(|t| t.list == list).count() as u32 + 1;
        self.todos.insert(
            id,
            Todo {
                id,
                project,
                list,
                title: title.to_owned(),
                description: String::new(),
                completed: false,
                status: BasecampStatus::Active,
                assignees: Vec::new(),
                due_on: None,
                position,
                created_at: now,
                updated_at: now,
            },
        );
        id
    }

    /// The account's first person: the one the OAuth identity stands for in that account.
    pub(crate) fn me(&self, account: u64) -> Option<u64> {
        self.people
            .values()
            .find(|p| p.account == account)
            .map(|p| p.id)
    }

    /// The project a recording (to-do, list, todoset or timesheet) belongs to.
    pub(crate) fn project_of_recording(&self, id: u64) -> Option<u64> {
        if let Some(t) = self.todos.get(&id) {
            return Some(t.project);
        }
        if let Some(l) = self.lists.get(&id) {
            return Some(l.project);
        }
        self.projects
            .values()
            .find(|p| p.timesheet_id == id || p.todoset_id == id)
            .map(|p| p.id)
    }

    pub(crate) fn entry_view(&self, e: &Entry) -> SandboxTimesheetEntry {
        SandboxTimesheetEntry {
            id: e.id,
            project_id: e.project,
            recording_id: e.recording,
            person_id: e.person,
            creator_id: e.creator,
            date: e.date,
            seconds: e.seconds,
            hours: format_hours(e.seconds),
            description: e.description.clone(),
        }
    }
}

/// `hours` as the sandbox reports it: hundredths of an hour, at least one decimal.
pub(crate) fn format_hours(seconds: u64) -> String {
    let hundredths = (seconds * 100 + 1800) / 3600;
    let (whole, frac) = (hundredths / 100, hundredths % 100);
    match frac {
        0 => format!("{whole}.0"),
        f if f % 10 == 0 => format!("{whole}.{}", f / 10),
        f => format!("{whole}.{f:02}"),
    }
}

/// Parses `hours` input: `"1:30"` or a decimal `"1.5"`, into exact seconds. `None` when
/// unreadable, not positive or above 24 hours.
pub(crate) fn parse_hours(v: &str) -> Option<u64> {
    let v = v.trim();
    let seconds = if let Some((h, m)) = v.split_once(':') {
        if h.is_empty() || m.len() != 2 || !(h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()))
        {
            return None;
        }
        let (h, m): (u64, u64) = (h.parse().ok()?, m.parse().ok()?);
        if m >= 60 {
            return None;
        }
        h.checked_mul(3600)? + m * 60
    } else {
        let (whole, frac) = v.split_once('.').unwrap_or((v, ""));
        if whole.is_empty() && frac.is_empty()
            || frac.len() > 6
            || !whole
                .bytes()
                .chain(frac.bytes())
                .all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let whole: u64 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        let scale = 10u64.pow(frac.len() as u32);
        let frac: u64 = if frac.is_empty() {
            0
        } else {
            frac.parse().ok()?
        };
        whole.checked_mul(3600)? + (frac * 3600 + scale / 2) / scale
    };
    (seconds > 0 && seconds <= 24 * 3600).then_some(seconds)
}

/// Handle to the Basecamp emulation: add data, change to-dos (delivering webhooks), read what
/// was pushed, queue faults. Cheap to clone; all clones share one state.
#[derive(Clone)]
pub struct BasecampControl {
    inner: Arc<Mutex<BasecampState>>,
    pending: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl std::fmt::Debug for BasecampControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasecampControl").finish_non_exhaustive()
    }
}

impl BasecampControl {
    pub(crate) fn new(seed: Seed) -> Self {
        BasecampControl {
            inner: Arc::new(Mutex::new(BasecampState::new(seed))),
            pending: Arc::new(Mutex::new(Vec::new())),
        }
    }

    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut BasecampState) -> R) -> R {
        f(&mut lock(&self.inner))
    }

    pub(crate) fn set_origin(&self, origin: &str) {
        self.with(|s| s.common.origin = origin.to_owned());
    }

    common_control_methods!(
        "Basecamp (Launchpad)",
        "14 days",
        "50 requests per 10 s per account"
    );

    /// The next `n` successful writes (POST, PUT, DELETE) are applied, but answered with
    /// `status` (e.g. 502, 504) instead of their 201/200/204: what a proxy timing out after
    /// Basecamp did the work looks like. A client must find the write instead of repeating it.
    pub fn lose_next_write_answers(&self, n: u32, status: u16) {
        self.with(|s| s.lose_answers = (n, status));
    }

    /// GETs answered `304 Not Modified` so far (their `If-None-Match` matched the ETag).
    pub fn not_modified_count(&self) -> u64 {
        self.with(|s| s.not_modified)
    }

    /// Id of the main `bc3` account (4410022, with either seed).
    pub fn account_id(&self) -> u64 {
        DEMO_ACCOUNT_ID
    }

    /// Ids of the accounts `authorization.json` lists whose product is `bc3`.
    pub fn bc3_account_ids(&self) -> Vec<u64> {
        self.with(|s| {
            s.accounts
                .values()
                .filter(|a| a.product == "bc3")
                .map(|a| a.id)
                .collect()
        })
    }

    /// Adds an account to the OAuth identity (`product` e.g. `"bc3"`, `"bcx"`, `"hey"`).
    pub fn add_account(&self, id: u64, name: &str, product: &'static str) {
        self.with(|s| s.insert_account(id, name, product));
    }

    /// Removes an account from what `authorization.json` lists (its data stays, unreachable).
    /// Answers whether it existed.
    pub fn remove_account(&self, account: u64) -> bool {
        self.with(|s| s.accounts.remove(&account).is_some())
    }

    /// Deactivates (`false`) or reactivates an account: every API call on it answers 404 with
    /// `Reason: Account Inactive`. Answers whether the account exists.
    pub fn set_account_active(&self, account: u64, active: bool) -> bool {
        self.with(|s| {
            s.accounts
                .get_mut(&account)
                .map(|a| a.active = active)
                .is_some()
        })
    }

    /// Turns the account's timesheet subscription (`/account.json` `subscription.timesheet`)
    /// off or on; off, every timesheet create answers 403.
    pub fn set_account_timesheet(&self, account: u64, enabled: bool) -> bool {
        self.with(|s| {
            s.accounts
                .get_mut(&account)
                .map(|a| a.timesheet = enabled)
                .is_some()
        })
    }

    /// Adds a person to `account` and answers their id. The account's first person is its
    /// owner and the one the OAuth identity stands for (the default `person_id` of entries).
    pub fn add_person(&self, account: u64, name: &str, email: &str, client: bool) -> u64 {
        self.with(|s| s.insert_person(account, name, email, client))
    }

    /// Adds an active project (timesheets enabled, the account's first person on it) with its
    /// to-do set and timesheet recording; answers its id.
    pub fn add_project(&self, account: u64, name: &str) -> u64 {
        self.with(|s| s.insert_project(account, name))
    }

    /// Puts a person on a project (`/projects/{id}/people.json`). Answers whether both exist.
    pub fn add_project_person(&self, project: u64, person: u64) -> bool {
        self.with(|s| {
            if !s.people.contains_key(&person) {
                return false;
            }
            let Some(p) = s.projects.get_mut(&project) else {
                return false;
            };
            if !p.people.contains(&person) {
                p.people.push(person);
            }
            true
        })
    }

    /// Archives, trashes or restores a project. Answers whether it exists.
    pub fn set_project_status(&self, project: u64, status: BasecampStatus) -> bool {
        self.with(|s| {
            let Some(p) = s.projects.get_mut(&project) else {
                return false;
            };
            p.status = status;
            p.updated_at = bump(p.updated_at);
            true
        })
    }

    /// Turns the project's timesheet on or off (`timesheet_enabled`). Answers whether it exists.
    pub fn set_timesheet_enabled(&self, project: u64, enabled: bool) -> bool {
        self.with(|s| {
            let Some(p) = s.projects.get_mut(&project) else {
                return false;
            };
            p.timesheet_enabled = enabled;
            p.updated_at = bump(p.updated_at);
            true
        })
    }

    /// The project's to-do set id.
    pub fn todoset_id(&self, project: u64) -> Option<u64> {
        self.with(|s| s.projects.get(&project).map(|p| p.todoset_id))
    }

    /// The project's timesheet recording id (what project-level entries are created on).
    pub fn timesheet_recording_id(&self, project: u64) -> Option<u64> {
        self.with(|s| s.projects.get(&project).map(|p| p.timesheet_id))
    }

    /// Adds a to-do list to a project's to-do set and answers its id.
    ///
    /// # Panics
    /// If the project does not exist.
    pub fn add_todolist(&self, project: u64, name: &str) -> u64 {
        self.with(|s| {
            assert!(
                s.projects.contains_key(&project),
                "sandbox: no project {project}"
            );
            s.insert_list(project, None, name)
        })
    }

    /// Adds a group to a to-do list and answers its id (groups are `Todolist`s too).
    ///
    /// # Panics
    /// If the list does not exist or is itself a group.
    pub fn add_group(&self, list: u64, name: &str) -> u64 {
        self.with(|s| {
            let l = s.lists.get(&list).expect("sandbox: no such to-do list");
            assert!(l.group_of.is_none(), "sandbox: groups do not nest");
            let project = l.project;
            s.insert_list(project, Some(list), name)
        })
    }

    /// Adds an open to-do to a list or group, delivers `todo_created`, and answers its id.
    ///
    /// # Panics
    /// If the list does not exist.
    pub fn add_todo(&self, list: u64, title: &str) -> u64 {
        let id = self.with(|s| {
            assert!(s.lists.contains_key(&list), "sandbox: no to-do list {list}");
            s.insert_todo(list, title)
        });
        self.notify(id, "todo_created");
        id
    }

    /// Completes or reopens a to-do (`todo_completed` / `todo_uncompleted`). Answers whether
    /// it exists.
    pub fn complete_todo(&self, todo: u64, completed: bool) -> bool {
        let found = self.with(|s| {
            s.todos
                .get_mut(&todo)
                .map(|t| {
                    t.completed = completed;
                    t.updated_at = bump(t.updated_at);
                })
                .is_some()
        });
        if found {
            let kind = if completed {
                "todo_completed"
            } else {
                "todo_uncompleted"
            };
            self.notify(todo, kind);
        }
        found
    }

    /// Moves a to-do to the trash (`todo_trashed`); it disappears from every list.
    pub fn trash_todo(&self, todo: u64) -> bool {
        self.set_todo_status(todo, BasecampStatus::Trashed)
    }

    /// Sets a to-do's status (`todo_archived`, `todo_trashed`, `todo_unarchived` /
    /// `todo_untrashed` when made active again). Answers whether it exists.
    pub fn set_todo_status(&self, todo: u64, status: BasecampStatus) -> bool {
        let old = self.with(|s| {
            s.todos.get_mut(&todo).map(|t| {
                let old = t.status;
                t.status = status;
                t.updated_at = bump(t.updated_at);
                old
            })
        });
        let Some(old) = old else { return false };
        let kind = match (old, status) {
            (_, BasecampStatus::Archived) => "todo_archived",
            (_, BasecampStatus::Trashed) => "todo_trashed",
            (BasecampStatus::Trashed, BasecampStatus::Active) => "todo_untrashed",
            _ => "todo_unarchived",
        };
        self.notify(todo, kind);
        true
    }

    /// Renames a to-do (`todo_title_updated`). Answers whether it exists.
    pub fn rename_todo(&self, todo: u64, title: &str) -> bool {
        let found = self.with(|s| {
            s.todos
                .get_mut(&todo)
                .map(|t| {
                    t.title = title.to_owned();
                    t.updated_at = bump(t.updated_at);
                })
                .is_some()
        });
        if found {
            self.notify(todo, "todo_title_updated");
        }
        found
    }

    /// Assigns a to-do to people (no webhook: Basecamp sends none for assignment alone).
    pub fn assign_todo(&self, todo: u64, people: &[u64]) -> bool {
        self.with(|s| {
            s.todos
                .get_mut(&todo)
                .map(|t| {
                    t.assignees = people.to_vec();
                    t.updated_at = bump(t.updated_at);
                })
                .is_some()
        })
    }

    /// Adds a timesheet entry directly (as if someone logged time in Basecamp) on a to-do or a
    /// project's timesheet recording, and answers its id.
    ///
    /// # Panics
    /// If the recording or person is unknown, or `hours` is not valid input.
    pub fn add_timesheet_entry(
        &self,
        recording: u64,
        person: u64,
        date: NaiveDate,
        hours: &str,
        description: &str,
    ) -> u64 {
        self.with(|s| {
            let project = s
                .project_of_recording(recording)
                .expect("sandbox: unknown recording");
            assert!(s.people.contains_key(&person), "sandbox: unknown person");
            let seconds = parse_hours(hours).expect("sandbox: invalid hours");
            let id = s.next_id();
            let now = Utc::now();
            s.entries.insert(
                id,
                Entry {
                    id,
                    project,
                    recording,
                    person,
                    creator: person,
                    date,
                    seconds,
                    description: description.to_owned(),
                    created_at: now,
                    updated_at: now,
                },
            );
            id
        })
    }

    /// Every timesheet entry of a project, by id.
    pub fn timesheet_entries(&self, project: u64) -> Vec<SandboxTimesheetEntry> {
        self.with(|s| {
            s.entries
                .values()
                .filter(|e| e.project == project)
                .map(|e| s.entry_view(e))
                .collect()
        })
    }

    /// One timesheet entry.
    pub fn timesheet_entry(&self, id: u64) -> Option<SandboxTimesheetEntry> {
        self.with(|s| s.entries.get(&id).map(|e| s.entry_view(e)))
    }

    /// Number of timesheet entries in every account.
    pub fn timesheet_entry_count(&self) -> usize {
        self.with(|s| s.entries.len())
    }

    /// Successful timesheet creates, updates and deletes received through the API.
    pub fn timesheet_write_count(&self) -> u64 {
        self.with(|s| s.timesheet_writes)
    }

    /// Webhooks registered on a project.
    pub fn webhooks(&self, project: u64) -> Vec<SandboxWebhook> {
        self.with(|s| {
            s.webhooks
                .values()
                .filter(|w| w.project == project)
                .map(|w| SandboxWebhook {
                    id: w.id,
                    project_id: w.project,
                    payload_url: w.payload_url.clone(),
                    types: w.types.clone(),
                    active: w.active,
                })
                .collect()
        })
    }

    /// Deletes a webhook behind the client's back (as an admin in Basecamp would).
    pub fn remove_webhook(&self, id: u64) -> bool {
        self.with(|s| s.webhooks.remove(&id).is_some())
    }

    /// Delivery attempts of a webhook so far, oldest first.
    pub fn webhook_deliveries(&self, id: u64) -> Vec<WebhookDelivery> {
        self.with(|s| {
            s.webhooks
                .get(&id)
                .map(|w| w.deliveries.clone())
                .unwrap_or_default()
        })
    }

    /// Waits until every webhook delivery started so far has finished.
    pub async fn flush_webhooks(&self) {
        loop {
            let batch: Vec<_> = std::mem::take(&mut *lock(&self.pending));
            if batch.is_empty() {
                return;
            }
            for task in batch {
                let _ = task.await;
            }
        }
    }

    /// Id of the person whose e-mail equals `email` (trimmed, case-insensitive) in `account`.
    pub fn find_person(&self, account: u64, email: &str) -> Option<u64> {
        let wanted = email.trim().to_lowercase();
        self.with(|s| {
            s.people
                .values()
                .find(|p| p.account == account && p.email.trim().to_lowercase() == wanted)
                .map(|p| p.id)
        })
    }

    /// Id of the project named `name` (any account).
    pub fn find_project(&self, name: &str) -> Option<u64> {
        self.with(|s| s.projects.values().find(|p| p.name == name).map(|p| p.id))
    }

    /// Id of the to-do list or group named `name`.
    pub fn find_todolist(&self, name: &str) -> Option<u64> {
        self.with(|s| s.lists.values().find(|l| l.name == name).map(|l| l.id))
    }

    /// Id of the to-do titled `title`.
    pub fn find_todo(&self, title: &str) -> Option<u64> {
        self.with(|s| s.todos.values().find(|t| t.title == title).map(|t| t.id))
    }

    /// Queues delivery of a `todo_*` event to every active webhook of the to-do's project that
    /// subscribes to `Todo`.
    fn notify(&self, todo: u64, kind: &str) {
        let jobs = self.with(|s| deliver::prepare(s, todo, kind));
        if jobs.is_empty() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("basecamp sandbox: no Tokio runtime, webhook events dropped");
            return;
        };
        let me = self.clone();
        let task = rt.spawn(async move {
            for job in jobs {
                let status = deliver::post(&job).await;
                me.with(|s| deliver::record(s, &job, status));
            }
        });
        lock(&self.pending).push(task);
    }

    fn mint_access_token() -> String {
        format!("BAhbB0kiAbB7ImNsaWVudF9pZCI6{}", random_string(40))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_input_is_exact() {
        assert_eq!(parse_hours("1:30"), Some(5400));
        assert_eq!(parse_hours("1.5"), Some(5400));
        assert_eq!(parse_hours("0:20"), Some(1200));
        assert_eq!(parse_hours(".25"), Some(900));
        assert_eq!(parse_hours("2"), Some(7200));
        for bad in [
            "",
            "0",
            "0:00",
            "1:5",
            "1:60",
            "-1",
            "1.2.3",
            "25",
            "1,5",
            "0.1234567",
        ] {
            assert_eq!(parse_hours(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn hours_output_is_hundredths_with_one_decimal_at_least() {
        assert_eq!(format_hours(7200), "2.0");
        assert_eq!(format_hours(9900), "2.75");
        assert_eq!(format_hours(1200), "0.33");
        assert_eq!(format_hours(5400), "1.5");
        assert_eq!(format_hours(60), "0.02");
    }
}
