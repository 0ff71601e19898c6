//! The TimeLog adapter against the reference fixtures, served by a local mock of the three
//! services.

use std::collections::BTreeMap;

use chrono::{NaiveDate, TimeZone, Utc};
use hourbridge_domain::SecretValue;
use hourbridge_provider_api::{
    ChangeWindow, CredentialCheckError, OutboundTask, OutboundTime, Provider, ProviderError,
    ProviderErrorKind, ProviderSession, RemotePage, RemoteProject, TimeChange,
};
use hourbridge_provider_http::ProviderEnv;
use hourbridge_provider_timelog::{self as timelog, TimeLog, wire, xml};
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockBuilder, MockServer, Request, ResponseTemplate};

const SECURITY: &str = "/nordlys/WebServices/Security/V1_2/SecurityServiceSecure.svc";
const PM: &str = "/nordlys/WebServices/ProjectManagement/V1_8/ProjectManagementServiceSecure.svc";
const REPORTING: &str = "/nordlys/service.asmx";

const CHANGES: &str =
    "http://www.timelog.com/api/tlp/v1_8/ProjectManagementService/GetWorkChangesPaged";
const WORK_UNITS: &str = "http://www.timelog.com/ws/tlp/v4_4/GetWorkUnitsRaw";

const TASK_GUID: &str = "2f8d4c61-7b09-4e3a-a5c2-6d1e8f0b3a94";

fn fixture(name: &str) -> String {
    let p = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// The `...Result` of fixture `name`, an answer of `op` that must be a success.
fn fixture_result(name: &str, op: &str) -> xml::Node {
    let answer = wire::read_answer(fixture(name).as_bytes(), op).unwrap();
    let wire::Answer::Success(result) = answer else {
        panic!("{answer:?}")
    };
    result
}

/// A fixture without its XML declaration, to embed in an envelope.
fn fragment(name: &str) -> String {
    let f = fixture(name);
    match f.find("?>") {
        Some(i) if f.starts_with("<?xml") => f[i + 2..].to_owned(),
        _ => f,
    }
}

fn session(domain: &str) -> ProviderSession {
    let mut secrets = BTreeMap::new();
    secrets.insert("password".into(), SecretValue::new("pw<&>"));
    secrets.insert("reporting_password".into(), SecretValue::new("rpw"));
    ProviderSession {
        workspace_id: "w1".into(),
        secrets,
        settings: serde_json::json!({
            "domain": domain, "account_name": "nordlys", "username": "sync@nordlys.example",
            "site_code": "SITE1", "reporting_username": "apiid",
        }),
    }
}

fn adapter() -> TimeLog {
    TimeLog::from_env(&ProviderEnv::for_tests(&[(timelog::ALLOW_HTTP_VAR, "1")])).unwrap()
}

fn xml_response(body: String) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body.into_bytes(), "text/xml; charset=utf-8")
}

fn action(a: &str) -> wiremock::matchers::HeaderExactMatcher {
    header("SOAPAction", format!("\"{a}\"").as_str())
}

/// A ProjectManagement answer of `op` with `inner` as `Return`.
fn pm_answer(op: &str, inner: &str, state: &str, messages: &str) -> String {
    format!(
        r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><{op}Response xmlns="http://www.timelog.com/api/tlp/v1_8"><{op}Result xmlns:a="http://api.timelog.com" xmlns:i="http://www.w3.org/2001/XMLSchema-instance"><a:Return>{inner}</a:Return><a:ReturnTypeDescription>x</a:ReturnTypeDescription><a:ResponseState>{state}</a:ResponseState><a:Messages>{messages}</a:Messages><a:ErrorCode>0</a:ErrorCode></{op}Result></{op}Response></s:Body></s:Envelope>"#
    )
}

fn api_message(text: &str) -> String {
    format!(
        "<a:APIMessage><a:Message>{text}</a:Message><a:Severity>Error</a:Severity><a:ErrorCode>10001</a:ErrorCode></a:APIMessage>"
    )
}

/// A ProjectManagement answer of `op` in state `Error` with one message `text`.
fn pm_refused(op: &str, text: &str) -> ResponseTemplate {
    xml_response(pm_answer(op, "", "Error", &api_message(text)))
}

/// A Reporting answer of `method` wrapping `result`.
fn reporting_answer(method: &str, result: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><{method}Response xmlns="http://www.timelog.com/ws/tlp/v4_4"><{method}Result>{result}</{method}Result></{method}Response></soap:Body></soap:Envelope>"#
    )
}

fn task_xml(guid: &str, task_id: i64, name: &str, active: bool) -> String {
    task_element("b:Task", guid, task_id, name, active)
}

/// A `Task` as element `element` (`b:Task` in a `Return`, `b:Item` in a batch container).
fn task_element(element: &str, guid: &str, task_id: i64, name: &str, active: bool) -> String {
    format!(
        r#"<{element} xmlns:b="http://www.timelog.com/api/tlp/v1_7" xmlns:c="http://api.timelog.com"><c:Action>Original</c:Action><c:IsCustomFieldsLoaded>false</c:IsCustomFieldsLoaded><c:CustomFields i:nil="true"/><c:IsExternalKeysLoaded>false</c:IsExternalKeysLoaded><c:ExternalKeys i:nil="true"/><b:ID>{guid}</b:ID><b:TaskID>{task_id}</b:TaskID><b:Name>{name}</b:Name><b:FullName i:nil="true"/><b:Details><b:ProjectHeader><b:ID>612</b:ID><b:ProjectGUID>9e3b6d20-14f5-4c7a-8b1e-3a2f0c9d8e71</b:ProjectGUID></b:ProjectHeader></b:Details><b:State><b:IsActive>{active}</b:IsActive></b:State></{element}>"#
    )
}

