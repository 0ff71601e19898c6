//! Basecamp 4: Launchpad OAuth and accounts, the per-account API (projects, people, to-do
//! sets, lists, groups, to-dos, timesheets, webhooks) and the documented rejections.

mod common;

use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use common::{REDIRECT_URI, USER_AGENT, authorize, client, client_without_user_agent, pair};
use hourbridge_sandbox::{
    BASECAMP_DEMO_ACCOUNT_ID, BASECAMP_DEMO_CLIENT_ID, BASECAMP_DEMO_CLIENT_SECRET,
    BASECAMP_DEMO_SECOND_ACCOUNT_ID, BasecampStatus, Sandbox, Seed,
};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

const A: u64 = BASECAMP_DEMO_ACCOUNT_ID;

async fn code(sb: &Sandbox) -> String {
    let pairs = authorize(
        &client(),
        &sb.basecamp_authorize_url(),
        &[
            ("type", "web_server"),
            ("client_id", BASECAMP_DEMO_CLIENT_ID),
            ("redirect_uri", REDIRECT_URI),
            ("state", "st"),
        ],
    )
    .await;
    assert_eq!(pair(&pairs, "state"), Some("st"));
    pair(&pairs, "code").unwrap().to_owned()
}

/// The legacy `type=web_server` exchange with parameters in the query, as Basecamp documents.
async fn token(sb: &Sandbox) -> Value {
    let code = code(sb).await;
    let resp = client()
        .post(sb.basecamp_token_url())
        .query(&[
            ("type", "web_server"),
            ("client_id", BASECAMP_DEMO_CLIENT_ID),
            ("client_secret", BASECAMP_DEMO_CLIENT_SECRET),
            ("redirect_uri", REDIRECT_URI),
            ("code", &code),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

async fn access(sb: &Sandbox) -> String {
    token(sb).await["access_token"].as_str().unwrap().to_owned()
}

fn url(sb: &Sandbox, path: &str) -> String {
    format!("{}/{A}{path}", sb.basecamp_api_url())
}

async fn get(t: &str, url: &str) -> (StatusCode, HeaderMap, Value) {
    let resp = client().get(url).bearer_auth(t).send().await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let text = resp.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

async fn send(t: &str, method: reqwest::Method, url: &str, body: Value) -> (StatusCode, Value) {
    let resp = client()
        .request(method, url)
        .bearer_auth(t)
        .header("content-type", "application/json; charset=utf-8")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn names(v: &Value, key: &str) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x[key].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn launchpad_code_flow_refresh_and_client_auth() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let first = token(&sb).await;
    assert_eq!(first["expires_in"], 1_209_600);
    let refresh = first["refresh_token"].as_str().unwrap();

    // Legacy refresh; the refresh token does not rotate.
    let resp = client()
        .post(sb.basecamp_token_url())
        .form(&[
            ("type", "refresh"),
            ("refresh_token", refresh),
            ("client_id", BASECAMP_DEMO_CLIENT_ID),
            ("client_secret", BASECAMP_DEMO_CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["refresh_token"], refresh);
    assert_ne!(v["access_token"], first["access_token"]);

    // The standard grant_type form works too.
    let resp = client()
        .post(sb.basecamp_token_url())
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", BASECAMP_DEMO_CLIENT_ID),
            ("client_secret", BASECAMP_DEMO_CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    // Client credentials belong in the parameters; HTTP Basic is refused.
    let resp = client()
        .post(sb.basecamp_token_url())
        .basic_auth(BASECAMP_DEMO_CLIENT_ID, Some(BASECAMP_DEMO_CLIENT_SECRET))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // A wrong secret is refused.
    let resp = client()
        .post(sb.basecamp_token_url())
        .form(&[
            ("type", "refresh"),
            ("refresh_token", refresh),
            ("client_id", BASECAMP_DEMO_CLIENT_ID),
            ("client_secret", "nope"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // Neither type nor response_type: no code.
    let resp = client()
        .get(sb.basecamp_authorize_url())
        .query(&[
            ("client_id", BASECAMP_DEMO_CLIENT_ID),
            ("redirect_uri", REDIRECT_URI),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(sb.basecamp().token_request_count(), 5);
}

#[tokio::test]
async fn authorization_json_lists_every_product() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let t = access(&sb).await;
    let auth = format!("{}/authorization.json", sb.basecamp_launchpad_url());
    let (status, _, v) = get(&t, &auth).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["identity"]["email_address"], "ingrid@nordlys.example");
    assert!(v["expires_at"].as_str().unwrap().ends_with('Z'));
    let products: Vec<(u64, String)> = v["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["id"].as_u64().unwrap(),
                a["product"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(products.contains(&(A, "bc3".into())));
    assert!(products.contains(&(BASECAMP_DEMO_SECOND_ACCOUNT_ID, "bc3".into())));
    assert!(products.iter().any(|(_, p)| p == "bcx"));
    assert!(products.iter().any(|(_, p)| p == "hey"));
    let bc3 = v["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == A)
        .unwrap();
    assert_eq!(bc3["href"], format!("{}/{A}", sb.basecamp_api_url()));
    assert_eq!(
        sb.basecamp().bc3_account_ids(),
        [A, BASECAMP_DEMO_SECOND_ACCOUNT_ID]
    );

    let (status, _, _) = get("bad-token", &auth).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn rejects_what_basecamp_rejects() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let t = access(&sb).await;

    // No User-Agent: 400.
    let resp = client_without_user_agent()
        .get(url(&sb, "/projects.json"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    // No or bad token: 401.
    let resp = client()
        .get(url(&sb, "/projects.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        get("nope", &url(&sb, "/projects.json")).await.0,
        StatusCode::UNAUTHORIZED
    );
    // Expired token: 401.
    sb.basecamp().expire_all_access_tokens();
    assert_eq!(
        get(&t, &url(&sb, "/projects.json")).await.0,
        StatusCode::UNAUTHORIZED
    );
    let t = access(&sb).await;
    // Unknown account, a Basecamp 2 account, an unknown path, no .json: 404.
    for u in [
        format!("{}/999/projects.json", sb.basecamp_api_url()),
        format!("{}/2011001/projects.json", sb.basecamp_api_url()),
        url(&sb, "/nothing.json"),
        url(&sb, "/projects"),
    ] {
        assert_eq!(get(&t, &u).await.0, StatusCode::NOT_FOUND, "{u}");
    }
    // A write without Content-Type: application/json: 415.
    let todo = sb.basecamp().find_todo("Review copy").unwrap();
    let resp = client()
        .post(url(
            &sb,
            &format!("/recordings/{todo}/timesheet/entries.json"),
        ))
        .bearer_auth(&t)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("date=2026-05-01&hours=1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let resp = client()
        .post(url(
            &sb,
            &format!("/recordings/{todo}/timesheet/entries.json"),
        ))
        .bearer_auth(&t)
        .body(r#"{"date":"2026-05-01","hours":"1"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        sb.basecamp().timesheet_entry_count(),
        1,
        "only the seeded entry"
    );

    // Inactive account: 404 with Reason.
    sb.basecamp().set_account_active(A, false);
    let (status, headers, _) = get(&t, &url(&sb, "/projects.json")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(headers["reason"], "Account Inactive");
    sb.basecamp().set_account_active(A, true);
    let (status, headers, _) = get(&t, &url(&sb, "/projects.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get("reason").is_none());
}

#[tokio::test]
async fn projects_by_status_and_project_people_with_a_client() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let t = access(&sb).await;
    let (status, headers, v) = get(&t, &url(&sb, "/projects.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-total-count"], "2");
    assert_eq!(
        names(&v, "name"),
        ["Internal tools", "Nordlys website relaunch"],
        "newest first, active only"
    );
    let tools = &v[0];
    assert_eq!(tools["timesheet_enabled"], false);
    assert_eq!(v[1]["timesheet_enabled"], true);
    let dock = v[1]["dock"].as_array().unwrap();
    let todoset = dock.iter().find(|d| d["name"] == "todoset").unwrap();
    assert_eq!(todoset["enabled"], true);
    assert!(dock.iter().all(|d| d["name"] != "timesheet"));

    let (_, _, archived) = get(&t, &url(&sb, "/projects.json?status=archived")).await;
    assert_eq!(names(&archived, "name"), ["Autumn campaign 2025"]);
    assert_eq!(archived[0]["status"], "archived");
    let (_, _, trashed) = get(&t, &url(&sb, "/projects.json?status=trashed")).await;
    assert_eq!(names(&trashed, "name"), ["Scratch project"]);
    assert_eq!(
        get(&t, &url(&sb, "/projects.json?status=bogus")).await.0,
        StatusCode::BAD_REQUEST
    );

    let web = v[1]["id"].as_u64().unwrap();
    let (_, _, people) = get(&t, &url(&sb, &format!("/projects/{web}/people.json"))).await;
    assert_eq!(
        names(&people, "name"),
        ["Ingrid Solberg", "Jonas Berg", "Mia Kunde"]
    );
    assert_eq!(people[2]["client"], true);
    assert_eq!(people[2]["personable_type"], "Client");
    let (_, _, everyone) = get(&t, &url(&sb, "/people.json")).await;
    assert_eq!(everyone.as_array().unwrap().len(), 4);
    assert_eq!(everyone[2]["email_address"], " Per.Hansen@Nordlys.example ");
    let (_, _, me) = get(&t, &url(&sb, "/my/profile.json")).await;
    assert_eq!(me["name"], "Ingrid Solberg");

    // The second bc3 account has its own data; ids of one account are 404 in the other.
    let other = format!(
        "{}/{BASECAMP_DEMO_SECOND_ACCOUNT_ID}",
        sb.basecamp_api_url()
    );
    let (_, _, labs) = get(&t, &format!("{other}/projects.json")).await;
    assert_eq!(names(&labs, "name"), ["Lab experiments"]);
    assert_eq!(
        get(&t, &format!("{other}/projects/{web}.json")).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, _, account) = get(&t, &url(&sb, "/account.json")).await;
    assert_eq!(account["subscription"]["timesheet"], true);
}

#[tokio::test]
async fn todo_sets_lists_groups_and_todos() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let t = access(&sb).await;
    let bc = sb.basecamp();
    let web = bc.find_project("Nordlys website relaunch").unwrap();
    let (_, _, project) = get(&t, &url(&sb, &format!("/projects/{web}.json"))).await;
    let todoset_url = project["dock"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "todoset")
        .unwrap()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, _, todoset) = get(&t, &todoset_url).await;
    assert_eq!(todoset["type"], "Todoset");
    let (_, _, lists) = get(&t, todoset["todolists_url"].as_str().unwrap()).await;
    assert_eq!(
        names(&lists, "name"),
        ["Launch checklist", "Content"],
        "groups are not lists"
    );

    let launch = &lists[0];
    let (_, _, open) = get(&t, launch["todos_url"].as_str().unwrap()).await;
    assert_eq!(
        names(&open, "title"),
        [
            "Draft onboarding email sequence",
            "Collect brand assets from client"
        ],
        "default: active and not completed"
    );
    assert_eq!(open[0]["assignees"][0]["name"], "Jonas Berg");
    assert_eq!(open[0]["parent"]["type"], "Todolist");
    assert_eq!(open[0]["bucket"]["id"], web);
    let done_url = format!("{}?completed=true", launch["todos_url"].as_str().unwrap());
    let (_, _, done) = get(&t, &done_url).await;
    assert_eq!(names(&done, "title"), ["Set up staging"]);
    assert_eq!(done[0]["completed"], true);
    let trashed_url = format!("{}?status=trashed", launch["todos_url"].as_str().unwrap());
    let (_, _, trashed) = get(&t, &trashed_url).await;
    assert_eq!(names(&trashed, "title"), ["Old idea"]);

    let content = &lists[1];
    let (_, _, groups) = get(&t, content["groups_url"].as_str().unwrap()).await;
    assert_eq!(names(&groups, "name"), ["Blog posts"]);
    assert_eq!(groups[0]["type"], "Todolist");
    let (_, _, posts) = get(&t, groups[0]["todos_url"].as_str().unwrap()).await;
    assert_eq!(names(&posts, "title"), ["Write launch post"]);
    let (_, _, direct) = get(&t, content["todos_url"].as_str().unwrap()).await;
    assert_eq!(
        names(&direct, "title"),
        ["Review copy"],
        "a group's to-dos are its own"
    );

    // Flat and bucket forms of one to-do; a wrong bucket is 404.
    let id = open[0]["id"].as_u64().unwrap();
    let (status, _, flat) = get(&t, &url(&sb, &format!("/todos/{id}.json"))).await;
    assert_eq!(status, StatusCode::OK);
    let (_, _, bucketed) = get(&t, open[0]["url"].as_str().unwrap()).await;
    assert_eq!(flat, bucketed);
    let tools = bc.find_project("Internal tools").unwrap();
    assert_eq!(
        get(&t, &url(&sb, &format!("/buckets/{tools}/todos/{id}.json")))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    // Trashing through the handle removes it from the default list.
    bc.trash_todo(id);
    let (_, _, open) = get(&t, launch["todos_url"].as_str().unwrap()).await;
    assert_eq!(names(&open, "title"), ["Collect brand assets from client"]);
}

#[tokio::test]
async fn geared_pages_follow_link_with_total_count() {
    let sb = Sandbox::start(Seed::Empty).await.unwrap();
    let bc = sb.basecamp();
    bc.register_client("c", "s");
    bc.add_person(A, "Owner", "owner@x.test", false);
    let p = bc.add_project(A, "Big");
    let l = bc.add_todolist(p, "Many");
    for i in 0..100 {
        bc.add_todo(l, &format!("todo {i:03}"));
    }
    let pairs = authorize(
        &client(),
        &sb.basecamp_authorize_url(),
        &[
            ("response_type", "code"),
            ("client_id", "c"),
            ("redirect_uri", REDIRECT_URI),
        ],
    )
    .await;
    let resp = client()
        .post(sb.basecamp_token_url())
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", "c"),
            ("client_secret", "s"),
            ("redirect_uri", REDIRECT_URI),
            ("code", pair(&pairs, "code").unwrap()),
        ])
        .send()
        .await
        .unwrap();
    let t = resp.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut next = Some(url(&sb, &format!("/todolists/{l}/todos.json")));
    let mut sizes = Vec::new();
    let mut titles = Vec::new();
    while let Some(u) = next.take() {
        let (status, headers, v) = get(&t, &u).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["x-total-count"], "100");
        sizes.push(v.as_array().unwrap().len());
        titles.extend(names(&v, "title"));
        next = headers.get("link").map(|h| {
            let h = h.to_str().unwrap();
            assert!(h.ends_with("; rel=\"next\""), "{h}");
            h[1..h.find('>').unwrap()].to_owned()
        });
    }
    assert_eq!(sizes, [15, 30, 50, 5]);
    assert_eq!(titles.len(), 100);
    assert_eq!(titles[99], "todo 099");
    assert_eq!(
        get(&t, &url(&sb, "/projects.json?page=0")).await.0,
        StatusCode::BAD_REQUEST
    );
    // Only the empty account exists with the empty seed.
    assert_eq!(bc.bc3_account_ids(), [A]);
}

#[tokio::test]
async fn etags_answer_304_until_something_changes() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let t = access(&sb).await;
    let u = url(&sb, "/projects.json");
    let (_, headers, _) = get(&t, &u).await;
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let cached = |etag: String| {
        let (t, u) = (t.clone(), u.clone());
        async move {
            let resp = client()
                .get(&u)
                .bearer_auth(&t)
                .header("if-none-match", etag)
                .send()
                .await
                .unwrap();
            (resp.status(), resp.bytes().await.unwrap().len())
        }
    };
    assert_eq!(cached(etag.clone()).await, (StatusCode::NOT_MODIFIED, 0));
    let p = sb.basecamp().find_project("Internal tools").unwrap();
    sb.basecamp().set_timesheet_enabled(p, true);
    assert_eq!(cached(etag).await.0, StatusCode::OK);
}

#[tokio::test]
async fn budget_is_fifty_per_ten_seconds_per_account() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let t = access(&sb).await;
    for _ in 0..50 {
        assert_eq!(get(&t, &url(&sb, "/people.json")).await.0, StatusCode::OK);
    }
    let resp = client()
        .get(url(&sb, "/people.json"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let secs: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&secs), "{secs}");
    let other = format!(
        "{}/{BASECAMP_DEMO_SECOND_ACCOUNT_ID}/people.json",
        sb.basecamp_api_url()
    );
    assert_eq!(
        get(&t, &other).await.0,
        StatusCode::OK,
        "budgets are per account"
    );
    assert_eq!(sb.basecamp().request_count(), 52);

    // Queued faults come before the budget.
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let t = access(&sb).await;
    sb.basecamp().fail_next(1, 503);
    sb.basecamp().rate_limit_next(1, 7);
    assert_eq!(
        get(&t, &url(&sb, "/people.json")).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let resp = client()
        .get(url(&sb, "/people.json"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "7");
    assert_eq!(get(&t, &url(&sb, "/people.json")).await.0, StatusCode::OK);
}

#[tokio::test]
async fn timesheet_entries_create_update_delete_and_list() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let t = access(&sb).await;
    let bc = sb.basecamp();
    let web = bc.find_project("Nordlys website relaunch").unwrap();
    let todo = bc.find_todo("Draft onboarding email sequence").unwrap();
    let jonas = bc.find_person(A, "JONAS.berg@nordlys.example").unwrap();
    let ingrid = bc.find_person(A, "ingrid@nordlys.example").unwrap();
    let create = url(&sb, &format!("/recordings/{todo}/timesheet/entries.json"));

    let (status, e) = send(
        &t,
        reqwest::Method::POST,
        &create,
        json!({"date": "2026-05-20", "hours": "0:20", "description": "Emails"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{e}");
    assert_eq!(e["type"], "Timesheet::Entry");
    assert_eq!(e["hours"], "0.33");
    assert_eq!(e["parent"]["id"], todo);
    assert_eq!(e["parent"]["type"], "Todo");
    assert_eq!(e["bucket"]["id"], web);
    assert_eq!(
        e["person"]["id"], ingrid,
        "defaults to the authenticated user"
    );
    let id = e["id"].as_u64().unwrap();
    assert_eq!(bc.timesheet_entry(id).unwrap().seconds, 1200);

    let (status, e2) = send(
        &t,
        reqwest::Method::POST,
        &create,
        json!({"date": "2026-05-20", "hours": "2.75", "person_id": jonas}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{e2}");
    assert_eq!(e2["person"]["id"], jonas);
    assert_eq!(e2["hours"], "2.75");

    // Rejections: client user, non-member, bad or missing fields, numbers for hours.
    let mia = bc.find_person(A, "mia@customer.example").unwrap();
    let per = bc.find_person(A, "per.hansen@nordlys.example").unwrap();
    for body in [
        json!({"date": "2026-05-20", "hours": "1", "person_id": mia}),
        json!({"date": "2026-05-20", "hours": "1", "person_id": per}),
        json!({"date": "2026-05-20", "hours": "1:75"}),
        json!({"date": "2026-05-20", "hours": "0"}),
        json!({"date": "2026-05-20", "hours": 1.5}),
        json!({"date": "20.05.2026", "hours": "1"}),
        json!({"hours": "1"}),
        json!({"date": "2026-05-20"}),
    ] {
        let (status, v) = send(&t, reqwest::Method::POST, &create, body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {v}");
        assert!(v["error"].is_string());
    }
    let (status, _) = send(&t, reqwest::Method::POST, &create, json!("x")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Update only what is sent.
    let entry_url = url(&sb, &format!("/timesheet_entries/{id}.json"));
    let (status, v) = send(
        &t,
        reqwest::Method::PUT,
        &entry_url,
        json!({"hours": "1:30"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["hours"], "1.5");
    assert_eq!(v["description"], "Emails");
    let (_, _, shown) = get(&t, &entry_url).await;
    assert_eq!(shown["hours"], "1.5");

    // Listings: by recording and by project (the project one includes project-level time,
    // whose parent is the project's timesheet recording).
    let (_, headers, on_todo) =
        get(&t, &url(&sb, &format!("/recordings/{todo}/timesheet.json"))).await;
    assert_eq!(headers["x-total-count"], "2");
    assert_eq!(on_todo.as_array().unwrap().len(), 2);
    let (_, _, all) = get(&t, &url(&sb, &format!("/projects/{web}/timesheet.json"))).await;
    let project_level: Vec<&Value> = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["parent"]["type"] == "Timesheet")
        .collect();
    assert_eq!(project_level.len(), 1);
    let timesheet = project_level[0]["parent"]["id"].as_u64().unwrap();
    assert_eq!(Some(timesheet), bc.timesheet_recording_id(web));
    // Project-level time is created on that recording; the legacy bucket path works too.
    let legacy = url(
        &sb,
        &format!("/projects/{web}/recordings/{timesheet}/timesheet/entries.json"),
    );
    let (status, v) = send(
        &t,
        reqwest::Method::POST,
        &legacy,
        json!({"date": "2026-05-21", "hours": "1"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["parent"]["type"], "Timesheet");
    assert_eq!(v["hours"], "1.0");

    // The account report: both dates or neither.
    let (status, _, _) = get(
        &t,
        &url(&sb, "/reports/timesheet.json?start_date=2026-05-01"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, _, report) = get(
        &t,
        &url(
            &sb,
            "/reports/timesheet.json?start_date=2026-05-20&end_date=2026-05-20",
        ),
    )
    .await;
    assert_eq!(report.as_array().unwrap().len(), 2);

    // Delete, then it is gone.
    let resp = client()
        .delete(&entry_url)
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(get(&t, &entry_url).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        bc.timesheet_write_count(),
        5,
        "3 creates, 1 update, 1 delete"
    );
    assert_eq!(bc.timesheet_entries(web).len(), 3);

    // A write applied but answered 502: the entry exists all the same.
    let before = bc.timesheet_entry_count();
    bc.lose_next_write_answers(1, 502);
    let (status, _) = send(
        &t,
        reqwest::Method::POST,
        &create,
        json!({"date": "2026-05-22", "hours": "1"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(bc.timesheet_entry_count(), before + 1);

    // A trashed to-do takes no time.
    bc.trash_todo(todo);
    let (status, _) = send(
        &t,
        reqwest::Method::POST,
        &create,
        json!({"date": "2026-05-20", "hours": "1"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn timesheets_disabled_answer_403() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let t = access(&sb).await;
    let bc = sb.basecamp();
    let todo = bc.find_todo("Upgrade CI").unwrap();
    let create = url(&sb, &format!("/recordings/{todo}/timesheet/entries.json"));
    let body = json!({"date": "2026-05-20", "hours": "1"});
    let (status, v) = send(&t, reqwest::Method::POST, &create, body.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(v["error"], "Timesheet is not enabled for this project");
    let tools = bc.find_project("Internal tools").unwrap();
    bc.set_timesheet_enabled(tools, true);
    assert_eq!(
        send(&t, reqwest::Method::POST, &create, body.clone())
            .await
            .0,
        StatusCode::CREATED
    );
    // Off for the whole account.
    bc.set_account_timesheet(A, false);
    assert_eq!(
        send(&t, reqwest::Method::POST, &create, body.clone())
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    bc.set_account_timesheet(A, true);
    // Archived projects take no time either.
    bc.set_project_status(tools, BasecampStatus::Archived);
    assert_eq!(
        send(&t, reqwest::Method::POST, &create, body).await.0,
        StatusCode::FORBIDDEN
    );
}

/// A payload URL that records what it receives.
async fn receiver() -> (String, Arc<Mutex<Vec<(Value, String)>>>) {
    let got: Arc<Mutex<Vec<(Value, String)>>> = Arc::default();
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/hooks/{token}",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let sink = sink.clone();
                async move {
                    let agent = headers["user-agent"].to_str().unwrap().to_owned();
                    sink.lock()
                        .unwrap()
                        .push((serde_json::from_slice(&body).unwrap(), agent));
                    axum::http::StatusCode::NO_CONTENT
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hooks/tok123"), got)
}

#[tokio::test]
async fn webhooks_register_deliver_todo_events_and_delete() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let t = access(&sb).await;
    let bc = sb.basecamp();
    let web = bc.find_project("Nordlys website relaunch").unwrap();
    let hooks = url(&sb, &format!("/buckets/{web}/webhooks.json"));
    let (payload_url, got) = receiver().await;

    for bad in [
        json!({"payload_url": "http://example.com/hook"}),
        json!({"payload_url": "not a url"}),
        json!({}),
        json!({"payload_url": "https://example.com/h", "types": ["Project"]}),
    ] {
        let (status, _) = send(&t, reqwest::Method::POST, &hooks, bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let (status, hook) = send(
        &t,
        reqwest::Method::POST,
        &hooks,
        json!({"payload_url": payload_url, "types": ["Todo", "Todolist"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    assert_eq!(hook["types"], json!(["Todo", "Todolist"]));
    assert_eq!(hook["active"], true);
    let (status, https) = send(
        &t,
        reqwest::Method::POST,
        &hooks,
        json!({"payload_url": "https://hooks.example/basecamp/abc"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        https["types"].as_array().unwrap().len(),
        18,
        "default: every type"
    );
    let (_, _, listed) = get(&t, &hooks).await;
    assert_eq!(listed.as_array().unwrap().len(), 2);

    let todo = bc.find_todo("Collect brand assets from client").unwrap();
    assert!(bc.complete_todo(todo, true));
    bc.flush_webhooks().await;
    {
        let got = got.lock().unwrap();
        assert_eq!(got.len(), 1);
        let (payload, agent) = &got[0];
        assert_eq!(agent, "Basecamp3 Webhook");
        assert_eq!(payload["kind"], "todo_completed");
        assert_eq!(payload["recording"]["id"], todo);
        assert_eq!(payload["recording"]["type"], "Todo");
        assert!(
            payload["recording"].get("completed").is_none(),
            "generic shape"
        );
        assert!(payload["recording"].get("assignees").is_none());
    }
    let hook_id = hook["id"].as_u64().unwrap();
    let deliveries = bc.webhook_deliveries(hook_id);
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].status, Some(204));
    let (_, _, shown) = get(&t, &url(&sb, &format!("/webhooks/{hook_id}.json"))).await;
    assert_eq!(shown["recent_deliveries"][0]["response"]["code"], 204);

    // Another project's to-do does not reach this project's webhook.
    let other = bc.find_todo("Upgrade CI").unwrap();
    bc.rename_todo(other, "Upgrade CI runners");
    let new = bc.add_todo(bc.find_todolist("Blog posts").unwrap(), "Second post");
    bc.trash_todo(new);
    bc.flush_webhooks().await;
    let kinds: Vec<String> = got
        .lock()
        .unwrap()
        .iter()
        .map(|(p, _)| p["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["todo_completed", "todo_created", "todo_trashed"]);

    // Delete.
    let resp = client()
        .delete(url(&sb, &format!("/webhooks/{hook_id}.json")))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(bc.webhooks(web).len(), 1);
    bc.complete_todo(todo, false);
    bc.flush_webhooks().await;
    assert_eq!(got.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn handle_adds_data_and_timesheet_entries() {
    let sb = Sandbox::start(Seed::Empty).await.unwrap();
    let bc = sb.basecamp();
    let owner = bc.add_person(A, "Olga Owner", "olga@x.test", false);
    let p = bc.add_project(A, "P");
    let l = bc.add_todolist(p, "L");
    let g = bc.add_group(l, "G");
    let todo = bc.add_todo(g, "T");
    let ts = bc.timesheet_recording_id(p).unwrap();
    let day = NaiveDate::from_ymd_opt(2026, 3, 29).unwrap();
    let e = bc.add_timesheet_entry(ts, owner, day, "1:05", "by hand");
    let view = bc.timesheet_entry(e).unwrap();
    assert_eq!((view.seconds, view.hours.as_str()), (3900, "1.08"));
    assert_eq!(view.recording_id, ts);
    bc.add_timesheet_entry(todo, owner, day, "0.5", "");
    assert_eq!(bc.timesheet_entries(p).len(), 2);
    assert!(sb.describe().contains("Basecamp"));
    assert!(sb.describe().contains(&sb.basecamp_launchpad_url()));
    let _ = USER_AGENT;
}
