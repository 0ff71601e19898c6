//! The adapter against a mock Harvest serving the reference fixtures.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::NaiveDate;
use hourbridge_domain::SecretValue;
use hourbridge_provider_api::{
    DateWindow, Provider, ProviderError, ProviderErrorKind, ProviderSession, RateBudget, RateLimit,
    WorkLogSource, check_provider,
};
use hourbridge_provider_harvest::{API_URL_VAR, DESCRIPTOR, Harvest, ID_URL_VAR};
use hourbridge_provider_http::ProviderEnv;
use serde_json::{Value, json};
use wiremock::matchers::{
    header, header_exists, method, path, query_param, query_param_is_missing,
};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TIME_ENTRIES: &str = include_str!("fixtures/harvest-time-entries.json");
const USERS: &str = include_str!("fixtures/harvest-users.json");
const ACCOUNTS: &str = include_str!("fixtures/harvest-accounts.json");
const FIXTURES: [&str; 3] = [
    "harvest-time-entries.json",
    "harvest-users.json",
    "harvest-accounts.json",
];

const ACCOUNT: &str = "1320977";
const PROJECT: &str = "40117823";

fn window() -> DateWindow {
    DateWindow {
        from: NaiveDate::from_ymd_opt(2025, 2, 1).unwrap(),
        to: NaiveDate::from_ymd_opt(2025, 2, 28).unwrap(),
    }
}

fn session(settings: Value) -> ProviderSession {
    ProviderSession {
        workspace_id: "acme".into(),
        secrets: BTreeMap::from([("access_token".to_owned(), SecretValue::new("tok-123"))]),
        settings,
    }
}

fn env(server: &MockServer) -> ProviderEnv {
    ProviderEnv::for_tests(&[(API_URL_VAR, &server.uri()), (ID_URL_VAR, &server.uri())])
}

fn harvest(server: &MockServer) -> Harvest {
    Harvest::from_env(&env(server)).unwrap()
}

/// A fixture with its `links.next` replaced.
fn with_next(fixture: &str, next: Option<String>) -> Value {
    let mut v: Value = serde_json::from_str(fixture).unwrap();
    v["links"]["next"] = next.map_or(Value::Null, Value::String);
    v
}

fn ok(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

/// Records every budget acquisition.
#[derive(Default)]
struct Recording(Mutex<Vec<(String, RateLimit)>>);

#[async_trait]
impl RateBudget for Recording {
    async fn acquire(&self, key: &str, limit: &RateLimit) -> Result<(), ProviderError> {
        self.0.lock().unwrap().push((key.to_owned(), *limit));
        Ok(())
    }
}

#[test]
fn fixtures_match_the_shared_reference_copies() {
    let reference = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../../shared/reference/fixtures"
    ));
    if !reference.is_dir() {
        println!(
            "note: {} is absent; skipping the comparison with the reference fixtures",
            reference.display()
        );
        return;
    }
    let local = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"));
    for name in FIXTURES {
        let ours = std::fs::read(local.join(name)).unwrap();
        let theirs = std::fs::read(reference.join(name)).unwrap();
        assert!(
            ours == theirs,
            "tests/fixtures/{name} differs from the reference copy"
        );
    }
}

#[test]
fn the_adapter_offers_exactly_what_it_declares() {
    let h = Harvest::from_env(&ProviderEnv::for_tests(&[])).unwrap();
    check_provider(&h).unwrap();
    assert!(std::ptr::eq(h.descriptor(), Harvest::descriptor_static()));
    let d = &DESCRIPTOR;
    assert_eq!((d.id, d.display_name), ("harvest", "Harvest"));
    let logs = d.capabilities.work_logs_in.unwrap();
    assert!(!logs.deletion_feed);
    assert_eq!(logs.max_window_days, None);
    assert!(d.capabilities.master_data_in.is_none() && d.capabilities.webhooks.is_none());
}

#[tokio::test]
async fn work_logs_request_has_the_documented_shape() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/time_entries"))
        .and(query_param("project_id", PROJECT))
        .and(query_param("from", "2025-02-01"))
        .and(query_param("to", "2025-02-28"))
        .and(query_param("per_page", "2000"))
        .and(header("Harvest-Account-Id", ACCOUNT))
        .and(header("Authorization", "Bearer tok-123"))
        .and(header_exists("User-Agent"))
        .respond_with(ok(with_next(TIME_ENTRIES, None)))
        .expect(1)
        .mount(&server)
        .await;

    let page = harvest(&server)
        .list_work_logs(
            &session(json!({"account_id": ACCOUNT})),
            PROJECT,
            window(),
            None,
        )
        .await
        .unwrap();

    assert_eq!(page.next, None);
    let ids: Vec<&str> = page.items.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(ids, ["2493018877", "2493577310", "2491204466"]);
    assert_eq!(page.items[0].minutes, 208);
    assert!(page.items[1].running);
    assert_eq!(page.items[2].note, "");

    let requests = server.received_requests().await.unwrap();
    let ua = requests[0]
        .headers
        .get("user-agent")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        !ua.trim().is_empty(),
        "Harvest answers 400 without a User-Agent"
    );
}