const PROJECTS: &str = r#"<b:ProjectHeader xmlns:b="http://www.timelog.com/api/tlp/v1_7"><b:ID>612</b:ID><b:ProjectGUID>9E3B6D20-14F5-4C7A-8B1E-3A2F0C9D8E71</b:ProjectGUID><b:Name>Intranet relaunch</b:Name><b:No>P26.0042</b:No><b:IsActive>true</b:IsActive></b:ProjectHeader><b:ProjectHeader xmlns:b="http://www.timelog.com/api/tlp/v1_7"><b:ID>700</b:ID><b:ProjectGUID>11111111-2222-4333-8444-555555555555</b:ProjectGUID><b:Name>Internal</b:Name><b:No>INT</b:No><b:IsActive>true</b:IsActive></b:ProjectHeader>"#;

/// The expiry the mock's tokens carry: the fixture's time of day, years ahead.
const EXPIRES: &str = "2099-05-21T05:14:09.5531234+02:00";

/// The GetToken fixture with an expiry in the future (the fixture's own has passed).
fn token_answer() -> String {
    fixture("timelog-soap-gettoken-response.xml")
        .replace("2026-05-21T05:14:09.5531234+02:00", EXPIRES)
}

/// A POST to `service` with SOAPAction `a`.
fn soap_call(service: &str, a: &str) -> MockBuilder {
    Mock::given(method("POST"))
        .and(path(service))
        .and(action(a))
}

async fn mount_token(server: &MockServer, expect: u64) {
    soap_call(SECURITY, "GetTokenRequest")
        .respond_with(xml_response(token_answer()))
        .expect(expect)
        .mount(server)
        .await;
}

async fn mount_employees(server: &MockServer) {
    soap_call(
        REPORTING,
        "http://www.timelog.com/ws/tlp/v4_4/GetEmployeesRaw",
    )
    .respond_with(xml_response(reporting_answer(
        "GetEmployeesRaw",
        &fragment("timelog-reporting-employees-raw.xml"),
    )))
    .mount(server)
    .await;
}

async fn mount_pm(server: &MockServer, op: &str, soap_action: &str, answer: String) {
    soap_call(PM, soap_action)
        .respond_with(xml_response(pm_answer(op, &answer, "Success", "")))
        .mount(server)
        .await;
}

async fn mount_task(server: &MockServer) {
    mount_pm(
        server,
        "GetTaskById",
        "http://www.timelog.com/api/tlp/v1_8/ProjectManagementService/GetTaskById",
        task_xml(TASK_GUID, 4817, "Copywriting", true),
    )
    .await;
}

async fn mount_projects(server: &MockServer) {
    mount_pm(server, "GetProjects", "GetProjectsRequest", PROJECTS.into()).await;
}

/// Reporting `GetWorkUnitsRaw` answering `work_units`.
async fn mount_work_units(server: &MockServer, work_units: &str) {
    soap_call(REPORTING, WORK_UNITS)
        .respond_with(xml_response(reporting_answer(
            "GetWorkUnitsRaw",
            work_units,
        )))
        .mount(server)
        .await;
}

/// A ProjectManagement SOAP fault (HTTP 500) saying `text`.
fn soap_fault(text: &str) -> ResponseTemplate {
    ResponseTemplate::new(500).set_body_raw(
        format!(
            r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>{text}</faultstring></s:Fault></s:Body></s:Envelope>"#
        ),
        "text/xml",
    )
}

/// Every project, as a fresh adapter lists them from `server`.
async fn list_projects(server: &MockServer) -> Result<RemotePage<RemoteProject>, ProviderError> {
    adapter()
        .directory()
        .unwrap()
        .list_projects(&session(&server.address().to_string()), None, None)
        .await
}

fn body_of(r: &Request) -> xml::Node {
    xml::parse(&r.body).expect("our envelopes are well-formed")
}

async fn requests_with_action(server: &MockServer, a: &str) -> Vec<Request> {
    let quoted = format!("\"{a}\"");
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| {
            r.headers
                .get("soapaction")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v == quoted)
        })
        .collect()
}

fn time(note: &str) -> OutboundTime {
    OutboundTime {
        remote_project_id: "612".into(),
        remote_task_id: Some(TASK_GUID.to_uppercase()),
        remote_person_id: "47".into(),
        date: NaiveDate::from_ymd_opt(2026, 5, 20).unwrap(),
        minutes: 90,
        note: note.into(),
    }
}

#[test]
fn the_gettoken_fixture_reads_as_a_token() {
    let result = fixture_result("timelog-soap-gettoken-response.xml", "GetToken");
    let t = wire::token(&result).unwrap();
    assert_eq!(t.initials, "SYNC");
    assert_eq!(t.expires, "2026-05-21T05:14:09.5531234+02:00");
    assert!(t.hash.starts_with("FAKEHASH"));
    assert_eq!(
        t.expires_at(),
        Some(
            Utc.with_ymd_and_hms(2026, 5, 21, 3, 14, 9).unwrap()
                + chrono::Duration::nanoseconds(553_123_400)
        )
    );
    assert!(
        !format!("{t:?}").contains("FAKEHASH"),
        "the hash stays out of logs"
    );
}

