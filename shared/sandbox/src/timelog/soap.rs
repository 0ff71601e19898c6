//! The Transactional API (SOAP 1.1, WCF `BasicHttpBinding`): the envelope checks every
//! service shares, Security V1_2 and ProjectManagement V1_8.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use axum::routing::any;
use base64::Engine;
use chrono::{Datelike, NaiveDate, NaiveDateTime};
use uuid::Uuid;

use super::xml::{self, El, SOAP_ENV, day, dt, dt_utc, el, esc, num, opt};
use super::{
    Allocation, Employee, LOGIN_ERROR_CODE, MAX_PAGE_SIZE, TOKEN_ERROR_CODE, Task, TimelogControl,
    TimelogState, WorkInput, WorkUnit, reporting,
};
use crate::common::{Injected, plain};

/// Security service namespace (also its `SecurityToken`).
pub(crate) const SEC_NS: &str = "http://www.timelog.com/api/tlp/v1_2";
/// Security service wrapper namespace (`ResponseOfSecurityToken`, `APIMessage`).
const SEC_WRAP_NS: &str = "http://www.timelog.com/api/tlp/v1_1";
/// ProjectManagement V1_8 service namespace.
pub(crate) const PM_NS: &str = "http://www.timelog.com/api/tlp/v1_8";
/// `SecurityToken` as ProjectManagement expects it.
pub(crate) const TOKEN_NS: &str = "http://www.timelog.com/api/tlp/v1_3";
/// `ResponseOf…`, `APIBaseExtended`, `ExternalSystemContext`, `APIMessage`.
pub(crate) const API_NS: &str = "http://api.timelog.com";
/// `BatchContainerOf…`.
const BATCH_NS: &str = "http://www.timelog.com/api/tlp/v1_2";
/// `Task`, `WorkUnit`, `WorkUnitFlat`, `ProjectHeader`, `Allocation`, `ProjectTaskFlat`.
pub(crate) const V17: &str = "http://www.timelog.com/api/tlp/v1_7";
/// `EmployeeHeader`.
const V15: &str = "http://www.timelog.com/api/tlp/v1_5";
/// `CustomerHeader`.
const CRM_NS: &str = "http://api.timelog.com/services/crm/1_2";
/// Items of a `Guid[]` parameter.
const ARRAYS_NS: &str = "http://schemas.microsoft.com/2003/10/Serialization/Arrays";

const SECURITY_PATH: &str = "/{account}/WebServices/Security/V1_2/SecurityServiceSecure.svc";
const PM_PATH: &str =
    "/{account}/WebServices/ProjectManagement/V1_8/ProjectManagementServiceSecure.svc";
const REPORTING_PATH: &str = "/{account}/service.asmx";

const PM_LONG: &str = "http://www.timelog.com/api/tlp/v1_8/ProjectManagementService/";

/// Operations of ProjectManagement V1_8 served, with their SOAPAction (from `Reference.cs`).
const PM_OPS: &[(&str, &str)] = &[
    ("GetProjects", "GetProjectsRequest"),
    ("GetProjectTasksPaged", "GetProjectTasksPaged"),
    ("GetTaskById", "GetTaskById"),
    ("GetTaskByID", "GetTaskByID"),
    ("GetTaskByExternalKey", "GetTaskByExternalKeyRequest"),
    ("CreateTask", "CreateTaskRequest"),
    ("UpdateTask", "UpdateTaskRequest"),
    ("ChangeTaskStatus", "ChangeTaskStatusRequest"),
    ("AddEmployeeToTask", "AddEmployeeToTaskRequest"),
    (
        "GetAllocationsToEmployee",
        "GetAllocationsToEmployeeRequest",
    ),
    ("InsertWork", "InsertWorkRequest"),
    ("UpdateWork", "UpdateWorkRequest"),
    ("DeleteWork", "DeleteWorkRequest"),
    ("GetWorkChangesPaged", "GetWorkChangesPaged"),
];

/// The operations whose action is the long `…/ProjectManagementService/<Op>` form.
const PM_LONG_OPS: &[&str] = &[
    "GetProjectTasksPaged",
    "GetTaskById",
    "GetTaskByID",
    "GetWorkChangesPaged",
];

/// The SOAPAction a ProjectManagement operation must carry.
fn pm_action(op: &str) -> Option<String> {
    let (_, short) = PM_OPS.iter().find(|(name, _)| *name == op)?;
    Some(if PM_LONG_OPS.contains(&op) {
        format!("{PM_LONG}{short}")
    } else {
        (*short).to_owned()
    })
}

/// Builds the TimeLog routes (mounted at the sandbox root).
pub(crate) fn router(h: TimelogControl) -> Router {
    Router::new()
        .route(SECURITY_PATH, any(security))
        .route(PM_PATH, any(project_management))
        .route(REPORTING_PATH, any(reporting::handle))
        .with_state(h)
}

/// A SOAP 1.1 fault answer.
pub(crate) fn fault(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let body = format!(
        "<s:Envelope xmlns:s=\"{SOAP_ENV}\"><s:Body><s:Fault><faultcode>s:{code}</faultcode>\
         <faultstring xml:lang=\"en-US\">{}</faultstring></s:Fault></s:Body></s:Envelope>",
        esc(message)
    );
    xml_response(status, body)
}

pub(crate) fn client_fault(message: &str) -> Response<Body> {
    fault(StatusCode::INTERNAL_SERVER_ERROR, "Client", message)
}

pub(crate) fn xml_response(status: StatusCode, body: String) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    r
}

/// `<s:Envelope><s:Body>{inner}</s:Body></s:Envelope>`.
pub(crate) fn envelope(inner: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><s:Envelope xmlns:s=\"{SOAP_ENV}\"><s:Body>{inner}</s:Body></s:Envelope>"
    )
}

/// A request that passed the checks every service shares.
pub(crate) struct Call {
    pub(crate) op: String,
    pub(crate) body: El,
}