#[tokio::test]
async fn work_logs_follow_links_next_and_count_every_request_against_the_account() {
    let server = MockServer::start().await;
    let next = format!(
        "{}/time_entries?cursor=c2&from=2025-02-01&per_page=2000&project_id={PROJECT}&to=2025-02-28",
        server.uri()
    );
    Mock::given(method("GET"))
        .and(path("/time_entries"))
        .and(query_param_is_missing("cursor"))
        .and(query_param("project_id", PROJECT))
        .respond_with(ok(with_next(TIME_ENTRIES, Some(next.clone()))))
        .expect(1)
        .mount(&server)
        .await;
    // The last page holds an entry that has since moved to another project.
    Mock::given(method("GET"))
        .and(path("/time_entries"))
        .and(query_param("cursor", "c2"))
        .and(header("Harvest-Account-Id", ACCOUNT))
        .and(header("Authorization", "Bearer tok-123"))
        .respond_with(ok(json!({
            "time_entries": [{
                "id": 9_007_199_254_740_993_u64, "spent_date": "2025-02-12",
                "user": {"id": 4109871, "name": "Jonas Berg"},
                "project": {"id": 50000001, "name": "Elsewhere"},
                "hours": 2.0, "notes": "moved", "is_running": false,
                "updated_at": "2025-02-13T09:00:00Z"
            }],
            "links": {"next": null}
        })))
        .expect(1)
        .mount(&server)
        .await;

    let budget = Arc::new(Recording::default());
    let mut env = env(&server);
    env.budget = budget.clone();
    let h = Harvest::from_env(&env).unwrap();
    // The engine may store the account id as a JSON number.
    let s = session(json!({"account_id": 1320977}));

    let first = h.list_work_logs(&s, PROJECT, window(), None).await.unwrap();
    assert_eq!(first.items.len(), 3);
    assert_eq!(first.next.as_deref(), Some(next.as_str()));
    let second = h
        .list_work_logs(&s, PROJECT, window(), first.next)
        .await
        .unwrap();
    assert_eq!(second.next, None);
    assert_eq!(second.items.len(), 1);
    let moved = &second.items[0];
    assert_eq!(moved.id, "9007199254740993", "no float rounding of big ids");
    assert_eq!(moved.project_id, "50000001", "returned as Harvest sent it");
    assert_eq!(moved.minutes, 120);

    let acquired = budget.0.lock().unwrap().clone();
    assert_eq!(acquired.len(), 2);
    for (key, limit) in acquired {
        assert_eq!(key, "harvest:account:1320977");
        assert_eq!(Some(limit), DESCRIPTOR.rate_limit);
    }
}

#[tokio::test]
async fn a_next_link_to_another_host_is_refused_and_never_requested() {
    let server = MockServer::start().await;
    let evil = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ok(with_next(TIME_ENTRIES, None)))
        .expect(0)
        .mount(&evil)
        .await;
    let evil_link = format!("{}/time_entries?cursor=c2", evil.uri());
    Mock::given(method("GET"))
        .and(path("/time_entries"))
        .and(query_param("project_id", "1"))
        .respond_with(ok(with_next(TIME_ENTRIES, Some(evil_link.clone()))))
        .mount(&server)
        .await;
    // Served verbatim, the fixture links to the real Harvest, which is not the configured API.
    Mock::given(method("GET"))
        .and(path("/time_entries"))
        .and(query_param("project_id", "2"))
        .respond_with(ResponseTemplate::new(200).set_body_string(TIME_ENTRIES))
        .mount(&server)
        .await;

    let h = harvest(&server);
    let s = session(json!({"account_id": ACCOUNT}));

    for project in ["1", "2"] {
        let e = h
            .list_work_logs(&s, project, window(), None)
            .await
            .unwrap_err();
        assert_eq!(
            e.kind,
            ProviderErrorKind::InvalidResponse,
            "project {project}"
        );
    }

    let server_authority = server.uri().trim_start_matches("http://").to_owned();
    let evil_authority = evil.uri().trim_start_matches("http://").to_owned();
    for token in [
        evil_link,
        // Starts with the configured URL, but the host is the part after `@`.
        format!("http://{server_authority}@{evil_authority}/time_entries"),
    ] {
        let e = h
            .list_work_logs(&s, PROJECT, window(), Some(token.clone()))
            .await
            .unwrap_err();
        assert_eq!(e.kind, ProviderErrorKind::InvalidResponse, "{token}");
    }
    assert!(evil.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn auth_and_permission_failures_are_classified() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/time_entries"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({"error": "invalid_token", "error_description": "expired"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/users"))
        .respond_with(ResponseTemplate::new(403))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/projects"))
        .respond_with(ResponseTemplate::new(403))
        .expect(1)
        .mount(&server)
        .await;

    let h = harvest(&server);
    let s = session(json!({"account_id": ACCOUNT}));
    let e = h
        .list_work_logs(&s, PROJECT, window(), None)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::ReauthRequired);
    assert!(e.needs_reauth());
    let e = h.list_people(&s, None).await.unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::Forbidden);
    let e = h.list_projects(&s, None, None).await.unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::Forbidden);
    assert!(
        !e.message.contains("tok-123"),
        "errors never carry the token"
    );
}