#[test]
fn the_change_fixture_reads_creates_updates_and_deletes() {
    let result = fixture_result(
        "timelog-soap-getworkchangespaged-response.xml",
        "GetWorkChangesPaged",
    );
    let rows: Vec<_> = wire::returned(&result)
        .into_iter()
        .filter_map(wire::work_unit_flat)
        .collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].action, "Created");
    assert_eq!(rows[0].hours, 2.5);
    assert_eq!(rows[0].employee_initials.as_deref(), Some("JBE"));
    assert_eq!(rows[1].action, "Updated");
    assert_eq!(rows[2].action, "Deleted");
    assert_eq!(rows[2].project_guid, None);
    assert_eq!(rows[2].employee_initials, None, "i:nil is absent");
    assert_eq!(
        rows[2].work_unit_guid,
        "a7d2f4c8-3e19-4b6d-9c0a-5f8e2d1b7c36"
    );
}

#[test]
fn the_insertwork_fixture_has_one_refused_item() {
    let result = fixture_result("timelog-soap-insertwork-response.xml", "InsertWork");
    let items = wire::batch_items(&result);
    assert_eq!(items.len(), 2);
    assert!(items[0].ok());
    assert_eq!(
        items[0].item.and_then(|i| i.text_of("GUID")),
        Some("3c9e1a7b-5d24-4f80-b1e6-8a0c2d4f6e19")
    );
    assert!(!items[1].ok());
    assert!(items[1].item.is_none());
    assert!(items[1].message.contains("week is closed"));
}

#[test]
fn the_reporting_fixtures_read_tasks_and_employees() {
    let tasks = xml::parse(fixture("timelog-reporting-tasks-raw.xml").as_bytes()).unwrap();
    let tasks: Vec<_> = wire::reporting_rows(&tasks, "Tasks", "Task")
        .into_iter()
        .filter_map(wire::reported_task)
        .collect();
    assert_eq!(tasks.len(), 2);
    assert_eq!(tasks[1].id, 4817);
    assert_eq!(tasks[1].guid, TASK_GUID, "GUIDs are lowercased");
    assert_eq!(tasks[1].project_id, Some(612));
    assert!(tasks[1].active);

    let employees = xml::parse(fixture("timelog-reporting-employees-raw.xml").as_bytes()).unwrap();
    let employees: Vec<_> = wire::reporting_rows(&employees, "Employees", "Employee")
        .into_iter()
        .filter_map(wire::employee)
        .collect();
    assert_eq!(employees.len(), 2);
    assert_eq!(employees[0].id, 47);
    assert_eq!(employees[0].initials, "JBE");
    assert_eq!(employees[0].user_id, 52);
    assert_eq!(
        employees[0].email.as_deref(),
        Some("Jonas.Berg@Nordlys.example"),
        "e-mail as stored"
    );
    assert!(employees[0].active);
    assert!(!employees[1].active);
}

#[tokio::test]
async fn changes_map_the_fixture_with_ids_people_and_notes() {
    let server = MockServer::start().await;
    // Two adapters below: each fetches its own token.
    mount_token(&server, 2).await;
    mount_employees(&server).await;
    soap_call(PM, CHANGES)
        .respond_with(xml_response(fixture(
            "timelog-soap-getworkchangespaged-response.xml",
        )))
        .mount(&server)
        .await;
    mount_projects(&server).await;
    mount_work_units(
        &server,
        r#"<tlp:WorkUnits xmlns:tlp="http://www.timelog.com/XML/Schema/tlp/v4_4"><tlp:WorkUnit ID="9"><tlp:WorkUnitGuid>E1B7C3D9-5A2F-4E80-B6C4-0F9A8D7E6C51</tlp:WorkUnitGuid><tlp:Note>Copy &lt;draft&gt; &amp; review</tlp:Note></tlp:WorkUnit></tlp:WorkUnits>"#,
    )
    .await;

    let t = adapter().with_changes_page_size(3);
    let s = session(&server.address().to_string());
    let window = ChangeWindow {
        since: Utc.with_ymd_and_hms(2026, 5, 20, 16, 0, 0).unwrap(),
        until: Utc.with_ymd_and_hms(2026, 5, 20, 19, 0, 0).unwrap(),
    };
    let page = t
        .time_changes()
        .unwrap()
        .changes(&s, window, None)
        .await
        .unwrap();
    assert_eq!(
        page.next.as_deref(),
        Some("2"),
        "a full page has a next one"
    );
    assert_eq!(page.items.len(), 3);
    let TimeChange::Upserted(created) = &page.items[0] else {
        panic!("{:?}", page.items[0])
    };
    assert_eq!(created.note, "", "change rows carry no note");
    let mut rows = vec![created.clone()];
    t.time_changes()
        .unwrap()
        .complete(&s, &mut rows)
        .await
        .unwrap();
    let created = &rows[0];
    assert_eq!(created.id, "e1b7c3d9-5a2f-4e80-b6c4-0f9a8d7e6c51");
    assert_eq!(created.project_id, "612");
    assert_eq!(created.task_id.as_deref(), Some(TASK_GUID));
    assert_eq!(created.person.id, "47");
    assert_eq!(created.person.name, "Jonas Berg");
    assert_eq!(
        created.person.email.as_deref(),
        Some("Jonas.Berg@Nordlys.example")
    );
    assert_eq!(created.date, NaiveDate::from_ymd_opt(2026, 5, 20).unwrap());
    assert_eq!(created.minutes, 150);
    assert_eq!(created.note, "Copy <draft> & review");
    assert!(!created.running && !created.deleted);
    assert_eq!(
        created.updated_at,
        Some(Utc.with_ymd_and_hms(2026, 5, 20, 16, 2, 11).unwrap())
    );
    let TimeChange::Upserted(updated) = &page.items[1] else {
        panic!("{:?}", page.items[1])
    };
    assert_eq!(updated.minutes, 180);
    assert_eq!(
        page.items[2],
        TimeChange::Deleted {
            id: "a7d2f4c8-3e19-4b6d-9c0a-5f8e2d1b7c36".into(),
            at: Some(Utc.with_ymd_and_hms(2026, 5, 20, 18, 10, 40).unwrap()),
        }
    );

    // The request: all registrations, the window, 1-based page, the page size.
    let sent = requests_with_action(&server, CHANGES).await;
    let root = body_of(&sent[0]);
    let op = xml::soap_body_child(&root).unwrap();
    assert_eq!(
        op.text_of("changeStartDate"),
        Some("2026-05-20T16:00:00.000000")
    );
    assert_eq!(
        op.text_of("changeEndDate"),
        Some("2026-05-20T19:00:00.000000")
    );
    assert_eq!(
        op.text_of("registrationStartDate"),
        Some("2000-01-01T00:00:00")
    );
    assert_eq!(op.text_of("page"), Some("1"));
    assert_eq!(op.text_of("pageSize"), Some("3"));

    // With the full page size, three rows are the last page.
    let page = adapter()
        .time_changes()
        .unwrap()
        .changes(&s, window, Some("2".into()))
        .await;
    assert_eq!(page.unwrap().next, None);
}

