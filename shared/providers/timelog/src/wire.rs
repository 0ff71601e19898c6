//! TimeLog's SOAP contracts: envelopes we send and the parts of answers we read.
//!
//! Names, namespaces and SOAPActions are those of the WSDL-generated contracts in TimeLog's
//! SDK (`SecurityService/Reference.cs`, `ProjectManagementService/Reference.cs` V1_8,
//! `ReportingAPI.SDK/Reference.cs`). WCF's DataContractSerializer reads members **in order**
//! (base-class members first, then by `Order`, then alphabetically) and silently skips members
//! out of order, so envelopes are written in contract order. Answers are read by local name,
//! whatever the order and prefixes.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use crate::xml::{self, Node, XmlError, XmlOut};

/// Security service namespace (operation wrappers and its `SecurityToken`).
pub const SECURITY_NS: &str = "http://www.timelog.com/api/tlp/v1_2";
/// ProjectManagement V1_8 service namespace (operation wrappers and parameters).
pub const PM_NS: &str = "http://www.timelog.com/api/tlp/v1_8";
/// Namespace of the `SecurityToken` ProjectManagement V1_8 expects.
pub const PM_TOKEN_NS: &str = "http://www.timelog.com/api/tlp/v1_3";
/// Namespace of `Task`, `WorkUnit`, `WorkUnitFlat`, `ProjectHeader`, `Allocation`.
pub const TLP_V1_7: &str = "http://www.timelog.com/api/tlp/v1_7";
/// Namespace of `APIBaseExtended` members (`Action`, `ExternalKeys`) and response wrappers.
pub const API_NS: &str = "http://api.timelog.com";
/// Namespace of serialized primitive arrays (`guid[]`).
pub const ARRAYS_NS: &str = "http://schemas.microsoft.com/2003/10/Serialization/Arrays";
/// Reporting API service namespace.
pub const REPORTING_NS: &str = "http://www.timelog.com/ws/tlp/v4_4";

/// SOAPAction of `SecurityService.GetToken`.
pub const GET_TOKEN_ACTION: &str = "GetTokenRequest";

/// A ProjectManagement V1_8 operation: its wrapper name and SOAPAction (older operations use
/// short `<Name>Request` actions, newer ones the full URI; both from the WSDL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PmOp {
    /// Operation (wrapper element) name.
    pub name: &'static str,
    /// SOAPAction header value.
    pub action: &'static str,
}

/// ProjectManagement operations we call.
pub mod ops {
    use super::PmOp;

    /// `InsertWork(WorkUnit[], source, token)`.
    pub const INSERT_WORK: PmOp = PmOp {
        name: "InsertWork",
        action: "InsertWorkRequest",
    };
    /// `UpdateWork(WorkUnit[], source, token)`.
    pub const UPDATE_WORK: PmOp = PmOp {
        name: "UpdateWork",
        action: "UpdateWorkRequest",
    };
    /// `DeleteWork(Guid[], source, token)`.
    pub const DELETE_WORK: PmOp = PmOp {
        name: "DeleteWork",
        action: "DeleteWorkRequest",
    };
    /// `GetWorkChangesPaged(initials, registrationStartDate, registrationEndDate,
    /// changeStartDate, changeEndDate, page, pageSize, token)`.
    pub const GET_WORK_CHANGES_PAGED: PmOp = PmOp {
        name: "GetWorkChangesPaged",
        action: "http://www.timelog.com/api/tlp/v1_8/ProjectManagementService/GetWorkChangesPaged",
    };
    /// `GetProjects(customerID, projectManagerID, includeInactiveProjects, statusID, token)`.
    pub const GET_PROJECTS: PmOp = PmOp {
        name: "GetProjects",
        action: "GetProjectsRequest",
    };
    /// `CreateTask(task, projectID, token)`.
    pub const CREATE_TASK: PmOp = PmOp {
        name: "CreateTask",
        action: "CreateTaskRequest",
    };
    /// `UpdateTask(task, projectID, token)`.
    pub const UPDATE_TASK: PmOp = PmOp {
        name: "UpdateTask",
        action: "UpdateTaskRequest",
    };
    /// `GetTaskById(taskGuid, token)` (not `GetTaskByID`, which takes the int id).
    pub const GET_TASK_BY_ID: PmOp = PmOp {
        name: "GetTaskById",
        action: "http://www.timelog.com/api/tlp/v1_8/ProjectManagementService/GetTaskById",
    };
    /// `GetTaskByExternalKey(key, systemName, token)`.
    pub const GET_TASK_BY_EXTERNAL_KEY: PmOp = PmOp {
        name: "GetTaskByExternalKey",
        action: "GetTaskByExternalKeyRequest",
    };
    /// `ChangeTaskStatus(taskGuid, targetStatus, token)`.
    pub const CHANGE_TASK_STATUS: PmOp = PmOp {
        name: "ChangeTaskStatus",
        action: "ChangeTaskStatusRequest",
    };
    /// `GetAllocationsToEmployee(initials, token)`.
    pub const GET_ALLOCATIONS_TO_EMPLOYEE: PmOp = PmOp {
        name: "GetAllocationsToEmployee",
        action: "GetAllocationsToEmployeeRequest",
    };
    /// `AddEmployeeToTask(employeeID, taskID, BudgetHours, token)`.
    pub const ADD_EMPLOYEE_TO_TASK: PmOp = PmOp {
        name: "AddEmployeeToTask",
        action: "AddEmployeeToTaskRequest",
    };
}