/// Account, method, content type, faults, envelope, operation namespace and SOAPAction, in
/// the order a real front end meets them. `action` maps an operation name to the SOAPAction
/// it must carry (`None`: the service has no such operation).
pub(crate) async fn accept(
    h: &TimelogControl,
    account: &str,
    method: &Method,
    headers: &HeaderMap,
    body: &[u8],
    service_ns: &str,
    action: impl Fn(&str) -> Option<String>,
) -> Result<Call, Response<Body>> {
    let (known, latency) = h.with(|s| {
        s.total_requests += 1;
        (s.accounts.iter().any(|a| a == account), s.faults.latency)
    });
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if !known {
        return Err(plain(
            StatusCode::NOT_FOUND,
            "The resource cannot be found.",
        ));
    }
    if method != Method::POST {
        let mut r = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed; use POST",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return Err(r);
    }
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("text/xml") {
        return Err(plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &format!(
                "Cannot process the message because the content type '{ct}' was not the expected type 'text/xml; charset=utf-8'."
            ),
        ));
    }
    let injected = h.with(|s| s.faults.take_injected()).map(|i| match i {
        Injected::Fail(status) => status,
        Injected::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
    });
    if let Some(status) = injected {
        let code = if status.is_server_error() {
            "Server"
        } else {
            "Client"
        };
        return Err(fault(status, code, "Injected failure (sandbox fail_next)"));
    }
    let root = xml::parse(body).map_err(|e| {
        h.with(|s| *s.requests.entry("?".into()).or_default() += 1);
        client_fault(&format!("The request body is not well-formed XML: {e}"))
    })?;
    if root.ns != SOAP_ENV || root.name != "Envelope" {
        return Err(client_fault(&format!(
            "The body is not a SOAP 1.1 envelope ({{{SOAP_ENV}}}Envelope expected, got {{{}}}{})",
            root.ns, root.name
        )));
    }
    let Some(soap_body) = root.child(SOAP_ENV, "Body") else {
        return Err(client_fault("The SOAP envelope has no Body"));
    };
    let Some(op_el) = soap_body.children.first() else {
        return Err(client_fault("The SOAP Body is empty"));
    };
    let op = op_el.name.clone();
    h.with(|s| *s.requests.entry(op.clone()).or_default() += 1);
    if op_el.ns != service_ns {
        return Err(client_fault(&format!(
            "The operation element {{{}}}{op} is not in the service namespace {service_ns}",
            op_el.ns
        )));
    }
    let Some(expected) = action(&op) else {
        return Err(client_fault(&format!(
            "The service has no operation '{op}' in namespace {service_ns}"
        )));
    };
    let sent = headers
        .get("soapaction")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().trim_matches('"').to_owned());
    match sent {
        None => {
            return Err(client_fault(
                "The SOAPAction header is missing (SOAP 1.1 requires it)",
            ));
        }
        Some(a) if a != expected => {
            return Err(client_fault(&format!(
                "The message with Action '{a}' cannot be processed at the receiver: the body \
                 is operation '{op}', whose Action is '{expected}' (ActionNotSupported)"
            )));
        }
        Some(_) => {}
    }
    Ok(Call {
        op,
        body: op_el.clone(),
    })
}

// ---------------------------------------------------------------------------------------------
// Response wrappers

/// One `APIMessage`.
struct Msg {
    text: String,
    severity: &'static str,
    code: i32,
}

/// A `ResponseOf<T>` / `BatchResponseOf<T>` body.
struct Reply {
    op: String,
    service_ns: &'static str,
    /// Namespace of the wrapper's own members (`a`).
    wrap_ns: &'static str,
    /// Namespace of the `Return` items (`b`).
    item_ns: &'static str,
    return_type: &'static str,
    /// Already rendered `<b:…>` items.
    items: Vec<String>,
    state: &'static str,
    messages: Vec<Msg>,
    error_code: i32,
    /// `IsReturnPaged` (ProjectManagement responses have it; Security's do not).
    paged: Option<bool>,
    /// Echo of the request (`Request` member); `None` writes `i:nil`.
    request: Option<String>,
}

impl Reply {
    fn pm(op: &str, item_ns: &'static str, return_type: &'static str) -> Reply {
        Reply {
            op: op.to_owned(),
            service_ns: PM_NS,
            wrap_ns: API_NS,
            item_ns,
            return_type,
            items: Vec::new(),
            state: "Success",
            messages: Vec::new(),
            error_code: 0,
            paged: Some(false),
            request: None,
        }
    }

    fn error(mut self, state: &'static str, text: &str, code: i32) -> Reply {
        self.state = state;
        self.error_code = code;
        self.messages.push(Msg {
            text: text.to_owned(),
            severity: if state == "Invalid" {
                "Invalid"
            } else {
                "Error"
            },
            code,
        });
        self
    }

    fn render(&self) -> Response<Body> {
        let op = &self.op;
        let mut out = format!(
            "<{op}Response xmlns=\"{}\"><{op}Result xmlns:a=\"{}\" xmlns:i=\"{}\">",
            self.service_ns,
            self.wrap_ns,
            xml::XSI
        );
        if self.items.is_empty() {
            out.push_str(&format!("<a:Return xmlns:b=\"{}\"/>", self.item_ns));
        } else {
            out.push_str(&format!("<a:Return xmlns:b=\"{}\">", self.item_ns));
            for i in &self.items {
                out.push_str(i);
            }
            out.push_str("</a:Return>");
        }
        out.push_str(&el("a", "ReturnTypeDescription", self.return_type));
        match &self.request {
            Some(r) => out.push_str(r),
            None => out.push_str("<a:Request i:nil=\"true\"/>"),
        }
        out.push_str(&el("a", "ResponseState", self.state));
        if self.messages.is_empty() {
            out.push_str("<a:Messages/>");
        } else {
            out.push_str("<a:Messages>");
            for m in &self.messages {
                out.push_str(&format!(
                    "<a:APIMessage>{}{}{}</a:APIMessage>",
                    el("a", "Message", &m.text),
                    el("a", "Severity", m.severity),
                    el("a", "ErrorCode", &m.code.to_string())
                ));
            }
            out.push_str("</a:Messages>");
        }
        out.push_str(&el("a", "ErrorCode", &self.error_code.to_string()));
        if let Some(paged) = self.paged {
            out.push_str(&el(
                "a",
                "IsReturnPaged",
                if paged { "true" } else { "false" },
            ));
            out.push_str("<a:TotalPageCount>0</a:TotalPageCount>");
        }
        out.push_str(&format!("</{op}Result></{op}Response>"));
        xml_response(StatusCode::OK, envelope(&out))
    }
}

/// One `BatchContainerOf<T>`: `Ok(item xml)` or `Err(message)`.
fn batch_item(container: &str, item_ns: &str, result: Result<String, String>) -> String {
    match result {
        Ok(inner) => format!(
            "<b:{container}><b:Item xmlns:c=\"{item_ns}\">{inner}</b:Item>{}{}</b:{container}>",
            el("b", "Status", "Success"),
            el("b", "Message", "")
        ),
        Err(m) => format!(
            "<b:{container}><b:Item i:nil=\"true\"/>{}{}</b:{container}>",
            el("b", "Status", "Error"),
            el("b", "Message", &m)
        ),
    }
}

fn b(v: bool) -> &'static str {
    if v { "true" } else { "false" }
}

fn g(u: Uuid) -> String {
    u.hyphenated().to_string()
}

const NIL_GUID: &str = "00000000-0000-0000-0000-000000000000";

// ---------------------------------------------------------------------------------------------
// Security

