//! TimeLog emulation at the **root** of the sandbox (stands for `https://app[X].timelog.com`):
//! the site is `/{account_name}/`, so a client configured with domain `127.0.0.1:PORT` over
//! http and the account name finds
//!
//! | Path | Service |
//! |---|---|
//! | `POST /{account}/WebServices/Security/V1_2/SecurityServiceSecure.svc` | Transactional Security V1_2 (`GetToken`) |
//! | `POST /{account}/WebServices/ProjectManagement/V1_8/ProjectManagementServiceSecure.svc` | Transactional ProjectManagement V1_8 |
//! | `POST /{account}/service.asmx` | Reporting API (SOAP 1.1, `http://www.timelog.com/ws/tlp/v4_4`) |
//!
//! Facts follow `basecamp-tripletex-timelog.md` §4 and the WSDL-generated contracts of the
//! official SDK (TimeLog/TimeLogApiSdk `Reference.cs`): SOAP 1.1, `Content-Type: text/xml`,
//! one `SOAPAction` per operation (short ones such as `InsertWorkRequest` for old operations,
//! `http://www.timelog.com/api/tlp/v1_8/ProjectManagementService/<Op>` for newer ones,
//! `http://www.timelog.com/ws/tlp/v4_4/<Method>` for Reporting), `ResponseOf<T>` /
//! `BatchResponseOf<T>` wrappers with `ResponseState` and per-item `Status`, the security token
//! in `…/tlp/v1_2` from `GetToken` and in `…/tlp/v1_3` as a ProjectManagement parameter,
//! 1-based pages capped at 500, a 3-month change log, Reporting 401 on bad credentials and
//! `resultEmpty="true"` on empty results.
//!
//! # Wire strictness
//!
//! * Only `POST`; anything else answers 405. `Content-Type` must be `text/xml` (parameters
//!   such as `charset` allowed), else 415. Only the configured account names exist: any other
//!   first path segment answers 404, as an unknown site does.
//! * `SOAPAction` (quoted or not) is required and must name the operation in the body, else a
//!   SOAP 1.1 fault (`s:Client`, HTTP 500). So are malformed XML, a body that is not a SOAP 1.1
//!   envelope, an operation element outside the service's namespace and an unknown operation.
//! * Envelopes are read namespace-aware and order-tolerant, with any prefixes. Like WCF's
//!   DataContractSerializer, **members in the wrong namespace are not seen** (they read as
//!   absent). Namespaces, as in `Reference.cs`: operation parameters (`task`, `projectID`,
//!   `work`, `token`, …) in the service namespace (`…/tlp/v1_2` Security, `…/tlp/v1_8`
//!   ProjectManagement, `http://www.timelog.com/ws/tlp/v4_4` Reporting); token members
//!   `Initials`/`Expires`/`Hash` in `http://www.timelog.com/api/tlp/v1_3` (ProjectManagement)
//!   — a token whose members are elsewhere is a fault; `Task`, `WorkUnit`, `Allocation`
//!   members in `http://www.timelog.com/api/tlp/v1_7`, but the `APIBaseExtended` members
//!   (`Action`, `IsExternalKeysLoaded`, `ExternalKeys`) and `ExternalSystemContext`'s
//!   `SystemName`/`ExternalID` in `http://api.timelog.com`; `DeleteWork`'s GUIDs are
//!   `<guid xmlns="http://schemas.microsoft.com/2003/10/Serialization/Arrays">` items.
//! * Responses use the prefixes of the fixtures: `a` = the wrapper namespace
//!   (`http://www.timelog.com/api/tlp/v1_1` for Security, `http://api.timelog.com` for
//!   ProjectManagement), `b` = the item namespace, `c` = a batch item's own namespace,
//!   `i` = XMLSchema-instance.
//!
//! # Choices where the reference is silent or says UNCONFIRMED
//!
//! * **Time zone**: every `DateTime` is written in UTC **without an offset**, with fractional
//!   seconds only when non-zero (trailing zeros cut, ≤ 7 digits, as .NET does). Incoming
//!   values with `Z`/an offset are converted to UTC; values without one are taken as UTC.
//! * **Bad token**: an unknown, altered or expired token answers HTTP 200 with
//!   `ResponseState` `Error`, `ErrorCode` [`TOKEN_ERROR_CODE`] (40001) and one message
//!   (Severity `Error`, the same code) "The security token is invalid or has expired".
//!   Wrong `GetToken` credentials answer `Error` with [`LOGIN_ERROR_CODE`] (40002). Tokens
//!   live 12 hours unless changed with [`TimelogControl::set_token_lifetime`]; only
//!   `Initials` + `Hash` are checked (the token's own `Expires` is informative).
//! * **`ChangeTaskStatus` ints**: the Reporting "Task Status" enum — 0 not started,
//!   1 in progress, 2 on hold (task stays active), 3 completed, 4 cancelled (inactive).
//!   Anything else answers `Invalid`.
//! * **Batch items**: the overall `ResponseState` is `Success` even when items fail; each
//!   failed item has `Status` `Error`, `Item` nil and a `Message`. An insert whose `GUID` was
//!   ever used (live or deleted) fails ("already exists"); an insert without a GUID (or the
//!   nil GUID) gets a new one. An update of an unknown GUID fails; a delete of an unknown GUID
//!   succeeds. A closed week (for that employee and ISO week), an approved registration, an
//!   unknown or inactive task, an unknown or inactive employee and an employee not allocated
//!   to the task fail their item. Update elements that are left out keep their value.
//!   `source` is accepted whatever its value.
//! * **Tasks**: `CreateTask` appends the task as the last top-level item of the project's WBS,
//!   assigns `TaskID`, keeps the client's `ID` GUID (or makes one; a GUID already used fails
//!   the item), numbers it `0001`… unless `No` is sent, and starts it Not started (0) — or
//!   Completed (3) when `State.IsActive` is false. An inactive or unknown project fails the
//!   item. `ExternalKeys` are stored only when `IsExternalKeysLoaded` is true (as the SDK
//!   sample sends them); `UpdateTask` finds the task by `ID` (else `TaskID`), changes the
//!   members it is sent, replaces the keys under the same rule and never changes the status
//!   (that is `ChangeTaskStatus`). External keys match case-sensitively on both `key` and
//!   `systemName`; no registration of system names is needed.
//! * **Not found** on `GetTaskById`, `GetTaskByID`, `GetTaskByExternalKey` and
//!   `GetAllocationsToEmployee` (unknown initials) is `Success` with an empty `Return`; an
//!   unknown task on `ChangeTaskStatus` is `Error` with a message. `GetProjects` filters on
//!   `customerID`/`projectManagerID` (0 = any) and `includeInactiveProjects`; `statusID` is
//!   read but not applied. Parameters left out take WCF's defaults (0, false, the nil GUID,
//!   `0001-01-01T00:00:00`), so e.g. `GetWorkChangesPaged` without `registrationEndDate`
//!   finds nothing.
//! * **`AddEmployeeToTask` is not idempotent**: a second call for the same pair creates a
//!   second allocation (clients must check `GetAllocationsToEmployee` first).
//! * **Change feed** (`GetWorkChangesPaged`): every create/update/delete, by the API or the
//!   control handle, is logged at that moment (strictly increasing ActionDates). `Action` is
//!   `Created`/`Updated`/`Deleted`. Rows carry the values the unit had right after that
//!   change; once a unit is deleted, **all** its rows show only `Action`, `ActionDate`,
//!   `WorkUnitGuid` (nil/zero elsewhere, as in the fixture). The change window is inclusive at
//!   both ends; the registration window (dates, inclusive) and `initials` ("" = everyone)
//!   filter on what the sandbox knows of the unit, deletes included. Rows older than 3 months
//!   (by the sandbox clock) are not returned. Closing a week or approving is not logged.
//! * `GetProjectTasksPaged` / `GetWorkChangesPaged`: `pageSize` outside 1..=500 or `page` < 1
//!   answer `Invalid` with a message; past the end `Return` is empty; `IsReturnPaged` true,
//!   `TotalPageCount` 0 (deprecated).
//! * Reporting: bad `siteCode`/`apiID`/`apiPassword` answer **401** with a SOAP fault body
//!   (`ValidateCredentials` answers `false` instead). Unparsable dates answer 500 (fault).
//!   Booleans are `0`/`1` where the samples have them.
//! * [`TimelogControl::fail_next`] answers the next requests with a SOAP fault and the status;
//!   [`TimelogControl::lose_next_answers`] applies the next requests of one operation and then
//!   answers them with the status and a plain-text body (the work is done, the answer lost).
//! * A batch (`InsertWork`, `UpdateWork`, `DeleteWork` with several items) is applied item by
//!   item, in order, and answered with one container per item in that order; a refused item
//!   (a closed week, ...) does not stop the others.