#[tokio::test]
async fn insert_work_escapes_the_note_renamespaces_the_token_and_reuses_the_guid() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    mount_employees(&server).await;
    mount_task(&server).await;
    let ok_item = r#"<b:BatchContainerOfWorkUnit xmlns:b="http://www.timelog.com/api/tlp/v1_2"><b:Item xmlns:c="http://www.timelog.com/api/tlp/v1_7"><c:GUID>x</c:GUID></b:Item><b:Status>Success</b:Status><b:Message></b:Message></b:BatchContainerOfWorkUnit>"#;
    mount_pm(&server, "InsertWork", "InsertWorkRequest", ok_item.into()).await;

    let t = adapter();
    let s = session(&server.address().to_string());
    let sink = t.time_sink().unwrap();
    let note = "Workshop <prep> & \"notes\"";
    let guid = sink.create(&s, &time(note), "hb:log:1").await.unwrap();
    assert_eq!(guid, timelog::work_unit_guid("hb:log:1"));
    let again = sink.create(&s, &time(note), "hb:log:1").await.unwrap();
    assert_eq!(again, guid, "the same key writes the same GUID");

    let sent = requests_with_action(&server, "InsertWorkRequest").await;
    assert_eq!(sent.len(), 2);
    let raw = String::from_utf8(sent[0].body.clone()).unwrap();
    assert!(raw.contains("Workshop &lt;prep&gt; &amp;"), "{raw}");
    let root = body_of(&sent[0]);
    let op = xml::soap_body_child(&root).unwrap();
    assert_eq!(op.ns, wire::PM_NS);
    let unit = op.path(&["work", "WorkUnit"]).unwrap();
    assert_eq!(unit.ns, wire::TLP_V1_7);
    assert_eq!(unit.raw_text_of("Description"), note);
    assert_eq!(unit.text_of("GUID"), Some(guid.as_str()));
    assert_eq!(unit.text_of("TaskID"), Some("4817"));
    assert_eq!(unit.text_of("EmployeeInitials"), Some("JBE"));
    assert_eq!(unit.text_of("Duration"), Some("PT1H30M"));
    assert_eq!(unit.text_of("StartDateTime"), Some("2026-05-20T08:00:00"));
    assert_eq!(unit.text_of("EndDateTime"), Some("2026-05-20T09:30:00"));
    let order: Vec<&str> = unit.children.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        order,
        [
            "GUID",
            "TaskID",
            "EmployeeInitials",
            "Duration",
            "StartDateTime",
            "EndDateTime",
            "Description"
        ],
        "WCF reads members in contract order"
    );
    assert_eq!(op.text_of("source"), Some("0"));
    let token = op.child("token").unwrap();
    for (name, value) in [("Initials", "SYNC"), ("Expires", EXPIRES)] {
        let c = token.child(name).unwrap();
        assert_eq!(c.ns, wire::PM_TOKEN_NS, "the v1_2 token is sent as v1_3");
        assert_eq!(c.text, value);
    }
    assert!(
        token
            .text_of("Hash")
            .is_some_and(|h| h.starts_with("FAKEHASH"))
    );
    // The task's int id came from GetTaskById once, then from the cache.
    let lookups = requests_with_action(
        &server,
        "http://www.timelog.com/api/tlp/v1_8/ProjectManagementService/GetTaskById",
    )
    .await;
    assert_eq!(lookups.len(), 1);
}

#[tokio::test]
async fn a_refused_batch_item_is_a_typed_error() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    mount_employees(&server).await;
    mount_task(&server).await;
    soap_call(PM, "InsertWorkRequest")
        .respond_with(xml_response(fixture(
            "timelog-soap-insertwork-response.xml",
        )))
        .mount(&server)
        .await;
    let t = adapter();
    let s = session(&server.address().to_string());
    let e = t
        .time_sink()
        .unwrap()
        .create(&s, &time("n"), "k")
        .await
        .unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::Fault);
    assert_eq!(e.code, Some(timelog::codes::REGISTRATION_LOCKED));
    assert!(e.message.contains("the week is closed"), "{}", e.message);
}

#[tokio::test]
async fn a_refused_answer_names_timelogs_messages_in_the_detail() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    mount_employees(&server).await;
    mount_task(&server).await;
    soap_call(PM, "InsertWorkRequest")
        .respond_with(pm_refused(
            "InsertWork",
            "Task is not open for registration",
        ))
        .mount(&server)
        .await;
    let e = adapter()
        .time_sink()
        .unwrap()
        .create(&session(&server.address().to_string()), &time("n"), "k")
        .await
        .unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::Fault);
    assert_eq!(e.code, Some(timelog::codes::REFUSED));
    assert!(
        e.detail
            .as_deref()
            .is_some_and(|d| d.contains("10001 Task is not open")),
        "{e:?}"
    );
    assert!(!format!("{e:?}").contains("pw<&>"));
}

