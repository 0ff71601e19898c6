//! Harvest data API writes: `POST /v2/time_entries`, `PATCH` and `DELETE
//! /v2/time_entries/{id}` behind the same header and token checks as the reads, with the rules
//! of the reference (required fields, closed entries, archived projects and tasks).

mod common;

use std::collections::HashSet;
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use common::*;
use hourbridge_sandbox::{
    HARVEST_DEMO_ACCOUNT_ID, HARVEST_DEMO_CLIENT_ID, HARVEST_DEMO_CLIENT_SECRET, HarvestControl,
    NewHarvestEntry, Sandbox, Seed,
};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};

fn harvest_req(sb: &Sandbox, token: &str, method: Method, path: &str) -> RequestBuilder {
    harvest_request(method, token, &format!("{}{path}", sb.harvest_api_url()))
}

async fn send_json(
    sb: &Sandbox,
    token: &str,
    method: Method,
    path: &str,
    body: &Value,
) -> (StatusCode, Value) {
    json(
        harvest_req(sb, token, method, path)
            .json(body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn get_entry(sb: &Sandbox, token: &str, id: u64) -> (StatusCode, Value) {
    json(
        harvest_get(sb, token, &format!("/time_entries/{id}"))
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn delete(sb: &Sandbox, token: &str, id: u64) -> reqwest::Response {
    harvest_req(sb, token, Method::DELETE, &format!("/time_entries/{id}"))
        .send()
        .await
        .unwrap()
}

async fn listed_ids(sb: &Sandbox, token: &str, query: &str) -> Vec<u64> {
    let (status, body) = json(
        harvest_get(sb, token, &format!("/time_entries?{query}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["time_entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_u64().unwrap())
        .collect()
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn keys(v: &Value) -> HashSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

/// An empty sandbox with the demo OAuth client, an administrator (the token's user), a second
/// user and one project: `(sandbox, control, token, admin, other user, project)`.
async fn small_account() -> (Sandbox, HarvestControl, String, u64, u64, u64) {
    let sb = Sandbox::start(Seed::Empty).await.unwrap();
    let h = sb.harvest();
    h.register_client(HARVEST_DEMO_CLIENT_ID, HARVEST_DEMO_CLIENT_SECRET);
    let ada = h.add_user("Ada", "Admin", "ada@acme.test");
    let bob = h.add_user("Bob", "Builder", "bob@acme.test");
    let project = h.add_project("Fleet Portal", "Northwind", true);
    let token = harvest_tokens(&sb).await.access;
    (sb, h, token, ada, bob, project)
}

fn entry_of(project_id: u64, user_id: u64) -> NewHarvestEntry {
    NewHarvestEntry {
        project_id,
        user_id,
        spent_date: NaiveDate::from_ymd_opt(2025, 3, 3).unwrap(),
        hours: 1.0,
        notes: None,
        is_running: false,
    }
}

#[tokio::test]
async fn time_entries_can_be_created_edited_and_deleted_through_the_public_api() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let h = sb.harvest();
    let token = harvest_tokens(&sb).await.access;
    let fleet = h.find_project("Fleet Portal").unwrap();
    let mobile = h.find_project("Mobile App").unwrap();
    let dev = h.find_task("Development").unwrap();
    let design = h.find_task("Design").unwrap();
    let before = h.time_entry_count();

    let (status, created) = send_json(
        &sb,
        &token,
        Method::POST,
        "/time_entries",
        &json!({
            "project_id": fleet, "task_id": dev, "spent_date": "2025-03-03", "hours": 1.5,
            "notes": "Written through the API",
            "external_reference": {"id": "wl-42", "permalink": "https://host.test/logs/42"},
        }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_u64().unwrap();
    assert!(id > u64::from(u32::MAX));
    assert_eq!(h.time_entry_count(), before + 1);
    // The same shape and values as GET answers.
    let (_, got) = get_entry(&sb, &token, id).await;
    assert_eq!(got, created);
    let (_, some_seeded) = json(
        harvest_get(&sb, &token, "/time_entries?per_page=1")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(keys(&created), keys(&some_seeded["time_entries"][0]));
    assert_eq!(created["user"]["name"], "Ada Admin", "the token's user");
    assert_eq!(
        (
            created["project"]["id"].as_u64(),
            created["task"]["name"].as_str(),
            created["client"]["name"].as_str(),
        ),
        (
            Some(fleet),
            Some("Development"),
            Some("Northwind Logistics")
        )
    );
    assert_eq!(created["spent_date"], "2025-03-03");
    assert_eq!(created["hours"], 1.5);
    assert_eq!(created["is_running"], false);
    assert_eq!(created["notes"], "Written through the API");
    assert_eq!(created["external_reference"]["id"], "wl-42");
    assert_eq!(created["external_reference"]["service"], "host.test");
    assert_eq!(
        listed_ids(&sb, &token, "external_reference_id=wl-42").await,
        [id]
    );

    // Timestamps have whole seconds: wait so the edit shows a later updated_at.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let since = Utc::now().to_rfc3339();
    let (status, edited) = send_json(
        &sb,
        &token,
        Method::PATCH,
        &format!("/time_entries/{id}"),
        &json!({"hours": 2.25, "notes": "Edited", "project_id": mobile, "task_id": design,
                "spent_date": "2025-03-05"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(edited["hours"], 2.25);
    assert_eq!(edited["notes"], "Edited");
    assert_eq!(edited["project"]["name"], "Mobile App");
    assert_eq!(edited["task"]["name"], "Design");
    assert_eq!(edited["spent_date"], "2025-03-05");
    assert_eq!(edited["created_at"], created["created_at"]);
    assert!(
        edited["updated_at"].as_str().unwrap() > created["updated_at"].as_str().unwrap(),
        "{} then {}",
        created["updated_at"],
        edited["updated_at"]
    );
    assert_eq!(
        edited["external_reference"], created["external_reference"],
        "untouched fields stay"
    );
    assert_eq!(get_entry(&sb, &token, id).await.1, edited);
    // Incremental reads and filters see the edit.
    assert_eq!(
        listed_ids(&sb, &token, &format!("updated_since={}", urlencode(&since))).await,
        [id]
    );
    assert!(
        !listed_ids(&sb, &token, &format!("project_id={fleet}"))
            .await
            .contains(&id)
    );
    assert_eq!(
        listed_ids(
            &sb,
            &token,
            &format!("project_id={mobile}&from=2025-03-05&to=2025-03-05")
        )
        .await,
        [id]
    );

    // A partial update leaves the rest; null clears notes and the external reference.
    let (status, cleared) = send_json(
        &sb,
        &token,
        Method::PATCH,
        &format!("/time_entries/{id}"),
        &json!({"notes": null, "external_reference": null}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(cleared["notes"].is_null() && cleared["external_reference"].is_null());
    assert_eq!(cleared["hours"], 2.25);

    let resp = delete(&sb, &token, id).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(h.time_entry_count(), before);
    assert_eq!(get_entry(&sb, &token, id).await.0, StatusCode::NOT_FOUND);
    assert!(!listed_ids(&sb, &token, "").await.contains(&id));

    // Unknown ids are 404 in Harvest's shape.
    let resp = delete(&sb, &token, id).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let (status, body) = send_json(
        &sb,
        &token,
        Method::PATCH,
        &format!("/time_entries/{id}"),
        &json!({"hours": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["message"].is_string());
    for raw in ["abc", "1"] {
        let (status, _) = send_json(
            &sb,
            &token,
            Method::PATCH,
            &format!("/time_entries/{raw}"),
            &json!({}),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{raw}");
    }
    sb.stop().await;
}

#[tokio::test]
async fn seeded_entries_edited_through_the_api_match_the_control_handle() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let h = sb.harvest();
    let token = harvest_tokens(&sb).await.access;
    let ids = listed_ids(&sb, &token, "is_running=false").await;
    let (a, b) = (ids[0], ids[1]);
    let (status, via_api) = send_json(
        &sb,
        &token,
        Method::PATCH,
        &format!("/time_entries/{a}"),
        &json!({"hours": 4.0, "notes": "edited"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(h.update_time_entry(b, Some(4.0), Some("edited".into()), None, None));
    let (_, via_control) = get_entry(&sb, &token, b).await;
    for k in [
        "hours",
        "notes",
        "is_running",
        "external_reference",
        "ended_time",
    ] {
        assert_eq!(via_api[k], via_control[k], "{k}");
    }
    sb.stop().await;
}

#[tokio::test]
async fn invalid_or_missing_fields_are_422_with_a_message() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let h = sb.harvest();
    let token = harvest_tokens(&sb).await.access;
    let fleet = h.find_project("Fleet Portal").unwrap();
    let archived = h.find_project("Old Intranet").unwrap();
    let dev = h.find_task("Development").unwrap();
    let ok = json!({"project_id": fleet, "task_id": dev, "spent_date": "2025-03-03", "hours": 1});
    let with = |k: &str, v: Value| {
        let mut b = ok.clone();
        b[k] = v;
        b
    };
    let without = |k: &str| {
        let mut b = ok.clone();
        b.as_object_mut().unwrap().remove(k);
        b
    };
    let before = h.time_entry_count();
    for (case, body) in [
        ("no project", without("project_id")),
        ("no task", without("task_id")),
        ("no date", without("spent_date")),
        ("nothing", json!({})),
        ("null project", with("project_id", Value::Null)),
        ("unknown project", with("project_id", json!(12345))),
        ("archived project", with("project_id", json!(archived))),
        ("project as text", with("project_id", json!("fleet"))),
        ("unknown task", with("task_id", json!(999))),
        ("bad date", with("spent_date", json!("03/03/2025"))),
        ("negative hours", with("hours", json!(-1))),
        ("hours as text", with("hours", json!("lots"))),
        ("unknown user", with("user_id", json!(7))),
        ("bad time", with("started_time", json!("25:00"))),
        ("end without start", with("ended_time", json!("10:00"))),
        ("notes as number list", with("notes", json!([1]))),
        (
            "external reference without id",
            with("external_reference", json!({"permalink": "x"})),
        ),
        ("array body", json!([ok.clone()])),
    ] {
        let (status, body) = send_json(&sb, &token, Method::POST, "/time_entries", &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{case}: {body}");
        assert!(body["message"].is_string(), "{case}: {body}");
    }
    let (_, body) = send_json(&sb, &token, Method::POST, "/time_entries", &json!({})).await;
    let message = body["message"].as_str().unwrap();
    for k in ["project_id", "task_id", "spent_date"] {
        assert!(message.contains(k), "{message}");
    }
    // End before start.
    let mut body = without("hours");
    body["started_time"] = json!("10:00");
    body["ended_time"] = json!("9:00");
    let (status, _) = send_json(&sb, &token, Method::POST, "/time_entries", &body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(h.time_entry_count(), before, "nothing was created");

    // The same checks on PATCH, which changes nothing when refused.
    let id = listed_ids(&sb, &token, &format!("project_id={fleet}")).await[0];
    let (_, original) = get_entry(&sb, &token, id).await;
    for body in [
        json!({"project_id": 12345}),
        json!({"project_id": archived}),
        json!({"task_id": 999}),
        json!({"spent_date": "soon"}),
        json!({"spent_date": null}),
        json!({"hours": -0.5}),
        json!({"ended_time": "99:00"}),
        json!({"hours": 2, "project_id": 12345}),
    ] {
        let (status, resp) = send_json(
            &sb,
            &token,
            Method::PATCH,
            &format!("/time_entries/{id}"),
            &body,
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {resp}");
        assert!(resp["message"].is_string());
    }
    assert_eq!(get_entry(&sb, &token, id).await.1, original);
    sb.stop().await;
}

#[tokio::test]
async fn start_and_end_times_set_the_hours_and_no_end_starts_a_timer() {
    let (sb, h, token, _ada, _bob, project) = small_account().await;
    let dev = h.find_task("Development").unwrap();
    let base = json!({"project_id": project, "task_id": dev, "spent_date": "2025-03-03"});
    let with = |extra: Value| {
        let mut b = base.clone();
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };

    let (status, e) = send_json(
        &sb,
        &token,
        Method::POST,
        "/time_entries",
        &with(json!({"started_time": "9:00", "ended_time": "10:30am"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{e}");
    assert_eq!(
        (
            &e["hours"],
            &e["started_time"],
            &e["ended_time"],
            &e["is_running"]
        ),
        (&json!(1.5), &json!("09:00"), &json!("10:30"), &json!(false))
    );

    let (_, timer) = send_json(
        &sb,
        &token,
        Method::POST,
        "/time_entries",
        &with(json!({"started_time": "2:00pm"})),
    )
    .await;
    assert_eq!(timer["is_running"], true);
    assert_eq!(timer["started_time"], "14:00");
    assert!(timer["timer_started_at"].is_string());
    let timer_id = timer["id"].as_u64().unwrap();
    assert_eq!(h.running_time_entries(), [timer_id]);
    // An end time stops it and sets the hours.
    let (status, stopped) = send_json(
        &sb,
        &token,
        Method::PATCH,
        &format!("/time_entries/{timer_id}"),
        &json!({"ended_time": "15:15"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{stopped}");
    assert_eq!(
        (
            &stopped["hours"],
            &stopped["started_time"],
            &stopped["is_running"]
        ),
        (&json!(1.25), &json!("14:00"), &json!(false))
    );
    assert!(stopped["timer_started_at"].is_null());
    assert!(h.running_time_entries().is_empty());

    // Duration mode without hours: a running timer at 0 h (reference §1.10).
    let (_, zero) = send_json(&sb, &token, Method::POST, "/time_entries", &base).await;
    assert_eq!(
        (&zero["hours"], &zero["is_running"]),
        (&json!(0.0), &json!(true))
    );
    sb.stop().await;
}

#[tokio::test]
async fn deleting_a_closed_entry_is_refused() {
    let (sb, h, token, ada, _bob, project) = small_account().await;
    let closed = h.add_time_entry(entry_of(project, ada));
    assert!(h.set_time_entry_locked(closed, true));

    // The reference lets administrators delete closed entries; anyone else is refused.
    assert!(h.set_user_access_roles(ada, vec!["member"]));
    let resp = delete(&sb, &token, closed).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let (_, body) = json(resp).await;
    assert!(
        body["message"].as_str().unwrap().contains("closed"),
        "{body}"
    );
    assert_eq!(get_entry(&sb, &token, closed).await.0, StatusCode::OK);
    assert!(h.set_user_access_roles(ada, vec!["administrator"]));
    assert_eq!(delete(&sb, &token, closed).await.status(), StatusCode::OK);
    assert_eq!(
        get_entry(&sb, &token, closed).await.0,
        StatusCode::NOT_FOUND
    );
    sb.stop().await;
}

#[tokio::test]
async fn deleting_an_entry_of_an_archived_project_or_task_is_refused() {
    let (sb, h, token, ada, _bob, project) = small_account().await;
    let on_project = h.add_time_entry(entry_of(project, ada));
    assert!(h.set_project_active(project, false));
    let resp = delete(&sb, &token, on_project).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(json(resp).await.1["message"].is_string());
    assert!(h.set_project_active(project, true));
    assert_eq!(
        delete(&sb, &token, on_project).await.status(),
        StatusCode::OK
    );

    // Entries added through the control handle are on "Development".
    let dev = h.find_task("Development").unwrap();
    let on_task = h.add_time_entry(entry_of(project, ada));
    assert!(h.set_task_active(dev, false));
    assert_eq!(
        delete(&sb, &token, on_task).await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // Nor can new time go on the archived task.
    let (status, _) = send_json(
        &sb,
        &token,
        Method::POST,
        "/time_entries",
        &json!({"project_id": project, "task_id": dev, "spent_date": "2025-03-03", "hours": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(h.set_task_active(dev, true));
    assert_eq!(delete(&sb, &token, on_task).await.status(), StatusCode::OK);
    assert_eq!(h.time_entry_count(), 0);
    sb.stop().await;
}

#[tokio::test]
async fn only_administrators_write_other_users_time() {
    let (sb, h, token, ada, bob, project) = small_account().await;
    let dev = h.find_task("Development").unwrap();
    let body = json!({"project_id": project, "task_id": dev, "spent_date": "2025-03-03", "hours": 1, "user_id": bob});
    let (status, e) = send_json(&sb, &token, Method::POST, "/time_entries", &body).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(e["user"]["id"], bob);
    let bobs = e["id"].as_u64().unwrap();

    assert!(h.set_user_access_roles(ada, vec!["member"]));
    let (status, _) = send_json(&sb, &token, Method::POST, "/time_entries", &body).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = send_json(
        &sb,
        &token,
        Method::PATCH,
        &format!("/time_entries/{bobs}"),
        &json!({"hours": 3}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        delete(&sb, &token, bobs).await.status(),
        StatusCode::FORBIDDEN
    );
    // Their own time is theirs to write.
    let mut own = body.clone();
    own.as_object_mut().unwrap().remove("user_id");
    let (status, mine) = send_json(&sb, &token, Method::POST, "/time_entries", &own).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(mine["user"]["id"], ada);
    assert_eq!(
        delete(&sb, &token, mine["id"].as_u64().unwrap())
            .await
            .status(),
        StatusCode::OK
    );
    sb.stop().await;
}

#[tokio::test]
async fn writes_without_a_valid_token_are_401() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let h = sb.harvest();
    let token = harvest_tokens(&sb).await.access;
    let id = listed_ids(&sb, &token, "per_page=1").await[0];
    let before = h.time_entry_count();
    let api = sb.harvest_api_url();
    let writes = [
        (Method::POST, format!("{api}/time_entries")),
        (Method::PATCH, format!("{api}/time_entries/{id}")),
        (Method::DELETE, format!("{api}/time_entries/{id}")),
    ];
    let body = json!({"hours": 9});
    for (method, url) in &writes {
        for bearer in [None, Some("1000001.at.not-a-token")] {
            let mut req = client()
                .request(method.clone(), url)
                .header("Harvest-Account-Id", HARVEST_DEMO_ACCOUNT_ID.to_string())
                .json(&body);
            if let Some(t) = bearer {
                req = req.bearer_auth(t);
            }
            let (status, resp) = json(req.send().await.unwrap()).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {url}");
            assert_eq!(resp["error"], "invalid_token");
        }
        // The other required headers are checked as for reads.
        let no_agent = client_without_user_agent()
            .request(method.clone(), url)
            .bearer_auth(&token)
            .header("Harvest-Account-Id", HARVEST_DEMO_ACCOUNT_ID.to_string())
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(no_agent.status(), StatusCode::BAD_REQUEST, "{method}");
        let no_account = client()
            .request(method.clone(), url)
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(no_account.status(), StatusCode::NOT_FOUND, "{method}");
    }
    h.expire_all_access_tokens();
    assert_eq!(
        delete(&sb, &token, id).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(h.time_entry_count(), before);
    let fresh = harvest_tokens(&sb).await.access;
    assert_eq!(
        get_entry(&sb, &fresh, id).await.0,
        StatusCode::OK,
        "untouched"
    );
    sb.stop().await;
}

#[tokio::test]
async fn write_bodies_must_be_json_or_form_data() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let h = sb.harvest();
    let token = harvest_tokens(&sb).await.access;
    let fleet = h.find_project("Fleet Portal").unwrap();
    let dev = h.find_task("Development").unwrap();
    let body = json!({"project_id": fleet, "task_id": dev, "spent_date": "2025-03-03", "hours": 1})
        .to_string();
    let before = h.time_entry_count();
    for content_type in [
        None,
        Some("text/plain"),
        Some("multipart/form-data; boundary=x"),
    ] {
        let mut req = harvest_req(&sb, &token, Method::POST, "/time_entries").body(body.clone());
        if let Some(ct) = content_type {
            req = req.header("Content-Type", ct);
        }
        let (status, resp) = json(req.send().await.unwrap()).await;
        assert_eq!(
            status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}"
        );
        assert!(
            resp["message"]
                .as_str()
                .unwrap()
                .contains("application/json")
        );
    }
    assert_eq!(h.time_entry_count(), before);
    let (status, resp) = json(
        harvest_req(&sb, &token, Method::POST, "/time_entries")
            .header("Content-Type", "application/json")
            .body("{\"project_id\": ")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{resp}");
    // A charset parameter is fine.
    let resp = harvest_req(&sb, &token, Method::POST, "/time_entries")
        .header("Content-Type", "application/json; charset=utf-8")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);

    // Harvest also takes form data, nested the Rails way.
    let (status, e) = json(
        harvest_req(&sb, &token, Method::POST, "/time_entries")
            .form(&[
                ("project_id", fleet.to_string()),
                ("task_id", dev.to_string()),
                ("spent_date", "2025-03-04".into()),
                ("hours", "0.75".into()),
                ("notes", "from a form".into()),
                ("external_reference[id]", "wl-7".into()),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{e}");
    assert_eq!(
        (&e["hours"], &e["notes"], &e["external_reference"]["id"]),
        (&json!(0.75), &json!("from a form"), &json!("wl-7"))
    );
    let id = e["id"].as_u64().unwrap();
    let resp = harvest_req(&sb, &token, Method::PATCH, &format!("/time_entries/{id}"))
        .header("Content-Type", "text/plain")
        .body("hours=2")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, e) = json(
        harvest_req(&sb, &token, Method::PATCH, &format!("/time_entries/{id}"))
            .form(&[("hours", "2")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(e["hours"], 2.0);
    assert_eq!(h.time_entry_count(), before + 2);
    sb.stop().await;
}
