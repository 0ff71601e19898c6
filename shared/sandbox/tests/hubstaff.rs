//! Hubstaff: OAuth with rotating refresh tokens, members/projects/daily activities with
//! `page_start_id` paging, the 31-day window, error shapes and the per-app rate limit.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{Days, NaiveDate, Utc};
use common::*;
use hourbridge_sandbox::{
    HUBSTAFF_DEMO_CLIENT_ID, HUBSTAFF_DEMO_CLIENT_SECRET, HUBSTAFF_ORGANIZATION_ID, Sandbox, Seed,
};
use reqwest::StatusCode;
use serde_json::Value;

/// Field names of a daily activity in the reference fixture (`hubstaff-daily-activities.json`).
const DAILY_FIELDS: [&str; 17] = [
    "id",
    "date",
    "user_id",
    "project_id",
    "task_id",
    "keyboard",
    "mouse",
    "overall",
    "tracked",
    "input_tracked",
    "manual",
    "idle",
    "resumed",
    "billable",
    "work_break",
    "created_at",
    "updated_at",
];

fn org_path(rest: &str) -> String {
    format!("/organizations/{HUBSTAFF_ORGANIZATION_ID}{rest}")
}

/// Follows `pagination.next_page_start_id` until the key is absent; answers every page.
async fn all_pages(sb: &Sandbox, token: &str, path: &str, query: &[(&str, &str)]) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut start = "0".to_owned();
    loop {
        let mut q = query.to_vec();
        q.push(("page_start_id", &start));
        let (status, body) = json(hubstaff_get(sb, token, path, &q).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let next = body
            .get("pagination")
            .map(|p| p["next_page_start_id"].as_u64().unwrap());
        pages.push(body);
        match next {
            Some(n) => start = n.to_string(),
            None => return pages,
        }
        assert!(pages.len() < 1000, "paging does not end");
    }
}

#[tokio::test]
async fn refresh_tokens_rotate_and_the_old_one_is_rejected() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let first = hubstaff_tokens(&sb).await;
    assert_eq!(first.expires_in, 24 * 3600);

    // Access tokens are JWT-shaped with readable claims.
    let parts: Vec<&str> = first.access.split('.').collect();
    assert_eq!(parts.len(), 3);
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(claims["aud"], HUBSTAFF_DEMO_CLIENT_ID);
    assert!(claims["exp"].as_i64().unwrap() > Utc::now().timestamp());

    let (status, body) = json(hubstaff_refresh(&sb, &first.refresh).await).await;
    assert_eq!(status, StatusCode::OK);
    let second = tokens_of(&body);
    assert_ne!(second.refresh, first.refresh);
    assert_ne!(second.access, first.access);

    let (status, body) = json(hubstaff_refresh(&sb, &first.refresh).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");

    // The rotated token works (once), with client credentials in the body this time.
    let resp = client()
        .post(sb.hubstaff_token_url())
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", second.refresh.as_str()),
            ("client_id", HUBSTAFF_DEMO_CLIENT_ID),
            ("client_secret", HUBSTAFF_DEMO_CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    let resp = hubstaff_get(&sb, &second.access, "/organizations", &[])
        .send()
        .await
        .unwrap();
    let (status, body) = json(resp).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["organizations"][0]["id"].as_u64(),
        Some(HUBSTAFF_ORGANIZATION_ID)
    );
    assert_eq!(body["organizations"][0]["status"], "active");
    sb.stop().await;
}

