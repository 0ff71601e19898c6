//! Basecamp push ("time out") of N host work logs to the Basecamp sandbox, end to end: the local
//! server as `main` builds it (`AppContext::build` + `hourbridge::serve`, SQLite in a temporary
//! data directory, in-process worker), driven over HTTP the way an owner does it — connect with a
//! daily time, authorize through Launchpad's consent, choose the `bc3` account, first import —
//! then N logs created through `POST /v1/worklogs` (16 at a time, not measured) and one
//! "Synchronize now" (measured), then an unchanged re-run (measured, must write nothing).
//!
//! ```text
//! cargo bench -p hourbridge-e2e --bench basecamp_push [-- 10000]
//! ```
//!
//! The Basecamp budget is raised to 1,000 requests per 10 s on both sides
//! (`HOURBRIDGE_BASECAMP_REQUESTS_PER_10S` and the sandbox's limiter), so the figures are our own
//! cost; at Basecamp's documented 50 requests per 10 s a push is capped at about 5 logs/s.
//! The count defaults to 10,000; CI only compiles this (clippy `--all-targets`); pass a small N
//! (e.g. `-- 200`) for a quick check.

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use hourbridge_runtime::{AppContext, env};
use hourbridge_sandbox::{
    BASECAMP_DEMO_ACCOUNT_ID, BASECAMP_DEMO_CLIENT_ID, BASECAMP_DEMO_CLIENT_SECRET, Sandbox, Seed,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Api, config};
use tokio::sync::oneshot;

const PROJECT: &str = "Nordlys website relaunch";
const TODO: &str = "Draft onboarding email sequence";
const WAIT: Duration = Duration::from_secs(1800);

