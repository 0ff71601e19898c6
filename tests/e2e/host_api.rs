use hourbridge_domain::{ManagedBy, Project, ProviderId, WorkLog, WorkLogSource, new_id};
use reqwest::Method;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Server, data_dir};

const GET: Method = Method::GET;
const POST: Method = Method::POST;
const PATCH: Method = Method::PATCH;
const DELETE: Method = Method::DELETE;

async fn bootstrap(s: &Server, ws: &str, owner: &str) -> String {
    let t = s.token(ws, owner, "owner");
    let body = json!({"name": "Acme AS", "time_zone": "Europe/Oslo", "owner": {"name": "Olga Owner", "email": "olga@acme.test"}});
    let (status, b) = s.call(Some(&t), POST, "/v1/workspaces", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{b}");
    t
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().expect("items").clone()
}

#[tokio::test]
async fn token_round_trip_survives_a_server_restart() {
    let (_keep, dir) = data_dir();
    let s = Server::start(&dir).await;
    let owner = bootstrap(&s, "acme", "olga").await;

    // Bootstrap is idempotent.
    let again = json!({"name": "Other name", "owner": {"name": "X", "email": "x@acme.test"}});
    let (status, b) = s
        .call(Some(&owner), POST, "/v1/workspaces", Some(again))
        .await;
    assert_eq!(
        (status, b["workspace"]["name"].as_str()),
        (StatusCode::OK, Some("Acme AS"))
    );

    let (st, ada) = s
        .call(
            Some(&owner),
            POST,
            "/v1/people",
            Some(json!({"name": "Ada", "email": "Ada@Acme.test", "role": "manager"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{ada}");
    let (_, bob) = s
        .call(
            Some(&owner),
            POST,
            "/v1/people",
            Some(json!({"name": "Bob", "email": "bob@acme.test", "role": "member"})),
        )
        .await;
    let (ada_id, bob_id) = (id(&ada), id(&bob));
    let ada_t = s.token("acme", &ada_id, "manager");
    let bob_t = s.token("acme", &bob_id, "member");

    let (st, customer) = s
        .call(
            Some(&ada_t),
            POST,
            "/v1/customers",
            Some(json!({"name": "Fjord AS", "organization_number": "987654321"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{customer}");
    let (st, project) = s
        .call(Some(&ada_t), POST, "/v1/projects", Some(json!({"name": "Bridge", "customer_id": id(&customer), "start_date": "2026-01-01", "end_date": "2026-12-31"})))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{project}");
    assert_eq!(project["managed_by"], "local");
    let pid = id(&project);
    let (st, sub) = s
        .call(
            Some(&ada_t),
            POST,
            "/v1/projects",
            Some(json!({"name": "Bridge phase 2", "parent_id": pid})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{sub}");
    let (st, task) = s
        .call(
            Some(&ada_t),
            POST,
            &format!("/v1/projects/{pid}/tasks"),
            Some(json!({"name": "Design"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{task}");
    let (st, assignment) = s
        .call(
            Some(&ada_t),
            POST,
            &format!("/v1/projects/{pid}/assignments"),
            Some(
                json!({"person_id": bob_id, "start_date": "2026-03-01", "end_date": "2026-03-31"}),
            ),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{assignment}");

    // Bob logs his own time; Ada logs one for Bob.
    for (date, minutes) in [("2026-03-02", 60), ("2026-03-03", 90), ("2026-03-10", 30)] {
        let (st, l) = s
            .call(Some(&bob_t), POST, "/v1/worklogs", Some(json!({"project_id": pid, "task_id": id(&task), "date": date, "minutes": minutes, "note": "bro 🌉"})))
            .await;
        assert_eq!(st, StatusCode::CREATED, "{l}");
        assert_eq!(l["person_id"], bob_id.as_str());
        assert_eq!(l["source"], Value::Null);
    }
    let (st, _) = s.call(Some(&ada_t), POST, "/v1/worklogs", Some(json!({"person_id": ada_id, "project_id": pid, "date": "2026-03-05", "minutes": 15}))).await;
    assert_eq!(st, StatusCode::CREATED);

    // Filters.
    let (_, by_project) = s
        .call(
            Some(&bob_t),
            GET,
            &format!("/v1/worklogs?project_id={pid}"),
            None,
        )
        .await;
    assert_eq!(items(&by_project).len(), 4);
    let dates: Vec<String> = items(&by_project)
        .iter()
        .map(|l| l["date"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        dates,
        ["2026-03-02", "2026-03-03", "2026-03-05", "2026-03-10"]
    );
    let (_, bobs) = s
        .call(
            Some(&bob_t),
            GET,
            &format!(
                "/v1/worklogs?project_id={pid}&person_id={bob_id}&from=2026-03-03&to=2026-03-31"
            ),
            None,
        )
        .await;
    let bob_minutes: Vec<i64> = items(&bobs)
        .iter()
        .map(|l| l["minutes"].as_i64().unwrap())
        .collect();
    assert_eq!(bob_minutes, [90, 30]);
    let (_, by_person) = s
        .call(
            Some(&bob_t),
            GET,
            &format!("/v1/worklogs?person_id={ada_id}"),
            None,
        )
        .await;
    assert_eq!(items(&by_person).len(), 1);
    let (_, dated) = s
        .call(
            Some(&bob_t),
            GET,
            "/v1/worklogs?from=2026-03-04&to=2026-03-09",
            None,
        )
        .await;
    assert_eq!(items(&dated).len(), 1);

    // Paging: one at a time visits all four exactly once.
    let mut seen = Vec::new();
    let mut path = format!("/v1/worklogs?project_id={pid}&limit=1");
    loop {
        let (st, page) = s.call(Some(&bob_t), GET, &path, None).await;
        assert_eq!(st, StatusCode::OK, "{page}");
        seen.extend(items(&page).iter().map(id));
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/worklogs?project_id={pid}&limit=1&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 4);

    // Restart on the same data directory: everything is still there, the token still works.
    s.stop().await;
    let s = Server::start(&dir).await;
    let (st, people) = s.call(Some(&bob_t), GET, "/v1/people", None).await;
    assert_eq!(st, StatusCode::OK, "{people}");
    let mut names: Vec<String> = items(&people)
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["Ada", "Bob", "Olga Owner"]);
    let (_, logs) = s
        .call(
            Some(&bob_t),
            GET,
            &format!("/v1/worklogs?project_id={pid}"),
            None,
        )
        .await;
    assert_eq!(items(&logs).len(), 4);
    assert_eq!(items(&logs)[0]["note"], "bro 🌉");
    let (_, assignments) = s
        .call(
            Some(&bob_t),
            GET,
            &format!("/v1/projects/{pid}/assignments"),
            None,
        )
        .await;
    assert_eq!(items(&assignments)[0]["person_id"], bob_id.as_str());
    let (st, p) = s
        .call(Some(&owner), GET, &format!("/v1/projects/{pid}"), None)
        .await;
    assert_eq!(
        (st, p["customer_id"].clone()),
        (StatusCode::OK, customer["id"].clone())
    );
    s.stop().await;
}

#[tokio::test]
async fn another_workspaces_records_answer_404() {
    let (_keep, dir) = data_dir();
    let s = Server::start(&dir).await;
    let a = bootstrap(&s, "ws-a", "owner-a").await;
    let b = bootstrap(&s, "ws-b", "owner-b").await;
    let (_, project) = s
        .call(
            Some(&a),
            POST,
            "/v1/projects",
            Some(json!({"name": "Secret A"})),
        )
        .await;
    let pid = id(&project);
    let (_, person) = s
        .call(
            Some(&a),
            POST,
            "/v1/people",
            Some(json!({"name": "Ann", "email": "ann@a.test", "role": "member"})),
        )
        .await;

    for path in [
        format!("/v1/projects/{pid}"),
        format!("/v1/people/{}", id(&person)),
        format!("/v1/projects/{pid}/tasks"),
    ] {
        let (st, body) = s.call(Some(&b), GET, &path, None).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(body["error"]["code"], "not_found");
    }
    let (st, _) = s
        .call(
            Some(&b),
            PATCH,
            &format!("/v1/projects/{pid}"),
            Some(json!({"name": "Stolen"})),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = s
        .call(Some(&b), DELETE, &format!("/v1/projects/{pid}"), None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, body) = s
        .call(
            Some(&b),
            POST,
            "/v1/worklogs",
            Some(json!({"project_id": pid, "date": "2026-01-01", "minutes": 5})),
        )
        .await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("unknown_project"))
    );
    let (_, list) = s.call(Some(&b), GET, "/v1/projects", None).await;
    assert!(items(&list).is_empty());
    let (_, p) = s
        .call(Some(&a), GET, &format!("/v1/projects/{pid}"), None)
        .await;
    assert_eq!(p["name"], "Secret A");

    // A token for a workspace nobody bootstrapped.
    let stranger = s.token("ws-nobody", "x", "owner");
    let (st, body) = s.call(Some(&stranger), GET, "/v1/people", None).await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("workspace_not_found"))
    );
    s.stop().await;
}

#[tokio::test]
async fn roles_that_may_not_act_answer_403() {
    let (_keep, dir) = data_dir();
    let s = Server::start(&dir).await;
    let owner = bootstrap(&s, "acme", "olga").await;
    let (_, project) = s
        .call(
            Some(&owner),
            POST,
            "/v1/projects",
            Some(json!({"name": "P"})),
        )
        .await;
    let pid = id(&project);
    let (_, admin) = s
        .call(
            Some(&owner),
            POST,
            "/v1/people",
            Some(json!({"name": "Al", "email": "al@acme.test", "role": "admin"})),
        )
        .await;
    let (_, member) = s
        .call(
            Some(&owner),
            POST,
            "/v1/people",
            Some(json!({"name": "Mo", "email": "mo@acme.test", "role": "member"})),
        )
        .await;
    let admin_t = s.token("acme", &id(&admin), "admin");
    let manager_t = s.token("acme", "mgr", "manager");
    let member_t = s.token("acme", &id(&member), "member");

    let cases: Vec<(&str, &String, Method, String, Option<Value>)> = vec![
        (
            "member creates a project",
            &member_t,
            POST,
            "/v1/projects".into(),
            Some(json!({"name": "X"})),
        ),
        (
            "member edits a project",
            &member_t,
            PATCH,
            format!("/v1/projects/{pid}"),
            Some(json!({"name": "X"})),
        ),
        (
            "member adds a task",
            &member_t,
            POST,
            format!("/v1/projects/{pid}/tasks"),
            Some(json!({"name": "X"})),
        ),
        (
            "member creates a customer",
            &member_t,
            POST,
            "/v1/customers".into(),
            Some(json!({"name": "X"})),
        ),
        (
            "manager adds a person",
            &manager_t,
            POST,
            "/v1/people".into(),
            Some(json!({"name": "X", "email": "x@acme.test", "role": "member"})),
        ),
        (
            "admin creates an owner",
            &admin_t,
            POST,
            "/v1/people".into(),
            Some(json!({"name": "X", "email": "x@acme.test", "role": "owner"})),
        ),
        (
            "member deletes a person",
            &member_t,
            DELETE,
            format!("/v1/people/{}", id(&admin)),
            None,
        ),
        (
            "member promotes themself",
            &member_t,
            PATCH,
            format!("/v1/people/{}", id(&member)),
            Some(json!({"role": "admin"})),
        ),
        (
            "admin bootstraps a workspace",
            &admin_t,
            POST,
            "/v1/workspaces".into(),
            Some(json!({"name": "X", "owner": {"name": "X", "email": "x@x.test"}})),
        ),
        (
            "member logs time for another",
            &member_t,
            POST,
            "/v1/worklogs".into(),
            Some(
                json!({"person_id": id(&admin), "project_id": pid, "date": "2026-01-01", "minutes": 5}),
            ),
        ),
    ];
    for (what, token, method, path, body) in cases {
        let (st, b) = s.call(Some(token), method, &path, body).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{what}: {b}");
        assert_eq!(b["error"]["code"], "forbidden", "{what}");
    }

    // What members may do: read, log their own time, fix their own name.
    let (st, _) = s.call(Some(&member_t), GET, "/v1/projects", None).await;
    assert_eq!(st, StatusCode::OK);
    let (st, log) = s
        .call(
            Some(&member_t),
            POST,
            "/v1/worklogs",
            Some(json!({"project_id": pid, "date": "2026-01-01", "minutes": 5})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{log}");
    let (st, _) = s
        .call(
            Some(&member_t),
            PATCH,
            &format!("/v1/people/{}", id(&member)),
            Some(json!({"name": "Mona"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    // ...but not another member's log; a manager may.
    let other_t = s.token("acme", &id(&admin), "member");
    let (st, _) = s
        .call(
            Some(&other_t),
            PATCH,
            &format!("/v1/worklogs/{}", id(&log)),
            Some(json!({"minutes": 6})),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, l) = s
        .call(
            Some(&manager_t),
            PATCH,
            &format!("/v1/worklogs/{}", id(&log)),
            Some(json!({"minutes": 6})),
        )
        .await;
    assert_eq!((st, l["minutes"].as_i64()), (StatusCode::OK, Some(6)));
    s.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_coded_4xx_never_a_500() {
    let (_keep, dir) = data_dir();
    let s = Server::start(&dir).await;
    let t = bootstrap(&s, "acme", "olga").await;
    let (_, top) = s
        .call(Some(&t), POST, "/v1/projects", Some(json!({"name": "Top"})))
        .await;
    let (_, child) = s
        .call(
            Some(&t),
            POST,
            "/v1/projects",
            Some(json!({"name": "Child", "parent_id": id(&top)})),
        )
        .await;
    let pid = id(&top);
    let long = "x".repeat(201);

    let json_cases: Vec<(&str, Method, String, Value, StatusCode, &str)> = vec![
        (
            "unknown field",
            POST,
            "/v1/projects".into(),
            json!({"name": "P", "colour": "red"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "missing field",
            POST,
            "/v1/customers".into(),
            json!({}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "wrong type",
            POST,
            "/v1/projects".into(),
            json!({"name": 5}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "bad date",
            POST,
            "/v1/projects".into(),
            json!({"name": "P", "start_date": "2026-02-30"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "short date",
            POST,
            "/v1/worklogs".into(),
            json!({"project_id": pid, "date": "2026-3-1", "minutes": 5}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "negative minutes",
            POST,
            "/v1/worklogs".into(),
            json!({"project_id": pid, "date": "2026-03-01", "minutes": -5}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_minutes",
        ),
        (
            "over a day",
            POST,
            "/v1/worklogs".into(),
            json!({"project_id": pid, "date": "2026-03-01", "minutes": 1441}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_minutes",
        ),
        (
            "huge minutes",
            POST,
            "/v1/worklogs".into(),
            json!({"project_id": pid, "date": "2026-03-01", "minutes": 1e30}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "over-long name",
            POST,
            "/v1/projects".into(),
            json!({"name": long}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_long",
        ),
        (
            "over-long note",
            POST,
            "/v1/worklogs".into(),
            json!({"project_id": pid, "date": "2026-03-01", "minutes": 5, "note": "n".repeat(20_001)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_long",
        ),
        (
            "blank name",
            POST,
            "/v1/customers".into(),
            json!({"name": "   "}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "required",
        ),
        (
            "bad email",
            POST,
            "/v1/people".into(),
            json!({"name": "E", "email": "nope", "role": "member"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_email",
        ),
        (
            "bad role",
            POST,
            "/v1/people".into(),
            json!({"name": "E", "email": "e@x.test", "role": "king"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "end before start",
            POST,
            "/v1/projects".into(),
            json!({"name": "P", "start_date": "2026-02-02", "end_date": "2026-02-01"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_range",
        ),
        (
            "third level",
            POST,
            "/v1/projects".into(),
            json!({"name": "P", "parent_id": id(&child)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_deep",
        ),
        (
            "own parent",
            PATCH,
            format!("/v1/projects/{pid}"),
            json!({"parent_id": pid}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_parent",
        ),
        (
            "unknown customer",
            POST,
            "/v1/projects".into(),
            json!({"name": "P", "customer_id": "nope"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_customer",
        ),
        (
            "unknown person",
            POST,
            format!("/v1/projects/{pid}/assignments"),
            json!({"person_id": "ghost"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_person",
        ),
    ];
    for (what, method, path, body, want, code) in json_cases {
        let (st, b) = s.call(Some(&t), method, &path, Some(body)).await;
        assert_eq!(st, want, "{what}: {b}");
        assert_eq!(b["error"]["code"], code, "{what}: {b}");
        assert!(
            b["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what}"
        );
    }

    let fresh = s.token("fresh-ws", "o", "owner");
    let (st, b) = s
        .call(Some(&fresh), POST, "/v1/workspaces", Some(json!({"name": "W", "time_zone": "Mars/Base", "owner": {"name": "O", "email": "o@x.test"}})))
        .await;
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_time_zone"))
    );

    let (st, b) = s
        .raw(&t, POST, "/v1/projects", "application/json", "{\"name\": ")
        .await;
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("malformed_json"))
    );
    let (st, b) = s
        .raw(&t, POST, "/v1/projects", "text/plain", "{\"name\": \"P\"}")
        .await;
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Some("unsupported_media_type")
        )
    );

    let query_cases = [
        ("/v1/worklogs?limit=0", "invalid_limit"),
        ("/v1/worklogs?limit=1001", "invalid_limit"),
        ("/v1/people?limit=ten", "invalid_limit"),
        ("/v1/projects?cursor=garbage", "invalid_cursor"),
        ("/v1/worklogs?from=2026-13-01", "invalid_query"),
        (
            "/v1/worklogs?from=2026-03-02&to=2026-03-01",
            "invalid_range",
        ),
        ("/v1/worklogs?colour=red", "invalid_query"),
    ];
    for (path, code) in query_cases {
        let (st, b) = s.call(Some(&t), GET, path, None).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{path}: {b}");
        assert_eq!(b["error"]["code"], code, "{path}");
    }

    let (st, b) = s.call(None, GET, "/v1/people", None).await;
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    let (st, _) = s.call(Some("not.a.jwt"), GET, "/v1/people", None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, b) = s.call(Some(&t), GET, "/v1/nothing-here", None).await;
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (st, b) = s.call(Some(&t), Method::PUT, "/v1/people", None).await;
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed"))
    );
    let (st, _) = s.call(Some(&t), GET, "/v1/people/has%23hash", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    s.stop().await;
}

#[tokio::test]
async fn provider_managed_records_answer_409_to_edits() {
    let (_keep, dir) = data_dir();
    let s = Server::start(&dir).await;
    let t = bootstrap(&s, "acme", "olga").await;
    let basecamp = ProviderId::parse("basecamp").unwrap();
    let project = Project {
        id: new_id(),
        name: "From Basecamp".into(),
        parent_id: None,
        customer_id: None,
        start_date: None,
        end_date: None,
        managed_by: ManagedBy::Provider(basecamp.clone()),
        active: true,
    };
    s.ctx.store.insert("acme", &project).await.unwrap();
    let log = WorkLog {
        id: new_id(),
        person_id: hourbridge_domain::RecordId::parse("olga").unwrap(),
        project_id: project.id.clone(),
        task_id: None,
        date: chrono::NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
        minutes: 60,
        note: "synced".into(),
        source: Some(WorkLogSource {
            provider: ProviderId::parse("harvest").unwrap(),
            remote_id: "2712".into(),
        }),
        updated_at: None,
    };
    s.ctx.store.insert("acme", &log).await.unwrap();
    let (pid, lid) = (project.id.to_string(), log.id.to_string());

    let cases = [
        (
            PATCH,
            format!("/v1/projects/{pid}"),
            Some(json!({"name": "Mine now"})),
        ),
        (DELETE, format!("/v1/projects/{pid}"), None),
        (
            POST,
            format!("/v1/projects/{pid}/tasks"),
            Some(json!({"name": "Extra"})),
        ),
        (
            PATCH,
            format!("/v1/worklogs/{lid}"),
            Some(json!({"minutes": 1})),
        ),
        (DELETE, format!("/v1/worklogs/{lid}"), None),
    ];
    for (method, path, body) in cases {
        let (st, b) = s.call(Some(&t), method.clone(), &path, body).await;
        assert_eq!(st, StatusCode::CONFLICT, "{method} {path}: {b}");
        assert_eq!(b["error"]["code"], "managed_by_provider");
    }
    let (_, read) = s
        .call(Some(&t), GET, &format!("/v1/worklogs/{lid}"), None)
        .await;
    assert_eq!(
        read["source"],
        json!({"provider": "harvest", "remote_id": "2712"})
    );
    assert_eq!(read["minutes"], 60);
    s.stop().await;
}

#[tokio::test]
async fn emails_are_unique_and_found_case_insensitively() {
    let (_keep, dir) = data_dir();
    let s = Server::start(&dir).await;
    let t = bootstrap(&s, "acme", "olga").await;
    let (st, _) = s
        .call(
            Some(&t),
            POST,
            "/v1/people",
            Some(json!({"name": "Ada", "email": " ada@acme.test", "role": "member"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, b) = s
        .call(
            Some(&t),
            POST,
            "/v1/people",
            Some(json!({"name": "Ada 2", "email": "ADA@Acme.Test ", "role": "member"})),
        )
        .await;
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("email_taken"))
    );
    let (_, found) = s
        .call(Some(&t), GET, "/v1/people?email=Ada%40ACME.test", None)
        .await;
    assert_eq!(items(&found).len(), 1);
    assert_eq!(items(&found)[0]["email"], "ada@acme.test");
    s.stop().await;
}

#[tokio::test]
async fn records_in_use_are_not_deleted_from_under_their_references() {
    let (_keep, dir) = data_dir();
    let s = Server::start(&dir).await;
    let t = bootstrap(&s, "acme", "olga").await;
    let (_, c) = s
        .call(Some(&t), POST, "/v1/customers", Some(json!({"name": "C"})))
        .await;
    let (_, p) = s
        .call(
            Some(&t),
            POST,
            "/v1/projects",
            Some(json!({"name": "P", "customer_id": id(&c)})),
        )
        .await;
    let (_, l) = s
        .call(
            Some(&t),
            POST,
            "/v1/worklogs",
            Some(json!({"project_id": id(&p), "date": "2026-01-01", "minutes": 5})),
        )
        .await;
    let (st, b) = s
        .call(Some(&t), DELETE, &format!("/v1/customers/{}", id(&c)), None)
        .await;
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("customer_in_use"))
    );
    let (st, b) = s
        .call(Some(&t), DELETE, &format!("/v1/projects/{}", id(&p)), None)
        .await;
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("project_in_use"))
    );
    let (st, b) = s.call(Some(&t), DELETE, "/v1/people/olga", None).await;
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("owner_cannot_be_deleted"))
    );

    let (st, _) = s
        .call(Some(&t), DELETE, &format!("/v1/worklogs/{}", id(&l)), None)
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = s
        .call(Some(&t), DELETE, &format!("/v1/projects/{}", id(&p)), None)
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = s
        .call(Some(&t), DELETE, &format!("/v1/customers/{}", id(&c)), None)
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = s
        .call(Some(&t), GET, &format!("/v1/customers/{}", id(&c)), None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    s.stop().await;
}

#[tokio::test]
async fn openapi_document_describes_every_contract_path() {
    let (_keep, dir) = data_dir();
    let s = Server::start(&dir).await;
    let (st, doc) = s.call(None, GET, "/openapi.json", None).await;
    assert_eq!(st, StatusCode::OK);
    let paths = doc["paths"].as_object().expect("paths");
    let want: [(&str, &[&str]); 11] = [
        ("/health", &["get"]),
        ("/v1/workspaces", &["post"]),
        ("/v1/people", &["get", "post"]),
        ("/v1/people/{id}", &["get", "patch", "delete"]),
        ("/v1/customers", &["get", "post"]),
        ("/v1/customers/{id}", &["get", "patch", "delete"]),
        ("/v1/projects", &["get", "post"]),
        ("/v1/projects/{id}", &["get", "patch", "delete"]),
        ("/v1/projects/{id}/tasks", &["get", "post"]),
        ("/v1/projects/{id}/assignments", &["get", "post"]),
        ("/v1/worklogs", &["get", "post"]),
    ];
    for (path, methods) in want {
        for m in methods {
            assert!(
                paths.get(path).and_then(|p| p.get(*m)).is_some(),
                "{m} {path} missing from /openapi.json"
            );
        }
    }
    assert!(paths["/v1/worklogs/{id}"]["patch"].is_object());
    let params: Vec<&str> = paths["/v1/worklogs"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for p in ["project_id", "person_id", "from", "to", "limit", "cursor"] {
        assert!(params.contains(&p), "worklog filter {p} undocumented");
    }
    assert!(doc["components"]["schemas"]["WorkLog"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    let (st, health) = s.call(None, GET, "/health", None).await;
    assert_eq!(
        (st, health["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    s.stop().await;
}

#[tokio::test]
async fn webhooks_with_unknown_tokens_or_providers_answer_404_without_a_bearer() {
    let (_keep, dir) = data_dir();
    let s = Server::start(&dir).await;
    for path in [
        "/webhooks/tripletex/abc123",
        "/webhooks/harvest/not-alnum!",
        "/webhooks/nosuch/abc",
    ] {
        let res = reqwest::Client::new()
            .post(format!("{}{path}", s.base))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
        let b: Value = res.json().await.unwrap_or(Value::Null);
        assert_eq!(b["error"]["code"], "not_found", "{path}: {b}");
    }
    s.stop().await;
}

/// Host writes through the API append to the workspace's change feed in the same write: a
/// task, a work log created, moved (one entry per project) and deleted; a refused write
/// appends nothing.
#[tokio::test]
async fn host_writes_append_to_the_change_feed() {
    use hourbridge_domain::{ChangeOp, HostKind};
    let (_keep, dir) = data_dir();
    let s = Server::start(&dir).await;
    let t = bootstrap(&s, "acme", "olga").await;
    let (_, p1) = s
        .call(Some(&t), POST, "/v1/projects", Some(json!({"name": "One"})))
        .await;
    let (_, p2) = s
        .call(Some(&t), POST, "/v1/projects", Some(json!({"name": "Two"})))
        .await;
    let (p1, p2) = (id(&p1), id(&p2));
    let (st, task) = s
        .call(
            Some(&t),
            POST,
            &format!("/v1/projects/{p1}/tasks"),
            Some(json!({"name": "Design"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{task}");
    let (st, l) = s
        .call(
            Some(&t),
            POST,
            "/v1/worklogs",
            Some(json!({"project_id": p1, "date": "2026-03-02", "minutes": 60})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{l}");
    let lid = id(&l);
    // A patch that changes nothing writes nothing.
    let (st, b) = s
        .call(
            Some(&t),
            PATCH,
            &format!("/v1/worklogs/{lid}"),
            Some(json!({"minutes": 60})),
        )
        .await;
    assert_eq!((st, &b["minutes"]), (StatusCode::OK, &json!(60)));
    // Refused: bad minutes (422) and a missing project (422); neither appends.
    for body in [json!({"minutes": 0}), json!({"project_id": "nope"})] {
        let (st, b) = s
            .call(Some(&t), PATCH, &format!("/v1/worklogs/{lid}"), Some(body))
            .await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    }
    let (st, b) = s
        .call(
            Some(&t),
            PATCH,
            &format!("/v1/worklogs/{lid}"),
            Some(json!({"project_id": p2})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let (st, _) = s
        .call(Some(&t), DELETE, &format!("/v1/worklogs/{lid}"), None)
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);

    let page = s
        .ctx
        .store
        .changes_after("acme", 0, 100, None)
        .await
        .unwrap();
    let got: Vec<(u64, HostKind, String, String, ChangeOp)> = page
        .changes
        .iter()
        .map(|c| {
            (
                c.seq,
                c.kind,
                c.id.to_string(),
                c.project_id.to_string(),
                c.op,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (1, HostKind::Task, id(&task), p1.clone(), ChangeOp::Created),
            (
                2,
                HostKind::WorkLog,
                lid.clone(),
                p1.clone(),
                ChangeOp::Created
            ),
            (
                3,
                HostKind::WorkLog,
                lid.clone(),
                p2.clone(),
                ChangeOp::Updated
            ),
            (
                4,
                HostKind::WorkLog,
                lid.clone(),
                p1.clone(),
                ChangeOp::Updated
            ),
            (
                5,
                HostKind::WorkLog,
                lid.clone(),
                p2.clone(),
                ChangeOp::Deleted
            ),
        ]
    );
    assert_eq!(page.next_watermark, 5);
    let only_p1 = s
        .ctx
        .store
        .changes_after(
            "acme",
            1,
            100,
            Some(&hourbridge_domain::RecordId::parse(&p1).unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(
        only_p1.changes.iter().map(|c| c.seq).collect::<Vec<_>>(),
        vec![2, 4]
    );
    s.stop().await;
}

/// A provider defined here, in test code: it declares two-way time and nothing else.
mod two_way {
    use async_trait::async_trait;
    use hourbridge_provider_api::{
        AccountInfo, Capabilities, OutboundTime, Provider, ProviderDescriptor, ProviderError,
        ProviderErrorKind, ProviderSession, RemotePage, TimeChange, TimeChangeFeed, TimeSink,
    };

    pub const ID: &str = "twoway-test";

    pub struct TwoWay(pub ProviderDescriptor);

    fn refuse() -> ProviderError {
        ProviderError::new(ID, ProviderErrorKind::NotFound, "test provider")
    }

    #[async_trait]
    impl Provider for TwoWay {
        fn descriptor(&self) -> &ProviderDescriptor {
            &self.0
        }
        async fn check_credentials(
            &self,
            _session: &ProviderSession,
        ) -> Result<AccountInfo, ProviderError> {
            Err(refuse())
        }
        fn time_sink(&self) -> Option<&dyn TimeSink> {
            Some(self)
        }
        fn time_changes(&self) -> Option<&dyn TimeChangeFeed> {
            Some(self)
        }
    }

    #[async_trait]
    impl TimeSink for TwoWay {
        async fn create(
            &self,
            _session: &ProviderSession,
            _time: &OutboundTime,
            _idempotency_key: &str,
        ) -> Result<String, ProviderError> {
            Err(refuse())
        }
        async fn update(
            &self,
            _session: &ProviderSession,
            _remote_id: &str,
            _time: &OutboundTime,
        ) -> Result<(), ProviderError> {
            Err(refuse())
        }
        async fn delete(
            &self,
            _session: &ProviderSession,
            _remote_id: &str,
        ) -> Result<(), ProviderError> {
            Err(refuse())
        }
    }

    #[async_trait]
    impl TimeChangeFeed for TwoWay {
        async fn changes(
            &self,
            _session: &ProviderSession,
            _window: hourbridge_provider_api::ChangeWindow,
            _page: Option<String>,
        ) -> Result<RemotePage<TimeChange>, ProviderError> {
            Err(refuse())
        }
    }

    /// A descriptor like `base`'s (auth, schedule...) with this id and only two-way time.
    pub fn descriptor(base: &ProviderDescriptor) -> ProviderDescriptor {
        let mut d = base.clone();
        d.id = ID;
        d.display_name = "Two-way test";
        d.capabilities = Capabilities {
            time_two_way: Some(hourbridge_provider_api::TimeTwoWay {
                history_days: 90,
                overlap: std::time::Duration::from_secs(600),
            }),
            ..Capabilities::default()
        };
        d
    }
}

/// Work logs from a provider that declares two-way time are editable and deletable in the
/// host (and their edits reach the change feed); those from one-way or unknown providers stay
/// read-only.
#[tokio::test]
async fn work_logs_from_a_two_way_source_are_editable_one_way_ones_are_not() {
    use std::sync::Arc;

    use tower::ServiceExt as _;

    let (_keep, dir) = data_dir();
    let s = Server::start(&dir).await;
    let t = bootstrap(&s, "acme", "olga").await;
    let (_, p) = s
        .call(
            Some(&t),
            POST,
            "/v1/projects",
            Some(json!({"name": "Both ways"})),
        )
        .await;
    let project = hourbridge_domain::RecordId::parse(id(&p)).unwrap();
    let synced = |provider: &str, remote: &str| WorkLog {
        id: new_id(),
        person_id: hourbridge_domain::RecordId::parse("olga").unwrap(),
        project_id: project.clone(),
        task_id: None,
        date: chrono::NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
        minutes: 60,
        note: "synced".into(),
        source: Some(WorkLogSource {
            provider: ProviderId::parse(provider).unwrap(),
            remote_id: remote.into(),
        }),
        updated_at: None,
    };
    let (two, two_del, one, unknown) = (
        synced(two_way::ID, "tw-1"),
        synced(two_way::ID, "tw-2"),
        synced("harvest", "h-1"),
        synced("retired", "r-1"),
    );
    for l in [&two, &two_del, &one, &unknown] {
        s.ctx.store.insert("acme", l).await.unwrap();
    }

    // The server's registry plus the test provider.
    let mut state = s.ctx.api_state();
    let mut registry = (*state.engine.providers).clone();
    let base = registry
        .descriptors()
        .next()
        .expect("a built-in provider")
        .clone();
    registry
        .register(Arc::new(two_way::TwoWay(two_way::descriptor(&base))))
        .expect("the test provider declares what it implements");
    state.engine.providers = Arc::new(registry);
    let app = hourbridge_api::router(state);
    let call = |method: Method, path: String, body: Option<Value>| {
        let app = app.clone();
        let t = t.clone();
        async move {
            let mut req = http::Request::builder()
                .method(method.as_str())
                .uri(path)
                .header("authorization", format!("Bearer {t}"));
            let body = match body {
                Some(b) => {
                    req = req.header("content-type", "application/json");
                    axum::body::Body::from(b.to_string())
                }
                None => axum::body::Body::empty(),
            };
            let res = app.oneshot(req.body(body).unwrap()).await.unwrap();
            let status = res.status().as_u16();
            let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
                .await
                .unwrap();
            let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            (status, json)
        }
    };

    for l in [&one, &unknown] {
        let (st, b) = call(
            PATCH,
            format!("/v1/worklogs/{}", l.id),
            Some(json!({"minutes": 5})),
        )
        .await;
        assert_eq!(
            (st, &b["error"]["code"]),
            (409, &json!("managed_by_provider"))
        );
        let (st, _) = call(DELETE, format!("/v1/worklogs/{}", l.id), None).await;
        assert_eq!(st, 409);
    }
    let (st, b) = call(
        PATCH,
        format!("/v1/worklogs/{}", two.id),
        Some(json!({"minutes": 45, "note": "fixed in the host"})),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["minutes"], 45);
    assert_eq!(
        b["source"],
        json!({"provider": two_way::ID, "remote_id": "tw-1"}),
        "the link to the remote record stays, so the edit can be pushed"
    );
    let (st, _) = call(DELETE, format!("/v1/worklogs/{}", two_del.id), None).await;
    assert_eq!(st, 204);

    let feed = s
        .ctx
        .store
        .changes_after("acme", 0, 100, None)
        .await
        .unwrap();
    let got: Vec<(String, hourbridge_domain::ChangeOp)> = feed
        .changes
        .iter()
        .map(|c| (c.id.to_string(), c.op))
        .collect();
    assert_eq!(
        got,
        vec![
            (two.id.to_string(), hourbridge_domain::ChangeOp::Updated),
            (two_del.id.to_string(), hourbridge_domain::ChangeOp::Deleted),
        ]
    );
    s.stop().await;
}

#[tokio::test]
async fn a_service_token_reads_and_manages_add_ons_and_may_write_nothing_else() {
    let (_keep, dir) = data_dir();
    let s = Server::start(&dir).await;
    let owner = bootstrap(&s, "acme", "olga").await;
    let (_, project) = s
        .call(
            Some(&owner),
            POST,
            "/v1/projects",
            Some(json!({"name": "P"})),
        )
        .await;
    let pid = id(&project);
    let service = s.token("acme", "billing", "service");

    // Reads what a member reads.
    for path in [
        "/v1/workspace",
        "/v1/projects",
        "/v1/people",
        "/v1/customers",
        "/v1/connections",
    ] {
        let (st, b) = s.call(Some(&service), GET, path, None).await;
        assert_eq!(st, StatusCode::OK, "{path}: {b}");
    }
    let (_, ws) = s.call(Some(&service), GET, "/v1/workspace", None).await;
    assert_eq!(ws["add_ons"], json!([]));

    // Manages add-ons: no shipped provider requires one yet, so every id is unknown here;
    // people, owners included, may not manage them at all.
    for method in [Method::PUT, DELETE] {
        let (st, b) = s
            .call(
                Some(&service),
                method.clone(),
                "/v1/workspace/addons/basecamp",
                None,
            )
            .await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{method}: {b}");
        assert_eq!(b["error"]["code"], "unknown_addon");
        let (st, b) = s
            .call(
                Some(&owner),
                method.clone(),
                "/v1/workspace/addons/basecamp",
                None,
            )
            .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "owner {method}: {b}");
        assert_eq!(b["error"]["code"], "forbidden");
    }

    // Writes nothing else.
    let cases: Vec<(Method, String, Option<Value>)> = vec![
        (
            POST,
            "/v1/workspaces".into(),
            Some(json!({"name": "X", "owner": {"name": "X", "email": "x@acme.test"}})),
        ),
        (PATCH, "/v1/workspace".into(), Some(json!({"name": "X"}))),
        (POST, "/v1/projects".into(), Some(json!({"name": "X"}))),
        (
            PATCH,
            format!("/v1/projects/{pid}"),
            Some(json!({"name": "X"})),
        ),
        (DELETE, format!("/v1/projects/{pid}"), None),
        (
            POST,
            format!("/v1/projects/{pid}/tasks"),
            Some(json!({"name": "X"})),
        ),
        (POST, "/v1/customers".into(), Some(json!({"name": "X"}))),
        (
            POST,
            "/v1/people".into(),
            Some(json!({"name": "X", "email": "x@acme.test", "role": "member"})),
        ),
        (PATCH, "/v1/people/olga".into(), Some(json!({"name": "X"}))),
        (
            POST,
            "/v1/worklogs".into(),
            Some(json!({"project_id": pid, "date": "2026-01-05", "minutes": 60})),
        ),
        (
            Method::PUT,
            "/v1/connections/harvest".into(),
            Some(json!({})),
        ),
        (DELETE, "/v1/connections/harvest".into(), None),
        (POST, "/v1/connections/harvest/sync".into(), None),
        (
            Method::PUT,
            format!("/v1/projects/{pid}/integrations/harvest"),
            Some(json!({"remote_project_ids": ["1"], "sync_from": "2026-01-01"})),
        ),
        (
            POST,
            format!("/v1/projects/{pid}/integrations/harvest/clear"),
            None,
        ),
    ];
    for (method, path, body) in cases {
        let (st, b) = s.call(Some(&service), method.clone(), &path, body).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{method} {path}: {b}");
        assert_eq!(b["error"]["code"], "forbidden", "{method} {path}");
    }
    let (_, list) = s.call(Some(&owner), GET, "/v1/projects", None).await;
    assert_eq!(items(&list).len(), 1, "nothing was written");
    s.stop().await;
}
