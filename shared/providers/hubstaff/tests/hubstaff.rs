//! The Hubstaff adapter against a fake Hubstaff (wiremock) and the reference fixtures.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDate;
use hourbridge_domain::{Role, SecretValue};
use hourbridge_provider_api::{
    AuthKind, ClientAuth, DateWindow, OAuthClient, Provider, ProviderError, ProviderErrorKind,
    ProviderSession, RateBudget, RateLimit, RateLimitScope, RemotePage, RemoteWorkLog, Schedule,
    WorkLogSource, check_provider,
};
use hourbridge_provider_http::ProviderEnv;
use hourbridge_provider_hubstaff::{ACCOUNT_URL_VAR, API_URL_VAR, ENV_VARS, Hubstaff, ID};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ORG: &str = "123";
const PROJECT: &str = "2650117";
const DAILY_PATH: &str = "/projects/2650117/activities/daily";

fn env(server: &MockServer) -> ProviderEnv {
    ProviderEnv::for_tests(&[
        (API_URL_VAR, &server.uri()),
        (ACCOUNT_URL_VAR, &server.uri()),
    ])
}

fn hubstaff(server: &MockServer) -> Hubstaff {
    Hubstaff::from_env(&env(server)).unwrap()
}

fn session_with(settings: Value) -> ProviderSession {
    ProviderSession {
        workspace_id: "ws-1".into(),
        secrets: BTreeMap::from([("access_token".to_owned(), SecretValue::new("tok"))]),
        settings,
    }
}

fn session() -> ProviderSession {
    session_with(json!({ "account_id": ORG, "client_id": "client-abc" }))
}

fn fixture(name: &str) -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    std::fs::read_to_string(format!("{dir}/{name}")).unwrap()
}

fn json_body(body: impl Into<String>) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body.into(), "application/json")
}

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn window(from: &str, to: &str) -> DateWindow {
    DateWindow {
        from: day(from),
        to: day(to),
    }
}

fn daily_row(id: u64, date: &str, user_id: u64, task_id: Value, tracked: u64) -> Value {
    json!({
        "id": id, "date": date, "user_id": user_id, "project_id": 2650117_u64,
        "task_id": task_id, "tracked": tracked,
        "updated_at": "2025-02-10T15:31:09.288117Z"
    })
}