mod reporting;
mod seed;
mod soap;
mod xml;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Datelike, Months, NaiveDate, NaiveDateTime, Utc};
use uuid::Uuid;

use crate::Seed;
use crate::common::{Faults, lock};

pub(crate) use soap::router;

/// Account name (URL path segment) of the sandbox site.
pub(crate) const ACCOUNT: &str = "acme-tl";
/// Transactional user name of the sync user.
pub(crate) const USERNAME: &str = "hourbridge.sync@acme.test";
/// Transactional password of the sync user.
pub(crate) const PASSWORD: &str = "Sandbox-TimeLog-2026";
/// Initials of the sync user (also accepted as the GetToken user).
pub(crate) const SYNC_INITIALS: &str = "SYNC";
/// Reporting API site code.
pub(crate) const SITE_CODE: &str = "7F3A9C21D8E64B0F";
/// Reporting API ID.
pub(crate) const REPORTING_USERNAME: &str = "hourbridge-reporting";
/// Reporting API password.
pub(crate) const REPORTING_PASSWORD: &str = "reporting-secret-7731";

/// `ErrorCode` of a response whose security token is unknown, altered or expired.
pub const TOKEN_ERROR_CODE: i32 = 40001;
/// `ErrorCode` of a `GetToken` with a wrong user or password.
pub const LOGIN_ERROR_CODE: i32 = 40002;

/// Largest `pageSize` the paged operations accept.
pub(crate) const MAX_PAGE_SIZE: i64 = 500;