#[tokio::test]
async fn throttling_is_waited_out_and_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/time_entries"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/time_entries"))
        .respond_with(ok(with_next(TIME_ENTRIES, None)))
        .mount(&server)
        .await;

    let started = std::time::Instant::now();
    let page = harvest(&server)
        .list_work_logs(
            &session(json!({"account_id": ACCOUNT})),
            PROJECT,
            window(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 3);
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));
}

#[tokio::test]
async fn data_calls_without_an_account_are_rejected_before_any_request() {
    let server = MockServer::start().await;
    let h = harvest(&server);
    let s = session(json!({}));

    let kinds = [
        h.list_work_logs(&s, PROJECT, window(), None)
            .await
            .unwrap_err(),
        h.list_people(&s, None).await.unwrap_err(),
        h.list_projects(&s, None, None).await.unwrap_err(),
    ];
    for e in kinds {
        assert_eq!(e.kind, ProviderErrorKind::Rejected);
        assert!(e.message.contains("account_id"), "{}", e.message);
    }
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn unreadable_or_incomplete_bodies_are_invalid_responses() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/time_entries"))
        .and(query_param("project_id", "1"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{\"time_entries\": ["))
        .mount(&server)
        .await;
    let mut no_hours: Value = serde_json::from_str(TIME_ENTRIES).unwrap();
    no_hours["time_entries"][0]
        .as_object_mut()
        .unwrap()
        .remove("hours");
    Mock::given(method("GET"))
        .and(path("/time_entries"))
        .and(query_param("project_id", "2"))
        .respond_with(ok(no_hours))
        .mount(&server)
        .await;

    let h = harvest(&server);
    let s = session(json!({"account_id": ACCOUNT}));
    for project in ["1", "2"] {
        let e = h
            .list_work_logs(&s, project, window(), None)
            .await
            .unwrap_err();
        assert_eq!(
            e.kind,
            ProviderErrorKind::InvalidResponse,
            "project {project}"
        );
    }
}

#[tokio::test]
async fn check_credentials_lists_harvest_accounts_at_harvest_id() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v2/accounts"))
        .and(header("Authorization", "Bearer tok-123"))
        .and(header_exists("User-Agent"))
        .respond_with(ResponseTemplate::new(200).set_body_string(ACCOUNTS))
        .expect(3)
        .mount(&server)
        .await;
    let budget = Arc::new(Recording::default());
    let mut env = env(&server);
    env.budget = budget.clone();
    let h = Harvest::from_env(&env).unwrap();

    let first = h.check_credentials(&session(json!({}))).await.unwrap();
    assert_eq!(
        (first.account_id.as_str(), first.account_name.as_str()),
        (ACCOUNT, "Northwind Logistics")
    );
    assert_eq!(
        first.other_accounts,
        vec![
            (ACCOUNT.to_owned(), "Northwind Logistics".to_owned()),
            (
                "1506214".to_owned(),
                "Berg Consulting (side account)".to_owned()
            ),
        ],
        "the Forecast account is left out"
    );

    let chosen = h
        .check_credentials(&session(json!({"account_id": "1506214"})))
        .await
        .unwrap();
    assert_eq!(chosen.account_id, "1506214");
    assert_eq!(chosen.account_name, "Berg Consulting (side account)");

    let stale = h
        .check_credentials(&session(json!({"account_id": 999})))
        .await
        .unwrap();
    assert_eq!(
        stale.account_id, ACCOUNT,
        "an unknown account falls back to the first"
    );

    for request in server.received_requests().await.unwrap() {
        assert!(
            request.headers.get("harvest-account-id").is_none(),
            "Harvest ID takes no account header"
        );
    }
    let keys: Vec<String> = budget
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(keys, ["harvest:id", "harvest:id", "harvest:id"]);
}