/// The query parameter `name` of a received request.
fn param(req: &wiremock::Request, name: &str) -> Option<String> {
    req.url
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Reads every page of a work-log listing, as the engine would.
async fn all_pages(
    h: &Hubstaff,
    w: DateWindow,
) -> Result<Vec<RemotePage<RemoteWorkLog>>, ProviderError> {
    let mut pages = Vec::new();
    let mut token = None;
    loop {
        let page = h.list_work_logs(&session(), PROJECT, w, token).await?;
        token = page.next.clone();
        pages.push(page);
        if token.is_none() {
            return Ok(pages);
        }
        assert!(pages.len() < 20, "listing does not terminate");
    }
}

// ---------------------------------------------------------------- fixtures

#[test]
fn fixtures_match_the_shared_reference_copies() {
    let reference = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../../shared/reference/fixtures"
    );
    if !std::path::Path::new(reference).exists() {
        eprintln!("note: {reference} is absent; skipping the fixture comparison");
        return;
    }
    for name in [
        "hubstaff-members.json",
        "hubstaff-daily-activities.json",
        "hubstaff-activities.json",
    ] {
        let shared = std::fs::read(format!("{reference}/{name}")).unwrap();
        let ours = std::fs::read(format!(
            "{}/tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        assert!(
            shared == ours,
            "tests/fixtures/{name} differs from {reference}/{name}"
        );
    }
}

#[tokio::test]
async fn members_fixture_yields_side_loaded_users_with_emails_verbatim() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/organizations/{ORG}/members")))
        .and(query_param("include[]", "users"))
        .and(query_param("include_removed", "true"))
        .and(query_param("page_limit", "500"))
        .and(query_param_is_missing("page_start_id"))
        .and(header("authorization", "Bearer tok"))
        .respond_with(json_body(fixture("hubstaff-members.json")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/organizations/{ORG}/members")))
        .and(query_param("page_start_id", "1690135"))
        .respond_with(json_body(r#"{"members": [], "users": []}"#))
        .expect(1)
        .mount(&server)
        .await;
    let h = hubstaff(&server);

    let page = h.list_people(&session(), None).await.unwrap();
    let by_id = |id: &str| page.items.iter().find(|p| p.id == id).unwrap();
    assert_eq!(page.items.len(), 3);
    let jonas = by_id("1920448");
    assert_eq!(jonas.name, "Jonas Berg");
    assert_eq!(
        jonas.email.as_deref(),
        Some("Jonas.Berg@northwind-logistics.example "),
        "kept verbatim: the engine normalises"
    );
    let ana = by_id("1955021");
    assert_eq!(ana.name, "Ana Ribeiro");
    assert_eq!(ana.email, None);
    let removed = by_id("1690134");
    assert_eq!(
        removed.email.as_deref(),
        Some("sam.okafor@freelance-mail.example")
    );
    assert_eq!(page.next.as_deref(), Some("1690135"));

    let last = h.list_people(&session(), page.next).await.unwrap();
    assert!(last.items.is_empty());
    assert_eq!(last.next, None, "no pagination key: last page");
}

#[tokio::test]
async fn daily_activities_fixture_becomes_work_logs() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(DAILY_PATH))
        .respond_with(json_body(fixture("hubstaff-daily-activities.json")))
        .expect(1)
        .mount(&server)
        .await;
    let h = hubstaff(&server);

    let page = h
        .list_work_logs(
            &session(),
            PROJECT,
            window("2025-02-10", "2025-02-11"),
            None,
        )
        .await
        .unwrap();

    assert_eq!(page.next, None, "single chunk and no pagination key");
    let ids: Vec<&str> = page.items.iter().map(|w| w.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "1873305-2650117-90311876-2025-02-10",
            "1920448-2650117-0-2025-02-10",
        ],
        "the tracked: 0 row of 2025-02-11 is skipped; a null task is 0 in the id"
    );
    let tracked = &page.items[0];
    assert_eq!(tracked.minutes, 390, "23400 s");
    assert_eq!(tracked.project_id, PROJECT);
    assert_eq!(tracked.date, day("2025-02-10"));
    assert_eq!(tracked.person.id, "1873305");
    assert_eq!(
        tracked.person.email, None,
        "no users side-loaded in this body"
    );
    assert_eq!(tracked.note, "");
    assert!(!tracked.running);
    assert_eq!(
        tracked.updated_at.unwrap().to_rfc3339(),
        "2025-02-10T15:31:09.288117+00:00"
    );
    let manual = &page.items[1];
    assert_eq!(manual.minutes, 90, "5400 s");
    assert_eq!(manual.person.id, "1920448");
}

#[tokio::test]
async fn work_logs_take_names_and_emails_from_side_loaded_users_and_fold_missing_tasks() {
    let server = MockServer::start().await;
    let mut absent_task = daily_row(3, "2025-02-12", 7, Value::Null, 61);
    absent_task.as_object_mut().unwrap().remove("task_id");
    let body = json!({
        "daily_activities": [
            daily_row(1, "2025-02-10", 7, json!(0), 29),
            daily_row(2, "2025-02-11", 8, json!(9_000_000_000_u64), 150),
            absent_task,
        ],
        "users": [
            { "id": 7, "name": "Marta Kowalczyk", "email": "MARTA@example.test" },
            { "id": 8, "name": "No Mail" }
        ]
    });
    Mock::given(method("GET"))
        .and(path(DAILY_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&server)
        .await;

    let page = hubstaff(&server)
        .list_work_logs(
            &session(),
            PROJECT,
            window("2025-02-10", "2025-02-12"),
            None,
        )
        .await
        .unwrap();

    let got: Vec<(&str, u32, &str, Option<&str>)> = page
        .items
        .iter()
        .map(|w| {
            (
                w.id.as_str(),
                w.minutes,
                w.person.name.as_str(),
                w.person.email.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "7-2650117-0-2025-02-10",
                0,
                "Marta Kowalczyk",
                Some("MARTA@example.test")
            ),
            ("8-2650117-9000000000-2025-02-11", 3, "No Mail", None),
            (
                "7-2650117-0-2025-02-12",
                1,
                "Marta Kowalczyk",
                Some("MARTA@example.test")
            ),
        ]
    );
}

// ---------------------------------------------------------------- request shape and paging

#[tokio::test]
async fn daily_activities_are_requested_with_the_documented_shape() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(DAILY_PATH))
        .and(query_param("date[start]", "2025-02-01"))
        .and(query_param("date[stop]", "2025-02-28"))
        .and(query_param("include[]", "users"))
        .and(query_param("page_limit", "500"))
        .and(query_param_is_missing("page_start_id"))
        .and(header("authorization", "Bearer tok"))
        .respond_with(json_body(r#"{"daily_activities": []}"#))
        .expect(1)
        .mount(&server)
        .await;

    let page = hubstaff(&server)
        .list_work_logs(
            &session(),
            PROJECT,
            window("2025-02-01", "2025-02-28"),
            None,
        )
        .await
        .unwrap();
    assert!(page.items.is_empty());
    assert_eq!(page.next, None);
}

#[tokio::test]
async fn a_70_day_window_is_read_as_three_chunks_without_gap_or_overlap() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(DAILY_PATH))
        .respond_with(json_body(r#"{"daily_activities": []}"#))
        .mount(&server)
        .await;
    let w = window("2025-01-01", "2025-03-11");
    assert_eq!((w.to - w.from).num_days() + 1, 70);

    let pages = all_pages(&hubstaff(&server), w).await.unwrap();
    assert_eq!(pages.len(), 3);

    let bounds: Vec<(NaiveDate, NaiveDate)> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let start = param(r, "date[start]").unwrap().parse().unwrap();
            let stop = param(r, "date[stop]").unwrap().parse().unwrap();
            (start, stop)
        })
        .collect();
    assert_eq!(
        bounds,
        [
            (day("2025-01-01"), day("2025-01-31")),
            (day("2025-02-01"), day("2025-03-03")),
            (day("2025-03-04"), day("2025-03-11")),
        ]
    );
    assert_eq!(bounds[0].0, w.from);
    assert_eq!(bounds[2].1, w.to);
    for (start, stop) in &bounds {
        let days_inclusive = (*stop - *start).num_days() + 1;
        assert!(days_inclusive <= 31, "{start}..{stop}");
    }
    for pair in bounds.windows(2) {
        assert_eq!(pair[0].1.succ_opt().unwrap(), pair[1].0, "inclusive stop");
    }
}

