//! The Reporting API (`/{account}/service.asmx`, ASMX SOAP 1.1): `ValidateCredentials`,
//! `GetEmployeesRaw`, `GetProjectsRaw`, `GetTasksRaw` and `GetWorkUnitsRaw`, each answering
//! an XML document in `http://www.timelog.com/XML/Schema/tlp/v4_4` with the XSD's element
//! names (case-sensitive, inconsistent casing kept).

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, Response, StatusCode};
use chrono::NaiveDate;

use super::soap::{accept, envelope, fault, xml_response};
use super::xml::{El, day, dec4, dt, el};
use super::{Task, TimelogControl, TimelogState};

/// Reporting service namespace (operations and parameters).
const REP_NS: &str = "http://www.timelog.com/ws/tlp/v4_4";
/// Namespace of the result documents.
const RESULT_NS: &str = "http://www.timelog.com/XML/Schema/tlp/v4_4";

const OPS: &[&str] = &[
    "ValidateCredentials",
    "GetEmployeesRaw",
    "GetProjectsRaw",
    "GetTasksRaw",
    "GetWorkUnitsRaw",
];

pub(crate) async fn handle(
    State(h): State<TimelogControl>,
    Path(account): Path<String>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let call = match accept(&h, &account, &method, &headers, &body, REP_NS, |op| {
        OPS.contains(&op).then(|| format!("{REP_NS}/{op}"))
    })
    .await
    {
        Ok(c) => c,
        Err(r) => return r,
    };
    let p = &call.body;
    let op = call.op.as_str();
    h.with(|s| {
        let text = |n: &str| p.text_of(REP_NS, n).unwrap_or("").to_owned();
        let ok = text("siteCode") == s.site_code
            && text("apiID") == s.reporting_id
            && text("apiPassword") == s.reporting_password;
        if op == "ValidateCredentials" {
            return answer(op, if ok { "true" } else { "false" });
        }
        if !ok {
            return fault(
                StatusCode::UNAUTHORIZED,
                "Client",
                "The Site ID, API ID and API password combination is invalid",
            );
        }
        if let Some(status) = s.take_lost_answer(op) {
            // A read whose answer never arrives: a gateway's page instead.
            return crate::common::plain(status, "Injected failure (sandbox lose_next_answers)");
        }
        let doc = match op {
            "GetEmployeesRaw" => employees(s, p),
            "GetProjectsRaw" => projects(s, p),
            "GetTasksRaw" => tasks(s, p),
            _ => work_units(s, p),
        };
        match doc {
            Ok(doc) => answer(op, &doc),
            // Bad input is a 500, as the Reporting docs say.
            Err(m) => fault(StatusCode::INTERNAL_SERVER_ERROR, "Server", &m),
        }
    })
}

fn answer(op: &str, result: &str) -> Response<Body> {
    xml_response(
        StatusCode::OK,
        envelope(&format!(
            "<{op}Response xmlns=\"{REP_NS}\"><{op}Result>{result}</{op}Result></{op}Response>"
        )),
    )
}

/// `<tlp:{root}>rows</tlp:{root}>`, with `resultEmpty="true"` when there are none.
fn document(root: &str, rows: Vec<String>) -> String {
    let empty = if rows.is_empty() {
        " resultEmpty=\"true\""
    } else {
        ""
    };
    format!(
        "<tlp:{root}{empty} xmlns:tlp=\"{RESULT_NS}\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">{}</tlp:{root}>",
        rows.concat()
    )
}

/// An int parameter: absent or empty is 0 (ASMX's default), garbage an error.
fn int(p: &El, name: &str) -> Result<i64, String> {
    match p.text_of(REP_NS, name) {
        None | Some("") => Ok(0),
        Some(v) => v
            .parse()
            .map_err(|_| format!("Parameter {name}: '{v}' is not a valid integer")),
    }
}

fn date(p: &El, name: &str) -> Result<Option<NaiveDate>, String> {
    match p.text_of(REP_NS, name) {
        None | Some("") => Ok(None),
        Some(v) => NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| format!("Parameter {name}: '{v}' is not a date (yyyy-MM-dd)")),
    }
}