#[tokio::test]
async fn the_token_is_cached_and_renewed_once_after_an_auth_message() {
    let server = MockServer::start().await;
    mount_token(&server, 2).await;
    // The first GetProjects is refused for the token, every later one answers.
    soap_call(PM, "GetProjectsRequest")
        .respond_with(pm_refused("GetProjects", "The security token has expired"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    mount_projects(&server).await;

    let t = adapter();
    let s = session(&server.address().to_string());
    let dir = t.directory().unwrap();
    let all = dir.list_projects(&s, None, None).await.unwrap();
    assert_eq!(all.items.len(), 2);
    // Cached: no new GetToken.
    let found = dir.list_projects(&s, Some("p26.00"), None).await.unwrap();
    assert_eq!(found.items.len(), 1);
    assert_eq!(found.items[0].id, "612");
    assert_eq!(found.items[0].name, "Intranet relaunch");
    let found = dir.list_projects(&s, Some("INTERN"), None).await.unwrap();
    assert_eq!(found.items[0].id, "700");
    // `expect(2)` on GetToken is verified when the server drops.
}

#[tokio::test]
async fn a_persistent_auth_refusal_needs_reauthorisation() {
    let server = MockServer::start().await;
    mount_token(&server, 2).await;
    soap_call(PM, "GetProjectsRequest")
        .respond_with(pm_refused("GetProjects", "Not authenticated"))
        .expect(2)
        .mount(&server)
        .await;
    let e = list_projects(&server).await.unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::ReauthRequired);
}

#[tokio::test]
async fn users_come_from_reporting_with_email_as_stored() {
    let server = MockServer::start().await;
    mount_employees(&server).await;
    let users = adapter()
        .directory()
        .unwrap()
        .list_users(&session(&server.address().to_string()), None)
        .await
        .unwrap();
    assert_eq!(users.items.len(), 2);
    let u = &users.items[0];
    assert_eq!(u.id, "47");
    assert_eq!(u.initials.as_deref(), Some("JBE"));
    assert_eq!(u.name, "Jonas Berg");
    assert_eq!(u.email.as_deref(), Some("Jonas.Berg@Nordlys.example"));
    assert!(u.active);
    assert!(!users.items[1].active);
    let sent = requests_with_action(
        &server,
        "http://www.timelog.com/ws/tlp/v4_4/GetEmployeesRaw",
    )
    .await;
    let root = body_of(&sent[0]);
    let op = xml::soap_body_child(&root).unwrap();
    assert_eq!(op.ns, wire::REPORTING_NS);
    let names: Vec<&str> = op.children.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "siteCode",
            "apiID",
            "apiPassword",
            "employeeID",
            "initials",
            "departmentID",
            "status"
        ]
    );
    assert_eq!(op.text_of("status"), Some("-1"));
}