#[tokio::test]
async fn pages_follow_next_page_start_id_even_through_an_empty_page_and_stop_without_pagination() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(DAILY_PATH))
        .and(query_param_is_missing("page_start_id"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "daily_activities": [daily_row(10, "2025-02-03", 7, json!(1), 600)],
            "pagination": { "next_page_start_id": 5000 }
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(DAILY_PATH))
        .and(query_param("page_start_id", "5000"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "daily_activities": [],
            "pagination": { "next_page_start_id": 6000 }
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(DAILY_PATH))
        .and(query_param("page_start_id", "6000"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "daily_activities": [daily_row(11, "2025-02-04", 7, json!(1), 1200)]
        })))
        .expect(1)
        .mount(&server)
        .await;

    let pages = all_pages(&hubstaff(&server), window("2025-02-01", "2025-02-28"))
        .await
        .unwrap();
    let minutes: Vec<Vec<u32>> = pages
        .iter()
        .map(|p| p.items.iter().map(|w| w.minutes).collect())
        .collect();
    assert_eq!(minutes, [vec![10], vec![], vec![20]]);
    for r in server.received_requests().await.unwrap() {
        assert_eq!(param(&r, "date[start]").as_deref(), Some("2025-02-01"));
        assert_eq!(param(&r, "date[stop]").as_deref(), Some("2025-02-28"));
    }
}