fn t(name: &str, v: &str) -> String {
    el("tlp", name, v)
}

fn bit(v: bool) -> &'static str {
    if v { "1" } else { "0" }
}

fn employees(s: &TimelogState, p: &El) -> Result<String, String> {
    let id = int(p, "employeeID")?;
    let initials = p.text_of(REP_NS, "initials").unwrap_or("");
    let department = int(p, "departmentID")?;
    let status = int(p, "status")?;
    if !(-1..=1).contains(&status) {
        return Err(format!("Parameter status: {status} is not -1, 0 or 1"));
    }
    let rows = s
        .employees
        .values()
        .filter(|e| id == 0 || i64::from(e.id) == id)
        .filter(|e| initials.is_empty() || e.initials.eq_ignore_ascii_case(initials))
        .filter(|e| department == 0 || i64::from(e.department) == department)
        .filter(|e| status == -1 || (status == 1) == e.active())
        .map(|e| {
            let dep = s.departments.get(&e.department);
            let mut r = format!("<tlp:Employee ID=\"{}\">", e.id);
            r.push_str(&t("EmployeeUserId", &e.user_id.to_string()));
            r.push_str(&t("FirstName", &e.first_name));
            r.push_str(&t("LastName", &e.last_name));
            r.push_str(&t("FullName", &e.full_name()));
            r.push_str(&t("Initials", &e.initials));
            r.push_str(&t("Title", &e.title));
            r.push_str(&t("Email", &e.email));
            r.push_str(&t("Phone", ""));
            r.push_str(&t("Mobile", ""));
            r.push_str(&t("Status", bit(e.active())));
            r.push_str(&t("HiredDate", &format!("{}.000", day(e.hired))));
            if let Some(end) = e.terminated {
                r.push_str(&t("TerminatedDate", &format!("{}.000", day(end))));
            }
            if let Some(d) = dep {
                r.push_str(&t("DepartmentNameID", &d.id.to_string()));
                r.push_str(&t("DepartmentName", &d.name));
            }
            r.push_str(&t("WorkWeek", "Full time - 37.5 hours"));
            r.push_str(&t("EmployeeTypeID", "1"));
            r.push_str(&t("EmployeeTypeName", "Employee"));
            r.push_str(&t("EmployeeNo", &e.employee_no));
            r.push_str(&t("Username", &e.username));
            r.push_str(&t("CostPrice", "650.00"));
            r.push_str(&t("LegalEntityID", "1"));
            r.push_str(&t("DefaultHourlyRateID", "64"));
            r.push_str(&t("DefaultHourlyRate", "1100.0000"));
            r.push_str(&t("DefaultHourlyRateCurrency", "NOK"));
            r.push_str("</tlp:Employee>");
            r
        })
        .collect();
    Ok(document("Employees", rows))
}

