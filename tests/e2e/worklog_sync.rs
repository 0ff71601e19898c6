//! Harvest and Hubstaff work logs in, end to end through the HTTP API: connect → authorize →
//! callback → link remote projects → reset-and-sync → work logs, assignments and missing people;
//! the options; edits and deletions in the provider; clear; disconnect; faults.

use std::time::Duration;

use chrono::{NaiveDate, Utc};
use hourbridge_domain::RunState;
use hourbridge_sandbox::{NewHarvestEntry, Sandbox, Seed};
use hourbridge_sync::runs::Outcome;
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
    world_with_workers(true).await
}

/// A world whose server runs its in-process worker and scheduler (`workers`), or not: then
/// queued runs wait for the test to execute them.
pub(crate) async fn world_with_workers(workers: bool) -> World {
    let sb = Sandbox::start(Seed::Empty).await.expect("sandbox");
    sb.harvest().register_client("hv-client", "hv-secret");
    sb.hubstaff().register_client("hs-client", "hs-secret");
    let (dir, path) = data_dir();
    let s = if workers {
        Server::start_with(&path, &sandbox_vars(&sb)).await
    } else {
        Server::start_idle(&path, &sandbox_vars(&sb)).await
    };
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

/// The Harvest account most tests below start from, connected through the real OAuth flow, with
/// a host project linked to "Fleet Portal" and "Mobile App" (trim and prevent off).
struct Linked {
    w: World,
    pid: String,
    other: u64,
    /// The four entries a sync brings in (linked, from `sync_from` on, stopped, person matched),
    /// in id order: Ada on Fleet, Bob on Fleet, Ada on Mobile, Bob on Mobile.
    expected: [u64; 4],
    /// Ada's running timer on Mobile App (today).
    running: u64,
    /// Host id of Bob.
    bob: String,
}

impl Linked {
    fn expected_ids(&self) -> Vec<String> {
        self.expected.iter().map(u64::to_string).collect()
    }
}

async fn harvest_linked() -> Linked {
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
    let expected = [
        hv.add_time_entry(hv_entry(fleet, ada_r, 10, 1.5)),
        hv.add_time_entry(hv_entry(fleet, bob_r, 20, 2.0)),
        hv.add_time_entry(hv_entry(mobile, ada_r, 5, 0.25)),
        hv.add_time_entry(hv_entry(mobile, bob_r, 30, 3.47)),
    ];
    assert!(expected.is_sorted(), "sandbox ids only grow");
    hv.add_time_entry(hv_entry(fleet, dee_r, 3, 1.0)); // Dee has no host person.
    hv.add_time_entry(hv_entry(other, ada_r, 3, 1.0)); // Not linked.
    hv.add_time_entry(hv_entry(fleet, ada_r, 70, 1.0)); // Before sync_from.
    let running = hv.add_time_entry(NewHarvestEntry {
        is_running: true,
        ..hv_entry(mobile, ada_r, 0, 0.5)
    });

    connect(&w, "harvest", "hv-client", "hv-secret").await;
    person(&w, "Ada Admin", "ADA@acme.test ").await;
    let bob = person(&w, "Bob Builder", "bob.builder@acme.test").await;
    let pid = project(&w, "Bridge").await;
    link(
        &w,
        &pid,
        "harvest",
        &[fleet.to_string(), mobile.to_string()],
        false,
        false,
    )
    .await;
    Linked {
        w,
        pid,
        other,
        expected,
        running,
        bob,
    }
}

/// [`harvest_linked`] after a first reset-and-sync.
async fn harvest_synced() -> (Linked, Value) {
    let h = harvest_linked().await;
    let run = reset(&h.w, &h.pid, "harvest", "refetch").await;
    assert_eq!(run["state"], "succeeded", "{run}");
    (h, run)
}

fn counts(run: &Value) -> (Option<u64>, Option<u64>, Option<u64>) {
    (
        run["counts"]["created"].as_u64(),
        run["counts"]["updated"].as_u64(),
        run["counts"]["deleted"].as_u64(),
    )
}

async fn link_view(w: &World, pid: &str) -> Value {
    let (st, l) =
        w.s.call(
            Some(&w.owner),
            GET,
            &format!("/v1/projects/{pid}/integrations/harvest"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{l}");
    l
}

#[tokio::test]
async fn remote_projects_are_searched_by_name_and_have_string_ids() {
    let w = world().await;
    let hv = w.sb.harvest();
    let fleet = hv.add_project("Fleet Portal", "Northwind", true);
    hv.add_project("Mobile App", "Northwind", true);
    connect(&w, "harvest", "hv-client", "hv-secret").await;
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
}

#[tokio::test]
async fn a_preview_before_the_first_sync_counts_creations_and_writes_nothing() {
    let h = harvest_linked().await;
    let path = format!("/v1/projects/{}/integrations/harvest/reset-and-sync", h.pid);
    let (st, preview) =
        h.w.s
            .call(
                Some(&h.w.owner),
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
    assert!(logs(&h.w, &h.pid).await.is_empty());
}

#[tokio::test]
async fn reset_and_sync_brings_in_linked_stopped_entries_from_sync_from_of_matched_people() {
    let (h, run) = harvest_synced().await;
    // Not synced: Dee (no host person), the unlinked project, before sync_from, the running timer.
    assert_eq!(run["counts"]["created"], 4, "{run}");
    let synced = logs(&h.w, &h.pid).await;
    assert_eq!(remote_ids(synced.clone()), h.expected_ids());
    // People matched by e-mail, trimmed and case-insensitive; hours become minutes.
    let bobs: Vec<&Value> = synced
        .iter()
        .filter(|l| l["person_id"] == h.bob.as_str())
        .collect();
    assert_eq!(
        bobs.iter()
            .map(|l| l["minutes"].as_u64().unwrap())
            .sum::<u64>(),
        120 + 208
    );
    assert!(synced.iter().all(|l| l["source"]["provider"] == "harvest"));
}

#[tokio::test]
async fn people_without_a_host_person_are_reported_and_synced_once_they_exist() {
    let (h, run) = harvest_synced().await;
    assert!(
        run["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["code"] == "person_not_found"),
        "{run}"
    );
    let l = link_view(&h.w, &h.pid).await;
    assert_eq!(
        l["missing_people"],
        json!([{"name": "Dee Designer", "email": "dee@elsewhere.test"}]),
        "{l}"
    );
    person(&h.w, "Dee Designer", "dee@elsewhere.test").await;
    let run = reset(&h.w, &h.pid, "harvest", "refetch").await;
    assert_eq!(counts(&run), (Some(1), Some(0), Some(0)), "{run}");
    assert_eq!(link_view(&h.w, &h.pid).await["missing_people"], json!([]));
}

#[tokio::test]
async fn a_sync_shows_succeeded_on_the_link_and_the_connection() {
    let (h, _) = harvest_synced().await;
    let l = link_view(&h.w, &h.pid).await;
    assert_eq!(l["status"]["kind"], "succeeded", "{l}");
    let (_, c) =
        h.w.s
            .call(Some(&h.w.owner), GET, "/v1/connections/harvest", None)
            .await;
    assert_eq!(c["status"]["kind"], "succeeded", "{c}");
}

#[tokio::test]
async fn without_trim_each_synced_person_gets_one_assignment_spanning_the_project() {
    let (h, _) = harvest_synced().await;
    let a = assignments(&h.w, &h.pid).await;
    assert_eq!(a.len(), 2, "{a:?}");
    assert!(
        a.iter()
            .all(|a| a["start_date"] == days_ago(90).to_string())
    );
}

#[tokio::test]
async fn synced_work_logs_are_read_only() {
    let (h, _) = harvest_synced().await;
    let synced = logs(&h.w, &h.pid).await;
    let lid = synced[0]["id"].as_str().unwrap();
    let (st, _) =
        h.w.s
            .call(
                Some(&h.w.owner),
                Method::PATCH,
                &format!("/v1/worklogs/{lid}"),
                Some(json!({"minutes": 1})),
            )
            .await;
    assert_eq!(st, StatusCode::CONFLICT);
}

#[tokio::test]
async fn a_rerun_with_no_changes_writes_no_work_log() {
    let (h, _) = harvest_synced().await;
    let before: Vec<Value> = logs(&h.w, &h.pid).await;
    let run = reset(&h.w, &h.pid, "harvest", "refetch").await;
    assert_eq!(counts(&run), (Some(0), Some(0), Some(0)), "{run}");
    assert_eq!(run["counts"]["unchanged"], 4);
    assert_eq!(logs(&h.w, &h.pid).await, before);
}

#[tokio::test]
async fn reset_and_sync_updates_entries_edited_in_harvest() {
    let (h, _) = harvest_synced().await;
    h.w.sb
        .harvest()
        .update_time_entry(h.expected[0], Some(4.0), Some("edited".into()), None, None);
    let run = reset(&h.w, &h.pid, "harvest", "refetch").await;
    assert_eq!(counts(&run), (Some(0), Some(1), Some(0)), "{run}");
    let after = logs(&h.w, &h.pid).await;
    let edited = after
        .iter()
        .find(|l| l["source"]["remote_id"].as_str() == Some(h.expected[0].to_string().as_str()))
        .unwrap();
    assert_eq!(
        (edited["minutes"].as_u64(), edited["note"].as_str()),
        (Some(240), Some("edited"))
    );
}

#[tokio::test]
async fn reset_and_sync_removes_entries_deleted_in_harvest() {
    let (h, _) = harvest_synced().await;
    h.w.sb.harvest().delete_time_entry(h.expected[1]);
    let run = reset(&h.w, &h.pid, "harvest", "refetch").await;
    assert_eq!(counts(&run), (Some(0), Some(0), Some(1)), "{run}");
    let mut left = h.expected_ids();
    left.remove(1);
    assert_eq!(remote_ids(logs(&h.w, &h.pid).await), left);
}

#[tokio::test]
async fn reset_and_sync_removes_entries_moved_to_an_unlinked_project() {
    let (h, _) = harvest_synced().await;
    h.w.sb.harvest().move_time_entry(h.expected[2], h.other);
    let run = reset(&h.w, &h.pid, "harvest", "refetch").await;
    assert_eq!(counts(&run), (Some(0), Some(0), Some(1)), "{run}");
    let mut left = h.expected_ids();
    left.remove(2);
    assert_eq!(remote_ids(logs(&h.w, &h.pid).await), left);
}

#[tokio::test]
async fn a_running_timer_is_synced_once_it_is_stopped() {
    let (h, _) = harvest_synced().await;
    h.w.sb
        .harvest()
        .update_time_entry(h.running, Some(0.75), None, None, Some(false));
    let run = reset(&h.w, &h.pid, "harvest", "refetch").await;
    assert_eq!(counts(&run), (Some(1), Some(0), Some(0)), "{run}");
    let after = logs(&h.w, &h.pid).await;
    let stopped = after
        .iter()
        .find(|l| l["source"]["remote_id"].as_str() == Some(h.running.to_string().as_str()))
        .expect("the stopped timer is synced");
    assert_eq!(stopped["minutes"], 45);
}

#[tokio::test]
async fn wipe_mode_deletes_the_synced_logs_and_reads_the_same_data_again() {
    let (h, _) = harvest_synced().await;
    let before = remote_ids(logs(&h.w, &h.pid).await);
    let run = reset(&h.w, &h.pid, "harvest", "wipe").await;
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(run["counts"]["deleted"], run["counts"]["created"], "{run}");
    assert_eq!(run["counts"]["created"], 4, "{run}");
    assert_eq!(remote_ids(logs(&h.w, &h.pid).await), before);
}

#[tokio::test]
async fn sync_now_runs_the_connection_and_succeeds() {
    let (h, _) = harvest_synced().await;
    let (st, r) =
        h.w.s
            .call(Some(&h.w.owner), POST, "/v1/connections/harvest/sync", None)
            .await;
    assert_eq!(st, StatusCode::ACCEPTED);
    assert_eq!(
        wait_run(&h.w, r["run_id"].as_str().unwrap()).await["state"],
        "succeeded"
    );
}

#[tokio::test]
async fn clear_deletes_every_log_synced_from_the_provider_on_the_project() {
    let (h, _) = harvest_synced().await;
    let synced = logs(&h.w, &h.pid).await;
    let (st, cleared) =
        h.w.s
            .call(
                Some(&h.w.owner),
                POST,
                &format!("/v1/projects/{}/integrations/harvest/clear", h.pid),
                None,
            )
            .await;
    assert_eq!(
        (st, cleared["deleted"].as_u64()),
        (StatusCode::OK, Some(synced.len() as u64))
    );
    assert!(logs(&h.w, &h.pid).await.is_empty());
}

#[tokio::test]
async fn disconnect_deletes_the_connection() {
    let (h, _) = harvest_synced().await;
    let (st, _) =
        h.w.s
            .call(Some(&h.w.owner), DELETE, "/v1/connections/harvest", None)
            .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) =
        h.w.s
            .call(Some(&h.w.owner), GET, "/v1/connections/harvest", None)
            .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
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
    big_harvest_world_with_workers(n, true).await
}

async fn big_harvest_world_with_workers(n: usize, workers: bool) -> (World, String, u64) {
    let w = world_with_workers(workers).await;
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

async fn run_view(w: &World, run_id: &str) -> Value {
    let (st, run) =
        w.s.call(Some(&w.owner), GET, &format!("/v1/runs/{run_id}"), None)
            .await;
    assert_eq!(st, StatusCode::OK, "{run}");
    run
}

#[tokio::test]
async fn a_worker_killed_mid_run_resumes_and_ends_with_the_same_result() {
    // No in-process worker: the only executors of the run are the two this test drives, so the
    // one killed is the one that held the lease.
    let (w, pid, _) = big_harvest_world_with_workers(9000, false).await;
    let hv = w.sb.harvest();
    hv.set_latency(Duration::from_millis(100));
    // The engine used directly, with a short lease, so the "process" can be killed and its
    // lease lapses quickly.
    let mut engine = w.s.ctx.engine.clone();
    engine.settings.lease_ttl = chrono::Duration::seconds(2);
    let (st, r) =
        w.s.call(
            Some(&w.owner),
            POST,
            &format!("/v1/projects/{pid}/integrations/harvest/reset-and-sync"),
            Some(json!({"mode": "refetch"})),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{r}");
    let run_id = r["run_id"].as_str().unwrap().to_owned();
    assert_eq!(
        run_view(&w, &run_id).await["state"],
        "queued",
        "nobody else executes it"
    );
    let job = hourbridge_sync::SyncJob {
        workspace_id: "acme".into(),
        provider: "harvest".into(),
        run_id: run_id.clone(),
    };
    let killed = tokio::spawn({
        let engine = engine.clone();
        let job = job.clone();
        async move { engine.execute(&job, None).await }
    });
    // Kill it once it has checkpointed at least one page, well before the end.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let before = loop {
        let r = run_view(&w, &run_id).await;
        if r["state"] == "running" && r["counts"]["created"].as_u64() > Some(0) {
            break r;
        }
        assert!(
            !killed.is_finished(),
            "the worker ended before it could be killed: {r}"
        );
        assert!(std::time::Instant::now() < deadline, "no progress: {r}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    killed.abort();
    assert!(
        killed.await.expect_err("aborted").is_cancelled(),
        "the worker was killed mid-run, not finished"
    );
    let created_before = before["counts"]["created"].as_u64().unwrap();
    assert!(created_before < 9000, "killed mid-run: {before}");
    let after_kill = run_view(&w, &run_id).await;
    assert_eq!(after_kill["state"], "running", "{after_kill}");
    hv.set_latency(Duration::ZERO);

    // The killed worker held the lease: another executor is turned away until it lapses...
    assert!(
        matches!(
            engine.execute(&job, None).await.unwrap(),
            Outcome::RetryAfter(_)
        ),
        "the killed worker's lease must still be held"
    );
    // ...and then takes the run over where it stopped.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let outcome = loop {
        match engine.execute(&job, None).await.unwrap() {
            Outcome::Finished(state) => break state,
            Outcome::Paused => {}
            Outcome::RetryAfter(wait) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the killed worker's lease never lapsed"
                );
                tokio::time::sleep(wait.min(Duration::from_millis(200))).await;
            }
        }
    };
    assert_eq!(outcome, RunState::Succeeded);
    let resumed = run_view(&w, &run_id).await;
    assert_eq!(resumed["state"], "succeeded", "{resumed}");
    assert_eq!(
        resumed["started_at"], before["started_at"],
        "the same run resumed, it was not started over"
    );
    let c = &resumed["counts"];
    assert!(
        c["created"].as_u64().unwrap() >= created_before,
        "{resumed}"
    );
    assert_eq!(
        c["created"].as_u64().unwrap() + c["unchanged"].as_u64().unwrap(),
        9000,
        "each entry counted once across the kill: {resumed}"
    );
    let (total, ids) = count_logs(&w, &pid).await;
    assert_eq!(
        (total, ids.len()),
        (9000, 9000),
        "nothing lost, nothing doubled"
    );
    // A normal worker from now on: an unchanged re-run writes nothing.
    assert!(w.s.ctx.start_local_workers().is_some());
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