#[tokio::test]
async fn a_returned_page_token_resumes_exactly_where_the_listing_left_off() {
    let server = MockServer::start().await;
    let w = window("2025-01-01", "2025-02-09");
    Mock::given(method("GET"))
        .and(path(DAILY_PATH))
        .and(query_param("date[start]", "2025-01-01"))
        .and(query_param("date[stop]", "2025-01-31"))
        .and(query_param_is_missing("page_start_id"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "daily_activities": [daily_row(1, "2025-01-05", 7, json!(1), 60)],
            "pagination": { "next_page_start_id": 700 }
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(DAILY_PATH))
        .and(query_param("date[start]", "2025-01-01"))
        .and(query_param("date[stop]", "2025-01-31"))
        .and(query_param("page_start_id", "700"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "daily_activities": [daily_row(2, "2025-01-20", 7, json!(1), 120)]
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(DAILY_PATH))
        .and(query_param("date[start]", "2025-02-01"))
        .and(query_param("date[stop]", "2025-02-09"))
        .and(query_param_is_missing("page_start_id"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "daily_activities": [daily_row(3, "2025-02-02", 7, json!(1), 180)]
        })))
        .expect(1)
        .mount(&server)
        .await;

    // Each page is read by a fresh adapter, as after a restart: only the token carries state.
    let first = hubstaff(&server)
        .list_work_logs(&session(), PROJECT, w, None)
        .await
        .unwrap();
    let second = hubstaff(&server)
        .list_work_logs(&session(), PROJECT, w, first.next.clone())
        .await
        .unwrap();
    let third = hubstaff(&server)
        .list_work_logs(&session(), PROJECT, w, second.next.clone())
        .await
        .unwrap();

    assert_eq!(first.items[0].minutes, 1);
    assert_eq!(second.items[0].minutes, 2);
    assert_eq!(third.items[0].minutes, 3);
    assert!(first.next.is_some() && second.next.is_some());
    assert_ne!(first.next, second.next);
    assert_eq!(third.next, None);
    let sent: Vec<(Option<String>, Option<String>)> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| (param(r, "date[start]"), param(r, "page_start_id")))
        .collect();
    assert_eq!(
        sent,
        [
            (Some("2025-01-01".to_owned()), None),
            (Some("2025-01-01".to_owned()), Some("700".to_owned())),
            (Some("2025-02-01".to_owned()), None),
        ],
        "no page read twice, none skipped"
    );
}

#[tokio::test]
async fn a_page_token_outside_the_window_is_rejected_without_a_request() {
    let server = MockServer::start().await;
    let foreign = r#"{"chunk_start":"2024-06-01","page_start_id":5}"#.to_owned();
    let e = hubstaff(&server)
        .list_work_logs(
            &session(),
            PROJECT,
            window("2025-01-01", "2025-01-31"),
            Some(foreign),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::Rejected);
    assert!(server.received_requests().await.unwrap().is_empty());
}

// ---------------------------------------------------------------- errors

#[tokio::test]
async fn unauthorized_requires_reauthorisation() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "error": "invalid_token", "error_description": "The access token expired"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let e = hubstaff(&server)
        .list_work_logs(
            &session(),
            PROJECT,
            window("2025-02-01", "2025-02-02"),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::ReauthRequired);
    assert!(e.needs_reauth());
}

#[tokio::test]
async fn an_inactive_plan_is_forbidden_with_a_plan_message() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "code": "forbidden", "error_code": 10003,
            "error": "API access is only for organizations on an active plan"
        })))
        .mount(&server)
        .await;
    let h = hubstaff(&server);

    let e = h.check_credentials(&session()).await.unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::Forbidden);
    assert!(
        e.message.contains("Hubstaff plan is inactive"),
        "{}",
        e.message
    );
    let e = h.list_projects(&session(), None, None).await.unwrap_err();
    assert!(
        e.message.contains("Hubstaff plan is inactive"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn other_forbidden_answers_keep_their_message() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "code": "forbidden", "error_code": 10002, "error": "Requires manager role"
        })))
        .mount(&server)
        .await;
    let e = hubstaff(&server)
        .list_people(&session(), None)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::Forbidden);
    // The provider's words stay in the detail (logs), out of the message shown to users.
    let detail = e.detail.as_deref().unwrap_or_default();
    assert!(detail.contains("Requires manager role"), "{detail}");
    assert!(
        !e.message.contains("Requires manager role"),
        "{}",
        e.message
    );
    assert!(!e.message.contains("plan"), "{}", e.message);
}

#[tokio::test]
async fn too_many_requests_waits_for_retry_after_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/organizations/{ORG}/projects")))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/organizations/{ORG}/projects")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "projects": [{ "id": 1, "name": "Fleet", "status": "active" }]
        })))
        .expect(1)
        .mount(&server)
        .await;
    let started = std::time::Instant::now();
    let page = hubstaff(&server)
        .list_projects(&session(), None, None)
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "honoured Retry-After"
    );
    assert_eq!(page.items.len(), 1);
}

