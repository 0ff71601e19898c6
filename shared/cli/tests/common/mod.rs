//! The process harness of the binary tests: `hourbridge sandbox` and `hourbridge serve` as
//! child processes on loopback, tokens from `hourbridge token`, and the API called over HTTP.
#![allow(dead_code)]

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

pub const BIN: &str = env!("CARGO_BIN_EXE_hourbridge");
/// Every wait in this file is bounded by this (the slowest one, a resumed 20,000-entry run
/// behind a 300 ms provider, takes a few seconds).
pub const WAIT: Duration = Duration::from_secs(120);

/// A workspace id of its own per test: a connection's daily slot is a hash of its workspace and
/// provider, so a fixed id would make the scheduler fire mid-test at one fixed time of day.
pub fn workspace_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("acme-{}-{nanos}", std::process::id())
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn sync_from() -> NaiveDate {
    Utc::now().date_naive() - chrono::Days::new(60)
}

/// A child process that is killed (SIGKILL) and reaped when dropped, so a failing test leaves
/// no server behind.
pub struct Proc {
    pub child: Child,
    pub what: String,
}

impl Proc {
    pub fn spawn(cmd: &mut Command, what: &str) -> Self {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {what}: {e}"));
        Self {
            child,
            what: what.to_owned(),
        }
    }

    pub fn assert_alive(&mut self) {
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
pub struct SandboxProc {
    pub _proc: Proc,
    pub vars: Vec<(String, String)>,
}

impl SandboxProc {
    pub fn start(extra: &[&str]) -> Self {
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
        // The sandbox prints its provider variables, then a "Sandbox ready" line: reading up
        // to that line takes every variable, however many providers there are.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut vars = Vec::new();
        let mut printed = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).unwrap_or_else(|_| {
                panic!("hourbridge sandbox did not print its provider variables and \"Sandbox ready\": {printed:?}")
            });
            if line.starts_with("Sandbox ready") {
                break;
            }
            if let Some((k, v)) = line
                .trim()
                .strip_prefix("export ")
                .and_then(|l| l.split_once('='))
            {
                vars.push((k.to_owned(), v.to_owned()));
            }
            printed.push(line);
        }
        assert!(
            vars.len() >= 10,
            "hourbridge sandbox printed too few provider variables: {printed:?}"
        );
        proc.assert_alive();
        Self { _proc: proc, vars }
    }

    pub fn var(&self, name: &str) -> &str {
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("hourbridge sandbox did not print {name}: {:?}", self.vars))
    }

    /// Ids of the stopped Harvest entries of `projects` from `from` on, read from the sandbox's
    /// API with a token obtained through its own OAuth flow (not the server's).
    pub async fn harvest_entry_ids(
        &self,
        projects: &[String],
        from: NaiveDate,
    ) -> BTreeSet<String> {
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
pub struct ServerProc {
    pub proc: Proc,
    pub base: String,
    pub log: PathBuf,
}

impl ServerProc {
    pub fn start(dir: &Path, sandbox: &SandboxProc, extra: &[&str], log_name: &str) -> Self {
        Self::start_vars(dir, &sandbox.vars, extra, log_name)
    }

    /// `hourbridge serve` with these provider variables (e.g. of an in-process sandbox).
    pub fn start_vars(
        dir: &Path,
        vars: &[(String, String)],
        extra: &[&str],
        log_name: &str,
    ) -> Self {
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
        for (k, v) in vars {
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

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no shutdown hook, no lease release, no last checkpoint.
    pub fn kill(mut self) {
        self.proc.child.kill().unwrap();
        let status = self.proc.child.wait().unwrap();
        assert!(
            !status.success(),
            "SIGKILL should not look like a clean exit"
        );
    }

    /// SIGTERM: the graceful stop a process manager does.
    pub fn stop(mut self) {
        let pid = self.proc.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = self.proc.child.wait().unwrap();
        assert!(
            status.success(),
            "SIGTERM should stop the server cleanly, got {status}"
        );
    }
}

/// `base` with `extra` added after it.
pub fn vars_with(mut base: Vec<(String, String)>, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    base.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    base
}

/// The workspace of the provider worlds: Nordlys in Europe/Oslo, owned by Ingrid Solberg.
pub fn nordlys_workspace() -> Value {
    json!({"name": "Nordlys", "time_zone": "Europe/Oslo",
        "owner": {"name": "Ingrid Solberg", "email": "ingrid@nordlys.example"}})
}

/// `hourbridge serve` in a fresh data directory and the owner's API on a workspace of its own.
pub struct Served {
    pub dir: tempfile::TempDir,
    /// `dir`'s path.
    pub path: PathBuf,
    pub server: ServerProc,
    pub api: Api,
    pub ws: String,
}

/// Starts `hourbridge serve` with provider variables `vars` and `extra` arguments (log
/// `serve.log`) in a fresh data directory and creates a workspace with `workspace` (the body of
/// `POST /v1/workspaces`) as the owner.
pub async fn serve_workspace(
    vars: &[(String, String)],
    extra: &[&str],
    workspace: Value,
) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let server = ServerProc::start_vars(&path, vars, extra, "serve.log");
    let ws = workspace_id();
    let api = Api::new(&server, &token(&path, &ws));
    let (st, v) = api
        .call(Method::POST, "/v1/workspaces", Some(workspace))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    Served {
        dir,
        path,
        server,
        api,
        ws,
    }
}

pub fn token(dir: &Path, ws: &str) -> String {
    token_as(dir, ws, "ada", "owner")
}

/// A token from `hourbridge token` for `person` with `role`.
pub fn token_as(dir: &Path, ws: &str, person: &str, role: &str) -> String {
    let out = Command::new(BIN)
        .args([
            "token",
            "--workspace",
            ws,
            "--person",
            person,
            "--role",
            role,
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
pub struct Api {
    pub base: String,
    pub token: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(server: &ServerProc, token: &str) -> Self {
        Self {
            base: server.base.clone(),
            token: token.to_owned(),
            http: reqwest::Client::new(),
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
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

    pub async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (st, v) = self.call(method.clone(), path, body).await;
        assert!(st.is_success(), "{method} {path} answered {st}: {v}");
        v
    }

    pub async fn run(&self, run_id: &str) -> Value {
        self.ok(Method::GET, &format!("/v1/runs/{run_id}"), None)
            .await
    }

    /// Polls a run until it has ended (bounded by [`WAIT`]).
    pub async fn wait_run_end(&self, run_id: &str, server: &ServerProc) -> Value {
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

    /// "Synchronize now" on `provider`'s connection, waited for; the run, which must have
    /// succeeded.
    pub async fn sync_succeeded(&self, provider: &str, server: &ServerProc) -> Value {
        let r = self
            .ok(
                Method::POST,
                &format!("/v1/connections/{provider}/sync"),
                None,
            )
            .await;
        let run = self
            .wait_run_end(r["run_id"].as_str().unwrap(), server)
            .await;
        assert_eq!(run["state"], "succeeded", "{run}\n{}", server.log());
        run
    }

    /// Remote ids of the project's synced work logs, all pages; panics on a duplicate.
    pub async fn synced_remote_ids(&self, project: &str) -> BTreeSet<String> {
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

/// Polls `f` until it answers `Some` (bounded by [`WAIT`]); shows the server log on failure.
pub async fn eventually<T, F, Fut>(what: &str, server: &ServerProc, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {WAIT:?}\nserver log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