/// The SOAPAction of Reporting method `method`.
pub fn reporting_action(method: &str) -> String {
    format!("{REPORTING_NS}/{method}")
}

/// A security token as GetToken returned it. The values are passed on unmodified (TimeLog
/// asks for that), `Expires` included, as the string it came as.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    /// Initials of the token's user.
    pub initials: String,
    /// Expiry, as TimeLog wrote it.
    pub expires: String,
    /// The token hash (a credential: never logged).
    pub hash: String,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("initials", &self.initials)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

impl Token {
    /// When the token stops working: `Expires` read as RFC 3339, or, without an offset, as
    /// UTC (TimeLog documents no zone; UNCONFIRMED). `None` when unreadable.
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        parse_instant(&self.expires)
    }
}

/// Reads a WCF `DateTime`: with an offset when it has one, else as UTC (TimeLog documents no
/// time zone for its DateTimes; UNCONFIRMED).
pub fn parse_instant(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|n| n.and_utc())
}

/// The day of a WCF `DateTime` (`2026-05-20T00:00:00`) or a plain date.
pub fn parse_day(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    NaiveDate::parse_from_str(s.get(..10)?, "%Y-%m-%d").ok()
}

/// How we write a `DateTime` parameter: no offset, microseconds.
pub fn format_instant(t: DateTime<Utc>) -> String {
    // Sub-second precision: a window ending at whole seconds would leave out changes made in
    // its last second until the next read's overlap picks them up.
    t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

/// An `xs:duration` for whole minutes, as .NET writes a `TimeSpan` (`PT1H30M`).
pub fn duration(minutes: u32) -> String {
    format!("PT{}H{}M", minutes / 60, minutes % 60)
}

/// `GetToken(user, password)`.
pub fn get_token_envelope(user: &str, password: &str) -> Vec<u8> {
    xml::envelope(|w| {
        w.open("GetToken", &[("xmlns", SECURITY_NS)]);
        w.leaf("user", user).leaf("password", password);
        w.close("GetToken");
    })
}

/// Writes a ProjectManagement operation: the wrapper in [`PM_NS`], `params` (unprefixed, so
/// in [`PM_NS`] too), then `token` re-namespaced into [`PM_TOKEN_NS`] (the Security service's
/// token type lives in v1_2, ProjectManagement V1_8 expects v1_3: the three values are copied).
pub fn pm_envelope(op: PmOp, token: &Token, params: impl FnOnce(&mut XmlOut)) -> Vec<u8> {
    xml::envelope(|w| {
        w.open(op.name, &[("xmlns", PM_NS)]);
        params(w);
        w.open("token", &[("xmlns:t", PM_TOKEN_NS)]);
        w.leaf("t:Initials", &token.initials)
            .leaf("t:Expires", &token.expires)
            .leaf("t:Hash", &token.hash);
        w.close("token");
        w.close(op.name);
    })
}

/// A work unit to write (`WorkUnit`, namespace v1_7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkUnitOut {
    /// The registration's GUID.
    pub guid: String,
    /// TimeLog's int task id.
    pub task_id: i64,
    /// Employee initials (or username).
    pub initials: String,
    /// Minutes.
    pub minutes: u32,
    /// Start of the registration (we use 08:00 of its day).
    pub start: NaiveDateTime,
    /// Description (the host note).
    pub description: String,
}

