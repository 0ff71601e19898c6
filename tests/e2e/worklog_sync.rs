//! Harvest and Hubstaff work logs in, end to end through the HTTP API: connect → authorize →
//! callback → link remote projects → reset-and-sync → work logs, assignments and missing people;
//! the options; edits and deletions in the provider; clear; disconnect; faults.

use std::time::Duration;

use chrono::{NaiveDate, Utc};
use hourbridge_sandbox::{NewHarvestEntry, Sandbox, Seed};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Server, data_dir};

const POST: Method = Method::POST;
const GET: Method = Method::GET;
const PUT: Method = Method::PUT;
const DELETE: Method = Method::DELETE;

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

pub(crate) fn days_ago(n: i64) -> NaiveDate {
    today() - chrono::Duration::days(n)
}

fn sandbox_vars(sb: &Sandbox) -> Vec<(&'static str, String)> {
    vec![
        ("HOURBRIDGE_HARVEST_API_URL", sb.harvest_api_url()),
        ("HOURBRIDGE_HARVEST_ID_URL", sb.harvest_id_url()),
        ("HOURBRIDGE_HUBSTAFF_API_URL", sb.hubstaff_api_url()),
        ("HOURBRIDGE_HUBSTAFF_ACCOUNT_URL", sb.hubstaff_account_url()),
    ]
}

pub(crate) struct World {
    _dir: tempfile::TempDir,
    pub(crate) sb: Sandbox,
    pub(crate) s: Server,
    pub(crate) owner: String,
}

pub(crate) async fn world() -> World {
    let sb = Sandbox::start(Seed::Empty).await.expect("sandbox");
    sb.harvest().register_client("hv-client", "hv-secret");
    sb.hubstaff().register_client("hs-client", "hs-secret");
    let (dir, path) = data_dir();
    let s = Server::start_with(&path, &sandbox_vars(&sb)).await;
    let owner = s.token("acme", "olga", "owner");
    let body = json!({"name": "Acme", "owner": {"name": "Olga", "email": "olga@acme.test"}});
    assert_eq!(
        s.call(Some(&owner), POST, "/v1/workspaces", Some(body))
            .await
            .0,
        StatusCode::CREATED
    );
    World {
        _dir: dir,
        sb,
        s,
        owner,
    }
}