async fn security(
    State(h): State<TimelogControl>,
    Path(account): Path<String>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let call = match accept(&h, &account, &method, &headers, &body, SEC_NS, |op| {
        (op == "GetToken").then(|| "GetTokenRequest".to_owned())
    })
    .await
    {
        Ok(c) => c,
        Err(r) => return r,
    };
    let user = call.body.text_of(SEC_NS, "user").unwrap_or("").to_owned();
    let password = call
        .body
        .child(SEC_NS, "password")
        .filter(|p| !p.is_nil())
        .map(|p| p.text.clone())
        .unwrap_or_default();
    let request = format!(
        "<a:Request><a:Parameters><a:RequestParameter>{}{}</a:RequestParameter></a:Parameters>{}{}</a:Request>",
        el("a", "Name", "user"),
        el("a", "Value", &user),
        el("a", "ServiceClass", "SecurityService"),
        el("a", "MethodName", "GetToken")
    );
    let mut reply = Reply {
        op: "GetToken".into(),
        service_ns: SEC_NS,
        wrap_ns: SEC_WRAP_NS,
        item_ns: SEC_NS,
        return_type: "SecurityToken",
        items: Vec::new(),
        state: "Success",
        messages: Vec::new(),
        error_code: 0,
        paged: None,
        request: Some(request),
    };
    let issued = h.with(|s| {
        let emp = s.employee_by_login(&user)?.clone();
        if !emp.active() || emp.password.as_deref() != Some(password.as_str()) {
            return None;
        }
        Some(s.issue_token(&emp.initials))
    });
    match issued {
        Some((hash, token)) => reply.items.push(format!(
            "<b:SecurityToken>{}{}{}</b:SecurityToken>",
            el("b", "Initials", &token.initials),
            el("b", "Expires", &dt_utc(token.expires)),
            el("b", "Hash", &hash)
        )),
        None => {
            reply = reply.error(
                "Error",
                "Login failed: the user name (or initials) or the password is incorrect",
                LOGIN_ERROR_CODE,
            );
        }
    }
    reply.render()
}

// ---------------------------------------------------------------------------------------------
// ProjectManagement

async fn project_management(
    State(h): State<TimelogControl>,
    Path(account): Path<String>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let call = match accept(&h, &account, &method, &headers, &body, PM_NS, pm_action).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let p = &call.body;
    // The token: WCF would not see members outside v1_3, so such a token is unusable; say so
    // loudly rather than answering a puzzling "invalid token".
    let token = p.child(PM_NS, "token").filter(|t| !t.is_nil());
    if let Some(t) = token
        && t.child(TOKEN_NS, "Hash").is_none()
        && !t.children.is_empty()
    {
        return client_fault(&format!(
            "The formatter threw an exception while trying to deserialize the message: the \
             SecurityToken members Initials, Expires and Hash are required in namespace {TOKEN_NS}"
        ));
    }
    let initials = token
        .and_then(|t| t.text_of(TOKEN_NS, "Initials"))
        .unwrap_or("")
        .to_owned();
    let hash = token
        .and_then(|t| t.text_of(TOKEN_NS, "Hash"))
        .unwrap_or("")
        .to_owned();
    h.with(|s| {
        let (ns, ty) = return_type(&call.op);
        let Some(me) = s.check_token(&initials, &hash) else {
            return Reply::pm(&call.op, ns, ty)
                .error(
                    "Error",
                    "The security token is invalid or has expired",
                    TOKEN_ERROR_CODE,
                )
                .render();
        };
        let reply = match dispatch(s, &call.op, p, me) {
            Ok(r) => r,
            Err(m) => return client_fault(&m),
        };
        if let Some(status) = s.take_lost_answer(&call.op) {
            // Applied, but the answer never reaches the client: a gateway's page instead.
            return plain(
                status,
                "Injected failure after the operation was applied (sandbox lose_next_answers)",
            );
        }
        reply.render()
    })
}

/// `(item namespace, ReturnTypeDescription)` of an operation's response.
fn return_type(op: &str) -> (&'static str, &'static str) {
    match op {
        "GetProjects" => (V17, "ProjectHeader"),
        "GetProjectTasksPaged" => (V17, "ProjectTaskFlat"),
        "GetTaskById" | "GetTaskByID" | "GetTaskByExternalKey" | "ChangeTaskStatus" => {
            (V17, "Task")
        }
        "CreateTask" | "UpdateTask" => (BATCH_NS, "BatchContainerOfTask"),
        "AddEmployeeToTask" => (BATCH_NS, "BatchContainerOfAllocation"),
        "GetAllocationsToEmployee" => (V17, "Allocation"),
        "InsertWork" | "UpdateWork" | "DeleteWork" => (BATCH_NS, "BatchContainerOfWorkUnit"),
        "GetWorkChangesPaged" => (V17, "WorkUnitFlat"),
        _ => (V17, ""),
    }
}

/// A parameter's text, `None` when absent or nil.
fn param<'a>(p: &'a El, name: &str) -> Option<&'a str> {
    p.text_of(PM_NS, name)
}

/// An `int` parameter; absent reads as 0 (WCF's default), garbage is a fault.
fn int_param(p: &El, name: &str) -> Result<i64, String> {
    match param(p, name) {
        None | Some("") => Ok(0),
        Some(v) => v
            .parse()
            .map_err(|_| format!("Parameter '{name}': '{v}' is not a valid int")),
    }
}