#[derive(Debug, Clone)]
pub(crate) struct Department {
    pub(crate) id: i32,
    pub(crate) guid: Uuid,
    pub(crate) name: String,
    pub(crate) no: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Customer {
    pub(crate) id: i32,
    pub(crate) guid: Uuid,
    pub(crate) name: String,
    pub(crate) no: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Employee {
    /// `EmployeeID`.
    pub(crate) id: i32,
    pub(crate) user_id: i32,
    pub(crate) guid: Uuid,
    pub(crate) user_guid: Uuid,
    pub(crate) initials: String,
    pub(crate) username: String,
    pub(crate) first_name: String,
    pub(crate) last_name: String,
    pub(crate) email: String,
    pub(crate) title: String,
    pub(crate) department: i32,
    pub(crate) hired: NaiveDate,
    pub(crate) terminated: Option<NaiveDate>,
    pub(crate) employee_no: String,
    /// Transactional password; `None` cannot log in.
    pub(crate) password: Option<String>,
}

impl Employee {
    pub(crate) fn active(&self) -> bool {
        self.terminated.is_none()
    }

    pub(crate) fn full_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Project {
    pub(crate) id: i32,
    pub(crate) guid: Uuid,
    pub(crate) name: String,
    pub(crate) no: String,
    pub(crate) customer: i32,
    pub(crate) active: bool,
    pub(crate) start: NaiveDate,
    pub(crate) end: NaiveDate,
    pub(crate) manager: i32,
    pub(crate) department: i32,
    pub(crate) type_name: String,
    pub(crate) category_name: String,
    pub(crate) created_at: NaiveDateTime,
}

#[derive(Debug, Clone)]
pub(crate) struct Task {
    /// `TaskID`.
    pub(crate) id: i32,
    /// `ID`.
    pub(crate) guid: Uuid,
    pub(crate) project: i32,
    pub(crate) parent: Option<i32>,
    pub(crate) name: String,
    pub(crate) no: String,
    pub(crate) description: String,
    pub(crate) link: String,
    pub(crate) budget_hours: f64,
    pub(crate) budget_amount: f64,
    pub(crate) start: NaiveDate,
    pub(crate) end: NaiveDate,
    pub(crate) task_type: i32,
    /// Task Status enum: 0 not started, 1 in progress, 2 on hold, 3 completed, 4 cancelled.
    pub(crate) status: i32,
    /// `(SystemName, ExternalID)`.
    pub(crate) external_keys: Vec<(String, String)>,
    pub(crate) sort_order: i32,
    pub(crate) created_at: NaiveDateTime,
    pub(crate) created_by: i32,
    pub(crate) modified_at: NaiveDateTime,
    pub(crate) modified_by: i32,
}

impl Task {
    pub(crate) fn active(&self) -> bool {
        self.status < 3
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Allocation {
    pub(crate) id: i32,
    pub(crate) guid: Uuid,
    pub(crate) task: i32,
    pub(crate) employee: i32,
    pub(crate) hours: f64,
}

#[derive(Debug, Clone)]
pub(crate) struct WorkUnit {
    pub(crate) guid: Uuid,
    /// Reporting `ID`.
    pub(crate) id: i64,
    pub(crate) task: i32,
    pub(crate) employee: i32,
    /// 0 when registered without an allocation (control handle only).
    pub(crate) allocation: i32,
    pub(crate) start: NaiveDateTime,
    pub(crate) seconds: i64,
    pub(crate) billable_seconds: i64,
    pub(crate) description: String,
    pub(crate) additional_text: Option<String>,
    /// 0 open, 10 closed, 20 approved by PM, 30 approved by department manager.
    pub(crate) approved: i32,
    pub(crate) created_at: NaiveDateTime,
    pub(crate) created_by: i32,
    pub(crate) modified_at: NaiveDateTime,
    pub(crate) modified_by: i32,
    /// Bumped on each change (the `TimeStamp` rowversion).
    pub(crate) version: u64,
}

impl WorkUnit {
    pub(crate) fn date(&self) -> NaiveDate {
        self.start.date()
    }
}

/// What a change-log row records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Created,
    Updated,
    Deleted,
}

impl Action {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Action::Created => "Created",
            Action::Updated => "Updated",
            Action::Deleted => "Deleted",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub(crate) action: Action,
    pub(crate) at: DateTime<Utc>,
    /// The unit right after the change (right before it, for a delete).
    pub(crate) unit: WorkUnit,
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub(crate) initials: String,
    pub(crate) expires: DateTime<Utc>,
}

/// Fields of a work unit as a client sends them (absent = `None`).
#[derive(Debug, Clone, Default)]
pub(crate) struct WorkInput {
    pub(crate) guid: Option<Uuid>,
    pub(crate) allocation_guid: Option<Uuid>,
    pub(crate) task: Option<i32>,
    pub(crate) employee: Option<String>,
    pub(crate) seconds: Option<i64>,
    pub(crate) start: Option<NaiveDateTime>,
    pub(crate) end: Option<NaiveDateTime>,
    pub(crate) description: Option<String>,
    pub(crate) additional_text: Option<String>,
    pub(crate) billable_seconds: Option<i64>,
}

/// Message of an item rejected because its week is closed (the fixture's wording).
pub(crate) const WEEK_CLOSED: &str =
    "Registration could not be saved: the week is closed for the employee";
/// Message of an item rejected because the registration is approved.
pub(crate) const APPROVED: &str =
    "Registration could not be saved: the registration has been approved";

/// Everything the TimeLog emulation knows.
#[derive(Debug)]
pub(crate) struct TimelogState {
    pub(crate) accounts: Vec<String>,
    pub(crate) faults: Faults,
    /// Requests per operation name (`GetToken`, `InsertWork`, `GetEmployeesRaw`, …; `?` when
    /// no operation could be read).
    pub(crate) requests: BTreeMap<String, u64>,
    pub(crate) total_requests: u64,
    /// Operation → (requests still to apply and then answer with a fault, its status); set by
    /// [`TimelogControl::lose_next_answers`].
    pub(crate) lost_answers: BTreeMap<String, (u32, u16)>,
    pub(crate) clock_offset: chrono::Duration,
    last_change: DateTime<Utc>,
    pub(crate) token_lifetime: Duration,
    /// Hash → token.
    pub(crate) tokens: HashMap<String, Token>,
    pub(crate) site_code: String,
    pub(crate) reporting_id: String,
    pub(crate) reporting_password: String,
    pub(crate) departments: BTreeMap<i32, Department>,
    pub(crate) customers: BTreeMap<i32, Customer>,
    pub(crate) employees: BTreeMap<i32, Employee>,
    pub(crate) projects: BTreeMap<i32, Project>,
    pub(crate) tasks: BTreeMap<i32, Task>,
    pub(crate) allocations: BTreeMap<i32, Allocation>,
    pub(crate) work: BTreeMap<Uuid, WorkUnit>,
    /// GUIDs of deleted units (never reusable).
    pub(crate) deleted: HashSet<Uuid>,
    pub(crate) changes: Vec<Change>,
    /// `(employee, ISO year, ISO week)`.
    pub(crate) closed_weeks: HashSet<(i32, i32, u32)>,
    next_work_id: i64,
}

impl TimelogState {
    fn new(seed: Seed) -> Self {
        let mut s = TimelogState {
            accounts: vec![ACCOUNT.to_owned()],
            faults: Faults::default(),
            requests: BTreeMap::new(),
            total_requests: 0,
            lost_answers: BTreeMap::new(),
            clock_offset: chrono::Duration::zero(),
            last_change: DateTime::<Utc>::MIN_UTC,
            token_lifetime: Duration::from_secs(12 * 3600),
            tokens: HashMap::new(),
            site_code: SITE_CODE.to_owned(),
            reporting_id: REPORTING_USERNAME.to_owned(),
            reporting_password: REPORTING_PASSWORD.to_owned(),
            departments: BTreeMap::new(),
            customers: BTreeMap::new(),
            employees: BTreeMap::new(),
            projects: BTreeMap::new(),
            tasks: BTreeMap::new(),
            allocations: BTreeMap::new(),
            work: BTreeMap::new(),
            deleted: HashSet::new(),
            changes: Vec::new(),
            closed_weeks: HashSet::new(),
            next_work_id: 90_000,
        };
        seed::base(&mut s);
        if seed == Seed::Demo {
            seed::demo(&mut s);
        }
        s
    }

    /// Whether the answer to this request of `op`, already applied, is to be lost: the status
    /// to answer instead (one of the requests [`TimelogControl::lose_next_answers`] queued).
    pub(crate) fn take_lost_answer(&mut self, op: &str) -> Option<axum::http::StatusCode> {
        let (left, status) = self.lost_answers.get_mut(op)?;
        if *left == 0 {
            return None;
        }
        *left -= 1;
        let status = axum::http::StatusCode::from_u16(*status)
            .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        if *left == 0 {
            self.lost_answers.remove(op);
        }
        Some(status)
    }

    /// The sandbox clock: real time plus the offset tests set.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.clock_offset
    }

    /// A change time strictly after the previous one, so the feed order is total.
    fn change_time(&mut self) -> DateTime<Utc> {
        let t = self
            .now()
            .max(self.last_change + chrono::Duration::microseconds(1));
        self.last_change = t;
        t
    }

    pub(crate) fn log(&mut self, action: Action, unit: &WorkUnit) {
        let at = self.change_time();
        self.log_at(action, unit, at);
    }

    pub(crate) fn log_at(&mut self, action: Action, unit: &WorkUnit, at: DateTime<Utc>) {
        self.last_change = self.last_change.max(at);
        self.changes.push(Change {
            action,
            at,
            unit: unit.clone(),
        });
    }

    /// Rows of the change log inside the 3-month history, oldest first.
    pub(crate) fn history(&self) -> impl Iterator<Item = &Change> {
        let now = self.now();
        let from = now
            .checked_sub_months(Months::new(3))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let mut rows: Vec<&Change> = self.changes.iter().filter(|c| c.at >= from).collect();
        rows.sort_by_key(|c| c.at);
        rows.into_iter()
    }

    pub(crate) fn issue_token(&mut self, initials: &str) -> (String, Token) {
        use sha2::{Digest, Sha256};
        let seed = format!("{initials}:{}:{}", Uuid::new_v4(), self.tokens.len());
        let hash: String = Sha256::digest(seed.as_bytes())
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        let lifetime = chrono::Duration::from_std(self.token_lifetime)
            .unwrap_or_else(|_| chrono::Duration::days(3650));
        let token = Token {
            initials: initials.to_owned(),
            expires: self.now() + lifetime,
        };
        self.tokens.insert(hash.clone(), token.clone());
        (hash, token)
    }

    /// The employee a valid token belongs to.
    pub(crate) fn check_token(&self, initials: &str, hash: &str) -> Option<i32> {
        let t = self.tokens.get(hash)?;
        if t.initials != initials || self.now() >= t.expires {
            return None;
        }
        self.employee_by_login(initials)
            .filter(|e| e.active())
            .map(|e| e.id)
    }

    /// By initials or user name, case-insensitively.
    pub(crate) fn employee_by_login(&self, login: &str) -> Option<&Employee> {
        let login = login.trim();
        self.employees.values().find(|e| {
            e.initials.eq_ignore_ascii_case(login) || e.username.eq_ignore_ascii_case(login)
        })
    }

    pub(crate) fn task_by_guid(&self, guid: Uuid) -> Option<&Task> {
        self.tasks.values().find(|t| t.guid == guid)
    }

    pub(crate) fn week_closed(&self, employee: i32, date: NaiveDate) -> bool {
        let w = date.iso_week();
        self.closed_weeks.contains(&(employee, w.year(), w.week()))
    }

    pub(crate) fn allocation_for(&self, employee: i32, task: i32) -> Option<&Allocation> {
        self.allocations
            .values()
            .find(|a| a.employee == employee && a.task == task)
    }

    /// WBS of a task: its 1-based place among its siblings, under its parent's WBS.
    pub(crate) fn wbs(&self, task: &Task) -> String {
        let mut siblings: Vec<&Task> = self
            .tasks
            .values()
            .filter(|t| t.project == task.project && t.parent == task.parent)
            .collect();
        siblings.sort_by_key(|t| (t.sort_order, t.id));
        let place = siblings
            .iter()
            .position(|t| t.id == task.id)
            .map_or(1, |p| p + 1);
        match task.parent.and_then(|p| self.tasks.get(&p)) {
            Some(parent) if parent.id != task.id => format!("{}.{place}", self.wbs(parent)),
            _ => place.to_string(),
        }
    }

    /// Ancestors then the task itself, root first.
    pub(crate) fn task_chain(&self, task: &Task) -> Vec<&Task> {
        let mut chain = vec![];
        let mut cur = self.tasks.get(&task.id);
        while let Some(t) = cur {
            if chain.len() > 50 {
                break;
            }
            chain.push(t);
            cur = t.parent.and_then(|p| self.tasks.get(&p));
        }
        chain.reverse();
        chain
    }

    pub(crate) fn is_parent(&self, task: i32) -> bool {
        self.tasks.values().any(|t| t.parent == Some(task))
    }

    pub(crate) fn next_task_id(&self) -> i32 {
        self.tasks.keys().next_back().map_or(4_800, |k| k + 1)
    }

    pub(crate) fn next_allocation_id(&self) -> i32 {
        self.allocations.keys().next_back().map_or(7_000, |k| k + 1)
    }

    /// Appends a task as the last item of its level in the project's WBS.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn add_task(
        &mut self,
        guid: Option<Uuid>,
        project: i32,
        parent: Option<i32>,
        name: &str,
        no: Option<&str>,
        by: i32,
        at: NaiveDateTime,
    ) -> i32 {
        let id = self.next_task_id();
        let sort_order = self
            .tasks
            .values()
            .filter(|t| t.project == project && t.parent == parent)
            .map(|t| t.sort_order)
            .max()
            .unwrap_or(0)
            + 1;
        let no = no.map(str::to_owned).unwrap_or_else(|| {
            let n = self.tasks.values().filter(|t| t.project == project).count();
            format!("{:04}", n + 1)
        });
        let (start, end) = self
            .projects
            .get(&project)
            .map_or((at.date(), at.date()), |p| (p.start, p.end));
        self.tasks.insert(
            id,
            Task {
                id,
                guid: guid.unwrap_or_else(Uuid::new_v4),
                project,
                parent,
                name: name.to_owned(),
                no,
                description: String::new(),
                link: String::new(),
                budget_hours: 0.0,
                budget_amount: 0.0,
                start,
                end,
                task_type: 12,
                status: 0,
                external_keys: Vec::new(),
                sort_order,
                created_at: at,
                created_by: by,
                modified_at: at,
                modified_by: by,
            },
        );
        id
    }

    pub(crate) fn add_allocation(&mut self, employee: i32, task: i32, hours: f64) -> i32 {
        let id = self.next_allocation_id();
        self.allocations.insert(
            id,
            Allocation {
                id,
                guid: Uuid::new_v4(),
                task,
                employee,
                hours,
            },
        );
        id
    }

    fn next_work_id(&mut self) -> i64 {
        self.next_work_id += 1;
        self.next_work_id
    }

    /// Stores a new work unit. `strict` applies the rules a user of the API meets (allocation,
    /// closed week, active task and employee); the control handle, acting as an administrator
    /// in TimeLog's own UI, only needs a known employee and task.
    pub(crate) fn insert_work(
        &mut self,
        input: &WorkInput,
        by: i32,
        strict: bool,
    ) -> Result<WorkUnit, String> {
        let guid = input
            .guid
            .filter(|g| !g.is_nil())
            .unwrap_or_else(Uuid::new_v4);
        if self.work.contains_key(&guid) || self.deleted.contains(&guid) {
            return Err(format!("A work unit with GUID {guid} already exists"));
        }
        let login = input
            .employee
            .as_deref()
            .filter(|e| !e.trim().is_empty())
            .ok_or("EmployeeInitials is required")?;
        let employee = self
            .employee_by_login(login)
            .ok_or_else(|| format!("Employee '{login}' does not exist"))?
            .clone();
        let task = self.resolve_task(input)?;
        let start = input.start.ok_or("StartDateTime is required")?;
        let seconds = match (input.seconds, input.end) {
            (Some(s), _) => s,
            (None, Some(end)) => (end - start).num_seconds(),
            (None, None) => return Err("Duration is required".into()),
        };
        if !(0..=86_400).contains(&seconds) {
            return Err("Duration must be between 0 and 24 hours".into());
        }
        let allocation = self.allocation_for(employee.id, task.id).map(|a| a.id);
        if strict {
            if !employee.active() {
                return Err(format!("Employee '{}' is not active", employee.initials));
            }
            if !task.active() {
                return Err(format!("Task {} is not active", task.id));
            }
            if allocation.is_none() {
                return Err(format!(
                    "Employee '{}' is not allocated to task {}",
                    employee.initials, task.id
                ));
            }
            if self.week_closed(employee.id, start.date()) {
                return Err(WEEK_CLOSED.into());
            }
        }
        let now = self.now().naive_utc();
        let approved = if self.week_closed(employee.id, start.date()) {
            10
        } else {
            0
        };
        let unit = WorkUnit {
            guid,
            id: self.next_work_id(),
            task: task.id,
            employee: employee.id,
            allocation: allocation.unwrap_or(0),
            start,
            seconds,
            billable_seconds: input.billable_seconds.unwrap_or(seconds),
            description: input.description.clone().unwrap_or_default(),
            additional_text: input.additional_text.clone(),
            approved,
            created_at: now,
            created_by: by,
            modified_at: now,
            modified_by: by,
            version: 1,
        };
        self.work.insert(guid, unit.clone());
        self.log(Action::Created, &unit);
        Ok(unit)
    }

    fn resolve_task(&self, input: &WorkInput) -> Result<Task, String> {
        if let Some(id) = input.task.filter(|&t| t > 0) {
            return self
                .tasks
                .get(&id)
                .cloned()
                .ok_or_else(|| format!("Task {id} does not exist"));
        }
        if let Some(g) = input.allocation_guid.filter(|g| !g.is_nil()) {
            let a = self
                .allocations
                .values()
                .find(|a| a.guid == g)
                .ok_or_else(|| format!("Allocation {g} does not exist"))?;
            return self
                .tasks
                .get(&a.task)
                .cloned()
                .ok_or_else(|| format!("Task {} does not exist", a.task));
        }
        Err("TaskID or AllocationGUID is required".into())
    }

    /// Applies the fields present in `input` to the live unit `guid`.
    pub(crate) fn update_work(
        &mut self,
        guid: Uuid,
        input: &WorkInput,
        by: i32,
        strict: bool,
    ) -> Result<WorkUnit, String> {
        let old = self
            .work
            .get(&guid)
            .cloned()
            .ok_or_else(|| format!("Work unit {guid} does not exist"))?;
        let mut unit = old.clone();
        if let Some(login) = input.employee.as_deref().filter(|e| !e.trim().is_empty()) {
            unit.employee = self
                .employee_by_login(login)
                .ok_or_else(|| format!("Employee '{login}' does not exist"))?
                .id;
        }
        if input.task.is_some_and(|t| t > 0) || input.allocation_guid.is_some_and(|g| !g.is_nil()) {
            unit.task = self.resolve_task(input)?.id;
        }
        if let Some(start) = input.start {
            unit.start = start;
        }
        match (input.seconds, input.end) {
            (Some(s), _) => unit.seconds = s,
            (None, Some(end)) => unit.seconds = (end - unit.start).num_seconds(),
            (None, None) => {}
        }
        if !(0..=86_400).contains(&unit.seconds) {
            return Err("Duration must be between 0 and 24 hours".into());
        }
        if let Some(d) = &input.description {
            unit.description = d.clone();
        }
        if let Some(t) = &input.additional_text {
            unit.additional_text = Some(t.clone());
        }
        unit.billable_seconds = match input.billable_seconds {
            Some(b) => b,
            // Billable time follows registered time unless the client set it apart.
            None if old.billable_seconds == old.seconds => unit.seconds,
            None => old.billable_seconds,
        };
        let allocation = self.allocation_for(unit.employee, unit.task).map(|a| a.id);
        if strict {
            if old.approved >= 20 {
                return Err(APPROVED.into());
            }
            if self.week_closed(old.employee, old.date())
                || self.week_closed(unit.employee, unit.date())
            {
                return Err(WEEK_CLOSED.into());
            }
            let task = self.tasks.get(&unit.task).cloned();
            if task.as_ref().is_some_and(|t| !t.active()) && unit.task != old.task {
                return Err(format!("Task {} is not active", unit.task));
            }
            if allocation.is_none() {
                let initials = self
                    .employees
                    .get(&unit.employee)
                    .map(|e| e.initials.clone())
                    .unwrap_or_default();
                return Err(format!(
                    "Employee '{initials}' is not allocated to task {}",
                    unit.task
                ));
            }
        }
        unit.allocation = allocation.unwrap_or(0);
        unit.modified_at = self.now().naive_utc();
        unit.modified_by = by;
        unit.version += 1;
        self.work.insert(guid, unit.clone());
        self.log(Action::Updated, &unit);
        Ok(unit)
    }

    /// Deletes a live unit; an unknown GUID is a success with nothing to do (`Ok(None)`).
    pub(crate) fn delete_work(
        &mut self,
        guid: Uuid,
        strict: bool,
    ) -> Result<Option<WorkUnit>, String> {
        let Some(unit) = self.work.get(&guid).cloned() else {
            return Ok(None);
        };
        if strict {
            if unit.approved >= 20 {
                return Err(APPROVED.into());
            }
            if self.week_closed(unit.employee, unit.date()) {
                return Err(WEEK_CLOSED.into());
            }
        }
        self.work.remove(&guid);
        self.deleted.insert(guid);
        self.log(Action::Deleted, &unit);
        Ok(Some(unit))
    }
}

/// A task, as a test sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelogTask {
    /// `TaskID`.
    pub id: i32,
    /// `ID` (lower-case hyphenated GUID).
    pub guid: String,
    /// `ProjectID` of its project.
    pub project_id: i32,
    /// Parent task's `TaskID`, for a sub-task.
    pub parent_id: Option<i32>,
    /// Name.
    pub name: String,
    /// Task number.
    pub no: String,
    /// WBS (`2.1`).
    pub wbs: String,
    /// Task Status enum (0 not started … 4 cancelled).
    pub status: i32,
    /// Active (status 0, 1 or 2).
    pub active: bool,
    /// Budget hours.
    pub budget_hours: f64,
    /// `(SystemName, ExternalID)` pairs.
    pub external_keys: Vec<(String, String)>,
}

/// A project, as a test sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelogProject {
    /// `ProjectID`.
    pub id: i32,
    /// `ProjectGUID`.
    pub guid: String,
    /// Name.
    pub name: String,
    /// Project number.
    pub no: String,
    /// Active.
    pub active: bool,
}

