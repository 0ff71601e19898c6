//! TimeLog Transactional (SOAP 1.1) and Reporting emulation, driven over real HTTP: envelope
//! and SOAPAction strictness, tokens, per-item batch results, the change feed, paging caps,
//! allocations, Reporting credentials and empty results, and routing next to the other
//! providers.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{Datelike, Duration as ChronoDuration, NaiveDate, Utc, Weekday};
use hourbridge_sandbox::{
    Sandbox, Seed, TIMELOG_ACCOUNT, TIMELOG_PASSWORD, TIMELOG_REPORTING_PASSWORD,
    TIMELOG_REPORTING_USERNAME, TIMELOG_SITE_CODE, TIMELOG_SYNC_INITIALS, TIMELOG_TOKEN_ERROR_CODE,
    TIMELOG_USERNAME,
};
use quick_xml::Reader;
use quick_xml::events::Event;
use reqwest::StatusCode;

const SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const SEC: &str = "http://www.timelog.com/api/tlp/v1_2";
const PM: &str = "http://www.timelog.com/api/tlp/v1_8";
const V13: &str = "http://www.timelog.com/api/tlp/v1_3";
const V17: &str = "http://www.timelog.com/api/tlp/v1_7";
const REP: &str = "http://www.timelog.com/ws/tlp/v4_4";
const LONG: &str = "http://www.timelog.com/api/tlp/v1_8/ProjectManagementService/";

fn site(sb: &Sandbox, account: &str) -> String {
    format!("http://{}/{account}", sb.timelog_domain())
}

fn security_url(sb: &Sandbox) -> String {
    format!(
        "{}/WebServices/Security/V1_2/SecurityServiceSecure.svc",
        site(sb, TIMELOG_ACCOUNT)
    )
}

fn pm_url(sb: &Sandbox) -> String {
    format!(
        "{}/WebServices/ProjectManagement/V1_8/ProjectManagementServiceSecure.svc",
        site(sb, TIMELOG_ACCOUNT)
    )
}

fn reporting_url(sb: &Sandbox) -> String {
    format!("{}/service.asmx", site(sb, TIMELOG_ACCOUNT))
}

fn envelope(inner: &str) -> String {
    format!(
        "<soapenv:Envelope xmlns:soapenv=\"{SOAP}\"><soapenv:Header/><soapenv:Body>{inner}</soapenv:Body></soapenv:Envelope>"
    )
}

async fn post(url: &str, action: Option<&str>, body: String) -> (StatusCode, String) {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("Content-Type", "text/xml; charset=utf-8")
        .body(body);
    if let Some(a) = action {
        req = req.header("SOAPAction", format!("\"{a}\""));
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.text().await.unwrap())
}

fn get_token_body(user: &str, password: &str) -> String {
    envelope(&format!(
        "<tl:GetToken xmlns:tl=\"{SEC}\"><tl:user>{user}</tl:user><tl:password>{password}</tl:password></tl:GetToken>"
    ))
}