#[tokio::test]
async fn a_login_with_only_forecast_accounts_is_forbidden() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v2/accounts"))
        .respond_with(ok(json!({
            "user": {"id": 1},
            "accounts": [{"id": 7, "name": "Plans", "product": "forecast"}]
        })))
        .mount(&server)
        .await;
    let e = harvest(&server)
        .check_credentials(&session(json!({})))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::Forbidden);
    assert_eq!(e.message, "this Harvest login has no Harvest account");
}

#[tokio::test]
async fn people_come_from_users_across_pages_with_emails_as_given() {
    let server = MockServer::start().await;
    let next = format!("{}/users?cursor=u2&per_page=2000", server.uri());
    Mock::given(method("GET"))
        .and(path("/users"))
        .and(query_param("per_page", "2000"))
        .and(query_param_is_missing("cursor"))
        .and(header("Harvest-Account-Id", ACCOUNT))
        .respond_with(ok(with_next(USERS, Some(next.clone()))))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/users"))
        .and(query_param("cursor", "u2"))
        .and(header("Harvest-Account-Id", ACCOUNT))
        .respond_with(ok(json!({
            "users": [{"id": 1, "first_name": "Ada", "last_name": "Lund", "email": "ada@x.example"}],
            "links": {"next": null}
        })))
        .expect(1)
        .mount(&server)
        .await;

    let h = harvest(&server);
    let s = session(json!({"account_id": ACCOUNT}));
    let first = h.list_people(&s, None).await.unwrap();
    assert_eq!(first.next.as_deref(), Some(next.as_str()));
    let jonas = first.items.iter().find(|p| p.id == "4109871").unwrap();
    assert_eq!(jonas.name, "Jonas Berg");
    assert_eq!(
        jonas.email.as_deref(),
        Some("Jonas.Berg@Northwind-Logistics.example")
    );
    assert_eq!(first.items.len(), 3, "inactive users are people too");

    let second = h.list_people(&s, first.next).await.unwrap();
    assert_eq!(second.next, None);
    assert_eq!(second.items[0].name, "Ada Lund");
}

#[tokio::test]
async fn projects_include_archived_ones_and_filter_by_name_or_client() {
    let server = MockServer::start().await;
    let next = format!("{}/projects?cursor=p2&per_page=2000", server.uri());
    Mock::given(method("GET"))
        .and(path("/projects"))
        .and(query_param("per_page", "2000"))
        .and(query_param_is_missing("is_active"))
        .and(query_param_is_missing("cursor"))
        .and(header("Harvest-Account-Id", ACCOUNT))
        .respond_with(ok(json!({
            "projects": [
                {"id": 40117823, "name": "Fleet Portal Rebuild", "is_active": true,
                 "client": {"id": 9811402, "name": "Northwind Logistics", "currency": "EUR"}},
                {"id": 40117824, "name": "Old Intranet", "is_active": false,
                 "client": {"id": 9811403, "name": "Contoso"}}
            ],
            "links": {"next": next}
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/projects"))
        .and(query_param("cursor", "p2"))
        .respond_with(ok(json!({
            "projects": [{"id": 40117830, "name": "Northwind Support", "is_active": true, "client": null}],
            "links": {"next": null}
        })))
        .mount(&server)
        .await;

    let h = harvest(&server);
    let s = session(json!({"account_id": ACCOUNT}));

    let all = h.list_projects(&s, None, None).await.unwrap();
    assert_eq!(all.items.len(), 2);
    assert_eq!(
        all.items[0].customer_name.as_deref(),
        Some("Northwind Logistics")
    );
    assert!(!all.items[0].archived);
    assert!(all.items[1].archived, "archived projects still own history");
    assert_eq!(all.next.as_deref(), Some(next.as_str()));

    let by_client = h.list_projects(&s, Some("NORTHWIND"), None).await.unwrap();
    let ids: Vec<&str> = by_client.items.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["40117823"]);
    assert_eq!(by_client.next.as_deref(), Some(next.as_str()));
    let page2 = h
        .list_projects(&s, Some("NORTHWIND"), by_client.next)
        .await
        .unwrap();
    let ids: Vec<&str> = page2.items.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["40117830"], "matched by name, no client");

    let by_name = h.list_projects(&s, Some("intranet"), None).await.unwrap();
    assert_eq!(by_name.items.len(), 1);
    assert_eq!(by_name.items[0].id, "40117824");
}
