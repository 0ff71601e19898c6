//! Harvest data API: required headers, token expiry, paging, validation, rate limits, injected
//! faults and the demo data's shape.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chrono::{Days, NaiveDate, Utc};
use common::*;
use hourbridge_sandbox::{NewHarvestEntry, Sandbox, Seed};
use reqwest::StatusCode;
use serde_json::Value;

/// Field names of a time entry in the reference fixture (`harvest-time-entries.json`).
const ENTRY_FIELDS: [&str; 28] = [
    "id",
    "spent_date",
    "user",
    "client",
    "project",
    "task",
    "user_assignment",
    "task_assignment",
    "external_reference",
    "invoice",
    "hours",
    "hours_without_timer",
    "rounded_hours",
    "notes",
    "is_locked",
    "locked_reason",
    "is_closed",
    "is_billed",
    "timer_started_at",
    "started_time",
    "ended_time",
    "is_running",
    "billable",
    "budgeted",
    "billable_rate",
    "cost_rate",
    "created_at",
    "updated_at",
];
const PAGE_FIELDS: [&str; 7] = [
    "per_page",
    "total_pages",
    "total_entries",
    "next_page",
    "previous_page",
    "page",
    "links",
];

/// Follows `links.next` from `first_url` and answers every page.
async fn all_pages(token: &str, first_url: &str) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut next = Some(first_url.to_owned());
    while let Some(url) = next {
        let (status, body) = json(harvest_get_url(token, &url).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{url}: {body}");
        next = body["links"]["next"].as_str().map(str::to_owned);
        pages.push(body);
        assert!(pages.len() < 10_000, "paging does not end");
    }
    pages
}

#[tokio::test]
async fn requests_without_user_agent_are_rejected() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let tokens = harvest_tokens(&sb).await;
    let resp = client_without_user_agent()
        .get(format!("{}/users/me", sb.harvest_api_url()))
        .bearer_auth(&tokens.access)
        .header("Harvest-Account-Id", "1000001")
        .send()
        .await
        .unwrap();
    let (status, body) = json(resp).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["message"].as_str().unwrap().contains("User-Agent"));
    sb.stop().await;
}

#[tokio::test]
async fn expired_tokens_answer_401_until_refreshed() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let h = sb.harvest();

    // Tokens issued with a zero lifetime are dead on arrival.
    h.set_access_token_ttl(Duration::ZERO);
    let dead = harvest_tokens(&sb).await;
    assert_eq!(dead.expires_in, 0);
    let (status, body) = json(
        harvest_get(&sb, &dead.access, "/users/me")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_token");
    assert!(body["error_description"].is_string());

    h.set_access_token_ttl(Duration::from_secs(3600));
    let tokens = harvest_tokens(&sb).await;
    assert_eq!(
        harvest_get(&sb, &tokens.access, "/users/me")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    h.expire_all_access_tokens();
    assert_eq!(
        harvest_get(&sb, &tokens.access, "/users/me")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    // The refresh token survives expiry.
    let (status, body) = json(harvest_refresh(&sb, &tokens.refresh).await).await;
    assert_eq!(status, StatusCode::OK);
    let fresh = tokens_of(&body);
    assert_eq!(
        harvest_get(&sb, &fresh.access, "/users/me")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    let no_token = client()
        .get(format!("{}/users/me", sb.harvest_api_url()))
        .header("Harvest-Account-Id", "1000001")
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), StatusCode::UNAUTHORIZED);
    sb.stop().await;
}

#[tokio::test]
async fn account_header_must_name_a_harvest_account_of_the_token() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let tokens = harvest_tokens(&sb).await;
    let url = format!("{}/time_entries", sb.harvest_api_url());
    let missing = client()
        .get(&url)
        .bearer_auth(&tokens.access)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    for account in ["999", "1000002" /* the Forecast account */, "abc"] {
        let resp = client()
            .get(&url)
            .bearer_auth(&tokens.access)
            .header("Harvest-Account-Id", account)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{account}");
    }
    sb.stop().await;
}