/// Writes `<work>` with work units in contract order (`GUID`, `AllocationGUID` skipped since
/// `TaskID` is set, `TaskID`, `EmployeeInitials`, `Duration`, `StartDateTime`, `EndDateTime`,
/// `Description`).
pub fn write_work_units(w: &mut XmlOut, units: &[WorkUnitOut]) {
    w.open("work", &[]);
    for u in units {
        let end = u.start + chrono::Duration::minutes(i64::from(u.minutes));
        w.open("w:WorkUnit", &[("xmlns:w", TLP_V1_7)]);
        w.leaf("w:GUID", &u.guid)
            .leaf("w:TaskID", &u.task_id.to_string())
            .leaf("w:EmployeeInitials", &u.initials)
            .leaf("w:Duration", &duration(u.minutes))
            .leaf(
                "w:StartDateTime",
                &u.start.format("%Y-%m-%dT%H:%M:%S").to_string(),
            )
            .leaf(
                "w:EndDateTime",
                &end.format("%Y-%m-%dT%H:%M:%S").to_string(),
            )
            .leaf("w:Description", &u.description);
        w.close("w:WorkUnit");
    }
    w.close("work");
}

/// Writes `<work>` as a `guid[]` (DeleteWork).
pub fn write_guid_array(w: &mut XmlOut, guids: &[&str]) {
    w.open("work", &[("xmlns:arr", ARRAYS_NS)]);
    for g in guids {
        w.leaf("arr:guid", g);
    }
    w.close("work");
}

/// A task to create (`Task`, members of `APIBaseExtended` first, in [`API_NS`], then the
/// task's own in v1_7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskOut {
    /// The GUID we chose for it.
    pub guid: String,
    /// Name.
    pub name: String,
    /// Active.
    pub active: bool,
    /// Our key, stored as an external key.
    pub external_key: String,
    /// The external system name.
    pub system_name: String,
}

/// Writes `<task>` for CreateTask: `Action = Created`, the external key loaded, `TaskID = -1`
/// (TimeLog assigns it, as in the SDK sample), `ProjectSubContractID = 0` (inherit the
/// project's default contract). Dates, number and task type are left to TimeLog's defaults
/// (the SDK sample sets a site-specific `TaskTypeID`; whether one is required is UNCONFIRMED).
pub fn write_new_task(w: &mut XmlOut, t: &TaskOut) {
    w.open("task", &[("xmlns:a", API_NS), ("xmlns:k", TLP_V1_7)]);
    w.leaf("a:Action", "Created")
        .leaf("a:IsCustomFieldsLoaded", "false")
        .leaf("a:IsExternalKeysLoaded", "true");
    w.open("a:ExternalKeys", &[]);
    w.open("a:ExternalSystemContext", &[]);
    w.leaf("a:SystemName", &t.system_name)
        .leaf("a:ExternalID", &t.external_key);
    w.close("a:ExternalSystemContext");
    w.close("a:ExternalKeys");
    w.leaf("k:ID", &t.guid)
        .leaf("k:TaskID", "-1")
        .leaf("k:Name", &t.name)
        .leaf("k:ProjectSubContractID", "0");
    w.open("k:State", &[]);
    w.leaf("k:IsActive", if t.active { "true" } else { "false" });
    w.close("k:State");
    w.close("task");
}

/// A `Reporting` call: the method wrapper in [`REPORTING_NS`] with the three credentials first,
/// then `params` in order.
pub fn reporting_envelope(
    method: &str,
    site_code: &str,
    api_id: &str,
    api_password: &str,
    params: &[(&str, String)],
) -> Vec<u8> {
    xml::envelope(|w| {
        w.open(method, &[("xmlns", REPORTING_NS)]);
        w.leaf("siteCode", site_code)
            .leaf("apiID", api_id)
            .leaf("apiPassword", api_password);
        for (k, v) in params {
            w.leaf(k, v);
        }
        w.close(method);
    })
}

/// What a Transactional answer said, before its `Return` is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `ResponseState` is `Success`: the `...Result` element.
    Success(Node),
    /// Any other `ResponseState`.
    Refused {
        /// The state (`Error`, `Invalid`, `NotSet`, ...).
        state: String,
        /// The messages, each `ErrorCode Message`, joined with `; `.
        messages: String,
    },
}

impl Answer {
    /// Whether a refusal is about the token or authentication (TimeLog's real codes are
    /// UNCONFIRMED: messages mentioning "token" or "authenticat" are taken as such).
    pub fn is_auth_failure(&self) -> bool {
        match self {
            Self::Success(_) => false,
            Self::Refused { messages, .. } => is_auth_message(messages),
        }
    }
}