#[tokio::test]
async fn token_errors_and_unknown_clients() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let c = client();
    let code = hubstaff_code(&sb, &c).await;
    let resp = c
        .post(sb.hubstaff_token_url())
        .basic_auth(HUBSTAFF_DEMO_CLIENT_ID, Some("wrong"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
        ])
        .send()
        .await
        .unwrap();
    let (status, body) = json(resp).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );

    let resp = c
        .get(sb.hubstaff_authorize_url())
        .query(&[
            ("client_id", "nobody"),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT_URI),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    let (status, discovery) = json(
        c.get(format!(
            "{}/.well-known/openid-configuration",
            sb.hubstaff_account_url()
        ))
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(discovery["token_endpoint"], sb.hubstaff_token_url());
    sb.stop().await;
}

#[tokio::test]
async fn unauthenticated_and_expired_requests_get_401() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let tokens = hubstaff_tokens(&sb).await;

    let (status, body) = json(
        client()
            .get(format!("{}/organizations", sb.hubstaff_api_url()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        (body["code"].as_str(), body["error_code"].as_u64()),
        (Some("not_authorized"), Some(10001))
    );

    sb.hubstaff().expire_all_access_tokens();
    let (status, body) = json(
        hubstaff_get(&sb, &tokens.access, "/organizations", &[])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_token");

    sb.hubstaff().revoke_all_tokens();
    let (status, body) = json(hubstaff_refresh(&sb, &tokens.refresh).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    sb.stop().await;
}

#[tokio::test]
async fn members_page_until_pagination_is_absent_and_omit_missing_emails() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let tokens = hubstaff_tokens(&sb).await;
    let query = [
        ("include[]", "users"),
        ("include_removed", "true"),
        ("page_limit", "1"),
    ];
    let pages = all_pages(&sb, &tokens.access, &org_path("/members"), &query).await;
    assert_eq!(pages.len(), 4);
    assert!(pages.last().unwrap().get("pagination").is_none());
    assert!(pages[..3].iter().all(|p| p.get("pagination").is_some()));

    let members: Vec<&Value> = pages
        .iter()
        .flat_map(|p| p["members"].as_array().unwrap())
        .collect();
    let users: Vec<&Value> = pages
        .iter()
        .flat_map(|p| p["users"].as_array().unwrap())
        .collect();
    assert_eq!(members.len(), 4);
    assert_eq!(
        members
            .iter()
            .map(|m| m["user_id"].as_u64())
            .collect::<HashSet<_>>()
            .len(),
        4
    );
    for m in &members {
        for key in [
            "user_id",
            "membership_role",
            "membership_status",
            "removed_at",
        ] {
            assert!(m.get(key).is_some(), "{key}: {m}");
        }
    }
    let by_name = |name: &str| *users.iter().find(|u| u["name"] == name).unwrap();
    let finn = by_name("Finn Fieldworker");
    assert!(finn.get("email").is_none(), "no email key at all: {finn}");
    assert_eq!(by_name("Bob Builder")["email"], " BOB.builder@acme.test ");
    for key in [
        "id",
        "name",
        "first_name",
        "last_name",
        "time_zone",
        "status",
    ] {
        assert!(finn.get(key).is_some(), "{key}");
    }
    let gus_id = by_name("Gus Gone")["id"].clone();
    let gus = members.iter().find(|m| m["user_id"] == gus_id).unwrap();
    assert!(gus["removed_at"].is_string());
    assert!(
        members
            .iter()
            .filter(|m| m["user_id"] != gus_id)
            .all(|m| m["removed_at"].is_null())
    );
    let ada = members
        .iter()
        .find(|m| m["membership_role"] == "owner")
        .unwrap();
    assert_eq!(by_name("Ada Admin")["id"], ada["user_id"]);

    // Removed members only with include_removed; users only with include[]=users.
    let (_, body) = json(
        hubstaff_get(&sb, &tokens.access, &org_path("/members"), &[])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body["members"].as_array().unwrap().len(), 3);
    assert!(body.get("users").is_none() && body.get("pagination").is_none());

    sb.hubstaff()
        .remove_member(by_name("Bob Builder")["id"].as_u64().unwrap());
    let (_, body) = json(
        hubstaff_get(&sb, &tokens.access, &org_path("/members"), &[])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body["members"].as_array().unwrap().len(), 2);

    let (status, body) = json(
        hubstaff_get(&sb, &tokens.access, "/organizations/1/members", &[])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "not_found");
    sb.stop().await;
}

#[tokio::test]
async fn projects_filter_by_status() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let tokens = hubstaff_tokens(&sb).await;
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
    let get = |status: Option<&'static str>| {
        let q: Vec<(&str, &str)> = status.map(|s| ("status", s)).into_iter().collect();
        hubstaff_get(&sb, &tokens.access, &org_path("/projects"), &q).send()
    };
    let (_, body) = json(get(None).await.unwrap()).await;
    assert_eq!(
        names(&body),
        ["Research", "Support Desk"],
        "active by default"
    );
    let (_, body) = json(get(Some("all")).await.unwrap()).await;
    assert_eq!(names(&body), ["Legacy", "Research", "Support Desk"]);
    let p = &body["projects"][0];
    for key in ["id", "name", "status", "client_id"] {
        assert!(p.get(key).is_some(), "{key}");
    }
    let (_, body) = json(get(Some("archived")).await.unwrap()).await;
    assert_eq!(names(&body), ["Legacy"]);
    let (status, body) = json(get(Some("deleted")).await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!((11000..12000).contains(&body["error_code"].as_u64().unwrap()));
    sb.stop().await;
}

#[tokio::test]
async fn daily_activities_validate_the_window_and_stop_is_inclusive() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let tokens = hubstaff_tokens(&sb).await;
    let today = Utc::now().date_naive();
    let daily = |start: NaiveDate, stop: NaiveDate| {
        let (start, stop) = (start.to_string(), stop.to_string());
        let req = hubstaff_get(
            &sb,
            &tokens.access,
            &org_path("/activities/daily"),
            &[
                ("date[start]", &start),
                ("date[stop]", &stop),
                ("page_limit", "500"),
            ],
        );
        async move { json(req.send().await.unwrap()).await }
    };

    // 32 days counting both ends is too long; 31 is fine.
    let (status, body) = daily(today - Days::new(31), today).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        (11000..12000).contains(&body["error_code"].as_u64().unwrap()),
        "{body}"
    );
    assert!(body["code"].is_string() && body["error"].is_string());
    let (status, _) = daily(today - Days::new(30), today).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = daily(today, today - Days::new(1)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    for query in [
        vec![("date[start]", "2025-01-01")],
        vec![("date[stop]", "2025-01-01")],
        vec![],
        vec![("date[start]", "yesterday"), ("date[stop]", "2025-01-01")],
        vec![
            ("date[start]", "2025-01-01"),
            ("date[stop]", "2025-01-02"),
            ("page_limit", "501"),
        ],
        vec![
            ("date[start]", "2025-01-01"),
            ("date[stop]", "2025-01-02"),
            ("page_start_id", "-1"),
        ],
        vec![
            ("date[start]", "2025-01-01"),
            ("date[stop]", "2025-01-02"),
            ("project_ids[]", "x"),
        ],
    ] {
        let (status, body) = json(
            hubstaff_get(&sb, &tokens.access, &org_path("/activities/daily"), &query)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query:?}");
        assert!(
            (11000..12000).contains(&body["error_code"].as_u64().unwrap()),
            "{body}"
        );
    }

    // A row dated exactly date[stop] is included.
    let h = sb.hubstaff();
    let ada = h.find_user("ADA@acme.test").unwrap();
    let research = h.find_project("Research").unwrap();
    let edge = today + Days::new(5);
    let id = h.set_daily(ada, research, None, edge, 3600).unwrap();
    let (_, body) = daily(edge - Days::new(2), edge).await;
    let rows = body["daily_activities"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["id"].as_u64(), Some(id));
    assert_eq!(rows[0]["date"], edge.to_string());
    assert!(rows[0]["task_id"].is_null());
    let keys: HashSet<&str> = rows[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, DAILY_FIELDS.into_iter().collect());

    // Upsert, then tracked 0 deletes the row.
    assert_eq!(h.set_daily(ada, research, None, edge, 7200), Some(id));
    let (_, body) = daily(edge, edge).await;
    assert_eq!(body["daily_activities"][0]["tracked"], 7200);
    assert_eq!(h.set_daily(ada, research, None, edge, 0), None);
    let (_, body) = daily(edge, edge).await;
    assert!(body["daily_activities"].as_array().unwrap().is_empty());
    sb.stop().await;
}

#[tokio::test]
async fn daily_activities_page_by_id_and_side_load_users() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let tokens = hubstaff_tokens(&sb).await;
    let today = Utc::now().date_naive();
    let (start, stop) = ((today - Days::new(30)).to_string(), today.to_string());
    let window = [
        ("date[start]", start.as_str()),
        ("date[stop]", stop.as_str()),
    ];

    let mut q = window.to_vec();
    q.extend([("include[]", "users"), ("page_limit", "25")]);
    let pages = all_pages(&sb, &tokens.access, &org_path("/activities/daily"), &q).await;
    assert!(pages.len() > 2, "demo data spans several pages");
    let rows: Vec<&Value> = pages
        .iter()
        .flat_map(|p| p["daily_activities"].as_array().unwrap())
        .collect();
    let ids: Vec<u64> = rows.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ascending ids, each once"
    );
    assert!(ids.iter().all(|id| *id > u64::from(u32::MAX)));
    assert!(
        rows.iter().any(|r| r["task_id"].is_null()) && rows.iter().any(|r| r["task_id"].is_u64())
    );
    let users: HashSet<&str> = pages
        .iter()
        .flat_map(|p| p["users"].as_array().unwrap())
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        users,
        HashSet::from(["Ada Admin", "Bob Builder", "Finn Fieldworker"])
    );

    // page_start_id is the first id of the next page.
    let (_, first) = json(
        hubstaff_get(
            &sb,
            &tokens.access,
            &org_path("/activities/daily"),
            &[window[0], window[1], ("page_limit", "25")],
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        first["pagination"]["next_page_start_id"].as_u64(),
        Some(ids[25])
    );
    assert!(first.get("users").is_none());

    // Org endpoint filtered by project_ids[] equals the project endpoint.
    let support = sb
        .hubstaff()
        .find_project("Support Desk")
        .unwrap()
        .to_string();
    let mut q = window.to_vec();
    q.extend([("project_ids[]", support.as_str()), ("page_limit", "500")]);
    let (_, by_org) = json(
        hubstaff_get(&sb, &tokens.access, &org_path("/activities/daily"), &q)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let mut q = window.to_vec();
    q.push(("page_limit", "500"));
    let path = format!("/projects/{support}/activities/daily");
    let (status, by_project) = json(
        hubstaff_get(&sb, &tokens.access, &path, &q)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(by_org["daily_activities"], by_project["daily_activities"]);
    let support_rows = by_org["daily_activities"].as_array().unwrap();
    assert!(
        !support_rows.is_empty()
            && support_rows.iter().all(|r| r["project_id"]
                .as_u64()
                .map(|id| id.to_string())
                .as_deref()
                == Some(support.as_str()))
    );

    let both = [("project_ids[]", support.as_str()), ("project_ids[]", "1")];
    let mut q = window.to_vec();
    q.extend(both);
    q.push(("page_limit", "500"));
    let (_, two) = json(
        hubstaff_get(&sb, &tokens.access, &org_path("/activities/daily"), &q)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        two["daily_activities"], by_org["daily_activities"],
        "repeated keys are all read"
    );

    let (status, _) = json(
        hubstaff_get(&sb, &tokens.access, "/projects/1/activities/daily", &window)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    sb.stop().await;
}

#[tokio::test]
async fn rate_limit_is_shared_by_all_tokens_of_one_oauth_client() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let a = hubstaff_tokens(&sb).await;
    let b = hubstaff_tokens(&sb).await;
    sb.hubstaff().set_rate_limit(2, Duration::from_secs(3600));
    for t in [&a, &b] {
        assert_eq!(
            hubstaff_get(&sb, &t.access, "/organizations", &[])
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
    }
    let resp = hubstaff_get(&sb, &a.access, "/organizations", &[])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3500..=3600).contains(&retry), "{retry}");
    let (_, body) = json(resp).await;
    assert!((13000..14000).contains(&body["error_code"].as_u64().unwrap()));

    // Another OAuth application has its own budget.
    let h = sb.hubstaff();
    h.register_client("other-app", "other-secret");
    let c = client();
    let pairs = authorize(
        &c,
        &sb.hubstaff_authorize_url(),
        &[
            ("client_id", "other-app"),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT_URI),
        ],
    )
    .await;
    let code = pair(&pairs, "code").unwrap();
    let (_, body) = json(
        c.post(sb.hubstaff_token_url())
            .basic_auth("other-app", Some("other-secret"))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT_URI),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    let other = tokens_of(&body);
    assert_eq!(
        hubstaff_get(&sb, &other.access, "/organizations", &[])
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    sb.stop().await;
}

#[tokio::test]
async fn injected_faults_use_hubstaff_error_shapes() {
    let sb = Sandbox::start(Seed::Demo).await.unwrap();
    let h = sb.hubstaff();
    let tokens = hubstaff_tokens(&sb).await;
    let get = || hubstaff_get(&sb, &tokens.access, "/users/me", &[]).send();

    h.fail_next(1, 500);
    let (status, body) = json(get().await.unwrap()).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body["code"].is_string() && body["error_code"].is_u64() && body["error"].is_string());
    h.rate_limit_next(1, 30);
    let resp = get().await.unwrap();
    assert_eq!(
        (
            resp.status(),
            resp.headers()["retry-after"].to_str().unwrap()
        ),
        (StatusCode::TOO_MANY_REQUESTS, "30")
    );
    h.malformed_next(1);
    let text = get().await.unwrap().text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err());
    let (status, me) = json(get().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["user"]["email"], "ada@acme.test");
    assert_eq!(h.request_count(), 4);
    sb.stop().await;
}

#[tokio::test]
async fn empty_seed_has_the_organization_but_no_data() {
    let sb = Sandbox::start(Seed::Empty).await.unwrap();
    let h = sb.hubstaff();
    h.register_client(HUBSTAFF_DEMO_CLIENT_ID, HUBSTAFF_DEMO_CLIENT_SECRET);
    let tokens = hubstaff_tokens(&sb).await;
    let (_, body) = json(
        hubstaff_get(&sb, &tokens.access, &org_path("/members"), &[])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(body["members"].as_array().unwrap().is_empty());
    let u = h.add_user("Solo Person", None);
    let p = h.add_project("Only", "active");
    h.set_daily(u, p, Some(9), Utc::now().date_naive(), 600);
    assert_eq!(h.daily_count(), 1);
    assert_eq!(h.organization_id(), HUBSTAFF_ORGANIZATION_ID);
    let (_, body) = json(
        hubstaff_get(
            &sb,
            &tokens.access,
            &org_path("/members"),
            &[("include[]", "users")],
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(body["members"][0]["membership_role"], "owner");
    assert!(body["users"][0].get("email").is_none());
    sb.stop().await;
}