#[tokio::test]
async fn tasks_are_created_found_updated_and_allocated() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    mount_employees(&server).await;
    let created = format!(
        r#"<b:BatchContainerOfTask xmlns:b="http://www.timelog.com/api/tlp/v1_2">{}<b:Status>Success</b:Status><b:Message/></b:BatchContainerOfTask>"#,
        task_element(
            "b:Item",
            "7A1C3E5F-9B2D-4F6A-8C0E-1D3F5A7B9C2E",
            4900,
            "New",
            true
        )
    );
    mount_pm(&server, "CreateTask", "CreateTaskRequest", created).await;
    mount_pm(
        &server,
        "GetTaskByExternalKey",
        "GetTaskByExternalKeyRequest",
        task_xml(TASK_GUID, 4817, "Copywriting", true),
    )
    .await;
    mount_task(&server).await;
    let updated = r#"<b:BatchContainerOfTask xmlns:b="http://www.timelog.com/api/tlp/v1_2"><b:Item i:nil="true"/><b:Status>Success</b:Status><b:Message/></b:BatchContainerOfTask>"#;
    mount_pm(&server, "UpdateTask", "UpdateTaskRequest", updated.into()).await;
    mount_pm(
        &server,
        "ChangeTaskStatus",
        "ChangeTaskStatusRequest",
        task_xml(TASK_GUID, 4817, "Copy &amp; paste", false),
    )
    .await;
    let allocation = r#"<b:Allocation xmlns:b="http://www.timelog.com/api/tlp/v1_7"><b:AllocationID>1</b:AllocationID><b:TaskID>4817</b:TaskID><b:EmployeeID>47</b:EmployeeID></b:Allocation>"#;
    mount_pm(
        &server,
        "GetAllocationsToEmployee",
        "GetAllocationsToEmployeeRequest",
        allocation.into(),
    )
    .await;
    let added = r#"<b:BatchContainerOfAllocation xmlns:b="http://www.timelog.com/api/tlp/v1_2"><b:Item i:nil="true"/><b:Status>Success</b:Status><b:Message/></b:BatchContainerOfAllocation>"#;
    mount_pm(
        &server,
        "AddEmployeeToTask",
        "AddEmployeeToTaskRequest",
        added.into(),
    )
    .await;

    let t = adapter();
    let s = session(&server.address().to_string());
    let sink = t.task_sink().unwrap();
    let task = OutboundTask {
        remote_project_id: "612".into(),
        name: "New <task> & co".into(),
        active: true,
    };
    let id = sink.create_task(&s, &task, "host-task-1").await.unwrap();
    assert_eq!(id, "7a1c3e5f-9b2d-4f6a-8c0e-1d3f5a7b9c2e");
    let sent = requests_with_action(&server, "CreateTaskRequest").await;
    let root = body_of(&sent[0]);
    let op = xml::soap_body_child(&root).unwrap();
    assert_eq!(op.text_of("projectID"), Some("612"));
    let tk = op.child("task").unwrap();
    let order: Vec<&str> = tk.children.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        order,
        [
            "Action",
            "IsCustomFieldsLoaded",
            "IsExternalKeysLoaded",
            "ExternalKeys",
            "ID",
            "TaskID",
            "Name",
            "ProjectSubContractID",
            "State"
        ]
    );
    assert_eq!(tk.child("Action").unwrap().ns, wire::API_NS);
    assert_eq!(tk.text_of("Action"), Some("Created"));
    assert_eq!(tk.child("Name").unwrap().ns, wire::TLP_V1_7);
    assert_eq!(tk.raw_text_of("Name"), "New <task> & co");
    assert_eq!(tk.text_of("TaskID"), Some("-1"));
    let key = tk.path(&["ExternalKeys", "ExternalSystemContext"]).unwrap();
    assert_eq!(key.text_of("SystemName"), Some("Hourbridge"));
    assert_eq!(key.text_of("ExternalID"), Some("host-task-1"));
    assert_eq!(
        tk.path(&["State"]).unwrap().text_of("IsActive"),
        Some("true")
    );

    let found = sink.find_task(&s, "612", "host-task-1").await.unwrap();
    assert_eq!(found.as_deref(), Some(TASK_GUID));

    // Rename and deactivate: read, change the name, send it back whole; then the status.
    let change = OutboundTask {
        remote_project_id: "612".into(),
        name: "Copy & paste".into(),
        active: false,
    };
    sink.update_task(&s, TASK_GUID, &change).await.unwrap();
    let sent = requests_with_action(&server, "UpdateTaskRequest").await;
    let root = body_of(&sent[0]);
    let op = xml::soap_body_child(&root).unwrap();
    let tk = op.child("task").unwrap();
    assert_eq!(tk.ns, wire::PM_NS);
    assert_eq!(tk.child("Name").unwrap().ns, wire::TLP_V1_7);
    assert_eq!(tk.raw_text_of("Name"), "Copy & paste");
    assert_eq!(tk.text_of("TaskID"), Some("4817"));
    assert!(
        tk.child("FullName").unwrap().is_nil(),
        "nil members survive the copy"
    );
    assert_eq!(tk.child("Action").unwrap().ns, wire::API_NS);
    let status = requests_with_action(&server, "ChangeTaskStatusRequest").await;
    let root = body_of(&status[0]);
    let op = xml::soap_body_child(&root).unwrap();
    assert_eq!(op.text_of("taskGuid"), Some(TASK_GUID));
    assert_eq!(op.text_of("targetStatus"), Some("3"));

    // Already allocated: nothing is added.
    sink.allocate(&s, TASK_GUID, "47").await.unwrap();
    assert!(
        requests_with_action(&server, "AddEmployeeToTaskRequest")
            .await
            .is_empty()
    );
    // Another task: allocated with employee id, int task id and no budget.
    sink.allocate(&s, "7a1c3e5f-9b2d-4f6a-8c0e-1d3f5a7b9c2e", "47")
        .await
        .unwrap();
    let added = requests_with_action(&server, "AddEmployeeToTaskRequest").await;
    assert_eq!(added.len(), 1);
    let root = body_of(&added[0]);
    let op = xml::soap_body_child(&root).unwrap();
    assert_eq!(op.text_of("employeeID"), Some("47"));
    assert_eq!(op.text_of("taskID"), Some("4900"));
    assert_eq!(op.text_of("BudgetHours"), Some("0"));
    let asked = requests_with_action(&server, "GetAllocationsToEmployeeRequest").await;
    assert_eq!(
        xml::soap_body_child(&body_of(&asked[0]))
            .unwrap()
            .text_of("initials"),
        Some("JBE")
    );
}

#[tokio::test]
async fn find_looks_for_the_derived_guid_in_reporting() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    mount_employees(&server).await;
    mount_task(&server).await;
    let guid = timelog::work_unit_guid("hb:log:9");
    mount_work_units(
        &server,
        &format!(
            r#"<tlp:WorkUnits xmlns:tlp="http://www.timelog.com/XML/Schema/tlp/v4_4"><tlp:WorkUnit ID="1"><tlp:WorkUnitGuid>{}</tlp:WorkUnitGuid><tlp:Note>x</tlp:Note></tlp:WorkUnit></tlp:WorkUnits>"#,
            guid.to_uppercase()
        ),
    )
    .await;
    let t = adapter();
    let s = session(&server.address().to_string());
    let sink = t.time_sink().unwrap();
    assert_eq!(
        sink.find(&s, &time("n"), "hb:log:9").await.unwrap(),
        Some(guid)
    );
    assert_eq!(sink.find(&s, &time("n"), "hb:log:10").await.unwrap(), None);
    let sent = requests_with_action(&server, WORK_UNITS).await;
    let op = body_of(&sent[0]);
    let op = xml::soap_body_child(&op).unwrap();
    assert_eq!(op.text_of("employeeID"), Some("47"));
    assert_eq!(op.text_of("taskID"), Some("4817"));
    assert_eq!(op.text_of("startDate"), Some("2026-05-20"));
    assert_eq!(op.text_of("endDate"), Some("2026-05-20"));
}