fn bool_param(p: &El, name: &str) -> Result<bool, String> {
    match param(p, name) {
        None | Some("") => Ok(false),
        Some("true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(v) => Err(format!("Parameter '{name}': '{v}' is not a valid boolean")),
    }
}

fn guid_param(p: &El, name: &str) -> Result<Uuid, String> {
    match param(p, name) {
        None | Some("") => Ok(Uuid::nil()),
        Some(v) => {
            Uuid::parse_str(v).map_err(|_| format!("Parameter '{name}': '{v}' is not a valid Guid"))
        }
    }
}

/// A `DateTime` parameter; absent reads as `0001-01-01T00:00:00` (WCF's default).
fn dt_param(p: &El, name: &str) -> Result<NaiveDateTime, String> {
    match param(p, name) {
        None | Some("") => Ok(NaiveDate::from_ymd_opt(1, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .unwrap_or_default()),
        Some(v) => xml::parse_dt(v)
            .ok_or_else(|| format!("Parameter '{name}': '{v}' is not a valid DateTime")),
    }
}

/// Runs one authenticated operation. `Err` is a deserialization fault.
fn dispatch(s: &mut TimelogState, op: &str, p: &El, me: i32) -> Result<Reply, String> {
    let (ns, ty) = return_type(op);
    let mut r = Reply::pm(op, ns, ty);
    match op {
        "GetProjects" => {
            let customer = int_param(p, "customerID")?;
            let manager = int_param(p, "projectManagerID")?;
            let inactive = bool_param(p, "includeInactiveProjects")?;
            let _status = int_param(p, "statusID")?;
            for pr in s.projects.values() {
                if (customer > 0 && i64::from(pr.customer) != customer)
                    || (manager > 0 && i64::from(pr.manager) != manager)
                    || (!inactive && !pr.active)
                {
                    continue;
                }
                r.items.push(format!(
                    "<b:ProjectHeader>{}</b:ProjectHeader>",
                    project_header(pr, "b")
                ));
            }
        }
        "GetProjectTasksPaged" => {
            let project = guid_param(p, "projectGuid")?;
            let page = int_param(p, "page")?;
            let size = int_param(p, "pageSize")?;
            r.paged = Some(true);
            if let Some(bad) = page_problem(page, size) {
                return Ok(r.error("Invalid", &bad, 0));
            }
            let mut tasks: Vec<&Task> = s
                .tasks
                .values()
                .filter(|t| {
                    project.is_nil()
                        || s.projects
                            .get(&t.project)
                            .is_some_and(|p| p.guid == project)
                })
                .collect();
            tasks.sort_by_key(|t| (t.project, wbs_key(&s.wbs(t)), t.id));
            for t in page_of(&tasks, page, size) {
                r.items.push(format!(
                    "<b:ProjectTaskFlat>{}</b:ProjectTaskFlat>",
                    project_task_flat(s, t)
                ));
            }
        }
        "GetTaskById" => {
            let guid = guid_param(p, "taskGuid")?;
            if let Some(t) = s.task_by_guid(guid) {
                r.items
                    .push(format!("<b:Task>{}</b:Task>", task_xml(s, t, "b", true)));
            }
        }
        "GetTaskByID" => {
            let id = int_param(p, "taskID")?;
            let keys = bool_param(p, "loadExternalKeys")?;
            if let Some(t) = i32::try_from(id).ok().and_then(|id| s.tasks.get(&id)) {
                r.items
                    .push(format!("<b:Task>{}</b:Task>", task_xml(s, t, "b", keys)));
            }
        }
        "GetTaskByExternalKey" => {
            let key = param(p, "key").unwrap_or("");
            let system = param(p, "systemName").unwrap_or("");
            if let Some(t) = s.tasks.values().find(|t| {
                t.external_keys
                    .iter()
                    .any(|(sys, id)| sys == system && id == key)
            }) {
                r.items
                    .push(format!("<b:Task>{}</b:Task>", task_xml(s, t, "b", true)));
            }
        }
        "CreateTask" | "UpdateTask" => {
            let project = int_param(p, "projectID")?;
            let input = p
                .child(PM_NS, "task")
                .filter(|t| !t.is_nil())
                .ok_or("Parameter 'task' is required")?;
            let task = parse_task(input)?;
            let result = if op == "CreateTask" {
                create_task(s, &task, project, me)
            } else {
                update_task(s, &task, project, me)
            };
            let item = result.map(|id| {
                let t = &s.tasks[&id];
                task_xml(s, t, "c", true)
            });
            r.items.push(batch_item("BatchContainerOfTask", V17, item));
        }
        "ChangeTaskStatus" => {
            let guid = guid_param(p, "taskGuid")?;
            let status = int_param(p, "targetStatus")?;
            let Some(id) = s.task_by_guid(guid).map(|t| t.id) else {
                return Ok(r.error("Error", &format!("Task {guid} does not exist"), 0));
            };
            if !(0..=4).contains(&status) {
                return Ok(r.error(
                    "Invalid",
                    &format!("targetStatus {status} is not a task status (0-4)"),
                    0,
                ));
            }
            let now = s.now().naive_utc();
            if let Some(t) = s.tasks.get_mut(&id) {
                t.status = status as i32;
                t.modified_at = now;
                t.modified_by = me;
            }
            let t = &s.tasks[&id];
            r.items
                .push(format!("<b:Task>{}</b:Task>", task_xml(s, t, "b", true)));
        }
        "AddEmployeeToTask" => {
            let employee = int_param(p, "employeeID")?;
            let task = int_param(p, "taskID")?;
            let hours: f64 = match param(p, "BudgetHours") {
                None | Some("") => 0.0,
                Some(v) => v
                    .parse()
                    .map_err(|_| format!("Parameter 'BudgetHours': '{v}' is not a valid double"))?,
            };
            let employee = i32::try_from(employee)
                .ok()
                .filter(|e| s.employees.contains_key(e));
            let task = i32::try_from(task).ok().filter(|t| s.tasks.contains_key(t));
            let item = match (employee, task) {
                (None, _) => Err(format!(
                    "Employee {} does not exist",
                    int_param(p, "employeeID")?
                )),
                (_, None) => Err(format!("Task {} does not exist", int_param(p, "taskID")?)),
                (Some(e), Some(t)) => {
                    // Not idempotent: TimeLog adds another allocation for the same pair.
                    let id = s.add_allocation(e, t, hours);
                    Ok(allocation_xml(s, &s.allocations[&id], "c"))
                }
            };
            r.items
                .push(batch_item("BatchContainerOfAllocation", V17, item));
        }
        "GetAllocationsToEmployee" => {
            let initials = param(p, "initials").unwrap_or("");
            if let Some(emp) = s.employee_by_login(initials).map(|e| e.id) {
                for a in s.allocations.values().filter(|a| a.employee == emp) {
                    r.items.push(format!(
                        "<b:Allocation>{}</b:Allocation>",
                        allocation_xml(s, a, "b")
                    ));
                }
            }
        }
        "InsertWork" | "UpdateWork" => {
            let work = p.child(PM_NS, "work").filter(|w| !w.is_nil());
            let units: Vec<&El> = work
                .map(|w| w.all(V17, "WorkUnit").collect())
                .unwrap_or_default();
            for u in units {
                let result = parse_work(u).and_then(|input| {
                    if op == "InsertWork" {
                        s.insert_work(&input, me, true)
                    } else {
                        let guid = input
                            .guid
                            .filter(|g| !g.is_nil())
                            .ok_or("GUID is required to update a work unit")?;
                        s.update_work(guid, &input, me, true)
                    }
                });
                let item = result.map(|unit| work_xml(s, &unit, "c"));
                r.items
                    .push(batch_item("BatchContainerOfWorkUnit", V17, item));
            }
        }
        "DeleteWork" => {
            let work = p.child(PM_NS, "work").filter(|w| !w.is_nil());
            let guids: Vec<String> = work
                .map(|w| {
                    w.all(ARRAYS_NS, "guid")
                        .map(|g| g.text.trim().to_owned())
                        .collect()
                })
                .unwrap_or_default();
            for raw in guids {
                let item = match Uuid::parse_str(&raw) {
                    Err(_) => Err(format!("'{raw}' is not a valid Guid")),
                    Ok(guid) => s
                        .delete_work(guid, true)
                        .map(|u| u.map(|u| work_xml(s, &u, "c"))),
                };
                r.items.push(match item {
                    Ok(Some(inner)) => batch_item("BatchContainerOfWorkUnit", V17, Ok(inner)),
                    // An unknown GUID: nothing to delete, reported as a success.
                    Ok(None) => format!(
                        "<b:BatchContainerOfWorkUnit><b:Item i:nil=\"true\"/>{}{}</b:BatchContainerOfWorkUnit>",
                        el("b", "Status", "Success"),
                        el("b", "Message", "")
                    ),
                    Err(m) => batch_item("BatchContainerOfWorkUnit", V17, Err(m)),
                });
            }
        }
        "GetWorkChangesPaged" => {
            let initials = param(p, "initials").unwrap_or("").to_owned();
            let reg_from = dt_param(p, "registrationStartDate")?.date();
            let reg_to = dt_param(p, "registrationEndDate")?.date();
            let from = dt_param(p, "changeStartDate")?.and_utc();
            let to = dt_param(p, "changeEndDate")?.and_utc();
            let page = int_param(p, "page")?;
            let size = int_param(p, "pageSize")?;
            r.paged = Some(true);
            if let Some(bad) = page_problem(page, size) {
                return Ok(r.error("Invalid", &bad, 0));
            }
            let who = if initials.trim().is_empty() {
                None
            } else {
                Some(s.employee_by_login(&initials).map_or(-1, |e| e.id))
            };
            let rows: Vec<&super::Change> = s
                .history()
                .filter(|c| c.at >= from && c.at <= to)
                .filter(|c| (reg_from..=reg_to).contains(&c.unit.date()))
                .filter(|c| who.is_none_or(|w| c.unit.employee == w))
                .collect();
            for c in page_of(&rows, page, size) {
                r.items.push(format!(
                    "<b:WorkUnitFlat>{}</b:WorkUnitFlat>",
                    work_flat(s, c)
                ));
            }
        }
        other => return Err(format!("Operation '{other}' is not served")),
    }
    Ok(r)
}

fn page_problem(page: i64, size: i64) -> Option<String> {
    if !(1..=MAX_PAGE_SIZE).contains(&size) {
        return Some(format!(
            "pageSize must be between 1 and {MAX_PAGE_SIZE} (was {size})"
        ));
    }
    (page < 1).then(|| format!("page must be 1 or more (was {page})"))
}

fn page_of<T>(all: &[T], page: i64, size: i64) -> &[T] {
    let start = usize::try_from((page - 1).saturating_mul(size)).unwrap_or(usize::MAX);
    let end = start.saturating_add(usize::try_from(size).unwrap_or(0));
    if start >= all.len() {
        &[]
    } else {
        &all[start..end.min(all.len())]
    }
}

/// `2.10` sorts after `2.9`.
fn wbs_key(wbs: &str) -> Vec<u32> {
    wbs.split('.').filter_map(|p| p.parse().ok()).collect()
}

// ---------------------------------------------------------------------------------------------
// Reading contracts

/// The members of a `Task` the sandbox reads.
#[derive(Debug, Default)]
struct TaskInput {
    guid: Option<Uuid>,
    task_id: Option<i32>,
    name: Option<String>,
    no: Option<String>,
    description: Option<String>,
    link: Option<String>,
    budget_hours: Option<f64>,
    budget_amount: Option<f64>,
    start: Option<NaiveDate>,
    end: Option<NaiveDate>,
    task_type: Option<i32>,
    /// `Some` only when `IsExternalKeysLoaded` is true.
    external_keys: Option<Vec<(String, String)>>,
    /// `State.IsActive`.
    active: Option<bool>,
}

fn parse_num<T: std::str::FromStr>(el: &El, ns: &str, name: &str) -> Result<Option<T>, String> {
    match el.text_of(ns, name) {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| format!("{name}: '{v}' is not a valid number")),
    }
}

fn parse_guid_member(el: &El, ns: &str, name: &str) -> Result<Option<Uuid>, String> {
    match el.text_of(ns, name) {
        None | Some("") => Ok(None),
        Some(v) => Uuid::parse_str(v)
            .map(Some)
            .map_err(|_| format!("{name}: '{v}' is not a valid Guid")),
    }
}

fn parse_dt_member(el: &El, name: &str) -> Result<Option<NaiveDateTime>, String> {
    match el.text_of(V17, name) {
        None | Some("") => Ok(None),
        Some(v) => xml::parse_dt(v)
            .map(Some)
            .ok_or_else(|| format!("{name}: '{v}' is not a valid DateTime")),
    }
}

fn parse_task(t: &El) -> Result<TaskInput, String> {
    let keys_loaded = matches!(
        t.text_of(API_NS, "IsExternalKeysLoaded"),
        Some("true" | "1")
    );
    let external_keys = keys_loaded.then(|| {
        t.child(API_NS, "ExternalKeys")
            .map(|k| {
                k.all(API_NS, "ExternalSystemContext")
                    .filter_map(|c| {
                        let sys = c.text_of(API_NS, "SystemName")?;
                        let id = c.text_of(API_NS, "ExternalID")?;
                        Some((sys.to_owned(), id.to_owned()))
                    })
                    .collect()
            })
            .unwrap_or_default()
    });
    let year_one = |d: Option<NaiveDateTime>| d.map(|d| d.date()).filter(|d| d.year() > 1);
    Ok(TaskInput {
        guid: parse_guid_member(t, V17, "ID")?.filter(|g| !g.is_nil()),
        task_id: parse_num(t, V17, "TaskID")?.filter(|&i: &i32| i > 0),
        name: t.text_of(V17, "Name").map(str::to_owned),
        no: t.text_of(V17, "No").map(str::to_owned),
        description: t.text_of(V17, "Description").map(str::to_owned),
        link: t.text_of(V17, "Link").map(str::to_owned),
        budget_hours: parse_num(t, V17, "BudgetHours")?,
        budget_amount: parse_num(t, V17, "BudgetAmount")?,
        start: year_one(parse_dt_member(t, "StartDate")?),
        end: year_one(parse_dt_member(t, "EndDate")?),
        task_type: parse_num(t, V17, "TaskTypeID")?.filter(|&i: &i32| i > 0),
        external_keys,
        active: t
            .child(V17, "State")
            .and_then(|st| st.text_of(V17, "IsActive"))
            .map(|v| matches!(v, "true" | "1")),
    })
}

fn apply_task(t: &mut Task, input: &TaskInput) {
    if let Some(v) = &input.name {
        t.name = v.clone();
    }
    if let Some(v) = input.no.as_ref().filter(|v| !v.is_empty()) {
        t.no = v.clone();
    }
    if let Some(v) = &input.description {
        t.description = v.clone();
    }
    if let Some(v) = &input.link {
        t.link = v.clone();
    }
    if let Some(v) = input.budget_hours {
        t.budget_hours = v;
    }
    if let Some(v) = input.budget_amount {
        t.budget_amount = v;
    }
    if let Some(v) = input.start {
        t.start = v;
    }
    if let Some(v) = input.end {
        t.end = v;
    }
    if let Some(v) = input.task_type {
        t.task_type = v;
    }
    if let Some(keys) = &input.external_keys {
        t.external_keys = keys.clone();
    }
}

fn create_task(
    s: &mut TimelogState,
    input: &TaskInput,
    project: i64,
    me: i32,
) -> Result<i32, String> {
    let project = i32::try_from(project)
        .ok()
        .filter(|p| s.projects.contains_key(p))
        .ok_or_else(|| format!("Project {project} does not exist"))?;
    if !s.projects[&project].active {
        return Err(format!("Project {project} is not active"));
    }
    let name = input
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or("Task name is required")?;
    if let Some(g) = input.guid
        && s.task_by_guid(g).is_some()
    {
        return Err(format!("A task with ID {g} already exists"));
    }
    let now = s.now().naive_utc();
    let no = input.no.as_deref().filter(|n| !n.is_empty());
    let id = s.add_task(input.guid, project, None, name, no, me, now);
    if let Some(t) = s.tasks.get_mut(&id) {
        apply_task(t, input);
        t.name = name.to_owned();
        // A task created inactive starts Completed; UpdateTask never changes the status.
        if input.active == Some(false) {
            t.status = 3;
        }
    }
    Ok(id)
}

fn update_task(
    s: &mut TimelogState,
    input: &TaskInput,
    project: i64,
    me: i32,
) -> Result<i32, String> {
    let id = input
        .guid
        .and_then(|g| s.task_by_guid(g).map(|t| t.id))
        .or_else(|| input.task_id.filter(|i| s.tasks.contains_key(i)))
        .ok_or("Task does not exist")?;
    if project > 0 && i64::from(s.tasks[&id].project) != project {
        return Err(format!("Task {id} does not belong to project {project}"));
    }
    if input.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        return Err("Task name is required".into());
    }
    let now = s.now().naive_utc();
    if let Some(t) = s.tasks.get_mut(&id) {
        apply_task(t, input);
        t.modified_at = now;
        t.modified_by = me;
    }
    Ok(id)
}