/// An employee (user), as a test sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelogEmployee {
    /// `EmployeeID`.
    pub id: i32,
    /// Initials.
    pub initials: String,
    /// User name.
    pub username: String,
    /// E-mail as stored (mixed case on purpose in the demo).
    pub email: String,
    /// Full name.
    pub name: String,
    /// Not terminated.
    pub active: bool,
}

/// An allocation (employee ↔ task), as a test sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelogAllocation {
    /// `AllocationID`.
    pub id: i32,
    /// `ID`.
    pub guid: String,
    /// `TaskID`.
    pub task_id: i32,
    /// `EmployeeID`.
    pub employee_id: i32,
    /// Hours allocated.
    pub hours: f64,
}

/// A live work unit (time registration), as a test sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelogWork {
    /// `GUID` / `WorkUnitGuid`.
    pub guid: String,
    /// `TaskID`.
    pub task_id: i32,
    /// Task GUID.
    pub task_guid: String,
    /// `EmployeeID`.
    pub employee_id: i32,
    /// Employee initials.
    pub initials: String,
    /// Registration date.
    pub date: NaiveDate,
    /// Registered time in whole minutes (rounded down).
    pub minutes: i64,
    /// Registered time in seconds.
    pub seconds: i64,
    /// Description (note).
    pub note: String,
    /// 0 open, 10 closed week, 20 approved.
    pub approved_status: i32,
}