/// `(Initials, Expires, Hash)` of a fresh token of the sync user.
async fn token(sb: &Sandbox) -> (String, String, String) {
    let (status, body) = post(
        &security_url(sb),
        Some("GetTokenRequest"),
        get_token_body(TIMELOG_USERNAME, TIMELOG_PASSWORD),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(texts(&body, "ResponseState"), ["Success"], "{body}");
    (
        texts(&body, "Initials")[0].clone(),
        texts(&body, "Expires")[0].clone(),
        texts(&body, "Hash")[0].clone(),
    )
}

fn token_xml(t: &(String, String, String)) -> String {
    format!(
        "<tl:token xmlns:t=\"{V13}\"><t:Initials>{}</t:Initials><t:Expires>{}</t:Expires><t:Hash>{}</t:Hash></tl:token>",
        t.0, t.1, t.2
    )
}

/// A ProjectManagement call: `<tl:{op}>` with `params` (prefix `tl` = v1_8) and the token.
async fn pm(
    sb: &Sandbox,
    op: &str,
    params: &str,
    t: &(String, String, String),
) -> (StatusCode, String) {
    let long = ["GetWorkChangesPaged", "GetProjectTasksPaged", "GetTaskById"];
    let action = if long.contains(&op) {
        format!("{LONG}{op}")
    } else {
        format!("{op}Request")
    };
    let body = envelope(&format!(
        "<tl:{op} xmlns:tl=\"{PM}\">{params}{}</tl:{op}>",
        token_xml(t)
    ));
    post(&pm_url(sb), Some(&action), body).await
}

/// `InsertWork` or `UpdateWork` of the `WorkUnit`s in `work`, from source 0.
async fn write_work(
    sb: &Sandbox,
    op: &str,
    work: &str,
    t: &(String, String, String),
) -> (StatusCode, String) {
    let params = format!("<tl:work>{work}</tl:work><tl:source>0</tl:source>");
    pm(sb, op, &params, t).await
}

/// `ChangeTaskStatus` of task `guid` to `status`; the answer's body.
async fn change_task_status(
    sb: &Sandbox,
    guid: &str,
    status: u8,
    t: &(String, String, String),
) -> String {
    let params =
        format!("<tl:taskGuid>{guid}</tl:taskGuid><tl:targetStatus>{status}</tl:targetStatus>");
    pm(sb, "ChangeTaskStatus", &params, t).await.1
}

async fn reporting(
    sb: &Sandbox,
    op: &str,
    creds: (&str, &str, &str),
    params: &str,
) -> (StatusCode, String) {
    let body = envelope(&format!(
        "<r:{op} xmlns:r=\"{REP}\"><r:siteCode>{}</r:siteCode><r:apiID>{}</r:apiID><r:apiPassword>{}</r:apiPassword>{params}</r:{op}>",
        creds.0, creds.1, creds.2
    ));
    post(&reporting_url(sb), Some(&format!("{REP}/{op}")), body).await
}

const CREDS: (&str, &str, &str) = (
    TIMELOG_SITE_CODE,
    TIMELOG_REPORTING_USERNAME,
    TIMELOG_REPORTING_PASSWORD,
);

/// Text of every element with this local name, in document order (`nil` for `i:nil`).
fn texts(body: &str, local: &str) -> Vec<String> {
    let mut reader = Reader::from_str(body);
    let mut out = Vec::new();
    let mut open: Option<String> = None;
    loop {
        match reader.read_event().unwrap() {
            Event::Start(e) if e.local_name().as_ref() == local => open = Some(String::new()),
            Event::Empty(e) if e.local_name().as_ref() == local => {
                let nil = e
                    .attributes()
                    .flatten()
                    .any(|a| a.key.local_name().as_ref() == "nil");
                out.push(if nil { "nil".into() } else { String::new() });
            }
            Event::Text(t) => {
                if let Some(o) = open.as_mut() {
                    o.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                if let Some(o) = open.as_mut() {
                    o.push_str(match &*r.xml10_content() {
                        "gt" => ">",
                        "lt" => "<",
                        "amp" => "&",
                        _ => "?",
                    });
                }
            }
            Event::End(e) if e.local_name().as_ref() == local => {
                out.extend(open.take());
            }
            Event::Eof => return out,
            _ => {}
        }
    }
}

/// The direct children (local name → text, `nil` for `i:nil`) of every `local` element.
fn rows(body: &str, local: &str) -> Vec<HashMap<String, String>> {
    let mut reader = Reader::from_str(body);
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut row: Option<(usize, HashMap<String, String>)> = None;
    let mut field: Option<(String, String)> = None;
    loop {
        match reader.read_event().unwrap() {
            Event::Start(e) => {
                depth += 1;
                let name = e.local_name().as_ref().to_owned();
                match &row {
                    None if name == local => row = Some((depth, HashMap::new())),
                    Some((d, _)) if depth == d + 1 => field = Some((name, String::new())),
                    _ => {}
                }
            }
            Event::Empty(e) => {
                if let Some((d, r)) = row.as_mut()
                    && depth == *d
                {
                    let nil = e
                        .attributes()
                        .flatten()
                        .any(|a| a.key.local_name().as_ref() == "nil");
                    r.insert(
                        e.local_name().as_ref().to_owned(),
                        if nil { "nil".into() } else { String::new() },
                    );
                }
            }
            Event::Text(t) => {
                if let Some((_, v)) = field.as_mut() {
                    v.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                if let Some((_, v)) = field.as_mut() {
                    v.push_str(if &*r.xml10_content() == "gt" {
                        ">"
                    } else {
                        "?"
                    });
                }
            }
            Event::End(_) => {
                if let Some((d, r)) = row.as_mut() {
                    if depth == *d + 1
                        && let Some((k, v)) = field.take()
                    {
                        r.insert(k, v);
                    }
                    if depth == *d
                        && let Some((_, r)) = row.take()
                    {
                        out.push(r);
                    }
                }
                depth -= 1;
            }
            Event::Eof => return out,
            _ => {}
        }
    }
}

fn last_weekday_before(days: i64) -> NaiveDate {
    let mut d = Utc::now().date_naive() - ChronoDuration::days(days);
    while matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
        d -= ChronoDuration::days(1);
    }
    d
}

fn work_unit(
    guid: Option<&str>,
    task_id: i32,
    initials: &str,
    date: NaiveDate,
    duration: &str,
) -> String {
    let guid = guid.map_or(String::new(), |g| format!("<w:GUID>{g}</w:GUID>"));
    format!(
        "<w:WorkUnit xmlns:w=\"{V17}\">{guid}<w:TaskID>{task_id}</w:TaskID><w:EmployeeInitials>{initials}</w:EmployeeInitials>\
         <w:Duration>{duration}</w:Duration><w:StartDateTime>{date}T09:00:00</w:StartDateTime>\
         <w:Description>From Hourbridge</w:Description></w:WorkUnit>"
    )
}

fn task_id(sb: &Sandbox, name: &str) -> (i32, String) {
    let t = sb
        .timelog()
        .tasks()
        .into_iter()
        .find(|t| t.name == name)
        .unwrap();
    (t.id, t.guid)
}

#[tokio::test]
async fn a_soap_action_that_does_not_match_the_body_is_a_client_fault() {
    let sb = Sandbox::start(Seed::Empty).await.unwrap();
    let body = get_token_body(TIMELOG_USERNAME, TIMELOG_PASSWORD);
    let (status, text) = post(&security_url(&sb), Some("InsertWorkRequest"), body.clone()).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(texts(&text, "faultcode"), ["s:Client"], "{text}");
    let (status, text) = post(&security_url(&sb), None, body.clone()).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(text.contains("SOAPAction"), "{text}");
    // Unquoted is accepted as well as quoted.
    let resp = reqwest::Client::new()
        .post(security_url(&sb))
        .header("Content-Type", "text/xml")
        .header("SOAPAction", "GetTokenRequest")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    // The long action of a ProjectManagement operation must be the long one.
    let t = token(&sb).await;
    let body = envelope(&format!(
        "<tl:GetWorkChangesPaged xmlns:tl=\"{PM}\"><tl:page>1</tl:page><tl:pageSize>10</tl:pageSize>{}</tl:GetWorkChangesPaged>",
        token_xml(&t)
    ));
    let (status, _) = post(&pm_url(&sb), Some("GetWorkChangesPagedRequest"), body).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn the_wire_is_strict_about_method_content_type_xml_and_namespaces() {
    let sb = Sandbox::start(Seed::Empty).await.unwrap();
    let c = reqwest::Client::new();
    let get = c.get(security_url(&sb)).send().await.unwrap();
    assert_eq!(get.status(), StatusCode::METHOD_NOT_ALLOWED);
    let json = c
        .post(security_url(&sb))
        .header("Content-Type", "application/json")
        .header("SOAPAction", "GetTokenRequest")
        .body(get_token_body(TIMELOG_USERNAME, TIMELOG_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, text) = post(
        &security_url(&sb),
        Some("GetTokenRequest"),
        "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\"><soapenv:Body><GetToken>".into(),
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(texts(&text, "faultcode"), ["s:Client"]);
    // GetToken in the ProjectManagement namespace is not the Security operation.
    let wrong_ns = envelope(&format!(
        "<GetToken xmlns=\"{PM}\"><user>{TIMELOG_USERNAME}</user><password>{TIMELOG_PASSWORD}</password></GetToken>"
    ));
    let (status, text) = post(&security_url(&sb), Some("GetTokenRequest"), wrong_ns).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{text}");
    assert!(text.contains("namespace"), "{text}");
    // A token copied as is from the Security service (v1_2 members) is refused loudly.
    let t = token(&sb).await;
    let v12 = envelope(&format!(
        "<tl:GetProjects xmlns:tl=\"{PM}\"><tl:token xmlns:t=\"{SEC}\"><t:Initials>{}</t:Initials><t:Expires>{}</t:Expires><t:Hash>{}</t:Hash></tl:token></tl:GetProjects>",
        t.0, t.1, t.2
    ));
    let (status, text) = post(&pm_url(&sb), Some("GetProjectsRequest"), v12).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(text.contains(V13), "{text}");
}

#[tokio::test]
async fn get_token_accepts_username_or_initials_and_rejects_a_wrong_password() {
    let sb = Sandbox::start(Seed::Empty).await.unwrap();
    let (_, body) = post(
        &security_url(&sb),
        Some("GetTokenRequest"),
        get_token_body(TIMELOG_SYNC_INITIALS, TIMELOG_PASSWORD),
    )
    .await;
    assert_eq!(texts(&body, "ResponseState"), ["Success"]);
    assert_eq!(texts(&body, "Initials"), [TIMELOG_SYNC_INITIALS]);
    assert_eq!(texts(&body, "Hash")[0].len(), 64);
    let (status, body) = post(
        &security_url(&sb),
        Some("GetTokenRequest"),
        get_token_body(TIMELOG_USERNAME, "wrong"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(texts(&body, "ResponseState"), ["Error"]);
    assert!(texts(&body, "Hash").is_empty());
    assert!(!texts(&body, "Message").is_empty());
}

#[tokio::test]
async fn an_expired_or_unknown_token_answers_error_with_the_token_code() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let t = token(&sb).await;
    let (status, body) = pm(&sb, "GetProjects", "", &t).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(texts(&body, "ResponseState"), ["Success"]);
    assert_eq!(
        texts(&body, "ProjectHeader").len(),
        2,
        "active projects only"
    );

    sb.timelog().expire_tokens();
    let (status, body) = pm(&sb, "GetProjects", "", &t).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(texts(&body, "ResponseState"), ["Error"]);
    let code = TIMELOG_TOKEN_ERROR_CODE.to_string();
    assert_eq!(texts(&body, "ErrorCode"), [code.clone(), code]);
    assert_eq!(texts(&body, "Severity"), ["Error"]);
    assert!(texts(&body, "Message")[0].contains("token"));

    let forged = (t.0.clone(), t.1.clone(), "0".repeat(64));
    let (_, body) = pm(&sb, "GetProjects", "", &forged).await;
    assert_eq!(texts(&body, "ResponseState"), ["Error"]);

    sb.timelog().set_token_lifetime(Duration::ZERO);
    let t = token(&sb).await;
    let (_, body) = pm(&sb, "GetProjects", "", &t).await;
    assert_eq!(
        texts(&body, "ResponseState"),
        ["Error"],
        "a zero lifetime is already expired"
    );
    sb.timelog().set_token_lifetime(Duration::from_secs(3600));
    let t = token(&sb).await;
    let (_, body) = pm(&sb, "GetProjects", "", &t).await;
    assert_eq!(texts(&body, "ResponseState"), ["Success"]);
    assert_eq!(sb.timelog().request_count("GetProjects"), 5);
}

#[tokio::test]
async fn insert_work_fails_only_the_item_in_a_closed_week() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let tl = sb.timelog();
    let t = token(&sb).await;
    let (workshop, _) = task_id(&sb, "Workshop");
    let (copy, _) = task_id(&sb, "Copywriting");
    let open_day = last_weekday_before(1);
    let closed_day = open_day - ChronoDuration::days(7);
    assert!(tl.close_week("BBU", closed_day));
    let work = [
        work_unit(None, workshop, "BBU", open_day, "PT1H30M"),
        work_unit(None, workshop, "BBU", closed_day, "PT1H"),
        work_unit(None, copy, "EEN", open_day, "PT1H"),
        work_unit(None, 999_999, "BBU", open_day, "PT1H"),
    ]
    .concat();
    let before = tl.work().len();
    let (status, body) = write_work(&sb, "InsertWork", &work, &t).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(texts(&body, "ResponseState"), ["Success"]);
    assert_eq!(
        texts(&body, "Status"),
        ["Success", "Error", "Error", "Error"]
    );
    let messages = texts(&body, "Message");
    assert!(messages[1].contains("week is closed"), "{messages:?}");
    assert!(messages[2].contains("not allocated"), "{messages:?}");
    assert!(messages[3].contains("does not exist"), "{messages:?}");
    let items = texts(&body, "Item");
    assert_eq!(&items[1..], ["nil", "nil", "nil"]);
    assert_eq!(texts(&body, "Duration"), ["PT1H30M"]);
    assert_eq!(tl.work().len(), before + 1);
}

#[tokio::test]
async fn duplicate_guids_fail_on_insert_unknown_guids_fail_on_update_and_succeed_on_delete() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let tl = sb.timelog();
    let t = token(&sb).await;
    let (workshop, _) = task_id(&sb, "Workshop");
    let day = last_weekday_before(1);
    let guid = "3c9e1a7b-5d24-4f80-b1e6-8a0c2d4f6e19";
    let unit = work_unit(Some(guid), workshop, "BBU", day, "PT1H");
    let (_, body) = write_work(&sb, "InsertWork", &unit, &t).await;
    assert_eq!(texts(&body, "Status"), ["Success"]);
    assert_eq!(texts(&body, "GUID")[0], guid);
    let (_, body) = write_work(&sb, "InsertWork", &unit, &t).await;
    assert_eq!(texts(&body, "Status"), ["Error"]);
    assert!(texts(&body, "Message")[0].contains("already exists"));

    let unknown = "11111111-2222-4333-8444-555555555555";
    let upd = work_unit(Some(unknown), workshop, "BBU", day, "PT2H");
    let (_, body) = write_work(&sb, "UpdateWork", &upd, &t).await;
    assert_eq!(texts(&body, "Status"), ["Error"]);

    let upd = work_unit(Some(guid), workshop, "BBU", day, "PT2H15M");
    let (_, body) = write_work(&sb, "UpdateWork", &upd, &t).await;
    assert_eq!(texts(&body, "Status"), ["Success"], "{body}");
    assert_eq!(
        tl.work().iter().find(|w| w.guid == guid).unwrap().minutes,
        135
    );

    let arrays = "http://schemas.microsoft.com/2003/10/Serialization/Arrays";
    let del = format!(
        "<tl:work xmlns:ar=\"{arrays}\"><ar:guid>{unknown}</ar:guid><ar:guid>{guid}</ar:guid></tl:work><tl:source>0</tl:source>"
    );
    let (_, body) = pm(&sb, "DeleteWork", &del, &t).await;
    assert_eq!(texts(&body, "Status"), ["Success", "Success"], "{body}");
    assert!(tl.work().iter().all(|w| w.guid != guid));
}

#[tokio::test]
async fn approved_registrations_cannot_be_changed() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let tl = sb.timelog();
    let t = token(&sb).await;
    let (workshop, wguid) = task_id(&sb, "Workshop");
    let day = last_weekday_before(2);
    let guid = tl.register_work("BBU", &wguid, day, 60, "by hand").unwrap();
    assert!(tl.approve(&guid));
    let upd = work_unit(Some(&guid), workshop, "BBU", day, "PT2H");
    let (_, body) = write_work(&sb, "UpdateWork", &upd, &t).await;
    assert_eq!(texts(&body, "Status"), ["Error"]);
    assert!(texts(&body, "Message")[0].contains("approved"));
}

#[tokio::test]
async fn the_change_feed_is_ascending_and_deleted_units_keep_only_their_guid() {
    let sb = Sandbox::start(Seed::Empty).await.unwrap();
    let tl = sb.timelog();
    let emp = tl.add_employee("Ada", "Admin", "AAD", "Ada@Acme.test");
    let task_guid = tl.add_task(612, None, "Build").unwrap();
    let task = tl.task(&task_guid).unwrap();
    tl.allocate(emp, task.id).unwrap();
    let t = token(&sb).await;
    let day = last_weekday_before(1);
    let start = tl.now() - ChronoDuration::minutes(1);

    // Created by the API, then edited in TimeLog.
    let kept = "e1b7c3d9-5a2f-4e80-b6c4-0f9a8d7e6c51";
    let unit = work_unit(Some(kept), task.id, "AAD", day, "PT2H30M");
    let (_, body) = write_work(&sb, "InsertWork", &unit, &t).await;
    assert_eq!(texts(&body, "Status"), ["Success"], "{body}");
    tl.advance_clock(ChronoDuration::minutes(5));
    assert!(tl.edit_work(kept, 180, "longer"));
    // Created in TimeLog, then deleted in TimeLog.
    tl.advance_clock(ChronoDuration::minutes(5));
    let gone = tl
        .register_work("AAD", &task_guid, day, 60, "oops")
        .unwrap();
    tl.advance_clock(ChronoDuration::minutes(5));
    assert!(tl.delete_work(&gone));

    let end = tl.now() + ChronoDuration::minutes(1);
    let params = format!(
        "<tl:initials></tl:initials><tl:registrationStartDate>{}T00:00:00</tl:registrationStartDate>\
         <tl:registrationEndDate>{}T00:00:00</tl:registrationEndDate><tl:changeStartDate>{}</tl:changeStartDate>\
         <tl:changeEndDate>{}</tl:changeEndDate><tl:page>1</tl:page><tl:pageSize>500</tl:pageSize>",
        day - ChronoDuration::days(7),
        day,
        start.format("%Y-%m-%dT%H:%M:%S"),
        end.format("%Y-%m-%dT%H:%M:%S"),
    );
    let (status, body) = pm(&sb, "GetWorkChangesPaged", &params, &t).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let feed = rows(&body, "WorkUnitFlat");
    let actions: Vec<&str> = feed.iter().map(|r| r["Action"].as_str()).collect();
    assert_eq!(
        actions,
        ["Created", "Updated", "Created", "Deleted"],
        "{body}"
    );
    let dates: Vec<&str> = feed.iter().map(|r| r["ActionDate"].as_str()).collect();
    let mut sorted = dates.clone();
    sorted.sort();
    assert_eq!(dates, sorted, "ascending ActionDate");
    assert_eq!(feed[0]["Hours"], "2.5");
    assert_eq!(feed[1]["Hours"], "3");
    assert_eq!(feed[0]["EmployeeInitials"], "AAD");
    assert_eq!(feed[0]["TaskGuid"], task_guid);
    assert_eq!(feed[0]["Date"], format!("{day}T00:00:00"));
    for r in &feed[2..] {
        assert_eq!(r["WorkUnitGuid"], gone);
        assert_eq!(r["EmployeeInitials"], "nil");
        assert_eq!(r["TaskName"], "nil");
        assert_eq!(r["Date"], "0001-01-01T00:00:00");
        assert_eq!(r["TaskGuid"], "00000000-0000-0000-0000-000000000000");
        assert_eq!(r["Hours"], "0");
        assert_eq!(r["UserId"], "0");
    }
    assert_eq!(texts(&body, "IsReturnPaged"), ["true"]);

    // Page 2 is past the end.
    let page2 = params.replace("<tl:page>1</tl:page>", "<tl:page>2</tl:page>");
    let (_, body) = pm(&sb, "GetWorkChangesPaged", &page2, &t).await;
    assert_eq!(texts(&body, "ResponseState"), ["Success"]);
    assert!(rows(&body, "WorkUnitFlat").is_empty());

    // Only three months of history.
    tl.advance_clock(ChronoDuration::days(100));
    let later = params.replace(
        &end.format("%Y-%m-%dT%H:%M:%S").to_string(),
        &(end + ChronoDuration::days(101))
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string(),
    );
    let t = token(&sb).await;
    let (_, body) = pm(&sb, "GetWorkChangesPaged", &later, &t).await;
    assert!(rows(&body, "WorkUnitFlat").is_empty(), "{body}");
}

#[tokio::test]
async fn page_sizes_above_500_are_invalid() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let t = token(&sb).await;
    let nil = "00000000-0000-0000-0000-000000000000";
    let params = |size: u32| {
        format!(
            "<tl:projectGuid>{nil}</tl:projectGuid><tl:page>1</tl:page><tl:pageSize>{size}</tl:pageSize>"
        )
    };
    let (_, body) = pm(&sb, "GetProjectTasksPaged", &params(501), &t).await;
    assert_eq!(texts(&body, "ResponseState"), ["Invalid"], "{body}");
    assert_eq!(texts(&body, "Severity"), ["Invalid"]);
    let (_, body) = pm(&sb, "GetProjectTasksPaged", &params(500), &t).await;
    assert_eq!(texts(&body, "ResponseState"), ["Success"]);
    let tasks = rows(&body, "ProjectTaskFlat");
    assert_eq!(tasks.len(), sb.timelog().tasks().len());
    let copy = tasks
        .iter()
        .find(|r| r["TaskName"] == "Copywriting")
        .unwrap();
    assert_eq!(copy["TaskNameChain"], "Content > Copywriting");
    assert_eq!(copy["TaskWBS"], "1.1");
    let (_, body) = pm(
        &sb,
        "GetWorkChangesPaged",
        "<tl:page>1</tl:page><tl:pageSize>1000</tl:pageSize>",
        &t,
    )
    .await;
    assert_eq!(texts(&body, "ResponseState"), ["Invalid"]);
}

#[tokio::test]
async fn add_employee_to_task_twice_creates_a_duplicate_allocation() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let tl = sb.timelog();
    let t = token(&sb).await;
    let (copy, _) = task_id(&sb, "Copywriting");
    let eve = tl
        .employees()
        .into_iter()
        .find(|e| e.initials == "EEN")
        .unwrap()
        .id;
    assert_eq!(tl.allocation_count(eve, copy), 0);
    let params = format!(
        "<tl:employeeID>{eve}</tl:employeeID><tl:taskID>{copy}</tl:taskID><tl:BudgetHours>0</tl:BudgetHours>"
    );
    for n in 1..=2 {
        let (_, body) = pm(&sb, "AddEmployeeToTask", &params, &t).await;
        assert_eq!(texts(&body, "Status"), ["Success"], "{body}");
        assert_eq!(tl.allocation_count(eve, copy), n);
    }
    let (_, body) = pm(
        &sb,
        "GetAllocationsToEmployee",
        "<tl:initials>EEN</tl:initials>",
        &t,
    )
    .await;
    let on_copy = rows(&body, "Allocation")
        .into_iter()
        .filter(|a| a["TaskID"] == copy.to_string())
        .count();
    assert_eq!(on_copy, 2);
    // Now allocated, Eve can register on the task.
    let unit = work_unit(None, copy, "EEN", last_weekday_before(1), "PT1H");
    let (_, body) = write_work(&sb, "InsertWork", &unit, &t).await;
    assert_eq!(texts(&body, "Status"), ["Success"], "{body}");
}

#[tokio::test]
async fn tasks_are_created_found_by_external_key_renamed_and_completed() {
    let sb = Sandbox::start(Seed::Empty).await.unwrap();
    let tl = sb.timelog();
    let t = token(&sb).await;
    let api = "http://api.timelog.com";
    let guid = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0";
    let task = format!(
        "<tl:task xmlns:a=\"{api}\" xmlns:v=\"{V17}\"><a:Action>Created</a:Action><a:IsExternalKeysLoaded>true</a:IsExternalKeysLoaded>\
         <a:ExternalKeys><a:ExternalSystemContext><a:SystemName>Hourbridge</a:SystemName><a:ExternalID>task-42</a:ExternalID></a:ExternalSystemContext></a:ExternalKeys>\
         <v:ID>{guid}</v:ID><v:TaskID>-1</v:TaskID><v:Name>Design review</v:Name><v:TaskTypeID>12</v:TaskTypeID>\
         <v:State><v:IsActive>true</v:IsActive></v:State></tl:task>"
    );
    let (_, body) = pm(
        &sb,
        "CreateTask",
        &format!("{task}<tl:projectID>612</tl:projectID>"),
        &t,
    )
    .await;
    assert_eq!(texts(&body, "Status"), ["Success"], "{body}");
    let created = tl.task(guid).unwrap();
    assert!(created.id > 0 && created.active && created.status == 0);
    assert_eq!(
        created.external_keys,
        [("Hourbridge".to_owned(), "task-42".to_owned())]
    );

    let (_, body) = pm(
        &sb,
        "GetTaskByExternalKey",
        "<tl:key>task-42</tl:key><tl:systemName>Hourbridge</tl:systemName>",
        &t,
    )
    .await;
    assert_eq!(texts(&body, "TaskID"), [created.id.to_string()]);
    let (_, body) = pm(
        &sb,
        "GetTaskByExternalKey",
        "<tl:key>task-43</tl:key><tl:systemName>Hourbridge</tl:systemName>",
        &t,
    )
    .await;
    assert_eq!(texts(&body, "ResponseState"), ["Success"]);
    assert!(texts(&body, "TaskID").is_empty());

    let rename = format!(
        "<tl:task xmlns:v=\"{V17}\"><v:ID>{guid}</v:ID><v:Name>Design review II</v:Name></tl:task><tl:projectID>612</tl:projectID>"
    );
    let (_, body) = pm(&sb, "UpdateTask", &rename, &t).await;
    assert_eq!(texts(&body, "Status"), ["Success"], "{body}");
    assert_eq!(tl.task(guid).unwrap().name, "Design review II");
    assert_eq!(tl.task(guid).unwrap().external_keys.len(), 1, "keys kept");

    let body = change_task_status(&sb, guid, 3, &t).await;
    assert_eq!(texts(&body, "ResponseState"), ["Success"], "{body}");
    assert!(!tl.task(guid).unwrap().active);
    let body = change_task_status(&sb, guid, 2, &t).await;
    assert_eq!(texts(&body, "ResponseState"), ["Success"]);
    assert!(tl.task(guid).unwrap().active, "on hold (2) is still active");
    let body = change_task_status(&sb, guid, 7, &t).await;
    assert_eq!(texts(&body, "ResponseState"), ["Invalid"]);
    let body = change_task_status(&sb, guid, 4, &t).await;
    assert_eq!(texts(&body, "ResponseState"), ["Success"]);
    assert!(!tl.task(guid).unwrap().active, "cancelled (4) is inactive");
    let (_, body) = pm(
        &sb,
        "GetTaskById",
        &format!("<tl:taskGuid>{guid}</tl:taskGuid>"),
        &t,
    )
    .await;
    assert_eq!(
        texts(&body, "IsActive").last().map(String::as_str),
        Some("false")
    );
}

#[tokio::test]
async fn reporting_answers_401_for_bad_credentials_and_flags_empty_results() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let (status, body) = reporting(&sb, "ValidateCredentials", CREDS, "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(texts(&body, "ValidateCredentialsResult"), ["true"]);
    let bad = (TIMELOG_SITE_CODE, TIMELOG_REPORTING_USERNAME, "nope");
    let (status, body) = reporting(&sb, "ValidateCredentials", bad, "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(texts(&body, "ValidateCredentialsResult"), ["false"]);
    let (status, _) = reporting(&sb, "GetEmployeesRaw", bad, "<r:status>-1</r:status>").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, body) = reporting(&sb, "GetEmployeesRaw", CREDS, "<r:employeeID>0</r:employeeID><r:initials></r:initials><r:departmentID>0</r:departmentID><r:status>-1</r:status>").await;
    assert_eq!(status, StatusCode::OK);
    let emails = texts(&body, "Email");
    assert!(
        emails.contains(&"Bob.Builder@Acme.test".to_owned()),
        "{emails:?}"
    );
    assert_eq!(
        texts(&body, "Status").iter().filter(|s| *s == "0").count(),
        1,
        "one terminated"
    );
    let (_, body) = reporting(&sb, "GetEmployeesRaw", CREDS, "<r:status>1</r:status>").await;
    assert!(!texts(&body, "Initials").contains(&"CCO".to_owned()));

    let (_, body) = reporting(&sb, "GetProjectsRaw", CREDS, "<r:projectID>0</r:projectID><r:status>-2</r:status><r:customerID>0</r:customerID><r:projectManagerID>0</r:projectManagerID>").await;
    assert_eq!(rows(&body, "Project").len(), 3);

    let (status, body) = reporting(
        &sb,
        "GetWorkUnitsRaw",
        CREDS,
        "<r:employeeID>424242</r:employeeID><r:startDate></r:startDate><r:endDate></r:endDate>",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("resultEmpty=\"true\""), "{body}");
    let bob = sb
        .timelog()
        .employees()
        .into_iter()
        .find(|e| e.initials == "BBU")
        .unwrap()
        .id;
    let (_, body) = reporting(&sb, "GetWorkUnitsRaw", CREDS, &format!("<r:employeeID>{bob}</r:employeeID><r:startDate>2000-01-01</r:startDate><r:endDate>2100-01-01</r:endDate>")).await;
    let units = rows(&body, "WorkUnit");
    assert!(!units.is_empty());
    assert!(
        units
            .iter()
            .all(|u| u["EmployeeInitials"] == "BBU" && !u["WorkUnitGuid"].is_empty())
    );
    assert!(units[0]["RegHours"].ends_with("00"), "{:?}", units[0]);
    let (status, _) = reporting(
        &sb,
        "GetWorkUnitsRaw",
        CREDS,
        "<r:startDate>yesterday</r:startDate>",
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn an_unknown_account_is_404_and_other_providers_keep_their_prefixes() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let url = format!(
        "{}/WebServices/Security/V1_2/SecurityServiceSecure.svc",
        site(&sb, "someone-else")
    );
    let (status, _) = post(
        &url,
        Some("GetTokenRequest"),
        get_token_body(TIMELOG_USERNAME, TIMELOG_PASSWORD),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    sb.timelog().add_account_name("someone-else");
    let (status, _) = post(
        &url,
        Some("GetTokenRequest"),
        get_token_body(TIMELOG_USERNAME, TIMELOG_PASSWORD),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let c = reqwest::Client::new();
    for path in [
        "/harvest/api/v2/users/me",
        "/hubstaff/api/v2/users/me",
        "/basecamp/launchpad/authorization.json",
        "/tripletex/v2/customer",
    ] {
        let resp = c
            .get(format!("{}{path}", sb.base_url()))
            .send()
            .await
            .unwrap();
        // Each provider answers its own auth error, not the TimeLog (or fallback) 404.
        assert!(
            matches!(resp.status().as_u16(), 400 | 401),
            "{path}: {}",
            resp.status()
        );
    }
    let before = sb.harvest().request_count();
    c.get(format!("{}/harvest/api/v2/users/me", sb.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(sb.harvest().request_count(), before + 1);
    let resp = c
        .get(format!("{}/nowhere", sb.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn injected_failures_answer_soap_faults_with_the_status() {
    let sb = Sandbox::start(Seed::Empty).await.unwrap();
    sb.timelog().fail_next(1, 503);
    let body = get_token_body(TIMELOG_USERNAME, TIMELOG_PASSWORD);
    let (status, text) = post(&security_url(&sb), Some("GetTokenRequest"), body.clone()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(texts(&text, "faultcode"), ["s:Server"]);
    let (status, _) = post(&security_url(&sb), Some("GetTokenRequest"), body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sb.timelog().total_request_count(), 2);
}

#[tokio::test]
async fn describe_lists_the_seven_connect_fields() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let text = sb.describe();
    for v in [
        sb.timelog_domain().as_str(),
        TIMELOG_ACCOUNT,
        TIMELOG_USERNAME,
        TIMELOG_PASSWORD,
        TIMELOG_SITE_CODE,
        TIMELOG_REPORTING_USERNAME,
        TIMELOG_REPORTING_PASSWORD,
    ] {
        assert!(text.contains(v), "{v} missing from\n{text}");
    }
}

#[tokio::test]
async fn the_demo_feed_has_creates_an_edit_and_a_delete_over_the_last_weeks() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let t = token(&sb).await;
    let today = Utc::now().date_naive();
    let params = format!(
        "<tl:initials></tl:initials><tl:registrationStartDate>{}</tl:registrationStartDate>\
         <tl:registrationEndDate>{today}</tl:registrationEndDate><tl:changeStartDate>{}</tl:changeStartDate>\
         <tl:changeEndDate>{}T23:59:59</tl:changeEndDate><tl:page>1</tl:page><tl:pageSize>500</tl:pageSize>",
        today - ChronoDuration::days(40),
        today - ChronoDuration::days(40),
        today + ChronoDuration::days(1),
    );
    let (_, body) = pm(&sb, "GetWorkChangesPaged", &params, &t).await;
    let feed = rows(&body, "WorkUnitFlat");
    let count = |a: &str| feed.iter().filter(|r| r["Action"] == a).count();
    assert!(count("Created") >= 20, "{}", feed.len());
    assert_eq!(count("Updated"), 1);
    assert_eq!(count("Deleted"), 1);
    let dates: Vec<&str> = feed.iter().map(|r| r["ActionDate"].as_str()).collect();
    let mut sorted = dates.clone();
    sorted.sort();
    assert_eq!(dates, sorted);
    // Only Bob's rows with his initials filter.
    let (_, body) = pm(
        &sb,
        "GetWorkChangesPaged",
        &params.replace(
            "<tl:initials></tl:initials>",
            "<tl:initials>BBU</tl:initials>",
        ),
        &t,
    )
    .await;
    let bob = rows(&body, "WorkUnitFlat");
    assert!(!bob.is_empty());
    assert!(bob.iter().all(|r| r["EmployeeInitials"] == "BBU"
        || r["Action"] == "Deleted"
        || r["EmployeeInitials"] == "nil"));
    assert!(bob.len() < feed.len());
}

#[tokio::test]
async fn a_task_created_inactive_starts_completed() {
    let sb = Sandbox::start(Seed::Empty).await.unwrap();
    let t = token(&sb).await;
    let task = format!(
        "<tl:task xmlns:v=\"{V17}\"><v:Name>Old work</v:Name><v:State><v:IsActive>false</v:IsActive></v:State></tl:task><tl:projectID>612</tl:projectID>"
    );
    let (_, body) = pm(&sb, "CreateTask", &task, &t).await;
    assert_eq!(texts(&body, "Status"), ["Success"], "{body}");
    let created = sb
        .timelog()
        .tasks()
        .into_iter()
        .find(|x| x.name == "Old work")
        .unwrap();
    assert_eq!((created.status, created.active), (3, false));
    assert!(created.external_keys.is_empty());
    let (_, body) = pm(&sb, "CreateTask", &task.replace("612", "9999"), &t).await;
    assert_eq!(texts(&body, "Status"), ["Error"]);
}

/// Every element path (`{ns}name/{ns}name…`, attributes as `@name`) below the SOAP Body, or
/// below the document root for a bare document.
fn shape(body: &str) -> std::collections::BTreeSet<String> {
    use quick_xml::NsReader;
    use quick_xml::name::ResolveResult;
    let mut reader = NsReader::from_str(body);
    let mut stack: Vec<String> = Vec::new();
    let mut out = std::collections::BTreeSet::new();
    loop {
        let (res, ev) = reader.read_resolved_event().unwrap();
        let ns = match res {
            ResolveResult::Bound(n) => AsRef::<str>::as_ref(&n).to_owned(),
            _ => String::new(),
        };
        let (e, empty) = match ev {
            Event::Start(e) => (e, false),
            Event::Empty(e) => (e, true),
            Event::End(_) => {
                stack.pop();
                continue;
            }
            Event::Eof => return out,
            _ => continue,
        };
        let name = format!("{{{ns}}}{}", AsRef::<str>::as_ref(&e.local_name()));
        stack.push(name);
        // Paths start below Envelope/Body, or below a bare document's root.
        let skip = if stack[0].ends_with("}Envelope") {
            2
        } else {
            1
        };
        if stack.len() > skip {
            let path = stack[skip..].join("/");
            for a in e.attributes().flatten() {
                let key = AsRef::<str>::as_ref(&a.key.local_name()).to_owned();
                if a.key.as_namespace_binding().is_none() && key != "nil" && key != "schemaLocation"
                {
                    out.insert(format!("{path}/@{key}"));
                }
            }
            out.insert(path);
        }
        if empty {
            stack.pop();
        }
    }
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn assert_has_shape(fixture_name: &str, body: &str) {
    let want = shape(&fixture(fixture_name));
    assert!(want.len() > 15, "{fixture_name}: {want:?}");
    let got = shape(body);
    let missing: Vec<&String> = want.difference(&got).collect();
    assert!(
        missing.is_empty(),
        "{fixture_name}: missing {missing:#?}\nin {body}"
    );
}

#[tokio::test]
async fn responses_have_the_shapes_of_the_reference_fixtures() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let tl = sb.timelog();
    let (_, body) = post(
        &security_url(&sb),
        Some("GetTokenRequest"),
        get_token_body(TIMELOG_USERNAME, TIMELOG_PASSWORD),
    )
    .await;
    assert_has_shape("timelog-soap-gettoken-response.xml", &body);

    let t = token(&sb).await;
    let (workshop, _) = task_id(&sb, "Workshop");
    let open_day = last_weekday_before(1);
    let closed_day = open_day - ChronoDuration::days(7);
    tl.close_week("BBU", closed_day);
    let work = [
        work_unit(None, workshop, "BBU", open_day, "PT1H30M"),
        work_unit(None, workshop, "BBU", closed_day, "PT1H"),
    ]
    .concat();
    let (_, body) = write_work(&sb, "InsertWork", &work, &t).await;
    assert_has_shape("timelog-soap-insertwork-response.xml", &body);

    let today = Utc::now().date_naive();
    let params = format!(
        "<tl:initials></tl:initials><tl:registrationStartDate>{}</tl:registrationStartDate>\
         <tl:registrationEndDate>{today}</tl:registrationEndDate><tl:changeStartDate>{}</tl:changeStartDate>\
         <tl:changeEndDate>{}</tl:changeEndDate><tl:page>1</tl:page><tl:pageSize>500</tl:pageSize>",
        today - ChronoDuration::days(60),
        today - ChronoDuration::days(60),
        today + ChronoDuration::days(1),
    );
    let (_, body) = pm(&sb, "GetWorkChangesPaged", &params, &t).await;
    assert_has_shape("timelog-soap-getworkchangespaged-response.xml", &body);

    for (op, file, params) in [
        (
            "GetEmployeesRaw",
            "timelog-reporting-employees-raw.xml",
            "<r:status>-1</r:status>",
        ),
        (
            "GetTasksRaw",
            "timelog-reporting-tasks-raw.xml",
            "<r:status>-1</r:status>",
        ),
    ] {
        let (status, body) = reporting(&sb, op, CREDS, params).await;
        assert_eq!(status, StatusCode::OK);
        // The result document is the Result element's child.
        let start = body.find("<tlp:").unwrap();
        let end = body.rfind("</tlp:").unwrap();
        let close = body[end..].find('>').unwrap() + end + 1;
        assert_has_shape(file, &body[start..close]);
    }
}

#[tokio::test]
async fn added_projects_are_active_listed_by_get_projects_and_take_tasks() {
    let sb = Sandbox::start(Seed::Empty).await.unwrap();
    let tl = sb.timelog();
    let a = tl.add_project("Bench 1");
    let b = tl.add_project("Bench 2");
    assert!(a != b && a != 612 && b != 612, "{a} {b}");
    let p = tl.projects().into_iter().find(|p| p.id == b).unwrap();
    assert_eq!((p.name.as_str(), p.active), ("Bench 2", true));
    let t = token(&sb).await;
    let (status, body) = pm(&sb, "GetProjects", "", &t).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(texts(&body, "ProjectHeader").len(), 3, "{body}");
    let task = tl
        .add_task(a, None, "Design")
        .expect("a task on the new project");
    assert_eq!(tl.task(&task).unwrap().project_id, a);
}