fn projects(s: &TimelogState, p: &El) -> Result<String, String> {
    let id = int(p, "projectID")?;
    let status = int(p, "status")?;
    let customer = int(p, "customerID")?;
    let manager = int(p, "projectManagerID")?;
    if !matches!(status, -2 | 0 | 1) {
        return Err(format!("Parameter status: {status} is not -2, 0 or 1"));
    }
    let rows = s
        .projects
        .values()
        .filter(|x| id == 0 || i64::from(x.id) == id)
        .filter(|x| status == -2 || (status == 1) == x.active)
        .filter(|x| customer == 0 || i64::from(x.customer) == customer)
        .filter(|x| manager == 0 || i64::from(x.manager) == manager)
        .map(|x| {
            let cu = s.customers.get(&x.customer);
            let pm = s.employees.get(&x.manager);
            let pm_initials = pm.map_or(String::new(), |e| e.initials.clone());
            let pm_name = pm.map_or(String::new(), |e| e.full_name());
            let created = dt(x.created_at);
            let mut r = format!(
                "<tlp:Project ID=\"{}\" GUID=\"{}\">",
                x.id,
                x.guid.hyphenated()
            );
            for (n, v) in [
                ("Name", x.name.clone()),
                ("No", x.no.clone()),
                ("Status", bit(x.active).into()),
                ("Department", x.department.to_string()),
                ("OrderedByDepartment", x.department.to_string()),
                ("ProjectStartDate", day(x.start)),
                ("ProjectEndDate", day(x.end)),
                ("Link", String::new()),
                ("Description", String::new()),
                ("CustomerID", x.customer.to_string()),
                ("CustomerName", cu.map_or(String::new(), |c| c.name.clone())),
                ("CustomerNo", cu.map_or(String::new(), |c| c.no.clone())),
                ("PMID", x.manager.to_string()),
                ("PMInitials", pm_initials.clone()),
                ("PMFullName", pm_name.clone()),
                ("AccountManagerID", x.manager.to_string()),
                ("AccountManagerInitials", pm_initials.clone()),
                ("AccountManagerFullName", pm_name.clone()),
                ("PartnerID", x.manager.to_string()),
                ("PartnerInitials", pm_initials.clone()),
                ("PartnerFullName", pm_name.clone()),
                ("ProjectTypeID", "1".into()),
                ("ProjectTypeName", x.type_name.clone()),
                ("ProjectCategoryID", "1".into()),
                ("ProjectCategoryName", x.category_name.clone()),
                ("BudgetAmountFixedPriceTasks", "0".into()),
                ("BudgetAmountFixedPriceProject", "0".into()),
                ("BudgetAmountTimeAndMaterial", "0".into()),
                ("BudgetAmountExpenses", "0".into()),
                ("BudgetAmountTravel", "0".into()),
                ("BudgetAmountWorkCurrency", "0".into()),
                ("BudgetAmountExpenseCurrency", "0".into()),
                ("BudgetAmountTravelCurrency", "0".into()),
                ("BudgetHoursFixedPriceTasks", "0".into()),
                ("BudgetHoursFixedPriceProject", "0".into()),
                ("BudgetHoursTimeAndMaterial", "0".into()),
                ("BudgetAmount", "0".into()),
                ("BudgetHours", "0".into()),
                ("ForecastPercent", "0".into()),
                ("CreatedAt", created.clone()),
                ("CreatedByEmployeeId", x.manager.to_string()),
                ("CreatedBy", pm_initials.clone()),
                ("LastModifiedAt", created),
                ("LastModifiedByEmployeeId", x.manager.to_string()),
                ("LastModifiedBy", pm_initials.clone()),
                (
                    "ProjectStatusName",
                    if x.active { "Ongoing" } else { "Closed" }.into(),
                ),
                ("ContactID", "0".into()),
                ("ContactFullName", String::new()),
                ("ContactEmail", String::new()),
                ("InternalProject", "0".into()),
                ("PONumber", String::new()),
                ("ProjectStage", String::new()),
                ("CurrencyISOCode", "NOK".into()),
                ("CurrencyRate", "100.0000".into()),
                ("IsMultiCustomerProject", "0".into()),
                ("LegalEntityID", "1".into()),
            ] {
                r.push_str(&t(n, &v));
            }
            r.push_str("</tlp:Project>");
            r
        })
        .collect();
    Ok(document("Projects", rows))
}

fn task_row(s: &TimelogState, x: &Task) -> String {
    let pr = s.projects.get(&x.project);
    let by = |id: i32| {
        s.employees
            .get(&id)
            .map_or(String::new(), |e| e.initials.clone())
    };
    let mut r = format!(
        "<tlp:Task ID=\"{}\" GUID=\"{}\">",
        x.id,
        x.guid.hyphenated().to_string().to_uppercase()
    );
    for (n, v) in [
        ("Name", x.name.clone()),
        ("WBS", s.wbs(x)),
        ("TaskNo", x.no.clone()),
        ("ProjectID", x.project.to_string()),
        ("ProjectNo", pr.map_or(String::new(), |p| p.no.clone())),
        ("Status", bit(x.active()).into()),
        ("StatusDetailed", x.status.to_string()),
        ("ProjectSubContractID", "88".into()),
        ("ParentID", x.parent.unwrap_or(0).to_string()),
        ("IsParent", bit(s.is_parent(x.id)).into()),
        ("TaskTypeID", x.task_type.to_string()),
        (
            "TaskType",
            if x.task_type == 12 {
                "Development"
            } else {
                "General"
            }
            .into(),
        ),
        ("BudgetHours", dec4(x.budget_hours)),
        ("BudgetAmount", dec4(x.budget_amount)),
        ("BudgetAmountCurrency", dec4(x.budget_amount)),
        ("IsFixedPrice", "0".into()),
        ("StartDate", day(x.start)),
        ("EndDate", day(x.end)),
        ("InvoicingType", "TimeMaterial".into()),
        ("CreatedAt", dt(x.created_at)),
        ("CreatedByEmployeeId", x.created_by.to_string()),
        ("CreatedBy", by(x.created_by)),
        ("LastModifiedAt", dt(x.modified_at)),
        ("LastModifiedByEmployeeId", x.modified_by.to_string()),
        ("LastModifiedBy", by(x.modified_by)),
        ("IsBillable", "1".into()),
        ("AllocatedRevenueAmount", dec4(0.0)),
        ("AllocatedRevenueAmountCurrency", dec4(0.0)),
    ] {
        r.push_str(&t(n, &v));
    }
    r.push_str("</tlp:Task>");
    r
}