#[tokio::test]
async fn data_calls_without_an_organisation_are_rejected_before_any_request() {
    let server = MockServer::start().await;
    let h = hubstaff(&server);
    let s = session_with(json!({ "client_id": "client-abc" }));

    let errors = [
        h.list_projects(&s, None, None).await.unwrap_err(),
        h.list_people(&s, None).await.unwrap_err(),
        h.list_work_logs(&s, PROJECT, window("2025-02-01", "2025-02-02"), None)
            .await
            .unwrap_err(),
    ];
    for e in errors {
        assert_eq!(e.kind, ProviderErrorKind::Rejected);
        assert!(e.message.contains("account_id"), "{}", e.message);
    }
    assert!(server.received_requests().await.unwrap().is_empty());
}

// ---------------------------------------------------------------- credentials and listings

fn org_page(orgs: Value, next: Option<u64>) -> ResponseTemplate {
    let mut body = json!({ "organizations": orgs });
    if let Some(n) = next {
        body["pagination"] = json!({ "next_page_start_id": n });
    }
    ResponseTemplate::new(200).set_body_json(body)
}

async fn two_pages_of_organizations(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/organizations"))
        .and(query_param("page_limit", "500"))
        .and(query_param_is_missing("page_start_id"))
        .and(header("authorization", "Bearer tok"))
        .respond_with(org_page(
            json!([{ "id": 11, "name": "Northwind" }]),
            Some(12),
        ))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/organizations"))
        .and(query_param("page_start_id", "12"))
        .respond_with(org_page(
            json!([{ "id": 123, "name": "Contoso" }, { "id": 9_000_000_000_u64, "name": "Big" }]),
            None,
        ))
        .mount(server)
        .await;
}

#[tokio::test]
async fn check_credentials_reads_every_page_and_picks_the_configured_organisation() {
    let server = MockServer::start().await;
    two_pages_of_organizations(&server).await;
    let info = hubstaff(&server)
        .check_credentials(&session_with(
            json!({ "account_id": 123, "client_id": "client-abc" }),
        ))
        .await
        .unwrap();
    assert_eq!(info.account_id, "123");
    assert_eq!(info.account_name, "Contoso");
    assert_eq!(
        info.other_accounts,
        [
            ("11".to_owned(), "Northwind".to_owned()),
            ("123".to_owned(), "Contoso".to_owned()),
            ("9000000000".to_owned(), "Big".to_owned()),
        ]
    );
}

#[tokio::test]
async fn check_credentials_falls_back_to_the_first_organisation() {
    let server = MockServer::start().await;
    two_pages_of_organizations(&server).await;
    let h = hubstaff(&server);
    let unset = h
        .check_credentials(&session_with(json!({ "client_id": "client-abc" })))
        .await
        .unwrap();
    assert_eq!(unset.account_id, "11");
    let unknown = h
        .check_credentials(&session_with(
            json!({ "account_id": "77", "client_id": "client-abc" }),
        ))
        .await
        .unwrap();
    assert_eq!(unknown.account_id, "11");
    assert_eq!(unknown.other_accounts.len(), 3);
}

#[tokio::test]
async fn a_login_without_organisations_is_forbidden() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/organizations"))
        .respond_with(org_page(json!([]), None))
        .mount(&server)
        .await;
    let e = hubstaff(&server)
        .check_credentials(&session())
        .await
        .unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::Forbidden);
    assert!(e.message.contains("no organisation"), "{}", e.message);
}

#[tokio::test]
async fn projects_include_archived_ones_and_filter_by_name_case_insensitively() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/organizations/{ORG}/projects")))
        .and(query_param("status", "all"))
        .and(query_param("page_limit", "500"))
        .and(query_param("page_start_id", "40"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "projects": [
                { "id": 2650117, "name": "Fleet Portal Rebuild", "status": "active" },
                { "id": 2650118, "name": "Old FLEET app", "status": "archived" },
                { "id": 2650119, "name": "Payroll", "status": "active" }
            ],
            "pagination": { "next_page_start_id": 2650120 }
        })))
        .mount(&server)
        .await;
    let h = hubstaff(&server);

    let all = h
        .list_projects(&session(), None, Some("40".into()))
        .await
        .unwrap();
    assert_eq!(all.items.len(), 3);
    assert_eq!(all.next.as_deref(), Some("2650120"));
    let fleet = h
        .list_projects(&session(), Some(" fleet "), Some("40".into()))
        .await
        .unwrap();
    let got: Vec<(&str, bool)> = fleet
        .items
        .iter()
        .map(|p| (p.id.as_str(), p.archived))
        .collect();
    assert_eq!(got, [("2650117", false), ("2650118", true)]);
    assert!(
        fleet
            .items
            .iter()
            .all(|p| p.customer_name.is_none() && p.parent_id.is_none())
    );
}