impl Api {
    /// Polls the run until it has ended; answers its view.
    async fn wait_run(&self, run_id: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let run = self
                .ok(Method::GET, &format!("/v1/runs/{run_id}"), None)
                .await;
            if run["state"] == "succeeded" || run["state"] == "failed" {
                return run;
            }
            assert!(Instant::now() < deadline, "run {run_id} did not end: {run}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the connection's latest run to end.
    async fn settled(&self) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let c = self.ok(Method::GET, "/v1/connections/basecamp", None).await;
            if matches!(c["status"]["kind"].as_str(), Some("succeeded" | "failed")) {
                return c;
            }
            assert!(Instant::now() < deadline, "first import did not end: {c}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// "Synchronize now", waited for: (run view, wall time from the request to the run's end as
    /// seen by polling every 20 ms).
    async fn sync_now(&self) -> (Value, Duration) {
        let t = Instant::now();
        let r = self
            .ok(Method::POST, "/v1/connections/basecamp/sync", None)
            .await;
        let run = self.wait_run(r["run_id"].as_str().expect("run id")).await;
        let took = t.elapsed();
        assert_eq!(run["state"], "succeeded", "{run}");
        (run, took)
    }
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000);

    let sb = Sandbox::start(Seed::Demo).await.expect("sandbox");
    let bc = sb.basecamp();
    bc.set_rate_limit(1000, Duration::from_secs(10));
    let dir = tempfile::tempdir().expect("temp dir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let vars = [
        (
            "HOURBRIDGE_BASECAMP_LAUNCHPAD_URL",
            sb.basecamp_launchpad_url(),
        ),
        ("HOURBRIDGE_BASECAMP_API_URL", sb.basecamp_api_url()),
        (
            "HOURBRIDGE_BASECAMP_CLIENT_ID",
            BASECAMP_DEMO_CLIENT_ID.to_owned(),
        ),
        (
            "HOURBRIDGE_BASECAMP_CLIENT_SECRET",
            BASECAMP_DEMO_CLIENT_SECRET.to_owned(),
        ),
        ("HOURBRIDGE_BASECAMP_REQUESTS_PER_10S", "1000".to_owned()),
        (env::PUBLIC_URL, base.clone()),
    ];
    let ctx = AppContext::build(config(dir.path(), &vars), None)
        .await
        .expect("context");
    let (stop, stopped) = oneshot::channel::<()>();
    let serve_ctx = ctx.clone();
    let server = tokio::spawn(async move {
        hourbridge::serve(&serve_ctx, listener, async {
            let _ = stopped.await;
        })
        .await
    });
    let _ = ctx.start_local_workers();

    let ws = "nordlys";
    let token = hourbridge::issue_token(&ctx, ws, "ingrid", "owner", chrono::Duration::hours(4))
        .expect("token");
    let api = Api {
        http: reqwest::Client::new(),
        base,
        token,
    };
    let (st, v) = api
        .call(
            Method::POST,
            "/v1/workspaces",
            Some(json!({"name": "Nordlys", "time_zone": "Europe/Oslo",
                "owner": {"name": "Ingrid Solberg", "email": "ingrid@nordlys.example"}})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let jonas = api
        .ok(
            Method::POST,
            "/v1/people",
            Some(
                json!({"name": "Jonas Berg", "email": "jonas.berg@nordlys.example",
                "role": "member"}),
            ),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Connect as the owner does.
    api.ok(
        Method::PUT,
        "/v1/connections/basecamp",
        Some(json!({"sync_at": "18:30"})),
    )
    .await;
    let a = api
        .ok(Method::POST, "/v1/connections/basecamp/authorize", None)
        .await;
    let consent = hourbridge_sandbox::consent(a["authorize_url"].as_str().unwrap())
        .await
        .expect("sandbox consent");
    let back = reqwest::get(&consent.callback_url).await.expect("callback");
    assert_eq!(back.status(), StatusCode::OK);
    let c = api
        .ok(
            Method::POST,
            "/v1/connections/basecamp/account",
            Some(json!({"account_id": BASECAMP_DEMO_ACCOUNT_ID.to_string()})),
        )
        .await;
    assert_eq!(c["state"], "active", "{c}");
    let c = api.settled().await;
    assert_eq!(c["status"]["kind"], "succeeded", "first import: {c}");

    let projects = api.ok(Method::GET, "/v1/projects?limit=1000", None).await;
    let project = projects["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == PROJECT)
        .expect("imported project")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let tasks = api
        .ok(
            Method::GET,
            &format!("/v1/projects/{project}/tasks?limit=1000"),
            None,
        )
        .await;
    let task = tasks["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == TODO)
        .expect("imported to-do")["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // N host logs (not measured).
    let t = Instant::now();
    let today = Utc::now().date_naive();
    futures::stream::iter(0..n)
        .map(|i| {
            let body = json!({"person_id": jonas, "project_id": project,
                "task_id": (i % 2 == 0).then_some(task.as_str()),
                "date": (today - chrono::Days::new((i % 60) as u64 + 1)).to_string(),
                "minutes": 15 + i % 7, "note": format!("bench {i}")});
            let api = &api;
            async move {
                api.ok(Method::POST, "/v1/worklogs", Some(body)).await;
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    println!(
        "basecamp_push: created {n} host logs over HTTP in {:.2?} (16 concurrent, not measured)",
        t.elapsed()
    );

    let bc_project = bc.find_project(PROJECT).expect("sandbox project");
    let before_entries = bc.timesheet_entries(bc_project).len();
    let (requests, writes) = (bc.request_count(), bc.timesheet_write_count());
    let (run, push) = api.sync_now().await;
    let push_requests = bc.request_count() - requests;
    let push_writes = bc.timesheet_write_count() - writes;
    let pushed = bc.timesheet_entries(bc_project).len() - before_entries;
    assert_eq!(pushed, n, "one Basecamp entry per host log: {run}");
    println!(
        "basecamp_push: push of {n} logs: {push:.2?}, {:.0} logs/s; {push_requests} sandbox \
         requests ({:.3} per pushed log), {push_writes} timesheet writes; run counts {}",
        n as f64 / push.as_secs_f64(),
        push_requests as f64 / n as f64,
        run["counts"],
    );

    let (requests, writes) = (bc.request_count(), bc.timesheet_write_count());
    let (run, rerun) = api.sync_now().await;
    let rerun_requests = bc.request_count() - requests;
    let rerun_writes = bc.timesheet_write_count() - writes;
    println!(
        "basecamp_push: unchanged re-run: {rerun:.2?}, {rerun_requests} sandbox requests, \
         {rerun_writes} timesheet writes; run counts {}",
        run["counts"],
    );
    assert_eq!(
        rerun_writes, 0,
        "an unchanged re-run writes nothing to Basecamp"
    );

    let _ = stop.send(());
    let _ = server.await;
    drop(sb);
}