fn guid_str(g: Uuid) -> String {
    g.hyphenated().to_string()
}

fn parse_guid(v: &str) -> Option<Uuid> {
    Uuid::parse_str(v.trim()).ok()
}

/// Handle to the TimeLog emulation: the site's data changed as a TimeLog user would (every
/// work change lands in the change feed), the sandbox clock, tokens, faults and request
/// counts. Cheap to clone; all clones share one state.
#[derive(Clone)]
pub struct TimelogControl {
    inner: Arc<Mutex<TimelogState>>,
}

impl std::fmt::Debug for TimelogControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimelogControl").finish_non_exhaustive()
    }
}

impl TimelogControl {
    pub(crate) fn new(seed: Seed) -> Self {
        TimelogControl {
            inner: Arc::new(Mutex::new(TimelogState::new(seed))),
        }
    }

    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut TimelogState) -> R) -> R {
        f(&mut lock(&self.inner))
    }

    /// The account names (URL path segments) the site answers under; the first is the main one.
    pub fn account_names(&self) -> Vec<String> {
        self.with(|s| s.accounts.clone())
    }

    /// Makes the site answer under another account name too.
    pub fn add_account_name(&self, name: &str) {
        self.with(|s| {
            if !s.accounts.iter().any(|a| a == name) {
                s.accounts.push(name.to_owned());
            }
        });
    }

    /// The sandbox clock (real time plus any offset set below). ActionDates, token expiry
    /// and the 3-month history use it.
    pub fn now(&self) -> DateTime<Utc> {
        self.with(|s| s.now())
    }

    /// Moves the sandbox clock so that it reads `t` now (and runs on from there).
    pub fn set_clock(&self, t: DateTime<Utc>) {
        self.with(|s| s.clock_offset = t - Utc::now());
    }

    /// Moves the sandbox clock by `d` (negative goes back). Change-log times stay strictly
    /// increasing even when the clock goes back.
    pub fn advance_clock(&self, d: chrono::Duration) {
        self.with(|s| s.clock_offset += d);
    }

    /// Lifetime of tokens issued from now on (default 12 hours).
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.with(|s| s.token_lifetime = lifetime);
    }

    /// Makes every token issued so far expired.
    pub fn expire_tokens(&self) {
        self.with(|s| {
            let past = s.now() - chrono::Duration::seconds(1);
            s.tokens.values_mut().for_each(|t| t.expires = past);
        });
    }

    /// Tokens issued so far (expired ones included).
    pub fn token_count(&self) -> usize {
        self.with(|s| s.tokens.len())
    }

    /// Changes a user's Transactional password (`None`: cannot log in). Answers whether the
    /// initials exist.
    pub fn set_password(&self, initials: &str, password: Option<&str>) -> bool {
        self.with(|s| {
            let id = s.employee_by_login(initials).map(|e| e.id);
            id.and_then(|id| s.employees.get_mut(&id))
                .map(|e| e.password = password.map(str::to_owned))
                .is_some()
        })
    }

    /// Replaces the Reporting API credentials (site code, API ID, API password).
    pub fn set_reporting_credentials(&self, site_code: &str, api_id: &str, api_password: &str) {
        self.with(|s| {
            s.site_code = site_code.to_owned();
            s.reporting_id = api_id.to_owned();
            s.reporting_password = api_password.to_owned();
        });
    }

    /// The next `n` requests (any service) answer `status` with a SOAP fault body instead of
    /// being served. Replaces any failure queued before.
    pub fn fail_next(&self, n: u32, status: u16) {
        self.with(|s| s.faults.fail_next(n, status));
    }

    /// The next `n` requests of `operation` (ProjectManagement: `InsertWork`, `UpdateWork`, …;
    /// Reporting: `GetWorkUnitsRaw`, …) are applied as usual, and then answered with `status` and a plain-text body (no SOAP)
    /// instead of their answer: what a client sees when TimeLog did the work but the answer was
    /// lost (a gateway timeout, a proxy's 502). Replaces what was queued for that operation before.
    pub fn lose_next_answers(&self, operation: &str, n: u32, status: u16) {
        self.with(|s| {
            s.lost_answers.insert(operation.to_owned(), (n, status));
        });
    }

    /// Sleeps this long before answering each request.
    pub fn set_latency(&self, latency: Duration) {
        self.with(|s| s.faults.latency = latency);
    }

    /// Requests whose body named `operation` (`GetToken`, `InsertWork`, `GetWorkUnitsRaw`,
    /// …), whatever they answered.
    pub fn request_count(&self, operation: &str) -> u64 {
        self.with(|s| s.requests.get(operation).copied().unwrap_or(0))
    }

    /// Every request received by the TimeLog routes (405/415/404s and faults included).
    pub fn total_request_count(&self) -> u64 {
        self.with(|s| s.total_requests)
    }

    /// Adds an employee (active, department Delivery, no password) and answers its
    /// `EmployeeID`.
    pub fn add_employee(
        &self,
        first_name: &str,
        last_name: &str,
        initials: &str,
        email: &str,
    ) -> i32 {
        self.with(|s| seed::employee(s, first_name, last_name, initials, email))
    }

    /// Terminates an employee today (Reporting status 0, no more logins or registrations).
    pub fn terminate_employee(&self, employee_id: i32) -> bool {
        self.with(|s| {
            let today = s.now().date_naive();
            s.employees
                .get_mut(&employee_id)
                .map(|e| e.terminated = Some(today))
                .is_some()
        })
    }

    /// Adds an active project (customer "Fjordkraft Digital AS", managed by the sync user,
    /// running from 120 days ago to 240 days ahead, number `P26.{id}`) and answers its
    /// `ProjectID`. For tests and benchmarks that need more projects than the seed has.
    pub fn add_project(&self, name: &str) -> i32 {
        self.with(|s| {
            let id = s
                .projects
                .keys()
                .next_back()
                .map_or(700, |k| k + 1)
                .max(700);
            let now = s.now().naive_utc();
            let today = now.date();
            s.projects.insert(
                id,
                Project {
                    id,
                    guid: Uuid::new_v4(),
                    name: name.to_owned(),
                    no: format!("P26.{id}"),
                    customer: 301,
                    active: true,
                    start: today - chrono::Duration::days(120),
                    end: today + chrono::Duration::days(240),
                    manager: seed::SYNC_ID,
                    department: 20,
                    type_name: "Time and material".into(),
                    category_name: "Customer projects".into(),
                    created_at: now,
                },
            );
            id
        })
    }

    /// Adds a task as the last item of `project_id`'s WBS (under `parent_id` if given) and
    /// answers its GUID; `None` for an unknown project or parent.
    pub fn add_task(&self, project_id: i32, parent_id: Option<i32>, name: &str) -> Option<String> {
        self.with(|s| {
            if !s.projects.contains_key(&project_id)
                || parent_id
                    .is_some_and(|p| s.tasks.get(&p).is_none_or(|t| t.project != project_id))
            {
                return None;
            }
            let at = s.now().naive_utc();
            let id = s.add_task(None, project_id, parent_id, name, None, seed::SYNC_ID, at);
            s.tasks.get(&id).map(|t| guid_str(t.guid))
        })
    }

    /// Allocates an employee to a task as TimeLog's UI would (no duplicate when one exists);
    /// answers the `AllocationID`, `None` for unknown ids.
    pub fn allocate(&self, employee_id: i32, task_id: i32) -> Option<i32> {
        self.with(|s| {
            if !s.employees.contains_key(&employee_id) || !s.tasks.contains_key(&task_id) {
                return None;
            }
            Some(match s.allocation_for(employee_id, task_id) {
                Some(a) => a.id,
                None => s.add_allocation(employee_id, task_id, 0.0),
            })
        })
    }

    /// Registers time as the user `initials` would in TimeLog (logged as `Created` in the
    /// change feed at the sandbox clock) and answers its GUID. The UI's own rules are not
    /// applied (this is test set-up); `None` for unknown initials or task GUID.
    pub fn register_work(
        &self,
        initials: &str,
        task_guid: &str,
        date: NaiveDate,
        minutes: u32,
        note: &str,
    ) -> Option<String> {
        self.with(|s| {
            let task = s.task_by_guid(parse_guid(task_guid)?)?.id;
            let by = s.employee_by_login(initials)?.id;
            let input = WorkInput {
                task: Some(task),
                employee: Some(initials.to_owned()),
                seconds: Some(i64::from(minutes) * 60),
                start: date.and_hms_opt(9, 0, 0),
                description: Some(note.to_owned()),
                ..WorkInput::default()
            };
            s.insert_work(&input, by, false)
                .ok()
                .map(|u| guid_str(u.guid))
        })
    }

    /// Changes a registration's time and note as its user would (`Updated` in the feed).
    /// Answers whether it exists.
    pub fn edit_work(&self, guid: &str, minutes: u32, note: &str) -> bool {
        self.with(|s| {
            let Some(g) = parse_guid(guid) else {
                return false;
            };
            let by = s.work.get(&g).map(|u| u.employee).unwrap_or(seed::SYNC_ID);
            let input = WorkInput {
                seconds: Some(i64::from(minutes) * 60),
                description: Some(note.to_owned()),
                ..WorkInput::default()
            };
            s.update_work(g, &input, by, false).is_ok()
        })
    }

    /// Moves a registration to another date (`Updated` in the feed).
    pub fn move_work(&self, guid: &str, date: NaiveDate) -> bool {
        self.with(|s| {
            let Some(g) = parse_guid(guid) else {
                return false;
            };
            let Some(unit) = s.work.get(&g) else {
                return false;
            };
            let by = unit.employee;
            let input = WorkInput {
                start: Some(date.and_time(unit.start.time())),
                ..WorkInput::default()
            };
            s.update_work(g, &input, by, false).is_ok()
        })
    }

    /// Deletes a registration as its user would (`Deleted` in the feed). Answers whether it
    /// existed.
    pub fn delete_work(&self, guid: &str) -> bool {
        self.with(|s| {
            parse_guid(guid)
                .and_then(|g| s.delete_work(g, false).ok().flatten())
                .is_some()
        })
    }

    /// Closes the ISO week (Monday–Sunday) containing `date` for the employee: registrations
    /// in it get ApprovedStatus 10 and API writes to it fail per item. `false` for unknown
    /// initials.
    pub fn close_week(&self, initials: &str, date: NaiveDate) -> bool {
        self.with(|s| {
            let Some(emp) = s.employee_by_login(initials).map(|e| e.id) else {
                return false;
            };
            let w = date.iso_week();
            s.closed_weeks.insert((emp, w.year(), w.week()));
            for u in s.work.values_mut() {
                if u.employee == emp && u.date().iso_week() == w {
                    u.approved = u.approved.max(10);
                }
            }
            true
        })
    }

    /// Opens a closed week again (registrations in it back to ApprovedStatus 0 unless approved).
    pub fn reopen_week(&self, initials: &str, date: NaiveDate) -> bool {
        self.with(|s| {
            let Some(emp) = s.employee_by_login(initials).map(|e| e.id) else {
                return false;
            };
            let w = date.iso_week();
            s.closed_weeks.remove(&(emp, w.year(), w.week()));
            for u in s.work.values_mut() {
                if u.employee == emp && u.date().iso_week() == w && u.approved == 10 {
                    u.approved = 0;
                }
            }
            true
        })
    }

    /// Approves a registration (ApprovedStatus 20): API updates and deletes of it fail per item.
    pub fn approve(&self, guid: &str) -> bool {
        self.with(|s| {
            parse_guid(guid)
                .and_then(|g| s.work.get_mut(&g))
                .map(|u| u.approved = 20)
                .is_some()
        })
    }

    /// Every project.
    pub fn projects(&self) -> Vec<TimelogProject> {
        self.with(|s| {
            s.projects
                .values()
                .map(|p| TimelogProject {
                    id: p.id,
                    guid: guid_str(p.guid),
                    name: p.name.clone(),
                    no: p.no.clone(),
                    active: p.active,
                })
                .collect()
        })
    }

    /// Every employee.
    pub fn employees(&self) -> Vec<TimelogEmployee> {
        self.with(|s| {
            s.employees
                .values()
                .map(|e| TimelogEmployee {
                    id: e.id,
                    initials: e.initials.clone(),
                    username: e.username.clone(),
                    email: e.email.clone(),
                    name: e.full_name(),
                    active: e.active(),
                })
                .collect()
        })
    }

    /// Every task, by `TaskID`.
    pub fn tasks(&self) -> Vec<TimelogTask> {
        self.with(|s| {
            s.tasks
                .values()
                .map(|t| TimelogTask {
                    id: t.id,
                    guid: guid_str(t.guid),
                    project_id: t.project,
                    parent_id: t.parent,
                    name: t.name.clone(),
                    no: t.no.clone(),
                    wbs: s.wbs(t),
                    status: t.status,
                    active: t.active(),
                    budget_hours: t.budget_hours,
                    external_keys: t.external_keys.clone(),
                })
                .collect()
        })
    }

    /// The task with this GUID.
    pub fn task(&self, guid: &str) -> Option<TimelogTask> {
        let g = parse_guid(guid)?;
        self.tasks()
            .into_iter()
            .find(|t| parse_guid(&t.guid) == Some(g))
    }

    /// Every allocation, by `AllocationID` (duplicates included).
    pub fn allocations(&self) -> Vec<TimelogAllocation> {
        self.with(|s| {
            s.allocations
                .values()
                .map(|a| TimelogAllocation {
                    id: a.id,
                    guid: guid_str(a.guid),
                    task_id: a.task,
                    employee_id: a.employee,
                    hours: a.hours,
                })
                .collect()
        })
    }

    /// How many allocations tie this employee to this task (2 after a duplicate
    /// `AddEmployeeToTask`).
    pub fn allocation_count(&self, employee_id: i32, task_id: i32) -> usize {
        self.with(|s| {
            s.allocations
                .values()
                .filter(|a| a.employee == employee_id && a.task == task_id)
                .count()
        })
    }

    /// Live work units, by GUID.
    pub fn work(&self) -> Vec<TimelogWork> {
        self.with(|s| {
            s.work
                .values()
                .map(|u| TimelogWork {
                    guid: guid_str(u.guid),
                    task_id: u.task,
                    task_guid: s
                        .tasks
                        .get(&u.task)
                        .map(|t| guid_str(t.guid))
                        .unwrap_or_default(),
                    employee_id: u.employee,
                    initials: s
                        .employees
                        .get(&u.employee)
                        .map(|e| e.initials.clone())
                        .unwrap_or_default(),
                    date: u.date(),
                    minutes: u.seconds / 60,
                    seconds: u.seconds,
                    note: u.description.clone(),
                    approved_status: u.approved,
                })
                .collect()
        })
    }

    /// Rows in the change log, whole history (older than 3 months included).
    pub fn change_count(&self) -> usize {
        self.with(|s| s.changes.len())
    }
}