/// Whether a message is about the token or authentication.
pub fn is_auth_message(m: &str) -> bool {
    let m = m.to_lowercase();
    m.contains("token") || m.contains("authenticat")
}

/// Reads the `{op}Response/{op}Result` of a SOAP answer and its `ResponseState`.
pub fn read_answer(body: &[u8], op: &str) -> Result<Answer, XmlError> {
    let root = xml::parse(body)?;
    let response = xml::soap_body_child(&root)?;
    if response.name != format!("{op}Response") {
        return Err(XmlError(format!(
            "expected {op}Response, got {}",
            response.name
        )));
    }
    let result = response
        .child(&format!("{op}Result"))
        .ok_or_else(|| XmlError(format!("{op}Response without {op}Result")))?;
    let state = result.text_of("ResponseState").unwrap_or("NotSet");
    if state == "Success" {
        return Ok(Answer::Success(result.clone()));
    }
    Ok(Answer::Refused {
        state: state.to_owned(),
        messages: messages(result),
    })
}

/// The `Messages` of a result, each `ErrorCode Message` (as the SDK joins them).
pub fn messages(result: &Node) -> String {
    let Some(ms) = result.child("Messages") else {
        return String::new();
    };
    ms.children
        .iter()
        .map(|m| {
            let text = m.text_of("Message").unwrap_or("");
            match m.text_of("ErrorCode").filter(|c| *c != "0") {
                Some(code) => format!("{code} {text}"),
                None => text.to_owned(),
            }
        })
        .filter(|s| !s.trim().is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The elements of a result's `Return` array.
pub fn returned(result: &Node) -> Vec<&Node> {
    match result.child("Return") {
        Some(r) if !r.is_nil() => r.children.iter().collect(),
        _ => Vec::new(),
    }
}

/// One container of a batch answer (`BatchContainerOf<T>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchItem<'a> {
    /// The item, when TimeLog returned one.
    pub item: Option<&'a Node>,
    /// Its `Status` (`Success`, `Error`, ...).
    pub status: String,
    /// Its `Message`.
    pub message: String,
}

impl BatchItem<'_> {
    /// Whether the item succeeded.
    pub fn ok(&self) -> bool {
        self.status == "Success"
    }
}

/// The containers of a batch answer's `Return`.
pub fn batch_items(result: &Node) -> Vec<BatchItem<'_>> {
    returned(result)
        .into_iter()
        .map(|c| BatchItem {
            item: c.child("Item").filter(|i| !i.is_nil()),
            status: c.text_of("Status").unwrap_or("NotSet").to_owned(),
            message: c.raw_text_of("Message").trim().to_owned(),
        })
        .collect()
}

/// The token of a GetToken `Result` (`Return[0]`).
pub fn token(result: &Node) -> Option<Token> {
    let t = returned(result).into_iter().next()?;
    Some(Token {
        initials: t.text_of("Initials")?.to_owned(),
        expires: t.text_of("Expires")?.to_owned(),
        hash: t.text_of("Hash")?.to_owned(),
    })
}

/// Normalises a GUID: trimmed, lowercase.
pub fn guid(s: &str) -> String {
    s.trim().to_ascii_lowercase()
}

/// Whether a GUID is missing or all zeros (`Guid.Empty`).
pub fn is_empty_guid(s: Option<&str>) -> bool {
    s.is_none_or(|g| g.chars().all(|c| c == '0' || c == '-' || c.is_whitespace()))
}

/// A `WorkUnitFlat` row of a change feed.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkUnitFlat {
    /// `Created`, `Updated`, `Deleted` (the literals are UNCONFIRMED).
    pub action: String,
    /// When the change was made.
    pub action_date: Option<DateTime<Utc>>,
    /// Day of the registration.
    pub date: Option<NaiveDate>,
    /// Employee initials.
    pub employee_initials: Option<String>,
    /// Hours.
    pub hours: f64,
    /// Project GUID (lowercase), `None` when empty.
    pub project_guid: Option<String>,
    /// Task GUID (lowercase), `None` when empty.
    pub task_guid: Option<String>,
    /// The user's id (Reporting `EmployeeUserId`), 0 when unknown.
    pub user_id: i64,
    /// The registration's GUID (lowercase).
    pub work_unit_guid: String,
}

fn nonzero_guid(n: &Node, name: &str) -> Option<String> {
    let g = n.text_of(name);
    (!is_empty_guid(g)).then(|| guid(g.unwrap_or_default()))
}