/// Installs and authorizes `provider` through the real OAuth flow against the sandbox.
pub(crate) async fn connect(w: &World, provider: &str, client: &str, secret: &str) {
    let s = &w.s;
    let (st, c) = s
        .call(
            Some(&w.owner),
            PUT,
            &format!("/v1/connections/{provider}"),
            Some(json!({"client_id": client, "client_secret": secret})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{c}");
    assert_eq!(c["state"], "pending_authorization");
    assert_eq!(
        c["redirect_url"],
        format!("{}/oauth/{provider}/callback", s.base)
    );
    assert!(
        !c.to_string().contains(secret),
        "the client secret is never returned"
    );
    let (st, a) = s
        .call(
            Some(&w.owner),
            POST,
            &format!("/v1/connections/{provider}/authorize"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{a}");
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let consent = browser
        .get(a["authorize_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(consent.status(), StatusCode::FOUND);
    let back = consent.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        back.starts_with(&format!("{}/oauth/{provider}/callback?", s.base)),
        "{back}"
    );
    let done = browser.get(&back).send().await.unwrap();
    assert_eq!(
        done.status(),
        StatusCode::OK,
        "{}",
        done.text().await.unwrap_or_default()
    );
    // The state is single-use.
    let again = browser.get(&back).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    let (_, c) = s
        .call(
            Some(&w.owner),
            GET,
            &format!("/v1/connections/{provider}"),
            None,
        )
        .await;
    assert_eq!(c["state"], "active", "{c}");
    assert_eq!(c["status"]["kind"], "never_synced");
    assert!(c["next_run_at"].is_string(), "scheduled every 24 h: {c}");
}

pub(crate) async fn person(w: &World, name: &str, email: &str) -> String {
    let (st, p) =
        w.s.call(
            Some(&w.owner),
            POST,
            "/v1/people",
            Some(json!({"name": name, "email": email, "role": "member"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{p}");
    p["id"].as_str().unwrap().to_owned()
}

pub(crate) async fn project(w: &World, name: &str) -> String {
    let body = json!({"name": name, "start_date": days_ago(90).to_string(), "end_date": (today() + chrono::Duration::days(90)).to_string()});
    let (st, p) =
        w.s.call(Some(&w.owner), POST, "/v1/projects", Some(body))
            .await;
    assert_eq!(st, StatusCode::CREATED, "{p}");
    p["id"].as_str().unwrap().to_owned()
}

pub(crate) async fn link(
    w: &World,
    project: &str,
    provider: &str,
    remote: &[String],
    prevent: bool,
    trim: bool,
) {
    let body = json!({"remote_project_ids": remote, "sync_from": days_ago(60).to_string(), "prevent_new_assignments": prevent, "trim_assignments": trim});
    let (st, l) =
        w.s.call(
            Some(&w.owner),
            PUT,
            &format!("/v1/projects/{project}/integrations/{provider}"),
            Some(body),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{l}");
}

/// Starts a reset-and-sync and waits for the run to end.
async fn reset(w: &World, project: &str, provider: &str, mode: &str) -> Value {
    let path = format!("/v1/projects/{project}/integrations/{provider}/reset-and-sync");
    let (st, r) =
        w.s.call(Some(&w.owner), POST, &path, Some(json!({"mode": mode})))
            .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{r}");
    wait_run(w, r["run_id"].as_str().unwrap()).await
}

pub(crate) async fn wait_run(w: &World, run_id: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (st, run) =
            w.s.call(Some(&w.owner), GET, &format!("/v1/runs/{run_id}"), None)
                .await;
        assert_eq!(st, StatusCode::OK, "{run}");
        if run["state"] == "succeeded" || run["state"] == "failed" {
            return run;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "run did not finish: {run}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) async fn logs(w: &World, project: &str) -> Vec<Value> {
    let (_, page) =
        w.s.call(
            Some(&w.owner),
            GET,
            &format!("/v1/worklogs?project_id={project}&limit=1000"),
            None,
        )
        .await;
    page["items"].as_array().unwrap().clone()
}

async fn assignments(w: &World, project: &str) -> Vec<Value> {
    let (_, page) =
        w.s.call(
            Some(&w.owner),
            GET,
            &format!("/v1/projects/{project}/assignments"),
            None,
        )
        .await;
    page["items"].as_array().unwrap().clone()
}

fn remote_ids(mut logs: Vec<Value>) -> Vec<String> {
    let mut ids: Vec<String> = logs
        .drain(..)
        .map(|l| l["source"]["remote_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

pub(crate) fn hv_entry(project: u64, user: u64, days: i64, hours: f64) -> NewHarvestEntry {
    NewHarvestEntry {
        project_id: project,
        user_id: user,
        spent_date: days_ago(days),
        hours,
        notes: Some(format!("work {days}")),
        is_running: false,
    }
}

#[tokio::test]
async fn harvest_connect_link_two_projects_and_reset_and_sync_end_to_end() {
    let w = world().await;
    let hv = w.sb.harvest();
    let (ada_r, bob_r, dee_r) = (
        hv.add_user("Ada", "Admin", "ada@acme.test"),
        hv.add_user("Bob", "Builder", "Bob.Builder@Acme.test"),
        hv.add_user("Dee", "Designer", "dee@elsewhere.test"),
    );
    let (fleet, mobile, other) = (
        hv.add_project("Fleet Portal", "Northwind", true),
        hv.add_project("Mobile App", "Northwind", true),
        hv.add_project("Unlinked", "X", true),
    );
    let mut expected = [
        hv.add_time_entry(hv_entry(fleet, ada_r, 10, 1.5)),
        hv.add_time_entry(hv_entry(fleet, bob_r, 20, 2.0)),
        hv.add_time_entry(hv_entry(mobile, ada_r, 5, 0.25)),
        hv.add_time_entry(hv_entry(mobile, bob_r, 30, 3.47)),
    ];
    hv.add_time_entry(hv_entry(fleet, dee_r, 3, 1.0)); // Dee has no host person.
    hv.add_time_entry(hv_entry(other, ada_r, 3, 1.0)); // Not linked.
    hv.add_time_entry(hv_entry(fleet, ada_r, 70, 1.0)); // Before sync_from.
    let running = hv.add_time_entry(NewHarvestEntry {
        is_running: true,
        ..hv_entry(mobile, ada_r, 0, 0.5)
    });

    connect(&w, "harvest", "hv-client", "hv-secret").await;
    let ada = person(&w, "Ada Admin", "ADA@acme.test ").await;
    let bob = person(&w, "Bob Builder", "bob.builder@acme.test").await;
    let pid = project(&w, "Bridge").await;

    let (st, rp) =
        w.s.call(
            Some(&w.owner),
            GET,
            "/v1/connections/harvest/remote-projects?q=fleet",
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{rp}");
    assert_eq!(rp["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        rp["items"][0]["id"],
        fleet.to_string(),
        "remote ids are strings"
    );
    link(
        &w,
        &pid,
        "harvest",
        &[fleet.to_string(), mobile.to_string()],
        false,
        false,
    )
    .await;

    // Preview first: nothing is written.
    let path = format!("/v1/projects/{pid}/integrations/harvest/reset-and-sync");
    let (st, preview) =
        w.s.call(
            Some(&w.owner),
            POST,
            &path,
            Some(json!({"mode": "refetch", "preview": true})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{preview}");
    assert_eq!(
        (preview["created"].as_u64(), preview["deleted"].as_u64()),
        (Some(4), Some(0))
    );
    assert!(logs(&w, &pid).await.is_empty());

    let run = reset(&w, &pid, "harvest", "refetch").await;
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(run["counts"]["created"], 4, "{run}");
    assert!(
        run["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["code"] == "person_not_found")
    );
    let synced = logs(&w, &pid).await;
    expected.sort();
    assert_eq!(
        remote_ids(synced.clone()),
        expected.iter().map(u64::to_string).collect::<Vec<_>>()
    );
    let bobs: Vec<&Value> = synced
        .iter()
        .filter(|l| l["person_id"] == bob.as_str())
        .collect();
    assert_eq!(
        bobs.iter()
            .map(|l| l["minutes"].as_u64().unwrap())
            .sum::<u64>(),
        120 + 208
    );
    assert!(synced.iter().all(|l| l["source"]["provider"] == "harvest"));

    // Missing people are listed by name and e-mail on the project.
    let (_, l) =
        w.s.call(
            Some(&w.owner),
            GET,
            &format!("/v1/projects/{pid}/integrations/harvest"),
            None,
        )
        .await;
    assert_eq!(
        l["missing_people"],
        json!([{"name": "Dee Designer", "email": "dee@elsewhere.test"}]),
        "{l}"
    );
    assert_eq!(l["status"]["kind"], "succeeded");
    // One assignment per person spanning the project (trim off).
    let a = assignments(&w, &pid).await;
    assert_eq!(a.len(), 2, "{a:?}");
    assert!(
        a.iter()
            .all(|a| a["start_date"] == days_ago(90).to_string())
    );
    // Synced logs are read-only.
    let lid = synced[0]["id"].as_str().unwrap();
    let (st, _) =
        w.s.call(
            Some(&w.owner),
            Method::PATCH,
            &format!("/v1/worklogs/{lid}"),
            Some(json!({"minutes": 1})),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT);

    // A re-run with no changes writes nothing.
    let before: Vec<Value> = logs(&w, &pid).await;
    let run = reset(&w, &pid, "harvest", "refetch").await;
    assert_eq!(
        (
            run["counts"]["created"].as_u64(),
            run["counts"]["updated"].as_u64(),
            run["counts"]["deleted"].as_u64()
        ),
        (Some(0), Some(0), Some(0)),
        "{run}"
    );
    assert_eq!(run["counts"]["unchanged"], 4);
    assert_eq!(logs(&w, &pid).await, before);

    // Edits, deletions and moves in Harvest reach the host; a stopped timer is synced.
    hv.update_time_entry(expected[0], Some(4.0), Some("edited".into()), None, None);
    hv.delete_time_entry(expected[1]);
    hv.move_time_entry(expected[2], other);
    hv.update_time_entry(running, Some(0.75), None, None, Some(false));
    // Dee now exists in the host: her logs sync.
    person(&w, "Dee Designer", "dee@elsewhere.test").await;
    let run = reset(&w, &pid, "harvest", "refetch").await;
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(
        (
            run["counts"]["created"].as_u64(),
            run["counts"]["updated"].as_u64(),
            run["counts"]["deleted"].as_u64()
        ),
        (Some(2), Some(1), Some(2)),
        "{run}"
    );
    let after = logs(&w, &pid).await;
    let edited = after
        .iter()
        .find(|l| l["source"]["remote_id"].as_str() == Some(expected[0].to_string().as_str()))
        .unwrap();
    assert_eq!(
        (edited["minutes"].as_u64(), edited["note"].as_str()),
        (Some(240), Some("edited"))
    );
    assert!(after.iter().all(|l| l["source"]["remote_id"].as_str()
        != Some(expected[1].to_string().as_str())
        && l["source"]["remote_id"].as_str() != Some(expected[2].to_string().as_str())));
    let (_, l) =
        w.s.call(
            Some(&w.owner),
            GET,
            &format!("/v1/projects/{pid}/integrations/harvest"),
            None,
        )
        .await;
    assert_eq!(l["missing_people"], json!([]));

    // Wipe mode deletes and re-reads: same data afterwards.
    let run = reset(&w, &pid, "harvest", "wipe").await;
    assert_eq!(run["counts"]["deleted"], run["counts"]["created"], "{run}");
    assert_eq!(remote_ids(logs(&w, &pid).await), remote_ids(after.clone()));

    // Status and connection-level sync.
    let (_, c) =
        w.s.call(Some(&w.owner), GET, "/v1/connections/harvest", None)
            .await;
    assert_eq!(c["status"]["kind"], "succeeded", "{c}");
    let (st, r) =
        w.s.call(Some(&w.owner), POST, "/v1/connections/harvest/sync", None)
            .await;
    assert_eq!(st, StatusCode::ACCEPTED);
    assert_eq!(
        wait_run(&w, r["run_id"].as_str().unwrap()).await["state"],
        "succeeded"
    );

    // Clear data, then disconnect: logs gone after clear; connection gone after disconnect.
    let (st, cleared) =
        w.s.call(
            Some(&w.owner),
            POST,
            &format!("/v1/projects/{pid}/integrations/harvest/clear"),
            None,
        )
        .await;
    assert_eq!(
        (st, cleared["deleted"].as_u64()),
        (StatusCode::OK, Some(after.len() as u64))
    );
    assert!(logs(&w, &pid).await.is_empty());
    let (st, _) =
        w.s.call(Some(&w.owner), DELETE, "/v1/connections/harvest", None)
            .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) =
        w.s.call(Some(&w.owner), GET, "/v1/connections/harvest", None)
            .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let _ = ada;
}

#[tokio::test]
async fn prevent_new_assignments_syncs_only_people_already_assigned() {
    let w = world().await;
    let hv = w.sb.harvest();
    let (ada_r, bob_r) = (
        hv.add_user("Ada", "A", "ada@acme.test"),
        hv.add_user("Bob", "B", "bob@acme.test"),
    );
    let fleet = hv.add_project("Fleet", "C", true);
    let ada_e = hv.add_time_entry(hv_entry(fleet, ada_r, 4, 1.0));
    hv.add_time_entry(hv_entry(fleet, bob_r, 4, 1.0));
    connect(&w, "harvest", "hv-client", "hv-secret").await;
    let ada = person(&w, "Ada", "ada@acme.test").await;
    person(&w, "Bob", "bob@acme.test").await;
    let pid = project(&w, "P").await;
    let (st, _) =
        w.s.call(
            Some(&w.owner),
            POST,
            &format!("/v1/projects/{pid}/assignments"),
            Some(json!({"person_id": ada})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    link(&w, &pid, "harvest", &[fleet.to_string()], true, false).await;
    let run = reset(&w, &pid, "harvest", "refetch").await;
    assert_eq!(remote_ids(logs(&w, &pid).await), vec![ada_e.to_string()]);
    assert!(
        run["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["code"] == "not_assigned" && p["record"] == "Bob B"),
        "{run}"
    );
    assert_eq!(
        assignments(&w, &pid).await.len(),
        1,
        "no assignment created for Bob"
    );
}

#[tokio::test]
async fn trim_assignments_spans_first_to_last_synced_log_of_each_person() {
    let w = world().await;
    let hv = w.sb.harvest();
    let ada_r = hv.add_user("Ada", "A", "ada@acme.test");
    let fleet = hv.add_project("Fleet", "C", true);
    for d in [40, 12, 25] {
        hv.add_time_entry(hv_entry(fleet, ada_r, d, 1.0));
    }
    connect(&w, "harvest", "hv-client", "hv-secret").await;
    let ada = person(&w, "Ada", "ada@acme.test").await;
    let pid = project(&w, "P").await;
    link(&w, &pid, "harvest", &[fleet.to_string()], false, true).await;
    reset(&w, &pid, "harvest", "refetch").await;
    let a = assignments(&w, &pid).await;
    assert_eq!(a.len(), 1, "one assignment, not one per log: {a:?}");
    assert_eq!(
        (
            a[0]["person_id"].as_str(),
            a[0]["start_date"].as_str(),
            a[0]["end_date"].as_str()
        ),
        (
            Some(ada.as_str()),
            Some(days_ago(40).to_string().as_str()),
            Some(days_ago(12).to_string().as_str())
        )
    );
}

#[tokio::test]
async fn hubstaff_daily_activities_sync_with_rotating_refresh_tokens() {
    let w = world().await;
    let hs = w.sb.hubstaff();
    let (ada_r, finn_r) = (
        hs.add_user("Ada", Some(" ADA@acme.test ")),
        hs.add_user("Finn", None),
    );
    let (desk, research) = (
        hs.add_project("Support Desk", "active"),
        hs.add_project("Research", "active"),
    );
    hs.set_daily(ada_r, desk, Some(11), days_ago(3), 3600);
    hs.set_daily(ada_r, desk, None, days_ago(45), 1800); // an older window chunk
    hs.set_daily(ada_r, research, None, days_ago(2), 5400);
    hs.set_daily(finn_r, desk, None, days_ago(3), 600);
    // Every access token dies at once: each sync must refresh, and Hubstaff rotates refresh tokens.
    hs.set_access_token_ttl(Duration::from_secs(1));

    connect(&w, "hubstaff", "hs-client", "hs-secret").await;
    person(&w, "Ada", "ada@acme.test").await;
    let pid = project(&w, "Ops").await;
    link(
        &w,
        &pid,
        "hubstaff",
        &[desk.to_string(), research.to_string()],
        false,
        false,
    )
    .await;
    for round in 0..3 {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let run = reset(&w, &pid, "hubstaff", "refetch").await;
        assert_eq!(run["state"], "succeeded", "round {round}: {run}");
    }
    let synced = logs(&w, &pid).await;
    let mut minutes: Vec<u64> = synced
        .iter()
        .map(|l| l["minutes"].as_u64().unwrap())
        .collect();
    minutes.sort();
    assert_eq!(minutes, vec![30, 60, 90]);
    let (_, l) =
        w.s.call(
            Some(&w.owner),
            GET,
            &format!("/v1/projects/{pid}/integrations/hubstaff"),
            None,
        )
        .await;
    assert_eq!(
        l["missing_people"],
        json!([{"name": "Finn", "email": null}]),
        "{l}"
    );
    // A deleted day disappears from the host.
    hs.set_daily(ada_r, research, None, days_ago(2), 0);
    reset(&w, &pid, "hubstaff", "refetch").await;
    assert_eq!(logs(&w, &pid).await.len(), 2);
}

/// Builds a Harvest project with `n` entries over many pages, all by one matched person.
async fn big_harvest_world(n: usize) -> (World, String, u64) {
    let w = world().await;
    let hv = w.sb.harvest();
    let ada_r = hv.add_user("Ada", "A", "ada@acme.test");
    let fleet = hv.add_project("Fleet", "C", true);
    hv.bulk_time_entries(fleet, &[ada_r], n, days_ago(50), 45);
    connect(&w, "harvest", "hv-client", "hv-secret").await;
    person(&w, "Ada", "ada@acme.test").await;
    let pid = project(&w, "Big").await;
    link(&w, &pid, "harvest", &[fleet.to_string()], false, false).await;
    (w, pid, fleet)
}

async fn count_logs(w: &World, pid: &str) -> (usize, std::collections::HashSet<String>) {
    let mut ids = std::collections::HashSet::new();
    let mut total = 0;
    let mut path = format!("/v1/worklogs?project_id={pid}&limit=1000");
    loop {
        let (_, page) = w.s.call(Some(&w.owner), GET, &path, None).await;
        for l in page["items"].as_array().unwrap() {
            total += 1;
            ids.insert(l["source"]["remote_id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/worklogs?project_id={pid}&limit=1000&cursor={c}"),
            None => return (total, ids),
        }
    }
}

#[tokio::test]
async fn faults_429_storm_5xx_bursts_and_token_expiry_mid_sync_end_with_exactly_the_providers_data()
{
    let (w, pid, _) = big_harvest_world(5000).await;
    let hv = w.sb.harvest();
    hv.rate_limit_next(4, 1);
    let run = reset(&w, &pid, "harvest", "refetch").await;
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(count_logs(&w, &pid).await.0, 5000);

    hv.fail_next(3, 503);
    let run = reset(&w, &pid, "harvest", "wipe").await;
    assert_eq!(run["state"], "succeeded", "{run}");
    let (total, ids) = count_logs(&w, &pid).await;
    assert_eq!(
        (total, ids.len()),
        (5000, 5000),
        "nothing lost, nothing doubled"
    );

    // The token dies while the run pages through.
    hv.set_latency(Duration::from_millis(150));
    let hv2 = hv.clone();
    let killer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        hv2.expire_all_access_tokens();
    });
    let run = reset(&w, &pid, "harvest", "wipe").await;
    killer.await.unwrap();
    assert_eq!(run["state"], "succeeded", "{run}");
    let (total, ids) = count_logs(&w, &pid).await;
    assert_eq!((total, ids.len()), (5000, 5000));
}

#[tokio::test]
async fn a_revoked_connection_fails_the_run_with_reauth_required() {
    let (w, pid, _) = big_harvest_world(10).await;
    w.sb.harvest().revoke_all_tokens();
    w.sb.harvest().expire_all_access_tokens();
    let run = reset(&w, &pid, "harvest", "refetch").await;
    assert_eq!(
        (run["state"].as_str(), run["failure"].as_str()),
        (Some("failed"), Some("reauth_required")),
        "{run}"
    );
    let (_, c) =
        w.s.call(Some(&w.owner), GET, "/v1/connections/harvest", None)
            .await;
    assert_eq!(
        (c["state"].as_str(), c["status"]["kind"].as_str()),
        (Some("reauth_required"), Some("failed")),
        "{c}"
    );
    assert_eq!(c["status"]["reason"], "reauth_required");
}

#[tokio::test]
async fn malformed_provider_responses_fail_the_run_and_keep_what_was_synced() {
    let (w, pid, _) = big_harvest_world(3000).await;
    let run = reset(&w, &pid, "harvest", "refetch").await;
    assert_eq!(run["counts"]["created"], 3000);
    w.sb.harvest().malformed_next(50);
    let run = reset(&w, &pid, "harvest", "refetch").await;
    assert_eq!(
        (run["state"].as_str(), run["failure"].as_str()),
        (Some("failed"), Some("invalid_response")),
        "{run}"
    );
    assert_eq!(
        count_logs(&w, &pid).await.0,
        3000,
        "a failed run deletes nothing"
    );
}

#[tokio::test]
async fn a_worker_killed_mid_run_resumes_and_ends_with_the_same_result() {
    let (w, pid, _) = big_harvest_world(9000).await;
    let hv = w.sb.harvest();
    hv.set_latency(Duration::from_millis(100));
    // Use the engine directly so the "process" can be killed: its lease expires quickly.
    let mut engine = w.s.ctx.engine.clone();
    engine.settings.lease_ttl = chrono::Duration::seconds(1);
    let job_run = {
        let (st, r) =
            w.s.call(
                Some(&w.owner),
                POST,
                &format!("/v1/projects/{pid}/integrations/harvest/reset-and-sync"),
                Some(json!({"mode": "refetch"})),
            )
            .await;
        assert_eq!(st, StatusCode::ACCEPTED);
        r["run_id"].as_str().unwrap().to_owned()
    };
    // The in-process worker runs it too; kill our own executor mid-page and make sure the
    // run still ends exactly right whichever executor finishes it.
    let job = hourbridge_sync::SyncJob {
        workspace_id: "acme".into(),
        provider: "harvest".into(),
        run_id: job_run.clone(),
    };
    let killed = tokio::spawn({
        let engine = engine.clone();
        let job = job.clone();
        async move { engine.execute(&job, None).await }
    });
    tokio::time::sleep(Duration::from_millis(250)).await;
    killed.abort();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    hv.set_latency(Duration::ZERO);
    let _ = engine.execute(&job, None).await;
    let run = wait_run(&w, &job_run).await;
    assert_eq!(run["state"], "succeeded", "{run}");
    let (total, ids) = count_logs(&w, &pid).await;
    assert_eq!(
        (total, ids.len()),
        (9000, 9000),
        "nothing lost, nothing doubled"
    );
    let again = reset(&w, &pid, "harvest", "refetch").await;
    assert_eq!(
        (
            again["counts"]["created"].as_u64(),
            again["counts"]["deleted"].as_u64(),
            again["counts"]["unchanged"].as_u64()
        ),
        (Some(0), Some(0), Some(9000))
    );
}

#[tokio::test]
async fn connection_endpoints_enforce_roles_and_validate_input() {
    let w = world().await;
    let manager = w.s.token("acme", "m1", "manager");
    let (st, _) =
        w.s.call(
            Some(&manager),
            PUT,
            "/v1/connections/harvest",
            Some(json!({"client_id": "x", "client_secret": "y"})),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "only admins install");
    let (st, b) =
        w.s.call(
            Some(&w.owner),
            PUT,
            "/v1/connections/nosuch",
            Some(json!({"client_id": "x", "client_secret": "y"})),
        )
        .await;
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_provider"))
    );
    let (st, b) =
        w.s.call(
            Some(&w.owner),
            PUT,
            "/v1/connections/harvest",
            Some(json!({"client_id": "", "client_secret": "y"})),
        )
        .await;
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("required"))
    );
    let (st, b) =
        w.s.call(Some(&w.owner), POST, "/v1/connections/harvest/sync", None)
            .await;
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_connected"))
    );
    let browser = reqwest::Client::new();
    let res = browser
        .get(format!(
            "{}/oauth/harvest/callback?code=x&state=forged",
            w.s.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let pid = project(&w, "P").await;
    let (st, b) =
        w.s.call(
            Some(&manager),
            PUT,
            &format!("/v1/projects/{pid}/integrations/harvest"),
            Some(json!({"remote_project_ids": ["1"], "sync_from": "2026-01-01"})),
        )
        .await;
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("not_connected"))
    );
    let member = w.s.token("acme", "m2", "member");
    let (st, _) =
        w.s.call(
            Some(&member),
            POST,
            &format!("/v1/projects/{pid}/integrations/harvest/clear"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_login_with_several_harvest_accounts_lets_the_admin_choose_one() {
    let w = world().await;
    w.sb.harvest().set_accounts(vec![
        (1_000_001, "Acme Harvest".into(), "harvest"),
        (2_000_002, "Acme Consulting".into(), "harvest"),
        (3_000_003, "Acme Forecast".into(), "forecast"),
    ]);
    connect(&w, "harvest", "hv-client", "hv-secret").await;
    let (_, c) =
        w.s.call(Some(&w.owner), GET, "/v1/connections/harvest", None)
            .await;
    let ids: Vec<&str> = c["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["id"].as_str())
        .collect();
    assert_eq!(
        ids,
        ["1000001", "2000002"],
        "Forecast accounts are not offered: {c}"
    );
    assert_eq!(c["account"]["id"], "1000001");
    let (st, c) =
        w.s.call(
            Some(&w.owner),
            POST,
            "/v1/connections/harvest/account",
            Some(json!({"account_id": "2000002"})),
        )
        .await;
    assert_eq!(
        (
            st,
            c["account"]["id"].as_str(),
            c["account"]["name"].as_str()
        ),
        (StatusCode::OK, Some("2000002"), Some("Acme Consulting")),
        "{c}"
    );
    let (st, b) =
        w.s.call(
            Some(&w.owner),
            POST,
            "/v1/connections/harvest/account",
            Some(json!({"account_id": "3000003"})),
        )
        .await;
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request")),
        "a Forecast account cannot be chosen"
    );
    let manager = w.s.token("acme", "m", "manager");
    let (st, _) =
        w.s.call(
            Some(&manager),
            POST,
            "/v1/connections/harvest/account",
            Some(json!({"account_id": "1000001"})),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
}