#[tokio::test]
async fn deleting_an_unknown_registration_is_not_an_error() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    let gone = r#"<b:BatchContainerOfWorkUnit xmlns:b="http://www.timelog.com/api/tlp/v1_2"><b:Item i:nil="true"/><b:Status>Error</b:Status><b:Message>Work unit not found</b:Message></b:BatchContainerOfWorkUnit>"#;
    mount_pm(&server, "DeleteWork", "DeleteWorkRequest", gone.into()).await;
    let t = adapter();
    t.time_sink()
        .unwrap()
        .delete(
            &session(&server.address().to_string()),
            "a7d2f4c8-3e19-4b6d-9c0a-5f8e2d1b7c36",
        )
        .await
        .unwrap();
    let sent = requests_with_action(&server, "DeleteWorkRequest").await;
    let root = body_of(&sent[0]);
    let op = xml::soap_body_child(&root).unwrap();
    let g = op.path(&["work", "guid"]).unwrap();
    assert_eq!(g.ns, wire::ARRAYS_NS);
    assert_eq!(g.text, "a7d2f4c8-3e19-4b6d-9c0a-5f8e2d1b7c36");
}

#[tokio::test]
async fn time_without_task_or_person_is_rejected() {
    let t = adapter();
    let s = session("127.0.0.1:9");
    let mut no_task = time("n");
    no_task.remote_task_id = None;
    let e = t
        .time_sink()
        .unwrap()
        .create(&s, &no_task, "k")
        .await
        .unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::Rejected);
    let mut no_person = time("n");
    no_person.remote_person_id = String::new();
    let e = t
        .time_sink()
        .unwrap()
        .create(&s, &no_person, "k")
        .await
        .unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::Rejected);
}

fn fields_of(e: &CredentialCheckError) -> Vec<String> {
    match e {
        CredentialCheckError::Invalid { fields, .. }
        | CredentialCheckError::UnreachableDomain { fields, .. } => fields.clone(),
        other => panic!("{other:?}"),
    }
}

async fn mount_validate(server: &MockServer, answer: ResponseTemplate) {
    soap_call(
        REPORTING,
        "http://www.timelog.com/ws/tlp/v4_4/ValidateCredentials",
    )
    .and(body_string_contains("<apiID>apiid</apiID>"))
    .respond_with(answer)
    .mount(server)
    .await;
}

#[tokio::test]
async fn validation_accepts_good_credentials() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    mount_validate(
        &server,
        xml_response(reporting_answer("ValidateCredentials", "true")),
    )
    .await;
    let t = adapter();
    let s = session(&server.address().to_string());
    let info = t.validate_credentials(&s).await.unwrap();
    assert_eq!(info.account_id, format!("{}/nordlys", server.address()));
    assert_eq!(info.account_name, "nordlys");
    assert_eq!(
        info.identity,
        Some(("SYNC".into(), "sync@nordlys.example".into()))
    );
    // The token validation fetched is reused.
    t.directory().unwrap().list_users(&s, None).await.ok();
    let sent = requests_with_action(&server, "GetTokenRequest").await;
    let root = body_of(&sent[0]);
    let op = xml::soap_body_child(&root).unwrap();
    assert_eq!(op.ns, wire::SECURITY_NS);
    assert_eq!(op.text_of("user"), Some("sync@nordlys.example"));
    assert_eq!(op.text_of("password"), Some("pw<&>"), "escaped on the wire");
}

#[tokio::test]
async fn validation_blames_the_domain_for_bad_syntax() {
    for bad in [
        "https://app5.timelog.com",
        "app5.timelog.com/x",
        "app5 timelog",
    ] {
        let e = adapter()
            .validate_credentials(&session(bad))
            .await
            .unwrap_err();
        assert!(
            matches!(e, CredentialCheckError::UnreachableDomain { .. }),
            "{e:?}"
        );
        assert_eq!(fields_of(&e), ["domain"]);
    }
    // Without the test switch a local address is not a domain either.
    let e = TimeLog::from_env(&ProviderEnv::for_tests(&[]))
        .unwrap()
        .validate_credentials(&session("127.0.0.1:8080"))
        .await
        .unwrap_err();
    assert_eq!(fields_of(&e), ["domain"]);
}

#[tokio::test]
async fn validation_blames_username_and_password_for_a_refused_token() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(SECURITY))
        .respond_with(xml_response(
            r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><GetTokenResponse xmlns="http://www.timelog.com/api/tlp/v1_2"><GetTokenResult xmlns:a="http://www.timelog.com/api/tlp/v1_1" xmlns:i="http://www.w3.org/2001/XMLSchema-instance"><a:Return i:nil="true"/><a:ResponseState>Error</a:ResponseState><a:Messages><a:APIMessage><a:Message>Invalid username or password</a:Message><a:Severity>Error</a:Severity><a:ErrorCode>40001</a:ErrorCode></a:APIMessage></a:Messages><a:ErrorCode>40001</a:ErrorCode></GetTokenResult></GetTokenResponse></s:Body></s:Envelope>"#.into(),
        ))
        .mount(&server)
        .await;
    let t = adapter();
    let s = session(&server.address().to_string());
    let e = t.validate_credentials(&s).await.unwrap_err();
    assert!(matches!(e, CredentialCheckError::Invalid { .. }), "{e:?}");
    assert_eq!(fields_of(&e), ["username", "password"]);
    let e = t.check_credentials(&s).await.unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::ReauthRequired);
}