fn parse_work(u: &El) -> Result<WorkInput, String> {
    let duration = |name: &str| -> Result<Option<i64>, String> {
        match u.text_of(V17, name) {
            None | Some("") => Ok(None),
            Some(v) => xml::parse_duration(v)
                .map(Some)
                .ok_or_else(|| format!("{name}: '{v}' is not a valid duration")),
        }
    };
    let year_one = |d: Option<NaiveDateTime>| d.filter(|d| d.year() > 1);
    Ok(WorkInput {
        guid: parse_guid_member(u, V17, "GUID")?,
        allocation_guid: parse_guid_member(u, V17, "AllocationGUID")?,
        task: parse_num(u, V17, "TaskID")?,
        employee: u.text_of(V17, "EmployeeInitials").map(str::to_owned),
        seconds: duration("Duration")?,
        start: year_one(parse_dt_member(u, "StartDateTime")?),
        end: year_one(parse_dt_member(u, "EndDateTime")?),
        description: u.text_of(V17, "Description").map(str::to_owned),
        additional_text: u.text_of(V17, "AdditionalText").map(str::to_owned),
        billable_seconds: duration("BillableDuration")?,
    })
}

// ---------------------------------------------------------------------------------------------
// Writing contracts

/// `ProjectHeader` members, prefix `p` = v1_7.
fn project_header(pr: &super::Project, p: &str) -> String {
    [
        el(p, "ID", &pr.id.to_string()),
        el(p, "ProjectGUID", &g(pr.guid)),
        el(p, "Name", &pr.name),
        el(p, "No", &pr.no),
        el(p, "IsActive", b(pr.active)),
        el(p, "IsGeneralProject", "false"),
        el(p, "StartDate", &day(pr.start)),
        el(p, "EndDate", &day(pr.end)),
        el(p, "MainContractID", "1"),
    ]
    .concat()
}