/// Reads a `WorkUnitFlat`; `None` without a `WorkUnitGuid`.
pub fn work_unit_flat(n: &Node) -> Option<WorkUnitFlat> {
    Some(WorkUnitFlat {
        action: n.text_of("Action").unwrap_or("").to_owned(),
        action_date: n.text_of("ActionDate").and_then(parse_instant),
        date: n.text_of("Date").and_then(parse_day),
        employee_initials: n.text_of("EmployeeInitials").map(str::to_owned),
        hours: n
            .text_of("Hours")
            .and_then(|h| h.parse().ok())
            .unwrap_or(0.0),
        project_guid: nonzero_guid(n, "ProjectGuid"),
        task_guid: nonzero_guid(n, "TaskGuid"),
        user_id: n
            .text_of("UserId")
            .and_then(|u| u.parse().ok())
            .unwrap_or(0),
        work_unit_guid: nonzero_guid(n, "WorkUnitGuid")?,
    })
}

/// The parts of a `Task` we read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskIn {
    /// GUID (lowercase).
    pub guid: String,
    /// Int id.
    pub task_id: i64,
    /// Name.
    pub name: String,
    /// `State/IsActive`.
    pub active: bool,
    /// `Details/ProjectHeader/ID`, when present.
    pub project_id: Option<i64>,
}

/// Reads a `Task`.
pub fn task(n: &Node) -> Option<TaskIn> {
    Some(TaskIn {
        guid: guid(n.text_of("ID")?),
        task_id: n.text_of("TaskID")?.parse().ok()?,
        name: n.raw_text_of("Name").to_owned(),
        active: n
            .path(&["State"])
            .and_then(|s| s.text_of("IsActive"))
            .is_none_or(|a| a == "true"),
        project_id: n
            .path(&["Details", "ProjectHeader"])
            .and_then(|p| p.text_of("ID"))
            .and_then(|i| i.parse().ok()),
    })
}

/// A `ProjectHeader`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectHeader {
    /// Int id.
    pub id: i64,
    /// GUID (lowercase).
    pub guid: String,
    /// Name.
    pub name: String,
    /// Number.
    pub no: Option<String>,
    /// Active.
    pub active: bool,
}

/// Reads a `ProjectHeader`.
pub fn project_header(n: &Node) -> Option<ProjectHeader> {
    Some(ProjectHeader {
        id: n.text_of("ID")?.parse().ok()?,
        guid: guid(n.text_of("ProjectGUID").unwrap_or_default()),
        name: n.raw_text_of("Name").trim().to_owned(),
        no: n.text_of("No").map(str::to_owned),
        active: n.text_of("IsActive").is_none_or(|a| a == "true"),
    })
}

/// The int task id of an `Allocation`.
pub fn allocation_task_id(n: &Node) -> Option<i64> {
    n.text_of("TaskID")?.parse().ok()
}

/// The `{method}Result` of a Reporting answer.
pub fn reporting_result(body: &[u8], method: &str) -> Result<Node, XmlError> {
    let root = xml::parse(body)?;
    let response = xml::soap_body_child(&root)?;
    if response.name != format!("{method}Response") {
        return Err(XmlError(format!(
            "expected {method}Response, got {}",
            response.name
        )));
    }
    response
        .child(&format!("{method}Result"))
        .cloned()
        .ok_or_else(|| XmlError(format!("{method}Response without {method}Result")))
}

/// The rows (`item` elements) of a Reporting list (`<tlp:Employees>` / `<tlp:WorkUnits>`),
/// which may be the result itself or its child; none when `resultEmpty="true"`.
pub fn reporting_rows<'a>(result: &'a Node, list: &str, item: &'a str) -> Vec<&'a Node> {
    let list_node = if result.name == list {
        Some(result)
    } else {
        result.child(list)
    };
    match list_node {
        Some(l) if l.attr("resultEmpty") != Some("true") => l.children_named(item).collect(),
        _ => Vec::new(),
    }
}

/// A Reporting `Employee`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Employee {
    /// Employee id (attribute `ID`).
    pub id: i64,
    /// `EmployeeUserId` (what change rows call `UserId`), 0 when missing.
    pub user_id: i64,
    /// Initials.
    pub initials: String,
    /// Full name.
    pub full_name: String,
    /// E-mail, as stored.
    pub email: Option<String>,
    /// Username.
    pub username: Option<String>,
    /// `Status == 1`.
    pub active: bool,
}

