//! `hourbridge serve` runs syncs, proved against the built binary the way a new user runs it:
//! `hourbridge sandbox` and `hourbridge serve` as processes on loopback, a fresh data directory,
//! and the README's Harvest calls over HTTP only — connect, authorize through the sandbox's
//! consent redirect, link, reset-and-sync, work logs. The server is also SIGKILLed mid-run and
//! restarted (the same run resumes and ends exact), and its scheduler runs a due connection
//! without any API trigger.
//!
//! What the sandbox holds is read from the sandbox's own Harvest API (with a token of its own),
//! not from the server, so "exactly the provider's entries" is checked against the source.

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use chrono::{NaiveDate, Utc};
use hourbridge_sandbox::{
    HARVEST_DEMO_ACCOUNT_ID, HARVEST_DEMO_CLIENT_ID, HARVEST_DEMO_CLIENT_SECRET,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_hourbridge");
/// Every wait in this file is bounded by this (the slowest one, a resumed 20,000-entry run
/// behind a 300 ms provider, takes a few seconds).
const WAIT: Duration = Duration::from_secs(120);

/// A workspace id of its own per test: a connection's daily slot is a hash of its workspace and
/// provider, so a fixed id would make the scheduler fire mid-test at one fixed time of day.
fn workspace_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("acme-{}-{nanos}", std::process::id())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn sync_from() -> NaiveDate {
    Utc::now().date_naive() - chrono::Days::new(60)
}

/// A child process that is killed (SIGKILL) and reaped when dropped, so a failing test leaves
/// no server behind.
struct Proc {
    child: Child,
    what: String,
}

impl Proc {
    fn spawn(cmd: &mut Command, what: &str) -> Self {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {what}: {e}"));
        Self {
            child,
            what: what.to_owned(),
        }
    }

    fn assert_alive(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("{} exited early with {status}", self.what);
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `hourbridge sandbox` on a port the OS picks, with the provider URL variables it prints.
struct SandboxProc {
    _proc: Proc,
    vars: Vec<(String, String)>,
}

impl SandboxProc {
    fn start(extra: &[&str]) -> Self {
        let mut proc = Proc::spawn(
            Command::new(BIN)
                .args(["sandbox", "--addr", "127.0.0.1:0"])
                .args(extra)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
            "hourbridge sandbox",
        );
        let out = proc.child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        // Reads (and drains) the sandbox's stdout until it exits.
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut vars = Vec::new();
        let mut printed = Vec::new();
        while vars.len() < 4 {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).unwrap_or_else(|_| {
                panic!("hourbridge sandbox did not print its four provider variables: {printed:?}")
            });
            if let Some((k, v)) = line
                .trim()
                .strip_prefix("export ")
                .and_then(|l| l.split_once('='))
            {
                vars.push((k.to_owned(), v.to_owned()));
            }
            printed.push(line);
        }
        proc.assert_alive();
        Self { _proc: proc, vars }
    }

    fn var(&self, name: &str) -> &str {
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("hourbridge sandbox did not print {name}: {:?}", self.vars))
    }

    /// Ids of the stopped Harvest entries of `projects` from `from` on, read from the sandbox's
    /// API with a token obtained through its own OAuth flow (not the server's).
    async fn harvest_entry_ids(&self, projects: &[String], from: NaiveDate) -> BTreeSet<String> {
        let (id_url, api_url) = (
            self.var("HOURBRIDGE_HARVEST_ID_URL"),
            self.var("HOURBRIDGE_HARVEST_API_URL"),
        );
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let redirect_uri = "http://127.0.0.1:9/test-callback";
        let consent = http
            .get(format!("{id_url}/oauth2/authorize"))
            .query(&[
                ("client_id", HARVEST_DEMO_CLIENT_ID),
                ("redirect_uri", redirect_uri),
                ("response_type", "code"),
                ("state", "test"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(consent.status(), StatusCode::FOUND, "sandbox consent");
        let back = reqwest::Url::parse(consent.headers()["location"].to_str().unwrap()).unwrap();
        let code = back
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .expect("code in the sandbox's redirect");
        let token: Value = http
            .post(format!("{id_url}/api/v2/oauth2/token"))
            .json(&json!({
                "grant_type": "authorization_code",
                "code": code,
                "client_id": HARVEST_DEMO_CLIENT_ID,
                "client_secret": HARVEST_DEMO_CLIENT_SECRET,
                "redirect_uri": redirect_uri,
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let access = token["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("sandbox token answer: {token}"))
            .to_owned();
        let mut ids = BTreeSet::new();
        for project in projects {
            let mut page = 1;
            loop {
                let res = http
                    .get(format!("{api_url}/time_entries"))
                    .query(&[
                        ("project_id", project.clone()),
                        ("from", from.to_string()),
                        ("is_running", "false".into()),
                        ("per_page", "2000".into()),
                        ("page", page.to_string()),
                    ])
                    .bearer_auth(&access)
                    .header("Harvest-Account-Id", HARVEST_DEMO_ACCOUNT_ID.to_string())
                    .header("User-Agent", "hourbridge serve_syncs test (test@acme.test)")
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), StatusCode::OK, "sandbox time_entries");
                let body: Value = res.json().await.unwrap();
                for e in body["time_entries"].as_array().unwrap() {
                    assert!(
                        ids.insert(e["id"].to_string()),
                        "sandbox listed {} twice",
                        e["id"]
                    );
                }
                match body["next_page"].as_u64() {
                    Some(n) => page = n,
                    None => break,
                }
            }
        }
        ids
    }
}

/// `hourbridge serve` on a free loopback port, pointed at a sandbox, its log in a file.
struct ServerProc {
    proc: Proc,
    base: String,
    log: PathBuf,
}

impl ServerProc {
    fn start(dir: &Path, sandbox: &SandboxProc, extra: &[&str], log_name: &str) -> Self {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let log = dir.join(log_name);
        let log_file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args([
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir)
        .args(extra)
        .env("HOURBRIDGE_PUBLIC_URL", &base)
        .env("RUST_LOG", "info")
        .env_remove("HOURBRIDGE_JWT_SECRET")
        .env_remove("HOURBRIDGE_APP_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file);
        for (k, v) in &sandbox.vars {
            cmd.env(k, v);
        }
        let mut proc = Proc::spawn(&mut cmd, "hourbridge serve");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            proc.assert_alive();
            assert!(
                Instant::now() < deadline,
                "hourbridge serve did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { proc, base, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no shutdown hook, no lease release, no last checkpoint.
    fn kill(mut self) {
        self.proc.child.kill().unwrap();
        let status = self.proc.child.wait().unwrap();
        assert!(
            !status.success(),
            "SIGKILL should not look like a clean exit"
        );
    }

    /// SIGTERM: the graceful stop a process manager does.
    fn stop(mut self) {
        let pid = self.proc.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = self.proc.child.wait().unwrap();
        assert!(
            status.success(),
            "SIGTERM should stop the server cleanly, got {status}"
        );
    }
}

fn token(dir: &Path, ws: &str) -> String {
    let out = Command::new(BIN)
        .args([
            "token",
            "--workspace",
            ws,
            "--person",
            "ada",
            "--role",
            "owner",
            "--data-dir",
        ])
        .arg(dir)
        .env_remove("HOURBRIDGE_JWT_SECRET")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The API of a server, as a host product calls it.
struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    fn new(server: &ServerProc, token: &str) -> Self {
        Self {
            base: server.base.clone(),
            token: token.to_owned(),
            http: reqwest::Client::new(),
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = res.status();
        let text = res.text().await.unwrap();
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, json)
    }

    async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (st, v) = self.call(method.clone(), path, body).await;
        assert!(st.is_success(), "{method} {path} answered {st}: {v}");
        v
    }

    async fn run(&self, run_id: &str) -> Value {
        self.ok(Method::GET, &format!("/v1/runs/{run_id}"), None)
            .await
    }

    /// Polls a run until it has ended (bounded by [`WAIT`]).
    async fn wait_run_end(&self, run_id: &str, server: &ServerProc) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let run = self.run(run_id).await;
            if run["state"] == "succeeded" || run["state"] == "failed" {
                return run;
            }
            assert!(
                Instant::now() < deadline,
                "run {run_id} did not end within {WAIT:?}: {run}\nserver log:\n{}",
                server.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Remote ids of the project's synced work logs, all pages; panics on a duplicate.
    async fn synced_remote_ids(&self, project: &str) -> BTreeSet<String> {
        let mut ids = BTreeSet::new();
        let mut path = format!("/v1/worklogs?project_id={project}&limit=1000");
        loop {
            let page = self.ok(Method::GET, &path, None).await;
            for l in page["items"].as_array().unwrap() {
                assert_eq!(l["source"]["provider"], "harvest", "{l}");
                let id = l["source"]["remote_id"].as_str().unwrap().to_owned();
                assert!(ids.insert(id.clone()), "remote entry {id} synced twice");
            }
            match page["next_cursor"].as_str() {
                Some(c) => {
                    path = format!("/v1/worklogs?project_id={project}&limit=1000&cursor={c}")
                }
                None => return ids,
            }
        }
    }
}

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
    // A short lease so the restarted server may take the run over seconds after the kill
    // (the killed process cannot release it).
    let lease = ["--lease-ttl-secs", "3"];
    let server = ServerProc::start(dir.path(), &sandbox, &lease, "serve-1.log");
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

    let server = ServerProc::start(dir.path(), &sandbox, &lease, "serve-2.log");
    let api = Api::new(&server, &token);
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