fn customer_header(s: &TimelogState, customer: i32, p: &str) -> String {
    match s.customers.get(&customer) {
        Some(c) => format!(
            "<{p}:CustomerHeader xmlns:d=\"{CRM_NS}\">{}{}{}{}</{p}:CustomerHeader>",
            el("d", "ID", &c.id.to_string()),
            el("d", "Name", &c.name),
            el("d", "No", &c.no),
            el("d", "GUID", &g(c.guid))
        ),
        None => format!("<{p}:CustomerHeader i:nil=\"true\"/>"),
    }
}

/// The `APIBaseExtended` members (prefix `a` = `http://api.timelog.com`).
fn extended(keys: Option<&[(String, String)]>) -> String {
    let mut out = String::from(
        "<a:Action>Original</a:Action><a:IsCustomFieldsLoaded>false</a:IsCustomFieldsLoaded><a:CustomFields i:nil=\"true\"/>",
    );
    match keys {
        Some(keys) => {
            out.push_str("<a:IsExternalKeysLoaded>true</a:IsExternalKeysLoaded><a:ExternalKeys>");
            for (sys, id) in keys {
                out.push_str(&format!(
                    "<a:ExternalSystemContext>{}{}{}</a:ExternalSystemContext>",
                    extended(None),
                    el("a", "SystemName", sys),
                    el("a", "ExternalID", id)
                ));
            }
            out.push_str("</a:ExternalKeys>");
        }
        None => out.push_str(
            "<a:IsExternalKeysLoaded>false</a:IsExternalKeysLoaded><a:ExternalKeys i:nil=\"true\"/>",
        ),
    }
    out
}

fn task_type_name(id: i32) -> &'static str {
    match id {
        12 => "Development",
        13 => "Meeting",
        _ => "General",
    }
}

/// The names of a task chain (root first), as TimeLog shows a task's full name: `A > B`.
fn full_name(chain: &[&Task]) -> String {
    chain
        .iter()
        .map(|x| x.name.as_str())
        .collect::<Vec<_>>()
        .join(" > ")
}

/// The numbers of a task chain (root first), dot-separated.
fn no_chain(chain: &[&Task]) -> String {
    chain
        .iter()
        .map(|x| x.no.as_str())
        .collect::<Vec<_>>()
        .join(".")
}

/// `{what}Guid` (the nil GUID without a record), `{what}Name` and `{what}No` (nil without one).
fn guid_name_no(p: &str, what: &str, record: Option<(Uuid, &str, &str)>) -> String {
    [
        el(
            p,
            &format!("{what}Guid"),
            &record.map_or(NIL_GUID.to_owned(), |r| g(r.0)),
        ),
        opt(p, &format!("{what}Name"), record.map(|r| r.1)),
        opt(p, &format!("{what}No"), record.map(|r| r.2)),
    ]
    .concat()
}

/// `Task` members, prefix `p` = v1_7.
fn task_xml(s: &TimelogState, t: &Task, p: &str, keys: bool) -> String {
    let project = s.projects.get(&t.project);
    let mut out = extended(keys.then_some(t.external_keys.as_slice()));
    out.push_str(&el(p, "ID", &g(t.guid)));
    out.push_str(&el(p, "TaskID", &t.id.to_string()));
    out.push_str(&el(p, "Name", &t.name));
    out.push_str(&el(p, "FullName", &full_name(&s.task_chain(t))));
    out.push_str(&el(p, "No", &t.no));
    out.push_str(&el(p, "Description", &t.description));
    out.push_str(&el(p, "Link", &t.link));
    out.push_str(&el(p, "BudgetHours", &num(t.budget_hours)));
    out.push_str(&el(p, "BudgetAmount", &num(t.budget_amount)));
    out.push_str(&el(p, "StartDate", &day(t.start)));
    out.push_str(&el(p, "EndDate", &day(t.end)));
    out.push_str(&el(p, "TaskTypeID", &t.task_type.to_string()));
    out.push_str(&el(p, "AdditionalTextIsRequired", "false"));
    out.push_str(&el(p, "ProjectSubContractID", "88"));
    out.push_str(&el(p, "HourlyRateID", "0"));
    out.push_str(&el(p, "IsReadyForInvoicing", "false"));
    out.push_str(&format!("<{p}:Details>"));
    out.push_str(&customer_header(s, project.map_or(0, |p| p.customer), p));
    match project {
        Some(pr) => out.push_str(&format!(
            "<{p}:ProjectHeader>{}</{p}:ProjectHeader>",
            project_header(pr, p)
        )),
        None => out.push_str(&format!("<{p}:ProjectHeader i:nil=\"true\"/>")),
    }
    out.push_str(&format!(
        "<{p}:Type>{}{}{}{}</{p}:Type>",
        el(p, "ID", &t.task_type.to_string()),
        el(p, "ID2", "0"),
        el(p, "Name", task_type_name(t.task_type)),
        el(p, "Name2", "")
    ));
    out.push_str(&format!("<{p}:CustomField i:nil=\"true\"/>"));
    out.push_str(&el(p, "WBS", &s.wbs(t)));
    out.push_str(&el(p, "IsParent", b(s.is_parent(t.id))));
    out.push_str(&el(p, "ParentTaskID", &t.parent.unwrap_or(0).to_string()));
    out.push_str(&el(p, "SortOrder", &t.sort_order.to_string()));
    out.push_str(&format!("</{p}:Details>"));
    out.push_str(&format!(
        "<{p}:State>{}</{p}:State>",
        el(p, "IsActive", b(t.active()))
    ));
    out
}