// ---------------------------------------------------------------- budget and descriptor

#[derive(Default)]
struct Recording(Mutex<Vec<(String, RateLimit)>>);

#[async_trait]
impl RateBudget for Recording {
    async fn acquire(&self, key: &str, limit: &RateLimit) -> Result<(), ProviderError> {
        self.0.lock().unwrap().push((key.to_owned(), *limit));
        Ok(())
    }
}

#[tokio::test]
async fn every_request_is_counted_against_the_application_budget() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(json_body(
            r#"{"projects": [], "users": [], "daily_activities": []}"#,
        ))
        .mount(&server)
        .await;
    let budget = Arc::new(Recording::default());
    let h = Hubstaff::from_env(&ProviderEnv {
        budget: budget.clone(),
        ..env(&server)
    })
    .unwrap();
    h.list_projects(&session(), None, None).await.unwrap();
    h.list_people(&session(), None).await.unwrap();
    h.list_work_logs(
        &session(),
        PROJECT,
        window("2025-02-01", "2025-02-02"),
        None,
    )
    .await
    .unwrap();

    let expected = RateLimit {
        scope: RateLimitScope::Application,
        requests: 1000,
        per: Duration::from_secs(3600),
    };
    let seen = budget.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    for (key, limit) in seen {
        assert_eq!(key, "hubstaff:app:client-abc");
        assert_eq!(limit, expected);
    }

    let e = h
        .list_people(&session_with(json!({ "account_id": ORG })), None)
        .await
        .unwrap_err();
    assert_eq!(
        e.kind,
        ProviderErrorKind::Rejected,
        "no client_id, no budget key"
    );
}

#[tokio::test]
async fn the_descriptor_matches_hubstaff_and_check_provider_passes() {
    let server = MockServer::start().await;
    let h = hubstaff(&server);
    check_provider(&h).unwrap();

    let d = h.descriptor();
    assert_eq!((d.id, d.display_name), (ID, "Hubstaff"));
    assert_eq!(d.install_role, Role::Admin);
    assert!(!d.requires_add_on);
    assert_eq!(d.schedule, Schedule::Every(Duration::from_secs(24 * 3600)));
    assert_eq!(
        d.rate_limit,
        Some(RateLimit {
            scope: RateLimitScope::Application,
            requests: 1000,
            per: Duration::from_secs(3600),
        })
    );
    let logs = d.capabilities.work_logs_in.unwrap();
    assert!(!logs.deletion_feed);
    assert_eq!(logs.max_window_days, Some(31));
    let AuthKind::OAuth2(spec) = &d.auth else {
        panic!("Hubstaff uses OAuth2")
    };
    assert_eq!(
        spec.authorize_url,
        "https://account.hubstaff.com/authorizations/new"
    );
    assert_eq!(spec.token_url, "https://account.hubstaff.com/access_tokens");
    assert_eq!(spec.scopes, ["openid", "profile", "email", "hubstaff:read"]);
    assert_eq!(spec.scope_separator, " ");
    assert!(!spec.pkce);
    assert_eq!(spec.client, OAuthClient::CustomerSupplied);
    assert_eq!(spec.client_auth, ClientAuth::BasicHeader);
    assert!(spec.extra_authorize_params.is_empty());
    assert!(spec.refresh_token_rotates);

    assert_eq!(
        h.oauth_urls(),
        Some((
            format!("{}/authorizations/new", server.uri()),
            format!("{}/access_tokens", server.uri()),
        ))
    );
    assert_eq!(ENV_VARS, [API_URL_VAR, ACCOUNT_URL_VAR]);
    let defaults = Hubstaff::from_env(&ProviderEnv::for_tests(&[])).unwrap();
    assert_eq!(
        defaults.oauth_urls(),
        Some((
            "https://account.hubstaff.com/authorizations/new".to_owned(),
            "https://account.hubstaff.com/access_tokens".to_owned(),
        ))
    );
}