fn tasks(s: &TimelogState, p: &El) -> Result<String, String> {
    let id = int(p, "taskID")?;
    let project = int(p, "projectID")?;
    let status = int(p, "status")?;
    let task_type = int(p, "taskTypeID")?;
    if !(-1..=1).contains(&status) {
        return Err(format!("Parameter status: {status} is not -1, 0 or 1"));
    }
    let rows = s
        .tasks
        .values()
        .filter(|x| id == 0 || i64::from(x.id) == id)
        .filter(|x| project == 0 || i64::from(x.project) == project)
        .filter(|x| status == -1 || (status == 1) == x.active())
        .filter(|x| task_type == 0 || i64::from(x.task_type) == task_type)
        .map(|x| task_row(s, x))
        .collect();
    Ok(document("Tasks", rows))
}

fn work_units(s: &TimelogState, p: &El) -> Result<String, String> {
    let id = int(p, "workUnitID")?;
    let employee = int(p, "employeeID")?;
    let allocation = int(p, "allocationID")?;
    let task = int(p, "taskID")?;
    let project = int(p, "projectID")?;
    let department = int(p, "departmentID")?;
    let from = date(p, "startDate")?;
    let to = date(p, "endDate")?;
    let mut units: Vec<_> = s
        .work
        .values()
        .filter(|u| id == 0 || u.id == id)
        .filter(|u| employee == 0 || i64::from(u.employee) == employee)
        .filter(|u| allocation == 0 || i64::from(u.allocation) == allocation)
        .filter(|u| task == 0 || i64::from(u.task) == task)
        .filter(|u| {
            project == 0
                || s.tasks
                    .get(&u.task)
                    .is_some_and(|t| i64::from(t.project) == project)
        })
        .filter(|u| {
            department == 0
                || s.employees
                    .get(&u.employee)
                    .is_some_and(|e| i64::from(e.department) == department)
        })
        .filter(|u| from.is_none_or(|f| u.date() >= f) && to.is_none_or(|t| u.date() <= t))
        .collect();
    units.sort_by_key(|u| (u.start, u.id));
    let rows = units
        .into_iter()
        .map(|u| {
            let emp = s.employees.get(&u.employee);
            let tk = s.tasks.get(&u.task);
            let pr = tk.and_then(|t| s.projects.get(&t.project));
            let cu = pr.and_then(|p| s.customers.get(&p.customer));
            let dep = emp.and_then(|e| s.departments.get(&e.department));
            let hours = u.seconds as f64 / 3600.0;
            let rate = 1100.0;
            let by = |id: i32| {
                s.employees
                    .get(&id)
                    .map_or(String::new(), |e| e.initials.clone())
            };
            let end = u.start + chrono::Duration::seconds(u.seconds);
            let mut r = format!("<tlp:WorkUnit ID=\"{}\" OldID=\"{}\">", u.id, u.id);
            for (n, v) in [
                (
                    "TimeRegistrationGuid",
                    u.guid.hyphenated().to_string().to_uppercase(),
                ),
                (
                    "WorkUnitGuid",
                    u.guid.hyphenated().to_string().to_uppercase(),
                ),
                ("OvertimeFactor", "100".into()),
                ("EmployeeID", u.employee.to_string()),
                (
                    "EmployeeInitials",
                    emp.map_or(String::new(), |e| e.initials.clone()),
                ),
                (
                    "EmployeeFirstName",
                    emp.map_or(String::new(), |e| e.first_name.clone()),
                ),
                (
                    "EmployeeLastName",
                    emp.map_or(String::new(), |e| e.last_name.clone()),
                ),
                ("AllocationID", u.allocation.to_string()),
                ("TaskID", u.task.to_string()),
                ("TaskName", tk.map_or(String::new(), |t| t.name.clone())),
                ("ProjectID", tk.map_or(0, |t| t.project).to_string()),
                ("ProjectName", pr.map_or(String::new(), |p| p.name.clone())),
                ("CustomerId", cu.map_or(0, |c| c.id).to_string()),
                ("CustomerName", cu.map_or(String::new(), |c| c.name.clone())),
                ("Date", day(u.date())),
                ("StartTime", dt(u.start)),
                ("EndTime", dt(end)),
                ("Note", u.description.clone()),
                ("DepartmentID", dep.map_or(0, |d| d.id).to_string()),
                (
                    "DepartmentName",
                    dep.map_or(String::new(), |d| d.name.clone()),
                ),
                (
                    "AdditionalTextField",
                    u.additional_text.clone().unwrap_or_default(),
                ),
                ("ActualExchangeRate", dec4(100.0)),
                ("RegHours", dec4(hours)),
                ("RegHourlyRate", dec4(rate)),
                ("RegHourlyRateProjectCurrency", dec4(rate)),
                ("RegAmount", dec4(hours * rate)),
                ("RegAmountProjectCurrency", dec4(hours * rate)),
                ("EstimatedHours", dec4(u.billable_seconds as f64 / 3600.0)),
                ("EstimatedHourlyRate", dec4(rate)),
                ("EstimatedHourlyRateProjectCurrency", dec4(rate)),
                (
                    "EstimatedAmount",
                    dec4(u.billable_seconds as f64 / 3600.0 * rate),
                ),
                (
                    "EstimatedAmountProjectCurrency",
                    dec4(u.billable_seconds as f64 / 3600.0 * rate),
                ),
                ("BARHours", dec4(0.0)),
                ("BARHourlyRate", dec4(0.0)),
                ("BARHourlyRateProjectCurrency", dec4(0.0)),
                ("BARAmount", dec4(0.0)),
                ("BARAmountProjectCurrency", dec4(0.0)),
                ("InvoicedHours", dec4(0.0)),
                ("InvoicedHourlyRate", dec4(0.0)),
                ("InvoicedHourlyRateProjectCurrency", dec4(0.0)),
                ("InvoicedAmount", dec4(0.0)),
                ("InvoicedAmountProjectCurrency", dec4(0.0)),
                ("InvHours", dec4(0.0)),
                ("InvAmount", dec4(0.0)),
                ("CostAmount", dec4(hours * 650.0)),
                ("CostAmountCurrency", dec4(hours * 650.0)),
                ("HourlyRateId", "64".into()),
                ("InvoiceStatus", "0".into()),
                ("BillableStatus", "1".into()),
                ("IsBillable", "1".into()),
                ("ApprovedStatus", u.approved.to_string()),
                ("MonthlyPeriod", u.date().format("%Y-%m").to_string()),
                ("CreatedAt", dt(u.created_at)),
                ("CreatedByEmployeeId", u.created_by.to_string()),
                ("CreatedBy", by(u.created_by)),
                ("LastModifiedAt", dt(u.modified_at)),
                ("LastModifiedByEmployeeId", u.modified_by.to_string()),
                ("LastModifiedBy", by(u.modified_by)),
                ("UserID", emp.map_or(0, |e| e.user_id).to_string()),
            ] {
                r.push_str(&t(n, &v));
            }
            r.push_str("</tlp:WorkUnit>");
            r
        })
        .collect();
    Ok(document("WorkUnits", rows))
}