fn task_status_name(status: i32) -> &'static str {
    match status {
        0 => "NotStarted",
        1 => "InProgress",
        2 => "OnHold",
        3 => "Completed",
        _ => "Cancelled",
    }
}

fn project_task_flat(s: &TimelogState, t: &Task) -> String {
    let pr = s.projects.get(&t.project);
    let cu = pr.and_then(|p| s.customers.get(&p.customer));
    let dep = pr.and_then(|p| s.departments.get(&p.department));
    let chain = s.task_chain(t);
    let p = "b";
    [
        el(
            p,
            "CustomerGuid",
            &cu.map_or(NIL_GUID.into(), |c| g(c.guid)),
        ),
        opt(p, "CustomerName", cu.map(|c| c.name.as_str())),
        opt(p, "CustomerNo", cu.map(|c| c.no.as_str())),
        opt(
            p,
            "ProjectCategoryName",
            pr.map(|p| p.category_name.as_str()),
        ),
        el(
            p,
            "ProjectDepartmentGuid",
            &dep.map_or(NIL_GUID.into(), |d| g(d.guid)),
        ),
        opt(p, "ProjectDepartmentName", dep.map(|d| d.name.as_str())),
        opt(p, "ProjectDepartmentNo", dep.map(|d| d.no.as_str())),
        el(p, "ProjectGuid", &pr.map_or(NIL_GUID.into(), |p| g(p.guid))),
        opt(p, "ProjectName", pr.map(|p| p.name.as_str())),
        opt(p, "ProjectNo", pr.map(|p| p.no.as_str())),
        opt(
            p,
            "ProjectStatusName",
            pr.map(|p| if p.active { "Active" } else { "Inactive" }),
        ),
        opt(p, "ProjectTypeName", pr.map(|p| p.type_name.as_str())),
        el(p, "TaskBudgetAmount", &num(t.budget_amount)),
        el(p, "TaskBudgetHours", &num(t.budget_hours)),
        el(p, "TaskDescription", &t.description),
        el(p, "TaskEndDate", &day(t.end)),
        el(p, "TaskGuid", &g(t.guid)),
        el(p, "TaskHourlyRateAmount", "0"),
        el(p, "TaskHourlyRateName", ""),
        el(p, "TaskID", &t.id.to_string()),
        el(p, "TaskInvoicingType", "TimeMaterial"),
        el(p, "TaskIsBillable", "true"),
        el(p, "TaskIsReadyForInvoicing", "false"),
        el(p, "TaskLink", &t.link),
        el(p, "TaskName", &t.name),
        el(p, "TaskNameChain", &full_name(&chain)),
        el(p, "TaskNo", &t.no),
        el(p, "TaskNoChain", &no_chain(&chain)),
        el(
            p,
            "TaskParentGuid",
            &t.parent
                .and_then(|id| s.tasks.get(&id))
                .map_or(NIL_GUID.into(), |x| g(x.guid)),
        ),
        el(p, "TaskStartDate", &day(t.start)),
        el(p, "TaskStatus", task_status_name(t.status)),
        el(p, "TaskTypeName", task_type_name(t.task_type)),
        el(p, "TaskWBS", &s.wbs(t)),
    ]
    .concat()
}

fn employee_header(e: &Employee, p: &str) -> String {
    format!(
        "<{p}:EmployeeHeader xmlns:e=\"{V15}\">{}{}{}{}{}{}{}</{p}:EmployeeHeader>",
        el("e", "ID", &g(e.guid)),
        el("e", "EmployeeID", &e.id.to_string()),
        el("e", "Initials", &e.initials),
        el("e", "FirstName", &e.first_name),
        el("e", "LastName", &e.last_name),
        el("e", "EmployeeNo", &e.employee_no),
        el("e", "Fullname", &e.full_name())
    )
}

/// `Allocation` members, prefix `p` = v1_7.
fn allocation_xml(s: &TimelogState, a: &Allocation, p: &str) -> String {
    let task = s.tasks.get(&a.task);
    let mut out = extended(None);
    out.push_str(&el(p, "AllocationID", &a.id.to_string()));
    out.push_str(&el(p, "ID", &g(a.guid)));
    out.push_str(&el(p, "TaskID", &a.task.to_string()));
    out.push_str(&el(p, "HoursAllocated", &num(a.hours)));
    out.push_str(&el(p, "HourlyRateID", "0"));
    out.push_str(&el(p, "EmployeeID", &a.employee.to_string()));
    out.push_str(&el(
        p,
        "StartDate",
        &task.map_or(String::new(), |t| day(t.start)),
    ));
    out.push_str(&el(
        p,
        "EndDate",
        &task.map_or(String::new(), |t| day(t.end)),
    ));
    match s.employees.get(&a.employee) {
        Some(e) => out.push_str(&format!(
            "<{p}:Details>{}</{p}:Details>",
            employee_header(e, p)
        )),
        None => out.push_str(&format!("<{p}:Details i:nil=\"true\"/>")),
    }
    out
}