/// Reads a Reporting `Employee`.
pub fn employee(n: &Node) -> Option<Employee> {
    let first = n.text_of("FirstName").unwrap_or("");
    let last = n.text_of("LastName").unwrap_or("");
    Some(Employee {
        id: n.attr("ID")?.trim().parse().ok()?,
        user_id: n
            .text_of("EmployeeUserId")
            .and_then(|u| u.parse().ok())
            .unwrap_or(0),
        initials: n.text_of("Initials").unwrap_or("").to_owned(),
        full_name: n
            .text_of("FullName")
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{first} {last}").trim().to_owned()),
        email: n.text_of("Email").map(str::to_owned),
        username: n.text_of("Username").map(str::to_owned),
        active: n.text_of("Status") == Some("1"),
    })
}

/// A Reporting `WorkUnit`: the parts we read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedWorkUnit {
    /// `WorkUnitGuid` (lowercase).
    pub guid: String,
    /// `Note`.
    pub note: String,
}

/// Reads a Reporting `WorkUnit`.
pub fn reported_work_unit(n: &Node) -> Option<ReportedWorkUnit> {
    Some(ReportedWorkUnit {
        guid: guid(n.text_of("WorkUnitGuid")?),
        note: n.raw_text_of("Note").to_owned(),
    })
}

/// A Reporting `Task` (`GetTasksRaw`): the parts that identify it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedTask {
    /// Int id (attribute `ID`).
    pub id: i64,
    /// GUID (attribute `GUID`, lowercase).
    pub guid: String,
    /// Name.
    pub name: String,
    /// `ProjectID`.
    pub project_id: Option<i64>,
    /// `Status == 1`.
    pub active: bool,
}

/// Reads a Reporting `Task`.
pub fn reported_task(n: &Node) -> Option<ReportedTask> {
    Some(ReportedTask {
        id: n.attr("ID")?.trim().parse().ok()?,
        guid: guid(n.attr("GUID")?),
        name: n.raw_text_of("Name").trim().to_owned(),
        project_id: n.text_of("ProjectID").and_then(|p| p.parse().ok()),
        active: n.text_of("Status") == Some("1"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_days() {
        assert_eq!(duration(90), "PT1H30M");
        assert_eq!(duration(0), "PT0H0M");
        assert_eq!(duration(600), "PT10H0M");
        assert_eq!(
            parse_day("2026-05-20T00:00:00"),
            NaiveDate::from_ymd_opt(2026, 5, 20)
        );
        assert_eq!(
            parse_day("0001-01-01T00:00:00"),
            NaiveDate::from_ymd_opt(1, 1, 1)
        );
        assert_eq!(
            parse_instant("2026-05-21T05:14:09.5531234+02:00").map(|t| t.to_rfc3339()),
            Some("2026-05-21T03:14:09.553123400+00:00".into())
        );
        assert_eq!(
            parse_instant("2026-05-20T16:02:11").map(|t| t.to_rfc3339()),
            Some("2026-05-20T16:02:11+00:00".into())
        );
        assert!(is_empty_guid(Some("00000000-0000-0000-0000-000000000000")));
        assert!(!is_empty_guid(Some("9e3b6d20-14f5-4c7a-8b1e-3a2f0c9d8e71")));
    }

    #[test]
    fn pm_envelopes_carry_the_token_in_v1_3_and_params_in_v1_8() {
        let t = Token {
            initials: "SYNC".into(),
            expires: "2026-05-21T05:14:09.5531234+02:00".into(),
            hash: "H&<".into(),
        };
        let body = pm_envelope(ops::GET_TASK_BY_ID, &t, |w| {
            w.leaf("taskGuid", "abc");
        });
        let root = xml::parse(&body).unwrap();
        let op = xml::soap_body_child(&root).unwrap();
        assert_eq!((op.ns.as_str(), op.name.as_str()), (PM_NS, "GetTaskById"));
        assert_eq!(op.child("taskGuid").unwrap().ns, PM_NS);
        let token = op.child("token").unwrap();
        assert_eq!(token.ns, PM_NS);
        for (name, value) in [
            ("Initials", "SYNC"),
            ("Expires", "2026-05-21T05:14:09.5531234+02:00"),
            ("Hash", "H&<"),
        ] {
            let c = token.child(name).unwrap();
            assert_eq!((c.ns.as_str(), c.text.as_str()), (PM_TOKEN_NS, value));
        }
    }
}
