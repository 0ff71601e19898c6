//! `hourbridge serve` runs syncs, proved against the built binary the way a new user runs it:
//! `hourbridge sandbox` and `hourbridge serve` as processes on loopback, a fresh data directory,
//! and the README's Harvest calls over HTTP only — connect, authorize through the sandbox's
//! consent redirect, link, reset-and-sync, work logs. The server is also SIGKILLed mid-run and
//! restarted (the same run resumes and ends exact), and its scheduler runs a due connection
//! without any API trigger.
//!
//! What the sandbox holds is read from the sandbox's own Harvest API (with a token of its own),
//! not from the server, so "exactly the provider's entries" is checked against the source.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Utc;
use hourbridge_sandbox::{HARVEST_DEMO_CLIENT_ID, HARVEST_DEMO_CLIENT_SECRET};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

mod common;
use common::*;

/// What [`connect_and_link`] set up.
struct Linked {
    project: String,
    remote: Vec<String>,
}

/// The README's steps over HTTP: bootstrap the workspace (Ada is the owner), add the people the
/// sandbox's entries belong to, install Harvest with the sandbox's OAuth app, authorize through
/// the sandbox's consent redirect to the server's callback, link a project to "Fleet Portal" and
/// "Mobile App".
async fn connect_and_link(api: &Api) -> Linked {
    let (st, ws) = api
        .call(
            Method::POST,
            "/v1/workspaces",
            Some(json!({"name": "Acme", "time_zone": "Europe/Oslo", "owner": {"name": "Ada Admin", "email": "ada@acme.test"}})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{ws}");
    for (name, email) in [
        ("Bob Builder", "bob.builder@acme.test"),
        ("Dee Designer", "dee@elsewhere.test"),
        ("Eve Engineer", "eve@acme.test"),
    ] {
        api.ok(
            Method::POST,
            "/v1/people",
            Some(json!({"name": name, "email": email, "role": "member"})),
        )
        .await;
    }
    let conn = api
        .ok(
            Method::PUT,
            "/v1/connections/harvest",
            Some(json!({"client_id": HARVEST_DEMO_CLIENT_ID, "client_secret": HARVEST_DEMO_CLIENT_SECRET})),
        )
        .await;
    assert_eq!(conn["state"], "pending_authorization", "{conn}");
    assert_eq!(
        conn["redirect_url"],
        format!("{}/oauth/harvest/callback", api.base)
    );

    let a = api
        .ok(Method::POST, "/v1/connections/harvest/authorize", None)
        .await;
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let consent = browser
        .get(a["authorize_url"].as_str().expect("authorize_url"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        consent.status(),
        StatusCode::FOUND,
        "the sandbox consents and redirects"
    );
    let back = consent.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        back.starts_with(&format!("{}/oauth/harvest/callback?", api.base)),
        "redirected to the server's callback: {back}"
    );
    let done = browser.get(&back).send().await.unwrap();
    assert_eq!(
        done.status(),
        StatusCode::OK,
        "{}",
        done.text().await.unwrap_or_default()
    );
    let conn = api.ok(Method::GET, "/v1/connections/harvest", None).await;
    assert_eq!(conn["state"], "active", "{conn}");

    let listed = api
        .ok(Method::GET, "/v1/connections/harvest/remote-projects", None)
        .await;
    let remote: Vec<String> = ["Fleet Portal", "Mobile App"]
        .iter()
        .map(|name| {
            listed["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == *name)
                .and_then(|p| p["id"].as_str())
                .unwrap_or_else(|| panic!("remote project {name} not listed: {listed}"))
                .to_owned()
        })
        .collect();
    let p = api
        .ok(
            Method::POST,
            "/v1/projects",
            Some(json!({"name": "Fleet & Mobile", "start_date": sync_from().to_string()})),
        )
        .await;
    let project = p["id"].as_str().unwrap().to_owned();
    api.ok(
        Method::PUT,
        &format!("/v1/projects/{project}/integrations/harvest"),
        Some(json!({"remote_project_ids": remote, "sync_from": sync_from().to_string()})),
    )
    .await;
    Linked { project, remote }
}

async fn reset_and_sync(api: &Api, project: &str) -> String {
    let (st, r) = api
        .call(
            Method::POST,
            &format!("/v1/projects/{project}/integrations/harvest/reset-and-sync"),
            Some(json!({"mode": "refetch"})),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{r}");
    r["run_id"].as_str().expect("run_id").to_owned()
}

#[tokio::test]
async fn serve_runs_a_reset_and_sync_and_the_sandbox_entries_arrive() {
    let sandbox = SandboxProc::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace_id();
    let token = token(dir.path(), &ws);
    let server = ServerProc::start(dir.path(), &sandbox, &[], "serve.log");
    let api = Api::new(&server, &token);
    let linked = connect_and_link(&api).await;
    let expected = sandbox.harvest_entry_ids(&linked.remote, sync_from()).await;
    assert!(
        expected.len() > 50,
        "the demo seed has ~60 entries: {}",
        expected.len()
    );

    let run_id = reset_and_sync(&api, &linked.project).await;
    let run = api.wait_run_end(&run_id, &server).await;
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(run["counts"]["created"], expected.len(), "{run}");
    assert_eq!(api.synced_remote_ids(&linked.project).await, expected);
    let link = api
        .ok(
            Method::GET,
            &format!("/v1/projects/{}/integrations/harvest", linked.project),
            None,
        )
        .await;
    assert_eq!(
        link["missing_people"],
        json!([]),
        "every entry's person exists: {link}"
    );
    let conn = api.ok(Method::GET, "/v1/connections/harvest", None).await;
    assert_eq!(
        (
            conn["status"]["kind"].as_str(),
            conn["status"]["run_id"].as_str()
        ),
        (Some("succeeded"), Some(run_id.as_str())),
        "{conn}"
    );
    server.stop();
}

#[tokio::test]
async fn serve_killed_mid_run_resumes_the_same_run_on_restart_and_ends_exact() {
    // 20,000 extra entries behind a 300 ms provider: ten pages per project, several seconds
    // of run to kill the server in.
    let sandbox = SandboxProc::start(&["--entries", "20000", "--latency-ms", "300"]);
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace_id();
    let token = token(dir.path(), &ws);
    // The default lease (2 minutes, as a user runs it): the killed process cannot give it
    // back, so the restarted server must free it itself (it holds the data directory alone).
    let server = ServerProc::start(dir.path(), &sandbox, &[], "serve-1.log");
    let api = Api::new(&server, &token);
    let linked = connect_and_link(&api).await;
    let expected = sandbox.harvest_entry_ids(&linked.remote, sync_from()).await;
    assert!(expected.len() > 20_000, "{}", expected.len());

    let run_id = reset_and_sync(&api, &linked.project).await;
    let deadline = Instant::now() + WAIT;
    let before = loop {
        let run = api.run(&run_id).await;
        assert!(
            run["state"] == "queued" || run["state"] == "running",
            "the run ended before the server could be killed (make the sandbox bigger or slower): {run}"
        );
        if run["state"] == "running" && run["counts"]["created"].as_u64() > Some(0) {
            break run;
        }
        assert!(
            Instant::now() < deadline,
            "the run made no progress: {run}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    server.kill();
    let created_before = before["counts"]["created"].as_u64().unwrap();
    assert!(
        created_before < expected.len() as u64,
        "killed mid-run: {created_before} of {} created",
        expected.len()
    );

    let server = ServerProc::start(dir.path(), &sandbox, &[], "serve-2.log");
    let api = Api::new(&server, &token);
    let restarted = Instant::now();
    loop {
        let run = api.run(&run_id).await;
        if run["state"] == "succeeded" || run["counts"]["created"].as_u64() > Some(created_before) {
            break;
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(30),
            "the restarted server did not take the run over at once (it waited for the dead \
             process's lease?): {run}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let run = api.wait_run_end(&run_id, &server).await;
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(
        run["started_at"], before["started_at"],
        "the same run resumed, it was not started again"
    );
    let counts = &run["counts"];
    assert!(
        counts["created"].as_u64().unwrap() >= created_before,
        "{run}"
    );
    assert_eq!(
        counts["created"].as_u64().unwrap() + counts["unchanged"].as_u64().unwrap(),
        expected.len() as u64,
        "each entry counted once across the kill: {run}"
    );
    assert_eq!(
        (counts["updated"].as_u64(), counts["deleted"].as_u64()),
        (Some(0), Some(0)),
        "{run}"
    );
    assert_eq!(
        api.synced_remote_ids(&linked.project).await,
        expected,
        "exactly the sandbox's entries: none missing, none doubled"
    );
    let conn = api.ok(Method::GET, "/v1/connections/harvest", None).await;
    assert_eq!(
        conn["status"]["run_id"].as_str(),
        Some(run_id.as_str()),
        "no other run was started: {conn}"
    );
    let log = server.log();
    assert!(
        log.lines()
            .any(|l| l.contains("resuming unfinished run") && l.contains(&run_id)),
        "the restarted server resumed the run itself:\n{log}"
    );
    server.stop();
}

#[tokio::test]
async fn a_second_serve_on_the_same_data_dir_exits_with_a_clear_error() {
    let sandbox = SandboxProc::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let first = ServerProc::start(dir.path(), &sandbox, &[], "serve-1.log");
    let mut second = std::process::Command::new(BIN)
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            second.kill().unwrap();
            panic!("a second serve on a data directory in use kept running");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "{status}: {err}");
    let pid = first.proc.child.id();
    assert!(
        err.contains("is in use by another hourbridge process")
            && err.contains(&format!("(pid {pid})")),
        "the error names the holder: {err}"
    );
    // The first one is unaffected.
    let health = reqwest::get(format!("{}/health", first.base))
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    first.stop();
    // Once it has stopped, the directory is free again.
    let again = ServerProc::start(dir.path(), &sandbox, &[], "serve-2.log");
    again.stop();
}

#[tokio::test]
async fn serve_scheduler_runs_a_due_connection_without_an_api_call() {
    let sandbox = SandboxProc::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace_id();
    let token = token(dir.path(), &ws);
    let server = ServerProc::start(dir.path(), &sandbox, &[], "serve-1.log");
    let api = Api::new(&server, &token);
    let linked = connect_and_link(&api).await;
    let expected = sandbox.harvest_entry_ids(&linked.remote, sync_from()).await;
    let conn = api.ok(Method::GET, "/v1/connections/harvest", None).await;
    assert_eq!(conn["status"]["kind"], "never_synced", "{conn}");
    server.stop();

    // With the server down, move the connection's slot into the past, as if its time of day
    // had come while nobody was looking (the schedule entry is what the scheduler reads).
    make_due(dir.path(), &ws).await;

    let server = ServerProc::start(dir.path(), &sandbox, &[], "serve-2.log");
    let api = Api::new(&server, &token);
    let deadline = Instant::now() + WAIT;
    let conn = loop {
        let conn = api.ok(Method::GET, "/v1/connections/harvest", None).await;
        if conn["status"]["kind"] == "succeeded" || conn["status"]["kind"] == "failed" {
            break conn;
        }
        assert!(
            Instant::now() < deadline,
            "the scheduler did not run the due connection: {conn}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(conn["status"]["kind"], "succeeded", "{conn}");
    let next: chrono::DateTime<Utc> = conn["next_run_at"].as_str().unwrap().parse().unwrap();
    assert!(
        next > Utc::now(),
        "the connection moved to its next slot: {conn}"
    );
    let run_id = conn["status"]["run_id"].as_str().unwrap();
    let run = api.run(run_id).await;
    assert_eq!(
        run["project_id"],
        Value::Null,
        "a connection-wide scheduled run: {run}"
    );
    assert_eq!(run["counts"]["created"], expected.len(), "{run}");
    assert_eq!(api.synced_remote_ids(&linked.project).await, expected);
    server.stop();
}

/// Sets the connection's schedule entry due a minute ago, through the same store code the
/// server uses (the data directory is not in use).
async fn make_due(dir: &Path, ws: &str) {
    use hourbridge_runtime::{AppContext, Config, Mode, env};
    use hourbridge_sync::schedule::ScheduleEntry;
    let d = dir.display().to_string();
    let config = Config::from_lookup(Mode::Local, |k| (k == env::DATA_DIR).then(|| d.clone()))
        .expect("config");
    let ctx = AppContext::build(config, None).await.expect("context");
    let id = format!("{ws}.harvest");
    let (mut entry, version) = ctx
        .store
        .get::<ScheduleEntry>(hourbridge_store::GLOBAL_SCOPE, &id)
        .await
        .unwrap()
        .expect("connecting put the connection on the schedule");
    assert!(entry.next_run_at > Utc::now(), "not due yet: {entry:?}");
    entry.next_run_at = Utc::now() - chrono::Duration::minutes(1);
    ctx.store
        .update(hourbridge_store::GLOBAL_SCOPE, &entry, version)
        .await
        .unwrap();
}