#[tokio::test]
async fn time_entries_paging_follows_links_next_and_returns_every_entry_once() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let tokens = harvest_tokens(&sb).await;
    let first = format!("{}/time_entries?per_page=2", sb.harvest_api_url());
    let pages = all_pages(&tokens.access, &first).await;

    assert_eq!(pages.len(), 30);
    let entries: Vec<&Value> = pages
        .iter()
        .flat_map(|p| p["time_entries"].as_array().unwrap())
        .collect();
    let ids: Vec<u64> = entries.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), 60);
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        60,
        "no entry twice"
    );
    assert!(
        ids.iter().all(|id| *id > u64::from(u32::MAX)),
        "ids exceed 32 bits"
    );

    // Newest spent_date first, then id descending.
    let keys: Vec<(String, u64)> = entries
        .iter()
        .map(|e| {
            (
                e["spent_date"].as_str().unwrap().to_owned(),
                e["id"].as_u64().unwrap(),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(keys, sorted);

    let p1 = &pages[0];
    for f in PAGE_FIELDS {
        assert!(p1.get(f).is_some(), "page field {f}");
    }
    assert_eq!(
        (
            p1["page"].as_u64(),
            p1["next_page"].as_u64(),
            p1["total_pages"].as_u64()
        ),
        (Some(1), Some(2), Some(30))
    );
    assert_eq!(p1["total_entries"], 60);
    assert!(p1["previous_page"].is_null() && p1["links"]["previous"].is_null());
    let next = p1["links"]["next"].as_str().unwrap();
    assert!(
        next.starts_with(&format!("{}/time_entries?", sb.harvest_api_url())),
        "absolute: {next}"
    );
    assert!(next.contains("page=2") && next.contains("per_page=2"));
    let last = pages.last().unwrap();
    assert!(last["links"]["next"].is_null() && last["next_page"].is_null());
    assert_eq!(last["page"], 30);

    // Links keep the request's filters.
    let fleet = sb.harvest().find_project("Fleet Portal").unwrap();
    let filtered = all_pages(&tokens.access, &format!("{first}&project_id={fleet}")).await;
    assert!(
        filtered[0]["links"]["next"]
            .as_str()
            .unwrap()
            .contains(&format!("project_id={fleet}"))
    );
    let n: usize = filtered
        .iter()
        .map(|p| p["time_entries"].as_array().unwrap().len())
        .sum();
    assert_eq!(n as u64, filtered[0]["total_entries"].as_u64().unwrap());
    assert!(
        filtered
            .iter()
            .flat_map(|p| p["time_entries"].as_array().unwrap())
            .all(|e| e["project"]["id"] == fleet)
    );
    sb.stop().await;
}

#[tokio::test]
async fn time_entry_json_matches_the_documented_shape() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let tokens = harvest_tokens(&sb).await;
    let (_, body) = json(
        harvest_get(&sb, &tokens.access, "/time_entries")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let entries = body["time_entries"].as_array().unwrap();
    assert_eq!(entries.len(), 60, "default per_page is 2000");
    let wanted: HashSet<&str> = ENTRY_FIELDS.into_iter().collect();
    for e in entries {
        let got: HashSet<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(got, wanted);
        for nested in ["user", "client", "project", "task"] {
            assert!(
                e[nested]["id"].is_u64() && e[nested]["name"].is_string(),
                "{nested}"
            );
        }
        assert!(e["spent_date"].as_str().unwrap().len() == 10);
        assert!(e["created_at"].as_str().unwrap().ends_with('Z'));
    }
    let running: Vec<&Value> = entries.iter().filter(|e| e["is_running"] == true).collect();
    assert_eq!(running.len(), 1);
    assert!(running[0]["timer_started_at"].is_string());
    assert_eq!(
        running[0]["spent_date"],
        Utc::now().date_naive().to_string()
    );
    assert_eq!(running[0]["project"]["name"], "Mobile App");
    assert_eq!(running[0]["user"]["name"], "Eve Engineer");
    assert_eq!(entries.iter().filter(|e| e["is_locked"] == true).count(), 1);
    assert!(entries.iter().any(|e| e["notes"].is_null()));
    let users: HashSet<&str> = entries
        .iter()
        .map(|e| e["user"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        users,
        HashSet::from(["Ada Admin", "Bob Builder", "Dee Designer", "Eve Engineer"])
    );
    let oldest = NaiveDate::parse_from_str(
        entries.last().unwrap()["spent_date"].as_str().unwrap(),
        "%Y-%m-%d",
    )
    .unwrap();
    assert!(oldest >= Utc::now().date_naive() - Days::new(45));

    let (status, only_running) = json(
        harvest_get(&sb, &tokens.access, "/time_entries?is_running=true")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(only_running["total_entries"], 1);
    sb.stop().await;
}

#[tokio::test]
async fn invalid_paging_and_filters_are_rejected() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let tokens = harvest_tokens(&sb).await;
    for (query, want) in [
        ("per_page=2001", StatusCode::UNPROCESSABLE_ENTITY),
        ("per_page=0", StatusCode::UNPROCESSABLE_ENTITY),
        ("page=0", StatusCode::UNPROCESSABLE_ENTITY),
        ("per_page=lots", StatusCode::BAD_REQUEST),
        ("from=yesterday", StatusCode::BAD_REQUEST),
        ("project_id=fleet", StatusCode::BAD_REQUEST),
        ("is_running=maybe", StatusCode::BAD_REQUEST),
        ("updated_since=last-week", StatusCode::BAD_REQUEST),
        ("per_page=2000", StatusCode::OK),
    ] {
        let (status, body) = json(
            harvest_get(&sb, &tokens.access, &format!("/time_entries?{query}"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, want, "{query}: {body}");
        if status != StatusCode::OK {
            assert!(body["message"].is_string(), "{query}: {body}");
        }
    }
    let (status, _) = json(
        harvest_get(&sb, &tokens.access, "/users?per_page=2001")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = json(
        harvest_get(&sb, &tokens.access, "/users?cursor=%%%")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    sb.stop().await;
}

#[tokio::test]
async fn from_and_to_are_inclusive_and_updated_since_sees_every_mutation() {
    let sb = Sandbox::start(Seed::Empty).await.unwrap();
    let h = sb.harvest();
    h.register_client(
        hourbridge_sandbox::HARVEST_DEMO_CLIENT_ID,
        hourbridge_sandbox::HARVEST_DEMO_CLIENT_SECRET,
    );
    let tokens = harvest_tokens(&sb).await;
    let ada = h.add_user("Ada", "Admin", "ada@acme.test");
    let p1 = h.add_project("One", "Client A", true);
    let p2 = h.add_project("Two", "Client B", true);
    let day = |d: u32| NaiveDate::from_ymd_opt(2025, 3, d).unwrap();
    let mk = |d: u32| NewHarvestEntry {
        project_id: p1,
        user_id: ada,
        spent_date: day(d),
        hours: 1.5,
        notes: None,
        is_running: false,
    };
    let ids: Vec<u64> = [1, 2, 3, 4, 5]
        .into_iter()
        .map(|d| h.add_time_entry(mk(d)))
        .collect();

    let list = |q: String| {
        let req = harvest_get(&sb, &tokens.access, &format!("/time_entries?{q}"));
        async move {
            let (status, body) = json(req.send().await.unwrap()).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["time_entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_u64().unwrap())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list("from=2025-03-02&to=2025-03-04".into()).await,
        [ids[3], ids[2], ids[1]]
    );

    let before = Utc::now().to_rfc3339();
    assert_eq!(
        list(format!("updated_since={}", urlencode(&before))).await,
        Vec::<u64>::new()
    );
    assert!(h.update_time_entry(ids[0], Some(2.0), Some("edited".into()), None, None));
    assert!(h.move_time_entry(ids[1], p2));
    assert!(h.delete_time_entry(ids[2]));
    assert!(h.update_time_entry(ids[3], None, None, Some(day(20)), None));
    let mut changed = list(format!("updated_since={}", urlencode(&before))).await;
    changed.sort_unstable();
    assert_eq!(changed, [ids[0], ids[1], ids[3]]);

    // Moved entries leave the old project's list; deleted ones vanish without trace.
    assert_eq!(
        list(format!("project_id={p1}")).await,
        [ids[3], ids[4], ids[0]]
    );
    assert_eq!(list(format!("project_id={p2}")).await, [ids[1]]);
    let (_, e) = json(
        harvest_get(&sb, &tokens.access, &format!("/time_entries/{}", ids[0]))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (e["hours"].as_f64(), e["notes"].as_str()),
        (Some(2.0), Some("edited"))
    );
    let gone = harvest_get(&sb, &tokens.access, &format!("/time_entries/{}", ids[2]))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);

    // Starting a timer sets timer_started_at; stopping clears it.
    assert!(h.update_time_entry(ids[4], None, None, None, Some(true)));
    assert_eq!(h.running_time_entries(), [ids[4]]);
    let (_, e) = json(
        harvest_get(&sb, &tokens.access, &format!("/time_entries/{}", ids[4]))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(e["is_running"] == true && e["timer_started_at"].is_string());
    assert!(h.update_time_entry(ids[4], None, None, None, Some(false)));
    assert!(h.running_time_entries().is_empty());
    assert!(!h.delete_time_entry(ids[2]), "already gone");
    sb.stop().await;
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after_per_token() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let a = harvest_tokens(&sb).await;
    let b = harvest_tokens(&sb).await;
    sb.harvest().set_rate_limit(3, Duration::from_secs(60));
    for _ in 0..3 {
        assert_eq!(
            harvest_get(&sb, &a.access, "/company")
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
    }
    let resp = harvest_get(&sb, &a.access, "/company")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Harvest budgets per access token.
    assert_eq!(
        harvest_get(&sb, &b.access, "/company")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    // The window resets.
    sb.harvest().set_rate_limit(1, Duration::from_millis(300));
    assert_eq!(
        harvest_get(&sb, &a.access, "/company")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let resp = harvest_get(&sb, &a.access, "/company")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "1");
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        harvest_get(&sb, &a.access, "/company")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    sb.stop().await;
}

#[tokio::test]
async fn injected_faults_then_success() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let h = sb.harvest();
    let tokens = harvest_tokens(&sb).await;
    let get = || harvest_get(&sb, &tokens.access, "/company").send();
    let before = h.request_count();

    h.fail_next(2, 503);
    assert_eq!(
        get().await.unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        get().await.unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    let (status, body) = json(get().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["wants_timestamp_timers"], false);
    assert_eq!(body["clock"], "24h");
    assert_eq!(h.request_count(), before + 3);

    h.rate_limit_next(1, 7);
    let resp = get().await.unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "7");

    h.malformed_next(1);
    let resp = get().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
    assert!(!text.is_empty());
    assert_eq!(
        get().await.unwrap().json::<Value>().await.unwrap()["clock"],
        "24h"
    );

    h.set_latency(Duration::from_millis(200));
    let started = Instant::now();
    assert_eq!(get().await.unwrap().status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(200));
    sb.stop().await;
}

#[tokio::test]
async fn users_use_cursor_paging_and_keep_emails_verbatim() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let tokens = harvest_tokens(&sb).await;
    let pages = all_pages(
        &tokens.access,
        &format!("{}/users?per_page=2", sb.harvest_api_url()),
    )
    .await;
    assert_eq!(pages.len(), 3);
    assert!(
        pages[0]["links"]["next"]
            .as_str()
            .unwrap()
            .contains("cursor=")
    );
    assert!(
        pages[1]["page"].is_null(),
        "middle cursor pages carry no page number"
    );
    let users: Vec<&Value> = pages
        .iter()
        .flat_map(|p| p["users"].as_array().unwrap())
        .collect();
    let emails: Vec<&str> = users.iter().map(|u| u["email"].as_str().unwrap()).collect();
    assert_eq!(
        emails,
        [
            "eve@acme.test",
            "dee@elsewhere.test",
            "cy@acme.test",
            "Bob.Builder@Acme.test",
            "ada@acme.test"
        ],
        "newest first"
    );
    let cy = users.iter().find(|u| u["first_name"] == "Cy").unwrap();
    assert_eq!(cy["is_active"], false);
    for key in [
        "id",
        "first_name",
        "last_name",
        "email",
        "timezone",
        "is_active",
        "access_roles",
        "weekly_capacity",
        "created_at",
        "updated_at",
    ] {
        assert!(cy.get(key).is_some(), "{key}");
    }

    let (_, active) = json(
        harvest_get(&sb, &tokens.access, "/users?is_active=false")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(active["users"].as_array().unwrap().len(), 1);

    let (_, me) = json(
        harvest_get(&sb, &tokens.access, "/users/me")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(me["email"], "ada@acme.test");
    assert_eq!(me["access_roles"][0], "administrator");
    sb.stop().await;
}

#[tokio::test]
async fn projects_include_archived_unless_filtered() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let tokens = harvest_tokens(&sb).await;
    let names = |body: &Value| {
        let mut n: Vec<String> = body["projects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect();
        n.sort();
        n
    };
    let (_, all) = json(
        harvest_get(&sb, &tokens.access, "/projects")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(names(&all), ["Fleet Portal", "Mobile App", "Old Intranet"]);
    let (_, active) = json(
        harvest_get(&sb, &tokens.access, "/projects?is_active=true")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(names(&active), ["Fleet Portal", "Mobile App"]);
    let intranet = all["projects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "Old Intranet")
        .unwrap();
    assert_eq!(intranet["is_active"], false);
    assert!(intranet["starts_on"].is_string() && intranet["ends_on"].is_string());
    let client = &intranet["client"];
    assert!(client["id"].is_u64() && client["name"].is_string() && client["currency"].is_string());
    sb.stop().await;
}

#[tokio::test]
async fn other_harvest_accounts_of_the_token_are_empty() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    sb.harvest().set_accounts(vec![
        (1_000_001, "Acme Harvest".into(), "harvest"),
        (77, "Side".into(), "harvest"),
    ]);
    let tokens = harvest_tokens(&sb).await;
    let (status, body) = json(
        client()
            .get(format!("{}/time_entries", sb.harvest_api_url()))
            .bearer_auth(&tokens.access)
            .header("Harvest-Account-Id", "77")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["total_entries"], 0);
    assert!(body["links"]["next"].is_null());
    sb.stop().await;
}