#[tokio::test]
async fn validation_blames_domain_and_account_when_no_site_answers() {
    // Nothing listens on a port just freed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = adapter()
        .validate_credentials(&session(&format!("127.0.0.1:{port}")))
        .await
        .unwrap_err();
    assert!(
        matches!(e, CredentialCheckError::UnreachableDomain { .. }),
        "{e:?}"
    );
    assert_eq!(fields_of(&e), ["domain", "account_name"]);

    for answer in [
        ResponseTemplate::new(404).set_body_string("<html>Not found</html>"),
        ResponseTemplate::new(200).set_body_string("<html><body>Log in</body></html>"),
        ResponseTemplate::new(302).insert_header("location", "https://login.timelog.com"),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(answer)
            .mount(&server)
            .await;
        let e = adapter()
            .validate_credentials(&session(&server.address().to_string()))
            .await
            .unwrap_err();
        assert_eq!(fields_of(&e), ["domain", "account_name"], "{e:?}");
    }
}

#[tokio::test]
async fn validation_blames_the_reporting_fields() {
    for answer in [
        xml_response(reporting_answer("ValidateCredentials", "false")),
        ResponseTemplate::new(401),
    ] {
        let server = MockServer::start().await;
        mount_token(&server, 1).await;
        mount_validate(&server, answer).await;
        let e = adapter()
            .validate_credentials(&session(&server.address().to_string()))
            .await
            .unwrap_err();
        assert!(matches!(e, CredentialCheckError::Invalid { .. }), "{e:?}");
        assert_eq!(
            fields_of(&e),
            ["site_code", "reporting_username", "reporting_password"]
        );
    }
}

#[tokio::test]
async fn missing_fields_are_named() {
    let mut s = session("app5.timelog.com");
    s.secrets.remove("reporting_password");
    let e = adapter().validate_credentials(&s).await.unwrap_err();
    assert_eq!(fields_of(&e), ["reporting_password"]);
}

#[tokio::test]
async fn an_auth_fault_renews_the_token_once() {
    let server = MockServer::start().await;
    mount_token(&server, 2).await;
    soap_call(PM, "GetProjectsRequest")
        .respond_with(soap_fault("The security token could not be authenticated"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    mount_projects(&server).await;
    let page = list_projects(&server).await.unwrap();
    assert_eq!(page.items.len(), 2);
}

#[tokio::test]
async fn a_non_auth_fault_is_not_retried() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    soap_call(PM, "GetProjectsRequest")
        .respond_with(soap_fault("Object reference not set"))
        .expect(1)
        .mount(&server)
        .await;
    let e = list_projects(&server).await.unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::Fault);
}

#[tokio::test]
async fn unknown_actions_projects_and_people_are_handled_defensively() {
    let row = |action: &str, guid: &str, project: &str, initials: &str| {
        format!(
            r#"<b:WorkUnitFlat><b:Action>{action}</b:Action><b:ActionDate>2026-05-20T16:02:11.5</b:ActionDate><b:Date>2026-05-20T00:00:00</b:Date><b:EmployeeInitials>{initials}</b:EmployeeInitials><b:Hours>0.26</b:Hours><b:ProjectGuid>{project}</b:ProjectGuid><b:TaskGuid>00000000-0000-0000-0000-000000000000</b:TaskGuid><b:UserId>0</b:UserId><b:WorkUnitGuid>{guid}</b:WorkUnitGuid></b:WorkUnitFlat>"#
        )
    };
    let p = "9e3b6d20-14f5-4c7a-8b1e-3a2f0c9d8e71";
    let zero = "00000000-0000-0000-0000-000000000000";
    let rows = [
        row("Moved", "11111111-1111-4111-8111-111111111111", p, "jbe"),
        row("Moved", "22222222-2222-4222-8222-222222222222", zero, "JBE"),
        row(
            "Created",
            "33333333-3333-4333-8333-333333333333",
            zero,
            "JBE",
        ),
        row(
            "Created",
            "44444444-4444-4444-8444-444444444444",
            p,
            "NOBODY",
        ),
        row(
            "Created",
            "55555555-5555-4555-8555-555555555555",
            "99999999-9999-4999-8999-999999999999",
            "JBE",
        ),
    ]
    .concat();
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    mount_employees(&server).await;
    soap_call(PM, CHANGES)
        .respond_with(xml_response(
            pm_answer("GetWorkChangesPaged", &rows, "Success", "").replace(
                "<a:Return>",
                r#"<a:Return xmlns:b="http://www.timelog.com/api/tlp/v1_7">"#,
            ),
        ))
        .mount(&server)
        .await;
    mount_projects(&server).await;
    mount_work_units(
        &server,
        r#"<tlp:WorkUnits xmlns:tlp="http://www.timelog.com/XML/Schema/tlp/v4_4" resultEmpty="true"/>"#,
    )
    .await;
    let window = ChangeWindow {
        since: Utc.with_ymd_and_hms(2026, 5, 20, 0, 0, 0).unwrap(),
        until: Utc.with_ymd_and_hms(2026, 5, 21, 0, 0, 0).unwrap(),
    };
    let page = adapter()
        .time_changes()
        .unwrap()
        .changes(&session(&server.address().to_string()), window, None)
        .await
        .unwrap();
    assert_eq!(page.next, None);
    assert_eq!(page.items.len(), 1, "{:?}", page.items);
    let TimeChange::Upserted(w) = &page.items[0] else {
        panic!("{:?}", page.items[0])
    };
    assert_eq!(w.id, "11111111-1111-4111-8111-111111111111");
    assert_eq!(w.person.id, "47", "initials match case-insensitively");
    assert_eq!(w.minutes, 16, "0.26 h rounds to 16 minutes");
    assert_eq!(w.task_id, None);
    assert_eq!(w.note, "");
    // The unknown project made the project list be read again once.
    let reads = requests_with_action(&server, "GetProjectsRequest").await;
    assert_eq!(reads.len(), 2);
}