/// `WorkUnit` members, prefix `p` = v1_7 (the insertwork fixture's shape).
fn work_xml(s: &TimelogState, u: &WorkUnit, p: &str) -> String {
    let task = s.tasks.get(&u.task);
    let project = task.and_then(|t| s.projects.get(&t.project));
    let alloc = s.allocations.get(&u.allocation);
    let end = u.start + chrono::Duration::seconds(u.seconds);
    let stamp = base64::engine::general_purpose::STANDARD.encode(u.version.to_be_bytes());
    let mut out = String::new();
    out.push_str(&el(p, "GUID", &g(u.guid)));
    out.push_str(&el(
        p,
        "AllocationGUID",
        &alloc.map_or(NIL_GUID.into(), |a| g(a.guid)),
    ));
    out.push_str(&el(p, "TaskID", &u.task.to_string()));
    out.push_str(&el(
        p,
        "EmployeeInitials",
        &s.employees
            .get(&u.employee)
            .map_or(String::new(), |e| e.initials.clone()),
    ));
    out.push_str(&el(p, "Duration", &xml::duration(u.seconds)));
    out.push_str(&el(p, "StartDateTime", &dt(u.start)));
    out.push_str(&el(p, "EndDateTime", &dt(end)));
    out.push_str(&el(p, "Description", &u.description));
    out.push_str(&el(p, "TimeStamp", &stamp));
    out.push_str(&el(p, "IsEditable", b(u.approved == 0)));
    out.push_str(&opt(p, "AdditionalText", u.additional_text.as_deref()));
    out.push_str(&el(p, "IsMeeting", "false"));
    out.push_str(&el(
        p,
        "BillableDuration",
        &xml::duration(u.billable_seconds),
    ));
    out.push_str(&format!("<{p}:Details>"));
    match task {
        Some(t) => out.push_str(&format!(
            "<{p}:TaskHeader>{}{}{}{}{}{}{}</{p}:TaskHeader>",
            el(p, "ID", &t.id.to_string()),
            el(p, "Name", &t.name),
            el(p, "No", &t.no),
            el(p, "IsActive", b(t.active())),
            el(p, "WBS", &s.wbs(t)),
            el(p, "FullName", &full_name(&s.task_chain(t))),
            opt(
                p,
                "ExternalKey",
                t.external_keys.first().map(|(_, id)| id.as_str())
            )
        )),
        None => out.push_str(&format!("<{p}:TaskHeader i:nil=\"true\"/>")),
    }
    match project {
        Some(pr) => out.push_str(&format!(
            "<{p}:ProjectHeader>{}</{p}:ProjectHeader>",
            project_header(pr, p)
        )),
        None => out.push_str(&format!("<{p}:ProjectHeader i:nil=\"true\"/>")),
    }
    out.push_str(&customer_header(s, project.map_or(0, |p| p.customer), p));
    out.push_str(&format!("</{p}:Details>"));
    out
}

/// One `WorkUnitFlat` row (prefix `b` = v1_7), in the getworkchangespaged fixture's shape.
fn work_flat(s: &TimelogState, c: &super::Change) -> String {
    let p = "b";
    let head = [
        el(p, "Action", c.action.as_str()),
        el(p, "ActionDate", &dt_utc(c.at)),
    ]
    .concat();
    if s.deleted.contains(&c.unit.guid) {
        // Once a unit is deleted only the action and its GUID are known, for every row.
        let nil = |n: &str| format!("<{p}:{n} i:nil=\"true\"/>");
        let zero = |n: &str| el(p, n, NIL_GUID);
        return [
            head,
            el(p, "ApprovedStatus", "0"),
            zero("CustomerGuid"),
            nil("CustomerName"),
            nil("CustomerNo"),
            el(p, "Date", "0001-01-01T00:00:00"),
            zero("EmployeeDepartmentGuid"),
            nil("EmployeeDepartmentName"),
            nil("EmployeeDepartmentNo"),
            zero("EmployeeGuid"),
            nil("EmployeeInitials"),
            nil("EmployeeInternalId"),
            el(p, "Hours", "0"),
            nil("ProjectCategoryName"),
            zero("ProjectDepartmentGuid"),
            nil("ProjectDepartmentName"),
            nil("ProjectDepartmentNo"),
            zero("ProjectGuid"),
            nil("ProjectName"),
            nil("ProjectNo"),
            nil("ProjectStatusName"),
            nil("ProjectTypeName"),
            nil("SalaryCode"),
            zero("SalaryCodeGuid"),
            nil("SalaryCodeName"),
            zero("TaskGuid"),
            nil("TaskName"),
            nil("TaskNameChain"),
            nil("TaskNo"),
            nil("TaskNoChain"),
            zero("TaskParentGuid"),
            nil("TaskTypeName"),
            nil("TaskWBS"),
            zero("UserGuid"),
            el(p, "UserId", "0"),
            el(p, "WorkUnitGuid", &g(c.unit.guid)),
        ]
        .concat();
    }
    let u = &c.unit;
    let emp = s.employees.get(&u.employee);
    let edep = emp.and_then(|e| s.departments.get(&e.department));
    let task = s.tasks.get(&u.task);
    let pr = task.and_then(|t| s.projects.get(&t.project));
    let cu = pr.and_then(|p| s.customers.get(&p.customer));
    let pdep = pr.and_then(|p| s.departments.get(&p.department));
    let chain = task.map(|t| s.task_chain(t)).unwrap_or_default();
    let guid_or_nil = |v: Option<Uuid>| v.map_or(NIL_GUID.to_owned(), g);
    [
        head,
        el(p, "ApprovedStatus", &u.approved.to_string()),
        guid_name_no(p, "Customer", cu.map(|c| (c.guid, &*c.name, &*c.no))),
        el(p, "Date", &day(u.date())),
        guid_name_no(
            p,
            "EmployeeDepartment",
            edep.map(|d| (d.guid, &*d.name, &*d.no)),
        ),
        el(p, "EmployeeGuid", &guid_or_nil(emp.map(|e| e.guid))),
        opt(p, "EmployeeInitials", emp.map(|e| e.initials.as_str())),
        opt(p, "EmployeeInternalId", emp.map(|e| e.employee_no.as_str())),
        el(p, "Hours", &num(u.seconds as f64 / 3600.0)),
        opt(
            p,
            "ProjectCategoryName",
            pr.map(|p| p.category_name.as_str()),
        ),
        guid_name_no(
            p,
            "ProjectDepartment",
            pdep.map(|d| (d.guid, &*d.name, &*d.no)),
        ),
        guid_name_no(p, "Project", pr.map(|p| (p.guid, &*p.name, &*p.no))),
        opt(
            p,
            "ProjectStatusName",
            pr.map(|p| if p.active { "Active" } else { "Inactive" }),
        ),
        opt(p, "ProjectTypeName", pr.map(|p| p.type_name.as_str())),
        el(p, "SalaryCode", ""),
        el(p, "SalaryCodeGuid", NIL_GUID),
        el(p, "SalaryCodeName", ""),
        el(p, "TaskGuid", &guid_or_nil(task.map(|t| t.guid))),
        opt(p, "TaskName", task.map(|t| t.name.as_str())),
        el(p, "TaskNameChain", &full_name(&chain)),
        opt(p, "TaskNo", task.map(|t| t.no.as_str())),
        el(p, "TaskNoChain", &no_chain(&chain)),
        el(
            p,
            "TaskParentGuid",
            &guid_or_nil(
                task.and_then(|t| t.parent)
                    .and_then(|id| s.tasks.get(&id))
                    .map(|x| x.guid),
            ),
        ),
        opt(p, "TaskTypeName", task.map(|t| task_type_name(t.task_type))),
        opt(p, "TaskWBS", task.map(|t| s.wbs(t)).as_deref()),
        el(p, "UserGuid", &guid_or_nil(emp.map(|e| e.user_guid))),
        el(p, "UserId", &emp.map_or(0, |e| e.user_id).to_string()),
        el(p, "WorkUnitGuid", &g(u.guid)),
    ]
    .concat()
}
